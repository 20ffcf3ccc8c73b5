/* SPDX-License-Identifier: Apache-2.0 */
/* worker.h -- the monitor's analysis worker: layers in, metrics out, off the UI thread.
 *
 * The engine submits one job per layer (and per space: W, or the fine-tune delta W - W_base);
 * the worker's threads analyse them and hand the finished jobs back. A pipe becomes readable
 * whenever results are waiting, so the UI thread can poll it next to the feed socket and
 * stdin. The threads are core's worker pool (pool.h): N of them, each analysing one layer at a
 * time with single-threaded BLAS, so layers go in parallel on every core. Exact mode: every
 * job analysed, started in submission order. Fast mode: the pool's refresh rounds, per-layer
 * warm fast-mode state (capped, state_budget), and a newer snapshot of a layer replaces one
 * still waiting, so not every job comes back; results carry no eigenvalues and no traps.
 *
 * Memory: a job holds its layer's weights as they arrived (f32, f16 or bf16: half precision is
 * widened only by the analysis, one layer at a time, in its thread's own buffer) and releases
 * them on the worker thread as soon as they are analysed. at_worker_held_bytes says how many
 * bytes of weights the worker's jobs hold: the engine stops reading the socket above its queue
 * budget.
 *
 *     at_worker *w = at_worker_new(&opts, &st);
 *     at_worker_submit(w, job);                 // takes the job
 *     ... poll(at_worker_fd(w)) ...
 *     while ((job = at_worker_poll(w))) { use job->rc, job->m, job->evals; at_job_free(job); }
 *     at_worker_free(w);
 *
 * Elsewhere: with opts.remote the worker analyses nothing itself and hands every job to that
 * service instead (the ranks of an MPI job, docs/cluster.md), through the same calls.
 */
#ifndef ALPHATOP_WORKER_H
#define ALPHATOP_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/htsr.h"
#include "alphatop/pool.h"
#include "model.h"

/* One layer to analyse and, once done, its result. */
typedef struct at_job {
    /* input, set by the submitter */
    int run;   /* the model's run index */
    int layer; /* the model's layer index */
    at_space space;
    int64_t seq;          /* the snapshot's sequence number */
    int64_t step;         /* the snapshot's step (its column in the model) */
    int64_t weights_step; /* the step of these weights (later in a snapshot sent over several
                             steps) */
    double submit_time;   /* monotonic seconds, for the lag the view shows */
    at_tensor t;          /* t.data points at data (owned by the job), in the wire's dtype */
    void *data;           /* the weights as received; freed once analysed */
    size_t bytes;         /* of data and data2 */
    double max_abs;       /* largest |w| (the phase tracker's growth trend), found by the worker
                             once analysed in exact mode; NAN if any NaN, and in fast mode */
    at_tensor base;       /* base weights: analyse t - base (borrowed; must outlive the job);
                             base.data NULL: analyse t itself */
    at_tensor lora_a;     /* LoRA: t is B (out x r), this is A (r x in); B A is analysed from
                             its r singular values (lora.h). lora_a.data is data2 (owned) */
    void *data2;
    _Atomic int64_t *held; /* the worker's count of bytes held (set by at_worker_submit) */
    /* output, set by the worker */
    int rc;          /* AT_OK or the analysis error */
    char error[192]; /* detail when rc < 0 */
    at_metrics m;    /* valid when rc == AT_OK */
    double *evals;   /* ascending eigenvalues (owned by the job); NULL if rc < 0 */
    size_t num_evals;
} at_job;

/* A new job for a tensor of ndim dims (2 or 4) whose weights are a copy of src (its elements
 * in dtype, as they arrived). Caller owns return value (at_job_free, or give it to
 * at_worker_submit); NULL if out of memory or a bad shape. */
at_job *at_job_new(const void *src, at_dtype dtype, at_layer_kind kind, int ndim,
                   const int64_t *shape);

/* Bytes of a tensor's elements (product of the shape times the dtype's size). */
size_t at_job_tensor_bytes(const at_tensor *t);

/* Frees a job and what it owns. NULL-safe. */
void at_job_free(at_job *job);

/* Frees the job's weights (data, data2), counted off its worker's held bytes: once they have
 * been analysed or sent elsewhere. */
void at_job_release(at_job *job);

typedef struct at_worker_opts at_worker_opts;

/* An analysis service outside this process that takes the worker's jobs (worker.h's top). Every
 * function gets ctx first; all are called on the worker's caller's thread. */
typedef struct at_worker_remote {
    void *ctx;
    /* Sets the service up to analyse as *o says (o->threads: each process's threads, 0: its
     * cores); called once, by at_worker_new. AT_OK or a negative status. */
    int (*start)(void *ctx, const at_worker_opts *o);
    /* Takes job (AT_OK), or leaves it with the caller (a negative status). Never blocks. */
    int (*submit)(void *ctx, at_job *job);
    /* A finished job (rc, error, m, evals, max_abs set), or NULL. Caller owns return value. */
    at_job *(*poll)(void *ctx);
    /* A file descriptor readable while finished jobs wait. */
    int (*fd)(void *ctx);
    /* Jobs taken and not yet finished (fast mode: replaced jobs are freed and not counted). */
    int (*pending)(void *ctx);
    /* Stops handing out jobs and frees the ones not finished; called by at_worker_free. */
    void (*stop)(void *ctx);
} at_worker_remote;

struct at_worker_opts {
    int fast;            /* fast mode through the scheduler (above); default 0 */
    int threads;         /* analysis threads, one layer each; 0 (default): every core this
                            machine has online */
    int traps;           /* count correlation traps (for the collapse rule); default 1 */
    int detx;            /* compute detX (for the detX gap metric); default 1 */
    uint64_t seed;       /* the traps' shuffle seed */
    size_t state_budget; /* fast mode: bytes of warm state over every layer; default 256 MiB */
    const at_worker_remote *remote; /* NULL (default): analyse on this process's threads; else
                                       hand every job to this service (borrowed; must outlive
                                       the worker) */
};

void at_worker_opts_default(at_worker_opts *o);

typedef struct at_worker at_worker;

/* Starts the worker thread. Caller owns return value (at_worker_free); NULL on error with
 * *status set (AT_ERR_NOMEM, AT_ERR_IO: no pipe or thread). opts may be NULL (defaults). */
at_worker *at_worker_new(const at_worker_opts *opts, int *status);

/* Queues job (the worker takes it). Never blocks. Returns AT_OK or AT_ERR_ARG. */
int at_worker_submit(at_worker *self, at_job *job);

/* A finished job, oldest first, or NULL when none is waiting. Caller owns return value. */
at_job *at_worker_poll(at_worker *self);

/* File descriptor that is readable while finished jobs wait (for poll(2)). */
int at_worker_fd(const at_worker *self);

/* Jobs queued or running (fast mode: layers waiting or being analysed). */
int at_worker_pending(at_worker *self);

/* Bytes of weights held by the jobs submitted and not yet analysed (or freed). */
int64_t at_worker_held_bytes(const at_worker *self);

/* Stops the thread (after the running job) and frees everything, queued jobs included.
 * NULL-safe. */
void at_worker_free(at_worker *self);

#endif
