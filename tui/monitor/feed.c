/* feed.c -- the monitor's ROUTER socket: receive, decode, reject, track runs, send control.
 * (API and guarantees in feed.h; socket choice explained in docs/protocol.md.) */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "alphatop/keyfile.h"
#include "feed.h"

#define MAX_ID 256 /* ZeroMQ routing ids are at most 255 bytes */
#define MAX_ALLOW 4096

typedef struct run_slot {
    at_feed_run pub;
    unsigned char id[MAX_ID];
    size_t idlen;
    int hello_requested;
} run_slot;

struct at_feed {
    void *ctx, *sock, *zap;
    pthread_t zap_thread;
    int zap_running;
    char (*allow)[AT_KEY_Z85_LEN + 1];
    size_t nallow;
    _Atomic int64_t auth_denied;
    char endpoint[1024];
    at_proto_limits lim;
    /* The ZeroMQ message being read: more protocol messages may follow in it. */
    int in_msg;
    unsigned char cur_id[MAX_ID];
    size_t cur_idlen;
    run_slot *runs;
    int nruns, cap_runs;
    at_feed_stats stats;
    at_proto_msg ctl; /* scratch for control messages */
    char hdr[AT_PROTO_MAX_HEADER + 8];
    char err[256];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_error(at_feed *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_error(at_feed *f, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err, sizeof f->err, fmt, ap);
    va_end(ap);
    return status;
}

void at_feed_opts_default(at_feed_opts *o)
{
    memset(o, 0, sizeof *o);
    at_proto_limits_default(&o->limits);
    o->rcvhwm = 100;
}

/* ---- authentication (ZAP, RFC 27) ---- */

static int zap_allowed(const at_feed *f, const unsigned char *key, size_t n)
{
    char z85[AT_KEY_Z85_LEN + 1];
    if (n != 32 || !zmq_z85_encode(z85, key, 32))
        return 0;
    for (size_t i = 0; i < f->nallow; i++)
        if (strcmp(z85, f->allow[i]) == 0)
            return 1;
    return 0;
}

/* Answers ZeroMQ's authentication requests until the context shuts down. */
static void *zap_main(void *arg)
{
    at_feed *f = arg;
    for (;;) {
        /* Request: version, request id, domain, address, identity, mechanism, credentials. */
        zmq_msg_t part[8];
        int n = 0, more = 1, ok = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, f->zap, 0) < 0) {
                zmq_msg_close(&m);
                for (int i = 0; i < n; i++)
                    zmq_msg_close(&part[i]);
                if (zmq_errno() == ETERM) {
                    zmq_close(f->zap);
                    return NULL;
                }
                ok = -1;
                break;
            }
            more = zmq_msg_more(&m);
            if (n < 8)
                part[n++] = m;
            else
                zmq_msg_close(&m);
        }
        if (ok < 0)
            continue;
        int allowed = n == 7 && zmq_msg_size(&part[5]) == 5 &&
                      memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
                      zap_allowed(f, zmq_msg_data(&part[6]), zmq_msg_size(&part[6]));
        if (!allowed)
            atomic_fetch_add(&f->auth_denied, 1);
        const char *code = allowed ? "200" : "400";
        const char *text = allowed ? "OK" : "public key not in the allow-list";
        zmq_send(f->zap, "1.0", 3, ZMQ_SNDMORE);
        if (n > 1)
            zmq_send(f->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
        else
            zmq_send(f->zap, "", 0, ZMQ_SNDMORE);
        zmq_send(f->zap, code, 3, ZMQ_SNDMORE);
        zmq_send(f->zap, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(f->zap, "", 0, ZMQ_SNDMORE);
        zmq_send(f->zap, "", 0, 0);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
    }
}

static int setup_curve(at_feed *f, const at_feed_opts *o, char *err, size_t errlen)
{
    if (!o->curve_keyfile || !o->curve_allow_file) {
        snprintf(err, errlen, "Curve needs both a key file and an allow-list");
        return AT_ERR_ARG;
    }
    if (!zmq_has("curve")) {
        snprintf(err, errlen, "this libzmq has no CurveZMQ support");
        return AT_ERR_UNSUPPORTED;
    }
    char pub[AT_KEY_Z85_LEN + 1], sec[AT_KEY_Z85_LEN + 1];
    int rc = at_keyfile_read(o->curve_keyfile, pub, sec, err, errlen);
    if (rc != AT_OK)
        return rc;
    f->allow = calloc(MAX_ALLOW, sizeof *f->allow);
    if (!f->allow)
        return AT_ERR_NOMEM;
    rc = at_keyfile_read_list(o->curve_allow_file, f->allow, MAX_ALLOW, &f->nallow, err, errlen);
    if (rc != AT_OK)
        return rc;
    /* The handler must be bound before the first connection can arrive. */
    f->zap = zmq_socket(f->ctx, ZMQ_REP);
    int one = 1;
    if (!f->zap || zmq_bind(f->zap, "inproc://zeromq.zap.01") != 0 ||
        zmq_setsockopt(f->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_CURVE_SECRETKEY, sec, AT_KEY_Z85_LEN) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_ZAP_DOMAIN, "alphatop", 8) != 0) {
        memset(sec, 0, sizeof sec);
        snprintf(err, errlen, "cannot set up Curve: %s", zmq_strerror(zmq_errno()));
        return AT_ERR_NET;
    }
    memset(sec, 0, sizeof sec);
    if (pthread_create(&f->zap_thread, NULL, zap_main, f) != 0) {
        snprintf(err, errlen, "cannot start the authentication thread");
        return AT_ERR_NOMEM;
    }
    f->zap_running = 1;
    return AT_OK;
}

/* An empty environment variable counts as unset. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* tcp on anything but loopback is refused without Curve: weights and stop requests would
 * otherwise be open to the network. */
static int is_local(const char *ep)
{
    if (strncmp(ep, "tcp://", 6) != 0)
        return 1;
    const char *h = ep + 6;
    return strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost:", 10) == 0 ||
           strncmp(h, "[::1]:", 6) == 0;
}

/* Whether a process already accepts connections on an ipc endpoint's socket file. ZeroMQ would
 * silently replace the file, leaving the other monitor deaf; a stale file from a crash refuses
 * the connection and is replaced as expected. */
static int ipc_in_use(const char *ep)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strncmp(ep, "ipc://", 6) != 0 || strlen(ep + 6) >= sizeof addr.sun_path)
        return 0;
    memcpy(addr.sun_path, ep + 6, strlen(ep + 6) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int used = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return used;
}

at_feed *at_feed_new(const at_feed_opts *opts, char *err, size_t errlen)
{
    char scratch[256];
    if (!err || !errlen) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    at_feed_opts dflt;
    if (!opts) {
        at_feed_opts_default(&dflt);
        opts = &dflt;
    }
    at_feed *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->lim = opts->limits;
    if (!f->lim.max_header || !f->lim.max_payload)
        at_proto_limits_default(&f->lim);
    atomic_init(&f->auth_denied, 0);
    char ep[1024];
    if (opts->endpoint && *opts->endpoint)
        snprintf(ep, sizeof ep, "%s", opts->endpoint);
    else if (at_proto_default_endpoint(ep, sizeof ep) != AT_OK) {
        snprintf(err, errlen, "ALPHATOP_ENDPOINT too long");
        goto err;
    }
    /* The environment fills in keys the options leave out, as ALPHATOP_ENDPOINT does. */
    at_feed_opts with_env = *opts;
    if (!with_env.curve_keyfile && !with_env.curve_allow_file) {
        with_env.curve_keyfile = env("ALPHATOP_CURVE_KEY");
        with_env.curve_allow_file = env("ALPHATOP_CURVE_ALLOW");
    }
    opts = &with_env;
    int curve = opts->curve_keyfile || opts->curve_allow_file;
    if (!curve && !opts->allow_insecure && !is_local(ep)) {
        snprintf(err, errlen,
                 "%s is not a loopback address and no Curve keys are set: snapshots and stop "
                 "requests would travel unauthenticated (keys: docs/protocol.md section 8; "
                 "watch --curve-key/--curve-allow, or --insecure to accept that)",
                 ep);
        goto err;
    }
    if (ipc_in_use(ep)) {
        snprintf(err, errlen, "another monitor is already listening on %s", ep);
        goto err;
    }
    f->ctx = zmq_ctx_new();
    f->sock = f->ctx ? zmq_socket(f->ctx, ZMQ_ROUTER) : NULL;
    if (!f->sock) {
        snprintf(err, errlen, "cannot create ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        goto err;
    }
    int hwm = opts->rcvhwm > 0 ? opts->rcvhwm : 100, one = 1, zero = 0;
    uint64_t maxframe =
        f->lim.max_payload > f->lim.max_header ? f->lim.max_payload : f->lim.max_header;
    int64_t maxmsg = maxframe > INT64_MAX ? INT64_MAX : (int64_t)maxframe;
    if (zmq_setsockopt(f->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_LINGER, &zero, sizeof zero) != 0) {
        snprintf(err, errlen, "cannot configure ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        goto err;
    }
    if (curve && setup_curve(f, opts, err, errlen) != AT_OK)
        goto err;
    if (zmq_bind(f->sock, ep) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", ep, zmq_strerror(zmq_errno()));
        goto err;
    }
    size_t n = sizeof f->endpoint;
    if (zmq_getsockopt(f->sock, ZMQ_LAST_ENDPOINT, f->endpoint, &n) != 0)
        snprintf(f->endpoint, sizeof f->endpoint, "%s", ep);
    return f;
err:
    at_feed_free(f);
    return NULL;
}

void at_feed_free(at_feed *f)
{
    if (!f)
        return;
    if (f->sock)
        zmq_close(f->sock);
    if (f->zap_running) {
        /* Wakes the ZAP thread with ETERM; it closes its socket and returns. */
        zmq_ctx_shutdown(f->ctx);
        pthread_join(f->zap_thread, NULL);
    } else if (f->zap) {
        zmq_close(f->zap);
    }
    if (f->ctx)
        zmq_ctx_term(f->ctx);
    /* libzmq 4.3 leaves the socket file behind when the context ends; it is ours to remove
     * (a live monitor's endpoint is never taken over, see ipc_in_use). */
    if (!strncmp(f->endpoint, "ipc://", 6))
        unlink(f->endpoint + 6);
    free(f->allow);
    free(f->runs);
    free(f);
}

const char *at_feed_endpoint(const at_feed *f)
{
    return f ? f->endpoint : "";
}

void *at_feed_socket(at_feed *f)
{
    return f ? f->sock : NULL;
}

const char *at_feed_last_error(const at_feed *f)
{
    return f ? f->err : "";
}

void at_feed_msg_free(at_feed_msg *m)
{
    if (!m)
        return;
    if (m->payload_) {
        zmq_msg_close(m->payload_);
        free(m->payload_);
    }
    free(m);
}

/* ---- runs ---- */

static uint32_t peer_number(const unsigned char *id, size_t n)
{
    /* ZeroMQ's own routing ids are a zero byte and a 32-bit counter; others are hashed. */
    uint32_t v = 2166136261u;
    if (n == 5 && id[0] == 0) {
        memcpy(&v, id + 1, 4);
        return v;
    }
    for (size_t i = 0; i < n; i++)
        v = (v ^ id[i]) * 16777619u;
    return v;
}

static run_slot *find_run(const at_feed *f, const char *run)
{
    for (int i = 0; run && i < f->nruns; i++)
        if (strcmp(f->runs[i].pub.run, run) == 0)
            return &f->runs[i];
    return NULL;
}

int at_feed_run_count(const at_feed *f)
{
    return f ? f->nruns : 0;
}

const at_feed_run *at_feed_run_at(const at_feed *f, int i)
{
    return (f && i >= 0 && i < f->nruns) ? &f->runs[i].pub : NULL;
}

const at_feed_run *at_feed_run_find(const at_feed *f, const char *run)
{
    run_slot *r = f ? find_run(f, run) : NULL;
    return r ? &r->pub : NULL;
}

static int send_control(at_feed *f, run_slot *r, at_proto_msg *m)
{
    size_t len = 0;
    at_proto_error e;
    int rc = at_proto_encode(m, f->hdr, sizeof f->hdr, &len, &e);
    if (rc != AT_OK)
        return set_error(f, rc, "cannot encode %s: %s", at_proto_type_name(m->type), e.message);
    if (zmq_send(f->sock, r->id, r->idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(f->sock, f->hdr, len, ZMQ_DONTWAIT) < 0) {
        int e2 = zmq_errno();
        if (e2 == EHOSTUNREACH) {
            r->pub.connected = 0;
            return set_error(f, AT_ERR_NOTFOUND, "run %s is no longer connected", r->pub.run);
        }
        if (e2 == EAGAIN)
            return set_error(f, AT_ERR_AGAIN, "queue to run %s is full", r->pub.run);
        return set_error(f, AT_ERR_NET, "send to run %s: %s", r->pub.run, zmq_strerror(e2));
    }
    f->stats.controls_sent++;
    return AT_OK;
}

/* Records that a message of run `m->run` came from the current connection. */
static void note_run(at_feed *f, const at_proto_msg *m, int64_t t)
{
    run_slot *r = find_run(f, m->run);
    if (!r) {
        if (f->nruns == f->cap_runs) {
            int cap = f->cap_runs ? 2 * f->cap_runs : 8;
            run_slot *p = realloc(f->runs, (size_t)cap * sizeof *p);
            if (!p)
                return;
            f->runs = p;
            f->cap_runs = cap;
        }
        r = &f->runs[f->nruns++];
        memset(r, 0, sizeof *r);
        memcpy(r->pub.run, m->run, sizeof r->pub.run);
    }
    if (r->idlen != f->cur_idlen || memcmp(r->id, f->cur_id, f->cur_idlen) != 0) {
        memcpy(r->id, f->cur_id, f->cur_idlen);
        r->idlen = f->cur_idlen;
        r->hello_requested = 0;
    }
    r->pub.peer = peer_number(r->id, r->idlen);
    r->pub.connected = m->type != AT_PROTO_GOODBYE;
    r->pub.last_ms = t;
    r->pub.messages++;
    switch (m->type) {
    case AT_PROTO_HELLO:
        r->pub.hello_seen = 1;
        r->pub.dropped = m->u.hello.dropped;
        break;
    case AT_PROTO_SNAPSHOT_END:
        r->pub.dropped = m->u.snapshot_end.dropped;
        break;
    case AT_PROTO_SCALARS:
        r->pub.dropped = m->u.scalars.dropped;
        break;
    case AT_PROTO_GOODBYE:
        r->pub.dropped = m->u.goodbye.dropped;
        break;
    case AT_PROTO_STOP_ACK:
        r->pub.stop_acked = 1;
        break;
    default:
        break;
    }
    /* A monitor started (or restarted) after the trainer has missed the hello: ask for it. */
    if (!r->pub.hello_seen && !r->hello_requested && r->pub.connected) {
        memset(&f->ctl, 0, sizeof f->ctl);
        f->ctl.type = AT_PROTO_HELLO_REQUEST;
        memcpy(f->ctl.run, r->pub.run, sizeof f->ctl.run);
        r->hello_requested = send_control(f, r, &f->ctl) == AT_OK;
    }
}

/* ---- receiving ---- */

/* Reads one frame of the current ZeroMQ message into m (initialised here). */
static int read_frame(at_feed *f, zmq_msg_t *m, int *more)
{
    zmq_msg_init(m);
    if (zmq_msg_recv(m, f->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(m);
        f->in_msg = 0;
        return -1;
    }
    *more = zmq_msg_more(m);
    f->in_msg = *more;
    return 0;
}

/* Discards the rest of the current ZeroMQ message. */
static void skip_rest(at_feed *f)
{
    while (f->in_msg) {
        zmq_msg_t m;
        int more;
        if (read_frame(f, &m, &more) != 0)
            return;
        zmq_msg_close(&m);
    }
}

static int reject(at_feed *f, at_proto_error *err, const at_proto_error *e)
{
    skip_rest(f);
    f->stats.rejected++;
    if ((unsigned)e->reason < AT_PROTO_E_COUNT)
        f->stats.rejected_by[e->reason]++;
    if (err)
        *err = *e;
    return set_error(f, at_proto_reason_status(e->reason), "rejected message (%s): %s",
                     at_proto_reason_name(e->reason), e->message);
}

/* Byte-swaps n elements of size es in place. */
static void swap_bytes(unsigned char *p, size_t n, size_t es)
{
    for (size_t i = 0; i < n; i++, p += es)
        for (size_t j = 0; j < es / 2; j++) {
            unsigned char t = p[j];
            p[j] = p[es - 1 - j];
            p[es - 1 - j] = t;
        }
}

/* Starts the next ZeroMQ message: reads the routing id. 1 if a message is ready, 0 if none. */
static int start_message(at_feed *f, int timeout_ms)
{
    zmq_pollitem_t it = {f->sock, 0, ZMQ_POLLIN, 0};
    for (;;) {
        zmq_msg_t id;
        int more;
        if (read_frame(f, &id, &more) == 0) {
            size_t n = zmq_msg_size(&id);
            f->cur_idlen = n < MAX_ID ? n : MAX_ID;
            memcpy(f->cur_id, zmq_msg_data(&id), f->cur_idlen);
            zmq_msg_close(&id);
            if (more)
                return 1;
            continue; /* a routing id with nothing after it: nothing to decode */
        }
        if (zmq_errno() != EAGAIN || timeout_ms == 0)
            return 0;
        int64_t t0 = now_ms();
        int rc = zmq_poll(&it, 1, timeout_ms);
        if (rc <= 0)
            return 0;
        if (timeout_ms > 0) {
            int64_t left = timeout_ms - (now_ms() - t0);
            timeout_ms = left > 0 ? (int)left : 0;
        }
    }
}

int at_feed_recv(at_feed *f, int timeout_ms, at_feed_msg **out, at_proto_error *err)
{
    if (!f || !out)
        return AT_ERR_ARG;
    *out = NULL;
    f->stats.auth_denied = atomic_load(&f->auth_denied);
    if (!f->in_msg && !start_message(f, timeout_ms))
        return zmq_errno() == ETERM ? set_error(f, AT_ERR_NET, "socket closed") : AT_ERR_AGAIN;
    at_proto_error e = {AT_PROTO_E_NONE, ""};
    at_feed_msg *m = calloc(1, sizeof *m);
    if (!m) {
        skip_rest(f);
        return set_error(f, AT_ERR_NOMEM, "out of memory");
    }
    zmq_msg_t hdr;
    int more = 0;
    if (read_frame(f, &hdr, &more) != 0) {
        free(m);
        return AT_ERR_AGAIN;
    }
    size_t bytes = zmq_msg_size(&hdr);
    int rc = at_proto_decode_header(zmq_msg_data(&hdr), zmq_msg_size(&hdr), &f->lim, &m->msg, &e);
    zmq_msg_close(&hdr);
    if (rc == AT_OK && at_proto_needs_payload(&m->msg)) {
        if (!more) {
            at_feed_msg_free(m);
            e.reason = AT_PROTO_E_FRAMES;
            snprintf(e.message, sizeof e.message, "layer header without a payload frame");
            return reject(f, err, &e);
        }
        zmq_msg_t *p = malloc(sizeof *p);
        if (!p) {
            at_feed_msg_free(m);
            skip_rest(f);
            return set_error(f, AT_ERR_NOMEM, "out of memory");
        }
        read_frame(f, p, &more);
        m->payload_ = p;
        bytes += zmq_msg_size(p);
        rc = at_proto_attach_payload(&m->msg, zmq_msg_data(p), zmq_msg_size(p), &e);
        at_proto_layer *l = &m->msg.u.layer;
        if (rc == AT_OK && l->big_endian) {
            swap_bytes(zmq_msg_data(p), l->nbytes / at_proto_dtype_size(l->dtype),
                       at_proto_dtype_size(l->dtype));
            l->big_endian = 0;
        }
    }
    if (rc != AT_OK) {
        at_feed_msg_free(m);
        return reject(f, err, &e);
    }
    m->recv_ms = now_ms();
    m->peer = peer_number(f->cur_id, f->cur_idlen);
    f->stats.messages++;
    f->stats.bytes += (int64_t)bytes;
    note_run(f, &m->msg, m->recv_ms);
    *out = m;
    return AT_OK;
}

/* ---- control ---- */

static int control(at_feed *f, const char *run, at_proto_type type, const char *reason,
                   int64_t interval)
{
    if (!f || !run)
        return AT_ERR_ARG;
    run_slot *r = find_run(f, run);
    if (!r || !r->pub.connected)
        return set_error(f, AT_ERR_NOTFOUND, "no connected run named %s", run);
    memset(&f->ctl, 0, sizeof f->ctl);
    f->ctl.type = type;
    memcpy(f->ctl.run, r->pub.run, sizeof f->ctl.run);
    if (reason) {
        size_t n = strlen(reason);
        if (n == 0 || n >= sizeof f->ctl.u.reason)
            return set_error(f, AT_ERR_ARG, "stop reason must be 1..%zu bytes",
                             sizeof f->ctl.u.reason - 1);
        memcpy(f->ctl.u.reason, reason, n + 1);
    }
    if (type == AT_PROTO_INTERVAL)
        f->ctl.u.interval = interval;
    return send_control(f, r, &f->ctl);
}

int at_feed_stop(at_feed *f, const char *run, const char *reason)
{
    if (!reason)
        return AT_ERR_ARG;
    return control(f, run, AT_PROTO_STOP, reason, 0);
}

int at_feed_pause(at_feed *f, const char *run, int paused)
{
    return control(f, run, paused ? AT_PROTO_PAUSE : AT_PROTO_RESUME, NULL, 0);
}

int at_feed_set_interval(at_feed *f, const char *run, int64_t interval)
{
    if (interval < 1 || interval > AT_PROTO_MAX_INT)
        return AT_ERR_ARG;
    return control(f, run, AT_PROTO_INTERVAL, NULL, interval);
}

void at_feed_stats_get(const at_feed *f, at_feed_stats *s)
{
    if (!f || !s)
        return;
    *s = f->stats;
    s->auth_denied = atomic_load(&((at_feed *)f)->auth_denied);
}
