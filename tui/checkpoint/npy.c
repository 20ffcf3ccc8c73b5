/* SPDX-License-Identifier: Apache-2.0 */
/* npy.c -- numpy's .npy (one array: magic, version, a Python-dict header, the data) and .npz (a
 * zip of .npy entries, numpy.savez stored, savez_compressed deflated). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_int.h"

/* What an npy header says. */
typedef struct npy_info {
    ckpt_type type;
    size_t kind; /* its npy_types entry */
    char descr[32];
    int fortran;
    int ndim;
    int64_t shape[AT_CKPT_MAX_NDIM];
    const unsigned char *data; /* just past the header */
    size_t have;               /* bytes from data to the end */
} npy_info;

/* numpy's descr strings: little-endian floats are read; integer and bool arrays skipped. */
static const struct {
    const char *descr;
    const char *name; /* numpy's name, the one skip reasons use */
    ckpt_type type;
} npy_types[] = {
    {"<f4", "float32", CKPT_F32},  {"<f2", "float16", CKPT_F16},  {"<f8", "float64", CKPT_F64},
    {"|b1", "bool", CKPT_OTHER},   {"|i1", "int8", CKPT_OTHER},   {"|u1", "uint8", CKPT_OTHER},
    {"<i2", "int16", CKPT_OTHER},  {"<u2", "uint16", CKPT_OTHER}, {"<i4", "int32", CKPT_OTHER},
    {"<u4", "uint32", CKPT_OTHER}, {"<i8", "int64", CKPT_OTHER},  {"<u8", "uint64", CKPT_OTHER},
};

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

/* Parses the header dict h; returns AT_OK or a status with the reason in err. */
static int parse_dict(const char *h, npy_info *in, char *err, size_t errn)
{
    const char *d = npy_value(h, "descr"), *f = npy_value(h, "fortran_order");
    const char *s = npy_value(h, "shape");
    if (!d || !f || !s)
        return snprintf(err, errn, "npy header lacks descr, fortran_order or shape"), AT_ERR_FORMAT;
    while (*d == ' ')
        d++;
    char q = *d;
    if (q != '\'' && q != '"')
        return snprintf(err, errn, "npy descr is not a string"), AT_ERR_FORMAT;
    size_t n = 0;
    for (d++; *d && *d != q && n + 1 < sizeof in->descr; d++)
        in->descr[n++] = *d;
    in->descr[n] = '\0';
    size_t k = 0;
    while (k < sizeof npy_types / sizeof npy_types[0] && strcmp(in->descr, npy_types[k].descr))
        k++;
    if (k == sizeof npy_types / sizeof npy_types[0])
        return snprintf(err, errn,
                        "npy dtype '%s' not supported ('<f4', '<f2', '<f8' are read; integer and "
                        "bool arrays are skipped)",
                        in->descr),
               AT_ERR_UNSUPPORTED;
    in->type = npy_types[k].type;
    in->kind = k;
    while (*f == ' ')
        f++;
    if (!strncmp(f, "True", 4))
        in->fortran = 1;
    else if (!strncmp(f, "False", 5))
        in->fortran = 0;
    else
        return snprintf(err, errn, "npy fortran_order is neither True nor False"), AT_ERR_FORMAT;
    while (*s == ' ')
        s++;
    if (*s != '(')
        return snprintf(err, errn, "npy shape is not a tuple"), AT_ERR_FORMAT;
    s++;
    in->ndim = 0;
    for (;;) {
        while (*s == ' ' || *s == ',')
            s++;
        if (*s == ')')
            break;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0)
            return snprintf(err, errn, "npy shape has a bad dimension"), AT_ERR_FORMAT;
        if (in->ndim < AT_CKPT_MAX_NDIM)
            in->shape[in->ndim] = v;
        in->ndim++;
        s = end;
        while (*s == 'L' || *s == ' ')
            s++;
        if (*s != ',' && *s != ')')
            return snprintf(err, errn, "npy shape is not a tuple of integers"), AT_ERR_FORMAT;
    }
    return AT_OK;
}

/* Reads the header of the npy array in p[0..n). */
static int npy_header(const unsigned char *p, size_t n, npy_info *in, char *err, size_t errn)
{
    memset(in, 0, sizeof *in);
    if (n < 10 || memcmp(p, "\x93NUMPY", 6))
        return snprintf(err, errn, "not an npy file (bad magic)"), AT_ERR_FORMAT;
    int major = p[6];
    size_t hstart, hlen;
    if (major == 1) {
        hstart = 10;
        hlen = (size_t)p[8] | (size_t)p[9] << 8;
    } else if (major == 2 || major == 3) {
        if (n < 12)
            return snprintf(err, errn, "truncated npy header"), AT_ERR_SIZE;
        hstart = 12;
        hlen = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
    } else {
        return snprintf(err, errn, "npy format version %d not supported", major),
               AT_ERR_UNSUPPORTED;
    }
    if (hlen > n - hstart)
        return snprintf(err, errn, "truncated: npy header length %zu exceeds the file", hlen),
               AT_ERR_SIZE;
    char *h = malloc(hlen + 1);
    if (!h)
        return snprintf(err, errn, "out of memory"), AT_ERR_NOMEM;
    memcpy(h, p + hstart, hlen);
    h[hlen] = '\0';
    int rc = parse_dict(h, in, err, errn);
    free(h);
    in->data = p + hstart + hlen;
    in->have = n - hstart - hlen;
    return rc;
}

/* Fills layer l from a parsed header: shape, size check, then the data or a skip. */
static void npy_layer(ckpt_layer *l, const npy_info *in)
{
    int64_t numel = ckpt_layer_shape(l, in->ndim, in->shape,
                                     in->type == CKPT_OTHER ? npy_types[in->kind].name : NULL);
    if (numel < 0)
        return;
    size_t need = (size_t)numel * ckpt_type_size(in->type);
    if (in->have < need) {
        char s[128];
        at_shape_str(s, sizeof s, in->ndim, in->shape);
        ckpt_layer_fail(l, AT_ERR_SIZE, "truncated: shape %s of '%s' needs %zu bytes, file has %zu",
                        s, in->descr, need, in->have);
        return;
    }
    int64_t fstride[4], step = 1;
    for (int d = 0; d < in->ndim; d++) {
        fstride[d] = step;
        step *= in->shape[d];
    }
    ckpt_layer_data(l, in->type, in->data, in->fortran ? fstride : NULL);
}

int ckpt_read_npy(at_ckpt *c, const unsigned char *p, size_t n, const char *layer_name)
{
    npy_info in;
    char err[256];
    int rc = npy_header(p, n, &in, err, sizeof err);
    if (rc < 0)
        return ckpt_fail(c, rc, "%s", err);
    ckpt_layer *l = ckpt_layer_add(c, layer_name);
    if (l)
        l->single = 1;
    if (l)
        npy_layer(l, &in);
    return c->status;
}

/* An npz key: the entry name without ".npy", if it has that suffix. */
static int npz_key(const char *entry, char *key, size_t n)
{
    size_t len = strlen(entry);
    if (len <= 4 || strcmp(entry + len - 4, ".npy") || len - 4 >= n)
        return 0;
    memcpy(key, entry, len - 4);
    key[len - 4] = '\0';
    return 1;
}

/* Arrays saved from a state dict (numpy.savez(f, **{name: w})) are chosen like its tensors:
 * names ending in "weight" or "kernel" only. Other archives (savez(f, a, b), arr_0, arr_1, ...)
 * have no such names; there every 2-D or 4-D array is a layer. */
static int npz_named_like_state_dict(const at_ckpt *c, at_zip *z)
{
    char key[1024];
    for (size_t i = 0; i < at_zip_count(z); i++)
        if (npz_key(at_zip_name(z, i), key, sizeof key) && ckpt_is_layer(c, key))
            return 1;
    return 0;
}

int ckpt_read_npz(at_ckpt *c, at_zip *z)
{
    const int by_name = npz_named_like_state_dict(c, z);
    char key[1024], err[256];
    for (size_t i = 0; i < at_zip_count(z) && c->status == AT_OK; i++) {
        if (!npz_key(at_zip_name(z, i), key, sizeof key) || !ckpt_wants(c, key))
            continue;
        const unsigned char *p;
        size_t n;
        void *owned;
        npy_info in;
        int rc = at_zip_entry(z, i, &p, &n, &owned);
        if (rc < 0)
            snprintf(err, sizeof err, "%s", at_zip_last_error(z));
        else
            rc = npy_header(p, n, &in, err, sizeof err);
        ckpt_layer *l = ckpt_layer_add(c, key);
        if (!l) {
            free(owned);
            break;
        }
        l->named |= !by_name;
        if (rc < 0)
            ckpt_layer_fail(l, rc, "%s", err);
        else
            npy_layer(l, &in);
        /* The layer may point into the inflated entry; a tensor that is no layer does not. */
        if (!l->origin)
            free(owned);
        else if (owned && ckpt_keep(c, owned) < 0)
            break;
    }
    return c->status;
}
