/* SPDX-License-Identifier: Apache-2.0 */
/* test_idmap.c -- the run-id map (idmap.h) against a plain array of the same keys: seeded
 * puts, overwrites and removals in any order, through several growths, every key found with
 * its value and every removed one gone (removal moves later entries of a probe run back). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "idmap.h"

#define NKEYS 5000

static void test_against_array(void **state)
{
    (void)state;
    static int want[NKEYS]; /* -1: absent */
    char key[32];
    at_idmap *m = at_idmap_new(NULL);
    assert_non_null(m);
    for (int i = 0; i < NKEYS; i++)
        want[i] = -1;
    uint64_t x = 42;
    size_t count = 0;
    for (int step = 0; step < 40000; step++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 33) % NKEYS), op = (int)((x >> 20) % 3);
        snprintf(key, sizeof key, "run-%d", k);
        if (op < 2) {
            assert_int_equal(at_idmap_put(m, key, step), AT_OK);
            count += want[k] < 0;
            want[k] = step;
        } else {
            assert_int_equal(at_idmap_del(m, key), want[k] < 0 ? AT_ERR_NOTFOUND : AT_OK);
            count -= want[k] >= 0;
            want[k] = -1;
        }
        assert_int_equal(at_idmap_count(m), count);
    }
    for (int k = 0; k < NKEYS; k++) {
        snprintf(key, sizeof key, "run-%d", k);
        assert_int_equal(at_idmap_get(m, key), want[k] < 0 ? AT_ERR_NOTFOUND : want[k]);
    }
    assert_true(at_idmap_bytes(m) > count * 8);
    assert_int_equal(at_idmap_put(m, NULL, 1), AT_ERR_ARG);
    assert_int_equal(at_idmap_put(m, "x", -1), AT_ERR_ARG);
    assert_int_equal(at_idmap_get(m, NULL), AT_ERR_NOTFOUND);
    assert_int_equal(at_idmap_get(m, ""), AT_ERR_NOTFOUND);
    at_idmap_free(m);
    at_idmap_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
