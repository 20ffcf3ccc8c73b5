/* SPDX-License-Identifier: Apache-2.0 */
/* verdict.c -- the run's phase, evidence and worst layers for the verdict row. */
#include "verdict.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "scheme.h"

/* Summed squared Frobenius norm (10^log_norm per layer) and mean alpha of the results in
 * column col; the layer count is 0 when the column has none. */
static int column_sums(const at_model *m, int run, at_space space, int col, double *norm,
                       double *alpha)
{
    int n = 0, na = 0;
    *norm = 0;
    *alpha = 0;
    for (int l = 0; l < at_model_num_layers(m, run); l++) {
        const at_cell *c = at_model_cell(m, run, l, space, col);
        if (!c || c->status != AT_FIT_SUCCESS || isnan(c->v[AT_METRIC_LOG_NORM]))
            continue;
        *norm += pow(10.0, c->v[AT_METRIC_LOG_NORM]);
        n++;
        if (!isnan(c->v[AT_METRIC_ALPHA])) {
            *alpha += c->v[AT_METRIC_ALPHA];
            na++;
        }
    }
    *alpha = na ? *alpha / na : NAN;
    return n;
}

/* Norm growth and mean alpha then, between the first column at or after since and the
 * newest column before end that has results. */
static void growth(at_verdict *v, const at_model *m, int run, at_space space, int end)
{
    int last = end - 1;
    double nn = 0, an = 0, n0 = 0, a0 = 0;
    while (last >= 0 && !column_sums(m, run, space, last, &nn, &an))
        last--;
    int first = at_model_snapshot_at(m, run, v->since);
    if (first < 0 || at_model_snapshot_step(m, run, first) < v->since)
        first++;
    while (first < last && !column_sums(m, run, space, first, &n0, &a0))
        first++;
    if (last < 0 || first >= last || !(n0 > 0))
        return;
    v->norm_growth = (sqrt(nn / n0) - 1.0) * 100.0;
    v->alpha_then = a0;
}

void at_verdict_compute(at_verdict *out, const at_model *m, int run, at_space space, int end)
{
    memset(out, 0, sizeof *out);
    out->since = -1;
    out->mean_alpha = out->alpha_then = out->norm_growth = NAN;
    int64_t end_step = end > 0 ? at_model_snapshot_step(m, run, end - 1) : -1;
    /* the latest run phase event, and the one before it: over-fit straight after
     * pre-grokking is core's memorised run */
    at_run_phase seen[2] = {AT_RUN_UNKNOWN, AT_RUN_UNKNOWN};
    int nseen = 0;
    for (int i = at_model_num_events(m) - 1; i >= 0 && nseen < 2; i--) {
        const at_event *e = at_model_event(m, i);
        if (e->run != run || e->run_to == AT_RUN_UNKNOWN || e->space != space || e->step > end_step)
            continue;
        if (!nseen) {
            out->phase = e->run_to;
            out->since = e->since >= 0 ? e->since : e->step;
        }
        seen[nseen++] = e->run_to;
    }
    out->memorised = seen[0] == AT_RUN_OVERFIT && seen[1] == AT_RUN_PRE_GROKKING;
    static const at_severity sev[] = {AT_SEV_NONE, AT_SEV_INFO, AT_SEV_OK, AT_SEV_WARN,
                                      AT_SEV_CRIT};
    out->severity = sev[out->phase];
    double bad[AT_VERDICT_WORST], asum = 0;
    int na = 0;
    for (int l = 0; l < at_model_num_layers(m, run); l++) {
        const at_cell *c = at_model_latest_cell(m, run, l, space, end);
        if (!c)
            continue;
        out->nlayers++;
        double a = c->v[AT_METRIC_ALPHA];
        at_warning w = at_warning_for((at_fit_status)c->status, a);
        out->nburnt += w == AT_WARN_OVER_TRAINED;
        out->nraw += w == AT_WARN_UNDER_TRAINED;
        out->nfailed += w == AT_WARN_FAILED;
        out->ntrapped += c->v[AT_METRIC_TRAPS] > 0;
        if (c->status != AT_FIT_SUCCESS || isnan(a))
            continue;
        out->nfew += c->tail > 0 && c->tail < AT_FEW_TAIL;
        asum += a;
        na++;
        double b = at_alpha_badness(a);
        if (!(b > 0))
            continue;
        /* insertion into the short list of the worst, worst first */
        int k = out->nworst < AT_VERDICT_WORST ? out->nworst++ : AT_VERDICT_WORST;
        while (k > 0 && bad[k - 1] < b) {
            if (k < AT_VERDICT_WORST) {
                bad[k] = bad[k - 1];
                out->worst[k] = out->worst[k - 1];
            }
            k--;
        }
        if (k < AT_VERDICT_WORST) {
            bad[k] = b;
            out->worst[k] = l;
        }
    }
    out->mean_alpha = na ? asum / na : NAN;
    if (out->phase == AT_RUN_COLLAPSE && out->since >= 0)
        growth(out, m, run, space, end);
}

void at_verdict_evidence(const at_verdict *v, char *buf, size_t cap)
{
    switch (v->phase) {
    case AT_RUN_COLLAPSE:
        if (isnan(v->norm_growth))
            snprintf(buf, cap, "the weight norm grows while the alphas stay flat");
        else if (fabs(v->mean_alpha - v->alpha_then) < 0.05)
            snprintf(buf, cap, "weight norm %+.0f%%, mean alpha flat at %.2f", v->norm_growth,
                     v->mean_alpha);
        else
            snprintf(buf, cap, "weight norm %+.0f%%, mean alpha %.2f -> %.2f", v->norm_growth,
                     v->alpha_then, v->mean_alpha);
        break;
    case AT_RUN_OVERFIT:
        if (v->memorised)
            snprintf(buf, cap,
                     "%d of %d layers burnt before any grokking: under weight decay it may "
                     "still grok",
                     v->nburnt, v->nlayers);
        else
            snprintf(buf, cap, "%d of %d layers burnt (alpha < 2)", v->nburnt, v->nlayers);
        break;
    case AT_RUN_GROKKING:
        snprintf(buf, cap, "mean alpha %.2f, %d of %d layers burnt", v->mean_alpha, v->nburnt,
                 v->nlayers);
        break;
    case AT_RUN_PRE_GROKKING:
        snprintf(buf, cap, "mean alpha %.2f, %d of %d layers still raw (alpha > 6)", v->mean_alpha,
                 v->nraw, v->nlayers);
        break;
    default:
        snprintf(buf, cap,
                 v->nlayers ? "core's tracker needs a few snapshots to decide"
                            : "waiting for results");
        break;
    }
}

const char *at_verdict_label(const at_verdict *v)
{
    static const char *const labels[] = {"NO PHASE YET", "PRE-GROKKING", "GROKKING", "OVER-FIT",
                                         "COLLAPSE"};
    return v->memorised ? "MEMORISED" : labels[v->phase];
}
