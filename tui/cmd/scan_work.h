/* SPDX-License-Identifier: Apache-2.0 */
/* scan_work.h -- the analyses behind `alphatop scan`'s rows as work that runs anywhere.
 *
 * A task names its tensors by where they are stored (ckpt.h's at_ckpt_loc: a file and byte
 * offset, or this process's memory), so whoever runs it -- a worker thread, or another MPI rank
 * on a machine that sees the same files -- reads the weights itself, just before the analysis,
 * and gives them back right after: weights never travel, and memory holds a few layers. A
 * result comes back tagged with its task's id (the row it belongs to), so rows can be printed
 * in file order whatever order the analyses finish in.
 *
 * The runner is the one place tasks run: a pool (core's pool.h) of worker threads, each with
 * its own analyzer and single-threaded BLAS, that opens the task's views (ckpt.h), checks the
 * cheap conditions (all-zero weights) before converting anything, and analyses. It starts a
 * task when a thread is free and the task's memory (scan_task_memory) fits in its budget
 * (scan_setup: by default 1 GiB per thread, at most half the memory available; a task larger
 * than the budget runs alone), so two of a model's largest layers (embeddings) do not run at
 * once on a small machine. Tasks and
 * results also have a byte form (encode and decode side by side) for the MPI module.
 *
 * Test hook: with ALPHATOP_TEST_SLEEP_NS_PER_WEIGHT=K in the environment, every task first
 * sleeps K nanoseconds per weight it names: work of a known duration, for measuring how work
 * is spread without real compute (tests/cluster). */
#ifndef ALPHATOP_SCAN_WORK_H
#define ALPHATOP_SCAN_WORK_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/analyze.h"
#include "ckpt.h"

/* What a task analyses (analyze.h's job kinds; merge forms W_base + scale B A first). */
typedef enum scan_kind {
    SCAN_PLAIN, /* t[0]: the weights */
    SCAN_DELTA, /* t[0] - t[1]: the update against its base */
    SCAN_LORA,  /* t[0] B, t[1] A: scale B A from its factors */
    SCAN_MERGE, /* t[0] W_base, t[1] B, t[2] A: the merged weight W_base + scale B A */
} scan_kind;

/* One tensor of a task: its shape (ndim, shape, kind, dtype; data unused) and where it is. */
typedef struct scan_tensor {
    at_tensor shape;
    at_ckpt_loc loc;
} scan_tensor;

/* One row's analysis. Plain data: the runner copies it. */
typedef struct scan_task {
    int64_t id; /* the row it belongs to (results carry it back) */
    scan_kind kind;
    int n; /* tensors used: 1 plain, 2 delta and LoRA, 3 merge */
    scan_tensor t[3];
    double lora_scale;
    char key[512]; /* the layer whose fast-mode state carries over from file to file */
    int last;      /* no later task of this key follows (its state is freed after this one) */
    int64_t group; /* tasks of one group run one after another where the first one runs: the id
                      of the group's first task (fast mode: one layer across files) */
    double cost;   /* relative work (scan_task_cost) */
} scan_task;

/* One row's outcome. */
typedef struct scan_result {
    int64_t id;
    int rc;          /* AT_OK (m holds the metrics) or the reason the row has none */
    int prepared;    /* the weights were read (and merged): rc < 0 came from the analysis */
    char error[640]; /* rc < 0: the row's message ("cannot analyse: ...", "cannot read ...") */
    at_metrics m;
    double *evals; /* with keep_evals: the exact spectrum, ascending (owned, NULL if none) */
    size_t num_evals;
    double seconds; /* time spent on the task (reading, analysing) */
} scan_result;

/* Relative work of the task: about the flops of its Gram product and eigensolver, long side x
 * short side^2 + short side^3 per slice (LoRA: of its factors). Sets t->cost and returns it. */
double scan_task_cost(scan_task *t);

/* Memory the task holds while it runs, estimated (bytes): the pages of its stored tensors, the
 * copies the core makes of them, its Gram matrix or float64 slice and the like, for analyzer
 * options ao. */
double scan_task_memory(const scan_task *t, const at_analyzer_opts *ao);

/* The order to start tasks[0..n) in: groups by their first task's cost, largest first (ties
 * in id order), each group's tasks in id order; into order[0..n) as indices. Returns 0, or
 * AT_ERR_NOMEM. */
int scan_task_order(const scan_task *tasks, size_t n, size_t *order);

/* Frees what a result owns (its eigenvalues) and clears it. NULL-safe. */
void scan_result_clear(scan_result *r);

/* How a process runs tasks (MPI ranks are told rank 0's). */
typedef struct scan_setup {
    at_analyzer_opts ao; /* how each task is analysed (keep_evals: every exact spectrum) */
    int threads;         /* worker threads; 0: one per CPU this process may run on */
    double max_memory;   /* bytes the running tasks may hold at once; 0: 1 GiB per thread, at
                            most half the memory available when the runner starts */
} scan_setup;

typedef struct scan_runner scan_runner;

/* A runner as *setup says. Caller owns return value (scan_runner_free); NULL on error with
 * *status (may be NULL) set. */
scan_runner *scan_runner_new(const scan_setup *setup, int *status);

/* Stops the threads (each finishes its task) and frees everything. NULL-safe. */
void scan_runner_free(scan_runner *self);

/* Queues a copy of *t. Tasks start in submission order as threads and memory allow, a smaller
 * one before a larger one that does not fit yet; tasks of one group keep their order, and tasks
 * of one key run one at a time. Returns AT_OK, AT_ERR_ARG or AT_ERR_NOMEM. */
int scan_runner_submit(scan_runner *self, const scan_task *t);

/* Takes the oldest finished task's result into *out (caller owns it: scan_result_clear).
 * Returns 1, or 0 when none has finished. Never blocks. */
int scan_runner_next(scan_runner *self, scan_result *out);

/* Waits up to timeout_ms (0: not at all) for a result to be ready; returns 1 when one is. */
int scan_runner_wait(scan_runner *self, int timeout_ms);

/* Tasks queued or running. */
int64_t scan_runner_pending(scan_runner *self);

/* The number of threads. */
int scan_runner_threads(const scan_runner *self);

/* Where tasks run: the local runner (scan_exec_local), or every MPI rank (mpi_scan.h). */
typedef struct scan_exec {
    void *ctx;
    /* Takes every task (copied), once; starts them largest first (scan_task_order). Returns
     * AT_OK or a negative status. */
    int (*start)(void *ctx, const scan_task *tasks, size_t n);
    /* Puts the next finished task's result into *out (caller owns it), waiting up to timeout_ms
     * for one. Returns 1, or 0 when none came. */
    int (*wait)(void *ctx, int timeout_ms, scan_result *out);
} scan_exec;

/* An executor that runs every task on r (borrowed until the executor's last use). */
scan_exec scan_exec_local(scan_runner *r);

/* The byte form of tasks, results and setups, for the MPI module: each encoder
 * appends to a growing buffer; each decoder reads one item at *pos, advancing it, and returns
 * AT_OK or AT_ERR_FORMAT (truncated or malformed bytes) / AT_ERR_NOMEM. Every process of a run
 * is the same build on the same architecture: numbers are in the machine's own layout. A task
 * is encoded without memory locations (only tensors in files can be read elsewhere). */
typedef struct scan_buf {
    unsigned char *p;
    size_t n, cap;
    int failed; /* an append ran out of memory */
} scan_buf;

void scan_buf_free(scan_buf *b);
/* Appends p[0..n) to b (b->failed when out of memory). */
void scan_buf_put(scan_buf *b, const void *p, size_t n);
/* Copies k bytes at *pos of p[0..n) into out, advancing *pos; AT_ERR_FORMAT when fewer are
 * left. */
int scan_buf_get(const unsigned char *p, size_t n, size_t *pos, void *out, size_t k);
void scan_task_encode(scan_buf *b, const scan_task *t);
int scan_task_decode(const unsigned char *p, size_t n, size_t *pos, scan_task *t, char *strings,
                     size_t strings_cap);
void scan_result_encode(scan_buf *b, const scan_result *r);
int scan_result_decode(const unsigned char *p, size_t n, size_t *pos, scan_result *r);
void scan_setup_encode(scan_buf *b, const scan_setup *s);
int scan_setup_decode(const unsigned char *p, size_t n, size_t *pos, scan_setup *s);

/* Whether every tensor of t is in a file (so another process can read it). */
int scan_task_portable(const scan_task *t);

/* The number of CPUs this process may run on (its affinity mask), at least 1. */
int scan_cpus(void);

#endif
