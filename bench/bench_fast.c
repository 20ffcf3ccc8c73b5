/* bench_fast.c -- fast mode against the reference method, side by side in one run.
 *
 * For seeded heavy-tailed layers (Gaussian bulk + power-law spikes, and Student-t entries):
 *   reference  float64 dgesdd singular values + the fit + scale metrics (WeightWatcher's way)
 *   exact      float64 Gram + two-stage tridiagonal values, Ritz-refined bottom (gram.h)
 *   cold       fast mode, first snapshot: float32 Gram, full spectrum, top vectors kept
 *   warm       fast mode, next snapshot after a 1e-3 relative perturbation
 * with speed-ups and |dalpha| (cold and warm against exact mode of the same snapshot), then a
 * GPT-2-small-shaped model (12 x {768x2304, 768x768, 768x3072, 3072x768}) refreshed cold and
 * warm. Usage: bench_fast [--threads N] [--repeat N] [--skip-large-svd] [--quick]
 *   --threads N       OpenBLAS threads (default 1: with other load on the 2 cores, threaded
 *                     BLAS-2 reductions (sytrd, gebrd) ran 4x slower than on one thread)
 *   --repeat N        best of N runs of reference, exact and cold (default 2)
 *   --skip-large-svd  no dgesdd on 4096x11008 (it takes minutes)
 *   --quick           only 768x3072 and the GPT-2 set */
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

/* Student-t(df) entries / sqrt(cols): heavy-tailed across the whole spectrum. */
static float *gen_student(int64_t rows, int64_t cols, double df, uint64_t seed)
{
    at_rng g;
    at_rng_seed(&g, seed);
    float *w = xmalloc((size_t)(rows * cols) * sizeof(float));
    const double sd = 1.0 / sqrt((double)cols);
    for (int64_t i = 0; i < rows * cols; i++) {
        double chi = 0.0;
        /* chi-square(df) for integer df as a sum of squares */
        for (int k = 0; k < (int)df; k++) {
            double z = at_rng_normal(&g);
            chi += z * z;
        }
        w[i] = (float)(sd * at_rng_normal(&g) / sqrt(chi / df));
    }
    return w;
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

/* Best of `repeat` runs of each method (the machine is shared); warm is measured on two
 * successive snapshots instead. */
static void layer(const char *kind, float *w, int64_t rows, int64_t cols, int run_svd, int repeat,
                  at_gram *g, at_fast *f)
{
    const int64_t p = rows < cols ? rows : cols;
    double *lam = xmalloc((size_t)p * sizeof(double));
    double t0, t_ref = INFINITY, a_ref = NAN, t_ex = INFINITY, t_cold = INFINITY, a_ex = NAN,
               a_cold = NAN;
    at_gram_path path = AT_GRAM_PLAIN;
    at_fast_state *st = NULL;
    at_fast_info ic, iw;
    /* interleaved, so a burst of load on the shared machine hits every method alike */
    for (int r = 0; r < repeat; r++) {
        if (run_svd) {
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
    }
    const int64_t spikes = last_spikes;
    perturb(w, (size_t)(rows * cols), 1e-3, 7);
    double a_ex2 = exact(g, w, rows, cols, lam, NULL);
    t0 = now();
    double a_warm = fast(f, st, w, rows, cols, &iw);
    double t_warm = now() - t0;
    /* a second warm snapshot: the steady state of a monitor */
    perturb(w, (size_t)(rows * cols), 1e-3, 8);
    double a_ex3 = exact(g, w, rows, cols, lam, NULL);
    at_fast_info iw2;
    t0 = now();
    double a_warm2 = fast(f, st, w, rows, cols, &iw2);
    double t_warm2 = now() - t0;
    printf("%-8s %5lldx%-5lld %8.2f %8.2f (%5.1fx %-5s) %7.2f (%5.1fx) %7.3f (%5.1fx %s/%d) "
           "%7.3f (%5.1fx)  alpha %.4f  |dalpha| ex %.1e cold %.1e warm %.1e %.1e  tail %lld\n",
           kind, (long long)rows, (long long)cols, t_ref, t_ex, t_ref / t_ex, path_name(path),
           t_cold, t_ref / t_cold, t_warm, t_ref / t_warm, at_mode_name(iw.mode), iw.passes,
           t_warm2, t_ref / t_warm2, a_ex, fabs(a_ex - a_ref), fabs(a_cold - a_ex),
           fabs(a_warm - a_ex2), fabs(a_warm2 - a_ex3), (long long)spikes);
    fflush(stdout);
    at_fast_state_free(st);
    free(lam);
}

/* GPT-2 small: 12 blocks of c_attn 768x2304, c_proj 768x768, c_fc 768x3072, mlp.c_proj
 * 3072x768 (HF Conv1D orientation). Cold refresh of all 48 (best of `repeat`, fresh states),
 * then two warm refreshes, each after a 1e-3 step of every layer. */
static void gpt2(at_fast *f, int repeat)
{
    const int64_t shapes[4][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
    float *w[48];
    at_fast_state *st[48];
    for (int i = 0; i < 48; i++) {
        w[i] = gen_spiked(shapes[i % 4][0], shapes[i % 4][1], 60, 12.0, 0.3, 1000 + (uint64_t)i);
        st[i] = NULL;
    }
    for (int pass = 1 - repeat; pass < 3; pass++) {
        for (int i = 0; i < 48 && pass <= 0; i++) {
            at_fast_state_free(st[i]);
            st[i] = at_fast_state_new();
        }
        for (int i = 0; i < 48 && pass > 0; i++)
            perturb(w[i], (size_t)(shapes[i % 4][0] * shapes[i % 4][1]), 1e-3,
                    (uint64_t)(pass * 100 + i));
        int modes[4] = {0, 0, 0, 0};
        double t0 = now();
        for (int i = 0; i < 48; i++) {
            at_fast_info info;
            fast(f, st[i], w[i], shapes[i % 4][0], shapes[i % 4][1], &info);
            modes[info.mode]++;
        }
        printf("GPT-2 small, 48 layers, %s refresh: %.2f s (gram %d warm %d skipped %d)\n",
               pass > 0 ? "warm" : "cold", now() - t0, modes[AT_MODE_GRAM], modes[AT_MODE_WARM],
               modes[AT_MODE_SKIPPED]);
        fflush(stdout);
    }
    for (int i = 0; i < 48; i++) {
        free(w[i]);
        at_fast_state_free(st[i]);
    }
}

int main(int argc, char **argv)
{
    int threads = 1, skip_large = 0, quick = 0, repeat = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--skip-large-svd") == 0)
            skip_large = 1;
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
        else {
            fprintf(stderr,
                    "usage: bench_fast [--threads N] [--repeat N] [--skip-large-svd] [--quick]\n");
            return 2;
        }
    }
    openblas_set_num_threads(threads);
    /* The kernels OpenBLAS picked for this CPU (OPENBLAS_CORETYPE overrides): docs/fast.md */
    printf("bench_fast: OpenBLAS threads %d, %s kernels, best of %d runs, load average at start "
           "%.2f\n",
           threads, openblas_get_corename(), repeat, loadavg());
    printf("times in seconds; ratios = reference / method; |dalpha| of exact vs reference, of "
           "cold/warm vs exact mode of the same snapshot\n");
    printf("%-8s %-11s %8s %8s %14s %7s %8s %7s %16s %7s %8s\n", "layer", "shape", "ref", "exact",
           "", "cold", "", "warm1", "", "warm2", "");
    at_gram *g = at_gram_new();
    at_fast *f = at_fast_new();
    if (!g || !f)
        return 1;
    struct {
        const char *kind;
        int64_t rows, cols;
        int student;
    } L[] = {{"spiked", 768, 3072, 0},
             {"student", 768, 3072, 1},
             {"spiked", 4096, 4096, 0},
             {"student", 4096, 4096, 1},
             {"spiked", 4096, 11008, 0}};
    const int nl = quick ? 2 : (int)(sizeof L / sizeof L[0]);
    for (int i = 0; i < nl; i++) {
        float *w = L[i].student
                       ? gen_student(L[i].rows, L[i].cols, 3.0, 50 + (uint64_t)i)
                       : gen_spiked(L[i].rows, L[i].cols, 200, 30.0, 0.3, 50 + (uint64_t)i);
        int svd = !(skip_large && L[i].cols > 4096);
        layer(L[i].kind, w, L[i].rows, L[i].cols, svd, repeat, g, f);
        free(w);
    }
    gpt2(f, repeat);
    printf("load average at end %.2f\n", loadavg());
    at_fast_free(f);
    at_gram_free(g);
    return 0;
}
