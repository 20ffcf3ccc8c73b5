/* sched.c -- budgeted, prioritized refresh rounds on a worker thread (see sched.h). */
#include "alphatop/sched.h"

#include <cblas.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Floor of a layer's change in the priority score: a skipped (unchanged) layer still ages. */
#define MIN_CHANGE 1e-6

typedef struct slot {
    char *name;
    float *data; /* waiting snapshot (NULL: none) */
    at_tensor t; /* its shape; t.data == data */
    int64_t step;
    double submitted; /* monotonic seconds */
    int waited;       /* rounds passed over while waiting */
    at_fast_state *st;
    int analysed;     /* has a result */
    double last_done; /* monotonic seconds of the last result */
    double last_change;
    int64_t newest_step, analysed_step;
} slot;

typedef struct pick {
    size_t idx;
    int cls;      /* 0 starving, 1 never analysed, 2 the rest */
    double score; /* larger first within a class */
} pick;

struct at_sched {
    at_sched_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot **slots; /* pointers: a slot stays put while the array grows */
    size_t n, cap;
    pick *order;
    size_t order_cap;
    at_fast *fast;
    at_htsr *htsr;
    at_sched_result **res; /* FIFO ring */
    size_t rhead, rcount, rcap;
    int pipe[2];
    pthread_t thread;
    int started, stop, paused;
    at_sched_progress prog;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double budget_clock(const at_sched *self)
{
    return self->o.clock ? self->o.clock(self->o.clock_ctx) : mono();
}

void at_sched_opts_default(at_sched_opts *o)
{
    memset(o, 0, sizeof *o);
    o->budget_s = 2.0;
    o->max_wait = 3;
    o->blas_threads = 1;
    o->exact = 0;
    at_fast_opts_default(&o->fast);
    at_htsr_opts_default(&o->htsr);
}

at_sched *at_sched_new(const at_sched_opts *o, int *status)
{
    int rc = AT_ERR_NOMEM;
    at_sched *self = calloc(1, sizeof *self);
    if (!self)
        goto err;
    if (o)
        self->o = *o;
    else
        at_sched_opts_default(&self->o);
    self->pipe[0] = self->pipe[1] = -1;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    self->fast = at_fast_new();
    self->htsr = at_htsr_new();
    if (!self->fast || !self->htsr)
        goto err;
    rc = AT_ERR_IO;
    if (pipe(self->pipe) != 0)
        goto err;
    for (int i = 0; i < 2; i++) {
        fcntl(self->pipe[i], F_SETFL, fcntl(self->pipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(self->pipe[i], F_SETFD, FD_CLOEXEC);
    }
    if (status)
        *status = AT_OK;
    return self;
err:
    at_sched_free(self);
    if (status)
        *status = rc;
    return NULL;
}

static void *worker_main(void *arg);

int at_sched_start(at_sched *self)
{
    if (!self)
        return AT_ERR_ARG;
    if (self->started)
        return AT_ERR_STATE;
    /* Process-global: the worker's BLAS calls run on this many threads (see sched.h). */
    openblas_set_num_threads(self->o.blas_threads > 0 ? self->o.blas_threads : 1);
    if (pthread_create(&self->thread, NULL, worker_main, self) != 0)
        return AT_ERR_IO;
    self->started = 1;
    return AT_OK;
}

void at_sched_result_free(at_sched_result *r)
{
    if (!r)
        return;
    free(r->layer);
    free(r);
}

void at_sched_free(at_sched *self)
{
    if (!self)
        return;
    if (self->started) {
        pthread_mutex_lock(&self->mu);
        self->stop = 1;
        pthread_cond_broadcast(&self->cv);
        pthread_mutex_unlock(&self->mu);
        pthread_join(self->thread, NULL);
    }
    for (size_t i = 0; i < self->n; i++) {
        free(self->slots[i]->name);
        free(self->slots[i]->data);
        at_fast_state_free(self->slots[i]->st);
        free(self->slots[i]);
    }
    free(self->slots);
    free(self->order);
    for (size_t i = 0; i < self->rcount; i++)
        at_sched_result_free(self->res[(self->rhead + i) % self->rcap]);
    free(self->res);
    at_fast_free(self->fast);
    at_htsr_free(self->htsr);
    for (int i = 0; i < 2; i++)
        if (self->pipe[i] >= 0)
            close(self->pipe[i]);
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    free(self);
}

/* The slot of name, created if new; NULL when out of memory. Called with mu held. */
static slot *slot_for(at_sched *self, const char *name)
{
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->slots[i]->name, name) == 0)
            return self->slots[i];
    if (self->n == self->cap) {
        size_t cap = self->cap ? 2 * self->cap : 64;
        slot **s = realloc(self->slots, cap * sizeof *s);
        if (!s)
            return NULL;
        self->slots = s;
        self->cap = cap;
    }
    slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->name = strdup(name);
    s->st = at_fast_state_new();
    if (!s->name || !s->st) {
        free(s->name);
        at_fast_state_free(s->st);
        free(s);
        return NULL;
    }
    s->last_change = NAN;
    s->analysed_step = -1;
    self->slots[self->n++] = s;
    return s;
}

static int shape_count(at_layer_kind kind, int ndim, const int64_t *shape, size_t *count)
{
    if (!shape || ndim != (kind == AT_KIND_CONV2D ? 4 : 2))
        return AT_ERR_ARG;
    size_t c = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0 || shape[d] > (int64_t)1 << 40)
            return AT_ERR_ARG;
        c *= (size_t)shape[d];
    }
    *count = c;
    return AT_OK;
}

int at_sched_submit_owned(at_sched *self, const char *name, int64_t step, float *data,
                          at_layer_kind kind, int ndim, const int64_t *shape)
{
    size_t count = 0;
    if (!self || !name || !data || shape_count(kind, ndim, shape, &count) != AT_OK) {
        free(data);
        return AT_ERR_ARG;
    }
    pthread_mutex_lock(&self->mu);
    slot *s = slot_for(self, name);
    if (!s) {
        pthread_mutex_unlock(&self->mu);
        free(data);
        return AT_ERR_NOMEM;
    }
    if (s->data) {
        free(s->data);
        self->prog.replaced++;
    } else {
        s->submitted = mono();
    }
    s->data = data;
    memset(&s->t, 0, sizeof s->t);
    s->t.data = data;
    s->t.dtype = AT_DTYPE_F32;
    s->t.kind = kind;
    s->t.ndim = ndim;
    memcpy(s->t.shape, shape, (size_t)ndim * sizeof *shape);
    s->step = step;
    if (step > s->newest_step || !s->analysed)
        s->newest_step = step;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    return AT_OK;
}

int at_sched_submit(at_sched *self, const char *name, int64_t step, const at_tensor *t)
{
    size_t count = 0;
    if (!self || !name || !t || !t->data ||
        shape_count(t->kind, t->ndim, t->shape, &count) != AT_OK)
        return AT_ERR_ARG;
    float *data = malloc(count * sizeof(float));
    if (!data)
        return AT_ERR_NOMEM;
    at_convert_to_f32(t->data, t->dtype, count, data);
    return at_sched_submit_owned(self, name, step, data, t->kind, t->ndim, t->shape);
}

at_sched_result *at_sched_poll(at_sched *self)
{
    if (!self)
        return NULL;
    at_sched_result *r = NULL;
    pthread_mutex_lock(&self->mu);
    if (self->rcount) {
        r = self->res[self->rhead];
        self->rhead = (self->rhead + 1) % self->rcap;
        self->rcount--;
        char b;
        if (read(self->pipe[0], &b, 1) < 0) {
            /* No byte: push_result found the pipe full. The fd is only a wake-up. */
        }
    }
    pthread_mutex_unlock(&self->mu);
    return r;
}

int at_sched_fd(const at_sched *self)
{
    return self ? self->pipe[0] : -1;
}

void at_sched_pause(at_sched *self, int paused)
{
    if (!self)
        return;
    pthread_mutex_lock(&self->mu);
    self->paused = paused != 0;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

void at_sched_progress_get(at_sched *self, at_sched_progress *out)
{
    if (!self || !out)
        return;
    const double now = mono();
    pthread_mutex_lock(&self->mu);
    *out = self->prog;
    out->layers = (int64_t)self->n;
    out->waiting = 0;
    out->steps_behind = 0;
    out->seconds_behind = 0.0;
    for (size_t i = 0; i < self->n; i++) {
        const slot *s = self->slots[i];
        if (s->data) {
            out->waiting++;
            out->seconds_behind = fmax(out->seconds_behind, now - s->submitted);
        }
        if (s->analysed && s->newest_step - s->analysed_step > out->steps_behind)
            out->steps_behind = s->newest_step - s->analysed_step;
    }
    pthread_mutex_unlock(&self->mu);
}

/* Queues r (taking it) and wakes the fd. Called with mu held. */
static void push_result(at_sched *self, at_sched_result *r)
{
    if (self->rcount == self->rcap) {
        size_t cap = self->rcap ? 2 * self->rcap : 64;
        at_sched_result **q = malloc(cap * sizeof *q);
        if (!q) {
            at_sched_result_free(r);
            return;
        }
        for (size_t i = 0; i < self->rcount; i++)
            q[i] = self->res[(self->rhead + i) % self->rcap];
        free(self->res);
        self->res = q;
        self->rhead = 0;
        self->rcap = cap;
    }
    self->res[(self->rhead + self->rcount) % self->rcap] = r;
    self->rcount++;
    const char b = 1;
    if (write(self->pipe[1], &b, 1) < 0) {
        /* Pipe full (EAGAIN): the fd is readable anyway, which is all a poller needs. */
    }
}

static int pick_cmp(const void *x, const void *y)
{
    const pick *a = x, *b = y;
    if (a->cls != b->cls)
        return a->cls - b->cls;
    return (a->score < b->score) - (a->score > b->score);
}

/* Analyses one taken snapshot of s (no lock held: only the round runner touches s->st). */
static at_sched_result *analyse(at_sched *self, slot *s, const at_tensor *t, int64_t step,
                                double submitted)
{
    at_sched_result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->layer = strdup(s->name);
    if (!r->layer) {
        free(r);
        return NULL;
    }
    r->step = step;
    r->round = self->prog.round;
    const double c0 = budget_clock(self);
    if (self->o.exact) {
        r->rc = at_htsr_analyze(self->htsr, t, &self->o.htsr, &r->m);
        r->info = (at_fast_info){.mode = AT_MODE_EXACT, .k = r->m.num_evals, .rel_change = NAN};
        if (r->rc)
            snprintf(r->error, sizeof r->error, "%s", at_htsr_last_error(self->htsr));
    } else {
        r->rc =
            at_fast_analyze(self->fast, s->st, t, &self->o.fast, &self->o.htsr, &r->m, &r->info);
        if (r->rc)
            snprintf(r->error, sizeof r->error, "%s", at_fast_last_error(self->fast));
    }
    r->seconds = budget_clock(self) - c0;
    r->lag_s = mono() - submitted;
    return r;
}

static int round_run(at_sched *self)
{
    pthread_mutex_lock(&self->mu);
    size_t k = 0;
    const double now = mono();
    if (self->order_cap < self->n) {
        pick *o = realloc(self->order, self->n * sizeof *o);
        if (!o) {
            pthread_mutex_unlock(&self->mu);
            return 0;
        }
        self->order = o;
        self->order_cap = self->n;
    }
    for (size_t i = 0; i < self->n; i++) {
        const slot *s = self->slots[i];
        if (!s->data)
            continue;
        pick p = {.idx = i};
        if (s->waited >= self->o.max_wait) {
            p.cls = 0;
            p.score = s->waited;
        } else if (!s->analysed) {
            p.cls = 1;
            p.score = now - s->submitted;
        } else {
            p.cls = 2;
            double change = isnan(s->last_change) ? 1.0 : fmax(s->last_change, MIN_CHANGE);
            p.score = (now - s->last_done) * change;
        }
        self->order[k++] = p;
    }
    if (k == 0) {
        pthread_mutex_unlock(&self->mu);
        return 0;
    }
    qsort(self->order, k, sizeof *self->order, pick_cmp);
    self->prog.round++;
    self->prog.round_done = 0;
    self->prog.round_total = (int64_t)k;
    pthread_mutex_unlock(&self->mu);

    const double t0 = budget_clock(self);
    int done = 0;
    size_t next = 0;
    for (; next < k; next++) {
        if (done > 0 && budget_clock(self) - t0 >= self->o.budget_s)
            break;
        pthread_mutex_lock(&self->mu);
        if (self->stop || (self->paused && self->started)) {
            pthread_mutex_unlock(&self->mu);
            break;
        }
        slot *s = self->slots[self->order[next].idx];
        float *data = s->data;
        at_tensor t = s->t;
        const int64_t step = s->step;
        const double submitted = s->submitted;
        s->data = NULL;
        self->prog.busy = 1;
        pthread_mutex_unlock(&self->mu);

        at_sched_result *r = analyse(self, s, &t, step, submitted);
        free(data);

        pthread_mutex_lock(&self->mu);
        self->prog.busy = 0;
        s->waited = 0;
        s->analysed = 1;
        s->last_done = mono();
        s->analysed_step = step;
        if (r) {
            s->last_change = r->info.rel_change;
            self->prog.analysed++;
            push_result(self, r);
        }
        self->prog.round_done++;
        pthread_mutex_unlock(&self->mu);
        done++;
    }
    pthread_mutex_lock(&self->mu);
    for (; next < k; next++) {
        slot *s = self->slots[self->order[next].idx];
        if (s->data)
            s->waited++;
    }
    pthread_mutex_unlock(&self->mu);
    return done;
}

int at_sched_round(at_sched *self)
{
    /* With the worker running, rounds are its job: two runners would share self->fast. */
    return self && !self->started ? round_run(self) : 0;
}

static int anything_waiting(const at_sched *self)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->slots[i]->data)
            return 1;
    return 0;
}

static void *worker_main(void *arg)
{
    at_sched *self = arg;
    pthread_mutex_lock(&self->mu);
    while (!self->stop) {
        if (self->paused || !anything_waiting(self)) {
            pthread_cond_wait(&self->cv, &self->mu);
            continue;
        }
        pthread_mutex_unlock(&self->mu);
        round_run(self);
        pthread_mutex_lock(&self->mu);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}
