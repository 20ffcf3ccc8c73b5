/* SPDX-License-Identifier: Apache-2.0 */
/* record.c -- the record schema, writing and reading side by side (see record.h). */
#include "record.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/text.h"
#include "metrics_fmt.h"

/* Layer records always carry the detX and trap columns (null or -1 when not computed). */
#define LAYER_COLUMNS (AT_FMT_DETX | AT_FMT_TRAPS)

static const char *const type_names[] = {"layer",    "scalars", "event",
                                         "spectrum", "weights", "stats"};
static const char *const kind_names[AT_RECORD_EV_COUNT] = {
    "hello", "goodbye", "phase", "run_phase", "trap",  "stop",  "ack",
    "drop",  "error",   "info",  "warning",   "pause", "resume"};
#define NTYPES (sizeof type_names / sizeof type_names[0])

const char *at_record_type_name(at_record_type t)
{
    return (unsigned)t < NTYPES ? type_names[t] : "?";
}

const char *at_record_kind_name(at_record_kind k)
{
    return (unsigned)k < AT_RECORD_EV_COUNT ? kind_names[k] : "?";
}

const char *at_record_view_name(at_space view)
{
    return view == AT_SPACE_DELTA ? "delta" : view == AT_SPACE_W ? "w" : "?";
}

at_event_kind at_record_model_kind(const at_record_event *e)
{
    switch (e->kind) {
    case AT_RECORD_EV_PHASE:
        return AT_EVENT_PHASE;
    case AT_RECORD_EV_RUN_PHASE:
        return at_run_phase_event_kind((at_run_phase)e->phase.to);
    case AT_RECORD_EV_TRAP:
        return AT_EVENT_TRAP;
    case AT_RECORD_EV_STOP:
    case AT_RECORD_EV_ACK:
        return AT_EVENT_STOP;
    case AT_RECORD_EV_DROP:
        return AT_EVENT_DROP;
    case AT_RECORD_EV_ERROR:
        return AT_EVENT_ERROR;
    case AT_RECORD_EV_WARNING:
        return AT_EVENT_WARNING;
    default:
        return AT_EVENT_INFO;
    }
}

/* ---- writing ---------------------------------------------------------------------------- */

/* Every string and number is added as raw JSON text made by text.h, never by cJSON's printers:
 * a string from a peer or a log is valid UTF-8 JSON with its controls escaped whatever it holds,
 * and a number is the shortest text that reads back as exactly the same double (cJSON's stops
 * at 15 digits when that is within an epsilon: 2^53 - 1 became 9.00719925474099e+15, and the
 * largest double a text that reads back as infinity). Each adder returns 0 when out of memory,
 * so a builder chains them with &&. */
static int add_str(cJSON *o, const char *key, const char *v)
{
    return at_fmt_json_text(o, key, v) != NULL;
}

static int add_num(cJSON *o, const char *key, double v)
{
    char t[AT_TEXT_NUMBER_CAP];
    return cJSON_AddRawToObject(o, key, at_text_json_number(t, sizeof t, v)) != NULL;
}

/* Adds key: text, raw text made here, and frees text (NULL: out of memory). */
static int add_owned(cJSON *o, const char *key, char *text)
{
    int ok = text && cJSON_AddRawToObject(o, key, text);
    free(text);
    return ok;
}

/* "[v0,v1,...]": the n numbers as add_num writes them. Caller owns return value (free); NULL
 * when out of memory. */
static char *number_array(const double *v, size_t n)
{
    if (n > (SIZE_MAX - 3) / AT_TEXT_NUMBER_CAP)
        return NULL;
    char *t = malloc(n * AT_TEXT_NUMBER_CAP + 3), *p = t;
    if (!t)
        return NULL;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        p += strlen(at_text_json_number(p, AT_TEXT_NUMBER_CAP, v[i]));
    }
    memcpy(p, "]", 2);
    return t;
}

static int add_shape(cJSON *o, int ndim, const int64_t *shape)
{
    double sh[4];
    for (int i = 0; i < ndim; i++)
        sh[i] = (double)shape[i];
    return add_owned(o, "shape", number_array(sh, (size_t)ndim));
}

/* Whether records of type t name their run (all but stats, and events where it is optional). */
static int has_run(at_record_type t)
{
    return t != AT_RECORD_EVENT && t != AT_RECORD_STATS;
}

/* "type", then for the types that have them "run" and "step". */
static int add_head(cJSON *o, const at_record *r)
{
    if (!add_str(o, "type", at_record_type_name(r->type)))
        return 0;
    return !has_run(r->type) || (add_str(o, "run", r->run) && add_num(o, "step", (double)r->step));
}

static int build_layer(cJSON *o, const at_record *r)
{
    const at_record_layer *l = &r->u.layer;
    if (!l->name || l->ndim < 0 || l->ndim > 4)
        return AT_ERR_ARG;
    if (!add_str(o, "view", at_record_view_name(l->view)))
        return AT_ERR_NOMEM;
    int rc = l->error ? at_fmt_json_error(o, l->name, l->error)
                      : at_fmt_json(o, l->name, &l->m, LAYER_COLUMNS);
    if (rc != AT_OK || !add_str(o, "kind", at_proto_kind_name((at_proto_kind)l->kind)) ||
        !add_shape(o, l->ndim, l->shape) ||
        (l->weights_step > r->step && !add_num(o, "weights_step", (double)l->weights_step)))
        return AT_ERR_NOMEM;
    return AT_OK;
}

/* The scalars' "values" object as raw text: its names are a peer's, so they are written by
 * text.h like every other string (cJSON would print a name's bytes as they are). */
static int build_scalars(cJSON *o, const at_record *r)
{
    const at_record_scalars *s = &r->u.scalars;
    size_t cap = 3;
    for (int i = 0; i < s->n; i++) {
        if (!s->values[i].name)
            return AT_ERR_ARG;
        cap += AT_TEXT_JSON_CAP(strlen(s->values[i].name)) + AT_TEXT_NUMBER_CAP + 1;
    }
    char *t = malloc(cap), *p = t;
    if (!t)
        return AT_ERR_NOMEM;
    *p++ = '{';
    for (int i = 0; i < s->n; i++) {
        const char *name = s->values[i].name;
        if (i)
            *p++ = ',';
        p += at_text_json_string(p, cap - (size_t)(p - t), name, strlen(name));
        *p++ = ':';
        p += strlen(at_text_json_number(p, AT_TEXT_NUMBER_CAP, s->values[i].value));
    }
    memcpy(p, "}", 2);
    return add_owned(o, "values", t) ? AT_OK : AT_ERR_NOMEM;
}

static int build_event(cJSON *o, const at_record *r)
{
    const at_record_event *e = &r->u.event;
    if ((unsigned)e->kind >= AT_RECORD_EV_COUNT)
        return AT_ERR_ARG;
    int ok = add_str(o, "kind", kind_names[e->kind]);
    if (ok && r->run && *r->run)
        ok = add_str(o, "run", r->run);
    if (ok && r->step >= 0)
        ok = add_num(o, "step", (double)r->step);
    if (ok && e->layer && *e->layer)
        ok = add_str(o, "layer", e->layer);
    switch (e->kind) {
    case AT_RECORD_EV_HELLO:
        ok = ok && add_str(o, "model", e->hello.model) &&
             add_str(o, "framework", e->hello.framework) && add_str(o, "host", e->hello.host) &&
             add_num(o, "pid", (double)e->hello.pid) &&
             add_num(o, "interval", (double)e->hello.interval) &&
             add_num(o, "rank", (double)e->hello.rank) &&
             add_num(o, "world_size", (double)e->hello.world_size);
        break;
    case AT_RECORD_EV_GOODBYE:
        ok = ok && add_num(o, "dropped", (double)e->dropped);
        break;
    case AT_RECORD_EV_DROP:
        if (e->dropped >= 0)
            ok = ok && add_num(o, "dropped", (double)e->dropped);
        break;
    case AT_RECORD_EV_PHASE:
    case AT_RECORD_EV_RUN_PHASE: {
        int run = e->kind == AT_RECORD_EV_RUN_PHASE;
        ok = ok && add_str(o, "view", at_record_view_name(e->phase.view)) &&
             add_str(o, "from",
                     run ? at_run_phase_name((at_run_phase)e->phase.from)
                         : at_layer_phase_name((at_layer_phase)e->phase.from)) &&
             add_str(o, "to",
                     run ? at_run_phase_name((at_run_phase)e->phase.to)
                         : at_layer_phase_name((at_layer_phase)e->phase.to)) &&
             add_num(o, "since", (double)e->phase.since);
        break;
    }
    case AT_RECORD_EV_STOP:
        if (e->rule)
            ok = ok && add_str(o, "rule", e->rule);
        if (e->evidence)
            ok = ok && add_str(o, "evidence", e->evidence);
        break;
    case AT_RECORD_EV_ERROR:
        if (e->reason && *e->reason)
            ok = ok && add_str(o, "reason", e->reason);
        break;
    default:
        break;
    }
    return ok && add_str(o, "text", e->text) ? AT_OK : AT_ERR_NOMEM;
}

static int build_spectrum(cJSON *o, const at_record *r)
{
    const at_record_spectrum *s = &r->u.spectrum;
    if (!s->name || s->n > INT_MAX || (s->n && !s->evals))
        return AT_ERR_ARG;
    if (!add_str(o, "view", at_record_view_name(s->view)) || !add_str(o, "name", s->name) ||
        !add_owned(o, "evals", number_array(s->evals, s->n)))
        return AT_ERR_NOMEM;
    return AT_OK;
}

static int build_weights(cJSON *o, const at_record *r)
{
    const at_record_weights *w = &r->u.weights;
    if (!w->name || w->ndim < 0 || w->ndim > 4)
        return AT_ERR_ARG;
    int ok = add_str(o, "name", w->name) && add_str(o, "kind", at_proto_kind_name(w->kind)) &&
             add_str(o, "dtype", at_proto_dtype_name(w->dtype)) &&
             cJSON_AddBoolToObject(o, "base", w->base) && add_shape(o, w->ndim, w->shape);
    return ok ? AT_OK : AT_ERR_NOMEM;
}

static int build_stats(cJSON *o, const at_record *r)
{
    const at_record_stats *s = &r->u.stats;
    cJSON *by = NULL;
    int ok = add_num(o, "messages", (double)s->messages) &&
             add_num(o, "rejected", (double)s->rejected) &&
             (by = cJSON_AddObjectToObject(o, "rejected_by"));
    for (int i = AT_PROTO_E_NONE + 1; ok && i < AT_PROTO_E_COUNT; i++)
        ok = add_num(by, at_proto_reason_name((at_proto_reason)i), (double)s->rejected_by[i]);
    ok = ok && add_num(o, "auth_denied", (double)s->auth_denied) &&
         add_num(o, "handshake_failed", (double)s->handshake_failed) &&
         add_num(o, "accept_pauses", (double)s->accept_pauses) &&
         add_num(o, "unexpected_acks", (double)s->unexpected_acks) &&
         add_num(o, "runs_evicted", (double)s->runs_evicted) &&
         add_num(o, "runs_refused", (double)s->runs_refused) &&
         add_num(o, "layers_shed", (double)s->layers_shed) &&
         add_num(o, "snapshots_shed", (double)s->snapshots_shed) &&
         add_num(o, "run_bytes_max", (double)s->run_bytes_max);
    return ok ? AT_OK : AT_ERR_NOMEM;
}

/* The record as a cJSON object. Caller owns return value; NULL with *status set. */
static cJSON *build(const at_record *r, int *status)
{
    static int (*const builders[])(cJSON *, const at_record *) = {
        build_layer, build_scalars, build_event, build_spectrum, build_weights, build_stats};
    if ((unsigned)r->type >= NTYPES || (has_run(r->type) && !(r->run && *r->run))) {
        *status = AT_ERR_ARG;
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    int rc = o && add_head(o, r) ? builders[r->type](o, r) : AT_ERR_NOMEM;
    if (rc != AT_OK) {
        cJSON_Delete(o);
        *status = rc;
        return NULL;
    }
    *status = AT_OK;
    return o;
}

char *at_record_encode(const at_record *r, size_t *len, int *status)
{
    int st;
    cJSON *o = build(r, &st);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (o && !text)
        st = AT_ERR_NOMEM;
    if (status)
        *status = st;
    if (text && len)
        *len = strlen(text);
    return text;
}

void at_record_text_free(char *text)
{
    cJSON_free(text);
}

int at_record_layer_columns(const at_record *r, void (*fn)(void *ctx, const at_record_column *c),
                            void *ctx)
{
    if (r->type != AT_RECORD_LAYER)
        return AT_ERR_ARG;
    /* The columns as a reader of the line sees them: encoded, then parsed back. */
    int st;
    size_t len;
    char *text = at_record_encode(r, &len, &st);
    if (!text)
        return st;
    cJSON *o = cJSON_ParseWithLength(text, len);
    at_record_text_free(text);
    if (!o)
        return AT_ERR_NOMEM;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "name");
    for (v = v ? v->next : NULL; v; v = v->next) {
        int64_t shape[4];
        at_record_column c = {.name = v->string, .type = AT_COLUMN_NULL, .shape = shape};
        if (cJSON_IsNumber(v)) {
            c.type = AT_COLUMN_NUMBER;
            c.number = v->valuedouble;
        } else if (cJSON_IsString(v)) {
            c.type = AT_COLUMN_STRING;
            c.string = v->valuestring;
        } else if (cJSON_IsArray(v)) {
            c.type = AT_COLUMN_SHAPE;
            c.ndim = r->u.layer.ndim;
            memcpy(shape, r->u.layer.shape, sizeof shape);
        }
        fn(ctx, &c);
    }
    cJSON_Delete(o);
    return AT_OK;
}

/* ---- reading ---------------------------------------------------------------------------- */

struct at_record_decoder {
    cJSON *tree; /* the last record's, which its strings point into */
    void *items; /* its scalars or eigenvalues (a record has one array at most) */
    size_t items_bytes;
};

at_record_decoder *at_record_decoder_new(int *status)
{
    at_record_decoder *self = calloc(1, sizeof *self);
    if (status)
        *status = self ? AT_OK : AT_ERR_NOMEM;
    return self;
}

void at_record_decoder_free(at_record_decoder *self)
{
    if (!self)
        return;
    cJSON_Delete(self->tree);
    free(self->items);
    free(self);
}

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* A string field, or absent (NULL or "", as the field's reader wants) when missing, of
 * another type, or empty. */
static const char *get_str(const cJSON *o, const char *key, const char *absent)
{
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : absent;
}

/* x as an integer (truncated), or 0 with *ok cleared when it is not finite or out of the
 * int64 range (a cast would be undefined there). */
static int64_t to_int(double x, int *ok)
{
    if (x >= -9223372036854775808.0 && x < 9223372036854775808.0)
        return (int64_t)x;
    *ok = 0;
    return 0;
}

/* An integer field, or -1 when missing, not a number or out of range. */
static int64_t get_int(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    int ok = cJSON_IsNumber(v);
    int64_t x = ok ? to_int(v->valuedouble, &ok) : 0;
    return ok ? x : -1;
}

/* A count or step that is written only when >= 0: anything else reads as absent (-1). */
static int64_t get_count(const cJSON *o, const char *key)
{
    int64_t x = get_int(o, key);
    return x >= 0 ? x : -1;
}

static at_space get_view(const cJSON *o)
{
    return !strcmp(get_str(o, "view", ""), "delta") ? AT_SPACE_DELTA : AT_SPACE_W;
}

/* The layer phase (run 0) or run phase (run 1) named s; unknown for a name neither has. */
static int phase_of(const char *s, int run)
{
    int last = run ? AT_RUN_COLLAPSE : AT_LAYER_FAILED;
    for (int p = 1; p <= last; p++)
        if (!strcmp(s, run ? at_run_phase_name((at_run_phase)p)
                           : at_layer_phase_name((at_layer_phase)p)))
            return p;
    return 0;
}

/* A "shape" array of up to 4 integers into shape; returns how many, or -1 when it is none. */
static int get_shape(const cJSON *o, int64_t shape[4])
{
    const cJSON *a = get(o, "shape"), *v;
    int n = 0, ok = cJSON_IsArray(a);
    memset(shape, 0, 4 * sizeof *shape);
    cJSON_ArrayForEach(v, a)
    {
        if (n == 4 || !cJSON_IsNumber(v))
            return -1;
        shape[n++] = to_int(v->valuedouble, &ok);
    }
    return ok ? n : -1;
}

static void read_layer(const cJSON *o, at_record_layer *l)
{
    l->view = get_view(o);
    l->name = get_str(o, "name", "");
    if (at_fmt_json_parse(o, &l->m) == AT_ERR_FORMAT) {
        at_metrics_init(&l->m, AT_MODE_EXACT);
        l->error = get_str(o, "error", "");
    }
    at_proto_kind pk;
    l->kind =
        at_proto_kind_parse(get_str(o, "kind", ""), &pk) == AT_OK && pk <= AT_PROTO_KIND_CONV1D
            ? (at_layer_kind)pk
            : AT_KIND_LINEAR;
    l->ndim = get_shape(o, l->shape);
    if (l->ndim != 2 && l->ndim != 4) {
        l->ndim = 0;
        memset(l->shape, 0, sizeof l->shape);
    }
}

/* Room for the n elements (size bytes each) of the record's array; NULL when out of memory
 * (or n is 0). */
static void *items(at_record_decoder *self, size_t n, size_t size)
{
    if (n > SIZE_MAX / size)
        return NULL;
    if (n * size > self->items_bytes) {
        void *p = realloc(self->items, n * size);
        if (!p)
            return NULL;
        self->items = p;
        self->items_bytes = n * size;
    }
    return n ? self->items : NULL;
}

static int read_scalars(at_record_decoder *self, const cJSON *o, at_record_scalars *s)
{
    const cJSON *vals = get(o, "values"), *v;
    int n = cJSON_IsObject(vals) ? cJSON_GetArraySize(vals) : 0;
    at_record_scalar *x = items(self, (size_t)n, sizeof *x);
    if (n && !x)
        return AT_ERR_NOMEM;
    s->n = 0;
    s->values = x;
    if (x)
        cJSON_ArrayForEach(v, vals) x[s->n++] =
            (at_record_scalar){v->string, cJSON_IsNumber(v) ? v->valuedouble : NAN};
    return AT_OK;
}

static int read_event(const cJSON *o, at_record *r)
{
    at_record_event *e = &r->u.event;
    const char *kind = get_str(o, "kind", "");
    int k = 0;
    while (k < AT_RECORD_EV_COUNT && strcmp(kind, kind_names[k]))
        k++;
    if (k == AT_RECORD_EV_COUNT)
        return AT_ERR_FORMAT;
    e->kind = (at_record_kind)k;
    r->step = get_count(o, "step");
    e->layer = get_str(o, "layer", NULL);
    e->text = get_str(o, "text", "");
    e->dropped = -1;
    switch (e->kind) {
    case AT_RECORD_EV_HELLO:
        e->hello.model = get_str(o, "model", "");
        e->hello.framework = get_str(o, "framework", "");
        e->hello.host = get_str(o, "host", "");
        e->hello.pid = get_int(o, "pid");
        e->hello.interval = get_int(o, "interval");
        e->hello.rank = get_int(o, "rank");
        e->hello.world_size = get_int(o, "world_size");
        break;
    case AT_RECORD_EV_GOODBYE:
        e->dropped = get_int(o, "dropped");
        break;
    case AT_RECORD_EV_DROP:
        e->dropped = get_count(o, "dropped");
        break;
    case AT_RECORD_EV_PHASE:
    case AT_RECORD_EV_RUN_PHASE: {
        int run = e->kind == AT_RECORD_EV_RUN_PHASE;
        e->phase.view = get_view(o);
        e->phase.from = phase_of(get_str(o, "from", ""), run);
        e->phase.to = phase_of(get_str(o, "to", ""), run);
        e->phase.since = get_int(o, "since");
        break;
    }
    case AT_RECORD_EV_STOP: {
        const cJSON *rule = get(o, "rule"), *ev = get(o, "evidence");
        e->rule = cJSON_IsString(rule) ? rule->valuestring : NULL;
        e->evidence = cJSON_IsString(ev) ? ev->valuestring : NULL;
        break;
    }
    case AT_RECORD_EV_ERROR:
        e->reason = get_str(o, "reason", NULL);
        break;
    default:
        break;
    }
    return AT_OK;
}

static int read_spectrum(at_record_decoder *self, const cJSON *o, at_record_spectrum *s)
{
    s->view = get_view(o);
    s->name = get_str(o, "name", "");
    const cJSON *a = get(o, "evals"), *v;
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    double *x = items(self, (size_t)n, sizeof *x);
    if (n && !x)
        return AT_ERR_NOMEM;
    s->n = 0;
    s->evals = x;
    if (x)
        cJSON_ArrayForEach(v, a) x[s->n++] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    return AT_OK;
}

static void read_weights(const cJSON *o, at_record_weights *w)
{
    w->name = get_str(o, "name", "");
    if (at_proto_kind_parse(get_str(o, "kind", ""), &w->kind) != AT_OK)
        w->kind = AT_PROTO_KIND_LINEAR;
    if (at_proto_dtype_parse(get_str(o, "dtype", ""), &w->dtype) != AT_OK)
        w->dtype = AT_PROTO_F32;
    w->base = cJSON_IsTrue(get(o, "base"));
    w->ndim = get_shape(o, w->shape);
    if (w->ndim < 0)
        w->ndim = 0;
}

static void read_stats(const cJSON *o, at_record_stats *s)
{
    const cJSON *by = get(o, "rejected_by");
    s->messages = get_count(o, "messages");
    s->rejected = get_count(o, "rejected");
    for (int i = AT_PROTO_E_NONE + 1; i < AT_PROTO_E_COUNT; i++)
        s->rejected_by[i] = get_count(by, at_proto_reason_name((at_proto_reason)i));
    s->auth_denied = get_count(o, "auth_denied");
    s->handshake_failed = get_count(o, "handshake_failed");
    s->accept_pauses = get_count(o, "accept_pauses");
    s->unexpected_acks = get_count(o, "unexpected_acks");
    s->runs_evicted = get_count(o, "runs_evicted");
    s->runs_refused = get_count(o, "runs_refused");
    s->layers_shed = get_count(o, "layers_shed");
    s->snapshots_shed = get_count(o, "snapshots_shed");
    s->run_bytes_max = get_count(o, "run_bytes_max");
}

int at_record_decode(at_record_decoder *self, const char *json, size_t len, at_record *out)
{
    cJSON_Delete(self->tree);
    self->tree = cJSON_ParseWithLength(json, len);
    memset(out, 0, sizeof *out);
    const cJSON *o = self->tree;
    if (!cJSON_IsObject(o))
        return AT_ERR_FORMAT;
    const char *type = get_str(o, "type", "");
    unsigned t = 0;
    while (t < NTYPES && strcmp(type, type_names[t]))
        t++;
    if (t == NTYPES)
        return AT_ERR_FORMAT;
    out->type = (at_record_type)t;
    out->run = get_str(o, "run", NULL);
    out->step = get_int(o, "step");
    if (has_run(out->type) && !out->run)
        return AT_ERR_FORMAT;
    switch (out->type) {
    case AT_RECORD_LAYER:
        read_layer(o, &out->u.layer);
        out->u.layer.weights_step = get(o, "weights_step") ? get_int(o, "weights_step") : out->step;
        return AT_OK;
    case AT_RECORD_SCALARS:
        return read_scalars(self, o, &out->u.scalars);
    case AT_RECORD_EVENT:
        return read_event(o, out);
    case AT_RECORD_SPECTRUM:
        return read_spectrum(self, o, &out->u.spectrum);
    case AT_RECORD_WEIGHTS:
        read_weights(o, &out->u.weights);
        return AT_OK;
    default:
        read_stats(o, &out->u.stats);
        return AT_OK;
    }
}
