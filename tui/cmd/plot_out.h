/* SPDX-License-Identifier: Apache-2.0 */
/* plot_out.h -- the directory `scan --plot` and `report --html` write their pictures and pages
 * into, with one form for its errors. */
#ifndef ALPHATOP_PLOT_OUT_H
#define ALPHATOP_PLOT_OUT_H

/* Makes dir (the value of option opt of command cmd) unless it is already a directory. Returns
 * 0, or -1 after saying why on stderr ("alphatop scan: --plot DIR: cannot create the directory:
 * Permission denied"). */
int at_cmd_out_dir(const char *cmd, const char *opt, const char *dir);

/* Writes text to dir/name (NULL text: it could not be made, out of memory). Returns 0, or -1
 * after saying why on stderr ("alphatop scan: DIR/NAME: cannot write: No space left on
 * device"). */
int at_cmd_save(const char *cmd, const char *dir, const char *name, const char *text);

#endif
