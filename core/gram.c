/* gram.c -- spectra from the short side's Gram matrix (see gram.h). */
#include "alphatop/gram.h"

#include "htsr_internal.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Gram eigenvalue's absolute error is a few eps * lambda_max (syrk rounding plus the
 * tridiagonal reduction's backward error; <= 4 eps measured on the oracle, 16 assumed), so it
 * is good to 1e-8 relative only above TRUST * lambda_max. */
#define GRAM_ERR (16.0 * DBL_EPSILON)
#define TRUST (GRAM_ERR / 1e-8)
/* The bottom subspace is taken BAND times wider than the untrusted values, so those lie far
 * below its edge: the tilt of the Gram's subspace (angle ~ GRAM_ERR * lambda_max / gap) then
 * moves their Ritz values only to second order, ~ (GRAM_ERR * lambda_max)^2 / (BAND * TRUST *
 * lambda_max) ~ 3e-25 lambda_max. */
#define BAND 10.0
/* Above this many bottom vectors one dgesdd of A is the cheaper way. */
#define RITZ_MAX_ABS 32
#define RITZ_MAX_DIV 8
/* A recomputed singular value this close (as a factor) to the matrix_rank threshold
 * sqrt(lambda_max) * N * eps cannot be classified like dgesdd would: use dgesdd. */
#define RANK_MARGIN 100.0

/* Gram matrices are stored and reduced in their lower triangle: OpenBLAS's lower-triangle
 * symv kernels make sytrd 1.2x (two threads) to 1.4x (one thread) faster than the upper on
 * 4096 x 4096, measured on this project's 2-core machine. */

/* Buffers serve float and double in turn, so their capacities count bytes. */
struct at_gram {
    void *g; /* Gram matrix, then the Householder reflectors of its tridiagonal form */
    size_t g_cap;
    void *d, *e, *tau, *dd, *ee, *z, *b;
    void *sv; /* p: singular values, and the eigenvalue output of stemr (which needs p) */
    size_t d_cap, e_cap, tau_cap, dd_cap, ee_cap, z_cap, b_cap, sv_cap;
    void *isuppz; /* lapack_int[2p] */
    size_t isuppz_cap;
    int64_t p32; /* order of the float32 tridiagonal form kept for at_gram_top_vectors32; 0: none */
    char err[160];
};

static int fail(at_gram *self, int rc, const char *what)
{
    snprintf(self->err, sizeof self->err, "%s", what);
    return rc;
}

at_gram *at_gram_new(void)
{
    at_gram *self = calloc(1, sizeof *self);
    if (self)
        self->err[0] = '\0';
    return self;
}

void at_gram_free(at_gram *self)
{
    if (!self)
        return;
    free(self->g);
    free(self->d);
    free(self->e);
    free(self->tau);
    free(self->dd);
    free(self->ee);
    free(self->z);
    free(self->b);
    free(self->sv);
    free(self->isuppz);
    free(self);
}

const char *at_gram_last_error(const at_gram *self)
{
    return self ? self->err : "no workspace";
}

static int check_args(at_gram *self, const void *a, int64_t m, int64_t n, const void *out)
{
    if (!a || !out || m <= 0 || n <= 0)
        return fail(self, AT_ERR_ARG, "matrix must be non-empty, pointers non-NULL");
    if (m > INT32_MAX / 2 || n > INT32_MAX / 2)
        return fail(self, AT_ERR_SIZE, "matrix side exceeds LAPACK's int range");
    return AT_OK;
}

static int reserve_tridiag(at_gram *self, size_t p, size_t elem)
{
    if (at_htsr_grow(&self->g, &self->g_cap, p * p * elem, 1) ||
        at_htsr_grow(&self->d, &self->d_cap, p * elem, 1) ||
        at_htsr_grow(&self->e, &self->e_cap, p * elem, 1) ||
        at_htsr_grow(&self->tau, &self->tau_cap, p * elem, 1) ||
        at_htsr_grow(&self->dd, &self->dd_cap, p * elem, 1) ||
        at_htsr_grow(&self->ee, &self->ee_cap, p * elem, 1) ||
        at_htsr_grow(&self->isuppz, &self->isuppz_cap, 2 * p * sizeof(int), 1))
        return -1;
    return 0;
}

/* dgesdd of a copy of A: the reference method, used where the Gram cannot decide. The copy is
 * tall (a wide A is transposed): OpenBLAS's dgesdd is faster through QR than through LQ. */
static int evals_by_svd(at_gram *self, const double *a, int64_t m, int64_t n, double *lambda)
{
    enum { TILE = 64 };
    size_t p = (size_t)(m < n ? m : n);
    if (at_htsr_grow(&self->b, &self->b_cap, (size_t)m * (size_t)n * sizeof(double), 1) ||
        at_htsr_grow(&self->sv, &self->sv_cap, p * sizeof(double), 1))
        return fail(self, AT_ERR_NOMEM, "out of memory for the SVD copy");
    double *c = self->b, *sv = self->sv;
    if (m >= n) {
        memcpy(c, a, (size_t)m * (size_t)n * sizeof(double));
    } else {
        for (int64_t i0 = 0; i0 < m; i0 += TILE)
            for (int64_t j0 = 0; j0 < n; j0 += TILE)
                for (int64_t i = i0; i < m && i < i0 + TILE; i++)
                    for (int64_t j = j0; j < n && j < j0 + TILE; j++)
                        c[j + i * n] = a[i + j * m];
        int64_t t = m;
        m = n;
        n = t;
    }
    double dummy = 0.0;
    if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)m, (int)n, c, (int)m, sv, &dummy, 1, &dummy,
                       1) != 0)
        return fail(self, AT_ERR_LAPACK, "dgesdd did not converge");
    for (size_t i = 0; i < p; i++)
        lambda[i] = sv[p - 1 - i] * sv[p - 1 - i];
    return AT_OK;
}

int at_gram_evals64(at_gram *self, const double *a, int64_t m, int64_t n, double *lambda,
                    at_gram_path *path)
{
    if (!self)
        return AT_ERR_ARG;
    int rc = check_args(self, a, m, n, lambda);
    if (rc)
        return rc;
    self->p32 = 0;
    int wide = m < n; /* then the short side is A's column space: G = A A^T */
    int p = (int)(wide ? m : n), lg = (int)(wide ? n : m);
    if (reserve_tridiag(self, (size_t)p, sizeof(double)))
        return fail(self, AT_ERR_NOMEM, "out of memory for the Gram matrix");
    double *g = self->g, *d = self->d, *e = self->e, *tau = self->tau, *dd = self->dd,
           *ee = self->ee;
    cblas_dsyrk(CblasColMajor, CblasLower, wide ? CblasNoTrans : CblasTrans, p, lg, 1.0, a, (int)m,
                0.0, g, p);
    if (LAPACKE_dsytrd(LAPACK_COL_MAJOR, 'L', p, g, p, d, e, tau) != 0)
        return fail(self, AT_ERR_LAPACK, "dsytrd failed");
    memcpy(lambda, d, (size_t)p * sizeof(double));
    memcpy(ee, e, (size_t)(p > 1 ? p - 1 : 0) * sizeof(double));
    if (LAPACKE_dsterf(p, lambda, ee) != 0)
        return fail(self, AT_ERR_LAPACK, "dsterf did not converge");

    double lmax = lambda[p - 1];
    int need = 0, s = 0;
    while (need < p && lambda[need] < TRUST * lmax)
        need++;
    while (s < p && lambda[s] < BAND * TRUST * lmax)
        s++;
    if (path)
        *path = AT_GRAM_PLAIN;
    if (need == 0)
        return AT_OK;
    if (path)
        *path = AT_GRAM_SVD;
    if (s > RITZ_MAX_ABS && s > p / RITZ_MAX_DIV)
        return evals_by_svd(self, a, m, n, lambda);

    /* Rayleigh-Ritz on A itself: the singular values of A Z, Z = the Gram's bottom s
     * eigenvectors, carry dgesdd-like absolute error eps * sv_max instead of the Gram's
     * eps * lambda_max. */
    if (at_htsr_grow(&self->z, &self->z_cap, (size_t)p * (size_t)s * sizeof(double), 1) ||
        at_htsr_grow(&self->b, &self->b_cap, (size_t)lg * (size_t)s * sizeof(double), 1) ||
        at_htsr_grow(&self->sv, &self->sv_cap, (size_t)p * sizeof(double), 1))
        return fail(self, AT_ERR_NOMEM, "out of memory for the bottom subspace");
    double *z = self->z, *bm = self->b, *sv = self->sv;
    memcpy(dd, d, (size_t)p * sizeof(double));
    memcpy(ee, e, (size_t)(p > 1 ? p - 1 : 0) * sizeof(double));
    int found = 0, tryrac = 0;
    if (LAPACKE_dstemr(LAPACK_COL_MAJOR, 'V', 'I', p, dd, ee, 0.0, 0.0, 1, s, &found, sv, z, p, s,
                       self->isuppz, &tryrac) != 0 ||
        found != s)
        return fail(self, AT_ERR_LAPACK, "dstemr failed on the bottom eigenvectors");
    if (LAPACKE_dormtr(LAPACK_COL_MAJOR, 'L', 'L', 'N', p, s, g, p, tau, z, p) != 0)
        return fail(self, AT_ERR_LAPACK, "dormtr failed");
    cblas_dgemm(CblasColMajor, wide ? CblasTrans : CblasNoTrans, CblasNoTrans, lg, s, p, 1.0, a,
                (int)m, z, p, 0.0, bm, lg);
    double dummy = 0.0;
    if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', lg, s, bm, lg, sv, &dummy, 1, &dummy, 1) != 0)
        return fail(self, AT_ERR_LAPACK, "dgesdd of the bottom subspace did not converge");
    double thr = sqrt(lmax) * (double)(lg > p ? lg : p) * DBL_EPSILON;
    for (int i = 0; i < need; i++) {
        double sig = sv[s - 1 - i];
        if (sig > thr / RANK_MARGIN && sig < thr * RANK_MARGIN)
            return evals_by_svd(self, a, m, n, lambda);
        lambda[i] = sig * sig;
    }
    if (path)
        *path = AT_GRAM_RITZ;
    return AT_OK;
}

int at_gram_evals32(at_gram *self, const float *a, int64_t m, int64_t n, double *lambda)
{
    if (!self)
        return AT_ERR_ARG;
    int rc = check_args(self, a, m, n, lambda);
    if (rc)
        return rc;
    self->p32 = 0;
    int wide = m < n;
    int p = (int)(wide ? m : n), lg = (int)(wide ? n : m);
    if (reserve_tridiag(self, (size_t)p, sizeof(float)))
        return fail(self, AT_ERR_NOMEM, "out of memory for the Gram matrix");
    float *g = self->g, *d = self->d, *e = self->e, *tau = self->tau, *dd = self->dd,
          *ee = self->ee;
    cblas_ssyrk(CblasColMajor, CblasLower, wide ? CblasNoTrans : CblasTrans, p, lg, 1.0f, a, (int)m,
                0.0f, g, p);
    if (LAPACKE_ssytrd(LAPACK_COL_MAJOR, 'L', p, g, p, d, e, tau) != 0)
        return fail(self, AT_ERR_LAPACK, "ssytrd failed");
    memcpy(dd, d, (size_t)p * sizeof(float));
    memcpy(ee, e, (size_t)(p > 1 ? p - 1 : 0) * sizeof(float));
    if (LAPACKE_ssterf(p, dd, ee) != 0)
        return fail(self, AT_ERR_LAPACK, "ssterf did not converge");
    for (int i = 0; i < p; i++)
        lambda[i] = dd[i] > 0.0f ? (double)dd[i] : 0.0;
    self->p32 = p;
    return AT_OK;
}

int at_gram_top_vectors32(at_gram *self, int64_t b, float *v)
{
    if (!self)
        return AT_ERR_ARG;
    int p = (int)self->p32;
    if (p == 0)
        return fail(self, AT_ERR_STATE, "at_gram_top_vectors32 needs a preceding at_gram_evals32");
    if (!v || b < 1 || b > p)
        return fail(self, AT_ERR_ARG, "block size must be in 1..p and v non-NULL");
    float *dd = self->dd, *ee = self->ee;
    memcpy(dd, self->d, (size_t)p * sizeof(float));
    memcpy(ee, self->e, (size_t)(p > 1 ? p - 1 : 0) * sizeof(float));
    if (at_htsr_grow(&self->sv, &self->sv_cap, (size_t)p * sizeof(float), 1))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    int found = 0, tryrac = 0;
    if (LAPACKE_sstemr(LAPACK_COL_MAJOR, 'V', 'I', p, dd, ee, 0.0f, 0.0f, p - (int)b + 1, p, &found,
                       self->sv, v, p, (int)b, self->isuppz, &tryrac) != 0 ||
        found != (int)b)
        return fail(self, AT_ERR_LAPACK, "sstemr failed on the top eigenvectors");
    if (LAPACKE_sormtr(LAPACK_COL_MAJOR, 'L', 'L', 'N', p, (int)b, self->g, p, self->tau, v, p) !=
        0)
        return fail(self, AT_ERR_LAPACK, "sormtr failed");
    return AT_OK;
}
