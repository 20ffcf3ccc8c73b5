/* SPDX-License-Identifier: Apache-2.0 */
/* view_driver.c -- runs the monitor's view for real on a seeded synthetic model, for the
 * tmux end-to-end test (and for looking at the view without a trainer).
 *
 * Usage: view_driver [--layers N] [--snapshots S] [--runs R] [--seed X] [--live MS [--max M]]
 *                    [--actions FILE] [--replay] [--transformer | --modular] [--collapse]
 *                    [--model CLASS] [--blocks]
 *        view_driver --print ROWSxCOLS [--colors 0|8|256] [--ascii] [--screen S] ...
 * --transformer names the layers like a Llama model, --modular like examples/torch_modular.py's
 * one-layer transformer (always 8 layers), --blocks prints the block view (b), --collapse
 * tells core's tracker the story
 * of a generalization collapse (synth.h), --model gives every run that model class.
 * --live MS adds a snapshot every MS milliseconds (up to M in all, default 2 S); --actions
 * appends every action the view reports (quit, stop, pause, select) as a line to FILE;
 * --print renders one frame into a grid and prints it as text, without a terminal.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "render.h"
#include "synth.h"
#include "view.h"

typedef struct driver {
    at_model *m;
    int live_ms, snaps, max_snaps;
    double next;
    uint64_t seed;
    FILE *actions;
    at_phase_tracker **trk; /* one per run: its phase events reach the model as live */
    at_synth_opts so;
} driver;

static volatile int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Adds snapshot k of run (wall time t) and the phase changes it brings. */
static int add_snapshot(driver *d, int run, int k, double t)
{
    int rc = at_synth_snapshot_opts(d->m, run, k, t, 1, d->seed + (uint64_t)run, &d->so);
    return rc < 0 ? rc : at_synth_track(d->m, run, k, d->trk[run]);
}

static int tick(void *ud)
{
    driver *d = ud;
    if (d->live_ms <= 0 || d->snaps >= d->max_snaps || now_ms() < d->next)
        return 0;
    d->next = now_ms() + d->live_ms;
    for (int r = 0; r < at_model_num_runs(d->m); r++)
        if (add_snapshot(d, r, d->snaps, (double)time(NULL)) < 0)
            return -1;
    d->snaps++;
    return 0;
}

static void action(void *ud, const at_view_action *a)
{
    driver *d = ud;
    static const char *const names[] = {"nothing", "quit", "stop", "pause", "select"};
    if (d->actions) {
        fprintf(d->actions, "%s run=%d paused=%d\n", names[a->kind], a->run, a->paused);
        fflush(d->actions);
    }
    if (a->kind == AT_VIEW_PAUSE) {
        at_model_run(d->m, a->run)->paused = a->paused;
        at_model_touch(d->m);
    }
    if (a->kind == AT_VIEW_STOP_RUN) {
        at_model_run(d->m, a->run)->stop_requested = 1;
        at_model_touch(d->m);
    }
}

static int print_frame(at_model *m, int rows, int cols, int colors, int utf8, const char *screen,
                       int replay, int blocks)
{
    at_scheme sc;
    at_scheme_init(&sc, colors);
    at_ui ui;
    at_ui_init(&ui);
    ui.replay = replay;
    ui.blocks = blocks;
    if (screen && !strcmp(screen, "detail"))
        ui.screen = AT_SCREEN_DETAIL;
    else if (screen && !strcmp(screen, "help"))
        ui.screen = AT_SCREEN_HELP;
    else if (screen && !strcmp(screen, "runs"))
        ui.screen = AT_SCREEN_RUNS;
    at_layout lay;
    at_render_layout(&lay, m, &ui, rows, cols, utf8 && colors > 0);
    at_ui_clamp(&ui, m, &lay);
    at_grid *g = at_grid_new(rows, cols);
    if (!g)
        return 1;
    const at_run_info *ri = at_model_run(m, 0);
    at_render_opts o = {ri ? ri->last_snapshot_time + 3 : 0, utf8, &sc, NULL};
    at_render(g, m, &ui, &lay, &o);
    at_grid_dump(g, stdout);
    at_grid_free(g);
    return 0;
}

int main(int argc, char **argv)
{
    int layers = 24, snaps = 40, runs = 1, colors = 256, utf8 = 1, rows = 0, cols = 0, replay = 0;
    int blocks = 0;
    const char *screen = NULL, *actions = NULL;
    driver d = {0};
    d.seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--layers") && v)
            layers = atoi(argv[++i]);
        else if (!strcmp(a, "--snapshots") && v)
            snaps = atoi(argv[++i]);
        else if (!strcmp(a, "--runs") && v)
            runs = atoi(argv[++i]);
        else if (!strcmp(a, "--seed") && v)
            d.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--live") && v)
            d.live_ms = atoi(argv[++i]);
        else if (!strcmp(a, "--max") && v)
            d.max_snaps = atoi(argv[++i]);
        else if (!strcmp(a, "--actions") && v)
            actions = argv[++i];
        else if (!strcmp(a, "--replay"))
            replay = 1;
        else if (!strcmp(a, "--transformer"))
            d.so.transformer = 1;
        else if (!strcmp(a, "--modular"))
            d.so.transformer = AT_SYNTH_MODULAR;
        else if (!strcmp(a, "--blocks"))
            blocks = 1;
        else if (!strcmp(a, "--collapse"))
            d.so.collapse = 1;
        else if (!strcmp(a, "--model") && v)
            d.so.model = argv[++i];
        else if (!strcmp(a, "--print") && v && sscanf(argv[++i], "%dx%d", &rows, &cols) == 2)
            ;
        else if (!strcmp(a, "--colors") && v)
            colors = atoi(argv[++i]);
        else if (!strcmp(a, "--ascii"))
            utf8 = 0;
        else if (!strcmp(a, "--screen") && v)
            screen = argv[++i];
        else {
            fprintf(stderr, "view_driver: bad argument '%s' (see the source's header)\n", a);
            return 2;
        }
    }
    if (d.so.transformer == AT_SYNTH_MODULAR)
        layers = AT_SYNTH_MODULAR_LAYERS;
    d.m = at_model_new();
    d.trk = calloc((size_t)(runs > 0 ? runs : 1), sizeof *d.trk);
    if (!d.m || !d.trk)
        return 1;
    double t0 = rows ? 1.7e9 : (double)time(NULL);
    for (int r = 0; r < runs; r++) {
        char id[32];
        snprintf(id, sizeof id, "synthetic-%d", r + 1);
        int run = at_synth_run_opts(d.m, id, layers, &d.so);
        d.trk[r] = at_phase_tracker_new(NULL);
        if (!d.trk[r])
            run = -1;
        for (int k = 0; run >= 0 && k < snaps; k++)
            if (add_snapshot(&d, run, k, t0) < 0)
                run = -1;
        if (run < 0) {
            fprintf(stderr, "view_driver: out of memory\n");
            return 1;
        }
    }
    d.snaps = snaps;
    if (d.max_snaps <= 0)
        d.max_snaps = 2 * snaps;
    at_monitor_state *st = at_model_state(d.m);
    st->layers_done = layers;
    st->fast = 1;
    st->replay = replay;
    int rc;
    if (rows > 0) {
        rc = print_frame(d.m, rows, cols, colors, utf8, screen, replay, blocks);
    } else {
        if (actions && !(d.actions = fopen(actions, "a"))) {
            perror(actions);
            return 1;
        }
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        at_view *v = at_view_new(d.m);
        at_view_set_replay(v, replay);
        at_view_hooks h = {.ud = &d, .tick = tick, .action = action, .interrupted = &interrupted};
        rc = at_view_run(v, &h);
        at_view_free(v);
        if (d.actions)
            fclose(d.actions);
        if (rc < 0)
            fprintf(stderr, "view_driver: %s\n", at_strerror(rc));
        rc = rc < 0;
    }
    for (int r = 0; r < runs; r++)
        at_phase_tracker_free(d.trk[r]);
    free(d.trk);
    at_model_free(d.m);
    return rc;
}
