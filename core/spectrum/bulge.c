/* SPDX-License-Identifier: Apache-2.0 */
/* bulge.c -- band -> tridiagonal with kept reflectors, and Q applied to vectors (see bulge.h). */
#include "bulge.h"

#include "alphatop/status.h"
#include "util.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK's bulge-chasing kernel (no LAPACKE wrapper): one task of one sweep on the work copy a
 * of the band (lda = 2 kd + 1: the band plus room for the bulge). With wantz it leaves the
 * reflector it creates in v and tau at mod(sweep - 1, 2) * n + its first row (1-based). */
void ssb2st_kernels_(const char *uplo, const int *wantz, const int *ttype, const int *st,
                     const int *ed, const int *sweep, const int *n, const int *nb, const int *ib,
                     float *a, const int *lda, float *v, float *tau, const int *ldvt, float *work,
                     size_t uplo_len);

/* Columns of z per panel: a group's rows of one panel (kd + GROUP rows x CHUNK floats) stay in
 * L1, the whole panel in L2. */
#define CHUNK 64
/* Sweeps whose reflectors are applied together, position by position (see apply_range). */
#define GROUP 16
/* Widest band accepted: bounds the pair buffers in apply_range. */
#define MAX_KD 64

struct at_bulge {
    int n, kd;  /* of the last reduction; n = 0: none yet */
    int *start; /* n: index of sweep s's first reflector; start[n - 1] = the total */
    size_t start_cap;
    float *v, *tau; /* reflector k: v[k * (kd + 2) + 1 ..] (leading 1 included) between zeros
                     * (see apply_range), tau[k] */
    size_t v_cap, tau_cap;
    float *wa, *kv, *ktau, *kwork; /* the kernel's band copy, reflector slots and scratch */
    size_t wa_cap, kv_cap, ktau_cap, kwork_cap;
    float *y; /* z in panels of CHUNK columns, each transposed (n rows of CHUNK floats) */
    int isa;  /* widest kernel allowed (at_bulge_limit_isa) */
    size_t y_cap;
};

at_bulge *at_bulge_new(void)
{
    at_bulge *self = calloc(1, sizeof(at_bulge));
    if (self)
        self->isa = AT_BULGE_AVX512;
    return self;
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
    if (at_grow((void **)&self->v, &self->v_cap, total * (size_t)(kd + 2), sizeof(float)) ||
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
            float *vk = self->v + k * (size_t)(kd + 2);
            memset(vk, 0, (size_t)(kd + 2) * sizeof(float));
            memcpy(vk + 1, self->kv + slot, (size_t)len * sizeof(float));
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

/* Vector extensions, one kernel per instruction set (reflect_pair_* below): four vectors of a
 * row at a time, so that the eight dot-product accumulators and the four row values fit the
 * registers (16 on AVX2 and SSE2: four 16-float vectors there spilled on every row). */
typedef float vf16 __attribute__((vector_size(64), aligned(64)));
typedef float vf8 __attribute__((vector_size(32), aligned(32)));
typedef float vf4 __attribute__((vector_size(16), aligned(16)));

/* Two reflectors on rows 0..len-1 of one panel (rows CHUNK floats apart): first I - th u u^T,
 * then I - tl w w^T, where c = w . u. Both dot products come from one pass over the rows,
 * since w . (x - th u (u . x)) = w . x - th c (u . x); the update is a second pass. */
#define REFLECT_PAIR(name, vt, attr)                                                               \
    attr static void name(float *y, const float *u, const float *w, float th, float tl, float c,   \
                          int len)                                                                 \
    {                                                                                              \
        enum { PER = CHUNK / (int)(sizeof(vt) / sizeof(float)) };                                  \
        for (int v0 = 0; v0 < PER; v0 += 4) {                                                      \
            vt p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0}, q0 = {0}, q1 = {0}, q2 = {0}, q3 = {0};     \
            for (int i = 0; i < len; i++) {                                                        \
                const vt *row = (const vt *)(y + (size_t)i * CHUNK) + v0;                          \
                vt r0 = row[0], r1 = row[1], r2 = row[2], r3 = row[3];                             \
                float ui = u[i], wi = w[i];                                                        \
                p0 += ui * r0;                                                                     \
                p1 += ui * r1;                                                                     \
                p2 += ui * r2;                                                                     \
                p3 += ui * r3;                                                                     \
                q0 += wi * r0;                                                                     \
                q1 += wi * r1;                                                                     \
                q2 += wi * r2;                                                                     \
                q3 += wi * r3;                                                                     \
            }                                                                                      \
            p0 *= th;                                                                              \
            p1 *= th;                                                                              \
            p2 *= th;                                                                              \
            p3 *= th;                                                                              \
            q0 = tl * (q0 - c * p0);                                                               \
            q1 = tl * (q1 - c * p1);                                                               \
            q2 = tl * (q2 - c * p2);                                                               \
            q3 = tl * (q3 - c * p3);                                                               \
            for (int i = 0; i < len; i++) {                                                        \
                vt *row = (vt *)(y + (size_t)i * CHUNK) + v0;                                      \
                float ui = u[i], wi = w[i];                                                        \
                row[0] -= ui * p0 + wi * q0;                                                       \
                row[1] -= ui * p1 + wi * q1;                                                       \
                row[2] -= ui * p2 + wi * q2;                                                       \
                row[3] -= ui * p3 + wi * q3;                                                       \
            }                                                                                      \
        }                                                                                          \
    }

typedef void (*pair_fn)(float *, const float *, const float *, float, float, float, int);

/* ISO C mode keeps a * b + c as two roundings, and so two instructions: the kernels contract
 * them into fused multiply-adds (half the instructions of the whole apply). */
#if defined(__GNUC__) && !defined(__clang__)
#define CONTRACT __attribute__((optimize("fp-contract=fast")))
#else
#define CONTRACT
#endif

REFLECT_PAIR(reflect_pair_sse2, vf4, CONTRACT)
#if defined(__x86_64__) && defined(__GNUC__)
REFLECT_PAIR(reflect_pair_avx2, vf8, CONTRACT __attribute__((target("avx2,fma"))))
REFLECT_PAIR(reflect_pair_avx512, vf16, CONTRACT __attribute__((target("avx512f,fma"))))
#endif

/* The widest kernel the CPU runs, up to isa (an at_bulge_isa). */
static pair_fn pair_kernel(int isa)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (isa >= AT_BULGE_AVX512 && __builtin_cpu_supports("avx512f"))
        return reflect_pair_avx512;
    if (isa >= AT_BULGE_AVX2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return reflect_pair_avx2;
#endif
    (void)isa;
    return reflect_pair_sse2;
}

void at_bulge_limit_isa(at_bulge *self, int isa)
{
    if (self)
        self->isa = isa;
}

typedef struct apply_job {
    const at_bulge *self;
    float *y;      /* the panels, 64-byte aligned */
    size_t c0, c1; /* panels [c0, c1) */
    pair_fn kernel;
} apply_job;

/* Q y on panels [c0, c1) of y. Q = H(0, 0) H(0, 1) ... H(1, 0) ... (sweep after sweep; H(s, j)
 * is sweep s's j-th reflector), so y gets them last first. Reflectors of one sweep touch
 * disjoint rows, and H(s, j) overlaps only H(s + t, j) and H(s + t, j - 1) of later sweeps, so
 * a group of GROUP sweeps can go position by position (j ascending, sweeps descending within j)
 * once the later groups are done: the group's rows at one position (kd + GROUP rows of one
 * panel, 16 KB) stay in L1 for all its sweeps. Sweeps s and s - 1 at position j sit one row
 * apart and go through the kernel together. Panel by panel: one panel (n x CHUNK floats, 1 MB
 * at n = 4096) stays in L2 through every group, and the reflectors stream once per panel.
 * Row after row of all panels, as before, streamed the whole of y (15 MB at b = 850) through
 * the caches once per group and ran at a third of the speed. */
static void *apply_range(void *arg)
{
    const apply_job *job = arg;
    const at_bulge *self = job->self;
    const int n = self->n, kd = self->kd, nsweeps = n - 1;
    const size_t vs = (size_t)kd + 2;
    static const float none[MAX_KD + 2];
    for (size_t ch = job->c0; ch < job->c1; ch++) {
        float *panel = job->y + ch * (size_t)n * CHUNK;
        for (int s0 = (nsweeps - 1) / GROUP * GROUP; s0 >= 0; s0 -= GROUP) {
            int s1 = s0 + GROUP < nsweeps ? s0 + GROUP : nsweeps;
            int npos = sweep_count(n, kd, s0);
            for (int j = 0; j < npos; j++) {
                for (int hi = s1 - 1; hi >= s0; hi -= 2) {
                    /* the pair (hi, lo = hi - 1); at the group's start a lone hi, as lo */
                    int lo = hi > s0 ? hi - 1 : hi, has_hi = hi > s0 && j < sweep_count(n, kd, hi);
                    if (j >= sweep_count(n, kd, lo))
                        continue; /* later sweeps are shorter: nothing at j for either */
                    int row = lo + 1 + j * kd, len_lo = n - row < kd ? n - row : kd;
                    int len_hi = has_hi ? (n - row - 1 < kd ? n - row - 1 : kd) : 0;
                    size_t klo = (size_t)self->start[lo] + (size_t)j;
                    size_t khi = has_hi ? (size_t)self->start[hi] + (size_t)j : 0;
                    float th = has_hi ? self->tau[khi] : 0.0f, tl = self->tau[klo], c = 0.0f;
                    if (th == 0.0f && tl == 0.0f)
                        continue;
                    /* The stored zeros around each reflector align both on the pair's rows
                     * without a copy: u (hi's, one row down) starts at its leading zero, w
                     * (lo's) at its first element and ends on its trailing zero. */
                    int len = len_lo > len_hi + 1 ? len_lo : len_hi + 1;
                    const float *u = has_hi ? self->v + khi * vs : none;
                    const float *w = self->v + klo * vs + 1;
                    for (int i = 0; i < len; i++)
                        c += u[i] * w[i];
                    job->kernel(panel + (size_t)row * CHUNK, u, w, th, tl, c, len);
                }
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
    const size_t chunks = ((size_t)b + CHUNK - 1) / CHUNK, pn = (size_t)n * CHUNK;
    /* 64 floats of slack to start the panels on a cache line */
    if (at_grow((void **)&self->y, &self->y_cap, chunks * pn + 64, sizeof(float)))
        return AT_ERR_NOMEM;
    float *y = self->y + (64 - ((uintptr_t)self->y / sizeof(float)) % 16) % 16;
    /* panel ch holds columns ch * CHUNK .. + CHUNK - 1 of z, transposed: row i at i * CHUNK */
    for (size_t ch = 0; ch < chunks; ch++) {
        float *panel = y + ch * pn;
        for (int64_t jj = 0; jj < CHUNK; jj++) {
            int64_t j = (int64_t)ch * CHUNK + jj;
            const float *col = z + (size_t)j * (size_t)ldz;
            for (int i = 0; i < n; i++)
                panel[(size_t)i * CHUNK + (size_t)jj] = j < b ? col[i] : 0.0f;
        }
    }
    apply_job all = {self, y, 0, chunks, pair_kernel(self->isa)}, second = all;
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
    for (int64_t j = 0; j < b; j++) {
        const float *panel = y + (size_t)(j / CHUNK) * pn + (size_t)(j % CHUNK);
        float *col = z + (size_t)j * (size_t)ldz;
        for (int i = 0; i < n; i++)
            col[i] = panel[(size_t)i * CHUNK];
    }
    return AT_OK;
}
