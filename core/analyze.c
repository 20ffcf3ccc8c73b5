/* SPDX-License-Identifier: Apache-2.0 */
/* analyze.c -- the one analysis entry point (analyze.h): a layer job dispatched to the exact,
 * fast or LoRA workspace the analyzer owns. */
#include "alphatop/analyze.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "alphatop/lora.h"
#include "fast/fast_internal.h"
#include "htsr_internal.h"
#include "tensor.h"
#include "util.h"

struct at_analyzer {
    at_analyzer_opts o;
    at_htsr *htsr; /* exact mode, and delta jobs with delta_exact; created on first need */
    at_fast *fast; /* fast mode */
    at_lora *lora; /* LoRA jobs; created on the first one */
    float *delta;  /* fast mode: w - base */
    size_t delta_cap;
    float *base; /* fast mode: base widened to float32 */
    size_t base_cap;
    int evals_ok; /* the last run was a successful exact analysis of plain or delta weights */
    char err[256];
};

void at_analyzer_opts_default(at_analyzer_opts *o)
{
    if (!o)
        return;
    o->fast = 0;
    at_htsr_opts_default(&o->htsr);
    at_fast_opts_default(&o->fast_opts);
    o->delta_exact = 0;
    o->keep_evals = 0;
}

size_t at_analyzer_opts_size(void)
{
    return sizeof(at_analyzer_opts);
}

size_t at_metrics_size(void)
{
    return sizeof(at_metrics);
}

at_analyzer *at_analyzer_new(const at_analyzer_opts *o, int *status)
{
    at_analyzer *self = calloc(1, sizeof *self);
    if (!self)
        goto err;
    if (o)
        self->o = *o;
    else
        at_analyzer_opts_default(&self->o);
    if (self->o.fast ? !(self->fast = at_fast_new()) : !(self->htsr = at_htsr_new()))
        goto err;
    if (status)
        *status = AT_OK;
    return self;
err:
    at_analyzer_free(self);
    if (status)
        *status = AT_ERR_NOMEM;
    return NULL;
}

void at_analyzer_free(at_analyzer *self)
{
    if (!self)
        return;
    at_htsr_free(self->htsr);
    at_fast_free(self->fast);
    at_lora_free(self->lora);
    free(self->delta);
    free(self->base);
    free(self);
}

const at_analyzer_opts *at_analyzer_opts_get(const at_analyzer *self)
{
    return self ? &self->o : NULL;
}

const char *at_analyzer_last_error(const at_analyzer *self)
{
    return self ? self->err : "no analyzer";
}

const double *at_analyzer_evals(const at_analyzer *self, size_t *n)
{
    if (self && self->evals_ok)
        return at_htsr_evals(self->htsr, n);
    if (n)
        *n = 0;
    return NULL;
}

/* Copies a workspace's error detail into self's on failure; returns rc. */
static int keep_error(at_analyzer *self, int rc, const char *detail)
{
    if (rc < 0)
        at_fail(self->err, sizeof self->err, rc, "%s", detail);
    return rc;
}

static int run_lora(at_analyzer *self, const at_layer_job *job, at_metrics *out)
{
    if (!self->lora && !(self->lora = at_lora_new()))
        return at_fail(self->err, sizeof self->err, AT_ERR_NOMEM, "out of memory");
    const double scale = job->lora_scale != 0.0 ? job->lora_scale : 1.0;
    const int rc = at_lora_analyze(self->lora, job->w, job->lora_a, scale, &self->o.htsr, out);
    return keep_error(self, rc, at_lora_last_error(self->lora));
}

static int run_exact(at_analyzer *self, const at_layer_job *job, at_metrics *out)
{
    if (!self->htsr && !(self->htsr = at_htsr_new()))
        return at_fail(self->err, sizeof self->err, AT_ERR_NOMEM, "out of memory");
    const int rc = job->base
                       ? at_htsr_analyze_delta(self->htsr, job->w, job->base, &self->o.htsr, out)
                       : at_htsr_analyze(self->htsr, job->w, &self->o.htsr, out);
    self->evals_ok = rc == AT_OK && self->o.keep_evals;
    return keep_error(self, rc, at_htsr_last_error(self->htsr));
}

static int run_fast(at_analyzer *self, const at_layer_job *job, at_metrics *out, at_fast_info *info)
{
    const at_tensor *w = job->w;
    at_tensor d;
    if (job->base) {
        const int rc =
            at_tensor_delta(job->w, job->base, &self->delta, &self->delta_cap, &self->base,
                            &self->base_cap, &d, self->err, sizeof self->err);
        if (rc)
            return rc;
        w = &d;
    }
    at_fast_opts fo = self->o.fast_opts;
    fo.min_evals = self->o.htsr.min_evals;
    const int rc = at_fast_analyze(self->fast, job->state, w, &fo, &self->o.htsr, out, info);
    return keep_error(self, rc, at_fast_last_error(self->fast));
}

/* Whether base pairs with w as at_tensor_delta pairs them: same shape, or the 2-D transpose. */
static int pairs(const at_tensor *w, const at_tensor *base)
{
    if (w->ndim != base->ndim)
        return 0;
    int same = 1;
    for (int d = 0; d < w->ndim; d++)
        same &= w->shape[d] == base->shape[d];
    return same || (w->ndim == 2 && w->shape[0] == base->shape[1] && w->shape[1] == base->shape[0]);
}

int at_analyzer_skips(const at_analyzer_opts *o, const at_layer_job *job, at_metrics *out)
{
    at_shape sh;
    if (!o || !job || !job->w || !out || job->lora_a || (job->base && !pairs(job->w, job->base)) ||
        at_tensor_shape(job->w, &sh, NULL, 0) != AT_OK)
        return 0;
    /* Fast mode analyses conv2d layers, and delta jobs with delta_exact, in exact mode. */
    if (o->fast && !sh.conv && !(job->base && o->delta_exact)) {
        at_metrics_init(out, AT_MODE_GRAM);
        at_fast_opts fo = o->fast_opts;
        fo.min_evals = o->htsr.min_evals;
        return at_fast_size_skip(&sh, &fo, out);
    }
    at_metrics_init(out, AT_MODE_EXACT);
    return at_htsr_size_skip(&sh, &o->htsr, out);
}

int at_analyzer_run(at_analyzer *self, const at_layer_job *job, at_metrics *out, at_fast_info *info)
{
    if (!self)
        return AT_ERR_ARG;
    self->evals_ok = 0;
    if (!job || !job->w || !out)
        return at_fail(self->err, sizeof self->err, AT_ERR_ARG, "no job, weights or output");
    if (job->base && job->lora_a)
        return at_fail(self->err, sizeof self->err, AT_ERR_ARG,
                       "a job is plain, delta or LoRA, not both delta and LoRA");
    at_fast_info id;
    if (!info)
        info = &id;
    const int fast = self->o.fast && !job->lora_a && !(job->base && self->o.delta_exact);
    at_layer_job plain;
    if (job->base && at_analyzer_skips(&self->o, job, out)) {
        /* Skipped for its size: the update is not formed, the weights' shape tells the rest. */
        plain = *job;
        plain.base = NULL;
        job = &plain;
    }
    if (fast)
        return run_fast(self, job, out, info);
    const int rc = job->lora_a ? run_lora(self, job, out) : run_exact(self, job, out);
    *info = (at_fast_info){.mode = AT_MODE_EXACT, .k = rc ? 0 : out->num_evals, .rel_change = NAN};
    return rc;
}
