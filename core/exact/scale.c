/* SPDX-License-Identifier: Apache-2.0 */
/* scale.c -- the scale metrics of docs/metrics.md section 4 and detX of section 5: closed-form sums
 * over the whole spectrum. */
#include <float.h>
#include <math.h>

#include "alphatop/htsr.h"

/* The reference's entropy regularizer (EPSILON), added to every probability. */
#define ENTROPY_EPS 1e-10

void at_scale_metrics(const double *x, size_t n, at_metrics *m)
{
    if (!x || !m || n == 0)
        return;
    const double lmax = x[n - 1];
    double norm = 0.0, alpha_norm = 0.0;
    for (size_t i = 0; i < n; i++) {
        norm += x[i];
        alpha_norm += pow(x[i], m->alpha);
    }
    /* numpy.linalg.matrix_rank's tolerance, on singular values: S_max * N * eps. */
    const double tol = sqrt(lmax) * (double)m->N * DBL_EPSILON;
    int64_t rank = 0;
    for (size_t i = 0; i < n; i++)
        rank += sqrt(x[i]) > tol;
    double h = 0.0;
    for (size_t i = 0; i < n; i++) {
        double p = x[i] / norm + ENTROPY_EPS;
        h -= p * log(p);
    }
    m->norm = norm;
    m->log_norm = log10(norm);
    m->spectral_norm = lmax;
    m->log_spectral_norm = log10(lmax);
    m->alpha_weighted = m->alpha * log10(lmax);
    m->log_alpha_norm = log10(alpha_norm);
    m->stable_rank = norm / lmax;
    m->matrix_rank = rank;
    m->entropy = h / log((double)rank + ENTROPY_EPS);
}

int at_detx(const double *x, size_t n, int64_t *num, double *val)
{
    if (!x || !num || !val || n == 0)
        return AT_ERR_ARG;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    if (!(sum > 0.0))
        return AT_ERR_ARG;
    /* Rescaled to mean 1 (e = x n / sum); the product is tracked as a sum of logs so that
     * neither huge spikes nor exact zeros overflow it. */
    const double scale = (double)n / sum;
    double logprod = 0.0;
    for (size_t idx = n; idx-- > 0;) {
        logprod += log(x[idx] * scale);
        if (logprod < 0.0) {
            *num = (int64_t)(n - idx);
            *val = x[idx];
            return AT_OK;
        }
    }
    *num = (int64_t)n;
    *val = x[0];
    return AT_OK;
}
