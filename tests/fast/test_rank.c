/* SPDX-License-Identifier: Apache-2.0 */
/* test_rank.c -- exact mode's rank columns on layers with exactly-zero rows or columns (dead
 * neurons, pruned inputs), against the reference method written out here: float64 dgesdd of
 * the whole matrix, then the spec's formulas for matrix_rank, rank_loss, entropy and sv_min.
 * Each seed draws a trained-looking layer (a Gaussian bulk plus a decaying tail of spikes, or a
 * smoothly falling spectrum), zeroes 1..ZERO_MAX rows or columns at random positions, and
 * compares every column; tall, wide and square shapes from 64 to 2048. The Gram path's bottom
 * subspace starts from a random vector: a step count that trusted its spread got the rank wrong on
 * ~1% of such layers. */
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

#include "alphatop/gram.h"
#include "alphatop/htsr.h"
#include "alphatop/rng.h"
#include "fixture.h"

#define ZERO_MAX 6
#define ENTROPY_TOL 1e-6

/* The reference's rank columns of a row-major rows x cols float32 layer. */
typedef struct ref_rank {
    int64_t matrix_rank, rank_loss;
    double sv_max, sv_min, entropy;
} ref_rank;

static ref_rank reference(const float *w, int64_t rows, int64_t cols)
{
    const int64_t p = rows < cols ? rows : cols, N = rows < cols ? cols : rows;
    double *a = malloc((size_t)(rows * cols) * sizeof(double));
    double *sv = malloc((size_t)p * sizeof(double)), dummy = 0.0;
    assert_true(a && sv);
    for (int64_t i = 0; i < rows * cols; i++)
        a[i] = w[i];
    /* row-major rows x cols = column-major cols x rows */
    assert_int_equal(LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)cols, (int)rows, a, (int)cols, sv,
                                    &dummy, 1, &dummy, 1),
                     0);
    ref_rank r = {.sv_max = sv[0], .sv_min = sv[p - 1]};
    const double tol = sv[0] * (double)N * DBL_EPSILON;
    double sum = 0.0;
    for (int64_t i = 0; i < p; i++) {
        r.matrix_rank += sv[i] > tol;
        sum += sv[i] * sv[i];
    }
    r.rank_loss = p - r.matrix_rank;
    /* entropy: q = lambda / sum(lambda) + 1e-10; -sum q ln q / ln(matrix_rank + 1e-10) */
    double h = 0.0;
    for (int64_t i = 0; i < p; i++) {
        double q = sv[i] * sv[i] / sum + 1e-10;
        h -= q * log(q);
    }
    r.entropy = h / log((double)r.matrix_rank + 1e-10);
    free(sv);
    free(a);
    return r;
}

/* A rows x cols row-major layer with singular values falling smoothly over `decades` decades
 * (s_i = 10^(-decades * i / p)): no gap at the bottom of the spectrum, the shape on which the
 * bottom subspace converges slowest. Caller frees. */
static float *smooth(int64_t rows, int64_t cols, double decades, uint64_t seed)
{
    const int64_t p = rows < cols ? rows : cols;
    double *sv = malloc((size_t)p * sizeof(double));
    assert_non_null(sv);
    for (int64_t k = 0; k < p; k++)
        sv[k] = pow(10.0, -decades * (double)k / (double)p);
    float *w = fx_with_singular_values(rows, cols, sv, seed);
    free(sv);
    return w;
}

/* Zeroes `count` distinct rows (or columns) of w at random positions. */
static void zero_lines(float *w, int64_t rows, int64_t cols, int count, int by_row, at_rng *r)
{
    const int64_t lines = by_row ? rows : cols;
    for (int done = 0; done < count;) {
        int64_t k = (int64_t)at_rng_below(r, (uint64_t)lines), nz = 0;
        for (int64_t i = 0; i < (by_row ? cols : rows); i++)
            nz += (by_row ? w[k * cols + i] : w[i * cols + k]) != 0.0f;
        if (!nz)
            continue; /* already zero: draw another */
        for (int64_t i = 0; i < (by_row ? cols : rows); i++)
            *(by_row ? &w[k * cols + i] : &w[i * cols + k]) = 0.0f;
        done++;
    }
}

/* `seeds` layers of one shape; returns how many went through each Gram path. */
static void check_shape(at_htsr *h, at_gram *g, int64_t rows, int64_t cols, int seeds, int paths[3])
{
    for (int s = 0; s < seeds; s++) {
        const uint64_t seed = (uint64_t)(rows * 7919 + cols * 104729 + s);
        at_rng r;
        at_rng_seed(&r, seed);
        /* even seeds: a spiked layer; odd ones: a smooth spectrum over 1 to 4 decades */
        float *w = s % 2 ? smooth(rows, cols, 1.0 + 3.0 * at_rng_uniform(&r), seed)
                         : fx_spiked(rows, cols, 8, 6.0, 0.7, seed);
        const int count = 1 + (int)at_rng_below(&r, ZERO_MAX);
        const int by_row = (int)at_rng_below(&r, 2);
        zero_lines(w, rows, cols, count, by_row, &r);

        ref_rank ref = reference(w, rows, cols);
        at_tensor t = fx_tensor(w, rows, cols);
        at_metrics m;
        assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_OK);
        const double floor = ref.sv_max * (double)(rows > cols ? rows : cols) * DBL_EPSILON;
        if (m.matrix_rank != ref.matrix_rank || m.rank_loss != ref.rank_loss ||
            fabs(m.entropy - ref.entropy) > ENTROPY_TOL * ref.entropy ||
            !((m.sv_min <= floor && ref.sv_min <= floor) ||
              fabs(m.sv_min - ref.sv_min) <= 1e-6 * ref.sv_min))
            fail_msg("%lldx%lld seed %d, %d zero %s: matrix_rank %lld (reference %lld), "
                     "rank_loss %lld (%lld), entropy %.9g (%.9g), sv_min %.3g (%.3g)",
                     (long long)rows, (long long)cols, s, count, by_row ? "rows" : "columns",
                     (long long)m.matrix_rank, (long long)ref.matrix_rank, (long long)m.rank_loss,
                     (long long)ref.rank_loss, m.entropy, ref.entropy, m.sv_min, ref.sv_min);

        /* the path exact mode took (same matrix, same workspace state: same result) */
        const int64_t m_ = cols, n_ = rows, p = rows < cols ? rows : cols;
        double *a = malloc((size_t)(rows * cols) * sizeof(double));
        double *lam = malloc((size_t)p * sizeof(double));
        assert_true(a && lam);
        for (int64_t i = 0; i < rows * cols; i++)
            a[i] = w[i];
        at_gram_path path;
        assert_int_equal(at_gram_evals64(g, a, m_, n_, lam, &path), AT_OK);
        paths[path]++;
        free(lam);
        free(a);
        free(w);
    }
}

static void test_zero_lines(void **state)
{
    (void)state;
    /* rows x cols (row-major, out x in) and seeds per shape: many where the failure rate can
     * be seen, a few where one dgesdd takes seconds */
    const struct {
        int64_t rows, cols;
        int seeds;
    } shapes[] = {{128, 64, 400},  {64, 128, 400},  {64, 64, 400},   {96, 96, 300},
                  {256, 128, 200}, {128, 256, 200}, {200, 200, 200}, {512, 256, 40},
                  {256, 512, 40},  {512, 512, 30},  {1024, 1024, 6}, {2048, 1024, 2},
                  {1024, 2048, 2}, {2048, 2048, 2}};
    at_htsr *h = at_htsr_new();
    at_gram *g = at_gram_new();
    assert_true(h && g);
    int total = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int paths[3] = {0, 0, 0};
        check_shape(h, g, shapes[i].rows, shapes[i].cols, shapes[i].seeds, paths);
        total += shapes[i].seeds;
        printf("  %5lldx%-5lld %3d seeds: paths plain %d, ritz %d, svd %d\n",
               (long long)shapes[i].rows, (long long)shapes[i].cols, shapes[i].seeds, paths[0],
               paths[1], paths[2]);
    }
    printf("zero rows/columns: %d layers, every rank column equal to dgesdd's\n", total);
    at_gram_free(g);
    at_htsr_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
