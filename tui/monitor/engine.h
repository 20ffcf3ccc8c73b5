/* SPDX-License-Identifier: Apache-2.0 */
/* engine.h -- the monitor's engine: messages -> ingest -> analysis worker -> model, events,
 * headless output, run log.
 *
 * The engine orchestrates: messages come from the feed (feed.h: the monitor's socket) or from a
 * source the caller injects (at_engine_source: tests run the engine in-process); ingest.h turns
 * them into analysis jobs for the worker (worker.h) and events; the results go into the model
 * (model.h) the view draws, through one phase tracker per run and view (phase.h) and the stop
 * rules, and out as records (record.h: the schema and its table in docs/monitor.md) to the run
 * logs and -- headless -- as JSON lines:
 *     {"type":"layer","run":ID,"step":S,"view":"w"|"delta","name":N, <metric columns>,
 *      "mode":M,"kind":K,"shape":[...]}
 *     {"type":"scalars","run":ID,"step":S,"values":{NAME:VALUE,...}}
 *     {"type":"event","kind":K,"run":ID,"step":S,"layer":NAME, ...,"text":T}
 *     {"type":"stats",...}   (the last line of at_engine_run: rejections by reason, ...)
 * with K one of hello, goodbye, phase, run_phase, trap, stop, ack, drop, error, info, warning.
 *
 * Bounded memory: the engine stops reading the socket while the weights waiting for analysis
 * (the worker's jobs, ingest's slices and LoRA halves) exceed queue_bytes, or more than
 * max_open snapshots are in flight; ZeroMQ then holds at most the feed's rcvhwm messages per
 * trainer and pushes back to the trainers, whose agents defer their layers within their own
 * byte budgets (docs/protocol.md section 6). max_open counts per active run. From half of
 * queue_bytes on, a run holding more than its share has its layers shed so the others' are
 * still read, and in exact mode the worker gets one job per thread, the run served least
 * lately first (ingest.h, Fairness).
 *
 * Threading: every call on the UI thread; the worker runs on its own threads. The UI thread
 * zmq_polls at_engine_pollitems (plus its own stdin) and calls at_engine_step whenever one is
 * readable and at least every 100 ms.
 */
#ifndef ALPHATOP_ENGINE_H
#define ALPHATOP_ENGINE_H

#include <stdint.h>
#include <stdio.h>
#include <zmq.h>

#include "alphatop/protocol.h"
#include "model.h"

/* Where messages come from and stop requests go, when not the feed's socket. */
typedef struct at_engine_source {
    void *ctx; /* first argument of both functions */
    /* The next message, without waiting: AT_OK with *msg set (borrowed until the next call);
     * AT_ERR_AGAIN when none is waiting; AT_ERR_NET when the source failed; any other negative
     * status for a message the source rejected. err->message says why for the last two. */
    int (*next)(void *ctx, const at_proto_msg **msg, at_proto_error *err);
    /* Asks the trainer of run to stop, for reason: AT_OK or a negative status. */
    int (*stop)(void *ctx, const char *run, const char *reason);
    /* Asks the trainer of run to pause (paused 1) or resume (0) its snapshots: AT_OK or a
     * negative status. May be NULL: the source cannot (at_engine_pause says AT_ERR_UNSUPPORTED). */
    int (*pause)(void *ctx, const char *run, int paused);
} at_engine_source;

typedef struct at_engine_opts {
    const at_engine_source *source; /* NULL: listen on the feed socket (the next four options);
                                       else the messages of this source (copied) */
    const char *endpoint;           /* where to listen; NULL: $ALPHATOP_ENDPOINT or the default */
    const char *curve_key;          /* CurveZMQ key file and trainers' allow-list (feed.h); both */
    const char *curve_allow;        /* NULL: $ALPHATOP_CURVE_KEY / $ALPHATOP_CURVE_ALLOW if set */
    int allow_insecure;             /* listen beyond loopback without Curve (feed.h) */
    FILE *json_out;                 /* headless JSON lines go here (flushed per line); NULL: none */
    const char *record;             /* run log path; NULL: one default path per run; "-": none */
    int record_weights;             /* also record every snapshot's raw weights */
    int record_spectra;             /* also record every layer's eigenvalues */
    const char *base;               /* base checkpoint for delta mode (ckpt.h); NULL: none */
    const char *const *rules;       /* --stop-on rule strings (n_rules of them) */
    int n_rules;
    int fast;                /* fast mode instead of exact */
    int threads;             /* analysis threads, one layer each; 0 (default): every core */
    int64_t queue_bytes;     /* bytes of weights waiting before the socket is left unread
                                [512 MiB] */
    int max_open;            /* snapshots in flight per active run before the socket is left
                                unread (ingest.h, Fairness) [8] */
    int max_runs;            /* runs held at most; ended ones are evicted, new ones refused
                                beyond (ingest.h) [AT_INGEST_MAX_RUNS] */
    int64_t max_snapshots;   /* finish after this many analysed snapshots; 0: never */
    double stop_ack_timeout; /* seconds to wait for the trainer's stop ack; default 10 */
    FILE *notes;             /* where to say "recording to ...", errors at start; stderr */
    /* NULL (default): the layers are analysed in this process; else by this service (worker.h:
     * the ranks of an MPI job). Borrowed: must outlive the engine. */
    const struct at_worker_remote *remote;
} at_engine_opts;

/* Fills *o with the defaults. */
void at_engine_opts_default(at_engine_opts *o);

typedef struct at_engine at_engine;

/* Starts the engine on model (borrowed; the engine fills it) and, with opts->source, on that
 * source (its ctx must outlive the engine). Returns NULL on error with a message in err (a bad
 * rule, an unusable endpoint or base checkpoint): the caller exits 2.
 * Caller owns return value (at_engine_free). */
at_engine *at_engine_new(const at_engine_opts *opts, at_model *model, char *err, size_t errlen);

/* Stops the worker, closes the socket and the logs. NULL-safe. */
void at_engine_free(at_engine *self);

/* Fills up to max zmq_poll items the engine needs watched (ZMQ_POLLIN: the feed socket, unless
 * a source was injected, and the worker's result pipe); returns how many. */
int at_engine_pollitems(at_engine *self, zmq_pollitem_t *items, int max);

/* Does all pending work without blocking: drains the messages (at most 256) and the worker,
 * updates the model, writes output and logs, evaluates stop rules. Returns 1 if the model
 * changed. */
int at_engine_step(at_engine *self);

/* Runs the engine alone (headless) until it finishes or *interrupted becomes non-zero (a
 * signal handler's flag), then writes the stats record. Returns the exit code (exitcode.h). */
int at_engine_run(at_engine *self, volatile int *interrupted);

/* 1 once the engine has finished (a stop rule fired and the trainer acknowledged or the
 * timeout passed, or --max-snapshots reached). */
int at_engine_done(const at_engine *self);

/* The exit code for the finish: AT_EXIT_STOPPED after a stop rule, else AT_EXIT_OK. */
int at_engine_exit_code(const at_engine *self);

/* The user asked to stop run (model index) for reason: sends stop to its trainer and records
 * it (a stop event, whether the sending worked or not). Returns AT_OK, AT_ERR_ARG (bad run) or
 * the source's failure (the feed's: AT_ERR_NOTFOUND when the trainer is gone, AT_ERR_AGAIN
 * when its queue is full). */
int at_engine_request_stop(at_engine *self, int run, const char *reason);

/* The user paused (paused 1) or resumed (0) the snapshots of run (model index): sends pause or
 * resume to its trainer, which takes no snapshots meanwhile (none is dropped; scalars keep
 * coming), marks the run (at_run_info.paused) and records a pause or resume event; a failure to
 * send is an error event and changes nothing. A paused run that says hello again (its agent
 * reconnected, or a new process took the run id) is sent pause again; its goodbye ends the
 * pause. Returns AT_OK, AT_ERR_ARG (bad run), AT_ERR_STATE (the run ended), AT_ERR_UNSUPPORTED
 * (an injected source without pause) or the source's failure (as at_engine_request_stop). */
int at_engine_pause(at_engine *self, int run, int paused);

/* The endpoint the engine listens on ("" with an injected source). Borrowed. */
const char *at_engine_endpoint(const at_engine *self);

#endif
