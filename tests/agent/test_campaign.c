/* SPDX-License-Identifier: Apache-2.0 */
/* The hostile-traffic campaign (campaign.h), short: 600 seeded messages of every kind against
 * the monitor and a victim agent, loopback only. Every message meets exactly the fate its kind
 * calls for; honest runs lose nothing; the victim never stops and stays linked; memory stays
 * flat. bench/bench_hostile runs the same campaign longer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "campaign.h"

static void test_campaign(void **state)
{
    (void)state;
    campaign_opts o;
    campaign_opts_default(&o);
    campaign_result r;
    char err[512];
    if (campaign_run(&o, &r, err, sizeof err) != 0)
        fail_msg("%s", err);
    campaign_print(stdout, &o, &r);
    assert_int_equal(r.lost, 0);
    assert_int_equal(r.wrong_reason, 0);
    assert_int_equal(r.unexpected, 0);
    int64_t total = 0;
    for (int k = 0; k < CAMPAIGN_KINDS; k++) {
        campaign_kind kind = (campaign_kind)k;
        total += r.sent[k];
        if (r.sent[k] == 0)
            fail_msg("the seed never drew %s: choose another", campaign_kind_name(kind));
        if (campaign_kind_to_victim(kind) || kind == CK_OVERSIZE)
            continue;
        int64_t accepts = kind == CK_GOOD || kind == CK_MULTI ? r.sent[k] : 0;
        int64_t rejects = kind == CK_GOOD ? 0 : r.sent[k];
        if (r.accepted[k] != accepts || r.rejected[k] != rejects)
            fail_msg("%s: %lld sent, %lld accepted, %lld rejected", campaign_kind_name(kind),
                     (long long)r.sent[k], (long long)r.accepted[k], (long long)r.rejected[k]);
    }
    assert_int_equal(total, o.steps);
    assert_true(r.honest_sent > 0);
    assert_int_equal(r.honest_received, r.honest_sent);
    assert_int_equal(r.honest_bad, 0);
    assert_int_equal(r.victim_stopped, 0);
    assert_int_equal(r.victim_interval, 100); /* no valid control reached it */
    assert_true(r.victim_relinks >= 1);       /* cut by oversized frames, linked again */
    assert_true(r.rss_max - r.rss_min < (int64_t)64 << 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_campaign)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
