/* watch_view.h -- the live view (view.h) driven by the engine, for `watch` and `replay`. */
#ifndef ALPHATOP_WATCH_VIEW_H
#define ALPHATOP_WATCH_VIEW_H

#include "engine.h"
#include "model.h"

/* Runs the terminal view on model until the user quits, *interrupted becomes non-zero, or the
 * engine finishes (a --stop-on rule fired and the trainer acknowledged). engine NULL: replay
 * (the model is complete; the slider keys are on). Restores the terminal on every path.
 * Returns the exit code (commands.h). */
int at_watch_view_run(at_model *model, at_engine *engine, volatile int *interrupted);

#endif
