/* SPDX-License-Identifier: Apache-2.0 */
/* render.c -- the monitor's screens drawn into a cell grid: header and verdict, heatmap, key
 * bar, help, run picker, confirmation (the panel and the detail view have files of their
 * own). */
#include "render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "render_int.h"

enum {
    G_UPPER_HALF = 0x2580,
    G_LOWER_HALF = 0x2584,
    G_SHADE = 0x2591,
    G_UP = 0x2191,
    G_DOWN = 0x2193,
    G_RIGHT = 0x2192,
    G_SPARK0 = 0x2581 /* U+2581..U+2588: eight bar heights */
};

/* Most per-frame buffers are sized by the screen; this bounds the stack ones. */
enum { MAX_COLS = 1024 };

at_style at_rd_role(const at_rd *c, at_role r)
{
    return at_scheme_role(c->s, r);
}

uint32_t at_rd_glyph(const at_rd *c, uint32_t uni, char ascii)
{
    return c->o->utf8 ? uni : (uint32_t)(unsigned char)ascii;
}

at_role at_rd_warning_role(at_warning w, at_role healthy)
{
    return w == AT_WARN_OVER_TRAINED    ? AT_ROLE_BURNT
           : w == AT_WARN_UNDER_TRAINED ? AT_ROLE_RAW
           : w == AT_WARN_FAILED        ? AT_ROLE_MISSING
                                        : healthy;
}

const char *at_rd_advice(at_warning w)
{
    return w == AT_WARN_OVER_TRAINED    ? "over-fit: lower the LR, add weight decay, or stop (s)"
           : w == AT_WARN_UNDER_TRAINED ? "under-fit: train longer; check its LR and that it learns"
           : w == AT_WARN_FAILED        ? "fit failed: check the weights (NaN, too few eigenvalues)"
                                        : "";
}

const char *at_rd_name(const at_rd *c, int layer, char *buf, size_t cap)
{
    const at_layer_info *li = at_model_layer(c->m, c->ui->run, layer);
    return at_names_short(&c->names, li ? li->name : "?", buf, cap);
}

int at_rd_text(const at_rd *c, int y, int x, int w, const char *s, at_style st)
{
    char buf[512];
    at_elide(s, w, c->o->utf8, buf, sizeof buf);
    return at_grid_text(c->g, y, x, w, buf, st);
}

int at_render_bucket(const at_model *m, int run, int layer, at_space space, at_metric_id metric,
                     int c0, int c1, double *v)
{
    int state = 0;
    double best = NAN, best_key = -INFINITY;
    /* a layer's cells are contiguous by column (model.h), so one lookup serves the bucket */
    const at_cell *base = c1 > c0 ? at_model_cell(m, run, layer, space, c0) : NULL;
    if (!base || !at_model_cell(m, run, layer, space, c1 - 1))
        return 0;
    for (int col = c1 - 1; col >= c0; col--) {
        const at_cell *cell = base + (col - c0);
        if (cell->status == AT_CELL_EMPTY)
            continue;
        if (cell->status != AT_FIT_SUCCESS && metric != AT_METRIC_TRAPS) {
            if (state == 0)
                state = -1;
            continue;
        }
        double x = cell->v[metric];
        if (isnan(x))
            continue;
        double key = metric == AT_METRIC_ALPHA   ? at_alpha_badness(x)
                     : metric == AT_METRIC_TRAPS ? x
                                                 : 0;
        /* strict '>' scanning newest first: ties keep the latest */
        if (state != 1 || key > best_key) {
            best = x;
            best_key = key;
        }
        state = 1;
        if (metric != AT_METRIC_ALPHA && metric != AT_METRIC_TRAPS)
            break;
    }
    if (state == 1)
        *v = best;
    return state;
}

typedef struct cache_entry {
    uint64_t history;
    int32_t c0, c1;
    double value;
    int16_t run;
    int8_t metric, space, state;
} cache_entry;

struct at_render_cache {
    cache_entry *e; /* nlayers x nbuckets, by model layer index and bucket index */
    int nlayers, nbuckets;
};

at_render_cache *at_render_cache_new(void)
{
    return calloc(1, sizeof(at_render_cache));
}

void at_render_cache_free(at_render_cache *self)
{
    if (!self)
        return;
    free(self->e);
    free(self);
}

/* Entry for (layer, bucket), growing the table (and forgetting it) when needed; NULL if out of
 * memory. */
static cache_entry *cache_slot(at_render_cache *ca, int nlayers, int nbuckets, int layer, int b)
{
    if (nlayers > ca->nlayers || nbuckets > ca->nbuckets) {
        int nl = nlayers > ca->nlayers ? nlayers : ca->nlayers;
        int nb = nbuckets > ca->nbuckets ? nbuckets : ca->nbuckets;
        cache_entry *e = calloc((size_t)nl * (size_t)nb, sizeof(cache_entry));
        if (!e)
            return NULL;
        free(ca->e);
        ca->e = e;
        ca->nlayers = nl;
        ca->nbuckets = nb;
    }
    return &ca->e[(size_t)layer * (size_t)ca->nbuckets + (size_t)b];
}

int at_rd_bucket(const at_rd *c, int layer, const at_colspan *sp, int bi, int nsnap, double *v)
{
    const at_ui *ui = c->ui;
    at_render_cache *ca = c->o->cache;
    if (!ca || sp->c1 - sp->c0 < 2 || sp->c1 >= nsnap)
        return at_render_bucket(c->m, ui->run, layer, ui->space, ui->metric, sp->c0, sp->c1, v);
    cache_entry *e =
        cache_slot(ca, at_model_num_layers(c->m, ui->run), c->lay->heat.w + 1, layer, bi);
    if (!e)
        return at_render_bucket(c->m, ui->run, layer, ui->space, ui->metric, sp->c0, sp->c1, v);
    uint64_t h = at_model_layer_history(c->m, ui->run, layer) + 1; /* 0 = never filled */
    if (e->history != h || e->c0 != sp->c0 || e->c1 != sp->c1 || e->run != ui->run ||
        e->metric != (int8_t)ui->metric || e->space != (int8_t)ui->space) {
        e->state = (int8_t)at_render_bucket(c->m, ui->run, layer, ui->space, ui->metric, sp->c0,
                                            sp->c1, &e->value);
        e->history = h;
        e->c0 = sp->c0;
        e->c1 = sp->c1;
        e->run = (int16_t)ui->run;
        e->metric = (int8_t)ui->metric;
        e->space = (int8_t)ui->space;
    }
    *v = e->value;
    return e->state;
}

/* ---- help text ------------------------------------------------------------------------- */

static const char *const help_intro[] = {
    "alphatop: every layer of a training run, live. Alpha is the power-law exponent of a "
    "layer's eigenvalue spectrum: 2..6 healthy (2 ideal), below 2 burnt (over-fit), above 6 raw "
    "(under-fit).",
    "The second row is the run's verdict: its phase as core's tracker reports it (pre-grokking, "
    "grokking, over-fit or memorised, collapse since step S), the evidence, the worst layers and "
    "the key to act.",
};

static const char *const help_keys[][2] = {
    {"Up/Down  k/j", "select a layer (detail view: the previous / next layer)"},
    {"PgUp/PgDn  Space", "a page of layers"},
    {"Home/End  g/G", "first / last layer; in a replay Home / End move the slider to the start / "
                      "end"},
    {"Left/Right  h/l", "look back in time / forward again"},
    {"Enter, double-click", "layer detail (spectrum, fit, history); Enter or Esc goes back"},
    {"b", "block view of a transformer: a row per block, its attention (Q K V O) and MLP "
          "matrices side by side; the arrows select a matrix; again: the heatmap"},
    {"Tab  Shift-Tab", "next / previous metric"},
    {"1..7", "alpha, alpha_weighted, log_norm, log_spectral_norm, stable_rank, traps, detX gap"},
    {"F6  o", "sort: model order, worst first, largest change, name"},
    {"w", "only the layers with a warning (again: all)"},
    {"/  F4", "filter layers by name (Enter keeps it, Esc clears it)"},
    {"F3  n  N", "search a layer by name and jump to it; next / previous match"},
    {"d", "W <-> delta (W - W_base, fine-tunes)"},
    {"e", "save the selected layer's latest spectrum (ESD) as alphatop-LAYER-STEP.svg, in the "
          "current directory or watch / replay --plot DIR"},
    {"z", "freeze the display; data keeps arriving, none is dropped (z or Esc: live)"},
    {"p", "pause / resume this run's snapshots at its trainer; scalars go on"},
    {"s", "ask the trainer to stop: y confirms; n, Enter and Esc do not"},
    {"r", "pick a run (several runs publishing)"},
    {"< >  , .", "replay: move the time slider one snapshot"},
    {"Esc", "back; clear the filters; return to live"},
    {"mouse", "click selects, double-click opens the detail, the wheel scrolls"},
    {"?  F1", "this help"},
    {"q  F10", "quit"},
    {"Ctrl-L", "redraw the screen"},
};

static const char *const help_outro[] = {
    "Heatmap: one row per layer (two per row with half blocks when they do not fit), one column "
    "per snapshot. When snapshots do not fit, the newest half of the columns show one snapshot "
    "each and the older ones are grouped in equal buckets showing the worst alpha (farthest "
    "outside 2..6), the most traps, or the latest value for other metrics.",
    "Names: what nearly all layers share is shown once in the title (model.layers.*.weight); "
    "a long name is cut in the middle, keeping its block number and its end.",
    "Blocks (b): each cell is one matrix, its latest value and trend, with its history as a "
    "coloured sparkline (taller: higher level on the colour bar) when the terminal is wide "
    "enough; embeddings, the unembedding and other layers outside the blocks have rows of "
    "their own.",
    "Colours: burnt is orange to deep red, healthy grey (lightest at 2), raw blue. A '?' after "
    "a value: the fit rests on fewer than 30 eigenvalues, read it with care.",
};

/* Appends text wrapped to width into lines (cap of them), each starting with indent spaces
 * after the first, which starts with lead (padded to indent). Returns the new count. */
static int wrap(char lines[][256], int *roles, int n, int cap, int width, const char *lead,
                int indent, const char *text, int role)
{
    const char *p = text;
    int first = 1;
    width = width > indent + 10 ? width : indent + 10;
    while (*p || first) {
        int room = width - indent;
        int len = (int)strlen(p);
        int take = len;
        if (len > room) {
            take = room;
            while (take > 0 && p[take] != ' ')
                take--;
            if (take == 0)
                take = room;
        }
        if (n < cap) {
            snprintf(lines[n], 256, "%-*s%.*s", indent, first ? lead : "", take, p);
            roles[n] = role;
        }
        n++;
        p += take;
        while (*p == ' ')
            p++;
        first = 0;
    }
    return n;
}

/* The help text wrapped to width into lines (cap of them; NULL to count). Returns the number
 * of lines. */
static int help_text(int width, char lines[][256], int *roles, int cap)
{
    char dummy[1][256];
    int drole[1];
    if (!lines) {
        lines = dummy;
        roles = drole;
        cap = 0;
    }
    int n = 0;
    for (size_t i = 0; i < sizeof help_intro / sizeof help_intro[0]; i++)
        n = wrap(lines, roles, n, cap, width, "", 0, help_intro[i], AT_ROLE_TITLE);
    n = wrap(lines, roles, n, cap, width, "", 0, "", AT_ROLE_NORMAL);
    int kw = width >= 60 ? 22 : 14;
    for (size_t i = 0; i < sizeof help_keys / sizeof help_keys[0]; i++)
        n = wrap(lines, roles, n, cap, width, help_keys[i][0], kw, help_keys[i][1], AT_ROLE_NORMAL);
    for (size_t i = 0; i < sizeof help_outro / sizeof help_outro[0]; i++) {
        n = wrap(lines, roles, n, cap, width, "", 0, "", AT_ROLE_NORMAL);
        n = wrap(lines, roles, n, cap, width, "", 0, help_outro[i], AT_ROLE_NORMAL);
    }
    return n;
}

void at_render_layout(at_layout *lay, const at_model *m, const at_ui *ui, int rows, int cols,
                      int half_ok)
{
    int n = at_model_num_layers(m, ui->run);
    int *idx = n ? malloc((size_t)n * sizeof(int)) : NULL;
    at_layout_in in = {.nlayers = idx ? at_ui_filtered_layers(ui, m, idx) : 0,
                       .half_ok = half_ok,
                       .nsnap = at_ui_end(ui, m)};
    at_names names;
    at_names_scan(&names, m, ui->run);
    char a[300], b[300], buf[620];
    for (int i = 0; i < in.nlayers; i++) {
        at_names_short(&names, at_model_layer(m, ui->run, idx[i])->name, a, sizeof a);
        int l = (int)strlen(a);
        in.name_len = l > in.name_len ? l : in.name_len;
        /* pairs start at even offsets from the top, which is kept even in half mode */
        if (i % 2 == 0 && i + 1 < in.nlayers) {
            at_names_short(&names, at_model_layer(m, ui->run, idx[i + 1])->name, b, sizeof b);
            at_pair_label(a, b, buf, sizeof buf);
            l = (int)strlen(buf);
        }
        in.pair_len = l > in.pair_len ? l : in.pair_len;
    }
    if (ui->blocks && at_blocks_available(m, ui->run)) {
        at_blocks *t = at_blocks_new(m, ui->run, idx, in.nlayers, &names, NULL);
        if (t) {
            int lw = at_blocks_label_width(t);
            in.blocks = 1;
            in.nlayers = at_blocks_num_rows(t);
            in.name_len = lw;
            in.blocks_w_min = at_blocks_width(t, lw, AT_BLOCKS_SPARK_SIDE);
            in.blocks_w_max = at_blocks_width(t, lw, AT_BLOCKS_SPARK_MAX);
        }
        at_blocks_free(t);
    }
    free(idx);
    at_layout_compute(lay, rows, cols, &in);
    lay->help_rows = help_text(cols - 2, NULL, NULL, 0);
}

/* ---- header and verdict ---------------------------------------------------------------- */

static void draw_sparkline(const at_rd *c, int y, int x, int w, const at_series *s)
{
    size_t n = 0, end = s->n;
    while (end > 0 && c->ui->limit_step >= 0 && s->steps[end - 1] > c->end_step)
        end--;
    n = end < (size_t)w ? end : (size_t)w;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = end - n; i < end; i++)
        if (isfinite(s->values[i])) {
            lo = s->values[i] < lo ? s->values[i] : lo;
            hi = s->values[i] > hi ? s->values[i] : hi;
        }
    static const char ramp[] = "_.:-=+*#";
    for (size_t i = 0; i < n; i++) {
        double v = s->values[end - n + i];
        /* a flat series is a flat line at the bottom, not a wall at half height */
        int k = !isfinite(v) ? -1 : hi > lo ? (int)((v - lo) / (hi - lo) * 7.999) : 0;
        uint32_t ch = k < 0 ? ' ' : at_rd_glyph(c, (uint32_t)(G_SPARK0 + k), ramp[k]);
        at_grid_put(c->g, y, x + (int)i, ch, at_rd_role(c, AT_ROLE_PLOT));
    }
}

/* "id (model class)", or the id alone when the run reports no other name. */
static void run_label(const at_run_info *ri, char *buf, size_t cap)
{
    if (ri->name[0] && strcmp(ri->name, ri->id))
        snprintf(buf, cap, "%s (%s)", ri->id, ri->name);
    else
        snprintf(buf, cap, "%s", ri->id);
}

static void draw_run_row(const at_rd *c, int y)
{
    const at_layout *lay = c->lay;
    at_style hs = at_rd_role(c, AT_ROLE_HEADER);
    at_grid_fill(c->g, y, 0, 1, lay->cols, ' ', hs);
    const at_run_info *ri = at_model_run(c->m, c->ui->run);
    char buf[600], a[16], b[16], label[200];
    int x = at_grid_text(c->g, y, 0, lay->cols, " alphatop ", hs);
    if (!ri) {
        at_grid_text(c->g, y, x, lay->cols - x,
                     at_model_state(c->m)->follow ? " waiting for a run in the log..."
                                                  : " waiting for a trainer to publish...",
                     hs);
        return;
    }
    at_render_step(ri->step, a);
    at_render_step(ri->interval, b);
    run_label(ri, label, sizeof label);
    int len = snprintf(buf, sizeof buf, " run %s", label);
    if (ri->host[0])
        len += snprintf(buf + len, sizeof buf - (size_t)len, " @ %s", ri->host);
    len += snprintf(buf + len, sizeof buf - (size_t)len, "  step %s", a);
    if (ri->interval > 0)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "  every %s", b);
    if (ri->last_snapshot_time > 0 && c->o->now >= ri->last_snapshot_time && !c->ui->replay)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "  last %.0fs ago",
                        c->o->now - ri->last_snapshot_time);
    if (at_model_num_runs(c->m) > 1)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "  [run %d/%d]", c->ui->run + 1,
                        at_model_num_runs(c->m));
    if (ri->ended)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "  ENDED");
    else if (ri->paused)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "  PAUSED");
    if (ri->stop_requested)
        snprintf(buf + len, sizeof buf - (size_t)len, "  STOP REQUESTED");
    at_grid_text(c->g, y, x, lay->cols - x, buf, hs);
}

/* The verdict row: phase and since, evidence, worst layers, and the key to act at the right. */
static void draw_verdict(const at_rd *c, int y, int w)
{
    const at_verdict *v = &c->verdict;
    static const at_role roles[] = {AT_ROLE_VERDICT_INFO, AT_ROLE_VERDICT_INFO, AT_ROLE_VERDICT_OK,
                                    AT_ROLE_VERDICT_WARN, AT_ROLE_VERDICT_CRIT};
    at_style st = at_rd_role(c, roles[v->severity]);
    at_grid_fill(c->g, y, 0, 1, w, ' ', st);
    const at_run_info *ri = at_model_run(c->m, c->ui->run);
    char act[64] = "";
    if (ri && ri->stop_requested)
        snprintf(act, sizeof act, " stop requested ");
    else if (ri && ri->ended)
        snprintf(act, sizeof act, " run ended ");
    else if (ri && ri->paused)
        snprintf(act, sizeof act, " snapshots paused: p resumes ");
    else if (ri && !c->ui->replay && v->severity >= AT_SEV_WARN)
        snprintf(act, sizeof act, " s: stop the run ");
    int aw = (int)strlen(act);
    if (aw >= w)
        aw = 0;
    char since[32] = "", ev[200], text[600];
    if (v->since >= 0 && v->phase != AT_RUN_UNKNOWN) {
        char s[16];
        at_render_step(v->since, s);
        snprintf(since, sizeof since, " since %s", s);
    }
    at_verdict_evidence(v, ev, sizeof ev);
    snprintf(text, sizeof text, " %s%s ", at_verdict_label(v), since);
    at_style tag = st;
    tag.attr |= AT_ATTR_BOLD;
    int x = at_grid_text(c->g, y, 0, w - aw, text, tag);
    int len = snprintf(text, sizeof text, " %s", ev);
    for (int i = 0; i < v->nworst && (size_t)len < sizeof text - 80; i++) {
        char name[300];
        const at_cell *cell =
            at_model_latest_cell(c->m, c->ui->run, v->worst[i], c->ui->space, c->end);
        at_rd_name(c, v->worst[i], name, sizeof name);
        len +=
            snprintf(text + len, sizeof text - (size_t)len, "%s%.60s %.2f",
                     i ? ", " : "  worst: ", name, cell ? (double)cell->v[AT_METRIC_ALPHA] : NAN);
    }
    at_grid_text(c->g, y, x, w - aw - x, text, st);
    if (aw)
        at_grid_text(c->g, y, w - aw, aw, act, tag);
}

/* lead and path from column x of row 2 when there is room; a path too long for it loses its
 * start, at a '/' where one leaves the most that fits: the file name matters most. */
static void draw_log_path(const at_rd *c, int x, const char *lead, const char *path)
{
    int w = c->lay->cols - x - 1 - (int)strlen(lead);
    int len = (int)strlen(path);
    const char *dots = c->o->utf8 ? "\xe2\x80\xa6" : "...";
    int dw = c->o->utf8 ? 1 : 3;
    if (!path[0] || w < 12)
        return;
    char out[600];
    if (len <= w) {
        snprintf(out, sizeof out, "%s", path);
    } else {
        const char *end = path + len - (w - dw);
        const char *slash = strchr(end, '/');
        snprintf(out, sizeof out, "%s%s", dots, slash ? slash : end);
    }
    x += at_grid_text(c->g, 2, x, c->lay->cols - x, lead, at_rd_role(c, AT_ROLE_DIM));
    at_grid_text(c->g, 2, x, c->lay->cols - x, out, at_rd_role(c, AT_ROLE_DIM));
}

static void draw_header(const at_rd *c)
{
    const at_layout *lay = c->lay;
    const at_run_info *ri = at_model_run(c->m, c->ui->run);
    const at_monitor_state *st = at_model_state(c->m);
    char buf[512], a[16], b[16];
    draw_run_row(c, 0);
    draw_verdict(c, lay->verdict.y, lay->cols);
    if (c->ui->replay) {
        /* a recording: where the slider is matters, the live monitor state does not */
        int64_t last =
            at_model_snapshot_step(c->m, c->ui->run, at_model_num_snapshots(c->m, c->ui->run) - 1);
        at_render_step(c->end_step < 0 ? 0 : c->end_step, a);
        at_render_step(last < 0 ? 0 : last, b);
        int len =
            at_grid_printf(c->g, 2, 0, lay->cols, at_rd_role(c, AT_ROLE_TITLE),
                           " %s to step %s of %s   %s", st->follow ? "FOLLOWING" : "REPLAY", a, b,
                           st->follow ? "< > move the slider, End: follow the newest"
                                      : "< > move the slider, Home / End: start / end");
        draw_log_path(c, len, "  log ", st->record);
    } else {
        int len = snprintf(buf, sizeof buf, " monitor  %d/%d computed  %d pending", st->layers_done,
                           st->layers_done + st->layers_pending, st->layers_pending);
        if (st->behind_seconds > 0)
            len += snprintf(buf + len, sizeof buf - (size_t)len, "  %.1f s behind",
                            st->behind_seconds);
        else
            len += snprintf(buf + len, sizeof buf - (size_t)len, "  caught up");
        len += snprintf(buf + len, sizeof buf - (size_t)len, "  %lld dropped  %s",
                        ri ? (long long)ri->dropped : 0LL, st->fast ? "fast" : "exact");
        at_grid_text(c->g, 2, 0, lay->cols, buf, at_rd_role(c, AT_ROLE_DIM));
        if (c->ui->frozen) {
            at_render_step(c->end_step, a);
            len += at_grid_printf(c->g, 2, len, lay->cols - len, at_rd_role(c, AT_ROLE_TRAP),
                                  "  FROZEN at step %s (z: live)", a);
        }
        draw_log_path(c, len, " rec ", ri && ri->log[0] ? ri->log : st->record);
    }
    if (lay->header.h < 4)
        return;
    int x = 1;
    int ns = at_model_num_scalars(c->m, c->ui->run);
    for (int i = 0; i < ns && x < lay->cols - 8; i++) {
        at_series s;
        at_model_scalar(c->m, c->ui->run, i, &s);
        size_t last = s.n;
        while (last > 0 && c->ui->limit_step >= 0 && s.steps[last - 1] > c->end_step)
            last--;
        if (!last)
            continue;
        char v[16];
        at_render_value(s.values[last - 1], v);
        x += at_grid_printf(c->g, 3, x, lay->cols - x, at_rd_role(c, AT_ROLE_NORMAL), "%s %s ",
                            s.name, v);
        int w = lay->cols - x < 16 ? lay->cols - x : 16;
        draw_sparkline(c, 3, x, w, &s);
        x += w + 2;
    }
}

/* ---- heatmap --------------------------------------------------------------------------- */

at_shade at_rd_shade(const at_rd *c, int state, double v, double lo, double hi)
{
    at_shade r = {state, -1, AT_COLOR_DEFAULT, 0};
    at_scale sc = at_metric_scale(c->ui->metric);
    if (state == 1) {
        r.level = at_scale_level(sc, v, lo, hi);
        r.color = at_scheme_level_color(c->s, sc, r.level);
        r.attr = at_scheme_level_attr(c->s, sc, r.level);
    } else if (state < 0) {
        r.color = at_scheme_missing_color(c->s);
    }
    return r;
}

void at_rd_put(const at_rd *c, int y, int x, at_shade a, uint32_t glyph)
{
    at_style st = {AT_COLOR_DEFAULT, AT_COLOR_DEFAULT, a.attr};
    at_scale sc = at_metric_scale(c->ui->metric);
    if (a.state == 0) {
        at_grid_put(c->g, y, x, ' ', st);
    } else if (c->s->colors == 0) {
        at_grid_put(c->g, y, x, a.state < 0 ? 'x' : (uint32_t)at_scale_ascii(sc, a.level), st);
    } else if (!c->o->utf8) {
        st.bg = a.color;
        at_grid_put(c->g, y, x, ' ', st);
    } else {
        st.fg = a.color;
        at_grid_put(c->g, y, x, a.state < 0 ? G_SHADE : glyph, st);
    }
}

/* One heat cell holding two layers: upper half = upper layer, lower half = lower layer. */
static void put_half(const at_rd *c, int y, int x, at_shade up, at_shade lo)
{
    at_style st = {AT_COLOR_DEFAULT, AT_COLOR_DEFAULT, 0};
    if (up.state == 0 && lo.state == 0) {
        at_grid_put(c->g, y, x, ' ', st);
    } else if (up.state == 0) {
        st.fg = lo.color;
        at_grid_put(c->g, y, x, G_LOWER_HALF, st);
    } else {
        st.fg = up.color;
        st.attr = up.attr;
        st.bg = lo.state == 0 ? AT_COLOR_DEFAULT : lo.color;
        at_grid_put(c->g, y, x, G_UPPER_HALF, st);
    }
}

void at_rd_side_value(const at_rd *c, int layer, char *txt, uint32_t *arrow, at_style *st, int *few)
{
    double v[2] = {NAN, NAN};
    int found = 0;
    *few = 0;
    const at_cell *first = at_model_cell(c->m, c->ui->run, layer, c->ui->space, 0);
    for (int col = c->end - 1; first && col >= 0 && found < 2; col--) {
        const at_cell *cell = first + col;
        if (cell->status == AT_FIT_SUCCESS && !isnan(cell->v[c->ui->metric])) {
            if (!found)
                *few = cell->tail > 0 && cell->tail < AT_FEW_TAIL;
            v[found++] = cell->v[c->ui->metric];
        }
    }
    if (c->ui->metric == AT_METRIC_TRAPS && !isnan(v[0]))
        snprintf(txt, 16, "%.0f", v[0]);
    else
        at_render_value(v[0], txt);
    *arrow = ' ';
    *st = at_rd_role(c, AT_ROLE_NORMAL);
    if (found == 0)
        return;
    if (found == 2) {
        double d = v[0] - v[1], tol = 0.01 * fmax(fabs(v[0]), 1e-12);
        *arrow = d > tol    ? at_rd_glyph(c, G_UP, '^')
                 : d < -tol ? at_rd_glyph(c, G_DOWN, 'v')
                            : at_rd_glyph(c, G_RIGHT, '-');
    }
    if (c->ui->metric == AT_METRIC_ALPHA)
        *st = at_rd_role(c, at_rd_warning_role(at_warning_for(AT_FIT_SUCCESS, v[0]), AT_ROLE_OK));
}

static void draw_axis(const at_rd *c, const at_colspan *sp, int ncol, int title_end)
{
    const at_rect *r = &c->lay->axis;
    int next = 0;
    for (int k = 0; k < ncol; k++) {
        if (k < next)
            continue;
        char buf[16];
        at_render_step(at_model_snapshot_step(c->m, c->ui->run, sp[k].c1 - 1), buf);
        int len = (int)strlen(buf);
        if (k + len > r->w)
            break;
        at_grid_put(c->g, r->y, r->x + k, at_rd_glyph(c, 0x2514, '\''), at_rd_role(c, AT_ROLE_DIM));
        at_grid_text(c->g, r->y, r->x + k + 1, len, buf, at_rd_role(c, AT_ROLE_DIM));
        next = k + len + 4;
    }
    /* mark the last compressed bucket in the title row, past the title's text */
    int k = 0;
    while (k + 1 < ncol && sp[k + 1].c1 - sp[k + 1].c0 > 1)
        k++;
    if (ncol > 0 && sp[0].c1 - sp[0].c0 > 1 && r->x + k > title_end + 1)
        at_grid_put(c->g, c->lay->titles.y, r->x + k, at_rd_glyph(c, 0x25BE, 'v'),
                    at_rd_role(c, AT_ROLE_DIM));
}

void at_rd_colorbar(const at_rd *c, double lo, double hi)
{
    const at_rect *r = &c->lay->colorbar;
    at_scale sc = at_metric_scale(c->ui->metric);
    int n = at_scale_levels(sc);
    int x = r->x + 1;
    at_style dim = at_rd_role(c, AT_ROLE_DIM);
    char buf[32];
    for (int k = 0; k < n; k++) {
        if (sc == AT_SCALE_ALPHA) {
            if (k == 0)
                x += at_grid_text(c->g, r->y, x, r->w - x, "burnt <", at_rd_role(c, AT_ROLE_BURNT));
            if (k == 5)
                x += at_grid_text(c->g, r->y, x, r->w - x, " 2 ", dim);
            if (k == 13)
                x += at_grid_text(c->g, r->y, x, r->w - x, " 6 ", dim);
        } else if (sc == AT_SCALE_TRAPS) {
            static const char *const tl[AT_TRAP_LEVELS] = {"0", "1", "2", "3", "5", "8+"};
            x += at_grid_printf(c->g, r->y, x, r->w - x, dim, " %s", tl[k]);
        } else if (k == 0) {
            at_render_value(isfinite(lo) ? lo : NAN, buf);
            x += at_grid_printf(c->g, r->y, x, r->w - x, dim, "%s ", buf);
        }
        at_shade s = {1, k, at_scheme_level_color(c->s, sc, k), at_scheme_level_attr(c->s, sc, k)};
        at_rd_put(c, r->y, x++, s, AT_G_FULL);
        if (sc == AT_SCALE_ALPHA || sc == AT_SCALE_SEQ)
            at_rd_put(c, r->y, x++, s, AT_G_FULL);
    }
    if (sc == AT_SCALE_ALPHA)
        x += at_grid_text(c->g, r->y, x, r->w - x, "> raw", at_rd_role(c, AT_ROLE_RAW));
    else if (sc == AT_SCALE_SEQ) {
        at_render_value(isfinite(hi) ? hi : NAN, buf);
        x += at_grid_printf(c->g, r->y, x, r->w - x, dim, " %s", buf);
    }
    x += 3;
    at_shade miss = {-1, -1, at_scheme_missing_color(c->s), 0};
    at_rd_put(c, r->y, x++, miss, AT_G_FULL);
    const char *label = r->x + r->w - x - 1 >= 14 ? "failed/skipped" : "failed";
    at_grid_text(c->g, r->y, x + 1, r->x + r->w - x - 1, label, dim);
}

/* The names of row y: one layer, or two sharing the row with the selected half highlighted. */
static void draw_names(const at_rd *c, int y, const int *idx, int i0, int has2)
{
    const at_layout *lay = c->lay;
    int sel0 = c->ui->sel == i0, sel1 = has2 && c->ui->sel == i0 + 1;
    at_style ns = at_rd_role(c, AT_ROLE_NORMAL), ss = at_rd_role(c, AT_ROLE_SELECTED);
    char a[300], b[300], label[620];
    at_rd_name(c, idx[i0], a, sizeof a);
    if (!has2) {
        at_rd_text(c, y, lay->names.x, lay->names.w, a, sel0 ? ss : ns);
        return;
    }
    at_rd_name(c, idx[i0 + 1], b, sizeof b);
    at_pair_elide(a, b, lay->names.w, c->o->utf8, label, sizeof label);
    int w = at_grid_text(c->g, y, lay->names.x, lay->names.w, label, ns);
    if (!sel0 && !sel1)
        return;
    int split = -1;
    for (int x = 0; x < w; x++)
        if (at_grid_at(c->g, y, lay->names.x + x)->ch == '/')
            split = x;
    int a0 = sel0 || split < 0 ? 0 : split + 1, a1 = sel1 || split < 0 ? w : split;
    for (int x = a0; x < a1; x++)
        at_grid_put(c->g, y, lay->names.x + x, at_grid_at(c->g, y, lay->names.x + x)->ch, ss);
}

void at_rd_title_flags(const at_rd *c, char *text, size_t cap, int len)
{
    const at_ui *ui = c->ui;
    if (len < 0 || (size_t)len >= cap)
        return;
    if (ui->warn_only)
        len += snprintf(text + len, cap - (size_t)len, "  warnings only");
    if (ui->filter[0] && (size_t)len < cap)
        len += snprintf(text + len, cap - (size_t)len, "  (filtered)");
    if (ui->back && (size_t)len < cap)
        snprintf(text + len, cap - (size_t)len, "  (back in time: Esc = live)");
}

/* The title row; returns the column where its text ends. */
static int draw_titles(const at_rd *c, int shown, int nf)
{
    const at_layout *lay = c->lay;
    const at_ui *ui = c->ui;
    at_style title = at_rd_role(c, AT_ROLE_TITLE);
    char pat[256];
    at_names_pattern(&c->names, pat, sizeof pat);
    at_rd_text(c, lay->titles.y, lay->names.x, lay->names.w,
               pat[0] && (int)strlen(pat) <= lay->names.w ? pat : "layer", title);
    char text[300];
    int len = snprintf(text, sizeof text, "%s%s", at_metric_name(ui->metric),
                       ui->space == AT_SPACE_DELTA ? " of W-W_base" : "");
    if (shown < nf)
        len += snprintf(text + len, sizeof text - (size_t)len, "  layers %d-%d of %d", ui->top + 1,
                        ui->top + shown, nf);
    if (ui->sort != AT_SORT_MODEL)
        len += snprintf(text + len, sizeof text - (size_t)len, "  by %s", at_sort_name(ui->sort));
    at_rd_title_flags(c, text, sizeof text, len);
    int w = at_grid_text(c->g, lay->titles.y, lay->heat.x, lay->heat.w, text, title);
    at_grid_text(c->g, lay->titles.y, lay->side.x, lay->side.w, "now", title);
    return lay->heat.x + w;
}

static void draw_main(const at_rd *c, const int *idx, int nf)
{
    const at_layout *lay = c->lay;
    const at_ui *ui = c->ui;
    int lpr = lay->layers_per_row;
    at_colspan sp[MAX_COLS];
    int hw = lay->heat.w < MAX_COLS ? lay->heat.w : MAX_COLS;
    int ncol = at_layout_columns(c->end, hw, sp);
    int shown = nf - ui->top;
    if (shown > lay->heat.h * lpr)
        shown = lay->heat.h * lpr;
    if (shown < 0)
        shown = 0;
    /* every shown bucket once: the sequential scale needs their range before drawing */
    size_t ncells = (size_t)shown * (size_t)ncol;
    double *vals = malloc((ncells ? ncells : 1) * sizeof(double));
    signed char *states = malloc(ncells ? ncells : 1);
    if (!vals || !states)
        shown = 0;
    double lo = INFINITY, hi = -INFINITY;
    int nsnap = at_model_num_snapshots(c->m, ui->run);
    for (int i = 0; i < shown; i++)
        for (int k = 0; k < ncol; k++) {
            size_t j = (size_t)i * (size_t)ncol + (size_t)k;
            states[j] = (signed char)at_rd_bucket(c, idx[ui->top + i], &sp[k], k, nsnap, &vals[j]);
            if (states[j] == 1) {
                lo = vals[j] < lo ? vals[j] : lo;
                hi = vals[j] > hi ? vals[j] : hi;
            }
        }
    int title_end = draw_titles(c, shown, nf);

    for (int row = 0; row * lpr < shown; row++) {
        int y = lay->heat.y + row;
        int i0 = ui->top + row * lpr;
        int has2 = lpr == 2 && i0 + 1 < ui->top + shown;
        draw_names(c, y, idx, i0, has2);
        for (int k = 0; k < ncol; k++) {
            size_t j = (size_t)(i0 - ui->top) * (size_t)ncol + (size_t)k;
            at_shade a = at_rd_shade(c, states[j], vals[j], lo, hi);
            if (lpr == 1) {
                at_rd_put(c, y, lay->heat.x + k, a, AT_G_FULL);
            } else {
                at_shade b = {0, -1, AT_COLOR_DEFAULT, 0};
                if (has2)
                    b = at_rd_shade(c, states[j + (size_t)ncol], vals[j + (size_t)ncol], lo, hi);
                put_half(c, y, lay->heat.x + k, a, b);
            }
        }
        for (int j = 0; j < lpr && i0 + j < ui->top + shown; j++) {
            char txt[16];
            uint32_t arrow;
            at_style st;
            int few;
            at_rd_side_value(c, idx[i0 + j], txt, &arrow, &st, &few);
            int x = lay->side.x + (lpr == 1 ? 0 : j * 6);
            if (ui->sel == i0 + j)
                st.attr |= AT_ATTR_REVERSE;
            at_grid_printf(c->g, y, x, 5 + (lpr == 1), st, lpr == 1 ? "%6s" : "%5s", txt);
            at_grid_put(c->g, y, x + 5 + (lpr == 1), arrow, st);
            if (few && lpr == 1)
                at_grid_put(c->g, y, x + 7, '?', at_rd_role(c, AT_ROLE_WARN));
        }
    }
    if (nf == 0) {
        const char *msg = at_model_num_layers(c->m, ui->run) == 0
                              ? "waiting for the first snapshot..."
                          : ui->warn_only ? "no layer warns (w: show all)"
                                          : "no layer matches the filter";
        at_grid_text(c->g, lay->heat.y, lay->heat.x, lay->heat.w, msg, at_rd_role(c, AT_ROLE_DIM));
    }
    free(vals);
    free(states);
    draw_axis(c, sp, ncol, title_end);
    at_rd_colorbar(c, lo, hi);
    at_rd_panel(c);
}

/* ---- help, run picker, confirmation, key bar ------------------------------------------- */

static void draw_help(const at_rd *c)
{
    at_rect b = c->lay->body;
    enum { CAP = 160 };
    char(*lines)[256] = malloc(CAP * sizeof *lines);
    int roles[CAP];
    if (!lines)
        return;
    int n = help_text(b.w - 2, lines, roles, CAP);
    for (int i = c->ui->help_top, y = b.y + 1; i < n && i < CAP && y < b.y + b.h; i++, y++)
        at_grid_text(c->g, y, 1, b.w - 1, lines[i], at_rd_role(c, (at_role)roles[i]));
    free(lines);
}

static void draw_runs(const at_rd *c)
{
    at_rect b = c->lay->body;
    at_grid_printf(c->g, b.y + 1, 1, b.w - 1, at_rd_role(c, AT_ROLE_TITLE),
                   "  %-22s %-16s %-14s %-8s %-7s %-9s %s", "run", "model", "host", "step",
                   "layers", "snapshots", "phase");
    for (int i = 0; i < at_model_num_runs(c->m) && b.y + 2 + i < b.y + b.h; i++) {
        const at_run_info *ri = at_model_run(c->m, i);
        char st[16];
        at_render_step(ri->step, st);
        at_verdict v;
        at_verdict_compute(&v, c->m, i, AT_SPACE_W, at_model_num_snapshots(c->m, i));
        at_style s = at_rd_role(c, i == c->ui->run_cursor ? AT_ROLE_SELECTED : AT_ROLE_NORMAL);
        at_grid_printf(c->g, b.y + 2 + i, 1, b.w - 1, s,
                       "%c %-22.22s %-16.16s %-14.14s %-8s %-7d %-9d %s%s",
                       i == c->ui->run ? '*' : ' ', ri->id, ri->name, ri->host, st,
                       at_model_num_layers(c->m, i), at_model_num_snapshots(c->m, i),
                       at_verdict_label(&v), ri->ended ? "  ended" : "");
    }
}

static void draw_confirm(const at_rd *c)
{
    const at_run_info *ri = at_model_run(c->m, c->ui->run);
    char label[200] = "?", msg[260];
    if (ri)
        run_label(ri, label, sizeof label);
    snprintf(msg, sizeof msg, " Ask run %s to stop training? [y/N] ", label);
    const char *hint = " y: ask it to stop    n, Enter, Esc: keep it running ";
    int w = (int)strlen(msg), hl = (int)strlen(hint);
    w = (w > hl ? w : hl) + 2;
    if (w > c->lay->cols)
        w = c->lay->cols;
    int h = 4, y = c->lay->rows / 2 - 2, x = (c->lay->cols - w) / 2;
    at_style st = at_rd_role(c, AT_ROLE_ERROR);
    st.attr |= AT_ATTR_REVERSE;
    at_grid_fill(c->g, y, x, h, w, ' ', st);
    at_grid_text(c->g, y + 1, x + 1, w - 2, msg, st);
    at_grid_text(c->g, y + 2, x + 1, w - 2, hint, st);
}

static void draw_status(const at_rd *c)
{
    const at_rect *r = &c->lay->status;
    const at_ui *ui = c->ui;
    at_style st = at_rd_role(c, AT_ROLE_STATUS);
    at_grid_fill(c->g, r->y, 0, 1, r->w, ' ', st);
    if (ui->filtering) {
        at_grid_printf(c->g, r->y, 0, r->w, st, " filter: %s_   (Enter keep, Esc clear)",
                       ui->filter);
        return;
    }
    if (ui->searching) {
        at_grid_printf(c->g, r->y, 0, r->w, st,
                       " search: %s_   (Enter jumps to the first match; then n / N)", ui->search);
        return;
    }
    /* the keys that do something on this screen, most useful first */
    /* "b" only for a run with attention layers; the block view has no sort */
    static const char *const main_live[] = {
        "F1", "help",  "Enter", "detail",   "b",   "blocks",  "/",   "filter", "F3", "search",
        "F6", "sort",  "w",     "warnings", "Tab", "metric",  "z",   "freeze", "s",  "stop",
        "p",  "pause", "r",     "runs",     "d",   "W/delta", "F10", "quit",   NULL};
    static const char *const main_replay[] = {
        "F1",      "help",     "Enter",     "detail",   "b",      "blocks", "< >",
        "slider",  "Home/End", "start/end", "/",        "filter", "F3",     "search",
        "F6",      "sort",     "w",         "warnings", "Tab",    "metric", "d",
        "W/delta", "F10",      "quit",      NULL};
    static const char *const detail[] = {"Esc",    "back", "Up/Down", "layer", "Tab",
                                         "metric", "d",    "W/delta", "e",     "picture",
                                         "F10",    "quit", NULL};
    static const char *const help[] = {"Up/Down", "scroll", "PgUp/PgDn", "page", "Esc",
                                       "back",    "F10",    "quit",      NULL};
    static const char *const runs[] = {"Up/Down", "choose", "Enter", "show", "Esc",
                                       "back",    "F10",    "quit",  NULL};
    static const char *const confirm[] = {"y", "stop the run", "n Enter Esc", "keep it", NULL};
    const char *const *keys = ui->screen == AT_SCREEN_DETAIL    ? detail
                              : ui->screen == AT_SCREEN_HELP    ? help
                              : ui->screen == AT_SCREEN_RUNS    ? runs
                              : ui->screen == AT_SCREEN_CONFIRM ? confirm
                              : ui->replay                      ? main_replay
                                                                : main_live;
    int x = 0;
    if (ui->msg[0]) {
        at_style ms = at_rd_role(c, AT_ROLE_KEY);
        ms.bg = st.bg;
        x += at_grid_printf(c->g, r->y, x, r->w - x, ms, " %s  ", ui->msg);
    }
    int main = keys == main_live || keys == main_replay;
    int blocks = main && at_blocks_available(c->m, ui->run);
    for (size_t i = 0; keys[i] && x < r->w; i += 2) {
        const char *what = keys[i + 1];
        if (main && !strcmp(keys[i], "b")) {
            if (!blocks)
                continue;
            what = c->lay->blocks ? "heatmap" : what;
        }
        if (c->lay->blocks && main && !strcmp(keys[i], "F6"))
            continue;
        int need = (int)(strlen(keys[i]) + strlen(what)) + 3;
        if (x + need > r->w)
            break;
        at_style ks = at_rd_role(c, AT_ROLE_KEY);
        ks.bg = st.bg;
        x += at_grid_printf(c->g, r->y, x, r->w - x, ks, " %s", keys[i]);
        x += at_grid_printf(c->g, r->y, x, r->w - x, st, " %s ", what);
    }
}

void at_render(at_grid *g, const at_model *m, const at_ui *ui, const at_layout *lay,
               const at_render_opts *o)
{
    at_rd c = {.g = g, .m = m, .ui = ui, .lay = lay, .o = o, .s = o->scheme, .end_step = -1};
    at_grid_clear(g, at_scheme_role(o->scheme, AT_ROLE_NORMAL));
    int ns = at_model_num_snapshots(m, ui->run);
    c.end = ns ? at_ui_end(ui, m) : 0;
    c.end_step = c.end > 0 ? at_model_snapshot_step(m, ui->run, c.end - 1) : -1;
    at_names_scan(&c.names, m, ui->run);
    at_verdict_compute(&c.verdict, m, ui->run, ui->space, c.end);
    if (lay->too_small) {
        /* the verdict still shows: a collapse must not hide behind a small terminal */
        draw_verdict(&c, 0, lay->cols);
        char msg[128];
        snprintf(msg, sizeof msg, "terminal too small: %dx%d, need %dx%d", lay->cols, lay->rows,
                 AT_MIN_COLS, AT_MIN_ROWS);
        int len = (int)strlen(msg);
        int x = lay->cols > len ? (lay->cols - len) / 2 : 0;
        at_grid_text(g, lay->rows / 2, x, lay->cols, msg, at_rd_role(&c, AT_ROLE_ERROR));
        return;
    }
    int nl = at_model_num_layers(m, ui->run);
    int *idx = malloc((size_t)(nl > 0 ? nl : 1) * sizeof(int));
    int nf = idx ? at_ui_filtered_layers(ui, m, idx) : 0;

    draw_header(&c);
    switch (ui->screen) {
    case AT_SCREEN_DETAIL:
        if (nf > 0 && ui->sel < nf)
            at_rd_detail(&c, idx[ui->sel]);
        break;
    case AT_SCREEN_HELP:
        draw_help(&c);
        break;
    case AT_SCREEN_RUNS:
        draw_runs(&c);
        break;
    default:
        if (lay->blocks)
            at_rd_blocks(&c, idx, nf);
        else
            draw_main(&c, idx, nf);
        if (ui->screen == AT_SCREEN_CONFIRM)
            draw_confirm(&c);
        break;
    }
    draw_status(&c);
    free(idx);
}
