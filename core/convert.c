/* SPDX-License-Identifier: Apache-2.0 */
/* convert.c -- float16 / bfloat16 weights widened to float32 (exact: every value is representable).
 */
#include <string.h>

#include "alphatop/htsr.h"

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE 754 binary16 -> binary32. Subnormal halves become normal floats; inf/NaN keep their
 * sign and payload (shifted into the wider mantissa). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1fu)
        return bits_to_float(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return bits_to_float(sign);
        /* Normalize: shift until the implicit bit appears; each shift lowers the exponent. */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while ((man & 0x400u) == 0);
        man &= 0x3ffu;
        return bits_to_float(sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13));
    }
    return bits_to_float(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

void at_convert_to_f32(const void *src, at_dtype dtype, size_t n, float *dst)
{
    if (dtype == AT_DTYPE_F32) {
        memcpy(dst, src, n * sizeof *dst);
        return;
    }
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++) {
        /* Little-endian per the tensor contract, independent of host byte order. */
        uint16_t v = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
        dst[i] = dtype == AT_DTYPE_F16 ? half_to_float(v) : bits_to_float((uint32_t)v << 16);
    }
}
