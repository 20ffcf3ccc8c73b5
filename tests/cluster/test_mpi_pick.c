/* SPDX-License-Identifier: Apache-2.0 */
/* test_mpi_pick.c -- the MPI monitor's layer affinity rule (watch_mpi_pick, mpi_watch.h), case
 * by case, without MPI: a layer goes back to its rank while that rank has room, waits for it
 * while the backlog there is short, moves to the rank with the most room once the jobs waiting
 * for its rank are two rounds of that rank's threads more than those waiting for the other;
 * new layers (and exact mode) take the rank with the most room, and nothing goes anywhere when
 * no rank has room. Rank 0 (the monitor) is never picked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mpi_watch.h"

/* Three analysing ranks (1..3) of 2 threads each; rank 0 has no room and no threads. */
enum { SIZE = 4 };
static const int THREADS[SIZE] = {0, 2, 2, 2};

static int pick(int home, int r1, int r2, int r3, int64_t b1, int64_t b2, int64_t b3)
{
    const int room[SIZE] = {0, r1, r2, r3};
    const int64_t backlog[SIZE] = {0, b1, b2, b3};
    return watch_mpi_pick(home, SIZE, room, backlog, THREADS);
}

static void test_new_layer(void **state)
{
    (void)state;
    assert_int_equal(pick(-1, 1, 3, 2, 0, 0, 0), 2); /* the most room */
    assert_int_equal(pick(-1, 2, 2, 1, 0, 0, 0), 1); /* tied: the lowest rank */
    assert_int_equal(pick(0, 0, 0, 1, 0, 0, 0), 3);  /* home 0 is no home */
    assert_int_equal(pick(-1, 0, 0, 0, 0, 0, 0), -1);
}

static void test_home(void **state)
{
    (void)state;
    /* Room at home: home, even when another rank has more. */
    assert_int_equal(pick(2, 4, 1, 4, 0, 9, 0), 2);
    /* Home full, a short backlog there: it waits. */
    assert_int_equal(pick(2, 4, 0, 4, 0, 3, 0), -1);
    /* 4 more waiting for rank 2 than for rank 1 (2 rounds of its 2 threads): it moves to the
     * rank with the most room. */
    assert_int_equal(pick(2, 1, 0, 3, 0, 4, 0), 3);
    assert_int_equal(pick(2, 3, 0, 1, 0, 4, 0), 1);
    /* The comparison is with the rank it would move to, not the emptiest. */
    assert_int_equal(pick(2, 3, 0, 1, 1, 4, 0), -1);
    assert_int_equal(pick(2, 3, 0, 1, 1, 5, 0), 1);
    /* No room anywhere: nothing moves, whatever the backlog. */
    assert_int_equal(pick(2, 0, 0, 0, 0, 50, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_layer),
        cmocka_unit_test(test_home),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
