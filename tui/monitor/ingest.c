/* SPDX-License-Identifier: Apache-2.0 */
/* ingest.c -- messages in, jobs and events out, no socket and no thread (see ingest.h). */
#include "ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "pair.h"

/* One snapshot of a run in flight (exact mode). */
typedef struct snap {
    int64_t step;
    int submitted, done;
    int received; /* layer messages (a LoRA pair is two) */
    int ended;
    int dropped;    /* the rest of it was cancelled (its running layer still finishes) */
    size_t bytes;   /* weights queued for this snapshot */
    double t_first; /* monotonic time the first layer arrived */
} snap;

/* Base weights the trainer sent for a layer, converted to float32. */
typedef struct base_layer {
    char name[AT_PROTO_MAX_NAME];
    at_layer_kind kind;
    int ndim;
    int64_t shape[4];
    float *data;
} base_layer;

/* One half of a LoRA adapter, waiting for the other half of the same snapshot. */
typedef struct lora_half {
    char pair[AT_PROTO_MAX_NAME + 8]; /* the pair's name (at_pair_lora_name) */
    int is_b;                         /* lora_B (out x r), else lora_A (r x in) */
    int64_t step;
    at_job *job; /* its weights */
} lora_half;

typedef struct ing_run {
    char id[AT_PROTO_MAX_ID];
    void *data;  /* the caller's (run_new) */
    snap *snaps; /* opts.max_inflight of them */
    int nsnaps;
    base_layer *base;
    int nbase;
    lora_half *lora;
    int nlora;
    int64_t dropped;         /* snapshots the agent said it dropped (and this side refused) */
    int said_lora;           /* fast mode said it skips adapters */
    int64_t hello_pid;       /* the trainer process of the last hello announced; 0 none */
    int64_t open_step;       /* fast mode: step of the trackers' open snapshot; -1 none */
    int fed[AT_SPACE_COUNT]; /* results fed to each tracker since its last close */
} ing_run;

struct at_ingest {
    at_ingest_opts o;
    at_ingest_hooks h;
    at_model *model;
    ing_run **runs; /* by model run index; NULL where the model has a run ingest has not */
    int nruns;
    size_t queued_bytes; /* sum of snap.bytes over every run */
    int last_done;       /* results of the last snapshot that closed */
};

void at_ingest_opts_default(at_ingest_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_inflight = 32;
    o->queue_budget = (size_t)1 << 30;
}

/* ---- runs ------------------------------------------------------------------------------- */

static void run_free(at_ingest *self, ing_run *r)
{
    if (!r)
        return;
    if (self->h.run_free)
        self->h.run_free(self->h.ctx, r->data);
    for (int i = 0; i < r->nbase; i++)
        free(r->base[i].data);
    free(r->base);
    for (int i = 0; i < r->nlora; i++)
        at_job_free(r->lora[i].job);
    free(r->lora);
    free(r->snaps);
    free(r);
}

int at_ingest_run(at_ingest *self, const char *id)
{
    int i = at_model_add_run(self->model, id, NULL, NULL);
    if (i < 0 || (i < self->nruns && self->runs[i]))
        return i;
    if (i >= self->nruns) {
        ing_run **nr = realloc(self->runs, (size_t)(i + 1) * sizeof *nr);
        if (!nr)
            return AT_ERR_NOMEM;
        for (int k = self->nruns; k <= i; k++)
            nr[k] = NULL;
        self->runs = nr;
        self->nruns = i + 1;
    }
    ing_run *r = calloc(1, sizeof *r);
    snap *snaps = calloc((size_t)self->o.max_inflight, sizeof *snaps);
    if (!r || !snaps) {
        free(r);
        free(snaps);
        return AT_ERR_NOMEM;
    }
    snprintf(r->id, sizeof r->id, "%s", id);
    r->snaps = snaps;
    r->open_step = -1;
    int st = self->h.run_new ? self->h.run_new(self->h.ctx, i, r->id, &r->data) : AT_OK;
    if (st != AT_OK) {
        run_free(self, r);
        return st < 0 ? st : AT_ERR_ARG;
    }
    self->runs[i] = r;
    return i;
}

static ing_run *run_at(const at_ingest *self, int run)
{
    return run >= 0 && run < self->nruns ? self->runs[run] : NULL;
}

const char *at_ingest_run_id(const at_ingest *self, int run)
{
    ing_run *r = run_at(self, run);
    return r ? r->id : NULL;
}

void *at_ingest_run_data(const at_ingest *self, int run)
{
    ing_run *r = run_at(self, run);
    return r ? r->data : NULL;
}

void at_ingest_event(at_ingest *self, int run, int layer, int64_t step, at_record_event e,
                     const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    e.text = text;
    at_record rec = {.type = AT_RECORD_EVENT, .run = at_ingest_run_id(self, run), .step = step};
    rec.u.event = e;
    self->h.event(self->h.ctx, run, layer, &rec);
}

/* ---- snapshots and the trackers --------------------------------------------------------- */

static snap *snap_find(ing_run *r, int64_t step)
{
    for (int i = 0; i < r->nsnaps; i++)
        if (r->snaps[i].step == step)
            return &r->snaps[i];
    return NULL;
}

static void snap_remove(at_ingest *self, ing_run *r, snap *s)
{
    self->queued_bytes -= s->bytes;
    int i = (int)(s - r->snaps);
    memmove(&r->snaps[i], &r->snaps[i + 1], (size_t)(r->nsnaps - i - 1) * sizeof *s);
    r->nsnaps--;
}

/* The snapshot of run at step, opened (and its column added) on its first layer. NULL in
 * fast mode, or when too many snapshots are in flight. */
static snap *snap_open(at_ingest *self, int run, ing_run *r, int64_t step)
{
    if (self->o.fast) {
        at_model_add_snapshot(self->model, run, step, at_clock_wall());
        return NULL;
    }
    snap *s = snap_find(r, step);
    if (!s && r->nsnaps < self->o.max_inflight) {
        s = &r->snaps[r->nsnaps++];
        memset(s, 0, sizeof *s);
        s->step = step;
        s->t_first = at_clock_mono();
        at_model_add_snapshot(self->model, run, step, at_clock_wall());
    }
    if (s)
        s->received++;
    return s;
}

/* Closes the trackers' snapshot at step. */
static void close_trackers(at_ingest *self, int run, ing_run *r, int64_t step)
{
    unsigned spaces = 0;
    for (int sp = 0; sp < AT_SPACE_COUNT; sp++) {
        if (r->fed[sp])
            spaces |= 1u << sp;
        r->fed[sp] = 0;
    }
    self->h.close(self->h.ctx, run, step, spaces);
}

/* Exact mode: a snapshot whose every job came back. */
static void snapshot_finish(at_ingest *self, int run, ing_run *r, snap *s)
{
    int64_t step = s->step;
    self->last_done = s->done;
    snap_remove(self, r, s);
    close_trackers(self, run, r, step);
}

/* Fast mode: the step of the open snapshot a result of step belongs to, closing the open one
 * first when step is later. */
static int64_t fast_open_step(at_ingest *self, int run, ing_run *r, int64_t step)
{
    if (r->open_step >= 0 && step > r->open_step && (r->fed[0] || r->fed[1]))
        close_trackers(self, run, r, r->open_step);
    if (step > r->open_step)
        r->open_step = step;
    return r->open_step;
}

void at_ingest_result(at_ingest *self, const at_job *job)
{
    int run = job->run;
    ing_run *r = run_at(self, run);
    if (!r)
        return;
    if (job->rc == AT_OK && job->m.status != AT_FIT_SKIPPED) {
        int64_t step = self->o.fast ? fast_open_step(self, run, r, job->step) : job->step;
        self->h.feed(self->h.ctx, job, step);
        r->fed[job->space]++;
    }
    snap *s = self->o.fast ? NULL : snap_find(r, job->step);
    if (s) {
        s->done++;
        if (s->ended && s->done >= s->submitted)
            snapshot_finish(self, run, r, s);
    }
}

void at_ingest_idle(at_ingest *self)
{
    for (int i = 0; i < self->nruns; i++) {
        ing_run *r = self->runs[i];
        if (r && r->open_step >= 0 && (r->fed[0] || r->fed[1]))
            close_trackers(self, i, r, r->open_step);
    }
}

void at_ingest_progress(const at_ingest *self, double now, int *layers_done, double *oldest_age)
{
    int done = 0, inflight = 0;
    double oldest = 0;
    for (int i = 0; i < self->nruns; i++)
        for (int k = 0; self->runs[i] && k < self->runs[i]->nsnaps; k++) {
            const snap *s = &self->runs[i]->snaps[k];
            double age = now - s->t_first;
            oldest = age > oldest ? age : oldest;
            done += s->done;
            inflight = 1;
        }
    *layers_done = inflight ? done : self->last_done;
    *oldest_age = oldest;
}

/* ---- layers ----------------------------------------------------------------------------- */

static void note_dropped(at_ingest *self, int run, ing_run *r, int64_t dropped, int64_t step)
{
    if (dropped <= r->dropped)
        return;
    int64_t n = dropped - r->dropped;
    r->dropped = dropped;
    at_model_run(self->model, run)->dropped += n;
    at_ingest_event(self, run, -1, step, (at_record_event){.kind = AT_RECORD_EV_DROP, .dropped = n},
                    "the trainer skipped %lld snapshot%s (monitor busy or absent)", (long long)n,
                    n == 1 ? "" : "s");
}

/* The base weights of layer name (sent by the trainer, else from the checkpoint) into *t; 0 if
 * none. Shapes are checked by the analysis (a transposed base is accepted there). */
static int base_for(at_ingest *self, ing_run *r, const char *name, at_tensor *t)
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
    const at_ckpt_layer *l = self->o.base ? at_ckpt_find(self->o.base, name) : NULL;
    if (!l || l->err != AT_OK)
        return 0;
    *t = l->tensor;
    return 1;
}

/* The layer's shape as core wants it: conv1d (out, in, k) becomes (out, in, 1, k). Returns
 * ndim (2 or 4), or 0 for a kind core does not analyse as a layer. */
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

static void store_base(at_ingest *self, int run, ing_run *r, const at_proto_layer *l, int ndim,
                       const int64_t *shape, at_layer_kind kind)
{
    at_job *tmp = at_job_new(l->data, (at_dtype)l->dtype, kind, ndim, shape);
    base_layer *nb = tmp ? realloc(r->base, (size_t)(r->nbase + 1) * sizeof *nb) : NULL;
    if (!nb) {
        at_job_free(tmp);
        at_ingest_event(self, run, -1, -1,
                        (at_record_event){.kind = AT_RECORD_EV_ERROR, .layer = l->name},
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
    at_ingest_event(
        self, run, -1, -1, (at_record_event){.kind = AT_RECORD_EV_INFO, .layer = l->name},
        "%s: base weights received; later snapshots are analysed as W and W - W_base", l->name);
}

static void submit(at_ingest *self, int run, snap *s, int layer, at_space space, at_job *job,
                   int64_t step)
{
    job->run = run;
    job->layer = layer;
    job->space = space;
    job->step = step;
    job->submit_time = at_clock_mono();
    size_t bytes = sizeof(float);
    for (int i = 0; i < job->t.ndim; i++)
        bytes *= (size_t)job->t.shape[i];
    if (self->h.submit(self->h.ctx, job) == AT_OK) {
        if (s) {
            s->submitted++;
            s->bytes += bytes;
            self->queued_bytes += bytes;
        }
        return;
    }
    at_job_free(job);
    at_ingest_event(self, run, layer, step, (at_record_event){.kind = AT_RECORD_EV_ERROR},
                    "out of memory queueing a layer");
}

/* One half of a LoRA adapter: kept until the other half of the same snapshot arrives, then
 * the pair is analysed as the update B A (delta view) from its r singular values. */
static void on_lora_half(at_ingest *self, int run, ing_run *r, const at_proto_layer *l)
{
    if (self->o.fast) {
        if (!r->said_lora++)
            at_ingest_event(self, run, -1, l->step,
                            (at_record_event){.kind = AT_RECORD_EV_INFO, .layer = l->name},
                            "%s: LoRA adapters are analysed in exact mode only", l->name);
        return;
    }
    int is_b = l->kind == AT_PROTO_KIND_LORA_B;
    lora_half h = {.is_b = is_b, .step = l->step}, other = {0};
    at_pair_lora_name(l->name, h.pair, sizeof h.pair, NULL);
    snap *s = snap_open(self, run, r, l->step);
    h.job = at_job_new(l->data, (at_dtype)l->dtype, AT_KIND_LINEAR, 2, l->shape);
    if (!h.job || !s) {
        at_job_free(h.job);
        return;
    }
    for (int i = 0; i < r->nlora; i++)
        if (!strcmp(r->lora[i].pair, h.pair)) {
            other = r->lora[i];
            r->lora[i] = r->lora[--r->nlora];
            break;
        }
    if (!other.job || other.step != l->step || other.is_b == is_b) {
        at_job_free(other.job); /* a stale half of an older snapshot */
        lora_half *nl = realloc(r->lora, (size_t)(r->nlora + 1) * sizeof *nl);
        if (!nl) {
            at_job_free(h.job);
            return;
        }
        r->lora = nl;
        r->lora[r->nlora++] = h;
        return;
    }
    at_job *b = is_b ? h.job : other.job, *a = is_b ? other.job : h.job;
    b->lora_a = a->t;
    b->data2 = a->data;
    a->data = NULL;
    at_job_free(a);
    int64_t shape[2] = {b->t.shape[0], b->lora_a.shape[1]};
    int layer = at_model_add_layer(self->model, run, h.pair, AT_KIND_LINEAR, 2, shape);
    if (layer < 0) {
        at_job_free(b);
        return;
    }
    submit(self, run, s, layer, AT_SPACE_DELTA, b, l->step);
}

static void on_layer(at_ingest *self, int run, ing_run *r, const at_proto_layer *l)
{
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
    if (l->base) {
        store_base(self, run, r, l, ndim, shape, kind);
        return;
    }
    int layer = at_model_add_layer(self->model, run, l->name, kind, ndim, shape);
    snap *s = snap_open(self, run, r, l->step);
    if (layer < 0 || (!s && !self->o.fast)) {
        note_dropped(self, run, r, r->dropped + (s || layer < 0 ? 0 : 1), l->step);
        return;
    }
    /* l->data is little-endian: the feed swapped a big-endian payload. */
    at_job *job = at_job_new(l->data, (at_dtype)l->dtype, kind, ndim, shape);
    if (!job) {
        at_ingest_event(self, run, layer, l->step,
                        (at_record_event){.kind = AT_RECORD_EV_ERROR, .layer = l->name},
                        "%s: out of memory for a snapshot", l->name);
        return;
    }
    at_tensor base;
    at_job *delta = NULL;
    if (base_for(self, r, l->name, &base)) {
        delta = at_job_new(l->data, (at_dtype)l->dtype, kind, ndim, shape);
        if (delta)
            delta->base = base;
    }
    submit(self, run, s, layer, AT_SPACE_W, job, l->step);
    if (delta)
        submit(self, run, s, layer, AT_SPACE_DELTA, delta, l->step);
}

/* Back-pressure: drops the oldest ended snapshot of run whose analysis has not started while
 * too much waits (see ingest.h). */
static void relieve(at_ingest *self, int run, ing_run *r)
{
    while (self->queued_bytes > self->o.queue_budget || r->nsnaps > self->o.max_inflight / 2) {
        snap *q = NULL;
        for (int i = 0; i + 1 < r->nsnaps && !q; i++)
            if (r->snaps[i].ended && r->snaps[i].done == 0 && !r->snaps[i].dropped)
                q = &r->snaps[i];
        if (!q)
            break;
        int64_t step = q->step;
        q->submitted -= self->h.cancel(self->h.ctx, run, step);
        at_model_run(self->model, run)->dropped++;
        at_ingest_event(
            self, run, -1, step, (at_record_event){.kind = AT_RECORD_EV_DROP, .dropped = 1},
            "snapshot at step %lld skipped: analysis is behind the trainer", (long long)step);
        if (q->done >= q->submitted) {
            snap_remove(self, r, q);
        } else {
            /* Its running layer finishes it; only the memory is released now. */
            self->queued_bytes -= q->bytes;
            q->bytes = 0;
            q->dropped = 1;
        }
    }
}

static void on_snapshot_end(at_ingest *self, int run, ing_run *r, const at_proto_snapshot_end *e)
{
    note_dropped(self, run, r, e->dropped, e->step);
    snap *s = snap_find(r, e->step);
    if (!s)
        return;
    s->ended = 1;
    if (e->layers > s->received && !self->o.base && !r->nbase)
        at_ingest_event(self, run, -1, e->step,
                        (at_record_event){.kind = AT_RECORD_EV_DROP, .dropped = -1},
                        "snapshot at step %lld: %d of %lld layers arrived", (long long)e->step,
                        s->received, (long long)e->layers);
    relieve(self, run, r);
    s = snap_find(r, e->step);
    if (s && s->done >= s->submitted)
        snapshot_finish(self, run, r, s);
}

/* ---- messages --------------------------------------------------------------------------- */

static void on_hello(at_ingest *self, int run, ing_run *r, const at_proto_hello *h)
{
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
    at_record_event e = {.kind = AT_RECORD_EV_HELLO};
    e.hello.model = h->model;
    e.hello.framework = h->framework;
    e.hello.host = h->host;
    e.hello.pid = h->pid;
    e.hello.interval = h->interval;
    e.hello.rank = h->rank;
    e.hello.world_size = h->world_size;
    at_ingest_event(self, run, -1, -1, e,
                    "run %s started: %s (%s) on %s, pid %lld, a snapshot every %lld steps", r->id,
                    h->model[0] ? h->model : "unnamed model", h->framework, h->host,
                    (long long)h->pid, (long long)h->interval);
}

static void on_goodbye(at_ingest *self, int run, ing_run *r, const at_proto_goodbye *g)
{
    at_run_info *ri = at_model_run(self->model, run);
    ri->ended = 1;
    if (g->step > ri->step)
        ri->step = g->step;
    at_model_touch(self->model);
    at_ingest_event(self, run, -1, g->step,
                    (at_record_event){.kind = AT_RECORD_EV_GOODBYE, .dropped = g->dropped},
                    "run %s ended at step %lld", r->id, (long long)g->step);
}

static void on_scalars(at_ingest *self, int run, ing_run *r, const at_proto_scalars *sc)
{
    at_run_info *ri = at_model_run(self->model, run);
    if (sc->step > ri->step) {
        ri->step = sc->step;
        at_model_touch(self->model);
    }
    note_dropped(self, run, r, sc->dropped, sc->step);
}

int at_ingest_msg(at_ingest *self, const at_proto_msg *msg)
{
    int run = at_ingest_run(self, msg->run);
    if (run < 0)
        return run;
    ing_run *r = self->runs[run];
    switch (msg->type) {
    case AT_PROTO_HELLO:
        on_hello(self, run, r, &msg->u.hello);
        break;
    case AT_PROTO_LAYER:
        on_layer(self, run, r, &msg->u.layer);
        break;
    case AT_PROTO_SNAPSHOT_END:
        on_snapshot_end(self, run, r, &msg->u.snapshot_end);
        break;
    case AT_PROTO_SCALARS:
        on_scalars(self, run, r, &msg->u.scalars);
        break;
    case AT_PROTO_GOODBYE:
        on_goodbye(self, run, r, &msg->u.goodbye);
        break;
    default:
        break;
    }
    return run;
}

/* ---- life ------------------------------------------------------------------------------- */

at_ingest *at_ingest_new(const at_ingest_opts *opts, const at_ingest_hooks *hooks, at_model *model,
                         int *status)
{
    at_ingest_opts o;
    if (opts)
        o = *opts;
    else
        at_ingest_opts_default(&o);
    int bad = !hooks || !model || !hooks->submit || !hooks->cancel || !hooks->event ||
              !hooks->feed || !hooks->close || o.max_inflight < 2;
    at_ingest *self = bad ? NULL : calloc(1, sizeof *self);
    if (status)
        *status = bad ? AT_ERR_ARG : self ? AT_OK : AT_ERR_NOMEM;
    if (!self)
        return NULL;
    self->o = o;
    self->h = *hooks;
    self->model = model;
    return self;
}

void at_ingest_free(at_ingest *self)
{
    if (!self)
        return;
    for (int i = 0; i < self->nruns; i++)
        run_free(self, self->runs[i]);
    free(self->runs);
    free(self);
}
