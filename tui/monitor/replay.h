/* SPDX-License-Identifier: Apache-2.0 */
/* replay.h -- a recorded run log back into the view's model, or back out as JSON lines.
 *
 * The run log (runlog.h) holds the engine's JSON lines; replaying them rebuilds the model the
 * live view had: runs (from hello events), layers and their cells per snapshot and view (from
 * layer lines), scalars, spectra and events. Layer phase changes are the recorded `phase` events
 * of core's tracker, exactly the ones the live view showed. Weight blobs are skipped. The
 * records are read through record.h, the one owner of their schema.
 */
#ifndef ALPHATOP_REPLAY_H
#define ALPHATOP_REPLAY_H

#include <stddef.h>
#include <stdio.h>

#include "model.h"
#include "record.h"
#include "runlog.h"

/* Calls fn(ctx, raw, rec) for every intact JSON record of the log at path, in order (weight
 * blobs are skipped): raw as stored, rec the same decoded (record.h), or NULL when it is not a
 * record the schema reads. Both are borrowed for the call. note (notelen bytes) receives the
 * reader's note on skipped bytes ("" if none) or, on failure, "PATH: why". Returns the sum of
 * fn's returns (>= 0), or AT_ERR_IO / AT_ERR_FORMAT / AT_ERR_NOMEM. */
int at_replay_each(const char *path,
                   int (*fn)(void *ctx, const at_runlog_record *raw, const at_record *rec),
                   void *ctx, char *note, size_t notelen);

/* Reads every intact record of the log at path into model (borrowed). note (notelen bytes)
 * receives the reader's note on skipped bytes ("" if none) or, on failure, why. Returns the
 * number of records applied, those the schema reads (>= 0), or AT_ERR_IO / AT_ERR_FORMAT /
 * AT_ERR_NOMEM. */
int at_replay_load(at_model *model, const char *path, char *note, size_t notelen);

/* Writes the JSON records of the log at path to out, one per line: what `watch --headless`
 * printed live (recorded spectra are left out). Each is decoded and encoded again (record.h),
 * so whatever the log holds, out gets valid UTF-8 JSON with every control character escaped; a
 * record the schema does not read is skipped and counted in note (as above, then "skipped N
 * records ..."). Returns the number of lines, or a negative status. */
int at_replay_print(FILE *out, const char *path, char *note, size_t notelen);

#endif
