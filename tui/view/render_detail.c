/* SPDX-License-Identifier: Apache-2.0 */
/* render_detail.c -- one layer: its verdict and advice, its eigenvalue spectrum (ESD) as a
 * log-log histogram with the fitted power law and xmin, and its history. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "render_int.h"

enum { MAX_PLOT = 1024, G_XMIN = 0x250A, G_TICK = 0x2534, G_EIGHTH = 0x2581 /* 1/8 .. 7/8 */ };

/* The plot's frame: rows py .. py + ph - 1, columns px .. px + pw - 1, log10 x from x0 with bw
 * per column, log10 density from ylo to yhi. */
typedef struct plot {
    int py, px, ph, pw;
    double x0, bw, ylo, yhi;
} plot;

/* Row of log density ly, 0 = top (may be outside the plot). */
static int row_of(const plot *p, double ly)
{
    return (int)lround((p->yhi - ly) / (p->yhi - p->ylo) * (p->ph - 1));
}

/* Labels along the x axis, placed in priority order and dropped where they would touch an
 * already placed one, so none overlaps. */
typedef struct labels {
    int lo[4], hi[4], n;
} labels;

static void label(const at_rd *c, labels *L, int y, int x, int xmin, int xmax, const char *s,
                  at_style st)
{
    int w = (int)strlen(s);
    if (x + w > xmax)
        x = xmax - w;
    if (x < xmin)
        x = xmin;
    if (x + w > xmax || L->n == 4)
        return;
    for (int i = 0; i < L->n; i++)
        if (x <= L->hi[i] && x + w - 1 >= L->lo[i] - 1 && x <= L->hi[i] + 1)
            return;
    at_grid_text(c->g, y, x, w, s, st);
    L->lo[L->n] = x;
    L->hi[L->n++] = x + w - 1;
}

/* The ESD of sp in rect r: bars of the log density per log-spaced bin (grey below xmin,
 * light above it), the fitted power law over the tail (its whole stretch inside the plot),
 * xmin marked, and a legend that stays inside r. tail: eigenvalues of the fit (0 unknown). */
static void draw_esd(const at_rd *c, const at_spectrum *sp, at_rect r, int tail)
{
    at_style dim = at_rd_role(c, AT_ROLE_DIM), fit = at_rd_role(c, AT_ROLE_FIT);
    if (!sp || sp->n < 2 || r.w < 24 || r.h < 7) {
        at_grid_text(c->g, r.y, r.x, r.w,
                     sp ? "too little room for the spectrum" : "no spectrum yet", dim);
        return;
    }
    at_grid_printf(c->g, r.y, r.x, r.w, at_rd_role(c, AT_ROLE_TITLE),
                   "ESD, log-log: eigenvalue density (step %lld, %zu eigenvalues)",
                   (long long)sp->step, sp->n);
    enum { LAB = 7 };
    plot p = {r.y + 1, r.x + LAB, r.h - 4, r.w - LAB, 0, 0, 0, 0};
    if (p.pw > MAX_PLOT)
        p.pw = MAX_PLOT;
    size_t first = 0;
    while (first < sp->n && !(sp->evals[first] > 1e-5f))
        first++;
    size_t n = sp->n - first;
    if (n < 2 || !(sp->evals[sp->n - 1] > sp->evals[first])) {
        at_grid_text(c->g, p.py, p.px, p.pw, "spectrum too degenerate to plot", dim);
        return;
    }
    p.x0 = log10(sp->evals[first]);
    double x1 = log10(sp->evals[sp->n - 1]);
    p.bw = (x1 - p.x0) / p.pw;
    double dens[MAX_PLOT];
    size_t j = first;
    for (int k = 0; k < p.pw; k++) {
        double e_hi = pow(10, p.x0 + (k + 1) * p.bw);
        size_t cnt = 0;
        while (j < sp->n && (sp->evals[j] <= e_hi || k == p.pw - 1)) {
            cnt++;
            j++;
        }
        double width = e_hi - pow(10, p.x0 + k * p.bw);
        dens[k] = cnt ? log10((double)cnt / ((double)n * width)) : NAN;
    }
    /* the fitted law over the tail: p(x) = (alpha-1)/xmin (x/xmin)^-alpha, times the tail's
     * share of the eigenvalues */
    size_t in_tail = 0;
    for (size_t i = first; i < sp->n; i++)
        in_tail += sp->evals[i] >= sp->xmin;
    int has_fit = sp->alpha > 1 && sp->xmin > 0 && in_tail > 0 && isfinite(sp->alpha);
    int xm = has_fit ? (int)floor((log10(sp->xmin) - p.x0) / p.bw) : -1;
    if (xm >= p.pw)
        has_fit = 0;
    if (xm < 0)
        xm = 0;
    double fitv[MAX_PLOT];
    p.ylo = INFINITY;
    p.yhi = -INFINITY;
    for (int k = 0; k < p.pw; k++) {
        fitv[k] = NAN;
        if (has_fit && k >= xm) {
            double lx = p.x0 + (k + 0.5) * p.bw;
            fitv[k] = log10((sp->alpha - 1) / sp->xmin) - sp->alpha * (lx - log10(sp->xmin)) +
                      log10((double)in_tail / (double)n);
        }
        /* the y range holds the bars and the whole fitted line */
        double v[2] = {dens[k], fitv[k]};
        for (int i = 0; i < 2; i++)
            if (!isnan(v[i])) {
                p.ylo = fmin(p.ylo, v[i]);
                p.yhi = fmax(p.yhi, v[i]);
            }
    }
    if (!(p.yhi > p.ylo))
        p.yhi = p.ylo + 1;
    p.ylo -= (p.yhi - p.ylo) / (8.0 * p.ph); /* the lowest bin still shows one eighth */
    char buf[32];
    at_grid_printf(c->g, p.py, r.x, LAB - 1, dim, "%6.0e", pow(10, p.yhi));
    at_grid_printf(c->g, p.py + p.ph - 1, r.x, LAB - 1, dim, "%6.0e", pow(10, p.ylo));
    for (int y = 0; y < p.ph; y++)
        at_grid_put(c->g, p.py + y, p.px - 1, at_rd_glyph(c, AT_G_VLINE, '|'), dim);
    /* bars, in eighths of a row */
    at_style bulk = dim, tailst = at_rd_role(c, AT_ROLE_PLOT);
    for (int k = 0; k < p.pw; k++) {
        if (isnan(dens[k]))
            continue;
        int h8 = (int)lround((dens[k] - p.ylo) / (p.yhi - p.ylo) * (p.ph * 8));
        h8 = h8 < 1 ? 1 : h8 > p.ph * 8 ? p.ph * 8 : h8;
        at_style st = has_fit && k >= xm ? tailst : bulk;
        for (int y = 0; y < h8 / 8; y++)
            at_grid_put(c->g, p.py + p.ph - 1 - y, p.px + k, at_rd_glyph(c, AT_G_FULL, '#'), st);
        if (h8 % 8 && c->o->utf8)
            at_grid_put(c->g, p.py + p.ph - 1 - h8 / 8, p.px + k, (uint32_t)(G_EIGHTH + h8 % 8 - 1),
                        st);
    }
    /* xmin: a dotted line above the bars, a tick on the axis */
    at_style axis = dim;
    for (int k = 0; k < p.pw; k++)
        at_grid_put(c->g, p.py + p.ph, p.px + k, at_rd_glyph(c, AT_G_HLINE, '-'), axis);
    if (has_fit) {
        for (int y = 0; y < p.ph; y++)
            if (at_grid_at(c->g, p.py + y, p.px + xm)->ch == ' ')
                at_grid_put(c->g, p.py + y, p.px + xm, at_rd_glyph(c, G_XMIN, ':'), fit);
        at_grid_put(c->g, p.py + p.ph, p.px + xm, at_rd_glyph(c, G_TICK, '+'), fit);
        for (int k = xm; k < p.pw; k++) {
            int y = row_of(&p, fitv[k]);
            const at_gcell *under = at_grid_at(c->g, p.py + y, p.px + k);
            at_style st = fit;
            if (under && under->ch != ' ' && under->ch != at_rd_glyph(c, G_XMIN, ':'))
                st.bg = under->st.fg; /* on a bar: the dot on the bar's colour */
            at_grid_put(c->g, p.py + y, p.px + k, at_rd_glyph(c, AT_G_BULLET, '*'), st);
        }
    }
    /* x labels: xmin first, then the ends where they do not collide with it */
    labels L = {.n = 0};
    int ly = p.py + p.ph + 1, xmax = p.px + p.pw;
    if (has_fit) {
        snprintf(buf, sizeof buf, "xmin %.3g", sp->xmin);
        label(c, &L, ly, p.px + xm - (int)strlen(buf) / 2, p.px, xmax, buf, fit);
    }
    snprintf(buf, sizeof buf, "%.0e", pow(10, p.x0));
    label(c, &L, ly, p.px, p.px, xmax, buf, dim);
    snprintf(buf, sizeof buf, "%.0e", pow(10, x1));
    label(c, &L, ly, xmax - (int)strlen(buf), p.px, xmax, buf, dim);
    char legend[200];
    if (has_fit)
        snprintf(legend, sizeof legend,
                 "bars: density  %s fit: alpha %.2f on %d eigenvalues >= xmin",
                 c->o->utf8 ? "\xe2\x80\xa2" : "*", sp->alpha, tail > 0 ? tail : (int)in_tail);
    else
        snprintf(legend, sizeof legend, "bars: density  (no fitted line: %s)",
                 sp->xmin > 0 ? "the fit lies outside the plot" : "xmin not recorded");
    at_grid_text(c->g, ly + 1, r.x, r.w, legend, has_fit ? fit : dim);
}

void at_rd_detail(const at_rd *c, int layer)
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
    at_grid_printf(c->g, b.y, 0, lay->cols, at_rd_role(c, AT_ROLE_TITLE), " %s  %s %s%s", li->name,
                   (unsigned)li->kind < 4 ? kinds[li->kind] : "?", shape,
                   c->ui->space == AT_SPACE_DELTA ? "  (delta W-W_base)" : "");
    /* the layer's own verdict: phase, since when, what to try, how much to trust the fit */
    const at_cell *last = at_model_latest_cell(c->m, c->ui->run, layer, c->ui->space, c->end);
    int tail = 0;
    if (last) {
        at_warning w = at_warning_for((at_fit_status)last->status, last->v[AT_METRIC_ALPHA]);
        char line[400], v[16];
        at_render_value(last->v[AT_METRIC_ALPHA], v);
        int n = snprintf(line, sizeof line, " alpha %s  %s", v,
                         w == AT_WARN_OVER_TRAINED    ? "burnt"
                         : w == AT_WARN_UNDER_TRAINED ? "raw"
                         : w == AT_WARN_FAILED        ? "fit failed"
                                                      : "healthy");
        if (w != AT_WARN_NONE)
            n += snprintf(line + n, sizeof line - (size_t)n, "  %s", at_rd_advice(w));
        tail = last->tail;
        if (last->status == AT_FIT_SUCCESS && tail > 0 && tail < AT_FEW_TAIL)
            snprintf(line + n, sizeof line - (size_t)n,
                     "  unreliable: the fit rests on %d eigenvalues", tail);
        at_grid_text(c->g, b.y + 1, 0, lay->cols, line,
                     at_rd_role(c, at_rd_warning_role(w, AT_ROLE_OK)));
    }
    int hw = b.w * 3 / 5;
    at_rect plot_r = {b.y + 3, 1, b.h - 3, hw - 2};
    draw_esd(c, at_model_spectrum(c->m, c->ui->run, layer, c->ui->space), plot_r, tail);

    /* history: the last snapshots, newest first */
    int x = hw + 1, w = b.w - hw - 1, y = b.y + 3;
    at_grid_text(c->g, y++, x, w, "step      alpha  a_w    traps  eig   mode",
                 at_rd_role(c, AT_ROLE_TITLE));
    const at_cell *first = at_model_cell(c->m, c->ui->run, layer, c->ui->space, 0);
    for (int col = c->end - 1; first && col >= 0 && y < b.y + b.h; col--) {
        const at_cell *cell = first + col;
        if (cell->status == AT_CELL_EMPTY)
            continue;
        char st[16], a[16], aw[16], t[16], e[16];
        at_render_step(at_model_snapshot_step(c->m, c->ui->run, col), st);
        at_render_value(cell->v[AT_METRIC_ALPHA], a);
        at_render_value(cell->v[AT_METRIC_ALPHA_WEIGHTED], aw);
        snprintf(t, sizeof t, isnan(cell->v[AT_METRIC_TRAPS]) ? "-" : "%.0f",
                 (double)cell->v[AT_METRIC_TRAPS]);
        snprintf(e, sizeof e, cell->tail ? "%d%s" : "-", cell->tail,
                 cell->tail && cell->tail < AT_FEW_TAIL ? "?" : "");
        at_role ro = at_rd_warning_role(
            at_warning_for((at_fit_status)cell->status, cell->v[AT_METRIC_ALPHA]), AT_ROLE_NORMAL);
        if (cell->status != AT_FIT_SUCCESS)
            snprintf(a, sizeof a, "%s", at_fit_status_name((at_fit_status)cell->status));
        at_grid_printf(c->g, y++, x, w, at_rd_role(c, ro), "%-9s %-6s %-6s %-6s %-5s %s", st, a, aw,
                       t, e, at_mode_name((at_mode)cell->mode));
    }
}
