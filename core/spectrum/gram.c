/* SPDX-License-Identifier: Apache-2.0 */
/* gram.c -- spectra from the short side's Gram matrix (see gram.h). */
#include "alphatop/gram.h"

#include "alphatop/rng.h"
#include "bulge.h"
#include "util.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Gram eigenvalue's absolute error is a few eps * lambda_max (syrk rounding plus the
 * reductions' backward error; <= 4 eps measured on the oracle, 16 assumed), so it is good to
 * 1e-7 relative (a tenth of the oracle's 1e-6 tolerance) only above TRUST * lambda_max. */
#define GRAM_ERR (16.0 * DBL_EPSILON)
#define TRUST (GRAM_ERR / 1e-7)
/* The bottom subspace is taken wide enough to hold every value below BAND * TRUST *
 * lambda_max, so the untrusted ones lie a gap (BAND - 1) * TRUST * lambda_max below its edge:
 * the tilt of the Gram's subspace (angle ~ GRAM_ERR * lambda_max / gap) then moves their Ritz
 * values only to second order, ~ GRAM_ERR * 1e-7 * lambda_max / (BAND - 1) ~ 1e-22 lambda_max. */
#define BAND 4.0
/* Above this many bottom vectors one dgesdd of A is the cheaper way. */
#define RITZ_MAX_ABS 32
#define RITZ_MAX_DIV 8
/* A recomputed singular value this close (as a factor) to the matrix_rank threshold
 * sqrt(lambda_max) * N * eps cannot be classified like dgesdd would: use dgesdd. */
#define RANK_MARGIN 100.0

/* Both paths reduce the Gram matrix in two stages: full -> band of half-width KD (BLAS-3
 * blocks, sytrd_sy2sb), then band -> tridiagonal (bulge chasing: dsytrd_sb2st, or at_bulge in
 * float32, which keeps the reflectors for the top vectors). On 4096 x 4096 and one thread:
 * float64 2.65 s + 0.38 s against 4.42 s for dsytrd's BLAS-2 bound reduction, float32 1.3 s +
 * 0.4 s against 2.3-2.6 s for ssytrd; wider bands speed the first stage and slow the second
 * (kd = 48 or 64 was slower overall in float32 too). The second stage makes thousands of tiny
 * BLAS calls that spin on a second OpenBLAS thread (0.38 s -> 1.9 s), so it runs on one. */
#define KD 32
/* Inverse subspace iteration on the band matrix: the first check comes after the steps that
 * shrink the wanted vectors' outside components by SUBSPACE_TOL from a well-spread start; then
 * it goes on CHECK_STEPS at a time while the measured residual still falls (see
 * bottom_vectors), up to SUBSPACE_MAX_IT steps. */
#define SUBSPACE_TOL 1e-12
#define SUBSPACE_MAX_IT 100
#define CHECK_STEPS 2
/* A Ritz value replaces the Gram's only when the bound on its error (see at_gram_evals64) is
 * below this, relative to the eigenvalue: the accuracy TRUST grants the Gram's own values. */
#define RITZ_REL 1e-7

/* LAPACK's two stages have no LAPACKE wrapper (nor a lapack.h prototype in LAPACK 3.11): the
 * Fortran routines of OpenBLAS's LAPACK, with gfortran's trailing string lengths. */
void dsytrd_sy2sb_(const char *uplo, const int *n, const int *kd, double *a, const int *lda,
                   double *ab, const int *ldab, double *tau, double *work, const int *lwork,
                   int *info, size_t uplo_len);
void ssytrd_sy2sb_(const char *uplo, const int *n, const int *kd, float *a, const int *lda,
                   float *ab, const int *ldab, float *tau, float *work, const int *lwork, int *info,
                   size_t uplo_len);
void dsytrd_sb2st_(const char *stage1, const char *vect, const char *uplo, const int *n,
                   const int *kd, double *ab, const int *ldab, double *d, double *e, double *hous,
                   const int *lhous, double *work, const int *lwork, int *info, size_t stage1_len,
                   size_t vect_len, size_t uplo_len);

/* Buffers serve float and double in turn, so their capacities count bytes. */
struct at_gram {
    void *g; /* Gram matrix, then the Householder reflectors of its reduction */
    size_t g_cap;
    void *d, *e, *tau, *dd, *ee, *z, *b;
    double *bz, *h; /* bottom_vectors: B Z (p x s), then Z^T B Z (s x s) and its eigenvalues */
    size_t bz_cap, h_cap;
    void *sv; /* p: singular values; sstemr's eigenvalue output (which needs p); QR's tau in
               * bottom_vectors */
    size_t d_cap, e_cap, tau_cap, dd_cap, ee_cap, z_cap, b_cap, sv_cap;
    void *isuppz; /* lapack_int[2p] */
    size_t isuppz_cap;
    double *ab, *hb; /* band form of the two-stage reduction, and its shifted Cholesky factor */
    size_t ab_cap, hb_cap;
    double *work, *hous; /* the two stages' workspaces; work then serves apply_q1 */
    size_t work_cap, hous_cap;
    at_bulge *bulge; /* float32 band -> tridiagonal, with its reflectors */
    int64_t p32;     /* order of the float32 reduction kept for at_gram_top_vectors32; 0: none */
    int kd32;        /* and its band's half-width */
    int order;       /* at_gram_begin32's p while panels are added; 0: none begun */
    int panels;      /* panels added since at_gram_begin32 */
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
    if (!self)
        return NULL;
    self->bulge = at_bulge_new();
    if (!self->bulge) {
        free(self);
        return NULL;
    }
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
    free(self->bz);
    free(self->h);
    free(self->sv);
    free(self->isuppz);
    free(self->ab);
    free(self->hb);
    free(self->work);
    free(self->hous);
    at_bulge_free(self->bulge);
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

/* Whether the m x n matrix a (leading dimension m) has no nonzero entry: its spectrum is then
 * known without any work (an all-zero layer took 8 s at 4096 x 4096 through the reductions). */
static int all_zero64(const double *a, int64_t m, int64_t n)
{
    for (size_t i = 0; i < (size_t)m * (size_t)n; i++)
        if (a[i] != 0.0)
            return 0;
    return 1;
}

static int all_zero32(const float *a, int64_t m, int64_t n)
{
    for (size_t i = 0; i < (size_t)m * (size_t)n; i++)
        if (a[i] != 0.0f)
            return 0;
    return 1;
}

static int reserve_tridiag(at_gram *self, size_t p, size_t elem)
{
    if (at_grow(&self->g, &self->g_cap, p * p * elem, 1) ||
        at_grow(&self->d, &self->d_cap, p * elem, 1) ||
        at_grow(&self->e, &self->e_cap, p * elem, 1) ||
        at_grow(&self->tau, &self->tau_cap, p * elem, 1) ||
        at_grow(&self->dd, &self->dd_cap, p * elem, 1) ||
        at_grow(&self->ee, &self->ee_cap, p * elem, 1) ||
        at_grow(&self->isuppz, &self->isuppz_cap, 2 * p * sizeof(int), 1))
        return -1;
    return 0;
}

/* dgesdd of a copy of A: the reference method, used where the Gram cannot decide. The copy is
 * tall (a wide A is transposed): OpenBLAS's dgesdd is faster through QR than through LQ. */
static int evals_by_svd(at_gram *self, const double *a, int64_t m, int64_t n, double *lambda)
{
    enum { TILE = 64 };
    size_t p = (size_t)(m < n ? m : n);
    if (at_grow(&self->b, &self->b_cap, (size_t)m * (size_t)n * sizeof(double), 1) ||
        at_grow(&self->sv, &self->sv_cap, p * sizeof(double), 1))
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

/* The bulge chasing's tiny BLAS calls run on one OpenBLAS thread (see KD): sets the
 * process-global count to 1 and returns the count to restore. */
static int blas_threads_to_one(void)
{
    int threads = openblas_get_num_threads();
    if (threads > 1)
        openblas_set_num_threads(1);
    return threads;
}

static void blas_threads_restore(int threads)
{
    if (threads > 1)
        openblas_set_num_threads(threads);
}

/* Full -> band -> tridiagonal in two stages (see KD): d, e get the tridiagonal form, self->ab
 * a copy of the band form, self->g and self->tau the first stage's reflectors (Q1, stored like
 * a QR factorization of the p - kd x p - kd block below the band). */
static int reduce_two_stage(at_gram *self, int p, int kd)
{
    int ldab = kd + 1, info = 0, lwork = -1, lhous = -1, lw1, lw2;
    double q1 = 0.0, q2 = 0.0, qh = 0.0;
    double *g = self->g, *d = self->d, *e = self->e, *tau = self->tau;
    if (at_grow((void **)&self->ab, &self->ab_cap, (size_t)ldab * (size_t)p * sizeof(double), 1) ||
        at_grow((void **)&self->hb, &self->hb_cap, (size_t)ldab * (size_t)p * sizeof(double), 1))
        return fail(self, AT_ERR_NOMEM, "out of memory for the band form");
    dsytrd_sy2sb_("L", &p, &kd, g, &p, self->ab, &ldab, tau, &q1, &lwork, &info, 1);
    dsytrd_sb2st_("N", "N", "L", &p, &kd, self->hb, &ldab, d, e, &qh, &lhous, &q2, &lwork, &info, 1,
                  1, 1);
    lw1 = (int)q1;
    lw2 = (int)q2;
    lhous = (int)qh > 1 ? (int)qh : 1;
    lwork = lw1 > lw2 ? lw1 : lw2;
    lwork = lwork > 1 ? lwork : 1;
    if (at_grow((void **)&self->work, &self->work_cap, (size_t)lwork * sizeof(double), 1) ||
        at_grow((void **)&self->hous, &self->hous_cap, (size_t)lhous * sizeof(double), 1))
        return fail(self, AT_ERR_NOMEM, "out of memory for the reduction's workspace");
    dsytrd_sy2sb_("L", &p, &kd, g, &p, self->ab, &ldab, tau, self->work, &lwork, &info, 1);
    if (info != 0)
        return fail(self, AT_ERR_LAPACK, "dsytrd_sy2sb failed");
    memcpy(self->hb, self->ab, (size_t)ldab * (size_t)p * sizeof(double));
    int threads = blas_threads_to_one();
    dsytrd_sb2st_("N", "N", "L", &p, &kd, self->hb, &ldab, d, e, self->hous, &lhous, self->work,
                  &lwork, &info, 1, 1, 1);
    blas_threads_restore(threads);
    if (info != 0)
        return fail(self, AT_ERR_LAPACK, "dsytrd_sb2st failed");
    return AT_OK;
}

/* z = Q1 z (p x s) for the first stage's reflectors: H(j) = I - tau_j v_j v_j^T, v_j = e_{j+kd}
 * + the column below it in self->g, Q1 = H(0) ... H(p-kd-1). LAPACK's dormqr forms each block's
 * triangular factor with BLAS-2 (dlarft), which took 0.18-0.3 s on 4096 x 4096 for 30 vectors,
 * ten times the products themselves. Here a block of Q1_NB reflectors V (copied out with its unit
 * diagonal) gets T^-1 = diag(1 / tau) + the strictly upper part of V^T V (the UT transform), so
 * that block is I - V T V^T and z -= V (T^-1 \ V^T z): all BLAS-3. An identity reflector
 * (tau = 0) gets v = 0 and a unit diagonal. */
#define Q1_NB 32
static int apply_q1(at_gram *self, int p, int kd, int s, double *z)
{
    int nref = p - kd;
    if (nref <= 1)
        return AT_OK; /* sy2sb left the matrix as it was: Q1 = I */
    size_t need = (size_t)p * Q1_NB + (size_t)Q1_NB * Q1_NB + (size_t)Q1_NB * (size_t)s;
    if (at_grow((void **)&self->work, &self->work_cap, need * sizeof(double), 1))
        return fail(self, AT_ERR_NOMEM, "out of memory for applying Q1");
    const double *g = self->g, *tau = self->tau;
    double *v = self->work, *tinv = v + (size_t)p * Q1_NB, *w = tinv + Q1_NB * Q1_NB;
    for (int j0 = (nref - 1) / Q1_NB * Q1_NB; j0 >= 0; j0 -= Q1_NB) {
        int nb = nref - j0 < Q1_NB ? nref - j0 : Q1_NB, r0 = j0 + kd, len = p - r0;
        for (int c = 0; c < nb; c++) {
            double *col = v + (size_t)c * (size_t)len;
            const double *src = g + (size_t)(j0 + c) * (size_t)p + r0;
            int live = tau[j0 + c] != 0.0;
            for (int i = 0; i < len; i++)
                col[i] = !live || i < c ? 0.0 : i == c ? 1.0 : src[i];
        }
        cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, nb, len, 1.0, v, len, 0.0, tinv, nb);
        for (int c = 0; c < nb; c++)
            tinv[c + c * nb] = tau[j0 + c] != 0.0 ? 1.0 / tau[j0 + c] : 1.0;
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, nb, s, len, 1.0, v, len, z + r0, p,
                    0.0, w, nb);
        cblas_dtrsm(CblasColMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, nb, s, 1.0,
                    tinv, nb, w, nb);
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, len, s, nb, -1.0, v, len, w, nb, 1.0,
                    z + r0, p);
    }
    return AT_OK;
}

/* Rayleigh-Ritz of the band form B on span(z) (p x s, orthonormal): z becomes B's Ritz
 * vectors, ascending. Returns the Frobenius norm of the residual B W - W Theta of the first
 * `need` of them, or -1 when out of memory or LAPACK fails. self->b (>= p x s) is scratch. */
static double band_ritz(at_gram *self, int p, int kd, int need, int s, double *z)
{
    if (at_grow((void **)&self->bz, &self->bz_cap, (size_t)p * (size_t)s, sizeof(double)) ||
        at_grow((void **)&self->h, &self->h_cap, (size_t)s * (size_t)(s + 1), sizeof(double)))
        return -1.0;
    double *bz = self->bz, *h = self->h, *theta = h + (size_t)s * (size_t)s, *t = self->b;
    for (int j = 0; j < s; j++)
        cblas_dsbmv(CblasColMajor, CblasLower, p, kd, 1.0, self->ab, kd + 1, z + (size_t)j * p, 1,
                    0.0, bz + (size_t)j * p, 1);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, s, s, p, 1.0, z, p, bz, p, 0.0, h, s);
    if (LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'U', s, h, s, theta) != 0)
        return -1.0;
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, p, s, s, 1.0, z, p, h, s, 0.0, t, p);
    memcpy(z, t, (size_t)p * (size_t)s * sizeof(double));
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, p, need, s, 1.0, bz, p, h, s, 0.0, t, p);
    double r2 = 0.0;
    for (int j = 0; j < need; j++)
        for (int i = 0; i < p; i++) {
            double r = t[(size_t)j * p + i] - theta[j] * z[(size_t)j * p + i];
            r2 += r * r;
        }
    return sqrt(r2);
}

/* The Gram's bottom s eigenvectors (of the s smallest values, the first `need` of them wanted)
 * into z (p x s): inverse subspace iteration on the band form B, shifted up by `shift` so that
 * its band Cholesky factorization is safe whatever the round-off of exact zeros, then Q1
 * applied. The wanted vectors converge at least as fast as (lambda[need-1] + shift) /
 * (lambda[s] + shift) per step (below ~1 / BAND by the choice of s), but from a random start
 * whose spread over them is unknown: a start that happens to hold little of one wanted vector
 * needs more steps than the rate says (with a step count from the rate alone, ~1% of layers
 * with an exactly-zero column kept a Ritz value 1e3 above the rank threshold). So the count is
 * only the first check point: the residual of B's Ritz vectors on the subspace is measured, and
 * the iteration goes on while it falls by half or more per check, until it reaches the Gram's
 * own error. *res gets the last residual (the Frobenius norm over the `need` wanted vectors):
 * the caller's error bound uses it, so an iteration that stalls above that level cannot pass a
 * wrong value on. self->b (>= p x s doubles) is scratch. */
static int bottom_vectors(at_gram *self, int p, int kd, const double *lambda, int need, int s,
                          double *z, double *res)
{
    int ldab = kd + 1;
    double lmax = lambda[p - 1], shift = 0.01 * TRUST * lmax;
    double *hb = self->hb, *qtau = self->sv;
    memcpy(hb, self->ab, (size_t)ldab * (size_t)p * sizeof(double));
    for (int j = 0; j < p; j++)
        hb[(size_t)j * (size_t)ldab] += shift;
    if (LAPACKE_dpbtrf(LAPACK_COL_MAJOR, 'L', p, kd, hb, ldab) != 0)
        return fail(self, AT_ERR_LAPACK, "band Cholesky of the shifted Gram failed");
    int iters = 1;
    if (s < p) {
        double rate = (lambda[need - 1] + shift) / (lambda[s] + shift);
        iters = (int)ceil(log(SUBSPACE_TOL) / log(rate));
        iters = iters < 1 ? 1 : iters > SUBSPACE_MAX_IT ? SUBSPACE_MAX_IT : iters;
    }
    at_rng rng;
    at_rng_seed(&rng, 0x5eed5eedu);
    for (size_t i = 0; i < (size_t)p * (size_t)s; i++)
        z[i] = at_rng_normal(&rng);
    const double enough = sqrt((double)need) * GRAM_ERR * lmax;
    double last = INFINITY;
    for (int done = 0;;) {
        for (int it = 0; it < iters; it++) {
            if (LAPACKE_dpbtrs(LAPACK_COL_MAJOR, 'L', p, kd, s, hb, ldab, z, p) != 0 ||
                LAPACKE_dgeqrf(LAPACK_COL_MAJOR, p, s, z, p, qtau) != 0 ||
                LAPACKE_dorgqr(LAPACK_COL_MAJOR, p, s, s, z, p, qtau) != 0)
                return fail(self, AT_ERR_LAPACK, "inverse subspace iteration failed");
        }
        done += iters;
        *res = band_ritz(self, p, kd, need, s, z);
        if (*res < 0.0)
            return fail(self, AT_ERR_LAPACK, "Rayleigh-Ritz of the bottom subspace failed");
        if (s == p || *res <= enough || *res > 0.5 * last || done >= SUBSPACE_MAX_IT)
            break;
        last = *res;
        iters = CHECK_STEPS;
    }
    return apply_q1(self, p, kd, s, z);
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
    int p = (int)(wide ? m : n), lg = (int)(wide ? n : m), kd = p - 1 < KD ? p - 1 : KD;
    if (path)
        *path = AT_GRAM_PLAIN;
    if (all_zero64(a, m, n)) {
        memset(lambda, 0, (size_t)p * sizeof(double));
        return AT_OK;
    }
    if (reserve_tridiag(self, (size_t)p, sizeof(double)))
        return fail(self, AT_ERR_NOMEM, "out of memory for the Gram matrix");
    double *g = self->g, *ee = self->ee;
    cblas_dsyrk(CblasColMajor, CblasLower, wide ? CblasNoTrans : CblasTrans, p, lg, 1.0, a, (int)m,
                0.0, g, p);
    if ((rc = reduce_two_stage(self, p, kd)) != AT_OK)
        return rc;
    memcpy(lambda, self->d, (size_t)p * sizeof(double));
    memcpy(ee, self->e, (size_t)(p > 1 ? p - 1 : 0) * sizeof(double));
    if (LAPACKE_dsterf(p, lambda, ee) != 0)
        return fail(self, AT_ERR_LAPACK, "dsterf did not converge");

    double lmax = lambda[p - 1];
    int need = 0, s = 0;
    while (need < p && lambda[need] < TRUST * lmax)
        need++;
    while (s < p && lambda[s] < BAND * TRUST * lmax)
        s++;
    if (need == 0)
        return AT_OK;
    if (path)
        *path = AT_GRAM_SVD;
    if (s > RITZ_MAX_ABS && s > p / RITZ_MAX_DIV)
        return evals_by_svd(self, a, m, n, lambda);

    /* Rayleigh-Ritz on A itself: the singular values of A Z, Z = the Gram's bottom s
     * eigenvectors, carry dgesdd-like absolute error eps * sv_max instead of the Gram's
     * eps * lambda_max. */
    if (at_grow(&self->z, &self->z_cap, (size_t)p * (size_t)s * sizeof(double), 1) ||
        at_grow(&self->b, &self->b_cap, (size_t)lg * (size_t)s * sizeof(double), 1) ||
        at_grow(&self->sv, &self->sv_cap, (size_t)p * sizeof(double), 1))
        return fail(self, AT_ERR_NOMEM, "out of memory for the bottom subspace");
    double *z = self->z, *bm = self->b, *sv = self->sv, res = 0.0;
    if ((rc = bottom_vectors(self, p, kd, lambda, need, s, z, &res)) != AT_OK)
        return rc;
    cblas_dgemm(CblasColMajor, wide ? CblasTrans : CblasNoTrans, CblasNoTrans, lg, s, p, 1.0, a,
                (int)m, z, p, 0.0, bm, lg);
    double dummy = 0.0;
    if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', lg, s, bm, lg, sv, &dummy, 1, &dummy, 1) != 0)
        return fail(self, AT_ERR_LAPACK, "dgesdd of the bottom subspace did not converge");
    /* Each Ritz value sig is an upper bound on its singular value (interlacing), and above it
     * by little: the wanted vectors lean out of A's bottom subspace only through the Gram's own
     * error (GRAM_ERR * lmax per vector) and the iteration's measured residual, and a lean of
     * residual r towards eigenvalues >= lambda[s] raises sig^2 by at most r^2 / (lambda[s] -
     * theta), theta < TRUST * lmax. So the singular value lies in [sqrt(sig^2 - u2), sig]. A
     * value is used only when that interval is certainly below the matrix_rank threshold, or
     * certainly above it and narrow enough to be good to RITZ_REL; otherwise dgesdd decides. */
    double lean = res + sqrt((double)need) * GRAM_ERR * lmax;
    double u2 = s < p ? lean * lean / (lambda[s] - TRUST * lmax) : 0.0;
    double thr = sqrt(lmax) * (double)(lg > p ? lg : p) * DBL_EPSILON;
    double lo = thr * RANK_MARGIN;
    for (int i = 0; i < need; i++) {
        double sig = sv[s - 1 - i];
        if (!(sig < thr / RANK_MARGIN || (sig * sig - u2 >= lo * lo && u2 <= RITZ_REL * sig * sig)))
            return evals_by_svd(self, a, m, n, lambda);
        lambda[i] = sig * sig;
    }
    if (path)
        *path = AT_GRAM_RITZ;
    return AT_OK;
}

/* Float32 full -> band (ssytrd_sy2sb: Q1's reflectors into self->g and self->tau, the band into
 * self->ab) -> tridiagonal (at_bulge, keeping Q2's): d, e get the tridiagonal form. */
static int reduce32(at_gram *self, int p, int kd)
{
    int ldab = kd + 1, info = 0, lwork = -1;
    float query = 0.0f;
    float *g = self->g, *tau = self->tau;
    ssytrd_sy2sb_("L", &p, &kd, g, &p, (float *)self->ab, &ldab, tau, &query, &lwork, &info, 1);
    lwork = (int)query > 1 ? (int)query : 1;
    if (at_grow((void **)&self->ab, &self->ab_cap, (size_t)ldab * (size_t)p * sizeof(float), 1) ||
        at_grow((void **)&self->work, &self->work_cap, (size_t)lwork * sizeof(float), 1))
        return fail(self, AT_ERR_NOMEM, "out of memory for the band form");
    float *ab = (float *)self->ab;
    ssytrd_sy2sb_("L", &p, &kd, g, &p, ab, &ldab, tau, (float *)self->work, &lwork, &info, 1);
    if (info != 0)
        return fail(self, AT_ERR_LAPACK, "ssytrd_sy2sb failed");
    int threads = blas_threads_to_one();
    int rc = at_bulge_reduce(self->bulge, p, kd, ab, ldab, self->d, self->e);
    blas_threads_restore(threads);
    if (rc != AT_OK)
        return fail(self, rc, "out of memory for the band reduction's reflectors");
    return AT_OK;
}

int at_gram_begin32(at_gram *self, int64_t p)
{
    if (!self)
        return AT_ERR_ARG;
    self->p32 = 0;
    self->panels = 0;
    if (p <= 0 || p > INT32_MAX / 2)
        return fail(self, AT_ERR_ARG, "the Gram matrix's order must be in 1..2^30");
    if (reserve_tridiag(self, (size_t)p, sizeof(float)))
        return fail(self, AT_ERR_NOMEM, "out of memory for the Gram matrix");
    self->order = (int)p;
    return AT_OK;
}

int at_gram_add32(at_gram *self, const float *x, int64_t k, int64_t ldx, int trans)
{
    if (!self || !x || k <= 0 || self->order == 0 || k > INT32_MAX / 2 ||
        ldx < (trans ? k : self->order))
        return self ? fail(self, AT_ERR_ARG, "a panel needs data, k >= 1 and a fitting ldx")
                    : AT_ERR_ARG;
    /* The first panel overwrites (beta 0), so one panel gives at_gram_evals32's bits. */
    cblas_ssyrk(CblasColMajor, CblasLower, trans ? CblasTrans : CblasNoTrans, self->order, (int)k,
                1.0f, x, (int)ldx, self->panels++ ? 1.0f : 0.0f, self->g, self->order);
    return AT_OK;
}

int at_gram_end32(at_gram *self, double *lambda)
{
    if (!self)
        return AT_ERR_ARG;
    if (!lambda || self->panels == 0)
        return fail(self, AT_ERR_STATE, "at_gram_end32 needs at_gram_begin32 and a panel");
    const int p = self->order, kd = p - 1 < KD ? p - 1 : KD;
    float *dd = self->dd, *ee = self->ee;
    self->order = 0;
    self->panels = 0;
    int rc = reduce32(self, p, kd);
    if (rc != AT_OK)
        return rc;
    memcpy(dd, self->d, (size_t)p * sizeof(float));
    memcpy(ee, self->e, (size_t)(p > 1 ? p - 1 : 0) * sizeof(float));
    if (LAPACKE_ssterf(p, dd, ee) != 0)
        return fail(self, AT_ERR_LAPACK, "ssterf did not converge");
    for (int i = 0; i < p; i++)
        lambda[i] = dd[i] > 0.0f ? (double)dd[i] : 0.0;
    self->p32 = p;
    self->kd32 = kd;
    return AT_OK;
}

int at_gram_evals32(at_gram *self, const float *a, int64_t m, int64_t n, double *lambda)
{
    if (!self)
        return AT_ERR_ARG;
    int rc = check_args(self, a, m, n, lambda);
    if (rc)
        return rc;
    /* The short side's Gram matrix: A A^T (m x m) when m < n, else A^T A. */
    const int wide = m < n;
    if (all_zero32(a, m, n)) {
        self->p32 = 0;
        memset(lambda, 0, (size_t)(wide ? m : n) * sizeof(double));
        return AT_OK;
    }
    if ((rc = at_gram_begin32(self, wide ? m : n)) != AT_OK ||
        (rc = at_gram_add32(self, a, wide ? n : m, m, !wide)) != AT_OK)
        return rc;
    return at_gram_end32(self, lambda);
}

int at_gram_top_vectors32(at_gram *self, int64_t b, float *v)
{
    if (!self)
        return AT_ERR_ARG;
    int p = (int)self->p32, kd = self->kd32;
    if (p == 0)
        return fail(self, AT_ERR_STATE, "at_gram_top_vectors32 needs a preceding at_gram_evals32");
    if (!v || b < 1 || b > p)
        return fail(self, AT_ERR_ARG, "block size must be in 1..p and v non-NULL");
    float *dd = self->dd, *ee = self->ee;
    memcpy(dd, self->d, (size_t)p * sizeof(float));
    memcpy(ee, self->e, (size_t)(p > 1 ? p - 1 : 0) * sizeof(float));
    if (at_grow(&self->sv, &self->sv_cap, (size_t)p * sizeof(float), 1))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    /* One MRRR call for all b: separate calls over parts of the range choose their own
     * representations and lose orthogonality across a cluster of close eigenvalues (5e-2 where
     * one call keeps 6e-5). */
    int found = 0, tryrac = 0;
    if (LAPACKE_sstemr(LAPACK_COL_MAJOR, 'V', 'I', p, dd, ee, 0.0f, 0.0f, p - (int)b + 1, p, &found,
                       self->sv, v, p, (int)b, self->isuppz, &tryrac) != 0 ||
        found != (int)b)
        return fail(self, AT_ERR_LAPACK, "sstemr failed on the top eigenvectors");
    /* Eigenvectors of the Gram = Q1 Q2 (those of the tridiagonal form). */
    int rc = at_bulge_apply(self->bulge, b, v, p, openblas_get_num_threads());
    if (rc != AT_OK)
        return fail(self, rc, "out of memory for the band reduction's back-transformation");
    if (p - kd <= 1)
        return AT_OK; /* sy2sb had nothing to reduce: Q1 = I */
    /* The _work variant: LAPACKE_sormqr would scan the whole square for NaN, including the
     * upper triangle that syrk never wrote. */
    float *q1 = (float *)self->g + kd, query = 0.0f;
    if (LAPACKE_sormqr_work(LAPACK_COL_MAJOR, 'L', 'N', p - kd, (int)b, p - kd, q1, p, self->tau,
                            v + kd, p, &query, -1) != 0)
        return fail(self, AT_ERR_LAPACK, "sormqr workspace query failed");
    int lwork = (int)query > 1 ? (int)query : 1;
    if (at_grow((void **)&self->work, &self->work_cap, (size_t)lwork * sizeof(float), 1))
        return fail(self, AT_ERR_NOMEM, "out of memory for applying Q1");
    if (LAPACKE_sormqr_work(LAPACK_COL_MAJOR, 'L', 'N', p - kd, (int)b, p - kd, q1, p, self->tau,
                            v + kd, p, (float *)self->work, lwork) != 0)
        return fail(self, AT_ERR_LAPACK, "sormqr failed");
    return AT_OK;
}
