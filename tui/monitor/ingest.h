/* SPDX-License-Identifier: Apache-2.0 */
/* ingest.h -- what the monitor makes of the messages trainers send, before any analysis: the run
 * table, snapshots in flight and back-pressure, base weights for delta mode, LoRA halves paired
 * into one layer, and when results go to the phase trackers and their snapshot closes.
 *
 * A plain object: no socket, no thread, no output of its own. Decoded protocol messages go in
 * (at_ingest_msg), and so do the analysis jobs that come back (at_ingest_result). It adds runs,
 * layers and snapshot columns to the model and keeps the runs' info there (name, host,
 * interval, step, drops, ended); everything else goes out through its hooks: jobs to analyse,
 * queued jobs to cancel, events, results for the phase trackers, trackers' snapshots to close.
 * The engine wires the hooks to the worker, the output and the trackers; a test, to arrays.
 *
 * Jobs: one per layer and space. A layer is analysed as W (space W) and, when base weights for
 * its name exist (sent by the trainer with base set, else from the base checkpoint), also as
 * W - W_base (space delta; the job's base tensor borrows ingest's copy or the checkpoint's). A
 * LoRA adapter's halves (kinds lora_A, lora_B) wait for each other within a snapshot and become
 * one job, B with A (job->lora_a), in space delta, on the layer named by at_pair_lora_name
 * (pair.h): "q_proj.lora_A.default.weight" + "q_proj.lora_B.default.weight" -> "q_proj.lora_BA".
 * Fast mode skips adapters (an info event, once per run).
 *
 * Back-pressure (exact mode): a run has at most max_inflight snapshots in flight (received, not
 * yet analysed); a layer of one more is refused and counted as a dropped snapshot. When a
 * snapshot ends while more than max_inflight / 2 of its run's, or more than queue_budget bytes
 * of weights over every run, are waiting, the oldest ended snapshot of that run whose analysis
 * has not started is dropped: its queued jobs are cancelled (a job already running still
 * finishes) and a drop event says so. The view wants the latest snapshot, not a backlog.
 *
 * Trackers: a result with a fit (rc AT_OK, status not skipped) is fed at a step. Exact mode: the
 * job's step, and the snapshot closes once it ended (snapshot_end) and all its jobs came back.
 * Fast mode: the scheduler may skip a layer's snapshot (a newer one replaced it), so results go
 * to the run's open snapshot (the newest step seen; a late result of an older step counts
 * towards it), which closes when a result of a later step arrives or at at_ingest_idle.
 *
 * Threading: one thread; the hooks are called on it, from inside the call that caused them.
 */
#ifndef ALPHATOP_INGEST_H
#define ALPHATOP_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/protocol.h"
#include "ckpt.h"
#include "model.h"
#include "record.h"
#include "worker.h"

typedef struct at_ingest_opts {
    int fast;            /* fast mode (see above) [0] */
    const at_ckpt *base; /* base weights by layer name (borrowed; must outlive the ingest) [NULL] */
    int max_inflight;    /* snapshots of one run in flight, >= 2 [32] */
    size_t queue_budget; /* bytes of weights (float32) queued over every run [1 GiB] */
} at_ingest_opts;

/* Fills *o with the defaults. */
void at_ingest_opts_default(at_ingest_opts *o);

/* Where ingest's output goes. Every hook but run_new and run_free is required. Pointers passed to a
 * hook are borrowed for the call. */
typedef struct at_ingest_hooks {
    void *ctx; /* first argument of every hook */
    /* A run appeared: index run (the model's) for the trainer's run id. *data (NULL before)
     * may get what the caller keeps per run: ingest holds it (at_ingest_run_data) and gives it
     * back to run_free. Anything but AT_OK and the run is not created (the message is ignored;
     * the next one tries again). May be NULL. */
    int (*run_new)(void *ctx, int run, const char *id, void **data);
    /* Releases what run_new stored, when ingest is freed. May be NULL. */
    void (*run_free)(void *ctx, void *data);
    /* Analyse job. AT_OK: the hook took the job; else it stays ingest's (freed; an error event
     * says so). */
    int (*submit)(void *ctx, at_job *job);
    /* Remove the queued, not started jobs of run at step; returns how many were removed. */
    int (*cancel)(void *ctx, int run, int64_t step);
    /* An event record (type AT_RECORD_EVENT) of run (-1: none) on the model's layer (-1: none,
     * although rec may name one). */
    void (*event)(void *ctx, int run, int layer, const at_record *rec);
    /* Feed job's metrics to the phase tracker of its space (job->space) at step. */
    void (*feed)(void *ctx, const at_job *job, int64_t step);
    /* The trackers' snapshot of run at step closes. spaces: bit 1 << space for every tracker fed
     * since its last close (0: none was, e.g. every layer failed). */
    void (*close)(void *ctx, int run, int64_t step, unsigned spaces);
} at_ingest_hooks;

typedef struct at_ingest at_ingest;

/* A new ingest filling model (borrowed; must outlive it). opts NULL: defaults. Caller owns
 * return value (free with at_ingest_free); NULL with *status (may be NULL) set to AT_ERR_ARG (a
 * required hook missing, max_inflight < 2) or AT_ERR_NOMEM. */
at_ingest *at_ingest_new(const at_ingest_opts *opts, const at_ingest_hooks *hooks, at_model *model,
                         int *status);

/* Frees the runs (run_free gets their data), their base weights and waiting LoRA halves.
 * NULL-safe. */
void at_ingest_free(at_ingest *self);

/* The index of the run named id (the model's), created on first sight (model, run_new hook).
 * Returns the index (>= 0), AT_ERR_ARG (a bad id), AT_ERR_NOMEM, or what run_new returned
 * when it refused. */
int at_ingest_run(at_ingest *self, const char *id);

/* The id of run (the trainer's whole id; the model's copy is cut to fit). Borrowed; NULL for a
 * run ingest does not have. */
const char *at_ingest_run_id(const at_ingest *self, int run);

/* What run_new stored for run; NULL for none or a run ingest does not have. Borrowed. */
void *at_ingest_run_data(const at_ingest *self, int run);

/* Hands an event to the event hook as ingest hands its own: of run (-1: monitor-wide) at step
 * (-1: none) on the model's layer (-1: none), with e's fields and its text formatted from fmt
 * (cut at 399 bytes). The caller's events take this path too, so every event takes one. */
void at_ingest_event(at_ingest *self, int run, int layer, int64_t step, at_record_event e,
                     const char *fmt, ...);

/* Takes one decoded message: hello (run info; an event for a new run or a new trainer process),
 * layer (jobs, as above), snapshot_end (closing, back-pressure, an incomplete snapshot's drop
 * event), goodbye (run ended, an event); of scalars only the step and the agent's drop count
 * (the values are the caller's); stop_ack creates the run only. Any message carrying the agent's
 * drop count (snapshot_end, scalars) turns a rise into a drop event. Returns the run index
 * (>= 0) or what at_ingest_run returned. */
int at_ingest_msg(at_ingest *self, const at_proto_msg *msg);

/* A finished job came back (borrowed; the caller still frees it): feeds and closes as above. */
void at_ingest_result(at_ingest *self, const at_job *job);

/* Fast mode: the scheduler is idle; closes every run's open snapshot that was fed. */
void at_ingest_idle(at_ingest *self);

/* For the view's progress line: *layers_done, the results of the snapshots in flight (none in
 * flight: of the last one that closed), and *oldest_age, the seconds since the first layer of
 * the oldest snapshot in flight arrived (0 when none) at monotonic time now. */
void at_ingest_progress(const at_ingest *self, double now, int *layers_done, double *oldest_age);

#endif
