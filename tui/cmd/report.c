/* report.c -- `alphatop report LOG [--csv]`: summary of a recorded run, or its CSV. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/phase.h"
#include "args.h"
#include "commands.h"
#include "metrics_fmt.h"
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

typedef struct report {
    lsum *l;
    int n, cap;
    strs hellos, events; /* their report lines, in log order */
} report;

/* Appends the text fmt formats to s; -1 when out of memory. */
static int strs_add(strs *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *t = len >= 0 ? malloc((size_t)len + 1) : NULL;
    char **nv = t ? realloc(s->v, (size_t)(s->n + 1) * sizeof *nv) : NULL;
    if (!nv) {
        free(t);
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(t, (size_t)len + 1, fmt, ap);
    va_end(ap);
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

static lsum *find(report *rp, const char *run, const char *view, const char *name)
{
    for (int i = 0; i < rp->n; i++)
        if (!strcmp(rp->l[i].run, run) && !strcmp(rp->l[i].view, view) &&
            !strcmp(rp->l[i].name, name))
            return &rp->l[i];
    if (rp->n == rp->cap) {
        int cap = rp->cap ? 2 * rp->cap : 64;
        lsum *nl = realloc(rp->l, (size_t)cap * sizeof *nl);
        if (!nl)
            return NULL;
        rp->l = nl;
        rp->cap = cap;
    }
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
        strs_add(&rp->hellos, "run %s: %s (%s) on %s, pid %lld, a snapshot every %lld steps\n", run,
                 *e->hello.model ? e->hello.model : "unnamed model", e->hello.framework,
                 e->hello.host, (long long)e->hello.pid, (long long)e->hello.interval);
    } else {
        char at[32] = "";
        if (r->step >= 0)
            snprintf(at, sizeof at, "step %lld ", (long long)r->step);
        strs_add(&rp->events, "  %-9s %s%s%s%s\n", at_record_kind_name(e->kind), at, run,
                 *run ? ": " : "", e->text);
    }
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
    for (int i = 0; i < rp->hellos.n; i++)
        fputs(rp->hellos.v[i], stdout);
    const char *run = NULL;
    for (int i = 0; i < rp->n; i++) {
        const lsum *s = &rp->l[i];
        if (!run || strcmp(run, s->run)) {
            run = s->run;
            printf("\nrun %s\n%-28s %-5s %8s %14s %14s %14s %7s %s\n", run, "layer", "view",
                   "results", "first alpha", "last alpha", "min alpha", "traps", "phases");
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
        printf("%-28s %-5s %8d %14s %14s %14s %7s %s", s->name, s->view, s->results, first, last,
               min, traps, *s->phases ? s->phases : "-");
        if (s->errors)
            printf(" (%d errors)", s->errors);
        putchar('\n');
    }
    printf("\nevents (%d)\n", rp->events.n);
    for (int i = 0; i < rp->events.n; i++)
        fputs(rp->events.v[i], stdout);
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
        at_fmt_csv_field(f, c->string);
    else if (c->type == AT_COLUMN_SHAPE)
        for (int d = 0; d < c->ndim; d++)
            fprintf(f, d ? "x%lld" : "%lld", (long long)c->shape[d]);
    fclose(f);
}

/* Calls fn(ctx, record) for every layer and event record of the log; notes skipped bytes on
 * stderr. */
typedef struct record_walk {
    void (*fn)(void *ctx, const at_record *r);
    void *ctx;
} record_walk;

static int walk_one(void *ctx, const at_runlog_record *raw, const at_record *r)
{
    const record_walk *w = ctx;
    (void)raw;
    if (r && (r->type == AT_RECORD_LAYER || r->type == AT_RECORD_EVENT))
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
        strs_add(cols, "%s", c->name);
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
    at_fmt_csv_field(stdout, r->run);
    printf(",%lld,%s,", (long long)r->step, at_record_view_name(r->u.layer.view));
    at_fmt_csv_field(stdout, r->u.layer.name);
    for (int i = 0; i < cols->n; i++) {
        printf(",%s", row.cells[i] ? row.cells[i] : "");
        free(row.cells[i]);
    }
    free(row.cells);
    putchar('\n');
}

static void collect(void *ctx, const at_record *r)
{
    if (r->type == AT_RECORD_LAYER)
        add_layer(ctx, r);
    else
        add_event(ctx, r);
}

int cmd_report(int argc, char **argv)
{
    int csv = 0, nargs = 0;
    const at_arg_opt opts[] = {
        {.name = "csv",
         .kind = AT_ARG_FLAG,
         .value = &csv,
         .help = "every layer result as CSV instead (run, step, view, then the columns of watch "
                 "--headless)"},
    };
    const at_args_spec spec = {"report", "[--csv] LOG", report_about,   NULL, "LOG", 1,
                               1,        opts,          AT_ARGS_N(opts)};
    int rc = at_args_handle(&spec, argc, argv, &nargs);
    if (rc >= 0)
        return rc;
    const char *path = argv[1];
    if (csv) {
        strs cols = {0};
        rc = read_log(path, collect_cols, &cols);
        if (rc >= 0) {
            printf("run,step,view,name");
            for (int i = 0; i < cols.n; i++)
                printf(",%s", cols.v[i]);
            putchar('\n');
            rc = read_log(path, print_row, &cols);
        }
        strs_free(&cols);
    } else {
        report rp = {0};
        rc = read_log(path, collect, &rp);
        if (rc >= 0)
            print_report(&rp);
        free(rp.l);
        strs_free(&rp.hellos);
        strs_free(&rp.events);
    }
    return rc < 0 ? AT_EXIT_PARTIAL : AT_EXIT_OK;
}
