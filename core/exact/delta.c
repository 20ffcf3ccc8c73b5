/* SPDX-License-Identifier: Apache-2.0 */
/* delta.c -- the fine-tune update of one layer, model - base, analyzed in exact mode. */
#include "htsr_internal.h"

int at_htsr_analyze_delta(at_htsr *self, const at_tensor *model, const at_tensor *base,
                          const at_htsr_opts *o, at_metrics *out)
{
    if (!self || !out)
        return AT_ERR_ARG;
    at_tensor d;
    int rc = at_tensor_delta(model, base, &self->delta, &self->delta_cap, &self->f32,
                             &self->f32_cap, &d, self->err, sizeof self->err);
    return rc ? rc : at_htsr_analyze(self, &d, o, out);
}
