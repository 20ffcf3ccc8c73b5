/* SPDX-License-Identifier: Apache-2.0 */
/* htsr.h -- Heavy-Tailed Self-Regularization metrics of one layer (exact mode).
 *
 * Definitions follow docs/metrics.md (WeightWatcher 0.7.5.5 defaults) exactly.
 * Column names in at_metrics match the reference's DataFrame columns.
 *
 * Typical use:
 *     at_htsr *h = at_htsr_new();                 // workspace, reused across layers
 *     at_htsr_opts o; at_htsr_opts_default(&o);
 *     at_tensor t = {.data = w, .dtype = AT_DTYPE_F32, .kind = AT_KIND_LINEAR,
 *                    .ndim = 2, .shape = {rows, cols}};
 *     at_metrics m;
 *     int rc = at_htsr_analyze(h, &t, &o, &m);    // rc < 0: see at_htsr_last_error(h)
 *     at_htsr_free(h);
 *
 * Threading: an at_htsr is used by one thread at a time; separate objects are independent.
 */
#ifndef ALPHATOP_HTSR_H
#define ALPHATOP_HTSR_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element type of weights as they arrive (converted to float32/float64 internally). */
typedef enum at_dtype { AT_DTYPE_F32 = 0, AT_DTYPE_F16 = 1, AT_DTYPE_BF16 = 2 } at_dtype;

/* What kind of layer a tensor is; decides how it becomes matrices (docs/metrics.md section 1). */
typedef enum at_layer_kind {
    AT_KIND_LINEAR = 0,    /* 2-D (out, in) */
    AT_KIND_CONV2D = 1,    /* 4-D (out, in, kh, kw), row-major */
    AT_KIND_EMBEDDING = 2, /* 2-D (num, dim) */
    AT_KIND_CONV1D = 3,    /* 2-D after squeezing, treated as linear */
} at_layer_kind;

/* A borrowed view of one layer's weights: row-major (C order), little-endian, as PyTorch
 * and safetensors store them. The library never keeps the pointer past the call. */
typedef struct at_tensor {
    const void *data;
    at_dtype dtype;
    at_layer_kind kind;
    int ndim;         /* 2 or 4 */
    int64_t shape[4]; /* shape[0..ndim-1] */
} at_tensor;

/* Outcome of the power-law fit. */
typedef enum at_fit_status {
    AT_FIT_SUCCESS = 0,
    AT_FIT_FAILED = 1,  /* fewer than 2 eigenvalues above 1e-5, or a non-finite alpha */
    AT_FIT_SKIPPED = 2, /* layer outside min_evals / max_evals / max_N: no metrics */
} at_fit_status;

/* The reference's warning column. A failed fit is AT_WARN_FAILED in alphatop's own views;
 * at_warning_reference_name() gives the reference label ("over-trained") for it. */
typedef enum at_warning {
    AT_WARN_NONE = 0,          /* 2 <= alpha <= 6 */
    AT_WARN_OVER_TRAINED = 1,  /* alpha < 2: burnt */
    AT_WARN_UNDER_TRAINED = 2, /* alpha > 6: raw */
    AT_WARN_FAILED = 3,
} at_warning;

/* Which computation produced a result (exact is the reference method). */
typedef enum at_mode {
    AT_MODE_EXACT = 0,   /* float64 spectrum of the whole matrix (the reference method) */
    AT_MODE_GRAM = 1,    /* fast cold: float32 Gram eigenvalues, full spectrum */
    AT_MODE_WARM = 2,    /* fast warm: subspace iteration from the previous snapshot, top-k */
    AT_MODE_SKIPPED = 3, /* unchanged since the previous snapshot: previous result reused */
} at_mode;

/* Options. Defaults (at_htsr_opts_default) are the reference's. */
typedef struct at_htsr_opts {
    int64_t min_evals; /* 10: skip a layer with fewer eigenvalues (M*rf) */
    int64_t max_evals; /* 15000: skip a layer with more eigenvalues */
    int64_t max_N;     /* 50000: skip a layer whose long side is larger */
    int detx;          /* 0: also compute detX */
    int mp_fit;        /* 0: also compute the Marchenko-Pastur fit */
    int traps;         /* 0: also count correlation traps */
    uint64_t seed;     /* seed of the traps' shuffle */
} at_htsr_opts;

/* Every per-layer column. Integers are -1 and doubles NAN where a value does not exist. */
typedef struct at_metrics {
    /* shape (docs/metrics.md section 1) */
    int64_t N, M, rf;
    double Q;
    int64_t num_evals;
    /* spectrum (section 2) */
    double sv_max, sv_min, lambda_max;
    int64_t rank_loss, weak_rank_loss;
    /* power-law fit (section 3) */
    at_fit_status status;
    at_warning warning;
    double alpha, xmin, xmax, D, sigma;
    int64_t num_pl_spikes;
    /* scale metrics (section 4) */
    double norm, log_norm, spectral_norm, log_spectral_norm, alpha_weighted, log_alpha_norm,
        stable_rank, entropy;
    int64_t matrix_rank;
    /* optional (section 5): valid when the option was on */
    int64_t detx_num;
    double detx_val;
    int64_t mp_num_spikes;
    double mp_sigma, mp_softrank, mp_bulk_max; /* bulk_max in eigenvalue units */
    int64_t num_traps;                         /* centred, seeded shuffle */
    double trap_max_ratio;                     /* largest trap eigenvalue / bulk edge; 0 if none */
    /* provenance */
    at_mode mode;
} at_metrics;

/* Result of the power-law fit alone. */
typedef struct at_fit {
    at_fit_status status;
    double alpha, xmin, xmax, D, sigma;
    int64_t num_pl_spikes; /* count of eigenvalues >= xmin over the whole input */
    int64_t xmin_index;    /* index of xmin in the filtered (> 1e-5) ascending values */
} at_fit;

/* Opaque exact-mode workspace; buffers grow to the largest layer seen and are reused. */
typedef struct at_htsr at_htsr;

/* Fills *o with the reference defaults. */
AT_EXPORT void at_htsr_opts_default(at_htsr_opts *o);

/* New workspace. Caller owns return value (free with at_htsr_free); NULL when out of memory. */
AT_EXPORT at_htsr *at_htsr_new(void);

/* Frees the workspace. NULL-safe. */
AT_EXPORT void at_htsr_free(at_htsr *self);

/* Sets every field of *m to "absent": integers -1, doubles NAN, status AT_FIT_SKIPPED, no
 * warning, and the given mode. Every analysis starts from this. */
AT_EXPORT void at_metrics_init(at_metrics *m, at_mode mode);

/* Analyzes one layer in exact mode into *out (every field written). Returns AT_OK; a skipped
 * layer is AT_OK with out->status == AT_FIT_SKIPPED (only N, M, rf, Q, num_evals set); a
 * failed fit (e.g. an all-zero or tiny-scale layer: out->norm tells them apart) is AT_OK with
 * AT_FIT_FAILED. o NULL means the defaults. Errors: AT_ERR_ARG (bad shape/kind),
 * AT_ERR_UNSUPPORTED (dtype), AT_ERR_NONFINITE (NaN/Inf weights, counts in the last error),
 * AT_ERR_EMPTY (no elements), AT_ERR_NOMEM, AT_ERR_LAPACK. */
AT_EXPORT int at_htsr_analyze(at_htsr *self, const at_tensor *t, const at_htsr_opts *o,
                              at_metrics *out);

/* Analyzes the fine-tune update model - base of one layer (docs/metrics.md section 6) in exact
 * mode, like at_htsr_analyze on the float32 difference. base has model's shape, or (2-D only) the
 * transposed shape; dtypes may differ. Errors as at_htsr_analyze, plus AT_ERR_SIZE when the
 * shapes do not match. */
AT_EXPORT int at_htsr_analyze_delta(at_htsr *self, const at_tensor *model, const at_tensor *base,
                                    const at_htsr_opts *o, at_metrics *out);

/* The ascending eigenvalues of the last successful at_htsr_analyze (num_evals values,
 * pooled over conv slices). Borrowed: valid until the next call on self. */
AT_EXPORT const double *at_htsr_evals(const at_htsr *self, size_t *n);

/* Detail of the last error on self, e.g. "weights contain 3 NaN values". Borrowed; never NULL. */
AT_EXPORT const char *at_htsr_last_error(const at_htsr *self);

/* The power-law fit of docs/metrics.md section 3 over ascending eigenvalues x[0..n-1] (all of them,
 * including those <= 1e-5, which the fit filters out itself). Pure; O(n log n) or better
 * average time, identical results to the naive O(n^2) scan. Returns AT_OK (a failed fit is
 * reported in out->status) or AT_ERR_ARG / AT_ERR_NOMEM. */
AT_EXPORT int at_powerlaw_fit(const double *x, size_t n, at_fit *out);

/* Fills the scale metrics of docs/metrics.md section 4 into *m from ascending eigenvalues x[0..n-1]
 * (all of them, including those <= 1e-5): norm, log_norm, spectral_norm, log_spectral_norm,
 * alpha_weighted, log_alpha_norm, stable_rank, matrix_rank, entropy. Reads only m->alpha
 * (the fit's alpha; -1 for a failed fit, as the reference uses it) and m->N (the long side,
 * the rank tolerance's factor); writes nothing else. n == 0 leaves the fields untouched. */
AT_EXPORT void at_scale_metrics(const double *x, size_t n, at_metrics *m);

/* detX of docs/metrics.md section 5 over ascending eigenvalues x[0..n-1] (all of them):
 * *num = detX_num (size of the tail whose rescaled product first drops below 1; n if it never
 * does), *val = detX_val, the eigenvalue where that tail starts, in x's units. AT_ERR_ARG for
 * n == 0 or a non-positive sum. */
AT_EXPORT int at_detx(const double *x, size_t n, int64_t *num, double *val);

/* Marchenko-Pastur fit of docs/metrics.md section 5 (see docs/core.md for the estimator). */
typedef struct at_mp {
    double sigma;       /* MP bulk width, eigenvalues rescaled to mean 1 */
    double bulk_max;    /* upper bulk edge, in x's units */
    double bulk_min;    /* lower bulk edge, in x's units */
    double softrank;    /* mp_softrank = bulk_max / max(x) */
    int64_t num_spikes; /* eigenvalues above bulk_max + sqrt(Tracy-Widom margin) */
} at_mp;

/* Fits the MP bulk to ascending eigenvalues x[0..n-1] of a layer with aspect ratio Q = N/M
 * (as in at_metrics) and short side M. Pure; allocates a scratch buffer. AT_ERR_ARG for
 * n < 2, Q <= 0 or a zero spectrum; AT_ERR_NOMEM. */
AT_EXPORT int at_mp_fit(const double *x, size_t n, double Q, int64_t M, at_mp *out);

/* Correlation traps of one layer (docs/metrics.md section 5): subtracts the global mean, shuffles
 * the entries with a generator seeded by seed (same seed, same result), and counts the shuffled
 * matrix's eigenvalues above s2*(sqrt(N)+sqrt(M))^2 plus the Tracy-Widom margin. A conv2d
 * tensor is analysed as the (out, in*kh*kw) matrix. Only the top eigenvalues are computed
 * (cheap enough to call on every snapshot). *num_traps gets the count, *max_ratio (may be
 * NULL) the largest trap eigenvalue over the edge (0 if none). Uses self's buffers.
 * Errors as at_htsr_analyze. */
AT_EXPORT int at_htsr_traps(at_htsr *self, const at_tensor *t, uint64_t seed, int64_t *num_traps,
                            double *max_ratio);

/* Warning for an alpha and fit status (alphatop's own labels). */
AT_EXPORT at_warning at_warning_for(at_fit_status status, double alpha);

/* "", "over-trained", "under-trained", "failed". Static string. */
AT_EXPORT const char *at_warning_name(at_warning w);

/* The reference's label: like at_warning_name but "over-trained" for a failed fit. */
AT_EXPORT const char *at_warning_reference_name(at_warning w);

/* "success", "failed", "skipped". Static string. */
AT_EXPORT const char *at_fit_status_name(at_fit_status s);

/* "exact", "gram", "warm", "skipped". Static string. */
AT_EXPORT const char *at_mode_name(at_mode m);

/* Converts n elements of dtype to float32 (f16/bf16 with correct rounding, subnormals and
 * non-finite values preserved). dst is caller-owned and holds n floats. */
AT_EXPORT void at_convert_to_f32(const void *src, at_dtype dtype, size_t n, float *dst);

#ifdef __cplusplus
}
#endif
#endif
