/* endpoint.c -- the default endpoint shared by the agent and the monitor. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "alphatop/protocol.h"

int at_proto_default_endpoint(char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return AT_ERR_ARG;
    const char *env = getenv("ALPHATOP_ENDPOINT");
    int n = (env && *env)
                ? snprintf(buf, cap, "%s", env)
                : snprintf(buf, cap, "ipc:///tmp/alphatop-%lu.ipc", (unsigned long)getuid());
    return (n < 0 || (size_t)n >= cap) ? AT_ERR_SIZE : AT_OK;
}
