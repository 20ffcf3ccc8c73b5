/* SPDX-License-Identifier: Apache-2.0 */
/* test_watch_owner.c -- `alphatop watch --headless --stop-on` with a real trainer and a second
 * local peer that forges snapshots and a stop_ack under the trainer's run id (issue: the
 * forger's data fired the rule, it received the stop itself, and the real trainer was never
 * told). The forged messages are refused and reported (a warning naming the run, counted as
 * not_owner in the stats line); the rule fires on the real run's data; the stop reaches the
 * real trainer, which stops, and never the forger. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"
#include "forge.h"
#include "mon_util.h"

#define TIMEOUT 60.0
#define ROWS 200
#define COLS 100

static void test_forger_cannot_take_the_stop(void **state)
{
    (void)state;
    char ep[256];
    mon_endpoint(ep, sizeof ep, "owner");
    mon m;
    /* Every fitted alpha is below 100: the rule fires at the third analysed snapshot. */
    const char *rule[] = {"--stop-on", "mean-alpha-below:100", NULL};
    assert_int_equal(mon_watch(&m, ep, rule), 0);
    float *w = malloc(ROWS * COLS * sizeof *w);
    at_rng r;
    at_rng_seed(&r, 12);
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = (float)at_rng_normal(&r);

    at_agent_opts o;
    at_agent_opts_default(&o);
    o.interval = 10;
    at_agent *a = at_agent_new("e2e-owner", ep, &o);
    assert_non_null(a);
    const cJSON *hello = mon_wait_for(&m, "event", "hello", TIMEOUT);
    assert_non_null(hello);
    assert_string_equal(mon_str(hello, "run"), "e2e-owner");

    /* The forger: snapshots that fire the rule if analysed, and an acknowledgement. */
    forge *g = forge_new(ep);
    assert_non_null(g);
    for (int i = 0; i < 3; i++)
        assert_int_equal(forge_snapshot(g, "e2e-owner", 10 + 10 * i, i, w, ROWS, COLS), 0);
    assert_int_equal(forge_send(g, AT_PROTO_STOP_ACK, "e2e-owner"), 0);
    const cJSON *warn = mon_wait_for(&m, "event", "warning", TIMEOUT);
    assert_non_null(warn);
    assert_non_null(strstr(mon_str(warn, "text"), "not_owner: refused"));
    assert_non_null(strstr(mon_str(warn, "text"), "for run e2e-owner"));
    /* Nothing of it was analysed, so nothing fired and nobody was sent a stop. */
    mon_drain(&m, 1.0);
    for (const cJSON *l = m.seen->child; l; l = l->next) {
        assert_string_not_equal(mon_str(l, "type"), "layer");
        assert_string_not_equal(mon_str(l, "kind"), "stop");
        assert_string_not_equal(mon_str(l, "kind"), "ack");
    }
    assert_int_equal(forge_received(g, 0), 0);

    /* The real run's snapshots fire the rule; its trainer is the one told to stop. */
    for (int64_t step = 10; step <= 30; step += 10) {
        assert_int_equal(at_agent_snapshot_begin(a, step), AT_OK);
        assert_int_equal(at_agent_publish(a, "fc", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2,
                                          (int64_t[]){ROWS, COLS}, w, 0),
                         AT_OK);
        assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    }
    char reason[512] = "";
    for (int i = 0; i < 3000 && !at_agent_should_stop(a, reason, sizeof reason); i++)
        mon_sleep(0.02);
    assert_non_null(strstr(reason, "mean-alpha-below"));
    assert_non_null(mon_wait_for(&m, "event", "ack", TIMEOUT));
    const cJSON *st = mon_wait_for(&m, "stats", NULL, TIMEOUT);
    assert_non_null(st);
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(st, "rejected_by");
    assert_true(mon_num(by, "not_owner") == 4);
    assert_true(mon_num(st, "rejected") == 4);
    assert_true(mon_num(st, "unexpected_acks") == 0);
    assert_int_equal(mon_finish(&m, TIMEOUT), 3);
    assert_int_equal(forge_received(g, 200), 0);
    forge_free(g);
    at_agent_free(a);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forger_cannot_take_the_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
