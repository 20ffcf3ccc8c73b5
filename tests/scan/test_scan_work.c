/* SPDX-License-Identifier: Apache-2.0 */
/* test_scan_work.c -- scan's tasks (tui/cmd/scan_work.h): the runner's results equal
 * at_analyzer_run's on the same weights, bit for bit, whatever the thread count, read by file
 * and offset; an all-zero layer fails before any analysis, a vanished file is a clear error;
 * tasks start only while their memory fits the budget;
 * the byte form of tasks, results and setups reads back what was written and refuses every
 * truncation; the start order puts large groups first and keeps a group together; the progress
 * line's text. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckpt.h"
#include "progress.h"
#include "scan_work.h"
#include "testfiles.h"

#define NL 5

/* A checkpoint of NL layers (F32, BF16, F64, an all-zero F32, F32), opened lazily, the float32
 * values of each (w), and the tasks that analyse them. */
typedef struct fixture {
    at_ckpt *c;
    scan_task t[NL];
    float *w[NL];
    char path[512];
} fixture;

static void make(fixture *f)
{
    static const int64_t shape[NL][2] = {{60, 40}, {48, 64}, {30, 50}, {40, 20}, {70, 35}};
    uint16_t *bf = malloc(48 * 64 * sizeof *bf);
    double *d = malloc(30 * 50 * sizeof *d);
    assert_non_null(bf);
    assert_non_null(d);
    for (int i = 0; i < NL; i++)
        f->w[i] = tf_gauss((size_t)(shape[i][0] * shape[i][1]), 100 + (uint64_t)i, 0.2);
    for (int i = 0; i < 48 * 64; i++) {
        bf[i] = tf_f32_to_bf16_exact(f->w[1][i]);
        uint32_t u = (uint32_t)bf[i] << 16;
        memcpy(&f->w[1][i], &u, sizeof u);
    }
    for (int i = 0; i < 30 * 50; i++)
        d[i] = f->w[2][i];
    memset(f->w[3], 0, 40 * 20 * sizeof(float));
    const tf_tensor t[NL] = {
        {"a.weight", "F32", 2, {60, 40}, f->w[0], 60 * 40 * 4, 0, 0},
        {"b.weight", "BF16", 2, {48, 64}, bf, 48 * 64 * 2, 0, 0},
        {"c.weight", "F64", 2, {30, 50}, d, 30 * 50 * 8, 0, 0},
        {"z.weight", "F32", 2, {40, 20}, f->w[3], 40 * 20 * 4, 0, 0},
        {"e.weight", "F32", 2, {70, 35}, f->w[4], 70 * 35 * 4, 0, 0},
    };
    snprintf(f->path, sizeof f->path, "%s", tf_path("work.safetensors"));
    tf_write_safetensors(f->path, t, NL, 8, 0);
    at_ckpt_opts lazy = {.lazy = 1};
    f->c = at_ckpt_open(f->path, &lazy);
    assert_int_equal(at_ckpt_status(f->c), AT_OK);
    for (int i = 0; i < NL; i++) {
        const at_ckpt_layer *l = at_ckpt_layer_at(f->c, (size_t)i);
        f->t[i] = (scan_task){.id = 10 + i, .kind = SCAN_PLAIN, .n = 1, .group = 10 + i, .last = 1};
        f->t[i].t[0] = (scan_tensor){l->tensor, l->loc};
        snprintf(f->t[i].key, sizeof f->t[i].key, "#%d", i);
        scan_task_cost(&f->t[i]);
    }
    free(bf);
    free(d);
}

static void unmake(fixture *f)
{
    at_ckpt_close(f->c);
    for (int i = 0; i < NL; i++)
        free(f->w[i]);
}

/* Bit for bit: every field before mode, then mode (no padding among them). */
static void same_metrics(const at_metrics *a, const at_metrics *b)
{
    assert_memory_equal(a, b, offsetof(at_metrics, mode));
    assert_int_equal(a->mode, b->mode);
}

static void test_runner(void **state)
{
    (void)state;
    fixture f;
    make(&f);
    for (int fast = 0; fast <= 1; fast++) {
        at_analyzer_opts ao;
        at_analyzer_opts_default(&ao);
        ao.fast = fast;
        ao.keep_evals = !fast;
        at_analyzer *an = at_analyzer_new(&ao, NULL);
        at_metrics want[NL];
        for (int i = 0; i < NL; i++) {
            at_tensor w = at_ckpt_layer_at(f.c, (size_t)i)->tensor;
            w.data = f.w[i];
            w.dtype = AT_DTYPE_F32;
            assert_int_equal(at_analyzer_run(an, &(at_layer_job){.w = &w}, &want[i], NULL),
                             i == 3 && fast ? AT_ERR_EMPTY : AT_OK);
        }
        for (int threads = 1; threads <= 3; threads += 2) {
            int status = 1;
            scan_runner *r = scan_runner_new(&(scan_setup){ao, threads, 0}, &status);
            assert_non_null(r);
            assert_int_equal(status, AT_OK);
            assert_int_equal(scan_runner_threads(r), threads);
            for (int i = 0; i < NL; i++)
                assert_int_equal(scan_runner_submit(r, &f.t[i]), AT_OK);
            int seen = 0;
            while (seen < NL) {
                scan_result res;
                if (!scan_runner_next(r, &res)) {
                    scan_runner_wait(r, 100);
                    continue;
                }
                const int i = (int)res.id - 10;
                assert_true(i >= 0 && i < NL);
                seen++;
                if (i == 3) {
                    /* Zero weights are found before anything is converted or analysed. */
                    assert_int_equal(res.rc, AT_ERR_EMPTY);
                    assert_int_equal(res.prepared, 0);
                    assert_string_equal(res.error, "cannot analyse: all weights are zero");
                } else {
                    assert_int_equal(res.rc, AT_OK);
                    assert_int_equal(res.prepared, 1);
                    same_metrics(&res.m, &want[i]);
                    assert_true(fast ? res.evals == NULL
                                     : res.num_evals == (size_t)want[i].num_evals);
                }
                scan_result_clear(&res);
            }
            assert_int_equal(scan_runner_pending(r), 0);
            scan_runner_free(r);
        }
        at_analyzer_free(an);
    }
    /* A task whose file is gone says so, naming it. */
    scan_task gone = f.t[0];
    gone.t[0].loc.file = "/nonexistent/x.safetensors";
    at_analyzer_opts ao;
    at_analyzer_opts_default(&ao);
    scan_runner *r = scan_runner_new(&(scan_setup){ao, 1, 0}, NULL);
    assert_int_equal(scan_runner_submit(r, &gone), AT_OK);
    scan_result res;
    while (!scan_runner_next(r, &res))
        scan_runner_wait(r, 100);
    assert_int_equal(res.rc, AT_ERR_NOTFOUND);
    assert_string_equal(res.error, "cannot read the weights: /nonexistent/x.safetensors: cannot "
                                   "open: No such file or directory");
    scan_result_clear(&res);
    assert_int_equal(scan_runner_submit(r, NULL), AT_ERR_ARG);
    scan_runner_free(r);
    scan_runner_free(NULL);
    unmake(&f);
}

/* Every task of a group after its first, and every group by its first task's cost. */
static void test_order(void **state)
{
    (void)state;
    scan_task t[6] = {0};
    const double cost[6] = {5, 9, 1, 9, 7, 3};
    const int64_t group[6] = {0, 1, 2, 3, 0, 2};
    for (int i = 0; i < 6; i++)
        t[i] = (scan_task){.id = i, .group = group[i], .cost = cost[i]};
    size_t order[6];
    assert_int_equal(scan_task_order(t, 6, order), AT_OK);
    /* groups 1 and 3 (9, a tie in group order), then 0 (5: tasks 0 and 4), then 2 (1). */
    const size_t want[6] = {1, 3, 0, 4, 2, 5};
    assert_memory_equal(order, want, sizeof want);
}

/* Each decoder reads back what its encoder wrote, and refuses every shorter input. */
static void test_bytes(void **state)
{
    (void)state;
    fixture f;
    make(&f);
    scan_task t = f.t[1];
    t.kind = SCAN_MERGE;
    t.n = 3;
    t.t[1] = f.t[2].t[0];
    t.t[2] = f.t[4].t[0];
    t.t[2].loc.file = NULL; /* only in this process's memory: not sent */
    t.lora_scale = 0.5;
    t.last = 0;
    t.group = 3;
    snprintf(t.key, sizeof t.key, "blocks.0.fc");
    scan_buf b = {0};
    scan_task_encode(&b, &t);
    assert_false(b.failed);
    char strings[3 * 4096 + 512];
    for (size_t cut = 0; cut <= b.n; cut++) {
        scan_task got;
        size_t pos = 0;
        const int rc = scan_task_decode(b.p, cut, &pos, &got, strings, sizeof strings);
        if (cut < b.n) {
            assert_int_equal(rc, AT_ERR_FORMAT);
            continue;
        }
        assert_int_equal(rc, AT_OK);
        assert_int_equal(pos, b.n);
        assert_int_equal(got.id, t.id);
        assert_int_equal(got.kind, SCAN_MERGE);
        assert_int_equal(got.n, 3);
        assert_int_equal(got.last, 0);
        assert_int_equal(got.group, 3);
        assert_true(got.lora_scale == 0.5 && got.cost == t.cost);
        assert_string_equal(got.key, "blocks.0.fc");
        for (int i = 0; i < 3; i++) {
            assert_memory_equal(got.t[i].shape.shape, t.t[i].shape.shape,
                                sizeof t.t[i].shape.shape);
            assert_int_equal(got.t[i].shape.ndim, t.t[i].shape.ndim);
            assert_int_equal(got.t[i].loc.offset, t.t[i].loc.offset);
            assert_int_equal(got.t[i].loc.stored, t.t[i].loc.stored);
            assert_memory_equal(got.t[i].loc.stride, t.t[i].loc.stride, sizeof t.t[i].loc.stride);
            assert_null(got.t[i].loc.mem);
        }
        assert_string_equal(got.t[0].loc.file, f.path);
        assert_null(got.t[2].loc.file);
        assert_false(scan_task_portable(&got));
        got.t[2].loc.file = f.path;
        assert_true(scan_task_portable(&got));
    }
    scan_buf_free(&b);

    scan_result r = {.id = 7, .rc = AT_ERR_NONFINITE, .prepared = 1, .seconds = 0.25};
    at_metrics_init(&r.m, AT_MODE_EXACT);
    r.m.alpha = 2.5;
    snprintf(r.error, sizeof r.error, "cannot analyse: weights contain 1 NaN and 0 Inf values");
    double evals[3] = {0.5, 1.5, 9.0};
    r.evals = evals;
    r.num_evals = 3;
    scan_result_encode(&b, &r);
    for (size_t cut = 0; cut <= b.n; cut++) {
        scan_result got;
        size_t pos = 0;
        const int rc = scan_result_decode(b.p, cut, &pos, &got);
        if (cut < b.n) {
            assert_int_equal(rc, AT_ERR_FORMAT);
            scan_result_clear(&got);
            continue;
        }
        assert_int_equal(rc, AT_OK);
        assert_int_equal(got.id, 7);
        assert_int_equal(got.rc, AT_ERR_NONFINITE);
        assert_int_equal(got.prepared, 1);
        assert_string_equal(got.error, r.error);
        same_metrics(&got.m, &r.m);
        assert_int_equal(got.num_evals, 3);
        assert_memory_equal(got.evals, evals, sizeof evals);
        scan_result_clear(&got);
    }
    scan_buf_free(&b);

    scan_setup setup = {.threads = 4, .max_memory = 3e9}, got;
    at_analyzer_opts_default(&setup.ao);
    setup.ao.fast = 1;
    setup.ao.htsr.min_evals = 3;
    scan_setup_encode(&b, &setup);
    size_t pos = 0;
    assert_int_equal(scan_setup_decode(b.p, b.n, &pos, &got), AT_OK);
    assert_memory_equal(&got.ao, &setup.ao, sizeof setup.ao);
    assert_int_equal(got.threads, 4);
    assert_true(got.max_memory == 3e9);
    pos = 0;
    assert_int_equal(scan_setup_decode(b.p, b.n - 1, &pos, &got), AT_ERR_FORMAT);
    scan_buf_free(&b);
    unmake(&f);
}

/* What a running task holds: a huge BF16 embedding read in panels counts its mapped pages and a
 * panel, not a float32 copy; the same layer whole (panels off) does. */
static void test_memory(void **state)
{
    (void)state;
    scan_task t = {.kind = SCAN_PLAIN, .n = 1};
    t.t[0].shape = (at_tensor){.kind = AT_KIND_LINEAR, .ndim = 2, .shape = {128256, 4096}};
    t.t[0].loc.stored = AT_CKPT_STORED_BF16;
    at_analyzer_opts ao;
    at_analyzer_opts_default(&ao);
    ao.fast = 1;
    const double panels = scan_task_memory(&t, &ao), stored = 128256.0 * 4096 * 2;
    ao.fast_opts.panel_bytes = 0;
    const double whole = scan_task_memory(&t, &ao);
    assert_true(panels > stored && panels < stored + 0.3e9);
    assert_true(whole > 3 * stored);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs every fixture task on threads threads within max_memory bytes, each sleeping 20 us per
 * weight first (the test hook); returns the wall time. */
static double timed_run(const fixture *f, int threads, double max_memory)
{
    at_analyzer_opts ao;
    at_analyzer_opts_default(&ao);
    setenv("ALPHATOP_TEST_SLEEP_NS_PER_WEIGHT", "20000", 1);
    scan_runner *r = scan_runner_new(&(scan_setup){ao, threads, max_memory}, NULL);
    unsetenv("ALPHATOP_TEST_SLEEP_NS_PER_WEIGHT");
    assert_non_null(r);
    const double t0 = mono();
    for (int i = 0; i < NL; i++)
        assert_int_equal(scan_runner_submit(r, &f->t[i]), AT_OK);
    for (int seen = 0; seen < NL;) {
        scan_result res;
        if (scan_runner_next(r, &res)) {
            seen++;
            scan_result_clear(&res);
        } else {
            scan_runner_wait(r, 100);
        }
    }
    const double wall = mono() - t0;
    scan_runner_free(r);
    return wall;
}

/* A task starts only while its memory fits: with no room at all each runs alone, so the sleeps
 * add up even on three threads; with room they overlap. */
static void test_budget(void **state)
{
    (void)state;
    fixture f;
    make(&f);
    double serial = 0.0;
    for (int i = 0; i < NL; i++)
        serial += 20e-6 * (double)(f.t[i].t[0].shape.shape[0] * f.t[i].t[0].shape.shape[1]);
    const double alone = timed_run(&f, 3, 1.0), together = timed_run(&f, 3, 0.0);
    print_message("%d tasks, %.3f s of sleep: %.3f s one at a time, %.3f s on 3 threads\n", NL,
                  serial, alone, together);
    assert_true(alone >= serial);
    assert_true(together < alone);
    unmake(&f);
}

static void test_progress(void **state)
{
    (void)state;
    char buf[200];
    at_progress_bar(buf, sizeof buf, 10, 3, 12, "layers", 0.3, 12.4, 28.6);
    assert_string_equal(buf, "[###.......] 3/12 layers  30%  0:12, 0:29 left");
    at_progress_bar(buf, sizeof buf, 4, 0, 12, "layers", 0.0, 1.0, -1);
    assert_string_equal(buf, "[....] 0/12 layers   0%  0:01, --:-- left");
    at_progress_bar(buf, sizeof buf, 4, 12, 12, "layers", 1.0, 3725, 0);
    assert_string_equal(buf, "[####] 12/12 layers 100%  1:02:05, 0:00 left");
    assert_string_equal(at_progress_clock(buf, sizeof buf, 59.6), "1:00");
    /* Work that ends within a second shows nothing; nothing is drawn, nothing to clear. */
    FILE *out = tmpfile();
    at_progress *p = at_progress_new("scan", "layers", out, 1);
    at_progress_update(p, 1, 2, 0.5, 1.0);
    at_progress_clear(p);
    at_progress_done(p, 2);
    assert_int_equal(ftell(out), 0);
    at_progress_free(p);
    fclose(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runner), cmocka_unit_test(test_order),
        cmocka_unit_test(test_bytes),  cmocka_unit_test(test_memory),
        cmocka_unit_test(test_budget), cmocka_unit_test(test_progress),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return rc;
}
