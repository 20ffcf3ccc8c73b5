/* SPDX-License-Identifier: Apache-2.0 */
/* pair.c -- layer pairing between two checkpoints (see pair.h). */
#include "pair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct at_pairing {
    const at_ckpt *a, *b;
    at_pair *pairs;    /* one per layer of a */
    size_t *unmatched; /* indices of layers of b left over */
    size_t n_unmatched;
};

char *at_pair_canonical(const char *name, char *buf, size_t n)
{
    static const char *const prefixes[] = {"module.", "_orig_mod.", "base_model.model.", "model."};
    int stripped = 1;
    while (stripped) {
        stripped = 0;
        for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
            size_t k = strlen(prefixes[i]);
            if (!strncmp(name, prefixes[i], k) && name[k]) {
                name += k;
                stripped = 1;
            }
        }
    }
    snprintf(buf, n, "%s", name);
    return buf;
}

/* The rule of at_pair_lora_name: *marker gets where the last "lora_A" / "lora_B" of name
 * starts (NULL: none); returns the length of the adapted module's name. */
static size_t lora_split(const char *name, const char **marker)
{
    const char *hit = NULL;
    for (const char *p = strstr(name, "lora_"); p; p = strstr(p + 1, "lora_"))
        if (p[5] == 'A' || p[5] == 'B')
            hit = p;
    *marker = hit;
    size_t pre = hit ? (size_t)(hit - name) : strlen(name);
    return hit && pre && name[pre - 1] == '.' ? pre - 1 : pre;
}

int at_pair_lora_name(const char *name, char *buf, size_t n, int *is_a)
{
    const char *hit;
    int len = (int)lora_split(name, &hit);
    if (is_a)
        *is_a = hit && hit[5] == 'A';
    snprintf(buf, n, "%.*s%s", len, name, AT_PAIR_LORA_SUFFIX);
    return hit ? len : -1;
}

const at_ckpt_layer *at_pair_lora_partner(const at_ckpt *c, const char *name, int *is_a,
                                          char *module, size_t n)
{
    const char *hit;
    size_t len = lora_split(name, &hit);
    char other[512];
    if (!hit || strlen(name) >= sizeof other || len >= n)
        return NULL;
    *is_a = hit[5] == 'A';
    snprintf(module, n, "%.*s", (int)len, name);
    memcpy(other, name, strlen(name) + 1);
    other[hit - name + 5] = *is_a ? 'B' : 'A';
    return at_ckpt_find(c, other);
}

static int same_shape(const at_tensor *x, const at_tensor *y)
{
    if (x->ndim != y->ndim)
        return 0;
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] != y->shape[d])
            return 0;
    return 1;
}

void at_pair_check_shape(at_pair *p, const at_ckpt_layer *l)
{
    const at_tensor *x = &l->tensor, *y = &p->other->tensor;
    if (same_shape(x, y))
        return;
    if (x->ndim == 2 && y->ndim == 2 && x->shape[0] == y->shape[1] && x->shape[1] == y->shape[0])
        p->transposed = 1;
    else
        p->status = AT_PAIR_SHAPE;
}

void at_pair_lookup(const at_ckpt *b, const char *name, at_pair *p)
{
    char want[512], have[512];
    memset(p, 0, sizeof *p);
    p->other = at_ckpt_find(b, name);
    if (p->other)
        return;
    at_pair_canonical(name, want, sizeof want);
    for (size_t j = 0; j < at_ckpt_count(b); j++) {
        const at_ckpt_layer *o = at_ckpt_layer_at(b, j);
        if (strcmp(at_pair_canonical(o->name, have, sizeof have), want))
            continue;
        if (p->other) {
            p->status = AT_PAIR_AMBIGUOUS;
            p->other = NULL;
            return;
        }
        p->other = o;
    }
    p->status = p->other ? AT_PAIR_OK : AT_PAIR_MISSING;
    p->renamed = p->other != NULL;
}

at_pairing *at_pairing_new(const at_ckpt *a, const at_ckpt *b)
{
    at_pairing *self = calloc(1, sizeof *self);
    size_t na = at_ckpt_count(a), nb = at_ckpt_count(b);
    char *used = calloc(nb + 1, 1);
    if (!self || !used)
        goto err;
    self->a = a;
    self->b = b;
    self->pairs = calloc(na + 1, sizeof *self->pairs);
    self->unmatched = calloc(nb + 1, sizeof *self->unmatched);
    if (!self->pairs || !self->unmatched)
        goto err;
    for (size_t i = 0; i < na; i++) {
        const at_ckpt_layer *l = at_ckpt_layer_at(a, i);
        at_pair *p = &self->pairs[i];
        at_pair_lookup(b, l->name, p);
        if (!p->other)
            continue;
        for (size_t j = 0; j < nb; j++)
            if (at_ckpt_layer_at(b, j) == p->other)
                used[j] = 1;
        /* A layer that could not be read has no shape to compare; its error is reported on
         * its own. */
        if (l->err == AT_OK && p->other->err == AT_OK)
            at_pair_check_shape(p, l);
    }
    for (size_t j = 0; j < nb; j++)
        if (!used[j])
            self->unmatched[self->n_unmatched++] = j;
    free(used);
    return self;
err:
    free(used);
    at_pairing_free(self);
    return NULL;
}

void at_pairing_free(at_pairing *self)
{
    if (!self)
        return;
    free(self->pairs);
    free(self->unmatched);
    free(self);
}

const at_pair *at_pairing_get(const at_pairing *self, size_t i)
{
    return &self->pairs[i];
}

size_t at_pairing_unmatched_count(const at_pairing *self)
{
    return self->n_unmatched;
}

const at_ckpt_layer *at_pairing_unmatched(const at_pairing *self, size_t j)
{
    return at_ckpt_layer_at(self->b, self->unmatched[j]);
}

char *at_pair_describe(const at_pair *p, const at_ckpt_layer *layer, char *buf, size_t n)
{
    char s1[64], s2[64];
    buf[0] = '\0';
    switch (p->status) {
    case AT_PAIR_MISSING:
        snprintf(buf, n, "no layer named %s (or a wrapper-prefixed variant) in the base",
                 layer->name);
        break;
    case AT_PAIR_AMBIGUOUS:
        snprintf(buf, n, "several base layers match %s once prefixes are removed", layer->name);
        break;
    case AT_PAIR_SHAPE:
        snprintf(buf, n, "shape mismatch: %s here, %s in the base (layer %s)",
                 at_shape_str(s1, sizeof s1, layer->tensor.ndim, layer->tensor.shape),
                 at_shape_str(s2, sizeof s2, p->other->tensor.ndim, p->other->tensor.shape),
                 p->other->name);
        break;
    case AT_PAIR_OK:
        if (p->renamed || p->transposed)
            snprintf(buf, n, "paired with base layer %s%s%s", p->other->name,
                     p->renamed ? " (renamed)" : "", p->transposed ? " (transposed)" : "");
        break;
    }
    return buf;
}
