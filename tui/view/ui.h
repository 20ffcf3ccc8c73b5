/* SPDX-License-Identifier: Apache-2.0 */
/* ui.h -- the view's interaction state, the key map and how actions change the state.
 *
 * Pure (no terminal): tui/term.c turns curses keys into AT_KEY_* codes, at_keymap turns a
 * key into an action, at_ui_apply applies it to the state and reports what the engine must
 * hear about (stop a run, pause, quit, run selected). The layers shown are the run's layers
 * that pass the name filter (and the warnings-only filter), in the chosen sort order; the
 * selection follows its layer when that order changes. In the block view (the layout's
 * `blocks`) the arrows, pages, Home/End, the wheel and clicks move over its table instead:
 * Up/Down a row (the same matrix of the next block), Left/Right a matrix; the layers stay in
 * model order there.
 */
#ifndef ALPHATOP_UI_H
#define ALPHATOP_UI_H

#include <stdint.h>

#include "layout.h"
#include "model.h"

/* Keys: printable characters are their code points; the rest are these (above Unicode). */
enum {
    AT_KEY_UP = 0x110000,
    AT_KEY_DOWN,
    AT_KEY_LEFT,
    AT_KEY_RIGHT,
    AT_KEY_PGUP,
    AT_KEY_PGDN,
    AT_KEY_HOME,
    AT_KEY_END,
    AT_KEY_ENTER,
    AT_KEY_ESC,
    AT_KEY_TAB,
    AT_KEY_BTAB, /* shift-Tab */
    AT_KEY_BACKSPACE,
    AT_KEY_RESIZE,
    AT_KEY_MOUSE,  /* a left click; position passed separately */
    AT_KEY_DCLICK, /* a left double click; position passed separately */
    AT_KEY_WHEEL_UP,
    AT_KEY_WHEEL_DOWN,
    AT_KEY_F1, /* htop's function keys: F1 help, F3 search, F4 filter, F6 sort, F10 quit */
    AT_KEY_F3,
    AT_KEY_F4,
    AT_KEY_F6,
    AT_KEY_F10,
};

typedef enum at_action {
    AT_ACT_NONE = 0,
    AT_ACT_UP,
    AT_ACT_DOWN,
    AT_ACT_LEFT, /* heatmap: look further back in time */
    AT_ACT_RIGHT,
    AT_ACT_PGUP,
    AT_ACT_PGDN,
    AT_ACT_HOME,
    AT_ACT_END, /* back to the newest snapshot */
    AT_ACT_ENTER,
    AT_ACT_BACK,        /* Esc: close the detail/help/picker, clear a filter */
    AT_ACT_NEXT_METRIC, /* Tab */
    AT_ACT_PREV_METRIC, /* shift-Tab */
    AT_ACT_FILTER,      /* '/': start typing a layer filter */
    AT_ACT_PAUSE,       /* 'p' */
    AT_ACT_STOP,        /* 's': ask to stop the run (confirmation follows) */
    AT_ACT_HELP,        /* '?' */
    AT_ACT_QUIT,        /* 'q' */
    AT_ACT_RUNS,        /* 'r': run picker */
    AT_ACT_SPACE,       /* 'd': W <-> delta (W - W_base) */
    AT_ACT_YES,         /* 'y' in the stop confirmation */
    AT_ACT_NO,          /* 'n' / Esc in the stop confirmation */
    AT_ACT_SLIDER_BACK, /* '<' or ',': replay slider one snapshot earlier */
    AT_ACT_SLIDER_FWD,  /* '>' or '.' */
    AT_ACT_CHAR,        /* a character typed into the filter */
    AT_ACT_BACKSPACE,
    AT_ACT_ACCEPT, /* Enter while typing the filter */
    AT_ACT_RESIZE,
    AT_ACT_CLICK,    /* mouse click: select what is under it */
    AT_ACT_OPEN,     /* double click: select what is under it and open its detail */
    AT_ACT_WHEEL_UP, /* mouse wheel: scroll */
    AT_ACT_WHEEL_DOWN,
    AT_ACT_SEARCH,      /* F3: start typing a search (Enter jumps to the first match) */
    AT_ACT_SEARCH_NEXT, /* 'n': the next layer matching the search */
    AT_ACT_SEARCH_PREV, /* 'N' */
    AT_ACT_SORT,        /* F6 or 'o': next sort order */
    AT_ACT_WARN_ONLY,   /* 'w': only layers with a warning, or all again */
    AT_ACT_FREEZE,      /* 'z': freeze the display at the newest snapshot, or go live again */
    AT_ACT_BLOCKS,      /* 'b': the block view of a transformer, or the heatmap again */
    AT_ACT_PICTURE,     /* 'e': save the selected layer's spectrum (ESD) as an SVG picture */
    AT_ACT_METRIC_1,    /* '1'..'7' pick a metric directly: AT_ACT_METRIC_1 + at_metric_id */
} at_action;

typedef enum at_screen {
    AT_SCREEN_MAIN = 0,
    AT_SCREEN_DETAIL, /* one layer: spectrum, alpha history, traps */
    AT_SCREEN_HELP,
    AT_SCREEN_RUNS,    /* run picker */
    AT_SCREEN_CONFIRM, /* "stop run X? y/n" over the main screen */
} at_screen;

/* Input modes decide what a key means. */
typedef enum at_input_mode {
    AT_INPUT_NORMAL = 0,
    AT_INPUT_FILTER,  /* typing after '/' */
    AT_INPUT_CONFIRM, /* y/n */
    AT_INPUT_SEARCH,  /* typing after F3 */
} at_input_mode;

/* Orders of the layer list. */
typedef enum at_sort {
    AT_SORT_MODEL = 0, /* model order */
    AT_SORT_WORST,     /* alpha: farthest outside 2..6 first; other metrics: largest first */
    AT_SORT_CHANGE,    /* largest change of the metric over the last AT_CHANGE_SPAN results */
    AT_SORT_NAME,
    AT_SORT_COUNT
} at_sort;

enum { AT_CHANGE_SPAN = 10 };

/* "model order", "worst first", "largest change", "name". Static string. */
const char *at_sort_name(at_sort s);

/* What the engine must hear about. */
typedef enum at_view_event {
    AT_VIEW_NOTHING = 0,
    AT_VIEW_QUIT,
    AT_VIEW_STOP_RUN,   /* the user confirmed: ask run `run` to stop */
    AT_VIEW_PAUSE,      /* pause (`paused` 1) or resume (0) the snapshots of run `run` */
    AT_VIEW_SELECT_RUN, /* the user now looks at run `run` */
    AT_VIEW_PICTURE,    /* save the picture of layer `layer` of run `run` in `space` */
} at_view_event;

typedef struct at_view_action {
    at_view_event kind;
    int run;
    int paused;
    int layer;      /* AT_VIEW_PICTURE: the layer (model index) */
    at_space space; /* AT_VIEW_PICTURE: W or delta */
    char *reply;    /* where the engine may say what it did (the key bar shows it): reply_cap
                       bytes, set by the view's loop; NULL: nowhere */
    size_t reply_cap;
} at_view_action;

/* The interaction state. Zero-initialise, then at_ui_init. */
typedef struct at_ui {
    at_screen screen;
    int run;              /* run shown */
    int sel;              /* selected layer (index among the layers shown) */
    int sel_layer;        /* its model index, kept across re-sorting; -1: take it from sel */
    int top;              /* first filtered layer shown in the heatmap */
    at_metric_id metric;  /* metric in the heatmap */
    at_space space;       /* W or delta */
    int back;             /* snapshots hidden at the right (looking back in time); 0 = live */
    int64_t limit_step;   /* replay slider: show only snapshots with step <= this; -1 all */
    int replay;           /* 1: the slider keys are active */
    int filtering;        /* typing the filter */
    char filter[64];      /* substring filter on layer names; "" = all */
    int run_cursor;       /* run picker cursor */
    int help_top;         /* help screen scroll */
    int mouse_y, mouse_x; /* position of the last click */
    at_sort sort;         /* order of the layer list */
    int warn_only;        /* 1: only layers with a warning */
    int searching;        /* typing the search */
    char search[64];      /* the last search ("" none) */
    int frozen;           /* 1: the display stays at limit_step while data keeps arriving */
    char msg[256];        /* a one-shot note for the key bar ("" none), cleared by the next key */
    int blocks;           /* 1: the block view (blocks.h) instead of the heatmap, when the run
                             has attention layers */
    int block_top;        /* first row of the block view shown */
} at_ui;

void at_ui_init(at_ui *ui);

/* The input mode the state is in. */
at_input_mode at_ui_input_mode(const at_ui *ui);

/* What key means in mode. Pure. */
at_action at_keymap(int key, at_input_mode mode);

/* Snapshot columns shown, [0, end): all, or up to the replay slider / frozen step, less the
 * columns hidden by looking back in time. */
int at_ui_end(const at_ui *ui, const at_model *m);

/* 1 if the latest result of layer before column end warns: burnt, raw, failed fit,
 * correlation traps, or a fit on fewer than AT_FEW_TAIL eigenvalues. */
int at_ui_layer_warns(const at_ui *ui, const at_model *m, int layer, int end);

/* Indices of the layers of ui->run that pass the filters, in the sort order, into idx (room
 * for at_model_num_layers). Returns the count. */
int at_ui_filtered_layers(const at_ui *ui, const at_model *m, int *idx);

/* Keeps selection and scroll inside the data and the selected layer on screen (call before
 * drawing: the model grows and the layout changes between frames). */
void at_ui_clamp(at_ui *ui, const at_model *m, const at_layout *lay);

/* Applies action act (key: the key that produced it, for AT_ACT_CHAR) to the state, given the
 * model and the layout last drawn (for page sizes and clicks). Fills *out with what the engine
 * must hear (kind AT_VIEW_NOTHING if nothing). Returns 1 if the screen must be redrawn. */
int at_ui_apply(at_ui *ui, const at_model *m, const at_layout *lay, at_action act, int key,
                at_view_action *out);

#endif
