/* SPDX-License-Identifier: Apache-2.0 */
/* wire.h -- helpers shared by the agent tests: endpoints, receiving, checking snapshots.
 * wire_feed and wire_drain fail the running cmocka test (wire_assert.c); the rest (wire.c) is
 * free of cmocka, for bench_hostile too. */
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

/* Receives until a message of type t (others freed) or timeout_ms passes (NULL). */
at_feed_msg *wire_recv_type(at_feed *f, at_proto_type t, int timeout_ms);

/* Fills n bytes with the pattern of layer `index` in snapshot `seq`. */
void wire_pattern(unsigned char *p, size_t n, int64_t seq, int64_t index);

/* Publishes snapshot at `step` with nlayers linear f32 layers of rows x cols, filled with
 * wire_pattern(seq, index) where seq is what the agent will assign (expected_seq). Returns the
 * status of at_agent_snapshot_end (or of the first failing call). */
int wire_publish(at_agent *a, int64_t step, int64_t expected_seq, int nlayers, int64_t rows,
                 int64_t cols);

/* Tallies what a feed received: complete snapshots (every layer present, in order, with the
 * right bytes), and anything inconsistent. */
typedef struct wire_tally {
    int64_t snapshots, layers, bad, goodbyes, hellos, last_seq, dropped_reported;
    int64_t open_seq, open_layers;
} wire_tally;

void wire_tally_init(wire_tally *t);
/* Feeds one message into the tally (does not free it). */
void wire_tally_add(wire_tally *t, const at_feed_msg *m);
/* Receives into the tally until a goodbye or timeout_ms without any message. */
void wire_drain(at_feed *f, wire_tally *t, int timeout_ms, int sleep_us);

#endif
