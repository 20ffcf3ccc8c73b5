/* SPDX-License-Identifier: Apache-2.0 */
/* ckpt_args.h -- the checkpoint options scan and diff share (--shape, --layers), checked
 * after the option parser (args.h) has stored their text. Each reports a usage error as
 * at_args_error does. */
#ifndef ALPHATOP_CKPT_ARGS_H
#define ALPHATOP_CKPT_ARGS_H

#include <regex.h>

#include "ckpt.h"

/* Parses --shape (shape; NULL when not given) into copts and checks that every raw float32
 * file among files[0..n) has a shape. Returns 0, or -1 after a usage error for command cmd. */
int at_cmd_ckpt_args(const char *cmd, const char *shape, at_ckpt_opts *copts, char *const *files,
                     int n);

/* Compiles --layers' extended regex text into re (no sub-matches). Returns 0 (caller frees re
 * with regfree), or -1 after a usage error for command cmd (re not to be freed). */
int at_cmd_regex(const char *cmd, const char *text, regex_t *re);

#endif
