/* SPDX-License-Identifier: Apache-2.0 */
/* engine.c -- messages -> ingest -> worker -> model/records/trackers/stop rules (see engine.h). */
#include "engine.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "alphatop/phase.h"
#include "alphatop/text.h"
#include "ckpt.h"
#include "clock.h"
#include "exitcode.h"
#include "feed.h"
#include "ingest.h"
#include "record.h"
#include "runlog.h"
#include "worker.h"

/* What the engine keeps per run (ingest keeps the rest). */
typedef struct eng_run {
    at_phase_tracker *trk[AT_SPACE_COUNT];
    at_runlog *log; /* this run's own log; NULL when the shared one is used */
    int64_t *traps; /* latest num_traps per layer index (W view); -1 unknown */
    int ntraps;
    int stop_sent, acked;
    double stop_deadline;
    /* Results in model order (order_results): which layers had a result written, the first
     * that has not, and results held back until it has. */
    unsigned char *written;
    int nwritten;
    int next;
    at_job **held;
    int nheld;
} eng_run;

struct at_engine {
    at_engine_opts o;
    at_model *model;
    at_engine_source src; /* opts.source, or the feed below */
    at_feed *feed;        /* NULL with an injected source */
    at_feed_msg *held;    /* the feed's message being handled */
    at_worker *worker;
    at_ingest *ingest;
    at_stop_rules *rules;
    at_ckpt *base;
    at_runlog *shared_log;
    int64_t snapshots_done;
    int slots;     /* jobs the worker is given at a time (at_ingest_pump) */
    double reap_t; /* when reap_gone last looked */
    int done, exit_code;
    int log_failing;       /* a log write failed; reported once until a write succeeds */
    at_record_stats stats; /* messages, rejections and unexpected acks seen; the feed's
                              connection counters are added at the end (emit_stats) */
    char endpoint[512];
};

void at_engine_opts_default(at_engine_opts *o)
{
    memset(o, 0, sizeof *o);
    o->stop_ack_timeout = 10.0;
    o->threads = 0;
    o->queue_bytes = (int64_t)512 << 20;
    o->max_open = 8;
    o->max_runs = AT_INGEST_MAX_RUNS;
    o->notes = stderr;
}

static eng_run *run_of(const at_engine *self, int run)
{
    return at_ingest_run_data(self->ingest, run);
}

static at_runlog *log_of(const at_engine *self, int run)
{
    eng_run *r = run_of(self, run);
    return r && r->log ? r->log : self->shared_log;
}

/* ---- output: headless lines, run log, model events -------------------------------------- */

static void log_write(at_engine *self, int run, const char *line, size_t len)
{
    at_runlog *log = log_of(self, run);
    if (!log)
        return;
    if (at_runlog_append_json(log, line, len) == AT_OK) {
        self->log_failing = 0;
        return;
    }
    if (self->log_failing)
        return;
    self->log_failing = 1;
    /* Reported on screen and stdout only: the log is what just failed. */
    char text[300];
    snprintf(text, sizeof text, "run log: %s (recording continues when writes succeed)",
             at_runlog_last_error(log));
    at_model_add_event(self->model, -1, -1, -1, AT_EVENT_ERROR, text);
    at_record rec = {.type = AT_RECORD_EVENT, .step = -1};
    rec.u.event = (at_record_event){.kind = AT_RECORD_EV_ERROR, .text = text};
    char *s = self->o.json_out ? at_record_encode(&rec, NULL, NULL) : NULL;
    if (s) {
        fprintf(self->o.json_out, "%s\n", s);
        fflush(self->o.json_out);
    }
    at_record_text_free(s);
}

/* Writes rec as one line to the headless output and the run log. */
static void emit(at_engine *self, int run, const at_record *rec)
{
    size_t len;
    char *s = at_record_encode(rec, &len, NULL);
    if (!s)
        return;
    if (self->o.json_out) {
        fwrite(s, 1, len, self->o.json_out);
        fputc('\n', self->o.json_out);
        fflush(self->o.json_out);
    }
    log_write(self, run, s, len);
    at_record_text_free(s);
}

/* ---- ingest's hooks --------------------------------------------------------------------- */

/* Every event, ingest's and the engine's own (at_ingest_event): shown in the model, written. */
static void hook_event(void *ctx, int run, int layer, const at_record *rec)
{
    at_engine *self = ctx;
    at_model_add_event(self->model, run, layer, rec->step, at_record_model_kind(&rec->u.event),
                       rec->u.event.text);
    emit(self, run, rec);
}

static void hook_run_free(void *ctx, void *data)
{
    (void)ctx;
    eng_run *r = data;
    if (!r)
        return;
    for (int s = 0; s < AT_SPACE_COUNT; s++)
        at_phase_tracker_free(r->trk[s]);
    at_runlog_close(r->log);
    free(r->traps);
    for (int i = 0; i < r->nheld; i++)
        at_job_free(r->held[i]);
    free(r->held);
    free(r->written);
    free(r);
}

static int hook_run_new(void *ctx, int run, const char *id, void **data)
{
    at_engine *self = ctx;
    eng_run *r = calloc(1, sizeof *r);
    for (int s = 0; r && s < AT_SPACE_COUNT; s++)
        if (!(r->trk[s] = at_phase_tracker_new(NULL))) {
            hook_run_free(self, r);
            r = NULL;
        }
    if (!r)
        return AT_ERR_NOMEM;
    if (!self->shared_log && at_model_state(self->model)->record[0]) {
        at_run_info *ri = at_model_run(self->model, run);
        char path[sizeof ri->log], id_[AT_TEXT_ESCAPE_CAP(AT_PROTO_MAX_ID)];
        int st = at_runlog_default_path(path, sizeof path, id);
        r->log = st == AT_OK ? at_runlog_open(path, &st) : NULL;
        if (self->o.notes) /* the id is a trainer's: escaped for the terminal */
            fprintf(self->o.notes,
                    r->log ? "alphatop: recording run %s to %s\n"
                           : "alphatop: cannot record run %s to %s\n",
                    at_text_show(id_, sizeof id_, id), path);
        if (r->log)
            snprintf(ri->log, sizeof ri->log, "%s", path);
        else
            at_model_add_event(self->model, run, -1, -1, AT_EVENT_ERROR,
                               "cannot open the run log: this run is not recorded");
    }
    *data = r;
    return AT_OK;
}

static int hook_submit(void *ctx, at_job *job)
{
    at_engine *self = ctx;
    return at_worker_submit(self->worker, job);
}

static void hook_feed(void *ctx, const at_job *job, int64_t step)
{
    at_engine *self = ctx;
    const at_layer_info *li = at_model_layer(self->model, job->run, job->layer);
    at_phase_tracker_feed_layer(run_of(self, job->run)->trk[job->space], step, li->name, &job->m,
                                job->max_abs);
}

static void stop_fire(at_engine *self, int run, const at_stop_verdict *v);

/* The trackers' snapshot at step closes: phase events, stop rules, durable log. */
static void hook_close(void *ctx, int run, int64_t step, unsigned spaces)
{
    at_engine *self = ctx;
    eng_run *r = run_of(self, run);
    for (int sp = 0; sp < AT_SPACE_COUNT; sp++) {
        const at_phase_event *ev;
        size_t nev = 0;
        if (!(spaces & 1u << sp) ||
            at_phase_tracker_end_snapshot(r->trk[sp], step, &ev, &nev) != AT_OK)
            continue;
        for (size_t i = 0; i < nev; i++) {
            int layer_phase = ev[i].kind == AT_EVENT_LAYER_PHASE;
            char text[300];
            snprintf(text, sizeof text, "%s%s", sp == AT_SPACE_DELTA ? "delta view: " : "",
                     ev[i].text);
            at_record rec = {.type = AT_RECORD_EVENT,
                             .run = at_ingest_run_id(self->ingest, run),
                             .step = ev[i].step};
            rec.u.event =
                (at_record_event){.kind = layer_phase ? AT_RECORD_EV_PHASE : AT_RECORD_EV_RUN_PHASE,
                                  .layer = ev[i].layer,
                                  .text = text,
                                  .phase = {(at_space)sp, ev[i].from, ev[i].to, ev[i].since_step}};
            /* The tracker is the one source of phase events: its hysteresis keeps a layer
             * whose alpha hovers at a threshold from flapping in the view. */
            if (layer_phase) {
                at_model_add_phase_event(self->model, run, (at_space)sp, &ev[i], text);
            } else {
                at_model_add_run_phase_event(self->model, run, (at_space)sp, &ev[i], text);
            }
            emit(self, run, &rec);
        }
    }
    at_stop_verdict v;
    if (self->rules && !r->stop_sent && at_stop_rules_eval(self->rules, r->trk[AT_SPACE_W], &v))
        stop_fire(self, run, &v);
    at_runlog *log = log_of(self, run);
    if (log)
        at_runlog_flush(log);
    self->snapshots_done++;
    if (self->o.max_snapshots > 0 && self->snapshots_done >= self->o.max_snapshots && !r->stop_sent)
        self->done = 1;
}

/* ---- results ---------------------------------------------------------------------------- */

/* A W result's trap count: an event when traps appear in a layer that had none. */
static void traps_note(at_engine *self, int run, eng_run *r, const at_job *job, const char *name)
{
    if (job->layer >= r->ntraps) {
        int64_t *nt = realloc(r->traps, (size_t)(job->layer + 1) * sizeof *nt);
        if (!nt)
            return;
        for (int i = r->ntraps; i <= job->layer; i++)
            nt[i] = -1;
        r->traps = nt;
        r->ntraps = job->layer + 1;
    }
    if (job->m.num_traps > 0 && r->traps[job->layer] == 0)
        at_ingest_event(self->ingest, run, job->layer, job->step,
                        (at_record_event){.kind = AT_RECORD_EV_TRAP, .layer = name},
                        "%s: %lld correlation trap%s appeared (largest %.2fx the bulk edge)", name,
                        (long long)job->m.num_traps, job->m.num_traps == 1 ? "" : "s",
                        job->m.trap_max_ratio);
    r->traps[job->layer] = job->m.num_traps;
}

static void result_handle(at_engine *self, const at_job *job)
{
    int run = job->run;
    eng_run *r = run_of(self, run);
    const at_layer_info *li = at_model_layer(self->model, run, job->layer);
    if (!r || !li)
        return;
    at_record rec = {
        .type = AT_RECORD_LAYER, .run = at_ingest_run_id(self->ingest, run), .step = job->step};
    at_record_layer *l = &rec.u.layer;
    *l = (at_record_layer){.view = job->space,
                           .name = li->name,
                           .kind = li->kind,
                           .ndim = li->ndim,
                           .weights_step = job->weights_step};
    memcpy(l->shape, li->shape, sizeof l->shape);
    if (job->rc < 0) {
        l->error = job->error;
        emit(self, run, &rec);
        at_ingest_event(self->ingest, run, job->layer, job->step,
                        (at_record_event){.kind = AT_RECORD_EV_ERROR, .layer = li->name},
                        "%s%s: %s (%s)", job->space == AT_SPACE_DELTA ? "delta view: " : "",
                        li->name, at_strerror(job->rc), job->error);
    } else {
        l->m = job->m;
        emit(self, run, &rec);
        at_model_add_cell(self->model, run, job->layer, job->space, job->step, &job->m);
        if (job->evals)
            at_model_set_spectrum(self->model, run, job->layer, job->space, job->step, job->evals,
                                  job->num_evals, job->m.xmin, job->m.alpha);
        if (self->o.record_spectra && job->evals) {
            at_record sp = {.type = AT_RECORD_SPECTRUM, .run = rec.run, .step = job->step};
            sp.u.spectrum = (at_record_spectrum){job->space, li->name, job->num_evals, job->evals};
            size_t len;
            char *s = at_record_encode(&sp, &len, NULL);
            if (s)
                log_write(self, run, s, len);
            at_record_text_free(s);
        }
        if (job->space == AT_SPACE_W)
            traps_note(self, run, r, job, li->name);
    }
    at_ingest_result(self->ingest, job);
}

/* Handles job and frees it. */
static void result_done(at_engine *self, at_job *job)
{
    result_handle(self, job);
    at_job_free(job);
}

/* Results reach the model, the output and the log with each layer's first result in model
 * order: with several analysis threads they finish in any order, and a replay of the log
 * meets the layers in the order of their first records, which must be the live view's (the
 * order they arrived in). A layer's first result waits for those of the layers before it,
 * until the analysis is idle (results_release); later results go at once. */
static void result_order(at_engine *self, at_job *job)
{
    eng_run *r = run_of(self, job->run);
    int l = job->layer;
    if (!r || l < 0 || (l < r->nwritten && r->written[l]) || l == r->next) {
        if (r && l >= 0 && l >= r->nwritten) {
            int n = l + 1 > 2 * r->nwritten ? l + 1 : 2 * r->nwritten;
            unsigned char *w = realloc(r->written, (size_t)n);
            if (w) {
                memset(w + r->nwritten, 0, (size_t)(n - r->nwritten));
                r->written = w;
                r->nwritten = n;
            }
        }
        if (r && l >= 0 && l < r->nwritten)
            r->written[l] = 1;
        result_done(self, job);
        if (!r)
            return;
        while (r->next < r->nwritten && r->written[r->next])
            r->next++;
        for (int i = 0; i < r->nheld; i++)
            if (r->held[i]->layer == r->next) {
                at_job *h = r->held[i];
                r->held[i] = r->held[--r->nheld];
                result_order(self, h);
                return;
            }
        return;
    }
    at_job **h = realloc(r->held, (size_t)(r->nheld + 1) * sizeof *h);
    if (!h) {
        result_done(self, job);
        return;
    }
    r->held = h;
    r->held[r->nheld++] = job;
}

/* The analysis is idle: what waits for a layer that will not have a result (its job failed
 * to queue, its slices never all came) goes now, in model order. */
static void results_release(at_engine *self)
{
    for (int run = 0; run < at_model_num_runs(self->model); run++) {
        eng_run *r = run_of(self, run);
        while (r && r->nheld) {
            int k = 0;
            for (int i = 1; i < r->nheld; i++)
                if (r->held[i]->layer < r->held[k]->layer)
                    k = i;
            at_job *h = r->held[k];
            r->held[k] = r->held[--r->nheld];
            r->next = h->layer;
            result_order(self, h);
        }
    }
}

/* ---- incoming messages ------------------------------------------------------------------ */

static void record_weights(at_engine *self, int run, const at_proto_msg *msg)
{
    const at_proto_layer *l = &msg->u.layer;
    at_runlog *log = log_of(self, run);
    if (!log)
        return;
    at_record rec = {.type = AT_RECORD_WEIGHTS, .run = msg->run, .step = l->step};
    rec.u.weights = (at_record_weights){l->name, l->kind, l->dtype, l->base, l->ndim, {0}};
    memcpy(rec.u.weights.shape, l->shape, sizeof rec.u.weights.shape);
    size_t len;
    char *s = at_record_encode(&rec, &len, NULL);
    if (s && at_runlog_append_blob(log, s, len, l->data, l->nbytes) != AT_OK)
        at_model_add_event(self->model, -1, -1, -1, AT_EVENT_ERROR, at_runlog_last_error(log));
    at_record_text_free(s);
}

static void on_scalars(at_engine *self, int run, const at_proto_msg *msg)
{
    const at_proto_scalars *sc = &msg->u.scalars;
    at_record_scalar vals[AT_PROTO_MAX_SCALARS];
    for (int i = 0; i < sc->n; i++) {
        const at_proto_scalar *v = &sc->values[i];
        vals[i] = (at_record_scalar){v->name, v->value};
        if (isfinite(v->value)) {
            at_model_add_scalar(self->model, run, v->name, sc->step, v->value);
            at_phase_tracker_feed_scalar(run_of(self, run)->trk[AT_SPACE_W], sc->step, v->name,
                                         v->value);
        }
    }
    at_record rec = {.type = AT_RECORD_SCALARS, .run = msg->run, .step = sc->step};
    rec.u.scalars = (at_record_scalars){sc->n, vals};
    emit(self, run, &rec);
}

static void handle_msg(at_engine *self, const at_proto_msg *msg)
{
    if (!at_proto_from_trainer(msg->type))
        return; /* a monitor -> trainer message: not for us */
    /* What the engine writes about a message comes before what ingest makes of it. A stop_ack
     * makes no run: anyone who can connect may send one. */
    int run = msg->type == AT_PROTO_STOP_ACK ? at_ingest_find_run(self->ingest, msg->run)
                                             : at_ingest_run(self->ingest, msg->run);
    if (run < 0 && msg->type == AT_PROTO_STOP_ACK) {
        self->stats.unexpected_acks++;
        at_ingest_event(
            self->ingest, -1, -1, -1, (at_record_event){.kind = AT_RECORD_EV_WARNING},
            "run %s, which this monitor does not know, acknowledged a stop that was never "
            "sent to it (ignored, no run made): %s",
            msg->run, msg->u.reason);
    }
    if (run < 0)
        return;
    if (msg->type == AT_PROTO_SCALARS)
        on_scalars(self, run, msg);
    if (msg->type == AT_PROTO_LAYER && self->o.record_weights)
        record_weights(self, run, msg);
    at_ingest_msg(self->ingest, msg);
    eng_run *r = run_of(self, run);
    at_run_info *ri = at_model_run(self->model, run);
    /* A hello of a paused run comes from an agent that reconnected or a new process with the
     * run's id: either may not know of the pause. */
    if (msg->type == AT_PROTO_HELLO && ri->paused && self->src.pause)
        self->src.pause(self->src.ctx, msg->run, 1);
    if (msg->type == AT_PROTO_GOODBYE) {
        ri->paused = 0;
        /* A trainer that stopped without acknowledging still stopped. */
        if (r->stop_sent)
            r->acked = 1;
        at_runlog *log = log_of(self, run);
        if (log)
            at_runlog_flush(log);
    } else if (msg->type == AT_PROTO_STOP_ACK && !r->stop_sent) {
        /* Anyone who can connect may send one: it must not read as the trainer stopping. */
        self->stats.unexpected_acks++;
        at_ingest_event(self->ingest, run, -1, -1, (at_record_event){.kind = AT_RECORD_EV_WARNING},
                        "run %s acknowledged a stop that was never sent to it (ignored): %s",
                        msg->run, msg->u.reason);
    } else if (msg->type == AT_PROTO_STOP_ACK) {
        r->acked = 1;
        at_ingest_event(self->ingest, run, -1, -1, (at_record_event){.kind = AT_RECORD_EV_ACK},
                        "run %s acknowledged the stop: %s", msg->run, msg->u.reason);
    }
}

/* ---- stop ------------------------------------------------------------------------------- */

static int send_stop(at_engine *self, int run, const char *reason)
{
    eng_run *r = run_of(self, run);
    int rc = self->src.stop(self->src.ctx, at_ingest_run_id(self->ingest, run), reason);
    at_model_run(self->model, run)->stop_requested = 1;
    at_model_touch(self->model);
    r->stop_sent = 1;
    r->stop_deadline = at_clock_mono() + self->o.stop_ack_timeout;
    return rc;
}

static void stop_fire(at_engine *self, int run, const at_stop_verdict *v)
{
    char reason[AT_PROTO_MAX_TEXT];
    snprintf(reason, sizeof reason, "alphatop --stop-on %s: %s", v->rule, v->evidence);
    int rc = send_stop(self, run, reason);
    at_ingest_event(
        self->ingest, run, -1, v->step,
        (at_record_event){.kind = AT_RECORD_EV_STOP, .rule = v->rule, .evidence = v->evidence},
        "stop rule %s fired at step %lld: %s%s", v->rule, (long long)v->step, v->evidence,
        rc == AT_OK ? "" : " (could not send stop to the trainer)");
    self->exit_code = AT_EXIT_STOPPED;
}

int at_engine_request_stop(at_engine *self, int run, const char *reason)
{
    if (!run_of(self, run))
        return AT_ERR_ARG;
    int rc = send_stop(self, run, reason);
    at_ingest_event(self->ingest, run, -1, -1,
                    (at_record_event){.kind = AT_RECORD_EV_STOP, .rule = "user"},
                    "stop requested: %s%s", reason, rc == AT_OK ? "" : " (could not send it)");
    return rc;
}

/* A fired rule ends the engine once its trainer acknowledged or the timeout passed. */
static void check_stops(at_engine *self)
{
    if (self->exit_code != AT_EXIT_STOPPED)
        return;
    double now = at_clock_mono();
    for (int i = 0; i < at_model_num_runs(self->model); i++) {
        eng_run *r = run_of(self, i);
        if (!r || !r->stop_sent)
            continue;
        if (r->acked) {
            self->done = 1;
        } else if (now > r->stop_deadline) {
            at_ingest_event(self->ingest, i, -1, -1, (at_record_event){.kind = AT_RECORD_EV_STOP},
                            "run %s did not acknowledge the stop within %.0f s",
                            at_ingest_run_id(self->ingest, i), self->o.stop_ack_timeout);
            r->acked = 1;
            self->done = 1;
        }
    }
}

/* ---- the loop --------------------------------------------------------------------------- */

static void update_state(at_engine *self)
{
    at_monitor_state *st = at_model_state(self->model);
    at_ingest_stats is;
    at_ingest_stats_get(self->ingest, &is);
    int pending = at_worker_pending(self->worker) + is.waiting, done;
    double oldest;
    at_ingest_progress(self->ingest, at_clock_mono(), &done, &oldest);
    double behind = pending ? oldest : 0;
    if (st->layers_pending != pending || st->layers_done != done ||
        fabs(st->behind_seconds - behind) > 0.5) {
        st->layers_pending = pending;
        st->layers_done = done;
        st->behind_seconds = behind;
        at_model_touch(self->model);
    }
}

/* 1 while the analysis has enough waiting: the socket is left unread (engine.h). */
static int engine_full(const at_engine *self)
{
    return at_worker_held_bytes(self->worker) + (int64_t)at_ingest_held_bytes(self->ingest) >=
               self->o.queue_bytes ||
           at_ingest_open_snapshots(self->ingest) >= at_ingest_open_cap(self->ingest);
}

/* A message the source rejected (an error event with its reason), or one of the feed's notices
 * between messages: refused connections or claims on a run (AT_ERR_AUTH, a warning) and
 * accepting stopped or resumed at the descriptor limit (AT_ERR_IO, info). */
static void on_reject(at_engine *self, int rc, const at_proto_error *e)
{
    if (rc == AT_ERR_AUTH || rc == AT_ERR_IO) {
        at_record_kind k = rc == AT_ERR_AUTH ? AT_RECORD_EV_WARNING : AT_RECORD_EV_INFO;
        at_ingest_event(self->ingest, -1, -1, -1, (at_record_event){.kind = k}, "%s", e->message);
        return;
    }
    int known = e->reason > AT_PROTO_E_NONE && e->reason < AT_PROTO_E_COUNT;
    if (known) {
        self->stats.rejected++;
        self->stats.rejected_by[e->reason]++;
    }
    at_ingest_event(self->ingest, -1, -1, -1,
                    (at_record_event){.kind = AT_RECORD_EV_ERROR,
                                      .reason = known ? at_proto_reason_name(e->reason) : NULL},
                    "rejected a message: %s", e->message);
}

/* A trainer whose connection closed before its snapshot's end and goodbye went out (its agent
 * gave up flushing) would hold that snapshot in flight for good, and enough of them would stop
 * the monitor reading (max_open): once a second, a run whose connection is gone and that has
 * been silent for GONE_S seconds is told to ingest as gone. */
#define GONE_S 5.0
static void reap_gone(at_engine *self)
{
    const double now = at_clock_mono();
    if (!self->feed || now - self->reap_t < 1.0)
        return;
    self->reap_t = now;
    at_feed_stats fs;
    at_feed_stats_get(self->feed, &fs); /* reads the socket monitor's news of closed ones */
    for (int i = 0; i < at_model_num_runs(self->model); i++) {
        const char *id = at_ingest_run_id(self->ingest, i);
        const at_feed_run *fr = id ? at_feed_run_find(self->feed, id) : NULL;
        if (id && (!fr || (!fr->connected && now * 1000 - (double)fr->last_ms > GONE_S * 1000)))
            at_ingest_run_gone(self->ingest, i,
                               "the trainer's connection closed before its end arrived");
    }
}

int at_engine_step(at_engine *self)
{
    uint64_t v0 = at_model_version(self->model);
    /* Bounded, so a flood of layers cannot starve the results and the view. */
    for (int i = 0; i < 256 && !engine_full(self); i++) {
        const at_proto_msg *m = NULL;
        at_proto_error e = {0};
        int rc = self->src.next(self->src.ctx, &m, &e);
        if (rc == AT_ERR_AGAIN)
            break;
        if (rc < 0) {
            on_reject(self, rc, &e);
            if (rc == AT_ERR_NET)
                break;
            continue;
        }
        self->stats.messages++;
        at_ingest_set_load(self->ingest,
                           at_worker_held_bytes(self->worker) +
                               (int64_t)at_ingest_held_bytes(self->ingest),
                           self->o.queue_bytes);
        handle_msg(self, m);
    }
    at_job *job;
    while ((job = at_worker_poll(self->worker)))
        result_order(self, job);
    /* The analysis is shared out a few jobs at a time: one run's huge layers do not queue
     * ahead of every other run's (ingest.h, Fairness). */
    at_ingest_pump(self->ingest, self->slots - at_worker_pending(self->worker));
    reap_gone(self);
    if (at_worker_pending(self->worker) == 0)
        results_release(self);
    check_stops(self);
    update_state(self);
    return at_model_version(self->model) != v0;
}

int at_engine_pollitems(at_engine *self, zmq_pollitem_t *items, int max)
{
    int n = 0;
    if (self->feed && n < max && !engine_full(self))
        items[n++] = (zmq_pollitem_t){.socket = at_feed_socket(self->feed), .events = ZMQ_POLLIN};
    if (n < max)
        items[n++] = (zmq_pollitem_t){.fd = at_worker_fd(self->worker), .events = ZMQ_POLLIN};
    return n;
}

/* The final stats line: the engine's counts and the feed's refused connections and pauses. */
static void emit_stats(at_engine *self)
{
    at_record rec = {.type = AT_RECORD_STATS, .step = -1};
    rec.u.stats = self->stats;
    at_ingest_stats is;
    at_ingest_stats_get(self->ingest, &is);
    rec.u.stats.runs_evicted = is.runs_evicted;
    rec.u.stats.runs_refused = is.runs_refused;
    rec.u.stats.layers_shed = is.layers_shed;
    rec.u.stats.snapshots_shed = is.snapshots_shed;
    rec.u.stats.run_bytes_max = (int64_t)is.run_bytes_max;
    if (self->feed) {
        at_feed_stats fs;
        at_feed_stats_get(self->feed, &fs);
        rec.u.stats.auth_denied = fs.auth_denied;
        rec.u.stats.handshake_failed = fs.handshake_failed;
        rec.u.stats.accept_pauses = fs.accept_pauses;
        /* Claims on a run refused by the feed come as notices, not one rejection each. */
        rec.u.stats.rejected_by[AT_PROTO_E_NOT_OWNER] = fs.rejected_by[AT_PROTO_E_NOT_OWNER];
        rec.u.stats.rejected += fs.rejected_by[AT_PROTO_E_NOT_OWNER];
    }
    emit(self, -1, &rec);
}

int at_engine_run(at_engine *self, volatile int *interrupted)
{
    while (!self->done && !*interrupted) {
        zmq_pollitem_t items[4];
        int n = at_engine_pollitems(self, items, 4);
        /* At least every 100 ms: the stop acknowledgement has a deadline. */
        zmq_poll(items, n, 100);
        at_engine_step(self);
    }
    emit_stats(self);
    return at_engine_exit_code(self);
}

int at_engine_done(const at_engine *self)
{
    return self->done;
}

int at_engine_exit_code(const at_engine *self)
{
    return self->exit_code;
}

int at_engine_pause(at_engine *self, int run, int paused)
{
    at_run_info *ri = at_model_run(self->model, run);
    if (!run_of(self, run) || !ri)
        return AT_ERR_ARG;
    if (ri->ended)
        return AT_ERR_STATE;
    const char *id = at_ingest_run_id(self->ingest, run);
    int rc = self->src.pause ? self->src.pause(self->src.ctx, id, paused) : AT_ERR_UNSUPPORTED;
    if (rc != AT_OK) {
        at_ingest_event(self->ingest, run, -1, ri->step,
                        (at_record_event){.kind = AT_RECORD_EV_ERROR},
                        "could not %s the snapshots of run %s: %s", paused ? "pause" : "resume", id,
                        rc == AT_ERR_NOTFOUND ? "its trainer is not connected" : at_strerror(rc));
        return rc;
    }
    ri->paused = paused != 0;
    at_model_touch(self->model);
    at_ingest_event(self->ingest, run, -1, ri->step,
                    (at_record_event){.kind = paused ? AT_RECORD_EV_PAUSE : AT_RECORD_EV_RESUME},
                    paused ? "snapshots paused by the user: none is taken until resumed"
                           : "snapshots resumed by the user");
    return AT_OK;
}

const char *at_engine_endpoint(const at_engine *self)
{
    return self->endpoint;
}

/* ---- the feed as the engine's source ---------------------------------------------------- */

static int feed_next(void *ctx, const at_proto_msg **msg, at_proto_error *err)
{
    at_engine *self = ctx;
    at_feed_msg_free(self->held);
    self->held = NULL;
    int rc = at_feed_recv(self->feed, 0, &self->held, err);
    if (rc == AT_OK)
        *msg = &self->held->msg;
    else if (rc == AT_ERR_NET)
        snprintf(err->message, sizeof err->message, "%s", at_feed_last_error(self->feed));
    return rc;
}

static int feed_stop(void *ctx, const char *run, const char *reason)
{
    at_engine *self = ctx;
    return at_feed_stop(self->feed, run, reason);
}

static int feed_pause(void *ctx, const char *run, int paused)
{
    at_engine *self = ctx;
    return at_feed_pause(self->feed, run, paused);
}

static int feed_open(at_engine *self, const at_engine_opts *opts, char *err, size_t errlen)
{
    at_feed_opts fo;
    at_feed_opts_default(&fo);
    fo.endpoint = opts->endpoint;
    fo.curve_keyfile = opts->curve_key;
    fo.curve_allow_file = opts->curve_allow;
    fo.allow_insecure = opts->allow_insecure;
    /* A run table entry per rank: room for four ranks of every run ingest holds. */
    fo.max_runs = opts->max_runs < AT_FEED_MAX_RUNS / 4 ? AT_FEED_MAX_RUNS : 4 * opts->max_runs;
    self->feed = at_feed_new(&fo, err, errlen);
    if (!self->feed)
        return AT_ERR_NET;
    self->src =
        (at_engine_source){.ctx = self, .next = feed_next, .stop = feed_stop, .pause = feed_pause};
    snprintf(self->endpoint, sizeof self->endpoint, "%s", at_feed_endpoint(self->feed));
    /* No Curve beyond loopback (--insecure), a key file others can read, an empty allow-list:
     * said at start, and kept as warning events (the view's events panel, the log). */
    const char *w = at_feed_warning(self->feed);
    while (*w) {
        int n = (int)strcspn(w, "\n");
        if (opts->notes)
            fprintf(opts->notes, "alphatop: warning: %.*s\n", n, w);
        at_ingest_event(self->ingest, -1, -1, -1, (at_record_event){.kind = AT_RECORD_EV_WARNING},
                        "%.*s", n, w);
        w += n + (w[n] == '\n');
    }
    return AT_OK;
}

/* ---- life ------------------------------------------------------------------------------- */

/* Says in the model (and the notes) where runs are recorded: the --record log, or the state
 * directory each run gets its own log in; when that cannot be made, runs are not recorded. */
static void record_where(at_engine *self, at_model *model)
{
    at_monitor_state *ms = at_model_state(model);
    const char *rec = self->o.record;
    if (rec && !strcmp(rec, "-"))
        return;
    if (rec) {
        snprintf(ms->record, sizeof ms->record, "%s", rec);
        return;
    }
    char dir[sizeof ms->record - 1];
    int rc = at_runlog_state_dir(dir, sizeof dir, 1);
    if (rc == AT_OK) {
        snprintf(ms->record, sizeof ms->record, "%s/", dir);
        if (self->o.notes)
            fprintf(self->o.notes, "alphatop: recording each run to %s/alphatop-RUN-DATE.atlog\n",
                    dir);
        return;
    }
    char text[sizeof dir + 160];
    snprintf(text, sizeof text,
             "cannot make the directory for run logs%s%s: %s; runs are not "
             "recorded (--record LOG records elsewhere)",
             dir[0] ? " " : "", dir,
             rc == AT_ERR_IO         ? strerror(errno)
             : rc == AT_ERR_NOTFOUND ? "no home directory"
                                     : at_strerror(rc));
    at_model_add_event(model, -1, -1, -1, AT_EVENT_ERROR, text);
    if (self->o.notes)
        fprintf(self->o.notes, "alphatop: %s\n", text);
}

at_engine *at_engine_new(const at_engine_opts *opts, at_model *model, char *err, size_t errlen)
{
    at_engine *self = calloc(1, sizeof *self);
    int st;
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->o = *opts;
    self->model = model;
    self->exit_code = AT_EXIT_OK;
    if (opts->n_rules) {
        self->rules = at_stop_rules_new();
        if (!self->rules) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (int i = 0; i < opts->n_rules; i++)
            if (at_stop_rules_add(self->rules, opts->rules[i], err, errlen) != AT_OK)
                goto fail;
    }
    if (opts->base) {
        self->base = at_ckpt_open(opts->base, NULL);
        if (!self->base || at_ckpt_status(self->base) < 0) {
            snprintf(err, errlen, "--base %s: %s", opts->base,
                     self->base ? at_ckpt_last_error(self->base) : "out of memory");
            goto fail;
        }
    }
    if (opts->record && strcmp(opts->record, "-")) {
        self->shared_log = at_runlog_open(opts->record, &st);
        if (!self->shared_log) {
            snprintf(err, errlen, "--record %s: %s", opts->record,
                     st == AT_ERR_FORMAT ? "exists and is not an alphatop run log"
                                         : "cannot open for appending");
            goto fail;
        }
        if (opts->notes)
            fprintf(opts->notes, "alphatop: recording to %s\n", opts->record);
    }
    record_where(self, model);
    at_worker_opts wo;
    at_worker_opts_default(&wo);
    wo.fast = opts->fast;
    wo.threads = opts->threads;
    wo.remote = opts->remote;
    if (opts->queue_bytes < 1 || opts->max_open < 1) {
        snprintf(err, errlen, "queue_bytes and max_open must be positive");
        goto fail;
    }
    self->worker = at_worker_new(&wo, &st);
    /* A job per thread: one more would wait in the worker's own queue, where a huge layer
     * handed out while nothing else waited would hold up the next small one. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    self->slots = opts->threads > 0 ? opts->threads : cores > 0 ? (int)cores : 1;
    if (!self->worker) {
        snprintf(err, errlen, "cannot start the analysis worker: %s", at_strerror(st));
        goto fail;
    }
    at_ingest_opts io;
    at_ingest_opts_default(&io);
    io.fast = opts->fast;
    io.base = self->base;
    io.max_runs = opts->max_runs;
    io.max_open = opts->max_open;
    io.hold_jobs = !opts->fast; /* fast mode's pool keeps only each layer's newest job */
    at_ingest_hooks hooks = {.ctx = self,
                             .run_new = hook_run_new,
                             .run_free = hook_run_free,
                             .submit = hook_submit,
                             .event = hook_event,
                             .feed = hook_feed,
                             .close = hook_close};
    self->ingest = at_ingest_new(&io, &hooks, model, &st);
    if (!self->ingest) {
        snprintf(err, errlen, "%s", at_strerror(st));
        goto fail;
    }
    if (opts->source)
        self->src = *opts->source;
    else if (feed_open(self, opts, err, errlen) != AT_OK)
        goto fail;
    at_monitor_state *ms = at_model_state(model);
    ms->fast = opts->fast;
    at_model_touch(model);
    return self;
fail:
    at_engine_free(self);
    return NULL;
}

void at_engine_free(at_engine *self)
{
    if (!self)
        return;
    /* The worker first: its queued jobs borrow base weights that ingest and the checkpoint own.
     * Then what never ended is said, while the logs are open. */
    at_worker_free(self->worker);
    self->worker = NULL;
    at_ingest_finish(self->ingest);
    at_feed_msg_free(self->held);
    at_feed_free(self->feed);
    at_ingest_free(self->ingest);
    at_runlog_close(self->shared_log);
    at_ckpt_close(self->base);
    at_stop_rules_free(self->rules);
    free(self);
}
