/* SPDX-License-Identifier: Apache-2.0 */
/* test_bulge.c -- the float32 band -> tridiagonal reduction that keeps its reflectors: its d and e
 * against LAPACK's ssytrd_sb2st bit for bit, and its Q against the band matrix itself (the
 * tridiagonal form's eigenvectors, carried back, are orthonormal eigenvectors of B), over band
 * widths and orders that hit every edge: no reflectors, one sweep, partial groups and chunks. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lapacke.h>

#include "alphatop/rng.h"
#include "alphatop/status.h"
#include "bulge.h"

void ssytrd_sb2st_(const char *stage1, const char *vect, const char *uplo, const int *n,
                   const int *kd, float *ab, const int *ldab, float *d, float *e, float *hous,
                   const int *lhous, float *work, const int *lwork, int *info, size_t stage1_len,
                   size_t vect_len, size_t uplo_len);

/* LAPACK's reduction of the band ab (lower storage, ldab = kd + 1) into d, e. */
static void lapack_reduce(int n, int kd, const float *ab, float *d, float *e)
{
    int ldab = kd + 1, info = 0, lhous = -1, lwork = -1;
    float qh = 0.0f, qw = 0.0f, *copy = malloc((size_t)ldab * (size_t)n * sizeof(float));
    assert_non_null(copy);
    memcpy(copy, ab, (size_t)ldab * (size_t)n * sizeof(float));
    ssytrd_sb2st_("N", "N", "L", &n, &kd, copy, &ldab, d, e, &qh, &lhous, &qw, &lwork, &info, 1, 1,
                  1);
    lhous = (int)qh > 1 ? (int)qh : 1;
    lwork = (int)qw > 1 ? (int)qw : 1;
    float *hous = malloc((size_t)lhous * sizeof(float)),
          *work = malloc((size_t)lwork * sizeof(float));
    assert_true(hous && work);
    ssytrd_sb2st_("N", "N", "L", &n, &kd, copy, &ldab, d, e, hous, &lhous, work, &lwork, &info, 1,
                  1, 1);
    assert_int_equal(info, 0);
    free(hous);
    free(work);
    free(copy);
}

/* Entry (i, j), i >= j, of the band ab. */
static double band_at(const float *ab, int kd, int i, int j)
{
    if (i < j) {
        int t = i;
        i = j;
        j = t;
    }
    return i - j > kd ? 0.0 : (double)ab[(size_t)(i - j) + (size_t)j * (size_t)(kd + 1)];
}

/* A seeded n x n band of half-width kd: reduce it, compare d and e with LAPACK's, then carry the
 * tridiagonal form's top b eigenvectors back with `threads` threads and check that they are
 * orthonormal eigenvectors of the band (residual relative to the largest |eigenvalue|). */
static void check_band(int n, int kd, int b, int threads, uint64_t seed, int isa)
{
    int ldab = kd + 1;
    float *ab = malloc((size_t)ldab * (size_t)n * sizeof(float));
    float *d = malloc((size_t)n * sizeof(float)), *e = malloc((size_t)n * sizeof(float));
    float *dl = malloc((size_t)n * sizeof(float)), *el = malloc((size_t)n * sizeof(float));
    float *lam = malloc((size_t)n * sizeof(float)),
          *z = malloc((size_t)n * (size_t)b * sizeof(float));
    int *isuppz = malloc(2 * (size_t)n * sizeof(int));
    assert_true(ab && d && e && dl && el && lam && z && isuppz);
    at_rng r;
    at_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)ldab * (size_t)n; i++)
        ab[i] = (float)at_rng_normal(&r);
    at_bulge *bg = at_bulge_new();
    assert_non_null(bg);
    at_bulge_limit_isa(bg, isa);
    assert_int_equal(at_bulge_apply(bg, b, z, n, 1), AT_ERR_STATE);
    assert_int_equal(at_bulge_reduce(bg, n, kd, ab, ldab, d, e), AT_OK);
    lapack_reduce(n, kd, ab, dl, el);
    assert_memory_equal(d, dl, (size_t)n * sizeof(float));
    if (n > 1)
        assert_memory_equal(e, el, (size_t)(n - 1) * sizeof(float));

    int found = 0, tryrac = 0;
    assert_int_equal(LAPACKE_sstemr(LAPACK_COL_MAJOR, 'V', 'I', n, dl, el, 0.0f, 0.0f, n - b + 1, n,
                                    &found, lam, z, n, b, isuppz, &tryrac),
                     0);
    assert_int_equal(found, b);
    assert_int_equal(at_bulge_apply(bg, b, z, n, threads), AT_OK);
    double scale = fmax(fabs((double)lam[0]), fabs((double)lam[b - 1])), res = 0.0, orth = 0.0;
    for (int j = 0; j < b; j++) {
        const float *zj = z + (size_t)j * (size_t)n;
        for (int i = 0; i < n; i++) {
            double s = 0.0;
            for (int l = i - kd < 0 ? 0 : i - kd; l <= i + kd && l < n; l++)
                s += band_at(ab, kd, i, l) * zj[l];
            res = fmax(res, fabs(s - lam[j] * zj[i]) / scale);
        }
        for (int l = 0; l <= j; l++) {
            double dot = 0.0;
            for (int i = 0; i < n; i++)
                dot += (double)zj[i] * z[(size_t)l * (size_t)n + i];
            orth = fmax(orth, fabs(dot - (l == j)));
        }
    }
    printf("  n %d kd %d top %d, %d thread(s), kernel %d: residual %.3g, orthogonality %.3g\n", n,
           kd, b, threads, isa, res, orth);
    assert_true(res < 10.0 * (double)n * FLT_EPSILON);
    assert_true(orth < 10.0 * (double)n * FLT_EPSILON);
    at_bulge_free(bg);
    free(isuppz);
    free(z);
    free(lam);
    free(el);
    free(dl);
    free(e);
    free(d);
    free(ab);
}

/* Every shape with every kernel (those the CPU lacks fall back to the next narrower one): no
 * reflectors (kd <= 1), the smallest chases, a band as wide as the matrix allows, then partial
 * groups of sweeps and partial panels of columns on one thread and two. */
static void test_bulge_shapes(void **state)
{
    (void)state;
    const int shapes[][5] = {/* n, kd, b, threads, seed */
                             {1, 0, 1, 1, 1},      {2, 1, 2, 1, 2},      {5, 1, 3, 1, 3},
                             {3, 2, 3, 1, 4},      {33, 32, 10, 1, 5},   {34, 32, 34, 2, 6},
                             {70, 8, 65, 1, 7},    {70, 8, 65, 2, 7},    {257, 32, 200, 1, 8},
                             {257, 32, 200, 2, 8}, {300, 64, 129, 2, 9}, {500, 3, 64, 2, 10}};
    for (int isa = AT_BULGE_SSE2; isa <= AT_BULGE_AVX512; isa++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            check_band(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3],
                       (uint64_t)shapes[i][4], isa);
}

static void test_bulge_args(void **state)
{
    (void)state;
    float ab[66 * 70] = {0}, d[70], e[70];
    at_bulge *bg = at_bulge_new();
    assert_non_null(bg);
    assert_int_equal(at_bulge_reduce(bg, 70, 70, ab, 71, d, e), AT_ERR_ARG); /* kd >= n */
    assert_int_equal(at_bulge_reduce(bg, 70, 65, ab, 66, d, e), AT_ERR_ARG); /* kd > 64 */
    assert_int_equal(at_bulge_reduce(bg, 70, 8, ab, 8, d, e), AT_ERR_ARG);   /* ldab < kd + 1 */
    assert_int_equal(at_bulge_reduce(bg, 0, 0, ab, 1, d, e), AT_ERR_ARG);    /* empty */
    assert_int_equal(at_bulge_reduce(NULL, 70, 8, ab, 9, d, e), AT_ERR_ARG);
    assert_int_equal(at_bulge_reduce(bg, 70, 8, ab, 9, d, e), AT_OK);
    assert_int_equal(at_bulge_apply(bg, 0, d, 70, 1), AT_ERR_ARG);
    assert_int_equal(at_bulge_apply(bg, 1, d, 69, 1), AT_ERR_ARG);
    assert_int_equal(at_bulge_apply(NULL, 1, d, 70, 1), AT_ERR_ARG);
    at_bulge_free(bg);
    at_bulge_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulge_shapes),
        cmocka_unit_test(test_bulge_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
