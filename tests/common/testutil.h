/* SPDX-License-Identifier: Apache-2.0 */
/* testutil.h -- small helpers shared by the test programs. */
#ifndef ALPHATOP_TESTUTIL_H
#define ALPHATOP_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* The whole file at path, NUL-terminated; its length in *len when len is not NULL.
 * Caller owns return value (free); NULL when the file cannot be read. */
char *at_test_slurp(const char *path, size_t *len);

/* Replays the fuzz corpus in dir through fn, a fuzz target's function built without libFuzzer:
 * a file named ok-* must return 0 (AT_OK), one named bad-* a negative status; the others (found
 * by the fuzzer) only must not crash. Counts the ok-* and bad-* files into *ok and *bad.
 * Returns 0, or -1 with why (cap bytes) naming the file that broke the rule. */
int at_test_corpus(const char *dir, int (*fn)(const uint8_t *data, size_t size), int *ok, int *bad,
                   char *why, size_t cap);

/* The number of '\n' in s. */
int at_test_count_lines(const char *s);

/* 0 when s (n bytes) is valid, shortest-form UTF-8 without a control character but '\n' (C0,
 * DEL, C1 U+0080..U+009F): what a terminal may be given. Else -1 with why (cap bytes) naming the
 * first offending byte. Written apart from common/text.c, whose output it checks. */
int at_test_clean_text(const char *s, size_t n, char *why, size_t cap);

#endif
