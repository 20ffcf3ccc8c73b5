/* SPDX-License-Identifier: Apache-2.0 */
/* htsr.c -- exact-mode analysis of one layer: weights -> float64 matrices -> singular values
 * from the float64 Gram matrix (spectrum/gram.c; dgesdd's values within 1e-8 relative) ->
 * pooled ESD -> fit, scale metrics and the optional metrics. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lapacke.h>

#include "alphatop/gram.h"
#include "alphatop/htsr.h"
#include "htsr_internal.h"

void at_htsr_opts_default(at_htsr_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->min_evals = 10;
    o->max_evals = 15000;
    o->max_N = 50000;
}

at_htsr *at_htsr_new(void)
{
    at_htsr *self = calloc(1, sizeof *self);
    if (self)
        self->err[0] = '\0';
    return self;
}

void at_htsr_free(at_htsr *self)
{
    if (!self)
        return;
    free(self->f32);
    free(self->delta);
    free(self->a);
    free(self->sv);
    free(self->evals);
    at_gram_free(self->gram64);
    free(self->shuf);
    free(self->gram);
    free(self->twork);
    free(self->tiwork);
    free(self);
}

const double *at_htsr_evals(const at_htsr *self, size_t *n)
{
    if (n)
        *n = self ? self->n_evals : 0;
    return self ? self->evals : NULL;
}

const char *at_htsr_last_error(const at_htsr *self)
{
    return self ? self->err : "no workspace";
}

/* Singular values (descending) of the m x n column-major matrix in self->a, into self->sv.
 * Through the float64 Gram matrix (gram.h): equal to dgesdd's within 1e-8 relative above the
 * round-off of exact zeros (tests/fast/test_gram), and 3-6x faster; the bottom values that the
 * Gram matrix cannot resolve are recomputed from A itself, or by dgesdd. */
static int svd_values(at_htsr *self, lapack_int m, lapack_int n)
{
    const lapack_int mn = m < n ? m : n;
    if (at_grow((void **)&self->sv, &self->sv_cap, (size_t)mn, sizeof(double)) ||
        (!self->gram64 && !(self->gram64 = at_gram_new())))
        return at_htsr_fail(self, AT_ERR_NOMEM, "out of memory");
    int rc = at_gram_evals64(self->gram64, self->a, m, n, self->sv, NULL);
    if (rc)
        return at_htsr_fail(self, rc, "%s", at_gram_last_error(self->gram64));
    for (lapack_int i = 0, k = mn - 1; i < k; i++, k--) {
        double t = self->sv[i];
        self->sv[i] = self->sv[k];
        self->sv[k] = t;
    }
    for (lapack_int i = 0; i < mn; i++)
        self->sv[i] = sqrt(self->sv[i]);
    return AT_OK;
}

/* Slice s of the weights as a column-major float64 matrix in a, *m x *n. A linear layer (one
 * slice, row-major rows x cols) is widened in place as its transpose, cols x rows: the Gram path
 * takes either orientation, and a plain copy costs a tenth of a transposing one. A conv slice is
 * gathered tall (long side x short side). Element (r, c) of slice s is
 * w[(r * cols + c) * slices + s]; it is multiplied by scale in float32 first (the reference's
 * conv2d normalization; 1 leaves it unchanged). Tiled so that the transposing case stays in
 * cache. */
static void gather(double *a, const float *w, const at_shape *sh, int64_t s, float scale,
                   lapack_int *m, lapack_int *n)
{
    if (sh->slices == 1 && scale == 1.0f) {
        for (int64_t i = 0; i < sh->rows * sh->cols; i++)
            a[i] = (double)w[i];
        *m = (lapack_int)sh->cols;
        *n = (lapack_int)sh->rows;
        return;
    }
    enum { TILE = 64 };
    const int64_t rows = sh->rows, cols = sh->cols, slices = sh->slices;
    const int tall = rows >= cols;
    for (int64_t r0 = 0; r0 < rows; r0 += TILE)
        for (int64_t c0 = 0; c0 < cols; c0 += TILE)
            for (int64_t r = r0; r < rows && r < r0 + TILE; r++)
                for (int64_t c = c0; c < cols && c < c0 + TILE; c++) {
                    const float v = w[(r * cols + c) * slices + s] * scale;
                    a[tall ? r + c * rows : c + r * cols] = (double)v;
                }
    *m = (lapack_int)(tall ? rows : cols);
    *n = (lapack_int)(tall ? cols : rows);
}

void at_metrics_init(at_metrics *m, at_mode mode)
{
    memset(m, 0, sizeof *m);
    m->N = m->M = m->rf = m->num_evals = -1;
    m->rank_loss = m->weak_rank_loss = m->num_pl_spikes = m->matrix_rank = -1;
    m->detx_num = m->mp_num_spikes = m->num_traps = -1;
    m->Q = m->sv_max = m->sv_min = m->lambda_max = NAN;
    m->alpha = m->xmin = m->xmax = m->D = m->sigma = NAN;
    m->norm = m->log_norm = m->spectral_norm = m->log_spectral_norm = NAN;
    m->alpha_weighted = m->log_alpha_norm = m->stable_rank = m->entropy = NAN;
    m->detx_val = m->mp_sigma = m->mp_softrank = m->mp_bulk_max = m->trap_max_ratio = NAN;
    m->status = AT_FIT_SKIPPED;
    m->warning = AT_WARN_NONE;
    m->mode = mode;
}

/* N and M as the reference reports them. A conv2d slice W[:, :, i, j] is (out x in); the
 * reference starts from N = out, M = in and swaps N and M once per slice whose out < in, so an
 * even number of such slices leaves N = out < M = in (Q < 1). rf and num_evals are unaffected.
 * alphatop reproduces this in exact mode; see docs/core.md. */
static void reference_shape(const at_shape *sh, at_metrics *m)
{
    int64_t N = sh->rows, M = sh->cols;
    if (sh->conv) {
        if (sh->rows < sh->cols && sh->slices % 2 == 1) {
            N = sh->cols;
            M = sh->rows;
        }
    } else if (N < M) {
        N = sh->cols;
        M = sh->rows;
    }
    m->N = N;
    m->M = M;
    m->rf = sh->slices;
    m->Q = (double)N / (double)M;
}

int at_htsr_size_skip(const at_shape *sh, const at_htsr_opts *o, at_metrics *out)
{
    reference_shape(sh, out);
    const int64_t lo = sh->rows < sh->cols ? sh->rows : sh->cols;
    const int64_t hi = sh->rows < sh->cols ? sh->cols : sh->rows;
    out->num_evals = lo * sh->slices;
    return out->num_evals < o->min_evals || out->num_evals > o->max_evals || hi > o->max_N;
}

int at_metrics_fit(const double *x, size_t n, const at_htsr_opts *o, at_metrics *out)
{
    at_fit fit;
    int rc = at_powerlaw_fit(x, n, &fit);
    if (rc)
        return rc;
    out->status = fit.status;
    out->alpha = fit.alpha;
    out->xmin = fit.xmin;
    out->xmax = fit.xmax;
    out->D = fit.D;
    out->sigma = fit.sigma;
    out->num_pl_spikes = fit.num_pl_spikes;
    out->warning = at_warning_for(fit.status, fit.alpha);
    at_scale_metrics(x, n, out);
    if (o->detx && at_detx(x, n, &out->detx_num, &out->detx_val) != AT_OK)
        out->detx_num = -1;
    return AT_OK;
}

int at_htsr_analyze(at_htsr *self, const at_tensor *t, const at_htsr_opts *o, at_metrics *out)
{
    if (!self || !out)
        return AT_ERR_ARG;
    at_metrics_init(out, AT_MODE_EXACT);
    self->n_evals = 0;
    at_htsr_opts defaults;
    if (!o) {
        at_htsr_opts_default(&defaults);
        o = &defaults;
    }
    at_shape sh;
    const float *w = NULL;
    /* A layer skipped for its size is decided from its shape: its weights are not read. */
    int rc = at_tensor_shape(t, &sh, self->err, sizeof self->err);
    if (rc)
        return rc;
    if (at_htsr_size_skip(&sh, o, out))
        return AT_OK;
    if ((rc = at_htsr_load(self, t, &sh, &w)))
        return rc;
    const int64_t lo = sh.rows < sh.cols ? sh.rows : sh.cols;
    const int64_t hi = sh.rows < sh.cols ? sh.cols : sh.rows;

    if (at_grow((void **)&self->a, &self->a_cap, (size_t)(sh.rows * sh.cols), sizeof(double)) ||
        at_grow((void **)&self->evals, &self->evals_cap, (size_t)out->num_evals, sizeof(double)))
        return at_htsr_fail(self, AT_ERR_NOMEM, "out of memory");
    /* The reference normalizes conv slices by 1/sqrt(2) in float32 before widening. */
    const float conv_scale = (float)(1.0 / sqrt(2.0));
    double sv_max = 0.0, sv_min = -INFINITY;
    int64_t rank_loss = 0;
    size_t ne = 0;
    for (int64_t s = 0; s < sh.slices; s++) {
        lapack_int m, n;
        gather(self->a, w, &sh, s, sh.conv ? conv_scale : 1.0f, &m, &n);
        rc = svd_values(self, m, n);
        if (rc)
            return rc;
        const double smax = self->sv[0], smin = self->sv[lo - 1];
        const double tol = smax * (double)hi * DBL_EPSILON;
        for (int64_t i = 0; i < lo; i++) {
            rank_loss += !(self->sv[i] > tol);
            self->evals[ne++] = self->sv[i] * self->sv[i];
        }
        if (smax > sv_max)
            sv_max = smax;
        /* Reference quirk: sv_min is the largest of the per-slice minima. */
        if (smin > sv_min)
            sv_min = smin;
    }
    at_sort_doubles(self->evals, ne);
    self->n_evals = ne;
    const double *x = self->evals;

    out->sv_max = sv_max;
    out->sv_min = sv_min;
    out->lambda_max = x[ne - 1];
    out->rank_loss = rank_loss;
    int64_t weak = 0;
    for (size_t i = 0; i < ne; i++)
        weak += x[i] < 1e-6;
    out->weak_rank_loss = weak;

    rc = at_metrics_fit(x, ne, o, out);
    if (rc)
        return at_htsr_fail(self, rc, "power-law fit: %s", at_strerror(rc));
    if (o->mp_fit) {
        at_mp mp;
        if (at_mp_fit(x, ne, out->Q, out->M, &mp) == AT_OK) {
            out->mp_sigma = mp.sigma;
            out->mp_bulk_max = mp.bulk_max;
            out->mp_softrank = mp.softrank;
            out->mp_num_spikes = mp.num_spikes;
        }
    }
    if (o->traps) {
        rc = at_htsr_traps(self, t, o->seed, &out->num_traps, &out->trap_max_ratio);
        if (rc)
            return rc;
    }
    return AT_OK;
}
