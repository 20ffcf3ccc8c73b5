/* SPDX-License-Identifier: Apache-2.0 */
/* names.h -- layer names made short enough for the screen. Pure.
 *
 * What (nearly) all layers of a run share is said once, not on every row: the longest dotted
 * prefix and suffix that at least 3 in 4 layers carry ("model.layers." and ".weight") are
 * dropped from the names that carry them ("model.layers.23.self_attn.q_proj.weight" ->
 * "23.self_attn.q_proj"); the title row shows the pattern ("model.layers.*.weight"). A name
 * still too long is elided in the middle, keeping its first segment (the block number) and
 * its last segments ("23.…q_proj").
 */
#ifndef ALPHATOP_NAMES_H
#define ALPHATOP_NAMES_H

#include <stddef.h>

#include "model.h"

typedef struct at_names {
    char prefix[128]; /* dropped from the names that start with it; "" none */
    char suffix[64];  /* dropped from the names that end with it; "" none */
} at_names;

/* Finds what the layers of run share. */
void at_names_scan(at_names *out, const at_model *m, int run);

/* The short form of name into buf (cap bytes); returns buf. */
const char *at_names_short(const at_names *n, const char *name, char *buf, size_t cap);

/* The pattern of the shared parts into buf ("model.layers.*.weight"; "" when nothing is
 * shared); returns buf. */
const char *at_names_pattern(const at_names *n, char *buf, size_t cap);

/* s (ASCII) in at most w columns into out (cap bytes, UTF-8): s itself when it fits, else
 * its first dotted segment, an ellipsis ("…", or "~" when utf8 is 0) and the longest end
 * that starts after a '.' or '/' and fits (a plain end when none does). Returns the columns
 * used. */
int at_elide(const char *s, int w, int utf8, char *out, size_t cap);

/* Label of two layers that share a heatmap row: their common dotted prefix, then both rests
 * ("0.attn.c_attn" + "0.attn.c_proj" -> "0.attn.c_attn/c_proj"), into buf (cap bytes). */
void at_pair_label(const char *a, const char *b, char *buf, size_t cap);

/* The label of two layers sharing a row in at most w columns (as at_elide): the pair label
 * elided as one when the two share a first segment (their block), else each name elided to
 * half the width, so that both block numbers stay visible. Returns the columns used. */
int at_pair_elide(const char *a, const char *b, int w, int utf8, char *out, size_t cap);

#endif
