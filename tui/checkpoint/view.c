/* SPDX-License-Identifier: Apache-2.0 */
/* view.c -- one layer's weights read for one analysis (at_ckpt_view in ckpt.h), and the
 * element walk that copies or tests stored elements in any stride order.
 *
 * A view maps only the pages that hold its layer and unmaps them when closed, so a scan of a
 * checkpoint much larger than memory holds a few layers at a time: the checkpoint's own mapping
 * of the whole file is only read for its headers. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_int.h"

struct at_ckpt_view {
    at_tensor t; /* what the core reads: the stored bytes or copy */
    ckpt_type type;
    int64_t stride[4];
    const unsigned char *first; /* the first stored element */
    void *map;                  /* the mapped pages (NULL: the elements are loc->mem) */
    size_t map_len;
    void *copy;
    int ready;
};

/* Calls fn(ctx, row, n, step) for every innermost row in C order: row points at its first
 * element, whose n elements lie step elements apart. Stops at and returns fn's first nonzero
 * return; 0 when every row was visited. */
typedef int (*row_fn)(void *ctx, const unsigned char *row, int64_t n, int64_t step);

static int each_row(const unsigned char *first, size_t esz, int ndim, const int64_t *shape,
                    const int64_t *stride, row_fn fn, void *ctx)
{
    const int last = ndim - 1;
    int64_t idx[4] = {0, 0, 0, 0}, rows = 1;
    for (int d = 0; d < last; d++)
        rows *= shape[d];
    for (int64_t k = 0; k < rows; k++) {
        int64_t off = 0;
        for (int d = 0; d < last; d++)
            off += idx[d] * stride[d];
        const int rc = fn(ctx, first + (size_t)off * esz, shape[last], stride[last]);
        if (rc)
            return rc;
        for (int d = last - 1; d >= 0; d--) {
            if (++idx[d] < shape[d])
                break;
            idx[d] = 0;
        }
    }
    return 0;
}

typedef struct gather_ctx {
    unsigned char *dst;
    ckpt_type type;
} gather_ctx;

static int gather_row(void *ctx, const unsigned char *row, int64_t n, int64_t step)
{
    gather_ctx *g = ctx;
    const size_t in = ckpt_type_size(g->type);
    if (g->type != CKPT_F64 && step == 1) {
        memcpy(g->dst, row, (size_t)n * in);
        g->dst += (size_t)n * in;
        return 0;
    }
    for (int64_t j = 0; j < n; j++) {
        const unsigned char *e = row + (size_t)(j * step) * in;
        if (g->type == CKPT_F64) {
            double v;
            memcpy(&v, e, sizeof v);
            const float f = (float)v;
            memcpy(g->dst, &f, sizeof f);
            g->dst += sizeof f;
        } else {
            memcpy(g->dst, e, in);
            g->dst += in;
        }
    }
    return 0;
}

void ckpt_gather(unsigned char *dst, const unsigned char *src, ckpt_type t, int ndim,
                 const int64_t *shape, const int64_t *stride)
{
    gather_ctx g = {dst, t};
    each_row(src, ckpt_type_size(t), ndim, shape, stride, gather_row, &g);
}

int ckpt_direct(ckpt_type t, int ndim, const int64_t *shape, const int64_t *stride,
                const unsigned char *first)
{
    int64_t step = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] != 1 && stride[d] != step)
            return 0;
        step *= shape[d];
    }
    /* The core reads whole elements: an unaligned view would be undefined behaviour. */
    return t != CKPT_F64 && t != CKPT_OTHER && (uintptr_t)first % ckpt_type_size(t) == 0;
}

/* 1 (stop) at the first element that is not zero. Sign bits do not count: -0.0 is zero; a NaN
 * is not. F64 counts as the float32 it narrows to. */
static int nonzero_row(void *ctx, const unsigned char *row, int64_t n, int64_t step)
{
    const ckpt_type t = *(const ckpt_type *)ctx;
    const size_t esz = ckpt_type_size(t);
    for (int64_t j = 0; j < n; j++) {
        const unsigned char *e = row + (size_t)(j * step) * esz;
        if (t == CKPT_F64) {
            double v;
            memcpy(&v, e, sizeof v);
            if ((float)v != 0.0f)
                return 1;
        } else if (t == CKPT_F32) {
            uint32_t b;
            memcpy(&b, e, sizeof b);
            if (b & 0x7fffffffu)
                return 1;
        } else {
            uint16_t b;
            memcpy(&b, e, sizeof b);
            if (b & 0x7fffu)
                return 1;
        }
    }
    return 0;
}

static int view_fail(int *status, int rc, char *err, size_t errn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int view_fail(int *status, int rc, char *err, size_t errn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errn)
        vsnprintf(err, errn, fmt, ap);
    va_end(ap);
    if (status)
        *status = rc;
    return rc;
}

/* Maps the bytes [offset, offset + bytes) of file into v. */
static int map_range(at_ckpt_view *v, const char *file, uint64_t offset, size_t bytes, int *status,
                     char *err, size_t errn)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return view_fail(status, errno == ENOENT ? AT_ERR_NOTFOUND : AT_ERR_IO, err, errn,
                         "%s: cannot open: %s", file, strerror(errno));
    struct stat st;
    int rc = AT_OK;
    if (fstat(fd, &st) < 0) {
        rc = view_fail(status, AT_ERR_IO, err, errn, "%s: cannot stat: %s", file, strerror(errno));
    } else if ((uint64_t)st.st_size < offset || (uint64_t)st.st_size - offset < bytes) {
        rc = view_fail(status, AT_ERR_SIZE, err, errn,
                       "%s: the layer's bytes [%llu, %llu) run past the end of the file (%lld "
                       "bytes): changed since it was opened?",
                       file, (unsigned long long)offset, (unsigned long long)(offset + bytes),
                       (long long)st.st_size);
    } else {
        const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), start = offset - offset % page;
        v->map_len = (size_t)(offset - start) + bytes;
        v->map = mmap(NULL, v->map_len, PROT_READ, MAP_PRIVATE, fd, (off_t)start);
        if (v->map == MAP_FAILED) {
            v->map = NULL;
            rc = view_fail(status, AT_ERR_IO, err, errn, "%s: cannot map: %s", file,
                           strerror(errno));
        } else {
            /* Read ahead of the analysis: it goes through the layer front to back. */
            madvise(v->map, v->map_len, MADV_SEQUENTIAL);
            v->first = (const unsigned char *)v->map + (offset - start);
        }
    }
    close(fd);
    return rc;
}

at_ckpt_view *at_ckpt_view_open(const at_tensor *t, const at_ckpt_loc *loc, int *status, char *err,
                                size_t errn)
{
    if (err && errn)
        err[0] = '\0';
    if (!t || !loc || (t->ndim != 2 && t->ndim != 4) || loc->stored > AT_CKPT_STORED_F64) {
        view_fail(status, AT_ERR_ARG, err, errn, "not a 2-D or 4-D float tensor");
        return NULL;
    }
    const ckpt_type type = (ckpt_type)loc->stored;
    /* The last element's offset; strides are those the reader validated against the file. */
    int64_t last = 0, span;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] <= 0 || t->shape[d] > CKPT_MAX_DIM || loc->stride[d] < 0 ||
            __builtin_mul_overflow(t->shape[d] - 1, loc->stride[d], &span) ||
            __builtin_add_overflow(last, span, &last) || last >= CKPT_MAX_DIM * 1024) {
            view_fail(status, AT_ERR_ARG, err, errn, "bad shape or stride in dimension %d", d);
            return NULL;
        }
    const size_t bytes = (size_t)(last + 1) * ckpt_type_size(type);
    at_ckpt_view *v = calloc(1, sizeof *v);
    if (!v) {
        view_fail(status, AT_ERR_NOMEM, err, errn, "out of memory");
        return NULL;
    }
    v->t = *t;
    v->t.data = NULL;
    v->t.dtype = type == CKPT_F16 ? AT_DTYPE_F16 : type == CKPT_BF16 ? AT_DTYPE_BF16 : AT_DTYPE_F32;
    v->type = type;
    memcpy(v->stride, loc->stride, sizeof v->stride);
    if (loc->file) {
        if (map_range(v, loc->file, loc->offset, bytes, status, err, errn) < 0) {
            free(v);
            return NULL;
        }
    } else if (loc->mem) {
        v->first = loc->mem;
    } else {
        free(v);
        view_fail(status, AT_ERR_ARG, err, errn, "the layer has no location");
        return NULL;
    }
    if (status)
        *status = AT_OK;
    return v;
}

int at_ckpt_view_is_zero(const at_ckpt_view *self)
{
    return !each_row(self->first, ckpt_type_size(self->type), self->t.ndim, self->t.shape,
                     self->stride, nonzero_row, (void *)&self->type);
}

const at_tensor *at_ckpt_view_tensor(at_ckpt_view *self)
{
    if (self->ready)
        return &self->t;
    if (ckpt_direct(self->type, self->t.ndim, self->t.shape, self->stride, self->first)) {
        self->t.data = self->first;
    } else {
        size_t numel = 1;
        for (int d = 0; d < self->t.ndim; d++)
            numel *= (size_t)self->t.shape[d];
        if (!(self->copy = malloc(numel * at_dtype_size(self->t.dtype))))
            return NULL;
        ckpt_gather(self->copy, self->first, self->type, self->t.ndim, self->t.shape, self->stride);
        self->t.data = self->copy;
        /* The stored pages are not read again: give them back now, not at close. */
        if (self->map)
            madvise(self->map, self->map_len, MADV_DONTNEED);
    }
    self->ready = 1;
    return &self->t;
}

void at_ckpt_view_close(at_ckpt_view *self)
{
    if (!self)
        return;
    free(self->copy);
    if (self->map)
        munmap(self->map, self->map_len);
    free(self);
}
