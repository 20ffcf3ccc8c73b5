/* SPDX-License-Identifier: Apache-2.0 */
/* test_ingest.c -- the monitor's ingest (ingest.h) without ZeroMQ, threads or a forked binary:
 * hello / snapshot / goodbye bookkeeping, snapshots sent over several steps, incomplete ones
 * (what is missing and why) never reaching the trackers, closing in order, slices of sharded
 * layers assembled from two ranks, base weights and the delta jobs, LoRA pairing and its name
 * (the same as scan's), fast mode's sweeps; then the engine in-process on an injected message
 * source, where a --stop-on rule fires on the alpha at_htsr_analyze computes for the same
 * weights. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "alphatop/htsr.h"
#include "alphatop/rng.h"
#include "engine.h"
#include "exitcode.h"
#include "ingest.h"
#include "pair.h"
#include "testfiles.h"

/* ---- a rig: ingest with its hooks recording into arrays --------------------------------- */

typedef struct ev {
    int run, layer;
    at_record_kind kind;
    int64_t step, dropped;
    char layer_name[300], text[400];
} ev;

typedef struct rig {
    at_model *model;
    at_ingest *ing;
    at_job *jobs[256]; /* queued, in submission order */
    int njobs;
    int64_t idx_step, idx; /* the position the next layer of a snapshot gets */
    int refuse;            /* submit fails */
    ev evs[256];
    int nevs;    /* kept in evs */
    int nevents; /* every one */
    struct {
        int run, layer;
        at_space space;
        int64_t step;
    } feeds[256];
    int nfeeds;
    struct {
        int run;
        int64_t step;
        unsigned spaces;
    } closes[64];
    int ncloses;
} rig;

static int h_submit(void *ctx, at_job *job)
{
    rig *g = ctx;
    if (g->refuse || g->njobs == 256)
        return AT_ERR_NOMEM;
    g->jobs[g->njobs++] = job;
    return AT_OK;
}

static void h_event(void *ctx, int run, int layer, const at_record *rec)
{
    rig *g = ctx;
    assert_int_equal(rec->type, AT_RECORD_EVENT);
    /* every event names its run */
    assert_string_equal(rec->run ? rec->run : "", run >= 0 ? at_ingest_run_id(g->ing, run) : "");
    g->nevents++;
    if (g->nevs == 256)
        return; /* the tests of many runs count them only */
    ev *e = &g->evs[g->nevs++];
    e->run = run;
    e->layer = layer;
    e->kind = rec->u.event.kind;
    e->step = rec->step;
    e->dropped = rec->u.event.dropped;
    snprintf(e->layer_name, sizeof e->layer_name, "%s",
             rec->u.event.layer ? rec->u.event.layer : "");
    snprintf(e->text, sizeof e->text, "%s", rec->u.event.text);
}

static void h_feed(void *ctx, const at_job *job, int64_t step)
{
    rig *g = ctx;
    g->feeds[g->nfeeds].run = job->run;
    g->feeds[g->nfeeds].layer = job->layer;
    g->feeds[g->nfeeds].space = job->space;
    g->feeds[g->nfeeds++].step = step;
}

static void h_close(void *ctx, int run, int64_t step, unsigned spaces)
{
    rig *g = ctx;
    g->closes[g->ncloses].run = run;
    g->closes[g->ncloses].step = step;
    g->closes[g->ncloses++].spaces = spaces;
}

static rig *rig_new(const at_ingest_opts *o)
{
    rig *g = calloc(1, sizeof *g);
    g->model = at_model_new();
    at_ingest_hooks h = {
        .ctx = g, .submit = h_submit, .event = h_event, .feed = h_feed, .close = h_close};
    int st = -1;
    g->ing = at_ingest_new(o, &h, g->model, &st);
    assert_int_equal(st, AT_OK);
    assert_non_null(g->ing);
    return g;
}

static void rig_free(rig *g)
{
    for (int i = 0; i < g->njobs; i++)
        at_job_free(g->jobs[i]);
    at_ingest_free(g->ing);
    at_model_free(g->model);
    free(g);
}

/* The analysis of queued job i comes back with rc and status (alpha 3); it leaves the queue. */
static void finish(rig *g, int i, int rc, at_fit_status status)
{
    at_job *job = g->jobs[i];
    memmove(&g->jobs[i], &g->jobs[i + 1], (size_t)(g->njobs - i - 1) * sizeof *g->jobs);
    g->njobs--;
    job->rc = rc;
    at_metrics_init(&job->m, AT_MODE_EXACT);
    job->m.status = status;
    job->m.alpha = 3.0;
    at_ingest_result(g->ing, job);
    at_job_free(job);
}

/* ---- messages --------------------------------------------------------------------------- */

static at_proto_msg *msg_of(at_proto_type type, const char *run)
{
    static at_proto_msg m; /* large (the hello's tags): not on the stack */
    memset(&m, 0, sizeof m);
    m.version = AT_PROTO_VERSION;
    m.type = type;
    snprintf(m.run, sizeof m.run, "%s", run);
    return &m;
}

static int send_hello(rig *g, const char *run, int64_t pid)
{
    at_proto_msg *m = msg_of(AT_PROTO_HELLO, run);
    snprintf(m->u.hello.model, sizeof m->u.hello.model, "mlp");
    snprintf(m->u.hello.framework, sizeof m->u.hello.framework, "c");
    snprintf(m->u.hello.host, sizeof m->u.hello.host, "box");
    m->u.hello.pid = pid;
    m->u.hello.interval = 10;
    m->u.hello.world_size = 1;
    return at_ingest_msg(g->ing, m);
}

/* The next position of the snapshot at step (the tests number snapshots by their step). */
static int64_t next_index(rig *g, int64_t step)
{
    if (step != g->idx_step)
        g->idx = 0;
    g->idx_step = step;
    return g->idx++;
}

static int send_layer(rig *g, const char *run, int64_t step, const char *name, at_proto_kind kind,
                      int ndim, const int64_t *shape, const float *w, int base)
{
    at_proto_msg *m = msg_of(AT_PROTO_LAYER, run);
    at_proto_layer *l = &m->u.layer;
    l->step = l->first_step = step;
    l->seq = step;
    l->index = next_index(g, step);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->kind = kind;
    l->base = base;
    l->ndim = ndim;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        l->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    l->dtype = AT_PROTO_F32;
    l->nbytes = n * sizeof(float);
    l->data = w;
    return at_ingest_msg(g->ing, m);
}

static int send_linear(rig *g, const char *run, int64_t step, const char *name, int64_t rows,
                       int64_t cols, const float *w)
{
    int64_t shape[2] = {rows, cols};
    return send_layer(g, run, step, name, AT_PROTO_KIND_LINEAR, 2, shape, w, 0);
}

static void send_end(rig *g, const char *run, int64_t step, int64_t layers, int64_t dropped)
{
    at_proto_msg *m = msg_of(AT_PROTO_SNAPSHOT_END, run);
    m->u.snapshot_end.step = m->u.snapshot_end.first_step = step;
    m->u.snapshot_end.seq = step;
    m->u.snapshot_end.layers = m->u.snapshot_end.total = layers;
    m->u.snapshot_end.dropped = dropped;
    at_ingest_msg(g->ing, m);
}

/* n seeded standard normal values. Caller frees. */
static float *gauss(size_t n, uint64_t seed)
{
    float *w = malloc(n * sizeof *w);
    at_rng r;
    at_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        w[i] = (float)at_rng_normal(&r);
    return w;
}

static int count_kind(const rig *g, at_record_kind k)
{
    int n = 0;
    for (int i = 0; i < g->nevs; i++)
        n += g->evs[i].kind == k;
    return n;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_hello_snapshot_goodbye(void **state)
{
    (void)state;
    rig *g = rig_new(NULL);
    assert_int_equal(send_hello(g, "r1", 77), 0);
    at_run_info *ri = at_model_run(g->model, 0);
    assert_string_equal(ri->name, "mlp");
    assert_string_equal(ri->host, "box");
    assert_int_equal(ri->interval, 10);
    assert_int_equal(g->nevs, 1);
    assert_int_equal(g->evs[0].kind, AT_RECORD_EV_HELLO);
    assert_string_equal(g->evs[0].text,
                        "run r1 started: mlp (c) on box, pid 77, a snapshot every 10 steps");
    /* the agent repeats its hello after a reconnect: announced once; a new process again */
    send_hello(g, "r1", 77);
    assert_int_equal(g->nevs, 1);
    send_hello(g, "r1", 78);
    assert_int_equal(g->nevs, 2);
    /* a second run gets the next index */
    assert_int_equal(send_hello(g, "r2", 5), 1);
    assert_string_equal(at_ingest_run_id(g->ing, 1), "r2");
    assert_null(at_ingest_run_id(g->ing, 2));

    float *w1 = gauss(6 * 4, 1), *w2 = gauss(5 * 3, 2);
    /* conv1d (out, in, k) is analysed as conv2d (out, in, 1, k) */
    int64_t conv[3] = {5, 1, 3};
    assert_int_equal(send_linear(g, "r1", 10, "fc1", 6, 4, w1), 0);
    send_layer(g, "r1", 10, "conv", AT_PROTO_KIND_CONV1D, 3, conv, w2, 0);
    assert_int_equal(g->njobs, 2);
    const at_job *j = g->jobs[0];
    assert_int_equal(j->run, 0);
    assert_int_equal(j->layer, 0);
    assert_int_equal(j->space, AT_SPACE_W);
    assert_int_equal(j->step, 10);
    assert_null(j->base.data);
    assert_memory_equal(j->data, w1, 24 * sizeof(float));
    j = g->jobs[1];
    assert_int_equal(j->layer, 1);
    assert_int_equal(j->t.kind, AT_KIND_CONV2D);
    assert_int_equal(j->t.ndim, 4);
    assert_int_equal(j->t.shape[2], 1);
    assert_int_equal(j->t.shape[3], 3);
    assert_int_equal(at_model_num_layers(g->model, 0), 2);
    assert_int_equal(at_model_num_snapshots(g->model, 0), 1);
    assert_int_equal(at_model_snapshot_step(g->model, 0, 0), 10);

    /* the snapshot closes once it ended and each of its jobs came back; its results reach
     * the tracker then, together */
    send_end(g, "r1", 10, 2, 0);
    int done;
    double age;
    at_ingest_progress(g->ing, 1e12, &done, &age);
    assert_int_equal(done, 0);
    assert_true(age > 0);
    assert_int_equal(at_ingest_open_snapshots(g->ing), 1);
    finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    assert_int_equal(g->nfeeds, 0);
    assert_int_equal(g->ncloses, 0);
    at_ingest_progress(g->ing, 1e12, &done, &age);
    assert_int_equal(done, 1);
    finish(g, 0, AT_ERR_NONFINITE, AT_FIT_FAILED); /* an analysis error: nothing to feed */
    assert_int_equal(g->nfeeds, 1);
    assert_int_equal(g->feeds[0].step, 10);
    assert_int_equal(g->ncloses, 1);
    assert_int_equal(g->closes[0].run, 0);
    assert_int_equal(g->closes[0].step, 10);
    assert_int_equal(g->closes[0].spaces, 1u << AT_SPACE_W);
    at_ingest_progress(g->ing, 1e12, &done, &age);
    assert_int_equal(done, 2); /* none in flight: the last closed snapshot's */
    assert_true(age == 0);
    assert_int_equal(at_ingest_open_snapshots(g->ing), 0);

    /* an incomplete snapshot: said, with the layer missing, never fed */
    g->nevs = 0;
    send_linear(g, "r1", 20, "fc1", 6, 4, w1);
    send_end(g, "r1", 20, 2, 0);
    assert_int_equal(g->nevs, 1);
    assert_int_equal(g->evs[0].kind, AT_RECORD_EV_DROP);
    assert_int_equal(g->evs[0].dropped, -1);
    assert_int_equal(g->evs[0].step, 20);
    assert_string_equal(g->evs[0].text,
                        "snapshot 20 (step 20) is incomplete and is not judged as a whole: 1 of 2 "
                        "layers missing (conv): the trainer's end counts 2 layers but 1 arrived");
    finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    assert_int_equal(g->nfeeds, 1);
    assert_int_equal(g->ncloses, 1);
    /* the agent's drop count rising on scalars */
    at_proto_msg *m = msg_of(AT_PROTO_SCALARS, "r1");
    m->u.scalars.step = 25;
    m->u.scalars.dropped = 3;
    at_ingest_msg(g->ing, m);
    assert_int_equal(ri->step, 25);
    assert_int_equal(ri->dropped, 4); /* 3, and the incomplete one */
    assert_int_equal(g->evs[1].dropped, 3);
    assert_non_null(strstr(g->evs[1].text, "the trainer did not take 3 snapshots: the one before "
                                           "was still being sent"));
    m->u.scalars.dropped = 2; /* never lower */
    at_ingest_msg(g->ing, m);
    assert_int_equal(g->nevs, 2);

    m = msg_of(AT_PROTO_GOODBYE, "r1");
    m->u.goodbye.step = 40;
    m->u.goodbye.dropped = 3;
    at_ingest_msg(g->ing, m);
    assert_true(ri->ended);
    assert_int_equal(ri->step, 40);
    assert_int_equal(g->evs[2].kind, AT_RECORD_EV_GOODBYE);
    assert_int_equal(g->evs[2].dropped, 3);
    assert_int_equal(g->evs[2].step, 40);
    assert_string_equal(g->evs[2].text, "run r1 ended at step 40");
    /* a hello after the goodbye: the run is back */
    send_hello(g, "r1", 79);
    assert_false(ri->ended);
    free(w1);
    free(w2);
    rig_free(g);
}

/* A layer of snapshot seq at step, position index, from rank (2-D f32). */
static void send_at(rig *g, int64_t seq, int64_t step, int64_t index, int64_t rank,
                    const char *name, const int64_t *shape, const float *w)
{
    at_proto_msg *m = msg_of(AT_PROTO_LAYER, "r1");
    at_proto_layer *l = &m->u.layer;
    *l = (at_proto_layer){.step = step,
                          .first_step = step,
                          .seq = seq,
                          .index = index,
                          .rank = rank,
                          .ndim = 2,
                          .shape = {shape[0], shape[1]},
                          .dtype = AT_PROTO_F32,
                          .data = w};
    l->nbytes = (uint64_t)(shape[0] * shape[1]) * sizeof(float);
    snprintf(l->name, sizeof l->name, "%s", name);
    at_ingest_msg(g->ing, m);
}

static void end_at(rig *g, int64_t seq, int64_t first, int64_t step, int64_t layers, int64_t total,
                   int64_t rank)
{
    at_proto_msg *m = msg_of(AT_PROTO_SNAPSHOT_END, "r1");
    m->u.snapshot_end = (at_proto_snapshot_end){.step = step,
                                                .seq = seq,
                                                .layers = layers,
                                                .first_step = first,
                                                .total = total,
                                                .rank = rank};
    at_ingest_msg(g->ing, m);
}

/* The text of the last event of kind k; "" if none. */
static const char *last_text(const rig *g, at_record_kind k)
{
    for (int i = g->nevs - 1; i >= 0; i--)
        if (g->evs[i].kind == k)
            return g->evs[i].text;
    return "";
}

static const char *const abc[3] = {"a", "b", "c"};

/* A snapshot sent over several steps is one snapshot: one column (its first step), each job
 * with the step of its weights, judged whole once its end arrived. Snapshots close in order:
 * a later one whose jobs are done waits for the earlier one. */
static void test_rolling_snapshots(void **state)
{
    (void)state;
    rig *g = rig_new(NULL);
    send_hello(g, "r1", 1);
    float *w = gauss(16, 3);
    int64_t sh[2] = {4, 4};
    send_at(g, 0, 100, 0, 0, "a", sh, w);
    send_at(g, 0, 101, 1, 0, "b", sh, w);
    send_at(g, 0, 103, 2, 0, "c", sh, w);
    end_at(g, 0, 100, 103, 3, 3, 0);
    assert_int_equal(at_model_num_snapshots(g->model, 0), 1);
    assert_int_equal(g->njobs, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(g->jobs[i]->step, 100);
    assert_int_equal(g->jobs[1]->weights_step, 101);
    assert_int_equal(g->jobs[2]->weights_step, 103);
    for (int i = 0; i < 3; i++)
        send_at(g, 1, 200, i, 0, abc[i], sh, w);
    end_at(g, 1, 200, 200, 3, 3, 0);
    /* snapshot 1's jobs come back first: it waits for snapshot 0 */
    for (int i = 0; i < 3; i++)
        finish(g, 3, AT_OK, AT_FIT_SUCCESS);
    assert_int_equal(g->ncloses, 0);
    for (int i = 0; i < 3; i++)
        finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    assert_int_equal(g->ncloses, 2);
    assert_int_equal(g->closes[0].step, 100);
    assert_int_equal(g->closes[1].step, 200);
    assert_int_equal(g->nfeeds, 6);
    assert_int_equal(count_kind(g, AT_RECORD_EV_DROP), 0);
    /* a stale message of a closed snapshot is ignored */
    send_at(g, 0, 104, 2, 0, "c", sh, w);
    assert_int_equal(g->njobs, 0);
    free(w);
    rig_free(g);
}

/* What makes a snapshot incomplete, each said plainly; none reaches the trackers, and the next
 * complete one does. */
static void test_incomplete_snapshots(void **state)
{
    (void)state;
    rig *g = rig_new(NULL);
    send_hello(g, "r1", 1);
    float *w = gauss(16, 4);
    int64_t sh[2] = {4, 4};
    /* snapshot 0 sent fully, then one of snapshot 1's layers, then the trainer ends */
    for (int i = 0; i < 3; i++)
        send_at(g, 0, 10, i, 0, abc[i], sh, w);
    end_at(g, 0, 10, 10, 3, 3, 0);
    send_at(g, 1, 20, 0, 0, "a", sh, w);
    at_proto_msg *m = msg_of(AT_PROTO_GOODBYE, "r1");
    m->u.goodbye.step = 21;
    at_ingest_msg(g->ing, m);
    assert_string_equal(last_text(g, AT_RECORD_EV_DROP),
                        "snapshot 1 (step 20) is incomplete and is not judged as a whole: 2 of 3 "
                        "layers missing (b, c): the trainer ended the run before its end");
    while (g->njobs)
        finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    assert_int_equal(g->ncloses, 1); /* snapshot 0 only */
    assert_int_equal(g->closes[0].step, 10);
    assert_int_equal(g->nfeeds, 3);

    /* the trainer restarts (a new process) mid-snapshot: it numbers from 0 again */
    send_hello(g, "r1", 2);
    send_at(g, 0, 5, 0, 0, "a", sh, w);
    send_hello(g, "r1", 3);
    assert_non_null(
        strstr(last_text(g, AT_RECORD_EV_DROP), "the trainer restarted (a new process)"));
    /* a newer snapshot before an end; a monitor that started after the first layers; an end
     * counting more layers than arrived */
    send_at(g, 0, 30, 0, 0, "a", sh, w);
    send_at(g, 1, 40, 1, 0, "b", sh, w);
    assert_non_null(strstr(last_text(g, AT_RECORD_EV_DROP), "snapshot 1 began before its end"));
    end_at(g, 1, 40, 40, 1, 3, 0);
    assert_non_null(strstr(last_text(g, AT_RECORD_EV_DROP),
                           "2 of 3 layers missing (a, c): the monitor started after the trainer "
                           "had sent its first layers"));
    send_at(g, 2, 50, 0, 0, "a", sh, w);
    end_at(g, 2, 50, 50, 2, 2, 0);
    assert_non_null(
        strstr(last_text(g, AT_RECORD_EV_DROP), "the trainer's end counts 2 layers but 1 arrived"));
    /* the next one is fine */
    while (g->njobs)
        finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    int closes = g->ncloses, feeds = g->nfeeds, drops = count_kind(g, AT_RECORD_EV_DROP);
    for (int i = 0; i < 3; i++)
        send_at(g, 3, 60, i, 0, abc[i], sh, w);
    end_at(g, 3, 60, 60, 3, 3, 0);
    while (g->njobs)
        finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    assert_int_equal(g->ncloses, closes + 1);
    assert_int_equal(g->nfeeds, feeds + 3);
    assert_int_equal(g->closes[g->ncloses - 1].step, 60);
    assert_int_equal(count_kind(g, AT_RECORD_EV_DROP), drops);

    /* a layer left out by the trainer (skip): the snapshot is complete, said once per run */
    g->nevs = 0;
    for (int k = 4; k <= 5; k++) {
        send_at(g, k, 10 * k + 30, 0, 0, "a", sh, w);
        m = msg_of(AT_PROTO_SKIP, "r1");
        m->u.skip = (at_proto_skip){.step = 10 * k + 30, .seq = k, .index = 1, .nbytes = 1 << 30};
        snprintf(m->u.skip.name, sizeof m->u.skip.name, "emb");
        snprintf(m->u.skip.reason, sizeof m->u.skip.reason, "larger than the byte budget");
        at_ingest_msg(g->ing, m);
        at_proto_msg *e = msg_of(AT_PROTO_SNAPSHOT_END, "r1");
        e->u.snapshot_end = (at_proto_snapshot_end){.step = 10 * k + 30,
                                                    .seq = k,
                                                    .layers = 1,
                                                    .first_step = 10 * k + 30,
                                                    .total = 2,
                                                    .skipped = 1};
        at_ingest_msg(g->ing, e);
        while (g->njobs)
            finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    }
    assert_int_equal(count_kind(g, AT_RECORD_EV_DROP), 0);
    assert_int_equal(count_kind(g, AT_RECORD_EV_INFO), 1);
    assert_string_equal(g->evs[0].text, "emb is left out of every snapshot by the trainer "
                                        "(1073741824 bytes): larger than the byte budget");
    assert_int_equal(g->ncloses, closes + 3);

    /* the monitor stops with a snapshot open */
    send_at(g, 6, 100, 0, 0, "a", sh, w);
    at_ingest_finish(g->ing);
    assert_non_null(strstr(last_text(g, AT_RECORD_EV_DROP), "the monitor stopped"));
    free(w);
    rig_free(g);
}

/* One rank's slice of "fc" (rows) or "proj" (columns) in the snapshot of pass. */
static void send_slice(rig *g, int pass, int rank, int columns, const float *data)
{
    const int64_t R = 6, C = 4, step = 10 * (pass + 1);
    at_proto_msg *m = msg_of(AT_PROTO_LAYER, "r1");
    at_proto_layer *l = &m->u.layer;
    *l = (at_proto_layer){.step = step + (pass == 2 && rank == 1), /* pass 2: another step */
                          .first_step = step,
                          .seq = pass,
                          .index = columns,
                          .rank = rank,
                          .ndim = 2,
                          .shape = {columns ? R : 3, columns ? 2 : C},
                          .dtype = AT_PROTO_F32,
                          .nbytes = 48,
                          .sliced = 1,
                          .full_shape = {R, C},
                          .data = data};
    l->offset[columns] = pass == 3 && columns ? rank : (columns ? 2 : 3) * rank; /* 3: overlap */
    snprintf(l->name, sizeof l->name, "%s", columns ? "proj" : "fc");
    at_ingest_msg(g->ing, m);
}

/* Two ranks hold row and column slices of layers: each whole layer is assembled, byte for
 * byte, and analysed once; a missing slice, slices of different steps or overlapping ones
 * leave the snapshot incomplete, said plainly. */
static void test_slices(void **state)
{
    (void)state;
    rig *g = rig_new(NULL);
    const int64_t R = 6, C = 4;
    float *whole = gauss((size_t)(R * C), 5);
    float rows[2][12], cols[2][12];
    memcpy(rows[0], whole, sizeof rows[0]);
    memcpy(rows[1], whole + 12, sizeof rows[1]);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 2; k++)
                cols[k][i * 2 + j] = whole[i * C + 2 * k + j];
    for (int rank = 0; rank < 2; rank++) {
        at_proto_msg *m = msg_of(AT_PROTO_HELLO, "r1");
        m->u.hello.pid = 10 + rank;
        m->u.hello.rank = rank;
        m->u.hello.world_size = 2;
        m->u.hello.interval = 10;
        at_ingest_msg(g->ing, m);
    }
    for (int pass = 0; pass < 4; pass++) {
        const int64_t step = 10 * (pass + 1);
        for (int rank = 0; rank < 2; rank++) {
            if (pass == 1 && rank == 1)
                continue; /* rank 1's slices never arrive */
            send_slice(g, pass, rank, 0, rows[rank]);
            send_slice(g, pass, rank, 1, cols[rank]);
            if (rank == 0) {
                int64_t sh[2] = {R, C};
                send_at(g, pass, step, 2, 0, "head", sh, whole);
            }
            end_at(g, pass, step, step, rank ? 2 : 3, 3, rank);
        }
        if (pass == 1) /* rank 1 said nothing of snapshot 1: the next one settles it */
            assert_int_equal(count_kind(g, AT_RECORD_EV_DROP), 0);
        if (pass == 0) {
            assert_int_equal(g->njobs, 3);
            for (int i = 0; i < 3; i++) {
                assert_int_equal(g->jobs[i]->t.shape[0], R);
                assert_int_equal(g->jobs[i]->t.shape[1], C);
                assert_memory_equal(g->jobs[i]->data, whole, sizeof(float) * (size_t)(R * C));
            }
            assert_int_equal(at_model_num_layers(g->model, 0), 3);
        }
        while (g->njobs)
            finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    }
    assert_int_equal(g->ncloses, 1); /* snapshot 0 only */
    assert_int_equal(count_kind(g, AT_RECORD_EV_DROP), 3);
    const char *want[3] = {"fc: its slices do not cover it (a rank's slice is missing)",
                           "fc: its slices came from different steps (30 and 31)",
                           "proj: its slices overlap"};
    for (int i = 0, k = 0; i < g->nevs; i++)
        if (g->evs[i].kind == AT_RECORD_EV_DROP) {
            if (!strstr(g->evs[i].text, want[k]))
                fail_msg("drop %d: \"%s\" lacks \"%s\"", k, g->evs[i].text, want[k]);
            k++;
        }
    free(whole);
    rig_free(g);
}

/* Base weights from the trainer or a checkpoint: a second job on W - W_base. */
static void test_base_delta(void **state)
{
    (void)state;
    float *b1 = gauss(12, 6), *b2 = gauss(12, 7), *w = gauss(12, 8);
    const tf_tensor t[] = {{"fc2.weight", "F32", 2, {3, 4}, b2, 12 * sizeof(float), 0, 0}};
    tf_write_safetensors(tf_path("base.safetensors"), t, 1, 8, 0);
    at_ckpt *ck = at_ckpt_open(tf_path("base.safetensors"), NULL);
    assert_non_null(ck);
    at_ingest_opts o;
    at_ingest_opts_default(&o);
    o.base = ck;
    rig *g = rig_new(&o);
    int64_t shape[2] = {3, 4};
    send_layer(g, "r1", 0, "fc1", AT_PROTO_KIND_LINEAR, 2, shape, b1, 1);
    send_end(g, "r1", 0, 1, 0);
    assert_int_equal(g->njobs, 0);
    assert_int_equal(g->nevs, 1);
    assert_int_equal(g->evs[0].kind, AT_RECORD_EV_INFO);
    assert_string_equal(g->evs[0].layer_name, "fc1");
    assert_string_equal(
        g->evs[0].text,
        "fc1: base weights received; later snapshots are analysed as W and W - W_base");
    send_linear(g, "r1", 10, "fc1", 3, 4, w);
    send_linear(g, "r1", 10, "fc2.weight", 3, 4, w);
    send_linear(g, "r1", 10, "fc3", 3, 4, w);
    assert_int_equal(g->njobs, 5);
    /* fc1: W, then W - W_base with the trainer's base */
    assert_int_equal(g->jobs[0]->space, AT_SPACE_W);
    assert_null(g->jobs[0]->base.data);
    assert_int_equal(g->jobs[1]->space, AT_SPACE_DELTA);
    assert_int_equal(g->jobs[1]->layer, g->jobs[0]->layer);
    assert_int_equal(g->jobs[1]->base.ndim, 2);
    assert_int_equal(g->jobs[1]->base.shape[1], 4);
    assert_memory_equal(g->jobs[1]->base.data, b1, 12 * sizeof(float));
    assert_memory_equal(g->jobs[1]->data, w, 12 * sizeof(float));
    /* fc2: the checkpoint's base */
    assert_int_equal(g->jobs[3]->space, AT_SPACE_DELTA);
    assert_memory_equal(g->jobs[3]->base.data, b2, 12 * sizeof(float));
    /* fc3: no base, no delta */
    assert_int_equal(g->jobs[4]->space, AT_SPACE_W);
    assert_int_equal(g->jobs[4]->layer, 2);
    /* a snapshot of base weights only closes nothing; the next one is complete */
    send_end(g, "r1", 10, 3, 0);
    assert_int_equal(count_kind(g, AT_RECORD_EV_DROP), 0);
    assert_int_equal(g->ncloses, 0);
    /* results of both spaces close the snapshot with both trackers fed */
    while (g->njobs)
        finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    assert_int_equal(g->nfeeds, 5);
    assert_int_equal(g->ncloses, 1);
    assert_int_equal(g->closes[0].spaces, 1u << AT_SPACE_W | 1u << AT_SPACE_DELTA);
    rig_free(g);
    at_ckpt_close(ck);
    free(b1);
    free(b2);
    free(w);
}

/* The pair scan and diff call the adapter whose lora_A half is a_name in a checkpoint with its
 * lora_B half b_name: the partner's module name plus AT_PAIR_LORA_SUFFIX (scan.c, diff.c). */
static void scan_name(const char *a_name, const char *b_name, char *out, size_t cap)
{
    float z[4] = {0};
    const tf_tensor t[] = {{a_name, "F32", 2, {2, 2}, z, sizeof z, 0, 0},
                           {b_name, "F32", 2, {2, 2}, z, sizeof z, 0, 0}};
    tf_write_safetensors(tf_path("lora.safetensors"), t, 2, 8, 0);
    at_ckpt *c = at_ckpt_open(tf_path("lora.safetensors"), NULL);
    char module[256];
    int is_a = 0;
    assert_non_null(at_pair_lora_partner(c, a_name, &is_a, module, sizeof module));
    assert_true(is_a);
    assert_true((size_t)snprintf(out, cap, "%s%s", module, AT_PAIR_LORA_SUFFIX) < cap);
    at_ckpt_close(c);
}

static void test_lora_pairing(void **state)
{
    (void)state;
    /* The halves as a trainer sends them, as a checkpoint holds them (scan reads tensors whose
     * names end in "weight"), and the pair's one name: PEFT's names, plain names, a wrapper
     * prefix, and the last marker counting. */
    static const char *const names[][5] = {
        {"m.q_proj.lora_A.default.weight", "m.q_proj.lora_B.default.weight",
         "m.q_proj.lora_A.default.weight", "m.q_proj.lora_B.default.weight", "m.q_proj.lora_BA"},
        {"fc1.lora_A", "fc1.lora_B", "fc1.lora_A.weight", "fc1.lora_B.weight", "fc1.lora_BA"},
        {"base_model.model.fc.lora_A.weight", "base_model.model.fc.lora_B.weight",
         "base_model.model.fc.lora_A.weight", "base_model.model.fc.lora_B.weight",
         "base_model.model.fc.lora_BA"},
        {"lora_B_net.lora_A", "lora_B_net.lora_B", "lora_B_net.lora_A.weight",
         "lora_B_net.lora_B.weight", "lora_B_net.lora_BA"},
    };
    const int64_t r = 4, out = 5, in = 6;
    float *A = gauss((size_t)(r * in), 9), *B = gauss((size_t)(out * r), 10);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        rig *g = rig_new(NULL);
        int64_t sa[2] = {r, in}, sb[2] = {out, r};
        /* B first: the order of the halves does not matter */
        send_layer(g, "r1", 10, names[i][1], AT_PROTO_KIND_LORA_B, 2, sb, B, 0);
        assert_int_equal(g->njobs, 0);
        send_layer(g, "r1", 10, names[i][0], AT_PROTO_KIND_LORA_A, 2, sa, A, 0);
        assert_int_equal(g->njobs, 1);
        const at_job *j = g->jobs[0];
        assert_int_equal(j->space, AT_SPACE_DELTA);
        assert_int_equal(j->t.shape[0], out);
        assert_int_equal(j->t.shape[1], r);
        assert_memory_equal(j->t.data, B, (size_t)(out * r) * sizeof(float));
        assert_int_equal(j->lora_a.shape[0], r);
        assert_int_equal(j->lora_a.shape[1], in);
        assert_memory_equal(j->lora_a.data, A, (size_t)(r * in) * sizeof(float));
        const at_layer_info *li = at_model_layer(g->model, 0, j->layer);
        assert_string_equal(li->name, names[i][4]);
        assert_int_equal(li->shape[0], out);
        assert_int_equal(li->shape[1], in);
        /* watch and scan give the adapter one name */
        char scan[256], rule[256];
        scan_name(names[i][2], names[i][3], scan, sizeof scan);
        assert_string_equal(scan, names[i][4]);
        int is_a = -1;
        assert_true(at_pair_lora_name(names[i][1], rule, sizeof rule, &is_a) >= 0);
        assert_false(is_a);
        assert_string_equal(rule, names[i][4]);
        /* a LoRA pair counts as one snapshot's two layer messages */
        send_end(g, "r1", 10, 2, 0);
        assert_int_equal(count_kind(g, AT_RECORD_EV_DROP), 0);
        rig_free(g);
    }
    /* a name without a marker (the wire's kind says which half): the name is the module */
    char rule[64];
    assert_int_equal(at_pair_lora_name("adapter", rule, sizeof rule, NULL), -1);
    assert_string_equal(rule, "adapter.lora_BA");

    /* halves of different snapshots, or two A halves, do not pair */
    rig *g = rig_new(NULL);
    int64_t sa[2] = {r, in}, sb[2] = {out, r};
    send_layer(g, "r1", 10, "fc.lora_A", AT_PROTO_KIND_LORA_A, 2, sa, A, 0);
    send_layer(g, "r1", 20, "fc.lora_B", AT_PROTO_KIND_LORA_B, 2, sb, B, 0);
    send_layer(g, "r1", 30, "fc.lora_A", AT_PROTO_KIND_LORA_A, 2, sa, A, 0);
    send_layer(g, "r1", 30, "fc.lora_A", AT_PROTO_KIND_LORA_A, 2, sa, A, 0);
    assert_int_equal(g->njobs, 0);
    send_layer(g, "r1", 30, "fc.lora_B", AT_PROTO_KIND_LORA_B, 2, sb, B, 0);
    assert_int_equal(g->njobs, 1);
    assert_int_equal(g->jobs[0]->step, 30);
    rig_free(g);

    /* fast mode skips adapters and says so once */
    at_ingest_opts o;
    at_ingest_opts_default(&o);
    o.fast = 1;
    g = rig_new(&o);
    send_layer(g, "r1", 10, "fc.lora_A", AT_PROTO_KIND_LORA_A, 2, sa, A, 0);
    send_layer(g, "r1", 10, "fc.lora_B", AT_PROTO_KIND_LORA_B, 2, sb, B, 0);
    assert_int_equal(g->njobs, 0);
    assert_int_equal(g->nevs, 1);
    assert_string_equal(g->evs[0].text, "fc.lora_A: LoRA adapters are analysed in exact mode only");
    rig_free(g);
    free(A);
    free(B);
}

/* Fast mode: results are fed as they come; the trackers' snapshot closes when every layer of
 * the last complete snapshot has a result since the last close, at the newest step. */
static void test_fast_closing(void **state)
{
    (void)state;
    at_ingest_opts o;
    at_ingest_opts_default(&o);
    o.fast = 1;
    rig *g = rig_new(&o);
    float *w = gauss(16, 11);
    for (int64_t step = 10; step <= 30; step += 10) {
        send_linear(g, "r1", step, "a", 4, 4, w);
        send_linear(g, "r1", step, "b", 4, 4, w);
        send_end(g, "r1", step, 2, 0);
    }
    assert_int_equal(g->njobs, 6); /* the fake worker keeps them all */
    assert_int_equal(at_model_num_snapshots(g->model, 0), 3);
    assert_int_equal(at_ingest_open_snapshots(g->ing), 0); /* fast mode: closed on arrival */
    finish(g, 0, AT_OK, AT_FIT_SUCCESS);                   /* a@10 */
    assert_int_equal(g->nfeeds, 1);
    assert_int_equal(g->ncloses, 0);
    finish(g, 0, AT_OK, AT_FIT_SKIPPED); /* b@10: not fed, but a result: the sweep is done */
    assert_int_equal(g->nfeeds, 1);
    assert_int_equal(g->ncloses, 1);
    assert_int_equal(g->closes[0].step, 10);
    assert_int_equal(g->closes[0].spaces, 1u << AT_SPACE_W);
    at_job *late = g->jobs[1]; /* b@20, held back */
    memmove(&g->jobs[1], &g->jobs[2], 2 * sizeof *g->jobs);
    g->njobs--;
    finish(g, 2, AT_OK, AT_FIT_SUCCESS); /* b@30 */
    assert_int_equal(g->ncloses, 1);
    finish(g, 0, AT_OK, AT_FIT_SUCCESS); /* a@20, late: a and b have results again */
    assert_int_equal(g->ncloses, 2);
    assert_int_equal(g->closes[1].step, 30);
    late->rc = AT_OK;
    at_metrics_init(&late->m, AT_MODE_GRAM);
    late->m.status = AT_FIT_SUCCESS;
    late->space = AT_SPACE_DELTA;
    at_ingest_result(g->ing, late); /* an older step after a close: fed at the close's step */
    at_job_free(late);
    assert_int_equal(g->feeds[g->nfeeds - 1].step, 30);
    assert_int_equal(g->feeds[g->nfeeds - 1].space, AT_SPACE_DELTA);
    finish(g, 0, AT_OK, AT_FIT_SUCCESS); /* a@30: b still owes a result */
    assert_int_equal(g->ncloses, 2);
    int done;
    double age;
    at_ingest_progress(g->ing, 1e12, &done, &age);
    assert_true(age == 0);
    free(w);
    rig_free(g);
}

static void send_goodbye(rig *g, const char *run, int64_t step)
{
    at_proto_msg *m = msg_of(AT_PROTO_GOODBYE, run);
    m->u.goodbye.step = step;
    at_ingest_msg(g->ing, m);
}

/* Every distinct run id used to cost its place for good (30,000 short runs took 30,000 model
 * runs, each with its events): at most max_runs are held, the ended ones evicted oldest first,
 * so what the run table and the model hold stays the same however many come. */
static void test_many_short_runs(void **state)
{
    (void)state;
    rig *g = rig_new(NULL);
    const int nruns = 30000;
    char id[64];
    for (int i = 0; i < nruns; i++) {
        snprintf(id, sizeof id, "short-%d", i);
        assert_true(send_hello(g, id, i + 1) >= 0);
        send_goodbye(g, id, 5);
    }
    at_ingest_stats st;
    at_ingest_stats_get(g->ing, &st);
    assert_int_equal(st.runs, AT_INGEST_MAX_RUNS);
    assert_int_equal(st.runs_evicted, nruns - AT_INGEST_MAX_RUNS);
    assert_int_equal(st.runs_refused, 0);
    assert_int_equal(at_model_num_runs(g->model), AT_INGEST_MAX_RUNS);
    assert_true(at_model_num_events(g->model) <= AT_MODEL_MAX_EVENTS);
    /* a hello and a goodbye event each, all said */
    assert_int_equal(g->nevents, 2 * nruns);
    /* the table: the id map and one record per run held, about a kilobyte each */
    assert_true(st.table_bytes < (size_t)AT_INGEST_MAX_RUNS * 1024);
    print_message("run table %zu bytes for %d runs held of %d seen\n", st.table_bytes, st.runs,
                  nruns);
    /* the newest runs are held, found by id; the oldest gone */
    snprintf(id, sizeof id, "short-%d", nruns - 1);
    int last = at_ingest_find_run(g->ing, id);
    assert_true(last >= 0);
    assert_string_equal(at_model_run(g->model, last)->id, id);
    assert_true(at_model_run(g->model, last)->ended);
    assert_int_equal(at_ingest_find_run(g->ing, "short-0"), AT_ERR_NOTFOUND);
    snprintf(id, sizeof id, "short-%d", nruns - AT_INGEST_MAX_RUNS);
    assert_true(at_ingest_find_run(g->ing, id) >= 0);
    snprintf(id, sizeof id, "short-%d", nruns - AT_INGEST_MAX_RUNS - 1);
    assert_int_equal(at_ingest_find_run(g->ing, id), AT_ERR_NOTFOUND);
    rig_free(g);
}

/* Live runs are never evicted: past max_runs a new id is refused, counted, and said at most
 * once a second; an ended run makes room, the one that ended first among those with nothing
 * in flight, and the new run takes its model index with a clean history. */
static void test_live_runs_refused(void **state)
{
    (void)state;
    at_ingest_opts o;
    at_ingest_opts_default(&o);
    o.max_runs = 3;
    rig *g = rig_new(&o);
    assert_int_equal(send_hello(g, "a", 1), 0);
    assert_int_equal(send_hello(g, "b", 2), 1);
    assert_int_equal(send_hello(g, "c", 3), 2);
    g->nevs = 0;
    assert_int_equal(send_hello(g, "d", 4), AT_ERR_SIZE);
    assert_int_equal(send_hello(g, "e", 5), AT_ERR_SIZE);
    assert_int_equal(g->nevs, 1);
    assert_int_equal(g->evs[0].kind, AT_RECORD_EV_WARNING);
    assert_int_equal(g->evs[0].run, -1);
    assert_non_null(strstr(g->evs[0].text, "run d refused"));
    assert_non_null(strstr(g->evs[0].text, "at most 3 runs"));
    assert_non_null(strstr(g->evs[0].text, "--max-runs"));
    at_ingest_stats st;
    at_ingest_stats_get(g->ing, &st);
    assert_int_equal(st.runs_refused, 2);
    assert_int_equal(at_model_num_runs(g->model), 3);

    /* a ends first but its layer is still being analysed; b ends next with nothing due */
    float *w = gauss(8 * 4, 3);
    assert_int_equal(send_linear(g, "a", 10, "fc", 8, 4, w), 0);
    send_goodbye(g, "a", 10);
    assert_int_equal(at_model_add_event(g->model, 1, -1, 10, AT_EVENT_INFO, "b said this"), 0);
    send_goodbye(g, "b", 10);
    assert_int_equal(send_hello(g, "d", 4), 1); /* b's place */
    assert_string_equal(at_model_run(g->model, 1)->id, "d");
    assert_string_equal(at_ingest_run_id(g->ing, 1), "d");
    assert_false(at_model_run(g->model, 1)->ended);
    assert_int_equal(at_model_num_layers(g->model, 1), 0);
    assert_int_equal(at_ingest_find_run(g->ing, "b"), AT_ERR_NOTFOUND);
    assert_int_equal(send_hello(g, "e", 5), AT_ERR_SIZE);
    /* a's result comes back: now it may go */
    finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    assert_int_equal(send_hello(g, "e", 5), 0);
    assert_int_equal(at_model_num_layers(g->model, 0), 0);
    at_ingest_stats_get(g->ing, &st);
    assert_int_equal(st.runs_evicted, 2);
    assert_int_equal(st.runs, 3);
    /* b's events in the model stay, monitor-wide */
    const at_event *be = at_model_event(g->model, 0);
    assert_non_null(be);
    assert_string_equal(be->text, "b said this");
    assert_int_equal(be->run, -1);
    free(w);
    rig_free(g);
}

/* Anyone may send a stop_ack: one for a run not seen makes no run and no event here (the
 * engine counts it); one for a known run finds it. */
static void test_stop_ack_unknown_run(void **state)
{
    (void)state;
    rig *g = rig_new(NULL);
    at_proto_msg *m = msg_of(AT_PROTO_STOP_ACK, "ghost");
    snprintf(m->u.reason, sizeof m->u.reason, "no stop was sent");
    assert_int_equal(at_ingest_msg(g->ing, m), AT_ERR_NOTFOUND);
    assert_int_equal(at_model_num_runs(g->model), 0);
    assert_int_equal(at_ingest_find_run(g->ing, "ghost"), AT_ERR_NOTFOUND);
    assert_int_equal(g->nevs, 0);
    assert_int_equal(send_hello(g, "r", 1), 0);
    m = msg_of(AT_PROTO_STOP_ACK, "r");
    assert_int_equal(at_ingest_msg(g->ing, m), 0);
    assert_int_equal(at_model_num_runs(g->model), 1);
    rig_free(g);
}

/* The bytes the rig's queued jobs hold, told to ingest as the engine does, of budget. */
static void load(rig *g, int64_t budget)
{
    int64_t n = 0;
    for (int i = 0; i < g->njobs; i++)
        n += (int64_t)g->jobs[i]->bytes;
    at_ingest_set_load(g->ing, n, budget);
}

/* One run's huge layers used to fill the whole queue budget and keep every other run out: from
 * half the budget on, with another run active, a run holding its share is shed (its snapshot
 * incomplete, said why) while the other run's layers are still taken; once its jobs are back
 * it is taken again. */
static void test_fair_share(void **state)
{
    (void)state;
    const int64_t budget = 1 << 20;
    float *huge = gauss(256 * 256, 4), *small = gauss(16 * 16, 5);
    /* a run alone is never shed: it meets back-pressure at the whole budget, as before */
    rig *g = rig_new(NULL);
    send_hello(g, "solo", 1);
    for (int i = 0; i < 4; i++) {
        load(g, budget);
        send_linear(g, "solo", 10, "h", 256, 256, huge);
    }
    assert_int_equal(g->njobs, 4);
    rig_free(g);

    g = rig_new(NULL);
    send_hello(g, "big", 1);
    send_hello(g, "good", 2);
    const char *names[] = {"h0", "h1", "h2", "h3"};
    for (int i = 0; i < 4; i++) {
        load(g, budget);
        g->idx = i; /* the runs' layers interleave: each at its own position i */
        send_linear(g, "big", 10, names[i], 256, 256, huge); /* 256 KiB each */
        load(g, budget);
        g->idx = i;
        send_linear(g, "good", 10, names[i], 16, 16, small);
    }
    /* big: two layers (half the budget), then shed; good: all four */
    int big = 0, good = 0;
    for (int i = 0; i < g->njobs; i++) {
        big += g->jobs[i]->run == 0;
        good += g->jobs[i]->run == 1;
    }
    assert_int_equal(big, 2);
    assert_int_equal(good, 4);
    at_ingest_stats st;
    at_ingest_stats_get(g->ing, &st);
    assert_int_equal(st.layers_shed, 2);
    assert_int_equal(st.run_bytes_max, 2 * 256 * 256 * sizeof(float));
    send_end(g, "good", 10, 4, 0);
    g->nevs = 0;
    send_end(g, "big", 10, 4, 0);
    assert_int_equal(count_kind(g, AT_RECORD_EV_DROP), 1);
    assert_non_null(strstr(g->evs[0].text, "2 of 4 layers missing (h2, h3)"));
    assert_non_null(strstr(g->evs[0].text, "h2 was not analysed"));
    assert_non_null(strstr(g->evs[0].text, "its share"));
    /* good's snapshot is complete: its four results reach the tracker */
    for (int i = g->njobs - 1; i >= 0; i--)
        if (g->jobs[i]->run == 1)
            finish(g, i, AT_OK, AT_FIT_SUCCESS);
    assert_int_equal(g->nfeeds, 4);
    assert_int_equal(g->ncloses, 1);
    assert_int_equal(g->closes[0].run, 1);
    /* big's results back: it holds nothing, its next layer is taken whatever the load */
    while (g->njobs)
        finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    at_ingest_set_load(g->ing, budget, budget);
    send_linear(g, "big", 20, "h0", 256, 256, huge);
    assert_int_equal(g->njobs, 1);
    free(huge);
    free(small);
    rig_free(g);
}

/* Snapshots in flight are shared too: while another run is active, a run with max_open
 * snapshots in flight has its next one not taken (said once, counted, its later messages
 * ignored); the other run's are; a run alone waits as before. */
static void test_fair_snapshots(void **state)
{
    (void)state;
    at_ingest_opts o;
    at_ingest_opts_default(&o);
    o.max_open = 2;
    float *w = gauss(8 * 4, 8);
    rig *g = rig_new(&o);
    send_hello(g, "solo", 1);
    for (int64_t step = 10; step <= 40; step += 10) { /* complete, their jobs not back */
        send_linear(g, "solo", step, "fc", 8, 4, w);
        send_end(g, "solo", step, 1, 0);
    }
    assert_int_equal(at_ingest_open_snapshots(g->ing), 4);
    assert_int_equal(at_ingest_open_cap(g->ing), 2); /* the engine stops reading: back-pressure */
    rig_free(g);

    g = rig_new(&o);
    send_hello(g, "slow", 1);
    send_hello(g, "other", 2);
    send_linear(g, "slow", 10, "fc", 8, 4, w);
    send_end(g, "slow", 10, 1, 0);
    send_linear(g, "slow", 20, "fc", 8, 4, w);
    send_end(g, "slow", 20, 1, 0);
    g->nevs = 0;
    send_linear(g, "slow", 30, "fc", 8, 4, w);
    assert_int_equal(g->njobs, 2);
    assert_int_equal(g->nevs, 1);
    assert_int_equal(g->evs[0].kind, AT_RECORD_EV_DROP);
    assert_non_null(strstr(g->evs[0].text, "snapshot 30 (step 30) is not analysed"));
    assert_non_null(strstr(g->evs[0].text, "2 snapshots of this run"));
    send_end(g, "slow", 30, 1, 0); /* ignored: no event, nothing opened */
    assert_int_equal(g->nevs, 1);
    assert_int_equal(at_ingest_open_snapshots(g->ing), 2);
    assert_int_equal(at_ingest_open_cap(g->ing), 4);
    send_linear(g, "other", 10, "fc", 8, 4, w);
    assert_int_equal(g->njobs, 3);
    at_ingest_stats st;
    at_ingest_stats_get(g->ing, &st);
    assert_int_equal(st.snapshots_shed, 1);
    assert_int_equal(at_model_run(g->model, 0)->dropped, 1);
    free(w);
    rig_free(g);
}

/* A trainer gone without its end and goodbye (its agent gave up flushing) used to hold its
 * snapshot in flight for good; enough such runs stopped the monitor reading. Told gone, its
 * snapshot is reported incomplete and closes, and the run may be evicted like an ended one;
 * a run that speaks again is live again. */
static void test_run_gone(void **state)
{
    (void)state;
    at_ingest_opts o;
    at_ingest_opts_default(&o);
    o.max_runs = 1;
    rig *g = rig_new(&o);
    float *w = gauss(8 * 4, 9);
    send_hello(g, "v", 1);
    send_linear(g, "v", 10, "fc", 8, 4, w);
    assert_int_equal(at_ingest_open_snapshots(g->ing), 1);
    assert_int_equal(send_hello(g, "next", 2), AT_ERR_SIZE); /* v is live */
    g->nevs = 0;
    at_ingest_run_gone(g->ing, 0, "the trainer's connection closed before its end arrived");
    assert_int_equal(at_ingest_open_snapshots(g->ing), 0);
    assert_int_equal(count_kind(g, AT_RECORD_EV_DROP), 1);
    assert_non_null(strstr(g->evs[0].text, "connection closed before its end"));
    at_ingest_run_gone(g->ing, 0, "again"); /* once */
    assert_int_equal(g->nevs, 1);
    assert_int_equal(send_hello(g, "next", 2), AT_ERR_SIZE); /* its job is not back yet */
    finish(g, 0, AT_OK, AT_FIT_SUCCESS);
    assert_int_equal(send_hello(g, "next", 2), 0); /* v evicted */
    assert_int_equal(at_ingest_find_run(g->ing, "v"), AT_ERR_NOTFOUND);
    /* a gone run that speaks again is not evicted */
    at_ingest_run_gone(g->ing, 0, "gone");
    send_hello(g, "next", 3);
    assert_int_equal(send_hello(g, "third", 4), AT_ERR_SIZE);
    free(w);
    rig_free(g);
}

/* ---- the engine in-process -------------------------------------------------------------- */

/* A message source over an array; stop, pause and resume requests are recorded. */
typedef struct src {
    at_proto_msg *msgs;
    int n, next;
    int stops;
    char stop_run[128], reason[1024];
    int cannot_pause; /* the source has no pause */
    int pauses;       /* pause and resume requests */
    int paused;       /* the last one's wish */
    at_model *model;  /* the engine's, for the conditions of step_until */
} src;

static int src_next(void *ctx, const at_proto_msg **msg, at_proto_error *err)
{
    src *s = ctx;
    (void)err;
    if (s->next == s->n)
        return AT_ERR_AGAIN;
    *msg = &s->msgs[s->next++];
    return AT_OK;
}

static int src_stop(void *ctx, const char *run, const char *reason)
{
    src *s = ctx;
    s->stops++;
    snprintf(s->stop_run, sizeof s->stop_run, "%s", run);
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    return AT_OK;
}

static int src_pause(void *ctx, const char *run, int paused)
{
    src *s = ctx;
    assert_string_equal(run, "in-process");
    s->pauses++;
    s->paused = paused;
    return AT_OK;
}

/* The next message of s: type t of run (room for it was allocated). */
static at_proto_msg *push_for(src *s, at_proto_type t, const char *run)
{
    at_proto_msg *m = &s->msgs[s->n++];
    memset(m, 0, sizeof *m);
    m->type = t;
    snprintf(m->run, sizeof m->run, "%s", run);
    return m;
}

/* The next message of s: type t of the run "in-process" (room for it was allocated). */
static at_proto_msg *push(src *s, at_proto_type t)
{
    return push_for(s, t, "in-process");
}

/* A hello of run from process pid: a snapshot every 10 steps, world size 1. */
static void push_hello(src *s, const char *run, int64_t pid)
{
    at_proto_hello *h = &push_for(s, AT_PROTO_HELLO, run)->u.hello;
    h->pid = pid;
    h->interval = 10;
    h->world_size = 1;
}

/* Position index of snapshot seq (at step 10 seq) of run: rows x cols of w, named
 * "layerINDEX". Returns the message's layer, for a test to rename it. */
static at_proto_layer *push_layer(src *s, const char *run, int64_t seq, int64_t index, int64_t rows,
                                  int64_t cols, const float *w)
{
    at_proto_layer *l = &push_for(s, AT_PROTO_LAYER, run)->u.layer;
    l->step = l->first_step = 10 * seq;
    l->seq = seq;
    l->index = index;
    snprintf(l->name, sizeof l->name, "layer%lld", (long long)index);
    l->ndim = 2;
    l->shape[0] = rows;
    l->shape[1] = cols;
    l->nbytes = (uint64_t)(rows * cols) * sizeof(float);
    l->data = w;
    return l;
}

/* The end of snapshot seq (at step 10 seq) of run, whose n layers were all sent. */
static void push_end(src *s, const char *run, int64_t seq, int64_t n)
{
    at_proto_snapshot_end *e = &push_for(s, AT_PROTO_SNAPSHOT_END, run)->u.snapshot_end;
    e->step = e->first_step = 10 * seq;
    e->seq = seq;
    e->layers = e->total = n;
}

/* hello, then steps 10 .. 10 * nsnap with the layer w (rows x cols) and a snapshot_end; one
 * slot is left for a test to add a message. */
static void script(src *s, const float *w, int64_t rows, int64_t cols, int nsnap)
{
    s->msgs = calloc((size_t)(1 + 2 * nsnap + 1), sizeof *s->msgs);
    push_hello(s, "in-process", 1);
    for (int k = 1; k <= nsnap; k++) {
        at_proto_layer *l = push_layer(s, "in-process", k, 0, rows, cols, w);
        snprintf(l->name, sizeof l->name, "fc1");
        push_end(s, "in-process", k, 1);
    }
}

/* Steps e until until(e, s) holds or 60 s pass. */
static void step_until(at_engine *e, src *s, int (*until)(at_engine *, src *))
{
    for (int i = 0; i < 6000 && !until(e, s); i++) {
        zmq_pollitem_t items[4];
        int n = at_engine_pollitems(e, items, 4);
        assert_int_equal(n, 1); /* the worker only: no socket */
        zmq_poll(items, n, 10);
        at_engine_step(e);
    }
    assert_true(until(e, s));
}

static int stopped(at_engine *e, src *s)
{
    (void)e;
    return s->stops > 0;
}

static int finished(at_engine *e, src *s)
{
    (void)s;
    return at_engine_done(e);
}

/* An engine on the scripted source s (with its pause unless s->cannot_pause) into model m, with
 * the caller's options o; the source, the JSON lines into out (NULL: none) and no run log nor
 * notes are set here. Fails the test when it cannot be made. Caller owns return value. */
static at_engine *engine_with(src *s, const at_engine_opts *o, FILE *out, at_model *m)
{
    at_engine_source es = {
        .ctx = s, .next = src_next, .stop = src_stop, .pause = s->cannot_pause ? NULL : src_pause};
    at_engine_opts opts = *o;
    opts.source = &es;
    opts.json_out = out;
    opts.record = "-";
    opts.notes = NULL;
    char err[256] = "";
    at_engine *e = at_engine_new(&opts, m, err, sizeof err);
    if (!e)
        fail_msg("engine: %s", err);
    assert_string_equal(at_engine_endpoint(e), "");
    return e;
}

/* engine_with the stop rule (NULL: none) and --max-snapshots 5. */
static at_engine *engine_on(src *s, const char *rule, FILE *out, at_model *m)
{
    at_engine_opts o;
    at_engine_opts_default(&o);
    o.rules = &rule;
    o.n_rules = rule ? 1 : 0;
    o.max_snapshots = 5;
    return engine_with(s, &o, out, m);
}

/* The JSON lines an engine wrote to a file, read back one record at a time. */
typedef struct lines {
    FILE *out;
    at_record_decoder *d;
    char line[8192];
} lines;

/* Rewinds out and reads it from the start. */
static void lines_open(lines *l, FILE *out)
{
    rewind(out);
    l->out = out;
    l->d = at_record_decoder_new(NULL);
    assert_non_null(l->d);
}

/* The next line decoded into r, whose strings are l's until the next call (every line must
 * decode); 0 after the last line. */
static int lines_next(lines *l, at_record *r)
{
    if (!fgets(l->line, sizeof l->line, l->out))
        return 0;
    assert_int_equal(at_record_decode(l->d, l->line, strlen(l->line), r), AT_OK);
    return 1;
}

/* Frees the decoder and closes the file. */
static void lines_close(lines *l)
{
    at_record_decoder_free(l->d);
    fclose(l->out);
}

static void test_engine_stop_rule(void **state)
{
    (void)state;
    const int64_t rows = 120, cols = 60;
    float *w = gauss((size_t)(rows * cols), 12);
    at_htsr *h = at_htsr_new();
    at_htsr_opts ho;
    at_htsr_opts_default(&ho);
    at_tensor t = {.data = w, .dtype = AT_DTYPE_F32, .ndim = 2, .shape = {rows, cols}};
    at_metrics ref;
    assert_int_equal(at_htsr_analyze(h, &t, &ho, &ref), AT_OK);
    at_htsr_free(h);
    assert_int_equal(ref.status, AT_FIT_SUCCESS);

    /* the rule holds (mean alpha = this layer's alpha < X) for 3 snapshots: fires at step 30 */
    char rule[64], want[512];
    snprintf(rule, sizeof rule, "mean-alpha-below:%g", ref.alpha + 0.01);
    src s = {0};
    script(&s, w, rows, cols, 5);
    FILE *out = tmpfile();
    at_model *m = at_model_new();
    at_engine *e = engine_on(&s, rule, out, m);
    step_until(e, &s, stopped);
    assert_string_equal(s.stop_run, "in-process");
    snprintf(want, sizeof want,
             "alphatop --stop-on %s: mean alpha %.3f below %s for 3 snapshots in a row", rule,
             ref.alpha, rule + strlen("mean-alpha-below:"));
    assert_string_equal(s.reason, want);
    assert_int_equal(at_engine_exit_code(e), AT_EXIT_STOPPED);
    assert_true(at_model_run(m, 0)->stop_requested);
    assert_false(at_engine_done(e)); /* waiting for the acknowledgement */
    at_proto_msg ack = {.type = AT_PROTO_STOP_ACK};
    snprintf(ack.run, sizeof ack.run, "in-process");
    snprintf(ack.u.reason, sizeof ack.u.reason, "ok");
    s.msgs[s.n++] = ack; /* the script left one slot */
    step_until(e, &s, finished);
    assert_int_equal(s.stops, 1);
    at_engine_free(e);

    /* the JSON lines: every layer line has the reference's alpha, the stop event its step */
    int layers = 0, stops = 0, acks = 0;
    lines l;
    lines_open(&l, out);
    at_record r;
    while (lines_next(&l, &r)) {
        if (r.type == AT_RECORD_LAYER) {
            layers++;
            assert_string_equal(r.u.layer.name, "fc1");
            if (!(fabs(r.u.layer.m.alpha - ref.alpha) <= 1e-12 * ref.alpha))
                fail_msg("alpha %.17g, reference %.17g", r.u.layer.m.alpha, ref.alpha);
        } else if (r.type == AT_RECORD_EVENT && r.u.event.kind == AT_RECORD_EV_STOP) {
            stops++;
            assert_int_equal(r.step, 30);
            assert_string_equal(r.u.event.rule, rule);
        } else if (r.type == AT_RECORD_EVENT && r.u.event.kind == AT_RECORD_EV_ACK) {
            acks++;
        }
    }
    assert_true(layers >= 3);
    assert_int_equal(stops, 1);
    assert_int_equal(acks, 1);
    lines_close(&l);
    at_model_free(m);
    free(s.msgs);

    /* X just below the alpha: the rule never holds; --max-snapshots 5 ends the run, exit 0 */
    snprintf(rule, sizeof rule, "mean-alpha-below:%g", ref.alpha - 0.01);
    memset(&s, 0, sizeof s);
    script(&s, w, rows, cols, 5);
    m = at_model_new();
    e = engine_on(&s, rule, NULL, m);
    step_until(e, &s, finished);
    assert_int_equal(s.stops, 0);
    assert_int_equal(at_engine_exit_code(e), AT_EXIT_OK);
    assert_int_equal(at_model_num_snapshots(m, 0), 5);
    const at_cell *c = at_model_cell(m, 0, 0, AT_SPACE_W, 4);
    assert_true(c->v[AT_METRIC_ALPHA] == (float)ref.alpha);
    at_engine_free(e);
    at_model_free(m);
    free(s.msgs);
    free(w);
}

static int drained(at_engine *e, src *s)
{
    (void)e;
    return s->next == s->n;
}

/* p in the view: the trainer is asked to pause, the run shows it, a pause event is written; a
 * hello of the paused run is answered with pause again; goodbye ends the pause; an ended run,
 * a bad run and a source that cannot pause are refused. */
static void test_engine_pause(void **state)
{
    (void)state;
    src s = {0};
    s.msgs = calloc(8, sizeof *s.msgs);
    push(&s, AT_PROTO_HELLO)->u.hello.interval = 10;
    FILE *out = tmpfile();
    at_model *m = at_model_new();
    at_engine *e = engine_on(&s, NULL, out, m);
    step_until(e, &s, drained);
    assert_int_equal(at_model_num_runs(m), 1);
    at_model_run(m, 0)->step = 120;

    assert_int_equal(at_engine_pause(e, 0, 1), AT_OK);
    assert_int_equal(s.pauses, 1);
    assert_int_equal(s.paused, 1);
    assert_int_equal(at_model_run(m, 0)->paused, 1);
    push(&s, AT_PROTO_HELLO)->u.hello.interval = 10; /* the agent reconnected */
    step_until(e, &s, drained);
    assert_int_equal(s.pauses, 2);
    assert_int_equal(s.paused, 1);
    assert_int_equal(at_engine_pause(e, 0, 0), AT_OK);
    assert_int_equal(s.pauses, 3);
    assert_int_equal(s.paused, 0);
    assert_int_equal(at_model_run(m, 0)->paused, 0);
    push(&s, AT_PROTO_HELLO)->u.hello.interval = 10; /* not paused: nothing sent */
    step_until(e, &s, drained);
    assert_int_equal(s.pauses, 3);

    assert_int_equal(at_engine_pause(e, 0, 1), AT_OK);
    push(&s, AT_PROTO_GOODBYE);
    step_until(e, &s, drained);
    assert_int_equal(at_model_run(m, 0)->paused, 0);
    assert_int_equal(at_engine_pause(e, 0, 1), AT_ERR_STATE);
    assert_int_equal(at_engine_pause(e, 1, 1), AT_ERR_ARG);
    assert_int_equal(s.pauses, 4);
    at_engine_free(e);

    /* the events, in order, at the run's step */
    const char *want[] = {"pause", "resume", "pause"};
    int n = 0;
    lines l;
    lines_open(&l, out);
    at_record r;
    while (lines_next(&l, &r)) {
        if (r.type != AT_RECORD_EVENT ||
            (r.u.event.kind != AT_RECORD_EV_PAUSE && r.u.event.kind != AT_RECORD_EV_RESUME))
            continue;
        assert_true(n < 3);
        assert_string_equal(at_record_kind_name(r.u.event.kind), want[n++]);
        assert_string_equal(r.run, "in-process");
        assert_int_equal(r.step, 120);
    }
    assert_int_equal(n, 3);
    lines_close(&l);
    at_model_free(m);
    free(s.msgs);

    /* a source that cannot pause: an error event, the run stays as it was */
    memset(&s, 0, sizeof s);
    s.cannot_pause = 1;
    s.msgs = calloc(1, sizeof *s.msgs);
    push(&s, AT_PROTO_HELLO)->u.hello.interval = 10;
    m = at_model_new();
    e = engine_on(&s, NULL, NULL, m);
    step_until(e, &s, drained);
    assert_int_equal(at_engine_pause(e, 0, 1), AT_ERR_UNSUPPORTED);
    assert_int_equal(at_model_run(m, 0)->paused, 0);
    at_engine_step(e);
    int errors = 0;
    for (int i = 0; i < at_model_num_events(m); i++)
        errors += at_model_event(m, i)->kind == AT_EVENT_ERROR &&
                  strstr(at_model_event(m, i)->text, "could not pause the snapshots of run");
    assert_int_equal(errors, 1);
    at_engine_free(e);
    at_model_free(m);
    free(s.msgs);
}

/* Every layer of the three snapshots of the run "good" has its result in the model. */
static int good_analysed(at_engine *e, src *s)
{
    (void)e;
    int g = at_model_find_run(s->model, "good");
    for (int col = 0; col < 3; col++)
        for (int l = 0; l < 6; l++) {
            const at_cell *c = at_model_cell(s->model, g, l, AT_SPACE_W, col);
            if (!c || c->status == AT_CELL_EMPTY)
                return 0;
        }
    return 1;
}

/* A trainer sending huge layers used to fill the analysis queue (queue_bytes) so the engine
 * stopped reading, and every other trainer waited behind it (over a socket: its agent then
 * dropped snapshots). Now the hog's layers past its share are shed, the good run's messages
 * are all read at once, interleaved as ZeroMQ's fair queueing delivers them, its layers are
 * analysed ahead of the hog's queued ones, and all three of its snapshots whole. */
static void test_engine_fair(void **state)
{
    (void)state;
    const int64_t big = 512, small = 32;
    float *hw = gauss((size_t)(big * big), 6), *gw = gauss((size_t)(small * small), 7);
    src s = {0};
    s.msgs = calloc(64, sizeof *s.msgs);
    const char *runs[2] = {"hog", "good"};
    for (int r = 0; r < 2; r++)
        push_hello(&s, runs[r], r + 1);
    for (int64_t seq = 1; seq <= 3; seq++) {
        for (int64_t i = 0; i < 6; i++) {
            push_layer(&s, "hog", seq, i, big, big, hw); /* 1 MiB each */
            push_layer(&s, "good", seq, i, small, small, gw);
        }
        for (int r = 0; r < 2; r++)
            push_end(&s, runs[r], seq, 6);
    }
    at_engine_opts o;
    at_engine_opts_default(&o);
    o.threads = 1;
    o.queue_bytes = 16 << 20; /* the hog gets 8 layers in before it is over its share */
    FILE *out = tmpfile();
    s.model = at_model_new();
    at_engine *e = engine_with(&s, &o, out, s.model);
    at_engine_step(e);
    assert_int_equal(s.next, s.n); /* nothing left unread */
    step_until(e, &s, good_analysed);
    at_engine_free(e);

    /* the hog's snapshots are incomplete, said why; none of the good run's is */
    int hog_drops = 0, good_drops = 0, hog_layers = 0, good_layers = 0, hog_first = 0;
    lines l;
    lines_open(&l, out);
    at_record r;
    while (lines_next(&l, &r)) {
        if (r.type == AT_RECORD_LAYER) {
            hog_layers += !strcmp(r.run, "hog");
            good_layers += !strcmp(r.run, "good");
            if (good_layers == 18 && !strcmp(r.run, "good"))
                hog_first = hog_layers;
        }
        if (r.type != AT_RECORD_EVENT || r.u.event.kind != AT_RECORD_EV_DROP)
            continue;
        if (!strcmp(r.run, "hog") && strstr(r.u.event.text, "its share"))
            hog_drops++;
        good_drops += !strcmp(r.run, "good");
    }
    assert_true(hog_drops >= 1);
    assert_int_equal(good_drops, 0);
    /* the analysis was shared: the good run's 18 small layers did not wait for the hog's
     * queued huge ones, only for the one or two handed out before them */
    assert_int_equal(good_layers, 18);
    assert_true(hog_first <= 2);
    lines_close(&l);
    at_model_free(s.model);
    free(s.msgs);
    free(hw);
    free(gw);
}

/* A stop_ack no stop was sent for, for a run never seen, used to make that run (and an ack
 * for it): now it makes none, and is counted and said once as a warning. */
static void test_engine_unsolicited_ack(void **state)
{
    (void)state;
    src s = {0};
    s.msgs = calloc(2, sizeof *s.msgs);
    snprintf(push_for(&s, AT_PROTO_STOP_ACK, "ghost")->u.reason, sizeof s.msgs[0].u.reason,
             "forged");
    at_engine_opts o;
    at_engine_opts_default(&o);
    o.threads = 1;
    FILE *out = tmpfile();
    at_model *m = at_model_new();
    at_engine *e = engine_with(&s, &o, out, m);
    at_engine_step(e);
    assert_int_equal(s.next, s.n);
    assert_int_equal(at_model_num_runs(m), 0);
    assert_int_equal(at_model_num_events(m), 1);
    const at_event *w = at_model_event(m, 0);
    assert_int_equal(w->run, -1);
    assert_int_equal(w->kind, AT_EVENT_WARNING);
    assert_non_null(strstr(w->text, "run ghost"));
    assert_non_null(strstr(w->text, "no run made"));
    volatile int stop = 1;
    at_engine_run(e, &stop); /* writes the stats line */
    at_engine_free(e);
    int stats = 0;
    lines l;
    lines_open(&l, out);
    at_record r;
    while (lines_next(&l, &r)) {
        assert_true(r.type != AT_RECORD_EVENT || r.u.event.kind != AT_RECORD_EV_ACK);
        if (r.type == AT_RECORD_STATS) {
            stats++;
            assert_int_equal(r.u.stats.unexpected_acks, 1);
            assert_int_equal(r.u.stats.runs_evicted, 0);
            assert_int_equal(r.u.stats.runs_refused, 0);
        }
    }
    assert_int_equal(stats, 1);
    lines_close(&l);
    at_model_free(m);
    free(s.msgs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_snapshot_goodbye),
        cmocka_unit_test(test_rolling_snapshots),
        cmocka_unit_test(test_incomplete_snapshots),
        cmocka_unit_test(test_slices),
        cmocka_unit_test(test_base_delta),
        cmocka_unit_test(test_lora_pairing),
        cmocka_unit_test(test_fast_closing),
        cmocka_unit_test(test_many_short_runs),
        cmocka_unit_test(test_live_runs_refused),
        cmocka_unit_test(test_stop_ack_unknown_run),
        cmocka_unit_test(test_fair_share),
        cmocka_unit_test(test_fair_snapshots),
        cmocka_unit_test(test_run_gone),
        cmocka_unit_test(test_engine_stop_rule),
        cmocka_unit_test(test_engine_pause),
        cmocka_unit_test(test_engine_fair),
        cmocka_unit_test(test_engine_unsolicited_ack),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return rc;
}
