/* SPDX-License-Identifier: Apache-2.0 */
/* bench_soak -- a long soak of one real monitor (`alphatop watch --headless`, a child process)
 * under steady traffic: TRAINERS agents in threads of this process, each publishing a small
 * model (three layers between 64x128 and 256x256) every PERIOD seconds, plus SHORT short-lived
 * runs (hello, one snapshot of one layer, goodbye) spread over the duration, and a garbage
 * message and an unsolicited stop_ack every ten seconds. Reads the monitor's JSON lines.
 * Prints every minute, and at the end: messages by kind, snapshots sent vs analysed per good
 * trainer (and the trainers' own drops), the short runs analysed, the monitor's resident
 * memory min/max (VmRSS of /proc/PID/status, sampled every 5 s; also after the first tenth)
 * and its CPU seconds. Exit status 1 if a good trainer lost a snapshot it sent.
 *
 * With HOG_MIB > 0, one more trainer ("soak-hog") publishes a single square f32 layer of that
 * many MiB every PERIOD: the good trainers must lose nothing to it (docs/monitor.md, Fair
 * share).
 *
 * Usage: bench_soak [SECONDS [TRAINERS [SHORT [PERIOD [HOG_MIB]]]]]
 *        defaults: 3600 8 1000 1.0 0
 * The monitor ($AT_SOAK_ALPHATOP, else the alphatop built beside this bench) runs with
 * --threads 1 --no-record and OPENBLAS_NUM_THREADS=1 (a soak of a shared machine should stay
 * small), and --max-runs $AT_SOAK_MAX_RUNS when set (below SHORT, to see memory stay flat
 * once ended runs are evicted). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "alphatop/agent.h"
#include "alphatop/protocol.h"
#include "bench_clock.h"

#define MAX_TRAINERS 64
#define NLAYERS 3

/* Kinds of the monitor's lines, counted as they come. */
static const char *const kinds[] = {"layer",     "scalars", "hello",   "goodbye", "drop",
                                    "error",     "info",    "warning", "ack",     "phase",
                                    "run_phase", "trap",    "stop",    "stats"};
#define NKINDS ((int)(sizeof kinds / sizeof *kinds))

typedef struct trainer {
    int index;
    int hog; /* the one huge layer instead of the small model */
    pthread_t thread;
    int64_t sent, dropped, deferred; /* the agent's counters at its end */
    atomic_llong analysed_layers;    /* layer lines of this run */
    atomic_llong monitor_drops;      /* drop events of this run */
} trainer;

static struct {
    double seconds, period;
    int ntrainers, nshort, hog_mib;
    char endpoint[128];
    atomic_int stop;
    trainer tr[MAX_TRAINERS];
    trainer hog;
    atomic_llong by_kind[NKINDS], other_lines, short_layers;
    pid_t monitor;
} g;

static double now_s(void)
{
    return now();
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Seeded uniform weights in [-1, 1). */
static void fill(float *w, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

static void *trainer_main(void *arg)
{
    trainer *t = arg;
    static const int64_t shapes[][2] = {{64, 128}, {128, 128}, {256, 256}, {128, 256}};
    char id[64], names[NLAYERS][32];
    const int nl = t->hog ? 1 : NLAYERS;
    if (t->hog)
        snprintf(id, sizeof id, "soak-hog");
    else
        snprintf(id, sizeof id, "soak-good-%d", t->index);
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.model = "soak-mlp";
    o.interval = 1;
    at_agent *a = at_agent_new(id, g.endpoint, &o);
    if (!a) {
        fprintf(stderr, "bench_soak: %s: %s\n", id, at_agent_last_error(NULL));
        return NULL;
    }
    float *w[NLAYERS];
    int64_t shape[NLAYERS][2];
    for (int l = 0; l < nl; l++) {
        memcpy(shape[l], shapes[(t->index + l) % 4], sizeof shape[l]);
        if (t->hog) /* a square layer of hog_mib MiB of f32 */
            shape[l][0] = shape[l][1] = (int64_t)sqrt((double)g.hog_mib * 262144.0);
        w[l] = malloc((size_t)(shape[l][0] * shape[l][1]) * sizeof(float));
        fill(w[l], (size_t)(shape[l][0] * shape[l][1]), (uint64_t)(t->index * 16 + l + 1));
        snprintf(names[l], sizeof names[l], "block%d.weight", l);
    }
    /* Staggered, so the trainers do not publish in lockstep. */
    sleep_s(g.period * t->index / g.ntrainers);
    double next = now_s();
    for (int64_t step = 1; !atomic_load(&g.stop); step++) {
        for (int l = 0; l < nl; l++)
            w[l][step % (shape[l][0] * shape[l][1])] *= 0.99f; /* training, of a sort */
        if (at_agent_snapshot_due(a, step) && at_agent_snapshot_begin(a, step) == AT_OK) {
            for (int l = 0; l < nl; l++)
                at_agent_publish(a, names[l], AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape[l], w[l],
                                 0);
            at_agent_snapshot_end(a);
        }
        at_agent_log(a, step, 1, (const char *[]){"loss"}, (double[]){1.0 / (double)step});
        next += g.period;
        sleep_s(next - now_s());
    }
    at_agent_stats s;
    at_agent_stats_get(a, &s);
    t->sent = s.snapshots_sent;
    t->dropped = s.snapshots_dropped;
    t->deferred = s.layers_deferred;
    at_agent_free(a);
    for (int l = 0; l < nl; l++)
        free(w[l]);
    return NULL;
}

/* One short run: hello, a snapshot of one 64x64 layer, goodbye. */
static void short_run(int i)
{
    char id[64];
    snprintf(id, sizeof id, "soak-short-%d", i);
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.interval = 1;
    o.linger_ms = 1000;
    at_agent *a = at_agent_new(id, g.endpoint, &o);
    if (!a)
        return;
    static float w[64 * 64];
    if (!w[0])
        fill(w, 64 * 64, 7);
    const int64_t shape[2] = {64, 64};
    if (at_agent_snapshot_begin(a, 0) == AT_OK) {
        at_agent_publish(a, "w", AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w, 0);
        at_agent_snapshot_end(a);
    }
    at_agent_free(a);
}

/* The value of "key":"..." in line, into out; 0 if absent. */
static int field(const char *line, const char *key, char *out, size_t n)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(line, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    size_t k = strcspn(p, "\"");
    snprintf(out, n, "%.*s", (int)(k < n ? k : n - 1), p);
    return 1;
}

static void *reader_main(void *arg)
{
    FILE *in = arg;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        char type[32] = "", kind[32] = "", run[128] = "";
        field(line, "type", type, sizeof type);
        field(line, "run", run, sizeof run);
        const char *k = type;
        if (!strcmp(type, "event") && field(line, "kind", kind, sizeof kind))
            k = kind;
        int found = 0;
        for (int i = 0; i < NKINDS && !found; i++)
            if (!strcmp(k, kinds[i])) {
                atomic_fetch_add(&g.by_kind[i], 1);
                found = 1;
            }
        if (!found)
            atomic_fetch_add(&g.other_lines, 1);
        int good = -1;
        if (sscanf(run, "soak-good-%d", &good) == 1 && good >= 0 && good < g.ntrainers) {
            if (!strcmp(type, "layer"))
                atomic_fetch_add(&g.tr[good].analysed_layers, 1);
            else if (!strcmp(kind, "drop"))
                atomic_fetch_add(&g.tr[good].monitor_drops, 1);
        } else if (!strcmp(run, "soak-hog")) {
            if (!strcmp(type, "layer"))
                atomic_fetch_add(&g.hog.analysed_layers, 1);
            else if (!strcmp(kind, "drop"))
                atomic_fetch_add(&g.hog.monitor_drops, 1);
        } else if (!strncmp(run, "soak-short-", 11) && !strcmp(type, "layer")) {
            atomic_fetch_add(&g.short_layers, 1);
        }
    }
    free(line);
    fclose(in);
    return NULL;
}

/* VmRSS of pid in KiB; -1 when gone. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* CPU seconds (user + system) of pid; -1 when gone. */
static double cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static pid_t spawn_monitor(FILE **out)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        const char *bin = getenv("AT_SOAK_ALPHATOP"), *max_runs = getenv("AT_SOAK_MAX_RUNS");
        if (max_runs && *max_runs)
            execl(bin && *bin ? bin : AT_ALPHATOP, "alphatop", "watch", "--headless", "--no-record",
                  "--threads", "1", "--listen", g.endpoint, "--max-runs", max_runs, (char *)NULL);
        else
            execl(bin && *bin ? bin : AT_ALPHATOP, "alphatop", "watch", "--headless", "--no-record",
                  "--threads", "1", "--listen", g.endpoint, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    *out = fdopen(fd[0], "r");
    return pid;
}

/* Garbage and an unsolicited stop_ack, from a raw DEALER: both refused or ignored, counted. */
static void hostile(void *zctx, int i)
{
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int linger = 500;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, g.endpoint) == 0) {
        const char junk[] = "{\"v\":2,\"type\":\"layer\",\"run\":";
        zmq_send(s, junk, sizeof junk - 1, 0);
        static at_proto_msg ack;
        ack.type = AT_PROTO_STOP_ACK;
        snprintf(ack.run, sizeof ack.run, "soak-nobody-%d", i);
        snprintf(ack.u.reason, sizeof ack.u.reason, "no stop was sent");
        char buf[512];
        size_t n = 0;
        if (at_proto_encode(&ack, buf, sizeof buf, &n, NULL) == AT_OK)
            zmq_send(s, buf, n, 0);
    }
    zmq_close(s);
}

typedef struct span {
    long rss_min, rss_max, rss_min_late, rss_max_late;
} span;

static void report(const char *what, double elapsed, const span *sp, double cpu, int short_done)
{
    printf("== %s: %.0f s ==\n  lines:", what, elapsed);
    for (int i = 0; i < NKINDS; i++)
        printf(" %s %lld", kinds[i], (long long)atomic_load(&g.by_kind[i]));
    printf(" other %lld\n", (long long)atomic_load(&g.other_lines));
    printf("  monitor: RSS %ld..%ld KiB (after the first tenth %ld..%ld), CPU %.1f s\n",
           sp->rss_min, sp->rss_max, sp->rss_min_late, sp->rss_max_late, cpu);
    printf("  short runs started %d, their layers analysed %lld\n", short_done,
           (long long)atomic_load(&g.short_layers));
    for (int i = 0; i < g.ntrainers; i++) {
        const trainer *t = &g.tr[i];
        printf("  soak-good-%d: layers analysed %lld (= %lld snapshots), monitor drop events "
               "%lld",
               i, (long long)atomic_load(&t->analysed_layers),
               (long long)atomic_load(&t->analysed_layers) / NLAYERS,
               (long long)atomic_load(&t->monitor_drops));
        if (!strcmp(what, "end"))
            printf(", sent %lld, dropped by the agent %lld, layers deferred %lld",
                   (long long)t->sent, (long long)t->dropped, (long long)t->deferred);
        printf("\n");
    }
    if (g.hog_mib > 0) {
        printf("  soak-hog (%d MiB layers): snapshots analysed %lld, monitor drop events %lld",
               g.hog_mib, (long long)atomic_load(&g.hog.analysed_layers),
               (long long)atomic_load(&g.hog.monitor_drops));
        if (!strcmp(what, "end"))
            printf(", sent %lld, dropped by the agent %lld", (long long)g.hog.sent,
                   (long long)g.hog.dropped);
        printf("\n");
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    g.seconds = argc > 1 ? atof(argv[1]) : 3600;
    g.ntrainers = argc > 2 ? atoi(argv[2]) : 8;
    g.nshort = argc > 3 ? atoi(argv[3]) : 1000;
    g.period = argc > 4 ? atof(argv[4]) : 1.0;
    g.hog_mib = argc > 5 ? atoi(argv[5]) : 0;
    if (g.seconds <= 0 || g.ntrainers < 1 || g.ntrainers > MAX_TRAINERS || g.nshort < 0 ||
        g.period <= 0 || g.hog_mib < 0 || g.hog_mib > 4096) {
        fprintf(stderr,
                "usage: bench_soak [SECONDS [TRAINERS (1..%d) [SHORT [PERIOD [HOG_MIB]]]]]\n",
                MAX_TRAINERS);
        return 2;
    }
    snprintf(g.endpoint, sizeof g.endpoint, "ipc:///tmp/alphatop-soak-%d.ipc", (int)getpid());
    FILE *mon_out = NULL;
    g.monitor = spawn_monitor(&mon_out);
    if (g.monitor < 0 || !mon_out) {
        perror("bench_soak: starting the monitor");
        return 2;
    }
    pthread_t reader;
    pthread_create(&reader, NULL, reader_main, mon_out);
    sleep_s(1.0); /* the monitor binds */
    printf("bench_soak: %.0f s, %d trainers every %.2f s, %d short runs, monitor pid %d on %s\n",
           g.seconds, g.ntrainers, g.period, g.nshort, (int)g.monitor, g.endpoint);
    fflush(stdout);
    for (int i = 0; i < g.ntrainers; i++) {
        g.tr[i].index = i;
        pthread_create(&g.tr[i].thread, NULL, trainer_main, &g.tr[i]);
    }
    g.hog.hog = 1;
    if (g.hog_mib > 0)
        pthread_create(&g.hog.thread, NULL, trainer_main, &g.hog);
    void *zctx = zmq_ctx_new();
    span sp = {-1, -1, -1, -1};
    const double t0 = now_s();
    double next_rss = t0, next_print = t0 + 60, next_hostile = t0 + 10;
    int short_done = 0, hostile_n = 0;
    for (;;) {
        double t = now_s() - t0;
        if (t >= g.seconds)
            break;
        if (short_done < g.nshort && t >= g.seconds * short_done / g.nshort)
            short_run(short_done++);
        if (now_s() >= next_hostile) {
            hostile(zctx, hostile_n++);
            next_hostile += 10;
        }
        if (now_s() >= next_rss) {
            long kib = rss_kib(g.monitor);
            if (kib < 0) {
                fprintf(stderr, "bench_soak: the monitor is gone\n");
                break;
            }
            sp.rss_min = sp.rss_min < 0 || kib < sp.rss_min ? kib : sp.rss_min;
            sp.rss_max = kib > sp.rss_max ? kib : sp.rss_max;
            if (t >= g.seconds / 10) {
                sp.rss_min_late =
                    sp.rss_min_late < 0 || kib < sp.rss_min_late ? kib : sp.rss_min_late;
                sp.rss_max_late = kib > sp.rss_max_late ? kib : sp.rss_max_late;
            }
            next_rss += 5;
        }
        if (now_s() >= next_print) {
            report("minute", t, &sp, cpu_s(g.monitor), short_done);
            next_print += 60;
        }
        sleep_s(0.1);
    }
    atomic_store(&g.stop, 1);
    for (int i = 0; i < g.ntrainers; i++)
        pthread_join(g.tr[i].thread, NULL);
    if (g.hog_mib > 0)
        pthread_join(g.hog.thread, NULL);
    zmq_ctx_term(zctx);
    sleep_s(5.0); /* the monitor analyses what is still queued */
    double cpu = cpu_s(g.monitor);
    kill(g.monitor, SIGINT);
    int status = 0;
    waitpid(g.monitor, &status, 0);
    pthread_join(reader, NULL);
    report("end", now_s() - t0, &sp, cpu, short_done);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  this bench (trainers): CPU %.1f s; monitor exit status %d\n",
           (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    int lost = 0;
    for (int i = 0; i < g.ntrainers; i++)
        lost +=
            atomic_load(&g.tr[i].analysed_layers) / NLAYERS < g.tr[i].sent || g.tr[i].dropped > 0;
    printf("%s\n", lost ? "SOME GOOD TRAINER LOST SNAPSHOTS" : "every good snapshot analysed");
    return lost ? 1 : 0;
}
