/* SPDX-License-Identifier: Apache-2.0 */
/* render.h -- draws the monitor's screens (main heatmap, layer detail, help, run picker,
 * stop confirmation, too-small notice) from the model into a cell grid. Pure: no terminal.
 *
 * Per frame:
 *     at_render_layout(&lay, m, &ui, rows, cols, half_ok);
 *     at_ui_clamp(&ui, m, &lay);
 *     at_render(grid, m, &ui, &lay, &opts);
 *
 * Every screen starts with the header, whose second row is the run's verdict (verdict.h),
 * coloured by its severity; a too-small terminal still shows the verdict on its first row.
 */
#ifndef ALPHATOP_RENDER_H
#define ALPHATOP_RENDER_H

#include "fmt.h"
#include "grid.h"
#include "layout.h"
#include "model.h"
#include "names.h"
#include "scheme.h"
#include "ui.h"

/* Summaries of compressed heatmap buckets kept between frames, so a live frame only reads the
 * cells that changed (at_model_layer_history says when a summary went stale). */
typedef struct at_render_cache at_render_cache;

/* New empty cache. Caller owns return value (free with at_render_cache_free); NULL if out of
 * memory. */
at_render_cache *at_render_cache_new(void);

/* Frees the cache. NULL-safe. */
void at_render_cache_free(at_render_cache *self);

typedef struct at_render_opts {
    double now;              /* Unix time (s), for "last snapshot N s ago" */
    int utf8;                /* 1: Unicode glyphs (half blocks, arrows, sparklines) */
    const at_scheme *scheme; /* colours; borrowed */
    at_render_cache *cache;  /* optional (NULL: every bucket is summarised every frame) */
} at_render_opts;

/* Layout of a rows x cols screen for the data ui shows. half_ok: two layers per row with half
 * blocks are allowed (a UTF-8 terminal with colours: without colour both halves would look
 * the same). Pure. */
void at_render_layout(at_layout *lay, const at_model *m, const at_ui *ui, int rows, int cols,
                      int half_ok);

/* Draws the screen ui->screen into g (sized lay->rows x lay->cols). */
void at_render(at_grid *g, const at_model *m, const at_ui *ui, const at_layout *lay,
               const at_render_opts *o);

/* Shown value of layer over snapshot columns [c0, c1) of the run (a compressed bucket when
 * c1 - c0 > 1): alpha shows the worst cell (farthest outside 2..6; the latest on ties), traps
 * the largest count, every other metric the latest result. Returns 1 and sets *v for a value,
 * 0 when no cell has a result, -1 when the results are failed or skipped fits. */
int at_render_bucket(const at_model *m, int run, int layer, at_space space, at_metric_id metric,
                     int c0, int c1, double *v);

#endif
