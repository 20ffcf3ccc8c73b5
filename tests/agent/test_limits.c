/* SPDX-License-Identifier: Apache-2.0 */
/* The monitor at its file descriptor limit: a forked child with RLIMIT_NOFILE 64 runs a feed
 * the way the engine does (poll 100 ms, then receive), while the parent opens 150 raw
 * connections to it. libzmq cannot refuse connections by itself: its tcp listener retries a
 * failing accept() in a busy loop and its ipc listener aborts the process. The feed must stop
 * accepting instead (CPU stays low, the child lives), say so, and accept again once the
 * connections are gone: a trainer started afterwards gets through. Loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "wire.h"

#define CONNECTIONS 150
#define FLOOD_S 3

typedef struct child_result {
    double cpu; /* CPU seconds the child used, all of its life (the parent measures it) */
    int hellos, io_notices;
    int64_t pauses;
    char last_notice[256];
} child_result;

/* The monitor: reports its endpoint, then runs until the parent's trainer said hello (or 15 s),
 * and writes a child_result. Exit status 0 unless something went wrong outside the test. */
static void run_child(const char *ep, int out, int in)
{
    struct rlimit rl = {64, 64};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        _exit(10);
    at_feed_opts o;
    at_feed_opts_default(&o);
    o.endpoint = ep;
    char err[512];
    at_feed *f = at_feed_new(&o, err, sizeof err);
    if (!f)
        _exit(11);
    const char *bound = at_feed_endpoint(f);
    if (write(out, bound, strlen(bound) + 1) < 0)
        _exit(12);
    child_result r;
    memset(&r, 0, sizeof r);
    time_t t0 = time(NULL);
    int flooding = 1;
    while (time(NULL) - t0 < 15 && r.hellos == 0) {
        zmq_pollitem_t items[2] = {{at_feed_socket(f), 0, ZMQ_POLLIN, 0},
                                   {NULL, in, ZMQ_POLLIN, 0}};
        zmq_poll(items, flooding ? 2 : 1, 100);
        if (flooding && (items[1].revents & ZMQ_POLLIN)) {
            char c;
            flooding = read(in, &c, 1) != 1;
        }
        for (;;) {
            at_feed_msg *m = NULL;
            at_proto_error e;
            int rc = at_feed_recv(f, 0, &m, &e);
            if (rc == AT_ERR_AGAIN)
                break;
            if (rc == AT_ERR_IO) {
                r.io_notices++;
                snprintf(r.last_notice, sizeof r.last_notice, "%s", e.message);
            }
            if (rc == AT_OK && m->msg.type == AT_PROTO_HELLO && !strcmp(m->msg.run, "after"))
                r.hellos++;
            at_feed_msg_free(m);
        }
    }
    at_feed_stats st;
    at_feed_stats_get(f, &st);
    r.pauses = st.accept_pauses;
    at_feed_free(f);
    if (write(out, &r, sizeof r) != (ssize_t)sizeof r)
        _exit(13);
    _exit(0);
}

/* A raw connection to ep (tcp://127.0.0.1:PORT or ipc://PATH); -1 if refused. */
static int raw_connect(const char *ep)
{
    int fd;
    if (strncmp(ep, "ipc://", 6) == 0) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        /* ZeroMQ binds no ipc path longer than sun_path: a cut one would be another socket */
        assert_true((size_t)snprintf(a.sun_path, sizeof a.sun_path, "%s", ep + 6) <
                    sizeof a.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_port = htons((uint16_t)atoi(strrchr(ep, ':') + 1));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Floods the child's endpoint with connections (one every pace_us), holds them FLOOD_S
 * seconds, closes them, then starts a trainer; returns what the child saw. */
static child_result flood(const char *ep_in, int pace_us)
{
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        run_child(ep_in, up[1], down[0]);
    }
    close(up[1]);
    close(down[0]);
    char ep[256];
    size_t k = 0;
    while (k + 1 < sizeof ep && read(up[0], ep + k, 1) == 1 && ep[k])
        k++;
    ep[k] = '\0';
    assert_true(k > 0);

    int fds[CONNECTIONS], opened = 0;
    for (int i = 0; i < CONNECTIONS; i++) {
        fds[i] = raw_connect(ep);
        opened += fds[i] >= 0;
        usleep((useconds_t)pace_us);
    }
    sleep(FLOOD_S);
    for (int i = 0; i < CONNECTIONS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    assert_int_equal(write(down[1], "c", 1), 1);

    at_agent_opts o;
    at_agent_opts_default(&o);
    o.linger_ms = 0;
    at_agent *a = at_agent_new("after", ep, &o);
    assert_non_null(a);
    child_result r;
    memset(&r, 0, sizeof r);
    ssize_t got = read(up[0], &r, sizeof r);
    int status = 0;
    struct rusage ru;
    assert_int_equal(wait4(pid, &status, 0, &ru), pid);
    r.cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    at_agent_free(a);
    close(up[0]);
    close(down[1]);
    if (WIFSIGNALED(status))
        fail_msg("the monitor died of signal %d with %d connections open", WTERMSIG(status),
                 opened);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(got, (ssize_t)sizeof r);
    print_message("%s: %d connections opened, monitor CPU %.3f s (%d s of them open), %lld "
                  "pause(s), %d notice(s), last: %s\n",
                  ep_in, opened, r.cpu, FLOOD_S, (long long)r.pauses, r.io_notices, r.last_notice);
    return r;
}

static void check(const child_result *r)
{
    /* Before the fix libzmq's listener spun at 100% of a core (tcp) or aborted (ipc). */
    assert_true(r->cpu < 0.3 * FLOOD_S);
    assert_true(r->pauses >= 1);
    assert_true(r->io_notices >= 2); /* stopped, and accepting again */
    assert_int_equal(r->hellos, 1);  /* a trainer gets through afterwards */
}

static void test_tcp_descriptor_limit(void **state)
{
    (void)state;
    child_result r = flood("tcp://127.0.0.1:*", 0);
    check(&r);
}

/* ipc: the feed must stop before libzmq's accept() fails, so connections come at a pace the
 * reserve of 16 descriptors absorbs between two looks (100 ms). */
static void test_ipc_descriptor_limit(void **state)
{
    (void)state;
    char ep[128];
    wire_ipc(ep, sizeof ep, "limits");
    child_result r = flood(ep, 10000);
    check(&r);
    unlink(ep + 6);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_descriptor_limit),
        cmocka_unit_test(test_ipc_descriptor_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
