/* SPDX-License-Identifier: Apache-2.0 */
/* pair.h -- pairing the layers of two checkpoints by name, and the update W - W_base.
 *
 * Used by `scan --base` (analyse each layer's update) and `diff` (compare two checkpoints).
 * Rules, in order, for a layer named n of checkpoint A:
 *   1. B has a layer named n                                  -> paired
 *   2. exactly one layer of B has n's canonical name           -> paired, renamed
 *      (canonical: without the wrapper prefixes "module.", "_orig_mod.", "base_model.model.",
 *      "model." that DDP, torch.compile, PEFT and HF add)
 *   3. otherwise                                               -> missing
 * A paired layer whose shape differs is a shape mismatch, unless both are 2-D and B is the
 * transpose of A (then it is paired, transposed). Layers of B no layer of A paired with are
 * "unmatched" and listed by the caller.
 *
 * LoRA adapters (a lora_A and a lora_B factor per module) pair half by half with these rules;
 * at_pair_lora_partner finds a half's other half, so callers can analyse each side's B A, and
 * at_pair_lora_name names the pair (the same name in scan, diff and watch).
 */
#ifndef ALPHATOP_PAIR_H
#define ALPHATOP_PAIR_H

#include <stddef.h>

#include "ckpt.h"

typedef enum at_pair_status {
    AT_PAIR_OK = 0,       /* paired (see renamed / transposed) */
    AT_PAIR_MISSING = 1,  /* no layer of that name in B */
    AT_PAIR_SHAPE = 2,    /* a layer of that name, but another shape */
    AT_PAIR_AMBIGUOUS = 3 /* several layers of B share the canonical name */
} at_pair_status;

typedef struct at_pair {
    at_pair_status status;
    const at_ckpt_layer *other; /* the layer of B (NULL when missing or ambiguous) */
    int renamed;                /* paired through the canonical name */
    int transposed;             /* B's layer is the 2-D transpose of A's */
} at_pair;

typedef struct at_pairing at_pairing;

/* Pairs every layer of a with a layer of b (both borrowed; they must outlive the pairing).
 * Caller owns return value (free with at_pairing_free); NULL when out of memory. */
at_pairing *at_pairing_new(const at_ckpt *a, const at_ckpt *b);

/* Frees the pairing. NULL-safe. */
void at_pairing_free(at_pairing *self);

/* The pair of layer i of a. Borrowed. */
const at_pair *at_pairing_get(const at_pairing *self, size_t i);

/* Number of layers of b that no layer of a paired with, and the j-th of them. Borrowed. */
size_t at_pairing_unmatched_count(const at_pairing *self);
const at_ckpt_layer *at_pairing_unmatched(const at_pairing *self, size_t j);

/* Rules 1 and 2 for one name: fills *p with the layer of b named name, or the one layer whose
 * canonical name matches (renamed), or status MISSING / AMBIGUOUS. Shapes are not checked. */
void at_pair_lookup(const at_ckpt *b, const char *name, at_pair *p);

/* Rule 3: compares p->other's shape with layer's (both readable): sets p->transposed, or
 * p->status = AT_PAIR_SHAPE. */
void at_pair_check_shape(at_pair *p, const at_ckpt_layer *layer);

/* Writes a one-line explanation of a pair that is not a plain same-name match into buf (n
 * bytes), e.g. "renamed: base layer module.fc1.weight" or "shape mismatch: base is 64x32";
 * empty for a plain match. Returns buf. */
char *at_pair_describe(const at_pair *p, const at_ckpt_layer *layer, char *buf, size_t n);

/* The canonical name of name into buf (n bytes): wrapper prefixes removed. Returns buf. */
char *at_pair_canonical(const char *name, char *buf, size_t n);

/* What a LoRA pair is called in reports: the adapted module's name and this suffix. */
#define AT_PAIR_LORA_SUFFIX ".lora_BA"

/* The one LoRA naming rule, shared by `scan`, `diff` and `watch`: a factor's name is the
 * adapted module's name, then "lora_A" or "lora_B" (the last such in the name, PEFT's naming),
 * then anything; the pair (the update B A) is called the module's name plus
 * AT_PAIR_LORA_SUFFIX, the dot before "lora_" not doubled:
 *     "q_proj.lora_A.default.weight" -> "q_proj.lora_BA"     "fc1.lora_B" -> "fc1.lora_BA"
 * A name without "lora_A" / "lora_B" (a factor only the wire's layer kind says is one) is the
 * module's name itself: "adapter" -> "adapter.lora_BA". Writes the pair's name into buf (n
 * bytes, cut to fit), sets *is_a (may be NULL) to 1 for an A half ("lora_A"), 0 otherwise, and
 * returns the length of the module's name in name, or -1 when name has no "lora_A" / "lora_B"
 * (buf is written all the same). */
int at_pair_lora_name(const char *name, char *buf, size_t n, int *is_a);

/* A LoRA factor's partner in c (the rule above): for "x.lora_A.weight" the layer
 * "x.lora_B.weight", and back. Sets *is_a when name is the A half (r x in) and writes the
 * adapted module's name ("x") into module (n bytes). NULL when name is no LoRA factor or c
 * lacks its partner. Borrowed. */
const at_ckpt_layer *at_pair_lora_partner(const at_ckpt *c, const char *name, int *is_a,
                                          char *module, size_t n);

#endif
