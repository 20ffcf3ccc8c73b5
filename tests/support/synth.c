/* synth.c -- seeded synthetic runs (tests, benches, the view driver). */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* splitmix64: tiny, seedable, good enough for fake data */
static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Uniform in [0, 1) from a hash of (seed, a, b). */
static double unif(uint64_t seed, uint64_t a, uint64_t b)
{
    return (double)(mix(mix(seed ^ mix(a)) ^ b) >> 11) / 9007199254740992.0;
}

int at_synth_run(at_model *m, const char *id, int nlayers)
{
    static const char *const parts[] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
    int run = at_model_add_run(m, id, id, "synthetic");
    if (run < 0)
        return run;
    for (int i = 0; i < nlayers; i++) {
        char name[64];
        snprintf(name, sizeof name, "h.%d.%s", i / 4, parts[i % 4]);
        int64_t shape[2] = {768, i % 4 == 2 ? 3072 : 768};
        int rc = at_model_add_layer(m, run, name, AT_KIND_LINEAR, 2, shape);
        if (rc < 0)
            return rc;
    }
    at_model_run(m, run)->interval = 100;
    return run;
}

int at_synth_snapshot(at_model *m, int run, int k, double t, int spectra, uint64_t seed)
{
    int64_t step = 100 * (int64_t)(k + 1);
    int rc = at_model_add_snapshot(m, run, step, t);
    if (rc < 0)
        return rc;
    int nl = at_model_num_layers(m, run);
    for (int i = 0; i < nl; i++) {
        double a0 = 6.0 + 3.0 * unif(seed, (uint64_t)i, 1);
        double a1 = 1.2 + 3.3 * unif(seed, (uint64_t)i, 2);
        double tau = 10.0 + 30.0 * unif(seed, (uint64_t)i, 3);
        double noise = 0.1 * (unif(seed, (uint64_t)i, 1000 + (uint64_t)k) - 0.5);
        double alpha = a1 + (a0 - a1) * exp(-k / tau) + noise;
        at_metrics me;
        memset(&me, 0, sizeof me);
        me.status = AT_FIT_SUCCESS;
        me.mode = k == 0 ? AT_MODE_GRAM : AT_MODE_WARM;
        me.alpha = alpha;
        me.xmin = 0.5;
        me.log_spectral_norm = 0.5 + 0.02 * k + 0.3 * unif(seed, (uint64_t)i, 4);
        me.log_norm = 1.0 + 0.01 * k + 0.5 * unif(seed, (uint64_t)i, 5);
        me.alpha_weighted = alpha * me.log_spectral_norm;
        me.stable_rank = 5.0 + 40.0 * unif(seed, (uint64_t)i, 6) / (1.0 + 0.05 * k);
        me.num_traps = alpha < 2.0 ? (int64_t)((2.0 - alpha) * 8.0) : 0;
        me.detx_val = 0.5 * pow(10.0, 0.3 * (alpha - 3.0));
        if (i % 11 == 5 && k % 13 == 7) {
            me.status = AT_FIT_FAILED;
            me.alpha = me.alpha_weighted = NAN;
        }
        rc = at_model_add_cell(m, run, i, AT_SPACE_W, step, &me);
        if (rc < 0)
            return rc;
        if (!spectra || me.status != AT_FIT_SUCCESS)
            continue;
        /* a bulk below xmin and a power-law tail above it (inverse-CDF sampling) */
        enum { N = 256 };
        double ev[N];
        for (int j = 0; j < N; j++) {
            double u = (j + 0.5) / N;
            ev[j] = j < N / 2 ? 0.01 + 0.49 * u * 2
                              : me.xmin * pow(1.0 - (u - 0.5) * 2 * 0.999, -1.0 / (alpha - 1.0));
        }
        rc = at_model_set_spectrum(m, run, i, AT_SPACE_W, step, ev, N, me.xmin, alpha);
        if (rc < 0)
            return rc;
    }
    double loss = 2.3 * exp(-k / 15.0) + 0.05 + 0.02 * unif(seed, 99, (uint64_t)k);
    double acc = 1.0 - 0.9 * exp(-k / 12.0) - 0.01 * unif(seed, 98, (uint64_t)k);
    if ((rc = at_model_add_scalar(m, run, "loss", step, loss)) < 0)
        return rc;
    return at_model_add_scalar(m, run, "acc", step, acc);
}

int at_synth_track(at_model *m, int run, int k, at_phase_tracker *t)
{
    int64_t step = 100 * (int64_t)(k + 1);
    int col = at_model_snapshot_at(m, run, step);
    if (col < 0 || at_model_snapshot_step(m, run, col) != step)
        return AT_ERR_ARG;
    for (int i = 0; i < at_model_num_layers(m, run); i++) {
        const at_cell *c = at_model_cell(m, run, i, AT_SPACE_W, col);
        if (!c || c->status == AT_CELL_EMPTY)
            continue;
        at_metrics me;
        at_metrics_init(&me, (at_mode)c->mode);
        me.status = (at_fit_status)c->status;
        me.alpha = c->v[AT_METRIC_ALPHA];
        me.log_norm = c->v[AT_METRIC_LOG_NORM];
        me.num_traps = isnan(c->v[AT_METRIC_TRAPS]) ? -1 : (int64_t)c->v[AT_METRIC_TRAPS];
        int rc = at_phase_tracker_feed_layer(t, step, at_model_layer(m, run, i)->name, &me, NAN);
        if (rc < 0)
            return rc;
    }
    const at_phase_event *ev;
    size_t n;
    int rc = at_phase_tracker_end_snapshot(t, step, &ev, &n);
    for (size_t i = 0; rc == AT_OK && i < n; i++)
        if (ev[i].kind == AT_EVENT_LAYER_PHASE) {
            int added = at_model_add_phase_event(m, run, AT_SPACE_W, &ev[i], NULL);
            rc = added < 0 ? added : AT_OK;
        }
    return rc;
}
