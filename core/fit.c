/* fit.c -- the power-law fit of spec section 3 (continuous MLE alpha, KS distance, xmin by
 * minimal distance), with the same arithmetic as the naive scan but far fewer power calls. */
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

/* KS distance of the tail v[0..k-1] (ascending, v[0] = xmin) against the fitted power law,
 * or any value >= stop as soon as the running maximum reaches stop: such a candidate can no
 * longer be the first minimum. Each term is computed exactly as the naive scan does
 * (pow of the ratio), so a completed maximum is bit-identical. *at is where the largest
 * deviation was seen, as a fraction of k, so the next candidate can look there first. */
static double ks_distance(const double *v, size_t k, double alpha, double stop, double *at)
{
    const double e = 1.0 - alpha, x0 = v[0], dk = (double)k;
    /* Neighbouring candidates peak at about the same relative position: probing it first
     * usually proves a losing candidate at once. */
    size_t probe = (size_t)(*at * dk);
    if (probe < k) {
        double d = fabs(1.0 - pow(v[probe] / x0, e) - (double)probe / dk);
        if (d >= stop)
            return d;
    }
    double dmax = 0.0;
    size_t tmax = 0;
    for (size_t t = 0; t < k; t++) {
        double d = fabs(1.0 - pow(v[t] / x0, e) - (double)t / dk);
        if (d > dmax) {
            dmax = d;
            tmax = t;
            if (dmax >= stop)
                break;
        }
    }
    *at = (double)tmax / dk;
    return dmax;
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
    double *suffix = malloc((m + 1) * sizeof *suffix);
    if (!suffix)
        return AT_ERR_NOMEM;
    suffix[m] = 0.0;
    for (size_t j = m; j-- > 0;)
        suffix[j] = suffix[j + 1] + log(v[j]);

    double best_d = INFINITY, best_alpha = NAN, at = 0.0;
    size_t best_i = 0;
    int found = 0;
    for (size_t i = 0; i + 1 < m; i++) {
        const size_t k = m - i;
        const double dk = (double)k;
        const double alpha = 1.0 + dk / (suffix[i] - dk * log(v[i]));
        /* alpha <= 1 is not a normalizable power law: the reference scores it D = 1. Ties
         * keep the first candidate, hence the strict comparisons. */
        double d =
            !(alpha > 1.0) ? 1.0 : ks_distance(v + i, k, alpha, found ? best_d : INFINITY, &at);
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
