/* SPDX-License-Identifier: Apache-2.0 */
/* pool.h -- worker threads that analyse layer jobs: a layer job in, a result out.
 *
 * The one place in alphatop that runs analyses off the caller's thread: the monitor's worker
 * (exact and fast mode) and offline tools use it alike. Jobs name their layer by a key; each
 * layer keeps, in the pool, what its jobs share: its fast-mode state (fast.h) when the
 * analyzer is in fast mode, and the rule that one layer is analysed by one thread at a time.
 * What waits is a policy:
 *   AT_POOL_FIFO    every job is analysed; jobs start in submission order (one thread: they
 *                   also finish in it). The monitor's exact mode.
 *   AT_POOL_LATEST  a newer job of a layer replaces its waiting one (the older is freed), and
 *                   waiting layers go in refresh rounds under a time budget, by priority: a
 *                   layer passed over max_wait rounds first (no starvation), then layers never
 *                   analysed, then by staleness (seconds since the layer's last result) times
 *                   change (its last relative weight change; 1 when unknown). A round hands out
 *                   layers until budget_s has passed since it began (a started layer finishes)
 *                   and carries the rest to the next round. The monitor's fast mode.
 * Results come back through a queue, oldest first, and a file descriptor that is readable
 * exactly while results wait, so a UI thread can poll(2) it next to its sockets.
 *
 *     at_pool_opts o; at_pool_opts_default(&o);          // 1 thread, FIFO, exact analysis
 *     at_pool *p = at_pool_new(&o, &status);
 *     at_pool_job *j = at_pool_job_new_copy("blocks.0.fc", step, &tensor, &status);
 *     at_pool_submit(p, j);                              // the pool takes j
 *     ... poll(at_pool_fd(p)) ...
 *     while ((j = at_pool_poll(p))) { use j->rc, j->m, j->info; at_pool_job_free(j); }
 *     at_pool_free(p);
 * With opts.threads = 0 no thread is started: the caller analyses on its own thread with
 * at_pool_run (offline tools, and tests that need rounds to be deterministic).
 *
 * Threads and BLAS: each worker thread has its own at_analyzer (its own workspaces). OpenBLAS's
 * thread count is process-global (openblas_set_num_threads; 0.3.21 has no per-thread count), so
 * at_pool_new sets it once, when it starts threads, and it stays set: to blas_threads with one
 * worker thread, to 1 with several, so that concurrent BLAS calls each run on their caller's
 * thread instead of queueing on OpenBLAS's shared thread server. Several layers at once, one
 * single-threaded BLAS each, is how the monitor uses every core: layers are independent, so
 * they scale where one threaded BLAS call does not (its sequential steps, and a descheduled
 * OpenBLAS thread on a loaded machine that every other one waits for).
 *
 * Memory: a job's input can be released on the worker thread as soon as it is analysed (the
 * job's `done` hook), and the layers' fast-mode states together are capped at state_budget
 * bytes: past it, the states of the layers analysed longest ago are dropped (those layers'
 * next analyses are cold, a full Gram spectrum), counted in states_dropped.
 *
 * Why a pool of its own rather than the scheduler grown: the threads, queues, fd, cancel and
 * pause are the same for both policies and for the remote workers to come; only "which job
 * next" differs, and the fast policy's ranking stays in core/fast/sched.c.
 *
 * Threading: every function may be called from any thread, except that a pool is freed once,
 * by one thread, when no other call on it is running, and at_pool_run is called by one thread
 * at a time. A job belongs to the caller until at_pool_submit takes it and again after
 * at_pool_poll returns it; in between only the pool touches it.
 */
#ifndef ALPHATOP_POOL_H
#define ALPHATOP_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/analyze.h"
#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What waits (above). */
typedef enum at_pool_policy {
    AT_POOL_FIFO = 0,   /* every job, in submission order */
    AT_POOL_LATEST = 1, /* the newest job per layer, in budgeted priority rounds */
} at_pool_policy;

/* Options; at_pool_opts_default gives the values below. */
typedef struct at_pool_opts {
    int threads;              /* 1: worker threads (0..AT_POOL_MAX_THREADS; 0: at_pool_run) */
    int blas_threads;         /* 1: OpenBLAS threads with one worker thread (see above) */
    at_pool_policy policy;    /* AT_POOL_FIFO */
    at_analyzer_opts analyze; /* how each job is analysed (analyze.h defaults: exact mode);
                                 keep_evals 1 gives every exact result its eigenvalues */
    double budget_s;          /* 2.0: AT_POOL_LATEST, seconds a round hands out layers */
    int max_wait;             /* 3: AT_POOL_LATEST, rounds a waiting layer may be passed over */
    size_t state_budget;      /* 0: bytes of every layer's fast-mode state together, at most
                                 (0: no cap); see Memory above */
    /* Clock of the budget, seconds; NULL: CLOCK_MONOTONIC. Tests pass a counting clock. It is
     * read with the pool's lock held: once as a round begins, then before each further layer
     * the round hands out. */
    double (*clock)(void *ctx);
    void *clock_ctx;
} at_pool_opts;

#define AT_POOL_MAX_THREADS 256

/* One layer job and, once analysed, its result. Create with at_pool_job_new(_copy). */
typedef struct at_pool_job at_pool_job;
struct at_pool_job {
    /* input, set by the submitter */
    char *key;       /* the layer (owned by the job; set by the constructor) */
    int64_t step;    /* the snapshot's training step (set by the constructor) */
    int64_t tag;     /* the submitter's grouping for at_pool_cancel (default 0) */
    at_layer_job in; /* what to analyse: the views must stay valid until the job is freed;
                        in.state is ignored: the pool passes the layer's own state */
    void *user;      /* the submitter's payload; the pool only hands it back */
    void (*user_free)(void *user); /* frees user with the job (NULL: nothing to free); set
                                      user to NULL to keep it past at_pool_job_free */
    /* Called on the worker thread just before the analysis, no lock held (NULL: none): fills
     * in what the submitter left to the worker (reads or converts the weights). A negative
     * return is the job's rc instead of an analysis (prepare writes error). */
    int (*prepare)(struct at_pool_job *job);
    /* Called on the worker thread right after the analysis, before the result is queued
     * (NULL: nothing); e.g. frees the input weights, which in.w borrows, at once. */
    void (*done)(struct at_pool_job *job);
    int last; /* 1: no later job of this layer follows, its fast-mode state is freed after it */
    /* output, set by the pool */
    int rc;            /* AT_OK or the analysis error (at_analyzer_run) */
    char error[192];   /* detail when rc < 0 */
    at_metrics m;      /* valid when rc == AT_OK; m.mode says how it was computed */
    at_fast_info info; /* provenance: mode, refresh reason, k, passes, relative change */
    double *evals;     /* ascending eigenvalues when opts.analyze.keep_evals and the analysis
                          was exact, else NULL (owned by the job) */
    size_t num_evals;
    int64_t round;  /* AT_POOL_LATEST: the refresh round that handed it out (1, 2, ...); else 0 */
    double seconds; /* analysis time, monotonic seconds */
    double lag_s;   /* from submission to result, monotonic seconds (for AT_POOL_LATEST, from
                       the submission of the oldest job of the layer it replaced) */
};

/* Progress, for a status line. */
typedef struct at_pool_progress {
    int64_t layers;         /* layers known (keys seen) */
    int64_t waiting;        /* jobs waiting */
    int64_t running;        /* jobs being analysed now */
    int64_t analysed;       /* results produced in total */
    int64_t replaced;       /* AT_POOL_LATEST: waiting jobs replaced by a newer one */
    int64_t cancelled;      /* waiting jobs removed by at_pool_cancel */
    int64_t round;          /* AT_POOL_LATEST: rounds begun */
    int64_t round_done;     /* layers of the current (or last) round analysed */
    int64_t round_total;    /* layers waiting when that round began */
    int64_t steps_behind;   /* largest (newest submitted step - newest analysed step) of a layer */
    double seconds_behind;  /* age of the oldest waiting job (0 if none) */
    size_t state_bytes;     /* bytes held by the layers' fast-mode states */
    int64_t states_dropped; /* states dropped to stay within state_budget */
} at_pool_progress;

typedef struct at_pool at_pool;

/* Fills *o with the defaults above. */
AT_EXPORT void at_pool_opts_default(at_pool_opts *o);

/* New pool with a copy of *o (NULL: defaults), its threads started. Caller owns return value
 * (at_pool_free); NULL on error with *status (may be NULL) set: AT_ERR_ARG (threads, policy,
 * budget_s or max_wait out of range), AT_ERR_NOMEM, AT_ERR_IO (no pipe or no thread). */
AT_EXPORT at_pool *at_pool_new(const at_pool_opts *o, int *status);

/* Stops the threads (each finishes the job it is analysing) and frees everything, waiting
 * jobs and unpolled results included. NULL-safe. */
AT_EXPORT void at_pool_free(at_pool *self);

/* An empty job for layer key at training step step: the submitter fills in (and user).
 * Caller owns return value (at_pool_job_free, or give it to at_pool_submit); NULL on error
 * with *status (may be NULL) set: AT_ERR_ARG (no key), AT_ERR_NOMEM. */
AT_EXPORT at_pool_job *at_pool_job_new(const char *key, int64_t step, int *status);

/* A job that analyses a float32 copy of t's weights (owned by the job; t is borrowed). As
 * at_pool_job_new, and AT_ERR_ARG for no t, no data, or a shape that does not fit t->kind
 * (2 dims, 4 for conv2d, each > 0). */
AT_EXPORT at_pool_job *at_pool_job_new_copy(const char *key, int64_t step, const at_tensor *t,
                                            int *status);

/* Frees a job: its key, copy, eigenvalues and, through user_free, its payload. NULL-safe. */
AT_EXPORT void at_pool_job_free(at_pool_job *job);

/* Queues job. Never waits for an analysis. AT_OK: the pool takes job (AT_POOL_LATEST frees the
 * layer's waiting job it replaces). Otherwise the caller keeps job: AT_ERR_ARG (NULL, neither
 * in.w nor prepare), AT_ERR_NOMEM. */
AT_EXPORT int at_pool_submit(at_pool *self, at_pool_job *job);

/* The oldest result, or NULL when none waits. Never blocks. Caller owns return value. */
AT_EXPORT at_pool_job *at_pool_poll(at_pool *self);

/* A file descriptor that is readable exactly while results wait (for poll(2)). Borrowed. */
AT_EXPORT int at_pool_fd(const at_pool *self);

/* Removes and frees the waiting (not started) jobs whose tag and step match; returns how many.
 */
AT_EXPORT int at_pool_cancel(at_pool *self, int64_t tag, int64_t step);

/* Pauses (1) or resumes (0) the worker threads; each finishes the job it is analysing. A
 * pause ends AT_POOL_LATEST's current round. at_pool_run is not affected. */
AT_EXPORT void at_pool_pause(at_pool *self, int paused);

/* Jobs waiting or being analysed: what a status line calls pending. */
AT_EXPORT int64_t at_pool_pending(at_pool *self);

/* Current progress into *out. */
AT_EXPORT void at_pool_progress_get(at_pool *self, at_pool_progress *out);

/* With opts.threads = 0: analyses on the calling thread every waiting job (AT_POOL_FIFO) or one
 * refresh round (AT_POOL_LATEST), and returns how many jobs it analysed. AT_ERR_STATE when the
 * pool has worker threads: then analysing is their job. */
AT_EXPORT int at_pool_run(at_pool *self);

#ifdef __cplusplus
}
#endif
#endif
