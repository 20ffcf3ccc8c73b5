/* engine.c -- feed -> worker -> model/events/headless output/run log (see engine.h). */
#include "engine.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "alphatop/phase.h"
#include "alphatop/protocol.h"
#include "ckpt.h"
#include "exitcode.h"
#include "feed.h"
#include "metrics_fmt.h"
#include "runlog.h"
#include "worker.h"

/* Snapshots of one run that may be in flight at once, and the bytes of weights queued for the
 * worker. Past half the slots or the byte budget, the oldest snapshot not yet started is
 * dropped (the view wants the latest, not a backlog), so memory stays bounded. */
#define MAX_INFLIGHT 32
#define QUEUE_BUDGET_BYTES ((size_t)1 << 30)

typedef struct snap {
    int64_t step;
    int submitted, done;
    int received; /* layer messages (a LoRA pair is two) */
    int ended;
    int dropped;    /* the rest of it was cancelled (its running layer still finishes) */
    size_t bytes;   /* weights queued for this snapshot */
    double t_first; /* monotonic time the first layer arrived */
} snap;

typedef struct base_layer {
    char name[AT_PROTO_MAX_NAME];
    at_layer_kind kind;
    int ndim;
    int64_t shape[4];
    float *data;
} base_layer;

/* One half of a LoRA adapter, waiting for the other half of the same snapshot. */
typedef struct lora_half {
    char pair[AT_PROTO_MAX_NAME + 8]; /* the pair's name (lora_pair_name) */
    int is_b;                         /* lora_B (out x r), else lora_A (r x in) */
    int64_t step;
    at_job *job; /* its weights */
} lora_half;

typedef struct eng_run {
    char id[AT_PROTO_MAX_ID];
    at_phase_tracker *trk[AT_SPACE_COUNT];
    int fed[AT_SPACE_COUNT]; /* layers fed to the tracker since its last snapshot */
    at_runlog *log;          /* this run's own log; NULL when the shared one is used */
    snap snaps[MAX_INFLIGHT];
    int nsnaps;
    base_layer *base;
    int nbase;
    int64_t *traps; /* latest num_traps per layer index (W view); -1 unknown */
    int ntraps;
    int64_t dropped; /* snapshots the agent said it dropped */
    int64_t last_seq;
    int said_lora;
    struct lora_half *lora; /* LoRA halves waiting for their other half (exact mode) */
    int nlora;
    int64_t hello_pid; /* the trainer process of the last hello announced; 0 none */
    int64_t open_step; /* fast mode: step of the trackers' open snapshot; -1 none */
    int stop_sent, acked;
    double stop_deadline;
} eng_run;

struct at_engine {
    at_engine_opts o;
    at_model *model;
    at_feed *feed;
    at_worker *worker;
    at_stop_rules *rules;
    at_ckpt *base;
    at_runlog *shared_log;
    eng_run **runs; /* by model run index */
    int nruns;
    int64_t snapshots_done;
    size_t queued_bytes; /* sum of snap.bytes over every run */
    int last_done;       /* layers analysed in the last finished snapshot */
    int done, exit_code;
    int log_failing; /* a log write failed; reported once until a write succeeds */
    char endpoint[512];
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void at_engine_opts_default(at_engine_opts *o)
{
    memset(o, 0, sizeof *o);
    o->stop_ack_timeout = 10.0;
    o->threads = 1;
    o->notes = stderr;
}

/* ---- output: headless lines, run log, model events -------------------------------------- */

static void log_write(at_engine *self, eng_run *r, const char *line, size_t len)
{
    at_runlog *log = r && r->log ? r->log : self->shared_log;
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
    if (self->o.json_out) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "event");
        cJSON_AddStringToObject(o, "kind", "error");
        cJSON_AddStringToObject(o, "text", text);
        char *s = cJSON_PrintUnformatted(o);
        if (s)
            fprintf(self->o.json_out, "%s\n", s);
        fflush(self->o.json_out);
        cJSON_free(s);
        cJSON_Delete(o);
    }
}

/* Writes obj as one line to the headless output and the run log; frees obj. */
static void emit(at_engine *self, eng_run *r, cJSON *obj)
{
    char *s = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!s)
        return;
    size_t len = strlen(s);
    if (self->o.json_out) {
        fwrite(s, 1, len, self->o.json_out);
        fputc('\n', self->o.json_out);
        fflush(self->o.json_out);
    }
    log_write(self, r, s, len);
    cJSON_free(s);
}

/* A new {"type":"event","kind":kind,"run":..,"step":..,"layer":..} object. */
static cJSON *event_obj(eng_run *r, const char *kind, int64_t step, const char *layer)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "event");
    cJSON_AddStringToObject(o, "kind", kind);
    if (r)
        cJSON_AddStringToObject(o, "run", r->id);
    if (step >= 0)
        cJSON_AddNumberToObject(o, "step", (double)step);
    if (layer && *layer)
        cJSON_AddStringToObject(o, "layer", layer);
    return o;
}

/* Emits an event with text (and extra fields already in o), and shows it in the model. */
static void event_emit(at_engine *self, int run, eng_run *r, int layer, int64_t step,
                       at_event_kind mk, cJSON *o, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(o, "text", text);
    at_model_add_event(self->model, run, layer, step, mk, text);
    emit(self, r, o);
}

/* ---- runs ------------------------------------------------------------------------------- */

static void run_free(eng_run *r)
{
    if (!r)
        return;
    for (int s = 0; s < AT_SPACE_COUNT; s++)
        at_phase_tracker_free(r->trk[s]);
    at_runlog_close(r->log);
    for (int i = 0; i < r->nbase; i++)
        free(r->base[i].data);
    free(r->base);
    free(r->traps);
    for (int i = 0; i < r->nlora; i++)
        at_job_free(r->lora[i].job);
    free(r->lora);
    free(r);
}

/* The engine's run for id, created (in the model too) on first sight. NULL if out of memory. */
static eng_run *run_get(at_engine *self, const char *id, int *index)
{
    int i = at_model_add_run(self->model, id, NULL, NULL);
    if (i < 0)
        return NULL;
    *index = i;
    if (i < self->nruns && self->runs[i])
        return self->runs[i];
    if (i >= self->nruns) {
        eng_run **nr = realloc(self->runs, (size_t)(i + 1) * sizeof *nr);
        if (!nr)
            return NULL;
        for (int k = self->nruns; k <= i; k++)
            nr[k] = NULL;
        self->runs = nr;
        self->nruns = i + 1;
    }
    eng_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->id, sizeof r->id, "%s", id);
    r->last_seq = -1;
    r->open_step = -1;
    for (int s = 0; s < AT_SPACE_COUNT; s++) {
        r->trk[s] = at_phase_tracker_new(NULL);
        if (!r->trk[s]) {
            run_free(r);
            return NULL;
        }
    }
    if (!self->shared_log && !(self->o.record && !strcmp(self->o.record, "-"))) {
        char path[512];
        int st;
        at_runlog_default_path(path, sizeof path, id);
        r->log = at_runlog_open(path, &st);
        if (self->o.notes)
            fprintf(self->o.notes,
                    r->log ? "alphatop: recording run %s to %s\n"
                           : "alphatop: cannot record run %s to %s\n",
                    id, path);
        if (!r->log)
            at_model_add_event(self->model, i, -1, -1, AT_EVENT_ERROR,
                               "cannot open the run log: this run is not recorded");
    }
    self->runs[i] = r;
    return r;
}

static snap *snap_find(eng_run *r, int64_t step)
{
    for (int i = 0; i < r->nsnaps; i++)
        if (r->snaps[i].step == step)
            return &r->snaps[i];
    return NULL;
}

static void snap_remove(at_engine *self, eng_run *r, snap *s)
{
    self->queued_bytes -= s->bytes;
    int i = (int)(s - r->snaps);
    memmove(&r->snaps[i], &r->snaps[i + 1], (size_t)(r->nsnaps - i - 1) * sizeof *s);
    r->nsnaps--;
}

/* ---- results ---------------------------------------------------------------------------- */

static const char *space_name(at_space s)
{
    return s == AT_SPACE_DELTA ? "delta" : "w";
}

static void stop_fire(at_engine *self, int run, eng_run *r, const at_stop_verdict *v);

/* Closes the trackers' snapshot at step: phase events, stop rules, durable log. */
static void tracker_finish(at_engine *self, int run, eng_run *r, int64_t step)
{
    for (int sp = 0; sp < AT_SPACE_COUNT; sp++) {
        if (!r->fed[sp])
            continue;
        r->fed[sp] = 0;
        const at_phase_event *ev;
        size_t nev = 0;
        if (at_phase_tracker_end_snapshot(r->trk[sp], step, &ev, &nev) != AT_OK)
            continue;
        for (size_t i = 0; i < nev; i++) {
            cJSON *o = event_obj(r, ev[i].kind == AT_EVENT_LAYER_PHASE ? "phase" : "run_phase",
                                 ev[i].step, ev[i].layer);
            cJSON_AddStringToObject(o, "view", space_name((at_space)sp));
            if (ev[i].kind == AT_EVENT_LAYER_PHASE) {
                cJSON_AddStringToObject(o, "from", at_layer_phase_name(ev[i].from));
                cJSON_AddStringToObject(o, "to", at_layer_phase_name(ev[i].to));
            } else {
                cJSON_AddStringToObject(o, "from", at_run_phase_name(ev[i].from));
                cJSON_AddStringToObject(o, "to", at_run_phase_name(ev[i].to));
            }
            cJSON_AddNumberToObject(o, "since", (double)ev[i].since_step);
            char text[300];
            snprintf(text, sizeof text, "%s%s", sp == AT_SPACE_DELTA ? "delta view: " : "",
                     ev[i].text);
            cJSON_AddStringToObject(o, "text", text);
            /* The tracker is the one source of phase events: its hysteresis keeps a layer
             * whose alpha hovers at a threshold from flapping in the view. */
            if (ev[i].kind == AT_EVENT_LAYER_PHASE)
                at_model_add_phase_event(self->model, run, (at_space)sp, &ev[i], text);
            else
                at_model_add_run_phase_event(self->model, run, (at_space)sp, &ev[i], text);
            emit(self, r, o);
        }
    }
    at_stop_verdict v;
    if (self->rules && !r->stop_sent && at_stop_rules_eval(self->rules, r->trk[AT_SPACE_W], &v))
        stop_fire(self, run, r, &v);
    at_runlog *log = r->log ? r->log : self->shared_log;
    if (log)
        at_runlog_flush(log);
    self->snapshots_done++;
    if (self->o.max_snapshots > 0 && self->snapshots_done >= self->o.max_snapshots && !r->stop_sent)
        self->done = 1;
}

/* Exact mode: a snapshot whose every layer is analysed. */
static void snapshot_finish(at_engine *self, int run, eng_run *r, snap *s)
{
    int64_t step = s->step;
    self->last_done = s->done;
    snap_remove(self, r, s);
    tracker_finish(self, run, r, step);
}

/* Fast mode: the scheduler may skip a snapshot of a layer (a newer one replaced it), so the
 * trackers' snapshot closes when a result of a later step arrives, or when the scheduler is
 * idle; a late result of an older step counts towards the open snapshot. */
static int64_t fast_open_step(at_engine *self, int run, eng_run *r, int64_t step)
{
    if (r->open_step >= 0 && step > r->open_step && (r->fed[0] || r->fed[1]))
        tracker_finish(self, run, r, r->open_step);
    if (step > r->open_step)
        r->open_step = step;
    return r->open_step;
}

/* Appends the layer's kind and shape to a layer line, so a replay can rebuild the layer. */
static void add_shape(cJSON *o, const at_layer_info *li)
{
    double sh[4];
    for (int i = 0; i < li->ndim; i++)
        sh[i] = (double)li->shape[i];
    cJSON_AddStringToObject(o, "kind", at_proto_kind_name((at_proto_kind)li->kind));
    cJSON_AddItemToObject(o, "shape", cJSON_CreateDoubleArray(sh, li->ndim));
}

static void result_handle(at_engine *self, at_job *job)
{
    int run = job->run;
    eng_run *r = run < self->nruns ? self->runs[run] : NULL;
    const at_layer_info *li = at_model_layer(self->model, run, job->layer);
    if (!r || !li)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "layer");
    cJSON_AddStringToObject(o, "run", r->id);
    cJSON_AddNumberToObject(o, "step", (double)job->step);
    cJSON_AddStringToObject(o, "view", space_name(job->space));
    if (job->rc < 0) {
        at_fmt_json_error(o, li->name, job->error);
        add_shape(o, li);
        emit(self, r, o);
        event_emit(self, run, r, job->layer, job->step, AT_EVENT_ERROR,
                   event_obj(r, "error", job->step, li->name), "%s%s: %s (%s)",
                   job->space == AT_SPACE_DELTA ? "delta view: " : "", li->name,
                   at_strerror(job->rc), job->error);
    } else {
        unsigned flags = AT_FMT_DETX | AT_FMT_TRAPS;
        at_fmt_json(o, li->name, &job->m, flags);
        add_shape(o, li);
        emit(self, r, o);
        at_model_add_cell(self->model, run, job->layer, job->space, job->step, &job->m);
        if (job->evals)
            at_model_set_spectrum(self->model, run, job->layer, job->space, job->step, job->evals,
                                  job->num_evals, job->m.xmin, job->m.alpha);
        if (self->o.record_spectra && job->evals) {
            cJSON *sp = cJSON_CreateObject();
            cJSON_AddStringToObject(sp, "type", "spectrum");
            cJSON_AddStringToObject(sp, "run", r->id);
            cJSON_AddNumberToObject(sp, "step", (double)job->step);
            cJSON_AddStringToObject(sp, "view", space_name(job->space));
            cJSON_AddStringToObject(sp, "name", li->name);
            cJSON_AddItemToObject(sp, "evals",
                                  cJSON_CreateDoubleArray(job->evals, (int)job->num_evals));
            char *s = cJSON_PrintUnformatted(sp);
            cJSON_Delete(sp);
            if (s)
                log_write(self, r, s, strlen(s));
            cJSON_free(s);
        }
        if (job->m.status != AT_FIT_SKIPPED) {
            int64_t tstep = self->o.fast ? fast_open_step(self, run, r, job->step) : job->step;
            at_phase_tracker_feed_layer(r->trk[job->space], tstep, li->name, &job->m, job->max_abs);
            r->fed[job->space]++;
        }
        if (job->space == AT_SPACE_W && job->layer < r->ntraps) {
            int64_t before = r->traps[job->layer];
            if (job->m.num_traps > 0 && before == 0)
                event_emit(self, run, r, job->layer, job->step, AT_EVENT_TRAP,
                           event_obj(r, "trap", job->step, li->name),
                           "%s: %lld correlation trap%s appeared (largest %.2fx the bulk edge)",
                           li->name, (long long)job->m.num_traps, job->m.num_traps == 1 ? "" : "s",
                           job->m.trap_max_ratio);
            r->traps[job->layer] = job->m.num_traps;
        }
    }
    snap *s = self->o.fast ? NULL : snap_find(r, job->step);
    if (s) {
        s->done++;
        if (s->ended && s->done >= s->submitted)
            snapshot_finish(self, run, r, s);
    }
}

/* ---- incoming messages ------------------------------------------------------------------ */

static void on_hello(at_engine *self, const at_proto_msg *msg)
{
    int run;
    eng_run *r = run_get(self, msg->run, &run);
    if (!r)
        return;
    const at_proto_hello *h = &msg->u.hello;
    at_run_info *ri = at_model_run(self->model, run);
    /* The model's fields are shorter than the wire's: long names are cut. */
    snprintf(ri->name, sizeof ri->name, "%.*s", (int)sizeof ri->name - 1, h->model);
    snprintf(ri->host, sizeof ri->host, "%.*s", (int)sizeof ri->host - 1, h->host);
    ri->interval = h->interval;
    ri->ended = 0;
    at_model_touch(self->model);
    /* The agent repeats its hello after reconnecting: announce a run (or a restart) once. */
    if (r->hello_pid == h->pid && h->pid)
        return;
    r->hello_pid = h->pid;
    cJSON *o = event_obj(r, "hello", -1, NULL);
    cJSON_AddStringToObject(o, "model", h->model);
    cJSON_AddStringToObject(o, "framework", h->framework);
    cJSON_AddStringToObject(o, "host", h->host);
    cJSON_AddNumberToObject(o, "pid", (double)h->pid);
    cJSON_AddNumberToObject(o, "interval", (double)h->interval);
    cJSON_AddNumberToObject(o, "rank", (double)h->rank);
    cJSON_AddNumberToObject(o, "world_size", (double)h->world_size);
    event_emit(self, run, r, -1, -1, AT_EVENT_INFO, o,
               "run %s started: %s (%s) on %s, pid %lld, a snapshot every %lld steps", r->id,
               h->model[0] ? h->model : "unnamed model", h->framework, h->host, (long long)h->pid,
               (long long)h->interval);
}

static void note_dropped(at_engine *self, int run, eng_run *r, int64_t dropped, int64_t step)
{
    if (dropped <= r->dropped)
        return;
    int64_t n = dropped - r->dropped;
    r->dropped = dropped;
    at_run_info *ri = at_model_run(self->model, run);
    ri->dropped += n;
    cJSON *o = event_obj(r, "drop", step, NULL);
    cJSON_AddNumberToObject(o, "dropped", (double)n);
    event_emit(self, run, r, -1, step, AT_EVENT_DROP, o,
               "the trainer skipped %lld snapshot%s (monitor busy or absent)", (long long)n,
               n == 1 ? "" : "s");
}

/* The base weights of layer name (sent by the trainer, else from --base) into *t; 0 if none.
 * Shapes are checked by the analysis (a transposed base is accepted there). */
static int base_for(at_engine *self, eng_run *r, const char *name, at_tensor *t)
{
    for (int i = r->nbase - 1; i >= 0; i--)
        if (!strcmp(r->base[i].name, name)) {
            *t = (at_tensor){.data = r->base[i].data,
                             .dtype = AT_DTYPE_F32,
                             .kind = r->base[i].kind,
                             .ndim = r->base[i].ndim};
            memcpy(t->shape, r->base[i].shape, sizeof t->shape);
            return 1;
        }
    const at_ckpt_layer *l = self->base ? at_ckpt_find(self->base, name) : NULL;
    if (!l || l->err != AT_OK)
        return 0;
    *t = l->tensor;
    return 1;
}

/* The layer's shape as core wants it: conv1d (out, in, k) becomes (out, in, 1, k). */
static int core_shape(const at_proto_layer *l, at_layer_kind *kind, int64_t shape[4])
{
    switch (l->kind) {
    case AT_PROTO_KIND_LINEAR:
    case AT_PROTO_KIND_EMBEDDING:
        *kind = (at_layer_kind)l->kind;
        memcpy(shape, l->shape, 2 * sizeof *shape);
        return 2;
    case AT_PROTO_KIND_CONV2D:
        *kind = AT_KIND_CONV2D;
        memcpy(shape, l->shape, 4 * sizeof *shape);
        return 4;
    case AT_PROTO_KIND_CONV1D:
        if (l->ndim == 2) {
            *kind = AT_KIND_CONV1D;
            memcpy(shape, l->shape, 2 * sizeof *shape);
            return 2;
        }
        *kind = AT_KIND_CONV2D;
        shape[0] = l->shape[0];
        shape[1] = l->shape[1];
        shape[2] = 1;
        shape[3] = l->shape[2];
        return 4;
    default:
        return 0;
    }
}

static void store_base(at_engine *self, int run, eng_run *r, const at_proto_layer *l,
                       const void *data, int ndim, const int64_t *shape, at_layer_kind kind)
{
    at_job *tmp = at_job_new(data, (at_dtype)l->dtype, kind, ndim, shape);
    base_layer *nb = tmp ? realloc(r->base, (size_t)(r->nbase + 1) * sizeof *nb) : NULL;
    if (!nb) {
        at_job_free(tmp);
        event_emit(self, run, r, -1, l->step, AT_EVENT_ERROR, event_obj(r, "error", -1, l->name),
                   "%s: out of memory for the base weights", l->name);
        return;
    }
    r->base = nb;
    base_layer *b = &r->base[r->nbase++];
    snprintf(b->name, sizeof b->name, "%s", l->name);
    b->kind = kind;
    b->ndim = ndim;
    memcpy(b->shape, shape, (size_t)ndim * sizeof *shape);
    b->data = tmp->data; /* the job's converted copy becomes the base */
    tmp->data = NULL;
    at_job_free(tmp);
    cJSON *o = event_obj(r, "info", -1, l->name);
    event_emit(self, run, r, -1, -1, AT_EVENT_INFO, o,
               "%s: base weights received; later snapshots are analysed as W and W - W_base",
               l->name);
}

static void record_weights(at_engine *self, eng_run *r, const at_proto_layer *l)
{
    at_runlog *log = r->log ? r->log : self->shared_log;
    if (!log)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "weights");
    cJSON_AddStringToObject(o, "run", r->id);
    cJSON_AddNumberToObject(o, "step", (double)l->step);
    cJSON_AddStringToObject(o, "name", l->name);
    cJSON_AddStringToObject(o, "kind", at_proto_kind_name(l->kind));
    cJSON_AddStringToObject(o, "dtype", at_proto_dtype_name(l->dtype));
    cJSON_AddBoolToObject(o, "base", l->base);
    double sh[AT_PROTO_MAX_DIMS];
    for (int i = 0; i < l->ndim; i++)
        sh[i] = (double)l->shape[i];
    cJSON_AddItemToObject(o, "shape", cJSON_CreateDoubleArray(sh, l->ndim));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s && at_runlog_append_blob(log, s, strlen(s), l->data, l->nbytes) != AT_OK)
        at_model_add_event(self->model, -1, -1, -1, AT_EVENT_ERROR, at_runlog_last_error(log));
    cJSON_free(s);
}

static void submit(at_engine *self, int run, eng_run *r, snap *s, int layer, at_space space,
                   at_job *job, int64_t step)
{
    job->run = run;
    job->layer = layer;
    job->space = space;
    job->step = step;
    job->submit_time = mono_now();
    size_t bytes = sizeof(float);
    for (int i = 0; i < job->t.ndim; i++)
        bytes *= (size_t)job->t.shape[i];
    if (at_worker_submit(self->worker, job) == AT_OK) {
        if (s) {
            s->submitted++;
            s->bytes += bytes;
            self->queued_bytes += bytes;
        }
        return;
    }
    at_job_free(job);
    event_emit(self, run, r, layer, step, AT_EVENT_ERROR, event_obj(r, "error", step, NULL),
               "out of memory queueing a layer");
}

/* The snapshot of run at step, opened (and its column added) on its first layer. NULL in
 * fast mode, or when too many snapshots are in flight. */
static snap *snap_open(at_engine *self, int run, eng_run *r, int64_t step)
{
    if (self->o.fast) {
        at_model_add_snapshot(self->model, run, step, wall_now());
        return NULL;
    }
    snap *s = snap_find(r, step);
    if (!s && r->nsnaps < MAX_INFLIGHT) {
        s = &r->snaps[r->nsnaps++];
        memset(s, 0, sizeof *s);
        s->step = step;
        s->t_first = mono_now();
        at_model_add_snapshot(self->model, run, step, wall_now());
    }
    if (s)
        s->received++;
    return s;
}

/* Room for layer in the per-layer trap counts. */
static void traps_grow(eng_run *r, int layer)
{
    if (layer < r->ntraps)
        return;
    int64_t *nt = realloc(r->traps, (size_t)(layer + 1) * sizeof *nt);
    if (!nt)
        return;
    for (int i = r->ntraps; i <= layer; i++)
        nt[i] = -1;
    r->traps = nt;
    r->ntraps = layer + 1;
}

/* The name of a LoRA pair: its half's name with lora_A / lora_B replaced by lora_BA
 * ("fc1.lora_A" -> "fc1.lora_BA", "q.lora_B.default.weight" -> "q.lora_BA.default.weight"). */
static void lora_pair_name(const char *name, char *out, size_t cap)
{
    const char *p = strstr(name, "lora_A");
    if (!p)
        p = strstr(name, "lora_B");
    size_t head = p ? (size_t)(p - name) : strlen(name);
    const char *tail = p ? p + 6 : "";
    const char *mid = p ? "lora_BA" : ".lora_BA";
    /* Pieces copied with explicit lengths: the result is cut at cap, never overflows. */
    size_t n = 0;
    const char *parts[3] = {name, mid, tail};
    size_t lens[3] = {head, strlen(mid), strlen(tail)};
    for (int k = 0; k < 3; k++) {
        size_t c = lens[k] < cap - 1 - n ? lens[k] : cap - 1 - n;
        memcpy(out + n, parts[k], c);
        n += c;
    }
    out[n] = '\0';
}

/* One half of a LoRA adapter: kept until the other half of the same snapshot arrives, then
 * the pair is analysed as the update B A (delta view) from its r singular values. */
static void on_lora_half(at_engine *self, int run, eng_run *r, const at_proto_layer *l)
{
    if (self->o.fast) {
        if (!r->said_lora++)
            event_emit(self, run, r, -1, l->step, AT_EVENT_INFO,
                       event_obj(r, "info", l->step, l->name),
                       "%s: LoRA adapters are analysed in exact mode only", l->name);
        return;
    }
    int is_b = l->kind == AT_PROTO_KIND_LORA_B;
    char pair[AT_PROTO_MAX_NAME];
    lora_pair_name(l->name, pair, sizeof pair);
    snap *s = snap_open(self, run, r, l->step);
    at_job *half = at_job_new(l->data, (at_dtype)l->dtype, AT_KIND_LINEAR, 2, l->shape);
    if (!half || !s) {
        at_job_free(half);
        return;
    }
    lora_half h = {.is_b = is_b, .step = l->step, .job = half}, other = {0};
    snprintf(h.pair, sizeof h.pair, "%s", pair);
    for (int i = 0; i < r->nlora; i++)
        if (!strcmp(r->lora[i].pair, pair)) {
            other = r->lora[i];
            r->lora[i] = r->lora[--r->nlora];
            break;
        }
    if (!other.job || other.step != l->step || other.is_b == is_b) {
        at_job_free(other.job); /* a stale half of an older snapshot */
        lora_half *nl = realloc(r->lora, (size_t)(r->nlora + 1) * sizeof *nl);
        if (!nl) {
            at_job_free(half);
            return;
        }
        r->lora = nl;
        r->lora[r->nlora++] = h;
        return;
    }
    at_job *b = is_b ? half : other.job, *a = is_b ? other.job : half;
    b->lora_a = a->t;
    b->data2 = a->data;
    a->data = NULL;
    at_job_free(a);
    int64_t shape[2] = {b->t.shape[0], b->lora_a.shape[1]};
    int layer = at_model_add_layer(self->model, run, pair, AT_KIND_LINEAR, 2, shape);
    if (layer < 0) {
        at_job_free(b);
        return;
    }
    submit(self, run, r, s, layer, AT_SPACE_DELTA, b, l->step);
}

static void on_layer(at_engine *self, const at_proto_msg *msg)
{
    int run;
    eng_run *r = run_get(self, msg->run, &run);
    if (!r)
        return;
    const at_proto_layer *l = &msg->u.layer;
    if (self->o.record_weights)
        record_weights(self, r, l);
    if (l->kind == AT_PROTO_KIND_LORA_A || l->kind == AT_PROTO_KIND_LORA_B) {
        if (!l->base)
            on_lora_half(self, run, r, l);
        return;
    }
    at_layer_kind kind;
    int64_t shape[4];
    int ndim = core_shape(l, &kind, shape);
    if (!ndim)
        return;
    const void *data = l->data; /* the feed already made it little-endian */
    if (l->base) {
        store_base(self, run, r, l, data, ndim, shape, kind);
        return;
    }
    int layer = at_model_add_layer(self->model, run, l->name, kind, ndim, shape);
    snap *s = snap_open(self, run, r, l->step);
    if (layer < 0 || (!s && !self->o.fast)) {
        note_dropped(self, run, r, r->dropped + (s || layer < 0 ? 0 : 1), l->step);
        return;
    }
    traps_grow(r, layer);
    at_job *job = at_job_new(data, (at_dtype)l->dtype, kind, ndim, shape);
    if (!job) {
        event_emit(self, run, r, layer, l->step, AT_EVENT_ERROR,
                   event_obj(r, "error", l->step, l->name), "%s: out of memory for a snapshot",
                   l->name);
        return;
    }
    at_tensor base;
    at_job *delta = NULL;
    if (base_for(self, r, l->name, &base)) {
        delta = at_job_new(data, (at_dtype)l->dtype, kind, ndim, shape);
        if (delta)
            delta->base = base;
    }
    submit(self, run, r, s, layer, AT_SPACE_W, job, l->step);
    if (delta)
        submit(self, run, r, s, layer, AT_SPACE_DELTA, delta, l->step);
}

static void on_snapshot_end(at_engine *self, const at_proto_msg *msg)
{
    int run;
    eng_run *r = run_get(self, msg->run, &run);
    if (!r)
        return;
    const at_proto_snapshot_end *e = &msg->u.snapshot_end;
    note_dropped(self, run, r, e->dropped, e->step);
    snap *s = snap_find(r, e->step);
    if (!s)
        return;
    s->ended = 1;
    if (e->layers > s->received && !self->base && !r->nbase) {
        cJSON *o = event_obj(r, "drop", e->step, NULL);
        event_emit(self, run, r, -1, e->step, AT_EVENT_DROP, o,
                   "snapshot at step %lld: %d of %lld layers arrived", (long long)e->step,
                   s->received, (long long)e->layers);
    }
    /* Back-pressure: drop the oldest complete snapshot the worker has not started. */
    while (self->queued_bytes > QUEUE_BUDGET_BYTES || r->nsnaps > MAX_INFLIGHT / 2) {
        snap *q = NULL;
        for (int i = 0; i + 1 < r->nsnaps && !q; i++)
            if (r->snaps[i].ended && r->snaps[i].done == 0 && !r->snaps[i].dropped)
                q = &r->snaps[i];
        if (!q)
            break;
        int64_t step = q->step;
        int removed = at_worker_cancel(self->worker, run, step);
        q->submitted -= removed;
        cJSON *o = event_obj(r, "drop", step, NULL);
        cJSON_AddNumberToObject(o, "dropped", 1);
        at_model_run(self->model, run)->dropped++;
        event_emit(self, run, r, -1, step, AT_EVENT_DROP, o,
                   "snapshot at step %lld skipped: analysis is behind the trainer",
                   (long long)step);
        if (q->done >= q->submitted) {
            snap_remove(self, r, q);
        } else {
            /* Its running layer finishes it; only the memory is released now. */
            self->queued_bytes -= q->bytes;
            q->bytes = 0;
            q->dropped = 1;
        }
    }
    s = snap_find(r, e->step);
    if (s && s->done >= s->submitted)
        snapshot_finish(self, run, r, s);
}

static void on_scalars(at_engine *self, const at_proto_msg *msg)
{
    int run;
    eng_run *r = run_get(self, msg->run, &run);
    if (!r)
        return;
    const at_proto_scalars *sc = &msg->u.scalars;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "scalars");
    cJSON_AddStringToObject(o, "run", r->id);
    cJSON_AddNumberToObject(o, "step", (double)sc->step);
    cJSON *vals = cJSON_AddObjectToObject(o, "values");
    for (int i = 0; i < sc->n; i++) {
        const at_proto_scalar *v = &sc->values[i];
        if (isfinite(v->value)) {
            cJSON_AddNumberToObject(vals, v->name, v->value);
            at_model_add_scalar(self->model, run, v->name, sc->step, v->value);
            at_phase_tracker_feed_scalar(r->trk[AT_SPACE_W], sc->step, v->name, v->value);
        } else {
            cJSON_AddNullToObject(vals, v->name);
        }
    }
    at_run_info *ri = at_model_run(self->model, run);
    if (sc->step > ri->step) {
        ri->step = sc->step;
        at_model_touch(self->model);
    }
    emit(self, r, o);
    note_dropped(self, run, r, sc->dropped, sc->step);
}

static void on_goodbye(at_engine *self, const at_proto_msg *msg)
{
    int run;
    eng_run *r = run_get(self, msg->run, &run);
    if (!r)
        return;
    at_run_info *ri = at_model_run(self->model, run);
    ri->ended = 1;
    if (msg->u.goodbye.step > ri->step)
        ri->step = msg->u.goodbye.step;
    at_model_touch(self->model);
    cJSON *o = event_obj(r, "goodbye", msg->u.goodbye.step, NULL);
    cJSON_AddNumberToObject(o, "dropped", (double)msg->u.goodbye.dropped);
    event_emit(self, run, r, -1, msg->u.goodbye.step, AT_EVENT_INFO, o, "run %s ended at step %lld",
               r->id, (long long)msg->u.goodbye.step);
    /* A trainer that stopped without acknowledging still stopped. */
    if (r->stop_sent)
        r->acked = 1;
    at_runlog *log = r->log ? r->log : self->shared_log;
    if (log)
        at_runlog_flush(log);
}

static void on_stop_ack(at_engine *self, const at_proto_msg *msg)
{
    int run;
    eng_run *r = run_get(self, msg->run, &run);
    if (!r)
        return;
    r->acked = 1;
    cJSON *o = event_obj(r, "ack", -1, NULL);
    event_emit(self, run, r, -1, -1, AT_EVENT_STOP, o, "run %s acknowledged the stop: %s", r->id,
               msg->u.reason);
}

static void handle_msg(at_engine *self, const at_proto_msg *msg)
{
    switch (msg->type) {
    case AT_PROTO_HELLO:
        on_hello(self, msg);
        break;
    case AT_PROTO_LAYER:
        on_layer(self, msg);
        break;
    case AT_PROTO_SNAPSHOT_END:
        on_snapshot_end(self, msg);
        break;
    case AT_PROTO_SCALARS:
        on_scalars(self, msg);
        break;
    case AT_PROTO_GOODBYE:
        on_goodbye(self, msg);
        break;
    case AT_PROTO_STOP_ACK:
        on_stop_ack(self, msg);
        break;
    default:
        break;
    }
}

/* ---- stop ------------------------------------------------------------------------------- */

static int send_stop(at_engine *self, int run, eng_run *r, const char *reason)
{
    int rc = at_feed_stop(self->feed, r->id, reason);
    at_run_info *ri = at_model_run(self->model, run);
    ri->stop_requested = 1;
    at_model_touch(self->model);
    r->stop_sent = 1;
    r->stop_deadline = mono_now() + self->o.stop_ack_timeout;
    return rc;
}

static void stop_fire(at_engine *self, int run, eng_run *r, const at_stop_verdict *v)
{
    char reason[AT_PROTO_MAX_TEXT];
    snprintf(reason, sizeof reason, "alphatop --stop-on %s: %s", v->rule, v->evidence);
    int rc = send_stop(self, run, r, reason);
    cJSON *o = event_obj(r, "stop", v->step, NULL);
    cJSON_AddStringToObject(o, "rule", v->rule);
    cJSON_AddStringToObject(o, "evidence", v->evidence);
    event_emit(self, run, r, -1, v->step, AT_EVENT_STOP, o, "stop rule %s fired at step %lld: %s%s",
               v->rule, (long long)v->step, v->evidence,
               rc == AT_OK ? "" : " (could not send stop to the trainer)");
    self->exit_code = AT_EXIT_STOPPED;
}

int at_engine_request_stop(at_engine *self, int run, const char *reason)
{
    if (run < 0 || run >= self->nruns || !self->runs[run])
        return AT_ERR_ARG;
    eng_run *r = self->runs[run];
    int rc = send_stop(self, run, r, reason);
    cJSON *o = event_obj(r, "stop", -1, NULL);
    cJSON_AddStringToObject(o, "rule", "user");
    event_emit(self, run, r, -1, -1, AT_EVENT_STOP, o, "stop requested: %s%s", reason,
               rc == AT_OK ? "" : " (could not send it)");
    return rc;
}

/* A fired rule ends the engine once its trainer acknowledged or the timeout passed. */
static void check_stops(at_engine *self)
{
    if (self->exit_code != AT_EXIT_STOPPED)
        return;
    double now = mono_now();
    for (int i = 0; i < self->nruns; i++) {
        eng_run *r = self->runs[i];
        if (!r || !r->stop_sent)
            continue;
        if (r->acked) {
            self->done = 1;
        } else if (now > r->stop_deadline) {
            event_emit(self, i, r, -1, -1, AT_EVENT_STOP, event_obj(r, "stop", -1, NULL),
                       "run %s did not acknowledge the stop within %.0f s", r->id,
                       self->o.stop_ack_timeout);
            r->acked = 1;
            self->done = 1;
        }
    }
}

/* ---- the loop --------------------------------------------------------------------------- */

static void update_state(at_engine *self)
{
    at_monitor_state *st = at_model_state(self->model);
    int pending = at_worker_pending(self->worker), done = 0, inflight = 0;
    double oldest = 0, now = mono_now();
    for (int i = 0; i < self->nruns; i++)
        for (int k = 0; self->runs[i] && k < self->runs[i]->nsnaps; k++) {
            const snap *s = &self->runs[i]->snaps[k];
            double age = now - s->t_first;
            oldest = age > oldest ? age : oldest;
            done += s->done;
            inflight = 1;
        }
    double behind = pending ? oldest : 0;
    if (!inflight)
        done = self->last_done;
    if (st->layers_pending != pending || st->layers_done != done ||
        fabs(st->behind_seconds - behind) > 0.5) {
        st->layers_pending = pending;
        st->layers_done = done;
        st->behind_seconds = behind;
        at_model_touch(self->model);
    }
}

static void on_reject(at_engine *self, const char *what)
{
    event_emit(self, -1, NULL, -1, -1, AT_EVENT_ERROR, event_obj(NULL, "error", -1, NULL),
               "rejected a message: %s", what);
}

int at_engine_step(at_engine *self)
{
    uint64_t v0 = at_model_version(self->model);
    /* Bounded, so a flood of layers cannot starve the results and the view. */
    for (int i = 0; i < 256; i++) {
        at_feed_msg *m = NULL;
        at_proto_error e = {0};
        int rc = at_feed_recv(self->feed, 0, &m, &e);
        if (rc == AT_ERR_AGAIN)
            break;
        if (rc == AT_ERR_NET) {
            on_reject(self, at_feed_last_error(self->feed));
            break;
        }
        if (rc < 0) {
            on_reject(self, e.message);
            continue;
        }
        handle_msg(self, &m->msg);
        at_feed_msg_free(m);
    }
    at_job *job;
    while ((job = at_worker_poll(self->worker))) {
        result_handle(self, job);
        at_job_free(job);
    }
    if (self->o.fast && at_worker_pending(self->worker) == 0)
        for (int i = 0; i < self->nruns; i++) {
            eng_run *r = self->runs[i];
            if (r && r->open_step >= 0 && (r->fed[0] || r->fed[1]))
                tracker_finish(self, i, r, r->open_step);
        }
    check_stops(self);
    update_state(self);
    return at_model_version(self->model) != v0;
}

int at_engine_pollitems(at_engine *self, zmq_pollitem_t *items, int max)
{
    int n = 0;
    if (n < max)
        items[n++] = (zmq_pollitem_t){.socket = at_feed_socket(self->feed), .events = ZMQ_POLLIN};
    if (n < max)
        items[n++] = (zmq_pollitem_t){.fd = at_worker_fd(self->worker), .events = ZMQ_POLLIN};
    return n;
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

void at_engine_pause(at_engine *self, int paused)
{
    at_worker_pause(self->worker, paused);
    at_model_state(self->model)->paused = paused;
    at_model_touch(self->model);
}

const char *at_engine_endpoint(const at_engine *self)
{
    return self->endpoint;
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
    at_worker_opts wo;
    at_worker_opts_default(&wo);
    wo.fast = opts->fast;
    wo.threads = opts->threads;
    self->worker = at_worker_new(&wo, &st);
    if (!self->worker) {
        snprintf(err, errlen, "cannot start the analysis worker: %s", at_strerror(st));
        goto fail;
    }
    at_feed_opts fo;
    at_feed_opts_default(&fo);
    fo.endpoint = opts->endpoint;
    fo.curve_keyfile = opts->curve_key;
    fo.curve_allow_file = opts->curve_allow;
    fo.allow_insecure = opts->allow_insecure;
    self->feed = at_feed_new(&fo, err, errlen);
    if (!self->feed)
        goto fail;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", at_feed_endpoint(self->feed));
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
    at_worker_free(self->worker);
    at_feed_free(self->feed);
    for (int i = 0; i < self->nruns; i++)
        run_free(self->runs[i]);
    free(self->runs);
    at_runlog_close(self->shared_log);
    at_ckpt_close(self->base);
    at_stop_rules_free(self->rules);
    free(self);
}
