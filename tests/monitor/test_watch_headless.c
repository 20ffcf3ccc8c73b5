/* SPDX-License-Identifier: Apache-2.0 */
/* test_watch_headless.c -- `alphatop watch --headless` end to end: a trainer (the C agent)
 * publishes seeded and oracle matrices; the monitor's JSON lines must carry the alpha that
 * at_htsr_analyze computes on the same data (and the reference's, for the oracle layer); bad
 * input becomes error events (with the protocol's reason) without stopping the monitor, an
 * unsolicited stop_ack a warning, and the final stats line counts both; a --stop-on rule stops
 * the trainer and exits 3; a SIGKILLed monitor's run log replays up to its last complete
 * record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "alphatop/agent.h"
#include "alphatop/htsr.h"
#include "alphatop/lora.h"
#include "alphatop/rng.h"
#include "mon_util.h"
#include "testutil.h"

#define TIMEOUT 60.0

/* A rows x cols matrix of seeded N(0, 1/cols) entries. Caller frees. */
static float *gauss(int64_t rows, int64_t cols, uint64_t seed)
{
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    at_rng r;
    at_rng_seed(&r, seed);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)(at_rng_normal(&r) / sqrt((double)cols));
    return w;
}

/* An oracle matrix (raw float32) of n values. Caller frees. */
static float *oracle(const char *name, size_t n)
{
    char path[512];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/oracle/matrices/%s.f32", AT_DATA_DIR, name);
    float *w = (float *)at_test_slurp(path, &len);
    assert_non_null(w);
    assert_int_equal(len, n * sizeof *w);
    return w;
}

/* The oracle's reference.json, parsed. Caller frees (cJSON_Delete). */
static cJSON *reference(void)
{
    char *s = at_test_slurp(AT_DATA_DIR "/oracle/reference.json", NULL);
    assert_non_null(s);
    cJSON *ref = cJSON_Parse(s);
    free(s);
    assert_non_null(ref);
    return ref;
}

/* The reference row (WeightWatcher's default columns) of oracle case name in ref. Borrowed. */
static const cJSON *oracle_row(const cJSON *ref, const char *name)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "cases"))
    {
        if (!strcmp(mon_str(c, "name"), name)) {
            const cJSON *d = cJSON_GetObjectItem(c, "default");
            return cJSON_IsArray(d) ? cJSON_GetArrayItem(d, 0) : d;
        }
    }
    fail_msg("no oracle case %s", name);
    return NULL;
}

static double oracle_alpha(const char *name)
{
    cJSON *ref = reference();
    double alpha = mon_num(oracle_row(ref, name), "alpha");
    cJSON_Delete(ref);
    return alpha;
}

/* The exact-mode tolerances of the oracle (its README): 1e-6 relative on alpha, xmin, D,
 * sigma and the scale metrics, integer columns exact. */
static void assert_oracle_row(const cJSON *got, const char *name)
{
    static const char *rel[] = {"alpha",       "xmin",           "xmax",       "D",
                                "sigma",       "alpha_weighted", "log_norm",   "log_spectral_norm",
                                "stable_rank", "entropy",        "lambda_max", "norm"};
    static const char *exact[] = {"N",           "M",        "num_evals", "num_pl_spikes",
                                  "matrix_rank", "rank_loss"};
    cJSON *ref = reference();
    const cJSON *want = oracle_row(ref, name);
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        double g = mon_num(got, rel[i]), w = mon_num(want, rel[i]);
        if (!(fabs(g - w) <= 1e-6 * fabs(w)))
            fail_msg("%s %s: got %.17g, reference %.17g", name, rel[i], g, w);
    }
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (mon_num(got, exact[i]) != mon_num(want, exact[i]))
            fail_msg("%s %s: got %.17g, reference %.17g", name, exact[i], mon_num(got, exact[i]),
                     mon_num(want, exact[i]));
    cJSON_Delete(ref);
}

/* delta_check: WeightWatcher's analyze(model, base_model) of the oracle MLP, layer fc2. */
static double delta_check_alpha(void)
{
    cJSON *ref = reference();
    double v = mon_num(cJSON_GetObjectItem(ref, "delta_check"), "alpha");
    cJSON_Delete(ref);
    return v;
}

static double exact_alpha(const float *w, int64_t rows, int64_t cols)
{
    at_htsr *h = at_htsr_new();
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    at_tensor t = {
        .data = w, .dtype = AT_DTYPE_F32, .kind = AT_KIND_LINEAR, .ndim = 2, .shape = {rows, cols}};
    at_metrics m;
    assert_int_equal(at_htsr_analyze(h, &t, &o, &m), AT_OK);
    at_htsr_free(h);
    return m.alpha;
}

static at_agent *agent(const char *run, const char *ep)
{
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.model = "test-mlp";
    o.interval = 10;
    at_agent *a = at_agent_new(run, ep, &o);
    if (!a)
        fprintf(stderr, "agent: %s\n", at_agent_last_error(NULL));
    assert_non_null(a);
    return a;
}

static void publish(at_agent *a, const char *name, const float *w, int64_t rows, int64_t cols,
                    unsigned flags)
{
    int64_t shape[2] = {rows, cols};
    assert_int_equal(
        at_agent_publish(a, name, AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2, shape, w, flags), AT_OK);
}

/* The layer line for (name, view, step) among the lines seen so far, or NULL. */
static const cJSON *find_layer(const mon *m, const char *name, const char *view, double step)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, m->seen)
    {
        if (!strcmp(mon_str(o, "type"), "layer") && !strcmp(mon_str(o, "name"), name) &&
            !strcmp(mon_str(o, "view"), view) && mon_num(o, "step") == step)
            return o;
    }
    return NULL;
}

static void assert_rel(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol * fabs(want))) {
        fprintf(stderr, "got %.17g want %.17g (rel tol %g)\n", got, want, tol);
        fail();
    }
}

static void test_alpha_matches_exact(void **state)
{
    (void)state;
    char ep[256];
    mon_endpoint(ep, sizeof ep, "alpha");
    mon m;
    /* Two OpenBLAS threads (the default is one): the same alphas. */
    const char *args[] = {"watch",    "--headless", "--no-record",     "--threads", "2",
                          "--listen", ep,           "--max-snapshots", "2",         NULL};
    assert_int_equal(mon_start(&m, args), 0);
    float *g = gauss(300, 150, 7);
    float *orc = oracle("mlp_trained_fc1", 512 * 64);
    float *bad = gauss(64, 32, 8);
    bad[100] = NAN;
    at_agent *a = agent("e2e-alpha", ep);
    for (int64_t step = 10; step <= 20; step += 10) {
        assert_int_equal(at_agent_snapshot_begin(a, step), AT_OK);
        publish(a, "gauss", g, 300, 150, 0);
        publish(a, "oracle", orc, 512, 64, 0);
        publish(a, "nan", bad, 64, 32, 0);
        assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    }
    const cJSON *hello = mon_wait_for(&m, "event", "hello", TIMEOUT);
    assert_non_null(hello);
    assert_string_equal(mon_str(hello, "run"), "e2e-alpha");
    assert_string_equal(mon_str(hello, "model"), "test-mlp");
    /* Two snapshots of three layers, then the monitor exits by itself. */
    int layers = 0;
    while (layers < 6 && mon_wait_for(&m, "layer", NULL, TIMEOUT))
        layers++;
    assert_int_equal(layers, 6);
    while (mon_next(&m, 2.0))
        ;
    double want_g = exact_alpha(g, 300, 150), want_o = exact_alpha(orc, 512, 64);
    for (double step = 10; step <= 20; step += 10) {
        const cJSON *lg = find_layer(&m, "gauss", "w", step);
        const cJSON *lo = find_layer(&m, "oracle", "w", step);
        const cJSON *ln = find_layer(&m, "nan", "w", step);
        assert_non_null(lg);
        assert_non_null(lo);
        assert_non_null(ln);
        assert_rel(mon_num(lg, "alpha"), want_g, 1e-12);
        assert_rel(mon_num(lo, "alpha"), want_o, 1e-12);
        assert_rel(mon_num(lo, "alpha"), oracle_alpha("mlp_trained_fc1"), 1e-6);
        assert_string_equal(mon_str(lo, "run"), "e2e-alpha");
        assert_string_equal(mon_str(lo, "mode"), "exact");
        assert_int_equal((int)mon_num(lo, "N"), 512);
        assert_int_equal((int)mon_num(lo, "M"), 64);
        assert_string_equal(mon_str(ln, "status"), "error");
    }
    /* The NaN layer is an error event too. */
    int errors = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, m.seen) errors +=
        !strcmp(mon_str(o, "kind"), "error") && !strcmp(mon_str(o, "layer"), "nan");
    assert_int_equal(errors, 2);
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    at_agent_free(a);
    free(g);
    free(orc);
    free(bad);
}

static void test_malformed_then_good(void **state)
{
    (void)state;
    char ep[256];
    mon_endpoint(ep, sizeof ep, "bad");
    mon m;
    const char *args[] = {"watch", "--headless",      "--no-record", "--listen",
                          ep,      "--max-snapshots", "1",           NULL};
    assert_int_equal(mon_start(&m, args), 0);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(zmq_connect(s, ep), 0);
    /* each rejected with its reason; the raw 0x9b (an 8-bit CSI, not UTF-8) never echoed */
    const char *junk[] = {"not json at all", "{\"v\":1,\"type\":\"layer\",\"run\":\"x\"}",
                          "{\"v\":99,\"type\":\"hello\",\"run\":\"x\"}",
                          "{\"v\":1,\"type\":\"hello\",\"run\":\"x\x9b[2J\",\"interval\":1}"};
    const char *reasons[] = {"bad_json", "missing_field", "bad_version", "bad_text"};
    for (size_t i = 0; i < 4; i++)
        assert_true(zmq_send(s, junk[i], strlen(junk[i]), 0) >= 0);
    for (size_t i = 0; i < 4; i++) {
        const cJSON *e = mon_wait_for(&m, "event", "error", TIMEOUT);
        assert_non_null(e);
        assert_non_null(strstr(mon_str(e, "text"), "rejected"));
        assert_string_equal(mon_str(e, "reason"), reasons[i]);
    }
    /* a stop_ack no stop asked for: a warning, never an acknowledgement */
    const char *ack = "{\"v\":1,\"type\":\"stop_ack\",\"run\":\"x\",\"reason\":\"fake\"}";
    assert_true(zmq_send(s, ack, strlen(ack), 0) >= 0);
    const cJSON *w = mon_wait_for(&m, "event", "warning", TIMEOUT);
    assert_non_null(w);
    assert_non_null(strstr(mon_str(w, "text"), "never sent"));
    float *g = gauss(100, 50, 9);
    at_agent *a = agent("e2e-good", ep);
    assert_int_equal(at_agent_snapshot_begin(a, 10), AT_OK);
    publish(a, "fc", g, 100, 50, 0);
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    const cJSON *l = mon_wait_for(&m, "layer", NULL, TIMEOUT);
    assert_non_null(l);
    assert_rel(mon_num(l, "alpha"), exact_alpha(g, 100, 50), 1e-12);
    /* the last line: the counters, rejections by reason */
    const cJSON *st = mon_wait_for(&m, "stats", NULL, TIMEOUT);
    assert_non_null(st);
    assert_null(mon_next(&m, 1.0));
    assert_true(mon_num(st, "rejected") == 4);
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(st, "rejected_by");
    for (size_t i = 0; i < 4; i++)
        assert_true(mon_num(by, reasons[i]) == 1);
    assert_true(mon_num(by, "bad_checksum") == 0);
    assert_true(mon_num(st, "messages") >= 4); /* the ack, hello, layer, snapshot_end */
    assert_true(mon_num(st, "unexpected_acks") == 1);
    assert_true(mon_num(st, "auth_denied") == 0);
    for (const cJSON *o = m.seen->child; o; o = o->next)
        assert_string_not_equal(mon_str(o, "kind"), "ack");
    char why[128];
    if (at_test_clean_text(m.text, m.text_len, why, sizeof why))
        fail_msg("%s in\n%s", why, m.text);
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    at_agent_free(a);
    zmq_close(s);
    zmq_ctx_term(ctx);
    free(g);
}

static void test_stop_rule_stops_trainer(void **state)
{
    (void)state;
    char ep[256];
    mon_endpoint(ep, sizeof ep, "stop");
    mon m;
    /* Every fitted alpha is below 100: the rule holds from the first snapshot on. */
    const char *args[] = {"watch", "--headless", "--no-record",          "--listen",
                          ep,      "--stop-on",  "mean-alpha-below:100", NULL};
    assert_int_equal(mon_start(&m, args), 0);
    float *g = gauss(200, 100, 10);
    at_agent *a = agent("e2e-stop", ep);
    char reason[512] = "";
    int stopped = 0;
    for (int64_t step = 10; step <= 2000 && !stopped; step += 10) {
        if (at_agent_snapshot_begin(a, step) == AT_OK) {
            publish(a, "fc", g, 200, 100, 0);
            at_agent_snapshot_end(a);
        }
        for (int k = 0; k < 10 && !stopped; k++) {
            mon_sleep(0.02);
            stopped = at_agent_should_stop(a, reason, sizeof reason);
        }
    }
    assert_true(stopped);
    assert_non_null(strstr(reason, "mean-alpha-below"));
    const cJSON *st = mon_wait_for(&m, "event", "stop", TIMEOUT);
    assert_non_null(st);
    assert_string_equal(mon_str(st, "rule"), "mean-alpha-below:100");
    assert_non_null(mon_wait_for(&m, "event", "ack", TIMEOUT));
    assert_int_equal(mon_finish(&m, TIMEOUT), 3);
    at_agent_free(a);
    free(g);
}

static void test_record_survives_sigkill(void **state)
{
    (void)state;
    char ep[256], log[256];
    mon_endpoint(ep, sizeof ep, "rec");
    snprintf(log, sizeof log, "/tmp/at-mon-rec-%d.atlog", (int)getpid());
    unlink(log);
    mon m;
    const char *args[] = {"watch", "--headless", "--record", log, "--listen", ep, NULL};
    assert_int_equal(mon_start(&m, args), 0);
    float *g1 = gauss(120, 60, 11), *g2 = gauss(80, 40, 12);
    at_agent *a = agent("e2e-rec", ep);
    for (int64_t step = 10; step <= 40; step += 10) {
        assert_int_equal(at_agent_snapshot_begin(a, step), AT_OK);
        publish(a, "fc1", g1, 120, 60, 0);
        publish(a, "fc2", g2, 80, 40, 0);
        assert_int_equal(at_agent_snapshot_end(a), AT_OK);
        at_agent_log(a, step, 1, (const char *[]){"loss"}, (double[]){1.0 / (double)step});
    }
    int layers = 0;
    while (layers < 8 && mon_wait_for(&m, "layer", NULL, TIMEOUT))
        layers++;
    assert_int_equal(layers, 8);
    while (mon_next(&m, 1.0))
        ;
    char *printed = strdup(m.text);
    /* The monitor dies without any chance to clean up. */
    kill(m.pid, SIGKILL);
    assert_int_equal(mon_finish(&m, TIMEOUT), 128 + SIGKILL);
    at_agent_free(a);

    char *replayed = NULL;
    const char *rargs[] = {"replay", "--headless", log, NULL};
    assert_int_equal(mon_run(rargs, &replayed, TIMEOUT), 0);
    assert_string_equal(replayed, printed);
    char *report = NULL;
    const char *pargs[] = {"report", log, NULL};
    assert_int_equal(mon_run(pargs, &report, TIMEOUT), 0);
    assert_non_null(strstr(report, "fc1"));
    assert_non_null(strstr(report, "fc2"));
    assert_non_null(strstr(report, "e2e-rec"));

    /* A torn last record (the monitor died inside a write) is dropped, nothing else. */
    struct stat sb;
    assert_int_equal(stat(log, &sb), 0);
    assert_int_equal(truncate(log, sb.st_size - 3), 0);
    char *torn = NULL;
    assert_int_equal(mon_run(rargs, &torn, TIMEOUT), 0);
    assert_int_equal(at_test_count_lines(torn), at_test_count_lines(printed) - 1);
    assert_int_equal(strncmp(torn, printed, strlen(torn)), 0);
    char *csv = NULL;
    const char *cargs[] = {"report", "--csv", log, NULL};
    assert_int_equal(mon_run(cargs, &csv, TIMEOUT), 0);
    assert_int_equal(strncmp(csv, "run,step,view,name,", 19), 0);
    assert_non_null(strstr(csv, "e2e-rec,10,w,fc1,"));
    free(csv);
    free(torn);
    free(report);
    free(replayed);
    free(printed);
    free(g1);
    free(g2);
    unlink(log);
}

static void test_delta_mode(void **state)
{
    (void)state;
    char ep[256];
    mon_endpoint(ep, sizeof ep, "delta");
    mon m;
    const char *args[] = {"watch", "--headless",      "--no-record", "--listen",
                          ep,      "--max-snapshots", "1",           NULL};
    assert_int_equal(mon_start(&m, args), 0);
    size_t n = 256 * 512;
    float *base = oracle("mlp_init_fc2", n), *delta = oracle("mlp_delta_fc2", n);
    float *w = malloc(n * sizeof *w), *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) {
        w[i] = base[i] + delta[i];
        d[i] = w[i] - base[i];
    }
    /* The trained fc2 is not in the oracle: init + delta in float32 gives the delta back. */
    assert_memory_equal(d, delta, n * sizeof *d);
    at_agent *a = agent("e2e-delta", ep);
    assert_int_equal(at_agent_snapshot_begin(a, 0), AT_OK);
    publish(a, "fc2", base, 256, 512, AT_AGENT_BASE);
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    assert_int_equal(at_agent_snapshot_begin(a, 100), AT_OK);
    publish(a, "fc2", w, 256, 512, 0);
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    int layers = 0;
    while (layers < 2 && mon_wait_for(&m, "layer", NULL, TIMEOUT))
        layers++;
    assert_int_equal(layers, 2);
    const cJSON *lw = find_layer(&m, "fc2", "w", 100), *ld = find_layer(&m, "fc2", "delta", 100);
    assert_non_null(lw);
    assert_non_null(ld);
    assert_rel(mon_num(lw, "alpha"), exact_alpha(w, 256, 512), 1e-12);
    assert_rel(mon_num(ld, "alpha"), exact_alpha(d, 256, 512), 1e-12);
    /* Exact mode reproduces the reference's fine-tune case live. */
    assert_oracle_row(ld, "mlp_delta_fc2");
    assert_rel(mon_num(ld, "alpha"), delta_check_alpha(), 1e-6);
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    at_agent_free(a);
    free(base);
    free(delta);
    free(w);
    free(d);
}

/* Fast mode goes through the scheduler: results say how they were computed, and the first
 * (a full float32 Gram spectrum) is close to exact. */
static void test_fast_mode(void **state)
{
    (void)state;
    char ep[256];
    mon_endpoint(ep, sizeof ep, "fast");
    mon m;
    const char *args[] = {"watch",    "--headless", "--no-record",     "--fast", "--threads", "2",
                          "--listen", ep,           "--max-snapshots", "1",      NULL};
    assert_int_equal(mon_start(&m, args), 0);
    float *orc = oracle("mlp_trained_fc1", 512 * 64);
    at_agent *a = agent("e2e-fast", ep);
    assert_int_equal(at_agent_snapshot_begin(a, 10), AT_OK);
    publish(a, "oracle", orc, 512, 64, 0);
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    const cJSON *l = mon_wait_for(&m, "layer", NULL, TIMEOUT);
    assert_non_null(l);
    assert_string_equal(mon_str(l, "mode"), "gram");
    assert_rel(mon_num(l, "alpha"), oracle_alpha("mlp_trained_fc1"), 1e-3);
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    at_agent_free(a);
    free(orc);
}

/* The demo runs the real C trainer into the monitor and ends it on the way out. */
static void test_demo_c_trainer(void **state)
{
    (void)state;
    char *out = NULL;
    const char *args[] = {"demo", "--headless",      "--trainer", "c", "--every",
                          "50",   "--max-snapshots", "2",         NULL};
    assert_int_equal(mon_run(args, &out, TIMEOUT), 0);
    cJSON *hello = NULL;
    int layers = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        layers += !strcmp(mon_str(o, "type"), "layer") && isfinite(mon_num(o, "alpha"));
        if (!hello && !strcmp(mon_str(o, "kind"), "hello"))
            hello = o;
        else
            cJSON_Delete(o);
    }
    assert_non_null(hello);
    assert_string_equal(mon_str(hello, "framework"), "c");
    assert_true(layers >= 2);
    /* The trainer was stopped and reaped: its pid no longer exists. */
    pid_t pid = (pid_t)mon_num(hello, "pid");
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), -1);
    cJSON_Delete(hello);
    free(out);
}

/* Writes w (rows x cols float32) as a version 1.0 .npy file. */
static void write_npy(const char *path, const float *w, int rows, int cols)
{
    char header[128];
    int n = snprintf(header, sizeof header,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols);
    int total = (10 + n + 1 + 63) / 64 * 64; /* magic, version, length, dict, '\n' */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned short hl = (unsigned short)(total - 10);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hl & 0xFF, f);
    fputc(hl >> 8, f);
    fputs(header, f);
    for (int i = 10 + n; i < total - 1; i++)
        fputc(' ', f);
    fputc('\n', f);
    assert_int_equal(fwrite(w, sizeof *w, (size_t)rows * (size_t)cols, f),
                     (size_t)rows * (size_t)cols);
    fclose(f);
}

/* --base CHECKPOINT: the delta view without the trainer sending its base; spectra recorded
 * for the view do not change what replay --headless prints. */
static void test_base_checkpoint(void **state)
{
    (void)state;
    char ep[256], dir[128], base_path[256], log[256];
    mon_endpoint(ep, sizeof ep, "base");
    snprintf(dir, sizeof dir, "/tmp/at-mon-base-%d", (int)getpid());
    mkdir(dir, 0755);
    snprintf(base_path, sizeof base_path, "%s/fc2.npy", dir);
    snprintf(log, sizeof log, "/tmp/at-mon-base-%d.atlog", (int)getpid());
    unlink(log);
    size_t n = 256 * 512;
    float *base = oracle("mlp_init_fc2", n), *delta = oracle("mlp_delta_fc2", n);
    float *w = malloc(n * sizeof *w), *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) {
        w[i] = base[i] + delta[i];
        d[i] = w[i] - base[i];
    }
    write_npy(base_path, base, 256, 512);
    mon m;
    const char *args[] = {"watch",  "--headless", "--record", log, "--record-spectra",
                          "--base", base_path,    "--listen", ep,  "--max-snapshots",
                          "1",      NULL};
    assert_int_equal(mon_start(&m, args), 0);
    at_agent *a = agent("e2e-base", ep);
    assert_int_equal(at_agent_snapshot_begin(a, 100), AT_OK);
    publish(a, "fc2", w, 256, 512, 0);
    assert_int_equal(at_agent_snapshot_end(a), AT_OK);
    int layers = 0;
    while (layers < 2 && mon_wait_for(&m, "layer", NULL, TIMEOUT))
        layers++;
    assert_int_equal(layers, 2);
    const cJSON *ld = find_layer(&m, "fc2", "delta", 100);
    assert_non_null(ld);
    assert_rel(mon_num(ld, "alpha"), exact_alpha(d, 256, 512), 1e-12);
    assert_oracle_row(ld, "mlp_delta_fc2");
    while (mon_next(&m, 1.0))
        ;
    char *printed = strdup(m.text);
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    char *replayed = NULL;
    const char *rargs[] = {"replay", "--headless", log, NULL};
    assert_int_equal(mon_run(rargs, &replayed, TIMEOUT), 0);
    assert_string_equal(replayed, printed);
    free(replayed);
    free(printed);
    at_agent_free(a);
    unlink(log);
    unlink(base_path);
    rmdir(dir);
    free(base);
    free(delta);
    free(w);
    free(d);
}

static void publish_kind(at_agent *a, const char *name, at_proto_kind kind, const float *w,
                         int64_t rows, int64_t cols)
{
    int64_t shape[2] = {rows, cols};
    assert_int_equal(at_agent_publish(a, name, kind, AT_PROTO_F32, 2, shape, w, 0), AT_OK);
}

/* LoRA adapters arrive as two halves; the pair is analysed as the update B A (delta view) from
 * its r singular values, exactly as at_lora_analyze does; rank 4 is too small for a fit. */
static void test_lora_live(void **state)
{
    (void)state;
    char ep[256];
    mon_endpoint(ep, sizeof ep, "lora");
    mon m;
    const char *args[] = {"watch", "--headless",      "--no-record", "--listen",
                          ep,      "--max-snapshots", "1",           NULL};
    assert_int_equal(mon_start(&m, args), 0);
    float *A = gauss(16, 64, 21), *B = gauss(128, 16, 22), *a4 = gauss(4, 64, 23),
          *b4 = gauss(128, 4, 24);
    at_agent *ag = agent("e2e-lora", ep);
    assert_int_equal(at_agent_snapshot_begin(ag, 10), AT_OK);
    publish_kind(ag, "fc.lora_A", AT_PROTO_KIND_LORA_A, A, 16, 64);
    publish_kind(ag, "g.lora_B", AT_PROTO_KIND_LORA_B, b4, 128, 4);
    publish_kind(ag, "fc.lora_B", AT_PROTO_KIND_LORA_B, B, 128, 16);
    publish_kind(ag, "g.lora_A", AT_PROTO_KIND_LORA_A, a4, 4, 64);
    assert_int_equal(at_agent_snapshot_end(ag), AT_OK);
    int layers = 0;
    while (layers < 2 && mon_wait_for(&m, "layer", NULL, TIMEOUT))
        layers++;
    assert_int_equal(layers, 2);
    const cJSON *lf = find_layer(&m, "fc.lora_BA", "delta", 10);
    const cJSON *lg = find_layer(&m, "g.lora_BA", "delta", 10);
    assert_non_null(lf);
    assert_non_null(lg);
    at_lora *lo = at_lora_new();
    at_tensor tb = {.data = B, .dtype = AT_DTYPE_F32, .ndim = 2, .shape = {128, 16}};
    at_tensor ta = {.data = A, .dtype = AT_DTYPE_F32, .ndim = 2, .shape = {16, 64}};
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    at_metrics want;
    assert_int_equal(at_lora_analyze(lo, &tb, &ta, 1.0, &o, &want), AT_OK);
    at_lora_free(lo);
    assert_rel(mon_num(lf, "alpha"), want.alpha, 1e-12);
    assert_int_equal((int)mon_num(lf, "N"), 128);
    assert_int_equal((int)mon_num(lf, "M"), 64);
    assert_string_equal(mon_str(lg, "status"), "skipped");
    assert_int_equal(mon_finish(&m, TIMEOUT), 0);
    at_agent_free(ag);
    free(A);
    free(B);
    free(a4);
    free(b4);
}

static void test_usage(void **state)
{
    (void)state;
    const char *a1[] = {"watch", "--bogus", NULL};
    assert_int_equal(mon_run(a1, NULL, TIMEOUT), 2);
    const char *a2[] = {"watch", "--headless", "--stop-on", "nonsense:1", NULL};
    assert_int_equal(mon_run(a2, NULL, TIMEOUT), 2);
    char *out = NULL;
    const char *a3[] = {"watch", "--help", NULL};
    assert_int_equal(mon_run(a3, &out, TIMEOUT), 0);
    assert_non_null(strstr(out, "--stop-on"));
    free(out);
    /* A run log that cannot be read is an input that could not be analysed (docs/cli.md). */
    const char *a4[] = {"replay", "--headless", "/nonexistent.atlog", NULL};
    assert_int_equal(mon_run(a4, NULL, TIMEOUT), 1);
    const char *a5[] = {"watch", "--headless", "--threads", "0", NULL};
    assert_int_equal(mon_run(a5, NULL, TIMEOUT), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_alpha_matches_exact),
        cmocka_unit_test(test_malformed_then_good),
        cmocka_unit_test(test_stop_rule_stops_trainer),
        cmocka_unit_test(test_record_survives_sigkill),
        cmocka_unit_test(test_delta_mode),
        cmocka_unit_test(test_base_checkpoint),
        cmocka_unit_test(test_lora_live),
        cmocka_unit_test(test_fast_mode),
        cmocka_unit_test(test_demo_c_trainer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
