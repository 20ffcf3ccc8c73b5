/* SPDX-License-Identifier: Apache-2.0 */
/* The feed's run table stays bounded (feed.h, max_runs): many short runs (hello, goodbye) over
 * a real socket leave at most max_runs entries, those of ended runs forgotten to make room; a
 * table full of connected runs refuses a new one, counted; a stop_ack for a run never seen is
 * handed on (the engine counts it) but takes no place in the table; and every entry held is
 * found by its id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "forge.h"
#include "wire.h"

/* Sends a message of type t for run on g's raw socket (forge_send). */
static void send_type(forge *g, at_proto_type t, const char *run)
{
    assert_int_equal(forge_send(g, t, run), 0);
}

/* Receives until n messages came out of the feed (5 s at most); returns how many did. */
static int take(at_feed *f, int n)
{
    int got = 0;
    for (int waited = 0; got < n && waited < 5000;) {
        at_feed_msg *m = NULL;
        int rc = at_feed_recv(f, 10, &m, NULL);
        if (rc == AT_OK)
            got++;
        else if (rc == AT_ERR_AGAIN)
            waited += 10;
        at_feed_msg_free(m);
    }
    return got;
}

static void test_run_table_bounded(void **state)
{
    (void)state;
    char ep[256];
    wire_ipc(ep, sizeof ep, "runtable");
    at_feed_opts o;
    at_feed_opts_default(&o);
    o.endpoint = ep;
    o.max_runs = 8;
    at_feed *f = wire_feed_with(&o);
    forge *g = forge_new(ep);
    assert_non_null(g);

    /* 200 short runs: never more than 8 entries; every message comes out */
    const int nshort = 200;
    char id[64];
    for (int i = 0; i < nshort; i++) {
        snprintf(id, sizeof id, "short-%d", i);
        send_type(g, AT_PROTO_HELLO, id);
        send_type(g, AT_PROTO_GOODBYE, id);
        if (i % 4 == 3) /* the feed's queue is a few messages deep */
            assert_int_equal(take(f, 8), 8);
        assert_true(at_feed_run_count(f) <= 8);
    }
    at_feed_stats st;
    at_feed_stats_get(f, &st);
    assert_int_equal(st.messages, 2 * nshort);
    assert_int_equal(st.runs_refused, 0);
    assert_int_equal(st.runs_forgotten + at_feed_run_count(f), nshort);
    const at_feed_run *last = at_feed_run_find(f, "short-199");
    assert_non_null(last);
    assert_false(last->connected);
    assert_true(last->bytes > 0);
    assert_null(at_feed_run_find(f, "short-0"));

    /* 8 live runs fill the table; a ninth is refused, counted, until one of them ends */
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof id, "live-%d", i);
        send_type(g, AT_PROTO_HELLO, id);
        assert_int_equal(take(f, 1), 1);
    }
    send_type(g, AT_PROTO_HELLO, "live-8");
    assert_int_equal(take(f, 1), 0);
    at_feed_stats_get(f, &st);
    assert_int_equal(st.runs_refused, 1);
    assert_null(at_feed_run_find(f, "live-8"));
    send_type(g, AT_PROTO_GOODBYE, "live-3");
    send_type(g, AT_PROTO_HELLO, "live-8");
    assert_int_equal(take(f, 2), 2);
    assert_non_null(at_feed_run_find(f, "live-8"));
    assert_null(at_feed_run_find(f, "live-3"));
    for (int i = 0; i < 9; i++) {
        snprintf(id, sizeof id, "live-%d", i);
        const at_feed_run *r = at_feed_run_find(f, id);
        if (i != 3)
            assert_true(r && r->connected && r->hello_seen);
    }

    /* a stop_ack nobody asked for, for a run never seen: handed on, no entry made */
    int before = at_feed_run_count(f);
    send_type(g, AT_PROTO_STOP_ACK, "ghost");
    at_feed_msg *m = wire_recv_type(f, AT_PROTO_STOP_ACK, 5000);
    assert_non_null(m);
    at_feed_msg_free(m);
    assert_null(at_feed_run_find(f, "ghost"));
    assert_int_equal(at_feed_run_count(f), before);

    forge_free(g);
    at_feed_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_table_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
