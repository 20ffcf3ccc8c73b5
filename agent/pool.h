/* SPDX-License-Identifier: Apache-2.0 */
/* pool.h -- the agent's byte-budgeted buffers (internal to agent/, not installed).
 *
 * Every buffer the agent hands to ZeroMQ comes from at_bufpool_take, which records its size in
 * a small prefix. ZeroMQ's I/O thread calls at_bufpool_release (a zmq_free_fn, hint = the pool)
 * once the bytes are on the socket, which subtracts them from the bytes out. The budget check
 * before each copy therefore sees exactly what is still held, without asking ZeroMQ anything.
 *
 * Reuse: consecutive snapshots have layers of the same sizes, so released buffers of at least
 * 64 KiB are kept idle (up to at_bufpool_set_keep bytes) and handed out again for the same size.
 * A fresh large buffer costs a page fault per 4 KiB on first touch -- about as much as the copy
 * itself. Idle bytes count against the budget too: they are trimmed before any fresh
 * allocation, so out + idle stays within the budget whenever the caller checks
 * at_bufpool_fits before each take. Buffers of 64 KiB and more are mapped (mmap) and unmapped
 * when freed, so the bytes the pool holds are the bytes the process holds for it.
 *
 * Threading: every function but at_bufpool_free and at_bufpool_discard may be called from any
 * thread (an internal mutex guards the idle buffers; the bytes out are atomic).
 */
#ifndef ALPHATOP_AGENT_POOL_H
#define ALPHATOP_AGENT_POOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct at_bufpool at_bufpool;

/* New pool for budget bytes (>= 1). Caller owns return value (free with at_bufpool_free); NULL
 * with *status (may be NULL) set to AT_ERR_ARG (budget < 1) or AT_ERR_NOMEM. */
at_bufpool *at_bufpool_new(int64_t budget, int *status);

/* Frees the idle buffers and the pool without locking: no other thread may use it any more
 * (ZeroMQ's context is terminated, or this is a forked child whose threads are gone). Buffers
 * still out are the caller's to at_bufpool_discard. NULL-safe. */
void at_bufpool_free(at_bufpool *self);

/* 1 when need more bytes fit the budget beside the bytes out now, else 0. Idle bytes do not
 * count here: a take trims them first. */
int at_bufpool_fits(at_bufpool *self, size_t need);

/* Room above the budget that only messages without weights may use (scalars, hello, goodbye,
 * snapshot ends, skips, stop acks: each a header frame of at most 64 KiB), so that a snapshot
 * filling the budget does not crowd out the numbers logged meanwhile or the run's end. */
#define AT_BUFPOOL_SMALL_RESERVE ((size_t)64 * 1024)

/* at_bufpool_fits for such a message: the budget plus AT_BUFPOOL_SMALL_RESERVE. */
int at_bufpool_fits_small(at_bufpool *self, size_t need);

/* A buffer of n bytes (16-byte aligned), counted as out until released: an idle one of exactly
 * n bytes when n >= 64 KiB and one is kept, else a fresh one after trimming idle buffers until
 * out + idle + n fits the budget. Does not refuse over budget: check at_bufpool_fits first.
 * NULL when out of memory. Caller owns return value: hand it to ZeroMQ with at_bufpool_release
 * and self as hint, or give it back with at_bufpool_release(buf, self). */
char *at_bufpool_take(at_bufpool *self, size_t n);

/* zmq_free_fn: gives data (from at_bufpool_take on the pool hint) back; it is kept idle for
 * reuse when it is large enough and the pool has room, else freed. NULL data is ignored. */
void at_bufpool_release(void *data, void *hint);

/* Frees data (from at_bufpool_take) without accounting or locking, for teardown where the pool
 * is going away too (see at_bufpool_free). NULL-safe. */
void at_bufpool_discard(char *data);

/* Keeps at most keep bytes idle from now on (the agent: the last snapshot's size, so the next
 * snapshot's buffers are recycled; 0 until then). Buffers already idle stay until a take needs
 * their room. */
void at_bufpool_set_keep(at_bufpool *self, int64_t keep);

/* Changes the budget (the agent's automatic budget grows with the largest layer). */
void at_bufpool_set_budget(at_bufpool *self, int64_t budget);

/* The budget now. */
int64_t at_bufpool_budget(at_bufpool *self);

/* Bytes out now: taken and not yet released. */
int64_t at_bufpool_out(at_bufpool *self);

/* Bytes held now: out plus idle. */
int64_t at_bufpool_held(at_bufpool *self);

/* The largest at_bufpool_held seen just after a take. */
int64_t at_bufpool_peak(at_bufpool *self);

#endif
