/* SPDX-License-Identifier: Apache-2.0 */
/* markup.h -- a growing text buffer for the SVG and HTML writers, and the one XML/HTML escape.
 *
 * Appends never fail visibly: the first allocation failure makes the buffer sticky-failed
 * (later appends do nothing) and at_markup_status says so, so a writer appends freely and
 * checks once at the end.
 *
 *     at_markup *t = at_markup_new(&st);
 *     at_markup_printf(t, "<text x=\"%.2f\">", x);
 *     at_markup_escape(t, layer_name, 0);      // any bytes: valid XML/HTML text out
 *     char *s = at_markup_take(t, &st);        // caller owns s; t is freed
 */
#ifndef ALPHATOP_PLOT_MARKUP_H
#define ALPHATOP_PLOT_MARKUP_H

#include <stddef.h>

#include "alphatop/status.h"

typedef struct at_markup at_markup;

/* New empty buffer. Caller owns return value (at_markup_free or at_markup_take); NULL on error with
 * *status (may be NULL) set to AT_ERR_NOMEM. */
at_markup *at_markup_new(int *status);

/* Frees the buffer and its text. NULL-safe. */
void at_markup_free(at_markup *self);

/* Appends printf-formatted text (numbers use the C locale's decimal point: the programs never
 * set LC_NUMERIC). */
void at_markup_printf(at_markup *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s as is (trusted markup). */
void at_markup_puts(at_markup *self, const char *s);

/* Appends untrusted bytes s as XML 1.0 / HTML text, valid inside elements and quoted
 * attributes: & < > " ' become entities; bytes that are not well-formed UTF-8 (overlong forms,
 * surrogates, values above U+10FFFF, stray continuation bytes), control characters other than
 * tab, newline and carriage return, C1 controls and noncharacters become U+FFFD. With max_chars
 * > 0, a text longer than max_chars characters keeps its first and last parts around an
 * ellipsis, max_chars characters in all. */
void at_markup_escape(at_markup *self, const char *s, size_t max_chars);

/* AT_OK, or AT_ERR_NOMEM when an append failed. */
int at_markup_status(const at_markup *self);

/* The text so far (NUL-terminated; "" after a failure). Borrowed until the next append. */
const char *at_markup_str(const at_markup *self);

/* Its length in bytes. */
size_t at_markup_len(const at_markup *self);

/* Frees the buffer and hands over its text. Caller owns return value (free); NULL with *status
 * (may be NULL) set to AT_ERR_NOMEM when an append had failed. NULL-safe (NULL, AT_ERR_NOMEM). */
char *at_markup_take(at_markup *self, int *status);

#endif
