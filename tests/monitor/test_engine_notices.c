/* SPDX-License-Identifier: Apache-2.0 */
/* test_engine_notices.c -- what the engine makes of what is not a good message, in-process on an
 * injected source (no socket) and on the feed: a rejected message is an error event with the
 * protocol's reason name; the feed's notices are a warning (refused connections) or info (the
 * descriptor limit), not "rejected a message"; a stop_ack no stop asked for is a warning and
 * counted, never an acknowledgement; the final stats line counts all of it; the feed's warning
 * (--insecure) is said on the notes stream and as a warning event; a run id in the notes is
 * escaped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "record.h"
#include "testutil.h"

/* One thing the source hands the engine: a message (rc AT_OK) or a failure with its error. */
typedef struct item {
    int rc;
    at_proto_reason reason;
    const char *text;
    at_proto_msg msg;
} item;

typedef struct src {
    const item *items;
    int n, next;
    volatile int done; /* set when the script is over: ends at_engine_run */
} src;

static int src_next(void *ctx, const at_proto_msg **msg, at_proto_error *err)
{
    src *s = ctx;
    if (s->next == s->n) {
        s->done = 1;
        return AT_ERR_AGAIN;
    }
    const item *it = &s->items[s->next++];
    if (it->rc == AT_OK) {
        *msg = &it->msg;
        return AT_OK;
    }
    err->reason = it->reason;
    snprintf(err->message, sizeof err->message, "%s", it->text);
    return it->rc;
}

static int src_stop(void *ctx, const char *run, const char *reason)
{
    (void)ctx;
    (void)run;
    (void)reason;
    return AT_OK;
}

/* Every line of out decoded; the events' kinds, reasons and texts, and the stats. */
typedef struct seen {
    at_record_kind kind[16];
    char reason[16][32], text[16][512];
    int nevents;
    at_record_stats stats;
    int nstats, last_is_stats;
} seen;

static void read_lines(FILE *out, seen *v)
{
    rewind(out);
    char line[4096], why[128];
    at_record_decoder *d = at_record_decoder_new(NULL);
    assert_non_null(d);
    memset(v, 0, sizeof *v);
    while (fgets(line, sizeof line, out)) {
        if (at_test_clean_text(line, strlen(line), why, sizeof why))
            fail_msg("%s in %s", why, line);
        at_record r;
        assert_int_equal(at_record_decode(d, line, strlen(line), &r), AT_OK);
        v->last_is_stats = r.type == AT_RECORD_STATS;
        if (r.type == AT_RECORD_STATS) {
            v->stats = r.u.stats;
            v->nstats++;
        } else if (r.type == AT_RECORD_EVENT && v->nevents < 16) {
            int i = v->nevents++;
            v->kind[i] = r.u.event.kind;
            snprintf(v->reason[i], sizeof v->reason[i], "%s",
                     r.u.event.reason ? r.u.event.reason : "");
            snprintf(v->text[i], sizeof v->text[i], "%s", r.u.event.text);
        }
    }
    at_record_decoder_free(d);
}

static at_proto_msg msg_of(at_proto_type type, const char *run)
{
    at_proto_msg m = {.type = type};
    snprintf(m.run, sizeof m.run, "%s", run);
    if (type == AT_PROTO_HELLO) {
        m.u.hello.interval = 10;
        m.u.hello.world_size = 1;
    } else if (type == AT_PROTO_STOP_ACK) {
        snprintf(m.u.reason, sizeof m.u.reason, "fake");
    }
    return m;
}

static void test_rejections_notices_acks(void **state)
{
    (void)state;
    const item script[] = {
        {AT_ERR_FORMAT, AT_PROTO_E_TEXT, "field \"run\": not UTF-8", {0}},
        {AT_ERR_AUTH,
         AT_PROTO_E_NONE,
         "refused 2 connection(s): 2 with a key not on the allow-list",
         {0}},
        {AT_ERR_IO, AT_PROTO_E_NONE, "accepting connections on tcp://0.0.0.0:5555 again", {0}},
        {AT_OK, AT_PROTO_E_NONE, NULL, msg_of(AT_PROTO_HELLO, "r1")},
        {AT_OK, AT_PROTO_E_NONE, NULL, msg_of(AT_PROTO_STOP_ACK, "r1")},
        {AT_ERR_SIZE, AT_PROTO_E_STRING, "field \"name\": longer than 255 bytes", {0}},
        {AT_ERR_FORMAT, AT_PROTO_E_NONE, "a source's own rejection", {0}},
    };
    src s = {script, (int)(sizeof script / sizeof script[0]), 0, 0};
    at_engine_source es = {.ctx = &s, .next = src_next, .stop = src_stop};
    at_engine_opts o;
    at_engine_opts_default(&o);
    o.source = &es;
    o.json_out = tmpfile();
    o.record = "-";
    o.notes = NULL;
    at_model *m = at_model_new();
    char err[256] = "";
    at_engine *e = at_engine_new(&o, m, err, sizeof err);
    if (!e)
        fail_msg("engine: %s", err);
    assert_int_equal(at_engine_run(e, &s.done), 0);
    at_engine_free(e);

    seen v;
    read_lines(o.json_out, &v);
    /* hello, then each item in order (the ack as a warning) */
    static const struct {
        at_record_kind kind;
        const char *reason, *text;
    } want[] = {
        {AT_RECORD_EV_ERROR, "bad_text", "rejected a message: field \"run\": not UTF-8"},
        {AT_RECORD_EV_WARNING, "", "refused 2 connection(s): 2 with a key not on the allow-list"},
        {AT_RECORD_EV_INFO, "", "accepting connections on tcp://0.0.0.0:5555 again"},
        {AT_RECORD_EV_HELLO, "", NULL},
        {AT_RECORD_EV_WARNING, "", "run r1 acknowledged a stop that was never sent to it"},
        {AT_RECORD_EV_ERROR, "string_too_long", "rejected a message: field \"name\""},
        {AT_RECORD_EV_ERROR, "", "rejected a message: a source's own rejection"},
    };
    assert_int_equal(v.nevents, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < v.nevents; i++) {
        if (v.kind[i] != want[i].kind || strcmp(v.reason[i], want[i].reason) ||
            (want[i].text && strncmp(v.text[i], want[i].text, strlen(want[i].text))))
            fail_msg("event %d: %s (%s) \"%s\"", i, at_record_kind_name(v.kind[i]), v.reason[i],
                     v.text[i]);
    }
    assert_int_equal(v.nstats, 1);
    assert_true(v.last_is_stats);
    assert_int_equal(v.stats.messages, 2);
    assert_int_equal(v.stats.rejected, 2); /* those with a protocol reason */
    assert_int_equal(v.stats.rejected_by[AT_PROTO_E_TEXT], 1);
    assert_int_equal(v.stats.rejected_by[AT_PROTO_E_STRING], 1);
    assert_int_equal(v.stats.rejected_by[AT_PROTO_E_JSON], 0);
    assert_int_equal(v.stats.unexpected_acks, 1);
    assert_int_equal(v.stats.auth_denied, 0); /* no feed */
    /* the acknowledgement did not mark the run as stopping, and it is not the stop's kind */
    for (int i = 0; i < at_model_num_events(m); i++)
        assert_int_not_equal(at_model_event(m, i)->kind, AT_EVENT_STOP);
    fclose(o.json_out);
    at_model_free(m);
}

/* On the feed: listening beyond loopback with --insecure is said at start. */
static void test_insecure_warning(void **state)
{
    (void)state;
    at_engine_opts o;
    at_engine_opts_default(&o);
    o.endpoint = "tcp://0.0.0.0:*";
    o.allow_insecure = 1;
    o.json_out = tmpfile();
    o.notes = tmpfile();
    o.record = "-";
    at_model *m = at_model_new();
    char err[256] = "";
    at_engine *e = at_engine_new(&o, m, err, sizeof err);
    if (!e)
        fail_msg("engine: %s", err);
    at_engine_free(e);
    seen v;
    read_lines(o.json_out, &v);
    assert_int_equal(v.nevents, 1);
    assert_int_equal(v.kind[0], AT_RECORD_EV_WARNING);
    assert_non_null(strstr(v.text[0], "without CurveZMQ"));
    char notes[1024] = "";
    rewind(o.notes);
    assert_non_null(fgets(notes, sizeof notes, o.notes));
    assert_int_equal(strncmp(notes, "alphatop: warning: ", 19), 0);
    assert_non_null(strstr(notes, v.text[0]));
    fclose(o.json_out);
    fclose(o.notes);
    at_model_free(m);
}

/* The per-run log's note names the run as the trainer sent it, escaped for the terminal. */
static void test_run_id_escaped_in_notes(void **state)
{
    (void)state;
    char dir[] = "/tmp/at-notices-XXXXXX", logs[64], want[160];
    assert_non_null(mkdtemp(dir));
    /* the default log goes to the XDG state directory: DIR/alphatop */
    assert_int_equal(setenv("XDG_STATE_HOME", dir, 1), 0);
    snprintf(logs, sizeof logs, "%s/alphatop", dir);
    snprintf(want, sizeof want, "alphatop: recording run r\\x1b[2J\\u202e to %s/alphatop-r__2J___-",
             logs);
    const item script[] = {
        {AT_OK, AT_PROTO_E_NONE, NULL, msg_of(AT_PROTO_HELLO, "r\x1b[2J\xe2\x80\xae")}};
    src s = {script, 1, 0, 0};
    at_engine_source es = {.ctx = &s, .next = src_next, .stop = src_stop};
    at_engine_opts o;
    at_engine_opts_default(&o);
    o.source = &es;
    o.notes = tmpfile();
    at_model *m = at_model_new();
    char err[256] = "", notes[1024] = "", why[128];
    at_engine *e = at_engine_new(&o, m, err, sizeof err);
    if (!e)
        fail_msg("engine: %s", err);
    assert_int_equal(at_engine_run(e, &s.done), 0);
    at_engine_free(e);
    rewind(o.notes);
    size_t n = fread(notes, 1, sizeof notes - 1, o.notes);
    notes[n] = '\0';
    if (at_test_clean_text(notes, n, why, sizeof why))
        fail_msg("%s in %s", why, notes);
    if (!strstr(notes, want))
        fail_msg("notes lack '%s':\n%s", want, notes);
    fclose(o.notes);
    at_model_free(m);
    DIR *d = opendir(logs);
    assert_non_null(d);
    for (struct dirent *f; (f = readdir(d));)
        if (f->d_name[0] != '.') {
            char path[600];
            snprintf(path, sizeof path, "%s/%s", logs, f->d_name);
            unlink(path);
        }
    closedir(d);
    unsetenv("XDG_STATE_HOME");
    assert_int_equal(rmdir(logs), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejections_notices_acks),
        cmocka_unit_test(test_insecure_warning),
        cmocka_unit_test(test_run_id_escaped_in_notes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
