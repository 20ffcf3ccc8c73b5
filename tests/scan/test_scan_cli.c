/* SPDX-License-Identifier: Apache-2.0 */
/* test_scan_cli.c -- `alphatop scan` end to end: files written here, the real binary run, its
 * --json parsed with cJSON and compared with at_htsr_analyze of the same matrices (and with
 * the oracle's reference values). */
#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alphatop/htsr.h"
#include "alphatop/lora.h"
#include "metrics_fmt.h"
#include "testfiles.h"

/* Output of one run; the JSON lines parsed. */
typedef struct run {
    int code;
    char *out, *err;
    cJSON *lines[64];
    int n;
} run;

/* Runs `alphatop COMMAND ARGS`. */
static void run_cmd(run *r, const char *command, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s", command, args);
    memset(r, 0, sizeof *r);
    r->code = tf_run(cmd, &r->out, &r->err);
    char *copy = strdup(r->out);
    for (char *line = strtok(copy, "\n"); line && r->n < 64; line = strtok(NULL, "\n")) {
        if (line[0] != '{')
            continue;
        r->lines[r->n] = cJSON_Parse(line);
        if (!r->lines[r->n])
            fail_msg("not JSON: %s", line);
        r->n++;
    }
    free(copy);
}

static void run_scan(run *r, const char *args)
{
    run_cmd(r, "scan", args);
}

static void run_free(run *r)
{
    for (int i = 0; i < r->n; i++)
        cJSON_Delete(r->lines[i]);
    free(r->out);
    free(r->err);
}

static cJSON *line_named(const run *r, const char *name)
{
    for (int i = 0; i < r->n; i++) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(r->lines[i], "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return r->lines[i];
    }
    fail_msg("no output line for layer %s; stderr: %s", name, r->err);
    return NULL;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("%s is not a number", key);
    return v->valuedouble;
}

/* Every column of the expected metrics equals the output line's, bit for bit: the numbers
 * went file -> reader -> analysis -> JSON text -> parser and must come back unchanged. */
static void assert_line_matches(const cJSON *got, const at_metrics *m, unsigned flags)
{
    cJSON *raw = cJSON_CreateObject();
    assert_int_equal(at_fmt_json(raw, NULL, m, flags | AT_FMT_REF_WARNING), AT_OK);
    char *text = cJSON_PrintUnformatted(raw);
    cJSON *want = cJSON_Parse(text);
    free(text);
    cJSON_Delete(raw);
    const cJSON *w;
    int columns = 0;
    cJSON_ArrayForEach(w, want)
    {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, w->string);
        if (!g)
            fail_msg("column %s missing", w->string);
        if (cJSON_IsNumber(w)) {
            if (!cJSON_IsNumber(g) || g->valuedouble != w->valuedouble)
                fail_msg("%s: got %.17g, want %.17g", w->string, g->valuedouble, w->valuedouble);
        } else if (cJSON_IsString(w)) {
            assert_string_equal(g->valuestring, w->valuestring);
        } else {
            assert_true(cJSON_IsNull(g));
        }
        columns++;
    }
    assert_true(columns >= 28);
    cJSON_Delete(want);
}

static void analyse(const at_tensor *t, const at_htsr_opts *o, at_metrics *m)
{
    at_htsr *h = at_htsr_new();
    assert_int_equal(at_htsr_analyze(h, t, o, m), AT_OK);
    at_htsr_free(h);
}

static void test_round_trip(void **state)
{
    (void)state;
    float *lin = tf_gauss(96 * 40, 11, 0.2), *conv = tf_gauss(16 * 8 * 9, 12, 0.3);
    uint16_t half[64 * 24], bf[64 * 24];
    for (int i = 0; i < 64 * 24; i++) {
        float v = (float)((i * 7919) % 511 - 255) / 64.0f;
        half[i] = tf_f32_to_f16_exact(v);
        bf[i] = tf_f32_to_bf16_exact(v);
    }
    const tf_tensor t[] = {
        {"fc1.weight", "F32", 2, {96, 40}, lin, sizeof(float) * 96 * 40, 0, 0},
        {"fc1.bias", "F32", 1, {96}, lin, sizeof(float) * 96, 0, 0},
        {"conv.weight", "F32", 4, {16, 8, 3, 3}, conv, sizeof(float) * 16 * 8 * 9, 0, 0},
        {"h.weight", "F16", 2, {64, 24}, half, sizeof half, 0, 0},
        {"b.weight", "BF16", 2, {64, 24}, bf, sizeof bf, 0, 0},
    };
    const char *path = tf_path("model.safetensors");
    tf_write_safetensors(path, t, 5, 1, 0);
    char args[600];
    snprintf(args, sizeof args, "--json --detx %s", path);
    run r;
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.n, 6); /* 4 layers, the bias (skipped) + the summary */
    assert_string_equal(str_of(line_named(&r, "fc1.bias"), "status"), "skipped");
    assert_string_equal(str_of(line_named(&r, "fc1.bias"), "skipped"), "bias: not a matrix");
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    o.detx = 1;
    const at_tensor want[] = {
        {lin, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {96, 40}},
        {conv, AT_DTYPE_F32, AT_KIND_CONV2D, 4, {16, 8, 3, 3}},
        {half, AT_DTYPE_F16, AT_KIND_LINEAR, 2, {64, 24}},
        {bf, AT_DTYPE_BF16, AT_KIND_LINEAR, 2, {64, 24}},
    };
    const char *names[] = {"fc1.weight", "conv.weight", "h.weight", "b.weight"};
    at_summary sum;
    at_summary_init(&sum);
    for (int i = 0; i < 4; i++) {
        at_metrics m;
        analyse(&want[i], &o, &m);
        assert_line_matches(line_named(&r, names[i]), &m, AT_FMT_DETX);
        assert_string_equal(str_of(line_named(&r, names[i]), "type"), "layer");
        at_summary_add(&sum, &m);
    }
    const cJSON *s = r.lines[5];
    assert_string_equal(str_of(s, "type"), "summary");
    assert_int_equal((int)num_of(s, "layers"), 4);
    assert_int_equal((int)num_of(s, "skipped"), 1); /* the bias */
    for (int c = 0; c < AT_SUM_NCOLS; c++)
        assert_true(num_of(s, at_summary_col_name((at_summary_col)c)) ==
                    at_summary_mean(&sum, (at_summary_col)c));
    run_free(&r);

    /* The table view names every layer with its shape, and ends with the summary. */
    snprintf(args, sizeof args, "%s", path);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "model summary"));
    assert_non_null(strstr(r.out, "conv.weight"));
    assert_non_null(strstr(r.out, "16x8x3x3"));
    /* The bias is counted, not listed. */
    assert_null(strstr(r.out, "fc1.bias"));
    assert_non_null(strstr(r.out, "not analysed, not layers: 1 bias (--json or --csv lists each "
                                  "with its reason)"));
    run_free(&r);

    /* CSV: a header and one row per tensor, every row as wide as the header. */
    snprintf(args, sizeof args, "--csv %s", path);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    int lines = 0, commas0 = -1;
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        int commas = 0;
        for (char *p = line; *p; p++)
            commas += *p == ',';
        if (commas0 < 0)
            commas0 = commas;
        assert_int_equal(commas, commas0);
    }
    assert_int_equal(lines, 6);
    run_free(&r);
    free(lin);
    free(conv);
}

static cJSON *oracle;

static const cJSON *oracle_case(const char *name)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(oracle, "cases"))
    {
        if (!strcmp(str_of(c, "name"), name))
            return cJSON_GetObjectItemCaseSensitive(c, "default");
    }
    fail_msg("no oracle case %s", name);
    return NULL;
}

/* The reference's columns within the oracle tolerances (README: 1e-6 relative, integers and
 * labels exact). */
static void assert_matches_oracle(const cJSON *got, const char *case_name)
{
    static const char *rel[] = {"alpha",
                                "xmin",
                                "xmax",
                                "D",
                                "sigma",
                                "log_norm",
                                "alpha_weighted",
                                "log_alpha_norm",
                                "log_spectral_norm",
                                "stable_rank",
                                "entropy",
                                "sv_max",
                                "lambda_max",
                                "norm"};
    static const char *exact[] = {"N",           "M",         "num_evals",     "num_pl_spikes",
                                  "matrix_rank", "rank_loss", "weak_rank_loss"};
    const cJSON *ref = oracle_case(case_name);
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        double g = num_of(got, rel[i]), w = num_of(ref, rel[i]);
        if (!(fabs(g - w) <= 1e-6 * fabs(w)))
            fail_msg("%s %s: got %.17g, reference %.17g", case_name, rel[i], g, w);
    }
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        assert_true(num_of(got, exact[i]) == num_of(ref, exact[i]));
    assert_string_equal(str_of(got, "status"), str_of(ref, "status"));
    assert_string_equal(str_of(got, "warning"), str_of(ref, "warning"));
}

static void test_oracle_raw_and_npy(void **state)
{
    (void)state;
    char args[1024];
    run r;
    snprintf(args, sizeof args, "--json --shape 512x256 %s/oracle/matrices/gauss_512x256.f32",
             AT_DATA_DIR);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_matches_oracle(line_named(&r, "gauss_512x256"), "gauss_512x256");
    run_free(&r);

    /* The same oracle matrix as .npy, once in C order and once in Fortran order (stored as
     * its transpose's bytes): the same matrix, so the same numbers. */
    float *w = tf_read_oracle("pareto2.0_768x768", 768 * 768);
    tf_write_npy(tf_path("pareto.npy"), 1,
                 "{'descr': '<f4', 'fortran_order': False, 'shape': (768, 768), }", w,
                 sizeof(float) * 768 * 768);
    float *t = malloc(sizeof(float) * 768 * 768);
    for (int i = 0; i < 768; i++)
        for (int j = 0; j < 768; j++)
            t[i + 768 * j] = w[i * 768 + j];
    char p2[512];
    snprintf(p2, sizeof p2, "%s", tf_path("pareto_f.npy"));
    tf_write_npy(p2, 2, "{'descr': '<f4', 'fortran_order': True, 'shape': (768, 768), }", t,
                 sizeof(float) * 768 * 768);
    snprintf(args, sizeof args, "--json %s %s", tf_path("pareto.npy"), p2);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_matches_oracle(line_named(&r, "pareto"), "pareto2.0_768x768");
    assert_matches_oracle(line_named(&r, "pareto_f"), "pareto2.0_768x768");
    run_free(&r);
    free(w);
    free(t);
}

/* Every per-layer error of a file: a message naming file and layer on stderr, a JSON line
 * with status "error", the good layer still analysed, exit status 1. */
static void test_bad_layers(void **state)
{
    (void)state;
    float *good = tf_gauss(40 * 24, 21, 1.0), *nan = tf_gauss(40 * 24, 22, 1.0);
    float *zero = calloc(40 * 24, sizeof(float));
    nan[17] = NAN;
    nan[100] = INFINITY;
    const size_t nb = sizeof(float) * 40 * 24;
    const tf_tensor t[] = {
        {"good.weight", "F32", 2, {40, 24}, good, nb, 0, 0},
        {"nan.weight", "F32", 2, {40, 24}, nan, nb, 0, 0},
        {"zero.weight", "F32", 2, {40, 24}, zero, nb, 0, 0},
        {"size.weight", "F32", 2, {40, 25}, good, nb, 0, 0},
        {"cut.weight", "F32", 2, {40, 24}, good, nb, 0, 0},
    };
    char path[512];
    snprintf(path, sizeof path, "%s", tf_path("bad.safetensors"));
    tf_write_safetensors(path, t, 5, 8, 64);
    char args[600], want[700];
    snprintf(args, sizeof args, "--json %s", path);
    run r;
    run_scan(&r, args);
    assert_int_equal(r.code, 1);
    at_metrics m;
    at_tensor g = {good, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {40, 24}};
    analyse(&g, NULL, &m);
    assert_line_matches(line_named(&r, "good.weight"), &m, 0);
    const char *msgs[][2] = {
        {"nan.weight", "cannot analyse: weights contain 1 NaN and 1 Inf values"},
        {"zero.weight", "cannot analyse: all weights are zero"},
        {"size.weight", "hold 3840 bytes but shape 40x25 of F32 needs 4000"},
        {"cut.weight", "truncated file"},
    };
    for (int i = 0; i < 4; i++) {
        snprintf(want, sizeof want, "alphatop scan: %s: %s: ", path, msgs[i][0]);
        const char *line = strstr(r.err, want);
        if (!line || !strstr(line, msgs[i][1]))
            fail_msg("stderr lacks '%s%s':\n%s", want, msgs[i][1], r.err);
        const cJSON *o = line_named(&r, msgs[i][0]);
        assert_string_equal(str_of(o, "status"), "error");
        assert_non_null(strstr(str_of(o, "error"), msgs[i][1]));
    }
    run_free(&r);

    /* A file that cannot be read at all is reported and the next file still scanned. */
    tf_write_bytes(tf_path("junk.safetensors"), "\x03\0\0\0\0\0\0\0abc", 11);
    snprintf(args, sizeof args, "--json %s", tf_path("junk.safetensors"));
    snprintf(args + strlen(args), sizeof args - strlen(args), " %s", path);
    run_scan(&r, args);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "junk.safetensors: header is not a JSON object"));
    line_named(&r, "good.weight");
    run_free(&r);
    free(good);
    free(nan);
    free(zero);
}

typedef struct named_reason {
    const char *name, *why;
} named_reason;

/* Each of want[0..n) is a skipped row of r whose reason starts with its why. */
static void assert_skipped_rows(const run *r, const named_reason *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const cJSON *l = line_named(r, want[i].name);
        assert_string_equal(str_of(l, "status"), "skipped");
        assert_true(!strncmp(str_of(l, "skipped"), want[i].why, strlen(want[i].why)));
    }
}

/* Which tensors are layers. A Flax kernel (name "*kernel") is one by default: a dense kernel
 * (in, out) analysed as stored (its transpose has the same spectrum), a conv kernel
 * (kh, kw, in, out) as PyTorch's (out, in, kh, kw). --layers makes any matching 2-D to 4-D
 * tensor a layer, a 3-D one a Conv1d weight (out, in, k) analysed as the conv2d (out, in, 1, k),
 * as the live monitor does (Flax: (k, in, out)). Every other tensor is a skipped row with its
 * reason in --json and --csv, counted in the table. */
static void test_select(void **state)
{
    (void)state;
    enum { O = 16, I = 8, K = 5 };
    float *dense = tf_gauss(40 * 96, 21, 0.2), *w = tf_gauss(64 * 24, 22, 0.3);
    float *conv = tf_gauss(O * I * 9, 23, 0.3), *c1 = tf_gauss(O * I * K, 24, 0.3);
    float *flax_conv = malloc(sizeof(float) * O * I * 9),
          *flax_c1 = malloc(sizeof(float) * O * I * K);
    float *dense_t = malloc(sizeof(float) * 40 * 96), *vec = tf_gauss(O, 25, 1.0);
    assert_non_null(flax_conv);
    assert_non_null(flax_c1);
    assert_non_null(dense_t);
    /* The same weights in Flax's layouts: conv (kh, kw, in, out), conv1d (k, in, out). */
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) {
            for (int k = 0; k < 9; k++)
                flax_conv[(k * I + i) * O + o] = conv[(o * I + i) * 9 + k];
            for (int k = 0; k < K; k++)
                flax_c1[(k * I + i) * O + o] = c1[(o * I + i) * K + k];
        }
    for (int r = 0; r < 40; r++)
        for (int c = 0; c < 96; c++)
            dense_t[c * 40 + r] = dense[r * 96 + c];
    const tf_tensor t[] = {
        {"Dense_0.kernel", "F32", 2, {40, 96}, dense, sizeof(float) * 40 * 96, 0, 0},
        {"Dense_0.bias", "F32", 1, {96}, dense, sizeof(float) * 96, 0, 0},
        {"Conv_0.kernel", "F32", 4, {3, 3, I, O}, flax_conv, sizeof(float) * O * I * 9, 0, 0},
        {"Conv1d_0.kernel", "F32", 3, {K, I, O}, flax_c1, sizeof(float) * O * I * K, 0, 0},
        {"conv1.weight", "F32", 3, {O, I, K}, c1, sizeof(float) * O * I * K, 0, 0},
        {"attn.q_proj.w", "F32", 2, {64, 24}, w, sizeof(float) * 64 * 24, 0, 0},
        {"LayerNorm_0.scale", "F32", 1, {O}, vec, sizeof(float) * O, 0, 0},
        /* GPT-2's causal mask buffer, (1, 1, n, n) */
        {"attn.bias", "F32", 4, {1, 1, 8, 8}, w, sizeof(float) * 64, 0, 0},
    };
    const char *path = tf_path("flax.safetensors");
    tf_write_safetensors(path, t, 8, 8, 0);
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    at_metrics m, mt;
    char args[600];
    run r;

    snprintf(args, sizeof args, "--json %s", path);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.n, 9); /* 8 tensors + the summary */
    analyse(&(at_tensor){dense, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {40, 96}}, &o, &m);
    assert_line_matches(line_named(&r, "Dense_0.kernel"), &m, 0);
    /* The transpose (PyTorch's layout) has the same spectrum. */
    analyse(&(at_tensor){dense_t, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {96, 40}}, &o, &mt);
    assert_true(fabs(mt.alpha - m.alpha) < 1e-9 * m.alpha);
    assert_true(fabs(mt.log_norm - m.log_norm) < 1e-9 * fabs(m.log_norm));
    analyse(&(at_tensor){conv, AT_DTYPE_F32, AT_KIND_CONV2D, 4, {O, I, 3, 3}}, &o, &m);
    assert_line_matches(line_named(&r, "Conv_0.kernel"), &m, 0);
    const named_reason skipped[] = {
        {"Dense_0.bias", "bias: not a matrix"},
        {"Conv1d_0.kernel", "3-D: a Conv1d weight (out, in, k) is analysed when selected"},
        {"conv1.weight", "3-D: a Conv1d weight (out, in, k) is analysed when selected"},
        {"attn.q_proj.w", "unrecognised: the name ends in neither 'weight' nor 'kernel'"},
        {"LayerNorm_0.scale", "1-D: not a matrix"},
        {"attn.bias", "bias: not a weight"},
    };
    assert_skipped_rows(&r, skipped, sizeof skipped / sizeof skipped[0]);
    run_free(&r);

    /* The table lists the layers and counts the rest, by kind. */
    snprintf(args, sizeof args, "%s", path);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "3x3x8x16")); /* the shape as stored */
    assert_null(strstr(r.out, "q_proj"));
    assert_non_null(strstr(r.out, "not analysed, not layers: 2 bias, 2 3-D, 1 unrecognised, 1 1-D "
                                  "(--json or --csv lists each with its reason)"));
    run_free(&r);

    /* Selected: the conv1d weights as the conv2d (out, in, 1, k), whatever the layout; a mask
     * named bias is never a layer. The tensors --layers leaves out are skipped rows too, in
     * alphatop.analyze(layers=)'s words when they could be layers, else with their reason. */
    snprintf(args, sizeof args, "--json --layers 'conv1|Conv1d|q_proj|attn' %s", path);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.n, 9); /* 3 layers, 5 skipped + the summary */
    assert_int_equal((int)num_of(r.lines[8], "skipped"), 5);
    const named_reason unselected[] = {
        {"Dense_0.kernel", "not selected by layers="},
        {"Dense_0.bias", "bias: not a matrix"},
        {"Conv_0.kernel", "not selected by layers="},
        {"LayerNorm_0.scale", "1-D: not a matrix"},
        {"attn.bias", "bias: not a weight (a bias, or a buffer such as an attention mask)"},
    };
    assert_skipped_rows(&r, unselected, sizeof unselected / sizeof unselected[0]);
    analyse(&(at_tensor){c1, AT_DTYPE_F32, AT_KIND_CONV2D, 4, {O, I, 1, K}}, &o, &m);
    assert_line_matches(line_named(&r, "conv1.weight"), &m, 0);
    assert_line_matches(line_named(&r, "Conv1d_0.kernel"), &m, 0);
    analyse(&(at_tensor){w, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {64, 24}}, &o, &m);
    assert_line_matches(line_named(&r, "attn.q_proj.w"), &m, 0);
    run_free(&r);
    snprintf(args, sizeof args, "--layers 'conv1|Conv1d|q_proj|attn' %s", path);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_null(strstr(r.out, "Dense_0"));
    assert_non_null(strstr(r.out, "not analysed, not layers: 2 not selected by layers=, 2 bias, "
                                  "1 1-D (--json or --csv lists each with its reason)"));
    run_free(&r);

    /* CSV: one row per tensor, the reason in the last column. */
    snprintf(args, sizeof args, "--csv %s", path);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    const char *row = strstr(r.out, "LayerNorm_0.scale,");
    assert_non_null(row);
    assert_non_null(strstr(row, ",skipped,"));
    const char *why = strstr(row, ",1-D: not a matrix\n");
    assert_non_null(why);
    assert_true(why < strchr(row, '\n'));
    run_free(&r);
    free(dense);
    free(dense_t);
    free(w);
    free(conv);
    free(c1);
    free(flax_conv);
    free(flax_c1);
    free(vec);
}

/* A layer skipped for its size is decided from its shape and never read: NaN in it, or in a
 * skipped update's base, does not matter; an all-zero layer of that size is skipped too. The
 * rows are the same on one thread and on three. */
static void test_skipped_not_read(void **state)
{
    (void)state;
    float *nan = tf_gauss(8 * 40, 31, 1.0), *zero = calloc(8 * 40, sizeof(float));
    nan[3] = NAN;
    const tf_tensor t[] = {
        {"nan.weight", "F32", 2, {8, 40}, nan, 8 * 40 * 4, 0, 0},
        {"zero.weight", "F32", 2, {8, 40}, zero, 8 * 40 * 4, 0, 0},
    };
    char path[512], base[512], args[1200];
    snprintf(path, sizeof path, "%s", tf_path("skipped.safetensors"));
    snprintf(base, sizeof base, "%s", tf_path("skipped-base.safetensors"));
    tf_write_safetensors(path, t, 2, 8, 0);
    tf_write_safetensors(base, t, 2, 8, 0);
    const char *modes[] = {"", "--fast", "--base"};
    char *first = NULL;
    for (int m = 0; m < 3; m++)
        for (int threads = 1; threads <= 3; threads += 2) {
            snprintf(args, sizeof args, "--json --threads %d %s %s %s", threads, path,
                     m == 2 ? "--base" : modes[m], m == 2 ? base : "");
            run r;
            run_scan(&r, args);
            assert_int_equal(r.code, 0);
            for (int i = 0; i < 2; i++) {
                const cJSON *o = line_named(&r, t[i].name);
                assert_string_equal(str_of(o, "status"), "skipped");
                assert_true(num_of(o, "num_evals") == 8);
            }
            if (threads == 1) {
                free(first);
                first = strdup(r.out);
            } else {
                assert_string_equal(r.out, first);
            }
            run_free(&r);
        }
    free(first);
    free(nan);
    free(zero);
}

static void test_usage(void **state)
{
    (void)state;
    static const char *bad[] = {"",
                                "--json --csv x.npy",
                                "--bogus x.npy",
                                "--shape 3 x.f32",
                                "--layers '(' x.npy",
                                "--min-evals -1 x.npy",
                                "--lora-scale 0 x.npy",
                                "--merge x.npy"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run r;
        run_scan(&r, bad[i]);
        if (r.code != 2)
            fail_msg("'scan %s' exited %d, want 2", bad[i], r.code);
        assert_true(strlen(r.err) > 0);
        run_free(&r);
    }
    /* A file in no format the readers recognise is raw float32, which needs --shape. */
    run r;
    tf_write_bytes(tf_path("x.f32"), "0123456789abcdef", 16);
    run_scan(&r, tf_path("x.f32"));
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "give --shape"));
    run_free(&r);
    run_scan(&r, "--help");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "Usage: alphatop scan"));
    run_free(&r);
}

static float *transpose(const float *w, int rows, int cols)
{
    float *t = malloc(sizeof(float) * (size_t)rows * (size_t)cols);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            t[(size_t)j * rows + i] = w[(size_t)i * cols + j];
    return t;
}

/* The oracle's fine-tune case: WeightWatcher's analyze(model, base_model) on fc2 equals the
 * case mlp_delta_fc2 (delta_check). The trained fc2 is not in the oracle, so the model is
 * rebuilt as init + delta in float32; that this gives back delta exactly is checked first. */
static void test_delta(void **state)
{
    (void)state;
    const size_t n = 256 * 512;
    float *base = tf_read_oracle("mlp_init_fc2", n), *delta = tf_read_oracle("mlp_delta_fc2", n);
    float *model = malloc(n * sizeof *model);
    for (size_t i = 0; i < n; i++) {
        model[i] = base[i] + delta[i];
        assert_true(model[i] - base[i] == delta[i]);
    }
    const size_t nb = n * sizeof(float);
    float *other = tf_gauss(256 * 64, 31, 0.1);
    const tf_tensor tm[] = {
        {"fc2.weight", "F32", 2, {256, 512}, model, nb, 0, 0},
        {"head.weight", "F32", 2, {256, 64}, other, sizeof(float) * 256 * 64, 0, 0},
        {"fc1.weight", "F32", 2, {256, 64}, other, sizeof(float) * 256 * 64, 0, 0},
    };
    const tf_tensor tb[] = {{"fc2.weight", "F32", 2, {256, 512}, base, nb, 0, 0}};
    char mp[512], bp[512], args[1200];
    snprintf(mp, sizeof mp, "%s", tf_path("ft.safetensors"));
    snprintf(bp, sizeof bp, "%s", tf_path("base.safetensors"));
    tf_write_safetensors(mp, tm, 1, 8, 0);
    tf_write_safetensors(bp, tb, 1, 8, 0);
    snprintf(args, sizeof args, "--json --base %s %s", bp, mp);
    run r;
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    const cJSON *fc2 = line_named(&r, "fc2.weight");
    assert_matches_oracle(fc2, "mlp_delta_fc2");
    const double want = num_of(cJSON_GetObjectItemCaseSensitive(oracle, "delta_check"), "alpha");
    assert_true(fabs(num_of(fc2, "alpha") - want) <= 1e-9 * want);
    assert_string_equal(str_of(fc2, "base"), bp);
    assert_string_equal(str_of(fc2, "base_layer"), "fc2.weight");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(fc2, "base_transposed")));
    run_free(&r);

    /* Renamed (DDP prefix) and transposed base, a layer missing from the base, one of
     * another shape, and a base layer nothing pairs with: each gets its own line. */
    float *bt = transpose(base, 256, 512), *small = tf_gauss(256 * 60, 32, 0.1);
    const tf_tensor tb2[] = {
        {"module.fc2.weight", "F32", 2, {512, 256}, bt, nb, 0, 0},
        {"module.fc1.weight", "F32", 2, {256, 60}, small, sizeof(float) * 256 * 60, 0, 0},
        {"module.fc9.weight", "F32", 2, {256, 60}, small, sizeof(float) * 256 * 60, 0, 0},
    };
    tf_write_safetensors(mp, tm, 3, 8, 0);
    tf_write_safetensors(bp, tb2, 3, 8, 0);
    run_scan(&r, args);
    assert_int_equal(r.code, 1);
    assert_matches_oracle(line_named(&r, "fc2.weight"), "mlp_delta_fc2");
    assert_string_equal(str_of(line_named(&r, "fc2.weight"), "base_layer"), "module.fc2.weight");
    assert_true(cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(line_named(&r, "fc2.weight"), "base_transposed")));
    assert_non_null(strstr(r.err, "fc2.weight: paired with base layer module.fc2.weight "
                                  "(renamed) (transposed)"));
    assert_non_null(strstr(r.err, "head.weight: no layer named head.weight"));
    assert_non_null(strstr(r.err, "fc1.weight: shape mismatch: 256x64 here, 256x60 in the base"));
    assert_non_null(strstr(r.err, "module.fc9.weight: base layer with no counterpart"));
    assert_string_equal(str_of(line_named(&r, "head.weight"), "status"), "error");
    run_free(&r);

    /* --layers keeps the pairing but analyses only the matching layers: the others are
     * skipped rows, not errors. */
    snprintf(args, sizeof args, "--json --layers '^fc2' --base %s %s", bp, mp);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.n, 4);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(line_named(&r, "fc2.weight"), "alpha"));
    assert_string_equal(str_of(line_named(&r, "head.weight"), "skipped"),
                        "not selected by layers=");
    assert_string_equal(str_of(line_named(&r, "fc1.weight"), "skipped"), "not selected by layers=");
    run_free(&r);
    free(base);
    free(delta);
    free(model);
    free(other);
    free(bt);
    free(small);
}

/* PEFT adapters: lora_A (r x in) and lora_B (out x r) are one layer, B A, analysed from its
 * factors; a rank below min_evals is reported as too few eigenvalues, not as a number. */
static void test_lora(void **state)
{
    (void)state;
    float *a = tf_gauss(16 * 200, 41, 0.1), *b = tf_gauss(300 * 16, 42, 0.1);
    float *a4 = tf_gauss(4 * 50, 43, 0.1), *b4 = tf_gauss(60 * 4, 44, 0.1);
    const tf_tensor t[] = {
        {"base_model.model.fc.lora_A.weight", "F32", 2, {16, 200}, a, sizeof(float) * 3200, 0, 0},
        {"base_model.model.fc.lora_B.weight", "F32", 2, {300, 16}, b, sizeof(float) * 4800, 0, 0},
        {"base_model.model.g.lora_A.weight", "F32", 2, {4, 50}, a4, sizeof(float) * 200, 0, 0},
        {"base_model.model.g.lora_B.weight", "F32", 2, {60, 4}, b4, sizeof(float) * 240, 0, 0},
    };
    char path[512];
    snprintf(path, sizeof path, "%s", tf_path("adapter.safetensors"));
    tf_write_safetensors(path, t, 4, 8, 0);
    char args[1200];
    snprintf(args, sizeof args, "--json --lora-scale 2 %s", path);
    run r;
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.n, 3);
    at_tensor A = {a, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {16, 200}};
    at_tensor B = {b, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {300, 16}};
    at_lora *l = at_lora_new();
    at_metrics m;
    assert_int_equal(at_lora_analyze(l, &B, &A, 2.0, NULL, &m), AT_OK);
    at_lora_free(l);
    const cJSON *fc = line_named(&r, "base_model.model.fc.lora_BA");
    assert_line_matches(fc, &m, 0);
    assert_int_equal((int)num_of(fc, "lora_rank"), 16);
    assert_int_equal((int)num_of(fc, "num_evals"), 16);
    const cJSON *g = line_named(&r, "base_model.model.g.lora_BA");
    assert_string_equal(str_of(g, "status"), "skipped");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(g, "alpha")));
    assert_int_equal((int)num_of(g, "num_evals"), 4);
    run_free(&r);

    snprintf(args, sizeof args, "%s", path);
    run_scan(&r, args);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "skipped: too few eigenvalues for a fit (4 < --min-evals 10)"));
    assert_non_null(strstr(r.out, "300x200/r16"));
    run_free(&r);

    /* --merge: W_base + scale B A, the base layer found by the module name (PEFT's prefix
     * removed); a module without a base layer is an error for that pair only. */
    float *w = tf_gauss(300 * 200, 45, 0.05), *merged = malloc(sizeof(float) * 300 * 200);
    const tf_tensor tb[] = {{"fc.weight", "F32", 2, {300, 200}, w, sizeof(float) * 60000, 0, 0}};
    char bp[512];
    snprintf(bp, sizeof bp, "%s", tf_path("lora_base.safetensors"));
    tf_write_safetensors(bp, tb, 1, 8, 0);
    snprintf(args, sizeof args, "--json --merge --lora-scale 2 --base %s %s", bp, path);
    run_scan(&r, args);
    assert_int_equal(r.code, 1);
    at_tensor W = {w, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {300, 200}};
    l = at_lora_new();
    assert_int_equal(at_lora_merge(l, &W, &B, &A, 2.0, merged), AT_OK);
    at_lora_free(l);
    at_tensor M = {merged, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {300, 200}};
    analyse(&M, NULL, &m);
    assert_line_matches(line_named(&r, "base_model.model.fc.merged"), &m, 0);
    assert_non_null(strstr(r.err, "fc.merged: merged with base layer fc.weight (renamed)"));
    assert_non_null(strstr(r.err, "g.merged: --merge: no base layer base_model.model.g.weight"));
    assert_null(strstr(r.err, "no counterpart"));
    run_free(&r);
    free(w);
    free(merged);
    free(a);
    free(b);
    free(a4);
    free(b4);
}

/* diff: the oracle's untrained and trained fc1 side by side (paired through a DDP prefix),
 * a layer only in B listed, exit status 1 for it. */
static void test_diff(void **state)
{
    (void)state;
    float *init1 = tf_read_oracle("mlp_init_fc1", 512 * 64);
    float *trained1 = tf_read_oracle("mlp_trained_fc1", 512 * 64);
    float *fc3 = tf_read_oracle("mlp_trained_fc3", 10 * 256);
    const size_t nb = sizeof(float) * 512 * 64;
    const tf_tensor ta[] = {{"fc1.weight", "F32", 2, {512, 64}, init1, nb, 0, 0}};
    const tf_tensor tb[] = {{"module.fc1.weight", "F32", 2, {512, 64}, trained1, nb, 0, 0},
                            {"fc3.weight", "F32", 2, {10, 256}, fc3, sizeof(float) * 2560, 0, 0}};
    char pa[512], pb[512], args[1100];
    snprintf(pa, sizeof pa, "%s", tf_path("a.safetensors"));
    snprintf(pb, sizeof pb, "%s", tf_path("b.safetensors"));
    tf_write_safetensors(pa, ta, 1, 8, 0);
    tf_write_safetensors(pb, tb, 2, 8, 0);
    snprintf(args, sizeof args, "--json %s %s", pa, pb);
    run r;
    run_cmd(&r, "diff", args);
    assert_int_equal(r.code, 1);
    const cJSON *o = line_named(&r, "fc1.weight");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "a");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "b");
    assert_matches_oracle(a, "mlp_init_fc1");
    assert_matches_oracle(b, "mlp_trained_fc1");
    assert_true(num_of(o, "alpha_change") == num_of(b, "alpha") - num_of(a, "alpha"));
    assert_string_equal(str_of(line_named(&r, "fc3.weight"), "status"), "error");
    assert_non_null(strstr(r.err, "fc3.weight: only in B"));
    assert_non_null(
        strstr(r.err, "fc1.weight: paired with base layer module.fc1.weight (renamed)"));
    run_free(&r);

    run_cmd(&r, "diff", pa);
    assert_int_equal(r.code, 2);
    run_free(&r);
    snprintf(args, sizeof args, "--layers fc1 %s %s", pa, pb);
    run_cmd(&r, "diff", args);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "under-trained -> ok"));
    assert_non_null(strstr(r.out, "mean alpha over 1 compared layers"));
    run_free(&r);
    free(init1);
    free(trained1);
    free(fc3);
}

/* diff of two LoRA checkpoints: each side's lora_A / lora_B pair is one row, B A analysed from
 * its factors (ranks may differ; pairs found through a renamed A half), a rank below
 * min_evals says skipped on both sides, and products of different shapes are not compared. */
static void test_diff_lora(void **state)
{
    (void)state;
    float *aa = tf_gauss(16 * 200, 51, 0.1), *ab = tf_gauss(300 * 16, 52, 0.1);
    float *ba = tf_gauss(12 * 200, 53, 0.1), *bb = tf_gauss(300 * 12, 54, 0.1);
    float *g1 = tf_gauss(4 * 50, 55, 0.1), *g2 = tf_gauss(60 * 4, 56, 0.1);
    float *k1 = tf_gauss(16 * 31, 57, 0.1), *k2 = tf_gauss(50 * 16, 58, 0.1);
    const size_t f = sizeof(float);
    const tf_tensor ta[] = {
        {"base_model.model.fc.lora_A.weight", "F32", 2, {16, 200}, aa, f * 3200, 0, 0},
        {"base_model.model.fc.lora_B.weight", "F32", 2, {300, 16}, ab, f * 4800, 0, 0},
        {"g.lora_A.weight", "F32", 2, {4, 50}, g1, f * 200, 0, 0},
        {"g.lora_B.weight", "F32", 2, {60, 4}, g2, f * 240, 0, 0},
        {"k.lora_A.weight", "F32", 2, {16, 30}, k1, f * 480, 0, 0},
        {"k.lora_B.weight", "F32", 2, {50, 16}, k2, f * 800, 0, 0},
    };
    const tf_tensor tb[] = {
        {"fc.lora_A.weight", "F32", 2, {12, 200}, ba, f * 2400, 0, 0},
        {"fc.lora_B.weight", "F32", 2, {300, 12}, bb, f * 3600, 0, 0},
        {"g.lora_A.weight", "F32", 2, {4, 50}, g1, f * 200, 0, 0},
        {"g.lora_B.weight", "F32", 2, {60, 4}, g2, f * 240, 0, 0},
        {"k.lora_A.weight", "F32", 2, {16, 31}, k1, f * 496, 0, 0},
        {"k.lora_B.weight", "F32", 2, {50, 16}, k2, f * 800, 0, 0},
    };
    char pa[512], pb[512], args[1100];
    snprintf(pa, sizeof pa, "%s", tf_path("lora_a.safetensors"));
    snprintf(pb, sizeof pb, "%s", tf_path("lora_b.safetensors"));
    tf_write_safetensors(pa, ta, 6, 8, 0);
    tf_write_safetensors(pb, tb, 6, 8, 0);
    snprintf(args, sizeof args, "--json %s %s", pa, pb);
    run r;
    run_cmd(&r, "diff", args);
    assert_int_equal(r.code, 1);
    assert_int_equal(r.n, 3);

    const at_tensor A1 = {aa, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {16, 200}};
    const at_tensor B1 = {ab, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {300, 16}};
    const at_tensor A2 = {ba, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {12, 200}};
    const at_tensor B2 = {bb, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {300, 12}};
    at_lora *l = at_lora_new();
    at_metrics m1, m2;
    assert_int_equal(at_lora_analyze(l, &B1, &A1, 1.0, NULL, &m1), AT_OK);
    assert_int_equal(at_lora_analyze(l, &B2, &A2, 1.0, NULL, &m2), AT_OK);
    at_lora_free(l);
    const cJSON *o = line_named(&r, "base_model.model.fc.lora_BA");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "a");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "b");
    assert_line_matches(a, &m1, 0);
    assert_line_matches(b, &m2, 0);
    assert_true(num_of(o, "alpha_change") == m2.alpha - m1.alpha);
    assert_int_equal((int)num_of(a, "lora_rank"), 16);
    assert_int_equal((int)num_of(b, "lora_rank"), 12);
    assert_int_equal((int)num_of(b, "num_evals"), 12);
    assert_non_null(strstr(r.err, "fc.lora_BA: paired with base layer fc.lora_A.weight (renamed)"));

    o = line_named(&r, "g.lora_BA");
    a = cJSON_GetObjectItemCaseSensitive(o, "a");
    assert_string_equal(str_of(a, "status"), "skipped");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a, "alpha")));
    assert_string_equal(str_of(cJSON_GetObjectItemCaseSensitive(o, "b"), "status"), "skipped");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "alpha_change")));

    assert_string_equal(str_of(line_named(&r, "k.lora_BA"), "status"), "error");
    assert_non_null(strstr(r.err, "k.lora_BA: shape mismatch: B A is 50x30 here, 50x31 in B"));
    assert_null(strstr(r.err, "only in B"));
    run_free(&r);

    snprintf(args, sizeof args, "--layers '(fc|g)[.]lora' %s %s", pa, pb);
    run_cmd(&r, "diff", args);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "300x200/r16->12"));
    assert_non_null(strstr(r.out, "skipped -> skipped"));
    assert_non_null(strstr(r.out, "mean alpha over 1 compared layers"));
    run_free(&r);
    free(aa);
    free(ab);
    free(ba);
    free(bb);
    free(g1);
    free(g2);
    free(k1);
    free(k2);
}

int main(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/oracle/reference.json", AT_DATA_DIR);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    text[fread(text, 1, (size_t)n, f)] = '\0';
    fclose(f);
    oracle = cJSON_Parse(text);
    free(text);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_oracle_raw_and_npy),
        cmocka_unit_test(test_bad_layers), cmocka_unit_test(test_skipped_not_read),
        cmocka_unit_test(test_select),     cmocka_unit_test(test_usage),
        cmocka_unit_test(test_delta),      cmocka_unit_test(test_lora),
        cmocka_unit_test(test_diff),       cmocka_unit_test(test_diff_lora),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    cJSON_Delete(oracle);
    tf_cleanup();
    return failed;
}
