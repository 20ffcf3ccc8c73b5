/* SPDX-License-Identifier: Apache-2.0 */
/* safetensors.c -- the safetensors reader: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then the data section the offsets index. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "ckpt_int.h"

/* The safetensors reference implementation refuses headers above 100 MB. */
#define ST_MAX_HEADER (100u * 1024u * 1024u)

/* The format's dtypes: floats are read, the rest (integers, bool, FP8) skipped by name. */
static const struct st_dtype {
    const char *name;
    const char *numpy; /* the name skip reasons use (numpy's, torch's) */
    ckpt_type type;
    size_t size;
} st_dtypes[] = {
    {"F32", "float32", CKPT_F32, 4},
    {"F16", "float16", CKPT_F16, 2},
    {"BF16", "bfloat16", CKPT_BF16, 2},
    {"F64", "float64", CKPT_F64, 8},
    {"I8", "int8", CKPT_OTHER, 1},
    {"U8", "uint8", CKPT_OTHER, 1},
    {"I16", "int16", CKPT_OTHER, 2},
    {"U16", "uint16", CKPT_OTHER, 2},
    {"I32", "int32", CKPT_OTHER, 4},
    {"U32", "uint32", CKPT_OTHER, 4},
    {"I64", "int64", CKPT_OTHER, 8},
    {"U64", "uint64", CKPT_OTHER, 8},
    {"BOOL", "bool", CKPT_OTHER, 1},
    {"F8_E4M3", "float8_e4m3fn", CKPT_OTHER, 1},
    {"F8_E5M2", "float8_e5m2", CKPT_OTHER, 1},
    {"C64", "complex64", CKPT_OTHER, 8},
};

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

static const struct st_dtype *find_dtype(const char *s)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(s, st_dtypes[i].name))
            return &st_dtypes[i];
    return NULL;
}

/* Fills one layer from its header entry; problems fail the layer only. */
static int st_layer(ckpt_layer *l, const cJSON *entry, const unsigned char *data, size_t data_size)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    int64_t shape[AT_CKPT_MAX_NDIM], b, e;
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return ckpt_layer_fail(l, AT_ERR_FORMAT, "header entry lacks dtype, shape or data_offsets");
    int ndim = cJSON_GetArraySize(sh);
    for (int i = 0; i < ndim && i < AT_CKPT_MAX_NDIM; i++)
        if (!json_uint(cJSON_GetArrayItem(sh, i), &shape[i]))
            return ckpt_layer_fail(l, AT_ERR_FORMAT, "shape entry %d is not a non-negative integer",
                                   i);
    if (cJSON_GetArraySize(off) != 2 || !json_uint(cJSON_GetArrayItem(off, 0), &b) ||
        !json_uint(cJSON_GetArrayItem(off, 1), &e) || e < b)
        return ckpt_layer_fail(l, AT_ERR_FORMAT,
                               "data_offsets must be [begin, end] with begin <= end");
    const struct st_dtype *d = find_dtype(dt->valuestring);
    int64_t numel = ckpt_layer_shape(l, ndim, shape, d && d->type == CKPT_OTHER ? d->numpy : NULL);
    if (numel < 0)
        return (int)numel;
    if (!d)
        return ckpt_layer_fail(l, AT_ERR_UNSUPPORTED,
                               "dtype %s not supported (F32, F16, BF16, F64 are read)",
                               dt->valuestring);
    char s[128];
    at_shape_str(s, sizeof s, ndim, shape);
    int64_t need = numel * (int64_t)d->size;
    if (e - b != need)
        return ckpt_layer_fail(
            l, AT_ERR_SIZE,
            "data_offsets [%lld, %lld) hold %lld bytes but shape %s of %s needs %lld", (long long)b,
            (long long)e, (long long)(e - b), s, d->name, (long long)need);
    if ((uint64_t)e > data_size)
        return ckpt_layer_fail(l, AT_ERR_SIZE,
                               "data_offsets [%lld, %lld) run past the end of the data (%zu "
                               "bytes): truncated file",
                               (long long)b, (long long)e, data_size);
    l->exclusive = 1;
    return ckpt_layer_data(l, d->type, data + b, NULL);
}

int ckpt_read_safetensors(at_ckpt *c, const unsigned char *p, size_t n)
{
    if (n < 8)
        return ckpt_fail(c, AT_ERR_SIZE,
                         "truncated: %zu bytes, shorter than the 8-byte header length", n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen > ST_MAX_HEADER)
        return ckpt_fail(c, AT_ERR_FORMAT, "header length %llu is absurd (limit %u bytes)",
                         (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > n - 8)
        return ckpt_fail(c, AT_ERR_SIZE,
                         "truncated: header length %llu exceeds the %zu bytes after it",
                         (unsigned long long)hlen, n - 8);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ckpt_fail(c, AT_ERR_FORMAT, "header is not a JSON object");
    }
    const unsigned char *data = p + 8 + hlen;
    size_t data_size = n - 8 - (size_t)hlen;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, root)
    {
        const char *name = entry->string;
        if (!name || !strcmp(name, "__metadata__") || !ckpt_wants(c, name))
            continue;
        /* A malformed entry is reported when its name says it is a weight (at_ckpt_open drops
         * the records of other names), or when every tensor is listed. */
        ckpt_layer *l = ckpt_layer_add(c, name);
        if (!l)
            break;
        if (!cJSON_IsObject(entry))
            ckpt_layer_fail(l, AT_ERR_FORMAT, "header entry is not an object");
        else
            st_layer(l, entry, data, data_size);
    }
    cJSON_Delete(root);
    return c->status;
}
