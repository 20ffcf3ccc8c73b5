/* SPDX-License-Identifier: Apache-2.0 */
/* fixture.c -- see fixture.h. */
#include "fixture.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cjson/cJSON.h>
#include <cmocka.h>
#include <lapacke.h>

#include "alphatop/rng.h"
#include "testutil.h"

int fx_oracle_load(fx_case **out)
{
    size_t len = 0;
    char *json = at_test_slurp(AT_DATA_DIR "/oracle/matrices/index.json", &len);
    assert_non_null(json);
    cJSON *root = cJSON_Parse(json);
    free(json);
    assert_non_null(root);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "matrices");
    int n = cJSON_GetArraySize(list);
    fx_case *c = calloc((size_t)n, sizeof *c);
    assert_non_null(c);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(list, i);
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const char *kind = cJSON_GetObjectItemCaseSensitive(e, "kind")->valuestring;
        snprintf(c[i].name, sizeof c[i].name, "%s",
                 cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring);
        c[i].t.dtype = AT_DTYPE_F32;
        c[i].t.kind = strcmp(kind, "conv2d") == 0 ? AT_KIND_CONV2D : AT_KIND_LINEAR;
        c[i].t.ndim = cJSON_GetArraySize(shape);
        size_t count = 1;
        for (int d = 0; d < c[i].t.ndim; d++) {
            c[i].t.shape[d] = (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble;
            count *= (size_t)c[i].t.shape[d];
        }
        char path[512];
        snprintf(path, sizeof path, AT_DATA_DIR "/oracle/matrices/%s",
                 cJSON_GetObjectItemCaseSensitive(e, "file")->valuestring);
        size_t got = 0;
        c[i].w = (float *)at_test_slurp(path, &got);
        assert_non_null(c[i].w);
        assert_int_equal(got, count * sizeof(float));
        c[i].t.data = c[i].w;
    }
    cJSON_Delete(root);
    *out = c;
    return n;
}

void fx_cases_free(fx_case *c, int n)
{
    if (!c)
        return;
    for (int i = 0; i < n; i++)
        free(c[i].w);
    free(c);
}

static void unit_gaussian(at_rng *r, double *x, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = at_rng_normal(r);
        s += x[i] * x[i];
    }
    s = sqrt(s);
    for (int64_t i = 0; i < n; i++)
        x[i] /= s;
}

float *fx_spiked(int64_t rows, int64_t cols, int r, double top, double gamma, uint64_t seed)
{
    at_rng g;
    at_rng_seed(&g, seed);
    float *w = malloc((size_t)(rows * cols) * sizeof(float));
    double *u = malloc((size_t)rows * sizeof(double)), *v = malloc((size_t)cols * sizeof(double));
    assert_true(w && u && v);
    const double sd = 1.0 / sqrt((double)cols);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)(sd * at_rng_normal(&g));
    for (int s = 1; s <= r; s++) {
        unit_gaussian(&g, u, rows);
        unit_gaussian(&g, v, cols);
        const double str = top * pow((double)s, -gamma);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                w[i * cols + j] += (float)(str * u[i] * v[j]);
    }
    free(u);
    free(v);
    return w;
}

float *fx_with_singular_values(int64_t rows, int64_t cols, const double *sv, uint64_t seed)
{
    const int64_t p = rows < cols ? rows : cols;
    at_rng r;
    at_rng_seed(&r, seed);
    double *u = malloc((size_t)(rows * p) * sizeof(double)),
           *v = malloc((size_t)(cols * p) * sizeof(double)),
           *tau = malloc((size_t)p * sizeof(double)),
           *a = malloc((size_t)(rows * cols) * sizeof(double));
    float *w = malloc((size_t)(rows * cols) * sizeof(float));
    assert_true(u && v && tau && a && w);
    for (int64_t i = 0; i < rows * p; i++)
        u[i] = at_rng_normal(&r);
    for (int64_t i = 0; i < cols * p; i++)
        v[i] = at_rng_normal(&r);
    assert_int_equal(LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (int)rows, (int)p, u, (int)rows, tau), 0);
    assert_int_equal(LAPACKE_dorgqr(LAPACK_COL_MAJOR, (int)rows, (int)p, (int)p, u, (int)rows, tau),
                     0);
    assert_int_equal(LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (int)cols, (int)p, v, (int)cols, tau), 0);
    assert_int_equal(LAPACKE_dorgqr(LAPACK_COL_MAJOR, (int)cols, (int)p, (int)p, v, (int)cols, tau),
                     0);
    for (int64_t k = 0; k < p; k++)
        for (int64_t i = 0; i < rows; i++)
            u[i + k * rows] *= sv[k];
    /* row-major rows x cols = column-major cols x rows: A^T = V diag(sv) U^T */
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)cols, (int)rows, (int)p, 1.0, v,
                (int)cols, u, (int)rows, 0.0, a, (int)cols);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)a[i];
    free(a);
    free(tau);
    free(v);
    free(u);
    return w;
}

void fx_perturb(float *w, int64_t rows, int64_t cols, double rel, uint64_t seed)
{
    at_rng g;
    at_rng_seed(&g, seed);
    const size_t count = (size_t)(rows * cols);
    double norm = 0.0;
    for (size_t i = 0; i < count; i++)
        norm += (double)w[i] * w[i];
    norm = sqrt(norm);
    double *u = malloc((size_t)rows * 2 * sizeof(double));
    double *v = malloc((size_t)cols * 2 * sizeof(double));
    assert_true(u && v);
    unit_gaussian(&g, u, rows);
    unit_gaussian(&g, u + rows, rows);
    unit_gaussian(&g, v, cols);
    unit_gaussian(&g, v + cols, cols);
    /* Rank-2 part of norm ~ rel/sqrt(2) * ||w||, dense part the same: E||d||^2 = rel^2 ||w||^2. */
    const double lr = rel * norm / 2.0, sd = rel * norm / sqrt(2.0 * (double)count);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            w[i * cols + j] +=
                (float)(lr * (u[i] * v[j] + u[rows + i] * v[cols + j]) + sd * at_rng_normal(&g));
    free(u);
    free(v);
}

at_tensor fx_tensor(const float *w, int64_t rows, int64_t cols)
{
    at_tensor t = {.data = w, .dtype = AT_DTYPE_F32, .kind = AT_KIND_LINEAR, .ndim = 2};
    t.shape[0] = rows;
    t.shape[1] = cols;
    return t;
}
