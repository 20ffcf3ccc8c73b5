/* SPDX-License-Identifier: Apache-2.0 */
/* test_plot.c -- the reports' pictures: log binning against hand counts, escaping of hostile
 * names, the band colours, ticks, and the ESD's geometry (the fitted line's ends and the xmin
 * and MP markers where the power law and the axes put them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axis.h"
#include "esd.h"
#include "markup.h"
#include "page.h"
#include "palette.h"
#include "plot.h"

/* |a - b| <= tol, with both values in the message when not. */
#define assert_near(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fail_msg("%s = %.17g, want %.17g (within %g)", #a, a_, b_, (double)(tol));             \
    } while (0)

/* ---- binning ---- */

static void test_bins_by_hand(void **state)
{
    (void)state;
    /* log10: 0, 1, 2 over two bins [0, 1) and [1, 2]: 1 | 10, 100 */
    const double x[] = {100, 1, 10, 1e-6, 0, NAN};
    at_esd_hist h;
    assert_int_equal(at_esd_hist_make(x, 6, 2, &h), AT_OK);
    assert_int_equal(h.nbins, 2);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.left_out, 3);
    assert_int_equal(h.count[0], 1);
    assert_int_equal(h.count[1], 2);
    assert_near(h.lo, 0, 1e-15);
    assert_near(h.hi, 2, 1e-15);
    assert_near(at_esd_edge(&h, 1), 10, 1e-12);
    assert_near(h.density[0], 1.0 / (3 * 9), 1e-15);
    assert_near(h.density[1], 2.0 / (3 * 90), 1e-15);
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}

static void test_bins_sum_and_integrate(void **state)
{
    (void)state;
    uint64_t seed = 17;
    for (size_t n = 1; n <= 5000; n = n * 3 + 1) {
        double *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++) /* log-uniform over 8 decades */
            x[i] = pow(10.0, -4 + 8 * (double)lcg(&seed) / 9007199254740992.0);
        at_esd_hist h;
        assert_int_equal(at_esd_hist_make(x, n, 0, &h), AT_OK);
        assert_int_equal(h.nbins, at_esd_nbins(h.n));
        size_t sum = 0;
        double integral = 0;
        for (int k = 0; k < h.nbins; k++) {
            sum += h.count[k];
            integral += h.density[k] * (at_esd_edge(&h, k + 1) - at_esd_edge(&h, k));
            /* equal widths in log10 */
            assert_near(at_esd_log_edge(&h, k + 1) - at_esd_log_edge(&h, k),
                        (h.hi - h.lo) / h.nbins, 1e-12);
        }
        assert_int_equal(sum + h.left_out, n);
        assert_near(integral, 1.0, 1e-12);
        free(x);
    }
}

static void test_bins_edges_and_errors(void **state)
{
    (void)state;
    assert_int_equal(at_esd_nbins(64), 10);   /* 2 * 4 = 8, raised to 10 */
    assert_int_equal(at_esd_nbins(1000), 20); /* 2 * 10 */
    assert_int_equal(at_esd_nbins(1000000), 60);
    /* all equal: one decade centred on the value, every count in the middle bin */
    const double same[] = {5, 5, 5, 5};
    at_esd_hist h;
    assert_int_equal(at_esd_hist_make(same, 4, 10, &h), AT_OK);
    assert_near(h.hi - h.lo, 1.0, 1e-12);
    assert_near((h.hi + h.lo) / 2, log10(5), 1e-12);
    assert_int_equal(h.count[5], 4);
    const double zeros[] = {0, 1e-7, 1e-5};
    assert_int_equal(at_esd_hist_make(zeros, 3, 0, &h), AT_ERR_EMPTY);
    assert_int_equal(at_esd_hist_make(same, 4, AT_ESD_MAX_BINS + 1, &h), AT_ERR_ARG);
    assert_int_equal(at_esd_hist_make(NULL, 4, 0, &h), AT_ERR_ARG);
}

/* ---- escaping ---- */

static char *escaped(const char *s, size_t max_chars)
{
    at_markup *t = at_markup_new(NULL);
    assert_non_null(t);
    at_markup_escape(t, s, max_chars);
    char *out = at_markup_take(t, NULL);
    assert_non_null(out);
    return out;
}

#define FFFD "\xef\xbf\xbd"

static void test_escape_hostile(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"<script>alert('x')</script>&", "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"},
        {"a\"b]]>c", "a&quot;b]]&gt;c"},
        {"&amp;", "&amp;amp;"},
        /* controls other than tab, newline, CR; DEL and C1 */
        {"a\x01\x1b[31mb\tc\n", "a" FFFD FFFD "[31mb\tc\n"},
        {"\x7f\xc2\x85", FFFD FFFD},
        /* not UTF-8: a stray byte, an overlong '/', a surrogate, past U+10FFFF, truncated */
        {"\xff", FFFD},
        {"\xc0\xaf", FFFD FFFD},
        {"\xed\xa0\x80", FFFD FFFD FFFD},
        {"\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD},
        {"ab\xe2\x9c", "ab" FFFD FFFD},
        /* noncharacters */
        {"\xef\xbf\xbe\xef\xb7\x90", FFFD FFFD},
        /* well-formed text stays as it is */
        {"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = escaped(cases[i].in, 0);
        if (strcmp(out, cases[i].out))
            fail_msg("case %zu: got '%s', want '%s'", i, out, cases[i].out);
        free(out);
    }
}

static void test_escape_elides_on_characters(void **state)
{
    (void)state;
    char *out = escaped("abcdefghijklmnopqrstuvwxyz", 10);
    assert_string_equal(out, "abcde\xe2\x80\xa6wxyz");
    free(out);
    /* eight two-byte characters cut to five: never half a character */
    out = escaped("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa8", 5);
    assert_string_equal(out, "\xc3\xa9\xc3\xa9\xe2\x80\xa6\xc3\xa9\xc3\xa8");
    free(out);
    out = escaped("short", 10);
    assert_string_equal(out, "short");
    free(out);
}

static void test_file_names_are_safe(void **state)
{
    (void)state;
    char buf[128];
    at_plot_file_name(buf, sizeof buf, 1, "../../etc/passwd");
    assert_string_equal(buf, "001-.._.._etc_passwd.svg");
    at_plot_file_name(buf, sizeof buf, 42, "a b\xff<c>.weight");
    assert_string_equal(buf, "042-a_b__c_.weight.svg");
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    at_plot_file_name(buf, sizeof buf, 7, longname);
    assert_int_equal(strlen(buf), 4 + 80 + 4);
}

/* ---- colours and ticks ---- */

static void test_band_colours(void **state)
{
    (void)state;
    char c[8];
    assert_string_equal(at_plot_alpha_color(1.5, c), "#d55e00");  /* vermilion */
    assert_string_equal(at_plot_alpha_color(1.99, c), "#e69e00"); /* 98% of the way to orange */
    assert_string_equal(at_plot_alpha_color(0.2, c), "#8f2700");  /* deepest burnt */
    assert_string_equal(at_plot_alpha_color(2.0, c), "#d9d9d9");  /* the band's edges are healthy */
    assert_string_equal(at_plot_alpha_color(6.0, c), "#8c8c8c");
    assert_string_equal(at_plot_alpha_color(6.0001, c), "#56b4e9"); /* raw starts sky blue */
    assert_string_equal(at_plot_alpha_color(9.0, c), "#0072b2");
    assert_string_equal(at_plot_alpha_color(40.0, c), "#08306b");
    assert_string_equal(at_plot_alpha_color(NAN, c), AT_PLOT_MISSING);
    assert_string_equal(at_plot_band_name(1.99), "burnt");
    assert_string_equal(at_plot_band_name(2.0), "healthy");
    assert_string_equal(at_plot_band_name(6.0), "healthy");
    assert_string_equal(at_plot_band_name(6.5), "raw");
    assert_string_equal(at_plot_alpha_ink(0.5), "#ffffff"); /* dark red: white text */
    assert_string_equal(at_plot_alpha_ink(3.0), "#000000");
}

static void test_ticks(void **state)
{
    (void)state;
    double t[16];
    assert_int_equal(at_ticks_log(-1.2, 2.3, t, 16), 4);
    assert_near(t[0], -1, 0);
    assert_near(t[3], 2, 0);
    /* under three decades: 1, 2, 5 times them */
    int n = at_ticks_log(log10(0.3), log10(30), t, 16);
    assert_int_equal(n, 6); /* 0.5 1 2 5 10 20 */
    assert_near(t[0], log10(0.5), 1e-12);
    assert_near(t[5], log10(20), 1e-12);
    n = at_ticks_linear(0, 10, 5, t, 16);
    assert_int_equal(n, 6);
    assert_near(t[5], 10, 0);
    char lab[32];
    at_tick_label(lab, sizeof lab, 1e-5);
    assert_string_equal(lab, "1e-5");
    at_tick_label(lab, sizeof lab, 0.05);
    assert_string_equal(lab, "0.05");
    at_tick_label(lab, sizeof lab, 2e6);
    assert_string_equal(lab, "2e6");
}

/* ---- the ESD picture ---- */

/* A spectrum: a bulk of 200 values in [0.1, 1) and a Pareto tail of 100 with exponent alpha
 * above xmin = 2 (the quantiles, so no randomness). */
enum { BULK = 200, TAIL = 100 };
static double spectrum[BULK + TAIL];

static void make_spectrum(double alpha, double xmin)
{
    for (int i = 0; i < BULK; i++)
        spectrum[i] = 0.1 + 0.9 * (i + 0.5) / BULK;
    for (int i = 0; i < TAIL; i++)
        spectrum[BULK + i] = xmin * pow(1 - (i + 0.5) / TAIL, -1 / (alpha - 1));
}

/* The value of attribute name in the first element of class cls in svg. */
static double attr(const char *svg, const char *cls, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "class=\"%s\"", cls);
    const char *el = strstr(svg, key);
    if (!el)
        fail_msg("no element of class %s", cls);
    const char *end = strchr(el, '>');
    snprintf(key, sizeof key, " %s=\"", name);
    const char *a = strstr(el, key);
    if (!a || a > end)
        fail_msg("no %s in the %s element", name, cls);
    return strtod(a + strlen(key), NULL);
}

/* The x of the tick labelled lab on the x axis. */
static double xtick(const char *svg, const char *lab)
{
    char want[32];
    snprintf(want, sizeof want, ">%s</text>", lab);
    for (const char *p = strstr(svg, "class=\"xtick\""); p; p = strstr(p + 1, "class=\"xtick\"")) {
        const char *close = strstr(p, "</text>");
        const char *gt = strchr(p, '>');
        if (close && !strncmp(gt, want, strlen(want)))
            return strtod(strstr(p, " x=\"") + 4, NULL);
    }
    fail_msg("no x tick labelled %s", lab);
    return NAN;
}

static void test_esd_fit_line_and_markers(void **state)
{
    (void)state;
    const double alpha = 2.5, xmin = 2.0, mp = 0.8;
    make_spectrum(alpha, xmin);
    at_esd_plot p = {.title = "layer",
                     .evals = spectrum,
                     .n = BULK + TAIL,
                     .status = AT_FIT_SUCCESS,
                     .alpha = alpha,
                     .xmin = xmin,
                     .D = 0.05,
                     .mp_edge = mp};
    int st = -1;
    char *svg = at_esd_svg(&p, &st);
    assert_non_null(svg);
    assert_int_equal(st, AT_OK);

    /* the x axis, from the picture alone: ticks 1 and 10 are one decade apart */
    double x_1 = xtick(svg, "1"), decade = xtick(svg, "10") - x_1;
    assert_true(decade > 50);
    double lmax = spectrum[BULK + TAIL - 1];
    assert_near(attr(svg, "fit", "x1"), x_1 + log10(xmin) * decade, 0.02);
    assert_near(attr(svg, "fit", "x2"), x_1 + log10(lmax) * decade, 0.02);
    assert_near(attr(svg, "xmin", "x1"), x_1 + log10(xmin) * decade, 0.02);
    assert_near(attr(svg, "mp-edge", "x1"), x_1 + log10(mp) * decade, 0.02);

    /* the line's ends are the fitted density p(x) = (alpha-1)/xmin (x/xmin)^-alpha times the
     * tail's share (100 of 300) on the frame's log density axis */
    at_esd_hist h;
    assert_int_equal(at_esd_hist_make(spectrum, BULK + TAIL, 0, &h), AT_OK);
    at_plot_frame f;
    int has_fit;
    double fit[4];
    at_esd_frame(&p, &h, &f, &has_fit, fit);
    assert_true(has_fit);
    const double share = (double)TAIL / (BULK + TAIL);
    double y_at_xmin = log10((alpha - 1) / xmin * share);
    double y_at_lmax = y_at_xmin - alpha * log10(lmax / xmin);
    double ppd_y = f.height / (f.y1 - f.y0); /* pixels per decade of density */
    assert_near(attr(svg, "fit", "y1"), f.top + (f.y1 - y_at_xmin) * ppd_y, 0.02);
    assert_near(attr(svg, "fit", "y2"), f.top + (f.y1 - y_at_lmax) * ppd_y, 0.02);
    /* so its slope in pixels is -alpha decades of density per decade of lambda */
    double slope = (attr(svg, "fit", "y2") - attr(svg, "fit", "y1")) /
                   (attr(svg, "fit", "x2") - attr(svg, "fit", "x1"));
    assert_near(slope, alpha * ppd_y / decade, 0.01);
    /* the frame's x axis agrees with the tick labels */
    assert_near(at_plot_px(&f, 0), x_1, 0.01);
    /* every bar and the whole line inside the frame */
    for (int k = 0; k < h.nbins; k++)
        if (h.count[k])
            assert_true(log10(h.density[k]) > f.y0 && log10(h.density[k]) < f.y1);
    assert_true(fit[3] > f.y0 && fit[1] < f.y1);
    /* the same input gives the same bytes */
    char *again = at_esd_svg(&p, NULL);
    assert_string_equal(svg, again);
    free(again);
    free(svg);
}

static void test_esd_without_fit(void **state)
{
    (void)state;
    make_spectrum(2.5, 2.0);
    at_esd_plot p = {.title = "t",
                     .evals = spectrum,
                     .n = BULK + TAIL,
                     .status = AT_FIT_FAILED,
                     .alpha = -1,
                     .xmin = NAN,
                     .D = NAN,
                     .mp_edge = NAN};
    char *svg = at_esd_svg(&p, NULL);
    assert_non_null(svg);
    assert_null(strstr(svg, "class=\"fit\""));
    assert_null(strstr(svg, "class=\"xmin\""));
    assert_null(strstr(svg, "class=\"mp-edge\""));
    assert_non_null(strstr(svg, "no power-law fit"));
    assert_non_null(strstr(svg, "class=\"bar\""));
    free(svg);
    const double zeros[] = {0, 0, 1e-9};
    p.evals = zeros;
    p.n = 3;
    svg = at_esd_svg(&p, NULL);
    assert_non_null(strstr(svg, "no eigenvalue above 1e-05 to plot"));
    free(svg);
    int st = 0;
    p.evals = NULL;
    assert_null(at_esd_svg(&p, &st));
    assert_int_equal(st, AT_ERR_ARG);
}

static void test_hostile_names_in_pictures_and_pages(void **state)
{
    (void)state;
    static const char evil[] = "</title><script>alert(1)</script>\"'&\xff\x01";
    make_spectrum(3.0, 2.0);
    at_esd_plot p = {.title = evil,
                     .subtitle = evil,
                     .evals = spectrum,
                     .n = BULK + TAIL,
                     .status = AT_FIT_SUCCESS,
                     .alpha = 3.0,
                     .xmin = 2.0,
                     .D = 0.1,
                     .mp_edge = NAN};
    char *svg = at_esd_svg(&p, NULL);
    assert_null(strstr(svg, "<script"));
    assert_null(strstr(svg, "\xff"));
    assert_non_null(strstr(svg, "&lt;/title&gt;&lt;script&gt;"));

    at_scan_page *page = at_scan_page_new(NULL);
    at_metrics m;
    at_metrics_init(&m, AT_MODE_EXACT);
    m.status = AT_FIT_SUCCESS;
    m.alpha = 3.0;
    assert_int_equal(at_scan_page_add(page, &(at_scan_row){.file = evil,
                                                           .name = evil,
                                                           .shape = evil,
                                                           .m = &m,
                                                           .svg = svg,
                                                           .svg_file = "001-x.svg"}),
                     AT_OK);
    assert_int_equal(
        at_scan_page_add(page, &(at_scan_row){.file = evil, .name = "b", .note = evil}), AT_OK);
    char *html = at_scan_page_html(page, NULL);
    assert_non_null(html);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "\xff"));
    assert_non_null(strstr(html, "<!DOCTYPE html>"));
    assert_non_null(strstr(html, "1 healthy"));
    at_scan_page_free(page);
    free(html);

    const char *names[] = {evil, "fc2"};
    const int64_t steps[] = {10, 20, 30};
    const double alpha[] = {1.5, NAN, 3.0, 7.0, 7.0, 7.0};
    at_run_section sec = {
        .run = evil, .view = "w", .about = evil, .map = {2, 3, names, steps, alpha}, .esd = NULL};
    at_run_event ev = {.run = evil, .kind = evil, .text = evil, .step = 5};
    html = at_run_page_html(evil, &sec, 1, &ev, 1, NULL);
    assert_non_null(html);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "\xff"));
    free(html);
    free(svg);
}

static void test_heatmap_cells(void **state)
{
    (void)state;
    const char *names[] = {"a", "b"};
    const int64_t steps[] = {10, 20, 30};
    /* row a: burnt, missing, healthy; row b: raw three times, one rectangle */
    const double alpha[] = {1.5, NAN, 3.0, 7.0, 7.0, 7.0};
    at_heatmap hm = {2, 3, names, steps, alpha};
    char *svg = at_heatmap_svg(&hm, NULL);
    assert_non_null(svg);
    int cells = 0;
    for (const char *p = strstr(svg, "class=\"cell\""); p; p = strstr(p + 1, "class=\"cell\""))
        cells++;
    assert_int_equal(cells, 3);
    char c[8];
    assert_non_null(strstr(svg, at_plot_alpha_color(1.5, c)));
    assert_non_null(strstr(svg, at_plot_alpha_color(7.0, c)));
    free(svg);
    int st = 0;
    hm.nrows = 0;
    assert_null(at_heatmap_svg(&hm, &st));
    assert_int_equal(st, AT_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bins_by_hand),
        cmocka_unit_test(test_bins_sum_and_integrate),
        cmocka_unit_test(test_bins_edges_and_errors),
        cmocka_unit_test(test_escape_hostile),
        cmocka_unit_test(test_escape_elides_on_characters),
        cmocka_unit_test(test_file_names_are_safe),
        cmocka_unit_test(test_band_colours),
        cmocka_unit_test(test_ticks),
        cmocka_unit_test(test_esd_fit_line_and_markers),
        cmocka_unit_test(test_esd_without_fit),
        cmocka_unit_test(test_hostile_names_in_pictures_and_pages),
        cmocka_unit_test(test_heatmap_cells),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
