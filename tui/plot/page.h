/* SPDX-License-Identifier: Apache-2.0 */
/* page.h -- the HTML reports: a scan's layers with their ESD pictures, and a run log's alpha
 * heatmaps, alpha over time and spectra.
 *
 * Each page is one self-contained HTML5 document: its pictures are inline SVG (plot.h), its
 * style is in the page, nothing is fetched (no scripts, fonts, styles or images from anywhere),
 * and the same input gives the same bytes. Every name and text from the inputs is escaped
 * (markup.h). Alpha is coloured on the healthy band's scale (palette.h), with its colour bar.
 */
#ifndef ALPHATOP_PLOT_PAGE_H
#define ALPHATOP_PLOT_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/htsr.h"
#include "plot.h"

/* name with every byte outside [A-Za-z0-9._-] as '_', at most 80 of them, into buf (cap bytes,
 * NUL included): safe as a path component and in a link, whatever the name holds. Returns buf. */
char *at_plot_safe_name(char *buf, size_t cap, const char *name);

/* A file name for the picture of layer `name`, number index: "%03u-", then name made safe
 * (at_plot_safe_name), then ".svg". Writes at most cap bytes (NUL included) into buf. */
void at_plot_file_name(char *buf, size_t cap, unsigned index, const char *name);

/* Makes the directory dir unless it exists (one level, like mkdir(1)). Returns AT_OK; AT_ERR_IO
 * when it cannot be made (errno says why); AT_ERR_ARG when dir exists but is not a directory. */
int at_plot_dir(const char *dir);

/* Writes text to the file dir/name (created or truncated). Returns AT_OK; AT_ERR_IO (errno says
 * why); AT_ERR_SIZE when the path is too long. */
int at_plot_save(const char *dir, const char *name, const char *text);

/* The page of `alphatop scan --plot`: per checkpoint file a table of its layers, then every
 * layer's ESD picture. */
typedef struct at_scan_page at_scan_page;

/* One layer of a scan. Every pointer is borrowed for the call; the page keeps copies. */
typedef struct at_scan_row {
    const char *file;     /* the checkpoint; rows of one file come together */
    const char *name;     /* the layer */
    const char *shape;    /* e.g. "256x64" */
    const at_metrics *m;  /* its metrics, or NULL when it has none (error, skipped) */
    const char *note;     /* why there are no metrics, or why there is no picture; or NULL */
    const char *svg;      /* its ESD picture (at_esd_svg), or NULL */
    const char *svg_file; /* the picture's file beside the page, or NULL */
} at_scan_row;

/* New empty page. Caller owns return value (at_scan_page_free); NULL on error with *status (may
 * be NULL) set to AT_ERR_NOMEM. */
at_scan_page *at_scan_page_new(int *status);

/* Frees the page. NULL-safe. */
void at_scan_page_free(at_scan_page *self);

/* Adds one layer. Returns AT_OK, AT_ERR_ARG (no file or name) or AT_ERR_NOMEM. */
int at_scan_page_add(at_scan_page *self, const at_scan_row *row);

/* The page's HTML. Caller owns return value (free); NULL with *status (may be NULL) set to
 * AT_ERR_NOMEM. */
char *at_scan_page_html(const at_scan_page *self, int *status);

/* One run and view of a run log: its heatmap, each layer's alpha over time (the heatmap's row)
 * and, where the log has it, the layer's latest spectrum. Borrowed. */
typedef struct at_run_section {
    const char *run;        /* the run's id */
    const char *view;       /* "w" (the weights) or "delta" (the update W - W_base) */
    const char *about;      /* one line about the run (model, framework, host), or NULL */
    at_heatmap map;         /* layers x snapshots of alpha */
    const at_esd_plot *esd; /* map.nrows spectra (n == 0: none for that layer), or NULL */
} at_run_section;

/* A run-level event of the log (stop, collapse, drop, error, ...). Borrowed. */
typedef struct at_run_event {
    const char *run, *kind, *text;
    int64_t step; /* < 0: none */
} at_run_event;

/* Events a page lists at most (the rest are counted). */
enum { AT_RUN_PAGE_MAX_EVENTS = 1000 };

/* The page of `alphatop report --html` for the run log named log: the sections, then the
 * events. Caller owns return value (free); NULL with *status (may be NULL) set: AT_ERR_ARG (a
 * NULL array with a count), AT_ERR_NOMEM. */
char *at_run_page_html(const char *log, const at_run_section *s, size_t ns, const at_run_event *ev,
                       size_t nev, int *status);

#endif
