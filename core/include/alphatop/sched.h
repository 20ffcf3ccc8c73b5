/* sched.h -- refresh a whole model's metrics under a time budget, off the caller's thread.
 *
 * Snapshots of layers arrive (at_sched_submit, from any thread; the newest snapshot of a layer
 * replaces one still waiting). A refresh round analyses waiting layers in priority order until
 * the round's time budget is spent; the rest wait for the next round. Priority: a layer that
 * waited max_wait rounds first (no starvation), then layers never analysed, then by staleness
 * (seconds since the layer's last result) times change (its last relative weight change; 1 when
 * unknown). Each layer keeps its fast-mode state (fast.h), so a refreshed layer is usually a
 * cheap warm update or skipped.
 *
 *     at_sched_opts o; at_sched_opts_default(&o);
 *     at_sched *s = at_sched_new(&o, &rc);
 *     at_sched_start(s);                          // worker thread
 *     at_sched_submit(s, "blocks.0.attn", step, &tensor);   // copies the weights
 *     ... poll(at_sched_fd(s)) from the UI loop ...
 *     at_sched_result *r;
 *     while ((r = at_sched_poll(s))) { use r->layer, r->step, r->m, r->info;
 * at_sched_result_free(r); } at_sched_free(s);                           // stops the worker
 * Without at_sched_start, the caller drives rounds itself with at_sched_round (offline use).
 *
 * CPU use: one worker thread; its BLAS calls use opts.blas_threads OpenBLAS threads. OpenBLAS's
 * thread count is process-global: at_sched_start sets it (openblas_set_num_threads) and it
 * stays set. Default 1, so the worker occupies one core and leaves the other to the trainer
 * and the UI; set 2 for offline use on an idle machine.
 *
 * Threading: submit, poll, fd, progress and pause are thread-safe; round must not run
 * concurrently with the worker thread.
 */
#ifndef ALPHATOP_SCHED_H
#define ALPHATOP_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/fast.h"
#include "alphatop/htsr.h"
#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options; at_sched_opts_default gives the values below. */
typedef struct at_sched_opts {
    double budget_s;   /* 2.0: analysis seconds per refresh round (a started layer finishes) */
    int max_wait;      /* 3: a waiting layer is analysed at the latest after this many rounds */
    int blas_threads;  /* 1: OpenBLAS threads of the worker (process-global, see above) */
    int exact;         /* 0: fast mode (fast.h); 1: exact mode for every layer */
    at_fast_opts fast; /* fast-mode knobs */
    at_htsr_opts htsr; /* exact-mode options (also conv2d layers in fast mode) */
    /* Clock of the budget, seconds; NULL: CLOCK_MONOTONIC. Tests pass a counting clock. */
    double (*clock)(void *ctx);
    void *clock_ctx;
} at_sched_opts;

/* One finished analysis. Caller owns it (at_sched_result_free). */
typedef struct at_sched_result {
    char *layer;       /* layer name (owned by the result) */
    int64_t step;      /* the snapshot's training step */
    int64_t round;     /* refresh round that produced it (1, 2, ...) */
    int rc;            /* AT_OK or the analysis error */
    char error[192];   /* detail when rc < 0 */
    at_metrics m;      /* valid when rc == AT_OK; m.mode says how it was computed */
    at_fast_info info; /* mode, refresh reason, k, passes, relative change */
    double seconds;    /* analysis time (budget clock) */
    double lag_s;      /* from submit to result, monotonic seconds */
} at_sched_result;

/* Progress of the refresh, for a status line. */
typedef struct at_sched_progress {
    int64_t layers;        /* layers known */
    int64_t waiting;       /* layers with a snapshot not yet analysed */
    int64_t round;         /* rounds started */
    int64_t round_done;    /* layers analysed in the current (or last) round */
    int64_t round_total;   /* layers waiting when that round started */
    int64_t analysed;      /* results produced in total */
    int64_t replaced;      /* waiting snapshots replaced by a newer one before analysis */
    int64_t steps_behind;  /* largest (newest submitted step - newest analysed step) */
    double seconds_behind; /* age of the oldest waiting snapshot (0 if none) */
    int busy;              /* the worker is analysing a layer now */
} at_sched_progress;

typedef struct at_sched at_sched;

/* Fills *o with the defaults above. */
AT_EXPORT void at_sched_opts_default(at_sched_opts *o);

/* New scheduler (no thread yet). o may be NULL (defaults). Caller owns return value
 * (at_sched_free); NULL on error with *status (may be NULL) set: AT_ERR_NOMEM, AT_ERR_IO (no
 * pipe). */
AT_EXPORT at_sched *at_sched_new(const at_sched_opts *o, int *status);

/* Starts the worker thread, which runs rounds while snapshots wait. AT_OK, AT_ERR_STATE
 * (already started) or AT_ERR_IO (no thread). */
AT_EXPORT int at_sched_start(at_sched *self);

/* Stops the worker (after the layer it is analysing) and frees everything: waiting
 * snapshots and unpolled results included. NULL-safe. */
AT_EXPORT void at_sched_free(at_sched *self);

/* Submits a snapshot of layer `name` at training step `step`: the weights are copied (and
 * converted to float32), t is borrowed. Never waits for an analysis. Returns AT_OK, AT_ERR_ARG
 * (NULL, bad shape) or AT_ERR_NOMEM. */
AT_EXPORT int at_sched_submit(at_sched *self, const char *name, int64_t step, const at_tensor *t);

/* Like at_sched_submit, but takes ownership of data (float32, malloc'ed, shape as in t's
 * fields): no copy. On error data is freed too. */
AT_EXPORT int at_sched_submit_owned(at_sched *self, const char *name, int64_t step, float *data,
                                    at_layer_kind kind, int ndim, const int64_t *shape);

/* The oldest finished result, or NULL when none waits. Never blocks. Caller owns return
 * value. */
AT_EXPORT at_sched_result *at_sched_poll(at_sched *self);

/* Frees a result. NULL-safe. */
AT_EXPORT void at_sched_result_free(at_sched_result *r);

/* A file descriptor that is readable while results wait (for poll(2) next to other fds). */
AT_EXPORT int at_sched_fd(const at_sched *self);

/* Runs one refresh round on the calling thread. Returns the number of layers analysed (0:
 * nothing waiting, or the worker thread was started: then rounds are its job). */
AT_EXPORT int at_sched_round(at_sched *self);

/* Current progress into *out. */
AT_EXPORT void at_sched_progress_get(at_sched *self, at_sched_progress *out);

/* Pauses (1) or resumes (0) the worker; the layer being analysed finishes first. */
AT_EXPORT void at_sched_pause(at_sched *self, int paused);

#ifdef __cplusplus
}
#endif
#endif
