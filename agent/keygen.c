/* SPDX-License-Identifier: Apache-2.0 */
/* alphatop-keygen -- writes a CurveZMQ key pair for alphatop (see alphatop/keyfile.h):
 * NAME (public + secret, mode 0600) and NAME.pub (public, to give to the other side). */
#include <stdio.h>
#include <string.h>

#include "alphatop/agent.h"

int main(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(argc == 2 ? stdout : stderr,
                "usage: alphatop-keygen NAME\n"
                "Writes a CurveZMQ key pair: NAME (keep private) and NAME.pub.\n"
                "Monitor: ALPHATOP_CURVE_KEY=MONITOR ALPHATOP_CURVE_ALLOW=TRAINERS.pub\n"
                "Trainer: ALPHATOP_CURVE_KEY=TRAINER ALPHATOP_CURVE_SERVER=MONITOR.pub\n"
                "(or the curve_* options of the agent and the feed; docs/protocol.md).\n");
        return argc == 2 ? 0 : 2;
    }
    int rc = at_agent_keygen(argv[1]);
    if (rc != AT_OK) {
        fprintf(stderr, "alphatop-keygen: %s: %s\n", argv[1], at_strerror(rc));
        return 1;
    }
    printf("wrote %s and %s.pub\n", argv[1], argv[1]);
    return 0;
}
