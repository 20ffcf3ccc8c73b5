/* SPDX-License-Identifier: Apache-2.0 */
/* warm.h -- (internal to core) one warm update: subspace iteration from a stored basis. */
#ifndef ALPHATOP_CORE_WARM_H
#define ALPHATOP_CORE_WARM_H

#include <stdint.h>

/* Workspace; buffers grow to the largest problem seen and are reused. */
typedef struct at_warm at_warm;

/* New workspace. Caller owns return value; NULL when out of memory. */
at_warm *at_warm_new(void);

/* Frees the workspace. NULL-safe. */
void at_warm_free(at_warm *self);

/* Float32 subspace iteration on the m x n column-major float32 matrix a (see gram.h for the
 * layout; op(A) is A when n <= m, else A^T, so op(A) is long x short) starting from v, a p x b
 * basis of the short side (p = min(m, n), k <= b <= p), overwritten with the new top-b singular
 * vectors (ascending, like lambda_top). Each pass: Y = op(A) V; Cholesky-QR in float64 (two
 * rounds; a shifted first round and two more when the plain Cholesky breaks down); Z =
 * op(A)^T Q; Z's
 * singular values and left singular vectors in float64, from the b x b eigenproblem of Z^T Z.
 * Makes min_passes passes, then more (up to max_passes) until none of the top 2k/3 Ritz values
 * (the tail and the values just below it, where xmin lies) moved by more than tol (relative) in
 * the last pass; *passes gets the count, *converged whether that test passed (1 when
 * max_passes == min_passes == 1: nothing to compare). Writes the b Ritz values (squared
 * singular values) ascending into lambda_top. Returns AT_OK, AT_ERR_ARG, AT_ERR_NOMEM or
 * AT_ERR_LAPACK (then v is unspecified). */
int at_warm_run(at_warm *self, const float *a, int64_t m, int64_t n, int64_t b, int64_t k,
                int min_passes, int max_passes, double tol, float *v, double *lambda_top,
                int *passes, int *converged);

#endif
