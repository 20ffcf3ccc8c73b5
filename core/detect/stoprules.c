/* SPDX-License-Identifier: Apache-2.0 */
/* stoprules.c -- parsing and evaluation of --stop-on rules against a phase tracker. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/phase.h"
#include "phase_internal.h"

typedef enum rule_kind { RULE_COLLAPSE, RULE_BURNT, RULE_MEAN_ALPHA, RULE_SCALAR_DROP } rule_kind;

typedef struct rule {
    rule_kind kind;
    double x;
    char name[49]; /* scalar name */
    char text[80]; /* canonical form */
} rule;

struct at_stop_rules {
    rule *r;
    size_t n, cap;
};

static const char GRAMMAR[] =
    "expected collapse, burnt:FRACTION, mean-alpha-below:X or scalar:NAME-drop:X";

at_stop_rules *at_stop_rules_new(void)
{
    return calloc(1, sizeof(at_stop_rules));
}

void at_stop_rules_free(at_stop_rules *self)
{
    if (!self)
        return;
    free(self->r);
    free(self);
}

size_t at_stop_rules_count(const at_stop_rules *self)
{
    return self ? self->n : 0;
}

const char *at_stop_rules_text(const at_stop_rules *self, size_t i)
{
    return self && i < self->n ? self->r[i].text : NULL;
}

static void set_err(char *errbuf, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, fmt, a, b);
}

/* Parses a whole string as a finite number into *x. */
static int parse_number(const char *s, double *x)
{
    char *end;
    errno = 0;
    *x = strtod(s, &end);
    return *s && !*end && errno == 0 && isfinite(*x);
}

/* Parses one rule (tok is NUL-terminated, trimmed) into *r. */
static int parse_one(const char *tok, rule *r, char *errbuf, size_t errlen)
{
    memset(r, 0, sizeof *r);
    const char *arg = NULL;
    if (strcmp(tok, "collapse") == 0) {
        r->kind = RULE_COLLAPSE;
        snprintf(r->text, sizeof r->text, "collapse");
        return AT_OK;
    }
    if (strncmp(tok, "burnt:", 6) == 0) {
        r->kind = RULE_BURNT;
        arg = tok + 6;
        if (!parse_number(arg, &r->x) || !(r->x > 0 && r->x <= 1)) {
            set_err(errbuf, errlen, "stop rule '%s': FRACTION must be a number in (0, 1], got '%s'",
                    tok, arg);
            return AT_ERR_ARG;
        }
        snprintf(r->text, sizeof r->text, "burnt:%g", r->x);
        return AT_OK;
    }
    if (strncmp(tok, "mean-alpha-below:", 17) == 0) {
        r->kind = RULE_MEAN_ALPHA;
        arg = tok + 17;
        if (!parse_number(arg, &r->x) || !(r->x > 0)) {
            set_err(errbuf, errlen, "stop rule '%s': X must be a positive number, got '%s'", tok,
                    arg);
            return AT_ERR_ARG;
        }
        snprintf(r->text, sizeof r->text, "mean-alpha-below:%g", r->x);
        return AT_OK;
    }
    if (strncmp(tok, "scalar:", 7) == 0) {
        r->kind = RULE_SCALAR_DROP;
        const char *name = tok + 7, *drop = NULL;
        for (const char *p = strstr(name, "-drop:"); p; p = strstr(p + 1, "-drop:"))
            drop = p;
        if (!drop || drop == name) {
            set_err(errbuf, errlen, "stop rule '%s': expected scalar:NAME-drop:X, e.g. %s", tok,
                    "scalar:test_acc-drop:0.05");
            return AT_ERR_ARG;
        }
        size_t len = (size_t)(drop - name);
        if (len >= sizeof r->name) {
            set_err(errbuf, errlen, "stop rule '%s': scalar name longer than 48 characters%s", tok,
                    "");
            return AT_ERR_ARG;
        }
        memcpy(r->name, name, len);
        r->name[len] = '\0';
        arg = drop + 6;
        if (!parse_number(arg, &r->x) || !(r->x > 0)) {
            set_err(errbuf, errlen, "stop rule '%s': X must be a positive number, got '%s'", tok,
                    arg);
            return AT_ERR_ARG;
        }
        snprintf(r->text, sizeof r->text, "scalar:%s-drop:%g", r->name, r->x);
        return AT_OK;
    }
    set_err(errbuf, errlen, "unknown stop rule '%s' (%s)", tok, GRAMMAR);
    return AT_ERR_ARG;
}

int at_stop_rules_add(at_stop_rules *self, const char *spec, char *errbuf, size_t errlen)
{
    if (!self || !spec) {
        set_err(errbuf, errlen, "no stop rule given (%s)%s", GRAMMAR, "");
        return AT_ERR_ARG;
    }
    char *copy = strdup(spec);
    if (!copy)
        return AT_ERR_NOMEM;
    size_t n0 = self->n;
    int rc = AT_OK;
    /* strtok_r would silently skip empty fields; an empty rule is a typo worth reporting. */
    char *p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        char *end = p + strlen(p);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*p) {
            set_err(errbuf, errlen, "empty stop rule in '%s' (%s)", spec, GRAMMAR);
            rc = AT_ERR_ARG;
            break;
        }
        rule r;
        rc = parse_one(p, &r, errbuf, errlen);
        if (rc)
            break;
        if (self->n == self->cap) {
            size_t cap = self->cap ? self->cap * 2 : 4;
            rule *q = realloc(self->r, cap * sizeof *q);
            if (!q) {
                rc = AT_ERR_NOMEM;
                break;
            }
            self->r = q;
            self->cap = cap;
        }
        self->r[self->n++] = r;
        if (!comma)
            break;
        p = comma + 1;
    }
    if (rc)
        self->n = n0;
    free(copy);
    return rc;
}

int at_stop_rules_parse(const char *spec, at_stop_rules **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    at_stop_rules *r = at_stop_rules_new();
    if (!r)
        return AT_ERR_NOMEM;
    int rc = at_stop_rules_add(r, spec, errbuf, errlen);
    if (rc) {
        at_stop_rules_free(r);
        return rc;
    }
    *out = r;
    return AT_OK;
}

/* Appends printf output to buf at *len, never past cap. */
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (k > 0)
        *len = *len + (size_t)k < cap ? *len + (size_t)k : cap;
}

static int eval_burnt(const rule *r, const at_phase_tracker *t, const at_run_state *run,
                      at_stop_verdict *v)
{
    if (run->layers == 0 || run->frac_burnt < r->x)
        return 0;
    size_t len = 0, nb = 0;
    char list[300] = "";
    for (size_t i = 0; i < at_phase_tracker_num_layers(t); i++) {
        at_layer_state l;
        at_phase_tracker_layer(t, i, &l);
        if (l.phase != AT_LAYER_BURNT || l.last_step != run->last_step)
            continue;
        append(list, sizeof list, &len, "%s%s alpha %.2f since %lld", nb ? ", " : "", l.name,
               l.alpha, (long long)l.phase_since);
        nb++;
    }
    snprintf(v->evidence, sizeof v->evidence, "%zu of %zu layers burnt (alpha < 2): %s", nb,
             run->layers, list);
    return 1;
}

static int eval_rule(const rule *r, const at_phase_tracker *t, const at_run_state *run,
                     at_stop_verdict *v)
{
    switch (r->kind) {
    case RULE_COLLAPSE:
        if (!run->collapse)
            return 0;
        snprintf(v->evidence, sizeof v->evidence, "collapse since step %lld: %s",
                 (long long)run->collapse_since, run->collapse_evidence);
        return 1;
    case RULE_BURNT:
        return eval_burnt(r, t, run, v);
    case RULE_MEAN_ALPHA: {
        int streak = at_phase_tracker_mean_alpha_streak(t, r->x);
        if (streak < at_phase_tracker_confirm(t))
            return 0;
        snprintf(v->evidence, sizeof v->evidence,
                 "mean alpha %.3f below %g for %d snapshots in a row", run->mean_alpha, r->x,
                 streak);
        return 1;
    }
    case RULE_SCALAR_DROP: {
        double latest, peak;
        int64_t peak_step;
        if (!at_phase_tracker_scalar(t, r->name, &latest, &peak, &peak_step) ||
            peak - latest < r->x)
            return 0;
        snprintf(v->evidence, sizeof v->evidence,
                 "%s %.4g is %.4g below its peak %.4g at step %lld", r->name, latest, peak - latest,
                 peak, (long long)peak_step);
        return 1;
    }
    }
    return 0;
}

int at_stop_rules_eval(const at_stop_rules *self, const at_phase_tracker *tracker,
                       at_stop_verdict *out)
{
    if (!self || !tracker)
        return 0;
    at_run_state run;
    at_phase_tracker_run(tracker, &run);
    for (size_t i = 0; i < self->n; i++) {
        at_stop_verdict v;
        memset(&v, 0, sizeof v);
        if (!eval_rule(&self->r[i], tracker, &run, &v))
            continue;
        snprintf(v.rule, sizeof v.rule, "%s", self->r[i].text);
        v.step = run.last_step;
        if (out)
            *out = v;
        return 1;
    }
    return 0;
}
