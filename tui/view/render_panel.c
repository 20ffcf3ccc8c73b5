/* SPDX-License-Identifier: Apache-2.0 */
/* render_panel.c -- the warnings and events panel: which layers warn, since when, what to
 * try; then the run's events, newest first, coloured by what they mean, repeats merged. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render_int.h"

/* Kinds of warning, in the order the panel lists them. */
enum { W_BURNT, W_RAW, W_TRAPS, W_FAILED, W_FEW, W_KINDS };

static const char *const w_name[W_KINDS] = {"burnt", "raw", "trapped", "failed", "unreliable"};
static const char *const w_advice[W_KINDS] = {
    "over-fit: lower the LR, add weight decay, or stop (s)",
    "under-fit: train longer; check its LR and that it learns",
    "correlation traps: lower the LR; look for outlier weights",
    "fit failed: check the weights (NaN, too few eigenvalues)",
    "fit on < 30 eigenvalues: read alpha with care"};
static const char *const w_short[W_KINDS] = {"lower the LR, more weight decay",
                                             "train longer; check its LR", "lower the LR",
                                             "check the weights", "read alpha with care"};
static const char memo_advice[] = "memorised before grokking: under weight decay it may still grok",
                  memo_short[] = "memorised; may still grok";
static const at_role w_role[W_KINDS] = {AT_ROLE_BURNT, AT_ROLE_RAW, AT_ROLE_TRAP, AT_ROLE_MISSING,
                                        AT_ROLE_WARN};

/* 1 if cell shows warning kind k. */
static int warns(const at_cell *cell, int k)
{
    at_warning w = at_warning_for((at_fit_status)cell->status, cell->v[AT_METRIC_ALPHA]);
    switch (k) {
    case W_BURNT:
        return w == AT_WARN_OVER_TRAINED;
    case W_RAW:
        return w == AT_WARN_UNDER_TRAINED;
    case W_TRAPS:
        return cell->v[AT_METRIC_TRAPS] > 0;
    case W_FAILED:
        return w == AT_WARN_FAILED;
    default:
        return cell->status == AT_FIT_SUCCESS && cell->tail > 0 && cell->tail < AT_FEW_TAIL;
    }
}

/* First step of the layer's current stretch of kind k: core's phase event for burnt and raw
 * when it agrees, else the first of the latest run of results that show it. -1 unknown. */
static int64_t since(const at_rd *c, int layer, int k)
{
    at_layer_phase want = k == W_BURNT ? AT_LAYER_BURNT : k == W_RAW ? AT_LAYER_RAW : 0;
    for (int i = at_model_num_events(c->m) - 1; want && i >= 0; i--) {
        const at_event *e = at_model_event(c->m, i);
        if (e->kind != AT_EVENT_PHASE || e->run != c->ui->run || e->layer != layer ||
            e->space != c->ui->space || e->step > c->end_step)
            continue;
        if (e->to == want)
            return e->since >= 0 ? e->since : e->step;
        break;
    }
    int64_t s = -1;
    const at_cell *first = at_model_cell(c->m, c->ui->run, layer, c->ui->space, 0);
    for (int col = c->end - 1; first && col >= 0; col--) {
        if (first[col].status == AT_CELL_EMPTY)
            continue;
        if (!warns(&first[col], k))
            break;
        s = at_model_snapshot_step(c->m, c->ui->run, col);
    }
    return s;
}

typedef struct item {
    double key; /* worst first */
    int layer;
} item;

static int by_key(const void *pa, const void *pb)
{
    const item *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return a->layer - b->layer;
}

/* How bad a layer's kind-k warning is, for the order within the kind. */
static double severity(const at_cell *cell, int k)
{
    double a = cell->v[AT_METRIC_ALPHA];
    return k == W_BURNT || k == W_RAW ? at_alpha_badness(a)
           : k == W_TRAPS             ? cell->v[AT_METRIC_TRAPS]
           : k == W_FEW               ? -(double)cell->tail
                                      : 0;
}

/* One line: "  name  value  since S", the name elided to what is left. */
static void layer_line(const at_rd *c, const at_rect *r, int y, int layer, int k,
                       const at_cell *cell)
{
    char val[32] = "", st[16], tail[64] = "", name[300];
    if (k == W_BURNT || k == W_RAW)
        snprintf(val, sizeof val, "%.2f", (double)cell->v[AT_METRIC_ALPHA]);
    else if (k == W_TRAPS)
        snprintf(val, sizeof val, "%.0f traps", (double)cell->v[AT_METRIC_TRAPS]);
    else if (k == W_FEW)
        snprintf(val, sizeof val, "%d eigenvalues", cell->tail);
    int64_t s = k == W_FEW ? -1 : since(c, layer, k);
    if (s >= 0) {
        at_render_step(s, st);
        snprintf(tail, sizeof tail, " since %s", st);
    }
    char right[100];
    int rl = snprintf(right, sizeof right, " %s%s", val, tail);
    int nw = r->w - 2 - rl;
    if (nw < 8) { /* a narrow panel keeps the name and drops the since */
        rl = snprintf(right, sizeof right, " %s", val);
        nw = r->w - 2 - rl;
    }
    at_style ns = at_rd_role(c, AT_ROLE_NORMAL);
    int x = r->x + 2;
    x += at_rd_text(c, y, x, nw, at_rd_name(c, layer, name, sizeof name), ns);
    at_grid_text(c->g, y, x, r->x + r->w - x, right, at_rd_role(c, w_role[k]));
}

/* The warnings in rect r: counts, then each kind with its advice and its worst layers. */
static void draw_warnings(const at_rd *c, at_rect r)
{
    if (r.h <= 0 || r.w <= 0)
        return;
    int nl = at_model_num_layers(c->m, c->ui->run);
    item *items = malloc((size_t)(nl > 0 ? nl : 1) * W_KINDS * sizeof *items);
    if (!items)
        return;
    int count[W_KINDS] = {0};
    for (int l = 0; l < nl; l++) {
        const at_cell *cell = at_model_latest_cell(c->m, c->ui->run, l, c->ui->space, c->end);
        for (int k = 0; cell && k < W_KINDS; k++)
            if (warns(cell, k))
                items[(size_t)k * (size_t)nl + (size_t)count[k]++] = (item){severity(cell, k), l};
    }
    char buf[300];
    int len = snprintf(buf, sizeof buf, r.w >= 50 ? "warnings:" : "");
    int kinds = 0;
    for (int k = 0; k < W_KINDS; k++)
        if (count[k]) {
            len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%d %s",
                            kinds ? ", "
                            : len ? " "
                                  : "",
                            count[k], w_name[k]);
            kinds++;
        }
    if (!kinds)
        snprintf(buf + len, sizeof buf - (size_t)len, "%sno warning", len ? " " : "");
    at_grid_text(c->g, r.y, r.x, r.w, buf, at_rd_role(c, kinds ? AT_ROLE_TITLE : AT_ROLE_OK));
    /* every kind gets its advice and a fair share of the rows for its worst layers */
    int y = r.y + 1, left = r.h - 1;
    for (int k = 0; k < W_KINDS && left > 0; k++) {
        if (!count[k])
            continue;
        kinds--;
        item *it = items + (size_t)k * (size_t)nl;
        qsort(it, (size_t)count[k], sizeof *it, by_key);
        int rows = (left - kinds * 2) > 1 ? left - kinds * 2 - 1 : 1;
        if (kinds)
            rows = rows / (kinds + 1) > 0 ? rows / (kinds + 1) : 1;
        /* a memorised run's burnt layers predate its grokking: stopping is not the advice */
        int memo = k == W_BURNT && c->verdict.memorised;
        snprintf(buf, sizeof buf, "%d %s: %s", count[k], w_name[k],
                 r.w >= 70 ? (memo ? memo_advice : w_advice[k])
                 : memo    ? memo_short
                           : w_short[k]);
        at_grid_text(c->g, y++, r.x, r.w, buf, at_rd_role(c, w_role[k]));
        left--;
        for (int i = 0; i < count[k] && i < rows && left > 0; i++, left--) {
            const at_cell *cell =
                at_model_latest_cell(c->m, c->ui->run, it[i].layer, c->ui->space, c->end);
            layer_line(c, &r, y++, it[i].layer, k, cell);
        }
    }
    free(items);
}

/* The role an event is drawn in. */
static at_role event_role(const at_event *e)
{
    if (e->run_to != AT_RUN_UNKNOWN) {
        static const at_role r[] = {AT_ROLE_DIM, AT_ROLE_DIM, AT_ROLE_OK, AT_ROLE_WARN,
                                    AT_ROLE_BURNT};
        return r[e->run_to];
    }
    switch (e->kind) {
    case AT_EVENT_PHASE:
        return e->to == AT_LAYER_BURNT    ? AT_ROLE_BURNT
               : e->to == AT_LAYER_RAW    ? AT_ROLE_RAW
               : e->to == AT_LAYER_FAILED ? AT_ROLE_MISSING
                                          : AT_ROLE_OK;
    case AT_EVENT_WARNING:
        return AT_ROLE_WARN;
    case AT_EVENT_TRAP:
        return AT_ROLE_TRAP;
    case AT_EVENT_STOP:
    case AT_EVENT_ERROR:
        return AT_ROLE_ERROR;
    case AT_EVENT_DROP:
        return AT_ROLE_DIM;
    default:
        return AT_ROLE_NORMAL;
    }
}

/* 1 if event e shows in this frame. */
static int shown(const at_rd *c, const at_event *e)
{
    return (e->run == c->ui->run || e->run == -1) && !(c->end_step >= 0 && e->step > c->end_step);
}

/* 1 if b, the event before a, merges into a's line: repeats of drops, infos, errors, and a
 * layer going back and forth between the same two phases (a head whose few eigenvalues make
 * its alpha jump would otherwise fill the panel). */
static int repeats(const at_event *a, const at_event *b)
{
    if (a->kind != b->kind || a->layer != b->layer || a->run != b->run ||
        a->run_to != AT_RUN_UNKNOWN || b->run_to != AT_RUN_UNKNOWN)
        return 0;
    if (a->kind == AT_EVENT_PHASE)
        return a->space == b->space &&
               ((a->from == b->from && a->to == b->to) || (a->from == b->to && a->to == b->from));
    return a->kind == AT_EVENT_DROP ||
           ((a->kind == AT_EVENT_INFO || a->kind == AT_EVENT_ERROR || a->kind == AT_EVENT_TRAP) &&
            !strcmp(a->text, b->text));
}

/* The text of an event (n merged ones from step lo) into buf. */
static void event_text(const at_rd *c, const at_event *e, int n, int64_t lo, char *buf, size_t cap)
{
    char st[16], lo_s[16], since_s[16], name[300];
    at_render_step(e->step, st);
    at_render_step(lo, lo_s);
    at_render_step(e->since, since_s);
    const char *delta = e->space == AT_SPACE_DELTA ? " (delta)" : "";
    if (e->step < 0) {
        snprintf(buf, cap, "%s: %s", at_event_kind_name(e->kind), e->text);
    } else if (e->run_to != AT_RUN_UNKNOWN) {
        char up[32];
        snprintf(up, sizeof up, "%s", at_run_phase_name(e->run_to));
        for (char *p = up; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        snprintf(buf, cap, "@%-6s run: %s since %s%s", st, up, since_s, delta);
    } else if (e->kind == AT_EVENT_PHASE && e->layer >= 0 && n > 1) {
        snprintf(buf, cap, "@%-6s %-7s %s%s: %d changes %s/%s from %s", st,
                 at_layer_phase_name(e->to), at_rd_name(c, e->layer, name, sizeof name), delta, n,
                 at_layer_phase_name(e->from), at_layer_phase_name(e->to), lo_s);
    } else if (e->kind == AT_EVENT_PHASE && e->layer >= 0) {
        snprintf(buf, cap, "@%-6s %-7s %s%s", st, at_layer_phase_name(e->to),
                 at_rd_name(c, e->layer, name, sizeof name), delta);
    } else if (n > 1 && e->kind == AT_EVENT_DROP) {
        snprintf(buf, cap, "@%-6s %d drops %s-%s", st, n, lo_s, st);
    } else if (n > 1) {
        snprintf(buf, cap, "@%-6s %dx %s: %s (from %s)", st, n, at_event_kind_name(e->kind),
                 e->text, lo_s);
    } else {
        snprintf(buf, cap, "@%-6s %s: %s", st, at_event_kind_name(e->kind), e->text);
    }
}

/* The events in rect r, newest first; the important ones wrap instead of being cut. */
static void draw_events(const at_rd *c, at_rect r)
{
    if (r.h <= 0 || r.w <= 0)
        return;
    at_grid_text(c->g, r.y, r.x, r.w, "events", at_rd_role(c, AT_ROLE_TITLE));
    int y = r.y + 1;
    for (int i = at_model_num_events(c->m) - 1; i >= 0 && y < r.y + r.h; i--) {
        const at_event *e = at_model_event(c->m, i);
        if (!shown(c, e))
            continue;
        int n = 1;
        int64_t lo = e->step;
        while (i > 0 && shown(c, at_model_event(c->m, i - 1)) &&
               repeats(e, at_model_event(c->m, i - 1))) {
            i--;
            n++;
            lo = at_model_event(c->m, i)->step;
        }
        char buf[600];
        event_text(c, e, n, lo, buf, sizeof buf);
        at_style st = at_rd_role(c, event_role(e));
        int wraps = e->run_to != AT_RUN_UNKNOWN || e->kind == AT_EVENT_WARNING ||
                    e->kind == AT_EVENT_STOP || e->kind == AT_EVENT_ERROR;
        const char *p = buf;
        for (int line = 0; *p && y < r.y + r.h; line++) {
            int indent = line ? 8 : 0, room = r.w - indent;
            int len = (int)strlen(p);
            if (len > room && wraps && line < 2 && y + 1 < r.y + r.h) {
                int cut = room;
                while (cut > room / 2 && p[cut] != ' ')
                    cut--;
                at_grid_printf(c->g, y++, r.x + indent, room, st, "%.*s", cut, p);
                p += cut;
                while (*p == ' ')
                    p++;
                continue;
            }
            at_grid_text(c->g, y++, r.x + indent, room, p, st);
            break;
        }
    }
}

void at_rd_panel(const at_rd *c)
{
    at_rect r = c->lay->warnings;
    if (r.h <= 0 || r.w <= 0)
        return;
    if (r.x == 0) { /* below the heatmap: warnings left, events right */
        at_rect a = {r.y, 0, r.h, r.w / 2 - 1}, b = {r.y, r.w / 2, r.h, r.w - r.w / 2};
        draw_warnings(c, a);
        draw_events(c, b);
        return;
    }
    /* at the right: warnings above (at most half the height), events below */
    at_rect a = {r.y, r.x, (r.h + 1) / 2, r.w};
    draw_warnings(c, a);
    int used = 0;
    for (int y = a.y + a.h - 1; y >= a.y && !used; y--)
        for (int x = a.x; x < a.x + a.w && !used; x++)
            used = at_grid_at(c->g, y, x)->ch != ' ' ? y - a.y + 1 : 0;
    at_rect b = {r.y + used + 1, r.x, r.h - used - 1, r.w};
    draw_events(c, b);
}
