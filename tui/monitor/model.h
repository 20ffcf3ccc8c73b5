/* SPDX-License-Identifier: Apache-2.0 */
/* model.h -- what the monitor's view shows: runs, their layers, per-snapshot metric cells,
 * latest spectra, scalar series, events and the monitor's own state.
 *
 * The engine (watch/replay) fills the model; the view (view.h) only reads it. A run has
 * snapshot columns (sorted by step) and layers (in model order = order of first
 * at_model_add_layer). Every layer has one cell per snapshot column and per space (the
 * weights W, and for fine-tunes the delta W - W_base); a cell is 32 bytes (floats, not a
 * whole at_metrics). Delta storage is allocated on the first delta cell of a run.
 *
 * Typical use (engine side, UI thread):
 *     at_model *m = at_model_new();
 *     int r = at_model_add_run(m, "run-id", "gpt2-small", "gpu07");
 *     int l = at_model_add_layer(m, r, "h.0.attn.c_attn", AT_KIND_LINEAR, 2, shape);
 *     at_model_add_snapshot(m, r, 1200, now);          // snapshot header arrived
 *     at_model_add_cell(m, r, l, AT_SPACE_W, 1200, &metrics);   // result of the worker
 *     at_model_free(m);
 *
 * Threading: NOT thread-safe, by design. The engine updates it on the UI thread (between
 * frames, from results it polls off its worker); nothing else touches it.
 * Indices (run, layer, column) are stable, except that a snapshot arriving out of step order
 * shifts the columns after it by one.
 */
#ifndef ALPHATOP_MODEL_H
#define ALPHATOP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/htsr.h"
#include "alphatop/phase.h"
#include "alphatop/status.h"

/* The metrics the heatmap can show. */
typedef enum at_metric_id {
    AT_METRIC_ALPHA = 0,
    AT_METRIC_ALPHA_WEIGHTED = 1,
    AT_METRIC_LOG_NORM = 2,
    AT_METRIC_LOG_SPECTRAL_NORM = 3,
    AT_METRIC_STABLE_RANK = 4,
    AT_METRIC_TRAPS = 5,    /* num_traps */
    AT_METRIC_DETX_GAP = 6, /* log10(detx_val / xmin): > 0 when detX sits above xmin */
    AT_METRIC_COUNT = 7
} at_metric_id;

/* "alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "stable_rank", "traps",
 * "detx_gap". Static string. */
const char *at_metric_name(at_metric_id id);

/* The value of metric id in *m as a double; NAN when it does not exist (failed or skipped fit,
 * option off). */
double at_metric_value(const at_metrics *m, at_metric_id id);

/* What was analysed: the weights, or their difference from the base model (fine-tunes). */
typedef enum at_space { AT_SPACE_W = 0, AT_SPACE_DELTA = 1, AT_SPACE_COUNT = 2 } at_space;

/* status of a cell with no result for its snapshot (yet). */
enum { AT_CELL_EMPTY = 255 };

/* One layer in one snapshot. */
typedef struct at_cell {
    float v[AT_METRIC_COUNT]; /* by at_metric_id; NAN where missing */
    uint8_t status;           /* at_fit_status, or AT_CELL_EMPTY */
    uint8_t mode;             /* at_mode that produced it */
    uint16_t tail;            /* eigenvalues the power-law fit rests on (num_pl_spikes, at most
                                 65535); 0 when unknown */
} at_cell;

/* A fit that rests on fewer tail eigenvalues than this is marked unreliable in the view. */
enum { AT_FEW_TAIL = 30 };

/* A run, as the engine knows it. Returned mutable by at_model_run: the engine sets the
 * fields directly (then calls at_model_touch). */
typedef struct at_run_info {
    char id[64];               /* the agent's run id (unique key) */
    char name[128];            /* human name ("" if none) */
    char host[128];            /* trainer host ("" if unknown) */
    int64_t step;              /* latest trainer step heard of (>= last snapshot step) */
    int64_t interval;          /* snapshot interval in steps; 0 unknown */
    double last_snapshot_time; /* Unix time (s) of the last snapshot received; 0 none */
    int64_t dropped;           /* snapshots dropped (by agent or monitor) */
    int stop_requested;        /* the user asked this run to stop */
    int paused;                /* the user paused its snapshots (the trainer got pause) */
    int ended;                 /* the trainer said goodbye */
    char log[512];             /* the run log it is recorded to (watch) or read from (replay);
                                  "" none */
} at_run_info;

/* A layer's description. */
typedef struct at_layer_info {
    char name[128];
    at_layer_kind kind;
    int ndim;
    int64_t shape[4];
} at_layer_info;

/* Latest eigenvalue spectrum and fit of one layer (for the detail view). */
typedef struct at_spectrum {
    int64_t step;
    size_t n;
    const float *evals; /* ascending, n values; borrowed from the model */
    double xmin, alpha;
} at_spectrum;

/* A scalar series (loss, accuracy, ...), in arrival order. */
typedef struct at_series {
    const char *name;
    size_t n;
    const int64_t *steps;
    const double *values;
} at_series;

/* Event kinds. */
typedef enum at_event_kind {
    AT_EVENT_PHASE = 0,   /* a layer changed phase (core's tracker: at_model_add_phase_event) */
    AT_EVENT_WARNING = 1, /* a rule or heuristic warns */
    AT_EVENT_TRAP = 2,    /* correlation traps appeared */
    AT_EVENT_STOP = 3,    /* stop requested / sent */
    AT_EVENT_DROP = 4,    /* snapshots dropped */
    AT_EVENT_ERROR = 5,   /* bad input, analysis error */
    AT_EVENT_INFO = 6,
} at_event_kind;

/* "phase", "warning", "trap", "stop", "drop", "error", "info". Static string. */
const char *at_event_kind_name(at_event_kind k);

/* The kind of the event for a run entering phase `to`: the collapse warns, the other phases
 * inform. The live engine and the replay of a run log both classify through this. */
at_event_kind at_run_phase_event_kind(at_run_phase to);

typedef struct at_event {
    int run;      /* run index; -1 for the monitor itself */
    int layer;    /* layer index in that run; -1 for the whole run */
    int64_t step; /* -1 if none */
    at_event_kind kind;
    at_layer_phase from, to; /* AT_EVENT_PHASE only */
    at_space space;          /* phase changes: the view whose phase changed; else AT_SPACE_W */
    char text[160];
    /* A change of the run's phase (at_model_add_run_phase_event): the new phase; kind is then
     * at_run_phase_event_kind(run_to). AT_RUN_UNKNOWN for every other event. */
    at_run_phase run_to;
    int64_t since; /* phase changes: first step of the new phase (core's since_step); else -1 */
} at_event;

/* The monitor's own state, monitor-wide. Returned mutable by at_model_state. */
typedef struct at_monitor_state {
    int layers_done;       /* layers of the current snapshot computed */
    int layers_pending;    /* layers waiting for the worker */
    double behind_seconds; /* age of the oldest unanalysed snapshot; 0 when caught up */
    int fast;              /* 1 fast mode, 0 exact */
    int replay;            /* showing a recorded log, not a live run */
    int follow;            /* the replay follows a log still being written (tail -f) */
    char record[512];      /* where runs are recorded: the --record LOG or the directory of
                              one log per run; in a replay the log read; "" not recording */
} at_monitor_state;

typedef struct at_model at_model;

/* New empty model. Caller owns return value (free with at_model_free); NULL if out of memory. */
at_model *at_model_new(void);

/* Frees the model and everything in it. NULL-safe. */
void at_model_free(at_model *self);

/* Counter bumped by every change (add/set/touch): the view redraws when it moved. */
uint64_t at_model_version(const at_model *self);

/* Marks the model changed after the engine edited an at_run_info or at_monitor_state. */
void at_model_touch(at_model *self);

/* Adds a run, or finds it by id. Strings are copied (truncated to fit; NULL is "").
 * Returns the run index (>= 0) or AT_ERR_ARG / AT_ERR_NOMEM. */
int at_model_add_run(at_model *self, const char *id, const char *name, const char *host);

/* Run index for id, or AT_ERR_NOTFOUND. */
int at_model_find_run(const at_model *self, const char *id);

/* Gives run's index to a new run named id: the old run's layers, snapshot columns and scalars
 * are freed, its info cleared, and its events become monitor-wide (run -1: their text names
 * it), so memory stays bounded however many runs come and go (the engine's --max-runs).
 * Returns r, or AT_ERR_ARG (a bad run or id). */
int at_model_reuse_run(at_model *self, int r, const char *id);

int at_model_num_runs(const at_model *self);

/* The run's info, mutable for the engine (see at_run_info; the view only reads it). Borrowed;
 * NULL for a bad index. */
at_run_info *at_model_run(const at_model *self, int run);

/* The monitor state, mutable for the engine (the view only reads it). Borrowed; never NULL. */
at_monitor_state *at_model_state(const at_model *self);

/* Adds a layer at the end of the run's model order, or finds it by name. shape: ndim values
 * (copied; NULL allowed). Returns the layer index (>= 0) or AT_ERR_ARG / AT_ERR_NOMEM. */
int at_model_add_layer(at_model *self, int run, const char *name, at_layer_kind kind, int ndim,
                       const int64_t *shape);

/* Layer index for name, or AT_ERR_NOTFOUND (AT_ERR_ARG for a bad run). */
int at_model_find_layer(const at_model *self, int run, const char *name);

/* Number of layers of run (0 for a bad run). */
int at_model_num_layers(const at_model *self, int run);

/* Layer description. Borrowed; NULL for bad indices. */
const at_layer_info *at_model_layer(const at_model *self, int run, int layer);

/* Adds a snapshot column for step (kept sorted by step), or finds it. wall_time (Unix s, 0 if
 * unknown) updates the run's last_snapshot_time when larger; the run's step becomes at least
 * step. Returns the column index (>= 0) or AT_ERR_ARG / AT_ERR_NOMEM. */
int at_model_add_snapshot(at_model *self, int run, int64_t step, double wall_time);

/* Number of snapshot columns of run (0 for a bad run). */
int at_model_num_snapshots(const at_model *self, int run);

/* Step of column col; -1 for bad indices. */
int64_t at_model_snapshot_step(const at_model *self, int run, int col);

/* Index of the last column whose step <= step, or -1 if none. */
int at_model_snapshot_at(const at_model *self, int run, int64_t step);

/* Stores the result *m of layer in the snapshot at step (the column is created if needed),
 * replacing an earlier one. Adds no event: phase changes come from core's phase tracker
 * (at_model_add_phase_event), which filters noise around the thresholds. Returns AT_OK,
 * AT_ERR_ARG or AT_ERR_NOMEM. */
int at_model_add_cell(at_model *self, int run, int layer, at_space space, int64_t step,
                      const at_metrics *m);

/* The cell of (run, layer, space, col). Borrowed until the next add; NULL for bad indices or
 * when the run has no cells in that space. A cell with no result has status AT_CELL_EMPTY.
 * A layer's cells are contiguous: cell(col + 1) == cell(col) + 1 for valid columns. */
const at_cell *at_model_cell(const at_model *self, int run, int layer, at_space space, int col);

/* The latest cell of (run, layer, space) with a result (status != AT_CELL_EMPTY) among
 * columns [0, end); NULL if none. Borrowed as at_model_cell. */
const at_cell *at_model_latest_cell(const at_model *self, int run, int layer, at_space space,
                                    int end);

/* Counter of changes to a layer's cells other than appends to the newest column (a late
 * result for an older snapshot, a snapshot inserted out of order): summaries of old columns
 * computed at one value stay valid while it does not move. */
uint64_t at_model_layer_history(const at_model *self, int run, int layer);

/* 1 if the run has any cell in space (the delta toggle is offered only then). */
int at_model_has_space(const at_model *self, int run, at_space space);

/* Keeps evals[0..n-1] (ascending, converted to float) and the fit as the layer's latest
 * spectrum in space, replacing the previous one. Returns AT_OK, AT_ERR_ARG or AT_ERR_NOMEM. */
int at_model_set_spectrum(at_model *self, int run, int layer, at_space space, int64_t step,
                          const double *evals, size_t n, double xmin, double alpha);

/* The latest spectrum, or NULL if none. Borrowed until the next set_spectrum of that layer. */
const at_spectrum *at_model_spectrum(const at_model *self, int run, int layer, at_space space);

/* Appends (step, value) to the run's series name (created on first use). Returns AT_OK,
 * AT_ERR_ARG or AT_ERR_NOMEM. */
int at_model_add_scalar(at_model *self, int run, const char *name, int64_t step, double value);

int at_model_num_scalars(const at_model *self, int run);

/* Series i of run, filled into *out (pointers borrowed until the next add). Returns AT_OK or
 * AT_ERR_ARG. */
int at_model_scalar(const at_model *self, int run, int i, at_series *out);

/* Appends an event (text copied, truncated). run -1: monitor-wide; layer -1: whole run; step
 * -1: none. It is no phase change (run_to AT_RUN_UNKNOWN, since -1). Returns the event index (>= 0)
 * or AT_ERR_ARG / AT_ERR_NOMEM. At most AT_MODEL_MAX_EVENTS are kept: past that the older half
 * is dropped, except the run-phase changes of the runs held (the verdict reads the latest), so
 * indices of older events change. */
#define AT_MODEL_MAX_EVENTS 20000
int at_model_add_event(at_model *self, int run, int layer, int64_t step, at_event_kind kind,
                       const char *text);

/* Appends a layer phase change reported by core's phase tracker (ev->kind must be
 * AT_EVENT_LAYER_PHASE) for the space view of run, as an AT_EVENT_PHASE event at ev->step with
 * ev->from / ev->to and since = ev->since_step, on the layer named ev->layer (-1 if the model
 * has no such layer). text is
 * what the event says (copied, truncated; NULL: ev->text). A layer's first phase (from
 * AT_LAYER_UNKNOWN) is where it starts, not a change: it is not added. Returns 1 when added,
 * 0 for a first phase, or AT_ERR_ARG / AT_ERR_NOMEM. */
int at_model_add_phase_event(at_model *self, int run, at_space space, const at_phase_event *ev,
                             const char *text);

/* Appends a change of the run's phase reported by core's tracker (ev->kind must be
 * AT_EVENT_RUN_PHASE) for the space view of run: an event of kind
 * at_run_phase_event_kind(ev->to) at ev->step, run-wide, with run_to = ev->to and since =
 * ev->since_step. text as in at_model_add_phase_event. Returns the event index (>= 0) or
 * AT_ERR_ARG / AT_ERR_NOMEM. */
int at_model_add_run_phase_event(at_model *self, int run, at_space space, const at_phase_event *ev,
                                 const char *text);

int at_model_num_events(const at_model *self);

/* Event i (0 = oldest). Borrowed; NULL for a bad index. */
const at_event *at_model_event(const at_model *self, int i);

/* Bytes the model holds per layer-snapshot cell (for the bench's memory report). */
size_t at_model_cell_bytes(void);

#endif
