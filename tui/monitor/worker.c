/* SPDX-License-Identifier: Apache-2.0 */
/* worker.c -- the monitor's analysis worker: at_job in and out of core's worker pool. */
#include "worker.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/pool.h"

struct at_worker {
    at_pool *pool;
    int fast;
};

at_job *at_job_new(const void *src, at_dtype dtype, at_layer_kind kind, int ndim,
                   const int64_t *shape)
{
    if (ndim != 2 && ndim != 4)
        return NULL;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return NULL;
        n *= (size_t)shape[i];
    }
    at_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->data = malloc(n * sizeof(float));
    if (!job->data) {
        free(job);
        return NULL;
    }
    at_convert_to_f32(src, dtype, n, job->data);
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)job->data[i]);
        mx = a > mx || a != a ? a : mx;
    }
    job->max_abs = mx;
    job->t.data = job->data;
    job->t.dtype = AT_DTYPE_F32;
    job->t.kind = kind;
    job->t.ndim = ndim;
    memcpy(job->t.shape, shape, (size_t)ndim * sizeof shape[0]);
    return job;
}

void at_job_free(at_job *job)
{
    if (!job)
        return;
    free(job->data);
    free(job->data2);
    free(job->evals);
    free(job);
}

void at_worker_opts_default(at_worker_opts *o)
{
    o->fast = 0;
    o->threads = 1;
    o->traps = 1;
    o->detx = 1;
    o->seed = 0x616c706861746f70ULL;
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
    at_pool_opts po;
    at_pool_opts_default(&po);
    po.threads = 1;
    po.blas_threads = w->threads;
    po.policy = w->fast ? AT_POOL_LATEST : AT_POOL_FIFO;
    po.analyze.fast = w->fast;
    po.analyze.keep_evals = !w->fast;
    po.analyze.htsr.traps = w->traps;
    po.analyze.htsr.detx = w->detx;
    po.analyze.htsr.seed = w->seed;
    self->fast = w->fast;
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
    char key[64];
    snprintf(key, sizeof key, "%d/%d/%d", job->run, job->layer, (int)job->space);
    int rc = AT_OK;
    at_pool_job *pj = at_pool_job_new(key, job->step, &rc);
    if (!pj)
        return rc;
    pj->tag = job->run;
    pj->in.w = &job->t;
    pj->in.base = job->base.data ? &job->base : NULL;
    pj->in.lora_a = job->lora_a.data ? &job->lora_a : NULL;
    pj->user = job;
    pj->user_free = job_free;
    rc = at_pool_submit(self->pool, pj);
    if (rc != AT_OK) {
        pj->user = NULL; /* not taken: the caller keeps job */
        at_pool_job_free(pj);
    }
    return rc;
}

at_job *at_worker_poll(at_worker *self)
{
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
    /* Fast results have never carried the weights' largest |w|: the phase tracker's growth
     * trend stays an exact-mode metric. */
    if (self->fast)
        job->max_abs = NAN;
    at_pool_job_free(pj);
    return job;
}

int at_worker_fd(const at_worker *self)
{
    return at_pool_fd(self->pool);
}

int at_worker_cancel(at_worker *self, int run, int64_t step)
{
    /* Fast mode: a newer snapshot of a layer replaces its waiting one already. */
    return self->fast ? 0 : at_pool_cancel(self->pool, run, step);
}

int at_worker_pending(at_worker *self)
{
    return (int)at_pool_pending(self->pool);
}

void at_worker_free(at_worker *self)
{
    if (!self)
        return;
    at_pool_free(self->pool);
    free(self);
}
