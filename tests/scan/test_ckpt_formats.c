/* SPDX-License-Identifier: Apache-2.0 */
/* test_ckpt_formats.c -- the readers added for issue #17, on files made here: torch.save
 * archives with hand-written pickles (so every malformed case can be built), .npz, model
 * directories, sharded indexes, pipes and FIFOs, F64, integer dtypes, tied weights. Each bad
 * input's one-line error is checked. Files from the real writers: test_ckpt_real.c. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckpt.h"
#include "fuzz_ckpt.h"
#include "testfiles.h"
#include "testutil.h"

/* A pickle written opcode by opcode. */
typedef struct pk {
    unsigned char b[4096];
    size_t n;
} pk;

static void pk_bytes(pk *p, const void *s, size_t n)
{
    assert_true(p->n + n <= sizeof p->b);
    memcpy(p->b + p->n, s, n);
    p->n += n;
}

static void pk_op(pk *p, const char *ops)
{
    pk_bytes(p, ops, strlen(ops));
}

static void pk_str(pk *p, const char *s)
{
    unsigned char h[5] = {'X', (unsigned char)strlen(s), 0, 0, 0};
    pk_bytes(p, h, 5);
    pk_bytes(p, s, strlen(s));
}

static void pk_int(pk *p, int v)
{
    unsigned char h[3] = {'M', (unsigned char)(v & 255), (unsigned char)(v >> 8)};
    pk_bytes(p, h, 3);
}

static void pk_global(pk *p, const char *module, const char *name)
{
    pk_op(p, "c");
    pk_op(p, module);
    pk_op(p, "\n");
    pk_op(p, name);
    pk_op(p, "\n");
}

/* Pushes _rebuild_tensor_v2(storage KEY of TYPE/numel, offset, (r, c), (s0, s1), False, {}). */
static void pk_tensor(pk *p, const char *type, const char *key, int numel, int offset, int r, int c,
                      int s0, int s1)
{
    pk_global(p, "torch._utils", "_rebuild_tensor_v2");
    pk_op(p, "((");
    pk_str(p, "storage");
    pk_global(p, "torch", type);
    pk_str(p, key);
    pk_str(p, "cpu");
    pk_int(p, numel);
    pk_op(p, "tQ");
    pk_int(p, offset);
    pk_int(p, r);
    pk_int(p, c);
    pk_op(p, "\x86");
    pk_int(p, s0);
    pk_int(p, s1);
    pk_op(p, "\x86\x89}tR");
}

/* Starts a state dict: PROTO 2, OrderedDict(), MARK. */
static void pk_begin(pk *p)
{
    p->n = 0;
    pk_op(p, "\x80\x02");
    pk_global(p, "collections", "OrderedDict");
    pk_op(p, ")R(");
}

/* Writes a torch archive: archive/data.pkl and the storages given (key, bytes, size). */
static void write_torch(const char *path, const pk *p, int nst, const char *const *keys,
                        const void *const *data, const size_t *sizes, int compress)
{
    const char *names[8];
    const void *bytes[8];
    size_t n[8];
    char keyname[8][64];
    names[0] = "archive/data.pkl";
    bytes[0] = p->b;
    n[0] = p->n;
    for (int i = 0; i < nst; i++) {
        snprintf(keyname[i], sizeof keyname[i], "archive/data/%s", keys[i]);
        names[i + 1] = keyname[i];
        bytes[i + 1] = data[i];
        n[i + 1] = sizes[i];
    }
    size_t zn;
    unsigned char *zip = at_fuzz_zip((size_t)nst + 1, names, bytes, n, compress, &zn);
    assert_non_null(zip);
    tf_write_bytes(path, zip, zn);
    free(zip);
}

static const at_ckpt_layer *layer_named(const at_ckpt *c, const char *name)
{
    const at_ckpt_layer *l = at_ckpt_find(c, name);
    if (!l)
        fail_msg("no layer %s (file: %s)", name, at_ckpt_last_error(c));
    return l;
}

static void assert_floats(const at_ckpt *c, const char *name, const float *want, size_t n)
{
    const at_ckpt_layer *l = layer_named(c, name);
    if (l->err != AT_OK)
        fail_msg("%s: %s", name, l->error);
    assert_int_equal(l->tensor.dtype, AT_DTYPE_F32);
    assert_memory_equal(l->tensor.data, want, n * sizeof *want);
}

static void assert_layer_says(const at_ckpt *c, const char *name, int err, const char *needle)
{
    const at_ckpt_layer *l = layer_named(c, name);
    assert_int_equal(l->err, err);
    assert_null(l->tensor.data);
    if (!strstr(l->error, needle))
        fail_msg("%s: error '%s' lacks '%s'", name, l->error, needle);
}

static void assert_skipped(const at_ckpt *c, const char *name, const char *reason)
{
    const at_ckpt_layer *l = layer_named(c, name);
    assert_int_equal(l->err, AT_ERR_UNSUPPORTED);
    assert_string_equal(l->skip, reason);
    assert_string_equal(l->error, reason);
    assert_null(l->tensor.data);
}

static at_ckpt *open_ok(const char *path, const at_ckpt_opts *o)
{
    at_ckpt *c = at_ckpt_open(path, o);
    assert_non_null(c);
    if (at_ckpt_status(c) != AT_OK)
        fail_msg("%s: %s", path, at_ckpt_last_error(c));
    return c;
}

static void assert_file_says(const char *path, const at_ckpt_opts *o, int err, const char *needle)
{
    at_ckpt *c = at_ckpt_open(path, o);
    assert_non_null(c);
    assert_int_equal(at_ckpt_status(c), err);
    assert_int_equal(at_ckpt_count(c), 0);
    if (!strstr(at_ckpt_last_error(c), needle))
        fail_msg("%s: error '%s' lacks '%s'", path, at_ckpt_last_error(c), needle);
    if (strchr(at_ckpt_last_error(c), '\n'))
        fail_msg("%s: error '%s' is not one line", path, at_ckpt_last_error(c));
    at_ckpt_close(c);
}

/* A state dict of views into one storage: a C-order matrix, its transpose (copied into C
 * order), a tied name, an F64, an int8 and a 1-D tensor; stored and deflated archives. */
static void test_torch_state_dict(void **state)
{
    (void)state;
    float w[24], wt[24];
    double d[6];
    signed char q[6] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < 24; i++)
        w[i] = (float)i / 8.0f - 1.0f;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++)
            wt[j * 4 + i] = w[i * 6 + j];
    float dn[6];
    for (int i = 0; i < 6; i++) {
        d[i] = 1.0 / (i + 3.0); /* not exact in float32: narrowing rounds */
        dn[i] = (float)d[i];
    }
    pk p;
    pk_begin(&p);
    pk_str(&p, "a.weight");
    pk_tensor(&p, "FloatStorage", "0", 24, 0, 4, 6, 6, 1);
    pk_str(&p, "b.weight");
    pk_tensor(&p, "FloatStorage", "0", 24, 0, 6, 4, 1, 6);
    pk_str(&p, "a.bias");
    pk_tensor(&p, "FloatStorage", "0", 24, 0, 4, 6, 6, 1);
    pk_str(&p, "tied.weight");
    pk_tensor(&p, "FloatStorage", "0", 24, 0, 4, 6, 6, 1);
    pk_str(&p, "d.weight");
    pk_tensor(&p, "DoubleStorage", "1", 6, 0, 2, 3, 3, 1);
    pk_str(&p, "q.weight");
    pk_tensor(&p, "CharStorage", "2", 6, 0, 3, 2, 2, 1);
    pk_op(&p, "u.");
    const char *keys[] = {"0", "1", "2"};
    const void *data[] = {w, d, q};
    const size_t sizes[] = {sizeof w, sizeof d, sizeof q};
    for (int compress = 0; compress <= 1; compress++) {
        const char *path = tf_path(compress ? "deflated.pt" : "model.pt");
        write_torch(path, &p, 3, keys, data, sizes, compress);
        assert_int_equal(at_ckpt_format_of(path), AT_CKPT_ZIP);
        at_ckpt *c = open_ok(path, NULL);
        assert_int_equal(at_ckpt_count(c), 5); /* a.bias is not a layer */
        const char *order[] = {"a.weight", "b.weight", "tied.weight", "d.weight", "q.weight"};
        for (int i = 0; i < 5; i++)
            assert_string_equal(at_ckpt_layer_at(c, (size_t)i)->name, order[i]);
        assert_floats(c, "a.weight", w, 24);
        /* A stored archive is mapped: the view is the storage's bytes in the file. */
        if (!compress)
            assert_int_equal((uintptr_t)layer_named(c, "a.weight")->tensor.data % 4, 0);
        assert_floats(c, "b.weight", wt, 24);
        assert_int_equal(layer_named(c, "b.weight")->tensor.shape[0], 6);
        assert_skipped(c, "tied.weight", "tied to a.weight");
        assert_floats(c, "d.weight", dn, 6);
        assert_skipped(c, "q.weight", "dtype int8 is not a float type (not analysed)");
        at_ckpt_close(c);
    }
}

/* A single layer state dict with one thing wrong, and the message the file must give. */
static void test_torch_bad(void **state)
{
    (void)state;
    float w[24] = {1.0f};
    const char *keys[] = {"0"};
    const void *data[] = {w};
    size_t sizes[] = {sizeof w};
    const char *path = tf_path("bad.pt");
    pk p;

    /* Layer errors: the storage's size, a view past it, a storage entry missing. */
    pk_begin(&p);
    pk_str(&p, "size.weight");
    pk_tensor(&p, "FloatStorage", "0", 25, 0, 4, 6, 6, 1);
    pk_op(&p, "u.");
    write_torch(path, &p, 1, keys, data, sizes, 0);
    at_ckpt *c = open_ok(path, NULL);
    assert_layer_says(c, "size.weight", AT_ERR_SIZE,
                      "storage data/0 holds 96 bytes but 25 elements of float32 need 100");
    at_ckpt_close(c);
    pk_begin(&p);
    pk_str(&p, "past.weight");
    pk_tensor(&p, "FloatStorage", "0", 24, 4, 4, 6, 6, 1);
    pk_str(&p, "gone.weight");
    pk_tensor(&p, "FloatStorage", "7", 24, 0, 4, 6, 6, 1);
    pk_op(&p, "u.");
    write_torch(path, &p, 1, keys, data, sizes, 0);
    c = open_ok(path, NULL);
    assert_layer_says(c, "past.weight", AT_ERR_SIZE,
                      "view at offset 4 with shape 4x6 runs past its storage data/0 (24 elements)");
    assert_layer_says(c, "gone.weight", AT_ERR_FORMAT,
                      "archive/data/7 is missing from the archive");
    at_ckpt_close(c);

    /* File errors: the pickle. */
#define S(text) text, sizeof text - 1
    static const struct {
        const char *pickle;
        size_t n;
        int err;
        const char *needle;
    } bad[] = {
        {S("\x80\x02(I1\n."), AT_ERR_UNSUPPORTED, "pickle byte 3: opcode 0x49 is not read"},
        {S("\x80\x02\x63os\nsystem\nX\x04\x00\x00\x00true\x85R."), AT_ERR_UNSUPPORTED,
         "global os.system is not allowed"},
        {S("\x80\x02\x63posix\nsystem\n."), AT_ERR_UNSUPPORTED,
         "global posix.system is not allowed"},
        {S("\x80\x04\x8c\x08\x62uiltins\x8c\x04\x65val\x93)R."), AT_ERR_UNSUPPORTED,
         "global builtins.eval is not allowed"},
        {S("\x80\x02}q\x00h\x05."), AT_ERR_FORMAT, "memo index 5 was never stored"},
        {S("\x80\x02}q\x03."), AT_ERR_FORMAT, "memo index 3 out of order"},
        {S("\x80\x02s."), AT_ERR_FORMAT, "stack underflow"},
        {S("\x80\x02}"), AT_ERR_FORMAT, "truncated: no STOP opcode"},
        {S("\x80\x02X\xff\x00\x00\x00"
           "ab."),
         AT_ERR_FORMAT, "runs past the end"},
        {S("\x80\x09}."), AT_ERR_UNSUPPORTED, "pickle protocol 9"},
        {S("\x80\x02]\x63torch\nFloatStorage\n)R."), AT_ERR_FORMAT,
         "FloatStorage cannot be called here"},
    };
#undef S
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p.n = 0;
        pk_bytes(&p, bad[i].pickle, bad[i].n);
        write_torch(path, &p, 1, keys, data, sizes, 0);
        assert_file_says(path, NULL, bad[i].err, bad[i].needle);
    }

    /* File errors: the archive. */
    pk_begin(&p);
    pk_op(&p, "u.");
    write_torch(path, &p, 1, keys, data, sizes, 0);
    size_t n;
    char *whole = at_test_slurp(path, &n);
    tf_write_bytes(path, whole, n / 2);
    assert_file_says(path, NULL, AT_ERR_FORMAT, "damaged or truncated zip archive");
    free(whole);
    const char *junk_names[] = {"notes.txt"};
    const void *junk_data[] = {"hello"};
    const size_t junk_size[] = {5};
    unsigned char *zip = at_fuzz_zip(1, junk_names, junk_data, junk_size, 0, &n);
    tf_write_bytes(path, zip, n);
    free(zip);
    assert_file_says(path, NULL, AT_ERR_FORMAT, "neither a torch.save checkpoint");
    tf_write_bytes(path, "not a zip at all", 16);
    assert_file_says(path, NULL, AT_ERR_FORMAT, "not a zip archive");
    static const unsigned char legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                           0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
    tf_write_bytes(path, legacy, sizeof legacy);
    assert_file_says(path, NULL, AT_ERR_UNSUPPORTED, "torch.save before torch 1.6");
}

/* npy bytes in memory, via the test writer. */
static char *npy_bytes(const char *dict, const void *data, size_t bytes, size_t *n)
{
    const char *path = tf_path("tmp.npy");
    tf_write_npy(path, 1, dict, data, bytes);
    return at_test_slurp(path, n);
}

static void test_npz(void **state)
{
    (void)state;
    float a[12], b[10];
    double d[6];
    int32_t i4[6] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < 12; i++)
        a[i] = (float)i - 5.5f;
    for (int i = 0; i < 10; i++)
        b[i] = (float)i * 0.25f;
    float dn[6];
    for (int i = 0; i < 6; i++) {
        d[i] = 1.0 / (i + 7.0);
        dn[i] = (float)d[i];
    }
    size_t n[5];
    char *bytes[5] = {
        npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", a, sizeof a,
                  &n[0]),
        npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }", b, sizeof b, &n[1]),
        npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", d, sizeof d,
                  &n[2]),
        npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", i4, sizeof i4,
                  &n[3]),
        npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 5), }", b, sizeof b,
                  &n[4]),
    };
    const char *named[] = {"fc.weight.npy", "fc.bias.npy", "d.weight.npy", "q.weight.npy",
                           "short.weight.npy"};
    const char *positional[] = {"arr_0.npy", "arr_1.npy", "arr_2.npy", "arr_3.npy", "arr_4.npy"};
    const void *data[5] = {bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]};
    for (int compress = 0; compress <= 1; compress++) {
        for (int pos = 0; pos <= 1; pos++) {
            size_t zn;
            unsigned char *zip = at_fuzz_zip(5, pos ? positional : named, data, n, compress, &zn);
            const char *path = tf_path("w.npz");
            tf_write_bytes(path, zip, zn);
            free(zip);
            at_ckpt *c = open_ok(path, NULL);
            /* Names like a state dict's: only *weight; positional names: every 2-D array. */
            assert_int_equal(at_ckpt_count(c), 4);
            assert_floats(c, pos ? "arr_0" : "fc.weight", a, 12);
            assert_floats(c, pos ? "arr_2" : "d.weight", dn, 6);
            assert_skipped(c, pos ? "arr_3" : "q.weight",
                           "dtype '<i4' is not a float type (not analysed)");
            assert_layer_says(c, pos ? "arr_4" : "short.weight", AT_ERR_SIZE,
                              "truncated: shape 5x5 of '<f4' needs 100 bytes, file has 40");
            at_ckpt_close(c);
        }
    }
    for (int i = 0; i < 5; i++)
        free(bytes[i]);
}

static void write_text(const char *path, const char *s)
{
    tf_write_bytes(path, s, strlen(s));
}

static void test_directories(void **state)
{
    (void)state;
    char dir[600], sub[700];
    snprintf(dir, sizeof dir, "%s", tf_path("models"));
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(at_ckpt_format_of(dir), AT_CKPT_DIR);
    assert_file_says(dir, NULL, AT_ERR_NOTFOUND, "no checkpoint files in");
    float *w = tf_gauss(8 * 6, 11, 1.0);
    const tf_tensor one[] = {{"x.weight", "F32", 2, {8, 6}, w, sizeof(float) * 48, 0, 0}};
    /* The one checkpoint file in a directory is read. */
    snprintf(sub, sizeof sub, "%s/step-100.safetensors", dir);
    tf_write_safetensors(sub, one, 1, 8, 0);
    snprintf(sub, sizeof sub, "%s/config.json", dir);
    write_text(sub, "{\"model_type\": \"mlp\"}");
    at_ckpt *c = open_ok(dir, NULL);
    assert_floats(c, "x.weight", w, 48);
    assert_string_equal(at_ckpt_path(c), dir);
    at_ckpt_close(c);
    /* Two are ambiguous. */
    snprintf(sub, sizeof sub, "%s/step-200.safetensors", dir);
    tf_write_safetensors(sub, one, 1, 8, 0);
    assert_file_says(dir, NULL, AT_ERR_ARG,
                     "2 checkpoint files in the directory (step-100.safetensors, "
                     "step-200.safetensors): name one");
    /* Hugging Face's name wins. */
    const tf_tensor hf[] = {{"hf.weight", "F32", 2, {6, 8}, w, sizeof(float) * 48, 0, 0}};
    snprintf(sub, sizeof sub, "%s/model.safetensors", dir);
    tf_write_safetensors(sub, hf, 1, 8, 0);
    c = open_ok(dir, NULL);
    assert_int_equal(at_ckpt_count(c), 1);
    assert_floats(c, "hf.weight", w, 48);
    at_ckpt_close(c);
    free(w);
}

static void test_sharded(void **state)
{
    (void)state;
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s", tf_path("sharded"));
    assert_int_equal(mkdir(dir, 0700), 0);
    float *a = tf_gauss(12 * 10, 21, 1.0), *b = tf_gauss(10 * 12, 22, 1.0);
    float *e = tf_gauss(16 * 4, 23, 1.0);
    const tf_tensor s1[] = {{"h.1.weight", "F32", 2, {12, 10}, a, sizeof(float) * 120, 0, 0},
                            {"stray.weight", "F32", 2, {16, 4}, e, sizeof(float) * 64, 0, 0}};
    const tf_tensor s2[] = {{"h.0.weight", "F32", 2, {10, 12}, b, sizeof(float) * 120, 0, 0},
                            {"embed.weight", "F32", 2, {16, 4}, e, sizeof(float) * 64, 0, 0},
                            {"norm.weight", "F32", 1, {4}, e, sizeof(float) * 4, 0, 0}};
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    tf_write_safetensors(path, s1, 2, 8, 0);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    tf_write_safetensors(path, s2, 3, 8, 0);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_text(path, "{\"metadata\": {\"total_size\": 1216}, \"weight_map\": {"
                     "\"embed.weight\": \"model-00002-of-00002.safetensors\","
                     "\"h.0.weight\": \"model-00002-of-00002.safetensors\","
                     "\"h.1.weight\": \"model-00001-of-00002.safetensors\","
                     "\"norm.weight\": \"model-00002-of-00002.safetensors\"}}");
    assert_int_equal(at_ckpt_format_of(path), AT_CKPT_INDEX);
    /* The directory and the index name the same model: layers in the index's order, the
     * tensor no index entry names (stray.weight) not read. */
    for (int via_index = 0; via_index <= 1; via_index++) {
        at_ckpt *c = open_ok(via_index ? path : dir, NULL);
        assert_int_equal(at_ckpt_count(c), 3);
        assert_string_equal(at_ckpt_layer_at(c, 0)->name, "embed.weight");
        assert_string_equal(at_ckpt_layer_at(c, 1)->name, "h.0.weight");
        assert_string_equal(at_ckpt_layer_at(c, 2)->name, "h.1.weight");
        assert_floats(c, "h.1.weight", a, 120);
        assert_floats(c, "h.0.weight", b, 120);
        assert_null(at_ckpt_find(c, "stray.weight"));
        at_ckpt_close(c);
    }
    /* A weight the index puts in a shard that lacks it is a layer lost. */
    write_text(path, "{\"weight_map\": {\"h.0.weight\": \"model-00002-of-00002.safetensors\","
                     "\"lost.weight\": \"model-00001-of-00002.safetensors\"}}");
    at_ckpt *c = open_ok(dir, NULL);
    assert_layer_says(c, "lost.weight", AT_ERR_NOTFOUND,
                      "the index puts it in shard model-00001-of-00002.safetensors, which does "
                      "not hold it");
    at_ckpt_close(c);
    write_text(path, "{\"weight_map\": {\"h.0.weight\": \"model-00003-of-00003.safetensors\"}}");
    assert_file_says(dir, NULL, AT_ERR_NOTFOUND,
                     "shard model-00003-of-00003.safetensors: no such file");
    write_text(path, "{\"weight_map\": {\"h.0.weight\": \"../model.safetensors\"}}");
    assert_file_says(dir, NULL, AT_ERR_FORMAT, "is not a shard file name in the index's directory");
    write_text(path, "{\"weight_map\": {\"h.0.weight\": \"model-00001");
    assert_file_says(dir, NULL, AT_ERR_FORMAT, "index is not valid JSON (truncated?)");
    write_text(path, "{\"metadata\": {}}");
    assert_file_says(path, NULL, AT_ERR_FORMAT, "not a checkpoint index: no weight_map object");
    free(a);
    free(b);
    free(e);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void test_streams(void **state)
{
    (void)state;
    float *w = tf_gauss(9 * 7, 31, 1.0);
    const tf_tensor t[] = {{"p.weight", "F32", 2, {9, 7}, w, sizeof(float) * 63, 0, 0}};
    const char *file = tf_path("piped.safetensors");
    tf_write_safetensors(file, t, 1, 8, 0);
    size_t n;
    char *bytes = at_test_slurp(file, &n);
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s", tf_path("fifo"));
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(at_ckpt_format_of(fifo), AT_CKPT_STREAM);

    /* Nobody writes: an error after the wait, not a hang. */
    at_ckpt_opts o = {.fifo_wait_ms = 200};
    double t0 = now();
    assert_file_says(fifo, &o, AT_ERR_TIMEOUT, "FIFO: nothing written within 200 ms");
    assert_true(now() - t0 < 5.0);

    /* A writer: the bytes are read into memory and sniffed like a file's. */
    for (int limit = 0; limit <= 1; limit++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int fd = open(fifo, O_WRONLY);
            ssize_t wrote = fd < 0 ? -1 : write(fd, bytes, n);
            _exit(wrote == (ssize_t)n ? 0 : 1);
        }
        o.fifo_wait_ms = 5000;
        o.stream_max = limit ? 100 : 0;
        if (limit) {
            assert_file_says(fifo, &o, AT_ERR_SIZE, "more than 100 bytes from a pipe");
        } else {
            at_ckpt *c = open_ok(fifo, &o);
            assert_floats(c, "p.weight", w, 63);
            at_ckpt_close(c);
        }
        int status;
        waitpid(pid, &status, 0);
    }
    free(bytes);
    free(w);
}

/* Formats are told by content: a safetensors file under another name is still one. */
static void test_sniffing(void **state)
{
    (void)state;
    float *w = tf_gauss(5 * 4, 41, 1.0);
    double d[20];
    for (int i = 0; i < 20; i++)
        d[i] = (double)w[i];
    int8_t q[20] = {0};
    const tf_tensor t[] = {
        {"a.weight", "F32", 2, {5, 4}, w, sizeof(float) * 20, 0, 0},
        {"d.weight", "F64", 2, {5, 4}, d, sizeof d, 0, 0},
        {"q.weight", "I8", 2, {5, 4}, q, sizeof q, 0, 0},
        {"tied.weight", "F32", 2, {5, 4}, w, sizeof(float) * 20, 0, sizeof(float) * 20}};
    const char *path = tf_path("weights.bin");
    tf_write_safetensors(path, t, 4, 8, 0);
    assert_int_equal(at_ckpt_format_of(path), AT_CKPT_SAFETENSORS);
    at_ckpt *c = open_ok(path, NULL);
    assert_floats(c, "a.weight", w, 20);
    assert_floats(c, "d.weight", w, 20); /* float32 values widened then narrowed: exact */
    assert_skipped(c, "q.weight", "dtype I8 is not a float type (not analysed)");
    assert_skipped(c, "tied.weight", "tied to a.weight");
    at_ckpt_close(c);
    path = tf_path("array.dat");
    tf_write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 4), }", w,
                 sizeof(float) * 20);
    assert_int_equal(at_ckpt_format_of(path), AT_CKPT_NPY);
    c = open_ok(path, NULL);
    assert_floats(c, "array", w, 20);
    at_ckpt_close(c);
    assert_int_equal(at_ckpt_format_of(tf_path("nothing.pt")), AT_CKPT_MISSING);
    assert_file_says(tf_path("nothing.pt"), NULL, AT_ERR_NOTFOUND, "no such file");
    assert_int_equal(at_ckpt_format_of("-"), AT_CKPT_STREAM);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_state_dict),
        cmocka_unit_test(test_torch_bad),
        cmocka_unit_test(test_npz),
        cmocka_unit_test(test_directories),
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_sniffing),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return failed;
}
