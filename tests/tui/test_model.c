/* SPDX-License-Identifier: Apache-2.0 */
/* test_model.c -- the view's model: runs, layers, snapshot columns, cells, phase events. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"

static at_metrics metrics(double alpha)
{
    at_metrics m;
    memset(&m, 0, sizeof m);
    m.status = AT_FIT_SUCCESS;
    m.alpha = alpha;
    m.xmin = 2.0;
    m.detx_val = 20.0;
    m.num_traps = 3;
    m.log_norm = 1.5;
    return m;
}

static void test_runs_and_layers(void **state)
{
    (void)state;
    at_model *m = at_model_new();
    assert_non_null(m);
    int r = at_model_add_run(m, "id1", "name", "host");
    assert_int_equal(r, 0);
    assert_int_equal(at_model_add_run(m, "id1", "other", NULL), 0);
    assert_int_equal(at_model_add_run(m, "id2", NULL, NULL), 1);
    assert_int_equal(at_model_add_run(m, "", NULL, NULL), AT_ERR_ARG);
    assert_int_equal(at_model_find_run(m, "id2"), 1);
    assert_int_equal(at_model_find_run(m, "nope"), AT_ERR_NOTFOUND);
    assert_string_equal(at_model_run(m, 0)->name, "name");
    assert_string_equal(at_model_run(m, 1)->host, "");

    int64_t shape[4] = {3, 4, 5, 5};
    assert_int_equal(at_model_add_layer(m, r, "fc1", AT_KIND_LINEAR, 2, shape), 0);
    assert_int_equal(at_model_add_layer(m, r, "conv", AT_KIND_CONV2D, 4, shape), 1);
    assert_int_equal(at_model_add_layer(m, r, "fc1", AT_KIND_LINEAR, 2, shape), 0);
    assert_int_equal(at_model_add_layer(m, 7, "x", AT_KIND_LINEAR, 2, shape), AT_ERR_ARG);
    assert_int_equal(at_model_num_layers(m, r), 2);
    assert_int_equal(at_model_find_layer(m, r, "conv"), 1);
    assert_int_equal(at_model_layer(m, r, 1)->shape[3], 5);
    assert_int_equal(at_model_layer(m, r, 1)->kind, AT_KIND_CONV2D);
    assert_null(at_model_layer(m, r, 2));
    at_model_free(m);
    at_model_free(NULL);
}

static void test_snapshots_sorted(void **state)
{
    (void)state;
    at_model *m = at_model_new();
    int r = at_model_add_run(m, "id", NULL, NULL);
    at_model_add_layer(m, r, "a", AT_KIND_LINEAR, 0, NULL);
    at_model_add_layer(m, r, "b", AT_KIND_LINEAR, 0, NULL);
    at_metrics x = metrics(3.0), y = metrics(4.0);
    assert_true(at_model_add_cell(m, r, 0, AT_SPACE_W, 100, &x) >= 0);
    assert_true(at_model_add_cell(m, r, 1, AT_SPACE_W, 300, &y) >= 0);
    /* a late snapshot goes between the others and shifts the later column */
    assert_int_equal(at_model_add_snapshot(m, r, 200, 5.0), 1);
    assert_int_equal(at_model_num_snapshots(m, r), 3);
    assert_int_equal(at_model_snapshot_step(m, r, 0), 100);
    assert_int_equal(at_model_snapshot_step(m, r, 1), 200);
    assert_int_equal(at_model_snapshot_step(m, r, 2), 300);
    assert_int_equal(at_model_cell(m, r, 1, AT_SPACE_W, 2)->status, AT_FIT_SUCCESS);
    assert_float_equal(at_model_cell(m, r, 1, AT_SPACE_W, 2)->v[AT_METRIC_ALPHA], 4.0, 1e-6);
    assert_int_equal(at_model_cell(m, r, 1, AT_SPACE_W, 1)->status, AT_CELL_EMPTY);
    assert_true(isnan(at_model_cell(m, r, 1, AT_SPACE_W, 1)->v[AT_METRIC_ALPHA]));
    assert_int_equal(at_model_add_snapshot(m, r, 200, 1.0), 1); /* found, not added */
    assert_float_equal(at_model_run(m, r)->last_snapshot_time, 5.0, 0);
    assert_int_equal(at_model_run(m, r)->step, 300);
    assert_int_equal(at_model_snapshot_at(m, r, 250), 1);
    assert_int_equal(at_model_snapshot_at(m, r, 300), 2);
    assert_int_equal(at_model_snapshot_at(m, r, 50), -1);
    assert_null(at_model_cell(m, r, 0, AT_SPACE_W, 3));
    assert_null(at_model_cell(m, r, 0, AT_SPACE_DELTA, 0)); /* no delta results yet */

    /* growth keeps every cell, including for a layer added later */
    at_model_add_layer(m, r, "c", AT_KIND_LINEAR, 0, NULL);
    for (int k = 0; k < 1000; k++) {
        at_metrics z = metrics(2.0 + k * 0.001);
        assert_true(at_model_add_cell(m, r, 2, AT_SPACE_W, 1000 + k, &z) >= 0);
    }
    assert_int_equal(at_model_num_snapshots(m, r), 1003);
    for (int k = 0; k < 1000; k++)
        assert_float_equal(at_model_cell(m, r, 2, AT_SPACE_W, 3 + k)->v[AT_METRIC_ALPHA],
                           2.0 + k * 0.001, 1e-5);
    assert_float_equal(at_model_cell(m, r, 0, AT_SPACE_W, 0)->v[AT_METRIC_ALPHA], 3.0, 1e-6);
    at_model_free(m);
}

/* Cells carry no phase logic: every phase event comes from core's tracker. */
static void test_phase_events(void **state)
{
    (void)state;
    at_model *m = at_model_new();
    int r = at_model_add_run(m, "id", NULL, NULL);
    at_model_add_layer(m, r, "fc2", AT_KIND_LINEAR, 0, NULL);
    at_metrics a = metrics(3.0), b = metrics(1.5), fail = metrics(NAN), c = metrics(7.0);
    fail.status = AT_FIT_FAILED;
    assert_int_equal(at_model_add_cell(m, r, 0, AT_SPACE_W, 1, &a), AT_OK);
    assert_int_equal(at_model_add_cell(m, r, 0, AT_SPACE_W, 2, &fail), AT_OK);
    assert_int_equal(at_model_add_cell(m, r, 0, AT_SPACE_W, 3, &b), AT_OK);
    assert_int_equal(at_model_add_cell(m, r, 0, AT_SPACE_DELTA, 4, &c), AT_OK);
    assert_int_equal(at_model_add_cell(m, r, 0, AT_SPACE_DELTA, 5, &a), AT_OK);
    assert_int_equal(at_model_num_events(m), 0);
    assert_true(at_model_has_space(m, r, AT_SPACE_DELTA));
    assert_int_equal(at_model_cell(m, r, 0, AT_SPACE_DELTA, 0)->status, AT_CELL_EMPTY);

    /* a layer's first phase is where it starts, not a change */
    at_phase_event ev = {.kind = AT_EVENT_LAYER_PHASE,
                         .step = 3,
                         .since_step = 1,
                         .layer = "fc2",
                         .from = AT_LAYER_UNKNOWN,
                         .to = AT_LAYER_HEALTHY};
    snprintf(ev.text, sizeof ev.text, "fc2: unknown -> healthy since step 1 (alpha 3.00)");
    assert_int_equal(at_model_add_phase_event(m, r, AT_SPACE_W, &ev, NULL), 0);
    assert_int_equal(at_model_num_events(m), 0);
    ev.from = AT_LAYER_HEALTHY;
    ev.to = AT_LAYER_BURNT;
    snprintf(ev.text, sizeof ev.text, "fc2: healthy -> burnt since step 1 (alpha 1.50)");
    assert_int_equal(at_model_add_phase_event(m, r, AT_SPACE_W, &ev, NULL), 1);
    const at_event *e = at_model_event(m, 0);
    assert_int_equal(e->kind, AT_EVENT_PHASE);
    assert_int_equal(e->from, AT_LAYER_HEALTHY);
    assert_int_equal(e->to, AT_LAYER_BURNT);
    assert_int_equal(e->space, AT_SPACE_W);
    assert_int_equal(e->step, 3);
    assert_int_equal(e->layer, 0);
    assert_int_equal(e->run, r);
    assert_string_equal(e->text, ev.text);
    /* the delta view's change, with the engine's own text; an unknown layer is run-wide */
    assert_int_equal(at_model_add_phase_event(m, r, AT_SPACE_DELTA, &ev, "delta view: x"), 1);
    assert_int_equal(at_model_event(m, 1)->space, AT_SPACE_DELTA);
    assert_string_equal(at_model_event(m, 1)->text, "delta view: x");
    ev.layer = "gone";
    assert_int_equal(at_model_add_phase_event(m, r, AT_SPACE_W, &ev, NULL), 1);
    assert_int_equal(at_model_event(m, 2)->layer, -1);
    assert_int_equal(at_model_event(m, 0)->since, 1);
    assert_int_equal(at_model_event(m, 0)->run_to, AT_RUN_UNKNOWN);
    ev.kind = AT_EVENT_RUN_PHASE;
    assert_int_equal(at_model_add_phase_event(m, r, AT_SPACE_W, &ev, NULL), AT_ERR_ARG);
    /* a run phase change: its own call, a warning for a collapse, since kept */
    at_phase_event run = {.kind = AT_EVENT_RUN_PHASE,
                          .step = 9,
                          .since_step = 4,
                          .layer = "",
                          .from = AT_RUN_GROKKING,
                          .to = AT_RUN_COLLAPSE};
    snprintf(run.text, sizeof run.text, "run: grokking -> collapse at step 4");
    int ri = at_model_add_run_phase_event(m, r, AT_SPACE_W, &run, NULL);
    assert_true(ri >= 0);
    const at_event *re = at_model_event(m, ri);
    assert_int_equal(re->kind, AT_EVENT_WARNING);
    assert_int_equal(re->run_to, AT_RUN_COLLAPSE);
    assert_int_equal(re->since, 4);
    assert_int_equal(re->layer, -1);
    assert_string_equal(re->text, run.text);
    run.to = AT_RUN_GROKKING;
    ri = at_model_add_run_phase_event(m, r, AT_SPACE_DELTA, &run, "delta view: y");
    assert_int_equal(at_model_event(m, ri)->kind, AT_EVENT_INFO);
    assert_int_equal(at_model_event(m, ri)->space, AT_SPACE_DELTA);
    run.to = AT_RUN_UNKNOWN;
    assert_int_equal(at_model_add_run_phase_event(m, r, AT_SPACE_W, &run, NULL), AT_ERR_ARG);
    ev.kind = AT_EVENT_LAYER_PHASE; /* a layer's change is not the run's */
    assert_int_equal(at_model_add_run_phase_event(m, r, AT_SPACE_W, &ev, NULL), AT_ERR_ARG);
    run.to = AT_RUN_COLLAPSE;
    assert_int_equal(at_model_add_run_phase_event(m, 7, AT_SPACE_W, &run, NULL), AT_ERR_ARG);
    ev.kind = AT_EVENT_LAYER_PHASE;
    assert_int_equal(at_model_add_phase_event(m, 5, AT_SPACE_W, &ev, NULL), AT_ERR_ARG);
    assert_int_equal(at_model_add_phase_event(m, -1, AT_SPACE_W, &ev, NULL), AT_ERR_ARG);
    assert_int_equal(at_model_add_event(m, 9, -1, -1, AT_EVENT_INFO, "x"), AT_ERR_ARG);
    assert_int_equal(at_model_add_event(m, -1, -1, -1, AT_EVENT_DROP, "dropped 2"), 5);
    assert_int_equal(at_model_event(m, 5)->space, AT_SPACE_W);
    assert_int_equal(at_model_event(m, 5)->since, -1);
    /* the latest result before a column, and how many eigenvalues its fit used */
    assert_int_equal(at_model_latest_cell(m, r, 0, AT_SPACE_W, 5),
                     at_model_cell(m, r, 0, AT_SPACE_W, 2));
    assert_int_equal(at_model_latest_cell(m, r, 0, AT_SPACE_W, 2),
                     at_model_cell(m, r, 0, AT_SPACE_W, 1));
    assert_null(at_model_latest_cell(m, r, 0, AT_SPACE_W, 0));
    assert_null(at_model_latest_cell(m, r, 0, AT_SPACE_DELTA, 3));
    at_metrics big = metrics(3.0);
    big.num_pl_spikes = 100000;
    assert_int_equal(at_model_add_cell(m, r, 0, AT_SPACE_W, 3, &big), AT_OK);
    assert_int_equal(at_model_cell(m, r, 0, AT_SPACE_W, 2)->tail, 65535);
    assert_int_equal(at_model_cell(m, r, 0, AT_SPACE_W, 1)->tail, 0);
    assert_int_equal(at_model_cell_bytes(), 32);
    at_model_free(m);
}

static void test_metric_values(void **state)
{
    (void)state;
    at_metrics x = metrics(3.0);
    assert_float_equal(at_metric_value(&x, AT_METRIC_DETX_GAP), 1.0, 1e-12);
    assert_float_equal(at_metric_value(&x, AT_METRIC_TRAPS), 3.0, 0);
    assert_float_equal(at_metric_value(&x, AT_METRIC_LOG_NORM), 1.5, 0);
    x.num_traps = -1;
    x.detx_val = NAN;
    assert_true(isnan(at_metric_value(&x, AT_METRIC_TRAPS)));
    assert_true(isnan(at_metric_value(&x, AT_METRIC_DETX_GAP)));
    assert_string_equal(at_metric_name(AT_METRIC_DETX_GAP), "detx_gap");
    assert_int_equal(at_model_cell_bytes(), 32);
}

static void test_spectrum_scalars(void **state)
{
    (void)state;
    at_model *m = at_model_new();
    int r = at_model_add_run(m, "id", NULL, NULL);
    at_model_add_layer(m, r, "a", AT_KIND_LINEAR, 0, NULL);
    assert_null(at_model_spectrum(m, r, 0, AT_SPACE_W));
    double ev[3] = {0.5, 1.0, 4.0};
    uint64_t v0 = at_model_version(m);
    assert_int_equal(at_model_set_spectrum(m, r, 0, AT_SPACE_W, 7, ev, 3, 1.0, 2.5), AT_OK);
    assert_true(at_model_version(m) > v0);
    const at_spectrum *s = at_model_spectrum(m, r, 0, AT_SPACE_W);
    assert_int_equal(s->n, 3);
    assert_float_equal(s->evals[2], 4.0, 0);
    assert_float_equal(s->alpha, 2.5, 0);
    assert_int_equal(s->step, 7);
    assert_int_equal(at_model_set_spectrum(m, r, 0, AT_SPACE_W, 8, ev, 1, 0.5, 3.0), AT_OK);
    assert_int_equal(at_model_spectrum(m, r, 0, AT_SPACE_W)->n, 1);
    for (int i = 0; i < 200; i++)
        assert_int_equal(at_model_add_scalar(m, r, i % 2 ? "acc" : "loss", i, i * 0.5), AT_OK);
    assert_int_equal(at_model_num_scalars(m, r), 2);
    at_series se;
    assert_int_equal(at_model_scalar(m, r, 1, &se), AT_OK);
    assert_string_equal(se.name, "acc");
    assert_int_equal(se.n, 100);
    assert_int_equal(se.steps[99], 199);
    assert_float_equal(se.values[99], 99.5, 0);
    assert_int_equal(at_model_scalar(m, r, 2, &se), AT_ERR_ARG);
    at_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_and_layers),  cmocka_unit_test(test_snapshots_sorted),
        cmocka_unit_test(test_phase_events),     cmocka_unit_test(test_metric_values),
        cmocka_unit_test(test_spectrum_scalars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
