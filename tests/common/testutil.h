/* testutil.h -- small helpers shared by the test programs. */
#ifndef ALPHATOP_TESTUTIL_H
#define ALPHATOP_TESTUTIL_H

#include <stddef.h>

/* The whole file at path, NUL-terminated; its length in *len when len is not NULL.
 * Caller owns return value (free); NULL when the file cannot be read. */
char *at_test_slurp(const char *path, size_t *len);

#endif
