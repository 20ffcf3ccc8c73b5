/* synth.h -- seeded synthetic runs for the view's tests, benches and driver program.
 *
 * A synthetic run looks like a model being trained: every layer's alpha falls from raw
 * (6..9) towards its own end value (some healthy, some burnt below 2), burnt layers grow
 * correlation traps, a few cells are failed fits, loss falls and accuracy rises. Same seed,
 * same numbers. Phase events come only through at_synth_track, as live from the tracker.
 */
#ifndef ALPHATOP_SYNTH_H
#define ALPHATOP_SYNTH_H

#include <stdint.h>

#include "alphatop/phase.h"
#include "model.h"

/* Adds run id to m with nlayers layers (names like "h.3.mlp.c_fc") and no snapshots yet.
 * Returns the run index or a negative status. */
int at_synth_run(at_model *m, const char *id, int nlayers);

/* Adds snapshot k (step 100 * (k + 1), wall time t) of the synthetic run: a cell per layer,
 * loss and accuracy scalars, and, when spectra is 1, each layer's spectrum (256 eigenvalues
 * drawn from a power law with the cell's alpha). Returns AT_OK or a negative status. */
int at_synth_snapshot(at_model *m, int run, int k, double t, int spectra, uint64_t seed);

/* Feeds the W results of snapshot k of run to core's phase tracker t (owned by the caller, one
 * per run), as the monitor's engine does, and adds the layer phase changes it reports to the
 * model (at_model_add_phase_event). Call after at_synth_snapshot(m, run, k, ...), for k = 0, 1,
 * ... in order. Returns AT_OK or a negative status. */
int at_synth_track(at_model *m, int run, int k, at_phase_tracker *t);

#endif
