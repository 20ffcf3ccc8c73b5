/* SPDX-License-Identifier: Apache-2.0 */
/* campaign.c -- the hostile-traffic campaign (campaign.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "alphatop/text.h"
#include "campaign.h"
#include "wire.h"

#define BIT(r) (1u << (r))
#define OVERSIZE_BYTES ((1 << 20) + 1) /* the feed's payload limit here is 1 MiB */
#define MAX_HEADER 16384
#define MAX_HONEST 8
#define MAX_HOSTILE 16

enum fate { ACCEPT, REJECT, BOTH, SILENT, VICTIM };

static const struct kind_def {
    const char *name;
    enum fate fate;
    unsigned reasons; /* the at_proto_reasons a rejection may give */
    int weight;       /* how often it is drawn */
} kinds[CAMPAIGN_KINDS] = {
    [CK_GOOD] = {"good", ACCEPT, 0, 8},
    [CK_GARBAGE] = {"garbage", REJECT, BIT(AT_PROTO_E_JSON) | BIT(AT_PROTO_E_TEXT), 6},
    [CK_TRUNCATED] = {"truncated", REJECT, BIT(AT_PROTO_E_JSON), 4},
    [CK_VERSION] = {"version", REJECT, BIT(AT_PROTO_E_VERSION), 2},
    [CK_TYPE] = {"unknown_type", REJECT, BIT(AT_PROTO_E_TYPE), 2},
    [CK_MISSING] = {"missing", REJECT, BIT(AT_PROTO_E_MISSING), 2},
    [CK_FIELD_TYPE] = {"field_type", REJECT, BIT(AT_PROTO_E_FIELD_TYPE), 2},
    [CK_VALUE] = {"value", REJECT, BIT(AT_PROTO_E_VALUE), 2},
    [CK_STRING] = {"long_string", REJECT, BIT(AT_PROTO_E_STRING), 2},
    [CK_TOO_MANY] = {"too_many", REJECT, BIT(AT_PROTO_E_TOO_MANY), 2},
    [CK_SHAPE] = {"shape", REJECT, BIT(AT_PROTO_E_SHAPE), 2},
    [CK_MISMATCH] = {"payload_mismatch", REJECT, BIT(AT_PROTO_E_PAYLOAD_MISMATCH), 2},
    [CK_CHECKSUM] = {"checksum", REJECT, BIT(AT_PROTO_E_CHECKSUM), 2},
    [CK_TEXT] = {"text", REJECT, BIT(AT_PROTO_E_TEXT), 4},
    [CK_STRICT] = {"strict_json", REJECT, BIT(AT_PROTO_E_JSON), 4},
    [CK_BIGINT] = {"bigint", REJECT, BIT(AT_PROTO_E_FIELD_TYPE), 2},
    [CK_DIRECTION] = {"direction", REJECT, BIT(AT_PROTO_E_DIRECTION), 2},
    [CK_FRAMES] = {"frames", REJECT, BIT(AT_PROTO_E_FRAMES), 2},
    [CK_MULTI] = {"multi", BOTH, BIT(AT_PROTO_E_JSON), 2},
    [CK_HEADER_SIZE] = {"header_size", REJECT, BIT(AT_PROTO_E_HEADER_SIZE), 1},
    [CK_OVERSIZE] = {"oversize", SILENT, 0, 1},
    [CK_V_GARBAGE] = {"v_garbage", VICTIM, 0, 2},
    [CK_V_STOP_NUL] = {"v_stop_nul", VICTIM, 0, 2},
    [CK_V_STOP_ESC] = {"v_stop_esc", VICTIM, 0, 1},
    [CK_V_STOP_OTHER] = {"v_stop_other", VICTIM, 0, 1},
    [CK_V_MULTI] = {"v_multi", VICTIM, 0, 1},
    [CK_V_TRAINER] = {"v_trainer_msg", VICTIM, 0, 1},
    [CK_V_BIGINT] = {"v_bigint", VICTIM, 0, 1},
    [CK_V_OVERSIZE] = {"v_oversize", VICTIM, 0, 1},
};

const char *campaign_kind_name(campaign_kind k)
{
    return (unsigned)k < CAMPAIGN_KINDS ? kinds[k].name : "?";
}

int campaign_kind_to_victim(campaign_kind k)
{
    return (unsigned)k < CAMPAIGN_KINDS && kinds[k].fate == VICTIM;
}

void campaign_opts_default(campaign_opts *o)
{
    *o = (campaign_opts){.seed = 1,
                         .steps = 600,
                         .honest = 2,
                         .hostile = 3,
                         .snapshot_every = 10,
                         .timeout_ms = 3000};
}

/* ---- the state of one run ---- */

typedef struct campaign {
    const campaign_opts *o;
    campaign_result *r;
    uint64_t rng;
    void *ctx;              /* the hostile side's ZeroMQ context */
    void *raw[MAX_HOSTILE]; /* raw DEALERs to the monitor */
    void *evil;             /* raw ROUTER the victim is connected to */
    unsigned char victim_id[256];
    int victim_idn, victim_hellos;
    char ep[128], evil_ep[128];
    at_feed *f;
    at_agent *honest[MAX_HONEST], *victim;
    wire_tally tally[MAX_HONEST];
    /* What the monitor has shown since the start: raw peers' messages, rejections. */
    int64_t raw_accepted, rejections, reason_seen[AT_PROTO_E_COUNT];
    char *big; /* OVERSIZE_BYTES of zeros */
} campaign;

static uint64_t next(campaign *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545f4914f6cdd1dull;
}

static int below(campaign *c, int n)
{
    return (int)(next(c) % (uint64_t)n);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    if (fp) {
        if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(fp);
    }
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ---- what the monitor shows ---- */

static int honest_index(const campaign *c, const char *run)
{
    int i;
    if (sscanf(run, "honest-%d", &i) == 1 && i >= 0 && i < c->o->honest)
        return i;
    return -1;
}

/* Reads everything the monitor has now, without waiting longer than wait_ms for the first. */
static void read_monitor(campaign *c, int wait_ms)
{
    for (;;) {
        at_feed_msg *m = NULL;
        at_proto_error e = {AT_PROTO_E_NONE, ""};
        int rc = at_feed_recv(c->f, wait_ms, &m, &e);
        wait_ms = 0;
        if (rc == AT_ERR_AGAIN)
            return;
        if (rc == AT_OK) {
            int h = honest_index(c, m->msg.run);
            if (h >= 0) {
                wire_tally_add(&c->tally[h], m);
                c->r->honest_scalars += m->msg.type == AT_PROTO_SCALARS;
            } else if (!strncmp(m->msg.run, "raw-", 4)) {
                c->raw_accepted++;
            } else {
                c->r->unexpected++;
            }
            at_feed_msg_free(m);
        } else if (e.reason != AT_PROTO_E_NONE && (unsigned)e.reason < AT_PROTO_E_COUNT) {
            c->rejections++;
            c->reason_seen[e.reason]++;
        } else {
            c->r->unexpected++; /* a notice: no connection here should be refused */
        }
    }
}

/* Waits until the monitor has shown `accepts` more raw messages and `rejects` more rejections
 * than before (a0, j0); checks the reasons against the kind's. */
static void await_fate(campaign *c, campaign_kind k, int accepts, int rejects)
{
    int64_t a0 = c->raw_accepted, j0 = c->rejections, seen0[AT_PROTO_E_COUNT];
    memcpy(seen0, c->reason_seen, sizeof seen0);
    int64_t deadline = now_ms() + c->o->timeout_ms;
    while ((c->raw_accepted - a0 < accepts || c->rejections - j0 < rejects) && now_ms() < deadline)
        read_monitor(c, 10);
    if (c->raw_accepted - a0 < accepts || c->rejections - j0 < rejects) {
        c->r->lost++;
        return;
    }
    c->r->accepted[k] += c->raw_accepted - a0;
    for (int reason = 0; reason < AT_PROTO_E_COUNT; reason++) {
        int64_t n = c->reason_seen[reason] - seen0[reason];
        if (kinds[k].reasons & BIT(reason))
            c->r->rejected[k] += n;
        else
            c->r->wrong_reason += n;
    }
}

/* ---- building hostile messages ---- */

typedef struct frames {
    int n;
    const void *data[3];
    size_t len[3];
    char text[3][MAX_HEADER + 1024];
} frames;

static void one(frames *fr, int i, const char *text)
{
    fr->data[i] = text;
    fr->len[i] = strlen(text);
    fr->n = i + 1;
}

/* Well-formed scalars of run `run` into buf. */
static void good_scalars(campaign *c, char *buf, size_t cap, const char *run)
{
    char v[AT_TEXT_NUMBER_CAP];
    at_text_json_number(v, sizeof v, (double)(next(c) >> 11) * 0x1p-53 * 10);
    snprintf(buf, cap,
             "{\"v\":1,\"type\":\"scalars\",\"run\":\"%s\",\"step\":%d,\"values\":{\"loss\":%s}}",
             run, below(c, 100000), v);
}

static void random_bytes(campaign *c, char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(next(c) >> 56);
    if (buf[0] == '{' || buf[0] == ' ')
        buf[0] = '#'; /* never by chance the start of an object */
}

static const char layer_fmt[] =
    "{\"v\":1,\"type\":\"layer\",\"run\":\"%s\",\"step\":1,\"seq\":0,\"name\":\"w\","
    "\"kind\":\"linear\",\"dtype\":\"f32\",\"shape\":[%s],\"nbytes\":%s%s}";

static void build(campaign *c, campaign_kind k, const char *run, frames *fr)
{
    static const float payload[6] = {1, 2, 3, 4, 5, 6};
    char *t = fr->text[0];
    size_t cap = sizeof fr->text[0];
    fr->n = 1;
    switch (k) {
    case CK_GOOD:
        good_scalars(c, t, cap, run);
        break;
    case CK_GARBAGE:
    case CK_V_GARBAGE: {
        size_t n = 1 + (size_t)below(c, 64);
        random_bytes(c, t, n);
        fr->data[0] = t;
        fr->len[0] = n;
        return;
    }
    case CK_TRUNCATED: {
        good_scalars(c, t, cap, run);
        fr->data[0] = t;
        fr->len[0] = 1 + (size_t)below(c, (int)strlen(t) - 1);
        return;
    }
    case CK_VERSION:
        snprintf(t, cap, "{\"v\":3,\"type\":\"scalars\",\"run\":\"%s\"}", run);
        break;
    case CK_TYPE:
        snprintf(t, cap, "{\"v\":1,\"type\":\"teleport\",\"run\":\"%s\"}", run);
        break;
    case CK_MISSING:
        snprintf(t, cap, "{\"v\":1,\"type\":\"scalars\",\"run\":\"%s\",\"values\":{}}", run);
        break;
    case CK_FIELD_TYPE:
        snprintf(t, cap,
                 "{\"v\":1,\"type\":\"scalars\",\"run\":\"%s\",\"step\":\"3\",\"values\":{}}", run);
        break;
    case CK_VALUE:
        snprintf(t, cap, "{\"v\":1,\"type\":\"scalars\",\"run\":\"%s\",\"step\":-1,\"values\":{}}",
                 run);
        break;
    case CK_STRING: {
        char longrun[201];
        memset(longrun, 'r', 200);
        longrun[200] = '\0';
        snprintf(t, cap, "{\"v\":1,\"type\":\"pause\",\"run\":\"%s\"}", longrun);
        break;
    }
    case CK_TOO_MANY: {
        int n = snprintf(
            t, cap, "{\"v\":1,\"type\":\"scalars\",\"run\":\"%s\",\"step\":1,\"values\":{", run);
        for (int i = 0; i < AT_PROTO_MAX_SCALARS + 1; i++)
            n += snprintf(t + n, cap - (size_t)n, "%s\"s%d\":%d", i ? "," : "", i, i);
        snprintf(t + n, cap - (size_t)n, "}}");
        break;
    }
    case CK_SHAPE:
        snprintf(t, cap, layer_fmt, run, "65536,65536", "17179869184", "");
        fr->data[1] = payload;
        fr->len[1] = sizeof payload;
        fr->data[0] = t;
        fr->len[0] = strlen(t);
        fr->n = 2;
        return;
    case CK_MISMATCH:
    case CK_CHECKSUM: {
        char sum[40] = "";
        if (k == CK_CHECKSUM)
            snprintf(sum, sizeof sum, ",\"checksum\":\"crc32:%08x\"",
                     at_proto_crc32(0, payload, sizeof payload) ^ 0x10u);
        snprintf(t, cap, layer_fmt, run, "2,3", "24", sum);
        fr->data[0] = t;
        fr->len[0] = strlen(t);
        fr->data[1] = payload;
        fr->len[1] = k == CK_MISMATCH ? 20 : sizeof payload;
        fr->n = 2;
        return;
    }
    case CK_TEXT: {
        static const char *const bad[] = {"\\u0000junk", "\\u001b[2J", "\\u009b",     "\xff\xfe",
                                          "\x7f",        "\xc2\x9b",   "\xed\xa0\x80"};
        snprintf(t, cap, "{\"v\":1,\"type\":\"scalars\",\"run\":\"%s%s\",\"step\":1,\"values\":{}}",
                 run, bad[below(c, 7)]);
        break;
    }
    case CK_STRICT: {
        static const char *const fmt[] = {
            "\xef\xbb\xbf{\"v\":1,\"type\":\"scalars\",\"run\":\"%s\",\"step\":1,\"values\":{}}",
            "{\"v\":1,\"type\":\"scalars\",\"run\":\"%s\",\"step\":01,\"values\":{}}",
            "{\"v\":1,\"type\":\"scalars\",\"run\":\"%s\",\"step\":1,\"step\":2,\"values\":{}}",
            "{\"v\":1,\"type\":\"scalars\",\"run\":\"%s\",\"step\":1,\"values\":{\"a\":1.}}"};
        snprintf(t, cap, fmt[below(c, 4)], run);
        break;
    }
    case CK_BIGINT:
        snprintf(t, cap,
                 "{\"v\":1,\"type\":\"scalars\",\"run\":\"%s\",\"step\":9007199254740993,"
                 "\"values\":{}}",
                 run);
        break;
    case CK_DIRECTION:
        snprintf(t, cap, "{\"v\":1,\"type\":\"stop\",\"run\":\"%s\",\"reason\":\"mine\"}", run);
        break;
    case CK_FRAMES:
        snprintf(t, cap, layer_fmt, run, "2,3", "24", "");
        break;
    case CK_MULTI:
        good_scalars(c, t, cap, run);
        one(fr, 0, t);
        one(fr, 1, "{]");
        good_scalars(c, fr->text[2], sizeof fr->text[2], run);
        one(fr, 2, fr->text[2]);
        return;
    case CK_HEADER_SIZE: {
        int n = snprintf(t, cap, "{\"v\":1,\"type\":\"pause\",\"run\":\"%s\"", run);
        memset(t + n, ' ', MAX_HEADER + 16);
        snprintf(t + n + MAX_HEADER + 16, cap - (size_t)n - MAX_HEADER - 16, "}");
        break;
    }
    case CK_OVERSIZE:
        snprintf(t, cap, layer_fmt, run, "2,3", "24", "");
        one(fr, 0, t);
        fr->data[1] = c->big;
        fr->len[1] = OVERSIZE_BYTES;
        fr->n = 2;
        return;
    case CK_V_STOP_NUL:
        snprintf(t, cap,
                 "{\"v\":1,\"type\":\"stop\",\"run\":\"victim\\u0000junk\",\"reason\":\"x\"}");
        break;
    case CK_V_STOP_ESC:
        snprintf(t, cap, "{\"v\":1,\"type\":\"stop\",\"run\":\"victim\\u001b\",\"reason\":\"x\"}");
        break;
    case CK_V_STOP_OTHER:
        snprintf(t, cap, "{\"v\":1,\"type\":\"stop\",\"run\":\"other\",\"reason\":\"x\"}");
        break;
    case CK_V_MULTI:
        one(fr, 0, "{\"v\":1,\"type\":\"stop\",\"run\":\"victim\",\"reason\":\"x\"}");
        one(fr, 1, "{\"v\":1,\"type\":\"stop\",\"run\":\"victim\",\"reason\":\"x\"}");
        return;
    case CK_V_TRAINER:
        good_scalars(c, t, cap, "victim");
        break;
    case CK_V_BIGINT:
        snprintf(
            t, cap,
            "{\"v\":1,\"type\":\"interval\",\"run\":\"victim\",\"interval\":9007199254740993}");
        break;
    case CK_V_OVERSIZE:
        fr->data[0] = c->big;
        fr->len[0] = 70000;
        return;
    case CAMPAIGN_KINDS:
        break;
    }
    fr->data[0] = t;
    fr->len[0] = strlen(t);
}

static int send_frames(void *sock, const frames *fr)
{
    for (int i = 0; i < fr->n; i++)
        if (zmq_send(sock, fr->data[i], fr->len[i], i + 1 < fr->n ? ZMQ_SNDMORE : 0) < 0)
            return -1;
    return 0;
}

/* ---- the sides ---- */

static void *raw_socket(campaign *c)
{
    void *s = zmq_socket(c->ctx, ZMQ_DEALER);
    int zero = 0;
    if (s) {
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        zmq_connect(s, c->ep);
    }
    return s;
}

/* Reads what the victim sent the hostile listener: its routing id, and its hellos. */
static void read_victim(campaign *c)
{
    for (;;) {
        unsigned char id[256];
        int idn = zmq_recv(c->evil, id, sizeof id, ZMQ_DONTWAIT);
        if (idn < 0)
            return;
        int more = 1;
        size_t ms = sizeof more;
        char msg[512];
        int is_hello = 0;
        while (more) {
            int n = zmq_recv(c->evil, msg, sizeof msg - 1, 0);
            if (n >= 0) {
                msg[n < (int)sizeof msg - 1 ? n : (int)sizeof msg - 1] = '\0';
                is_hello |= strstr(msg, "\"type\":\"hello\"") != NULL;
            }
            zmq_getsockopt(c->evil, ZMQ_RCVMORE, &more, &ms);
        }
        c->victim_idn = idn < (int)sizeof id ? idn : (int)sizeof id;
        memcpy(c->victim_id, id, (size_t)c->victim_idn);
        c->victim_hellos += is_hello;
    }
}

/* The victim's turn, as a training loop would call it. */
static void poke_victim(campaign *c, int step)
{
    double loss = 1.0 / (1 + step);
    at_agent_log(c->victim, step, 1, (const char *[]){"loss"}, &loss);
    c->r->victim_stopped |= at_agent_should_stop(c->victim, NULL, 0);
}

static void honest_turn(campaign *c, int step)
{
    int h = step / c->o->snapshot_every % c->o->honest;
    int64_t before = c->tally[h].snapshots;
    int rc = wire_publish(c->honest[h], step, 2, 32, 16);
    double v = (double)step;
    at_agent_log(c->honest[h], step, 1, (const char *[]){"step"}, &v);
    if (rc != AT_OK)
        return;
    c->r->honest_sent++;
    int64_t deadline = now_ms() + c->o->timeout_ms;
    while (c->tally[h].snapshots == before && now_ms() < deadline)
        read_monitor(c, 10);
    if (c->tally[h].snapshots == before)
        c->r->lost++;
}

static campaign_kind draw(campaign *c)
{
    int total = 0;
    for (int k = 0; k < CAMPAIGN_KINDS; k++)
        total += kinds[k].weight;
    int x = below(c, total);
    for (int k = 0; k < CAMPAIGN_KINDS; k++) {
        if (x < kinds[k].weight)
            return (campaign_kind)k;
        x -= kinds[k].weight;
    }
    return CK_GOOD;
}

static void hostile_turn(campaign *c, int step, frames *fr)
{
    campaign_kind k = draw(c);
    c->r->sent[k]++;
    if (kinds[k].fate == VICTIM) {
        read_victim(c);
        build(c, k, "victim", fr);
        if (c->victim_idn > 0 &&
            zmq_send(c->evil, c->victim_id, (size_t)c->victim_idn, ZMQ_SNDMORE) >= 0)
            send_frames(c->evil, fr);
        poke_victim(c, step);
        return;
    }
    int p = below(c, c->o->hostile);
    char run[16];
    snprintf(run, sizeof run, "raw-%d", p);
    build(c, k, run, fr);
    send_frames(c->raw[p], fr);
    switch (kinds[k].fate) {
    case ACCEPT:
        await_fate(c, k, 1, 0);
        break;
    case REJECT:
        await_fate(c, k, 0, 1);
        break;
    case BOTH:
        await_fate(c, k, 1, 1);
        break;
    default: {
        /* ZeroMQ drops the connection on the frame's size: nothing may come of it. */
        int64_t a0 = c->raw_accepted, j0 = c->rejections;
        read_monitor(c, 20);
        if (c->raw_accepted != a0 || c->rejections != j0)
            c->r->unexpected++;
        zmq_close(c->raw[p]);
        c->raw[p] = raw_socket(c);
        break;
    }
    }
}

static void teardown(campaign *c)
{
    for (int i = 0; i < c->o->honest && i < MAX_HONEST; i++)
        at_agent_free(c->honest[i]);
    at_agent_free(c->victim);
    for (int i = 0; i < MAX_HOSTILE; i++)
        if (c->raw[i])
            zmq_close(c->raw[i]);
    if (c->evil)
        zmq_close(c->evil);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    at_feed_free(c->f);
    unlink(c->evil_ep + 6);
    free(c->big);
}

int campaign_run(const campaign_opts *o, campaign_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (o->honest < 1 || o->honest > MAX_HONEST || o->hostile < 1 || o->hostile > MAX_HOSTILE ||
        o->snapshot_every < 1 || o->steps < 0) {
        snprintf(err, errlen, "honest 1..%d, hostile 1..%d, snapshot_every >= 1", MAX_HONEST,
                 MAX_HOSTILE);
        return -1;
    }
    campaign *c = calloc(1, sizeof *c);
    frames *fr = malloc(sizeof *fr);
    if (!c || !fr || !(c->big = calloc(1, OVERSIZE_BYTES))) {
        snprintf(err, errlen, "out of memory");
        free(fr);
        if (c)
            free(c->big);
        free(c);
        return -1;
    }
    c->o = o;
    c->r = r;
    c->rng = o->seed ? o->seed : 1;
    wire_ipc(c->ep, sizeof c->ep, "campaign");
    wire_ipc(c->evil_ep, sizeof c->evil_ep, "campaign-evil");
    at_feed_opts fo;
    at_feed_opts_default(&fo);
    fo.endpoint = c->ep;
    fo.limits.max_header = MAX_HEADER;
    fo.limits.max_payload = 1 << 20;
    c->f = at_feed_new(&fo, err, errlen);
    c->ctx = zmq_ctx_new();
    c->evil = c->ctx ? zmq_socket(c->ctx, ZMQ_ROUTER) : NULL;
    int rc = c->f ? 0 : -1;
    if (rc == 0 && (!c->evil || zmq_bind(c->evil, c->evil_ep) != 0)) {
        snprintf(err, errlen, "cannot bind the hostile listener on %s", c->evil_ep);
        rc = -1;
    }
    at_agent_opts ao;
    at_agent_opts_default(&ao);
    ao.linger_ms = 0;
    for (int i = 0; rc == 0 && i < o->honest; i++) {
        char run[32];
        snprintf(run, sizeof run, "honest-%d", i);
        wire_tally_init(&c->tally[i]);
        if (!(c->honest[i] = at_agent_new(run, c->ep, &ao)))
            rc = -1;
    }
    if (rc == 0 && !(c->victim = at_agent_new("victim", c->evil_ep, &ao)))
        rc = -1;
    for (int i = 0; rc == 0 && i < o->hostile; i++)
        if (!(c->raw[i] = raw_socket(c)))
            rc = -1;
    if (rc != 0) {
        if (c->f && c->evil && !c->victim)
            snprintf(err, errlen, "cannot start the agents: %s", at_agent_last_error(NULL));
        teardown(c);
        free(c);
        free(fr);
        return -1;
    }

    double cpu0 = cpu_s();
    int64_t t0 = now_ms();
    for (int step = 0; step < o->steps; step++) {
        if (step % o->snapshot_every == 0)
            honest_turn(c, step);
        hostile_turn(c, step, fr);
        if (step >= o->steps / 10 && step % 64 == 0) {
            int64_t rss = rss_bytes();
            r->rss_min = r->rss_min && r->rss_min < rss ? r->rss_min : rss;
            r->rss_max = r->rss_max > rss ? r->rss_max : rss;
        }
    }
    /* The victim, given a moment, is still linked to whoever listens (here: the hostile
     * listener, which therefore sees it say hello again after each cut). */
    for (int i = 0; i < 100 && r->sent[CK_V_OVERSIZE] && c->victim_hellos < 2; i++) {
        poke_victim(c, o->steps);
        usleep(20000);
        read_victim(c);
    }
    read_monitor(c, 100);
    r->cpu_s = cpu_s() - cpu0;
    r->wall_s = (double)(now_ms() - t0) * 1e-3;
    r->victim_relinks = c->victim_hellos > 0 ? c->victim_hellos - 1 : 0;
    r->victim_interval = at_agent_interval(c->victim);
    for (int i = 0; i < o->honest; i++) {
        r->honest_received += c->tally[i].snapshots;
        r->honest_bad += c->tally[i].bad;
    }
    teardown(c);
    free(c);
    free(fr);
    return 0;
}

void campaign_print(FILE *out, const campaign_opts *o, const campaign_result *r)
{
    fprintf(out,
            "hostile campaign: seed %llu, %d steps, %d honest + 1 victim agents, %d raw peers\n",
            (unsigned long long)o->seed, o->steps, o->honest, o->hostile);
    fprintf(out, "%-17s %8s %9s %9s\n", "kind", "sent", "accepted", "rejected");
    for (int k = 0; k < CAMPAIGN_KINDS; k++)
        fprintf(out, "%-17s %8lld %9lld %9lld%s\n", kinds[k].name, (long long)r->sent[k],
                (long long)r->accepted[k], (long long)r->rejected[k],
                kinds[k].fate == SILENT   ? "   (connection dropped by ZeroMQ)"
                : kinds[k].fate == VICTIM ? "   (to the victim agent)"
                                          : "");
    fprintf(out,
            "wrong reason %lld, lost %lld, unexpected %lld\n"
            "honest snapshots sent %lld, received whole %lld, bad %lld; honest scalars %lld\n"
            "victim: stopped %d, interval %lld, links remade %d\n"
            "RSS %.1f..%.1f MiB, CPU %.2f s, wall %.2f s (%.0f hostile messages/s)\n",
            (long long)r->wrong_reason, (long long)r->lost, (long long)r->unexpected,
            (long long)r->honest_sent, (long long)r->honest_received, (long long)r->honest_bad,
            (long long)r->honest_scalars, r->victim_stopped, (long long)r->victim_interval,
            r->victim_relinks, (double)r->rss_min / 1048576.0, (double)r->rss_max / 1048576.0,
            r->cpu_s, r->wall_s, r->wall_s > 0 ? o->steps / r->wall_s : 0.0);
}
