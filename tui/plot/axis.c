/* SPDX-License-Identifier: Apache-2.0 */
/* axis.c -- ticks, tick labels and the SVG document's frame, shared by the pictures. */
#include "axis.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "palette.h"
#include "plot.h"

double at_plot_px(const at_plot_frame *f, double x)
{
    return f->left + (x - f->x0) / (f->x1 - f->x0) * f->width;
}

double at_plot_py(const at_plot_frame *f, double y)
{
    return f->top + (f->y1 - y) / (f->y1 - f->y0) * f->height;
}

int at_ticks_linear(double lo, double hi, int want, double *out, int max)
{
    if (!(hi > lo) || want < 1)
        return 0;
    double raw = (hi - lo) / want, p = pow(10.0, floor(log10(raw))), step = 10 * p;
    static const double mult[] = {1, 2, 5};
    for (int i = 0; i < 3; i++)
        if (mult[i] * p >= raw) {
            step = mult[i] * p;
            break;
        }
    int n = 0;
    /* multiples of step, so a tick is exactly k * step and not a sum of rounded steps */
    for (double k = ceil(lo / step - 1e-9); n < max && k * step <= hi + step * 1e-9; k++)
        out[n++] = k * step == 0 ? 0 : k * step;
    return n;
}

int at_ticks_log(double lo, double hi, double *out, int max)
{
    if (!(hi > lo) || max < 1)
        return 0;
    const double eps = 1e-9;
    int d0 = (int)ceil(lo - eps), d1 = (int)floor(hi + eps);
    int n = 0;
    if (d1 - d0 + 1 >= 3) {
        int every = (d1 - d0) / max + 1;
        for (int d = d0; d <= d1 && n < max; d++)
            if ((d - d0) % every == 0)
                out[n++] = d;
        return n;
    }
    static const double mult[] = {1, 2, 5};
    for (int d = (int)floor(lo) - 1; d <= (int)ceil(hi) && n < max; d++)
        for (int i = 0; i < 3 && n < max; i++) {
            double l = d + log10(mult[i]);
            if (l >= lo - eps && l <= hi + eps)
                out[n++] = l;
        }
    if (n >= 2)
        return n;
    double vals[16];
    int m = at_ticks_linear(pow(10.0, lo), pow(10.0, hi), 4, vals, max < 16 ? max : 16);
    for (int i = 0; i < m; i++)
        out[i] = log10(vals[i]);
    return m;
}

void at_tick_label(char *buf, size_t cap, double v)
{
    double a = fabs(v);
    if (a == 0) {
        snprintf(buf, cap, "0");
    } else if (a >= 1e-3 && a < 1e5) {
        snprintf(buf, cap, "%.4g", v);
    } else {
        int e = (int)floor(log10(a));
        double m = v / pow(10.0, e);
        if (fabs(m) >= 9.9995) { /* rounding carried into the next decade */
            m /= 10;
            e++;
        }
        snprintf(buf, cap, "%.3ge%d", m, e);
    }
}

void at_axis_ticks(at_markup *t, const at_plot_frame *f, at_axis axis, const double *ticks, int n,
                   int log, int grid, int px, const char *cls)
{
    const double bottom = f->top + f->height, right = f->left + f->width;
    char lab[32], klass[48] = "";
    if (cls)
        snprintf(klass, sizeof klass, "class=\"%s\" ", cls);
    for (int i = 0; i < n; i++) {
        at_tick_label(lab, sizeof lab, log ? pow(10.0, ticks[i]) : ticks[i]);
        if (axis == AT_AXIS_X) {
            double x = at_plot_px(f, ticks[i]);
            if (grid)
                at_markup_printf(t,
                                 "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
                                 "stroke=\"%s\"/>\n",
                                 x, f->top, x, bottom, AT_PLOT_GRID);
            at_markup_printf(
                t,
                "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\"/>\n"
                "<text %sx=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"%d\" "
                "fill=\"%s\">%s</text>\n",
                x, bottom, x, bottom + 5, AT_PLOT_INK, klass, x, bottom + 18, px, AT_PLOT_INK, lab);
        } else {
            double y = at_plot_py(f, ticks[i]);
            if (grid)
                at_markup_printf(t,
                                 "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
                                 "stroke=\"%s\"/>\n",
                                 f->left, y, right, y, AT_PLOT_GRID);
            at_markup_printf(
                t,
                "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\"/>\n"
                "<text %sx=\"%.2f\" y=\"%.2f\" text-anchor=\"end\" font-size=\"%d\" "
                "fill=\"%s\">%s</text>\n",
                f->left - 5, y, f->left, y, AT_PLOT_INK, klass, f->left - 8, y + 4, px, AT_PLOT_INK,
                lab);
        }
    }
}

void at_svg_open(at_markup *t, int w, int h, const char *what, const char *name)
{
    at_markup_printf(t,
                     "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
                     "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"%s\" font-size=\"12\" "
                     "role=\"img\">\n<title>",
                     w, h, w, h, AT_PLOT_FONT);
    at_markup_puts(t, what);
    at_markup_escape(t, name, 0);
    at_markup_printf(t, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", w, h);
}

void at_svg_close(at_markup *t)
{
    at_markup_puts(t, "</svg>\n");
}

double at_plot_text_width(size_t n, double px)
{
    return (double)n * px * 0.6;
}
