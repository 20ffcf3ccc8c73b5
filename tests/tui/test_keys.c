/* SPDX-License-Identifier: Apache-2.0 */
/* test_keys.c -- key map (pure key -> action) and what actions do to the view's state. */
#include <setjmp.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "blocks.h"
#include "render.h"
#include "synth.h"
#include "ui.h"

static void test_keymap(void **state)
{
    (void)state;
    const at_input_mode N = AT_INPUT_NORMAL;
    assert_int_equal(at_keymap(AT_KEY_UP, N), AT_ACT_UP);
    assert_int_equal(at_keymap('k', N), AT_ACT_UP);
    assert_int_equal(at_keymap('j', N), AT_ACT_DOWN);
    assert_int_equal(at_keymap(AT_KEY_DOWN, N), AT_ACT_DOWN);
    assert_int_equal(at_keymap('h', N), AT_ACT_LEFT);
    assert_int_equal(at_keymap(AT_KEY_RIGHT, N), AT_ACT_RIGHT);
    assert_int_equal(at_keymap(AT_KEY_ENTER, N), AT_ACT_ENTER);
    assert_int_equal(at_keymap(AT_KEY_ESC, N), AT_ACT_BACK);
    assert_int_equal(at_keymap(AT_KEY_TAB, N), AT_ACT_NEXT_METRIC);
    assert_int_equal(at_keymap(AT_KEY_BTAB, N), AT_ACT_PREV_METRIC);
    assert_int_equal(at_keymap('/', N), AT_ACT_FILTER);
    assert_int_equal(at_keymap('p', N), AT_ACT_PAUSE);
    assert_int_equal(at_keymap('s', N), AT_ACT_STOP);
    assert_int_equal(at_keymap('?', N), AT_ACT_HELP);
    assert_int_equal(at_keymap('q', N), AT_ACT_QUIT);
    assert_int_equal(at_keymap('r', N), AT_ACT_RUNS);
    assert_int_equal(at_keymap('d', N), AT_ACT_SPACE);
    assert_int_equal(at_keymap('1', N), AT_ACT_METRIC_1);
    assert_int_equal(at_keymap('7', N), AT_ACT_METRIC_1 + AT_METRIC_DETX_GAP);
    assert_int_equal(at_keymap('8', N), AT_ACT_NONE);
    assert_int_equal(at_keymap(AT_KEY_MOUSE, N), AT_ACT_CLICK);
    assert_int_equal(at_keymap(AT_KEY_RESIZE, N), AT_ACT_RESIZE);
    assert_int_equal(at_keymap('<', N), AT_ACT_SLIDER_BACK);
    assert_int_equal(at_keymap('.', N), AT_ACT_SLIDER_FWD);
    assert_int_equal(at_keymap('z', N), AT_ACT_FREEZE);
    assert_int_equal(at_keymap('b', N), AT_ACT_BLOCKS);
    assert_int_equal(at_keymap('e', N), AT_ACT_PICTURE);
    assert_int_equal(at_keymap('e', AT_INPUT_FILTER), AT_ACT_CHAR);
    assert_int_equal(at_keymap('g', N), AT_ACT_HOME); /* g stays the first layer (vi) */
    assert_int_equal(at_keymap('x', N), AT_ACT_NONE);
    /* htop's function keys beside the letters */
    assert_int_equal(at_keymap(AT_KEY_F1, N), AT_ACT_HELP);
    assert_int_equal(at_keymap(AT_KEY_F3, N), AT_ACT_SEARCH);
    assert_int_equal(at_keymap(AT_KEY_F4, N), AT_ACT_FILTER);
    assert_int_equal(at_keymap(AT_KEY_F6, N), AT_ACT_SORT);
    assert_int_equal(at_keymap('o', N), AT_ACT_SORT);
    assert_int_equal(at_keymap(AT_KEY_F10, N), AT_ACT_QUIT);
    assert_int_equal(at_keymap('n', N), AT_ACT_SEARCH_NEXT);
    assert_int_equal(at_keymap('N', N), AT_ACT_SEARCH_PREV);
    assert_int_equal(at_keymap('w', N), AT_ACT_WARN_ONLY);
    assert_int_equal(at_keymap(AT_KEY_WHEEL_UP, N), AT_ACT_WHEEL_UP);
    assert_int_equal(at_keymap(AT_KEY_WHEEL_DOWN, N), AT_ACT_WHEEL_DOWN);
    assert_int_equal(at_keymap(AT_KEY_DCLICK, N), AT_ACT_OPEN);
    /* typing a search: like a filter */
    assert_int_equal(at_keymap('n', AT_INPUT_SEARCH), AT_ACT_CHAR);
    assert_int_equal(at_keymap(AT_KEY_ENTER, AT_INPUT_SEARCH), AT_ACT_ACCEPT);
    /* typing a filter: letters are text, q does not quit */
    assert_int_equal(at_keymap('q', AT_INPUT_FILTER), AT_ACT_CHAR);
    assert_int_equal(at_keymap('/', AT_INPUT_FILTER), AT_ACT_CHAR);
    assert_int_equal(at_keymap(AT_KEY_ENTER, AT_INPUT_FILTER), AT_ACT_ACCEPT);
    assert_int_equal(at_keymap(AT_KEY_ESC, AT_INPUT_FILTER), AT_ACT_BACK);
    assert_int_equal(at_keymap(AT_KEY_BACKSPACE, AT_INPUT_FILTER), AT_ACT_BACKSPACE);
    assert_int_equal(at_keymap(AT_KEY_RESIZE, AT_INPUT_FILTER), AT_ACT_RESIZE);
    /* the stop confirmation takes only y / n */
    assert_int_equal(at_keymap('y', AT_INPUT_CONFIRM), AT_ACT_YES);
    assert_int_equal(at_keymap('n', AT_INPUT_CONFIRM), AT_ACT_NO);
    assert_int_equal(at_keymap(AT_KEY_ESC, AT_INPUT_CONFIRM), AT_ACT_NO);
    assert_int_equal(at_keymap('q', AT_INPUT_CONFIRM), AT_ACT_NO);
    assert_int_equal(at_keymap('s', AT_INPUT_CONFIRM), AT_ACT_NONE);
    /* Enter takes the default answer, No */
    assert_int_equal(at_keymap(AT_KEY_ENTER, AT_INPUT_CONFIRM), AT_ACT_NO);
}

typedef struct fixture {
    at_model *m;
    at_ui ui;
    at_layout lay;
    at_view_action out;
} fixture;

static int press(fixture *f, int key)
{
    at_render_layout(&f->lay, f->m, &f->ui, 24, 80, 1);
    at_action a = at_keymap(key, at_ui_input_mode(&f->ui));
    return at_ui_apply(&f->ui, f->m, &f->lay, a, key, &f->out);
}

static int setup(void **state)
{
    static fixture f;
    f.m = at_model_new();
    int r = at_synth_run(f.m, "one", 10);
    for (int k = 0; k < 30; k++)
        at_synth_snapshot(f.m, r, k, 0, 0, 7);
    at_ui_init(&f.ui);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    at_model_free(f->m);
    return 0;
}

static void test_navigation(void **state)
{
    fixture *f = *state;
    press(f, 'j');
    press(f, AT_KEY_DOWN);
    assert_int_equal(f->ui.sel, 2);
    press(f, 'k');
    assert_int_equal(f->ui.sel, 1);
    for (int i = 0; i < 50; i++)
        press(f, 'j');
    assert_int_equal(f->ui.sel, 9); /* clamped to the last layer */
    press(f, 'g');
    assert_int_equal(f->ui.sel, 0);
    press(f, AT_KEY_ENTER);
    assert_int_equal(f->ui.screen, AT_SCREEN_DETAIL);
    press(f, AT_KEY_ESC);
    assert_int_equal(f->ui.screen, AT_SCREEN_MAIN);
    press(f, AT_KEY_TAB);
    assert_int_equal(f->ui.metric, AT_METRIC_ALPHA_WEIGHTED);
    press(f, AT_KEY_BTAB);
    press(f, AT_KEY_BTAB);
    assert_int_equal(f->ui.metric, AT_METRIC_DETX_GAP);
    press(f, '1');
    assert_int_equal(f->ui.metric, AT_METRIC_ALPHA);
    press(f, '?');
    assert_int_equal(f->ui.screen, AT_SCREEN_HELP);
    press(f, '?');
    assert_int_equal(f->ui.screen, AT_SCREEN_MAIN);
    /* back in time and live again */
    press(f, 'h');
    assert_true(f->ui.back > 0);
    press(f, AT_KEY_ESC);
    assert_int_equal(f->ui.back, 0);
    /* no delta results: 'd' keeps W */
    press(f, 'd');
    assert_int_equal(f->ui.space, AT_SPACE_W);
    press(f, 'q');
    assert_int_equal(f->out.kind, AT_VIEW_QUIT);
}

static void test_filter(void **state)
{
    fixture *f = *state;
    press(f, '/');
    assert_int_equal(at_ui_input_mode(&f->ui), AT_INPUT_FILTER);
    press(f, 'm');
    press(f, 'l');
    press(f, 'q'); /* typed, not quit */
    assert_int_equal(f->out.kind, AT_VIEW_NOTHING);
    press(f, AT_KEY_BACKSPACE);
    press(f, 'P');
    assert_string_equal(f->ui.filter, "mlP");
    int idx[10];
    assert_int_equal(at_ui_filtered_layers(&f->ui, f->m, idx), 4); /* layers 2, 3, 6, 7 */
    for (int i = 0; i < 4; i++)
        assert_non_null(strstr(at_model_layer(f->m, 0, idx[i])->name, "mlp"));
    press(f, AT_KEY_ENTER);
    assert_int_equal(at_ui_input_mode(&f->ui), AT_INPUT_NORMAL);
    assert_string_equal(f->ui.filter, "mlP");
    press(f, AT_KEY_ESC);
    assert_string_equal(f->ui.filter, "");
}

static void test_engine_actions(void **state)
{
    fixture *f = *state;
    press(f, 'p');
    assert_int_equal(f->out.kind, AT_VIEW_PAUSE);
    assert_int_equal(f->out.paused, 1);
    press(f, 's');
    assert_int_equal(f->ui.screen, AT_SCREEN_CONFIRM);
    assert_int_equal(f->out.kind, AT_VIEW_NOTHING);
    press(f, 'n');
    assert_int_equal(f->ui.screen, AT_SCREEN_MAIN);
    assert_int_equal(f->out.kind, AT_VIEW_NOTHING);
    press(f, 's');
    press(f, 'y');
    assert_int_equal(f->out.kind, AT_VIEW_STOP_RUN);
    assert_int_equal(f->out.run, 0);
    assert_int_equal(f->ui.screen, AT_SCREEN_MAIN);

    /* e: the selected layer's picture, on the heatmap and in the detail view, not elsewhere */
    press(f, 'j');
    press(f, 'e');
    assert_int_equal(f->out.kind, AT_VIEW_PICTURE);
    assert_int_equal(f->out.run, 0);
    assert_int_equal(f->out.layer, f->ui.sel_layer);
    assert_int_equal(f->out.layer, 1);
    assert_int_equal(f->out.space, AT_SPACE_W);
    press(f, AT_KEY_ENTER);
    press(f, 'e');
    assert_int_equal(f->out.kind, AT_VIEW_PICTURE);
    assert_int_equal(f->out.layer, 1);
    press(f, AT_KEY_ESC);
    press(f, '?');
    press(f, 'e');
    assert_int_equal(f->out.kind, AT_VIEW_NOTHING);
    press(f, '?');
    press(f, 'k');

    /* a second run: pick it */
    int r = at_synth_run(f->m, "two", 3);
    at_synth_snapshot(f->m, r, 0, 0, 0, 8);
    press(f, 'r');
    assert_int_equal(f->ui.screen, AT_SCREEN_RUNS);
    press(f, 'j');
    press(f, AT_KEY_ENTER);
    assert_int_equal(f->out.kind, AT_VIEW_SELECT_RUN);
    assert_int_equal(f->out.run, 1);
    assert_int_equal(f->ui.run, 1);
    assert_int_equal(f->ui.sel, 0);
    /* p pauses the run shown, and resumes it once paused; an ended run or a replay has none */
    press(f, 'p');
    assert_int_equal(f->out.kind, AT_VIEW_PAUSE);
    assert_int_equal(f->out.run, 1);
    assert_int_equal(f->out.paused, 1);
    at_model_run(f->m, 1)->paused = 1;
    press(f, 'p');
    assert_int_equal(f->out.run, 1);
    assert_int_equal(f->out.paused, 0);
    at_model_run(f->m, 1)->ended = 1;
    press(f, 'p');
    assert_int_equal(f->out.kind, AT_VIEW_NOTHING);
    assert_string_equal(f->ui.msg, "the run ended: nothing to pause");
    f->ui.replay = 1;
    press(f, 'p');
    assert_int_equal(f->out.kind, AT_VIEW_NOTHING);
    assert_string_equal(f->ui.msg, "a replay has no trainer to pause");
}

static void test_click_and_slider(void **state)
{
    fixture *f = *state;
    at_render_layout(&f->lay, f->m, &f->ui, 24, 80, 1);
    f->ui.mouse_y = f->lay.heat.y + 3;
    f->ui.mouse_x = f->lay.heat.x + 2;
    press(f, AT_KEY_MOUSE);
    assert_int_equal(f->ui.sel, 3);
    f->ui.mouse_y = 0; /* header: nothing */
    press(f, AT_KEY_MOUSE);
    assert_int_equal(f->ui.sel, 3);

    press(f, '<'); /* not a replay: ignored */
    assert_int_equal(f->ui.limit_step, -1);
    f->ui.replay = 1;
    press(f, '<');
    assert_int_equal(f->ui.limit_step, 2900);
    press(f, ',');
    assert_int_equal(f->ui.limit_step, 2800);
    press(f, '>');
    press(f, '>');
    assert_int_equal(f->ui.limit_step, -1); /* back at the end */
}

/* Sorting keeps the selection on its layer; warnings-only shows the layers that warn. */
static void test_sort_and_warnings(void **state)
{
    fixture *f = *state;
    int idx[10], n = at_ui_filtered_layers(&f->ui, f->m, idx);
    assert_int_equal(n, 10);
    for (int i = 0; i < n; i++)
        assert_int_equal(idx[i], i);
    press(f, 'j');
    press(f, 'j');
    int layer = f->ui.sel_layer;
    assert_int_equal(layer, 2);
    press(f, AT_KEY_F6); /* worst first */
    assert_int_equal(f->ui.sort, AT_SORT_WORST);
    assert_non_null(strstr(f->ui.msg, "worst first"));
    n = at_ui_filtered_layers(&f->ui, f->m, idx);
    int end = at_ui_end(&f->ui, f->m);
    double prev = INFINITY;
    for (int i = 0; i < n; i++) {
        double a = at_model_latest_cell(f->m, 0, idx[i], AT_SPACE_W, end)->v[AT_METRIC_ALPHA];
        double bad = a < 2 ? 2 - a : a > 6 ? a - 6 : 0;
        assert_true(bad <= prev);
        prev = bad;
    }
    assert_int_equal(f->ui.sel_layer, layer); /* the selection followed its layer */
    assert_int_equal(idx[f->ui.sel], layer);
    press(f, 'o');
    press(f, 'o'); /* by name */
    assert_int_equal(f->ui.sort, AT_SORT_NAME);
    n = at_ui_filtered_layers(&f->ui, f->m, idx);
    for (int i = 1; i < n; i++)
        assert_true(strcmp(at_model_layer(f->m, 0, idx[i - 1])->name,
                           at_model_layer(f->m, 0, idx[i])->name) <= 0);
    press(f, 'o');
    assert_int_equal(f->ui.sort, AT_SORT_MODEL);
    press(f, 'w');
    n = at_ui_filtered_layers(&f->ui, f->m, idx);
    int want = 0;
    for (int l = 0; l < 10; l++)
        want += at_ui_layer_warns(&f->ui, f->m, l, end);
    assert_int_equal(n, want);
    assert_true(n > 0 && n < 10);
    for (int i = 0; i < n; i++)
        assert_true(at_ui_layer_warns(&f->ui, f->m, idx[i], end));
    press(f, AT_KEY_ESC); /* clears the warnings-only filter too */
    assert_int_equal(f->ui.warn_only, 0);
}

static void test_search(void **state)
{
    fixture *f = *state;
    press(f, 'n'); /* nothing to repeat yet */
    assert_non_null(strstr(f->ui.msg, "no search"));
    press(f, AT_KEY_F3);
    assert_int_equal(at_ui_input_mode(&f->ui), AT_INPUT_SEARCH);
    press(f, 'c');
    press(f, '_');
    press(f, 'f');
    press(f, 'c');
    press(f, AT_KEY_ENTER); /* h.0.mlp.c_fc is layer 2 */
    assert_int_equal(at_ui_input_mode(&f->ui), AT_INPUT_NORMAL);
    assert_int_equal(f->ui.sel, 2);
    press(f, 'n');
    assert_int_equal(f->ui.sel, 6);
    press(f, 'n');
    assert_int_equal(f->ui.sel, 2); /* wraps */
    press(f, 'N');
    assert_int_equal(f->ui.sel, 6);
    press(f, AT_KEY_F3);
    press(f, 'z');
    press(f, AT_KEY_ENTER);
    assert_non_null(strstr(f->ui.msg, "no layer matches 'z'"));
    assert_int_equal(f->ui.sel, 6);
    press(f, 'j'); /* the note goes with the next key */
    assert_string_equal(f->ui.msg, "");
}

/* Freezing pins the display at the newest snapshot while data arrives; nothing is lost. */
static void test_freeze(void **state)
{
    fixture *f = *state;
    press(f, 'z');
    assert_int_equal(f->ui.frozen, 1);
    assert_int_equal(f->ui.limit_step, 3000);
    at_synth_snapshot(f->m, 0, 30, 0, 0, 7);
    assert_int_equal(at_ui_end(&f->ui, f->m), 30);
    assert_int_equal(at_model_num_snapshots(f->m, 0), 31);
    press(f, 'z');
    assert_int_equal(f->ui.frozen, 0);
    assert_int_equal(at_ui_end(&f->ui, f->m), 31);
    press(f, 'z');
    press(f, AT_KEY_ESC); /* Esc goes live too */
    assert_int_equal(f->ui.frozen, 0);
    assert_int_equal(f->ui.limit_step, -1);
}

/* A replay: Home / End move the slider, s and p say why they do nothing, z too. */
static void test_replay_keys(void **state)
{
    fixture *f = *state;
    f->ui.replay = 1;
    f->ui.limit_step = 1500;
    press(f, AT_KEY_END);
    assert_int_equal(f->ui.limit_step, -1);
    press(f, AT_KEY_HOME);
    assert_int_equal(f->ui.limit_step, 100);
    press(f, 'G'); /* the letters still pick layers */
    assert_int_equal(f->ui.sel, 9);
    assert_int_equal(f->ui.limit_step, 100);
    press(f, 's');
    assert_int_equal(f->ui.screen, AT_SCREEN_MAIN);
    assert_non_null(strstr(f->ui.msg, "no trainer to stop"));
    press(f, 'p');
    assert_int_equal(f->out.kind, AT_VIEW_NOTHING);
    assert_non_null(strstr(f->ui.msg, "no trainer to pause"));
    press(f, 'z');
    assert_int_equal(f->ui.frozen, 0);
}

/* The wheel scrolls, a double click opens the layer under the pointer; help stops at its end. */
static void test_mouse_and_help(void **state)
{
    fixture *f = *state;
    press(f, AT_KEY_WHEEL_DOWN);
    assert_int_equal(f->ui.sel, 3);
    press(f, AT_KEY_WHEEL_UP);
    assert_int_equal(f->ui.sel, 0);
    at_render_layout(&f->lay, f->m, &f->ui, 24, 80, 1);
    f->ui.mouse_y = f->lay.heat.y + 4;
    f->ui.mouse_x = f->lay.heat.x + 1;
    press(f, AT_KEY_DCLICK);
    assert_int_equal(f->ui.screen, AT_SCREEN_DETAIL);
    assert_int_equal(f->ui.sel, 4);
    press(f, AT_KEY_F1);
    assert_int_equal(f->ui.screen, AT_SCREEN_HELP);
    for (int i = 0; i < 100; i++)
        press(f, AT_KEY_DOWN);
    int end = f->ui.help_top;
    assert_int_equal(end, f->lay.help_rows - f->lay.body.h + 1);
    press(f, AT_KEY_UP);
    assert_int_equal(f->ui.help_top, end - 1); /* one press back up, not a hundred */
    press(f, AT_KEY_F10);
    assert_int_equal(f->out.kind, AT_VIEW_QUIT);
}

/* The selected layer's name. */
static const char *selected(const fixture *f)
{
    return at_model_layer(f->m, 0, f->ui.sel_layer)->name;
}

/* The block view of a 16-block Llama run at 80 x 24: b toggles it; the arrows move over its
 * table (Up/Down the same matrix of the next block, Left/Right the next matrix), scrolling
 * keeps the selection on screen, a click selects the matrix under it, Enter opens it; sort
 * says it does not apply; a run without attention layers says why there is no block view. */
static void test_block_keys(void **state)
{
    (void)state;
    fixture f = {0};
    f.m = at_model_new();
    at_synth_opts o = {.transformer = 1};
    int r = at_synth_run_opts(f.m, "llama", 2 + 7 * 16, &o);
    for (int k = 0; k < 40; k++)
        at_synth_snapshot_opts(f.m, r, k, 0, 0, 7, &o);
    at_ui_init(&f.ui);
    press(&f, 'b');
    assert_int_equal(f.ui.blocks, 1);
    at_render_layout(&f.lay, f.m, &f.ui, 24, 80, 1);
    assert_true(f.lay.blocks);
    assert_string_equal(selected(&f), "model.embed_tokens.weight");
    press(&f, AT_KEY_DOWN);
    assert_string_equal(selected(&f), "model.layers.0.self_attn.q_proj.weight");
    for (int i = 0; i < 4; i++)
        press(&f, 'l');
    assert_string_equal(selected(&f), "model.layers.0.mlp.gate_proj.weight");
    press(&f, 'j');
    press(&f, 'j');
    press(&f, AT_KEY_DOWN);
    assert_string_equal(selected(&f), "model.layers.3.mlp.gate_proj.weight");
    press(&f, AT_KEY_LEFT);
    assert_string_equal(selected(&f), "model.layers.3.self_attn.o_proj.weight");
    assert_int_equal(f.ui.back, 0); /* not back in time */
    assert_int_equal(f.ui.block_top, 0);
    press(&f, 'G');
    assert_string_equal(selected(&f), "lm_head.weight");
    assert_int_equal(f.ui.block_top, 18 - f.lay.heat.h); /* scrolled to the last row */
    press(&f, AT_KEY_PGUP);
    assert_int_equal(f.ui.block_top, 17 - f.lay.heat.h);
    press(&f, 'g');
    assert_string_equal(selected(&f), "model.embed_tokens.weight");
    assert_int_equal(f.ui.block_top, 0);
    /* a click on the third row (block 1), third matrix; a double click opens it */
    at_names nm;
    at_names_scan(&nm, f.m, 0);
    int idx[120], n = at_ui_filtered_layers(&f.ui, f.m, idx);
    at_blocks *t = at_blocks_new(f.m, 0, idx, n, &nm, NULL);
    at_blocks_geom g;
    at_blocks_fit(t, f.lay.names.w, f.lay.titles.w, &g);
    f.ui.mouse_y = f.lay.heat.y + 2;
    f.ui.mouse_x = f.lay.names.x + g.x[2] + 3;
    press(&f, AT_KEY_MOUSE);
    assert_string_equal(selected(&f), "model.layers.1.self_attn.v_proj.weight");
    f.ui.mouse_x = f.lay.names.x + g.x[6];
    press(&f, AT_KEY_DCLICK);
    assert_string_equal(selected(&f), "model.layers.1.mlp.down_proj.weight");
    assert_int_equal(f.ui.screen, AT_SCREEN_DETAIL);
    at_ui_filtered_layers(&f.ui, f.m, idx);
    assert_int_equal(idx[f.ui.sel], f.ui.sel_layer); /* the detail shows that layer */
    press(&f, AT_KEY_ESC);
    assert_int_equal(f.ui.screen, AT_SCREEN_MAIN);
    assert_int_equal(f.ui.blocks, 1);
    at_blocks_free(t);
    press(&f, AT_KEY_F6);
    assert_int_equal(f.ui.sort, AT_SORT_MODEL);
    assert_non_null(strstr(f.ui.msg, "model order"));
    /* a filter: only the MLP is left, the selection on one of its matrices */
    press(&f, '/');
    press(&f, 'u');
    press(&f, 'p');
    press(&f, AT_KEY_ENTER);
    press(&f, AT_KEY_DOWN);
    press(&f, AT_KEY_DOWN);
    assert_string_equal(selected(&f), "model.layers.2.mlp.up_proj.weight");
    press(&f, AT_KEY_ESC);
    /* b again: the heatmap, where Left looks back in time */
    press(&f, 'b');
    assert_int_equal(f.ui.blocks, 0);
    press(&f, AT_KEY_LEFT);
    assert_true(f.ui.back > 0);
    at_model_free(f.m);

    const char *const mlp[] = {"fc1.weight", "fc2.weight"};
    f.m = at_model_new();
    at_model_add_run(f.m, "mlp", NULL, NULL);
    for (int i = 0; i < 2; i++)
        at_model_add_layer(f.m, 0, mlp[i], AT_KIND_LINEAR, 0, NULL);
    at_ui_init(&f.ui);
    press(&f, 'b');
    assert_int_equal(f.ui.blocks, 0);
    assert_non_null(strstr(f.ui.msg, "no attention layers"));
    at_model_free(f.m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keymap),
        cmocka_unit_test_setup_teardown(test_navigation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_click_and_slider, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sort_and_warnings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_freeze, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mouse_and_help, setup, teardown),
        cmocka_unit_test(test_block_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
