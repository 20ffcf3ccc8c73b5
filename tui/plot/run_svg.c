/* SPDX-License-Identifier: Apache-2.0 */
/* run_svg.c -- a run's pictures: the alpha heatmap, one layer's alpha over time, the colour
 * bar. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/band.h"
#include "axis.h"
#include "palette.h"
#include "plot.h"

static char *fail(int *status, int st)
{
    if (status)
        *status = st;
    return NULL;
}

/* Heatmap geometry: names on the left, the cells, steps below. */
enum { HM_GRID_W = 760, HM_TOP = 8, HM_LABEL_PX = 11, HM_LABEL_CHARS = 34 };

/* Where the heatmap's parts go: names in [0, x0), cells cw x rh from x0. */
typedef struct heat_geom {
    double x0, cw, rh;
    size_t cols; /* columns drawn */
} heat_geom;

/* The last snapshot shown in column c of cols (ncols snapshots). */
static size_t last_in_column(size_t c, size_t cols, size_t ncols)
{
    return ((c + 1) * ncols + cols - 1) / cols - 1;
}

/* Row r at y, rh high: its cells in cols columns cw wide (col: room for cols values), and its
 * name when label is set. */
static void heat_row(at_markup *t, const at_heatmap *hm, size_t r, double *col, const heat_geom *g,
                     double y, int label)
{
    const size_t cols = g->cols;
    const double cw = g->cw, rh = g->rh;
    for (size_t c = 0; c < cols; c++)
        col[c] = NAN;
    /* each column shows the latest result among its snapshots */
    for (size_t j = 0; j < hm->ncols; j++) {
        double a = hm->alpha[r * hm->ncols + j];
        if (!isnan(a))
            col[j * cols / hm->ncols] = a;
    }
    at_markup_puts(t, "<g class=\"row\"><title>");
    at_markup_escape(t, hm->names[r], 0);
    at_markup_puts(t, "</title>\n");
    char color[8], next[8];
    /* side by side cells of one colour are one rectangle */
    for (size_t c = 0; c < cols;) {
        at_plot_alpha_color(col[c], color);
        size_t e = c + 1;
        while (e < cols && !strcmp(at_plot_alpha_color(col[e], next), color) &&
               isnan(col[e]) == isnan(col[c]))
            e++;
        if (!isnan(col[c]))
            at_markup_printf(t,
                             "<rect class=\"cell\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                             "height=\"%.2f\" fill=\"%s\"/>\n",
                             g->x0 + c * cw, y, (e - c) * cw, rh, color);
        c = e;
    }
    if (label) {
        at_markup_printf(t,
                         "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\" font-size=\"%d\" "
                         "fill=\"%s\">",
                         g->x0 - 6, y + rh / 2 + 4, HM_LABEL_PX, AT_PLOT_INK);
        at_markup_escape(t, hm->names[r], HM_LABEL_CHARS);
        at_markup_puts(t, "</text>\n");
    }
    at_markup_puts(t, "</g>\n");
}

char *at_heatmap_svg(const at_heatmap *hm, int *status)
{
    if (!hm || !hm->nrows || !hm->ncols || !hm->names || !hm->steps || !hm->alpha)
        return fail(status, AT_ERR_ARG);
    heat_geom g;
    g.cols = hm->ncols < AT_HEATMAP_MAX_COLS ? hm->ncols : AT_HEATMAP_MAX_COLS;
    g.cw = floor((double)HM_GRID_W / (double)g.cols);
    g.cw = g.cw < 2 ? 2 : g.cw > 40 ? 40 : g.cw;
    g.rh = hm->nrows <= 40 ? 16 : floor(640.0 / (double)hm->nrows);
    g.rh = g.rh < 4 ? 4 : g.rh;
    /* room for the longest name as drawn (bytes overestimate multi-byte characters) */
    size_t longest = 4;
    for (size_t r = 0; r < hm->nrows; r++) {
        size_t len = strlen(hm->names[r]);
        longest = len > longest ? len : longest;
    }
    g.x0 =
        14 + at_plot_text_width(longest < HM_LABEL_CHARS ? longest : HM_LABEL_CHARS, HM_LABEL_PX);
    /* a name every few rows when the rows are thinner than its text */
    size_t every = g.rh >= 12 ? 1 : (size_t)ceil(12.0 / g.rh);
    const size_t cols = g.cols;
    const double cw = g.cw, gw = (double)cols * cw, gh = (double)hm->nrows * g.rh;
    const double bottom = HM_TOP + gh;
    const int w = (int)(g.x0 + gw + 24), h = (int)(bottom + 46);
    double *col = malloc(cols * sizeof *col);
    at_markup *t = col ? at_markup_new(status) : NULL;
    if (!t) {
        free(col);
        return fail(status, AT_ERR_NOMEM);
    }
    at_svg_open(t, w, h, "alpha per layer and snapshot", "");
    for (size_t r = 0; r < hm->nrows; r++)
        heat_row(t, hm, r, col, &g, HM_TOP + (double)r * g.rh, r % every == 0);
    free(col);
    at_markup_printf(t,
                     "<rect class=\"frame\" x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%.2f\" "
                     "fill=\"none\" stroke=\"%s\"/>\n",
                     g.x0, HM_TOP, gw, gh, AT_PLOT_MUTED);
    /* steps below some columns: as many as fit without touching */
    int nlab = (int)(gw / 90);
    nlab = nlab < 1 ? 1 : nlab > 6 ? 6 : nlab;
    for (int i = 0; i < nlab; i++) {
        size_t c = nlab == 1 ? cols - 1 : (size_t)i * (cols - 1) / (size_t)(nlab - 1);
        double x = g.x0 + ((double)c + 0.5) * cw;
        at_markup_printf(t,
                         "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\"/>\n"
                         "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" fill=\"%s\">%lld"
                         "</text>\n",
                         x, bottom, x, bottom + 4, AT_PLOT_INK, x, bottom + 17, AT_PLOT_INK,
                         (long long)hm->steps[last_in_column(c, cols, hm->ncols)]);
    }
    at_markup_printf(t,
                     "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" fill=\"%s\">step (%zu "
                     "snapshots%s)</text>\n",
                     g.x0 + gw / 2, bottom + 36, AT_PLOT_MUTED, hm->ncols,
                     cols < hm->ncols ? ", the latest of several per column" : "");
    at_svg_close(t);
    return at_markup_take(t, status);
}

/* Alpha over time: the axis and its limits. */
enum { SE_W = 440, SE_H = 220 };
static const at_plot_frame series_area = {.left = 40, .top = 12, .width = 384, .height = 164};
#define SE_MIN 0.0 /* alpha axis limits: values beyond sit on the edge */
#define SE_MAX 20.0

static double clamp_alpha(double a)
{
    return a < SE_MIN ? SE_MIN : a > SE_MAX ? SE_MAX : a;
}

char *at_series_svg(const char *title, const int64_t *steps, const double *alpha, size_t n,
                    int *status)
{
    if (!n || !steps || !alpha)
        return fail(status, AT_ERR_ARG);
    at_plot_frame f = series_area;
    f.x0 = (double)steps[0];
    f.x1 = (double)steps[n - 1];
    if (!(f.x1 > f.x0)) {
        f.x0 -= 1;
        f.x1 += 1;
    }
    double lo = 1.5, hi = AT_ALPHA_RAW_ABOVE + 0.5;
    for (size_t i = 0; i < n; i++)
        if (!isnan(alpha[i])) {
            lo = fmin(lo, clamp_alpha(alpha[i]));
            hi = fmax(hi, clamp_alpha(alpha[i]));
        }
    f.y0 = lo - (hi - lo) * 0.04;
    f.y1 = hi + (hi - lo) * 0.04;
    at_markup *t = at_markup_new(status);
    if (!t)
        return NULL;
    at_svg_open(t, SE_W, SE_H, "alpha over time of ", title ? title : "");
    const double bottom = f.top + f.height;
    at_markup_printf(t,
                     "<rect class=\"band\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                     "fill=\"%s\"/>\n",
                     f.left, at_plot_py(&f, AT_ALPHA_RAW_ABOVE), f.width,
                     at_plot_py(&f, AT_ALPHA_BURNT_BELOW) - at_plot_py(&f, AT_ALPHA_RAW_ABOVE),
                     AT_PLOT_BAND);
    double ticks[16];
    int nt = at_ticks_linear(f.y0, f.y1, 4, ticks, 16);
    at_axis_ticks(t, &f, AT_AXIS_Y, ticks, nt, 0, 0, 11, NULL);
    nt = at_ticks_linear(f.x0, f.x1, 3, ticks, 16);
    at_axis_ticks(t, &f, AT_AXIS_X, ticks, nt, 0, 0, 11, NULL);
    at_markup_printf(t,
                     "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"11\" "
                     "fill=\"%s\">step</text>\n",
                     f.left + f.width / 2, bottom + 31, AT_PLOT_MUTED);
    /* the line, broken at every missing result */
    int open = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(alpha[i])) {
            if (open)
                at_markup_puts(t, "\"/>\n");
            open = 0;
            continue;
        }
        at_markup_printf(t, "%s%.2f,%.2f",
                         open ? " "
                              : "<polyline class=\"series\" fill=\"none\" stroke=\"" AT_PLOT_INK
                                "\" stroke-width=\"1.5\" points=\"",
                         at_plot_px(&f, (double)steps[i]), at_plot_py(&f, clamp_alpha(alpha[i])));
        open = 1;
    }
    if (open)
        at_markup_puts(t, "\"/>\n");
    /* the points in their verdict's colour, when they are few enough to tell apart */
    char color[8];
    for (size_t i = 0; n <= 150 && i < n; i++)
        if (!isnan(alpha[i]))
            at_markup_printf(t,
                             "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.8\" fill=\"%s\" stroke=\"%s\" "
                             "stroke-width=\"0.6\"/>\n",
                             at_plot_px(&f, (double)steps[i]),
                             at_plot_py(&f, clamp_alpha(alpha[i])),
                             at_plot_alpha_color(alpha[i], color), AT_PLOT_INK);
    at_markup_printf(t,
                     "<rect class=\"frame\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                     "fill=\"none\" stroke=\"%s\"/>\n",
                     f.left, f.top, f.width, f.height, AT_PLOT_INK);
    at_svg_close(t);
    return at_markup_take(t, status);
}

/* The colour bar: alpha LG_LO .. LG_HI across LG_W pixels. */
enum { LG_W = 480, LG_X = 20, LG_STEPS = 125 };
#define LG_LO 0.5
#define LG_HI 13.0

static double legend_x(double a)
{
    return LG_X + (a - LG_LO) / (LG_HI - LG_LO) * LG_W;
}

char *at_alpha_legend_svg(int *status)
{
    at_markup *t = at_markup_new(status);
    if (!t)
        return NULL;
    at_svg_open(t, LG_X * 2 + LG_W, 50, "colour scale of alpha", "");
    char color[8];
    const double da = (LG_HI - LG_LO) / LG_STEPS;
    for (int i = 0; i < LG_STEPS; i++) {
        double a = LG_LO + (i + 0.5) * da;
        at_markup_printf(
            t, "<rect x=\"%.2f\" y=\"18\" width=\"%.2f\" height=\"14\" fill=\"%s\"/>\n",
            legend_x(a - da / 2), LG_W / (double)LG_STEPS + 0.3, at_plot_alpha_color(a, color));
    }
    static const struct {
        double lo, hi;
        const char *name;
    } sides[] = {{LG_LO, AT_ALPHA_BURNT_BELOW, "burnt"},
                 {AT_ALPHA_BURNT_BELOW, AT_ALPHA_RAW_ABOVE, "healthy"},
                 {AT_ALPHA_RAW_ABOVE, LG_HI, "raw"}};
    for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++)
        at_markup_printf(
            t, "<text x=\"%.2f\" y=\"13\" text-anchor=\"middle\" fill=\"%s\">%s</text>\n",
            (legend_x(sides[i].lo) + legend_x(sides[i].hi)) / 2, AT_PLOT_INK, sides[i].name);
    static const double ticks[] = {1, AT_ALPHA_BURNT_BELOW, 4, AT_ALPHA_RAW_ABOVE, 8, 10, 12};
    for (size_t i = 0; i < sizeof ticks / sizeof ticks[0]; i++)
        at_markup_printf(t,
                         "<line x1=\"%.2f\" y1=\"18\" x2=\"%.2f\" y2=\"36\" stroke=\"%s\"/>\n"
                         "<text x=\"%.2f\" y=\"47\" text-anchor=\"middle\" fill=\"%s\">%g</text>\n",
                         legend_x(ticks[i]), legend_x(ticks[i]), AT_PLOT_INK, legend_x(ticks[i]),
                         AT_PLOT_INK, ticks[i]);
    at_markup_printf(t,
                     "<rect x=\"%d\" y=\"18\" width=\"%d\" height=\"14\" fill=\"none\" "
                     "stroke=\"%s\"/>\n",
                     LG_X, LG_W, AT_PLOT_MUTED);
    at_svg_close(t);
    return at_markup_take(t, status);
}
