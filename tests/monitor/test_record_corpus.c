/* SPDX-License-Identifier: Apache-2.0 */
/* Replays the record fuzz corpus (tests/data/fuzz-record) through the fuzz target's function,
 * built without libFuzzer: nothing crashes or aborts (ASan/UBSan watch, and the target aborts
 * when a decoded record does not encode to a fixed point), files named ok-* decode and files
 * named bad-* are rejected. Other files (found by the fuzzer) only must not crash. */
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

int at_fuzz_record(const uint8_t *data, size_t size);

static void test_corpus_replays(void **state)
{
    (void)state;
    const char *dir = AT_DATA_DIR "/fuzz-record";
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0, ok = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        static uint8_t data[1 << 17];
        size_t n = fread(data, 1, sizeof data, fp);
        fclose(fp);
        int rc = at_fuzz_record(data, n);
        files++;
        if (strncmp(e->d_name, "ok-", 3) == 0) {
            if (rc != AT_OK)
                fail_msg("%s: %s", e->d_name, at_strerror(rc));
            ok++;
        } else if (strncmp(e->d_name, "bad-", 4) == 0) {
            if (rc != AT_ERR_FORMAT)
                fail_msg("%s: %s, want the format error", e->d_name, at_strerror(rc));
            bad++;
        }
    }
    closedir(d);
    assert_true(ok >= 20);
    assert_true(bad >= 10);
    print_message("%d corpus files (%d ok, %d bad)\n", files, ok, bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus_replays)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
