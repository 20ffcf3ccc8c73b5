/* SPDX-License-Identifier: Apache-2.0 */
/* diff.c -- `alphatop diff A B`: per-layer alpha of two checkpoints side by side. */
#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/analyze.h"
#include "args.h"
#include "ckpt.h"
#include "ckpt_args.h"
#include "commands.h"
#include "metrics_fmt.h"
#include "pair.h"

static const char about[] =
    "Per-layer change between two checkpoints (e.g. before and after fine-tuning, or two\n"
    "training steps): alpha, xmin and warning of A and B side by side, and alpha's change\n"
    "B - A. Layers are paired by name as in 'scan --base' (wrapper prefixes such as\n"
    "'module.' ignored, a transposed 2-D layer accepted); unpaired layers are listed.\n"
    "LoRA pairs '*lora_A*weight' + '*lora_B*weight' are one layer B A on each side, as in\n"
    "'scan' (named MODULE.lora_BA, analysed from its r nonzero singular values; the two ranks\n"
    "may differ).\n"
    "A and B are .safetensors, .npy, or raw float32 with --shape.\n";

typedef struct diff {
    int json;
    regex_t re;
    int have_re;
    at_htsr_opts hopts;
    at_ckpt_opts copts;
    at_analyzer *an; /* exact mode, both sides */
    int name_width;
    int failed;
} diff;

static void problem(diff *d, const char *file, const char *name, const char *msg)
{
    d->failed = 1;
    fprintf(stderr, "alphatop diff: %s: %s%s%s\n", file, name ? name : "", name ? ": " : "", msg);
    if (d->json && name) {
        cJSON *o = cJSON_CreateObject();
        if (o && cJSON_AddStringToObject(o, "type", "diff") &&
            at_fmt_json_error(o, name, msg) == AT_OK) {
            char *line = cJSON_PrintUnformatted(o);
            if (line)
                puts(line);
            free(line);
        }
        cJSON_Delete(o);
    } else if (name) {
        printf("%-*s  error: %s\n", d->name_width, name, msg);
    }
}

/* What one row of the comparison stands for, on one side. */
typedef struct side_layer {
    const at_ckpt_layer *layer;  /* the layer, or a LoRA pair's lora_A half (r x in) */
    const at_ckpt_layer *lora_b; /* LoRA pair: its lora_B half (out x r); else NULL */
} side_layer;

/* The row layer l of A stands for: itself, or with its lora_B half the LoRA pair B A (named
 * MODULE.lora_BA into name, n bytes). Returns 0 for a lora_B half (its row is its lora_A's). */
static int row_of(const at_ckpt *c, const at_ckpt_layer *l, side_layer *s, char *name, size_t n)
{
    char module[500];
    int is_a = 0;
    s->layer = l;
    s->lora_b = at_pair_lora_partner(c, l->name, &is_a, module, sizeof module);
    if (s->lora_b && !is_a)
        return 0;
    if (s->lora_b)
        snprintf(name, n, "%s%s", module, AT_PAIR_LORA_SUFFIX);
    else
        snprintf(name, n, "%s", l->name);
    return 1;
}

/* The LoRA rank of a side (0 for a dense layer). */
static int64_t rank_of(const side_layer *s)
{
    return s->lora_b ? s->layer->tensor.shape[0] : 0;
}

/* Analyses one side (a LoRA pair from its factors); on failure reports it and returns -1. */
static int side(diff *d, const at_ckpt *c, const side_layer *s, const char *name, at_metrics *m)
{
    char msg[640];
    const at_ckpt_layer *l = s->layer, *lb = s->lora_b;
    const at_ckpt_layer *bad = l->err < 0 ? l : lb && lb->err < 0 ? lb : NULL;
    if (bad) {
        snprintf(msg, sizeof msg, "layer %s: %s", bad->name, bad->error);
        problem(d, at_ckpt_path(c), name, msg);
        return -1;
    }
    const at_layer_job job = lb ? (at_layer_job){.w = &lb->tensor, .lora_a = &l->tensor}
                                : (at_layer_job){.w = &l->tensor};
    if (at_analyzer_run(d->an, &job, m, NULL) < 0) {
        snprintf(msg, sizeof msg, "layer %s: cannot analyse: %s", l->name,
                 at_analyzer_last_error(d->an));
        problem(d, at_ckpt_path(c), name, msg);
        return -1;
    }
    return 0;
}

/* B's side of row sa (A's side) paired through pr: for a LoRA pair, B's layer must be a
 * lora_A half with its lora_B, and the two products B A of one shape (ranks may differ).
 * Returns 0, or -1 after reporting why the row cannot be compared. */
static int other_side(diff *d, const at_ckpt *b, const side_layer *sa, const at_pair *pr,
                      const char *name, side_layer *sb)
{
    char msg[700], s1[64], s2[64], module[500];
    int is_a = 0;
    sb->layer = pr->other;
    sb->lora_b = NULL;
    if (!sa->lora_b)
        return 0;
    sb->lora_b = at_pair_lora_partner(b, pr->other->name, &is_a, module, sizeof module);
    if (!sb->lora_b || !is_a) {
        snprintf(msg, sizeof msg, "a LoRA pair in A, but %s has no lora_A / lora_B pair in B",
                 pr->other->name);
        problem(d, at_ckpt_path(b), name, msg);
        return -1;
    }
    const at_tensor *a_a = &sa->layer->tensor, *a_b = &sa->lora_b->tensor;
    const at_tensor *b_a = &sb->layer->tensor, *b_b = &sb->lora_b->tensor;
    /* Unreadable or malformed halves are reported by side(). */
    if (sa->layer->err < 0 || sa->lora_b->err < 0 || sb->layer->err < 0 || sb->lora_b->err < 0 ||
        a_a->ndim != 2 || a_b->ndim != 2 || b_a->ndim != 2 || b_b->ndim != 2)
        return 0;
    if (a_b->shape[0] != b_b->shape[0] || a_a->shape[1] != b_a->shape[1]) {
        int64_t da[2] = {a_b->shape[0], a_a->shape[1]}, db[2] = {b_b->shape[0], b_a->shape[1]};
        snprintf(msg, sizeof msg, "shape mismatch: B A is %s here, %s in B (pair %s)",
                 at_shape_str(s1, sizeof s1, 2, da), at_shape_str(s2, sizeof s2, 2, db), module);
        problem(d, at_ckpt_path(b), name, msg);
        return -1;
    }
    return 0;
}

static double fitted_alpha(const at_metrics *m)
{
    return m->status == AT_FIT_SUCCESS ? m->alpha : NAN;
}

static void cell(char *buf, size_t n, const char *fmt, double v)
{
    if (isfinite(v))
        snprintf(buf, n, fmt, v);
    else
        snprintf(buf, n, "-");
}

static void emit(diff *d, const char *name, const char *shape, const at_metrics *a,
                 const at_metrics *b, int64_t rank_a, int64_t rank_b)
{
    const double change = fitted_alpha(b) - fitted_alpha(a);
    if (d->json) {
        cJSON *o = cJSON_CreateObject(), *ja = cJSON_CreateObject(), *jb = cJSON_CreateObject();
        int ok = o && ja && jb && at_fmt_json(ja, NULL, a, AT_FMT_REF_WARNING) == AT_OK &&
                 at_fmt_json(jb, NULL, b, AT_FMT_REF_WARNING) == AT_OK &&
                 (!rank_a || cJSON_AddNumberToObject(ja, "lora_rank", (double)rank_a)) &&
                 (!rank_b || cJSON_AddNumberToObject(jb, "lora_rank", (double)rank_b)) &&
                 cJSON_AddStringToObject(o, "type", "diff") &&
                 cJSON_AddStringToObject(o, "name", name) &&
                 at_fmt_json_number(o, "alpha_change", change);
        if (ok) {
            cJSON_AddItemToObject(o, "a", ja);
            cJSON_AddItemToObject(o, "b", jb);
            ja = jb = NULL;
            char *line = cJSON_PrintUnformatted(o);
            if (line)
                puts(line);
            free(line);
        }
        cJSON_Delete(ja);
        cJSON_Delete(jb);
        cJSON_Delete(o);
        return;
    }
    char c[6][32];
    cell(c[0], sizeof c[0], "%.3f", fitted_alpha(a));
    cell(c[1], sizeof c[1], "%.3f", fitted_alpha(b));
    cell(c[2], sizeof c[2], "%+.3f", change);
    cell(c[3], sizeof c[3], "%.4g", a->status == AT_FIT_SUCCESS ? a->xmin : NAN);
    cell(c[4], sizeof c[4], "%.4g", b->status == AT_FIT_SUCCESS ? b->xmin : NAN);
    const char *wa = a->status == AT_FIT_SKIPPED ? "skipped" : at_warning_name(a->warning);
    const char *wb = b->status == AT_FIT_SKIPPED ? "skipped" : at_warning_name(b->warning);
    printf("%-*s %11s %8s %8s %8s %10s %10s", d->name_width, name, shape, c[0], c[1], c[2], c[3],
           c[4]);
    if (*wa || *wb)
        printf("  %s -> %s", *wa ? wa : "ok", *wb ? wb : "ok");
    putchar('\n');
}

static void run_diff(diff *d, const at_ckpt *a, const at_ckpt *b)
{
    at_pairing *p = at_pairing_new(a, b);
    if (!p) {
        problem(d, at_ckpt_path(a), NULL, "out of memory pairing layers");
        return;
    }
    char name[512];
    side_layer row_a, row_b;
    for (size_t i = 0; i < at_ckpt_count(a); i++)
        if (row_of(a, at_ckpt_layer_at(a, i), &row_a, name, sizeof name) &&
            (!d->have_re || !regexec(&d->re, name, 0, NULL, 0))) {
            int w = (int)strlen(name);
            d->name_width = w > d->name_width ? (w > 60 ? 60 : w) : d->name_width;
        }
    if (!d->json)
        printf("A: %s\nB: %s\n\n%-*s %11s %8s %8s %8s %10s %10s  warning A -> B\n", at_ckpt_path(a),
               at_ckpt_path(b), d->name_width, "layer", "shape", "alpha_A", "alpha_B", "change",
               "xmin_A", "xmin_B");
    at_summary sa, sb;
    at_summary_init(&sa);
    at_summary_init(&sb);
    for (size_t i = 0; i < at_ckpt_count(a); i++) {
        const at_ckpt_layer *l = at_ckpt_layer_at(a, i);
        if (!row_of(a, l, &row_a, name, sizeof name) ||
            (d->have_re && regexec(&d->re, name, 0, NULL, 0)))
            continue;
        /* A LoRA pair is judged on its product's shape (other_side), not its factors'. */
        at_pair pr = *at_pairing_get(p, i);
        if (row_a.lora_b && pr.other) {
            pr.status = AT_PAIR_OK;
            pr.transposed = 0;
        }
        /* Tensors not analysed by design (a tied copy, an integer dtype) are no failure. */
        const at_ckpt_layer *skipped = l->skip[0]                      ? l
                                       : pr.other && pr.other->skip[0] ? pr.other
                                                                       : NULL;
        if (skipped) {
            fprintf(stderr, "alphatop diff: %s: not compared: %s\n", name, skipped->skip);
            continue;
        }
        char why[640], shape[64];
        at_pair_describe(&pr, l, why, sizeof why);
        if (pr.status != AT_PAIR_OK) {
            problem(d, at_ckpt_path(b), name, why);
            continue;
        }
        if (why[0])
            fprintf(stderr, "alphatop diff: %s: %s: %s\n", at_ckpt_path(b), name, why);
        at_metrics ma, mb;
        if (other_side(d, b, &row_a, &pr, name, &row_b) < 0 || side(d, a, &row_a, name, &ma) < 0 ||
            side(d, b, &row_b, name, &mb) < 0)
            continue;
        const int64_t ra = rank_of(&row_a), rb = rank_of(&row_b);
        if (ra) {
            int64_t dims[2] = {row_a.lora_b->tensor.shape[0], l->tensor.shape[1]};
            at_shape_str(shape, sizeof shape, 2, dims);
            size_t k = strlen(shape);
            if (ra == rb)
                snprintf(shape + k, sizeof shape - k, "/r%lld", (long long)ra);
            else
                snprintf(shape + k, sizeof shape - k, "/r%lld->%lld", (long long)ra, (long long)rb);
        } else {
            at_shape_str(shape, sizeof shape, l->tensor.ndim, l->tensor.shape);
        }
        emit(d, name, shape, &ma, &mb, ra, rb);
        if (ma.status != AT_FIT_SKIPPED && mb.status != AT_FIT_SKIPPED) {
            at_summary_add(&sa, &ma);
            at_summary_add(&sb, &mb);
        }
    }
    for (size_t k = 0; k < at_pairing_unmatched_count(p); k++) {
        const at_ckpt_layer *ol = at_pairing_unmatched(p, k);
        const char *only = ol->name;
        if (!ol->skip[0] && (!d->have_re || !regexec(&d->re, only, 0, NULL, 0)))
            problem(d, at_ckpt_path(b), only, "only in B, no layer of A pairs with it");
    }
    if (!d->json && sa.layers) {
        double ma = at_summary_mean(&sa, AT_SUM_ALPHA), mb = at_summary_mean(&sb, AT_SUM_ALPHA);
        printf("\nmean alpha over %lld compared layers: %.3f -> %.3f (%+.3f)\n",
               (long long)sa.layers, ma, mb, mb - ma);
    }
    at_pairing_free(p);
}

/* Parses the command line into d, A and B to argv[1] and argv[2]. Returns -1 to go on, else
 * the exit code to return (after --help or a usage error). */
static int parse_args(diff *d, int argc, char **argv)
{
    const char *layers = NULL, *shape = NULL;
    const at_arg_opt opts[] = {
        {.name = "json",
         .kind = AT_ARG_FLAG,
         .value = &d->json,
         .help = "JSON lines: {\"type\":\"diff\", \"name\", \"alpha_change\", \"a\": {...}, \"b\": "
                 "{...}} per layer (a and b carry every reference column)"},
        {.name = "layers",
         .kind = AT_ARG_STRING,
         .value = &layers,
         .meta = "REGEX",
         .help = "only layers whose name (in A) matches the extended regex"},
        AT_CKPT_ARGS_ROWS(&d->hopts, shape),
    };
    const at_args_spec spec = {"diff", "[OPTIONS] A B", about, NULL, "A B", 2, 2,
                               opts,   AT_ARGS_N(opts)};
    int nfiles = 0;
    int rc = at_args_handle(&spec, argc, argv, &nfiles);
    if (rc >= 0)
        return rc;
    if (at_cmd_ckpt_args("diff", shape, &d->copts, argv + 1, nfiles) < 0)
        return AT_EXIT_USAGE;
    if (layers && at_cmd_regex("diff", layers, &d->re) < 0)
        return AT_EXIT_USAGE;
    d->have_re = layers != NULL;
    return -1;
}

int cmd_diff(int argc, char **argv)
{
    diff d;
    memset(&d, 0, sizeof d);
    at_htsr_opts_default(&d.hopts);
    d.name_width = 5;
    int rc = parse_args(&d, argc, argv);
    if (rc >= 0)
        return rc;
    at_ckpt *a = at_ckpt_open(argv[1], &d.copts);
    at_ckpt *b = at_ckpt_open(argv[2], &d.copts);
    at_analyzer_opts ao;
    at_analyzer_opts_default(&ao);
    ao.htsr = d.hopts;
    d.an = at_analyzer_new(&ao, NULL);
    if (!a || !b || !d.an) {
        fputs("alphatop diff: out of memory\n", stderr);
        d.failed = 1;
    } else if (at_ckpt_status(a) < 0 || at_ckpt_status(b) < 0) {
        const at_ckpt *bad = at_ckpt_status(a) < 0 ? a : b;
        problem(&d, at_ckpt_path(bad), NULL, at_ckpt_last_error(bad));
    } else {
        run_diff(&d, a, b);
    }
    at_ckpt_close(a);
    at_ckpt_close(b);
    at_analyzer_free(d.an);
    if (d.have_re)
        regfree(&d.re);
    return d.failed ? AT_EXIT_PARTIAL : AT_EXIT_OK;
}
