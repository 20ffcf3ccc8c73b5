/* SPDX-License-Identifier: Apache-2.0 */
/* agent.h -- the trainer side: publishes weight snapshots and scalars of a training run to an
 * alphatop monitor over ZeroMQ, and hears the monitor's control messages (stop, pause, interval).
 *
 * Typical use:
 *     at_agent *a = at_agent_new("run-42", NULL, NULL);     // NULL: default endpoint, options
 *     if (!a) fprintf(stderr, "%s\n", at_agent_last_error(NULL));
 *     for (step = 1; ...; step++) {
 *         train_one_step();
 *         if (at_agent_snapshot_due(a, step) && at_agent_snapshot_begin(a, step) == AT_OK) {
 *             for each layer, in the same order every time:
 *                 at_agent_publish(a, name, AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w, 0);
 *             at_agent_snapshot_end(a);
 *         }
 *         at_agent_log(a, step, 2, (const char *[]){"loss", "lr"}, (double[]){loss, lr});
 *         if (at_agent_should_stop(a, reason, sizeof reason)) break;
 *     }
 *     at_agent_free(a);                                      // flushes within linger_ms
 *
 * Cost to the trainer: at_agent_publish copies the tensor once into a buffer the agent owns and
 * queues it at once, as its own ZeroMQ message; ZeroMQ's I/O thread sends it from there without
 * another copy while the trainer copies the next layer. No call ever waits for the network
 * (non-blocking sends; at_agent_free waits at most linger_ms).
 *
 * Snapshots of any size, bounded memory (docs/protocol.md section 6): the bytes held by the
 * agent (queued and not yet written to the socket, plus idle buffers kept for reuse) never
 * exceed budget_bytes, but for a 64 KiB reserve above it that only the small messages without
 * weights may use (scalars, hello, goodbye, snapshot ends), so that a snapshot filling the
 * budget does not crowd out the numbers logged meanwhile or the run's end. A snapshot is a sweep
 * over the model's layers, one message per layer, closed by a snapshot_end once every layer went
 * out. A layer that does not fit now (the monitor is slow, absent, or the model is larger than the
 * budget) is not dropped but deferred: the snapshot stays open and at_agent_snapshot_due returns 1
 * at every following step, so the trainer's loop publishes again and the agent sends the layers
 * still missing, copied from the weights of that later step (each layer message carries the step of
 * its weights; the snapshot_end its first and last step). Layers already sent are skipped at no
 * cost. A due step that finds the previous snapshot still open is not taken: counted in
 * snapshots_dropped, with the reason in at_agent_last_drop, and reported to the monitor in the
 * next hello, snapshot_end, scalars and goodbye. A layer that can never fit (larger than an
 * explicit budget) is left out of every snapshot: at_agent_publish returns AT_ERR_SIZE, the
 * monitor gets a skip message naming it, and layers_skipped counts it. The default budget
 * (budget_bytes 0) grows to twice the largest layer, so every layer fits.
 *
 * The monitor may start before or after the trainer, or restart: the agent connects (DEALER to
 * the monitor's ROUTER) and ZeroMQ reconnects on its own. Where ZeroMQ gives up (after a
 * protocol error, e.g. a frame over 64 KiB from whoever listens, or a failed handshake) the
 * agent makes a new socket on its next call, waiting 0.1 s, then twice as long each time the
 * new link fails again quickly (at most 30 s); messages queued on the old socket are lost and
 * the hello is sent again. Default endpoint: $ALPHATOP_ENDPOINT,
 * else ipc:///tmp/alphatop-UID.ipc (local only). tcp endpoints work too ("tcp://127.0.0.1:5555");
 * anything beyond loopback should use CurveZMQ (curve_server_key + curve_client_keyfile).
 *
 * Sharded trainers (tensor or fully sharded data parallel): every rank opens an agent with the
 * same run id and its rank, publishes the same layer positions in the same order, its own part
 * of a sharded layer with at_agent_publish_slice (the monitor assembles the whole layer), and
 * holds the position of a layer another rank publishes with the flag AT_AGENT_ELSEWHERE.
 *
 * Safe inside a trainer: no signal handlers, no output unless opts.verbose, and fork-safe: in a
 * forked child (e.g. a PyTorch DataLoader worker) every call is a harmless no-op (returns
 * AT_ERR_STATE, should_stop returns 0) and at_agent_free only releases the child's memory.
 *
 * Threading: every function may be called from any thread; an internal mutex serialises them.
 * at_agent_free must not race with other calls on the same agent.
 *
 * Errors: functions return AT_OK (0) or a negative at_status; at_agent_last_error() has detail.
 */
#ifndef ALPHATOP_AGENT_H
#define ALPHATOP_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/protocol.h"
#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct at_agent at_agent;

/* Options. Every field is 8 bytes wide (pointer or int64_t) so a binding (ctypes) can mirror the
 * struct without padding rules; new fields are only ever appended. at_agent_opts_default()
 * gives the values in brackets. */
typedef struct at_agent_opts {
    const char *model;     /* model name shown by the monitor [""] */
    const char *framework; /* "pytorch", "numpy", "c", ... ["c"] */
    const char *host;      /* host name in the hello [NULL: gethostname()] */
    int64_t rank;          /* this process's rank in a distributed run [0] */
    int64_t world_size;    /* number of ranks [1] */
    int64_t interval;      /* snapshot every this many steps, >= 1 [100] */
    int64_t budget_bytes;  /* most bytes held, see above; 0: automatic, 256 MiB or twice the
                              largest layer published, whichever is larger [0] */
    int64_t linger_ms;     /* at_agent_free waits at most this long to flush [2000] */
    int64_t checksum;      /* 1: send a CRC-32 of every payload (costs one pass) [0] */
    int64_t verbose;       /* 1: print errors to stderr; 0: never print anything [0] */
    /* CurveZMQ (both NULL: $ALPHATOP_CURVE_SERVER and $ALPHATOP_CURVE_KEY if set, else no
     * encryption, fine for ipc and loopback tcp). The monitor's public key, as Z85 text
     * (40 characters) or the path of its key file (".pub" is enough). */
    const char *curve_server_key;
    /* This trainer's key file (public + secret), whose public key the monitor allows. */
    const char *curve_client_keyfile;
    /* Tags of the first hello: ntags pairs tag_keys[i] = tag_values[i], copied, with the limits
     * of at_agent_set_tag (which adds or replaces tags later) [NULL, NULL, 0]. */
    const char *const *tag_keys;
    const char *const *tag_values;
    int64_t ntags;
} at_agent_opts;

/* Fills *opts with the defaults. */
AT_EXPORT void at_agent_opts_default(at_agent_opts *opts);

/* sizeof(at_agent_opts) in this build: a binding that mirrors the struct (ctypes) checks it
 * before it lets at_agent_opts_default write into its copy. */
AT_EXPORT size_t at_agent_opts_size(void);

/* Opens an agent for the run run_id (1..127 bytes, unique per run; several trainers may share
 * a monitor) on endpoint (NULL or "": the default above). opts NULL means defaults; the strings
 * in opts are copied. Every string the agent sends (run id, model, host, tags, layer and
 * scalar names) must be UTF-8 without control characters (docs/protocol.md section 3). Sends
 * the hello, with opts' tags. Returns NULL on failure (bad argument, a string the protocol
 * refuses, unreadable key file, ZeroMQ error); at_agent_last_error(NULL) then says why. Caller
 * owns return value (free with at_agent_free). */
AT_EXPORT at_agent *at_agent_new(const char *run_id, const char *endpoint,
                                 const at_agent_opts *opts);

/* Sends goodbye, then waits at most opts.linger_ms for the monitor to acknowledge it (it has
 * then read everything before it) and for queued messages to be written, and drops the rest.
 * Releases everything. NULL-safe. */
AT_EXPORT void at_agent_free(at_agent *a);

/* Adds or replaces a user tag (key 1..63 bytes, value 0..1023 bytes), sent in the hello, which
 * is re-sent before the next message. At most AT_PROTO_MAX_TAGS tags (AT_ERR_SIZE); AT_ERR_ARG
 * for a length out of range or text the protocol refuses (then the tags stay as they were). */
AT_EXPORT int at_agent_set_tag(at_agent *a, const char *key, const char *value);

/* 1 when a snapshot should be taken at this step: step is a multiple of the current interval
 * (which the monitor may change) and the monitor has not paused snapshots; else 0. */
AT_EXPORT int at_agent_snapshot_due(at_agent *a, int64_t step);

/* The current snapshot interval (opts.interval until the monitor changes it). */
AT_EXPORT int64_t at_agent_interval(at_agent *a);

/* 1 while the monitor has paused snapshots, else 0. A pause lasts until resume, or until a
 * monitor that does not know the run asks for its hello (the one that paused it is gone). */
AT_EXPORT int at_agent_paused(at_agent *a);

/* Starts a pass over the layers at training step `step` (>= 0): a new snapshot, or the
 * continuation of the open one (above). Returns AT_OK, or AT_ERR_AGAIN when snapshots are
 * paused: its at_agent_publish calls then return AT_ERR_AGAIN at no cost and
 * at_agent_snapshot_end closes the pass. A begin while a pass is open ends that pass first,
 * as at_agent_snapshot_end would. */
AT_EXPORT int at_agent_snapshot_begin(at_agent *a, int64_t step);

/* Flags for at_agent_publish. */
#define AT_AGENT_BASE 1u /* these are the base weights of a fine-tune (sent once, for deltas) */
#define AT_AGENT_ELSEWHERE                                                                         \
    2u /* another rank publishes this layer: only its position is held                             \
          (data may be NULL; nothing is sent) */

/* Adds the layer at the pass's next position (positions count the publish calls of a pass
 * from 0; every pass of a snapshot must make the same calls, in the same order, with the same
 * names and shapes): copies the tensor (row-major, native byte order, product(shape) x
 * dtype-size bytes at data; borrowed, not kept) and queues it. name is 1..255 bytes;
 * ndim/shape must fit the kind (linear, embedding, lora_A, lora_B: 2-D; conv1d: 3-D; conv2d:
 * 4-D). data may be NULL for a layer at_agent_layer_wanted says is not wanted: the position
 * advances without a copy. Returns AT_OK (queued, or held for another rank); AT_ERR_AGAIN when
 * nothing was copied (sent already in this snapshot, no room in the budget now: deferred to a
 * later pass, data NULL, paused, or the layer list differs from the snapshot's first pass:
 * then the snapshot is abandoned at its end); AT_ERR_SIZE when the layer can never fit the
 * explicit budget (left out: a skip message tells the monitor); AT_ERR_STATE when no pass is
 * open; AT_ERR_ARG/AT_ERR_SIZE for a bad name, kind, dtype or shape; AT_ERR_FORMAT for a name
 * the protocol refuses (a control character, bytes that are not UTF-8). */
AT_EXPORT int at_agent_publish(at_agent *a, const char *name, at_proto_kind kind,
                               at_proto_dtype dtype, int ndim, const int64_t *shape,
                               const void *data, unsigned flags);

/* As at_agent_publish, for a rank's slice of a sharded layer: data is the block of shape
 * `shape` of the whole layer (full_shape, same ndim) that starts at offset. The monitor
 * assembles the whole layer from every rank's slices of the same step. */
AT_EXPORT int at_agent_publish_slice(at_agent *a, const char *name, at_proto_kind kind,
                                     at_proto_dtype dtype, int ndim, const int64_t *shape,
                                     const void *data, unsigned flags, const int64_t *full_shape,
                                     const int64_t *offset);

/* 1 when the next at_agent_publish of the open pass -- a layer of nbytes payload bytes --
 * would copy it now; 0 when it would not (sent already in this snapshot, no room now, no pass
 * open). For callers whose copy is costly (a tensor on a GPU, to be moved to host memory
 * first): ask, then publish with data NULL when the answer is 0. */
AT_EXPORT int at_agent_layer_wanted(at_agent *a, uint64_t nbytes);

/* Ends the pass. When every position of the snapshot is sent (or skipped, or another rank's),
 * queues the snapshot_end and returns AT_OK. Otherwise returns AT_ERR_AGAIN: the snapshot
 * stays open for the next step (layers deferred), or it was abandoned (its layer list changed:
 * counted as dropped), or the pass was paused. AT_ERR_STATE when no pass is open. */
AT_EXPORT int at_agent_snapshot_end(at_agent *a);

/* Sends named numbers at a step (train/test loss, accuracy, learning rate, ...): n names
 * (1..63 bytes each) and values; n <= AT_PROTO_MAX_SCALARS. Non-finite values travel as null.
 * Returns AT_OK, AT_ERR_AGAIN (dropped: the budget and its small-message reserve are full;
 * counted in stats), AT_ERR_ARG, or
 * AT_ERR_FORMAT for a name the protocol refuses. */
AT_EXPORT int at_agent_log(at_agent *a, int64_t step, int n, const char *const *names,
                           const double *values);

/* 1 when the monitor asked the run to stop, else 0. The reason (NUL-terminated, truncated to
 * cap) goes to reason if not NULL. The first time it returns 1 the agent acknowledges the stop
 * to the monitor (stop_ack). Also processes any pending control messages. */
AT_EXPORT int at_agent_should_stop(at_agent *a, char *reason, size_t cap);

/* Counters, for the trainer's logs and for tests. New fields are only ever appended. */
typedef struct at_agent_stats {
    int64_t snapshots_sent;    /* snapshots completed: every layer sent, snapshot_end queued */
    int64_t snapshots_dropped; /* due snapshots not taken (the previous one still being sent)
                                  and snapshots abandoned (their layer list changed) */
    int64_t snapshots_skipped; /* snapshots not taken because the monitor paused them */
    int64_t messages_dropped;  /* scalars/hello/goodbye/stop_ack/skip dropped (budget and its
                                  small-message reserve full) */
    int64_t bytes_queued;      /* payload + header bytes handed to ZeroMQ, total */
    int64_t bytes_in_flight;   /* bytes held now: queued and not yet written, and idle buffers
                                  kept for reuse */
    int64_t peak_in_flight;    /* the largest bytes_in_flight seen; <= budget_bytes + 64 KiB
                                  (the small messages' reserve) */
    int64_t budget_bytes;      /* the budget now (the automatic one grows, see the options) */
    int64_t controls_received; /* control messages from the monitor */
    int64_t layers_sent;       /* layer messages queued */
    int64_t layers_deferred;   /* publishes of a layer that did not fit then (sent later) */
    int64_t layers_skipped;    /* layers left out: larger than the explicit budget */
    int64_t sweep_layers;      /* positions of the open snapshot; -1 before its first pass
                                  ended; 0 when none is open */
    int64_t sweep_done;        /* of those, sent, skipped or another rank's */
} at_agent_stats;

/* Fills *s. Also processes pending control messages. */
AT_EXPORT int at_agent_stats_get(at_agent *a, at_agent_stats *s);

/* The last error's message for a (never NULL, "" if none). With a == NULL: why the last
 * at_agent_new in this thread failed. Valid until the next call on the same agent/thread. */
AT_EXPORT const char *at_agent_last_error(const at_agent *a);

/* Why the last snapshot was dropped, or a layer left out, in words ("" if none yet). Owned by
 * a; valid until the next call on a. */
AT_EXPORT const char *at_agent_last_drop(const at_agent *a);

/* Generates a CurveZMQ key pair and writes it as a key file: path (public + secret, mode 0600)
 * and path + ".pub" (public only). See alphatop/keyfile.h for the format. Returns AT_OK,
 * AT_ERR_UNSUPPORTED (libzmq built without Curve) or AT_ERR_IO. */
AT_EXPORT int at_agent_keygen(const char *path);

#ifdef __cplusplus
}
#endif
#endif
