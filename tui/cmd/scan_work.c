/* SPDX-License-Identifier: Apache-2.0 */
/* scan_work.c -- scan's tasks run on a pool of worker threads, and their byte form (see
 * scan_work.h). */
#include "scan_work.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alphatop/lora.h"
#include "alphatop/pool.h"

/* Memory a runner lets its running tasks use by default, per thread (bytes): their mapped layers
 * and analysis workspaces, as scan_task_memory estimates them. */
#define MEM_PER_THREAD ((double)(1u << 30))

struct scan_runner {
    at_pool *pool;
    int threads;
    double sleep_ns_per_weight; /* the test hook (scan_work.h); 0: off */
    at_analyzer_opts ao;
    double budget, used;  /* bytes the running tasks may use, and use */
    int running;          /* tasks handed to the pool and not yet taken back */
    scan_task *queue;     /* tasks in submission order: queue[head ..] waits for a thread and */
    unsigned char *taken; /* memory, except those taken out of order */
    size_t head, nqueue, queue_cap, waiting;
    int64_t *blocked; /* groups passed over in the current feed */
    size_t nblocked;
};

/* What a pool job carries: the task, and what was opened for it on the worker thread. */
typedef struct work {
    const scan_runner *runner;
    scan_task task;
    double memory; /* scan_task_memory's estimate */
    at_ckpt_view *view[3];
    float *merged;
    at_tensor merged_t;
    int prepared;
    char error[640]; /* why prepare failed */
} work;

double scan_task_cost(scan_task *t)
{
    double cost = 0.0;
    const at_tensor *w = &t->t[0].shape;
    if (t->kind == SCAN_LORA) {
        const double out = (double)t->t[0].shape.shape[0], r = (double)t->t[0].shape.shape[1],
                     in = (double)t->t[1].shape.shape[1];
        cost = (out + in) * r * r + r * r * r;
    } else {
        const double slices = w->ndim == 4 ? (double)(w->shape[2] * w->shape[3]) : 1.0;
        const double a = (double)w->shape[0], b = (double)w->shape[1];
        const double lo = a < b ? a : b, hi = a < b ? b : a;
        cost = slices * (hi * lo * lo + lo * lo * lo);
    }
    return t->cost = cost;
}

double scan_task_memory(const scan_task *t, const at_analyzer_opts *ao)
{
    static const double stored[] = {[AT_CKPT_STORED_F32] = 4,
                                    [AT_CKPT_STORED_F16] = 2,
                                    [AT_CKPT_STORED_BF16] = 2,
                                    [AT_CKPT_STORED_F64] = 8};
    double bytes = 0.0, numel[3];
    for (int i = 0; i < t->n; i++) {
        numel[i] = 1.0;
        for (int d = 0; d < t->t[i].shape.ndim; d++)
            numel[i] *= (double)t->t[i].shape.shape[d];
        /* Every page of the stored layer is read; a copy is made of what the core cannot read
         * as stored (4 bytes an element at most). */
        bytes += numel[i] * stored[t->t[i].loc.stored] +
                 (t->t[i].loc.stored != AT_CKPT_STORED_F32 ? 4 * numel[i] : 0);
    }
    if (t->kind == SCAN_LORA)
        return bytes;
    const at_tensor *w = &t->t[0].shape;
    const double a = (double)w->shape[0], b = (double)w->shape[1], p = a < b ? a : b;
    const int fast = ao->fast && w->ndim == 2 && !(t->kind == SCAN_DELTA && ao->delta_exact);
    if (t->kind != SCAN_PLAIN)
        bytes += 8 * numel[0]; /* the merged weight, or the update and its widened base */
    if (fast && t->t[0].loc.stored != AT_CKPT_STORED_F32 && t->kind == SCAN_PLAIN &&
        ao->fast_opts.panel_bytes && 4 * numel[0] > (double)ao->fast_opts.panel_bytes)
        bytes -= 4 * numel[0] - (double)ao->fast_opts.panel_bytes / 4; /* read in panels */
    /* The Gram matrix and its reduction (fast: float32), or the float64 slice (exact). */
    return bytes + (fast ? 12 * p * p : 8 * a * b + 24 * p * p);
}

/* The order of scan_task_order: a group's cost is its first task's. */
typedef struct rank {
    double cost;
    int64_t group, id;
    size_t idx;
} rank;

static int by_rank(const void *a, const void *b)
{
    const rank *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost > y->cost ? -1 : 1;
    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int by_id(const void *a, const void *b)
{
    const rank *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

int scan_task_order(const scan_task *tasks, size_t n, size_t *order)
{
    rank *r = malloc((n ? n : 1) * sizeof *r), *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!r || !ids) {
        free(r);
        free(ids);
        return AT_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = (rank){tasks[i].cost, tasks[i].group, tasks[i].id, i};
    qsort(ids, n, sizeof *ids, by_id);
    for (size_t i = 0; i < n; i++) {
        const rank key = {.id = tasks[i].group};
        const rank *first = bsearch(&key, ids, n, sizeof *ids, by_id);
        r[i] = (rank){first ? first->cost : tasks[i].cost, tasks[i].group, tasks[i].id, i};
    }
    qsort(r, n, sizeof *r, by_rank);
    for (size_t i = 0; i < n; i++)
        order[i] = r[i].idx;
    free(r);
    free(ids);
    return AT_OK;
}

void scan_result_clear(scan_result *r)
{
    if (!r)
        return;
    free(r->evals);
    memset(r, 0, sizeof *r);
}

int scan_task_portable(const scan_task *t)
{
    for (int i = 0; i < t->n; i++)
        if (!t->t[i].loc.file)
            return 0;
    return 1;
}

int scan_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    return 1;
}

/* ---- running a task on a worker thread -------------------------------------------------- */

static void work_free(void *user)
{
    work *w = user;
    for (int i = 0; i < 3; i++)
        at_ckpt_view_close(w->view[i]);
    free(w->merged);
    free(w);
}

static int prepare_fail(work *w, int rc, const char *fmt, const char *detail)
{
    snprintf(w->error, sizeof w->error, fmt, detail);
    return rc;
}

static void sleep_for_test(const scan_task *t, double ns_per_weight)
{
    double weights = 0.0;
    for (int i = 0; i < t->n; i++) {
        double n = 1.0;
        for (int d = 0; d < t->t[i].shape.ndim; d++)
            n *= (double)t->t[i].shape.shape[d];
        weights += n;
    }
    const double ns = weights * ns_per_weight;
    struct timespec ts = {(time_t)(ns / 1e9), (long)(ns - 1e9 * (double)(time_t)(ns / 1e9))};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The pool's prepare hook (worker thread): opens the task's views, fails an all-zero plain
 * layer before anything is converted, reads (or merges) the weights into job->in. */
static int prepare(at_pool_job *job)
{
    work *w = job->user;
    const scan_task *t = &w->task;
    if (w->runner->sleep_ns_per_weight > 0)
        sleep_for_test(t, w->runner->sleep_ns_per_weight);
    const at_tensor *in[3] = {NULL, NULL, NULL};
    for (int i = 0; i < t->n; i++) {
        char err[sizeof w->error - 32];
        int rc;
        w->view[i] = at_ckpt_view_open(&t->t[i].shape, &t->t[i].loc, &rc, err, sizeof err);
        if (!w->view[i])
            return prepare_fail(w, rc, "cannot read the weights: %s", err);
        if (t->kind == SCAN_PLAIN && at_ckpt_view_is_zero(w->view[i]))
            return prepare_fail(w, AT_ERR_EMPTY, "cannot analyse: %s", "all weights are zero");
        if (!(in[i] = at_ckpt_view_tensor(w->view[i])))
            return prepare_fail(w, AT_ERR_NOMEM, "cannot read the weights: %s", "out of memory");
    }
    switch (t->kind) {
    case SCAN_PLAIN:
        job->in = (at_layer_job){.w = in[0]};
        break;
    case SCAN_DELTA:
        job->in = (at_layer_job){.w = in[0], .base = in[1]};
        break;
    case SCAN_LORA:
        job->in = (at_layer_job){.w = in[0], .lora_a = in[1], .lora_scale = t->lora_scale};
        break;
    case SCAN_MERGE: {
        const size_t count = (size_t)(in[0]->shape[0] * in[0]->shape[1]);
        at_lora *lora = at_lora_new();
        if (!lora || !(w->merged = malloc(count * sizeof *w->merged))) {
            at_lora_free(lora);
            return prepare_fail(w, AT_ERR_NOMEM, "--merge: %s", "out of memory");
        }
        const int rc = at_lora_merge(lora, in[0], in[1], in[2], t->lora_scale, w->merged);
        if (rc < 0) {
            prepare_fail(w, rc, "--merge: %s", at_lora_last_error(lora));
            at_lora_free(lora);
            return rc;
        }
        at_lora_free(lora);
        w->merged_t = *in[0];
        w->merged_t.data = w->merged;
        w->merged_t.dtype = AT_DTYPE_F32;
        job->in = (at_layer_job){.w = &w->merged_t};
        break;
    }
    }
    w->prepared = 1;
    return AT_OK;
}

scan_runner *scan_runner_new(const scan_setup *setup, int *status)
{
    int rc = AT_ERR_NOMEM;
    scan_runner *self = calloc(1, sizeof *self);
    if (!self)
        goto err;
    const int threads = setup->threads > 0 ? setup->threads : scan_cpus();
    at_pool_opts po;
    at_pool_opts_default(&po);
    po.threads = threads;
    po.analyze = setup->ao;
    if (!(self->pool = at_pool_new(&po, &rc)))
        goto err;
    self->threads = threads;
    self->ao = setup->ao;
    self->budget = setup->max_memory;
    if (!(self->budget > 0)) {
        const double avail = (double)sysconf(_SC_AVPHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
        self->budget = threads * MEM_PER_THREAD;
        if (avail > 0 && self->budget > avail / 2)
            self->budget = avail / 2;
    }
    const char *hook = getenv("ALPHATOP_TEST_SLEEP_NS_PER_WEIGHT");
    self->sleep_ns_per_weight = hook ? strtod(hook, NULL) : 0.0;
    if (status)
        *status = AT_OK;
    return self;
err:
    scan_runner_free(self);
    if (status)
        *status = rc;
    return NULL;
}

void scan_runner_free(scan_runner *self)
{
    if (!self)
        return;
    at_pool_free(self->pool);
    free(self->queue);
    free(self->taken);
    free(self->blocked);
    free(self);
}

/* Hands t to the pool. */
static int run_task(scan_runner *self, const scan_task *t, double memory)
{
    int rc;
    at_pool_job *job = at_pool_job_new(t->key, t->id, &rc);
    work *w = job ? calloc(1, sizeof *w) : NULL;
    if (!w) {
        at_pool_job_free(job);
        return AT_ERR_NOMEM;
    }
    w->runner = self;
    w->task = *t;
    w->memory = memory;
    job->user = w;
    job->user_free = work_free;
    job->prepare = prepare;
    job->last = t->last;
    if ((rc = at_pool_submit(self->pool, job)) < 0) {
        at_pool_job_free(job);
        return rc;
    }
    self->running++;
    self->used += memory;
    return AT_OK;
}

static int blocked(const scan_runner *self, int64_t group)
{
    for (size_t i = 0; i < self->nblocked; i++)
        if (self->blocked[i] == group)
            return 1;
    return 0;
}

/* Hands waiting tasks to the pool while a thread is free and their memory fits (one task runs
 * whatever its size): the first that fit, in order, except that a group's tasks keep theirs. */
static int feed(scan_runner *self)
{
    self->nblocked = 0;
    for (size_t i = self->head; i < self->nqueue && self->running < self->threads; i++) {
        const scan_task *t = &self->queue[i];
        if (self->taken[i] || blocked(self, t->group))
            continue;
        const double memory = scan_task_memory(t, &self->ao);
        if (self->running == 0 || self->used + memory <= self->budget) {
            const int rc = run_task(self, t, memory);
            if (rc < 0)
                return rc;
            self->taken[i] = 1;
            self->waiting--;
        } else {
            self->blocked[self->nblocked++] = t->group;
        }
    }
    while (self->head < self->nqueue && self->taken[self->head])
        self->head++;
    /* Reclaim the taken front now and then: each task is moved a constant number of times. */
    if (self->head > 64 && self->head > self->nqueue / 2) {
        self->nqueue -= self->head;
        memmove(self->queue, self->queue + self->head, self->nqueue * sizeof *self->queue);
        memmove(self->taken, self->taken + self->head, self->nqueue);
        self->head = 0;
    }
    return AT_OK;
}

int scan_runner_submit(scan_runner *self, const scan_task *t)
{
    if (!self || !t || t->n < 1 || t->n > 3)
        return AT_ERR_ARG;
    if (self->nqueue == self->queue_cap) {
        const size_t cap = self->queue_cap ? 2 * self->queue_cap : 64;
        scan_task *q = realloc(self->queue, cap * sizeof *q);
        if (q)
            self->queue = q;
        unsigned char *k = q ? realloc(self->taken, cap) : NULL;
        if (k)
            self->taken = k;
        int64_t *b = k ? realloc(self->blocked, cap * sizeof *b) : NULL;
        if (!b)
            return AT_ERR_NOMEM;
        self->blocked = b;
        self->queue_cap = cap;
    }
    self->taken[self->nqueue] = 0;
    self->queue[self->nqueue++] = *t;
    self->waiting++;
    return feed(self);
}

int scan_runner_next(scan_runner *self, scan_result *out)
{
    at_pool_job *job = at_pool_poll(self->pool);
    if (!job)
        return 0;
    const work *w = job->user;
    self->running--;
    self->used -= w->memory;
    memset(out, 0, sizeof *out);
    out->id = w->task.id;
    out->rc = job->rc;
    out->prepared = w->prepared;
    out->m = job->m;
    out->seconds = job->seconds;
    if (job->rc < 0 && w->prepared)
        snprintf(out->error, sizeof out->error, "cannot analyse: %s", job->error);
    else if (job->rc < 0)
        snprintf(out->error, sizeof out->error, "%s", w->error);
    out->evals = job->evals;
    out->num_evals = job->num_evals;
    job->evals = NULL;
    at_pool_job_free(job);
    feed(self);
    return 1;
}

int scan_runner_wait(scan_runner *self, int timeout_ms)
{
    struct pollfd pfd = {.fd = at_pool_fd(self->pool), .events = POLLIN};
    return poll(&pfd, 1, timeout_ms) == 1;
}

int64_t scan_runner_pending(scan_runner *self)
{
    return (int64_t)self->waiting + self->running;
}

int scan_runner_threads(const scan_runner *self)
{
    return self->threads;
}

static int local_start(void *ctx, const scan_task *tasks, size_t n)
{
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    int rc = order ? scan_task_order(tasks, n, order) : AT_ERR_NOMEM;
    for (size_t i = 0; rc == AT_OK && i < n; i++)
        rc = scan_runner_submit(ctx, &tasks[order[i]]);
    free(order);
    return rc;
}

static int local_wait(void *ctx, int timeout_ms, scan_result *out)
{
    return scan_runner_next(ctx, out) ||
           (scan_runner_wait(ctx, timeout_ms) && scan_runner_next(ctx, out));
}

scan_exec scan_exec_local(scan_runner *r)
{
    return (scan_exec){r, local_start, local_wait};
}

/* ---- byte form ---------------------------------------------------------------------------- */

void scan_buf_put(scan_buf *b, const void *p, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* A string: its length (uint32, UINT32_MAX for NULL) and bytes. */
static void put_str(scan_buf *b, const char *s)
{
    const uint32_t len = s ? (uint32_t)strlen(s) : UINT32_MAX;
    scan_buf_put(b, &len, sizeof len);
    if (s)
        scan_buf_put(b, s, len);
}

int scan_buf_get(const unsigned char *p, size_t n, size_t *pos, void *out, size_t k)
{
    if (*pos > n || n - *pos < k)
        return AT_ERR_FORMAT;
    memcpy(out, p + *pos, k);
    *pos += k;
    return AT_OK;
}

/* A string into strings[*used..] (NUL-terminated); *s points at it, or is NULL. */
static int get_str(const unsigned char *p, size_t n, size_t *pos, const char **s, char *strings,
                   size_t cap, size_t *used)
{
    uint32_t len;
    if (scan_buf_get(p, n, pos, &len, sizeof len) < 0)
        return AT_ERR_FORMAT;
    if (len == UINT32_MAX) {
        *s = NULL;
        return AT_OK;
    }
    if (*pos > n || n - *pos < len || cap - *used <= len)
        return AT_ERR_FORMAT;
    memcpy(strings + *used, p + *pos, len);
    strings[*used + len] = '\0';
    *s = strings + *used;
    *used += (size_t)len + 1;
    *pos += len;
    return AT_OK;
}

#define PUT(b, v) scan_buf_put(b, &(v), sizeof(v))
#define GET(v)                                                                                     \
    do {                                                                                           \
        if (scan_buf_get(p, n, pos, &(v), sizeof(v)) < 0)                                          \
            return AT_ERR_FORMAT;                                                                  \
    } while (0)

void scan_buf_free(scan_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void scan_task_encode(scan_buf *b, const scan_task *t)
{
    PUT(b, t->id);
    PUT(b, t->kind);
    PUT(b, t->n);
    PUT(b, t->lora_scale);
    PUT(b, t->last);
    PUT(b, t->group);
    PUT(b, t->cost);
    put_str(b, t->key);
    for (int i = 0; i < t->n; i++) {
        const scan_tensor *s = &t->t[i];
        PUT(b, s->shape.dtype);
        PUT(b, s->shape.kind);
        PUT(b, s->shape.ndim);
        PUT(b, s->shape.shape);
        put_str(b, s->loc.file);
        PUT(b, s->loc.offset);
        PUT(b, s->loc.stored);
        PUT(b, s->loc.stride);
    }
}

int scan_task_decode(const unsigned char *p, size_t n, size_t *pos, scan_task *t, char *strings,
                     size_t strings_cap)
{
    size_t used = 0;
    const char *key;
    memset(t, 0, sizeof *t);
    GET(t->id);
    GET(t->kind);
    GET(t->n);
    GET(t->lora_scale);
    GET(t->last);
    GET(t->group);
    GET(t->cost);
    if (t->n < 1 || t->n > 3 || t->kind < SCAN_PLAIN || t->kind > SCAN_MERGE ||
        get_str(p, n, pos, &key, strings, strings_cap, &used) < 0 || !key ||
        strlen(key) >= sizeof t->key)
        return AT_ERR_FORMAT;
    snprintf(t->key, sizeof t->key, "%s", key);
    for (int i = 0; i < t->n; i++) {
        scan_tensor *s = &t->t[i];
        GET(s->shape.dtype);
        GET(s->shape.kind);
        GET(s->shape.ndim);
        GET(s->shape.shape);
        if (get_str(p, n, pos, &s->loc.file, strings, strings_cap, &used) < 0)
            return AT_ERR_FORMAT;
        GET(s->loc.offset);
        GET(s->loc.stored);
        GET(s->loc.stride);
    }
    return AT_OK;
}

void scan_result_encode(scan_buf *b, const scan_result *r)
{
    PUT(b, r->id);
    PUT(b, r->rc);
    PUT(b, r->prepared);
    PUT(b, r->seconds);
    put_str(b, r->error);
    PUT(b, r->m);
    const uint64_t ne = r->evals ? r->num_evals : 0;
    PUT(b, ne);
    scan_buf_put(b, r->evals, ne * sizeof *r->evals);
}

int scan_result_decode(const unsigned char *p, size_t n, size_t *pos, scan_result *r)
{
    memset(r, 0, sizeof *r);
    const char *error;
    size_t used = 0;
    uint64_t ne;
    GET(r->id);
    GET(r->rc);
    GET(r->prepared);
    GET(r->seconds);
    if (get_str(p, n, pos, &error, r->error, sizeof r->error, &used) < 0)
        return AT_ERR_FORMAT;
    if (!error)
        r->error[0] = '\0';
    GET(r->m);
    GET(ne);
    if (ne > (n - *pos) / sizeof(double))
        return AT_ERR_FORMAT;
    if (ne) {
        if (!(r->evals = malloc(ne * sizeof *r->evals)))
            return AT_ERR_NOMEM;
        r->num_evals = ne;
        if (scan_buf_get(p, n, pos, r->evals, ne * sizeof *r->evals) < 0)
            return AT_ERR_FORMAT;
    }
    return AT_OK;
}

void scan_setup_encode(scan_buf *b, const scan_setup *s)
{
    PUT(b, s->ao);
    PUT(b, s->threads);
    PUT(b, s->max_memory);
}

int scan_setup_decode(const unsigned char *p, size_t n, size_t *pos, scan_setup *s)
{
    GET(s->ao);
    GET(s->threads);
    GET(s->max_memory);
    return AT_OK;
}
