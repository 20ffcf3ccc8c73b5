/* test_sched.c -- the refresh scheduler: the budget bounds each round by count (a counting
 * clock, no wall time), no layer starves, every waiting snapshot yields one result (a newer
 * snapshot replaces a waiting one), the worker thread wakes the fd and pauses. */
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "alphatop/sched.h"
#include "fixture.h"

#define ROWS 60
#define COLS 90

/* Counts its readings: one unit of budget per reading. A round reads it once at its start and
 * three times per analysed layer (before and after the analysis, and before the next). */
static double counting_clock(void *ctx)
{
    return (double)++*(int64_t *)ctx;
}

static at_sched *new_sched(double budget, int64_t *ticks)
{
    at_sched_opts o;
    at_sched_opts_default(&o);
    o.budget_s = budget;
    o.clock = counting_clock;
    o.clock_ctx = ticks;
    int rc = -1;
    at_sched *s = at_sched_new(&o, &rc);
    assert_non_null(s);
    assert_int_equal(rc, AT_OK);
    return s;
}

static void submit(at_sched *s, int layer, int64_t step, const float *w)
{
    char name[32];
    snprintf(name, sizeof name, "layer.%02d", layer);
    at_tensor t = fx_tensor(w, ROWS, COLS);
    assert_int_equal(at_sched_submit(s, name, step, &t), AT_OK);
}

static int layer_of(const at_sched_result *r)
{
    return atoi(r->layer + strlen("layer."));
}

/* Budget 10 readings = 4 layers a round (readings 1, then 3 per layer: 4 >= ceil(10/3));
 * 10 layers take rounds of 4, 4, 2; every layer exactly once, every result complete. */
static void test_budget_and_completeness(void **state)
{
    (void)state;
    int64_t ticks = 0;
    at_sched *s = new_sched(10.0, &ticks);
    float *w[10];
    for (int i = 0; i < 10; i++) {
        w[i] = fx_spiked(ROWS, COLS, 4, 5.0, 0.7, 100 + (uint64_t)i);
        submit(s, i, 7, w[i]);
    }
    const int want[] = {4, 4, 2, 0};
    for (int r = 0; r < 4; r++)
        assert_int_equal(at_sched_round(s), want[r]);
    int seen[10] = {0};
    at_sched_result *res;
    int n = 0;
    while ((res = at_sched_poll(s))) {
        assert_int_equal(res->rc, AT_OK);
        assert_int_equal(res->step, 7);
        assert_int_equal(res->m.mode, AT_MODE_GRAM);
        assert_int_equal(res->round, 1 + n / 4);
        assert_true(res->m.alpha > 0.0);
        seen[layer_of(res)]++;
        n++;
        at_sched_result_free(res);
    }
    assert_int_equal(n, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(seen[i], 1);
    at_sched_progress p;
    at_sched_progress_get(s, &p);
    assert_int_equal(p.layers, 10);
    assert_int_equal(p.waiting, 0);
    assert_int_equal(p.round, 3);
    assert_int_equal(p.analysed, 10);
    /* a newer snapshot replaces a waiting one: one result, the newer step */
    submit(s, 3, 8, w[3]);
    submit(s, 3, 9, w[3]);
    at_sched_progress_get(s, &p);
    assert_int_equal(p.waiting, 1);
    assert_int_equal(p.replaced, 1);
    assert_int_equal(p.steps_behind, 2);
    assert_int_equal(at_sched_round(s), 1);
    res = at_sched_poll(s);
    assert_non_null(res);
    assert_int_equal(res->step, 9);
    assert_int_equal(res->m.mode, AT_MODE_SKIPPED); /* same weights */
    at_sched_result_free(res);
    assert_null(at_sched_poll(s));
    /* a bad snapshot: an error result, the others unaffected */
    assert_int_equal(at_sched_submit(s, "bad", 1, NULL), AT_ERR_ARG);
    float zero[ROWS * COLS] = {0};
    at_tensor t = fx_tensor(zero, ROWS, COLS);
    assert_int_equal(at_sched_submit(s, "zero", 1, &t), AT_OK);
    assert_int_equal(at_sched_round(s), 1);
    res = at_sched_poll(s);
    assert_int_equal(res->rc, AT_ERR_EMPTY);
    assert_true(strlen(res->error) > 0);
    at_sched_result_free(res);
    at_sched_free(s);
    for (int i = 0; i < 10; i++)
        free(w[i]);
}

/* 12 layers all resubmitted every round, 4 fit in a round; 2 of them change a lot every time,
 * the others never. Every layer is still analysed at least every max_wait + 12/4 rounds. */
static void test_no_starvation(void **state)
{
    (void)state;
    int64_t ticks = 0;
    at_sched *s = new_sched(10.0, &ticks);
    float *w[12];
    for (int i = 0; i < 12; i++)
        w[i] = fx_spiked(ROWS, COLS, 4, 5.0, 0.7, 200 + (uint64_t)i);
    int last[12];
    for (int i = 0; i < 12; i++)
        last[i] = 0;
    const int bound = 3 + 3;
    int worst = 0;
    for (int round = 1; round <= 30; round++) {
        for (int i = 0; i < 12; i++) {
            if (i < 2)
                fx_perturb(w[i], ROWS, COLS, 0.05, (uint64_t)(round * 100 + i));
            submit(s, i, round, w[i]);
        }
        assert_int_equal(at_sched_round(s), 4);
        at_sched_result *r;
        while ((r = at_sched_poll(s))) {
            assert_int_equal(r->rc, AT_OK);
            last[layer_of(r)] = round;
            at_sched_result_free(r);
        }
        for (int i = 0; i < 12; i++) {
            worst = round - last[i] > worst ? round - last[i] : worst;
            if (round - last[i] >= bound)
                fail_msg("layer %d not analysed since round %d (now %d)", i, last[i], round);
        }
    }
    printf("30 rounds, 12 layers, 4 per round: longest wait %d rounds (bound %d)\n", worst, bound);
    at_sched_free(s);
    for (int i = 0; i < 12; i++)
        free(w[i]);
}

/* The worker thread: results arrive through the fd without the caller running rounds; pause
 * holds them; freeing with waiting snapshots and unpolled results leaks nothing. */
static void test_thread(void **state)
{
    (void)state;
    at_sched_opts o;
    at_sched_opts_default(&o);
    o.budget_s = 0.05;
    at_sched *s = at_sched_new(&o, NULL);
    assert_non_null(s);
    assert_int_equal(at_sched_start(s), AT_OK);
    assert_int_equal(at_sched_start(s), AT_ERR_STATE);
    assert_int_equal(at_sched_round(s), 0);
    float *w = fx_spiked(ROWS, COLS, 4, 5.0, 0.7, 300);
    for (int i = 0; i < 8; i++)
        submit(s, i, 1, w);
    int got = 0;
    struct pollfd pfd = {.fd = at_sched_fd(s), .events = POLLIN};
    for (int tries = 0; got < 8 && tries < 600; tries++) {
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        at_sched_result *r;
        while ((r = at_sched_poll(s))) {
            assert_int_equal(r->rc, AT_OK);
            assert_true(r->lag_s >= 0.0);
            got++;
            at_sched_result_free(r);
        }
    }
    assert_int_equal(got, 8);
    at_sched_pause(s, 1);
    submit(s, 0, 2, w);
    assert_int_equal(poll(&pfd, 1, 300), 0);
    at_sched_progress p;
    at_sched_progress_get(s, &p);
    assert_int_equal(p.waiting, 1);
    assert_true(p.seconds_behind > 0.0);
    at_sched_pause(s, 0);
    assert_int_equal(poll(&pfd, 1, 60000), 1);
    /* leave a result unpolled and a snapshot waiting */
    at_sched_pause(s, 1);
    submit(s, 1, 3, w);
    at_sched_free(s);
    free(w);
}

/* Exact mode on request: the same numbers as at_htsr_analyze. */
static void test_exact_mode(void **state)
{
    (void)state;
    at_sched_opts o;
    at_sched_opts_default(&o);
    o.exact = 1;
    at_sched *s = at_sched_new(&o, NULL);
    float *w = fx_spiked(ROWS, COLS, 4, 5.0, 0.7, 400);
    submit(s, 0, 1, w);
    assert_int_equal(at_sched_round(s), 1);
    at_sched_result *r = at_sched_poll(s);
    assert_non_null(r);
    at_htsr *h = at_htsr_new();
    at_metrics m;
    at_tensor t = fx_tensor(w, ROWS, COLS);
    assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_OK);
    assert_int_equal(r->m.mode, AT_MODE_EXACT);
    assert_true(r->m.alpha == m.alpha);
    at_htsr_free(h);
    at_sched_result_free(r);
    at_sched_free(s);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_and_completeness),
        cmocka_unit_test(test_no_starvation),
        cmocka_unit_test(test_thread),
        cmocka_unit_test(test_exact_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
