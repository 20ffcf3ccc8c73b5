/* SPDX-License-Identifier: Apache-2.0 */
/* names.c -- short layer names: shared parts dropped, middle elision, pair labels. */
#include "names.h"

#include <stdio.h>
#include <string.h>

/* Number of layers of run whose name starts (end 0) or ends (end 1) with part. */
static int carriers(const at_model *m, int run, const char *part, int end)
{
    size_t pl = strlen(part);
    int n = 0;
    for (int i = 0; i < at_model_num_layers(m, run); i++) {
        const char *s = at_model_layer(m, run, i)->name;
        size_t l = strlen(s);
        n += l > pl && !memcmp(end ? s + l - pl : s, part, pl);
    }
    return n;
}

/* The longest dotted prefix (end 0) or suffix (end 1) of one of a few spread layers' names
 * that 3 in 4 layers carry, into buf. */
static void shared(const at_model *m, int run, int end, char *buf, size_t cap)
{
    int n = at_model_num_layers(m, run);
    buf[0] = 0;
    if (n < 2)
        return;
    const int probes[] = {0, n / 4, n / 2, 3 * n / 4, n - 1};
    for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
        const char *s = at_model_layer(m, run, probes[p])->name;
        size_t l = strlen(s);
        /* candidates from the longest: every '.' ends a prefix / starts a suffix */
        for (size_t k = end ? 1 : l; end ? k < l : k > 0; end ? k++ : k--) {
            size_t i = end ? k : k - 1;
            if (s[i] != '.')
                continue;
            size_t len = end ? l - i : i + 1;
            if (len <= strlen(buf) || len >= cap)
                continue;
            char part[128];
            snprintf(part, sizeof part, "%.*s", (int)len, end ? s + i : s);
            if (4 * carriers(m, run, part, end) >= 3 * n) {
                snprintf(buf, cap, "%s", part);
                break;
            }
        }
    }
}

void at_names_scan(at_names *out, const at_model *m, int run)
{
    shared(m, run, 0, out->prefix, sizeof out->prefix);
    shared(m, run, 1, out->suffix, sizeof out->suffix);
}

const char *at_names_short(const at_names *n, const char *name, char *buf, size_t cap)
{
    size_t l = strlen(name), pl = strlen(n->prefix), sl = strlen(n->suffix);
    size_t from = pl && l > pl && !strncmp(name, n->prefix, pl) ? pl : 0;
    size_t to = sl && l - from > sl && !strcmp(name + l - sl, n->suffix) ? l - sl : l;
    snprintf(buf, cap, "%.*s", (int)(to - from), name + from);
    return buf;
}

const char *at_names_pattern(const at_names *n, char *buf, size_t cap)
{
    if (n->prefix[0] || n->suffix[0])
        snprintf(buf, cap, "%s*%s", n->prefix, n->suffix);
    else
        buf[0] = 0;
    return buf;
}

int at_elide(const char *s, int w, int utf8, char *out, size_t cap)
{
    int len = (int)strlen(s);
    if (len <= w || w < 3) {
        snprintf(out, cap, "%.*s", w < len ? (w > 0 ? w : 0) : len, s);
        return len < w ? len : (w > 0 ? w : 0);
    }
    const char *dot = strchr(s, '.');
    int head = dot && dot - s + 1 <= w / 2 ? (int)(dot - s) + 1 : w / 3;
    int room = w - head - 1, tail = room;
    for (int i = len - room; i < len; i++)
        if (s[i - 1] == '.' || s[i - 1] == '/') {
            tail = len - i;
            break;
        }
    snprintf(out, cap, "%.*s%s%s", head, s, utf8 ? "\xe2\x80\xa6" : "~", s + len - tail);
    return head + 1 + tail;
}

void at_pair_label(const char *a, const char *b, char *buf, size_t cap)
{
    size_t p = 0, i = 0;
    while (a[i] && a[i] == b[i]) {
        if (a[i] == '.')
            p = i + 1;
        i++;
    }
    snprintf(buf, cap, "%s/%s", a, b + p);
}

int at_pair_elide(const char *a, const char *b, int w, int utf8, char *out, size_t cap)
{
    char label[600];
    at_pair_label(a, b, label, sizeof label);
    const char *dot = strchr(a, '.');
    size_t head = dot ? (size_t)(dot - a) + 1 : 0;
    if ((int)strlen(label) <= w || (head && !strncmp(a, b, head)) || w < 7)
        return at_elide(label, w, utf8, out, cap);
    char l[300], r[300];
    int wl = (w - 1) / 2;
    int nl = at_elide(a, wl, utf8, l, sizeof l);
    int nr = at_elide(b, w - 1 - nl, utf8, r, sizeof r);
    snprintf(out, cap, "%s/%s", l, r);
    return nl + 1 + nr;
}
