/* SPDX-License-Identifier: Apache-2.0 */
/* util.c -- generic helpers of core (util.h). */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "alphatop/status.h"

int at_grow(void **buf, size_t *cap, size_t count, size_t size)
{
    if (count <= *cap)
        return AT_OK;
    void *p = realloc(*buf, count * size);
    if (!p)
        return AT_ERR_NOMEM;
    *buf = p;
    *cap = count;
    return AT_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void at_sort_doubles(double *x, size_t n)
{
    qsort(x, n, sizeof *x, cmp_double);
}

int at_fail(char *err, size_t size, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return status;
}
