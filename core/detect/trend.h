/* SPDX-License-Identifier: Apache-2.0 */
/* trend.h -- (internal to core) the trend of a series over training steps, for the phase
 * tracker and the collapse detector. Depends on nothing else in core. */
#ifndef ALPHATOP_CORE_TREND_H
#define ALPHATOP_CORE_TREND_H

#include <stdint.h>

/* Least-squares slope of value over step, per 1000 steps, over the finite values of the n
 * pairs; NAN with fewer than 3 finite values or all at one step. */
double at_slope(const int64_t *step, const double *value, int n);

#endif
