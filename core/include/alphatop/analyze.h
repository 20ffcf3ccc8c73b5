/* analyze.h -- the one way to analyse a layer: a layer job in, its metrics out.
 *
 * Every caller (the monitor's workers, `scan`, `diff`) describes what to analyse as an
 * at_layer_job and runs it on an at_analyzer, one per thread. The job says which space:
 *   plain   the weights W                        (exact: at_htsr_analyze; fast: at_fast_analyze)
 *   delta   W - base, the fine-tune update       (docs/metrics.md section 6), like plain weights
 *   lora    scale * B A from its factors, W = B  (always from the r x r core: lora.h)
 * and the analyzer's mode picks exact or fast for plain and delta weights. Fast mode keeps per-layer state
 * across snapshots in the job's at_fast_state (owned by the caller, one per layer; NULL: a
 * one-off cold analysis).
 *
 *     at_analyzer_opts o; at_analyzer_opts_default(&o);   // o.fast = 1 for fast mode
 *     at_analyzer *a = at_analyzer_new(&o, &status);       // per thread, reused
 *     at_layer_job job = {.w = &tensor};                   // borrowed views
 *     at_metrics m;
 *     int rc = at_analyzer_run(a, &job, &m, NULL);         // rc < 0: at_analyzer_last_error(a)
 *     at_analyzer_free(a);
 *
 * Threading: an at_analyzer is used by one thread at a time; separate objects are independent
 * (each owns its workspaces). A job's fast state must not be used by two threads at once.
 */
#ifndef ALPHATOP_ANALYZE_H
#define ALPHATOP_ANALYZE_H

#include <stddef.h>

#include "alphatop/fast.h"
#include "alphatop/htsr.h"
#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How every job on an analyzer is analysed; at_analyzer_opts_default gives the values below. */
typedef struct at_analyzer_opts {
    int fast;          /* 0: exact mode (the reference method); 1: fast mode for plain weights */
    at_htsr_opts htsr; /* exact-mode options (reference defaults); also conv2d in fast mode */
    at_fast_opts fast_opts; /* fast-mode knobs (fast.h defaults); min_evals follows htsr's */
    int keep_evals;    /* 1: keep the exact eigenvalues for at_analyzer_evals (default 0) */
} at_analyzer_opts;

/* One layer to analyse. Every pointer is borrowed for the call only. */
typedef struct at_layer_job {
    const at_tensor *w;      /* the weights; for LoRA the B factor (out x r) */
    const at_tensor *base;   /* delta: analyse w - base (same or 2-D transposed shape); NULL */
    const at_tensor *lora_a; /* LoRA: the A factor (r x in), analyse scale * B A; NULL */
    double lora_scale;       /* LoRA scaling (PEFT: lora_alpha / r); 0 means 1 */
    at_fast_state *state;    /* fast mode: the layer's state across snapshots; NULL: cold */
} at_layer_job;

typedef struct at_analyzer at_analyzer;

/* Fills *o with the defaults above. */
AT_EXPORT void at_analyzer_opts_default(at_analyzer_opts *o);

/* New analyzer with a copy of *o (NULL: defaults). Caller owns return value (at_analyzer_free);
 * NULL on error with *status (may be NULL) set to AT_ERR_NOMEM. */
AT_EXPORT at_analyzer *at_analyzer_new(const at_analyzer_opts *o, int *status);

/* Frees the analyzer and its workspaces. NULL-safe. */
AT_EXPORT void at_analyzer_free(at_analyzer *self);

/* The options the analyzer runs with. Borrowed. */
AT_EXPORT const at_analyzer_opts *at_analyzer_opts_get(const at_analyzer *self);

/* Analyses job into *out (every field written; out->mode says how) and, when info is not NULL,
 * *info (fast mode's provenance; mode exact / refresh none otherwise). Returns AT_OK (out->status
 * tells success / failed / skipped) or the analysis error: AT_ERR_ARG, AT_ERR_SIZE,
 * AT_ERR_UNSUPPORTED, AT_ERR_NONFINITE, AT_ERR_EMPTY, AT_ERR_NOMEM, AT_ERR_LAPACK, with detail in
 * at_analyzer_last_error. */
AT_EXPORT int at_analyzer_run(at_analyzer *self, const at_layer_job *job, at_metrics *out,
                              at_fast_info *info);

/* The ascending eigenvalues of the last successful exact analysis of plain or delta weights
 * when opts.keep_evals is set (*n of them), else NULL with *n = 0. Borrowed: valid until the
 * next call on self. */
AT_EXPORT const double *at_analyzer_evals(const at_analyzer *self, size_t *n);

/* Detail of the last error on self. Borrowed; never NULL. */
AT_EXPORT const char *at_analyzer_last_error(const at_analyzer *self);

#ifdef __cplusplus
}
#endif
#endif
