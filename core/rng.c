/* SPDX-License-Identifier: Apache-2.0 */
/* rng.c -- xoshiro256** (Blackman & Vigna 2018), state filled by splitmix64 so that nearby
 * seeds give unrelated streams and the all-zero state cannot occur. */
#include <math.h>

#include "alphatop/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void at_rng_seed(at_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

uint64_t at_rng_next(at_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double at_rng_uniform(at_rng *r)
{
    return (double)(at_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t at_rng_below(at_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Rejection from the largest multiple of n below 2^64 removes modulo bias. */
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do {
        v = at_rng_next(r);
    } while (v >= limit);
    return v % n;
}

double at_rng_normal(at_rng *r)
{
    double u, v, s;
    do {
        u = 2.0 * at_rng_uniform(r) - 1.0;
        v = 2.0 * at_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}
