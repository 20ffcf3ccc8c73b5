/* SPDX-License-Identifier: Apache-2.0 */
/* test_runlog.c -- the run log: round trip, blobs, truncated tail, damaged middle, reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runlog.h"

static char path[256];

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/at-test-runlog-%d.atlog", (int)getpid());
    unlink(path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

static void write_records(int n)
{
    int st;
    at_runlog *log = at_runlog_open(path, &st);
    assert_non_null(log);
    assert_int_equal(st, AT_OK);
    for (int i = 0; i < n; i++) {
        char js[64];
        int len = snprintf(js, sizeof js, "{\"type\":\"layer\",\"step\":%d}", i);
        assert_int_equal(at_runlog_append_json(log, js, (size_t)len), AT_OK);
    }
    assert_int_equal(at_runlog_flush(log), AT_OK);
    at_runlog_close(log);
}

/* Reads every record; checks they are steps first..first+n-1 in order. Returns the count. */
static int read_steps(int first, const char **note_out)
{
    static char note[512];
    int st, n = 0, rc;
    at_runlog_reader *r = at_runlog_reader_open(path, &st);
    assert_non_null(r);
    at_runlog_record rec;
    while ((rc = at_runlog_reader_next(r, &rec)) == 1) {
        char want[64];
        snprintf(want, sizeof want, "{\"type\":\"layer\",\"step\":%d}", first + n);
        assert_int_equal(rec.type, AT_RUNLOG_JSON);
        assert_string_equal(rec.json, want);
        assert_int_equal(rec.json_len, strlen(want));
        n++;
    }
    assert_int_equal(rc, 0);
    snprintf(note, sizeof note, "%s", at_runlog_reader_note(r));
    at_runlog_reader_close(r);
    if (note_out)
        *note_out = note;
    return n;
}

static void test_round_trip_and_reopen(void **state)
{
    (void)state;
    const char *note;
    write_records(5);
    write_records(3); /* a second monitor appends to the same log */
    int st;
    at_runlog_reader *r = at_runlog_reader_open(path, &st);
    at_runlog_record rec;
    int n = 0;
    while (at_runlog_reader_next(r, &rec) == 1)
        n++;
    at_runlog_reader_close(r);
    assert_int_equal(n, 8);
    truncate(path, 0);
    write_records(4);
    assert_int_equal(read_steps(0, &note), 4);
    assert_string_equal(note, "");
}

static void test_truncated_last_record(void **state)
{
    (void)state;
    const char *note;
    struct stat sb;
    write_records(6);
    assert_int_equal(stat(path, &sb), 0);
    /* Every cut inside the last record leaves the first five readable, with a note. */
    for (off_t cut = 1; cut < 30; cut += 7) {
        assert_int_equal(truncate(path, sb.st_size - cut), 0);
        assert_int_equal(read_steps(0, &note), 5);
        assert_non_null(strstr(note, "ignored a truncated last record"));
    }
}

static void test_damaged_middle_resyncs(void **state)
{
    (void)state;
    const char *note;
    write_records(3);
    /* Flip one payload byte of the second record: its checksum fails, the third survives. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    char *second = strstr(buf + 7 + 12, "ATR");
    assert_non_null(second);
    second[12 + 3] ^= 0x20;
    fseek(f, 0, SEEK_SET);
    fwrite(buf, 1, n, f);
    fclose(f);
    int st, count = 0;
    at_runlog_reader *r = at_runlog_reader_open(path, &st);
    at_runlog_record rec;
    while (at_runlog_reader_next(r, &rec) == 1) {
        assert_non_null(strstr(rec.json, count == 0 ? "\"step\":0" : "\"step\":2"));
        count++;
    }
    note = at_runlog_reader_note(r);
    assert_non_null(strstr(note, "skipped a damaged record"));
    at_runlog_reader_close(r);
    assert_int_equal(count, 2);
}

/* Appends n bytes at p to the log file. */
static void append_bytes(const char *p, size_t n)
{
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* Follow mode: a record that is not all written yet waits for its rest, without a note, and
 * the reader goes on where the writer went on; damaged bytes before a whole record are still
 * skipped. */
static void test_follow(void **state)
{
    (void)state;
    struct stat sb;
    write_records(2);
    assert_int_equal(stat(path, &sb), 0);
    off_t two = sb.st_size;
    write_records(1);
    assert_int_equal(stat(path, &sb), 0);
    size_t len = (size_t)(sb.st_size - two);
    char rec3[256];
    FILE *f = fopen(path, "rb");
    assert_int_equal(fseeko(f, two, SEEK_SET), 0);
    assert_int_equal(fread(rec3, 1, len, f), len);
    fclose(f);
    assert_int_equal(truncate(path, two), 0);

    int st;
    at_runlog_reader *r = at_runlog_reader_open(path, &st);
    at_runlog_reader_follow(r);
    at_runlog_record rec;
    assert_int_equal(at_runlog_reader_next(r, &rec), 1);
    assert_int_equal(at_runlog_reader_next(r, &rec), 1);
    assert_string_equal(rec.json, "{\"type\":\"layer\",\"step\":1}");
    assert_int_equal(at_runlog_reader_next(r, &rec), 0);
    /* the writer is inside the header, then inside the payload: nothing yet, nothing skipped */
    size_t cuts[] = {1, 5, 12, len - 3};
    size_t done = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        append_bytes(rec3 + done, cuts[i] - done);
        done = cuts[i];
        assert_int_equal(at_runlog_reader_next(r, &rec), 0);
        assert_string_equal(at_runlog_reader_note(r), "");
    }
    append_bytes(rec3 + done, len - done);
    assert_int_equal(at_runlog_reader_next(r, &rec), 1);
    assert_string_equal(rec.json, "{\"type\":\"layer\",\"step\":0}");
    assert_int_equal(at_runlog_reader_next(r, &rec), 0);
    /* garbage, then a whole record: the garbage is skipped and said */
    append_bytes("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 32);
    assert_int_equal(at_runlog_reader_next(r, &rec), 0);
    append_bytes(rec3, len);
    assert_int_equal(at_runlog_reader_next(r, &rec), 1);
    assert_string_equal(rec.json, "{\"type\":\"layer\",\"step\":0}");
    assert_non_null(strstr(at_runlog_reader_note(r), "skipped a damaged record"));
    assert_int_equal(at_runlog_reader_next(r, &rec), 0);
    /* the start of a record: followed, it is waited for; read whole, it is a torn last one */
    append_bytes("ATRJ", 4);
    assert_int_equal(at_runlog_reader_next(r, &rec), 0);
    assert_null(strstr(at_runlog_reader_note(r), "truncated"));
    at_runlog_reader_close(r);
    r = at_runlog_reader_open(path, &st);
    int n = 0;
    while (at_runlog_reader_next(r, &rec) == 1)
        n++;
    assert_int_equal(n, 4);
    assert_non_null(strstr(at_runlog_reader_note(r), "ignored a truncated last record"));
    at_runlog_reader_close(r);
}

static void test_blob(void **state)
{
    (void)state;
    int st;
    float w[6] = {1, -2, 3.5f, 0, 1e-30f, 7};
    at_runlog *log = at_runlog_open(path, &st);
    const char *hdr = "{\"type\":\"weights\",\"layer\":\"fc1\",\"shape\":[2,3]}";
    assert_int_equal(at_runlog_append_blob(log, hdr, strlen(hdr), w, sizeof w), AT_OK);
    assert_int_equal(at_runlog_append_json(log, "{}", 2), AT_OK);
    at_runlog_close(log);
    at_runlog_reader *r = at_runlog_reader_open(path, &st);
    at_runlog_record rec;
    assert_int_equal(at_runlog_reader_next(r, &rec), 1);
    assert_int_equal(rec.type, AT_RUNLOG_BLOB);
    assert_string_equal(rec.json, hdr);
    assert_int_equal(rec.data_len, sizeof w);
    assert_memory_equal(rec.data, w, sizeof w);
    assert_int_equal(at_runlog_reader_next(r, &rec), 1);
    assert_string_equal(rec.json, "{}");
    assert_int_equal(at_runlog_reader_next(r, &rec), 0);
    at_runlog_reader_close(r);
}

static void test_not_a_log(void **state)
{
    (void)state;
    int st;
    FILE *f = fopen(path, "wb");
    fputs("hello world\n", f);
    fclose(f);
    assert_null(at_runlog_open(path, &st));
    assert_int_equal(st, AT_ERR_FORMAT);
    assert_null(at_runlog_reader_open(path, &st));
    assert_int_equal(st, AT_ERR_FORMAT);
    assert_null(at_runlog_reader_open("/nonexistent/x.atlog", &st));
    assert_int_equal(st, AT_ERR_IO);
}

/* Mode bits of path (0 when it does not exist). */
static unsigned mode_of(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (unsigned)(sb.st_mode & 07777) : 0;
}

/* Default logs go to the XDG state directory, made with mode 0700 where missing. */
static void test_default_path(void **state)
{
    (void)state;
    char tmp[] = "/tmp/at-test-state-XXXXXX", want[256], buf[512], cmd[300];
    assert_non_null(mkdtemp(tmp));
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char *old_xdg = getenv("XDG_STATE_HOME") ? strdup(getenv("XDG_STATE_HOME")) : NULL;

    /* $XDG_STATE_HOME/alphatop; the base itself is made too */
    snprintf(want, sizeof want, "%s/xdg/", tmp);
    setenv("XDG_STATE_HOME", want, 1); /* a trailing slash is not doubled */
    assert_int_equal(at_runlog_default_path(buf, sizeof buf, "my run/1"), AT_OK);
    snprintf(want, sizeof want, "%s/xdg/alphatop/alphatop-my_run_1-", tmp);
    assert_int_equal(strncmp(buf, want, strlen(want)), 0);
    assert_non_null(strstr(buf, ".atlog"));
    snprintf(want, sizeof want, "%s/xdg/alphatop", tmp);
    assert_int_equal(mode_of(want), 0700);
    snprintf(want, sizeof want, "%s/xdg", tmp);
    assert_int_equal(mode_of(want), 0700);

    /* a relative $XDG_STATE_HOME is ignored: $HOME/.local/state/alphatop, without making it
     * unless asked */
    setenv("XDG_STATE_HOME", "relative/state", 1);
    setenv("HOME", tmp, 1);
    assert_int_equal(at_runlog_state_dir(buf, sizeof buf, 0), AT_OK);
    snprintf(want, sizeof want, "%s/.local/state/alphatop", tmp);
    assert_string_equal(buf, want);
    assert_int_equal(mode_of(want), 0);
    assert_int_equal(at_runlog_state_dir(buf, sizeof buf, 1), AT_OK);
    assert_int_equal(mode_of(want), 0700);
    snprintf(want, sizeof want, "%s/.local", tmp);
    assert_int_equal(mode_of(want), 0700);

    /* a file in the way: the directory cannot be made */
    snprintf(want, sizeof want, "%s/file", tmp);
    FILE *f = fopen(want, "w");
    fclose(f);
    setenv("XDG_STATE_HOME", want, 1);
    assert_int_equal(at_runlog_default_path(buf, sizeof buf, "r"), AT_ERR_IO);
    snprintf(want, sizeof want, "%s/file/alphatop", tmp);
    assert_string_equal(buf, want);
    /* too small a buffer */
    unsetenv("XDG_STATE_HOME");
    assert_int_equal(at_runlog_state_dir(buf, 8, 0), AT_ERR_SIZE);

    if (old_home)
        setenv("HOME", old_home, 1);
    if (old_xdg)
        setenv("XDG_STATE_HOME", old_xdg, 1);
    free(old_home);
    free(old_xdg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_last_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_middle_resyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
