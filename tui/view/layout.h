/* layout.h -- where each part of the monitor's screen goes, as a pure function of the
 * terminal size and a few facts about the data. Tested without a terminal.
 *
 * Main screen, top to bottom: a 3-row header (run, monitor state, scalars), a title row,
 * the heatmap rows (layer names | cells | current value + trend), the step axis, the colour
 * bar, and a key-hint status row. The warnings panel sits at the right when the terminal is
 * at least AT_WIDE_COLS wide, else in a few rows above the status row.
 */
#ifndef ALPHATOP_LAYOUT_H
#define ALPHATOP_LAYOUT_H

enum {
    AT_MIN_ROWS = 12, /* below this the view only says the terminal is too small */
    AT_MIN_COLS = 50,
    AT_WIDE_COLS = 110, /* from here the warnings panel is a right-hand column */
    AT_WARN_COLS = 36,  /* its width */
    AT_SIDE_COLS = 12,  /* current value + trend column */
    AT_HEADER_ROWS = 3,
    AT_NARROW_WARN_ROWS = 4
};

typedef struct at_rect {
    int y, x, h, w;
} at_rect;

/* Facts about the data the layout depends on. */
typedef struct at_layout_in {
    int nlayers;  /* layers to show (after the filter) */
    int name_len; /* longest layer name, in columns */
    int pair_len; /* longest label of two layers sharing a row (at_pair_label) */
    int half_ok;  /* 1: UTF-8 half blocks available (two layers per row when needed) */
} at_layout_in;

typedef struct at_layout {
    int rows, cols;
    int too_small; /* 1: nothing fits; the rects are all empty */
    at_rect header, titles, names, heat, side, axis, colorbar, warnings, status;
    at_rect body;       /* everything between header and status (detail, help, run picker) */
    int layers_per_row; /* 1, or 2 with half blocks */
} at_layout;

/* Computes the layout of a rows x cols screen into *out. Pure. */
void at_layout_compute(at_layout *out, int rows, int cols, const at_layout_in *in);

/* Heatmap columns: which snapshots each screen column shows. */
typedef struct at_colspan {
    int c0, c1; /* snapshot columns [c0, c1) */
} at_colspan;

/* Maps snapshots [0, n) to at most width screen columns, into spans[0..width-1]; returns the
 * number of screen columns used. If n <= width, one snapshot per column. Otherwise the most
 * recent width/2 snapshots get one column each, and the m older ones go into buckets of
 * b = ceil(m / k) snapshots aligned at multiples of b (k = the remaining columns; the last
 * bucket may be shorter; oldest at the left), so that bucket boundaries do not move as
 * snapshots arrive until b grows. Pure. */
int at_layout_columns(int n, int width, at_colspan *spans);

#endif
