/* SPDX-License-Identifier: Apache-2.0 */
/* exitcode.h -- the process exit codes of every alphatop command (docs/cli.md): 0 success,
 * 1 some input could not be analysed (a missing, unreadable or malformed input file too),
 * 2 usage error (or watch cannot start), 3 a --stop-on rule fired. The monitor's engine
 * reports its finish in these terms. */
#ifndef ALPHATOP_EXITCODE_H
#define ALPHATOP_EXITCODE_H

enum { AT_EXIT_OK = 0, AT_EXIT_PARTIAL = 1, AT_EXIT_USAGE = 2, AT_EXIT_STOPPED = 3 };

#endif
