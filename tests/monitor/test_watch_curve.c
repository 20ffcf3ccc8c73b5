/* SPDX-License-Identifier: Apache-2.0 */
/* `alphatop watch` on a non-loopback tcp address: refused without Curve keys (exit 2); with
 * --curve-key/--curve-allow a trainer holding an allowed key is analysed, while a trainer with an
 * unknown key and one without Curve are never heard: their refused connections are a warning
 * event and counted in the final stats line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"
#include "mon_util.h"

#define TIMEOUT 60.0

/* A tcp port free right now on this host (the kernel's choice). */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(s >= 0);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* One snapshot of one 128 x 64 Gaussian layer named after the run; the agent's status of the
 * publish. */
static int publish_one(const char *run, const char *ep, const char *server_pub, const char *keyfile,
                       at_agent **out)
{
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.curve_server_key = server_pub;
    o.curve_client_keyfile = keyfile;
    o.linger_ms = 2000;
    at_agent *a = at_agent_new(run, ep, &o);
    assert_non_null(a);
    static float w[128 * 64];
    at_rng g;
    at_rng_seed(&g, 11);
    for (int i = 0; i < 128 * 64; i++)
        w[i] = (float)at_rng_normal(&g);
    int rc = at_agent_snapshot_begin(a, 100);
    if (rc == AT_OK)
        rc = at_agent_publish(a, run, AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, (int64_t[]){128, 64},
                              w, 0);
    int end = at_agent_snapshot_end(a);
    *out = a;
    return rc == AT_OK ? end : rc;
}

static void test_curve_flags(void **state)
{
    (void)state;
    char dir[64], mkey[96], mpub[96], tkey[96], tpub[96], ikey[96], ep[64], local[64];
    snprintf(dir, sizeof dir, "/tmp/at-curve-%d", (int)getpid());
    snprintf(mkey, sizeof mkey, "%s-monitor", dir);
    snprintf(mpub, sizeof mpub, "%s-monitor.pub", dir);
    snprintf(tkey, sizeof tkey, "%s-trainer", dir);
    snprintf(tpub, sizeof tpub, "%s-trainer.pub", dir);
    snprintf(ikey, sizeof ikey, "%s-intruder", dir);
    assert_int_equal(at_agent_keygen(mkey), AT_OK);
    assert_int_equal(at_agent_keygen(tkey), AT_OK);
    assert_int_equal(at_agent_keygen(ikey), AT_OK);
    int port = free_port();
    snprintf(ep, sizeof ep, "tcp://0.0.0.0:%d", port);
    snprintf(local, sizeof local, "tcp://127.0.0.1:%d", port);

    /* Every interface, no keys: refused before anything is bound. */
    const char *plain_args[] = {"watch", "--headless", "--no-record", "--listen", ep, NULL};
    assert_int_equal(mon_run(plain_args, NULL, TIMEOUT), 2);

    mon m;
    const char *args[] = {"watch", "--headless",      "--no-record", "--listen",
                          ep,      "--curve-key",     mkey,          "--curve-allow",
                          tpub,    "--max-snapshots", "1",           NULL};
    assert_int_equal(mon_start(&m, args), 0);
    mon_sleep(0.5);
    /* Refused peers first, so that anything they got through would be seen before the good run. */
    at_agent *intruder = NULL, *plain = NULL, *good = NULL;
    int rc = publish_one("intruder", local, mpub, ikey, &intruder);
    assert_true(rc == AT_OK || rc == AT_ERR_AGAIN);
    rc = publish_one("plain", local, NULL, NULL, &plain);
    assert_true(rc == AT_OK || rc == AT_ERR_AGAIN);
    mon_sleep(0.5);
    assert_int_equal(publish_one("trainer", local, mpub, tkey, &good), AT_OK);

    const cJSON *l = mon_wait_for(&m, "layer", NULL, TIMEOUT);
    assert_non_null(l);
    assert_string_equal(mon_str(l, "run"), "trainer");
    assert_true(mon_num(l, "alpha") > 0.0);
    /* the refused connections: a warning event while running, counted in the last line */
    const cJSON *st = mon_wait_for(&m, "stats", NULL, TIMEOUT);
    assert_non_null(st);
    assert_true(mon_num(st, "auth_denied") >= 1);
    assert_true(mon_num(st, "handshake_failed") >= 1);
    int warned = 0;
    for (const cJSON *o = m.seen->child; o; o = o->next) {
        assert_string_not_equal(mon_str(o, "run"), "intruder");
        assert_string_not_equal(mon_str(o, "run"), "plain");
        warned += !strcmp(mon_str(o, "kind"), "warning") && strstr(mon_str(o, "text"), "refused");
        assert_string_not_equal(mon_str(o, "kind"), "error");
    }
    assert_true(warned >= 1);
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    at_agent_free(good);
    at_agent_free(plain);
    at_agent_free(intruder);
    const char *files[] = {mkey, mpub, tkey, tpub, ikey};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        unlink(files[i]);
    char ipub[104];
    snprintf(ipub, sizeof ipub, "%s.pub", ikey);
    unlink(ipub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curve_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
