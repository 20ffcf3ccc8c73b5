/* SPDX-License-Identifier: Apache-2.0 */
/* sched.c -- the order of a fast-mode refresh round (see sched.h). */
#include "sched.h"

#include <math.h>
#include <stdlib.h>

/* Floor of a layer's change in the score: a skipped (unchanged) layer still ages. */
#define MIN_CHANGE 1e-6

static int pick_cmp(const void *x, const void *y)
{
    const at_sched_pick *a = x, *b = y;
    if (a->cls != b->cls)
        return a->cls - b->cls;
    return (a->score < b->score) - (a->score > b->score);
}

void at_sched_order(at_sched_pick *p, size_t n, double now, int max_wait)
{
    for (size_t i = 0; i < n; i++) {
        const at_sched_layer *l = p[i].layer;
        if (l->waited >= max_wait) {
            p[i].cls = 0;
            p[i].score = l->waited;
        } else if (!l->analysed) {
            p[i].cls = 1;
            p[i].score = now - l->submitted;
        } else {
            p[i].cls = 2;
            double change = isnan(l->last_change) ? 1.0 : fmax(l->last_change, MIN_CHANGE);
            p[i].score = (now - l->last_done) * change;
        }
    }
    qsort(p, n, sizeof *p, pick_cmp);
}
