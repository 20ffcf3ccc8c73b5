/* SPDX-License-Identifier: Apache-2.0 */
/* runlog.h -- the run log: an append-only, crash-safe record of a monitored run.
 *
 * A run log holds the same JSON objects `alphatop watch --headless` prints (run hello/goodbye,
 * one per layer result, scalars, events, optionally spectra), each as one framed record, plus
 * raw weights when asked for. Replaying a log therefore reproduces the headless stream exactly.
 *
 * File format (little-endian; docs/monitor.md):
 *     file   := "ATLOG1\n" record*
 *     record := magic "ATR" u8 type | u32 length | u32 crc32(type byte + payload) | payload
 *     type   := 'J' (payload: one JSON object, no newline)
 *             | 'B' (payload: u32 json_length, JSON header, then raw bytes: weights)
 * A record is written with one write(2) and the file is flushed per snapshot, so a monitor
 * killed at any moment leaves every complete record readable. The reader skips a truncated or
 * corrupt record (and resynchronises on the next magic) and says so in a note.
 */
#ifndef ALPHATOP_RUNLOG_H
#define ALPHATOP_RUNLOG_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/status.h"

/* Record types. */
enum { AT_RUNLOG_JSON = 'J', AT_RUNLOG_BLOB = 'B' };

typedef struct at_runlog at_runlog;

/* Opens (creating if needed) the log at path for appending. Caller owns return value (free
 * with at_runlog_close); NULL on error with *status set (AT_ERR_IO: errno has detail,
 * AT_ERR_FORMAT: the file exists but is not a run log). */
at_runlog *at_runlog_open(const char *path, int *status);

/* Appends one JSON record of len bytes (no trailing newline). Returns AT_OK or AT_ERR_IO
 * (disk full, ...: see at_runlog_last_error; the log stays usable for later records). */
int at_runlog_append_json(at_runlog *self, const char *json, size_t len);

/* Appends one blob record: a JSON header (e.g. run, step, layer, dtype, shape) and n raw bytes.
 * Returns AT_OK or AT_ERR_IO. */
int at_runlog_append_blob(at_runlog *self, const char *json, size_t json_len, const void *data,
                          size_t n);

/* Makes every appended record durable against a crash of this process (and, at most once per
 * sync_interval_ms, against a crash of the machine). Returns AT_OK or AT_ERR_IO. */
int at_runlog_flush(at_runlog *self);

/* Path of the log. Borrowed. */
const char *at_runlog_path(const at_runlog *self);

/* Detail of the last error, e.g. "write: No space left on device". Borrowed; never NULL. */
const char *at_runlog_last_error(const at_runlog *self);

/* Closes the log (flushing it). NULL-safe. */
void at_runlog_close(at_runlog *self);

/* Reading. */
typedef struct at_runlog_reader at_runlog_reader;

/* One record, borrowed from the reader until its next call. For AT_RUNLOG_JSON, json/json_len
 * is the object (NUL-terminated) and data is NULL; for AT_RUNLOG_BLOB, data/data_len are the
 * raw bytes that follow the JSON header. */
typedef struct at_runlog_record {
    int type;
    const char *json;
    size_t json_len;
    const void *data;
    size_t data_len;
    uint64_t offset; /* byte offset of the record in the file */
} at_runlog_record;

/* Opens path for reading. Caller owns return value (free with at_runlog_reader_close); NULL on
 * error with *status set (AT_ERR_IO, AT_ERR_FORMAT if the file is not a run log). */
at_runlog_reader *at_runlog_reader_open(const char *path, int *status);

/* Reads the next complete, intact record into *rec. Returns 1 for a record, 0 at the end,
 * AT_ERR_NOMEM or AT_ERR_IO. Damaged bytes are skipped and counted (at_runlog_reader_note). */
int at_runlog_reader_next(at_runlog_reader *self, at_runlog_record *rec);

/* Follow mode, for a log its writer still appends to (tail -f): at_runlog_reader_next looks at
 * the file's size again on every call, and a record the file does not hold whole yet (the
 * writer is in the middle of it, or was killed there) is left for a later call instead of
 * being skipped as truncated. Damaged bytes followed by a whole record are still skipped. */
void at_runlog_reader_follow(at_runlog_reader *self);

/* A note on what was skipped so far, e.g. "ignored a truncated last record at byte 5123 (40
 * bytes)"; "" when nothing was. Borrowed; never NULL. */
const char *at_runlog_reader_note(const at_runlog_reader *self);

/* Closes the reader. NULL-safe. */
void at_runlog_reader_close(at_runlog_reader *self);

/* The directory runs are recorded in by default, the XDG state directory:
 * $XDG_STATE_HOME/alphatop when $XDG_STATE_HOME is an absolute path, else
 * $HOME/.local/state/alphatop ($HOME, else the user's home in the password database). With
 * create, every missing directory of it is made with mode 0700. Writes at most cap bytes (NUL
 * included) into buf. Returns AT_OK; AT_ERR_IO when it cannot be made or is not a directory
 * (errno says why; buf holds it); AT_ERR_NOTFOUND when there is no home directory (buf "");
 * AT_ERR_SIZE when it does not fit. */
int at_runlog_state_dir(char *buf, size_t cap, int create);

/* A default log path for a run: "alphatop-RUN-YYYYmmdd-HHMMSS.atlog" in at_runlog_state_dir
 * (made if missing), with characters other than [A-Za-z0-9._-] in RUN replaced by '_'. Writes
 * at most cap bytes (NUL included) into buf. Returns as at_runlog_state_dir (on AT_ERR_IO buf
 * holds the directory that could not be made). */
int at_runlog_default_path(char *buf, size_t cap, const char *run);

#endif
