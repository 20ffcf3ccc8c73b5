/* SPDX-License-Identifier: Apache-2.0 */
/* model.c -- the view's data: runs, layers, per-snapshot cells, spectra, scalars, events. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct layer {
    at_layer_info info;
    at_cell *cells[AT_SPACE_COUNT]; /* run->snap_cap cells each, or NULL for an unused space */
    at_spectrum spec[AT_SPACE_COUNT];
    float *spec_buf[AT_SPACE_COUNT];
    size_t spec_cap[AT_SPACE_COUNT];
    uint64_t history; /* bumped when a cell other than the newest column changes */
} layer;

typedef struct series {
    char *name;
    size_t n, cap;
    int64_t *steps;
    double *values;
} series;

typedef struct run {
    at_run_info info;
    layer **layers;
    int nlayers, layer_cap;
    int64_t *steps; /* snapshot columns, ascending */
    int nsnap, snap_cap;
    int has_space[AT_SPACE_COUNT];
    series *scalars;
    int nscalars, scalar_cap;
} run;

struct at_model {
    run **runs;
    int nruns, run_cap;
    at_event *events;
    int nevents, event_cap;
    at_monitor_state state;
    uint64_t version;
};

/* Grows *p (an array of elsize items with capacity *cap) to hold at least need items. */
static int grow(void **p, int *cap, int need, size_t elsize)
{
    if (need <= *cap)
        return AT_OK;
    int c = *cap ? *cap : 8;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * elsize);
    if (!q)
        return AT_ERR_NOMEM;
    *p = q;
    *cap = c;
    return AT_OK;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void cell_clear(at_cell *c, int n)
{
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < AT_METRIC_COUNT; k++)
            c[i].v[k] = NAN;
        c[i].status = AT_CELL_EMPTY;
        c[i].mode = 0;
        c[i].tail = 0;
    }
}

const char *at_metric_name(at_metric_id id)
{
    static const char *const names[AT_METRIC_COUNT] = {
        "alpha",       "alpha_weighted", "log_norm", "log_spectral_norm",
        "stable_rank", "traps",          "detx_gap"};
    return (unsigned)id < AT_METRIC_COUNT ? names[id] : "?";
}

double at_metric_value(const at_metrics *m, at_metric_id id)
{
    switch (id) {
    case AT_METRIC_ALPHA:
        return m->alpha;
    case AT_METRIC_ALPHA_WEIGHTED:
        return m->alpha_weighted;
    case AT_METRIC_LOG_NORM:
        return m->log_norm;
    case AT_METRIC_LOG_SPECTRAL_NORM:
        return m->log_spectral_norm;
    case AT_METRIC_STABLE_RANK:
        return m->stable_rank;
    case AT_METRIC_TRAPS:
        return m->num_traps < 0 ? NAN : (double)m->num_traps;
    case AT_METRIC_DETX_GAP:
        if (!(m->detx_val > 0) || !(m->xmin > 0))
            return NAN;
        return log10(m->detx_val / m->xmin);
    default:
        return NAN;
    }
}

const char *at_event_kind_name(at_event_kind k)
{
    static const char *const names[] = {"phase", "warning", "trap", "stop",
                                        "drop",  "error",   "info"};
    return (unsigned)k <= AT_EVENT_INFO ? names[k] : "?";
}

at_event_kind at_run_phase_event_kind(at_run_phase to)
{
    return to == AT_RUN_COLLAPSE ? AT_EVENT_WARNING : AT_EVENT_INFO;
}

at_model *at_model_new(void)
{
    return calloc(1, sizeof(at_model));
}

static void layer_free(layer *l)
{
    if (!l)
        return;
    for (int s = 0; s < AT_SPACE_COUNT; s++) {
        free(l->cells[s]);
        free(l->spec_buf[s]);
    }
    free(l);
}

/* Frees what a run holds beyond its info. */
static void run_clear(run *r)
{
    for (int i = 0; i < r->nlayers; i++)
        layer_free(r->layers[i]);
    for (int i = 0; i < r->nscalars; i++) {
        free(r->scalars[i].name);
        free(r->scalars[i].steps);
        free(r->scalars[i].values);
    }
    free(r->scalars);
    free(r->layers);
    free(r->steps);
}

static void run_free(run *r)
{
    if (!r)
        return;
    run_clear(r);
    free(r);
}

void at_model_free(at_model *self)
{
    if (!self)
        return;
    for (int i = 0; i < self->nruns; i++)
        run_free(self->runs[i]);
    free(self->runs);
    free(self->events);
    free(self);
}

uint64_t at_model_version(const at_model *self)
{
    return self->version;
}

void at_model_touch(at_model *self)
{
    self->version++;
}

static run *get_run(const at_model *self, int r)
{
    return r >= 0 && r < self->nruns ? self->runs[r] : NULL;
}

static layer *get_layer(const at_model *self, int r, int l)
{
    run *ru = get_run(self, r);
    return ru && l >= 0 && l < ru->nlayers ? ru->layers[l] : NULL;
}

int at_model_find_run(const at_model *self, const char *id)
{
    for (int i = 0; id && i < self->nruns; i++)
        if (!strcmp(self->runs[i]->info.id, id))
            return i;
    return AT_ERR_NOTFOUND;
}

int at_model_reuse_run(at_model *self, int r, const char *id)
{
    run *ru = get_run(self, r);
    if (!ru || !id || !*id)
        return AT_ERR_ARG;
    run_clear(ru);
    memset(ru, 0, sizeof *ru);
    copy_str(ru->info.id, sizeof ru->info.id, id);
    for (int i = 0; i < self->nevents; i++)
        if (self->events[i].run == r) {
            self->events[i].run = -1;
            self->events[i].layer = -1;
        }
    self->version++;
    return r;
}

int at_model_add_run(at_model *self, const char *id, const char *name, const char *host)
{
    if (!id || !*id)
        return AT_ERR_ARG;
    int found = at_model_find_run(self, id);
    if (found >= 0)
        return found;
    if (grow((void **)&self->runs, &self->run_cap, self->nruns + 1, sizeof(run *)))
        return AT_ERR_NOMEM;
    run *r = calloc(1, sizeof(run));
    if (!r)
        return AT_ERR_NOMEM;
    copy_str(r->info.id, sizeof r->info.id, id);
    copy_str(r->info.name, sizeof r->info.name, name);
    copy_str(r->info.host, sizeof r->info.host, host);
    self->runs[self->nruns] = r;
    self->version++;
    return self->nruns++;
}

int at_model_num_runs(const at_model *self)
{
    return self->nruns;
}

at_run_info *at_model_run(const at_model *self, int r)
{
    run *ru = get_run(self, r);
    return ru ? &ru->info : NULL;
}

at_monitor_state *at_model_state(const at_model *self)
{
    /* Mutable from a const model like strchr: the engine owns it, the view only reads. */
    return (at_monitor_state *)&self->state;
}

int at_model_find_layer(const at_model *self, int r, const char *name)
{
    run *ru = get_run(self, r);
    if (!ru || !name)
        return AT_ERR_ARG;
    for (int i = 0; i < ru->nlayers; i++)
        if (!strcmp(ru->layers[i]->info.name, name))
            return i;
    return AT_ERR_NOTFOUND;
}

/* Allocates layer l's cells in space s at the run's column capacity, all empty. */
static int layer_alloc_space(run *ru, layer *l, int s)
{
    if (l->cells[s])
        return AT_OK;
    int cap = ru->snap_cap > 0 ? ru->snap_cap : 1;
    l->cells[s] = malloc((size_t)cap * sizeof(at_cell));
    if (!l->cells[s])
        return AT_ERR_NOMEM;
    cell_clear(l->cells[s], cap);
    return AT_OK;
}

int at_model_add_layer(at_model *self, int r, const char *name, at_layer_kind kind, int ndim,
                       const int64_t *shape)
{
    run *ru = get_run(self, r);
    if (!ru || !name || !*name || ndim < 0 || ndim > 4)
        return AT_ERR_ARG;
    int found = at_model_find_layer(self, r, name);
    if (found >= 0)
        return found;
    if (grow((void **)&ru->layers, &ru->layer_cap, ru->nlayers + 1, sizeof(layer *)))
        return AT_ERR_NOMEM;
    layer *l = calloc(1, sizeof(layer));
    if (!l)
        return AT_ERR_NOMEM;
    copy_str(l->info.name, sizeof l->info.name, name);
    l->info.kind = kind;
    l->info.ndim = ndim;
    for (int i = 0; i < ndim && shape; i++)
        l->info.shape[i] = shape[i];
    for (int s = 0; s < AT_SPACE_COUNT; s++)
        if (ru->has_space[s] && layer_alloc_space(ru, l, s)) {
            layer_free(l);
            return AT_ERR_NOMEM;
        }
    ru->layers[ru->nlayers] = l;
    self->version++;
    return ru->nlayers++;
}

int at_model_num_layers(const at_model *self, int r)
{
    run *ru = get_run(self, r);
    return ru ? ru->nlayers : 0;
}

const at_layer_info *at_model_layer(const at_model *self, int r, int l)
{
    layer *la = get_layer(self, r, l);
    return la ? &la->info : NULL;
}

/* Grows the column capacity of run and every layer's cell arrays. */
static int run_grow_columns(run *ru, int need)
{
    int old = ru->snap_cap;
    if (need <= old)
        return AT_OK;
    int cap = old;
    if (grow((void **)&ru->steps, &cap, need, sizeof(int64_t)))
        return AT_ERR_NOMEM;
    for (int i = 0; i < ru->nlayers; i++)
        for (int s = 0; s < AT_SPACE_COUNT; s++) {
            layer *l = ru->layers[i];
            if (!l->cells[s])
                continue;
            at_cell *c = realloc(l->cells[s], (size_t)cap * sizeof(at_cell));
            if (!c)
                return AT_ERR_NOMEM; /* layers already grown keep the larger, harmless */
            l->cells[s] = c;
            cell_clear(c + old, cap - old);
        }
    ru->snap_cap = cap;
    return AT_OK;
}

/* Binary search: first column with steps[col] >= step. */
static int lower_bound(const run *ru, int64_t step)
{
    int lo = 0, hi = ru->nsnap;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ru->steps[mid] < step)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int at_model_add_snapshot(at_model *self, int r, int64_t step, double wall_time)
{
    run *ru = get_run(self, r);
    if (!ru || step < 0)
        return AT_ERR_ARG;
    if (wall_time > ru->info.last_snapshot_time)
        ru->info.last_snapshot_time = wall_time;
    if (step > ru->info.step)
        ru->info.step = step;
    self->version++;
    int col = lower_bound(ru, step);
    if (col < ru->nsnap && ru->steps[col] == step)
        return col;
    if (run_grow_columns(ru, ru->nsnap + 1))
        return AT_ERR_NOMEM;
    int tail = ru->nsnap - col;
    if (tail > 0) {
        memmove(ru->steps + col + 1, ru->steps + col, (size_t)tail * sizeof(int64_t));
        for (int i = 0; i < ru->nlayers; i++)
            for (int s = 0; s < AT_SPACE_COUNT; s++) {
                at_cell *c = ru->layers[i]->cells[s];
                if (c) {
                    memmove(c + col + 1, c + col, (size_t)tail * sizeof(at_cell));
                    cell_clear(c + col, 1);
                }
            }
    }
    ru->steps[col] = step;
    ru->nsnap++;
    if (tail > 0)
        for (int i = 0; i < ru->nlayers; i++)
            ru->layers[i]->history++;
    return col;
}

int at_model_num_snapshots(const at_model *self, int r)
{
    run *ru = get_run(self, r);
    return ru ? ru->nsnap : 0;
}

int64_t at_model_snapshot_step(const at_model *self, int r, int col)
{
    run *ru = get_run(self, r);
    return ru && col >= 0 && col < ru->nsnap ? ru->steps[col] : -1;
}

int at_model_snapshot_at(const at_model *self, int r, int64_t step)
{
    run *ru = get_run(self, r);
    if (!ru)
        return -1;
    int col = lower_bound(ru, step);
    if (col < ru->nsnap && ru->steps[col] == step)
        return col;
    return col - 1;
}

int at_model_add_cell(at_model *self, int r, int l, at_space space, int64_t step,
                      const at_metrics *m)
{
    run *ru = get_run(self, r);
    layer *la = get_layer(self, r, l);
    if (!la || !m || (unsigned)space >= AT_SPACE_COUNT)
        return AT_ERR_ARG;
    int col = at_model_add_snapshot(self, r, step, 0);
    if (col < 0)
        return col;
    if (!ru->has_space[space]) {
        for (int i = 0; i < ru->nlayers; i++)
            if (layer_alloc_space(ru, ru->layers[i], space))
                return AT_ERR_NOMEM;
        ru->has_space[space] = 1;
    }
    if (col != ru->nsnap - 1)
        la->history++;
    at_cell *c = &la->cells[space][col];
    for (int k = 0; k < AT_METRIC_COUNT; k++)
        c->v[k] = (float)at_metric_value(m, (at_metric_id)k);
    c->status = (uint8_t)m->status;
    c->mode = (uint8_t)m->mode;
    c->tail = m->num_pl_spikes <= 0      ? 0
              : m->num_pl_spikes > 65535 ? 65535
                                         : (uint16_t)m->num_pl_spikes;
    return AT_OK;
}

const at_cell *at_model_cell(const at_model *self, int r, int l, at_space space, int col)
{
    run *ru = get_run(self, r);
    layer *la = get_layer(self, r, l);
    if (!la || (unsigned)space >= AT_SPACE_COUNT || col < 0 || col >= ru->nsnap ||
        !la->cells[space])
        return NULL;
    return &la->cells[space][col];
}

const at_cell *at_model_latest_cell(const at_model *self, int r, int l, at_space space, int end)
{
    const at_cell *first = at_model_cell(self, r, l, space, 0);
    int n = at_model_num_snapshots(self, r);
    for (int col = (end < n ? end : n) - 1; first && col >= 0; col--)
        if (first[col].status != AT_CELL_EMPTY)
            return &first[col];
    return NULL;
}

uint64_t at_model_layer_history(const at_model *self, int r, int l)
{
    layer *la = get_layer(self, r, l);
    return la ? la->history : 0;
}

int at_model_has_space(const at_model *self, int r, at_space space)
{
    run *ru = get_run(self, r);
    return ru && (unsigned)space < AT_SPACE_COUNT && ru->has_space[space];
}

int at_model_set_spectrum(at_model *self, int r, int l, at_space space, int64_t step,
                          const double *evals, size_t n, double xmin, double alpha)
{
    layer *la = get_layer(self, r, l);
    if (!la || (unsigned)space >= AT_SPACE_COUNT || (n && !evals) || n > (size_t)1 << 30)
        return AT_ERR_ARG;
    if (n > la->spec_cap[space]) {
        float *b = realloc(la->spec_buf[space], n * sizeof(float));
        if (!b)
            return AT_ERR_NOMEM;
        la->spec_buf[space] = b;
        la->spec_cap[space] = n;
    }
    for (size_t i = 0; i < n; i++)
        la->spec_buf[space][i] = (float)evals[i];
    at_spectrum *s = &la->spec[space];
    s->step = step;
    s->n = n;
    s->evals = la->spec_buf[space];
    s->xmin = xmin;
    s->alpha = alpha;
    self->version++;
    return AT_OK;
}

const at_spectrum *at_model_spectrum(const at_model *self, int r, int l, at_space space)
{
    layer *la = get_layer(self, r, l);
    if (!la || (unsigned)space >= AT_SPACE_COUNT || !la->spec[space].evals)
        return NULL;
    return &la->spec[space];
}

int at_model_add_scalar(at_model *self, int r, const char *name, int64_t step, double value)
{
    run *ru = get_run(self, r);
    if (!ru || !name || !*name)
        return AT_ERR_ARG;
    int i = 0;
    while (i < ru->nscalars && strcmp(ru->scalars[i].name, name))
        i++;
    if (i == ru->nscalars) {
        if (grow((void **)&ru->scalars, &ru->scalar_cap, i + 1, sizeof(series)))
            return AT_ERR_NOMEM;
        series *s = &ru->scalars[i];
        memset(s, 0, sizeof *s);
        s->name = strdup(name);
        if (!s->name)
            return AT_ERR_NOMEM;
        ru->nscalars++;
    }
    series *s = &ru->scalars[i];
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        int64_t *st = realloc(s->steps, cap * sizeof(int64_t));
        if (!st)
            return AT_ERR_NOMEM;
        s->steps = st;
        double *v = realloc(s->values, cap * sizeof(double));
        if (!v)
            return AT_ERR_NOMEM;
        s->values = v;
        s->cap = cap;
    }
    s->steps[s->n] = step;
    s->values[s->n] = value;
    s->n++;
    self->version++;
    return AT_OK;
}

int at_model_num_scalars(const at_model *self, int r)
{
    run *ru = get_run(self, r);
    return ru ? ru->nscalars : 0;
}

int at_model_scalar(const at_model *self, int r, int i, at_series *out)
{
    run *ru = get_run(self, r);
    if (!ru || i < 0 || i >= ru->nscalars || !out)
        return AT_ERR_ARG;
    out->name = ru->scalars[i].name;
    out->n = ru->scalars[i].n;
    out->steps = ru->scalars[i].steps;
    out->values = ru->scalars[i].values;
    return AT_OK;
}

int at_model_add_event(at_model *self, int r, int l, int64_t step, at_event_kind kind,
                       const char *text)
{
    if (r < -1 || r >= self->nruns || (unsigned)kind > AT_EVENT_INFO)
        return AT_ERR_ARG;
    if (self->nevents >= AT_MODEL_MAX_EVENTS) {
        int keep = 0;
        for (int i = 0; i < self->nevents; i++) {
            const at_event *e = &self->events[i];
            if (i >= self->nevents / 2 || (e->run >= 0 && e->run_to != AT_RUN_UNKNOWN))
                self->events[keep++] = *e;
        }
        self->nevents = keep;
    }
    if (grow((void **)&self->events, &self->event_cap, self->nevents + 1, sizeof(at_event)))
        return AT_ERR_NOMEM;
    at_event *e = &self->events[self->nevents];
    memset(e, 0, sizeof *e);
    e->run = r;
    e->layer = l;
    e->step = step;
    e->kind = kind;
    e->since = -1;
    copy_str(e->text, sizeof e->text, text);
    self->version++;
    return self->nevents++;
}

int at_model_add_phase_event(at_model *self, int r, at_space space, const at_phase_event *ev,
                             const char *text)
{
    if (!get_run(self, r) || !ev || ev->kind != AT_EVENT_LAYER_PHASE ||
        (unsigned)space >= AT_SPACE_COUNT)
        return AT_ERR_ARG;
    if (ev->from == AT_LAYER_UNKNOWN)
        return 0;
    int l = at_model_find_layer(self, r, ev->layer);
    int e = at_model_add_event(self, r, l < 0 ? -1 : l, ev->step, AT_EVENT_PHASE,
                               text ? text : ev->text);
    if (e < 0)
        return e;
    self->events[e].from = (at_layer_phase)ev->from;
    self->events[e].to = (at_layer_phase)ev->to;
    self->events[e].space = space;
    self->events[e].since = ev->since_step;
    return 1;
}

int at_model_add_run_phase_event(at_model *self, int r, at_space space, const at_phase_event *ev,
                                 const char *text)
{
    if (!get_run(self, r) || !ev || ev->kind != AT_EVENT_RUN_PHASE ||
        (unsigned)space >= AT_SPACE_COUNT || ev->to <= AT_RUN_UNKNOWN || ev->to > AT_RUN_COLLAPSE)
        return AT_ERR_ARG;
    at_run_phase to = (at_run_phase)ev->to;
    int e = at_model_add_event(self, r, -1, ev->step, at_run_phase_event_kind(to),
                               text ? text : ev->text);
    if (e < 0)
        return e;
    self->events[e].space = space;
    self->events[e].run_to = to;
    self->events[e].since = ev->since_step;
    return e;
}

int at_model_num_events(const at_model *self)
{
    return self->nevents;
}

const at_event *at_model_event(const at_model *self, int i)
{
    return i >= 0 && i < self->nevents ? &self->events[i] : NULL;
}

size_t at_model_cell_bytes(void)
{
    return sizeof(at_cell);
}
