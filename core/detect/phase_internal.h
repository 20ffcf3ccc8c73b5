/* SPDX-License-Identifier: Apache-2.0 */
/* phase_internal.h -- shared between phase.c, stoprules.c and collapse.c; not installed. */
#ifndef ALPHATOP_PHASE_INTERNAL_H
#define ALPHATOP_PHASE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/phase.h"

/* The last `keep` (step, value) pairs, oldest first through at_ring_get, contiguous in
 * memory (storage of 2 * keep, compacted when full). */
typedef struct at_ring {
    int64_t *step;
    double *value;
    int keep, n;
} at_ring;

/* Pairs held (at most keep), and pair i (0 = oldest held). */
int at_ring_len(const at_ring *r);
void at_ring_get(const at_ring *r, int i, int64_t *step, double *value);

/* at_slope (trend.h) of the pairs held. */
double at_ring_slope(const at_ring *r);

typedef struct at_phase_tracker at_phase_tracker;

/* Consecutive latest snapshots (at most the trend window) whose mean alpha is below x. */
int at_phase_tracker_mean_alpha_streak(const at_phase_tracker *t, double x);

/* The tracker's opts.confirm. */
int at_phase_tracker_confirm(const at_phase_tracker *t);

/* What the collapse detector sees of one completed snapshot. */
typedef struct at_collapse_input {
    int64_t step;
    double log_norm;        /* log10 of the summed squared Frobenius norms of all layers */
    double weighted_alpha;  /* mean alpha weighted by eigenvalue count (NAN: none fitted) */
    double untrained_share; /* share of eigenvalues in layers raw, failed or unknown */
    int traps;              /* total correlation traps in this snapshot (-1: not computed) */
    int grokked;            /* the run has been in its grokking phase before this snapshot */
    size_t n_layers;        /* the tracker's layers so far, in first-seen order */
    const double *norm;     /* per layer: squared Frobenius norm; NAN when not in the snapshot */
    const double *alpha;    /* per layer: alpha; NAN for a failed fit or not in the snapshot */
} at_collapse_input;

/* Detector state; a verdict latches once reached. Keeps the run's history (per snapshot: step,
 * log_norm, weighted alpha, and `stride` per-layer norms and alphas) back to the oldest step
 * any future span can reach, and scratch space for one span. */
typedef struct at_collapse {
    int confirm;      /* fewest consecutive snapshots the conditions must hold */
    double span;      /* a span covers at least this share of the steps so far */
    double hold;      /* the conditions must hold over this share of the steps so far */
    double alpha_min; /* growth-weighted alpha threshold; 0 = off */
    int64_t *step;
    double *log_norm, *alpha;
    double *layer_norm, *layer_alpha; /* [snapshot * stride + layer] */
    size_t n, cap, stride;
    double *scratch; /* cap entries */
    double log_norm_max;
    int holds;
    int shrinking;      /* the latest span: every layer's norm falls, the summed squared norm by
                           at least SHRINK_MIN (log10) over the span (collapse.c) */
    double shrink_drop; /* how far the summed log_norm fell over the latest span (fit) */
    int64_t since;      /* first snapshot of the streak that made the verdict */
    int streak;
    int64_t streak_since;
    char evidence[300];
} at_collapse;

void at_collapse_init(at_collapse *c, const at_phase_opts *o);
void at_collapse_free(at_collapse *c);

/* Feeds one snapshot (in borrowed). Returns AT_OK or AT_ERR_NOMEM (the snapshot is then not
 * counted). */
int at_collapse_update(at_collapse *c, const at_collapse_input *in);

#endif
