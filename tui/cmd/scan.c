/* SPDX-License-Identifier: Apache-2.0 */
/* scan.c -- `alphatop scan`: HTSR metrics of every layer in checkpoint files.
 *
 * Three steps. Plan: every row of every file is decided without printing anything -- a tensor
 * the reader skips, a broken layer, a layer skipped for its size (from its shape alone), or a
 * task that names where its weights are (scan_work.h). Run: the tasks go to worker threads, one
 * per core, or over MPI ranks (mpi_scan.c), largest first; each reads its own weights and gives
 * them back. Print: the rows in file order as their results arrive, with a progress line on
 * stderr. The output is the same, byte for byte, whatever the number of threads or ranks. */
#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alphatop/analyze.h"
#include "alphatop/lora.h"
#include "alphatop/pool.h"
#include "alphatop/text.h"
#include "args.h"
#include "ckpt.h"
#include "ckpt_args.h"
#include "commands.h"
#include "metrics_fmt.h"
#include "page.h"
#include "pair.h"
#include "plot_out.h"
#include "progress.h"
#include "scan_work.h"
#ifdef AT_MPI
#include "mpi_scan.h"
#endif

static const char about[] =
    "HTSR metrics of every layer in checkpoint files, in exact mode (the reference's numbers)\n"
    "unless --fast.\n"
    "FILE is a checkpoint, told apart by its content: .safetensors, a torch.save file (.pt,\n"
    ".pth, pytorch_model.bin; read without running its pickle), .npy / .npz, a Hugging Face\n"
    "model directory or sharded index (*.index.json), '-' for standard input, or raw\n"
    "little-endian float32 with --shape. Every 2-D or 4-D F32/F16/BF16/F64 tensor whose name ends\n"
    "in 'weight' or 'kernel' (Flax) is a layer, and with --layers every such tensor whose name\n"
    "matches, a 3-D one as a Conv1d weight (out, in, k); LoRA pairs '*lora_A*weight' +\n"
    "'*lora_B*weight' are analysed as one layer B A. Every other tensor (bias, norm scale, tied\n"
    "copy, integer/FP8) is a skipped row with its reason (the table counts them).\n"
    "Output (stdout): an aligned table per file and its model summary, or --json / --csv.\n"
    "--plot DIR also writes each layer's ESD picture (SVG) and a page of all layers (HTML).\n";

static const char notes[] =
    "Errors (unreadable file or layer, size mismatch, NaN/Inf or all-zero weights) go to\n"
    "stderr naming file and layer; the other layers and files are still reported.\n";

enum out_format { OUT_TABLE, OUT_JSON, OUT_CSV };

/* The name layers get in reports when a LoRA pair stands for the merged weight W_base + B A
 * (--merge). */
#define MERGED_SUFFIX ".merged"
/* How long printing waits for a result before it redraws the progress line (ms). */
#define PUMP_MS 200

/* What one row of the report stands for. */
typedef struct job {
    const at_ckpt_layer *layer;
    const at_ckpt_layer *lora_b; /* set: LoRA pair, layer is A */
    const at_pair *pair;         /* --base: the layer's pairing */
    int skip;                    /* the B half of a pair, reported with its A (name: the pair's) */
    char module[500];            /* LoRA pair: the adapted module's name */
    char name[512];
} job;

/* A planned row: what it prints and, once its task is done, the task's result. */
typedef enum row_kind {
    ROW_SKIPPED, /* a tensor the reader skips by design (msg says why) */
    ROW_ERROR,   /* cannot be analysed (msg says why) */
    ROW_FIXED,   /* skipped for its size: m is known from the shapes */
    ROW_TASK,    /* analysed by a task */
} row_kind;

typedef struct scan_row {
    job j;
    const at_ckpt *c;
    char shape[64];
    row_kind kind;
    char msg[700];
    char note[700]; /* printed on stderr before the row's output, when set */
    int not_layer;  /* ROW_SKIPPED: not a layer here (the table counts it instead of listing it) */
    int merge_note; /* the note says the merge was done: not printed when it failed */
    at_metrics m;   /* ROW_FIXED */
    double cost;    /* ROW_TASK: its task's */
    int done;       /* ROW_TASK: res has come */
    scan_result res;
} scan_row;

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
    int fast;          /* --fast */
    int64_t threads;   /* --threads; 0: one per core */
    double max_memory; /* --max-memory, GiB; 0: the runner's default */
    at_analyzer_opts ao;
    at_ckpt *base;
    at_ckpt **files;
    int nfiles;
    at_pairing **pairing; /* --base: each file's */
    int *adapters;        /* each file: it has LoRA pairs */
    scan_row *rows;
    size_t nrows;
    size_t *first; /* file f's rows: rows[first[f]] .. rows[first[f + 1] - 1] */
    scan_task *tasks;
    size_t ntasks, ndone;
    double cost_total, cost_done;
    scan_exec exec;
    at_progress *prog;
    int name_width;
    int failed;
    /* The current file's tensors that are not layers, by kind ("bias", "1-D", ...): the table
     * counts them instead of listing them. */
    char kinds[8][24];
    unsigned kind_count[8];
    int nkinds;
    int64_t skipped; /* the current file's rows with status skipped (its summary's "skipped") */
    const char *plot_dir; /* --plot: the pictures and the page go here */
    at_scan_page *page;
    unsigned pictures; /* SVG files written */
} scan;

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
    snprintf(j->name, sizeof j->name, "%s%s", j->module,
             s->merge ? MERGED_SUFFIX : AT_PAIR_LORA_SUFFIX);
    j->skip = !is_a;
    j->lora_b = is_a ? other : NULL;
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

/* Erases the progress bar so a row or message does not land after it. */
static void progress_clear(const scan *s)
{
    at_progress_clear(s->prog);
}

/* A row without metrics in the output format: an error, or a tensor the reader skips by
 * design (ckpt.h's skip), with its message. The page (--plot) lists those that are layers. */
static void note_row(const scan *s, const char *file, const char *name, const char *shape,
                     int skipped, const char *msg, int layer)
{
    char f_[AT_TEXT_ESCAPE_CAP(1024)], n_[AT_TEXT_ESCAPE_CAP(512)], m_[AT_TEXT_ESCAPE_CAP(600)];
    const char *key = skipped ? "skipped" : "error";
    SHOW(f_, file);
    SHOW(n_, name);
    SHOW(m_, msg);
    if (s->page && layer) {
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
        note_row(s, file, name, shape, 0, msg, 1);
}

/* Not an error, and not in the summary. */
static void report_skipped(const scan *s, const char *file, const char *name, const char *shape,
                           const char *reason, int layer)
{
    progress_clear(s);
    note_row(s, file, name, shape, 1, reason, layer);
}

/* Counts a tensor that is not a layer under its kind, its reason's first word ("bias"). */
static void count_not_layer(scan *s, const char *reason)
{
    char kind[sizeof s->kinds[0]];
    snprintf(kind, sizeof kind, "%.*s", (int)strcspn(reason, ":"), reason);
    int k = 0;
    while (k < s->nkinds && strcmp(s->kinds[k], kind))
        k++;
    if (k == s->nkinds && s->nkinds == (int)(sizeof s->kinds / sizeof s->kinds[0]))
        snprintf(s->kinds[--k], sizeof kind, "other");
    else if (k == s->nkinds)
        snprintf(s->kinds[s->nkinds++], sizeof kind, "%s", kind);
    s->kind_count[k]++;
}

static void note(const scan *s, const char *file, const char *name, const char *msg)
{
    char f_[AT_TEXT_ESCAPE_CAP(1024)], n_[AT_TEXT_ESCAPE_CAP(512)];
    progress_clear(s);
    fprintf(stderr, "alphatop scan: %s: %s: %s\n", SHOW(f_, file), SHOW(n_, name), msg);
}

/* Why layer m was skipped, e.g. "too few eigenvalues for a fit (8 < --min-evals 10)". */
static void skip_reason(const scan *s, const at_metrics *m, char *text, size_t cap)
{
    if (m->num_evals < s->hopts.min_evals)
        snprintf(text, cap, "too few eigenvalues for a fit (%lld < --min-evals %lld)",
                 (long long)m->num_evals, (long long)s->hopts.min_evals);
    else if (m->num_evals > s->hopts.max_evals)
        snprintf(text, cap, "%lld eigenvalues > --max-evals %lld", (long long)m->num_evals,
                 (long long)s->hopts.max_evals);
    else
        snprintf(text, cap, "N = %lld > max_N %lld", (long long)m->N, (long long)s->hopts.max_N);
}

static void emit_metrics(scan *s, const char *file, const job *j, const char *shape,
                         const at_metrics *m)
{
    char f_[AT_TEXT_ESCAPE_CAP(1024)], n_[AT_TEXT_ESCAPE_CAP(512)], why[160] = "";
    progress_clear(s);
    if (m->status == AT_FIT_SKIPPED)
        skip_reason(s, m, why, sizeof why);
    if (s->format == OUT_JSON) {
        cJSON *o = cJSON_CreateObject();
        int ok = o && cJSON_AddStringToObject(o, "type", "layer") && add_text(o, "file", file) &&
                 add_text(o, "name", j->name) && at_fmt_json(o, NULL, m, s->flags) == AT_OK &&
                 (!why[0] || add_text(o, "skipped", why));
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
        at_fmt_csv_row(stdout, SHOW(f_, file), SHOW(n_, j->name), m, s->flags, why[0] ? why : NULL);
    } else if (m->status == AT_FIT_SKIPPED) {
        char text[sizeof why + 10];
        snprintf(text, sizeof text, "skipped: %s", why);
        at_fmt_table_note(stdout, s->name_width, SHOW(n_, j->name), shape, text);
    } else {
        at_fmt_table_row(stdout, s->name_width, SHOW(n_, j->name), shape, m, s->flags);
    }
}

/* ---- planning: what each row is, without output ------------------------------------------ */

/* A task's tensor: layer l's shape and where its elements are. */
static scan_tensor tensor_of(const at_ckpt_layer *l)
{
    return (scan_tensor){l->tensor, l->loc};
}

/* --base: the base layer paired with j, or NULL after making r an error row that says why. */
static const at_ckpt_layer *plan_base(const job *j, scan_row *r)
{
    at_pair_describe(j->pair, j->layer, r->note, sizeof r->note);
    r->kind = ROW_ERROR;
    if (j->pair->status != AT_PAIR_OK) {
        snprintf(r->msg, sizeof r->msg, "%s", r->note);
        r->note[0] = '\0';
        return NULL;
    }
    const at_ckpt_layer *b = j->pair->other;
    if (b->err < 0) {
        snprintf(r->msg, sizeof r->msg, "base layer %s: %s", b->name, b->error);
        r->note[0] = '\0';
        return NULL;
    }
    r->kind = ROW_TASK;
    return b;
}

/* --merge: the base layer W_base of LoRA pair j (B A must have its shape), or NULL after making r
 * an error row that says why. */
static const at_ckpt_layer *plan_merge(const scan *s, const job *j, scan_row *r)
{
    char name[520], s1[64], s2[64];
    const at_tensor *B = &j->lora_b->tensor, *A = &j->layer->tensor;
    snprintf(name, sizeof name, "%s.weight", j->module);
    at_pair p;
    at_pair_lookup(s->base, name, &p);
    r->kind = ROW_ERROR;
    if (p.status != AT_PAIR_OK) {
        snprintf(r->msg, sizeof r->msg, "--merge: no base layer %s (or a wrapper-prefixed variant)",
                 name);
        return NULL;
    }
    const at_tensor *w = &p.other->tensor;
    if (p.other->err < 0 || w->ndim != 2 || w->shape[0] != B->shape[0] ||
        w->shape[1] != A->shape[1]) {
        int64_t dims[2] = {B->shape[0], A->shape[1]};
        snprintf(r->msg, sizeof r->msg, "--merge: base layer %s %s%s, B A is %s", p.other->name,
                 p.other->err < 0 ? "unreadable: " : "is ",
                 p.other->err < 0 ? p.other->error : at_shape_str(s1, sizeof s1, w->ndim, w->shape),
                 at_shape_str(s2, sizeof s2, 2, dims));
        return NULL;
    }
    if (p.renamed) {
        snprintf(r->note, sizeof r->note, "merged with base layer %s (renamed)", p.other->name);
        r->merge_note = 1;
    }
    r->kind = ROW_TASK;
    return p.other;
}

/* Plans row r for job j of checkpoint c: its kind and message, or its task *t (id set by the
 * caller). */
static void plan_row(const scan *s, const at_ckpt *c, const job *j, scan_row *r, scan_task *t)
{
    const at_ckpt_layer *l = j->layer;
    r->j = *j;
    r->c = c;
    at_shape_str(r->shape, sizeof r->shape, l->stored_ndim, l->stored_shape);
    if (l->skip[0] || l->err < 0) {
        r->kind = l->skip[0] ? ROW_SKIPPED : ROW_ERROR;
        r->not_layer = l->not_layer;
        snprintf(r->msg, sizeof r->msg, "%s", l->skip[0] ? l->skip : l->error);
        return;
    }
    memset(t, 0, sizeof *t);
    t->kind = SCAN_PLAIN;
    t->n = 1;
    t->t[0] = tensor_of(l);
    t->lora_scale = s->lora_scale;
    r->kind = ROW_TASK;
    if (j->lora_b) {
        const at_ckpt_layer *b = j->lora_b;
        int64_t dims[2] = {b->tensor.shape[0], l->tensor.shape[1]};
        at_shape_str(r->shape, sizeof r->shape, 2, dims);
        snprintf(r->shape + strlen(r->shape), sizeof r->shape - strlen(r->shape), "/r%lld",
                 (long long)l->tensor.shape[0]);
        if (b->err < 0) {
            r->kind = ROW_ERROR;
            snprintf(r->msg, sizeof r->msg, "LoRA factor %s: %s", b->name, b->error);
            return;
        }
        const at_ckpt_layer *w = s->merge ? plan_merge(s, j, r) : NULL;
        if (s->merge && !w)
            return;
        t->kind = s->merge ? SCAN_MERGE : SCAN_LORA;
        t->n = s->merge ? 3 : 2;
        t->t[0] = s->merge ? tensor_of(w) : tensor_of(b);
        t->t[1] = s->merge ? tensor_of(b) : tensor_of(l);
        t->t[2] = tensor_of(l);
    } else if (j->pair) {
        const at_ckpt_layer *b = plan_base(j, r);
        if (!b)
            return;
        t->kind = SCAN_DELTA;
        t->n = 2;
        t->t[1] = tensor_of(b);
    }
    /* A layer skipped for its size is known from its shape: no task reads it. */
    at_layer_job lj = {.w = &t->t[0].shape, .base = t->kind == SCAN_DELTA ? &t->t[1].shape : NULL};
    if (t->kind != SCAN_LORA && at_analyzer_skips(&s->ao, &lj, &r->m))
        r->kind = ROW_FIXED;
    else
        r->cost = scan_task_cost(t);
}

/* Plans row r of tensor l of checkpoint c, which --layers does not select: skipped "not
 * selected by layers=" (alphatop.analyze's words) when it could be a layer, else with why it
 * never is one. Returns 0 when it gets no row (a malformed entry, not asked for). */
static int plan_unselected(const at_ckpt *c, const at_ckpt_layer *l, scan_row *r)
{
    if (!l->candidate && !l->skip[0])
        return 0;
    memset(r, 0, sizeof *r);
    r->j.layer = l;
    snprintf(r->j.name, sizeof r->j.name, "%s", l->name);
    r->c = c;
    at_shape_str(r->shape, sizeof r->shape, l->stored_ndim, l->stored_shape);
    r->kind = ROW_SKIPPED;
    r->not_layer = 1;
    snprintf(r->msg, sizeof r->msg, "%s", l->candidate ? "not selected by layers=" : l->skip);
    return 1;
}

/* Plans every row of file f into s->rows (from s->nrows on) and its tasks into s->tasks. */
static int plan_file(scan *s, int f)
{
    const at_ckpt *c = s->files[f];
    if (s->base && at_ckpt_status(c) == AT_OK && !(s->pairing[f] = at_pairing_new(c, s->base)))
        return AT_ERR_NOMEM;
    const size_t n = at_ckpt_count(c);
    scan_row *rows = realloc(s->rows, (s->nrows + n + 1) * sizeof *rows);
    scan_task *tasks = rows ? realloc(s->tasks, (s->ntasks + n + 1) * sizeof *tasks) : NULL;
    if (rows)
        s->rows = rows;
    if (!tasks)
        return AT_ERR_NOMEM;
    s->tasks = tasks;
    for (size_t i = 0; i < n; i++) {
        job j;
        job_make(s, c, at_ckpt_layer_at(c, i), &j);
        s->adapters[f] |= j.lora_b != NULL;
        if (!selected(s, j.name)) {
            s->nrows += (size_t)plan_unselected(c, j.layer, &s->rows[s->nrows]);
            continue;
        }
        if (j.skip)
            continue;
        j.pair = s->pairing[f] ? at_pairing_get(s->pairing[f], i) : NULL;
        scan_row *r = &s->rows[s->nrows];
        scan_task *t = &s->tasks[s->ntasks];
        memset(r, 0, sizeof *r);
        plan_row(s, c, &j, r, t);
        if (r->kind == ROW_TASK) {
            t->id = (int64_t)s->nrows;
            s->cost_total += r->cost;
            s->ntasks++;
        }
        s->nrows++;
    }
    return AT_OK;
}

/* Tasks by key, then id: a key's tasks next to each other, in file order. */
static const scan_task *by_key_base;

static int by_key(const void *a, const void *b)
{
    const scan_task *x = &by_key_base[*(const size_t *)a], *y = &by_key_base[*(const size_t *)b];
    const int c = strcmp(x->key, y->key);
    return c ? c : x->id < y->id ? -1 : x->id > y->id;
}

/* The tasks' keys: with --fast, a plain layer's state carries from file to file by its name (a
 * one-tensor file's layer is named after the file, so successive such files are successive
 * snapshots of one layer); each such layer's tasks are one group, the last one freeing the
 * state. Every other task is a group of its own, under a key of its own. */
static int key_tasks(scan *s)
{
    size_t *idx = malloc((s->ntasks ? s->ntasks : 1) * sizeof *idx);
    if (!idx)
        return AT_ERR_NOMEM;
    for (size_t i = 0; i < s->ntasks; i++) {
        scan_task *t = &s->tasks[i];
        const scan_row *r = &s->rows[t->id];
        t->group = t->id;
        t->last = 1;
        if (s->fast && t->kind == SCAN_PLAIN)
            snprintf(t->key, sizeof t->key, "%s", at_ckpt_count(r->c) == 1 ? "" : r->j.name);
        else
            snprintf(t->key, sizeof t->key, "#%lld", (long long)t->id);
        idx[i] = i;
    }
    by_key_base = s->tasks;
    qsort(idx, s->ntasks, sizeof *idx, by_key);
    for (size_t i = 1; i < s->ntasks; i++) {
        scan_task *prev = &s->tasks[idx[i - 1]], *t = &s->tasks[idx[i]];
        if (!strcmp(prev->key, t->key)) {
            prev->last = 0;
            t->group = prev->group;
        }
    }
    free(idx);
    return AT_OK;
}

/* ---- printing ------------------------------------------------------------------------------ */

/* --plot: writes the ESD picture of a row (m, and its exact eigenvalues evals[0..n) when it has
 * them) and adds the row to the page. */
static void plot_layer(scan *s, const char *file, const job *j, const char *shape,
                       const at_metrics *m, const double *evals, size_t n)
{
    char note[200] = "", svg_file[128], sub[700];
    at_scan_row row = {.file = file, .name = j->name, .shape = shape, .m = m, .note = note};
    char *svg = NULL;
    if (m->status == AT_FIT_SKIPPED) {
        snprintf(note, sizeof note, "skipped: ");
        skip_reason(s, m, note + strlen(note), sizeof note - strlen(note));
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

/* Files the results that have come (waiting up to timeout_ms for the first) under their rows,
 * and shows the progress. */
static void pump(scan *s, int timeout_ms)
{
    scan_result res;
    while (s->exec.wait(s->exec.ctx, timeout_ms, &res) == 1) {
        scan_row *r = &s->rows[res.id];
        r->res = res;
        r->done = 1;
        s->ndone++;
        s->cost_done += r->cost;
        timeout_ms = 0;
    }
    at_progress_update(s->prog, (int64_t)s->ndone, (int64_t)s->ntasks, s->cost_done, s->cost_total);
}

/* Prints row r, waiting for its result if it has a task. */
static void emit_row(scan *s, scan_row *r, at_summary *sum)
{
    const char *file = at_ckpt_path(r->c);
    const job *j = &r->j;
    while (r->kind == ROW_TASK && !r->done)
        pump(s, PUMP_MS);
    s->skipped += r->kind == ROW_SKIPPED;
    if (r->kind == ROW_SKIPPED && r->not_layer)
        count_not_layer(s, r->msg);
    if (r->kind == ROW_SKIPPED && r->not_layer && s->format == OUT_TABLE)
        return;
    if (r->kind == ROW_SKIPPED || r->kind == ROW_ERROR) {
        if (r->kind == ROW_SKIPPED)
            report_skipped(s, file, j->name, r->shape, r->msg, !r->not_layer);
        else
            report_error(s, file, j->name, r->shape, r->msg);
        return;
    }
    if (r->note[0] && (r->kind == ROW_FIXED || !r->merge_note || r->res.prepared))
        note(s, file, j->name, r->note);
    if (r->kind == ROW_TASK && r->res.rc < 0) {
        report_error(s, file, j->name, r->shape, r->res.error);
        return;
    }
    const at_metrics *m = r->kind == ROW_FIXED ? &r->m : &r->res.m;
    if (m->status != AT_FIT_SKIPPED && m->lambda_max == 0.0) {
        report_error(s, file, j->name, r->shape,
                     j->pair && !j->lora_b ? "cannot analyse: the update is all zero (W equals "
                                             "its base)"
                                           : "cannot analyse: all weights are zero");
        return;
    }
    emit_metrics(s, file, j, r->shape, m);
    s->skipped += m->status == AT_FIT_SKIPPED;
    if (s->page)
        plot_layer(s, file, j, r->shape, m, r->res.evals, r->res.num_evals);
    at_summary_add(sum, m);
}

static void emit_summary(scan *s, const char *file, const at_summary *sum)
{
    if (s->format == OUT_JSON) {
        cJSON *o = cJSON_CreateObject();
        if (o && cJSON_AddStringToObject(o, "type", "summary") && add_text(o, "file", file) &&
            at_summary_json(o, sum) == AT_OK &&
            cJSON_AddNumberToObject(o, "skipped", (double)s->skipped)) {
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

/* Prints file f: its heading, its rows as their results come, its summary. */
static void emit_file(scan *s, int f)
{
    const at_ckpt *c = s->files[f];
    const char *file = at_ckpt_path(c);
    if (at_ckpt_status(c) < 0) {
        report_error(s, file, NULL, NULL, at_ckpt_last_error(c));
        return;
    }
    char f_[AT_TEXT_ESCAPE_CAP(1024)], b_[AT_TEXT_ESCAPE_CAP(1024)];
    if (s->format == OUT_TABLE) {
        if (f > 0)
            putchar('\n');
        if (s->base_path)
            printf("%s: update against base %s (W - W_base per layer)\n\n", SHOW(f_, file),
                   SHOW(b_, s->base_path));
        else
            printf("%s\n\n", SHOW(f_, file));
        at_fmt_table_header(stdout, s->name_width, s->flags);
    }
    at_summary sum;
    at_summary_init(&sum);
    s->nkinds = 0;
    s->skipped = 0;
    memset(s->kind_count, 0, sizeof s->kind_count);
    for (size_t i = s->first[f]; i < s->first[f + 1]; i++) {
        emit_row(s, &s->rows[i], &sum);
        scan_result_clear(&s->rows[i].res);
        fflush(stdout);
    }
    const at_pairing *pairing = s->pairing[f];
    /* An adapter file pairs with its base through module names, not layer by layer. */
    for (size_t k = 0; pairing && !s->adapters[f] && k < at_pairing_unmatched_count(pairing); k++)
        note(s, s->base_path, at_pairing_unmatched(pairing, k)->name,
             "base layer with no counterpart in the checkpoint (not analysed)");
    if (sum.layers == 0 && s->format == OUT_TABLE)
        printf("(no layer analysed)\n");
    else
        emit_summary(s, file, &sum);
    if (s->nkinds && s->format == OUT_TABLE) {
        printf("\nnot analysed, not layers: ");
        for (int k = 0; k < s->nkinds; k++)
            printf("%s%u %s", k ? ", " : "", s->kind_count[k], SHOW(f_, s->kinds[k]));
        printf(" (--json or --csv lists each with its reason)\n");
    }
}

static int name_width(at_ckpt **files, int nfiles, const scan *s)
{
    int w = 5;
    for (int f = 0; f < nfiles; f++)
        for (size_t i = 0; i < at_ckpt_count(files[f]); i++) {
            job j;
            job_make(s, files[f], at_ckpt_layer_at(files[f], i), &j);
            int len = (int)strlen(j.name);
            if (!j.skip && !j.layer->not_layer && selected(s, j.name) && len > w)
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
         .help = "only the tensors whose name matches the extended regex (searched), each a "
                 "layer if it is a 2-D, 3-D (a Conv1d weight) or 4-D float tensor, whatever "
                 "its name"},
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
        {.name = "threads",
         .kind = AT_ARG_INT,
         .value = &s->threads,
         .help = "analyse N layers at a time, each on one core with single-threaded BLAS "
                 "(default: one per core this process may use); the output does not depend on N",
         .min = 1,
         .max = AT_POOL_MAX_THREADS},
        {.name = "max-memory",
         .kind = AT_ARG_DOUBLE,
         .value = &s->max_memory,
         .meta = "GIB",
         .help = "memory (GiB) the running analyses may hold at once, per process: layers start "
                 "while their estimated need fits, a larger one runs alone (default: 1 per "
                 "thread, at most half the memory available)",
         .flags = AT_ARG_ABOVE_MIN},
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

/* Runs the planned tasks on s->exec and prints every file. */
static int run_and_print(scan *s)
{
    int rc = s->exec.start(s->exec.ctx, s->tasks, s->ntasks);
    if (rc < 0) {
        fprintf(stderr, "alphatop scan: cannot start the analyses: %s\n", at_strerror(rc));
        return AT_EXIT_PARTIAL;
    }
    if (s->format == OUT_CSV)
        at_fmt_csv_header(stdout, "file", s->flags);
    for (int f = 0; f < s->nfiles; f++)
        emit_file(s, f);
    at_progress_done(s->prog, (int64_t)s->ndone);
    if (s->page) {
        char *html = at_scan_page_html(s->page, NULL);
        if (at_cmd_save("scan", s->plot_dir, "index.html", html) < 0)
            s->failed = 1;
        else
            fprintf(stderr, "alphatop scan: wrote %s/index.html (%u ESD picture%s)\n", s->plot_dir,
                    s->pictures, s->pictures == 1 ? "" : "s");
        free(html);
    }
    return s->failed ? AT_EXIT_PARTIAL : AT_EXIT_OK;
}

/* Opens every file and plans every row. Returns -1 to go on, else the exit code. */
static int open_and_plan(scan *s, char **paths)
{
    s->files = calloc((size_t)s->nfiles, sizeof *s->files);
    s->pairing = calloc((size_t)s->nfiles, sizeof *s->pairing);
    s->adapters = calloc((size_t)s->nfiles, sizeof *s->adapters);
    s->first = calloc((size_t)s->nfiles + 1, sizeof *s->first);
    s->page = s->plot_dir ? at_scan_page_new(NULL) : NULL;
    if (!s->files || !s->pairing || !s->adapters || !s->first || (s->plot_dir && !s->page)) {
        fputs("alphatop scan: out of memory\n", stderr);
        return AT_EXIT_PARTIAL;
    }
    if (s->base_path) {
        /* The base's layers only: the checkpoint's rows list every tensor once. */
        at_ckpt_opts bopts = s->copts;
        bopts.all_tensors = 0;
        s->base = at_ckpt_open(s->base_path, &bopts);
        if (!s->base || at_ckpt_status(s->base) < 0) {
            fprintf(stderr, "alphatop scan: base %s: %s\n", s->base_path,
                    s->base ? at_ckpt_last_error(s->base) : "out of memory");
            return AT_EXIT_PARTIAL;
        }
    }
    for (int f = 0; f < s->nfiles; f++) {
        s->first[f] = s->nrows;
        if (!(s->files[f] = at_ckpt_open(paths[f], &s->copts)) || plan_file(s, f) < 0) {
            fputs("alphatop scan: out of memory\n", stderr);
            return AT_EXIT_PARTIAL;
        }
    }
    s->first[s->nfiles] = s->nrows;
    if (key_tasks(s) < 0) {
        fputs("alphatop scan: out of memory\n", stderr);
        return AT_EXIT_PARTIAL;
    }
    s->name_width = name_width(s->files, s->nfiles, s);
    return -1;
}

/* The scan itself, for a process on its own or MPI's rank 0 (mpi: the session, else NULL). */
static int scan_main(int argc, char **argv, void *mpi)
{
    scan s;
    memset(&s, 0, sizeof s);
    at_htsr_opts_default(&s.hopts);
    s.lora_scale = 1.0;
    int rc = parse_args(&s, argc, argv, &s.nfiles);
    if (rc >= 0) {
        if (s.have_re)
            regfree(&s.re);
        return rc;
    }
    /* Machine formats keep the reference's label for a failed fit; the table says "failed". */
    if (s.format != OUT_TABLE)
        s.flags |= AT_FMT_REF_WARNING;
    at_analyzer_opts_default(&s.ao);
    s.ao.fast = s.fast;
    s.ao.htsr = s.hopts;
    s.ao.delta_exact = 1; /* --fast analyses updates in exact mode (see the help) */
    s.ao.keep_evals = s.plot_dir != NULL;
    /* --fast keeps a layer's top vectors only when the warm updates of later files can pay for
     * them (the cost model's horizon, fast.h): a one-file scan keeps none. */
    if (s.nfiles - 1 < s.ao.fast_opts.horizon)
        s.ao.fast_opts.horizon = s.nfiles - 1;
    /* Nothing is copied at open: each task reads its own layer, when it runs. Every tensor is a
     * row, the ones that are not layers skipped with why; --layers also chooses what is one. */
    s.copts.lazy = 1;
    s.copts.all_tensors = 1;
    s.copts.select = s.have_re ? &s.re : NULL;
    scan_runner *runner = NULL;
    int exit_code = open_and_plan(&s, argv + 1);
    if (exit_code < 0) {
        scan_setup setup = {s.ao, (int)s.threads, s.max_memory * (1u << 30)};
        /* This process: no more threads than tasks (at least one). */
        scan_setup here = setup;
        here.threads = s.threads ? (int)s.threads : scan_cpus();
        if ((size_t)here.threads > s.ntasks)
            here.threads = s.ntasks ? (int)s.ntasks : 1;
        int status = AT_ERR_NOMEM;
        s.prog = at_progress_new("scan", "layers", stderr, isatty(STDERR_FILENO));
        if (s.prog)
            runner = scan_runner_new(&here, &status);
        if (!runner) {
            fprintf(stderr, "alphatop scan: cannot start the analyses: %s\n", at_strerror(status));
            exit_code = AT_EXIT_PARTIAL;
        } else {
            s.exec = scan_exec_local(runner);
#ifdef AT_MPI
            if (mpi)
                scan_mpi_exec(mpi, &setup, runner, &s.exec);
#else
            (void)mpi;
#endif
            exit_code = run_and_print(&s);
        }
    }
    scan_runner_free(runner);
    at_progress_free(s.prog);
    for (int f = 0; s.files && f < s.nfiles; f++) {
        at_pairing_free(s.pairing[f]);
        at_ckpt_close(s.files[f]);
    }
    for (size_t i = 0; i < s.nrows; i++)
        scan_result_clear(&s.rows[i].res);
    free(s.rows);
    free(s.tasks);
    free(s.files);
    free(s.pairing);
    free(s.adapters);
    free(s.first);
    at_ckpt_close(s.base);
    at_scan_page_free(s.page);
    if (s.have_re)
        regfree(&s.re);
    return exit_code;
}

int cmd_scan(int argc, char **argv)
{
#ifdef AT_MPI
    /* Under an MPI launcher, rank 0 scans and the other ranks serve it analyses. */
    scan_mpi *mpi = scan_mpi_start();
    if (mpi && scan_mpi_rank(mpi) > 0)
        return scan_mpi_serve(mpi);
    const int rc = scan_main(argc, argv, mpi);
    scan_mpi_finish(mpi);
    return rc;
#else
    return scan_main(argc, argv, NULL);
#endif
}
