/* SPDX-License-Identifier: Apache-2.0 */
/* metrics_fmt.h -- one layer's at_metrics as a JSON object, a CSV row or an aligned table row,
 * and the model summary of docs/metrics.md.
 *
 * JSON and CSV use the reference's column names (name, N, M, rf, Q, num_evals, alpha, xmin,
 * xmax, D, sigma, num_pl_spikes, status, warning, alpha_weighted, log_norm, ...), then the
 * optional columns that were computed (detX_num, detX_val; num_spikes, sigma_mp, mp_softrank,
 * bulk_max; num_traps, trap_max_ratio), then mode. Non-finite numbers are null in JSON and
 * empty in CSV; status says why (failed fit, skipped layer).
 * Used by `alphatop scan`, `diff` and `watch --headless`. Nothing here allocates globally.
 */
#ifndef ALPHATOP_METRICS_FMT_H
#define ALPHATOP_METRICS_FMT_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "alphatop/htsr.h"

/* Which optional columns to write, and which warning labels. */
enum {
    AT_FMT_DETX = 1u << 0,  /* detX_num, detX_val */
    AT_FMT_MP = 1u << 1,    /* num_spikes, sigma_mp, mp_softrank, bulk_max */
    AT_FMT_TRAPS = 1u << 2, /* num_traps, trap_max_ratio */
    /* warning column: the reference's label ("over-trained" for a failed fit) instead of
     * alphatop's own ("failed"); status says "failed" either way. */
    AT_FMT_REF_WARNING = 1u << 3,
};

/* Adds every column of m (and "name" when name is not NULL) to obj, an existing cJSON object
 * the caller owns (so `watch --headless` can add its own type/run/step fields first).
 * Numbers are added as raw JSON text (cJSON_Raw items, the shortest text that parses back to
 * the exact double) because cJSON's number printer drops the last digits, and the name as raw
 * text too (at_fmt_json_text); read them back by printing and parsing the object. Returns
 * AT_OK or AT_ERR_NOMEM. */
int at_fmt_json(cJSON *obj, const char *name, const at_metrics *m, unsigned flags);

/* Reads a layer object at_fmt_json wrote (or a JSON line holding its columns, parsed back) into
 * *m: every column present; the others stay as at_metrics_init leaves them (-1 / NAN). status
 * and mode are read by name (a missing or unknown status is a failed fit, an unknown mode is
 * exact); warning is recomputed from status and alpha (at_warning_for), since the object does
 * not say which labels it used. Returns AT_OK, or AT_ERR_FORMAT for a layer that could not be
 * analysed (status "error", as at_fmt_json_error writes). */
int at_fmt_json_parse(const cJSON *obj, at_metrics *m);

/* Adds one number to obj as at_fmt_json does: raw text, the shortest that reads back as
 * exactly v (at_text_json_number), null when not finite. Returns the new item, or NULL when out
 * of memory. */
cJSON *at_fmt_json_number(cJSON *obj, const char *name, double v);

/* Adds one string to obj as at_fmt_json does with names and messages: raw text through
 * at_text_json_quote, so the JSON is valid UTF-8 with every control character escaped whatever
 * s holds (a name from a file or a peer; NULL adds ""). Returns the new item, or NULL when out
 * of memory. */
cJSON *at_fmt_json_text(cJSON *obj, const char *name, const char *s);

/* Adds the columns of a layer that could not be analysed: name, "status": "error", "error":
 * message (name and message as at_fmt_json_text writes them). Returns AT_OK or AT_ERR_NOMEM. */
int at_fmt_json_error(cJSON *obj, const char *name, const char *message);

/* Writes s as one CSV field: as it is, or quoted (quotes doubled) when it holds a comma, a
 * quote or a line break, as RFC 4180 requires. */
void at_fmt_csv_field(FILE *f, const char *s);

/* Adds the columns of a tensor not analysed by design (ckpt.h's skip: a tied copy, an integer
 * dtype): name, "status": "skipped", "skipped": reason. Returns AT_OK or AT_ERR_NOMEM. */
int at_fmt_json_skipped(cJSON *obj, const char *name, const char *reason);

/* CSV header line / one row ending in '\n'. With file non-NULL a leading "file" column is
 * written (pass any non-NULL string to the header to get it). Strings are quoted as RFC 4180
 * requires; error rows have status "error" and the message in the "error" column (last), where
 * a row of metrics has note (NULL: empty; a skipped layer's reason). */
void at_fmt_csv_header(FILE *f, const char *file, unsigned flags);
void at_fmt_csv_row(FILE *f, const char *file, const char *name, const at_metrics *m,
                    unsigned flags, const char *note);
void at_fmt_csv_error(FILE *f, const char *file, const char *name, const char *message,
                      unsigned flags);
/* A tensor not analysed by design: status "skipped", the reason in the "error" column. */
void at_fmt_csv_skipped(FILE *f, const char *file, const char *name, const char *reason,
                        unsigned flags);

/* Aligned table for people: name (padded to name_width), shape, alpha, xmin, D, spikes,
 * alpha_weighted, log_norm, log_spectral_norm, stable_rank, optional detX/traps columns,
 * warning (alphatop's labels). Missing values print as "-". */
void at_fmt_table_header(FILE *f, int name_width, unsigned flags);
void at_fmt_table_row(FILE *f, int name_width, const char *name, const char *shape,
                      const at_metrics *m, unsigned flags);
/* A row whose metrics do not exist: name, shape, then text in place of the numbers. */
void at_fmt_table_note(FILE *f, int name_width, const char *name, const char *shape,
                       const char *text);

/* The model summary: means over analysed layers (skipped layers and errors excluded; failed
 * fits enter with alpha = -1 as in the reference). */
typedef enum at_summary_col {
    AT_SUM_LOG_NORM,
    AT_SUM_ALPHA,
    AT_SUM_ALPHA_WEIGHTED,
    AT_SUM_LOG_ALPHA_NORM,
    AT_SUM_LOG_SPECTRAL_NORM,
    AT_SUM_STABLE_RANK,
    AT_SUM_NCOLS
} at_summary_col;

typedef struct at_summary {
    int64_t layers; /* layers that entered the summary */
    double sum[AT_SUM_NCOLS];
    int64_t count[AT_SUM_NCOLS]; /* per column: non-finite values are left out, like pandas */
} at_summary;

/* Empties s. */
void at_summary_init(at_summary *s);
/* Adds one layer; layers with status skipped are ignored. */
void at_summary_add(at_summary *s, const at_metrics *m);
/* Mean of column c, or NAN when no layer entered. */
double at_summary_mean(const at_summary *s, at_summary_col c);
/* Column name as in the reference ("log_norm", "alpha", ...). Static string. */
const char *at_summary_col_name(at_summary_col c);
/* Adds "layers" and the six means (null when NAN) to obj. Returns AT_OK or AT_ERR_NOMEM. */
int at_summary_json(cJSON *obj, const at_summary *s);
/* Writes the summary as two aligned lines (names, values) for the table view. */
void at_summary_print(FILE *f, const at_summary *s);

#endif
