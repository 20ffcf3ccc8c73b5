/* SPDX-License-Identifier: Apache-2.0 */
/* esd.c -- the log-binned eigenvalue density. */
#include "esd.h"

#include <math.h>
#include <string.h>

#include "alphatop/status.h"

int at_esd_nbins(size_t n)
{
    int k = (int)ceil(2.0 * cbrt((double)n));
    return k < 10 ? 10 : k > 60 ? 60 : k;
}

int at_esd_eligible(double v)
{
    return isfinite(v) && v > AT_ESD_MIN_EVAL;
}

double at_esd_log_edge(const at_esd_hist *h, int k)
{
    return k >= h->nbins ? h->hi : h->lo + (h->hi - h->lo) * k / h->nbins;
}

double at_esd_edge(const at_esd_hist *h, int k)
{
    return pow(10.0, at_esd_log_edge(h, k));
}

int at_esd_hist_make(const double *x, size_t n, int nbins, at_esd_hist *out)
{
    if (!out || (n && !x) || nbins < 0 || nbins > AT_ESD_MAX_BINS)
        return AT_ERR_ARG;
    memset(out, 0, sizeof *out);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (at_esd_eligible(x[i])) {
            lo = fmin(lo, x[i]);
            hi = fmax(hi, x[i]);
            out->n++;
        }
    out->left_out = n - out->n;
    if (!out->n)
        return AT_ERR_EMPTY;
    out->nbins = nbins ? nbins : at_esd_nbins(out->n);
    out->lo = log10(lo);
    out->hi = log10(hi);
    if (!(out->hi > out->lo)) {
        out->lo -= 0.5;
        out->hi += 0.5;
    }
    const double scale = out->nbins / (out->hi - out->lo);
    for (size_t i = 0; i < n; i++) {
        if (!at_esd_eligible(x[i]))
            continue;
        int k = (int)floor((log10(x[i]) - out->lo) * scale);
        out->count[k < 0 ? 0 : k >= out->nbins ? out->nbins - 1 : k]++;
    }
    for (int k = 0; k < out->nbins; k++)
        out->density[k] = (double)out->count[k] /
                          ((double)out->n * (at_esd_edge(out, k + 1) - at_esd_edge(out, k)));
    return AT_OK;
}
