/* SPDX-License-Identifier: Apache-2.0 */
/* fixture.h -- inputs of the fast-mode tests: the oracle's matrices, seeded synthetic layers
 * with a heavy-tailed spectrum, and realistic perturbations between snapshots. */
#ifndef AT_TESTS_FAST_FIXTURE_H
#define AT_TESTS_FAST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/htsr.h"

/* One oracle case: t borrows w (row-major float32, caller frees with fx_cases_free). */
typedef struct fx_case {
    char name[64];
    at_tensor t;
    float *w;
} fx_case;

/* Loads every case of tests/data/oracle into *out; returns how many (fails the test on error). */
int fx_oracle_load(fx_case **out);

/* Frees what fx_oracle_load returned. NULL-safe. */
void fx_cases_free(fx_case *c, int n);

/* A rows x cols row-major layer: Gaussian bulk (entries N(0, 1/cols)) plus r spikes
 * u_i v_i^T with strength s_i = top * i^-gamma (u, v Gaussian unit-norm): a trained-looking
 * spectrum with a heavy tail of about r values. Caller frees. */
float *fx_spiked(int64_t rows, int64_t cols, int r, double top, double gamma, uint64_t seed);

/* A rows x cols row-major layer U diag(sv) V^T with seeded orthonormal U and V (QR of Gaussian
 * matrices) and the min(rows, cols) singular values sv (borrowed). Caller frees. */
float *fx_with_singular_values(int64_t rows, int64_t cols, const double *sv, uint64_t seed);

/* One training-like step: adds to w (count = rows * cols) a change of Frobenius norm
 * rel * ||w||: half a rank-2 update, half dense noise. */
void fx_perturb(float *w, int64_t rows, int64_t cols, double rel, uint64_t seed);

/* A tensor view of a row-major rows x cols float32 matrix. */
at_tensor fx_tensor(const float *w, int64_t rows, int64_t cols);

#endif
