/* SPDX-License-Identifier: Apache-2.0 */
/* idmap.h -- a map from text keys (run ids) to non-negative ints (table indices), so that finding
 * a run costs the same however many runs the monitor has seen: open addressing with linear
 * probing, grown to keep it at most half full, removal without tombstones (later entries of the
 * probe run move back). Keys are copied.
 *
 *     at_idmap *m = at_idmap_new(NULL);
 *     at_idmap_put(m, "run-42", 7);
 *     int v = at_idmap_get(m, "run-42");   // 7; AT_ERR_NOTFOUND for a key not there
 *     at_idmap_del(m, "run-42");
 *     at_idmap_free(m);
 *
 * Threading: none; one thread at a time. */
#ifndef ALPHATOP_IDMAP_H
#define ALPHATOP_IDMAP_H

#include <stddef.h>

#include "alphatop/status.h"

typedef struct at_idmap at_idmap;

/* An empty map. Caller owns return value (free with at_idmap_free); NULL with *status (may be
 * NULL) set to AT_ERR_NOMEM. */
at_idmap *at_idmap_new(int *status);

/* Frees the map and its keys. NULL-safe. */
void at_idmap_free(at_idmap *self);

/* Sets key's value (>= 0), adding the key if new. Returns AT_OK, AT_ERR_ARG (NULL key or a
 * negative value) or AT_ERR_NOMEM (the map is as it was). */
int at_idmap_put(at_idmap *self, const char *key, int value);

/* key's value, or AT_ERR_NOTFOUND. */
int at_idmap_get(const at_idmap *self, const char *key);

/* Removes key; AT_OK, or AT_ERR_NOTFOUND when it was not there. */
int at_idmap_del(at_idmap *self, const char *key);

/* Number of keys. */
size_t at_idmap_count(const at_idmap *self);

/* Bytes the map holds (its table and keys), for the monitor's memory counters. */
size_t at_idmap_bytes(const at_idmap *self);

#endif
