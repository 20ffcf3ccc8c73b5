/* SPDX-License-Identifier: Apache-2.0 */
/* bench_publish -- snapshot publishing throughput over ipc: the agent (this thread) publishes
 * snapshots of float32 layers, a feed on another thread receives and decodes them. Prints the
 * trainer-side cost (CPU time inside the agent calls, vs. a plain memcpy of the same bytes) and the
 * end-to-end throughput in GB/s (payload bytes received / wall time; goal >= 1 GB/s).
 *
 * Usage: bench_publish [LAYERS [MIB_PER_LAYER [SNAPSHOTS]]]   defaults: 8 4 64 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alphatop/agent.h"
#include "feed.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

typedef struct receiver {
    at_feed *f;
    int64_t payload_bytes, layers, snapshots;
    double done;
} receiver;

static void *receive(void *arg)
{
    receiver *r = arg;
    for (;;) {
        at_feed_msg *m = NULL;
        int rc = at_feed_recv(r->f, 1000, &m, NULL);
        if (rc == AT_ERR_AGAIN || rc == AT_ERR_NET)
            continue;
        if (rc != AT_OK)
            continue;
        if (m->msg.type == AT_PROTO_LAYER) {
            r->payload_bytes += (int64_t)m->msg.u.layer.nbytes;
            r->layers++;
        } else if (m->msg.type == AT_PROTO_SNAPSHOT_END) {
            r->snapshots++;
        }
        int bye = m->msg.type == AT_PROTO_GOODBYE;
        at_feed_msg_free(m);
        if (bye)
            break;
    }
    r->done = now();
    return NULL;
}

int main(int argc, char **argv)
{
    int layers = argc > 1 ? atoi(argv[1]) : 8;
    int64_t mib = argc > 2 ? atoll(argv[2]) : 4;
    int snapshots = argc > 3 ? atoi(argv[3]) : 64;
    if (layers < 1 || mib < 1 || snapshots < 1) {
        fprintf(stderr, "usage: bench_publish [LAYERS [MIB_PER_LAYER [SNAPSHOTS]]]\n");
        return 2;
    }
    int64_t cols = 1024, rows = mib * 1024 * 1024 / 4 / cols;
    size_t nbytes = (size_t)(rows * cols * 4);
    /* The baseline copies into one buffer per layer, like the agent, pre-faulted so that it
     * measures the copy alone. */
    float *w = malloc(nbytes);
    char *copy = malloc((size_t)layers * nbytes);
    if (!w || !copy)
        return 1;
    memset(copy, 0, (size_t)layers * nbytes);
    srand(1);
    for (size_t i = 0; i < nbytes / 4; i++)
        w[i] = (float)rand() / (float)RAND_MAX - 0.5f;

    char ep[128];
    snprintf(ep, sizeof ep, "ipc:///tmp/at-bench-%d.ipc", (int)getpid());
    at_feed_opts fo;
    at_feed_opts_default(&fo);
    fo.endpoint = ep;
    char err[256];
    receiver r = {.f = at_feed_new(&fo, err, sizeof err)};
    if (!r.f) {
        fprintf(stderr, "bench_publish: %s\n", err);
        return 1;
    }
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.budget_bytes = (int64_t)4 * layers * (int64_t)nbytes; /* room for 4 snapshots held */
    o.linger_ms = 60000;
    at_agent *a = at_agent_new("bench", ep, &o);
    if (!a) {
        fprintf(stderr, "bench_publish: %s\n", at_agent_last_error(NULL));
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, receive, &r);

    /* Baseline: what one copy of the same bytes costs. */
    double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (int s = 0; s < snapshots; s++)
        for (int l = 0; l < layers; l++) {
            w[l] += 1.0f;
            memcpy(copy + (size_t)l * nbytes, w, nbytes);
        }
    double copy_s = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;

    double inside = 0, start = now(), cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int s = 0; s < snapshots; s++) {
        double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        if (at_agent_snapshot_begin(a, s) == AT_OK) {
            for (int l = 0; l < layers; l++) {
                char name[32];
                snprintf(name, sizeof name, "layer%d.weight", l);
                at_agent_publish(a, name, AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2,
                                 (int64_t[]){rows, cols}, w, 0);
            }
        }
        at_agent_snapshot_end(a);
        inside += clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        /* Paced like a trainer that computes between snapshots: wait (outside the timed calls)
         * until at most one more snapshot is queued, so the rate measured is the pipeline's, not
         * that of dropping. */
        at_agent_stats q;
        while (at_agent_stats_get(a, &q) == AT_OK &&
               q.bytes_in_flight > 2 * layers * (int64_t)nbytes)
            usleep(200);
    }
    at_agent_stats st;
    at_agent_stats_get(a, &st);
    at_agent_free(a);
    pthread_join(th, NULL);
    double wall = r.done - start, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    double load = 0;
    FILE *fp = fopen("/proc/loadavg", "r");
    if (fp) {
        if (fscanf(fp, "%lf", &load) != 1)
            load = 0;
        fclose(fp);
    }
    double total = (double)snapshots * layers * (double)nbytes;
    printf("snapshots: %d x %d layers x %lld MiB = %.2f GiB offered; sent %lld, dropped %lld; "
           "received %lld snapshots (%lld layers)\n",
           snapshots, layers, (long long)mib, total / (1 << 30), (long long)st.snapshots_sent,
           (long long)st.snapshots_dropped, (long long)r.snapshots, (long long)r.layers);
    printf("trainer-side (thread CPU time, immune to machine load): %.3f s inside agent calls, "
           "%.3f s for a plain memcpy of the same bytes "
           "(ratio %.2f), peak in flight %.0f MiB of %.0f MiB budget\n",
           inside, copy_s, inside / copy_s, (double)st.peak_in_flight / (1 << 20),
           (double)st.budget_bytes / (1 << 20));
    printf("end-to-end over ipc: %.2f GB/s (%.2f GB received in %.3f s; goal >= 1 GB/s)\n",
           (double)r.payload_bytes / wall / 1e9, (double)r.payload_bytes / 1e9, wall);
    /* Wall time depends on what else runs; CPU time per GB says what the pipeline itself costs
     * (both ZeroMQ I/O threads, the agent's copy and the receiver, summed). */
    printf("CPU: %.3f s of CPU for all threads, %.2f GB per CPU-second; load average %.1f on "
           "%ld cores during the run\n",
           cpu, (double)r.payload_bytes / cpu / 1e9, load, sysconf(_SC_NPROCESSORS_ONLN));
    at_feed_free(r.f);
    free(w);
    free(copy);
    return 0;
}
