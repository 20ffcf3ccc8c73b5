/* report.c -- `alphatop report LOG [--csv]`: summary of a recorded run, or its CSV. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "runlog.h"

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

typedef struct report {
    lsum *l;
    int n, cap;
    cJSON *events; /* array of the run-level event objects, in log order */
    cJSON *hellos;
} report;

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
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

static void add_layer(report *rp, const cJSON *o)
{
    lsum *s = find(rp, str(o, "run"), *str(o, "view") ? str(o, "view") : "w", str(o, "name"));
    if (!s)
        return;
    int64_t step = (int64_t)num(o, "step");
    if (!strcmp(str(o, "status"), "error")) {
        s->errors++;
        return;
    }
    s->results++;
    double a = num(o, "alpha");
    if (isfinite(a)) {
        if (s->first_step < 0) {
            s->first = a;
            s->first_step = step;
        }
        s->last = a;
        s->last_step = step;
        if (!(a >= s->min)) {
            s->min = a;
            s->min_step = step;
        }
    }
    double t = num(o, "num_traps");
    if (t > 0 && s->traps_step < 0)
        s->traps_step = step;
    if (t > (double)s->max_traps)
        s->max_traps = (int64_t)t;
}

static void add_event(report *rp, const cJSON *o)
{
    const char *kind = str(o, "kind");
    if (!strcmp(kind, "phase")) {
        lsum *s = find(rp, str(o, "run"), *str(o, "view") ? str(o, "view") : "w", str(o, "layer"));
        if (s) {
            size_t used = strlen(s->phases);
            snprintf(s->phases + used, sizeof s->phases - used, "%s%s->%s@%lld", used ? " " : "",
                     str(o, "from"), str(o, "to"),
                     (long long)num(o, "since") >= 0 ? (long long)num(o, "since")
                                                     : (long long)num(o, "step"));
        }
        return;
    }
    cJSON_AddItemToArray(!strcmp(kind, "hello") ? rp->hellos : rp->events, cJSON_Duplicate(o, 1));
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
    const cJSON *h;
    cJSON_ArrayForEach(h, rp->hellos)
    {
        printf("run %s: %s (%s) on %s, pid %.0f, a snapshot every %.0f steps\n", str(h, "run"),
               *str(h, "model") ? str(h, "model") : "unnamed model", str(h, "framework"),
               str(h, "host"), num(h, "pid"), num(h, "interval"));
    }
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
    int n = cJSON_GetArraySize(rp->events);
    printf("\nevents (%d)\n", n);
    const cJSON *e;
    cJSON_ArrayForEach(e, rp->events)
    {
        double step = num(e, "step");
        char at[32] = "";
        if (isfinite(step))
            snprintf(at, sizeof at, "step %.0f ", step);
        printf("  %-9s %s%s%s%s\n", str(e, "kind"), at, *str(e, "run") ? str(e, "run") : "",
               *str(e, "run") ? ": " : "", str(e, "text"));
    }
}

/* CSV: run, step, view, name, then every other scalar column in first-seen order. */
static void csv_cell(const cJSON *v)
{
    if (cJSON_IsNumber(v)) {
        printf("%.17g", v->valuedouble);
    } else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (!strpbrk(s, ",\"\r\n")) {
            fputs(s, stdout);
            return;
        }
        putchar('"');
        for (; *s; s++) {
            if (*s == '"')
                putchar('"');
            putchar(*s);
        }
        putchar('"');
    } else if (cJSON_IsArray(v)) {
        const cJSON *d;
        int first = 1;
        cJSON_ArrayForEach(d, v)
        {
            printf(first ? "%.0f" : "x%.0f", d->valuedouble);
            first = 0;
        }
    }
}

static int is_fixed(const char *k)
{
    return !strcmp(k, "type") || !strcmp(k, "run") || !strcmp(k, "step") || !strcmp(k, "view") ||
           !strcmp(k, "name");
}

/* Calls fn(ctx, object) for every JSON record of the log; notes skipped bytes on stderr. */
static int read_log(const char *path, void (*fn)(void *, const cJSON *), void *ctx)
{
    int st;
    at_runlog_reader *r = at_runlog_reader_open(path, &st);
    if (!r) {
        fprintf(stderr, "alphatop report: %s: %s\n", path,
                st == AT_ERR_FORMAT ? "not an alphatop run log" : "cannot open");
        return st;
    }
    at_runlog_record rec;
    int rc;
    while ((rc = at_runlog_reader_next(r, &rec)) == 1) {
        cJSON *o =
            rec.type == AT_RUNLOG_JSON ? cJSON_ParseWithLength(rec.json, rec.json_len) : NULL;
        if (o)
            fn(ctx, o);
        cJSON_Delete(o);
    }
    if (*at_runlog_reader_note(r))
        fprintf(stderr, "alphatop report: %s: %s\n", path, at_runlog_reader_note(r));
    at_runlog_reader_close(r);
    return rc;
}

static void collect_cols(void *ctx, const cJSON *o)
{
    cJSON *cols = ctx;
    const cJSON *v;
    if (strcmp(str(o, "type"), "layer"))
        return;
    cJSON_ArrayForEach(v, o)
    {
        int seen = is_fixed(v->string);
        const cJSON *c;
        cJSON_ArrayForEach(c, cols) seen |= !strcmp(c->valuestring, v->string);
        if (!seen)
            cJSON_AddItemToArray(cols, cJSON_CreateString(v->string));
    }
}

static void print_row(void *ctx, const cJSON *o)
{
    const cJSON *cols = ctx, *c;
    if (strcmp(str(o, "type"), "layer"))
        return;
    csv_cell(cJSON_GetObjectItemCaseSensitive(o, "run"));
    printf(",%.0f,%s,", num(o, "step"), *str(o, "view") ? str(o, "view") : "w");
    csv_cell(cJSON_GetObjectItemCaseSensitive(o, "name"));
    cJSON_ArrayForEach(c, cols)
    {
        putchar(',');
        csv_cell(cJSON_GetObjectItemCaseSensitive(o, c->valuestring));
    }
    putchar('\n');
}

static void collect(void *ctx, const cJSON *o)
{
    report *rp = ctx;
    const char *type = str(o, "type");
    if (!strcmp(type, "layer"))
        add_layer(rp, o);
    else if (!strcmp(type, "event"))
        add_event(rp, o);
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
        cJSON *cols = cJSON_CreateArray();
        rc = read_log(path, collect_cols, cols);
        if (rc >= 0) {
            const cJSON *c;
            printf("run,step,view,name");
            cJSON_ArrayForEach(c, cols) printf(",%s", c->valuestring);
            putchar('\n');
            rc = read_log(path, print_row, cols);
        }
        cJSON_Delete(cols);
    } else {
        report rp = {0};
        rp.events = cJSON_CreateArray();
        rp.hellos = cJSON_CreateArray();
        rc = read_log(path, collect, &rp);
        if (rc >= 0)
            print_report(&rp);
        free(rp.l);
        cJSON_Delete(rp.events);
        cJSON_Delete(rp.hellos);
    }
    return rc < 0 ? AT_EXIT_PARTIAL : AT_EXIT_OK;
}
