/* SPDX-License-Identifier: Apache-2.0 */
/* test_watch_tmux.c -- `alphatop watch` and `alphatop replay` in a real terminal: a detached
 * tmux session (mon_tmux.h), a trainer publishing through the C agent; capture-pane shows the
 * heatmap and layer names, capture-pane -e the 256-colour codes; resize-window redraws; Tab,
 * Enter, Esc and q do what they say; the third row says where the run is recorded (the XDG
 * state directory without --record). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"
#include "mon_tmux.h"
#include "mon_util.h"

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

static void publish_run(const char *ep)
{
    at_agent *a = tmx_agent("tmux-run", ep);
    assert_non_null(a);
    at_rng r;
    at_rng_seed(&r, 42);
    for (int64_t step = 10; step <= 30; step += 10) {
        assert_int_equal(tmx_publish(a, step, &r), AT_OK);
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
    mon_logpath(logpath, sizeof logpath, "tmux");
    snprintf(cmd, sizeof cmd, "%s watch --listen %s --record %s", mon_binary(), ep, logpath);
    tmx t;
    tmx_start(&t, 120, 40, cmd);
    publish_run(ep);

    char *c = tmx_wait_for(&t, "head", 0);
    free(c);
    /* Three snapshots analysed: the header says step 30, every layer has its row. */
    c = tmx_wait_for(&t, "step 30", 0);
    assert_non_null(strstr(c, "enc.fc1"));
    assert_non_null(strstr(c, "enc.fc2"));
    assert_non_null(strstr(c, "tmux-mlp"));
    /* Heatmap cells are block glyphs; the third row says where the run is recorded. */
    assert_true(strstr(c, "\xe2\x96\x80") || strstr(c, "\xe2\x96\x88"));
    char want[300];
    snprintf(want, sizeof want, " rec %s\n", logpath);
    assert_non_null(strstr(c, want));
    free(c);
    c = tmx_capture(&t, 1);
    assert_non_null(strstr(c, "\033[38;5;"));
    free(c);

    /* Tab: the next metric. */
    assert_int_equal(tmx_cmd(&t, "send-keys -t m Tab"), 0);
    free(tmx_wait_for(&t, "alpha_weighted", 0));
    /* Enter: the selected layer's detail with its spectrum; Esc: back. */
    assert_int_equal(tmx_cmd(&t, "send-keys -t m Enter"), 0);
    free(tmx_wait_for(&t, "eigenvalue", 0));
    assert_int_equal(tmx_cmd(&t, "send-keys -t m Escape"), 0);
    free(tmx_wait_for(&t, "warnings", 0));

    /* Resizes redraw at the new size; a tiny window says so. */
    assert_int_equal(tmx_cmd(&t, "resize-window -t m -x 80 -y 24"), 0);
    for (double s = 0; s < TMX_TIMEOUT; s += 0.1) {
        c = tmx_capture(&t, 0);
        int ok = strstr(c, "enc.fc1") && widest(c) <= 80;
        free(c);
        if (ok)
            break;
        mon_sleep(0.1);
    }
    c = tmx_capture(&t, 0);
    assert_true(widest(c) <= 80);
    assert_non_null(strstr(c, "enc.fc1"));
    free(c);
    assert_int_equal(tmx_cmd(&t, "resize-window -t m -x 30 -y 8"), 0);
    free(tmx_wait_for(&t, "too small", 0));
    assert_int_equal(tmx_cmd(&t, "resize-window -t m -x 110 -y 35"), 0);
    free(tmx_wait_for(&t, "enc.fc1", 0));

    assert_int_equal(tmx_cmd(&t, "send-keys -t m q"), 0);
    assert_int_equal(tmx_wait_exit(&t), 0);
    tmx_kill(&t);
}

static void test_replay_in_tmux(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s replay %s", mon_binary(), logpath);
    tmx t;
    tmx_start(&t, 120, 40, cmd);
    char *c = tmx_wait_for(&t, "REPLAY", 0);
    free(c);
    c = tmx_wait_for(&t, "enc.fc1", 0);
    assert_non_null(strstr(c, "head"));
    free(c);
    /* The slider goes back one snapshot. */
    assert_int_equal(tmx_cmd(&t, "send-keys -t m '<'"), 0);
    free(tmx_wait_for(&t, "REPLAY to step 20", 0));
    assert_int_equal(tmx_cmd(&t, "send-keys -t m q"), 0);
    assert_int_equal(tmx_wait_exit(&t), 0);
    tmx_kill(&t);
    unlink(logpath);
}

/* Without --record, the run goes to its own log in $XDG_STATE_HOME/alphatop, made with mode
 * 0700, and the third row says so: the directory before the run, its log after (losing its
 * start when it does not fit); the end names the whole path. */
static void test_default_record_in_tmux(void **state)
{
    (void)state;
    char ep[256], cmd[900], dir[128], want[300];
    mon_endpoint(ep, sizeof ep, "tmux-xdg");
    snprintf(dir, sizeof dir, "/tmp/at-mon-xdg-%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "env XDG_STATE_HOME=%s/state %s watch --listen %s", dir, mon_binary(),
             ep);
    tmx t;
    tmx_start(&t, 120, 40, cmd);
    snprintf(want, sizeof want, " rec %s/state/alphatop/\n", dir);
    free(tmx_wait_for(&t, want, 0));
    publish_run(ep);
    free(tmx_wait_for(&t, " rec \xe2\x80\xa6/alphatop/alphatop-tmux-run-", 0));
    assert_int_equal(tmx_cmd(&t, "send-keys -t m q"), 0);
    assert_int_equal(tmx_wait_exit(&t), 0);
    snprintf(want, sizeof want, "alphatop: run tmux-run recorded to %s/state/alphatop/", dir);
    char *c = tmx_wait_for(&t, want, 0);
    char path[400];
    assert_true(tmx_line(strstr(c, want), want, path, sizeof path));
    free(c);
    memmove(path, path + strlen("alphatop: run tmux-run recorded to "),
            strlen(path) - strlen("alphatop: run tmux-run recorded to ") + 1);
    tmx_kill(&t);
    assert_non_null(strstr(path, "/alphatop-tmux-run-"));
    assert_non_null(strstr(path, ".atlog"));
    struct stat sb;
    snprintf(want, sizeof want, "%s/state/alphatop", dir);
    assert_int_equal(stat(want, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    /* the log holds the run */
    const char *args[] = {"report", path, NULL};
    char *out = NULL;
    assert_int_equal(mon_run(args, &out, TMX_TIMEOUT), 0);
    assert_non_null(strstr(out, "tmux-run"));
    free(out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_in_tmux),
        cmocka_unit_test(test_replay_in_tmux),
        cmocka_unit_test(test_default_record_in_tmux),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
