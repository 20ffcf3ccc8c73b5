/* SPDX-License-Identifier: Apache-2.0 */
/* warm.c -- one warm update: float32 subspace iteration from the previous snapshot's basis.
 *
 * The GEMMs with the weights run in float32 (they are the whole cost); the thin b-column
 * factorizations run in float64, because Y = op(A) V has the condition number of the top-b
 * singular values (1e2..1e4 on heavy tails) and Cholesky-QR squares it. */
#include "warm.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "alphatop/status.h"
#include "util.h"

struct at_warm {
    float *y, *z;        /* lg x b, p x b */
    double *yd, *zd, *u; /* lg x b, p x b, p x b */
    double *c, *sv;      /* b x b, b */
    size_t y_cap, z_cap, yd_cap, zd_cap, u_cap, c_cap, sv_cap;
};

at_warm *at_warm_new(void)
{
    return calloc(1, sizeof(at_warm));
}

void at_warm_free(at_warm *self)
{
    if (!self)
        return;
    free(self->y);
    free(self->z);
    free(self->yd);
    free(self->zd);
    free(self->u);
    free(self->c);
    free(self->sv);
    free(self);
}

/* One Cholesky-QR round on the lg x b matrix y (in place): C = Y^T Y = R^T R, Y <- Y R^-1.
 * With shift > 0, C + shift * ||C|| I is factored instead (Fukaya et al.'s shifted CholeskyQR:
 * it cannot break down, and two plain rounds after it restore orthogonality). */
static int cholqr(at_warm *w, double *y, int lg, int b, int shifted)
{
    double *c = w->c;
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, b, lg, 1.0, y, lg, 0.0, c, b);
    if (shifted) {
        double tr = 0.0;
        for (int i = 0; i < b; i++)
            tr += c[(size_t)i * (size_t)b + (size_t)i];
        double s = 11.0 * ((double)lg * b + (double)b * (b + 1)) * DBL_EPSILON * tr;
        for (int i = 0; i < b; i++)
            c[(size_t)i * (size_t)b + (size_t)i] += s;
    }
    if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', b, c, b) != 0)
        return -1;
    cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, lg, b, 1.0, c, b,
                y, lg);
    return 0;
}

/* CholeskyQR2 (Yamamoto et al.), or shifted CholeskyQR3 when the plain Cholesky breaks down. A
 * plain first round that succeeds in float64 (cond(Y) below ~1e8) leaves Q^T Q - I at most
 * ~1e-1, so the second round's input is well conditioned and its Q is orthonormal to a few eps,
 * far below the float32 the basis is kept in; a shifted round leaves up to ~1e-2 of a badly
 * conditioned Y, and needs two more. */
static int orthonormalize(at_warm *w, double *y, int lg, int b)
{
    int rounds = 1;
    if (cholqr(w, y, lg, b, 0) != 0) {
        if (cholqr(w, y, lg, b, 1) != 0)
            return -1;
        rounds = 2;
    }
    for (int r = 0; r < rounds; r++)
        if (cholqr(w, y, lg, b, 0) != 0)
            return -1;
    return 0;
}

int at_warm_run(at_warm *w, const float *a, int64_t m, int64_t n, int64_t b64, int64_t k,
                int min_passes, int max_passes, double tol, float *v, double *lambda_top,
                int *passes, int *converged)
{
    if (!w || !a || !v || !lambda_top || !passes || !converged || m <= 0 || n <= 0 || b64 < 1 ||
        k < 1 || k > b64 || min_passes < 1 || max_passes < min_passes)
        return AT_ERR_ARG;
    int wide = m < n;
    int p = (int)(wide ? m : n), lg = (int)(wide ? n : m), b = (int)b64;
    if (b > p)
        return AT_ERR_ARG;
    size_t lb = (size_t)lg * (size_t)b, pb = (size_t)p * (size_t)b, bb = (size_t)b * (size_t)b;
    if (at_grow((void **)&w->y, &w->y_cap, lb, sizeof(float)) ||
        at_grow((void **)&w->z, &w->z_cap, pb, sizeof(float)) ||
        at_grow((void **)&w->yd, &w->yd_cap, lb, sizeof(double)) ||
        at_grow((void **)&w->zd, &w->zd_cap, pb, sizeof(double)) ||
        at_grow((void **)&w->u, &w->u_cap, pb, sizeof(double)) ||
        at_grow((void **)&w->c, &w->c_cap, bb, sizeof(double)) ||
        at_grow((void **)&w->sv, &w->sv_cap, (size_t)b, sizeof(double)))
        return AT_ERR_NOMEM;
    *converged = max_passes == 1;
    int pass = 0;
    while (pass < max_passes) {
        cblas_sgemm(CblasColMajor, wide ? CblasTrans : CblasNoTrans, CblasNoTrans, lg, b, p, 1.0f,
                    a, (int)m, v, p, 0.0f, w->y, lg);
        for (size_t i = 0; i < lb; i++)
            w->yd[i] = w->y[i];
        if (orthonormalize(w, w->yd, lg, b) != 0)
            return AT_ERR_LAPACK;
        for (size_t i = 0; i < lb; i++)
            w->y[i] = (float)w->yd[i];
        cblas_sgemm(CblasColMajor, wide ? CblasNoTrans : CblasTrans, CblasNoTrans, p, b, lg, 1.0f,
                    a, (int)m, w->y, lg, 0.0f, w->z, p);
        for (size_t i = 0; i < pb; i++)
            w->zd[i] = w->z[i];
        /* Singular values of Z = op(A)^T Q are the Ritz values on span(Q); its left singular
         * vectors are the new right singular vectors of op(A). Both come from the b x b
         * eigenproblem Z^T Z = X diag(s^2) X^T, U = Z X normalized: 2-3x cheaper than dgesdd
         * of the p x b matrix Z (0.22-0.31 s -> ~0.1 s for 4096 x 482). Squaring costs the
         * small values relative precision eps * (s_1 / s_i)^2, ~1e-12 across a heavy tail's top
         * block, far below the Ritz values' own error. Ascending order, like the cold basis. */
        cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, b, p, 1.0, w->zd, p, 0.0, w->c, b);
        if (LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', b, w->c, b, w->sv) != 0)
            return AT_ERR_LAPACK;
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, p, b, b, 1.0, w->zd, p, w->c, b, 0.0,
                    w->u, p);
        for (int j = 0; j < b; j++) {
            const double *col = w->u + (size_t)j * (size_t)p;
            double nrm = cblas_dnrm2(p, col, 1), scale = nrm > 0.0 ? 1.0 / nrm : 0.0;
            for (int i = 0; i < p; i++)
                v[(size_t)j * (size_t)p + (size_t)i] = (float)(col[i] * scale);
        }
        /* Ritz values rise monotonically towards the singular values; the last step's
         * relative size bounds what is left (times r / (1 - r) for a convergence rate r). */
        double moved = 0.0;
        for (int i = 0; i < b; i++) {
            double l = fmax(w->sv[i], 0.0);
            if (pass > 0 && i >= b - (int)(2 * k / 3))
                moved = fmax(moved, fabs(l - lambda_top[i]) / l);
            lambda_top[i] = l;
        }
        pass++;
        if (pass > 1 && pass >= min_passes && moved <= tol) {
            *converged = 1;
            break;
        }
        if (pass >= min_passes && max_passes == min_passes)
            break;
    }
    *passes = pass;
    return AT_OK;
}
