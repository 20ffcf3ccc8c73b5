/* SPDX-License-Identifier: Apache-2.0 */
/* record.h -- the monitor's record schema: the JSON lines `watch --headless` prints and the run
 * log holds (runlog.h), written and read here and nowhere else (docs/monitor.md has the table).
 *
 * One record is one JSON object, its keys in this order:
 *     layer     {"type":"layer","run","step","view","name", <metric columns> | "status":"error",
 *                "error", "kind","shape", "weights_step"?}
 *     scalars   {"type":"scalars","run","step","values":{NAME:NUMBER|null,...}}
 *     event     {"type":"event","kind","run"?,"step"?,"layer"?, <the kind's fields>, "text"}
 *     spectrum  {"type":"spectrum","run","step","view","name","evals":[...]}    (run log only)
 *     weights   {"type":"weights","run","step","name","kind","dtype","base","shape"}
 *               (run log only: the JSON header of a weights blob)
 *     stats     {"type":"stats","messages","rejected","rejected_by":{REASON:COUNT,...},
 *                "auth_denied","handshake_failed","accept_pauses","unexpected_acks"}
 * The metric columns are metrics_fmt.h's (at_fmt_json) with detX and traps. Whatever the strings
 * hold (a peer's names, a crafted log's text), the text is valid UTF-8 JSON with every control
 * character escaped (at_text_json_quote: an invalid byte becomes \ufffd), and every number is
 * the shortest text that reads back as exactly the same double (at_text_json_number).
 * Non-finite numbers are written null and read back as NAN.
 *
 *     at_record r = {.type = AT_RECORD_EVENT, .run = "r1", .step = -1};
 *     r.u.event.kind = AT_RECORD_EV_INFO;
 *     r.u.event.text = "hello";
 *     char *line = at_record_encode(&r, &len, &st);     // one line, no newline
 *     at_record_text_free(line);
 *
 *     at_record_decoder *d = at_record_decoder_new(&st);
 *     if (at_record_decode(d, json, len, &r) == AT_OK) ...  // r borrows from d
 *     at_record_decoder_free(d);
 *
 * Reading is lenient where the live monitor never differs: a missing or mistyped field reads as
 * absent (strings "" or NULL as documented per field, counts and steps -1, numbers NAN), an
 * unknown view as "w", an unknown phase as "unknown". What makes a record unreadable
 * (AT_ERR_FORMAT) is: not a JSON object, an unknown "type" or event "kind", and a layer,
 * scalars, spectrum or weights record without a "run". A record read and encoded again is a
 * fixed point: encoding what that text decodes to gives the same bytes.
 */
#ifndef ALPHATOP_RECORD_H
#define ALPHATOP_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/htsr.h"
#include "alphatop/protocol.h"
#include "model.h"

/* The "type" of a record. */
typedef enum at_record_type {
    AT_RECORD_LAYER = 0,    /* "layer": one layer's result in one view */
    AT_RECORD_SCALARS = 1,  /* "scalars": numbers the trainer logged at a step */
    AT_RECORD_EVENT = 2,    /* "event" */
    AT_RECORD_SPECTRUM = 3, /* "spectrum": a layer's eigenvalues (--record-spectra) */
    AT_RECORD_WEIGHTS = 4,  /* "weights": the header of a weights blob (--record-weights) */
    AT_RECORD_STATS = 5,    /* "stats": the monitor's counters when it ends (headless) */
} at_record_type;

/* The "kind" of an event: every kind the engine writes. */
typedef enum at_record_kind {
    AT_RECORD_EV_HELLO = 0,     /* "hello": a run appeared (or restarted) */
    AT_RECORD_EV_GOODBYE = 1,   /* "goodbye": the trainer ended the run */
    AT_RECORD_EV_PHASE = 2,     /* "phase": a layer's phase changed (core's tracker) */
    AT_RECORD_EV_RUN_PHASE = 3, /* "run_phase": the run's phase changed */
    AT_RECORD_EV_TRAP = 4,      /* "trap": correlation traps appeared in a layer */
    AT_RECORD_EV_STOP = 5,      /* "stop": a rule fired, the user asked, or the ack timed out */
    AT_RECORD_EV_ACK = 6,       /* "ack": the trainer acknowledged the stop */
    AT_RECORD_EV_DROP = 7,      /* "drop": snapshots dropped, or one arrived incomplete */
    AT_RECORD_EV_ERROR = 8,     /* "error": a rejected message, an analysis or log error */
    AT_RECORD_EV_INFO = 9,      /* "info": base weights received, LoRA skipped in fast mode,
                                   accepting stopped or resumed at the descriptor limit */
    AT_RECORD_EV_WARNING = 10,  /* "warning": the feed's warning at start (no Curve, a readable
                                   key file, an empty allow-list), refused connections, a
                                   stop_ack no stop asked for */
    AT_RECORD_EV_PAUSE = 11,    /* "pause": the user paused the run's snapshots */
    AT_RECORD_EV_RESUME = 12,   /* "resume": the user resumed them */
    AT_RECORD_EV_COUNT = 13     /* number of kinds (not a kind) */
} at_record_kind;

/* Layer results: the metric columns, or the error of a layer that could not be analysed. */
typedef struct at_record_layer {
    at_space view;      /* "view": "w" or "delta" */
    const char *name;   /* never NULL */
    const char *error;  /* non-NULL: "status":"error" with this "error"; m is not written */
    at_metrics m;       /* the metric columns (read back by at_fmt_json_parse) */
    at_layer_kind kind; /* "kind" (linear, conv2d, embedding, conv1d; unknown reads as linear) */
    int ndim;           /* "shape" as core analysed the layer: 2 or 4 values; 0 unknown */
    int64_t shape[4];
    int64_t weights_step; /* "weights_step": the step of the weights when later than the
                             record's step (the snapshot's, sent over several steps); written
                             only then, and read back as the record's step when absent */
} at_record_layer;

/* One scalar; value NAN is written null. */
typedef struct at_record_scalar {
    const char *name;
    double value;
} at_record_scalar;

typedef struct at_record_scalars {
    int n;
    const at_record_scalar *values; /* n of them, in order */
} at_record_scalars;

/* An event. Fields a kind does not have are neither written nor read. */
typedef struct at_record_event {
    at_record_kind kind;
    const char *layer; /* "layer": NULL (or "", not written) when the event is not a layer's */
    const char *text;  /* "text": one line for people; never NULL when read */
    struct {
        const char *model, *framework, *host; /* never NULL when read */
        int64_t pid, interval, rank, world_size;
    } hello;         /* AT_RECORD_EV_HELLO */
    int64_t dropped; /* GOODBYE (always written) and DROP: snapshots; -1: absent */
    struct {
        at_space view;
        int from, to;            /* at_layer_phase (PHASE) or at_run_phase (RUN_PHASE) */
        int64_t since;           /* first step of the new phase */
    } phase;                     /* AT_RECORD_EV_PHASE, AT_RECORD_EV_RUN_PHASE */
    const char *rule, *evidence; /* AT_RECORD_EV_STOP; NULL: absent */
    const char *reason;          /* AT_RECORD_EV_ERROR: why a message was rejected, a protocol
                                    reason name (at_proto_reason_name); NULL (or ""): absent */
} at_record_event;

typedef struct at_record_spectrum {
    at_space view;
    const char *name;
    size_t n;
    const double *evals; /* n eigenvalues, ascending as the analysis gave them */
} at_record_spectrum;

typedef struct at_record_weights {
    const char *name;
    at_proto_kind kind;   /* unknown reads as linear */
    at_proto_dtype dtype; /* unknown reads as f32 */
    int base;             /* the fine-tune's base weights */
    int ndim;             /* 0..4 values as the wire had them */
    int64_t shape[4];
} at_record_weights;

/* The monitor's counters since it started (its feed's, feed.h, and the engine's). */
typedef struct at_record_stats {
    int64_t messages;                      /* accepted protocol messages */
    int64_t rejected;                      /* rejected messages, every reason */
    int64_t rejected_by[AT_PROTO_E_COUNT]; /* by at_proto_reason ([AT_PROTO_E_NONE] unused) */
    int64_t auth_denied;                   /* connections the Curve allow-list refused */
    int64_t handshake_failed;              /* connections whose handshake failed */
    int64_t accept_pauses;                 /* times accepting stopped at the descriptor limit */
    int64_t unexpected_acks;               /* stop_acks from runs no stop was sent to */
    int64_t runs_evicted;                  /* ended runs dropped for new ones (--max-runs) */
    int64_t runs_refused;                  /* messages of new runs refused: too many live */
    int64_t layers_shed;                   /* layers of a run over its share, not analysed */
    int64_t snapshots_shed;                /* snapshots of a run with max_open in flight */
    int64_t run_bytes_max;                 /* the most bytes one run had waiting for analysis */
} at_record_stats;

/* One record. Strings and arrays are borrowed: from the writer's variables when encoding, from
 * the decoder when decoded. */
typedef struct at_record {
    at_record_type type;
    const char *run; /* "run": required but for events, where NULL (or "") is monitor-wide,
                        and stats, which have none */
    int64_t step;    /* "step" (not in stats); an event's is not written when < 0; -1 when
                        absent */
    union {
        at_record_layer layer;
        at_record_scalars scalars;
        at_record_event event;
        at_record_spectrum spectrum;
        at_record_weights weights;
        at_record_stats stats;
    } u;
} at_record;

/* The record as one line of JSON text, no newline, *len bytes (len may be NULL). Caller owns
 * return value (free with at_record_text_free). NULL with *status (may be NULL) set to
 * AT_ERR_ARG (a record the schema cannot hold: unknown type or kind, a missing run, name or
 * scalar name) or AT_ERR_NOMEM. */
char *at_record_encode(const at_record *r, size_t *len, int *status);

/* Frees a text at_record_encode returned. NULL-safe. */
void at_record_text_free(char *text);

/* "event", "layer", ... ; "hello", "goodbye", ... ; "w", "delta". Static strings ("?" for an
 * invalid value). */
const char *at_record_type_name(at_record_type t);
const char *at_record_kind_name(at_record_kind k);
const char *at_record_view_name(at_space view);

/* The kind of event the model shows for an event record: info for hello, goodbye and info,
 * warning for warning, stop for stop and ack, the collapse's warning for a run entering it
 * (at_run_phase_event_kind). The live engine and the replay of a run log both classify through
 * this. */
at_event_kind at_record_model_kind(const at_record_event *e);

/* Decoding: a decoder keeps what the last decoded record borrows (the parsed tree, the
 * scalars, the eigenvalues), reusing its memory from one record to the next. */
typedef struct at_record_decoder at_record_decoder;

/* Caller owns return value (free with at_record_decoder_free); NULL with *status (may be NULL)
 * AT_ERR_NOMEM. */
at_record_decoder *at_record_decoder_new(int *status);

/* NULL-safe. */
void at_record_decoder_free(at_record_decoder *self);

/* Reads the JSON object json (len bytes, no NUL needed) into *out, whose strings and arrays are
 * owned by self until its next decode or free. Returns AT_OK, AT_ERR_FORMAT (see the top) or
 * AT_ERR_NOMEM. */
int at_record_decode(at_record_decoder *self, const char *json, size_t len, at_record *out);

/* One column of a layer record as written: its name and value. */
typedef struct at_record_column {
    const char *name;
    enum { AT_COLUMN_NULL, AT_COLUMN_NUMBER, AT_COLUMN_STRING, AT_COLUMN_SHAPE } type;
    double number;
    const char *string;
    int ndim; /* AT_COLUMN_SHAPE: shape[0..ndim-1] */
    const int64_t *shape;
} at_record_column;

/* Calls fn(ctx, column) for every column of the layer record r after its name, in the order
 * at_record_encode writes them (the metric columns, or status and error; then kind and shape).
 * The column is borrowed for the call. Returns AT_OK, AT_ERR_ARG (r is no layer
 * record) or AT_ERR_NOMEM. */
int at_record_layer_columns(const at_record *r, void (*fn)(void *ctx, const at_record_column *c),
                            void *ctx);

#endif
