/* SPDX-License-Identifier: Apache-2.0 */
/* Hostile input through raw ZeroMQ: each malformed or oversized message is rejected with its
 * own reason, counted, and the good messages around it still arrive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "wire.h"

static void send_parts(void *s, int n, const void *const *data, const size_t *size)
{
    for (int i = 0; i < n; i++)
        assert_true(zmq_send(s, data[i], size[i], i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
}

static void send_text(void *s, const char *text)
{
    send_parts(s, 1, (const void *[]){text}, (size_t[]){strlen(text)});
}

static const char good_scalars[] =
    "{\"v\":1,\"type\":\"scalars\",\"run\":\"evil\",\"step\":3,\"values\":{\"loss\":1.5}}";

/* Receives one message and expects it rejected for `reason`. */
static void expect_rejected(at_feed *f, at_proto_reason reason)
{
    at_feed_msg *m = NULL;
    at_proto_error e = {AT_PROTO_E_NONE, ""};
    int rc = at_feed_recv(f, 5000, &m, &e);
    if (rc == AT_OK)
        fail_msg("accepted a %s message, want rejection %s", at_proto_type_name(m->msg.type),
                 at_proto_reason_name(reason));
    if (e.reason != reason)
        fail_msg("rejected as %s (%s), want %s", at_proto_reason_name(e.reason), e.message,
                 at_proto_reason_name(reason));
    assert_int_equal(rc, at_proto_reason_status(reason));
    assert_null(m);
    assert_string_not_equal(at_feed_last_error(f), "");
}

static void expect_good(at_feed *f)
{
    at_feed_msg *m = NULL;
    at_proto_error e;
    int rc = at_feed_recv(f, 5000, &m, &e);
    if (rc != AT_OK)
        fail_msg("good message lost: %s", rc == AT_ERR_AGAIN ? "nothing" : e.message);
    assert_int_equal(m->msg.type, AT_PROTO_SCALARS);
    assert_true(m->msg.u.scalars.values[0].value == 1.5);
    at_feed_msg_free(m);
}

static void test_hostile_messages_rejected_good_ones_kept(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "hostile");
    at_feed_opts o;
    at_feed_opts_default(&o);
    o.endpoint = ep;
    o.limits.max_header = 4096;
    o.limits.max_payload = 1 << 20;
    char err[256];
    at_feed *f = at_feed_new(&o, err, sizeof err);
    assert_non_null(f);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(zmq_connect(s, ep), 0);

    send_text(s, good_scalars);
    expect_good(f);

    send_parts(s, 1, (const void *[]){"\x00\xff garbage \x01"}, (size_t[]){12});
    expect_rejected(f, AT_PROTO_E_JSON);
    send_text(s, "{\"v\":7,\"type\":\"scalars\",\"run\":\"evil\"}");
    expect_rejected(f, AT_PROTO_E_VERSION);
    char *big = malloc(8192);
    memset(big, ' ', 8192);
    memcpy(big, "{\"v\":1", 6);
    big[8191] = '}';
    send_parts(s, 1, (const void *[]){big}, (size_t[]){8192});
    expect_rejected(f, AT_PROTO_E_HEADER_SIZE);
    free(big);
    send_text(s, "{\"v\":1,\"type\":\"hello\",\"run\":\"evil\"}");
    expect_rejected(f, AT_PROTO_E_MISSING);

    /* A layer whose shape would need 16 GiB: refused before anything is allocated for it. */
    const char *huge = "{\"v\":1,\"type\":\"layer\",\"run\":\"evil\",\"step\":1,\"seq\":0,"
                       "\"name\":\"w\",\"kind\":\"linear\",\"dtype\":\"f32\","
                       "\"shape\":[65536,65536],\"nbytes\":17179869184}";
    float p[6] = {0};
    send_parts(s, 2, (const void *[]){huge, p}, (size_t[]){strlen(huge), sizeof p});
    expect_rejected(f, AT_PROTO_E_SHAPE);
    const char *layer = "{\"v\":1,\"type\":\"layer\",\"run\":\"evil\",\"step\":1,\"seq\":0,"
                        "\"name\":\"w\",\"kind\":\"linear\",\"dtype\":\"f32\","
                        "\"shape\":[2,3],\"nbytes\":24}";
    send_parts(s, 2, (const void *[]){layer, p}, (size_t[]){strlen(layer), 20});
    expect_rejected(f, AT_PROTO_E_PAYLOAD_MISMATCH);
    send_text(s, layer); /* a layer without its payload frame */
    expect_rejected(f, AT_PROTO_E_FRAMES);
    /* A rejected header ends its ZeroMQ message: the frames after it are not misread. */
    send_parts(s, 3, (const void *[]){"{]", good_scalars, good_scalars},
               (size_t[]){2, strlen(good_scalars), strlen(good_scalars)});
    expect_rejected(f, AT_PROTO_E_JSON);
    send_parts(s, 2, (const void *[]){good_scalars, "{\"v\":1}"},
               (size_t[]){strlen(good_scalars), 7});
    expect_good(f); /* the first message of a pair is fine; the second is not */
    expect_rejected(f, AT_PROTO_E_MISSING);
    /* A frame above the size limit never reaches the decoder: ZeroMQ drops that connection. */
    void *s2 = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(zmq_connect(s2, ep), 0);
    char *over = calloc(1, (1 << 20) + 4096 + 16);
    send_parts(s2, 2, (const void *[]){layer, over},
               (size_t[]){strlen(layer), (1 << 20) + 4096 + 16});
    free(over);

    send_text(s, good_scalars);
    expect_good(f);
    at_feed_msg *m = NULL;
    assert_int_equal(at_feed_recv(f, 200, &m, NULL), AT_ERR_AGAIN);

    at_feed_stats st;
    at_feed_stats_get(f, &st);
    assert_int_equal(st.messages, 3);
    assert_int_equal(st.rejected, 9);
    assert_int_equal(st.rejected_by[AT_PROTO_E_JSON], 2);
    assert_int_equal(st.rejected_by[AT_PROTO_E_VERSION], 1);
    assert_int_equal(st.rejected_by[AT_PROTO_E_HEADER_SIZE], 1);
    assert_int_equal(st.rejected_by[AT_PROTO_E_MISSING], 2);
    assert_int_equal(st.rejected_by[AT_PROTO_E_SHAPE], 1);
    assert_int_equal(st.rejected_by[AT_PROTO_E_PAYLOAD_MISMATCH], 1);
    assert_int_equal(st.rejected_by[AT_PROTO_E_FRAMES], 1);
    zmq_close(s);
    zmq_close(s2);
    zmq_ctx_term(ctx);
    at_feed_free(f);
}

static void test_second_monitor_on_same_ipc_refused(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "twice");
    at_feed *f = wire_feed(ep, 0);
    at_feed_opts o;
    at_feed_opts_default(&o);
    o.endpoint = ep;
    char err[256];
    assert_null(at_feed_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "already listening"));
    at_feed_free(f);
    /* Once the first is gone the endpoint is free again. */
    f = at_feed_new(&o, err, sizeof err);
    assert_non_null(f);
    at_feed_free(f);
}

/* Every transport obeys one rule: an endpoint other machines may reach needs Curve or
 * --insecure. Only the refusal is exercised on such addresses (nothing here binds beyond
 * loopback); the binds that happen are on loopback. */
static void test_network_endpoints_need_curve(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "tcp://*:0",
        "tcp://0.0.0.0:0",
        "tcp://[::]:0",
        "ws://*:0",
        "ws://0.0.0.0:0/x",
        "wss://*:0",
        "tcp://eth0:0",
        "epgm://eth0;239.1.1.1:0",
        "pgm://eth0;239.1.1.1:0",
        "vmci://1:0",
        "tipc://{5560,0,0}",
        "udp://*:0",
        "tcp://127.evil.example:0",
    };
    at_feed_opts o;
    at_feed_opts_default(&o);
    char err[512];
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        o.endpoint = refused[i];
        at_feed *f = at_feed_new(&o, err, sizeof err);
        if (f)
            fail_msg("%s: listening without Curve", refused[i]);
        if (!strstr(err, "loopback") || !strstr(err, "--insecure"))
            fail_msg("%s: %s", refused[i], err);
    }
    /* The environment's endpoint obeys the same rule. */
    setenv("ALPHATOP_ENDPOINT", "ws://*:0", 1);
    o.endpoint = NULL;
    assert_null(at_feed_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "ws://*:0"));
    unsetenv("ALPHATOP_ENDPOINT");

    /* Loopback needs nothing, and says nothing. */
    const char *local[] = {"tcp://127.0.0.1:*", "tcp://[::1]:*", "ws://127.0.0.1:*"};
    for (int i = 0; i < 3; i++) {
        if (i == 2 && !zmq_has("ws"))
            continue; /* this libzmq has no WebSocket transport */
        o.endpoint = local[i];
        at_feed *f = at_feed_new(&o, err, sizeof err);
        if (!f && i == 1 && strstr(err, "Cannot assign"))
            continue; /* no IPv6 loopback on this machine */
        if (!f)
            fail_msg("%s: %s", local[i], err);
        assert_string_equal(at_feed_warning(f), "");
        at_feed_free(f);
    }
    /* --insecure lets a network-scope endpoint through, with a warning. "lo" is an interface
     * name, which the check does not resolve: it counts as network, and binds on loopback. */
    o.endpoint = "tcp://lo:0";
    assert_null(at_feed_new(&o, err, sizeof err));
    o.allow_insecure = 1;
    at_feed *f = at_feed_new(&o, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    const char *bound = at_feed_endpoint(f);
    if (strncmp(bound, "tcp://127.", 10) != 0 && strncmp(bound, "tcp://[::1]:", 12) != 0)
        fail_msg("tcp://lo:0 bound %s", bound);
    assert_non_null(strstr(at_feed_warning(f), "without CurveZMQ"));
    at_feed_free(f);
}

/* The ipc socket file only lets this user connect; a path that is not a socket is left alone. */
static void test_ipc_file_private_and_never_clobbered(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "mode");
    at_feed *f = wire_feed(ep, 0);
    struct stat st;
    assert_int_equal(stat(ep + 6, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    at_feed_free(f);

    FILE *fp = fopen(ep + 6, "w");
    assert_non_null(fp);
    fputs("precious\n", fp);
    fclose(fp);
    at_feed_opts o;
    at_feed_opts_default(&o);
    o.endpoint = ep;
    char err[512];
    assert_null(at_feed_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "not a socket"));
    assert_int_equal(stat(ep + 6, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    unlink(ep + 6);
}

/* A trainer sending the monitor's control messages is refused and counted, not ignored. */
static void test_control_from_trainer_rejected(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "direction");
    at_feed *f = wire_feed(ep, 0);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(zmq_connect(s, ep), 0);
    send_text(s, "{\"v\":1,\"type\":\"stop\",\"run\":\"evil\",\"reason\":\"x\"}");
    expect_rejected(f, AT_PROTO_E_DIRECTION);
    send_text(s, "{\"v\":1,\"type\":\"hello_request\",\"run\":\"evil\"}");
    expect_rejected(f, AT_PROTO_E_DIRECTION);
    send_text(s, good_scalars);
    expect_good(f);
    at_feed_stats st;
    at_feed_stats_get(f, &st);
    assert_int_equal(st.rejected_by[AT_PROTO_E_DIRECTION], 2);
    assert_int_equal(st.rejected, 2);
    zmq_close(s);
    zmq_ctx_term(ctx);
    at_feed_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_messages_rejected_good_ones_kept),
        cmocka_unit_test(test_second_monitor_on_same_ipc_refused),
        cmocka_unit_test(test_network_endpoints_need_curve),
        cmocka_unit_test(test_ipc_file_private_and_never_clobbered),
        cmocka_unit_test(test_control_from_trainer_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
