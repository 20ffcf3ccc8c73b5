/* SPDX-License-Identifier: Apache-2.0 */
/* input.c -- the bytes of one checkpoint file (ckpt_load in ckpt_int.h): a regular file is
 * mapped, so only the pages a layer touches are read; a pipe, FIFO or stdin ("-") cannot be
 * mapped and is read into memory up to a limit. A named FIFO is opened without blocking and
 * given a deadline for its first byte, so a FIFO nobody writes to is an error, not a hang. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_int.h"

/* path as an absolute path (malloc'd), so another process started elsewhere finds the same file;
 * NULL for standard input or when out of memory. */
static char *absolute(const char *path)
{
    if (!path)
        return NULL;
    if (path[0] == '/')
        return strdup(path);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    const size_t n = strlen(cwd) + strlen(path) + 2;
    char *a = malloc(n);
    if (a)
        snprintf(a, n, "%s/%s", cwd, path);
    return a;
}

static int add_region(at_ckpt *c, void *base, size_t size, int mapped, const char *path)
{
    ckpt_region *r = realloc(c->regions, (c->nregions + 1) * sizeof *r);
    char *file = mapped ? absolute(path) : NULL;
    if (!r || (mapped && path && !file)) {
        if (r)
            c->regions = r;
        free(file);
        if (mapped)
            munmap(base, size);
        else
            free(base);
        return ckpt_fail(c, AT_ERR_NOMEM, "out of memory");
    }
    c->regions = r;
    r[c->nregions++] = (ckpt_region){base, size, mapped, file};
    return AT_OK;
}

/* Maps fd, the file path (NULL: standard input). */
static int map_fd(at_ckpt *c, int fd, const char *path, const unsigned char **p, size_t *n)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ckpt_fail(c, AT_ERR_IO, "cannot stat: %s", strerror(errno));
    if (st.st_size == 0)
        return ckpt_fail(c, AT_ERR_SIZE, "empty file (0 bytes)");
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
        return ckpt_fail(c, AT_ERR_IO, "cannot map: %s", strerror(errno));
    *p = m;
    *n = (size_t)st.st_size;
    return add_region(c, m, *n, 1, path);
}

/* Reads fd to its end into memory. wait_ms >= 0: fd is non-blocking and the first byte (or the
 * writer's close) must come within wait_ms. */
static int read_stream(at_ckpt *c, int fd, int wait_ms, const unsigned char **p, size_t *n)
{
    if (wait_ms >= 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc;
        while ((rc = poll(&pfd, 1, wait_ms)) < 0 && errno == EINTR)
            ;
        if (rc == 0)
            return ckpt_fail(c, AT_ERR_TIMEOUT, "FIFO: nothing written within %d ms (no writer?)",
                             wait_ms);
        int fl = fcntl(fd, F_GETFL);
        if (rc < 0 || fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
            return ckpt_fail(c, AT_ERR_IO, "cannot wait for the FIFO: %s", strerror(errno));
    }
    const size_t max = c->opts.stream_max;
    size_t cap = max < (1 << 16) ? max + 1 : 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return ckpt_fail(c, AT_ERR_NOMEM, "out of memory");
    for (;;) {
        if (len == cap) {
            if (cap > max) {
                free(buf);
                return ckpt_fail(c, AT_ERR_SIZE,
                                 "more than %zu bytes from a pipe: save it to a file (files are "
                                 "mapped, not read into memory)",
                                 max);
            }
            size_t cap2 = cap > max / 2 ? max + 1 : 2 * cap;
            unsigned char *b = realloc(buf, cap2);
            if (!b) {
                free(buf);
                return ckpt_fail(c, AT_ERR_NOMEM, "out of memory reading a pipe (%zu bytes)", cap2);
            }
            buf = b;
            cap = cap2;
        }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            return ckpt_fail(c, AT_ERR_IO, "cannot read: %s", strerror(e));
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    if (len == 0) {
        free(buf);
        return ckpt_fail(c, AT_ERR_SIZE, "empty input (0 bytes)");
    }
    *p = buf;
    *n = len;
    return add_region(c, buf, cap, 0, NULL);
}

int ckpt_load(at_ckpt *c, const char *path, const unsigned char **p, size_t *n)
{
    struct stat st;
    if (!strcmp(path, "-")) {
        if (isatty(STDIN_FILENO))
            return ckpt_fail(c, AT_ERR_ARG, "stdin is a terminal: pipe a checkpoint in");
        if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode))
            return map_fd(c, STDIN_FILENO, NULL, p, n);
        return read_stream(c, STDIN_FILENO, -1, p, n);
    }
    if (stat(path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ckpt_fail(c, AT_ERR_NOTFOUND, "no such file");
        return ckpt_fail(c, AT_ERR_IO, "cannot open: %s", strerror(errno));
    }
    const int fifo = S_ISFIFO(st.st_mode);
    int fd = open(path, O_RDONLY | O_CLOEXEC | (fifo ? O_NONBLOCK : 0));
    if (fd < 0)
        return ckpt_fail(c, AT_ERR_IO, "cannot open: %s", strerror(errno));
    int rc;
    if (fstat(fd, &st) < 0)
        rc = ckpt_fail(c, AT_ERR_IO, "cannot stat: %s", strerror(errno));
    else if (S_ISREG(st.st_mode))
        rc = map_fd(c, fd, path, p, n);
    else if (isatty(fd))
        rc = ckpt_fail(c, AT_ERR_ARG, "a terminal, not a checkpoint");
    else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode))
        rc = read_stream(c, fd, fifo ? c->opts.fifo_wait_ms : -1, p, n);
    else
        rc = ckpt_fail(c, AT_ERR_IO, "not a regular file, pipe or directory");
    close(fd);
    return rc;
}
