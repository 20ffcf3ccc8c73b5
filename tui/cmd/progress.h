/* SPDX-License-Identifier: Apache-2.0 */
/* progress.h -- how far a long command has come, on stderr: on a terminal a bar with the share
 * done and the time left, redrawn in place at most five times a second (and erased before any
 * other output, at_progress_clear); elsewhere (a log file, a batch job's output) a plain line
 * now and then: after the first second, then every 10 s, later every tenth of the time so far.
 * Work that ends within a second shows nothing. The time left is the time so far scaled by the
 * work still to do, in the caller's own units (e.g. estimated flops), not by counts. */
#ifndef ALPHATOP_PROGRESS_H
#define ALPHATOP_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct at_progress at_progress;

/* A progress display for command cmd ("scan") counting what ("layers") on out; tty: draw a
 * bar (else plain lines). Caller owns return value (at_progress_free); NULL when out of memory.
 */
at_progress *at_progress_new(const char *cmd, const char *what, FILE *out, int tty);

/* done of total items, work_done of work_total units: shows it when due. */
void at_progress_update(at_progress *self, int64_t done, int64_t total, double work_done,
                        double work_total);

/* Erases the bar, if one is drawn, so the next output starts on a clean line. NULL-safe. */
void at_progress_clear(at_progress *self);

/* The end: erases the bar; after plain lines, one closing line with the count and the time.
 * NULL-safe. */
void at_progress_done(at_progress *self, int64_t done);

/* Frees it. NULL-safe. */
void at_progress_free(at_progress *self);

/* The bar's text into buf (n bytes): "[#####.....] 12/30 layers  40%  0:12, 0:18 left"; eta_s
 * < 0: the time left is not known yet ("--:--"). */
void at_progress_bar(char *buf, size_t n, int width, int64_t done, int64_t total, const char *what,
                     double frac, double elapsed_s, double eta_s);

/* A duration as "m:ss" or "h:mm:ss" into buf (n bytes). Returns buf. */
char *at_progress_clock(char *buf, size_t n, double s);

#endif
