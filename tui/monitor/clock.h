/* SPDX-License-Identifier: Apache-2.0 */
/* clock.h -- the monitor's two clocks, in seconds as doubles. */
#ifndef ALPHATOP_CLOCK_H
#define ALPHATOP_CLOCK_H

/* CLOCK_MONOTONIC: for ages, lags and deadlines. */
double at_clock_mono(void);

/* CLOCK_REALTIME: Unix time, for what the view shows as a date. */
double at_clock_wall(void);

#endif
