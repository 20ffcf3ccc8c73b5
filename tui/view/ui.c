/* SPDX-License-Identifier: Apache-2.0 */
/* ui.c -- key map and interaction state of the monitor's view. */
#include "ui.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "scheme.h"

void at_ui_init(at_ui *ui)
{
    memset(ui, 0, sizeof *ui);
    ui->metric = AT_METRIC_ALPHA;
    ui->space = AT_SPACE_W;
    ui->limit_step = -1;
    ui->sel_layer = -1;
}

const char *at_sort_name(at_sort s)
{
    static const char *const names[AT_SORT_COUNT] = {"model order", "worst first", "largest change",
                                                     "name"};
    return (unsigned)s < AT_SORT_COUNT ? names[s] : "?";
}

at_input_mode at_ui_input_mode(const at_ui *ui)
{
    if (ui->screen == AT_SCREEN_CONFIRM)
        return AT_INPUT_CONFIRM;
    if (ui->searching)
        return AT_INPUT_SEARCH;
    return ui->filtering ? AT_INPUT_FILTER : AT_INPUT_NORMAL;
}

/* Keys while typing a filter or a search. */
static at_action text_key(int key)
{
    switch (key) {
    case AT_KEY_ENTER:
        return AT_ACT_ACCEPT;
    case AT_KEY_ESC:
        return AT_ACT_BACK;
    case AT_KEY_BACKSPACE:
        return AT_ACT_BACKSPACE;
    case AT_KEY_UP:
        return AT_ACT_UP;
    case AT_KEY_DOWN:
        return AT_ACT_DOWN;
    default:
        return key >= 0x20 && key < 0x7f ? AT_ACT_CHAR : AT_ACT_NONE;
    }
}

at_action at_keymap(int key, at_input_mode mode)
{
    if (key == AT_KEY_RESIZE)
        return AT_ACT_RESIZE;
    if (mode == AT_INPUT_CONFIRM) {
        if (key == 'y' || key == 'Y')
            return AT_ACT_YES;
        /* the default answer is No: Enter does not stop a run */
        if (key == 'n' || key == 'N' || key == 'q' || key == AT_KEY_ESC || key == AT_KEY_ENTER)
            return AT_ACT_NO;
        return AT_ACT_NONE;
    }
    if (mode == AT_INPUT_FILTER || mode == AT_INPUT_SEARCH)
        return text_key(key);
    if (key >= '1' && key < '1' + AT_METRIC_COUNT)
        return (at_action)(AT_ACT_METRIC_1 + (key - '1'));
    static const struct {
        int key;
        at_action act;
    } map[] = {
        {AT_KEY_UP, AT_ACT_UP},
        {'k', AT_ACT_UP},
        {AT_KEY_DOWN, AT_ACT_DOWN},
        {'j', AT_ACT_DOWN},
        {AT_KEY_LEFT, AT_ACT_LEFT},
        {'h', AT_ACT_LEFT},
        {AT_KEY_RIGHT, AT_ACT_RIGHT},
        {'l', AT_ACT_RIGHT},
        {AT_KEY_PGUP, AT_ACT_PGUP},
        {AT_KEY_PGDN, AT_ACT_PGDN},
        {' ', AT_ACT_PGDN},
        {AT_KEY_HOME, AT_ACT_HOME},
        {'g', AT_ACT_HOME},
        {AT_KEY_END, AT_ACT_END},
        {'G', AT_ACT_END},
        {AT_KEY_ENTER, AT_ACT_ENTER},
        {AT_KEY_ESC, AT_ACT_BACK},
        {AT_KEY_TAB, AT_ACT_NEXT_METRIC},
        {AT_KEY_BTAB, AT_ACT_PREV_METRIC},
        {'/', AT_ACT_FILTER},
        {AT_KEY_F4, AT_ACT_FILTER},
        {'p', AT_ACT_PAUSE},
        {'s', AT_ACT_STOP},
        {'?', AT_ACT_HELP},
        {AT_KEY_F1, AT_ACT_HELP},
        {'q', AT_ACT_QUIT},
        {AT_KEY_F10, AT_ACT_QUIT},
        {'r', AT_ACT_RUNS},
        {'d', AT_ACT_SPACE},
        {'<', AT_ACT_SLIDER_BACK},
        {',', AT_ACT_SLIDER_BACK},
        {'>', AT_ACT_SLIDER_FWD},
        {'.', AT_ACT_SLIDER_FWD},
        {AT_KEY_MOUSE, AT_ACT_CLICK},
        {AT_KEY_DCLICK, AT_ACT_OPEN},
        {AT_KEY_WHEEL_UP, AT_ACT_WHEEL_UP},
        {AT_KEY_WHEEL_DOWN, AT_ACT_WHEEL_DOWN},
        {AT_KEY_F3, AT_ACT_SEARCH},
        {'n', AT_ACT_SEARCH_NEXT},
        {'N', AT_ACT_SEARCH_PREV},
        {AT_KEY_F6, AT_ACT_SORT},
        {'o', AT_ACT_SORT},
        {'w', AT_ACT_WARN_ONLY},
        {'z', AT_ACT_FREEZE},
        {'b', AT_ACT_BLOCKS},
        {'e', AT_ACT_PICTURE},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].key == key)
            return map[i].act;
    return AT_ACT_NONE;
}

/* Case-insensitive substring test (layer filters and searches). */
static int contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               (hay[i] | 0x20) == (needle[i] | 0x20) /* ASCII fold; names are ASCII */)
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

int at_ui_end(const at_ui *ui, const at_model *m)
{
    int ns = at_model_num_snapshots(m, ui->run);
    int end = ui->limit_step >= 0 ? at_model_snapshot_at(m, ui->run, ui->limit_step) + 1 : ns;
    end -= ui->back;
    return end < 0 ? 0 : end;
}

int at_ui_layer_warns(const at_ui *ui, const at_model *m, int layer, int end)
{
    const at_cell *c = at_model_latest_cell(m, ui->run, layer, ui->space, end);
    if (!c)
        return 0;
    at_warning w = at_warning_for((at_fit_status)c->status, c->v[AT_METRIC_ALPHA]);
    return w == AT_WARN_OVER_TRAINED || w == AT_WARN_UNDER_TRAINED || w == AT_WARN_FAILED ||
           c->v[AT_METRIC_TRAPS] > 0 ||
           (c->status == AT_FIT_SUCCESS && c->tail > 0 && c->tail < AT_FEW_TAIL);
}

typedef struct sort_key {
    double key; /* larger first; NAN last */
    const char *name;
    int idx;
} sort_key;

static int by_key(const void *pa, const void *pb)
{
    const sort_key *a = pa, *b = pb;
    int na = isnan(a->key), nb = isnan(b->key);
    if (na != nb)
        return na - nb;
    if (!na && a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return a->idx - b->idx;
}

static int by_name(const void *pa, const void *pb)
{
    const sort_key *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    return c ? c : a->idx - b->idx;
}

/* The sort key of layer: its latest value of the metric (alpha: how far outside 2..6), or
 * how much it moved over the last AT_CHANGE_SPAN results. */
static double layer_key(const at_ui *ui, const at_model *m, int layer, int end)
{
    double v[AT_CHANGE_SPAN + 1];
    int found = 0, want = ui->sort == AT_SORT_CHANGE ? AT_CHANGE_SPAN + 1 : 1;
    const at_cell *first = at_model_cell(m, ui->run, layer, ui->space, 0);
    for (int col = end - 1; first && col >= 0 && found < want; col--)
        if (first[col].status == AT_FIT_SUCCESS && !isnan(first[col].v[ui->metric]))
            v[found++] = first[col].v[ui->metric];
    if (!found)
        return NAN;
    if (ui->sort == AT_SORT_CHANGE)
        return found > 1 ? fabs(v[0] - v[found - 1]) : NAN;
    return ui->metric == AT_METRIC_ALPHA ? at_alpha_badness(v[0]) : v[0];
}

int at_ui_filtered_layers(const at_ui *ui, const at_model *m, int *idx)
{
    int n = at_model_num_layers(m, ui->run), k = 0;
    int end = ui->warn_only || ui->sort == AT_SORT_WORST || ui->sort == AT_SORT_CHANGE
                  ? at_ui_end(ui, m)
                  : 0;
    for (int i = 0; i < n; i++)
        if (contains(at_model_layer(m, ui->run, i)->name, ui->filter) &&
            (!ui->warn_only || at_ui_layer_warns(ui, m, i, end)))
            idx[k++] = i;
    if (ui->sort == AT_SORT_MODEL || k < 2)
        return k;
    sort_key *keys = malloc((size_t)k * sizeof *keys);
    if (!keys)
        return k; /* model order rather than nothing */
    for (int i = 0; i < k; i++) {
        keys[i].idx = idx[i];
        keys[i].name = at_model_layer(m, ui->run, idx[i])->name;
        keys[i].key = ui->sort == AT_SORT_NAME ? 0 : layer_key(ui, m, idx[i], end);
    }
    qsort(keys, (size_t)k, sizeof *keys, ui->sort == AT_SORT_NAME ? by_name : by_key);
    for (int i = 0; i < k; i++)
        idx[i] = keys[i].idx;
    free(keys);
    return k;
}

/* The block view's table of the layers shown (labels unshortened); NULL if out of memory. */
static at_blocks *block_table(const at_ui *ui, const at_model *m)
{
    int nl = at_model_num_layers(m, ui->run);
    int *idx = malloc((size_t)(nl > 0 ? nl : 1) * sizeof *idx);
    at_blocks *t =
        idx ? at_blocks_new(m, ui->run, idx, at_ui_filtered_layers(ui, m, idx), NULL, NULL) : NULL;
    free(idx);
    return t;
}

/* Keeps the block view's row of the selected layer on screen; idx[0..n-1]: the layers shown. */
static void clamp_blocks(at_ui *ui, const at_model *m, const at_layout *lay, const int *idx, int n)
{
    at_blocks *t = at_blocks_new(m, ui->run, idx, n, NULL, NULL);
    int r, s, page = lay->heat.h > 0 ? lay->heat.h : 1;
    int rows = t ? at_blocks_num_rows(t) : 0;
    if (t && at_blocks_find(t, ui->sel_layer, &r, &s)) {
        if (r < ui->block_top)
            ui->block_top = r;
        if (r >= ui->block_top + page)
            ui->block_top = r - page + 1;
    }
    if (ui->block_top > rows - page)
        ui->block_top = rows - page;
    if (ui->block_top < 0)
        ui->block_top = 0;
    at_blocks_free(t);
}

/* Layers the heatmap shows at once. */
static int page(const at_layout *lay)
{
    int p = lay->heat.h * lay->layers_per_row;
    return p > 0 ? p : 1;
}

/* Keeps selection and scroll inside the data and the selection on screen. */
void at_ui_clamp(at_ui *ui, const at_model *m, const at_layout *lay)
{
    if (lay->too_small)
        return; /* nothing is shown: keep the scroll for when the terminal grows again */
    int nl = at_model_num_layers(m, ui->run);
    int *idx = malloc((size_t)(nl > 0 ? nl : 1) * sizeof *idx);
    int n = idx ? at_ui_filtered_layers(ui, m, idx) : 0;
    /* the selected layer keeps the selection when the order changes under it */
    for (int i = 0; ui->sel_layer >= 0 && i < n; i++)
        if (idx[i] == ui->sel_layer)
            ui->sel = i;
    int pg = page(lay);
    if (ui->sel >= n)
        ui->sel = n - 1;
    if (ui->sel < 0)
        ui->sel = 0;
    ui->sel_layer = n > 0 ? idx[ui->sel] : -1;
    if (lay->blocks && idx)
        clamp_blocks(ui, m, lay, idx, n);
    free(idx);
    if (ui->sel < ui->top)
        ui->top = ui->sel;
    if (ui->sel >= ui->top + pg)
        ui->top = ui->sel - pg + 1;
    if (ui->top > n - pg)
        ui->top = n - pg;
    if (ui->top < 0)
        ui->top = 0;
    if (lay->layers_per_row == 2) {
        ui->top &= ~1; /* pairs stay pairs while scrolling */
        if (ui->sel >= ui->top + pg)
            ui->top += 2;
    }
    int ns = at_model_num_snapshots(m, ui->run);
    if (ui->back > ns - 1)
        ui->back = ns > 0 ? ns - 1 : 0;
    if (ui->back < 0)
        ui->back = 0;
    int help_max = lay->help_rows - lay->body.h + 1;
    if (ui->help_top > help_max)
        ui->help_top = help_max;
    if (ui->help_top < 0)
        ui->help_top = 0;
}

/* Moves the replay slider to column col (clamped; the last column shows everything). */
static void slider_to(at_ui *ui, const at_model *m, int col)
{
    int ns = at_model_num_snapshots(m, ui->run);
    if (ns == 0)
        return;
    if (col >= ns - 1)
        ui->limit_step = -1;
    else
        ui->limit_step = at_model_snapshot_step(m, ui->run, col < 0 ? 0 : col);
}

/* The column the replay slider is at. */
static int slider_col(const at_ui *ui, const at_model *m)
{
    int ns = at_model_num_snapshots(m, ui->run);
    return ui->limit_step < 0 ? ns - 1 : at_model_snapshot_at(m, ui->run, ui->limit_step);
}

/* Selects what is under the pointer; returns 1 if that is a layer or a run. */
static int click(at_ui *ui, const at_model *m, const at_layout *lay)
{
    int y = ui->mouse_y, x = ui->mouse_x;
    if (ui->screen == AT_SCREEN_RUNS) {
        int i = y - lay->body.y - 2;
        if (i < 0 || i >= at_model_num_runs(m))
            return 0;
        ui->run_cursor = i;
        return 1;
    }
    if (ui->screen != AT_SCREEN_MAIN || y < lay->heat.y || y >= lay->heat.y + lay->heat.h ||
        x >= lay->side.x + lay->side.w)
        return 0;
    ui->sel = ui->top + (y - lay->heat.y) * lay->layers_per_row;
    if (lay->layers_per_row == 2 && x >= lay->side.x + 6)
        ui->sel++; /* the second value column is the lower layer */
    ui->sel_layer = -1;
    return 1;
}

/* Moves the selection to the next (dir 1) or previous (-1) layer matching the search,
 * starting at the selection itself when from_sel. */
static void search_jump(at_ui *ui, const at_model *m, int dir, int from_sel)
{
    if (!ui->search[0]) {
        snprintf(ui->msg, sizeof ui->msg, "no search yet: F3 starts one");
        return;
    }
    int nl = at_model_num_layers(m, ui->run);
    int *idx = malloc((size_t)(nl > 0 ? nl : 1) * sizeof *idx);
    int n = idx ? at_ui_filtered_layers(ui, m, idx) : 0;
    for (int k = from_sel ? 0 : 1; k <= n; k++) {
        int i = ((ui->sel + dir * k) % n + n) % n;
        if (contains(at_model_layer(m, ui->run, idx[i])->name, ui->search)) {
            ui->sel = i;
            ui->sel_layer = idx[i];
            free(idx);
            return;
        }
    }
    free(idx);
    snprintf(ui->msg, sizeof ui->msg, "no layer matches '%s'", ui->search);
}

/* Appends the typed key to the filter or search being typed. */
static void type_char(char *buf, size_t cap, int key)
{
    size_t n = strlen(buf);
    if (n + 1 < cap) {
        buf[n] = (char)key;
        buf[n + 1] = 0;
    }
}

static void move_sel(at_ui *ui, int d)
{
    ui->sel += d;
    ui->sel_layer = -1;
}

/* Up/down and the wheel: the run picker's cursor, the help's scroll, or the selected layer. */
static void scroll(at_ui *ui, int nruns, int d)
{
    if (ui->screen == AT_SCREEN_RUNS) {
        ui->run_cursor += d;
        if (ui->run_cursor >= nruns)
            ui->run_cursor = nruns - 1;
        if (ui->run_cursor < 0)
            ui->run_cursor = 0;
    } else if (ui->screen == AT_SCREEN_HELP) {
        ui->help_top += d;
    } else {
        move_sel(ui, d);
    }
}

/* The layer under the pointer in the block view, or -1. */
static int block_click(const at_ui *ui, const at_blocks *t, const at_layout *lay)
{
    int r = ui->block_top + ui->mouse_y - lay->heat.y;
    if (ui->mouse_y < lay->heat.y || ui->mouse_y >= lay->heat.y + lay->heat.h ||
        r >= at_blocks_num_rows(t))
        return -1;
    if (at_blocks_row(t, r)->layer >= 0)
        return at_blocks_row(t, r)->layer;
    at_blocks_geom g;
    at_blocks_fit(t, lay->names.w, lay->titles.w, &g);
    int s = at_blocks_slot_at(&g, ui->mouse_x - lay->names.x);
    return s >= 0 ? at_blocks_cell(t, r, s) : -1;
}

/* A key that moves over the block view's table (its layout shown, the main screen): the
 * selection moves; returns 1. Any other key: 0. */
static int block_move(at_ui *ui, const at_model *m, const at_layout *lay, at_action act, int key)
{
    if (!lay->blocks || ui->screen != AT_SCREEN_MAIN)
        return 0;
    int page = lay->heat.h > 1 ? lay->heat.h : 1, all = at_model_num_layers(m, ui->run);
    int rows = 0, cols = 0, click = 0;
    switch (act) {
    case AT_ACT_UP:
    case AT_ACT_DOWN:
        rows = act == AT_ACT_UP ? -1 : 1;
        break;
    case AT_ACT_WHEEL_UP:
    case AT_ACT_WHEEL_DOWN:
        rows = act == AT_ACT_WHEEL_UP ? -3 : 3;
        break;
    case AT_ACT_PGUP:
    case AT_ACT_PGDN:
        rows = act == AT_ACT_PGUP ? -page : page;
        break;
    case AT_ACT_LEFT:
    case AT_ACT_RIGHT:
        cols = act == AT_ACT_LEFT ? -1 : 1;
        break;
    case AT_ACT_HOME:
    case AT_ACT_END:
        if (ui->replay && (key == AT_KEY_HOME || key == AT_KEY_END))
            return 0; /* the slider's */
        cols = act == AT_ACT_HOME ? -all : all;
        break;
    case AT_ACT_CLICK:
    case AT_ACT_OPEN:
        click = 1;
        break;
    default:
        return 0;
    }
    at_blocks *t = block_table(ui, m);
    if (!t)
        return 1;
    int layer = click  ? block_click(ui, t, lay)
                : rows ? at_blocks_vertical(t, ui->sel_layer, rows)
                       : at_blocks_step(t, ui->sel_layer, cols);
    if (layer >= 0)
        ui->sel_layer = layer;
    if (click && layer >= 0 && act == AT_ACT_OPEN)
        ui->screen = AT_SCREEN_DETAIL;
    at_blocks_free(t);
    return 1;
}

int at_ui_apply(at_ui *ui, const at_model *m, const at_layout *lay, at_action act, int key,
                at_view_action *out)
{
    memset(out, 0, sizeof *out);
    int nruns = at_model_num_runs(m);
    int pg = page(lay);
    int had_msg = ui->msg[0] != 0;
    ui->msg[0] = 0;
    if (block_move(ui, m, lay, act, key)) {
        at_ui_clamp(ui, m, lay);
        return 1;
    }
    switch (act) {
    case AT_ACT_NONE:
        return had_msg;
    case AT_ACT_QUIT:
        out->kind = AT_VIEW_QUIT;
        return 0;
    case AT_ACT_UP:
    case AT_ACT_DOWN:
        scroll(ui, nruns, act == AT_ACT_UP ? -1 : 1);
        break;
    case AT_ACT_WHEEL_UP:
    case AT_ACT_WHEEL_DOWN:
        scroll(ui, nruns, act == AT_ACT_WHEEL_UP ? -3 : 3);
        break;
    case AT_ACT_PGUP:
    case AT_ACT_PGDN:
        if (ui->screen == AT_SCREEN_HELP)
            ui->help_top += act == AT_ACT_PGUP ? -lay->body.h : lay->body.h;
        else
            move_sel(ui, act == AT_ACT_PGUP ? -pg : pg);
        break;
    case AT_ACT_HOME:
    case AT_ACT_END:
        /* in a replay Home and End move the slider to the start and the end (g / G still pick
         * the first and last layer) */
        if (ui->replay && (key == AT_KEY_HOME || key == AT_KEY_END)) {
            slider_to(ui, m, act == AT_ACT_HOME ? 0 : at_model_num_snapshots(m, ui->run));
            ui->back = 0;
        } else if (ui->screen == AT_SCREEN_HELP) {
            ui->help_top = act == AT_ACT_HOME ? 0 : lay->help_rows;
        } else {
            ui->sel = act == AT_ACT_HOME ? 0 : at_model_num_layers(m, ui->run);
            ui->sel_layer = -1;
        }
        break;
    case AT_ACT_LEFT:
    case AT_ACT_RIGHT: {
        int step = lay->heat.w / 4 > 1 ? lay->heat.w / 4 : 1;
        ui->back += act == AT_ACT_LEFT ? step : -step;
        break;
    }
    case AT_ACT_ENTER:
        at_ui_clamp(ui, m, lay); /* sel_layer is -1 when no layer is shown */
        if (ui->screen == AT_SCREEN_MAIN && ui->sel_layer >= 0) {
            ui->screen = AT_SCREEN_DETAIL;
        } else if (ui->screen == AT_SCREEN_RUNS && ui->run_cursor >= 0 && ui->run_cursor < nruns) {
            if (ui->run != ui->run_cursor) {
                ui->run = ui->run_cursor;
                ui->sel = ui->top = ui->back = 0;
                ui->sel_layer = -1;
                ui->filter[0] = 0;
                ui->space = AT_SPACE_W;
            }
            ui->screen = AT_SCREEN_MAIN;
            out->kind = AT_VIEW_SELECT_RUN;
            out->run = ui->run;
        } else {
            ui->screen = AT_SCREEN_MAIN;
        }
        break;
    case AT_ACT_BACK:
        if (ui->filtering) {
            ui->filtering = 0;
            ui->filter[0] = 0;
        } else if (ui->searching) {
            ui->searching = 0;
        } else if (ui->screen != AT_SCREEN_MAIN) {
            ui->screen = AT_SCREEN_MAIN;
        } else if (ui->filter[0] || ui->warn_only) {
            ui->filter[0] = 0;
            ui->warn_only = 0;
        } else if (ui->back) {
            ui->back = 0;
        } else if (ui->frozen) {
            ui->frozen = 0;
            ui->limit_step = -1;
        }
        break;
    case AT_ACT_NEXT_METRIC:
        ui->metric = (at_metric_id)((ui->metric + 1) % AT_METRIC_COUNT);
        break;
    case AT_ACT_PREV_METRIC:
        ui->metric = (at_metric_id)((ui->metric + AT_METRIC_COUNT - 1) % AT_METRIC_COUNT);
        break;
    case AT_ACT_FILTER:
        ui->screen = AT_SCREEN_MAIN;
        ui->filtering = 1;
        break;
    case AT_ACT_SEARCH:
        ui->screen = AT_SCREEN_MAIN;
        ui->searching = 1;
        ui->search[0] = 0;
        break;
    case AT_ACT_CHAR:
        if (ui->searching) {
            type_char(ui->search, sizeof ui->search, key);
        } else {
            type_char(ui->filter, sizeof ui->filter, key);
            ui->sel = ui->top = 0;
            ui->sel_layer = -1;
        }
        break;
    case AT_ACT_BACKSPACE: {
        char *buf = ui->searching ? ui->search : ui->filter;
        size_t n = strlen(buf);
        if (n)
            buf[n - 1] = 0;
        break;
    }
    case AT_ACT_ACCEPT:
        if (ui->searching) {
            ui->searching = 0;
            search_jump(ui, m, 1, 1);
        }
        ui->filtering = 0;
        break;
    case AT_ACT_SEARCH_NEXT:
    case AT_ACT_SEARCH_PREV:
        search_jump(ui, m, act == AT_ACT_SEARCH_NEXT ? 1 : -1, 0);
        break;
    case AT_ACT_SORT:
        if (lay->blocks && ui->screen == AT_SCREEN_MAIN) {
            snprintf(ui->msg, sizeof ui->msg, "blocks stay in model order: b, then F6 sorts");
            break;
        }
        ui->sort = (at_sort)((ui->sort + 1) % AT_SORT_COUNT);
        snprintf(ui->msg, sizeof ui->msg, "sorted by %s", at_sort_name(ui->sort));
        break;
    case AT_ACT_BLOCKS:
        ui->screen = AT_SCREEN_MAIN;
        if (ui->blocks)
            ui->blocks = 0;
        else if (at_blocks_available(m, ui->run))
            ui->blocks = 1;
        else
            snprintf(ui->msg, sizeof ui->msg, "no attention layers: blocks are for transformers");
        break;
    case AT_ACT_WARN_ONLY:
        ui->warn_only = !ui->warn_only;
        break;
    case AT_ACT_PICTURE:
        at_ui_clamp(ui, m, lay);
        if (ui->screen != AT_SCREEN_MAIN && ui->screen != AT_SCREEN_DETAIL)
            return had_msg;
        if (ui->sel_layer < 0) {
            snprintf(ui->msg, sizeof ui->msg, "no layer selected: no picture to save");
            break;
        }
        out->kind = AT_VIEW_PICTURE;
        out->run = ui->run;
        out->layer = ui->sel_layer;
        out->space = ui->space;
        /* what the engine says replaces it */
        snprintf(ui->msg, sizeof ui->msg, "no picture saved: this view cannot write one");
        break;
    case AT_ACT_FREEZE:
        if (ui->replay) {
            snprintf(ui->msg, sizeof ui->msg,
                     at_model_state(m)->follow
                         ? "< moves the slider back: it stays there while the log grows"
                         : "a replay does not change: < > move the slider");
        } else if (ui->frozen) {
            ui->frozen = 0;
            ui->limit_step = -1;
        } else if (at_model_num_snapshots(m, ui->run) > 0) {
            ui->frozen = 1;
            ui->limit_step =
                at_model_snapshot_step(m, ui->run, at_model_num_snapshots(m, ui->run) - 1);
        }
        break;
    case AT_ACT_PAUSE: {
        const at_run_info *ri = at_model_run(m, ui->run);
        if (ui->replay) {
            snprintf(ui->msg, sizeof ui->msg, "a replay has no trainer to pause");
        } else if (ri && ri->ended) {
            snprintf(ui->msg, sizeof ui->msg, "the run ended: nothing to pause");
        } else if (ri) {
            out->kind = AT_VIEW_PAUSE;
            out->run = ui->run;
            out->paused = !ri->paused;
            return 0;
        }
        break;
    }
    case AT_ACT_STOP:
        if (ui->replay)
            snprintf(ui->msg, sizeof ui->msg, "a replay has no trainer to stop");
        else if (ui->run < nruns)
            ui->screen = AT_SCREEN_CONFIRM;
        break;
    case AT_ACT_YES:
        out->kind = AT_VIEW_STOP_RUN;
        out->run = ui->run;
        ui->screen = AT_SCREEN_MAIN;
        break;
    case AT_ACT_NO:
        ui->screen = AT_SCREEN_MAIN;
        break;
    case AT_ACT_HELP:
        ui->screen = ui->screen == AT_SCREEN_HELP ? AT_SCREEN_MAIN : AT_SCREEN_HELP;
        ui->help_top = 0;
        break;
    case AT_ACT_RUNS:
        ui->screen = AT_SCREEN_RUNS;
        ui->run_cursor = ui->run;
        break;
    case AT_ACT_SPACE:
        if (ui->space == AT_SPACE_DELTA)
            ui->space = AT_SPACE_W;
        else if (at_model_has_space(m, ui->run, AT_SPACE_DELTA))
            ui->space = AT_SPACE_DELTA;
        break;
    case AT_ACT_SLIDER_BACK:
    case AT_ACT_SLIDER_FWD:
        if (!ui->replay)
            return had_msg;
        slider_to(ui, m, slider_col(ui, m) + (act == AT_ACT_SLIDER_BACK ? -1 : 1));
        break;
    case AT_ACT_RESIZE:
        break;
    case AT_ACT_CLICK:
        click(ui, m, lay);
        break;
    case AT_ACT_OPEN:
        if (click(ui, m, lay) && ui->screen == AT_SCREEN_MAIN)
            ui->screen = AT_SCREEN_DETAIL;
        else if (ui->screen == AT_SCREEN_RUNS)
            return at_ui_apply(ui, m, lay, AT_ACT_ENTER, key, out);
        break;
    default:
        if (act >= AT_ACT_METRIC_1 && act < AT_ACT_METRIC_1 + AT_METRIC_COUNT)
            ui->metric = (at_metric_id)(act - AT_ACT_METRIC_1);
        break;
    }
    at_ui_clamp(ui, m, lay);
    return 1;
}
