/* SPDX-License-Identifier: Apache-2.0 */
/* lora.h -- HTSR metrics of a LoRA update B A without forming it (docs/metrics.md section 6).
 *
 * For adapters B (out x r) and A (r x in), B A = Q_B (R_B R_A^T) Q_A^T with B = Q_B R_B and
 * A^T = Q_A R_A (Householder QR, LAPACK dgeqrf), so the nonzero singular values of the
 * out x in product are those of the small r x r core R_B R_A^T. Cost O((out + in) r^2)
 * instead of O(out in r) for the product and O(out in min(out, in)) for its SVD.
 *
 * The eigenvalues analysed are the min(r, out, in) squared singular values of the core: the
 * product's remaining eigenvalues are exact zeros, which the power-law fit filters out anyway
 * (so alpha, xmin, D, sigma, num_pl_spikes and the scale metrics are those of the dense
 * product) but which would inflate num_evals, rank_loss and weak_rank_loss. With fewer than
 * min_evals such values (r < 10 by default) there are too few eigenvalues for a fit: the
 * result has status AT_FIT_SKIPPED, num_evals = r, and no alpha.
 *
 *     at_lora *l = at_lora_new();
 *     at_lora_analyze(l, &B, &A, 1.0, &opts, &m);   // B, A: row-major as PEFT stores them
 *     at_lora_free(l);
 *
 * Threading: an at_lora is used by one thread at a time.
 */
#ifndef ALPHATOP_LORA_H
#define ALPHATOP_LORA_H

#include <stddef.h>

#include "alphatop/htsr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque workspace; buffers grow to the largest adapter seen and are reused. */
typedef struct at_lora at_lora;

/* New workspace. Caller owns return value (free with at_lora_free); NULL when out of memory. */
AT_EXPORT at_lora *at_lora_new(void);

/* Frees the workspace. NULL-safe. */
AT_EXPORT void at_lora_free(at_lora *self);

/* Singular values of scale * B A, descending, computed from the factored form. B is a 2-D
 * tensor (out x r), A a 2-D tensor (r x in), both row-major, F32/F16/BF16; scale is the
 * adapter's scaling (PEFT: lora_alpha / r; 1 for the raw product). On success *sv points at
 * *n = min(r, out, in) values owned by self, valid until the next call on self.
 * Errors: AT_ERR_ARG (shapes do not chain, not 2-D), AT_ERR_NONFINITE, AT_ERR_NOMEM,
 * AT_ERR_LAPACK; detail in at_lora_last_error. */
AT_EXPORT int at_lora_svals(at_lora *self, const at_tensor *B, const at_tensor *A, double scale,
                            const double **sv, size_t *n);

/* Every column of at_metrics for scale * B A from its nonzero singular values (see the top of
 * this file): N, M, Q of the out x in product, rf = 1, num_evals = min(r, out, in), fit and
 * scale metrics, detX when o->detx. MP fit and traps are not computed (they need the dense
 * entries). o may be NULL (defaults). Errors as at_lora_svals. */
AT_EXPORT int at_lora_analyze(at_lora *self, const at_tensor *B, const at_tensor *A, double scale,
                              const at_htsr_opts *o, at_metrics *out);

/* The merged weight W + scale * B A as float32, row-major out x in, into dst (caller-owned,
 * out*in floats), accumulated in float64 and rounded once. W is 2-D (out x in). Errors:
 * AT_ERR_ARG (shapes), AT_ERR_NOMEM. */
AT_EXPORT int at_lora_merge(at_lora *self, const at_tensor *W, const at_tensor *B,
                            const at_tensor *A, double scale, float *dst);

/* Detail of the last error on self. Borrowed; never NULL. */
AT_EXPORT const char *at_lora_last_error(const at_lora *self);

#ifdef __cplusplus
}
#endif
#endif
