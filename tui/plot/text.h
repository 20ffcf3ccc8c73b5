/* SPDX-License-Identifier: Apache-2.0 */
/* text.h -- a growing text buffer for the SVG and HTML writers, and the one XML/HTML escape.
 *
 * Appends never fail visibly: the first allocation failure makes the buffer sticky-failed
 * (later appends do nothing) and at_text_status says so, so a writer appends freely and
 * checks once at the end.
 *
 *     at_text *t = at_text_new(&st);
 *     at_text_printf(t, "<text x=\"%.2f\">", x);
 *     at_text_escape(t, layer_name);            // any bytes: valid XML/HTML text out
 *     char *s = at_text_take(t, &st);          // caller owns s; t is freed
 */
#ifndef ALPHATOP_PLOT_TEXT_H
#define ALPHATOP_PLOT_TEXT_H

#include <stddef.h>

#include "alphatop/status.h"

typedef struct at_text at_text;

/* New empty buffer. Caller owns return value (at_text_free or at_text_take); NULL on error with
 * *status (may be NULL) set to AT_ERR_NOMEM. */
at_text *at_text_new(int *status);

/* Frees the buffer and its text. NULL-safe. */
void at_text_free(at_text *self);

/* Appends printf-formatted text (numbers use the C locale's decimal point: the programs never
 * set LC_NUMERIC). */
void at_text_printf(at_text *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s as is (trusted markup). */
void at_text_puts(at_text *self, const char *s);

/* Appends untrusted bytes s as XML 1.0 / HTML text, valid inside elements and quoted
 * attributes: & < > " ' become entities; bytes that are not well-formed UTF-8 (overlong forms,
 * surrogates, values above U+10FFFF, stray continuation bytes), control characters other than
 * tab, newline and carriage return, C1 controls and noncharacters become U+FFFD. With max_chars
 * > 0, a text longer than max_chars characters keeps its first and last parts around an
 * ellipsis, max_chars characters in all. */
void at_text_escape(at_text *self, const char *s, size_t max_chars);

/* AT_OK, or AT_ERR_NOMEM when an append failed. */
int at_text_status(const at_text *self);

/* The text so far (NUL-terminated; "" after a failure). Borrowed until the next append. */
const char *at_text_str(const at_text *self);

/* Its length in bytes. */
size_t at_text_len(const at_text *self);

/* Frees the buffer and hands over its text. Caller owns return value (free); NULL with *status
 * (may be NULL) set to AT_ERR_NOMEM when an append had failed. NULL-safe (NULL, AT_ERR_NOMEM). */
char *at_text_take(at_text *self, int *status);

#endif
