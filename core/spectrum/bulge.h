/* SPDX-License-Identifier: Apache-2.0 */
/* bulge.h -- (internal to core) float32 band -> tridiagonal reduction that keeps its reflectors.
 *
 * LAPACK 3.11's ssytrd_sb2st reduces a band matrix to tridiagonal form by bulge chasing but keeps
 * only the last two sweeps' Householder vectors, so nothing can carry the tridiagonal form's
 * eigenvectors back. This drives LAPACK's own kernel (ssb2st_kernels) one sweep after another,
 * keeps every reflector, and applies their product Q to vectors with cache-blocked kernels. */
#ifndef ALPHATOP_CORE_BULGE_H
#define ALPHATOP_CORE_BULGE_H

#include <stdint.h>

/* Workspace; buffers grow to the largest problem seen and are reused. */
typedef struct at_bulge at_bulge;

/* New workspace. Caller owns return value; NULL when out of memory. */
at_bulge *at_bulge_new(void);

/* Frees the workspace. NULL-safe. */
void at_bulge_free(at_bulge *self);

/* Reduces the n x n symmetric band matrix B of half-width kd (0 <= kd < n, kd <= 64), given
 * in LAPACK's lower band storage ab (ldab >= kd + 1; borrowed, not modified), to T = Q^T B Q: T's
 * diagonal into d[0..n-1], its off-diagonal into e[0..n-2] (caller-owned). Q's reflectors stay in
 * self for at_bulge_apply. d and e are bit-identical to LAPACK's ssytrd_sb2st. Returns AT_OK,
 * AT_ERR_ARG or AT_ERR_NOMEM. */
int at_bulge_reduce(at_bulge *self, int n, int kd, const float *ab, int ldab, float *d, float *e);

/* Kernels of at_bulge_apply, by instruction set; the widest the CPU runs is used. */
typedef enum at_bulge_isa {
    AT_BULGE_SSE2 = 0,
    AT_BULGE_AVX2 = 1,
    AT_BULGE_AVX512 = 2
} at_bulge_isa;

/* Limits at_bulge_apply to kernels up to isa (tests of every kernel on one CPU). */
void at_bulge_limit_isa(at_bulge *self, int isa);

/* z = Q z for the n x b column-major z (ldz >= n) and the Q of the last at_bulge_reduce: turns
 * eigenvectors of T into eigenvectors of B. threads >= 2 splits z's columns with one extra
 * thread (the reflectors are only read). Returns AT_OK, AT_ERR_STATE (no reduction yet),
 * AT_ERR_ARG or AT_ERR_NOMEM. */
int at_bulge_apply(at_bulge *self, int64_t b, float *z, int64_t ldz, int threads);

#endif
