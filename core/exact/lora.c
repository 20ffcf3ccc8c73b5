/* SPDX-License-Identifier: Apache-2.0 */
/* lora.c -- spectrum of a LoRA product B A from the r x r core of two QR factorizations. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "alphatop/lora.h"
#include "htsr_internal.h"

struct at_lora {
    float *f32; /* one factor widened from f16/bf16 */
    size_t f32_cap;
    double *b, *a; /* B (out x r) and A^T (in x r), column-major; overwritten by dgeqrf */
    size_t b_cap, a_cap;
    double *rb, *ra, *core; /* R_B (k1 x r), R_A (k2 x r), core R_B R_A^T (k1 x k2) */
    size_t rb_cap, ra_cap, core_cap;
    double *tau, *work, *sv;
    size_t tau_cap, work_cap, sv_cap;
    lapack_int *iwork;
    size_t iwork_cap;
    double *prod; /* merge: W + scale B A in float64 */
    size_t prod_cap;
    char err[256];
};

static int fail(at_lora *self, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(at_lora *self, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->err, sizeof self->err, fmt, ap);
    va_end(ap);
    return status;
}

at_lora *at_lora_new(void)
{
    return calloc(1, sizeof(at_lora));
}

void at_lora_free(at_lora *self)
{
    if (!self)
        return;
    free(self->f32);
    free(self->b);
    free(self->a);
    free(self->rb);
    free(self->ra);
    free(self->core);
    free(self->tau);
    free(self->work);
    free(self->sv);
    free(self->iwork);
    free(self->prod);
    free(self);
}

const char *at_lora_last_error(const at_lora *self)
{
    return self ? self->err : "no workspace";
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Checks B (out x r) and A (r x in) chain into a product. */
static int check_shapes(at_lora *self, const at_tensor *B, const at_tensor *A)
{
    if (!B || !A || !B->data || !A->data)
        return fail(self, AT_ERR_ARG, "missing adapter tensor");
    if (B->ndim != 2 || A->ndim != 2)
        return fail(self, AT_ERR_ARG, "LoRA factors must be 2-D (B is %d-D, A is %d-D)", B->ndim,
                    A->ndim);
    if (B->shape[0] < 1 || B->shape[1] < 1 || A->shape[1] < 1 || B->shape[1] != A->shape[0])
        return fail(self, AT_ERR_ARG,
                    "LoRA shapes do not chain: B is %lldx%lld, A is %lldx%lld (need B out x r, "
                    "A r x in)",
                    (long long)B->shape[0], (long long)B->shape[1], (long long)A->shape[0],
                    (long long)A->shape[1]);
    return AT_OK;
}

/* Widens a row-major rows x cols factor t to float64, column-major: the matrix t itself
 * (rows x cols) when as_is is 1, else t^T (cols x rows, the same element order as t). */
static int load_factor(at_lora *self, const at_tensor *t, int as_is, double **dst, size_t *cap,
                       const char *which)
{
    const int64_t rows = t->shape[0], cols = t->shape[1];
    const size_t n = (size_t)(rows * cols);
    if (at_grow((void **)&self->f32, &self->f32_cap, n, sizeof(float)) ||
        at_grow((void **)dst, cap, n, sizeof(double)))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    at_convert_to_f32(t->data, t->dtype, n, self->f32);
    double *d = *dst;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            float v = self->f32[i * cols + j];
            if (!isfinite(v))
                return fail(self, AT_ERR_NONFINITE,
                            "LoRA %s has a non-finite value at [%lld, %lld]", which, (long long)i,
                            (long long)j);
            d[as_is ? i + j * rows : j + i * cols] = (double)v;
        }
    return AT_OK;
}

/* QR of the m x r column-major matrix x in place; copies its R (k x r, k = min(m, r), zero
 * below the diagonal) into *r_out. */
static int qr_r(at_lora *self, double *x, int64_t m, int64_t r, double **r_out, size_t *r_cap)
{
    const int64_t k = min64(m, r);
    if (at_grow((void **)&self->tau, &self->tau_cap, (size_t)k, sizeof(double)) ||
        at_grow((void **)r_out, r_cap, (size_t)(k * r), sizeof(double)))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    double query;
    lapack_int info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)r, x,
                                          (lapack_int)m, self->tau, &query, -1);
    if (info != 0)
        return fail(self, AT_ERR_LAPACK, "dgeqrf workspace query failed (info %d)", (int)info);
    if (at_grow((void **)&self->work, &self->work_cap, (size_t)query + 1, sizeof(double)))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)r, x, (lapack_int)m,
                               self->tau, self->work, (lapack_int)self->work_cap);
    if (info != 0)
        return fail(self, AT_ERR_LAPACK, "dgeqrf failed (info %d)", (int)info);
    double *R = *r_out;
    for (int64_t j = 0; j < r; j++)
        for (int64_t i = 0; i < k; i++)
            R[i + j * k] = i <= j ? x[i + j * m] : 0.0;
    return AT_OK;
}

int at_lora_svals(at_lora *self, const at_tensor *B, const at_tensor *A, double scale,
                  const double **sv, size_t *n)
{
    if (!self || !sv || !n)
        return AT_ERR_ARG;
    int rc = check_shapes(self, B, A);
    if (rc)
        return rc;
    const int64_t out = B->shape[0], r = B->shape[1], in = A->shape[1];
    const int64_t k1 = min64(out, r), k2 = min64(in, r), p = min64(k1, k2);
    /* B as is (out x r); A transposed (in x r): its row-major bytes already are A^T. */
    if ((rc = load_factor(self, B, 1, &self->b, &self->b_cap, "B")) ||
        (rc = load_factor(self, A, 0, &self->a, &self->a_cap, "A")) ||
        (rc = qr_r(self, self->b, out, r, &self->rb, &self->rb_cap)) ||
        (rc = qr_r(self, self->a, in, r, &self->ra, &self->ra_cap)))
        return rc;
    if (at_grow((void **)&self->core, &self->core_cap, (size_t)(k1 * k2), sizeof(double)) ||
        at_grow((void **)&self->sv, &self->sv_cap, (size_t)p, sizeof(double)) ||
        at_grow((void **)&self->iwork, &self->iwork_cap, (size_t)(8 * p), sizeof(lapack_int)))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    /* B A = Q_B R_B R_A^T Q_A^T and Q_B, Q_A have orthonormal columns. */
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (blasint)k1, (blasint)k2, (blasint)r,
                scale, self->rb, (blasint)k1, self->ra, (blasint)k2, 0.0, self->core, (blasint)k1);
    double query, dummy = 0.0;
    lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'N', (lapack_int)k1, (lapack_int)k2,
                                          self->core, (lapack_int)k1, self->sv, &dummy, 1, &dummy,
                                          1, &query, -1, self->iwork);
    if (info != 0)
        return fail(self, AT_ERR_LAPACK, "dgesdd workspace query failed (info %d)", (int)info);
    if (at_grow((void **)&self->work, &self->work_cap, (size_t)query + 1, sizeof(double)))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'N', (lapack_int)k1, (lapack_int)k2, self->core,
                               (lapack_int)k1, self->sv, &dummy, 1, &dummy, 1, self->work,
                               (lapack_int)self->work_cap, self->iwork);
    if (info != 0)
        return fail(self, AT_ERR_LAPACK, "dgesdd did not converge (info %d)", (int)info);
    *sv = self->sv;
    *n = (size_t)p;
    return AT_OK;
}

int at_lora_analyze(at_lora *self, const at_tensor *B, const at_tensor *A, double scale,
                    const at_htsr_opts *o, at_metrics *out)
{
    if (!self || !out)
        return AT_ERR_ARG;
    at_metrics_init(out, AT_MODE_EXACT);
    out->rf = 1;
    at_htsr_opts defaults;
    if (!o) {
        at_htsr_opts_default(&defaults);
        o = &defaults;
    }
    const double *sv;
    size_t p;
    int rc = at_lora_svals(self, B, A, scale, &sv, &p);
    if (rc)
        return rc;
    const int64_t rows = B->shape[0], cols = A->shape[1];
    out->N = rows > cols ? rows : cols;
    out->M = rows > cols ? cols : rows;
    out->Q = (double)out->N / (double)out->M;
    out->num_evals = (int64_t)p;
    if (out->num_evals < o->min_evals || out->num_evals > o->max_evals)
        return AT_OK;
    /* Ascending eigenvalues, reusing the core buffer (no longer needed). */
    double *x = self->core;
    const double tol = sv[0] * (double)out->N * DBL_EPSILON;
    int64_t rank_loss = 0, weak = 0;
    for (size_t i = 0; i < p; i++) {
        x[i] = sv[p - 1 - i] * sv[p - 1 - i];
        rank_loss += !(sv[i] > tol);
        weak += x[i] < 1e-6;
    }
    out->sv_max = sv[0];
    out->sv_min = sv[p - 1];
    out->lambda_max = x[p - 1];
    out->rank_loss = rank_loss;
    out->weak_rank_loss = weak;
    rc = at_metrics_fit(x, p, o, out);
    if (rc)
        return fail(self, rc, "power-law fit: %s", at_strerror(rc));
    return AT_OK;
}

int at_lora_merge(at_lora *self, const at_tensor *W, const at_tensor *B, const at_tensor *A,
                  double scale, float *dst)
{
    if (!self || !W || !W->data || !dst)
        return AT_ERR_ARG;
    int rc = check_shapes(self, B, A);
    if (rc)
        return rc;
    const int64_t out = B->shape[0], r = B->shape[1], in = A->shape[1];
    if (W->ndim != 2 || W->shape[0] != out || W->shape[1] != in)
        return fail(self, AT_ERR_ARG, "base weight is not %lldx%lld like B A", (long long)out,
                    (long long)in);
    /* Row-major B (out x r) is column-major B^T (r x out); row-major A (r x in) is
     * column-major A^T (in x r). The product (B A)^T = A^T B^T is column-major in x out,
     * i.e. row-major out x in: the layout dst wants. */
    if ((rc = load_factor(self, B, 0, &self->b, &self->b_cap, "B")) ||
        (rc = load_factor(self, A, 1, &self->a, &self->a_cap, "A")))
        return rc;
    const size_t n = (size_t)(out * in);
    if (at_grow((void **)&self->prod, &self->prod_cap, n, sizeof(double)) ||
        at_grow((void **)&self->f32, &self->f32_cap, n, sizeof(float)))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    at_convert_to_f32(W->data, W->dtype, n, self->f32);
    for (size_t i = 0; i < n; i++)
        self->prod[i] = (double)self->f32[i];
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (blasint)in, (blasint)out, (blasint)r,
                scale, self->a, (blasint)r, self->b, (blasint)r, 1.0, self->prod, (blasint)in);
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)self->prod[i];
    return AT_OK;
}
