/* SPDX-License-Identifier: Apache-2.0 */
/* test_fast.c -- fast mode against exact mode: every oracle case cold, chained warm snapshots
 * (realistic perturbations), the refresh triggers, the skip path and bad input. */
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

#include "alphatop/fast.h"
#include "alphatop/rng.h"
#include "fixture.h"

typedef struct ctx {
    at_fast *fast;
    at_htsr *exact;
} ctx;

static int setup(void **state)
{
    ctx *c = calloc(1, sizeof *c);
    c->fast = at_fast_new();
    c->exact = at_htsr_new();
    *state = c;
    return c->fast && c->exact ? 0 : -1;
}

static int teardown(void **state)
{
    ctx *c = *state;
    at_fast_free(c->fast);
    at_htsr_free(c->exact);
    free(c);
    return 0;
}

static at_metrics exact_of(ctx *c, const at_tensor *t)
{
    at_metrics m;
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    o.max_evals = 1 << 30;
    o.max_N = 1 << 30;
    assert_int_equal(at_htsr_analyze(c->exact, t, &o, &m), AT_OK);
    return m;
}

/* Every oracle case cold: |alpha_fast - alpha_exact| <= 0.01 and, for alpha <= 6, the same
 * xmin: the same eigenvalue (same num_pl_spikes), which float32 moves by ~1e-7 * lambda_max
 * (2.6e-4 relative for mlp_delta_fc2's xmin at 9e-5). */
static void test_oracle_cold(void **state)
{
    ctx *c = *state;
    fx_case *cs = NULL;
    int n = fx_oracle_load(&cs);
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        at_metrics f, e = exact_of(c, &cs[i].t);
        at_fast_info info;
        assert_int_equal(at_fast_analyze(c->fast, NULL, &cs[i].t, NULL, NULL, &f, &info), AT_OK);
        printf("  %-24s %-5s alpha exact %9.5f fast %9.5f  xmin %.6g / %.6g\n", cs[i].name,
               at_mode_name(f.mode), e.alpha, f.alpha, e.xmin, f.xmin);
        assert_int_equal(f.status, e.status);
        assert_int_equal(f.mode, cs[i].t.kind == AT_KIND_CONV2D ? AT_MODE_EXACT : AT_MODE_GRAM);
        assert_int_equal(f.mode, info.mode);
        if (e.status != AT_FIT_SUCCESS)
            continue;
        double d = fabs(f.alpha - e.alpha);
        worst = fmax(worst, d);
        assert_true(d <= 0.01);
        if (e.alpha <= 6.0) {
            assert_int_equal(f.num_pl_spikes, e.num_pl_spikes);
            assert_true(fabs(f.xmin - e.xmin) <= 1e-3 * e.xmin);
        }
        assert_true(fabs(f.norm - e.norm) <= 1e-5 * e.norm);
        assert_true(fabs(f.lambda_max - e.lambda_max) <= 1e-5 * e.lambda_max);
    }
    printf("fast cold over %d oracle cases: largest |dalpha| %.3g\n", n, worst);
    fx_cases_free(cs, n);
}

typedef struct run_stats {
    int modes[4];
    int refresh[8];
    double worst;
} run_stats;

/* One snapshot in fast mode with state st, checked against exact mode of the same weights. */
static at_fast_info step(ctx *c, at_fast_state *st, const at_fast_opts *o, const float *w,
                         int64_t rows, int64_t cols, double tol, run_stats *rs)
{
    at_tensor t = fx_tensor(w, rows, cols);
    at_metrics f, e = exact_of(c, &t);
    at_fast_info info;
    int rc = at_fast_analyze(c->fast, st, &t, o, NULL, &f, &info);
    if (rc)
        fail_msg("at_fast_analyze: %s", at_fast_last_error(c->fast));
    assert_int_equal(f.mode, info.mode);
    double d = fabs(f.alpha - e.alpha);
    if (rs) {
        rs->modes[info.mode]++;
        rs->refresh[info.refresh]++;
        if (info.mode != AT_MODE_SKIPPED)
            rs->worst = fmax(rs->worst, d);
    }
    if (info.mode != AT_MODE_SKIPPED && !(d <= tol))
        fail_msg("%s (refresh %s, k %lld, passes %d, change %.2g): alpha %.6f exact %.6f",
                 at_mode_name(info.mode), at_refresh_name(info.refresh), (long long)info.k,
                 info.passes, info.rel_change, f.alpha, e.alpha);
    if (info.mode == AT_MODE_WARM) {
        if (!(fabs(f.xmin - e.xmin) <= 1e-4 * e.xmin))
            fail_msg("warm xmin %.9g (spikes %lld) exact %.9g (spikes %lld), alpha %.6f / %.6f",
                     f.xmin, (long long)f.num_pl_spikes, e.xmin, (long long)e.num_pl_spikes,
                     f.alpha, e.alpha);
        assert_true(fabs(f.norm - e.norm) <= 1e-5 * e.norm);
    }
    return info;
}

static void print_stats(const char *what, const run_stats *rs)
{
    printf("%s: gram %d warm %d skipped %d; refresh first %d xmin-low %d tail %d large %d "
           "periodic %d change %d; largest |dalpha| %.3g\n",
           what, rs->modes[AT_MODE_GRAM], rs->modes[AT_MODE_WARM], rs->modes[AT_MODE_SKIPPED],
           rs->refresh[AT_REFRESH_FIRST], rs->refresh[AT_REFRESH_XMIN_LOW],
           rs->refresh[AT_REFRESH_TAIL], rs->refresh[AT_REFRESH_LARGE],
           rs->refresh[AT_REFRESH_PERIODIC], rs->refresh[AT_REFRESH_CHANGE], rs->worst);
}

/* 12 chained snapshots at each step size: |dalpha| <= 0.001 against exact mode on every one;
 * 1 pass below two_pass_rel, 2 above. */
static void test_warm_perturbed(void **state)
{
    ctx *c = *state;
    const int64_t rows = 400, cols = 700;
    const double steps[] = {1e-3, 1e-2};
    for (int s = 0; s < 2; s++) {
        float *w = fx_spiked(rows, cols, 40, 12.0, 0.7, 21);
        at_fast_state *st = at_fast_state_new();
        run_stats rs = {0};
        for (int i = 0; i < 13; i++) {
            if (i > 0)
                fx_perturb(w, rows, cols, steps[s], 100 + (uint64_t)i);
            at_fast_info info = step(c, st, NULL, w, rows, cols, 0.001, &rs);
            if (info.mode == AT_MODE_WARM)
                assert_true(steps[s] > 3e-3 ? info.passes >= 2 && info.passes <= 4
                                            : info.passes == 1);
            if (i > 0)
                assert_true(info.rel_change > steps[s] / 3 && info.rel_change < steps[s] * 3);
        }
        char what[64];
        snprintf(what, sizeof what, "warm, 13 snapshots, step %g", steps[s]);
        print_stats(what, &rs);
        assert_true(rs.modes[AT_MODE_WARM] >= 10);
        at_fast_state_free(st);
        free(w);
    }
}

/* A real training loop: a 400x600 linear layer (small random init) learns a spiked teacher by
 * minibatch SGD on synthetic data. The monitor attaches after 150 steps, then takes a snapshot
 * every 2 steps: 16 snapshots chained in one state. */
static void test_warm_training(void **state)
{
    ctx *c = *state;
    const int64_t out = 400, in = 600, batch = 64;
    float *teacher = fx_spiked(out, in, 30, 10.0, 0.6, 31);
    float *w = fx_spiked(out, in, 0, 0.0, 0.0, 32);
    float *x = malloc((size_t)(batch * in) * sizeof(float));
    float *r = malloc((size_t)(batch * out) * sizeof(float));
    float *wd = malloc((size_t)(out * in) * sizeof(float));
    assert_true(x && r && wd);
    for (int64_t i = 0; i < out * in; i++)
        w[i] *= 0.1f;
    at_rng g;
    at_rng_seed(&g, 33);
    at_fast_state *st = at_fast_state_new();
    run_stats rs = {0};
    for (int snap = 0; snap < 16; snap++) {
        for (int it = 0; it < (snap ? 2 : 150); it++) {
            for (int64_t i = 0; i < batch * in; i++)
                x[i] = (float)at_rng_normal(&g);
            /* row-major W (out x in); residual R = X (W - W*)^T (batch x out) */
            for (int64_t i = 0; i < out * in; i++)
                wd[i] = w[i] - teacher[i];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)batch, (int)out, (int)in,
                        1.0f, x, (int)in, wd, (int)in, 0.0f, r, (int)out);
            /* W -= lr / B * R^T X */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)batch,
                        -0.01f / (float)batch, r, (int)out, x, (int)in, 1.0f, w, (int)in);
        }
        at_fast_info info = step(c, st, NULL, w, out, in, 0.001, &rs);
        printf("  snapshot %2d: %-5s refresh %-8s passes %d change %.2g\n", snap,
               at_mode_name(info.mode), at_refresh_name(info.refresh), info.passes,
               info.rel_change);
    }
    print_stats("SGD training, 16 snapshots", &rs);
    assert_true(rs.modes[AT_MODE_WARM] >= 8);
    at_fast_state_free(st);
    free(teacher);
    free(w);
    free(x);
    free(r);
    free(wd);
}

/* Each refresh trigger fires when it should. */
static void test_triggers(void **state)
{
    ctx *c = *state;
    at_fast_opts o;
    at_fast_opts_default(&o);
    o.refresh_every = 4;
    at_fast_info info;
    /* periodic: gram (first), warm, warm, warm, gram (periodic) */
    {
        const int64_t rows = 400, cols = 700;
        float *w = fx_spiked(rows, cols, 40, 12.0, 0.7, 41);
        at_fast_state *st = at_fast_state_new();
        const at_refresh want[] = {AT_REFRESH_FIRST, AT_REFRESH_NONE,     AT_REFRESH_NONE,
                                   AT_REFRESH_NONE,  AT_REFRESH_PERIODIC, AT_REFRESH_NONE};
        for (int i = 0; i < 6; i++) {
            if (i)
                fx_perturb(w, rows, cols, 1e-3, 42 + (uint64_t)i);
            info = step(c, st, &o, w, rows, cols, 0.001, NULL);
            assert_int_equal(info.refresh, want[i]);
            assert_int_equal(info.mode, want[i] == AT_REFRESH_NONE ? AT_MODE_WARM : AT_MODE_GRAM);
        }
        assert_true(at_fast_state_bytes(st) > (size_t)(400 * info.b) * sizeof(float));
        at_fast_state_free(st);
        free(w);
    }
    /* fx_spiked with one seed and fewer spikes is the same layer minus its weakest spikes. With
     * k_min 16: 20 -> 30 spikes (num_pl_spikes 13 -> 25, window k = 20) puts xmin below the
     * window's bottom third; 40 -> 20 (26 -> 13, k = 39) keeps xmin in the window but halves
     * the tail. */
    {
        const int64_t rows = 400, cols = 700;
        const int spikes[2][2] = {{20, 30}, {40, 20}};
        o.k_min = 16;
        /* these are large changes: let the warm update converge, to see the fit's triggers */
        o.max_warm_rel = 10.0;
        o.max_passes = 30;
        const at_refresh want[2] = {AT_REFRESH_XMIN_LOW, AT_REFRESH_TAIL};
        for (int c2 = 0; c2 < 2; c2++) {
            at_fast_state *st = at_fast_state_new();
            for (int s2 = 0; s2 < 2; s2++) {
                float *w = fx_spiked(rows, cols, spikes[c2][s2], 12.0, 0.5, 46);
                info = step(c, st, &o, w, rows, cols, 0.001, NULL);
                free(w);
            }
            printf("%d -> %d spikes: mode %s refresh %s\n", spikes[c2][0], spikes[c2][1],
                   at_mode_name(info.mode), at_refresh_name(info.refresh));
            assert_int_equal(info.mode, AT_MODE_GRAM);
            assert_int_equal(info.refresh, want[c2]);
            at_fast_state_free(st);
        }
    }
    /* change: the same jump with the default limit is too large for a warm update */
    {
        at_fast_opts_default(&o);
        at_fast_state *st = at_fast_state_new();
        for (int s2 = 0; s2 < 2; s2++) {
            float *w = fx_spiked(400, 700, s2 ? 30 : 20, 12.0, 0.5, 46);
            info = step(c, st, &o, w, 400, 700, 0.001, NULL);
            free(w);
        }
        assert_true(info.rel_change > o.max_warm_rel);
        assert_int_equal(info.refresh, AT_REFRESH_CHANGE);
        at_fast_state_free(st);
    }
    /* large: a 200-wide layer cannot hold a block of 80 within 0.3 x 200 */
    {
        o.k_min = 64;
        float *w = fx_spiked(200, 300, 10, 8.0, 0.7, 44);
        at_fast_state *st = at_fast_state_new();
        info = step(c, st, &o, w, 200, 300, 0.01, NULL);
        assert_int_equal(info.refresh, AT_REFRESH_FIRST);
        assert_int_equal(info.b, 0);
        fx_perturb(w, 200, 300, 1e-3, 45);
        info = step(c, st, &o, w, 200, 300, 0.01, NULL);
        assert_int_equal(info.refresh, AT_REFRESH_LARGE);
        assert_int_equal(info.mode, AT_MODE_GRAM);
        at_fast_state_free(st);
        free(w);
    }
    /* large, by the cost model: a layer that keeps its vectors under the default horizon keeps
     * none when no snapshot is expected after this one (horizon 0), nor when warm updates are
     * expected but a heavy tail (b = 0.29 x 200) makes a warm pass cost about as much as the
     * spectrum (horizon 1: one saved spectrum does not pay for the vectors) */
    {
        at_fast_opts_default(&o);
        float *w = fx_spiked(400, 700, 20, 12.0, 0.5, 47);
        const int horizons[] = {15, 0};
        for (int h = 0; h < 2; h++) {
            o.horizon = horizons[h];
            at_fast_state *st = at_fast_state_new();
            info = step(c, st, &o, w, 400, 700, 0.001, NULL);
            assert_true(h ? info.b == 0 : info.b > 0);
            fx_perturb(w, 400, 700, 1e-3, 48);
            info = step(c, st, &o, w, 400, 700, 0.001, NULL);
            assert_int_equal(info.mode, h ? AT_MODE_GRAM : AT_MODE_WARM);
            assert_int_equal(info.refresh, h ? AT_REFRESH_LARGE : AT_REFRESH_NONE);
            at_fast_state_free(st);
        }
        free(w);
        at_fast_opts_default(&o);
        o.k_min = 36;
        o.horizon = 1;
        w = fx_spiked(200, 300, 10, 8.0, 0.7, 44);
        at_fast_state *st = at_fast_state_new();
        info = step(c, st, &o, w, 200, 300, 0.01, NULL);
        assert_int_equal(info.b, 0);
        o.horizon = 15;
        at_fast_state_free(st);
        st = at_fast_state_new();
        info = step(c, st, &o, w, 200, 300, 0.01, NULL);
        assert_int_equal(info.b, 45);
        at_fast_state_free(st);
        free(w);
    }
}

/* Unchanged or nearly unchanged weights reuse the last computed result; the change is measured
 * against that result's snapshot, so many tiny steps add up and are not skipped forever. */
static void test_skip(void **state)
{
    ctx *c = *state;
    const int64_t rows = 300, cols = 450;
    float *w = fx_spiked(rows, cols, 20, 8.0, 0.7, 51);
    at_fast_state *st = at_fast_state_new();
    at_tensor t = fx_tensor(w, rows, cols);
    at_metrics m0, m;
    at_fast_info info;
    assert_int_equal(at_fast_analyze(c->fast, st, &t, NULL, NULL, &m0, &info), AT_OK);
    assert_int_equal(info.mode, AT_MODE_GRAM);
    assert_true(isnan(info.rel_change));
    assert_int_equal(at_fast_analyze(c->fast, st, &t, NULL, NULL, &m, &info), AT_OK);
    assert_int_equal(info.mode, AT_MODE_SKIPPED);
    assert_int_equal(m.mode, AT_MODE_SKIPPED);
    assert_true(info.rel_change == 0.0);
    assert_true(m.alpha == m0.alpha && m.xmin == m0.xmin && m.norm == m0.norm);
    int skipped = 0, computed = 0;
    for (int i = 0; i < 40; i++) {
        fx_perturb(w, rows, cols, 5e-6, 60 + (uint64_t)i);
        assert_int_equal(at_fast_analyze(c->fast, st, &t, NULL, NULL, &m, &info), AT_OK);
        if (info.mode == AT_MODE_SKIPPED) {
            skipped++;
            assert_true(info.rel_change < 1e-5);
        } else {
            computed++;
            assert_true(info.rel_change >= 1e-5);
        }
    }
    printf("40 steps of 5e-6: %d skipped, %d computed\n", skipped, computed);
    assert_true(skipped >= 10 && computed >= 2);
    /* a larger step is computed */
    fx_perturb(w, rows, cols, 1e-3, 99);
    assert_int_equal(at_fast_analyze(c->fast, st, &t, NULL, NULL, &m, &info), AT_OK);
    assert_int_equal(info.mode, AT_MODE_WARM);
    at_fast_state_free(st);
    free(w);
}

/* Bad input: a clear error, the state untouched (the next snapshot is still warm). */
static void test_bad_input(void **state)
{
    ctx *c = *state;
    const int64_t rows = 300, cols = 450;
    float *w = fx_spiked(rows, cols, 20, 8.0, 0.7, 71);
    at_fast_state *st = at_fast_state_new();
    at_fast_info info;
    step(c, st, NULL, w, rows, cols, 0.01, NULL);
    float *bad = malloc((size_t)(rows * cols) * sizeof(float));
    memcpy(bad, w, (size_t)(rows * cols) * sizeof(float));
    bad[17] = NAN;
    at_tensor t = fx_tensor(bad, rows, cols);
    at_metrics m;
    assert_int_equal(at_fast_analyze(c->fast, st, &t, NULL, NULL, &m, &info), AT_ERR_NONFINITE);
    assert_non_null(strstr(at_fast_last_error(c->fast), "NaN"));
    memset(bad, 0, (size_t)(rows * cols) * sizeof(float));
    assert_int_equal(at_fast_analyze(c->fast, st, &t, NULL, NULL, &m, &info), AT_ERR_EMPTY);
    t.ndim = 3;
    assert_int_equal(at_fast_analyze(c->fast, st, &t, NULL, NULL, &m, &info), AT_ERR_ARG);
    fx_perturb(w, rows, cols, 1e-3, 72);
    info = step(c, st, NULL, w, rows, cols, 0.001, NULL);
    assert_int_equal(info.mode, AT_MODE_WARM);
    /* too few eigenvalues: skipped status, no error */
    at_tensor small = fx_tensor(w, 8, 100);
    assert_int_equal(at_fast_analyze(c->fast, NULL, &small, NULL, NULL, &m, &info), AT_OK);
    assert_int_equal(m.status, AT_FIT_SKIPPED);
    assert_int_equal(m.M, 8);
    at_fast_state_free(st);
    free(bad);
    free(w);
}

/* x as bfloat16 bits, rounded to nearest even. */
static uint16_t to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* A cold BF16 layer read in panels (panel_bytes below its float32 size: one row or column per
 * panel, then many) gives the whole copy's results up to float32 roundoff, tall and wide, and
 * leaves a state the next snapshot updates warm; F32 layers are never read in panels; a NaN or
 * all-zero layer read in panels is the same error. */
static void test_panels(void **state)
{
    ctx *c = *state;
    for (int wide = 0; wide <= 1; wide++) {
        const int64_t rows = wide ? 300 : 400, cols = wide ? 400 : 300;
        float *w = fx_spiked(rows, cols, 30, 10.0, 0.7, 91 + (uint64_t)wide);
        const size_t count = (size_t)(rows * cols);
        uint16_t *bf = malloc(count * sizeof *bf);
        assert_non_null(bf);
        for (size_t i = 0; i < count; i++)
            bf[i] = to_bf16(w[i]);
        at_tensor t = fx_tensor(w, rows, cols);
        t.data = bf;
        t.dtype = AT_DTYPE_BF16;
        at_fast_opts whole, panels;
        at_fast_opts_default(&whole);
        whole.panel_bytes = 0;
        at_metrics mw, mp;
        at_fast_info iw, ip;
        at_fast_state *sw = at_fast_state_new(), *sp = at_fast_state_new();
        assert_int_equal(at_fast_analyze(c->fast, sw, &t, &whole, NULL, &mw, &iw), AT_OK);
        for (size_t bytes = 4096; bytes <= 200000; bytes *= 48) {
            panels = whole;
            panels.panel_bytes = bytes;
            at_fast_state_free(sp);
            sp = at_fast_state_new();
            assert_int_equal(at_fast_analyze(c->fast, sp, &t, &panels, NULL, &mp, &ip), AT_OK);
            assert_int_equal(mp.N, mw.N);
            assert_int_equal(mp.M, mw.M);
            assert_int_equal(mp.num_evals, mw.num_evals);
            assert_int_equal(mp.status, mw.status);
            assert_int_equal(ip.mode, AT_MODE_GRAM);
            assert_true(fabs(mp.lambda_max - mw.lambda_max) <= 1e-5 * mw.lambda_max);
            assert_true(fabs(mp.alpha - mw.alpha) <= 1e-3);
            assert_true(fabs(mp.log_norm - mw.log_norm) <= 1e-5);
        }
        /* The next snapshot, from the panels' state and from the whole copy's. */
        fx_perturb(w, rows, cols, 1e-3, 7);
        for (size_t i = 0; i < count; i++)
            bf[i] = to_bf16(w[i]);
        assert_int_equal(at_fast_analyze(c->fast, sw, &t, &whole, NULL, &mw, &iw), AT_OK);
        assert_int_equal(at_fast_analyze(c->fast, sp, &t, &panels, NULL, &mp, &ip), AT_OK);
        assert_int_equal(ip.mode, iw.mode);
        assert_true(fabs(mp.alpha - mw.alpha) <= 1e-3);
        /* Bad weights read in panels: the same errors as read whole. */
        at_fast_state_free(sp);
        sp = at_fast_state_new();
        bf[count / 2] = 0x7fc0; /* NaN */
        assert_int_equal(at_fast_analyze(c->fast, sp, &t, &panels, NULL, &mp, &ip),
                         AT_ERR_NONFINITE);
        assert_string_equal(at_fast_last_error(c->fast), "weights contain 1 NaN and 0 Inf values");
        memset(bf, 0, count * sizeof *bf);
        assert_int_equal(at_fast_analyze(c->fast, sp, &t, &panels, NULL, &mp, &ip), AT_ERR_EMPTY);
        /* float32 weights are used in place, never read in panels: the same bits. */
        t = fx_tensor(w, rows, cols);
        assert_int_equal(at_fast_analyze(c->fast, NULL, &t, &whole, NULL, &mw, &iw), AT_OK);
        assert_int_equal(at_fast_analyze(c->fast, NULL, &t, &panels, NULL, &mp, &ip), AT_OK);
        assert_memory_equal(&mw, &mp, sizeof mw);
        at_fast_state_free(sw);
        at_fast_state_free(sp);
        free(bf);
        free(w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle_cold),   cmocka_unit_test(test_warm_perturbed),
        cmocka_unit_test(test_warm_training), cmocka_unit_test(test_triggers),
        cmocka_unit_test(test_skip),          cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_panels),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
