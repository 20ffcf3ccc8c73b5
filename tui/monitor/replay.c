/* replay.c -- a run log back into the model or out as JSON lines (see replay.h). */
#include "replay.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/phase.h"
#include "alphatop/protocol.h"
#include "metrics_fmt.h"
#include "runlog.h"

static int64_t inum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static at_space space_of(const cJSON *o)
{
    return !strcmp(str(o, "view"), "delta") ? AT_SPACE_DELTA : AT_SPACE_W;
}

static at_event_kind event_kind(const char *k)
{
    static const struct {
        const char *name;
        at_event_kind kind;
    } map[] = {{"phase", AT_EVENT_PHASE}, {"warning", AT_EVENT_WARNING}, {"trap", AT_EVENT_TRAP},
               {"stop", AT_EVENT_STOP},   {"ack", AT_EVENT_STOP},        {"drop", AT_EVENT_DROP},
               {"error", AT_EVENT_ERROR}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(k, map[i].name))
            return map[i].kind;
    return AT_EVENT_INFO;
}

/* The layer's kind and shape, from the "kind" and "shape" fields the engine adds. */
static int layer_shape(const cJSON *o, at_layer_kind *kind, int64_t shape[4])
{
    at_proto_kind pk;
    *kind = at_proto_kind_parse(str(o, "kind"), &pk) == AT_OK && pk <= AT_PROTO_KIND_CONV1D
                ? (at_layer_kind)pk
                : AT_KIND_LINEAR;
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shape"), *v;
    int nd = 0;
    cJSON_ArrayForEach(v, sh)
    {
        if (nd == 4 || !cJSON_IsNumber(v))
            return 0;
        shape[nd++] = (int64_t)v->valuedouble;
    }
    return nd == 2 || nd == 4 ? nd : 0;
}

static void apply_layer(at_model *model, int run, const cJSON *o)
{
    int64_t step = inum(o, "step");
    at_layer_kind kind;
    int64_t shape[4];
    int ndim = layer_shape(o, &kind, shape);
    int layer = at_model_add_layer(model, run, str(o, "name"), kind, ndim, ndim ? shape : NULL);
    if (layer < 0 || step < 0)
        return;
    at_model_add_snapshot(model, run, step, 0);
    at_metrics m;
    if (at_fmt_json_parse(o, &m) == AT_OK)
        at_model_add_cell(model, run, layer, space_of(o), step, &m);
    else
        at_model_add_event(model, run, layer, step, AT_EVENT_ERROR, str(o, "error"));
}

/* The layer phase named s (at_layer_phase_name); unknown for a name it does not know. */
static at_layer_phase phase_of(const char *s)
{
    for (int p = AT_LAYER_UNKNOWN; p <= AT_LAYER_FAILED; p++)
        if (!strcmp(s, at_layer_phase_name((at_layer_phase)p)))
            return (at_layer_phase)p;
    return AT_LAYER_UNKNOWN;
}

/* A layer phase change as the live engine had it from core's tracker. */
static void apply_phase(at_model *model, int run, const cJSON *o)
{
    at_phase_event ev = {.kind = AT_EVENT_LAYER_PHASE,
                         .step = inum(o, "step"),
                         .since_step = inum(o, "since"),
                         .layer = str(o, "layer"),
                         .from = (int)phase_of(str(o, "from")),
                         .to = (int)phase_of(str(o, "to"))};
    at_model_add_phase_event(model, run, space_of(o), &ev, str(o, "text"));
}

/* A run phase change as the live engine had it from core's tracker; 0 when the phase named is
 * not one core knows (the caller then adds the record as a plain event). */
static int apply_run_phase(at_model *model, int run, const cJSON *o)
{
    at_phase_event ev = {.kind = AT_EVENT_RUN_PHASE,
                         .step = inum(o, "step"),
                         .since_step = inum(o, "since"),
                         .layer = ""};
    for (int p = AT_RUN_UNKNOWN; p <= AT_RUN_COLLAPSE; p++) {
        if (!strcmp(str(o, "from"), at_run_phase_name((at_run_phase)p)))
            ev.from = p;
        if (!strcmp(str(o, "to"), at_run_phase_name((at_run_phase)p)))
            ev.to = p;
    }
    return at_model_add_run_phase_event(model, run, space_of(o), &ev, str(o, "text")) >= 0;
}

static void apply_event(at_model *model, int run, const cJSON *o)
{
    const char *kind = str(o, "kind");
    if (!strcmp(kind, "phase")) {
        if (run >= 0)
            apply_phase(model, run, o);
        return;
    }
    if (!strcmp(kind, "run_phase") && run >= 0 && apply_run_phase(model, run, o))
        return;
    if (!strcmp(kind, "hello") && run >= 0) {
        at_run_info *ri = at_model_run(model, run);
        snprintf(ri->name, sizeof ri->name, "%s", str(o, "model"));
        snprintf(ri->host, sizeof ri->host, "%s", str(o, "host"));
        int64_t iv = inum(o, "interval");
        ri->interval = iv > 0 ? iv : 0;
    }
    if (!strcmp(kind, "goodbye") && run >= 0)
        at_model_run(model, run)->ended = 1;
    if (!strcmp(kind, "stop") && run >= 0)
        at_model_run(model, run)->stop_requested = 1;
    if (!strcmp(kind, "drop") && run >= 0 && inum(o, "dropped") > 0)
        at_model_run(model, run)->dropped += inum(o, "dropped");
    int layer = run >= 0 ? at_model_find_layer(model, run, str(o, "layer")) : -1;
    at_model_add_event(model, run, layer < 0 ? -1 : layer, inum(o, "step"), event_kind(kind),
                       str(o, "text"));
}

static void apply_spectrum(at_model *model, int run, const cJSON *o)
{
    int layer = at_model_find_layer(model, run, str(o, "name"));
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "evals");
    int n = cJSON_GetArraySize(ev);
    if (layer < 0 || n <= 0)
        return;
    double *x = malloc((size_t)n * sizeof *x);
    if (!x)
        return;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, ev) x[i++] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    const at_cell *c = NULL;
    int col = at_model_snapshot_at(model, run, inum(o, "step"));
    if (col >= 0)
        c = at_model_cell(model, run, layer, space_of(o), col);
    at_model_set_spectrum(model, run, layer, space_of(o), inum(o, "step"), x, (size_t)n, NAN,
                          c ? c->v[AT_METRIC_ALPHA] : NAN);
    free(x);
}

static void apply(at_model *model, const cJSON *o)
{
    const char *type = str(o, "type");
    const char *id = str(o, "run");
    int run = *id ? at_model_add_run(model, id, NULL, NULL) : -1;
    if (!strcmp(type, "layer") && run >= 0) {
        apply_layer(model, run, o);
    } else if (!strcmp(type, "scalars") && run >= 0) {
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(o, "values"), *v;
        cJSON_ArrayForEach(v, vals) if (cJSON_IsNumber(v))
            at_model_add_scalar(model, run, v->string, inum(o, "step"), v->valuedouble);
    } else if (!strcmp(type, "event")) {
        apply_event(model, run, o);
    } else if (!strcmp(type, "spectrum") && run >= 0) {
        apply_spectrum(model, run, o);
    }
}

/* Calls fn(ctx, record) for every intact JSON record of path. */
static int each_record(const char *path, char *note, size_t notelen,
                       int (*fn)(void *ctx, const at_runlog_record *rec), void *ctx)
{
    int st;
    at_runlog_reader *r = at_runlog_reader_open(path, &st);
    if (!r) {
        snprintf(note, notelen, "%s: %s", path,
                 st == AT_ERR_FORMAT ? "not an alphatop run log" : "cannot open");
        return st;
    }
    at_runlog_record rec;
    int n = 0, rc;
    while ((rc = at_runlog_reader_next(r, &rec)) == 1)
        if (rec.type == AT_RUNLOG_JSON)
            n += fn(ctx, &rec);
    snprintf(note, notelen, "%s", at_runlog_reader_note(r));
    at_runlog_reader_close(r);
    return rc < 0 ? rc : n;
}

static int load_one(void *ctx, const at_runlog_record *rec)
{
    cJSON *o = cJSON_ParseWithLength(rec->json, rec->json_len);
    if (!o)
        return 0;
    apply(ctx, o);
    cJSON_Delete(o);
    return 1;
}

int at_replay_load(at_model *model, const char *path, char *note, size_t notelen)
{
    int n = each_record(path, note, notelen, load_one, model);
    if (n >= 0) {
        at_model_state(model)->replay = 1;
        at_model_touch(model);
    }
    return n;
}

static int print_one(void *ctx, const at_runlog_record *rec)
{
    static const char spectrum[] = "{\"type\":\"spectrum\"";
    FILE *out = ctx;
    /* Spectra are recorded for the view only; watch --headless never printed them. */
    if (!strncmp(rec->json, spectrum, sizeof spectrum - 1))
        return 0;
    fwrite(rec->json, 1, rec->json_len, out);
    fputc('\n', out);
    return 1;
}

int at_replay_print(FILE *out, const char *path, char *note, size_t notelen)
{
    int n = each_record(path, note, notelen, print_one, out);
    fflush(out);
    return n;
}
