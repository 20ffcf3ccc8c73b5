/* SPDX-License-Identifier: Apache-2.0 */
/* test_htsr.c -- exact mode on matrices whose answers are known analytically: a planted
 * power-law spectrum, exact low rank, failures and skips, bad weights, f16/bf16 input, the
 * conv2d N/M quirk, detX, the MP fit and correlation traps. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lapacke.h>

#include "../../bench/naive_fit.h"
#include "alphatop/htsr.h"
#include "alphatop/rng.h"

static at_metrics analyze(const float *w, at_layer_kind kind, int ndim, const int64_t *shape,
                          const at_htsr_opts *o)
{
    at_htsr *h = at_htsr_new();
    assert_non_null(h);
    at_tensor t = {.data = w, .dtype = AT_DTYPE_F32, .kind = kind, .ndim = ndim};
    memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
    at_metrics m;
    assert_int_equal(at_htsr_analyze(h, &t, o, &m), AT_OK);
    at_htsr_free(h);
    return m;
}

static float *gaussian(size_t n, double scale, uint64_t seed)
{
    at_rng r;
    at_rng_seed(&r, seed);
    float *w = malloc(n * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++)
        w[i] = (float)(scale * at_rng_normal(&r));
    return w;
}

/* A random n x n orthogonal matrix (column-major): Q of the QR of a Gaussian matrix. */
static double *orthogonal(int n, uint64_t seed)
{
    at_rng r;
    at_rng_seed(&r, seed);
    double *q = malloc((size_t)n * (size_t)n * sizeof *q);
    double *tau = malloc((size_t)n * sizeof *tau);
    assert_non_null(q);
    assert_non_null(tau);
    for (int i = 0; i < n * n; i++)
        q[i] = at_rng_normal(&r);
    assert_int_equal(LAPACKE_dgeqrf(LAPACK_COL_MAJOR, n, n, q, n, tau), 0);
    assert_int_equal(LAPACKE_dorgqr(LAPACK_COL_MAJOR, n, n, n, q, n, tau), 0);
    free(tau);
    return q;
}

/* Ascending eigenvalues at the quantiles of a Pareto law with density ~ lambda^-alpha, lambda >= 1.
 */
static void pareto_quantiles(double *x, size_t n, double alpha)
{
    for (size_t i = 0; i < n; i++)
        x[i] = pow(1.0 - ((double)i + 0.5) / (double)n, -1.0 / (alpha - 1.0));
}

static void test_fit_recovers_planted_exponent(void **state)
{
    (void)state;
    const double alphas[] = {1.8, 2.5, 3.5, 5.0};
    enum { n = 2000 };
    static double x[n];
    for (size_t a = 0; a < sizeof alphas / sizeof *alphas; a++) {
        pareto_quantiles(x, n, alphas[a]);
        at_fit f;
        assert_int_equal(at_powerlaw_fit(x, n, &f), AT_OK);
        assert_int_equal(f.status, AT_FIT_SUCCESS);
        assert_true(fabs(f.alpha - alphas[a]) < 0.05 * alphas[a]);
        assert_true(f.D < 0.05);
    }
}

/* W = U diag(s) V^T with random orthogonal U, V and s^2 on a power law: the whole pipeline
 * (float32 weights, dgesdd, fit) recovers the exponent and the spectrum itself. */
static void test_planted_spectrum_matrix(void **state)
{
    (void)state;
    enum { N = 300, M = 200 };
    const double alpha = 3.0;
    double lam[M];
    pareto_quantiles(lam, M, alpha);
    double *U = orthogonal(N, 11), *V = orthogonal(M, 12);
    float *w = malloc((size_t)N * M * sizeof *w);
    assert_non_null(w);
    /* Row-major (N x M): W[r][c] = sum_k U[r][k] s_k V[c][k]. */
    for (int r = 0; r < N; r++)
        for (int c = 0; c < M; c++) {
            double s = 0.0;
            for (int k = 0; k < M; k++)
                s += U[r + k * N] * sqrt(lam[k]) * V[c + k * M];
            w[r * M + c] = (float)s;
        }
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    at_htsr *h = at_htsr_new();
    at_tensor t = {.data = w, .kind = AT_KIND_LINEAR, .ndim = 2, .shape = {N, M}};
    at_metrics m;
    assert_int_equal(at_htsr_analyze(h, &t, &o, &m), AT_OK);
    size_t n = 0;
    const double *ev = at_htsr_evals(h, &n);
    assert_int_equal(n, M);
    /* Float32 weights bound the agreement to ~1e-6 of the largest eigenvalue. */
    for (size_t i = 0; i < n; i++)
        assert_true(fabs(ev[i] - lam[i]) < 1e-5 * lam[M - 1]);
    assert_int_equal(m.status, AT_FIT_SUCCESS);
    assert_true(fabs(m.alpha - alpha) < 0.15);
    assert_int_equal(m.N, N);
    assert_int_equal(m.M, M);
    assert_int_equal(m.matrix_rank, M);
    at_htsr_free(h);
    free(w);
    free(U);
    free(V);
}

/* The fast fit returns exactly what the naive O(n^2) scan returns. */
static void test_fit_identical_to_naive(void **state)
{
    (void)state;
    enum { cap = 400 };
    static double x[cap];
    const size_t sizes[] = {2, 3, 5, 8, 13, 64, cap};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (uint64_t seed = 1; seed <= 6; seed++) {
            const size_t n = sizes[s];
            at_rng r;
            at_rng_seed(&r, seed * 100 + s);
            for (size_t i = 0; i < n; i++) {
                const double g = at_rng_normal(&r);
                /* A mix of bulk, heavy tail, duplicates and values below the 1e-5 floor. */
                x[i] = seed % 3 == 0 ? floor(4.0 * fabs(g)) / 4.0 + 1e-6
                                     : pow(at_rng_uniform(&r) + 1e-9, -1.0 / (0.5 + 0.4 * seed));
            }
            for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && x[j - 1] > x[j]; j--) {
                    const double tmp = x[j];
                    x[j] = x[j - 1];
                    x[j - 1] = tmp;
                }
            double alpha, xmin, D;
            const int rc = naive_powerlaw_fit(x, n, &alpha, &xmin, &D);
            at_fit f;
            assert_int_equal(at_powerlaw_fit(x, n, &f), AT_OK);
            assert_int_equal(f.status, rc == 0 ? AT_FIT_SUCCESS : AT_FIT_FAILED);
            if (rc == 0) {
                assert_memory_equal(&f.alpha, &alpha, sizeof alpha);
                assert_memory_equal(&f.xmin, &xmin, sizeof xmin);
                assert_memory_equal(&f.D, &D, sizeof D);
            }
        }
}

static void test_fit_rejects_unsorted(void **state)
{
    (void)state;
    const double x[] = {1.0, 3.0, 2.0};
    at_fit f;
    assert_int_equal(at_powerlaw_fit(x, 3, &f), AT_ERR_ARG);
    assert_int_equal(at_powerlaw_fit(NULL, 3, &f), AT_ERR_ARG);
}

/* Integer factors make the float32 product exact, so the rank is exactly r. */
static void test_rank_deficient(void **state)
{
    (void)state;
    enum { N = 120, M = 80, R = 7 };
    at_rng r;
    at_rng_seed(&r, 5);
    int A[N][R], B[R][M];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < R; k++)
            A[i][k] = (int)at_rng_below(&r, 7) - 3;
    for (int k = 0; k < R; k++)
        for (int j = 0; j < M; j++)
            B[k][j] = (int)at_rng_below(&r, 7) - 3;
    static float w[N * M];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) {
            int s = 0;
            for (int k = 0; k < R; k++)
                s += A[i][k] * B[k][j];
            w[i * M + j] = (float)s;
        }
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    at_metrics m = analyze(w, AT_KIND_LINEAR, 2, (int64_t[]){N, M}, &o);
    assert_int_equal(m.matrix_rank, R);
    assert_int_equal(m.rank_loss, M - R);
    assert_true(m.weak_rank_loss >= M - R);
    /* The same matrix transposed: orientation does not matter. */
    static float wt[M * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++)
            wt[j * N + i] = w[i * M + j];
    at_metrics mt = analyze(wt, AT_KIND_LINEAR, 2, (int64_t[]){M, N}, &o);
    assert_int_equal(mt.matrix_rank, R);
    assert_int_equal(mt.N, N);
    assert_int_equal(mt.M, M);
    assert_true(fabs(mt.alpha - m.alpha) < 1e-9 * fabs(m.alpha));
}

static void check_failed(const at_metrics *m)
{
    assert_int_equal(m->status, AT_FIT_FAILED);
    assert_true(m->alpha == -1.0 && m->D == -1.0 && m->sigma == -1.0 && m->xmin == -1.0);
    assert_int_equal(m->num_pl_spikes, -1);
    assert_true(isnan(m->xmax));
    assert_int_equal(m->warning, AT_WARN_FAILED);
    assert_string_equal(at_warning_name(m->warning), "failed");
    assert_string_equal(at_warning_reference_name(m->warning), "over-trained");
}

static void test_failed_fits(void **state)
{
    (void)state;
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    static float zero[40 * 30];
    at_metrics m = analyze(zero, AT_KIND_LINEAR, 2, (int64_t[]){40, 30}, &o);
    check_failed(&m);
    assert_true(m.norm == 0.0);

    float *tiny = gaussian(64 * 48, 1e-5, 3);
    m = analyze(tiny, AT_KIND_LINEAR, 2, (int64_t[]){64, 48}, &o);
    check_failed(&m);
    /* As the reference reports it: alpha = -1 enters the weighted metrics. */
    assert_true(fabs(m.alpha_weighted + log10(m.lambda_max)) < 1e-12);
    assert_true(m.weak_rank_loss == 48);
    free(tiny);

    /* Exactly one eigenvalue above 1e-5: still too few to fit. */
    static float one[20 * 12];
    one[0] = 1.0f;
    m = analyze(one, AT_KIND_LINEAR, 2, (int64_t[]){20, 12}, &o);
    check_failed(&m);
    assert_int_equal(m.matrix_rank, 1);
}

static void test_skipped_layers(void **state)
{
    (void)state;
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    float *w = gaussian(60 * 40, 1.0, 4);
    at_metrics m = analyze(w, AT_KIND_LINEAR, 2, (int64_t[]){60, 9}, &o);
    assert_int_equal(m.status, AT_FIT_SKIPPED);
    assert_int_equal(m.num_evals, 9);
    assert_true(isnan(m.alpha));
    o.max_evals = 39;
    m = analyze(w, AT_KIND_LINEAR, 2, (int64_t[]){60, 40}, &o);
    assert_int_equal(m.status, AT_FIT_SKIPPED);
    at_htsr_opts_default(&o);
    o.max_N = 59;
    m = analyze(w, AT_KIND_LINEAR, 2, (int64_t[]){40, 60}, &o);
    assert_int_equal(m.status, AT_FIT_SKIPPED);
    o.max_N = 60;
    m = analyze(w, AT_KIND_LINEAR, 2, (int64_t[]){40, 60}, &o);
    assert_int_equal(m.status, AT_FIT_SUCCESS);
    free(w);
}

static void test_bad_weights(void **state)
{
    (void)state;
    at_htsr *h = at_htsr_new();
    float *w = gaussian(30 * 20, 1.0, 6);
    w[17] = NAN;
    w[18] = NAN;
    w[40] = INFINITY;
    w[599] = -INFINITY; /* the last weight, past the vectorised body of the count */
    at_tensor t = {.data = w, .kind = AT_KIND_LINEAR, .ndim = 2, .shape = {30, 20}};
    at_metrics m;
    assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_ERR_NONFINITE);
    assert_non_null(strstr(at_htsr_last_error(h), "2 NaN and 2 Inf"));
    t.shape[1] = 0;
    assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_ERR_EMPTY);
    t.shape[1] = 20;
    t.ndim = 4;
    assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_ERR_ARG);
    t.ndim = 2;
    t.data = NULL;
    assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_ERR_ARG);
    /* The workspace is still usable after errors. */
    w[17] = w[18] = w[40] = w[599] = 0.5f;
    t.data = w;
    assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_OK);
    assert_int_equal(m.status, AT_FIT_SUCCESS);
    at_htsr_free(h);
    at_htsr_free(NULL);
    free(w);
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void test_half_conversion(void **state)
{
    (void)state;
    /* binary16 bit patterns (little-endian bytes) and their exact float32 values. */
    const uint16_t h[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff,
                          0x0400, 0x3555, 0x8000, 0x7c00, 0xfc00};
    const float want[] = {1.0f,     -2.0f,       65504.0f, 0x1p-24f, 0x3ffp-24f,
                          0x1p-14f, 0x1.554p-2f, -0.0f,    INFINITY, -INFINITY};
    enum { n = sizeof h / sizeof *h };
    unsigned char bytes[2 * n];
    for (int i = 0; i < n; i++) {
        bytes[2 * i] = (unsigned char)(h[i] & 0xff);
        bytes[2 * i + 1] = (unsigned char)(h[i] >> 8);
    }
    float got[n];
    at_convert_to_f32(bytes, AT_DTYPE_F16, n, got);
    for (int i = 0; i < n; i++)
        assert_int_equal(float_bits(got[i]), float_bits(want[i]));
    const unsigned char nan16[] = {0x00, 0x7e};
    at_convert_to_f32(nan16, AT_DTYPE_F16, 1, got);
    assert_true(isnan(got[0]));

    const uint16_t b[] = {0x3f80, 0x4049, 0xbf00, 0x0001, 0x7f80, 0xff80, 0x7f7f};
    const float bwant[] = {1.0f, 3.140625f, -0.5f, 0x1p-133f, INFINITY, -INFINITY, 0x1.fep127f};
    enum { nb = sizeof b / sizeof *b };
    for (int i = 0; i < nb; i++) {
        bytes[2 * i] = (unsigned char)(b[i] & 0xff);
        bytes[2 * i + 1] = (unsigned char)(b[i] >> 8);
    }
    at_convert_to_f32(bytes, AT_DTYPE_BF16, nb, got);
    for (int i = 0; i < nb; i++)
        assert_int_equal(float_bits(got[i]), float_bits(bwant[i]));
}

/* bfloat16 weights analyse exactly like the float32 weights with the same values. */
static void test_bf16_layer_matches_f32(void **state)
{
    (void)state;
    enum { R = 48, C = 32 };
    float *w = gaussian(R * C, 1.0, 8);
    static uint16_t b[R * C];
    for (int i = 0; i < R * C; i++) {
        b[i] = (uint16_t)(float_bits(w[i]) >> 16);
        uint32_t u = (uint32_t)b[i] << 16;
        memcpy(&w[i], &u, sizeof u);
    }
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    at_metrics m32 = analyze(w, AT_KIND_LINEAR, 2, (int64_t[]){R, C}, &o);
    at_htsr *h = at_htsr_new();
    at_tensor t = {
        .data = b, .dtype = AT_DTYPE_BF16, .kind = AT_KIND_LINEAR, .ndim = 2, .shape = {R, C}};
    at_metrics m16;
    assert_int_equal(at_htsr_analyze(h, &t, &o, &m16), AT_OK);
    assert_memory_equal(&m16.alpha, &m32.alpha, sizeof m32.alpha);
    assert_memory_equal(&m16.norm, &m32.norm, sizeof m32.norm);
    at_htsr_free(h);
    free(w);
}

/* Conv2d: N/M as the reference reports them (swapped once per slice with out < in). */
static void test_conv2d_shape_quirk(void **state)
{
    (void)state;
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    float *w = gaussian(8 * 16 * 3 * 3, 0.1, 9);
    at_metrics odd = analyze(w, AT_KIND_CONV2D, 4, (int64_t[]){8, 16, 3, 3}, &o);
    assert_int_equal(odd.N, 16);
    assert_int_equal(odd.M, 8);
    assert_int_equal(odd.rf, 9);
    assert_int_equal(odd.num_evals, 72);
    at_metrics even = analyze(w, AT_KIND_CONV2D, 4, (int64_t[]){8, 16, 2, 2}, &o);
    assert_int_equal(even.N, 8);
    assert_int_equal(even.M, 16);
    assert_true(even.Q == 0.5);
    assert_int_equal(even.num_evals, 32);
    at_metrics wide = analyze(w, AT_KIND_CONV2D, 4, (int64_t[]){16, 8, 2, 2}, &o);
    assert_int_equal(wide.N, 16);
    assert_int_equal(wide.M, 8);
    free(w);
}

/* Conv2d eigenvalues are the pooled eigenvalues of the float32-scaled slices. */
static void test_conv2d_pooling(void **state)
{
    (void)state;
    enum { CO = 12, CI = 10, KS = 2 };
    float *w = gaussian(CO * CI * KS * KS, 1.0, 10);
    at_htsr *h = at_htsr_new();
    at_tensor t = {.data = w, .kind = AT_KIND_CONV2D, .ndim = 4, .shape = {CO, CI, KS, KS}};
    at_metrics m;
    assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_OK);
    size_t n = 0;
    const double *ev = at_htsr_evals(h, &n);
    assert_int_equal(n, CI * KS * KS);
    double trace = 0.0;
    for (int i = 0; i < CO * CI * KS * KS; i++) {
        const double s = (double)(w[i] * (float)(1.0 / sqrt(2.0)));
        trace += s * s;
    }
    assert_true(fabs(m.norm - trace) < 1e-12 * trace);
    for (size_t i = 1; i < n; i++)
        assert_true(ev[i - 1] <= ev[i]);
    at_htsr_free(h);
    free(w);
}

static void test_detx(void **state)
{
    (void)state;
    const double flat[] = {1.0, 1.0, 1.0, 1.0};
    int64_t num;
    double val;
    assert_int_equal(at_detx(flat, 4, &num, &val), AT_OK);
    assert_int_equal(num, 4);
    const double two[] = {0.5, 1.5};
    assert_int_equal(at_detx(two, 2, &num, &val), AT_OK);
    assert_int_equal(num, 2);
    assert_true(val == 0.5);
    /* e = {0.2, 0.4, 0.8, 2.6}: 2.6 * 0.8 > 1, 2.6 * 0.8 * 0.4 < 1 -> tail of 3 from 0.4. */
    const double x[] = {1.0, 2.0, 4.0, 13.0};
    assert_int_equal(at_detx(x, 4, &num, &val), AT_OK);
    assert_int_equal(num, 3);
    assert_true(val == 2.0);
    assert_int_equal(at_detx(x, 0, &num, &val), AT_ERR_ARG);
}

static void test_mp_fit_gaussian(void **state)
{
    (void)state;
    enum { N = 600, M = 300 };
    float *w = gaussian(N * M, 1.0, 12);
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    o.mp_fit = 1;
    at_metrics m = analyze(w, AT_KIND_LINEAR, 2, (int64_t[]){N, M}, &o);
    assert_true(fabs(m.mp_sigma - 1.0) < 0.05);
    assert_int_equal(m.mp_num_spikes, 0);
    /* A strong rank-one signal is one spike above the bulk. */
    for (int r = 0; r < N; r++)
        for (int c = 0; c < M; c++)
            w[r * M + c] += (float)(0.2 * ((r % 2) ? 1 : -1) * ((c % 3) ? 1 : -1));
    m = analyze(w, AT_KIND_LINEAR, 2, (int64_t[]){N, M}, &o);
    assert_int_equal(m.mp_num_spikes, 1);
    free(w);
}

static void test_traps(void **state)
{
    (void)state;
    enum { N = 200, M = 120 };
    at_htsr *h = at_htsr_new();
    float *w = gaussian(N * M, 0.05, 13);
    at_tensor t = {.data = w, .kind = AT_KIND_LINEAR, .ndim = 2, .shape = {N, M}};
    int64_t traps;
    double ratio;
    for (uint64_t seed = 0; seed < 4; seed++) {
        assert_int_equal(at_htsr_traps(h, &t, seed, &traps, &ratio), AT_OK);
        assert_int_equal(traps, 0);
        assert_true(ratio == 0.0);
    }
    /* A non-zero mean (as behind a ReLU) is centred away, not counted. */
    for (int i = 0; i < N * M; i++)
        w[i] += 0.3f;
    assert_int_equal(at_htsr_traps(h, &t, 1, &traps, &ratio), AT_OK);
    assert_int_equal(traps, 0);
    /* Three huge entries survive any shuffle as three localized spikes. */
    w[5] += 3.0f;
    w[777] -= 3.0f;
    w[9000] += 3.0f;
    assert_int_equal(at_htsr_traps(h, &t, 1, &traps, &ratio), AT_OK);
    assert_int_equal(traps, 3);
    assert_true(ratio > 1.0);
    int64_t again;
    double ratio2;
    assert_int_equal(at_htsr_traps(h, &t, 1, &again, &ratio2), AT_OK);
    assert_int_equal(again, traps);
    assert_memory_equal(&ratio, &ratio2, sizeof ratio);
    /* Through at_htsr_analyze, with the eigenvalues of the analysis left intact. */
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    o.traps = 1;
    o.seed = 1;
    at_metrics m;
    assert_int_equal(at_htsr_analyze(h, &t, &o, &m), AT_OK);
    assert_int_equal(m.num_traps, 3);
    size_t n = 0;
    const double *ev = at_htsr_evals(h, &n);
    assert_int_equal(n, M);
    assert_true(ev[n - 1] == m.lambda_max);
    at_htsr_free(h);
    free(w);
}

/* A fine-tune delta is analyzed as the float32 difference, with the base in either
 * orientation and any dtype. */
static void test_delta(void **state)
{
    (void)state;
    enum { R = 64, C = 40 };
    float *base = gaussian(R * C, 0.1, 14), *update = gaussian(R * C, 0.02, 15);
    static float model[R * C], diff[R * C], base_t[C * R];
    for (int i = 0; i < R * C; i++) {
        model[i] = base[i] + update[i];
        diff[i] = model[i] - base[i];
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            base_t[c * R + r] = base[r * C + c];
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    const at_metrics want = analyze(diff, AT_KIND_LINEAR, 2, (int64_t[]){R, C}, &o);
    at_htsr *h = at_htsr_new();
    at_tensor tm = {.data = model, .kind = AT_KIND_LINEAR, .ndim = 2, .shape = {R, C}};
    at_tensor tb = {.data = base, .kind = AT_KIND_LINEAR, .ndim = 2, .shape = {R, C}};
    at_metrics m;
    assert_int_equal(at_htsr_analyze_delta(h, &tm, &tb, &o, &m), AT_OK);
    assert_memory_equal(&m.alpha, &want.alpha, sizeof m.alpha);
    assert_memory_equal(&m.norm, &want.norm, sizeof m.norm);
    tb.data = base_t;
    tb.shape[0] = C;
    tb.shape[1] = R;
    assert_int_equal(at_htsr_analyze_delta(h, &tm, &tb, &o, &m), AT_OK);
    assert_memory_equal(&m.alpha, &want.alpha, sizeof m.alpha);
    tb.shape[0] = C + 1;
    assert_int_equal(at_htsr_analyze_delta(h, &tm, &tb, &o, &m), AT_ERR_SIZE);
    /* A bfloat16 base: the difference to its widened values. */
    static uint16_t base16[R * C];
    for (int i = 0; i < R * C; i++)
        base16[i] = (uint16_t)(float_bits(base[i]) >> 16);
    at_tensor t16 = {
        .data = base16, .dtype = AT_DTYPE_BF16, .kind = AT_KIND_LINEAR, .ndim = 2, .shape = {R, C}};
    float widened[1];
    for (int i = 0; i < R * C; i++) {
        at_convert_to_f32(&base16[i], AT_DTYPE_BF16, 1, widened);
        diff[i] = model[i] - widened[0];
    }
    const at_metrics want16 = analyze(diff, AT_KIND_LINEAR, 2, (int64_t[]){R, C}, &o);
    assert_int_equal(at_htsr_analyze_delta(h, &tm, &t16, &o, &m), AT_OK);
    assert_memory_equal(&m.alpha, &want16.alpha, sizeof m.alpha);
    at_htsr_free(h);
    free(base);
    free(update);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_recovers_planted_exponent),
        cmocka_unit_test(test_planted_spectrum_matrix),
        cmocka_unit_test(test_fit_identical_to_naive),
        cmocka_unit_test(test_fit_rejects_unsorted),
        cmocka_unit_test(test_rank_deficient),
        cmocka_unit_test(test_failed_fits),
        cmocka_unit_test(test_skipped_layers),
        cmocka_unit_test(test_bad_weights),
        cmocka_unit_test(test_half_conversion),
        cmocka_unit_test(test_bf16_layer_matches_f32),
        cmocka_unit_test(test_conv2d_shape_quirk),
        cmocka_unit_test(test_conv2d_pooling),
        cmocka_unit_test(test_detx),
        cmocka_unit_test(test_mp_fit_gaussian),
        cmocka_unit_test(test_traps),
        cmocka_unit_test(test_delta),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
