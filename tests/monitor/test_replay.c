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

#include "replay.h"
#include "runlog.h"

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
    /* hello, the model's own raw -> healthy phase event, the NaN error, the stop. */
    int stops = 0, errors = 0;
    for (int i = 0; i < at_model_num_events(m); i++) {
        stops += at_model_event(m, i)->kind == AT_EVENT_STOP;
        errors += at_model_event(m, i)->kind == AT_EVENT_ERROR;
    }
    assert_int_equal(stops, 1);
    assert_int_equal(errors, 1);
    assert_true(at_model_state(m)->replay);
    at_model_free(m);
    unlink(path);
}

static void test_print(void **state)
{
    (void)state;
    write_log();
    char out[300], note[256];
    snprintf(out, sizeof out, "%s.out", path);
    FILE *f = fopen(out, "w+");
    assert_int_equal(at_replay_print(f, path, note, sizeof note), (int)NLINES);
    rewind(f);
    char line[2048];
    for (size_t i = 0; i < NLINES; i++) {
        assert_non_null(fgets(line, sizeof line, f));
        line[strcspn(line, "\n")] = '\0';
        assert_string_equal(line, lines[i]);
    }
    fclose(f);
    unlink(out);
    unlink(path);
    at_model *m = at_model_new();
    assert_int_equal(at_replay_load(m, "/nonexistent/x.atlog", note, sizeof note), AT_ERR_IO);
    assert_non_null(strstr(note, "cannot open"));
    at_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
