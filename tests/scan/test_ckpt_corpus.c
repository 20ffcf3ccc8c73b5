/* SPDX-License-Identifier: Apache-2.0 */
/* test_ckpt_corpus.c -- replays the checkpoint fuzz corpus (tests/data/fuzz-ckpt/{torch,npz,
 * index}) through the fuzz targets' functions, built without libFuzzer: nothing crashes
 * (ASan/UBSan watch), files named ok-* read cleanly and files named bad-* are refused. Other
 * files (found by the fuzzer) only must not crash. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alphatop/status.h"
#include "fuzz_ckpt.h"
#include "testutil.h"

static void replay(const char *sub, int (*target)(const uint8_t *, size_t), int min_ok, int min_bad)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/fuzz-ckpt/%s", AT_DATA_DIR, sub);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0, ok = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        size_t n;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *data = at_test_slurp(path, &n);
        assert_non_null(data);
        int rc = target((const uint8_t *)data, n);
        free(data);
        files++;
        if (strncmp(e->d_name, "ok-", 3) == 0) {
            if (rc != AT_OK)
                fail_msg("%s/%s: %s", sub, e->d_name, at_strerror(rc));
            ok++;
        } else if (strncmp(e->d_name, "bad-", 4) == 0) {
            if (rc == AT_OK)
                fail_msg("%s/%s was read but should be refused", sub, e->d_name);
            bad++;
        }
    }
    closedir(d);
    assert_true(ok >= min_ok);
    assert_true(bad >= min_bad);
    print_message("%s: %d corpus files (%d ok, %d bad)\n", sub, files, ok, bad);
}

static void test_torch_corpus(void **state)
{
    (void)state;
    replay("torch", at_fuzz_torch, 8, 10);
}

static void test_npz_corpus(void **state)
{
    (void)state;
    replay("npz", at_fuzz_npz, 5, 3);
}

static void test_index_corpus(void **state)
{
    (void)state;
    replay("index", at_fuzz_index, 2, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_corpus),
        cmocka_unit_test(test_npz_corpus),
        cmocka_unit_test(test_index_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
