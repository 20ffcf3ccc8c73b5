/* SPDX-License-Identifier: Apache-2.0 */
/* blocks.h -- a transformer's layers grouped by block, for the block view. Pure: reads layer
 * names only.
 *
 * A name says where its layer sits. Its block is the name up to its first numbered segment
 * (all digits, or ending in "_<digits>"): "model.layers.3" of
 * "model.layers.3.self_attn.q_proj.weight", "h.0" of "h.0.attn.c_attn",
 * "encoder.layers.encoder_layer_0" of torchvision's ViT. Its part of the block:
 *   - attention, when a segment before the last names it ("attn", "attention": self_attn,
 *     SelfAttention, self_attention ...) or the last segment is one only attention uses
 *     (q_proj, k_proj, v_proj, o_proj, W_Q .. W_O, query, key, value, out_proj, c_attn,
 *     query_key_value, qkv_proj, Wqkv, in_proj; the Python agent's q_proj_weight,
 *     k_proj_weight, v_proj_weight of nn.MultiheadAttention's split in_proj_weight);
 *     labelled Q, K, V, O (dense, c_proj, wo, o under an attention segment) or QKV (packed);
 *   - MLP, under "mlp", "ffn", "feed_forward", "intermediate", "DenseReluDense", BERT's
 *     "output", or by its own name (gate_proj, up_proj, down_proj, fc1, fc2, c_fc, W_in, W_out,
 *     dense_h_to_4h, dense_4h_to_h, linear1, linear2, w1, w2, w3, wi);
 *   - other, the rest.
 * The trailing ".weight" (or "_weight") is not part of the name for this.
 * Attention and MLP layers without a number make one block of their own, labelled "-" (a
 * one-layer model: "attn.W_Q.weight", "mlp.W_in.weight"). Every other layer without a block,
 * and every layer of a numbered group that holds no attention or MLP matrix, gets a row of its
 * own (embeddings, the unembedding, norms, a convolutional stem).
 *
 * The table: one row per block or lone layer, in model order (a block where its first layer
 * is); one column ("slot") per place in a block -- the name after the block,
 * "self_attn.q_proj.weight" -- attention slots first, then MLP, then the rest, each group in
 * the order its slots first appear. At most AT_BLOCKS_MAX_SLOTS slots: a layer that would
 * need one more gets a row of its own.
 */
#ifndef ALPHATOP_BLOCKS_H
#define ALPHATOP_BLOCKS_H

#include <stddef.h>

#include "model.h"
#include "names.h"

typedef enum at_group { AT_GROUP_OTHER = 0, AT_GROUP_ATTN = 1, AT_GROUP_MLP = 2 } at_group;

/* What one layer name says about its place in a transformer. */
typedef struct at_name_part {
    at_group group;
    int block_len;   /* bytes of the name that name its block ("model.layers.3": 14); -1 none */
    char role[8];    /* short label: "Q", "K", "V", "O", "QKV", "gate", "fc1", or the last
                        segment cut to 7 bytes */
    char module[32]; /* attention: the segment that says so ("self_attn"); "" otherwise */
} at_name_part;

/* Classifies name into *out. */
void at_blocks_classify(const char *name, at_name_part *out);

/* 1 if a layer of run sits in a block with an attention matrix: the block view has something
 * to show. Reads every name until the first such layer. */
int at_blocks_available(const at_model *m, int run);

enum {
    AT_BLOCKS_MAX_SLOTS = 32,
    AT_BLOCKS_VALUE_W = 7,    /* a cell without history: level glyph, value (5), trend */
    AT_BLOCKS_SPARK_MIN = 4,  /* the least history worth drawing, in columns */
    AT_BLOCKS_SPARK_SIDE = 8, /* the history kept when the warnings panel sits beside */
    AT_BLOCKS_SPARK_MAX = 16, /* the most history a cell gets */
    AT_BLOCKS_LABEL_MIN = 5,  /* "block" */
    AT_BLOCKS_LABEL_MAX = 16
};

typedef struct at_block_slot {
    char key[128];  /* the name after its block: "self_attn.q_proj.weight" */
    char label[48]; /* the column's long label: its last segment ("q_proj"), or the whole key
                       without ".weight" when that is shared or a number ("attn.c_proj") */
    char role[8];   /* the short label, at_name_part.role ("Q", "gate") */
    at_group group;
    char module[32]; /* at_name_part.module */
    int sep_before;  /* 1: a separator before it (another group, or another attention) */
} at_block_slot;

typedef struct at_block_row {
    char label[128]; /* a block: its name less what all names share ("3"; "-" when it has no
                        number); a lone layer: its short name ("model.embed_tokens") */
    int layer;       /* a lone layer: its index; a block: -1 */
} at_block_row;

typedef struct at_blocks at_blocks;

/* The table of the n layers idx[0..n-1] of run (any order; shown in model order); names
 * (NULL: full names) shortens the labels. Caller owns return value (free with
 * at_blocks_free); NULL on failure with *status (may be NULL) AT_ERR_ARG (m NULL, n < 0, idx
 * NULL with n > 0, an index out of range) or AT_ERR_NOMEM. */
at_blocks *at_blocks_new(const at_model *m, int run, const int *idx, int n, const at_names *names,
                         int *status);

/* Frees the table. NULL-safe. */
void at_blocks_free(at_blocks *self);

int at_blocks_num_rows(const at_blocks *self);
int at_blocks_num_slots(const at_blocks *self);

/* Rows that are blocks (not lone layers). */
int at_blocks_num_blocks(const at_blocks *self);

/* 1 if a block holds an attention matrix. */
int at_blocks_has_attention(const at_blocks *self);

/* Row r / slot s. Borrowed; NULL out of range. */
const at_block_row *at_blocks_row(const at_blocks *self, int r);
const at_block_slot *at_blocks_slot(const at_blocks *self, int s);

/* The layer at row r, slot s: a block's cell, or for a lone layer's row the layer itself at
 * slot 0. -1 for none. */
int at_blocks_cell(const at_blocks *self, int r, int s);

/* Row and slot (0 for a lone layer) where layer is. Returns 1, or 0 when it is not in the
 * table (*row, *slot untouched). */
int at_blocks_find(const at_blocks *self, int layer, int *row, int *slot);

/* The layer d places after (d > 0) or before layer in reading order (row by row, slot by slot),
 * stopping at the first and last; layer itself when it is not in the table. */
int at_blocks_step(const at_blocks *self, int layer, int d);

/* The layer d rows below (d > 0) or above layer (clamped to the first and last row): in the
 * same slot when that row has it, else the nearest slot it has (the left one on ties). */
int at_blocks_vertical(const at_blocks *self, int layer, int d);

/* Longest block label, clamped to [AT_BLOCKS_LABEL_MIN, AT_BLOCKS_LABEL_MAX]. */
int at_blocks_label_width(const at_blocks *self);

/* How the table fits a width. Columns count from the table's left edge. */
typedef struct at_blocks_geom {
    int label_w; /* the row labels */
    int spark;   /* history columns per cell; 0: the value only */
    int cell_w;  /* columns of a cell: spark + 1 + 6, or (no history) at most AT_BLOCKS_VALUE_W */
    int nslots;  /* slots that fit (the first ones) */
    int x[AT_BLOCKS_MAX_SLOTS]; /* where each of them starts */
    int width;                  /* columns used */
} at_blocks_geom;

/* Columns the table needs with label_w columns of labels and spark columns of history in every
 * cell (0: values only). */
int at_blocks_width(const at_blocks *self, int label_w, int spark);

/* Fits the table into width columns (labels label_w of them) into *g: history when at least
 * AT_BLOCKS_SPARK_MIN columns of it fit in every cell (at most AT_BLOCKS_SPARK_MAX), else the
 * values, narrowed or, below one column a cell, fewer slots. Pure. */
void at_blocks_fit(const at_blocks *self, int label_w, int width, at_blocks_geom *g);

/* The slot whose cell covers column x, or -1. */
int at_blocks_slot_at(const at_blocks_geom *g, int x);

#endif
