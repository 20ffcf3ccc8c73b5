/* SPDX-License-Identifier: Apache-2.0 */
/* mpi_watch.c -- the monitor's layer jobs analysed on the ranks of an MPI job (mpi_watch.h).
 * On rank 0 one communication thread makes every MPI call while the worker is up (the engine's
 * thread only queues jobs and takes results, under a lock): MPI_THREAD_SERIALIZED. On the other
 * ranks the main thread calls MPI; the analysis worker's threads only analyse. */
#include "mpi_watch.h"

#include <fcntl.h>
#include <math.h>
#include <mpi.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi_session.h"
#include "scan_work.h"

enum { TAG_SETUP = 1, TAG_READY, TAG_JOB, TAG_DATA, TAG_RESULT, TAG_STOP, TAG_BYE };

/* Jobs a rank holds per thread: one running and one queued, so that no thread waits for the
 * round trip of a result and the next job (on a loaded machine, a scheduling delay for each of
 * two processes). */
#define DEPTH 2
/* The largest DATA message: MPI counts bytes in an int. */
#define PIECE ((size_t)1 << 30)

/* SETUP: what the other ranks' workers are started with. */
typedef struct setup_msg {
    int32_t fast, threads, traps, detx;
    uint64_t seed, state_budget;
} setup_msg;

/* A tensor of a JOB; its bytes follow in DATA messages. */
typedef struct wire_tensor {
    int32_t present, dtype, kind, ndim;
    int64_t shape[4];
} wire_tensor;

/* JOB: the weights, base weights and LoRA A factor, in that order. */
typedef struct job_msg {
    int64_t id, seq, step, weights_step;
    int32_t run, layer, space;
    wire_tensor t[3];
} job_msg;

/* RESULT: num_evals doubles follow in the same message. */
typedef struct result_msg {
    int64_t id;
    int32_t rc;
    char error[192];
    double max_abs;
    at_metrics m;
    uint64_t num_evals;
} result_msg;

/* A job on its way: rank 0's sent to rank `rank`; a rank's own, with the base weights it
 * received (the job borrows them). */
typedef struct flight {
    at_job *job;
    int64_t id;
    int rank;
    void *base;
} flight;

struct watch_mpi {
    int rank, size;
    int active; /* MPI is initialised (0: an idle task of a Slurm step without MPI) */
    /* rank 0: shared with the engine's thread, under lock */
    at_worker_remote remote;
    pthread_mutex_t lock;
    at_job **incoming, **done;
    size_t nin, capin, ndone, capdone;
    int pending, stopping;
    int pipe_fd[2]; /* readable while done is not empty */
    /* rank 0: the communication thread's */
    at_worker_opts opts;
    pthread_t thread;
    int started, stopped; /* the thread was started; every rank said BYE */
    at_job **wait;
    size_t nwait, capwait;
    flight *fl;
    size_t nfl, capfl;
    int **home; /* per run: per layer and space, the rank that analysed it last (-1: none) */
    int *nhome; /* per run: entries of home[run] */
    int nruns;
    int *threads_of, *free_of; /* per rank: threads (-1 until READY), jobs it may still take */
    int64_t *done_by, *backlog, next_id, moved;
};

/* A program error in the protocol or out of memory: every rank stops. */
static void protocol_abort(const watch_mpi *m, const char *what)
{
    fprintf(stderr, "alphatop watch: MPI rank %d: %s\n", m->rank, what);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void *grow(const watch_mpi *m, void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? 2 * *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * size);
    if (!q)
        protocol_abort(m, "out of memory");
    *cap = c;
    return q;
}

/* Waits for request r with naps between tests: a blocking MPI call would spin on a core the
 * analyses need while the other side is not yet scheduled (rendezvous of a large message). */
static void complete(MPI_Request *r)
{
    int done = 0;
    for (MPI_Test(r, &done, MPI_STATUS_IGNORE); !done; MPI_Test(r, &done, MPI_STATUS_IGNORE))
        mpi_nap();
}

/* Sends p[0..n) to dest with tag, in pieces of at most PIECE bytes. */
static void send_bytes(const void *p, size_t n, int dest, int tag)
{
    for (size_t at = 0; at < n; at += PIECE) {
        const size_t k = n - at < PIECE ? n - at : PIECE;
        MPI_Request r;
        MPI_Isend((const char *)p + at, (int)k, MPI_BYTE, dest, tag, MPI_COMM_WORLD, &r);
        complete(&r);
    }
}

/* Receives the n bytes send_bytes(p, n, dest = this rank, TAG_DATA) sends from src. */
static void recv_bytes(void *p, size_t n, int src)
{
    for (size_t at = 0; at < n; at += PIECE) {
        const size_t k = n - at < PIECE ? n - at : PIECE;
        MPI_Request r;
        MPI_Irecv((char *)p + at, (int)k, MPI_BYTE, src, TAG_DATA, MPI_COMM_WORLD, &r);
        complete(&r);
    }
}

watch_mpi *watch_mpi_start(void)
{
    mpi_member who;
    watch_mpi *m = mpi_session_start("watch", MPI_THREAD_SERIALIZED, sizeof *m, &who);
    if (m)
        *m = (watch_mpi){
            .rank = who.rank, .size = who.size, .active = who.active, .pipe_fd = {-1, -1}};
    return m;
}

int watch_mpi_rank(const watch_mpi *self)
{
    return self->rank;
}

/* ---- ranks > 0 ------------------------------------------------------------------------------ */

/* A JOB (its header in buf) and its DATA, as a job for the worker, in flight as *f (with its
 * base weights). */
static at_job *receive_job(watch_mpi *m, const unsigned char *buf, int n, flight *f)
{
    job_msg h;
    if (n != (int)sizeof h)
        protocol_abort(m, "malformed job");
    memcpy(&h, buf, sizeof h);
    at_job *job = calloc(1, sizeof *job);
    at_tensor t[3];
    void *bytes[3] = {NULL, NULL, NULL};
    size_t nbytes[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        t[i] = (at_tensor){.dtype = (at_dtype)h.t[i].dtype,
                           .kind = (at_layer_kind)h.t[i].kind,
                           .ndim = h.t[i].ndim};
        memcpy(t[i].shape, h.t[i].shape, sizeof t[i].shape);
        if (!h.t[i].present)
            continue;
        nbytes[i] = at_job_tensor_bytes(&t[i]);
        if (!(bytes[i] = malloc(nbytes[i] ? nbytes[i] : 1)))
            protocol_abort(m, "out of memory for a layer's weights");
        recv_bytes(bytes[i], nbytes[i], 0);
        t[i].data = bytes[i];
    }
    if (!job || !h.t[0].present)
        protocol_abort(m, job ? "a job without weights" : "out of memory");
    job->run = h.run;
    job->layer = h.layer;
    job->space = (at_space)h.space;
    job->seq = h.seq;
    job->step = h.step;
    job->weights_step = h.weights_step;
    job->t = t[0];
    job->data = bytes[0];
    job->max_abs = NAN;
    if (h.t[1].present)
        job->base = t[1];
    if (h.t[2].present) {
        job->lora_a = t[2];
        job->data2 = bytes[2];
    }
    job->bytes = nbytes[0] + nbytes[2];
    *f = (flight){job, h.id, 0, bytes[1]};
    return job;
}

static void send_result(watch_mpi *m, flight *fl, size_t *nfl, at_job *job)
{
    size_t k = 0;
    while (k < *nfl && fl[k].job != job)
        k++;
    if (k == *nfl)
        protocol_abort(m, "a result for a job it was not given");
    result_msg r;
    memset(&r, 0, sizeof r);
    r.id = fl[k].id;
    r.rc = job->rc;
    memcpy(r.error, job->error, sizeof r.error);
    r.max_abs = job->max_abs;
    r.m = job->m;
    r.num_evals = job->evals ? job->num_evals : 0;
    scan_buf b = {0};
    scan_buf_put(&b, &r, sizeof r);
    scan_buf_put(&b, job->evals, r.num_evals * sizeof *job->evals);
    if (b.failed || b.n > PIECE) /* one message: 2^27 eigenvalues would not fit */
        protocol_abort(m, b.failed ? "out of memory for a result" : "a result too large");
    send_bytes(b.p, b.n, 0, TAG_RESULT);
    scan_buf_free(&b);
    free(fl[k].base);
    at_job_free(job);
    fl[k] = fl[--*nfl];
}

/* The worker rank 0's SETUP asks for; *threads: how many jobs it runs at once (0: none). */
static at_worker *start_worker(const watch_mpi *m, const unsigned char *buf, int n,
                               int32_t *threads)
{
    setup_msg s;
    *threads = 0;
    if (n != (int)sizeof s)
        return NULL;
    memcpy(&s, buf, sizeof s);
    at_worker_opts o;
    at_worker_opts_default(&o);
    o.fast = s.fast;
    o.threads = s.threads > 0 ? s.threads : scan_cpus();
    if (o.threads > AT_POOL_MAX_THREADS)
        o.threads = AT_POOL_MAX_THREADS;
    o.traps = s.traps;
    o.detx = s.detx;
    o.seed = s.seed;
    o.state_budget = (size_t)s.state_budget;
    int st;
    at_worker *w = at_worker_new(&o, &st);
    if (w)
        *threads = o.threads;
    else
        fprintf(stderr, "alphatop watch: MPI rank %d cannot analyse: %s\n", m->rank,
                at_strerror(st));
    return w;
}

int watch_mpi_serve(watch_mpi *self)
{
    if (!self->active) {
        free(self);
        return 0;
    }
    /* mpirun hands Ctrl-C and SIGTERM to every rank: this one keeps serving until rank 0, which
     * ends the monitor on them, says stop. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    int tag, src, n;
    unsigned char *buf;
    mpi_receive(0, &tag, &src, &buf, &n);
    at_worker *w = NULL;
    if (tag == TAG_SETUP) {
        int32_t threads;
        w = start_worker(self, buf, n, &threads);
        MPI_Send(&threads, sizeof threads, MPI_BYTE, 0, TAG_READY, MPI_COMM_WORLD);
    }
    flight *fl = NULL;
    size_t nfl = 0, cap = 0;
    while (tag != TAG_STOP) {
        free(buf);
        buf = NULL;
        int flag = 0;
        MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
        if (flag) {
            mpi_receive(0, &tag, &src, &buf, &n);
            if (tag != TAG_JOB)
                continue;
            fl = grow(self, fl, &cap, nfl + 1, sizeof *fl);
            at_job *job = receive_job(self, buf, n, &fl[nfl]);
            nfl++;
            if (!w || at_worker_submit(w, job) != AT_OK)
                protocol_abort(self, "cannot queue a job");
            continue;
        }
        at_job *job = w ? at_worker_poll(w) : NULL;
        if (job) {
            send_result(self, fl, &nfl, job);
        } else if (w) {
            struct pollfd p = {.fd = at_worker_fd(w), .events = POLLIN};
            poll(&p, 1, MPI_NAP_MS);
        } else {
            mpi_nap();
        }
    }
    free(buf);
    MPI_Send(NULL, 0, MPI_BYTE, 0, TAG_BYE, MPI_COMM_WORLD);
    at_worker_free(w); /* frees the jobs it still had */
    for (size_t i = 0; i < nfl; i++)
        free(fl[i].base);
    free(fl);
    MPI_Finalize();
    free(self);
    return 0;
}

/* ---- rank 0: the communication thread ------------------------------------------------------ */

/* The home slot of job's layer (its rank, -1 for none), grown as needed. */
static int *home_of(watch_mpi *m, const at_job *job)
{
    if (job->run >= m->nruns) {
        size_t cap = (size_t)m->nruns;
        m->home = grow(m, m->home, &cap, (size_t)job->run + 1, sizeof *m->home);
        cap = (size_t)m->nruns;
        m->nhome = grow(m, m->nhome, &cap, (size_t)job->run + 1, sizeof *m->nhome);
        for (int r = m->nruns; r <= job->run; r++) {
            m->home[r] = NULL;
            m->nhome[r] = 0;
        }
        m->nruns = job->run + 1;
    }
    const int k = job->layer * AT_SPACE_COUNT + (int)job->space;
    if (k >= m->nhome[job->run]) {
        size_t cap = (size_t)m->nhome[job->run];
        m->home[job->run] = grow(m, m->home[job->run], &cap, (size_t)k + 1, sizeof(int));
        for (size_t i = (size_t)m->nhome[job->run]; i < cap; i++)
            m->home[job->run][i] = -1;
        m->nhome[job->run] = (int)cap;
    }
    return &m->home[job->run][k];
}

static int same_layer(const at_job *a, const at_job *b)
{
    return a->run == b->run && a->layer == b->layer && a->space == b->space;
}

/* A finished job for the engine's thread. */
static void finish_job(watch_mpi *m, at_job *job)
{
    pthread_mutex_lock(&m->lock);
    m->done = grow(m, m->done, &m->capdone, m->ndone + 1, sizeof *m->done);
    m->done[m->ndone++] = job;
    m->pending--;
    if (m->ndone == 1) {
        const char c = 1;
        if (write(m->pipe_fd[1], &c, 1) != 1)
            protocol_abort(m, "cannot signal a result");
    }
    pthread_mutex_unlock(&m->lock);
}

/* The jobs the engine queued, into the waiting list (fast mode: replacing the waiting one of
 * the same layer, which is freed). Returns how many came; *stopping: the worker is stopping. */
static size_t take_incoming(watch_mpi *m, int *stopping)
{
    pthread_mutex_lock(&m->lock);
    const size_t n = m->nin;
    int replaced = 0;
    for (size_t i = 0; i < n; i++) {
        at_job *job = m->incoming[i];
        size_t k = m->nwait;
        for (size_t j = 0; m->opts.fast && j < m->nwait; j++)
            if (same_layer(m->wait[j], job))
                k = j;
        if (k < m->nwait) {
            at_job_free(m->wait[k]);
            memmove(m->wait + k, m->wait + k + 1, (m->nwait - k - 1) * sizeof *m->wait);
            m->nwait--;
            replaced++;
        }
        m->wait = grow(m, m->wait, &m->capwait, m->nwait + 1, sizeof *m->wait);
        m->wait[m->nwait++] = job;
    }
    m->nin = 0;
    m->pending -= replaced;
    *stopping = m->stopping;
    pthread_mutex_unlock(&m->lock);
    return n;
}

static wire_tensor wire(const at_tensor *t)
{
    wire_tensor w = {t->data != NULL, (int32_t)t->dtype, (int32_t)t->kind, t->ndim, {0}};
    memcpy(w.shape, t->shape, sizeof w.shape);
    return w;
}

/* Sends job to rank r, frees its weights, and keeps it in flight. */
static void send_job(watch_mpi *m, at_job *job, int r)
{
    job_msg h;
    memset(&h, 0, sizeof h);
    h.id = m->next_id++;
    h.seq = job->seq;
    h.step = job->step;
    h.weights_step = job->weights_step;
    h.run = job->run;
    h.layer = job->layer;
    h.space = (int32_t)job->space;
    h.t[0] = wire(&job->t);
    h.t[1] = wire(&job->base);
    h.t[2] = wire(&job->lora_a);
    MPI_Send(&h, sizeof h, MPI_BYTE, r, TAG_JOB, MPI_COMM_WORLD);
    const at_tensor *t[3] = {&job->t, &job->base, &job->lora_a};
    for (int i = 0; i < 3; i++)
        if (t[i]->data)
            send_bytes(t[i]->data, at_job_tensor_bytes(t[i]), r, TAG_DATA);
    at_job_release(job);
    m->fl = grow(m, m->fl, &m->capfl, m->nfl + 1, sizeof *m->fl);
    m->fl[m->nfl++] = (flight){job, h.id, r, NULL};
    m->free_of[r]--;
}

int watch_mpi_pick(int home, int size, const int *room, const int64_t *backlog, const int *threads)
{
    int best = -1;
    for (int r = 1; r < size; r++)
        if (room[r] > 0 && (best < 0 || room[r] > room[best]))
            best = r;
    if (best < 0 || home <= 0)
        return best;
    if (room[home] > 0)
        return home;
    return backlog[home] >= backlog[best] + 2 * (int64_t)threads[home] ? best : -1;
}

/* Hands out the waiting jobs in order as the affinity rule allows (mpi_watch.h). Returns how
 * many went. */
static int dispatch(watch_mpi *m)
{
    for (int r = 0; r < m->size; r++)
        m->backlog[r] = 0;
    for (size_t i = 0; m->opts.fast && i < m->nwait; i++) {
        const int h = *home_of(m, m->wait[i]);
        if (h > 0)
            m->backlog[h]++;
    }
    int sent = 0;
    for (size_t i = 0; i < m->nwait;) {
        if (watch_mpi_pick(-1, m->size, m->free_of, m->backlog, m->threads_of) < 0)
            break; /* no rank has room */
        at_job *job = m->wait[i];
        int busy = 0;
        for (size_t k = 0; k < m->nfl && !busy; k++)
            busy = same_layer(m->fl[k].job, job);
        int *home = m->opts.fast ? home_of(m, job) : NULL;
        const int h = home ? *home : -1;
        const int to =
            busy ? -1 : watch_mpi_pick(h, m->size, m->free_of, m->backlog, m->threads_of);
        if (to < 0) {
            i++;
            continue;
        }
        if (h > 0) {
            m->backlog[h]--;
            m->moved += to != h;
        }
        if (home)
            *home = to;
        memmove(m->wait + i, m->wait + i + 1, (m->nwait - i - 1) * sizeof *m->wait);
        m->nwait--;
        send_job(m, job, to);
        sent++;
    }
    return sent;
}

/* When every rank is set up and none could start its worker: the waiting jobs fail. */
static void fail_unanalysable(watch_mpi *m)
{
    for (int r = 1; r < m->size; r++)
        if (m->threads_of[r] != 0)
            return;
    for (size_t i = 0; i < m->nwait; i++) {
        at_job *job = m->wait[i];
        at_job_release(job);
        job->rc = AT_ERR_STATE;
        snprintf(job->error, sizeof job->error, "no MPI rank could start its analyses");
        finish_job(m, job);
    }
    m->nwait = 0;
}

/* One message from another rank, if one waits: 1 after it, 0 when none waits. Results of jobs
 * are finished (or, once stopping, freed); *byes counts BYE. */
static int poll_ranks(watch_mpi *m, int stopping, int *byes)
{
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
    if (!flag)
        return 0;
    int tag, src, n;
    unsigned char *buf;
    mpi_receive(MPI_ANY_SOURCE, &tag, &src, &buf, &n);
    if (tag == TAG_READY && n == (int)sizeof(int32_t)) {
        int32_t threads;
        memcpy(&threads, buf, sizeof threads);
        m->threads_of[src] = threads;
        m->free_of[src] = DEPTH * threads;
        fail_unanalysable(m);
    } else if (tag == TAG_RESULT && n >= (int)sizeof(result_msg)) {
        result_msg r;
        memcpy(&r, buf, sizeof r);
        size_t k = 0;
        while (k < m->nfl && m->fl[k].id != r.id)
            k++;
        if (k == m->nfl || m->fl[k].rank != src ||
            (size_t)n != sizeof r + r.num_evals * sizeof(double))
            protocol_abort(m, "a result for no job");
        at_job *job = m->fl[k].job;
        m->fl[k] = m->fl[--m->nfl];
        m->free_of[src]++;
        m->done_by[src]++;
        job->rc = r.rc;
        memcpy(job->error, r.error, sizeof job->error);
        job->max_abs = r.max_abs;
        job->m = r.m;
        job->num_evals = (size_t)r.num_evals;
        if (r.num_evals) {
            if (!(job->evals = malloc(r.num_evals * sizeof *job->evals)))
                protocol_abort(m, "out of memory for a result");
            memcpy(job->evals, buf + sizeof r, r.num_evals * sizeof *job->evals);
        }
        if (stopping)
            at_job_free(job);
        else
            finish_job(m, job);
    } else if (tag == TAG_BYE) {
        (*byes)++;
    } else {
        protocol_abort(m, "an unexpected message");
    }
    free(buf);
    return 1;
}

/* Tells every other rank to stop and waits until each has said BYE (taking the results and
 * READYs sent before it). */
static void stop_ranks(watch_mpi *m)
{
    for (int r = 1; r < m->size; r++)
        MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, MPI_COMM_WORLD);
    int byes = 0;
    while (byes < m->size - 1)
        if (!poll_ranks(m, 1, &byes))
            mpi_nap();
    m->stopped = 1;
}

static void *comm_main(void *arg)
{
    watch_mpi *m = arg;
    setup_msg s = {m->opts.fast, m->opts.threads, m->opts.traps,
                   m->opts.detx, m->opts.seed,    (uint64_t)m->opts.state_budget};
    for (int r = 1; r < m->size; r++)
        MPI_Send(&s, sizeof s, MPI_BYTE, r, TAG_SETUP, MPI_COMM_WORLD);
    int stopping = 0, byes = 0;
    for (;;) {
        size_t news = take_incoming(m, &stopping);
        if (stopping)
            break;
        int got = 0;
        while (poll_ranks(m, 0, &byes))
            got = 1;
        if (news || got)
            dispatch(m);
        else
            mpi_nap();
    }
    stop_ranks(m);
    return NULL;
}

/* ---- rank 0: the worker's remote service ---------------------------------------------------- */

static int remote_start(void *ctx, const at_worker_opts *o)
{
    watch_mpi *m = ctx;
    if (m->started)
        return AT_ERR_STATE;
    m->opts = *o;
    const size_t n = (size_t)m->size;
    m->threads_of = malloc(n * sizeof *m->threads_of);
    m->free_of = calloc(n, sizeof *m->free_of);
    m->done_by = calloc(n, sizeof *m->done_by);
    m->backlog = calloc(n, sizeof *m->backlog);
    if (!m->threads_of || !m->free_of || !m->done_by || !m->backlog)
        return AT_ERR_NOMEM;
    for (size_t r = 0; r < n; r++)
        m->threads_of[r] = -1;
    m->threads_of[0] = 0;
    if (pipe(m->pipe_fd) != 0)
        return AT_ERR_IO;
    fcntl(m->pipe_fd[0], F_SETFL, O_NONBLOCK);
    if (pthread_mutex_init(&m->lock, NULL) != 0)
        return AT_ERR_IO;
    if (pthread_create(&m->thread, NULL, comm_main, m) != 0) {
        pthread_mutex_destroy(&m->lock);
        return AT_ERR_IO;
    }
    m->started = 1;
    return AT_OK;
}

static int remote_submit(void *ctx, at_job *job)
{
    watch_mpi *m = ctx;
    pthread_mutex_lock(&m->lock);
    int rc = m->stopping ? AT_ERR_STATE : AT_OK;
    if (rc == AT_OK && m->nin == m->capin) {
        const size_t cap = m->capin ? 2 * m->capin : 64;
        at_job **in = realloc(m->incoming, cap * sizeof *in);
        if (in) {
            m->incoming = in;
            m->capin = cap;
        } else {
            rc = AT_ERR_NOMEM;
        }
    }
    if (rc == AT_OK) {
        m->incoming[m->nin++] = job;
        m->pending++;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static at_job *remote_poll(void *ctx)
{
    watch_mpi *m = ctx;
    at_job *job = NULL;
    pthread_mutex_lock(&m->lock);
    if (m->ndone) {
        job = m->done[0];
        memmove(m->done, m->done + 1, (m->ndone - 1) * sizeof *m->done);
        if (--m->ndone == 0) {
            char c;
            while (read(m->pipe_fd[0], &c, 1) == 1)
                ;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return job;
}

static int remote_fd(void *ctx)
{
    return ((watch_mpi *)ctx)->pipe_fd[0];
}

static int remote_pending(void *ctx)
{
    watch_mpi *m = ctx;
    pthread_mutex_lock(&m->lock);
    const int n = m->pending;
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* Ends the thread (it stops the other ranks) and frees every job not handed back. */
static void remote_stop(void *ctx)
{
    watch_mpi *m = ctx;
    if (!m->started)
        return;
    pthread_mutex_lock(&m->lock);
    m->stopping = 1;
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    m->started = 0;
    for (size_t i = 0; i < m->nin; i++)
        at_job_free(m->incoming[i]);
    for (size_t i = 0; i < m->ndone; i++)
        at_job_free(m->done[i]);
    for (size_t i = 0; i < m->nwait; i++)
        at_job_free(m->wait[i]);
    for (size_t i = 0; i < m->nfl; i++)
        at_job_free(m->fl[i].job);
    m->nin = m->ndone = m->nwait = m->nfl = 0;
    m->pending = 0;
    pthread_mutex_destroy(&m->lock);
}

const at_worker_remote *watch_mpi_remote(watch_mpi *self)
{
    self->remote = (at_worker_remote){self,      remote_start,   remote_submit, remote_poll,
                                      remote_fd, remote_pending, remote_stop};
    return &self->remote;
}

void watch_mpi_finish(watch_mpi *self)
{
    if (!self)
        return;
    if (self->active) {
        remote_stop(self);
        if (!self->stopped)
            stop_ranks(self); /* the worker never started (e.g. a bad option) */
        if (self->done_by) {
            int threads = 0;
            int64_t all = 0, lo = INT64_MAX, hi = 0;
            for (int r = 1; r < self->size; r++) {
                threads += self->threads_of[r] > 0 ? self->threads_of[r] : 0;
                all += self->done_by[r];
                lo = self->done_by[r] < lo ? self->done_by[r] : lo;
                hi = self->done_by[r] > hi ? self->done_by[r] : hi;
            }
            fprintf(stderr,
                    "alphatop watch: MPI: %d ranks, %d analysing with %d thread%s: %lld layers "
                    "analysed, %lld to %lld per rank, %lld moved off their rank\n",
                    self->size, self->size - 1, threads, threads == 1 ? "" : "s", (long long)all,
                    (long long)lo, (long long)hi, (long long)self->moved);
        }
        MPI_Finalize();
    }
    if (self->pipe_fd[0] >= 0) {
        close(self->pipe_fd[0]);
        close(self->pipe_fd[1]);
    }
    for (int r = 0; r < self->nruns; r++)
        free(self->home[r]);
    free(self->home);
    free(self->nhome);
    free(self->incoming);
    free(self->done);
    free(self->wait);
    free(self->fl);
    free(self->threads_of);
    free(self->free_of);
    free(self->done_by);
    free(self->backlog);
    free(self);
}
