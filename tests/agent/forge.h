/* SPDX-License-Identifier: Apache-2.0 */
/* forge.h -- a peer that speaks the protocol for any run id it likes, on a raw ZeroMQ DEALER:
 * the forger of the run-ownership tests, and the many short runs of the run-table test. Each
 * call sends one ZeroMQ message (a snapshot whole, as the agent does) and returns 0, or -1 if
 * ZeroMQ refused it. */
#ifndef AT_TEST_FORGE_H
#define AT_TEST_FORGE_H

#include <stdint.h>

#include "alphatop/protocol.h"

typedef struct forge forge;

/* Connects to endpoint in a ZeroMQ context of its own. NULL on failure. Caller owns return
 * value (forge_free). */
forge *forge_new(const char *endpoint);
void forge_free(forge *g);

/* hello (interval 10), stop_ack (reason "forged") or goodbye for run. */
int forge_send(forge *g, at_proto_type type, const char *run);

/* One snapshot of run: a linear f32 layer "fc" of rows x cols from w, with its checksum. */
int forge_snapshot(forge *g, const char *run, int64_t step, int64_t seq, const float *w,
                   int64_t rows, int64_t cols);

/* How many messages the monitor sent this peer within timeout_ms (waits that long for the
 * first one only). */
int forge_received(forge *g, int timeout_ms);

#endif
