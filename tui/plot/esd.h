/* SPDX-License-Identifier: Apache-2.0 */
/* esd.h -- the empirical spectral density (ESD) of a layer as a histogram on log-spaced bins.
 *
 * The bins split [min, max] of the eigenvalues evenly in log10; a bin's density is its count
 * over (number binned x the bin's width in eigenvalue units), so the densities integrate to 1
 * over the bins and a power law p(x) ~ x^-alpha is a straight line of slope -alpha on log-log
 * axes. Eigenvalues at or below AT_ESD_MIN_EVAL are left out, as the power-law fit leaves them
 * out (docs/metrics.md section 3), and so are non-finite ones.
 */
#ifndef ALPHATOP_PLOT_ESD_H
#define ALPHATOP_PLOT_ESD_H

#include <stddef.h>

#define AT_ESD_MIN_EVAL 1e-5

enum { AT_ESD_MAX_BINS = 100 };

typedef struct at_esd_hist {
    int nbins;
    double lo, hi;   /* log10 of the first bin's lower edge and of the last bin's upper edge */
    size_t n;        /* eigenvalues binned */
    size_t left_out; /* eigenvalues not binned: <= AT_ESD_MIN_EVAL, or not finite */
    size_t count[AT_ESD_MAX_BINS];
    double density[AT_ESD_MAX_BINS]; /* count / (n x width), per eigenvalue unit */
} at_esd_hist;

/* A bin count for n eigenvalues: 2 n^(1/3) (the Rice rule), kept within 10 .. 60. */
int at_esd_nbins(size_t n);

/* Bins the eigenvalues x[0..n-1] (any order) into nbins log-spaced bins (0: at_esd_nbins of the
 * eligible count) over their range. When every binned value is the same v, the bins span one
 * decade centred on v. Returns AT_OK; AT_ERR_ARG (x NULL with n > 0, nbins outside
 * 0..AT_ESD_MAX_BINS, out NULL); AT_ERR_EMPTY when no eigenvalue is above AT_ESD_MIN_EVAL. */
int at_esd_hist_make(const double *x, size_t n, int nbins, at_esd_hist *out);

/* Whether eigenvalue v is binned: finite and above AT_ESD_MIN_EVAL. */
int at_esd_eligible(double v);

/* log10 of the eigenvalue at edge k (0 .. nbins) of h: bin k spans [edge k, edge k + 1). */
double at_esd_log_edge(const at_esd_hist *h, int k);

/* The eigenvalue at edge k, 10^at_esd_log_edge. */
double at_esd_edge(const at_esd_hist *h, int k);

#endif
