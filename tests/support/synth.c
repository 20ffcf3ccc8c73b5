/* SPDX-License-Identifier: Apache-2.0 */
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

static const at_synth_opts defaults = {0};

/* Name and shape of layer i of n; the modular transformer's embedding says so in *kind. */
static void layer_name(int i, int n, int transformer, char *name, size_t cap, int64_t shape[2],
                       at_layer_kind *kind)
{
    /* examples/torch_modular.py at its defaults: p 59, d_model 128, d_mlp 512 */
    static const struct {
        const char *name;
        int64_t rows, cols;
    } modular[AT_SYNTH_MODULAR_LAYERS] = {
        {"embed.weight", 60, 128},      {"attn.W_Q.weight", 128, 128},
        {"attn.W_K.weight", 128, 128},  {"attn.W_V.weight", 128, 128},
        {"attn.W_O.weight", 128, 128},  {"mlp.W_in.weight", 512, 128},
        {"mlp.W_out.weight", 128, 512}, {"unembed.weight", 59, 128}};
    *kind = AT_KIND_LINEAR;
    if (transformer == AT_SYNTH_MODULAR) {
        snprintf(name, cap, "%s", modular[i].name);
        shape[0] = modular[i].rows;
        shape[1] = modular[i].cols;
        if (i == 0)
            *kind = AT_KIND_EMBEDDING;
        return;
    }
    static const char *const gpt2[] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
    static const char *const llama[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                        "mlp.down_proj"};
    if (!transformer) {
        snprintf(name, cap, "h.%d.%s", i / 4, gpt2[i % 4]);
        shape[0] = 768;
        shape[1] = i % 4 == 2 ? 3072 : 768;
        return;
    }
    shape[0] = 1024;
    shape[1] = 1024;
    if (i == 0 || i == n - 1) {
        snprintf(name, cap, i == 0 ? "model.embed_tokens.weight" : "lm_head.weight");
        shape[0] = 32000;
        return;
    }
    int j = (i - 1) % 7;
    snprintf(name, cap, "model.layers.%d.%s.weight", (i - 1) / 7, llama[j]);
    if (j >= 4)
        shape[j == 6 ? 1 : 0] = 2816;
}

int at_synth_run_opts(at_model *m, const char *id, int nlayers, const at_synth_opts *o)
{
    o = o ? o : &defaults;
    if (o->transformer == AT_SYNTH_MODULAR && nlayers != AT_SYNTH_MODULAR_LAYERS)
        return AT_ERR_ARG;
    int run = at_model_add_run(m, id, o->model && *o->model ? o->model : id, "synthetic");
    if (run < 0)
        return run;
    for (int i = 0; i < nlayers; i++) {
        char name[96];
        int64_t shape[2];
        at_layer_kind kind;
        layer_name(i, nlayers, o->transformer, name, sizeof name, shape, &kind);
        int rc = at_model_add_layer(m, run, name, kind, 2, shape);
        if (rc < 0)
            return rc;
    }
    at_model_run(m, run)->interval = 100;
    return run;
}

int at_synth_run(at_model *m, const char *id, int nlayers)
{
    return at_synth_run_opts(m, id, nlayers, NULL);
}

/* Alpha and log_norm of layer i at snapshot k. The training story: alpha decays from a0 to
 * a1 with its own time constant, the norm grows slowly. The collapse story: alphas settle
 * within ~30 snapshots (every 19th layer burnt, the rest near 3) and from snapshot 20 on the
 * norm of the settled layers grows by 0.004 (log10) per snapshot while alpha stays flat. */
static void story(const at_synth_opts *o, uint64_t seed, int i, int k, double *alpha,
                  double *log_norm)
{
    double a0 = 6.0 + 3.0 * unif(seed, (uint64_t)i, 1);
    if (!o->collapse) {
        double a1 = 1.2 + 3.3 * unif(seed, (uint64_t)i, 2);
        double tau = 10.0 + 30.0 * unif(seed, (uint64_t)i, 3);
        double noise = 0.1 * (unif(seed, (uint64_t)i, 1000 + (uint64_t)k) - 0.5);
        *alpha = a1 + (a0 - a1) * exp(-k / tau) + noise;
        *log_norm = 1.0 + 0.01 * k + 0.5 * unif(seed, (uint64_t)i, 5);
        return;
    }
    int burnt = i % 19 == 7;
    double a1 =
        burnt ? 1.55 + 0.35 * unif(seed, (uint64_t)i, 2) : 2.9 + 0.5 * unif(seed, (uint64_t)i, 2);
    double noise = 0.004 * (unif(seed, (uint64_t)i, 1000 + (uint64_t)k) - 0.5);
    *alpha = a1 + (a0 - a1) * exp(-k / 5.0) + noise;
    *log_norm = 1.0 + 0.5 * unif(seed, (uint64_t)i, 5) + (!burnt && k > 20 ? 0.004 * (k - 20) : 0);
}

int at_synth_snapshot_opts(at_model *m, int run, int k, double t, int spectra, uint64_t seed,
                           const at_synth_opts *o)
{
    o = o ? o : &defaults;
    int64_t step = 100 * (int64_t)(k + 1);
    int rc = at_model_add_snapshot(m, run, step, t);
    if (rc < 0)
        return rc;
    if (o->collapse && k >= AT_SYNTH_DROP_FROM && k < AT_SYNTH_DROP_FROM + AT_SYNTH_DROPS) {
        char text[96];
        snprintf(text, sizeof text, "snapshot at step %lld skipped: analysis is behind the trainer",
                 (long long)step);
        at_model_run(m, run)->dropped++;
        rc = at_model_add_event(m, run, -1, step, AT_EVENT_DROP, text);
        return rc < 0 ? rc : AT_OK;
    }
    int nl = at_model_num_layers(m, run);
    for (int i = 0; i < nl; i++) {
        double alpha, log_norm;
        story(o, seed, i, k, &alpha, &log_norm);
        at_metrics me;
        memset(&me, 0, sizeof me);
        me.status = AT_FIT_SUCCESS;
        me.mode = k == 0 ? AT_MODE_GRAM : AT_MODE_WARM;
        me.alpha = alpha;
        me.xmin = 0.5;
        me.num_pl_spikes = i % 17 == 9 ? 12 : 40 + (int64_t)(200 * unif(seed, (uint64_t)i, 7));
        me.log_spectral_norm = 0.5 + 0.02 * k + 0.3 * unif(seed, (uint64_t)i, 4);
        me.log_norm = log_norm;
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

int at_synth_snapshot(at_model *m, int run, int k, double t, int spectra, uint64_t seed)
{
    return at_synth_snapshot_opts(m, run, k, t, spectra, seed, NULL);
}

int at_synth_track(at_model *m, int run, int k, at_phase_tracker *t)
{
    int64_t step = 100 * (int64_t)(k + 1);
    int col = at_model_snapshot_at(m, run, step);
    if (col < 0 || at_model_snapshot_step(m, run, col) != step)
        return AT_ERR_ARG;
    int fed = 0;
    for (int i = 0; i < at_model_num_layers(m, run); i++) {
        const at_cell *c = at_model_cell(m, run, i, AT_SPACE_W, col);
        if (!c || c->status == AT_CELL_EMPTY)
            continue;
        const at_layer_info *li = at_model_layer(m, run, i);
        at_metrics me;
        at_metrics_init(&me, (at_mode)c->mode);
        me.status = (at_fit_status)c->status;
        me.alpha = c->v[AT_METRIC_ALPHA];
        me.log_norm = c->v[AT_METRIC_LOG_NORM];
        me.num_evals = li->shape[0] < li->shape[1] ? li->shape[0] : li->shape[1];
        me.num_traps = isnan(c->v[AT_METRIC_TRAPS]) ? -1 : (int64_t)c->v[AT_METRIC_TRAPS];
        int rc = at_phase_tracker_feed_layer(t, step, li->name, &me, NAN);
        if (rc < 0)
            return rc;
        fed++;
    }
    if (!fed)
        return AT_OK;
    const at_phase_event *ev;
    size_t n;
    int rc = at_phase_tracker_end_snapshot(t, step, &ev, &n);
    for (size_t i = 0; rc == AT_OK && i < n; i++) {
        int added = ev[i].kind == AT_EVENT_LAYER_PHASE
                        ? at_model_add_phase_event(m, run, AT_SPACE_W, &ev[i], NULL)
                        : at_model_add_run_phase_event(m, run, AT_SPACE_W, &ev[i], NULL);
        rc = added < 0 ? added : AT_OK;
    }
    return rc;
}
