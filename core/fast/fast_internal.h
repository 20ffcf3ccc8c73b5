/* SPDX-License-Identifier: Apache-2.0 */
/* fast_internal.h -- fast mode's size rule, shared inside core only (analyze.c decides skips
 * from shapes with it). */
#ifndef ALPHATOP_FAST_INTERNAL_H
#define ALPHATOP_FAST_INTERNAL_H

#include "alphatop/fast.h"
#include "tensor.h"

/* Fills out's shape columns (N, M, rf 1, Q, num_evals) for a linear layer of shape sh as fast mode
 * reports them and returns 1 when fast mode skips it for its size (fewer than o->min_evals
 * eigenvalues), else 0 (it is analysed, or refused: a side beyond BLAS's int range). */
int at_fast_size_skip(const at_shape *sh, const at_fast_opts *o, at_metrics *out);

#endif
