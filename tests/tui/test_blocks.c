/* SPDX-License-Identifier: Apache-2.0 */
/* test_blocks.c -- a transformer's layers grouped by block (blocks.h): names of real model
 * families classified, the table of a 16-block Llama-style run and of the modular-arithmetic
 * transformer, moving over it, fitting it into a width, and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "blocks.h"
#include "synth.h"

typedef struct want_part {
    const char *name;
    at_group group;
    const char *block; /* NULL: none */
    const char *role;
    const char *module;
} want_part;

/* Names as PyTorch / Hugging Face models name their parameters (and as the Python agent
 * publishes nn.MultiheadAttention's split in_proj_weight). */
static const want_part parts[] = {
    /* Llama */
    {"model.layers.3.self_attn.q_proj.weight", AT_GROUP_ATTN, "model.layers.3", "Q", "self_attn"},
    {"model.layers.3.self_attn.o_proj.weight", AT_GROUP_ATTN, "model.layers.3", "O", "self_attn"},
    {"model.layers.31.mlp.gate_proj.weight", AT_GROUP_MLP, "model.layers.31", "gate", ""},
    {"model.layers.31.mlp.down_proj.weight", AT_GROUP_MLP, "model.layers.31", "down", ""},
    {"model.embed_tokens.weight", AT_GROUP_OTHER, NULL, "embed_t", ""},
    {"lm_head.weight", AT_GROUP_OTHER, NULL, "lm_head", ""},
    {"model.layers.3.input_layernorm.weight", AT_GROUP_OTHER, "model.layers.3", "input_l", ""},
    /* examples/torch_modular.py: one block without a number */
    {"attn.W_Q.weight", AT_GROUP_ATTN, NULL, "Q", "attn"},
    {"attn.W_O.weight", AT_GROUP_ATTN, NULL, "O", "attn"},
    {"mlp.W_in.weight", AT_GROUP_MLP, NULL, "in", ""},
    {"mlp.W_out.weight", AT_GROUP_MLP, NULL, "out", ""},
    {"embed.weight", AT_GROUP_OTHER, NULL, "embed", ""},
    {"unembed.weight", AT_GROUP_OTHER, NULL, "unembed", ""},
    /* GPT-2 (c_proj is attention's output or the MLP's, by its module) */
    {"transformer.h.0.attn.c_attn.weight", AT_GROUP_ATTN, "transformer.h.0", "QKV", "attn"},
    {"transformer.h.11.attn.c_proj.weight", AT_GROUP_ATTN, "transformer.h.11", "O", "attn"},
    {"transformer.h.11.mlp.c_proj.weight", AT_GROUP_MLP, "transformer.h.11", "c_proj", ""},
    {"transformer.h.11.mlp.c_fc.weight", AT_GROUP_MLP, "transformer.h.11", "fc", ""},
    {"h.2.attn.c_attn", AT_GROUP_ATTN, "h.2", "QKV", "attn"},
    /* nn.TransformerEncoderLayer through the Python agent (in_proj_weight split in three) */
    {"encoder.layers.0.self_attn.q_proj_weight", AT_GROUP_ATTN, "encoder.layers.0", "Q",
     "self_attn"},
    {"encoder.layers.0.self_attn.v_proj_weight", AT_GROUP_ATTN, "encoder.layers.0", "V",
     "self_attn"},
    {"encoder.layers.0.self_attn.out_proj.weight", AT_GROUP_ATTN, "encoder.layers.0", "O",
     "self_attn"},
    {"encoder.layers.0.linear1.weight", AT_GROUP_MLP, "encoder.layers.0", "lin1", ""},
    /* BERT: dense is attention's output under "attention", the MLP's elsewhere */
    {"bert.encoder.layer.0.attention.self.query.weight", AT_GROUP_ATTN, "bert.encoder.layer.0", "Q",
     "attention"},
    {"bert.encoder.layer.0.attention.output.dense.weight", AT_GROUP_ATTN, "bert.encoder.layer.0",
     "O", "attention"},
    {"bert.encoder.layer.0.intermediate.dense.weight", AT_GROUP_MLP, "bert.encoder.layer.0",
     "dense", ""},
    {"bert.encoder.layer.0.output.dense.weight", AT_GROUP_MLP, "bert.encoder.layer.0", "dense", ""},
    {"bert.pooler.dense.weight", AT_GROUP_OTHER, NULL, "dense", ""},
    /* GPT-NeoX, Falcon */
    {"gpt_neox.layers.5.attention.query_key_value.weight", AT_GROUP_ATTN, "gpt_neox.layers.5",
     "QKV", "attention"},
    {"gpt_neox.layers.5.attention.dense.weight", AT_GROUP_ATTN, "gpt_neox.layers.5", "O",
     "attention"},
    {"gpt_neox.layers.5.mlp.dense_h_to_4h.weight", AT_GROUP_MLP, "gpt_neox.layers.5", "in", ""},
    {"transformer.h.7.self_attention.dense.weight", AT_GROUP_ATTN, "transformer.h.7", "O",
     "self_attention"},
    /* T5: the block is the first number, not the sub-layer's */
    {"encoder.block.0.layer.0.SelfAttention.q.weight", AT_GROUP_ATTN, "encoder.block.0", "Q",
     "SelfAttention"},
    {"decoder.block.2.layer.1.EncDecAttention.o.weight", AT_GROUP_ATTN, "decoder.block.2", "O",
     "EncDecAttention"},
    {"encoder.block.0.layer.1.DenseReluDense.wo.weight", AT_GROUP_MLP, "encoder.block.0", "wo", ""},
    /* torchvision's ViT: a block named encoder_layer_N, an MLP of numbered Linears */
    {"encoder.layers.encoder_layer_11.self_attention.k_proj_weight", AT_GROUP_ATTN,
     "encoder.layers.encoder_layer_11", "K", "self_attention"},
    {"encoder.layers.encoder_layer_11.mlp.3.weight", AT_GROUP_MLP,
     "encoder.layers.encoder_layer_11", "3", ""},
    /* not a transformer: a short name alone is nothing, a leaf's own number is no block */
    {"features.0.weight", AT_GROUP_OTHER, NULL, "0", ""},
    {"layer1.0.conv1.weight", AT_GROUP_OTHER, "layer1.0", "conv1", ""},
    {"blocks.4.q", AT_GROUP_OTHER, "blocks.4", "q", ""},
    {"fc1.weight", AT_GROUP_MLP, NULL, "fc1", ""},
    {"weight", AT_GROUP_OTHER, NULL, "weight", ""},
};

static void test_classify(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const want_part *w = &parts[i];
        at_name_part p;
        at_blocks_classify(w->name, &p);
        int block_len = w->block ? (int)strlen(w->block) : -1;
        if (p.group != w->group || p.block_len != block_len || strcmp(p.role, w->role) ||
            strcmp(p.module, w->module))
            fail_msg("%s: group %d block %d role '%s' module '%s'; want %d %d '%s' '%s'", w->name,
                     p.group, p.block_len, p.role, p.module, w->group, block_len, w->role,
                     w->module);
        if (w->block)
            assert_memory_equal(w->name, w->block, (size_t)block_len);
    }
}

/* A model of run "r" with the given layer names (one snapshot-free run). */
static at_model *named(const char *const *names, int n)
{
    at_model *m = at_model_new();
    assert_non_null(m);
    assert_int_equal(at_model_add_run(m, "r", NULL, NULL), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(at_model_add_layer(m, 0, names[i], AT_KIND_LINEAR, 0, NULL), i);
    return m;
}

static at_blocks *table_of(const at_model *m, const at_names *nm)
{
    int n = at_model_num_layers(m, 0), idx[200];
    assert_true(n <= 200);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    int st = -99;
    at_blocks *t = at_blocks_new(m, 0, idx, n, nm, &st);
    assert_non_null(t);
    assert_int_equal(st, AT_OK);
    return t;
}

enum { LLAMA_BLOCKS = 16, LLAMA_LAYERS = 2 + 7 * LLAMA_BLOCKS };

static at_model *llama16(void)
{
    at_model *m = at_model_new();
    assert_non_null(m);
    at_synth_opts o = {.model = "LlamaForCausalLM", .transformer = 1};
    assert_int_equal(at_synth_run_opts(m, "llama", LLAMA_LAYERS, &o), 0);
    return m;
}

/* 16 Llama blocks: a row each between the embedding's row and the head's; seven columns q k v
 * o | gate up down; every cell holds the layer its block and column name (found by name). */
static void test_llama_table(void **state)
{
    (void)state;
    at_model *m = llama16();
    at_names nm;
    at_names_scan(&nm, m, 0);
    at_blocks *t = table_of(m, &nm);
    assert_int_equal(at_blocks_num_rows(t), LLAMA_BLOCKS + 2);
    assert_int_equal(at_blocks_num_blocks(t), LLAMA_BLOCKS);
    assert_int_equal(at_blocks_num_slots(t), 7);
    assert_true(at_blocks_has_attention(t));
    assert_true(at_blocks_available(m, 0));
    static const char *const keys[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                       "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                       "mlp.down_proj"};
    static const char *const roles[] = {"Q", "K", "V", "O", "gate", "up", "down"};
    for (int s = 0; s < 7; s++) {
        const at_block_slot *sl = at_blocks_slot(t, s);
        char key[64];
        snprintf(key, sizeof key, "%s.weight", keys[s]);
        assert_string_equal(sl->key, key);
        assert_string_equal(sl->label, strchr(keys[s], '.') + 1);
        assert_string_equal(sl->role, roles[s]);
        assert_int_equal(sl->group, s < 4 ? AT_GROUP_ATTN : AT_GROUP_MLP);
        assert_int_equal(sl->sep_before, s == 4); /* attention | MLP */
    }
    assert_null(at_blocks_slot(t, 7));
    assert_string_equal(at_blocks_row(t, 0)->label, "model.embed_tokens");
    assert_int_equal(at_blocks_row(t, 0)->layer,
                     at_model_find_layer(m, 0, "model.embed_tokens.weight"));
    assert_string_equal(at_blocks_row(t, LLAMA_BLOCKS + 1)->label, "lm_head");
    assert_int_equal(at_blocks_cell(t, 0, 0), at_blocks_row(t, 0)->layer);
    assert_int_equal(at_blocks_cell(t, 0, 1), -1);
    for (int b = 0; b < LLAMA_BLOCKS; b++) {
        char label[8];
        snprintf(label, sizeof label, "%d", b);
        assert_string_equal(at_blocks_row(t, b + 1)->label, label);
        assert_int_equal(at_blocks_row(t, b + 1)->layer, -1);
        for (int s = 0; s < 7; s++) {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", b, keys[s]);
            assert_int_equal(at_blocks_cell(t, b + 1, s), at_model_find_layer(m, 0, name));
            int r = -1, sl = -1;
            assert_true(at_blocks_find(t, at_model_find_layer(m, 0, name), &r, &sl));
            assert_int_equal(r, b + 1);
            assert_int_equal(sl, s);
        }
    }
    assert_int_equal(at_blocks_label_width(t), AT_BLOCKS_LABEL_MIN); /* "15" < "block" */
    at_blocks_free(t);

    /* a filter keeps what it shows: only the MLP, no lone rows, three columns */
    int idx[LLAMA_LAYERS], n = 0;
    for (int i = 0; i < LLAMA_LAYERS; i++)
        if (strstr(at_model_layer(m, 0, i)->name, ".mlp."))
            idx[n++] = i;
    t = at_blocks_new(m, 0, idx, n, &nm, NULL);
    assert_non_null(t);
    assert_int_equal(at_blocks_num_rows(t), LLAMA_BLOCKS);
    assert_int_equal(at_blocks_num_slots(t), 3);
    assert_false(at_blocks_has_attention(t));
    assert_string_equal(at_blocks_slot(t, 0)->role, "gate");
    assert_int_equal(at_blocks_slot(t, 0)->sep_before, 0);
    at_blocks_free(t);
    at_model_free(m);
}

/* The modular transformer: embed, one block without a number (labelled "-"), unembed. */
static void test_modular_table(void **state)
{
    (void)state;
    at_model *m = at_model_new();
    at_synth_opts o = {.transformer = AT_SYNTH_MODULAR};
    assert_int_equal(at_synth_run_opts(m, "mod", AT_SYNTH_MODULAR_LAYERS, &o), 0);
    assert_int_equal(at_model_layer(m, 0, 0)->kind, AT_KIND_EMBEDDING);
    at_names nm;
    at_names_scan(&nm, m, 0);
    at_blocks *t = table_of(m, &nm);
    assert_int_equal(at_blocks_num_rows(t), 3);
    assert_int_equal(at_blocks_num_blocks(t), 1);
    assert_string_equal(at_blocks_row(t, 0)->label, "embed");
    assert_string_equal(at_blocks_row(t, 1)->label, "-");
    assert_string_equal(at_blocks_row(t, 2)->label, "unembed");
    static const char *const labels[] = {"W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"};
    static const char *const roles[] = {"Q", "K", "V", "O", "in", "out"};
    assert_int_equal(at_blocks_num_slots(t), 6);
    for (int s = 0; s < 6; s++) {
        assert_string_equal(at_blocks_slot(t, s)->label, labels[s]);
        assert_string_equal(at_blocks_slot(t, s)->role, roles[s]);
        assert_int_equal(at_blocks_cell(t, 1, s), s + 1); /* model order: embed is layer 0 */
    }
    at_blocks_free(t);
    at_model_free(m);
}

/* GPT-2's two c_proj columns are told apart by their module; a decoder's self- and cross-
 * attention are separated; a numbered group without attention or MLP is lone layers; a layer
 * past the last slot gets a row of its own. */
static void test_other_tables(void **state)
{
    (void)state;
    const char *const gpt2[] = {"h.0.attn.c_attn", "h.0.attn.c_proj", "h.0.mlp.c_fc",
                                "h.0.mlp.c_proj",  "h.1.attn.c_attn", "h.1.attn.c_proj",
                                "h.1.mlp.c_fc",    "h.1.mlp.c_proj"};
    at_model *m = named(gpt2, 8);
    at_blocks *t = table_of(m, NULL);
    static const char *const labels[] = {"c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"};
    for (int s = 0; s < 4; s++)
        assert_string_equal(at_blocks_slot(t, s)->label, labels[s]);
    assert_string_equal(at_blocks_row(t, 1)->label, "h.1"); /* no names: the full block */
    at_blocks_free(t);
    at_model_free(m);

    const char *const dec[] = {"layers.0.self_attn.q_proj_weight",
                               "layers.0.self_attn.out_proj.weight",
                               "layers.0.multihead_attn.q_proj_weight",
                               "layers.0.multihead_attn.out_proj.weight",
                               "layers.0.linear1.weight",
                               "layers.0.linear2.weight",
                               "convs.0.conv.weight",
                               "convs.1.conv.weight",
                               "norm.weight"};
    m = named(dec, 9);
    t = table_of(m, NULL);
    assert_int_equal(at_blocks_num_slots(t), 6);
    static const int seps[] = {0, 0, 1, 0, 1, 0};
    for (int s = 0; s < 6; s++)
        assert_int_equal(at_blocks_slot(t, s)->sep_before, seps[s]);
    assert_string_equal(at_blocks_slot(t, 2)->module, "multihead_attn");
    assert_string_equal(at_blocks_slot(t, 0)->label, "self_attn.q_proj");
    assert_int_equal(at_blocks_num_rows(t), 4); /* the block, two convs, the norm */
    assert_int_equal(at_blocks_num_blocks(t), 1);
    assert_int_equal(at_blocks_row(t, 1)->layer, 6);
    assert_string_equal(at_blocks_row(t, 2)->label, "convs.1.conv.weight");
    at_blocks_free(t);
    at_model_free(m);

    /* one slot too many */
    char names[AT_BLOCKS_MAX_SLOTS + 2][64];
    const char *ptr[AT_BLOCKS_MAX_SLOTS + 2];
    for (int i = 0; i < AT_BLOCKS_MAX_SLOTS + 2; i++) {
        snprintf(names[i], sizeof names[i], "layers.0.attn.head%d.w", i);
        ptr[i] = names[i];
    }
    m = named(ptr, AT_BLOCKS_MAX_SLOTS + 2);
    t = table_of(m, NULL);
    assert_int_equal(at_blocks_num_slots(t), AT_BLOCKS_MAX_SLOTS);
    assert_int_equal(at_blocks_num_rows(t), 3);
    assert_int_equal(at_blocks_row(t, 2)->layer, AT_BLOCKS_MAX_SLOTS + 1);
    at_blocks_free(t);
    at_model_free(m);

    /* no attention anywhere: nothing for the block view */
    const char *const mlp[] = {"fc1.weight", "fc2.weight", "layers.0.fc1.weight"};
    m = named(mlp, 3);
    assert_false(at_blocks_available(m, 0));
    at_model_free(m);
}

/* Moving over the Llama table: Left/Right in reading order, Up/Down in the same column (or
 * the nearest one a row has), clamped at both ends. */
static void test_moves(void **state)
{
    (void)state;
    at_model *m = llama16();
    at_blocks *t = table_of(m, NULL);
    int embed = at_blocks_cell(t, 0, 0), head = at_blocks_cell(t, LLAMA_BLOCKS + 1, 0);
    int q0 = at_blocks_cell(t, 1, 0);
    assert_int_equal(at_blocks_step(t, q0, 1), at_blocks_cell(t, 1, 1));
    assert_int_equal(at_blocks_step(t, q0, -1), embed);
    assert_int_equal(at_blocks_step(t, embed, 1), q0);
    assert_int_equal(at_blocks_step(t, at_blocks_cell(t, 1, 6), 1), at_blocks_cell(t, 2, 0));
    assert_int_equal(at_blocks_step(t, embed, -5), embed);
    assert_int_equal(at_blocks_step(t, embed, 10000), head);
    assert_int_equal(at_blocks_vertical(t, at_blocks_cell(t, 3, 5), 1), at_blocks_cell(t, 4, 5));
    assert_int_equal(at_blocks_vertical(t, at_blocks_cell(t, 3, 5), -2), at_blocks_cell(t, 1, 5));
    assert_int_equal(at_blocks_vertical(t, at_blocks_cell(t, 16, 5), 1), head);
    assert_int_equal(at_blocks_vertical(t, head, -1), at_blocks_cell(t, 16, 0));
    assert_int_equal(at_blocks_vertical(t, embed, -3), embed);
    assert_int_equal(at_blocks_vertical(t, embed, 100), head);
    assert_int_equal(at_blocks_step(t, 9999, 1), 9999); /* not in the table: stays */
    at_blocks_free(t);
    at_model_free(m);
}

/* Fitting widths: values only at 80 columns, history from 120, at most AT_BLOCKS_SPARK_MAX;
 * cells never overlap and slot_at finds each. */
static void test_fit(void **state)
{
    (void)state;
    at_model *m = llama16();
    at_blocks *t = table_of(m, NULL);
    const int widths[] = {40, 50, 80, 120, 159, 200, 400};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        at_blocks_geom g;
        at_blocks_fit(t, 5, widths[i], &g);
        assert_true(g.width <= widths[i]);
        assert_true(g.nslots >= 1);
        if (widths[i] >= 80)
            assert_int_equal(g.nslots, 7);
        if (widths[i] == 80)
            assert_int_equal(g.spark, 0);
        if (widths[i] >= 120) {
            assert_true(g.spark >= AT_BLOCKS_SPARK_SIDE && g.spark <= AT_BLOCKS_SPARK_MAX);
            assert_int_equal(g.cell_w, g.spark + AT_BLOCKS_VALUE_W);
        }
        if (widths[i] == 400)
            assert_int_equal(g.spark, AT_BLOCKS_SPARK_MAX);
        for (int s = 0; s < g.nslots; s++) {
            assert_true(g.x[s] > g.label_w);
            if (s > 0)
                assert_true(g.x[s] >= g.x[s - 1] + g.cell_w + 1 + 2 * (s == 4));
            assert_int_equal(at_blocks_slot_at(&g, g.x[s]), s);
            assert_int_equal(at_blocks_slot_at(&g, g.x[s] + g.cell_w - 1), s);
        }
        assert_int_equal(at_blocks_slot_at(&g, 0), -1);
    }
    assert_int_equal(at_blocks_width(t, 5, 0), 5 + 1 + 2 + 7 * 8 - 1);
    assert_int_equal(at_blocks_width(t, 5, 8), 5 + 1 + 2 + 7 * 16 - 1);
    at_blocks_free(t);
    at_model_free(m);
}

static void test_bad_input(void **state)
{
    (void)state;
    int st = 0;
    assert_null(at_blocks_new(NULL, 0, NULL, 0, NULL, &st));
    assert_int_equal(st, AT_ERR_ARG);
    at_model *m = llama16();
    int idx[2] = {0, LLAMA_LAYERS};
    st = 0;
    assert_null(at_blocks_new(m, 0, idx, 2, NULL, &st));
    assert_int_equal(st, AT_ERR_ARG);
    st = 0;
    assert_null(at_blocks_new(m, 0, idx, -1, NULL, &st));
    assert_int_equal(st, AT_ERR_ARG);
    st = 0;
    assert_null(at_blocks_new(m, 0, NULL, 3, NULL, &st));
    assert_int_equal(st, AT_ERR_ARG);
    at_blocks *t = at_blocks_new(m, 0, NULL, 0, NULL, NULL); /* nothing shown: an empty table */
    assert_non_null(t);
    assert_int_equal(at_blocks_num_rows(t), 0);
    assert_int_equal(at_blocks_cell(t, 0, 0), -1);
    assert_null(at_blocks_row(t, 0));
    at_blocks_free(t);
    at_blocks_free(NULL);
    /* the modular transformer has 8 layers, no other number */
    at_synth_opts o = {.transformer = AT_SYNTH_MODULAR};
    assert_int_equal(at_synth_run_opts(m, "mod", 7, &o), AT_ERR_ARG);
    at_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),      cmocka_unit_test(test_llama_table),
        cmocka_unit_test(test_modular_table), cmocka_unit_test(test_other_tables),
        cmocka_unit_test(test_moves),         cmocka_unit_test(test_fit),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
