/* SPDX-License-Identifier: Apache-2.0 */
/* axis.h -- (internal to the plots) tick positions, tick labels and the SVG document's frame. */
#ifndef ALPHATOP_PLOT_AXIS_H
#define ALPHATOP_PLOT_AXIS_H

#include <stddef.h>

#include "plot.h"
#include "markup.h"

/* The font every picture names: common sans-serif faces, then the generic family (nothing is
 * downloaded; the reader's own fonts draw the text). */
#define AT_PLOT_FONT "DejaVu Sans, Helvetica, Arial, sans-serif"

/* At most max ticks of a linear axis over [lo, hi], about want of them at 1, 2 or 5 times a
 * power of ten, ascending in out. Returns the count. */
int at_ticks_linear(double lo, double hi, int want, double *out, int max);

/* At most max ticks of a log axis over log10 values [lo, hi], in log10 units: the decades
 * (every k-th one when there are too many), then 2 and 5 times them when fewer than three
 * decades fall inside, then linear ticks on the values for a range too short for those.
 * Returns the count. */
int at_ticks_log(double lo, double hi, double *out, int max);

/* Which axis of a frame ticks are drawn on: below it (x) or left of it (y). */
typedef enum at_axis { AT_AXIS_X, AT_AXIS_Y } at_axis;

/* Draws n ticks of axis on frame f: at each position (data units) a tick mark, with grid set a
 * grid line across the frame, and a label at font size px (class cls, or none for NULL); on a
 * log axis (log set) positions are log10 values and labels the values 10^position. */
void at_axis_ticks(at_markup *t, const at_plot_frame *f, at_axis axis, const double *ticks, int n,
                   int log, int grid, int px, const char *cls);

/* A short label of v in buf: "0", "0.05", "1.5", "12000", "2e-6", "1.2e7". */
void at_tick_label(char *buf, size_t cap, double v);

/* Starts an SVG document of w x h pixels: the root element (the font, a text size of 12), the
 * title what + name in full (name escaped; for screen readers and tooltips) and a white
 * background. */
void at_svg_open(at_markup *t, int w, int h, const char *what, const char *name);

/* Ends the document started by at_svg_open. */
void at_svg_close(at_markup *t);

/* An approximate width in pixels of n characters of text at size px (layout of labels that must
 * not overlap; no font metrics are at hand). */
double at_plot_text_width(size_t n, double px);

#endif
