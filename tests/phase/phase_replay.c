/* SPDX-License-Identifier: Apache-2.0 */
/* phase_replay -- replays a recorded snapshot sequence through the phase tracker and stop
 * rules, printing every event and, against the logged test accuracy, where the run peaked,
 * lost 5 and 10 points, and where the rules would have stopped it. Used to measure the
 * detector (docs/detection.md); not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

typedef struct replay {
    const at_stop_rules *rules;
    at_phase_tracker *t;
    const char *acc;
    int quiet;
    int trace;
    int stopped;
    at_stop_verdict v;
    double acc_at_stop;
} replay;

static double scalar_now(const at_phase_tracker *t, const char *name)
{
    double v;
    return at_phase_tracker_scalar(t, name, &v, NULL, NULL) ? v : -1.0;
}

static int on_snapshot(int64_t step, const at_phase_event *ev, size_t n, void *user)
{
    replay *r = user;
    for (size_t i = 0; i < n; i++)
        if (!r->quiet || ev[i].kind == AT_EVENT_RUN_PHASE)
            printf("%8lld  %s=%.3f  %s\n", (long long)step, r->acc, scalar_now(r->t, r->acc),
                   ev[i].text);
    if (r->trace) {
        at_run_state run;
        at_phase_tracker_run(r->t, &run);
        printf("%8lld  %s=%.3f  [%s] walpha %.2f log_norm %.4f: %s\n", (long long)step, r->acc,
               scalar_now(r->t, r->acc), at_run_phase_name(run.phase), run.weighted_alpha,
               run.log_norm, run.collapse_evidence);
    }
    if (!r->stopped && r->rules && at_stop_rules_eval(r->rules, r->t, &r->v) == 1) {
        r->stopped = 1;
        r->acc_at_stop = scalar_now(r->t, r->acc);
        printf("%8lld  %s=%.3f  STOP [%s] %s\n", (long long)step, r->acc, r->acc_at_stop, r->v.rule,
               r->v.evidence);
    }
    return 0;
}

/* Peak of the accuracy scalar and the first later steps 5 and 10 points below it. */
static void summarize(const fixture *f, const char *acc, const replay *r)
{
    double peak = -1;
    long long peak_step = -1, d5 = -1, d10 = -1;
    for (size_t i = 0; i < f->n; i++)
        if (f->r[i].kind == 'S' && strcmp(f->r[i].name, acc) == 0 && f->r[i].value > peak) {
            peak = f->r[i].value;
            peak_step = (long long)f->r[i].step;
        }
    for (size_t i = 0; i < f->n; i++) {
        const fx_record *x = &f->r[i];
        if (x->kind != 'S' || strcmp(x->name, acc) != 0 || x->step <= peak_step)
            continue;
        if (d5 < 0 && x->value <= peak - 0.05)
            d5 = (long long)x->step;
        if (d10 < 0 && x->value <= peak - 0.10)
            d10 = (long long)x->step;
    }
    printf("summary: peak %s %.3f at %lld; -5 points at %lld; -10 points at %lld; ", acc, peak,
           peak_step, d5, d10);
    if (r->stopped)
        printf("stop at %lld (%s=%.3f) by %s\n", (long long)r->v.step, acc, r->acc_at_stop,
               r->v.rule);
    else
        printf("no stop\n");
}

static int usage(FILE *out)
{
    fprintf(out, "usage: phase_replay FIXTURE [--stop-on RULES] [--acc NAME] [--window N] "
                 "[--confirm N] [--span X]\n"
                 "                    [--hold X] [--alpha-min X] [--every STEPS] [--quiet] "
                 "[--trace]\n"
                 "  --stop-on RULES  comma-separated stop rules (default: collapse)\n"
                 "  --acc NAME       scalar to report beside events (default: test_acc)\n"
                 "  --quiet          print run-phase events and the stop only\n"
                 "  --window N       per-layer trend window in snapshots (default 10)\n"
                 "  --confirm N      fewest snapshots the collapse conditions must hold "
                 "(default 3)\n"
                 "  --span X         share of the steps a collapse span covers (default 0.3)\n"
                 "  --hold X         share of the steps the collapse conditions must hold "
                 "(default 0.15)\n"
                 "  --alpha-min X    growth-weighted alpha a collapse needs (default 2.8; 0 = "
                 "off)\n"
                 "  --every STEPS    replay only snapshots whose step is a multiple of STEPS\n"
                 "  --trace          print the run state and collapse evidence per snapshot\n");
    return out == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *spec = "collapse";
    long long every = 0;
    replay r = {.acc = "test_acc"};
    at_phase_opts o;
    at_phase_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stop-on") == 0 && i + 1 < argc)
            spec = argv[++i];
        else if (strcmp(argv[i], "--acc") == 0 && i + 1 < argc)
            r.acc = argv[++i];
        else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc)
            o.window = atoi(argv[++i]);
        else if (strcmp(argv[i], "--confirm") == 0 && i + 1 < argc)
            o.collapse_confirm = atoi(argv[++i]);
        else if (strcmp(argv[i], "--span") == 0 && i + 1 < argc)
            o.collapse_span = atof(argv[++i]);
        else if (strcmp(argv[i], "--hold") == 0 && i + 1 < argc)
            o.collapse_hold = atof(argv[++i]);
        else if (strcmp(argv[i], "--alpha-min") == 0 && i + 1 < argc)
            o.collapse_alpha_min = atof(argv[++i]);
        else if (strcmp(argv[i], "--every") == 0 && i + 1 < argc)
            every = atoll(argv[++i]);
        else if (strcmp(argv[i], "--trace") == 0)
            r.trace = 1;
        else if (strcmp(argv[i], "--quiet") == 0)
            r.quiet = 1;
        else if (strcmp(argv[i], "--help") == 0)
            return usage(stdout);
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return usage(stderr);
    }
    if (!path)
        return usage(stderr);
    char err[256];
    fixture *f = fixture_load(path, err, sizeof err);
    if (!f) {
        fprintf(stderr, "phase_replay: %s\n", err);
        return 1;
    }
    if (every > 0)
        fixture_thin(f, every);
    at_stop_rules *rules = NULL;
    if (at_stop_rules_parse(spec, &rules, err, sizeof err)) {
        fprintf(stderr, "phase_replay: %s\n", err);
        fixture_free(f);
        return 2;
    }
    r.rules = rules;
    r.t = at_phase_tracker_new(&o);
    if (!r.t) {
        fprintf(stderr, "phase_replay: invalid --window, --confirm, --span, --hold or "
                        "--alpha-min\n");
        at_stop_rules_free(rules);
        fixture_free(f);
        return 2;
    }
    int rc = fixture_replay(f->r, f->n, r.t, on_snapshot, &r);
    if (rc)
        fprintf(stderr, "phase_replay: %s\n", at_strerror(rc));
    else
        summarize(f, r.acc, &r);
    at_phase_tracker_free(r.t);
    at_stop_rules_free(rules);
    fixture_free(f);
    return rc ? 1 : 0;
}
