/* SPDX-License-Identifier: Apache-2.0 */
/* mlp.c -- forward, backward and AdamW for a ReLU MLP; every product is one sgemm. */
#include "mlp.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/rng.h"

typedef struct layer {
    int in, out;
    float *w, *b;             /* out x in, out */
    float *gw, *gb;           /* gradients */
    float *mw, *vw, *mb, *vb; /* AdamW moments */
    float *y;                 /* rows x out: pre-activation output (logits for the last layer) */
    float *dy;                /* rows x out: gradient of the loss with respect to y */
} layer;

struct mlp {
    int n, max_rows, rows, widest;
    layer *l;
    float *act; /* scratch for the ReLU of a layer's output, rows x widest */
};

static float *zeros(size_t n)
{
    return calloc(n ? n : 1, sizeof(float));
}

mlp *mlp_new(int n_layers, const int *sizes, int max_rows, uint64_t seed)
{
    if (n_layers < 1 || max_rows < 1)
        return NULL;
    for (int i = 0; i <= n_layers; i++)
        if (sizes[i] < 1)
            return NULL;
    mlp *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->n = n_layers;
    m->max_rows = max_rows;
    m->l = calloc((size_t)n_layers, sizeof *m->l);
    if (!m->l)
        goto err;
    at_rng rng;
    at_rng_seed(&rng, seed);
    for (int i = 0; i < n_layers; i++) {
        layer *l = &m->l[i];
        l->in = sizes[i];
        l->out = sizes[i + 1];
        size_t nw = (size_t)l->in * (size_t)l->out, rows = (size_t)max_rows;
        l->w = zeros(nw);
        l->gw = zeros(nw);
        l->mw = zeros(nw);
        l->vw = zeros(nw);
        l->b = zeros((size_t)l->out);
        l->gb = zeros((size_t)l->out);
        l->mb = zeros((size_t)l->out);
        l->vb = zeros((size_t)l->out);
        l->y = zeros(rows * (size_t)l->out);
        l->dy = zeros(rows * (size_t)l->out);
        if (!l->w || !l->gw || !l->mw || !l->vw || !l->b || !l->gb || !l->mb || !l->vb || !l->y ||
            !l->dy)
            goto err;
        double bound = 1.0 / sqrt((double)l->in);
        for (size_t k = 0; k < nw; k++)
            l->w[k] = (float)(bound * (2.0 * at_rng_uniform(&rng) - 1.0));
        for (int k = 0; k < l->out; k++)
            l->b[k] = (float)(bound * (2.0 * at_rng_uniform(&rng) - 1.0));
    }
    m->widest = 1;
    for (int i = 1; i <= n_layers; i++)
        m->widest = sizes[i] > m->widest ? sizes[i] : m->widest;
    m->act = zeros((size_t)max_rows * (size_t)m->widest * (size_t)n_layers);
    if (!m->act)
        goto err;
    return m;
err:
    mlp_free(m);
    return NULL;
}

void mlp_free(mlp *m)
{
    if (!m)
        return;
    for (int i = 0; m->l && i < m->n; i++) {
        layer *l = &m->l[i];
        free(l->w);
        free(l->gw);
        free(l->mw);
        free(l->vw);
        free(l->b);
        free(l->gb);
        free(l->mb);
        free(l->vb);
        free(l->y);
        free(l->dy);
    }
    free(m->l);
    free(m->act);
    free(m);
}

/* ReLU output of layer i (the input of layer i + 1), rows x out. */
static float *relu_out(const mlp *m, int i)
{
    return m->act + (size_t)i * (size_t)m->max_rows * (size_t)m->widest;
}

const float *mlp_forward(mlp *m, const float *x, int rows)
{
    if (rows > m->max_rows)
        rows = m->max_rows;
    m->rows = rows;
    const float *in = x;
    for (int i = 0; i < m->n; i++) {
        layer *l = &m->l[i];
        for (int r = 0; r < rows; r++)
            memcpy(l->y + (size_t)r * l->out, l->b, (size_t)l->out * sizeof(float));
        /* y = in W^T + b */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->out, l->in, 1.0f, in, l->in,
                    l->w, l->in, 1.0f, l->y, l->out);
        if (i + 1 < m->n) {
            float *a = relu_out(m, i);
            size_t n = (size_t)rows * (size_t)l->out;
            for (size_t k = 0; k < n; k++)
                a[k] = l->y[k] > 0.0f ? l->y[k] : 0.0f;
            in = a;
        }
    }
    return m->l[m->n - 1].y;
}

double mlp_backward(mlp *m, const float *x, const int *labels)
{
    int rows = m->rows;
    layer *top = &m->l[m->n - 1];
    double loss = 0.0;
    for (int r = 0; r < rows; r++) {
        const float *z = top->y + (size_t)r * top->out;
        float *d = top->dy + (size_t)r * top->out;
        /* log-sum-exp shifted by the max: exp never overflows */
        float mx = z[0];
        for (int c = 1; c < top->out; c++)
            mx = z[c] > mx ? z[c] : mx;
        double sum = 0.0;
        for (int c = 0; c < top->out; c++)
            sum += exp((double)(z[c] - mx));
        loss += log(sum) - (double)(z[labels[r]] - mx);
        for (int c = 0; c < top->out; c++)
            d[c] = (float)(exp((double)(z[c] - mx)) / sum / rows);
        d[labels[r]] -= 1.0f / (float)rows;
    }
    for (int i = m->n - 1; i >= 0; i--) {
        layer *l = &m->l[i];
        const float *in = i ? relu_out(m, i - 1) : x;
        /* dW = dY^T in, db = column sums of dY */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->out, l->in, rows, 1.0f, l->dy,
                    l->out, in, l->in, 0.0f, l->gw, l->in);
        for (int c = 0; c < l->out; c++) {
            double s = 0.0;
            for (int r = 0; r < rows; r++)
                s += l->dy[(size_t)r * l->out + c];
            l->gb[c] = (float)s;
        }
        if (i == 0)
            break;
        /* d(in) = dY W, then through the ReLU of the layer below */
        layer *below = &m->l[i - 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, l->in, l->out, 1.0f, l->dy,
                    l->out, l->w, l->in, 0.0f, below->dy, below->out);
        size_t n = (size_t)rows * (size_t)below->out;
        for (size_t k = 0; k < n; k++)
            if (below->y[k] <= 0.0f)
                below->dy[k] = 0.0f;
    }
    return loss / rows;
}

static void adamw(float *p, const float *g, float *mo, float *v, size_t n, double lr, double wd,
                  double c1, double c2)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (size_t k = 0; k < n; k++) {
        mo[k] = (float)(b1 * mo[k] + (1.0 - b1) * g[k]);
        v[k] = (float)(b2 * v[k] + (1.0 - b2) * (double)g[k] * g[k]);
        double step = (mo[k] / c1) / (sqrt(v[k] / c2) + eps);
        p[k] = (float)(p[k] * (1.0 - lr * wd) - lr * step);
    }
}

void mlp_adamw(mlp *m, double lr, double weight_decay, int64_t t)
{
    double c1 = 1.0 - pow(0.9, (double)t), c2 = 1.0 - pow(0.999, (double)t);
    for (int i = 0; i < m->n; i++) {
        layer *l = &m->l[i];
        adamw(l->w, l->gw, l->mw, l->vw, (size_t)l->in * (size_t)l->out, lr, weight_decay, c1, c2);
        adamw(l->b, l->gb, l->mb, l->vb, (size_t)l->out, lr, weight_decay, c1, c2);
    }
}

double mlp_accuracy(mlp *m, const float *x, const int *labels, int rows)
{
    int right = 0;
    for (int done = 0; done < rows; done += m->max_rows) {
        int k = rows - done < m->max_rows ? rows - done : m->max_rows;
        const float *z = mlp_forward(m, x + (size_t)done * m->l[0].in, k);
        int classes = m->l[m->n - 1].out;
        for (int r = 0; r < k; r++) {
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (z[(size_t)r * classes + c] > z[(size_t)r * classes + best])
                    best = c;
            right += best == labels[done + r];
        }
    }
    return rows ? (double)right / rows : 0.0;
}

int mlp_layers(const mlp *m)
{
    return m->n;
}

float *mlp_weight(mlp *m, int i, int *out, int *in)
{
    *out = m->l[i].out;
    *in = m->l[i].in;
    return m->l[i].w;
}

const float *mlp_grad(const mlp *m, int i)
{
    return m->l[i].gw;
}
