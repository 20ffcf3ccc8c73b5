/* SPDX-License-Identifier: Apache-2.0 */
/* fit.c -- the power-law fit of docs/metrics.md section 3 (continuous MLE alpha, KS distance, xmin
 * by minimal distance), with the same arithmetic as the naive scan but far fewer power calls. */
#include <math.h>
#include <stdlib.h>

#include "alphatop/htsr.h"

/* Eigenvalues at or below this are not fitted (the reference's EVALS_THRESH). */
#define FIT_THRESHOLD 1e-5

static void fit_failed(at_fit *out)
{
    out->status = AT_FIT_FAILED;
    out->alpha = out->xmin = out->D = out->sigma = -1.0;
    out->xmax = NAN;
    out->num_pl_spikes = -1;
    out->xmin_index = -1;
}

/* Coarse stride of the KS scan: the deviation is evaluated every KS_STRIDE points first, and
 * the points in between only where they could hold a larger deviation. */
#define KS_STRIDE 8
/* Slack on that bound for the round-off of the evaluated terms (each good to ~1e-16). */
#define KS_SLACK 1e-12
/* Candidates scored up front to bound the main scan (about m/2, 3m/4, 7m/8, ...). */
#define FIT_SEEDS 6

/* KS distance of the tail v[0..k-1] (ascending, v[0] = xmin) against the fitted power law,
 * or any value >= stop as soon as the running maximum reaches stop: such a candidate can no
 * longer be the first minimum. Every evaluated term is computed exactly as the naive scan
 * computes it (one pow of the ratio), and the maximum is attained at an evaluated term, so a
 * completed result is bit-identical to the naive one. Points between two coarse points t1 < t2
 * are skipped when they provably cannot beat the running maximum: the fitted CDF F is
 * monotone, so there |F - t/k| <= max(F(t2) - t1/k, t2/k - F(t1)). cdf holds k/KS_STRIDE + 2
 * doubles of scratch. */
static double ks_distance(const double *v, size_t k, double alpha, double stop, double *cdf)
{
    const double e = 1.0 - alpha, x0 = v[0], dk = (double)k;
    double dmax = 0.0;
    size_t nc = 0;
    for (size_t t = 0;; t += KS_STRIDE) {
        if (t > k - 1)
            t = k - 1;
        const double F = 1.0 - pow(v[t] / x0, e);
        const double d = fabs(F - (double)t / dk);
        cdf[nc++] = F;
        if (d > dmax) {
            dmax = d;
            if (dmax >= stop)
                return dmax;
        }
        if (t == k - 1)
            break;
    }
    for (size_t j = 0; j + 1 < nc; j++) {
        const size_t t1 = j * KS_STRIDE, t2 = j + 2 == nc ? k - 1 : t1 + KS_STRIDE;
        const double ub = fmax(cdf[j + 1] - (double)t1 / dk, (double)t2 / dk - cdf[j]);
        if (ub + KS_SLACK < dmax)
            continue;
        for (size_t t = t1 + 1; t < t2; t++) {
            const double d = fabs(1.0 - pow(v[t] / x0, e) - (double)t / dk);
            if (d > dmax) {
                dmax = d;
                if (dmax >= stop)
                    return dmax;
            }
        }
    }
    return dmax;
}

/* Candidate xmin = v[i] of ascending v[0..m-1], given suffix sums of logs: its alpha (into
 * *alpha_out when not NULL) and its KS distance, or a value >= stop (see ks_distance). */
static double candidate(const double *v, size_t m, const double *suffix, size_t i, double stop,
                        double *cdf, double *alpha_out)
{
    const size_t k = m - i;
    const double dk = (double)k;
    const double alpha = 1.0 + dk / (suffix[i] - dk * log(v[i]));
    if (alpha_out)
        *alpha_out = alpha;
    /* alpha <= 1 is not a normalizable power law: the reference scores it D = 1. */
    return !(alpha > 1.0) ? 1.0 : ks_distance(v + i, k, alpha, stop, cdf);
}

int at_powerlaw_fit(const double *x, size_t n, at_fit *out)
{
    if (!out || (!x && n))
        return AT_ERR_ARG;
    fit_failed(out);
    for (size_t i = 1; i < n; i++)
        if (!(x[i - 1] <= x[i]))
            return AT_ERR_ARG;
    size_t lo = 0;
    while (lo < n && !(x[lo] > FIT_THRESHOLD))
        lo++;
    const double *v = x + lo;
    const size_t m = n - lo;
    if (m < 2)
        return AT_OK;

    /* suffix[i] = sum_{j>=i} ln v[j], accumulated from the largest value down, which is the
     * order the naive scan sums in, so alpha is bit-identical to it. */
    double *suffix = malloc((m + 1 + m / KS_STRIDE + 2) * sizeof *suffix);
    if (!suffix)
        return AT_ERR_NOMEM;
    double *cdf = suffix + m + 1;
    suffix[m] = 0.0;
    for (size_t j = m; j-- > 0;)
        suffix[j] = suffix[j + 1] + log(v[j]);

    /* A few candidates spread over the tail are scored exactly first: the smallest of their
     * distances (seed_d, first at seed_i) lets most candidates of the main scan stop early. A
     * candidate before seed_i may still tie it and win (first on ties), hence nextafter. */
    double seed_d = INFINITY;
    size_t seed_i = 0;
    for (size_t p = 1; p <= FIT_SEEDS; p++) {
        const size_t i = (m - 2) - (m - 2) / ((size_t)1 << p);
        const double d = candidate(v, m, suffix, i, INFINITY, cdf, NULL);
        if (d < seed_d || (d == seed_d && i < seed_i)) {
            seed_d = d;
            seed_i = i;
        }
    }
    double best_d = INFINITY, best_alpha = NAN;
    size_t best_i = 0;
    int found = 0;
    for (size_t i = 0; i + 1 < m; i++) {
        double stop = found ? best_d : INFINITY;
        if (i < seed_i)
            stop = fmin(stop, nextafter(seed_d, INFINITY));
        double alpha;
        const double d = candidate(v, m, suffix, i, stop, cdf, &alpha);
        /* Ties keep the first candidate, hence the strict comparison. */
        if (!found || d < best_d) {
            found = 1;
            best_d = d;
            best_alpha = alpha;
            best_i = i;
        }
    }
    free(suffix);

    if (!isfinite(best_alpha))
        return AT_OK;
    const double xmin = v[best_i];
    size_t first = 0;
    while (first < n && x[first] < xmin)
        first++;
    out->status = AT_FIT_SUCCESS;
    out->alpha = best_alpha;
    out->D = best_d;
    out->xmin = xmin;
    out->xmax = v[m - 1];
    out->sigma = (best_alpha - 1.0) / sqrt((double)(m - best_i));
    out->num_pl_spikes = (int64_t)(n - first);
    out->xmin_index = (int64_t)best_i;
    return AT_OK;
}
