/* SPDX-License-Identifier: Apache-2.0 */
/* replay.c -- a run log back into the model or out as JSON lines (see replay.h). */
#include "replay.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/phase.h"

struct at_replay {
    at_runlog_reader *r;
    at_record_decoder *d;
};

at_replay *at_replay_open(const char *path, int follow, int *status, char *err, size_t errlen)
{
    int st = AT_ERR_NOMEM;
    at_replay *self = calloc(1, sizeof *self);
    if (self)
        self->r = at_runlog_reader_open(path, &st);
    if (self && self->r)
        self->d = at_record_decoder_new(&st);
    if (!self || !self->d) {
        snprintf(err, errlen, "%s: %s", path,
                 st == AT_ERR_FORMAT ? "not an alphatop run log"
                 : st == AT_ERR_IO   ? "cannot open"
                                     : "out of memory");
        at_replay_close(self);
        if (status)
            *status = st;
        return NULL;
    }
    if (follow)
        at_runlog_reader_follow(self->r);
    if (status)
        *status = AT_OK;
    return self;
}

void at_replay_close(at_replay *self)
{
    if (!self)
        return;
    at_record_decoder_free(self->d);
    at_runlog_reader_close(self->r);
    free(self);
}

int at_replay_read(at_replay *self, int max, at_replay_fn fn, void *ctx)
{
    at_runlog_record raw;
    at_record rec;
    int n = 0, rc = 0;
    for (int i = 0; i < max && (rc = at_runlog_reader_next(self->r, &raw)) == 1; i++)
        if (raw.type == AT_RUNLOG_JSON)
            n += fn(ctx, &raw,
                    at_record_decode(self->d, raw.json, raw.json_len, &rec) == AT_OK ? &rec : NULL);
    return rc < 0 ? rc : n;
}

const char *at_replay_note(const at_replay *self)
{
    return at_runlog_reader_note(self->r);
}

int at_replay_each(const char *path, at_replay_fn fn, void *ctx, char *note, size_t notelen)
{
    int st;
    at_replay *self = at_replay_open(path, 0, &st, note, notelen);
    if (!self)
        return st;
    int n = at_replay_read(self, INT_MAX, fn, ctx);
    snprintf(note, notelen, "%s", at_replay_note(self));
    at_replay_close(self);
    return n;
}

static void apply_layer(at_model *model, int run, const at_record *r)
{
    const at_record_layer *l = &r->u.layer;
    int layer =
        at_model_add_layer(model, run, l->name, l->kind, l->ndim, l->ndim ? l->shape : NULL);
    if (layer < 0 || r->step < 0)
        return;
    at_model_add_snapshot(model, run, r->step, 0);
    if (l->error)
        at_model_add_event(model, run, layer, r->step, AT_EVENT_ERROR, l->error);
    else
        at_model_add_cell(model, run, layer, l->view, r->step, &l->m);
}

static void apply_event(at_model *model, int run, const at_record *r)
{
    const at_record_event *e = &r->u.event;
    if (e->kind == AT_RECORD_EV_PHASE) {
        /* A layer phase change as the live engine had it from core's tracker. */
        at_phase_event ev = {.kind = AT_EVENT_LAYER_PHASE,
                             .step = r->step,
                             .since_step = e->phase.since,
                             .layer = e->layer ? e->layer : "",
                             .from = e->phase.from,
                             .to = e->phase.to};
        if (run >= 0)
            at_model_add_phase_event(model, run, e->phase.view, &ev, e->text);
        return;
    }
    if (e->kind == AT_RECORD_EV_RUN_PHASE && run >= 0) {
        /* A run phase change, kept with its since step for the verdict row. */
        at_phase_event ev = {.kind = AT_EVENT_RUN_PHASE,
                             .step = r->step,
                             .since_step = e->phase.since,
                             .layer = "",
                             .from = e->phase.from,
                             .to = e->phase.to};
        at_model_add_run_phase_event(model, run, e->phase.view, &ev, e->text);
        return;
    }
    at_run_info *ri = at_model_run(model, run);
    if (ri && e->kind == AT_RECORD_EV_HELLO) {
        snprintf(ri->name, sizeof ri->name, "%s", e->hello.model);
        snprintf(ri->host, sizeof ri->host, "%s", e->hello.host);
        ri->interval = e->hello.interval > 0 ? e->hello.interval : 0;
    }
    if (ri && (e->kind == AT_RECORD_EV_PAUSE || e->kind == AT_RECORD_EV_RESUME))
        ri->paused = e->kind == AT_RECORD_EV_PAUSE;
    if (ri && e->kind == AT_RECORD_EV_GOODBYE) {
        ri->ended = 1;
        ri->paused = 0;
    }
    if (ri && e->kind == AT_RECORD_EV_STOP)
        ri->stop_requested = 1;
    if (ri && e->kind == AT_RECORD_EV_DROP && e->dropped > 0)
        ri->dropped += e->dropped;
    int layer = ri && e->layer ? at_model_find_layer(model, run, e->layer) : -1;
    at_model_add_event(model, run, layer < 0 ? -1 : layer, r->step, at_record_model_kind(e),
                       e->text);
}

static void apply_spectrum(at_model *model, int run, const at_record *r)
{
    const at_record_spectrum *s = &r->u.spectrum;
    int layer = at_model_find_layer(model, run, s->name);
    if (layer < 0 || !s->n)
        return;
    const at_cell *c = NULL;
    int col = at_model_snapshot_at(model, run, r->step);
    if (col >= 0)
        c = at_model_cell(model, run, layer, s->view, col);
    at_model_set_spectrum(model, run, layer, s->view, r->step, s->evals, s->n, NAN,
                          c ? c->v[AT_METRIC_ALPHA] : NAN);
}

static int load_one(void *ctx, const at_runlog_record *raw, const at_record *r)
{
    at_model *model = ctx;
    (void)raw;
    if (!r)
        return 0;
    int run = r->run ? at_model_add_run(model, r->run, NULL, NULL) : -1;
    if (r->type == AT_RECORD_EVENT) {
        apply_event(model, run, r);
    } else if (run >= 0) {
        if (r->type == AT_RECORD_LAYER)
            apply_layer(model, run, r);
        else if (r->type == AT_RECORD_SPECTRUM)
            apply_spectrum(model, run, r);
        else if (r->type == AT_RECORD_SCALARS)
            for (int i = 0; i < r->u.scalars.n; i++)
                if (isfinite(r->u.scalars.values[i].value))
                    at_model_add_scalar(model, run, r->u.scalars.values[i].name, r->step,
                                        r->u.scalars.values[i].value);
    }
    return 1;
}

int at_replay_read_model(at_replay *self, at_model *model, int max)
{
    return at_replay_read(self, max, load_one, model);
}

int at_replay_load(at_model *model, const char *path, char *note, size_t notelen)
{
    int n = at_replay_each(path, load_one, model, note, notelen);
    if (n >= 0) {
        at_monitor_state *st = at_model_state(model);
        st->replay = 1;
        snprintf(st->record, sizeof st->record, "%s", path);
        at_model_touch(model);
    }
    return n;
}

/* replay --headless: what it printed, and what it could not print. */
typedef struct printer {
    FILE *out;
    int skipped; /* records the schema does not read (or cannot write again) */
} printer;

static int print_one(void *ctx, const at_runlog_record *raw, const at_record *r)
{
    printer *p = ctx;
    (void)raw;
    /* Spectra are recorded for the view only; watch --headless never printed them. */
    if (r && r->type == AT_RECORD_SPECTRUM)
        return 0;
    /* A log is untrusted input: every line is the record as the schema writes it again (valid
     * UTF-8 JSON, controls escaped, known fields only), never the stored bytes. For what the
     * monitor wrote, that is the same text. */
    size_t len;
    char *text = r ? at_record_encode(r, &len, NULL) : NULL;
    if (!text) {
        p->skipped++;
        return 0;
    }
    fwrite(text, 1, len, p->out);
    fputc('\n', p->out);
    at_record_text_free(text);
    return 1;
}

int at_replay_read_print(at_replay *self, FILE *out, int max)
{
    printer p = {out, 0};
    int n = at_replay_read(self, max, print_one, &p);
    fflush(out);
    return n;
}

int at_replay_print(FILE *out, const char *path, char *note, size_t notelen)
{
    printer p = {out, 0};
    int n = at_replay_each(path, print_one, &p, note, notelen);
    fflush(out);
    if (n >= 0 && p.skipped) {
        size_t used = strlen(note);
        snprintf(note + used, notelen - used,
                 "%sskipped %d record%s that are not alphatop records (unknown type or kind, or "
                 "not JSON)",
                 used ? "; " : "", p.skipped, p.skipped == 1 ? "" : "s");
    }
    return n;
}
