/* SPDX-License-Identifier: Apache-2.0 */
/* grid.c -- the plain cell grid renderers draw into. */
#include "grid.h"

#include <stdarg.h>
#include <stdlib.h>

static const at_style plain = {AT_COLOR_DEFAULT, AT_COLOR_DEFAULT, 0};

at_grid *at_grid_new(int rows, int cols)
{
    if (rows < 1 || cols < 1)
        return NULL;
    at_grid *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    if (at_grid_resize(g, rows, cols)) {
        free(g);
        return NULL;
    }
    return g;
}

void at_grid_free(at_grid *self)
{
    if (!self)
        return;
    free(self->cells);
    free(self);
}

int at_grid_resize(at_grid *self, int rows, int cols)
{
    if (rows < 1 || cols < 1)
        return -1;
    at_gcell *c = realloc(self->cells, (size_t)rows * (size_t)cols * sizeof(at_gcell));
    if (!c)
        return -1;
    self->cells = c;
    self->rows = rows;
    self->cols = cols;
    at_grid_clear(self, plain);
    return 0;
}

void at_grid_clear(at_grid *self, at_style st)
{
    at_grid_fill(self, 0, 0, self->rows, self->cols, ' ', st);
}

void at_grid_put(at_grid *self, int y, int x, uint32_t ch, at_style st)
{
    if (y < 0 || x < 0 || y >= self->rows || x >= self->cols)
        return;
    at_gcell *c = &self->cells[(size_t)y * (size_t)self->cols + (size_t)x];
    c->ch = ch;
    c->st = st;
}

const at_gcell *at_grid_at(const at_grid *self, int y, int x)
{
    if (y < 0 || x < 0 || y >= self->rows || x >= self->cols)
        return NULL;
    return &self->cells[(size_t)y * (size_t)self->cols + (size_t)x];
}

/* Decodes one UTF-8 sequence at *s, advancing it; malformed bytes become U+FFFD. */
static uint32_t utf8_next(const unsigned char **s)
{
    const unsigned char *p = *s;
    uint32_t c = p[0];
    int n = c < 0x80             ? 0
            : (c & 0xE0) == 0xC0 ? 1
            : (c & 0xF0) == 0xE0 ? 2
            : (c & 0xF8) == 0xF0 ? 3
                                 : -1;
    if (n < 0) {
        *s = p + 1;
        return 0xFFFD;
    }
    c &= n == 0 ? 0x7F : (uint32_t)(0x3F >> n);
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *s = p + i;
            return 0xFFFD;
        }
        c = (c << 6) | (p[i] & 0x3F);
    }
    *s = p + n + 1;
    return c;
}

int at_grid_text(at_grid *self, int y, int x, int maxw, const char *utf8, at_style st)
{
    const unsigned char *s = (const unsigned char *)utf8;
    int w = 0;
    while (*s && w < maxw && x + w < self->cols) {
        uint32_t c = utf8_next(&s);
        at_grid_put(self, y, x + w, c < 0x20 ? '?' : c, st);
        w++;
    }
    return w;
}

int at_grid_printf(at_grid *self, int y, int x, int maxw, at_style st, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return at_grid_text(self, y, x, maxw, buf, st);
}

void at_grid_fill(at_grid *self, int y, int x, int h, int w, uint32_t ch, at_style st)
{
    for (int i = y; i < y + h; i++)
        for (int j = x; j < x + w; j++)
            at_grid_put(self, i, j, ch, st);
}

int at_utf8_encode(uint32_t ch, char *buf)
{
    int n;
    if (ch < 0x80) {
        buf[0] = (char)ch;
        n = 1;
    } else if (ch < 0x800) {
        buf[0] = (char)(0xC0 | (ch >> 6));
        buf[1] = (char)(0x80 | (ch & 0x3F));
        n = 2;
    } else if (ch < 0x10000) {
        buf[0] = (char)(0xE0 | (ch >> 12));
        buf[1] = (char)(0x80 | ((ch >> 6) & 0x3F));
        buf[2] = (char)(0x80 | (ch & 0x3F));
        n = 3;
    } else {
        buf[0] = (char)(0xF0 | (ch >> 18));
        buf[1] = (char)(0x80 | ((ch >> 12) & 0x3F));
        buf[2] = (char)(0x80 | ((ch >> 6) & 0x3F));
        buf[3] = (char)(0x80 | (ch & 0x3F));
        n = 4;
    }
    buf[n] = 0;
    return n;
}

void at_grid_dump(const at_grid *self, FILE *out)
{
    char buf[8];
    for (int y = 0; y < self->rows; y++) {
        int end = self->cols;
        while (end > 0 && self->cells[(size_t)y * (size_t)self->cols + (size_t)end - 1].ch == ' ')
            end--;
        for (int x = 0; x < end; x++) {
            at_utf8_encode(self->cells[(size_t)y * (size_t)self->cols + (size_t)x].ch, buf);
            fputs(buf, out);
        }
        fputc('\n', out);
    }
}
