/* SPDX-License-Identifier: Apache-2.0 */
/* agent.c -- the trainer-side publisher (API and guarantees in alphatop/agent.h).
 *
 * Every buffer handed to ZeroMQ comes from the agent's byte-budgeted pool (pool.h), which
 * accounts for it until ZeroMQ's I/O thread has written it: the budget check before each copy
 * (at_bufpool_fits) sees exactly what is still held. */
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
#include "pool.h"

#define HDR_CAP (AT_PROTO_MAX_HEADER + 8)

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

typedef struct frame {
    char *hdr;
    size_t hlen;
    char *payload;
    size_t plen;
} frame;

enum snap_state { SNAP_NONE, SNAP_OPEN, SNAP_DROPPING, SNAP_SKIPPING };

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
    int64_t linger_ms, checksum, verbose;
    at_bufpool *pool;  /* every buffer handed to ZeroMQ, accounted against the budget */
    at_proto_msg *msg; /* scratch for encoding (large: kept off the stack) */
    at_proto_msg *hello;
    char *hdr; /* scratch header text, HDR_CAP bytes */
    int hello_due;
    /* Control state, as last set by the monitor. */
    int64_t interval;
    int paused, stop, stop_acked;
    char stop_reason[AT_PROTO_MAX_TEXT];
    /* The open snapshot. */
    enum snap_state snap;
    int64_t snap_step, snap_seq, next_seq, last_snapshot_bytes, last_step;
    frame *frames;
    size_t nframes, cap_frames;
    at_agent_stats stats;
    char err[256];
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
    if (!at_bufpool_fits(a->pool, *len)) {
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
    o->budget_bytes = (int64_t)256 << 20;
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
        snprintf(err, errlen, "cannot connect to %s: %s", a->endpoint, zmq_strerror(zmq_errno()));
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
    for (size_t i = 0; i < a->nframes; i++) {
        at_bufpool_discard(a->frames[i].hdr);
        at_bufpool_discard(a->frames[i].payload);
    }
    at_bufpool_free(a->pool);
    memset(a->curve_secret, 0, sizeof a->curve_secret);
    free(a->frames);
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
    if (opts->interval < 1 || opts->budget_bytes < 1 || opts->linger_ms < 0 ||
        opts->world_size < 1 || opts->rank < 0 || opts->rank >= opts->world_size ||
        opts->ntags < 0) {
        fail_new("bad options: need interval >= 1, budget_bytes >= 1, linger_ms >= 0, "
                 "0 <= rank < world_size and ntags >= 0");
        return NULL;
    }
    at_agent *a = calloc(1, sizeof *a);
    if (!a || !(a->msg = calloc(1, sizeof *a->msg)) || !(a->hello = calloc(1, sizeof *a->hello)) ||
        !(a->hdr = malloc(HDR_CAP)) || !(a->pool = at_bufpool_new(opts->budget_bytes, NULL))) {
        fail_new("out of memory");
        goto err;
    }
    memcpy(a->run, run_id, rn + 1);
    a->pid = getpid();
    a->linger_ms = opts->linger_ms;
    a->checksum = opts->checksum;
    a->verbose = opts->verbose;
    a->interval = opts->interval;
    a->stats.budget_bytes = opts->budget_bytes;
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
    send_single(a);
    int linger = a->linger_ms > INT32_MAX ? INT32_MAX : (int)a->linger_ms;
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

int at_agent_snapshot_due(at_agent *a, int64_t step)
{
    if (enter(a) != AT_OK)
        return 0;
    return leave(a, step >= 0 && !a->paused && step % a->interval == 0);
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

/* Frees the open snapshot's buffers. */
static void discard_snapshot(at_agent *a)
{
    for (size_t i = 0; i < a->nframes; i++) {
        at_bufpool_release(a->frames[i].hdr, a->pool);
        at_bufpool_release(a->frames[i].payload, a->pool);
    }
    a->nframes = 0;
}

static int drop_snapshot(at_agent *a, size_t need)
{
    discard_snapshot(a);
    a->snap = SNAP_DROPPING;
    a->stats.snapshots_dropped++;
    set_error(a, AT_ERR_AGAIN,
              "snapshot %lld at step %lld dropped: %lld bytes in flight, %zu more needed, "
              "budget %lld",
              (long long)a->snap_seq, (long long)a->snap_step, (long long)at_bufpool_out(a->pool),
              need, (long long)a->stats.budget_bytes);
    return AT_ERR_AGAIN;
}

int at_agent_snapshot_begin(at_agent *a, int64_t step)
{
    int rc = enter(a);
    if (rc != AT_OK)
        return rc;
    if (step < 0 || step > AT_PROTO_MAX_INT)
        return leave(a, set_error(a, AT_ERR_ARG, "step must be >= 0"));
    /* A snapshot left open (no end) used up its seq: count it, so seq gaps stay = drops. */
    if (a->snap == SNAP_OPEN)
        a->stats.snapshots_dropped++;
    discard_snapshot(a);
    a->snap_step = step;
    a->last_step = step;
    if (a->paused) {
        a->snap = SNAP_SKIPPING;
        a->stats.snapshots_skipped++;
        return leave(a, AT_ERR_AGAIN);
    }
    a->snap = SNAP_OPEN;
    a->snap_seq = a->next_seq++;
    /* The previous snapshot's size predicts this one's: if it cannot fit, skip the copies. */
    if (!at_bufpool_fits(a->pool, (size_t)a->last_snapshot_bytes))
        return leave(a, drop_snapshot(a, (size_t)a->last_snapshot_bytes));
    return leave(a, AT_OK);
}

static int add_frame(at_agent *a, char *hdr, size_t hlen, char *payload, size_t plen)
{
    if (a->nframes == a->cap_frames) {
        size_t cap = a->cap_frames ? 2 * a->cap_frames : 64;
        frame *f = realloc(a->frames, cap * sizeof *f);
        if (!f)
            return AT_ERR_NOMEM;
        a->frames = f;
        a->cap_frames = cap;
    }
    a->frames[a->nframes++] = (frame){hdr, hlen, payload, plen};
    return AT_OK;
}

/* Validates a layer's arguments into a->msg; sets *nbytes. */
static int fill_layer(at_agent *a, const char *name, at_proto_kind kind, at_proto_dtype dtype,
                      int ndim, const int64_t *shape, const void *data, unsigned flags,
                      uint64_t *nbytes)
{
    begin_msg(a, AT_PROTO_LAYER);
    at_proto_layer *l = &a->msg->u.layer;
    if (!name || !*name || !copy_str(l->name, sizeof l->name, name))
        return set_error(a, AT_ERR_ARG, "layer name must be 1..%d bytes", AT_PROTO_MAX_NAME - 1);
    if (at_proto_dtype_size(dtype) == 0 || (unsigned)kind > AT_PROTO_KIND_LORA_B)
        return set_error(a, AT_ERR_ARG, "%s: unknown kind %d or dtype %d", name, (int)kind,
                         (int)dtype);
    if (!shape || !data || ndim < 1 || ndim > AT_PROTO_MAX_DIMS)
        return set_error(a, AT_ERR_ARG, "%s: need data and 1..%d dims", name, AT_PROTO_MAX_DIMS);
    uint64_t n = at_proto_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || (uint64_t)shape[i] > AT_PROTO_MAX_PAYLOAD / n)
            return set_error(a, AT_ERR_SIZE, "%s: dimension %d is %lld", name, i,
                             (long long)shape[i]);
        n *= (uint64_t)shape[i];
        l->shape[i] = shape[i];
    }
    l->step = a->snap_step;
    l->seq = a->snap_seq;
    l->index = (int64_t)a->nframes;
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
    return AT_OK;
}

int at_agent_publish(at_agent *a, const char *name, at_proto_kind kind, at_proto_dtype dtype,
                     int ndim, const int64_t *shape, const void *data, unsigned flags)
{
    /* The hot path: no control draining here, the caller's begin/end/log calls do it. */
    int rc = lock(a);
    if (rc != AT_OK)
        return rc;
    if (a->snap == SNAP_NONE)
        return leave(a, set_error(a, AT_ERR_STATE, "at_agent_publish outside a snapshot"));
    if (a->snap != SNAP_OPEN)
        return leave(a, AT_ERR_AGAIN);
    uint64_t nbytes = 0;
    rc = fill_layer(a, name, kind, dtype, ndim, shape, data, flags, &nbytes);
    if (rc != AT_OK)
        return leave(a, rc);
    if (a->checksum) {
        a->msg->u.layer.has_checksum = 1;
        a->msg->u.layer.crc32 = at_proto_crc32(0, data, nbytes);
    }
    at_proto_error e;
    size_t hlen = 0;
    rc = at_proto_encode(a->msg, a->hdr, HDR_CAP, &hlen, &e);
    if (rc != AT_OK)
        return leave(a, set_error(a, rc, "%s: %s", name, e.message));
    if (!at_bufpool_fits(a->pool, hlen + nbytes))
        return leave(a, drop_snapshot(a, hlen + nbytes));
    char *hdr = at_bufpool_take(a->pool, hlen);
    char *payload = hdr ? at_bufpool_take(a->pool, nbytes) : NULL;
    if (!payload || add_frame(a, hdr, hlen, payload, nbytes) != AT_OK) {
        at_bufpool_release(hdr, a->pool);
        at_bufpool_release(payload, a->pool);
        drop_snapshot(a, hlen + nbytes);
        return leave(a, set_error(a, AT_ERR_NOMEM, "%s: out of memory, snapshot dropped", name));
    }
    memcpy(hdr, a->hdr, hlen);
    memcpy(payload, data, nbytes);
    return leave(a, AT_OK);
}

/* Queues the open snapshot (a->frames, then the snapshot_end in end/elen) as one ZeroMQ
 * message. Every buffer is handed over or freed. Returns AT_OK or AT_ERR_AGAIN. */
static int send_snapshot(at_agent *a, char *end, size_t elen)
{
    size_t total = elen;
    int failed = 0;
    for (size_t i = 0; i < a->nframes && !failed; i++) {
        frame *f = &a->frames[i];
        total += f->hlen + f->plen;
        /* ZeroMQ queues every part once it accepted the first, or rolls them all back. */
        failed = send_buffer(a, f->hdr, f->hlen, 1) != 0;
        f->hdr = NULL;
        if (failed)
            break; /* the payload stays in a->frames and is freed below */
        failed = send_buffer(a, f->payload, f->plen, 1) != 0;
        f->payload = NULL;
    }
    if (!failed)
        failed = send_buffer(a, end, elen, 0) != 0;
    else
        at_bufpool_release(end, a->pool);
    discard_snapshot(a); /* frees whatever was not handed over */
    if (failed)
        return AT_ERR_AGAIN;
    a->last_snapshot_bytes = (int64_t)total;
    at_bufpool_set_keep(a->pool, (int64_t)total); /* recycles the next snapshot's buffers */
    a->stats.bytes_queued += (int64_t)total;
    a->stats.snapshots_sent++;
    return AT_OK;
}

int at_agent_snapshot_end(at_agent *a)
{
    int rc = enter(a);
    if (rc != AT_OK)
        return rc;
    enum snap_state s = a->snap;
    a->snap = SNAP_NONE;
    if (s == SNAP_NONE)
        return leave(a, set_error(a, AT_ERR_STATE, "at_agent_snapshot_end without a begin"));
    if (s != SNAP_OPEN)
        return leave(a, AT_ERR_AGAIN);
    flush_hello(a);
    size_t layers = a->nframes;
    begin_msg(a, AT_PROTO_SNAPSHOT_END);
    a->msg->u.snapshot_end.step = a->snap_step;
    a->msg->u.snapshot_end.seq = a->snap_seq;
    a->msg->u.snapshot_end.layers = (int64_t)layers;
    a->msg->u.snapshot_end.dropped = a->stats.snapshots_dropped;
    size_t elen = 0;
    char *end = encode_msg(a, &elen, &rc);
    if (end)
        rc = send_snapshot(a, end, elen);
    if (rc == AT_OK)
        return leave(a, AT_OK);
    drop_snapshot(a, elen);
    a->snap = SNAP_NONE;
    return leave(a, AT_ERR_AGAIN);
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
    return leave(a, AT_OK);
}

const char *at_agent_last_error(const at_agent *a)
{
    return a ? a->err : new_error;
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
