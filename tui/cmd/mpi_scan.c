/* SPDX-License-Identifier: Apache-2.0 */
/* mpi_scan.c -- scan's tasks spread over the ranks of an MPI job (mpi_scan.h). Only the main
 * thread of each rank calls MPI (MPI_THREAD_FUNNELED); the worker threads only analyse. */
#include "mpi_scan.h"

#include "mpi_session.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_SETUP = 1, TAG_READY, TAG_GROUP, TAG_RESULT, TAG_STOP };

/* Room for one task's strings (three file paths and its key) when decoded. */
#define TASK_STRINGS (3 * 4096 + 512)

/* Rank 0's view of one group: its tasks are order[first .. first + count). */
typedef struct group {
    size_t first, count, left;
    int portable; /* every tensor in a file: any rank can read it */
    int rank;     /* where it runs; -1: not handed out yet */
} group;

/* A rank > 0's task in flight, with the strings its locations point into. */
typedef struct held {
    scan_task task;
    char strings[TASK_STRINGS];
} held;

struct scan_mpi {
    int rank, size;
    int active; /* MPI is initialised (0: an idle task of a Slurm step without MPI) */
    /* rank 0 */
    scan_runner *local;
    scan_setup setup; /* what every other rank is told */
    int local_slots;  /* groups rank 0's own threads may still take */
    int *slots;       /* per rank: groups it may still take (0 until READY) */
    int *threads_of;  /* per rank: its threads (READY); -1 until then */
    scan_task *tasks;
    size_t ntasks, *order;
    group *groups;
    size_t ngroups, next; /* next: no group before it is waiting */
    size_t *group_of;     /* task id -> group */
    size_t ids;           /* task ids < ids */
    int64_t *done_by;     /* per rank: tasks analysed */
    double busy, t0, t1;  /* task seconds summed; first hand-out and last result (s) */
    int started;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A program error in the protocol (never bad input): every rank stops. */
static void protocol_abort(const scan_mpi *m, const char *what)
{
    fprintf(stderr, "alphatop scan: MPI rank %d: %s\n", m->rank, what);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

scan_mpi *scan_mpi_start(void)
{
    mpi_member who;
    scan_mpi *m = mpi_session_start("scan", MPI_THREAD_FUNNELED, sizeof *m, &who);
    if (m)
        *m = (scan_mpi){.rank = who.rank, .size = who.size, .active = who.active};
    return m;
}

int scan_mpi_rank(const scan_mpi *self)
{
    return self->rank;
}

static void send(const scan_buf *b, int dest, int tag)
{
    MPI_Send(b->p, (int)b->n, MPI_BYTE, dest, tag, MPI_COMM_WORLD);
}

/* ---- ranks > 0 ------------------------------------------------------------------------------ */

/* Sends the result of a finished task and forgets it. */
static void send_result(scan_mpi *m, held **inflight, size_t *n, scan_result *r)
{
    size_t k = 0;
    while (k < *n && inflight[k]->task.id != r->id)
        k++;
    if (k == *n)
        protocol_abort(m, "a result for a task it was not given");
    scan_buf b = {0};
    scan_result_encode(&b, r);
    if (b.failed)
        protocol_abort(m, "out of memory encoding a result");
    send(&b, 0, TAG_RESULT);
    scan_buf_free(&b);
    free(inflight[k]);
    inflight[k] = inflight[--*n];
}

int scan_mpi_serve(scan_mpi *self)
{
    if (!self->active) {
        free(self);
        return 0;
    }
    int tag, src, n;
    unsigned char *buf;
    mpi_receive(MPI_ANY_SOURCE, &tag, &src, &buf, &n);
    scan_runner *runner = NULL;
    if (tag == TAG_SETUP) {
        scan_setup setup;
        size_t pos = 0;
        if (scan_setup_decode(buf, (size_t)n, &pos, &setup) < 0)
            protocol_abort(self, "malformed setup");
        runner = scan_runner_new(&setup, NULL);
        /* A rank that cannot start threads takes no work. */
        const int32_t cap = runner ? scan_runner_threads(runner) : 0;
        MPI_Send(&cap, sizeof cap, MPI_BYTE, 0, TAG_READY, MPI_COMM_WORLD);
    }
    held **inflight = NULL;
    size_t ninflight = 0, cap = 0;
    while (tag != TAG_STOP) {
        free(buf);
        buf = NULL;
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
        if (flag) {
            mpi_receive(MPI_ANY_SOURCE, &tag, &src, &buf, &n);
            if (tag != TAG_GROUP)
                continue;
            uint32_t count;
            size_t pos = 0;
            if (scan_buf_get(buf, (size_t)n, &pos, &count, sizeof count) < 0 || !runner)
                protocol_abort(self, "malformed group");
            for (uint32_t i = 0; i < count; i++) {
                if (ninflight == cap) {
                    cap = cap ? 2 * cap : 16;
                    held **h = realloc(inflight, cap * sizeof *h);
                    if (!h)
                        protocol_abort(self, "out of memory");
                    inflight = h;
                }
                held *h = malloc(sizeof *h);
                if (!h || scan_task_decode(buf, (size_t)n, &pos, &h->task, h->strings,
                                           sizeof h->strings) < 0)
                    protocol_abort(self, "malformed task");
                inflight[ninflight++] = h;
                if (scan_runner_submit(runner, &h->task) < 0)
                    protocol_abort(self, "cannot queue a task");
            }
            continue;
        }
        scan_result r;
        if (runner && scan_runner_next(runner, &r)) {
            send_result(self, inflight, &ninflight, &r);
            scan_result_clear(&r);
        } else if (runner) {
            scan_runner_wait(runner, MPI_NAP_MS);
        } else {
            mpi_nap();
        }
    }
    free(buf);
    scan_runner_free(runner);
    for (size_t i = 0; i < ninflight; i++)
        free(inflight[i]);
    free(inflight);
    MPI_Finalize();
    free(self);
    return 0;
}

/* ---- rank 0 -------------------------------------------------------------------------------- */

/* The first group not handed out yet (that any rank can read, when portable). */
static group *next_group(scan_mpi *m, int portable)
{
    while (m->next < m->ngroups && m->groups[m->next].rank >= 0)
        m->next++;
    for (size_t i = m->next; i < m->ngroups; i++)
        if (m->groups[i].rank < 0 && (!portable || m->groups[i].portable))
            return &m->groups[i];
    return NULL;
}

/* Hands out groups, largest first, to every rank with a slot free: the others, then this one. */
static void dispatch(scan_mpi *m)
{
    group *g;
    for (int r = 1; r < m->size; r++)
        while (m->slots[r] > 0 && (g = next_group(m, 1))) {
            scan_buf b = {0};
            const uint32_t count = (uint32_t)g->count;
            scan_buf_put(&b, &count, sizeof count);
            for (size_t i = 0; i < g->count; i++)
                scan_task_encode(&b, &m->tasks[m->order[g->first + i]]);
            if (b.failed)
                protocol_abort(m, "out of memory encoding a group");
            send(&b, r, TAG_GROUP);
            scan_buf_free(&b);
            g->rank = r;
            m->slots[r]--;
        }
    while (m->local_slots > 0 && (g = next_group(m, 0))) {
        for (size_t i = 0; i < g->count; i++)
            if (scan_runner_submit(m->local, &m->tasks[m->order[g->first + i]]) < 0)
                protocol_abort(m, "cannot queue a task");
        g->rank = 0;
        m->local_slots--;
    }
}

/* Counts the result r of a task run by rank src, whose group is then one task shorter. */
static void count_result(scan_mpi *m, int src, const scan_result *r)
{
    if (r->id < 0 || (size_t)r->id >= m->ids || m->group_of[r->id] >= m->ngroups)
        protocol_abort(m, "a result for no task");
    group *g = &m->groups[m->group_of[r->id]];
    m->done_by[src]++;
    m->busy += r->seconds;
    m->t1 = mono();
    if (--g->left == 0) {
        if (src == 0)
            m->local_slots++;
        else
            m->slots[src]++;
    }
}

/* One message from another rank, if one waits: 1 with a result in *out, 0 after another
 * message, -1 when none waits. out NULL: only READY is expected. */
static int poll_ranks(scan_mpi *m, scan_result *out)
{
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
    if (!flag)
        return -1;
    int tag, src, n, rc = 0;
    unsigned char *buf;
    mpi_receive(MPI_ANY_SOURCE, &tag, &src, &buf, &n);
    size_t pos = 0;
    if (tag == TAG_READY) {
        int32_t cap;
        if (scan_buf_get(buf, (size_t)n, &pos, &cap, sizeof cap) < 0)
            protocol_abort(m, "malformed ready");
        m->slots[src] = cap;
        m->threads_of[src] = cap;
    } else if (tag == TAG_RESULT && out) {
        if (scan_result_decode(buf, (size_t)n, &pos, out) < 0)
            protocol_abort(m, "malformed result");
        count_result(m, src, out);
        rc = 1;
    } else {
        protocol_abort(m, "an unexpected message");
    }
    free(buf);
    return rc;
}

static int mpi_wait(void *ctx, int timeout_ms, scan_result *out)
{
    scan_mpi *m = ctx;
    const double deadline = mono() + timeout_ms / 1e3;
    for (;;) {
        dispatch(m);
        if (scan_runner_next(m->local, out)) {
            count_result(m, 0, out);
            return 1;
        }
        int got;
        while ((got = poll_ranks(m, out)) == 0)
            dispatch(m);
        if (got == 1)
            return 1;
        if (mono() >= deadline)
            return 0;
        scan_runner_wait(m->local, MPI_NAP_MS);
    }
}

static int mpi_start(void *ctx, const scan_task *tasks, size_t n)
{
    scan_mpi *m = ctx;
    m->tasks = malloc((n ? n : 1) * sizeof *m->tasks);
    m->order = malloc((n ? n : 1) * sizeof *m->order);
    m->groups = malloc((n ? n : 1) * sizeof *m->groups);
    m->slots = calloc((size_t)m->size, sizeof *m->slots);
    m->threads_of = calloc((size_t)m->size, sizeof *m->threads_of);
    m->done_by = calloc((size_t)m->size, sizeof *m->done_by);
    for (int r = 0; m->threads_of && r < m->size; r++)
        m->threads_of[r] = -1;
    for (size_t i = 0; i < n; i++)
        if ((size_t)tasks[i].id + 1 > m->ids)
            m->ids = (size_t)tasks[i].id + 1;
    m->group_of = malloc((m->ids ? m->ids : 1) * sizeof *m->group_of);
    if (!m->tasks || !m->order || !m->groups || !m->slots || !m->threads_of || !m->done_by ||
        !m->group_of || scan_task_order(tasks, n, m->order) < 0)
        return AT_ERR_NOMEM;
    memcpy(m->tasks, tasks, n * sizeof *tasks);
    m->ntasks = n;
    /* In that order a group's tasks are next to each other. */
    for (size_t i = 0; i < n; i++) {
        const scan_task *t = &m->tasks[m->order[i]];
        if (!m->ngroups || m->tasks[m->order[m->groups[m->ngroups - 1].first]].group != t->group)
            m->groups[m->ngroups++] = (group){i, 0, 0, 1, -1};
        group *g = &m->groups[m->ngroups - 1];
        g->count++;
        g->left++;
        g->portable &= scan_task_portable(t);
        m->group_of[t->id] = m->ngroups - 1;
    }
    scan_buf b = {0};
    scan_setup_encode(&b, &m->setup);
    if (b.failed)
        return AT_ERR_NOMEM;
    for (int r = 1; r < m->size; r++)
        send(&b, r, TAG_SETUP);
    scan_buf_free(&b);
    m->local_slots = scan_runner_threads(m->local);
    m->threads_of[0] = m->local_slots;
    m->started = 1;
    m->t0 = m->t1 = mono();
    dispatch(m);
    return AT_OK;
}

void scan_mpi_exec(scan_mpi *self, const scan_setup *setup, scan_runner *local, scan_exec *e)
{
    self->setup = *setup;
    self->local = local;
    *e = (scan_exec){self, mpi_start, mpi_wait};
}

void scan_mpi_finish(scan_mpi *self)
{
    if (!self)
        return;
    if (self->active) {
        /* Every set-up rank says READY, even when the work was done before it could start:
         * no message is left unreceived when MPI ends. */
        for (int r = 1; self->started && r < self->size; r++)
            while (self->threads_of[r] < 0)
                if (poll_ranks(self, NULL) < 0)
                    mpi_nap();
        for (int r = 1; r < self->size; r++)
            MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, MPI_COMM_WORLD);
        if (self->started) {
            int threads = 0;
            int64_t lo = INT64_MAX, hi = 0;
            for (int r = 0; r < self->size; r++) {
                threads += self->threads_of[r];
                lo = self->done_by[r] < lo ? self->done_by[r] : lo;
                hi = self->done_by[r] > hi ? self->done_by[r] : hi;
            }
            const double wall = self->t1 - self->t0;
            fprintf(stderr,
                    "alphatop scan: MPI: %d ranks, %d thread%s: %zu tasks in %.3f s, %.3f s of "
                    "analysis (%.0f%% busy), %lld to %lld tasks per rank\n",
                    self->size, threads, threads == 1 ? "" : "s", self->ntasks, wall, self->busy,
                    wall > 0 && threads ? 100.0 * self->busy / (wall * threads) : 100.0,
                    (long long)lo, (long long)hi);
        }
        MPI_Finalize();
    }
    free(self->tasks);
    free(self->order);
    free(self->groups);
    free(self->slots);
    free(self->threads_of);
    free(self->group_of);
    free(self->done_by);
    free(self);
}
