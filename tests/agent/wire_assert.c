/* SPDX-License-Identifier: Apache-2.0 */
/* wire_assert.c -- the helpers of wire.h that fail the running cmocka test. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "wire.h"

at_feed *wire_feed(const char *endpoint, int rcvhwm)
{
    at_feed_opts o;
    at_feed_opts_default(&o);
    o.endpoint = endpoint;
    if (rcvhwm > 0)
        o.rcvhwm = rcvhwm;
    return wire_feed_with(&o);
}

at_feed *wire_feed_with(const at_feed_opts *o)
{
    char err[256];
    at_feed *f = at_feed_new(o, err, sizeof err);
    if (!f)
        fail_msg("feed on %s: %s", o->endpoint, err);
    return f;
}

void wire_drain(at_feed *f, wire_tally *t, int timeout_ms, int sleep_us)
{
    int idle = 0;
    while (idle < timeout_ms && t->goodbyes == 0) {
        at_feed_msg *m = NULL;
        at_proto_error e;
        int rc = at_feed_recv(f, 10, &m, &e);
        if (rc == AT_ERR_AGAIN) {
            idle += 10;
            continue;
        }
        if (rc != AT_OK)
            fail_msg("rejected: %s", e.message);
        idle = 0;
        wire_tally_add(t, m);
        at_feed_msg_free(m);
        if (sleep_us)
            usleep((useconds_t)sleep_us);
    }
}

static void *free_agent(void *a)
{
    at_agent_free(a);
    return NULL;
}

void wire_close(at_agent *a, at_feed *f, wire_tally *t, int sleep_us)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_agent, a), 0);
    wire_drain(f, t, 10000, sleep_us);
    pthread_join(th, NULL);
}
