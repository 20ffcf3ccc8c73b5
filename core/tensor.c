/* SPDX-License-Identifier: Apache-2.0 */
/* tensor.c -- validation and float32 views of layer weights (tensor.h). */
#include "tensor.h"

#include <math.h>

#include "util.h"

int at_tensor_shape(const at_tensor *t, at_shape *sh, char *err, size_t err_size)
{
    if (!t)
        return at_fail(err, err_size, AT_ERR_ARG, "no tensor data");
    int conv = t->kind == AT_KIND_CONV2D;
    if (t->ndim != (conv ? 4 : 2))
        return at_fail(err, err_size, AT_ERR_ARG, "a %s weight must be %d-D, got %d-D",
                       conv ? "conv2d" : "2-D layer", conv ? 4 : 2, t->ndim);
    if (t->kind < AT_KIND_LINEAR || t->kind > AT_KIND_CONV1D)
        return at_fail(err, err_size, AT_ERR_ARG, "unknown layer kind %d", (int)t->kind);
    if (t->dtype < AT_DTYPE_F32 || t->dtype > AT_DTYPE_BF16)
        return at_fail(err, err_size, AT_ERR_UNSUPPORTED, "unknown dtype %d", (int)t->dtype);
    size_t count = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 || t->shape[d] > (int64_t)1 << 40)
            return at_fail(err, err_size, AT_ERR_ARG, "bad dimension %lld", (long long)t->shape[d]);
        count *= (size_t)t->shape[d];
    }
    if (count == 0)
        return at_fail(err, err_size, AT_ERR_EMPTY, "the weight has no elements");
    sh->rows = t->shape[0];
    sh->cols = t->shape[1];
    sh->slices = conv ? t->shape[2] * t->shape[3] : 1;
    sh->count = count;
    sh->conv = conv;
    return AT_OK;
}

int at_tensor_load(const at_tensor *t, float **f32, size_t *f32_cap, at_shape *sh, const float **w,
                   char *err, size_t err_size)
{
    if (!t || !t->data)
        return at_fail(err, err_size, AT_ERR_ARG, "no tensor data");
    const int rc = at_tensor_shape(t, sh, err, err_size);
    if (rc)
        return rc;
    const size_t count = sh->count;
    if (t->dtype == AT_DTYPE_F32) {
        *w = t->data;
    } else {
        if (at_grow((void **)f32, f32_cap, count, sizeof(float)))
            return at_fail(err, err_size, AT_ERR_NOMEM, "out of memory");
        at_convert_to_f32(t->data, t->dtype, count, *f32);
        *w = *f32;
    }
    size_t nan = 0, inf = 0;
    at_count_nonfinite(*w, count, &nan, &inf);
    return at_nonfinite_check(nan, inf, err, err_size);
}

void at_count_nonfinite(const float *w, size_t n, size_t *nan, size_t *inf)
{
    /* Counted in locals by comparisons the compiler vectorises: isnan/isinf adding through the
     * pointers ran one weight at a time, a seventh of a warm fast-mode sweep's time. */
    size_t cn = 0, ci = 0;
    for (size_t i = 0; i < n; i++) {
        cn += w[i] != w[i];
        ci += fabsf(w[i]) == INFINITY;
    }
    *nan += cn;
    *inf += ci;
}

int at_nonfinite_check(size_t nan, size_t inf, char *err, size_t err_size)
{
    if (nan || inf)
        return at_fail(err, err_size, AT_ERR_NONFINITE,
                       "weights contain %zu NaN and %zu Inf values", nan, inf);
    return AT_OK;
}

int at_tensor_delta(const at_tensor *model, const at_tensor *base, float **delta, size_t *delta_cap,
                    float **tmp, size_t *tmp_cap, at_tensor *d, char *err, size_t err_size)
{
    if (!model || !base || !model->data || !base->data)
        return at_fail(err, err_size, AT_ERR_ARG, "no tensor data");
    if (model->ndim != base->ndim || model->ndim < 1 || model->ndim > 4)
        return at_fail(err, err_size, AT_ERR_SIZE, "model is %d-D but base is %d-D", model->ndim,
                       base->ndim);
    if (model->dtype < AT_DTYPE_F32 || model->dtype > AT_DTYPE_BF16 || base->dtype < AT_DTYPE_F32 ||
        base->dtype > AT_DTYPE_BF16)
        return at_fail(err, err_size, AT_ERR_UNSUPPORTED, "unknown dtype");
    int same = 1;
    size_t count = 1;
    for (int i = 0; i < model->ndim; i++) {
        if (model->shape[i] < 0)
            return at_fail(err, err_size, AT_ERR_ARG, "bad dimension %lld",
                           (long long)model->shape[i]);
        same &= model->shape[i] == base->shape[i];
        count *= (size_t)model->shape[i];
    }
    const int transposed = !same && model->ndim == 2 && model->shape[0] == base->shape[1] &&
                           model->shape[1] == base->shape[0];
    if (!same && !transposed)
        return at_fail(err, err_size, AT_ERR_SIZE, "base shape differs from the model's");
    if (count == 0)
        return at_fail(err, err_size, AT_ERR_EMPTY, "the weight has no elements");
    if (at_grow((void **)delta, delta_cap, count, sizeof(float)) ||
        at_grow((void **)tmp, tmp_cap, count, sizeof(float)))
        return at_fail(err, err_size, AT_ERR_NOMEM, "out of memory");
    float *dst = *delta;
    const float *b = *tmp;
    at_convert_to_f32(model->data, model->dtype, count, dst);
    at_convert_to_f32(base->data, base->dtype, count, *tmp);
    if (transposed) {
        const int64_t rows = model->shape[0], cols = model->shape[1];
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                dst[r * cols + c] -= b[c * rows + r];
    } else {
        for (size_t i = 0; i < count; i++)
            dst[i] -= b[i];
    }
    *d = *model;
    d->data = dst;
    d->dtype = AT_DTYPE_F32;
    return AT_OK;
}
