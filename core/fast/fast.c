/* SPDX-License-Identifier: Apache-2.0 */
/* fast.c -- fast mode per layer: skip, warm update or full float32 spectrum (see fast.h). */
#include "alphatop/fast.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/gram.h"
#include "alphatop/rng.h"
#include "fast_internal.h"
#include "htsr_internal.h"
#include "warm.h"

/* Random +-1 probes of the change sketch S = A Omega. ||dS|| / ||S|| estimates the relative
 * Frobenius change with a relative spread of about 1/sqrt(SKETCH) (Johnson-Lindenstrauss):
 * plenty for thresholds that are orders of magnitude apart, at 1/5 of one warm pass. */
#define SKETCH 16
/* Error budget on alpha of a converged warm update (a quarter of the 1e-3 it must meet). */
#define ALPHA_BUDGET 2.5e-4
/* at_powerlaw_fit's own floor: eigenvalues at or below it never enter the fit. */
#define FIT_FLOOR 1e-5

/* The cost model that decides whether a full spectrum keeps the top-b vectors: seconds on one
 * core, from rates measured on this project's machine (docs/fast.md); only ratios decide, so
 * another machine shifts the choice only where its kernels are unequally faster. */
#define RATE_GEMM32 150e9 /* float32 GEMM / SYRK flops per second */
#define RATE_GEMM64 70e9  /* float64 */
#define RATE_SY2SB 87e9   /* ssytrd_sy2sb, counted as 4/3 p^3 flops */
#define RATE_EIG64 30e9   /* dsyevd with vectors, counted as 9 b^3 flops */
#define RATE_BULGE 90e9   /* at_bulge_apply, 2 p^2 b flops */
#define RATE_ORMQR 73e9   /* sormqr, 2 p^2 b flops */
#define SEC_CHASE 19e-9   /* the bulge chase, per p^2 */
#define SEC_STERF 6e-9    /* ssterf, per p^2 */
#define SEC_STEMR 150e-9  /* sstemr, per p * b (bisection of b values, then their vectors) */

/* Eigenvalues only: syrk of the short side, the two reductions, ssterf. */
static double cost_spectrum(double p, double lg)
{
    return p * p * lg / RATE_GEMM32 + 4.0 / 3.0 * p * p * p / RATE_SY2SB +
           (SEC_CHASE + SEC_STERF) * p * p;
}

/* The top-b vectors after cost_spectrum: sstemr, then back through both stages. */
static double cost_vectors(double p, double b)
{
    return SEC_STEMR * p * b + 2.0 * p * p * b / RATE_BULGE + 2.0 * p * p * b / RATE_ORMQR;
}

/* One pass of at_warm_run: two float32 GEMMs; in float64 two Cholesky-QR rounds (syrk and trsm
 * of lg x b), Z^T Z, dsyevd of b x b, U = Z X. */
static double cost_warm_pass(double p, double lg, double b)
{
    return 4.0 * lg * p * b / RATE_GEMM32 + (4.0 * lg * b * b + 3.0 * p * b * b) / RATE_GEMM64 +
           9.0 * b * b * b / RATE_EIG64;
}

/* Whether keeping b vectors pays: each of the `horizon` snapshots expected after this one can
 * then be a one-pass warm update instead of another full spectrum. A heavy tail makes b large
 * (k = 1.5 x num_pl_spikes): the vectors cost ~p^2 b and a warm pass ~lg b^2, so past a point
 * neither pays. */
static int vectors_pay(const at_fast_opts *o, int64_t p, int64_t lg, int64_t b)
{
    if ((double)b > o->max_block_frac * (double)p || o->horizon <= 0)
        return 0;
    const double dp = (double)p, dl = (double)lg, db = (double)b;
    const double saved = cost_spectrum(dp, dl) - cost_warm_pass(dp, dl, db);
    return (double)o->horizon * saved > cost_vectors(dp, db);
}

struct at_fast {
    at_htsr *htsr; /* validation, f16/bf16 widening, and the exact path for conv2d */
    at_gram *gram;
    at_warm *warm;
    double *lam, *hyb; /* p: full spectrum; warm hybrid spectrum */
    size_t lam_cap, hyb_cap;
    float *v; /* p x b: new basis, swapped into the state on success */
    size_t v_cap;
    float *omega; /* n x SKETCH probes for (omega_n, omega_seed) */
    size_t omega_cap;
    int64_t omega_n;
    uint64_t omega_seed;
    float *sk; /* m x SKETCH sketch of this snapshot */
    size_t sk_cap;
    float *panel; /* one panel of a layer read in panels */
    size_t panel_cap;
    char err[256];
};

struct at_fast_state {
    int have;     /* a computed result exists for shape (m, n) */
    int64_t m, n; /* column-major view of the last weights */
    int large;    /* keeping vectors did not pay (vectors_pay): full spectrum every time */
    int64_t k, b; /* top-k fitted, block kept */
    float *v;     /* p x b basis of the short side (NULL when large) */
    size_t v_cap;
    double *spec; /* last full spectrum, ascending, p values */
    size_t spec_cap;
    float *sk; /* m x SKETCH sketch of the last computed snapshot */
    size_t sk_cap;
    double sk_norm; /* ||sk||_F */
    int64_t spikes; /* num_pl_spikes of the last full fit */
    int since_full; /* computed snapshots since the last full spectrum */
    at_metrics last;
    at_fast_info last_info;
};

void at_fast_opts_default(at_fast_opts *o)
{
    o->skip_rel = 1e-5;
    o->two_pass_rel = 3e-3;
    o->max_passes = 4;
    o->converge_tol = 5e-5;
    o->max_warm_rel = 0.05;
    o->k_min = 64;
    o->max_block_frac = 0.3;
    o->tail_change = 0.25;
    o->refresh_every = 16;
    o->horizon = 15;
    o->min_evals = 10;
    o->seed = 0x5eed5eedULL;
    o->panel_bytes = (size_t)256 << 20;
}

at_fast *at_fast_new(void)
{
    at_fast *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->htsr = at_htsr_new();
    self->gram = at_gram_new();
    self->warm = at_warm_new();
    if (!self->htsr || !self->gram || !self->warm) {
        at_fast_free(self);
        return NULL;
    }
    return self;
}

void at_fast_free(at_fast *self)
{
    if (!self)
        return;
    at_htsr_free(self->htsr);
    at_gram_free(self->gram);
    at_warm_free(self->warm);
    free(self->lam);
    free(self->hyb);
    free(self->v);
    free(self->omega);
    free(self->sk);
    free(self->panel);
    free(self);
}

at_fast_state *at_fast_state_new(void)
{
    return calloc(1, sizeof(at_fast_state));
}

void at_fast_state_free(at_fast_state *st)
{
    if (!st)
        return;
    free(st->v);
    free(st->spec);
    free(st->sk);
    free(st);
}

size_t at_fast_state_bytes(const at_fast_state *st)
{
    if (!st)
        return 0;
    return sizeof *st + st->v_cap * sizeof(float) + st->spec_cap * sizeof(double) +
           st->sk_cap * sizeof(float);
}

const char *at_fast_last_error(const at_fast *self)
{
    return self ? self->err : "no workspace";
}

const char *at_refresh_name(at_refresh r)
{
    switch (r) {
    case AT_REFRESH_NONE:
        return "none";
    case AT_REFRESH_FIRST:
        return "first";
    case AT_REFRESH_XMIN_LOW:
        return "xmin-low";
    case AT_REFRESH_TAIL:
        return "tail";
    case AT_REFRESH_LARGE:
        return "large";
    case AT_REFRESH_PERIODIC:
        return "periodic";
    case AT_REFRESH_NOT_LINEAR:
        return "not-linear";
    case AT_REFRESH_CHANGE:
        return "change";
    }
    return "none";
}

static int fail(at_fast *self, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(at_fast *self, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->err, sizeof self->err, fmt, ap);
    va_end(ap);
    return rc;
}

int at_fast_size_skip(const at_shape *sh, const at_fast_opts *o, at_metrics *out)
{
    const int64_t p = sh->rows < sh->cols ? sh->rows : sh->cols;
    const int64_t lg = sh->rows < sh->cols ? sh->cols : sh->rows;
    out->N = lg;
    out->M = p;
    out->rf = 1;
    out->Q = (double)lg / (double)p;
    out->num_evals = p;
    return p < o->min_evals && lg <= INT32_MAX / SKETCH;
}

/* Every column from an ascending spectrum x[0..p-1] and a fit over (part of) it. */
static void metrics_fill(const double *x, int64_t p, const at_fit *fit, at_metrics *m)
{
    m->lambda_max = x[p - 1];
    m->sv_max = sqrt(x[p - 1]);
    m->sv_min = sqrt(x[0]);
    const double tol = m->sv_max * (double)m->N * DBL_EPSILON;
    int64_t loss = 0, weak = 0;
    for (int64_t i = 0; i < p; i++) {
        loss += !(sqrt(x[i]) > tol);
        weak += x[i] < 1e-6;
    }
    m->rank_loss = loss;
    m->weak_rank_loss = weak;
    m->status = fit->status;
    m->alpha = fit->alpha;
    m->xmin = fit->xmin;
    m->xmax = fit->xmax;
    m->D = fit->D;
    m->sigma = fit->sigma;
    m->num_pl_spikes = fit->num_pl_spikes;
    m->warning = at_warning_for(fit->status, fit->alpha);
    at_scale_metrics(x, (size_t)p, m);
}

/* Omega (n x SKETCH, +-1 entries drawn from the seed) and room for the m x SKETCH sketch. */
static int sketch_begin(at_fast *self, int64_t m, int64_t n, uint64_t seed)
{
    if (self->omega_n != n || self->omega_seed != seed || !self->omega) {
        if (at_grow((void **)&self->omega, &self->omega_cap, (size_t)n * SKETCH, sizeof(float)))
            return AT_ERR_NOMEM;
        at_rng r;
        at_rng_seed(&r, seed);
        for (size_t i = 0; i < (size_t)n * SKETCH; i++)
            self->omega[i] = (at_rng_next(&r) >> 63) ? 1.0f : -1.0f;
        self->omega_n = n;
        self->omega_seed = seed;
    }
    if (at_grow((void **)&self->sk, &self->sk_cap, (size_t)m * SKETCH, sizeof(float)))
        return AT_ERR_NOMEM;
    return AT_OK;
}

/* S = A Omega for the m x n matrix a. */
static int sketch(at_fast *self, const float *a, int64_t m, int64_t n, uint64_t seed)
{
    if (sketch_begin(self, m, n, seed))
        return AT_ERR_NOMEM;
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, SKETCH, (int)n, 1.0f, a, (int)m,
                self->omega, (int)n, 0.0f, self->sk, (int)m);
    return AT_OK;
}

/* The sum of the squares of x[0..count-1] in float64, in eight interleaved partial sums: one
 * running sum waits out every addition's latency (a scalar loop that took a tenth of a warm
 * sweep's time), eight independent ones are vectorised. */
static double sum_squares(const float *x, size_t count)
{
    double part[8] = {0.0};
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        for (int j = 0; j < 8; j++)
            part[j] += (double)x[i + j] * x[i + j];
    double s = 0.0;
    for (; i < count; i++)
        s += (double)x[i] * x[i];
    for (int j = 0; j < 8; j++)
        s += part[j];
    return s;
}

static double frob(const float *x, size_t count)
{
    return sqrt(sum_squares(x, count));
}

/* The panels of a layer read in panels hold a quarter of panel_bytes, at most this (bytes of
 * float32). */
#define PANEL_BYTES ((size_t)64 << 20)

/* What a full analysis needs of the weights, with t (rows x cols, F16 or BF16) widened to
 * float32 one panel at a time instead of whole: the NaN/Inf check, the Gram matrix of the short
 * side (at_gram_begin32 / add32: analyze_full ends it) and the sketch. With a = t's bytes as the
 * column-major m x n matrix (m = cols, n = rows), a tall layer (m <= n, the Gram A A^T) is read
 * in panels of whole rows of t, each an m x k block of columns of A; a wide one (the Gram A^T A)
 * in panels of k columns of t, gathered into k x n blocks of rows of A. */
static int read_panels(at_fast *self, const at_tensor *t, const at_shape *sh, const at_fast_opts *o)
{
    const int64_t m = sh->cols, n = sh->rows, total = m <= n ? n : m, across = m <= n ? m : n;
    const int tall = m <= n;
    const size_t esz = t->dtype == AT_DTYPE_F32 ? 4 : 2;
    const size_t panel = o->panel_bytes / 4 < PANEL_BYTES ? o->panel_bytes / 4 : PANEL_BYTES;
    int64_t k = (int64_t)(panel / sizeof(float)) / across;
    k = k < 1 ? 1 : k > total ? total : k;
    if (at_grow((void **)&self->panel, &self->panel_cap, (size_t)(k * across), sizeof(float)) ||
        sketch_begin(self, m, n, o->seed))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    int rc = at_gram_begin32(self->gram, tall ? m : n);
    if (rc)
        return fail(self, rc, "Gram matrix: %s", at_gram_last_error(self->gram));
    const unsigned char *bytes = t->data;
    size_t nan = 0, inf = 0;
    double sum2 = 0.0;
    for (int64_t k0 = 0; k0 < total; k0 += k) {
        const int64_t kk = total - k0 < k ? total - k0 : k;
        float *x = self->panel;
        if (tall) {
            at_convert_to_f32(bytes + (size_t)(k0 * m) * esz, t->dtype, (size_t)(kk * m), x);
        } else {
            for (int64_t r = 0; r < n; r++)
                at_convert_to_f32(bytes + (size_t)(r * m + k0) * esz, t->dtype, (size_t)kk,
                                  x + r * kk);
        }
        at_count_nonfinite(x, (size_t)(kk * across), &nan, &inf);
        sum2 += sum_squares(x, (size_t)(kk * across));
        at_gram_add32(self->gram, x, kk, tall ? m : kk, !tall);
        if (tall)
            cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, SKETCH, (int)kk, 1.0f, x,
                        (int)m, self->omega + k0, (int)n, k0 ? 1.0f : 0.0f, self->sk, (int)m);
        else
            cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)kk, SKETCH, (int)n, 1.0f, x,
                        (int)kk, self->omega, (int)n, 0.0f, self->sk + k0, (int)m);
    }
    if ((rc = at_nonfinite_check(nan, inf, self->err, sizeof self->err)))
        return rc;
    if (sum2 == 0.0)
        return fail(self, AT_ERR_EMPTY, "all weights are zero");
    return AT_OK;
}

static double sketch_change(const at_fast *self, const at_fast_state *st)
{
    double d = 0.0;
    for (size_t i = 0; i < (size_t)st->m * SKETCH; i++) {
        double t = (double)self->sk[i] - st->sk[i];
        d += t * t;
    }
    return st->sk_norm > 0.0 ? sqrt(d) / st->sk_norm : INFINITY;
}

static int64_t top_k_for(const at_fast_opts *o, int64_t spikes)
{
    int64_t k = (int64_t)ceil(1.5 * (double)spikes);
    return k > o->k_min ? k : o->k_min;
}

/* Keeps this snapshot's sketch as the reference for the next change estimate. */
static int keep_sketch(at_fast *self, at_fast_state *st, int64_t m)
{
    if (at_grow((void **)&st->sk, &st->sk_cap, (size_t)m * SKETCH, sizeof(float)))
        return AT_ERR_NOMEM;
    memcpy(st->sk, self->sk, (size_t)m * SKETCH * sizeof(float));
    st->sk_norm = frob(st->sk, (size_t)m * SKETCH);
    return AT_OK;
}

/* Full float32 spectrum, full fit; with a state, also the next warm update's basis. */
static int analyze_full(at_fast *self, at_fast_state *st, const float *a, int64_t m, int64_t n,
                        const at_fast_opts *o, at_metrics *out, at_fast_info *info)
{
    const int64_t p = m < n ? m : n, lg = m < n ? n : m;
    if (at_grow((void **)&self->lam, &self->lam_cap, (size_t)p, sizeof(double)))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    /* No a: read_panels formed the Gram matrix. */
    int rc =
        a ? at_gram_evals32(self->gram, a, m, n, self->lam) : at_gram_end32(self->gram, self->lam);
    if (rc)
        return fail(self, rc, "Gram spectrum: %s", at_gram_last_error(self->gram));
    at_fit fit;
    rc = at_powerlaw_fit(self->lam, (size_t)p, &fit);
    if (rc)
        return fail(self, rc, "power-law fit: %s", at_strerror(rc));
    metrics_fill(self->lam, p, &fit, out);
    const int64_t k = top_k_for(o, fit.status == AT_FIT_SUCCESS ? fit.num_pl_spikes : 0);
    const int64_t b = k + k / 4;
    const int large = !vectors_pay(o, p, lg, b);
    info->k = p;
    info->b = large ? 0 : b;
    if (!st)
        return AT_OK;
    if (!large) {
        if (at_grow((void **)&self->v, &self->v_cap, (size_t)(p * b), sizeof(float)))
            return fail(self, AT_ERR_NOMEM, "out of memory");
        rc = at_gram_top_vectors32(self->gram, b, self->v);
        if (rc)
            return fail(self, rc, "top vectors: %s", at_gram_last_error(self->gram));
    }
    if (at_grow((void **)&st->spec, &st->spec_cap, (size_t)p, sizeof(double)) ||
        keep_sketch(self, st, m))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    if (!large) {
        float *t = st->v;
        size_t tc = st->v_cap;
        st->v = self->v;
        st->v_cap = self->v_cap;
        self->v = t;
        self->v_cap = tc;
    }
    memcpy(st->spec, self->lam, (size_t)p * sizeof(double));
    st->large = large;
    st->k = k;
    st->b = large ? 0 : b;
    st->spikes = fit.status == AT_FIT_SUCCESS ? fit.num_pl_spikes : 0;
    st->since_full = 0;
    return AT_OK;
}

/* Warm update. Returns AT_OK with *why == AT_REFRESH_NONE when the result stands, or with the
 * reason a full spectrum is needed instead (then st is unchanged). */
static int analyze_warm(at_fast *self, at_fast_state *st, const float *a, double norm2, double rel,
                        const at_fast_opts *o, at_metrics *out, at_fast_info *info, at_refresh *why)
{
    const int64_t m = st->m, n = st->n, p = m < n ? m : n, b = st->b, k = st->k;
    if (at_grow((void **)&self->v, &self->v_cap, (size_t)(p * b), sizeof(float)) ||
        at_grow((void **)&self->lam, &self->lam_cap, (size_t)p, sizeof(double)) ||
        at_grow((void **)&self->hyb, &self->hyb_cap, (size_t)p, sizeof(double)))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    memcpy(self->v, st->v, (size_t)(p * b) * sizeof(float));
    const int one = rel <= o->two_pass_rel;
    /* alpha = 1 + k / sum ln(x / xmin) amplifies a relative error d of the tail values to about
     * (alpha - 1)^2 d: random-like layers (alpha 6..10) need a tighter tolerance. */
    double tol = o->converge_tol, am1 = st->last.alpha - 1.0;
    if (st->last.status == AT_FIT_SUCCESS && am1 > 0.0)
        tol = fmin(tol, ALPHA_BUDGET / (am1 * am1));
    int passes = 0, converged = 0;
    int rc = at_warm_run(self->warm, a, m, n, b, k, one ? 1 : 2, one ? 1 : o->max_passes, tol,
                         self->v, self->lam, &passes, &converged);
    if (rc)
        return fail(self, rc, "warm subspace iteration failed");
    if (!converged) {
        *why = AT_REFRESH_CHANGE;
        return AT_OK;
    }
    const double *top = self->lam + (b - k); /* ascending top-k */
    at_fit fit;
    rc = at_powerlaw_fit(top, (size_t)k, &fit);
    if (rc)
        return fail(self, rc, "power-law fit: %s", at_strerror(rc));
    int64_t above = 0;
    for (int64_t i = 0; i < k; i++)
        above += top[i] > FIT_FLOOR;
    /* An xmin near the bottom of the window may have a better candidate below it. */
    if (fit.status != AT_FIT_SUCCESS || fit.xmin_index < above / 3) {
        *why = AT_REFRESH_XMIN_LOW;
        return AT_OK;
    }
    if (fabs((double)(fit.num_pl_spikes - st->spikes)) > o->tail_change * (double)st->spikes) {
        *why = AT_REFRESH_TAIL;
        return AT_OK;
    }
    /* The bulk below the top-k is not recomputed: the last full spectrum's, rescaled so the
     * spectrum's sum is the exact squared Frobenius norm of these weights. */
    double top_sum = 0.0, bulk_sum = 0.0;
    for (int64_t i = 0; i < k; i++)
        top_sum += top[i];
    for (int64_t i = 0; i < p - k; i++)
        bulk_sum += st->spec[i];
    double scale = bulk_sum > 0.0 && norm2 > top_sum ? (norm2 - top_sum) / bulk_sum : 1.0;
    for (int64_t i = 0; i < p - k; i++)
        self->hyb[i] = st->spec[i] * scale;
    memcpy(self->hyb + (p - k), top, (size_t)k * sizeof(double));
    at_sort_doubles(self->hyb, (size_t)p);
    metrics_fill(self->hyb, p, &fit, out);
    out->mode = AT_MODE_WARM;
    if (keep_sketch(self, st, m))
        return fail(self, AT_ERR_NOMEM, "out of memory");
    float *t = st->v;
    size_t tc = st->v_cap;
    st->v = self->v;
    st->v_cap = self->v_cap;
    self->v = t;
    self->v_cap = tc;
    st->since_full++;
    info->mode = AT_MODE_WARM;
    info->k = k;
    info->b = b;
    info->passes = passes;
    *why = AT_REFRESH_NONE;
    return AT_OK;
}

static int analyze_exact(at_fast *self, const at_tensor *t, const at_htsr_opts *ho, at_metrics *out,
                         at_fast_info *info)
{
    int rc = at_htsr_analyze(self->htsr, t, ho, out);
    if (rc)
        return fail(self, rc, "%s", at_htsr_last_error(self->htsr));
    out->mode = AT_MODE_EXACT;
    info->mode = AT_MODE_EXACT;
    info->refresh = AT_REFRESH_NOT_LINEAR;
    info->k = out->num_evals;
    return AT_OK;
}

int at_fast_analyze(at_fast *self, at_fast_state *st, const at_tensor *t, const at_fast_opts *o,
                    const at_htsr_opts *ho, at_metrics *out, at_fast_info *info)
{
    if (!self || !t || !out)
        return AT_ERR_ARG;
    at_fast_opts od;
    if (!o) {
        at_fast_opts_default(&od);
        o = &od;
    }
    at_fast_info id;
    if (!info)
        info = &id;
    *info = (at_fast_info){.mode = AT_MODE_GRAM, .rel_change = NAN};
    at_metrics_init(out, AT_MODE_GRAM);
    if (t->kind == AT_KIND_CONV2D)
        return analyze_exact(self, t, ho, out, info);

    at_shape sh;
    const float *a = NULL;
    /* A layer skipped for its size is decided from its shape: its weights are not read. */
    int rc = at_tensor_shape(t, &sh, self->err, sizeof self->err);
    if (rc)
        return rc;
    /* Row-major rows x cols is column-major cols x rows: the bytes are used in place. */
    const int64_t m = sh.cols, n = sh.rows, lg = m < n ? n : m;
    const int skip = at_fast_size_skip(&sh, o, out);
    if (m > INT32_MAX / SKETCH || n > INT32_MAX / SKETCH)
        return fail(self, AT_ERR_SIZE, "a side of %lld exceeds BLAS's int range", (long long)lg);
    if (skip) {
        info->refresh = AT_REFRESH_FIRST;
        return AT_OK;
    }
    at_refresh why = AT_REFRESH_FIRST;
    const int warm = st && st->have && st->m == m && st->n == n;
    /* A large narrow-typed layer analysed cold is never widened whole (fast.h, panel_bytes). */
    if (!warm && t->dtype != AT_DTYPE_F32 && o->panel_bytes &&
        sh.count > o->panel_bytes / sizeof(float)) {
        if (!t->data)
            return fail(self, AT_ERR_ARG, "no tensor data");
        if ((rc = read_panels(self, t, &sh, o)))
            return rc;
    } else if ((rc = at_htsr_load(self->htsr, t, &sh, &a))) {
        return fail(self, rc, "%s", at_htsr_last_error(self->htsr));
    }
    const double norm = a ? frob(a, sh.count) : 1.0;
    if (norm == 0.0)
        return fail(self, AT_ERR_EMPTY, "all weights are zero");
    if (a && sketch(self, a, m, n, o->seed))
        return fail(self, AT_ERR_NOMEM, "out of memory");

    if (warm) {
        info->rel_change = sketch_change(self, st);
        if (info->rel_change < o->skip_rel) {
            const double rel = info->rel_change;
            *out = st->last;
            out->mode = AT_MODE_SKIPPED;
            *info = st->last_info;
            info->mode = AT_MODE_SKIPPED;
            info->refresh = AT_REFRESH_NONE;
            info->passes = 0;
            info->rel_change = rel;
            return AT_OK;
        }
        if (st->large)
            why = AT_REFRESH_LARGE;
        else if (info->rel_change > o->max_warm_rel)
            why = AT_REFRESH_CHANGE;
        else if (st->since_full + 1 >= o->refresh_every)
            why = AT_REFRESH_PERIODIC;
        else {
            rc = analyze_warm(self, st, a, norm * norm, info->rel_change, o, out, info, &why);
            if (rc)
                return rc;
        }
    }
    if (why != AT_REFRESH_NONE) {
        at_metrics_init(out, AT_MODE_GRAM);
        at_fast_size_skip(&sh, o, out);
        info->mode = AT_MODE_GRAM;
        info->refresh = why;
        info->passes = 0;
        rc = analyze_full(self, st, a, m, n, o, out, info);
        if (rc)
            return rc;
    }
    if (st) {
        st->have = 1;
        st->m = m;
        st->n = n;
        st->last = *out;
        st->last_info = *info;
    }
    return AT_OK;
}
