/* SPDX-License-Identifier: Apache-2.0 */
/* Replays the record fuzz corpus (tests/data/fuzz-record) through the fuzz target's function,
 * built without libFuzzer: nothing crashes or aborts (ASan/UBSan watch, and the target aborts
 * when a decoded record does not encode to a fixed point), files named ok-* decode and files
 * named bad-* are rejected (at_test_corpus). Other files (found by the fuzzer) only must not
 * crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

int at_fuzz_record(const uint8_t *data, size_t size);

static void test_corpus_replays(void **state)
{
    (void)state;
    int ok, bad;
    char why[1200];
    if (at_test_corpus(AT_DATA_DIR "/fuzz-record", at_fuzz_record, &ok, &bad, why, sizeof why))
        fail_msg("%s", why);
    assert_true(ok >= 20);
    assert_true(bad >= 10);
    print_message("%d ok, %d bad corpus files\n", ok, bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus_replays)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
