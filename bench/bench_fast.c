/* SPDX-License-Identifier: Apache-2.0 */
/* bench_fast.c -- fast mode against the reference method over a family of layers, side by side
 * in one run.
 *
 * Layers (kinds): Student-t entries with 2, 2.5, 3 and 4 degrees of freedom (heavy-tailed across
 * the whole spectrum), `spiked` (Gaussian bulk + 200 spikes of power-law strength), and `mpN`:
 * a Marchenko-Pastur bulk plus a power-law tail of N% of the spectrum (5, 15, 30). Shapes:
 * 4096x4096, 4096x11008 and the GPT-2-small set (12 x {768x2304, 768x768, 768x3072, 3072x768},
 * every layer of the kind). Per layer:
 *   reference  float64 dgesdd singular values + the fit + scale metrics (WeightWatcher's way)
 *   exact      float64 Gram + two-stage tridiagonal values, Ritz-refined bottom (gram.h)
 *   cold       fast mode, first snapshot with a state (a monitor: vectors kept when they pay)
 *   once       fast mode without a state (a one-file scan: eigenvalues only)
 *   warm       fast mode, next snapshot after a 1e-3 relative perturbation, then a second
 * with speed-ups against the reference, |dalpha| (cold and warm against exact mode of the
 * same snapshot), the time of cold and once over exact mode's, and at the end every cell that
 * misses a goal (fast never slower than exact; cold >= 5x and warm >= 15x the reference). The
 * reference's cost depends on the shape, not the spectrum (dgesdd's bidiagonalization), so it is
 * measured on each shape's first kind and reused for the others (marked *) unless --ref-each.
 * Usage: bench_fast [--threads N] [--repeat N] [--shapes LIST] [--kinds LIST] [--ref-each] [--cpu]
 *   --threads N      OpenBLAS threads (default 1)
 *   --repeat N       best of N interleaved runs of reference, exact, cold and once (default 1)
 *   --shapes LIST    comma-separated from 4096x4096,4096x11008,gpt2 (default all)
 *   --kinds LIST     comma-separated from t2,t2.5,t3,t4,spiked,mp5,mp15,mp30 (default all)
 *   --ref-each       measure the reference on every kind
 *   --cpu            process CPU time instead of wall time (with --threads 1) */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alphatop/fast.h"
#include "alphatop/gram.h"
#include "alphatop/htsr.h"
#include "alphatop/rng.h"
#include "bench_clock.h"

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "bench_fast: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

/* rows x cols row-major: N(0, 1/cols) bulk + U diag(top * i^-gamma) V^T, r spikes with unit
 * Gaussian directions (one GEMM). */
static float *gen_spiked(int64_t rows, int64_t cols, int r, double top, double gamma, uint64_t seed)
{
    at_rng g;
    at_rng_seed(&g, seed);
    float *w = xmalloc((size_t)(rows * cols) * sizeof(float));
    float *u = xmalloc((size_t)(rows * r) * sizeof(float));
    float *v = xmalloc((size_t)(cols * r) * sizeof(float));
    const double sd = 1.0 / sqrt((double)cols);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)(sd * at_rng_normal(&g));
    for (int s = 0; s < r; s++) {
        double str = top * pow((double)(s + 1), -gamma);
        for (int64_t i = 0; i < rows; i++)
            u[i * r + s] = (float)(at_rng_normal(&g) * str / sqrt((double)rows));
        for (int64_t j = 0; j < cols; j++)
            v[j * r + s] = (float)(at_rng_normal(&g) / sqrt((double)cols));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, r, 1.0f, u, r, v, r,
                1.0f, w, (int)cols);
    free(u);
    free(v);
    return w;
}

/* A Gamma(a, 1) draw (Marsaglia and Tsang; a < 1 through a + 1 and a uniform power). */
static double gamma_draw(at_rng *g, double a)
{
    if (a < 1.0)
        return gamma_draw(g, a + 1.0) * pow(at_rng_uniform(g), 1.0 / a);
    const double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = at_rng_normal(g), v = 1.0 + c * x;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        if (log(at_rng_uniform(g)) < 0.5 * x * x + d - d * v + d * log(v))
            return d * v;
    }
}

/* Student-t(df) entries / sqrt(cols): heavy-tailed across the whole spectrum. */
static float *gen_student(int64_t rows, int64_t cols, double df, uint64_t seed)
{
    at_rng g;
    at_rng_seed(&g, seed);
    float *w = xmalloc((size_t)(rows * cols) * sizeof(float));
    const double sd = 1.0 / sqrt((double)cols);
    for (int64_t i = 0; i < rows * cols; i++) {
        double chi = 2.0 * gamma_draw(&g, df / 2.0); /* chi-square(df) */
        w[i] = (float)(sd * at_rng_normal(&g) / sqrt(chi / df));
    }
    return w;
}

/* The layer of one kind: "t<df>", "spiked" or "mp<percent>" (see the header comment). For mpN
 * the r = N% x p spikes have strengths 3 r^0.3 i^-0.3, so the weakest sits at three times the
 * bulk's scale and the tail's eigenvalues fall as a power law (alpha ~ 2.7). */
static float *gen_kind(const char *kind, int64_t rows, int64_t cols, uint64_t seed)
{
    const int64_t p = rows < cols ? rows : cols;
    if (kind[0] == 't')
        return gen_student(rows, cols, atof(kind + 1), seed);
    if (strcmp(kind, "spiked") == 0)
        return gen_spiked(rows, cols, 200, 30.0, 0.3, seed);
    int r = (int)((double)p * atof(kind + 2) / 100.0);
    return gen_spiked(rows, cols, r, 3.0 * pow((double)r, 0.3), 0.3, seed);
}

/* One training-like step of relative Frobenius size rel (dense noise). */
static void perturb(float *w, size_t count, double rel, uint64_t seed)
{
    at_rng g;
    at_rng_seed(&g, seed);
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += (double)w[i] * w[i];
    const double sd = rel * sqrt(s / (double)count);
    for (size_t i = 0; i < count; i++)
        w[i] += (float)(sd * at_rng_normal(&g));
}

static int cmp_desc_to_asc(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Fit + scale metrics of an ascending spectrum (shared by reference and exact). */
static double fit_alpha(const double *lam, int64_t p, int64_t N)
{
    at_fit fit;
    if (at_powerlaw_fit(lam, (size_t)p, &fit) != AT_OK)
        return NAN;
    at_metrics m;
    memset(&m, 0, sizeof m);
    m.alpha = fit.alpha;
    m.N = N;
    at_scale_metrics(lam, (size_t)p, &m);
    return fit.status == AT_FIT_SUCCESS ? fit.alpha : NAN;
}

/* Reference method: float64 copy, dgesdd values only, squares, fit. Returns alpha. */
static double reference(const float *w, int64_t rows, int64_t cols, double *lam)
{
    const int64_t p = rows < cols ? rows : cols, N = rows < cols ? cols : rows;
    double *a = xmalloc((size_t)(rows * cols) * sizeof(double));
    for (int64_t i = 0; i < rows * cols; i++)
        a[i] = w[i];
    double dummy = 0.0;
    if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)cols, (int)rows, a, (int)cols, lam, &dummy, 1,
                       &dummy, 1) != 0)
        fprintf(stderr, "bench_fast: dgesdd failed\n");
    for (int64_t i = 0; i < p; i++)
        lam[i] *= lam[i];
    qsort(lam, (size_t)p, sizeof(double), cmp_desc_to_asc);
    free(a);
    return fit_alpha(lam, p, N);
}

/* Exact mode's spectrum (float64 Gram) + fit. */
static double exact(at_gram *g, const float *w, int64_t rows, int64_t cols, double *lam,
                    at_gram_path *path)
{
    const int64_t p = rows < cols ? rows : cols, N = rows < cols ? cols : rows;
    double *a = xmalloc((size_t)(rows * cols) * sizeof(double));
    for (int64_t i = 0; i < rows * cols; i++)
        a[i] = w[i];
    if (at_gram_evals64(g, a, cols, rows, lam, path) != AT_OK)
        fprintf(stderr, "bench_fast: %s\n", at_gram_last_error(g));
    free(a);
    return fit_alpha(lam, p, N);
}

/* num_pl_spikes of the last fast() call. */
static int64_t last_spikes;

/* Fast mode on one snapshot; returns alpha. */
static double fast(at_fast *f, at_fast_state *st, const float *w, int64_t rows, int64_t cols,
                   at_fast_info *info)
{
    at_tensor t = {.data = w, .dtype = AT_DTYPE_F32, .kind = AT_KIND_LINEAR, .ndim = 2};
    t.shape[0] = rows;
    t.shape[1] = cols;
    at_metrics m;
    if (at_fast_analyze(f, st, &t, NULL, NULL, &m, info) != AT_OK) {
        fprintf(stderr, "bench_fast: %s\n", at_fast_last_error(f));
        return NAN;
    }
    last_spikes = m.num_pl_spikes;
    return m.alpha;
}

static const char *path_name(at_gram_path p)
{
    return p == AT_GRAM_PLAIN ? "plain" : p == AT_GRAM_RITZ ? "ritz" : "svd";
}

/* Reference time of the shape being measured (negative: not measured yet). */
static double ref_time = -1.0;

/* The goals (docs/fast.md): fast never slower than exact mode, cold and warm this many times
 * faster than the reference. */
#define GOAL_COLD 5.0
#define GOAL_WARM 15.0

/* Cells that missed a goal, said again at the end. */
static char misses[8192];

/* Checks one row against the goals and notes each miss. */
static void check_goals(const char *kind, const char *shape, double ref, double ex, double cold,
                        double once, double warm1, double warm2)
{
    const double warm = fmax(warm1, warm2), fast = fmax(cold, once);
    size_t n = strlen(misses);
    if (fast > ex)
        n += (size_t)snprintf(misses + n, sizeof misses - n,
                              "  %s %s: fast slower than exact (cold %.3f / once %.3f / exact "
                              "%.3f s)\n",
                              kind, shape, cold, once, ex);
    if (n < sizeof misses && ref / cold < GOAL_COLD)
        n += (size_t)snprintf(misses + n, sizeof misses - n,
                              "  %s %s: cold %.1fx (once %.1fx) < %.0fx\n", kind, shape, ref / cold,
                              ref / once, GOAL_COLD);
    if (n < sizeof misses && ref / warm < GOAL_WARM)
        snprintf(misses + n, sizeof misses - n, "  %s %s: warm %.1fx < %.0fx\n", kind, shape,
                 ref / warm, GOAL_WARM);
}

/* One kind on one 2-D shape: reference (unless reused), exact, cold, once, then two warm
 * snapshots; best of `repeat` interleaved runs, so a burst of load on the shared machine hits
 * every method alike. */
static void layer(const char *kind, int64_t rows, int64_t cols, int run_ref, int repeat, at_gram *g,
                  at_fast *f, uint64_t seed)
{
    const int64_t p = rows < cols ? rows : cols;
    float *w = gen_kind(kind, rows, cols, seed);
    double *lam = xmalloc((size_t)p * sizeof(double));
    double t0, t_ref = INFINITY, a_ref = NAN, t_ex = INFINITY, t_cold = INFINITY, t_once = INFINITY,
               a_ex = NAN, a_cold = NAN;
    at_gram_path path = AT_GRAM_PLAIN;
    at_fast_state *st = NULL;
    at_fast_info ic, io;
    for (int r = 0; r < repeat; r++) {
        if (run_ref) {
            t0 = now();
            a_ref = reference(w, rows, cols, lam);
            t_ref = fmin(t_ref, now() - t0);
        }
        t0 = now();
        a_ex = exact(g, w, rows, cols, lam, &path);
        t_ex = fmin(t_ex, now() - t0);
        at_fast_state_free(st);
        st = at_fast_state_new();
        t0 = now();
        a_cold = fast(f, st, w, rows, cols, &ic);
        t_cold = fmin(t_cold, now() - t0);
        t0 = now();
        fast(f, NULL, w, rows, cols, &io);
        t_once = fmin(t_once, now() - t0);
    }
    if (run_ref)
        ref_time = t_ref;
    const int64_t spikes = last_spikes;
    perturb(w, (size_t)(rows * cols), 1e-3, 7);
    double a_ex2 = exact(g, w, rows, cols, lam, NULL);
    at_fast_info iw, iw2;
    t0 = now();
    double a_warm = fast(f, st, w, rows, cols, &iw);
    double t_warm = now() - t0;
    /* a second warm snapshot: the steady state of a monitor */
    perturb(w, (size_t)(rows * cols), 1e-3, 8);
    double a_ex3 = exact(g, w, rows, cols, lam, NULL);
    t0 = now();
    double a_warm2 = fast(f, st, w, rows, cols, &iw2);
    double t_warm2 = now() - t0;
    const double tr = ref_time;
    printf("%-6s %5lldx%-5lld %7.2f%s %6.2f (%4.1fx %-5s) %6.2f (%4.1fx b %4lld) %6.2f (%4.1fx) "
           "%6.3f (%4.1fx %s/%d) %6.3f (%4.1fx) /exact %.2f %.2f  alpha %.3f tail %lld |dalpha| ex "
           "%.0e cold %.0e warm %.0e %.0e\n",
           kind, (long long)rows, (long long)cols, tr, run_ref ? " " : "*", t_ex, tr / t_ex,
           path_name(path), t_cold, tr / t_cold, (long long)ic.b, t_once, tr / t_once, t_warm,
           tr / t_warm, at_mode_name(iw.mode), iw.passes, t_warm2, tr / t_warm2, t_cold / t_ex,
           t_once / t_ex, a_ex, (long long)spikes, run_ref ? fabs(a_ex - a_ref) : NAN,
           fabs(a_cold - a_ex), fabs(a_warm - a_ex2), fabs(a_warm2 - a_ex3));
    fflush(stdout);
    char shape[32];
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)cols);
    check_goals(kind, shape, tr, t_ex, t_cold, t_once, t_warm, t_warm2);
    at_fast_state_free(st);
    free(lam);
    free(w);
}

/* GPT-2 small: 12 blocks of c_attn 768x2304, c_proj 768x768, c_fc 768x3072, mlp.c_proj
 * 3072x768 (HF Conv1D orientation), every layer of one kind. Totals over the 48 layers:
 * reference (unless reused), exact, cold with fresh states, once (no states), then two warm
 * refreshes, each after a 1e-3 step of every layer. */
static void gpt2(const char *kind, int run_ref, int repeat, at_gram *g, at_fast *f)
{
    enum { L = 48 };
    const int64_t shapes[4][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
    float *w[L];
    at_fast_state *st[L];
    double *lam = xmalloc(768 * sizeof(double));
    for (int i = 0; i < L; i++) {
        w[i] = gen_kind(kind, shapes[i % 4][0], shapes[i % 4][1], 1000 + (uint64_t)i);
        st[i] = NULL;
    }
    double t_ref = INFINITY, t_ex = INFINITY, t_cold = INFINITY, t_once = INFINITY, t0;
    double dcold = 0.0, a_ex[L];
    int64_t keep = 0;
    for (int r = 0; r < repeat; r++) {
        if (run_ref) {
            t0 = now();
            for (int i = 0; i < L; i++)
                reference(w[i], shapes[i % 4][0], shapes[i % 4][1], lam);
            t_ref = fmin(t_ref, now() - t0);
        }
        t0 = now();
        for (int i = 0; i < L; i++)
            a_ex[i] = exact(g, w[i], shapes[i % 4][0], shapes[i % 4][1], lam, NULL);
        t_ex = fmin(t_ex, now() - t0);
        double a_cold[L];
        keep = 0;
        t0 = now();
        for (int i = 0; i < L; i++) {
            at_fast_state_free(st[i]);
            st[i] = at_fast_state_new();
            at_fast_info info;
            a_cold[i] = fast(f, st[i], w[i], shapes[i % 4][0], shapes[i % 4][1], &info);
            keep += info.b > 0;
        }
        t_cold = fmin(t_cold, now() - t0);
        t0 = now();
        for (int i = 0; i < L; i++)
            fast(f, NULL, w[i], shapes[i % 4][0], shapes[i % 4][1], NULL);
        t_once = fmin(t_once, now() - t0);
        for (int i = 0; i < L; i++)
            dcold = fmax(dcold, fabs(a_cold[i] - a_ex[i]));
    }
    if (run_ref)
        ref_time = t_ref;
    double t_warm[2];
    int modes[2][4] = {{0}};
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < L; i++)
            perturb(w[i], (size_t)(shapes[i % 4][0] * shapes[i % 4][1]), 1e-3,
                    (uint64_t)(pass * 100 + i));
        t0 = now();
        for (int i = 0; i < L; i++) {
            at_fast_info info;
            fast(f, st[i], w[i], shapes[i % 4][0], shapes[i % 4][1], &info);
            modes[pass][info.mode]++;
        }
        t_warm[pass] = now() - t0;
    }
    const double tr = ref_time;
    printf("%-6s gpt2 x48   %7.2f%s %6.2f (%4.1fx)       %6.2f (%4.1fx kept %2lld) %6.2f (%4.1fx) "
           "%6.3f (%4.1fx w%d g%d) %6.3f (%4.1fx w%d g%d) /exact %.2f %.2f  |dalpha| cold max "
           "%.0e\n",
           kind, tr, run_ref ? " " : "*", t_ex, tr / t_ex, t_cold, tr / t_cold, (long long)keep,
           t_once, tr / t_once, t_warm[0], tr / t_warm[0], modes[0][AT_MODE_WARM],
           modes[0][AT_MODE_GRAM], t_warm[1], tr / t_warm[1], modes[1][AT_MODE_WARM],
           modes[1][AT_MODE_GRAM], t_cold / t_ex, t_once / t_ex, dcold);
    fflush(stdout);
    check_goals(kind, "gpt2", tr, t_ex, t_cold, t_once, t_warm[0], t_warm[1]);
    for (int i = 0; i < L; i++) {
        free(w[i]);
        at_fast_state_free(st[i]);
    }
    free(lam);
}

/* Whether item is in the comma-separated list (NULL: every item). */
static int listed(const char *list, const char *item)
{
    if (!list)
        return 1;
    size_t n = strlen(item);
    for (const char *q = list; (q = strstr(q, item)); q += n)
        if ((q == list || q[-1] == ',') && (q[n] == ',' || q[n] == '\0'))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 1, repeat = 1, ref_each = 0;
    const char *shapes = NULL, *kinds = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
        else if (strcmp(argv[i], "--shapes") == 0 && i + 1 < argc)
            shapes = argv[++i];
        else if (strcmp(argv[i], "--kinds") == 0 && i + 1 < argc)
            kinds = argv[++i];
        else if (strcmp(argv[i], "--ref-each") == 0)
            ref_each = 1;
        else if (strcmp(argv[i], "--cpu") == 0)
            bench_clock_id = CLOCK_PROCESS_CPUTIME_ID;
        else {
            fprintf(stderr, "usage: bench_fast [--threads N] [--repeat N] [--shapes LIST] "
                            "[--kinds LIST] [--ref-each] [--cpu]\n");
            return 2;
        }
    }
    openblas_set_num_threads(threads);
    /* The kernels OpenBLAS picked for this CPU (OPENBLAS_CORETYPE overrides): docs/fast.md */
    printf("bench_fast: OpenBLAS threads %d, %s kernels, best of %d runs, %s time, load average at "
           "start %.2f\n",
           threads, openblas_get_corename(), repeat,
           bench_clock_id == CLOCK_MONOTONIC ? "wall" : "CPU", loadavg());
    printf("seconds (ratio = reference / method); * = reference of the shape's first kind; "
           "|dalpha| of exact vs reference, of cold/warm vs exact mode of the same snapshot\n");
    printf("%-6s %-11s %8s %-20s %-22s %-14s %-22s %-14s %s\n", "kind", "shape", "ref", "exact",
           "cold (monitor)", "once (scan)", "warm1 (mode/passes)", "warm2",
           "time over exact: cold once");
    at_gram *g = at_gram_new();
    at_fast *f = at_fast_new();
    if (!g || !f)
        return 1;
    const char *all_kinds[] = {"t2", "t2.5", "t3", "t4", "spiked", "mp5", "mp15", "mp30"};
    const char *all_shapes[] = {"4096x4096", "4096x11008", "gpt2"};
    const int64_t dims[2][2] = {{4096, 4096}, {4096, 11008}};
    for (int sh = 0; sh < 3; sh++) {
        if (!listed(shapes, all_shapes[sh]))
            continue;
        int first = 1;
        for (int k = 0; k < 8; k++) {
            if (!listed(kinds, all_kinds[k]))
                continue;
            const int run_ref = first || ref_each;
            if (sh == 2)
                gpt2(all_kinds[k], run_ref, repeat, g, f);
            else
                layer(all_kinds[k], dims[sh][0], dims[sh][1], run_ref, repeat, g, f,
                      50 + (uint64_t)(10 * sh + k));
            first = 0;
        }
    }
    printf("goals missed (fast <= exact, cold >= %.0fx, warm >= %.0fx the reference):\n%s",
           GOAL_COLD, GOAL_WARM, misses[0] ? misses : "  none\n");
    printf("load average at end %.2f\n", loadavg());
    at_fast_free(f);
    at_gram_free(g);
    return 0;
}
