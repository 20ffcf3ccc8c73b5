/* SPDX-License-Identifier: Apache-2.0 */
/* mp.c -- Marchenko-Pastur bulk fit (docs/metrics.md section 5), by the reference's method: a
 * kernel density estimate of the rescaled spectrum, a brute-force scan of the bulk width sigma for
 * the least-squares match of the MP density, then a local refinement. See docs/core.md. */
#include <math.h>
#include <stdlib.h>

#include "alphatop/htsr.h"

#define KDE_BANDWIDTH 0.1 /* linear kernel half-width, in rescaled units */
#define KDE_POINTS 1000   /* density evaluated on [0, max + 0.5] */
#define KDE_FLOOR 0.01    /* grid points with less density are not fitted */
#define PENALTY 1000.0    /* residual of an MP bulk that cannot explain the density's peak */

typedef struct kde {
    double x[KDE_POINTS], y[KDE_POINTS];
    int n;       /* grid points kept (density above KDE_FLOOR) */
    double peak; /* grid x of the largest density */
    double xmax; /* largest kept grid x */
} kde;

/* Linear-kernel density of ascending v[0..n-1] on the grid, keeping points above KDE_FLOOR. */
static void kde_build(const double *v, size_t n, kde *k)
{
    const double h = KDE_BANDWIDTH, top = v[n - 1] + 0.5;
    size_t lo = 0;
    double best = -1.0;
    k->n = 0;
    k->peak = k->xmax = 0.0;
    for (int g = 0; g < KDE_POINTS; g++) {
        const double xg = top * g / (KDE_POINTS - 1);
        while (lo < n && v[lo] <= xg - h)
            lo++;
        double s = 0.0;
        for (size_t i = lo; i < n && v[i] < xg + h; i++)
            s += 1.0 - fabs(xg - v[i]) / h;
        const double y = s / ((double)n * h);
        if (y > KDE_FLOOR) {
            k->x[k->n] = xg;
            k->y[k->n] = y;
            if (y > best) {
                best = y;
                k->peak = xg;
            }
            k->xmax = xg;
            k->n++;
        }
    }
}

/* Sum of squared differences between the MP (Q != 1) or quarter-circle (Q == 1, singular
 * values) density of width sigma and the estimate. */
static double residual(const kde *k, double Q, double sigma)
{
    double r = 0.0;
    const double s2 = sigma * sigma;
    if (Q == 1.0) {
        for (int g = 0; g < k->n; g++) {
            const double x = k->x[g];
            const double y = x < 2.0 ? sqrt(4.0 - x * x) / (M_PI * s2) : 0.0;
            r += (y - k->y[g]) * (y - k->y[g]);
        }
        return r;
    }
    const double iq = 1.0 / Q, b = pow(sigma * (1.0 + sqrt(iq)), 2),
                 a = pow(sigma * (1.0 - sqrt(iq)), 2);
    if (b < k->peak || b > k->xmax || a > k->peak)
        return PENALTY * PENALTY * k->n;
    for (int g = 0; g < k->n; g++) {
        const double x = k->x[g];
        const double y =
            x > a && x < b && x > 0.0 ? sqrt((b - x) * (x - a)) / (2.0 * M_PI * s2 * x * iq) : 0.0;
        r += (y - k->y[g]) * (y - k->y[g]);
    }
    return r;
}

int at_mp_fit(const double *x, size_t n, double Q, int64_t M, at_mp *out)
{
    if (!x || !out || n < 2 || !(Q > 0.0) || M <= 0)
        return AT_ERR_ARG;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    if (!(sum > 0.0))
        return AT_ERR_ARG;
    const double scale = (double)n / sum; /* rescaled spectrum has mean 1 */
    double *v = malloc(n * sizeof *v);
    kde *k = malloc(sizeof *k);
    if (!v || !k) {
        free(v);
        free(k);
        return AT_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = Q == 1.0 ? sqrt(x[i] * scale) : x[i] * scale;
    const double emax = x[n - 1] * scale;
    kde_build(v, n, k);
    free(v);

    /* The scan covers 0.05 .. 2 times the width whose bulk edge is the largest eigenvalue. */
    const double s0 = sqrt(emax) / (1.0 + 1.0 / sqrt(Q)), step = 0.01 * s0;
    double best = s0 * 0.05, best_r = INFINITY;
    for (int i = 5; i < 200; i++) {
        const double s = s0 * i / 100.0, r = residual(k, Q, s);
        if (r < best_r) {
            best_r = r;
            best = s;
        }
    }
    /* Golden-section refinement inside the neighbouring grid cells (the reference finishes
     * with a simplex search from the best grid point). */
    const double phi = (sqrt(5.0) - 1.0) / 2.0;
    double lo = best - step, hi = best + step;
    double c = hi - phi * (hi - lo), d = lo + phi * (hi - lo);
    double rc = residual(k, Q, c), rd = residual(k, Q, d);
    for (int it = 0; it < 40; it++) {
        if (rc < rd) {
            hi = d;
            d = c;
            rd = rc;
            c = hi - phi * (hi - lo);
            rc = residual(k, Q, c);
        } else {
            lo = c;
            c = d;
            rc = rd;
            d = lo + phi * (hi - lo);
            rd = residual(k, Q, d);
        }
    }
    const double mid = 0.5 * (lo + hi);
    const double sigma = residual(k, Q, mid) < best_r ? mid : best;
    free(k);

    const double bulk_max = pow(sigma * (1.0 + 1.0 / sqrt(Q)), 2);
    const double bulk_min = pow(sigma * (1.0 - 1.0 / sqrt(Q)), 2);
    /* Tracy-Widom scale of the largest bulk eigenvalue; its square root is the margin. */
    const double tw = pow(bulk_max, 2.0 / 3.0) / (sqrt(Q) * pow((double)M, 2.0 / 3.0));
    int64_t spikes = 0;
    for (size_t i = 0; i < n; i++)
        spikes += x[i] * scale > bulk_max + sqrt(tw);
    out->sigma = sigma;
    out->bulk_max = bulk_max / scale;
    out->bulk_min = bulk_min / scale;
    out->softrank = bulk_max / emax;
    out->num_spikes = spikes;
    return AT_OK;
}
