/* SPDX-License-Identifier: Apache-2.0 */
/* collapse.c -- the weights-only generalization-collapse detector (the `collapse` stop rule).
 *
 * alpha < 2 and correlation traps alone cannot tell collapse from a healthy weight-decay run:
 * the WD=0.01 control of docs/metrics.md section 7 shows both while its test accuracy plateaus.
 * What separates them (docs/detection.md has the measurements) is what the optimizer does once the
 * layers are trained: without a force that bounds the weights, the Frobenius norm keeps growing,
 * snapshot after snapshot, while the spectra have stopped changing shape (alpha flat): the weights
 * inflate instead of learning, and test accuracy erodes. An ordinary healthy run can grow its norm
 * just as steadily; there the growth goes into heavy-tailed layers (alpha near 2), in the collapse
 * runs into layers that stay at alpha ~3.
 *
 * The conditions are judged over a span: the latest SPAN_MIN snapshots, extended back to cover
 * at least opts.collapse_span of the steps trained so far, so that the verdict does not depend
 * on how often the trainer publishes (a burst of growth between close snapshots is not a
 * trend). All must hold for opts.collapse_confirm consecutive snapshots covering at least
 * opts.collapse_hold of the steps so far:
 *   grokked     the run has been grokking (a run that never generalised, like a transformer
 *               memorising without weight decay, inflates its weights the same way);
 *   trained     most eigenvalues belong to layers that are healthy or burnt (not raw);
 *   growing     the summed log_norm rises at >= GROWTH_MIN per 1000 steps and stands at its
 *               running maximum;
 *   monotone    nearly every snapshot of the span increased it (a bounded run wobbles);
 *   stationary  the weighted mean alpha moves less than ALPHA_SLOPE_MAX per 1000 steps either
 *               way (while it falls the run is still grokking; while it rises it is unlearning
 *               or regularising, not inflating);
 *   not heavy-tailed growth  the layers' median alphas over the span, each weighted by how
 *               fast that layer's squared norm grows, average at least opts.collapse_alpha_min.
 * Over the same spans it measures weight decay's cleanup (every layer shrinking), by which
 * phase.c dates the grokking of a run that memorised first. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/status.h"
#include "phase_internal.h"
#include "trend.h"
#include "util.h"

static const int SPAN_MIN = 5;              /* snapshots: fewest in a span */
static const double GROWTH_MIN = 1.0e-3;    /* log10 units per 1000 steps: +0.23 %/kstep */
static const double AT_PEAK_TOL = 2.0e-3;   /* log10 units below the running maximum */
static const double MONOTONE_MIN = 0.85;    /* share of increasing steps in the span */
static const double ALPHA_SLOPE_MAX = 0.04; /* |d alpha| per 1000 steps */
static const double UNTRAINED_MAX = 0.25;   /* share of eigenvalues in raw/failed layers */
static const double SHRINK_MIN = 0.06;      /* log10 units over a span: -13 % squared norm */

void at_collapse_init(at_collapse *c, const at_phase_opts *o)
{
    memset(c, 0, sizeof *c);
    c->confirm = o->collapse_confirm;
    c->span = o->collapse_span;
    c->hold = o->collapse_hold;
    c->alpha_min = o->collapse_alpha_min;
    c->log_norm_max = -INFINITY;
    c->since = -1;
    c->streak_since = -1;
    snprintf(c->evidence, sizeof c->evidence, "not enough snapshots yet");
}

void at_collapse_free(at_collapse *c)
{
    free(c->step);
    free(c->log_norm);
    free(c->alpha);
    free(c->layer_norm);
    free(c->layer_alpha);
    free(c->scratch);
}

/* Per-layer history laid out for cap snapshots of stride layers, the first n rows copied
 * from the current layout and new columns NAN. */
static int relayout(at_collapse *c, size_t cap, size_t stride)
{
    size_t size = cap * stride > 0 ? cap * stride : 1;
    double *ln = malloc(size * sizeof *ln);
    double *la = malloc(size * sizeof *la);
    if (!ln || !la) {
        free(ln);
        free(la);
        return AT_ERR_NOMEM;
    }
    for (size_t i = 0; i < c->n; i++)
        for (size_t j = 0; j < stride; j++) {
            int old = j < c->stride;
            ln[i * stride + j] = old ? c->layer_norm[i * c->stride + j] : NAN;
            la[i * stride + j] = old ? c->layer_alpha[i * c->stride + j] : NAN;
        }
    free(c->layer_norm);
    free(c->layer_alpha);
    c->layer_norm = ln;
    c->layer_alpha = la;
    c->stride = stride;
    return AT_OK;
}

static int append(at_collapse *c, const at_collapse_input *in)
{
    if (c->n == c->cap) {
        /* The four arrays share c->cap; at_grow tracks a capacity per buffer. */
        size_t cap = c->cap ? c->cap * 2 : 64, had[4] = {c->cap, c->cap, c->cap, c->cap};
        if (at_grow((void **)&c->step, &had[0], cap, sizeof *c->step) ||
            at_grow((void **)&c->log_norm, &had[1], cap, sizeof *c->log_norm) ||
            at_grow((void **)&c->alpha, &had[2], cap, sizeof *c->alpha) ||
            at_grow((void **)&c->scratch, &had[3], cap, sizeof *c->scratch) ||
            relayout(c, cap, c->stride))
            return AT_ERR_NOMEM;
        c->cap = cap;
    }
    if (in->n_layers > c->stride && relayout(c, c->cap, in->n_layers))
        return AT_ERR_NOMEM;
    size_t row = c->n * c->stride;
    for (size_t j = 0; j < c->stride; j++) {
        c->layer_norm[row + j] = j < in->n_layers ? in->norm[j] : NAN;
        c->layer_alpha[row + j] = j < in->n_layers ? in->alpha[j] : NAN;
    }
    c->step[c->n] = in->step;
    c->log_norm[c->n] = in->log_norm;
    c->alpha[c->n] = in->weighted_alpha;
    c->n++;
    return AT_OK;
}

/* First index of the span ending at the latest snapshot; drops history no later span needs
 * (spans only move forward: their start step never decreases). */
static size_t span_start(at_collapse *c)
{
    size_t last = c->n - 1, i = c->n - (size_t)SPAN_MIN;
    double from = (double)c->step[last] * (1.0 - c->span);
    while (i > 0 && (double)c->step[i] > from)
        i--;
    if (i > 1024 && i > c->n / 2) {
        size_t k = c->n - i;
        memmove(c->step, c->step + i, k * sizeof *c->step);
        memmove(c->log_norm, c->log_norm + i, k * sizeof *c->log_norm);
        memmove(c->alpha, c->alpha + i, k * sizeof *c->alpha);
        memmove(c->layer_norm, c->layer_norm + i * c->stride,
                k * c->stride * sizeof *c->layer_norm);
        memmove(c->layer_alpha, c->layer_alpha + i * c->stride,
                k * c->stride * sizeof *c->layer_alpha);
        c->n = k;
        i = 0;
    }
    return i;
}

static double increasing_share(const double *v, size_t n)
{
    int up = 0, steps = 0;
    for (size_t i = 1; i < n; i++)
        if (isfinite(v[i - 1]) && isfinite(v[i])) {
            up += v[i] > v[i - 1];
            steps++;
        }
    return steps ? (double)up / steps : 0.0;
}

/* Median of the finite values among v[0], v[stride], ... (k of them); NAN if none. Uses
 * c->scratch. */
static double median_strided(at_collapse *c, const double *v, size_t k, size_t stride)
{
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (isfinite(v[i * stride]))
            c->scratch[m++] = v[i * stride];
    if (m == 0)
        return NAN;
    at_sort_doubles(c->scratch, m);
    return m % 2 ? c->scratch[m / 2] : 0.5 * (c->scratch[m / 2 - 1] + c->scratch[m / 2]);
}

/* Slope per 1000 steps of layer j's log10 squared norm over the span's k snapshots from i0
 * (NAN with fewer than 3 finite points). Uses c->scratch. */
static double layer_log_norm_slope(at_collapse *c, size_t i0, size_t k, size_t j)
{
    const double *nv = c->layer_norm + i0 * c->stride + j;
    for (size_t i = 0; i < k; i++)
        c->scratch[i] = nv[i * c->stride] > 0 ? log10(nv[i * c->stride]) : NAN;
    return at_slope(c->step + i0, c->scratch, (int)k);
}

/* Over the span's k snapshots from i0: each layer's median alpha, weighted by how fast its
 * squared norm grows (slope of log10 norm times the latest norm, i.e. d norm / d step up to a
 * constant); layers that do not grow get no weight. NAN when no layer grows. The median makes
 * a fit that jumps between two xmin candidates count once, not as a trend. */
static double growth_weighted_alpha(at_collapse *c, size_t i0, size_t k)
{
    double num = 0, den = 0;
    for (size_t j = 0; j < c->stride; j++) {
        double g = layer_log_norm_slope(c, i0, k, j) * c->layer_norm[(i0 + k - 1) * c->stride + j];
        if (!(g > 0))
            continue;
        double a = median_strided(c, c->layer_alpha + i0 * c->stride + j, k, c->stride);
        if (!isfinite(a))
            continue;
        num += g * a;
        den += g;
    }
    return den > 0 ? num / den : NAN;
}

/* Weight decay's cleanup over the span's k snapshots from i0: every layer with a trend
 * shrinks and the summed log_norm falls by at least SHRINK_MIN (least-squares fit times the
 * span's length). Sets c->shrinking and c->shrink_drop. */
static void update_shrinking(at_collapse *c, size_t i0, size_t k)
{
    double kstep = (double)(c->step[i0 + k - 1] - c->step[i0]) / 1000.0;
    c->shrink_drop = -at_slope(c->step + i0, c->log_norm + i0, (int)k) * kstep;
    int falling = 0, rising = 0;
    for (size_t j = 0; j < c->stride; j++) {
        double s = layer_log_norm_slope(c, i0, k, j);
        falling += s < 0;
        rising += s >= 0;
    }
    c->shrinking = falling > 0 && rising == 0 && c->shrink_drop >= SHRINK_MIN;
}

int at_collapse_update(at_collapse *c, const at_collapse_input *in)
{
    if (c->holds)
        return AT_OK;
    if (append(c, in))
        return AT_ERR_NOMEM;
    if (in->log_norm > c->log_norm_max)
        c->log_norm_max = in->log_norm;
    if (c->n < (size_t)SPAN_MIN) {
        snprintf(c->evidence, sizeof c->evidence, "trend span not full (%zu of %d snapshots)", c->n,
                 SPAN_MIN);
        c->streak = 0;
        return AT_OK;
    }
    size_t i0 = span_start(c), k = c->n - i0, last = c->n - 1;
    update_shrinking(c, i0, k);
    const int64_t *st = c->step + i0;
    int64_t span = c->step[last] - st[0];
    double growth = at_slope(st, c->log_norm + i0, (int)k);
    double mono = increasing_share(c->log_norm + i0, k);
    double aslope = at_slope(st, c->alpha + i0, (int)k);
    double pct = (pow(10.0, (c->log_norm[last] - c->log_norm[i0]) / 2.0) - 1.0) * 100.0;
    double galpha = growth_weighted_alpha(c, i0, k);

    char why[160] = "";
    if (!in->grokked)
        snprintf(why, sizeof why, "the run has not grokked (no generalization to lose)");
    else if (in->untrained_share > UNTRAINED_MAX)
        snprintf(why, sizeof why, "%.0f%% of eigenvalues in raw/failed layers",
                 in->untrained_share * 100.0);
    else if (!(growth >= GROWTH_MIN) || c->log_norm[last] < c->log_norm_max - AT_PEAK_TOL)
        snprintf(why, sizeof why, "weight norm not growing (%+.2f%% over %lld steps)", pct,
                 (long long)span);
    else if (mono < MONOTONE_MIN)
        snprintf(why, sizeof why, "weight norm growth not steady (%.0f%% of snapshots up)",
                 mono * 100.0);
    else if (!(fabs(aslope) <= ALPHA_SLOPE_MAX))
        snprintf(why, sizeof why, "alphas still moving (%+.3f per 1000 steps)", aslope);
    else if (c->alpha_min > 0 && !(galpha >= c->alpha_min))
        snprintf(why, sizeof why, "the norm grows in heavy-tailed layers (alpha %.2f < %.2f)",
                 galpha, c->alpha_min);
    if (why[0]) {
        c->streak = 0;
        snprintf(c->evidence, sizeof c->evidence, "no collapse: %s", why);
        return AT_OK;
    }
    if (c->streak++ == 0)
        c->streak_since = in->step;
    char traps[40] = "";
    if (in->traps >= 0)
        snprintf(traps, sizeof traps, "; %d correlation traps", in->traps);
    snprintf(c->evidence, sizeof c->evidence,
             "weight norm +%.1f%% over %lld steps (%.0f%% of snapshots up) while alphas are "
             "flat (%+.3f per 1000 steps) in trained layers (growing layers at alpha %.2f), "
             "%d snapshots in a row%s",
             pct, (long long)span, mono * 100.0, aslope, galpha, c->streak, traps);
    if (c->streak >= c->confirm &&
        (double)(in->step - c->streak_since) >= c->hold * (double)in->step) {
        c->holds = 1;
        c->since = c->streak_since;
    }
    return AT_OK;
}
