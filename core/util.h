/* SPDX-License-Identifier: Apache-2.0 */
/* util.h -- (internal to core) generic helpers every part of core uses: growing a buffer,
 * sorting, formatting an error detail. Depends on nothing else in core. */
#ifndef ALPHATOP_CORE_UTIL_H
#define ALPHATOP_CORE_UTIL_H

#include <stddef.h>

/* Grows *buf to hold count elements of size bytes (contents kept); *cap counts elements and is
 * updated. AT_OK or AT_ERR_NOMEM (then *buf and *cap are unchanged). */
int at_grow(void **buf, size_t *cap, size_t count, size_t size);

/* Sorts x[0..n-1] ascending. */
void at_sort_doubles(double *x, size_t n);

/* Formats an error detail into err (size bytes, always terminated) and returns status, so a
 * failure is one statement: return at_fail(self->err, sizeof self->err, AT_ERR_ARG, ...). */
int at_fail(char *err, size_t size, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
