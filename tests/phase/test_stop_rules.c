/* SPDX-License-Identifier: Apache-2.0 */
/* Stop rules: parsing (and its error messages), and each rule on crafted sequences. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"

static void test_parse_valid(void **state)
{
    (void)state;
    at_stop_rules *r = NULL;
    char err[256] = "";
    assert_int_equal(at_stop_rules_parse(" collapse , burnt:0.5,mean-alpha-below:2,"
                                         "scalar:test-acc-drop:0.05",
                                         &r, err, sizeof err),
                     AT_OK);
    assert_int_equal(at_stop_rules_count(r), 4);
    assert_string_equal(at_stop_rules_text(r, 0), "collapse");
    assert_string_equal(at_stop_rules_text(r, 1), "burnt:0.5");
    assert_string_equal(at_stop_rules_text(r, 2), "mean-alpha-below:2");
    /* the name may itself contain '-': the last "-drop:" splits */
    assert_string_equal(at_stop_rules_text(r, 3), "scalar:test-acc-drop:0.05");
    assert_null(at_stop_rules_text(r, 4));
    /* rules accumulate across calls, as with repeated --stop-on */
    assert_int_equal(at_stop_rules_add(r, "burnt:1", err, sizeof err), AT_OK);
    assert_int_equal(at_stop_rules_count(r), 5);
    at_stop_rules_free(r);
    at_stop_rules_free(NULL);
}

static void expect_error(const char *spec, const char *needle)
{
    at_stop_rules *r = NULL;
    char err[256] = "";
    assert_int_equal(at_stop_rules_parse(spec, &r, err, sizeof err), AT_ERR_ARG);
    assert_null(r);
    if (!strstr(err, needle))
        fail_msg("spec '%s': error '%s' lacks '%s'", spec, err, needle);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_error("colapse", "unknown stop rule 'colapse' (expected collapse, burnt:FRACTION");
    expect_error("burnt:1.5", "stop rule 'burnt:1.5': FRACTION must be a number in (0, 1]");
    expect_error("burnt:", "got ''");
    expect_error("burnt:half", "got 'half'");
    expect_error("mean-alpha-below:-1", "X must be a positive number");
    expect_error("mean-alpha-below:2x", "got '2x'");
    expect_error("scalar:test_acc", "expected scalar:NAME-drop:X");
    expect_error("scalar:-drop:0.1", "expected scalar:NAME-drop:X");
    expect_error("scalar:acc-drop:0", "X must be a positive number");
    expect_error("collapse,,burnt:0.5", "empty stop rule in 'collapse,,burnt:0.5'");
    expect_error("", "empty stop rule");
    expect_error("burnt:nan", "got 'nan'");

    /* a failed add leaves the list as it was */
    at_stop_rules *r = at_stop_rules_new();
    assert_int_equal(at_stop_rules_add(r, "collapse", NULL, 0), AT_OK);
    assert_int_equal(at_stop_rules_add(r, "burnt:0.5,bogus", NULL, 0), AT_ERR_ARG);
    assert_int_equal(at_stop_rules_count(r), 1);
    at_stop_rules_free(r);
}

/* Two layers fed at steps 1000.. with the given alphas (and test_acc when acc is given);
 * returns the first step a rule fired (-1 if none) with its verdict in *v. */
static int64_t first_stop(const char *spec, const double *a1, const double *a2, size_t n,
                          const double *acc, at_stop_verdict *v)
{
    at_stop_rules *r = NULL;
    char err[256];
    assert_int_equal(at_stop_rules_parse(spec, &r, err, sizeof err), AT_OK);
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    int64_t fired = -1;
    for (size_t i = 0; i < n && fired < 0; i++) {
        int64_t step = 1000 * (int64_t)(i + 1);
        fx_record x = fixture_layer(step, "fc1", 64, a1[i], 3.0, 0);
        fx_record y = fixture_layer(step, "fc2", 200, a2[i], 3.0, 0);
        assert_int_equal(at_phase_tracker_feed_layer(t, step, x.name, &x.m, NAN), AT_OK);
        assert_int_equal(at_phase_tracker_feed_layer(t, step, y.name, &y.m, NAN), AT_OK);
        if (acc)
            assert_int_equal(at_phase_tracker_feed_scalar(t, step, "test_acc", acc[i]), AT_OK);
        assert_int_equal(at_phase_tracker_end_snapshot(t, step, NULL, NULL), AT_OK);
        if (at_stop_rules_eval(r, t, v) == 1)
            fired = step;
    }
    at_phase_tracker_free(t);
    at_stop_rules_free(r);
    return fired;
}

static void test_burnt_rule(void **state)
{
    (void)state;
    const double a1[] = {3, 3, 3, 1.8, 1.8, 1.8, 1.8, 1.8, 1.8, 1.8};
    const double a2[] = {3, 3, 3, 3, 3, 1.5, 1.5, 1.5, 1.5, 1.5};
    at_stop_verdict v;
    /* fc1 burnt since 4000, confirmed at 6000 */
    assert_int_equal(first_stop("burnt:0.5", a1, a2, 10, NULL, &v), 6000);
    assert_string_equal(v.rule, "burnt:0.5");
    assert_int_equal(v.step, 6000);
    assert_string_equal(v.evidence, "1 of 2 layers burnt (alpha < 2): fc1 alpha 1.80 since 4000");
    /* both layers: fc2 burnt since 6000, confirmed at 8000 */
    assert_int_equal(first_stop("burnt:1", a1, a2, 10, NULL, &v), 8000);
    assert_non_null(strstr(v.evidence, "2 of 2 layers burnt"));
    /* healthy all along: never */
    const double h[] = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3};
    assert_int_equal(first_stop("burnt:0.5", h, h, 10, NULL, &v), -1);
}

static void test_mean_alpha_rule(void **state)
{
    (void)state;
    /* mean 2.5, one snapshot at 1.75 (ignored), then 1.75 from 6000 on */
    const double a1[] = {3, 3, 1.5, 3, 3, 1.5, 1.5, 1.5, 1.5, 1.5};
    const double a2[] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
    at_stop_verdict v;
    assert_int_equal(first_stop("mean-alpha-below:2", a1, a2, 10, NULL, &v), 8000);
    assert_string_equal(v.evidence, "mean alpha 1.750 below 2 for 3 snapshots in a row");
    assert_int_equal(first_stop("mean-alpha-below:1.7", a1, a2, 10, NULL, &v), -1);
}

static void test_scalar_rule(void **state)
{
    (void)state;
    const double a[] = {3, 3, 3, 3, 3, 3, 3, 3};
    const double acc[] = {0.4, 0.9, 0.97, 0.95, 0.93, 0.91, 0.90, 0.89};
    at_stop_verdict v;
    assert_int_equal(first_stop("scalar:test_acc-drop:0.05", a, a, 8, acc, &v), 6000);
    assert_string_equal(v.rule, "scalar:test_acc-drop:0.05");
    assert_string_equal(v.evidence, "test_acc 0.91 is 0.06 below its peak 0.97 at step 3000");
    /* a scalar never logged never fires */
    assert_int_equal(first_stop("scalar:val_acc-drop:0.01", a, a, 8, acc, &v), -1);
    /* rules combine: the first that holds is reported */
    assert_int_equal(first_stop("burnt:0.5,scalar:test_acc-drop:0.015", a, a, 8, acc, &v), 4000);
    assert_string_equal(v.rule, "scalar:test_acc-drop:0.015");
}

/* The collapse rule on crafted sequences: two trained layers, fc1 (64 eigenvalues) and fc2
 * (200), each with a constant alpha and a log_norm rising by `grow` per snapshot, one snapshot
 * every 1000 steps. */
typedef struct crafted {
    double alpha1, alpha2; /* per layer */
    double grow1, grow2;   /* log10 norm per snapshot, per layer */
    double alpha_slope;    /* added to both alphas per snapshot */
    double wobble;         /* added to both log_norms on odd snapshots */
    double alpha_min;      /* opts.collapse_alpha_min; negative: the default (2.8) */
} crafted;

static int64_t collapse_step(const crafted *c, at_stop_verdict *v, char *why, size_t whylen)
{
    at_stop_rules *r = NULL;
    assert_int_equal(at_stop_rules_parse("collapse", &r, NULL, 0), AT_OK);
    at_phase_opts o;
    at_phase_opts_default(&o);
    if (c->alpha_min >= 0)
        o.collapse_alpha_min = c->alpha_min;
    at_phase_tracker *t = at_phase_tracker_new(&o);
    assert_non_null(t);
    int64_t fired = -1;
    for (int i = 0; i < 40 && fired < 0; i++) {
        int64_t step = 1000 * (int64_t)(i + 1);
        double w = i % 2 ? c->wobble : 0.0;
        fx_record x = fixture_layer(step, "fc1", 64, c->alpha1 + c->alpha_slope * i,
                                    4.0 + c->grow1 * i + w, 0);
        fx_record y = fixture_layer(step, "fc2", 200, c->alpha2 + c->alpha_slope * i,
                                    4.0 + c->grow2 * i + w, 0);
        assert_int_equal(at_phase_tracker_feed_layer(t, step, x.name, &x.m, NAN), AT_OK);
        assert_int_equal(at_phase_tracker_feed_layer(t, step, y.name, &y.m, NAN), AT_OK);
        assert_int_equal(at_phase_tracker_end_snapshot(t, step, NULL, NULL), AT_OK);
        if (at_stop_rules_eval(r, t, v) == 1)
            fired = step;
    }
    if (why) {
        at_run_state run;
        at_phase_tracker_run(t, &run);
        snprintf(why, whylen, "%s", run.collapse_evidence);
    }
    at_phase_tracker_free(t);
    at_stop_rules_free(r);
    return fired;
}

static void test_collapse_rule(void **state)
{
    (void)state;
    at_stop_verdict v;
    char why[300];
    crafted inflate = {3.5, 3.5, 0.004, 0.004, 0.0, 0.0, -1};
    /* layers known from 3000, the run grokking from 5000 (3 snapshots at weighted alpha <= 4);
     * a collapse needs a run that grokked before the snapshot, so the conditions count from
     * 6000, and 3 snapshots in a row that also cover 15 % of the steps: 8000 */
    assert_int_equal(collapse_step(&inflate, &v, NULL, 0), 8000);
    assert_string_equal(v.rule, "collapse");
    assert_non_null(strstr(v.evidence, "collapse since step 6000: weight norm +"));
    assert_non_null(strstr(v.evidence, "alphas are flat"));
    assert_non_null(strstr(v.evidence, "growing layers at alpha 3.50"));

    crafted grokking = inflate;
    grokking.alpha_slope = -0.05;
    assert_int_equal(collapse_step(&grokking, &v, why, sizeof why), -1);
    assert_non_null(strstr(why, "alphas still moving"));

    crafted bounded = inflate;
    bounded.wobble = -0.01;
    assert_int_equal(collapse_step(&bounded, &v, why, sizeof why), -1);
    assert_non_null(strstr(why, "no collapse: weight norm")); /* not growing, or not steady */
}

/* Growth in heavy-tailed layers (alpha near 2, as in an ordinary healthy run) is not a
 * collapse; what counts is the alpha of the layers that grow, weighted by their growth. */
static void test_collapse_needs_growth_outside_heavy_tails(void **state)
{
    (void)state;
    at_stop_verdict v;
    char why[300];
    crafted heavy = {2.1, 2.1, 0.004, 0.004, 0.0, 0.0, -1};
    assert_int_equal(collapse_step(&heavy, &v, why, sizeof why), -1);
    assert_non_null(strstr(why, "heavy-tailed layers (alpha 2.10 < 2.80)"));
    heavy.alpha_min = 0.0; /* the condition turned off: the same run is stopped */
    assert_int_equal(collapse_step(&heavy, &v, NULL, 0), 8000);

    /* fc1 sits at 3.5 but does not grow; fc2 grows at 2.0: no collapse */
    crafted fc2_grows = {3.5, 2.0, 0.0, 0.006, 0.0, 0.0, -1};
    assert_int_equal(collapse_step(&fc2_grows, &v, why, sizeof why), -1);
    assert_non_null(strstr(why, "alpha 2.00 < 2.80"));

    /* the other way round: the growing layer is at 3.5 */
    crafted fc1_grows = {3.5, 2.0, 0.006, 0.0, 0.0, 0.0, -1};
    assert_int_equal(collapse_step(&fc1_grows, &v, NULL, 0), 8000);
    assert_non_null(strstr(v.evidence, "growing layers at alpha 3.50"));
}

/* No generalization, nothing to collapse: trained layers whose weighted alpha stays above
 * grokking_alpha (the run never groks) inflate exactly like a collapse, and are not stopped. */
static void test_collapse_needs_a_grokked_run(void **state)
{
    (void)state;
    at_stop_verdict v;
    char why[300];
    crafted never = {4.5, 4.5, 0.004, 0.004, 0.0, 0.0, -1};
    assert_int_equal(collapse_step(&never, &v, why, sizeof why), -1);
    assert_string_equal(why, "no collapse: the run has not grokked (no generalization to lose)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_burnt_rule),
        cmocka_unit_test(test_mean_alpha_rule),
        cmocka_unit_test(test_scalar_rule),
        cmocka_unit_test(test_collapse_rule),
        cmocka_unit_test(test_collapse_needs_growth_outside_heavy_tails),
        cmocka_unit_test(test_collapse_needs_a_grokked_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
