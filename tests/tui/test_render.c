/* SPDX-License-Identifier: Apache-2.0 */
/* test_render.c -- the screens rendered into a grid, compared with golden text files in
 * tests/data/golden (AT_UPDATE_GOLDEN=1 rewrites them), plus the colours of chosen cells and
 * the bucket rule of compressed columns. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blocks.h"
#include "render.h"
#include "synth.h"
#include "verdict.h"

static const double T0 = 1.7e9; /* wall time of the synthetic snapshots */

/* Adds run id to m (o: its story; NULL the default) with snaps snapshots fed to core's tracker
 * as live. Returns the run index. */
static int add_run(at_model *m, const char *id, int layers, int snaps, const at_synth_opts *o)
{
    int r = at_synth_run_opts(m, id, layers, o);
    assert_true(r >= 0);
    at_phase_tracker *t = at_phase_tracker_new(NULL);
    assert_non_null(t);
    for (int k = 0; k < snaps; k++) {
        assert_int_equal(at_synth_snapshot_opts(m, r, k, T0, 1, 42, o), AT_OK);
        assert_int_equal(at_synth_track(m, r, k, t), AT_OK);
    }
    at_phase_tracker_free(t);
    at_monitor_state *st = at_model_state(m);
    st->layers_done = layers;
    st->fast = 1;
    return r;
}

static at_model *synthetic_opts(int layers, int snaps, const at_synth_opts *o)
{
    at_model *m = at_model_new();
    assert_non_null(m);
    add_run(m, "synthetic-1", layers, snaps, o);
    return m;
}

static at_model *synthetic(int layers, int snaps)
{
    return synthetic_opts(layers, snaps, NULL);
}

/* Renders ui's screen at rows x cols; returns the grid (caller frees). */
static at_grid *render(const at_model *m, at_ui *ui, int rows, int cols, int colors, int utf8)
{
    at_scheme sc;
    at_scheme_init(&sc, colors);
    at_layout lay;
    at_render_layout(&lay, m, ui, rows, cols, utf8 && colors > 0);
    at_ui_clamp(ui, m, &lay);
    at_grid *g = at_grid_new(rows, cols);
    assert_non_null(g);
    at_render_opts o = {T0 + 3, utf8, &sc, NULL};
    at_render(g, m, ui, &lay, &o);
    return g;
}

static void golden(const at_grid *g, const char *name)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    at_grid_dump(g, f);
    fclose(f);
    char path[512];
    snprintf(path, sizeof path, "%s/golden/%s", AT_DATA_DIR, name);
    if (getenv("AT_UPDATE_GOLDEN")) {
        FILE *out = fopen(path, "w");
        assert_non_null(out);
        fwrite(text, 1, len, out);
        fclose(out);
    }
    FILE *in = fopen(path, "r");
    if (!in)
        fail_msg("missing golden file %s (AT_UPDATE_GOLDEN=1 writes it)", path);
    char *want = calloc(1, len + 2);
    size_t got = fread(want, 1, len + 1, in);
    fclose(in);
    if (got != len || memcmp(want, text, len)) {
        fprintf(stderr, "--- rendered %s:\n%s", name, text);
        fail_msg("%s differs from the golden file", name);
    }
    free(want);
    free(text);
}

static void test_main_256(void **state)
{
    (void)state;
    at_model *m = synthetic(24, 40);
    at_ui ui;
    at_ui_init(&ui);
    ui.sel = 2;
    at_grid *g = render(m, &ui, 32, 120, 256, 1);
    golden(g, "main_120x32.txt");

    at_layout lay;
    at_render_layout(&lay, m, &ui, 32, 120, 1);
    assert_int_equal(lay.layers_per_row, 1);
    /* the newest cell of each layer carries its alpha's colour */
    at_scheme sc;
    at_scheme_init(&sc, 256);
    for (int l = 0; l < 24; l++) {
        const at_gcell *c = at_grid_at(g, lay.heat.y + l, lay.heat.x + 39);
        const at_cell *cell = at_model_cell(m, 0, l, AT_SPACE_W, 39);
        assert_int_equal(c->ch, 0x2588);
        int k = at_scale_level(AT_SCALE_ALPHA, cell->v[AT_METRIC_ALPHA], 0, 0);
        assert_int_equal(c->st.fg, at_scheme_level_color(&sc, AT_SCALE_ALPHA, k));
    }
    /* a failed fit (layer 5, snapshot 7) is drawn in the missing style */
    const at_gcell *miss = at_grid_at(g, lay.heat.y + 5, lay.heat.x + 7);
    assert_int_equal(miss->ch, 0x2591);
    assert_int_equal(miss->st.fg, at_scheme_missing_color(&sc));
    /* the selected layer's name is highlighted */
    assert_true(at_grid_at(g, lay.names.y + 2, 0)->st.attr & AT_ATTR_REVERSE);
    at_grid_free(g);
    at_model_free(m);
}

static void test_main_half_blocks(void **state)
{
    (void)state;
    at_model *m = synthetic(24, 40);
    at_ui ui;
    at_ui_init(&ui);
    at_grid *g = render(m, &ui, 20, 90, 256, 1);
    golden(g, "main_half_90x20.txt");
    at_layout lay;
    at_render_layout(&lay, m, &ui, 20, 90, 1);
    assert_int_equal(lay.layers_per_row, 2);
    /* upper half = layer 0 (fg), lower half = layer 1 (bg) */
    at_scheme sc;
    at_scheme_init(&sc, 256);
    const at_gcell *c = at_grid_at(g, lay.heat.y, lay.heat.x + 39);
    assert_int_equal(c->ch, 0x2580);
    for (int l = 0; l < 2; l++) {
        double a = at_model_cell(m, 0, l, AT_SPACE_W, 39)->v[AT_METRIC_ALPHA];
        int want =
            at_scheme_level_color(&sc, AT_SCALE_ALPHA, at_scale_level(AT_SCALE_ALPHA, a, 0, 0));
        assert_int_equal(l ? c->st.bg : c->st.fg, want);
    }
    at_grid_free(g);
    at_model_free(m);
}

static void test_ascii_mono(void **state)
{
    (void)state;
    at_model *m = synthetic(8, 120); /* more snapshots than columns: compressed */
    at_ui ui;
    at_ui_init(&ui);
    ui.metric = AT_METRIC_TRAPS;
    at_grid *g = render(m, &ui, 24, 80, 0, 0);
    golden(g, "main_ascii_80x24.txt");
    for (int y = 0; y < g->rows; y++)
        for (int x = 0; x < g->cols; x++)
            assert_true(at_grid_at(g, y, x)->ch < 0x80);
    at_grid_free(g);
    at_model_free(m);
}

static void test_other_screens(void **state)
{
    (void)state;
    at_model *m = synthetic(12, 30);
    at_ui ui;
    at_ui_init(&ui);
    ui.sel = 2;
    ui.screen = AT_SCREEN_DETAIL;
    at_grid *g = render(m, &ui, 30, 100, 256, 1);
    golden(g, "detail_100x30.txt");
    at_grid_free(g);
    ui.screen = AT_SCREEN_HELP;
    g = render(m, &ui, 30, 100, 256, 1);
    golden(g, "help_100x30.txt");
    at_grid_free(g);
    int r = at_synth_run(m, "synthetic-2", 3);
    at_synth_snapshot(m, r, 0, T0, 0, 1);
    ui.screen = AT_SCREEN_RUNS;
    ui.run_cursor = 1;
    g = render(m, &ui, 16, 100, 8, 1);
    golden(g, "runs_100x16.txt");
    at_grid_free(g);
    ui.screen = AT_SCREEN_CONFIRM;
    g = render(m, &ui, 24, 80, 256, 1);
    golden(g, "confirm_80x24.txt");
    at_grid_free(g);
    g = render(m, &ui, 10, 40, 256, 1);
    golden(g, "too_small_40x10.txt");
    at_grid_free(g);
    at_model_free(m);

    /* an empty model says it is waiting; monitor events without a step are listed plainly */
    m = at_model_new();
    at_model_add_event(m, -1, -1, -1, AT_EVENT_INFO, "listening on ipc:///tmp/alphatop.ipc");
    at_ui_init(&ui);
    g = render(m, &ui, 24, 80, 256, 1);
    golden(g, "empty_80x24.txt");
    at_grid_free(g);
    at_model_free(m);
}

static void test_bucket_rule(void **state)
{
    (void)state;
    at_model *m = at_model_new();
    int r = at_model_add_run(m, "r", NULL, NULL);
    at_model_add_layer(m, r, "a", AT_KIND_LINEAR, 0, NULL);
    const double alphas[] = {3.0, 7.5, 1.8, 4.0, NAN};
    const int traps[] = {0, 4, 2, 1, 0};
    for (int k = 0; k < 5; k++) {
        at_metrics x;
        memset(&x, 0, sizeof x);
        x.status = isnan(alphas[k]) ? AT_FIT_FAILED : AT_FIT_SUCCESS;
        x.alpha = alphas[k];
        x.log_norm = k;
        x.num_traps = traps[k];
        at_model_add_cell(m, r, 0, AT_SPACE_W, k, &x);
    }
    at_model_add_snapshot(m, r, 10, 0); /* no results */
    double v;
    /* worst alpha: 7.5 is 1.5 outside the band, 1.8 only 0.2 */
    assert_int_equal(at_render_bucket(m, r, 0, AT_SPACE_W, AT_METRIC_ALPHA, 0, 4, &v), 1);
    assert_float_equal(v, 7.5, 1e-6);
    /* all healthy: the latest */
    assert_int_equal(at_render_bucket(m, r, 0, AT_SPACE_W, AT_METRIC_ALPHA, 0, 1, &v), 1);
    assert_float_equal(v, 3.0, 1e-6);
    assert_int_equal(at_render_bucket(m, r, 0, AT_SPACE_W, AT_METRIC_TRAPS, 0, 5, &v), 1);
    assert_float_equal(v, 4.0, 0);
    assert_int_equal(at_render_bucket(m, r, 0, AT_SPACE_W, AT_METRIC_LOG_NORM, 0, 5, &v), 1);
    assert_float_equal(v, 3.0, 0); /* latest successful fit */
    assert_int_equal(at_render_bucket(m, r, 0, AT_SPACE_W, AT_METRIC_ALPHA, 4, 5, &v), -1);
    assert_int_equal(at_render_bucket(m, r, 0, AT_SPACE_W, AT_METRIC_ALPHA, 5, 6, &v), 0);
    at_model_free(m);
}

static int same_grid(const at_grid *a, const at_grid *b)
{
    for (int y = 0; y < a->rows; y++)
        for (int x = 0; x < a->cols; x++) {
            const at_gcell *p = at_grid_at(a, y, x), *q = at_grid_at(b, y, x);
            if (p->ch != q->ch || p->st.fg != q->st.fg || p->st.bg != q->st.bg)
                return 0;
        }
    return 1;
}

/* Frames drawn through the bucket cache equal frames drawn without it, as snapshots arrive
 * and old cells change. */
static void test_cache(void **state)
{
    (void)state;
    at_model *m = synthetic(6, 150);
    at_scheme sc;
    at_scheme_init(&sc, 256);
    at_render_cache *cache = at_render_cache_new();
    at_grid *a = at_grid_new(24, 80), *b = at_grid_new(24, 80);
    at_ui ui;
    at_ui_init(&ui);
    at_layout lay;
    for (int round = 0; round < 6; round++) {
        if (round == 2)
            at_synth_snapshot(m, 0, 150, T0, 0, 42);
        if (round == 3) { /* a late result for an old snapshot: that bucket must change */
            at_metrics x;
            memset(&x, 0, sizeof x);
            x.status = AT_FIT_SUCCESS;
            x.alpha = 0.5;
            at_model_add_cell(m, 0, 1, AT_SPACE_W, 500, &x);
        }
        if (round == 4)
            ui.metric = AT_METRIC_TRAPS;
        if (round == 5)
            ui.back = 7;
        at_render_layout(&lay, m, &ui, 24, 80, 1);
        at_ui_clamp(&ui, m, &lay);
        at_render_opts with = {T0 + 3, 1, &sc, cache}, without = {T0 + 3, 1, &sc, NULL};
        at_render(a, m, &ui, &lay, &with);
        at_render(b, m, &ui, &lay, &without);
        assert_true(same_grid(a, b));
        if (round == 3) { /* the bucket holding step 500 (column 4) shows the burnt cell */
            const at_gcell *c = at_grid_at(a, lay.heat.y + 1, lay.heat.x);
            assert_int_equal(c->st.fg, at_scheme_level_color(&sc, AT_SCALE_ALPHA, 0));
        }
    }
    /* the block view's sparklines read the same cache (its buckets are other spans) */
    at_ui_init(&ui);
    ui.blocks = 1;
    for (int round = 0; round < 3; round++) {
        if (round == 1)
            at_synth_snapshot(m, 0, 151, T0, 0, 42);
        if (round == 2) {
            at_metrics x;
            memset(&x, 0, sizeof x);
            x.status = AT_FIT_SUCCESS;
            x.alpha = 9.5;
            at_model_add_cell(m, 0, 2, AT_SPACE_W, 700, &x);
        }
        at_render_layout(&lay, m, &ui, 24, 80, 1);
        assert_true(lay.blocks);
        at_ui_clamp(&ui, m, &lay);
        at_render_opts with = {T0 + 3, 1, &sc, cache}, without = {T0 + 3, 1, &sc, NULL};
        at_render(a, m, &ui, &lay, &with);
        at_render(b, m, &ui, &lay, &without);
        assert_true(same_grid(a, b));
    }
    at_grid_free(a);
    at_grid_free(b);
    at_render_cache_free(cache);
    at_model_free(m);
}

/* Row y of the grid as UTF-8 text (buf: cap bytes). */
static const char *row_text(const at_grid *g, int y, char *buf, size_t cap)
{
    size_t n = 0;
    for (int x = 0; x < g->cols && n + 5 < cap; x++)
        n += (size_t)at_utf8_encode(at_grid_at(g, y, x)->ch, buf + n);
    buf[n] = 0;
    return buf;
}

static void test_replay_and_delta(void **state)
{
    (void)state;
    at_model *m = synthetic(4, 30);
    at_ui ui;
    at_ui_init(&ui);
    ui.replay = 1;
    ui.limit_step = 1000; /* the 10th snapshot */
    at_grid *g = render(m, &ui, 24, 80, 256, 1);
    char buf[1024];
    assert_non_null(strstr(row_text(g, 2, buf, sizeof buf), "REPLAY to step 1000 of 3000"));
    at_layout lay;
    at_render_layout(&lay, m, &ui, 24, 80, 1);
    assert_int_equal(at_grid_at(g, lay.heat.y, lay.heat.x + 9)->ch, 0x2588);
    assert_int_equal(at_grid_at(g, lay.heat.y, lay.heat.x + 10)->ch, ' ');
    at_grid_free(g);

    /* delta results: the toggle shows them, titled as such, with their own colours */
    at_metrics x;
    memset(&x, 0, sizeof x);
    x.status = AT_FIT_SUCCESS;
    x.alpha = 9.0; /* raw */
    for (int k = 0; k < 30; k++)
        at_model_add_cell(m, 0, 0, AT_SPACE_DELTA, 100 * (k + 1), &x);
    ui.replay = 0;
    ui.limit_step = -1;
    at_layout lay2;
    at_render_layout(&lay2, m, &ui, 24, 80, 1);
    at_view_action out;
    at_ui_apply(&ui, m, &lay2, at_keymap('d', AT_INPUT_NORMAL), 'd', &out);
    assert_int_equal(ui.space, AT_SPACE_DELTA);
    g = render(m, &ui, 24, 80, 256, 1);
    assert_non_null(strstr(row_text(g, lay2.titles.y, buf, sizeof buf), "alpha of W-W_base"));
    at_scheme sc;
    at_scheme_init(&sc, 256);
    int raw = at_scale_level(AT_SCALE_ALPHA, 9.0, 0, 0);
    assert_int_equal(at_grid_at(g, lay2.heat.y, lay2.heat.x + 29)->st.fg,
                     at_scheme_level_color(&sc, AT_SCALE_ALPHA, raw));
    assert_int_equal(at_grid_at(g, lay2.heat.y + 1, lay2.heat.x)->ch, ' '); /* no delta result */
    at_grid_free(g);
    at_model_free(m);
}

/* Number of rows of g that contain needle. */
static int count_rows(const at_grid *g, const char *needle)
{
    char buf[1024];
    int n = 0;
    for (int y = 0; y < g->rows; y++)
        n += strstr(row_text(g, y, buf, sizeof buf), needle) != NULL;
    return n;
}

/* Number of layer phase events of m (run phase events aside); *last gets the newest. */
static int layer_events(const at_model *m, const at_event **last)
{
    int n = 0;
    for (int i = 0; i < at_model_num_events(m); i++)
        if (at_model_event(m, i)->kind == AT_EVENT_PHASE) {
            *last = at_model_event(m, i);
            n++;
        }
    return n;
}

/* Run "r" of one layer, h.0.attn.c_attn, through core's tracker: snapshot k (step 100(k+1))
 * has alpha[k]; layers[k] gets the number of layer phase events after it. *tracker gets the
 * tracker (caller frees) or, when NULL, it is freed. Caller owns the model. */
static at_model *track_one_layer(const char *run, const double *alpha, int n, int *layers,
                                 at_phase_tracker **tracker)
{
    at_model *m = at_model_new();
    int r = at_synth_run(m, run, 1);
    at_phase_opts po;
    at_phase_opts_default(&po);
    at_phase_tracker *t = at_phase_tracker_new(&po);
    assert_non_null(t);
    for (int k = 0; k < n; k++) {
        at_metrics x;
        at_metrics_init(&x, AT_MODE_EXACT);
        x.status = AT_FIT_SUCCESS;
        x.alpha = alpha[k];
        x.log_norm = 1.0;
        assert_int_equal(at_model_add_cell(m, r, 0, AT_SPACE_W, 100 * (k + 1), &x), AT_OK);
        assert_int_equal(at_synth_track(m, r, k, t), AT_OK);
        const at_event *e;
        if (layers)
            layers[k] = layer_events(m, &e);
    }
    if (tracker)
        *tracker = t;
    else
        at_phase_tracker_free(t);
    return m;
}

/* An alpha hovering around 2.0 (the burnt threshold) makes no phase event, however often it
 * crosses; a sustained crossing makes exactly one, at the snapshot where core's tracker
 * confirms it, and the events panel lists it once. */
static void test_phase_no_flapping(void **state)
{
    (void)state;
    static const double hover[] = {1.98, 2.02, 1.97, 2.03, 1.99, 2.01, 1.96, 2.04,
                                   1.85, 2.15, 1.97, 2.03, 1.8,  2.2,  1.99, 2.01};
    enum { NHEALTHY = 4, NHOVER = sizeof hover / sizeof hover[0], NBURNT = 6 };
    enum { N = NHEALTHY + NHOVER + NBURNT, FIRST_BURNT = NHEALTHY + NHOVER };
    double alpha[N];
    int crossings = 0, events[N];
    for (int k = 0; k < N; k++) {
        alpha[k] = k < NHEALTHY ? 3.0 : k < FIRST_BURNT ? hover[k - NHEALTHY] : 1.7;
        crossings += k && (alpha[k - 1] < 2.0) != (alpha[k] < 2.0);
    }
    assert_true(crossings >= NHOVER); /* a per-cell threshold rule would have flapped each time */
    at_phase_tracker *t;
    at_model *m = track_one_layer("hover", alpha, N, events, &t);
    at_phase_opts po;
    at_phase_opts_default(&po);
    const int64_t confirmed = 100 * (FIRST_BURNT + po.confirm); /* step of snapshot k: 100(k+1) */
    for (int k = 0; k < N; k++)
        assert_int_equal(events[k], 100 * (k + 1) < confirmed ? 0 : 1);
    const at_event *e = NULL;
    assert_int_equal(layer_events(m, &e), 1);
    assert_int_equal(e->kind, AT_EVENT_PHASE);
    assert_int_equal(e->from, AT_LAYER_HEALTHY);
    assert_int_equal(e->to, AT_LAYER_BURNT);
    assert_int_equal(e->step, confirmed);
    assert_int_equal(e->layer, 0);
    at_layer_state ls;
    assert_int_equal(at_phase_tracker_layer(t, 0, &ls), AT_OK);
    assert_int_equal(ls.phase, AT_LAYER_BURNT);
    assert_int_equal(ls.phase_since, 100 * (FIRST_BURNT + 1));
    assert_non_null(strstr(e->text, "healthy -> burnt"));

    at_ui ui;
    at_ui_init(&ui);
    at_grid *g = render(m, &ui, 24, 120, 256, 1);
    char line[64];
    snprintf(line, sizeof line, "@%lld   burnt   h.0.attn.c_attn", (long long)confirmed);
    assert_int_equal(count_rows(g, line), 1);
    assert_int_equal(count_rows(g, "burnt   h.0"), 1);
    assert_int_equal(count_rows(g, "healthy h.0"), 0);
    at_grid_free(g);
    at_phase_tracker_free(t);
    at_model_free(m);
}

/* A layer going back and forth between two phases (a small head whose alpha jumps) takes one
 * line of the events panel, with the count and the first step, not one line a change. */
static void test_phase_changes_merged(void **state)
{
    (void)state;
    enum { STRETCH = 5, N = 5 * STRETCH };
    double alpha[N];
    for (int k = 0; k < N; k++)
        alpha[k] = (k / STRETCH) % 2 ? 8.0 : 3.0;
    at_model *m = track_one_layer("flip", alpha, N, NULL, NULL);
    const at_event *e = NULL;
    assert_int_equal(layer_events(m, &e), 4); /* healthy -> raw -> healthy -> raw -> healthy */
    assert_int_equal(e->to, AT_LAYER_HEALTHY);
    at_ui ui;
    at_ui_init(&ui);
    at_grid *g = render(m, &ui, 24, 120, 256, 1);
    char line[96], first[16];
    int64_t lo = -1;
    for (int i = 0; i < at_model_num_events(m) && lo < 0; i++)
        if (at_model_event(m, i)->kind == AT_EVENT_PHASE)
            lo = at_model_event(m, i)->step;
    at_render_step(lo, first);
    snprintf(line, sizeof line, "healthy h.0.attn.c_attn: 4 changes raw/healthy from %s", first);
    assert_int_equal(count_rows(g, line), 1);
    assert_int_equal(count_rows(g, "raw     h.0"), 0);
    at_grid_free(g);
    at_model_free(m);
}

/* One layer at alpha first for 8 snapshots, then second for 8. */
static at_model *one_layer_run(double first, double second)
{
    double alpha[16];
    for (int k = 0; k < 16; k++)
        alpha[k] = k < 8 ? first : second;
    return track_one_layer("memo", alpha, 16, NULL, NULL);
}

/* A run burnt straight from pre-grokking (raw, then burnt) has memorised: the verdict says so
 * rather than advising against a run that may still grok; burnt after grokking it is over-fit. */
static void test_memorised(void **state)
{
    (void)state;
    char buf[1024];
    at_model *m = one_layer_run(8.0, 1.5);
    at_verdict v;
    at_verdict_compute(&v, m, 0, AT_SPACE_W, at_model_num_snapshots(m, 0));
    assert_int_equal(v.phase, AT_RUN_OVERFIT);
    assert_true(v.memorised);
    assert_string_equal(at_verdict_label(&v), "MEMORISED");
    at_ui ui;
    at_ui_init(&ui);
    at_grid *g = render(m, &ui, 24, 120, 256, 1);
    const char *row = row_text(g, 1, buf, sizeof buf);
    assert_non_null(strstr(row, " MEMORISED since "));
    assert_non_null(strstr(row, "1 of 1 layers burnt before any grokking"));
    assert_int_equal(count_rows(g, "1 burnt: memorised before grokking"), 1);
    assert_int_equal(count_rows(g, "or stop (s)"), 0);
    at_grid_free(g);
    const at_event *e = at_model_event(m, at_model_num_events(m) - 1);
    assert_int_equal(e->run_to, AT_RUN_OVERFIT);
    assert_non_null(strstr(e->text, "pre-grokking -> over-fit"));
    assert_non_null(strstr(e->text, "(memorised: "));
    at_model_free(m);

    m = one_layer_run(3.0, 1.5);
    at_verdict_compute(&v, m, 0, AT_SPACE_W, at_model_num_snapshots(m, 0));
    assert_int_equal(v.phase, AT_RUN_OVERFIT);
    assert_false(v.memorised);
    assert_string_equal(at_verdict_label(&v), "OVER-FIT");
    at_verdict_evidence(&v, buf, sizeof buf);
    assert_string_equal(buf, "1 of 1 layers burnt (alpha < 2)");
    at_ui_init(&ui);
    g = render(m, &ui, 24, 120, 256, 1);
    assert_int_equal(count_rows(g, "1 burnt: over-fit: lower the LR"), 1);
    at_grid_free(g);
    e = at_model_event(m, at_model_num_events(m) - 1);
    assert_non_null(strstr(e->text, "grokking -> over-fit"));
    assert_null(strstr(e->text, "memorised"));
    at_model_free(m);
}

static const int sizes[3][2] = {{24, 80}, {40, 120}, {50, 200}};

/* A collapse: core's tracker says so, and the verdict row says it first, in the critical
 * colours, at every size (a too-small terminal included), with the evidence in numbers; the
 * 27 dropped snapshots take one line of the events panel. */
static void test_collapse(void **state)
{
    (void)state;
    at_synth_opts o = {.model = "GPT2LMHeadModel", .collapse = 1};
    at_model *m = synthetic_opts(30, 90, &o);
    at_scheme sc;
    at_scheme_init(&sc, 256);
    at_style crit = at_scheme_role(&sc, AT_ROLE_VERDICT_CRIT);
    char buf[1024], name[64];
    for (int i = 0; i < 3; i++) {
        at_ui ui;
        at_ui_init(&ui);
        at_grid *g = render(m, &ui, sizes[i][0], sizes[i][1], 256, 1);
        snprintf(name, sizeof name, "collapse_%dx%d.txt", sizes[i][1], sizes[i][0]);
        golden(g, name);
        const char *row = row_text(g, 1, buf, sizeof buf);
        assert_non_null(strstr(row, " COLLAPSE since "));
        assert_non_null(strstr(row, "weight norm +"));
        assert_non_null(strstr(row, "s: stop the run"));
        for (int x = 0; x < g->cols; x++)
            assert_int_equal(at_grid_at(g, 1, x)->st.bg, crit.bg);
        assert_int_equal(count_rows(g, "27 drops"), 1);
        assert_int_equal(count_rows(g, "drop:"), 0);
        at_grid_free(g);
    }
    at_ui ui;
    at_ui_init(&ui);
    at_grid *g = render(m, &ui, 10, 40, 256, 1);
    golden(g, "collapse_too_small_40x10.txt");
    assert_non_null(strstr(row_text(g, 0, buf, sizeof buf), "COLLAPSE"));
    assert_int_equal(at_grid_at(g, 0, 0)->st.bg, crit.bg);
    at_grid_free(g);
    /* no colour: the verdict still stands out (reverse video) */
    g = render(m, &ui, 24, 80, 0, 1);
    assert_true(at_grid_at(g, 1, 2)->st.attr & AT_ATTR_REVERSE);
    at_grid_free(g);
    at_model_free(m);
}

/* Block number of a Llama-style name ("model.layers.23.mlp.up_proj.weight"), or -1. */
static int block_of(const char *name)
{
    int b;
    return sscanf(name, "model.layers.%d.", &b) == 1 ? b : -1;
}

/* 150 transformer layers: the names drop what they all share and every row shows the block
 * numbers of its layers, at every size, sorted or not. */
static void test_big_model(void **state)
{
    (void)state;
    at_synth_opts o = {.model = "LlamaForCausalLM", .transformer = 1};
    at_model *m = synthetic_opts(150, 40, &o);
    char buf[1024], name[64];
    for (int sort = 0; sort < 2; sort++)
        for (int i = 0; i < 3; i++) {
            at_ui ui;
            at_ui_init(&ui);
            ui.sort = sort ? AT_SORT_WORST : AT_SORT_MODEL;
            at_grid *g = render(m, &ui, sizes[i][0], sizes[i][1], 256, 1);
            if (!sort) {
                snprintf(name, sizeof name, "llama150_%dx%d.txt", sizes[i][1], sizes[i][0]);
                golden(g, name);
            }
            at_layout lay;
            at_render_layout(&lay, m, &ui, sizes[i][0], sizes[i][1], 1);
            int idx[150], n = at_ui_filtered_layers(&ui, m, idx), lpr = lay.layers_per_row;
            int checked = 0;
            for (int row = 0; row < lay.heat.h && ui.top + row * lpr < n; row++) {
                row_text(g, lay.heat.y + row, buf, sizeof buf);
                buf[lay.names.w * 3] = 0; /* the name column (at most 3 bytes a glyph) */
                for (int j = 0; j < lpr && ui.top + row * lpr + j < n; j++) {
                    int b = block_of(at_model_layer(m, 0, idx[ui.top + row * lpr + j])->name);
                    if (b < 0)
                        continue;
                    char want[16];
                    snprintf(want, sizeof want, "%d.", b);
                    const char *p = strstr(buf, want);
                    /* at the start or after '/': "23." not inside "123." */
                    while (p && p != buf && p[-1] != '/')
                        p = strstr(p + 1, want);
                    if (!p)
                        fail_msg("row %d at %dx%d lost block %d: %s", row, sizes[i][1], sizes[i][0],
                                 b, buf);
                    checked++;
                }
            }
            assert_true(checked >= 20);
            /* the title row names what they share */
            if (sizes[i][1] >= 120)
                assert_non_null(
                    strstr(row_text(g, lay.titles.y, buf, sizeof buf), "model.layers.*.weight"));
            at_grid_free(g);
        }
    at_model_free(m);
}

/* The text of columns [x, x + w) of row y, spaces trimmed at both ends, into buf. */
static const char *span_text(const at_grid *g, int y, int x, int w, char *buf, size_t cap)
{
    size_t n = 0;
    for (int i = x; i < x + w && n + 5 < cap; i++)
        n += (size_t)at_utf8_encode(at_grid_at(g, y, i)->ch, buf + n);
    buf[n] = 0;
    while (n > 0 && buf[n - 1] == ' ')
        buf[--n] = 0;
    size_t lead = strspn(buf, " ");
    memmove(buf, buf + lead, n - lead + 1);
    return buf;
}

/* Column of layer's latest result (any status) and of its latest successful fit; -1 none. */
static void latest_cols(const at_model *m, int layer, int *any, int *ok)
{
    *any = *ok = -1;
    for (int col = at_model_num_snapshots(m, 0) - 1; col >= 0; col--) {
        const at_cell *c = at_model_cell(m, 0, layer, AT_SPACE_W, col);
        if (*any < 0 && c->status != AT_CELL_EMPTY)
            *any = col;
        if (*ok < 0 && c->status == AT_FIT_SUCCESS)
            *ok = col;
    }
}

/* The block view of run 0 of m as drawn in g (rows x cols, colors, UTF-8): the verdict row on
 * top, the key bar offering the heatmap back; every block row shown labelled with its block,
 * and each of its cells showing the latest alpha of the layer named fmt(label, keys[s]) as read
 * from the model's cells, in that alpha's level (colour, or the ASCII ramp without colours) in
 * the glyph or the history's newest column. Returns the number of cells checked. */
static int check_blocks(const at_model *m, at_ui *ui, const at_grid *g, int colors, const char *fmt,
                        const char *const *keys)
{
    at_layout lay;
    at_render_layout(&lay, m, ui, g->rows, g->cols, colors > 0);
    assert_true(lay.blocks);
    char buf[1024], want[16];
    at_verdict v;
    at_verdict_compute(&v, m, 0, AT_SPACE_W, at_model_num_snapshots(m, 0));
    assert_non_null(strstr(row_text(g, 1, buf, sizeof buf), at_verdict_label(&v)));
    assert_non_null(strstr(row_text(g, g->rows - 1, buf, sizeof buf), "b heatmap"));
    at_names nm;
    at_names_scan(&nm, m, 0);
    int idx[200], n = at_ui_filtered_layers(ui, m, idx);
    at_blocks *t = at_blocks_new(m, 0, idx, n, &nm, NULL);
    assert_non_null(t);
    at_blocks_geom geo;
    at_blocks_fit(t, lay.names.w, lay.titles.w, &geo);
    at_scheme sc;
    at_scheme_init(&sc, colors);
    int checked = 0;
    for (int i = 0; i < lay.heat.h && ui->block_top + i < at_blocks_num_rows(t); i++) {
        const at_block_row *row = at_blocks_row(t, ui->block_top + i);
        int y = lay.heat.y + i;
        if (row->layer >= 0) {
            assert_non_null(strstr(row_text(g, y, buf, sizeof buf), row->label));
            continue;
        }
        assert_string_equal(span_text(g, y, 0, geo.label_w, buf, sizeof buf), row->label);
        for (int s = 0; s < geo.nslots; s++) {
            char name[160];
            snprintf(name, sizeof name, fmt, row->label, keys[s]);
            int layer = at_model_find_layer(m, 0, name), any, ok;
            assert_true(layer >= 0);
            latest_cols(m, layer, &any, &ok);
            double a = at_model_cell(m, 0, layer, AT_SPACE_W, ok)->v[AT_METRIC_ALPHA];
            at_render_value(a, want);
            int vx = geo.x[s] + (geo.spark ? geo.spark + 1 : 1);
            if (strcmp(span_text(g, y, vx, 5, buf, sizeof buf), want))
                fail_msg("%s at %dx%d shows '%s', its alpha is %s", name, g->cols, g->rows, buf,
                         want);
            /* the level of the latest result: one glyph, or the newest column of the history */
            const at_gcell *gc = at_grid_at(g, y, geo.x[s] + (geo.spark ? geo.spark - 1 : 0));
            const at_cell *c = at_model_cell(m, 0, layer, AT_SPACE_W, any);
            if (c->status == AT_FIT_SUCCESS) {
                int k = at_scale_level(AT_SCALE_ALPHA, c->v[AT_METRIC_ALPHA], 0, 0);
                if (colors)
                    assert_int_equal(gc->st.fg, at_scheme_level_color(&sc, AT_SCALE_ALPHA, k));
                else
                    assert_int_equal(gc->ch, (uint32_t)at_scale_ascii(AT_SCALE_ALPHA, k));
            } else {
                assert_int_equal(gc->ch, colors ? 0x2591u : 'x');
            }
            checked++;
        }
    }
    at_blocks_free(t);
    return checked;
}

/* The block view (b) of the modular-arithmetic transformer (one block) and of a 16-block
 * Llama-style run at 80 x 24 (values only), 120 x 40 and 200 x 50 (with history), in colour
 * and without (NO_COLOR: the ASCII ramp); golden files for each. */
static void test_blocks_view(void **state)
{
    (void)state;
    static const char *const llama[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                        "mlp.down_proj"};
    static const char *const modular[] = {"attn.W_Q", "attn.W_K", "attn.W_V",
                                          "attn.W_O", "mlp.W_in", "mlp.W_out"};
    static const struct {
        const char *name;
        at_synth_opts o;
        int layers;
        const char *fmt;
        const char *const *keys;
        int blocks; /* rows with cells */
    } runs[] = {
        {"modular",
         {.transformer = AT_SYNTH_MODULAR},
         AT_SYNTH_MODULAR_LAYERS,
         "%.0s%s.weight",
         modular,
         1},
        {"llama16",
         {.model = "LlamaForCausalLM", .transformer = 1},
         2 + 7 * 16,
         "model.layers.%s.%s.weight",
         llama,
         16},
    };
    char name[64], buf[1024];
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        at_model *m = synthetic_opts(runs[r].layers, 40, &runs[r].o);
        for (int i = 0; i < 3; i++)
            for (int colors = 256; colors >= 0; colors -= 256) {
                at_ui ui;
                at_ui_init(&ui);
                ui.blocks = 1;
                at_grid *g = render(m, &ui, sizes[i][0], sizes[i][1], colors, 1);
                snprintf(name, sizeof name, "blocks_%s%s_%dx%d.txt", runs[r].name,
                         colors ? "" : "_mono", sizes[i][1], sizes[i][0]);
                golden(g, name);
                int cells = check_blocks(m, &ui, g, colors, runs[r].fmt, runs[r].keys);
                /* every block on screen but the 80 x 24 Llama's last two rows */
                int rows_shown = runs[r].blocks - (runs[r].blocks == 16 && i == 0 ? 1 : 0);
                assert_int_equal(cells, rows_shown * (runs[r].blocks == 16 ? 7 : 6));
                assert_non_null(strstr(row_text(g, 5, buf, sizeof buf), /* the column header */
                                       runs[r].blocks == 16 ? "gate" : "W_in"));
                at_grid_free(g);
            }
        at_model_free(m);
    }
}

/* Two runs of one model class: ids in the picker, the header and the stop dialog. */
static void test_two_runs(void **state)
{
    (void)state;
    at_synth_opts o = {.model = "MLP"};
    at_model *m = at_model_new();
    add_run(m, "mnist-lr3e-4", 6, 20, &o);
    add_run(m, "mnist-lr1e-2", 6, 12, &o);
    char buf[1024], name[64];
    for (int i = 0; i < 3; i++) {
        at_ui ui;
        at_ui_init(&ui);
        ui.screen = AT_SCREEN_RUNS;
        ui.run_cursor = 1;
        at_grid *g = render(m, &ui, sizes[i][0], sizes[i][1], 256, 1);
        snprintf(name, sizeof name, "runs_two_%dx%d.txt", sizes[i][1], sizes[i][0]);
        golden(g, name);
        assert_int_equal(count_rows(g, "mnist-lr3e-4 "), 2); /* the header and its row */
        assert_int_equal(count_rows(g, "mnist-lr1e-2 "), 1);
        assert_int_equal(count_rows(g, "MLP"), 3);
        at_grid_free(g);
        ui.run = 1;
        ui.screen = AT_SCREEN_CONFIRM;
        g = render(m, &ui, sizes[i][0], sizes[i][1], 256, 1);
        snprintf(name, sizeof name, "confirm_two_%dx%d.txt", sizes[i][1], sizes[i][0]);
        golden(g, name);
        assert_int_equal(count_rows(g, "Ask run mnist-lr1e-2 (MLP) to stop training? [y/N]"), 1);
        assert_non_null(strstr(row_text(g, 0, buf, sizeof buf), "run mnist-lr1e-2 (MLP)"));
        at_grid_free(g);
    }
    at_model_free(m);
}

/* The detail view: the fit's label stays inside the plot, the fitted line inside the plot. */
static void test_detail_labels(void **state)
{
    (void)state;
    at_model *m = synthetic(12, 30);
    char buf[1024];
    for (int i = 0; i < 3; i++) {
        at_ui ui;
        at_ui_init(&ui);
        ui.sel = 2;
        ui.screen = AT_SCREEN_DETAIL;
        at_grid *g = render(m, &ui, sizes[i][0], sizes[i][1], 256, 1);
        at_layout lay;
        at_render_layout(&lay, m, &ui, sizes[i][0], sizes[i][1], 1);
        int hw = lay.body.w * 3 / 5;
        int fits = 0;
        for (int y = lay.body.y; y < lay.body.y + lay.body.h; y++) {
            row_text(g, y, buf, sizeof buf);
            if (strstr(buf, "fit: alpha"))
                fits++;
            /* the plot's columns end before the history table starts */
            for (int x = hw - 1; x <= hw; x++)
                assert_int_equal(at_grid_at(g, y, x)->ch, ' ');
        }
        assert_int_equal(fits, 1);
        assert_true(count_rows(g, "xmin 0.5") == 1);
        at_grid_free(g);
    }
    at_model_free(m);
}

static void test_helpers(void **state)
{
    (void)state;
    char buf[300];
    at_pair_label("h.0.attn.c_attn", "h.0.attn.c_proj", buf, sizeof buf);
    assert_string_equal(buf, "h.0.attn.c_attn/c_proj");
    at_pair_label("fc1", "fc2", buf, sizeof buf);
    assert_string_equal(buf, "fc1/fc2");
    /* middle elision keeps the block number and the end */
    assert_int_equal(at_elide("23.self_attn.q_proj", 12, 0, buf, sizeof buf), 10);
    assert_string_equal(buf, "23.~q_proj");
    assert_int_equal(at_elide("23.self_attn.q_proj", 30, 1, buf, sizeof buf), 19);
    assert_string_equal(buf, "23.self_attn.q_proj");
    at_pair_elide("1.mlp.down_proj", "2.self_attn.q_proj", 20, 0, buf, sizeof buf);
    assert_non_null(strstr(buf, "1."));
    assert_non_null(strstr(buf, "/2."));
    assert_true(strlen(buf) <= 20);
    /* what the layers share */
    at_model *m = at_model_new();
    int r = at_model_add_run(m, "r", NULL, NULL);
    const char *names[] = {"model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight",
                           "model.layers.1.mlp.up_proj.weight", "model.layers.2.mlp.up_proj.weight",
                           "lm_head.weight"};
    for (int i = 0; i < 5; i++)
        at_model_add_layer(m, r, names[i], AT_KIND_LINEAR, 0, NULL);
    for (int i = 3; i < 9; i++) { /* 3 in 4 layers carry the prefix */
        snprintf(buf, sizeof buf, "model.layers.%d.mlp.%s.weight", i,
                 i % 2 ? "down_proj" : "gate_proj");
        at_model_add_layer(m, r, buf, AT_KIND_LINEAR, 0, NULL);
    }
    at_names nm;
    at_names_scan(&nm, m, r);
    assert_string_equal(nm.prefix, "model.layers.");
    assert_string_equal(nm.suffix, ".weight");
    assert_string_equal(at_names_short(&nm, names[1], buf, sizeof buf), "0.mlp.up_proj");
    assert_string_equal(at_names_short(&nm, names[0], buf, sizeof buf), "model.embed_tokens");
    assert_string_equal(at_names_short(&nm, names[4], buf, sizeof buf), "lm_head");
    assert_string_equal(at_names_pattern(&nm, buf, sizeof buf), "model.layers.*.weight");
    at_model_free(m);
    at_render_step(950, buf);
    assert_string_equal(buf, "950");
    at_render_step(12500, buf);
    assert_string_equal(buf, "12.5k");
    at_render_step(1250000, buf);
    assert_string_equal(buf, "1.25M");
    at_grid *g = at_grid_new(2, 6);
    assert_int_equal(at_grid_text(g, 0, 1, 10, "a\xe2\x96\x80z long", (at_style){-1, -1, 0}), 5);
    assert_int_equal(at_grid_at(g, 0, 2)->ch, 0x2580);
    assert_null(at_grid_at(g, 2, 0));
    at_grid_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_main_256),         cmocka_unit_test(test_main_half_blocks),
        cmocka_unit_test(test_ascii_mono),       cmocka_unit_test(test_other_screens),
        cmocka_unit_test(test_bucket_rule),      cmocka_unit_test(test_cache),
        cmocka_unit_test(test_replay_and_delta), cmocka_unit_test(test_phase_no_flapping),
        cmocka_unit_test(test_memorised),        cmocka_unit_test(test_phase_changes_merged),
        cmocka_unit_test(test_helpers),          cmocka_unit_test(test_collapse),
        cmocka_unit_test(test_big_model),        cmocka_unit_test(test_two_runs),
        cmocka_unit_test(test_detail_labels),    cmocka_unit_test(test_blocks_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
