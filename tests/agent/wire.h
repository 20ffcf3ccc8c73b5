/* SPDX-License-Identifier: Apache-2.0 */
/* wire.h -- helpers shared by the agent tests: endpoints, receiving, checking snapshots.
 * wire_feed, wire_drain and wire_close fail the running cmocka test (wire_assert.c); the rest
 * (wire.c) is free of cmocka, for bench_hostile too. */
#ifndef AT_TEST_WIRE_H
#define AT_TEST_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/agent.h"
#include "feed.h"

/* A private ipc endpoint for this process and tag. */
void wire_ipc(char *buf, size_t n, const char *tag);

/* A feed on endpoint (asserts success); rcvhwm 0 means the default. */
at_feed *wire_feed(const char *endpoint, int rcvhwm);

/* A feed with options o (asserts success, the failure's message in the test's). */
at_feed *wire_feed_with(const at_feed_opts *o);

/* Receives until a message of type t (others freed) or timeout_ms passes (NULL). */
at_feed_msg *wire_recv_type(at_feed *f, at_proto_type t, int timeout_ms);

/* Fills n bytes with the pattern of layer `index` at training step `step`: the weights a
 * pass at that step copies, so a receiver can tell which step's weights it got. */
void wire_pattern(unsigned char *p, size_t n, int64_t step, int64_t index);

/* One pass at `step` over nlayers linear f32 layers of rows x cols, filled with
 * wire_pattern(step, index): begin, publish each, end. Returns the status of
 * at_agent_snapshot_end (AT_OK: the snapshot is complete), or of the first call that failed
 * otherwise than AT_ERR_AGAIN (a layer deferred or already sent). */
int wire_publish(at_agent *a, int64_t step, int nlayers, int64_t rows, int64_t cols);

/* Tallies what a feed received: complete snapshots (every position this run sent or skipped
 * present once, the layers with the bytes of the step their message names, and an end that
 * counts them), incomplete ones (an end that does not match what arrived, or none before the
 * next snapshot), and anything wrong. A test that leaves positions to other ranks says how
 * many per snapshot in `elsewhere`. */
typedef struct wire_tally {
    int64_t snapshots, incomplete, layers, skips, bad, goodbyes, hellos, last_seq;
    int64_t scalars, last_scalars_step; /* scalars messages, and the step of the latest */
    int64_t dropped_reported;
    int64_t spanning;              /* complete snapshots whose layers came from several steps */
    int64_t elsewhere;             /* positions per snapshot another rank sends (set by a test) */
    int64_t open_seq, open_layers; /* the snapshot arriving: its layer messages */
    int64_t open_skips;            /* its skip messages */
    uint64_t open_mask;            /* its positions seen (the tests use at most 64) */
    int64_t open_first, open_last; /* the steps of its layers */
} wire_tally;

void wire_tally_init(wire_tally *t);
/* Feeds one message into the tally (does not free it). */
void wire_tally_add(wire_tally *t, const at_feed_msg *m);
/* Receives into the tally until a goodbye or timeout_ms without any message. */
void wire_drain(at_feed *f, wire_tally *t, int timeout_ms, int sleep_us);

/* Frees agent a on another thread while this one drains f into t (wire_drain, 10 s, sleeping
 * sleep_us after each message): the agent waits for the monitor to acknowledge its goodbye,
 * and a monitor queue is only a few messages deep, so a test that is the monitor must read
 * while its agent closes. */
void wire_close(at_agent *a, at_feed *f, wire_tally *t, int sleep_us);

#endif
