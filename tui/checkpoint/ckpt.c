/* SPDX-License-Identifier: Apache-2.0 */
/* ckpt.c -- the checkpoint object: format detection, the layer helpers every reader uses, raw
 * float32 files, tied weights and overlaps (see ckpt.h, ckpt_int.h). */
#include "ckpt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_int.h"

size_t at_dtype_size(at_dtype dtype)
{
    return dtype == AT_DTYPE_F32 ? 4 : 2;
}

const char *at_dtype_name(at_dtype dtype)
{
    switch (dtype) {
    case AT_DTYPE_F32:
        return "F32";
    case AT_DTYPE_F16:
        return "F16";
    case AT_DTYPE_BF16:
        return "BF16";
    }
    return "F32";
}

size_t ckpt_type_size(ckpt_type t)
{
    static const size_t size[] = {[CKPT_F32] = 4, [CKPT_F16] = 2, [CKPT_BF16] = 2, [CKPT_F64] = 8};
    return t < CKPT_OTHER ? size[t] : 0;
}

int ckpt_fail(at_ckpt *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    c->status = status;
    return status;
}

int ckpt_keep(at_ckpt *c, void *buf)
{
    void **k = realloc(c->kept, (c->nkept + 1) * sizeof *k);
    if (!k) {
        free(buf);
        return ckpt_fail(c, AT_ERR_NOMEM, "out of memory");
    }
    c->kept = k;
    c->kept[c->nkept++] = buf;
    return AT_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int is_selected(const at_ckpt *c, const char *name)
{
    return c->opts.select && regexec(c->opts.select, name, 0, NULL, 0) == 0;
}

int ckpt_is_layer(const at_ckpt *c, const char *name)
{
    return ends_with(name, "weight") || ends_with(name, "kernel") || is_selected(c, name);
}

ckpt_layer *ckpt_layer_add(at_ckpt *c, const char *name)
{
    if (c->count == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        ckpt_layer *n = realloc(c->layers, cap * sizeof *n);
        if (!n) {
            ckpt_fail(c, AT_ERR_NOMEM, "out of memory");
            return NULL;
        }
        c->layers = n;
        c->cap = cap;
    }
    ckpt_layer *l = &c->layers[c->count];
    memset(l, 0, sizeof *l);
    if (!(l->name = strdup(name))) {
        ckpt_fail(c, AT_ERR_NOMEM, "out of memory");
        return NULL;
    }
    l->order = ckpt_index_order(c, name);
    l->named = ends_with(name, "weight") || ends_with(name, "kernel");
    l->selected = is_selected(c, name);
    c->count++;
    l->pub.name = l->name;
    l->pub.error = "";
    l->pub.skip = "";
    return l;
}

static int layer_message(ckpt_layer *l, int err, int skip, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    free(l->error);
    l->error = strdup(buf);
    l->pub.error = l->error ? l->error : "out of memory";
    l->pub.skip = skip ? l->pub.error : "";
    l->pub.err = err;
    l->pub.tensor.data = NULL;
    return skip ? AT_OK : err;
}

int ckpt_layer_fail(ckpt_layer *l, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = layer_message(l, err, 0, fmt, ap);
    va_end(ap);
    return rc;
}

int ckpt_layer_skip(ckpt_layer *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = layer_message(l, AT_ERR_UNSUPPORTED, 1, fmt, ap);
    va_end(ap);
    return rc;
}

char *at_shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? "x" : "", (long long)shape[i]);
    return buf;
}

/* Element count of a shape, or -1 when a dimension is out of range or the product overflows. */
static int64_t shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || shape[i] > CKPT_MAX_DIM || __builtin_mul_overflow(n, shape[i], &n))
            return -1;
    }
    return n;
}

/* Why a tensor of ndim dims, of dtype nonfloat (NULL: a float type) is not a layer (ckpt.h's
 * rules; chosen: selected, or the file's single array) into why (n bytes), or 0 when it is one.
 * The texts, and which comes first, are alphatop.layers' for a state dict too. */
static int not_a_layer(const ckpt_layer *l, int ndim, const char *nonfloat, int chosen, char *why,
                       size_t n)
{
    const char *last = strrchr(l->name, '.');
    const int bias = strstr(last ? last + 1 : l->name, "bias") != NULL;
    if (ndim < 2)
        snprintf(why, n, "%s: not a matrix", bias ? "bias" : ndim ? "1-D" : "0-D");
    else if (nonfloat)
        snprintf(why, n, "dtype %s: not floating point", nonfloat);
    else if (bias && !l->named && !l->single)
        /* GPT-2's attn.bias is a 4-D causal mask: no --layers makes it a layer. */
        snprintf(why, n, "bias: not a weight (a bias, or a buffer such as an attention mask)");
    else if (!l->named && !chosen)
        snprintf(why, n,
                 "unrecognised: the name ends in neither 'weight' nor 'kernel' (select "
                 "it with scan --layers, or layers= in Python)");
    else if (ndim == 3 && !chosen)
        snprintf(why, n,
                 "3-D: a Conv1d weight (out, in, k) is analysed when selected (scan "
                 "--layers, or layers= in Python)");
    else if (ndim > 4)
        snprintf(why, n, "%d-D: a file's tensors of 2 to 4 dimensions are analysed", ndim);
    else
        return 0;
    return 1;
}

/* The view of a stored shape (ckpt.h): axis[d] is the stored dim of view dim d, -1 for an
 * inserted 1. A Conv1d weight (out, in, k) is the conv2d (out, in, 1, k); a Flax kernel (name
 * "*kernel") stores its in and out dims last: a conv kernel (kh, kw, in, out) or (k, in, out)
 * is turned to PyTorch's order, a dense kernel (in, out) kept (its transpose has its
 * spectrum). */
static int view_axes(const ckpt_layer *l, int ndim, int axis[4])
{
    static const int torch3[4] = {0, 1, -1, 2}, flax3[4] = {2, 1, -1, 0}, flax4[4] = {3, 2, 0, 1};
    const int flax = ends_with(l->name, "kernel");
    const int *a = ndim == 3 ? (flax ? flax3 : torch3) : ndim == 4 && flax ? flax4 : NULL;
    for (int d = 0; d < 4; d++)
        axis[d] = a ? a[d] : d;
    return ndim == 2 ? 2 : 4;
}

int64_t ckpt_layer_shape(ckpt_layer *l, int ndim, const int64_t *shape, const char *nonfloat)
{
    char s[128], why[200];
    at_tensor *t = &l->pub.tensor;
    const int kept = ndim < AT_CKPT_MAX_NDIM ? ndim : AT_CKPT_MAX_NDIM;
    l->pub.stored_ndim = kept;
    memcpy(l->pub.stored_shape, shape, (size_t)kept * sizeof *shape);
    const int chosen = l->selected || l->single;
    l->pub.candidate = !not_a_layer(l, ndim, nonfloat, 1, why, sizeof why);
    if (not_a_layer(l, ndim, nonfloat, chosen, why, sizeof why)) {
        ckpt_layer_skip(l, "%s", why);
        /* An integer "*weight" (int8 quantised) is a layer not analysed: listed, not counted. */
        l->pub.not_layer = !l->single && !(nonfloat && ndim >= 2 && (l->named || chosen));
        return AT_ERR_UNSUPPORTED;
    }
    t->ndim = view_axes(l, ndim, l->axis);
    for (int i = 0; i < t->ndim; i++)
        t->shape[i] = l->axis[i] < 0 ? 1 : shape[l->axis[i]];
    at_shape_str(s, sizeof s, ndim, shape);
    t->kind = t->ndim == 2 ? AT_KIND_LINEAR : AT_KIND_CONV2D;
    int64_t numel = shape_numel(ndim, shape);
    if (numel < 0)
        return ckpt_layer_fail(l, AT_ERR_FORMAT, "absurd shape %s", s);
    if (numel == 0)
        return ckpt_layer_fail(l, AT_ERR_EMPTY, "empty tensor (shape %s)", s);
    if (numel > (int64_t)(SIZE_MAX / 8))
        return ckpt_layer_fail(l, AT_ERR_SIZE, "shape %s is too large to address", s);
    return numel;
}

int ckpt_layer_data(ckpt_layer *l, ckpt_type t, const unsigned char *first, const int64_t *stride)
{
    at_tensor *T = &l->pub.tensor;
    const int sndim = l->pub.stored_ndim;
    int64_t sstride[AT_CKPT_MAX_NDIM], numel = 1;
    for (int d = sndim - 1; d >= 0; d--) {
        sstride[d] = stride ? stride[d] : numel;
        numel *= l->pub.stored_shape[d];
    }
    /* An inserted dim of size 1 takes the stride C order would give it: a contiguous tensor
     * stays readable in place. */
    for (int d = T->ndim - 1; d >= 0; d--)
        l->stride[d] = l->axis[d] >= 0   ? sstride[l->axis[d]]
                       : d + 1 < T->ndim ? l->stride[d + 1] * T->shape[d + 1]
                                         : 1;
    l->type = t;
    l->origin = first;
    l->bytes = (size_t)numel * ckpt_type_size(t);
    T->dtype = t == CKPT_F16 ? AT_DTYPE_F16 : t == CKPT_BF16 ? AT_DTYPE_BF16 : AT_DTYPE_F32;
    /* Otherwise the layer is copied when the checkpoint is finished, or read by a view (lazy). */
    T->data = ckpt_direct(t, T->ndim, T->shape, l->stride, first) ? first : NULL;
    return AT_OK;
}

void ckpt_file_layer_name(const char *path, char *name, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(name, n, "%s", strcmp(path, "-") ? base : "stdin");
    char *dot = strrchr(name, '.');
    if (dot && dot != name)
        *dot = '\0';
}

static int read_raw(at_ckpt *c, const unsigned char *p, size_t n, const char *path)
{
    const at_ckpt_opts *o = &c->opts;
    if (o->raw_ndim != 2 && o->raw_ndim != 4)
        return ckpt_fail(c, AT_ERR_ARG,
                         "not a recognised checkpoint (safetensors, torch.save zip, .npy, .npz, "
                         "index JSON); to read it as raw float32 give --shape ROWSxCOLS");
    char name[256];
    ckpt_file_layer_name(path, name, sizeof name);
    ckpt_layer *l = ckpt_layer_add(c, name);
    if (!l)
        return c->status;
    l->single = 1;
    int64_t numel = ckpt_layer_shape(l, o->raw_ndim, o->raw_shape, NULL);
    if (numel < 0)
        return AT_OK;
    if ((uint64_t)numel * 4 != n) {
        char s[128];
        at_shape_str(s, sizeof s, o->raw_ndim, o->raw_shape);
        ckpt_layer_fail(l, AT_ERR_SIZE, "file has %zu bytes but shape %s of float32 needs %lld", n,
                        s, (long long)numel * 4);
        return AT_OK;
    }
    ckpt_layer_data(l, CKPT_F32, p, NULL);
    return AT_OK;
}

/* torch.save's archive (NAME/data.pkl) or numpy's .npz (NAME.npy entries). */
static int read_zip(at_ckpt *c, const unsigned char *p, size_t n, const char *path)
{
    char err[256];
    int status;
    size_t lim = c->opts.inflate_max ? c->opts.inflate_max : c->opts.stream_max;
    at_zip *z = at_zip_open(p, n, lim, &status, err, sizeof err);
    if (!z)
        return ckpt_fail(c, status, "%s: %s",
                         n >= 4 && !memcmp(p, "PK\3\4", 4) ? "damaged or truncated zip archive"
                                                           : "not a zip archive",
                         err);
    int torch = 0, npy = 0;
    for (size_t i = 0; i < at_zip_count(z); i++) {
        const char *e = at_zip_name(z, i), *slash = strchr(e, '/');
        size_t len = strlen(e);
        torch |= slash && !strcmp(slash, "/data.pkl");
        npy |= len > 4 && !strcmp(e + len - 4, ".npy");
    }
    int rc;
    if (torch)
        rc = ckpt_read_torch(c, z, path);
    else if (npy)
        rc = ckpt_read_npz(c, z);
    else
        rc = ckpt_fail(c, AT_ERR_FORMAT,
                       "a zip archive with neither a torch.save checkpoint (NAME/data.pkl) nor "
                       "numpy arrays (.npy entries)");
    at_zip_free(z);
    return rc;
}

static int has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), k = strlen(ext);
    return n > k && !strcmp(path + n - k, ext);
}

/* torch.save's legacy (pre-1.6) files start with a pickled magic number. */
static const unsigned char torch_legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                                   0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

/* The format of p[0..n) by its first bytes; AT_CKPT_RAW when none matches. */
static at_ckpt_format sniff(const unsigned char *p, size_t n)
{
    if (n >= 6 && !memcmp(p, "\x93NUMPY", 6))
        return AT_CKPT_NPY;
    if (n >= 4 && (!memcmp(p, "PK\3\4", 4) || !memcmp(p, "PK\5\6", 4)))
        return AT_CKPT_ZIP;
    /* safetensors: a little-endian u64 header length (below 4 GiB), then the JSON's '{"'
     * (or '{}'). Raw float32 rarely starts so: its second float would have to be 0.0. */
    if (n >= 10 && p[8] == '{' && (p[9] == '"' || p[9] == '}' || p[9] == ' ') && !p[4] && !p[5] &&
        !p[6] && !p[7])
        return AT_CKPT_SAFETENSORS;
    if ((n >= sizeof torch_legacy_magic &&
         !memcmp(p, torch_legacy_magic, sizeof torch_legacy_magic)) ||
        (n >= 3 && p[0] == 0x80 && p[1] >= 4 && p[1] <= 5 && p[2] == 0x95))
        return AT_CKPT_PICKLE;
    /* JSON: '{' after white space, and text (raw float32 is not) in the first bytes. */
    size_t i = 0, text = 1;
    for (size_t k = 0; k < n && k < 64; k++)
        text &= (p[k] >= 0x20 && p[k] < 0x7f) || p[k] == '\n' || p[k] == '\r' || p[k] == '\t';
    while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
        i++;
    return text && i < n && p[i] == '{' ? AT_CKPT_INDEX : AT_CKPT_RAW;
}

/* The reader for content sniff() did not recognise: the one the extension names (so its own
 * error says what is wrong), else raw float32. */
static at_ckpt_format by_extension(const char *path)
{
    if (has_ext(path, ".safetensors"))
        return AT_CKPT_SAFETENSORS;
    if (has_ext(path, ".npy"))
        return AT_CKPT_NPY;
    if (has_ext(path, ".pt") || has_ext(path, ".pth") || has_ext(path, ".npz"))
        return AT_CKPT_ZIP;
    if (has_ext(path, ".json"))
        return AT_CKPT_INDEX;
    return AT_CKPT_RAW;
}

static at_ckpt_format format_of_bytes(const unsigned char *p, size_t n, const char *path)
{
    at_ckpt_format f = sniff(p, n);
    return f == AT_CKPT_RAW ? by_extension(path) : f;
}

at_ckpt_format at_ckpt_format_of(const char *path)
{
    struct stat st;
    if (!strcmp(path, "-"))
        return AT_CKPT_STREAM;
    if (stat(path, &st) < 0)
        return AT_CKPT_MISSING;
    if (S_ISDIR(st.st_mode))
        return AT_CKPT_DIR;
    if (!S_ISREG(st.st_mode))
        return AT_CKPT_STREAM;
    unsigned char head[16];
    FILE *f = fopen(path, "rb");
    if (!f)
        return AT_CKPT_MISSING;
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    return format_of_bytes(head, n, path);
}

int ckpt_read(at_ckpt *c, const unsigned char *p, size_t n, const char *path, const char *dir)
{
    char name[256];
    switch (format_of_bytes(p, n, path)) {
    case AT_CKPT_SAFETENSORS:
        return ckpt_read_safetensors(c, p, n);
    case AT_CKPT_NPY:
        ckpt_file_layer_name(path, name, sizeof name);
        return ckpt_read_npy(c, p, n, name);
    case AT_CKPT_ZIP:
        return read_zip(c, p, n, path);
    case AT_CKPT_INDEX:
        return ckpt_read_index(c, p, n, dir);
    case AT_CKPT_PICKLE:
        return ckpt_fail(c, AT_ERR_UNSUPPORTED,
                         "a bare pickle (torch.save before torch 1.6, or "
                         "_use_new_zipfile_serialization=False) is not read: unpickling can run "
                         "code; save it again with torch >= 1.6");
    default:
        return read_raw(c, p, n, path);
    }
}

int ckpt_open_path(at_ckpt *c, const char *path)
{
    struct stat st;
    if (strcmp(path, "-") && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return ckpt_open_dir(c, path);
    const unsigned char *p;
    size_t n;
    int rc = ckpt_load(c, path, &p, &n);
    if (rc < 0)
        return rc;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path + (slash == path)), path);
    else
        snprintf(dir, sizeof dir, ".");
    return ckpt_read(c, p, n, path, dir);
}

static int by_order(const void *a, const void *b)
{
    size_t x = ((const ckpt_layer *)a)->order, y = ((const ckpt_layer *)b)->order;
    return x < y ? -1 : x > y;
}

static int same_view(const ckpt_layer *a, const ckpt_layer *b)
{
    const at_tensor *s = &a->pub.tensor, *t = &b->pub.tensor;
    if (a->origin != b->origin || s->dtype != t->dtype || s->ndim != t->ndim ||
        a->bytes != b->bytes)
        return 0;
    for (int d = 0; d < s->ndim; d++)
        if (s->shape[d] != t->shape[d] || a->stride[d] != b->stride[d])
            return 0;
    return 1;
}

/* A tensor stored once under two names (torch.save of tied weights: lm_head.weight and
 * wte.weight share a storage) is one layer: the later name is skipped, tied to the first.
 * Then, where tensors own their bytes (safetensors), any other sharing is a corrupt header
 * that could alias one weight into another: the later tensor fails. */
static void ties_and_overlaps(at_ckpt *c)
{
    for (size_t i = 0; i < c->count; i++) {
        ckpt_layer *a = &c->layers[i];
        for (size_t j = 0; a->pub.err == AT_OK && j < i; j++) {
            const ckpt_layer *b = &c->layers[j];
            if (b->pub.err == AT_OK && same_view(a, b)) {
                ckpt_layer_skip(a, "tied: the same storage as %s, analysed once", b->name);
                a->pub.candidate = 0;
            }
        }
    }
    for (size_t i = 0; i < c->count; i++) {
        ckpt_layer *a = &c->layers[i];
        for (size_t j = 0; a->exclusive && a->pub.err == AT_OK && j < i; j++) {
            const ckpt_layer *b = &c->layers[j];
            if (b->exclusive && b->pub.err == AT_OK && a->origin < b->origin + b->bytes &&
                b->origin < a->origin + a->bytes)
                ckpt_layer_fail(a, AT_ERR_FORMAT, "its bytes overlap tensor %s", b->name);
        }
    }
}

/* Says where each usable layer's elements are (the mapped file they lie in, if any) and, unless
 * the checkpoint is lazy, copies those the core cannot read as stored. */
static void locate_and_copy(at_ckpt *c)
{
    for (size_t i = 0; i < c->count; i++) {
        ckpt_layer *l = &c->layers[i];
        at_tensor *T = &l->pub.tensor;
        if (l->pub.err < 0)
            continue;
        at_ckpt_loc *loc = &l->pub.loc;
        loc->mem = l->origin;
        loc->stored = (at_ckpt_stored)l->type;
        memcpy(loc->stride, l->stride, sizeof loc->stride);
        for (size_t r = 0; r < c->nregions; r++) {
            const ckpt_region *g = &c->regions[r];
            const unsigned char *base = g->base;
            if (g->mapped && g->file && l->origin >= base && l->origin < base + g->size) {
                loc->file = g->file;
                loc->offset = (uint64_t)(l->origin - base);
            }
        }
        if (T->data || c->opts.lazy)
            continue;
        size_t numel = 1;
        for (int d = 0; d < T->ndim; d++)
            numel *= (size_t)T->shape[d];
        const size_t out = numel * at_dtype_size(T->dtype);
        if (!(l->owned = malloc(out))) {
            ckpt_layer_fail(l, AT_ERR_NOMEM, "out of memory copying %zu bytes", out);
            continue;
        }
        ckpt_gather(l->owned, l->origin, l->type, T->ndim, T->shape, l->stride);
        T->data = l->owned;
    }
}

/* A checkpoint object for path with opts' defaults filled in; NULL when out of memory. */
static at_ckpt *ckpt_new(const char *path, const at_ckpt_opts *opts)
{
    at_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->path = strdup(path ? path : "");
    if (!c->path) {
        free(c);
        return NULL;
    }
    if (opts)
        c->opts = *opts;
    if (!c->opts.stream_max)
        c->opts.stream_max = AT_CKPT_STREAM_MAX;
    if (!c->opts.fifo_wait_ms)
        c->opts.fifo_wait_ms = AT_CKPT_FIFO_WAIT_MS;
    return c;
}

/* Drops the records of tensors that are not layers (by name or shape), unless every tensor is
 * wanted. */
static void keep_layers(at_ckpt *c)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->count; i++) {
        ckpt_layer *l = &c->layers[i];
        if (c->opts.all_tensors || l->single || ((l->named || l->selected) && !l->pub.not_layer)) {
            c->layers[kept++] = *l;
            continue;
        }
        free(l->name);
        free(l->error);
        free(l->owned);
    }
    c->count = kept;
}

/* Puts the layers in the checkpoint's order, then marks ties and overlaps. */
static at_ckpt *ckpt_finish(at_ckpt *c)
{
    keep_layers(c);
    if (c->status == AT_OK && c->count) {
        qsort(c->layers, c->count, sizeof *c->layers, by_order);
        ties_and_overlaps(c);
        locate_and_copy(c);
    }
    return c;
}

at_ckpt *at_ckpt_open(const char *path, const at_ckpt_opts *opts)
{
    at_ckpt *c = ckpt_new(path, opts);
    if (c)
        ckpt_open_path(c, c->path);
    return c ? ckpt_finish(c) : NULL;
}

at_ckpt *ckpt_open_bytes(const void *p, size_t n, const char *name, const at_ckpt_opts *opts)
{
    at_ckpt *c = ckpt_new(name, opts);
    if (c)
        ckpt_read(c, p, n, c->path, ".");
    return c ? ckpt_finish(c) : NULL;
}

int at_ckpt_status(const at_ckpt *self)
{
    return self->status;
}

const char *at_ckpt_last_error(const at_ckpt *self)
{
    return self->error;
}

const char *at_ckpt_path(const at_ckpt *self)
{
    return self->path;
}

size_t at_ckpt_count(const at_ckpt *self)
{
    return self->status < 0 ? 0 : self->count;
}

const at_ckpt_layer *at_ckpt_layer_at(const at_ckpt *self, size_t i)
{
    return i < at_ckpt_count(self) ? &self->layers[i].pub : NULL;
}

const at_ckpt_layer *at_ckpt_find(const at_ckpt *self, const char *name)
{
    for (size_t i = 0; i < at_ckpt_count(self); i++)
        if (!strcmp(self->layers[i].name, name))
            return &self->layers[i].pub;
    return NULL;
}

void at_ckpt_close(at_ckpt *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++) {
        free(self->layers[i].name);
        free(self->layers[i].error);
        free(self->layers[i].owned);
    }
    free(self->layers);
    for (size_t i = 0; i < self->nkept; i++)
        free(self->kept[i]);
    free(self->kept);
    for (size_t i = 0; i < self->nregions; i++) {
        if (self->regions[i].mapped)
            munmap(self->regions[i].base, self->regions[i].size);
        else
            free(self->regions[i].base);
        free(self->regions[i].file);
    }
    free(self->regions);
    ckpt_index_free(self->index);
    free(self->path);
    free(self);
}

int at_ckpt_parse_shape(const char *s, int64_t shape[4])
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v <= 0 || v > CKPT_MAX_DIM || n == 4 || *p == '+' || *p == ' ')
            return -1;
        shape[n++] = v;
        p = end;
        if (*p == 'x' || *p == 'X' || *p == ',') {
            p++;
            if (!*p)
                return -1;
        } else if (*p) {
            return -1;
        }
    }
    return n == 2 || n == 4 ? n : -1;
}
