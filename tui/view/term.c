/* SPDX-License-Identifier: Apache-2.0 */
/* term.c -- curses output of the cell grid, key input, terminal setup and restore. */
#include "term.h"

#include <curses.h>
#include <langinfo.h>
#include <ncursesw/term.h> /* <term.h> would find tui/term.h */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "ui.h"

/* Colour pairs are allocated on first use per (fg, bg) and never redefined. */
enum { NCOL = 257 }; /* AT_COLOR_DEFAULT plus 256 palette entries */

struct at_term {
    SCREEN *screen;
    FILE *out, *in;
    int colors;
    int npairs;
    int *pair;       /* NCOL * NCOL: pair number of (fg + 1, bg + 1); 0 = not allocated yet */
    at_gcell *shown; /* what the last at_term_draw wrote, shown_rows x shown_cols */
    int shown_rows, shown_cols;
    double last_click_ms; /* time and cell of the last left press, for double clicks */
    int last_click_y, last_click_x;
};

enum { DOUBLE_CLICK_MS = 400 };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A left press at (y, x): AT_KEY_DCLICK when it repeats the last one in time and place. */
static int left_press(at_term *t, int y, int x)
{
    double now = now_ms();
    int dbl =
        now - t->last_click_ms < DOUBLE_CLICK_MS && y == t->last_click_y && x == t->last_click_x;
    t->last_click_ms = dbl ? 0 : now;
    t->last_click_y = y;
    t->last_click_x = x;
    return dbl ? AT_KEY_DCLICK : AT_KEY_MOUSE;
}

int at_term_utf8(void)
{
    const char *cs = nl_langinfo(CODESET);
    return cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
}

at_term *at_term_open(const char *term_type, FILE *out, FILE *in)
{
    at_term *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->out = out ? out : stdout;
    t->in = in ? in : stdin;
    /* newterm on an unknown terminal type leaks its half-built screen: ask terminfo first */
    int err = 0;
    if (setupterm(term_type, fileno(t->out), &err) != OK) {
        free(t);
        return NULL;
    }
    del_curterm(cur_term);
    t->screen = newterm(term_type, t->out, t->in);
    if (!t->screen) {
        free(t);
        return NULL;
    }
    set_term(t->screen);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    mousemask(BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    mouseinterval(0); /* presses at once; double clicks are timed here (at_term_key) */
    if (has_colors() && !getenv("NO_COLOR") && start_color() == OK) {
        use_default_colors();
        t->colors = COLORS >= 256 ? 256 : COLORS >= 8 ? 8 : 0;
        t->pair = calloc((size_t)NCOL * NCOL, sizeof(int));
        if (!t->pair)
            t->colors = 0;
    }
    return t;
}

void at_term_close(at_term *self)
{
    if (!self)
        return;
    set_term(self->screen);
    endwin();
    delscreen(self->screen);
    free(self->pair);
    free(self->shown);
    free(self);
}

int at_term_colors(const at_term *self)
{
    return self->colors;
}

void at_term_size(const at_term *self, int *rows, int *cols)
{
    (void)self;
    getmaxyx(stdscr, *rows, *cols);
}

int at_term_key(at_term *self, int *y, int *x)
{
    wint_t ch;
    int r = wget_wch(stdscr, &ch);
    if (r == ERR)
        return -1;
    if (r == KEY_CODE_YES) {
        switch (ch) {
        case KEY_UP:
            return AT_KEY_UP;
        case KEY_DOWN:
            return AT_KEY_DOWN;
        case KEY_LEFT:
            return AT_KEY_LEFT;
        case KEY_RIGHT:
            return AT_KEY_RIGHT;
        case KEY_PPAGE:
            return AT_KEY_PGUP;
        case KEY_NPAGE:
            return AT_KEY_PGDN;
        case KEY_HOME:
            return AT_KEY_HOME;
        case KEY_END:
            return AT_KEY_END;
        case KEY_ENTER:
            return AT_KEY_ENTER;
        case KEY_BTAB:
            return AT_KEY_BTAB;
        case KEY_BACKSPACE:
            return AT_KEY_BACKSPACE;
        case KEY_RESIZE:
            return AT_KEY_RESIZE;
        case KEY_F(1):
            return AT_KEY_F1;
        case KEY_F(3):
            return AT_KEY_F3;
        case KEY_F(4):
            return AT_KEY_F4;
        case KEY_F(6):
            return AT_KEY_F6;
        case KEY_F(10):
            return AT_KEY_F10;
        case KEY_MOUSE: {
            MEVENT ev;
            if (getmouse(&ev) != OK)
                return -1;
            *y = ev.y;
            *x = ev.x;
            if (ev.bstate & BUTTON4_PRESSED)
                return AT_KEY_WHEEL_UP;
            if (ev.bstate & BUTTON5_PRESSED)
                return AT_KEY_WHEEL_DOWN;
            if (ev.bstate & (BUTTON1_PRESSED | BUTTON1_CLICKED))
                return left_press(self, ev.y, ev.x);
            return -1;
        }
        default:
            return -1;
        }
    }
    switch (ch) {
    case '\r':
    case '\n':
        return AT_KEY_ENTER;
    case 27:
        return AT_KEY_ESC;
    case '\t':
        return AT_KEY_TAB;
    case 127:
    case 8:
        return AT_KEY_BACKSPACE;
    case 12: /* Ctrl-L: redraw everything, as after a resize */
        return AT_KEY_RESIZE;
    default:
        return ch < 0x20 ? -1 : (int)ch;
    }
}

/* Pair number for (fg, bg), allocating it on first use; 0 (default colours) when pairs run
 * out. */
static int pair_for(at_term *t, int fg, int bg)
{
    if (!t->colors || (fg < 0 && bg < 0))
        return 0;
    int *p = &t->pair[(fg + 1) * NCOL + (bg + 1)];
    if (*p)
        return *p;
    if (t->npairs + 1 >= COLOR_PAIRS)
        return 0;
    if (init_extended_pair(t->npairs + 1, fg, bg) != OK)
        return 0;
    *p = ++t->npairs;
    return *p;
}

void at_term_invalidate(at_term *self)
{
    self->shown_rows = self->shown_cols = 0;
    clearok(curscr, TRUE); /* repaint the terminal from scratch, whatever it shows now */
}

static int same_style(at_style a, at_style b)
{
    return a.fg == b.fg && a.bg == b.bg && a.attr == b.attr;
}

static int same_cell(const at_gcell *a, const at_gcell *b)
{
    return a->ch == b->ch && same_style(a->st, b->st);
}

static attr_t attrs_of(at_style st)
{
    attr_t a = A_NORMAL;
    if (st.attr & AT_ATTR_BOLD)
        a |= A_BOLD;
    if (st.attr & AT_ATTR_REVERSE)
        a |= A_REVERSE;
    if (st.attr & AT_ATTR_DIM)
        a |= A_DIM;
    if (st.attr & AT_ATTR_UNDERLINE)
        a |= A_UNDERLINE;
    return a;
}

void at_term_draw(at_term *self, const at_grid *g)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    rows = rows < g->rows ? rows : g->rows;
    cols = cols < g->cols ? cols : g->cols;
    /* Only cells that changed since the last frame are handed to curses, in runs of one style
     * (one call per run instead of per cell); a new size redraws everything. */
    int full = !self->shown || rows != self->shown_rows || cols != self->shown_cols;
    if (full) {
        at_gcell *s = realloc(self->shown, (size_t)rows * (size_t)cols * sizeof(at_gcell));
        if (!s) {
            free(self->shown);
            self->shown = NULL;
            return;
        }
        self->shown = s;
        self->shown_rows = rows;
        self->shown_cols = cols;
    }
    enum { RUN = 256 };
    wchar_t buf[RUN + 1];
    for (int y = 0; y < rows; y++) {
        const at_gcell *row = &g->cells[(size_t)y * (size_t)g->cols];
        at_gcell *old = &self->shown[(size_t)y * (size_t)cols];
        int x = 0;
        while (x < cols) {
            if (!full && same_cell(&row[x], &old[x])) {
                x++;
                continue;
            }
            int x0 = x, n = 0;
            at_style st = row[x].st;
            while (x < cols && n < RUN && same_style(row[x].st, st) &&
                   (full || !same_cell(&row[x], &old[x]))) {
                buf[n++] = (wchar_t)row[x].ch;
                old[x] = row[x];
                x++;
            }
            buf[n] = 0;
            int pair = pair_for(self, st.fg, st.bg);
            wattr_set(stdscr, attrs_of(st), 0, &pair);
            /* ERR at the bottom-right cell is expected (no scrolling); the cell is written */
            mvwaddnwstr(stdscr, y, x0, buf, n);
        }
    }
    wnoutrefresh(stdscr);
    doupdate();
}
