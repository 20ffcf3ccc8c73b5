/* SPDX-License-Identifier: Apache-2.0 */
/* sched.h -- the order of a fast-mode refresh round (internal to core; the pool runs rounds,
 * pool.h's AT_POOL_LATEST).
 *
 * First the layers passed over max_wait rounds (no starvation; longest passed over first),
 * then layers never analysed (oldest snapshot first), then by staleness (seconds since the
 * layer's last result) times change (its last relative weight change; 1 when unknown, at
 * least 1e-6 so that an unchanged layer still ages).
 */
#ifndef ALPHATOP_SCHED_INTERNAL_H
#define ALPHATOP_SCHED_INTERNAL_H

#include <stddef.h>

/* What a layer is ranked by. */
typedef struct at_sched_layer {
    int waited;         /* rounds passed over while waiting */
    int analysed;       /* has a result */
    double submitted;   /* monotonic seconds its waiting snapshot arrived */
    double last_done;   /* monotonic seconds of its last result */
    double last_change; /* relative weight change its last result reported; NAN: unknown */
} at_sched_layer;

/* One waiting layer of a round. */
typedef struct at_sched_pick {
    size_t idx;                  /* the caller's index of the layer */
    const at_sched_layer *layer; /* borrowed */
    int cls;                     /* set by at_sched_order: 0 starving, 1 never analysed, 2 rest */
    double score;                /* set by at_sched_order: larger first within a class */
} at_sched_pick;

/* Sorts p[0..n) into the round's order, first to analyse first, ranked at now (monotonic
 * seconds) with max_wait as above. */
void at_sched_order(at_sched_pick *p, size_t n, double now, int max_wait);

#endif
