/* SPDX-License-Identifier: Apache-2.0 */
/* pool.c -- worker threads analysing layer jobs (see pool.h).
 *
 * One mutex guards everything but the analyses themselves. A job is in exactly one place: the
 * submitter's hands, the waiting list, one worker's hands (in no list), the results list, or
 * the poller's hands. A worker marks the job's layer busy when it takes the job and clears it
 * when the result is queued, and no job of a busy layer is handed out, so a layer's fast state
 * is used by one thread at a time without a lock of its own. Each worker uses only its own
 * analyzer. The fd's pipe holds one byte exactly while the results list is non-empty (both
 * changed under the mutex). */
#include "alphatop/pool.h"

#include <cblas.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fast/sched.h"

struct entry;

/* A layer: what its jobs share. */
typedef struct slot {
    char *key;
    at_fast_state *st;     /* fast-mode analyzer: the layer's state; else NULL */
    size_t state_bytes;    /* at_fast_state_bytes(st) after its last analysis */
    struct entry *latest;  /* AT_POOL_LATEST: its waiting job */
    int busy;              /* a worker is analysing one of its jobs (and uses st) */
    at_sched_layer rank;   /* what AT_POOL_LATEST ranks it by */
    int64_t newest_step;   /* newest step submitted */
    int64_t analysed_step; /* step of its last result */
} slot;

/* A job with the pool's bookkeeping. job comes first: an at_pool_job * is an entry *. */
typedef struct entry {
    at_pool_job job;
    struct entry *prev, *next; /* in the waiting or the results list */
    slot *s;
    double submitted; /* monotonic seconds */
    at_tensor copy;   /* at_pool_job_new_copy: the float32 copy in.w points at */
    float *copy_data;
} entry;

typedef struct list {
    entry *head, *tail;
    int64_t n;
} list;

typedef struct worker {
    at_pool *pool;
    at_analyzer *an;
    pthread_t thread;
} worker;

struct at_pool {
    at_pool_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot **slots; /* pointers: a slot stays put while the array grows */
    size_t nslots, slots_cap;
    list waiting, results;
    worker *workers; /* o.threads of them, or one analyzer for at_pool_run */
    int nworkers, started;
    int paused, quit;
    int fd[2];
    /* AT_POOL_LATEST's current round */
    at_sched_pick *order;
    size_t order_cap, order_n, order_next;
    int round_open;
    int64_t handed;
    double t0;
    at_pool_progress prog; /* counters; the rest is computed by at_pool_progress_get */
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double budget_clock(const at_pool *self)
{
    return self->o.clock ? self->o.clock(self->o.clock_ctx) : mono();
}

static void list_push(list *l, entry *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->n++;
}

static void list_unlink(list *l, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->n--;
}

static void list_free(list *l)
{
    entry *e;
    while ((e = l->head)) {
        list_unlink(l, e);
        at_pool_job_free(&e->job);
    }
}

void at_pool_opts_default(at_pool_opts *o)
{
    memset(o, 0, sizeof *o);
    o->threads = 1;
    o->blas_threads = 1;
    o->policy = AT_POOL_FIFO;
    at_analyzer_opts_default(&o->analyze);
    o->budget_s = 2.0;
    o->max_wait = 3;
}

/* ---- jobs ------------------------------------------------------------------------------- */

at_pool_job *at_pool_job_new(const char *key, int64_t step, int *status)
{
    int rc = AT_ERR_ARG;
    entry *e = NULL;
    if (!key)
        goto err;
    rc = AT_ERR_NOMEM;
    e = calloc(1, sizeof *e);
    if (!e || !(e->job.key = strdup(key)))
        goto err;
    e->job.step = step;
    if (status)
        *status = AT_OK;
    return &e->job;
err:
    free(e);
    if (status)
        *status = rc;
    return NULL;
}

at_pool_job *at_pool_job_new_copy(const char *key, int64_t step, const at_tensor *t, int *status)
{
    size_t count = 1;
    int ok = t && t->data && t->ndim == (t->kind == AT_KIND_CONV2D ? 4 : 2);
    for (int d = 0; ok && d < t->ndim; d++) {
        ok = t->shape[d] > 0 && t->shape[d] <= (int64_t)1 << 40;
        count *= ok ? (size_t)t->shape[d] : 1;
    }
    if (!ok) {
        if (status)
            *status = AT_ERR_ARG;
        return NULL;
    }
    entry *e = (entry *)at_pool_job_new(key, step, status);
    if (!e)
        return NULL;
    e->copy_data = malloc(count * sizeof(float));
    if (!e->copy_data) {
        at_pool_job_free(&e->job);
        if (status)
            *status = AT_ERR_NOMEM;
        return NULL;
    }
    at_convert_to_f32(t->data, t->dtype, count, e->copy_data);
    e->copy = *t;
    e->copy.data = e->copy_data;
    e->copy.dtype = AT_DTYPE_F32;
    e->job.in.w = &e->copy;
    return &e->job;
}

void at_pool_job_free(at_pool_job *job)
{
    if (!job)
        return;
    entry *e = (entry *)job;
    if (job->user_free && job->user)
        job->user_free(job->user);
    free(job->key);
    free(job->evals);
    free(e->copy_data);
    free(e);
}

/* ---- layers ----------------------------------------------------------------------------- */

/* The slot of key, created if new; NULL when out of memory. mu held. */
static slot *slot_for(at_pool *self, const char *key)
{
    for (size_t i = 0; i < self->nslots; i++)
        if (strcmp(self->slots[i]->key, key) == 0)
            return self->slots[i];
    if (self->nslots == self->slots_cap) {
        size_t cap = self->slots_cap ? 2 * self->slots_cap : 64;
        slot **s = realloc(self->slots, cap * sizeof *s);
        if (!s)
            return NULL;
        self->slots = s;
        self->slots_cap = cap;
    }
    slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->key = strdup(key);
    if (self->o.analyze.fast)
        s->st = at_fast_state_new();
    if (!s->key || (self->o.analyze.fast && !s->st)) {
        free(s->key);
        at_fast_state_free(s->st);
        free(s);
        return NULL;
    }
    s->rank.last_change = NAN;
    s->analysed_step = -1;
    self->slots[self->nslots++] = s;
    return s;
}

/* ---- what runs next --------------------------------------------------------------------- */

/* AT_POOL_LATEST: ranks the layers waiting and not busy into a new round; returns how many.
 * mu held. */
static size_t round_begin(at_pool *self)
{
    if (self->order_cap < self->nslots) {
        at_sched_pick *o = realloc(self->order, self->nslots * sizeof *o);
        if (!o)
            return 0;
        self->order = o;
        self->order_cap = self->nslots;
    }
    size_t k = 0;
    for (size_t i = 0; i < self->nslots; i++) {
        const slot *s = self->slots[i];
        if (s->latest && !s->busy)
            self->order[k++] = (at_sched_pick){.idx = i, .layer = &s->rank};
    }
    if (k == 0)
        return 0;
    at_sched_order(self->order, k, mono(), self->o.max_wait);
    self->prog.round++;
    self->prog.round_done = 0;
    self->prog.round_total = (int64_t)k;
    self->order_n = k;
    self->order_next = 0;
    self->handed = 0;
    self->round_open = 1;
    self->t0 = budget_clock(self);
    return k;
}

/* Closes the round: the layers it did not hand out were passed over once more. mu held. */
static void round_end(at_pool *self)
{
    for (size_t i = self->order_next; i < self->order_n; i++) {
        slot *s = self->slots[self->order[i].idx];
        if (s->latest)
            s->rank.waited++;
    }
    self->round_open = 0;
}

/* The round's next job, unless its budget is spent (a round always hands out one). mu held. */
static entry *round_next(at_pool *self)
{
    while (self->order_next < self->order_n) {
        if (self->handed > 0 && budget_clock(self) - self->t0 >= self->o.budget_s)
            return NULL;
        slot *s = self->slots[self->order[self->order_next++].idx];
        entry *e = s->latest;
        if (!e)
            continue; /* cancelled since the round began */
        s->latest = NULL;
        self->handed++;
        e->job.round = self->prog.round;
        return e;
    }
    return NULL;
}

/* The next job to analyse, taken off the waiting list with its layer marked busy; NULL when
 * none may start now. begin: AT_POOL_LATEST may begin a new round. mu held. */
static entry *take(at_pool *self, int begin)
{
    entry *e = NULL;
    if (self->o.policy == AT_POOL_FIFO) {
        for (e = self->waiting.head; e && e->s->busy; e = e->next)
            ;
    } else {
        while (!e && (self->round_open || (begin && round_begin(self)))) {
            e = round_next(self);
            if (!e)
                round_end(self);
        }
    }
    if (!e)
        return NULL;
    list_unlink(&self->waiting, e);
    e->s->busy = 1;
    self->prog.running++;
    return e;
}

/* ---- analysing -------------------------------------------------------------------------- */

/* Analyses e's job on an (no lock held: e and its layer's state are this thread's now).
 * Returns the layer's state bytes after it. */
static size_t analyse(at_analyzer *an, entry *e)
{
    at_pool_job *j = &e->job;
    const double t0 = mono();
    if (!j->prepare || (j->rc = j->prepare(j)) >= 0) {
        at_layer_job in = j->in;
        in.state = e->s->st;
        j->rc = at_analyzer_run(an, &in, &j->m, &j->info);
        if (j->rc < 0)
            snprintf(j->error, sizeof j->error, "%s", at_analyzer_last_error(an));
    }
    if (j->last) {
        at_fast_state_free(e->s->st);
        e->s->st = NULL;
    }
    const double t1 = mono();
    j->seconds = t1 - t0;
    j->lag_s = t1 - e->submitted;
    size_t n = 0;
    const double *ev = j->rc == AT_OK ? at_analyzer_evals(an, &n) : NULL;
    if (ev && n && (j->evals = malloc(n * sizeof *ev))) {
        memcpy(j->evals, ev, n * sizeof *ev);
        j->num_evals = n;
    }
    if (j->done)
        j->done(j);
    return e->s->st ? at_fast_state_bytes(e->s->st) : 0;
}

/* Drops the fast-mode states of the layers analysed longest ago (not busy: nobody uses them)
 * until all of them fit state_budget again; each such layer's next analysis is cold. mu held. */
static void trim_states(at_pool *self)
{
    while (self->o.state_budget && self->prog.state_bytes > self->o.state_budget) {
        slot *old = NULL;
        for (size_t i = 0; i < self->nslots; i++) {
            slot *s = self->slots[i];
            if (!s->busy && s->state_bytes && (!old || s->rank.last_done < old->rank.last_done))
                old = s;
        }
        at_fast_state *fresh = old ? at_fast_state_new() : NULL;
        if (!fresh)
            return;
        at_fast_state_free(old->st);
        old->st = fresh;
        self->prog.state_bytes -= old->state_bytes;
        old->state_bytes = 0;
        self->prog.states_dropped++;
    }
}

/* Queues e's result and frees its layer. mu held. */
static void finish(at_pool *self, entry *e, size_t state_bytes)
{
    slot *s = e->s;
    s->busy = 0;
    self->prog.state_bytes = self->prog.state_bytes - s->state_bytes + state_bytes;
    s->state_bytes = state_bytes;
    s->rank.waited = 0;
    s->rank.analysed = 1;
    s->rank.last_done = mono();
    s->rank.last_change = e->job.info.rel_change;
    s->analysed_step = e->job.step;
    self->prog.running--;
    self->prog.analysed++;
    if (e->job.round > 0 && e->job.round == self->prog.round)
        self->prog.round_done++;
    trim_states(self);
    list_push(&self->results, e);
    if (self->results.n == 1) {
        const char b = 1;
        if (write(self->fd[1], &b, 1) < 0) {
            /* Cannot happen: the pipe is empty while no result waits. */
        }
    }
    /* A freed layer may let a waiting worker take its next job. */
    pthread_cond_broadcast(&self->cv);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    at_pool *self = w->pool;
    pthread_mutex_lock(&self->mu);
    while (!self->quit) {
        entry *e = self->paused ? NULL : take(self, 1);
        if (!e) {
            pthread_cond_wait(&self->cv, &self->mu);
            continue;
        }
        pthread_mutex_unlock(&self->mu);
        size_t bytes = analyse(w->an, e);
        pthread_mutex_lock(&self->mu);
        finish(self, e, bytes);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

int at_pool_run(at_pool *self)
{
    if (!self)
        return AT_ERR_ARG;
    if (self->o.threads > 0)
        return AT_ERR_STATE;
    int done = 0;
    pthread_mutex_lock(&self->mu);
    entry *e;
    while ((e = take(self, done == 0))) {
        pthread_mutex_unlock(&self->mu);
        size_t bytes = analyse(self->workers[0].an, e);
        pthread_mutex_lock(&self->mu);
        finish(self, e, bytes);
        done++;
    }
    pthread_mutex_unlock(&self->mu);
    return done;
}

/* ---- the pool --------------------------------------------------------------------------- */

/* Stops and joins the started threads. */
static void stop_threads(at_pool *self)
{
    pthread_mutex_lock(&self->mu);
    self->quit = 1;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    for (int i = 0; i < self->started; i++)
        pthread_join(self->workers[i].thread, NULL);
    self->started = 0;
}

at_pool *at_pool_new(const at_pool_opts *o, int *status)
{
    at_pool_opts opts;
    if (!o)
        at_pool_opts_default(&opts);
    int rc = AT_ERR_ARG;
    const at_pool_opts *p = o ? o : &opts;
    at_pool *self = NULL;
    if (p->threads < 0 || p->threads > AT_POOL_MAX_THREADS ||
        (p->policy != AT_POOL_FIFO && p->policy != AT_POOL_LATEST) || !(p->budget_s > 0) ||
        p->max_wait < 0)
        goto err;
    rc = AT_ERR_NOMEM;
    self = calloc(1, sizeof *self);
    if (!self)
        goto err;
    self->o = *p;
    self->fd[0] = self->fd[1] = -1;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    self->nworkers = p->threads > 0 ? p->threads : 1;
    self->workers = calloc((size_t)self->nworkers, sizeof *self->workers);
    if (!self->workers)
        goto err;
    for (int i = 0; i < self->nworkers; i++) {
        self->workers[i].pool = self;
        if (!(self->workers[i].an = at_analyzer_new(&p->analyze, NULL)))
            goto err;
    }
    rc = AT_ERR_IO;
    if (pipe(self->fd) != 0)
        goto err;
    for (int i = 0; i < 2; i++) {
        fcntl(self->fd[i], F_SETFL, fcntl(self->fd[i], F_GETFL) | O_NONBLOCK);
        fcntl(self->fd[i], F_SETFD, FD_CLOEXEC);
    }
    if (p->threads > 0)
        openblas_set_num_threads(p->threads == 1 && p->blas_threads > 1 ? p->blas_threads : 1);
    for (; self->started < p->threads; self->started++)
        if (pthread_create(&self->workers[self->started].thread, NULL, worker_main,
                           &self->workers[self->started]) != 0)
            goto err;
    if (status)
        *status = AT_OK;
    return self;
err:
    at_pool_free(self);
    if (status)
        *status = rc;
    return NULL;
}

void at_pool_free(at_pool *self)
{
    if (!self)
        return;
    stop_threads(self);
    list_free(&self->waiting);
    list_free(&self->results);
    for (size_t i = 0; i < self->nslots; i++) {
        free(self->slots[i]->key);
        at_fast_state_free(self->slots[i]->st);
        free(self->slots[i]);
    }
    free(self->slots);
    free(self->order);
    for (int i = 0; self->workers && i < self->nworkers; i++)
        at_analyzer_free(self->workers[i].an);
    free(self->workers);
    for (int i = 0; i < 2; i++)
        if (self->fd[i] >= 0)
            close(self->fd[i]);
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    free(self);
}

int at_pool_submit(at_pool *self, at_pool_job *job)
{
    if (!self || !job || (!job->in.w && !job->prepare))
        return AT_ERR_ARG;
    entry *e = (entry *)job, *old = NULL;
    pthread_mutex_lock(&self->mu);
    slot *s = slot_for(self, job->key);
    if (!s) {
        pthread_mutex_unlock(&self->mu);
        return AT_ERR_NOMEM;
    }
    e->s = s;
    e->submitted = mono();
    if (self->o.policy == AT_POOL_LATEST) {
        old = s->latest;
        if (old) {
            /* The layer has waited since its oldest replaced job arrived. */
            e->submitted = old->submitted;
            list_unlink(&self->waiting, old);
            self->prog.replaced++;
        }
        s->latest = e;
    }
    list_push(&self->waiting, e);
    if (job->step > s->newest_step || !s->rank.analysed)
        s->newest_step = job->step;
    if (!old)
        s->rank.submitted = e->submitted;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    if (old)
        at_pool_job_free(&old->job);
    return AT_OK;
}

at_pool_job *at_pool_poll(at_pool *self)
{
    if (!self)
        return NULL;
    pthread_mutex_lock(&self->mu);
    entry *e = self->results.head;
    if (e) {
        list_unlink(&self->results, e);
        char b;
        if (self->results.n == 0 && read(self->fd[0], &b, 1) < 0) {
            /* Cannot happen: the pipe holds one byte while results wait. */
        }
    }
    pthread_mutex_unlock(&self->mu);
    return e ? &e->job : NULL;
}

int at_pool_fd(const at_pool *self)
{
    return self ? self->fd[0] : -1;
}

int at_pool_cancel(at_pool *self, int64_t tag, int64_t step)
{
    if (!self)
        return 0;
    list gone = {0};
    pthread_mutex_lock(&self->mu);
    for (entry *e = self->waiting.head, *next; e; e = next) {
        next = e->next;
        if (e->job.tag != tag || e->job.step != step)
            continue;
        list_unlink(&self->waiting, e);
        if (e->s->latest == e)
            e->s->latest = NULL;
        list_push(&gone, e);
    }
    self->prog.cancelled += gone.n;
    pthread_mutex_unlock(&self->mu);
    int n = (int)gone.n;
    list_free(&gone);
    return n;
}

void at_pool_pause(at_pool *self, int paused)
{
    if (!self)
        return;
    pthread_mutex_lock(&self->mu);
    self->paused = paused != 0;
    if (self->paused && self->round_open)
        round_end(self);
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

int64_t at_pool_pending(at_pool *self)
{
    if (!self)
        return 0;
    pthread_mutex_lock(&self->mu);
    int64_t n = self->waiting.n + self->prog.running;
    pthread_mutex_unlock(&self->mu);
    return n;
}

void at_pool_progress_get(at_pool *self, at_pool_progress *out)
{
    if (!self || !out)
        return;
    const double now = mono();
    pthread_mutex_lock(&self->mu);
    *out = self->prog;
    out->layers = (int64_t)self->nslots;
    out->waiting = self->waiting.n;
    for (const entry *e = self->waiting.head; e; e = e->next)
        out->seconds_behind = fmax(out->seconds_behind, now - e->submitted);
    for (size_t i = 0; i < self->nslots; i++) {
        const slot *s = self->slots[i];
        if (s->rank.analysed && s->newest_step - s->analysed_step > out->steps_behind)
            out->steps_behind = s->newest_step - s->analysed_step;
    }
    pthread_mutex_unlock(&self->mu);
}
