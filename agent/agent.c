/* SPDX-License-Identifier: Apache-2.0 */
/* agent.c -- the trainer-side publisher (API and guarantees in alphatop/agent.h).
 *
 * Every buffer handed to ZeroMQ comes from the agent's byte-budgeted pool (pool.h), which
 * accounts for it until ZeroMQ's I/O thread has written it: the budget check before each copy
 * (at_bufpool_fits) sees exactly what is still held. The snapshot being sent, position by
 * position over one or more passes, is sweep.h's. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "alphatop/agent.h"
#include "alphatop/keyfile.h"
#include "alphatop/text.h"
#include "pool.h"
#include "sweep.h"

#define HDR_CAP (AT_PROTO_MAX_HEADER + 8)

/* The automatic budget (budget_bytes 0): at least this, and twice the largest layer. */
#define AUTO_BUDGET ((int64_t)256 << 20)
/* A layer header's size for at_agent_layer_wanted, before it is encoded: the largest name and
 * every field at its widest fit well inside. */
#define HDR_GUESS 1024

/* A new socket after a link ZeroMQ gave up on (watch_link): first after RETRY_FIRST_MS, then
 * twice as long each time the new link fails again, up to RETRY_MAX_MS; a link that lasted
 * LINK_STABLE_MS starts over. */
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 30000
#define LINK_STABLE_MS 30000
#define LINK_EVENTS                                                                                \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_DELAYED | ZMQ_EVENT_CONNECT_RETRIED |                 \
     ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |                                      \
     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |                  \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

/* Between begin and end: no pass, a pass that sends, a pass the monitor paused. */
enum pass_state { PASS_NONE, PASS_OPEN, PASS_PAUSED };

struct at_agent {
    pthread_mutex_t lock;
    pid_t pid; /* the process that owns the ZeroMQ context; anyone else only frees memory */
    void *ctx, *sock, *events; /* events: the DEALER's socket monitor (a PAIR socket) */
    char endpoint[1024];
    /* CurveZMQ keys in Z85 ("" without Curve), kept to set up a new socket; wiped at the end. */
    char curve_server[AT_KEY_Z85_LEN + 1], curve_public[AT_KEY_Z85_LEN + 1],
        curve_secret[AT_KEY_Z85_LEN + 1];
    /* The link (watch_link): when it was seen lost with ZeroMQ not retrying (0: it is not),
     * the wait before a new socket, when a handshake last succeeded, sockets made so far. */
    int64_t lost_ms, retry_ms, up_ms;
    unsigned sockets;
    char run[AT_PROTO_MAX_ID];
    int64_t linger_ms, checksum, verbose, rank;
    int auto_budget;   /* budget_bytes 0: the budget grows with the largest layer */
    at_bufpool *pool;  /* every buffer handed to ZeroMQ, accounted against the budget */
    at_proto_msg *msg; /* scratch for encoding (large: kept off the stack) */
    at_proto_msg *hello;
    char *hdr; /* scratch header text, HDR_CAP bytes */
    int hello_due;
    /* Control state, as last set by the monitor. */
    int64_t interval;
    int paused, stop, stop_acked;
    int goodbye_acked; /* the monitor read the goodbye (and so all before it) */
    char stop_reason[AT_PROTO_MAX_TEXT];
    /* The snapshot being sent and the pass over it. */
    at_sweep sweep;
    enum pass_state pass;
    int64_t pass_step, next_seq, last_step;
    at_agent_stats stats;
    char err[256];
    char drop[256]; /* at_agent_last_drop */
};

static _Thread_local char new_error[256];

static int set_error(at_agent *a, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_error(at_agent *a, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof a->err, fmt, ap);
    va_end(ap);
    if (a->verbose)
        fprintf(stderr, "alphatop agent: %s\n", a->err);
    return status;
}

static void note_drop(at_agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_drop(at_agent *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->drop, sizeof a->drop, fmt, ap);
    va_end(ap);
    if (a->verbose)
        fprintf(stderr, "alphatop agent: %s\n", a->drop);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- sending ---- */

/* Hands buf (from at_bufpool_take, n bytes) to ZeroMQ without waiting. Ownership passes to
 * ZeroMQ, or the buffer is freed on failure. Returns 0 or -1 (errno from zmq). */
static int send_buffer(at_agent *a, char *buf, size_t n, int more)
{
    if (!a->sock) { /* a new socket could not be made; watch_link tries again */
        at_bufpool_release(buf, a->pool);
        errno = ENOTSOCK;
        return -1;
    }
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, buf, n, at_bufpool_release, a->pool) != 0) {
        at_bufpool_release(buf, a->pool);
        return -1;
    }
    if (zmq_msg_send(&m, a->sock, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        errno = e;
        return -1;
    }
    return 0;
}

/* Encodes a->msg into a fresh accounted buffer. NULL when over budget or on error (status in
 * *rc). */
static char *encode_msg(at_agent *a, size_t *len, int *rc)
{
    at_proto_error e;
    *rc = at_proto_encode(a->msg, a->hdr, HDR_CAP, len, &e);
    if (*rc != AT_OK) {
        set_error(a, *rc, "cannot encode %s: %s", at_proto_type_name(a->msg->type), e.message);
        return NULL;
    }
    if (!at_bufpool_fits_small(a->pool, *len)) {
        *rc = AT_ERR_AGAIN;
        return NULL;
    }
    char *buf = at_bufpool_take(a->pool, *len);
    if (!buf) {
        *rc = set_error(a, AT_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(buf, a->hdr, *len);
    return buf;
}

/* Sends a->msg as a one-frame message; counts it as dropped when it cannot be queued. */
static int send_single(at_agent *a)
{
    size_t len = 0;
    int rc;
    char *buf = encode_msg(a, &len, &rc);
    if (!buf || send_buffer(a, buf, len, 0) != 0) {
        if (rc != AT_OK && rc != AT_ERR_AGAIN)
            return rc;
        a->stats.messages_dropped++;
        return AT_ERR_AGAIN;
    }
    a->stats.bytes_queued += (int64_t)len;
    return AT_OK;
}

static void begin_msg(at_agent *a, at_proto_type type)
{
    memset(a->msg, 0, sizeof *a->msg);
    a->msg->type = type;
    memcpy(a->msg->run, a->run, sizeof a->run);
}

static int send_hello(at_agent *a)
{
    a->hello->u.hello.dropped = a->stats.snapshots_dropped;
    a->hello->u.hello.interval = a->interval;
    memcpy(a->msg, a->hello, sizeof *a->msg);
    int rc = send_single(a);
    if (rc == AT_OK)
        a->hello_due = 0;
    return rc;
}

/* Sends a pending hello before other messages, so a monitor meets the run first. */
static void flush_hello(at_agent *a)
{
    if (a->hello_due)
        send_hello(a);
}

/* ---- control from the monitor ---- */

static void apply_control(at_agent *a, const at_proto_msg *m)
{
    if (strcmp(m->run, a->run) != 0)
        return;
    a->stats.controls_received++;
    switch (m->type) {
    case AT_PROTO_STOP:
        if (!a->stop)
            snprintf(a->stop_reason, sizeof a->stop_reason, "%s", m->u.reason);
        a->stop = 1;
        break;
    case AT_PROTO_PAUSE:
        a->paused = 1;
        break;
    case AT_PROTO_RESUME:
        a->paused = 0;
        break;
    case AT_PROTO_INTERVAL:
        a->interval = m->u.interval;
        break;
    case AT_PROTO_HELLO_REQUEST:
        /* Only a monitor that never saw the run asks who it is: it did not pause it, and the
         * one that did is gone, so the pause ends instead of lasting forever. */
        a->paused = 0;
        a->hello_due = 1;
        break;
    case AT_PROTO_GOODBYE_ACK:
        a->goodbye_acked = 1;
        break;
    default:
        a->stats.controls_received--; /* not a control message: ignored */
        break;
    }
}

/* Reads every control message waiting on the socket, without blocking. */
static void drain_control(at_agent *a)
{
    while (a->sock) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, a->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        int more = zmq_msg_more(&m);
        at_proto_frame f = {zmq_msg_data(&m), zmq_msg_size(&m)};
        at_proto_error e;
        /* A multi-frame control message is not one the protocol defines: skip all its frames. */
        if (!more && at_proto_decode(&f, 1, NULL, a->msg, &e) == AT_OK)
            apply_control(a, a->msg);
        zmq_msg_close(&m);
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, a->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                return;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
    }
}

/* ---- lifecycle ---- */

void at_agent_opts_default(at_agent_opts *o)
{
    memset(o, 0, sizeof *o);
    o->model = "";
    o->framework = "c";
    o->world_size = 1;
    o->interval = 100;
    o->budget_bytes = 0;
    o->linger_ms = 2000;
}

size_t at_agent_opts_size(void)
{
    return sizeof(at_agent_opts);
}

static int fail_new(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail_new(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(new_error, sizeof new_error, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies s into dst (cap bytes) if it fits; 0 if it does not. */
static int copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= cap)
        return 0;
    memcpy(dst, s ? s : "", n + 1);
    return 1;
}

/* An empty environment variable counts as unset. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Reads the Curve keys opts (or the environment) name into a; none is fine (no Curve). */
static int load_curve(at_agent *a, const at_agent_opts *opts)
{
    /* The environment fills in keys the options leave out, as ALPHATOP_ENDPOINT does. */
    at_agent_opts copy = *opts, *o = &copy;
    if (!o->curve_server_key && !o->curve_client_keyfile) {
        o->curve_server_key = env("ALPHATOP_CURVE_SERVER");
        o->curve_client_keyfile = env("ALPHATOP_CURVE_KEY");
    }
    if (!o->curve_server_key && !o->curve_client_keyfile)
        return 0;
    if (!o->curve_server_key || !o->curve_client_keyfile)
        return fail_new("Curve needs both curve_server_key and curve_client_keyfile");
    if (!zmq_has("curve"))
        return fail_new("this libzmq has no CurveZMQ support");
    char err[256];
    if (at_key_is_z85(o->curve_server_key))
        memcpy(a->curve_server, o->curve_server_key, sizeof a->curve_server);
    else if (at_keyfile_read(o->curve_server_key, a->curve_server, NULL, err, sizeof err) != AT_OK)
        return fail_new("monitor key: %s", err);
    if (at_keyfile_read(o->curve_client_keyfile, a->curve_public, a->curve_secret, err,
                        sizeof err) != AT_OK)
        return fail_new("trainer key: %s", err);
    return 0;
}

/* Makes a->sock, a DEALER configured as docs/protocol.md says, with its socket monitor, and
 * connects it to a->endpoint. Returns 0, or -1 with a message in err. */
static int open_socket(at_agent *a, char *err, size_t errlen)
{
    if (!(a->sock = zmq_socket(a->ctx, ZMQ_DEALER))) {
        snprintf(err, errlen, "cannot create ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    /* The byte budget is the real limit; the HWM only stops a flood of tiny messages. Control
     * messages are small, so anything larger from the monitor side is refused by ZeroMQ. */
    int hwm = 10000, zero = 0;
    int64_t maxmsg = AT_PROTO_MAX_HEADER;
    if (zmq_setsockopt(a->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        (a->curve_server[0] &&
         (zmq_setsockopt(a->sock, ZMQ_CURVE_SERVERKEY, a->curve_server, AT_KEY_Z85_LEN) != 0 ||
          zmq_setsockopt(a->sock, ZMQ_CURVE_PUBLICKEY, a->curve_public, AT_KEY_Z85_LEN) != 0 ||
          zmq_setsockopt(a->sock, ZMQ_CURVE_SECRETKEY, a->curve_secret, AT_KEY_Z85_LEN) != 0))) {
        snprintf(err, errlen, "cannot configure ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    char mon[96];
    snprintf(mon, sizeof mon, "inproc://alphatop-agent-%p-%u", (void *)a, a->sockets++);
    if (zmq_socket_monitor(a->sock, mon, LINK_EVENTS) != 0 ||
        !(a->events = zmq_socket(a->ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(a->events, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(a->events, mon) != 0) {
        snprintf(err, errlen, "cannot watch the ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (zmq_connect(a->sock, a->endpoint) != 0) {
        /* an endpoint too long for err loses its middle, not the reason after it */
        char why[128];
        snprintf(why, sizeof why, ": %s", zmq_strerror(zmq_errno()));
        at_text_fit(err, errlen, "cannot connect to ", a->endpoint, why);
        return -1;
    }
    return 0;
}

/* Closes the socket and its monitor without waiting; what was queued is dropped (and its
 * buffers return to the pool). */
static void close_socket(at_agent *a)
{
    if (a->events) {
        /* Stop the monitor, then read what it already sent: libzmq 4.3 leaks an event frame
         * longer than its inline size (an endpoint address) that is still queued when its
         * PAIR socket closes. */
        if (a->sock)
            zmq_socket_monitor(a->sock, NULL, 0);
        zmq_msg_t m;
        zmq_msg_init(&m);
        while (zmq_msg_recv(&m, a->events, ZMQ_DONTWAIT) >= 0)
            ;
        zmq_msg_close(&m);
        zmq_close(a->events);
    }
    if (a->sock)
        zmq_close(a->sock);
    a->events = a->sock = NULL;
}

/* Keeps the link to the monitor. ZeroMQ reconnects by itself after a dropped connection, but
 * after a protocol error -- a frame over ZMQ_MAXMSGSIZE, a failed handshake -- libzmq 4.3
 * gives up on the endpoint for good: one oversized frame from whoever listens there would cut
 * the run off from every later monitor. The socket monitor tells the cases apart: after a
 * disconnection ZeroMQ reports its retry, or nothing. After nothing the agent makes a new
 * socket, and waits longer each time the new link fails quickly again, so a hostile peer
 * cannot keep the trainer busy. Never waits itself. */
static void watch_link(at_agent *a)
{
    int64_t t = now_ms();
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (!a->events || zmq_msg_recv(&ev, a->events, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t id = 0;
        if (zmq_msg_size(&ev) >= 6)
            memcpy(&id, zmq_msg_data(&ev), 2);
        /* The second frame (the endpoint) is part of the same message: already here. */
        while (zmq_msg_more(&ev) && zmq_msg_recv(&ev, a->events, 0) >= 0)
            ;
        zmq_msg_close(&ev);
        if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            a->up_ms = t;
        } else if (id == ZMQ_EVENT_CONNECTED || id == ZMQ_EVENT_CONNECT_DELAYED ||
                   id == ZMQ_EVENT_CONNECT_RETRIED) {
            a->lost_ms = 0; /* ZeroMQ is (re)connecting by itself */
        } else if (!a->lost_ms) {
            a->lost_ms = t; /* disconnected, or the handshake failed */
            if (a->up_ms && t - a->up_ms >= LINK_STABLE_MS)
                a->retry_ms = RETRY_FIRST_MS;
        }
    }
    if (!a->lost_ms || t - a->lost_ms < a->retry_ms)
        return;
    close_socket(a);
    char err[256];
    a->lost_ms = 0;
    a->up_ms = 0;
    if (open_socket(a, err, sizeof err) != 0) {
        close_socket(a);
        a->lost_ms = t;
        set_error(a, AT_ERR_NET, "cannot reconnect: %s", err);
    }
    a->retry_ms = 2 * a->retry_ms < RETRY_MAX_MS ? 2 * a->retry_ms : RETRY_MAX_MS;
    a->hello_due = 1; /* whoever listens now may not know the run */
}

/* The tag limits put_tag enforces, as a message format (max key, max value, max tags). */
#define TAG_LIMITS "tag key must be 1..%d bytes, value < %d bytes, at most %d tags"

/* Adds or replaces a tag of the hello h: AT_OK, AT_ERR_ARG (bad length) or AT_ERR_SIZE
 * (AT_PROTO_MAX_TAGS already). */
static int put_tag(at_proto_hello *h, const char *key, const char *value)
{
    if (!key || !*key || strlen(key) >= AT_PROTO_MAX_SHORT || !value ||
        strlen(value) >= AT_PROTO_MAX_TEXT)
        return AT_ERR_ARG;
    int i = 0;
    while (i < h->ntags && strcmp(h->tags[i].key, key) != 0)
        i++;
    if (i == AT_PROTO_MAX_TAGS)
        return AT_ERR_SIZE;
    snprintf(h->tags[i].key, sizeof h->tags[i].key, "%s", key);
    snprintf(h->tags[i].value, sizeof h->tags[i].value, "%s", value);
    if (i == h->ntags)
        h->ntags++;
    return AT_OK;
}

static void fill_hello(at_agent *a, const at_agent_opts *o, int *ok)
{
    at_proto_msg *h = a->hello;
    h->type = AT_PROTO_HELLO;
    memcpy(h->run, a->run, sizeof a->run);
    *ok = copy_str(h->u.hello.model, sizeof h->u.hello.model, o->model) &&
          copy_str(h->u.hello.framework, sizeof h->u.hello.framework, o->framework);
    if (o->host)
        *ok = *ok && copy_str(h->u.hello.host, sizeof h->u.hello.host, o->host);
    else if (gethostname(h->u.hello.host, sizeof h->u.hello.host) != 0)
        h->u.hello.host[0] = '\0';
    h->u.hello.host[sizeof h->u.hello.host - 1] = '\0';
    h->u.hello.pid = (int64_t)getpid();
    h->u.hello.rank = o->rank;
    h->u.hello.world_size = o->world_size;
    h->u.hello.interval = o->interval;
}

/* Frees everything without locking: no other thread uses the agent any more (ZeroMQ's context
 * is gone, or this is a forked child that never had its threads). */
static void destroy(at_agent *a)
{
    at_bufpool_free(a->pool);
    memset(a->curve_secret, 0, sizeof a->curve_secret);
    at_sweep_release(&a->sweep);
    free(a->msg);
    free(a->hello);
    free(a->hdr);
    free(a);
}

at_agent *at_agent_new(const char *run_id, const char *endpoint, const at_agent_opts *opts)
{
    at_agent_opts dflt;
    if (!opts) {
        at_agent_opts_default(&dflt);
        opts = &dflt;
    }
    new_error[0] = '\0';
    size_t rn = run_id ? strlen(run_id) : 0;
    if (rn == 0 || rn >= AT_PROTO_MAX_ID) {
        fail_new("run id must be 1..%d bytes", AT_PROTO_MAX_ID - 1);
        return NULL;
    }
    if (opts->interval < 1 || opts->budget_bytes < 0 || opts->linger_ms < 0 ||
        opts->world_size < 1 || opts->world_size > (1 << 24) || opts->rank < 0 ||
        opts->rank >= opts->world_size || opts->ntags < 0) {
        fail_new("bad options: need interval >= 1, budget_bytes >= 0, linger_ms >= 0, "
                 "0 <= rank < world_size <= 2^24 and ntags >= 0");
        return NULL;
    }
    const int64_t budget = opts->budget_bytes ? opts->budget_bytes : AUTO_BUDGET;
    at_agent *a = calloc(1, sizeof *a);
    if (!a || !(a->msg = calloc(1, sizeof *a->msg)) || !(a->hello = calloc(1, sizeof *a->hello)) ||
        !(a->hdr = malloc(HDR_CAP)) || !(a->pool = at_bufpool_new(budget, NULL))) {
        fail_new("out of memory");
        goto err;
    }
    memcpy(a->run, run_id, rn + 1);
    a->pid = getpid();
    a->linger_ms = opts->linger_ms;
    a->checksum = opts->checksum;
    a->verbose = opts->verbose;
    a->rank = opts->rank;
    a->interval = opts->interval;
    a->auto_budget = opts->budget_bytes == 0;
    /* Idle buffers are kept up to the whole budget: a snapshot larger than the budget cycles
     * through it, and the next pass reuses the buffers of the layers just written. */
    at_bufpool_set_keep(a->pool, budget);
    int ok;
    fill_hello(a, opts, &ok);
    if (!ok) {
        fail_new("model, framework or host name too long");
        goto err;
    }
    for (int64_t i = 0; i < opts->ntags; i++) {
        if (!opts->tag_keys || !opts->tag_values ||
            put_tag(&a->hello->u.hello, opts->tag_keys[i], opts->tag_values[i]) != AT_OK) {
            fail_new("opts tag %lld: " TAG_LIMITS, (long long)i, AT_PROTO_MAX_SHORT - 1,
                     AT_PROTO_MAX_TEXT, AT_PROTO_MAX_TAGS);
            goto err;
        }
    }
    /* Every message must encode: a name the decoder would refuse (a control character, bytes
     * that are not UTF-8) is an error now, not a hello that silently never goes out. */
    at_proto_error e;
    size_t len;
    if (at_proto_encode(a->hello, a->hdr, HDR_CAP, &len, &e) != AT_OK) {
        fail_new("run id, model, framework, host or tags: %s", e.message);
        goto err;
    }
    if (endpoint && *endpoint) {
        if (!copy_str(a->endpoint, sizeof a->endpoint, endpoint)) {
            fail_new("endpoint too long");
            goto err;
        }
    } else if (at_proto_default_endpoint(a->endpoint, sizeof a->endpoint) != AT_OK) {
        fail_new("ALPHATOP_ENDPOINT too long");
        goto err;
    }
    if (load_curve(a, opts) != 0)
        goto err;
    char err[256];
    if (!(a->ctx = zmq_ctx_new()) || open_socket(a, err, sizeof err) != 0) {
        fail_new("%s", a->ctx ? err : "cannot create a ZeroMQ context");
        goto err;
    }
    a->retry_ms = RETRY_FIRST_MS;
    pthread_mutex_init(&a->lock, NULL);
    a->hello_due = 1;
    flush_hello(a);
    return a;
err:
    if (a) {
        close_socket(a);
        if (a->ctx)
            zmq_ctx_term(a->ctx);
        destroy(a);
    }
    return NULL;
}

void at_agent_free(at_agent *a)
{
    if (!a)
        return;
    if (getpid() != a->pid) {
        /* A forked child: the ZeroMQ context belongs to the parent; only free our memory. */
        destroy(a);
        return;
    }
    pthread_mutex_lock(&a->lock);
    flush_hello(a);
    begin_msg(a, AT_PROTO_GOODBYE);
    a->msg->u.goodbye.step = a->last_step;
    a->msg->u.goodbye.dropped = a->stats.snapshots_dropped;
    a->msg->u.goodbye.rank = a->rank;
    const int64_t deadline = now_ms() + a->linger_ms;
    /* Closing while the monitor has not read everything can lose the tail (docs/protocol.md
     * section 6): wait, within linger, for the monitor to say it read the goodbye. */
    if (send_single(a) == AT_OK)
        while (a->sock && !a->goodbye_acked && now_ms() < deadline) {
            zmq_pollitem_t it = {.socket = a->sock, .events = ZMQ_POLLIN};
            int64_t left = deadline - now_ms();
            if (zmq_poll(&it, 1, left > INT32_MAX ? INT32_MAX : (long)left) < 0 && errno != EINTR)
                break;
            drain_control(a);
        }
    int64_t left = deadline - now_ms();
    int linger = left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
    if (a->sock)
        zmq_setsockopt(a->sock, ZMQ_LINGER, &linger, sizeof linger);
    close_socket(a);
    /* Returns once everything is written or linger passed; ZeroMQ then has released every
     * buffer it held, so the pool only counts our own. */
    zmq_ctx_term(a->ctx);
    pthread_mutex_unlock(&a->lock);
    pthread_mutex_destroy(&a->lock);
    destroy(a);
}

/* Refuses a forked child (ZeroMQ is the parent's), then takes the lock. */
static int lock(at_agent *a)
{
    if (!a)
        return AT_ERR_ARG;
    if (getpid() != a->pid)
        return AT_ERR_STATE;
    pthread_mutex_lock(&a->lock);
    return AT_OK;
}

/* Entry of every call: refuses a forked child, takes the lock, hears the monitor and answers
 * its hello request. */
static int enter(at_agent *a)
{
    int rc = lock(a);
    if (rc != AT_OK)
        return rc;
    watch_link(a);
    drain_control(a);
    flush_hello(a);
    return AT_OK;
}

static int leave(at_agent *a, int rc)
{
    pthread_mutex_unlock(&a->lock);
    return rc;
}

int at_agent_set_tag(at_agent *a, const char *key, const char *value)
{
    /* No hello from here: several tags set in a row go out in one hello. */
    int rc = lock(a);
    if (rc != AT_OK)
        return rc;
    /* Tried on a copy: a tag the hello cannot carry leaves the hello as it was. */
    memcpy(a->msg, a->hello, sizeof *a->msg);
    rc = put_tag(&a->msg->u.hello, key, value);
    if (rc != AT_OK)
        return leave(a, set_error(a, rc, TAG_LIMITS, AT_PROTO_MAX_SHORT - 1, AT_PROTO_MAX_TEXT,
                                  AT_PROTO_MAX_TAGS));
    at_proto_error e;
    size_t len;
    if (at_proto_encode(a->msg, a->hdr, HDR_CAP, &len, &e) != AT_OK)
        return leave(a, set_error(a, AT_ERR_ARG, "tag %s: %s", key, e.message));
    memcpy(a->hello, a->msg, sizeof *a->hello);
    a->hello_due = 1;
    return leave(a, AT_OK);
}

int64_t at_agent_interval(at_agent *a)
{
    int rc = enter(a);
    if (rc != AT_OK)
        return rc;
    int64_t v = a->interval;
    leave(a, AT_OK);
    return v;
}

int at_agent_paused(at_agent *a)
{
    if (enter(a) != AT_OK)
        return 0;
    return leave(a, a->paused);
}

int at_agent_snapshot_due(at_agent *a, int64_t step)
{
    if (enter(a) != AT_OK)
        return 0;
    return leave(a, step >= 0 && !a->paused && (a->sweep.open || step % a->interval == 0));
}

/* Queues the end of the open snapshot. Returns AT_OK or AT_ERR_AGAIN (no room or no socket:
 * the snapshot stays open and the next pass tries again). */
static int send_end(at_agent *a)
{
    const at_sweep *w = &a->sweep;
    begin_msg(a, AT_PROTO_SNAPSHOT_END);
    at_proto_snapshot_end *e = &a->msg->u.snapshot_end;
    e->step = w->last_step;
    e->first_step = w->first_step;
    e->seq = w->seq;
    e->layers = w->sent;
    e->skipped = w->skipped;
    e->total = w->n >= 0 ? w->n : w->cursor;
    e->rank = a->rank;
    e->dropped = a->stats.snapshots_dropped;
    size_t len = 0;
    int rc;
    char *buf = encode_msg(a, &len, &rc);
    if (!buf || send_buffer(a, buf, len, 0) != 0)
        return AT_ERR_AGAIN;
    a->stats.bytes_queued += (int64_t)len;
    return AT_OK;
}

/* Ends the open pass (see at_agent_snapshot_end). */
static int end_pass(at_agent *a)
{
    const enum pass_state p = a->pass;
    a->pass = PASS_NONE;
    if (p != PASS_OPEN)
        return AT_ERR_AGAIN;
    at_sweep *w = &a->sweep;
    const int state = at_sweep_pass_end(w);
    if (state < 0) {
        /* What was sent still goes to the monitor, which reports the snapshot incomplete. */
        send_end(a);
        w->open = 0;
        a->stats.snapshots_dropped++;
        note_drop(a, "snapshot %lld abandoned at step %lld: its layer list changed between passes",
                  (long long)w->seq, (long long)a->pass_step);
        return AT_ERR_AGAIN;
    }
    if (state == 0 || send_end(a) != AT_OK)
        return AT_ERR_AGAIN;
    w->open = 0;
    a->stats.snapshots_sent++;
    return AT_OK;
}

int at_agent_snapshot_begin(at_agent *a, int64_t step)
{
    int rc = enter(a);
    if (rc != AT_OK)
        return rc;
    if (step < 0 || step > AT_PROTO_MAX_INT)
        return leave(a, set_error(a, AT_ERR_ARG, "step must be >= 0"));
    if (a->pass != PASS_NONE)
        end_pass(a);
    a->last_step = step;
    at_sweep *w = &a->sweep;
    if (a->paused) {
        a->pass = PASS_PAUSED;
        if (!w->open)
            a->stats.snapshots_skipped++;
        return leave(a, AT_ERR_AGAIN);
    }
    if (!w->open) {
        at_sweep_start(w, a->next_seq++, step);
    } else if (step % a->interval == 0 && step > w->due_step) {
        /* A snapshot is due while the last one is still going out: this one is not taken. */
        w->due_step = step;
        a->stats.snapshots_dropped++;
        note_drop(a,
                  "snapshot at step %lld not taken: snapshot %lld (from step %lld) is still being "
                  "sent, %lld of %lld layers done; %lld of %lld budget bytes held",
                  (long long)step, (long long)w->seq, (long long)w->first_step, (long long)w->done,
                  (long long)w->n, (long long)at_bufpool_out(a->pool),
                  (long long)at_bufpool_budget(a->pool));
    }
    at_sweep_pass(w);
    a->pass = PASS_OPEN;
    a->pass_step = step;
    return leave(a, AT_OK);
}

/* Validates a layer's arguments into a->msg (its position not yet set); sets *nbytes and the
 * layer's identity for sweep.h. */
static int fill_layer(at_agent *a, const char *name, at_proto_kind kind, at_proto_dtype dtype,
                      int ndim, const int64_t *shape, unsigned flags, const int64_t *full_shape,
                      const int64_t *offset, uint64_t *nbytes, uint64_t *ident)
{
    begin_msg(a, AT_PROTO_LAYER);
    at_proto_layer *l = &a->msg->u.layer;
    if (!name || !*name || !copy_str(l->name, sizeof l->name, name))
        return set_error(a, AT_ERR_ARG, "layer name must be 1..%d bytes", AT_PROTO_MAX_NAME - 1);
    if (at_proto_dtype_size(dtype) == 0 || (unsigned)kind > AT_PROTO_KIND_LORA_B)
        return set_error(a, AT_ERR_ARG, "%s: unknown kind %d or dtype %d", name, (int)kind,
                         (int)dtype);
    if (!shape || ndim < 1 || ndim > AT_PROTO_MAX_DIMS || (!full_shape != !offset))
        return set_error(a, AT_ERR_ARG,
                         "%s: need 1..%d dims (and both or neither of full_shape "
                         "and offset)",
                         name, AT_PROTO_MAX_DIMS);
    int64_t id[3 + 3 * AT_PROTO_MAX_DIMS] = {kind, dtype, flags};
    uint64_t n = at_proto_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || (uint64_t)shape[i] > AT_PROTO_MAX_PAYLOAD / n)
            return set_error(a, AT_ERR_SIZE, "%s: dimension %d is %lld", name, i,
                             (long long)shape[i]);
        if (full_shape &&
            (offset[i] < 0 || full_shape[i] > INT32_MAX || offset[i] > full_shape[i] - shape[i]))
            return set_error(a, AT_ERR_SIZE,
                             "%s: slice [%lld, %lld) of dimension %d is not inside "
                             "0..%lld",
                             name, (long long)offset[i], (long long)(offset[i] + shape[i]), i,
                             (long long)full_shape[i]);
        n *= (uint64_t)shape[i];
        l->shape[i] = id[3 + i] = shape[i];
        if (full_shape) {
            l->full_shape[i] = id[3 + AT_PROTO_MAX_DIMS + i] = full_shape[i];
            l->offset[i] = id[3 + 2 * AT_PROTO_MAX_DIMS + i] = offset[i];
        }
    }
    l->sliced = full_shape != NULL;
    l->step = a->pass_step;
    l->first_step = a->sweep.first_step;
    l->seq = a->sweep.seq;
    l->rank = a->rank;
    l->kind = kind;
    l->base = (flags & AT_AGENT_BASE) ? 1 : 0;
    l->ndim = ndim;
    l->dtype = dtype;
    l->big_endian = (union {
                        uint16_t u;
                        unsigned char b[2];
                    }){.u = 1}
                        .b[0] == 0;
    l->nbytes = n;
    *nbytes = n;
    *ident = at_sweep_ident(name, id, 3 + 3 * AT_PROTO_MAX_DIMS);
    return AT_OK;
}

/* The budget a layer of need bytes (header included) meets: the automatic one grows to twice
 * the largest layer. */
static int64_t budget_for(at_agent *a, uint64_t need)
{
    int64_t b = at_bufpool_budget(a->pool);
    if (a->auto_budget && (uint64_t)b < 2 * need)
        b = (int64_t)(2 * need);
    return b;
}

/* Leaves out position index, whose layer (a->msg) of need bytes can never fit the budget: a
 * skip message says so to the monitor. */
static int skip_layer(at_agent *a, int64_t index, uint64_t need)
{
    const at_proto_layer l = a->msg->u.layer;
    at_sweep_mark(&a->sweep, index, AT_POS_SKIPPED);
    a->stats.layers_skipped++;
    note_drop(a,
              "%s (%llu bytes with its header) is larger than the byte budget (%lld): left out "
              "of every snapshot; raise budget_bytes, or leave it unset (automatic)",
              l.name, (unsigned long long)need, (long long)at_bufpool_budget(a->pool));
    begin_msg(a, AT_PROTO_SKIP);
    at_proto_skip *k = &a->msg->u.skip;
    *k = (at_proto_skip){
        .step = l.step, .seq = l.seq, .index = index, .rank = l.rank, .nbytes = l.nbytes};
    memcpy(k->name, l.name, sizeof k->name);
    snprintf(k->reason, sizeof k->reason, "larger than the trainer's byte budget (%lld bytes)",
             (long long)at_bufpool_budget(a->pool));
    send_single(a);
    return set_error(a, AT_ERR_SIZE, "%s", a->drop);
}

int at_agent_publish_slice(at_agent *a, const char *name, at_proto_kind kind, at_proto_dtype dtype,
                           int ndim, const int64_t *shape, const void *data, unsigned flags,
                           const int64_t *full_shape, const int64_t *offset)
{
    /* The hot path: no control draining here, the caller's begin/end/log calls do it. */
    int rc = lock(a);
    if (rc != AT_OK)
        return rc;
    if (a->pass == PASS_NONE)
        return leave(a, set_error(a, AT_ERR_STATE, "at_agent_publish outside a snapshot"));
    if (a->pass != PASS_OPEN)
        return leave(a, AT_ERR_AGAIN);
    uint64_t nbytes = 0, ident = 0;
    rc = fill_layer(a, name, kind, dtype, ndim, shape, flags, full_shape, offset, &nbytes, &ident);
    if (rc != AT_OK)
        return leave(a, rc);
    /* A later pass over a layer the first pass validated and encoded: done with at no cost
     * when it went out already (or is another rank's), or when its payload alone does not fit
     * now -- the common case while a large snapshot streams out over many steps. */
    if (at_sweep_known(&a->sweep, ident)) {
        const int st = a->sweep.pos[a->sweep.cursor];
        if (st != AT_POS_TODO || !data || !at_bufpool_fits(a->pool, nbytes)) {
            a->sweep.cursor++;
            a->stats.layers_deferred += st == AT_POS_TODO && data;
            return leave(a, AT_ERR_AGAIN);
        }
    }
    /* Encoded before its position is taken (it would be the next one), so a layer the
     * protocol refuses holds no position: every pass refuses it alike. */
    a->msg->u.layer.index = a->sweep.cursor;
    at_proto_error e;
    size_t hlen = 0;
    rc = at_proto_encode(a->msg, a->hdr, HDR_CAP, &hlen, &e);
    if (rc != AT_OK)
        return leave(a, set_error(a, rc, "%s: %s", name, e.message));
    int64_t index = 0;
    int state = at_sweep_visit(&a->sweep, ident, &index);
    if (state == -2)
        return leave(a, set_error(a, AT_ERR_NOMEM, "out of memory"));
    if (state == -1)
        return leave(a, set_error(a, AT_ERR_AGAIN,
                                  "%s: the layer list changed since the snapshot's first pass; it "
                                  "is abandoned",
                                  name));
    if (state != AT_POS_TODO)
        return leave(a, AT_ERR_AGAIN);
    if (flags & AT_AGENT_ELSEWHERE) {
        at_sweep_mark(&a->sweep, index, AT_POS_ELSEWHERE);
        return leave(a, AT_OK);
    }
    if (a->checksum && data) {
        /* The checksum's text has a fixed width: the header only grows by it. */
        a->msg->u.layer.has_checksum = 1;
        a->msg->u.layer.crc32 = at_proto_crc32(0, data, nbytes);
        at_proto_encode(a->msg, a->hdr, HDR_CAP, &hlen, &e);
    }
    const uint64_t need = hlen + nbytes;
    const int64_t budget = budget_for(a, need);
    if ((uint64_t)budget < need)
        return leave(a, skip_layer(a, index, need));
    at_bufpool_set_budget(a->pool, budget);
    if (!data || !at_bufpool_fits(a->pool, need)) {
        a->stats.layers_deferred += data != NULL;
        return leave(a, AT_ERR_AGAIN);
    }
    char *hdr = at_bufpool_take(a->pool, hlen);
    char *payload = hdr ? at_bufpool_take(a->pool, nbytes) : NULL;
    if (!payload) {
        at_bufpool_release(hdr, a->pool);
        return leave(a, set_error(a, AT_ERR_NOMEM, "%s: out of memory, deferred", name));
    }
    memcpy(hdr, a->hdr, hlen);
    memcpy(payload, data, nbytes);
    /* ZeroMQ queues every part once it accepted the first, or rolls them all back. */
    if (send_buffer(a, hdr, hlen, 1) != 0) {
        at_bufpool_release(payload, a->pool);
        a->stats.layers_deferred++;
        return leave(a, AT_ERR_AGAIN);
    }
    send_buffer(a, payload, nbytes, 0);
    at_sweep_mark(&a->sweep, index, AT_POS_SENT);
    a->sweep.last_step = a->pass_step;
    a->stats.layers_sent++;
    a->stats.bytes_queued += (int64_t)need;
    return leave(a, AT_OK);
}

int at_agent_publish(at_agent *a, const char *name, at_proto_kind kind, at_proto_dtype dtype,
                     int ndim, const int64_t *shape, const void *data, unsigned flags)
{
    return at_agent_publish_slice(a, name, kind, dtype, ndim, shape, data, flags, NULL, NULL);
}

int at_agent_layer_wanted(at_agent *a, uint64_t nbytes)
{
    if (lock(a) != AT_OK)
        return 0;
    const at_sweep *w = &a->sweep;
    const uint64_t need = nbytes + HDR_GUESS;
    int wanted = a->pass == PASS_OPEN && !w->changed &&
                 (w->n < 0 || (w->cursor < w->n && w->pos[w->cursor] == AT_POS_TODO)) &&
                 (uint64_t)budget_for(a, need) >= need &&
                 (uint64_t)at_bufpool_out(a->pool) + need <= (uint64_t)budget_for(a, need);
    return leave(a, wanted);
}

int at_agent_snapshot_end(at_agent *a)
{
    int rc = enter(a);
    if (rc != AT_OK)
        return rc;
    if (a->pass == PASS_NONE)
        return leave(a, set_error(a, AT_ERR_STATE, "at_agent_snapshot_end without a begin"));
    flush_hello(a);
    return leave(a, end_pass(a));
}

int at_agent_log(at_agent *a, int64_t step, int n, const char *const *names, const double *values)
{
    int rc = enter(a);
    if (rc != AT_OK)
        return rc;
    if (n < 0 || n > AT_PROTO_MAX_SCALARS || (n && (!names || !values)) || step < 0 ||
        step > AT_PROTO_MAX_INT)
        return leave(a, set_error(a, AT_ERR_ARG, "need step >= 0 and 0..%d named values",
                                  AT_PROTO_MAX_SCALARS));
    flush_hello(a);
    if (step > a->last_step)
        a->last_step = step;
    begin_msg(a, AT_PROTO_SCALARS);
    at_proto_scalars *s = &a->msg->u.scalars;
    s->step = step;
    s->dropped = a->stats.snapshots_dropped;
    for (int i = 0; i < n; i++) {
        if (!names[i] || !names[i][0] || !copy_str(s->values[i].name, AT_PROTO_MAX_SHORT, names[i]))
            return leave(a, set_error(a, AT_ERR_ARG, "scalar name %d must be 1..%d bytes", i,
                                      AT_PROTO_MAX_SHORT - 1));
        s->values[i].value = values[i];
    }
    s->n = n;
    return leave(a, send_single(a));
}

int at_agent_should_stop(at_agent *a, char *reason, size_t cap)
{
    if (enter(a) != AT_OK)
        return 0;
    if (!a->stop)
        return leave(a, 0);
    if (reason && cap)
        snprintf(reason, cap, "%s", a->stop_reason);
    if (!a->stop_acked) {
        begin_msg(a, AT_PROTO_STOP_ACK);
        memcpy(a->msg->u.reason, a->stop_reason, sizeof a->stop_reason);
        a->stop_acked = send_single(a) == AT_OK;
    }
    return leave(a, 1);
}

int at_agent_stats_get(at_agent *a, at_agent_stats *s)
{
    int rc = enter(a);
    if (rc != AT_OK)
        return rc;
    if (!s)
        return leave(a, AT_ERR_ARG);
    *s = a->stats;
    s->bytes_in_flight = at_bufpool_held(a->pool);
    s->peak_in_flight = at_bufpool_peak(a->pool);
    s->budget_bytes = at_bufpool_budget(a->pool);
    s->sweep_layers = a->sweep.open ? a->sweep.n : 0;
    s->sweep_done = a->sweep.open ? a->sweep.done : 0;
    return leave(a, AT_OK);
}

const char *at_agent_last_error(const at_agent *a)
{
    return a ? a->err : new_error;
}

const char *at_agent_last_drop(const at_agent *a)
{
    return a ? a->drop : "";
}

int at_agent_keygen(const char *path)
{
    if (!path || !*path)
        return AT_ERR_ARG;
    char pub[AT_KEY_Z85_LEN + 1], sec[AT_KEY_Z85_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0)
        return AT_ERR_UNSUPPORTED;
    int rc = at_keyfile_write(path, pub, sec);
    memset(sec, 0, sizeof sec);
    return rc;
}
