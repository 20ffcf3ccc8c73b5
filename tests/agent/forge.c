/* SPDX-License-Identifier: Apache-2.0 */
/* forge.c -- the forging peer of the run-ownership tests (forge.h). */
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "forge.h"

struct forge {
    void *ctx, *sock;
    at_proto_msg msg; /* scratch: large, kept off the stack */
    char hdr[2][AT_PROTO_MAX_HEADER];
};

forge *forge_new(const char *endpoint)
{
    forge *g = calloc(1, sizeof *g);
    int zero = 0;
    if (g && (g->ctx = zmq_ctx_new()) && (g->sock = zmq_socket(g->ctx, ZMQ_DEALER)) &&
        zmq_setsockopt(g->sock, ZMQ_LINGER, &zero, sizeof zero) == 0 &&
        zmq_connect(g->sock, endpoint) == 0)
        return g;
    forge_free(g);
    return NULL;
}

void forge_free(forge *g)
{
    if (!g)
        return;
    if (g->sock)
        zmq_close(g->sock);
    if (g->ctx)
        zmq_ctx_term(g->ctx);
    free(g);
}

/* Encodes g->msg into header buffer i; its length, or 0 if it does not encode. */
static size_t encode(forge *g, int i)
{
    size_t len = 0;
    return at_proto_encode(&g->msg, g->hdr[i], sizeof g->hdr[i], &len, NULL) == AT_OK ? len : 0;
}

static void start(forge *g, at_proto_type type, const char *run)
{
    memset(&g->msg, 0, sizeof g->msg);
    g->msg.type = type;
    strncpy(g->msg.run, run, sizeof g->msg.run - 1);
}

int forge_send(forge *g, at_proto_type type, const char *run)
{
    start(g, type, run);
    if (type == AT_PROTO_HELLO) {
        g->msg.u.hello.interval = 10;
        g->msg.u.hello.world_size = 1;
        strcpy(g->msg.u.hello.model, "forged");
    } else if (type == AT_PROTO_STOP_ACK) {
        strcpy(g->msg.u.reason, "forged");
    }
    size_t len = encode(g, 0);
    return len && zmq_send(g->sock, g->hdr[0], len, 0) >= 0 ? 0 : -1;
}

int forge_snapshot(forge *g, const char *run, int64_t step, int64_t seq, const float *w,
                   int64_t rows, int64_t cols)
{
    start(g, AT_PROTO_LAYER, run);
    at_proto_layer *l = &g->msg.u.layer;
    *l = (at_proto_layer){.step = step,
                          .first_step = step,
                          .seq = seq,
                          .kind = AT_PROTO_KIND_LINEAR,
                          .ndim = 2,
                          .shape = {rows, cols},
                          .dtype = AT_PROTO_F32,
                          .nbytes = (uint64_t)(rows * cols) * sizeof *w,
                          .has_checksum = 1};
    strcpy(l->name, "fc");
    l->crc32 = at_proto_crc32(0, w, l->nbytes);
    size_t hl = encode(g, 0), nbytes = l->nbytes;
    start(g, AT_PROTO_SNAPSHOT_END, run);
    g->msg.u.snapshot_end = (at_proto_snapshot_end){
        .step = step, .first_step = step, .seq = seq, .layers = 1, .total = 1};
    size_t el = encode(g, 1);
    return hl && el && zmq_send(g->sock, g->hdr[0], hl, ZMQ_SNDMORE) >= 0 &&
                   zmq_send(g->sock, w, nbytes, ZMQ_SNDMORE) >= 0 &&
                   zmq_send(g->sock, g->hdr[1], el, 0) >= 0
               ? 0
               : -1;
}

int forge_received(forge *g, int timeout_ms)
{
    int n = 0;
    zmq_pollitem_t it = {g->sock, 0, ZMQ_POLLIN, 0};
    while (zmq_poll(&it, 1, n ? 0 : timeout_ms) > 0) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, g->sock, ZMQ_DONTWAIT) >= 0 && !zmq_msg_more(&m))
            n++;
        zmq_msg_close(&m);
    }
    return n;
}
