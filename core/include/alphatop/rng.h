/* SPDX-License-Identifier: Apache-2.0 */
/* rng.h -- the seeded pseudo-random generator of core (xoshiro256** seeded by splitmix64).
 *
 * Every randomized routine in alphatop takes a uint64_t seed and draws from one of these, so a
 * seed reproduces a result on every platform. Not for cryptography.
 *
 *     at_rng r;
 *     at_rng_seed(&r, 42);
 *     double u = at_rng_uniform(&r);
 */
#ifndef ALPHATOP_RNG_H
#define ALPHATOP_RNG_H

#include <stdint.h>

#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Generator state; plain value, copy it to fork a stream. */
typedef struct at_rng {
    uint64_t s[4];
} at_rng;

/* Seeds *r from seed (any value, 0 included). */
AT_EXPORT void at_rng_seed(at_rng *r, uint64_t seed);

/* Next 64 random bits. */
AT_EXPORT uint64_t at_rng_next(at_rng *r);

/* Uniform double in [0, 1) with 53 random bits. */
AT_EXPORT double at_rng_uniform(at_rng *r);

/* Uniform integer in [0, n), unbiased; 0 when n == 0. */
AT_EXPORT uint64_t at_rng_below(at_rng *r, uint64_t n);

/* Standard normal deviate (mean 0, variance 1; Marsaglia polar method). */
AT_EXPORT double at_rng_normal(at_rng *r);

#ifdef __cplusplus
}
#endif
#endif
