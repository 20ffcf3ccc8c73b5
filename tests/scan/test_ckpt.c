/* test_ckpt.c -- checkpoint readers: round trips of safetensors, npy and raw files written
 * here byte by byte, and every bad-file error (message, and the other layers still usable). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckpt.h"
#include "testfiles.h"

static size_t numel(const at_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

static const at_ckpt_layer *layer_named(const at_ckpt *c, const char *name)
{
    const at_ckpt_layer *l = at_ckpt_find(c, name);
    if (!l)
        fail_msg("no layer %s", name);
    return l;
}

static void assert_layer_ok(const at_ckpt *c, const char *name, const void *data, size_t bytes)
{
    const at_ckpt_layer *l = layer_named(c, name);
    if (l->err != AT_OK)
        fail_msg("%s: %s", name, l->error);
    assert_int_equal(numel(&l->tensor) * at_dtype_size(l->tensor.dtype), bytes);
    assert_memory_equal(l->tensor.data, data, bytes);
}

static void assert_layer_error(const at_ckpt *c, const char *name, int err, const char *needle)
{
    const at_ckpt_layer *l = layer_named(c, name);
    assert_int_equal(l->err, err);
    assert_null(l->tensor.data);
    if (!strstr(l->error, needle))
        fail_msg("%s: error '%s' lacks '%s'", name, l->error, needle);
}

static void test_safetensors_round_trip(void **state)
{
    (void)state;
    float *lin = tf_gauss(48 * 20, 1, 0.1), *conv = tf_gauss(8 * 4 * 3 * 3, 2, 0.1);
    float bias[48] = {0}, norm[20] = {1};
    uint16_t half[12 * 16], bf[12 * 16];
    for (int i = 0; i < 12 * 16; i++) {
        float v = (float)((i * 37) % 511 - 255) / 64.0f;
        half[i] = tf_f32_to_f16_exact(v);
        bf[i] = tf_f32_to_bf16_exact(v);
    }
    const tf_tensor t[] = {
        {"fc1.weight", "F32", 2, {48, 20}, lin, sizeof(float) * 48 * 20, 0, 0},
        {"fc1.bias", "F32", 1, {48}, bias, sizeof bias, 0, 0},
        {"ln.weight", "F32", 1, {20}, norm, sizeof norm, 0, 0},
        {"conv.weight", "F32", 4, {8, 4, 3, 3}, conv, sizeof(float) * 8 * 4 * 9, 0, 0},
        {"h.weight", "F16", 2, {12, 16}, half, sizeof half, 0, 0},
        {"b.weight", "BF16", 2, {12, 16}, bf, sizeof bf, 0, 0},
    };
    /* header_align 1: the data section starts wherever the JSON ends, so F32 views are
     * misaligned and the reader has to copy them. */
    for (int align = 1; align <= 8; align += 7) {
        const char *path = tf_path(align == 1 ? "misaligned.safetensors" : "rt.safetensors");
        tf_write_safetensors(path, t, 6, align, 0);
        at_ckpt *c = at_ckpt_open(path, NULL);
        assert_non_null(c);
        assert_int_equal(at_ckpt_status(c), AT_OK);
        assert_int_equal(at_ckpt_count(c), 4); /* bias and norm weight are not layers */
        assert_string_equal(at_ckpt_layer_at(c, 0)->name, "fc1.weight");
        assert_layer_ok(c, "fc1.weight", lin, sizeof(float) * 48 * 20);
        assert_layer_ok(c, "conv.weight", conv, sizeof(float) * 8 * 4 * 9);
        assert_layer_ok(c, "h.weight", half, sizeof half);
        assert_layer_ok(c, "b.weight", bf, sizeof bf);
        const at_ckpt_layer *l = layer_named(c, "conv.weight");
        assert_int_equal(l->tensor.kind, AT_KIND_CONV2D);
        assert_int_equal(l->tensor.ndim, 4);
        assert_int_equal(l->tensor.shape[1], 4);
        assert_int_equal(layer_named(c, "fc1.weight")->tensor.kind, AT_KIND_LINEAR);
        assert_int_equal(layer_named(c, "h.weight")->tensor.dtype, AT_DTYPE_F16);
        assert_int_equal(layer_named(c, "b.weight")->tensor.dtype, AT_DTYPE_BF16);
        assert_int_equal((uintptr_t)layer_named(c, "fc1.weight")->tensor.data % 4, 0);
        at_ckpt_close(c);
    }
    free(lin);
    free(conv);
}

/* One file, one good layer, and one broken layer per problem: each broken one has its own
 * message and the good one is still read. */
static void test_safetensors_bad_layers(void **state)
{
    (void)state;
    float *w = tf_gauss(16 * 8, 3, 1.0);
    const size_t nb = sizeof(float) * 16 * 8;
    const tf_tensor t[] = {
        {"good.weight", "F32", 2, {16, 8}, w, nb, 0, 0},
        {"short.weight", "F32", 2, {16, 9}, w, nb, 0, 0}, /* 512 bytes, needs 576 */
        {"overlap.weight", "F32", 2, {16, 8}, w, nb, nb / 2, nb / 2 + nb}, /* half of good's */
        {"absurd.weight", "F32", 2, {INT64_C(1) << 45, 8}, w, nb, 0, 0},   /* dimension */
        {"q4.weight", "Q4", 2, {8, 8}, w, nb, 0, 0},
        {"empty.weight", "F32", 2, {0, 8}, w, 0, 0, 0},
        {"past.weight", "F32", 2, {16, 8}, w, nb, 10 * nb, 11 * nb}, /* beyond the data */
    };
    const char *path = tf_path("bad.safetensors");
    tf_write_safetensors(path, t, 7, 8, 0);
    at_ckpt *c = at_ckpt_open(path, NULL);
    assert_int_equal(at_ckpt_status(c), AT_OK);
    assert_int_equal(at_ckpt_count(c), 7);
    assert_layer_ok(c, "good.weight", w, nb);
    assert_layer_error(c, "short.weight", AT_ERR_SIZE,
                       "hold 512 bytes but shape 16x9 of F32 needs 576");
    assert_layer_error(c, "overlap.weight", AT_ERR_FORMAT, "overlap tensor good.weight");
    assert_layer_error(c, "absurd.weight", AT_ERR_FORMAT, "absurd shape");
    assert_layer_error(c, "q4.weight", AT_ERR_UNSUPPORTED, "dtype Q4 not supported");
    assert_layer_error(c, "empty.weight", AT_ERR_EMPTY, "empty tensor (shape 0x8)");
    assert_layer_error(c, "past.weight", AT_ERR_SIZE, "run past the end of the data");
    for (size_t i = 0; i < at_ckpt_count(c); i++)
        assert_string_equal(at_ckpt_layer_at(c, i)->skip, "");
    at_ckpt_close(c);

    /* A truncated file: the layers before the cut are fine, the cut one says so. */
    const tf_tensor two[] = {{"a.weight", "F32", 2, {16, 8}, w, nb, 0, 0},
                             {"b.weight", "F32", 2, {16, 8}, w, nb, 0, 0}};
    path = tf_path("truncated.safetensors");
    tf_write_safetensors(path, two, 2, 8, 100);
    c = at_ckpt_open(path, NULL);
    assert_int_equal(at_ckpt_status(c), AT_OK);
    assert_layer_ok(c, "a.weight", w, nb);
    assert_layer_error(c, "b.weight", AT_ERR_SIZE, "truncated file");
    at_ckpt_close(c);
    free(w);
}

static void assert_file_error(const char *name, const void *bytes, size_t n, int err,
                              const char *needle)
{
    const char *path = tf_path(name);
    if (bytes)
        tf_write_bytes(path, bytes, n);
    at_ckpt *c = at_ckpt_open(path, NULL);
    assert_non_null(c);
    assert_int_equal(at_ckpt_status(c), err);
    assert_int_equal(at_ckpt_count(c), 0);
    if (!strstr(at_ckpt_last_error(c), needle))
        fail_msg("%s: error '%s' lacks '%s'", name, at_ckpt_last_error(c), needle);
    at_ckpt_close(c);
}

static void test_safetensors_bad_files(void **state)
{
    (void)state;
    assert_file_error("tiny.safetensors", "abc", 3, AT_ERR_SIZE, "shorter than the 8-byte");
    assert_file_error("empty.safetensors", "", 0, AT_ERR_SIZE, "empty file");
    assert_file_error("missing.safetensors", NULL, 0, AT_ERR_NOTFOUND, "no such file");
    unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    assert_file_error("hugehdr.safetensors", big, sizeof big, AT_ERR_FORMAT, "absurd");
    unsigned char cut[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    assert_file_error("cuthdr.safetensors", cut, sizeof cut, AT_ERR_SIZE,
                      "header length 200 exceeds");
    unsigned char notjson[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '"', 'a', '"', ':', '[', 0, 0};
    assert_file_error("notjson.safetensors", notjson, sizeof notjson, AT_ERR_FORMAT,
                      "not a JSON object");
}

static void test_npy(void **state)
{
    (void)state;
    float *w = tf_gauss(6 * 5, 4, 1.0);
    float *conv = tf_gauss(4 * 3 * 2 * 2, 5, 1.0);
    for (int v = 1; v <= 3; v++) {
        const char *path = tf_path("v.npy");
        tf_write_npy(path, v, "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 5), }", w,
                     sizeof(float) * 30);
        at_ckpt *c = at_ckpt_open(path, NULL);
        assert_int_equal(at_ckpt_status(c), AT_OK);
        assert_int_equal(at_ckpt_count(c), 1);
        assert_layer_ok(c, "v", w, sizeof(float) * 30);
        assert_int_equal(at_ckpt_layer_at(c, 0)->tensor.shape[0], 6);
        at_ckpt_close(c);
    }
    /* Fortran order: the bytes are the column-major layout; the reader hands back C order. */
    float fw[30], fconv[48];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 5; j++)
            fw[i + 6 * j] = w[i * 5 + j];
    const int64_t s[4] = {4, 3, 2, 2};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 3; b++)
            for (int k = 0; k < 2; k++)
                for (int l = 0; l < 2; l++)
                    fconv[a + s[0] * (b + s[1] * (k + s[2] * l))] =
                        conv[((a * 3 + b) * 2 + k) * 2 + l];
    const char *path = tf_path("fortran.npy");
    tf_write_npy(path, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (6, 5), }", fw,
                 sizeof fw);
    at_ckpt *c = at_ckpt_open(path, NULL);
    assert_layer_ok(c, "fortran", w, sizeof fw);
    at_ckpt_close(c);
    path = tf_path("fconv.npy");
    tf_write_npy(path, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 3, 2, 2), }", fconv,
                 sizeof fconv);
    c = at_ckpt_open(path, NULL);
    assert_layer_ok(c, "fconv", conv, sizeof fconv);
    assert_int_equal(at_ckpt_layer_at(c, 0)->tensor.kind, AT_KIND_CONV2D);
    at_ckpt_close(c);

    uint16_t half[6];
    for (int i = 0; i < 6; i++)
        half[i] = tf_f32_to_f16_exact((float)i / 4.0f);
    path = tf_path("half.npy");
    tf_write_npy(path, 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", half,
                 sizeof half);
    c = at_ckpt_open(path, NULL);
    assert_layer_ok(c, "half", half, sizeof half);
    assert_int_equal(at_ckpt_layer_at(c, 0)->tensor.dtype, AT_DTYPE_F16);
    at_ckpt_close(c);

    /* Problems with the one array are reported on its layer; a broken header on the file. */
    path = tf_path("short.npy");
    tf_write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 6), }", w,
                 sizeof(float) * 30);
    c = at_ckpt_open(path, NULL);
    assert_layer_error(c, "short", AT_ERR_SIZE, "needs 144 bytes, file has 120");
    at_ckpt_close(c);
    path = tf_path("vec.npy");
    tf_write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (30,), }", w,
                 sizeof(float) * 30);
    c = at_ckpt_open(path, NULL);
    assert_layer_error(c, "vec", AT_ERR_UNSUPPORTED, "need a 2-D or 4-D weight");
    at_ckpt_close(c);
    path = tf_path("big.npy");
    tf_write_npy(path, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 5), }", w,
                 sizeof(float) * 15);
    assert_file_error("big.npy", NULL, 0, AT_ERR_UNSUPPORTED, "npy dtype '>f4' not supported");
    assert_file_error("magic.npy", "NUMPY plus some more bytes", 26, AT_ERR_FORMAT, "bad magic");
    free(w);
    free(conv);
}

static void test_raw(void **state)
{
    (void)state;
    float *w = tf_gauss(12 * 7, 6, 1.0);
    const char *path = tf_path("layer.f32");
    tf_write_bytes(path, w, sizeof(float) * 84);
    at_ckpt_opts o = {0};
    assert_int_equal(at_ckpt_parse_shape("12x7", o.raw_shape), 2);
    o.raw_ndim = 2;
    at_ckpt *c = at_ckpt_open(path, &o);
    assert_int_equal(at_ckpt_status(c), AT_OK);
    assert_layer_ok(c, "layer", w, sizeof(float) * 84);
    at_ckpt_close(c);
    o.raw_shape[1] = 8;
    c = at_ckpt_open(path, &o);
    assert_layer_error(c, "layer", AT_ERR_SIZE,
                       "file has 336 bytes but shape 12x8 of float32 needs 384");
    at_ckpt_close(c);
    c = at_ckpt_open(path, NULL);
    assert_int_equal(at_ckpt_status(c), AT_ERR_ARG);
    assert_non_null(strstr(at_ckpt_last_error(c), "--shape"));
    at_ckpt_close(c);

    int64_t s[4];
    assert_int_equal(at_ckpt_parse_shape("32x16x3x3", s), 4);
    assert_int_equal(s[3], 3);
    const char *bad[] = {"",      "12",    "12x",   "x7",        "12x0",
                         "12x-3", "1x2x3", "12 x7", "1x2x3x4x5", "12x7junk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (at_ckpt_parse_shape(bad[i], s) != -1)
            fail_msg("'%s' parsed as a shape", bad[i]);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_round_trip),
        cmocka_unit_test(test_safetensors_bad_layers),
        cmocka_unit_test(test_safetensors_bad_files),
        cmocka_unit_test(test_npy),
        cmocka_unit_test(test_raw),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return failed;
}
