/* SPDX-License-Identifier: Apache-2.0 */
/* layout.c -- the screen layout, a pure function of size and data facts. */
#include "layout.h"

#include <string.h>

static at_rect rect(int y, int x, int h, int w)
{
    at_rect r = {y, x, h > 0 ? h : 0, w > 0 ? w : 0};
    return r;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The block view below a header of head rows. */
static void blocks_layout(at_layout *out, int head, const at_layout_in *in)
{
    int rows = out->rows, cols = out->cols;
    int top = head + 2;                         /* title, column header */
    int avail = rows - top - 2, body_h = avail; /* colour bar, key bar */
    int grid_w = cols;
    int label_w = clampi(in->name_len, 1, cols / 4 > 1 ? cols / 4 : 1);
    int need = in->nlayers > 1 ? in->nlayers : 1;
    int wide = cols >= AT_WIDE_COLS && cols - 1 - AT_WARN_COLS >= in->blocks_w_min;
    /* the colour bar follows the table; the panel below it takes every row left */
    if (wide) {
        grid_w = clampi(in->blocks_w_max, in->blocks_w_min, cols - 1 - AT_WARN_COLS);
        body_h = need < avail ? need : avail;
        out->warnings = rect(head, grid_w + 1, rows - 1 - head, cols - grid_w - 1);
    } else if (avail - AT_NARROW_WARN_ROWS >= need) {
        body_h = need;
        out->warnings = rect(top + body_h + 1, 0, avail - body_h, cols);
    }
    out->blocks = 1;
    out->titles = rect(head, 0, 1, grid_w);
    out->colhead = rect(head + 1, 0, 1, grid_w);
    out->names = rect(top, 0, body_h, label_w);
    out->heat = rect(top, label_w + 1, body_h, grid_w - label_w - 1);
    out->colorbar = rect(top + body_h, 0, 1, grid_w);
}

void at_layout_compute(at_layout *out, int rows, int cols, const at_layout_in *in)
{
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->cols = cols;
    out->layers_per_row = 1;
    if (rows < AT_MIN_ROWS || cols < AT_MIN_COLS) {
        out->too_small = 1;
        out->verdict = rect(0, 0, rows > 0, cols);
        return;
    }
    int wide = cols >= AT_WIDE_COLS;
    int head = rows >= AT_SCALAR_MIN_ROWS ? AT_HEADER_ROWS : AT_HEADER_ROWS - 1;

    out->header = rect(0, 0, head, cols);
    out->verdict = rect(1, 0, 1, cols);
    out->status = rect(rows - 1, 0, 1, cols);
    out->body = rect(head, 0, rows - 1 - head, cols);
    if (in->blocks) {
        blocks_layout(out, head, in);
        return;
    }

    int warn_h = wide ? 0 : AT_NARROW_WARN_ROWS;
    /* header, title row, axis, colour bar, status */
    int heat_h = rows - head - 1 - 2 - 1 - warn_h;
    if (!wide && heat_h < 3) {
        warn_h = 0;
        heat_h = rows - head - 4;
    }
    if (in->half_ok && in->nlayers > heat_h)
        out->layers_per_row = 2;
    int len = out->layers_per_row == 2 ? in->pair_len : in->name_len;
    int name_max = cols / 4 > AT_NAME_MIN_COLS ? cols / 4 : AT_NAME_MIN_COLS;
    int name_w = clampi(len, 6, name_max);
    int fixed = name_w + 1 + 1 + AT_SIDE_COLS; /* names | heat | side */
    int heat_w = cols - fixed;
    int main_w = cols;
    if (wide) {
        heat_w = cols - fixed - 1 - AT_WARN_COLS;
        /* the panel takes what the snapshots do not need */
        if (in->nsnap > 0 && in->nsnap < heat_w)
            heat_w = in->nsnap > AT_MIN_HEAT_COLS ? in->nsnap : AT_MIN_HEAT_COLS;
        main_w = fixed + heat_w;
    }
    int top = head + 1;
    out->titles = rect(head, 0, 1, main_w);
    out->names = rect(top, 0, heat_h, name_w);
    out->heat = rect(top, name_w + 1, heat_h, heat_w);
    out->side = rect(top, name_w + 1 + heat_w + 1, heat_h, AT_SIDE_COLS);
    out->axis = rect(top + heat_h, name_w + 1, 1, heat_w);
    out->colorbar = rect(top + heat_h + 1, 0, 1, main_w);
    if (wide)
        out->warnings = rect(head, main_w + 1, rows - 1 - head, cols - main_w - 1);
    else
        out->warnings = rect(top + heat_h + 2, 0, warn_h, cols);
}

int at_layout_columns(int n, int width, at_colspan *spans)
{
    if (n <= 0 || width <= 0)
        return 0;
    if (n <= width) {
        for (int i = 0; i < n; i++) {
            spans[i].c0 = i;
            spans[i].c1 = i + 1;
        }
        return n;
    }
    int half = width / 2;
    /* aligned buckets of b snapshots: boundaries stay put as snapshots arrive (until b grows),
     * so summaries of full buckets can be cached */
    int b = (n - half + (width - half) - 1) / (width - half);
    /* buckets + singles = ceil((n - r) / b) + r grows by 0 or 1 with r, is <= width at r = half
     * and >= width at r = width: the least r that fills the width exactly keeps the newest
     * snapshot in the last column */
    int r = half;
    while (r < width && (n - r + b - 1) / b + r < width)
        r++;
    int m = n - r, nb = (m + b - 1) / b, used = 0;
    for (int i = 0; i < nb; i++, used++) {
        spans[used].c0 = i * b;
        spans[used].c1 = (i + 1) * b < m ? (i + 1) * b : m;
    }
    for (int i = 0; i < r && used < width; i++, used++) {
        spans[used].c0 = m + i;
        spans[used].c1 = m + i + 1;
    }
    return used;
}
