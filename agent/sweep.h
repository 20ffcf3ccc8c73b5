/* SPDX-License-Identifier: Apache-2.0 */
/* sweep.h -- the snapshot the agent is sending, position by position (internal to agent/).
 *
 * A snapshot is a sweep over the model's layers that may take several passes (one per
 * training step) when the byte budget cannot hold every layer at once: each pass visits every
 * position in order, and each position is sent once per snapshot. The first pass fixes the
 * positions: how many, and an identity (name, kind, dtype, shapes) for each; a later pass that
 * visits a different layer list marks the sweep changed, and the agent abandons it.
 *
 * A plain value type, no ZeroMQ and no lock: the agent holds one inside its mutex.
 */
#ifndef ALPHATOP_AGENT_SWEEP_H
#define ALPHATOP_AGENT_SWEEP_H

#include <stddef.h>
#include <stdint.h>

/* What happened to a position in this snapshot. */
enum {
    AT_POS_TODO = 0,     /* not sent yet */
    AT_POS_SENT = 1,     /* queued */
    AT_POS_SKIPPED = 2,  /* left out: it can never fit the budget */
    AT_POS_ELSEWHERE = 3 /* another rank publishes it */
};

typedef struct at_sweep {
    int open;           /* a snapshot is being sent */
    int changed;        /* a pass visited another layer list: abandon at the pass's end */
    int64_t seq;        /* its sequence number */
    int64_t first_step; /* step of its first pass */
    int64_t last_step;  /* step of the last layer sent */
    int64_t due_step;   /* the last due step it stood for (a later one is a dropped snapshot) */
    int64_t n;          /* positions; -1 until the first pass ended */
    int64_t cursor;     /* positions visited in the current pass */
    int64_t done;       /* positions no longer AT_POS_TODO */
    int64_t sent;       /* positions AT_POS_SENT */
    int64_t skipped;    /* positions AT_POS_SKIPPED */
    unsigned char *pos; /* per position: AT_POS_* */
    uint64_t *ident;    /* per position: the identity of its layer (first pass) */
    size_t cap;
} at_sweep;

/* Identity of a layer for the check above: a 64-bit hash of its name and the n integers in v
 * (kind, dtype, flags, shapes). */
uint64_t at_sweep_ident(const char *name, const int64_t *v, int n);

/* Opens a new snapshot seq at step (capacity is kept from earlier snapshots). */
void at_sweep_start(at_sweep *s, int64_t seq, int64_t step);

/* Starts a pass (cursor 0). */
void at_sweep_pass(at_sweep *s);

/* Visits the pass's next position with the layer of identity ident: sets *index and returns
 * its AT_POS_* state; -1 when the layer list differs from the first pass (s->changed is set);
 * -2 when out of memory (first pass only). */
int at_sweep_visit(at_sweep *s, uint64_t ident, int64_t *index);

/* 1 when the pass's next position is one the first pass visited with the layer of identity
 * ident (so that layer was validated then), else 0. */
int at_sweep_known(const at_sweep *s, uint64_t ident);

/* Records what happened to position index (which was AT_POS_TODO). */
void at_sweep_mark(at_sweep *s, int64_t index, int state);

/* Ends a pass: the first one fixes n. Returns 1 when every position is done, 0 when some are
 * still to send, -1 when the layer list changed (the caller abandons the snapshot). */
int at_sweep_pass_end(at_sweep *s);

/* Frees the arrays. */
void at_sweep_release(at_sweep *s);

#endif
