/* SPDX-License-Identifier: Apache-2.0 */
/* plot.h -- the SVG pictures: a layer's ESD with its power-law fit, a run's alpha heatmap
 * (layers x snapshots), one layer's alpha over time, and alpha's colour bar.
 *
 * Each is a pure function from numbers to a self-contained SVG document (no scripts, no
 * external fonts, styles or links; the same input gives the same bytes), valid both as a file
 * and inline in HTML. Names are untrusted (they come from checkpoint files and run logs): they
 * are escaped (markup.h) and elided in the middle when long, with the full name in a <title>.
 * Drawn elements carry a class (bar, fit, xmin, mp-edge, frame, cell, series) for tests.
 */
#ifndef ALPHATOP_PLOT_PLOT_H
#define ALPHATOP_PLOT_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/htsr.h"
#include "esd.h"

/* A plot area in SVG user units (pixels, y down) and the data values at its edges; log axes
 * hold log10 values. */
typedef struct at_plot_frame {
    double left, top, width, height;
    double x0, x1; /* data at the left and right edges */
    double y0, y1; /* data at the bottom and top edges */
} at_plot_frame;

/* Pixel column of data value x, and pixel row of data value y, in frame f. */
double at_plot_px(const at_plot_frame *f, double x);
double at_plot_py(const at_plot_frame *f, double y);

/* One layer's spectrum and its fit. Every pointer is borrowed for the call. */
typedef struct at_esd_plot {
    const char *title;    /* the layer's name */
    const char *subtitle; /* e.g. file, shape, step; NULL: none */
    const double *evals;  /* n eigenvalues, any order */
    size_t n;
    at_fit_status status;  /* the power-law fit (docs/metrics.md section 3) */
    double alpha, xmin, D; /* D: NAN when unknown (the legend then leaves it out) */
    double mp_edge;        /* the Marchenko-Pastur bulk edge (at_mp_fit's bulk_max); NAN: unknown */
} at_esd_plot;

/* The ESD's frame: log10 eigenvalue across (the binned range, widened to show xmin and the MP
 * edge), log10 density up (every bar and the whole fitted line inside). h is p's histogram
 * (at_esd_hist_make over p->evals, at_esd_nbins bins). Also says whether the fitted line is
 * drawn (*has_fit: a successful fit with finite alpha > 1 and eigenvalues at or above xmin), and
 * its ends: from (xmin, p(xmin)) to (lambda_max, p(lambda_max)) with the fitted density
 * p(x) = (alpha - 1) / xmin (x / xmin)^-alpha scaled by the tail's share of the binned
 * eigenvalues, in data units (log10 x, log10 p) in fit[0..3] = {x1, y1, x2, y2}. */
void at_esd_frame(const at_esd_plot *p, const at_esd_hist *h, at_plot_frame *f, int *has_fit,
                  double fit[4]);

/* The ESD of p as an SVG document: a log-log histogram of the eigenvalue density (grey bars,
 * the fitted tail darker), the fitted power law (vermilion line), xmin (dashed vermilion), the MP
 * bulk edge when known (dotted blue), axes with decade ticks, and a legend with alpha, its
 * verdict colour (palette.h), D and xmin. A spectrum with nothing above AT_ESD_MIN_EVAL gives
 * a document that says so. Caller owns return value (free); NULL with *status (may be NULL) set
 * on error: AT_ERR_ARG (p NULL, or evals NULL with n > 0), AT_ERR_NOMEM. */
char *at_esd_svg(const at_esd_plot *p, int *status);

/* Alpha of layers (rows) over snapshots (columns). Borrowed. */
typedef struct at_heatmap {
    size_t nrows, ncols;
    const char *const *names; /* nrows row labels */
    const int64_t *steps;     /* ncols snapshot steps, ascending */
    const double *alpha;      /* nrows x ncols, row-major; NAN: no result */
} at_heatmap;

/* Columns a heatmap draws at most; more snapshots share columns, each column showing the latest
 * result among its snapshots. */
enum { AT_HEATMAP_MAX_COLS = 240 };

/* The heatmap as an SVG document: a cell per layer and snapshot coloured by alpha
 * (palette.h; white: no result), layer names on the left, steps below. Caller owns return
 * value (free); NULL with *status (may be NULL) set: AT_ERR_ARG (hm NULL or empty, or a NULL
 * array), AT_ERR_NOMEM. */
char *at_heatmap_svg(const at_heatmap *hm, int *status);

/* One layer's alpha over time as an SVG document: the healthy band shaded, a line through the
 * results (broken where a result is missing: NAN), each point in its verdict's colour; values
 * beyond the axis (0 .. 20) sit on its edge. title: the layer's name (in the document's <title>).
 * Caller owns return value (free); NULL with *status (may be NULL) set: AT_ERR_ARG (n == 0 or
 * a NULL array), AT_ERR_NOMEM. */
char *at_series_svg(const char *title, const int64_t *steps, const double *alpha, size_t n,
                    int *status);

/* Alpha's colour bar (0.5 .. 13, the band's edges marked, burnt / healthy / raw named) as an
 * SVG document. Caller owns return value (free); NULL with *status set on AT_ERR_NOMEM. */
char *at_alpha_legend_svg(int *status);

#endif
