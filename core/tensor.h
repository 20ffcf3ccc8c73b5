/* SPDX-License-Identifier: Apache-2.0 */
/* tensor.h -- (internal to core) a layer's weights as float32 matrices: validation, dtype
 * widening, and the fine-tune update model - base. Buffers are the caller's (a workspace's),
 * grown here; error details go to the caller's err buffer (err_size bytes). */
#ifndef ALPHATOP_CORE_TENSOR_H
#define ALPHATOP_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/htsr.h"

/* A weight tensor as matrices: slices of rows x cols (conv2d: out x in per kernel position). */
typedef struct at_shape {
    int64_t rows, cols, slices;
    size_t count; /* elements in the tensor */
    int conv;
} at_shape;

/* Validates t's shape, kind and dtype and fills *sh; reads no weight (t->data may be NULL).
 * Errors: AT_ERR_ARG (no t, ndim or kind wrong for the kind, bad dimension), AT_ERR_UNSUPPORTED
 * (dtype), AT_ERR_EMPTY. */
int at_tensor_shape(const at_tensor *t, at_shape *sh, char *err, size_t err_size);

/* Validates t, fills *sh and points *w at float32 weights: t's data, or *f32 (grown, *f32_cap
 * elements) holding f16/bf16 widened. Errors: AT_ERR_ARG (no data, ndim or kind wrong for the
 * kind, bad dimension), AT_ERR_UNSUPPORTED (dtype), AT_ERR_EMPTY, AT_ERR_NOMEM,
 * AT_ERR_NONFINITE (NaN/Inf counts in err). */
int at_tensor_load(const at_tensor *t, float **f32, size_t *f32_cap, at_shape *sh, const float **w,
                   char *err, size_t err_size);

/* Adds the NaN and the infinite values among w[0..n) to *nan and *inf. */
void at_count_nonfinite(const float *w, size_t n, size_t *nan, size_t *inf);

/* AT_OK when nan and inf are 0, else AT_ERR_NONFINITE with the counts in err. */
int at_nonfinite_check(size_t nan, size_t inf, char *err, size_t err_size);

/* The update model - base in float32 (both widened first, then subtracted in float32, as the
 * reference forms the delta of float32 weights) into *delta (grown, *delta_cap elements), using
 * *tmp (grown, *tmp_cap elements) for the widened base. base has model's shape, or (2-D only)
 * the transposed shape. *d becomes model's view with data *delta and dtype F32. Errors:
 * AT_ERR_ARG (missing data, bad dimension), AT_ERR_SIZE (shapes do not pair),
 * AT_ERR_UNSUPPORTED (dtype), AT_ERR_EMPTY, AT_ERR_NOMEM. */
int at_tensor_delta(const at_tensor *model, const at_tensor *base, float **delta, size_t *delta_cap,
                    float **tmp, size_t *tmp_cap, at_tensor *d, char *err, size_t err_size);

#endif
