/* SPDX-License-Identifier: Apache-2.0 */
/* traps.c -- correlation traps (docs/metrics.md section 5): eigenvalues of the centred, shuffled
 * weight matrix beyond the random bulk edge. Only the eigenvalues above the threshold are computed
 * (Gram matrix + ssyevr by value range), so a snapshot costs one syrk and one reduction. */
#include <math.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "alphatop/rng.h"
#include "htsr_internal.h"

int at_htsr_traps(at_htsr *self, const at_tensor *t, uint64_t seed, int64_t *num_traps,
                  double *max_ratio)
{
    if (!self || !num_traps)
        return AT_ERR_ARG;
    *num_traps = -1;
    if (max_ratio)
        *max_ratio = NAN;
    at_shape sh;
    const float *w = NULL;
    int rc = at_htsr_load(self, t, &sh, &w);
    if (rc)
        return rc;
    /* A conv2d tensor (out, in, kh, kw) in row-major order is the (out, in*kh*kw) matrix. */
    const int64_t rows = sh.rows, cols = (int64_t)sh.count / rows;
    const int64_t N = rows > cols ? rows : cols, M = rows > cols ? cols : rows;
    const size_t count = sh.count;
    if (at_grow((void **)&self->shuf, &self->shuf_cap, count, sizeof(float)) ||
        at_grow((void **)&self->gram, &self->gram_cap, (size_t)(M * M), sizeof(float)))
        return at_htsr_fail(self, AT_ERR_NOMEM, "out of memory");

    /* Centring first: a non-zero mean is a rank-one spike that survives any shuffle. */
    double mean = 0.0;
    for (size_t i = 0; i < count; i++)
        mean += w[i];
    mean /= (double)count;
    double s2 = 0.0, big = 0.0;
    for (size_t i = 0; i < count; i++) {
        const double c = w[i] - mean;
        self->shuf[i] = (float)c;
        s2 += c * c;
        if (c * c > big)
            big = c * c;
    }
    s2 /= (double)count;
    *num_traps = 0;
    if (max_ratio)
        *max_ratio = 0.0;
    if (!(s2 > 0.0))
        return AT_OK;

    at_rng r;
    at_rng_seed(&r, seed);
    for (size_t i = count - 1; i > 0; i--) {
        const size_t j = (size_t)at_rng_below(&r, i + 1);
        const float tmp = self->shuf[i];
        self->shuf[i] = self->shuf[j];
        self->shuf[j] = tmp;
    }

    /* Random bulk edge for entry variance s2, and the Tracy-Widom margin in the MP fit's
     * units (eigenvalues over N*s2, the bulk's mean): edge + sqrt(TW). */
    const double sn = sqrt((double)N), sm = sqrt((double)M);
    const double edge = s2 * (sn + sm) * (sn + sm);
    const double unit = (double)N * s2, bulk = edge / unit;
    const double tw =
        pow(bulk, 2.0 / 3.0) / (sqrt((double)N / (double)M) * pow((double)M, 2.0 / 3.0));
    const double threshold = edge + unit * sqrt(tw);

    /* Gram matrix of the short side, G = X X^T or X^T X (column-major view of the row-major
     * matrix: X is cols x rows). */
    const float *X = self->shuf;
    if (M == cols)
        cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, (int)M, (int)N, 1.0f, X, (int)M, 0.0f,
                    self->gram, (int)M);
    else
        cblas_ssyrk(CblasColMajor, CblasLower, CblasTrans, (int)M, (int)N, 1.0f, X, (int)N, 0.0f,
                    self->gram, (int)M);

    if (at_grow((void **)&self->twork, &self->twork_cap, (size_t)(M + 1), sizeof(float)) ||
        at_grow((void **)&self->tiwork, &self->tiwork_cap, (size_t)(2 * M + 2), sizeof(lapack_int)))
        return at_htsr_fail(self, AT_ERR_NOMEM, "out of memory");
    /* The trace (sum of squares) bounds every eigenvalue: a finite upper end for the range. */
    const float top_bound = (float)(1.01 * s2 * (double)count) + 1.0f;
    float wq = 0.0f, dummy = 0.0f;
    lapack_int found = 0, iq = 0;
    lapack_int info = LAPACKE_ssyevr_work(
        LAPACK_COL_MAJOR, 'N', 'V', 'L', (lapack_int)M, self->gram, (lapack_int)M, (float)threshold,
        top_bound, 0, 0, 0.0f, &found, self->twork, &dummy, 1, self->tiwork, &wq, -1, &iq, -1);
    if (info != 0)
        return at_htsr_fail(self, AT_ERR_LAPACK, "ssyevr workspace query failed (info %d)",
                            (int)info);
    /* Layout: twork = eigenvalues (M) then work; tiwork = isuppz (2M) then iwork. */
    const size_t lwork = (size_t)wq + 1, liwork = (size_t)iq + 1;
    if (at_grow((void **)&self->twork, &self->twork_cap, (size_t)M + lwork, sizeof(float)) ||
        at_grow((void **)&self->tiwork, &self->tiwork_cap, 2 * (size_t)M + liwork,
                sizeof(lapack_int)))
        return at_htsr_fail(self, AT_ERR_NOMEM, "out of memory");
    info = LAPACKE_ssyevr_work(LAPACK_COL_MAJOR, 'N', 'V', 'L', (lapack_int)M, self->gram,
                               (lapack_int)M, (float)threshold, top_bound, 0, 0, 0.0f, &found,
                               self->twork, &dummy, 1, self->tiwork, self->twork + M,
                               (lapack_int)lwork, self->tiwork + 2 * M, (lapack_int)liwork);
    if (info != 0)
        return at_htsr_fail(self, AT_ERR_LAPACK, "ssyevr did not converge (info %d)", (int)info);
    double top = 0.0;
    for (lapack_int i = 0; i < found; i++)
        if (self->twork[i] > top)
            top = self->twork[i];
    /* An entry's square bounds the top eigenvalue from below: a trap for certain when it
     * clears the threshold, even where float32 round-off left the eigenvalue just under it. */
    if (found == 0 && big > threshold) {
        found = 1;
        top = big;
    }
    *num_traps = found;
    if (max_ratio)
        *max_ratio = found ? top / edge : 0.0;
    return AT_OK;
}
