/* SPDX-License-Identifier: Apache-2.0 */
/* progress.c -- a progress bar or plain progress lines on stderr (progress.h). */
#include "progress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Nothing shows before the work has run this long (s). */
#define QUIET_S 1.0
/* A terminal bar is redrawn at most this often (s). */
#define REDRAW_S 0.2
/* Plain lines: this far apart at first (s), later a tenth of the time so far. */
#define LINE_S 10.0

struct at_progress {
    const char *cmd, *what;
    FILE *out;
    int tty;
    double t0, last; /* start; last drawing or line (monotonic s); last < 0: none yet */
    int drawn;       /* a bar is on the terminal's current line */
    int lines;       /* plain lines written */
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

at_progress *at_progress_new(const char *cmd, const char *what, FILE *out, int tty)
{
    at_progress *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    *self = (at_progress){cmd, what, out, tty, mono(), -1.0, 0, 0};
    return self;
}

void at_progress_free(at_progress *self)
{
    free(self);
}

char *at_progress_clock(char *buf, size_t n, double s)
{
    const long t = s > 0 ? (long)floor(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

void at_progress_bar(char *buf, size_t n, int width, int64_t done, int64_t total, const char *what,
                     double frac, double elapsed_s, double eta_s)
{
    char bar[128], el[32], left[32];
    if (width > (int)sizeof bar - 1)
        width = (int)sizeof bar - 1;
    frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    const int full = (int)floor(frac * width);
    for (int i = 0; i < width; i++)
        bar[i] = i < full ? '#' : '.';
    bar[width] = '\0';
    if (eta_s < 0)
        snprintf(left, sizeof left, "--:--");
    else
        at_progress_clock(left, sizeof left, eta_s);
    snprintf(buf, n, "[%s] %lld/%lld %s %3d%%  %s, %s left", bar, (long long)done, (long long)total,
             what, (int)floor(100 * frac), at_progress_clock(el, sizeof el, elapsed_s), left);
}

void at_progress_update(at_progress *self, int64_t done, int64_t total, double work_done,
                        double work_total)
{
    if (!self)
        return;
    const double now = mono(), elapsed = now - self->t0;
    if (elapsed < QUIET_S)
        return;
    const double frac = work_total > 0 ? work_done / work_total : 0.0;
    const double eta = frac > 0 ? elapsed * (1.0 - frac) / frac : -1.0;
    if (self->tty) {
        if (self->last >= 0 && now - self->last < REDRAW_S)
            return;
        char line[256];
        at_progress_bar(line, sizeof line, 30, done, total, self->what, frac, elapsed, eta);
        fprintf(self->out, "\r\033[K%s", line);
        fflush(self->out);
        self->drawn = 1;
    } else {
        const double gap = elapsed / 10 > LINE_S ? elapsed / 10 : LINE_S;
        if (self->last >= 0 && now - self->last < gap)
            return;
        fprintf(self->out, "alphatop %s: %lld/%lld %s (%d%%), %.0f s", self->cmd, (long long)done,
                (long long)total, self->what, (int)floor(100 * frac), elapsed);
        if (eta >= 0)
            fprintf(self->out, ", about %.0f s left", eta);
        fputc('\n', self->out);
        self->lines++;
    }
    self->last = now;
}

void at_progress_clear(at_progress *self)
{
    if (self && self->drawn) {
        fputs("\r\033[K", self->out);
        self->drawn = 0;
    }
}

void at_progress_done(at_progress *self, int64_t done)
{
    if (!self)
        return;
    at_progress_clear(self);
    if (self->lines)
        fprintf(self->out, "alphatop %s: %lld %s in %.0f s\n", self->cmd, (long long)done,
                self->what, mono() - self->t0);
}
