/* SPDX-License-Identifier: Apache-2.0 */
/* test_sched.c -- fast mode's refresh rounds (the pool's AT_POOL_LATEST policy): the ranking
 * of a round, the budget bounds each round by count (a counting clock, no wall time), no layer
 * starves, every waiting snapshot yields one result (a newer snapshot replaces a waiting one),
 * worker threads wake the fd and pause. */
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

#include "alphatop/pool.h"
#include "fast/sched.h"
#include "fixture.h"

#define ROWS 60
#define COLS 90

/* Counts its readings: one unit of budget per reading. A round reads it once as it begins and
 * once before each further layer it hands out. */
static double counting_clock(void *ctx)
{
    return (double)++*(int64_t *)ctx;
}

/* A fast-mode pool whose rounds the test runs (no threads). */
static at_pool *new_rounds(double budget, int64_t *ticks)
{
    at_pool_opts o;
    at_pool_opts_default(&o);
    o.threads = 0;
    o.policy = AT_POOL_LATEST;
    o.analyze.fast = 1;
    o.budget_s = budget;
    o.clock = counting_clock;
    o.clock_ctx = ticks;
    int rc = -1;
    at_pool *p = at_pool_new(&o, &rc);
    assert_non_null(p);
    assert_int_equal(rc, AT_OK);
    return p;
}

static void submit(at_pool *p, int layer, int64_t step, const float *w)
{
    char name[32];
    snprintf(name, sizeof name, "layer.%02d", layer);
    at_tensor t = fx_tensor(w, ROWS, COLS);
    at_pool_job *j = at_pool_job_new_copy(name, step, &t, NULL);
    assert_non_null(j);
    assert_int_equal(at_pool_submit(p, j), AT_OK);
}

static int layer_of(const at_pool_job *j)
{
    return atoi(j->key + strlen("layer."));
}

/* The ranking alone: starving layers first (longest passed over first), then never analysed
 * (oldest first), then staleness times change, an unknown change counting 1 and an unchanged
 * layer 1e-6. */
static void test_order(void **state)
{
    (void)state;
    const double now = 100.0;
    const at_sched_layer l[] = {
        {.analysed = 1, .last_done = 90.0, .last_change = 0.5},  /* 5 */
        {.waited = 3, .analysed = 1, .last_change = 0.1},        /* starving, 3 rounds */
        {.submitted = 99.0, .last_change = NAN},                 /* new, 1 s */
        {.analysed = 1, .last_done = 99.0, .last_change = NAN},  /* 1 */
        {.waited = 5, .submitted = 50.0, .last_change = NAN},    /* starving, 5 rounds */
        {.submitted = 80.0, .last_change = NAN},                 /* new, 20 s */
        {.analysed = 1, .last_done = 0.0, .last_change = 0.0},   /* 100 * 1e-6 */
        {.analysed = 1, .last_done = 98.0, .last_change = 10.0}, /* 20 */
    };
    const size_t want[] = {4, 1, 5, 2, 7, 0, 3, 6};
    at_sched_pick p[8];
    for (size_t i = 0; i < 8; i++)
        p[i] = (at_sched_pick){.idx = i, .layer = &l[i]};
    at_sched_order(p, 8, now, 3);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(p[i].idx, want[i]);
    assert_true(p[5].score == 5.0);
    assert_true(p[7].score == 100.0 * 1e-6);
}

/* Budget 4 readings = 4 layers a round (the first layer is free, then readings 2, 3, 4 are
 * under the budget and 5 is not); 10 layers take rounds of 4, 4, 2; every layer exactly once,
 * every result complete. */
static void test_budget_and_completeness(void **state)
{
    (void)state;
    int64_t ticks = 0;
    at_pool *p = new_rounds(4.0, &ticks);
    float *w[10];
    for (int i = 0; i < 10; i++) {
        w[i] = fx_spiked(ROWS, COLS, 4, 5.0, 0.7, 100 + (uint64_t)i);
        submit(p, i, 7, w[i]);
    }
    const int want[] = {4, 4, 2, 0};
    for (int r = 0; r < 4; r++)
        assert_int_equal(at_pool_run(p), want[r]);
    int seen[10] = {0};
    at_pool_job *res;
    int n = 0;
    while ((res = at_pool_poll(p))) {
        assert_int_equal(res->rc, AT_OK);
        assert_int_equal(res->step, 7);
        assert_int_equal(res->m.mode, AT_MODE_GRAM);
        assert_int_equal(res->round, 1 + n / 4);
        assert_true(res->m.alpha > 0.0);
        seen[layer_of(res)]++;
        n++;
        at_pool_job_free(res);
    }
    assert_int_equal(n, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(seen[i], 1);
    at_pool_progress pr;
    at_pool_progress_get(p, &pr);
    assert_int_equal(pr.layers, 10);
    assert_int_equal(pr.waiting, 0);
    assert_int_equal(pr.round, 3);
    assert_int_equal(pr.analysed, 10);
    assert_true(pr.state_bytes > 0);
    /* a newer snapshot replaces a waiting one: one result, the newer step */
    submit(p, 3, 8, w[3]);
    submit(p, 3, 9, w[3]);
    at_pool_progress_get(p, &pr);
    assert_int_equal(pr.waiting, 1);
    assert_int_equal(pr.replaced, 1);
    assert_int_equal(pr.steps_behind, 2);
    assert_int_equal(at_pool_run(p), 1);
    res = at_pool_poll(p);
    assert_non_null(res);
    assert_int_equal(res->step, 9);
    assert_int_equal(res->m.mode, AT_MODE_SKIPPED); /* same weights */
    at_pool_job_free(res);
    assert_null(at_pool_poll(p));
    /* a bad snapshot: an error result, the others unaffected */
    int rc = 0;
    assert_null(at_pool_job_new_copy("bad", 1, NULL, &rc));
    assert_int_equal(rc, AT_ERR_ARG);
    float zero[ROWS * COLS] = {0};
    at_tensor t = fx_tensor(zero, ROWS, COLS);
    at_pool_job *j = at_pool_job_new_copy("zero", 1, &t, NULL);
    assert_int_equal(at_pool_submit(p, j), AT_OK);
    assert_int_equal(at_pool_run(p), 1);
    res = at_pool_poll(p);
    assert_int_equal(res->rc, AT_ERR_EMPTY);
    assert_true(strlen(res->error) > 0);
    at_pool_job_free(res);
    at_pool_free(p);
    for (int i = 0; i < 10; i++)
        free(w[i]);
}

/* 12 layers all resubmitted every round, 4 fit in a round; 2 of them change a lot every time,
 * the others never. Every layer is still analysed at least every max_wait + 12/4 rounds. */
static void test_no_starvation(void **state)
{
    (void)state;
    int64_t ticks = 0;
    at_pool *p = new_rounds(4.0, &ticks);
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
            submit(p, i, round, w[i]);
        }
        assert_int_equal(at_pool_run(p), 4);
        at_pool_job *r;
        while ((r = at_pool_poll(p))) {
            assert_int_equal(r->rc, AT_OK);
            last[layer_of(r)] = round;
            at_pool_job_free(r);
        }
        for (int i = 0; i < 12; i++) {
            worst = round - last[i] > worst ? round - last[i] : worst;
            if (round - last[i] >= bound)
                fail_msg("layer %d not analysed since round %d (now %d)", i, last[i], round);
        }
    }
    printf("30 rounds, 12 layers, 4 per round: longest wait %d rounds (bound %d)\n", worst, bound);
    at_pool_free(p);
    for (int i = 0; i < 12; i++)
        free(w[i]);
}

/* A worker thread: results arrive through the fd without the caller running rounds; pause
 * holds them; freeing with waiting snapshots and unpolled results leaks nothing. */
static void test_thread(void **state)
{
    (void)state;
    at_pool_opts o;
    at_pool_opts_default(&o);
    o.policy = AT_POOL_LATEST;
    o.analyze.fast = 1;
    o.budget_s = 0.05;
    at_pool *p = at_pool_new(&o, NULL);
    assert_non_null(p);
    assert_int_equal(at_pool_run(p), AT_ERR_STATE);
    float *w = fx_spiked(ROWS, COLS, 4, 5.0, 0.7, 300);
    for (int i = 0; i < 8; i++)
        submit(p, i, 1, w);
    int got = 0;
    struct pollfd pfd = {.fd = at_pool_fd(p), .events = POLLIN};
    for (int tries = 0; got < 8 && tries < 600; tries++) {
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        at_pool_job *r;
        while ((r = at_pool_poll(p))) {
            assert_int_equal(r->rc, AT_OK);
            assert_true(r->lag_s >= 0.0);
            got++;
            at_pool_job_free(r);
        }
    }
    assert_int_equal(got, 8);
    at_pool_pause(p, 1);
    submit(p, 0, 2, w);
    assert_int_equal(poll(&pfd, 1, 300), 0);
    at_pool_progress pr;
    at_pool_progress_get(p, &pr);
    assert_int_equal(pr.waiting, 1);
    assert_true(pr.seconds_behind > 0.0);
    at_pool_pause(p, 0);
    assert_int_equal(poll(&pfd, 1, 60000), 1);
    /* leave a result unpolled and a snapshot waiting */
    at_pool_pause(p, 1);
    submit(p, 1, 3, w);
    at_pool_free(p);
    free(w);
}

/* Exact analysis in refresh rounds on request: the same numbers as at_htsr_analyze. */
static void test_exact_mode(void **state)
{
    (void)state;
    at_pool_opts o;
    at_pool_opts_default(&o);
    o.threads = 0;
    o.policy = AT_POOL_LATEST;
    at_pool *p = at_pool_new(&o, NULL);
    float *w = fx_spiked(ROWS, COLS, 4, 5.0, 0.7, 400);
    submit(p, 0, 1, w);
    assert_int_equal(at_pool_run(p), 1);
    at_pool_job *r = at_pool_poll(p);
    assert_non_null(r);
    at_htsr *h = at_htsr_new();
    at_metrics m;
    at_tensor t = fx_tensor(w, ROWS, COLS);
    assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_OK);
    assert_int_equal(r->m.mode, AT_MODE_EXACT);
    assert_int_equal(r->info.mode, AT_MODE_EXACT);
    assert_true(r->m.alpha == m.alpha);
    at_htsr_free(h);
    at_pool_job_free(r);
    at_pool_free(p);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),         cmocka_unit_test(test_budget_and_completeness),
        cmocka_unit_test(test_no_starvation), cmocka_unit_test(test_thread),
        cmocka_unit_test(test_exact_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
