/* SPDX-License-Identifier: Apache-2.0 */
/* view.c -- the view's loop: wait on keys and engine with a frame deadline, draw on change. */
#include "view.h"

#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "render.h"
#include "scheme.h"
#include "term.h"

struct at_view {
    at_model *model;
    at_ui ui;
    at_layout lay;
    at_grid *grid;
    at_render_cache *cache;
};

at_view *at_view_new(at_model *model)
{
    if (!model)
        return NULL;
    at_view *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->model = model;
    at_ui_init(&v->ui);
    v->cache = at_render_cache_new();
    if (!v->cache) {
        free(v);
        return NULL;
    }
    return v;
}

void at_view_free(at_view *self)
{
    if (!self)
        return;
    at_grid_free(self->grid);
    at_render_cache_free(self->cache);
    free(self);
}

void at_view_set_replay(at_view *self, int on)
{
    self->ui.replay = on;
}

void at_view_set_limit_step(at_view *self, int64_t step)
{
    self->ui.limit_step = step < 0 ? -1 : step;
}

/* Most things a hooks' pollitems may give (the engine gives 2). */
#define MAX_POLLITEMS 4

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Lays out, clamps the selection and draws one frame. */
static void frame(at_view *v, at_term *t, const at_scheme *sc, int utf8)
{
    int rows, cols;
    at_term_size(t, &rows, &cols);
    if (!v->grid || v->grid->rows != rows || v->grid->cols != cols) {
        if (!v->grid)
            v->grid = at_grid_new(rows, cols);
        else if (at_grid_resize(v->grid, rows, cols))
            return;
        if (!v->grid)
            return;
    }
    at_render_layout(&v->lay, v->model, &v->ui, rows, cols, utf8 && sc->colors > 0);
    at_ui_clamp(&v->ui, v->model, &v->lay);
    at_render_opts o = {wall_s(), utf8, sc, v->cache};
    at_render(v->grid, v->model, &v->ui, &v->lay, &o);
    at_term_draw(t, v->grid);
}

int at_view_run(at_view *self, const at_view_hooks *hooks)
{
    static const at_view_hooks none = {0};
    const at_view_hooks *h = hooks ? hooks : &none;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return AT_ERR_IO;
    setlocale(LC_CTYPE, "");
    at_term *t = at_term_open(h->term_type, NULL, NULL);
    if (!t)
        return AT_ERR_IO;
    int utf8 = at_term_utf8();
    at_scheme sc;
    at_scheme_init(&sc, at_term_colors(t));

    zmq_pollitem_t items[1 + MAX_POLLITEMS];

    const double frame_ms = 1000.0 / AT_VIEW_FPS;
    double next_frame = 0, last_wall = 0;
    uint64_t drawn_version = 0;
    int dirty = 1, rc = 0, quit = 0;
    /* the layout used for keys before the first frame */
    at_render_layout(&self->lay, self->model, &self->ui, 24, 80, utf8 && sc.colors > 0);
    while (!quit) {
        if (h->interrupted && *h->interrupted)
            break;
        int key, my = 0, mx = 0;
        while (!quit && (key = at_term_key(t, &my, &mx)) != -1) {
            at_action act = at_keymap(key, at_ui_input_mode(&self->ui));
            if (act == AT_ACT_RESIZE)
                at_term_invalidate(t);
            if (act == AT_ACT_CLICK || act == AT_ACT_OPEN) {
                self->ui.mouse_y = my;
                self->ui.mouse_x = mx;
            }
            at_view_action out;
            dirty |= at_ui_apply(&self->ui, self->model, &self->lay, act, key, &out);
            out.reply = self->ui.msg;
            out.reply_cap = sizeof self->ui.msg;
            if (out.kind != AT_VIEW_NOTHING && h->action)
                h->action(h->ud, &out);
            if (out.kind == AT_VIEW_QUIT)
                quit = 1;
        }
        if (quit)
            break;
        if (h->tick && (rc = h->tick(h->ud)) < 0)
            break;
        rc = 0;
        if (at_model_version(self->model) != drawn_version)
            dirty = 1;
        double now = mono_ms(), wall = wall_s();
        if ((long long)wall != (long long)last_wall)
            dirty = 1; /* "last snapshot N s ago" ticks */
        if (dirty && now >= next_frame) {
            drawn_version = at_model_version(self->model);
            last_wall = wall;
            frame(self, t, &sc, utf8);
            dirty = 0;
            next_frame = now + frame_ms;
        }
        double wait = dirty ? next_frame - now : frame_ms / 2;
        items[0] = (zmq_pollitem_t){.fd = STDIN_FILENO, .events = ZMQ_POLLIN};
        int n = 1 + (h->pollitems ? h->pollitems(h->ud, items + 1, MAX_POLLITEMS) : 0);
        /* EINTR (a resize signal) just ends the wait early: KEY_RESIZE follows */
        if (zmq_poll(items, n, wait < 0 ? 0 : (long)wait) < 0 && errno != EINTR)
            usleep(10000);
    }
    at_term_close(t);
    return rc;
}
