/* SPDX-License-Identifier: Apache-2.0 */
/* fast.h -- fast mode: a layer's HTSR metrics from float32 spectra, warm-started from the
 * previous snapshot of the same layer.
 *
 * Per layer, an at_fast_state keeps what the next snapshot needs (the top-b singular vectors of
 * the short side, the last full spectrum, a sketch of the weights, the last result). Per
 * thread, an at_fast workspace holds the buffers. at_fast_analyze chooses:
 *   skipped  the weights moved less than skip_rel since the last computed snapshot: that
 *            result is returned again (mode AT_MODE_SKIPPED);
 *   warm     1 pass of float32 subspace iteration from the stored subspace when the change is
 *            at most two_pass_rel; above it 2 passes, then more (up to max_passes) until the
 *            top-k Ritz values move less than converge_tol; fit restricted to the top-k
 *            eigenvalues (AT_MODE_WARM);
 *   gram     float32 Gram matrix, full spectrum, full fit; keeps the top-b vectors when the
 *            warm updates they allow over the next `horizon` snapshots save more than they
 *            cost (AT_MODE_GRAM). Used on the first snapshot, on every refresh, and always
 *            for layers where keeping vectors does not pay (a heavy tail makes b large);
 *   exact    conv2d layers (pooled slices, the reference's quirks) go to at_htsr_analyze.
 * k = max(k_min, 1.5 x num_pl_spikes of the last full fit), block b = k + k/4. A warm result
 * is replaced by a full one when its xmin falls in the bottom third of the top-k, when
 * num_pl_spikes moved more than tail_change (relative), when the change exceeds max_warm_rel or
 * the passes do not converge, and every refresh_every snapshots.
 *
 * Columns in fast mode: alpha, xmin, xmax, D, sigma, num_pl_spikes, lambda_max, sv_max come from
 * the fit as in exact mode (the warm fit searches xmin only within the top-k). norm and
 * log_norm are exact (squared Frobenius norm of the weights). Warm scale metrics that need the
 * whole spectrum (log_alpha_norm, entropy, matrix_rank, sv_min, rank_loss, weak_rank_loss) use
 * the last full spectrum's bulk rescaled to the current norm. Rank-type columns from a float32
 * Gram only resolve values above ~1e-7 * lambda_max. detX, MP fit and traps are not computed
 * (-1 / NAN). Fast mode lifts the reference's max_evals and max_N limits (min_evals applies).
 *
 * Threading: an at_fast and an at_fast_state are each used by one thread at a time.
 */
#ifndef ALPHATOP_FAST_H
#define ALPHATOP_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/htsr.h"
#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Why a full spectrum was computed instead of a warm update. */
typedef enum at_refresh {
    AT_REFRESH_NONE = 0,       /* warm or skipped: no full spectrum */
    AT_REFRESH_FIRST = 1,      /* no usable state (first snapshot, new shape) */
    AT_REFRESH_XMIN_LOW = 2,   /* warm xmin fell in the bottom third of the top-k */
    AT_REFRESH_TAIL = 3,       /* num_pl_spikes moved more than tail_change */
    AT_REFRESH_LARGE = 4,      /* no vectors were kept: the block would exceed max_block_frac
                                  of the short side, or keeping it did not pay (horizon) */
    AT_REFRESH_PERIODIC = 5,   /* refresh_every snapshots since the last full spectrum */
    AT_REFRESH_NOT_LINEAR = 6, /* conv2d: exact mode every time */
    AT_REFRESH_CHANGE = 7      /* change above max_warm_rel, or passes did not converge */
} at_refresh;

/* Knobs of fast mode; at_fast_opts_default gives the values below. */
typedef struct at_fast_opts {
    double skip_rel;       /* 1e-5: relative change (Frobenius) below which a layer is skipped */
    double two_pass_rel;   /* 3e-3: relative change above which a warm update makes 2+ passes */
    int max_passes;        /* 4: most passes of one warm update */
    double converge_tol;   /* 5e-5: largest relative move of a tail Ritz value in the last pass
                              (tightened to 2.5e-4 / (alpha - 1)^2 for large alphas) */
    double max_warm_rel;   /* 0.05: relative change above which a full spectrum is computed */
    int64_t k_min;         /* 64: smallest top-k of a warm update */
    double max_block_frac; /* 0.3: warm only while b <= this fraction of the short side */
    double tail_change;    /* 0.25: relative change of num_pl_spikes that forces a refresh */
    int refresh_every;     /* 16: full spectrum at least every this many computed snapshots */
    int horizon;           /* 15: snapshots of the layer expected after a full spectrum; its
                              top-b vectors are kept only when the warm updates they allow over
                              that many save more than they cost (a cost model of the paths);
                              0 (e.g. the last snapshot a caller will send): keep none */
    int64_t min_evals;     /* 10: layers with fewer eigenvalues are AT_FIT_SKIPPED */
    uint64_t seed;         /* seed of the change sketch's random probes */
    size_t panel_bytes;    /* 256 MiB: a layer stored as F16/BF16 whose float32 copy would exceed
                              this is, when analysed cold (no warm state), widened panel by panel
                              (a quarter of this, at most 64 MiB, each) into its Gram matrix
                              instead of as a whole, so memory stays near the Gram matrix's (the
                              sum's order differs: float32 roundoff); 0: always whole */
} at_fast_opts;

/* How one result was produced. */
typedef struct at_fast_info {
    at_mode mode;       /* exact / gram / warm / skipped */
    at_refresh refresh; /* why a full spectrum, when mode is gram or exact */
    int64_t k;          /* eigenvalues fitted over: top-k (warm) or all (gram/exact) */
    int64_t b;          /* block size kept for the next warm update; 0 if none */
    int passes;         /* subspace-iteration passes (warm), else 0 */
    double rel_change;  /* estimated ||W - W_last|| / ||W_last|| (Frobenius) since the last
                           computed snapshot; NAN on the first snapshot */
} at_fast_info;

/* Per-thread workspace. */
typedef struct at_fast at_fast;
/* Per-layer state across snapshots. */
typedef struct at_fast_state at_fast_state;

/* Fills *o with the defaults above. */
AT_EXPORT void at_fast_opts_default(at_fast_opts *o);

/* New workspace. Caller owns return value (free with at_fast_free); NULL when out of memory. */
AT_EXPORT at_fast *at_fast_new(void);

/* Frees the workspace. NULL-safe. */
AT_EXPORT void at_fast_free(at_fast *self);

/* New empty per-layer state (the next analysis is cold). Caller owns return value (free with
 * at_fast_state_free); NULL when out of memory. */
AT_EXPORT at_fast_state *at_fast_state_new(void);

/* Frees a state. NULL-safe. */
AT_EXPORT void at_fast_state_free(at_fast_state *st);

/* Bytes the state holds (subspace, spectrum, sketch): for memory accounting. */
AT_EXPORT size_t at_fast_state_bytes(const at_fast_state *st);

/* Analyzes one snapshot of a layer in fast mode into *out (every field written; out->mode set)
 * and *info (may be NULL). st carries the layer across snapshots and is updated; st == NULL
 * means a one-off cold analysis. o == NULL means defaults; it should stay the same for a
 * layer. htsr_opts (may be NULL: reference defaults) is used only for the exact path of conv2d
 * layers. Returns AT_OK (out->status tells success / failed / skipped) or AT_ERR_ARG,
 * AT_ERR_NONFINITE, AT_ERR_EMPTY (all-zero weights), AT_ERR_NOMEM, AT_ERR_LAPACK; on error st
 * is unchanged and at_fast_last_error(self) has detail. */
AT_EXPORT int at_fast_analyze(at_fast *self, at_fast_state *st, const at_tensor *t,
                              const at_fast_opts *o, const at_htsr_opts *htsr_opts, at_metrics *out,
                              at_fast_info *info);

/* Detail of the last error on self. Borrowed; never NULL. */
AT_EXPORT const char *at_fast_last_error(const at_fast *self);

/* "none", "first", "xmin-low", "tail", "large", "periodic", "not-linear", "change". Static string.
 */
AT_EXPORT const char *at_refresh_name(at_refresh r);

#ifdef __cplusplus
}
#endif
#endif
