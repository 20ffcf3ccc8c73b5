/* watch_view.c -- the live view driven by the engine (see watch_view.h). */
#include "watch_view.h"

#include <stdio.h>

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

int at_watch_view_run(at_model *model, at_engine *engine, volatile int *interrupted)
{
    at_view *v = at_view_new(model);
    if (!v) {
        fputs("alphatop: out of memory\n", stderr);
        return AT_EXIT_USAGE;
    }
    zmq_pollitem_t items[4];
    at_view_hooks h = {.ud = engine, .interrupted = interrupted};
    if (engine) {
        h.nitems = at_engine_pollitems(engine, items, 4);
        h.items = items;
        h.tick = tick;
        h.action = action;
    } else {
        at_view_set_replay(v, 1);
    }
    int rc = at_view_run(v, &h);
    at_view_free(v);
    if (rc == AT_ERR_IO) {
        fputs("alphatop: the live view needs a terminal on stdin and stdout (and a known "
              "$TERM); use --headless for JSON lines\n",
              stderr);
        return AT_EXIT_USAGE;
    }
    return engine && at_engine_done(engine) ? at_engine_exit_code(engine) : AT_EXIT_OK;
}
