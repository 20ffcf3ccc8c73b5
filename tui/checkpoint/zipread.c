/* SPDX-License-Identifier: Apache-2.0 */
/* zipread.c -- zip archives in memory through libzip (see zipread.h).
 *
 * libzip reads the archive through a source of ours over the caller's memory. It does not say
 * where an entry's bytes start, but it reads them from there: the offset of the first read
 * after opening a stored entry is its data offset. That offset is only trusted when the bytes
 * libzip returned are the bytes found there, so a libzip that read differently would make us
 * copy, never point at the wrong bytes. */
#include "zipread.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "alphatop/status.h"

/* Deflate cannot expand data by more than about 1032:1; a larger claim is a damaged entry. */
#define AT_ZIP_MAX_RATIO 1032u
/* Bytes compared to confirm where a stored entry's data starts. */
#define AT_ZIP_PROBE 64u

struct at_zip {
    const unsigned char *data;
    size_t size;
    size_t max_inflate;
    uint64_t pos;       /* the source's read position */
    uint64_t last_read; /* where the last read started */
    zip_error_t zerr;
    zip_t *za;
    char error[256];
};

static zip_int64_t source_cb(void *ud, void *buf, zip_uint64_t len, zip_source_cmd_t cmd)
{
    at_zip *z = ud;
    switch (cmd) {
    case ZIP_SOURCE_OPEN:
        z->pos = 0;
        return 0;
    case ZIP_SOURCE_READ: {
        if (z->pos >= z->size)
            return 0;
        size_t n = z->size - (size_t)z->pos;
        if (n > len)
            n = (size_t)len;
        memcpy(buf, z->data + z->pos, n);
        z->last_read = z->pos;
        z->pos += n;
        return (zip_int64_t)n;
    }
    case ZIP_SOURCE_CLOSE:
    case ZIP_SOURCE_FREE:
        return 0;
    case ZIP_SOURCE_STAT: {
        zip_stat_t *st = buf;
        if (len < sizeof *st) {
            zip_error_set(&z->zerr, ZIP_ER_INVAL, 0);
            return -1;
        }
        zip_stat_init(st);
        st->size = z->size;
        st->valid |= ZIP_STAT_SIZE;
        return sizeof *st;
    }
    case ZIP_SOURCE_ERROR:
        return zip_error_to_data(&z->zerr, buf, len);
    case ZIP_SOURCE_SEEK: {
        zip_int64_t off = zip_source_seek_compute_offset(z->pos, z->size, buf, len, &z->zerr);
        if (off < 0)
            return -1;
        z->pos = (uint64_t)off;
        return 0;
    }
    case ZIP_SOURCE_TELL:
        return (zip_int64_t)z->pos;
    case ZIP_SOURCE_SUPPORTS:
        return zip_source_make_command_bitmap(
            ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR,
            ZIP_SOURCE_FREE, ZIP_SOURCE_SEEK, ZIP_SOURCE_TELL, ZIP_SOURCE_SUPPORTS, -1);
    default:
        zip_error_set(&z->zerr, ZIP_ER_OPNOTSUPP, 0);
        return -1;
    }
}

static int fail(at_zip *z, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(z->error, sizeof z->error, fmt, ap);
    va_end(ap);
    return status;
}

at_zip *at_zip_open(const void *data, size_t size, size_t max_inflate, int *status, char *err,
                    size_t errn)
{
    int st = AT_ERR_NOMEM;
    zip_error_t ze;
    zip_error_init(&ze);
    at_zip *z = calloc(1, sizeof *z);
    zip_source_t *src = NULL;
    if (!z)
        goto fail;
    z->data = data;
    z->size = size;
    z->max_inflate = max_inflate;
    zip_error_init(&z->zerr);
    src = zip_source_function_create(source_cb, z, &ze);
    if (!src)
        goto fail;
    z->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!z->za) {
        st = zip_error_code_zip(&ze) == ZIP_ER_MEMORY ? AT_ERR_NOMEM : AT_ERR_FORMAT;
        zip_source_free(src);
        goto fail;
    }
    return z;
fail:
    if (err && errn)
        snprintf(err, errn, "%s", st == AT_ERR_NOMEM ? "out of memory" : zip_error_strerror(&ze));
    zip_error_fini(&ze);
    if (z)
        zip_error_fini(&z->zerr);
    free(z);
    if (status)
        *status = st;
    return NULL;
}

size_t at_zip_count(const at_zip *self)
{
    zip_int64_t n = zip_get_num_entries(self->za, 0);
    return n > 0 ? (size_t)n : 0;
}

const char *at_zip_name(const at_zip *self, size_t i)
{
    const char *s = zip_get_name(self->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
    return s ? s : "";
}

long at_zip_find(const at_zip *self, const char *name)
{
    zip_int64_t i = zip_name_locate(self->za, name, ZIP_FL_ENC_RAW);
    return i < 0 ? -1 : (long)i;
}

/* Reads the first n bytes of entry i through libzip into buf; with whole, n is the entry's size
 * and one more read must find its end (libzip checks the CRC there). Returns AT_OK or a
 * status. */
static int read_through(at_zip *z, size_t i, const char *name, void *buf, size_t n, int whole)
{
    zip_file_t *f = zip_fopen_index(z->za, (zip_uint64_t)i, 0);
    if (!f)
        return fail(z, AT_ERR_FORMAT, "zip entry %s: %s", name, zip_strerror(z->za));
    zip_int64_t got = zip_fread(f, buf, n);
    int rc = AT_OK;
    if (got < 0 || (size_t)got != n)
        rc = fail(z, AT_ERR_FORMAT, "zip entry %s: %s", name,
                  got < 0 ? zip_file_strerror(f) : "shorter than its directory says");
    unsigned char extra;
    if (rc == AT_OK && whole && (got = zip_fread(f, &extra, 1)) != 0)
        rc = fail(z, AT_ERR_FORMAT, "zip entry %s: %s", name,
                  got < 0 ? zip_file_strerror(f) : "longer than its directory says");
    zip_fclose(f);
    return rc;
}

int at_zip_entry(at_zip *self, size_t i, const unsigned char **p, size_t *n, void **owned)
{
    zip_stat_t st;
    const char *name = at_zip_name(self, i);
    *owned = NULL;
    self->error[0] = '\0';
    if (zip_stat_index(self->za, (zip_uint64_t)i, 0, &st) < 0)
        return fail(self, AT_ERR_FORMAT, "zip entry %zu: %s", i, zip_strerror(self->za));
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
        return fail(self, AT_ERR_FORMAT, "zip entry %s is encrypted", name);
    if (st.size > SIZE_MAX / 2)
        return fail(self, AT_ERR_SIZE, "zip entry %s: %llu bytes cannot be addressed", name,
                    (unsigned long long)st.size);
    size_t size = (size_t)st.size;
    *n = size;
    if (st.comp_method == ZIP_CM_STORE) {
        if (size > self->size)
            return fail(self, AT_ERR_FORMAT, "zip entry %s: %zu bytes in a %zu-byte archive", name,
                        size, self->size);
        *p = self->data;
        if (size == 0)
            return AT_OK;
        unsigned char probe[AT_ZIP_PROBE];
        size_t k = size < sizeof probe ? size : sizeof probe;
        int rc = read_through(self, i, name, probe, k, 0);
        if (rc < 0)
            return rc;
        uint64_t at = self->last_read;
        if (at <= self->size && size <= self->size - at && !memcmp(self->data + at, probe, k)) {
            *p = self->data + at;
            return AT_OK;
        }
    } else if (self->max_inflate && size > self->max_inflate) {
        return fail(self, AT_ERR_SIZE, "zip entry %s inflates to %zu bytes (limit %zu)", name, size,
                    self->max_inflate);
    } else if (size / AT_ZIP_MAX_RATIO > st.comp_size + 1) {
        return fail(self, AT_ERR_FORMAT,
                    "zip entry %s claims %zu bytes from %llu compressed: damaged", name, size,
                    (unsigned long long)st.comp_size);
    }
    /* Compressed, or a stored entry whose bytes could not be located: read a copy. */
    void *buf = malloc(size ? size : 1);
    if (!buf)
        return fail(self, AT_ERR_NOMEM, "out of memory reading zip entry %s (%zu bytes)", name,
                    size);
    int rc = read_through(self, i, name, buf, size, 1);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *owned = buf;
    *p = buf;
    return AT_OK;
}

const char *at_zip_last_error(const at_zip *self)
{
    return self->error;
}

void at_zip_free(at_zip *self)
{
    if (!self)
        return;
    zip_discard(self->za);
    zip_error_fini(&self->zerr);
    free(self);
}
