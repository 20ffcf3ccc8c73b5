/* SPDX-License-Identifier: Apache-2.0 */
/* wire.c -- helpers shared by the agent tests and bench_hostile (see wire.h); no cmocka here,
 * the asserting helpers are in wire_assert.c. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wire.h"

void wire_ipc(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "ipc:///tmp/at-test-%d-%s.ipc", (int)getpid(), tag);
}

at_feed_msg *wire_recv_type(at_feed *f, at_proto_type t, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        at_feed_msg *m = NULL;
        int rc = at_feed_recv(f, 10, &m, NULL);
        if (rc == AT_OK && m->msg.type == t)
            return m;
        at_feed_msg_free(m);
    }
    return NULL;
}

void wire_pattern(unsigned char *p, size_t n, int64_t step, int64_t index)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(step * 7 + index * 13 + (int64_t)i * 31 + (int64_t)(i >> 8));
}

int wire_publish(at_agent *a, int64_t step, int nlayers, int64_t rows, int64_t cols)
{
    size_t n = (size_t)(rows * cols) * 4;
    unsigned char *w = malloc(n);
    int rc = at_agent_snapshot_begin(a, step);
    for (int i = 0; rc == AT_OK && i < nlayers; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d.weight", i);
        wire_pattern(w, n, step, i);
        int r = at_agent_publish(a, name, AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2,
                                 (int64_t[]){rows, cols}, w, 0);
        if (r != AT_OK && r != AT_ERR_AGAIN)
            rc = r;
    }
    int end = at_agent_snapshot_end(a);
    free(w);
    return rc == AT_OK ? end : rc;
}

void wire_tally_init(wire_tally *t)
{
    memset(t, 0, sizeof *t);
    t->last_seq = -1;
    t->open_seq = -1;
}

/* A new snapshot begins (or none): one left without its end is incomplete. */
static void tally_open(wire_tally *t, int64_t seq)
{
    if (t->open_layers)
        t->incomplete++;
    t->open_seq = seq;
    t->open_layers = 0;
    t->open_mask = 0;
    t->open_skips = 0;
    t->open_first = INT64_MAX;
    t->open_last = -1;
}

void wire_tally_add(wire_tally *t, const at_feed_msg *m)
{
    const at_proto_msg *p = &m->msg;
    switch (p->type) {
    case AT_PROTO_LAYER: {
        const at_proto_layer *l = &p->u.layer;
        if (l->seq != t->open_seq)
            tally_open(t, l->seq);
        unsigned char *want = malloc(l->nbytes);
        wire_pattern(want, l->nbytes, l->step, l->index);
        if (l->index < 0 || l->index >= 64 || (t->open_mask >> l->index & 1) ||
            memcmp(want, l->data, l->nbytes) != 0)
            t->bad++;
        else
            t->open_mask |= (uint64_t)1 << l->index;
        free(want);
        t->open_first = l->step < t->open_first ? l->step : t->open_first;
        t->open_last = l->step > t->open_last ? l->step : t->open_last;
        t->open_layers++;
        t->layers++;
        break;
    }
    case AT_PROTO_SKIP:
        if (p->u.skip.seq != t->open_seq)
            tally_open(t, p->u.skip.seq);
        if (p->u.skip.index < 64)
            t->open_mask |= (uint64_t)1 << p->u.skip.index;
        t->skips++;
        t->open_skips++;
        break;
    case AT_PROTO_SNAPSHOT_END: {
        const at_proto_snapshot_end *e = &p->u.snapshot_end;
        if (e->seq <= t->last_seq)
            t->bad++;
        else if (e->seq == t->open_seq && e->layers == t->open_layers &&
                 e->skipped == t->open_skips &&
                 __builtin_popcountll(t->open_mask) + t->elsewhere == e->total &&
                 (!e->layers || (e->first_step <= t->open_first && e->step == t->open_last))) {
            t->snapshots++;
            t->spanning += t->open_first < t->open_last;
        } else {
            t->incomplete++;
        }
        t->last_seq = e->seq;
        t->dropped_reported = e->dropped;
        t->open_layers = 0;
        tally_open(t, -1);
        break;
    }
    case AT_PROTO_GOODBYE:
        t->goodbyes++;
        t->dropped_reported = p->u.goodbye.dropped;
        break;
    case AT_PROTO_HELLO:
        t->hellos++;
        break;
    case AT_PROTO_SCALARS:
        t->scalars++;
        t->last_scalars_step = p->u.scalars.step;
        break;
    default:
        break;
    }
}
