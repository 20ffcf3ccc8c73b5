/* SPDX-License-Identifier: Apache-2.0 */
/* layer_picture.c -- a live layer's ESD picture (see layer_picture.h). */
#include "layer_picture.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/htsr.h"
#include "page.h"
#include "plot.h"

/* The fit's status at the spectrum's snapshot: the cell of that step, else from alpha. */
static at_fit_status fit_status(const at_model *m, int run, int layer, at_space space,
                                const at_spectrum *sp)
{
    const int col = at_model_snapshot_at(m, run, sp->step);
    const at_cell *cell = col >= 0 ? at_model_cell(m, run, layer, space, col) : NULL;
    if (cell && cell->status != AT_CELL_EMPTY)
        return (at_fit_status)cell->status;
    return isfinite(sp->alpha) ? AT_FIT_SUCCESS : AT_FIT_FAILED;
}

int at_cmd_layer_picture(const at_model *m, int run, int layer, at_space space, const char *dir,
                         char *msg, size_t cap)
{
    const at_layer_info *li = at_model_layer(m, run, layer);
    const at_run_info *ri = at_model_run(m, run);
    const at_spectrum *sp = at_model_spectrum(m, run, layer, space);
    if (!li || !ri) {
        snprintf(msg, cap, "no such layer: no picture saved");
        return AT_ERR_ARG;
    }
    if (!sp || sp->n == 0) {
        snprintf(msg, cap,
                 "no spectrum of %s%s kept: no picture (--fast keeps none; a replay has them "
                 "when watch had --record-spectra)",
                 li->name, space == AT_SPACE_DELTA ? " (delta)" : "");
        return AT_ERR_EMPTY;
    }
    double *evals = malloc(sp->n * sizeof *evals);
    if (!evals) {
        snprintf(msg, cap, "out of memory: no picture saved");
        return AT_ERR_NOMEM;
    }
    for (size_t i = 0; i < sp->n; i++)
        evals[i] = sp->evals[i];
    /* The Marchenko-Pastur edge of the layer's (N, M): a conv2d's slices share its out, in. */
    const double rows = (double)li->shape[0], cols = (double)li->shape[1];
    const double M = rows < cols ? rows : cols, Q = (rows < cols ? cols : rows) / M;
    at_mp mp;
    char sub[400], safe[81], file[160];
    snprintf(sub, sizeof sub, "run %s \xc2\xb7 step %lld \xc2\xb7 %zu eigenvalues%s", ri->id,
             (long long)sp->step, sp->n, space == AT_SPACE_DELTA ? " \xc2\xb7 W - W_base" : "");
    at_esd_plot p = {.title = li->name,
                     .subtitle = sub,
                     .evals = evals,
                     .n = sp->n,
                     .status = fit_status(m, run, layer, space, sp),
                     .alpha = sp->alpha,
                     .xmin = sp->xmin,
                     .D = NAN, /* the model keeps no D */
                     .mp_edge = M >= 1 && at_mp_fit(evals, sp->n, Q, (int64_t)M, &mp) == AT_OK
                                    ? mp.bulk_max
                                    : NAN};
    int rc;
    char *svg = at_esd_svg(&p, &rc);
    free(evals);
    if (!svg) {
        snprintf(msg, cap, "cannot draw the picture: %s", at_strerror(rc));
        return rc;
    }
    snprintf(file, sizeof file, "alphatop-%s%s-%lld.svg",
             at_plot_safe_name(safe, sizeof safe, li->name),
             space == AT_SPACE_DELTA ? "-delta" : "", (long long)sp->step);
    const char *where = dir ? dir : ".";
    rc = at_plot_save(where, file, svg);
    free(svg);
    if (rc < 0)
        snprintf(msg, cap, "cannot write %s/%s: %s", where, file,
                 rc == AT_ERR_IO ? strerror(errno) : at_strerror(rc));
    else
        snprintf(msg, cap, "ESD saved: %s/%s", where, file);
    return rc;
}
