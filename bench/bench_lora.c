/* SPDX-License-Identifier: Apache-2.0 */
/* bench_lora.c -- LoRA update B A: factored spectrum (at_lora_svals: QR of both factors, SVD
 * of the r x r core) against the dense route (form B A in float64, dgesdd of the product), side
 * by side in one run. Prints the time ratio and the largest relative difference of the r
 * nonzero singular values. Seeded data; never run by ctest.
 *
 *     build/bench/bench_lora
 */
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "alphatop/lora.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *gauss(size_t n, uint64_t seed)
{
    float *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++) {
        /* splitmix64 + Box-Muller */
        uint64_t z[2];
        for (int k = 0; k < 2; k++) {
            uint64_t x = (seed += 0x9e3779b97f4a7c15ull);
            x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
            x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
            z[k] = x ^ (x >> 31);
        }
        double u1 = ((double)(z[0] >> 11) + 1.0) / 9007199254740993.0;
        double u2 = (double)(z[1] >> 11) / 9007199254740992.0;
        w[i] = (float)(0.05 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    return w;
}

static void run(int64_t out, int64_t in, int64_t r)
{
    float *b = gauss((size_t)(out * r), 1), *a = gauss((size_t)(r * in), 2);
    at_tensor B = {b, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {out, r}};
    at_tensor A = {a, AT_DTYPE_F32, AT_KIND_LINEAR, 2, {r, in}};
    at_lora *l = at_lora_new();
    const double *sv;
    size_t n;
    const int reps = 5;
    double t0 = now();
    for (int i = 0; i < reps; i++)
        at_lora_svals(l, &B, &A, 1.0, &sv, &n);
    const double t_fact = (now() - t0) / reps;

    double *bd = malloc(sizeof(double) * (size_t)(out * r));
    double *ad = malloc(sizeof(double) * (size_t)(r * in));
    double *p = malloc(sizeof(double) * (size_t)(out * in));
    int64_t k = out < in ? out : in;
    double *ref = malloc(sizeof(double) * (size_t)k);
    t0 = now();
    for (int64_t i = 0; i < out * r; i++)
        bd[i] = b[i];
    for (int64_t i = 0; i < r * in; i++)
        ad[i] = a[i];
    /* Row-major B A is column-major (A^T B^T): in x out. */
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (blasint)in, (blasint)out, (blasint)r,
                1.0, ad, (blasint)in, bd, (blasint)r, 0.0, p, (blasint)in);
    LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)in, (lapack_int)out, p, (lapack_int)in, ref,
                   NULL, 1, NULL, 1);
    const double t_dense = now() - t0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(sv[i] - ref[i]) / ref[i];
        worst = d > worst ? d : worst;
    }
    printf("%5lldx%-5lld r=%-3lld  factored %9.3f ms  dense %9.1f ms  ratio %7.0fx  "
           "max rel diff %.1e\n",
           (long long)out, (long long)in, (long long)r, 1e3 * t_fact, 1e3 * t_dense,
           t_dense / t_fact, worst);
    at_lora_free(l);
    free(a);
    free(b);
    free(bd);
    free(ad);
    free(p);
    free(ref);
}

int main(void)
{
    run(512, 512, 16);
    run(1024, 1024, 16);
    run(2048, 512, 64);
    return 0;
}
