/* SPDX-License-Identifier: Apache-2.0 */
/* ingest.h -- what the monitor makes of the messages trainers send, before any analysis: the run
 * table, snapshots in flight and when they are complete, slices of sharded layers assembled,
 * base weights for delta mode, LoRA halves paired into one layer, and when results go to the
 * phase trackers.
 *
 * A plain object: no socket, no thread, no output of its own. Decoded protocol messages go in
 * (at_ingest_msg), and so do the analysis jobs that come back (at_ingest_result). It adds runs,
 * layers and snapshot columns to the model and keeps the runs' info there (name, host,
 * interval, step, drops, ended); everything else goes out through its hooks: jobs to analyse,
 * events, results for the phase trackers, trackers' snapshots to close. The engine wires the
 * hooks to the worker, the output and the trackers; a test, to arrays.
 *
 * Jobs: one per layer and space, submitted as each layer arrives (the analysis of a snapshot
 * overlaps its arrival). A layer is analysed as W (space W) and, when base weights for its name
 * exist (sent by the trainer with base set, else from the base checkpoint), also as W - W_base
 * (space delta; the job's base tensor borrows ingest's copy or the checkpoint's). A LoRA
 * adapter's halves (kinds lora_A, lora_B) wait for each other within a snapshot and become one
 * job, B with A (job->lora_a), in space delta, on the layer named by at_pair_lora_name
 * (pair.h): "q_proj.lora_A.default.weight" + "q_proj.lora_B.default.weight" -> "q_proj.lora_BA".
 * Fast mode skips adapters (an info event, once per run). A slice of a sharded layer (version 2:
 * full_shape and offset) waits for the other slices of the same layer and step, from every
 * rank; the whole layer is then one job, as if it had arrived whole.
 *
 * Snapshots (docs/protocol.md section 6): messages are grouped by their snapshot (seq), which
 * may arrive over several training steps; its column in the model is the step it began at
 * (the layers' first_step), and each job carries the step of its own weights too
 * (job->weights_step). A snapshot
 * is complete when every publishing rank's snapshot_end arrived, each counting exactly the
 * layers that arrived from it, and every position of the snapshot arrived (whole, assembled
 * from slices, or left out by the trainer with a skip message, which an info event names once
 * per run). Anything else is incomplete, and a drop event says so plainly: which layers are
 * missing and why (the trainer ended or restarted mid-snapshot, a newer snapshot began before
 * its end, the monitor started after its first layers were sent, slices that do not cover their
 * layer or come from different steps, the trainer's end counting other layers than arrived).
 * An incomplete snapshot's layers are shown and written as the layers they are, but it is
 * never judged as a whole: only complete snapshots reach the phase trackers and the stop rules.
 *
 * Trackers: exact mode keeps a snapshot's results until it closes -- complete, every job back,
 * and every older snapshot of the run closed -- then feeds them all at its step and closes the
 * trackers' snapshot. Fast mode analyses only the newest waiting snapshot of a layer, so it
 * feeds every result as it comes and closes the trackers' snapshot once every layer of the
 * run's last complete snapshot has a result since the previous close (a sweep of the newest
 * weights of every layer), at the newest step among them.
 *
 * Runs: a run id is found in constant time (a hash map, idmap.h), however many runs came. At
 * most max_runs are held, in ingest and in the model: a new id beyond that takes the place
 * (the model's index) of the run that ended first among those ended with nothing in flight
 * (no snapshot open, no result due): that run is evicted -- run_free gets its data, the model
 * forgets its history (at_model_reuse_run), its events stay, monitor-wide. When none has
 * ended, the new id is refused: its message is ignored, counted (at_ingest_stats), and a
 * warning event says so at most once a second. A run whose trainer vanished without its
 * goodbye (at_ingest_run_gone) may be evicted as an ended one.
 *
 * Fairness: the engine tells ingest how many bytes of weights wait for the analysis and its
 * budget (at_ingest_set_load). Below half the budget every layer is taken. From half of it
 * on, while two runs or more are active (sent a message in the last 10 s, or hold bytes), a
 * run whose submitted jobs still hold half the budget divided by the number of active runs,
 * or more, is over its share: its layers are not analysed (shed, counted) and the snapshot
 * they belong to is reported incomplete with the reason, while the layers of the other runs
 * are still taken, so one trainer's huge layers cannot keep the others' out (the engine stops
 * reading only at the whole budget). With hold_jobs, the analysis is shared too: jobs wait
 * in a queue per run, and at_ingest_pump hands out the next job of the run that was served
 * the fewest bytes lately (each byte handed out counts e^(-t / 10 s) after t seconds), so a
 * run of small layers is not queued behind another run's huge ones (each run's jobs keep
 * their order). Snapshots in flight are shared the same way: the engine stops reading at
 * max_open of them per active run (at_ingest_open_cap), and while another run is active, a
 * new snapshot of a run that has max_open in flight already is not taken (a drop event says
 * so, counted as snapshots_shed; its later messages are ignored). A run alone is never shed (it
 * meets back-pressure at the whole budget, as before), and a run that holds nothing always gets its
 * next layer, however large.
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

/* Runs held at most by default (at_ingest_opts.max_runs). */
#define AT_INGEST_MAX_RUNS 1024

typedef struct at_ingest_opts {
    int fast;            /* fast mode (see above) [0] */
    const at_ckpt *base; /* base weights by layer name (borrowed; must outlive the ingest) [NULL] */
    int max_runs;        /* runs held at most, >= 1 (see Runs below) [AT_INGEST_MAX_RUNS] */
    int max_open;        /* snapshots in flight per run while another run is active (see
                            Fairness), >= 1 [8] */
    int hold_jobs;       /* 1: jobs wait in ingest, per run, until at_ingest_pump hands them to
                            the submit hook fairly (see Fairness); 0: submitted at once [0] */
} at_ingest_opts;

/* Fills *o with the defaults. */
void at_ingest_opts_default(at_ingest_opts *o);

/* Where ingest's output goes. Every hook but run_new and run_free is required. Pointers passed
 * to a hook are borrowed for the call. */
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
 * required hook missing) or AT_ERR_NOMEM. */
at_ingest *at_ingest_new(const at_ingest_opts *opts, const at_ingest_hooks *hooks, at_model *model,
                         int *status);

/* Frees the runs (run_free gets their data), their snapshots in flight, base weights, waiting
 * LoRA halves and slices, without events (see at_ingest_finish). NULL-safe. */
void at_ingest_free(at_ingest *self);

/* The monitor stops: every snapshot still open is reported incomplete (a drop event each:
 * "the monitor stopped before its end arrived"). Call it once no more results will come. */
void at_ingest_finish(at_ingest *self);

/* The index of the run named id (the model's), created on first sight (model, run_new hook),
 * maybe in the place of an evicted run (Runs above). Returns the index (>= 0), AT_ERR_ARG (a
 * bad id), AT_ERR_SIZE (refused: max_runs live runs), AT_ERR_NOMEM, or what run_new returned
 * when it refused. */
int at_ingest_run(at_ingest *self, const char *id);

/* The index of the run named id if ingest holds it, else AT_ERR_NOTFOUND; creates nothing. */
int at_ingest_find_run(const at_ingest *self, const char *id);

/* The id of run (the trainer's whole id; the model's copy is cut to fit). Borrowed; NULL for a
 * run ingest does not have. */
const char *at_ingest_run_id(const at_ingest *self, int run);

/* What run_new stored for run; NULL for none or a run ingest does not have. Borrowed. */
void *at_ingest_run_data(const at_ingest *self, int run);

/* Hands an event to the event hook as ingest hands its own: of run (-1: monitor-wide) at step
 * (-1: none) on the model's layer (-1: none), with e's fields and its text formatted from fmt
 * (cut at 399 bytes). The caller's events take this path too, so every event takes one. */
void at_ingest_event(at_ingest *self, int run, int layer, int64_t step, at_record_event e,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Takes one decoded message: hello (run info; an event for a new run, rank or trainer
 * process), layer (jobs, as above), skip, snapshot_end (completeness), goodbye (run ended, an
 * event); of scalars only the step and the agent's drop count (the values are the caller's);
 * stop_ack only finds its run: one for a run not held creates none (AT_ERR_NOTFOUND). Any message
 * carrying the agent's drop count (hello, snapshot_end, scalars) turns a rise into a drop event.
 * Returns the run index (>= 0) or what at_ingest_run returned. */
int at_ingest_msg(at_ingest *self, const at_proto_msg *msg);

/* hold_jobs: hands up to slots waiting jobs to the submit hook, each the next job of the run
 * served the fewest bytes lately (see Fairness). Returns how many went. A
 * job the hook refuses is freed, reported (an error event), and its snapshot goes on without
 * it. */
int at_ingest_pump(at_ingest *self, int slots);

/* A finished job came back (borrowed; the caller still frees it): kept or fed, as above. */
void at_ingest_result(at_ingest *self, const at_job *job);

/* Snapshots in flight (received, not yet closed) over every run: the engine stops reading
 * the socket while at_ingest_open_cap or more are. */
int at_ingest_open_snapshots(const at_ingest *self);

/* The snapshots in flight the engine may let in: max_open per active run (Fairness), max_open
 * for a run alone. */
int at_ingest_open_cap(at_ingest *self);

/* Bytes of weights ingest itself holds for snapshots in flight: slices waiting for the rest of
 * their layer, LoRA halves waiting for their partner, jobs waiting for at_ingest_pump (base
 * weights are not counted). */
size_t at_ingest_held_bytes(const at_ingest *self);

/* The trainer of run is gone without a goodbye (its connection closed and it has been silent):
 * the snapshots it still owed will not come -- each open one is reported incomplete for
 * reason, as a goodbye would -- and the run may be evicted like an ended one (Runs above),
 * unless it speaks again. Does nothing for an ended run or one already gone. */
void at_ingest_run_gone(at_ingest *self, int run, const char *reason);

/* What the run table holds and did since at_ingest_new. */
typedef struct at_ingest_stats {
    int runs;               /* runs held now (<= max_runs) */
    int64_t runs_evicted;   /* ended runs dropped to make room for a new one */
    int64_t runs_refused;   /* messages of new run ids refused: max_runs live runs */
    size_t table_bytes;     /* bytes of the run table itself: the id map and the run records
                               (not their snapshots in flight, nor the model's history) */
    int64_t layers_shed;    /* layers not analysed: their run was over its share (Fairness) */
    int64_t snapshots_shed; /* snapshots not taken: their run had max_open in flight */
    size_t run_bytes_max;   /* the most bytes of submitted jobs one run held at a time */
    int waiting;            /* hold_jobs: jobs waiting for at_ingest_pump */
} at_ingest_stats;

/* The analysis has load bytes of weights waiting, of a budget of budget bytes (budget <= 0:
 * no fairness). Call before every message (see Fairness). */
void at_ingest_set_load(at_ingest *self, int64_t load, int64_t budget);

/* Fills *s. */
void at_ingest_stats_get(const at_ingest *self, at_ingest_stats *s);

/* For the view's progress line: *layers_done, the results of the snapshots in flight (none in
 * flight: of the last one that closed), and *oldest_age, the seconds since the first layer of
 * the oldest snapshot in flight arrived (0 when none) at monotonic time now. */
void at_ingest_progress(const at_ingest *self, double now, int *layers_done, double *oldest_age);

#endif
