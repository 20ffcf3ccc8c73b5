/* SPDX-License-Identifier: Apache-2.0 */
/* CurveZMQ: a trainer with an allowed key reaches the monitor (and hears its stop); a trainer
 * whose key is not on the allow-list, one that does not know the monitor's key, and one without
 * Curve are all refused -- nothing they send is received. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "alphatop/keyfile.h"
#include "wire.h"

static char dir_[64];

static const char *path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s-%s", dir_, name);
    return buf;
}

static at_agent *curve_agent(const char *run, const char *ep, const char *server_key,
                             const char *client_keyfile)
{
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.curve_server_key = server_key;
    o.curve_client_keyfile = client_keyfile;
    o.linger_ms = 0;
    at_agent *a = at_agent_new(run, ep, &o);
    if (!a)
        fail_msg("%s", at_agent_last_error(NULL));
    return a;
}

static void test_curve_allows_known_refuses_others(void **state)
{
    (void)state;
    snprintf(dir_, sizeof dir_, "/tmp/at-test-%d", (int)getpid());
    char server[96], server_pub[96], client[96], client_pub[96], intruder[96], intruder_pub[96];
    assert_int_equal(at_agent_keygen(path(server, sizeof server, "monitor")), AT_OK);
    assert_int_equal(at_agent_keygen(path(client, sizeof client, "trainer")), AT_OK);
    assert_int_equal(at_agent_keygen(path(intruder, sizeof intruder, "intruder")), AT_OK);
    path(server_pub, sizeof server_pub, "monitor.pub");
    path(client_pub, sizeof client_pub, "trainer.pub");
    path(intruder_pub, sizeof intruder_pub, "intruder.pub");

    /* The monitor takes its keys from the environment here, the trainers from options. */
    at_feed_opts fo;
    at_feed_opts_default(&fo);
    fo.endpoint = "tcp://127.0.0.1:*";
    setenv("ALPHATOP_CURVE_KEY", server, 1);
    setenv("ALPHATOP_CURVE_ALLOW", client_pub, 1);
    char err[256];
    at_feed *f = at_feed_new(&fo, err, sizeof err);
    unsetenv("ALPHATOP_CURVE_KEY");
    unsetenv("ALPHATOP_CURVE_ALLOW");
    if (!f)
        fail_msg("%s", err);
    const char *ep = at_feed_endpoint(f);

    /* Refused peers first, so that anything they managed to send would be seen below. */
    at_agent *bad_client = curve_agent("intruder", ep, server_pub, intruder);
    at_agent *bad_server = curve_agent("wrong-server", ep, intruder_pub, client);
    at_agent *plain = at_agent_new("plain", ep, NULL);
    assert_non_null(plain);
    for (int i = 0; i < 3; i++) {
        at_agent *x = i == 0 ? bad_client : i == 1 ? bad_server : plain;
        /* Dropped (AT_ERR_AGAIN) once ZeroMQ gave up on the refused connection: also fine. */
        int rc = wire_publish(x, 1, 1, 4, 4);
        assert_true(rc == AT_OK || rc == AT_ERR_AGAIN);
    }

    /* The monitor's public key may also be given as Z85 text. */
    char z85[AT_KEY_Z85_LEN + 1];
    assert_int_equal(at_keyfile_read(server_pub, z85, NULL, err, sizeof err), AT_OK);
    at_agent *good = curve_agent("good", ep, z85, client);
    assert_int_equal(wire_publish(good, 1, 2, 4, 4), AT_OK);
    wire_tally t;
    wire_tally_init(&t);
    for (int idle = 0; idle < 1500 && t.snapshots < 1;) {
        at_feed_msg *m = NULL;
        if (at_feed_recv(f, 10, &m, NULL) != AT_OK) {
            idle += 10;
            continue;
        }
        assert_string_equal(m->msg.run, "good");
        wire_tally_add(&t, m);
        at_feed_msg_free(m);
    }
    assert_int_equal(t.hellos, 1);
    assert_int_equal(t.snapshots, 1);
    assert_int_equal(t.bad, 0);

    /* A trainer configured through the environment only. */
    setenv("ALPHATOP_CURVE_KEY", client, 1);
    setenv("ALPHATOP_CURVE_SERVER", server_pub, 1);
    at_agent *env_agent = at_agent_new("good-env", ep, NULL);
    unsetenv("ALPHATOP_CURVE_KEY");
    unsetenv("ALPHATOP_CURVE_SERVER");
    assert_non_null(env_agent);
    at_feed_msg *hm = wire_recv_type(f, AT_PROTO_HELLO, 5000);
    assert_non_null(hm);
    assert_string_equal(hm->msg.run, "good-env");
    at_feed_msg_free(hm);
    at_agent_free(env_agent);

    /* Control travels back over the encrypted connection. */
    assert_int_equal(at_feed_stop(f, "good", "enough"), AT_OK);
    char reason[64] = "";
    for (int i = 0; i < 500 && !at_agent_should_stop(good, reason, sizeof reason); i++)
        usleep(10000);
    assert_string_equal(reason, "enough");

    /* Give the refused peers time to retry; still nothing from them, but the refusals are
     * reported (a notice between messages) and counted. */
    at_feed_msg *m = NULL;
    int notices = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* At least 100 polls of 10 ms, and on until a notice came (at most 500). */
    for (int i = 0; i < 500 && (i < 100 || notices == 0); i++) {
        at_proto_error e;
        int rc = at_feed_recv(f, 10, &m, &e);
        if (rc == AT_OK) {
            assert_true(strncmp(m->msg.run, "good", 4) == 0);
            at_feed_msg_free(m);
        } else if (rc == AT_ERR_AUTH) {
            assert_int_equal(e.reason, AT_PROTO_E_NONE);
            assert_non_null(strstr(e.message, "refused"));
            notices++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Summed, at most one a second: a loaded machine stretches the loop past its 100 polls of
     * 10 ms, and each second it takes may bring one more. */
    const double took = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    assert_true(notices >= 1 && notices <= 2 + (int)took);
    assert_null(at_feed_run_find(f, "intruder"));
    assert_null(at_feed_run_find(f, "wrong-server"));
    assert_null(at_feed_run_find(f, "plain"));
    at_feed_stats s;
    at_feed_stats_get(f, &s);
    assert_true(s.auth_denied >= 1);      /* the intruder's key was checked and refused */
    assert_true(s.handshake_failed >= 2); /* the wrong monitor key, and no Curve at all */
    assert_int_equal(s.rejected, 0);

    at_agent_free(bad_client);
    at_agent_free(bad_server);
    at_agent_free(plain);
    at_agent_free(good);
    at_feed_free(f);
    const char *files[] = {server, server_pub, client, client_pub, intruder, intruder_pub};
    for (int i = 0; i < 6; i++)
        unlink(files[i]);
}

static void test_curve_setup_errors(void **state)
{
    (void)state;
    at_feed_opts fo;
    at_feed_opts_default(&fo);
    fo.endpoint = "tcp://127.0.0.1:*";
    fo.curve_keyfile = "/nonexistent/monitor";
    fo.curve_allow_file = "/nonexistent/allow";
    char err[256];
    assert_null(at_feed_new(&fo, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/monitor"));
    fo.curve_allow_file = NULL;
    assert_null(at_feed_new(&fo, err, sizeof err));
    assert_non_null(strstr(err, "allow-list"));
}

/* A secret key others can read, and an allow-list with no key, are warned about. */
static void test_curve_warnings(void **state)
{
    (void)state;
    snprintf(dir_, sizeof dir_, "/tmp/at-test-%d", (int)getpid());
    char key[96], pub[96], empty[96];
    assert_int_equal(at_agent_keygen(path(key, sizeof key, "warn")), AT_OK);
    path(pub, sizeof pub, "warn.pub");
    path(empty, sizeof empty, "empty.allow");
    FILE *fp = fopen(empty, "w");
    fputs("# nobody yet\n", fp);
    fclose(fp);
    at_feed_opts fo;
    at_feed_opts_default(&fo);
    fo.endpoint = "tcp://127.0.0.1:*";
    fo.curve_keyfile = key;
    fo.curve_allow_file = pub;
    char err[256];
    at_feed *f = at_feed_new(&fo, err, sizeof err);
    assert_non_null(f);
    assert_string_equal(at_feed_warning(f), ""); /* mode 0600, one key: nothing to say */
    at_feed_free(f);

    assert_int_equal(chmod(key, 0644), 0);
    fo.curve_allow_file = empty;
    f = at_feed_new(&fo, err, sizeof err);
    assert_non_null(f);
    const char *w = at_feed_warning(f);
    assert_non_null(strstr(w, "chmod 600"));
    assert_non_null(strstr(w, "no trainer keys"));
    assert_non_null(strchr(w, '\n')); /* one line each */
    at_feed_free(f);
    unlink(key);
    unlink(pub);
    unlink(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curve_allows_known_refuses_others),
        cmocka_unit_test(test_curve_setup_errors),
        cmocka_unit_test(test_curve_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
