/* SPDX-License-Identifier: Apache-2.0 */
/* synth.h -- seeded synthetic runs for the view's tests, benches and driver program.
 *
 * A synthetic run looks like a model being trained: every layer's alpha falls from raw
 * (6..9) towards its own end value (some healthy, some burnt below 2), burnt layers grow
 * correlation traps, a few cells are failed fits, a few fits rest on few eigenvalues, loss
 * falls and accuracy rises. The collapse story instead settles most layers near alpha 3 and
 * then inflates their weight norm snapshot after snapshot while the alphas stay flat (what
 * core's collapse detector looks for), and drops a stretch of snapshots after a pause of the
 * analysis. Same seed, same numbers. Phase events come only through at_synth_track, as live
 * from the tracker.
 */
#ifndef ALPHATOP_SYNTH_H
#define ALPHATOP_SYNTH_H

#include <stdint.h>

#include "alphatop/phase.h"
#include "model.h"

/* How a synthetic run looks. Zero-initialised: GPT-2 names, the training story. */
typedef struct at_synth_opts {
    const char *model; /* model class the run reports ("" or NULL: the run id) */
    int transformer;   /* 1: Llama-style names, model.layers.N.self_attn.q_proj.weight, with
                          model.embed_tokens.weight first and lm_head.weight last;
                          AT_SYNTH_MODULAR: the 8 layers of examples/torch_modular.py's
                          one-layer transformer (embed, attn.W_Q .. W_O, mlp.W_in, mlp.W_out,
                          unembed; nlayers must be AT_SYNTH_MODULAR_LAYERS) */
    int collapse;      /* 1: the collapse story */
} at_synth_opts;

/* at_synth_opts.transformer: the modular-arithmetic transformer's names. */
enum { AT_SYNTH_MODULAR = 2, AT_SYNTH_MODULAR_LAYERS = 8 };

/* Snapshots of the collapse story that were dropped (no results, a drop event each):
 * [AT_SYNTH_DROP_FROM, AT_SYNTH_DROP_FROM + AT_SYNTH_DROPS). */
enum { AT_SYNTH_DROP_FROM = 60, AT_SYNTH_DROPS = 27 };

/* Adds run id to m with nlayers layers (names like "h.3.mlp.c_fc", Llama-style names, or the
 * modular transformer's) and no snapshots yet. o may be NULL (defaults). Returns the run index
 * or a negative status (AT_ERR_ARG: the modular transformer with another number of layers). */
int at_synth_run_opts(at_model *m, const char *id, int nlayers, const at_synth_opts *o);

/* at_synth_run_opts with the defaults (the model class is the id). */
int at_synth_run(at_model *m, const char *id, int nlayers);

/* Adds snapshot k (step 100 * (k + 1), wall time t) of the synthetic run: a cell per layer,
 * loss and accuracy scalars, and, when spectra is 1, each layer's spectrum (256 eigenvalues
 * drawn from a power law with the cell's alpha). o (NULL: defaults) must be what the run was
 * made with. Returns AT_OK or a negative status. */
int at_synth_snapshot_opts(at_model *m, int run, int k, double t, int spectra, uint64_t seed,
                           const at_synth_opts *o);

/* at_synth_snapshot_opts with the defaults. */
int at_synth_snapshot(at_model *m, int run, int k, double t, int spectra, uint64_t seed);

/* Feeds the W results of snapshot k of run to core's phase tracker t (owned by the caller, one
 * per run), as the monitor's engine does, and adds the layer and run phase changes it reports
 * to the model (at_model_add_phase_event, at_model_add_run_phase_event). Call after
 * at_synth_snapshot(m, run, k, ...), for k = 0, 1, ... in order; a snapshot without results
 * (dropped) is not fed. Returns AT_OK or a negative status. */
int at_synth_track(at_model *m, int run, int k, at_phase_tracker *t);

#endif
