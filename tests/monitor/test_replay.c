/* SPDX-License-Identifier: Apache-2.0 */
/* test_replay.c -- a run log back into the model: runs, layers, cells, scalars, events; and
 * back out as the same JSON lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics_fmt.h"
#include "replay.h"
#include "runlog.h"
#include "testutil.h"

static const char *const lines[] = {
    "{\"type\":\"event\",\"kind\":\"hello\",\"run\":\"r1\",\"model\":\"mlp\",\"host\":\"box\","
    "\"interval\":50,\"text\":\"run r1 started\"}",
    "{\"type\":\"layer\",\"run\":\"r1\",\"step\":50,\"view\":\"w\",\"name\":\"fc1\",\"N\":64,"
    "\"M\":32,\"alpha\":7.5,\"xmin\":0.1,\"status\":\"success\",\"log_norm\":1.25,"
    "\"num_traps\":0,\"mode\":\"exact\",\"kind\":\"linear\",\"shape\":[64,32]}",
    "{\"type\":\"layer\",\"run\":\"r1\",\"step\":100,\"view\":\"w\",\"name\":\"fc1\",\"N\":64,"
    "\"M\":32,\"alpha\":3.5,\"xmin\":0.1,\"status\":\"success\",\"log_norm\":1.5,"
    "\"num_traps\":2,\"mode\":\"exact\",\"kind\":\"linear\",\"shape\":[64,32]}",
    "{\"type\":\"layer\",\"run\":\"r1\",\"step\":100,\"view\":\"delta\",\"name\":\"fc1\","
    "\"N\":64,\"M\":32,\"alpha\":null,\"status\":\"failed\",\"mode\":\"exact\","
    "\"kind\":\"linear\",\"shape\":[64,32]}",
    "{\"type\":\"layer\",\"run\":\"r1\",\"step\":100,\"view\":\"w\",\"name\":\"fc2\","
    "\"status\":\"error\",\"error\":\"weights contain 1 NaN value\",\"kind\":\"linear\","
    "\"shape\":[10,64]}",
    "{\"type\":\"event\",\"kind\":\"phase\",\"run\":\"r1\",\"step\":100,\"layer\":\"fc1\","
    "\"view\":\"w\",\"from\":\"unknown\",\"to\":\"raw\",\"since\":50,"
    "\"text\":\"fc1: unknown -> raw since step 50 (alpha 7.50)\"}",
    "{\"type\":\"event\",\"kind\":\"phase\",\"run\":\"r1\",\"step\":100,\"layer\":\"fc1\","
    "\"view\":\"delta\",\"from\":\"healthy\",\"to\":\"failed\",\"since\":100,"
    "\"text\":\"delta view: fc1: healthy -> failed since step 100 (power-law fit failed)\"}",
    "{\"type\":\"event\",\"kind\":\"phase\",\"run\":\"r1\",\"step\":100,\"layer\":\"fc1\","
    "\"view\":\"w\",\"from\":\"raw\",\"to\":\"healthy\",\"since\":100,"
    "\"text\":\"fc1: raw -> healthy since step 100 (alpha 3.50)\"}",
    "{\"type\":\"event\",\"kind\":\"run_phase\",\"run\":\"r1\",\"step\":100,\"view\":\"w\","
    "\"from\":\"grokking\",\"to\":\"collapse\",\"since\":100,"
    "\"text\":\"run: grokking -> collapse since step 100\"}",
    "{\"type\":\"scalars\",\"run\":\"r1\",\"step\":100,\"values\":{\"loss\":0.25,\"acc\":null}}",
    "{\"type\":\"event\",\"kind\":\"stop\",\"run\":\"r1\",\"step\":100,\"rule\":\"collapse\","
    "\"text\":\"stop rule collapse fired\"}",
};
#define NLINES (sizeof lines / sizeof lines[0])

static char path[256];

static void write_log(void)
{
    int st;
    snprintf(path, sizeof path, "/tmp/at-test-replay-%d.atlog", (int)getpid());
    unlink(path);
    at_runlog *log = at_runlog_open(path, &st);
    assert_non_null(log);
    for (size_t i = 0; i < NLINES; i++)
        assert_int_equal(at_runlog_append_json(log, lines[i], strlen(lines[i])), AT_OK);
    at_runlog_close(log);
}

static void test_load(void **state)
{
    (void)state;
    write_log();
    at_model *m = at_model_new();
    char note[256];
    assert_int_equal(at_replay_load(m, path, note, sizeof note), (int)NLINES);
    assert_string_equal(note, "");
    assert_int_equal(at_model_num_runs(m), 1);
    at_run_info *ri = at_model_run(m, 0);
    assert_string_equal(ri->id, "r1");
    assert_string_equal(ri->name, "mlp");
    assert_string_equal(ri->host, "box");
    assert_int_equal(ri->interval, 50);
    assert_true(ri->stop_requested);
    assert_int_equal(at_model_num_layers(m, 0), 2);
    assert_int_equal(at_model_layer(m, 0, 0)->shape[0], 64);
    assert_int_equal(at_model_num_snapshots(m, 0), 2);
    const at_cell *c = at_model_cell(m, 0, 0, AT_SPACE_W, 1);
    assert_non_null(c);
    assert_true(c->v[AT_METRIC_ALPHA] == 3.5f);
    assert_true(c->v[AT_METRIC_LOG_NORM] == 1.5f);
    assert_true(c->v[AT_METRIC_TRAPS] == 2.0f);
    assert_true(at_model_has_space(m, 0, AT_SPACE_DELTA));
    const at_cell *d = at_model_cell(m, 0, 0, AT_SPACE_DELTA, 1);
    assert_int_equal(d->status, AT_FIT_FAILED);
    assert_int_equal(at_model_num_scalars(m, 0), 1);
    at_series s;
    assert_int_equal(at_model_scalar(m, 0, 0, &s), AT_OK);
    assert_string_equal(s.name, "loss");
    assert_true(s.n == 1 && s.values[0] == 0.25);
    /* hello, the NaN error, the recorded phase changes (a layer's first phase is not one; the
     * cells' own crossing from 7.5 to 3.5 adds nothing more), the collapse, the stop */
    int stops = 0, errors = 0, warnings = 0;
    const at_event *ph[4];
    int nph = 0;
    for (int i = 0; i < at_model_num_events(m); i++) {
        const at_event *e = at_model_event(m, i);
        stops += e->kind == AT_EVENT_STOP;
        errors += e->kind == AT_EVENT_ERROR;
        warnings += e->kind == AT_EVENT_WARNING;
        if (e->kind == AT_EVENT_PHASE && nph < 4)
            ph[nph++] = e;
    }
    assert_int_equal(stops, 1);
    assert_int_equal(errors, 1);
    assert_int_equal(warnings, 1);
    assert_int_equal(nph, 2);
    assert_int_equal(ph[0]->space, AT_SPACE_DELTA);
    assert_int_equal(ph[0]->from, AT_LAYER_HEALTHY);
    assert_int_equal(ph[0]->to, AT_LAYER_FAILED);
    assert_string_equal(ph[0]->text,
                        "delta view: fc1: healthy -> failed since step 100 (power-law fit failed)");
    assert_int_equal(ph[1]->space, AT_SPACE_W);
    assert_int_equal(ph[1]->from, AT_LAYER_RAW);
    assert_int_equal(ph[1]->to, AT_LAYER_HEALTHY);
    assert_int_equal(ph[1]->layer, 0);
    assert_int_equal(ph[1]->run, 0);
    assert_int_equal(ph[1]->step, 100);
    assert_true(at_model_state(m)->replay);
    at_model_free(m);
    unlink(path);
}

/* Writes the n records (n_i bytes each; 0: strlen) to a fresh log at path. */
static void write_records(const char *const *recs, const size_t *lens, size_t n)
{
    int st;
    unlink(path);
    at_runlog *log = at_runlog_open(path, &st);
    assert_non_null(log);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(
            at_runlog_append_json(log, recs[i], lens && lens[i] ? lens[i] : strlen(recs[i])),
            AT_OK);
    at_runlog_close(log);
}

/* at_replay_print of the log at path: its output (caller frees), line count and note. */
static char *print_log(int *lines_out, char *note, size_t notelen)
{
    char out[300];
    snprintf(out, sizeof out, "%s.out", path);
    FILE *f = fopen(out, "w+");
    assert_non_null(f);
    *lines_out = at_replay_print(f, path, note, notelen);
    fclose(f);
    char *text = at_test_slurp(out, NULL);
    assert_non_null(text);
    unlink(out);
    return text;
}

/* What the monitor wrote (the engine's own lines of the record corpus) is printed byte for
 * byte. */
static void test_print(void **state)
{
    (void)state;
    static const char *const files[] = {"ok-hello",        "ok-layer",      "ok-layer-error",
                                        "ok-layer-fast",   "ok-phase",      "ok-run-phase",
                                        "ok-scalars-null", "ok-stop-rule",  "ok-ack",
                                        "ok-goodbye",      "ok-error-layer"};
    enum { N = sizeof files / sizeof files[0] };
    char *recs[N];
    size_t want_len = 0;
    for (size_t i = 0; i < N; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/fuzz-record/%s.json", AT_DATA_DIR, files[i]);
        recs[i] = at_test_slurp(p, NULL);
        assert_non_null(recs[i]);
        want_len += strlen(recs[i]) + 1;
    }
    snprintf(path, sizeof path, "/tmp/at-test-replay-%d.atlog", (int)getpid());
    write_records((const char *const *)recs, NULL, N);
    char note[256];
    int n;
    char *text = print_log(&n, note, sizeof note);
    assert_int_equal(n, N);
    assert_string_equal(note, "");
    assert_int_equal(strlen(text), want_len);
    char *at = text;
    for (size_t i = 0; i < N; i++) {
        size_t len = strlen(recs[i]);
        if (strncmp(at, recs[i], len) || at[len] != '\n')
            fail_msg("%s printed as\n%.*s", files[i], (int)strcspn(at, "\n"), at);
        at += len + 1;
        free(recs[i]);
    }
    free(text);
    unlink(path);
    at_model *m = at_model_new();
    assert_int_equal(at_replay_load(m, "/nonexistent/x.atlog", note, sizeof note), AT_ERR_IO);
    assert_non_null(strstr(note, "cannot open"));
    at_model_free(m);
}

/* A crafted log: replay --headless prints each record as the schema writes it (valid UTF-8
 * JSON, controls escaped, unknown fields and trailing bytes gone, numbers exact) and skips,
 * with a note, what is no record at all. */
static void test_print_crafted(void **state)
{
    (void)state;
    static const char *const recs[] = {
        /* a raw 8-bit CSI (not UTF-8) and a raw ESC (not even JSON) in strings */
        "{\"type\":\"event\",\"kind\":\"info\",\"run\":\"r\x9b"
        "31m\",\"text\":\"a\x1b[2Jb\"}",
        /* escaped controls, a bidi override, a field the schema does not have, trailing bytes */
        "{\"type\":\"event\",\"kind\":\"error\",\"layer\":\"fc\\u202e1\",\"text\":\"x\\u001b]0;"
        "t\\u0007\",\"evil\":\"\\u001b[2J\"}\x1b[2J",
        /* numbers JSON readers get wrong when printed to 15 digits */
        "{\"type\":\"scalars\",\"run\":\"r1\",\"step\":9007199254740991,\"values\":{\"max\":"
        "1.7976931348623157e308,\"\\u009bloss\":0.30000000000000004}}",
        "{\"type\":\"event\",\"kind\":\"whisper\",\"text\":\"a kind nobody writes\"}",
        "\x1b]0;not json\x07",
    };
    static const char *const want[] = {
        "{\"type\":\"event\",\"kind\":\"info\",\"run\":\"r\\ufffd31m\",\"text\":\"a\\u001b[2Jb\"}",
        "{\"type\":\"event\",\"kind\":\"error\",\"layer\":\"fc\\u202e1\",\"text\":\"x\\u001b]0;"
        "t\\u0007\"}",
        "{\"type\":\"scalars\",\"run\":\"r1\",\"step\":9007199254740991,\"values\":{\"max\":"
        "1.7976931348623157e+308,\"\\u009bloss\":0.30000000000000004}}",
    };
    snprintf(path, sizeof path, "/tmp/at-test-replay-%d.atlog", (int)getpid());
    write_records(recs, NULL, sizeof recs / sizeof recs[0]);
    char note[256], why[128];
    int n;
    char *text = print_log(&n, note, sizeof note);
    assert_int_equal(n, 3);
    if (at_test_clean_text(text, strlen(text), why, sizeof why))
        fail_msg("%s in\n%s", why, text);
    char *at = text;
    for (size_t i = 0; i < 3; i++) {
        size_t len = strcspn(at, "\n");
        if (len != strlen(want[i]) || strncmp(at, want[i], len))
            fail_msg("printed\n%.*s\nwant\n%s", (int)len, at, want[i]);
        at += len + 1;
    }
    assert_string_equal(at, "");
    assert_non_null(strstr(note, "skipped 2 records"));
    free(text);
    unlink(path);
}

/* Following a log as its writer appends: each read applies what is new, at most max records,
 * and 0 when nothing is; the model grows as it would have loaded the whole log. */
static void test_follow(void **state)
{
    (void)state;
    int st;
    char err[300];
    snprintf(path, sizeof path, "/tmp/at-test-follow-%d.atlog", (int)getpid());
    unlink(path);
    assert_null(at_replay_open(path, 1, &st, err, sizeof err));
    assert_int_equal(st, AT_ERR_IO);
    assert_non_null(strstr(err, "cannot open"));
    at_runlog *log = at_runlog_open(path, &st);
    assert_non_null(log);
    at_replay *r = at_replay_open(path, 1, &st, err, sizeof err);
    assert_non_null(r);
    at_model *m = at_model_new();
    assert_int_equal(at_replay_read_model(r, m, 100), 0);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(at_runlog_append_json(log, lines[i], strlen(lines[i])), AT_OK);
    assert_int_equal(at_replay_read_model(r, m, 100), 2);
    assert_int_equal(at_model_num_snapshots(m, 0), 1);
    assert_int_equal(at_model_run(m, 0)->interval, 50);
    for (size_t i = 2; i < NLINES; i++)
        assert_int_equal(at_runlog_append_json(log, lines[i], strlen(lines[i])), AT_OK);
    assert_int_equal(at_replay_read_model(r, m, 3), 3);
    assert_int_equal(at_replay_read_model(r, m, 100), (int)NLINES - 5);
    assert_int_equal(at_replay_read_model(r, m, 100), 0);
    assert_int_equal(at_model_num_snapshots(m, 0), 2);
    assert_true(at_model_cell(m, 0, 0, AT_SPACE_W, 1)->v[AT_METRIC_ALPHA] == 3.5f);
    assert_true(at_model_run(m, 0)->stop_requested);
    assert_string_equal(at_replay_note(r), "");
    at_model_free(m);
    at_replay_close(r);
    at_runlog_close(log);
    unlink(path);
}

/* A layer line's columns read back through metrics_fmt's own table: every field as written. */
static void test_metrics_roundtrip(void **state)
{
    (void)state;
    at_metrics m;
    at_metrics_init(&m, AT_MODE_WARM);
    m.status = AT_FIT_SUCCESS;
    int64_t *ints[] = {&m.N,
                       &m.M,
                       &m.rf,
                       &m.num_evals,
                       &m.rank_loss,
                       &m.weak_rank_loss,
                       &m.num_pl_spikes,
                       &m.matrix_rank,
                       &m.detx_num,
                       &m.mp_num_spikes,
                       &m.num_traps};
    double *dbls[] = {&m.Q,
                      &m.sv_max,
                      &m.sv_min,
                      &m.lambda_max,
                      &m.alpha,
                      &m.xmin,
                      &m.xmax,
                      &m.D,
                      &m.sigma,
                      &m.norm,
                      &m.log_norm,
                      &m.spectral_norm,
                      &m.log_spectral_norm,
                      &m.alpha_weighted,
                      &m.log_alpha_norm,
                      &m.stable_rank,
                      &m.entropy,
                      &m.detx_val,
                      &m.mp_sigma,
                      &m.mp_softrank,
                      &m.mp_bulk_max,
                      &m.trap_max_ratio};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        *ints[i] = 1000 + (int64_t)i;
    for (size_t i = 0; i < sizeof dbls / sizeof dbls[0]; i++)
        *dbls[i] = 1.0 / (3.0 + (double)i); /* needs all 17 digits to read back exactly */
    m.sigma = NAN;
    m.warning = at_warning_for(m.status, m.alpha);
    unsigned all = AT_FMT_DETX | AT_FMT_MP | AT_FMT_TRAPS;
    cJSON *o = cJSON_CreateObject();
    assert_int_equal(at_fmt_json(o, "fc1", &m, all), AT_OK);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cJSON *p = cJSON_Parse(text);
    at_metrics back;
    assert_int_equal(at_fmt_json_parse(p, &back), AT_OK);
    cJSON_Delete(p);
    /* written again, every column reads the same, to the last digit */
    o = cJSON_CreateObject();
    assert_int_equal(at_fmt_json(o, "fc1", &back, all), AT_OK);
    char *again = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    assert_string_equal(again, text);
    assert_true(back.alpha == 1.0 / 7.0 && back.trap_max_ratio == m.trap_max_ratio);
    assert_true(back.N == 1000 && back.num_traps == m.num_traps && isnan(back.sigma));
    assert_int_equal(back.status, AT_FIT_SUCCESS);
    assert_int_equal(back.mode, AT_MODE_WARM);
    assert_int_equal(back.warning, AT_WARN_OVER_TRAINED);
    cJSON_free(again);
    cJSON_free(text);

    /* columns left out are absent; a skipped layer; an error line has no metrics */
    p = cJSON_Parse("{\"name\":\"x\",\"status\":\"skipped\",\"num_evals\":4,\"mode\":\"gram\"}");
    assert_int_equal(at_fmt_json_parse(p, &back), AT_OK);
    assert_int_equal(back.status, AT_FIT_SKIPPED);
    assert_int_equal(back.mode, AT_MODE_GRAM);
    assert_int_equal(back.num_evals, 4);
    assert_int_equal(back.num_traps, -1);
    assert_true(isnan(back.alpha));
    cJSON_Delete(p);
    p = cJSON_Parse("{\"name\":\"x\",\"status\":\"error\",\"error\":\"NaN\"}");
    assert_int_equal(at_fmt_json_parse(p, &back), AT_ERR_FORMAT);
    cJSON_Delete(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_print_crafted),
        cmocka_unit_test(test_follow),
        cmocka_unit_test(test_metrics_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
