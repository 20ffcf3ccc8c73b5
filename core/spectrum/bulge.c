/* bulge.c -- band -> tridiagonal with kept reflectors, and Q applied to vectors (see bulge.h). */
#include "bulge.h"

#include "alphatop/status.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK's bulge-chasing kernel (no LAPACKE wrapper): one task of one sweep on the work copy a
 * of the band (lda = 2 kd + 1: the band plus room for the bulge). With wantz it leaves the
 * reflector it creates in v and tau at mod(sweep - 1, 2) * n + its first row (1-based). */
void ssb2st_kernels_(const char *uplo, const int *wantz, const int *ttype, const int *st,
                     const int *ed, const int *sweep, const int *n, const int *nb, const int *ib,
                     float *a, const int *lda, float *v, float *tau, const int *ldvt, float *work,
                     size_t uplo_len);

/* Columns of z per kernel call: four 16-float vectors stay in registers, and a group's rows of
 * one chunk (kd + GROUP rows x CHUNK floats) stay in L1. */
#define CHUNK 64
/* Sweeps whose reflectors are applied together, position by position (see apply_range). */
#define GROUP 16
/* Widest band accepted: bounds the pair buffers in apply_range. */
#define MAX_KD 64

struct at_bulge {
    int n, kd;  /* of the last reduction; n = 0: none yet */
    int *start; /* n: index of sweep s's first reflector; start[n - 1] = the total */
    size_t start_cap;
    float *v, *tau; /* reflector k: v[k * kd ..] (leading 1 included), tau[k] */
    size_t v_cap, tau_cap;
    float *wa, *kv, *ktau, *kwork; /* the kernel's band copy, reflector slots and scratch */
    size_t wa_cap, kv_cap, ktau_cap, kwork_cap;
    float *y; /* z transposed: n rows of ldy floats, zero-padded to whole chunks */
    size_t y_cap;
};

at_bulge *at_bulge_new(void)
{
    return calloc(1, sizeof(at_bulge));
}

void at_bulge_free(at_bulge *self)
{
    if (!self)
        return;
    free(self->start);
    free(self->v);
    free(self->tau);
    free(self->wa);
    free(self->kv);
    free(self->ktau);
    free(self->kwork);
    free(self->y);
    free(self);
}

/* Sweep s (0-based) eliminates column s below its subdiagonal: its reflectors start at rows
 * s + 1, s + 1 + kd, s + 1 + 2 kd, ... < n, each min(kd, n - row) long. */
static int sweep_count(int n, int kd, int s)
{
    return (n - s - 2) / kd + 1;
}

static int reserve(at_bulge *self, int n, int kd)
{
    if (at_grow((void **)&self->start, &self->start_cap, (size_t)n, sizeof(int)))
        return AT_ERR_NOMEM;
    int acc = 0;
    for (int s = 0; s + 1 < n; s++) {
        self->start[s] = acc;
        acc += sweep_count(n, kd, s);
    }
    self->start[n - 1] = acc;
    size_t total = (size_t)acc, lda = 2 * (size_t)kd + 1;
    if (at_grow((void **)&self->v, &self->v_cap, total * (size_t)kd, sizeof(float)) ||
        at_grow((void **)&self->tau, &self->tau_cap, total, sizeof(float)) ||
        at_grow((void **)&self->wa, &self->wa_cap, lda * (size_t)n, sizeof(float)) ||
        at_grow((void **)&self->kv, &self->kv_cap, 2 * (size_t)n + (size_t)kd, sizeof(float)) ||
        at_grow((void **)&self->ktau, &self->ktau_cap, 2 * (size_t)n, sizeof(float)) ||
        at_grow((void **)&self->kwork, &self->kwork_cap, 2 * (size_t)kd + 2, sizeof(float)))
        return AT_ERR_NOMEM;
    return AT_OK;
}

/* One sweep, s1 = s + 1 (LAPACK's 1-based sweep number): task 1 makes the reflector of column s
 * and applies it to the diagonal block; then even tasks apply the last reflector to the block
 * below (the bulge) and make the next one from the bulge's first column, odd tasks apply it to
 * the next diagonal block. The task numbering, block bounds and stop test are dsytrd_sb2st's. */
static void chase(at_bulge *self, int s1)
{
    const int n = self->n, kd = self->kd, lda = 2 * kd + 1, wantz = 1, ib = 1, ldvt = kd + 1;
    for (int task = 1;; task++) {
        int ttype = task == 1 ? 1 : task % 2 + 2;
        int colpt = (ttype == 2 ? task / 2 : (task + 1) / 2) * kd + s1;
        int st = colpt - kd + 1, ed = colpt < n ? colpt : n;
        int last = ttype == 2 ? colpt : (st >= ed - 1 && ed == n) ? n : 0;
        ssb2st_kernels_("L", &wantz, &ttype, &st, &ed, &s1, &n, &kd, &ib, self->wa, &lda, self->kv,
                        self->ktau, &ldvt, self->kwork, 1);
        int made = ttype == 1 ? st : ttype == 2 && ed < n ? ed + 1 : 0; /* 1-based first row */
        if (made) {
            int len = n - made + 1 < kd ? n - made + 1 : kd;
            size_t slot = (size_t)((s1 - 1) % 2) * (size_t)n + (size_t)made - 1;
            size_t k = (size_t)self->start[s1 - 1] + (size_t)((made - s1 - 1) / kd);
            memcpy(self->v + k * (size_t)kd, self->kv + slot, (size_t)len * sizeof(float));
            self->tau[k] = self->ktau[slot];
        }
        if (last >= n - 1)
            return;
    }
}

int at_bulge_reduce(at_bulge *self, int n, int kd, const float *ab, int ldab, float *d, float *e)
{
    if (!self || !ab || !d || (n > 1 && !e) || n < 1 || kd < 0 || kd >= n || kd > MAX_KD ||
        ldab < kd + 1)
        return AT_ERR_ARG;
    self->n = 0;
    if (kd <= 1) { /* already tridiagonal: Q = I */
        for (int i = 0; i < n; i++) {
            d[i] = ab[(size_t)i * (size_t)ldab];
            if (i + 1 < n)
                e[i] = kd ? ab[(size_t)i * (size_t)ldab + 1] : 0.0f;
        }
        self->n = n;
        self->kd = kd;
        return AT_OK;
    }
    if (reserve(self, n, kd))
        return AT_ERR_NOMEM;
    self->n = n;
    self->kd = kd;
    size_t lda = 2 * (size_t)kd + 1;
    for (int j = 0; j < n; j++) {
        float *col = self->wa + (size_t)j * lda;
        memcpy(col, ab + (size_t)j * (size_t)ldab, (size_t)(kd + 1) * sizeof(float));
        memset(col + kd + 1, 0, (size_t)kd * sizeof(float));
    }
    /* Sweep after sweep: the order dsytrd_sb2st's task dependencies allow on one thread, and
     * the order in which Q's reflectors multiply. */
    for (int s1 = 1; s1 < n; s1++)
        chase(self, s1);
    for (int i = 0; i < n; i++) {
        d[i] = self->wa[(size_t)i * lda];
        if (i + 1 < n)
            e[i] = self->wa[(size_t)i * lda + 1];
    }
    return AT_OK;
}

/* Vector extensions: the same code becomes AVX-512, AVX2 or SSE2 in the clones below. */
typedef float vf16 __attribute__((vector_size(64), aligned(4), may_alias));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* Two reflectors on rows 0..len-1 of one chunk of y (rows ldy apart): first I - th u u^T,
 * then I - tl w w^T, where c = w . u. Both dot products come from one pass over the rows,
 * since w . (x - th u (u . x)) = w . x - th c (u . x); the update is a second pass. */
CLONES static void reflect_pair(float *y, size_t ldy, const float *u, const float *w, float th,
                                float tl, float c, int len)
{
    vf16 p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0}, q0 = {0}, q1 = {0}, q2 = {0}, q3 = {0};
    for (int i = 0; i < len; i++) {
        const vf16 *row = (const vf16 *)(y + (size_t)i * ldy);
        vf16 r0 = row[0], r1 = row[1], r2 = row[2], r3 = row[3];
        float ui = u[i], wi = w[i];
        p0 += ui * r0;
        p1 += ui * r1;
        p2 += ui * r2;
        p3 += ui * r3;
        q0 += wi * r0;
        q1 += wi * r1;
        q2 += wi * r2;
        q3 += wi * r3;
    }
    p0 *= th;
    p1 *= th;
    p2 *= th;
    p3 *= th;
    q0 = tl * (q0 - c * p0);
    q1 = tl * (q1 - c * p1);
    q2 = tl * (q2 - c * p2);
    q3 = tl * (q3 - c * p3);
    for (int i = 0; i < len; i++) {
        vf16 *row = (vf16 *)(y + (size_t)i * ldy);
        float ui = u[i], wi = w[i];
        row[0] -= ui * p0 + wi * q0;
        row[1] -= ui * p1 + wi * q1;
        row[2] -= ui * p2 + wi * q2;
        row[3] -= ui * p3 + wi * q3;
    }
}

typedef struct apply_job {
    const at_bulge *self;
    size_t ldy, c0, c1; /* chunks [c0, c1) of y */
} apply_job;

/* Q y on y's chunks [c0, c1). Q = H(0, 0) H(0, 1) ... H(1, 0) ... (sweep after sweep; H(s, j) is
 * sweep s's j-th reflector), so y gets them last first. Reflectors of one sweep touch disjoint
 * rows, and H(s, j) overlaps only H(s + t, j) and H(s + t, j - 1) of later sweeps, so a group of
 * GROUP sweeps can go position by position (j ascending, sweeps descending within j) once the
 * later groups are done: the group's rows at one position stay in cache for all its sweeps.
 * Sweeps s and s - 1 at position j sit one row apart and go through reflect_pair together. */
static void *apply_range(void *arg)
{
    const apply_job *job = arg;
    const at_bulge *self = job->self;
    const int n = self->n, kd = self->kd, nsweeps = n - 1;
    float u[MAX_KD + 1], w[MAX_KD + 1];
    for (int s0 = (nsweeps - 1) / GROUP * GROUP; s0 >= 0; s0 -= GROUP) {
        int s1 = s0 + GROUP < nsweeps ? s0 + GROUP : nsweeps;
        int npos = sweep_count(n, kd, s0);
        for (int j = 0; j < npos; j++) {
            for (int hi = s1 - 1; hi >= s0; hi -= 2) {
                /* the pair (hi, lo = hi - 1); at the group's start a lone hi, as lo with no hi */
                int lo = hi > s0 ? hi - 1 : hi, has_hi = hi > s0 && j < sweep_count(n, kd, hi);
                if (j >= sweep_count(n, kd, lo))
                    continue; /* later sweeps are shorter: nothing at j for either */
                int row = lo + 1 + j * kd, len_lo = n - row < kd ? n - row : kd;
                int len_hi = has_hi ? (n - row - 1 < kd ? n - row - 1 : kd) : 0;
                size_t klo = (size_t)self->start[lo] + (size_t)j, khi = klo;
                if (has_hi)
                    khi = (size_t)self->start[hi] + (size_t)j;
                float th = has_hi ? self->tau[khi] : 0.0f, tl = self->tau[klo], c = 0.0f;
                if (th == 0.0f && tl == 0.0f)
                    continue;
                int len = len_lo > len_hi + 1 ? len_lo : len_hi + 1;
                const float *vl = self->v + klo * (size_t)kd, *vh = self->v + khi * (size_t)kd;
                for (int i = 0; i < len; i++) {
                    u[i] = i >= 1 && i - 1 < len_hi ? vh[i - 1] : 0.0f;
                    w[i] = i < len_lo ? vl[i] : 0.0f;
                    c += u[i] * w[i];
                }
                for (size_t ch = job->c0; ch < job->c1; ch++)
                    reflect_pair(self->y + (size_t)row * job->ldy + ch * CHUNK, job->ldy, u, w, th,
                                 tl, c, len);
            }
        }
    }
    return NULL;
}

int at_bulge_apply(at_bulge *self, int64_t b, float *z, int64_t ldz, int threads)
{
    if (!self)
        return AT_ERR_ARG;
    if (self->n == 0)
        return AT_ERR_STATE;
    const int n = self->n;
    if (!z || b < 1 || ldz < n)
        return AT_ERR_ARG;
    if (self->kd <= 1)
        return AT_OK; /* no reflectors */
    size_t chunks = ((size_t)b + CHUNK - 1) / CHUNK, ldy = chunks * CHUNK;
    if (at_grow((void **)&self->y, &self->y_cap, (size_t)n * ldy, sizeof(float)))
        return AT_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        float *row = self->y + (size_t)i * ldy;
        for (int64_t j = 0; j < b; j++)
            row[j] = z[(size_t)i + (size_t)j * (size_t)ldz];
        memset(row + b, 0, (ldy - (size_t)b) * sizeof(float));
    }
    apply_job all = {self, ldy, 0, chunks}, second = all;
    pthread_t helper;
    int split = threads >= 2 && chunks >= 2;
    if (split) {
        all.c1 = chunks / 2;
        second.c0 = all.c1;
        split = pthread_create(&helper, NULL, apply_range, &second) == 0;
        if (!split)
            all.c1 = chunks;
    }
    apply_range(&all);
    if (split)
        pthread_join(helper, NULL);
    for (int64_t j = 0; j < b; j++)
        for (int i = 0; i < n; i++)
            z[(size_t)i + (size_t)j * (size_t)ldz] = self->y[(size_t)i * ldy + (size_t)j];
    return AT_OK;
}
