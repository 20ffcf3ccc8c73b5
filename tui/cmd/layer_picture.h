/* SPDX-License-Identifier: Apache-2.0 */
/* layer_picture.h -- the live view's `e` key: the selected layer's latest spectrum (ESD) as an
 * SVG picture, the one `scan --plot` draws, written where watch / replay --plot says. */
#ifndef ALPHATOP_LAYER_PICTURE_H
#define ALPHATOP_LAYER_PICTURE_H

#include <stddef.h>

#include "model.h"

/* Writes the latest spectrum of layer `layer` of run `run` in space, as model m keeps it, with
 * the fit of that snapshot, to dir/alphatop-LAYER-STEP.svg (LAYER made safe as at_plot_safe_name
 * makes it, "-delta" after it for W - W_base; dir NULL: the current directory), replacing a file
 * of that name. Says what it did in msg (cap bytes): "ESD saved: DIR/FILE", or why nothing was
 * written (no spectrum kept, the file cannot be written). Returns AT_OK, AT_ERR_EMPTY (no
 * spectrum), AT_ERR_ARG (no such layer), AT_ERR_IO, AT_ERR_NOMEM. */
int at_cmd_layer_picture(const at_model *m, int run, int layer, at_space space, const char *dir,
                         char *msg, size_t cap);

#endif
