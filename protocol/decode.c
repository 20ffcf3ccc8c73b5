/* SPDX-License-Identifier: Apache-2.0 */
/* decode.c -- frames -> at_proto_msg, with every check docs/protocol.md lists. The JSON parser
 * only ever sees a header whose size was checked against the limit first, and a payload is
 * never copied: the message borrows it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alphatop/protocol.h"
#include "alphatop/text.h"
#include "internal.h"

void at_proto_limits_default(at_proto_limits *lim)
{
    lim->max_header = AT_PROTO_MAX_HEADER;
    lim->max_payload = AT_PROTO_MAX_PAYLOAD;
}

/* The largest dimension accepted; a real layer is far smaller, and it keeps products of two
 * dims well inside 64 bits. */
#define MAX_DIM ((int64_t)1 << 31)

/* The largest world size (ranks are below it). */
#define MAX_RANK (1 << 24)

static const cJSON *field(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* An integer field in [lo, hi]. Absent: AT_OK with *out = dflt when !required. */
static int get_int(const cJSON *obj, const char *name, int required, int64_t dflt, int64_t lo,
                   int64_t hi, int64_t *out, at_proto_error *err)
{
    const cJSON *f = field(obj, name);
    if (!f) {
        if (required)
            return at_proto_fail_(err, AT_PROTO_E_MISSING, "missing field \"%s\"", name);
        *out = dflt;
        return AT_OK;
    }
    if (!cJSON_IsNumber(f))
        return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE, "\"%s\" must be a number", name);
    double d = f->valuedouble;
    if (!(fabs(d) <= (double)AT_PROTO_MAX_INT) || d != floor(d))
        return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE,
                              "\"%s\" must be an integer within +/-(2^53 - 1)", name);
    if (d < (double)lo || d > (double)hi)
        return at_proto_fail_(err, AT_PROTO_E_VALUE, "\"%s\" = %.17g is out of range [%lld, %lld]",
                              name, d, (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return AT_OK;
}

/* A string field copied into dst (cap bytes with NUL). Absent: "" unless required. */
static int get_str(const cJSON *obj, const char *name, int required, char *dst, size_t cap,
                   at_proto_error *err)
{
    const cJSON *f = field(obj, name);
    dst[0] = '\0';
    if (!f) {
        if (required)
            return at_proto_fail_(err, AT_PROTO_E_MISSING, "missing field \"%s\"", name);
        return AT_OK;
    }
    if (!cJSON_IsString(f) || !f->valuestring)
        return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE, "\"%s\" must be a string", name);
    size_t n = strlen(f->valuestring);
    if (n >= cap)
        return at_proto_fail_(err, AT_PROTO_E_STRING, "\"%s\" is %zu bytes, at most %zu allowed",
                              name, n, cap - 1);
    if (required && n == 0)
        return at_proto_fail_(err, AT_PROTO_E_VALUE, "\"%s\" must not be empty", name);
    memcpy(dst, f->valuestring, n + 1);
    return AT_OK;
}

/* An optional boolean field (absent: 0). */
static int get_bool(const cJSON *obj, const char *name, int *out, at_proto_error *err)
{
    const cJSON *f = field(obj, name);
    *out = 0;
    if (!f)
        return AT_OK;
    if (!cJSON_IsBool(f))
        return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE, "\"%s\" must be true or false", name);
    *out = cJSON_IsTrue(f) ? 1 : 0;
    return AT_OK;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != AT_OK)                                                                          \
            return rc_;                                                                            \
    } while (0)

static int decode_hello(const cJSON *o, at_proto_hello *h, at_proto_error *err)
{
    TRY(get_str(o, "model", 0, h->model, sizeof h->model, err));
    TRY(get_str(o, "framework", 0, h->framework, sizeof h->framework, err));
    TRY(get_str(o, "host", 0, h->host, sizeof h->host, err));
    TRY(get_int(o, "pid", 0, 0, 0, AT_PROTO_MAX_INT, &h->pid, err));
    TRY(get_int(o, "world_size", 0, 1, 1, MAX_RANK, &h->world_size, err));
    TRY(get_int(o, "rank", 0, 0, 0, h->world_size - 1, &h->rank, err));
    TRY(get_int(o, "interval", 1, 0, 1, AT_PROTO_MAX_INT, &h->interval, err));
    TRY(get_int(o, "dropped", 0, 0, 0, AT_PROTO_MAX_INT, &h->dropped, err));
    h->ntags = 0;
    const cJSON *tags = field(o, "tags");
    if (!tags)
        return AT_OK;
    if (!cJSON_IsObject(tags))
        return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE, "\"tags\" must be an object");
    const cJSON *t;
    cJSON_ArrayForEach(t, tags)
    {
        if (h->ntags == AT_PROTO_MAX_TAGS)
            return at_proto_fail_(err, AT_PROTO_E_TOO_MANY, "more than %d tags", AT_PROTO_MAX_TAGS);
        at_proto_tag *tag = &h->tags[h->ntags];
        size_t kn = t->string ? strlen(t->string) : 0;
        if (kn == 0)
            return at_proto_fail_(err, AT_PROTO_E_VALUE, "empty tag name");
        if (kn >= sizeof tag->key)
            return at_proto_fail_(err, AT_PROTO_E_STRING, "tag name of %zu bytes, at most %zu", kn,
                                  sizeof tag->key - 1);
        memcpy(tag->key, t->string, kn + 1);
        if (!cJSON_IsString(t) || !t->valuestring)
            return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE, "tag \"%s\" must be a string",
                                  tag->key);
        size_t vn = strlen(t->valuestring);
        if (vn >= sizeof tag->value)
            return at_proto_fail_(err, AT_PROTO_E_STRING, "tag \"%s\" value of %zu bytes", tag->key,
                                  vn);
        memcpy(tag->value, t->valuestring, vn + 1);
        h->ntags++;
    }
    return AT_OK;
}

/* Parses "crc32:xxxxxxxx" (8 hex digits). */
static int parse_checksum(const char *s, uint32_t *out)
{
    if (strncmp(s, "crc32:", 6) != 0 || strlen(s) != 14)
        return 0;
    uint32_t v = 0;
    for (const char *p = s + 6; *p; p++) {
        int d = (*p >= '0' && *p <= '9')   ? *p - '0'
                : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
                : (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10
                                           : -1;
        if (d < 0)
            return 0;
        v = (v << 4) | (uint32_t)d;
    }
    *out = v;
    return 1;
}

/* An array of ndim integers in [lo, hi] into out (the rest zeroed). */
static int get_dims(const cJSON *o, const char *name, int ndim, int64_t lo, int64_t hi,
                    int64_t *out, at_proto_error *err)
{
    const cJSON *a = field(o, name), *d;
    if (!a)
        return at_proto_fail_(err, AT_PROTO_E_MISSING, "missing field \"%s\"", name);
    if (!cJSON_IsArray(a))
        return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE, "\"%s\" must be an array", name);
    if (cJSON_GetArraySize(a) != ndim)
        return at_proto_fail_(err, AT_PROTO_E_SHAPE, "\"%s\" has %d values, shape has %d", name,
                              cJSON_GetArraySize(a), ndim);
    int i = 0;
    cJSON_ArrayForEach(d, a)
    {
        if (!cJSON_IsNumber(d) || d->valuedouble != floor(d->valuedouble))
            return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE, "%s[%d] must be an integer", name, i);
        if (!(d->valuedouble >= (double)lo && d->valuedouble <= (double)hi))
            return at_proto_fail_(err, AT_PROTO_E_SHAPE, "%s[%d] = %.17g is not in [%lld, %lld]",
                                  name, i, d->valuedouble, (long long)lo, (long long)hi);
        out[i++] = (int64_t)d->valuedouble;
    }
    for (; i < AT_PROTO_MAX_DIMS; i++)
        out[i] = 0;
    return AT_OK;
}

/* Version 2's slice of a layer: full_shape and offset, both or neither. The block must lie
 * inside the whole layer, and the whole layer must fit the payload limit (it is assembled). */
static int decode_slice(const cJSON *o, const at_proto_limits *lim, at_proto_layer *l,
                        at_proto_error *err)
{
    const int has_full = field(o, "full_shape") != NULL, has_off = field(o, "offset") != NULL;
    l->sliced = 0;
    if (!has_full && !has_off)
        return AT_OK;
    if (!has_full || !has_off)
        return at_proto_fail_(err, AT_PROTO_E_MISSING,
                              "a slice needs both \"full_shape\" and \"offset\"");
    TRY(get_dims(o, "full_shape", l->ndim, 1, MAX_DIM - 1, l->full_shape, err));
    TRY(get_dims(o, "offset", l->ndim, 0, MAX_DIM - 1, l->offset, err));
    uint64_t elems = 1, cap = lim->max_payload / at_proto_dtype_size(l->dtype);
    for (int i = 0; i < l->ndim; i++) {
        if (l->offset[i] + l->shape[i] > l->full_shape[i])
            return at_proto_fail_(err, AT_PROTO_E_SHAPE,
                                  "slice [%lld, %lld) of dimension %d lies outside full_shape %lld",
                                  (long long)l->offset[i], (long long)(l->offset[i] + l->shape[i]),
                                  i, (long long)l->full_shape[i]);
        if (elems > cap / (uint64_t)l->full_shape[i])
            return at_proto_fail_(err, AT_PROTO_E_SHAPE,
                                  "full_shape product exceeds the payload limit of %llu bytes",
                                  (unsigned long long)lim->max_payload);
        elems *= (uint64_t)l->full_shape[i];
    }
    l->sliced = 1;
    return AT_OK;
}

static int decode_layer(const cJSON *o, int version, const at_proto_limits *lim, at_proto_layer *l,
                        at_proto_error *err)
{
    char buf[AT_PROTO_MAX_SHORT];
    TRY(get_int(o, "step", 1, 0, 0, AT_PROTO_MAX_INT, &l->step, err));
    TRY(get_int(o, "seq", 1, 0, 0, AT_PROTO_MAX_INT, &l->seq, err));
    TRY(get_int(o, "index", 0, -1, -1, AT_PROTO_MAX_INT, &l->index, err));
    TRY(get_str(o, "name", 1, l->name, sizeof l->name, err));
    TRY(get_str(o, "kind", 1, buf, sizeof buf, err));
    if (at_proto_kind_parse(buf, &l->kind) != AT_OK)
        return at_proto_fail_(err, AT_PROTO_E_VALUE, "unknown layer kind \"%s\"", buf);
    TRY(get_bool(o, "base", &l->base, err));
    TRY(get_str(o, "dtype", 1, buf, sizeof buf, err));
    if (at_proto_dtype_parse(buf, &l->dtype) != AT_OK)
        return at_proto_fail_(err, AT_PROTO_E_VALUE, "unknown dtype \"%s\"", buf);
    TRY(get_str(o, "byte_order", 0, buf, sizeof buf, err));
    if (buf[0] == '\0' || strcmp(buf, "little") == 0)
        l->big_endian = 0;
    else if (strcmp(buf, "big") == 0)
        l->big_endian = 1;
    else
        return at_proto_fail_(err, AT_PROTO_E_VALUE, "byte_order must be \"little\" or \"big\"");

    const cJSON *shape = field(o, "shape");
    if (!shape)
        return at_proto_fail_(err, AT_PROTO_E_MISSING, "missing field \"shape\"");
    if (!cJSON_IsArray(shape))
        return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE, "\"shape\" must be an array");
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > AT_PROTO_MAX_DIMS)
        return at_proto_fail_(err, AT_PROTO_E_TOO_MANY, "shape has %d dimensions, at most %d", ndim,
                              AT_PROTO_MAX_DIMS);
    if (ndim != at_proto_kind_ndim_(l->kind))
        return at_proto_fail_(err, AT_PROTO_E_SHAPE, "a %s layer is %d-D, shape has %d dims",
                              at_proto_kind_name(l->kind), at_proto_kind_ndim_(l->kind), ndim);
    l->ndim = ndim;
    /* Overflow-safe: the running product stays <= max_payload / element size before each
     * multiplication, and every factor is < 2^31. */
    uint64_t esize = at_proto_dtype_size(l->dtype);
    uint64_t elems = 1, cap = lim->max_payload / esize;
    const cJSON *d;
    int i = 0;
    cJSON_ArrayForEach(d, shape)
    {
        if (!cJSON_IsNumber(d) || d->valuedouble != floor(d->valuedouble))
            return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE, "shape[%d] must be an integer", i);
        if (!(d->valuedouble >= 1 && d->valuedouble < (double)MAX_DIM))
            return at_proto_fail_(err, AT_PROTO_E_SHAPE, "shape[%d] = %.17g is not in [1, 2^31)", i,
                                  d->valuedouble);
        uint64_t v = (uint64_t)d->valuedouble;
        if (elems > cap / v)
            return at_proto_fail_(err, AT_PROTO_E_SHAPE,
                                  "shape product exceeds the payload limit of %llu bytes",
                                  (unsigned long long)lim->max_payload);
        elems *= v;
        l->shape[i++] = (int64_t)v;
    }
    for (; i < AT_PROTO_MAX_DIMS; i++)
        l->shape[i] = 0;
    int64_t nbytes = 0;
    TRY(get_int(o, "nbytes", 1, 0, 0, AT_PROTO_MAX_INT, &nbytes, err));
    if ((uint64_t)nbytes != elems * esize)
        return at_proto_fail_(err, AT_PROTO_E_PAYLOAD_MISMATCH,
                              "nbytes = %lld but shape x %s is %llu bytes", (long long)nbytes,
                              at_proto_dtype_name(l->dtype), (unsigned long long)(elems * esize));
    l->nbytes = (uint64_t)nbytes;

    l->has_checksum = 0;
    l->crc32 = 0;
    char sum[AT_PROTO_MAX_SHORT];
    TRY(get_str(o, "checksum", 0, sum, sizeof sum, err));
    if (sum[0]) {
        if (!parse_checksum(sum, &l->crc32))
            return at_proto_fail_(err, AT_PROTO_E_VALUE,
                                  "checksum must be \"crc32:\" and 8 hex digits");
        l->has_checksum = 1;
    }
    l->data = NULL;
    l->rank = 0;
    l->sliced = 0;
    l->first_step = l->step;
    if (version < 2)
        return AT_OK;
    TRY(get_int(o, "first_step", 0, l->step, 0, l->step, &l->first_step, err));
    TRY(get_int(o, "rank", 0, 0, 0, MAX_RANK - 1, &l->rank, err));
    return decode_slice(o, lim, l, err);
}

static int decode_snapshot_end(const cJSON *o, int version, at_proto_snapshot_end *e,
                               at_proto_error *err)
{
    TRY(get_int(o, "step", 1, 0, 0, AT_PROTO_MAX_INT, &e->step, err));
    TRY(get_int(o, "seq", 1, 0, 0, AT_PROTO_MAX_INT, &e->seq, err));
    TRY(get_int(o, "layers", 1, 0, 0, AT_PROTO_MAX_INT, &e->layers, err));
    TRY(get_int(o, "dropped", 0, 0, 0, AT_PROTO_MAX_INT, &e->dropped, err));
    e->first_step = e->step;
    e->skipped = e->rank = 0;
    e->total = e->layers;
    if (version < 2)
        return AT_OK;
    TRY(get_int(o, "first_step", 0, e->step, 0, e->step, &e->first_step, err));
    TRY(get_int(o, "skipped", 0, 0, 0, AT_PROTO_MAX_INT - e->layers, &e->skipped, err));
    TRY(get_int(o, "total", 0, e->layers + e->skipped, e->layers + e->skipped, AT_PROTO_MAX_INT,
                &e->total, err));
    return get_int(o, "rank", 0, 0, 0, MAX_RANK - 1, &e->rank, err);
}

static int decode_skip(const cJSON *o, at_proto_skip *s, at_proto_error *err)
{
    int64_t nbytes = 0;
    TRY(get_int(o, "step", 1, 0, 0, AT_PROTO_MAX_INT, &s->step, err));
    TRY(get_int(o, "seq", 1, 0, 0, AT_PROTO_MAX_INT, &s->seq, err));
    TRY(get_int(o, "index", 1, 0, 0, AT_PROTO_MAX_INT, &s->index, err));
    TRY(get_int(o, "rank", 0, 0, 0, MAX_RANK - 1, &s->rank, err));
    TRY(get_str(o, "name", 1, s->name, sizeof s->name, err));
    TRY(get_int(o, "nbytes", 1, 0, 0, AT_PROTO_MAX_INT, &nbytes, err));
    s->nbytes = (uint64_t)nbytes;
    return get_str(o, "reason", 1, s->reason, sizeof s->reason, err);
}

static int decode_scalars(const cJSON *o, at_proto_scalars *s, at_proto_error *err)
{
    TRY(get_int(o, "step", 1, 0, 0, AT_PROTO_MAX_INT, &s->step, err));
    TRY(get_int(o, "dropped", 0, 0, 0, AT_PROTO_MAX_INT, &s->dropped, err));
    const cJSON *vals = field(o, "values");
    if (!vals)
        return at_proto_fail_(err, AT_PROTO_E_MISSING, "missing field \"values\"");
    if (!cJSON_IsObject(vals))
        return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE, "\"values\" must be an object");
    s->n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, vals)
    {
        if (s->n == AT_PROTO_MAX_SCALARS)
            return at_proto_fail_(err, AT_PROTO_E_TOO_MANY, "more than %d scalars",
                                  AT_PROTO_MAX_SCALARS);
        at_proto_scalar *sc = &s->values[s->n];
        size_t n = v->string ? strlen(v->string) : 0;
        if (n == 0)
            return at_proto_fail_(err, AT_PROTO_E_VALUE, "empty scalar name");
        if (n >= sizeof sc->name)
            return at_proto_fail_(err, AT_PROTO_E_STRING, "scalar name of %zu bytes, at most %zu",
                                  n, sizeof sc->name - 1);
        memcpy(sc->name, v->string, n + 1);
        if (cJSON_IsNull(v))
            sc->value = NAN;
        else if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
            sc->value = v->valuedouble;
        else if (cJSON_IsNumber(v))
            return at_proto_fail_(err, AT_PROTO_E_VALUE,
                                  "scalar \"%s\" is beyond a double's range: send null for a "
                                  "value JSON cannot hold",
                                  sc->name);
        else
            return at_proto_fail_(err, AT_PROTO_E_FIELD_TYPE,
                                  "scalar \"%s\" must be a number or null", sc->name);
        s->n++;
    }
    return AT_OK;
}

static int decode_body(const cJSON *o, const at_proto_limits *lim, at_proto_msg *m,
                       at_proto_error *err)
{
    switch (m->type) {
    case AT_PROTO_HELLO:
        return decode_hello(o, &m->u.hello, err);
    case AT_PROTO_LAYER:
        return decode_layer(o, m->version, lim, &m->u.layer, err);
    case AT_PROTO_SNAPSHOT_END:
        return decode_snapshot_end(o, m->version, &m->u.snapshot_end, err);
    case AT_PROTO_SKIP:
        return decode_skip(o, &m->u.skip, err);
    case AT_PROTO_SCALARS:
        return decode_scalars(o, &m->u.scalars, err);
    case AT_PROTO_GOODBYE:
        TRY(get_int(o, "step", 0, 0, 0, AT_PROTO_MAX_INT, &m->u.goodbye.step, err));
        TRY(get_int(o, "dropped", 0, 0, 0, AT_PROTO_MAX_INT, &m->u.goodbye.dropped, err));
        m->u.goodbye.rank = 0;
        return m->version < 2 ? AT_OK
                              : get_int(o, "rank", 0, 0, 0, MAX_RANK - 1, &m->u.goodbye.rank, err);
    case AT_PROTO_STOP:
        return get_str(o, "reason", 1, m->u.reason, sizeof m->u.reason, err);
    case AT_PROTO_STOP_ACK:
        return get_str(o, "reason", 0, m->u.reason, sizeof m->u.reason, err);
    case AT_PROTO_INTERVAL:
        return get_int(o, "interval", 1, 0, 1, AT_PROTO_MAX_INT, &m->u.interval, err);
    case AT_PROTO_PAUSE:
    case AT_PROTO_RESUME:
    case AT_PROTO_HELLO_REQUEST:
    case AT_PROTO_GOODBYE_ACK:
        return AT_OK;
    }
    return at_proto_fail_(err, AT_PROTO_E_TYPE, "unknown message type");
}

/* ---- what cJSON lets through ----
 * cJSON skips a byte-order mark, takes raw control characters and any bytes inside strings,
 * turns \u0000 into a string that ends early, reads numbers with strtod (so 007 and 1. pass),
 * and keeps every duplicate member (lookups find the first, other parsers keep the last). The
 * checks below make the decoder accept exactly the JSON of RFC 8259, in UTF-8, with strings
 * free of control characters. */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
    return is_digit(c)              ? c - '0'
           : (c >= 'a' && c <= 'f') ? c - 'a' + 10
           : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                    : -1;
}

/* A string's contents from s[i] (after its opening quote). Returns the index after the closing
 * quote, or 0 with *rc set. */
static size_t check_string(const char *s, size_t n, size_t i, int *rc, at_proto_error *err)
{
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp = c;
        size_t len = 1;
        if (c == '"')
            return i + 1;
        if (c < 0x20) {
            *rc = at_proto_fail_(err, AT_PROTO_E_JSON,
                                 "raw control character 0x%02x in a string at byte %zu (JSON "
                                 "needs it escaped; this protocol refuses it either way)",
                                 c, i);
            return 0;
        }
        if (c == '\\') {
            char e = i + 1 < n ? s[i + 1] : '\0';
            if (e == 'u') {
                cp = 0;
                for (size_t k = 2; k < 6; k++) {
                    int h = i + k < n ? hex_value(s[i + k]) : -1;
                    if (h < 0) {
                        *rc = at_proto_fail_(err, AT_PROTO_E_JSON,
                                             "\\u needs 4 hex digits (byte %zu)", i);
                        return 0;
                    }
                    cp = cp << 4 | (uint32_t)h;
                }
                len = 6;
            } else if (e && strchr("\"\\/bfnrt", e)) {
                static const char ctl[] = "bfnrt", val[] = "\b\f\n\r\t";
                const char *k = strchr(ctl, e);
                cp = k ? (unsigned char)val[k - ctl] : (unsigned char)e;
                len = 2;
            } else {
                *rc = at_proto_fail_(err, AT_PROTO_E_JSON, "invalid escape in a string (byte %zu)",
                                     i);
                return 0;
            }
        } else if (c >= 0x80 && (len = at_text_utf8_next(s + i, n - i, &cp)) == 0) {
            *rc = at_proto_fail_(err, AT_PROTO_E_TEXT, "byte %zu (0x%02x) is not UTF-8", i, c);
            return 0;
        }
        if (at_text_is_control(cp)) {
            *rc = at_proto_fail_(err, AT_PROTO_E_TEXT,
                                 cp ? "control character U+%04X in a string (byte %zu)"
                                    : "NUL (U+%04X) in a string (byte %zu): it would cut the "
                                      "string short",
                                 (unsigned)cp, i);
            return 0;
        }
        i += len;
    }
    *rc = at_proto_fail_(err, AT_PROTO_E_JSON, "unterminated string");
    return 0;
}

/* A number from s[i] (a '-' or a digit), by JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?
 * ([eE][+-]?[0-9]+)?. Returns the index after it, or 0 with *rc set. */
static size_t check_number(const char *s, size_t n, size_t i, int *rc, at_proto_error *err)
{
    size_t start = i;
    const char *why = NULL;
    if (s[i] == '-')
        i++;
    if (i >= n || !is_digit(s[i])) {
        why = "a '-' without digits";
    } else if (s[i] == '0' && i + 1 < n && is_digit(s[i + 1])) {
        why = "a leading zero";
    } else {
        while (i < n && is_digit(s[i]))
            i++;
        if (i < n && s[i] == '.') {
            if (++i >= n || !is_digit(s[i]))
                why = "no digit after '.'";
            while (i < n && is_digit(s[i]))
                i++;
        }
        if (!why && i < n && (s[i] == 'e' || s[i] == 'E')) {
            if (++i < n && (s[i] == '+' || s[i] == '-'))
                i++;
            if (i >= n || !is_digit(s[i]))
                why = "no digit in the exponent";
            while (i < n && is_digit(s[i]))
                i++;
        }
    }
    if (why) {
        *rc = at_proto_fail_(err, AT_PROTO_E_JSON, "malformed number at byte %zu: %s", start, why);
        return 0;
    }
    return i;
}

/* The header's bytes: no byte-order mark, strings and numbers as above. Structure, and any
 * byte outside strings that JSON does not allow there (non-ASCII included), is cJSON's to
 * refuse (bad_json). */
static int check_text(const char *s, size_t n, at_proto_error *err)
{
    if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        return at_proto_fail_(err, AT_PROTO_E_JSON,
                              "the header starts with a byte-order mark (EF BB BF): send UTF-8 "
                              "without one");
    int rc = AT_OK;
    for (size_t i = 0; i < n;) {
        if (s[i] == '"')
            i = check_string(s, n, i + 1, &rc, err);
        else if (s[i] == '-' || is_digit(s[i]))
            i = check_number(s, n, i, &rc, err);
        else
            i++; /* structure, literals, and bytes no JSON allows there: cJSON's part */
        if (rc != AT_OK)
            return rc;
    }
    return AT_OK;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses an object, at any depth, that names a member twice: cJSON would read the first, other
 * parsers the last, and a relay and the monitor must never see two different messages. */
static int check_unique(const cJSON *item, at_proto_error *err)
{
    size_t n = 0;
    const cJSON *c;
    for (c = item->child; c; c = c->next) {
        int rc = check_unique(c, err);
        if (rc != AT_OK)
            return rc;
        n++;
    }
    if (!cJSON_IsObject(item) || n < 2)
        return AT_OK;
    /* n is bounded by the header limit already checked (a member takes at least 4 bytes). */
    const char *small[64], **keys = n <= 64 ? small : malloc(n * sizeof *keys);
    if (!keys)
        return at_proto_fail_(err, AT_PROTO_E_JSON, "out of memory checking member names");
    size_t k = 0;
    for (c = item->child; c; c = c->next)
        keys[k++] = c->string ? c->string : "";
    qsort(keys, n, sizeof *keys, cmp_keys);
    int rc = AT_OK;
    for (k = 1; k < n && rc == AT_OK; k++)
        if (strcmp(keys[k - 1], keys[k]) == 0)
            rc = at_proto_fail_(err, AT_PROTO_E_JSON, "member \"%s\" appears twice in an object",
                                keys[k]);
    if (keys != small)
        free(keys);
    return rc;
}

/* JSON whitespace, the only thing allowed after the header object. */
static int only_space(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return 0;
    return 1;
}

int at_proto_decode_header(const void *header, size_t size, const at_proto_limits *lim,
                           at_proto_msg *out, at_proto_error *err)
{
    at_proto_limits dflt;
    if (!lim) {
        at_proto_limits_default(&dflt);
        lim = &dflt;
    }
    if (err) {
        err->reason = AT_PROTO_E_NONE;
        err->message[0] = '\0';
    }
    if (!out || (!header && size))
        return at_proto_fail_(err, AT_PROTO_E_FRAMES, "no header frame");
    if (size == 0 || size > lim->max_header)
        return at_proto_fail_(err, AT_PROTO_E_HEADER_SIZE, "header of %zu bytes, must be 1..%zu",
                              size, lim->max_header);
    int rc = check_text(header, size, err);
    if (rc != AT_OK)
        return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(header, size, &end, 0);
    if (!root)
        return at_proto_fail_(err, AT_PROTO_E_JSON, "header is not valid JSON (near byte %td)",
                              end ? end - (const char *)header : (ptrdiff_t)0);
    int64_t v = 0;
    char type[AT_PROTO_MAX_SHORT];
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(root) || !only_space(end, (const char *)header + size)) {
        rc = at_proto_fail_(err, AT_PROTO_E_JSON, "header must be exactly one JSON object");
    } else if ((rc = check_unique(root, err)) != AT_OK) {
    } else if ((rc = get_int(root, "v", 1, 0, -AT_PROTO_MAX_INT, AT_PROTO_MAX_INT, &v, err)) !=
               AT_OK) {
    } else if (v < AT_PROTO_VERSION_MIN || v > AT_PROTO_VERSION) {
        rc = at_proto_fail_(err, AT_PROTO_E_VERSION,
                            "protocol version %lld, this side speaks %d to %d", (long long)v,
                            AT_PROTO_VERSION_MIN, AT_PROTO_VERSION);
    } else if ((rc = get_str(root, "type", 1, type, sizeof type, err)) != AT_OK) {
        if (err && err->reason == AT_PROTO_E_STRING)
            rc = at_proto_fail_(err, AT_PROTO_E_TYPE, "unknown message type");
    } else if (at_proto_type_parse_(type, &out->type) != AT_OK ||
               ((out->type == AT_PROTO_SKIP || out->type == AT_PROTO_GOODBYE_ACK) && v < 2)) {
        rc = at_proto_fail_(err, AT_PROTO_E_TYPE, "unknown message type \"%s\" in version %lld",
                            type, (long long)v);
    } else if ((rc = get_str(root, "run", 1, out->run, sizeof out->run, err)) == AT_OK) {
        out->version = (int)v;
        rc = decode_body(root, lim, out, err);
    }
    cJSON_Delete(root);
    return rc;
}

int at_proto_needs_payload(const at_proto_msg *m)
{
    return m && m->type == AT_PROTO_LAYER;
}

int at_proto_attach_payload(at_proto_msg *m, const void *payload, size_t size, at_proto_error *err)
{
    if (!at_proto_needs_payload(m))
        return at_proto_fail_(err, AT_PROTO_E_FRAMES, "this message type has no payload");
    at_proto_layer *l = &m->u.layer;
    if (!payload && size)
        return at_proto_fail_(err, AT_PROTO_E_FRAMES, "no payload frame");
    if ((uint64_t)size != l->nbytes)
        return at_proto_fail_(err, AT_PROTO_E_PAYLOAD_MISMATCH,
                              "payload of %zu bytes, header says %llu", size,
                              (unsigned long long)l->nbytes);
    if (l->has_checksum) {
        uint32_t c = at_proto_crc32(0, payload, size);
        if (c != l->crc32)
            return at_proto_fail_(err, AT_PROTO_E_CHECKSUM,
                                  "payload crc32 is %08x, header says %08x", c, l->crc32);
    }
    l->data = payload;
    return AT_OK;
}

int at_proto_decode(const at_proto_frame *frames, size_t nframes, const at_proto_limits *lim,
                    at_proto_msg *out, at_proto_error *err)
{
    at_proto_limits dflt;
    if (!lim) {
        at_proto_limits_default(&dflt);
        lim = &dflt;
    }
    if (!frames || nframes == 0)
        return at_proto_fail_(err, AT_PROTO_E_FRAMES, "no frames");
    if (nframes == 2 && (uint64_t)frames[1].size > lim->max_payload)
        return at_proto_fail_(err, AT_PROTO_E_PAYLOAD_SIZE,
                              "payload of %zu bytes exceeds the limit of %llu", frames[1].size,
                              (unsigned long long)lim->max_payload);
    TRY(at_proto_decode_header(frames[0].data, frames[0].size, lim, out, err));
    size_t want = at_proto_needs_payload(out) ? 2 : 1;
    if (nframes != want)
        return at_proto_fail_(err, AT_PROTO_E_FRAMES, "a %s message has %zu frame(s), got %zu",
                              at_proto_type_name(out->type), want, nframes);
    if (want == 2)
        return at_proto_attach_payload(out, frames[1].data, frames[1].size, err);
    return AT_OK;
}
