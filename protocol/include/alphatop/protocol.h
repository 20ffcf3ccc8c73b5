/* SPDX-License-Identifier: Apache-2.0 */
/* protocol.h -- alphatop's wire format: a JSON header frame plus, for layers, one raw payload
 * frame. No ZeroMQ in here: the encoder turns a message into header bytes (the payload is the
 * caller's pointer), the decoder turns frames back into a message with strict validation.
 * docs/protocol.md is the normative description (field names, limits, a worked example).
 *
 * Decoding never allocates: every string lands in a fixed-size array of at_proto_msg, and a
 * layer's data pointer points into the caller's payload frame (borrowed, not copied).
 *
 * Threading: every function is reentrant; no global state.
 *
 * Visibility: at_protocol is a static library compiled with hidden visibility. Inside the
 * agent's libalphatop_agent.so only at_proto_default_endpoint is exported (AT_EXPORT), because
 * the Python binding calls it; everything else here is for alphatop's own programs.
 */
#ifndef ALPHATOP_PROTOCOL_H
#define ALPHATOP_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version the encoder writes. The decoder reads AT_PROTO_VERSION_MIN..AT_PROTO_VERSION: a
 * version 1 message is a version 2 one without the fields and the message type version 2 added
 * (docs/protocol.md says which), so a version 1 publisher still works with this monitor. */
#define AT_PROTO_VERSION 2
#define AT_PROTO_VERSION_MIN 1

/* Sizes of the fixed string fields, in bytes including the terminating NUL. A longer string on
 * the wire is rejected (AT_PROTO_E_STRING), never truncated. */
#define AT_PROTO_MAX_ID 128       /* run id */
#define AT_PROTO_MAX_NAME 256     /* layer name, model name, host */
#define AT_PROTO_MAX_SHORT 64     /* framework, tag key, scalar name */
#define AT_PROTO_MAX_TEXT 1024    /* stop reason, tag value */
#define AT_PROTO_MAX_TAGS 32      /* user tags in a hello */
#define AT_PROTO_MAX_SCALARS 64   /* named values in one scalars message */
#define AT_PROTO_MAX_DIMS 4       /* layers are 2-D (linear, embedding, LoRA), 3-D or 4-D (conv) */
#define AT_PROTO_MAX_HEADER 65536 /* default limit on a header frame, bytes */
#define AT_PROTO_MAX_PAYLOAD ((uint64_t)4 << 30) /* default limit on a payload frame: 4 GiB */
/* Integers travel as JSON numbers (doubles): every integer up to 2^53 - 1 has its own double,
 * and a larger text (2^53 + 1) would silently read as a neighbour, so those are refused. */
#define AT_PROTO_MAX_INT (((int64_t)1 << 53) - 1)

/* Message kinds. Trainer -> monitor: HELLO .. GOODBYE, STOP_ACK and SKIP; monitor -> trainer:
 * STOP .. HELLO_REQUEST and GOODBYE_ACK (at_proto_from_trainer tells them apart). The wire name
 * of each is at_proto_type_name(). */
typedef enum at_proto_type {
    AT_PROTO_HELLO = 0,          /* "hello": who the run is */
    AT_PROTO_LAYER = 1,          /* "layer": one layer's weights (header + payload frame) */
    AT_PROTO_SNAPSHOT_END = 2,   /* "snapshot_end": a snapshot is complete */
    AT_PROTO_SCALARS = 3,        /* "scalars": named numbers at a step (loss, accuracy, lr) */
    AT_PROTO_GOODBYE = 4,        /* "goodbye": the run ends */
    AT_PROTO_STOP_ACK = 5,       /* "stop_ack": the trainer has seen the stop request */
    AT_PROTO_STOP = 6,           /* "stop": please stop training (with a reason) */
    AT_PROTO_PAUSE = 7,          /* "pause": stop sending snapshots until resume */
    AT_PROTO_RESUME = 8,         /* "resume" */
    AT_PROTO_INTERVAL = 9,       /* "interval": snapshot every N steps from now on */
    AT_PROTO_HELLO_REQUEST = 10, /* "hello_request": the monitor does not know this run yet */
    AT_PROTO_SKIP = 11,          /* "skip" (version 2): a layer left out of a snapshot, and why */
    AT_PROTO_GOODBYE_ACK = 12    /* "goodbye_ack" (version 2): the monitor has read the run's
                                    goodbye, and so everything before it; the trainer may close */
} at_proto_type;

/* Layer kinds; numbering matches core's at_layer_kind for the first four. */
typedef enum at_proto_kind {
    AT_PROTO_KIND_LINEAR = 0,    /* "linear", 2-D (out, in) */
    AT_PROTO_KIND_CONV2D = 1,    /* "conv2d", 4-D (out, in, kh, kw) */
    AT_PROTO_KIND_EMBEDDING = 2, /* "embedding", 2-D (num, dim) */
    AT_PROTO_KIND_CONV1D = 3,    /* "conv1d", 3-D (out, in, k) */
    AT_PROTO_KIND_LORA_A = 4,    /* "lora_A", 2-D (r, in) */
    AT_PROTO_KIND_LORA_B = 5,    /* "lora_B", 2-D (out, r) */
} at_proto_kind;

/* Element types; numbering matches core's at_dtype. */
typedef enum at_proto_dtype {
    AT_PROTO_F32 = 0,  /* "f32", 4 bytes */
    AT_PROTO_F16 = 1,  /* "f16", IEEE half, 2 bytes */
    AT_PROTO_BF16 = 2, /* "bf16", bfloat16, 2 bytes */
} at_proto_dtype;

/* Why a message was rejected. Each has a distinct name (at_proto_reason_name) and maps to one
 * at_status (at_proto_reason_status). */
typedef enum at_proto_reason {
    AT_PROTO_E_NONE = 0,
    AT_PROTO_E_FRAMES,           /* wrong number of frames for the message type */
    AT_PROTO_E_HEADER_SIZE,      /* header frame empty or larger than the limit */
    AT_PROTO_E_PAYLOAD_SIZE,     /* payload frame larger than the limit */
    AT_PROTO_E_JSON,             /* header is not a JSON object */
    AT_PROTO_E_VERSION,          /* "v" is not a version this decoder speaks */
    AT_PROTO_E_TYPE,             /* unknown message type */
    AT_PROTO_E_MISSING,          /* a required field is absent */
    AT_PROTO_E_FIELD_TYPE,       /* a field has the wrong JSON type (or is not an integer) */
    AT_PROTO_E_VALUE,            /* a field's value is out of range or not a known name */
    AT_PROTO_E_STRING,           /* a string is longer than its fixed field */
    AT_PROTO_E_TOO_MANY,         /* more tags, scalars or dimensions than allowed */
    AT_PROTO_E_SHAPE,            /* absurd shape: zero or huge dims, product overflows the limit,
                                    ndim not matching the kind */
    AT_PROTO_E_PAYLOAD_MISMATCH, /* payload bytes != shape x dtype size (or != "nbytes") */
    AT_PROTO_E_CHECKSUM,         /* payload does not match its checksum */
    AT_PROTO_E_TEXT,             /* header not UTF-8, or a string holds NUL or a control char */
    AT_PROTO_E_DIRECTION,        /* a control message sent to the monitor, or a trainer's
                                    message sent to a trainer (set by the receiver, not decode) */
    AT_PROTO_E_NOT_OWNER,        /* a message for a run id another connection owns (set by the
                                    receiver, not decode) */
    AT_PROTO_E_COUNT             /* number of reasons (not a reason) */
} at_proto_reason;

/* A rejection: the reason and a human-readable message naming the field. */
typedef struct at_proto_error {
    at_proto_reason reason;
    char message[256];
} at_proto_error;

/* Decoder limits; at_proto_limits_default() gives the AT_PROTO_MAX_* values. */
typedef struct at_proto_limits {
    size_t max_header;    /* bytes in a header frame */
    uint64_t max_payload; /* bytes in a payload frame */
} at_proto_limits;

typedef struct at_proto_tag {
    char key[AT_PROTO_MAX_SHORT];
    char value[AT_PROTO_MAX_TEXT];
} at_proto_tag;

typedef struct at_proto_scalar {
    char name[AT_PROTO_MAX_SHORT];
    double value; /* NaN when the wire said null */
} at_proto_scalar;

typedef struct at_proto_hello {
    char model[AT_PROTO_MAX_NAME];
    char framework[AT_PROTO_MAX_SHORT]; /* "pytorch", "numpy", "c", ... */
    char host[AT_PROTO_MAX_NAME];
    int64_t pid;
    int64_t rank;       /* 0 <= rank < world_size */
    int64_t world_size; /* >= 1 */
    int64_t interval;   /* snapshot every this many steps, >= 1 */
    int64_t dropped;    /* snapshots the agent dropped so far (monitor slow or absent) */
    int ntags;
    at_proto_tag tags[AT_PROTO_MAX_TAGS];
} at_proto_hello;

typedef struct at_proto_layer {
    int64_t step;  /* training step of these weights (version 2: a snapshot sent over several
                      steps has layers of several steps, see docs/protocol.md section 6) */
    int64_t seq;   /* snapshot sequence number, 0, 1, 2, ... per run (gaps = dropped) */
    int64_t index; /* position of this layer in the snapshot (model order), from 0; -1 unknown */
    int64_t rank;  /* version 2: the rank that sent it (0 <= rank < 2^24) [0] */
    int64_t first_step; /* version 2: the step the snapshot began at (<= step) [step] */
    char name[AT_PROTO_MAX_NAME];
    at_proto_kind kind;
    int base; /* 1: the base weights of a fine-tune (sent once), 0: the current weights */
    int ndim;
    int64_t shape[AT_PROTO_MAX_DIMS]; /* row-major (C order) */
    at_proto_dtype dtype;
    int big_endian;   /* 0: little-endian payload (the norm); 1: big-endian */
    uint64_t nbytes;  /* payload size = product(shape) x dtype size */
    int has_checksum; /* 1: crc32 below was sent and verified */
    uint32_t crc32;   /* CRC-32 (ISO-HDLC, as zlib's crc32) of the payload */
    /* Version 2: a slice of a layer that several ranks hold in parts. The payload (shape) is
     * the block of the whole layer (full_shape, same ndim) starting at offset. */
    int sliced;
    int64_t full_shape[AT_PROTO_MAX_DIMS];
    int64_t offset[AT_PROTO_MAX_DIMS];
    const void *data; /* the payload; borrowed from the caller's frame */
} at_proto_layer;

typedef struct at_proto_snapshot_end {
    int64_t step; /* step of the snapshot's last layer */
    int64_t seq;
    int64_t layers;     /* how many layer messages the snapshot had (from this rank) */
    int64_t dropped;    /* snapshots the agent dropped so far */
    int64_t first_step; /* version 2: step of its first layer (<= step) [step] */
    int64_t total;      /* version 2: positions in the snapshot, layers sent, skipped or left to
                           other ranks [layers + skipped] */
    int64_t skipped;    /* version 2: layers left out (each announced by a skip message) [0] */
    int64_t rank;       /* version 2: the rank that sent it [0] */
} at_proto_snapshot_end;

/* Version 2: a layer the agent leaves out of a snapshot (it can never fit its byte budget). */
typedef struct at_proto_skip {
    int64_t step;
    int64_t seq;
    int64_t index; /* its position in the snapshot */
    int64_t rank;
    char name[AT_PROTO_MAX_NAME];
    uint64_t nbytes;                /* the payload it would have had */
    char reason[AT_PROTO_MAX_TEXT]; /* for people: "larger than the byte budget (...)" */
} at_proto_skip;

typedef struct at_proto_scalars {
    int64_t step;
    int64_t dropped; /* snapshots the agent dropped so far */
    int n;
    at_proto_scalar values[AT_PROTO_MAX_SCALARS];
} at_proto_scalars;

typedef struct at_proto_goodbye {
    int64_t step;    /* last step the trainer reached */
    int64_t dropped; /* snapshots the agent dropped in the whole run */
    int64_t rank;    /* version 2: the rank that ends [0] */
} at_proto_goodbye;

/* One message. `run` identifies the run on every message, in both directions. */
typedef struct at_proto_msg {
    int version; /* the message's version after decoding (1 or 2); the encoder writes
                    AT_PROTO_VERSION whatever it holds */
    at_proto_type type;
    char run[AT_PROTO_MAX_ID];
    union {
        at_proto_hello hello;               /* AT_PROTO_HELLO */
        at_proto_layer layer;               /* AT_PROTO_LAYER */
        at_proto_snapshot_end snapshot_end; /* AT_PROTO_SNAPSHOT_END */
        at_proto_scalars scalars;           /* AT_PROTO_SCALARS */
        at_proto_goodbye goodbye;           /* AT_PROTO_GOODBYE */
        at_proto_skip skip;                 /* AT_PROTO_SKIP */
        char reason[AT_PROTO_MAX_TEXT];     /* AT_PROTO_STOP and AT_PROTO_STOP_ACK */
        int64_t interval;                   /* AT_PROTO_INTERVAL, >= 1 */
    } u;
} at_proto_msg;

/* One frame as received: borrowed bytes. */
typedef struct at_proto_frame {
    const void *data;
    size_t size;
} at_proto_frame;

/* Fills *lim with the defaults (AT_PROTO_MAX_HEADER, AT_PROTO_MAX_PAYLOAD). */
void at_proto_limits_default(at_proto_limits *lim);

/* Encodes m's header as JSON into buf (capacity cap bytes) and sets *len (no NUL counted; buf
 * is NUL-terminated). For a layer, the payload frame to send next is m->u.layer.data with
 * m->u.layer.nbytes bytes; the header carries m->u.layer.crc32 when has_checksum is set (the
 * caller computes it with at_proto_crc32). The message is validated exactly as the decoder
 * would, so nothing the encoder produces is rejected. Returns AT_OK, or the status of the
 * failed check with *err filled (err may be NULL); AT_ERR_SIZE if cap is too small. */
int at_proto_encode(const at_proto_msg *m, char *buf, size_t cap, size_t *len, at_proto_error *err);

/* Decodes one message from its frames (1 frame, or 2 for a layer: header then payload).
 * lim NULL means defaults. On success *out is filled and out->u.layer.data points into
 * frames[1] (borrowed). On failure returns the reason's status (at_proto_reason_status), fills
 * *err (may be NULL) and leaves *out unspecified. Never reads past the given sizes and never
 * allocates from a size it has not checked against the limits. */
int at_proto_decode(const at_proto_frame *frames, size_t nframes, const at_proto_limits *lim,
                    at_proto_msg *out, at_proto_error *err);

/* The two halves of at_proto_decode, for readers that see the payload frame only after the
 * header: decode_header validates everything the header says (for a layer: shape, dtype and
 * nbytes against the limits); at_proto_needs_payload tells whether a payload frame follows;
 * attach_payload checks its size and checksum and sets m->u.layer.data (borrowed). */
int at_proto_decode_header(const void *header, size_t size, const at_proto_limits *lim,
                           at_proto_msg *out, at_proto_error *err);
int at_proto_needs_payload(const at_proto_msg *m);
int at_proto_attach_payload(at_proto_msg *m, const void *payload, size_t size, at_proto_error *err);

/* CRC-32 (polynomial 0xEDB88320 reflected, as zlib's crc32 and Python's zlib.crc32). Start with
 * crc = 0; feed chunks by passing the previous result. */
uint32_t at_proto_crc32(uint32_t crc, const void *data, size_t n);

/* Bytes per element of a dtype (4 or 2); 0 for an invalid value. */
size_t at_proto_dtype_size(at_proto_dtype d);

/* Wire names ("layer", "lora_A", "bf16", "bad_checksum"). Static strings, never NULL ("?" for
 * an invalid value). */
const char *at_proto_type_name(at_proto_type t);
const char *at_proto_kind_name(at_proto_kind k);
const char *at_proto_dtype_name(at_proto_dtype d);
const char *at_proto_reason_name(at_proto_reason r);

/* Parses a wire name back; returns 0 and sets *out, or AT_ERR_NOTFOUND. */
int at_proto_kind_parse(const char *name, at_proto_kind *out);
int at_proto_dtype_parse(const char *name, at_proto_dtype *out);

/* The endpoint both sides use when none is given: $ALPHATOP_ENDPOINT if set and non-empty,
 * else "ipc:///tmp/alphatop-UID.ipc" (UID: the real user id, so users do not collide). Writes a
 * NUL-terminated string into buf; AT_ERR_SIZE if cap is too small. */
AT_EXPORT int at_proto_default_endpoint(char *buf, size_t cap);

/* The at_status a rejection reason is reported as (AT_ERR_FORMAT, AT_ERR_SIZE, ...). */
int at_proto_reason_status(at_proto_reason r);

/* 1 for the types a trainer sends (hello, layer, snapshot_end, scalars, goodbye, stop_ack,
 * skip), 0 for the control types the monitor sends (stop, pause, resume, interval,
 * hello_request, goodbye_ack). */
int at_proto_from_trainer(at_proto_type t);

/* Who can reach a ZeroMQ endpoint someone binds, judged from its text alone (no lookup). */
typedef enum at_proto_scope {
    AT_PROTO_SCOPE_PROCESS = 0, /* inproc://: this process only */
    AT_PROTO_SCOPE_USER = 1,    /* ipc:// socket file: whom its mode admits (the monitor: 0600) */
    AT_PROTO_SCOPE_HOST = 2,    /* tcp/ws/wss on 127.0.0.0/8, ::1 or localhost, or an abstract
                                   ipc socket (ipc://@name): every user of this machine */
    AT_PROTO_SCOPE_NETWORK = 3  /* anything else: other addresses, "*", host and interface
                                   names, pgm, epgm, vmci, tipc, udp, unknown or malformed */
} at_proto_scope;

/* The scope of endpoint (NULL: network). Loopback is recognised only in numeric form
 * (127.x.y.z, [::1], ::ffff:127.x.y.z) or as "localhost"; anything it cannot prove local counts
 * as the network, so the caller errs on the side of asking for CurveZMQ. */
at_proto_scope at_proto_endpoint_scope(const char *endpoint);

#ifdef __cplusplus
}
#endif
#endif
