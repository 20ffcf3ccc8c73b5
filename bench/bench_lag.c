/* SPDX-License-Identifier: Apache-2.0 */
/* bench_lag.c -- end-to-end lag of the live monitor: from a trainer's at_agent_snapshot_end to
 * the last heatmap cell of that snapshot in the model, on GPT-2-small-shaped layers (per block:
 * attn.c_attn 768x2304, attn.c_proj 768x768, mlp.c_fc 768x3072, mlp.c_proj 3072x768), exact
 * and fast mode side by side in one run. Trainer (the C agent) and monitor engine share this
 * process; the engine runs exactly as in `alphatop watch`. Weights are seeded; each snapshot
 * perturbs them slightly, as training does.
 *
 *     bench_lag [--blocks N] [--snapshots S]      (defaults 2 and 3; GPT-2 small is 12 blocks)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"
#include "engine.h"

static const struct {
    const char *name;
    int64_t rows, cols;
} block_layers[] = {{"attn.c_attn", 768, 2304},
                    {"attn.c_proj", 768, 768},
                    {"mlp.c_fc", 768, 3072},
                    {"mlp.c_proj", 3072, 768}};
#define PER_BLOCK 4

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Cells of run 0 with a result at step. */
static int cells_at(at_model *m, int64_t step)
{
    int col = at_model_snapshot_at(m, 0, step), n = 0;
    if (col < 0 || at_model_snapshot_step(m, 0, col) != step)
        return 0;
    for (int l = 0; l < at_model_num_layers(m, 0); l++) {
        const at_cell *c = at_model_cell(m, 0, l, AT_SPACE_W, col);
        n += c && c->status != AT_CELL_EMPTY;
    }
    return n;
}

/* Runs one mode; prints per-snapshot lags and returns the mean lag to the last cell. */
static double run_mode(int fast, int blocks, int snapshots, float **w)
{
    char ep[128], err[256];
    snprintf(ep, sizeof ep, "ipc:///tmp/at-bench-lag-%d-%d.ipc", (int)getpid(), fast);
    at_model *model = at_model_new();
    at_engine_opts o;
    at_engine_opts_default(&o);
    o.endpoint = ep;
    o.record = "-";
    o.fast = fast;
    o.notes = NULL;
    at_engine *eng = at_engine_new(&o, model, err, sizeof err);
    if (!eng) {
        fprintf(stderr, "bench_lag: %s\n", err);
        exit(1);
    }
    at_agent_opts ao;
    at_agent_opts_default(&ao);
    ao.model = "gpt2-small-shaped";
    ao.interval = 1;
    ao.budget_bytes = (int64_t)1 << 30;
    at_agent *a = at_agent_new("bench", ep, &ao);
    int nlayers = blocks * PER_BLOCK;
    at_rng r;
    at_rng_seed(&r, 99);
    double total = 0;
    for (int s = 0; s < snapshots; s++) {
        int64_t step = 100 * (s + 1);
        at_agent_snapshot_begin(a, step);
        for (int l = 0; l < nlayers; l++) {
            char name[64];
            snprintf(name, sizeof name, "h.%d.%s", l / PER_BLOCK, block_layers[l % PER_BLOCK].name);
            int64_t shape[2] = {block_layers[l % PER_BLOCK].rows, block_layers[l % PER_BLOCK].cols};
            at_agent_publish(a, name, AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w[l], 0);
        }
        double t0 = now(), first = -1;
        at_agent_snapshot_end(a);
        int done = 0;
        while (done < nlayers) {
            zmq_pollitem_t items[4];
            int n = at_engine_pollitems(eng, items, 4);
            zmq_poll(items, n, 10);
            at_engine_step(eng);
            done = cells_at(model, step);
            if (done > 0 && first < 0)
                first = now() - t0;
        }
        double last = now() - t0;
        total += last;
        printf("  %-5s snapshot %d: first cell %7.3f s, all %d cells %7.3f s (%.3f s/layer)\n",
               fast ? "fast" : "exact", s + 1, first, nlayers, last, last / nlayers);
        fflush(stdout);
        /* The next snapshot: a small training-like step on every layer. */
        for (int l = 0; l < nlayers; l++) {
            size_t cnt =
                (size_t)(block_layers[l % PER_BLOCK].rows * block_layers[l % PER_BLOCK].cols);
            for (size_t i = 0; i < cnt; i += 7)
                w[l][i] += (float)(1e-3 * at_rng_normal(&r));
        }
    }
    at_agent_free(a);
    at_engine_free(eng);
    at_model_free(model);
    return total / snapshots;
}

int main(int argc, char **argv)
{
    int blocks = 2, snapshots = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--blocks"))
            blocks = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--snapshots"))
            snapshots = atoi(argv[i + 1]);
    }
    if (blocks < 1 || snapshots < 1) {
        fputs("usage: bench_lag [--blocks N] [--snapshots S]\n", stderr);
        return 2;
    }
    int nlayers = blocks * PER_BLOCK;
    float **w = malloc((size_t)nlayers * sizeof *w);
    at_rng r;
    at_rng_seed(&r, 7);
    for (int l = 0; l < nlayers; l++) {
        int64_t rows = block_layers[l % PER_BLOCK].rows, cols = block_layers[l % PER_BLOCK].cols;
        w[l] = malloc((size_t)(rows * cols) * sizeof **w);
        for (int64_t i = 0; i < rows * cols; i++)
            w[l][i] = (float)(at_rng_normal(&r) / sqrt((double)cols));
    }
    printf("bench_lag: %d GPT-2-small-shaped blocks (%d layers), %d snapshots, "
           "trainer publish -> model cell\n",
           blocks, nlayers, snapshots);
    double exact = run_mode(0, blocks, snapshots, w);
    double fast = run_mode(1, blocks, snapshots, w);
    printf("mean lag to the last cell: exact %.3f s, fast %.3f s, exact/fast %.2fx\n", exact, fast,
           exact / fast);
    for (int l = 0; l < nlayers; l++)
        free(w[l]);
    free(w);
    return 0;
}
