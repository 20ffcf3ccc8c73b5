/* SPDX-License-Identifier: Apache-2.0 */
/* Monitor absent, slow, or restarted mid-run, and snapshots larger than the budget: the agent's
 * memory stays within its budget, a layer that does not fit is deferred to a later pass (never
 * lost, never sent twice), a due snapshot that meets an open one is dropped and counted, and
 * every snapshot that arrives complete has each layer once, with the bytes of the step its
 * message names. Assertions are on counts and bytes, never on wall time. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "wire.h"

#define LAYERS 4
#define ROWS 64
#define COLS 256 /* 64 KiB per layer, 256 KiB per snapshot */
#define LAYER_BYTES ((int64_t)ROWS * COLS * 4)
#define SNAPSHOT_BYTES (LAYERS * LAYER_BYTES)
#define EVERY 10 /* every pass of the tests is at a due step */

static at_agent *agent(const char *ep, int64_t budget)
{
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.budget_bytes = budget;
    o.interval = EVERY;
    o.linger_ms = 20000;
    at_agent *a = at_agent_new("run-drops", ep, &o);
    assert_non_null(a);
    return a;
}

/* n passes at the next due steps from *step on; counts completed snapshots in *sent. */
static void publish_many(at_agent *a, int n, int64_t *step, int64_t *sent)
{
    for (int i = 0; i < n; i++) {
        *step += EVERY;
        int rc = wire_publish(a, *step, LAYERS, ROWS, COLS);
        assert_true(rc == AT_OK || rc == AT_ERR_AGAIN);
        *sent += rc == AT_OK;
        at_agent_stats s;
        assert_int_equal(at_agent_stats_get(a, &s), AT_OK);
        assert_true(s.bytes_in_flight <= s.budget_bytes);
        assert_true(s.peak_in_flight <= s.budget_bytes);
    }
}

/* Receives into t until it counts `snapshots` complete ones (10 s at most per message). */
static void receive_until(at_feed *f, wire_tally *t, int64_t snapshots)
{
    while (t->snapshots < snapshots) {
        at_feed_msg *m = NULL;
        assert_int_equal(at_feed_recv(f, 10000, &m, NULL), AT_OK);
        wire_tally_add(t, m);
        at_feed_msg_free(m);
    }
}

static void test_monitor_absent_then_started(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "absent");
    /* Room for 14 layers (headers take a little more than the payload): the first 3 snapshots
     * queue whole, the 4th sends one layer, then waits; every later due step is dropped. */
    at_agent *a = agent(ep, SNAPSHOT_BYTES * 7 / 2);
    int64_t step = 0, sent = 0;
    publish_many(a, 20, &step, &sent);
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    assert_int_equal(sent, 3);
    assert_int_equal(s.snapshots_sent, 3);
    assert_int_equal(s.snapshots_dropped, 16);
    assert_int_equal(s.layers_sent, 13);
    assert_int_equal(s.sweep_layers, LAYERS);
    assert_int_equal(s.sweep_done, 1);
    assert_true(s.layers_deferred >= 3 * 16);
    assert_true(s.peak_in_flight >= 13 * LAYER_BYTES);
    assert_non_null(strstr(at_agent_last_drop(a), "still being sent"));

    /* The monitor arrives: what was queued is delivered; the open snapshot completes from the
     * weights of a later step, and new snapshots flow again. */
    at_feed *f = wire_feed(ep, 0);
    wire_tally t;
    wire_tally_init(&t);
    receive_until(f, &t, 3);
    publish_many(a, 2, &step, &sent);
    wire_close(a, f, &t, 0);
    assert_int_equal(t.bad, 0);
    assert_int_equal(t.incomplete, 0);
    assert_int_equal(t.snapshots, 5);
    assert_int_equal(t.spanning, 1); /* the 4th: its first layer from step 40, the rest later */
    assert_int_equal(t.layers, 5 * LAYERS);
    assert_int_equal(t.goodbyes, 1);
    /* The goodbye carries the final count: step 210, due while the 4th was still open, too. */
    assert_int_equal(t.dropped_reported, 17);
    at_feed_free(f);
}

typedef struct slow_reader {
    at_feed *f;
    wire_tally t;
} slow_reader;

static void *read_slowly(void *arg)
{
    slow_reader *r = arg;
    wire_drain(r->f, &r->t, 20000, 2000);
    return NULL;
}

static void test_slow_monitor(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "slow");
    /* A monitor that queues at most 2 ZeroMQ messages and sleeps 2 ms per protocol message. */
    slow_reader r = {.f = wire_feed(ep, 2)};
    wire_tally_init(&r.t);
    pthread_t th;
    at_agent *a = agent(ep, SNAPSHOT_BYTES * 5 / 2);
    assert_int_equal(pthread_create(&th, NULL, read_slowly, &r), 0);
    int64_t step = 0, sent = 0;
    publish_many(a, 60, &step, &sent);
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    assert_true(sent >= 2);
    assert_int_equal(s.snapshots_sent, sent);
    at_agent_free(a);
    pthread_join(th, NULL);
    assert_int_equal(r.t.bad, 0);
    assert_int_equal(r.t.snapshots, sent);
    /* The last snapshot may have been left open: its layers arrived, its end never did. */
    assert_true(r.t.incomplete <= 1);
    assert_int_equal(r.t.layers, s.layers_sent);
    assert_int_equal(r.t.dropped_reported, s.snapshots_dropped);
    at_feed_free(r.f);
}

static void test_monitor_restarted_mid_run(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "restart");
    at_feed *f = wire_feed(ep, 0);
    at_agent *a = agent(ep, SNAPSHOT_BYTES * 4);
    int64_t step = 0, sent = 0;
    publish_many(a, 3, &step, &sent);
    wire_tally t1;
    wire_tally_init(&t1);
    receive_until(f, &t1, 3);
    assert_int_equal(t1.bad, 0);
    at_feed_free(f); /* the monitor dies */

    publish_many(a, 10, &step, &sent); /* nobody listening: queue, then defer and drop */
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    assert_true(s.snapshots_dropped > 0);

    f = wire_feed(ep, 0); /* a new monitor on the same endpoint */
    wire_tally t2;
    wire_tally_init(&t2);
    /* It has never seen the run's hello: it asks, and the agent answers on its next call. */
    for (int i = 0; i < 1000 && t2.hellos == 0; i++) { /* 10 s: a loaded machine is slow */
        at_feed_msg *m = NULL;
        if (at_feed_recv(f, 10, &m, NULL) == AT_OK) {
            wire_tally_add(&t2, m);
            at_feed_msg_free(m);
        }
        at_agent_should_stop(a, NULL, 0);
    }
    assert_int_equal(t2.hellos, 1);
    int64_t before = sent;
    publish_many(a, 4, &step, &sent);
    wire_close(a, f, &t2, 0);
    assert_int_equal(t2.bad, 0);
    assert_true(sent >= before + 3);
    assert_true(t2.snapshots >= 3); /* the snapshots after the restart arrived complete */
    assert_int_equal(t2.goodbyes, 1);
    assert_true(at_feed_run_find(f, "run-drops")->hello_seen);
    at_feed_free(f);
}

/* A snapshot twice the budget goes out over several passes, each layer once, each carrying
 * the step of the weights it was copied from; the due steps it spans are dropped. */
static void test_snapshot_larger_than_budget_streams(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "huge");
    at_agent *a = agent(ep, SNAPSHOT_BYTES / 2); /* one layer and its header fit, not two */
    int64_t step = 0, sent = 0;
    publish_many(a, 1, &step, &sent); /* no monitor yet: layer 0 queued, the rest deferred */
    at_feed *f = wire_feed(ep, 0);
    wire_tally t;
    wire_tally_init(&t);
    for (int i = 0; i < 2000 && t.snapshots < 2; i++) {
        publish_many(a, 1, &step, &sent);
        at_feed_msg *m = NULL;
        while (at_feed_recv(f, 1, &m, NULL) == AT_OK) {
            wire_tally_add(&t, m);
            at_feed_msg_free(m);
        }
    }
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    wire_close(a, f, &t, 0);
    assert_int_equal(t.bad, 0);
    assert_int_equal(t.incomplete, 0);
    assert_true(t.snapshots >= 2);
    assert_true(t.spanning >= 1); /* the first: layer 0 from step 10, the others later */
    assert_int_equal(t.layers, s.layers_sent);
    assert_true(s.snapshots_dropped >= 1);
    assert_int_equal(t.dropped_reported, s.snapshots_dropped);
    assert_true(s.peak_in_flight <= SNAPSHOT_BYTES / 2);
    at_feed_free(f);
}

/* A layer larger than an explicit budget is left out of every snapshot, and said so: a skip
 * message, AT_ERR_SIZE, a count and a reason; the rest of the snapshot completes. */
static void test_layer_that_never_fits(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "never");
    at_feed *f = wire_feed(ep, 0);
    at_agent *a = agent(ep, LAYER_BYTES / 2);
    int64_t small[2] = {4, 4}, big[2] = {ROWS, COLS};
    float *w = calloc((size_t)(ROWS * COLS), sizeof *w);
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(at_agent_snapshot_begin(a, EVERY * (pass + 1)), AT_OK);
        wire_pattern((unsigned char *)w, 64, EVERY * (pass + 1), 0);
        assert_int_equal(at_agent_publish(a, "layer0.weight", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2,
                                          small, w, 0),
                         AT_OK);
        assert_int_equal(
            at_agent_publish(a, "huge.weight", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, big, w, 0),
            AT_ERR_SIZE);
        assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    }
    assert_non_null(strstr(at_agent_last_drop(a), "huge.weight"));
    assert_non_null(strstr(at_agent_last_error(a), "larger than the byte budget"));
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    assert_int_equal(s.layers_skipped, 2);
    assert_int_equal(s.snapshots_sent, 2);
    assert_int_equal(s.snapshots_dropped, 0);
    wire_tally t;
    wire_tally_init(&t);
    wire_close(a, f, &t, 0);
    assert_int_equal(t.bad, 0);
    assert_int_equal(t.snapshots, 2);
    assert_int_equal(t.skips, 2);
    free(w);
    at_feed_free(f);
}

/* The default budget grows to twice the largest layer, so a layer above 128 MiB still goes. */
static void test_automatic_budget(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "auto");
    at_agent_opts o;
    at_agent_opts_default(&o);
    assert_int_equal(o.budget_bytes, 0);
    o.linger_ms = 0;
    at_agent *a = at_agent_new("run-auto", ep, &o);
    assert_non_null(a);
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    assert_int_equal(s.budget_bytes, (int64_t)256 << 20);
    int64_t shape[2] = {(int64_t)5 << 20, 8}; /* 160 MiB of f32 */
    void *w = calloc((size_t)(shape[0] * shape[1]), 4);
    assert_non_null(w);
    assert_int_equal(at_agent_snapshot_begin(a, 0), AT_OK);
    assert_int_equal(at_agent_layer_wanted(a, (uint64_t)shape[0] * (uint64_t)shape[1] * 4), 1);
    assert_int_equal(at_agent_publish(a, "big", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w, 0),
                     AT_OK);
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    at_agent_stats_get(a, &s);
    assert_true(s.budget_bytes >= (int64_t)320 << 20);
    assert_int_equal(s.layers_skipped, 0);
    free(w);
    at_agent_free(a);
}

/* at_agent_layer_wanted and data NULL: a position already sent, or with no room now, needs no
 * copy; AT_AGENT_ELSEWHERE holds another rank's position. A later pass that visits another
 * layer list abandons the snapshot (counted, said, and its end tells the monitor). */
static void test_positions(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "positions");
    at_agent *a = agent(ep, LAYER_BYTES + 4096); /* one layer at a time */
    int64_t shape[2] = {ROWS, COLS};
    unsigned char *w = malloc((size_t)LAYER_BYTES);
    const char *names[3] = {"a", "b", "other-rank"};
    /* No monitor yet: "a" stays queued, so "b" finds no room. */
    assert_int_equal(at_agent_snapshot_begin(a, 10), AT_OK);
    for (int i = 0; i < 3; i++) {
        wire_pattern(w, (size_t)LAYER_BYTES, 10, i);
        int wanted = at_agent_layer_wanted(a, (uint64_t)LAYER_BYTES);
        assert_int_equal(wanted, i == 0);
        assert_int_equal(at_agent_publish(a, names[i], AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape,
                                          wanted ? w : NULL, i == 2 ? AT_AGENT_ELSEWHERE : 0),
                         i == 1 ? AT_ERR_AGAIN : AT_OK);
    }
    assert_int_equal(at_agent_snapshot_end(a), AT_ERR_AGAIN); /* "b" is still to send */
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    assert_int_equal(s.sweep_layers, 3);
    assert_int_equal(s.sweep_done, 2);
    assert_int_equal(s.layers_deferred, 0); /* data NULL: nothing was offered */

    /* The monitor drains "a"; passes at step 11 (no due step: the snapshot just continues)
     * send "b" once there is room, and nothing else again. */
    at_feed *f = wire_feed(ep, 0);
    int rc = AT_ERR_AGAIN;
    for (int k = 0; k < 2000 && rc != AT_OK; k++) {
        usleep(2000);
        assert_int_equal(at_agent_snapshot_due(a, 11), 1);
        assert_int_equal(at_agent_snapshot_begin(a, 11), AT_OK);
        for (int i = 0; i < 3; i++) {
            wire_pattern(w, (size_t)LAYER_BYTES, 11, i);
            int wanted = at_agent_layer_wanted(a, (uint64_t)LAYER_BYTES);
            assert_true(i == 1 || !wanted);
            at_agent_publish(a, names[i], AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape,
                             wanted ? w : NULL, i == 2 ? AT_AGENT_ELSEWHERE : 0);
        }
        rc = at_agent_snapshot_end(a);
    }
    assert_int_equal(rc, AT_OK);
    at_agent_stats_get(a, &s);
    assert_int_equal(s.snapshots_dropped, 0);
    assert_int_equal(s.sweep_layers, 0);
    assert_int_equal(s.layers_sent, 2);

    /* The next snapshot's second pass names another layer: abandoned. */
    const char *renamed[3] = {"a", "renamed", "other-rank"};
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(at_agent_snapshot_begin(a, 20 + pass), AT_OK);
        for (int i = 0; i < 3; i++) {
            wire_pattern(w, (size_t)LAYER_BYTES, 20 + pass, i);
            int r =
                at_agent_publish(a, (pass ? renamed : names)[i], AT_PROTO_KIND_LINEAR, AT_PROTO_F32,
                                 2, shape, i == 1 ? NULL : w, i == 2 ? AT_AGENT_ELSEWHERE : 0);
            /* "a" goes once "b" of the last snapshot has been written; the position another
             * rank sends is held (AT_OK) on the first pass only. */
            if (i == 0)
                assert_true(r == AT_OK || r == AT_ERR_AGAIN);
            else
                assert_int_equal(r, pass == 0 && i == 2 ? AT_OK : AT_ERR_AGAIN);
        }
        assert_int_equal(at_agent_snapshot_end(a), AT_ERR_AGAIN);
    }
    at_agent_stats_get(a, &s);
    assert_int_equal(s.snapshots_dropped, 1);
    assert_non_null(strstr(at_agent_last_drop(a), "abandoned"));
    assert_int_equal(at_agent_snapshot_due(a, 22), 0); /* nothing open, no due step */
    wire_tally t;
    wire_tally_init(&t);
    t.elsewhere = 1;
    wire_close(a, f, &t, 0);
    assert_int_equal(t.bad, 0);
    assert_int_equal(t.snapshots, 1);
    assert_int_equal(t.spanning, 1);
    assert_int_equal(t.incomplete, 1); /* the abandoned one: "a" of "a" and "b" */
    free(w);
    at_feed_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monitor_absent_then_started),
        cmocka_unit_test(test_slow_monitor),
        cmocka_unit_test(test_monitor_restarted_mid_run),
        cmocka_unit_test(test_snapshot_larger_than_budget_streams),
        cmocka_unit_test(test_layer_that_never_fits),
        cmocka_unit_test(test_automatic_budget),
        cmocka_unit_test(test_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
