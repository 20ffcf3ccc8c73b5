/* SPDX-License-Identifier: Apache-2.0 */
/* test_analyze.c -- every path of at_analyzer_run gives, bit for bit, what the direct call it
 * stands for gives: exact, fast cold and warm (with state), delta in both modes, LoRA, conv2d
 * in fast mode, and the errors (status and detail) of bad input; at_analyzer_skips predicts a
 * skip from shapes without a weight being read. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../fast/fixture.h"
#include "alphatop/analyze.h"
#include "alphatop/lora.h"
#include "alphatop/rng.h"

/* Bit-for-bit equality of two doubles (NAN equals NAN of the same bits). */
static void same_double(double a, double b, const char *what)
{
    if (memcmp(&a, &b, sizeof a) != 0)
        fail_msg("%s differs: %.17g vs %.17g", what, a, b);
}

#define SAME_I(f) assert_int_equal(a->f, b->f)
#define SAME_D(f) same_double(a->f, b->f, #f)

static void same_metrics(const at_metrics *a, const at_metrics *b)
{
    SAME_I(N);
    SAME_I(M);
    SAME_I(rf);
    SAME_D(Q);
    SAME_I(num_evals);
    SAME_D(sv_max);
    SAME_D(sv_min);
    SAME_D(lambda_max);
    SAME_I(rank_loss);
    SAME_I(weak_rank_loss);
    SAME_I(status);
    SAME_I(warning);
    SAME_D(alpha);
    SAME_D(xmin);
    SAME_D(xmax);
    SAME_D(D);
    SAME_D(sigma);
    SAME_I(num_pl_spikes);
    SAME_D(norm);
    SAME_D(log_norm);
    SAME_D(spectral_norm);
    SAME_D(log_spectral_norm);
    SAME_D(alpha_weighted);
    SAME_D(log_alpha_norm);
    SAME_D(stable_rank);
    SAME_D(entropy);
    SAME_I(matrix_rank);
    SAME_I(detx_num);
    SAME_D(detx_val);
    SAME_I(mp_num_spikes);
    SAME_D(mp_sigma);
    SAME_D(mp_softrank);
    SAME_D(mp_bulk_max);
    SAME_I(num_traps);
    SAME_D(trap_max_ratio);
    SAME_I(mode);
}

static void same_info(const at_fast_info *a, const at_fast_info *b)
{
    SAME_I(mode);
    SAME_I(refresh);
    SAME_I(k);
    SAME_I(b);
    SAME_I(passes);
    SAME_D(rel_change);
}

static float *gaussian(size_t n, uint64_t seed)
{
    at_rng r;
    at_rng_seed(&r, seed);
    float *w = malloc(n * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++)
        w[i] = (float)at_rng_normal(&r);
    return w;
}

static at_analyzer *analyzer(int fast, const at_htsr_opts *ho, int keep_evals)
{
    at_analyzer_opts o;
    at_analyzer_opts_default(&o);
    o.fast = fast;
    if (ho)
        o.htsr = *ho;
    o.keep_evals = keep_evals;
    int status = 1;
    at_analyzer *a = at_analyzer_new(&o, &status);
    assert_non_null(a);
    assert_int_equal(status, AT_OK);
    return a;
}

/* Runs job on a and asserts it succeeded. */
static void run_ok(at_analyzer *a, const at_layer_job *job, at_metrics *m, at_fast_info *info)
{
    int rc = at_analyzer_run(a, job, m, info);
    if (rc != AT_OK)
        fail_msg("at_analyzer_run: %d %s", rc, at_analyzer_last_error(a));
}

/* Runs job on a, asserts the result equals want (and the provenance iwant, when not NULL);
 * returns the provenance. */
static at_fast_info run_same(at_analyzer *a, const at_layer_job *job, const at_metrics *want,
                             const at_fast_info *iwant)
{
    at_metrics got;
    at_fast_info info;
    run_ok(a, job, &got, &info);
    same_metrics(want, &got);
    if (iwant)
        same_info(iwant, &info);
    return info;
}

static void test_defaults(void **state)
{
    (void)state;
    int status = 1;
    at_analyzer *a = at_analyzer_new(NULL, &status);
    assert_non_null(a);
    assert_int_equal(status, AT_OK);
    const at_analyzer_opts *o = at_analyzer_opts_get(a);
    at_htsr_opts ho;
    at_htsr_opts_default(&ho);
    assert_int_equal(o->fast, 0);
    assert_int_equal(o->delta_exact, 0);
    assert_int_equal(o->keep_evals, 0);
    assert_int_equal(o->htsr.min_evals, ho.min_evals);
    assert_int_equal(o->htsr.max_evals, ho.max_evals);
    assert_int_equal(o->fast_opts.refresh_every, 16);
    assert_string_equal(at_analyzer_last_error(a), "");
    at_analyzer_free(a);
    at_analyzer_free(NULL);
    /* The options are copied: changing the caller's afterwards changes nothing. */
    at_analyzer_opts mine;
    at_analyzer_opts_default(&mine);
    mine.fast = 1;
    a = at_analyzer_new(&mine, NULL);
    assert_non_null(a);
    mine.fast = 0;
    assert_int_equal(at_analyzer_opts_get(a)->fast, 1);
    at_analyzer_free(a);
}

/* Exact mode with every optional metric on; eigenvalues exposed only with keep_evals. */
static void test_exact(void **state)
{
    (void)state;
    const int64_t rows = 90, cols = 60;
    float *w = gaussian((size_t)(rows * cols), 1);
    at_tensor t = fx_tensor(w, rows, cols);
    at_htsr_opts ho;
    at_htsr_opts_default(&ho);
    ho.detx = ho.mp_fit = ho.traps = 1;
    ho.seed = 7;
    at_htsr *h = at_htsr_new();
    at_metrics want, got;
    assert_int_equal(at_htsr_analyze(h, &t, &ho, &want), AT_OK);
    assert_int_equal(want.status, AT_FIT_SUCCESS);
    size_t nw = 0;
    const double *ew = at_htsr_evals(h, &nw);

    for (int keep = 0; keep < 2; keep++) {
        at_analyzer *a = analyzer(0, &ho, keep);
        at_layer_job job = {.w = &t};
        at_fast_info info = run_same(a, &job, &want, NULL);
        assert_int_equal(info.mode, AT_MODE_EXACT);
        assert_int_equal(info.refresh, AT_REFRESH_NONE);
        assert_int_equal(info.k, want.num_evals);
        assert_true(isnan(info.rel_change));
        size_t n = 99;
        const double *e = at_analyzer_evals(a, &n);
        if (keep) {
            assert_int_equal(n, nw);
            assert_memory_equal(e, ew, n * sizeof *e);
        } else {
            assert_null(e);
            assert_int_equal(n, 0);
        }
        /* A failed run leaves no eigenvalues behind. */
        job.w = NULL;
        assert_int_equal(at_analyzer_run(a, &job, &got, NULL), AT_ERR_ARG);
        assert_null(at_analyzer_evals(a, &n));
        assert_int_equal(n, 0);
        at_analyzer_free(a);
    }
    at_htsr_free(h);
    free(w);
}

/* Fast mode: a one-off cold analysis, then a layer's snapshots with state (cold, then warm). */
static void test_fast_cold_and_warm(void **state)
{
    (void)state;
    const int64_t rows = 400, cols = 700;
    float *w = fx_spiked(rows, cols, 40, 12.0, 0.7, 11);
    at_tensor t = fx_tensor(w, rows, cols);
    at_fast *f = at_fast_new();
    at_fast_opts fo;
    at_fast_opts_default(&fo);
    at_analyzer *a = analyzer(1, NULL, 1);
    at_metrics want;
    at_fast_info iwant;

    at_layer_job job = {.w = &t};
    assert_int_equal(at_fast_analyze(f, NULL, &t, &fo, NULL, &want, &iwant), AT_OK);
    run_same(a, &job, &want, &iwant);
    assert_int_equal(want.mode, AT_MODE_GRAM);
    size_t n = 1;
    assert_null(at_analyzer_evals(a, &n)); /* fast mode has no exact eigenvalues */
    assert_int_equal(n, 0);

    at_fast_state *sw = at_fast_state_new(), *sg = at_fast_state_new();
    job.state = sg;
    const at_mode modes[] = {AT_MODE_GRAM, AT_MODE_WARM, AT_MODE_WARM};
    for (int i = 0; i < 3; i++) {
        if (i)
            fx_perturb(w, rows, cols, 1e-3, 12 + (uint64_t)i);
        assert_int_equal(at_fast_analyze(f, sw, &t, &fo, NULL, &want, &iwant), AT_OK);
        run_same(a, &job, &want, &iwant);
        assert_int_equal(want.mode, modes[i]);
    }
    /* Unchanged weights: the stored result again, skipped. */
    assert_int_equal(at_fast_analyze(f, sw, &t, &fo, NULL, &want, &iwant), AT_OK);
    run_same(a, &job, &want, &iwant);
    assert_int_equal(want.mode, AT_MODE_SKIPPED);

    at_fast_state_free(sw);
    at_fast_state_free(sg);
    at_analyzer_free(a);
    at_fast_free(f);
    free(w);
}

/* Fast mode follows htsr.min_evals, not fast_opts.min_evals; conv2d goes to exact mode. */
static void test_fast_min_evals_and_conv(void **state)
{
    (void)state;
    const int64_t rows = 40, cols = 30;
    float *w = gaussian((size_t)(rows * cols), 2);
    at_tensor t = fx_tensor(w, rows, cols);
    at_analyzer_opts o;
    at_analyzer_opts_default(&o);
    o.fast = 1;
    o.htsr.min_evals = 31;
    o.fast_opts.min_evals = 1;
    at_analyzer *a = at_analyzer_new(&o, NULL);
    at_layer_job job = {.w = &t};
    at_metrics m;
    run_ok(a, &job, &m, NULL);
    assert_int_equal(m.status, AT_FIT_SKIPPED);
    assert_int_equal(m.num_evals, 30);
    at_analyzer_free(a);

    at_tensor conv = {.data = w,
                      .dtype = AT_DTYPE_F32,
                      .kind = AT_KIND_CONV2D,
                      .ndim = 4,
                      .shape = {12, 10, 3, 3}};
    at_fast *f = at_fast_new();
    at_fast_opts fo;
    at_fast_opts_default(&fo);
    at_htsr_opts ho;
    at_htsr_opts_default(&ho);
    ho.min_evals = 5;
    at_metrics want;
    at_fast_info iwant;
    assert_int_equal(at_fast_analyze(f, NULL, &conv, &fo, &ho, &want, &iwant), AT_OK);
    a = analyzer(1, &ho, 0);
    job.w = &conv;
    run_same(a, &job, &want, &iwant);
    assert_int_equal(iwant.refresh, AT_REFRESH_NOT_LINEAR);
    at_analyzer_free(a);
    at_fast_free(f);
    free(w);
}

/* Delta jobs: exact mode is at_htsr_analyze_delta (also with a transposed base); fast
 * mode is at_fast_analyze of the float32 difference formed here, with the job's state; fast
 * mode with delta_exact is exact. */
static void test_delta(void **state)
{
    (void)state;
    const int64_t rows = 400, cols = 700;
    const size_t n = (size_t)(rows * cols);
    float *base = fx_spiked(rows, cols, 40, 12.0, 0.7, 21);
    float *w = malloc(n * sizeof *w), *d = malloc(n * sizeof *d), *bt = malloc(n * sizeof *bt);
    assert_true(w && d && bt);
    /* The update is itself heavy-tailed, so its next snapshot can be warm. */
    float *update = fx_spiked(rows, cols, 40, 12.0, 0.7, 22);
    for (size_t j = 0; j < n; j++)
        w[j] = base[j] + 0.5f * update[j];
    free(update);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            bt[c * rows + r] = base[r * cols + c];
    at_tensor tw = fx_tensor(w, rows, cols), tb = fx_tensor(base, rows, cols);
    at_tensor tbt = fx_tensor(bt, cols, rows);
    at_metrics want;
    at_fast_info iwant;

    at_htsr *h = at_htsr_new();
    at_analyzer *a = analyzer(0, NULL, 1);
    const at_tensor *bases[] = {&tb, &tbt};
    for (int k = 0; k < 2; k++) {
        at_layer_job job = {.w = &tw, .base = bases[k]};
        assert_int_equal(at_htsr_analyze_delta(h, &tw, bases[k], NULL, &want), AT_OK);
        run_same(a, &job, &want, NULL);
        size_t nw, ng;
        const double *ew = at_htsr_evals(h, &nw), *eg = at_analyzer_evals(a, &ng);
        assert_int_equal(nw, ng);
        assert_memory_equal(ew, eg, nw * sizeof *ew);
    }
    at_analyzer_free(a);

    /* delta_exact: fast mode, exact updates. */
    at_analyzer_opts o;
    at_analyzer_opts_default(&o);
    o.fast = o.delta_exact = 1;
    a = at_analyzer_new(&o, NULL);
    at_layer_job job = {.w = &tw, .base = &tbt};
    assert_int_equal(at_htsr_analyze_delta(h, &tw, &tbt, NULL, &want), AT_OK);
    assert_int_equal(run_same(a, &job, &want, NULL).mode, AT_MODE_EXACT);
    at_analyzer_free(a);

    /* Fast mode: two snapshots of the update with state, against the difference formed here
     * in float32. */
    at_fast *f = at_fast_new();
    at_fast_opts fo;
    at_fast_opts_default(&fo);
    at_fast_state *sw = at_fast_state_new(), *sg = at_fast_state_new();
    at_tensor td = fx_tensor(d, rows, cols);
    a = analyzer(1, NULL, 0);
    job = (at_layer_job){.w = &tw, .base = &tbt, .state = sg};
    for (int i = 0; i < 2; i++) {
        if (i)
            fx_perturb(w, rows, cols, 1e-4, 23);
        for (size_t j = 0; j < n; j++)
            d[j] = w[j] - base[j];
        assert_int_equal(at_fast_analyze(f, sw, &td, &fo, NULL, &want, &iwant), AT_OK);
        run_same(a, &job, &want, &iwant);
        assert_int_equal(want.mode, i ? AT_MODE_WARM : AT_MODE_GRAM);
    }
    at_fast_state_free(sw);
    at_fast_state_free(sg);
    at_fast_free(f);
    at_analyzer_free(a);
    at_htsr_free(h);
    free(w);
    free(d);
    free(bt);
    free(base);
}

/* LoRA jobs go to at_lora_analyze in both modes; scale 0 means 1. */
static void test_lora(void **state)
{
    (void)state;
    const int64_t out = 300, in = 200, r = 16;
    float *fb = gaussian((size_t)(out * r), 31), *fa = gaussian((size_t)(r * in), 32);
    at_tensor B = fx_tensor(fb, out, r), A = fx_tensor(fa, r, in);
    at_htsr_opts ho;
    at_htsr_opts_default(&ho);
    ho.detx = 1;
    at_lora *l = at_lora_new();
    at_metrics want;
    const double scales[] = {2.5, 0.0};
    for (int fast = 0; fast < 2; fast++) {
        at_analyzer *a = analyzer(fast, &ho, 1);
        for (int s = 0; s < 2; s++) {
            at_layer_job job = {.w = &B, .lora_a = &A, .lora_scale = scales[s]};
            assert_int_equal(
                at_lora_analyze(l, &B, &A, scales[s] != 0.0 ? scales[s] : 1.0, &ho, &want), AT_OK);
            assert_int_equal(want.status, AT_FIT_SUCCESS);
            at_fast_info info = run_same(a, &job, &want, NULL);
            assert_int_equal(info.mode, AT_MODE_EXACT);
            assert_int_equal(info.k, r);
            size_t n = 1;
            assert_null(at_analyzer_evals(a, &n));
            assert_int_equal(n, 0);
        }
        at_analyzer_free(a);
    }
    at_lora_free(l);
    free(fb);
    free(fa);
}

/* Runs job on a and on the direct call's workspace: same status, same detail. */
static void same_error(at_analyzer *a, const at_layer_job *job, int want, const char *detail,
                       const char *contains)
{
    at_metrics m;
    assert_int_equal(at_analyzer_run(a, job, &m, NULL), want);
    assert_string_equal(at_analyzer_last_error(a), detail);
    assert_non_null(strstr(detail, contains));
}

static void test_errors(void **state)
{
    (void)state;
    const int64_t rows = 40, cols = 30;
    float *w = gaussian((size_t)(rows * cols), 3);
    w[5] = NAN;
    w[77] = NAN;
    at_tensor t = fx_tensor(w, rows, cols);
    at_htsr *h = at_htsr_new();
    at_fast *f = at_fast_new();
    at_lora *l = at_lora_new();
    at_metrics m;
    at_analyzer *ex = analyzer(0, NULL, 1), *fa = analyzer(1, NULL, 0);

    /* NaN weights. */
    at_layer_job job = {.w = &t};
    assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_ERR_NONFINITE);
    same_error(ex, &job, AT_ERR_NONFINITE, at_htsr_last_error(h), "2 NaN");
    assert_int_equal(at_fast_analyze(f, NULL, &t, NULL, NULL, &m, NULL), AT_ERR_NONFINITE);
    same_error(fa, &job, AT_ERR_NONFINITE, at_fast_last_error(f), "2 NaN");
    w[5] = w[77] = 0.5f;

    /* A 3-D linear weight. */
    at_tensor bad = t;
    bad.ndim = 3;
    bad.shape[2] = 1;
    job.w = &bad;
    assert_int_equal(at_htsr_analyze(h, &bad, NULL, &m), AT_ERR_ARG);
    same_error(ex, &job, AT_ERR_ARG, at_htsr_last_error(h), "must be 2-D");
    assert_int_equal(at_fast_analyze(f, NULL, &bad, NULL, NULL, &m, NULL), AT_ERR_ARG);
    same_error(fa, &job, AT_ERR_ARG, at_fast_last_error(f), "must be 2-D");

    /* A base that pairs neither as is nor transposed, in both modes. */
    at_tensor other = fx_tensor(w, cols - 1, rows);
    job = (at_layer_job){.w = &t, .base = &other};
    assert_int_equal(at_htsr_analyze_delta(h, &t, &other, NULL, &m), AT_ERR_SIZE);
    same_error(ex, &job, AT_ERR_SIZE, at_htsr_last_error(h), "base shape");
    same_error(fa, &job, AT_ERR_SIZE, at_htsr_last_error(h), "base shape");

    /* LoRA factors that do not chain (B is out x r, A must be r x in). */
    job = (at_layer_job){.w = &t, .lora_a = &t};
    assert_int_equal(at_lora_analyze(l, &t, &t, 1.0, NULL, &m), AT_ERR_ARG);
    same_error(ex, &job, AT_ERR_ARG, at_lora_last_error(l), "do not chain");
    same_error(fa, &job, AT_ERR_ARG, at_lora_last_error(l), "do not chain");

    /* Jobs that are not one thing, or nothing. */
    job = (at_layer_job){.w = &t, .base = &t, .lora_a = &t};
    same_error(ex, &job, AT_ERR_ARG, "a job is plain, delta or LoRA, not both delta and LoRA",
               "LoRA");
    job = (at_layer_job){.w = NULL};
    same_error(fa, &job, AT_ERR_ARG, "no job, weights or output", "weights");
    assert_int_equal(at_analyzer_run(ex, NULL, &m, NULL), AT_ERR_ARG);
    assert_int_equal(at_analyzer_run(NULL, &job, &m, NULL), AT_ERR_ARG);

    /* The analyzer still works after errors. */
    job = (at_layer_job){.w = &t};
    at_metrics want;
    assert_int_equal(at_htsr_analyze(h, &t, NULL, &want), AT_OK);
    run_same(ex, &job, &want, NULL);

    at_analyzer_free(ex);
    at_analyzer_free(fa);
    at_htsr_free(h);
    at_fast_free(f);
    at_lora_free(l);
    free(w);
}

/* at_analyzer_skips decides from shapes alone what at_analyzer_run gives: for every size rule
 * of each mode, a skipped job's run (its weights all NaN, or absent) equals the prediction bit
 * for bit without reading a weight; a job it does not skip is analysed (and meets the NaN). */
static void test_skips(void **state)
{
    (void)state;
    at_htsr_opts ho;
    at_htsr_opts_default(&ho);
    ho.max_evals = 25;
    ho.max_N = 45;
    float *nan = malloc(60 * 40 * sizeof *nan);
    assert_non_null(nan);
    for (size_t i = 0; i < 60 * 40; i++)
        nan[i] = NAN;
    const struct {
        int ndim;
        int64_t shape[4];
        int exact_skips, fast_skips; /* min_evals 10, max_evals 25, max_N 45 */
    } cases[] = {
        {2, {8, 40}, 1, 1},      /* 8 eigenvalues < min_evals */
        {2, {40, 20}, 0, 0},     /* analysed in both modes */
        {2, {40, 30}, 1, 0},     /* 30 > max_evals: exact only (fast mode has no such limit) */
        {2, {60, 12}, 1, 0},     /* long side 60 > max_N: exact only */
        {4, {3, 2, 2, 2}, 1, 1}, /* conv2d: 4 slices x 2 = 8 eigenvalues, exact rules in both */
        {4, {6, 5, 2, 2}, 0, 0}, /* conv2d: 20 eigenvalues */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int mode = 0; mode < 3; mode++) { /* exact, fast, fast with an exact delta */
            at_analyzer_opts o;
            at_analyzer_opts_default(&o);
            o.fast = mode > 0;
            o.delta_exact = mode == 2;
            o.htsr = ho;
            at_analyzer *a = at_analyzer_new(&o, NULL);
            at_tensor t = {.data = nan,
                           .dtype = AT_DTYPE_F32,
                           .kind = cases[c].ndim == 4 ? AT_KIND_CONV2D : AT_KIND_LINEAR,
                           .ndim = cases[c].ndim};
            memcpy(t.shape, cases[c].shape, sizeof t.shape);
            at_layer_job plain = {.w = &t}, delta = {.w = &t, .base = &t};
            const int conv = cases[c].ndim == 4;
            for (int d = 0; d < 2; d++) {
                const at_layer_job *job = d ? &delta : &plain;
                const int fast_rules = mode == 1 || (mode == 2 && !d);
                const int want = fast_rules && !conv ? cases[c].fast_skips : cases[c].exact_skips;
                at_metrics pred, got;
                assert_int_equal(at_analyzer_skips(&o, job, &pred), want);
                t.data = nan;
                if (!want) {
                    assert_int_equal(at_analyzer_run(a, job, &got, NULL), AT_ERR_NONFINITE);
                    continue;
                }
                assert_int_equal(pred.status, AT_FIT_SKIPPED);
                for (int absent = 0; absent < 2; absent++) {
                    t.data = absent ? NULL : nan;
                    run_ok(a, job, &got, NULL);
                    same_metrics(&pred, &got);
                }
            }
            at_analyzer_free(a);
        }
    /* LoRA jobs, a base that does not pair, and no job are never predicted. */
    at_analyzer_opts o;
    at_analyzer_opts_default(&o);
    at_tensor s = fx_tensor(nan, 4, 40), wide = fx_tensor(nan, 4, 41);
    at_metrics m;
    assert_int_equal(at_analyzer_skips(&o, &(at_layer_job){.w = &s, .lora_a = &s}, &m), 0);
    assert_int_equal(at_analyzer_skips(&o, &(at_layer_job){.w = &s, .base = &wide}, &m), 0);
    assert_int_equal(at_analyzer_skips(&o, NULL, &m), 0);
    assert_int_equal(at_analyzer_skips(&o, &(at_layer_job){.w = &s}, &m), 1);
    free(nan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_fast_cold_and_warm),
        cmocka_unit_test(test_fast_min_evals_and_conv),
        cmocka_unit_test(test_delta),
        cmocka_unit_test(test_lora),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_skips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
