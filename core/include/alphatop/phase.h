/* SPDX-License-Identifier: Apache-2.0 */
/* phase.h -- phases of a training run seen through its weights, and the rules that stop it.
 *
 * A tracker is fed, once per completed snapshot, the exact-mode metrics of every analysed
 * layer (at_metrics, with traps when computed) and, whenever the trainer logs one, scalars.
 * It keeps per-layer HTSR phases with hysteresis (burnt alpha < 2, healthy 2..6, raw > 6,
 * failed fit), per-layer and run-level trends over a window of snapshots, and the run's
 * grokking phase. Stop rules are parsed from strings and evaluated against the tracker.
 * Pure computation: no I/O, no threads; memory grows with the layers and with the history the
 * collapse detector keeps (back to the oldest step a future span can reach).
 * Thresholds and the collapse detector are documented in docs/detection.md.
 *
 * Typical use (the monitor):
 *     at_phase_opts o; at_phase_opts_default(&o);
 *     at_phase_tracker *t = at_phase_tracker_new(&o);
 *     at_stop_rules *rules = NULL; char err[200];
 *     if (at_stop_rules_parse("collapse,scalar:test_acc-drop:0.05", &rules, err, sizeof err))
 *         die(err);
 *     at_phase_tracker_feed_scalar(t, step, "test_acc", 0.97);  // whenever a scalar arrives
 *     for (each analysed layer) at_phase_tracker_feed_layer(t, step, name, &m, max_abs);
 *     const at_phase_event *ev; size_t nev;
 *     at_phase_tracker_end_snapshot(t, step, &ev, &nev);        // changes at this snapshot
 *     at_stop_verdict v;
 *     if (at_stop_rules_eval(rules, t, &v) == 1) send_stop(v.rule, v.evidence);
 *     at_stop_rules_free(rules); at_phase_tracker_free(t);
 *
 * Steps are the trainer's optimizer steps; they must not decrease from one snapshot to the next.
 * Slopes are per 1000 steps. Threading: one thread at a time per tracker.
 */
#ifndef ALPHATOP_PHASE_H
#define ALPHATOP_PHASE_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/htsr.h"
#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* HTSR phase of one layer. */
typedef enum at_layer_phase {
    AT_LAYER_UNKNOWN = 0, /* not enough snapshots yet to decide */
    AT_LAYER_RAW = 1,     /* alpha > 6: under-fit */
    AT_LAYER_HEALTHY = 2, /* 2 <= alpha <= 6 */
    AT_LAYER_BURNT = 3,   /* alpha < 2: over-fit */
    AT_LAYER_FAILED = 4,  /* the power-law fit failed */
} at_layer_phase;

/* Grokking phase of the whole run. */
typedef enum at_run_phase {
    AT_RUN_UNKNOWN = 0,      /* no layer has a phase yet */
    AT_RUN_PRE_GROKKING = 1, /* layers still raw, or weighted mean alpha above grokking_alpha */
    AT_RUN_GROKKING = 2,     /* layers trained, weighted mean alpha at or below grokking_alpha;
                                or, after memorising (over-fit before grokking), every layer's
                                norm shrinking (weight decay's cleanup) */
    AT_RUN_OVERFIT = 3,      /* layers burnt (alpha < 2), but no collapse trend in the weights */
    AT_RUN_COLLAPSE = 4,     /* generalization collapse: the `collapse` detector holds (only
                                after the run was grokking) */
} at_run_phase;

/* Options; at_phase_opts_default gives the documented defaults. */
typedef struct at_phase_opts {
    double burnt_below;    /* 2.0: alpha below this is burnt */
    double raw_above;      /* 6.0: alpha above this is raw */
    double margin;         /* 0.1: alpha must be this far past a threshold to count as across */
    int confirm;           /* 3: consecutive snapshots across a threshold before a phase changes */
    int window;            /* 10: snapshots in a trend window (slopes, growth ratios) */
    int collapse_confirm;  /* 3: fewest consecutive snapshots the collapse conditions must hold */
    double grokking_alpha; /* 4.0: weighted mean alpha at or below which trained layers count
                              as grokking (Prakash & Martin: ~4.0 before, ~2.9 at the peak) */
    /* The collapse detector (docs/detection.md); its spans and hold are shares of the steps
     * trained so far, so that its verdict does not depend on how often snapshots arrive. */
    double collapse_span;      /* 0.3: a span covers at least this share of the steps */
    double collapse_hold;      /* 0.15: the conditions must hold over this share of the steps
                                  (and for collapse_confirm snapshots) */
    double collapse_alpha_min; /* 2.8: the layers where the norm grows (each weighted by its
                                  growth) must have a median alpha at least this; 0 turns the
                                  condition off */
} at_phase_opts;

/* Kinds of event a snapshot can produce. */
typedef enum at_phase_event_kind {
    AT_EVENT_LAYER_PHASE = 0, /* a layer changed phase: from/to are at_layer_phase */
    AT_EVENT_RUN_PHASE = 1,   /* the run changed phase: from/to are at_run_phase */
} at_phase_event_kind;

/* One change. */
typedef struct at_phase_event {
    at_phase_event_kind kind;
    int64_t step;       /* snapshot at which the change was confirmed */
    int64_t since_step; /* first snapshot of the new phase (<= step, earlier with hysteresis) */
    const char *layer;  /* layer name; "" for run events. Borrowed from the tracker */
    int from, to;       /* at_layer_phase or at_run_phase values, by kind */
    char text[200];     /* one line for humans and the run log, e.g.
                           "fc1: healthy -> burnt since step 122000 (alpha 1.93)" */
} at_phase_event;

/* What the tracker knows about one layer after the latest snapshot that included it. */
typedef struct at_layer_state {
    const char *name; /* borrowed from the tracker */
    at_layer_phase phase;
    int64_t phase_since;   /* step the current phase began; -1 while unknown */
    int64_t last_step;     /* latest snapshot that included this layer */
    double alpha;          /* latest alpha; NAN for a failed fit */
    double alpha_slope;    /* d alpha per 1000 steps over the window; NAN with < 3 points */
    double log_norm;       /* latest log10 of the squared Frobenius norm */
    double log_norm_slope; /* d log_norm per 1000 steps over the window; NAN with < 3 points */
    double max_abs;        /* latest largest |W_ij|; NAN when not fed */
    double max_abs_growth; /* max_abs now / at the window start; NAN when unknown */
    int64_t num_traps;     /* latest correlation-trap count; -1 when not computed */
    double trap_max_ratio; /* latest largest trap eigenvalue / bulk edge; 0 if none */
    int64_t traps_since;   /* first step of the current run of snapshots with traps; -1 */
} at_layer_state;

/* Run-level summary after the latest snapshot. */
typedef struct at_run_state {
    at_run_phase phase;
    int64_t phase_since;         /* step the current run phase began; -1 while unknown */
    int64_t last_step;           /* latest completed snapshot; -1 before the first */
    int64_t snapshots;           /* completed snapshots */
    size_t layers;               /* layers in the latest snapshot (skipped layers not counted) */
    double mean_alpha;           /* over layers with a successful fit; NAN if none */
    double weighted_alpha;       /* the same, each layer weighted by its number of eigenvalues */
    double frac_burnt;           /* fraction of tracked layers whose phase is burnt */
    double log_norm;             /* log10 of the summed squared Frobenius norms of all layers */
    double log_norm_slope;       /* per 1000 steps over the window; NAN with < 3 points */
    double log_norm_peak_drop;   /* log_norm now minus its running maximum (<= 0) */
    double mean_alpha_slope;     /* per 1000 steps over the window; NAN with < 3 points */
    int collapse;                /* 1 while the collapse detector holds */
    int64_t collapse_since;      /* first step of the current collapse verdict; -1 */
    char collapse_evidence[300]; /* why the detector holds or, when it does not, the closest
                                    condition that failed */
} at_run_state;

/* Opaque tracker. */
typedef struct at_phase_tracker at_phase_tracker;

/* Fills *o with the defaults. */
AT_EXPORT void at_phase_opts_default(at_phase_opts *o);

/* New tracker (opts copied; NULL opts = defaults). Caller owns return value (free with
 * at_phase_tracker_free); NULL when out of memory or when opts are invalid (burnt_below >=
 * raw_above, margin < 0, confirm < 1, window < 3, collapse_confirm < 1, collapse_span outside
 * (0, 1], collapse_hold outside [0, 1), collapse_alpha_min negative or not finite). */
AT_EXPORT at_phase_tracker *at_phase_tracker_new(const at_phase_opts *opts);

/* Frees the tracker. NULL-safe. */
AT_EXPORT void at_phase_tracker_free(at_phase_tracker *self);

/* Feeds one layer's metrics for the snapshot at step (name and m borrowed; name copied).
 * max_abs is the largest |W_ij| of the layer or NAN if unknown. A layer with
 * m->status == AT_FIT_SKIPPED is ignored. Feeding the same layer twice in one snapshot keeps
 * the last. Returns AT_OK, AT_ERR_ARG (NULL name/m, empty name, step lower than a completed
 * snapshot's) or AT_ERR_NOMEM. */
AT_EXPORT int at_phase_tracker_feed_layer(at_phase_tracker *self, int64_t step, const char *name,
                                          const at_metrics *m, double max_abs);

/* Records a scalar the trainer logged (e.g. "test_acc"); keeps its latest value and running
 * peak for `scalar:` rules. Non-finite values are ignored. Returns AT_OK, AT_ERR_ARG or
 * AT_ERR_NOMEM. */
AT_EXPORT int at_phase_tracker_feed_scalar(at_phase_tracker *self, int64_t step, const char *name,
                                           double value);

/* Closes the snapshot at step: updates phases, trends and the collapse detector. *events and
 * *n_events (both may be NULL) receive this snapshot's changes, layer events first; the array
 * is borrowed and valid until the next call on self. Returns AT_OK or AT_ERR_ARG (no layer
 * fed since the previous snapshot, or step lower than the previous snapshot's). */
AT_EXPORT int at_phase_tracker_end_snapshot(at_phase_tracker *self, int64_t step,
                                            const at_phase_event **events, size_t *n_events);

/* Number of layers seen so far (in first-seen order). */
AT_EXPORT size_t at_phase_tracker_num_layers(const at_phase_tracker *self);

/* State of layer i (0 <= i < num_layers) into *out. Returns AT_OK or AT_ERR_ARG. */
AT_EXPORT int at_phase_tracker_layer(const at_phase_tracker *self, size_t i, at_layer_state *out);

/* Run-level state into *out. */
AT_EXPORT void at_phase_tracker_run(const at_phase_tracker *self, at_run_state *out);

/* Latest value and running peak of a scalar; returns 1 if it was ever fed, else 0. */
AT_EXPORT int at_phase_tracker_scalar(const at_phase_tracker *self, const char *name,
                                      double *latest, double *peak, int64_t *peak_step);

/* "unknown", "raw", "healthy", "burnt", "failed". Static string. */
AT_EXPORT const char *at_layer_phase_name(at_layer_phase p);

/* "unknown", "pre-grokking", "grokking", "over-fit", "collapse". Static string. */
AT_EXPORT const char *at_run_phase_name(at_run_phase p);

/* ---- stop rules -------------------------------------------------------------------------
 * Grammar (one rule; several are joined with commas or added one by one):
 *     collapse                    the weights-only collapse detector (at_run_state.collapse)
 *     burnt:FRACTION              fraction of layers burnt >= FRACTION (0 < FRACTION <= 1)
 *     mean-alpha-below:X          mean alpha over fitted layers < X (X > 0)
 *     scalar:NAME-drop:X          scalar NAME at least X below its running peak (X > 0, same
 *                                 units as the scalar, e.g. 0.05 for 5 points of accuracy)
 * Layer-phase rules see phases after hysteresis, so one noisy snapshot never fires them. */

/* Opaque list of rules, evaluated in the order added. */
typedef struct at_stop_rules at_stop_rules;

/* Why a rule fired. */
typedef struct at_stop_verdict {
    char rule[80];      /* the rule as written, canonical form, e.g. "burnt:0.5" */
    int64_t step;       /* snapshot step at which it fired */
    char evidence[400]; /* what was seen, e.g. "2/3 layers burnt (fc1 alpha 1.83 since 122000, "
                           "fc2 ...)" */
} at_stop_verdict;

/* Empty rule list. Caller owns return value (at_stop_rules_free); NULL when out of memory. */
AT_EXPORT at_stop_rules *at_stop_rules_new(void);

/* Frees the list. NULL-safe. */
AT_EXPORT void at_stop_rules_free(at_stop_rules *self);

/* Parses spec (one or more comma-separated rules) and appends them. On error nothing is
 * appended, errbuf (may be NULL) gets a message naming the bad rule and the grammar, and the
 * return is AT_ERR_ARG (or AT_ERR_NOMEM). */
AT_EXPORT int at_stop_rules_add(at_stop_rules *self, const char *spec, char *errbuf, size_t errlen);

/* New list parsed from spec. On success *out is owned by the caller; on error *out is NULL and
 * errbuf says why. Returns AT_OK, AT_ERR_ARG or AT_ERR_NOMEM. */
AT_EXPORT int at_stop_rules_parse(const char *spec, at_stop_rules **out, char *errbuf,
                                  size_t errlen);

/* Number of rules, and rule i's canonical text (borrowed; NULL when out of range). */
AT_EXPORT size_t at_stop_rules_count(const at_stop_rules *self);
AT_EXPORT const char *at_stop_rules_text(const at_stop_rules *self, size_t i);

/* Evaluates the rules against the tracker's latest snapshot. Returns 1 and fills *out (may be
 * NULL) with the first rule that holds, or 0 when none does. Stateless: it keeps returning 1
 * while the condition holds. */
AT_EXPORT int at_stop_rules_eval(const at_stop_rules *self, const at_phase_tracker *tracker,
                                 at_stop_verdict *out);

#ifdef __cplusplus
}
#endif
#endif
