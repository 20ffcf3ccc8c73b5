/* SPDX-License-Identifier: Apache-2.0 */
/* runlog.c -- append-only, crash-safe run log (format in runlog.h). */
#include "runlog.h"

#include "alphatop/protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char file_magic[] = "ATLOG1\n";
#define FILE_MAGIC_LEN 7
#define REC_HEADER_LEN 12 /* "ATR" type | u32 length | u32 crc */
/* Larger lengths can only be garbage: no snapshot record comes near it. */
#define REC_MAX_LEN (1u << 30)
#define SYNC_INTERVAL_MS 2000

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct at_runlog {
    int fd;
    char *path;
    int64_t last_sync_ms;
    int dirty;
    unsigned char *buf; /* one whole record, so that it goes out in one write(2) */
    size_t cap;
    char err[256];
};

at_runlog *at_runlog_open(const char *path, int *status)
{
    at_runlog *self = calloc(1, sizeof *self);
    int st = AT_ERR_NOMEM;
    struct stat sb;
    if (!self)
        goto err;
    self->fd = -1;
    self->path = strdup(path);
    if (!self->path)
        goto err;
    st = AT_ERR_IO;
    self->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (self->fd < 0 || fstat(self->fd, &sb) != 0)
        goto err;
    if (sb.st_size == 0) {
        if (write(self->fd, file_magic, FILE_MAGIC_LEN) != FILE_MAGIC_LEN)
            goto err;
    } else {
        char head[FILE_MAGIC_LEN];
        st = AT_ERR_FORMAT;
        if (pread(self->fd, head, FILE_MAGIC_LEN, 0) != FILE_MAGIC_LEN ||
            memcmp(head, file_magic, FILE_MAGIC_LEN) != 0)
            goto err;
    }
    self->last_sync_ms = now_ms();
    *status = AT_OK;
    return self;
err:
    *status = st;
    at_runlog_close(self);
    return NULL;
}

static int reserve(at_runlog *self, size_t n)
{
    if (n <= self->cap)
        return AT_OK;
    unsigned char *b = realloc(self->buf, n);
    if (!b)
        return AT_ERR_NOMEM;
    self->buf = b;
    self->cap = n;
    return AT_OK;
}

/* Writes one record whose payload is a ++ b (b may be empty). */
static int append(at_runlog *self, int type, const void *a, size_t an, const void *b, size_t bn)
{
    size_t len = an + bn;
    if (len > REC_MAX_LEN) {
        snprintf(self->err, sizeof self->err, "record of %zu bytes exceeds the 1 GiB limit", len);
        return AT_ERR_SIZE;
    }
    if (reserve(self, REC_HEADER_LEN + len) != AT_OK) {
        snprintf(self->err, sizeof self->err, "out of memory for a %zu-byte record", len);
        return AT_ERR_NOMEM;
    }
    unsigned char *p = self->buf;
    unsigned char t = (unsigned char)type;
    p[0] = 'A';
    p[1] = 'T';
    p[2] = 'R';
    p[3] = t;
    put_u32(p + 4, (uint32_t)len);
    memcpy(p + REC_HEADER_LEN, a, an);
    if (bn)
        memcpy(p + REC_HEADER_LEN + an, b, bn);
    put_u32(p + 8, at_proto_crc32(at_proto_crc32(0, &t, 1), p + REC_HEADER_LEN, len));
    size_t total = REC_HEADER_LEN + len, done = 0;
    while (done < total) {
        ssize_t w = write(self->fd, p + done, total - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(self->err, sizeof self->err, "%s: write: %s", self->path,
                     w < 0 ? strerror(errno) : "no progress");
            return AT_ERR_IO;
        }
        done += (size_t)w;
    }
    self->dirty = 1;
    return AT_OK;
}

int at_runlog_append_json(at_runlog *self, const char *json, size_t len)
{
    return append(self, AT_RUNLOG_JSON, json, len, NULL, 0);
}

int at_runlog_append_blob(at_runlog *self, const char *json, size_t json_len, const void *data,
                          size_t n)
{
    /* The header length goes first so the reader can split header from bytes. */
    size_t hn = 4 + json_len;
    unsigned char *h = malloc(hn);
    if (!h) {
        snprintf(self->err, sizeof self->err, "out of memory for a blob header");
        return AT_ERR_NOMEM;
    }
    put_u32(h, (uint32_t)json_len);
    memcpy(h + 4, json, json_len);
    int rc = append(self, AT_RUNLOG_BLOB, h, hn, data, n);
    free(h);
    return rc;
}

int at_runlog_flush(at_runlog *self)
{
    /* Records already left the process in write(2): a killed monitor loses nothing. fdatasync
     * only guards against a machine crash, so it is rate-limited. */
    int64_t t = now_ms();
    if (!self->dirty || t - self->last_sync_ms < SYNC_INTERVAL_MS)
        return AT_OK;
    self->last_sync_ms = t;
    self->dirty = 0;
    if (fdatasync(self->fd) != 0) {
        snprintf(self->err, sizeof self->err, "%s: fdatasync: %s", self->path, strerror(errno));
        return AT_ERR_IO;
    }
    return AT_OK;
}

const char *at_runlog_path(const at_runlog *self)
{
    return self->path;
}

const char *at_runlog_last_error(const at_runlog *self)
{
    return self->err;
}

void at_runlog_close(at_runlog *self)
{
    if (!self)
        return;
    if (self->fd >= 0) {
        if (self->dirty)
            fdatasync(self->fd);
        close(self->fd);
    }
    free(self->buf);
    free(self->path);
    free(self);
}

struct at_runlog_reader {
    FILE *f;
    int follow;
    uint64_t size;
    uint64_t pos;
    unsigned char *buf;
    size_t cap;
    char note[512];
};

at_runlog_reader *at_runlog_reader_open(const char *path, int *status)
{
    at_runlog_reader *self = calloc(1, sizeof *self);
    char head[FILE_MAGIC_LEN];
    struct stat sb;
    int st = AT_ERR_NOMEM;
    if (!self)
        goto err;
    st = AT_ERR_IO;
    self->f = fopen(path, "rb");
    if (!self->f || fstat(fileno(self->f), &sb) != 0)
        goto err;
    self->size = (uint64_t)sb.st_size;
    st = AT_ERR_FORMAT;
    if (fread(head, 1, FILE_MAGIC_LEN, self->f) != FILE_MAGIC_LEN ||
        memcmp(head, file_magic, FILE_MAGIC_LEN) != 0)
        goto err;
    self->pos = FILE_MAGIC_LEN;
    *status = AT_OK;
    return self;
err:
    *status = st;
    at_runlog_reader_close(self);
    return NULL;
}

static void add_note(at_runlog_reader *self, uint64_t at, uint64_t n, int at_end)
{
    size_t used = strlen(self->note);
    snprintf(self->note + used, sizeof self->note - used, "%s%s at byte %llu (%llu bytes)",
             used ? "; " : "",
             at_end ? "ignored a truncated last record" : "skipped a damaged record",
             (unsigned long long)at, (unsigned long long)n);
}

/* Tries to read an intact record at self->pos. Returns 1 (read), 0 (not a record here), -1
 * (the file ends inside what may be a record: its writer may not have written all of it). */
static int read_at(at_runlog_reader *self, at_runlog_record *rec, int *nomem)
{
    unsigned char h[REC_HEADER_LEN];
    uint64_t left = self->size - self->pos;
    size_t hn = left < REC_HEADER_LEN ? (size_t)left : REC_HEADER_LEN;
    if (fseeko(self->f, (off_t)self->pos, SEEK_SET) || fread(h, 1, hn, self->f) != hn)
        return 0;
    static const unsigned char magic[4] = {'A', 'T', 'R', AT_RUNLOG_JSON};
    for (size_t i = 0; i < hn && i < 3; i++)
        if (h[i] != magic[i])
            return 0;
    if (hn > 3 && h[3] != AT_RUNLOG_JSON && h[3] != AT_RUNLOG_BLOB)
        return 0;
    if (hn < REC_HEADER_LEN)
        return -1;
    uint32_t len = get_u32(h + 4);
    if (len > REC_MAX_LEN)
        return 0;
    if (len > left - REC_HEADER_LEN)
        return -1;
    if (self->cap < (size_t)len + 1) {
        unsigned char *b = realloc(self->buf, (size_t)len + 1);
        if (!b) {
            *nomem = 1;
            return 0;
        }
        self->buf = b;
        self->cap = (size_t)len + 1;
    }
    if (fread(self->buf, 1, len, self->f) != len)
        return 0;
    unsigned char t = h[3];
    if (at_proto_crc32(at_proto_crc32(0, &t, 1), self->buf, len) != get_u32(h + 8))
        return 0;
    self->buf[len] = '\0';
    memset(rec, 0, sizeof *rec);
    rec->type = t;
    rec->offset = self->pos;
    if (t == AT_RUNLOG_JSON) {
        rec->json = (const char *)self->buf;
        rec->json_len = len;
    } else {
        uint32_t jl = len >= 4 ? get_u32(self->buf) : UINT32_MAX;
        if (jl > len - 4)
            return 0;
        /* The JSON header is NUL-terminated in place by shifting it one byte left. */
        memmove(self->buf, self->buf + 4, jl);
        self->buf[jl] = '\0';
        rec->json = (const char *)self->buf;
        rec->json_len = jl;
        rec->data = self->buf + 4 + jl;
        rec->data_len = len - 4 - jl;
    }
    self->pos += REC_HEADER_LEN + len;
    return 1;
}

void at_runlog_reader_follow(at_runlog_reader *self)
{
    self->follow = 1;
}

int at_runlog_reader_next(at_runlog_reader *self, at_runlog_record *rec)
{
    struct stat sb;
    if (self->follow && fstat(fileno(self->f), &sb) == 0 && (uint64_t)sb.st_size > self->size)
        self->size = (uint64_t)sb.st_size;
    uint64_t bad_from = self->pos;
    int nomem = 0;
    while (self->pos < self->size) {
        int got = read_at(self, rec, &nomem);
        if (got == 1) {
            if (rec->offset != bad_from)
                add_note(self, bad_from, rec->offset - bad_from, 0);
            return 1;
        }
        if (nomem)
            return AT_ERR_NOMEM;
        if (got < 0 && self->follow)
            break;   /* the rest may be on its way: read it on a later call */
        self->pos++; /* resynchronise: look for the next record magic */
    }
    if (self->pos != bad_from)
        add_note(self, bad_from, self->pos - bad_from, !self->follow && self->pos == self->size);
    return ferror(self->f) ? AT_ERR_IO : 0;
}

const char *at_runlog_reader_note(const at_runlog_reader *self)
{
    return self->note;
}

void at_runlog_reader_close(at_runlog_reader *self)
{
    if (!self)
        return;
    if (self->f)
        fclose(self->f);
    free(self->buf);
    free(self);
}

/* Makes every missing directory of the absolute path dir with mode 0700 (mkdir -p). */
static int make_dirs(char *dir)
{
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = '\0';
        int bad = mkdir(dir, 0700) != 0 && errno != EEXIST;
        *p = c;
        if (bad)
            return AT_ERR_IO;
        if (!c)
            break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return AT_ERR_IO;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return AT_ERR_IO;
    }
    return AT_OK;
}

int at_runlog_state_dir(char *buf, size_t cap, int create)
{
    const char *base = getenv("XDG_STATE_HOME"), *tail = "/alphatop";
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    /* The XDG spec: a relative $XDG_STATE_HOME is invalid and ignored. */
    if (!base || base[0] != '/') {
        tail = "/.local/state/alphatop";
        base = getenv("HOME");
        if ((!base || base[0] != '/') &&
            getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res)
            base = pw.pw_dir;
    }
    if (base && base[0] != '/')
        base = NULL;
    if (cap)
        buf[0] = '\0';
    if (!base)
        return AT_ERR_NOTFOUND;
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    if ((size_t)snprintf(buf, cap, "%.*s%s", (int)n, base, tail) >= cap)
        return AT_ERR_SIZE;
    return create ? make_dirs(buf) : AT_OK;
}

int at_runlog_default_path(char *buf, size_t cap, const char *run)
{
    char dir[4096];
    int rc = at_runlog_state_dir(dir, sizeof dir, 1);
    if (rc != AT_OK) {
        snprintf(buf, cap, "%s", dir);
        return rc;
    }
    char name[64];
    size_t i = 0;
    for (; run && run[i] && i + 1 < sizeof name; i++) {
        char c = run[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        name[i] = ok ? c : '_';
    }
    name[i] = '\0';
    time_t t = time(NULL);
    struct tm tm;
    char date[32];
    localtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y%m%d-%H%M%S", &tm);
    if ((size_t)snprintf(buf, cap, "%s/alphatop-%s-%s.atlog", dir, i ? name : "run", date) >= cap)
        return AT_ERR_SIZE;
    return AT_OK;
}
