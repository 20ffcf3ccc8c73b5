/* SPDX-License-Identifier: Apache-2.0 */
/* names.c -- wire names of the protocol's enums, element sizes, and reason -> status. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alphatop/protocol.h"
#include "internal.h"

static const char *const type_names[] = {
    "hello", "layer",  "snapshot_end", "scalars",       "goodbye", "stop_ack",   "stop",
    "pause", "resume", "interval",     "hello_request", "skip",    "goodbye_ack"};
static const char *const kind_names[] = {"linear", "conv2d", "embedding",
                                         "conv1d", "lora_A", "lora_B"};
static const char *const dtype_names[] = {"f32", "f16", "bf16"};

/* Each reason's name and the shared status it is reported as. */
static const struct {
    const char *name;
    int status;
} reasons[AT_PROTO_E_COUNT] = {
    [AT_PROTO_E_NONE] = {"none", AT_OK},
    [AT_PROTO_E_FRAMES] = {"bad_frames", AT_ERR_FORMAT},
    [AT_PROTO_E_HEADER_SIZE] = {"header_size", AT_ERR_SIZE},
    [AT_PROTO_E_PAYLOAD_SIZE] = {"payload_size", AT_ERR_SIZE},
    [AT_PROTO_E_JSON] = {"bad_json", AT_ERR_FORMAT},
    [AT_PROTO_E_VERSION] = {"bad_version", AT_ERR_VERSION},
    [AT_PROTO_E_TYPE] = {"unknown_type", AT_ERR_UNSUPPORTED},
    [AT_PROTO_E_MISSING] = {"missing_field", AT_ERR_MISSING},
    [AT_PROTO_E_FIELD_TYPE] = {"field_type", AT_ERR_FORMAT},
    [AT_PROTO_E_VALUE] = {"bad_value", AT_ERR_FORMAT},
    [AT_PROTO_E_STRING] = {"string_too_long", AT_ERR_SIZE},
    [AT_PROTO_E_TOO_MANY] = {"too_many", AT_ERR_SIZE},
    [AT_PROTO_E_SHAPE] = {"bad_shape", AT_ERR_SIZE},
    [AT_PROTO_E_PAYLOAD_MISMATCH] = {"payload_mismatch", AT_ERR_SIZE},
    [AT_PROTO_E_CHECKSUM] = {"bad_checksum", AT_ERR_FORMAT},
    [AT_PROTO_E_TEXT] = {"bad_text", AT_ERR_FORMAT},
    [AT_PROTO_E_DIRECTION] = {"wrong_direction", AT_ERR_UNSUPPORTED},
    [AT_PROTO_E_NOT_OWNER] = {"not_owner", AT_ERR_AUTH},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *at_proto_type_name(at_proto_type t)
{
    return (unsigned)t < COUNT(type_names) ? type_names[t] : "?";
}

const char *at_proto_kind_name(at_proto_kind k)
{
    return (unsigned)k < COUNT(kind_names) ? kind_names[k] : "?";
}

const char *at_proto_dtype_name(at_proto_dtype d)
{
    return (unsigned)d < COUNT(dtype_names) ? dtype_names[d] : "?";
}

const char *at_proto_reason_name(at_proto_reason r)
{
    return (unsigned)r < AT_PROTO_E_COUNT ? reasons[r].name : "?";
}

int at_proto_reason_status(at_proto_reason r)
{
    return (unsigned)r < AT_PROTO_E_COUNT ? reasons[r].status : AT_ERR_FORMAT;
}

int at_proto_from_trainer(at_proto_type t)
{
    return t <= AT_PROTO_GOODBYE || t == AT_PROTO_STOP_ACK || t == AT_PROTO_SKIP;
}

size_t at_proto_dtype_size(at_proto_dtype d)
{
    switch (d) {
    case AT_PROTO_F32:
        return 4;
    case AT_PROTO_F16:
    case AT_PROTO_BF16:
        return 2;
    }
    return 0;
}

static int parse_name(const char *name, const char *const *names, size_t n, int *out)
{
    for (size_t i = 0; name && i < n; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (int)i;
            return AT_OK;
        }
    }
    return AT_ERR_NOTFOUND;
}

int at_proto_kind_parse(const char *name, at_proto_kind *out)
{
    int v = 0;
    int rc = parse_name(name, kind_names, COUNT(kind_names), &v);
    if (rc == AT_OK)
        *out = (at_proto_kind)v;
    return rc;
}

int at_proto_dtype_parse(const char *name, at_proto_dtype *out)
{
    int v = 0;
    int rc = parse_name(name, dtype_names, COUNT(dtype_names), &v);
    if (rc == AT_OK)
        *out = (at_proto_dtype)v;
    return rc;
}

int at_proto_type_parse_(const char *name, at_proto_type *out)
{
    int v = 0;
    int rc = parse_name(name, type_names, COUNT(type_names), &v);
    if (rc == AT_OK)
        *out = (at_proto_type)v;
    return rc;
}

int at_proto_kind_ndim_(at_proto_kind k)
{
    switch (k) {
    case AT_PROTO_KIND_CONV2D:
        return 4;
    case AT_PROTO_KIND_CONV1D:
        return 3;
    case AT_PROTO_KIND_LINEAR:
    case AT_PROTO_KIND_EMBEDDING:
    case AT_PROTO_KIND_LORA_A:
    case AT_PROTO_KIND_LORA_B:
        return 2;
    }
    return 0;
}

int at_proto_fail_(at_proto_error *err, at_proto_reason reason, const char *fmt, ...)
{
    if (err) {
        err->reason = reason;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return at_proto_reason_status(reason);
}
