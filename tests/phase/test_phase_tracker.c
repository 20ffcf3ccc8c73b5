/* SPDX-License-Identifier: Apache-2.0 */
/* Per-layer phases, hysteresis, trends and run phases on crafted sequences. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alphatop/rng.h"
#include "fixture.h"

/* Collects the events of a replay. */
typedef struct events {
    at_phase_event e[64];
    size_t n;
} events;

static int collect(int64_t step, const at_phase_event *ev, size_t n, void *user)
{
    (void)step;
    events *out = user;
    for (size_t i = 0; i < n && out->n < 64; i++)
        out->e[out->n++] = ev[i];
    return 0;
}

/* Replays one layer "w" (200 eigenvalues) with the given alphas at steps 1000, 2000, ... */
static void replay_alphas(at_phase_tracker *t, const double *alpha, size_t n, events *out)
{
    static fx_record r[512];
    assert_true(n <= 512);
    for (size_t i = 0; i < n; i++)
        r[i] = fixture_layer((int64_t)(i + 1) * 1000, "w", 200, alpha[i], 3.0, 0);
    out->n = 0;
    assert_int_equal(fixture_replay(r, n, t, collect, out), AT_OK);
}

static size_t layer_events(const events *ev)
{
    size_t k = 0;
    for (size_t i = 0; i < ev->n; i++)
        k += ev->e[i].kind == AT_EVENT_LAYER_PHASE;
    return k;
}

static const at_phase_event *layer_event(const events *ev, size_t which)
{
    for (size_t i = 0; i < ev->n; i++)
        if (ev->e[i].kind == AT_EVENT_LAYER_PHASE && which-- == 0)
            return &ev->e[i];
    return NULL;
}

static void test_transitions_at_right_steps(void **state)
{
    (void)state;
    /* raw for 4 snapshots, healthy for 5, burnt for 4; default confirm = 3 */
    const double a[] = {7.5, 7.4, 7.6, 7.3, 4.0, 3.5, 3.0, 2.6, 2.4, 1.7, 1.6, 1.5, 1.5};
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    events ev;
    replay_alphas(t, a, sizeof a / sizeof *a, &ev);
    assert_int_equal(layer_events(&ev), 3);
    const at_phase_event *e = layer_event(&ev, 0);
    assert_int_equal(e->from, AT_LAYER_UNKNOWN);
    assert_int_equal(e->to, AT_LAYER_RAW);
    assert_int_equal(e->since_step, 1000);
    assert_int_equal(e->step, 3000);
    e = layer_event(&ev, 1);
    assert_int_equal(e->to, AT_LAYER_HEALTHY);
    assert_int_equal(e->since_step, 5000);
    assert_int_equal(e->step, 7000);
    assert_string_equal(e->layer, "w");
    assert_non_null(strstr(e->text, "w: raw -> healthy since step 5000"));
    e = layer_event(&ev, 2);
    assert_int_equal(e->from, AT_LAYER_HEALTHY);
    assert_int_equal(e->to, AT_LAYER_BURNT);
    assert_int_equal(e->since_step, 10000);
    assert_int_equal(e->step, 12000);

    at_layer_state l;
    assert_int_equal(at_phase_tracker_layer(t, 0, &l), AT_OK);
    assert_int_equal(l.phase, AT_LAYER_BURNT);
    assert_int_equal(l.phase_since, 10000);
    assert_int_equal(l.last_step, 13000);
    assert_true(l.alpha == 1.5);
    assert_int_equal(at_phase_tracker_layer(t, 1, &l), AT_ERR_ARG);
    at_phase_tracker_free(t);
}

/* A short excursion across a threshold (fewer than confirm snapshots) changes nothing. */
static void test_short_excursion_ignored(void **state)
{
    (void)state;
    const double a[] = {3.0, 3.0, 3.0, 1.5, 1.5, 3.0, 3.0, 1.5, 3.0, 3.0};
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    events ev;
    replay_alphas(t, a, sizeof a / sizeof *a, &ev);
    assert_int_equal(layer_events(&ev), 1); /* unknown -> healthy only */
    at_phase_tracker_free(t);
}

/* Seeded noise around a threshold: the margin and confirm count keep the phase still, and a
 * real move through the threshold gives exactly one change, dated within the noise. */
static void test_no_flapping_on_noise(void **state)
{
    (void)state;
    at_rng rng;
    at_rng_seed(&rng, 42);
    double a[400];
    for (int i = 0; i < 400; i++) {
        double level = i < 200 ? 2.25 : 1.75;
        a[i] = level + 0.08 * (2.0 * at_rng_uniform(&rng) - 1.0);
    }
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    events ev;
    replay_alphas(t, a, 400, &ev);
    assert_int_equal(layer_events(&ev), 2);
    const at_phase_event *e = layer_event(&ev, 1);
    assert_int_equal(e->to, AT_LAYER_BURNT);
    assert_in_range(e->since_step, 201000, 204000);
    at_phase_tracker_free(t);

    /* Noise centred on the threshold itself, wider than the margin: hysteresis bounds the
     * changes to a handful instead of one every few snapshots. */
    at_rng_seed(&rng, 7);
    for (int i = 0; i < 400; i++)
        a[i] = 2.0 + 0.15 * (2.0 * at_rng_uniform(&rng) - 1.0);
    t = at_phase_tracker_new(NULL);
    replay_alphas(t, a, 400, &ev);
    assert_true(layer_events(&ev) <= 4);
    at_phase_tracker_free(t);
}

static void test_failed_and_skipped(void **state)
{
    (void)state;
    const double a[] = {3.0, 3.0, 3.0, -1, -1, -1};
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    events ev;
    replay_alphas(t, a, 6, &ev);
    assert_int_equal(layer_events(&ev), 2);
    const at_phase_event *e = layer_event(&ev, 1);
    assert_int_equal(e->to, AT_LAYER_FAILED);
    assert_non_null(strstr(e->text, "power-law fit failed"));

    /* a skipped layer is not tracked; a snapshot of skipped layers only is an error */
    at_metrics m;
    memset(&m, 0, sizeof m);
    m.status = AT_FIT_SKIPPED;
    assert_int_equal(at_phase_tracker_feed_layer(t, 7000, "tiny", &m, NAN), AT_OK);
    assert_int_equal(at_phase_tracker_num_layers(t), 1);
    assert_int_equal(at_phase_tracker_end_snapshot(t, 7000, NULL, NULL), AT_ERR_ARG);
    /* steps never go back; bad arguments are refused */
    fx_record r = fixture_layer(5000, "w", 200, 3.0, 3.0, 0);
    assert_int_equal(at_phase_tracker_feed_layer(t, 5000, "w", &r.m, NAN), AT_ERR_ARG);
    assert_int_equal(at_phase_tracker_feed_layer(t, 8000, "", &r.m, NAN), AT_ERR_ARG);
    assert_int_equal(at_phase_tracker_feed_layer(t, 8000, "w", NULL, NAN), AT_ERR_ARG);
    at_phase_tracker_free(t);

    at_phase_opts o;
    at_phase_opts_default(&o);
    o.window = 2;
    assert_null(at_phase_tracker_new(&o));
    at_phase_opts_default(&o);
    o.burnt_below = 7.0;
    assert_null(at_phase_tracker_new(&o));
    at_phase_tracker_free(NULL);
}

/* Slopes are least squares per 1000 steps: exact on linear sequences. */
static void test_trends(void **state)
{
    (void)state;
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    for (int i = 0; i < 12; i++) {
        int64_t step = 2000 * (int64_t)(i + 1);
        fx_record r = fixture_layer(step, "w", 100, 5.0 - 0.01 * i, 2.0 + 0.004 * i, i >= 9);
        assert_int_equal(at_phase_tracker_feed_layer(t, step, "w", &r.m, 1.0 + 0.1 * i), AT_OK);
        assert_int_equal(at_phase_tracker_end_snapshot(t, step, NULL, NULL), AT_OK);
    }
    at_layer_state l;
    assert_int_equal(at_phase_tracker_layer(t, 0, &l), AT_OK);
    assert_float_equal(l.alpha_slope, -0.005, 1e-12); /* -0.01 per 2000 steps */
    assert_float_equal(l.log_norm_slope, 0.002, 1e-12);
    assert_float_equal(l.log_norm, 2.044, 1e-12);
    assert_float_equal(l.max_abs, 2.1, 1e-12);
    assert_float_equal(l.max_abs_growth, 2.1 / 1.2, 1e-12); /* window of 10: from i = 2 */
    assert_int_equal(l.num_traps, 1);
    assert_int_equal(l.traps_since, 20000);

    at_run_state run;
    at_phase_tracker_run(t, &run);
    assert_int_equal(run.snapshots, 12);
    assert_int_equal(run.last_step, 24000);
    assert_int_equal(run.layers, 1);
    assert_float_equal(run.log_norm, 2.044, 1e-12);
    assert_float_equal(run.log_norm_slope, 0.002, 1e-12);
    assert_float_equal(run.log_norm_peak_drop, 0.0, 1e-12);
    assert_float_equal(run.mean_alpha, 4.89, 1e-12);
    assert_float_equal(run.mean_alpha_slope, -0.005, 1e-12);
    at_phase_tracker_free(t);
}

/* Run-phase events of a crafted sequence. */
typedef struct run_events {
    at_run_phase to[8];
    int64_t since[8], step[8];
    size_t n;
} run_events;

/* Feeds layers a and b as one snapshot at a.step and keeps its run-phase events in out. */
static void feed_pair(at_phase_tracker *t, const fx_record *a, const fx_record *b, run_events *out)
{
    assert_int_equal(at_phase_tracker_feed_layer(t, a->step, a->name, &a->m, NAN), AT_OK);
    assert_int_equal(at_phase_tracker_feed_layer(t, b->step, b->name, &b->m, NAN), AT_OK);
    const at_phase_event *ev;
    size_t n;
    assert_int_equal(at_phase_tracker_end_snapshot(t, a->step, &ev, &n), AT_OK);
    for (size_t k = 0; k < n; k++)
        if (ev[k].kind == AT_EVENT_RUN_PHASE && out->n < 8) {
            out->to[out->n] = (at_run_phase)ev[k].to;
            out->since[out->n] = ev[k].since_step;
            out->step[out->n++] = ev[k].step;
        }
}

/* Run phases: raw layers are pre-grokking; trained layers with weighted alpha <= 4 grokking;
 * burnt layers over-fit. The 10-eigenvalue head is outweighed by the 200-eigenvalue body. */
static void test_run_phases(void **state)
{
    (void)state;
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    run_events r = {.n = 0};
    for (int i = 0; i < 30; i++) {
        int64_t step = 1000 * (int64_t)(i + 1);
        double body = i < 5 ? 7.0 : i < 10 ? 4.5 : i < 20 ? 3.0 : 1.5;
        double head = i % 2 ? 9.0 : 3.0; /* noisy small layer, raw every other snapshot */
        fx_record a = fixture_layer(step, "body", 200, body, 3.0, 0);
        fx_record b = fixture_layer(step, "head", 10, head, 1.0, 0);
        feed_pair(t, &a, &b, &r);
    }
    assert_int_equal(r.n, 3);
    assert_int_equal(r.to[0], AT_RUN_PRE_GROKKING);
    assert_int_equal(r.to[1], AT_RUN_GROKKING);
    assert_int_equal(r.since[1], 11000); /* weighted alpha ~3.3 from 11000, confirmed at 13000 */
    assert_int_equal(r.to[2], AT_RUN_OVERFIT);
    assert_int_equal(r.since[2], 23000); /* body burnt from 21000, confirmed at 23000 */
    assert_string_equal(at_run_phase_name(AT_RUN_COLLAPSE), "collapse");
    assert_string_equal(at_layer_phase_name(AT_LAYER_BURNT), "burnt");
    at_phase_tracker_free(t);
}

/* log_norm of a layer of the memorised run below at snapshot i (1-based): flat to 10; then
 * changing by `up` per snapshot to 15 (a restructuring when one layer grows while the other
 * falls faster); then shrinking by 0.02 per snapshot to 30 (weight decay's cleanup); then
 * growing by 0.03, past the earlier maximum (weights inflating in burnt layers). */
static double memorised_log_norm(int i, double up)
{
    double v = 3.0;
    if (i > 10)
        v += up * ((i < 15 ? i : 15) - 10);
    if (i > 15)
        v -= 0.02 * ((i < 30 ? i : 30) - 15);
    if (i > 30)
        v += 0.03 * (i - 30);
    return v;
}

/* A run whose layers are burnt from the start memorised: pre-grokking, then over-fit, and
 * alphas say nothing more. It groks when every layer shrinks and the summed squared norm
 * falls by 0.06 (log10) over a span of 30 % of the steps; one layer growing while the sum
 * falls is not enough. It then stays grokking (the burnt layers predate it), and its burnt
 * layers inflating later are not a collapse (growth-weighted alpha 1.4 < 2.8). */
static void test_memorised_run_groks_by_cleanup(void **state)
{
    (void)state;
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    at_stop_rules *rules = NULL;
    assert_int_equal(at_stop_rules_parse("collapse", &rules, NULL, 0), AT_OK);
    run_events r = {.n = 0};
    for (int i = 1; i <= 60; i++) {
        int64_t step = 1000 * (int64_t)i;
        fx_record a = fixture_layer(step, "a", 128, 1.4, memorised_log_norm(i, 0.03), 0);
        fx_record b = fixture_layer(step, "b", 128, 1.4, memorised_log_norm(i, -0.1), 0);
        feed_pair(t, &a, &b, &r);
        assert_int_equal(at_stop_rules_eval(rules, t, NULL), 0);
    }
    assert_int_equal(r.n, 3);
    assert_int_equal(r.to[0], AT_RUN_PRE_GROKKING);
    assert_int_equal(r.to[1], AT_RUN_OVERFIT);
    assert_int_equal(r.since[1], 3000);
    /* "a" grows until 15000; its least-squares slope over the span (13000..19000, the latest
     * snapshots back to 70 % of the step) turns negative at 19000, when the sum's fit has
     * fallen by 0.1 over the span; 3 snapshots confirm at 21000 */
    assert_int_equal(r.to[2], AT_RUN_GROKKING);
    assert_int_equal(r.since[2], 19000);
    assert_int_equal(r.step[2], 21000);
    at_run_state run;
    at_phase_tracker_run(t, &run);
    assert_int_equal(run.phase, AT_RUN_GROKKING);
    assert_non_null(strstr(run.collapse_evidence, "heavy-tailed layers (alpha 1.40 < 2.80)"));
    at_stop_rules_free(rules);
    at_phase_tracker_free(t);
}

/* The same kind of run shrinking too slowly (0.001 per snapshot) never groks. */
static void test_memorised_run_without_cleanup(void **state)
{
    (void)state;
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    run_events r = {.n = 0};
    for (int i = 1; i <= 45; i++) {
        int64_t step = 1000 * (int64_t)i;
        double down = i <= 15 ? 0.0 : -0.001 * (i - 15);
        fx_record a = fixture_layer(step, "a", 128, 1.4, 3.0 + down, 0);
        fx_record b = fixture_layer(step, "b", 128, 1.4, 3.0 + down, 0);
        feed_pair(t, &a, &b, &r);
    }
    assert_int_equal(r.n, 2);
    assert_int_equal(r.to[1], AT_RUN_OVERFIT);
    assert_int_equal(r.since[1], 3000);
    at_phase_tracker_free(t);
}

/* Grokking since step of a memorised run whose two layers shrink by `rate` (log10) per 1000
 * steps from the first snapshot on (-1: never within 40 snapshots). */
static int64_t cleanup_grokking_since(double rate)
{
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    run_events r = {.n = 0};
    for (int i = 1; i <= 40; i++) {
        int64_t step = 1000 * (int64_t)i;
        fx_record a = fixture_layer(step, "a", 128, 1.4, 3.0 - rate * i, 0);
        fx_record b = fixture_layer(step, "b", 128, 1.4, 2.0 - rate * i, 0);
        feed_pair(t, &a, &b, &r);
    }
    at_phase_tracker_free(t);
    assert_true(r.n >= 2);
    assert_int_equal(r.to[1], AT_RUN_OVERFIT);
    return r.n == 3 && r.to[2] == AT_RUN_GROKKING ? r.since[2] : -1;
}

/* The cleanup's threshold is 0.06 (log10) over the span. The sum falls exactly linearly, so
 * the span's drop is rate x its length: at snapshot i the span reaches back to the latest
 * snapshot at or before 70 % of the step, i - floor(0.7 i) snapshots of 1000 steps (5 at i =
 * 16, 6 at 17-20, 7 at 21-23). At 0.0101 per 1000 steps the drop is 0.0606 from i = 17 on;
 * at 0.0099 it is 0.0594 there and 0.0693 from 21; below 0.06 / 12 (the longest span of 40
 * snapshots) it never reaches 0.06. */
static void test_memorised_cleanup_threshold(void **state)
{
    (void)state;
    assert_int_equal(cleanup_grokking_since(0.0101), 17000);
    assert_int_equal(cleanup_grokking_since(0.0099), 21000);
    assert_int_equal(cleanup_grokking_since(0.0049), -1);
}

static void test_scalars(void **state)
{
    (void)state;
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    const double v[] = {0.5, 0.9, 0.97, 0.95, NAN, 0.91};
    for (int i = 0; i < 6; i++)
        assert_int_equal(at_phase_tracker_feed_scalar(t, 1000 * (i + 1), "test_acc", v[i]), AT_OK);
    double latest, peak;
    int64_t peak_step;
    assert_int_equal(at_phase_tracker_scalar(t, "test_acc", &latest, &peak, &peak_step), 1);
    assert_true(latest == 0.91);
    assert_true(peak == 0.97);
    assert_int_equal(peak_step, 3000);
    assert_int_equal(at_phase_tracker_scalar(t, "loss", NULL, NULL, NULL), 0);
    assert_int_equal(at_phase_tracker_feed_scalar(t, 1, "", 1.0), AT_ERR_ARG);
    at_phase_tracker_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transitions_at_right_steps),
        cmocka_unit_test(test_short_excursion_ignored),
        cmocka_unit_test(test_no_flapping_on_noise),
        cmocka_unit_test(test_failed_and_skipped),
        cmocka_unit_test(test_trends),
        cmocka_unit_test(test_run_phases),
        cmocka_unit_test(test_memorised_run_groks_by_cleanup),
        cmocka_unit_test(test_memorised_run_without_cleanup),
        cmocka_unit_test(test_memorised_cleanup_threshold),
        cmocka_unit_test(test_scalars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
