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

void wire_pattern(unsigned char *p, size_t n, int64_t seq, int64_t index)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seq * 7 + index * 13 + (int64_t)i * 31 + (int64_t)(i >> 8));
}

int wire_publish(at_agent *a, int64_t step, int64_t expected_seq, int nlayers, int64_t rows,
                 int64_t cols)
{
    size_t n = (size_t)(rows * cols) * 4;
    unsigned char *w = malloc(n);
    int rc = at_agent_snapshot_begin(a, step);
    for (int i = 0; rc == AT_OK && i < nlayers; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d.weight", i);
        wire_pattern(w, n, expected_seq, i);
        rc = at_agent_publish(a, name, AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2,
                              (int64_t[]){rows, cols}, w, 0);
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

void wire_tally_add(wire_tally *t, const at_feed_msg *m)
{
    const at_proto_msg *p = &m->msg;
    switch (p->type) {
    case AT_PROTO_LAYER: {
        const at_proto_layer *l = &p->u.layer;
        if (l->seq != t->open_seq) {
            if (t->open_layers)
                t->bad++; /* the previous snapshot never ended */
            t->open_seq = l->seq;
            t->open_layers = 0;
        }
        unsigned char *want = malloc(l->nbytes);
        wire_pattern(want, l->nbytes, l->seq, l->index);
        if (l->index != t->open_layers || memcmp(want, l->data, l->nbytes) != 0)
            t->bad++;
        free(want);
        t->open_layers++;
        t->layers++;
        break;
    }
    case AT_PROTO_SNAPSHOT_END:
        if (p->u.snapshot_end.seq != t->open_seq || p->u.snapshot_end.layers != t->open_layers ||
            p->u.snapshot_end.seq <= t->last_seq)
            t->bad++;
        else
            t->snapshots++;
        t->last_seq = p->u.snapshot_end.seq;
        t->dropped_reported = p->u.snapshot_end.dropped;
        t->open_layers = 0;
        t->open_seq = -1;
        break;
    case AT_PROTO_GOODBYE:
        t->goodbyes++;
        t->dropped_reported = p->u.goodbye.dropped;
        break;
    case AT_PROTO_HELLO:
        t->hellos++;
        break;
    default:
        break;
    }
}
