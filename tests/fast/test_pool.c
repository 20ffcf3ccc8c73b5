/* SPDX-License-Identifier: Apache-2.0 */
/* test_pool.c -- the worker pool (pool.h): with 1 and 2 threads its results are bit for bit
 * at_analyzer_run's on the same jobs, exact and fast (per-layer state carried by the pool);
 * FIFO order; replacement in the latest policy; cancel; pause and resume; shutdown with jobs
 * waiting, running and unpolled (run under ASan for leaks); the fd is readable exactly while
 * results wait; bad input gets a clear status; a prepare hook fills a job in on the worker
 * thread or fails it; a layer's last job frees its fast state. */
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alphatop/pool.h"
#include "fixture.h"

#define ROWS 60
#define COLS 90
#define LAYERS 3
#define SNAPS 4
#define FR 400 /* fast-mode layers: large enough for warm updates */
#define FC 700

/* Bit for bit: every field before mode (no padding among them), then mode. */
static void same_result(const at_pool_job *j, int rc, const at_metrics *m, const at_fast_info *i)
{
    assert_int_equal(j->rc, rc);
    if (rc < 0)
        return;
    assert_memory_equal(&j->m, m, offsetof(at_metrics, mode));
    assert_int_equal(j->m.mode, m->mode);
    assert_memory_equal(&j->info, i, offsetof(at_fast_info, passes) + sizeof i->passes);
    assert_memory_equal(&j->info.rel_change, &i->rel_change, sizeof i->rel_change);
}

static at_pool *new_pool(int threads, at_pool_policy policy, int fast)
{
    at_pool_opts o;
    at_pool_opts_default(&o);
    o.threads = threads;
    o.policy = policy;
    o.analyze.fast = fast;
    o.analyze.keep_evals = 1;
    int rc = -1;
    at_pool *p = at_pool_new(&o, &rc);
    assert_non_null(p);
    assert_int_equal(rc, AT_OK);
    return p;
}

/* Payloads count their frees: each job's user_free must run exactly once. */
static int payloads_freed;

static void payload_free(void *user)
{
    (void)user;
    payloads_freed++;
}

/* A job on borrowed views, tagged, with a counting payload. */
static at_pool_job *job_on(const char *key, int64_t tag, int64_t step, const at_layer_job *in)
{
    int rc = -1;
    at_pool_job *j = at_pool_job_new(key, step, &rc);
    assert_non_null(j);
    assert_int_equal(rc, AT_OK);
    j->tag = tag;
    j->in = *in;
    j->user = &payloads_freed;
    j->user_free = payload_free;
    return j;
}

/* Waits (up to a minute) for n results into out[], in arrival order. */
static void collect(at_pool *p, at_pool_job **out, int n)
{
    struct pollfd pfd = {.fd = at_pool_fd(p), .events = POLLIN};
    int got = 0;
    for (int tries = 0; got < n && tries < 600; tries++) {
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        at_pool_job *j;
        while (got < n && (j = at_pool_poll(p)))
            out[got++] = j;
    }
    assert_int_equal(got, n);
}

static int readable(at_pool *p)
{
    struct pollfd pfd = {.fd = at_pool_fd(p), .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

/* The exact-mode inputs: plain layers, a conv2d, a delta, a LoRA pair, and all-zero weights
 * (an error). */
typedef struct inputs {
    float *w[3], *base, *conv, *b, *a, zero[ROWS * COLS];
    at_tensor tw[3], tbase, tconv, tb, ta, tzero;
    at_layer_job jobs[7];
} inputs;

/* The inputs every test borrows, made once for the group. */
static inputs *ins;

static int inputs_make(void **state)
{
    (void)state;
    ins = malloc(sizeof *ins);
    assert_non_null(ins);
    memset(ins, 0, sizeof *ins);
    for (int i = 0; i < 3; i++) {
        ins->w[i] = fx_spiked(ROWS, COLS, 4, 5.0, 0.7, 10 + (uint64_t)i);
        ins->tw[i] = fx_tensor(ins->w[i], ROWS, COLS);
        ins->jobs[i] = (at_layer_job){.w = &ins->tw[i]};
    }
    ins->base = fx_spiked(ROWS, COLS, 4, 5.0, 0.7, 20);
    ins->tbase = fx_tensor(ins->base, ROWS, COLS);
    ins->jobs[3] = (at_layer_job){.w = &ins->tw[0], .base = &ins->tbase};
    ins->conv = fx_spiked(16, 12 * 3 * 3, 4, 5.0, 0.7, 30); /* as 16 x 12 x 3 x 3 */
    ins->tconv = (at_tensor){.data = ins->conv,
                             .dtype = AT_DTYPE_F32,
                             .kind = AT_KIND_CONV2D,
                             .ndim = 4,
                             .shape = {16, 12, 3, 3}};
    ins->jobs[4] = (at_layer_job){.w = &ins->tconv};
    ins->b = fx_spiked(ROWS, 8, 2, 5.0, 0.7, 40);
    ins->a = fx_spiked(8, COLS, 2, 5.0, 0.7, 41);
    ins->tb = fx_tensor(ins->b, ROWS, 8);
    ins->ta = fx_tensor(ins->a, 8, COLS);
    ins->jobs[5] = (at_layer_job){.w = &ins->tb, .lora_a = &ins->ta, .lora_scale = 2.0};
    ins->tzero = fx_tensor(ins->zero, ROWS, COLS);
    ins->jobs[6] = (at_layer_job){.w = &ins->tzero};
    return 0;
}

static int inputs_free(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        free(ins->w[i]);
    free(ins->base);
    free(ins->conv);
    free(ins->b);
    free(ins->a);
    free(ins);
    return 0;
}

/* Exact FIFO with 1 and 2 threads: each result equals at_analyzer_run's, eigenvalues and error
 * detail included; with one thread they come back in submission order. */
static void test_exact_equals_direct(void **state)
{
    (void)state;
    at_analyzer_opts ao;
    at_analyzer_opts_default(&ao);
    ao.keep_evals = 1;
    at_analyzer *an = at_analyzer_new(&ao, NULL);
    assert_non_null(an);
    for (int threads = 1; threads <= 2; threads++) {
        at_pool *p = new_pool(threads, AT_POOL_FIFO, 0);
        for (int k = 0; k < 7; k++) {
            char key[16];
            snprintf(key, sizeof key, "job%d", k);
            assert_int_equal(at_pool_submit(p, job_on(key, 0, k, &ins->jobs[k])), AT_OK);
        }
        at_pool_job *res[7];
        collect(p, res, 7);
        for (int r = 0; r < 7; r++) {
            const int k = (int)res[r]->step;
            if (threads == 1)
                assert_int_equal(k, r);
            at_metrics m;
            at_fast_info fi;
            const int rc = at_analyzer_run(an, &ins->jobs[k], &m, &fi);
            same_result(res[r], rc, &m, &fi);
            size_t n = 0;
            const double *ev = at_analyzer_evals(an, &n);
            assert_int_equal(res[r]->num_evals, n);
            if (n)
                assert_memory_equal(res[r]->evals, ev, n * sizeof *ev);
            if (rc < 0)
                assert_string_equal(res[r]->error, at_analyzer_last_error(an));
            at_pool_job_free(res[r]);
        }
        at_pool_free(p);
    }
    at_analyzer_free(an);
}

/* LAYERS layers x SNAPS training-like snapshots (cold, then warm) (float32 copies, the pool's own
 * state per layer) against at_analyzer_run with a state per layer, in order: FIFO (every snapshot,
 * in order per layer) and latest (each snapshot of all layers awaited before the next). Their state
 * bytes are the references'. */
static void test_fast_equals_direct(void **state)
{
    (void)state;
    float *w[LAYERS];
    for (int l = 0; l < LAYERS; l++)
        w[l] = fx_spiked(FR, FC, 40, 12.0, 0.7, 50 + (uint64_t)l);
    /* snaps[s][l]: the weights of layer l at snapshot s */
    float *snaps[SNAPS][LAYERS];
    for (int s = 0; s < SNAPS; s++)
        for (int l = 0; l < LAYERS; l++) {
            if (s > 0)
                fx_perturb(w[l], FR, FC, 1e-3, (uint64_t)(s * 10 + l));
            snaps[s][l] = malloc(sizeof(float) * FR * FC);
            memcpy(snaps[s][l], w[l], sizeof(float) * FR * FC);
        }
    at_analyzer_opts ao;
    at_analyzer_opts_default(&ao);
    ao.fast = 1;
    at_analyzer *an = at_analyzer_new(&ao, NULL);
    at_metrics want[SNAPS][LAYERS];
    at_fast_info iwant[SNAPS][LAYERS];
    int rcwant[SNAPS][LAYERS];
    size_t bytes = 0;
    for (int l = 0; l < LAYERS; l++) {
        at_fast_state *st = at_fast_state_new();
        for (int s = 0; s < SNAPS; s++) {
            at_tensor t = fx_tensor(snaps[s][l], FR, FC);
            at_layer_job job = {.w = &t, .state = st};
            rcwant[s][l] = at_analyzer_run(an, &job, &want[s][l], &iwant[s][l]);
        }
        bytes += at_fast_state_bytes(st);
        at_fast_state_free(st);
    }
    assert_int_equal(iwant[1][0].mode, AT_MODE_WARM);
    for (int threads = 1; threads <= 2; threads++)
        for (int policy = AT_POOL_FIFO; policy <= AT_POOL_LATEST; policy++) {
            at_pool *p = new_pool(threads, (at_pool_policy)policy, 1);
            at_pool_job *res[SNAPS * LAYERS];
            for (int s = 0; s < SNAPS; s++) {
                for (int l = 0; l < LAYERS; l++) {
                    char key[16];
                    snprintf(key, sizeof key, "layer%d", l);
                    at_tensor t = fx_tensor(snaps[s][l], FR, FC);
                    at_pool_job *j = at_pool_job_new_copy(key, s, &t, NULL);
                    assert_int_equal(at_pool_submit(p, j), AT_OK);
                }
                if (policy == AT_POOL_LATEST)
                    collect(p, res + s * LAYERS, LAYERS);
            }
            if (policy == AT_POOL_FIFO)
                collect(p, res, SNAPS * LAYERS);
            int last[LAYERS] = {-1, -1, -1};
            for (int r = 0; r < SNAPS * LAYERS; r++) {
                const int l = res[r]->key[5] - '0', s = (int)res[r]->step;
                assert_int_equal(s, last[l] + 1); /* a layer's snapshots in order */
                last[l] = s;
                same_result(res[r], rcwant[s][l], &want[s][l], &iwant[s][l]);
                assert_null(res[r]->evals);
                at_pool_job_free(res[r]);
            }
            at_pool_progress pr;
            at_pool_progress_get(p, &pr);
            assert_int_equal(pr.layers, LAYERS);
            assert_int_equal(pr.analysed, SNAPS * LAYERS);
            assert_int_equal(pr.state_bytes, bytes);
            at_pool_free(p);
        }
    at_analyzer_free(an);
    for (int l = 0; l < LAYERS; l++) {
        free(w[l]);
        for (int s = 0; s < SNAPS; s++)
            free(snaps[s][l]);
    }
}

/* FIFO: every job comes back, in submission order, two jobs of one layer included. */
static void test_fifo_order(void **state)
{
    (void)state;
    at_pool *p = new_pool(1, AT_POOL_FIFO, 0);
    at_pool_pause(p, 1);
    const char *keys[] = {"b", "a", "c", "a", "b", "d"};
    for (int k = 0; k < 6; k++)
        assert_int_equal(at_pool_submit(p, job_on(keys[k], 0, k, &ins->jobs[k % 3])), AT_OK);
    assert_int_equal(at_pool_pending(p), 6);
    at_pool_pause(p, 0);
    at_pool_job *res[6];
    collect(p, res, 6);
    for (int k = 0; k < 6; k++) {
        assert_int_equal(res[k]->step, k);
        assert_string_equal(res[k]->key, keys[k]);
        assert_int_equal(res[k]->rc, AT_OK);
        assert_int_equal(res[k]->round, 0);
        at_pool_job_free(res[k]);
    }
    assert_int_equal(at_pool_pending(p), 0);
    at_pool_free(p);
}

/* Latest: a newer job of a layer replaces its waiting one, which is freed at once; the layer's
 * result is the newest, and its lag counts from the oldest replaced job. */
static void test_replace(void **state)
{
    (void)state;
    at_pool *p = new_pool(1, AT_POOL_LATEST, 1);
    at_pool_pause(p, 1);
    payloads_freed = 0;
    assert_int_equal(at_pool_submit(p, job_on("a", 0, 1, &ins->jobs[0])), AT_OK);
    assert_int_equal(at_pool_submit(p, job_on("a", 0, 2, &ins->jobs[1])), AT_OK);
    assert_int_equal(at_pool_submit(p, job_on("b", 0, 1, &ins->jobs[2])), AT_OK);
    assert_int_equal(at_pool_submit(p, job_on("a", 0, 3, &ins->jobs[0])), AT_OK);
    assert_int_equal(payloads_freed, 2);
    at_pool_progress pr;
    at_pool_progress_get(p, &pr);
    assert_int_equal(pr.layers, 2);
    assert_int_equal(pr.waiting, 2);
    assert_int_equal(pr.replaced, 2);
    const double waited = pr.seconds_behind;
    at_pool_pause(p, 0);
    at_pool_job *res[2];
    collect(p, res, 2);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(res[r]->rc, AT_OK);
        assert_int_equal(res[r]->step, res[r]->key[0] == 'a' ? 3 : 1);
        assert_int_equal(res[r]->round, 1);
        if (res[r]->key[0] == 'a')
            assert_true(res[r]->lag_s >= waited);
        at_pool_job_free(res[r]);
    }
    assert_int_equal(payloads_freed, 4);
    assert_null(at_pool_poll(p));
    at_pool_free(p);
}

/* Cancel removes exactly the waiting jobs of a tag and step, frees them, and nothing else. */
static void test_cancel(void **state)
{
    (void)state;
    for (int policy = AT_POOL_FIFO; policy <= AT_POOL_LATEST; policy++) {
        at_pool *p = new_pool(1, (at_pool_policy)policy, 0);
        at_pool_pause(p, 1);
        payloads_freed = 0;
        assert_int_equal(at_pool_submit(p, job_on("a", 0, 1, &ins->jobs[0])), AT_OK);
        assert_int_equal(at_pool_submit(p, job_on("b", 0, 2, &ins->jobs[1])), AT_OK);
        assert_int_equal(at_pool_submit(p, job_on("c", 1, 1, &ins->jobs[2])), AT_OK);
        assert_int_equal(at_pool_submit(p, job_on("d", 0, 1, &ins->jobs[0])), AT_OK);
        assert_int_equal(at_pool_cancel(p, 0, 1), 2);
        assert_int_equal(payloads_freed, 2);
        assert_int_equal(at_pool_cancel(p, 0, 1), 0);
        assert_int_equal(at_pool_cancel(p, 7, 2), 0);
        at_pool_progress pr;
        at_pool_progress_get(p, &pr);
        assert_int_equal(pr.waiting, 2);
        assert_int_equal(pr.cancelled, 2);
        at_pool_pause(p, 0);
        at_pool_job *res[2];
        collect(p, res, 2);
        for (int r = 0; r < 2; r++) {
            assert_true(!strcmp(res[r]->key, "b") || !strcmp(res[r]->key, "c"));
            at_pool_job_free(res[r]);
        }
        assert_int_equal(payloads_freed, 4);
        at_pool_free(p);
    }
}

/* Pause holds every thread (the fd stays quiet, the jobs wait); resume releases them. */
static void test_pause_resume(void **state)
{
    (void)state;
    at_pool *p = new_pool(2, AT_POOL_FIFO, 0);
    at_pool_pause(p, 1);
    for (int k = 0; k < 3; k++)
        assert_int_equal(at_pool_submit(p, job_on("x", 0, k, &ins->jobs[k])), AT_OK);
    struct pollfd pfd = {.fd = at_pool_fd(p), .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 300), 0);
    assert_int_equal(at_pool_pending(p), 3);
    at_pool_pause(p, 0);
    at_pool_job *res[3];
    collect(p, res, 3);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(res[k]->step, k); /* one layer: one at a time, in order */
        at_pool_job_free(res[k]);
    }
    at_pool_free(p);
}

/* Freeing a pool with jobs running, waiting and unpolled stops the threads and frees every
 * job once (ASan: no leak, no double free). */
static void test_shutdown(void **state)
{
    (void)state;
    for (int policy = AT_POOL_FIFO; policy <= AT_POOL_LATEST; policy++) {
        float *w = fx_spiked(200, 300, 4, 5.0, 0.7, 60);
        at_tensor t = fx_tensor(w, 200, 300);
        at_layer_job in = {.w = &t};
        payloads_freed = 0;
        at_pool *p = new_pool(2, (at_pool_policy)policy, policy == AT_POOL_LATEST);
        for (int k = 0; k < 20; k++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", k % 8);
            assert_int_equal(at_pool_submit(p, job_on(key, 0, k, &in)), AT_OK);
        }
        at_pool_job *first;
        collect(p, &first, 1);
        at_pool_job_free(first);
        at_pool_free(p);
        assert_int_equal(payloads_freed, 20);
        free(w);
    }
}

/* The fd is readable exactly while results wait. */
static void test_fd(void **state)
{
    (void)state;
    at_pool *p = new_pool(0, AT_POOL_FIFO, 0);
    assert_false(readable(p));
    assert_int_equal(at_pool_run(p), 0);
    for (int k = 0; k < 3; k++)
        assert_int_equal(at_pool_submit(p, job_on("x", 0, k, &ins->jobs[k])), AT_OK);
    assert_false(readable(p));
    assert_int_equal(at_pool_run(p), 3);
    for (int k = 0; k < 3; k++) {
        assert_true(readable(p));
        at_pool_job *j = at_pool_poll(p);
        assert_non_null(j);
        assert_int_equal(j->step, k);
        at_pool_job_free(j);
    }
    assert_false(readable(p));
    assert_null(at_pool_poll(p));
    assert_int_equal(at_pool_submit(p, job_on("x", 0, 3, &ins->jobs[0])), AT_OK);
    assert_int_equal(at_pool_run(p), 1);
    assert_true(readable(p));
    at_pool_job_free(at_pool_poll(p));
    assert_false(readable(p));
    at_pool_free(p);
}

/* Bad options and jobs: NULL with a status, the caller keeping what was not taken. */
static void test_bad_input(void **state)
{
    (void)state;
    at_pool_opts o;
    int rc = 0;
    for (int bad = 0; bad < 5; bad++) {
        at_pool_opts_default(&o);
        if (bad == 0)
            o.threads = -1;
        else if (bad == 1)
            o.threads = AT_POOL_MAX_THREADS + 1;
        else if (bad == 2)
            o.policy = (at_pool_policy)7;
        else if (bad == 3)
            o.budget_s = 0.0;
        else
            o.max_wait = -1;
        rc = 0;
        assert_null(at_pool_new(&o, &rc));
        assert_int_equal(rc, AT_ERR_ARG);
    }
    assert_null(at_pool_job_new(NULL, 1, &rc));
    assert_int_equal(rc, AT_ERR_ARG);
    float w[4] = {1, 2, 3, 4};
    at_tensor t = fx_tensor(w, 2, 2);
    t.kind = AT_KIND_CONV2D; /* 2 dims: not a conv2d shape */
    rc = 0;
    assert_null(at_pool_job_new_copy("c", 1, &t, &rc));
    assert_int_equal(rc, AT_ERR_ARG);
    t = fx_tensor(w, 2, 0);
    assert_null(at_pool_job_new_copy("c", 1, &t, &rc));
    assert_int_equal(rc, AT_ERR_ARG);
    at_pool *p = at_pool_new(NULL, &rc);
    assert_non_null(p);
    assert_int_equal(at_pool_submit(p, NULL), AT_ERR_ARG);
    at_pool_job *j = at_pool_job_new("empty", 1, NULL);
    assert_int_equal(at_pool_submit(p, j), AT_ERR_ARG); /* no in.w: still the caller's */
    at_pool_job_free(j);
    assert_int_equal(at_pool_run(p), AT_ERR_STATE);
    assert_int_equal(at_pool_run(NULL), AT_ERR_ARG);
    at_pool_free(p);
    at_pool_free(NULL);
    at_pool_job_free(NULL);
}

/* A prepare hook: the weights named by the payload, or the failure it names. */
static int prepare_from_user(at_pool_job *j)
{
    const at_layer_job *in = *(const at_layer_job **)j->user;
    if (!in) {
        snprintf(j->error, sizeof j->error, "cannot read the weights");
        return AT_ERR_IO;
    }
    j->in = *in;
    return AT_OK;
}

/* prepare fills in the job on the worker thread (or fails it without an analysis); last frees
 * the layer's fast state after its job. */
static void test_prepare_and_last(void **state)
{
    (void)state;
    at_analyzer_opts ao;
    at_analyzer_opts_default(&ao);
    at_analyzer *an = at_analyzer_new(&ao, NULL);
    at_metrics want;
    at_fast_info iwant;
    assert_int_equal(at_analyzer_run(an, &ins->jobs[1], &want, &iwant), AT_OK);
    at_pool *p = new_pool(2, AT_POOL_FIFO, 0);
    const at_layer_job *ok = &ins->jobs[1], *missing = NULL;
    at_pool_job *j[2];
    for (int i = 0; i < 2; i++) {
        j[i] = at_pool_job_new(i ? "bad" : "good", 0, NULL);
        j[i]->prepare = prepare_from_user;
        j[i]->user = i ? (void *)&missing : (void *)&ok;
        assert_int_equal(at_pool_submit(p, j[i]), AT_OK);
    }
    collect(p, j, 2);
    for (int i = 0; i < 2; i++) {
        at_pool_job *r = j[i];
        if (!strcmp(r->key, "good")) {
            same_result(r, AT_OK, &want, &iwant);
            assert_non_null(r->evals);
        } else {
            assert_int_equal(r->rc, AT_ERR_IO);
            assert_string_equal(r->error, "cannot read the weights");
            assert_null(r->evals);
        }
        at_pool_job_free(r);
    }
    at_pool_free(p);
    at_analyzer_free(an);

    /* Fast mode: a layer's state stays for its next snapshot unless its job was the last. */
    float *w = fx_spiked(FR, FC, 40, 12.0, 0.7, 90);
    at_tensor t = fx_tensor(w, FR, FC);
    for (int last = 0; last <= 1; last++) {
        p = new_pool(1, AT_POOL_FIFO, 1);
        at_pool_job *r = at_pool_job_new("layer", 0, NULL);
        r->in = (at_layer_job){.w = &t};
        r->last = last;
        assert_int_equal(at_pool_submit(p, r), AT_OK);
        collect(p, &r, 1);
        assert_int_equal(r->rc, AT_OK);
        at_pool_progress pr;
        at_pool_progress_get(p, &pr);
        if (last)
            assert_int_equal(pr.state_bytes, 0);
        else
            assert_true(pr.state_bytes > (size_t)FR * 4);
        at_pool_job_free(r);
        at_pool_free(p);
    }
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_equals_direct),
        cmocka_unit_test(test_fast_equals_direct),
        cmocka_unit_test(test_fifo_order),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_fd),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_prepare_and_last),
    };
    return cmocka_run_group_tests(tests, inputs_make, inputs_free);
}
