/* SPDX-License-Identifier: Apache-2.0 */
/* sweep.c -- the positions of the snapshot being sent (see sweep.h). */
#include "sweep.h"

#include <stdlib.h>
#include <string.h>

uint64_t at_sweep_ident(const char *name, const int64_t *v, int n)
{
    /* FNV-1a: a changed name or shape changes it; nothing here is adversarial. */
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 8; b++)
            h = (h ^ (unsigned char)((uint64_t)v[i] >> (8 * b))) * 1099511628211ULL;
    return h;
}

void at_sweep_start(at_sweep *s, int64_t seq, int64_t step)
{
    s->open = 1;
    s->changed = 0;
    s->seq = seq;
    s->first_step = s->last_step = s->due_step = step;
    s->n = -1;
    s->cursor = s->done = s->sent = s->skipped = 0;
}

void at_sweep_pass(at_sweep *s)
{
    s->cursor = 0;
}

/* Room for position i during the first pass. */
static int grow(at_sweep *s, int64_t i)
{
    if ((size_t)i < s->cap)
        return 0;
    size_t cap = s->cap ? 2 * s->cap : 64;
    unsigned char *pos = realloc(s->pos, cap);
    if (!pos)
        return -1;
    s->pos = pos;
    uint64_t *ident = realloc(s->ident, cap * sizeof *ident);
    if (!ident)
        return -1;
    s->ident = ident;
    s->cap = cap;
    return 0;
}

int at_sweep_visit(at_sweep *s, uint64_t ident, int64_t *index)
{
    const int64_t i = s->cursor;
    if (s->changed)
        return -1;
    if (s->n < 0) {
        if (grow(s, i) != 0)
            return -2;
        s->pos[i] = AT_POS_TODO;
        s->ident[i] = ident;
    } else if (i >= s->n || s->ident[i] != ident) {
        s->changed = 1;
        return -1;
    }
    s->cursor++;
    *index = i;
    return s->pos[i];
}

int at_sweep_known(const at_sweep *s, uint64_t ident)
{
    return !s->changed && s->n >= 0 && s->cursor < s->n && s->ident[s->cursor] == ident;
}

void at_sweep_mark(at_sweep *s, int64_t index, int state)
{
    s->pos[index] = (unsigned char)state;
    s->done++;
    s->sent += state == AT_POS_SENT;
    s->skipped += state == AT_POS_SKIPPED;
}

int at_sweep_pass_end(at_sweep *s)
{
    if (s->n < 0 && !s->changed)
        s->n = s->cursor;
    else if (s->cursor != s->n)
        s->changed = 1;
    if (s->changed)
        return -1;
    return s->done == s->n;
}

void at_sweep_release(at_sweep *s)
{
    free(s->pos);
    free(s->ident);
    s->pos = NULL;
    s->ident = NULL;
    s->cap = 0;
}
