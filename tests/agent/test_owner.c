/* SPDX-License-Identifier: Apache-2.0 */
/* A run id belongs to the connection that spoke for it first (docs/protocol.md section 1). A
 * second local peer forging messages under a real agent's run id is refused -- its hello,
 * snapshots, stop_ack and goodbye never come out of the feed -- and reported (a notice per
 * claimant at most once a second, naming both processes); control goes to the real agent
 * alone. Real reconnections are accepted: a trainer killed and started again with the same run
 * id; an agent that made a new socket after a protocol error; with CurveZMQ, a new connection
 * with the owner's key, while another key is refused until the owner's goodbye. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "alphatop/keyfile.h"
#include "forge.h"
#include "wire.h"

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static at_agent *agent_with(const char *run, const char *ep, const char *server_key,
                            const char *keyfile)
{
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.interval = 10;
    o.linger_ms = 1000;
    o.curve_server_key = server_key;
    o.curve_client_keyfile = keyfile;
    at_agent *a = at_agent_new(run, ep, &o);
    if (!a)
        fail_msg("agent: %s", at_agent_last_error(NULL));
    return a;
}

/* The peer number of the next hello f receives (within 5 s). */
static uint32_t hello_peer(at_feed *f)
{
    at_feed_msg *h = wire_recv_type(f, AT_PROTO_HELLO, 5000);
    assert_non_null(h);
    uint32_t peer = h->peer;
    at_feed_msg_free(h);
    return peer;
}

/* Waits (5 s at most) for the monitor's stop to reach a; its reason must be want. */
static void expect_stop(at_agent *a, const char *want)
{
    char reason[128] = "";
    for (int i = 0; i < 500 && !at_agent_should_stop(a, reason, sizeof reason); i++)
        usleep(10000);
    assert_string_equal(reason, want);
}

/* What a stretch of receiving brought: messages by sender, and the not_owner notices. */
typedef struct seen {
    int64_t from_owner, from_others, noted; /* noted: the refusals the notices counted */
    int notices;
    int64_t notice_ms[16];
    char text[512];       /* the last notice */
    uint32_t other;       /* a sender other than the owner, if any */
    int64_t hellos, acks; /* from the owner */
} seen;

/* Receives for up to ms milliseconds, or until want_noted refusals were reported (0: the whole
 * time); owner is the expected sender of everything accepted. */
static void receive(at_feed *f, uint32_t owner, int ms, int64_t want_noted, seen *s)
{
    for (int64_t end = ms_now() + ms; ms_now() < end && (!want_noted || s->noted < want_noted);) {
        at_feed_msg *m = NULL;
        at_proto_error e = {AT_PROTO_E_NONE, ""};
        int rc = at_feed_recv(f, 10, &m, &e);
        if (rc == AT_OK) {
            if (m->peer == owner) {
                s->from_owner++;
                s->hellos += m->msg.type == AT_PROTO_HELLO;
                s->acks += m->msg.type == AT_PROTO_STOP_ACK;
            } else {
                s->from_others++;
                s->other = m->peer;
            }
            at_feed_msg_free(m);
        } else if (e.reason == AT_PROTO_E_NOT_OWNER) {
            assert_int_equal(rc, AT_ERR_AUTH);
            long long n = 0;
            const char *p = strstr(e.message, "refused ");
            assert_non_null(p);
            assert_int_equal(sscanf(p, "refused %lld", &n), 1);
            s->noted += n;
            if (s->notices < 16)
                s->notice_ms[s->notices] = ms_now();
            s->notices++;
            snprintf(s->text, sizeof s->text, "%s", e.message);
        } else if (rc != AT_ERR_AGAIN) {
            fail_msg("unexpected %d: %s", rc, e.message);
        }
    }
}

static void test_forger_refused_and_reported(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "forge");
    at_feed *f = wire_feed(ep, 0);
    at_agent *a = agent_with("run-own", ep, NULL, NULL);
    uint32_t real = hello_peer(f);

    /* Another process of this user -- here this one, on a socket of its own -- forges the
     * run: a hello, twenty snapshots that would fire any stop rule, a stop_ack, a goodbye. */
    forge *g = forge_new(ep);
    assert_non_null(g);
    float w[64];
    for (int i = 0; i < 64; i++)
        w[i] = (float)((i * 37) % 11) - 5.0f;
    int64_t forged = 0;
    assert_int_equal(forge_send(g, AT_PROTO_HELLO, "run-own"), 0);
    forged++;
    for (int64_t i = 0; i < 20; i++, forged++)
        assert_int_equal(forge_snapshot(g, "run-own", 1000 + i, 100 + i, w, 8, 8), 0);
    assert_int_equal(forge_send(g, AT_PROTO_STOP_ACK, "run-own"), 0);
    assert_int_equal(forge_send(g, AT_PROTO_GOODBYE, "run-own"), 0);
    forged += 2;
    assert_int_equal(wire_publish(a, 10, 1, 8, 8), AT_OK);

    seen s = {0};
    receive(f, real, 5000, forged, &s);
    assert_int_equal(s.from_others, 0);
    assert_int_equal(s.noted, forged);
    /* The first refusal at once, the rest summed a second later; never two within a second. */
    assert_true(s.notices >= 1 && s.notices <= 2);
    for (int i = 1; i < s.notices; i++)
        assert_true(s.notice_ms[i] - s.notice_ms[i - 1] >= 900);
    char pid[64];
    snprintf(pid, sizeof pid, "(pid %d, uid %u)", (int)getpid(), (unsigned)getuid());
    assert_non_null(strstr(s.text, "not_owner: refused"));
    assert_non_null(strstr(s.text, "for run run-own from connection"));
    assert_non_null(strstr(s.text, pid)); /* both sides: the same process here */
    assert_non_null(strstr(s.text, "until that one says goodbye or disconnects"));
    receive(f, real, 300, 0, &s); /* the real snapshot, if it was not in yet */
    assert_true(s.from_owner >= 2);
    at_feed_stats st;
    at_feed_stats_get(f, &st);
    assert_int_equal(st.rejected_by[AT_PROTO_E_NOT_OWNER], forged);
    assert_int_equal(st.rejected, forged);

    /* The run is still the real agent's, not ended, no stop acknowledged. */
    const at_feed_run *r = at_feed_run_find(f, "run-own");
    assert_non_null(r);
    assert_int_equal(r->peer, real);
    assert_int_equal(r->connected, 1);
    assert_int_equal(r->hello_seen, 1);
    assert_int_equal(r->stop_acked, 0);

    /* A stop reaches the real agent, never the forger; the real acknowledgement counts. */
    assert_int_equal(at_feed_stop(f, "run-own", "the real one"), AT_OK);
    expect_stop(a, "the real one");
    assert_int_equal(forge_received(g, 300), 0);
    seen acks = {0};
    for (int i = 0; i < 100 && !acks.acks; i++)
        receive(f, real, 50, 0, &acks);
    assert_int_equal(acks.acks, 1);
    assert_int_equal(acks.from_others, 0);
    assert_int_equal(at_feed_run_find(f, "run-own")->stop_acked, 1);
    forge_free(g);
    at_agent_free(a);
    at_feed_free(f);
}

/* Without Curve, a second connection's hello is refused while the owner's connection is open,
 * whoever started first; each claimant is reported on its own. Once the owner's connection
 * closes (here without a goodbye), the waiting claimant's next message takes the run, and the
 * monitor asks it for its hello. */
static void test_claim_waits_for_the_owner_to_go(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "wait");
    at_feed *f = wire_feed(ep, 0);
    forge *owner = forge_new(ep), *second = forge_new(ep), *third = forge_new(ep);
    assert_int_equal(forge_send(owner, AT_PROTO_HELLO, "run-wait"), 0);
    uint32_t first = hello_peer(f);
    assert_int_equal(forge_send(second, AT_PROTO_HELLO, "run-wait"), 0);
    assert_int_equal(forge_send(third, AT_PROTO_HELLO, "run-wait"), 0);
    seen s = {0};
    receive(f, first, 5000, 2, &s);
    assert_int_equal(s.noted, 2);
    assert_int_equal(s.notices, 2); /* one per claimant, in the same second */
    assert_int_equal(at_feed_run_find(f, "run-wait")->peer, first);
    forge_free(owner);
    float w[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    uint32_t now = first;
    for (int i = 0; i < 100 && now == first; i++) {
        assert_int_equal(forge_snapshot(second, "run-wait", 10 + i, i, w, 4, 4), 0);
        receive(f, first, 50, 0, &s);
        now = s.from_others ? s.other : first;
    }
    assert_true(now != first);
    const at_feed_run *r = at_feed_run_find(f, "run-wait");
    assert_int_equal(r->peer, now);
    assert_int_equal(r->connected, 1);
    assert_int_equal(r->hello_seen, 0);
    assert_int_equal(forge_received(second, 1000), 1); /* the hello request */
    assert_int_equal(forge_received(third, 100), 0);
    forge_free(second);
    forge_free(third);
    at_feed_free(f);
}

/* ---- a trainer killed and started again ---- */

/* The child trainer (this program with "trainer EP RUN"): snapshots every 20 ms until stopped
 * (exit 0 if the reason is "for the new one") or 20 s pass (exit 1). */
static int trainer_main(const char *ep, const char *run)
{
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.interval = 10;
    at_agent *a = at_agent_new(run, ep, &o);
    if (!a)
        return 2;
    char reason[128] = "";
    for (int64_t seq = 0; seq < 1000 && !at_agent_should_stop(a, reason, sizeof reason); seq++) {
        wire_publish(a, seq * 10, 1, 8, 8);
        usleep(20000);
    }
    at_agent_free(a);
    return strcmp(reason, "for the new one") != 0;
}

static pid_t spawn_trainer(const char *ep, const char *run)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "test_agent_owner", "trainer", ep, run, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The child's exit status, waiting at most timeout_ms (then -1, and it is killed). */
static int wait_child(pid_t pid, int timeout_ms)
{
    int st = 0;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void test_restarted_trainer_takes_over(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "restart");
    at_feed *f = wire_feed(ep, 0);
    pid_t first = spawn_trainer(ep, "run-again");
    uint32_t old = hello_peer(f);
    at_feed_msg *end = wire_recv_type(f, AT_PROTO_SNAPSHOT_END, 10000);
    assert_non_null(end);
    at_feed_msg_free(end);
    kill(first, SIGKILL); /* no goodbye: only the closed connection tells */
    assert_int_equal(wait_child(first, 5000), 128 + SIGKILL);

    pid_t second = spawn_trainer(ep, "run-again");
    uint32_t now = hello_peer(f);
    assert_true(now != old);
    seen s = {0};
    receive(f, now, 300, 0, &s);
    assert_true(s.from_owner >= 1); /* its snapshots */
    assert_int_equal(s.from_others, 0);
    const at_feed_run *r = at_feed_run_find(f, "run-again");
    assert_int_equal(r->peer, now);
    assert_int_equal(r->connected, 1);
    at_feed_stats st;
    at_feed_stats_get(f, &st);
    assert_int_equal(st.rejected_by[AT_PROTO_E_NOT_OWNER], 0);
    /* Control now goes to the new process. */
    assert_int_equal(at_feed_stop(f, "run-again", "for the new one"), AT_OK);
    for (int i = 0; i < 200; i++)
        receive(f, now, 10, 0, &s); /* keeps the feed drained while the child stops */
    assert_int_equal(wait_child(second, 10000), 0);
    at_feed_free(f);
}

/* ---- a new socket after a protocol error ---- */

static void test_new_socket_after_protocol_error(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "proto");
    at_feed *f = wire_feed(ep, 0);
    at_agent *a = agent_with("run-proto", ep, NULL, NULL);
    uint32_t old = hello_peer(f);
    /* A frame over the agent's 64 KiB receive limit on its connection: libzmq drops the link
     * and never reconnects it; the agent makes a new socket and says hello again. The routing
     * id ZeroMQ gave the connection is a zero byte and the peer number. */
    unsigned char id[5] = {0};
    memcpy(id + 1, &old, 4);
    char *big = calloc(1, 70000);
    assert_true(zmq_send(at_feed_socket(f), id, sizeof id, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(at_feed_socket(f), big, 70000, 0) >= 0);
    free(big);
    uint32_t now = old;
    int64_t seq = 0, snapshots_after = 0;
    for (int i = 0; i < 500 && snapshots_after < 2; i++, seq++) {
        wire_publish(a, seq * 10, 1, 8, 8);
        at_feed_msg *m = NULL;
        while (at_feed_recv(f, 10, &m, NULL) == AT_OK) {
            if (m->msg.type == AT_PROTO_HELLO && m->peer != old)
                now = m->peer;
            snapshots_after += now != old && m->peer == now && m->msg.type == AT_PROTO_SNAPSHOT_END;
            at_feed_msg_free(m);
        }
    }
    assert_true(now != old);
    assert_int_equal(snapshots_after, 2);
    at_feed_stats st;
    at_feed_stats_get(f, &st);
    assert_int_equal(st.rejected_by[AT_PROTO_E_NOT_OWNER], 0);
    assert_int_equal(at_feed_run_find(f, "run-proto")->peer, now);
    assert_int_equal(at_feed_stop(f, "run-proto", "after the new socket"), AT_OK);
    expect_stop(a, "after the new socket");
    at_agent_free(a);
    at_feed_free(f);
}

/* ---- CurveZMQ: the key owns the run ---- */

static void key_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "/tmp/at-test-%d-owner-%s", (int)getpid(), name);
}

/* Receives until a not_owner notice (at most 5 s); its text. */
static void expect_notice(at_feed *f, uint32_t owner, seen *s)
{
    int before = s->notices;
    receive(f, owner, 5000, s->noted + 1, s);
    assert_true(s->notices > before);
}

static void test_curve_key_binds_run(void **state)
{
    (void)state;
    char server[96], server_pub[96], ka[96], ka_pub[96], kb[96], kb_pub[96], allow[96];
    key_path(server, sizeof server, "monitor");
    key_path(ka, sizeof ka, "a");
    key_path(kb, sizeof kb, "b");
    key_path(allow, sizeof allow, "allow");
    assert_int_equal(at_agent_keygen(server), AT_OK);
    assert_int_equal(at_agent_keygen(ka), AT_OK);
    assert_int_equal(at_agent_keygen(kb), AT_OK);
    key_path(server_pub, sizeof server_pub, "monitor.pub");
    key_path(ka_pub, sizeof ka_pub, "a.pub");
    key_path(kb_pub, sizeof kb_pub, "b.pub");
    char za[AT_KEY_Z85_LEN + 1], zb[AT_KEY_Z85_LEN + 1], err[256];
    assert_int_equal(at_keyfile_read(ka_pub, za, NULL, err, sizeof err), AT_OK);
    assert_int_equal(at_keyfile_read(kb_pub, zb, NULL, err, sizeof err), AT_OK);
    /* Both trainers may connect: their .pub files, concatenated. */
    FILE *fp = fopen(allow, "w");
    assert_non_null(fp);
    for (int i = 0; i < 2; i++) {
        char buf[256];
        FILE *in = fopen(i ? kb_pub : ka_pub, "r");
        assert_non_null(in);
        size_t n = fread(buf, 1, sizeof buf, in);
        fclose(in);
        assert_int_equal(fwrite(buf, 1, n, fp), n);
    }
    fclose(fp);

    at_feed_opts fo;
    at_feed_opts_default(&fo);
    fo.endpoint = "tcp://127.0.0.1:*";
    fo.curve_keyfile = server;
    fo.curve_allow_file = allow;
    at_feed *f = at_feed_new(&fo, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    const char *ep = at_feed_endpoint(f);

    at_agent *a1 = agent_with("run-key", ep, server_pub, ka);
    uint32_t p1 = hello_peer(f);

    /* Another allowed key claims the run: refused, and the notice names both keys. */
    at_agent *b = agent_with("run-key", ep, server_pub, kb);
    assert_int_equal(wire_publish(b, 10, 1, 8, 8), AT_OK);
    seen s = {0};
    expect_notice(f, p1, &s);
    char kname[32];
    snprintf(kname, sizeof kname, "key %.8s", zb);
    assert_non_null(strstr(s.text, kname));
    snprintf(kname, sizeof kname, "key %.8s", za);
    assert_non_null(strstr(s.text, kname));
    assert_non_null(strstr(s.text, "until that one says goodbye"));
    assert_int_equal(s.from_others, 0);

    /* The same key from a new connection (a trainer's new socket) takes it over by saying
     * hello; control goes there, not to the older connection nor to the other key. */
    at_agent *a2 = agent_with("run-key", ep, server_pub, ka);
    uint32_t p2 = p1;
    for (int i = 0; i < 500 && p2 == p1; i++) {
        at_feed_msg *m = NULL;
        if (at_feed_recv(f, 10, &m, NULL) == AT_OK && m->msg.type == AT_PROTO_HELLO)
            p2 = m->peer;
        at_feed_msg_free(m);
    }
    assert_true(p2 != p1);
    assert_int_equal(at_feed_run_find(f, "run-key")->peer, p2);
    assert_int_equal(at_feed_stop(f, "run-key", "newest socket"), AT_OK);
    expect_stop(a2, "newest socket");
    assert_false(at_agent_should_stop(a1, NULL, 0));
    assert_false(at_agent_should_stop(b, NULL, 0));

    /* The older connection of the same key no longer speaks for the run: its snapshot's two
     * messages (the layer, the end) are both refused, and read before the owner goes (else
     * the end, read after, could pass to the older connection once the owner closed). */
    int64_t noted = s.noted;
    assert_int_equal(wire_publish(a1, 20, 1, 8, 8), AT_OK);
    expect_notice(f, p2, &s);
    assert_non_null(strstr(s.text, "until that one goes or this one says hello"));
    receive(f, p2, 5000, noted + 2, &s);
    assert_true(s.noted >= noted + 2);

    /* After the owner's goodbye the other key may take the run: asked for its hello. */
    at_agent_free(a2);
    at_feed_msg *bye = wire_recv_type(f, AT_PROTO_GOODBYE, 5000);
    assert_non_null(bye);
    assert_int_equal(bye->peer, p2);
    at_feed_msg_free(bye);
    seen after = {0};
    for (int i = 0; i < 100 && !after.from_others; i++) {
        assert_int_equal(wire_publish(b, 30 + 10 * i, 1, 8, 8), AT_OK);
        receive(f, p2, 50, 0, &after);
    }
    assert_true(after.from_others >= 1);
    const at_feed_run *r = at_feed_run_find(f, "run-key");
    assert_int_equal(r->peer, after.other);
    for (int i = 0; i < 100 && !r->hello_seen; i++) {
        at_agent_should_stop(b, NULL, 0); /* reads the hello request, sends its hello */
        receive(f, p2, 20, 0, &after);
        r = at_feed_run_find(f, "run-key");
    }
    assert_int_equal(r->hello_seen, 1);

    at_agent_free(a1);
    at_agent_free(b);
    at_feed_free(f);
    const char *files[] = {server, server_pub, ka, ka_pub, kb, kb_pub, allow};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "trainer"))
        return trainer_main(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forger_refused_and_reported),
        cmocka_unit_test(test_claim_waits_for_the_owner_to_go),
        cmocka_unit_test(test_restarted_trainer_takes_over),
        cmocka_unit_test(test_new_socket_after_protocol_error),
        cmocka_unit_test(test_curve_key_binds_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
