/* SPDX-License-Identifier: Apache-2.0 */
/* fixture.h -- recorded snapshot sequences (the .txt files in tests/data/phase) for the phase tests
 * and the phase_replay tool. Format (one record a line, '#' starts a comment): S <step> <name>
 * <value> L <step> <layer> <num_evals> <alpha> <log_norm> <log_spectral_norm> <max_abs> <num_traps>
 * <trap_max_ratio> Records of one snapshot share a step; alpha -1 is a failed fit (written by
 * dump_metrics.py). */
#ifndef AT_TESTS_PHASE_FIXTURE_H
#define AT_TESTS_PHASE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "alphatop/phase.h"

typedef struct fx_record {
    char kind; /* 'S' or 'L' */
    int64_t step;
    char name[32];
    double value;   /* S */
    at_metrics m;   /* L: status, num_evals, alpha, log_norm, norm, log_spectral_norm,
                       num_traps, trap_max_ratio */
    double max_abs; /* L */
} fx_record;

typedef struct fixture {
    fx_record *r;
    size_t n;
} fixture;

/* Loads path; NULL on error with a message in err. Caller frees with fixture_free. */
fixture *fixture_load(const char *path, char *err, size_t errlen);
void fixture_free(fixture *f);

/* Keeps only the records whose step is a multiple of every (> 0): the run as a trainer
 * publishing less often would have sent it. */
void fixture_thin(fixture *f, int64_t every);

/* A synthetic layer record (for crafted sequences). */
fx_record fixture_layer(int64_t step, const char *name, int64_t num_evals, double alpha,
                        double log_norm, int64_t num_traps);

/* Called after each snapshot with its events; a non-zero return stops the replay. */
typedef int (*fixture_snapshot_fn)(int64_t step, const at_phase_event *ev, size_t n_ev, void *user);

/* Feeds records r[0..n-1] into t, closing a snapshot whenever the step changes and at the
 * end. Returns AT_OK or the first failing tracker status. */
int fixture_replay(const fx_record *r, size_t n, at_phase_tracker *t, fixture_snapshot_fn cb,
                   void *user);

#endif
