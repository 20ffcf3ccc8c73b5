/* SPDX-License-Identifier: Apache-2.0 */
/* feed.c -- the monitor's ROUTER socket: receive, decode, reject, track runs and who owns them,
 * send control. (API and guarantees in feed.h; socket choice explained in docs/protocol.md.) */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "alphatop/keyfile.h"
#include "feed.h"
#include "idmap.h"

#define MAX_ID 256 /* ZeroMQ routing ids are at most 255 bytes */
#define MAX_ALLOW 4096
#define NOTE_EVERY_MS 1000    /* refused connections are reported at most this often */
#define PAUSE_FIRST_MS 1000   /* first pause in accepting at the descriptor limit */
#define PAUSE_MAX_MS 16000    /* the pause doubles up to this while the limit keeps being hit */
#define PAUSE_FORGET_MS 60000 /* a trip this long after the previous one starts over */
#define MAX_CLAIMANTS 32      /* refused claimants noted apart; more share the oldest entry */
#define REFUSED_PER_CALL 64   /* refused messages at_feed_recv skips before it returns */
#define MAX_FD (1 << 24)      /* descriptors tracked for the socket monitor's events */

/* A connection, as ownership tells them apart (docs/protocol.md section 1): its routing id and
 * CurveZMQ key, and where the socket monitor's events about it stand. The events name a
 * connection by descriptor, which messages carry (ZMQ_SRCFD): ZMQ_ROUTER_NOTIFY would name the
 * routing id of a closed connection directly, but it is a draft option, and Debian's libzmq
 * 4.3.4 is built without it (zmq_setsockopt fails with EINVAL). */
typedef struct conn_ref {
    unsigned char id[MAX_ID]; /* routing id */
    size_t idlen;
    char key[AT_KEY_Z85_LEN + 1]; /* public key (Z85, from the ZAP reply); "" without Curve */
    char addr[64];                /* ZeroMQ's Peer-Address, for notices */
    int fd;                       /* its descriptor (ZMQ_SRCFD); -1: none (inproc) */
    int64_t drops;                /* disconnections seen on fd when it last spoke (conn_gone) */
    int dead;                     /* fd was already disconnected when it last spoke */
} conn_ref;

typedef struct run_slot {
    at_feed_run pub;
    conn_ref owner; /* the connection that speaks for the run */
    int ended;      /* the owner said goodbye */
    int lost;       /* a send found the owner's routing id gone */
    int hello_requested;
    int next; /* the next entry of the same run id (another rank), -1: none */
} run_slot;

/* Messages refused from one connection for one run, noted at most every NOTE_EVERY_MS. */
typedef struct claimant {
    conn_ref conn;
    char run[AT_PROTO_MAX_ID];
    int64_t pending, note_ms; /* refused since the last notice; when that was (0: never) */
} claimant;

/* What the socket monitor said about one descriptor: disconnections so far, and whether the
 * last event was one (else an accepted connection, or nothing yet). */
typedef struct fd_state {
    int64_t drops;
    int down;
} fd_state;

struct at_feed {
    void *ctx, *sock, *zap, *events; /* events: the ROUTER's socket monitor (PAIR) */
    pthread_t zap_thread;
    int zap_running;
    char (*allow)[AT_KEY_Z85_LEN + 1];
    size_t nallow;
    int curve;
    _Atomic int64_t auth_denied;
    char endpoint[1024];
    /* Accepting stops near the descriptor limit and resumes after a pause (feed.h). */
    int listening;
    int64_t resume_ms, last_trip_ms, pause_ms;
    /* Notices (feed.h): refusals not yet reported and when they last were; the latest change
     * in accepting connections. */
    int64_t auth_reported, handshake_pending, auth_note_ms;
    char fds_note[1400];
    char warning[1024];
    at_proto_limits lim;
    /* The ZeroMQ message being read (more protocol messages may follow in it) and its sender. */
    int in_msg, new_sender; /* new_sender: f->cur has only the routing id yet (note_sender) */
    conn_ref cur;
    run_slot *runs;
    int nruns, cap_runs, max_runs;
    at_idmap *by_rank; /* "run\x1frank" -> entry: a message finds its run in constant time */
    at_idmap *by_run;  /* run -> its first entry (the chain through next has its ranks) */
    fd_state *fds;     /* by descriptor, nfds of them */
    int nfds;
    claimant claims[MAX_CLAIMANTS];
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
    o->rcvhwm = 4;
    o->max_runs = AT_FEED_MAX_RUNS;
}

/* ---- authentication (ZAP, RFC 27) ---- */

/* 1 if the 32-byte key is on the allow-list; its Z85 text in z85 (AT_KEY_Z85_LEN + 1 bytes). */
static int zap_allowed(const at_feed *f, const unsigned char *key, size_t n, char *z85)
{
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
        /* The user id of the reply is the key: messages then carry it as "User-Id". */
        char user[AT_KEY_Z85_LEN + 1] = "";
        int allowed = n == 7 && zmq_msg_size(&part[5]) == 5 &&
                      memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
                      zap_allowed(f, zmq_msg_data(&part[6]), zmq_msg_size(&part[6]), user);
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
        zmq_send(f->zap, user, allowed ? strlen(user) : 0, ZMQ_SNDMORE);
        zmq_send(f->zap, "", 0, 0);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
    }
}

/* Adds a line to the warnings at_feed_warning returns. */
static void add_warning(at_feed *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_warning(at_feed *f, const char *fmt, ...)
{
    size_t n = strlen(f->warning);
    if (n && n + 1 < sizeof f->warning)
        f->warning[n++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->warning + n, sizeof f->warning - n, fmt, ap);
    va_end(ap);
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
    char warn[512];
    if (at_keyfile_check_private(o->curve_keyfile, warn, sizeof warn) == AT_ERR_AUTH)
        add_warning(f, "%s", warn);
    f->allow = calloc(MAX_ALLOW, sizeof *f->allow);
    if (!f->allow)
        return AT_ERR_NOMEM;
    rc = at_keyfile_read_list(o->curve_allow_file, f->allow, MAX_ALLOW, &f->nallow, err, errlen);
    if (rc != AT_OK)
        return rc;
    if (f->nallow == 0)
        add_warning(f, "%s lists no trainer keys: every trainer will be refused",
                    o->curve_allow_file);
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

/* For an ipc endpoint: refuses a socket file a live process accepts connections on (ZeroMQ
 * would silently replace it, leaving the other monitor deaf; a stale file from a crash refuses
 * the connection and is replaced as expected), and a path that is not a socket at all (ZeroMQ
 * would delete whatever file is there). */
static int ipc_check(const char *ep, char *err, size_t errlen)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct stat st;
    if (strncmp(ep, "ipc://", 6) != 0 || ep[6] == '@' || strlen(ep + 6) >= sizeof addr.sun_path)
        return AT_OK;
    if (lstat(ep + 6, &st) != 0)
        return AT_OK;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket: not replacing it", ep + 6);
        return AT_ERR_ARG;
    }
    memcpy(addr.sun_path, ep + 6, strlen(ep + 6) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return AT_OK;
    int used = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    if (used)
        snprintf(err, errlen, "another monitor is already listening on %s", ep);
    return used ? AT_ERR_STATE : AT_OK;
}

/* Binds the ROUTER to ep. An ipc socket file is created with mode 0600 -- only this user (and
 * root) may connect -- by narrowing the umask around zmq_bind, which creates the file in this
 * thread: chmod afterwards would leave a moment in which anyone could connect. For that moment
 * a file another thread creates is private too, never more open. */
static int bind_endpoint(at_feed *f, const char *ep)
{
    int ipc = strncmp(ep, "ipc://", 6) == 0;
    mode_t old = ipc ? umask(0177) : 0;
    int rc = zmq_bind(f->sock, ep);
    if (ipc)
        umask(old);
    return rc;
}

/* ---- what the ROUTER's socket monitor reports ---- */

#define FEED_EVENTS                                                                                \
    (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_ACCEPT_FAILED |                       \
     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)

/* The process's descriptor limit (LONG_MAX: none), and how many are open (Linux /proc; -1 when
 * it cannot be read; at the limit itself the directory cannot be opened: that is the limit). */
static long fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == RLIM_INFINITY ||
        r.rlim_cur >= (rlim_t)LONG_MAX)
        return LONG_MAX;
    return (long)r.rlim_cur;
}

static long open_fds(long limit)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return errno == EMFILE || errno == ENFILE ? limit : -1;
    long n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

/* Descriptors kept free: for the connections that arrive before the feed next looks (at the
 * next at_feed_recv), run logs and the analysis. libzmq cannot be told to stop accepting: at
 * the limit its tcp listener retries accept() in a busy loop, and its ipc listener aborts the
 * process. So the feed stops listening before that. */
static long fd_reserve(long limit)
{
    return limit / 8 > 16 ? limit / 8 : 16;
}

static void pause_accepting(at_feed *f, const char *why)
{
    int64_t t = now_ms();
    if (!f->listening)
        return;
    int again = f->last_trip_ms && t - f->last_trip_ms < PAUSE_FORGET_MS;
    f->pause_ms =
        again ? (2 * f->pause_ms < PAUSE_MAX_MS ? 2 * f->pause_ms : PAUSE_MAX_MS) : PAUSE_FIRST_MS;
    f->last_trip_ms = t;
    f->resume_ms = t + f->pause_ms;
    if (zmq_unbind(f->sock, f->endpoint) != 0) {
        snprintf(f->fds_note, sizeof f->fds_note, "%s: cannot stop listening on %s: %s", why,
                 f->endpoint, zmq_strerror(zmq_errno()));
        return;
    }
    f->listening = 0;
    f->stats.accept_pauses++;
    snprintf(f->fds_note, sizeof f->fds_note,
             "%s: not accepting new connections on %s for %lld s (connected trainers stay; "
             "ulimit -n raises the limit)",
             why, f->endpoint, (long long)(f->pause_ms / 1000));
}

/* Stops accepting when fewer than fd_reserve descriptors are left. */
static void check_fds(at_feed *f)
{
    long limit = fd_limit();
    if (limit == LONG_MAX)
        return;
    long n = open_fds(limit);
    char why[96];
    snprintf(why, sizeof why, "%ld of %ld file descriptors in use", n, limit);
    if (n >= limit - fd_reserve(limit))
        pause_accepting(f, why);
}

/* Listens again once the pause is over and the descriptors in use fell below the limit by
 * twice the reserve; else waits another pause. */
static void resume_accepting(at_feed *f)
{
    int64_t t = now_ms();
    if (f->listening || t < f->resume_ms)
        return;
    long limit = fd_limit(), n = limit == LONG_MAX ? -1 : open_fds(limit);
    if (n >= 0 && n >= limit - 2 * fd_reserve(limit)) {
        f->resume_ms = t + f->pause_ms;
        return;
    }
    if (bind_endpoint(f, f->endpoint) == 0) {
        f->listening = 1;
        snprintf(f->fds_note, sizeof f->fds_note, "accepting connections on %s again", f->endpoint);
    } else {
        f->resume_ms = t + f->pause_ms;
        snprintf(f->fds_note, sizeof f->fds_note, "cannot listen on %s again yet: %s", f->endpoint,
                 zmq_strerror(zmq_errno()));
    }
}

/* Records a connection accepted on descriptor fd (down 0) or a disconnection from it (1). A
 * descriptor the table cannot hold stays unknown, which conn_gone reads as not gone. */
static void note_fd(at_feed *f, uint32_t fd, int down)
{
    if (fd >= MAX_FD)
        return;
    if ((int)fd >= f->nfds) {
        int n = f->nfds ? f->nfds : 64;
        while (n <= (int)fd)
            n *= 2;
        fd_state *p = realloc(f->fds, (size_t)n * sizeof *p);
        if (!p)
            return;
        memset(p + f->nfds, 0, (size_t)(n - f->nfds) * sizeof *p);
        f->fds = p;
        f->nfds = n;
    }
    f->fds[fd].down = down;
    f->fds[fd].drops += down;
}

static const fd_state *fd_of(const at_feed *f, int fd)
{
    return fd >= 0 && fd < f->nfds ? &f->fds[fd] : NULL;
}

/* 1 once the socket monitor showed c's connection closed. c->drops and c->dead were taken after
 * reading c's message and every event queued by then (start_message); a descriptor is only
 * reused after a disconnection, so any disconnection on c's descriptor since is c's own or a
 * later connection's -- c's is gone either way. Unknown (no descriptor, events not tracked): 0,
 * so a connection is never taken for gone without evidence. */
static int conn_gone(const at_feed *f, const conn_ref *c)
{
    const fd_state *s = fd_of(f, c->fd);
    return c->dead || (s && s->drops > c->drops);
}

static int same_conn(const conn_ref *a, const conn_ref *b)
{
    return a->idlen == b->idlen && memcmp(a->id, b->id, a->idlen) == 0 && !strcmp(a->key, b->key);
}

/* The owner's connection is known gone: closed (conn_gone) or unreachable for a send. */
static int owner_gone(const at_feed *f, const run_slot *r)
{
    return r->lost || conn_gone(f, &r->owner);
}

static void update_connected(const at_feed *f, run_slot *r)
{
    r->pub.connected = !r->ended && !owner_gone(f, r);
}

/* After the socket monitor's news: which owners are gone. */
static void runs_refresh(at_feed *f)
{
    for (int i = 0; i < f->nruns; i++)
        update_connected(f, &f->runs[i]);
}

/* Reads every pending socket-monitor event without waiting. */
static void watch_events(at_feed *f)
{
    int accepted = 0, conns = 0;
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, f->events, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t id = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&id, zmq_msg_data(&ev), 2);
            memcpy(&value, (const char *)zmq_msg_data(&ev) + 2, 4);
        }
        /* The second frame (the endpoint) is part of the same message: already here. */
        while (zmq_msg_more(&ev) && zmq_msg_recv(&ev, f->events, 0) >= 0)
            ;
        zmq_msg_close(&ev);
        if (id == ZMQ_EVENT_ACCEPTED || id == ZMQ_EVENT_DISCONNECTED) {
            note_fd(f, value, id == ZMQ_EVENT_DISCONNECTED);
            accepted |= id == ZMQ_EVENT_ACCEPTED;
            conns = 1;
        } else if (id == ZMQ_EVENT_ACCEPT_FAILED && (value == EMFILE || value == ENFILE)) {
            pause_accepting(f, value == EMFILE ? "out of file descriptors"
                                               : "the system is out of file descriptors");
        } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
                   id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            f->stats.handshake_failed++;
            f->handshake_pending++;
        }
    }
    if (accepted && f->listening)
        check_fds(f);
    resume_accepting(f);
    if (conns)
        runs_refresh(f);
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
    f->max_runs = opts->max_runs > 0 ? opts->max_runs : AT_FEED_MAX_RUNS;
    f->by_rank = at_idmap_new(NULL);
    f->by_run = at_idmap_new(NULL);
    if (!f->by_rank || !f->by_run) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
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
    /* Every transport obeys one rule: what may be reachable from another machine needs Curve
     * or an explicit insecure choice (docs/protocol.md section 8). */
    if (!curve && at_proto_endpoint_scope(ep) == AT_PROTO_SCOPE_NETWORK) {
        if (!opts->allow_insecure) {
            snprintf(err, errlen,
                     "%s may be reachable from other machines (it is not ipc, inproc or tcp/ws/wss "
                     "on a loopback address: 127.0.0.1, [::1]) and no Curve keys are set: "
                     "snapshots and stop requests would travel unauthenticated (keys: "
                     "docs/protocol.md section 8; watch --curve-key/--curve-allow, or "
                     "--insecure to accept that)",
                     ep);
            goto err;
        }
        add_warning(f,
                    "listening on %s without CurveZMQ: anyone who reaches it can send snapshots "
                    "and read stop requests",
                    ep);
    }
    if (ipc_check(ep, err, errlen) != AT_OK)
        goto err;
    f->ctx = zmq_ctx_new();
    f->sock = f->ctx ? zmq_socket(f->ctx, ZMQ_ROUTER) : NULL;
    if (!f->sock) {
        snprintf(err, errlen, "cannot create ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        goto err;
    }
    /* IPv6 only when the endpoint names an IPv6 address: with it on, ZeroMQ reports an IPv4
     * endpoint in its IPv6-mapped form ([::ffff:127.0.0.1]). No limit on queued socket-monitor
     * events: past a limit (2000 by default) ZeroMQ drops them, and a missed disconnection or
     * accept would make a run's owner look connected for good, or gone while it is not
     * (conn_gone). TCP keepalive:
     * a trainer whose host vanished is known gone after about two minutes, so its run may pass
     * on (docs/protocol.md section 1). */
    int hwm = opts->rcvhwm > 0 ? opts->rcvhwm : 4, one = 1, zero = 0, v6 = strchr(ep, '[') != 0;
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://alphatop-feed-%p", (void *)f);
    if (zmq_socket_monitor(f->sock, mon, FEED_EVENTS) != 0 ||
        !(f->events = zmq_socket(f->ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(f->events, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(f->events, ZMQ_RCVHWM, &zero, sizeof zero) != 0 ||
        zmq_connect(f->events, mon) != 0) {
        snprintf(err, errlen, "cannot watch the ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        goto err;
    }
    uint64_t maxframe =
        f->lim.max_payload > f->lim.max_header ? f->lim.max_payload : f->lim.max_header;
    int64_t maxmsg = maxframe > INT64_MAX ? INT64_MAX : (int64_t)maxframe;
    int idle = 60, intvl = 10, cnt = 6;
    if (zmq_setsockopt(f->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_IPV6, &v6, sizeof v6) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_TCP_KEEPALIVE, &one, sizeof one) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_TCP_KEEPALIVE_IDLE, &idle, sizeof idle) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_TCP_KEEPALIVE_INTVL, &intvl, sizeof intvl) != 0 ||
        zmq_setsockopt(f->sock, ZMQ_TCP_KEEPALIVE_CNT, &cnt, sizeof cnt) != 0) {
        snprintf(err, errlen, "cannot configure ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        goto err;
    }
    f->curve = curve;
    if (curve && setup_curve(f, opts, err, errlen) != AT_OK)
        goto err;
    if (bind_endpoint(f, ep) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", ep, zmq_strerror(zmq_errno()));
        goto err;
    }
    f->listening = 1;
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
    if (f->events) {
        /* Stop the monitor, then read what it already sent: libzmq 4.3 leaks an event frame
         * longer than its inline size (an endpoint address) still queued when its PAIR socket
         * closes (agent.c's close_socket does the same on the trainer's side). */
        if (f->sock)
            zmq_socket_monitor(f->sock, NULL, 0);
        zmq_msg_t m;
        zmq_msg_init(&m);
        while (zmq_msg_recv(&m, f->events, ZMQ_DONTWAIT) >= 0)
            ;
        zmq_msg_close(&m);
        zmq_close(f->events);
    }
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
     * (a live monitor's endpoint is never taken over, see ipc_check). */
    if (!strncmp(f->endpoint, "ipc://", 6))
        unlink(f->endpoint + 6);
    free(f->allow);
    free(f->runs);
    at_idmap_free(f->by_rank);
    at_idmap_free(f->by_run);
    free(f->fds);
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

const char *at_feed_warning(const at_feed *f)
{
    return f ? f->warning : "";
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

/* The key of run id run and rank in by_rank; ids hold no control character (docs/protocol.md
 * section 3), so the separator cannot occur in one. */
static void rank_key(char *key, size_t n, const char *run, int64_t rank)
{
    snprintf(key, n, "%s\x1f%lld", run, (long long)rank);
}

/* The entry of run id run for rank (-1: the first of any rank). */
static run_slot *find_run(const at_feed *f, const char *run, int64_t rank)
{
    char key[AT_PROTO_MAX_ID + 32];
    if (run && rank >= 0)
        rank_key(key, sizeof key, run, rank);
    int i = !run ? -1 : rank < 0 ? at_idmap_get(f->by_run, run) : at_idmap_get(f->by_rank, key);
    return i >= 0 ? &f->runs[i] : NULL;
}

/* Files entry i (the last one) in the maps, at the end of its run's chain. */
static int index_run(at_feed *f, int i)
{
    run_slot *r = &f->runs[i];
    char key[AT_PROTO_MAX_ID + 32];
    rank_key(key, sizeof key, r->pub.run, r->pub.rank);
    r->next = -1;
    run_slot *first = find_run(f, r->pub.run, -1);
    if (at_idmap_put(f->by_rank, key, i) != AT_OK ||
        (!first && at_idmap_put(f->by_run, r->pub.run, i) != AT_OK))
        return AT_ERR_NOMEM;
    while (first && first->next >= 0)
        first = &f->runs[first->next];
    if (first)
        first->next = i;
    return AT_OK;
}

/* Keeps the entries whose owner is connected, in order, and files them again: entries of
 * ended runs and gone owners make room (feed.h, max_runs). */
static void runs_compact(at_feed *f)
{
    at_idmap *a = at_idmap_new(NULL), *b = at_idmap_new(NULL);
    if (!a || !b) {
        at_idmap_free(a);
        at_idmap_free(b);
        return;
    }
    at_idmap_free(f->by_rank);
    at_idmap_free(f->by_run);
    f->by_rank = a;
    f->by_run = b;
    int n = 0;
    for (int i = 0; i < f->nruns; i++)
        if (f->runs[i].pub.connected)
            f->runs[n++] = f->runs[i];
    f->stats.runs_forgotten += f->nruns - n;
    f->nruns = 0;
    for (int i = 0; i < n && index_run(f, i) == AT_OK; i++)
        f->nruns = i + 1;
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
    run_slot *r = f ? find_run(f, run, -1) : NULL;
    return r ? &r->pub : NULL;
}

/* Sends m to r's owner. */
static int send_to_owner(at_feed *f, run_slot *r, at_proto_msg *m)
{
    size_t len = 0;
    at_proto_error e;
    int rc = at_proto_encode(m, f->hdr, sizeof f->hdr, &len, &e);
    if (rc != AT_OK)
        return set_error(f, rc, "cannot encode %s: %s", at_proto_type_name(m->type), e.message);
    if (zmq_send(f->sock, r->owner.id, r->owner.idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(f->sock, f->hdr, len, ZMQ_DONTWAIT) < 0) {
        int e2 = zmq_errno();
        if (e2 == EHOSTUNREACH) {
            r->lost = 1;
            update_connected(f, r);
            return set_error(f, AT_ERR_NOTFOUND, "run %s is no longer connected", r->pub.run);
        }
        if (e2 == EAGAIN)
            return set_error(f, AT_ERR_AGAIN, "queue to run %s is full", r->pub.run);
        return set_error(f, AT_ERR_NET, "send to run %s: %s", r->pub.run, zmq_strerror(e2));
    }
    return AT_OK;
}

/* send_to_owner for the controls at_feed_stats counts (all but goodbye_ack). */
static int send_control(at_feed *f, run_slot *r, at_proto_msg *m)
{
    int rc = send_to_owner(f, r, m);
    f->stats.controls_sent += rc == AT_OK;
    return rc;
}

/* The socket monitor's state of f->cur's descriptor, for it to become a run's owner. Its
 * connection was accepted before its message could be read, so once the events queued now are
 * read, that state includes the accept (conn_gone relies on it). Only then: one more look at
 * the events costs about a microsecond a message. */
static void note_sender_state(at_feed *f)
{
    watch_events(f);
    const fd_state *s = fd_of(f, f->cur.fd);
    f->cur.drops = s ? s->drops : 0;
    f->cur.dead = s ? s->down : 0;
}

/* The rank a message speaks for: the one it names (hello, and version 2's layer, skip,
 * snapshot_end and goodbye), else the rank of the run the current connection owns, else 0. */
static int64_t msg_rank(const at_feed *f, const at_proto_msg *m)
{
    switch (m->type) {
    case AT_PROTO_HELLO:
        return m->u.hello.rank;
    case AT_PROTO_LAYER:
        return m->u.layer.rank;
    case AT_PROTO_SKIP:
        return m->u.skip.rank;
    case AT_PROTO_SNAPSHOT_END:
        return m->u.snapshot_end.rank;
    case AT_PROTO_GOODBYE:
        return m->u.goodbye.rank;
    default:
        for (const run_slot *r = find_run(f, m->run, -1); r;
             r = r->next >= 0 ? &f->runs[r->next] : NULL)
            if (same_conn(&r->owner, &f->cur))
                return r->pub.rank;
        return 0;
    }
}

/* May the current connection speak for run r (NULL: a run not seen yet, its first speaker
 * owns it) with a message of this type? Its owner may; another connection only once the run
 * passed on: without Curve, after the owner's goodbye or once its connection is known gone;
 * with Curve, a connection with the owner's key also by saying hello (a trainer that made a
 * new socket), and one with another key only after the owner's goodbye. Docs/protocol.md
 * section 1 says why. */
static int may_speak(const at_feed *f, const run_slot *r, at_proto_type type)
{
    if (!r || same_conn(&r->owner, &f->cur))
        return 1;
    if (f->curve && strcmp(r->owner.key, f->cur.key) != 0)
        return r->ended;
    return r->ended || owner_gone(f, r) || (f->curve && type == AT_PROTO_HELLO);
}

/* may_speak for message m, with a second look at the socket monitor's news before a no: the
 * owner's connection may have closed since at_feed_recv last looked. */
static int may_send(at_feed *f, const at_proto_msg *m)
{
    if (may_speak(f, find_run(f, m->run, msg_rank(f, m)), m->type))
        return 1;
    watch_events(f);
    return may_speak(f, find_run(f, m->run, msg_rank(f, m)), m->type);
}

/* The entry m speaks for, added if new (when the table is full, once the entries of ended
 * runs and gone owners made room); NULL when there is no room: every entry's owner is
 * connected (feed.h, max_runs), or out of memory. */
static run_slot *slot_for(at_feed *f, const at_proto_msg *m)
{
    const int64_t rank = msg_rank(f, m);
    run_slot *r = find_run(f, m->run, rank);
    if (r)
        return r;
    if (f->nruns >= f->max_runs) {
        runs_refresh(f);
        runs_compact(f);
    }
    if (f->nruns >= f->max_runs)
        return NULL;
    if (f->nruns == f->cap_runs) {
        int cap = f->cap_runs ? 2 * f->cap_runs : 8;
        run_slot *p = realloc(f->runs, (size_t)cap * sizeof *p);
        if (!p)
            return NULL;
        f->runs = p;
        f->cap_runs = cap;
    }
    r = &f->runs[f->nruns];
    memset(r, 0, sizeof *r);
    memcpy(r->pub.run, m->run, sizeof r->pub.run);
    r->pub.rank = rank;
    if (index_run(f, f->nruns) != AT_OK)
        return NULL;
    f->nruns++;
    return r;
}

/* Records that m came from the current connection (may_speak said yes) for r, its entry; the
 * connection becomes the owner if it is new to the run or the owner's is gone. */
static void note_run(at_feed *f, run_slot *r, const at_proto_msg *m, int64_t t)
{
    if (!same_conn(&r->owner, &f->cur)) {
        /* A new owner has not said who it is unless this is its hello. */
        r->hello_requested = 0;
        r->pub.hello_seen = 0;
        r->pub.stop_acked = 0;
    }
    if (!same_conn(&r->owner, &f->cur) || owner_gone(f, r)) {
        /* A new owner, or the owner's routing id on a connection not seen gone (a peer that
         * chose its routing id and reconnected; or the last messages of a closed one, which
         * then read as gone again). */
        note_sender_state(f);
        r->owner = f->cur;
        r->lost = 0;
    }
    r->pub.peer = peer_number(r->owner.id, r->owner.idlen);
    r->ended = m->type == AT_PROTO_GOODBYE;
    update_connected(f, r);
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
        /* Everything the trainer sent before is read now: it may close. It waits for this (at
         * most its linger time): closing once its queue was written lost the tail of a burst
         * this socket, a few messages deep, had not yet taken in (docs/protocol.md 6). */
        memset(&f->ctl, 0, sizeof f->ctl);
        f->ctl.type = AT_PROTO_GOODBYE_ACK;
        memcpy(f->ctl.run, r->pub.run, sizeof f->ctl.run);
        send_to_owner(f, r, &f->ctl);
        break;
    case AT_PROTO_STOP_ACK:
        r->pub.stop_acked = 1;
        break;
    default:
        break;
    }
    /* A monitor started (or restarted) after the trainer has missed the hello, and so has one
     * whose run passed to a connection that did not start with it: ask for it. */
    if (!r->pub.hello_seen && !r->hello_requested && r->pub.connected) {
        memset(&f->ctl, 0, sizeof f->ctl);
        f->ctl.type = AT_PROTO_HELLO_REQUEST;
        memcpy(f->ctl.run, r->pub.run, sizeof f->ctl.run);
        r->hello_requested = send_control(f, r, &f->ctl) == AT_OK;
    }
}

/* Which entry to reuse first: a free one, then one with nothing pending. */
static int claim_rank(const claimant *k)
{
    return !k->conn.idlen ? 0 : k->pending ? 2 : 1;
}

/* Counts a message refused because its run belongs to another connection, for the notice
 * (take_notice) about the current connection's claim on the run. The entry is the claim's own,
 * else a free one, else the one noted longest ago (with nothing pending if there is one). */
static void note_claim(at_feed *f, const char *run)
{
    f->stats.rejected++;
    f->stats.rejected_by[AT_PROTO_E_NOT_OWNER]++;
    claimant *c = NULL, *victim = &f->claims[0];
    for (int i = 0; i < MAX_CLAIMANTS && !c; i++) {
        claimant *k = &f->claims[i];
        if (k->conn.idlen && same_conn(&k->conn, &f->cur) && !strcmp(k->run, run))
            c = k;
        else if (claim_rank(k) < claim_rank(victim) ||
                 (claim_rank(k) == claim_rank(victim) && k->note_ms < victim->note_ms))
            victim = k;
    }
    if (!c) {
        c = victim;
        memset(c, 0, sizeof *c);
        c->conn = f->cur;
        snprintf(c->run, sizeof c->run, "%s", run);
    }
    c->pending++;
    set_error(f, AT_ERR_AUTH, "refused a message for run %s: another connection owns it", run);
}

/* "connection N" and what else tells the peer apart: its process (ipc: ZeroMQ's Peer-Address
 * is "localhost:UID:GID:PID") or address, and its key's first characters. */
static void describe(const at_feed *f, const conn_ref *c, char *buf, size_t n)
{
    unsigned uid, gid;
    int pid;
    char tail, where[96] = "";
    if (sscanf(c->addr, "localhost:%u:%u:%d%c", &uid, &gid, &pid, &tail) == 3)
        snprintf(where, sizeof where, " (pid %d, uid %u)", pid, uid);
    else if (c->addr[0])
        snprintf(where, sizeof where, " (%s)", c->addr);
    snprintf(buf, n, "connection %u%s%s%.8s", (unsigned)peer_number(c->id, c->idlen), where,
             f->curve ? " key " : "", f->curve ? c->key : "");
}

/* The notice for a refused claim that is due (NOTE_EVERY_MS after its previous one), in *e:
 * AT_ERR_AUTH, or AT_OK if none is due. */
static int claim_notice(at_feed *f, int64_t t, at_proto_error *e)
{
    for (int i = 0; i < MAX_CLAIMANTS; i++) {
        claimant *c = &f->claims[i];
        const run_slot *r = c->pending ? find_run(f, c->run, -1) : NULL;
        if (!r || t - c->note_ms < NOTE_EVERY_MS)
            continue;
        char who[160], owner[160];
        describe(f, &c->conn, who, sizeof who);
        describe(f, &r->owner, owner, sizeof owner);
        const char *until = !f->curve                           ? "says goodbye or disconnects"
                            : strcmp(c->conn.key, r->owner.key) ? "says goodbye"
                                                                : "goes or this one says hello";
        char text[640]; /* the whole text, cut to the message's size */
        e->reason = AT_PROTO_E_NOT_OWNER;
        snprintf(
            text, sizeof text,
            "%s: refused %lld message(s) for run %s from %s: it belongs to %s until that one %s",
            at_proto_reason_name(e->reason), (long long)c->pending, c->run, who, owner, until);
        snprintf(e->message, sizeof e->message, "%.*s", (int)sizeof e->message - 1, text);
        c->pending = 0;
        c->note_ms = t;
        return at_proto_reason_status(e->reason);
    }
    return AT_OK;
}

/* A notice for the caller (feed.h), at most one per kind and NOTE_EVERY_MS: returns its status
 * with the text in *err, or AT_OK when there is none. */
static int take_notice(at_feed *f, at_proto_error *err)
{
    at_proto_error e = {AT_PROTO_E_NONE, ""};
    int64_t t = now_ms(), denied = atomic_load(&f->auth_denied) - f->auth_reported;
    int rc = AT_OK;
    if (f->fds_note[0]) {
        snprintf(e.message, sizeof e.message, "%.*s", (int)sizeof e.message - 1, f->fds_note);
        f->fds_note[0] = '\0';
        rc = AT_ERR_IO;
    } else if ((denied || f->handshake_pending) && t - f->auth_note_ms >= NOTE_EVERY_MS) {
        snprintf(e.message, sizeof e.message,
                 "refused %lld connection(s): %lld with a key not on the allow-list, %lld whose "
                 "handshake failed (CurveZMQ on one side only, or the wrong monitor key)",
                 (long long)(denied + f->handshake_pending), (long long)denied,
                 (long long)f->handshake_pending);
        f->auth_reported += denied;
        f->handshake_pending = 0;
        f->auth_note_ms = t;
        rc = AT_ERR_AUTH;
    } else {
        rc = claim_notice(f, t, &e);
    }
    if (rc == AT_OK)
        return AT_OK;
    if (err)
        *err = e;
    return set_error(f, rc, "%s", e.message);
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

/* The rest of f->cur (the routing id is there already) from the first frame after the routing
 * id: that frame carries the connection's descriptor and properties (the routing-id frame
 * does not once zmq_poll looked ahead). */
static void note_sender(at_feed *f, zmq_msg_t *frame)
{
    conn_ref *c = &f->cur;
    const char *key = f->curve ? zmq_msg_gets(frame, "User-Id") : NULL;
    const char *addr = zmq_msg_gets(frame, "Peer-Address");
    snprintf(c->key, sizeof c->key, "%s", key ? key : "");
    snprintf(c->addr, sizeof c->addr, "%s", addr ? addr : "");
    c->fd = zmq_msg_get(frame, ZMQ_SRCFD);
    c->drops = 0;
    c->dead = 0;
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
            f->cur.idlen = n < MAX_ID ? n : MAX_ID;
            memcpy(f->cur.id, zmq_msg_data(&id), f->cur.idlen);
            zmq_msg_close(&id);
            f->new_sender = more;
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

/* at_feed_recv's result for a message refused as not its sender's to send (note_claim). */
#define REFUSED 1

/* One protocol message, or a notice (at_feed_recv), or REFUSED. */
static int recv_one(at_feed *f, int timeout_ms, at_feed_msg **out, at_proto_error *err)
{
    if (!f->in_msg) {
        watch_events(f);
        int rc = take_notice(f, err);
        if (rc != AT_OK)
            return rc;
        if (!start_message(f, timeout_ms))
            return zmq_errno() == ETERM ? set_error(f, AT_ERR_NET, "socket closed") : AT_ERR_AGAIN;
    }
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
    if (f->new_sender)
        note_sender(f, &hdr);
    f->new_sender = 0;
    size_t bytes = zmq_msg_size(&hdr);
    int rc = at_proto_decode_header(zmq_msg_data(&hdr), zmq_msg_size(&hdr), &f->lim, &m->msg, &e);
    zmq_msg_close(&hdr);
    if (rc == AT_OK && at_proto_from_trainer(m->msg.type) && !may_send(f, &m->msg)) {
        note_claim(f, m->msg.run);
        at_feed_msg_free(m);
        skip_rest(f);
        return REFUSED;
    }
    if (rc == AT_OK && !at_proto_from_trainer(m->msg.type)) {
        e.reason = AT_PROTO_E_DIRECTION;
        snprintf(e.message, sizeof e.message,
                 "a \"%s\" message is the monitor's to send; trainers may not send it",
                 at_proto_type_name(m->msg.type));
        at_feed_msg_free(m);
        return reject(f, err, &e);
    }
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
    /* A stop_ack for a run not seen holds no place: the engine counts and ignores it. */
    run_slot *r = m->msg.type == AT_PROTO_STOP_ACK ? find_run(f, m->msg.run, msg_rank(f, &m->msg))
                                                   : slot_for(f, &m->msg);
    if (!r && m->msg.type != AT_PROTO_STOP_ACK) {
        f->stats.runs_refused++;
        at_feed_msg_free(m);
        return REFUSED;
    }
    m->recv_ms = now_ms();
    m->peer = peer_number(f->cur.id, f->cur.idlen);
    f->stats.messages++;
    f->stats.bytes += (int64_t)bytes;
    if (r) {
        r->pub.bytes += (int64_t)bytes;
        note_run(f, r, &m->msg, m->recv_ms);
    }
    *out = m;
    return AT_OK;
}

int at_feed_recv(at_feed *f, int timeout_ms, at_feed_msg **out, at_proto_error *err)
{
    if (!f || !out)
        return AT_ERR_ARG;
    *out = NULL;
    /* Refused claims are counted and noted, not returned one by one: the next call may bring
     * their notice (take_notice). A flood of them still returns now and then. */
    for (int i = 0; i < REFUSED_PER_CALL; i++, timeout_ms = 0) {
        int rc = recv_one(f, timeout_ms, out, err);
        if (rc != REFUSED)
            return rc;
    }
    return AT_ERR_AGAIN;
}

/* ---- control ---- */

/* Sends a control message to every rank of the run named run. */
static int control(at_feed *f, const char *run, at_proto_type type, const char *reason,
                   int64_t interval)
{
    if (!f || !run)
        return AT_ERR_ARG;
    memset(&f->ctl, 0, sizeof f->ctl);
    f->ctl.type = type;
    if (strlen(run) >= sizeof f->ctl.run)
        return set_error(f, AT_ERR_NOTFOUND, "no connected run named %s", run);
    memcpy(f->ctl.run, run, strlen(run) + 1);
    if (reason) {
        size_t n = strlen(reason);
        if (n == 0 || n >= sizeof f->ctl.u.reason)
            return set_error(f, AT_ERR_ARG, "stop reason must be 1..%zu bytes",
                             sizeof f->ctl.u.reason - 1);
        memcpy(f->ctl.u.reason, reason, n + 1);
    }
    if (type == AT_PROTO_INTERVAL)
        f->ctl.u.interval = interval;
    int rc = set_error(f, AT_ERR_NOTFOUND, "no connected run named %s", run), sent = 0;
    for (run_slot *r = find_run(f, run, -1); r; r = r->next >= 0 ? &f->runs[r->next] : NULL) {
        if (!r->pub.connected)
            continue;
        int one = send_control(f, r, &f->ctl);
        sent |= one == AT_OK;
        if (one != AT_OK)
            rc = one;
    }
    return sent ? AT_OK : rc;
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

void at_feed_stats_get(at_feed *f, at_feed_stats *s)
{
    if (!f || !s)
        return;
    watch_events(f);
    *s = f->stats;
    s->auth_denied = atomic_load(&f->auth_denied);
}
