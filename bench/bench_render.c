/* SPDX-License-Identifier: Apache-2.0 */
/* bench_render.c -- time to draw one frame of the monitor for 1,000 layers x 1,000 snapshots
 * (goal: <= 5 ms), split into layout + render to the cell grid and grid -> curses (a newterm
 * writing to /dev/null), and the memory kept per layer-snapshot.
 *
 * Usage: bench_render [LAYERS SNAPSHOTS [ROWS COLS]]   (default 1000 1000 60 200)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "render.h"
#include "synth.h"
#include "term.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Resident set size in bytes (Linux /proc). */
static double rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

int main(int argc, char **argv)
{
    int layers = argc > 2 ? atoi(argv[1]) : 1000, snaps = argc > 2 ? atoi(argv[2]) : 1000;
    int rows = argc > 4 ? atoi(argv[3]) : 60, cols = argc > 4 ? atoi(argv[4]) : 200;
    double rss0 = rss_bytes(), t0 = now_ms();
    at_model *m = at_model_new();
    int run = m ? at_synth_run(m, "bench", layers) : -1;
    for (int k = 0; run >= 0 && k < snaps; k++)
        if (at_synth_snapshot(m, run, k, 1.7e9, k == snaps - 1, 1) < 0)
            run = -1;
    if (run < 0) {
        fprintf(stderr, "bench_render: out of memory\n");
        return 1;
    }
    double fill_ms = now_ms() - t0, rss1 = rss_bytes();
    double cells = (double)layers * snaps;
    printf("model: %d layers x %d snapshots filled in %.0f ms\n", layers, snaps, fill_ms);
    printf("memory per layer-snapshot: %zu bytes in the cell array; %.1f bytes of RSS growth "
           "(cells, scalars, events, last spectra)\n",
           at_model_cell_bytes(), (rss1 - rss0) / cells);

    at_scheme sc;
    at_scheme_init(&sc, 256);
    at_grid *g = at_grid_new(rows, cols), *g2 = at_grid_new(rows, cols);
    at_ui ui;
    at_ui_init(&ui);
    ui.sel = layers / 2;
    at_render_cache *cache = at_render_cache_new();
    at_render_opts o = {1.7e9 + 3, 1, &sc, cache};
    enum { FRAMES = 100 };
    /* alpha (fixed scale) and log_norm (sequential: a range pass first) */
    double render_ms[2];
    for (int pass = 0; pass < 2; pass++) {
        ui.metric = pass ? AT_METRIC_LOG_NORM : AT_METRIC_ALPHA;
        double t1 = now_ms();
        for (int f = 0; f < FRAMES; f++) {
            at_layout lay;
            at_render_layout(&lay, m, &ui, rows, cols, 1);
            at_ui_clamp(&ui, m, &lay);
            at_render(pass ? g2 : g, m, &ui, &lay, &o);
        }
        render_ms[pass] = (now_ms() - t1) / FRAMES;
    }
    printf("layout + render to grid %dx%d: alpha %.3f ms, log_norm %.3f ms\n", rows, cols,
           render_ms[0], render_ms[1]);

    /* grid -> curses on a terminal that writes to /dev/null, sized by LINES/COLUMNS */
    char lines[16], columns[16];
    snprintf(lines, sizeof lines, "%d", rows);
    snprintf(columns, sizeof columns, "%d", cols);
    setenv("LINES", lines, 1);
    setenv("COLUMNS", columns, 1);
    FILE *out = fopen("/dev/null", "w"), *in = fopen("/dev/null", "r");
    at_term *t = out && in ? at_term_open("xterm-256color", out, in) : NULL;
    if (!t) {
        fprintf(stderr, "bench_render: no curses terminal on /dev/null\n");
        return 1;
    }
    /* worst case: every heat cell changes (switching metric) */
    double t2 = now_ms();
    for (int f = 0; f < FRAMES; f++)
        at_term_draw(t, f % 2 ? g2 : g);
    double switch_ms = (now_ms() - t2) / FRAMES;
    /* live case: one new snapshot arrives, the frame is laid out, rendered and drawn */
    ui.metric = AT_METRIC_ALPHA;
    double live_render = 0, live_draw = 0;
    for (int f = 0; f < FRAMES; f++) {
        at_synth_snapshot(m, run, snaps + f, 1.7e9, 0, 1);
        double t3 = now_ms();
        at_layout lay;
        at_render_layout(&lay, m, &ui, rows, cols, 1);
        at_ui_clamp(&ui, m, &lay);
        at_render(g, m, &ui, &lay, &o);
        double t4 = now_ms();
        at_term_draw(t, g);
        live_render += t4 - t3;
        live_draw += now_ms() - t4;
    }
    at_term_close(t);
    fclose(out);
    fclose(in);
    printf("grid -> curses: every heat cell changed %.3f ms; after one new snapshot %.3f ms\n",
           switch_ms, live_draw / FRAMES);
    double live = (live_render + live_draw) / FRAMES, worst = render_ms[1] + switch_ms;
    printf("frame total, live (new snapshot): %.3f ms = %.2fx the 5 ms goal\n", live, live / 5.0);
    printf("frame total, metric switch (all cells change): %.3f ms = %.2fx the 5 ms goal\n", worst,
           worst / 5.0);
    at_grid_free(g2);
    at_render_cache_free(cache);
    at_grid_free(g);
    at_model_free(m);
    return 0;
}
