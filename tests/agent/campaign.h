/* SPDX-License-Identifier: Apache-2.0 */
/* campaign.h -- a seeded, loopback-only hostile-traffic campaign, for test_campaign (short, in
 * CI) and bench_hostile (a longer soak).
 *
 * One process plays every side over ipc: a monitor (at_feed), honest trainers (at_agent) that
 * publish snapshots and scalars into it, raw hostile DEALER connections that send it malformed,
 * oversized, misdirected and well-formed messages of every kind, and a hostile listener (a raw
 * ROUTER) that a victim agent is connected to and that answers it with garbage, controls for
 * other runs, "victim\u0000junk" and oversized frames. It runs in lock step: after each hostile
 * message the monitor is read until that message's fate is seen, so every message is
 * accounted for -- accepted, rejected for a reason its kind allows, or (oversized) dropped
 * with its connection by ZeroMQ.
 */
#ifndef AT_TEST_CAMPAIGN_H
#define AT_TEST_CAMPAIGN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What the hostile side sends: to the monitor, then (CK_V_*) to the victim agent. */
typedef enum campaign_kind {
    CK_GOOD,         /* well-formed scalars from a raw connection: accepted */
    CK_GARBAGE,      /* random bytes */
    CK_TRUNCATED,    /* a good header cut short */
    CK_VERSION,      /* "v": 2 */
    CK_TYPE,         /* an unknown type */
    CK_MISSING,      /* scalars without a step */
    CK_FIELD_TYPE,   /* a step that is a string */
    CK_VALUE,        /* a negative step */
    CK_STRING,       /* a run id of 200 bytes */
    CK_TOO_MANY,     /* 65 scalars */
    CK_SHAPE,        /* a layer of 65536 x 65536 */
    CK_MISMATCH,     /* a payload shorter than its header says */
    CK_CHECKSUM,     /* a payload that does not match its checksum */
    CK_TEXT,         /* NUL, ESC, C1 or bytes that are not UTF-8 in a string */
    CK_STRICT,       /* a BOM, a leading zero, a duplicate member, "1." */
    CK_BIGINT,       /* a step of 2^53 + 1 */
    CK_DIRECTION,    /* a control message sent to the monitor */
    CK_FRAMES,       /* a layer header without its payload */
    CK_MULTI,        /* good, garbage, good in one ZeroMQ message: 1 accepted, 1 rejected */
    CK_HEADER_SIZE,  /* a header over the limit */
    CK_OVERSIZE,     /* a frame over ZMQ_MAXMSGSIZE: ZeroMQ drops the connection */
    CK_V_GARBAGE,    /* to the victim: random bytes */
    CK_V_STOP_NUL,   /* stop for "victim\u0000junk" */
    CK_V_STOP_ESC,   /* stop for "victim\u001b" */
    CK_V_STOP_OTHER, /* stop for another run */
    CK_V_MULTI,      /* a stop for the victim in two frames */
    CK_V_TRAINER,    /* a trainer's message (scalars) sent to the victim */
    CK_V_BIGINT,     /* interval 2^53 + 1 */
    CK_V_OVERSIZE,   /* 70000 bytes: over the agent's 64 KiB limit, ZeroMQ drops the link */
    CAMPAIGN_KINDS
} campaign_kind;

typedef struct campaign_opts {
    uint64_t seed;
    int steps;          /* hostile messages */
    int honest;         /* honest agents (>= 1) */
    int hostile;        /* raw hostile connections to the monitor (>= 1) */
    int snapshot_every; /* an honest snapshot (and scalars) every this many steps */
    int timeout_ms;     /* longest wait for one message's fate */
} campaign_opts;

typedef struct campaign_result {
    int64_t sent[CAMPAIGN_KINDS];
    int64_t accepted[CAMPAIGN_KINDS]; /* handed out by the feed as messages */
    int64_t rejected[CAMPAIGN_KINDS]; /* rejected for a reason the kind allows */
    int64_t wrong_reason;             /* rejected for another reason */
    int64_t lost;                     /* fate not seen within timeout_ms */
    int64_t unexpected;               /* messages or notices no one sent */
    int64_t honest_sent, honest_received, honest_bad, honest_scalars;
    int victim_stopped, victim_relinks; /* hellos the hostile listener saw after the first */
    int64_t victim_interval;            /* must stay at the default: no valid control was sent */
    int64_t rss_min, rss_max;           /* resident bytes, sampled after the first tenth */
    double cpu_s, wall_s;
} campaign_result;

/* Defaults: seed 1, 600 steps, 2 honest, 3 hostile, a snapshot every 10, 3000 ms. */
void campaign_opts_default(campaign_opts *o);

/* Runs the campaign; returns 0, or -1 with a message in err when it could not be set up. */
int campaign_run(const campaign_opts *o, campaign_result *r, char *err, size_t errlen);

/* Prints the options and the result as a table, one row per kind, then the totals. */
void campaign_print(FILE *out, const campaign_opts *o, const campaign_result *r);

/* The kind's name ("oversize"), and whether it is sent to the victim agent (1) or to the
 * monitor (0). */
const char *campaign_kind_name(campaign_kind k);
int campaign_kind_to_victim(campaign_kind k);

#endif
