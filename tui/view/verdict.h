/* SPDX-License-Identifier: Apache-2.0 */
/* verdict.h -- the run's verdict, the first thing the screen says: its phase as core's
 * tracker last reported it (pre-grokking, grokking, over-fit, collapse since step S), the
 * evidence in numbers the model holds, and the worst layers. Pure: reads the model only.
 */
#ifndef ALPHATOP_VERDICT_H
#define ALPHATOP_VERDICT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef enum at_severity {
    AT_SEV_NONE = 0, /* no phase yet */
    AT_SEV_INFO,     /* pre-grokking */
    AT_SEV_OK,       /* grokking */
    AT_SEV_WARN,     /* over-fit */
    AT_SEV_CRIT,     /* collapse */
} at_severity;

enum { AT_VERDICT_WORST = 3 };

typedef struct at_verdict {
    at_run_phase phase; /* latest run phase event of the space at or before the shown end */
    int64_t since;      /* first step of that phase; -1 unknown */
    int memorised;      /* over-fit straight after pre-grokking, never grokking (core's
                           memorised run, docs/detection.md): its alphas cannot yet say whether
                           it generalises; weight decay's cleanup would mark its grokking */
    at_severity severity;
    int nlayers;                         /* layers with a result */
    int nburnt, nraw, ntrapped, nfailed; /* by their latest result (core's at_warning_for) */
    int nfew;                            /* fits on fewer than AT_FEW_TAIL eigenvalues */
    double mean_alpha;                   /* latest, over successful fits; NAN if none */
    double alpha_then;                   /* mean alpha at `since`; NAN unknown */
    double norm_growth; /* % growth of the summed Frobenius norm since `since`; NAN unknown */
    int worst[AT_VERDICT_WORST]; /* layers farthest outside alpha 2..6, worst first */
    int nworst;
} at_verdict;

/* The verdict of the space view of run over snapshot columns [0, end) into *out. */
void at_verdict_compute(at_verdict *out, const at_model *m, int run, at_space space, int end);

/* The evidence in a few words into buf (cap bytes), e.g. "weight norm +23%, mean alpha flat at
 * 3.11" (since the phase began) or "41 of 150 layers burnt (alpha < 2)". */
void at_verdict_evidence(const at_verdict *v, char *buf, size_t cap);

/* "COLLAPSE", "OVER-FIT" ("MEMORISED" for a memorised run), "GROKKING", "PRE-GROKKING",
 * "NO PHASE YET". Static string. */
const char *at_verdict_label(const at_verdict *v);

#endif
