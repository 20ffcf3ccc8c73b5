/* test_scheme.c -- the heatmap's colour scales and the role table. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "scheme.h"

/* r, g, b (0..5) of an xterm cube colour, or grey (-1s) */
static void rgb(int c, int *r, int *g, int *b)
{
    if (c < 16 || c > 231) {
        *r = *g = *b = -1;
        return;
    }
    c -= 16;
    *r = c / 36;
    *g = c / 6 % 6;
    *b = c % 6;
}

static void test_alpha_levels(void **state)
{
    (void)state;
    int burnt_end = at_scale_level(AT_SCALE_ALPHA, 1.9999, 0, 0);
    int healthy_start = at_scale_level(AT_SCALE_ALPHA, 2.0, 0, 0);
    int healthy_end = at_scale_level(AT_SCALE_ALPHA, 6.0, 0, 0);
    int raw_start = at_scale_level(AT_SCALE_ALPHA, 6.0001, 0, 0);
    assert_int_equal(healthy_start, burnt_end + 1);
    assert_int_equal(raw_start, healthy_end + 1);
    assert_int_equal(at_scale_level(AT_SCALE_ALPHA, 0.3, 0, 0), 0);
    assert_int_equal(at_scale_level(AT_SCALE_ALPHA, 50, 0, 0), AT_ALPHA_LEVELS - 1);
    assert_int_equal(at_scale_level(AT_SCALE_ALPHA, NAN, 0, 0), -1);
    /* monotone in alpha */
    int prev = 0;
    for (double a = 0.5; a < 20; a += 0.01) {
        int k = at_scale_level(AT_SCALE_ALPHA, a, 0, 0);
        assert_true(k >= prev);
        if (k > 0 && k < AT_ALPHA_LEVELS)
            assert_true(a >= at_alpha_level_bound(k));
        prev = k;
    }

    at_scheme s;
    at_scheme_init(&s, 256);
    for (int k = 0; k < AT_ALPHA_LEVELS; k++) {
        int c = at_scheme_level_color(&s, AT_SCALE_ALPHA, k), r, g, b;
        assert_true(c >= 16 && c <= 255);
        rgb(c, &r, &g, &b);
        if (k <= burnt_end) { /* red side */
            assert_true(r > g && r > b);
        } else if (k >= raw_start) { /* blue side */
            assert_true(b > r && b >= g);
        } else if (r >= 0) { /* neutral to green */
            assert_true(g >= r && g >= b);
        }
    }
    /* 2 (ideal) is the greenest healthy level */
    int r, g, b;
    rgb(at_scheme_level_color(&s, AT_SCALE_ALPHA, healthy_start), &r, &g, &b);
    assert_int_equal(r, 0);
    assert_true(g >= 4);

    at_scheme_init(&s, 8);
    assert_int_equal(at_scheme_level_color(&s, AT_SCALE_ALPHA, burnt_end), 1);
    assert_int_equal(at_scheme_level_color(&s, AT_SCALE_ALPHA, healthy_start), 2);
    assert_int_equal(at_scheme_level_color(&s, AT_SCALE_ALPHA, AT_ALPHA_LEVELS - 1), 4);

    at_scheme_init(&s, 0);
    assert_int_equal(at_scheme_level_color(&s, AT_SCALE_ALPHA, 0), AT_COLOR_DEFAULT);
    assert_int_equal(at_scheme_missing_color(&s), AT_COLOR_DEFAULT);
    /* the ASCII ramp tells the three phases apart */
    const char *burnt = "@#", *healthy = "+=-.", *raw = "oO";
    for (int k = 0; k < AT_ALPHA_LEVELS; k++) {
        char ch = at_scale_ascii(AT_SCALE_ALPHA, k);
        const char *want = k <= burnt_end ? burnt : k >= raw_start ? raw : healthy;
        assert_non_null(strchr(want, ch));
    }
}

static void test_other_scales(void **state)
{
    (void)state;
    assert_int_equal(at_metric_scale(AT_METRIC_ALPHA), AT_SCALE_ALPHA);
    assert_int_equal(at_metric_scale(AT_METRIC_TRAPS), AT_SCALE_TRAPS);
    assert_int_equal(at_metric_scale(AT_METRIC_LOG_NORM), AT_SCALE_SEQ);
    assert_int_equal(at_scale_level(AT_SCALE_SEQ, 1.0, 1.0, 3.0), 0);
    assert_int_equal(at_scale_level(AT_SCALE_SEQ, 3.0, 1.0, 3.0), AT_SEQ_LEVELS - 1);
    assert_int_equal(at_scale_level(AT_SCALE_SEQ, 2.0, 1.0, 3.0), AT_SEQ_LEVELS / 2);
    assert_int_equal(at_scale_level(AT_SCALE_SEQ, 7.0, 7.0, 7.0), AT_SEQ_LEVELS / 2);
    assert_int_equal(at_scale_level(AT_SCALE_TRAPS, 0, 0, 0), 0);
    assert_int_equal(at_scale_level(AT_SCALE_TRAPS, 1, 0, 0), 1);
    assert_int_equal(at_scale_level(AT_SCALE_TRAPS, 4, 0, 0), 3);
    assert_int_equal(at_scale_level(AT_SCALE_TRAPS, 30, 0, 0), AT_TRAP_LEVELS - 1);
    at_scheme s;
    at_scheme_init(&s, 256);
    /* distinct colours along each scale, and "missing" is none of them */
    for (int sc = 0; sc < 3; sc++)
        for (int k = 0; k < at_scale_levels((at_scale)sc); k++) {
            int c = at_scheme_level_color(&s, (at_scale)sc, k);
            assert_int_not_equal(c, at_scheme_missing_color(&s));
            if (k)
                assert_int_not_equal(c, at_scheme_level_color(&s, (at_scale)sc, k - 1));
        }
}

static void test_roles(void **state)
{
    (void)state;
    int depths[] = {256, 8, 0};
    for (int d = 0; d < 3; d++) {
        at_scheme s;
        at_scheme_init(&s, depths[d]);
        for (int r = 0; r < AT_ROLE_COUNT; r++) {
            at_style st = at_scheme_role(&s, (at_role)r);
            int lim = depths[d] ? depths[d] : 0;
            assert_true(st.fg >= -1 && st.fg < (lim ? lim : 1));
            assert_true(st.bg >= -1 && st.bg < (lim ? lim : 1));
        }
    }
    at_scheme s;
    at_scheme_init(&s, 0);
    assert_true(at_scheme_role(&s, AT_ROLE_SELECTED).attr & AT_ATTR_REVERSE);
    at_scheme_init(&s, 1000);
    assert_int_equal(s.colors, 256);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpha_levels),
        cmocka_unit_test(test_other_scales),
        cmocka_unit_test(test_roles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
