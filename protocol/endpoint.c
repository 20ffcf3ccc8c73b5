/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint.c -- the default endpoint shared by the agent and the monitor, and who can reach an
 * endpoint (at_proto_endpoint_scope), judged from its text. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* Whether the n bytes at host name a loopback address: "localhost", or a numeric IPv4 address
 * in 127.0.0.0/8, IPv6 ::1, or IPv4-mapped ::ffff:127.x.y.z. Other names would need a lookup
 * whose answer may change, and interface names ("lo", "eth0") are not recognised. */
static int is_loopback(const char *host, size_t n)
{
    char h[64];
    if (n == 0 || n >= sizeof h)
        return 0;
    memcpy(h, host, n);
    h[n] = '\0';
    if (strcasecmp(h, "localhost") == 0)
        return 1;
    unsigned char a[16];
    if (inet_pton(AF_INET, h, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, h, a) != 1)
        return 0;
    static const unsigned char one[16] = {[15] = 1}, mapped[12] = {[10] = 0xff, [11] = 0xff};
    return memcmp(a, one, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
}

at_proto_scope at_proto_endpoint_scope(const char *ep)
{
    if (!ep)
        return AT_PROTO_SCOPE_NETWORK;
    if (strncmp(ep, "inproc://", 9) == 0)
        return AT_PROTO_SCOPE_PROCESS;
    /* An abstract socket (Linux, "@name") has no file, hence no mode: any local user. */
    if (strncmp(ep, "ipc://", 6) == 0)
        return ep[6] == '@' ? AT_PROTO_SCOPE_HOST : AT_PROTO_SCOPE_USER;
    static const char *const ip_schemes[] = {"tcp://", "ws://", "wss://"};
    const char *rest = NULL;
    for (size_t i = 0; i < sizeof ip_schemes / sizeof ip_schemes[0] && !rest; i++)
        if (strncmp(ep, ip_schemes[i], strlen(ip_schemes[i])) == 0)
            rest = ep + strlen(ip_schemes[i]);
    if (!rest)
        return AT_PROTO_SCOPE_NETWORK; /* pgm, epgm, vmci, tipc, udp, or unknown */
    /* host:port, [v6]:port, and for ws/wss a /path after the port. */
    size_t n = strcspn(rest, "/");
    const char *host = rest;
    size_t hn;
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', n);
        if (!close || close[1] != ':')
            return AT_PROTO_SCOPE_NETWORK;
        host = rest + 1;
        hn = (size_t)(close - host);
    } else {
        const char *colon = NULL;
        for (const char *p = rest; p < rest + n; p++)
            if (*p == ':')
                colon = p;
        if (!colon)
            return AT_PROTO_SCOPE_NETWORK;
        hn = (size_t)(colon - rest);
    }
    return is_loopback(host, hn) ? AT_PROTO_SCOPE_HOST : AT_PROTO_SCOPE_NETWORK;
}
