/* SPDX-License-Identifier: Apache-2.0 */
/* app.c -- a trainer-side program built against an installed alphatop, the way a user builds
 * one (tests/install/test_install.sh: pkg-config, and CMake's find_package): creates an agent
 * with no monitor listening, sends nothing, closes it.
 * Usage: app ENDPOINT; prints one line and exits 0 when every call worked. */
#include <stdio.h>

#include <alphatop/agent.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: app ENDPOINT\n", stderr);
        return 2;
    }
    at_agent_opts opts;
    at_agent_opts_default(&opts);
    opts.linger_ms = 0; /* no monitor: nothing to wait for */
    at_agent *a = at_agent_new("install-test", argv[1], &opts);
    if (!a) {
        fprintf(stderr, "app: %s\n", at_agent_last_error(NULL));
        return 1;
    }
    int64_t interval = at_agent_interval(a);
    at_agent_free(a);
    char endpoint[256];
    if (at_proto_default_endpoint(endpoint, sizeof endpoint) != AT_OK)
        return 1;
    printf("agent ok: interval %lld, %s\n", (long long)interval, at_strerror(AT_OK));
    return 0;
}
