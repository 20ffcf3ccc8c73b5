/* SPDX-License-Identifier: Apache-2.0 */
/* text.c -- escaping untrusted text for people and for JSON, and exact JSON numbers (text.h). */
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/text.h"

size_t at_text_utf8_next(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len;
    uint32_t v, min;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    /* C0 and C1 lead bytes would only start overlong forms; F5..FF would exceed U+10FFFF. */
    if (u[0] >= 0xc2 && u[0] <= 0xdf) {
        len = 2, v = u[0] & 0x1fu, min = 0x80;
    } else if (u[0] >= 0xe0 && u[0] <= 0xef) {
        len = 3, v = u[0] & 0x0fu, min = 0x800;
    } else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
        len = 4, v = u[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (u[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

int at_text_is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Characters that reorder text (bidi marks, embeddings, overrides, isolates) or break lines
 * without being controls: shown escaped so a name cannot disguise what follows it. */
static int is_layout(uint32_t cp)
{
    return cp == 0x061c || cp == 0x200e || cp == 0x200f || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* An output buffer with snprintf's contract: pieces are copied whole while they fit, and the
 * length counts everything. */
typedef struct out {
    char *dst;
    size_t cap, len, written;
    int full;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (!o->full && o->len + n < o->cap) {
        memcpy(o->dst + o->len, s, n);
        o->written = o->len + n;
    } else {
        o->full = 1;
    }
    o->len += n;
}

static size_t finish(out *o)
{
    if (o->cap)
        o->dst[o->written] = '\0';
    return o->len;
}

static void put_fmt(out *o, const char *fmt, unsigned v)
{
    char e[8];
    int k = snprintf(e, sizeof e, fmt, v);
    put(o, e, (size_t)k);
}

/* The two escapers differ only in how each kind of unit is written. */
enum unit { PLAIN, CONTROL, SPECIAL, INVALID };

static enum unit classify(const char *s, size_t n, uint32_t *cp, size_t *len)
{
    *len = at_text_utf8_next(s, n, cp);
    if (*len == 0) {
        *len = 1;
        *cp = (unsigned char)s[0];
        return INVALID;
    }
    if (at_text_is_control(*cp))
        return CONTROL;
    return is_layout(*cp) ? SPECIAL : PLAIN;
}

size_t at_text_escape(char *dst, size_t cap, const char *src, size_t n)
{
    out o = {dst, cap, 0, 0, 0};
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len;
        enum unit u = classify(src + i, n - i, &cp, &len);
        if (u == PLAIN)
            put(&o, cp == '\\' ? "\\\\" : src + i, cp == '\\' ? 2 : len);
        else if (u == SPECIAL || (u == CONTROL && cp >= 0x80))
            put_fmt(&o, "\\u%04x", cp);
        else
            put_fmt(&o, "\\x%02x", cp); /* C0, DEL, or one invalid byte */
        i += len;
    }
    return finish(&o);
}

const char *at_text_show(char *dst, size_t cap, const char *s)
{
    at_text_escape(dst, cap, s ? s : "", s ? strlen(s) : 0);
    return dst;
}

size_t at_text_json_string(char *dst, size_t cap, const char *src, size_t n)
{
    static const char short_esc[] = "btnvfr"; /* \b \t \n (\v has none) \f \r for 8..13 */
    out o = {dst, cap, 0, 0, 0};
    put(&o, "\"", 1);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len;
        enum unit u = classify(src + i, n - i, &cp, &len);
        if (u == INVALID || cp == 0xfffd) {
            /* The replacement character itself too: what an invalid byte reads back as is
             * written the same way again (encoding a decoded string is a fixed point). */
            put(&o, "\\ufffd", 6);
        } else if (u == PLAIN && (cp == '"' || cp == '\\')) {
            char e[2] = {'\\', (char)cp};
            put(&o, e, 2);
        } else if (u == PLAIN) {
            put(&o, src + i, len);
        } else if (cp >= 8 && cp <= 13 && cp != 11) {
            char e[2] = {'\\', short_esc[cp - 8]};
            put(&o, e, 2);
        } else {
            put_fmt(&o, "\\u%04x", cp);
        }
        i += len;
    }
    put(&o, "\"", 1);
    return finish(&o);
}

char *at_text_json_quote(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    size_t need = at_text_json_string(NULL, 0, s, n) + 1;
    char *q = malloc(need);
    if (q)
        at_text_json_string(q, need, s, n);
    return q;
}

/* ---- numbers ---- */

static pthread_once_t c_once = PTHREAD_ONCE_INIT;
static locale_t c_numeric;

static void make_c_numeric(void)
{
    c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* v with `digits` significant digits in the current thread's locale; 1 if it reads back as v. */
static int exact_with(char *text, size_t cap, int digits, double v)
{
    snprintf(text, cap, "%.*g", digits, v);
    return strtod(text, NULL) == v;
}

/* %g switches to an exponent once the exponent reaches the digits asked for: 100 would be
 * "1e+02". Values below 1e17 are written out in full instead, as JavaScript does: the same
 * significant digits, then zeros ("100", "65424263964195860"). */
static void spell_out_integer(char text[AT_TEXT_NUMBER_CAP])
{
    char *e = strchr(text, 'e');
    long exp10 = e ? strtol(e + 1, NULL, 10) : -1;
    if (exp10 < 0 || exp10 > 16)
        return;
    char whole[AT_TEXT_NUMBER_CAP];
    size_t k = 0;
    long digits = 0;
    for (const char *p = text; p < e; p++)
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
            whole[k++] = *p;
            digits += *p != '-';
        }
    for (; digits <= exp10; digits++)
        whole[k++] = '0';
    whole[k] = '\0';
    memcpy(text, whole, k + 1);
}

const char *at_text_json_number(char *buf, size_t cap, double v)
{
    char text[AT_TEXT_NUMBER_CAP];
    if (!isfinite(v)) {
        snprintf(text, sizeof text, "null");
    } else {
        /* A trainer may have set a locale whose decimal point is a comma: print and read back
         * in the C locale on this thread only (uselocale), the process's locale stays. */
        pthread_once(&c_once, make_c_numeric);
        locale_t old = c_numeric ? uselocale(c_numeric) : (locale_t)0;
        /* Reading back exactly is monotone in the digit count (more digits are never further
         * from v), so the shortest exact count is found by bisection; 17 always suffices. */
        int lo = 1, hi = 17;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (exact_with(text, sizeof text, mid, v))
                hi = mid;
            else
                lo = mid + 1;
        }
        exact_with(text, sizeof text, lo, v);
        spell_out_integer(text);
        if (c_numeric)
            uselocale(old);
        for (char *c = text; *c; c++)
            if (*c == ',')
                *c = '.'; /* only when the C locale could not be made */
    }
    if (cap)
        snprintf(buf, cap, "%s", strlen(text) < cap ? text : "");
    return buf;
}

const char *at_text_fit(char *dst, size_t cap, const char *before, const char *s, const char *after)
{
    if (!cap)
        return dst;
    size_t len = strlen(s);
    if (strlen(before) + len + strlen(after) < cap) {
        snprintf(dst, cap, "%s%s%s", before, s, after);
        return dst;
    }
    size_t fixed = strlen(before) + strlen("...") + strlen(after) + 1;
    size_t keep = cap > fixed ? cap - fixed : 0;
    if (keep > len)
        keep = len;
    snprintf(dst, cap, "%s%.*s...%s%s", before, (int)(keep - keep / 2), s, s + len - keep / 2,
             after);
    return dst;
}
