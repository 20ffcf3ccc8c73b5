/* SPDX-License-Identifier: Apache-2.0 */
/* test_record.c -- the record schema (record.h): every record type and event kind encoded then
 * decoded equal, non-finite numbers and odd strings included; lines the engine wrote before the
 * schema had its own module (tests/data/fuzz-record/ok-*: the monitor's own output, pid
 * replaced) decode and encode to the same bytes; what the decoder refuses, and what it reads
 * leniently; the layer columns report --csv walks; the model's event kinds; strings with
 * controls and bytes that are not UTF-8 written as clean JSON that is a fixed point; numbers a
 * 15-digit printer gets wrong (the largest double, 2^53 - 1, 0.1 + 0.2) written exactly; the
 * stats record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "testutil.h"

/* Strings that JSON must escape, or that are not ASCII. */
#define ODD "q \"quoted\" \\ back\nnew\ttab \x01 ctl \xce\xb1 alpha \xf0\x9f\x98\x80 /"

static at_record_decoder *dec;

static int setup(void **state)
{
    (void)state;
    dec = at_record_decoder_new(NULL);
    return dec ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    at_record_decoder_free(dec);
    return 0;
}

/* Encodes r, decodes the text into *out (borrowed from dec) and returns the text (caller frees
 * with at_record_text_free). */
static char *roundtrip(const at_record *r, at_record *out)
{
    size_t len;
    int st = -1;
    char *text = at_record_encode(r, &len, &st);
    assert_int_equal(st, AT_OK);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_int_equal(at_record_decode(dec, text, len, out), AT_OK);
    assert_int_equal(out->type, r->type);
    return text;
}

static void assert_str_or_null(const char *got, const char *want)
{
    if (!want)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

/* Equal, or both NAN: a non-finite number is written null and read back as NAN. */
static void assert_num(double got, double want)
{
    if (isfinite(want))
        assert_true(got == want);
    else
        assert_true(isnan(got));
}

static void test_event_kinds(void **state)
{
    (void)state;
    for (int k = 0; k < AT_RECORD_EV_COUNT; k++) {
        at_record r = {.type = AT_RECORD_EVENT, .run = ODD, .step = 120};
        at_record_event *e = &r.u.event;
        e->kind = (at_record_kind)k;
        e->layer = "h.0." ODD;
        e->text = ODD " text";
        e->dropped = k == AT_RECORD_EV_DROP ? 3 : 7;
        e->hello.model = "gpt " ODD;
        e->hello.framework = "pytorch";
        e->hello.host = "";
        e->hello.pid = 4242;
        e->hello.interval = 1LL << 40;
        e->hello.rank = 1;
        e->hello.world_size = 2;
        e->phase.view = AT_SPACE_DELTA;
        e->phase.from = k == AT_RECORD_EV_RUN_PHASE ? AT_RUN_GROKKING : AT_LAYER_HEALTHY;
        e->phase.to = k == AT_RECORD_EV_RUN_PHASE ? AT_RUN_COLLAPSE : AT_LAYER_BURNT;
        e->phase.since = 100;
        e->rule = "burnt:0.5";
        e->evidence = "";
        e->reason = "bad_json";
        at_record back;
        char *text = roundtrip(&r, &back);
        const at_record_event *b = &back.u.event;
        assert_int_equal(b->kind, k);
        assert_string_equal(back.run, ODD);
        assert_int_equal(back.step, 120);
        assert_string_equal(b->layer, "h.0." ODD);
        assert_string_equal(b->text, ODD " text");
        /* the kind's own fields, and no other kind's */
        assert_int_equal(b->dropped, k == AT_RECORD_EV_DROP      ? 3
                                     : k == AT_RECORD_EV_GOODBYE ? 7
                                                                 : -1);
        if (k == AT_RECORD_EV_HELLO) {
            assert_string_equal(b->hello.model, "gpt " ODD);
            assert_string_equal(b->hello.framework, "pytorch");
            assert_string_equal(b->hello.host, "");
            assert_int_equal(b->hello.pid, 4242);
            assert_int_equal(b->hello.interval, 1LL << 40);
            assert_int_equal(b->hello.rank, 1);
            assert_int_equal(b->hello.world_size, 2);
        } else {
            assert_null(b->hello.model);
            assert_null(strstr(text, "\"pid\""));
        }
        if (k == AT_RECORD_EV_PHASE || k == AT_RECORD_EV_RUN_PHASE) {
            assert_int_equal(b->phase.view, AT_SPACE_DELTA);
            assert_int_equal(b->phase.from, e->phase.from);
            assert_int_equal(b->phase.to, e->phase.to);
            assert_int_equal(b->phase.since, 100);
        } else {
            assert_null(strstr(text, "\"since\""));
        }
        assert_str_or_null(b->rule, k == AT_RECORD_EV_STOP ? "burnt:0.5" : NULL);
        assert_str_or_null(b->evidence, k == AT_RECORD_EV_STOP ? "" : NULL);
        assert_str_or_null(b->reason, k == AT_RECORD_EV_ERROR ? "bad_json" : NULL);
        /* the key order of the schema: type, kind, run, step, layer, ..., text last */
        char head[64];
        snprintf(head, sizeof head, "{\"type\":\"event\",\"kind\":\"%s\",\"run\":",
                 at_record_kind_name((at_record_kind)k));
        assert_memory_equal(text, head, strlen(head));
        assert_non_null(strstr(text, "\"text\":\"q \\\"quoted\\\" \\\\ back\\nnew\\ttab \\u0001"));
        assert_string_equal(text + strlen(text) - 7, " text\"}");
        at_record_text_free(text);
    }
}

/* Optional fields: an event without run, step, layer, dropped, rule or evidence. */
static void test_event_absent_fields(void **state)
{
    (void)state;
    at_record r = {.type = AT_RECORD_EVENT, .run = NULL, .step = -1};
    r.u.event = (at_record_event){.kind = AT_RECORD_EV_STOP, .layer = "", .dropped = -1};
    at_record back;
    char *text = roundtrip(&r, &back);
    assert_string_equal(text, "{\"type\":\"event\",\"kind\":\"stop\",\"text\":\"\"}");
    assert_null(back.run);
    assert_int_equal(back.step, -1);
    assert_null(back.u.event.layer);
    assert_null(back.u.event.rule);
    assert_null(back.u.event.evidence);
    at_record_text_free(text);
    r.u.event.kind = AT_RECORD_EV_DROP;
    text = roundtrip(&r, &back);
    assert_string_equal(text, "{\"type\":\"event\",\"kind\":\"drop\",\"text\":\"\"}");
    assert_int_equal(back.u.event.dropped, -1);
    at_record_text_free(text);
}

static at_metrics some_metrics(void)
{
    at_metrics m;
    at_metrics_init(&m, AT_MODE_WARM);
    m.status = AT_FIT_SUCCESS;
    m.N = 300;
    m.M = 150;
    m.rf = 1;
    m.Q = 2.0;
    m.num_evals = 150;
    m.alpha = 1.0 / 3.0; /* all 17 digits needed */
    m.xmin = 0.1;
    m.xmax = 12.5;
    m.D = NAN;
    m.sigma = INFINITY;
    m.num_pl_spikes = 40;
    m.log_norm = -2.5e-300;
    m.detx_num = 9;
    m.detx_val = 1e300;
    m.num_traps = 2;
    m.trap_max_ratio = 1.25;
    m.warning = at_warning_for(m.status, m.alpha);
    return m;
}

static void test_layer(void **state)
{
    (void)state;
    at_record r = {.type = AT_RECORD_LAYER, .run = ODD, .step = 1LL << 52};
    r.u.layer = (at_record_layer){.view = AT_SPACE_DELTA,
                                  .name = "q_proj.lora_BA " ODD,
                                  .m = some_metrics(),
                                  .kind = AT_KIND_CONV2D,
                                  .ndim = 4,
                                  .shape = {64, 32, 3, 3}};
    at_record back;
    char *text = roundtrip(&r, &back);
    const at_record_layer *l = &back.u.layer;
    assert_string_equal(back.run, ODD);
    assert_int_equal(back.step, 1LL << 52);
    assert_int_equal(l->view, AT_SPACE_DELTA);
    assert_string_equal(l->name, "q_proj.lora_BA " ODD);
    assert_null(l->error);
    assert_int_equal(l->kind, AT_KIND_CONV2D);
    assert_int_equal(l->ndim, 4);
    assert_memory_equal(l->shape, r.u.layer.shape, sizeof l->shape);
    const at_metrics *m = &l->m, *w = &r.u.layer.m;
    assert_int_equal(m->status, AT_FIT_SUCCESS);
    assert_int_equal(m->mode, AT_MODE_WARM);
    assert_int_equal(m->warning, w->warning);
    assert_int_equal(m->N, 300);
    assert_int_equal(m->num_evals, 150);
    assert_int_equal(m->num_pl_spikes, 40);
    assert_int_equal(m->detx_num, 9);
    assert_int_equal(m->num_traps, 2);
    assert_int_equal(m->matrix_rank, -1); /* not set: -1 both ways */
    assert_num(m->alpha, w->alpha);
    assert_num(m->Q, 2.0);
    assert_num(m->log_norm, w->log_norm);
    assert_num(m->detx_val, 1e300);
    assert_num(m->trap_max_ratio, 1.25);
    assert_num(m->D, NAN);
    assert_num(m->sigma, NAN); /* infinity is written null */
    assert_num(m->entropy, NAN);
    /* the MP columns are not part of the record */
    assert_null(strstr(text, "sigma_mp"));
    assert_non_null(strstr(text, "\"alpha\":0.3333333333333333,"));
    assert_non_null(strstr(text, "\"sigma\":null,"));
    assert_non_null(strstr(text, "\"mode\":\"warm\",\"kind\":\"conv2d\",\"shape\":[64,32,3,3]}"));
    at_record_text_free(text);

    /* a layer that could not be analysed */
    r.u.layer.error = ODD;
    r.u.layer.view = AT_SPACE_W;
    r.u.layer.kind = AT_KIND_EMBEDDING;
    r.u.layer.ndim = 2;
    text = roundtrip(&r, &back);
    assert_string_equal(back.u.layer.error, ODD);
    assert_int_equal(back.u.layer.kind, AT_KIND_EMBEDDING);
    assert_int_equal(back.u.layer.ndim, 2);
    assert_int_equal(back.u.layer.view, AT_SPACE_W);
    assert_null(strstr(text, "\"alpha\":"));
    assert_non_null(strstr(text, "\"status\":\"error\",\"error\":"));
    at_record_text_free(text);
}

static void test_scalars(void **state)
{
    (void)state;
    const at_record_scalar vals[] = {{"loss", 0.1},  {"acc", NAN},     {ODD, -INFINITY},
                                     {"big", 1e308}, {"tiny", 5e-324}, {"loss", 2.0}};
    at_record r = {.type = AT_RECORD_SCALARS, .run = "r1", .step = 0};
    r.u.scalars = (at_record_scalars){6, vals};
    at_record back;
    char *text = roundtrip(&r, &back);
    assert_int_equal(back.step, 0);
    assert_int_equal(back.u.scalars.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_string_equal(back.u.scalars.values[i].name, vals[i].name);
        assert_num(back.u.scalars.values[i].value, vals[i].value);
    }
    assert_non_null(strstr(text, "\"values\":{\"loss\":0.1,\"acc\":null,"));
    at_record_text_free(text);
    r.u.scalars.n = 0;
    text = roundtrip(&r, &back);
    assert_string_equal(text, "{\"type\":\"scalars\",\"run\":\"r1\",\"step\":0,\"values\":{}}");
    assert_int_equal(back.u.scalars.n, 0);
    at_record_text_free(text);
}

static void test_spectrum(void **state)
{
    (void)state;
    double ev[5] = {1e-30, 0.36079359076080975, NAN, INFINITY, 1.0 / 7.0};
    at_record r = {.type = AT_RECORD_SPECTRUM, .run = "r1", .step = 10};
    r.u.spectrum = (at_record_spectrum){AT_SPACE_DELTA, ODD, 5, ev};
    at_record back;
    char *text = roundtrip(&r, &back);
    assert_int_equal(back.u.spectrum.view, AT_SPACE_DELTA);
    assert_string_equal(back.u.spectrum.name, ODD);
    assert_int_equal(back.u.spectrum.n, 5);
    for (int i = 0; i < 5; i++)
        assert_num(back.u.spectrum.evals[i], ev[i]);
    at_record_text_free(text);
    r.u.spectrum.n = 0;
    r.u.spectrum.evals = NULL;
    text = roundtrip(&r, &back);
    assert_int_equal(back.u.spectrum.n, 0);
    assert_non_null(strstr(text, "\"evals\":[]}"));
    at_record_text_free(text);
}

static void test_weights(void **state)
{
    (void)state;
    at_record r = {.type = AT_RECORD_WEIGHTS, .run = "r1", .step = 30};
    r.u.weights = (at_record_weights){ODD, AT_PROTO_KIND_CONV1D, AT_PROTO_BF16, 1, 3, {16, 8, 3}};
    at_record back;
    char *text = roundtrip(&r, &back);
    const at_record_weights *w = &back.u.weights;
    assert_string_equal(w->name, ODD);
    assert_int_equal(w->kind, AT_PROTO_KIND_CONV1D);
    assert_int_equal(w->dtype, AT_PROTO_BF16);
    assert_int_equal(w->base, 1);
    assert_int_equal(w->ndim, 3);
    assert_int_equal(w->shape[2], 3);
    assert_non_null(strstr(text, "\"kind\":\"conv1d\",\"dtype\":\"bf16\",\"base\":true,"
                                 "\"shape\":[16,8,3]}"));
    at_record_text_free(text);
}

/* The monitor's own lines, as the engine wrote them before record.c existed (and the kinds and
 * fields added since: warning, an error's reason, stats). */
static void test_engine_lines(void **state)
{
    (void)state;
    static const char *const files[] = {
        "ok-hello",       "ok-info-base",    "ok-info-lora-fast", "ok-error-layer",
        "ok-phase",       "ok-run-phase",    "ok-goodbye",        "ok-stop-rule",
        "ok-ack",         "ok-layer",        "ok-layer-conv",     "ok-layer-delta-lora",
        "ok-layer-error", "ok-layer-fast",   "ok-scalars-null",   "ok-weights",
        "ok-warning",     "ok-error-reason", "ok-stats"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        size_t len;
        snprintf(path, sizeof path, "%s/fuzz-record/%s.json", AT_DATA_DIR, files[i]);
        char *line = at_test_slurp(path, &len);
        assert_non_null(line);
        at_record r;
        assert_int_equal(at_record_decode(dec, line, len, &r), AT_OK);
        size_t n;
        char *again = at_record_encode(&r, &n, NULL);
        assert_non_null(again);
        if (n != len || memcmp(again, line, len))
            fail_msg("%s: encoded again as\n%s\nnot\n%s", files[i], again, line);
        at_record_text_free(again);
        free(line);
    }
}

static void test_decode_refuses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "{\"type\":\"event\",",
        "[]",
        "null",
        "{}",
        "{\"type\":\"warning\",\"run\":\"r1\"}",
        "{\"type\":\"event\",\"kind\":\"whisper\",\"text\":\"never written\"}",
        "{\"type\":\"event\",\"kind\":7}",
        "{\"type\":\"layer\",\"step\":1,\"name\":\"x\"}",
        "{\"type\":\"scalars\",\"run\":\"\",\"values\":{}}",
        "{\"type\":\"spectrum\",\"run\":null,\"evals\":[]}",
        "{\"type\":\"weights\",\"run\":[\"r1\"]}",
    };
    at_record r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (at_record_decode(dec, bad[i], strlen(bad[i]), &r) != AT_ERR_FORMAT)
            fail_msg("decoded: %s", bad[i]);
    /* the length is what counts, not a NUL */
    const char *two = "{\"type\":\"event\",\"kind\":\"ack\"}{\"type\":3}";
    size_t first = (size_t)(strchr(two, '}') - two) + 1;
    assert_int_equal(at_record_decode(dec, two, first, &r), AT_OK);
    assert_int_equal(at_record_decode(dec, two, first - 1, &r), AT_ERR_FORMAT);
}

/* Lenient reading: missing or mistyped fields are absent, unknown names read as the default. */
static void test_decode_lenient(void **state)
{
    (void)state;
    at_record r;
    const char *hello = "{\"type\":\"event\",\"kind\":\"hello\",\"run\":\"r1\",\"step\":-7,"
                        "\"model\":3,\"pid\":1e300,\"interval\":50.9,\"text\":null}";
    assert_int_equal(at_record_decode(dec, hello, strlen(hello), &r), AT_OK);
    assert_int_equal(r.step, -1);
    assert_string_equal(r.u.event.hello.model, "");
    assert_string_equal(r.u.event.hello.framework, "");
    assert_int_equal(r.u.event.hello.pid, -1);
    assert_int_equal(r.u.event.hello.interval, 50);
    assert_int_equal(r.u.event.hello.rank, -1);
    assert_string_equal(r.u.event.text, "");
    const char *phase = "{\"type\":\"event\",\"kind\":\"run_phase\",\"view\":\"sideways\","
                        "\"from\":\"grokking\",\"to\":\"burnt\",\"run\":\"\"}";
    assert_int_equal(at_record_decode(dec, phase, strlen(phase), &r), AT_OK);
    assert_null(r.run);
    assert_int_equal(r.u.event.phase.view, AT_SPACE_W);
    assert_int_equal(r.u.event.phase.from, AT_RUN_GROKKING);
    assert_int_equal(r.u.event.phase.to, AT_RUN_UNKNOWN); /* a layer phase, not a run's */
    assert_int_equal(r.u.event.phase.since, -1);
    const char *layer = "{\"type\":\"layer\",\"run\":\"r1\",\"alpha\":\"x\",\"status\":\"odd\","
                        "\"kind\":\"lora_A\",\"shape\":[1,2,3]}";
    assert_int_equal(at_record_decode(dec, layer, strlen(layer), &r), AT_OK);
    assert_int_equal(r.step, -1);
    assert_string_equal(r.u.layer.name, "");
    assert_null(r.u.layer.error);
    assert_int_equal(r.u.layer.m.status, AT_FIT_FAILED);
    assert_true(isnan(r.u.layer.m.alpha));
    assert_int_equal(r.u.layer.kind, AT_KIND_LINEAR);
    assert_int_equal(r.u.layer.ndim, 0); /* core's layers are 2-D or 4-D */
    const char *sc = "{\"type\":\"scalars\",\"run\":\"r1\",\"values\":[1,2]}";
    assert_int_equal(at_record_decode(dec, sc, strlen(sc), &r), AT_OK);
    assert_int_equal(r.u.scalars.n, 0);
    const char *w = "{\"type\":\"weights\",\"run\":\"r1\",\"kind\":\"lstm\",\"dtype\":\"f64\","
                    "\"base\":1,\"shape\":[1,2,3,4,5]}";
    assert_int_equal(at_record_decode(dec, w, strlen(w), &r), AT_OK);
    assert_int_equal(r.u.weights.kind, AT_PROTO_KIND_LINEAR);
    assert_int_equal(r.u.weights.dtype, AT_PROTO_F32);
    assert_int_equal(r.u.weights.base, 0);
    assert_int_equal(r.u.weights.ndim, 0);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    int st = 0;
    at_record r = {.type = AT_RECORD_LAYER, .run = NULL, .step = 1};
    r.u.layer.name = "x";
    assert_null(at_record_encode(&r, NULL, &st));
    assert_int_equal(st, AT_ERR_ARG);
    r.run = "r1";
    r.u.layer.ndim = 5;
    assert_null(at_record_encode(&r, NULL, &st));
    assert_int_equal(st, AT_ERR_ARG);
    r.u.layer = (at_record_layer){.name = NULL};
    assert_null(at_record_encode(&r, NULL, &st));
    assert_int_equal(st, AT_ERR_ARG);
    r.type = (at_record_type)9;
    assert_null(at_record_encode(&r, NULL, &st));
    assert_int_equal(st, AT_ERR_ARG);
    r.type = AT_RECORD_EVENT;
    r.u.event = (at_record_event){.kind = AT_RECORD_EV_COUNT};
    assert_null(at_record_encode(&r, NULL, &st));
    assert_int_equal(st, AT_ERR_ARG);
    const at_record_scalar nameless = {NULL, 1.0};
    r.type = AT_RECORD_SCALARS;
    r.u.scalars = (at_record_scalars){1, &nameless};
    assert_null(at_record_encode(&r, NULL, &st));
    assert_int_equal(st, AT_ERR_ARG);
    assert_string_equal(at_record_type_name((at_record_type)9), "?");
    assert_string_equal(at_record_kind_name(AT_RECORD_EV_COUNT), "?");
    assert_string_equal(at_record_view_name((at_space)5), "?");
}

typedef struct cols {
    char names[64][32];
    at_record_column c[64];
    char strings[64][64];
    int n;
} cols;

static void take(void *ctx, const at_record_column *c)
{
    cols *k = ctx;
    assert_true(k->n < 64);
    snprintf(k->names[k->n], sizeof k->names[k->n], "%s", c->name);
    k->c[k->n] = *c;
    if (c->type == AT_COLUMN_STRING)
        snprintf(k->strings[k->n], sizeof k->strings[k->n], "%s", c->string);
    k->n++;
}

static void test_layer_columns(void **state)
{
    (void)state;
    at_record r = {.type = AT_RECORD_LAYER, .run = "r1", .step = 5};
    r.u.layer = (at_record_layer){
        .name = "fc1", .m = some_metrics(), .kind = AT_KIND_LINEAR, .ndim = 2, .shape = {300, 150}};
    cols k = {0};
    assert_int_equal(at_record_layer_columns(&r, take, &k), AT_OK);
    /* the reference columns, detX and traps, mode, kind, shape: as scan --json writes them */
    static const char *const want[] = {"N",
                                       "M",
                                       "rf",
                                       "Q",
                                       "num_evals",
                                       "alpha",
                                       "xmin",
                                       "xmax",
                                       "D",
                                       "sigma",
                                       "num_pl_spikes",
                                       "status",
                                       "warning",
                                       "alpha_weighted",
                                       "log_norm",
                                       "log_spectral_norm",
                                       "spectral_norm",
                                       "norm",
                                       "log_alpha_norm",
                                       "stable_rank",
                                       "matrix_rank",
                                       "entropy",
                                       "sv_max",
                                       "sv_min",
                                       "lambda_max",
                                       "rank_loss",
                                       "weak_rank_loss",
                                       "detX_num",
                                       "detX_val",
                                       "num_traps",
                                       "trap_max_ratio",
                                       "mode",
                                       "kind",
                                       "shape"};
    assert_int_equal(k.n, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < k.n; i++)
        assert_string_equal(k.names[i], want[i]);
    assert_int_equal(k.c[0].type, AT_COLUMN_NUMBER);
    assert_true(k.c[0].number == 300);
    assert_true(k.c[5].number == 1.0 / 3.0);
    assert_int_equal(k.c[8].type, AT_COLUMN_NULL);
    assert_int_equal(k.c[11].type, AT_COLUMN_STRING);
    assert_string_equal(k.strings[11], "success");
    assert_string_equal(k.strings[31], "warm");
    assert_int_equal(k.c[33].type, AT_COLUMN_SHAPE);
    assert_int_equal(k.c[33].ndim, 2);
    r.u.layer.error = "NaN";
    memset(&k, 0, sizeof k);
    assert_int_equal(at_record_layer_columns(&r, take, &k), AT_OK);
    assert_int_equal(k.n, 4);
    assert_string_equal(k.names[0], "status");
    assert_string_equal(k.strings[1], "NaN");
    assert_string_equal(k.names[2], "kind");
    r.type = AT_RECORD_SCALARS;
    assert_int_equal(at_record_layer_columns(&r, take, &k), AT_ERR_ARG);
}

/* Encodes r: the text must be clean (valid UTF-8, no control character) and a fixed point
 * (decoded and encoded again, the same bytes). Returns the text, decoded into *back. */
static char *encode_clean(const at_record *r, at_record *back)
{
    char *text = roundtrip(r, back), why[128];
    if (at_test_clean_text(text, strlen(text), why, sizeof why))
        fail_msg("%s in %s", why, text);
    size_t n;
    char *again = at_record_encode(back, &n, NULL);
    assert_non_null(again);
    assert_string_equal(again, text);
    at_record_text_free(again);
    assert_int_equal(at_record_decode(dec, text, strlen(text), back), AT_OK);
    return text;
}

/* Bytes a peer or a crafted log may hold: never written as they are. */
static void test_hostile_strings(void **state)
{
    (void)state;
    at_record r = {.type = AT_RECORD_LAYER,
                   .run = "r\x9b"
                          "31m",
                   .step = 7};
    r.u.layer = (at_record_layer){.name = "fc\x1b[2J\xc2\x9b\xe2\x80\xae",
                                  .error = "bad \xff\xfe",
                                  .ndim = 2,
                                  .shape = {3, 2}};
    at_record back;
    char *text = encode_clean(&r, &back);
    assert_string_equal(text,
                        "{\"type\":\"layer\",\"run\":\"r\\ufffd31m\",\"step\":7,\"view\":\"w\","
                        "\"name\":\"fc\\u001b[2J\\u009b\\u202e\",\"status\":\"error\","
                        "\"error\":\"bad \\ufffd\\ufffd\",\"kind\":\"linear\","
                        "\"shape\":[3,2]}");
    assert_string_equal(back.u.layer.error, "bad \xef\xbf\xbd\xef\xbf\xbd");
    at_record_text_free(text);

    const at_record_scalar vals[] = {{"lo\x9bss", 1.0}, {"\x1b]0;t\x07", 2.0}};
    r = (at_record){.type = AT_RECORD_SCALARS, .run = "r1", .step = 1};
    r.u.scalars = (at_record_scalars){2, vals};
    text = encode_clean(&r, &back);
    assert_non_null(strstr(text, "{\"lo\\ufffdss\":1,\"\\u001b]0;t\\u0007\":2}"));
    at_record_text_free(text);

    r = (at_record){.type = AT_RECORD_EVENT, .run = "\xf0\x9f\x98", .step = -1};
    r.u.event = (at_record_event){.kind = AT_RECORD_EV_HELLO,
                                  .text = "t\x7f",
                                  .hello = {.model = "\xc0\xaf", .host = "h\x0d\x0a"}};
    text = encode_clean(&r, &back);
    assert_non_null(strstr(text, "\"run\":\"\\ufffd\\ufffd\\ufffd\",\"model\":\"\\ufffd\\ufffd\""));
    assert_non_null(strstr(text, "\"host\":\"h\\r\\n\""));
    assert_non_null(strstr(text, "\"text\":\"t\\u007f\"}"));
    at_record_text_free(text);
}

/* Numbers as the shortest text that reads back exactly: no 15-digit text that a JSON reader
 * takes for infinity (the largest double) or another integer (2^53 - 1). */
static void test_exact_numbers(void **state)
{
    (void)state;
    const at_record_scalar vals[] = {{"max", DBL_MAX},
                                     {"min", -DBL_MAX},
                                     {"sum", 0.1 + 0.2},
                                     {"tiny", 5e-324},
                                     {"big", 9007199254740991.0}};
    at_record r = {.type = AT_RECORD_SCALARS, .run = "r1", .step = 9007199254740991LL};
    r.u.scalars = (at_record_scalars){5, vals};
    at_record back;
    char *text = encode_clean(&r, &back);
    assert_string_equal(text, "{\"type\":\"scalars\",\"run\":\"r1\",\"step\":9007199254740991,"
                              "\"values\":{\"max\":1.7976931348623157e+308,"
                              "\"min\":-1.7976931348623157e+308,\"sum\":0.30000000000000004,"
                              "\"tiny\":5e-324,\"big\":9007199254740991}}");
    assert_int_equal(back.step, 9007199254740991LL);
    for (int i = 0; i < 5; i++)
        assert_true(back.u.scalars.values[i].value == vals[i].value);
    at_record_text_free(text);

    double ev[3] = {DBL_MAX, 1.0 / 3.0, 0.1 + 0.2};
    r = (at_record){.type = AT_RECORD_SPECTRUM, .run = "r1", .step = 1};
    r.u.spectrum = (at_record_spectrum){AT_SPACE_W, "fc1", 3, ev};
    text = encode_clean(&r, &back);
    assert_non_null(
        strstr(text, "\"evals\":[1.7976931348623157e+308,0.3333333333333333,0.30000000000000004]"));
    for (int i = 0; i < 3; i++)
        assert_true(back.u.spectrum.evals[i] == ev[i]);
    at_record_text_free(text);

    r = (at_record){.type = AT_RECORD_EVENT, .run = "r1", .step = 9007199254740991LL};
    r.u.event = (at_record_event){.kind = AT_RECORD_EV_GOODBYE, .dropped = 4503599627370497LL};
    text = encode_clean(&r, &back);
    assert_non_null(strstr(text, "\"step\":9007199254740991,\"dropped\":4503599627370497,"));
    at_record_text_free(text);
}

/* The monitor's counters at exit. */
static void test_stats(void **state)
{
    (void)state;
    at_record r = {.type = AT_RECORD_STATS, .run = NULL, .step = -1};
    at_record_stats *s = &r.u.stats;
    s->messages = 120;
    s->rejected = 5;
    s->rejected_by[AT_PROTO_E_JSON] = 3;
    s->rejected_by[AT_PROTO_E_TEXT] = 2;
    s->auth_denied = 7;
    s->handshake_failed = 1;
    s->accept_pauses = 2;
    s->unexpected_acks = 1;
    s->runs_evicted = 30;
    s->runs_refused = 4;
    s->layers_shed = 6;
    s->snapshots_shed = 2;
    s->run_bytes_max = 1 << 20;
    at_record back;
    char *text = encode_clean(&r, &back);
    const char *head = "{\"type\":\"stats\",\"messages\":120,\"rejected\":5,"
                       "\"rejected_by\":{\"bad_frames\":0,";
    assert_memory_equal(text, head, strlen(head));
    assert_non_null(strstr(text, "\"bad_json\":3,"));
    assert_non_null(strstr(text, "\"bad_text\":2,"));
    assert_non_null(strstr(text, "},\"auth_denied\":7,\"handshake_failed\":1,"
                                 "\"accept_pauses\":2,\"unexpected_acks\":1,\"runs_evicted\":30,"
                                 "\"runs_refused\":4,\"layers_shed\":6,\"snapshots_shed\":2,"
                                 "\"run_bytes_max\":1048576}"));
    assert_null(back.run);
    assert_memory_equal(&back.u.stats, s, sizeof *s);
    at_record_text_free(text);
    /* absent counts read as -1, and a stats record needs no run */
    const char *bare = "{\"type\":\"stats\",\"rejected_by\":{\"bad_json\":2}}";
    assert_int_equal(at_record_decode(dec, bare, strlen(bare), &back), AT_OK);
    assert_int_equal(back.u.stats.messages, -1);
    assert_int_equal(back.u.stats.rejected_by[AT_PROTO_E_JSON], 2);
    assert_int_equal(back.u.stats.rejected_by[AT_PROTO_E_TEXT], -1);
}

static void test_model_kind(void **state)
{
    (void)state;
    static const struct {
        at_record_kind k;
        int to;
        at_event_kind want;
    } cases[] = {
        {AT_RECORD_EV_HELLO, 0, AT_EVENT_INFO},
        {AT_RECORD_EV_GOODBYE, 0, AT_EVENT_INFO},
        {AT_RECORD_EV_PHASE, AT_LAYER_BURNT, AT_EVENT_PHASE},
        {AT_RECORD_EV_RUN_PHASE, AT_RUN_GROKKING, AT_EVENT_INFO},
        {AT_RECORD_EV_RUN_PHASE, AT_RUN_COLLAPSE, AT_EVENT_WARNING},
        {AT_RECORD_EV_TRAP, 0, AT_EVENT_TRAP},
        {AT_RECORD_EV_STOP, 0, AT_EVENT_STOP},
        {AT_RECORD_EV_ACK, 0, AT_EVENT_STOP},
        {AT_RECORD_EV_DROP, 0, AT_EVENT_DROP},
        {AT_RECORD_EV_ERROR, 0, AT_EVENT_ERROR},
        {AT_RECORD_EV_INFO, 0, AT_EVENT_INFO},
        {AT_RECORD_EV_WARNING, 0, AT_EVENT_WARNING},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        at_record_event e = {.kind = cases[i].k};
        e.phase.to = cases[i].to;
        assert_int_equal(at_record_model_kind(&e), cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_kinds),     cmocka_unit_test(test_event_absent_fields),
        cmocka_unit_test(test_layer),           cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_spectrum),        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_engine_lines),    cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_decode_lenient),  cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_layer_columns),   cmocka_unit_test(test_model_kind),
        cmocka_unit_test(test_hostile_strings), cmocka_unit_test(test_exact_numbers),
        cmocka_unit_test(test_stats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
