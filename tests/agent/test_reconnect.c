/* SPDX-License-Identifier: Apache-2.0 */
/* The agent keeps its link to the monitor. libzmq gives up on an endpoint for good after a
 * protocol error -- here one frame over the agent's ZMQ_MAXMSGSIZE from whoever listened
 * there -- so without the agent's own watch every later snapshot went nowhere, even to a
 * monitor started afterwards. Also: the names an agent is given must encode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "wire.h"

/* Publishes a snapshot every 20 ms (as a trainer would) into f until `want` complete ones
 * arrived or timeout_ms passed; returns the tally. *seq is the next seq the agent assigns. */
static wire_tally publish_until(at_agent *a, at_feed *f, int64_t *seq, int want, int timeout_ms)
{
    wire_tally t;
    wire_tally_init(&t);
    for (int waited = 0; waited < timeout_ms && t.snapshots < want; waited += 20) {
        int rc = wire_publish(a, *seq * 10, 2, 8, 8);
        assert_true(rc == AT_OK || rc == AT_ERR_AGAIN);
        (*seq)++;
        at_feed_msg *m = NULL;
        while (at_feed_recv(f, 0, &m, NULL) == AT_OK) {
            wire_tally_add(&t, m);
            at_feed_msg_free(m);
        }
        usleep(20000);
    }
    return t;
}

/* A raw ROUTER bound on ep in a context of its own (*ctx, *evil), and an agent connected to
 * it: whoever listens first on an endpoint gets the trainer. */
static at_agent *victim_of(const char *ep, void **ctx, void **evil)
{
    *ctx = zmq_ctx_new();
    *evil = zmq_socket(*ctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(*evil, ep), 0);
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.linger_ms = 0;
    at_agent *a = at_agent_new("victim", ep, &o);
    assert_non_null(a);
    return a;
}

static void test_oversized_frame_does_not_cut_the_run_off(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "oversize");
    /* The listener answers the hello with 70000 bytes. */
    void *ctx, *evil;
    at_agent *a = victim_of(ep, &ctx, &evil);
    unsigned char id[256];
    char hello[1024];
    int idn = zmq_recv(evil, id, sizeof id, 0);
    assert_true(idn > 0);
    assert_true(zmq_recv(evil, hello, sizeof hello, 0) > 0);
    char *big = calloc(1, 70000);
    assert_true(zmq_send(evil, id, (size_t)idn, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(evil, big, 70000, 0) >= 0);
    free(big);
    usleep(200000);
    at_agent_stats s;
    at_agent_stats_get(a, &s); /* the agent notices the dead link here or on a later call */
    zmq_close(evil);
    zmq_ctx_term(ctx);
    unlink(ep + 6);

    /* A real monitor now: the run's next snapshots reach it, whole. */
    at_feed *f = wire_feed(ep, 0);
    int64_t seq = 0;
    wire_tally t = publish_until(a, f, &seq, 5, 10000);
    if (t.snapshots < 5)
        fail_msg("only %lld of %lld snapshots reached the new monitor", (long long)t.snapshots,
                 (long long)seq);
    assert_int_equal(t.bad, 0);
    assert_true(t.hellos >= 1); /* the agent introduced itself again */
    at_agent_free(a);
    at_feed_free(f);
}

/* A hostile listener that cuts every link at once cannot keep the trainer busy: new sockets
 * come at most after 100, 200, 400, ... ms. */
static void test_repeated_cuts_back_off(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "cuts");
    void *ctx, *evil;
    at_agent *a = victim_of(ep, &ctx, &evil);
    char *big = calloc(1, 70000);
    int hellos = 0;
    for (int i = 0; i < 150; i++) { /* 3 s of a training loop calling the agent */
        at_agent_snapshot_due(a, i);
        zmq_pollitem_t it = {evil, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) > 0) {
            unsigned char id[256];
            char msg[1024];
            int idn = zmq_recv(evil, id, sizeof id, 0);
            int more = 1;
            size_t ms = sizeof more;
            while (more && zmq_recv(evil, msg, sizeof msg, 0) >= 0)
                zmq_getsockopt(evil, ZMQ_RCVMORE, &more, &ms);
            hellos += strstr(msg, "\"hello\"") != NULL;
            zmq_send(evil, id, (size_t)idn, ZMQ_SNDMORE);
            zmq_send(evil, big, 70000, 0);
        }
    }
    free(big);
    /* 100 + 200 + 400 + 800 + 1600 ms of waits fit in 3 s: about 5 links after the first. */
    print_message("%d hellos in 3 s of cuts\n", hellos);
    assert_true(hellos >= 3 && hellos <= 8);
    at_agent_free(a);
    zmq_close(evil);
    zmq_ctx_term(ctx);
    unlink(ep + 6);
}

/* Names the decoder would refuse are refused when given, not sent into silence. */
static void test_names_must_encode(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "names");
    assert_null(at_agent_new("run\x1b[2J", ep, NULL));
    assert_non_null(strstr(at_agent_last_error(NULL), "control character"));
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.model = "gpt\xff";
    assert_null(at_agent_new("run", ep, &o));
    assert_non_null(strstr(at_agent_last_error(NULL), "UTF-8"));
    o.model = "";
    o.linger_ms = 0;
    at_agent *a = at_agent_new("run", ep, &o);
    assert_non_null(a);
    assert_int_equal(at_agent_set_tag(a, "note", "line\nbreak"), AT_ERR_ARG);
    assert_int_equal(at_agent_set_tag(a, "note", "fine"), AT_OK);
    assert_int_equal(at_agent_log(a, 1, 1, (const char *[]){"lo\x07ss"}, (double[]){1}),
                     AT_ERR_FORMAT);
    assert_int_equal(at_agent_snapshot_begin(a, 0), AT_OK);
    float w[4] = {0};
    assert_int_equal(at_agent_publish(a, "w\xc2\x9b", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2,
                                      (int64_t[]){2, 2}, w, 0),
                     AT_ERR_FORMAT);
    at_agent_snapshot_end(a);
    /* The hellos that go out (the first one, then one with the tag) have the good tag only. */
    at_feed *f = wire_feed(ep, 0);
    int tagged = 0;
    for (at_feed_msg *m; (m = wire_recv_type(f, AT_PROTO_HELLO, 1000)); at_feed_msg_free(m)) {
        assert_true(m->msg.u.hello.ntags <= 1);
        if (m->msg.u.hello.ntags == 1) {
            assert_string_equal(m->msg.u.hello.tags[0].value, "fine");
            tagged++;
        }
    }
    assert_int_equal(tagged, 1);
    at_agent_free(a);
    at_feed_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oversized_frame_does_not_cut_the_run_off),
        cmocka_unit_test(test_repeated_cuts_back_off),
        cmocka_unit_test(test_names_must_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
