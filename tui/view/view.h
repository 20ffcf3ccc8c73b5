/* SPDX-License-Identifier: Apache-2.0 */
/* view.h -- the monitor's interactive terminal view and its loop.
 *
 * The view shows an at_model (model.h) that the engine fills. The loop is one thread: it
 * waits (zmq_poll) on the keyboard and the engine's sockets/fds with a frame deadline, reads
 * keys without blocking, calls the engine's tick between frames, and redraws only when
 * something changed, at most AT_VIEW_FPS times a second. Resizes (ncurses' KEY_RESIZE) and
 * EINTR are handled; the terminal is restored on every way out of at_view_run.
 *
 * Typical use (engine side):
 *     at_view *v = at_view_new(model);
 *     at_view_hooks h = {.ud = eng, .pollitems = eng_pollitems, .tick = eng_tick,
 *                        .action = eng_action, .interrupted = &got_sigint};
 *     int rc = at_view_run(v, &h);     // returns when the user quits
 *     at_view_free(v);
 *
 * Only term.c (and view.c) touch curses; everything the loop draws comes from render.h.
 */
#ifndef ALPHATOP_VIEW_H
#define ALPHATOP_VIEW_H

#include <stdint.h>
#include <zmq.h>

#include "model.h"
#include "ui.h"

enum { AT_VIEW_FPS = 15 };

typedef struct at_view_hooks {
    void *ud; /* passed back to the callbacks */
    /* Fills items (at most max) with what to wait on besides the keyboard, ZeroMQ sockets
     * (socket != NULL) or plain fds, and returns how many; asked on every loop turn, as the
     * set changes (an engine whose analysis queue is full leaves its socket out, or the loop
     * would wake at once, again and again, while it does not read). NULL: the keyboard only. */
    int (*pollitems)(void *ud, zmq_pollitem_t *items, int max);
    /* Called on every loop turn (input ready or at least every 1000 / (2 * AT_VIEW_FPS) ms):
     * receive, collect worker results, update the model. Return 0 to go on, or a negative value
     * to end the loop (at_view_run returns it). May be NULL. */
    int (*tick)(void *ud);
    /* The user did something the engine must act on: quit, stop a run (confirmed), pause or
     * resume analysis, select a run, save a layer's picture (say what was done in a->reply).
     * Called on the loop's thread. May be NULL. */
    void (*action)(void *ud, const at_view_action *a);
    /* When non-NULL and it becomes non-zero (e.g. set by a SIGINT/SIGTERM handler), the loop
     * ends and at_view_run returns 0. */
    volatile int *interrupted;
    /* When non-NULL, the terminal type to use instead of $TERM. */
    const char *term_type;
} at_view_hooks;

typedef struct at_view at_view;

/* New view of model (borrowed: it must outlive the view). Caller owns return value (free with
 * at_view_free); NULL if out of memory. */
at_view *at_view_new(at_model *model);

/* Frees the view (not the model). NULL-safe. */
void at_view_free(at_view *self);

/* Replay mode: the slider keys (< > , .) move the last step shown; the header says REPLAY. */
void at_view_set_replay(at_view *self, int on);

/* Shows only snapshots with step <= step (-1: all): where the replay slider starts. */
void at_view_set_limit_step(at_view *self, int64_t step);

/* Runs the loop until the user quits (returns 0), *interrupted becomes non-zero (0), tick
 * returns a negative value (that value), or the terminal cannot be set up (AT_ERR_IO: stdin or
 * stdout is not a terminal, or $TERM is unknown). The terminal is restored before returning. */
int at_view_run(at_view *self, const at_view_hooks *hooks);

#endif
