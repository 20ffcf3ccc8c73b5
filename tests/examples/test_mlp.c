/* SPDX-License-Identifier: Apache-2.0 */
/* The C trainer's MLP: backward against central finite differences of the loss, and AdamW
 * against its closed form on the first step. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alphatop/rng.h"
#include "mlp.h"

enum { ROWS = 6, IN = 5, H = 7, OUT = 4 };

static double loss_at(mlp *m, const float *x, const int *y)
{
    mlp_forward(m, x, ROWS);
    return mlp_backward(m, x, y);
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    const int sizes[] = {IN, H, H, OUT};
    mlp *m = mlp_new(3, sizes, ROWS, 3);
    assert_non_null(m);
    at_rng rng;
    at_rng_seed(&rng, 11);
    float x[ROWS * IN];
    int y[ROWS];
    for (int i = 0; i < ROWS * IN; i++)
        x[i] = (float)at_rng_normal(&rng);
    for (int r = 0; r < ROWS; r++)
        y[r] = (int)at_rng_below(&rng, OUT);
    for (int l = 0; l < 3; l++) {
        int out, in;
        float *w = mlp_weight(m, l, &out, &in);
        for (int k = 0; k < out * in; k += 3) {
            const float h = 1e-3f;
            float keep = w[k];
            w[k] = keep + h;
            double up = loss_at(m, x, y);
            w[k] = keep - h;
            double down = loss_at(m, x, y);
            w[k] = keep;
            double fd = (up - down) / (2.0 * h);
            loss_at(m, x, y);
            double g = mlp_grad(m, l)[k];
            assert_float_equal(g, fd, 2e-3 + 2e-2 * fabs(fd));
        }
    }
    mlp_free(m);
}

/* First AdamW step: bias correction makes the step lr * g / (|g| + eps), i.e. lr * sign(g),
 * after the decoupled decay w * (1 - lr * wd). */
static void test_adamw_first_step(void **state)
{
    (void)state;
    const int sizes[] = {IN, H, OUT};
    mlp *m = mlp_new(2, sizes, ROWS, 5);
    float x[ROWS * IN];
    int y[ROWS];
    for (int i = 0; i < ROWS * IN; i++)
        x[i] = (float)((i % 7) - 3) / 3.0f;
    for (int r = 0; r < ROWS; r++)
        y[r] = r % OUT;
    loss_at(m, x, y);
    int out, in;
    float *w = mlp_weight(m, 0, &out, &in);
    float before[IN * H], grad[IN * H];
    memcpy(before, w, sizeof before);
    memcpy(grad, mlp_grad(m, 0), sizeof grad);
    const double lr = 0.01, wd = 0.5;
    mlp_adamw(m, lr, wd, 1);
    for (int k = 0; k < out * in; k++) {
        double g = grad[k];
        double expect = before[k] * (1.0 - lr * wd) - lr * g / (fabs(g) + 1e-8);
        assert_float_equal(w[k], expect, 1e-6);
    }
    mlp_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_adamw_first_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
