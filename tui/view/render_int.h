/* SPDX-License-Identifier: Apache-2.0 */
/* render_int.h -- what the parts of the renderer share (render.c: header, heatmap, key bar,
 * help, run picker; render_panel.c: warnings and events; render_detail.c: one layer).
 * Private to tui/view.
 */
#ifndef ALPHATOP_RENDER_INT_H
#define ALPHATOP_RENDER_INT_H

#include "render.h"
#include "verdict.h"

/* Glyphs used in more than one part. */
enum {
    AT_G_FULL = 0x2588,
    AT_G_ELLIPSIS = 0x2026,
    AT_G_VLINE = 0x2502,
    AT_G_HLINE = 0x2500,
    AT_G_BULLET = 0x2022,
};

/* One frame being drawn. */
typedef struct at_rd {
    at_grid *g;
    const at_model *m;
    const at_ui *ui;
    const at_layout *lay;
    const at_render_opts *o;
    const at_scheme *s;
    int end;            /* snapshot columns shown: [0, end) */
    int64_t end_step;   /* step of column end - 1; -1 if none */
    at_names names;     /* what the run's layer names share */
    at_verdict verdict; /* the run's verdict at end */
} at_rd;

/* Colour (palette index) and level of a shown value; state as at_render_bucket. */
typedef struct at_shade {
    int state; /* 1 value, 0 empty, -1 missing */
    int level;
    int16_t color;
    uint8_t attr;
} at_shade;

/* Style of role r. */
at_style at_rd_role(const at_rd *c, at_role r);

/* uni with UTF-8, else ascii. */
uint32_t at_rd_glyph(const at_rd *c, uint32_t uni, char ascii);

/* The text role of core's verdict on a result (at_warning_for); `healthy` for a good alpha. */
at_role at_rd_warning_role(at_warning w, at_role healthy);

/* Short name of layer of the shown run (names.h) into buf. */
const char *at_rd_name(const at_rd *c, int layer, char *buf, size_t cap);

/* Writes s at (y, x) in at most w columns, elided in the middle when longer (at_elide).
 * Returns the columns written. */
int at_rd_text(const at_rd *c, int y, int x, int w, const char *s, at_style st);

/* How a value (state as at_render_bucket) of the metric shown is drawn; lo/hi: the range on
 * screen (sequential scales). */
at_shade at_rd_shade(const at_rd *c, int state, double v, double lo, double hi);

/* One heat cell at (y, x): glyph (AT_G_FULL, a sparkline bar) in the level's colour with
 * UTF-8 and colours, a space on it without UTF-8, the scale's ASCII glyph without colours;
 * a missing value shaded (`x`), an empty one blank. */
void at_rd_put(const at_rd *c, int y, int x, at_shade a, uint32_t glyph);

/* at_render_bucket of layer over span sp (the bi-th screen column; nsnap: the run's snapshots),
 * through the frame's cache for buckets of old columns. */
int at_rd_bucket(const at_rd *c, int layer, const at_colspan *sp, int bi, int nsnap, double *v);

/* Latest value of the metric shown (txt, >= 16 bytes), its trend arrow and style, of layer up
 * to column end; *few when its latest fit rests on fewer than AT_FEW_TAIL eigenvalues. */
void at_rd_side_value(const at_rd *c, int layer, char *txt, uint32_t *arrow, at_style *st,
                      int *few);

/* Appends to the title text (cap bytes, len of them used) what limits the layers shown:
 * warnings only, a filter, looking back in time. */
void at_rd_title_flags(const at_rd *c, char *text, size_t cap, int len);

/* The colour bar in lay->colorbar; lo/hi: the range on screen (sequential scales). */
void at_rd_colorbar(const at_rd *c, double lo, double hi);

/* The block view: title, column header, rows, colour bar, panel (render_blocks.c). idx: the
 * nf layers shown. */
void at_rd_blocks(const at_rd *c, const int *idx, int nf);

/* The warnings and events panel (render_panel.c). */
void at_rd_panel(const at_rd *c);

/* The detail screen of layer (render_detail.c). */
void at_rd_detail(const at_rd *c, int layer);

/* Advice for a layer whose latest result warns w ("" for none). Static string. */
const char *at_rd_advice(at_warning w);

#endif
