/* SPDX-License-Identifier: Apache-2.0 */
/* c_trainer -- a small MLP learning modular addition, in C on OpenBLAS, watched by alphatop.
 *
 * Task: (a + b) mod p from the one-hot codes of a and b (no download); a seeded half of the
 * p*p pairs trains, the rest tests. Model: 2p -> width -> width -> p, ReLU, softmax
 * cross-entropy, AdamW. Every --every steps it publishes fc1..fc3 to the monitor, logs loss
 * and train/test accuracy, and ends cleanly (exit 0) when the monitor's stop rules fire.
 * With the defaults it memorises the training pairs within ~2k steps and groks (test accuracy
 * 0 -> 0.99) between ~5k and ~11k steps: a minute or two of one core. */
#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"
#include "mlp.h"

typedef struct args {
    int p, width, batch;
    double train_frac, lr, weight_decay;
    long long steps, every, seed;
    const char *endpoint, *run_id;
    int publish, quiet;
} args;

static const char usage[] =
    "usage: c_trainer [options]\n"
    "Trains an MLP on (a + b) mod p and publishes its layers to an alphatop monitor.\n"
    "  --p N             modulus (47)\n"
    "  --width N         hidden width (128)\n"
    "  --train-frac F    share of the p*p pairs used for training (0.5)\n"
    "  --batch N         minibatch size (256)\n"
    "  --lr X            AdamW learning rate (0.001)\n"
    "  --weight-decay X  AdamW decoupled weight decay (1.0)\n"
    "  --steps N         optimizer steps (20000)\n"
    "  --every N         steps between snapshots and scalar logs (100)\n"
    "  --seed N          seed of split, init and batches (0)\n"
    "  --endpoint EP     monitor endpoint (default $ALPHATOP_ENDPOINT or the local ipc path)\n"
    "  --run-id ID       run id shown by the monitor (default c_trainer-PID)\n"
    "  --no-publish      train without a monitor\n"
    "  --quiet           no progress lines\n";

/* Parses a whole argument as a number in [lo, hi]; exits with a usage error otherwise. */
static double number(const char *flag, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo && v <= hi)) {
        fprintf(stderr, "c_trainer: %s wants a number in [%g, %g], got '%s'\n", flag, lo, hi, s);
        exit(2);
    }
    return v;
}

static void parse(int argc, char **argv, args *a)
{
    *a = (args){.p = 47,
                .width = 128,
                .batch = 256,
                .train_frac = 0.5,
                .lr = 1e-3,
                .weight_decay = 1.0,
                .steps = 20000,
                .every = 100,
                .seed = 0,
                .publish = 1};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            fputs(usage, stdout);
            exit(0);
        } else if (!strcmp(f, "--no-publish")) {
            a->publish = 0;
        } else if (!strcmp(f, "--quiet")) {
            a->quiet = 1;
        } else if (!v) {
            fprintf(stderr, "c_trainer: unknown option or missing value: '%s'\n%s", f, usage);
            exit(2);
        } else {
            i++;
            if (!strcmp(f, "--p"))
                a->p = (int)number(f, v, 10, 1000);
            else if (!strcmp(f, "--width"))
                a->width = (int)number(f, v, 10, 4096);
            else if (!strcmp(f, "--train-frac"))
                a->train_frac = number(f, v, 0.05, 0.95);
            else if (!strcmp(f, "--batch"))
                a->batch = (int)number(f, v, 1, 65536);
            else if (!strcmp(f, "--lr"))
                a->lr = number(f, v, 1e-7, 1.0);
            else if (!strcmp(f, "--weight-decay"))
                a->weight_decay = number(f, v, 0.0, 100.0);
            else if (!strcmp(f, "--steps"))
                a->steps = (long long)number(f, v, 1, 1e12);
            else if (!strcmp(f, "--every"))
                a->every = (long long)number(f, v, 1, 1e12);
            else if (!strcmp(f, "--seed"))
                a->seed = (long long)number(f, v, 0, 9e15);
            else if (!strcmp(f, "--endpoint"))
                a->endpoint = v;
            else if (!strcmp(f, "--run-id"))
                a->run_id = v;
            else {
                fprintf(stderr, "c_trainer: unknown option '%s'\n%s", f, usage);
                exit(2);
            }
        }
    }
}

/* One-hot pairs (a, b) -> (a + b) mod p, shuffled with seed; the first n_train train. */
typedef struct data {
    float *x;
    int *y;
    int n, n_train, dim;
} data;

static int make_data(data *d, int p, double train_frac, at_rng *rng)
{
    d->n = p * p;
    d->dim = 2 * p;
    d->n_train = (int)(train_frac * d->n);
    d->x = calloc((size_t)d->n * (size_t)d->dim, sizeof *d->x);
    d->y = calloc((size_t)d->n, sizeof *d->y);
    int *order = calloc((size_t)d->n, sizeof *order);
    if (!d->x || !d->y || !order) {
        free(order);
        return -1;
    }
    for (int i = 0; i < d->n; i++)
        order[i] = i;
    for (int i = d->n - 1; i > 0; i--) {
        int j = (int)at_rng_below(rng, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < d->n; i++) {
        int a = order[i] / p, b = order[i] % p;
        d->x[(size_t)i * d->dim + a] = 1.0f;
        d->x[(size_t)i * d->dim + p + b] = 1.0f;
        d->y[i] = (a + b) % p;
    }
    free(order);
    return 0;
}

/* Publishes every layer as one snapshot; a dropped snapshot (monitor slow) is not an error. */
static void publish(at_agent *ag, mlp *m, long long step)
{
    if (at_agent_snapshot_begin(ag, step) != AT_OK)
        return;
    for (int i = 0; i < mlp_layers(m); i++) {
        int out, in;
        const float *w = mlp_weight(m, i, &out, &in);
        char name[16];
        snprintf(name, sizeof name, "fc%d", i + 1);
        int64_t shape[2] = {out, in};
        if (at_agent_publish(ag, name, AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w, 0) != AT_OK)
            break;
    }
    at_agent_snapshot_end(ag);
}

int main(int argc, char **argv)
{
    args a;
    parse(argc, argv, &a);
    openblas_set_num_threads(1);
    at_rng rng;
    at_rng_seed(&rng, (uint64_t)a.seed);
    data d;
    int sizes[4] = {2 * a.p, a.width, a.width, a.p};
    int eval_rows = a.batch > 1024 ? a.batch : 1024;
    mlp *m = mlp_new(3, sizes, eval_rows, (uint64_t)a.seed + 1);
    float *xb = malloc((size_t)a.batch * (size_t)sizes[0] * sizeof *xb);
    int *yb = malloc((size_t)a.batch * sizeof *yb);
    if (make_data(&d, a.p, a.train_frac, &rng) || !m || !xb || !yb) {
        fprintf(stderr, "c_trainer: out of memory\n");
        return 1;
    }
    at_agent *ag = NULL;
    if (a.publish) {
        char run[64];
        snprintf(run, sizeof run, "c_trainer-%d", (int)getpid());
        at_agent_opts o;
        at_agent_opts_default(&o);
        o.model = "mlp-modadd";
        o.framework = "c";
        o.interval = a.every;
        const char *tag_keys[] = {"task"}, *tag_values[] = {"modular addition"};
        o.tag_keys = tag_keys;
        o.tag_values = tag_values;
        o.ntags = 1;
        ag = at_agent_new(a.run_id ? a.run_id : run, a.endpoint, &o);
        if (!ag) {
            fprintf(stderr, "c_trainer: cannot start the agent: %s\n", at_agent_last_error(NULL));
            return 1;
        }
    }
    if (!a.quiet)
        fprintf(stderr, "c_trainer: (a + b) mod %d, %d train / %d test pairs, MLP %d-%d-%d-%d\n",
                a.p, d.n_train, d.n - d.n_train, sizes[0], sizes[1], sizes[2], sizes[3]);
    int rc = 0;
    for (long long step = 1; step <= a.steps; step++) {
        for (int r = 0; r < a.batch; r++) {
            int k = (int)at_rng_below(&rng, (uint64_t)d.n_train);
            memcpy(xb + (size_t)r * d.dim, d.x + (size_t)k * d.dim, (size_t)d.dim * sizeof *xb);
            yb[r] = d.y[k];
        }
        mlp_forward(m, xb, a.batch);
        double loss = mlp_backward(m, xb, yb);
        mlp_adamw(m, a.lr, a.weight_decay, step);
        if (ag && at_agent_snapshot_due(ag, step))
            publish(ag, m, step);
        if (step % a.every == 0 || step == a.steps) {
            double tr = mlp_accuracy(m, d.x, d.y, d.n_train);
            double te =
                mlp_accuracy(m, d.x + (size_t)d.n_train * d.dim, d.y + d.n_train, d.n - d.n_train);
            if (ag)
                at_agent_log(ag, step, 3, (const char *[]){"loss", "train_acc", "test_acc"},
                             (double[]){loss, tr, te});
            if (!a.quiet && (step % (a.every * 10) == 0 || step == a.steps))
                fprintf(stderr, "step %7lld  loss %.4f  train %.3f  test %.3f\n", step, loss, tr,
                        te);
        }
        char reason[256];
        if (ag && at_agent_should_stop(ag, reason, sizeof reason)) {
            fprintf(stderr, "c_trainer: stopped at step %lld: %s\n", step, reason);
            break;
        }
    }
    at_agent_free(ag);
    mlp_free(m);
    free(d.x);
    free(d.y);
    free(xb);
    free(yb);
    return rc;
}
