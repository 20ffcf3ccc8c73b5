/* SPDX-License-Identifier: Apache-2.0 */
/* test_ckpt.c -- checkpoint readers on files made here: safetensors, npy and raw files written
 * byte by byte, torch.save archives with hand-written pickles (so every malformed case can be
 * built), .npz, model directories, sharded indexes, pipes and FIFOs, F64, integer dtypes, tied
 * weights, lazy checkpoints and the views that read one layer by file and offset. Every bad
 * input's one-line error is checked, and the other layers stay usable.
 * Files from the real writers: test_ckpt_real.c. */
#include <fcntl.h>
#include <math.h>
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
        fail_msg("no layer %s (file: %s)", name, at_ckpt_last_error(c));
    return l;
}

static void assert_layer_ok(const at_ckpt *c, const char *name, const void *data, size_t bytes)
{
    const at_ckpt_layer *l = layer_named(c, name);
    if (l->err != AT_OK)
        fail_msg("%s: %s", name, l->error);
    assert_string_equal(l->skip, "");
    assert_int_equal(numel(&l->tensor) * at_dtype_size(l->tensor.dtype), bytes);
    assert_memory_equal(l->tensor.data, data, bytes);
}

/* A layer read as float32 (F32 as stored, or F64 narrowed) holding want[0..n). */
static void assert_floats(const at_ckpt *c, const char *name, const float *want, size_t n)
{
    assert_layer_ok(c, name, want, n * sizeof *want);
    assert_int_equal(layer_named(c, name)->tensor.dtype, AT_DTYPE_F32);
}

static void assert_layer_error(const at_ckpt *c, const char *name, int err, const char *needle)
{
    const at_ckpt_layer *l = layer_named(c, name);
    assert_int_equal(l->err, err);
    assert_null(l->tensor.data);
    if (!strstr(l->error, needle))
        fail_msg("%s: error '%s' lacks '%s'", name, l->error, needle);
}

static at_ckpt *open_ok(const char *path, const at_ckpt_opts *o)
{
    at_ckpt *c = at_ckpt_open(path, o);
    assert_non_null(c);
    if (at_ckpt_status(c) != AT_OK)
        fail_msg("%s: %s", path, at_ckpt_last_error(c));
    return c;
}

/* The file cannot be read: status err, a one-line message holding needle, no layers. */
static void assert_file_error(const char *path, const at_ckpt_opts *o, int err, const char *needle)
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

/* assert_file_error of a file holding bytes[0..n). */
static void assert_bytes_error(const char *name, const void *bytes, size_t n, int err,
                               const char *needle)
{
    tf_write_bytes(tf_path(name), bytes, n);
    assert_file_error(tf_path(name), NULL, err, needle);
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

static void test_safetensors_bad_files(void **state)
{
    (void)state;
    assert_bytes_error("tiny.safetensors", "abc", 3, AT_ERR_SIZE, "shorter than the 8-byte");
    assert_bytes_error("empty.safetensors", "", 0, AT_ERR_SIZE, "empty file");
    assert_file_error(tf_path("missing.safetensors"), NULL, AT_ERR_NOTFOUND, "no such file");
    unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    assert_bytes_error("hugehdr.safetensors", big, sizeof big, AT_ERR_FORMAT, "absurd");
    unsigned char cut[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    assert_bytes_error("cuthdr.safetensors", cut, sizeof cut, AT_ERR_SIZE,
                       "header length 200 exceeds");
    unsigned char notjson[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '"', 'a', '"', ':', '[', 0, 0};
    assert_bytes_error("notjson.safetensors", notjson, sizeof notjson, AT_ERR_FORMAT,
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
    assert_layer_error(c, "vec", AT_ERR_UNSUPPORTED, "1-D: not a matrix");
    at_ckpt_close(c);
    path = tf_path("big.npy");
    tf_write_npy(path, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 5), }", w,
                 sizeof(float) * 15);
    assert_file_error(tf_path("big.npy"), NULL, AT_ERR_UNSUPPORTED,
                      "npy dtype '>f4' not supported");
    assert_bytes_error("magic.npy", "NUMPY plus some more bytes", 26, AT_ERR_FORMAT, "bad magic");
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

/* Writes a torch archive with record directory dir: dir/data.pkl and the storages given (key,
 * bytes, size). */
static void write_torch_in(const char *path, const char *dir, const pk *p, int nst,
                           const char *const *keys, const void *const *data, const size_t *sizes,
                           int compress)
{
    const char *names[8];
    const void *bytes[8];
    size_t n[8];
    char pklname[512], keyname[8][512];
    assert_true((size_t)snprintf(pklname, sizeof pklname, "%s/data.pkl", dir) < sizeof pklname);
    names[0] = pklname;
    bytes[0] = p->b;
    n[0] = p->n;
    for (int i = 0; i < nst; i++) {
        assert_true((size_t)snprintf(keyname[i], sizeof keyname[i], "%s/data/%s", dir, keys[i]) <
                    sizeof keyname[i]);
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

/* write_torch_in with torch's usual record directory, "archive". */
static void write_torch(const char *path, const pk *p, int nst, const char *const *keys,
                        const void *const *data, const size_t *sizes, int compress)
{
    write_torch_in(path, "archive", p, nst, keys, data, sizes, compress);
}

static void assert_skipped(const at_ckpt *c, const char *name, const char *reason)
{
    const at_ckpt_layer *l = layer_named(c, name);
    assert_int_equal(l->err, AT_ERR_UNSUPPORTED);
    assert_string_equal(l->skip, reason);
    assert_string_equal(l->error, reason);
    assert_null(l->tensor.data);
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
    static const struct {
        const char *name, *type, *key;
        int numel, offset, rows, cols, s0, s1;
    } t[] = {
        {"a.weight", "FloatStorage", "0", 24, 0, 4, 6, 6, 1},
        {"b.weight", "FloatStorage", "0", 24, 0, 6, 4, 1, 6},
        {"a.bias", "FloatStorage", "0", 24, 0, 4, 6, 6, 1},
        {"tied.weight", "FloatStorage", "0", 24, 0, 4, 6, 6, 1},
        {"d.weight", "DoubleStorage", "1", 6, 0, 2, 3, 3, 1},
        {"q.weight", "CharStorage", "2", 6, 0, 3, 2, 2, 1},
    };
    pk p;
    pk_begin(&p);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        pk_str(&p, t[i].name);
        pk_tensor(&p, t[i].type, t[i].key, t[i].numel, t[i].offset, t[i].rows, t[i].cols, t[i].s0,
                  t[i].s1);
    }
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
        assert_skipped(c, "tied.weight", "tied: the same storage as a.weight, analysed once");
        assert_floats(c, "d.weight", dn, 6);
        assert_skipped(c, "q.weight", "dtype int8: not floating point");
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
    assert_layer_error(c, "size.weight", AT_ERR_SIZE,
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
    assert_layer_error(
        c, "past.weight", AT_ERR_SIZE,
        "view at offset 4 with shape 4x6 runs past its storage data/0 (24 elements)");
    assert_layer_error(c, "gone.weight", AT_ERR_FORMAT,
                       "archive/data/7 is missing from the archive");
    at_ckpt_close(c);
    /* an entry name too long for the message loses its middle, not what is wrong */
    char dir[301];
    memset(dir, 'd', sizeof dir - 1);
    dir[sizeof dir - 1] = '\0';
    pk_begin(&p);
    pk_str(&p, "long.weight");
    pk_tensor(&p, "FloatStorage", "7", 24, 0, 4, 6, 6, 1);
    pk_op(&p, "u.");
    write_torch_in(path, dir, &p, 1, keys, data, sizes, 0);
    c = open_ok(path, NULL);
    assert_layer_error(c, "long.weight", AT_ERR_FORMAT, "ddd...ddd");
    assert_layer_error(c, "long.weight", AT_ERR_FORMAT, "d/data/7 is missing from the archive");
    assert_true(strlen(layer_named(c, "long.weight")->error) > 150);
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
        assert_file_error(path, NULL, bad[i].err, bad[i].needle);
    }

    /* File errors: the archive. */
    pk_begin(&p);
    pk_op(&p, "u.");
    write_torch(path, &p, 1, keys, data, sizes, 0);
    size_t n;
    char *whole = at_test_slurp(path, &n);
    tf_write_bytes(path, whole, n / 2);
    assert_file_error(path, NULL, AT_ERR_FORMAT, "damaged or truncated zip archive");
    free(whole);
    const char *junk_names[] = {"notes.txt"};
    const void *junk_data[] = {"hello"};
    const size_t junk_size[] = {5};
    unsigned char *zip = at_fuzz_zip(1, junk_names, junk_data, junk_size, 0, &n);
    tf_write_bytes(path, zip, n);
    free(zip);
    assert_file_error(path, NULL, AT_ERR_FORMAT, "neither a torch.save checkpoint");
    tf_write_bytes(path, "not a zip at all", 16);
    assert_file_error(path, NULL, AT_ERR_FORMAT, "not a zip archive");
    static const unsigned char legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                           0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
    tf_write_bytes(path, legacy, sizeof legacy);
    assert_file_error(path, NULL, AT_ERR_UNSUPPORTED, "torch.save before torch 1.6");
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
            assert_skipped(c, pos ? "arr_3" : "q.weight", "dtype int32: not floating point");
            assert_layer_error(c, pos ? "arr_4" : "short.weight", AT_ERR_SIZE,
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
    assert_file_error(dir, NULL, AT_ERR_NOTFOUND, "no checkpoint files in");
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
    assert_file_error(dir, NULL, AT_ERR_ARG,
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
    assert_layer_error(c, "lost.weight", AT_ERR_NOTFOUND,
                       "the index puts it in shard model-00001-of-00002.safetensors, which does "
                       "not hold it");
    at_ckpt_close(c);
    write_text(path, "{\"weight_map\": {\"h.0.weight\": \"model-00003-of-00003.safetensors\"}}");
    assert_file_error(dir, NULL, AT_ERR_NOTFOUND,
                      "shard model-00003-of-00003.safetensors: no such file");
    write_text(path, "{\"weight_map\": {\"h.0.weight\": \"../model.safetensors\"}}");
    assert_file_error(dir, NULL, AT_ERR_FORMAT,
                      "is not a shard file name in the index's directory");
    write_text(path, "{\"weight_map\": {\"h.0.weight\": \"model-00001");
    assert_file_error(dir, NULL, AT_ERR_FORMAT, "index is not valid JSON (truncated?)");
    write_text(path, "{\"metadata\": {}}");
    assert_file_error(path, NULL, AT_ERR_FORMAT, "not a checkpoint index: no weight_map object");
    free(a);
    free(b);
    free(e);
}

/* The layer behind a view: its shape, dtype and bytes. */
static void assert_view(const at_ckpt_layer *l, const at_ckpt_loc *loc, const void *want,
                        size_t bytes, int zero)
{
    char err[256];
    int status = 1;
    at_ckpt_view *v = at_ckpt_view_open(&l->tensor, loc, &status, err, sizeof err);
    if (!v)
        fail_msg("%s: %s", l->name, err);
    assert_int_equal(status, AT_OK);
    assert_int_equal(at_ckpt_view_is_zero(v), zero);
    const at_tensor *t = at_ckpt_view_tensor(v);
    assert_non_null(t);
    assert_int_equal(t->ndim, l->tensor.ndim);
    assert_int_equal(t->dtype, l->tensor.dtype);
    assert_int_equal(numel(t) * at_dtype_size(t->dtype), bytes);
    assert_memory_equal(t->data, want, bytes);
    assert_ptr_equal(at_ckpt_view_tensor(v), t);
    at_ckpt_view_close(v);
}

/* A lazy checkpoint copies nothing at open: each layer says where its elements are (the file and
 * offset, or memory), and a view reads them from there -- from the file on its own or from the
 * checkpoint's memory alike -- converting only F64, misaligned and non-C-order layers. */
static void test_lazy_views(void **state)
{
    (void)state;
    double d[20];
    float dn[20], *lin = tf_gauss(6 * 5, 31, 1.0), z32[12] = {0};
    uint16_t zbf[12];
    for (int i = 0; i < 20; i++) {
        d[i] = 1.0 / (i + 3.0) - 0.1;
        dn[i] = (float)d[i];
    }
    for (int i = 0; i < 12; i++)
        zbf[i] = i % 2 ? 0x8000 : 0; /* +0 and -0 */
    z32[7] = NAN;
    const tf_tensor t[] = {
        {"d.weight", "F64", 2, {5, 4}, d, sizeof d, 0, 0},
        {"lin.weight", "F32", 2, {6, 5}, lin, sizeof(float) * 30, 0, 0},
        {"zero.weight", "BF16", 2, {3, 4}, zbf, sizeof zbf, 0, 0},
        {"nan.weight", "F32", 2, {3, 4}, z32, sizeof z32, 0, 0},
    };
    at_ckpt_opts lazy = {.lazy = 1};
    for (int align = 1; align <= 8; align += 7) {
        const char *path = tf_path("lazy.safetensors");
        tf_write_safetensors(path, t, 4, align, 0);
        at_ckpt *eager = open_ok(path, NULL), *c = open_ok(path, &lazy);
        assert_floats(eager, "d.weight", dn, 20);
        const at_ckpt_layer *l = layer_named(c, "d.weight");
        assert_null(l->tensor.data);
        assert_int_equal(l->err, AT_OK);
        assert_int_equal(l->tensor.dtype, AT_DTYPE_F32);
        assert_int_equal(l->loc.stored, AT_CKPT_STORED_F64);
        assert_string_equal(l->loc.file, path);
        assert_int_equal(l->loc.stride[0], 4);
        assert_int_equal(l->loc.stride[1], 1);
        /* The offset names the stored bytes in the file itself. */
        size_t n;
        char *bytes = at_test_slurp(path, &n);
        assert_memory_equal(bytes + l->loc.offset, d, sizeof d);
        free(bytes);
        at_ckpt_loc mem = l->loc;
        mem.file = NULL;
        assert_view(l, &l->loc, dn, sizeof dn, 0);
        assert_view(l, &mem, dn, sizeof dn, 0);
        /* F32 is read as stored when aligned, copied when the data section is misaligned. */
        l = layer_named(c, "lin.weight");
        assert_true(align == 1 ? l->tensor.data == NULL : l->tensor.data != NULL);
        assert_view(l, &l->loc, lin, sizeof(float) * 30, 0);
        l = layer_named(c, "zero.weight");
        assert_view(l, &l->loc, zbf, sizeof zbf, 1);
        l = layer_named(c, "nan.weight");
        assert_view(l, &l->loc, z32, sizeof z32, 0);
        at_ckpt_close(eager);
        /* A file cut short after it was opened is a clear error, not a crash. */
        assert_int_equal(truncate(path, 200), 0);
        char err[256];
        int status = 0;
        l = layer_named(c, "nan.weight");
        assert_null(at_ckpt_view_open(&l->tensor, &l->loc, &status, err, sizeof err));
        assert_int_equal(status, AT_ERR_SIZE);
        assert_non_null(strstr(err, "run past the end of the file (200 bytes)"));
        at_ckpt_close(c);
    }
    /* Fortran order is read into C order; a relative path is located by its absolute path. */
    float fw[30];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 5; j++)
            fw[i + 6 * j] = lin[i * 5 + j];
    char dir[600], cwd[4096];
    snprintf(dir, sizeof dir, "%s", tf_path("f.npy"));
    tf_write_npy(dir, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (6, 5), }", fw,
                 sizeof fw);
    *strrchr(dir, '/') = '\0';
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    at_ckpt *c = open_ok("f.npy", &lazy);
    assert_int_equal(chdir(cwd), 0);
    const at_ckpt_layer *l = layer_named(c, "f");
    assert_null(l->tensor.data);
    assert_string_equal(l->loc.file, tf_path("f.npy"));
    assert_view(l, &l->loc, lin, sizeof(float) * 30, 0);
    at_ckpt_close(c);
    /* A deflated npz entry lives in memory only. */
    size_t n;
    char *npy = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6, 5), }", lin,
                          sizeof(float) * 30, &n);
    const char *names[] = {"w.weight.npy"};
    const void *data[] = {npy};
    size_t zn;
    unsigned char *zip = at_fuzz_zip(1, names, data, &n, 1, &zn);
    tf_write_bytes(tf_path("d.npz"), zip, zn);
    c = open_ok(tf_path("d.npz"), &lazy);
    l = layer_named(c, "w.weight");
    assert_null(l->loc.file);
    assert_non_null(l->loc.mem);
    assert_view(l, &l->loc, lin, sizeof(float) * 30, 0);
    /* No location at all. */
    at_ckpt_loc none = l->loc;
    none.mem = NULL;
    int status = 0;
    char err[128];
    assert_null(at_ckpt_view_open(&l->tensor, &none, &status, err, sizeof err));
    assert_int_equal(status, AT_ERR_ARG);
    at_ckpt_close(c);
    free(zip);
    free(npy);
    free(lin);
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
    time_t t0 = time(NULL);
    assert_file_error(fifo, &o, AT_ERR_TIMEOUT, "FIFO: nothing written within 200 ms");
    assert_true(time(NULL) - t0 < 5);

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
            assert_file_error(fifo, &o, AT_ERR_SIZE, "more than 100 bytes from a pipe");
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

/* A non-float tensor is named by numpy's dtype name in every format ("int8", not safetensors'
 * "I8" or npy's "|i1"), in the words and order of alphatop.layers: a 1-D one is "1-D" first,
 * a 2-D one is its dtype whatever its name, and is counted as "not a layer" unless its name
 * makes it a layer (an int8 quantised "*weight"). */
static void test_nonfloat_dtypes(void **state)
{
    (void)state;
    int64_t ids[12] = {0};
    uint8_t mask[12] = {0};
    const tf_tensor t[] = {{"position_ids", "I64", 2, {1, 12}, ids, sizeof ids, 0, 0},
                           {"steps", "I64", 1, {12}, ids, sizeof ids, 0, 0},
                           {"q.weight", "I8", 2, {3, 4}, mask, sizeof mask, 0, 0},
                           {"keep", "BOOL", 2, {3, 4}, mask, sizeof mask, 0, 0},
                           {"f8.weight", "F8_E4M3", 2, {3, 4}, mask, sizeof mask, 0, 0}};
    const char *path = tf_path("ints.safetensors");
    tf_write_safetensors(path, t, 5, 8, 0);
    regex_t all;
    assert_int_equal(regcomp(&all, ".", REG_EXTENDED | REG_NOSUB), 0);
    at_ckpt_opts o = {.all_tensors = 1, .select = &all};
    at_ckpt *c = open_ok(path, &o);
    assert_int_equal(at_ckpt_count(c), 5);
    assert_skipped(c, "position_ids", "dtype int64: not floating point");
    assert_skipped(c, "steps", "1-D: not a matrix");
    assert_skipped(c, "q.weight", "dtype int8: not floating point");
    assert_skipped(c, "keep", "dtype bool: not floating point");
    assert_skipped(c, "f8.weight", "dtype float8_e4m3fn: not floating point");
    assert_int_equal(layer_named(c, "q.weight")->not_layer, 0);
    assert_int_equal(layer_named(c, "steps")->not_layer, 1);
    /* Selected by any regex, still never a layer. */
    assert_int_equal(layer_named(c, "position_ids")->candidate, 0);
    at_ckpt_close(c);
    o.select = NULL;
    c = open_ok(path, &o);
    assert_int_equal(layer_named(c, "position_ids")->not_layer, 1);
    at_ckpt_close(c);
    regfree(&all);
    path = tf_path("ids.npy");
    tf_write_npy(path, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4), }", mask,
                 sizeof mask);
    c = open_ok(path, NULL);
    assert_skipped(c, "ids", "dtype uint8: not floating point");
    at_ckpt_close(c);
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
    assert_skipped(c, "q.weight", "dtype int8: not floating point");
    assert_skipped(c, "tied.weight", "tied: the same storage as a.weight, analysed once");
    at_ckpt_close(c);
    path = tf_path("array.dat");
    tf_write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 4), }", w,
                 sizeof(float) * 20);
    assert_int_equal(at_ckpt_format_of(path), AT_CKPT_NPY);
    c = open_ok(path, NULL);
    assert_floats(c, "array", w, 20);
    at_ckpt_close(c);
    /* Raw float32 that happens to start like JSON or safetensors: '{', a 0.0, '{' again. */
    unsigned char raw[4 * 20] = {'{', 0x10, 0x20, 0x3f, 0, 0, 0, 0, '{', 0x10, 0x20, 0x3f};
    path = tf_path("raw.f32");
    tf_write_bytes(path, raw, sizeof raw);
    assert_int_equal(at_ckpt_format_of(path), AT_CKPT_RAW);
    at_ckpt_opts o = {.raw_ndim = 2, .raw_shape = {5, 4}};
    c = open_ok(path, &o);
    assert_layer_ok(c, "raw", raw, sizeof raw);
    at_ckpt_close(c);
    assert_int_equal(at_ckpt_format_of(tf_path("nothing.pt")), AT_CKPT_MISSING);
    assert_file_error(tf_path("nothing.pt"), NULL, AT_ERR_NOTFOUND, "no such file");
    assert_int_equal(at_ckpt_format_of("-"), AT_CKPT_STREAM);
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
        cmocka_unit_test(test_torch_state_dict),
        cmocka_unit_test(test_torch_bad),
        cmocka_unit_test(test_npz),
        cmocka_unit_test(test_directories),
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_lazy_views),
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_sniffing),
        cmocka_unit_test(test_nonfloat_dtypes),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return failed;
}
