/* SPDX-License-Identifier: Apache-2.0 */
/* test_layout.c -- the screen layout and the heatmap's column compression rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "layout.h"

static void assert_inside(const at_rect *r, int rows, int cols)
{
    assert_true(r->h >= 0 && r->w >= 0);
    if (r->h == 0 || r->w == 0)
        return;
    assert_true(r->y >= 0 && r->x >= 0);
    assert_true(r->y + r->h <= rows);
    assert_true(r->x + r->w <= cols);
}

static void test_too_small(void **state)
{
    (void)state;
    at_layout_in in = {.nlayers = 10, .name_len = 12, .pair_len = 12, .half_ok = 1, .nsnap = 0};
    at_layout l;
    at_layout_compute(&l, 30, AT_MIN_COLS - 1, &in);
    assert_true(l.too_small);
    assert_int_equal(l.heat.w, 0);
    at_layout_compute(&l, AT_MIN_ROWS - 1, 80, &in);
    assert_true(l.too_small);
    at_layout_compute(&l, AT_MIN_ROWS, AT_MIN_COLS, &in);
    assert_false(l.too_small);
    assert_true(l.heat.w > 0 && l.heat.h > 0);
}

static void test_wide_and_narrow(void **state)
{
    (void)state;
    at_layout_in in = {.nlayers = 10, .name_len = 15, .pair_len = 22, .half_ok = 1, .nsnap = 0};
    at_layout l;
    at_layout_compute(&l, 40, 120, &in);
    assert_false(l.too_small);
    assert_int_equal(l.warnings.x, 120 - AT_WARN_COLS);
    assert_int_equal(l.warnings.w, AT_WARN_COLS);
    assert_int_equal(l.names.w, 15);
    assert_int_equal(l.heat.x, 16);
    assert_true(l.side.x + l.side.w < l.warnings.x);
    assert_int_equal(l.status.y, 39);
    assert_int_equal(l.axis.y, l.heat.y + l.heat.h);
    assert_int_equal(l.colorbar.y, l.axis.y + 1);
    assert_int_equal(l.layers_per_row, 1);
    const at_rect *all[] = {&l.header, &l.titles,   &l.names,    &l.heat,   &l.side,
                            &l.axis,   &l.colorbar, &l.warnings, &l.status, &l.body};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        assert_inside(all[i], 40, 120);

    at_layout_compute(&l, 24, 80, &in);
    assert_int_equal(l.warnings.h, AT_NARROW_WARN_ROWS);
    assert_int_equal(l.warnings.y + l.warnings.h, l.status.y);
    assert_int_equal(l.warnings.w, 80);
    assert_int_equal(l.side.x + l.side.w, 80);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        assert_inside(all[i], 24, 80);
    /* a long name is capped */
    in.name_len = 200;
    at_layout_compute(&l, 24, 80, &in);
    assert_int_equal(l.names.w, 20);
}

static void test_half_blocks(void **state)
{
    (void)state;
    at_layout_in in = {.nlayers = 100, .name_len = 12, .pair_len = 20, .half_ok = 1, .nsnap = 0};
    at_layout l;
    at_layout_compute(&l, 40, 120, &in);
    assert_int_equal(l.layers_per_row, 2);
    assert_int_equal(l.names.w, 20); /* pair labels */
    in.half_ok = 0;
    at_layout_compute(&l, 40, 120, &in);
    assert_int_equal(l.layers_per_row, 1);
    assert_int_equal(l.names.w, 12);
    in.half_ok = 1;
    in.nlayers = l.heat.h;
    at_layout_compute(&l, 40, 120, &in);
    assert_int_equal(l.layers_per_row, 1);
}

static void test_columns(void **state)
{
    (void)state;
    at_colspan sp[64];
    assert_int_equal(at_layout_columns(0, 10, sp), 0);
    assert_int_equal(at_layout_columns(5, 10, sp), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sp[i].c0, i);
        assert_int_equal(sp[i].c1, i + 1);
    }
    /* 100 snapshots in 10 columns: the newest 5 alone, the older 95 in 5 buckets of 19 */
    assert_int_equal(at_layout_columns(100, 10, sp), 10);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sp[i].c0, 19 * i);
        assert_int_equal(sp[i].c1, 19 * (i + 1));
        assert_int_equal(sp[5 + i].c0, 95 + i);
        assert_int_equal(sp[5 + i].c1, 96 + i);
    }
    /* aligned buckets: 101 older snapshots in 5 columns are buckets of 21, the last of 17 */
    assert_int_equal(at_layout_columns(106, 10, sp), 10);
    assert_int_equal(sp[1].c0, 21);
    assert_int_equal(sp[4].c0, 84);
    assert_int_equal(sp[4].c1, 101);
    /* one more snapshot moves no bucket boundary, only the last bucket's end */
    assert_int_equal(at_layout_columns(107, 10, sp), 10);
    assert_int_equal(sp[3].c1, 84);
    assert_int_equal(sp[4].c1, 102);
    /* every shape: contiguous, non-empty, covering [0, n), the newest width/2 alone */
    for (int n = 1; n < 300; n++)
        for (int w = 1; w < 64; w++) {
            int k = at_layout_columns(n, w, sp);
            if (n <= w)
                assert_int_equal(k, n);
            else
                assert_true(k <= w && k > w / 2);
            assert_int_equal(sp[0].c0, 0);
            assert_int_equal(sp[k - 1].c1, n);
            for (int i = 0; i < k; i++) {
                assert_true(sp[i].c1 > sp[i].c0);
                if (i)
                    assert_int_equal(sp[i].c0, sp[i - 1].c1);
            }
            if (n > w)
                for (int i = k - w / 2; i < k; i++)
                    assert_int_equal(sp[i].c1 - sp[i].c0, 1);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_too_small),
        cmocka_unit_test(test_wide_and_narrow),
        cmocka_unit_test(test_half_blocks),
        cmocka_unit_test(test_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
