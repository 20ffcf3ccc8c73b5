/* SPDX-License-Identifier: Apache-2.0 */
/* idmap.c -- text keys to ints by open addressing (see idmap.h). */
#include "idmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    char *key; /* NULL: empty */
    int value;
} slot;

struct at_idmap {
    slot *slots;
    size_t cap; /* a power of two */
    size_t count;
    size_t key_bytes;
};

/* FNV-1a, 64 bits: keys are short. Ids a trainer picks to collide cost a lookup at most a
 * scan of the table, which the callers' bounds on runs (max_runs) keep small. */
static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

at_idmap *at_idmap_new(int *status)
{
    at_idmap *self = calloc(1, sizeof *self);
    if (self) {
        self->cap = 16;
        self->slots = calloc(self->cap, sizeof *self->slots);
        if (!self->slots) {
            free(self);
            self = NULL;
        }
    }
    if (status)
        *status = self ? AT_OK : AT_ERR_NOMEM;
    return self;
}

void at_idmap_free(at_idmap *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->cap; i++)
        free(self->slots[i].key);
    free(self->slots);
    free(self);
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find(const at_idmap *self, const char *key)
{
    size_t i = (size_t)hash(key) & (self->cap - 1);
    while (self->slots[i].key && strcmp(self->slots[i].key, key))
        i = (i + 1) & (self->cap - 1);
    return i;
}

static int rehash(at_idmap *self, size_t cap)
{
    slot *old = self->slots;
    size_t oldcap = self->cap;
    slot *ns = calloc(cap, sizeof *ns);
    if (!ns)
        return AT_ERR_NOMEM;
    self->slots = ns;
    self->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key)
            ns[find(self, old[i].key)] = old[i];
    free(old);
    return AT_OK;
}

int at_idmap_put(at_idmap *self, const char *key, int value)
{
    if (!key || value < 0)
        return AT_ERR_ARG;
    size_t i = find(self, key);
    if (self->slots[i].key) {
        self->slots[i].value = value;
        return AT_OK;
    }
    if (2 * (self->count + 1) > self->cap) {
        if (rehash(self, 2 * self->cap) != AT_OK)
            return AT_ERR_NOMEM;
        i = find(self, key);
    }
    size_t n = strlen(key) + 1;
    char *k = malloc(n);
    if (!k)
        return AT_ERR_NOMEM;
    memcpy(k, key, n);
    self->slots[i] = (slot){k, value};
    self->count++;
    self->key_bytes += n;
    return AT_OK;
}

int at_idmap_get(const at_idmap *self, const char *key)
{
    if (!key)
        return AT_ERR_NOTFOUND;
    const slot *s = &self->slots[find(self, key)];
    return s->key ? s->value : AT_ERR_NOTFOUND;
}

int at_idmap_del(at_idmap *self, const char *key)
{
    if (!key)
        return AT_ERR_NOTFOUND;
    const size_t mask = self->cap - 1;
    size_t i = find(self, key);
    if (!self->slots[i].key)
        return AT_ERR_NOTFOUND;
    self->key_bytes -= strlen(self->slots[i].key) + 1;
    free(self->slots[i].key);
    self->slots[i].key = NULL;
    self->count--;
    /* Backward shift: an entry after the hole moves into it unless its home lies (cyclically)
     * after the hole, so every key stays reachable from its home without tombstones. */
    for (size_t j = (i + 1) & mask; self->slots[j].key; j = (j + 1) & mask) {
        size_t home = (size_t)hash(self->slots[j].key) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            self->slots[i] = self->slots[j];
            self->slots[j].key = NULL;
            i = j;
        }
    }
    return AT_OK;
}

size_t at_idmap_count(const at_idmap *self)
{
    return self->count;
}

size_t at_idmap_bytes(const at_idmap *self)
{
    return sizeof *self + self->cap * sizeof *self->slots + self->key_bytes;
}
