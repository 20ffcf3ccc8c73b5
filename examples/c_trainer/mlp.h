/* SPDX-License-Identifier: Apache-2.0 */
/* mlp.h -- a ReLU multilayer perceptron with softmax cross-entropy and AdamW, on OpenBLAS.
 *
 * Weights are row-major (out, in), the layout PyTorch uses and the agent publishes; one
 * activation buffer per layer is allocated once for max_rows rows and reused every step. */
#ifndef AT_EXAMPLES_MLP_H
#define AT_EXAMPLES_MLP_H

#include <stdint.h>

typedef struct mlp mlp;

/* sizes[0] inputs, sizes[1..n_layers-1] hidden widths, sizes[n_layers] classes. Weights and
 * biases drawn uniform in +-1/sqrt(fan_in) (PyTorch's default) from seed. Caller owns return
 * value (mlp_free); NULL when out of memory or sizes are not positive. */
mlp *mlp_new(int n_layers, const int *sizes, int max_rows, uint64_t seed);

/* NULL-safe. */
void mlp_free(mlp *m);

/* Forward pass on rows (<= max_rows) inputs x (rows x sizes[0], row-major). Returns the
 * logits, rows x classes, borrowed until the next call. */
const float *mlp_forward(mlp *m, const float *x, int rows);

/* Mean softmax cross-entropy of the last forward against labels, and its gradients with
 * respect to every weight and bias (stored in m). */
double mlp_backward(mlp *m, const float *x, const int *labels);

/* One AdamW step (betas 0.9/0.999, eps 1e-8, decoupled weight decay) on the stored
 * gradients; t counts steps from 1. */
void mlp_adamw(mlp *m, double lr, double weight_decay, int64_t t);

/* Fraction of rows whose largest logit is the label (runs a forward pass). */
double mlp_accuracy(mlp *m, const float *x, const int *labels, int rows);

/* Number of weight layers, and layer i's weights (borrowed, out x in, writable by the caller
 * between steps) and shape. */
int mlp_layers(const mlp *m);
float *mlp_weight(mlp *m, int i, int *out, int *in);

/* Gradient of the loss with respect to layer i's weights from the last mlp_backward
 * (borrowed, out x in). */
const float *mlp_grad(const mlp *m, int i);

#endif
