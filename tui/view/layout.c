/* layout.c -- the screen layout, a pure function of size and data facts. */
#include "layout.h"

#include <string.h>

static at_rect rect(int y, int x, int h, int w)
{
    at_rect r = {y, x, h > 0 ? h : 0, w > 0 ? w : 0};
    return r;
}

void at_layout_compute(at_layout *out, int rows, int cols, const at_layout_in *in)
{
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->cols = cols;
    out->layers_per_row = 1;
    if (rows < AT_MIN_ROWS || cols < AT_MIN_COLS) {
        out->too_small = 1;
        return;
    }
    int wide = cols >= AT_WIDE_COLS;

    out->header = rect(0, 0, AT_HEADER_ROWS, cols);
    out->status = rect(rows - 1, 0, 1, cols);
    out->body = rect(AT_HEADER_ROWS, 0, rows - 1 - AT_HEADER_ROWS, cols);

    int main_w = wide ? cols - AT_WARN_COLS - 1 : cols;
    int warn_h = wide ? 0 : AT_NARROW_WARN_ROWS;
    /* header, title row, axis, colour bar, status */
    int heat_h = rows - AT_HEADER_ROWS - 1 - 2 - 1 - warn_h;
    if (!wide && heat_h < 3) {
        warn_h = 0;
        heat_h = rows - AT_HEADER_ROWS - 4;
    }
    if (in->half_ok && in->nlayers > heat_h)
        out->layers_per_row = 2;
    int len = out->layers_per_row == 2 ? in->pair_len : in->name_len;
    int name_w = len < 6 ? 6 : len > 24 ? 24 : len;
    if (name_w > cols / 4)
        name_w = cols / 4;
    int heat_w = main_w - name_w - 1 - AT_SIDE_COLS - 1;
    int top = AT_HEADER_ROWS + 1;
    out->titles = rect(AT_HEADER_ROWS, 0, 1, main_w);
    out->names = rect(top, 0, heat_h, name_w);
    out->heat = rect(top, name_w + 1, heat_h, heat_w);
    out->side = rect(top, name_w + 1 + heat_w + 1, heat_h, AT_SIDE_COLS);
    out->axis = rect(top + heat_h, name_w + 1, 1, heat_w);
    out->colorbar = rect(top + heat_h + 1, 0, 1, main_w);
    if (wide)
        out->warnings = rect(AT_HEADER_ROWS, main_w + 1, rows - 1 - AT_HEADER_ROWS, AT_WARN_COLS);
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
    int recent = width / 2;
    int k = width - recent;
    int m = n - recent; /* older snapshots, m > k because n > width */
    /* aligned buckets of b snapshots: boundaries stay put as snapshots arrive (until b grows),
     * so summaries of full buckets can be cached */
    int b = (m + k - 1) / k;
    int nb = (m + b - 1) / b, used = 0;
    for (int i = 0; i < nb; i++, used++) {
        spans[used].c0 = i * b;
        spans[used].c1 = (i + 1) * b < m ? (i + 1) * b : m;
    }
    for (int i = 0; i < recent; i++, used++) {
        spans[used].c0 = m + i;
        spans[used].c1 = m + i + 1;
    }
    return used;
}
