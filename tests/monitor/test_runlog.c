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

static void test_default_path(void **state)
{
    (void)state;
    char buf[128];
    at_runlog_default_path(buf, sizeof buf, "my run/1");
    assert_int_equal(strncmp(buf, "alphatop-my_run_1-", 18), 0);
    assert_non_null(strstr(buf, ".atlog"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_last_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_middle_resyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
