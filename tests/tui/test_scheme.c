/* SPDX-License-Identifier: Apache-2.0 */
/* test_scheme.c -- the heatmap's colour scales (including how a deuteranope sees the alpha
 * scale, simulated with Machado, Oliveira & Fernandes 2009) and the role table. */
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

/* sRGB (0..255) of xterm colour c (16..255). */
static void srgb(int c, double out[3])
{
    static const int steps[6] = {0, 95, 135, 175, 215, 255};
    if (c >= 232) {
        out[0] = out[1] = out[2] = 8 + 10 * (c - 232);
        return;
    }
    c -= 16;
    out[0] = steps[c / 36];
    out[1] = steps[c / 6 % 6];
    out[2] = steps[c % 6];
}

/* c as a deuteranope sees it (Machado et al. 2009, severity 1, on linear RGB), in sRGB. */
static void deutan(int c, double out[3])
{
    static const double M[3][3] = {{0.367322, 0.860646, -0.227968},
                                   {0.280085, 0.672501, 0.047413},
                                   {-0.011820, 0.042940, 0.968881}};
    double x[3], lin[3];
    srgb(c, x);
    for (int i = 0; i < 3; i++) {
        double v = x[i] / 255.0;
        lin[i] = v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
    }
    for (int i = 0; i < 3; i++) {
        double v = M[i][0] * lin[0] + M[i][1] * lin[1] + M[i][2] * lin[2];
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        out[i] = 255.0 * (v <= 0.0031308 ? 12.92 * v : 1.055 * pow(v, 1 / 2.4) - 0.055);
    }
}

static double dist(const double a[3], const double b[3])
{
    return sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) +
                (a[2] - b[2]) * (a[2] - b[2]));
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
        double d[3];
        deutan(c, d);
        if (k <= burnt_end) { /* warm side: red over blue, and still warm for a deuteranope */
            assert_true(r > g && r > b);
            assert_true(d[0] > d[2] + 60);
        } else if (k >= raw_start) { /* blue side, blue for a deuteranope too */
            assert_true(b > r && b >= g);
            assert_true(d[2] > d[0] + 60);
        } else { /* healthy: neutral greys (no green to confuse with red) */
            assert_int_equal(r, -1);
        }
    }
    /* 2 (ideal) is the lightest healthy level, and darker greys lead to 6 */
    for (int k = healthy_start; k < healthy_end; k++)
        assert_true(at_scheme_level_color(&s, AT_SCALE_ALPHA, k) >
                    at_scheme_level_color(&s, AT_SCALE_ALPHA, k + 1));
    /* for a deuteranope the mildest burnt level stays far from the ideal one and from the raw
     * side (the old red/green scale put burnt and ideal at one olive) */
    double mild[3], ideal[3], cool[3];
    deutan(at_scheme_level_color(&s, AT_SCALE_ALPHA, burnt_end), mild);
    deutan(at_scheme_level_color(&s, AT_SCALE_ALPHA, healthy_start), ideal);
    deutan(at_scheme_level_color(&s, AT_SCALE_ALPHA, raw_start), cool);
    assert_true(dist(mild, ideal) > 100);
    assert_true(dist(mild, cool) > 100);

    /* 8 colours: red/yellow, white, cyan/blue; blue is bold (bright) on a black background */
    at_scheme_init(&s, 8);
    assert_int_equal(at_scheme_level_color(&s, AT_SCALE_ALPHA, 0), 1);
    assert_int_equal(at_scheme_level_color(&s, AT_SCALE_ALPHA, burnt_end), 3);
    assert_int_equal(at_scheme_level_color(&s, AT_SCALE_ALPHA, healthy_start), 7);
    assert_int_equal(at_scheme_level_color(&s, AT_SCALE_ALPHA, raw_start), 6);
    assert_int_equal(at_scheme_level_color(&s, AT_SCALE_ALPHA, AT_ALPHA_LEVELS - 1), 4);
    assert_int_equal(at_scheme_level_attr(&s, AT_SCALE_ALPHA, AT_ALPHA_LEVELS - 1), AT_ATTR_BOLD);
    assert_int_equal(at_scheme_level_attr(&s, AT_SCALE_ALPHA, 0), 0);

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
