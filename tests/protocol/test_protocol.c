/* SPDX-License-Identifier: Apache-2.0 */
/* Protocol encoder/decoder: every field round-trips, and every rejection reason is produced by
 * the input it names, with its own status and message. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "alphatop/keyfile.h"
#include "alphatop/protocol.h"

static char buf[AT_PROTO_MAX_HEADER + 8];

static at_proto_msg *new_msg(at_proto_type t, const char *run)
{
    at_proto_msg *m = calloc(1, sizeof *m);
    m->type = t;
    snprintf(m->run, sizeof m->run, "%s", run);
    return m;
}

/* Encodes m, decodes the header (and payload) back into a fresh message. */
static at_proto_msg *round_trip(const at_proto_msg *m, const void *payload, size_t n)
{
    size_t len = 0;
    at_proto_error e;
    int rc = at_proto_encode(m, buf, sizeof buf, &len, &e);
    if (rc != AT_OK)
        fail_msg("encode: %s", e.message);
    assert_int_equal(len, strlen(buf));
    at_proto_frame fr[2] = {{buf, len}, {payload, n}};
    at_proto_msg *out = calloc(1, sizeof *out);
    rc = at_proto_decode(fr, payload ? 2 : 1, NULL, out, &e);
    if (rc != AT_OK)
        fail_msg("decode: %s", e.message);
    assert_int_equal(out->version, AT_PROTO_VERSION);
    assert_int_equal(out->type, m->type);
    assert_string_equal(out->run, m->run);
    return out;
}

static void test_hello_round_trip(void **state)
{
    (void)state;
    at_proto_msg *m = new_msg(AT_PROTO_HELLO, "run \"1\" \xc3\xa9");
    at_proto_hello *h = &m->u.hello;
    strcpy(h->model, "gpt2-small");
    strcpy(h->framework, "pytorch");
    strcpy(h->host, "gpu-7");
    h->pid = 4242;
    h->rank = 3;
    h->world_size = 8;
    h->interval = 50;
    h->dropped = 9007199254740991LL; /* 2^53 - 1: the largest integer that travels */
    h->ntags = AT_PROTO_MAX_TAGS;
    for (int i = 0; i < h->ntags; i++) {
        snprintf(h->tags[i].key, sizeof h->tags[i].key, "key%02d", i);
        snprintf(h->tags[i].value, sizeof h->tags[i].value, "value \"%d\" \\ \xe2\x82\xac", i);
    }
    at_proto_msg *o = round_trip(m, NULL, 0);
    assert_string_equal(o->u.hello.model, "gpt2-small");
    assert_string_equal(o->u.hello.framework, "pytorch");
    assert_string_equal(o->u.hello.host, "gpu-7");
    assert_int_equal(o->u.hello.pid, 4242);
    assert_int_equal(o->u.hello.rank, 3);
    assert_int_equal(o->u.hello.world_size, 8);
    assert_int_equal(o->u.hello.interval, 50);
    assert_int_equal(o->u.hello.dropped, 9007199254740991LL);
    assert_int_equal(o->u.hello.ntags, AT_PROTO_MAX_TAGS);
    for (int i = 0; i < h->ntags; i++) {
        assert_string_equal(o->u.hello.tags[i].key, h->tags[i].key);
        assert_string_equal(o->u.hello.tags[i].value, h->tags[i].value);
    }
    free(m);
    free(o);
}

static void test_layer_round_trip_every_kind_and_dtype(void **state)
{
    (void)state;
    static const int64_t shapes[][4] = {{3, 5}, {4, 2, 3, 3}, {7, 2}, {4, 2, 5}, {2, 6}, {6, 2}};
    static const at_proto_kind kinds[] = {AT_PROTO_KIND_LINEAR,    AT_PROTO_KIND_CONV2D,
                                          AT_PROTO_KIND_EMBEDDING, AT_PROTO_KIND_CONV1D,
                                          AT_PROTO_KIND_LORA_A,    AT_PROTO_KIND_LORA_B};
    unsigned char payload[4 * 72];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (unsigned char)(i * 37 + 11);
    for (int k = 0; k < 6; k++) {
        for (int d = 0; d < 3; d++) {
            at_proto_msg *m = new_msg(AT_PROTO_LAYER, "r");
            at_proto_layer *l = &m->u.layer;
            l->step = 1000 + k;
            l->seq = 17;
            l->index = k;
            snprintf(l->name, sizeof l->name, "blocks.%d.attn.c_attn", k);
            l->kind = kinds[k];
            l->base = d == 1;
            l->ndim = (k == 1) ? 4 : (k == 3) ? 3 : 2;
            uint64_t n = 1;
            for (int j = 0; j < l->ndim; j++)
                n *= (uint64_t)(l->shape[j] = shapes[k][j]);
            l->dtype = (at_proto_dtype)d;
            l->big_endian = d == 2;
            l->nbytes = n * at_proto_dtype_size(l->dtype);
            l->has_checksum = d != 0;
            l->crc32 = at_proto_crc32(0, payload, l->nbytes);
            at_proto_msg *o = round_trip(m, payload, l->nbytes);
            const at_proto_layer *ol = &o->u.layer;
            assert_int_equal(ol->step, l->step);
            assert_int_equal(ol->seq, 17);
            assert_int_equal(ol->index, k);
            assert_string_equal(ol->name, l->name);
            assert_int_equal(ol->kind, kinds[k]);
            assert_int_equal(ol->base, d == 1);
            assert_int_equal(ol->ndim, l->ndim);
            for (int j = 0; j < l->ndim; j++)
                assert_int_equal(ol->shape[j], shapes[k][j]);
            assert_int_equal(ol->dtype, d);
            assert_int_equal(ol->big_endian, d == 2);
            assert_int_equal(ol->nbytes, l->nbytes);
            assert_int_equal(ol->has_checksum, d != 0);
            assert_int_equal(ol->crc32, d != 0 ? l->crc32 : 0);
            assert_ptr_equal(ol->data, payload);
            free(m);
            free(o);
        }
    }
}

static void test_other_messages_round_trip(void **state)
{
    (void)state;
    at_proto_msg *m = new_msg(AT_PROTO_SNAPSHOT_END, "r");
    m->u.snapshot_end = (at_proto_snapshot_end){.step = 5,
                                                .seq = 6,
                                                .layers = 7,
                                                .dropped = 8,
                                                .first_step = 2,
                                                .total = 10,
                                                .skipped = 1,
                                                .rank = 3};
    at_proto_msg *o = round_trip(m, NULL, 0);
    assert_memory_equal(&o->u.snapshot_end, &m->u.snapshot_end, sizeof m->u.snapshot_end);
    free(m);
    free(o);

    m = new_msg(AT_PROTO_SCALARS, "r");
    m->u.scalars.step = 99;
    m->u.scalars.dropped = 2;
    m->u.scalars.n = 4;
    const double v[4] = {0.1, -1e300, NAN, 3.0};
    for (int i = 0; i < 4; i++) {
        snprintf(m->u.scalars.values[i].name, AT_PROTO_MAX_SHORT, "s%d", i);
        m->u.scalars.values[i].value = v[i];
    }
    m->u.scalars.values[3].value = INFINITY;
    o = round_trip(m, NULL, 0);
    assert_int_equal(o->u.scalars.step, 99);
    assert_int_equal(o->u.scalars.dropped, 2);
    assert_int_equal(o->u.scalars.n, 4);
    assert_true(o->u.scalars.values[0].value == 0.1); /* exact: printed with 17 digits if needed */
    assert_true(o->u.scalars.values[1].value == -1e300);
    assert_true(isnan(o->u.scalars.values[2].value));
    assert_true(isnan(o->u.scalars.values[3].value)); /* Inf travels as null */
    assert_string_equal(o->u.scalars.values[3].name, "s3");
    free(m);
    free(o);

    m = new_msg(AT_PROTO_GOODBYE, "r");
    m->u.goodbye.step = 12;
    m->u.goodbye.dropped = 3;
    o = round_trip(m, NULL, 0);
    assert_int_equal(o->u.goodbye.step, 12);
    assert_int_equal(o->u.goodbye.dropped, 3);
    free(m);
    free(o);

    const at_proto_type reasoned[] = {AT_PROTO_STOP, AT_PROTO_STOP_ACK};
    for (int i = 0; i < 2; i++) {
        m = new_msg(reasoned[i], "r");
        strcpy(m->u.reason, "collapse: 40% of layers burnt at step 1200");
        o = round_trip(m, NULL, 0);
        assert_string_equal(o->u.reason, m->u.reason);
        free(m);
        free(o);
    }
    m = new_msg(AT_PROTO_INTERVAL, "r");
    m->u.interval = 250;
    o = round_trip(m, NULL, 0);
    assert_int_equal(o->u.interval, 250);
    free(m);
    free(o);
    const at_proto_type bare[] = {AT_PROTO_PAUSE, AT_PROTO_RESUME, AT_PROTO_HELLO_REQUEST,
                                  AT_PROTO_GOODBYE_ACK};
    for (int i = 0; i < 4; i++) {
        m = new_msg(bare[i], "r");
        free(round_trip(m, NULL, 0));
        free(m);
        assert_false(at_proto_from_trainer(bare[i]));
    }
    assert_string_equal(at_proto_type_name(AT_PROTO_GOODBYE_ACK), "goodbye_ack");
}

/* Decodes text (and an optional payload) and checks the rejection reason and its status. */
static void expect_reject(const char *hdr, const void *payload, size_t n, int nframes,
                          const at_proto_limits *lim, at_proto_reason reason)
{
    at_proto_frame fr[3] = {{hdr, strlen(hdr)}, {payload, n}, {"x", 1}};
    at_proto_msg *m = calloc(1, sizeof *m);
    at_proto_error e = {AT_PROTO_E_NONE, ""};
    int rc = at_proto_decode(fr, (size_t)nframes, lim, m, &e);
    if (e.reason != reason)
        fail_msg("%s: got %s (%s), want %s", hdr, at_proto_reason_name(e.reason), e.message,
                 at_proto_reason_name(reason));
    assert_int_equal(rc, at_proto_reason_status(reason));
    assert_true(rc < 0);
    assert_true(strlen(e.message) > 0);
    free(m);
}

#define LAYER(extra)                                                                               \
    "{\"v\":1,\"type\":\"layer\",\"run\":\"r\",\"step\":1,\"seq\":0,\"name\":\"w\","               \
    "\"kind\":\"linear\",\"dtype\":\"f32\"" extra "}"

static void test_each_rejection_reason(void **state)
{
    (void)state;
    float p[6] = {1, 2, 3, 4, 5, 6};
    const char *good = LAYER(",\"shape\":[2,3],\"nbytes\":24");
    at_proto_frame fr[2] = {{good, strlen(good)}, {p, sizeof p}};
    at_proto_msg *m = calloc(1, sizeof *m);
    assert_int_equal(at_proto_decode(fr, 2, NULL, m, NULL), AT_OK);
    assert_int_equal(m->u.layer.big_endian, 0);
    assert_int_equal(m->u.layer.index, -1); /* optional fields get their defaults */
    free(m);

    expect_reject(good, p, sizeof p, 1, NULL, AT_PROTO_E_FRAMES);
    expect_reject("{\"v\":1,\"type\":\"pause\",\"run\":\"r\"}", p, 4, 2, NULL, AT_PROTO_E_FRAMES);
    expect_reject(good, p, sizeof p, 3, NULL, AT_PROTO_E_FRAMES);
    expect_reject("", NULL, 0, 1, NULL, AT_PROTO_E_HEADER_SIZE);
    at_proto_limits small = {.max_header = 40, .max_payload = 16};
    expect_reject(good, p, sizeof p, 2, &small, AT_PROTO_E_PAYLOAD_SIZE);
    small.max_payload = 1 << 20;
    expect_reject(good, p, sizeof p, 2, &small, AT_PROTO_E_HEADER_SIZE);
    expect_reject("{\"v\":1,", NULL, 0, 1, NULL, AT_PROTO_E_JSON);
    expect_reject("[1,2]", NULL, 0, 1, NULL, AT_PROTO_E_JSON);
    expect_reject("{\"v\":1} {}", NULL, 0, 1, NULL, AT_PROTO_E_JSON);
    expect_reject("{\"v\":3,\"type\":\"pause\",\"run\":\"r\"}", NULL, 0, 1, NULL,
                  AT_PROTO_E_VERSION);
    expect_reject("{\"v\":0,\"type\":\"pause\",\"run\":\"r\"}", NULL, 0, 1, NULL,
                  AT_PROTO_E_VERSION);
    expect_reject("{\"v\":1,\"type\":\"teleport\",\"run\":\"r\"}", NULL, 0, 1, NULL,
                  AT_PROTO_E_TYPE);
    expect_reject("{\"v\":1,\"type\":\"pause\"}", NULL, 0, 1, NULL, AT_PROTO_E_MISSING);
    expect_reject("{\"type\":\"pause\",\"run\":\"r\"}", NULL, 0, 1, NULL, AT_PROTO_E_MISSING);
    expect_reject(LAYER(",\"nbytes\":24"), p, sizeof p, 2, NULL, AT_PROTO_E_MISSING);
    expect_reject("{\"v\":1,\"type\":\"pause\",\"run\":7}", NULL, 0, 1, NULL,
                  AT_PROTO_E_FIELD_TYPE);
    expect_reject(LAYER(",\"shape\":[2,3],\"nbytes\":24.5"), p, sizeof p, 2, NULL,
                  AT_PROTO_E_FIELD_TYPE);
    expect_reject(LAYER(",\"shape\":[2,\"3\"],\"nbytes\":24"), p, sizeof p, 2, NULL,
                  AT_PROTO_E_FIELD_TYPE);
    expect_reject(LAYER(",\"shape\":[2,3],\"nbytes\":24,\"base\":1"), p, sizeof p, 2, NULL,
                  AT_PROTO_E_FIELD_TYPE);
    expect_reject("{\"v\":1,\"type\":\"interval\",\"run\":\"r\",\"interval\":0}", NULL, 0, 1, NULL,
                  AT_PROTO_E_VALUE);
    expect_reject(LAYER(",\"shape\":[2,3],\"nbytes\":24,\"byte_order\":\"middle\""), p, sizeof p, 2,
                  NULL, AT_PROTO_E_VALUE);
    expect_reject("{\"v\":1,\"type\":\"layer\",\"run\":\"r\",\"step\":-1}", NULL, 0, 1, NULL,
                  AT_PROTO_E_VALUE);
    expect_reject(LAYER(",\"shape\":[2,3],\"nbytes\":24,\"checksum\":\"md5:00\""), p, sizeof p, 2,
                  NULL, AT_PROTO_E_VALUE);
    char longrun[300] = "{\"v\":1,\"type\":\"pause\",\"run\":\"";
    memset(longrun + strlen(longrun), 'a', 200);
    strcat(longrun, "\"}");
    expect_reject(longrun, NULL, 0, 1, NULL, AT_PROTO_E_STRING);
    expect_reject(LAYER(",\"shape\":[1,1,1,1,1],\"nbytes\":4"), p, 4, 2, NULL, AT_PROTO_E_TOO_MANY);
    expect_reject(LAYER(",\"shape\":[2,0],\"nbytes\":0"), p, 0, 2, NULL, AT_PROTO_E_SHAPE);
    expect_reject(LAYER(",\"shape\":[2,3,1,1],\"nbytes\":24"), p, sizeof p, 2, NULL,
                  AT_PROTO_E_SHAPE);
    /* Each dim is legal on its own; the product would overflow 64 bits. */
    expect_reject(LAYER(",\"shape\":[2147483647,2147483647],\"nbytes\":24"), p, sizeof p, 2, NULL,
                  AT_PROTO_E_SHAPE);
    expect_reject(LAYER(",\"shape\":[1e300,2],\"nbytes\":24"), p, sizeof p, 2, NULL,
                  AT_PROTO_E_SHAPE);
    expect_reject(LAYER(",\"shape\":[2,3],\"nbytes\":20"), p, sizeof p, 2, NULL,
                  AT_PROTO_E_PAYLOAD_MISMATCH);
    expect_reject(good, p, sizeof p - 4, 2, NULL, AT_PROTO_E_PAYLOAD_MISMATCH);
    char sum[200];
    snprintf(sum, sizeof sum, LAYER(",\"shape\":[2,3],\"nbytes\":24,\"checksum\":\"crc32:%08x\""),
             at_proto_crc32(0, p, sizeof p) ^ 1u);
    expect_reject(sum, p, sizeof p, 2, NULL, AT_PROTO_E_CHECKSUM);
    expect_reject(
        "{\"v\":1,\"type\":\"scalars\",\"run\":\"r\",\"step\":1,\"values\":{\"a\":\"x\"}}", NULL, 0,
        1, NULL, AT_PROTO_E_FIELD_TYPE);
}

/* Decodes one header and expects it rejected for reason. */
static void reject_text(const char *hdr, size_t n, at_proto_reason reason)
{
    at_proto_msg *m = calloc(1, sizeof *m);
    at_proto_error e = {AT_PROTO_E_NONE, ""};
    int rc = at_proto_decode_header(hdr, n ? n : strlen(hdr), NULL, m, &e);
    if (e.reason != reason)
        fail_msg("%s: got %s (%s), want %s", hdr, at_proto_reason_name(e.reason), e.message,
                 at_proto_reason_name(reason));
    assert_int_equal(rc, at_proto_reason_status(reason));
    free(m);
}

/* Decodes one header that must be accepted; caller owns the message. */
static at_proto_msg *accept_text(const char *hdr)
{
    at_proto_msg *m = calloc(1, sizeof *m);
    at_proto_error e;
    if (at_proto_decode_header(hdr, strlen(hdr), NULL, m, &e) != AT_OK)
        fail_msg("%s: rejected: %s", hdr, e.message);
    return m;
}

#define LAYER2(extra)                                                                              \
    "{\"v\":2,\"type\":\"layer\",\"run\":\"r\",\"step\":1,\"seq\":0,\"index\":4,\"name\":\"w\","   \
    "\"kind\":\"linear\",\"dtype\":\"f32\",\"shape\":[2,3],\"nbytes\":24" extra "}"
#define END2(extra)                                                                                \
    "{\"v\":2,\"type\":\"snapshot_end\",\"run\":\"r\",\"step\":9,\"seq\":0,\"layers\":3" extra "}"

/* Version 2: slices, ranks, the snapshot end's counts and skip messages round-trip and are
 * validated; version 1 messages still decode, without version 2's fields and type. */
static void test_version_2(void **state)
{
    (void)state;
    float p[6] = {1, 2, 3, 4, 5, 6};
    at_proto_msg *m = new_msg(AT_PROTO_LAYER, "r");
    at_proto_layer *l = &m->u.layer;
    *l = (at_proto_layer){.step = 7,
                          .seq = 1,
                          .index = 2,
                          .rank = 1,
                          .kind = AT_PROTO_KIND_LINEAR,
                          .ndim = 2,
                          .shape = {2, 3},
                          .dtype = AT_PROTO_F32,
                          .nbytes = 24,
                          .sliced = 1,
                          .full_shape = {4, 3},
                          .offset = {2, 0}};
    strcpy(l->name, "tp.fc1.weight");
    l->first_step = 5;
    at_proto_msg *o = round_trip(m, p, sizeof p);
    assert_int_equal(o->u.layer.first_step, 5);
    assert_int_equal(o->u.layer.rank, 1);
    assert_int_equal(o->u.layer.sliced, 1);
    assert_memory_equal(o->u.layer.full_shape, l->full_shape, sizeof l->full_shape);
    assert_memory_equal(o->u.layer.offset, l->offset, sizeof l->offset);
    free(o);
    l->sliced = 0;
    l->rank = 0;
    l->first_step = l->step;
    o = round_trip(m, p, sizeof p);
    assert_false(o->u.layer.sliced);
    assert_int_equal(o->u.layer.first_step, 7);
    /* written only when they apply */
    assert_false(strstr(buf, "rank") || strstr(buf, "offset") || strstr(buf, "first_step"));
    free(o);
    free(m);

    m = new_msg(AT_PROTO_GOODBYE, "r");
    m->u.goodbye = (at_proto_goodbye){.step = 9, .dropped = 1, .rank = 5};
    o = round_trip(m, NULL, 0);
    assert_int_equal(o->u.goodbye.rank, 5);
    free(o);
    free(m);

    m = new_msg(AT_PROTO_SKIP, "r");
    m->u.skip = (at_proto_skip){.step = 3, .seq = 2, .index = 5, .rank = 2, .nbytes = 1u << 30};
    strcpy(m->u.skip.name, "tok_embeddings.weight");
    strcpy(m->u.skip.reason, "larger than the byte budget");
    o = round_trip(m, NULL, 0);
    assert_memory_equal(&o->u.skip, &m->u.skip, sizeof m->u.skip);
    free(o);
    free(m);

    /* A version 2 end's defaults; a version 1 message ignores version 2's fields. */
    m = accept_text(END2(""));
    assert_int_equal(m->version, 2);
    assert_int_equal(m->u.snapshot_end.first_step, 9);
    assert_int_equal(m->u.snapshot_end.total, 3);
    free(m);
    m = accept_text("{\"v\":1,\"type\":\"snapshot_end\",\"run\":\"r\",\"step\":9,\"seq\":0,"
                    "\"layers\":3,\"total\":1,\"first_step\":99}");
    assert_int_equal(m->version, 1);
    assert_int_equal(m->u.snapshot_end.total, 3);
    assert_int_equal(m->u.snapshot_end.first_step, 9);
    free(m);
    at_proto_frame fr[2] = {{LAYER(",\"shape\":[2,3],\"nbytes\":24,\"offset\":[9,9]"), 0},
                            {p, sizeof p}};
    fr[0].size = strlen(fr[0].data);
    m = calloc(1, sizeof *m);
    assert_int_equal(at_proto_decode(fr, 2, NULL, m, NULL), AT_OK);
    assert_false(m->u.layer.sliced);
    free(m);

    reject_text("{\"v\":1,\"type\":\"skip\",\"run\":\"r\",\"step\":1,\"seq\":0,\"index\":0,"
                "\"name\":\"w\",\"nbytes\":4,\"reason\":\"x\"}",
                0, AT_PROTO_E_TYPE);
    reject_text("{\"v\":1,\"type\":\"goodbye_ack\",\"run\":\"r\"}", 0, AT_PROTO_E_TYPE);
    reject_text("{\"v\":2,\"type\":\"skip\",\"run\":\"r\",\"step\":1,\"seq\":0,\"index\":0,"
                "\"name\":\"w\",\"nbytes\":4}",
                0, AT_PROTO_E_MISSING);
    reject_text(LAYER2(",\"full_shape\":[4,3]"), 0, AT_PROTO_E_MISSING);
    reject_text(LAYER2(",\"full_shape\":[4,3],\"offset\":[3,0]"), 0, AT_PROTO_E_SHAPE);
    reject_text(LAYER2(",\"full_shape\":[4,3,1],\"offset\":[0,0,0]"), 0, AT_PROTO_E_SHAPE);
    reject_text(LAYER2(",\"full_shape\":[4,3],\"offset\":[-1,0]"), 0, AT_PROTO_E_SHAPE);
    reject_text(LAYER2(",\"full_shape\":[4,3],\"offset\":[0,\"0\"]"), 0, AT_PROTO_E_FIELD_TYPE);
    reject_text(LAYER2(",\"full_shape\":[2147483647,2147483647],\"offset\":[0,0]"), 0,
                AT_PROTO_E_SHAPE);
    reject_text(LAYER2(",\"rank\":16777216"), 0, AT_PROTO_E_VALUE);
    reject_text(LAYER2(",\"first_step\":2"), 0, AT_PROTO_E_VALUE);
    reject_text(END2(",\"first_step\":10"), 0, AT_PROTO_E_VALUE);
    reject_text(END2(",\"skipped\":1,\"total\":3"), 0, AT_PROTO_E_VALUE);
    reject_text(END2(",\"total\":2.5"), 0, AT_PROTO_E_FIELD_TYPE);
}

#define STOP(run) "{\"v\":1,\"type\":\"stop\",\"run\":\"" run "\",\"reason\":\"x\"}"
#define SCALARS(vals)                                                                              \
    "{\"v\":1,\"type\":\"scalars\",\"run\":\"r\",\"step\":1,\"values\":{" vals "}}"

/* Strings are UTF-8 without NUL or control characters; nothing is ever truncated. */
static void test_text_in_strings(void **state)
{
    (void)state;
    /* A stop for "r\u0000junk" used to reach run "r" cut short. */
    reject_text(STOP("r\\u0000junk"), 0, AT_PROTO_E_TEXT);
    reject_text(STOP("r\\u001b[2J"), 0, AT_PROTO_E_TEXT);
    reject_text(STOP("r\\n"), 0, AT_PROTO_E_TEXT);
    reject_text(STOP("r\\t"), 0, AT_PROTO_E_TEXT);
    reject_text(STOP("r\\u007F"), 0, AT_PROTO_E_TEXT);
    reject_text(STOP("r\\u009b"), 0, AT_PROTO_E_TEXT);
    reject_text(STOP("r\x7f"), 0, AT_PROTO_E_TEXT); /* raw DEL */
    reject_text(STOP("r\xc2\x9b"
                     "2J"),
                0, AT_PROTO_E_TEXT);                   /* raw C1 CSI, as UTF-8 */
    reject_text(STOP("r\x1b[2J"), 0, AT_PROTO_E_JSON); /* raw C0: not even JSON */
    reject_text(STOP("r\x9b"
                     "2J"),
                0, AT_PROTO_E_TEXT); /* a lone 8-bit CSI: not UTF-8 */
    reject_text(STOP("r\xff"), 0, AT_PROTO_E_TEXT);
    reject_text(STOP("r\xc0\xaf"), 0, AT_PROTO_E_TEXT);     /* overlong '/' */
    reject_text(STOP("r\xed\xa0\x80"), 0, AT_PROTO_E_TEXT); /* a surrogate, encoded */
    reject_text(STOP("r\xe2\x82"), 0, AT_PROTO_E_TEXT);     /* truncated euro sign */
    reject_text(STOP("r\\ud800"), 0, AT_PROTO_E_JSON);      /* half a surrogate pair */
    reject_text(STOP("r\\x41"), 0, AT_PROTO_E_JSON);        /* not a JSON escape */
    reject_text(STOP("r\\u00g1"), 0, AT_PROTO_E_JSON);
    reject_text("{\"v\":1,\"type\":\"pause\",\"run\":\"r\",\"x\xff\":1}", 0, AT_PROTO_E_TEXT);
    reject_text("{\"v\":1,\"type\":\"pause\",\"run\":\"r\"}\xff", 0, AT_PROTO_E_JSON);
    reject_text("{\"v\":1,\"type\":\"pause\",\"run\":\"r\",\xc3\xa9:1}", 0, AT_PROTO_E_JSON);
    static const char nul_after[] = "{\"v\":1,\"type\":\"pause\",\"run\":\"r\"}\0";
    reject_text(nul_after, sizeof nul_after - 1, AT_PROTO_E_JSON); /* a NUL after the object */
    /* A byte-order mark is refused (RFC 8259: a sender must not add one). */
    reject_text("\xef\xbb\xbf{\"v\":1,\"type\":\"pause\",\"run\":\"r\"}", 0, AT_PROTO_E_JSON);

    /* What is fine: escapes of printable characters, any valid UTF-8 including a surrogate pair
     * written as escapes, and format characters (printers escape those, see text.h). */
    at_proto_msg *m = accept_text(STOP("r\\u00e9\\ud83d\\ude00\xe2\x80\xae\\/\\\"\\\\"));
    assert_string_equal(m->run, "r\xc3\xa9\xf0\x9f\x98\x80\xe2\x80\xae/\"\\");
    free(m);

    /* The encoder refuses what the decoder would. */
    m = new_msg(AT_PROTO_STOP, "r\x1b");
    strcpy(m->u.reason, "x");
    size_t len;
    at_proto_error e;
    assert_int_equal(at_proto_encode(m, buf, sizeof buf, &len, &e), AT_ERR_FORMAT);
    assert_int_equal(e.reason, AT_PROTO_E_TEXT);
    strcpy(m->run, "r\xff");
    assert_int_equal(at_proto_encode(m, buf, sizeof buf, &len, &e), AT_ERR_FORMAT);
    assert_int_equal(e.reason, AT_PROTO_E_TEXT);
    free(m);
}

/* Numbers follow JSON's grammar; integers stop at 2^53 - 1; members are unique. */
static void test_numbers_and_members(void **state)
{
    (void)state;
    reject_text(SCALARS("\"a\":007"), 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":-01"), 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":1."), 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":1.e5"), 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":1e"), 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":1e+"), 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":-"), 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":.5"), 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":+1"), 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":NaN"), 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":1e400"), 0, AT_PROTO_E_VALUE); /* beyond a double: not inf */
    reject_text(SCALARS("\"a\":-1e400"), 0, AT_PROTO_E_VALUE);
    at_proto_msg *m = accept_text(SCALARS("\"a\":0,\"b\":-0,\"c\":1E+3,\"d\":2.5e-3,\"e\":0.0,"
                                          "\"f\":1.7976931348623157e308"));
    assert_int_equal(m->u.scalars.n, 6);
    assert_true(m->u.scalars.values[2].value == 1000);
    assert_true(m->u.scalars.values[3].value == 2.5e-3);
    assert_true(m->u.scalars.values[5].value == 1.7976931348623157e308);
    free(m);

    /* Integers: exactly representable ones only. 2^53 + 1 would read as 2^53. */
    m = accept_text("{\"v\":1,\"type\":\"goodbye\",\"run\":\"r\",\"step\":9007199254740991}");
    assert_int_equal(m->u.goodbye.step, 9007199254740991LL);
    free(m);
    m = accept_text("{\"v\":1,\"type\":\"goodbye\",\"run\":\"r\",\"step\":1e3}");
    assert_int_equal(m->u.goodbye.step, 1000);
    free(m);
    reject_text("{\"v\":1,\"type\":\"goodbye\",\"run\":\"r\",\"step\":9007199254740992}", 0,
                AT_PROTO_E_FIELD_TYPE);
    reject_text("{\"v\":1,\"type\":\"goodbye\",\"run\":\"r\",\"step\":9007199254740993}", 0,
                AT_PROTO_E_FIELD_TYPE);
    reject_text("{\"v\":1,\"type\":\"interval\",\"run\":\"r\",\"interval\":1e16}", 0,
                AT_PROTO_E_FIELD_TYPE);

    /* A member named twice, at any depth, is refused: parsers disagree on which one counts. */
    reject_text("{\"v\":1,\"type\":\"pause\",\"run\":\"r\",\"run\":\"s\"}", 0, AT_PROTO_E_JSON);
    reject_text("{\"v\":1,\"v\":1,\"type\":\"pause\",\"run\":\"r\"}", 0, AT_PROTO_E_JSON);
    reject_text(SCALARS("\"a\":1,\"b\":2,\"a\":3"), 0, AT_PROTO_E_JSON);
    reject_text("{\"v\":1,\"type\":\"hello\",\"run\":\"r\",\"interval\":1,"
                "\"tags\":{\"k\":\"1\",\"k\":\"2\"}}",
                0, AT_PROTO_E_JSON);
    reject_text("{\"v\":1,\"type\":\"pause\",\"run\":\"r\",\"x\":[{\"y\":1,\"y\":2}]}", 0,
                AT_PROTO_E_JSON);
    /* Many distinct unknown members (past the small stack buffer) are fine. */
    char many[4096] = "{\"v\":1,\"type\":\"pause\",\"run\":\"r\"";
    for (int i = 0; i < 200; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), ",\"u%d\":%d", i, i);
    strcat(many, "}");
    free(accept_text(many));
    many[strlen(many) - 1] = '\0';
    strcat(many, ",\"u150\":0}");
    reject_text(many, 0, AT_PROTO_E_JSON);
}

/* Scalars travel in the shortest text that reads back exactly, even the extremes. */
static void test_scalars_exact_text(void **state)
{
    (void)state;
    at_proto_msg *m = new_msg(AT_PROTO_SCALARS, "r");
    const double v[] = {0.1, 1.7976931348623157e308, 5e-324, 9007199254740991.0, -2.5, 100};
    const char *text[] = {"\"s0\":0.1",    "\"s1\":1.7976931348623157e+308",
                          "\"s2\":5e-324", "\"s3\":9007199254740991",
                          "\"s4\":-2.5",   "\"s5\":100"};
    m->u.scalars.n = 6;
    for (int i = 0; i < 6; i++) {
        snprintf(m->u.scalars.values[i].name, AT_PROTO_MAX_SHORT, "s%d", i);
        m->u.scalars.values[i].value = v[i];
    }
    at_proto_msg *o = round_trip(m, NULL, 0);
    for (int i = 0; i < 6; i++) {
        assert_memory_equal(&o->u.scalars.values[i].value, &v[i], sizeof v[i]);
        if (!strstr(buf, text[i]))
            fail_msg("%s not in %s", text[i], buf);
    }
    free(m);
    free(o);
}

static void test_endpoint_scope(void **state)
{
    (void)state;
    static const struct {
        const char *ep;
        at_proto_scope scope;
    } cases[] = {
        {"inproc://x", AT_PROTO_SCOPE_PROCESS},
        {"ipc:///tmp/alphatop-1000.ipc", AT_PROTO_SCOPE_USER},
        {"ipc://@alphatop", AT_PROTO_SCOPE_HOST},
        {"tcp://127.0.0.1:5555", AT_PROTO_SCOPE_HOST},
        {"tcp://127.1.2.3:*", AT_PROTO_SCOPE_HOST},
        {"tcp://localhost:5555", AT_PROTO_SCOPE_HOST},
        {"tcp://LocalHost:5555", AT_PROTO_SCOPE_HOST},
        {"tcp://[::1]:5555", AT_PROTO_SCOPE_HOST},
        {"tcp://[::ffff:127.0.0.1]:5555", AT_PROTO_SCOPE_HOST},
        {"ws://127.0.0.1:5555", AT_PROTO_SCOPE_HOST},
        {"ws://[::1]:5555/alphatop", AT_PROTO_SCOPE_HOST},
        {"wss://localhost:5555/x", AT_PROTO_SCOPE_HOST},
        {"tcp://*:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://0.0.0.0:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://[::]:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://192.168.1.5:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://128.0.0.1:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://127.evil.example:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://localhost.evil.example:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://eth0:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://lo:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://127.0.0.1;10.0.0.1:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://[::1%lo]:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://[fe80::1]:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://[::1:5555", AT_PROTO_SCOPE_NETWORK},
        {"tcp://127.0.0.1", AT_PROTO_SCOPE_NETWORK},
        {"ws://*:5555", AT_PROTO_SCOPE_NETWORK},
        {"ws://0.0.0.0:5555/path", AT_PROTO_SCOPE_NETWORK},
        {"wss://*:5555", AT_PROTO_SCOPE_NETWORK},
        {"pgm://eth0;239.192.1.1:5555", AT_PROTO_SCOPE_NETWORK},
        {"epgm://127.0.0.1;239.192.1.1:5555", AT_PROTO_SCOPE_NETWORK},
        {"vmci://1:5555", AT_PROTO_SCOPE_NETWORK},
        {"tipc://{5560,0,0}", AT_PROTO_SCOPE_NETWORK},
        {"udp://127.0.0.1:5555", AT_PROTO_SCOPE_NETWORK},
        {"TCP://127.0.0.1:5555", AT_PROTO_SCOPE_NETWORK},
        {"", AT_PROTO_SCOPE_NETWORK},
        {NULL, AT_PROTO_SCOPE_NETWORK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (at_proto_endpoint_scope(cases[i].ep) != cases[i].scope)
            fail_msg("%s: scope %d, want %d", cases[i].ep ? cases[i].ep : "NULL",
                     (int)at_proto_endpoint_scope(cases[i].ep), (int)cases[i].scope);
}

static void test_reason_names_distinct(void **state)
{
    (void)state;
    for (int a = 0; a < AT_PROTO_E_COUNT; a++)
        for (int b = a + 1; b < AT_PROTO_E_COUNT; b++)
            assert_string_not_equal(at_proto_reason_name((at_proto_reason)a),
                                    at_proto_reason_name((at_proto_reason)b));
    assert_string_equal(at_proto_reason_name(AT_PROTO_E_COUNT), "?");
}

static void test_encoder_refuses_what_decoder_would(void **state)
{
    (void)state;
    at_proto_msg *m = new_msg(AT_PROTO_LAYER, "r");
    at_proto_layer *l = &m->u.layer;
    strcpy(l->name, "w");
    l->ndim = 2;
    l->shape[0] = 3;
    l->shape[1] = 4;
    l->nbytes = 47; /* should be 48 */
    size_t len;
    at_proto_error e;
    assert_int_equal(at_proto_encode(m, buf, sizeof buf, &len, &e), AT_ERR_SIZE);
    assert_int_equal(e.reason, AT_PROTO_E_PAYLOAD_MISMATCH);
    l->nbytes = 48;
    assert_int_equal(at_proto_encode(m, buf, 20, &len, &e), AT_ERR_SIZE);
    assert_int_equal(e.reason, AT_PROTO_E_HEADER_SIZE);
    m->run[0] = '\0';
    assert_int_equal(at_proto_encode(m, buf, sizeof buf, &len, &e), AT_ERR_FORMAT);
    free(m);
}

static void test_crc32_known_values(void **state)
{
    (void)state;
    /* The CRC-32 check value, and zlib.crc32(bytes(range(256)) * 3) from Python. */
    assert_int_equal(at_proto_crc32(0, "123456789", 9), 0xCBF43926u);
    unsigned char b[768];
    for (int i = 0; i < 768; i++)
        b[i] = (unsigned char)i;
    uint32_t whole = at_proto_crc32(0, b, sizeof b);
    assert_int_equal(at_proto_crc32(at_proto_crc32(0, b, 13), b + 13, sizeof b - 13), whole);
    assert_int_equal(whole, 0xB0C0DF2Au);
}

static void test_default_endpoint(void **state)
{
    (void)state;
    char ep[256];
    unsetenv("ALPHATOP_ENDPOINT");
    assert_int_equal(at_proto_default_endpoint(ep, sizeof ep), AT_OK);
    char want[64];
    snprintf(want, sizeof want, "ipc:///tmp/alphatop-%lu.ipc", (unsigned long)getuid());
    assert_string_equal(ep, want);
    setenv("ALPHATOP_ENDPOINT", "tcp://127.0.0.1:5999", 1);
    assert_int_equal(at_proto_default_endpoint(ep, sizeof ep), AT_OK);
    assert_string_equal(ep, "tcp://127.0.0.1:5999");
    assert_int_equal(at_proto_default_endpoint(ep, 5), AT_ERR_SIZE);
    unsetenv("ALPHATOP_ENDPOINT");
}

static void test_keyfiles(void **state)
{
    (void)state;
    char path[128], pub[41], sec[41], err[256];
    snprintf(path, sizeof path, "/tmp/at-test-keys-%d", (int)getpid());
    const char *P = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    const char *S = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
    assert_true(at_key_is_z85(P));
    assert_false(at_key_is_z85("short"));
    assert_false(at_key_is_z85("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\""));
    assert_int_equal(at_keyfile_write(path, P, S), AT_OK);
    assert_int_equal(at_keyfile_read(path, pub, sec, err, sizeof err), AT_OK);
    assert_string_equal(pub, P);
    assert_string_equal(sec, S);
    char pubpath[160];
    snprintf(pubpath, sizeof pubpath, "%s.pub", path);
    assert_int_equal(at_keyfile_read(pubpath, pub, NULL, err, sizeof err), AT_OK);
    assert_string_equal(pub, P);
    assert_int_equal(at_keyfile_read(pubpath, pub, sec, err, sizeof err), AT_ERR_MISSING);
    /* An allow-list: a .pub file's line, bare keys (one starting with '#', one holding '=',
     * both Z85 characters), comments. */
    FILE *fp = fopen(path, "w");
    fprintf(fp,
            "# trainers\npublic-key = \"%s\"\n\n#bcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN\n"
            "  abcdefghij=lmnopqrstuvwxyzABCDEFGHIJKL=N \n",
            P);
    fclose(fp);
    char keys[4][41];
    size_t n = 0;
    assert_int_equal(at_keyfile_read_list(path, keys, 4, &n, err, sizeof err), AT_OK);
    assert_int_equal(n, 3);
    assert_string_equal(keys[0], P);
    assert_string_equal(keys[1], "#bcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN");
    assert_string_equal(keys[2], "abcdefghij=lmnopqrstuvwxyzABCDEFGHIJKL=N");
    assert_int_equal(at_keyfile_read_list(path, keys, 2, &n, err, sizeof err), AT_ERR_SIZE);
    fp = fopen(path, "w");
    fprintf(fp, "not a key\n");
    fclose(fp);
    assert_int_equal(at_keyfile_read_list(path, keys, 4, &n, err, sizeof err), AT_ERR_FORMAT);
    assert_non_null(strstr(err, ":1:"));
    assert_int_equal(at_keyfile_read("/nonexistent/k", pub, sec, err, sizeof err), AT_ERR_IO);
    /* A secret others can read gets a warning naming the fix; 0600 (as written) none. */
    assert_int_equal(at_keyfile_write(path, P, S), AT_OK);
    assert_int_equal(at_keyfile_check_private(path, err, sizeof err), AT_OK);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(at_keyfile_check_private(path, err, sizeof err), AT_ERR_AUTH);
    assert_non_null(strstr(err, "0644"));
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(at_keyfile_check_private(path, NULL, 0), AT_ERR_AUTH);
    assert_int_equal(at_keyfile_check_private("/nonexistent/k", err, sizeof err), AT_ERR_IO);
    unlink(path);
    unlink(pubpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_round_trip),
        cmocka_unit_test(test_layer_round_trip_every_kind_and_dtype),
        cmocka_unit_test(test_other_messages_round_trip),
        cmocka_unit_test(test_version_2),
        cmocka_unit_test(test_each_rejection_reason),
        cmocka_unit_test(test_text_in_strings),
        cmocka_unit_test(test_numbers_and_members),
        cmocka_unit_test(test_scalars_exact_text),
        cmocka_unit_test(test_endpoint_scope),
        cmocka_unit_test(test_reason_names_distinct),
        cmocka_unit_test(test_encoder_refuses_what_decoder_would),
        cmocka_unit_test(test_crc32_known_values),
        cmocka_unit_test(test_default_endpoint),
        cmocka_unit_test(test_keyfiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
