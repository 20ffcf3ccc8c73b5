/* SPDX-License-Identifier: Apache-2.0 */
/* testfiles.c -- see testfiles.h. */
#include "testfiles.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static void die(const char *what)
{
    perror(what);
    exit(99);
}

void tf_write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f))
        die(path);
}

void tf_write_safetensors(const char *path, const tf_tensor *t, int n, int header_align,
                          size_t truncate)
{
    char *hdr = malloc(65536);
    size_t len = 0, off = 0, total = 0;
    len += (size_t)snprintf(hdr + len, 65536 - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t b = t[i].end ? t[i].begin : off, e = t[i].end ? t[i].end : off + t[i].bytes;
        len += (size_t)snprintf(hdr + len, 65536 - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++)
            len += (size_t)snprintf(hdr + len, 65536 - len, "%s%lld", d ? "," : "",
                                    (long long)t[i].shape[d]);
        len += (size_t)snprintf(hdr + len, 65536 - len, "],\"data_offsets\":[%zu,%zu]}", b, e);
        off += t[i].bytes;
    }
    hdr[len++] = '}';
    while (len % (size_t)header_align)
        hdr[len++] = ' ';
    for (int i = 0; i < n; i++)
        total += t[i].bytes;
    size_t size = 8 + len + total;
    unsigned char *buf = malloc(size);
    for (int k = 0; k < 8; k++)
        buf[k] = (unsigned char)((uint64_t)len >> (8 * k));
    memcpy(buf + 8, hdr, len);
    off = 8 + len;
    for (int i = 0; i < n; i++) {
        memcpy(buf + off, t[i].data, t[i].bytes);
        off += t[i].bytes;
    }
    tf_write_bytes(path, buf, size - truncate);
    free(buf);
    free(hdr);
}

void tf_write_npy(const char *path, int version, const char *dict, const void *data, size_t bytes)
{
    size_t pre = version == 1 ? 10 : 12, dlen = strlen(dict);
    /* The header (prefix + dict + padding + '\n') is a multiple of 64 bytes, as numpy writes. */
    size_t hlen = dlen + 1;
    while ((pre + hlen) % 64)
        hlen++;
    unsigned char *buf = malloc(pre + hlen + bytes);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)version;
    buf[7] = 0;
    for (size_t k = 0; k < pre - 8; k++)
        buf[8 + k] = (unsigned char)(hlen >> (8 * k));
    memcpy(buf + pre, dict, dlen);
    memset(buf + pre + dlen, ' ', hlen - dlen - 1);
    buf[pre + hlen - 1] = '\n';
    memcpy(buf + pre + hlen, data, bytes);
    tf_write_bytes(path, buf, pre + hlen + bytes);
    free(buf);
}

float *tf_read_oracle(const char *name, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/oracle/matrices/%s.f32", AT_DATA_DIR, name);
    float *w = malloc(n * sizeof *w);
    FILE *f = fopen(path, "rb");
    if (!f || fread(w, sizeof *w, n, f) != n)
        die(path);
    fclose(f);
    return w;
}

/* splitmix64 + Box-Muller: a self-contained, seeded generator for test data. */
static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float *tf_gauss(size_t n, uint64_t seed, double scale)
{
    float *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++) {
        double u1 = ((double)(splitmix(&seed) >> 11) + 1.0) / 9007199254740993.0;
        double u2 = (double)(splitmix(&seed) >> 11) / 9007199254740992.0;
        w[i] = (float)(scale * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
    }
    return w;
}

static char dir[256];

void tf_cleanup(void)
{
    char cmd[300];
    if (!dir[0])
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static void ensure_dir(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof dir, "/tmp/at_scan_test_XXXXXX");
    if (!mkdtemp(dir))
        die("mkdtemp");
}

const char *tf_path(const char *name)
{
    static char path[512];
    ensure_dir();
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static char *slurp(const char *path)
{
    char *s = at_test_slurp(path, NULL);
    if (!s)
        die(path);
    return s;
}

int tf_run(const char *args, char **out, char **err)
{
    char outp[512], errp[512], cmd[4096];
    ensure_dir();
    snprintf(outp, sizeof outp, "%s/stdout.txt", dir);
    snprintf(errp, sizeof errp, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "%s/tui/alphatop %s >%s 2>%s", AT_BINARY_DIR, args, outp, errp);
    int st = system(cmd);
    *out = slurp(outp);
    *err = slurp(errp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

uint16_t tf_f32_to_f16_exact(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) == 0)
        return sign;
    int e = (int)((u >> 23) & 0xff) - 127 + 15;
    return (uint16_t)(sign | (uint16_t)(e << 10) | (uint16_t)((u >> 13) & 0x3ffu));
}

uint16_t tf_f32_to_bf16_exact(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)(u >> 16);
}
