/* SPDX-License-Identifier: Apache-2.0 */
/* test_mpi_watch.c -- `mpirun -n N alphatop watch --headless` (tui/cmd/mpi_watch.c) against the
 * monitor on its own, live, with the C agent publishing the same seeded snapshots to each:
 *   exact    four snapshots of eight layers (plain, a fine-tune with its base sent once: W and
 *            W - W_base, a NaN layer, a conv layer) analysed by the two analysing ranks of
 *            `mpirun -n 3` give the one-process monitor's layer lines, character for character
 *            (so the same alphas to every printed digit), and the same exit status;
 *   fast     the same in fast mode: every layer's warm state stays on the rank that analysed
 *            it (the lines say which snapshots were warm updates, and no layer moved);
 *   rate     layers per second of the one-process monitor and of `mpirun -n 2` and `-n 3`
 *            in exact mode, every snapshot sent at once (printed for docs/cluster.md; the
 *            results must be equal, the rates are not asserted: the machine is shared).
 * For exact and fast the agent sends a snapshot once the monitor has printed every layer of
 * the one before, so fast mode's newest-snapshot-wins replaces none and both monitors see the
 * same sequence.
 * OpenMPI refuses root unless told; CI runs as root, so the test allows it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"
#include "mon_util.h"
#include "testutil.h"

#define TIMEOUT 120.0
#define SNAPSHOTS 4

/* The published layers: name, shape (rows, cols; conv: out, in, kh, kw), whether a base is sent
 * first (a fine-tune: W and W - W_base), one NaN. */
typedef struct layer {
    const char *name;
    int ndim;
    int64_t shape[4];
    int base;
} layer;

static const layer LAYERS[] = {
    {"blocks.0.attn", 2, {400, 320}, 0},
    {"blocks.0.mlp", 2, {320, 512}, 0},
    {"blocks.1.attn", 2, {200, 200}, 0},
    {"blocks.1.mlp", 2, {384, 128}, 0},
    {"ft.q", 2, {192, 256}, 1},
    {"head", 2, {96, 256}, 0},
    {"bad", 2, {64, 48}, 0},
    {"conv", 4, {32, 16, 3, 3}, 0},
};
#define NLAYERS ((int)(sizeof LAYERS / sizeof LAYERS[0]))

static int64_t numel(const layer *l)
{
    int64_t n = 1;
    for (int i = 0; i < l->ndim; i++)
        n *= l->shape[i];
    return n;
}

/* Layer i's weights at snapshot k (k = -1: its base): seeded N(0, 1/cols) plus heavy-tailed
 * spikes, drifting along a fixed seeded direction by 0.4% of their size per snapshot (small
 * enough for fast mode's warm updates). Caller frees. */
static float *weights(int i, int k)
{
    const layer *l = &LAYERS[i];
    const int64_t n = numel(l), cols = n / l->shape[0];
    float *w = malloc((size_t)n * sizeof *w);
    at_rng r, d;
    at_rng_seed(&r, 1000 + (uint64_t)i);
    at_rng_seed(&d, 5000 + (uint64_t)i);
    for (int64_t j = 0; j < n; j++) {
        const double spike = j % 97 == 0 ? 8.0 * at_rng_normal(&r) : 0.0;
        w[j] = (float)((at_rng_normal(&r) + spike + 0.004 * (k + 1) * at_rng_normal(&d)) /
                       sqrt((double)cols));
    }
    if (!strcmp(l->name, "bad"))
        w[7] = NAN;
    return w;
}

/* Layer lines a snapshot yields: one per layer, two for a fine-tune. */
static int lines_per_snapshot(void)
{
    int n = 0;
    for (int i = 0; i < NLAYERS; i++)
        n += 1 + LAYERS[i].base;
    return n;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* What one monitor printed. */
typedef struct outcome {
    char *layers; /* its layer lines, sorted, newline-terminated (owned) */
    char *err;    /* its stderr (owned) */
    int rc;
    double rate; /* layers analysed per second, from the first snapshot to the last result */
} outcome;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of text holding "\"type\":\"layer\"", sorted, joined. Caller frees. */
static char *layer_lines(const char *text)
{
    size_t n = 0, cap = 64, len = 0;
    char **lines = malloc(cap * sizeof *lines);
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        const size_t k = e ? (size_t)(e - p) : strlen(p);
        char *line = strndup(p, k);
        if (strstr(line, "\"type\":\"layer\"")) {
            if (n == cap)
                lines = realloc(lines, (cap *= 2) * sizeof *lines);
            lines[n++] = line;
            len += k + 1;
        } else {
            free(line);
        }
        p += k + (e != NULL);
    }
    qsort(lines, n, sizeof *lines, cmp_str);
    char *out = malloc(len + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        o += sprintf(o, "%s\n", lines[i]);
        free(lines[i]);
    }
    *o = '\0';
    free(lines);
    return out;
}

/* Waits until the file at path holds needle; 0 on timeout. */
static int wait_file(const char *path, const char *needle, double timeout)
{
    for (const double end = now() + timeout; now() < end; mon_sleep(0.05)) {
        char *s = at_test_slurp(path, NULL);
        const int found = s && strstr(s, needle);
        free(s);
        if (found)
            return 1;
    }
    return 0;
}

/* Starts `[mpirun -n ranks] alphatop` with the watch arguments (ranks 0: on its own), its
 * stderr into the file errp, and waits until it listens. */
static void start(mon *m, int ranks, const char *const *watch, const char *errp)
{
    char np[16];
    snprintf(np, sizeof np, "%d", ranks);
    const char *mpi[24] = {"--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-n", np,
                           mon_binary()};
    for (int i = 0; watch[i] && i < 16; i++)
        mpi[7 + i] = watch[i];
    const int saved = dup(STDERR_FILENO), fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDERR_FILENO);
    const int started = ranks ? mon_start_prog(m, AT_MPIEXEC, mpi) : mon_start(m, watch);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    assert_int_equal(started, 0);
    if (!wait_file(errp, "alphatop: listening on", TIMEOUT))
        fail_msg("the monitor did not start listening");
}

static at_agent *agent(const char *ep)
{
    at_agent_opts ao;
    at_agent_opts_default(&ao);
    ao.model = "test-mpi";
    at_agent *a = at_agent_new("mpi-watch", ep, &ao);
    assert_non_null(a);
    return a;
}

/* Publishes snapshot k (k = -1: the fine-tune's base alone, at step 0; else step 10 (k + 1)). */
static void publish(at_agent *a, int k)
{
    assert_int_equal(at_agent_snapshot_begin(a, 10 * (k + 1)), AT_OK);
    for (int i = 0; i < NLAYERS; i++) {
        const layer *l = &LAYERS[i];
        if (k < 0 && !l->base)
            continue;
        float *w = weights(i, k);
        assert_int_equal(
            at_agent_publish(a, l->name, l->ndim == 4 ? AT_PROTO_KIND_CONV2D : AT_PROTO_KIND_LINEAR,
                             AT_PROTO_F32, l->ndim, l->shape, w, k < 0 ? AT_AGENT_BASE : 0),
            AT_OK);
        free(w);
    }
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
}

/* Runs a monitor (ranks 0: on its own; else under mpirun with that many ranks) in mode ("" or
 * "--fast"), publishes SNAPSHOTS snapshots to it (paced: each once the one before has been
 * analysed; else at once), and collects what it printed. */
static outcome run(int ranks, const char *mode, int paced)
{
    char ep[256], tag[32], errp[256], snap[16];
    snprintf(tag, sizeof tag, "mpi%d%s", ranks, mode[0] ? "f" : "e");
    mon_endpoint(ep, sizeof ep, tag);
    snprintf(errp, sizeof errp, "/tmp/at-mpi-watch-%s-%d.err", tag, (int)getpid());
    snprintf(snap, sizeof snap, "%d", SNAPSHOTS);
    /* Exact mode ends by itself after the last snapshot; fast mode counts a snapshot whenever
     * every layer it knows has a newer result, so it ends on SIGTERM (what mpirun passes on). */
    const char *watch[] = {"watch",    "--headless", "--no-record",     "--threads", "2",
                           "--listen", ep,           "--max-snapshots", snap,        NULL};
    if (mode[0]) {
        watch[7] = mode;
        watch[8] = NULL;
    }
    mon m;
    start(&m, ranks, watch, errp);
    at_agent *a = agent(ep);
    const int per = lines_per_snapshot();
    int seen = 0;
    const double t0 = now();
    for (int k = -1; k < SNAPSHOTS; k++) {
        publish(a, k);
        /* Paced: every line of this snapshot before the next; else all at the end. */
        const int want = paced || k == SNAPSHOTS - 1 ? (k + 1) * per : 0;
        for (; seen < want; seen++)
            if (!mon_wait_for(&m, "layer", NULL, TIMEOUT))
                fail_msg("%d of %d layer lines (ranks %d)", seen, want, ranks);
    }
    const double t1 = now();
    if (mode[0])
        kill(m.pid, SIGTERM);
    outcome o;
    o.layers = layer_lines(m.text);
    o.rc = mon_finish(&m, TIMEOUT);
    o.err = at_test_slurp(errp, NULL);
    o.rate = seen / (t1 - t0);
    unlink(errp);
    at_agent_free(a);
    return o;
}

static void outcome_free(outcome *o)
{
    free(o->layers);
    free(o->err);
}

/* The number right after key in the MPI summary line of err. */
static double summary(const char *err, const char *key)
{
    const char *line = strstr(err, "alphatop watch: MPI: ");
    if (!line)
        fail_msg("no MPI summary in: %s", err);
    const char *k = strstr(line, key);
    assert_non_null(k);
    return strtod(k + strlen(key), NULL);
}

/* The count written just before key in the summary line. */
static long long before(const char *err, const char *key)
{
    const char *line = strstr(err, "alphatop watch: MPI: ");
    assert_non_null(line);
    const char *k = strstr(line, key);
    assert_non_null(k);
    while (k > line && k[-1] == ' ')
        k--;
    while (k > line && k[-1] >= '0' && k[-1] <= '9')
        k--;
    return strtoll(k, NULL, 10);
}

static void expect_same(const char *mode)
{
    outcome one = run(0, mode, 1), three = run(3, mode, 1);
    assert_int_equal(one.rc, 0);
    /* mpirun ends with 1 after passing SIGTERM on, however cleanly rank 0 finished. */
    if (!mode[0])
        assert_int_equal(three.rc, one.rc);
    assert_string_equal(three.layers, one.layers);
    const int lines = SNAPSHOTS * lines_per_snapshot();
    /* Every line is there once: the sorted text has one line per result. */
    int n = 0;
    for (const char *p = one.layers; (p = strchr(p, '\n')); p++)
        n++;
    assert_int_equal(n, lines);
    assert_true(summary(three.err, "MPI: ") == 3);
    assert_int_equal(before(three.err, "layers analysed"), lines);
    assert_int_equal(before(three.err, "moved off"), 0);
    if (mode[0]) {
        /* Warm updates happened (on the rank that kept the layer's state). */
        assert_non_null(strstr(one.layers, "\"mode\":\"warm\""));
    }
    const char *line = strstr(three.err, "alphatop watch: MPI: ");
    print_message("%s: %d layer lines equal; one process %.1f layers/s, mpirun -n 3 %.1f "
                  "layers/s\n%.*s",
                  mode[0] ? "fast" : "exact", lines, one.rate, three.rate,
                  (int)(strchr(line, '\n') - line + 1), line);
    outcome_free(&one);
    outcome_free(&three);
}

static void test_exact(void **state)
{
    (void)state;
    expect_same("");
}

static void test_fast(void **state)
{
    (void)state;
    expect_same("--fast");
}

static void test_rate(void **state)
{
    (void)state;
    outcome o[3] = {run(0, "", 0), run(2, "", 0), run(3, "", 0)};
    for (int i = 1; i < 3; i++) {
        assert_int_equal(o[i].rc, 0);
        assert_string_equal(o[i].layers, o[0].layers);
    }
    double load[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        assert_int_equal(fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]), 3);
        fclose(f);
    }
    print_message("exact, %d layers x %d snapshots sent at once, --threads 2: one process %.1f "
                  "layers/s, mpirun -n 2 %.1f, mpirun -n 3 %.1f; load average %.2f %.2f %.2f\n",
                  NLAYERS, SNAPSHOTS, o[0].rate, o[1].rate, o[2].rate, load[0], load[1], load[2]);
    for (int i = 0; i < 3; i++)
        outcome_free(&o[i]);
}

/* A monitor that cannot start (an unknown --stop-on rule) under mpirun: rank 0 says why and
 * exits 2, the other ranks, never set up, stop, and mpirun exits 2. */
static void test_bad_option(void **state)
{
    (void)state;
    char cmd[1024], errp[256];
    snprintf(errp, sizeof errp, "/tmp/at-mpi-watch-bad-%d.err", (int)getpid());
    snprintf(cmd, sizeof cmd,
             "timeout 120 %s --oversubscribe --bind-to none -n 3 %s watch --headless "
             "--no-record --stop-on bogus >/dev/null 2>%s",
             AT_MPIEXEC, mon_binary(), errp);
    const int st = system(cmd);
    char *err = at_test_slurp(errp, NULL);
    assert_non_null(err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    assert_non_null(strstr(err, "alphatop watch: unknown stop rule 'bogus'"));
    free(err);
    unlink(errp);
}

/* The bytes of a file of /proc (its size says 0), NUL-terminated; *n of them. Caller frees. */
static char *read_proc(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 20);
    *n = f && buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    if (f)
        fclose(f);
    if (buf)
        buf[*n] = '\0';
    return buf;
}

/* The pid of rank `rank` among mpirun's children (OMPI_COMM_WORLD_RANK in its environment), or
 * -1. */
static pid_t rank_pid(pid_t mpirun, int rank)
{
    char want[64], path[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    pid_t found = -1;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) && found < 0;) {
        const int pid = atoi(e->d_name);
        size_t n;
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        char *stat = pid > 0 ? read_proc(path, &n) : NULL;
        const char *p = stat ? strrchr(stat, ')') : NULL;
        char state;
        int ppid = 0;
        if (p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 && ppid == mpirun) {
            snprintf(path, sizeof path, "/proc/%d/environ", pid);
            char *env = read_proc(path, &n);
            for (size_t i = 0; env && i < n; i += strlen(env + i) + 1)
                if (!strcmp(env + i, want))
                    found = pid;
            free(env);
        }
        free(stat);
    }
    closedir(d);
    return found;
}

/* "When a rank dies" (docs/cluster.md): an analysing rank killed mid-run ends the whole job,
 * rank 0 included, and mpirun says which rank died; the trainer's agent never notices (its
 * snapshots go on without blocking), and once a monitor listens again on the same endpoint and
 * log it reconnects by itself: the log holds the snapshots from before and after. */
static void test_rank_dies(void **state)
{
    (void)state;
    char ep[256], errp[256], log[256];
    mon_endpoint(ep, sizeof ep, "dies");
    mon_logpath(log, sizeof log, "dies");
    snprintf(errp, sizeof errp, "/tmp/at-mpi-watch-dies-%d.err", (int)getpid());
    const char *watch[] = {"watch", "--headless", "--record", log, "--listen", ep, NULL};
    mon m;
    start(&m, 3, watch, errp);
    at_agent *a = agent(ep);
    const int per = lines_per_snapshot();
    publish(a, -1);
    publish(a, 0);
    for (int i = 0; i < per; i++)
        assert_non_null(mon_wait_for(&m, "layer", NULL, TIMEOUT));
    const pid_t victim = rank_pid(m.pid, 2);
    assert_true(victim > 0);
    assert_int_equal(kill(victim, SIGKILL), 0);
    assert_int_not_equal(mon_finish(&m, TIMEOUT), 0);
    char *err = at_test_slurp(errp, NULL);
    assert_non_null(strstr(err, "process rank 2"));
    free(err);
    /* No monitor: the trainer's snapshot is taken at once all the same. */
    const double t0 = now();
    publish(a, 1);
    assert_true(now() - t0 < 5.0);
    /* A monitor again (on its own here), the same endpoint and log. */
    const char *again[] = {"watch", "--headless", "--record", log, "--listen", ep, NULL};
    start(&m, 0, again, errp);
    publish(a, 2);
    const cJSON *l;
    while ((l = mon_wait_for(&m, "layer", NULL, TIMEOUT)) && mon_num(l, "step") != 30)
        ;
    assert_non_null(l);
    kill(m.pid, SIGTERM);
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    char *replayed = NULL;
    const char *replay[] = {"replay", "--headless", log, NULL};
    assert_int_equal(mon_run(replay, &replayed, TIMEOUT), 0);
    assert_non_null(strstr(replayed, "\"step\":10,"));
    assert_non_null(strstr(replayed, "\"step\":30,"));
    free(replayed);
    at_agent_free(a);
    unlink(errp);
    unlink(log);
}

int main(void)
{
    /* OpenMPI refuses to run as root unless both are set. */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),     cmocka_unit_test(test_fast),
        cmocka_unit_test(test_rate),      cmocka_unit_test(test_bad_option),
        cmocka_unit_test(test_rank_dies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
