/* SPDX-License-Identifier: Apache-2.0 */
/* test_follow_tmux.c -- a live view attached to a headless monitor (rank 0 of an mpirun job has
 * no terminal): `alphatop watch --headless --record LOG` receives a run from the C agent while
 * `alphatop replay --follow LOG` runs in a tmux session (mon_tmux.h). Each snapshot appears in
 * the follower as it lands; the slider holds where it was put while the log grows, and End
 * follows the newest again. Then the same run goes straight into `alphatop watch` in a second
 * tmux session, and both screens show the same verdict, heatmap rows, values and colours,
 * step axis, warnings and events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"
#include "mon_tmux.h"
#include "mon_util.h"

enum { COLS = 100, ROWS = 30 };

static at_agent *agent_on(const char *ep)
{
    at_agent *a = tmx_agent("follow-run", ep);
    assert_non_null(a);
    return a;
}

/* Starts the headless monitor on ep recording to logpath, and waits for the log to exist. */
static void start_recording(mon *m, const char *ep, const char *logpath)
{
    const char *args[] = {"watch", "--headless", "--listen", ep, "--record", logpath, NULL};
    assert_int_equal(mon_start(m, args), 0);
    struct stat sb;
    for (double s = 0; s < TMX_TIMEOUT && (stat(logpath, &sb) != 0 || sb.st_size == 0); s += 0.05)
        mon_sleep(0.05);
    assert_int_equal(stat(logpath, &sb), 0);
}

/* One snapshot and its scalars. */
static void publish(at_agent *a, int64_t step, at_rng *r)
{
    assert_int_equal(tmx_publish(a, step, r), AT_OK);
    assert_int_equal(
        at_agent_log(a, step, 1, (const char *[]){"loss"}, (double[]){3.0 / (double)step}), AT_OK);
}

/* The rows of screen cells (tmx_cells) both screens must share: every row but the run row
 * (the time since the last snapshot), the monitor's own row (live state vs. where the follower
 * is) and the key bar, as one string. Caller frees. */
static char *shared_rows(const char *e)
{
    size_t len = strlen(e);
    char *out = malloc(len + 1);
    size_t n = 0;
    int row = 0;
    for (const char *l = e; *l && row < ROWS; row++) {
        size_t ll = strcspn(l, "\n");
        if (row != 0 && row != 2 && row != ROWS - 1) {
            memcpy(out + n, l, ll);
            n += ll;
            out[n++] = '\n';
        }
        l += ll + (l[ll] == '\n');
    }
    out[n] = '\0';
    return out;
}

/* Waits until both screens show the same shared rows; fails with both when they never do. */
static void assert_same_screens(tmx *a, tmx *b)
{
    char *ra = NULL, *rb = NULL;
    for (double s = 0; s < TMX_TIMEOUT; s += 0.2) {
        free(ra);
        free(rb);
        char *ca = tmx_capture(a, 1), *cb = tmx_capture(b, 1);
        char *ea = tmx_cells(ca), *eb = tmx_cells(cb);
        ra = shared_rows(ea);
        rb = shared_rows(eb);
        free(ca);
        free(cb);
        free(ea);
        free(eb);
        if (!strcmp(ra, rb) && strstr(ra, "head"))
            break;
        mon_sleep(0.2);
    }
    if (strcmp(ra, rb) != 0) {
        char *pa = tmx_capture(a, 0), *pb = tmx_capture(b, 0);
        fprintf(stderr, "the screens differ:\n--- follower\n%s\n--- direct\n%s\n", pa, pb);
        free(pa);
        free(pb);
    }
    assert_string_equal(ra, rb);
    free(ra);
    free(rb);
}

static void test_follow_matches_direct(void **state)
{
    (void)state;
    char ep[256], ep_direct[256], logpath[256], cmd[800];
    mon_endpoint(ep, sizeof ep, "follow");
    mon_endpoint(ep_direct, sizeof ep_direct, "follow-direct");
    mon_logpath(logpath, sizeof logpath, "follow");

    /* the monitor without a terminal, recording */
    mon m;
    start_recording(&m, ep, logpath);

    /* the follower, before the run starts */
    tmx f;
    snprintf(cmd, sizeof cmd, "%s replay --follow %s", mon_binary(), logpath);
    tmx_start(&f, COLS, ROWS, cmd);
    free(tmx_wait_for(&f, "waiting for a run in the log", 0));

    /* snapshots appear as they land; the slider holds while the log grows; End follows */
    at_agent *a = agent_on(ep);
    at_rng r;
    at_rng_seed(&r, 42);
    publish(a, 10, &r);
    char *c = tmx_wait_for(&f, "FOLLOWING to step 10 of 10", 0);
    assert_non_null(strstr(c, "run follow-run (tmux-mlp)"));
    free(c);
    publish(a, 20, &r);
    free(tmx_wait_for(&f, "FOLLOWING to step 20 of 20", 0));
    assert_int_equal(tmx_cmd(&f, "send-keys -t m '<'"), 0);
    free(tmx_wait_for(&f, "FOLLOWING to step 10 of 20", 0));
    publish(a, 30, &r);
    free(tmx_wait_for(&f, "FOLLOWING to step 10 of 30", 0));
    assert_int_equal(tmx_cmd(&f, "send-keys -t m End"), 0);
    free(tmx_wait_for(&f, "FOLLOWING to step 30 of 30", 0));
    at_agent_free(a);
    free(tmx_wait_for(&f, "ENDED", 0));
    /* the headless monitor analysed all nine layers */
    int layers = 0;
    for (const cJSON *j; layers < 3 * TMX_LAYERS && (j = mon_wait_for(&m, "layer", NULL, 60));)
        layers += !strcmp(mon_str(j, "run"), "follow-run");
    assert_int_equal(layers, 3 * TMX_LAYERS);

    /* the same run straight into a monitor with a terminal */
    tmx d;
    snprintf(cmd, sizeof cmd, "%s watch --no-record --listen %s", mon_binary(), ep_direct);
    tmx_start(&d, COLS, ROWS, cmd);
    free(tmx_wait_for(&d, "waiting for a trainer", 0));
    a = agent_on(ep_direct);
    at_rng_seed(&r, 42);
    for (int64_t step = 10; step <= 30; step += 10)
        publish(a, step, &r);
    at_agent_free(a);
    free(tmx_wait_for(&d, "ENDED", 0));
    free(tmx_wait_for(&d, "3/3 computed  0 pending", 0));
    assert_same_screens(&f, &d);

    assert_int_equal(tmx_cmd(&f, "send-keys -t m q"), 0);
    assert_int_equal(tmx_wait_exit(&f), 0);
    assert_int_equal(tmx_cmd(&d, "send-keys -t m q"), 0);
    assert_int_equal(tmx_wait_exit(&d), 0);
    tmx_kill(&f);
    tmx_kill(&d);
    kill(m.pid, SIGTERM);
    assert_int_equal(mon_finish(&m, TMX_TIMEOUT), 0);
    unlink(logpath);
}

/* replay --follow --headless prints the log's lines, then every line appended, as tail -f;
 * a path that is not a run log is refused. */
static void test_follow_headless(void **state)
{
    (void)state;
    char ep[256], logpath[256];
    mon_endpoint(ep, sizeof ep, "follow-lines");
    mon_logpath(logpath, sizeof logpath, "follow-lines");
    mon w;
    start_recording(&w, ep, logpath);
    mon f;
    const char *fargs[] = {"replay", "--follow", "--headless", logpath, NULL};
    assert_int_equal(mon_start(&f, fargs), 0);
    at_agent *a = agent_on(ep);
    at_rng r;
    at_rng_seed(&r, 7);
    publish(a, 10, &r);
    /* the follower prints the monitor's lines in the monitor's order, as they are written */
    for (int i = 0; i < 2 + TMX_LAYERS; i++) {
        const cJSON *lw = mon_next(&w, 60);
        assert_non_null(lw);
        const cJSON *lf = mon_next(&f, 60);
        assert_non_null(lf);
        char *sw = cJSON_PrintUnformatted(lw), *sf = cJSON_PrintUnformatted(lf);
        assert_string_equal(sf, sw);
        free(sw);
        free(sf);
    }
    at_agent_free(a);
    assert_non_null(mon_wait_for(&f, "event", "goodbye", 60));
    kill(f.pid, SIGINT);
    assert_int_equal(mon_finish(&f, TMX_TIMEOUT), 0);
    kill(w.pid, SIGTERM);
    assert_int_equal(mon_finish(&w, TMX_TIMEOUT), 0);

    const char *bad[] = {"replay", "--follow", "/nonexistent/run.atlog", NULL};
    assert_int_equal(mon_run(bad, NULL, TMX_TIMEOUT), 1);
    unlink(logpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follow_matches_direct),
        cmocka_unit_test(test_follow_headless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
