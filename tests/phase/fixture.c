/* SPDX-License-Identifier: Apache-2.0 */
/* fixture.c -- reader and replayer of recorded snapshot sequences. */
#include "fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fx_record fixture_layer(int64_t step, const char *name, int64_t num_evals, double alpha,
                        double log_norm, int64_t num_traps)
{
    fx_record r;
    memset(&r, 0, sizeof r);
    r.kind = 'L';
    r.step = step;
    snprintf(r.name, sizeof r.name, "%s", name);
    r.m.status = alpha > 0 ? AT_FIT_SUCCESS : AT_FIT_FAILED;
    r.m.num_evals = num_evals;
    r.m.alpha = alpha > 0 ? alpha : -1.0;
    r.m.log_norm = log_norm;
    r.m.norm = pow(10.0, log_norm);
    r.m.log_spectral_norm = NAN;
    r.m.num_traps = num_traps;
    r.m.trap_max_ratio = num_traps > 0 ? 1.5 : 0.0;
    r.max_abs = NAN;
    return r;
}

fixture *fixture_load(const char *path, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "cannot open %s", path);
        return NULL;
    }
    fixture *f = calloc(1, sizeof *f);
    size_t cap = 0, lineno = 0;
    char line[512];
    while (f && fgets(line, sizeof line, fp)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (f->n == cap) {
            cap = cap ? cap * 2 : 256;
            fx_record *q = realloc(f->r, cap * sizeof *q);
            if (!q) {
                fixture_free(f);
                f = NULL;
                break;
            }
            f->r = q;
        }
        fx_record *r = &f->r[f->n];
        long long step, ne, nt;
        double alpha, ln, lsn, mx, ratio;
        if (sscanf(line, "S %lld %31s %lf", &step, r->name, &r->value) == 3) {
            r->kind = 'S';
            r->step = step;
        } else if (sscanf(line, "L %lld %31s %lld %lf %lf %lf %lf %lld %lf", &step, r->name, &ne,
                          &alpha, &ln, &lsn, &mx, &nt, &ratio) == 9) {
            char name[32];
            memcpy(name, r->name, sizeof name);
            *r = fixture_layer(step, name, ne, alpha, ln, nt);
            r->m.log_spectral_norm = lsn;
            r->m.trap_max_ratio = ratio;
            r->max_abs = mx;
        } else {
            snprintf(err, errlen, "%s:%zu: malformed record", path, lineno);
            fixture_free(f);
            f = NULL;
            break;
        }
        if (f)
            f->n++;
    }
    fclose(fp);
    if (!f && err[0] == '\0')
        snprintf(err, errlen, "out of memory reading %s", path);
    return f;
}

void fixture_free(fixture *f)
{
    if (!f)
        return;
    free(f->r);
    free(f);
}

void fixture_thin(fixture *f, int64_t every)
{
    size_t kept = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->r[i].step % every == 0)
            f->r[kept++] = f->r[i];
    f->n = kept;
}

int fixture_replay(const fx_record *r, size_t n, at_phase_tracker *t, fixture_snapshot_fn cb,
                   void *user)
{
    int layers = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = r[i].kind == 'S'
                     ? at_phase_tracker_feed_scalar(t, r[i].step, r[i].name, r[i].value)
                     : at_phase_tracker_feed_layer(t, r[i].step, r[i].name, &r[i].m, r[i].max_abs);
        if (rc)
            return rc;
        layers += r[i].kind == 'L';
        if (i + 1 < n && r[i + 1].step == r[i].step)
            continue;
        if (!layers)
            continue;
        const at_phase_event *ev;
        size_t nev;
        rc = at_phase_tracker_end_snapshot(t, r[i].step, &ev, &nev);
        if (rc)
            return rc;
        layers = 0;
        if (cb && cb(r[i].step, ev, nev, user))
            break;
    }
    return AT_OK;
}
