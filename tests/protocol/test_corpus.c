/* SPDX-License-Identifier: Apache-2.0 */
/* Replays the fuzz corpus (tests/data/fuzz-protocol) through the fuzz target's decode function,
 * built without libFuzzer: nothing crashes (ASan/UBSan watch), files named ok-* decode and
 * files named bad-* are rejected. Other files (found by the fuzzer) only must not crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alphatop/protocol.h"
#include "testutil.h"

int at_fuzz_decode(const uint8_t *data, size_t size);

static void test_corpus_replays(void **state)
{
    (void)state;
    int ok, bad;
    char why[1200];
    if (at_test_corpus(AT_DATA_DIR "/fuzz-protocol", at_fuzz_decode, &ok, &bad, why, sizeof why))
        fail_msg("%s", why);
    assert_true(ok >= 5);
    assert_true(bad >= 10);
    print_message("%d ok, %d bad corpus files\n", ok, bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus_replays)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
