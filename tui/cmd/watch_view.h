/* SPDX-License-Identifier: Apache-2.0 */
/* watch_view.h -- the live view (view.h) driven by the engine (`watch`), a whole log (`replay`)
 * or a log as it grows (`replay --follow`). */
#ifndef ALPHATOP_WATCH_VIEW_H
#define ALPHATOP_WATCH_VIEW_H

#include "engine.h"
#include "model.h"
#include "replay.h"

/* Runs the terminal view on model until the user quits, *interrupted becomes non-zero, or the
 * engine finishes (a --stop-on rule fired and the trainer acknowledged). engine NULL: replay
 * (the model is complete; the slider keys are on). The `e` key writes the selected layer's
 * picture into plot_dir (NULL: the current directory; layer_picture.h). Restores the terminal
 * on every path. Returns the exit code (commands.h). */
int at_watch_view_run(at_model *model, at_engine *engine, const char *plot_dir,
                      volatile int *interrupted);

/* Runs the view of a log still being written (replay --follow): every turn of the loop reads
 * what was appended to log (borrowed) into model, which at_replay_read_model fills and this
 * marks a followed replay (at_monitor_state: replay, follow); the slider keys are on, and at
 * its end (the start) the view follows the newest snapshot. Until the user quits or
 * *interrupted becomes non-zero. Returns the exit code: AT_EXIT_PARTIAL when reading the log
 * failed. */
int at_watch_view_follow(at_model *model, at_replay *log, const char *plot_dir,
                         volatile int *interrupted);

#endif
