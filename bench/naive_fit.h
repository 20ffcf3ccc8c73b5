/* SPDX-License-Identifier: Apache-2.0 */
/* naive_fit.h -- the power-law fit of spec section 3 written the obvious way: for every xmin
 * candidate, alpha by the closed form and D by a full scan with one pow() per term, O(n^2).
 * The independent reference that core/fit.c must match bit for bit (bench_exact, test_fit). */
#ifndef ALPHATOP_NAIVE_FIT_H
#define ALPHATOP_NAIVE_FIT_H

#include <math.h>
#include <stddef.h>

/* Fits ascending x[0..n-1]; returns 0 and fills alpha, xmin, D, or returns -1 (failed fit). */
static inline int naive_powerlaw_fit(const double *x, size_t n, double *alpha, double *xmin,
                                     double *D)
{
    size_t lo = 0;
    while (lo < n && !(x[lo] > 1e-5))
        lo++;
    const double *v = x + lo;
    const size_t m = n - lo;
    if (m < 2)
        return -1;
    double best_d = 0.0, best_a = 0.0;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < m; i++) {
        const size_t k = m - i;
        double logs = 0.0;
        for (size_t j = m; j-- > i;)
            logs += log(v[j]);
        const double a = 1.0 + (double)k / (logs - (double)k * log(v[i]));
        double d = 0.0;
        if (!(a > 1.0)) {
            d = 1.0;
        } else {
            for (size_t t = 0; t < k; t++) {
                const double dev =
                    fabs(1.0 - pow(v[i + t] / v[i], 1.0 - a) - (double)t / (double)k);
                if (dev > d)
                    d = dev;
            }
        }
        if (i == 0 || d < best_d) {
            best_d = d;
            best_a = a;
            best_i = i;
        }
    }
    if (!isfinite(best_a))
        return -1;
    *alpha = best_a;
    *xmin = v[best_i];
    *D = best_d;
    return 0;
}

#endif
