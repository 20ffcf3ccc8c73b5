/* SPDX-License-Identifier: Apache-2.0 */
/* pool.c -- the agent's byte-budgeted buffers (see pool.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alphatop/status.h"
#include "pool.h"

#define PREFIX 16                   /* holds the size; keeps buffers 16-byte aligned */
#define POOL_MIN ((size_t)64 << 10) /* smaller buffers are not worth keeping */
#define POOL_SLOTS 256

struct at_bufpool {
    _Atomic int64_t budget;
    _Atomic int64_t out;
    /* Idle buffers (base pointers), their bytes, the most to keep and the peak: guarded by
     * lock, which ZeroMQ's I/O thread also takes when it releases a buffer. */
    pthread_mutex_t lock;
    char *idle[POOL_SLOTS];
    int64_t idle_bytes, keep, peak;
};

static size_t buffer_size(const char *base)
{
    size_t n;
    memcpy(&n, base, sizeof n);
    return n;
}

/* A buffer of n bytes after the prefix. Large ones are mapped, not malloc'd: unmapped when
 * freed, their pages leave the process at once, where the heap could keep a freed block of a
 * few MiB (and its pages) for later, so the process held more than the budget says. */
static char *buffer_new(size_t n)
{
    char *base;
    if (n >= POOL_MIN) {
        base = mmap(NULL, PREFIX + n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED)
            return NULL;
    } else if (!(base = malloc(PREFIX + n))) {
        return NULL;
    }
    memcpy(base, &n, sizeof n);
    return base;
}

static void buffer_free(char *base)
{
    if (!base)
        return;
    const size_t n = buffer_size(base);
    if (n >= POOL_MIN)
        munmap(base, PREFIX + n);
    else
        free(base);
}

at_bufpool *at_bufpool_new(int64_t budget, int *status)
{
    int rc = AT_ERR_ARG;
    at_bufpool *self = NULL;
    if (budget < 1)
        goto err;
    rc = AT_ERR_NOMEM;
    if (!(self = calloc(1, sizeof *self)) || pthread_mutex_init(&self->lock, NULL) != 0)
        goto err;
    atomic_init(&self->budget, budget);
    atomic_init(&self->out, 0);
    if (status)
        *status = AT_OK;
    return self;
err:
    free(self);
    if (status)
        *status = rc;
    return NULL;
}

void at_bufpool_free(at_bufpool *self)
{
    if (!self)
        return;
    for (int i = 0; i < POOL_SLOTS; i++)
        buffer_free(self->idle[i]);
    pthread_mutex_destroy(&self->lock);
    free(self);
}

int at_bufpool_fits(at_bufpool *self, size_t need)
{
    return (uint64_t)atomic_load(&self->out) + need <= (uint64_t)atomic_load(&self->budget);
}

int at_bufpool_fits_small(at_bufpool *self, size_t need)
{
    return (uint64_t)atomic_load(&self->out) + need <=
           (uint64_t)atomic_load(&self->budget) + AT_BUFPOOL_SMALL_RESERVE;
}

/* Pops an idle buffer of exactly n bytes, or NULL. */
static char *reuse(at_bufpool *self, size_t n)
{
    char *base = NULL;
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < POOL_SLOTS && !base; i++) {
        if (self->idle[i] && buffer_size(self->idle[i]) == n) {
            base = self->idle[i];
            self->idle[i] = NULL;
            self->idle_bytes -= (int64_t)n;
        }
    }
    pthread_mutex_unlock(&self->lock);
    return base;
}

/* Frees idle buffers until out + idle + need fit the budget (or none is left). */
static void trim(at_bufpool *self, size_t need)
{
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < POOL_SLOTS; i++) {
        if ((uint64_t)atomic_load(&self->out) + (uint64_t)self->idle_bytes + need <=
            (uint64_t)atomic_load(&self->budget))
            break;
        if (self->idle[i]) {
            self->idle_bytes -= (int64_t)buffer_size(self->idle[i]);
            buffer_free(self->idle[i]);
            self->idle[i] = NULL;
        }
    }
    pthread_mutex_unlock(&self->lock);
}

char *at_bufpool_take(at_bufpool *self, size_t n)
{
    char *base = n >= POOL_MIN ? reuse(self, n) : NULL;
    if (!base) {
        trim(self, n);
        if (!(base = buffer_new(n)))
            return NULL;
    }
    atomic_fetch_add(&self->out, (int64_t)n);
    /* Read under the lock: a release moves its bytes from out to idle under it, so neither
     * is counted twice. */
    pthread_mutex_lock(&self->lock);
    const int64_t held = atomic_load(&self->out) + self->idle_bytes;
    if (held > self->peak)
        self->peak = held;
    pthread_mutex_unlock(&self->lock);
    return base + PREFIX;
}

/* Keeps base idle if it is worth it and the pool has room; 0 if the caller must free it. */
static int keep_idle(at_bufpool *self, char *base)
{
    const size_t n = buffer_size(base);
    if (n < POOL_MIN)
        return 0;
    int kept = 0;
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < POOL_SLOTS && !kept && self->idle_bytes + (int64_t)n <= self->keep; i++) {
        if (!self->idle[i]) {
            self->idle[i] = base;
            self->idle_bytes += (int64_t)n;
            kept = 1;
        }
    }
    pthread_mutex_unlock(&self->lock);
    return kept;
}

void at_bufpool_release(void *data, void *hint)
{
    if (!data)
        return;
    at_bufpool *self = hint;
    char *base = (char *)data - PREFIX;
    atomic_fetch_sub(&self->out, (int64_t)buffer_size(base));
    if (!keep_idle(self, base))
        buffer_free(base);
}

void at_bufpool_discard(char *data)
{
    if (data)
        buffer_free(data - PREFIX);
}

void at_bufpool_set_budget(at_bufpool *self, int64_t budget)
{
    atomic_store(&self->budget, budget);
}

int64_t at_bufpool_budget(at_bufpool *self)
{
    return atomic_load(&self->budget);
}

void at_bufpool_set_keep(at_bufpool *self, int64_t keep)
{
    pthread_mutex_lock(&self->lock);
    self->keep = keep;
    pthread_mutex_unlock(&self->lock);
}

int64_t at_bufpool_out(at_bufpool *self)
{
    return atomic_load(&self->out);
}

int64_t at_bufpool_held(at_bufpool *self)
{
    pthread_mutex_lock(&self->lock);
    const int64_t held = atomic_load(&self->out) + self->idle_bytes;
    pthread_mutex_unlock(&self->lock);
    return held;
}

int64_t at_bufpool_peak(at_bufpool *self)
{
    pthread_mutex_lock(&self->lock);
    const int64_t peak = self->peak;
    pthread_mutex_unlock(&self->lock);
    return peak;
}
