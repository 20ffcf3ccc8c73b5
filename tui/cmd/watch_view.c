/* SPDX-License-Identifier: Apache-2.0 */
/* watch_view.c -- the live view driven by the engine or by a followed log (see watch_view.h). */
#include "watch_view.h"

#include <stdio.h>

#include "clock.h"
#include "commands.h"
#include "layer_picture.h"
#include "view.h"

/* What the view's hooks act on: the engine (watch; NULL in a replay), the followed log (replay
 * --follow), the model and where pictures go (--plot DIR; NULL: the current directory). */
typedef struct viewer {
    at_engine *engine;
    at_replay *log;
    at_model *model;
    const char *plot_dir;
} viewer;

static int tick(void *ud)
{
    viewer *v = ud;
    at_engine_step(v->engine);
    /* Any negative value ends the loop; at_engine_done says why afterwards. */
    return at_engine_done(v->engine) ? AT_ERR_STATE : 0;
}

static int pollitems(void *ud, zmq_pollitem_t *items, int max)
{
    const viewer *v = ud;
    return at_engine_pollitems(v->engine, items, max);
}

static void action(void *ud, const at_view_action *a)
{
    viewer *v = ud;
    switch (a->kind) {
    case AT_VIEW_STOP_RUN:
        if (v->engine)
            at_engine_request_stop(v->engine, a->run, "stop requested by the user in alphatop");
        break;
    case AT_VIEW_PAUSE:
        if (v->engine)
            at_engine_pause(v->engine, a->run, a->paused);
        break;
    case AT_VIEW_PICTURE:
        if (a->reply)
            at_cmd_layer_picture(v->model, a->run, a->layer, a->space, v->plot_dir, a->reply,
                                 a->reply_cap);
        break;
    default:
        break;
    }
}

/* Seconds of records a turn of the loop reads at most: a long log catches up over several
 * frames instead of freezing the keys. */
#define FOLLOW_BUDGET 0.02

static int follow_tick(void *ud)
{
    viewer *f = ud;
    double until = at_clock_mono() + FOLLOW_BUDGET;
    int n;
    while ((n = at_replay_read_model(f->log, f->model, 256)) > 0 && at_clock_mono() < until)
        ;
    return n < 0 ? n : 0;
}

/* The view on model with hooks h until it ends; replay: the slider keys on. Returns
 * AT_EXIT_USAGE when the view cannot start (said on stderr), else what at_view_run returned: 0
 * or the tick's negative status. */
static int run_view(at_model *model, const at_view_hooks *h, int replay)
{
    at_view *v = at_view_new(model);
    if (!v) {
        fputs("alphatop: out of memory\n", stderr);
        return AT_EXIT_USAGE;
    }
    at_view_set_replay(v, replay);
    int rc = at_view_run(v, h);
    at_view_free(v);
    if (rc == AT_ERR_IO) {
        fputs("alphatop: the live view needs a terminal on stdin and stdout (and a known "
              "$TERM); use --headless for JSON lines\n",
              stderr);
        return AT_EXIT_USAGE;
    }
    return rc;
}

int at_watch_view_run(at_model *model, at_engine *engine, const char *plot_dir,
                      volatile int *interrupted)
{
    viewer v = {engine, NULL, model, plot_dir};
    at_view_hooks h = {.ud = &v, .interrupted = interrupted, .action = action};
    if (engine) {
        h.pollitems = pollitems;
        h.tick = tick;
    }
    int rc = run_view(model, &h, !engine);
    if (rc == AT_EXIT_USAGE)
        return rc;
    return engine && at_engine_done(engine) ? at_engine_exit_code(engine) : AT_EXIT_OK;
}

int at_watch_view_follow(at_model *model, at_replay *log, const char *plot_dir,
                         volatile int *interrupted)
{
    viewer f = {NULL, log, model, plot_dir};
    at_monitor_state *st = at_model_state(model);
    st->replay = st->follow = 1;
    at_model_touch(model);
    at_view_hooks h = {.ud = &f, .tick = follow_tick, .action = action, .interrupted = interrupted};
    int rc = run_view(model, &h, 1);
    return rc == AT_EXIT_USAGE ? rc : rc < 0 ? AT_EXIT_PARTIAL : AT_EXIT_OK;
}
