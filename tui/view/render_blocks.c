/* SPDX-License-Identifier: Apache-2.0 */
/* render_blocks.c -- the block view: a transformer's blocks one per row, each attention and MLP
 * matrix a cell with its latest value of the metric shown (and its history as a coloured
 * sparkline when there is room), the other layers in rows of their own (blocks.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "blocks.h"
#include "render_int.h"

enum { G_SPARK0 = 0x2581 /* U+2581..U+2588: eight bar heights */ };

/* One frame of the block view. */
typedef struct bview {
    const at_rd *c;
    const at_blocks *t;
    at_blocks_geom g;
    at_colspan sp[AT_BLOCKS_SPARK_MAX]; /* the history's snapshot columns */
    int nsp;
    int nsnap;
    int top, shown; /* rows [top, top + shown) */
    int lone_x;     /* where lone layers' cells start: after the longest of their names */
    double lo, hi;  /* the range of the values on screen (sequential scales) */
} bview;

/* State and value (at_render_bucket) of layer's latest result before the shown end. */
static int latest(const at_rd *c, int layer, double *v)
{
    const at_ui *ui = c->ui;
    const at_cell *first = at_model_cell(c->m, ui->run, layer, ui->space, 0);
    for (int col = c->end - 1; first && col >= 0; col--)
        if (first[col].status != AT_CELL_EMPTY)
            return at_render_bucket(c->m, ui->run, layer, ui->space, ui->metric, col, col + 1, v);
    return 0;
}

/* The range of the values the shown rows draw (the history's buckets, or the latest results)
 * into b->lo, b->hi: a sequential scale spans it. */
static void value_range(bview *b)
{
    for (int r = b->top; r < b->top + b->shown; r++)
        for (int s = 0; s < b->g.nslots; s++) {
            int layer = at_blocks_cell(b->t, r, s);
            double v;
            for (int k = 0; layer >= 0 && k < (b->nsp ? b->nsp : 1); k++) {
                int state = b->nsp ? at_rd_bucket(b->c, layer, &b->sp[k], k, b->nsnap, &v)
                                   : latest(b->c, layer, &v);
                if (state == 1) {
                    b->lo = v < b->lo ? v : b->lo;
                    b->hi = v > b->hi ? v : b->hi;
                }
            }
        }
}

/* One matrix at (y, x): its history (newest at the right), then its latest value and trend;
 * without history the level of its latest result as one glyph. */
static void draw_cell(const bview *b, int y, int x, int layer)
{
    const at_rd *c = b->c;
    int w = b->g.cell_w;
    double v;
    if (b->g.spark) {
        at_scale sc = at_metric_scale(c->ui->metric);
        int top = at_scale_levels(sc) - 1;
        for (int k = 0; k < b->nsp; k++) {
            int state = at_rd_bucket(c, layer, &b->sp[k], k, b->nsnap, &v);
            at_shade sh = at_rd_shade(c, state, v, b->lo, b->hi);
            uint32_t bar = (uint32_t)G_SPARK0 + (uint32_t)(sh.level > 0 ? sh.level * 7 / top : 0);
            at_rd_put(c, y, x + b->g.spark - b->nsp + k, sh, bar);
        }
        x += b->g.spark + 1;
        w -= b->g.spark + 1;
    } else {
        int state = latest(c, layer, &v);
        at_rd_put(c, y, x++, at_rd_shade(c, state, v, b->lo, b->hi), AT_G_FULL);
        w--;
    }
    char txt[16];
    uint32_t arrow;
    at_style st;
    int few;
    at_rd_side_value(c, layer, txt, &arrow, &st, &few);
    if (c->ui->sel_layer == layer)
        st.attr |= AT_ATTR_REVERSE;
    int vw = w < 5 ? w : 5;
    at_grid_printf(c->g, y, x, vw, st, "%*s", vw, txt);
    if (w > 5)
        at_grid_put(c->g, y, x + 5, arrow, st);
}

/* The separator before slot s on row y, when it has one. */
static void separator(const bview *b, int y, int s)
{
    if (b->t && at_blocks_slot(b->t, s)->sep_before)
        at_grid_put(b->c->g, y, b->c->lay->names.x + b->g.x[s] - 2,
                    at_rd_glyph(b->c, AT_G_VLINE, '|'), at_rd_role(b->c, AT_ROLE_DIM));
}

static void draw_row(const bview *b, int r, int y)
{
    const at_rd *c = b->c;
    const at_block_row *row = at_blocks_row(b->t, r);
    int x0 = c->lay->names.x;
    int sel = 0;
    for (int s = 0; s < b->g.nslots; s++)
        sel |= at_blocks_cell(b->t, r, s) == c->ui->sel_layer && c->ui->sel_layer >= 0;
    at_style ls = at_rd_role(c, sel ? AT_ROLE_SELECTED : AT_ROLE_NORMAL);
    if (row->layer >= 0) {
        /* a lone layer: its name, its cell after the longest of them (under no column) */
        at_rd_text(c, y, x0, b->lone_x - 1, row->label, ls);
        draw_cell(b, y, x0 + b->lone_x, row->layer);
        return;
    }
    char label[160];
    at_elide(row->label, b->g.label_w, c->o->utf8, label, sizeof label);
    at_grid_printf(c->g, y, x0, b->g.label_w, ls, "%*s", b->g.label_w, label);
    for (int s = 0; s < b->g.nslots; s++) {
        separator(b, y, s);
        int layer = at_blocks_cell(b->t, r, s);
        if (layer >= 0)
            draw_cell(b, y, x0 + b->g.x[s], layer);
    }
}

/* The column header: every slot's long label when all fit, else the short ones. */
static void draw_header_row(const bview *b)
{
    const at_rd *c = b->c;
    const at_rect *r = &c->lay->colhead;
    at_style title = at_rd_role(c, AT_ROLE_TITLE);
    int lng = 1;
    for (int s = 0; s < b->g.nslots; s++)
        lng &= (int)strlen(at_blocks_slot(b->t, s)->label) <= b->g.cell_w;
    at_grid_printf(c->g, r->y, r->x, b->g.label_w, title, "%*s", b->g.label_w, "block");
    for (int s = 0; s < b->g.nslots; s++) {
        const at_block_slot *sl = at_blocks_slot(b->t, s);
        separator(b, r->y, s);
        at_rd_text(c, r->y, r->x + b->g.x[s], b->g.cell_w, lng ? sl->label : sl->role, title);
    }
}

/* The title row: the shared name parts, the metric, which rows, the filters; at the right the
 * selected layer's name. */
static void draw_title(const bview *b, int nrows)
{
    const at_rd *c = b->c;
    const at_ui *ui = c->ui;
    const at_rect *r = &c->lay->titles;
    char pat[256], text[400];
    at_names_pattern(&c->names, pat, sizeof pat);
    int nb = b->t ? at_blocks_num_blocks(b->t) : 0;
    int len = snprintf(text, sizeof text, "%s%s%s%s by block  %d block%s", pat, pat[0] ? "  " : "",
                       at_metric_name(ui->metric),
                       ui->space == AT_SPACE_DELTA ? " of W-W_base" : "", nb, nb == 1 ? "" : "s");
    if (b->shown < nrows)
        len += snprintf(text + len, sizeof text - (size_t)len, "  rows %d-%d of %d", b->top + 1,
                        b->top + b->shown, nrows);
    at_rd_title_flags(c, text, sizeof text, len);
    int w = at_rd_text(c, r->y, r->x, r->w, text, at_rd_role(c, AT_ROLE_TITLE));
    if (ui->sel_layer < 0)
        return;
    char name[300];
    at_rd_name(c, ui->sel_layer, name, sizeof name);
    int nw = (int)strlen(name), room = r->w - w - 2;
    if (room >= 8) {
        nw = nw < room ? nw : room;
        at_rd_text(c, r->y, r->x + r->w - nw, nw, name, at_rd_role(c, AT_ROLE_SELECTED));
    }
}

void at_rd_blocks(const at_rd *c, const int *idx, int nf)
{
    const at_layout *lay = c->lay;
    const at_ui *ui = c->ui;
    at_blocks *t = at_blocks_new(c->m, ui->run, idx, nf, &c->names, NULL);
    bview b = {.c = c, .t = t, .nsnap = at_model_num_snapshots(c->m, ui->run)};
    b.lo = INFINITY;
    b.hi = -INFINITY;
    int nrows = t ? at_blocks_num_rows(t) : 0;
    if (t) {
        at_blocks_fit(t, lay->names.w, lay->titles.w, &b.g);
        b.nsp = b.g.spark ? at_layout_columns(c->end, b.g.spark, b.sp) : 0;
        b.lone_x = b.g.label_w + 1;
        for (int r = 0; r < nrows; r++) {
            int l = (int)strlen(at_blocks_row(t, r)->label) + 1;
            if (at_blocks_row(t, r)->layer >= 0 && l > b.lone_x)
                b.lone_x = l;
        }
        if (b.lone_x > b.g.width - b.g.cell_w)
            b.lone_x =
                b.g.width - b.g.cell_w > b.g.label_w + 1 ? b.g.width - b.g.cell_w : b.g.label_w + 1;
        b.top = ui->block_top < nrows ? ui->block_top : 0;
        b.shown = nrows - b.top < lay->heat.h ? nrows - b.top : lay->heat.h;
        value_range(&b);
    }
    draw_title(&b, nrows);
    if (nrows > 0)
        draw_header_row(&b);
    for (int i = 0; i < b.shown; i++)
        draw_row(&b, b.top + i, lay->heat.y + i);
    if (nrows == 0) {
        const char *msg = !t ? "out of memory"
                          : at_model_num_layers(c->m, ui->run) == 0
                              ? "waiting for the first snapshot..."
                          : ui->warn_only ? "no layer warns (w: show all)"
                                          : "no layer matches the filter";
        at_grid_text(c->g, lay->heat.y, lay->names.x, lay->titles.w, msg,
                     at_rd_role(c, AT_ROLE_DIM));
    }
    at_blocks_free(t);
    at_rd_colorbar(c, b.lo, b.hi);
    at_rd_panel(c);
}
