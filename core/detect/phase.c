/* SPDX-License-Identifier: Apache-2.0 */
/* phase.c -- per-layer HTSR phases with hysteresis, trends, and the run's grokking phase.
 *
 * Per snapshot: feed_layer stores each layer's observation, end_snapshot turns them into
 * phases (a candidate phase must hold for opts.confirm consecutive snapshots, each beyond the
 * threshold by opts.margin), updates trend windows and asks collapse.c for the verdict. */
#include "alphatop/phase.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/band.h"
#include "phase_internal.h"
#include "trend.h"

typedef struct layer {
    char *name;
    at_layer_phase phase;
    int64_t phase_since;
    at_layer_phase cand; /* phase the recent snapshots point to, if different from phase */
    int cand_count;
    int64_t cand_since;
    /* this snapshot's observation */
    int fed;
    int fit_ok;
    double alpha, log_norm, norm, max_abs, trap_ratio;
    int64_t num_traps, num_evals;
    /* latest completed values */
    int64_t last_step;
    double last_alpha, last_max_abs, last_trap_ratio;
    int64_t last_traps, traps_since;
    int present; /* included in the latest snapshot */
    at_ring alpha_hist, log_norm_hist, max_abs_hist;
} layer;

typedef struct scalar {
    char *name;
    double latest, peak;
    int64_t latest_step, peak_step;
} scalar;

struct at_phase_tracker {
    at_phase_opts o;
    layer *layers;
    size_t n_layers, cap_layers;
    scalar *scalars;
    size_t n_scalars, cap_scalars;
    at_phase_event *events;
    size_t n_events, cap_events;
    int64_t last_step; /* latest completed snapshot, -1 before the first */
    int64_t snapshots;
    at_run_phase run_phase;
    int64_t run_since;
    int grok_streak; /* consecutive snapshots that meet the grokking condition */
    int64_t grok_since;
    int memorized; /* the run went from pre-grokking straight to over-fit */
    int grokked;   /* the run has been in its grokking phase */
    double mean_alpha, weighted_alpha, frac_burnt, log_norm, log_norm_max;
    double untrained_share, burnt_share; /* of the snapshot's eigenvalues */
    size_t present, known;               /* layers in the latest snapshot; those with a phase */
    at_ring run_log_norm, run_mean_alpha;
    double *layer_norm, *layer_alpha; /* n_layers each: the collapse detector's input */
    size_t cap_layer_norm, cap_layer_alpha;
    at_collapse collapse;
};

void at_phase_opts_default(at_phase_opts *o)
{
    o->burnt_below = AT_ALPHA_BURNT_BELOW;
    o->raw_above = AT_ALPHA_RAW_ABOVE;
    o->margin = 0.1;
    o->confirm = 3;
    o->window = 10;
    o->collapse_confirm = 3;
    o->grokking_alpha = 4.0;
    o->collapse_span = 0.3;
    o->collapse_hold = 0.15;
    o->collapse_alpha_min = 2.8;
}

const char *at_layer_phase_name(at_layer_phase p)
{
    switch (p) {
    case AT_LAYER_UNKNOWN:
        return "unknown";
    case AT_LAYER_RAW:
        return "raw";
    case AT_LAYER_HEALTHY:
        return "healthy";
    case AT_LAYER_BURNT:
        return "burnt";
    case AT_LAYER_FAILED:
        return "failed";
    }
    return "unknown";
}

const char *at_run_phase_name(at_run_phase p)
{
    switch (p) {
    case AT_RUN_UNKNOWN:
        return "unknown";
    case AT_RUN_PRE_GROKKING:
        return "pre-grokking";
    case AT_RUN_GROKKING:
        return "grokking";
    case AT_RUN_OVERFIT:
        return "over-fit";
    case AT_RUN_COLLAPSE:
        return "collapse";
    }
    return "unknown";
}

/* ---- windows of (step, value) --------------------------------------------------------- */

/* The last `keep` pairs stay contiguous: storage holds 2 * keep and is compacted when full, so
 * a window is a plain array slice for at_slope. */
static int ring_init(at_ring *r, int keep)
{
    r->step = calloc((size_t)keep * 2, sizeof *r->step);
    r->value = calloc((size_t)keep * 2, sizeof *r->value);
    r->keep = keep;
    r->n = 0;
    return r->step && r->value ? AT_OK : AT_ERR_NOMEM;
}

static void ring_free(at_ring *r)
{
    free(r->step);
    free(r->value);
}

static void ring_push(at_ring *r, int64_t step, double value)
{
    if (r->n == 2 * r->keep) {
        int k = r->keep - 1;
        memmove(r->step, r->step + r->n - k, (size_t)k * sizeof *r->step);
        memmove(r->value, r->value + r->n - k, (size_t)k * sizeof *r->value);
        r->n = k;
    }
    r->step[r->n] = step;
    r->value[r->n] = value;
    r->n++;
}

int at_ring_len(const at_ring *r)
{
    return r->n < r->keep ? r->n : r->keep;
}

void at_ring_get(const at_ring *r, int i, int64_t *step, double *value)
{
    int k = r->n - at_ring_len(r) + i;
    *step = r->step[k];
    *value = r->value[k];
}

double at_ring_slope(const at_ring *r)
{
    int k = at_ring_len(r);
    return at_slope(r->step + r->n - k, r->value + r->n - k, k);
}

/* ---- tracker -------------------------------------------------------------------------- */

at_phase_tracker *at_phase_tracker_new(const at_phase_opts *opts)
{
    at_phase_opts o;
    if (opts)
        o = *opts;
    else
        at_phase_opts_default(&o);
    if (!(o.burnt_below < o.raw_above) || !(o.margin >= 0) || o.confirm < 1 || o.window < 3 ||
        o.collapse_confirm < 1 || !(o.collapse_span > 0 && o.collapse_span <= 1) ||
        !(o.collapse_hold >= 0 && o.collapse_hold < 1) ||
        !(o.collapse_alpha_min >= 0 && isfinite(o.collapse_alpha_min)))
        return NULL;
    at_phase_tracker *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->o = o;
    t->last_step = -1;
    t->run_since = -1;
    t->mean_alpha = NAN;
    t->weighted_alpha = NAN;
    t->untrained_share = 1.0;
    t->log_norm = NAN;
    t->log_norm_max = -INFINITY;
    if (ring_init(&t->run_log_norm, o.window) || ring_init(&t->run_mean_alpha, o.window))
        goto err;
    at_collapse_init(&t->collapse, &o);
    return t;
err:
    at_phase_tracker_free(t);
    return NULL;
}

void at_phase_tracker_free(at_phase_tracker *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->n_layers; i++) {
        layer *l = &self->layers[i];
        free(l->name);
        ring_free(&l->alpha_hist);
        ring_free(&l->log_norm_hist);
        ring_free(&l->max_abs_hist);
    }
    for (size_t i = 0; i < self->n_scalars; i++)
        free(self->scalars[i].name);
    free(self->layers);
    free(self->scalars);
    free(self->events);
    ring_free(&self->run_log_norm);
    ring_free(&self->run_mean_alpha);
    free(self->layer_norm);
    free(self->layer_alpha);
    at_collapse_free(&self->collapse);
    free(self);
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return AT_OK;
    size_t c = *cap ? *cap * 2 : 8;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return AT_ERR_NOMEM;
    *p = q;
    *cap = c;
    return AT_OK;
}

static layer *find_or_add_layer(at_phase_tracker *t, const char *name)
{
    for (size_t i = 0; i < t->n_layers; i++)
        if (strcmp(t->layers[i].name, name) == 0)
            return &t->layers[i];
    if (grow((void **)&t->layers, &t->cap_layers, t->n_layers + 1, sizeof *t->layers) ||
        grow((void **)&t->layer_norm, &t->cap_layer_norm, t->n_layers + 1, sizeof(double)) ||
        grow((void **)&t->layer_alpha, &t->cap_layer_alpha, t->n_layers + 1, sizeof(double)))
        return NULL;
    layer *l = &t->layers[t->n_layers];
    memset(l, 0, sizeof *l);
    l->name = strdup(name);
    int rc = l->name ? AT_OK : AT_ERR_NOMEM;
    if (!rc)
        rc = ring_init(&l->alpha_hist, t->o.window);
    if (!rc)
        rc = ring_init(&l->log_norm_hist, t->o.window);
    if (!rc)
        rc = ring_init(&l->max_abs_hist, t->o.window);
    if (rc) {
        free(l->name);
        ring_free(&l->alpha_hist);
        ring_free(&l->log_norm_hist);
        ring_free(&l->max_abs_hist);
        return NULL;
    }
    l->phase = AT_LAYER_UNKNOWN;
    l->phase_since = -1;
    l->cand = AT_LAYER_UNKNOWN;
    l->last_step = -1;
    l->last_alpha = NAN;
    l->last_max_abs = NAN;
    l->last_traps = -1;
    l->traps_since = -1;
    t->n_layers++;
    return l;
}

int at_phase_tracker_feed_layer(at_phase_tracker *self, int64_t step, const char *name,
                                const at_metrics *m, double max_abs)
{
    if (!self || !name || !*name || !m || step < self->last_step)
        return AT_ERR_ARG;
    if (m->status == AT_FIT_SKIPPED)
        return AT_OK;
    layer *l = find_or_add_layer(self, name);
    if (!l)
        return AT_ERR_NOMEM;
    l->fed = 1;
    l->fit_ok = m->status == AT_FIT_SUCCESS && isfinite(m->alpha);
    l->alpha = l->fit_ok ? m->alpha : NAN;
    l->norm = isfinite(m->norm) && m->norm > 0 ? m->norm : pow(10.0, m->log_norm);
    l->log_norm = isfinite(m->log_norm) ? m->log_norm : log10(l->norm);
    l->max_abs = max_abs;
    l->num_traps = m->num_traps;
    l->num_evals = m->num_evals > 0 ? m->num_evals : 1;
    l->trap_ratio = m->trap_max_ratio;
    return AT_OK;
}

int at_phase_tracker_feed_scalar(at_phase_tracker *self, int64_t step, const char *name,
                                 double value)
{
    if (!self || !name || !*name)
        return AT_ERR_ARG;
    if (!isfinite(value))
        return AT_OK;
    scalar *s = NULL;
    for (size_t i = 0; i < self->n_scalars && !s; i++)
        if (strcmp(self->scalars[i].name, name) == 0)
            s = &self->scalars[i];
    if (!s) {
        if (grow((void **)&self->scalars, &self->cap_scalars, self->n_scalars + 1,
                 sizeof *self->scalars))
            return AT_ERR_NOMEM;
        s = &self->scalars[self->n_scalars];
        s->name = strdup(name);
        if (!s->name)
            return AT_ERR_NOMEM;
        s->peak = -INFINITY;
        self->n_scalars++;
    }
    s->latest = value;
    s->latest_step = step;
    if (value > s->peak) {
        s->peak = value;
        s->peak_step = step;
    }
    return AT_OK;
}

int at_phase_tracker_scalar(const at_phase_tracker *self, const char *name, double *latest,
                            double *peak, int64_t *peak_step)
{
    for (size_t i = 0; self && name && i < self->n_scalars; i++) {
        const scalar *s = &self->scalars[i];
        if (strcmp(s->name, name) == 0) {
            if (latest)
                *latest = s->latest;
            if (peak)
                *peak = s->peak;
            if (peak_step)
                *peak_step = s->peak_step;
            return 1;
        }
    }
    return 0;
}

static at_phase_event *add_event(at_phase_tracker *t, at_phase_event_kind kind, int64_t step,
                                 int64_t since, const char *layer_name, int from, int to)
{
    if (grow((void **)&t->events, &t->cap_events, t->n_events + 1, sizeof *t->events))
        return NULL;
    at_phase_event *e = &t->events[t->n_events++];
    e->kind = kind;
    e->step = step;
    e->since_step = since;
    e->layer = layer_name;
    e->from = from;
    e->to = to;
    e->text[0] = '\0';
    return e;
}

/* The phase an alpha points to, seen from the current phase: leaving a phase needs alpha
 * beyond the threshold by margin; the first classification uses the plain thresholds. */
static at_layer_phase classify(const at_phase_opts *o, at_layer_phase cur, int fit_ok, double alpha)
{
    if (!fit_ok)
        return AT_LAYER_FAILED;
    double lo = o->burnt_below, hi = o->raw_above;
    if (cur != AT_LAYER_UNKNOWN && cur != AT_LAYER_FAILED) {
        lo = cur == AT_LAYER_BURNT ? lo + o->margin : lo - o->margin;
        hi = cur == AT_LAYER_RAW ? hi - o->margin : hi + o->margin;
    }
    if (alpha < lo)
        return AT_LAYER_BURNT;
    if (alpha > hi)
        return AT_LAYER_RAW;
    return AT_LAYER_HEALTHY;
}

static int update_layer(at_phase_tracker *t, layer *l, int64_t step)
{
    l->present = l->fed;
    if (!l->fed)
        return AT_OK;
    l->fed = 0;
    l->last_step = step;
    l->last_alpha = l->alpha;
    l->last_max_abs = l->max_abs;
    l->last_trap_ratio = l->num_traps > 0 ? l->trap_ratio : 0.0;
    if (l->num_traps > 0 && l->last_traps <= 0)
        l->traps_since = step;
    else if (l->num_traps <= 0)
        l->traps_since = -1;
    l->last_traps = l->num_traps;
    ring_push(&l->alpha_hist, step, l->alpha);
    ring_push(&l->log_norm_hist, step, l->log_norm);
    ring_push(&l->max_abs_hist, step, l->max_abs);

    at_layer_phase p = classify(&t->o, l->phase, l->fit_ok, l->alpha);
    if (p == l->phase) {
        l->cand = l->phase;
        l->cand_count = 0;
        return AT_OK;
    }
    if (p != l->cand) {
        l->cand = p;
        l->cand_count = 0;
        l->cand_since = step;
    }
    if (++l->cand_count < t->o.confirm)
        return AT_OK;
    at_layer_phase from = l->phase;
    l->phase = p;
    l->phase_since = l->cand_since;
    l->cand_count = 0;
    at_phase_event *e =
        add_event(t, AT_EVENT_LAYER_PHASE, step, l->phase_since, l->name, (int)from, (int)p);
    if (!e)
        return AT_ERR_NOMEM;
    if (l->fit_ok)
        snprintf(e->text, sizeof e->text, "%s: %s -> %s since step %lld (alpha %.2f)", l->name,
                 at_layer_phase_name(from), at_layer_phase_name(p), (long long)l->phase_since,
                 l->alpha);
    else
        snprintf(e->text, sizeof e->text, "%s: %s -> %s since step %lld (power-law fit failed)",
                 l->name, at_layer_phase_name(from), at_layer_phase_name(p),
                 (long long)l->phase_since);
    return AT_OK;
}

/* Layer phases are weighted by eigenvalue count so that a small, noisy layer (a 10-class
 * head has 10 eigenvalues) cannot decide the run's phase alone. Grokking needs its condition
 * for opts.confirm snapshots in a row, like a layer phase; once reached the run does not go
 * back to pre-grokking. *since gets the first step of the new phase.
 *
 * The condition is the alphas' (trained layers, weighted alpha <= grokking_alpha) unless the
 * run memorised first: its layers went burnt before it ever grokked (a transformer under
 * weight decay: the decay leaves the random bulk decades below the learned directions, and
 * alpha reads ~1.3 from memorisation on, docs/detection.md). Alphas cannot mark its grokking;
 * weight decay's cleanup does: every layer shrinking (collapse.c measures it over the same
 * spans as the collapse trend). Such a run stays grokking once there: its burnt layers
 * predate its generalization. */
static at_run_phase run_phase_of(at_phase_tracker *t, int64_t step, int64_t *since)
{
    const double share = 0.25;
    *since = step;
    if (t->collapse.holds) {
        *since = t->collapse.since;
        return AT_RUN_COLLAPSE;
    }
    if (t->known == 0 && t->run_phase == AT_RUN_UNKNOWN)
        return AT_RUN_UNKNOWN;
    int grokking = t->memorized
                       ? t->collapse.shrinking
                       : t->untrained_share <= share && t->weighted_alpha <= t->o.grokking_alpha;
    if (grokking && t->grok_streak++ == 0)
        t->grok_since = step;
    if (!grokking)
        t->grok_streak = 0;
    if (t->memorized) {
        if (t->grokked)
            return AT_RUN_GROKKING;
        if (t->grok_streak < t->o.confirm)
            return AT_RUN_OVERFIT;
        *since = t->grok_since;
        return AT_RUN_GROKKING;
    }
    if (t->run_phase == AT_RUN_UNKNOWN || t->run_phase == AT_RUN_PRE_GROKKING) {
        if (t->grok_streak < t->o.confirm)
            return AT_RUN_PRE_GROKKING;
        *since = t->grok_since;
    }
    return t->burnt_share > share ? AT_RUN_OVERFIT : AT_RUN_GROKKING;
}

/* Run-level aggregates of the latest snapshot; returns the collapse detector's input. */
static at_collapse_input update_run_stats(at_phase_tracker *t, int64_t step)
{
    double norm = 0, asum = 0, wsum = 0, wn = 0, untrained = 0, burnt_evals = 0, evals = 0;
    size_t fitted = 0, burnt = 0;
    int traps = 0;
    t->present = 0;
    t->known = 0;
    for (size_t i = 0; i < t->n_layers; i++) {
        const layer *l = &t->layers[i];
        t->layer_norm[i] = l->present ? l->norm : NAN;
        t->layer_alpha[i] = l->present ? l->alpha : NAN;
        if (!l->present)
            continue;
        t->present++;
        t->known += l->phase != AT_LAYER_UNKNOWN;
        norm += l->norm;
        burnt += l->phase == AT_LAYER_BURNT;
        evals += (double)l->num_evals;
        if (l->phase != AT_LAYER_HEALTHY && l->phase != AT_LAYER_BURNT)
            untrained += (double)l->num_evals;
        if (l->phase == AT_LAYER_BURNT)
            burnt_evals += (double)l->num_evals;
        if (traps >= 0)
            traps = l->num_traps >= 0 ? traps + (int)l->num_traps : -1;
        if (l->fit_ok) {
            asum += l->alpha;
            wsum += l->alpha * (double)l->num_evals;
            wn += (double)l->num_evals;
            fitted++;
        }
    }
    t->mean_alpha = fitted ? asum / (double)fitted : NAN;
    t->weighted_alpha = wn > 0 ? wsum / wn : NAN;
    t->frac_burnt = t->present ? (double)burnt / (double)t->present : 0.0;
    t->untrained_share = evals > 0 ? untrained / evals : 1.0;
    t->burnt_share = evals > 0 ? burnt_evals / evals : 0.0;
    t->log_norm = norm > 0 ? log10(norm) : NAN;
    if (t->log_norm > t->log_norm_max)
        t->log_norm_max = t->log_norm;
    ring_push(&t->run_log_norm, step, t->log_norm);
    ring_push(&t->run_mean_alpha, step, t->mean_alpha);
    at_collapse_input in = {.step = step,
                            .log_norm = t->log_norm,
                            .weighted_alpha = t->weighted_alpha,
                            .untrained_share = t->untrained_share,
                            .traps = traps,
                            .grokked = t->grokked,
                            .n_layers = t->n_layers,
                            .norm = t->layer_norm,
                            .alpha = t->layer_alpha};
    return in;
}

int at_phase_tracker_end_snapshot(at_phase_tracker *self, int64_t step,
                                  const at_phase_event **events, size_t *n_events)
{
    if (events)
        *events = NULL;
    if (n_events)
        *n_events = 0;
    if (!self || step < self->last_step)
        return AT_ERR_ARG;
    int any = 0;
    for (size_t i = 0; i < self->n_layers; i++)
        any |= self->layers[i].fed;
    if (!any)
        return AT_ERR_ARG;
    self->n_events = 0;
    int rc = AT_OK;
    for (size_t i = 0; i < self->n_layers && !rc; i++)
        rc = update_layer(self, &self->layers[i], step);
    self->last_step = step;
    self->snapshots++;
    at_collapse_input in = update_run_stats(self, step);
    if (!rc)
        rc = at_collapse_update(&self->collapse, &in);

    int64_t since;
    at_run_phase p = run_phase_of(self, step, &since);
    if (!rc && p != self->run_phase) {
        at_phase_event *e =
            add_event(self, AT_EVENT_RUN_PHASE, step, since, "", (int)self->run_phase, (int)p);
        if (!e) {
            rc = AT_ERR_NOMEM;
        } else {
            snprintf(e->text, sizeof e->text, "run: %s -> %s at step %lld",
                     at_run_phase_name(self->run_phase), at_run_phase_name(p), (long long)since);
            /* Memorised: burnt before grokking; its grokking is then judged by the norm. */
            if (self->run_phase == AT_RUN_PRE_GROKKING && p == AT_RUN_OVERFIT) {
                self->memorized = 1;
                self->grok_streak = 0;
                size_t len = strlen(e->text);
                snprintf(e->text + len, sizeof e->text - len,
                         " (memorised: burnt before grokking; it may still grok under weight "
                         "decay)");
            }
            self->grokked |= p == AT_RUN_GROKKING;
            self->run_phase = p;
            self->run_since = since;
        }
    }
    if (events)
        *events = self->events;
    if (n_events)
        *n_events = self->n_events;
    return rc;
}

size_t at_phase_tracker_num_layers(const at_phase_tracker *self)
{
    return self ? self->n_layers : 0;
}

int at_phase_tracker_layer(const at_phase_tracker *self, size_t i, at_layer_state *out)
{
    if (!self || !out || i >= self->n_layers)
        return AT_ERR_ARG;
    const layer *l = &self->layers[i];
    out->name = l->name;
    out->phase = l->phase;
    out->phase_since = l->phase_since;
    out->last_step = l->last_step;
    out->alpha = l->last_alpha;
    out->alpha_slope = at_ring_slope(&l->alpha_hist);
    int64_t s;
    double v = NAN;
    if (at_ring_len(&l->log_norm_hist))
        at_ring_get(&l->log_norm_hist, at_ring_len(&l->log_norm_hist) - 1, &s, &v);
    out->log_norm = v;
    out->log_norm_slope = at_ring_slope(&l->log_norm_hist);
    out->max_abs = l->last_max_abs;
    out->max_abs_growth = NAN;
    if (at_ring_len(&l->max_abs_hist) >= 2) {
        double first;
        at_ring_get(&l->max_abs_hist, 0, &s, &first);
        if (first > 0 && isfinite(l->last_max_abs))
            out->max_abs_growth = l->last_max_abs / first;
    }
    out->num_traps = l->last_traps;
    out->trap_max_ratio = l->last_trap_ratio;
    out->traps_since = l->traps_since;
    return AT_OK;
}

void at_phase_tracker_run(const at_phase_tracker *self, at_run_state *out)
{
    memset(out, 0, sizeof *out);
    out->phase = self->run_phase;
    out->phase_since = self->run_since;
    out->last_step = self->last_step;
    out->snapshots = self->snapshots;
    out->layers = self->present;
    out->mean_alpha = self->mean_alpha;
    out->weighted_alpha = self->weighted_alpha;
    out->frac_burnt = self->frac_burnt;
    out->log_norm = self->log_norm;
    out->log_norm_slope = at_ring_slope(&self->run_log_norm);
    out->log_norm_peak_drop = self->snapshots ? self->log_norm - self->log_norm_max : 0.0;
    out->mean_alpha_slope = at_ring_slope(&self->run_mean_alpha);
    out->collapse = self->collapse.holds;
    out->collapse_since = self->collapse.holds ? self->collapse.since : -1;
    snprintf(out->collapse_evidence, sizeof out->collapse_evidence, "%s", self->collapse.evidence);
}

int at_phase_tracker_mean_alpha_streak(const at_phase_tracker *t, double x)
{
    int n = 0;
    for (int i = at_ring_len(&t->run_mean_alpha) - 1; i >= 0; i--) {
        int64_t s;
        double v;
        at_ring_get(&t->run_mean_alpha, i, &s, &v);
        if (!(v < x))
            break;
        n++;
    }
    return n;
}

int at_phase_tracker_confirm(const at_phase_tracker *t)
{
    return t->o.confirm;
}
