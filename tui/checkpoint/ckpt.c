/* ckpt.c -- checkpoint readers: safetensors, npy and raw float32 (see ckpt.h). */
#include "ckpt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The safetensors reference implementation refuses headers above 100 MB. */
#define AT_ST_MAX_HEADER (100u * 1024u * 1024u)
/* No dimension of a real weight tensor comes near this; larger values are corrupt headers. */
#define AT_MAX_DIM (INT64_C(1) << 40)

typedef struct layer_rec {
    at_ckpt_layer pub;
    char *name;
    char *error;
    void *owned;       /* aligned or C-order copy of the data, when the mapping could not be used */
    size_t begin, end; /* byte range inside the data section (safetensors overlap check) */
} layer_rec;

struct at_ckpt {
    char *path;
    int status;
    char error[512];
    void *map;
    size_t map_size;
    layer_rec *layers;
    size_t count, cap;
};

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

static int set_error(at_ckpt *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    c->status = status;
    return status;
}

static layer_rec *add_layer(at_ckpt *c, const char *name)
{
    if (c->count == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        layer_rec *n = realloc(c->layers, cap * sizeof *n);
        if (!n)
            return NULL;
        c->layers = n;
        c->cap = cap;
    }
    layer_rec *l = &c->layers[c->count];
    memset(l, 0, sizeof *l);
    l->name = strdup(name);
    if (!l->name)
        return NULL;
    c->count++;
    l->pub.name = l->name;
    l->pub.error = "";
    return l;
}

/* Marks a layer unusable with a message; returns err. Out of memory keeps a static message. */
static int layer_fail(layer_rec *l, int err, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(l->error);
    l->error = strdup(buf);
    l->pub.error = l->error ? l->error : "out of memory";
    l->pub.err = err;
    l->pub.tensor.data = NULL;
    return err;
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
        if (shape[i] < 0 || shape[i] > AT_MAX_DIM || __builtin_mul_overflow(n, shape[i], &n))
            return -1;
    }
    return n;
}

/* Points the layer at bytes [p, p+bytes) of the mapping, copying when p is misaligned for the
 * element type (the core reads whole floats; an unaligned float load is undefined). */
static int layer_attach(layer_rec *l, const unsigned char *p, size_t bytes)
{
    size_t esz = at_dtype_size(l->pub.tensor.dtype);
    if ((uintptr_t)p % esz) {
        l->owned = malloc(bytes ? bytes : 1);
        if (!l->owned)
            return layer_fail(l, AT_ERR_NOMEM, "out of memory copying %zu bytes", bytes);
        memcpy(l->owned, p, bytes);
        p = l->owned;
    }
    l->pub.tensor.data = p;
    return AT_OK;
}

/* Sets ndim/shape/kind; fails the layer when the shape cannot be a weight matrix. Returns the
 * element count or a negative status. */
static int64_t layer_shape(layer_rec *l, int ndim, const int64_t *shape)
{
    char s[128];
    at_tensor *t = &l->pub.tensor;
    t->ndim = ndim;
    for (int i = 0; i < ndim && i < 4; i++)
        t->shape[i] = shape[i];
    at_shape_str(s, sizeof s, ndim, shape);
    if (ndim != 2 && ndim != 4)
        return layer_fail(l, AT_ERR_UNSUPPORTED, "shape %s: need a 2-D or 4-D weight", s);
    t->kind = ndim == 2 ? AT_KIND_LINEAR : AT_KIND_CONV2D;
    int64_t numel = shape_numel(ndim, shape);
    if (numel < 0)
        return layer_fail(l, AT_ERR_FORMAT, "absurd shape %s", s);
    if (numel == 0)
        return layer_fail(l, AT_ERR_EMPTY, "empty tensor (shape %s)", s);
    if (numel > (int64_t)(SIZE_MAX / 4))
        return layer_fail(l, AT_ERR_SIZE, "shape %s is too large to address", s);
    return numel;
}

static int map_file(at_ckpt *c)
{
    int fd = open(c->path, O_RDONLY);
    if (fd < 0)
        return set_error(c, AT_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return set_error(c, AT_ERR_IO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return set_error(c, AT_ERR_IO, "not a regular file");
    }
    c->map_size = (size_t)st.st_size;
    if (c->map_size == 0) {
        close(fd);
        return set_error(c, AT_ERR_SIZE, "empty file (0 bytes)");
    }
    void *m = mmap(NULL, c->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED)
        return set_error(c, AT_ERR_IO, "cannot map: %s", strerror(e));
    c->map = m;
    return AT_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int json_uint(const cJSON *j, int64_t *out)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || floor(v) != v)
        return 0;
    *out = (int64_t)v;
    return 1;
}

static int st_dtype(const char *s, at_dtype *out)
{
    static const struct {
        const char *name;
        at_dtype dtype;
    } known[] = {{"F32", AT_DTYPE_F32}, {"F16", AT_DTYPE_F16}, {"BF16", AT_DTYPE_BF16}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(s, known[i].name)) {
            *out = known[i].dtype;
            return 1;
        }
    return 0;
}

/* Fills one safetensors layer from its header entry; problems fail the layer only. */
static int st_layer(layer_rec *l, const cJSON *entry, const unsigned char *data, size_t data_size)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    int64_t shape[4], b, e;
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return layer_fail(l, AT_ERR_FORMAT, "header entry lacks dtype, shape or data_offsets");
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > 4)
        return layer_fail(l, AT_ERR_UNSUPPORTED, "%d-D tensor: need a 2-D or 4-D weight", ndim);
    for (int i = 0; i < ndim; i++)
        if (!json_uint(cJSON_GetArrayItem(sh, i), &shape[i]))
            return layer_fail(l, AT_ERR_FORMAT, "shape entry %d is not a non-negative integer", i);
    if (cJSON_GetArraySize(off) != 2 || !json_uint(cJSON_GetArrayItem(off, 0), &b) ||
        !json_uint(cJSON_GetArrayItem(off, 1), &e) || e < b)
        return layer_fail(l, AT_ERR_FORMAT, "data_offsets must be [begin, end] with begin <= end");
    l->begin = (size_t)b;
    l->end = (size_t)e;
    int known = st_dtype(dt->valuestring, &l->pub.tensor.dtype);
    int64_t numel = layer_shape(l, ndim, shape);
    if (numel < 0)
        return (int)numel;
    if (!known)
        return layer_fail(l, AT_ERR_UNSUPPORTED, "dtype %s not supported (F32, F16, BF16)",
                          dt->valuestring);
    char s[128];
    at_shape_str(s, sizeof s, ndim, shape);
    int64_t need = numel * (int64_t)at_dtype_size(l->pub.tensor.dtype);
    if (e - b != need)
        return layer_fail(l, AT_ERR_SIZE,
                          "data_offsets [%lld, %lld) hold %lld bytes but shape %s of %s needs %lld",
                          (long long)b, (long long)e, (long long)(e - b), s, dt->valuestring,
                          (long long)need);
    if ((uint64_t)e > data_size)
        return layer_fail(l, AT_ERR_SIZE,
                          "data_offsets [%lld, %lld) run past the end of the data (%zu bytes): "
                          "truncated file",
                          (long long)b, (long long)e, data_size);
    return layer_attach(l, data + b, (size_t)need);
}

/* Two usable tensors must not share bytes: a corrupt header could alias one weight into
 * another and make both look fine. The later one (in header order) is failed. */
static void st_check_overlaps(at_ckpt *c)
{
    for (size_t i = 0; i < c->count; i++) {
        layer_rec *a = &c->layers[i];
        if (a->pub.err < 0 || a->begin == a->end)
            continue;
        for (size_t j = 0; j < i; j++) {
            const layer_rec *p = &c->layers[j];
            if (p->pub.err < 0 || p->begin == p->end)
                continue;
            if (a->begin < p->end && p->begin < a->end) {
                layer_fail(a, AT_ERR_FORMAT, "data_offsets [%zu, %zu) overlap tensor %s [%zu, %zu)",
                           a->begin, a->end, p->name, p->begin, p->end);
                break;
            }
        }
    }
}

static int open_safetensors(at_ckpt *c)
{
    const unsigned char *p = c->map;
    if (c->map_size < 8)
        return set_error(c, AT_ERR_SIZE,
                         "truncated: %zu bytes, shorter than the 8-byte header length",
                         c->map_size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen > AT_ST_MAX_HEADER)
        return set_error(c, AT_ERR_FORMAT, "header length %llu is absurd (limit %u bytes)",
                         (unsigned long long)hlen, AT_ST_MAX_HEADER);
    if (hlen > c->map_size - 8)
        return set_error(c, AT_ERR_SIZE,
                         "truncated: header length %llu exceeds the %zu bytes after it",
                         (unsigned long long)hlen, c->map_size - 8);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return set_error(c, AT_ERR_FORMAT, "header is not a JSON object");
    }
    const unsigned char *data = p + 8 + hlen;
    size_t data_size = c->map_size - 8 - (size_t)hlen;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, root)
    {
        const char *name = entry->string;
        if (!name || !strcmp(name, "__metadata__") || !ends_with(name, "weight"))
            continue;
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(entry, "shape");
        int ndim = cJSON_IsArray(sh) ? cJSON_GetArraySize(sh) : -1;
        /* Only 2-D and 4-D weights are layers; 1-D norm weights and the like are not. */
        if (ndim >= 0 && ndim != 2 && ndim != 4)
            continue;
        layer_rec *l = add_layer(c, name);
        if (!l) {
            cJSON_Delete(root);
            return set_error(c, AT_ERR_NOMEM, "out of memory");
        }
        if (!cJSON_IsObject(entry))
            layer_fail(l, AT_ERR_FORMAT, "header entry is not an object");
        else
            st_layer(l, entry, data, data_size);
    }
    cJSON_Delete(root);
    st_check_overlaps(c);
    return AT_OK;
}

/* The name of a single-array file: its base name without the extension. */
static layer_rec *add_file_layer(at_ckpt *c)
{
    const char *base = strrchr(c->path, '/');
    base = base ? base + 1 : c->path;
    char name[256];
    snprintf(name, sizeof name, "%s", base);
    char *dot = strrchr(name, '.');
    if (dot && dot != name)
        *dot = '\0';
    return add_layer(c, name);
}

/* Copies a Fortran-order array into C order (same logical shape) owned by the layer. */
static int layer_from_fortran(layer_rec *l, const unsigned char *src, int64_t numel)
{
    const at_tensor *t = &l->pub.tensor;
    size_t esz = at_dtype_size(t->dtype);
    unsigned char *dst = malloc((size_t)numel * esz);
    if (!dst)
        return layer_fail(l, AT_ERR_NOMEM, "out of memory converting from Fortran order");
    int64_t idx[4] = {0, 0, 0, 0}, stride[4];
    stride[0] = 1;
    for (int d = 1; d < t->ndim; d++)
        stride[d] = stride[d - 1] * t->shape[d - 1];
    for (int64_t k = 0; k < numel; k++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++)
            off += idx[d] * stride[d];
        memcpy(dst + (size_t)k * esz, src + (size_t)off * esz, esz);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
    l->owned = dst;
    l->pub.tensor.data = dst;
    return AT_OK;
}

/* Finds 'key': in an npy header dict and returns a pointer just past the colon, or NULL. */
static const char *npy_value(const char *h, const char *key)
{
    char pat[32];
    for (int q = 0; q < 2; q++) {
        snprintf(pat, sizeof pat, q ? "\"%s\"" : "'%s'", key);
        const char *s = strstr(h, pat);
        if (s) {
            s += strlen(pat);
            while (*s == ' ')
                s++;
            if (*s == ':')
                return s + 1;
        }
    }
    return NULL;
}

static int npy_parse_header(at_ckpt *c, const char *h, at_dtype *dtype, int *fortran, int *ndim,
                            int64_t shape[4], char *descr, size_t descr_n)
{
    const char *d = npy_value(h, "descr"), *f = npy_value(h, "fortran_order");
    const char *s = npy_value(h, "shape");
    if (!d || !f || !s)
        return set_error(c, AT_ERR_FORMAT, "npy header lacks descr, fortran_order or shape");
    while (*d == ' ')
        d++;
    char q = *d;
    if (q != '\'' && q != '"')
        return set_error(c, AT_ERR_FORMAT, "npy descr is not a string");
    size_t n = 0;
    for (d++; *d && *d != q && n + 1 < descr_n; d++)
        descr[n++] = *d;
    descr[n] = '\0';
    if (!strcmp(descr, "<f4"))
        *dtype = AT_DTYPE_F32;
    else if (!strcmp(descr, "<f2"))
        *dtype = AT_DTYPE_F16;
    else
        return set_error(c, AT_ERR_UNSUPPORTED, "npy dtype '%s' not supported ('<f4', '<f2')",
                         descr);
    while (*f == ' ')
        f++;
    if (!strncmp(f, "True", 4))
        *fortran = 1;
    else if (!strncmp(f, "False", 5))
        *fortran = 0;
    else
        return set_error(c, AT_ERR_FORMAT, "npy fortran_order is neither True nor False");
    while (*s == ' ')
        s++;
    if (*s != '(')
        return set_error(c, AT_ERR_FORMAT, "npy shape is not a tuple");
    s++;
    *ndim = 0;
    for (;;) {
        while (*s == ' ' || *s == ',')
            s++;
        if (*s == ')')
            break;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0)
            return set_error(c, AT_ERR_FORMAT, "npy shape has a bad dimension");
        if (*ndim < 4)
            shape[*ndim] = v;
        (*ndim)++;
        s = end;
        while (*s == 'L' || *s == ' ')
            s++;
        if (*s != ',' && *s != ')')
            return set_error(c, AT_ERR_FORMAT, "npy shape is not a tuple of integers");
    }
    return AT_OK;
}

static int open_npy(at_ckpt *c)
{
    const unsigned char *p = c->map;
    if (c->map_size < 10 || memcmp(p, "\x93NUMPY", 6))
        return set_error(c, AT_ERR_FORMAT, "not an npy file (bad magic)");
    int major = p[6];
    size_t hstart, hlen;
    if (major == 1) {
        hstart = 10;
        hlen = (size_t)p[8] | (size_t)p[9] << 8;
    } else if (major == 2 || major == 3) {
        if (c->map_size < 12)
            return set_error(c, AT_ERR_SIZE, "truncated npy header");
        hstart = 12;
        hlen = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
    } else {
        return set_error(c, AT_ERR_UNSUPPORTED, "npy format version %d not supported", major);
    }
    if (hlen > c->map_size - hstart)
        return set_error(c, AT_ERR_SIZE, "truncated: npy header length %zu exceeds the file", hlen);
    char *h = malloc(hlen + 1);
    if (!h)
        return set_error(c, AT_ERR_NOMEM, "out of memory");
    memcpy(h, p + hstart, hlen);
    h[hlen] = '\0';
    at_dtype dtype = AT_DTYPE_F32;
    int fortran = 0, ndim = 0;
    int64_t shape[4] = {0, 0, 0, 0};
    char descr[32];
    int rc = npy_parse_header(c, h, &dtype, &fortran, &ndim, shape, descr, sizeof descr);
    free(h);
    if (rc < 0)
        return rc;
    layer_rec *l = add_file_layer(c);
    if (!l)
        return set_error(c, AT_ERR_NOMEM, "out of memory");
    l->pub.tensor.dtype = dtype;
    if (ndim > 4) {
        layer_fail(l, AT_ERR_UNSUPPORTED, "%d-D array: need a 2-D or 4-D weight", ndim);
        return AT_OK;
    }
    int64_t numel = layer_shape(l, ndim, shape);
    if (numel < 0)
        return AT_OK;
    size_t need = (size_t)numel * at_dtype_size(dtype), have = c->map_size - hstart - hlen;
    if (have < need) {
        char s[128];
        at_shape_str(s, sizeof s, ndim, shape);
        layer_fail(l, AT_ERR_SIZE, "truncated: shape %s of '%s' needs %zu bytes, file has %zu", s,
                   descr, need, have);
        return AT_OK;
    }
    const unsigned char *data = p + hstart + hlen;
    if (fortran)
        layer_from_fortran(l, data, numel);
    else
        layer_attach(l, data, need);
    return AT_OK;
}

static int open_raw(at_ckpt *c, const at_ckpt_opts *o)
{
    if (!o || (o->raw_ndim != 2 && o->raw_ndim != 4))
        return set_error(c, AT_ERR_ARG, "raw float32 file: give its shape with --shape ROWSxCOLS");
    layer_rec *l = add_file_layer(c);
    if (!l)
        return set_error(c, AT_ERR_NOMEM, "out of memory");
    l->pub.tensor.dtype = AT_DTYPE_F32;
    int64_t numel = layer_shape(l, o->raw_ndim, o->raw_shape);
    if (numel < 0)
        return AT_OK;
    if ((uint64_t)numel * 4 != c->map_size) {
        char s[128];
        at_shape_str(s, sizeof s, o->raw_ndim, o->raw_shape);
        layer_fail(l, AT_ERR_SIZE, "file has %zu bytes but shape %s of float32 needs %lld",
                   c->map_size, s, (long long)numel * 4);
        return AT_OK;
    }
    layer_attach(l, c->map, c->map_size);
    return AT_OK;
}

at_ckpt_format at_ckpt_format_of(const char *path)
{
    if (ends_with(path, ".safetensors"))
        return AT_CKPT_SAFETENSORS;
    if (ends_with(path, ".npy"))
        return AT_CKPT_NPY;
    return AT_CKPT_RAW;
}

at_ckpt *at_ckpt_open(const char *path, const at_ckpt_opts *opts)
{
    at_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->path = strdup(path ? path : "");
    if (!c->path) {
        free(c);
        return NULL;
    }
    if (map_file(c) < 0)
        return c;
    switch (at_ckpt_format_of(c->path)) {
    case AT_CKPT_SAFETENSORS:
        open_safetensors(c);
        break;
    case AT_CKPT_NPY:
        open_npy(c);
        break;
    case AT_CKPT_RAW:
        open_raw(c, opts);
        break;
    }
    return c;
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
    if (self->map)
        munmap(self->map, self->map_size);
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
        if (end == p || errno || v <= 0 || v > AT_MAX_DIM || n == 4 || *p == '+' || *p == ' ')
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
