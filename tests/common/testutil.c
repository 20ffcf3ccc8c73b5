/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *at_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

int at_test_corpus(const char *dir, int (*fn)(const uint8_t *data, size_t size), int *ok, int *bad,
                   char *why, size_t cap)
{
    DIR *d = opendir(dir);
    *ok = *bad = 0;
    if (!d) {
        snprintf(why, cap, "%s: cannot open", dir);
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        size_t n;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *data = at_test_slurp(path, &n);
        int st = data ? fn((const uint8_t *)data, n) : 0;
        free(data);
        if (!data) {
            snprintf(why, cap, "%s: cannot read", path);
            rc = -1;
        } else if (!strncmp(e->d_name, "ok-", 3)) {
            ++*ok;
            if (st != 0) {
                snprintf(why, cap, "%s: status %d, want 0", e->d_name, st);
                rc = -1;
            }
        } else if (!strncmp(e->d_name, "bad-", 4)) {
            ++*bad;
            if (st >= 0) {
                snprintf(why, cap, "%s: accepted, want a rejection", e->d_name);
                rc = -1;
            }
        }
    }
    closedir(d);
    return rc;
}

int at_test_count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

int at_test_clean_text(const char *s, size_t n, char *why, size_t cap)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000}; /* shortest forms */
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        uint32_t cp = len == 1 ? c : c & (0x7fu >> len);
        int ok = len && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) {
            ok = (u[i + k] & 0xc0) == 0x80;
            cp = cp << 6 | (u[i + k] & 0x3fu);
        }
        if (!ok || cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            snprintf(why, cap, "byte %zu (0x%02x) is not UTF-8", i, c);
            return -1;
        }
        if ((cp < 0x20 && cp != '\n') || (cp >= 0x7f && cp <= 0x9f)) {
            snprintf(why, cap, "control character U+%04X at byte %zu", (unsigned)cp, i);
            return -1;
        }
        i += len;
    }
    return 0;
}
