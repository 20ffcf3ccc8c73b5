/* test_watch_tmux.c -- `alphatop watch` and `alphatop replay` in a real terminal: a detached
 * tmux session (private socket, no config, fixed size, UTF-8), a trainer publishing through the
 * C agent; capture-pane shows the heatmap and layer names, capture-pane -e the 256-colour
 * codes; resize-window redraws; Tab, Enter, Esc and q do what they say. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"
#include "mon_util.h"

#define TIMEOUT 30.0

static char sock[64];

/* Runs a tmux command on the private server; returns its exit status. */
static int tmux(const char *fmt, ...)
{
    char args[1024], cmd[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "tmux -L %s -f /dev/null %s >/dev/null 2>&1", sock, args);
    return system(cmd);
}

/* Output of a tmux command. Caller frees. */
static char *tmux_out(const char *args)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "tmux -L %s -f /dev/null %s 2>/dev/null", sock, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    pclose(p);
    return buf;
}

static char *capture(int escapes)
{
    return tmux_out(escapes ? "capture-pane -p -e -t m" : "capture-pane -p -t m");
}

/* Waits until the pane shows needle; returns the capture (caller frees) or fails. */
static char *wait_for(const char *needle, int escapes)
{
    for (double t = 0; t < TIMEOUT; t += 0.1) {
        char *c = capture(escapes);
        if (strstr(c, needle))
            return c;
        free(c);
        mon_sleep(0.1);
    }
    char *c = capture(escapes);
    fprintf(stderr, "pane never showed '%s'; it shows:\n%s\n", needle, c);
    free(c);
    fail();
    return NULL;
}

/* Longest line of a capture, in characters (UTF-8 continuation bytes not counted). */
static int widest(const char *s)
{
    int w = 0, cur = 0;
    for (; *s; s++) {
        if (*s == '\n') {
            w = cur > w ? cur : w;
            cur = 0;
        } else if (((unsigned char)*s & 0xC0) != 0x80) {
            cur++;
        }
    }
    return cur > w ? cur : w;
}

static char status_path[256];

/* Waits for the pane's program to exit; returns its exit status (the shell wrapping it writes
 * the status to status_path: tmux's own pane_dead_status is not always known). */
static int wait_exit(void)
{
    for (double t = 0; t < TIMEOUT; t += 0.1) {
        FILE *f = fopen(status_path, "r");
        int status = -1;
        if (f) {
            int n = fscanf(f, "%d", &status);
            fclose(f);
            if (n == 1)
                return status;
        }
        mon_sleep(0.1);
    }
    fail_msg("the program in the pane did not exit");
    return -1;
}

/* Starts cmdline in a pane of a new tmux server: a socket name of its own per start, since a
 * new-session that reaches a server still exiting after kill-server fails. */
static void start(const char *cmdline)
{
    static int starts;
    snprintf(sock, sizeof sock, "at-mon-%d-%d", (int)getpid(), ++starts);
    snprintf(status_path, sizeof status_path, "/tmp/at-mon-tmux-%d.status", (int)getpid());
    unlink(status_path);
    assert_int_equal(tmux("new-session -d -s m -x 120 -y 40 "
                          "'env LANG=C.UTF-8 TERM=screen-256color %s; echo $? >%s'",
                          cmdline, status_path),
                     0);
}

static void publish_run(const char *ep)
{
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.model = "tmux-mlp";
    o.interval = 10;
    at_agent *a = at_agent_new("tmux-run", ep, &o);
    assert_non_null(a);
    static const struct {
        const char *name;
        int64_t rows, cols;
    } layers[] = {{"enc.fc1", 200, 100}, {"enc.fc2", 150, 150}, {"head", 100, 40}};
    at_rng r;
    at_rng_seed(&r, 42);
    for (int64_t step = 10; step <= 30; step += 10) {
        assert_int_equal(at_agent_snapshot_begin(a, step), AT_OK);
        for (size_t l = 0; l < 3; l++) {
            size_t n = (size_t)(layers[l].rows * layers[l].cols);
            float *w = malloc(n * sizeof *w);
            for (size_t i = 0; i < n; i++)
                w[i] = (float)at_rng_normal(&r);
            int64_t shape[2] = {layers[l].rows, layers[l].cols};
            assert_int_equal(at_agent_publish(a, layers[l].name, AT_PROTO_KIND_LINEAR, AT_PROTO_F32,
                                              2, shape, w, 0),
                             AT_OK);
            free(w);
        }
        assert_int_equal(at_agent_snapshot_end(a), AT_OK);
        at_agent_log(a, step, 1, (const char *[]){"loss"}, (double[]){3.0 / (double)step});
    }
    at_agent_free(a);
}

static char logpath[256];

static void test_watch_in_tmux(void **state)
{
    (void)state;
    char ep[256], cmd[700];
    mon_endpoint(ep, sizeof ep, "tmux");
    snprintf(logpath, sizeof logpath, "/tmp/at-mon-tmux-%d.atlog", (int)getpid());
    unlink(logpath);
    snprintf(cmd, sizeof cmd, "%s watch --listen %s --record %s", mon_binary(), ep, logpath);
    start(cmd);
    publish_run(ep);

    char *c = wait_for("head", 0);
    free(c);
    /* Three snapshots analysed: the header says step 30, every layer has its row. */
    c = wait_for("step 30", 0);
    assert_non_null(strstr(c, "enc.fc1"));
    assert_non_null(strstr(c, "enc.fc2"));
    assert_non_null(strstr(c, "tmux-mlp"));
    /* Heatmap cells are block glyphs. */
    assert_true(strstr(c, "\xe2\x96\x80") || strstr(c, "\xe2\x96\x88"));
    free(c);
    c = capture(1);
    assert_non_null(strstr(c, "\033[38;5;"));
    free(c);

    /* Tab: the next metric. */
    assert_int_equal(tmux("send-keys -t m Tab"), 0);
    free(wait_for("alpha_weighted", 0));
    /* Enter: the selected layer's detail with its spectrum; Esc: back. */
    assert_int_equal(tmux("send-keys -t m Enter"), 0);
    free(wait_for("eigenvalue", 0));
    assert_int_equal(tmux("send-keys -t m Escape"), 0);
    free(wait_for("warnings", 0));

    /* Resizes redraw at the new size; a tiny window says so. */
    assert_int_equal(tmux("resize-window -t m -x 80 -y 24"), 0);
    for (double t = 0; t < TIMEOUT; t += 0.1) {
        c = capture(0);
        int ok = strstr(c, "enc.fc1") && widest(c) <= 80;
        free(c);
        if (ok)
            break;
        mon_sleep(0.1);
    }
    c = capture(0);
    assert_true(widest(c) <= 80);
    assert_non_null(strstr(c, "enc.fc1"));
    free(c);
    assert_int_equal(tmux("resize-window -t m -x 30 -y 8"), 0);
    free(wait_for("too small", 0));
    assert_int_equal(tmux("resize-window -t m -x 110 -y 35"), 0);
    free(wait_for("enc.fc1", 0));

    assert_int_equal(tmux("send-keys -t m q"), 0);
    assert_int_equal(wait_exit(), 0);
    tmux("kill-server");
}

static void test_replay_in_tmux(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s replay %s", mon_binary(), logpath);
    start(cmd);
    char *c = wait_for("REPLAY", 0);
    free(c);
    c = wait_for("enc.fc1", 0);
    assert_non_null(strstr(c, "head"));
    free(c);
    /* The slider goes back one snapshot. */
    assert_int_equal(tmux("send-keys -t m '<'"), 0);
    free(wait_for("REPLAY to step 20", 0));
    assert_int_equal(tmux("send-keys -t m q"), 0);
    assert_int_equal(wait_exit(), 0);
    tmux("kill-server");
    unlink(logpath);
    unlink(status_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_in_tmux),
        cmocka_unit_test(test_replay_in_tmux),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
