/* SPDX-License-Identifier: Apache-2.0 */
/* bench_clock.h -- what a benchmark reports beside its figures: monotonic time, and the
 * machine's load (the machine is shared). Header-only: each bench is one program. */
#ifndef ALPHATOP_BENCH_CLOCK_H
#define ALPHATOP_BENCH_CLOCK_H

#include <stdio.h>
#include <time.h>

/* The clock now() reads: monotonic time, or the process's CPU time (bench_fast --cpu, on one
 * thread: it leaves out the time slices other jobs of a shared machine take). */
static clockid_t bench_clock_id = CLOCK_MONOTONIC;

/* Seconds on bench_clock_id. */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(bench_clock_id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The 1-minute load average, or -1 when /proc/loadavg cannot be read. */
static inline double loadavg(void)
{
    double l = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1.0;
        fclose(f);
    }
    return l;
}

#endif
