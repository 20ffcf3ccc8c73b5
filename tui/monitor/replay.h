/* replay.h -- a recorded run log back into the view's model, or back out as JSON lines.
 *
 * The run log (runlog.h) holds the engine's JSON lines; replaying them rebuilds the model the
 * live view had: runs (from hello events), layers and their cells per snapshot and view (from
 * layer lines), scalars, spectra and events. Layer phase changes are the recorded `phase` events
 * of core's tracker, exactly the ones the live view showed. Weight blobs are skipped.
 */
#ifndef ALPHATOP_REPLAY_H
#define ALPHATOP_REPLAY_H

#include <stddef.h>
#include <stdio.h>

#include "model.h"

/* Reads every intact record of the log at path into model (borrowed). note (notelen bytes)
 * receives the reader's note on skipped bytes ("" if none) or, on failure, why. Returns the
 * number of records applied (>= 0), or AT_ERR_IO / AT_ERR_FORMAT / AT_ERR_NOMEM. */
int at_replay_load(at_model *model, const char *path, char *note, size_t notelen);

/* Writes the JSON records of the log at path to out, one per line: what `watch --headless`
 * printed live (recorded spectra are left out). note as above. Returns the number of lines, or
 * a negative status. */
int at_replay_print(FILE *out, const char *path, char *note, size_t notelen);

#endif
