/* SPDX-License-Identifier: Apache-2.0 */
/* term.h -- the one place the monitor talks to curses: set up and restore the terminal,
 * read keys as AT_KEY_* codes, copy a cell grid to the screen.
 */
#ifndef ALPHATOP_TERM_H
#define ALPHATOP_TERM_H

#include <stdio.h>

#include "grid.h"

typedef struct at_term at_term;

/* Sets up curses on out/in (NULL: stdout/stdin) with terminal type term_type (NULL: $TERM):
 * cbreak, no echo, keypad, non-blocking reads, mouse clicks and wheel, hidden cursor, default
 * colours.
 * Colours: 256 or 8 when the terminal has them, none when it has not or NO_COLOR is set.
 * Caller owns return value (free with at_term_close); NULL if the terminal cannot be used. */
at_term *at_term_open(const char *term_type, FILE *out, FILE *in);

/* Restores the terminal and frees. NULL-safe. */
void at_term_close(at_term *self);

/* Colours available: 256, 8 or 0. */
int at_term_colors(const at_term *self);

/* 1 if the locale's character set is UTF-8 (half blocks and other Unicode glyphs). */
int at_term_utf8(void);

/* Current size. */
void at_term_size(const at_term *self, int *rows, int *cols);

/* Next key as a code point or AT_KEY_* (ui.h; Ctrl-L is AT_KEY_RESIZE: redraw everything);
 * -1 when none is pending. For mouse keys (a left press, a second press on the same cell within
 * 400 ms: AT_KEY_DCLICK, the wheel) y and x get the cell. */
int at_term_key(at_term *self, int *y, int *x);

/* Forgets what is on the screen: the next at_term_draw writes every cell (after a resize). */
void at_term_invalidate(at_term *self);

/* Copies the grid to the screen (to the size of both) and updates the terminal. */
void at_term_draw(at_term *self, const at_grid *g);

#endif
