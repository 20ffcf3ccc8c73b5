/* phase_internal.h -- shared between phase.c and collapse.c; not installed. */
#ifndef ALPHATOP_PHASE_INTERNAL_H
#define ALPHATOP_PHASE_INTERNAL_H

#include <stdint.h>

/* The last cap (step, value) pairs, oldest first through at_ring_get. */
typedef struct at_ring {
    int64_t *step;
    double *value;
    int cap, len, head;
} at_ring;

/* Pair i (0 = oldest of the len kept). */
void at_ring_get(const at_ring *r, int i, int64_t *step, double *value);

/* Least-squares slope of the finite values per 1000 steps; NAN with fewer than 3. */
double at_ring_slope(const at_ring *r);

typedef struct at_phase_tracker at_phase_tracker;

/* Consecutive latest snapshots (at most the trend window) whose mean alpha is below x. */
int at_phase_tracker_mean_alpha_streak(const at_phase_tracker *t, double x);

/* The tracker's opts.confirm. */
int at_phase_tracker_confirm(const at_phase_tracker *t);

/* What the collapse detector sees of one completed snapshot. */
typedef struct at_collapse_input {
    int64_t step;
    const at_ring *log_norm; /* log10 of the summed squared Frobenius norms, per snapshot */
    double log_norm_max;     /* running maximum of that */
    const at_ring *alpha;    /* mean alpha weighted by eigenvalue count, per snapshot */
    double untrained_share;  /* share of eigenvalues in layers raw, failed or unknown */
    int traps;               /* total correlation traps in this snapshot (-1: not computed) */
} at_collapse_input;

/* Detector state; a verdict latches once reached. */
typedef struct at_collapse {
    int holds;
    int64_t since; /* first snapshot of the streak that made the verdict */
    int streak;    /* consecutive snapshots meeting every condition */
    int64_t streak_since;
    char evidence[300];
} at_collapse;

void at_collapse_init(at_collapse *c);

/* Feeds one snapshot; confirm is the number of consecutive snapshots the conditions must hold. */
void at_collapse_update(at_collapse *c, const at_collapse_input *in, int confirm);

#endif
