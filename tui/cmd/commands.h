/* SPDX-License-Identifier: Apache-2.0 */
/* commands.h -- the alphatop commands. Each takes the arguments after its name (argv[0] is
 * the command name, argv may be permuted) and returns the process exit code of docs/cli.md:
 * 0 success, 1 some input could not be analysed, 2 usage error, 3 a --stop-on rule fired. */
#ifndef ALPHATOP_COMMANDS_H
#define ALPHATOP_COMMANDS_H

#include "exitcode.h"

int cmd_scan(int argc, char **argv);   /* scan.c */
int cmd_diff(int argc, char **argv);   /* diff.c */
int cmd_watch(int argc, char **argv);  /* watch.c */
int cmd_replay(int argc, char **argv); /* watch.c */
int cmd_report(int argc, char **argv); /* report.c */
int cmd_demo(int argc, char **argv);   /* demo.c */

#endif
