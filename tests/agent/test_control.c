/* SPDX-License-Identifier: Apache-2.0 */
/* Control from the monitor: stop reaches should_stop with its reason and is acknowledged;
 * pause, resume and interval change what the agent does; several runs share one monitor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "wire.h"

/* Polls the agent (as a training loop would) until cond holds or ~5 s of polls pass. */
#define POLL_UNTIL(cond)                                                                           \
    do {                                                                                           \
        for (int i_ = 0; i_ < 500 && !(cond); i_++)                                                \
            usleep(10000);                                                                         \
    } while (0)

static void test_stop_pause_interval(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "control");
    at_feed *f = wire_feed(ep, 0);
    assert_int_equal(at_feed_stop(f, "run-a", "too early"), AT_ERR_NOTFOUND);
    at_agent *a = at_agent_new("run-a", ep, NULL);
    at_agent *b = at_agent_new("run-b", ep, NULL);
    assert_non_null(a);
    assert_non_null(b);
    at_feed_msg *m = wire_recv_type(f, AT_PROTO_HELLO, 5000);
    at_feed_msg_free(m);
    m = wire_recv_type(f, AT_PROTO_HELLO, 5000);
    at_feed_msg_free(m);
    assert_int_equal(at_feed_run_count(f), 2);

    assert_int_equal(at_feed_stop(f, "run-a", "collapse: 3 of 4 layers burnt at step 700"), AT_OK);
    char reason[AT_PROTO_MAX_TEXT] = "";
    POLL_UNTIL(at_agent_should_stop(a, reason, sizeof reason));
    assert_string_equal(reason, "collapse: 3 of 4 layers burnt at step 700");
    assert_int_equal(at_agent_should_stop(b, NULL, 0), 0); /* only the run it was sent to */
    m = wire_recv_type(f, AT_PROTO_STOP_ACK, 5000);
    assert_non_null(m);
    assert_string_equal(m->msg.run, "run-a");
    assert_string_equal(m->msg.u.reason, "collapse: 3 of 4 layers burnt at step 700");
    at_feed_msg_free(m);
    assert_int_equal(at_feed_run_find(f, "run-a")->stop_acked, 1);
    assert_int_equal(at_feed_run_find(f, "run-b")->stop_acked, 0);
    char shortr[8];
    assert_int_equal(at_agent_should_stop(a, shortr, sizeof shortr), 1); /* stays set */
    assert_string_equal(shortr, "collaps");

    assert_int_equal(at_feed_pause(f, "run-b", 1), AT_OK);
    POLL_UNTIL(at_agent_paused(b));
    assert_int_equal(at_agent_paused(b), 1);
    assert_int_equal(at_agent_snapshot_due(b, 100), 0);
    assert_int_equal(wire_publish(b, 100, 2, 4, 4), AT_ERR_AGAIN);
    at_agent_stats s;
    at_agent_stats_get(b, &s);
    assert_int_equal(s.snapshots_skipped, 1);
    assert_int_equal(s.snapshots_dropped, 0);
    assert_int_equal(at_feed_pause(f, "run-b", 0), AT_OK);
    POLL_UNTIL(!at_agent_paused(b));
    assert_int_equal(at_agent_snapshot_due(b, 100), 1);

    assert_int_equal(at_feed_set_interval(f, "run-b", 7), AT_OK);
    assert_int_equal(at_feed_set_interval(f, "run-b", 0), AT_ERR_ARG);
    POLL_UNTIL(at_agent_interval(b) == 7);
    assert_int_equal(at_agent_interval(b), 7);
    assert_int_equal(at_agent_snapshot_due(b, 14), 1);
    assert_int_equal(at_agent_snapshot_due(b, 100), 0);
    at_agent_stats_get(b, &s);
    assert_int_equal(s.controls_received, 3);

    /* The seq of a snapshot taken after a skipped one has no gap: gaps mean drops only. */
    assert_int_equal(wire_publish(b, 14, 2, 4, 4), AT_OK);
    at_agent_free(a);
    at_agent_free(b);
    wire_tally t;
    wire_tally_init(&t);
    while (t.goodbyes < 2) {
        m = NULL;
        assert_int_equal(at_feed_recv(f, 5000, &m, NULL), AT_OK);
        wire_tally_add(&t, m);
        at_feed_msg_free(m);
    }
    assert_int_equal(t.snapshots, 1);
    assert_int_equal(t.bad, 0);
    assert_int_equal(at_feed_stop(f, "run-a", "gone"), AT_ERR_NOTFOUND);
    at_feed_stats fs;
    at_feed_stats_get(f, &fs);
    assert_int_equal(fs.controls_sent, 4); /* stop, pause, resume, interval */
    at_feed_free(f);
}

/* A pause ends with the monitor that sent it: a new monitor on the endpoint has never seen the
 * run, asks for its hello, and the agent takes snapshots again. */
static void test_pause_ends_with_its_monitor(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "pause-gone");
    at_feed *f = wire_feed(ep, 0);
    at_agent *a = at_agent_new("run-p", ep, NULL);
    assert_non_null(a);
    at_feed_msg_free(wire_recv_type(f, AT_PROTO_HELLO, 5000));
    assert_int_equal(at_feed_pause(f, "run-p", 1), AT_OK);
    POLL_UNTIL(at_agent_paused(a));
    assert_int_equal(at_agent_paused(a), 1);
    at_feed_free(f);
    f = wire_feed(ep, 0);
    /* scalars show the new monitor the run; it asks for the hello, which ends the pause */
    at_feed_msg *m = NULL;
    for (int i = 0; i < 500 && !m; i++) {
        at_agent_log(a, i, 1, (const char *[]){"loss"}, (double[]){1.0});
        m = wire_recv_type(f, AT_PROTO_HELLO, 10);
    }
    assert_non_null(m);
    at_feed_msg_free(m);
    assert_int_equal(at_agent_paused(a), 0);
    assert_int_equal(at_agent_snapshot_due(a, 100), 1);
    at_agent_free(a);
    at_feed_free(f);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null(at_agent_new("", NULL, NULL));
    assert_non_null(strstr(at_agent_last_error(NULL), "run id"));
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.interval = 0;
    assert_null(at_agent_new("r", NULL, &o));
    at_agent_opts_default(&o);
    assert_null(at_agent_new("r", "bogus://nowhere", &o));
    assert_non_null(strstr(at_agent_last_error(NULL), "bogus"));
    /* an endpoint too long for the message loses its middle, not the reason after it */
    char longep[600];
    snprintf(longep, sizeof longep, "bogus://%0500d/nowhere", 0);
    assert_null(at_agent_new("r", longep, &o));
    const char *why = at_agent_last_error(NULL);
    assert_non_null(strstr(why, "cannot connect to bogus://000"));
    assert_non_null(strstr(why, "000...000"));
    const char *tail = strstr(why, "/nowhere: ");
    assert_non_null(tail);
    assert_true(strlen(tail) > strlen("/nowhere: ")); /* the reason is kept */
    assert_true(strlen(why) > strlen("cannot connect to bogus://.../nowhere: ") + 100);
    o.curve_server_key = "/nonexistent/monitor.pub";
    o.curve_client_keyfile = "/nonexistent/trainer";
    assert_null(at_agent_new("r", NULL, &o));
    assert_non_null(strstr(at_agent_last_error(NULL), "nonexistent"));
    at_agent_opts_default(&o);
    const char *keys[] = {"ok", ""}, *values[] = {"v", "empty key"};
    o.tag_keys = keys;
    o.tag_values = values;
    o.ntags = 2;
    assert_null(at_agent_new("r", NULL, &o));
    assert_non_null(strstr(at_agent_last_error(NULL), "opts tag 1"));
    o.ntags = -1;
    assert_null(at_agent_new("r", NULL, &o));
    assert_non_null(strstr(at_agent_last_error(NULL), "ntags"));

    char ep[128];
    wire_ipc(ep, sizeof ep, "args");
    at_agent *a = at_agent_new("r", ep, NULL);
    assert_non_null(a);
    int64_t shape[2] = {2, 2};
    float w[4] = {0};
    assert_int_equal(at_agent_publish(a, "w", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w, 0),
                     AT_ERR_STATE);
    assert_int_equal(at_agent_snapshot_end(a), AT_ERR_STATE);
    assert_int_equal(at_agent_snapshot_begin(a, 1), AT_OK);
    assert_int_equal(at_agent_publish(a, "", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w, 0),
                     AT_ERR_ARG);
    assert_int_equal(at_agent_publish(a, "w", AT_PROTO_KIND_CONV2D, AT_PROTO_F32, 2, shape, w, 0),
                     AT_ERR_SIZE);
    assert_int_equal(
        at_agent_publish(a, "w", AT_PROTO_KIND_LINEAR, (at_proto_dtype)9, 2, shape, w, 0),
        AT_ERR_ARG);
    int64_t zero[2] = {2, 0};
    assert_int_equal(at_agent_publish(a, "w", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, zero, w, 0),
                     AT_ERR_SIZE);
    assert_int_equal(at_agent_publish(a, "w", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w, 0),
                     AT_OK);
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    const char *bad[] = {""};
    assert_int_equal(at_agent_log(a, 1, 1, bad, (const double[]){1}), AT_ERR_ARG);
    assert_int_equal(at_agent_log(a, -1, 0, NULL, NULL), AT_ERR_ARG);
    for (int i = 0; i < AT_PROTO_MAX_TAGS; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(at_agent_set_tag(a, k, "v"), AT_OK);
    }
    assert_int_equal(at_agent_set_tag(a, "one-too-many", "v"), AT_ERR_SIZE);
    assert_int_equal(at_agent_set_tag(a, "k0", "replaced"), AT_OK);
    /* A pass never ended is ended by the next begin: this empty snapshot is complete. */
    assert_int_equal(at_agent_snapshot_begin(a, 2), AT_OK);
    assert_int_equal(at_agent_snapshot_begin(a, 3), AT_OK);
    at_agent_stats s;
    assert_int_equal(at_agent_stats_get(a, &s), AT_OK);
    assert_int_equal(s.snapshots_dropped, 0);
    assert_int_equal(s.snapshots_sent, 2);
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    /* Slices: both or neither of full_shape and offset, inside the whole layer. */
    assert_int_equal(at_agent_snapshot_begin(a, 4), AT_OK);
    assert_int_equal(at_agent_publish_slice(a, "s", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w,
                                            0, (int64_t[]){4, 2}, NULL),
                     AT_ERR_ARG);
    assert_int_equal(at_agent_publish_slice(a, "s", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w,
                                            0, (int64_t[]){4, 2}, (int64_t[]){3, 0}),
                     AT_ERR_SIZE);
    assert_non_null(strstr(at_agent_last_error(a), "not inside"));
    assert_int_equal(at_agent_snapshot_end(a), AT_OK); /* the refused layers held no position */
    at_agent_free(a);
    at_agent_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_pause_interval),
        cmocka_unit_test(test_pause_ends_with_its_monitor),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
