/* SPDX-License-Identifier: Apache-2.0 */
/* gram.h -- eigenvalues of a matrix through its Gram matrix (the fast spectra behind fast mode).
 *
 * The squared singular values of A are the eigenvalues of the Gram matrix of its short side.
 * Forming that Gram matrix (one syrk, BLAS-3) and tridiagonalizing it is several times cheaper
 * than an SVD of A, and exact for the large eigenvalues (a two-stage reduction: full -> band ->
 * tridiagonal; in float32 every reflector is kept for at_gram_top_vectors32). Small ones carry an
 * absolute error of a few eps * lambda_max, so the float64 path recomputes the eigenvalues below a
 * trust threshold from A itself (see at_gram_evals64).
 *
 * Matrices are column-major, m x n, leading dimension m. A row-major rows x cols tensor is the
 * column-major cols x rows matrix of the same bytes: pass m = cols, n = rows, nothing is copied.
 * p = min(m, n) eigenvalues come out, ascending.
 *
 * Threading: an at_gram is used by one thread at a time. BLAS threads: see docs/fast.md.
 */
#ifndef ALPHATOP_GRAM_H
#define ALPHATOP_GRAM_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How at_gram_evals64 obtained its values. */
typedef enum at_gram_path {
    AT_GRAM_PLAIN = 0, /* every eigenvalue above the trust threshold: Gram values as they are */
    AT_GRAM_RITZ = 1,  /* the smallest ones recomputed from A on the Gram's bottom subspace */
    AT_GRAM_SVD = 2,   /* fell back to dgesdd of A (many tiny or rank-threshold values) */
} at_gram_path;

/* Opaque workspace: buffers grow to the largest matrix seen and are reused. */
typedef struct at_gram at_gram;

/* New workspace. Caller owns return value (free with at_gram_free); NULL when out of memory. */
AT_EXPORT at_gram *at_gram_new(void);

/* Frees the workspace. NULL-safe. */
AT_EXPORT void at_gram_free(at_gram *self);

/* Exact-mode spectrum: the p ascending squared singular values of the m x n float64 matrix a
 * (borrowed, not modified) into lambda[0..p-1] (caller-owned). Equal to dgesdd's squared
 * singular values within 1e-7 relative for every value above ~3.6e-8 * lambda_max and, for the
 * smaller ones, within dgesdd's own roundoff (a Rayleigh-Ritz on A restricted to the Gram's
 * bottom subspace, iterated until converged, used only where its error bound settles the value's
 * side of the matrix_rank threshold; else dgesdd itself, also when that subspace is large).
 * *path (may be NULL) says which. An all-zero a is found before any work: p zeros, path
 * AT_GRAM_PLAIN. The band-to-tridiagonal step runs on one OpenBLAS thread (more only spin on its
 * tiny calls): the process-global thread count is set to 1 for it and restored. Errors: AT_ERR_ARG,
 * AT_ERR_NOMEM, AT_ERR_LAPACK. */
AT_EXPORT int at_gram_evals64(at_gram *self, const double *a, int64_t m, int64_t n, double *lambda,
                              at_gram_path *path);

/* Fast cold spectrum: float32 Gram + float32 tridiagonal eigenvalues of the m x n float32 matrix
 * a (borrowed; it must stay valid and unchanged until at_gram_top_vectors32 if that follows).
 * The band-to-tridiagonal step runs on one OpenBLAS thread, like at_gram_evals64's.
 * Writes the p ascending eigenvalues, negative roundoff clamped to 0, into lambda (caller-owned);
 * an all-zero a is found before any work (p zeros; no vectors follow: AT_ERR_STATE).
 * Relative accuracy ~1e-6 for the large values; small ones are noise at ~1e-7 * lambda_max.
 * Errors: AT_ERR_ARG, AT_ERR_NOMEM, AT_ERR_LAPACK. */
AT_EXPORT int at_gram_evals32(at_gram *self, const float *a, int64_t m, int64_t n, double *lambda);

/* at_gram_evals32 of a matrix the caller holds in panels (one too large to widen to float32 at
 * once): at_gram_begin32 starts the p x p Gram matrix of the short side; each at_gram_add32
 * adds X X^T for a p x k panel X (trans 0; column-major, leading dimension ldx >= p) or X^T X
 * for a k x p panel (trans 1, ldx >= k); at_gram_end32 writes the p ascending eigenvalues into
 * lambda as at_gram_evals32 does, and at_gram_top_vectors32 may follow. One panel holding the
 * whole matrix gives at_gram_evals32's values bit for bit; more panels sum in another order
 * (float32 roundoff). Errors: AT_ERR_ARG, AT_ERR_NOMEM, AT_ERR_STATE (no begin, or no panel),
 * AT_ERR_LAPACK. */
AT_EXPORT int at_gram_begin32(at_gram *self, int64_t p);
AT_EXPORT int at_gram_add32(at_gram *self, const float *x, int64_t k, int64_t ldx, int trans);
AT_EXPORT int at_gram_end32(at_gram *self, double *lambda);

/* After at_gram_evals32 on self: the unit eigenvectors of the b largest eigenvalues into v
 * (caller-owned, p x b column-major; column j belongs to lambda[p-b+j]). They are the right
 * singular vectors of A when n <= m, the left ones otherwise (the short side's). 1 <= b <= p.
 * With two or more OpenBLAS threads, carrying the vectors back through the band-to-tridiagonal
 * step splits their columns with one thread of its own for the duration of the call.
 * Errors: AT_ERR_STATE (no preceding at_gram_evals32), AT_ERR_ARG, AT_ERR_NOMEM, AT_ERR_LAPACK. */
AT_EXPORT int at_gram_top_vectors32(at_gram *self, int64_t b, float *v);

/* Detail of the last error on self. Borrowed; never NULL. */
AT_EXPORT const char *at_gram_last_error(const at_gram *self);

#ifdef __cplusplus
}
#endif
#endif
