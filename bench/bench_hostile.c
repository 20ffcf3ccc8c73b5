/* SPDX-License-Identifier: Apache-2.0 */
/* bench_hostile -- the hostile-traffic campaign of tests/agent/campaign.h as a soak: many
 * seeded messages of every kind (malformed, oversized, misdirected, well-formed) against a
 * monitor's feed and a victim agent, beside honest agents, all over loopback ipc in this one
 * process. Prints, per kind, messages sent and how many the monitor accepted or rejected (for
 * the reason the kind calls for), honest snapshots sent and received whole, the victim's
 * state, resident memory min/max after the first tenth, CPU and wall time. Exit status 1 if
 * any message met the wrong fate. test_agent_campaign runs the same campaign short in CI.
 *
 * Usage: bench_hostile [STEPS [SEED [HONEST [HOSTILE]]]]   defaults: 100000 1 2 3 */
#include <stdio.h>
#include <stdlib.h>

#include "campaign.h"

int main(int argc, char **argv)
{
    campaign_opts o;
    campaign_opts_default(&o);
    o.steps = argc > 1 ? atoi(argv[1]) : 100000;
    o.seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    o.honest = argc > 3 ? atoi(argv[3]) : 2;
    o.hostile = argc > 4 ? atoi(argv[4]) : 3;
    campaign_result r;
    char err[512];
    if (campaign_run(&o, &r, err, sizeof err) != 0) {
        fprintf(stderr, "bench_hostile: %s\n", err);
        return 2;
    }
    campaign_print(stdout, &o, &r);
    int ok = r.lost == 0 && r.wrong_reason == 0 && r.unexpected == 0 && r.honest_bad == 0 &&
             r.honest_received == r.honest_sent && !r.victim_stopped;
    printf("%s\n", ok ? "every message met its fate" : "SOME MESSAGES MET THE WRONG FATE");
    return ok ? 0 : 1;
}
