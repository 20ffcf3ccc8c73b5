/* SPDX-License-Identifier: Apache-2.0 */
/* test_control_tmux.c -- `p` and `s` in the real view reach the right trainer. The alphatop
 * binary runs `watch` in a tmux session (mon_tmux.h); two trainer processes of the same model
 * class publish through the C agent. `p` on the first run pauses its snapshots at the trainer
 * (its agent says paused, the run log gets none of its layers, its scalars keep coming, nothing
 * is dropped anywhere), while the second run's snapshots go on; `p` again resumes them. `s`
 * on the second run stops that trainer (it acknowledges and exits) and not the first, which
 * keeps publishing. What reached the monitor is read from its run log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"
#include "mon_tmux.h"
#include "mon_util.h"
#include "replay.h"

enum { NRUNS = 2, EVERY = TMX_EVERY };
static const char *const run_ids[NRUNS] = {"run-a", "run-b"};

/* A trainer process and the file it reports its agent's state in. */
typedef struct trainer {
    pid_t pid;
    char status[256];
} trainer;

/* What a trainer last reported. */
typedef struct agent_state {
    long long step, paused, skipped, dropped, sent;
} agent_state;

/* The trainer: a step every 20 ms, a snapshot every EVERY steps unless paused, scalars every 5
 * steps, its agent's state written to status_path after every step; ends when the monitor
 * stops it (exit 0) or after 10 minutes (exit 4). */
static void trainer_main(const char *ep, const char *run, const char *status_path, uint64_t seed)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
    at_agent *a = tmx_agent(run, ep);
    if (!a)
        _exit(3);
    at_rng r;
    at_rng_seed(&r, seed);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", status_path);
    int code = 4;
    for (int64_t step = 1; step < 30000; step++) {
        if (at_agent_snapshot_due(a, step) && tmx_publish(a, step, &r) == AT_ERR_NOMEM)
            _exit(5);
        if (step % 5 == 0)
            at_agent_log(a, step, 1, (const char *[]){"loss"}, (double[]){1.0 / (double)step});
        at_agent_stats s;
        at_agent_stats_get(a, &s);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%lld %d %lld %lld %lld\n", (long long)step, at_agent_paused(a),
                    (long long)s.snapshots_skipped, (long long)s.snapshots_dropped,
                    (long long)s.snapshots_sent);
            fclose(f);
            rename(tmp, status_path);
        }
        if (at_agent_should_stop(a, NULL, 0)) {
            code = 0;
            break;
        }
        mon_sleep(0.02);
    }
    at_agent_free(a);
    _exit(code);
}

static void trainer_start(trainer *t, const char *ep, int i)
{
    snprintf(t->status, sizeof t->status, "/tmp/at-mon-ctl-%d-%s.status", (int)getpid(),
             run_ids[i]);
    unlink(t->status);
    t->pid = fork();
    assert_true(t->pid >= 0);
    if (t->pid == 0)
        trainer_main(ep, run_ids[i], t->status, 100 + (uint64_t)i);
}

static agent_state trainer_state(const trainer *t)
{
    agent_state s = {-1, -1, -1, -1, -1};
    FILE *f = fopen(t->status, "r");
    if (f) {
        if (fscanf(f, "%lld %lld %lld %lld %lld", &s.step, &s.paused, &s.skipped, &s.dropped,
                   &s.sent) != 5)
            s.step = -1;
        fclose(f);
    }
    return s;
}

/* Waits up to TMX_TIMEOUT s for the trainer's exit; returns its exit code (-1: still running,
 * then it is killed). */
static int trainer_wait(trainer *t)
{
    int st;
    for (double s = 0; s < TMX_TIMEOUT; s += 0.05) {
        if (waitpid(t->pid, &st, WNOHANG) == t->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        mon_sleep(0.05);
    }
    kill(t->pid, SIGKILL);
    waitpid(t->pid, &st, 0);
    return -1;
}

static void trainer_end(trainer *t)
{
    kill(t->pid, SIGKILL);
    waitpid(t->pid, NULL, 0);
    unlink(t->status);
}

/* What the run log holds, per run. */
typedef struct tally {
    int64_t layer_step[NRUNS];  /* newest step of a layer result */
    int64_t scalar_step[NRUNS]; /* newest step of scalars */
    int layers[NRUNS], drops, pauses[NRUNS], resumes[NRUNS], stops[NRUNS], acks[NRUNS],
        goodbyes[NRUNS];
} tally;

static int count_one(void *ctx, const at_runlog_record *raw, const at_record *r)
{
    tally *t = ctx;
    (void)raw;
    int i = r && r->run ? (strcmp(r->run, run_ids[0]) == 0   ? 0
                           : strcmp(r->run, run_ids[1]) == 0 ? 1
                                                             : -1)
                        : -1;
    if (!r || i < 0)
        return 0;
    if (r->type == AT_RECORD_LAYER) {
        t->layers[i]++;
        t->layer_step[i] = r->step > t->layer_step[i] ? r->step : t->layer_step[i];
    } else if (r->type == AT_RECORD_SCALARS) {
        t->scalar_step[i] = r->step > t->scalar_step[i] ? r->step : t->scalar_step[i];
    } else if (r->type == AT_RECORD_EVENT) {
        at_record_kind k = r->u.event.kind;
        t->drops += k == AT_RECORD_EV_DROP;
        t->pauses[i] += k == AT_RECORD_EV_PAUSE;
        t->resumes[i] += k == AT_RECORD_EV_RESUME;
        t->stops[i] += k == AT_RECORD_EV_STOP;
        t->acks[i] += k == AT_RECORD_EV_ACK;
        t->goodbyes[i] += k == AT_RECORD_EV_GOODBYE;
    }
    return 1;
}

static char logpath[256];

static tally read_log(void)
{
    tally t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < NRUNS; i++)
        t.layer_step[i] = t.scalar_step[i] = -1;
    char note[512];
    assert_true(at_replay_each(logpath, count_one, &t, note, sizeof note) >= 0);
    return t;
}

/* Waits until the run log's run i has a layer result past step; returns that tally. */
static tally wait_layers_past(int i, int64_t step)
{
    tally t = read_log();
    for (double s = 0; s < TMX_TIMEOUT && t.layer_step[i] <= step; s += 0.1) {
        mon_sleep(0.1);
        t = read_log();
    }
    if (t.layer_step[i] <= step)
        fail_msg("%s: no layer result past step %lld (newest %lld)", run_ids[i], (long long)step,
                 (long long)t.layer_step[i]);
    return t;
}

/* Shows run i: the run picker, its row, Enter. */
static void show_run(tmx *v, int i)
{
    char want[64];
    assert_int_equal(tmx_cmd(v, "send-keys -t m r"), 0);
    free(tmx_wait_for(v, "snapshots", 0));
    assert_int_equal(tmx_cmd(v, "send-keys -t m %s Enter", i ? "j" : "k"), 0);
    snprintf(want, sizeof want, " run %s (tmux-mlp)", run_ids[i]);
    free(tmx_wait_for(v, want, 0));
}

static void test_pause_resume_stop(void **state)
{
    (void)state;
    char ep[256], cmd[700];
    mon_endpoint(ep, sizeof ep, "ctl");
    mon_logpath(logpath, sizeof logpath, "ctl");
    snprintf(cmd, sizeof cmd, "%s watch --listen %s --record %s", mon_binary(), ep, logpath);
    tmx v;
    tmx_start(&v, 120, 40, cmd);
    trainer tr[NRUNS];
    trainer_start(&tr[0], ep, 0);
    free(tmx_wait_for(&v, "run run-a (tmux-mlp)", 0));
    trainer_start(&tr[1], ep, 1);
    wait_layers_past(1, 0);
    free(tmx_wait_for(&v, "[run 1/2]", 0));
    show_run(&v, 0);

    /* p: run-a's agent pauses; the header and the verdict say so */
    assert_int_equal(tmx_cmd(&v, "send-keys -t m p"), 0);
    char *c = tmx_wait_for(&v, "snapshots paused: p resumes", 0);
    assert_non_null(strstr(c, "  PAUSED"));
    free(c);
    agent_state a = trainer_state(&tr[0]);
    for (double s = 0; s < TMX_TIMEOUT && a.paused != 1; s += 0.05) {
        mon_sleep(0.05);
        a = trainer_state(&tr[0]);
    }
    assert_int_equal(a.paused, 1);
    assert_int_equal(trainer_state(&tr[1]).paused, 0);
    /* a snapshot begun before the pause arrived may still come: let it, then take stock */
    mon_sleep(2.0 * EVERY * 0.02 + 0.5);
    tally t0 = read_log();
    agent_state a0 = trainer_state(&tr[0]);
    /* run-b goes on for three more snapshots; run-a's layers stop, its scalars do not */
    tally t1 = wait_layers_past(1, t0.layer_step[1] + 2 * EVERY);
    for (double s = 0; s < TMX_TIMEOUT && t1.scalar_step[0] < t0.scalar_step[0] + 4 * EVERY;
         s += 0.1) {
        mon_sleep(0.1);
        t1 = read_log();
    }
    agent_state a1 = trainer_state(&tr[0]);
    assert_int_equal(a1.paused, 1);
    assert_true(a1.step >= a0.step + 3 * EVERY);
    assert_int_equal(a1.sent, a0.sent);
    assert_int_equal(t1.layer_step[0], t0.layer_step[0]);
    assert_int_equal(t1.layers[0], t0.layers[0]);
    assert_true(t1.scalar_step[0] >= t0.scalar_step[0] + 4 * EVERY);
    /* nothing dropped: not by either agent, not by the monitor, not on screen */
    assert_int_equal(a1.dropped, 0);
    assert_int_equal(trainer_state(&tr[1]).dropped, 0);
    assert_int_equal(t1.drops, 0);
    assert_int_equal(t1.pauses[0], 1);
    assert_int_equal(t1.pauses[1], 0);
    c = tmx_capture(&v, 0);
    assert_non_null(strstr(c, " 0 dropped "));
    free(c);

    /* p again: resumed; run-a's snapshots come back */
    assert_int_equal(tmx_cmd(&v, "send-keys -t m p"), 0);
    tmx_wait_gone(&v, "PAUSED");
    tally t2 = wait_layers_past(0, t1.layer_step[0] + EVERY);
    assert_int_equal(trainer_state(&tr[0]).paused, 0);
    assert_int_equal(t2.resumes[0], 1);
    assert_int_equal(t2.drops, 0);

    /* s on run-b (y confirms): run-b's trainer acknowledges and ends; run-a goes on */
    show_run(&v, 1);
    assert_int_equal(tmx_cmd(&v, "send-keys -t m s"), 0);
    free(tmx_wait_for(&v, "Ask run run-b (tmux-mlp) to stop training? [y/N]", 0));
    assert_int_equal(tmx_cmd(&v, "send-keys -t m y"), 0);
    free(tmx_wait_for(&v, "STOP REQUESTED", 0));
    assert_int_equal(trainer_wait(&tr[1]), 0);
    tally t3 = read_log();
    for (double s = 0; s < TMX_TIMEOUT && !t3.goodbyes[1]; s += 0.1) {
        mon_sleep(0.1);
        t3 = read_log();
    }
    assert_int_equal(t3.stops[1], 1);
    assert_int_equal(t3.acks[1], 1);
    assert_int_equal(t3.goodbyes[1], 1);
    tally t4 = wait_layers_past(0, t3.layer_step[0] + 2 * EVERY);
    assert_int_equal(t4.stops[0], 0);
    assert_int_equal(t4.goodbyes[0], 0);
    assert_int_equal(t4.layer_step[1], t3.layer_step[1]);
    assert_int_equal(waitpid(tr[0].pid, NULL, WNOHANG), 0); /* still training */
    assert_int_equal(t4.drops, 0);

    assert_int_equal(tmx_cmd(&v, "send-keys -t m q"), 0);
    assert_int_equal(tmx_wait_exit(&v), 0);
    tmx_kill(&v);
    trainer_end(&tr[0]);
    unlink(tr[1].status);
    unlink(logpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause_resume_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
