/* SPDX-License-Identifier: Apache-2.0 */
/* worker.c -- the monitor's analysis worker: at_job in and out of core's worker pool. */
#include "worker.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct at_worker {
    at_pool *pool;                  /* NULL with a remote service */
    const at_worker_remote *remote; /* NULL: the pool analyses */
    int fast;
    _Atomic int64_t held; /* bytes of weights the jobs hold */
};

size_t at_job_tensor_bytes(const at_tensor *t)
{
    size_t n = t->dtype == AT_DTYPE_F32 ? 4 : 2;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

at_job *at_job_new(const void *src, at_dtype dtype, at_layer_kind kind, int ndim,
                   const int64_t *shape)
{
    if (ndim != 2 && ndim != 4)
        return NULL;
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0)
            return NULL;
    at_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->t.dtype = dtype;
    job->t.kind = kind;
    job->t.ndim = ndim;
    memcpy(job->t.shape, shape, (size_t)ndim * sizeof shape[0]);
    job->bytes = at_job_tensor_bytes(&job->t);
    if (!(job->data = malloc(job->bytes))) {
        free(job);
        return NULL;
    }
    memcpy(job->data, src, job->bytes);
    job->t.data = job->data;
    job->max_abs = NAN;
    return job;
}

void at_job_release(at_job *job)
{
    if (job->held && (job->data || job->data2))
        atomic_fetch_sub(job->held, (int64_t)job->bytes);
    free(job->data);
    free(job->data2);
    job->data = job->data2 = NULL;
    job->t.data = job->lora_a.data = NULL;
}

void at_job_free(at_job *job)
{
    if (!job)
        return;
    at_job_release(job);
    free(job->evals);
    free(job);
}

/* The largest |w| of t (NAN if any is NaN), widened in blocks. */
static double max_abs(const at_tensor *t)
{
    const size_t esize = t->dtype == AT_DTYPE_F32 ? 4 : 2;
    const size_t n = at_job_tensor_bytes(t) / esize;
    float block[1024];
    double mx = 0;
    for (size_t i = 0; i < n; i += 1024) {
        const size_t k = n - i < 1024 ? n - i : 1024;
        at_convert_to_f32((const char *)t->data + i * esize, t->dtype, k, block);
        for (size_t j = 0; j < k; j++) {
            double a = fabs((double)block[j]);
            mx = a > mx || a != a ? a : mx;
        }
    }
    return mx;
}

/* The pool's done hook, on the worker thread: what exact mode's phase tracker needs from the
 * weights, then the weights go. */
static void job_done_exact(at_pool_job *pj)
{
    at_job *job = pj->user;
    job->max_abs = max_abs(&job->t);
    at_job_release(job);
}

static void job_done_fast(at_pool_job *pj)
{
    at_job_release(pj->user);
}

void at_worker_opts_default(at_worker_opts *o)
{
    o->fast = 0;
    o->threads = 0;
    o->traps = 1;
    o->detx = 1;
    o->seed = 0x616c706861746f70ULL;
    o->state_budget = (size_t)256 << 20;
    o->remote = NULL;
}

/* The cores online, at least 1. */
static int cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

at_worker *at_worker_new(const at_worker_opts *opts, int *status)
{
    at_worker_opts wo;
    if (!opts)
        at_worker_opts_default(&wo);
    const at_worker_opts *w = opts ? opts : &wo;
    at_worker *self = calloc(1, sizeof *self);
    if (!self) {
        *status = AT_ERR_NOMEM;
        return NULL;
    }
    atomic_init(&self->held, 0);
    self->fast = w->fast;
    if (w->remote) {
        self->remote = w->remote;
        *status = w->remote->start(w->remote->ctx, w);
        if (*status < 0) {
            free(self);
            return NULL;
        }
        return self;
    }
    at_pool_opts po;
    at_pool_opts_default(&po);
    po.threads = w->threads > 0 ? w->threads : cores();
    if (po.threads > AT_POOL_MAX_THREADS)
        po.threads = AT_POOL_MAX_THREADS;
    po.blas_threads = 1;
    po.policy = w->fast ? AT_POOL_LATEST : AT_POOL_FIFO;
    po.state_budget = w->state_budget;
    po.analyze.fast = w->fast;
    po.analyze.keep_evals = !w->fast;
    po.analyze.htsr.traps = w->traps;
    po.analyze.htsr.detx = w->detx;
    po.analyze.htsr.seed = w->seed;
    self->pool = at_pool_new(&po, status);
    if (!self->pool) {
        free(self);
        return NULL;
    }
    return self;
}

static void job_free(void *job)
{
    at_job_free(job);
}

/* The pool knows layers by key: run, layer and space make it (each space has its own fast
 * state). The job rides along as the payload and comes back with the result. */
int at_worker_submit(at_worker *self, at_job *job)
{
    if (!job)
        return AT_ERR_ARG;
    if (self->remote) {
        job->held = &self->held;
        atomic_fetch_add(&self->held, (int64_t)job->bytes);
        const int rc = self->remote->submit(self->remote->ctx, job);
        if (rc != AT_OK) {
            atomic_fetch_sub(&self->held, (int64_t)job->bytes);
            job->held = NULL;
        }
        return rc;
    }
    char key[64];
    snprintf(key, sizeof key, "%d/%d/%d", job->run, job->layer, (int)job->space);
    int rc = AT_OK;
    at_pool_job *pj = at_pool_job_new(key, job->weights_step, &rc);
    if (!pj)
        return rc;
    pj->tag = job->run;
    pj->in.w = &job->t;
    pj->in.base = job->base.data ? &job->base : NULL;
    pj->in.lora_a = job->lora_a.data ? &job->lora_a : NULL;
    pj->user = job;
    pj->user_free = job_free;
    pj->done = self->fast ? job_done_fast : job_done_exact;
    job->held = &self->held;
    atomic_fetch_add(&self->held, (int64_t)job->bytes);
    rc = at_pool_submit(self->pool, pj);
    if (rc != AT_OK) {
        atomic_fetch_sub(&self->held, (int64_t)job->bytes);
        job->held = NULL;
        pj->user = NULL; /* not taken: the caller keeps job */
        at_pool_job_free(pj);
    }
    return rc;
}

at_job *at_worker_poll(at_worker *self)
{
    if (self->remote)
        return self->remote->poll(self->remote->ctx);
    at_pool_job *pj = at_pool_poll(self->pool);
    if (!pj)
        return NULL;
    at_job *job = pj->user;
    pj->user = NULL;
    job->rc = pj->rc;
    memcpy(job->error, pj->error, sizeof job->error);
    job->m = pj->m;
    job->evals = pj->evals;
    job->num_evals = pj->num_evals;
    pj->evals = NULL;
    at_pool_job_free(pj);
    return job;
}

int at_worker_fd(const at_worker *self)
{
    if (self->remote)
        return self->remote->fd(self->remote->ctx);
    return at_pool_fd(self->pool);
}

int at_worker_pending(at_worker *self)
{
    if (self->remote)
        return self->remote->pending(self->remote->ctx);
    return (int)at_pool_pending(self->pool);
}

int64_t at_worker_held_bytes(const at_worker *self)
{
    return atomic_load(&((at_worker *)self)->held);
}

void at_worker_free(at_worker *self)
{
    if (!self)
        return;
    if (self->remote)
        self->remote->stop(self->remote->ctx);
    at_pool_free(self->pool);
    free(self);
}
