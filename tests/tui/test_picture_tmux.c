/* SPDX-License-Identifier: Apache-2.0 */
/* test_picture_tmux.c -- the view's `e` key under tmux: `alphatop watch --plot DIR` receives a
 * run from the C agent; in the detail view of a layer, and on the heatmap with another layer
 * selected, e writes that layer's latest spectrum as DIR/alphatop-LAYER-STEP.svg, a document
 * that parses as SVG and names the layer, and the key bar says where. `replay` of the log
 * (recorded with --record-spectra) writes into the current directory; watch --fast keeps no
 * spectrum, and e says so instead of writing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"
#include "mon_tmux.h"
#include "mon_util.h"

static char dir[64];

static void publish_one(const char *ep)
{
    at_agent *a = tmx_agent("picture-run", ep);
    assert_non_null(a);
    at_rng r;
    at_rng_seed(&r, 7);
    assert_int_equal(tmx_publish(a, 10, &r), AT_OK);
    at_agent_free(a);
}

/* Asserts that path is an SVG document (parsed by Python's XML parser) whose title names
 * layer. */
static void assert_svg_of(const char *path, const char *layer)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("%s was not written", path);
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E\n"
             "r = E.parse(sys.argv[1]).getroot()\n"
             "ns = \"{http://www.w3.org/2000/svg}\"\n"
             "t = r.find(ns + \"title\")\n"
             "sys.exit(0 if r.tag == ns + \"svg\" and t is not None and t.text.endswith(\" of \" + "
             "sys.argv[2]) else 1)' '%s' '%s'",
             path, layer);
    if (system(cmd) != 0)
        fail_msg("%s is not an SVG picture of %s", path, layer);
}

static void test_watch_saves_the_selected_layer(void **state)
{
    (void)state;
    char ep[256], log[256], cmd[900], pics[128], want[300];
    mon_endpoint(ep, sizeof ep, "picture");
    mon_logpath(log, sizeof log, "picture");
    snprintf(pics, sizeof pics, "%s/pics", dir);
    snprintf(cmd, sizeof cmd, "%s watch --listen %s --record %s --record-spectra --plot %s",
             mon_binary(), ep, log, pics);
    tmx t;
    tmx_start(&t, 140, 40, cmd);
    publish_one(ep);
    free(tmx_wait_for(&t, "step 10", 0));
    free(tmx_wait_for(&t, "head", 0));

    /* The detail view of the first layer: e saves its picture, the key bar says where. */
    assert_int_equal(tmx_cmd(&t, "send-keys -t m Enter"), 0);
    free(tmx_wait_for(&t, "eigenvalue", 0));
    assert_int_equal(tmx_cmd(&t, "send-keys -t m e"), 0);
    snprintf(want, sizeof want, "ESD saved: %s/alphatop-enc.fc1-10.svg", pics);
    free(tmx_wait_for(&t, want, 0));
    snprintf(want, sizeof want, "%s/alphatop-enc.fc1-10.svg", pics);
    assert_svg_of(want, "enc.fc1");

    /* On the heatmap, the selected layer's. */
    assert_int_equal(tmx_cmd(&t, "send-keys -t m Escape Down e"), 0);
    snprintf(want, sizeof want, "ESD saved: %s/alphatop-enc.fc2-10.svg", pics);
    free(tmx_wait_for(&t, want, 0));
    snprintf(want, sizeof want, "%s/alphatop-enc.fc2-10.svg", pics);
    assert_svg_of(want, "enc.fc2");
    assert_int_equal(tmx_cmd(&t, "send-keys -t m q"), 0);
    assert_int_equal(tmx_wait_exit(&t), 0);
    tmx_kill(&t);

    /* A replay of the log writes into the current directory. */
    snprintf(cmd, sizeof cmd, "env -C %s %s replay %s", dir, mon_binary(), log);
    tmx_start(&t, 140, 40, cmd);
    free(tmx_wait_for(&t, "head", 0));
    assert_int_equal(tmx_cmd(&t, "send-keys -t m G e"), 0);
    free(tmx_wait_for(&t, "ESD saved: ./alphatop-head-10.svg", 0));
    snprintf(want, sizeof want, "%s/alphatop-head-10.svg", dir);
    assert_svg_of(want, "head");
    unlink(want);
    assert_int_equal(tmx_cmd(&t, "send-keys -t m q"), 0);
    assert_int_equal(tmx_wait_exit(&t), 0);
    tmx_kill(&t);
    unlink(log);
    for (int i = 1; i <= 2; i++) {
        snprintf(want, sizeof want, "%s/alphatop-enc.fc%d-10.svg", pics, i);
        unlink(want);
    }
    rmdir(pics);
}

static void test_no_spectrum_says_why(void **state)
{
    (void)state;
    char ep[256], cmd[700];
    mon_endpoint(ep, sizeof ep, "picture-fast");
    snprintf(cmd, sizeof cmd, "env -C %s %s watch --listen %s --no-record --fast", dir,
             mon_binary(), ep);
    tmx t;
    tmx_start(&t, 140, 40, cmd);
    publish_one(ep);
    free(tmx_wait_for(&t, "step 10", 0));
    assert_int_equal(tmx_cmd(&t, "send-keys -t m e"), 0);
    free(tmx_wait_for(&t, "no spectrum of enc.fc1 kept: no picture", 0));
    char path[128];
    snprintf(path, sizeof path, "%s/alphatop-enc.fc1-10.svg", dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(tmx_cmd(&t, "send-keys -t m q"), 0);
    assert_int_equal(tmx_wait_exit(&t), 0);
    tmx_kill(&t);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/at-picture-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_saves_the_selected_layer),
        cmocka_unit_test(test_no_spectrum_says_why),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(dir);
    return rc;
}
