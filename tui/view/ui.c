/* ui.c -- key map and interaction state of the monitor's view. */
#include "ui.h"

#include <stdlib.h>
#include <string.h>

void at_ui_init(at_ui *ui)
{
    memset(ui, 0, sizeof *ui);
    ui->metric = AT_METRIC_ALPHA;
    ui->space = AT_SPACE_W;
    ui->limit_step = -1;
}

at_input_mode at_ui_input_mode(const at_ui *ui)
{
    if (ui->screen == AT_SCREEN_CONFIRM)
        return AT_INPUT_CONFIRM;
    return ui->filtering ? AT_INPUT_FILTER : AT_INPUT_NORMAL;
}

at_action at_keymap(int key, at_input_mode mode)
{
    if (key == AT_KEY_RESIZE)
        return AT_ACT_RESIZE;
    if (mode == AT_INPUT_CONFIRM) {
        if (key == 'y' || key == 'Y')
            return AT_ACT_YES;
        if (key == 'n' || key == 'N' || key == 'q' || key == AT_KEY_ESC)
            return AT_ACT_NO;
        return AT_ACT_NONE;
    }
    if (mode == AT_INPUT_FILTER) {
        switch (key) {
        case AT_KEY_ENTER:
            return AT_ACT_ACCEPT;
        case AT_KEY_ESC:
            return AT_ACT_BACK;
        case AT_KEY_BACKSPACE:
            return AT_ACT_BACKSPACE;
        case AT_KEY_UP:
            return AT_ACT_UP;
        case AT_KEY_DOWN:
            return AT_ACT_DOWN;
        default:
            return key >= 0x20 && key < 0x7f ? AT_ACT_CHAR : AT_ACT_NONE;
        }
    }
    if (key >= '1' && key < '1' + AT_METRIC_COUNT)
        return (at_action)(AT_ACT_METRIC_1 + (key - '1'));
    switch (key) {
    case AT_KEY_UP:
    case 'k':
        return AT_ACT_UP;
    case AT_KEY_DOWN:
    case 'j':
        return AT_ACT_DOWN;
    case AT_KEY_LEFT:
    case 'h':
        return AT_ACT_LEFT;
    case AT_KEY_RIGHT:
    case 'l':
        return AT_ACT_RIGHT;
    case AT_KEY_PGUP:
        return AT_ACT_PGUP;
    case AT_KEY_PGDN:
    case ' ':
        return AT_ACT_PGDN;
    case AT_KEY_HOME:
    case 'g':
        return AT_ACT_HOME;
    case AT_KEY_END:
    case 'G':
        return AT_ACT_END;
    case AT_KEY_ENTER:
        return AT_ACT_ENTER;
    case AT_KEY_ESC:
        return AT_ACT_BACK;
    case AT_KEY_TAB:
        return AT_ACT_NEXT_METRIC;
    case AT_KEY_BTAB:
        return AT_ACT_PREV_METRIC;
    case '/':
        return AT_ACT_FILTER;
    case 'p':
        return AT_ACT_PAUSE;
    case 's':
        return AT_ACT_STOP;
    case '?':
        return AT_ACT_HELP;
    case 'q':
        return AT_ACT_QUIT;
    case 'r':
        return AT_ACT_RUNS;
    case 'd':
        return AT_ACT_SPACE;
    case '<':
    case ',':
        return AT_ACT_SLIDER_BACK;
    case '>':
    case '.':
        return AT_ACT_SLIDER_FWD;
    case AT_KEY_MOUSE:
        return AT_ACT_CLICK;
    default:
        return AT_ACT_NONE;
    }
}

/* Case-insensitive substring test (layer filters). */
static int contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               (hay[i] | 0x20) == (needle[i] | 0x20) /* ASCII fold; names are ASCII */)
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

int at_ui_filtered_layers(const at_ui *ui, const at_model *m, int *idx)
{
    int n = at_model_num_layers(m, ui->run), k = 0;
    for (int i = 0; i < n; i++)
        if (contains(at_model_layer(m, ui->run, i)->name, ui->filter))
            idx[k++] = i;
    return k;
}

static int count_filtered(const at_ui *ui, const at_model *m)
{
    int n = at_model_num_layers(m, ui->run);
    if (!ui->filter[0])
        return n;
    int k = 0;
    for (int i = 0; i < n; i++)
        k += contains(at_model_layer(m, ui->run, i)->name, ui->filter);
    return k;
}

/* Layers the heatmap shows at once. */
static int page(const at_layout *lay)
{
    int p = lay->heat.h * lay->layers_per_row;
    return p > 0 ? p : 1;
}

/* Keeps selection and scroll inside the data and the selection on screen. */
void at_ui_clamp(at_ui *ui, const at_model *m, const at_layout *lay)
{
    if (lay->too_small)
        return; /* nothing is shown: keep the scroll for when the terminal grows again */
    int n = count_filtered(ui, m);
    int pg = page(lay);
    if (ui->sel >= n)
        ui->sel = n - 1;
    if (ui->sel < 0)
        ui->sel = 0;
    if (ui->sel < ui->top)
        ui->top = ui->sel;
    if (ui->sel >= ui->top + pg)
        ui->top = ui->sel - pg + 1;
    if (ui->top > n - pg)
        ui->top = n - pg;
    if (ui->top < 0)
        ui->top = 0;
    if (lay->layers_per_row == 2) {
        ui->top &= ~1; /* pairs stay pairs while scrolling */
        if (ui->sel >= ui->top + pg)
            ui->top += 2;
    }
    int ns = at_model_num_snapshots(m, ui->run);
    if (ui->back > ns - 1)
        ui->back = ns > 0 ? ns - 1 : 0;
    if (ui->back < 0)
        ui->back = 0;
}

static void slider(at_ui *ui, const at_model *m, int dir)
{
    int ns = at_model_num_snapshots(m, ui->run);
    if (ns == 0)
        return;
    int col = ui->limit_step < 0 ? ns - 1 : at_model_snapshot_at(m, ui->run, ui->limit_step);
    col += dir;
    if (col >= ns - 1)
        ui->limit_step = -1;
    else
        ui->limit_step = at_model_snapshot_step(m, ui->run, col < 0 ? 0 : col);
}

static void click(at_ui *ui, const at_model *m, const at_layout *lay)
{
    int y = ui->mouse_y, x = ui->mouse_x;
    if (ui->screen == AT_SCREEN_RUNS) {
        int i = y - lay->body.y - 2;
        if (i >= 0 && i < at_model_num_runs(m))
            ui->run_cursor = i;
        return;
    }
    if (ui->screen != AT_SCREEN_MAIN || y < lay->heat.y || y >= lay->heat.y + lay->heat.h ||
        x >= lay->side.x + lay->side.w)
        return;
    ui->sel = ui->top + (y - lay->heat.y) * lay->layers_per_row;
}

int at_ui_apply(at_ui *ui, const at_model *m, const at_layout *lay, at_action act, int key,
                at_view_action *out)
{
    memset(out, 0, sizeof *out);
    int nruns = at_model_num_runs(m);
    int pg = page(lay);
    switch (act) {
    case AT_ACT_NONE:
        return 0;
    case AT_ACT_QUIT:
        out->kind = AT_VIEW_QUIT;
        return 0;
    case AT_ACT_UP:
    case AT_ACT_DOWN: {
        int d = act == AT_ACT_UP ? -1 : 1;
        if (ui->screen == AT_SCREEN_RUNS) {
            ui->run_cursor += d;
            if (ui->run_cursor < 0)
                ui->run_cursor = 0;
            if (ui->run_cursor >= nruns)
                ui->run_cursor = nruns - 1;
        } else if (ui->screen == AT_SCREEN_HELP) {
            ui->help_top = ui->help_top + d < 0 ? 0 : ui->help_top + d;
        } else {
            ui->sel += d;
        }
        break;
    }
    case AT_ACT_PGUP:
        ui->sel -= pg;
        break;
    case AT_ACT_PGDN:
        ui->sel += pg;
        break;
    case AT_ACT_HOME:
        ui->sel = 0;
        break;
    case AT_ACT_END:
        ui->sel = count_filtered(ui, m) - 1;
        break;
    case AT_ACT_LEFT:
    case AT_ACT_RIGHT: {
        int step = lay->heat.w / 4 > 1 ? lay->heat.w / 4 : 1;
        ui->back += act == AT_ACT_LEFT ? step : -step;
        break;
    }
    case AT_ACT_ENTER:
        if (ui->screen == AT_SCREEN_MAIN && count_filtered(ui, m) > 0) {
            ui->screen = AT_SCREEN_DETAIL;
        } else if (ui->screen == AT_SCREEN_RUNS && ui->run_cursor >= 0 && ui->run_cursor < nruns) {
            if (ui->run != ui->run_cursor) {
                ui->run = ui->run_cursor;
                ui->sel = ui->top = ui->back = 0;
                ui->filter[0] = 0;
                ui->space = AT_SPACE_W;
            }
            ui->screen = AT_SCREEN_MAIN;
            out->kind = AT_VIEW_SELECT_RUN;
            out->run = ui->run;
        } else {
            ui->screen = AT_SCREEN_MAIN;
        }
        break;
    case AT_ACT_BACK:
        if (ui->filtering) {
            ui->filtering = 0;
            ui->filter[0] = 0;
        } else if (ui->screen != AT_SCREEN_MAIN) {
            ui->screen = AT_SCREEN_MAIN;
        } else if (ui->filter[0]) {
            ui->filter[0] = 0;
        } else {
            ui->back = 0;
        }
        break;
    case AT_ACT_NEXT_METRIC:
        ui->metric = (at_metric_id)((ui->metric + 1) % AT_METRIC_COUNT);
        break;
    case AT_ACT_PREV_METRIC:
        ui->metric = (at_metric_id)((ui->metric + AT_METRIC_COUNT - 1) % AT_METRIC_COUNT);
        break;
    case AT_ACT_FILTER:
        ui->screen = AT_SCREEN_MAIN;
        ui->filtering = 1;
        break;
    case AT_ACT_CHAR: {
        size_t n = strlen(ui->filter);
        if (n + 1 < sizeof ui->filter) {
            ui->filter[n] = (char)key;
            ui->filter[n + 1] = 0;
        }
        ui->sel = ui->top = 0;
        break;
    }
    case AT_ACT_BACKSPACE: {
        size_t n = strlen(ui->filter);
        if (n)
            ui->filter[n - 1] = 0;
        break;
    }
    case AT_ACT_ACCEPT:
        ui->filtering = 0;
        break;
    case AT_ACT_PAUSE:
        out->kind = AT_VIEW_PAUSE;
        out->paused = !at_model_state(m)->paused;
        return 0;
    case AT_ACT_STOP:
        if (ui->run < nruns)
            ui->screen = AT_SCREEN_CONFIRM;
        break;
    case AT_ACT_YES:
        out->kind = AT_VIEW_STOP_RUN;
        out->run = ui->run;
        ui->screen = AT_SCREEN_MAIN;
        break;
    case AT_ACT_NO:
        ui->screen = AT_SCREEN_MAIN;
        break;
    case AT_ACT_HELP:
        ui->screen = ui->screen == AT_SCREEN_HELP ? AT_SCREEN_MAIN : AT_SCREEN_HELP;
        ui->help_top = 0;
        break;
    case AT_ACT_RUNS:
        ui->screen = AT_SCREEN_RUNS;
        ui->run_cursor = ui->run;
        break;
    case AT_ACT_SPACE:
        if (ui->space == AT_SPACE_DELTA)
            ui->space = AT_SPACE_W;
        else if (at_model_has_space(m, ui->run, AT_SPACE_DELTA))
            ui->space = AT_SPACE_DELTA;
        break;
    case AT_ACT_SLIDER_BACK:
    case AT_ACT_SLIDER_FWD:
        if (!ui->replay)
            return 0;
        slider(ui, m, act == AT_ACT_SLIDER_BACK ? -1 : 1);
        break;
    case AT_ACT_RESIZE:
        break;
    case AT_ACT_CLICK:
        click(ui, m, lay);
        break;
    default:
        if (act >= AT_ACT_METRIC_1 && act < AT_ACT_METRIC_1 + AT_METRIC_COUNT)
            ui->metric = (at_metric_id)(act - AT_ACT_METRIC_1);
        break;
    }
    at_ui_clamp(ui, m, lay);
    return 1;
}
