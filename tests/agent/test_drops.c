/* SPDX-License-Identifier: Apache-2.0 */
/* Monitor absent, slow, or restarted mid-run: the agent's memory stays within its budget, whole
 * snapshots are dropped and counted, and every snapshot that arrives is complete. Assertions are
 * on counts and bytes, never on wall time. */
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
#define SNAPSHOT_BYTES ((int64_t)LAYERS * ROWS * COLS * 4)

static at_agent *agent(const char *ep, int64_t budget)
{
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.budget_bytes = budget;
    o.linger_ms = 20000;
    at_agent *a = at_agent_new("run-drops", ep, &o);
    assert_non_null(a);
    return a;
}

/* Publishes n snapshots from seq *seq on, counting what the agent reports. */
static void publish_many(at_agent *a, int n, int64_t *seq, int64_t *sent, int64_t *dropped)
{
    for (int i = 0; i < n; i++, (*seq)++) {
        int rc = wire_publish(a, 10 * *seq, *seq, LAYERS, ROWS, COLS);
        assert_true(rc == AT_OK || rc == AT_ERR_AGAIN);
        *(rc == AT_OK ? sent : dropped) += 1;
        at_agent_stats s;
        assert_int_equal(at_agent_stats_get(a, &s), AT_OK);
        assert_true(s.bytes_in_flight <= s.budget_bytes);
        assert_true(s.peak_in_flight <= s.budget_bytes);
    }
}

static void test_monitor_absent_then_started(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "absent");
    /* Room for 3.5 snapshots: the first 3 queue, the rest are dropped whole. */
    at_agent *a = agent(ep, SNAPSHOT_BYTES * 7 / 2);
    int64_t seq = 0, sent = 0, dropped = 0;
    publish_many(a, 20, &seq, &sent, &dropped);
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    assert_int_equal(sent, 3);
    assert_int_equal(dropped, 17);
    assert_int_equal(s.snapshots_sent, 3);
    assert_int_equal(s.snapshots_dropped, 17);
    assert_true(s.peak_in_flight >= 3 * SNAPSHOT_BYTES);
    assert_string_not_equal(at_agent_last_error(a), "");

    /* The monitor arrives: what was queued is delivered whole; new snapshots flow again. */
    at_feed *f = wire_feed(ep, 0);
    wire_tally t;
    wire_tally_init(&t);
    while (t.snapshots < 3) {
        at_feed_msg *m = NULL;
        assert_int_equal(at_feed_recv(f, 10000, &m, NULL), AT_OK);
        wire_tally_add(&t, m);
        at_feed_msg_free(m);
    }
    publish_many(a, 2, &seq, &sent, &dropped);
    at_agent_free(a);
    wire_drain(f, &t, 10000, 0);
    assert_int_equal(t.bad, 0);
    assert_int_equal(t.snapshots, sent);
    assert_int_equal(t.layers, sent * LAYERS);
    assert_int_equal(t.goodbyes, 1);
    assert_int_equal(t.dropped_reported, dropped); /* the goodbye carries the final count */
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
    int64_t seq = 0, sent = 0, dropped = 0;
    publish_many(a, 60, &seq, &sent, &dropped);
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    assert_true(dropped > 0);
    assert_true(sent >= 2);
    assert_int_equal(s.snapshots_dropped, dropped);
    at_agent_free(a);
    pthread_join(th, NULL);
    assert_int_equal(r.t.bad, 0);
    assert_int_equal(r.t.snapshots, sent);
    assert_int_equal(r.t.layers, sent * LAYERS);
    assert_int_equal(r.t.dropped_reported, dropped);
    at_feed_free(r.f);
}

static void test_monitor_restarted_mid_run(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "restart");
    at_feed *f = wire_feed(ep, 0);
    at_agent *a = agent(ep, SNAPSHOT_BYTES * 4);
    int64_t seq = 0, sent = 0, dropped = 0;
    publish_many(a, 3, &seq, &sent, &dropped);
    wire_tally t1;
    wire_tally_init(&t1);
    while (t1.snapshots < 3) {
        at_feed_msg *m = NULL;
        assert_int_equal(at_feed_recv(f, 10000, &m, NULL), AT_OK);
        wire_tally_add(&t1, m);
        at_feed_msg_free(m);
    }
    assert_int_equal(t1.bad, 0);
    at_feed_free(f); /* the monitor dies */

    publish_many(a, 10, &seq, &sent, &dropped); /* nobody listening: queue, then drop */
    assert_true(dropped > 0);

    f = wire_feed(ep, 0); /* a new monitor on the same endpoint */
    wire_tally t2;
    wire_tally_init(&t2);
    /* It has never seen the run's hello: it asks, and the agent answers on its next call. */
    int64_t first_new = seq;
    for (int i = 0; i < 200 && t2.hellos == 0; i++) {
        at_feed_msg *m = NULL;
        if (at_feed_recv(f, 10, &m, NULL) == AT_OK) {
            wire_tally_add(&t2, m);
            at_feed_msg_free(m);
        }
        at_agent_should_stop(a, NULL, 0);
    }
    assert_int_equal(t2.hellos, 1);
    publish_many(a, 3, &seq, &sent, &dropped);
    at_agent_free(a);
    wire_drain(f, &t2, 10000, 0);
    assert_int_equal(t2.bad, 0);
    assert_true(t2.last_seq >= first_new + 2); /* the snapshots after the restart arrived */
    assert_true(t2.snapshots >= 3);
    assert_int_equal(t2.goodbyes, 1);
    assert_true(at_feed_run_find(f, "run-drops")->hello_seen);
    at_feed_free(f);
}

static void test_snapshot_larger_than_budget_never_half_sent(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "huge");
    at_feed *f = wire_feed(ep, 0);
    at_agent *a = agent(ep, SNAPSHOT_BYTES / 2); /* two of four layers fit, never all four */
    int64_t seq = 0, sent = 0, dropped = 0;
    publish_many(a, 3, &seq, &sent, &dropped);
    assert_int_equal(sent, 0);
    assert_int_equal(dropped, 3);
    at_agent_free(a);
    wire_tally t;
    wire_tally_init(&t);
    wire_drain(f, &t, 10000, 0);
    assert_int_equal(t.layers, 0);
    assert_int_equal(t.snapshots, 0);
    assert_int_equal(t.dropped_reported, 3);
    at_feed_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monitor_absent_then_started),
        cmocka_unit_test(test_slow_monitor),
        cmocka_unit_test(test_monitor_restarted_mid_run),
        cmocka_unit_test(test_snapshot_larger_than_budget_never_half_sent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
