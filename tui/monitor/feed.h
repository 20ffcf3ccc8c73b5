/* SPDX-License-Identifier: Apache-2.0 */
/* feed.h -- the monitor's end of the wire: listens for trainers (agents), receives and decodes
 * their messages, rejects and counts bad ones, tracks which runs are connected, and sends
 * control messages (stop, pause, resume, interval) back to a given run.
 *
 * Socket: a ZeroMQ ROUTER bound to the endpoint; every agent connects a DEALER to it (see
 * docs/protocol.md for why). Poll-friendly: give at_feed_socket() to zmq_poll (ZMQ_POLLIN) next
 * to stdin, then call at_feed_recv(f, 0, ...) until it returns AT_ERR_AGAIN -- one ZeroMQ
 * message may carry a whole snapshot (many protocol messages).
 *
 *     at_feed_opts o; at_feed_opts_default(&o);
 *     char err[256];
 *     at_feed *f = at_feed_new(&o, err, sizeof err);
 *     at_feed_msg *m; at_proto_error e;
 *     int rc = at_feed_recv(f, 100, &m, &e);   // AT_OK: use m->msg, then at_feed_msg_free(m)
 *
 * Who may connect: an ipc socket file is created with mode 0600 (this user only); an endpoint
 * other machines may reach (anything but ipc, inproc and tcp/ws/wss on a loopback address, see
 * at_proto_endpoint_scope) needs CurveZMQ keys or allow_insecure. Near the process's file
 * descriptor limit the feed stops accepting new connections for a while (libzmq would spin on
 * tcp, or abort on ipc, when accept() fails for want of a descriptor); connected trainers stay.
 *
 * Who speaks for a run (docs/protocol.md section 1): the first connection that sends a message
 * for a run id and rank owns it -- normally with its hello -- and only it may send for that run
 * id and rank (the ranks of a sharded trainer each own theirs; a message that names no rank is
 * for the rank its connection owns, else rank 0); control messages for the run go to the
 * owner of each of its ranks. Another connection's messages for the run are refused
 * (reason AT_PROTO_E_NOT_OWNER, counted, and reported as a notice) until the run passes on:
 * after the owner's goodbye or once its connection is known gone (the socket monitor saw it
 * close; a send found it gone); with CurveZMQ also to a new connection with the owner's key
 * that says hello, while a connection with another key may take it only after a goodbye.
 * A connection is told apart by its routing id and Curve key.
 *
 * Threading: one thread uses an at_feed at a time (the UI thread). An at_feed_msg belongs to
 * whoever holds it and may be passed to and freed on another thread (a compute worker).
 * With CurveZMQ the feed runs one internal thread that answers ZeroMQ's authentication (ZAP)
 * requests against the allow-list.
 */
#ifndef ALPHATOP_FEED_H
#define ALPHATOP_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/protocol.h"
#include "alphatop/status.h"

typedef struct at_feed at_feed;

typedef struct at_feed_opts {
    const char *endpoint; /* NULL or "": at_proto_default_endpoint() (honours ALPHATOP_ENDPOINT) */
    /* CurveZMQ: the monitor's key file (public + secret) and the allow-list of trainers' public
     * keys (alphatop/keyfile.h). Both NULL: $ALPHATOP_CURVE_KEY and $ALPHATOP_CURVE_ALLOW if
     * set, else no encryption, and the feed refuses an endpoint other machines may reach
     * (AT_PROTO_SCOPE_NETWORK: tcp, ws, wss beyond loopback, pgm, epgm, vmci, tipc, ...) unless
     * allow_insecure is set. */
    const char *curve_keyfile;
    const char *curve_allow_file;
    int allow_insecure;     /* 1: allow such an endpoint without Curve (a warning) [0] */
    at_proto_limits limits; /* decoder limits [at_proto_limits_default] */
    int rcvhwm;   /* ZeroMQ messages queued per trainer connection before it is pushed back: a
                     message is one layer (or a whole version 1 snapshot), so this bounds the
                     monitor's memory for what it has not read yet [4] */
    int max_runs; /* entries (a run id and rank each) in the run table at most: when it is
                     full, the entries of ended runs and of owners known gone are forgotten
                     (their runs pass on, as after a goodbye); when every owner is still
                     connected, a message for a new one is refused and counted
                     (at_feed_stats.runs_refused) [AT_FEED_MAX_RUNS] */
} at_feed_opts;

/* Run table entries at most by default (at_feed_opts.max_runs). */
#define AT_FEED_MAX_RUNS 4096

/* Fills *o with the defaults. */
void at_feed_opts_default(at_feed_opts *o);

/* Binds the endpoint (an ipc socket file left by a crashed monitor is replaced; one a live
 * monitor listens on is refused with "another monitor is already listening", a path that is
 * not a socket with "is not a socket"). Returns NULL on failure with a message in err (errlen
 * bytes, may be NULL). Caller owns return value (free with at_feed_free). */
at_feed *at_feed_new(const at_feed_opts *opts, char *err, size_t errlen);

/* What the user should know about the feed just made, "" if nothing; lines separated by '\n',
 * for the caller to print: no Curve on a network endpoint (allow_insecure), a key file others
 * can read (at_keyfile_check_private), an allow-list with no keys. Owned by f. */
const char *at_feed_warning(const at_feed *f);

/* Closes the socket without waiting, removes an ipc socket file, frees. Messages already handed
 * out stay valid until their at_feed_msg_free. NULL-safe. */
void at_feed_free(at_feed *f);

/* The endpoint actually bound (for tcp port 0 / "*": the resolved one). Owned by f. */
const char *at_feed_endpoint(const at_feed *f);

/* For zmq_poll (ZMQ_POLLIN): the ROUTER socket. Owned by f; do not recv on it directly. */
void *at_feed_socket(at_feed *f);

/* One received, decoded message. msg.u.layer.data points into a payload buffer this object
 * holds (little-endian: a big-endian payload is byte-swapped on arrival and big_endian set to
 * 0). Caller owns it: release with at_feed_msg_free, on any thread. */
typedef struct at_feed_msg {
    at_proto_msg msg;
    uint32_t peer;   /* the connection it came from (stable while the trainer stays connected) */
    int64_t recv_ms; /* arrival time, milliseconds of CLOCK_MONOTONIC */
    void *payload_;  /* private */
} at_feed_msg;

/* Frees m and its payload. NULL-safe. */
void at_feed_msg_free(at_feed_msg *m);

/* Receives the next message, waiting at most timeout_ms (0: do not wait; -1: forever).
 * Returns AT_OK with *out set (caller owns it); AT_ERR_AGAIN if nothing arrived (or only
 * messages refused as not_owner: 64 of them at most per call); or the status of a rejected
 * message (AT_ERR_FORMAT, AT_ERR_SIZE, AT_ERR_VERSION, AT_ERR_MISSING,
 * AT_ERR_UNSUPPORTED, ...) with *err filled (reason and message; err may be NULL) -- the
 * message is counted and discarded and the caller simply calls again; AT_ERR_NET if the socket
 * failed. Between messages it may also return a notice for the user, err->reason
 * AT_PROTO_E_NONE and the text in err->message, then the caller calls again: AT_ERR_AUTH,
 * connections refused (a key not on the allow-list, a failed CurveZMQ handshake; summed, at
 * most one notice a second); AT_ERR_AUTH with err->reason AT_PROTO_E_NOT_OWNER, messages for
 * a run another connection owns refused (counted in at_feed_stats.rejected_by, never returned
 * one by one; a notice per claiming connection and run at most once a second, naming both
 * connections: routing-id number, process id or address, key); AT_ERR_IO, the feed stopped or
 * resumed accepting connections at the file descriptor limit. Hello requests (to runs not seen
 * before, and to a connection a run passed to without its hello), and the run table, are
 * handled here. */
int at_feed_recv(at_feed *f, int timeout_ms, at_feed_msg **out, at_proto_error *err);

/* A run known to the feed: one entry per rank that spoke for it. */
typedef struct at_feed_run {
    char run[AT_PROTO_MAX_ID];
    int64_t rank;     /* the rank this entry is for (0 for a trainer that is not sharded) */
    uint32_t peer;    /* the owner: the connection its control messages go to */
    int connected;    /* 0 after its goodbye, or once the owner's connection is known gone */
    int hello_seen;   /* a hello arrived from the owner */
    int stop_acked;   /* the owner acknowledged a stop */
    int64_t last_ms;  /* last message, CLOCK_MONOTONIC milliseconds */
    int64_t messages; /* messages received from it */
    int64_t dropped;  /* the agent's latest drop count (snapshots) */
    int64_t bytes;    /* bytes of its accepted messages (headers + payloads) */
} at_feed_run;

/* Number of entries (a run and rank each) held (see max_runs), and the i-th (0 <= i < count, in
 * order of first appearance), or the first one of the run named run (NULL if unknown): found
 * in constant time, however many runs came. Pointers are owned by
 * f, valid until the next at_feed_recv. */
int at_feed_run_count(const at_feed *f);
const at_feed_run *at_feed_run_at(const at_feed *f, int i);
const at_feed_run *at_feed_run_find(const at_feed *f, const char *run);

/* Control, to the owner of each rank of the run named run: stop with a reason (1..1023 bytes),
 * pause (paused = 1) or resume (0) snapshots, change the snapshot interval (>= 1). Returns
 * AT_OK (queued to one rank at least), AT_ERR_NOTFOUND (run unknown or disconnected),
 * AT_ERR_AGAIN (its queue is full) or AT_ERR_ARG. */
int at_feed_stop(at_feed *f, const char *run, const char *reason);
int at_feed_pause(at_feed *f, const char *run, int paused);
int at_feed_set_interval(at_feed *f, const char *run, int64_t interval);

/* Counters since at_feed_new. */
typedef struct at_feed_stats {
    int64_t messages;                      /* accepted protocol messages */
    int64_t bytes;                         /* bytes of accepted messages (headers + payloads) */
    int64_t rejected;                      /* rejected messages, all reasons */
    int64_t rejected_by[AT_PROTO_E_COUNT]; /* per at_proto_reason (wrong_direction: a trainer
                                              sent a control message; not_owner: a message for
                                              a run another connection owns) */
    int64_t auth_denied;                   /* connections refused by the allow-list (Curve) */
    int64_t handshake_failed;              /* connections whose handshake failed (Curve on one
                                              side only, the wrong monitor key, garbage) */
    int64_t accept_pauses;                 /* times accepting stopped at the descriptor limit */
    int64_t controls_sent;                 /* stop, pause, resume, interval, hello_request (not the
                                              goodbye_ack every goodbye gets) */
    int64_t runs_forgotten;                /* run table entries of ended runs or gone owners
                                              dropped to make room (max_runs) */
    int64_t runs_refused;                  /* messages for a new run refused: the table was
                                              full of connected runs (max_runs) */
} at_feed_stats;

/* Fills *s (after reading what the socket reported since the last call). */
void at_feed_stats_get(at_feed *f, at_feed_stats *s);

/* The last error's message ("" if none). Owned by f. */
const char *at_feed_last_error(const at_feed *f);

#endif
