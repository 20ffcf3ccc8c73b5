/* SPDX-License-Identifier: Apache-2.0 */
/* metrics_fmt.c -- at_metrics as JSON, CSV and table rows; the model summary. */
#include "metrics_fmt.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/text.h"

typedef enum col_type { C_I64, C_F64, C_STATUS, C_WARNING, C_MODE } col_type;

/* The machine-readable columns, in output order. JSON and CSV both walk this table so the
 * two formats can never disagree on names or order. */
static const struct col {
    const char *name;
    col_type type;
    size_t off;
    unsigned flag; /* 0: always; else written only when this AT_FMT_* flag is set */
} cols[] = {
    {"N", C_I64, offsetof(at_metrics, N), 0},
    {"M", C_I64, offsetof(at_metrics, M), 0},
    {"rf", C_I64, offsetof(at_metrics, rf), 0},
    {"Q", C_F64, offsetof(at_metrics, Q), 0},
    {"num_evals", C_I64, offsetof(at_metrics, num_evals), 0},
    {"alpha", C_F64, offsetof(at_metrics, alpha), 0},
    {"xmin", C_F64, offsetof(at_metrics, xmin), 0},
    {"xmax", C_F64, offsetof(at_metrics, xmax), 0},
    {"D", C_F64, offsetof(at_metrics, D), 0},
    {"sigma", C_F64, offsetof(at_metrics, sigma), 0},
    {"num_pl_spikes", C_I64, offsetof(at_metrics, num_pl_spikes), 0},
    {"status", C_STATUS, offsetof(at_metrics, status), 0},
    {"warning", C_WARNING, offsetof(at_metrics, warning), 0},
    {"alpha_weighted", C_F64, offsetof(at_metrics, alpha_weighted), 0},
    {"log_norm", C_F64, offsetof(at_metrics, log_norm), 0},
    {"log_spectral_norm", C_F64, offsetof(at_metrics, log_spectral_norm), 0},
    {"spectral_norm", C_F64, offsetof(at_metrics, spectral_norm), 0},
    {"norm", C_F64, offsetof(at_metrics, norm), 0},
    {"log_alpha_norm", C_F64, offsetof(at_metrics, log_alpha_norm), 0},
    {"stable_rank", C_F64, offsetof(at_metrics, stable_rank), 0},
    {"matrix_rank", C_I64, offsetof(at_metrics, matrix_rank), 0},
    {"entropy", C_F64, offsetof(at_metrics, entropy), 0},
    {"sv_max", C_F64, offsetof(at_metrics, sv_max), 0},
    {"sv_min", C_F64, offsetof(at_metrics, sv_min), 0},
    {"lambda_max", C_F64, offsetof(at_metrics, lambda_max), 0},
    {"rank_loss", C_I64, offsetof(at_metrics, rank_loss), 0},
    {"weak_rank_loss", C_I64, offsetof(at_metrics, weak_rank_loss), 0},
    {"detX_num", C_I64, offsetof(at_metrics, detx_num), AT_FMT_DETX},
    {"detX_val", C_F64, offsetof(at_metrics, detx_val), AT_FMT_DETX},
    {"num_spikes", C_I64, offsetof(at_metrics, mp_num_spikes), AT_FMT_MP},
    {"sigma_mp", C_F64, offsetof(at_metrics, mp_sigma), AT_FMT_MP},
    {"mp_softrank", C_F64, offsetof(at_metrics, mp_softrank), AT_FMT_MP},
    {"bulk_max", C_F64, offsetof(at_metrics, mp_bulk_max), AT_FMT_MP},
    {"num_traps", C_I64, offsetof(at_metrics, num_traps), AT_FMT_TRAPS},
    {"trap_max_ratio", C_F64, offsetof(at_metrics, trap_max_ratio), AT_FMT_TRAPS},
    {"mode", C_MODE, offsetof(at_metrics, mode), 0},
};
#define NCOLS (sizeof cols / sizeof cols[0])

cJSON *at_fmt_json_number(cJSON *obj, const char *name, double v)
{
    if (!isfinite(v))
        return cJSON_AddNullToObject(obj, name);
    char buf[AT_TEXT_NUMBER_CAP];
    return cJSON_AddRawToObject(obj, name, at_text_json_number(buf, sizeof buf, v));
}

cJSON *at_fmt_json_text(cJSON *obj, const char *name, const char *s)
{
    char *q = at_text_json_quote(s);
    cJSON *item = q ? cJSON_AddRawToObject(obj, name, q) : NULL;
    free(q);
    return item;
}

static int col_on(const struct col *c, unsigned flags)
{
    return !c->flag || (flags & c->flag);
}

static int64_t get_i64(const at_metrics *m, const struct col *c)
{
    int64_t v;
    memcpy(&v, (const char *)m + c->off, sizeof v);
    return v;
}

static double get_f64(const at_metrics *m, const struct col *c)
{
    double v;
    memcpy(&v, (const char *)m + c->off, sizeof v);
    return v;
}

/* Status, warning and mode as text; NULL for numeric columns. */
static const char *col_text(const at_metrics *m, const struct col *c, unsigned flags)
{
    switch (c->type) {
    case C_STATUS:
        return at_fit_status_name(m->status);
    case C_WARNING:
        if (m->status == AT_FIT_SKIPPED)
            return "";
        return flags & AT_FMT_REF_WARNING ? at_warning_reference_name(m->warning)
                                          : at_warning_name(m->warning);
    case C_MODE:
        return at_mode_name(m->mode);
    default:
        return NULL;
    }
}

int at_fmt_json(cJSON *obj, const char *name, const at_metrics *m, unsigned flags)
{
    if (name && !at_fmt_json_text(obj, "name", name))
        return AT_ERR_NOMEM;
    for (size_t i = 0; i < NCOLS; i++) {
        const struct col *c = &cols[i];
        if (!col_on(c, flags))
            continue;
        const char *text = col_text(m, c, flags);
        cJSON *item;
        if (text) {
            item = cJSON_AddStringToObject(obj, c->name, text);
        } else if (c->type == C_I64) {
            item = at_fmt_json_number(obj, c->name, (double)get_i64(m, c));
        } else {
            item = at_fmt_json_number(obj, c->name, get_f64(m, c));
        }
        if (!item)
            return AT_ERR_NOMEM;
    }
    return AT_OK;
}

int at_fmt_json_parse(const cJSON *obj, at_metrics *m)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(obj, "status");
    const char *status = cJSON_IsString(st) ? st->valuestring : "";
    if (!strcmp(status, "error"))
        return AT_ERR_FORMAT;
    at_metrics_init(m, AT_MODE_EXACT);
    m->status = AT_FIT_FAILED;
    for (int s = AT_FIT_SUCCESS; s <= AT_FIT_SKIPPED; s++)
        if (!strcmp(status, at_fit_status_name((at_fit_status)s)))
            m->status = (at_fit_status)s;
    for (size_t i = 0; i < NCOLS; i++) {
        const struct col *c = &cols[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, c->name);
        char *field = (char *)m + c->off;
        /* Out of the int64 range the cast is undefined, and a non-finite number (1e999) is
         * written null: such columns read as absent. */
        if (c->type == C_I64 && cJSON_IsNumber(v) && fabs(v->valuedouble) < 9.2e18) {
            int64_t x = (int64_t)v->valuedouble;
            memcpy(field, &x, sizeof x);
        } else if (c->type == C_F64 && cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
            memcpy(field, &v->valuedouble, sizeof v->valuedouble);
        } else if (c->type == C_MODE && cJSON_IsString(v)) {
            for (int k = AT_MODE_EXACT; k <= AT_MODE_SKIPPED; k++)
                if (!strcmp(v->valuestring, at_mode_name((at_mode)k)))
                    m->mode = (at_mode)k;
        }
    }
    m->warning = at_warning_for(m->status, m->alpha);
    return AT_OK;
}

/* A layer without metrics: name, "status": status, status: message. */
static int json_note(cJSON *obj, const char *name, const char *status, const char *message)
{
    if ((name && !at_fmt_json_text(obj, "name", name)) ||
        !cJSON_AddStringToObject(obj, "status", status) || !at_fmt_json_text(obj, status, message))
        return AT_ERR_NOMEM;
    return AT_OK;
}

int at_fmt_json_error(cJSON *obj, const char *name, const char *message)
{
    return json_note(obj, name, "error", message);
}

int at_fmt_json_skipped(cJSON *obj, const char *name, const char *reason)
{
    return json_note(obj, name, "skipped", reason);
}

void at_fmt_csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void at_fmt_csv_header(FILE *f, const char *file, unsigned flags)
{
    if (file)
        fputs("file,", f);
    fputs("name", f);
    for (size_t i = 0; i < NCOLS; i++)
        if (col_on(&cols[i], flags))
            fprintf(f, ",%s", cols[i].name);
    fputs(",error\n", f);
}

static void csv_lead(FILE *f, const char *file, const char *name)
{
    if (file) {
        at_fmt_csv_field(f, file);
        fputc(',', f);
    }
    at_fmt_csv_field(f, name);
}

void at_fmt_csv_row(FILE *f, const char *file, const char *name, const at_metrics *m,
                    unsigned flags, const char *note)
{
    csv_lead(f, file, name);
    for (size_t i = 0; i < NCOLS; i++) {
        const struct col *c = &cols[i];
        if (!col_on(c, flags))
            continue;
        fputc(',', f);
        const char *text = col_text(m, c, flags);
        if (text) {
            at_fmt_csv_field(f, text);
        } else if (c->type == C_I64) {
            fprintf(f, "%lld", (long long)get_i64(m, c));
        } else {
            double v = get_f64(m, c);
            char buf[AT_TEXT_NUMBER_CAP];
            if (isfinite(v))
                fputs(at_text_json_number(buf, sizeof buf, v), f);
        }
    }
    fputc(',', f);
    if (note)
        at_fmt_csv_field(f, note);
    fputc('\n', f);
}

/* A row without metrics: status in the status column, message in the last. */
static void csv_note(FILE *f, const char *file, const char *name, const char *status,
                     const char *message, unsigned flags)
{
    csv_lead(f, file, name);
    for (size_t i = 0; i < NCOLS; i++) {
        if (!col_on(&cols[i], flags))
            continue;
        fputc(',', f);
        if (cols[i].type == C_STATUS)
            fputs(status, f);
    }
    fputc(',', f);
    at_fmt_csv_field(f, message);
    fputc('\n', f);
}

void at_fmt_csv_error(FILE *f, const char *file, const char *name, const char *message,
                      unsigned flags)
{
    csv_note(f, file, name, "error", message, flags);
}

void at_fmt_csv_skipped(FILE *f, const char *file, const char *name, const char *reason,
                        unsigned flags)
{
    csv_note(f, file, name, "skipped", reason, flags);
}

/* Table cells: fixed widths so rows line up without buffering the whole table. */
static void cell_num(FILE *f, int width, const char *fmt, double v)
{
    char buf[32];
    if (isfinite(v))
        snprintf(buf, sizeof buf, fmt, v);
    else
        snprintf(buf, sizeof buf, "-");
    fprintf(f, " %*s", width, buf);
}

static void cell_int(FILE *f, int width, int64_t v)
{
    char buf[32];
    if (v >= 0)
        snprintf(buf, sizeof buf, "%lld", (long long)v);
    else
        snprintf(buf, sizeof buf, "-");
    fprintf(f, " %*s", width, buf);
}

void at_fmt_table_header(FILE *f, int name_width, unsigned flags)
{
    fprintf(f, "%-*s %11s %7s %10s %6s %6s %7s %8s %8s %8s", name_width, "layer", "shape", "alpha",
            "xmin", "D", "spikes", "alpha_w", "log_norm", "log_spec", "st_rank");
    if (flags & AT_FMT_DETX)
        fprintf(f, " %6s %10s", "detX_n", "detX_val");
    if (flags & AT_FMT_TRAPS)
        fprintf(f, " %5s", "traps");
    fputs("  warning\n", f);
}

void at_fmt_table_row(FILE *f, int name_width, const char *name, const char *shape,
                      const at_metrics *m, unsigned flags)
{
    int fitted = m->status == AT_FIT_SUCCESS;
    fprintf(f, "%-*s %11s", name_width, name, shape);
    if (m->status == AT_FIT_SKIPPED) {
        fprintf(f, "  skipped (%lld eigenvalues)\n", (long long)m->num_evals);
        return;
    }
    cell_num(f, 7, "%.3f", fitted ? m->alpha : NAN);
    cell_num(f, 10, "%.4g", fitted ? m->xmin : NAN);
    cell_num(f, 6, "%.4f", fitted ? m->D : NAN);
    cell_int(f, 6, fitted ? m->num_pl_spikes : -1);
    cell_num(f, 7, "%.3f", fitted ? m->alpha_weighted : NAN);
    cell_num(f, 8, "%.4f", m->log_norm);
    cell_num(f, 8, "%.4f", m->log_spectral_norm);
    cell_num(f, 8, "%.3f", m->stable_rank);
    if (flags & AT_FMT_DETX) {
        cell_int(f, 6, m->detx_num);
        cell_num(f, 10, "%.4g", m->detx_val);
    }
    if (flags & AT_FMT_TRAPS)
        cell_int(f, 5, m->num_traps);
    const char *w = at_warning_name(m->warning);
    fprintf(f, "%s%s\n", *w ? "  " : "", w);
}

void at_fmt_table_note(FILE *f, int name_width, const char *name, const char *shape,
                       const char *text)
{
    fprintf(f, "%-*s %11s  %s\n", name_width, name, shape, text);
}

static const char *const sum_names[AT_SUM_NCOLS] = {
    "log_norm", "alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "stable_rank"};

void at_summary_init(at_summary *s)
{
    memset(s, 0, sizeof *s);
}

void at_summary_add(at_summary *s, const at_metrics *m)
{
    if (m->status == AT_FIT_SKIPPED)
        return;
    const double v[AT_SUM_NCOLS] = {m->log_norm,          m->alpha,
                                    m->alpha_weighted,    m->log_alpha_norm,
                                    m->log_spectral_norm, m->stable_rank};
    s->layers++;
    for (int c = 0; c < AT_SUM_NCOLS; c++)
        if (isfinite(v[c])) {
            s->sum[c] += v[c];
            s->count[c]++;
        }
}

double at_summary_mean(const at_summary *s, at_summary_col c)
{
    return s->count[c] ? s->sum[c] / (double)s->count[c] : NAN;
}

const char *at_summary_col_name(at_summary_col c)
{
    return c < AT_SUM_NCOLS ? sum_names[c] : "";
}

int at_summary_json(cJSON *obj, const at_summary *s)
{
    if (!at_fmt_json_number(obj, "layers", (double)s->layers))
        return AT_ERR_NOMEM;
    for (int c = 0; c < AT_SUM_NCOLS; c++)
        if (!at_fmt_json_number(obj, sum_names[c], at_summary_mean(s, (at_summary_col)c)))
            return AT_ERR_NOMEM;
    return AT_OK;
}

void at_summary_print(FILE *f, const at_summary *s)
{
    int w[AT_SUM_NCOLS];
    fprintf(f, "%6s", "layers");
    for (int c = 0; c < AT_SUM_NCOLS; c++) {
        w[c] = strlen(sum_names[c]) > 8 ? (int)strlen(sum_names[c]) : 8;
        fprintf(f, " %*s", w[c], sum_names[c]);
    }
    fprintf(f, "\n%6lld", (long long)s->layers);
    for (int c = 0; c < AT_SUM_NCOLS; c++)
        cell_num(f, w[c], "%.4f", at_summary_mean(s, (at_summary_col)c));
    fputc('\n', f);
}
