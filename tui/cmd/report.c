/* SPDX-License-Identifier: Apache-2.0 */
/* report.c -- `alphatop report [--csv] [--html DIR] LOG`: summary of a recorded run, its CSV,
 * and a page with its pictures. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/phase.h"
#include "alphatop/text.h"
#include "args.h"
#include "commands.h"
#include "metrics_fmt.h"
#include "page.h"
#include "plot_out.h"
#include "record.h"
#include "replay.h"

static const char report_about[] =
    "Summary of a recorded run log (alphatop watch --record): per run and layer the first, last\n"
    "and lowest alpha with their steps, phase changes, correlation traps; then the run's events\n"
    "(run phases, stop requests, drops, errors). A truncated last record is ignored (noted).\n";

/* Per (run, view, layer) summary. */
typedef struct lsum {
    char run[128], view[8], name[256];
    int64_t first_step, last_step, min_step, traps_step;
    double first, last, min;
    int64_t max_traps;
    int results, errors;
    char phases[512]; /* "raw->healthy@1200 healthy->burnt@9000" */
} lsum;

/* A list of strings (owned). */
typedef struct strs {
    char **v;
    int n;
} strs;

/* A run-level event of the log: a hello (text: the run's model, framework, host, pid and
 * interval in one line) or one of the events listed (text: the event's). run and text owned,
 * kind static. */
typedef struct revent {
    char *run, *text;
    const char *kind;
    int64_t step; /* < 0: none */
} revent;

typedef struct events {
    revent *v;
    size_t n, cap;
} events;

/* --html: one layer's result at one step. */
typedef struct hpoint {
    int64_t step;
    double alpha, xmin, D, Q; /* alpha NAN unless the fit succeeded */
    int64_t M;
} hpoint;

/* --html: one layer of a run and view, its results and its latest recorded spectrum. */
typedef struct hlayer {
    char *name;
    hpoint *pts;
    size_t n, cap;
    double *evals; /* ascending; NULL: no spectrum recorded */
    size_t nev;
    int64_t ev_step;
} hlayer;

/* --html: one run and view. */
typedef struct hsec {
    char *run;
    const char *view; /* static */
    hlayer *l;
    size_t n, cap;
} hsec;

typedef struct report {
    lsum *l;
    size_t n, cap;
    events hellos, events; /* in log order */
    int html;              /* --html: also keep every result and spectrum below */
    hsec *sec;
    size_t nsec, capsec;
    int nomem;
} report;

/* Room for need elements of size bytes in *p (capacity *cap, doubled as needed). 0, or -1
 * when out of memory (then *p is unchanged). */
static int grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? 2 * *cap : 16;
    while (c < need)
        c *= 2;
    void *np = realloc(*(void **)p, c * size);
    if (!np)
        return -1;
    *(void **)p = np;
    *cap = c;
    return 0;
}

/* Appends a copy of x to s; -1 when out of memory. */
static int strs_add(strs *s, const char *x)
{
    char *t = strdup(x);
    char **nv = t ? realloc(s->v, (size_t)(s->n + 1) * sizeof *nv) : NULL;
    if (!nv) {
        free(t);
        return -1;
    }
    s->v = nv;
    s->v[s->n++] = t;
    return 0;
}

/* The index of x in s, or -1. */
static int strs_find(const strs *s, const char *x)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x))
            return i;
    return -1;
}

static void strs_free(strs *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* Appends an event of run (NULL: none) whose text fmt formats to es; -1 when out of memory. */
static int events_add(events *es, const char *run, const char *kind, int64_t step, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));

static int events_add(events *es, const char *run, const char *kind, int64_t step, const char *fmt,
                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0 || grow(&es->v, &es->cap, es->n + 1, sizeof *es->v) < 0)
        return -1;
    revent *e = &es->v[es->n];
    e->run = strdup(run ? run : "");
    e->text = malloc((size_t)len + 1);
    if (!e->run || !e->text) {
        free(e->run);
        free(e->text);
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(e->text, (size_t)len + 1, fmt, ap);
    va_end(ap);
    e->kind = kind;
    e->step = step;
    es->n++;
    return 0;
}

static void events_free(events *es)
{
    for (size_t i = 0; i < es->n; i++) {
        free(es->v[i].run);
        free(es->v[i].text);
    }
    free(es->v);
}

static lsum *find(report *rp, const char *run, const char *view, const char *name)
{
    for (size_t i = 0; i < rp->n; i++)
        if (!strcmp(rp->l[i].run, run) && !strcmp(rp->l[i].view, view) &&
            !strcmp(rp->l[i].name, name))
            return &rp->l[i];
    if (grow(&rp->l, &rp->cap, rp->n + 1, sizeof *rp->l) < 0)
        return NULL;
    lsum *s = &rp->l[rp->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->run, sizeof s->run, "%s", run);
    snprintf(s->view, sizeof s->view, "%s", view);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->first_step = s->last_step = s->min_step = s->traps_step = -1;
    s->first = s->last = s->min = NAN;
    return s;
}

static void add_layer(report *rp, const at_record *r)
{
    const at_record_layer *l = &r->u.layer;
    lsum *s = find(rp, r->run, at_record_view_name(l->view), l->name);
    if (!s)
        return;
    if (l->error) {
        s->errors++;
        return;
    }
    s->results++;
    double a = l->m.alpha;
    if (isfinite(a)) {
        if (s->first_step < 0) {
            s->first = a;
            s->first_step = r->step;
        }
        s->last = a;
        s->last_step = r->step;
        if (!(a >= s->min)) {
            s->min = a;
            s->min_step = r->step;
        }
    }
    if (l->m.num_traps > 0 && s->traps_step < 0)
        s->traps_step = r->step;
    if (l->m.num_traps > s->max_traps)
        s->max_traps = l->m.num_traps;
}

static void add_event(report *rp, const at_record *r)
{
    const at_record_event *e = &r->u.event;
    const char *run = r->run ? r->run : "";
    int rc = 0;
    if (e->kind == AT_RECORD_EV_PHASE) {
        lsum *s = find(rp, run, at_record_view_name(e->phase.view), e->layer ? e->layer : "");
        if (s) {
            size_t used = strlen(s->phases);
            snprintf(s->phases + used, sizeof s->phases - used, "%s%s->%s@%lld", used ? " " : "",
                     at_layer_phase_name((at_layer_phase)e->phase.from),
                     at_layer_phase_name((at_layer_phase)e->phase.to),
                     (long long)(e->phase.since >= 0 ? e->phase.since : r->step));
        }
    } else if (e->kind == AT_RECORD_EV_HELLO) {
        rc = events_add(&rp->hellos, run, at_record_kind_name(e->kind), r->step,
                        "%s (%s) on %s, pid %lld, a snapshot every %lld steps",
                        *e->hello.model ? e->hello.model : "unnamed model", e->hello.framework,
                        e->hello.host, (long long)e->hello.pid, (long long)e->hello.interval);
    } else {
        rc = events_add(&rp->events, run, at_record_kind_name(e->kind), r->step, "%s", e->text);
    }
    if (rc < 0)
        rp->nomem = 1;
}

/* s for people: escaped by text.h, so no control character, escape sequence, line break or
 * byte that is not UTF-8 from a log reaches the terminal. Caller owns return value (free);
 * NULL when out of memory. */
static char *shown(const char *s)
{
    size_t n = strlen(s), cap = AT_TEXT_ESCAPE_CAP(n);
    char *t = malloc(cap);
    if (t)
        at_text_escape(t, cap, s, n);
    return t;
}

/* printf's "%s" of s shown (as shown() does), padded to width (negative: left-aligned). */
static void put_shown(int width, const char *s)
{
    char *t = shown(s);
    printf("%*s", width, t ? t : "?");
    free(t);
}

static void fmt_at(char *buf, size_t cap, double v, int64_t step)
{
    if (step < 0 || !isfinite(v))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.2f@%lld", v, (long long)step);
}

static void print_report(const report *rp)
{
    for (size_t i = 0; i < rp->hellos.n; i++) {
        fputs("run ", stdout);
        put_shown(0, rp->hellos.v[i].run);
        fputs(": ", stdout);
        put_shown(0, rp->hellos.v[i].text);
        putchar('\n');
    }
    const char *run = NULL;
    for (size_t i = 0; i < rp->n; i++) {
        const lsum *s = &rp->l[i];
        if (!run || strcmp(run, s->run)) {
            run = s->run;
            fputs("\nrun ", stdout);
            put_shown(0, run);
            printf("\n%-28s %-5s %8s %14s %14s %14s %7s %s\n", "layer", "view", "results",
                   "first alpha", "last alpha", "min alpha", "traps", "phases");
        }
        char first[32], last[32], min[32], traps[32];
        fmt_at(first, sizeof first, s->first, s->first_step);
        fmt_at(last, sizeof last, s->last, s->last_step);
        fmt_at(min, sizeof min, s->min, s->min_step);
        if (s->traps_step >= 0)
            snprintf(traps, sizeof traps, "%lld@%lld", (long long)s->max_traps,
                     (long long)s->traps_step);
        else
            snprintf(traps, sizeof traps, "0");
        put_shown(-28, s->name);
        printf(" %-5s %8d %14s %14s %14s %7s %s", s->view, s->results, first, last, min, traps,
               *s->phases ? s->phases : "-");
        if (s->errors)
            printf(" (%d errors)", s->errors);
        putchar('\n');
    }
    printf("\nevents (%zu)\n", rp->events.n);
    for (size_t i = 0; i < rp->events.n; i++) {
        const revent *e = &rp->events.v[i];
        char at[32] = "";
        if (e->step >= 0)
            snprintf(at, sizeof at, "step %lld ", (long long)e->step);
        printf("  %-9s %s", e->kind, at);
        put_shown(0, e->run);
        fputs(*e->run ? ": " : "", stdout);
        put_shown(0, e->text);
        putchar('\n');
    }
}

/* One CSV field: text from the log shown as for people (shown(): control characters, line
 * breaks, bidi marks and invalid bytes escaped, a backslash doubled), then quoted as RFC 4180
 * requires (a comma or a quote). Every field of report --csv takes this one rule, the one scan
 * --csv has, so a row is always one line and a spreadsheet gets no control character. */
static void csv_text(FILE *f, const char *s)
{
    char *t = shown(s);
    at_fmt_csv_field(f, t ? t : "?");
    free(t);
}

/* CSV: run, step, view, name, then every other column of the layer records in first-seen
 * order. One row's cells, by column, while at_record_layer_columns walks them. */
typedef struct csv_row {
    const strs *cols;
    char **cells; /* one per column of cols; NULL: the record has no such column */
} csv_row;

static void csv_cell(void *ctx, const at_record_column *c)
{
    csv_row *row = ctx;
    int i = strs_find(row->cols, c->name);
    size_t len;
    FILE *f = i >= 0 ? open_memstream(&row->cells[i], &len) : NULL;
    if (!f)
        return;
    if (c->type == AT_COLUMN_NUMBER)
        fprintf(f, "%.17g", c->number);
    else if (c->type == AT_COLUMN_STRING)
        csv_text(f, c->string);
    else if (c->type == AT_COLUMN_SHAPE)
        for (int d = 0; d < c->ndim; d++)
            fprintf(f, d ? "x%lld" : "%lld", (long long)c->shape[d]);
    fclose(f);
}

/* Calls fn(ctx, record) for every record of the log the schema reads; notes skipped bytes on
 * stderr. */
typedef struct record_walk {
    void (*fn)(void *ctx, const at_record *r);
    void *ctx;
} record_walk;

static int walk_one(void *ctx, const at_runlog_record *raw, const at_record *r)
{
    const record_walk *w = ctx;
    (void)raw;
    if (r)
        w->fn(w->ctx, r);
    return 0;
}

static int read_log(const char *path, void (*fn)(void *, const at_record *), void *ctx)
{
    record_walk w = {fn, ctx};
    char note[512];
    int rc = at_replay_each(path, walk_one, &w, note, sizeof note);
    if (rc < 0)
        fprintf(stderr, "alphatop report: %s\n", note);
    else if (*note)
        fprintf(stderr, "alphatop report: %s: %s\n", path, note);
    return rc;
}

static void collect_col(void *ctx, const at_record_column *c)
{
    strs *cols = ctx;
    if (strs_find(cols, c->name) < 0)
        strs_add(cols, c->name);
}

static void collect_cols(void *ctx, const at_record *r)
{
    if (r->type == AT_RECORD_LAYER)
        at_record_layer_columns(r, collect_col, ctx);
}

static void print_row(void *ctx, const at_record *r)
{
    const strs *cols = ctx;
    if (r->type != AT_RECORD_LAYER)
        return;
    csv_row row = {cols, calloc((size_t)cols->n + 1, sizeof *row.cells)};
    if (!row.cells)
        return;
    at_record_layer_columns(r, csv_cell, &row);
    csv_text(stdout, r->run);
    printf(",%lld,%s,", (long long)r->step, at_record_view_name(r->u.layer.view));
    csv_text(stdout, r->u.layer.name);
    for (int i = 0; i < cols->n; i++) {
        printf(",%s", row.cells[i] ? row.cells[i] : "");
        free(row.cells[i]);
    }
    free(row.cells);
    putchar('\n');
}

/* --html: the layer name of run and view, created when new; NULL when out of memory. */
static hlayer *html_layer(report *rp, const char *run, at_space view, const char *name)
{
    const char *v = at_record_view_name(view);
    hsec *sec = NULL;
    for (size_t i = 0; i < rp->nsec && !sec; i++)
        if (!strcmp(rp->sec[i].run, run) && !strcmp(rp->sec[i].view, v))
            sec = &rp->sec[i];
    if (!sec) {
        if (grow(&rp->sec, &rp->capsec, rp->nsec + 1, sizeof *rp->sec) < 0)
            return NULL;
        sec = &rp->sec[rp->nsec];
        memset(sec, 0, sizeof *sec);
        sec->view = v;
        if (!(sec->run = strdup(run)))
            return NULL;
        rp->nsec++;
    }
    for (size_t i = 0; i < sec->n; i++)
        if (!strcmp(sec->l[i].name, name))
            return &sec->l[i];
    if (grow(&sec->l, &sec->cap, sec->n + 1, sizeof *sec->l) < 0)
        return NULL;
    hlayer *l = &sec->l[sec->n];
    memset(l, 0, sizeof *l);
    if (!(l->name = strdup(name)))
        return NULL;
    sec->n++;
    return l;
}

/* A layer result: every one is a point of the layer's series, alpha missing unless its fit
 * succeeded (an error too: a gap at its step). */
static void html_result(report *rp, const at_record *r)
{
    const at_record_layer *rl = &r->u.layer;
    hlayer *l = html_layer(rp, r->run, rl->view, rl->name);
    if (!l || grow(&l->pts, &l->cap, l->n + 1, sizeof *l->pts) < 0) {
        rp->nomem = 1;
        return;
    }
    const at_metrics *m = &rl->m;
    int ok = !rl->error && m->status == AT_FIT_SUCCESS;
    l->pts[l->n++] = (hpoint){.step = r->step,
                              .alpha = ok ? m->alpha : NAN,
                              .xmin = m->xmin,
                              .D = m->D,
                              .Q = m->Q,
                              .M = m->M};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A recorded spectrum: the layer's latest one is kept, its finite eigenvalues sorted (a log is
 * untrusted: the record reads what is not a number as NAN). */
static void html_spectrum(report *rp, const at_record *r)
{
    const at_record_spectrum *sp = &r->u.spectrum;
    hlayer *l = html_layer(rp, r->run, sp->view, sp->name);
    if (!l) {
        rp->nomem = 1;
        return;
    }
    if (!sp->n || (l->evals && r->step < l->ev_step))
        return;
    double *x = malloc(sp->n * sizeof *x);
    if (!x) {
        rp->nomem = 1;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < sp->n; i++)
        if (isfinite(sp->evals[i]))
            x[k++] = sp->evals[i];
    if (!k) {
        free(x);
        return;
    }
    qsort(x, k, sizeof *x, cmp_double);
    free(l->evals);
    l->evals = x;
    l->nev = k;
    l->ev_step = r->step;
}

static void collect(void *ctx, const at_record *r)
{
    report *rp = ctx;
    if (r->type == AT_RECORD_LAYER)
        add_layer(rp, r);
    else if (r->type == AT_RECORD_EVENT)
        add_event(rp, r);
    if (rp->html && r->type == AT_RECORD_LAYER)
        html_result(rp, r);
    else if (rp->html && r->type == AT_RECORD_SPECTRUM)
        html_spectrum(rp, r);
}

static int cmp_step(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One section of the page and the memory it points into. */
typedef struct hpage {
    at_run_section s;
    int64_t *steps;
    const char **names;
    double *alpha;
    at_esd_plot *esd;
    char *subs; /* the spectra's subtitles, SUB_LEN bytes each */
} hpage;

enum { SUB_LEN = 160 };

static void section_free(hpage *p)
{
    free(p->steps);
    free(p->names);
    free(p->alpha);
    free(p->esd);
    free(p->subs);
}

/* The heatmap of sec into p: its steps (every step any layer has a result at, ascending; the
 * nsteps in p->steps on entry, with repeats), names and alpha matrix. 0, or -1 when out of
 * memory. */
static int section_map(const hsec *sec, hpage *p, size_t nsteps)
{
    qsort(p->steps, nsteps, sizeof *p->steps, cmp_step);
    size_t u = 0;
    for (size_t k = 0; k < nsteps; k++)
        if (!u || p->steps[k] != p->steps[u - 1])
            p->steps[u++] = p->steps[k];
    size_t cells = sec->n * u;
    if (!(p->alpha = malloc((cells ? cells : 1) * sizeof *p->alpha)))
        return -1;
    for (size_t k = 0; k < sec->n * u; k++)
        p->alpha[k] = NAN;
    for (size_t i = 0; i < sec->n; i++) {
        p->names[i] = sec->l[i].name;
        for (size_t k = 0; k < sec->l[i].n; k++) {
            const int64_t *at =
                bsearch(&sec->l[i].pts[k].step, p->steps, u, sizeof *p->steps, cmp_step);
            p->alpha[i * u + (size_t)(at - p->steps)] = sec->l[i].pts[k].alpha;
        }
    }
    p->s.map = (at_heatmap){
        .nrows = sec->n, .ncols = u, .names = p->names, .steps = p->steps, .alpha = p->alpha};
    return 0;
}

/* Layer l's latest spectrum into *e, with the fit of the result at its step. */
static void section_esd(const hsec *sec, const hlayer *l, at_esd_plot *e, char *sub)
{
    const hpoint *fit = NULL;
    for (size_t k = 0; k < l->n; k++)
        if (l->pts[k].step == l->ev_step)
            fit = &l->pts[k];
    snprintf(sub, SUB_LEN, "run %s \xc2\xb7 step %lld \xc2\xb7 %zu eigenvalues", sec->run,
             (long long)l->ev_step, l->nev);
    at_mp mp;
    *e = (at_esd_plot){.title = l->name,
                       .subtitle = sub,
                       .evals = l->evals,
                       .n = l->nev,
                       .status = fit && !isnan(fit->alpha) ? AT_FIT_SUCCESS : AT_FIT_FAILED,
                       .alpha = fit ? fit->alpha : NAN,
                       .xmin = fit ? fit->xmin : NAN,
                       .D = fit ? fit->D : NAN,
                       .mp_edge = fit && at_mp_fit(l->evals, l->nev, fit->Q, fit->M, &mp) == AT_OK
                                      ? mp.bulk_max
                                      : NAN};
}

/* The page's section of sec into *p (section_free frees it, also after a failure). 0, or -1
 * when out of memory. */
static int section_make(const report *rp, const hsec *sec, hpage *p)
{
    memset(p, 0, sizeof *p);
    size_t total = 0, nl = sec->n ? sec->n : 1;
    for (size_t i = 0; i < sec->n; i++)
        total += sec->l[i].n;
    p->steps = malloc((total ? total : 1) * sizeof *p->steps);
    p->names = malloc(nl * sizeof *p->names);
    p->esd = calloc(nl, sizeof *p->esd);
    p->subs = malloc(nl * SUB_LEN);
    if (!p->steps || !p->names || !p->esd || !p->subs)
        return -1;
    size_t nsteps = 0;
    for (size_t i = 0; i < sec->n; i++)
        for (size_t k = 0; k < sec->l[i].n; k++)
            p->steps[nsteps++] = sec->l[i].pts[k].step;
    if (section_map(sec, p, nsteps) < 0)
        return -1;
    int spectra = 0;
    for (size_t i = 0; i < sec->n; i++)
        if (sec->l[i].evals) {
            section_esd(sec, &sec->l[i], &p->esd[i], p->subs + i * SUB_LEN);
            spectra = 1;
        }
    p->s.run = sec->run;
    p->s.view = sec->view;
    for (size_t i = 0; i < rp->hellos.n; i++) /* the run's latest hello */
        if (!strcmp(rp->hellos.v[i].run, sec->run))
            p->s.about = rp->hellos.v[i].text;
    p->s.esd = spectra ? p->esd : NULL;
    return 0;
}

/* --html: DIR/index.html from what collect kept. 0, or -1 after saying why not. */
static int write_html(const report *rp, const char *dir, const char *log)
{
    hpage *pages = calloc(rp->nsec ? rp->nsec : 1, sizeof *pages);
    at_run_section *secs = calloc(rp->nsec ? rp->nsec : 1, sizeof *secs);
    at_run_event *ev = calloc(rp->events.n ? rp->events.n : 1, sizeof *ev);
    int ok = pages && secs && ev && !rp->nomem;
    for (size_t i = 0; ok && i < rp->nsec; i++) {
        ok = section_make(rp, &rp->sec[i], &pages[i]) == 0;
        secs[i] = pages[i].s;
    }
    for (size_t k = 0; ev && k < rp->events.n; k++) {
        const revent *e = &rp->events.v[k];
        ev[k] = (at_run_event){.run = e->run, .kind = e->kind, .text = e->text, .step = e->step};
    }
    char *html = ok ? at_run_page_html(log, secs, rp->nsec, ev, rp->events.n, NULL) : NULL;
    int rc = at_cmd_save("report", dir, "index.html", html);
    if (rc == 0)
        fprintf(stderr, "alphatop report: wrote %s/index.html\n", dir);
    free(html);
    for (size_t i = 0; pages && i < rp->nsec; i++)
        section_free(&pages[i]);
    free(pages);
    free(secs);
    free(ev);
    return rc;
}

static void report_free(report *rp)
{
    for (size_t i = 0; i < rp->nsec; i++) {
        hsec *sec = &rp->sec[i];
        for (size_t j = 0; j < sec->n; j++) {
            free(sec->l[j].name);
            free(sec->l[j].pts);
            free(sec->l[j].evals);
        }
        free(sec->l);
        free(sec->run);
    }
    free(rp->sec);
    free(rp->l);
    events_free(&rp->hellos);
    events_free(&rp->events);
}

/* The first --csv pass: the columns, and with --html what the page needs. */
typedef struct csv_pass {
    strs cols;
    report *rp;
} csv_pass;

static void collect_csv(void *ctx, const at_record *r)
{
    csv_pass *c = ctx;
    collect_cols(&c->cols, r);
    if (c->rp->html)
        collect(c->rp, r);
}

int cmd_report(int argc, char **argv)
{
    int csv = 0, nargs = 0;
    const char *html_dir = NULL;
    const at_arg_opt opts[] = {
        {.name = "csv",
         .kind = AT_ARG_FLAG,
         .value = &csv,
         .help = "every layer result as CSV instead (run, step, view, then the columns of watch "
                 "--headless)"},
        {.name = "html",
         .kind = AT_ARG_STRING,
         .value = &html_dir,
         .meta = "DIR",
         .help = "also write DIR/index.html: per run a heatmap of alpha (layers x snapshots), each "
                 "layer's alpha over time and, when the log has spectra (watch --record-spectra), "
                 "its latest ESD with the fitted power law; DIR is created if missing"},
    };
    const at_args_spec spec = {
        "report",       "[--csv] [--html DIR] LOG", report_about, NULL, "LOG", 1, 1, opts,
        AT_ARGS_N(opts)};
    int rc = at_args_handle(&spec, argc, argv, &nargs);
    if (rc >= 0)
        return rc;
    if (html_dir && at_cmd_out_dir("report", "--html", html_dir) < 0)
        return AT_EXIT_USAGE;
    const char *path = argv[1];
    report rp = {.html = html_dir != NULL};
    if (csv) {
        csv_pass pass = {.rp = &rp};
        rc = read_log(path, collect_csv, &pass);
        if (rc >= 0) {
            printf("run,step,view,name");
            for (int i = 0; i < pass.cols.n; i++) {
                putchar(',');
                csv_text(stdout, pass.cols.v[i]);
            }
            putchar('\n');
            rc = read_log(path, print_row, &pass.cols);
        }
        strs_free(&pass.cols);
    } else {
        rc = read_log(path, collect, &rp);
        if (rc >= 0)
            print_report(&rp);
    }
    if (rc >= 0 && html_dir && write_html(&rp, html_dir, path) < 0)
        rc = AT_ERR_IO;
    report_free(&rp);
    return rc < 0 ? AT_EXIT_PARTIAL : AT_EXIT_OK;
}
