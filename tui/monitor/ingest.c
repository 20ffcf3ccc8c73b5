/* SPDX-License-Identifier: Apache-2.0 */
/* ingest.c -- messages in, jobs and events out, no socket and no thread (see ingest.h). */
#include "ingest.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "idmap.h"
#include "pair.h"

/* Positions a snapshot may have: far more layers than any model, and a bound on what a
 * message can make ingest allocate. */
#define MAX_POSITIONS ((int64_t)1 << 20)

/* Why a sharded layer is missing when its slices did not all arrive. */
#define NOT_COVERED "its slices do not cover it (a rank's slice is missing)"

/* What arrived at a position of a snapshot. */
enum { POS_MISSING = 0, POS_ARRIVED = 1, POS_SKIPPED = 2 };

/* One rank's part of a snapshot. */
typedef struct part {
    int64_t rank;
    int64_t received;             /* layer messages from it */
    int ended;                    /* its snapshot_end arrived (or it can no longer arrive) */
    int64_t layers, total, skips; /* what its end said */
} part;

/* A snapshot of a run, from its first message until it closes. */
typedef struct snap {
    int64_t seq;
    int64_t step; /* its column: the step it began at */
    part *parts;
    int nparts;
    unsigned char *pos; /* POS_* per position, room for npos */
    int64_t npos;
    int64_t seen_min; /* the smallest position that arrived; -1 none */
    int64_t seen_end; /* the largest position that arrived, plus 1 */
    int submitted, done;
    int resolved; /* no message can complete it any more */
    int sharded;  /* it has slices, or positions left to other ranks: every rank publishes */
    int complete; /* resolved and nothing is missing */
    char why[200];
    double t_first;
    at_job *kept; /* exact mode: its results, for the trackers when it closes */
    int nkept, capkept;
} snap;

/* Base weights the trainer sent for a layer, as they arrived. */
typedef struct base_layer {
    char name[AT_PROTO_MAX_NAME];
    at_tensor t; /* t.data is data */
    void *data;  /* owned */
} base_layer;

/* One half of a LoRA adapter, waiting for the other half of the same snapshot. */
typedef struct lora_half {
    char pair[AT_PROTO_MAX_NAME + 8]; /* the pair's name (at_pair_lora_name) */
    int is_b;                         /* lora_B (out x r), else lora_A (r x in) */
    int64_t seq, step;
    at_job *job; /* its weights */
} lora_half;

/* The slices of one sharded layer at one step, until they cover it. */
typedef struct slices {
    char name[AT_PROTO_MAX_NAME];
    int64_t seq, step, index;
    at_proto_kind kind;
    at_proto_dtype dtype;
    int base, ndim, bad;
    int64_t full[AT_PROTO_MAX_DIMS];
    unsigned char *buf;
    size_t bytes;
    uint64_t covered, elems;
    int64_t (*blocks)[2 * AT_PROTO_MAX_DIMS]; /* offset, then shape, of each slice */
    int nblocks;
} slices;

typedef struct rank_info {
    int64_t rank, pid;
    int gone; /* it said goodbye */
} rank_info;

typedef struct ing_run {
    char id[AT_PROTO_MAX_ID];
    void *data;   /* the caller's (run_new) */
    snap **snaps; /* in flight, by seq */
    int nsnaps, capsnaps;
    int64_t closed_seq; /* the newest snapshot closed: older messages are stale */
    base_layer *base;
    int nbase;
    lora_half *lora;
    int nlora;
    slices *asmb;
    int nasmb;
    rank_info *ranks; /* every rank heard from */
    int nranks;
    int64_t world;      /* the largest world size a hello named */
    int64_t *pos_layer; /* the model's layer at each position, plus 1 (0: unknown) */
    int64_t npos_layer;
    char *said_skip; /* positions whose skip was announced (a byte each) */
    int64_t nsaid_skip;
    int64_t dropped;    /* snapshots the agent said it dropped */
    int64_t last_total; /* positions of the last snapshot whose end arrived */
    int said_lora;      /* fast mode said it skips adapters */
    int jobs_out;       /* jobs submitted whose result has not come back */
    size_t bytes_out;   /* their bytes of weights */
    double served;      /* hold_jobs: bytes handed to the submit hook, decaying (served_now) */
    double served_t;    /* ... as of this monotonic time */
    at_job **wait;      /* hold_jobs: its jobs not handed out yet, oldest first from whead */
    int nwait, whead, capwait;
    double last_msg;   /* monotonic time of its last message */
    int64_t shed_seq;  /* the newest snapshot not taken (snap_shed); -1 none */
    int gone;          /* its trainer vanished without a goodbye (at_ingest_run_gone) */
    int64_t ended_seq; /* when it ended, in the order runs end (--max-runs evicts oldest) */
    /* Fast mode's sweeps of the newest weights (ingest.h). */
    unsigned char *want, *got; /* per model layer */
    int nflags;
    int have_want;
    int64_t fast_step, fast_floor;
    int fed[AT_SPACE_COUNT]; /* results fed to each tracker since its last close */
} ing_run;

struct at_ingest {
    at_ingest_opts o;
    at_ingest_hooks h;
    at_model *model;
    ing_run **runs; /* by model run index; NULL where the model has a run ingest has not */
    int nruns;
    int held;          /* runs[] entries that are not NULL */
    at_idmap *ids;     /* run id -> index, so a message finds its run in constant time */
    int open;          /* snapshots in flight over every run */
    size_t held_bytes; /* weights of slices and LoRA halves waiting */
    int last_done;     /* results of the last snapshot that closed */
    int64_t ends;      /* runs ended so far (ended_seq) */
    int64_t evicted, refused, refused_said;
    int64_t load, budget; /* bytes waiting for the analysis, and its budget (at_ingest_set_load) */
    int active;           /* runs that spoke lately or hold bytes (over_share), counted ... */
    double active_t;      /* ... at this monotonic time */
    int64_t shed;         /* layers not analysed: their run held more than its share */
    int64_t snaps_shed;   /* snapshots not taken: their run had max_open in flight */
    size_t run_bytes_max; /* the most bytes_out one run had */
    int waiting;          /* hold_jobs: jobs waiting over every run */
    double refused_t;     /* when refusals were last reported */
};

void at_ingest_opts_default(at_ingest_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_runs = AT_INGEST_MAX_RUNS;
    o->max_open = 8;
}

/* ---- runs ------------------------------------------------------------------------------- */

static void snap_free(snap *s)
{
    if (!s)
        return;
    free(s->parts);
    free(s->pos);
    free(s->kept);
    free(s);
}

static void slices_release(slices *a)
{
    free(a->buf);
    free(a->blocks);
}

static void run_free(at_ingest *self, ing_run *r)
{
    if (!r)
        return;
    if (self->h.run_free)
        self->h.run_free(self->h.ctx, r->data);
    self->open -= r->nsnaps;
    for (int i = 0; i < r->nasmb; i++)
        self->held_bytes -= r->asmb[i].bytes;
    for (int i = 0; i < r->nlora; i++)
        self->held_bytes -= r->lora[i].job->bytes;
    for (int i = r->whead; i < r->nwait; i++) {
        self->held_bytes -= r->wait[i]->bytes;
        at_job_free(r->wait[i]);
    }
    self->waiting -= r->nwait - r->whead;
    free(r->wait);
    for (int i = 0; i < r->nsnaps; i++)
        snap_free(r->snaps[i]);
    free(r->snaps);
    for (int i = 0; i < r->nbase; i++)
        free(r->base[i].data);
    free(r->base);
    for (int i = 0; i < r->nlora; i++)
        at_job_free(r->lora[i].job);
    free(r->lora);
    for (int i = 0; i < r->nasmb; i++)
        slices_release(&r->asmb[i]);
    free(r->asmb);
    free(r->ranks);
    free(r->pos_layer);
    free(r->said_skip);
    free(r->want);
    free(r->got);
    free(r);
}

int at_ingest_find_run(const at_ingest *self, const char *id)
{
    return at_idmap_get(self->ids, id);
}

/* The index of the ended run that ended first and has nothing in flight (no snapshot open, no
 * result due), freed for reuse; -1 when every run held is live or busy. */
static int evict_one(at_ingest *self)
{
    int best = -1;
    for (int i = 0; i < self->nruns; i++) {
        const ing_run *r = self->runs[i];
        if (r && (at_model_run(self->model, i)->ended || r->gone) && !r->nsnaps && !r->jobs_out &&
            (best < 0 || r->ended_seq < self->runs[best]->ended_seq))
            best = i;
    }
    if (best < 0)
        return -1;
    at_idmap_del(self->ids, self->runs[best]->id);
    run_free(self, self->runs[best]);
    self->runs[best] = NULL;
    self->held--;
    self->evicted++;
    return best;
}

/* A new run id found every run held live: counted, and said at most once a second. */
static int refuse(at_ingest *self, const char *id)
{
    self->refused++;
    double t = at_clock_mono();
    if (self->refused_said && t - self->refused_t < 1.0)
        return AT_ERR_SIZE;
    at_ingest_event(self, -1, -1, -1, (at_record_event){.kind = AT_RECORD_EV_WARNING},
                    "run %s refused (%lld new runs refused so far): the monitor keeps at most %d "
                    "runs and none of them has ended with nothing in flight (--max-runs)",
                    id, (long long)self->refused, self->o.max_runs);
    self->refused_said = self->refused;
    self->refused_t = t;
    return AT_ERR_SIZE;
}

int at_ingest_run(at_ingest *self, const char *id)
{
    int i = at_idmap_get(self->ids, id);
    if (i >= 0)
        return i;
    if (!id || !*id)
        return AT_ERR_ARG;
    /* The model keeps a shorter id: a long id may name a run the model already has. */
    i = at_model_find_run(self->model, id);
    if (i >= 0 && i < self->nruns && self->runs[i])
        return i;
    if (i < 0 && self->held >= self->o.max_runs) {
        i = evict_one(self);
        if (i < 0)
            return refuse(self, id);
        at_model_reuse_run(self->model, i, id);
    } else if (i < 0) {
        i = at_model_add_run(self->model, id, NULL, NULL);
        if (i < 0)
            return i;
    }
    if (i >= self->nruns) {
        ing_run **nr = realloc(self->runs, (size_t)(i + 1) * sizeof *nr);
        if (!nr)
            return AT_ERR_NOMEM;
        for (int k = self->nruns; k <= i; k++)
            nr[k] = NULL;
        self->runs = nr;
        self->nruns = i + 1;
    }
    ing_run *r = calloc(1, sizeof *r);
    if (!r)
        return AT_ERR_NOMEM;
    snprintf(r->id, sizeof r->id, "%s", id);
    r->closed_seq = -1;
    r->fast_floor = -1;
    r->shed_seq = -1;
    int st = self->h.run_new ? self->h.run_new(self->h.ctx, i, r->id, &r->data) : AT_OK;
    if (st == AT_OK && at_idmap_put(self->ids, r->id, i) != AT_OK) {
        if (self->h.run_free)
            self->h.run_free(self->h.ctx, r->data);
        r->data = NULL;
        st = AT_ERR_NOMEM;
    }
    if (st != AT_OK) {
        run_free(self, r);
        return st < 0 ? st : AT_ERR_ARG;
    }
    self->runs[i] = r;
    self->held++;
    return i;
}

static ing_run *run_at(const at_ingest *self, int run)
{
    return run >= 0 && run < self->nruns ? self->runs[run] : NULL;
}

const char *at_ingest_run_id(const at_ingest *self, int run)
{
    ing_run *r = run_at(self, run);
    return r ? r->id : NULL;
}

void *at_ingest_run_data(const at_ingest *self, int run)
{
    ing_run *r = run_at(self, run);
    return r ? r->data : NULL;
}

void at_ingest_event(at_ingest *self, int run, int layer, int64_t step, at_record_event e,
                     const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    e.text = text;
    at_record rec = {.type = AT_RECORD_EVENT, .run = at_ingest_run_id(self, run), .step = step};
    rec.u.event = e;
    self->h.event(self->h.ctx, run, layer, &rec);
}

/* Grows *p (n elements of size bytes, capacity *cap) to hold index i; 0, or -1 when out of
 * memory. New elements are zeroed. */
static int grow(void **p, int64_t *cap, int64_t i, size_t size)
{
    if (i < *cap)
        return 0;
    int64_t n = *cap ? *cap : 16;
    while (n <= i)
        n *= 2;
    void *q = realloc(*p, (size_t)n * size);
    if (!q)
        return -1;
    memset((char *)q + (size_t)*cap * size, 0, (size_t)(n - *cap) * size);
    *p = q;
    *cap = n;
    return 0;
}

/* The rank's entry, added on first sight; NULL when out of memory. */
static rank_info *rank_of(ing_run *r, int64_t rank)
{
    for (int i = 0; i < r->nranks; i++)
        if (r->ranks[i].rank == rank)
            return &r->ranks[i];
    rank_info *nr = realloc(r->ranks, (size_t)(r->nranks + 1) * sizeof *nr);
    if (!nr)
        return NULL;
    r->ranks = nr;
    r->ranks[r->nranks] = (rank_info){rank, 0, 0};
    return &r->ranks[r->nranks++];
}

/* ---- the trackers ----------------------------------------------------------------------- */

static void close_trackers(at_ingest *self, int run, ing_run *r, int64_t step)
{
    unsigned spaces = 0;
    for (int sp = 0; sp < AT_SPACE_COUNT; sp++) {
        if (r->fed[sp])
            spaces |= 1u << sp;
        r->fed[sp] = 0;
    }
    self->h.close(self->h.ctx, run, step, spaces);
}

static void feed(at_ingest *self, ing_run *r, const at_job *job, int64_t step)
{
    if (job->rc != AT_OK || job->m.status == AT_FIT_SKIPPED)
        return;
    self->h.feed(self->h.ctx, job, step);
    r->fed[job->space]++;
}

/* Fast mode: a sweep of the newest weights is complete once every wanted layer has a result
 * since the last close. */
static void fast_check(at_ingest *self, int run, ing_run *r)
{
    if (!r->have_want)
        return;
    for (int i = 0; i < r->nflags; i++)
        if (r->want[i] && !r->got[i])
            return;
    if (r->fed[AT_SPACE_W] || r->fed[AT_SPACE_DELTA])
        close_trackers(self, run, r, r->fast_step);
    r->fast_floor = r->fast_step;
    if (r->nflags)
        memset(r->got, 0, (size_t)r->nflags);
}

/* Room for model layer flags up to layer. */
static int fast_flags(ing_run *r, int layer)
{
    if (layer < r->nflags)
        return 0;
    int64_t cap = r->nflags, cap2 = r->nflags;
    if (grow((void **)&r->want, &cap, layer, 1) || grow((void **)&r->got, &cap2, layer, 1))
        return -1;
    r->nflags = (int)(cap < cap2 ? cap : cap2);
    return 0;
}

/* ---- snapshots -------------------------------------------------------------------------- */

static part *part_of(snap *s, int64_t rank)
{
    for (int i = 0; i < s->nparts; i++)
        if (s->parts[i].rank == rank)
            return &s->parts[i];
    part *np = realloc(s->parts, (size_t)(s->nparts + 1) * sizeof *np);
    if (!np)
        return NULL;
    s->parts = np;
    s->parts[s->nparts] = (part){.rank = rank};
    return &s->parts[s->nparts++];
}

static snap *snap_find(const ing_run *r, int64_t seq)
{
    for (int i = 0; i < r->nsnaps; i++)
        if (r->snaps[i]->seq == seq)
            return r->snaps[i];
    return NULL;
}

/* Keeps the first reason s is incomplete. */
static void snap_why(snap *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void snap_why(snap *s, const char *fmt, ...)
{
    if (s->why[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
}

/* The name of position i of run, for people. */
static const char *pos_label(at_ingest *self, int run, const ing_run *r, int64_t i, char *buf,
                             size_t n)
{
    const at_layer_info *li = i < r->npos_layer && r->pos_layer[i] > 0
                                  ? at_model_layer(self->model, run, (int)(r->pos_layer[i] - 1))
                                  : NULL;
    if (li)
        snprintf(buf, n, "%s", li->name);
    else
        snprintf(buf, n, "layer %lld", (long long)i);
    return buf;
}

static void slices_drop(at_ingest *self, ing_run *r, int i)
{
    self->held_bytes -= r->asmb[i].bytes;
    slices_release(&r->asmb[i]);
    r->asmb[i] = r->asmb[--r->nasmb];
}

/* Decides whether a resolved snapshot is complete; says so plainly when it is not. */
static void snap_judge(at_ingest *self, int run, ing_run *r, snap *s)
{
    int64_t total = -1, layers = 0, received = 0;
    const part *short_part = NULL; /* a rank whose end counts other layers than arrived */
    for (int i = 0; i < s->nparts; i++) {
        const part *p = &s->parts[i];
        if (p->ended && p->total > total)
            total = p->total;
        layers += p->layers;
        received += p->received;
        if (p->ended && p->received != p->layers && !short_part)
            short_part = p;
    }
    for (int i = r->nasmb - 1; i >= 0; i--) {
        const slices *a = &r->asmb[i];
        if (a->seq != s->seq)
            continue;
        snap_why(s, "%s: %s", a->name, a->bad ? "its slices overlap" : NOT_COVERED);
        slices_drop(self, r, i);
    }
    /* No end arrived: the run's last snapshot tells how many layers there are, if any did. */
    const int known = total >= 0 || r->last_total > 0;
    if (total < 0)
        total = s->seen_end > r->last_total ? s->seen_end : r->last_total;
    if (total > MAX_POSITIONS)
        total = MAX_POSITIONS;
    int64_t missing = 0;
    char names[160] = "", name[128];
    for (int64_t i = 0; i < total; i++) {
        if (i < s->npos && s->pos[i] != POS_MISSING)
            continue;
        if (missing < 3) {
            size_t n = strlen(names);
            snprintf(names + n, sizeof names - n, "%s%s", missing ? ", " : "",
                     pos_label(self, run, r, i, name, sizeof name));
        } else if (missing == 3) {
            size_t n = strlen(names);
            snprintf(names + n, sizeof names - n, ", ...");
        }
        missing++;
    }
    if (!missing && !s->why[0] && !short_part) {
        s->complete = 1;
        return;
    }
    if (missing && s->seen_min > 0)
        snap_why(s, "the monitor started after the trainer had sent its first layers");
    if (short_part && (s->nparts > 1 || short_part->rank))
        snap_why(s, "rank %lld's end counts %lld layers but %lld arrived",
                 (long long)short_part->rank, (long long)short_part->layers,
                 (long long)short_part->received);
    else if (short_part)
        snap_why(s, "the trainer's end counts %lld layers but %lld arrived",
                 (long long)short_part->layers, (long long)short_part->received);
    snap_why(s, "the trainer's end counts %lld layers of %lld; the rest never arrived",
             (long long)layers, (long long)total);
    at_run_info *ri = at_model_run(self->model, run);
    ri->dropped++;
    char count[240] = "";
    if (missing)
        snprintf(count, sizeof count, "%lld of %lld layers missing (%s): ", (long long)missing,
                 (long long)total, names);
    else if (!known)
        snprintf(count, sizeof count,
                 "%lld layers arrived, how many it has is unknown: ", (long long)received);
    at_ingest_event(self, run, -1, s->step,
                    (at_record_event){.kind = AT_RECORD_EV_DROP, .dropped = -1},
                    "snapshot %lld (step %lld) is incomplete and is not judged as a whole: %s%s",
                    (long long)s->seq, (long long)s->step, count, s->why);
}

/* Marks s resolved when every rank heard from has ended its part, and judges it. */
/* The i-th rank s waits for (i < count): every rank of the run's world when s is sharded
 * (slices, or positions left to other ranks: they all publish), else every rank heard from. */
static int64_t snap_rank(const ing_run *r, const snap *s, int i, int *count)
{
    const int all = s->sharded && r->world > 1;
    *count = all ? (int)r->world : r->nranks;
    return all ? i : r->ranks[i].rank;
}

/* Marks s resolved when every rank it waits for has ended its part, and judges it. */
static void snap_settle(at_ingest *self, int run, ing_run *r, snap *s)
{
    if (s->resolved)
        return;
    int count = 0;
    for (int i = 0; i == 0 || i < count; i++) {
        const int64_t rank = snap_rank(r, s, i, &count);
        const part *p = NULL;
        for (int k = 0; k < s->nparts && i < count; k++)
            if (s->parts[k].rank == rank)
                p = &s->parts[k];
        if (i < count && (!p || !p->ended))
            return;
    }
    s->resolved = 1;
    snap_judge(self, run, r, s);
}

/* Ends every part of s (rank < 0), or rank's, that has not ended, for reason: nothing more can
 * arrive for it. */
static void snap_abandon(at_ingest *self, int run, ing_run *r, snap *s, int64_t rank,
                         const char *reason)
{
    if (s->resolved)
        return;
    int count = 0;
    for (int i = 0; i == 0 || i < count; i++) {
        const int64_t k = snap_rank(r, s, i, &count);
        if (i < count && (rank < 0 || k == rank))
            part_of(s, k);
    }
    for (int i = 0; i < s->nparts; i++)
        if (!s->parts[i].ended && (rank < 0 || s->parts[i].rank == rank)) {
            snap_why(s, "%s", reason);
            s->parts[i].ended = 1;
            s->parts[i].layers = s->parts[i].received;
            s->parts[i].total = -1;
        }
    snap_settle(self, run, r, s);
}

/* Closes the run's snapshots that can close, oldest first (see ingest.h). */
static void close_ready(at_ingest *self, int run, ing_run *r)
{
    while (r->nsnaps > 0) {
        snap *s = r->snaps[0];
        if (!s->resolved || (s->complete && !self->o.fast && s->done < s->submitted))
            break;
        if (s->complete && !self->o.fast && s->submitted > 0) {
            for (int i = 0; i < s->nkept; i++)
                feed(self, r, &s->kept[i], s->step);
            close_trackers(self, run, r, s->step);
        }
        if (s->complete && self->o.fast) {
            /* Its layers make the sweep fast mode waits for. */
            if (r->nflags) /* none yet: want is NULL */
                memset(r->want, 0, (size_t)r->nflags);
            for (int64_t i = 0; i < s->npos && i < r->npos_layer; i++) {
                int64_t l = r->pos_layer[i] - 1;
                if (s->pos[i] == POS_ARRIVED && l >= 0 && !fast_flags(r, (int)l))
                    r->want[l] = 1;
            }
            r->have_want = 1;
            fast_check(self, run, r);
        }
        for (int i = r->nlora - 1; i >= 0; i--)
            if (r->lora[i].seq == s->seq) {
                self->held_bytes -= r->lora[i].job->bytes;
                at_job_free(r->lora[i].job);
                r->lora[i] = r->lora[--r->nlora];
            }
        self->last_done = s->done;
        if (s->seq > r->closed_seq)
            r->closed_seq = s->seq;
        memmove(r->snaps, r->snaps + 1, (size_t)(r->nsnaps - 1) * sizeof *r->snaps);
        r->nsnaps--;
        self->open--;
        snap_free(s);
    }
}

/* A run that sent a message this recently is taken to wait for its turn (over_share). */
#define ACTIVE_S 10.0

/* Runs active: that spoke in the last ACTIVE_S seconds or hold bytes; counted at most ten
 * times a second. */
static int count_active(at_ingest *self)
{
    double now = at_clock_mono();
    if (now - self->active_t > 0.1) {
        self->active = 0;
        for (int i = 0; i < self->nruns; i++) {
            const ing_run *o = self->runs[i];
            self->active += o && (o->bytes_out || now - o->last_msg < ACTIVE_S);
        }
        self->active_t = now;
    }
    return self->active;
}

int at_ingest_open_cap(at_ingest *self)
{
    int active = count_active(self);
    return self->o.max_open * (active > 1 ? active : 1);
}

/* A new snapshot of a run that has max_open in flight while another run is active is not
 * taken (ingest.h, Fairness): said once, counted; its later messages are ignored. */
static int snap_shed(at_ingest *self, int run, ing_run *r, int64_t seq, int64_t step)
{
    if (seq <= r->shed_seq)
        return 1;
    if (r->nsnaps < self->o.max_open || count_active(self) < 2)
        return 0;
    r->shed_seq = seq;
    self->snaps_shed++;
    at_model_run(self->model, run)->dropped++;
    at_ingest_event(self, run, -1, step,
                    (at_record_event){.kind = AT_RECORD_EV_DROP, .dropped = -1},
                    "snapshot %lld (step %lld) is not analysed: %d snapshots of this run are still "
                    "being analysed while other runs wait (its share of the snapshots in flight)",
                    (long long)seq, (long long)step, r->nsnaps);
    return 1;
}

/* The snapshot seq of run, opened (and its column added) on its first message, at step; NULL
 * when the message is stale (an older snapshot already closed) or out of memory. A newer
 * snapshot from rank means rank is done with every older one. */
static snap *snap_get(at_ingest *self, int run, ing_run *r, int64_t seq, int64_t rank, int64_t step)
{
    if (seq <= r->closed_seq || !rank_of(r, rank))
        return NULL;
    snap *s = snap_find(r, seq);
    if (!s && snap_shed(self, run, r, seq, step))
        return NULL;
    if (!s) {
        if (r->nsnaps == r->capsnaps) {
            int cap = r->capsnaps ? 2 * r->capsnaps : 4;
            snap **ns = realloc(r->snaps, (size_t)cap * sizeof *ns);
            if (!ns)
                return NULL;
            r->snaps = ns;
            r->capsnaps = cap;
        }
        if (!(s = calloc(1, sizeof *s)))
            return NULL;
        s->seq = seq;
        s->step = step;
        s->seen_min = -1;
        s->t_first = at_clock_mono();
        int at = r->nsnaps;
        while (at > 0 && r->snaps[at - 1]->seq > seq)
            at--;
        memmove(r->snaps + at + 1, r->snaps + at, (size_t)(r->nsnaps - at) * sizeof *r->snaps);
        r->snaps[at] = s;
        r->nsnaps++;
        self->open++;
        at_model_add_snapshot(self->model, run, step, at_clock_wall());
    }
    for (int i = 0; i < r->nsnaps; i++) {
        snap *o = r->snaps[i];
        part *p = o->seq < seq ? part_of(o, rank) : NULL;
        if (p && !p->ended && !o->resolved) {
            char reason[96];
            if (r->nranks > 1)
                snprintf(reason, sizeof reason, "rank %lld began snapshot %lld before its end",
                         (long long)rank, (long long)seq);
            else
                snprintf(reason, sizeof reason, "snapshot %lld began before its end arrived",
                         (long long)seq);
            snap_why(o, "%s", reason);
            p->ended = 1;
            p->layers = p->received;
            p->total = -1;
            snap_settle(self, run, r, o);
        }
    }
    return s;
}

/* Position index of the run is, for the model, layer (-1: none known). */
static void pos_name(ing_run *r, int64_t index, int layer)
{
    if (layer >= 0 && !grow((void **)&r->pos_layer, &r->npos_layer, index, sizeof *r->pos_layer))
        r->pos_layer[index] = layer + 1; /* 0: unknown */
}

/* Position index of s arrived (or was skipped) and is, for the model, its layer (-1: none). */
static int pos_mark(ing_run *r, snap *s, int64_t index, int state, int layer)
{
    if (index < 0 || index >= MAX_POSITIONS || grow((void **)&s->pos, &s->npos, index, 1))
        return -1;
    if (s->pos[index] != POS_MISSING)
        snap_why(s, "layer %lld arrived twice", (long long)index);
    s->pos[index] = (unsigned char)state;
    if (s->seen_min < 0 || index < s->seen_min)
        s->seen_min = index;
    if (index >= s->seen_end)
        s->seen_end = index + 1;
    pos_name(r, index, layer);
    return 0;
}

void at_ingest_result(at_ingest *self, const at_job *job)
{
    int run = job->run;
    ing_run *r = run_at(self, run);
    if (!r)
        return;
    r->jobs_out--;
    r->bytes_out -= job->bytes < r->bytes_out ? job->bytes : r->bytes_out;
    snap *s = snap_find(r, job->seq);
    if (s)
        s->done++;
    if (self->o.fast) {
        int64_t step = job->step > r->fast_floor ? job->step : r->fast_floor;
        feed(self, r, job, step);
        if (job->space == AT_SPACE_W && !fast_flags(r, job->layer)) {
            r->got[job->layer] = 1;
            if (step > r->fast_step)
                r->fast_step = step;
            fast_check(self, run, r);
        }
    } else if (s && s->nkept < s->submitted) {
        if (s->nkept == s->capkept) {
            int cap = s->capkept ? 2 * s->capkept : 16;
            at_job *k = realloc(s->kept, (size_t)cap * sizeof *k);
            if (k) {
                s->kept = k;
                s->capkept = cap;
            }
        }
        if (s->nkept < s->capkept) {
            at_job *k = &s->kept[s->nkept++];
            *k = *job; /* only the metrics are read again: no pointer is kept */
            k->data = k->data2 = NULL;
            k->t.data = k->lora_a.data = k->base.data = NULL;
            k->evals = NULL;
            k->held = NULL;
        }
    }
    close_ready(self, run, r);
}

int at_ingest_open_snapshots(const at_ingest *self)
{
    return self->open;
}

size_t at_ingest_held_bytes(const at_ingest *self)
{
    return self->held_bytes;
}

void at_ingest_set_load(at_ingest *self, int64_t load, int64_t budget)
{
    self->load = load;
    self->budget = budget;
}

void at_ingest_stats_get(const at_ingest *self, at_ingest_stats *s)
{
    s->runs = self->held;
    s->layers_shed = self->shed;
    s->snapshots_shed = self->snaps_shed;
    s->run_bytes_max = self->run_bytes_max;
    s->waiting = self->waiting;
    s->runs_evicted = self->evicted;
    s->runs_refused = self->refused;
    s->table_bytes = at_idmap_bytes(self->ids) + (size_t)self->nruns * sizeof *self->runs +
                     (size_t)self->held * sizeof(ing_run);
}

void at_ingest_progress(const at_ingest *self, double now, int *layers_done, double *oldest_age)
{
    int done = 0, inflight = 0;
    double oldest = 0;
    for (int i = 0; i < self->nruns; i++)
        for (int k = 0; self->runs[i] && k < self->runs[i]->nsnaps; k++) {
            const snap *s = self->runs[i]->snaps[k];
            double age = now - s->t_first;
            oldest = age > oldest ? age : oldest;
            done += s->done;
            inflight = 1;
        }
    *layers_done = inflight ? done : self->last_done;
    *oldest_age = oldest;
}

/* ---- layers ----------------------------------------------------------------------------- */

static void note_dropped(at_ingest *self, int run, ing_run *r, int64_t dropped, int64_t step)
{
    if (dropped <= r->dropped)
        return;
    int64_t n = dropped - r->dropped;
    r->dropped = dropped;
    at_model_run(self->model, run)->dropped += n;
    at_ingest_event(self, run, -1, step, (at_record_event){.kind = AT_RECORD_EV_DROP, .dropped = n},
                    "the trainer did not take %lld snapshot%s: the one before was still being sent "
                    "(the monitor busy or absent, or the model larger than the trainer's byte "
                    "budget), or its layer list changed",
                    (long long)n, n == 1 ? "" : "s");
}

/* The base weights of layer name (sent by the trainer, else from the checkpoint) into *t; 0 if
 * none. Shapes are checked by the analysis (a transposed base is accepted there). */
static int base_for(at_ingest *self, ing_run *r, const char *name, at_tensor *t)
{
    for (int i = r->nbase - 1; i >= 0; i--)
        if (!strcmp(r->base[i].name, name)) {
            *t = r->base[i].t;
            return 1;
        }
    const at_ckpt_layer *l = self->o.base ? at_ckpt_find(self->o.base, name) : NULL;
    if (!l || l->err != AT_OK)
        return 0;
    *t = l->tensor;
    return 1;
}

/* The layer's shape as core wants it: conv1d (out, in, k) becomes (out, in, 1, k). Returns
 * ndim (2 or 4), or 0 for a kind core does not analyse as a layer. */
static int core_shape(at_proto_kind pk, int pndim, const int64_t *pshape, at_layer_kind *kind,
                      int64_t shape[4])
{
    switch (pk) {
    case AT_PROTO_KIND_LINEAR:
    case AT_PROTO_KIND_EMBEDDING:
        *kind = (at_layer_kind)pk;
        memcpy(shape, pshape, 2 * sizeof *shape);
        return 2;
    case AT_PROTO_KIND_CONV2D:
        *kind = AT_KIND_CONV2D;
        memcpy(shape, pshape, 4 * sizeof *shape);
        return 4;
    case AT_PROTO_KIND_CONV1D:
        if (pndim == 2) {
            *kind = AT_KIND_CONV1D;
            memcpy(shape, pshape, 2 * sizeof *shape);
            return 2;
        }
        *kind = AT_KIND_CONV2D;
        shape[0] = pshape[0];
        shape[1] = pshape[1];
        shape[2] = 1;
        shape[3] = pshape[2];
        return 4;
    default:
        return 0;
    }
}

/* A whole layer for the analysis: its name, kind and shape (the wire's), and its weights. */
typedef struct whole {
    const char *name;
    int64_t seq, step, index;
    at_proto_kind kind;
    at_proto_dtype dtype;
    int base, ndim;
    const int64_t *shape;
    const void *data;
} whole;

static void store_base(at_ingest *self, int run, ing_run *r, const whole *w, int ndim,
                       const int64_t *shape, at_layer_kind kind)
{
    at_job *tmp = at_job_new(w->data, (at_dtype)w->dtype, kind, ndim, shape);
    base_layer *nb = tmp ? realloc(r->base, (size_t)(r->nbase + 1) * sizeof *nb) : NULL;
    if (!nb) {
        at_job_free(tmp);
        at_ingest_event(self, run, -1, -1,
                        (at_record_event){.kind = AT_RECORD_EV_ERROR, .layer = w->name},
                        "%s: out of memory for the base weights", w->name);
        return;
    }
    r->base = nb;
    base_layer *b = &r->base[r->nbase++];
    snprintf(b->name, sizeof b->name, "%s", w->name);
    b->t = tmp->t; /* the job's copy becomes the base */
    b->data = tmp->data;
    tmp->data = NULL;
    at_job_free(tmp);
    at_ingest_event(
        self, run, -1, -1, (at_record_event){.kind = AT_RECORD_EV_INFO, .layer = w->name},
        "%s: base weights received; later snapshots are analysed as W and W - W_base", w->name);
}

/* hold_jobs: job waits in r's queue for at_ingest_pump. */
static int wait_push(at_ingest *self, ing_run *r, at_job *job)
{
    if (r->nwait == r->capwait) {
        if (r->whead > 0) { /* room at the front: move the waiting jobs there */
            memmove(r->wait, r->wait + r->whead, (size_t)(r->nwait - r->whead) * sizeof *r->wait);
            r->nwait -= r->whead;
            r->whead = 0;
        } else {
            int cap = r->capwait ? 2 * r->capwait : 16;
            at_job **nw = realloc(r->wait, (size_t)cap * sizeof *nw);
            if (!nw)
                return AT_ERR_NOMEM;
            r->wait = nw;
            r->capwait = cap;
        }
    }
    r->wait[r->nwait++] = job;
    self->waiting++;
    self->held_bytes += job->bytes;
    return AT_OK;
}

static void submit(at_ingest *self, int run, snap *s, int layer, at_space space, at_job *job,
                   const whole *w)
{
    job->run = run;
    job->layer = layer;
    job->space = space;
    job->seq = w->seq;
    job->step = s->step;
    job->weights_step = w->step;
    job->submit_time = at_clock_mono();
    ing_run *r = self->runs[run];
    const size_t bytes = job->bytes;
    int rc = self->o.hold_jobs ? wait_push(self, r, job) : self->h.submit(self->h.ctx, job);
    if (rc != AT_OK) {
        at_job_free(job);
        at_ingest_event(self, run, layer, w->step, (at_record_event){.kind = AT_RECORD_EV_ERROR},
                        "out of memory queueing a layer");
        return;
    }
    s->submitted++;
    r->jobs_out++;
    r->bytes_out += bytes;
    if (r->bytes_out > self->run_bytes_max)
        self->run_bytes_max = r->bytes_out;
}

/* How long the bytes a run was served count against it (at_ingest_pump): they weigh e^-1 as
 * much after FAIR_TAU seconds, so a run of huge layers yields to the others for about a minute
 * after each, while a run that has waited long is served as soon as nobody else waits. */
#define FAIR_TAU 10.0

static double served_now(const ing_run *r, double now)
{
    return r->served * exp(-(now - r->served_t) / FAIR_TAU);
}

int at_ingest_pump(at_ingest *self, int slots)
{
    int n = 0;
    const double now = at_clock_mono();
    while (n < slots && self->waiting > 0) {
        int run = -1;
        double least = 0;
        for (int i = 0; i < self->nruns; i++) {
            const ing_run *o = self->runs[i];
            double v = o && o->nwait > o->whead ? served_now(o, now) : -1;
            if (v >= 0 && (run < 0 || v < least)) {
                run = i;
                least = v;
            }
        }
        ing_run *r = self->runs[run];
        at_job *job = r->wait[r->whead++];
        self->waiting--;
        self->held_bytes -= job->bytes;
        if (r->whead == r->nwait)
            r->whead = r->nwait = 0;
        if (self->h.submit(self->h.ctx, job) == AT_OK) {
            r->served = least + (double)job->bytes;
            r->served_t = now;
            n++;
            continue;
        }
        /* Its result will never come: as if it had not been queued. */
        snap *s = snap_find(r, job->seq);
        if (s)
            s->submitted--;
        r->jobs_out--;
        r->bytes_out -= job->bytes < r->bytes_out ? job->bytes : r->bytes_out;
        at_ingest_event(self, run, job->layer, job->weights_step,
                        (at_record_event){.kind = AT_RECORD_EV_ERROR},
                        "out of memory queueing a layer");
        at_job_free(job);
        close_ready(self, run, r);
    }
    return n;
}

/* One half of a LoRA adapter: kept until the other half of the same snapshot arrives, then
 * the pair is analysed as the update B A (delta view) from its r singular values. */
static void on_lora_half(at_ingest *self, int run, ing_run *r, snap *s, const whole *w)
{
    if (self->o.fast) {
        if (!r->said_lora++)
            at_ingest_event(self, run, -1, w->step,
                            (at_record_event){.kind = AT_RECORD_EV_INFO, .layer = w->name},
                            "%s: LoRA adapters are analysed in exact mode only", w->name);
        pos_mark(r, s, w->index, POS_ARRIVED, -1);
        return;
    }
    int is_b = w->kind == AT_PROTO_KIND_LORA_B;
    lora_half h = {.is_b = is_b, .seq = w->seq, .step = w->step}, other = {0};
    at_pair_lora_name(w->name, h.pair, sizeof h.pair, NULL);
    h.job = at_job_new(w->data, (at_dtype)w->dtype, AT_KIND_LINEAR, 2, w->shape);
    if (!h.job || pos_mark(r, s, w->index, POS_ARRIVED, -1) != 0) {
        at_job_free(h.job);
        return;
    }
    for (int i = 0; i < r->nlora; i++)
        if (!strcmp(r->lora[i].pair, h.pair)) {
            other = r->lora[i];
            r->lora[i] = r->lora[--r->nlora];
            self->held_bytes -= other.job->bytes;
            break;
        }
    if (!other.job || other.seq != w->seq || other.is_b == is_b) {
        at_job_free(other.job); /* a stale half of an older snapshot */
        lora_half *nl = realloc(r->lora, (size_t)(r->nlora + 1) * sizeof *nl);
        if (!nl) {
            at_job_free(h.job);
            return;
        }
        r->lora = nl;
        r->lora[r->nlora++] = h;
        self->held_bytes += h.job->bytes;
        return;
    }
    at_job *b = is_b ? h.job : other.job, *a = is_b ? other.job : h.job;
    b->lora_a = a->t;
    b->data2 = a->data;
    b->bytes += a->bytes;
    a->data = NULL;
    at_job_free(a);
    int64_t shape[2] = {b->t.shape[0], b->lora_a.shape[1]};
    int layer = at_model_add_layer(self->model, run, h.pair, AT_KIND_LINEAR, 2, shape);
    if (layer < 0) {
        at_job_free(b);
        return;
    }
    submit(self, run, s, layer, AT_SPACE_DELTA, b, w);
}

/* A whole layer of snapshot s, arrived or assembled. */
static void on_whole(at_ingest *self, int run, ing_run *r, snap *s, const whole *w)
{
    if (w->kind == AT_PROTO_KIND_LORA_A || w->kind == AT_PROTO_KIND_LORA_B) {
        if (w->base)
            pos_mark(r, s, w->index, POS_ARRIVED, -1);
        else
            on_lora_half(self, run, r, s, w);
        return;
    }
    at_layer_kind kind;
    int64_t shape[4];
    int ndim = core_shape(w->kind, w->ndim, w->shape, &kind, shape);
    if (!ndim)
        return;
    if (w->base) {
        pos_mark(r, s, w->index, POS_ARRIVED, -1);
        store_base(self, run, r, w, ndim, shape, kind);
        return;
    }
    int layer = at_model_add_layer(self->model, run, w->name, kind, ndim, shape);
    if (layer < 0 || pos_mark(r, s, w->index, POS_ARRIVED, layer) != 0) {
        at_ingest_event(self, run, -1, w->step,
                        (at_record_event){.kind = AT_RECORD_EV_ERROR, .layer = w->name},
                        "%s: cannot keep layer %lld of a snapshot", w->name, (long long)w->index);
        return;
    }
    /* The data is little-endian: the feed swapped a big-endian payload. */
    at_job *job = at_job_new(w->data, (at_dtype)w->dtype, kind, ndim, shape);
    if (!job) {
        at_ingest_event(self, run, layer, w->step,
                        (at_record_event){.kind = AT_RECORD_EV_ERROR, .layer = w->name},
                        "%s: out of memory for a snapshot", w->name);
        return;
    }
    at_tensor base;
    at_job *delta = NULL;
    if (base_for(self, r, w->name, &base)) {
        delta = at_job_new(w->data, (at_dtype)w->dtype, kind, ndim, shape);
        if (delta)
            delta->base = base;
    }
    submit(self, run, s, layer, AT_SPACE_W, job, w);
    if (delta)
        submit(self, run, s, layer, AT_SPACE_DELTA, delta, w);
}

/* Copies a slice (l) into its place in the row-major whole (a). */
static void slice_copy(slices *a, const at_proto_layer *l)
{
    const size_t es = at_proto_dtype_size(a->dtype);
    const int nd = a->ndim;
    const size_t run = (size_t)l->shape[nd - 1] * es;
    int64_t idx[AT_PROTO_MAX_DIMS] = {0}; /* index into the slice, all but the last dim */
    const unsigned char *src = l->data;
    for (;;) {
        size_t off = 0;
        for (int d = 0; d < nd; d++)
            off = off * (size_t)a->full[d] + (size_t)(l->offset[d] + (d < nd - 1 ? idx[d] : 0));
        memcpy(a->buf + off * es, src, run);
        src += run;
        int d = nd - 2;
        while (d >= 0 && ++idx[d] == l->shape[d])
            idx[d--] = 0;
        if (d < 0)
            break;
    }
}

/* A slice of a sharded layer: kept until every slice of it at this step is in. */
static void on_slice(at_ingest *self, int run, ing_run *r, snap *s, const at_proto_layer *l)
{
    slices *a = NULL;
    for (int i = 0; i < r->nasmb && !a; i++)
        if (!strcmp(r->asmb[i].name, l->name))
            a = &r->asmb[i];
    if (a && (a->step != l->step || a->seq != l->seq)) {
        snap *o = snap_find(r, a->seq);
        if (o && a->seq != l->seq)
            snap_why(o, "%s: %s", a->name, NOT_COVERED);
        else if (o)
            snap_why(o, "%s: its slices came from different steps (%lld and %lld)", a->name,
                     (long long)a->step, (long long)l->step);
        slices_drop(self, r, (int)(a - r->asmb));
        a = NULL;
    }
    if (!a) {
        slices *na = realloc(r->asmb, (size_t)(r->nasmb + 1) * sizeof *na);
        if (!na)
            return;
        r->asmb = na;
        a = &r->asmb[r->nasmb];
        memset(a, 0, sizeof *a);
        snprintf(a->name, sizeof a->name, "%s", l->name);
        a->seq = l->seq;
        a->step = l->step;
        a->index = l->index;
        a->kind = l->kind;
        a->dtype = l->dtype;
        a->base = l->base;
        a->ndim = l->ndim;
        a->elems = 1;
        for (int d = 0; d < l->ndim; d++)
            a->elems *= (uint64_t)(a->full[d] = l->full_shape[d]);
        a->bytes = (size_t)a->elems * at_proto_dtype_size(a->dtype);
        if (!(a->buf = malloc(a->bytes)))
            return;
        r->nasmb++;
        self->held_bytes += a->bytes;
        /* The view shows its row, and a missing slice's report names it, from the first one. */
        at_layer_kind kind;
        int64_t shape[4];
        int ndim = a->base ? 0 : core_shape(a->kind, a->ndim, a->full, &kind, shape);
        if (ndim)
            pos_name(r, a->index, at_model_add_layer(self->model, run, a->name, kind, ndim, shape));
    }
    int fits = a->kind == l->kind && a->dtype == l->dtype && a->index == l->index &&
               a->ndim == l->ndim && !memcmp(a->full, l->full_shape, sizeof a->full);
    for (int b = 0; fits && b < a->nblocks; b++) {
        int overlap = 1;
        for (int d = 0; d < a->ndim; d++)
            overlap &= l->offset[d] < a->blocks[b][d] + a->blocks[b][AT_PROTO_MAX_DIMS + d] &&
                       a->blocks[b][d] < l->offset[d] + l->shape[d];
        a->bad |= overlap;
    }
    if (!fits)
        a->bad = 1;
    int64_t(*nb)[2 * AT_PROTO_MAX_DIMS] =
        a->bad ? NULL : realloc(a->blocks, (size_t)(a->nblocks + 1) * sizeof *nb);
    if (!nb) {
        snap_why(s, "%s: %s", a->name,
                 fits ? "its slices overlap" : "its slices disagree on its kind, dtype or shape");
        return;
    }
    a->blocks = nb;
    memcpy(nb[a->nblocks], l->offset, sizeof l->offset);
    memcpy(nb[a->nblocks] + AT_PROTO_MAX_DIMS, l->shape, sizeof l->shape);
    a->nblocks++;
    slice_copy(a, l);
    uint64_t n = 1;
    for (int d = 0; d < l->ndim; d++)
        n *= (uint64_t)l->shape[d];
    a->covered += n;
    if (a->covered < a->elems)
        return;
    whole w = {a->name,  a->seq,  a->step, a->index, a->kind,
               a->dtype, a->base, a->ndim, a->full,  a->buf};
    on_whole(self, run, r, s, &w);
    slices_drop(self, r, (int)(a - r->asmb));
}

/* Past half the budget, a run holding its share of it or more (half the budget over the runs
 * active: that spoke in the last ACTIVE_S seconds or hold bytes) is not given more while
 * another run is active (ingest.h). A run alone is never refused: it waits as before. */
static int over_share(at_ingest *self, const ing_run *r)
{
    if (!r->bytes_out || self->budget <= 0 || 2 * self->load < self->budget)
        return 0;
    int active = count_active(self);
    return active >= 2 && 2 * (int64_t)r->bytes_out * active >= self->budget;
}

static void on_layer(at_ingest *self, int run, ing_run *r, const at_proto_layer *l)
{
    snap *s = snap_get(self, run, r, l->seq, l->rank, l->first_step);
    part *p = s ? part_of(s, l->rank) : NULL;
    if (!p)
        return;
    p->received++;
    at_proto_layer pl = *l;
    if (pl.index < 0) /* version 1 may leave it out: layers come in order */
        pl.index = p->received - 1;
    if (!pl.base && over_share(self, r)) {
        /* Its row, so the report names it. */
        at_layer_kind kind;
        int64_t shape[4];
        int ndim = core_shape(pl.kind, pl.ndim, pl.sliced ? pl.full_shape : pl.shape, &kind, shape);
        if (ndim)
            pos_name(r, pl.index, at_model_add_layer(self->model, run, pl.name, kind, ndim, shape));
        self->shed++;
        snap_why(s,
                 "%s was not analysed: the run held %zu bytes waiting for the analysis, its share "
                 "or more while other runs' layers waited (queue %lld of %lld bytes)",
                 pl.name, r->bytes_out, (long long)self->load, (long long)self->budget);
    } else if (pl.sliced) {
        s->sharded = 1;
        on_slice(self, run, r, s, &pl);
    } else {
        whole w = {pl.name,  pl.seq,  pl.step, pl.index, pl.kind,
                   pl.dtype, pl.base, pl.ndim, pl.shape, pl.data};
        on_whole(self, run, r, s, &w);
    }
    close_ready(self, run, r);
}

static void on_skip(at_ingest *self, int run, ing_run *r, const at_proto_skip *k)
{
    snap *s = snap_get(self, run, r, k->seq, k->rank, k->step);
    if (!s || pos_mark(r, s, k->index, POS_SKIPPED, -1) != 0)
        return;
    if (!grow((void **)&r->said_skip, &r->nsaid_skip, k->index, 1) && !r->said_skip[k->index]) {
        r->said_skip[k->index] = 1;
        at_ingest_event(self, run, -1, k->step,
                        (at_record_event){.kind = AT_RECORD_EV_INFO, .layer = k->name},
                        "%s is left out of every snapshot by the trainer (%llu bytes): %s", k->name,
                        (unsigned long long)k->nbytes, k->reason);
    }
}

static void on_snapshot_end(at_ingest *self, int run, ing_run *r, const at_proto_snapshot_end *e)
{
    note_dropped(self, run, r, e->dropped, e->step);
    snap *s = snap_get(self, run, r, e->seq, e->rank, e->first_step);
    part *p = s ? part_of(s, e->rank) : NULL;
    if (!p)
        return;
    p->ended = 1;
    p->layers = e->layers;
    p->total = e->total;
    p->skips = e->skipped;
    r->last_total = e->total;
    s->sharded |= e->total > e->layers + e->skipped; /* positions left to other ranks */
    snap_settle(self, run, r, s);
    close_ready(self, run, r);
}

/* ---- messages --------------------------------------------------------------------------- */

/* What rank (< 0: every rank) still owed of the run's open snapshots will not come, for
 * reason. */
static void abandon_all(at_ingest *self, int run, ing_run *r, int64_t rank, const char *reason)
{
    for (int i = 0; i < r->nsnaps; i++)
        snap_abandon(self, run, r, r->snaps[i], rank, reason);
    close_ready(self, run, r);
}

static void on_hello(at_ingest *self, int run, ing_run *r, const at_proto_hello *h)
{
    at_run_info *ri = at_model_run(self->model, run);
    /* The model's fields are shorter than the wire's: long names are cut. */
    snprintf(ri->name, sizeof ri->name, "%.*s", (int)sizeof ri->name - 1, h->model);
    snprintf(ri->host, sizeof ri->host, "%.*s", (int)sizeof ri->host - 1, h->host);
    ri->interval = h->interval;
    ri->ended = 0;
    at_model_touch(self->model);
    note_dropped(self, run, r, h->dropped, -1);
    if (h->world_size > r->world)
        r->world = h->world_size;
    rank_info *ra = rank_of(r, h->rank);
    /* The agent repeats its hello after reconnecting: announce a run, a rank or a restart once. */
    if (!ra || (ra->pid == h->pid && h->pid))
        return;
    if (ra->pid) {
        /* A new process of the same run: it numbers its snapshots from 0 again. */
        abandon_all(self, run, r, -1, "the trainer restarted (a new process) before its end");
        r->closed_seq = -1;
        r->dropped = 0;
    }
    ra->pid = h->pid;
    ra->gone = 0;
    at_record_event e = {.kind = AT_RECORD_EV_HELLO};
    e.hello.model = h->model;
    e.hello.framework = h->framework;
    e.hello.host = h->host;
    e.hello.pid = h->pid;
    e.hello.interval = h->interval;
    e.hello.rank = h->rank;
    e.hello.world_size = h->world_size;
    char rank[48] = "";
    if (h->world_size > 1)
        snprintf(rank, sizeof rank, " (rank %lld of %lld)", (long long)h->rank,
                 (long long)h->world_size);
    at_ingest_event(self, run, -1, -1, e,
                    "run %s started%s: %s (%s) on %s, pid %lld, a snapshot every %lld steps", r->id,
                    rank, h->model[0] ? h->model : "unnamed model", h->framework, h->host,
                    (long long)h->pid, (long long)h->interval);
}

/* The goodbye of one rank: what it owed will not come; the run ends with its last rank's. */
static void on_goodbye(at_ingest *self, int run, ing_run *r, const at_proto_goodbye *g)
{
    at_run_info *ri = at_model_run(self->model, run);
    rank_info *ra = rank_of(r, g->rank);
    if (ra)
        ra->gone = 1;
    int left = 0;
    for (int i = 0; i < r->nranks; i++)
        left += !r->ranks[i].gone;
    if (!ri->ended && !left)
        r->ended_seq = ++self->ends;
    ri->ended = !left;
    if (g->step > ri->step)
        ri->step = g->step;
    at_model_touch(self->model);
    char rank[48] = "";
    if (r->nranks > 1)
        snprintf(rank, sizeof rank, " (rank %lld)", (long long)g->rank);
    at_ingest_event(self, run, -1, g->step,
                    (at_record_event){.kind = AT_RECORD_EV_GOODBYE, .dropped = g->dropped},
                    "run %s ended%s at step %lld", r->id, rank, (long long)g->step);
    abandon_all(self, run, r, g->rank, "the trainer ended the run before its end");
}

static void on_scalars(at_ingest *self, int run, ing_run *r, const at_proto_scalars *sc)
{
    at_run_info *ri = at_model_run(self->model, run);
    if (sc->step > ri->step) {
        ri->step = sc->step;
        at_model_touch(self->model);
    }
    note_dropped(self, run, r, sc->dropped, sc->step);
}

int at_ingest_msg(at_ingest *self, const at_proto_msg *msg)
{
    /* Anyone may send a stop_ack: one for a run not seen makes none. */
    int run = msg->type == AT_PROTO_STOP_ACK ? at_ingest_find_run(self, msg->run)
                                             : at_ingest_run(self, msg->run);
    if (run < 0)
        return run;
    ing_run *r = self->runs[run];
    r->gone = 0;
    const double now = at_clock_mono();
    if (now - r->last_msg >= ACTIVE_S && !r->bytes_out)
        self->active_t = -1; /* a run becomes active: count_active counts again */
    r->last_msg = now;
    switch (msg->type) {
    case AT_PROTO_HELLO:
        on_hello(self, run, r, &msg->u.hello);
        break;
    case AT_PROTO_LAYER:
        on_layer(self, run, r, &msg->u.layer);
        break;
    case AT_PROTO_SKIP:
        on_skip(self, run, r, &msg->u.skip);
        break;
    case AT_PROTO_SNAPSHOT_END:
        on_snapshot_end(self, run, r, &msg->u.snapshot_end);
        break;
    case AT_PROTO_SCALARS:
        on_scalars(self, run, r, &msg->u.scalars);
        break;
    case AT_PROTO_GOODBYE:
        on_goodbye(self, run, r, &msg->u.goodbye);
        break;
    default:
        break;
    }
    return run;
}

void at_ingest_run_gone(at_ingest *self, int run, const char *reason)
{
    ing_run *r = run_at(self, run);
    if (!r || r->gone || at_model_run(self->model, run)->ended)
        return;
    r->gone = 1;
    r->ended_seq = ++self->ends;
    abandon_all(self, run, r, -1, reason);
}

/* ---- life ------------------------------------------------------------------------------- */

at_ingest *at_ingest_new(const at_ingest_opts *opts, const at_ingest_hooks *hooks, at_model *model,
                         int *status)
{
    at_ingest_opts o;
    if (opts)
        o = *opts;
    else
        at_ingest_opts_default(&o);
    int bad = !hooks || !model || !hooks->submit || !hooks->event || !hooks->feed ||
              !hooks->close || o.max_runs < 1 || o.max_open < 1;
    at_ingest *self = bad ? NULL : calloc(1, sizeof *self);
    if (self && !(self->ids = at_idmap_new(NULL))) {
        free(self);
        self = NULL;
    }
    if (status)
        *status = bad ? AT_ERR_ARG : self ? AT_OK : AT_ERR_NOMEM;
    if (!self)
        return NULL;
    self->o = o;
    self->h = *hooks;
    self->model = model;
    return self;
}

void at_ingest_finish(at_ingest *self)
{
    for (int i = 0; self && i < self->nruns; i++)
        if (self->runs[i])
            abandon_all(self, i, self->runs[i], -1, "the monitor stopped before its end arrived");
}

void at_ingest_free(at_ingest *self)
{
    if (!self)
        return;
    for (int i = 0; i < self->nruns; i++)
        run_free(self, self->runs[i]);
    free(self->runs);
    at_idmap_free(self->ids);
    free(self);
}
