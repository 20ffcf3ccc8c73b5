/* SPDX-License-Identifier: Apache-2.0 */
/* scan.c -- `alphatop scan`: HTSR metrics of every layer in checkpoint files. */
#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alphatop/analyze.h"
#include "alphatop/lora.h"
#include "alphatop/text.h"
#include "args.h"
#include "ckpt.h"
#include "ckpt_args.h"
#include "commands.h"
#include "metrics_fmt.h"
#include "page.h"
#include "pair.h"
#include "plot_out.h"

static const char about[] =
    "HTSR metrics of every layer in checkpoint files, in exact mode (the reference's numbers)\n"
    "unless --fast.\n"
    "FILE is a checkpoint, told apart by its content: .safetensors, a torch.save file (.pt,\n"
    ".pth, pytorch_model.bin; read without running its pickle), .npy / .npz, a Hugging Face\n"
    "model directory or sharded index (*.index.json), '-' for standard input, or raw\n"
    "little-endian float32 with --shape. Every 2-D or 4-D F32/F16/BF16/F64 tensor whose name ends\n"
    "in 'weight' is a layer; LoRA pairs '*lora_A*weight' + '*lora_B*weight' are analysed as one\n"
    "layer B A; tied copies and integer/FP8 tensors are listed as skipped.\n"
    "Output (stdout): an aligned table per file and its model summary, or --json / --csv.\n"
    "--plot DIR also writes each layer's ESD picture (SVG) and a page of all layers (HTML).\n";

static const char notes[] =
    "Errors (unreadable file or layer, size mismatch, NaN/Inf or all-zero weights) go to\n"
    "stderr naming file and layer; the other layers and files are still reported.\n";

enum out_format { OUT_TABLE, OUT_JSON, OUT_CSV };

/* The name layers get in reports when a LoRA pair stands for the merged weight W_base + B A
 * (--merge). */
#define MERGED_SUFFIX ".merged"
/* Files with at least this many layers get progress on stderr: a live counter on a terminal,
 * one count line otherwise. */
#define PROGRESS_MIN_LAYERS 16

typedef struct scan {
    enum out_format format;
    const char *base_path;
    regex_t re;
    int have_re;
    at_htsr_opts hopts;
    at_ckpt_opts copts;
    unsigned flags;
    double lora_scale;
    int merge;
    at_analyzer *an; /* every layer's analysis, exact or --fast */
    at_lora *lora;   /* --merge: forms W_base + scale B A */
    float *merged;   /* W_base + scale B A of one LoRA pair (--merge) */
    size_t merged_cap;
    at_ckpt *base;
    int fast;            /* --fast */
    at_fast_state **fst; /* per layer name, carried from file to file */
    char **fst_name;
    size_t nfst;
    int name_width;
    int progress; /* stderr is a terminal: live layer counter, erased before other output */
    int failed;
    const char *plot_dir; /* --plot: the pictures and the page go here */
    at_scan_page *page;
    unsigned pictures; /* SVG files written */
} scan;

/* What one row of the report stands for. */
typedef struct job {
    const at_ckpt_layer *layer;
    const at_ckpt_layer *lora_b; /* set: LoRA pair, layer is A */
    const at_pair *pair;         /* --base: the layer's pairing */
    int skip;                    /* the B half of a pair already reported with its A */
    char module[500];            /* LoRA pair: the adapted module's name */
    char name[512];
} job;

static void job_make(const scan *s, const at_ckpt *c, const at_ckpt_layer *l, job *j)
{
    int is_a = 0;
    memset(j, 0, sizeof *j);
    j->layer = l;
    snprintf(j->name, sizeof j->name, "%s", l->name);
    const at_ckpt_layer *other =
        at_pair_lora_partner(c, l->name, &is_a, j->module, sizeof j->module);
    if (!other)
        return;
    if (!is_a) {
        j->skip = 1;
        return;
    }
    j->lora_b = other;
    snprintf(j->name, sizeof j->name, "%s%s", j->module,
             s->merge ? MERGED_SUFFIX : AT_PAIR_LORA_SUFFIX);
}

static int selected(const scan *s, const char *name)
{
    return !s->have_re || regexec(&s->re, name, 0, NULL, 0) == 0;
}

/* Names, paths and messages come from the files: every printed one goes through text.h, so a
 * tensor name cannot drive the terminal (SHOW: for people) or make the JSON invalid (add_text). */
#define SHOW(buf, s) at_text_show(buf, sizeof buf, s)

/* Adds key: s to o as a JSON string, or replaces the key o already has. */
static int add_text(cJSON *o, const char *key, const char *s)
{
    char *q = at_text_json_quote(s);
    cJSON *item = q ? cJSON_CreateRaw(q) : NULL;
    free(q);
    if (!item)
        return 0;
    if (cJSON_GetObjectItemCaseSensitive(o, key))
        return cJSON_ReplaceItemInObjectCaseSensitive(o, key, item);
    if (cJSON_AddItemToObject(o, key, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

/* Erases the live progress line so a row or message does not land after it. */
static void progress_clear(const scan *s)
{
    if (s->progress)
        fputs("\r\033[K", stderr);
}

/* A row without metrics in the output format: an error, or a tensor the reader skips by
 * design (ckpt.h's skip), with its message. */
static void note_row(const scan *s, const char *file, const char *name, const char *shape,
                     int skipped, const char *msg)
{
    char f_[AT_TEXT_ESCAPE_CAP(1024)], n_[AT_TEXT_ESCAPE_CAP(512)], m_[AT_TEXT_ESCAPE_CAP(600)];
    const char *key = skipped ? "skipped" : "error";
    SHOW(f_, file);
    SHOW(n_, name);
    SHOW(m_, msg);
    if (s->page) {
        char text[sizeof m_ + 10];
        snprintf(text, sizeof text, "%s: %s", key, msg);
        at_scan_page_add(s->page,
                         &(at_scan_row){.file = file, .name = name, .shape = shape, .note = text});
    }
    if (s->format == OUT_JSON) {
        cJSON *o = cJSON_CreateObject();
        if (o && cJSON_AddStringToObject(o, "type", "layer") && add_text(o, "file", file) &&
            add_text(o, "name", name) &&
            (skipped ? at_fmt_json_skipped : at_fmt_json_error)(o, NULL, msg) == AT_OK &&
            add_text(o, key, msg)) {
            char *line = cJSON_PrintUnformatted(o);
            if (line)
                puts(line);
            free(line);
        }
        cJSON_Delete(o);
    } else if (s->format == OUT_CSV) {
        (skipped ? at_fmt_csv_skipped : at_fmt_csv_error)(stdout, f_, n_, m_, s->flags);
    } else {
        char text[sizeof m_ + 10];
        snprintf(text, sizeof text, "%s: %s", key, m_);
        at_fmt_table_note(stdout, s->name_width, n_, shape, text);
    }
}

static void report_error(scan *s, const char *file, const char *name, const char *shape,
                         const char *msg)
{
    char f_[AT_TEXT_ESCAPE_CAP(1024)], n_[AT_TEXT_ESCAPE_CAP(512)], m_[AT_TEXT_ESCAPE_CAP(600)];
    s->failed = 1;
    progress_clear(s);
    fprintf(stderr, "alphatop scan: %s: %s%s%s\n", SHOW(f_, file), SHOW(n_, name), name ? ": " : "",
            SHOW(m_, msg));
    if (name)
        note_row(s, file, name, shape, 0, msg);
}

/* Not an error, and not in the summary. */
static void report_skipped(const scan *s, const char *file, const char *name, const char *shape,
                           const char *reason)
{
    progress_clear(s);
    note_row(s, file, name, shape, 1, reason);
}

static void note(const scan *s, const char *file, const char *name, const char *msg)
{
    char f_[AT_TEXT_ESCAPE_CAP(1024)], n_[AT_TEXT_ESCAPE_CAP(512)];
    progress_clear(s);
    fprintf(stderr, "alphatop scan: %s: %s: %s\n", SHOW(f_, file), SHOW(n_, name), msg);
}

/* Why layer m was skipped, e.g. "skipped: too few eigenvalues for a fit (8 < --min-evals 10)". */
static void skip_reason(const scan *s, const at_metrics *m, char *text, size_t cap)
{
    if (m->num_evals < s->hopts.min_evals)
        snprintf(text, cap, "skipped: too few eigenvalues for a fit (%lld < --min-evals %lld)",
                 (long long)m->num_evals, (long long)s->hopts.min_evals);
    else if (m->num_evals > s->hopts.max_evals)
        snprintf(text, cap, "skipped: %lld eigenvalues > --max-evals %lld", (long long)m->num_evals,
                 (long long)s->hopts.max_evals);
    else
        snprintf(text, cap, "skipped: N = %lld > max_N %lld", (long long)m->N,
                 (long long)s->hopts.max_N);
}

static void emit_metrics(scan *s, const char *file, const job *j, const char *shape,
                         const at_metrics *m)
{
    char f_[AT_TEXT_ESCAPE_CAP(1024)], n_[AT_TEXT_ESCAPE_CAP(512)];
    progress_clear(s);
    if (s->format == OUT_JSON) {
        cJSON *o = cJSON_CreateObject();
        int ok = o && cJSON_AddStringToObject(o, "type", "layer") && add_text(o, "file", file) &&
                 add_text(o, "name", j->name) && at_fmt_json(o, NULL, m, s->flags) == AT_OK;
        if (ok && j->pair && !j->lora_b)
            ok = add_text(o, "base", s->base_path) &&
                 add_text(o, "base_layer", j->pair->other->name) &&
                 cJSON_AddBoolToObject(o, "base_transposed", j->pair->transposed);
        if (ok && j->lora_b)
            ok =
                cJSON_AddNumberToObject(o, "lora_rank", (double)j->lora_b->tensor.shape[1]) != NULL;
        char *line = ok ? cJSON_PrintUnformatted(o) : NULL;
        if (line)
            puts(line);
        else
            report_error(s, file, NULL, NULL, "out of memory formatting JSON");
        free(line);
        cJSON_Delete(o);
    } else if (s->format == OUT_CSV) {
        at_fmt_csv_row(stdout, SHOW(f_, file), SHOW(n_, j->name), m, s->flags);
    } else if (m->status == AT_FIT_SKIPPED) {
        char text[160];
        skip_reason(s, m, text, sizeof text);
        at_fmt_table_note(stdout, s->name_width, SHOW(n_, j->name), shape, text);
    } else {
        at_fmt_table_row(stdout, s->name_width, SHOW(n_, j->name), shape, m, s->flags);
    }
}

/* The fast-mode state of layer key (created on first use); NULL when out of memory. */
static at_fast_state *fast_state(scan *s, const char *key)
{
    for (size_t i = 0; i < s->nfst; i++)
        if (strcmp(s->fst_name[i], key) == 0)
            return s->fst[i];
    at_fast_state **st = realloc(s->fst, (s->nfst + 1) * sizeof *st);
    if (st)
        s->fst = st;
    char **nm = realloc(s->fst_name, (s->nfst + 1) * sizeof *nm);
    if (nm)
        s->fst_name = nm;
    if (!st || !nm || !(nm[s->nfst] = strdup(key)))
        return NULL;
    if (!(st[s->nfst] = at_fast_state_new())) {
        free(nm[s->nfst]);
        return NULL;
    }
    return st[s->nfst++];
}

/* The analyzer for the files still to come after the one it analyses: with --fast, a layer's
 * top vectors are kept only when the warm updates of those later files pay for them (the cost
 * model's horizon, fast.h). Caller owns return value; NULL when out of memory. */
static at_analyzer *new_analyzer(const scan *s, int later)
{
    at_analyzer_opts ao;
    at_analyzer_opts_default(&ao);
    ao.fast = s->fast;
    ao.htsr = s->hopts;
    ao.delta_exact = 1; /* --fast analyses updates in exact mode (see the help) */
    ao.keep_evals = s->plot_dir != NULL;
    if (later < ao.fast_opts.horizon)
        ao.fast_opts.horizon = later;
    return at_analyzer_new(&ao, NULL);
}

/* The analysis of one row (a dense layer, its update, or a LoRA pair) on the analyzer; with
 * --fast, dense weights carry their layer's state (by key) from file to file. */
static int analyse(scan *s, const char *key, at_layer_job *lj, at_metrics *m, const char **detail)
{
    if (s->fast && !lj->base && !lj->lora_a && !(lj->state = fast_state(s, key))) {
        *detail = "out of memory";
        return AT_ERR_NOMEM;
    }
    int rc = at_analyzer_run(s->an, lj, m, NULL);
    *detail = at_analyzer_last_error(s->an);
    return rc;
}

/* The base layer paired with j, or NULL after reporting why there is no usable one. */
static const at_tensor *base_of(scan *s, const char *file, const job *j, const at_pair *p,
                                const char *shape)
{
    char why[640];
    at_pair_describe(p, j->layer, why, sizeof why);
    if (p->status != AT_PAIR_OK) {
        report_error(s, file, j->name, shape, why);
        return NULL;
    }
    if (p->other->err < 0) {
        snprintf(why, sizeof why, "base layer %s: %s", p->other->name, p->other->error);
        report_error(s, file, j->name, shape, why);
        return NULL;
    }
    if (why[0])
        note(s, file, j->name, why);
    return &p->other->tensor;
}

/* Points *t at W_base + scale B A for the LoRA pair j (--merge). Returns 0, or -1 after
 * reporting why it cannot be formed. */
static int merge_lora(scan *s, const char *file, const job *j, const char *shape, at_tensor *t)
{
    char name[520], msg[700], s1[64], s2[64];
    const at_tensor *B = &j->lora_b->tensor, *A = &j->layer->tensor;
    snprintf(name, sizeof name, "%s.weight", j->module);
    at_pair p;
    at_pair_lookup(s->base, name, &p);
    if (p.status != AT_PAIR_OK) {
        snprintf(msg, sizeof msg, "--merge: no base layer %s (or a wrapper-prefixed variant)",
                 name);
        report_error(s, file, j->name, shape, msg);
        return -1;
    }
    const at_tensor *w = &p.other->tensor;
    if (p.other->err < 0 || w->ndim != 2 || w->shape[0] != B->shape[0] ||
        w->shape[1] != A->shape[1]) {
        int64_t dims[2] = {B->shape[0], A->shape[1]};
        snprintf(msg, sizeof msg, "--merge: base layer %s %s%s, B A is %s", p.other->name,
                 p.other->err < 0 ? "unreadable: " : "is ",
                 p.other->err < 0 ? p.other->error : at_shape_str(s1, sizeof s1, w->ndim, w->shape),
                 at_shape_str(s2, sizeof s2, 2, dims));
        report_error(s, file, j->name, shape, msg);
        return -1;
    }
    const size_t count = (size_t)(w->shape[0] * w->shape[1]);
    if (count > s->merged_cap) {
        float *nb = realloc(s->merged, count * sizeof *nb);
        if (!nb) {
            report_error(s, file, j->name, shape, "out of memory merging the adapter");
            return -1;
        }
        s->merged = nb;
        s->merged_cap = count;
    }
    if (at_lora_merge(s->lora, w, B, A, s->lora_scale, s->merged) < 0) {
        snprintf(msg, sizeof msg, "--merge: %s", at_lora_last_error(s->lora));
        report_error(s, file, j->name, shape, msg);
        return -1;
    }
    if (p.renamed) {
        snprintf(msg, sizeof msg, "merged with base layer %s (renamed)", p.other->name);
        note(s, file, j->name, msg);
    }
    *t = *w;
    t->data = s->merged;
    t->dtype = AT_DTYPE_F32;
    return 0;
}

/* --plot: writes the ESD picture of the row just analysed (m) and adds the row to the page. The
 * eigenvalues are the analyzer's, so this runs before its next job. */
static void plot_layer(scan *s, const char *file, const job *j, const char *shape,
                       const at_metrics *m)
{
    char note[200] = "", svg_file[128], sub[700];
    size_t n = 0;
    const double *evals = at_analyzer_evals(s->an, &n);
    at_scan_row row = {.file = file, .name = j->name, .shape = shape, .m = m, .note = note};
    char *svg = NULL;
    if (m->status == AT_FIT_SKIPPED) {
        skip_reason(s, m, note, sizeof note);
    } else if (!evals) {
        snprintf(note, sizeof note, "no ESD picture: %s",
                 j->lora_b && !s->merge ? "a LoRA pair is analysed from its factors"
                                        : "--fast keeps no exact spectrum");
    } else {
        at_mp mp;
        snprintf(sub, sizeof sub, "%s \xc2\xb7 %s \xc2\xb7 %zu eigenvalues", file, shape, n);
        at_esd_plot p = {.title = j->name,
                         .subtitle = sub,
                         .evals = evals,
                         .n = n,
                         .status = m->status,
                         .alpha = m->alpha,
                         .xmin = m->xmin,
                         .D = m->D,
                         .mp_edge =
                             at_mp_fit(evals, n, m->Q, m->M, &mp) == AT_OK ? mp.bulk_max : NAN};
        svg = at_esd_svg(&p, NULL);
        at_plot_file_name(svg_file, sizeof svg_file, ++s->pictures, j->name);
        progress_clear(s);
        if (at_cmd_save("scan", s->plot_dir, svg_file, svg) == 0) {
            row.svg = svg;
            row.svg_file = svg_file;
        } else {
            s->failed = 1;
            snprintf(note, sizeof note, "no ESD picture: %s could not be written", svg_file);
        }
    }
    if (at_scan_page_add(s->page, &row) < 0)
        s->failed = 1;
    free(svg);
}

static void scan_job(scan *s, const at_ckpt *c, const job *j, at_summary *sum)
{
    const char *file = at_ckpt_path(c);
    const at_ckpt_layer *l = j->layer;
    /* --fast carries a layer's state by name; a one-tensor file (.npy, raw) is named after
     * the file, so successive such files are successive snapshots of one layer. */
    const char *key = at_ckpt_count(c) == 1 ? "" : j->name;
    char shape[64], msg[640];
    at_shape_str(shape, sizeof shape, l->tensor.ndim, l->tensor.shape);
    if (l->skip[0]) {
        report_skipped(s, file, j->name, shape, l->skip);
        return;
    }
    if (l->err < 0) {
        report_error(s, file, j->name, shape, l->error);
        return;
    }
    at_metrics m;
    at_tensor merged;
    at_layer_job lj = {.w = &l->tensor};
    if (j->lora_b) {
        const at_ckpt_layer *b = j->lora_b;
        if (b->err < 0) {
            snprintf(msg, sizeof msg, "LoRA factor %s: %s", b->name, b->error);
            report_error(s, file, j->name, shape, msg);
            return;
        }
        int64_t dims[2] = {b->tensor.shape[0], l->tensor.shape[1]};
        at_shape_str(shape, sizeof shape, 2, dims);
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "/r%lld",
                 (long long)l->tensor.shape[0]);
        if (s->merge) {
            if (merge_lora(s, file, j, shape, &merged) < 0)
                return;
            lj.w = &merged;
        } else {
            lj = (at_layer_job){.w = &b->tensor, .lora_a = &l->tensor, .lora_scale = s->lora_scale};
        }
    } else if (j->pair) {
        if (!(lj.base = base_of(s, file, j, j->pair, shape)))
            return;
    }
    const char *detail = "";
    int rc = analyse(s, key, &lj, &m, &detail);
    if (rc < 0) {
        snprintf(msg, sizeof msg, "cannot analyse: %s", detail);
        report_error(s, file, j->name, shape, msg);
        return;
    }
    if (m.status != AT_FIT_SKIPPED && m.lambda_max == 0.0) {
        report_error(s, file, j->name, shape,
                     j->pair && !j->lora_b ? "cannot analyse: the update is all zero (W equals "
                                             "its base)"
                                           : "cannot analyse: all weights are zero");
        return;
    }
    emit_metrics(s, file, j, shape, &m);
    if (s->page)
        plot_layer(s, file, j, shape, &m);
    at_summary_add(sum, &m);
}

static void emit_summary(scan *s, const char *file, const at_summary *sum)
{
    if (s->format == OUT_JSON) {
        cJSON *o = cJSON_CreateObject();
        if (o && cJSON_AddStringToObject(o, "type", "summary") && add_text(o, "file", file) &&
            at_summary_json(o, sum) == AT_OK) {
            char *line = cJSON_PrintUnformatted(o);
            if (line)
                puts(line);
            free(line);
        }
        cJSON_Delete(o);
    } else if (s->format == OUT_TABLE) {
        printf("\nmodel summary (mean over analysed layers)\n");
        at_summary_print(stdout, sum);
    }
}

static void scan_file(scan *s, const at_ckpt *c, int first)
{
    const char *file = at_ckpt_path(c);
    if (at_ckpt_status(c) < 0) {
        report_error(s, file, NULL, NULL, at_ckpt_last_error(c));
        return;
    }
    at_pairing *pairing = NULL;
    if (s->base && !(pairing = at_pairing_new(c, s->base))) {
        report_error(s, file, NULL, NULL, "out of memory pairing layers");
        return;
    }
    size_t n = at_ckpt_count(c);
    char f_[AT_TEXT_ESCAPE_CAP(1024)], b_[AT_TEXT_ESCAPE_CAP(1024)], n_[AT_TEXT_ESCAPE_CAP(512)];
    if (s->format == OUT_TABLE) {
        if (!first)
            putchar('\n');
        if (s->base_path)
            printf("%s: update against base %s (W - W_base per layer)\n\n", SHOW(f_, file),
                   SHOW(b_, s->base_path));
        else
            printf("%s\n\n", SHOW(f_, file));
        at_fmt_table_header(stdout, s->name_width, s->flags);
    }
    const int live = s->progress && n >= PROGRESS_MIN_LAYERS;
    if (!s->progress && n >= PROGRESS_MIN_LAYERS)
        fprintf(stderr, "alphatop scan: %s: %zu layers\n", SHOW(f_, file), n);
    at_summary sum;
    at_summary_init(&sum);
    int adapters = 0;
    for (size_t i = 0; i < n; i++) {
        job j;
        job_make(s, c, at_ckpt_layer_at(c, i), &j);
        adapters |= j.lora_b != NULL;
        if (j.skip || !selected(s, j.name))
            continue;
        if (live) {
            fprintf(stderr, "\r\033[K[%zu/%zu] %s", i + 1, n, SHOW(n_, j.name));
            fflush(stderr);
        }
        fflush(stdout);
        j.pair = pairing ? at_pairing_get(pairing, i) : NULL;
        scan_job(s, c, &j, &sum);
    }
    progress_clear(s);
    /* An adapter file pairs with its base through module names, not layer by layer. */
    for (size_t k = 0; pairing && !adapters && k < at_pairing_unmatched_count(pairing); k++)
        note(s, s->base_path, at_pairing_unmatched(pairing, k)->name,
             "base layer with no counterpart in the checkpoint (not analysed)");
    if (sum.layers == 0 && s->format == OUT_TABLE)
        printf("(no layer analysed)\n");
    else
        emit_summary(s, file, &sum);
    at_pairing_free(pairing);
}

static int name_width(at_ckpt **files, int nfiles, const scan *s)
{
    int w = 5;
    for (int f = 0; f < nfiles; f++)
        for (size_t i = 0; i < at_ckpt_count(files[f]); i++) {
            job j;
            job_make(s, files[f], at_ckpt_layer_at(files[f], i), &j);
            int len = (int)strlen(j.name);
            if (!j.skip && selected(s, j.name) && len > w)
                w = len;
        }
    return w > 60 ? 60 : w;
}

/* Parses the command line into s, the FILEs to argv[1..1 + *nfiles). Returns -1 to go on,
 * else the exit code to return (after --help or a usage error). */
static int parse_args(scan *s, int argc, char **argv, int *nfiles)
{
    int json = 0, csv = 0;
    int64_t seed = 0;
    const char *layers = NULL, *shape = NULL;
    const at_arg_opt opts[] = {
        {.name = "json",
         .kind = AT_ARG_FLAG,
         .value = &json,
         .help = "JSON lines: one object per layer (reference column names, \"mode\"), then one "
                 "{\"type\":\"summary\"} per file"},
        {.name = "csv",
         .kind = AT_ARG_FLAG,
         .value = &csv,
         .help = "CSV with a header line, one row per layer"},
        {.name = "base",
         .kind = AT_ARG_STRING,
         .value = &s->base_path,
         .meta = "BASE",
         .help = "analyse each layer's update W - W_base; layers are paired by name (wrapper "
                 "prefixes like 'module.' ignored; a transposed base is fine)"},
        {.name = "layers",
         .kind = AT_ARG_STRING,
         .value = &layers,
         .meta = "REGEX",
         .help = "only layers whose name matches the extended regex"},
        {.name = "detx",
         .kind = AT_ARG_FLAG,
         .value = &s->hopts.detx,
         .help = "add detX_num / detX_val (SETOL det X = 1 condition)"},
        {.name = "traps",
         .kind = AT_ARG_FLAG,
         .value = &s->hopts.traps,
         .help = "add num_traps (correlation traps of the centred, shuffled weights)"},
        {.name = "mp",
         .kind = AT_ARG_FLAG,
         .value = &s->hopts.mp_fit,
         .help = "add the Marchenko-Pastur fit (num_spikes, sigma_mp, mp_softrank)"},
        {.name = "seed",
         .kind = AT_ARG_INT,
         .value = &seed,
         .help = "seed of the traps' shuffle",
         .flags = AT_ARG_SHOW_DEFAULT},
        AT_CKPT_ARGS_ROWS(&s->hopts, shape),
        {.name = "lora-scale",
         .kind = AT_ARG_DOUBLE,
         .value = &s->lora_scale,
         .meta = "S",
         .help = "scaling of LoRA updates, PEFT's lora_alpha / r",
         .flags = AT_ARG_ABOVE_MIN | AT_ARG_SHOW_DEFAULT},
        {.name = "merge",
         .kind = AT_ARG_FLAG,
         .value = &s->merge,
         .help = "with --base: analyse each LoRA pair merged, W_base + S B A, where W_base is the "
                 "base layer MODULE.weight (MODULE: the pair's prefix)"},
        {.name = "fast",
         .kind = AT_ARG_FLAG,
         .value = &s->fast,
         .help = "fast mode (docs/fast.md): float32 Gram spectra, no --max-evals limit; several "
                 "FILEs of one model, in order, are successive snapshots: warm updates, unchanged "
                 "layers skipped (column/field \"mode\"); updates (--base) and unmerged LoRA pairs "
                 "stay exact"},
        {.name = "plot",
         .kind = AT_ARG_STRING,
         .value = &s->plot_dir,
         .meta = "DIR",
         .help = "also write every layer's eigenvalue spectrum as DIR/NNN-LAYER.svg (log-log "
                 "density, fitted power law, xmin, Marchenko-Pastur bulk edge) and DIR/index.html, "
                 "a page of every layer with alpha coloured by the healthy band and its picture; "
                 "DIR is created if missing, files in it are overwritten"},
    };
    const at_args_spec spec = {"scan", "[OPTIONS] FILE...", about, notes, "FILE...", 1, -1,
                               opts,   AT_ARGS_N(opts)};
    int rc = at_args_handle(&spec, argc, argv, nfiles);
    if (rc >= 0)
        return rc;
    s->hopts.seed = (uint64_t)seed;
    s->flags = (s->hopts.detx ? AT_FMT_DETX : 0) | (s->hopts.traps ? AT_FMT_TRAPS : 0) |
               (s->hopts.mp_fit ? AT_FMT_MP : 0);
    if (json && csv)
        return at_args_error("scan", "--json and --csv exclude each other");
    s->format = json ? OUT_JSON : csv ? OUT_CSV : OUT_TABLE;
    if (s->merge && !s->base_path)
        return at_args_error("scan", "--merge needs --base BASE (the weights the adapters modify)");
    if (at_cmd_ckpt_args("scan", shape, &s->copts, argv + 1, *nfiles) < 0)
        return AT_EXIT_USAGE;
    if (layers && at_cmd_regex("scan", layers, &s->re) < 0)
        return AT_EXIT_USAGE;
    s->have_re = layers != NULL;
    if (s->plot_dir && at_cmd_out_dir("scan", "--plot", s->plot_dir) < 0)
        return AT_EXIT_USAGE;
    return -1;
}

int cmd_scan(int argc, char **argv)
{
    scan s;
    memset(&s, 0, sizeof s);
    at_htsr_opts_default(&s.hopts);
    s.lora_scale = 1.0;
    int nfiles = 0;
    int rc = parse_args(&s, argc, argv, &nfiles);
    if (rc >= 0) {
        if (s.have_re)
            regfree(&s.re);
        return rc;
    }
    /* Machine formats keep the reference's label for a failed fit; the table says "failed". */
    if (s.format != OUT_TABLE)
        s.flags |= AT_FMT_REF_WARNING;
    at_ckpt **files = calloc((size_t)nfiles, sizeof *files);
    s.an = new_analyzer(&s, nfiles - 1);
    s.lora = s.merge ? at_lora_new() : NULL;
    s.page = s.plot_dir ? at_scan_page_new(NULL) : NULL;
    int exit_code = AT_EXIT_OK;
    if (!files || !s.an || (s.merge && !s.lora) || (s.plot_dir && !s.page)) {
        fputs("alphatop scan: out of memory\n", stderr);
        exit_code = AT_EXIT_PARTIAL;
        goto done;
    }
    if (s.base_path) {
        s.base = at_ckpt_open(s.base_path, &s.copts);
        if (!s.base || at_ckpt_status(s.base) < 0) {
            fprintf(stderr, "alphatop scan: base %s: %s\n", s.base_path,
                    s.base ? at_ckpt_last_error(s.base) : "out of memory");
            exit_code = AT_EXIT_PARTIAL;
            goto done;
        }
    }
    for (int f = 0; f < nfiles; f++)
        if (!(files[f] = at_ckpt_open(argv[1 + f], &s.copts))) {
            fputs("alphatop scan: out of memory\n", stderr);
            exit_code = AT_EXIT_PARTIAL;
            goto done;
        }
    s.progress = isatty(STDERR_FILENO);
    s.name_width = name_width(files, nfiles, &s);
    if (s.format == OUT_CSV)
        at_fmt_csv_header(stdout, "file", s.flags);
    for (int f = 0; f < nfiles; f++) {
        if (s.fast && f > 0 && nfiles - 1 - f < at_analyzer_opts_get(s.an)->fast_opts.horizon) {
            at_analyzer_free(s.an);
            if (!(s.an = new_analyzer(&s, nfiles - 1 - f))) {
                fputs("alphatop scan: out of memory\n", stderr);
                exit_code = AT_EXIT_PARTIAL;
                goto done;
            }
        }
        scan_file(&s, files[f], f == 0);
    }
    if (s.page) {
        char *html = at_scan_page_html(s.page, NULL);
        if (at_cmd_save("scan", s.plot_dir, "index.html", html) < 0)
            s.failed = 1;
        else
            fprintf(stderr, "alphatop scan: wrote %s/index.html (%u ESD picture%s)\n", s.plot_dir,
                    s.pictures, s.pictures == 1 ? "" : "s");
        free(html);
    }
    if (s.failed)
        exit_code = AT_EXIT_PARTIAL;
done:
    for (int f = 0; files && f < nfiles; f++)
        at_ckpt_close(files[f]);
    free(files);
    at_ckpt_close(s.base);
    at_analyzer_free(s.an);
    at_lora_free(s.lora);
    at_scan_page_free(s.page);
    for (size_t i = 0; i < s.nfst; i++) {
        at_fast_state_free(s.fst[i]);
        free(s.fst_name[i]);
    }
    free(s.fst);
    free(s.fst_name);
    free(s.merged);
    if (s.have_re)
        regfree(&s.re);
    return exit_code;
}
