/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "alphatop/status.h"

/* Every code has its own message, and unknown codes say so instead of returning NULL. */
static void test_every_status_has_distinct_text(void **state)
{
    (void)state;
    for (int a = AT_ERR_NOTFOUND; a <= AT_OK; a++) {
        assert_non_null(at_strerror(a));
        assert_string_not_equal(at_strerror(a), "unknown status");
        for (int b = a + 1; b <= AT_OK; b++)
            assert_string_not_equal(at_strerror(a), at_strerror(b));
    }
    assert_string_equal(at_strerror(-1000), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_status_has_distinct_text)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
