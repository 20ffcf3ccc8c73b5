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

/* What a reader calls for every intact JSON record of a log, in order (weight blobs are
 * skipped): raw as stored, rec the same decoded (record.h), or NULL when it is not a record the
 * schema reads. Both are borrowed for the call. Returns what the caller counts. */
typedef int (*at_replay_fn)(void *ctx, const at_runlog_record *raw, const at_record *rec);

/* A run log being read: whole (at_replay_each, _load, _print do it in one call) or, following,
 * as its writer appends to it (like tail -f; runlog.h's follow mode), a batch at a time. */
typedef struct at_replay at_replay;

/* Opens the log at path; follow: it may still grow. Caller owns return value (free with
 * at_replay_close); NULL with *status (may be NULL) set to AT_ERR_IO (cannot open),
 * AT_ERR_FORMAT (not a run log) or AT_ERR_NOMEM, and "PATH: why" in err (errlen bytes). */
at_replay *at_replay_open(const char *path, int follow, int *status, char *err, size_t errlen);

/* Closes the log. NULL-safe. */
void at_replay_close(at_replay *self);

/* Passes the next records, at most max, to fn(ctx, ...). Returns the sum of fn's returns (0
 * also when nothing new was written yet: a follower calls again later), or AT_ERR_IO /
 * AT_ERR_NOMEM. */
int at_replay_read(at_replay *self, int max, at_replay_fn fn, void *ctx);

/* What was skipped so far ("" if nothing): the reader's note (runlog.h). Borrowed. */
const char *at_replay_note(const at_replay *self);

/* at_replay_read into model (borrowed), as at_replay_load applies records. Returns the number of
 * records applied, those the schema reads, or a negative status. */
int at_replay_read_model(at_replay *self, at_model *model, int max);

/* at_replay_read out to out as JSON lines, as at_replay_print writes them. Returns the number
 * of lines, or a negative status. */
int at_replay_read_print(at_replay *self, FILE *out, int max);

/* Calls fn(ctx, raw, rec) for every intact JSON record of the log at path, in order. note
 * (notelen bytes) receives the reader's note on skipped bytes ("" if none) or, on failure,
 * "PATH: why". Returns the sum of fn's returns (>= 0), or AT_ERR_IO / AT_ERR_FORMAT /
 * AT_ERR_NOMEM. */
int at_replay_each(const char *path, at_replay_fn fn, void *ctx, char *note, size_t notelen);

/* Reads every intact record of the log at path into model (borrowed) and marks the model a
 * replay of path (at_monitor_state: replay, record). note (notelen bytes) receives the
 * reader's note on skipped bytes ("" if none) or, on failure, why. Returns the number of
 * records applied, those the schema reads (>= 0), or AT_ERR_IO / AT_ERR_FORMAT /
 * AT_ERR_NOMEM. */
int at_replay_load(at_model *model, const char *path, char *note, size_t notelen);

/* Writes the JSON records of the log at path to out, one per line: what `watch --headless`
 * printed live (recorded spectra are left out). Each is decoded and encoded again (record.h),
 * so whatever the log holds, out gets valid UTF-8 JSON with every control character escaped; a
 * record the schema does not read is skipped and counted in note (as above, then "skipped N
 * records ..."). Returns the number of lines, or a negative status. */
int at_replay_print(FILE *out, const char *path, char *note, size_t notelen);

#endif
