/* SPDX-License-Identifier: Apache-2.0 */
/* esd_svg.c -- a layer's eigenvalue density on log-log axes with its fitted power law. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "axis.h"
#include "palette.h"
#include "plot.h"

/* The document and its plot area: a header of title, subtitle and two legend rows above it,
 * tick labels and the axis titles below and left of it. */
enum { W = 720, H = 448, LEGEND_Y = 64, LEGEND_DY = 18 };
static const at_plot_frame area = {.left = 76, .top = 96, .width = 616, .height = 290};

void at_esd_frame(const at_esd_plot *p, const at_esd_hist *h, at_plot_frame *f, int *has_fit,
                  double fit[4])
{
    *f = area;
    double lmax = -INFINITY;
    size_t tail = 0;
    for (size_t i = 0; i < p->n; i++)
        if (at_esd_eligible(p->evals[i])) {
            lmax = fmax(lmax, p->evals[i]);
            tail += p->evals[i] >= p->xmin;
        }
    *has_fit = p->status == AT_FIT_SUCCESS && isfinite(p->alpha) && p->alpha > 1 &&
               isfinite(p->xmin) && p->xmin > 0 && tail > 0;
    f->x0 = h->lo;
    f->x1 = h->hi;
    if (*has_fit) {
        f->x0 = fmin(f->x0, log10(p->xmin));
        f->x1 = fmax(f->x1, log10(p->xmin));
    }
    if (isfinite(p->mp_edge) && p->mp_edge > 0) {
        f->x0 = fmin(f->x0, log10(p->mp_edge));
        f->x1 = fmax(f->x1, log10(p->mp_edge));
    }
    double pad = (f->x1 - f->x0) * 0.03;
    f->x0 -= pad;
    f->x1 += pad;
    f->y0 = INFINITY;
    f->y1 = -INFINITY;
    for (int k = 0; k < h->nbins; k++)
        if (h->count[k]) {
            f->y0 = fmin(f->y0, log10(h->density[k]));
            f->y1 = fmax(f->y1, log10(h->density[k]));
        }
    if (*has_fit) {
        fit[0] = log10(p->xmin);
        fit[1] = log10((p->alpha - 1) / p->xmin * (double)tail / (double)h->n);
        fit[2] = log10(lmax);
        fit[3] = fit[1] - p->alpha * (fit[2] - fit[0]);
        f->y0 = fmin(f->y0, fmin(fit[1], fit[3]));
        f->y1 = fmax(f->y1, fmax(fit[1], fit[3]));
    }
    if (!(f->y1 > f->y0)) {
        f->y0 -= 0.5;
        f->y1 += 0.5;
    }
    /* room below the lowest bar, so it still shows, and a little above the highest */
    double range = f->y1 - f->y0;
    f->y0 -= range * 0.08;
    f->y1 += range * 0.05;
}

/* A legend entry's text at (*x, y), after its sample; moves *x past it. */
static void legend_text(at_markup *t, double *x, double y, const char *text)
{
    at_markup_printf(t, "<text x=\"%.2f\" y=\"%.2f\">", *x, y);
    at_markup_escape(t, text, 0);
    at_markup_puts(t, "</text>\n");
    *x += at_plot_text_width(strlen(text), 12) + 22;
}

/* A legend entry at (*x, y): a filled square of colour fill, then the text. Moves *x past it. */
static void legend_swatch(at_markup *t, double *x, double y, const char *fill, const char *text)
{
    at_markup_printf(t,
                     "<rect x=\"%.2f\" y=\"%.2f\" width=\"12\" height=\"12\" fill=\"%s\" "
                     "stroke=\"%s\"/>\n",
                     *x, y - 10, fill, AT_PLOT_INK);
    *x += 18;
    legend_text(t, x, y, text);
}

/* A legend entry at (*x, y): a sample of the line (dash: its dash array, NULL: solid), then the
 * text. Moves *x past it. */
static void legend_line(at_markup *t, double *x, double y, const char *color, const char *dash,
                        const char *text)
{
    at_markup_printf(t,
                     "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                     "stroke-width=\"2\"%s%s%s/>\n",
                     *x, y - 4, *x + 22, y - 4, color, dash ? " stroke-dasharray=\"" : "",
                     dash ? dash : "", dash ? "\"" : "");
    *x += 28;
    legend_text(t, x, y, text);
}

static void header(at_markup *t, const at_esd_plot *p)
{
    at_markup_printf(t,
                     "<text x=\"16\" y=\"24\" font-size=\"15\" font-weight=\"bold\" fill=\"%s\">",
                     AT_PLOT_INK);
    at_markup_escape(t, p->title ? p->title : "", 80);
    at_markup_puts(t, "</text>\n");
    if (p->subtitle) {
        at_markup_printf(t, "<text x=\"16\" y=\"43\" fill=\"%s\">", AT_PLOT_MUTED);
        at_markup_escape(t, p->subtitle, 110);
        at_markup_puts(t, "</text>\n");
    }
}

/* The grid, tick marks and labels of both axes, and the axis titles. */
static void axes(at_markup *t, const at_plot_frame *f)
{
    double ticks[32], bottom = f->top + f->height;
    int n = at_ticks_log(f->x0, f->x1, ticks, 12);
    at_axis_ticks(t, f, AT_AXIS_X, ticks, n, 1, 1, 12, "xtick");
    n = at_ticks_log(f->y0, f->y1, ticks, 10);
    at_axis_ticks(t, f, AT_AXIS_Y, ticks, n, 1, 1, 12, "ytick");
    at_markup_printf(t,
                     "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" fill=\"%s\">eigenvalue "
                     "\xce\xbb (log scale)</text>\n"
                     "<text x=\"18\" y=\"%.2f\" text-anchor=\"middle\" fill=\"%s\" "
                     "transform=\"rotate(-90 18 %.2f)\">density of \xce\xbb (log scale)</text>\n",
                     f->left + f->width / 2, bottom + 44, AT_PLOT_INK, f->top + f->height / 2,
                     AT_PLOT_INK, f->top + f->height / 2);
}

/* A vertical marker line across the plot at log10 value lx. */
static void marker(at_markup *t, const at_plot_frame *f, const char *cls, double lx,
                   const char *color, const char *dash)
{
    double x = at_plot_px(f, lx);
    at_markup_printf(t,
                     "<line class=\"%s\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
                     "stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"%s\"/>\n",
                     cls, x, f->top, x, f->top + f->height, color, dash);
}

static void plot(at_markup *t, const at_esd_plot *p, const at_esd_hist *h)
{
    at_plot_frame f;
    int has_fit;
    double fit[4];
    at_esd_frame(p, h, &f, &has_fit, fit);
    axes(t, &f);
    const double bottom = f.top + f.height;
    at_markup_puts(t, "<g class=\"bars\" stroke=\"#ffffff\" stroke-width=\"0.5\">\n");
    for (int k = 0; k < h->nbins; k++) {
        if (!h->count[k])
            continue;
        double xa = at_plot_px(&f, at_esd_log_edge(h, k));
        double xb = at_plot_px(&f, at_esd_log_edge(h, k + 1));
        double y = at_plot_py(&f, log10(h->density[k]));
        /* a bin is in the tail when its (geometric) centre is */
        double centre = (at_esd_log_edge(h, k) + at_esd_log_edge(h, k + 1)) / 2;
        int in_tail = has_fit && centre >= log10(p->xmin);
        at_markup_printf(t,
                         "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                         "fill=\"%s\"/>\n",
                         xa, y, xb - xa, bottom - y, in_tail ? AT_PLOT_TAIL : AT_PLOT_BULK);
    }
    at_markup_puts(t, "</g>\n");
    int has_mp = isfinite(p->mp_edge) && p->mp_edge > 0;
    if (has_mp)
        marker(t, &f, "mp-edge", log10(p->mp_edge), AT_PLOT_MP, "2 3");
    if (has_fit) {
        marker(t, &f, "xmin", log10(p->xmin), AT_PLOT_FIT, "6 4");
        at_markup_printf(t,
                         "<line class=\"fit\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
                         "stroke=\"%s\" stroke-width=\"2.5\" stroke-linecap=\"round\"/>\n",
                         at_plot_px(&f, fit[0]), at_plot_py(&f, fit[1]), at_plot_px(&f, fit[2]),
                         at_plot_py(&f, fit[3]), AT_PLOT_FIT);
    }
    at_markup_printf(t,
                     "<rect class=\"frame\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                     "fill=\"none\" stroke=\"%s\"/>\n",
                     f.left, f.top, f.width, f.height, AT_PLOT_INK);

    /* the legend: what alpha says, then what each line is */
    char text[160], color[8];
    double x = 16;
    size_t tail = 0;
    for (size_t i = 0; i < p->n; i++)
        tail += at_esd_eligible(p->evals[i]) && p->evals[i] >= p->xmin;
    if (p->status == AT_FIT_SUCCESS && isfinite(p->alpha)) {
        snprintf(text, sizeof text, "\xce\xb1 = %.3f  %s", p->alpha, at_plot_band_name(p->alpha));
        legend_swatch(t, &x, LEGEND_Y, at_plot_alpha_color(p->alpha, color), text);
    } else {
        legend_swatch(t, &x, LEGEND_Y, AT_PLOT_MISSING, "no power-law fit");
    }
    if (has_fit) {
        if (isfinite(p->D))
            snprintf(text, sizeof text, "power law, KS distance D = %.4f", p->D);
        else
            snprintf(text, sizeof text, "power law");
        legend_line(t, &x, LEGEND_Y, AT_PLOT_FIT, NULL, text);
    }
    x = 16;
    if (has_fit) {
        snprintf(text, sizeof text, "xmin = %.4g (%zu of %zu eigenvalues at or above)", p->xmin,
                 tail, h->n);
        legend_line(t, &x, LEGEND_Y + LEGEND_DY, AT_PLOT_FIT, "6 4", text);
    }
    if (has_mp) {
        snprintf(text, sizeof text, "MP bulk edge = %.4g", p->mp_edge);
        legend_line(t, &x, LEGEND_Y + LEGEND_DY, AT_PLOT_MP, "2 3", text);
    }
}

char *at_esd_svg(const at_esd_plot *p, int *status)
{
    if (!p || (p->n && !p->evals)) {
        if (status)
            *status = AT_ERR_ARG;
        return NULL;
    }
    at_markup *t = at_markup_new(status);
    if (!t)
        return NULL;
    at_svg_open(t, W, H, "Eigenvalue spectrum (ESD) of ", p->title ? p->title : "");
    header(t, p);
    at_esd_hist h;
    if (at_esd_hist_make(p->evals, p->n, 0, &h) == AT_OK)
        plot(t, p, &h);
    else
        at_markup_printf(t,
                         "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\">no "
                         "eigenvalue above %g to plot</text>\n",
                         W / 2, H / 2, AT_PLOT_MUTED, AT_ESD_MIN_EVAL);
    at_svg_close(t);
    return at_markup_take(t, status);
}
