/* SPDX-License-Identifier: Apache-2.0 */
/* test_fmt_pair.c -- metric formatting (JSON nulls, CSV quoting, the model summary) and layer
 * pairing rules, on hand-made values. */
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

#include "metrics_fmt.h"
#include "pair.h"
#include "testfiles.h"

static at_metrics fitted(double alpha, double log_norm)
{
    at_metrics m;
    memset(&m, 0, sizeof m);
    m.N = 64;
    m.M = 32;
    m.rf = 1;
    m.Q = 2.0;
    m.num_evals = 32;
    m.status = AT_FIT_SUCCESS;
    m.alpha = alpha;
    m.warning = at_warning_for(m.status, alpha);
    m.xmin = 0.5;
    m.xmax = 9.0;
    m.D = 0.1;
    m.sigma = 0.2;
    m.num_pl_spikes = 7;
    m.log_norm = log_norm;
    m.alpha_weighted = alpha * 0.9;
    m.log_alpha_norm = 1.5;
    m.log_spectral_norm = 0.9;
    m.stable_rank = 4.0;
    m.detx_num = -1;
    m.detx_val = NAN;
    m.mode = AT_MODE_EXACT;
    return m;
}

static cJSON *to_json(const at_metrics *m, unsigned flags)
{
    cJSON *o = cJSON_CreateObject();
    assert_int_equal(at_fmt_json(o, "fc.weight", m, flags), AT_OK);
    char *text = cJSON_PrintUnformatted(o);
    cJSON *back = cJSON_Parse(text);
    free(text);
    cJSON_Delete(o);
    return back;
}

static void test_json(void **state)
{
    (void)state;
    at_metrics m = fitted(3.25, 2.0);
    m.entropy = NAN;
    cJSON *o = to_json(&m, 0);
    assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, "fc.weight");
    assert_true(cJSON_GetObjectItem(o, "alpha")->valuedouble == 3.25);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "entropy")));
    assert_string_equal(cJSON_GetObjectItem(o, "status")->valuestring, "success");
    assert_string_equal(cJSON_GetObjectItem(o, "mode")->valuestring, "exact");
    assert_null(cJSON_GetObjectItem(o, "detX_num")); /* optional columns only on request */
    cJSON_Delete(o);
    o = to_json(&m, AT_FMT_DETX);
    assert_true(cJSON_GetObjectItem(o, "detX_num")->valuedouble == -1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "detX_val")));
    cJSON_Delete(o);

    /* A failed fit: status says so; the warning is "failed" in alphatop's own label and
     * "over-trained" in the reference's. */
    m.status = AT_FIT_FAILED;
    m.alpha = -1;
    m.xmax = NAN;
    m.warning = at_warning_for(m.status, m.alpha);
    o = to_json(&m, 0);
    assert_string_equal(cJSON_GetObjectItem(o, "warning")->valuestring, "failed");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "xmax")));
    cJSON_Delete(o);
    o = to_json(&m, AT_FMT_REF_WARNING);
    assert_string_equal(cJSON_GetObjectItem(o, "warning")->valuestring, "over-trained");
    assert_string_equal(cJSON_GetObjectItem(o, "status")->valuestring, "failed");
    cJSON_Delete(o);

    /* Numbers survive the text exactly (cJSON alone would print 15 digits). */
    m = fitted(2.0000000000000004, 0.1);
    o = to_json(&m, 0);
    assert_true(cJSON_GetObjectItem(o, "alpha")->valuedouble == 2.0000000000000004);
    cJSON_Delete(o);
}

static void test_csv_and_table(void **state)
{
    (void)state;
    const char *path = tf_path("out.csv");
    FILE *f = fopen(path, "w+");
    at_metrics m = fitted(2.5, 1.0);
    at_fmt_csv_header(f, "file", 0);
    at_fmt_csv_row(f, "a,b.safetensors", "x\"y", &m, 0, NULL);
    at_fmt_csv_error(f, "c.npy", "z", "bad, very", 0);
    rewind(f);
    char line[3][4096];
    for (int i = 0; i < 3; i++)
        assert_non_null(fgets(line[i], sizeof line[i], f));
    fclose(f);
    assert_int_equal(strncmp(line[0], "file,name,N,M,rf,Q,num_evals,alpha,", 35), 0);
    assert_int_equal(strncmp(line[1], "\"a,b.safetensors\",\"x\"\"y\",64,32,1,2,32,2.5,", 42), 0);
    assert_non_null(strstr(line[2], ",error,"));
    assert_non_null(strstr(line[2], "\"bad, very\"\n"));

    path = tf_path("out.txt");
    f = fopen(path, "w+");
    at_fmt_table_header(f, 10, AT_FMT_TRAPS);
    m.num_traps = 3;
    at_fmt_table_row(f, 10, "fc.weight", "64x32", &m, AT_FMT_TRAPS);
    rewind(f);
    assert_non_null(fgets(line[0], sizeof line[0], f));
    assert_non_null(fgets(line[1], sizeof line[1], f));
    fclose(f);
    /* Columns line up: alpha's value ends where its header does. */
    const char *h = strstr(line[0], "alpha"), *v = strstr(line[1], "2.500");
    assert_int_equal(h - line[0] + 5, v - line[1] + 5);
    assert_non_null(strstr(line[0], "traps"));
}

static void test_summary(void **state)
{
    (void)state;
    at_summary s;
    at_summary_init(&s);
    at_metrics a = fitted(3.0, 1.0), b = fitted(5.0, 2.0), skipped = fitted(9.0, 9.0);
    at_metrics failed = fitted(-1.0, NAN);
    failed.status = AT_FIT_FAILED;
    skipped.status = AT_FIT_SKIPPED;
    at_summary_add(&s, &a);
    at_summary_add(&s, &b);
    at_summary_add(&s, &skipped);
    at_summary_add(&s, &failed);
    assert_int_equal(s.layers, 3);
    /* The failed fit enters with alpha -1 (as the reference), its NaN log_norm is left out. */
    assert_true(at_summary_mean(&s, AT_SUM_ALPHA) == (3.0 + 5.0 - 1.0) / 3.0);
    assert_true(at_summary_mean(&s, AT_SUM_LOG_NORM) == 1.5);
    assert_string_equal(at_summary_col_name(AT_SUM_LOG_SPECTRAL_NORM), "log_spectral_norm");
    at_summary_init(&s);
    assert_true(isnan(at_summary_mean(&s, AT_SUM_ALPHA)));
}

static void test_pairing(void **state)
{
    (void)state;
    char buf[128];
    assert_string_equal(at_pair_canonical("module._orig_mod.fc.weight", buf, sizeof buf),
                        "fc.weight");
    assert_string_equal(at_pair_canonical("base_model.model.model.x.weight", buf, sizeof buf),
                        "x.weight");
    assert_string_equal(at_pair_canonical("model.", buf, sizeof buf), "model.");

    float w[6 * 4] = {0};
    const tf_tensor ta[] = {{"fc.weight", "F32", 2, {6, 4}, w, sizeof w, 0, 0},
                            {"dup.weight", "F32", 2, {6, 4}, w, sizeof w, 0, 0}};
    const tf_tensor tb[] = {{"module.dup.weight", "F32", 2, {6, 4}, w, sizeof w, 0, 0},
                            {"model.dup.weight", "F32", 2, {6, 4}, w, sizeof w, 0, 0},
                            {"fc.weight", "F32", 2, {4, 6}, w, sizeof w, 0, 0}};
    char pa[512];
    snprintf(pa, sizeof pa, "%s", tf_path("a.safetensors"));
    tf_write_safetensors(pa, ta, 2, 8, 0);
    tf_write_safetensors(tf_path("b.safetensors"), tb, 3, 8, 0);
    at_ckpt *a = at_ckpt_open(pa, NULL), *b = at_ckpt_open(tf_path("b.safetensors"), NULL);
    at_pairing *p = at_pairing_new(a, b);
    const at_pair *fc = at_pairing_get(p, 0), *dup = at_pairing_get(p, 1);
    assert_int_equal(fc->status, AT_PAIR_OK);
    assert_true(fc->transposed && !fc->renamed);
    assert_int_equal(dup->status, AT_PAIR_AMBIGUOUS);
    assert_non_null(strstr(at_pair_describe(dup, at_ckpt_layer_at(a, 1), buf, sizeof buf),
                           "several base layers"));
    assert_int_equal(at_pairing_unmatched_count(p), 2);
    at_pairing_free(p);
    at_ckpt_close(a);
    at_ckpt_close(b);
}

/* A LoRA half's partner: PEFT's names (an adapter name after lora_A / lora_B), the module
 * named by what precedes the last "lora_A" / "lora_B"; no partner, no pair. */
static void test_lora_partner(void **state)
{
    (void)state;
    float w[4 * 4] = {0};
    const tf_tensor t[] = {
        {"m.q.lora_A.default.weight", "F32", 2, {4, 4}, w, sizeof w, 0, 0},
        {"m.q.lora_B.default.weight", "F32", 2, {4, 4}, w, sizeof w, 0, 0},
        {"lora_A.weight", "F32", 2, {4, 4}, w, sizeof w, 0, 0},
        {"lone.lora_B.weight", "F32", 2, {4, 4}, w, sizeof w, 0, 0},
        {"fc.weight", "F32", 2, {4, 4}, w, sizeof w, 0, 0},
    };
    tf_write_safetensors(tf_path("lora.safetensors"), t, 5, 8, 0);
    at_ckpt *c = at_ckpt_open(tf_path("lora.safetensors"), NULL);
    char module[64];
    int is_a = -1;
    const at_ckpt_layer *p =
        at_pair_lora_partner(c, "m.q.lora_A.default.weight", &is_a, module, sizeof module);
    assert_ptr_equal(p, at_ckpt_layer_at(c, 1));
    assert_int_equal(is_a, 1);
    assert_string_equal(module, "m.q");
    p = at_pair_lora_partner(c, "m.q.lora_B.default.weight", &is_a, module, sizeof module);
    assert_ptr_equal(p, at_ckpt_layer_at(c, 0));
    assert_int_equal(is_a, 0);
    assert_null(at_pair_lora_partner(c, "lora_A.weight", &is_a, module, sizeof module));
    assert_null(at_pair_lora_partner(c, "lone.lora_B.weight", &is_a, module, sizeof module));
    assert_null(at_pair_lora_partner(c, "fc.weight", &is_a, module, sizeof module));
    at_ckpt_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),         cmocka_unit_test(test_csv_and_table),
        cmocka_unit_test(test_summary),      cmocka_unit_test(test_pairing),
        cmocka_unit_test(test_lora_partner),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return failed;
}
