/* SPDX-License-Identifier: Apache-2.0 */
/* watch_view.c -- the live view driven by the engine or by a followed log (see watch_view.h). */
#include "watch_view.h"

#include <stdio.h>

#include "clock.h"
#include "commands.h"
#include "view.h"

static int tick(void *ud)
{
    at_engine *engine = ud;
    at_engine_step(engine);
    /* Any negative value ends the loop; at_engine_done says why afterwards. */
    return at_engine_done(engine) ? AT_ERR_STATE : 0;
}

static void action(void *ud, const at_view_action *a)
{
    at_engine *engine = ud;
    switch (a->kind) {
    case AT_VIEW_STOP_RUN:
        at_engine_request_stop(engine, a->run, "stop requested by the user in alphatop");
        break;
    case AT_VIEW_PAUSE:
        at_engine_pause(engine, a->run, a->paused);
        break;
    default:
        break;
    }
}

/* A followed log and the model its records go into. */
typedef struct follower {
    at_replay *log;
    at_model *model;
} follower;

/* Seconds of records a turn of the loop reads at most: a long log catches up over several
 * frames instead of freezing the keys. */
#define FOLLOW_BUDGET 0.02

static int follow_tick(void *ud)
{
    follower *f = ud;
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

int at_watch_view_run(at_model *model, at_engine *engine, volatile int *interrupted)
{
    zmq_pollitem_t items[4];
    at_view_hooks h = {.ud = engine, .interrupted = interrupted};
    if (engine) {
        h.nitems = at_engine_pollitems(engine, items, 4);
        h.items = items;
        h.tick = tick;
        h.action = action;
    }
    int rc = run_view(model, &h, !engine);
    if (rc == AT_EXIT_USAGE)
        return rc;
    return engine && at_engine_done(engine) ? at_engine_exit_code(engine) : AT_EXIT_OK;
}

int at_watch_view_follow(at_model *model, at_replay *log, volatile int *interrupted)
{
    follower f = {log, model};
    at_monitor_state *st = at_model_state(model);
    st->replay = st->follow = 1;
    at_model_touch(model);
    at_view_hooks h = {.ud = &f, .tick = follow_tick, .interrupted = interrupted};
    int rc = run_view(model, &h, 1);
    return rc == AT_EXIT_USAGE ? rc : rc < 0 ? AT_EXIT_PARTIAL : AT_EXIT_OK;
}
