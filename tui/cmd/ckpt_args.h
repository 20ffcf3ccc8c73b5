/* SPDX-License-Identifier: Apache-2.0 */
/* ckpt_args.h -- the checkpoint options scan and diff share (--min-evals, --max-evals,
 * --shape, --layers): their option rows, and the checks of their text after the option
 * parser (args.h) has stored it. A check reports a usage error as at_args_error does. */
#ifndef ALPHATOP_CKPT_ARGS_H
#define ALPHATOP_CKPT_ARGS_H

#include <regex.h>

#include "args.h"
#include "ckpt.h"

/* The option rows (args.h) of --min-evals and --max-evals, stored into the at_htsr_opts
 * *hopts, and of --shape, its text stored into the const char *shape (for at_cmd_ckpt_args). */
/* clang-format off */
#define AT_CKPT_ARGS_ROWS(hopts, shape)                                                          \
    {.name = "min-evals", .kind = AT_ARG_INT, .value = &(hopts)->min_evals,                      \
     .help = "skip layers with fewer eigenvalues", .flags = AT_ARG_SHOW_DEFAULT},                \
    {.name = "max-evals", .kind = AT_ARG_INT, .value = &(hopts)->max_evals,                      \
     .help = "skip layers with more eigenvalues", .flags = AT_ARG_SHOW_DEFAULT},                 \
    {.name = "shape", .kind = AT_ARG_STRING, .value = &(shape), .meta = "ROWSxCOLS",             \
     .help = "shape of raw float32 files (also OUTxINxKHxKW)"}
/* clang-format on */

/* Parses --shape (shape; NULL when not given) into copts and checks that every raw float32
 * file among files[0..n) has a shape. Returns 0, or -1 after a usage error for command cmd. */
int at_cmd_ckpt_args(const char *cmd, const char *shape, at_ckpt_opts *copts, char *const *files,
                     int n);

/* Compiles --layers' extended regex text into re (no sub-matches). Returns 0 (caller frees re
 * with regfree), or -1 after a usage error for command cmd (re not to be freed). */
int at_cmd_regex(const char *cmd, const char *text, regex_t *re);

#endif
