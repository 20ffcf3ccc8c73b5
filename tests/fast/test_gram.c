/* SPDX-License-Identifier: Apache-2.0 */
/* test_gram.c -- Gram-matrix spectra against dgesdd: the float64 path (exact mode) on every
 * oracle case and on matrices built to hit each of its paths; the float32 path (fast cold) and
 * its top eigenvectors. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cmocka.h>
#include <lapacke.h>

#include "alphatop/fast.h"
#include "alphatop/gram.h"
#include "alphatop/htsr.h"
#include "alphatop/rng.h"
#include "fixture.h"

/* Ascending squared singular values of the m x n column-major a, by dgesdd. */
static double *svd_evals(const double *a, int64_t m, int64_t n)
{
    int64_t p = m < n ? m : n;
    double *c = malloc((size_t)(m * n) * sizeof(double)), *sv = malloc((size_t)p * sizeof(double));
    double *lam = malloc((size_t)p * sizeof(double)), dummy = 0.0;
    assert_true(c && sv && lam);
    memcpy(c, a, (size_t)(m * n) * sizeof(double));
    assert_int_equal(
        LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)m, (int)n, c, (int)m, sv, &dummy, 1, &dummy, 1),
        0);
    for (int64_t i = 0; i < p; i++)
        lam[i] = sv[p - 1 - i] * sv[p - 1 - i];
    free(c);
    free(sv);
    return lam;
}

/* Gram path vs dgesdd: relative 1e-6 on every value whose singular value is above the
 * matrix_rank tolerance (below it both are round-off of an exact zero: compared absolutely),
 * and the same count below the tolerance. Returns the largest relative difference. */
static double compare64(at_gram *g, const double *a, int64_t m, int64_t n, at_gram_path *path)
{
    int64_t p = m < n ? m : n, lg = m < n ? n : m;
    double *ref = svd_evals(a, m, n), *lam = malloc((size_t)p * sizeof(double));
    assert_non_null(lam);
    assert_int_equal(at_gram_evals64(g, a, m, n, lam, path), AT_OK);
    const double tol = sqrt(ref[p - 1]) * (double)lg * DBL_EPSILON;
    double worst = 0.0;
    int64_t below_ref = 0, below = 0;
    for (int64_t i = 0; i < p; i++) {
        below_ref += !(sqrt(ref[i]) > tol);
        below += !(sqrt(fmax(lam[i], 0.0)) > tol);
        if (sqrt(ref[i]) <= tol) {
            assert_true(fabs(lam[i]) <= tol * tol * 1e4);
            continue;
        }
        double rel = fabs(lam[i] - ref[i]) / ref[i];
        worst = fmax(worst, rel);
        if (rel > 1e-6)
            fail_msg("value %lld of %lld: gram %.17g dgesdd %.17g", (long long)i, (long long)p,
                     lam[i], ref[i]);
    }
    assert_int_equal(below, below_ref);
    free(ref);
    free(lam);
    return worst;
}

static double *to_double(const float *w, size_t count)
{
    double *a = malloc(count * sizeof(double));
    assert_non_null(a);
    for (size_t i = 0; i < count; i++)
        a[i] = w[i];
    return a;
}

static void test_gram64_oracle(void **state)
{
    (void)state;
    fx_case *c = NULL;
    int n = fx_oracle_load(&c);
    at_gram *g = at_gram_new();
    assert_non_null(g);
    int paths[3] = {0, 0, 0};
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        if (c[i].t.kind != AT_KIND_LINEAR)
            continue;
        const int64_t rows = c[i].t.shape[0], cols = c[i].t.shape[1];
        double *a = to_double(c[i].w, (size_t)(rows * cols));
        at_gram_path path;
        double w = compare64(g, a, cols, rows, &path);
        printf("  %-24s path %d  largest relative difference %.3g\n", c[i].name, (int)path, w);
        paths[path]++;
        worst = fmax(worst, w);
        free(a);
    }
    printf("gram64 over the oracle: largest relative difference %.3g; paths plain %d, ritz %d, "
           "svd %d\n",
           worst, paths[0], paths[1], paths[2]);
    at_gram_free(g);
    fx_cases_free(c, n);
}

/* Square Gaussians plus one strong spike (smallest values below the trust threshold: Ritz; one
 * of them narrower than the band of the two-stage reduction), wide and tall well-conditioned
 * ones (plain), and rank-30 products (90 exact zeros: dgesdd). */
static void test_gram64_paths(void **state)
{
    (void)state;
    at_gram *g = at_gram_new();
    at_rng r;
    at_rng_seed(&r, 7);
    struct {
        int64_t m, n, rank;
        double spike;
        at_gram_path want;
    } cases[] = {{300, 300, 0, 300.0, AT_GRAM_RITZ}, {20, 20, 0, 1e3, AT_GRAM_RITZ},
                 {250, 400, 0, 0.0, AT_GRAM_PLAIN},  {400, 250, 0, 0.0, AT_GRAM_PLAIN},
                 {200, 120, 30, 0.0, AT_GRAM_SVD},   {120, 200, 30, 0.0, AT_GRAM_SVD}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t m = cases[c].m, n = cases[c].n, k = cases[c].rank;
        double *a = malloc((size_t)(m * n) * sizeof(double));
        assert_non_null(a);
        if (k == 0) {
            for (int64_t i = 0; i < m * n; i++)
                a[i] = at_rng_normal(&r) / sqrt((double)n);
        } else {
            double *x = malloc((size_t)(m * k) * sizeof(double));
            double *y = malloc((size_t)(k * n) * sizeof(double));
            for (int64_t i = 0; i < m * k; i++)
                x[i] = at_rng_normal(&r);
            for (int64_t i = 0; i < k * n; i++)
                y[i] = at_rng_normal(&r);
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0, x,
                        (int)m, y, (int)k, 0.0, a, (int)m);
            free(x);
            free(y);
        }
        if (cases[c].spike > 0.0) {
            double *u = malloc((size_t)m * sizeof(double)), *v = malloc((size_t)n * sizeof(double));
            assert_true(u && v);
            for (int64_t i = 0; i < m; i++)
                u[i] = at_rng_normal(&r) / sqrt((double)m);
            for (int64_t j = 0; j < n; j++)
                v[j] = at_rng_normal(&r) / sqrt((double)n);
            cblas_dger(CblasColMajor, (int)m, (int)n, cases[c].spike, u, 1, v, 1, a, (int)m);
            free(u);
            free(v);
        }
        at_gram_path path;
        double w = compare64(g, a, m, n, &path);
        printf("  %lldx%lld rank %lld spike %g: path %d, largest relative difference %.3g\n",
               (long long)m, (long long)n, (long long)k, cases[c].spike, (int)path, w);
        assert_int_equal(path, cases[c].want);
        free(a);
    }
    at_gram_free(g);
}

/* A rows x cols row-major matrix U diag(s) V^T with seeded orthonormal U, V and singular values
 * in groups of ten within 1e-3 of each other, the groups 1% apart: clusters of close eigenvalues,
 * where eigenvector solvers lose orthogonality first. Caller frees. */
static float *clustered(int64_t rows, int64_t cols, uint64_t seed)
{
    const int64_t p = rows < cols ? rows : cols;
    at_rng r;
    at_rng_seed(&r, seed);
    double *sv = malloc((size_t)p * sizeof(double));
    assert_non_null(sv);
    for (int64_t k = 0; k < p; k++)
        sv[k] = 1.0 + 0.01 * (double)(k / 10) + 1e-3 * at_rng_uniform(&r);
    float *w = fx_with_singular_values(rows, cols, sv, seed);
    free(sv);
    return w;
}

/* Float32 Gram of w (row-major rows x cols, rows <= cols): top values within 1e-4 of dgesdd's,
 * and the b kept vectors are orthonormal eigenvectors of the float64 Gram matrix (residual
 * relative to lambda_max), on one OpenBLAS thread or two. */
static void check_gram32_vectors(const float *w, int64_t rows, int64_t cols, int64_t b, int threads)
{
    /* column-major m = cols, n = rows: the short side is n = rows */
    const int64_t m = cols, n = rows, p = rows;
    double *a = to_double(w, (size_t)(rows * cols)), *ref = svd_evals(a, m, n);
    double *lam = malloc((size_t)p * sizeof(double));
    float *v = malloc((size_t)(p * b) * sizeof(float));
    const int saved = openblas_get_num_threads();
    openblas_set_num_threads(threads);
    at_gram *g = at_gram_new();
    assert_int_equal(at_gram_top_vectors32(g, b, v), AT_ERR_STATE);
    assert_int_equal(at_gram_evals32(g, w, m, n, lam), AT_OK);
    for (int64_t i = p - b; i < p; i++)
        assert_true(fabs(lam[i] - ref[i]) <= 1e-4 * ref[i]);
    assert_int_equal(at_gram_top_vectors32(g, b, v), AT_OK);
    assert_int_equal(openblas_get_num_threads(), threads);
    /* G = A^T A in float64; check G v_j = lambda_j v_j and V^T V = I. */
    double *gm = malloc((size_t)(p * p) * sizeof(double));
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)p, (int)p, (int)m, 1.0, a, (int)m, a,
                (int)m, 0.0, gm, (int)p);
    double worst_res = 0.0, worst_orth = 0.0;
    for (int64_t j = 0; j < b; j++) {
        const float *vj = v + j * p;
        for (int64_t i = 0; i < p; i++) {
            double s = 0.0;
            for (int64_t l = 0; l < p; l++)
                s += gm[i + l * p] * vj[l];
            worst_res = fmax(worst_res, fabs(s - lam[p - b + j] * vj[i]) / ref[p - 1]);
        }
        for (int64_t l = 0; l < b; l++) {
            double d = 0.0;
            for (int64_t i = 0; i < p; i++)
                d += (double)vj[i] * v[l * p + i];
            worst_orth = fmax(worst_orth, fabs(d - (j == l)));
        }
    }
    printf(
        "gram32 top-%lld of %lld, %d thread(s): residual %.3g x lambda_max, orthogonality %.3g\n",
        (long long)b, (long long)p, threads, worst_res, worst_orth);
    assert_true(worst_res < 1e-5);
    /* MRRR's orthogonality is O(p eps): 6e-6 for 40 vectors, 4e-5 for 120 (which reach into
     * the bulk) on one thread; below p = 100 its constant dominates (up to 3e-5 for all 34 of
     * 34, typically 1e-6 to 7e-6). */
    assert_true(worst_orth < 10.0 * fmax((double)p, 100.0) * FLT_EPSILON);
    assert_int_equal(at_gram_top_vectors32(g, p + 1, v), AT_ERR_ARG);
    assert_int_equal(at_gram_evals32(g, NULL, m, n, lam), AT_ERR_ARG);
    openblas_set_num_threads(saved);
    at_gram_free(g);
    free(gm);
    free(v);
    free(lam);
    free(ref);
    free(a);
}

static void test_gram32_vectors(void **state)
{
    (void)state;
    float *w = fx_spiked(200, 500, 30, 8.0, 0.6, 11);
    check_gram32_vectors(w, 200, 500, 40, 1);
    check_gram32_vectors(w, 200, 500, 40, 2);
    check_gram32_vectors(w, 200, 500, 120, 1);
    check_gram32_vectors(w, 200, 500, 120, 2);
    free(w);
    w = clustered(200, 300, 12);
    check_gram32_vectors(w, 200, 300, 120, 1);
    check_gram32_vectors(w, 200, 300, 120, 2);
    free(w);
    /* Short sides around the band's half-width (32): one column, a band that is the whole
     * matrix (no reflectors), one first-stage reflector, and every vector. */
    const int64_t shorts[][2] = {{1, 1}, {2, 2}, {33, 10}, {34, 34}, {35, 20}};
    for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++) {
        w = fx_spiked(shorts[i][0], 60, 3, 4.0, 0.6, 13 + i);
        check_gram32_vectors(w, shorts[i][0], 60, shorts[i][1], 1);
        free(w);
    }
}

/* An all-zero layer: the spectrum is p exact zeros from both paths, found before any
 * reduction (it took 8 s at 4096 x 4096); exact mode reports lambda_max 0 (what scan turns into
 * "all weights are zero"), fast mode refuses it with AT_ERR_EMPTY. */
static void test_all_zero(void **state)
{
    (void)state;
    const int64_t shapes[][2] = {{300, 200}, {200, 300}, {1, 1}, {2048, 2048}};
    at_gram *g = at_gram_new();
    at_htsr *h = at_htsr_new();
    at_fast *f = at_fast_new();
    assert_true(g && h && f);
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        const int64_t rows = shapes[c][0], cols = shapes[c][1], p = rows < cols ? rows : cols;
        float *w = calloc((size_t)(rows * cols), sizeof(float));
        double *a = calloc((size_t)(rows * cols), sizeof(double));
        double *lam = malloc((size_t)p * sizeof(double));
        float v[1];
        assert_true(w && a && lam);
        at_gram_path path = AT_GRAM_SVD;
        for (int64_t i = 0; i < p; i++)
            lam[i] = 1.0;
        assert_int_equal(at_gram_evals64(g, a, cols, rows, lam, &path), AT_OK);
        assert_int_equal(path, AT_GRAM_PLAIN);
        for (int64_t i = 0; i < p; i++)
            assert_true(lam[i] == 0.0);
        for (int64_t i = 0; i < p; i++)
            lam[i] = 1.0;
        assert_int_equal(at_gram_evals32(g, w, cols, rows, lam), AT_OK);
        for (int64_t i = 0; i < p; i++)
            assert_true(lam[i] == 0.0);
        assert_int_equal(at_gram_top_vectors32(g, 1, v), AT_ERR_STATE);

        at_tensor t = fx_tensor(w, rows, cols);
        at_htsr_opts o;
        at_htsr_opts_default(&o);
        o.min_evals = 1;
        at_metrics m;
        assert_int_equal(at_htsr_analyze(h, &t, &o, &m), AT_OK);
        assert_true(m.lambda_max == 0.0);
        at_fast_opts fo;
        at_fast_opts_default(&fo);
        fo.min_evals = 1;
        assert_int_equal(at_fast_analyze(f, NULL, &t, &fo, NULL, &m, NULL), AT_ERR_EMPTY);
        free(lam);
        free(a);
        free(w);
    }
    at_fast_free(f);
    at_htsr_free(h);
    at_gram_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_zero),
        cmocka_unit_test(test_gram64_oracle),
        cmocka_unit_test(test_gram64_paths),
        cmocka_unit_test(test_gram32_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
