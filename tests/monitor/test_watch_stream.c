/* SPDX-License-Identifier: Apache-2.0 */
/* test_watch_stream.c -- snapshots of any size through `alphatop watch --headless`: a model
 * far larger than the agent's byte budget streams through over several steps with nothing
 * dropped, and its results equal `alphatop scan` of the same weights; bf16 on the wire gives
 * the same results, bit for bit, as the same values widened to f32 and sent; a trainer killed
 * mid-snapshot, a monitor restarted mid-snapshot and a slice missing from a sharded layer each
 * leave an incomplete snapshot that is said to be one and never judged as a whole, and the
 * next snapshot is fine; slices from two ranks give the unsharded layer's alpha. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alphatop/agent.h"
#include "alphatop/htsr.h"
#include "alphatop/rng.h"
#include "mon_util.h"
#include "testfiles.h"

#define TIMEOUT 600.0

/* Heavy-tailed seeded weights, rows x cols: N(0, 1/cols) noise plus 24 rank-one spikes whose
 * strengths fall off as a power law, so a power law fits the top of the spectrum. */
static float *spiked(int64_t rows, int64_t cols, uint64_t seed)
{
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    double *u = malloc((size_t)rows * sizeof *u), *v = malloc((size_t)cols * sizeof *v);
    at_rng r;
    at_rng_seed(&r, seed);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)(at_rng_normal(&r) / sqrt((double)cols));
    for (int k = 1; k <= 24; k++) {
        double s = 4.0 * pow(k, -0.7);
        for (int64_t i = 0; i < rows; i++)
            u[i] = at_rng_normal(&r) / sqrt((double)rows);
        for (int64_t j = 0; j < cols; j++)
            v[j] = at_rng_normal(&r) / sqrt((double)cols);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                w[i * cols + j] += (float)(s * u[i] * v[j]);
    }
    free(u);
    free(v);
    return w;
}

/* bfloat16 of x, rounded to nearest even. */
static uint16_t to_bf16(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

static float from_bf16(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float x;
    memcpy(&x, &b, 4);
    return x;
}

static at_agent *agent(const char *run, const char *ep, int64_t budget, int64_t rank, int64_t world)
{
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.interval = 1000000; /* no due step while a snapshot goes out: nothing is dropped */
    o.budget_bytes = budget;
    o.rank = rank;
    o.world_size = world;
    o.linger_ms = 20000;
    at_agent *a = at_agent_new(run, ep, &o);
    if (!a)
        fail_msg("agent: %s", at_agent_last_error(NULL));
    return a;
}

/* Passes from *step on until the snapshot of n layers (data[i], rows x cols of dtype) is
 * complete; the first `hold` positions with no data on the first pass when hold > 0. Returns
 * the passes it took. */
static int send_snapshot(at_agent *a, int64_t *step, int n, void *const *data, at_proto_dtype dtype,
                         int64_t rows, int64_t cols)
{
    int passes = 0, rc = AT_ERR_AGAIN;
    while (rc != AT_OK) {
        assert_true(passes < 20000);
        if (passes++)
            mon_sleep(0.002);
        assert_int_equal(at_agent_snapshot_begin(a, (*step)++), AT_OK);
        for (int i = 0; i < n; i++) {
            char name[32];
            snprintf(name, sizeof name, "blocks.%d.weight", i);
            int r = at_agent_publish(a, name, AT_PROTO_KIND_LINEAR, dtype, 2,
                                     (int64_t[]){rows, cols}, data[i], 0);
            assert_true(r == AT_OK || r == AT_ERR_AGAIN);
        }
        rc = at_agent_snapshot_end(a);
    }
    return passes;
}

/* The layer line of name whose snapshot column is step, or NULL. */
static const cJSON *layer_at(const mon *m, const char *name, double step)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, m->seen)
    {
        if (!strcmp(mon_str(o, "type"), "layer") && !strcmp(mon_str(o, "name"), name) &&
            mon_num(o, "step") == step)
            return o;
    }
    return NULL;
}

/* Every number the two layer lines both have is the same double; returns how many. */
static int same_numbers(const cJSON *a, const cJSON *b, const char *what)
{
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a)
    {
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
        if (!cJSON_IsNumber(x) || !cJSON_IsNumber(y) || !strcmp(x->string, "step") ||
            !strcmp(x->string, "weights_step"))
            continue;
        if (!(x->valuedouble == y->valuedouble))
            fail_msg("%s %s %s: %.17g != %.17g", what, mon_str(a, "name"), x->string,
                     x->valuedouble, y->valuedouble);
        n++;
    }
    return n;
}

/* Events of kind among the lines seen that hold text; returns how many. */
static int events_with(const mon *m, const char *kind, const char *text)
{
    int n = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, m->seen) n += !strcmp(mon_str(o, "type"), "event") &&
                                        !strcmp(mon_str(o, "kind"), kind) &&
                                        strstr(mon_str(o, "text"), text) != NULL;
    return n;
}

/* Starts a headless monitor on the endpoint of tag (written to ep, cap bytes) that exits after
 * max_snapshots snapshots. */
static void watch(mon *m, char *ep, size_t cap, const char *tag, const char *max_snapshots)
{
    mon_endpoint(ep, cap, tag);
    const char *extra[] = {"--max-snapshots", max_snapshots, NULL};
    assert_int_equal(mon_watch(m, ep, extra), 0);
}

#define LAYERS 40
#define DIM 1024

/* 40 layers of 1024 x 1024 (80 MiB as bf16, 160 MiB as f32) through an 8 MiB budget. */
static void test_larger_than_budget(void **state)
{
    (void)state;
    char ep[256];
    mon m;
    watch(&m, ep, sizeof ep, "big", "2");
    void *half[LAYERS], *wide[LAYERS];
    tf_tensor files[LAYERS];
    char names[LAYERS][32];
    const size_t n = (size_t)DIM * DIM;
    for (int i = 0; i < LAYERS; i++) {
        float *w = spiked(DIM, DIM, 100 + (uint64_t)i);
        uint16_t *h = malloc(n * sizeof *h);
        for (size_t k = 0; k < n; k++)
            w[k] = from_bf16(h[k] = to_bf16(w[k]));
        half[i] = h;
        wide[i] = w;
        snprintf(names[i], sizeof names[i], "blocks.%d.weight", i);
        files[i] = (tf_tensor){names[i], "F32", 2, {DIM, DIM}, w, n * 4, 0, 0};
    }
    at_agent *a = agent("stream-big", ep, (int64_t)8 << 20, 0, 1);
    int64_t step = 1000;
    const int64_t first_bf16 = step;
    int passes = send_snapshot(a, &step, LAYERS, half, AT_PROTO_BF16, DIM, DIM);
    const int64_t first_f32 = step;
    passes += send_snapshot(a, &step, LAYERS, wide, AT_PROTO_F32, DIM, DIM);
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    assert_int_equal(s.snapshots_sent, 2);
    assert_int_equal(s.snapshots_dropped, 0);
    assert_int_equal(s.layers_sent, 2 * LAYERS);
    assert_int_equal(s.layers_skipped, 0);
    assert_true(s.peak_in_flight <= (int64_t)8 << 20);
    assert_true(passes > 10); /* 240 MiB through 8 MiB: many steps */
    print_message("2 snapshots of 40 x 1024 x 1024 in %d passes through an 8 MiB budget\n", passes);
    mon_drain(&m, TIMEOUT); /* until it exits: --max-snapshots 2, both complete */
    at_agent_free(a);

    tf_write_safetensors(tf_path("big.safetensors"), files, LAYERS, 8, 0);
    char *out = NULL;
    const char *scan[] = {"scan", "--json", tf_path("big.safetensors"), NULL};
    assert_int_equal(mon_run(scan, &out, TIMEOUT), 0);
    int compared = 0, spanning = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        if (o && !strcmp(mon_str(o, "type"), "layer")) {
            const cJSON *b = layer_at(&m, mon_str(o, "name"), (double)first_bf16);
            const cJSON *f = layer_at(&m, mon_str(o, "name"), (double)first_f32);
            assert_non_null(b);
            assert_non_null(f);
            assert_true(same_numbers(o, f, "scan vs f32 on the wire") >= 25);
            assert_true(same_numbers(f, b, "f32 vs bf16 on the wire") >= 25);
            spanning += mon_num(b, "weights_step") > mon_num(b, "step");
            compared++;
        }
        cJSON_Delete(o);
    }
    free(out);
    assert_int_equal(compared, LAYERS);
    assert_true(spanning > 0);
    assert_int_equal(events_with(&m, "drop", ""), 0);
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    for (int i = 0; i < LAYERS; i++) {
        free(half[i]);
        free(wide[i]);
    }
}

/* Positions 0..sent-1 with data, the rest deferred: an open snapshot. */
static void send_part(at_agent *a, int64_t step, int n, int sent, void *const *data)
{
    assert_int_equal(at_agent_snapshot_begin(a, step), AT_OK);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "blocks.%d.weight", i);
        at_agent_publish(a, name, AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, (int64_t[]){96, 64},
                         i < sent ? data[i] : NULL, 0);
    }
    assert_int_equal(at_agent_snapshot_end(a), AT_ERR_AGAIN);
}

static void test_trainer_killed_mid_snapshot(void **state)
{
    (void)state;
    char ep[256];
    mon m;
    watch(&m, ep, sizeof ep, "killed", "1");
    void *w[6];
    for (int i = 0; i < 6; i++)
        w[i] = spiked(96, 64, 200 + (uint64_t)i);
    pid_t child = fork();
    if (child == 0) {
        at_agent *a = agent("stream-killed", ep, 0, 0, 1);
        send_part(a, 10, 6, 3, w);
        mon_sleep(1.0);
        raise(SIGKILL);
    }
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFSIGNALED(st));
    assert_non_null(mon_wait_for(&m, "layer", NULL, TIMEOUT));
    /* The run goes on in a new process: the old snapshot is incomplete, the new one fine. */
    at_agent *a = agent("stream-killed", ep, 0, 0, 1);
    int64_t step = 20;
    send_snapshot(a, &step, 6, w, AT_PROTO_F32, 96, 64);
    mon_drain(&m, TIMEOUT);
    at_agent_free(a);
    assert_int_equal(events_with(&m, "drop",
                                 "snapshot 0 (step 10) is incomplete and is not "
                                 "judged as a whole: 3 layers arrived"),
                     1);
    assert_int_equal(events_with(&m, "drop", "the trainer restarted"), 1);
    assert_non_null(layer_at(&m, "blocks.5.weight", 20));
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    for (int i = 0; i < 6; i++)
        free(w[i]);
}

static void test_monitor_restarted_mid_snapshot(void **state)
{
    (void)state;
    char ep[256];
    mon m;
    watch(&m, ep, sizeof ep, "restarted", "1");
    void *w[6];
    for (int i = 0; i < 6; i++)
        w[i] = spiked(96, 64, 300 + (uint64_t)i);
    at_agent *a = agent("stream-restarted", ep, 0, 0, 1);
    send_part(a, 10, 6, 3, w);
    for (int i = 0; i < 3; i++)
        assert_non_null(mon_wait_for(&m, "layer", NULL, TIMEOUT));
    kill(m.pid, SIGKILL);
    assert_int_equal(mon_finish(&m, TIMEOUT), 128 + SIGKILL);
    watch(&m, ep, sizeof ep, "restarted", "1"); /* the same endpoint again */
    int64_t step = 11;
    send_snapshot(a, &step, 6, w, AT_PROTO_F32, 96, 64); /* the rest of snapshot 0 */
    const int64_t next = step;
    send_snapshot(a, &step, 6, w, AT_PROTO_F32, 96, 64);
    mon_drain(&m, TIMEOUT);
    at_agent_free(a);
    assert_int_equal(events_with(&m, "drop",
                                 "3 of 6 layers missing (layer 0, layer 1, layer 2): "
                                 "the monitor started after the trainer had sent "
                                 "its first layers"),
                     1);
    assert_non_null(layer_at(&m, "blocks.0.weight", (double)next));
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    for (int i = 0; i < 6; i++)
        free(w[i]);
}

/* Rank r's part of snapshot at step: its row slice of "tp.fc" (or none: AT_AGENT_ELSEWHERE)
 * and, on rank 0, "head" whole. */
static void send_rank(at_agent *a, int64_t step, int rank, const float *whole, int with_slice)
{
    assert_int_equal(at_agent_snapshot_begin(a, step), AT_OK);
    int64_t full[2] = {128, 96}, shape[2] = {64, 96}, off[2] = {64 * rank, 0};
    assert_int_equal(at_agent_publish_slice(a, "tp.fc", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2,
                                            shape, whole + 64 * 96 * rank,
                                            with_slice ? 0 : AT_AGENT_ELSEWHERE, full, off),
                     AT_OK);
    assert_int_equal(at_agent_publish(a, "head", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, full, whole,
                                      rank ? AT_AGENT_ELSEWHERE : 0),
                     AT_OK);
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
}

static void test_sharded_slice_missing(void **state)
{
    (void)state;
    char ep[256];
    mon m;
    watch(&m, ep, sizeof ep, "sharded", "1");
    float *whole = spiked(128, 96, 400);
    at_agent *r0 = agent("stream-sharded", ep, 0, 0, 2), *r1 = agent("stream-sharded", ep, 0, 1, 2);
    assert_non_null(mon_wait_for(&m, "event", "hello", TIMEOUT));
    assert_non_null(mon_wait_for(&m, "event", "hello", TIMEOUT));
    send_rank(r0, 10, 0, whole, 1);
    send_rank(r1, 10, 1, whole, 0); /* rank 1's slice of snapshot 0 is missing */
    assert_non_null(mon_wait_for(&m, "event", "drop", TIMEOUT));
    send_rank(r0, 20, 0, whole, 1);
    send_rank(r1, 20, 1, whole, 1);
    mon_drain(&m, TIMEOUT);
    at_agent_free(r0);
    at_agent_free(r1);
    assert_int_equal(events_with(&m, "drop",
                                 "1 of 2 layers missing (tp.fc): tp.fc: its slices do "
                                 "not cover it"),
                     1);
    at_htsr *h = at_htsr_new();
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    at_tensor t = {.data = whole, .dtype = AT_DTYPE_F32, .ndim = 2, .shape = {128, 96}};
    at_metrics ref;
    assert_int_equal(at_htsr_analyze(h, &t, &o, &ref), AT_OK);
    at_htsr_free(h);
    const cJSON *fc = layer_at(&m, "tp.fc", 20), *head = layer_at(&m, "head", 20);
    assert_non_null(fc);
    assert_non_null(head);
    /* The test's BLAS may run on more threads than the monitor's: the last bits may differ. */
    assert_true(fabs(mon_num(fc, "alpha") - ref.alpha) <= 1e-12 * ref.alpha);
    same_numbers(fc, head, "assembled vs whole");
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    free(whole);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_larger_than_budget),
        cmocka_unit_test(test_trainer_killed_mid_snapshot),
        cmocka_unit_test(test_monitor_restarted_mid_snapshot),
        cmocka_unit_test(test_sharded_slice_missing),
    };
    /* scan's numbers equal the monitor's where both run single-threaded BLAS (the monitor's
     * threads always do). */
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    if (getenv("AT_TEST_FILTER"))
        cmocka_set_test_filter(getenv("AT_TEST_FILTER"));
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return rc;
}
