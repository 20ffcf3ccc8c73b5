/* collapse.c -- the weights-only generalization-collapse detector (the `collapse` stop rule).
 *
 * alpha < 2 and correlation traps alone cannot tell collapse from a healthy weight-decay run:
 * the WD=0.01 control of spec section 7 shows both while its test accuracy plateaus. What
 * separates them (docs/detection.md has the measurements) is what the optimizer does once
 * the layers are trained: without a force that bounds the weights, the Frobenius norm keeps
 * growing, snapshot after snapshot, while the spectra have stopped changing shape (alpha
 * flat): the weights inflate instead of learning, and test accuracy erodes. The verdict needs
 * all of the following over the trend window, for `confirm` consecutive snapshots:
 *   trained     most eigenvalues belong to layers that are healthy or burnt (not raw);
 *   growing     the summed log_norm rises at >= GROWTH_MIN per 1000 steps and stands at its
 *               running maximum;
 *   monotone    nearly every step of the window increased it (a bounded run wobbles);
 *   stationary  the weighted mean alpha no longer falls faster than ALPHA_SLOPE_MIN per 1000
 *               steps (while it falls fast the run is still grokking). */
#include <math.h>
#include <stdio.h>

#include "phase_internal.h"

enum { TRAPS_UNKNOWN = -1 };

static const double GROWTH_MIN = 1.0e-3;     /* log10 units per 1000 steps: +0.23 %/kstep */
static const double AT_PEAK_TOL = 2.0e-3;    /* log10 units below the running maximum */
static const double MONOTONE_MIN = 0.85;     /* share of increasing steps in the window */
static const double ALPHA_SLOPE_MIN = -0.04; /* per 1000 steps */
static const double UNTRAINED_MAX = 0.25;    /* share of eigenvalues in raw/failed layers */

void at_collapse_init(at_collapse *c)
{
    c->holds = 0;
    c->since = -1;
    c->streak = 0;
    c->streak_since = -1;
    snprintf(c->evidence, sizeof c->evidence, "not enough snapshots yet");
}

static double increasing_share(const at_ring *r)
{
    int up = 0, n = 0;
    int64_t s;
    double prev = NAN, v;
    for (int i = 0; i < r->len; i++) {
        at_ring_get(r, i, &s, &v);
        if (isfinite(prev) && isfinite(v)) {
            up += v > prev;
            n++;
        }
        prev = v;
    }
    return n ? (double)up / n : 0.0;
}

void at_collapse_update(at_collapse *c, const at_collapse_input *in, int confirm)
{
    if (c->holds)
        return;
    const at_ring *ln = in->log_norm;
    if (ln->len < ln->cap) {
        snprintf(c->evidence, sizeof c->evidence, "trend window not full (%d of %d snapshots)",
                 ln->len, ln->cap);
        c->streak = 0;
        return;
    }
    int64_t first_step, last_step;
    double first, last;
    at_ring_get(ln, 0, &first_step, &first);
    at_ring_get(ln, ln->len - 1, &last_step, &last);
    double growth = at_ring_slope(ln);
    double mono = increasing_share(ln);
    double aslope = at_ring_slope(in->alpha);
    double pct = (pow(10.0, (last - first) / 2.0) - 1.0) * 100.0;

    const char *fail = NULL;
    char why[160];
    if (in->untrained_share > UNTRAINED_MAX) {
        snprintf(why, sizeof why, "%.0f%% of eigenvalues in raw/failed layers",
                 in->untrained_share * 100.0);
        fail = why;
    } else if (!(growth >= GROWTH_MIN) || last < in->log_norm_max - AT_PEAK_TOL) {
        snprintf(why, sizeof why, "weight norm not growing (%+.2f%% over %lld steps)", pct,
                 (long long)(last_step - first_step));
        fail = why;
    } else if (mono < MONOTONE_MIN) {
        snprintf(why, sizeof why, "weight norm growth not steady (%.0f%% of steps up)",
                 mono * 100.0);
        fail = why;
    } else if (!(aslope >= ALPHA_SLOPE_MIN)) {
        snprintf(why, sizeof why, "alphas still falling (%.3f per 1000 steps): grokking", aslope);
        fail = why;
    }
    if (fail) {
        c->streak = 0;
        snprintf(c->evidence, sizeof c->evidence, "no collapse: %s", fail);
        return;
    }
    if (c->streak++ == 0)
        c->streak_since = in->step;
    char traps[40] = "";
    if (in->traps != TRAPS_UNKNOWN)
        snprintf(traps, sizeof traps, "; %d correlation traps", in->traps);
    snprintf(c->evidence, sizeof c->evidence,
             "weight norm +%.1f%% over %lld steps (%.0f%% of snapshots up) while alphas are "
             "flat (%+.3f per 1000 steps) in trained layers, %d snapshots in a row%s",
             pct, (long long)(last_step - first_step), mono * 100.0, aslope, c->streak, traps);
    if (c->streak >= confirm) {
        c->holds = 1;
        c->since = c->streak_since;
    }
}
