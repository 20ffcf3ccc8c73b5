/* SPDX-License-Identifier: Apache-2.0 */
/* layout.h -- where each part of the monitor's screen goes, as a pure function of the
 * terminal size and a few facts about the data. Tested without a terminal.
 *
 * Main screen, top to bottom: the header (run; the run's verdict; the monitor's state; the
 * scalars when there are at least AT_SCALAR_MIN_ROWS rows), a title row, the heatmap rows
 * (layer names | cells | current value + trend), the step axis, the colour bar, and the key
 * bar. The warnings and events panel sits at the right when the terminal is at least
 * AT_WIDE_COLS wide, taking every column the heatmap does not need (at least AT_WARN_COLS),
 * else in AT_NARROW_WARN_ROWS rows above the key bar.
 *
 * The block view (blocks.h) puts a column header row under the title row, then the table's
 * rows (row labels in `names`, cells in `heat`; no axis, no value column), the colour bar and
 * the key bar. The panel sits at the right when the terminal is at least AT_WIDE_COLS wide and
 * the table keeps AT_BLOCKS_SPARK_SIDE columns of history beside it (the table taking what it
 * can use, the panel the rest); else below it when all the table's rows still fit; else
 * nowhere.
 */
#ifndef ALPHATOP_LAYOUT_H
#define ALPHATOP_LAYOUT_H

enum {
    AT_MIN_ROWS = 12, /* below this the view only says the terminal is too small */
    AT_MIN_COLS = 50,
    AT_WIDE_COLS = 110,      /* from here the warnings panel is a right-hand column */
    AT_WARN_COLS = 40,       /* its least width */
    AT_MIN_HEAT_COLS = 20,   /* the heatmap's least width beside it */
    AT_SIDE_COLS = 12,       /* current value + trend column */
    AT_HEADER_ROWS = 4,      /* run, verdict, monitor, scalars */
    AT_SCALAR_MIN_ROWS = 20, /* below this the header has no scalar row */
    AT_NAME_MIN_COLS = 12,   /* the name column may always grow to this */
    AT_NARROW_WARN_ROWS = 4
};

typedef struct at_rect {
    int y, x, h, w;
} at_rect;

/* Facts about the data the layout depends on. */
typedef struct at_layout_in {
    int nlayers;  /* layers to show (after the filter) */
    int name_len; /* longest layer name as shown, in columns */
    int pair_len; /* longest label of two layers sharing a row (at_pair_label) */
    int half_ok;  /* 1: UTF-8 half blocks in colour available (two layers per row when needed) */
    int nsnap;    /* snapshot columns to show; 0: unknown (the heatmap takes what it can) */
    int blocks;   /* 1: the block view; nlayers is then its rows, name_len its label width */
    int blocks_w_min; /* the block table's width with AT_BLOCKS_SPARK_SIDE columns of history */
    int blocks_w_max; /* its width with the most history (at_blocks_width) */
} at_layout_in;

typedef struct at_layout {
    int rows, cols;
    int too_small; /* 1: nothing fits but the verdict row; the other rects are empty */
    at_rect header, titles, names, heat, side, axis, colorbar, warnings, status;
    at_rect verdict;    /* the run's verdict: row 1, or row 0 of a too-small screen */
    at_rect body;       /* everything between header and status (detail, help, run picker) */
    int blocks;         /* 1: the block view's layout */
    at_rect colhead;    /* the block view's column header row (empty otherwise) */
    int layers_per_row; /* 1, or 2 with half blocks */
    int help_rows;      /* lines of the help text at this width (at_render_layout fills it) */
} at_layout;

/* Computes the layout of a rows x cols screen into *out. Pure. */
void at_layout_compute(at_layout *out, int rows, int cols, const at_layout_in *in);

/* Heatmap columns: which snapshots each screen column shows. */
typedef struct at_colspan {
    int c0, c1; /* snapshot columns [c0, c1) */
} at_colspan;

/* Maps snapshots [0, n) to at most width screen columns, into spans[0..width-1]; returns the
 * number of screen columns used. If n <= width, one snapshot per column. Otherwise exactly
 * width columns: the newest r >= width/2 snapshots get one column each (r the least that
 * fills the width), and the m = n - r older ones go into buckets of b = ceil((n - width/2) /
 * (width - width/2)) snapshots aligned at multiples of b (the last bucket may be shorter;
 * oldest at the left), so that the newest snapshot stays in the last column and bucket
 * boundaries do not move as snapshots arrive until b grows. Pure. */
int at_layout_columns(int n, int width, at_colspan *spans);

#endif
