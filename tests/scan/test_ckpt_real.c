/* SPDX-License-Identifier: Apache-2.0 */
/* test_ckpt_real.c -- checkpoints written by the real writers (torch.save, numpy.savez,
 * save_pretrained-style shards; tests/scan/make_real_ckpts.py, seeded, run at test time) give
 * `alphatop scan --json` the same rows, number for number, as the same weights in a
 * safetensors file; tied and int8 tensors are skipped rows with their reason; each malformed
 * file is one line on stderr and exit status 1; a FIFO never hangs. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testfiles.h"
#include "testutil.h"

static char dir[600];

/* `alphatop scan --json ARGS`: exit status, stderr, and its JSON lines as one array. */
typedef struct scanned {
    int code;
    char *err;
    cJSON *rows;
} scanned;

static void scan_json(scanned *s, const char *args)
{
    char cmd[1400], *out;
    snprintf(cmd, sizeof cmd, "scan --json %s", args);
    s->code = tf_run(cmd, &out, &s->err);
    s->rows = cJSON_CreateArray();
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *row = cJSON_Parse(line);
        if (!row)
            fail_msg("not JSON: %s", line);
        cJSON_AddItemToArray(s->rows, row);
    }
    free(out);
}

static void scanned_free(scanned *s)
{
    cJSON_Delete(s->rows);
    free(s->err);
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static const char *in_dir(const char *name)
{
    static char p[2][800];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* The rows of CASE equal REF's (file name aside), in REF's order, after taking out the rows
 * CASE skips: skipped[] = {name, reason, ...}. */
static void assert_same_rows(const char *case_args, const char *ref, const char *const *skipped,
                             int nskipped)
{
    scanned got, want;
    scan_json(&got, case_args);
    scan_json(&want, in_dir(ref));
    if (got.code != 0)
        fail_msg("scan %s exited %d: %s", case_args, got.code, got.err);
    assert_int_equal(want.code, 0);
    int removed = 0;
    for (int k = 0; k < nskipped; k += 2) {
        int found = 0;
        for (int i = cJSON_GetArraySize(got.rows) - 1; i >= 0; i--) {
            cJSON *row = cJSON_GetArrayItem(got.rows, i);
            if (strcmp(str_of(row, "name"), skipped[k]))
                continue;
            assert_string_equal(str_of(row, "status"), "skipped");
            assert_string_equal(str_of(row, "skipped"), skipped[k + 1]);
            cJSON_DeleteItemFromArray(got.rows, i);
            found = 1;
            removed++;
        }
        if (!found)
            fail_msg("%s: no skipped row %s", case_args, skipped[k]);
    }
    int n = cJSON_GetArraySize(want.rows);
    /* The summary (the last row) counts the skipped rows, those taken out too. */
    cJSON *gs = cJSON_GetArrayItem(got.rows, cJSON_GetArraySize(got.rows) - 1);
    cJSON *ws = cJSON_GetArrayItem(want.rows, n - 1);
    assert_string_equal(str_of(gs, "type"), "summary");
    assert_string_equal(str_of(ws, "type"), "summary");
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(gs, "skipped")),
                     (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ws, "skipped")) +
                         removed);
    cJSON_DeleteItemFromObjectCaseSensitive(gs, "skipped");
    cJSON_DeleteItemFromObjectCaseSensitive(ws, "skipped");
    if (cJSON_GetArraySize(got.rows) != n)
        fail_msg("%s: %d rows, the reference %d", case_args, cJSON_GetArraySize(got.rows), n);
    for (int i = 0; i < n; i++) {
        cJSON *g = cJSON_GetArrayItem(got.rows, i), *w = cJSON_GetArrayItem(want.rows, i);
        cJSON_DeleteItemFromObjectCaseSensitive(g, "file");
        cJSON_DeleteItemFromObjectCaseSensitive(w, "file");
        if (!cJSON_Compare(g, w, 1)) {
            char *a = cJSON_PrintUnformatted(g), *b = cJSON_PrintUnformatted(w);
            fail_msg("%s row %d:\n got  %s\n want %s", case_args, i, a, b);
        }
    }
    assert_true(n >= 2); /* at least one layer and the summary */
    scanned_free(&got);
    scanned_free(&want);
}

static void test_same_numbers(void **state)
{
    (void)state;
    static const char *const tied[] = {"lm_head.weight",
                                       "tied: the same storage as wte.weight, analysed once"};
    static const char *const int8[] = {"q.weight", "dtype int8: not floating point"};
    assert_same_rows(in_dir("mlp.pt"), "mlp.safetensors", NULL, 0);
    assert_same_rows(in_dir("hf_bin"), "mlp.safetensors", NULL, 0);
    assert_same_rows(in_dir("tied.pt"), "tied_ref.safetensors", tied, 2);
    assert_same_rows(in_dir("savez.npz"), "mlp.safetensors", NULL, 0);
    assert_same_rows(in_dir("compressed.npz"), "mlp.safetensors", NULL, 0);
    assert_same_rows(in_dir("sharded"), "sharded_ref.safetensors", NULL, 0);
    assert_same_rows(in_dir("sharded/model.safetensors.index.json"), "sharded_ref.safetensors",
                     NULL, 0);
    assert_same_rows(in_dir("sharded_bin"), "sharded_ref.safetensors", NULL, 0);
    assert_same_rows(in_dir("f64.weight.npy"), "f64_ref.safetensors", NULL, 0);
    assert_same_rows(in_dir("f64.safetensors"), "f64_ref.safetensors", NULL, 0);
    assert_same_rows(in_dir("int8.pt"), "int8_ref.safetensors", int8, 2);
    char args[900];
    snprintf(args, sizeof args, "- < %s", in_dir("mlp.pt"));
    assert_same_rows(args, "mlp.safetensors", NULL, 0);
}

/* diff of a checkpoint with itself: a tied copy and an int8 tensor are noted on stderr as not
 * compared, never counted as failures (exit 0), and every other layer's change is 0. */
static void test_diff_skips(void **state)
{
    (void)state;
    static const char *const files[][2] = {
        {"tied.pt", "lm_head.weight: not compared: tied: the same storage as"},
        {"int8.pt", "q.weight: not compared: dtype int8"}};
    for (size_t i = 0; i < 2; i++) {
        char cmd[1400], *out, *err;
        snprintf(cmd, sizeof cmd, "diff --json %s %s", in_dir(files[i][0]), in_dir(files[i][0]));
        assert_int_equal(tf_run(cmd, &out, &err), 0);
        if (!strstr(err, files[i][1]))
            fail_msg("%s: stderr lacks '%s':\n%s", files[i][0], files[i][1], err);
        int rows = 0;
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
            cJSON *row = cJSON_Parse(line);
            const cJSON *ch = cJSON_GetObjectItemCaseSensitive(row, "alpha_change");
            if (cJSON_IsNumber(ch)) {
                assert_true(ch->valuedouble == 0.0);
                rows++;
            }
            cJSON_Delete(row);
        }
        assert_true(rows >= 1);
        free(out);
        free(err);
    }
}

/* Each malformed input: exit 1, one line on stderr saying what is wrong. */
static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *file, *message;
    } bad[] = {
        {"truncated.pt", "truncated.pt: damaged or truncated zip archive"},
        {"badop.pt", "badop.pt: mlp/data.pkl: pickle byte 205: opcode 0x67 is not read"},
        {"evil.pt", "evil.pt: evil/data.pkl: pickle byte 20: global posix.system is not allowed"},
        {"storage.pt", "storage.pt: conv.weight: storage data/0 holds 1724 bytes but 432 "
                       "elements of float32 need 1728"},
        {"missing_shard", "missing_shard: shard model-00002-of-00002.safetensors: no such file"},
        {"badindex", "badindex: index is not valid JSON (truncated?)"},
        {"empty_dir", "empty_dir: no checkpoint files in"},
        {"nothing.pt", "nothing.pt: no such file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        scanned s;
        scan_json(&s, in_dir(bad[i].file));
        if (s.code != 1 || !strstr(s.err, bad[i].message))
            fail_msg("%s: exit %d, stderr '%s', want 1 and '%s'", bad[i].file, s.code, s.err,
                     bad[i].message);
        if (strchr(s.err, '\n') != s.err + strlen(s.err) - 1)
            fail_msg("%s: stderr is not one line: %s", bad[i].file, s.err);
        scanned_free(&s);
    }
}

/* Runs scan on a FIFO under timeout(1): with a writer it reads the checkpoint; without one it
 * fails after its 10 s wait, where a blocking open would hang until timeout kills it (124). */
static void test_fifo(void **state)
{
    (void)state;
    const char *fifo = in_dir("fifo.pt");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    char cmd[4000];
    for (int writer = 1; writer >= 0; writer--) {
        snprintf(cmd, sizeof cmd,
                 "cd %s && { %s timeout 60 %s/tui/alphatop scan --json fifo.pt > fifo.out 2> "
                 "fifo.err; }",
                 dir, writer ? "(sleep 1; cat mlp.pt > fifo.pt) & " : "", AT_BINARY_DIR);
        time_t t0 = time(NULL);
        int st = system(cmd);
        double took = difftime(time(NULL), t0);
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        char *out = at_test_slurp(in_dir("fifo.out"), NULL),
             *err = at_test_slurp(in_dir("fifo.err"), NULL);
        print_message("FIFO %s writer: exit %d after %.0f s\n", writer ? "with" : "without", code,
                      took);
        if (writer) {
            assert_int_equal(code, 0);
            assert_non_null(strstr(out, "\"name\":\"fc2.weight\""));
        } else {
            assert_int_equal(code, 1);
            assert_non_null(strstr(err, "FIFO: nothing written within 10000 ms"));
            assert_true(took < 30.0);
        }
        free(out);
        free(err);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s", tf_path("real"));
    char cmd[2000];
    snprintf(cmd, sizeof cmd,
             "PYTHONPATH=%s/python PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1 /usr/bin/python3 "
             "%s/tests/scan/make_real_ckpts.py %s",
             AT_SOURCE_DIR, AT_SOURCE_DIR, dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_numbers),
        cmocka_unit_test(test_diff_skips),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_fifo),
    };
    int failed = cmocka_run_group_tests(tests, setup, NULL);
    tf_cleanup();
    return failed;
}
