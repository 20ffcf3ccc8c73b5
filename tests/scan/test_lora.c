/* SPDX-License-Identifier: Apache-2.0 */
/* test_lora.c -- the factored LoRA spectrum against a dense SVD of the product (LAPACK), its
 * metrics against at_htsr_analyze of the dense product, the rank < 10 status, and merging. */
#include <lapacke.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alphatop/lora.h"
#include "testfiles.h"

static at_tensor mat(const void *data, at_dtype dtype, int64_t rows, int64_t cols)
{
    at_tensor t = {data, dtype, AT_KIND_LINEAR, 2, {rows, cols}};
    return t;
}

/* scale * B A in float64 from float32 factors, row-major out x in. */
static double *dense_product(const float *b, const float *a, int64_t out, int64_t r, int64_t in,
                             double scale)
{
    double *p = calloc((size_t)(out * in), sizeof *p);
    for (int64_t i = 0; i < out; i++)
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < in; j++)
                p[i * in + j] += scale * (double)b[i * r + k] * (double)a[k * in + j];
    return p;
}

/* Descending singular values of a row-major rows x cols float64 matrix (LAPACK dgesdd). */
static double *dense_svals(double *p, int64_t rows, int64_t cols)
{
    int64_t k = rows < cols ? rows : cols;
    double *sv = malloc((size_t)k * sizeof *sv);
    /* Row-major rows x cols is column-major cols x rows: the same singular values. */
    assert_int_equal(LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)cols, (lapack_int)rows, p,
                                    (lapack_int)cols, sv, NULL, 1, NULL, 1),
                     0);
    return sv;
}

static void check_spectrum(int64_t out, int64_t r, int64_t in, double scale, uint64_t seed)
{
    float *b = tf_gauss((size_t)(out * r), seed, 0.3),
          *a = tf_gauss((size_t)(r * in), seed + 1, 0.3);
    at_tensor B = mat(b, AT_DTYPE_F32, out, r), A = mat(a, AT_DTYPE_F32, r, in);
    at_lora *l = at_lora_new();
    const double *sv;
    size_t n;
    assert_int_equal(at_lora_svals(l, &B, &A, scale, &sv, &n), AT_OK);
    int64_t p = r;
    if (out < p)
        p = out;
    if (in < p)
        p = in;
    assert_int_equal(n, (size_t)p);
    double *prod = dense_product(b, a, out, r, in, scale);
    double *ref = dense_svals(prod, out, in);
    for (size_t i = 0; i < n; i++)
        if (!(fabs(sv[i] - ref[i]) <= 1e-9 * ref[i]))
            fail_msg("%lldx%lld r%lld: sv[%zu] = %.17g, dense %.17g", (long long)out, (long long)in,
                     (long long)r, i, sv[i], ref[i]);
    at_lora_free(l);
    free(prod);
    free(ref);
    free(a);
    free(b);
}

static void test_spectrum_matches_dense_svd(void **state)
{
    (void)state;
    check_spectrum(300, 16, 200, 1.0, 1);
    check_spectrum(50, 32, 400, 0.5, 3); /* in > out */
    check_spectrum(8, 12, 100, 2.0, 5);  /* out < r: only 8 nonzero values */
    check_spectrum(120, 64, 90, 1.0, 7);
}

/* With integer factors the float32 product is exact, so the dense exact-mode analysis sees the
 * same matrix; the factored metrics must agree with it. */
static void test_metrics_match_dense_analysis(void **state)
{
    (void)state;
    const int64_t out = 200, r = 24, in = 150;
    float *b = malloc(sizeof(float) * out * r), *a = malloc(sizeof(float) * r * in);
    uint16_t *bh = malloc(2 * out * r), *ab = malloc(2 * r * in);
    float *g = tf_gauss((size_t)(out * r + r * in), 9, 2.0);
    for (int64_t i = 0; i < out * r; i++) {
        b[i] = roundf(g[i]);
        bh[i] = tf_f32_to_f16_exact(b[i]);
    }
    for (int64_t i = 0; i < r * in; i++) {
        a[i] = roundf(g[out * r + i]);
        ab[i] = tf_f32_to_bf16_exact(a[i]);
    }
    double *p = dense_product(b, a, out, r, in, 1.0);
    float *pf = malloc(sizeof(float) * out * in);
    for (int64_t i = 0; i < out * in; i++)
        pf[i] = (float)p[i];
    at_tensor dense = mat(pf, AT_DTYPE_F32, out, in);
    at_metrics d, f, h;
    at_htsr *ht = at_htsr_new();
    assert_int_equal(at_htsr_analyze(ht, &dense, NULL, &d), AT_OK);
    at_htsr_free(ht);
    at_lora *l = at_lora_new();
    at_tensor B = mat(b, AT_DTYPE_F32, out, r), A = mat(a, AT_DTYPE_F32, r, in);
    assert_int_equal(at_lora_analyze(l, &B, &A, 1.0, NULL, &f), AT_OK);
    /* The same factors as f16 and bf16 (exact for small integers) give the same result. */
    at_tensor Bh = mat(bh, AT_DTYPE_F16, out, r), Ab = mat(ab, AT_DTYPE_BF16, r, in);
    assert_int_equal(at_lora_analyze(l, &Bh, &Ab, 1.0, NULL, &h), AT_OK);
    at_lora_free(l);
    assert_int_equal(f.status, AT_FIT_SUCCESS);
    assert_int_equal(f.num_evals, r);
    assert_int_equal(f.N, out);
    assert_int_equal(f.M, in);
    const double pairs[][2] = {{f.alpha, d.alpha},
                               {f.xmin, d.xmin},
                               {f.D, d.D},
                               {f.sigma, d.sigma},
                               {f.xmax, d.xmax},
                               {f.lambda_max, d.lambda_max},
                               {f.log_norm, d.log_norm},
                               {f.stable_rank, d.stable_rank},
                               {f.alpha_weighted, d.alpha_weighted},
                               {f.log_alpha_norm, d.log_alpha_norm}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (!(fabs(pairs[i][0] - pairs[i][1]) <= 1e-9 * fabs(pairs[i][1])))
            fail_msg("metric %zu: factored %.17g, dense %.17g", i, pairs[i][0], pairs[i][1]);
    assert_int_equal(f.num_pl_spikes, d.num_pl_spikes);
    assert_int_equal(f.matrix_rank, d.matrix_rank);
    assert_true(h.alpha == f.alpha && h.xmin == f.xmin);
    free(p);
    free(pf);
    free(g);
    free(a);
    free(b);
    free(bh);
    free(ab);
}

static void test_low_rank_and_errors(void **state)
{
    (void)state;
    float *b = tf_gauss(64 * 8, 11, 1.0), *a = tf_gauss(8 * 32, 12, 1.0);
    at_tensor B = mat(b, AT_DTYPE_F32, 64, 8), A = mat(a, AT_DTYPE_F32, 8, 32);
    at_lora *l = at_lora_new();
    at_metrics m;
    /* r = 8 < min_evals: no fit, and said so through the status, not a number. */
    assert_int_equal(at_lora_analyze(l, &B, &A, 1.0, NULL, &m), AT_OK);
    assert_int_equal(m.status, AT_FIT_SKIPPED);
    assert_int_equal(m.num_evals, 8);
    assert_true(isnan(m.alpha));
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    o.min_evals = 8;
    assert_int_equal(at_lora_analyze(l, &B, &A, 1.0, &o, &m), AT_OK);
    assert_int_not_equal(m.status, AT_FIT_SKIPPED);

    at_tensor A2 = mat(a, AT_DTYPE_F32, 7, 32);
    assert_int_equal(at_lora_analyze(l, &B, &A2, 1.0, NULL, &m), AT_ERR_ARG);
    assert_non_null(strstr(at_lora_last_error(l), "do not chain"));
    a[5] = NAN;
    assert_int_equal(at_lora_analyze(l, &B, &A, 1.0, NULL, &m), AT_ERR_NONFINITE);
    assert_non_null(strstr(at_lora_last_error(l), "LoRA A has a non-finite value"));
    at_lora_free(l);
    at_lora_free(NULL);
    free(a);
    free(b);
}

static void test_merge(void **state)
{
    (void)state;
    const int64_t out = 40, r = 6, in = 30;
    float *w = tf_gauss(out * in, 21, 1.0), *b = tf_gauss(out * r, 22, 1.0);
    float *a = tf_gauss(r * in, 23, 1.0), *dst = malloc(sizeof(float) * out * in);
    at_tensor W = mat(w, AT_DTYPE_F32, out, in), B = mat(b, AT_DTYPE_F32, out, r),
              A = mat(a, AT_DTYPE_F32, r, in);
    at_lora *l = at_lora_new();
    assert_int_equal(at_lora_merge(l, &W, &B, &A, 0.25, dst), AT_OK);
    double *p = dense_product(b, a, out, r, in, 0.25);
    for (int64_t i = 0; i < out * in; i++) {
        double want = (double)w[i] + p[i];
        assert_true(fabs((double)dst[i] - want) <= 1e-6 * fabs(want) + 1e-7);
    }
    at_tensor W2 = mat(w, AT_DTYPE_F32, in, out);
    assert_int_equal(at_lora_merge(l, &W2, &B, &A, 1.0, dst), AT_ERR_ARG);
    at_lora_free(l);
    free(p);
    free(w);
    free(b);
    free(a);
    free(dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spectrum_matches_dense_svd),
        cmocka_unit_test(test_metrics_match_dense_analysis),
        cmocka_unit_test(test_low_rank_and_errors),
        cmocka_unit_test(test_merge),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return failed;
}
