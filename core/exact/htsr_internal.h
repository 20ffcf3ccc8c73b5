/* SPDX-License-Identifier: Apache-2.0 */
/* htsr_internal.h -- exact-mode workspace and helpers shared inside core only. */
#ifndef ALPHATOP_HTSR_INTERNAL_H
#define ALPHATOP_HTSR_INTERNAL_H

#include <lapacke.h>

#include "alphatop/htsr.h"
#include "tensor.h"
#include "util.h"

/* Buffers grow to the largest layer seen and are reused; *_cap counts elements. */
struct at_htsr {
    float *f32; /* f16/bf16 input widened */
    size_t f32_cap;
    float *delta; /* model - base of at_htsr_analyze_delta */
    size_t delta_cap;
    double *a; /* one column-major float64 matrix */
    size_t a_cap;
    double *sv; /* singular values of one slice, descending */
    size_t sv_cap;
    double *evals; /* pooled ascending ESD of the last analysis */
    size_t evals_cap, n_evals;
    struct at_gram *gram64; /* exact spectra via the Gram matrix (gram.h) */
    float *shuf;            /* traps: centred, shuffled matrix */
    size_t shuf_cap;
    float *gram; /* traps: Gram matrix and eigen workspace */
    size_t gram_cap;
    float *twork;
    size_t twork_cap;
    lapack_int *tiwork;
    size_t tiwork_cap;
    char err[256];
};

/* Sets self's last error (printf format) and returns status. */
#define at_htsr_fail(self, status, ...)                                                            \
    at_fail((self)->err, sizeof(self)->err, (status), __VA_ARGS__)

/* at_tensor_load into self's buffer and last error: validates t, fills *sh and points *w at
 * float32 weights (t's data or self->f32). Errors as at_tensor_load. */
static inline int at_htsr_load(at_htsr *self, const at_tensor *t, at_shape *sh, const float **w)
{
    return at_tensor_load(t, &self->f32, &self->f32_cap, sh, w, self->err, sizeof self->err);
}

/* Fills out's shape columns (N, M, rf, Q, num_evals as the reference reports them) for a layer
 * of shape sh and returns 1 when exact mode skips it for its size (num_evals outside
 * [o->min_evals, o->max_evals], or its long side above o->max_N), else 0. */
int at_htsr_size_skip(const at_shape *sh, const at_htsr_opts *o, at_metrics *out);

/* Fills the power-law fit, warning, scale metrics and (when o asks) detX of *out from the
 * ascending eigenvalues x[0..n-1]; out's shape and rank columns are set by the caller. AT_OK or
 * the fit's error. */
int at_metrics_fit(const double *x, size_t n, const at_htsr_opts *o, at_metrics *out);

#endif
