/* SPDX-License-Identifier: Apache-2.0 */
/* crc32.c -- CRC-32 (reflected 0xEDB88320, zlib's), slice-by-8 so a checksum costs less than
 * the copy it accompanies. The tables are built on first use under pthread_once, so concurrent
 * first calls are safe. */
#include <pthread.h>
#include <string.h>

#include "alphatop/protocol.h"

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xffu];
}

uint32_t at_proto_crc32(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&table_once, build_table);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    /* The 8-byte step reads little-endian words; on a big-endian host the byte loop does it all. */
    const int little = (union {
                           uint16_t u;
                           unsigned char b[2];
                       }){.u = 1}
                           .b[0] == 1;
    while (little && n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c;
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
            table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
            table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = table[0][(c ^ *p++) & 0xffu] ^ (c >> 8);
    return ~c;
}
