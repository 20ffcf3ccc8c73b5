/* SPDX-License-Identifier: Apache-2.0 */
/* Replays of recorded runs (tests/data/phase). grok_*: written by dump_metrics.py from
 * examples/torch_grokking.py --dump (seeds 0 and 1; a snapshot every 2000 steps, the seed-1
 * control every 4000): the collapse rule stops each no-weight-decay run after its test-accuracy
 * peak and before a 5-point drop, and never stops a weight-decay control although its layers
 * go burnt and show traps. grok_s*_healthy: ordinary healthy runs (PyTorch defaults: init x1,
 * AdamW lr 1e-3, weight decay 0.01, 100k steps) whose weight norm grows as steadily as a
 * collapse run's while test accuracy holds: never stopped, though they would be without the
 * detector's growth-weighted alpha condition. c_trainer_wd1: the C example (modular addition,
 * AdamW weight decay 1.0) as `alphatop watch --headless` saw it, converted by
 * headless_to_fixture.py: a healthy grokking run that must not be stopped. modular_s0_*: the
 * one-layer transformer of examples/torch_modular.py (p 59, 30 % of pairs, a snapshot every
 * 100 steps) as the monitor saw it: with weight decay 1 it memorises at once (burnt layers
 * before any generalization: over-fit) and its grokking phase must start within 500 steps of
 * test accuracy 0.9 (seed 0, and seed 4 recorded after the rule was set); without weight decay it
 * never generalises and its norm grows with flat alphas, which must not count as a collapse. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"

typedef struct outcome {
    at_stop_rules *rules;
    at_phase_tracker *t;
    int64_t stop_step;
    double acc_at_stop;
    at_run_phase phases[16];
    int64_t phase_since[16];
    size_t n_phases;
    int burnt_seen;
    int64_t max_traps;
} outcome;

static int on_snapshot(int64_t step, const at_phase_event *ev, size_t n, void *user)
{
    outcome *o = user;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].kind == AT_EVENT_RUN_PHASE && o->n_phases < 16) {
            o->phases[o->n_phases] = (at_run_phase)ev[i].to;
            o->phase_since[o->n_phases++] = ev[i].since_step;
        }
        if (ev[i].kind == AT_EVENT_LAYER_PHASE && ev[i].to == AT_LAYER_BURNT)
            o->burnt_seen = 1;
    }
    for (size_t i = 0; i < at_phase_tracker_num_layers(o->t); i++) {
        at_layer_state l;
        at_phase_tracker_layer(o->t, i, &l);
        if (l.num_traps > o->max_traps)
            o->max_traps = l.num_traps;
    }
    at_stop_verdict v;
    if (o->stop_step < 0 && at_stop_rules_eval(o->rules, o->t, &v) == 1) {
        o->stop_step = step;
        at_phase_tracker_scalar(o->t, "test_acc", &o->acc_at_stop, NULL, NULL);
    }
    return 0;
}

/* Peak of test_acc, and the first later step 5 points below it (-1 if never). */
static void accuracy_curve(const fixture *f, double *peak, int64_t *peak_step, int64_t *drop5)
{
    *peak = -1;
    *drop5 = -1;
    for (size_t i = 0; i < f->n; i++)
        if (f->r[i].kind == 'S' && !strcmp(f->r[i].name, "test_acc") && f->r[i].value > *peak) {
            *peak = f->r[i].value;
            *peak_step = f->r[i].step;
        }
    for (size_t i = 0; i < f->n && *drop5 < 0; i++)
        if (f->r[i].kind == 'S' && !strcmp(f->r[i].name, "test_acc") && f->r[i].step > *peak_step &&
            f->r[i].value <= *peak - 0.05)
            *drop5 = f->r[i].step;
}

static fixture *load(const char *name)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/phase/%s", AT_DATA_DIR, name);
    fixture *f = fixture_load(path, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    return f;
}

static void replay(const fixture *f, const at_phase_opts *opts, outcome *o)
{
    memset(o, 0, sizeof *o);
    o->stop_step = -1;
    assert_int_equal(at_stop_rules_parse("collapse", &o->rules, NULL, 0), AT_OK);
    o->t = at_phase_tracker_new(opts);
    assert_non_null(o->t);
    assert_int_equal(fixture_replay(f->r, f->n, o->t, on_snapshot, o), AT_OK);
}

static void finish(outcome *o)
{
    at_phase_tracker_free(o->t);
    at_stop_rules_free(o->rules);
}

/* The accuracy curve is the recording's own; every > 0 replays only every-th step's snapshot. */
static void check_collapse_run(const char *name, int64_t every)
{
    fixture *f = load(name);
    double peak;
    int64_t peak_step = -1, drop5;
    accuracy_curve(f, &peak, &peak_step, &drop5);
    assert_true(drop5 > 0); /* the recorded run does collapse */
    if (every > 0)
        fixture_thin(f, every);
    outcome o;
    replay(f, NULL, &o);
    print_message("%s (every %lld): test_acc peak %.3f at %lld, -5 points at %lld, stop at %lld "
                  "(%.3f)\n",
                  name, (long long)every, peak, (long long)peak_step, (long long)drop5,
                  (long long)o.stop_step, o.acc_at_stop);
    assert_true(o.stop_step > peak_step);
    assert_true(o.stop_step < drop5);
    assert_true(o.acc_at_stop > peak - 0.05);
    /* phases in order: pre-grokking, grokking (before the peak), collapse */
    assert_true(o.n_phases >= 3);
    assert_int_equal(o.phases[0], AT_RUN_PRE_GROKKING);
    assert_int_equal(o.phases[1], AT_RUN_GROKKING);
    assert_true(o.phase_since[1] < peak_step);
    assert_int_equal(o.phases[o.n_phases - 1], AT_RUN_COLLAPSE);
    finish(&o);
    fixture_free(f);
}

static void check_never_stops(const char *name, int hard)
{
    fixture *f = load(name);
    outcome o;
    replay(f, NULL, &o);
    /* the hard part is present in the controls: burnt layers and traps, yet no stop */
    if (hard) {
        assert_true(o.burnt_seen);
        assert_true(o.max_traps >= 5);
    }
    assert_int_equal(o.stop_step, -1);
    for (size_t i = 0; i < o.n_phases; i++)
        assert_int_not_equal(o.phases[i], AT_RUN_COLLAPSE);
    finish(&o);
    fixture_free(f);
}

/* A healthy run with a steadily growing norm: not stopped, but stopped once the growth-weighted
 * alpha condition is off (so the fixture does test that condition). */
static void check_healthy_growth(const char *name)
{
    check_never_stops(name, 0);
    fixture *f = load(name);
    at_phase_opts opts;
    at_phase_opts_default(&opts);
    opts.collapse_alpha_min = 0.0;
    outcome o;
    replay(f, &opts, &o);
    print_message("%s: without the alpha condition, stop at %lld\n", name, (long long)o.stop_step);
    assert_true(o.stop_step > 0);
    finish(&o);
    fixture_free(f);
}

static void test_healthy_seed0_never_stops(void **state)
{
    (void)state;
    check_healthy_growth("grok_s0_healthy.txt");
}

static void test_healthy_seed1_never_stops(void **state)
{
    (void)state;
    check_healthy_growth("grok_s1_healthy.txt");
}

static void test_no_wd_seed0_collapses(void **state)
{
    (void)state;
    check_collapse_run("grok_s0_wd0.txt", 0);
}

static void test_wd_seed0_never_stops(void **state)
{
    (void)state;
    check_never_stops("grok_s0_wd01.txt", 1);
}

static void test_no_wd_seed1_collapses(void **state)
{
    (void)state;
    check_collapse_run("grok_s1_wd0.txt", 0);
}

/* A snapshot every 4000 steps instead of 2000: the stop still lies between the peak and the
 * 5-point drop (spans and confirmation are shares of the run, not snapshot counts). */
static void test_no_wd_sparse_snapshots(void **state)
{
    (void)state;
    check_collapse_run("grok_s0_wd0.txt", 4000);
    check_collapse_run("grok_s1_wd0.txt", 4000);
}

static void test_wd_seed1_never_stops(void **state)
{
    (void)state;
    check_never_stops("grok_s1_wd01.txt", 1);
}

static void test_c_trainer_never_stops(void **state)
{
    (void)state;
    check_never_stops("c_trainer_wd1.txt", 0);
}

/* First step at which scalar name reaches at least x (-1 if never). */
static int64_t first_reaching(const fixture *f, const char *name, double x)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->r[i].kind == 'S' && !strcmp(f->r[i].name, name) && f->r[i].value >= x)
            return f->r[i].step;
    return -1;
}

/* A transformer run with weight decay: memorised, over-fit, then grokking with the test
 * accuracy's jump; never stopped. every > 0 replays only every-th step's snapshot. */
static void check_modular_grokking(const char *name, int64_t every)
{
    fixture *f = load(name);
    int64_t memorised = first_reaching(f, "train_acc", 0.99);
    int64_t grokked = first_reaching(f, "test_acc", 0.9);
    assert_true(memorised > 0 && memorised < 500 && grokked > 2000);
    if (every > 0)
        fixture_thin(f, every);
    outcome o;
    replay(f, NULL, &o);
    print_message("%s (every %lld): memorised at %lld, test_acc >= 0.9 at %lld, "
                  "grokking since %lld\n",
                  name, (long long)every, (long long)memorised, (long long)grokked,
                  (long long)(o.n_phases == 3 ? o.phase_since[2] : -1));
    assert_int_equal(o.n_phases, 3);
    assert_int_equal(o.phases[0], AT_RUN_PRE_GROKKING);
    assert_int_equal(o.phases[1], AT_RUN_OVERFIT);
    assert_true(o.phase_since[1] < 1000);
    assert_int_equal(o.phases[2], AT_RUN_GROKKING);
    assert_true(llabs(o.phase_since[2] - grokked) <= 500);
    assert_true(o.burnt_seen);
    assert_int_equal(o.stop_step, -1);
    finish(&o);
    fixture_free(f);
}

static void test_modular_grokking(void **state)
{
    (void)state;
    check_modular_grokking("modular_s0_wd1.txt", 0);
    check_modular_grokking("modular_s0_wd1.txt", 200);
}

/* Seed 4, recorded after the cleanup's threshold was set (docs/detection.md: the margin of
 * the 0.06): grokking since 2700 (test accuracy 0.50), 0.9 at 3100. */
static void test_modular_held_out_grokking(void **state)
{
    (void)state;
    check_modular_grokking("modular_s4_wd1.txt", 0);
    check_modular_grokking("modular_s4_wd1.txt", 200);
}

/* The transformer run without weight decay: memorised, never generalising (test accuracy at
 * chance); its norm grows steadily with flat alphas, yet no collapse: it never grokked. */
static void test_modular_memorising_never_stops(void **state)
{
    (void)state;
    check_never_stops("modular_s0_wd0.txt", 0);
    fixture *f = load("modular_s0_wd0.txt");
    outcome o;
    replay(f, NULL, &o);
    assert_int_equal(o.n_phases, 2);
    assert_int_equal(o.phases[1], AT_RUN_OVERFIT);
    at_run_state run;
    at_phase_tracker_run(o.t, &run);
    assert_string_equal(run.collapse_evidence,
                        "no collapse: the run has not grokked (no generalization to lose)");
    finish(&o);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_wd_seed0_collapses),
        cmocka_unit_test(test_wd_seed0_never_stops),
        cmocka_unit_test(test_no_wd_seed1_collapses),
        cmocka_unit_test(test_wd_seed1_never_stops),
        cmocka_unit_test(test_no_wd_sparse_snapshots),
        cmocka_unit_test(test_c_trainer_never_stops),
        cmocka_unit_test(test_healthy_seed0_never_stops),
        cmocka_unit_test(test_healthy_seed1_never_stops),
        cmocka_unit_test(test_modular_grokking),
        cmocka_unit_test(test_modular_held_out_grokking),
        cmocka_unit_test(test_modular_memorising_never_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
