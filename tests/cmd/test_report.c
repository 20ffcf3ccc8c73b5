/* SPDX-License-Identifier: Apache-2.0 */
/* test_report.c -- `alphatop report` and `report --csv` on a run log whose run id, model,
 * host, layer names, error and event texts carry terminal escape sequences, line breaks, bidi
 * overrides, C1 controls and bytes that are not UTF-8: the binary's stdout and stderr are clean
 * (valid UTF-8, no control character but the line ends), every such string is shown escaped as
 * text.h escapes it, and every CSV row stays one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runlog.h"
#include "testfiles.h"
#include "testutil.h"

#define RUN "\"run\":\"r\\u001b[31m1\""

static const char *const records[] = {
    "{\"type\":\"event\",\"kind\":\"hello\"," RUN ",\"model\":\"m\\u001b]0;pwned\\u0007\","
    "\"framework\":\"c\",\"host\":\"h\x9bx\",\"pid\":1,\"interval\":10,\"rank\":0,"
    "\"world_size\":1,\"text\":\"hello\"}",
    "{\"type\":\"layer\"," RUN
    ",\"step\":10,\"view\":\"w\",\"name\":\"fc\\u001b[2J\\u009b1,\\\"q\\\"\","
    "\"N\":4,\"M\":4,\"alpha\":3.5,\"status\":\"success\",\"num_traps\":0,\"mode\":\"exact\","
    "\"kind\":\"linear\",\"shape\":[4,4]}",
    "{\"type\":\"layer\"," RUN ",\"step\":20,\"view\":\"w\",\"name\":\"fc\xff\\n2\","
    "\"status\":\"error\",\"error\":\"bad\\r\\nline\\u001b[K\",\"kind\":\"linear\","
    "\"shape\":[4,4]}",
    "{\"type\":\"event\",\"kind\":\"error\"," RUN ",\"step\":20,"
    "\"text\":\"boom\\u001b[2J\\u202eevil\"}",
    "{\"type\":\"event\",\"kind\":\"drop\"," RUN ",\"step\":20,\"dropped\":1,\"text\":\"a\\nb\"}",
};
#define NRECORDS (sizeof records / sizeof records[0])

static const char *write_log(void)
{
    const char *path = tf_path("hostile.atlog");
    int st;
    unlink(path); /* the log appends */
    at_runlog *log = at_runlog_open(path, &st);
    assert_non_null(log);
    for (size_t i = 0; i < NRECORDS; i++)
        assert_int_equal(at_runlog_append_json(log, records[i], strlen(records[i])), AT_OK);
    at_runlog_close(log);
    return path;
}

static void assert_has(const char *what, const char *s, const char *want)
{
    if (!strstr(s, want))
        fail_msg("%s lacks %s:\n%s", what, want, s);
}

/* `alphatop report OPTS LOG` on the hostile log: exit 0, stdout and stderr clean. Returns
 * stdout (caller frees). */
static char *report(const char *opts)
{
    const char *path = write_log();
    char args[1024], *out, *err, why[128];
    snprintf(args, sizeof args, "report %s '%s'", opts, path);
    assert_int_equal(tf_run(args, &out, &err), 0);
    if (at_test_clean_text(out, strlen(out), why, sizeof why) ||
        at_test_clean_text(err, strlen(err), why, sizeof why))
        fail_msg("report %s: %s in\n%s\nstderr:\n%s", opts, why, out, err);
    free(err);
    return out;
}

static void test_report_escapes(void **state)
{
    (void)state;
    char *out = report("");
    assert_has("report", out, "run r\\x1b[31m1: m\\x1b]0;pwned\\x07 (c) on h\\x9bx, pid 1");
    assert_has("report", out, "\nrun r\\x1b[31m1\n");
    assert_has("report", out, "\nfc\\x1b[2J\\u009b1,\"q\" ");
    assert_has("report", out, "\nfc\\xff\\x0a2 ");
    assert_has("report", out, "  error     step 20 r\\x1b[31m1: boom\\x1b[2J\\u202eevil\n");
    assert_has("report", out, "  drop      step 20 r\\x1b[31m1: a\\x0ab\n");
    free(out);
}

/* One rule for every CSV field: escaped for people, then quoted as RFC 4180 requires. */
static void test_report_csv_escapes(void **state)
{
    (void)state;
    char *out = report("--csv");
    if (at_test_count_lines(out) != 3) /* the header and the two layer records */
        fail_msg("not 3 lines:\n%s", out);
    assert_has("csv", out, "\nr\\x1b[31m1,10,w,\"fc\\x1b[2J\\u009b1,\"\"q\"\"\",4,4,");
    assert_has("csv", out, "\nr\\x1b[31m1,20,w,fc\\xff\\x0a2,");
    assert_has("csv", out, ",bad\\x0d\\x0aline\\x1b[K\n"); /* the error column comes last */
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_escapes),
        cmocka_unit_test(test_report_csv_escapes),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return rc;
}
