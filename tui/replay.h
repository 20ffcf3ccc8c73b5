/* replay.h -- a recorded run log back into the view's model, or back out as JSON lines.
 *
 * The run log (runlog.h) holds the engine's JSON lines; replaying them rebuilds the model the
 * live view had: runs (from hello events), layers and their cells per snapshot and view (from
 * layer lines), scalars, spectra and events. Weight blobs are skipped.
 */
#ifndef ALPHATOP_REPLAY_H
#define ALPHATOP_REPLAY_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "alphatop/htsr.h"
#include "model.h"

/* Reads every intact record of the log at path into model (borrowed). note (notelen bytes)
 * receives the reader's note on skipped bytes ("" if none) or, on failure, why. Returns the
 * number of records applied (>= 0), or AT_ERR_IO / AT_ERR_FORMAT / AT_ERR_NOMEM. */
int at_replay_load(at_model *model, const char *path, char *note, size_t notelen);

/* Writes the JSON records of the log at path to out, one per line: what `watch --headless`
 * printed live (recorded spectra are left out). note as above. Returns the number of lines, or
 * a negative status. */
int at_replay_print(FILE *out, const char *path, char *note, size_t notelen);

/* The metrics of a layer line (the columns at_fmt_json wrote) into *m: every field the model
 * and the report use (alpha, xmin, xmax, D, num_pl_spikes, alpha_weighted, log_norm,
 * log_spectral_norm, stable_rank, detX_val, num_traps, trap_max_ratio, N, M, status, warning,
 * mode); the rest are -1 / NAN. Returns AT_OK, or AT_ERR_FORMAT for an error line (status
 * "error": the layer had no metrics). */
int at_replay_metrics(const cJSON *layer_line, at_metrics *m);

#endif
