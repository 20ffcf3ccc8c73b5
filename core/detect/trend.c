/* SPDX-License-Identifier: Apache-2.0 */
/* trend.c -- least-squares slopes of series over training steps (trend.h). */
#include "trend.h"

#include <math.h>

double at_slope(const int64_t *step, const double *value, int n)
{
    /* Least squares over the finite points; steps in thousands so slopes read per 1000 steps. */
    double sx = 0, sy = 0, sxx = 0, sxy = 0, x0 = 0;
    int used = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(value[i]))
            continue;
        double x = (double)step[i] / 1000.0;
        if (used == 0)
            x0 = x;
        x -= x0;
        sx += x;
        sy += value[i];
        sxx += x * x;
        sxy += x * value[i];
        used++;
    }
    if (used < 3)
        return NAN;
    double den = used * sxx - sx * sx;
    return den > 0 ? (used * sxy - sx * sy) / den : NAN;
}
