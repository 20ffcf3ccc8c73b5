/* SPDX-License-Identifier: Apache-2.0 */
/* grid.h -- a plain screen model: rows x cols cells of (glyph, fg, bg, attr).
 *
 * Renderers draw into a grid; tui/term.c copies it to curses. Nothing here touches a
 * terminal, so a grid can be dumped as text and compared with golden files.
 * Colours are xterm palette indices 0..255, or AT_COLOR_DEFAULT (the terminal's own).
 */
#ifndef ALPHATOP_GRID_H
#define ALPHATOP_GRID_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { AT_COLOR_DEFAULT = -1 };

/* Attributes (bit set). */
enum { AT_ATTR_BOLD = 1, AT_ATTR_REVERSE = 2, AT_ATTR_DIM = 4, AT_ATTR_UNDERLINE = 8 };

/* A foreground/background/attribute triple. */
typedef struct at_style {
    int16_t fg, bg;
    uint8_t attr;
} at_style;

typedef struct at_gcell {
    uint32_t ch; /* Unicode code point; every glyph used is one column wide */
    at_style st;
} at_gcell;

typedef struct at_grid {
    int rows, cols;
    at_gcell *cells; /* row-major, rows * cols */
} at_grid;

/* New grid of spaces in the default style. Caller owns return value (free with
 * at_grid_free); NULL if out of memory or a size is < 1. */
at_grid *at_grid_new(int rows, int cols);

/* Frees the grid. NULL-safe. */
void at_grid_free(at_grid *self);

/* Changes the size, clearing every cell. Returns 0, or -1 if out of memory (grid unchanged). */
int at_grid_resize(at_grid *self, int rows, int cols);

/* Sets every cell to a space in style st. */
void at_grid_clear(at_grid *self, at_style st);

/* Puts glyph ch at (y, x); outside the grid does nothing. */
void at_grid_put(at_grid *self, int y, int x, uint32_t ch, at_style st);

/* Cell at (y, x), or NULL outside the grid. Borrowed. */
const at_gcell *at_grid_at(const at_grid *self, int y, int x);

/* Writes UTF-8 text at (y, x), at most maxw columns (clipped at the grid's edge too).
 * Returns the number of columns written. */
int at_grid_text(at_grid *self, int y, int x, int maxw, const char *utf8, at_style st);

/* Like at_grid_text with printf formatting. */
int at_grid_printf(at_grid *self, int y, int x, int maxw, at_style st, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Fills a rectangle with glyph ch in style st (clipped). */
void at_grid_fill(at_grid *self, int y, int x, int h, int w, uint32_t ch, at_style st);

/* Writes the glyphs as UTF-8 text, one line per row, trailing spaces removed. */
void at_grid_dump(const at_grid *self, FILE *out);

/* Encodes code point ch as UTF-8 into buf (at least 5 bytes, NUL-terminated). Returns the
 * number of bytes (1..4). */
int at_utf8_encode(uint32_t ch, char *buf);

#endif
