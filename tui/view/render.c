/* render.c -- the monitor's screens drawn into a cell grid. */
#include "render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/band.h"

enum {
    G_UPPER_HALF = 0x2580,
    G_LOWER_HALF = 0x2584,
    G_FULL = 0x2588,
    G_SHADE = 0x2591,
    G_UP = 0x2191,
    G_DOWN = 0x2193,
    G_RIGHT = 0x2192,
    G_ELLIPSIS = 0x2026,
    G_VLINE = 0x2502,
    G_BULLET = 0x2022,
    G_DOT = 0x00B7,
    G_SPARK0 = 0x2581 /* U+2581..U+2588: eight bar heights */
};

/* Most per-frame buffers are sized by the screen; this bounds the stack ones. */
enum { MAX_COLS = 1024 };

typedef struct ctx {
    at_grid *g;
    const at_model *m;
    const at_ui *ui;
    const at_layout *lay;
    const at_render_opts *o;
    const at_scheme *s;
    int end;          /* snapshot columns shown: [0, end) */
    int64_t end_step; /* step of column end - 1; -1 if none */
} ctx;

static at_style role(const ctx *c, at_role r)
{
    return at_scheme_role(c->s, r);
}

static uint32_t glyph(const ctx *c, uint32_t uni, char ascii)
{
    return c->o->utf8 ? uni : (uint32_t)(unsigned char)ascii;
}

void at_render_step(int64_t step, char *buf)
{
    if (step < 10000)
        snprintf(buf, 16, "%d", (int)(step < -9999 ? -9999 : step));
    else if (step < 1000000)
        snprintf(buf, 16, "%.4gk", (double)step / 1e3);
    else
        snprintf(buf, 16, "%.4gM", (double)step / 1e6);
}

/* A value in at most 6 columns. */
static void fmt_val(double v, char *buf)
{
    double a = fabs(v);
    if (isnan(v))
        snprintf(buf, 16, "-");
    else if (a != 0 && (a < 0.01 || a >= 1e5))
        snprintf(buf, 16, "%.0e", v);
    else if (a >= 100)
        snprintf(buf, 16, "%.0f", v);
    else
        snprintf(buf, 16, "%.2f", v);
}

/* Badness of alpha: distance outside the healthy band. */
static double badness(double a)
{
    return a < AT_ALPHA_BURNT_BELOW ? AT_ALPHA_BURNT_BELOW - a
           : a > AT_ALPHA_RAW_ABOVE ? a - AT_ALPHA_RAW_ABOVE
                                    : 0.0;
}

/* The text role of core's verdict on a result (at_warning_for); healthy for a good alpha. */
static at_role verdict_role(at_warning w, at_role healthy)
{
    return w == AT_WARN_OVER_TRAINED    ? AT_ROLE_BURNT
           : w == AT_WARN_UNDER_TRAINED ? AT_ROLE_RAW
           : w == AT_WARN_FAILED        ? AT_ROLE_MISSING
                                        : healthy;
}

/* Core's verdict on a cell with a result: burnt, raw, failed/skipped or none (healthy). */
static at_warning cell_verdict(const at_cell *cell)
{
    return at_warning_for((at_fit_status)cell->status, cell->v[AT_METRIC_ALPHA]);
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
        double key = metric == AT_METRIC_ALPHA ? badness(x) : metric == AT_METRIC_TRAPS ? x : 0;
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

/* at_render_bucket through the cache for buckets of old columns. */
static int bucket(const ctx *c, int layer, const at_colspan *sp, int bi, int nsnap, double *v)
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

void at_pair_label(const char *a, const char *b, char *buf, size_t cap)
{
    size_t p = 0, i = 0;
    while (a[i] && a[i] == b[i]) {
        if (a[i] == '.')
            p = i + 1;
        i++;
    }
    snprintf(buf, cap, "%s/%s", a, b + p);
}

void at_render_layout(at_layout *lay, const at_model *m, const at_ui *ui, int rows, int cols,
                      int utf8)
{
    int n = at_model_num_layers(m, ui->run);
    int *idx = n ? malloc((size_t)n * sizeof(int)) : NULL;
    at_layout_in in = {.nlayers = idx ? at_ui_filtered_layers(ui, m, idx) : 0, .half_ok = utf8};
    char buf[300];
    for (int i = 0; i < in.nlayers; i++) {
        const char *a = at_model_layer(m, ui->run, idx[i])->name;
        int l = (int)strlen(a);
        in.name_len = l > in.name_len ? l : in.name_len;
        /* pairs start at even offsets from the top, which is kept even in half mode */
        if (i % 2 == 0 && i + 1 < in.nlayers) {
            at_pair_label(a, at_model_layer(m, ui->run, idx[i + 1])->name, buf, sizeof buf);
            l = (int)strlen(buf);
        }
        in.pair_len = l > in.pair_len ? l : in.pair_len;
    }
    free(idx);
    at_layout_compute(lay, rows, cols, &in);
}

/* Writes name into w columns, keeping its end (the informative part) when it is too long. */
static void put_name(const ctx *c, int y, int x, int w, const char *name, at_style st)
{
    int len = (int)strlen(name);
    if (len <= w) {
        at_grid_text(c->g, y, x, w, name, st);
        return;
    }
    if (w < 2) {
        at_grid_text(c->g, y, x, w, name, st);
        return;
    }
    at_grid_put(c->g, y, x, glyph(c, G_ELLIPSIS, '~'), st);
    at_grid_text(c->g, y, x + 1, w - 1, name + len - (w - 1), st);
}

/* ---- header ---------------------------------------------------------------------------- */

static void draw_sparkline(const ctx *c, int y, int x, int w, const at_series *s)
{
    size_t n = 0, end = s->n;
    while (end > 0 && c->end_step >= 0 && s->steps[end - 1] > c->end_step && c->ui->replay)
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
        int k = !isfinite(v) ? -1 : hi > lo ? (int)((v - lo) / (hi - lo) * 7.999) : 3;
        uint32_t ch = k < 0 ? ' ' : glyph(c, (uint32_t)(G_SPARK0 + k), ramp[k]);
        at_grid_put(c->g, y, x + (int)i, ch, role(c, AT_ROLE_PLOT));
    }
}

static void draw_header(const ctx *c)
{
    const at_layout *lay = c->lay;
    at_style hs = role(c, AT_ROLE_HEADER);
    at_grid_fill(c->g, lay->header.y, 0, 1, lay->cols, ' ', hs);
    const at_run_info *ri = at_model_run(c->m, c->ui->run);
    const at_monitor_state *st = at_model_state(c->m);
    char buf[512], a[16], b[16];
    int x = at_grid_text(c->g, 0, 0, lay->cols, " alphatop ", hs);
    if (!ri) {
        at_grid_text(c->g, 0, x, lay->cols - x, " waiting for a trainer to publish...", hs);
    } else {
        at_render_step(ri->step, a);
        at_render_step(ri->interval, b);
        int len = snprintf(buf, sizeof buf, " run %s", ri->name[0] ? ri->name : ri->id);
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
        if (ri->stop_requested)
            snprintf(buf + len, sizeof buf - (size_t)len, "  STOP REQUESTED");
        at_grid_text(c->g, 0, x, lay->cols - x, buf, hs);
    }

    if (c->ui->replay) {
        /* a recording: where the slider is matters, the live monitor state does not */
        int64_t last =
            at_model_snapshot_step(c->m, c->ui->run, at_model_num_snapshots(c->m, c->ui->run) - 1);
        at_render_step(c->end_step < 0 ? 0 : c->end_step, a);
        at_render_step(last < 0 ? 0 : last, b);
        at_grid_printf(c->g, 1, 0, lay->cols, role(c, AT_ROLE_TITLE),
                       " REPLAY to step %s of %s   < > move the slider", a, b);
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
        at_grid_text(c->g, 1, 0, lay->cols, buf, role(c, AT_ROLE_DIM));
        if (st->paused)
            at_grid_text(c->g, 1, len, lay->cols - len, "  PAUSED", role(c, AT_ROLE_TRAP));
    }

    x = 1;
    int ns = at_model_num_scalars(c->m, c->ui->run);
    for (int i = 0; i < ns && x < lay->cols - 8; i++) {
        at_series s;
        at_model_scalar(c->m, c->ui->run, i, &s);
        size_t last = s.n;
        while (last > 0 && c->ui->replay && s.steps[last - 1] > c->end_step)
            last--;
        if (!last)
            continue;
        char v[16];
        fmt_val(s.values[last - 1], v);
        x +=
            at_grid_printf(c->g, 2, x, lay->cols - x, role(c, AT_ROLE_NORMAL), "%s %s ", s.name, v);
        int w = lay->cols - x < 16 ? lay->cols - x : 16;
        draw_sparkline(c, 2, x, w, &s);
        x += w + 2;
    }
}

/* ---- heatmap --------------------------------------------------------------------------- */

/* Colour (palette index) and level of a shown value; state as at_render_bucket. */
typedef struct shade {
    int state; /* 1 value, 0 empty, -1 missing */
    int level;
    int16_t color;
} shade;

static shade shade_of(const ctx *c, int state, double v, double lo, double hi)
{
    shade r = {state, -1, AT_COLOR_DEFAULT};
    at_scale sc = at_metric_scale(c->ui->metric);
    if (state == 1) {
        r.level = at_scale_level(sc, v, lo, hi);
        r.color = at_scheme_level_color(c->s, sc, r.level);
    } else if (state < 0) {
        r.color = at_scheme_missing_color(c->s);
    }
    return r;
}

/* One heat cell with one layer (full row). */
static void put_full(const ctx *c, int y, int x, shade a)
{
    at_style st = {AT_COLOR_DEFAULT, AT_COLOR_DEFAULT, 0};
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
        at_grid_put(c->g, y, x, a.state < 0 ? G_SHADE : G_FULL, st);
    }
}

/* One heat cell holding two layers: upper half = upper layer, lower half = lower layer. */
static void put_half(const ctx *c, int y, int x, shade up, shade lo)
{
    at_style st = {AT_COLOR_DEFAULT, AT_COLOR_DEFAULT, 0};
    if (up.state == 0 && lo.state == 0) {
        at_grid_put(c->g, y, x, ' ', st);
    } else if (up.state == 0) {
        st.fg = lo.color;
        at_grid_put(c->g, y, x, G_LOWER_HALF, st);
    } else {
        st.fg = up.color;
        st.bg = lo.state == 0 ? AT_COLOR_DEFAULT : lo.color;
        at_grid_put(c->g, y, x, G_UPPER_HALF, st);
    }
}

/* Latest value and trend arrow of a layer up to column end. */
static void side_value(const ctx *c, int layer, char *txt, uint32_t *arrow, at_style *st)
{
    double v[2] = {NAN, NAN};
    int found = 0;
    for (int col = c->end - 1; col >= 0 && found < 2; col--) {
        const at_cell *cell = at_model_cell(c->m, c->ui->run, layer, c->ui->space, col);
        if (cell && cell->status == AT_FIT_SUCCESS && !isnan(cell->v[c->ui->metric]))
            v[found++] = cell->v[c->ui->metric];
    }
    if (c->ui->metric == AT_METRIC_TRAPS && !isnan(v[0]))
        snprintf(txt, 16, "%.0f", v[0]);
    else
        fmt_val(v[0], txt);
    *arrow = ' ';
    *st = role(c, AT_ROLE_NORMAL);
    if (found == 0)
        return;
    if (found == 2) {
        double d = v[0] - v[1], tol = 0.01 * fmax(fabs(v[0]), 1e-12);
        *arrow = d > tol    ? glyph(c, G_UP, '^')
                 : d < -tol ? glyph(c, G_DOWN, 'v')
                            : glyph(c, G_RIGHT, '-');
    }
    if (c->ui->metric == AT_METRIC_ALPHA)
        *st = role(c, verdict_role(at_warning_for(AT_FIT_SUCCESS, v[0]), AT_ROLE_OK));
}

static void draw_axis(const ctx *c, const at_colspan *sp, int ncol)
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
        at_grid_put(c->g, r->y, r->x + k, glyph(c, 0x2514, '\''), role(c, AT_ROLE_DIM));
        at_grid_text(c->g, r->y, r->x + k + 1, len, buf, role(c, AT_ROLE_DIM));
        next = k + len + 4;
    }
    /* mark the last compressed bucket (at_layout_columns: the newest width/2 columns are
     * single snapshots), where the title row has room */
    if (ncol > 0 && sp[0].c1 - sp[0].c0 > 1) {
        int hw = r->w < MAX_COLS ? r->w : MAX_COLS;
        int k = ncol - hw / 2 - 1;
        const at_gcell *gc = at_grid_at(c->g, c->lay->titles.y, r->x + k);
        if (gc && gc->ch == ' ')
            at_grid_put(c->g, c->lay->titles.y, r->x + k, glyph(c, 0x25BE, 'v'),
                        role(c, AT_ROLE_DIM));
    }
}

static void draw_colorbar(const ctx *c, double lo, double hi)
{
    const at_rect *r = &c->lay->colorbar;
    at_scale sc = at_metric_scale(c->ui->metric);
    int n = at_scale_levels(sc);
    int x = r->x + 1;
    at_style dim = role(c, AT_ROLE_DIM);
    char buf[32];
    for (int k = 0; k < n; k++) {
        if (sc == AT_SCALE_ALPHA) {
            if (k == 0)
                x += at_grid_text(c->g, r->y, x, r->w - x, "burnt <", role(c, AT_ROLE_BURNT));
            if (k == 5)
                x += at_grid_text(c->g, r->y, x, r->w - x, " 2 ", dim);
            if (k == 13)
                x += at_grid_text(c->g, r->y, x, r->w - x, " 6 ", dim);
        } else if (sc == AT_SCALE_TRAPS) {
            static const char *const tl[AT_TRAP_LEVELS] = {"0", "1", "2", "3", "5", "8+"};
            x += at_grid_printf(c->g, r->y, x, r->w - x, dim, " %s", tl[k]);
        } else if (k == 0) {
            fmt_val(isfinite(lo) ? lo : NAN, buf);
            x += at_grid_printf(c->g, r->y, x, r->w - x, dim, "%s ", buf);
        }
        shade s = {1, k, at_scheme_level_color(c->s, sc, k)};
        put_full(c, r->y, x++, s);
        if (sc == AT_SCALE_ALPHA || sc == AT_SCALE_SEQ)
            put_full(c, r->y, x++, s);
    }
    if (sc == AT_SCALE_ALPHA)
        x += at_grid_text(c->g, r->y, x, r->w - x, "> raw", role(c, AT_ROLE_RAW));
    else if (sc == AT_SCALE_SEQ) {
        fmt_val(isfinite(hi) ? hi : NAN, buf);
        x += at_grid_printf(c->g, r->y, x, r->w - x, dim, " %s", buf);
    }
    x += 3;
    shade miss = {-1, -1, at_scheme_missing_color(c->s)};
    put_full(c, r->y, x++, miss);
    const char *label = r->x + r->w - x - 1 >= 14 ? "failed/skipped" : "failed";
    at_grid_text(c->g, r->y, x + 1, r->x + r->w - x - 1, label, dim);
}

/* ---- warnings panel -------------------------------------------------------------------- */

typedef struct lines {
    const ctx *c;
    const at_rect *r;
    int row;
} lines;

static int line_room(const lines *L)
{
    return L->row < L->r->h;
}

static void line_add(lines *L, at_role ro, const char *fmt, const char *a, const char *b)
{
    if (!line_room(L))
        return;
    char buf[256];
    snprintf(buf, sizeof buf, fmt, a, b);
    at_grid_text(L->c->g, L->r->y + L->row, L->r->x, L->r->w, buf, role(L->c, ro));
    L->row++;
}

/* Latest cell of layer with a result, up to the shown end; NULL if none. */
static const at_cell *latest_cell(const ctx *c, int layer)
{
    for (int col = c->end - 1; col >= 0; col--) {
        const at_cell *cell = at_model_cell(c->m, c->ui->run, layer, c->ui->space, col);
        if (cell && cell->status != AT_CELL_EMPTY)
            return cell;
    }
    return NULL;
}

/* The text role of a layer's new phase (core's at_layer_phase). */
static at_role phase_role(at_layer_phase p)
{
    return p == AT_LAYER_BURNT    ? AT_ROLE_BURNT
           : p == AT_LAYER_RAW    ? AT_ROLE_RAW
           : p == AT_LAYER_FAILED ? AT_ROLE_MISSING
                                  : AT_ROLE_OK;
}

static void draw_warnings(const ctx *c)
{
    const at_rect *r = &c->lay->warnings;
    if (r->h <= 0 || r->w <= 0)
        return;
    int run = c->ui->run, nl = at_model_num_layers(c->m, run);
    lines L = {c, r, 0};
    int nb = 0, nr = 0, nt = 0, nf = 0;
    for (int l = 0; l < nl; l++) {
        const at_cell *cell = latest_cell(c, l);
        if (!cell)
            continue;
        at_warning w = cell_verdict(cell);
        nb += w == AT_WARN_OVER_TRAINED;
        nr += w == AT_WARN_UNDER_TRAINED;
        nt += cell->v[AT_METRIC_TRAPS] > 0;
        nf += cell->status == AT_FIT_FAILED;
    }
    char buf[128];
    snprintf(buf, sizeof buf, "%d burnt  %d raw  %d trapped  %d failed", nb, nr, nt, nf);
    line_add(&L, AT_ROLE_TITLE, "warnings: %s%s", buf, "");
    for (int l = 0; l < nl && line_room(&L); l++) {
        const at_cell *cell = latest_cell(c, l);
        if (!cell)
            continue;
        const char *name = at_model_layer(c->m, run, l)->name;
        char v[32];
        float a = cell->v[AT_METRIC_ALPHA], t = cell->v[AT_METRIC_TRAPS];
        at_warning w = cell_verdict(cell);
        if (w == AT_WARN_OVER_TRAINED || w == AT_WARN_UNDER_TRAINED) {
            snprintf(v, sizeof v, "%.2f", (double)a);
            line_add(&L, verdict_role(w, AT_ROLE_OK),
                     w == AT_WARN_OVER_TRAINED ? "burnt %s alpha %s" : "raw   %s alpha %s", name,
                     v);
        }
        if (t > 0) {
            snprintf(v, sizeof v, "%.0f", (double)t);
            line_add(&L, AT_ROLE_TRAP, "traps %s %s", name, v);
        }
        if (cell->status == AT_FIT_FAILED)
            line_add(&L, AT_ROLE_MISSING, "fail  %s%s", name, "");
    }
    if (!line_room(&L))
        return;
    line_add(&L, AT_ROLE_TITLE, "%s%s", "recent events", "");
    for (int i = at_model_num_events(c->m) - 1; i >= 0 && line_room(&L); i--) {
        const at_event *e = at_model_event(c->m, i);
        if ((e->run != run && e->run != -1) || (c->end_step >= 0 && e->step > c->end_step))
            continue;
        char st[16] = "@";
        if (e->step >= 0)
            at_render_step(e->step, st + 1);
        at_role ro = e->kind == AT_EVENT_PHASE   ? phase_role(e->to)
                     : e->kind == AT_EVENT_TRAP  ? AT_ROLE_TRAP
                     : e->kind == AT_EVENT_ERROR ? AT_ROLE_ERROR
                                                 : AT_ROLE_NORMAL;
        if (e->kind == AT_EVENT_PHASE && e->layer >= 0 && e->layer < nl) {
            char what[200];
            snprintf(what, sizeof what, "%-7s %s%s", at_layer_phase_name(e->to),
                     at_model_layer(c->m, run, e->layer)->name,
                     e->space == AT_SPACE_DELTA ? " (delta)" : "");
            line_add(&L, ro, "%-7s %s", st, what);
        } else {
            char what[200];
            snprintf(what, sizeof what, "%s: %s", at_event_kind_name(e->kind), e->text);
            line_add(&L, ro, e->step >= 0 ? "%-7s %s" : "%.0s%s", st, what);
        }
    }
}

static void draw_main(const ctx *c, int *idx, int nf)
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
            states[j] = (signed char)bucket(c, idx[ui->top + i], &sp[k], k, nsnap, &vals[j]);
            if (states[j] == 1) {
                lo = vals[j] < lo ? vals[j] : lo;
                hi = vals[j] > hi ? vals[j] : hi;
            }
        }

    at_style title = role(c, AT_ROLE_TITLE);
    at_grid_text(c->g, lay->titles.y, lay->names.x, lay->names.w, "layer", title);
    char range[64] = "";
    if (shown < nf)
        snprintf(range, sizeof range, "  layers %d-%d of %d", ui->top + 1, ui->top + shown, nf);
    at_grid_printf(c->g, lay->titles.y, lay->heat.x, lay->heat.w, title, "%s%s%s%s%s",
                   at_metric_name(ui->metric), ui->space == AT_SPACE_DELTA ? " of W-W_base" : "",
                   range, ui->back ? "  (back in time: Esc = live)" : "",
                   ui->filter[0] ? "  (filtered)" : "");
    at_grid_text(c->g, lay->titles.y, lay->side.x, lay->side.w, "now", title);

    for (int row = 0; row * lpr < shown; row++) {
        int y = lay->heat.y + row;
        int i0 = ui->top + row * lpr;
        int has2 = lpr == 2 && i0 + 1 < ui->top + shown;
        int sel0 = ui->sel == i0, sel1 = has2 && ui->sel == i0 + 1;
        at_style ns = role(c, AT_ROLE_NORMAL), ss = role(c, AT_ROLE_SELECTED);
        const char *n0 = at_model_layer(c->m, ui->run, idx[i0])->name;
        if (lpr == 1) {
            put_name(c, y, lay->names.x, lay->names.w, n0, sel0 ? ss : ns);
        } else if (!has2) {
            put_name(c, y, lay->names.x, lay->names.w, n0, sel0 ? ss : ns);
        } else {
            char label[300];
            at_pair_label(n0, at_model_layer(c->m, ui->run, idx[i0 + 1])->name, label,
                          sizeof label);
            /* the selected half of the label is highlighted */
            put_name(c, y, lay->names.x, lay->names.w, label, ns);
            int len = (int)strlen(label), split = (int)(strchr(label, '/') - label);
            int off = len > lay->names.w ? len - lay->names.w : 0;
            int a0 = sel0 ? 0 : split + 1 - off, a1 = sel0 ? split - off : lay->names.w;
            for (int x = a0 < 0 ? 0 : a0; (sel0 || sel1) && x < a1 && x < lay->names.w; x++) {
                const at_gcell *gc = at_grid_at(c->g, y, lay->names.x + x);
                if (gc)
                    at_grid_put(c->g, y, lay->names.x + x, gc->ch, ss);
            }
        }
        for (int k = 0; k < ncol; k++) {
            size_t j = (size_t)(i0 - ui->top) * (size_t)ncol + (size_t)k;
            shade a = shade_of(c, states[j], vals[j], lo, hi);
            if (lpr == 1) {
                put_full(c, y, lay->heat.x + k, a);
            } else {
                shade b = {0, -1, AT_COLOR_DEFAULT};
                if (has2)
                    b = shade_of(c, states[j + (size_t)ncol], vals[j + (size_t)ncol], lo, hi);
                put_half(c, y, lay->heat.x + k, a, b);
            }
        }
        for (int j = 0; j < lpr && i0 + j < ui->top + shown; j++) {
            char txt[16];
            uint32_t arrow;
            at_style st;
            side_value(c, idx[i0 + j], txt, &arrow, &st);
            int x = lay->side.x + (lpr == 1 ? 0 : j * 6);
            if (ui->sel == i0 + j)
                st.attr |= AT_ATTR_REVERSE;
            at_grid_printf(c->g, y, x, 5 + (lpr == 1), st, lpr == 1 ? "%6s" : "%5s", txt);
            at_grid_put(c->g, y, x + 5 + (lpr == 1), arrow, st);
        }
    }
    if (nf == 0) {
        const char *msg = at_model_num_layers(c->m, ui->run) ? "no layer matches the filter"
                                                             : "waiting for the first snapshot...";
        at_grid_text(c->g, lay->heat.y, lay->heat.x, lay->heat.w, msg, role(c, AT_ROLE_DIM));
    }
    free(vals);
    free(states);
    draw_axis(c, sp, ncol);
    draw_colorbar(c, lo, hi);
    draw_warnings(c);
}

/* ---- layer detail ---------------------------------------------------------------------- */

/* Log-log plot of the spectrum's density with the fitted power law and xmin. */
static void draw_spectrum(const ctx *c, const at_spectrum *sp, at_rect r)
{
    at_style dim = role(c, AT_ROLE_DIM);
    if (!sp || sp->n < 2 || r.w < 20 || r.h < 6) {
        at_grid_text(c->g, r.y, r.x, r.w, "no spectrum yet", dim);
        return;
    }
    at_grid_printf(c->g, r.y, r.x, r.w, role(c, AT_ROLE_TITLE),
                   "eigenvalue density, log-log (step %lld, %zu eigenvalues)", (long long)sp->step,
                   sp->n);
    int lab = 7; /* y labels */
    int pw = r.w - lab, ph = r.h - 3, py = r.y + 1, px = r.x + lab;
    if (pw > MAX_COLS)
        pw = MAX_COLS;
    size_t first = 0;
    while (first < sp->n && !(sp->evals[first] > 1e-5f))
        first++;
    size_t n = sp->n - first;
    if (n < 2 || !(sp->evals[sp->n - 1] > sp->evals[first])) {
        at_grid_text(c->g, py, px, pw, "spectrum too degenerate to plot", dim);
        return;
    }
    double x0 = log10(sp->evals[first]), x1 = log10(sp->evals[sp->n - 1]);
    double bw = (x1 - x0) / pw;
    double dens[MAX_COLS];
    size_t j = first;
    for (int k = 0; k < pw; k++) {
        double e_hi = pow(10, x0 + (k + 1) * bw);
        size_t cnt = 0;
        while (j < sp->n && (sp->evals[j] <= e_hi || k == pw - 1)) {
            cnt++;
            j++;
        }
        double width = e_hi - pow(10, x0 + k * bw);
        dens[k] = cnt ? log10((double)cnt / ((double)n * width)) : NAN;
    }
    double ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < pw; k++)
        if (!isnan(dens[k])) {
            ylo = fmin(ylo, dens[k]);
            yhi = fmax(yhi, dens[k]);
        }
    if (!(yhi > ylo))
        yhi = ylo + 1;
    at_grid_printf(c->g, py, r.x, lab - 1, dim, "%5.0e", pow(10, yhi));
    at_grid_printf(c->g, py + ph - 1, r.x, lab - 1, dim, "%5.0e", pow(10, ylo));
    for (int y = 0; y < ph; y++)
        at_grid_put(c->g, py + y, px - 1, glyph(c, G_VLINE, '|'), dim);
    /* the fitted power law over the tail: p(x) = (alpha-1)/xmin (x/xmin)^-alpha, times the
     * tail's share of the eigenvalues */
    size_t tail = 0;
    for (size_t i = first; i < sp->n; i++)
        tail += sp->evals[i] >= sp->xmin;
    int xm = sp->xmin > 0 ? (int)floor((log10(sp->xmin) - x0) / bw) : -1;
    if (sp->alpha > 1 && sp->xmin > 0 && tail > 0)
        for (int k = xm < 0 ? 0 : xm; k < pw; k++) {
            double lx = x0 + (k + 0.5) * bw;
            double ly = log10((sp->alpha - 1) / sp->xmin) - sp->alpha * (lx - log10(sp->xmin)) +
                        log10((double)tail / (double)n);
            int y = (int)lround((yhi - ly) / (yhi - ylo) * (ph - 1));
            if (y >= 0 && y < ph)
                at_grid_put(c->g, py + y, px + k, glyph(c, G_DOT, '.'), role(c, AT_ROLE_FIT));
        }
    if (xm >= 0 && xm < pw)
        for (int y = 0; y < ph; y++)
            at_grid_put(c->g, py + y, px + xm, glyph(c, 0x250A, ':'), role(c, AT_ROLE_FIT));
    for (int k = 0; k < pw; k++) {
        if (isnan(dens[k]))
            continue;
        int y = (int)lround((yhi - dens[k]) / (yhi - ylo) * (ph - 1));
        at_grid_put(c->g, py + y, px + k, glyph(c, G_BULLET, '*'), role(c, AT_ROLE_PLOT));
    }
    int by = py + ph;
    at_grid_printf(c->g, by, px, pw, dim, "%.0e", pow(10, x0));
    char right[32];
    int rl = snprintf(right, sizeof right, "%.0e", pow(10, x1));
    at_grid_text(c->g, by, px + pw - rl, rl, right, dim);
    if (xm >= 0 && xm < pw)
        at_grid_printf(c->g, by + 1, px + (xm > 8 ? xm - 8 : 0), pw, role(c, AT_ROLE_FIT),
                       "xmin %.3g ^  fit: alpha %.2f (dots)", sp->xmin, sp->alpha);
}

static void draw_detail(const ctx *c, int layer)
{
    const at_layout *lay = c->lay;
    const at_layer_info *li = at_model_layer(c->m, c->ui->run, layer);
    at_rect b = lay->body;
    if (!li)
        return;
    char shape[64] = "";
    int len = 0;
    for (int i = 0; i < li->ndim; i++)
        len += snprintf(shape + len, sizeof shape - (size_t)len, i ? "x%lld" : "%lld",
                        (long long)li->shape[i]);
    static const char *const kinds[] = {"linear", "conv2d", "embedding", "conv1d"};
    at_grid_printf(c->g, b.y, 0, lay->cols, role(c, AT_ROLE_TITLE), " %s  %s %s%s", li->name,
                   (unsigned)li->kind < 4 ? kinds[li->kind] : "?", shape,
                   c->ui->space == AT_SPACE_DELTA ? "  (delta W-W_base)" : "");
    int hw = b.w * 3 / 5;
    at_rect plot = {b.y + 2, 1, b.h - 2, hw - 2};
    draw_spectrum(c, at_model_spectrum(c->m, c->ui->run, layer, c->ui->space), plot);

    /* history: the last snapshots, newest first */
    int x = hw + 1, w = b.w - hw - 1, y = b.y + 2;
    at_grid_text(c->g, y++, x, w, "step      alpha  a_w    traps  mode", role(c, AT_ROLE_TITLE));
    for (int col = c->end - 1; col >= 0 && y < b.y + b.h; col--) {
        const at_cell *cell = at_model_cell(c->m, c->ui->run, layer, c->ui->space, col);
        if (!cell || cell->status == AT_CELL_EMPTY)
            continue;
        char st[16], a[16], aw[16], t[16];
        at_render_step(at_model_snapshot_step(c->m, c->ui->run, col), st);
        fmt_val(cell->v[AT_METRIC_ALPHA], a);
        fmt_val(cell->v[AT_METRIC_ALPHA_WEIGHTED], aw);
        snprintf(t, sizeof t, "%.0f", (double)cell->v[AT_METRIC_TRAPS]);
        if (isnan(cell->v[AT_METRIC_TRAPS]))
            snprintf(t, sizeof t, "-");
        at_role ro = verdict_role(cell_verdict(cell), AT_ROLE_NORMAL);
        if (cell->status != AT_FIT_SUCCESS)
            snprintf(a, sizeof a, "%s", at_fit_status_name((at_fit_status)cell->status));
        at_grid_printf(c->g, y++, x, w, role(c, ro), "%-9s %-6s %-6s %-6s %s", st, a, aw, t,
                       at_mode_name((at_mode)cell->mode));
    }
}

/* ---- help, run picker, confirmation, status -------------------------------------------- */

static const char *const help_lines[] = {
    "alphatop: every layer of a training run, live. Alpha is the power-law exponent of a layer's",
    "eigenvalue spectrum: 2..6 healthy (2 ideal), < 2 burnt (over-fit), > 6 raw (under-fit).",
    "",
    "  Up/Down, k/j      select a layer            PgUp/PgDn, Space  page",
    "  Home/End, g/G     first / last layer        Left/Right, h/l   scroll back / forward in time",
    "  Enter             layer detail (spectrum, fit, history); Enter or Esc goes back",
    "  Tab / Shift-Tab   next / previous metric    1..7              alpha, alpha_weighted,",
    "                                               log_norm, log_spectral_norm, stable_rank,",
    "                                               traps, detX gap",
    "  d                 W <-> delta (W - W_base, fine-tunes)",
    "  /                 filter layers by name (Enter keeps it, Esc clears it)",
    "  p                 pause / resume analysis   s                 ask the trainer to stop (y/n)",
    "  r                 pick a run (several runs publishing)",
    "  < >  , .          replay: move the time slider one snapshot",
    "  Esc               back / clear filter / return to live   ?  this help    q  quit",
    "  mouse click       select the layer under the pointer    Ctrl-L  redraw the screen",
    "",
    "Heatmap: one row per layer (two per row with half blocks when they do not fit), one column",
    "per snapshot. When snapshots do not fit, the newest half of the columns show one snapshot",
    "each and the older ones are grouped in equal buckets showing the worst alpha (farthest",
    "outside 2..6), the most traps, or the latest value for other metrics.",
};

static void draw_help(const ctx *c)
{
    at_rect b = c->lay->body;
    int n = (int)(sizeof help_lines / sizeof help_lines[0]);
    for (int i = c->ui->help_top, y = b.y + 1; i < n && y < b.y + b.h; i++, y++)
        at_grid_text(c->g, y, 1, b.w - 1, help_lines[i],
                     role(c, i < 2 ? AT_ROLE_TITLE : AT_ROLE_NORMAL));
}

static void draw_runs(const ctx *c)
{
    at_rect b = c->lay->body;
    at_grid_text(c->g, b.y + 1, 1, b.w - 1,
                 "  run                  host             step       layers  snapshots",
                 role(c, AT_ROLE_TITLE));
    for (int i = 0; i < at_model_num_runs(c->m) && b.y + 2 + i < b.y + b.h; i++) {
        const at_run_info *ri = at_model_run(c->m, i);
        char st[16];
        at_render_step(ri->step, st);
        at_style s = role(c, i == c->ui->run_cursor ? AT_ROLE_SELECTED : AT_ROLE_NORMAL);
        at_grid_printf(c->g, b.y + 2 + i, 1, b.w - 1, s, "%c %-20.20s %-16.16s %-10s %-7d %d%s",
                       i == c->ui->run ? '*' : ' ', ri->name[0] ? ri->name : ri->id, ri->host, st,
                       at_model_num_layers(c->m, i), at_model_num_snapshots(c->m, i),
                       ri->ended ? "  ended" : "");
    }
}

static void draw_confirm(const ctx *c)
{
    const at_run_info *ri = at_model_run(c->m, c->ui->run);
    char msg[200];
    snprintf(msg, sizeof msg, " Ask run %s to stop training? [y/N] ",
             ri ? (ri->name[0] ? ri->name : ri->id) : "?");
    int w = (int)strlen(msg) + 2, h = 3;
    int y = c->lay->rows / 2 - 1, x = (c->lay->cols - w) / 2;
    at_style st = role(c, AT_ROLE_ERROR);
    st.attr |= AT_ATTR_REVERSE;
    at_grid_fill(c->g, y, x, h, w, ' ', st);
    at_grid_text(c->g, y + 1, x + 1, w - 2, msg, st);
}

static void draw_status(const ctx *c)
{
    const at_rect *r = &c->lay->status;
    at_style st = role(c, AT_ROLE_STATUS);
    at_grid_fill(c->g, r->y, 0, 1, r->w, ' ', st);
    if (c->ui->filtering) {
        at_grid_printf(c->g, r->y, 0, r->w, st, " filter: %s_   (Enter keep, Esc clear)",
                       c->ui->filter);
        return;
    }
    static const char *const keys[][2] = {{"q", "quit"},       {"?", "help"},    {"Tab", "metric"},
                                          {"Enter", "detail"}, {"/", "filter"},  {"p", "pause"},
                                          {"s", "stop"},       {"d", "W/delta"}, {"r", "runs"}};
    int x = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && x < r->w; i++) {
        at_style ks = role(c, AT_ROLE_KEY);
        ks.bg = st.bg;
        x += at_grid_printf(c->g, r->y, x, r->w - x, ks, " %s", keys[i][0]);
        x += at_grid_printf(c->g, r->y, x, r->w - x, st, " %s ", keys[i][1]);
    }
    if (c->ui->replay)
        at_grid_text(c->g, r->y, x, r->w - x, " < > slider", st);
}

void at_render(at_grid *g, const at_model *m, const at_ui *ui, const at_layout *lay,
               const at_render_opts *o)
{
    ctx c = {g, m, ui, lay, o, o->scheme, 0, -1};
    at_grid_clear(g, at_scheme_role(o->scheme, AT_ROLE_NORMAL));
    if (lay->too_small) {
        char msg[128];
        snprintf(msg, sizeof msg, "terminal too small: %dx%d, need %dx%d", lay->cols, lay->rows,
                 AT_MIN_COLS, AT_MIN_ROWS);
        int len = (int)strlen(msg);
        int x = lay->cols > len ? (lay->cols - len) / 2 : 0;
        at_grid_text(g, lay->rows / 2, x, lay->cols, msg, role(&c, AT_ROLE_ERROR));
        return;
    }
    int ns = at_model_num_snapshots(m, ui->run);
    c.end = ui->limit_step >= 0 ? at_model_snapshot_at(m, ui->run, ui->limit_step) + 1 : ns;
    c.end -= ui->back;
    if (c.end < 0 || ns == 0)
        c.end = 0;
    c.end_step = c.end > 0 ? at_model_snapshot_step(m, ui->run, c.end - 1) : -1;
    int nl = at_model_num_layers(m, ui->run);
    int *idx = malloc((size_t)(nl > 0 ? nl : 1) * sizeof(int));
    int nf = idx ? at_ui_filtered_layers(ui, m, idx) : 0;

    draw_header(&c);
    switch (ui->screen) {
    case AT_SCREEN_DETAIL:
        if (nf > 0 && ui->sel < nf)
            draw_detail(&c, idx[ui->sel]);
        break;
    case AT_SCREEN_HELP:
        draw_help(&c);
        break;
    case AT_SCREEN_RUNS:
        draw_runs(&c);
        break;
    default:
        draw_main(&c, idx, nf);
        if (ui->screen == AT_SCREEN_CONFIRM)
            draw_confirm(&c);
        break;
    }
    draw_status(&c);
    free(idx);
}
