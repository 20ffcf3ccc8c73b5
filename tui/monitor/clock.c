/* SPDX-License-Identifier: Apache-2.0 */
/* clock.c -- the monitor's clocks (see clock.h). */
#include "clock.h"

#include <time.h>

static double seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double at_clock_mono(void)
{
    return seconds(CLOCK_MONOTONIC);
}

double at_clock_wall(void)
{
    return seconds(CLOCK_REALTIME);
}
