/* SPDX-License-Identifier: Apache-2.0 */
/* Agent -> feed round trip over ipc and tcp loopback: every field and every byte arrives, f16
 * and bf16 payloads decode to the values sent; a forked child's calls are harmless no-ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "alphatop/htsr.h"
#include "wire.h"

/* Half and bfloat16 bit patterns of small multiples of 1/8, which both formats hold exactly. */
static uint16_t to_f16(float v)
{
    if (v == 0)
        return 0;
    uint32_t b;
    memcpy(&b, &v, 4);
    uint32_t sign = (b >> 16) & 0x8000u, exp = (b >> 23) & 0xffu, man = b & 0x7fffffu;
    return (uint16_t)(sign | ((exp - 127 + 15) << 10) | (man >> 13));
}

static uint16_t to_bf16(float v)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    return (uint16_t)(b >> 16);
}

typedef struct layer_spec {
    const char *name;
    at_proto_kind kind;
    at_proto_dtype dtype;
    int ndim;
    int64_t shape[4];
    unsigned flags;
} layer_spec;

static const layer_spec specs[] = {
    {"fc1.weight", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, {5, 7, 0, 0}, 0},
    {"conv.weight", AT_PROTO_KIND_CONV2D, AT_PROTO_F16, 4, {3, 2, 3, 3}, 0},
    {"embed.weight", AT_PROTO_KIND_EMBEDDING, AT_PROTO_BF16, 2, {11, 4, 0, 0}, 0},
    {"fc1.lora_A", AT_PROTO_KIND_LORA_A, AT_PROTO_F32, 2, {2, 7, 0, 0}, 0},
    {"fc1.lora_B", AT_PROTO_KIND_LORA_B, AT_PROTO_F16, 2, {5, 2, 0, 0}, 0},
    {"fc1.weight", AT_PROTO_KIND_LINEAR, AT_PROTO_BF16, 2, {5, 7, 0, 0}, AT_AGENT_BASE},
    {"tcn.weight", AT_PROTO_KIND_CONV1D, AT_PROTO_F32, 3, {4, 3, 5, 0}, 0},
};
#define NSPECS (int)(sizeof specs / sizeof specs[0])

static size_t elems(const layer_spec *s)
{
    size_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= (size_t)s->shape[i];
    return n;
}

/* The value of element i of layer k: multiples of 1/8 in [-4, 4). */
static float value(int k, size_t i)
{
    return (float)((int)((i * 7 + (size_t)k * 5) % 64) - 32) / 8.0f;
}

static void *make_payload(const layer_spec *s, int k)
{
    size_t n = elems(s);
    if (s->dtype == AT_PROTO_F32) {
        float *p = malloc(n * 4);
        for (size_t i = 0; i < n; i++)
            p[i] = value(k, i);
        return p;
    }
    uint16_t *p = malloc(n * 2);
    for (size_t i = 0; i < n; i++)
        p[i] = s->dtype == AT_PROTO_F16 ? to_f16(value(k, i)) : to_bf16(value(k, i));
    return p;
}

static void round_trip(const char *endpoint_in)
{
    at_feed *f = wire_feed(endpoint_in, 0);
    const char *endpoint = at_feed_endpoint(f); /* tcp: the port the kernel picked */
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.model = "tiny-mlp";
    o.framework = "c-test";
    o.host = "test-host";
    o.rank = 1;
    o.world_size = 2;
    o.interval = 10;
    o.checksum = 1;
    const char *keys[] = {"lr", "opt"}, *values[] = {"1e-3", "sgd"};
    o.tag_keys = keys;
    o.tag_values = values;
    o.ntags = 2;
    at_agent *a = at_agent_new("run-rt", endpoint, &o);
    assert_non_null(a);
    /* Later tags replace (lr, opt) or add (seed) and go out in the next hello. */
    assert_int_equal(at_agent_set_tag(a, "lr", "3e-4"), AT_OK);
    assert_int_equal(at_agent_set_tag(a, "opt", "adamw"), AT_OK);
    assert_int_equal(at_agent_set_tag(a, "seed", "7"), AT_OK);

    assert_int_equal(at_agent_snapshot_due(a, 20), 1);
    assert_int_equal(at_agent_snapshot_due(a, 21), 0);
    void *payloads[NSPECS];
    assert_int_equal(at_agent_snapshot_begin(a, 20), AT_OK);
    for (int k = 0; k < NSPECS; k++) {
        payloads[k] = make_payload(&specs[k], k);
        assert_int_equal(at_agent_publish(a, specs[k].name, specs[k].kind, specs[k].dtype,
                                          specs[k].ndim, specs[k].shape, payloads[k],
                                          specs[k].flags),
                         AT_OK);
    }
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    const char *names[] = {"loss", "acc"};
    assert_int_equal(at_agent_log(a, 21, 2, names, (const double[]){0.125, 0.9}), AT_OK);
    assert_int_equal(at_agent_should_stop(a, NULL, 0), 0);

    /* The first hello (sent by at_agent_new) carries the options' tags; the second the later
     * ones. */
    at_feed_msg *m = wire_recv_type(f, AT_PROTO_HELLO, 5000);
    assert_non_null(m);
    assert_string_equal(m->msg.run, "run-rt");
    assert_string_equal(m->msg.u.hello.model, "tiny-mlp");
    assert_string_equal(m->msg.u.hello.framework, "c-test");
    assert_string_equal(m->msg.u.hello.host, "test-host");
    assert_int_equal(m->msg.u.hello.pid, getpid());
    assert_int_equal(m->msg.u.hello.rank, 1);
    assert_int_equal(m->msg.u.hello.world_size, 2);
    assert_int_equal(m->msg.u.hello.interval, 10);
    assert_int_equal(m->msg.u.hello.dropped, 0);
    assert_int_equal(m->msg.u.hello.ntags, 2);
    assert_string_equal(m->msg.u.hello.tags[0].key, "lr");
    assert_string_equal(m->msg.u.hello.tags[0].value, "1e-3");
    assert_string_equal(m->msg.u.hello.tags[1].key, "opt");
    assert_string_equal(m->msg.u.hello.tags[1].value, "sgd");
    at_feed_msg_free(m);
    m = wire_recv_type(f, AT_PROTO_HELLO, 5000);
    assert_non_null(m);
    assert_int_equal(m->msg.u.hello.ntags, 3);
    assert_string_equal(m->msg.u.hello.tags[0].key, "lr");
    assert_string_equal(m->msg.u.hello.tags[0].value, "3e-4");
    assert_string_equal(m->msg.u.hello.tags[1].key, "opt");
    assert_string_equal(m->msg.u.hello.tags[1].value, "adamw");
    assert_string_equal(m->msg.u.hello.tags[2].key, "seed");
    assert_string_equal(m->msg.u.hello.tags[2].value, "7");
    at_feed_msg_free(m);

    for (int k = 0; k < NSPECS; k++) {
        at_feed_msg *lm = NULL;
        assert_int_equal(at_feed_recv(f, 5000, &lm, NULL), AT_OK);
        const at_proto_layer *l = &lm->msg.u.layer;
        assert_int_equal(lm->msg.type, AT_PROTO_LAYER);
        assert_string_equal(lm->msg.run, "run-rt");
        assert_int_equal(l->step, 20);
        assert_int_equal(l->seq, 0);
        assert_int_equal(l->index, k);
        assert_string_equal(l->name, specs[k].name);
        assert_int_equal(l->kind, specs[k].kind);
        assert_int_equal(l->dtype, specs[k].dtype);
        assert_int_equal(l->base, specs[k].flags ? 1 : 0);
        assert_int_equal(l->ndim, specs[k].ndim);
        for (int d = 0; d < l->ndim; d++)
            assert_int_equal(l->shape[d], specs[k].shape[d]);
        size_t n = elems(&specs[k]);
        assert_int_equal(l->nbytes, n * at_proto_dtype_size(specs[k].dtype));
        assert_int_equal(l->has_checksum, 1);
        assert_memory_equal(l->data, payloads[k], l->nbytes);
        /* What the monitor computes on: the values sent, exactly. */
        float *v = malloc(n * sizeof *v);
        at_convert_to_f32(l->data, (at_dtype)l->dtype, n, v);
        for (size_t i = 0; i < n; i++)
            assert_true(v[i] == value(k, i));
        free(v);
        free(payloads[k]);
        at_feed_msg_free(lm);
    }
    m = NULL;
    assert_int_equal(at_feed_recv(f, 5000, &m, NULL), AT_OK);
    assert_int_equal(m->msg.type, AT_PROTO_SNAPSHOT_END);
    assert_int_equal(m->msg.u.snapshot_end.step, 20);
    assert_int_equal(m->msg.u.snapshot_end.seq, 0);
    assert_int_equal(m->msg.u.snapshot_end.layers, NSPECS);
    assert_int_equal(m->msg.u.snapshot_end.dropped, 0);
    at_feed_msg_free(m);
    m = wire_recv_type(f, AT_PROTO_SCALARS, 5000);
    assert_non_null(m);
    assert_int_equal(m->msg.u.scalars.step, 21);
    assert_int_equal(m->msg.u.scalars.n, 2);
    assert_string_equal(m->msg.u.scalars.values[0].name, "loss");
    assert_true(m->msg.u.scalars.values[0].value == 0.125);
    assert_string_equal(m->msg.u.scalars.values[1].name, "acc");
    assert_true(m->msg.u.scalars.values[1].value == 0.9);
    at_feed_msg_free(m);

    const at_feed_run *r = at_feed_run_find(f, "run-rt");
    assert_non_null(r);
    assert_int_equal(r->connected, 1);
    assert_int_equal(r->hello_seen, 1);
    assert_int_equal(at_feed_run_count(f), 1);

    at_agent_stats s;
    assert_int_equal(at_agent_stats_get(a, &s), AT_OK);
    assert_int_equal(s.snapshots_sent, 1);
    assert_int_equal(s.snapshots_dropped, 0);
    at_agent_free(a);
    m = wire_recv_type(f, AT_PROTO_GOODBYE, 5000);
    assert_non_null(m);
    assert_int_equal(m->msg.u.goodbye.step, 21);
    at_feed_msg_free(m);
    assert_int_equal(at_feed_run_find(f, "run-rt")->connected, 0);
    at_feed_stats fs;
    at_feed_stats_get(f, &fs);
    assert_int_equal(fs.rejected, 0);
    at_feed_free(f);
}

static void test_round_trip_ipc(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "rt");
    round_trip(ep);
}

static void test_round_trip_tcp_loopback(void **state)
{
    (void)state;
    round_trip("tcp://127.0.0.1:*");
}

static void test_forked_child_is_inert(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "fork");
    at_feed *f = wire_feed(ep, 0);
    at_agent *a = at_agent_new("run-fork", ep, NULL);
    assert_non_null(a);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = wire_publish(a, 1, 1, 4, 4) == AT_ERR_STATE &&
                 at_agent_should_stop(a, NULL, 0) == 0 && at_agent_snapshot_due(a, 0) == 0 &&
                 at_agent_log(a, 1, 0, NULL, NULL) == AT_ERR_STATE;
        at_agent_free(a);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent's agent is untouched: its snapshot arrives whole. */
    assert_int_equal(wire_publish(a, 5, 3, 8, 8), AT_OK);
    at_agent_free(a);
    wire_tally t;
    wire_tally_init(&t);
    wire_drain(f, &t, 5000, 0);
    assert_int_equal(t.snapshots, 1);
    assert_int_equal(t.layers, 3);
    assert_int_equal(t.bad, 0);
    at_feed_free(f);
}

/* A monitor slow to read still gets all the trainer sent before it closed, its last scalars
 * and its goodbye too, and the agent closes once the monitor acknowledged the goodbye, well
 * before its linger time (docs/protocol.md section 6). */
static void test_slow_monitor_gets_the_tail(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "tail");
    at_feed *f = wire_feed(ep, 4);
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.linger_ms = 60000;
    at_agent *a = at_agent_new("run-tail", ep, &o);
    assert_non_null(a);
    for (int64_t step = 10; step <= 30; step += 10) {
        assert_int_equal(wire_publish(a, step, 3, 200, 100), AT_OK);
        assert_int_equal(
            at_agent_log(a, step, 1, (const char *[]){"loss"}, (double[]){1.0 / (double)step}),
            AT_OK);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wire_tally t;
    wire_tally_init(&t);
    wire_close(a, f, &t, 20000); /* 20 ms per message: the burst waits in the connection */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(t.snapshots, 3);
    assert_int_equal(t.scalars, 3);
    assert_int_equal(t.last_scalars_step, 30);
    assert_int_equal(t.goodbyes, 1);
    assert_int_equal(t.bad, 0);
    /* the acknowledgement ended the wait, not the 60 s linger */
    assert_true((double)(t1.tv_sec - t0.tv_sec) < 30.0);
    at_feed_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_ipc),
        cmocka_unit_test(test_round_trip_tcp_loopback),
        cmocka_unit_test(test_forked_child_is_inert),
        cmocka_unit_test(test_slow_monitor_gets_the_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
