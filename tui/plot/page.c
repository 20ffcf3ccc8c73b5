/* SPDX-License-Identifier: Apache-2.0 */
/* page.c -- the scan and run-log reports as self-contained HTML. */
#include "page.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alphatop/band.h"
#include "axis.h"
#include "markup.h"
#include "palette.h"

char *at_plot_safe_name(char *buf, size_t cap, const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p && n < 80 && n + 1 < cap; p++) {
        char c = *p;
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        buf[n++] = ok ? c : '_';
    }
    if (cap)
        buf[n] = '\0';
    return buf;
}

void at_plot_file_name(char *buf, size_t cap, unsigned index, const char *name)
{
    char safe[81];
    snprintf(buf, cap, "%03u-%s.svg", index, at_plot_safe_name(safe, sizeof safe, name));
}

int at_plot_dir(const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0777) < 0 && errno != EEXIST)
        return AT_ERR_IO;
    if (stat(dir, &st) < 0)
        return AT_ERR_IO;
    return S_ISDIR(st.st_mode) ? AT_OK : AT_ERR_ARG;
}

int at_plot_save(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return AT_ERR_SIZE;
    FILE *f = fopen(path, "wb");
    if (!f)
        return AT_ERR_IO;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    ok &= fclose(f) == 0;
    return ok ? AT_OK : AT_ERR_IO;
}

static const char style[] =
    "body{font-family:" AT_PLOT_FONT ";color:" AT_PLOT_INK ";background:#ffffff;margin:24px;"
    "max-width:1500px}\n"
    "h1{font-size:22px}h2{font-size:18px;margin-top:32px;word-break:break-all}"
    "h3{font-size:15px}\n"
    "p.lead{max-width:60em;line-height:1.45}\n"
    "table{border-collapse:collapse;font-size:13px;margin:8px 0}\n"
    "th,td{padding:3px 8px;border-bottom:1px solid " AT_PLOT_GRID ";text-align:right;"
    "white-space:nowrap}\n"
    "th{background:#f4f4f4;position:sticky;top:0}\n"
    "th:first-child{text-align:left}\n"
    "td.name,td.note,td.text{text-align:left;white-space:normal;word-break:break-all;"
    "max-width:32em}\n"
    "td.note{color:" AT_PLOT_MUTED "}\n"
    "figure{display:inline-block;margin:8px 12px 16px 0;vertical-align:top}\n"
    ".layer{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}\n"
    "figcaption{font-size:12px;color:" AT_PLOT_MUTED ";max-width:720px;word-break:break-all}\n"
    "svg{display:block;max-width:100%;height:auto}\n";

/* The page's start: head with the title and style, the heading, and what alpha's colours say. */
static void page_open(at_markup *t, const char *title, const char *what)
{
    at_markup_puts(t, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                      "<title>");
    at_markup_escape(t, title, 0);
    at_markup_printf(t, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", style);
    at_markup_escape(t, title, 0);
    at_markup_printf(t,
                     "</h1>\n<p class=\"lead\">%s Alpha is the exponent of the power law fitted to "
                     "the tail of a layer's eigenvalue spectrum (HTSR). Between %g and %g a layer "
                     "is healthy (grey); below %g it is burnt, over-trained (orange to red); above "
                     "%g it is raw, under-trained (blue). D is the fit's Kolmogorov-Smirnov "
                     "distance (smaller fits better), xmin where the fitted tail starts.</p>\n",
                     what, AT_ALPHA_BURNT_BELOW, AT_ALPHA_RAW_ABOVE, AT_ALPHA_BURNT_BELOW,
                     AT_ALPHA_RAW_ABOVE);
    char *legend = at_alpha_legend_svg(NULL);
    if (legend)
        at_markup_puts(t, legend);
    free(legend);
}

static void page_close(at_markup *t)
{
    at_markup_puts(t, "</body>\n</html>\n");
}

/* A table cell holding alpha on its band colour. */
static void alpha_cell(at_markup *t, double alpha)
{
    char color[8];
    at_markup_printf(t, "<td class=\"alpha\" style=\"background:%s;color:%s\">%.3f</td>",
                     at_plot_alpha_color(alpha, color), at_plot_alpha_ink(alpha), alpha);
}

/* ---- the scan page ---- */

/* Layers per verdict in the current file's table. */
enum { V_BURNT, V_HEALTHY, V_RAW, V_OTHER, V_COUNT };

struct at_scan_page {
    at_markup *tables, *figures;
    char *file; /* the file whose table is open, or NULL */
    unsigned rows;
    size_t count[V_COUNT];
};

at_scan_page *at_scan_page_new(int *status)
{
    at_scan_page *p = calloc(1, sizeof *p);
    if (p && (!(p->tables = at_markup_new(status)) || !(p->figures = at_markup_new(status)))) {
        at_scan_page_free(p);
        p = NULL;
    }
    if (!p && status)
        *status = AT_ERR_NOMEM;
    return p;
}

void at_scan_page_free(at_scan_page *self)
{
    if (!self)
        return;
    at_markup_free(self->tables);
    at_markup_free(self->figures);
    free(self->file);
    free(self);
}

/* Ends a file's table into t, with its count of layers per verdict. */
static void table_end(at_markup *t, const size_t count[V_COUNT])
{
    at_markup_printf(t,
                     "</tbody>\n</table>\n<p>%zu burnt, %zu healthy, %zu raw, %zu without an alpha "
                     "(failed fit, skipped or unreadable).</p>\n",
                     count[V_BURNT], count[V_HEALTHY], count[V_RAW], count[V_OTHER]);
}

static void table_close(at_scan_page *p)
{
    if (!p->file)
        return;
    table_end(p->tables, p->count);
    free(p->file);
    p->file = NULL;
}

static int table_open(at_scan_page *p, const char *file)
{
    if (p->file && !strcmp(p->file, file))
        return AT_OK;
    table_close(p);
    if (!(p->file = strdup(file)))
        return AT_ERR_NOMEM;
    memset(p->count, 0, sizeof p->count);
    at_markup_puts(p->tables, "<h2>");
    at_markup_escape(p->tables, file, 0);
    at_markup_puts(p->tables,
                   "</h2>\n<table>\n<thead><tr><th>layer</th><th>shape</th>"
                   "<th>alpha</th><th>D</th><th>xmin</th><th>spikes</th>"
                   "<th>alpha_w</th><th>log_norm</th><th>log_spec</th>"
                   "<th>st_rank</th><th>verdict</th><th>ESD</th></tr></thead>\n<tbody>\n");
    return AT_OK;
}

static void metric_cells(at_scan_page *p, const at_metrics *m)
{
    at_markup *t = p->tables;
    if (m->status == AT_FIT_SUCCESS && isfinite(m->alpha)) {
        alpha_cell(t, m->alpha);
        p->count[m->alpha < AT_ALPHA_BURNT_BELOW  ? V_BURNT
                 : m->alpha <= AT_ALPHA_RAW_ABOVE ? V_HEALTHY
                                                  : V_RAW]++;
    } else {
        at_markup_puts(t, "<td class=\"alpha\">failed</td>");
        p->count[V_OTHER]++;
    }
    at_markup_printf(t,
                     "<td>%.4f</td><td>%.4g</td><td>%lld</td><td>%.3f</td><td>%.4f</td>"
                     "<td>%.4f</td><td>%.3f</td><td>%s</td>",
                     m->D, m->xmin, (long long)m->num_pl_spikes, m->alpha_weighted, m->log_norm,
                     m->log_spectral_norm, m->stable_rank,
                     m->status == AT_FIT_SUCCESS ? at_plot_band_name(m->alpha) : "fit failed");
}

int at_scan_page_add(at_scan_page *self, const at_scan_row *row)
{
    if (!self || !row || !row->file || !row->name)
        return AT_ERR_ARG;
    if (table_open(self, row->file) < 0)
        return AT_ERR_NOMEM;
    unsigned id = ++self->rows;
    at_markup *t = self->tables;
    at_markup_puts(t, "<tr><td class=\"name\">");
    if (row->svg)
        at_markup_printf(t, "<a href=\"#L%u\">", id);
    at_markup_escape(t, row->name, 0);
    at_markup_printf(t, "%s</td><td>", row->svg ? "</a>" : "");
    at_markup_escape(t, row->shape ? row->shape : "", 0);
    at_markup_puts(t, "</td>");
    int has_metrics = row->m && row->m->status != AT_FIT_SKIPPED;
    if (has_metrics) {
        metric_cells(self, row->m);
    } else {
        self->count[V_OTHER]++;
        at_markup_puts(t, "<td class=\"note\" colspan=\"9\">");
        at_markup_escape(t, row->note ? row->note : "", 0);
        at_markup_puts(t, "</td>");
    }
    if (row->svg_file) {
        at_markup_puts(t, "<td><a href=\"");
        at_markup_escape(t, row->svg_file, 0);
        at_markup_puts(t, "\">SVG</a></td></tr>\n");
    } else {
        at_markup_puts(t, "<td class=\"note\">");
        at_markup_escape(t, has_metrics && row->note ? row->note : "", 0);
        at_markup_puts(t, "</td></tr>\n");
    }
    if (row->svg) {
        at_markup_printf(self->figures, "<figure id=\"L%u\">\n%s<figcaption>", id, row->svg);
        at_markup_escape(self->figures, row->file, 0);
        if (row->svg_file) {
            at_markup_puts(self->figures, ": <a href=\"");
            at_markup_escape(self->figures, row->svg_file, 0);
            at_markup_puts(self->figures, "\">");
            at_markup_escape(self->figures, row->svg_file, 0);
            at_markup_puts(self->figures, "</a>");
        }
        at_markup_puts(self->figures, "</figcaption>\n</figure>\n");
    }
    return at_markup_status(t) < 0 || at_markup_status(self->figures) < 0 ? AT_ERR_NOMEM : AT_OK;
}

char *at_scan_page_html(const at_scan_page *self, int *status)
{
    at_markup *t = at_markup_new(status);
    if (!t)
        return NULL;
    page_open(t, "alphatop scan",
              "Every layer of the checkpoints, then its eigenvalue spectrum (ESD) on log-log "
              "axes with the fitted power law.");
    at_markup_puts(t, at_markup_str(self->tables));
    if (self->file) /* the last file's table, ended here so the page can be made at any time */
        table_end(t, self->count);
    at_markup_puts(t, "<h2>Spectra</h2>\n");
    at_markup_puts(t, at_markup_len(self->figures)
                          ? at_markup_str(self->figures)
                          : "<p>No layer has an exact spectrum to plot.</p>\n");
    page_close(t);
    if (at_markup_status(self->tables) < 0 || at_markup_status(self->figures) < 0) {
        at_markup_free(t);
        if (status)
            *status = AT_ERR_NOMEM;
        return NULL;
    }
    return at_markup_take(t, status);
}

/* ---- the run-log page ---- */

/* One layer of a section: a caption with its last alpha, alpha over time, its spectrum. */
static void run_layer(at_markup *t, const at_run_section *s, size_t r)
{
    const at_heatmap *hm = &s->map;
    const double *row = hm->alpha + r * hm->ncols;
    double last = NAN;
    int64_t last_step = -1;
    for (size_t j = 0; j < hm->ncols; j++)
        if (!isnan(row[j])) {
            last = row[j];
            last_step = hm->steps[j];
        }
    at_markup_puts(t, "<figure>\n<figcaption><b>");
    at_markup_escape(t, hm->names[r], 0);
    if (isnan(last))
        at_markup_puts(t, "</b>: no alpha</figcaption>\n");
    else
        at_markup_printf(t, "</b>: alpha %.3f (%s) at step %lld</figcaption>\n", last,
                         at_plot_band_name(last), (long long)last_step);
    at_markup_puts(t, "<div class=\"layer\">\n");
    char *svg = at_series_svg(hm->names[r], hm->steps, row, hm->ncols, NULL);
    if (svg)
        at_markup_puts(t, svg);
    free(svg);
    if (s->esd && s->esd[r].n) {
        svg = at_esd_svg(&s->esd[r], NULL);
        if (svg)
            at_markup_puts(t, svg);
        free(svg);
    }
    at_markup_puts(t, "</div>\n</figure>\n");
}

static void run_section(at_markup *t, const at_run_section *s)
{
    at_markup_puts(t, "<h2>run ");
    at_markup_escape(t, s->run ? s->run : "", 0);
    at_markup_puts(t, s->view && !strcmp(s->view, "delta")
                          ? ": the update W - W_base (delta view)</h2>\n"
                          : ": the weights</h2>\n");
    if (s->about) {
        at_markup_puts(t, "<p>");
        at_markup_escape(t, s->about, 0);
        at_markup_puts(t, "</p>\n");
    }
    const at_heatmap *hm = &s->map;
    if (!hm->nrows || !hm->ncols) {
        at_markup_puts(t, "<p>No layer results.</p>\n");
        return;
    }
    at_markup_printf(t, "<h3>Alpha per layer (rows) and snapshot (columns)</h3>\n");
    char *svg = at_heatmap_svg(hm, NULL);
    if (svg)
        at_markup_puts(t, svg);
    free(svg);
    at_markup_printf(t, "<h3>Each layer: alpha over time (the healthy band shaded)%s</h3>\n",
                     s->esd ? " and its latest recorded spectrum" : "");
    for (size_t r = 0; r < hm->nrows; r++)
        run_layer(t, s, r);
}

static void run_events(at_markup *t, const at_run_event *ev, size_t nev)
{
    at_markup_printf(t, "<h2>Events (%zu)</h2>\n", nev);
    if (!nev)
        return;
    at_markup_puts(t, "<table>\n<thead><tr><th>kind</th><th>step</th><th>run</th><th>what</th>"
                      "</tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < nev && i < AT_RUN_PAGE_MAX_EVENTS; i++) {
        at_markup_puts(t, "<tr><td class=\"text\">");
        at_markup_escape(t, ev[i].kind ? ev[i].kind : "", 0);
        if (ev[i].step >= 0)
            at_markup_printf(t, "</td><td>%lld</td><td class=\"text\">", (long long)ev[i].step);
        else
            at_markup_puts(t, "</td><td></td><td class=\"text\">");
        at_markup_escape(t, ev[i].run ? ev[i].run : "", 0);
        at_markup_puts(t, "</td><td class=\"text\">");
        at_markup_escape(t, ev[i].text ? ev[i].text : "", 0);
        at_markup_puts(t, "</td></tr>\n");
    }
    at_markup_puts(t, "</tbody>\n</table>\n");
    if (nev > AT_RUN_PAGE_MAX_EVENTS)
        at_markup_printf(t, "<p>and %zu more events (alphatop report LOG lists them all).</p>\n",
                         nev - AT_RUN_PAGE_MAX_EVENTS);
}

char *at_run_page_html(const char *log, const at_run_section *s, size_t ns, const at_run_event *ev,
                       size_t nev, int *status)
{
    if ((ns && !s) || (nev && !ev)) {
        if (status)
            *status = AT_ERR_ARG;
        return NULL;
    }
    at_markup *t = at_markup_new(status);
    if (!t)
        return NULL;
    page_open(t, "alphatop report",
              "A recorded run: for every run and view, every layer's alpha at every snapshot, "
              "then each layer's alpha over time and, when the log has spectra "
              "(watch --record-spectra), its latest eigenvalue spectrum.");
    at_markup_puts(t, "<p>Run log: ");
    at_markup_escape(t, log ? log : "", 0);
    at_markup_puts(t, "</p>\n");
    if (!ns)
        at_markup_puts(t, "<p>The log holds no layer results.</p>\n");
    for (size_t i = 0; i < ns; i++)
        run_section(t, &s[i]);
    run_events(t, ev, nev);
    page_close(t);
    return at_markup_take(t, status);
}
