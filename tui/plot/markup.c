/* SPDX-License-Identifier: Apache-2.0 */
/* markup.c -- a growing text buffer and the XML/HTML escape. */
#include "markup.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/text.h"

struct at_markup {
    char *s;
    size_t len, cap;
    int status;
};

at_markup *at_markup_new(int *status)
{
    at_markup *t = calloc(1, sizeof *t);
    if (t)
        t->s = malloc(t->cap = 256);
    if (!t || !t->s) {
        free(t);
        if (status)
            *status = AT_ERR_NOMEM;
        return NULL;
    }
    t->s[0] = '\0';
    return t;
}

void at_markup_free(at_markup *self)
{
    if (!self)
        return;
    free(self->s);
    free(self);
}

/* Room for extra more bytes and the NUL; 0, or -1 (the buffer has failed). */
static int reserve(at_markup *t, size_t extra)
{
    if (t->status < 0)
        return -1;
    if (t->len + extra < t->cap)
        return 0;
    size_t cap = t->cap;
    while (t->len + extra >= cap)
        cap *= 2;
    char *s = realloc(t->s, cap);
    if (!s) {
        t->status = AT_ERR_NOMEM;
        t->len = 0;
        t->s[0] = '\0';
        return -1;
    }
    t->s = s;
    t->cap = cap;
    return 0;
}

static void put(at_markup *t, const char *s, size_t n)
{
    if (reserve(t, n) < 0)
        return;
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

void at_markup_puts(at_markup *self, const char *s)
{
    put(self, s, strlen(s));
}

void at_markup_printf(at_markup *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(self, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(self->s + self->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    self->len += (size_t)n;
}

/* The UTF-8 character at s (n bytes left, n >= 1): its length, and the code point in *cp, or 1
 * with *cp = 0xFFFD for a byte that does not start a well-formed sequence. */
static size_t decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len = at_text_utf8_next((const char *)s, n, cp);
    if (len)
        return len;
    *cp = 0xFFFD;
    return 1;
}

/* Whether code point cp may stand in XML 1.0 and HTML text as itself. */
static int allowed(uint32_t cp)
{
    if (at_text_is_control(cp))
        return cp == '\t' || cp == '\n' || cp == '\r';
    if (cp >= 0xFDD0 && cp <= 0xFDEF)
        return 0;
    return (cp & 0xFFFE) != 0xFFFE;
}

/* The characters of s (decoded as the escape does). */
static size_t count_chars(const unsigned char *s, size_t n)
{
    size_t chars = 0;
    uint32_t cp;
    for (size_t i = 0; i < n; chars++)
        i += decode(s + i, n - i, &cp);
    return chars;
}

/* The characters XML and HTML give a meaning, and how each is written as text. */
static const char specials[] = "&<>\"'";
static const char *const entities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};

void at_markup_escape(at_markup *self, const char *s, size_t max_chars)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), chars = max_chars ? count_chars(u, n) : 0;
    /* characters kept before and after the ellipsis */
    size_t head = chars, tail_from = chars;
    if (max_chars && chars > max_chars) {
        size_t keep = max_chars > 1 ? max_chars - 1 : 0;
        head = keep - keep / 2;
        tail_from = chars - keep / 2;
    }
    size_t c = 0;
    uint32_t cp;
    for (size_t i = 0; i < n; c++) {
        size_t len = decode(u + i, n - i, &cp);
        if (c == head && head < tail_from)
            put(self, "\xe2\x80\xa6", 3);
        if (c < head || c >= tail_from) {
            const char *sp = cp && cp < 0x80 ? strchr(specials, (int)cp) : NULL;
            if (sp)
                at_markup_puts(self, entities[sp - specials]);
            else if (allowed(cp) && !(cp == 0xFFFD && len == 1))
                put(self, s + i, len);
            else
                put(self, "\xef\xbf\xbd", 3);
        }
        i += len;
    }
}

int at_markup_status(const at_markup *self)
{
    return self->status;
}

const char *at_markup_str(const at_markup *self)
{
    return self->s;
}

size_t at_markup_len(const at_markup *self)
{
    return self->len;
}

char *at_markup_take(at_markup *self, int *status)
{
    int st = self ? self->status : AT_ERR_NOMEM;
    char *s = NULL;
    if (st == AT_OK) {
        s = self->s;
        self->s = NULL;
    }
    at_markup_free(self);
    if (status)
        *status = st;
    return s;
}
