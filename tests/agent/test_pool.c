/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's byte-budgeted buffers (agent/pool.h): bytes out and held are counted exactly,
 * large buffers are reused for the same size, idle bytes are trimmed before a fresh allocation
 * so that held bytes stay within the budget, and a bad budget is refused. No ZeroMQ here: the
 * release is called as ZeroMQ's I/O thread would call it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alphatop/status.h"
#include "pool.h"

#define BIG ((size_t)64 << 10) /* the smallest size kept for reuse */

static void test_bad_budget(void **state)
{
    (void)state;
    int status = AT_OK;
    assert_null(at_bufpool_new(0, &status));
    assert_int_equal(status, AT_ERR_ARG);
    assert_null(at_bufpool_new(-5, NULL));
    at_bufpool_free(NULL);
    at_bufpool_release(NULL, NULL);
    at_bufpool_discard(NULL);
}

static void test_counts_bytes_out(void **state)
{
    (void)state;
    int status = AT_ERR_ARG;
    at_bufpool *p = at_bufpool_new(1000, &status);
    assert_non_null(p);
    assert_int_equal(status, AT_OK);
    assert_true(at_bufpool_fits(p, 1000));
    assert_false(at_bufpool_fits(p, 1001));
    char *a = at_bufpool_take(p, 300), *b = at_bufpool_take(p, 200);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a % 16, 0);
    memset(a, 1, 300);
    memset(b, 2, 200);
    assert_int_equal(at_bufpool_out(p), 500);
    assert_int_equal(at_bufpool_held(p), 500);
    assert_true(at_bufpool_fits(p, 500));
    assert_false(at_bufpool_fits(p, 501));
    at_bufpool_release(a, p);
    assert_int_equal(at_bufpool_out(p), 200);
    assert_int_equal(at_bufpool_held(p), 200); /* small buffers are freed, never kept */
    at_bufpool_release(b, p);
    assert_int_equal(at_bufpool_held(p), 0);
    assert_int_equal(at_bufpool_peak(p), 500);
    at_bufpool_free(p);
}

/* Small messages may go past the budget by AT_BUFPOOL_SMALL_RESERVE, and no further; what
 * they hold there counts against the weights' budget like any other byte. */
static void test_small_reserve(void **state)
{
    (void)state;
    at_bufpool *p = at_bufpool_new(1000, NULL);
    assert_non_null(p);
    char *w = at_bufpool_take(p, 990);
    assert_false(at_bufpool_fits(p, 20));
    assert_true(at_bufpool_fits_small(p, 20));
    assert_true(at_bufpool_fits_small(p, AT_BUFPOOL_SMALL_RESERVE + 10));
    assert_false(at_bufpool_fits_small(p, AT_BUFPOOL_SMALL_RESERVE + 11));
    char *m = at_bufpool_take(p, AT_BUFPOOL_SMALL_RESERVE);
    assert_false(at_bufpool_fits_small(p, 11));
    assert_true(at_bufpool_fits_small(p, 10));
    at_bufpool_release(w, p);
    assert_false(at_bufpool_fits(p, 1)); /* the reserve in use still holds the budget */
    at_bufpool_release(m, p);
    assert_true(at_bufpool_fits(p, 1000));
    assert_int_equal(at_bufpool_held(p), 0);
    at_bufpool_free(p);
}

static void test_reuses_large_buffers(void **state)
{
    (void)state;
    at_bufpool *p = at_bufpool_new(4 * (int64_t)BIG, NULL);
    assert_non_null(p);
    /* Nothing is kept before a keep size is set (the agent sets one per snapshot sent). */
    char *a = at_bufpool_take(p, BIG);
    at_bufpool_release(a, p);
    assert_int_equal(at_bufpool_held(p), 0);

    at_bufpool_set_keep(p, 2 * (int64_t)BIG);
    a = at_bufpool_take(p, BIG);
    char *b = at_bufpool_take(p, BIG), *c = at_bufpool_take(p, BIG);
    at_bufpool_release(a, p);
    at_bufpool_release(b, p);
    at_bufpool_release(c, p); /* beyond the keep size: freed */
    assert_int_equal(at_bufpool_out(p), 0);
    assert_int_equal(at_bufpool_held(p), 2 * (int64_t)BIG);
    /* Same size: an idle buffer comes back, and it is counted out again, not twice. */
    char *d = at_bufpool_take(p, BIG);
    assert_true(d == a || d == b);
    assert_int_equal(at_bufpool_out(p), (int64_t)BIG);
    assert_int_equal(at_bufpool_held(p), 2 * (int64_t)BIG);
    at_bufpool_release(d, p);
    at_bufpool_free(p); /* frees the idle buffers (the sanitized build checks for leaks) */
}

static void test_trims_idle_before_allocating(void **state)
{
    (void)state;
    const int64_t budget = 3 * (int64_t)BIG;
    at_bufpool *p = at_bufpool_new(budget, NULL);
    assert_non_null(p);
    at_bufpool_set_keep(p, budget);
    char *a = at_bufpool_take(p, BIG), *b = at_bufpool_take(p, BIG);
    at_bufpool_release(a, p);
    at_bufpool_release(b, p);
    assert_int_equal(at_bufpool_held(p), 2 * (int64_t)BIG);
    /* A different size cannot reuse them: idle buffers go until the new one fits. */
    assert_true(at_bufpool_fits(p, 2 * BIG));
    char *c = at_bufpool_take(p, 2 * BIG);
    assert_non_null(c);
    assert_int_equal(at_bufpool_out(p), 2 * (int64_t)BIG);
    assert_int_equal(at_bufpool_held(p), 3 * (int64_t)BIG);
    assert_true(at_bufpool_peak(p) <= budget);
    at_bufpool_release(c, p);
    at_bufpool_free(p);
}

static void test_discard_frees_without_accounting(void **state)
{
    (void)state;
    at_bufpool *p = at_bufpool_new(1000, NULL);
    assert_non_null(p);
    char *a = at_bufpool_take(p, 100);
    at_bufpool_discard(a);
    assert_int_equal(at_bufpool_out(p), 100); /* teardown only: the pool goes next */
    at_bufpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_budget),
        cmocka_unit_test(test_counts_bytes_out),
        cmocka_unit_test(test_small_reserve),
        cmocka_unit_test(test_reuses_large_buffers),
        cmocka_unit_test(test_trims_idle_before_allocating),
        cmocka_unit_test(test_discard_frees_without_accounting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
