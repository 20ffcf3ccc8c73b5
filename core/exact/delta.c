/* delta.c -- the fine-tune update of one layer, model - base, analyzed in exact mode. */
#include <string.h>

#include "htsr_internal.h"

int at_htsr_analyze_delta(at_htsr *self, const at_tensor *model, const at_tensor *base,
                          const at_htsr_opts *o, at_metrics *out)
{
    if (!self || !out || !model || !base || !model->data || !base->data)
        return AT_ERR_ARG;
    if (model->ndim != base->ndim || model->ndim < 1 || model->ndim > 4)
        return at_htsr_fail(self, AT_ERR_SIZE, "model is %d-D but base is %d-D", model->ndim,
                            base->ndim);
    if (model->dtype < AT_DTYPE_F32 || model->dtype > AT_DTYPE_BF16 || base->dtype < AT_DTYPE_F32 ||
        base->dtype > AT_DTYPE_BF16)
        return at_htsr_fail(self, AT_ERR_UNSUPPORTED, "unknown dtype");
    int same = 1;
    size_t count = 1;
    for (int d = 0; d < model->ndim; d++) {
        if (model->shape[d] < 0)
            return at_htsr_fail(self, AT_ERR_ARG, "bad dimension %lld", (long long)model->shape[d]);
        same &= model->shape[d] == base->shape[d];
        count *= (size_t)model->shape[d];
    }
    const int transposed = !same && model->ndim == 2 && model->shape[0] == base->shape[1] &&
                           model->shape[1] == base->shape[0];
    if (!same && !transposed)
        return at_htsr_fail(self, AT_ERR_SIZE, "base shape differs from the model's");
    if (count == 0)
        return at_htsr_fail(self, AT_ERR_EMPTY, "the weight has no elements");
    if (at_htsr_grow((void **)&self->delta, &self->delta_cap, count, sizeof(float)) ||
        at_htsr_grow((void **)&self->f32, &self->f32_cap, count, sizeof(float)))
        return at_htsr_fail(self, AT_ERR_NOMEM, "out of memory");
    at_convert_to_f32(model->data, model->dtype, count, self->delta);
    at_convert_to_f32(base->data, base->dtype, count, self->f32);
    /* float32 subtraction, as the reference forms the delta of float32 weights. */
    if (transposed) {
        const int64_t rows = model->shape[0], cols = model->shape[1];
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                self->delta[r * cols + c] -= self->f32[c * rows + r];
    } else {
        for (size_t i = 0; i < count; i++)
            self->delta[i] -= self->f32[i];
    }
    at_tensor d = *model;
    d.data = self->delta;
    d.dtype = AT_DTYPE_F32;
    return at_htsr_analyze(self, &d, o, out);
}
