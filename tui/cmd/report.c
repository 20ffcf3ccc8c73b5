/* SPDX-License-Identifier: Apache-2.0 */
/* report.c -- `alphatop report [--csv] [--html DIR] LOG`: summary of a recorded run, its CSV,
 * and a page with its pictures. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "page.h"
#include "plot_out.h"
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
    char *run, *view;
    hlayer *l;
    size_t n, cap;
} hsec;

typedef struct report {
    lsum *l;
    size_t n, cap;
    cJSON *events; /* array of the run-level event objects, in log order */
    cJSON *hellos;
    int html; /* --html: also keep every result and spectrum below */
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

/* A whole number of o (a step, a count): -1 when missing, not a number or out of range (a log is
 * untrusted, and converting those to an integer is undefined). */
static int64_t inum(const cJSON *o, const char *key)
{
    double v = num(o, key);
    return v >= -9.2e18 && v <= 9.2e18 ? (int64_t)v : -1;
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

static void add_layer(report *rp, const cJSON *o)
{
    lsum *s = find(rp, str(o, "run"), *str(o, "view") ? str(o, "view") : "w", str(o, "name"));
    if (!s)
        return;
    int64_t step = inum(o, "step");
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
    for (size_t i = 0; i < rp->n; i++) {
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

/* --html: the layer name of run and view, created when new; NULL when out of memory. */
static hlayer *html_layer(report *rp, const char *run, const char *view, const char *name)
{
    hsec *sec = NULL;
    for (size_t i = 0; i < rp->nsec && !sec; i++)
        if (!strcmp(rp->sec[i].run, run) && !strcmp(rp->sec[i].view, view))
            sec = &rp->sec[i];
    if (!sec) {
        if (grow(&rp->sec, &rp->capsec, rp->nsec + 1, sizeof *rp->sec) < 0)
            return NULL;
        sec = &rp->sec[rp->nsec];
        memset(sec, 0, sizeof *sec);
        sec->run = strdup(run);
        sec->view = strdup(view);
        rp->nsec++;
        if (!sec->run || !sec->view)
            return NULL;
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

static void html_result(report *rp, const cJSON *o)
{
    hlayer *l =
        html_layer(rp, str(o, "run"), *str(o, "view") ? str(o, "view") : "w", str(o, "name"));
    if (!l || grow(&l->pts, &l->cap, l->n + 1, sizeof *l->pts) < 0) {
        rp->nomem = 1;
        return;
    }
    int ok = !strcmp(str(o, "status"), "success");
    l->pts[l->n++] = (hpoint){.step = inum(o, "step"),
                              .alpha = ok ? num(o, "alpha") : NAN,
                              .xmin = num(o, "xmin"),
                              .D = num(o, "D"),
                              .Q = num(o, "Q"),
                              .M = inum(o, "M")};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A recorded spectrum: the layer's latest one is kept, sorted (a log is untrusted). */
static void html_spectrum(report *rp, const cJSON *o)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "evals"), *v;
    int n = cJSON_GetArraySize(ev);
    int64_t step = inum(o, "step");
    hlayer *l =
        html_layer(rp, str(o, "run"), *str(o, "view") ? str(o, "view") : "w", str(o, "name"));
    if (!l) {
        rp->nomem = 1;
        return;
    }
    if (!cJSON_IsArray(ev) || n <= 0 || (l->evals && step < l->ev_step))
        return;
    double *x = malloc((size_t)n * sizeof *x);
    if (!x) {
        rp->nomem = 1;
        return;
    }
    size_t k = 0;
    cJSON_ArrayForEach(v, ev)
    {
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
            x[k++] = v->valuedouble;
    }
    if (!k) {
        free(x);
        return;
    }
    qsort(x, k, sizeof *x, cmp_double);
    free(l->evals);
    l->evals = x;
    l->nev = k;
    l->ev_step = step;
}

static void collect(void *ctx, const cJSON *o)
{
    report *rp = ctx;
    const char *type = str(o, "type");
    if (!strcmp(type, "layer"))
        add_layer(rp, o);
    else if (!strcmp(type, "event"))
        add_event(rp, o);
    if (rp->html && !strcmp(type, "layer"))
        html_result(rp, o);
    else if (rp->html && !strcmp(type, "spectrum"))
        html_spectrum(rp, o);
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
    char about[512];
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
    const cJSON *h;
    cJSON_ArrayForEach(h, rp->hellos) if (!strcmp(str(h, "run"), sec->run))
        snprintf(p->about, sizeof p->about, "%s (%s) on %s, pid %.0f, a snapshot every %.0f steps",
                 *str(h, "model") ? str(h, "model") : "unnamed model", str(h, "framework"),
                 str(h, "host"), num(h, "pid"), num(h, "interval"));
    p->s.run = sec->run;
    p->s.view = sec->view;
    p->s.about = p->about[0] ? p->about : NULL;
    p->s.esd = spectra ? p->esd : NULL;
    return 0;
}

/* --html: DIR/index.html from what collect kept. 0, or -1 after saying why not. */
static int write_html(const report *rp, const char *dir, const char *log)
{
    hpage *pages = calloc(rp->nsec ? rp->nsec : 1, sizeof *pages);
    at_run_section *secs = calloc(rp->nsec ? rp->nsec : 1, sizeof *secs);
    int nev = cJSON_GetArraySize(rp->events);
    at_run_event *ev = calloc(nev > 0 ? (size_t)nev : 1, sizeof *ev);
    int ok = pages && secs && ev && !rp->nomem;
    for (size_t i = 0; ok && i < rp->nsec; i++) {
        ok = section_make(rp, &rp->sec[i], &pages[i]) == 0;
        secs[i] = pages[i].s;
    }
    const cJSON *e;
    size_t k = 0;
    cJSON_ArrayForEach(e, rp->events)
    {
        if (!ev)
            break;
        ev[k++] = (at_run_event){.run = str(e, "run"),
                                 .kind = str(e, "kind"),
                                 .text = str(e, "text"),
                                 .step = inum(e, "step")};
    }
    char *html = ok ? at_run_page_html(log, secs, rp->nsec, ev, k, NULL) : NULL;
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
        free(sec->view);
    }
    free(rp->sec);
    free(rp->l);
    cJSON_Delete(rp->events);
    cJSON_Delete(rp->hellos);
}

/* The first --csv pass: the columns, and with --html what the page needs. */
typedef struct csv_pass {
    cJSON *cols;
    report *rp;
} csv_pass;

static void collect_csv(void *ctx, const cJSON *o)
{
    csv_pass *c = ctx;
    collect_cols(c->cols, o);
    if (c->rp->html)
        collect(c->rp, o);
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
    report rp = {.events = cJSON_CreateArray(), .hellos = cJSON_CreateArray(), .html = !!html_dir};
    if (csv) {
        csv_pass pass = {cJSON_CreateArray(), &rp};
        rc = read_log(path, collect_csv, &pass);
        if (rc >= 0) {
            const cJSON *c;
            printf("run,step,view,name");
            cJSON_ArrayForEach(c, pass.cols) printf(",%s", c->valuestring);
            putchar('\n');
            rc = read_log(path, print_row, pass.cols);
        }
        cJSON_Delete(pass.cols);
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
