/* SPDX-License-Identifier: Apache-2.0 */
/* encode.c -- at_proto_msg -> JSON header bytes. The result is checked by decoding it again,
 * so the encoder and the decoder cannot disagree about what is valid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alphatop/protocol.h"
#include "alphatop/text.h"
#include "internal.h"

/* Numbers are printed here rather than by cJSON, whose printer rounds to 15 digits when that
 * is "close enough": integers stay exact, and doubles take the shortest text that reads back
 * exactly (at_text_json_number). */
static cJSON *raw_int(int64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)v);
    return cJSON_CreateRaw(text);
}

/* Adds an item; returns 0 when cJSON ran out of memory. */
static int add_item(cJSON *o, const char *name, cJSON *item)
{
    if (!item || !cJSON_AddItemToObject(o, name, item)) {
        cJSON_Delete(item);
        return 0;
    }
    return 1;
}

static int add_num(cJSON *o, const char *name, int64_t v)
{
    return add_item(o, name, raw_int(v));
}

static int add_str(cJSON *o, const char *name, const char *v)
{
    return cJSON_AddStringToObject(o, name, v) != NULL;
}

static int build_hello(cJSON *o, const at_proto_hello *h)
{
    int ok = add_str(o, "model", h->model) && add_str(o, "framework", h->framework) &&
             add_str(o, "host", h->host) && add_num(o, "pid", h->pid) &&
             add_num(o, "rank", h->rank) && add_num(o, "world_size", h->world_size) &&
             add_num(o, "interval", h->interval) && add_num(o, "dropped", h->dropped);
    cJSON *tags = ok ? cJSON_AddObjectToObject(o, "tags") : NULL;
    if (!tags)
        return 0;
    for (int i = 0; i < h->ntags && i < AT_PROTO_MAX_TAGS; i++)
        if (!add_str(tags, h->tags[i].key, h->tags[i].value))
            return 0;
    return 1;
}

/* An array of n integers. */
static int add_dims(cJSON *o, const char *name, int n, const int64_t *v)
{
    cJSON *a = cJSON_AddArrayToObject(o, name);
    if (!a)
        return 0;
    for (int i = 0; i < n && i < AT_PROTO_MAX_DIMS; i++) {
        cJSON *d = raw_int(v[i]);
        if (!d || !cJSON_AddItemToArray(a, d)) {
            cJSON_Delete(d);
            return 0;
        }
    }
    return 1;
}

static int build_layer(cJSON *o, const at_proto_layer *l)
{
    int ok = add_num(o, "step", l->step) &&
             (l->first_step >= l->step || add_num(o, "first_step", l->first_step)) &&
             add_num(o, "seq", l->seq) && add_num(o, "index", l->index) &&
             add_str(o, "name", l->name) && add_str(o, "kind", at_proto_kind_name(l->kind)) &&
             cJSON_AddBoolToObject(o, "base", l->base ? 1 : 0) != NULL &&
             add_dims(o, "shape", l->ndim, l->shape) &&
             (!l->sliced || (add_dims(o, "full_shape", l->ndim, l->full_shape) &&
                             add_dims(o, "offset", l->ndim, l->offset))) &&
             (!l->rank || add_num(o, "rank", l->rank)) &&
             add_str(o, "dtype", at_proto_dtype_name(l->dtype)) &&
             add_str(o, "byte_order", l->big_endian ? "big" : "little") &&
             add_num(o, "nbytes", l->nbytes);
    if (ok && l->has_checksum) {
        char sum[16];
        snprintf(sum, sizeof sum, "crc32:%08x", (unsigned)l->crc32);
        ok = add_str(o, "checksum", sum);
    }
    return ok;
}

static int build_scalars(cJSON *o, const at_proto_scalars *s)
{
    cJSON *vals = add_num(o, "step", s->step) && add_num(o, "dropped", s->dropped)
                      ? cJSON_AddObjectToObject(o, "values")
                      : NULL;
    if (!vals)
        return 0;
    for (int i = 0; i < s->n && i < AT_PROTO_MAX_SCALARS; i++) {
        /* JSON has no NaN or Inf: they travel as null. */
        char text[AT_TEXT_NUMBER_CAP];
        at_text_json_number(text, sizeof text, s->values[i].value);
        if (!add_item(vals, s->values[i].name, cJSON_CreateRaw(text)))
            return 0;
    }
    return 1;
}

static int build_body(cJSON *o, const at_proto_msg *m)
{
    switch (m->type) {
    case AT_PROTO_HELLO:
        return build_hello(o, &m->u.hello);
    case AT_PROTO_LAYER:
        return build_layer(o, &m->u.layer);
    case AT_PROTO_SNAPSHOT_END: {
        const at_proto_snapshot_end *e = &m->u.snapshot_end;
        return add_num(o, "step", e->step) && add_num(o, "seq", e->seq) &&
               add_num(o, "layers", e->layers) && add_num(o, "dropped", e->dropped) &&
               add_num(o, "first_step", e->first_step) && add_num(o, "total", e->total) &&
               add_num(o, "skipped", e->skipped) && (!e->rank || add_num(o, "rank", e->rank));
    }
    case AT_PROTO_SKIP: {
        const at_proto_skip *k = &m->u.skip;
        return add_num(o, "step", k->step) && add_num(o, "seq", k->seq) &&
               add_num(o, "index", k->index) && (!k->rank || add_num(o, "rank", k->rank)) &&
               add_str(o, "name", k->name) && add_num(o, "nbytes", (int64_t)k->nbytes) &&
               add_str(o, "reason", k->reason);
    }
    case AT_PROTO_SCALARS:
        return build_scalars(o, &m->u.scalars);
    case AT_PROTO_GOODBYE:
        return add_num(o, "step", m->u.goodbye.step) &&
               add_num(o, "dropped", m->u.goodbye.dropped) &&
               (!m->u.goodbye.rank || add_num(o, "rank", m->u.goodbye.rank));
    case AT_PROTO_STOP:
    case AT_PROTO_STOP_ACK:
        return add_str(o, "reason", m->u.reason);
    case AT_PROTO_INTERVAL:
        return add_num(o, "interval", m->u.interval);
    case AT_PROTO_PAUSE:
    case AT_PROTO_RESUME:
    case AT_PROTO_HELLO_REQUEST:
    case AT_PROTO_GOODBYE_ACK:
        return 1;
    }
    return 1;
}

/* Strings in at_proto_msg are fixed arrays; one without a NUL would make cJSON read past it. */
static int terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static int strings_terminated(const at_proto_msg *m)
{
    if (!terminated(m->run, sizeof m->run))
        return 0;
    switch (m->type) {
    case AT_PROTO_HELLO: {
        const at_proto_hello *h = &m->u.hello;
        if (!terminated(h->model, sizeof h->model) ||
            !terminated(h->framework, sizeof h->framework) || !terminated(h->host, sizeof h->host))
            return 0;
        for (int i = 0; i < h->ntags && i < AT_PROTO_MAX_TAGS; i++)
            if (!terminated(h->tags[i].key, sizeof h->tags[i].key) ||
                !terminated(h->tags[i].value, sizeof h->tags[i].value))
                return 0;
        return 1;
    }
    case AT_PROTO_LAYER:
        return terminated(m->u.layer.name, sizeof m->u.layer.name);
    case AT_PROTO_SKIP:
        return terminated(m->u.skip.name, sizeof m->u.skip.name) &&
               terminated(m->u.skip.reason, sizeof m->u.skip.reason);
    case AT_PROTO_SCALARS:
        for (int i = 0; i < m->u.scalars.n && i < AT_PROTO_MAX_SCALARS; i++)
            if (!terminated(m->u.scalars.values[i].name, sizeof m->u.scalars.values[i].name))
                return 0;
        return 1;
    case AT_PROTO_STOP:
    case AT_PROTO_STOP_ACK:
        return terminated(m->u.reason, sizeof m->u.reason);
    default:
        return 1;
    }
}

int at_proto_encode(const at_proto_msg *m, char *buf, size_t cap, size_t *len, at_proto_error *err)
{
    if (!m || !buf || !len || cap > (size_t)INT32_MAX)
        return at_proto_fail_(err, AT_PROTO_E_FRAMES, "bad arguments");
    if ((unsigned)m->type > AT_PROTO_GOODBYE_ACK)
        return at_proto_fail_(err, AT_PROTO_E_TYPE, "unknown message type %d", (int)m->type);
    if (!strings_terminated(m))
        return at_proto_fail_(err, AT_PROTO_E_STRING, "a string field is not NUL-terminated");
    /* Counts the encoder cannot represent are rejected here, not silently clipped. */
    if ((m->type == AT_PROTO_HELLO &&
         (m->u.hello.ntags < 0 || m->u.hello.ntags > AT_PROTO_MAX_TAGS)) ||
        (m->type == AT_PROTO_SCALARS &&
         (m->u.scalars.n < 0 || m->u.scalars.n > AT_PROTO_MAX_SCALARS)))
        return at_proto_fail_(err, AT_PROTO_E_TOO_MANY, "too many tags or scalars");
    if (m->type == AT_PROTO_LAYER && (m->u.layer.ndim < 0 || m->u.layer.ndim > AT_PROTO_MAX_DIMS))
        return at_proto_fail_(err, AT_PROTO_E_TOO_MANY, "ndim %d", m->u.layer.ndim);

    cJSON *o = cJSON_CreateObject();
    int ok = o && add_num(o, "v", AT_PROTO_VERSION) &&
             add_str(o, "type", at_proto_type_name(m->type)) && add_str(o, "run", m->run) &&
             build_body(o, m);
    /* cJSON may need up to 5 bytes more than the text it prints. */
    int printed = ok && cJSON_PrintPreallocated(o, buf, (int)cap, 0) && strlen(buf) + 5 <= cap;
    cJSON_Delete(o);
    if (!ok) {
        at_proto_fail_(err, AT_PROTO_E_JSON, "out of memory building the header");
        return AT_ERR_NOMEM;
    }
    if (!printed)
        return at_proto_fail_(err, AT_PROTO_E_HEADER_SIZE, "header does not fit in %zu bytes", cap);
    *len = strlen(buf);

    at_proto_msg *check = malloc(sizeof *check);
    if (!check) {
        at_proto_fail_(err, AT_PROTO_E_JSON, "out of memory checking the header");
        return AT_ERR_NOMEM;
    }
    int rc = at_proto_decode_header(buf, *len, NULL, check, err);
    free(check);
    return rc;
}
