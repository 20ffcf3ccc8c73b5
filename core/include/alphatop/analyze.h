/* SPDX-License-Identifier: Apache-2.0 */
/* analyze.h -- the one way to analyse a layer: a layer job in, its metrics out.
 *
 * Every caller (the monitor's workers, `scan`, `diff`) describes what to analyse as an
 * at_layer_job and runs it on an at_analyzer, one per thread. The job says which space, and
 * the analyzer's mode how it is analysed:
 *   plain   the weights W             exact: at_htsr_analyze; fast: at_fast_analyze
 *   delta   W - base, the fine-tune   exact: at_htsr_analyze_delta; fast: W - base formed in
 *           update (docs/metrics.md   float32 in the analyzer's own buffer (as
 *           section 6)                at_htsr_analyze_delta forms it), then at_fast_analyze
 *                                     on it with the job's state -- or, with opts.delta_exact,
 *                                     at_htsr_analyze_delta as in exact mode
 *   lora    scale * B A from its      always at_lora_analyze (the r x r core, lora.h), in
 *           factors, W = B            either mode
 * Each path gives bit for bit what the direct call gives. Fast mode keeps per-layer state
 * across snapshots in the job's at_fast_state (owned by the caller, one per layer and space;
 * NULL: a one-off cold analysis); exact and LoRA jobs ignore it.
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
    int fast;               /* 0: exact mode (the reference method); 1: fast mode for plain and
                               delta weights */
    at_htsr_opts htsr;      /* exact-mode and LoRA options (reference defaults); also conv2d and
                               min_evals in fast mode */
    at_fast_opts fast_opts; /* fast-mode knobs (fast.h defaults); its min_evals is ignored:
                               htsr.min_evals applies */
    int delta_exact;        /* fast mode: 1 analyses delta jobs in exact mode, as `scan --fast
                               --base` does (default 0: fast, as the monitor does) */
    int keep_evals; /* 1: expose the exact eigenvalues through at_analyzer_evals (default 0) */
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

/* sizeof(at_analyzer_opts) and sizeof(at_metrics) in this build: a binding that mirrors the
 * structs (the Python package's ctypes) checks them before the library writes into its copies. */
AT_EXPORT size_t at_analyzer_opts_size(void);
AT_EXPORT size_t at_metrics_size(void);

/* New analyzer with a copy of *o (NULL: defaults). Caller owns return value (at_analyzer_free);
 * NULL on error with *status (may be NULL) set to AT_ERR_NOMEM. */
AT_EXPORT at_analyzer *at_analyzer_new(const at_analyzer_opts *o, int *status);

/* Frees the analyzer and its workspaces. NULL-safe. */
AT_EXPORT void at_analyzer_free(at_analyzer *self);

/* The options the analyzer runs with. Borrowed. */
AT_EXPORT const at_analyzer_opts *at_analyzer_opts_get(const at_analyzer *self);

/* Analyses job into *out (every field written; out->mode says how) and, when info is not NULL,
 * *info (fast mode's provenance; for exact and LoRA jobs mode exact, refresh none, k the
 * number of eigenvalues, rel_change NAN). Returns AT_OK (out->status tells success / failed /
 * skipped) or the analysis error, with detail in at_analyzer_last_error: AT_ERR_ARG (no job,
 * weights or output; both base and lora_a; bad shape or kind; LoRA factors that do not chain),
 * AT_ERR_SIZE (base does not pair with w), AT_ERR_UNSUPPORTED (dtype), AT_ERR_NONFINITE (NaN/Inf
 * weights), AT_ERR_EMPTY (no elements; fast mode: all-zero weights), AT_ERR_NOMEM, AT_ERR_LAPACK.
 */
AT_EXPORT int at_analyzer_run(at_analyzer *self, const at_layer_job *job, at_metrics *out,
                              at_fast_info *info);

/* Whether at_analyzer_run with options o would skip job for its size (too few or too many
 * eigenvalues, a side above max_N: the rules of o's mode), decided from the shapes alone: then
 * returns 1 with *out as that run writes it (status AT_FIT_SKIPPED, the shape columns), and no
 * weight has been read -- nor is one read by the run itself, so a skipped layer's values (NaN or
 * not) do not matter. Returns 0 when the job would be analysed, is refused for its shapes, or is
 * a LoRA job (whose rank is its size). job->w->data may be NULL. */
/* Not exported from libalphatop_core.so: for schedulers linking at_core. */
int at_analyzer_skips(const at_analyzer_opts *o, const at_layer_job *job, at_metrics *out);

/* The ascending eigenvalues (*n of them, pooled over conv slices) of the last run when it was a
 * successful exact analysis of plain or delta weights (exact mode, or a delta job with
 * delta_exact) and opts.keep_evals is set; else NULL with *n = 0. Nothing is copied: they live
 * in the exact workspace. Borrowed: valid until the next call on self. */
AT_EXPORT const double *at_analyzer_evals(const at_analyzer *self, size_t *n);

/* Detail of the last error on self. Borrowed; never NULL. */
AT_EXPORT const char *at_analyzer_last_error(const at_analyzer *self);

#ifdef __cplusplus
}
#endif
#endif
