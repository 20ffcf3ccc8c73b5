/* htsr_internal.h -- exact-mode workspace and helpers shared inside core only. */
#ifndef ALPHATOP_HTSR_INTERNAL_H
#define ALPHATOP_HTSR_INTERNAL_H

#include <lapacke.h>

#include "alphatop/htsr.h"

/* A weight tensor as matrices: slices of rows x cols (conv2d: out x in per kernel position). */
typedef struct at_shape {
    int64_t rows, cols, slices;
    size_t count; /* elements in the tensor */
    int conv;
} at_shape;

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

/* Sets self's last error and returns status. */
int at_htsr_fail(at_htsr *self, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Grows *buf to hold count elements of size bytes (contents kept). AT_OK or AT_ERR_NOMEM. */
int at_htsr_grow(void **buf, size_t *cap, size_t count, size_t size);

/* Sorts x[0..n-1] ascending. */
void at_sort_doubles(double *x, size_t n);

/* Validates t, fills *sh and points *w at float32 weights (t's data or self->f32). Errors:
 * AT_ERR_ARG, AT_ERR_UNSUPPORTED, AT_ERR_EMPTY, AT_ERR_NOMEM, AT_ERR_NONFINITE. */
int at_htsr_load(at_htsr *self, const at_tensor *t, at_shape *sh, const float **w);

/* Fills the power-law fit, warning, scale metrics and (when o asks) detX of *out from the
 * ascending eigenvalues x[0..n-1]; out's shape and rank columns are set by the caller. AT_OK or
 * the fit's error. */
int at_metrics_fit(const double *x, size_t n, const at_htsr_opts *o, at_metrics *out);

#endif
