/* SPDX-License-Identifier: Apache-2.0 */
/* args.c -- the one option parser of every alphatop command (see args.h). */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"

const char at_args_exit_rule[] =
    "Exit status: 0 success; 1 some input could not be analysed (a missing, unreadable or\n"
    "malformed file, or a layer in it; the rest was still analysed); 2 usage error; 3 a\n"
    "--stop-on rule fired (watch).\n";

/* Every command's -h/--help, parsed and listed like a row of its table. */
static const at_arg_opt help_row = {"help", 'h', AT_ARG_FLAG, NULL, NULL, "this help", 0, 0, 0};

/* Help layout: option labels from column 2, their text from column HELP_COL, lines up to
 * HELP_WIDTH columns (the width of the commands' hand-written text). */
#define HELP_COL 22
#define HELP_WIDTH 92

static int takes_value(const at_arg_opt *o)
{
    return o->kind != AT_ARG_FLAG && o->kind != AT_ARG_COUNT;
}

static const char *meta_of(const at_arg_opt *o)
{
    if (o->meta)
        return o->meta;
    return o->kind == AT_ARG_INT ? "N" : o->kind == AT_ARG_DOUBLE ? "X" : "TEXT";
}

/* "a whole number", "a number > 0", "a whole number from 1 to 256", ... into buf. */
static const char *wanted(const at_arg_opt *o, int with_range, char *buf, size_t n)
{
    const char *what = o->kind == AT_ARG_INT ? "a whole number" : "a number";
    if (!with_range)
        snprintf(buf, n, "%s", what);
    else if (o->max > 0)
        snprintf(buf, n, "%s from %g to %g", what, o->min, o->max);
    else
        snprintf(buf, n, "%s %s %g", what, o->flags & AT_ARG_ABOVE_MIN ? ">" : ">=", o->min);
    return buf;
}

static int in_range(const at_arg_opt *o, double v)
{
    if (o->flags & AT_ARG_ABOVE_MIN ? !(v > o->min) : !(v >= o->min))
        return 0;
    return o->max <= 0 || v <= o->max;
}

/* Converts text for option o (named as the user wrote it: flag). With store, writes it
 * through o->value. Returns 0, or -1 with why. */
static int take(const at_arg_opt *o, const char *flag, const char *text, int store, char *why,
                size_t whylen)
{
    char want[96], *end;
    errno = 0;
    switch (o->kind) {
    case AT_ARG_FLAG:
    case AT_ARG_COUNT:
        if (store)
            *(int *)o->value = o->kind == AT_ARG_FLAG ? 1 : *(int *)o->value + 1;
        return 0;
    case AT_ARG_INT:
    case AT_ARG_DOUBLE: {
        long long whole = 0;
        double v;
        if (o->kind == AT_ARG_INT)
            v = (double)(whole = strtoll(text, &end, 10));
        else
            v = strtod(text, &end);
        const int number = !errno && end != text && !*end && isfinite(v);
        if (!number || !in_range(o, v)) {
            snprintf(why, whylen, "%s needs %s, got '%s'", flag,
                     wanted(o, number, want, sizeof want), text);
            return -1;
        }
        if (store && o->kind == AT_ARG_INT)
            *(int64_t *)o->value = whole;
        else if (store)
            *(double *)o->value = v;
        return 0;
    }
    case AT_ARG_STRING:
        if (store)
            *(const char **)o->value = text;
        return 0;
    case AT_ARG_LIST:
        if (store) {
            at_arg_list *l = o->value;
            l->items[l->n++] = text;
        }
        return 0;
    }
    return 0;
}

/* The row whose long name is name (len bytes): an exact match, else the one row it is a
 * prefix of. NULL with why when there is none or several. */
static const at_arg_opt *find_long(const at_args_spec *spec, const char *name, size_t len,
                                   char *why, size_t whylen)
{
    const at_arg_opt *hit = NULL;
    int hits = 0;
    char list[400] = "";
    for (size_t i = 0; len > 0 && i <= spec->nopts; i++) {
        const at_arg_opt *o = i < spec->nopts ? &spec->opts[i] : &help_row;
        if (strncmp(o->name, name, len))
            continue;
        if (o->name[len] == '\0')
            return o;
        hit = o;
        hits++;
        size_t k = strlen(list);
        snprintf(list + k, sizeof list - k, "%s--%s", k ? ", " : "", o->name);
    }
    if (hits == 1)
        return hit;
    if (hits > 1) {
        snprintf(why, whylen, "'--%.*s' is ambiguous: %s", (int)len, name, list);
        return NULL;
    }
    char word[128];
    snprintf(word, sizeof word, "%.*s", (int)len, name);
    const char *near = at_args_nearest(word, spec->opts, spec->nopts, sizeof *spec->opts);
    if (!near)
        near = at_args_nearest(word, &help_row, 1, sizeof help_row);
    if (near)
        snprintf(why, whylen, "unknown option '--%s' (did you mean '--%s'?)", word, near);
    else
        snprintf(why, whylen, "unknown option '--%s'", word);
    return NULL;
}

static const at_arg_opt *find_short(const at_args_spec *spec, char c)
{
    for (size_t i = 0; i < spec->nopts; i++)
        if (spec->opts[i].letter == c)
            return &spec->opts[i];
    return c == help_row.letter ? &help_row : NULL;
}

/* One pass over the command line; stores only with store. Returns AT_ARGS_*. */
static int walk(const at_args_spec *spec, int argc, char **argv, int store, int *noperands,
                char *why, size_t whylen)
{
    int nops = 0, options = 1;
    const char *extra = NULL; /* the first operand too many */
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!options || a[0] != '-' || a[1] == '\0') {
            if (spec->max_operands >= 0 && nops == spec->max_operands && !extra)
                extra = a;
            if (store)
                argv[1 + nops] = a; /* never ahead of i: operands only move left */
            nops++;
            continue;
        }
        if (!strcmp(a, "--")) {
            options = 0;
            continue;
        }
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const at_arg_opt *o = find_long(spec, name, len, why, whylen);
            if (!o)
                return AT_ARGS_ERROR;
            if (o == &help_row)
                return AT_ARGS_HELP;
            char flag[128];
            snprintf(flag, sizeof flag, "--%s", o->name);
            if (!takes_value(o) && eq) {
                snprintf(why, whylen, "%s takes no value, got '%s'", flag, a);
                return AT_ARGS_ERROR;
            }
            const char *text = eq ? eq + 1 : NULL;
            if (takes_value(o) && !text) {
                if (i + 1 >= argc) {
                    snprintf(why, whylen, "%s needs a value: %s %s", flag, flag, meta_of(o));
                    return AT_ARGS_ERROR;
                }
                text = argv[++i];
            }
            if (take(o, flag, text, store, why, whylen) < 0)
                return AT_ARGS_ERROR;
            continue;
        }
        /* Short options: "-ab" is "-a -b"; a letter that takes a value takes the rest. */
        for (const char *p = a + 1; *p; p++) {
            const at_arg_opt *o = find_short(spec, *p);
            if (!o) {
                snprintf(why, whylen, "unknown option '-%c'", *p);
                return AT_ARGS_ERROR;
            }
            if (o == &help_row)
                return AT_ARGS_HELP;
            char flag[4] = {'-', *p, '\0', '\0'};
            if (!takes_value(o)) {
                take(o, flag, NULL, store, why, whylen);
                continue;
            }
            const char *text = p[1] ? p + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (!text) {
                snprintf(why, whylen, "%s needs a value: %s %s", flag, flag, meta_of(o));
                return AT_ARGS_ERROR;
            }
            if (take(o, flag, text, store, why, whylen) < 0)
                return AT_ARGS_ERROR;
            break;
        }
    }
    if (nops < spec->min_operands) {
        snprintf(why, whylen, "missing argument: needs %s", spec->operands);
        return AT_ARGS_ERROR;
    }
    if (extra) {
        if (spec->max_operands == 0)
            snprintf(why, whylen, "unexpected argument '%s' (%s takes none)", extra, spec->name);
        else
            snprintf(why, whylen, "unexpected argument '%s' (needs only %s)", extra,
                     spec->operands);
        return AT_ARGS_ERROR;
    }
    *noperands = nops;
    return AT_ARGS_RUN;
}

int at_args_parse(const at_args_spec *spec, int argc, char **argv, int *noperands, char *why,
                  size_t whylen)
{
    int nops = 0;
    int rc = walk(spec, argc, argv, 0, &nops, why, whylen);
    if (rc != AT_ARGS_RUN)
        return rc;
    /* A list can hold no more values than there are arguments; allocated before anything is
     * stored, so running out of memory leaves the settings untouched too. */
    for (size_t i = 0; i < spec->nopts; i++) {
        at_arg_list *l = spec->opts[i].value;
        if (spec->opts[i].kind != AT_ARG_LIST)
            continue;
        if (!(l->items = calloc((size_t)argc, sizeof *l->items))) {
            for (size_t k = 0; k < i; k++)
                if (spec->opts[k].kind == AT_ARG_LIST) {
                    at_arg_list *lk = spec->opts[k].value;
                    free(lk->items);
                    lk->items = NULL;
                }
            snprintf(why, whylen, "out of memory");
            return AT_ARGS_ERROR;
        }
    }
    return walk(spec, argc, argv, 1, noperands, why, whylen);
}

/* Writes text from column col (the cursor is there), wrapped at HELP_WIDTH with continuation
 * lines indented to col, and a newline. */
static void wrap(FILE *out, const char *text, int col)
{
    int at = col;
    for (const char *p = text + strspn(text, " "); *p; p += strspn(p, " ")) {
        int len = (int)strcspn(p, " ");
        if (at > col && at + 1 + len > HELP_WIDTH) {
            fprintf(out, "\n%*s", col, "");
            at = col;
        } else if (at > col) {
            fputc(' ', out);
            at++;
        }
        fprintf(out, "%.*s", len, p);
        at += len;
        p += len;
    }
    fputc('\n', out);
}

/* One row of the option list. */
static void help_line(FILE *out, const at_arg_opt *o)
{
    char label[128], text[1024];
    int n = o->letter ? snprintf(label, sizeof label, "-%c, --%s", o->letter, o->name)
                      : snprintf(label, sizeof label, "--%s", o->name);
    if (takes_value(o))
        snprintf(label + n, sizeof label - (size_t)n, " %s", meta_of(o));
    n = snprintf(text, sizeof text, "%s", o->help);
    if (o->kind == AT_ARG_LIST)
        n += snprintf(text + n, sizeof text - (size_t)n, " (repeatable)");
    if (o->flags & AT_ARG_SHOW_DEFAULT) {
        if (o->kind == AT_ARG_INT)
            snprintf(text + n, sizeof text - (size_t)n, " (default %lld)",
                     (long long)*(const int64_t *)o->value);
        else if (o->kind == AT_ARG_DOUBLE)
            snprintf(text + n, sizeof text - (size_t)n, " (default %g)", *(const double *)o->value);
        else if (o->kind == AT_ARG_STRING && *(const char *const *)o->value)
            snprintf(text + n, sizeof text - (size_t)n, " (default %s)",
                     *(const char *const *)o->value);
    }
    if ((int)strlen(label) + 2 > HELP_COL - 2)
        fprintf(out, "  %s\n%*s", label, HELP_COL, "");
    else
        fprintf(out, "  %-*s", HELP_COL - 2, label);
    wrap(out, text, HELP_COL);
}

void at_args_help(FILE *out, const at_args_spec *spec)
{
    fprintf(out, "Usage: alphatop %s %s\n\n%s\nOptions:\n", spec->name, spec->synopsis,
            spec->about);
    for (size_t i = 0; i < spec->nopts; i++)
        help_line(out, &spec->opts[i]);
    help_line(out, &help_row);
    if (spec->notes)
        fprintf(out, "\n%s", spec->notes);
    fprintf(out, "\n%s", at_args_exit_rule);
}

int at_args_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "alphatop %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "; see 'alphatop %s --help'\n", cmd);
    va_end(ap);
    return AT_EXIT_USAGE;
}

int at_args_handle(const at_args_spec *spec, int argc, char **argv, int *noperands)
{
    char why[512];
    int rc = at_args_parse(spec, argc, argv, noperands, why, sizeof why);
    if (rc == AT_ARGS_RUN)
        return -1;
    if (rc == AT_ARGS_HELP) {
        at_args_help(stdout, spec);
        return AT_EXIT_OK;
    }
    return at_args_error(spec->name, "%s", why);
}

/* Edit distance of a and b counting a swap of two neighbours as one edit (optimal string
 * alignment); both at most MAX_WORD bytes. */
#define MAX_WORD 64
static int distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    int d[MAX_WORD + 1][MAX_WORD + 1];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            int best = sub < del ? sub : del;
            best = ins < best ? ins : best;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

const char *at_args_nearest(const char *word, const void *base, size_t n, size_t stride)
{
    const char *best = NULL;
    int best_d = 0;
    size_t len = strlen(word);
    if (len > MAX_WORD)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = *(const char *const *)((const char *)base + i * stride);
        if (strlen(name) > MAX_WORD)
            continue;
        int d = distance(word, name);
        /* A likely typo: one or two edits, and fewer than a third of the word's letters. */
        if (d <= 2 && 3 * d <= (int)len + 1 && (!best || d < best_d)) {
            best = name;
            best_d = d;
        }
    }
    return best;
}
