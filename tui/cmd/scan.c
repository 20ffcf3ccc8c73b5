/* cli_scan.c -- `alphatop scan`: HTSR metrics of every layer in checkpoint files. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alphatop/fast.h"
#include "alphatop/lora.h"
#include "ckpt.h"
#include "commands.h"
#include "metrics_fmt.h"
#include "pair.h"

static const char usage[] =
    "Usage: alphatop scan [OPTIONS] FILE...\n"
    "\n"
    "HTSR metrics of every layer in checkpoint files, in exact mode (the reference's numbers)\n"
    "unless --fast.\n"
    "FILE is .safetensors (every 2-D or 4-D F32/F16/BF16 tensor whose name ends in 'weight';\n"
    "LoRA pairs '*lora_A*weight' + '*lora_B*weight' are analysed as one layer B A), .npy\n"
    "('<f4' or '<f2', 2-D or 4-D), or raw little-endian float32 with --shape.\n"
    "\n"
    "Output (stdout): an aligned table per file and its model summary, or:\n"
    "  --json              JSON lines: one object per layer (reference column names, \"mode\"),\n"
    "                      then one {\"type\":\"summary\"} per file\n"
    "  --csv               CSV with a header line, one row per layer\n"
    "\n"
    "Options:\n"
    "  --base BASE         analyse each layer's update W - W_base; layers are paired by name\n"
    "                      (wrapper prefixes like 'module.' ignored; a transposed base is fine)\n"
    "  --layers REGEX      only layers whose name matches the extended regex\n"
    "  --detx              add detX_num / detX_val (SETOL det X = 1 condition)\n"
    "  --traps             add num_traps (correlation traps of the centred, shuffled weights)\n"
    "  --mp                add the Marchenko-Pastur fit (num_spikes, sigma_mp, mp_softrank)\n"
    "  --seed N            seed of the traps' shuffle (default 0)\n"
    "  --min-evals N       skip layers with fewer eigenvalues (default 10)\n"
    "  --max-evals N       skip layers with more eigenvalues (default 15000)\n"
    "  --shape ROWSxCOLS   shape of raw float32 files (also OUTxINxKHxKW)\n"
    "  --lora-scale S      scaling of LoRA updates, PEFT's lora_alpha / r (default 1)\n"
    "  --merge             with --base: analyse each LoRA pair merged, W_base + S B A, where\n"
    "                      W_base is the base layer MODULE.weight (MODULE: the pair's prefix)\n"
    "  --fast              fast mode (docs/fast.md): float32 Gram spectra, no --max-evals limit;\n"
    "                      several FILEs of one model, in order, are successive snapshots:\n"
    "                      warm updates, unchanged layers skipped (column/field \"mode\").\n"
    "                      updates (--base) and unmerged LoRA pairs stay exact\n"
    "  -h, --help          this help\n"
    "\n"
    "Errors (unreadable file or layer, size mismatch, NaN/Inf or all-zero weights) go to\n"
    "stderr naming file and layer; the other layers are still reported.\n"
    "Exit status: 0 every layer analysed, 1 some input could not be analysed, 2 usage error.\n";

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
    at_htsr *htsr;
    at_lora *lora;
    float *merged; /* W_base + scale B A of one LoRA pair (--merge) */
    size_t merged_cap;
    at_ckpt *base;
    int fast;            /* --fast */
    at_fast *fastws;     /* its workspace */
    at_fast_state **fst; /* per layer name, carried from file to file */
    int later;           /* files after the one being scanned: --fast's horizon */
    char **fst_name;
    size_t nfst;
    int name_width;
    int progress; /* stderr is a terminal: live layer counter, erased before other output */
    int failed;
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

/* Erases the live progress line so a row or message does not land after it. */
static void progress_clear(const scan *s)
{
    if (s->progress)
        fputs("\r\033[K", stderr);
}

static void report_error(scan *s, const char *file, const char *name, const char *shape,
                         const char *msg)
{
    s->failed = 1;
    progress_clear(s);
    fprintf(stderr, "alphatop scan: %s: %s%s%s\n", file, name ? name : "", name ? ": " : "", msg);
    if (!name)
        return;
    if (s->format == OUT_JSON) {
        cJSON *o = cJSON_CreateObject();
        if (o && cJSON_AddStringToObject(o, "type", "layer") &&
            cJSON_AddStringToObject(o, "file", file) && at_fmt_json_error(o, name, msg) == AT_OK) {
            char *line = cJSON_PrintUnformatted(o);
            if (line)
                puts(line);
            free(line);
        }
        cJSON_Delete(o);
    } else if (s->format == OUT_CSV) {
        at_fmt_csv_error(stdout, file, name, msg, s->flags);
    } else {
        char text[600];
        snprintf(text, sizeof text, "error: %s", msg);
        at_fmt_table_note(stdout, s->name_width, name, shape, text);
    }
}

static void note(const scan *s, const char *file, const char *name, const char *msg)
{
    progress_clear(s);
    fprintf(stderr, "alphatop scan: %s: %s: %s\n", file, name, msg);
}

static void emit_metrics(scan *s, const char *file, const job *j, const char *shape,
                         const at_metrics *m)
{
    progress_clear(s);
    if (s->format == OUT_JSON) {
        cJSON *o = cJSON_CreateObject();
        int ok = o && cJSON_AddStringToObject(o, "type", "layer") &&
                 cJSON_AddStringToObject(o, "file", file) &&
                 at_fmt_json(o, j->name, m, s->flags) == AT_OK;
        if (ok && j->pair && !j->lora_b)
            ok = cJSON_AddStringToObject(o, "base", s->base_path) &&
                 cJSON_AddStringToObject(o, "base_layer", j->pair->other->name) &&
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
        at_fmt_csv_row(stdout, file, j->name, m, s->flags);
    } else if (m->status == AT_FIT_SKIPPED) {
        char text[160];
        if (m->num_evals < s->hopts.min_evals)
            snprintf(text, sizeof text,
                     "skipped: too few eigenvalues for a fit (%lld < --min-evals %lld)",
                     (long long)m->num_evals, (long long)s->hopts.min_evals);
        else if (m->num_evals > s->hopts.max_evals)
            snprintf(text, sizeof text, "skipped: %lld eigenvalues > --max-evals %lld",
                     (long long)m->num_evals, (long long)s->hopts.max_evals);
        else
            snprintf(text, sizeof text, "skipped: N = %lld > max_N %lld", (long long)m->N,
                     (long long)s->hopts.max_N);
        at_fmt_table_note(stdout, s->name_width, j->name, shape, text);
    } else {
        at_fmt_table_row(stdout, s->name_width, j->name, shape, m, s->flags);
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

/* The analysis of one dense layer, or of its update when base is not NULL: the single step
 * a mode switch (exact / fast) changes. */
static int analyse(scan *s, const char *key, const at_tensor *t, const at_tensor *base,
                   at_metrics *m, const char **detail)
{
    if (s->fast && !base) {
        at_fast_opts o;
        at_fast_opts_default(&o);
        o.min_evals = s->hopts.min_evals;
        o.horizon = s->later < o.horizon ? s->later : o.horizon; /* vectors only if used */
        at_fast_state *st = fast_state(s, key);
        int rc = st ? at_fast_analyze(s->fastws, st, t, &o, &s->hopts, m, NULL) : AT_ERR_NOMEM;
        *detail = st ? at_fast_last_error(s->fastws) : "out of memory";
        return rc;
    }
    int rc = base ? at_htsr_analyze_delta(s->htsr, t, base, &s->hopts, m)
                  : at_htsr_analyze(s->htsr, t, &s->hopts, m);
    *detail = at_htsr_last_error(s->htsr);
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

static void scan_job(scan *s, const at_ckpt *c, const job *j, at_summary *sum)
{
    const char *file = at_ckpt_path(c);
    const at_ckpt_layer *l = j->layer;
    /* --fast carries a layer's state by name; a one-tensor file (.npy, raw) is named after
     * the file, so successive such files are successive snapshots of one layer. */
    const char *key = at_ckpt_count(c) == 1 ? "" : j->name;
    char shape[64], msg[640];
    at_shape_str(shape, sizeof shape, l->tensor.ndim, l->tensor.shape);
    if (l->err < 0) {
        report_error(s, file, j->name, shape, l->error);
        return;
    }
    at_metrics m;
    const char *detail = "";
    int rc;
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
            at_tensor t;
            if (merge_lora(s, file, j, shape, &t) < 0)
                return;
            rc = analyse(s, key, &t, NULL, &m, &detail);
        } else {
            rc = at_lora_analyze(s->lora, &b->tensor, &l->tensor, s->lora_scale, &s->hopts, &m);
            detail = at_lora_last_error(s->lora);
        }
    } else if (j->pair) {
        const at_tensor *base = base_of(s, file, j, j->pair, shape);
        if (!base)
            return;
        rc = analyse(s, key, &l->tensor, base, &m, &detail);
    } else {
        rc = analyse(s, key, &l->tensor, NULL, &m, &detail);
    }
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
    at_summary_add(sum, &m);
}

static void emit_summary(scan *s, const char *file, const at_summary *sum)
{
    if (s->format == OUT_JSON) {
        cJSON *o = cJSON_CreateObject();
        if (o && cJSON_AddStringToObject(o, "type", "summary") &&
            cJSON_AddStringToObject(o, "file", file) && at_summary_json(o, sum) == AT_OK) {
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
    if (s->format == OUT_TABLE) {
        if (!first)
            putchar('\n');
        if (s->base_path)
            printf("%s: update against base %s (W - W_base per layer)\n\n", file, s->base_path);
        else
            printf("%s\n\n", file);
        at_fmt_table_header(stdout, s->name_width, s->flags);
    }
    const int live = s->progress && n >= PROGRESS_MIN_LAYERS;
    if (!s->progress && n >= PROGRESS_MIN_LAYERS)
        fprintf(stderr, "alphatop scan: %s: %zu layers\n", file, n);
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
            fprintf(stderr, "\r\033[K[%zu/%zu] %s", i + 1, n, j.name);
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

static int parse_count(const char *opt, const char *arg, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < 0) {
        fprintf(stderr, "alphatop scan: %s needs a non-negative integer, got '%s'\n", opt, arg);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(scan *s, int argc, char **argv)
{
    enum {
        O_JSON = 256,
        O_CSV,
        O_BASE,
        O_LAYERS,
        O_DETX,
        O_TRAPS,
        O_MP,
        O_SEED,
        O_MIN,
        O_MAX,
        O_SHAPE,
        O_LSCALE,
        O_MERGE,
        O_FAST
    };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, O_JSON},
        {"csv", no_argument, NULL, O_CSV},
        {"base", required_argument, NULL, O_BASE},
        {"layers", required_argument, NULL, O_LAYERS},
        {"detx", no_argument, NULL, O_DETX},
        {"traps", no_argument, NULL, O_TRAPS},
        {"mp", no_argument, NULL, O_MP},
        {"seed", required_argument, NULL, O_SEED},
        {"min-evals", required_argument, NULL, O_MIN},
        {"max-evals", required_argument, NULL, O_MAX},
        {"shape", required_argument, NULL, O_SHAPE},
        {"lora-scale", required_argument, NULL, O_LSCALE},
        {"merge", no_argument, NULL, O_MERGE},
        {"fast", no_argument, NULL, O_FAST},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t v;
    char *end;
    optind = 0; /* glibc: full re-initialisation, so the command can run twice in a test */
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
        switch (ch) {
        case 'h':
            fputs(usage, stdout);
            return 1;
        case O_JSON:
        case O_CSV:
            if (s->format != OUT_TABLE) {
                fputs("alphatop scan: --json and --csv exclude each other\n", stderr);
                return -1;
            }
            s->format = ch == O_JSON ? OUT_JSON : OUT_CSV;
            break;
        case O_BASE:
            s->base_path = optarg;
            break;
        case O_LAYERS: {
            if (s->have_re)
                regfree(&s->re);
            int rc = regcomp(&s->re, optarg, REG_EXTENDED | REG_NOSUB);
            if (rc) {
                char buf[256];
                regerror(rc, &s->re, buf, sizeof buf);
                fprintf(stderr, "alphatop scan: --layers '%s': %s\n", optarg, buf);
                return -1;
            }
            s->have_re = 1;
            break;
        }
        case O_DETX:
            s->hopts.detx = 1;
            s->flags |= AT_FMT_DETX;
            break;
        case O_TRAPS:
            s->hopts.traps = 1;
            s->flags |= AT_FMT_TRAPS;
            break;
        case O_MP:
            s->hopts.mp_fit = 1;
            s->flags |= AT_FMT_MP;
            break;
        case O_SEED:
            if (parse_count("--seed", optarg, &v))
                return -1;
            s->hopts.seed = (uint64_t)v;
            break;
        case O_MIN:
        case O_MAX:
            if (parse_count(ch == O_MIN ? "--min-evals" : "--max-evals", optarg, &v))
                return -1;
            *(ch == O_MIN ? &s->hopts.min_evals : &s->hopts.max_evals) = v;
            break;
        case O_SHAPE:
            s->copts.raw_ndim = at_ckpt_parse_shape(optarg, s->copts.raw_shape);
            if (s->copts.raw_ndim < 0) {
                fprintf(stderr, "alphatop scan: --shape '%s': expected ROWSxCOLS, e.g. 512x256\n",
                        optarg);
                return -1;
            }
            break;
        case O_LSCALE:
            errno = 0;
            s->lora_scale = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(s->lora_scale > 0)) {
                fprintf(stderr, "alphatop scan: --lora-scale needs a positive number\n");
                return -1;
            }
            break;
        case O_FAST:
            s->fast = 1;
            break;
        case O_MERGE:
            s->merge = 1;
            break;
        default:
            fprintf(stderr, "alphatop scan: unknown or incomplete option '%s'\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind >= argc) {
        fputs("alphatop scan: no FILE given\n", stderr);
        return -1;
    }
    if (s->merge && !s->base_path) {
        fputs("alphatop scan: --merge needs --base BASE (the weights the adapters modify)\n",
              stderr);
        return -1;
    }
    for (int i = optind; i < argc && !s->copts.raw_ndim; i++)
        if (at_ckpt_format_of(argv[i]) == AT_CKPT_RAW) {
            fprintf(stderr, "alphatop scan: %s is read as raw float32: give --shape ROWSxCOLS\n",
                    argv[i]);
            return -1;
        }
    return 0;
}

int cmd_scan(int argc, char **argv)
{
    scan s;
    memset(&s, 0, sizeof s);
    at_htsr_opts_default(&s.hopts);
    s.lora_scale = 1.0;
    s.flags = 0;
    int rc = parse_args(&s, argc, argv);
    if (rc) {
        if (rc < 0)
            fputs("Try 'alphatop scan --help'.\n", stderr);
        if (s.have_re)
            regfree(&s.re);
        return rc < 0 ? AT_EXIT_USAGE : AT_EXIT_OK;
    }
    /* Machine formats keep the reference's label for a failed fit; the table says "failed". */
    if (s.format != OUT_TABLE)
        s.flags |= AT_FMT_REF_WARNING;
    int nfiles = argc - optind;
    at_ckpt **files = calloc((size_t)nfiles, sizeof *files);
    s.htsr = at_htsr_new();
    s.lora = at_lora_new();
    s.fastws = s.fast ? at_fast_new() : NULL;
    int exit_code = AT_EXIT_OK;
    if (!files || !s.htsr || !s.lora || (s.fast && !s.fastws)) {
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
        if (!(files[f] = at_ckpt_open(argv[optind + f], &s.copts))) {
            fputs("alphatop scan: out of memory\n", stderr);
            exit_code = AT_EXIT_PARTIAL;
            goto done;
        }
    s.progress = isatty(STDERR_FILENO);
    s.name_width = name_width(files, nfiles, &s);
    if (s.format == OUT_CSV)
        at_fmt_csv_header(stdout, "file", s.flags);
    for (int f = 0; f < nfiles; f++) {
        s.later = nfiles - 1 - f;
        scan_file(&s, files[f], f == 0);
    }
    if (s.failed)
        exit_code = AT_EXIT_PARTIAL;
done:
    for (int f = 0; files && f < nfiles; f++)
        at_ckpt_close(files[f]);
    free(files);
    at_ckpt_close(s.base);
    at_htsr_free(s.htsr);
    at_lora_free(s.lora);
    at_fast_free(s.fastws);
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
