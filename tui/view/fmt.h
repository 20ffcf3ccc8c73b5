/* SPDX-License-Identifier: Apache-2.0 */
/* fmt.h -- numbers written compactly for the screen. */
#ifndef ALPHATOP_FMT_H
#define ALPHATOP_FMT_H

#include <stdint.h>

/* Formats a step compactly into buf (>= 16 bytes): 950, 12.5k, 1.25M. */
void at_render_step(int64_t step, char *buf);

/* A value in at most 6 columns into buf (>= 16 bytes): "-" for NAN, 3.14, 123, 1e+06. */
void at_render_value(double v, char *buf);

#endif
