/* SPDX-License-Identifier: Apache-2.0 */
/* blocks.c -- a transformer's layers grouped by block: names classified, the table, its fit. */
#include "blocks.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- one name ---------------------------------------------------------------------------- */

typedef struct seg {
    const char *s;
    size_t n;
} seg;

enum { MAX_SEGS = 32, MAX_NAME = 256 };

/* Segment s is lit (both lower case). */
static int seg_is(seg s, const char *lit)
{
    return s.n > 0 && s.s[0] == lit[0] && s.n == strlen(lit) && !memcmp(s.s, lit, s.n);
}

/* Segment s contains the n bytes of lit (both lower case). */
static int seg_has_n(seg s, const char *lit, size_t n)
{
    for (size_t i = 0; i + n <= s.n; i++)
        if (s.s[i] == lit[0] && !memcmp(s.s + i, lit, n))
            return 1;
    return 0;
}

/* seg_has_n of a string literal (this runs for every name of every frame) */
#define seg_has(s, lit) seg_has_n(s, lit, sizeof lit - 1)

/* All digits, or ending in "_<digits>" ("3", "encoder_layer_0"). */
static int numbered(seg s)
{
    size_t i = s.n;
    while (i > 0 && isdigit((unsigned char)s.s[i - 1]))
        i--;
    return i < s.n && (i == 0 || s.s[i - 1] == '_');
}

/* The name's segments, less a trailing "weight" segment or "_weight" suffix (lower case). */
static int split(const char *name, seg *out)
{
    int n = 0;
    for (const char *p = name; n < MAX_SEGS;) {
        const char *dot = strchr(p, '.');
        out[n].s = p;
        out[n].n = dot ? (size_t)(dot - p) : strlen(p);
        n++;
        if (!dot)
            break;
        p = dot + 1;
    }
    if (n > 1 && seg_is(out[n - 1], "weight"))
        n--;
    else if (out[n - 1].n > 7 && !memcmp(out[n - 1].s + out[n - 1].n - 7, "_weight", 7))
        out[n - 1].n -= 7;
    return n;
}

typedef struct leaf_rule {
    const char *leaf; /* lower case */
    at_group group;
    const char *role;
    int needs_attn; /* 1: only under an attention segment (the name alone is ambiguous) */
} leaf_rule;

static const leaf_rule leaves[] = {
    {"q_proj", AT_GROUP_ATTN, "Q", 0},
    {"w_q", AT_GROUP_ATTN, "Q", 0},
    {"query", AT_GROUP_ATTN, "Q", 0},
    {"q_lin", AT_GROUP_ATTN, "Q", 0},
    {"to_q", AT_GROUP_ATTN, "Q", 0},
    {"wq", AT_GROUP_ATTN, "Q", 1},
    {"q", AT_GROUP_ATTN, "Q", 1},
    {"k_proj", AT_GROUP_ATTN, "K", 0},
    {"w_k", AT_GROUP_ATTN, "K", 0},
    {"key", AT_GROUP_ATTN, "K", 0},
    {"k_lin", AT_GROUP_ATTN, "K", 0},
    {"to_k", AT_GROUP_ATTN, "K", 0},
    {"wk", AT_GROUP_ATTN, "K", 1},
    {"k", AT_GROUP_ATTN, "K", 1},
    {"v_proj", AT_GROUP_ATTN, "V", 0},
    {"w_v", AT_GROUP_ATTN, "V", 0},
    {"value", AT_GROUP_ATTN, "V", 0},
    {"v_lin", AT_GROUP_ATTN, "V", 0},
    {"to_v", AT_GROUP_ATTN, "V", 0},
    {"wv", AT_GROUP_ATTN, "V", 1},
    {"v", AT_GROUP_ATTN, "V", 1},
    {"o_proj", AT_GROUP_ATTN, "O", 0},
    {"w_o", AT_GROUP_ATTN, "O", 0},
    {"out_proj", AT_GROUP_ATTN, "O", 0},
    {"out_lin", AT_GROUP_ATTN, "O", 0},
    {"to_out", AT_GROUP_ATTN, "O", 1},
    {"wo", AT_GROUP_ATTN, "O", 1},
    {"o", AT_GROUP_ATTN, "O", 1},
    {"dense", AT_GROUP_ATTN, "O", 1},
    {"c_proj", AT_GROUP_ATTN, "O", 1},
    {"c_attn", AT_GROUP_ATTN, "QKV", 0},
    {"query_key_value", AT_GROUP_ATTN, "QKV", 0},
    {"qkv_proj", AT_GROUP_ATTN, "QKV", 0},
    {"wqkv", AT_GROUP_ATTN, "QKV", 0},
    {"qkv", AT_GROUP_ATTN, "QKV", 0},
    {"in_proj", AT_GROUP_ATTN, "QKV", 0},
    {"to_qkv", AT_GROUP_ATTN, "QKV", 0},
    {"gate_proj", AT_GROUP_MLP, "gate", 0},
    {"up_proj", AT_GROUP_MLP, "up", 0},
    {"down_proj", AT_GROUP_MLP, "down", 0},
    {"gate_up_proj", AT_GROUP_MLP, "gate_up", 0},
    {"fc1", AT_GROUP_MLP, "fc1", 0},
    {"fc2", AT_GROUP_MLP, "fc2", 0},
    {"c_fc", AT_GROUP_MLP, "fc", 0},
    {"w_in", AT_GROUP_MLP, "in", 0},
    {"w_out", AT_GROUP_MLP, "out", 0},
    {"dense_h_to_4h", AT_GROUP_MLP, "in", 0},
    {"dense_4h_to_h", AT_GROUP_MLP, "out", 0},
    {"fc_in", AT_GROUP_MLP, "in", 0},
    {"fc_out", AT_GROUP_MLP, "out", 0},
    {"linear1", AT_GROUP_MLP, "lin1", 0},
    {"linear2", AT_GROUP_MLP, "lin2", 0},
    {"lin1", AT_GROUP_MLP, "lin1", 0},
    {"lin2", AT_GROUP_MLP, "lin2", 0},
    {"w1", AT_GROUP_MLP, "w1", 0},
    {"w2", AT_GROUP_MLP, "w2", 0},
    {"w3", AT_GROUP_MLP, "w3", 0},
    {"wi", AT_GROUP_MLP, "wi", 0},
};

/* The segments (before the last) that put a layer into an MLP. */
static int mlp_segment(seg s)
{
    return seg_has(s, "mlp") || seg_has(s, "ffn") || seg_has(s, "feed_forward") ||
           seg_has(s, "feedforward") || seg_has(s, "densereludense") ||
           seg_has(s, "intermediate") || seg_is(s, "ff") || seg_is(s, "output");
}

/* The n bytes at s into buf (cap bytes), cut to fit. */
static void copy_seg(char *buf, size_t cap, const char *s, size_t n)
{
    n = n < cap - 1 ? n : cap - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
}

void at_blocks_classify(const char *name, at_name_part *out)
{
    memset(out, 0, sizeof *out);
    out->block_len = -1;
    /* compared in lower case; offsets into low are offsets into name */
    char low[MAX_NAME];
    size_t len = 0;
    for (; name[len] && len + 1 < sizeof low; len++)
        low[len] = (char)tolower((unsigned char)name[len]);
    low[len] = 0;
    seg sg[MAX_SEGS];
    int n = split(low, sg);
    seg leaf = sg[n - 1];
    int attn = -1, mlp = 0;
    for (int i = 0; i < n - 1; i++) {
        if (out->block_len < 0 && numbered(sg[i]))
            out->block_len = (int)(sg[i].s + sg[i].n - low);
        if (attn < 0 && (seg_has(sg[i], "attn") || seg_has(sg[i], "attention")))
            attn = i;
        mlp |= mlp_segment(sg[i]);
    }
    const leaf_rule *rule = NULL;
    for (size_t i = 0; !rule && i < sizeof leaves / sizeof leaves[0]; i++)
        if (seg_is(leaf, leaves[i].leaf) && (!leaves[i].needs_attn || attn >= 0))
            rule = &leaves[i];
    /* the module a matrix sits in decides over what its own name suggests */
    out->group = attn >= 0 ? AT_GROUP_ATTN
                 : mlp     ? AT_GROUP_MLP
                 : rule    ? rule->group
                           : AT_GROUP_OTHER;
    if (rule && rule->group == out->group)
        copy_seg(out->role, sizeof out->role, rule->role, strlen(rule->role));
    else
        copy_seg(out->role, sizeof out->role, name + (leaf.s - low), leaf.n);
    if (attn >= 0)
        copy_seg(out->module, sizeof out->module, name + (sg[attn].s - low), sg[attn].n);
}

int at_blocks_available(const at_model *m, int run)
{
    for (int i = 0; i < at_model_num_layers(m, run); i++) {
        at_name_part p;
        at_blocks_classify(at_model_layer(m, run, i)->name, &p);
        if (p.group == AT_GROUP_ATTN)
            return 1;
    }
    return 0;
}

/* ---- the table --------------------------------------------------------------------------- */

struct at_blocks {
    int nrows, nslots, nblocks, attention;
    at_block_row *rows;
    int *cells; /* nrows x AT_BLOCKS_MAX_SLOTS layer indices, -1 none */
    at_block_slot slots[AT_BLOCKS_MAX_SLOTS];
};

/* A distinct block of the layers shown. */
typedef struct bkey {
    const char *name; /* its first layer's name */
    int len;          /* bytes naming the block; 0: the block without a number */
    int real;         /* 1: holds an attention or MLP matrix (a block row), else lone layers */
    int row;          /* its row once made; -1 before */
} bkey;

/* Index of the block name[0..len) in keys[0..n), or -1. */
static int find_key(const bkey *keys, int n, const char *name, int len)
{
    for (int k = n - 1; k >= 0; k--) /* newest first: layers of a block come together */
        if (keys[k].len == len && !strncmp(keys[k].name, name, (size_t)len))
            return k;
    return -1;
}

static int new_row(at_blocks *t, const char *label, int layer)
{
    at_block_row *r = &t->rows[t->nrows];
    snprintf(r->label, sizeof r->label, "%s", label);
    r->layer = layer;
    for (int s = 0; s < AT_BLOCKS_MAX_SLOTS; s++)
        t->cells[(size_t)t->nrows * AT_BLOCKS_MAX_SLOTS + (size_t)s] = -1;
    return t->nrows++;
}

/* The slot for key (name after the block) of part p, made when new; -1 when all are taken. */
static int slot_for(at_blocks *t, const char *key, const at_name_part *p)
{
    for (int s = 0; s < t->nslots; s++)
        if (!strcmp(t->slots[s].key, key))
            return s;
    if (t->nslots == AT_BLOCKS_MAX_SLOTS)
        return -1;
    at_block_slot *sl = &t->slots[t->nslots];
    snprintf(sl->key, sizeof sl->key, "%s", key);
    snprintf(sl->role, sizeof sl->role, "%s", p->role);
    snprintf(sl->module, sizeof sl->module, "%s", p->module);
    sl->group = p->group;
    return t->nslots++;
}

/* The key without its trailing "weight" segment or "_weight" suffix, into buf. */
static void key_stem(const char *key, char *buf, size_t cap)
{
    seg sg[MAX_SEGS];
    int n = split(key, sg);
    snprintf(buf, cap, "%.*s", (int)(sg[n - 1].s + sg[n - 1].n - key), key);
}

/* Slots in group order (attention, MLP, other; stable), their labels and separators; the
 * cells follow their slots. */
static void order_slots(at_blocks *t)
{
    static const at_group order[] = {AT_GROUP_ATTN, AT_GROUP_MLP, AT_GROUP_OTHER};
    at_block_slot sorted[AT_BLOCKS_MAX_SLOTS];
    int from[AT_BLOCKS_MAX_SLOTS], k = 0;
    for (size_t g = 0; g < sizeof order / sizeof order[0]; g++)
        for (int s = 0; s < t->nslots; s++)
            if (t->slots[s].group == order[g]) {
                from[k] = s;
                sorted[k++] = t->slots[s];
            }
    memcpy(t->slots, sorted, (size_t)k * sizeof sorted[0]);
    int tmp[AT_BLOCKS_MAX_SLOTS];
    for (int r = 0; r < t->nrows; r++) {
        int *c = &t->cells[(size_t)r * AT_BLOCKS_MAX_SLOTS];
        for (int s = 0; s < k; s++)
            tmp[s] = c[from[s]];
        memcpy(c, tmp, (size_t)k * sizeof tmp[0]);
    }
    char stems[AT_BLOCKS_MAX_SLOTS][128];
    for (int s = 0; s < k; s++) {
        at_block_slot *sl = &t->slots[s];
        key_stem(sl->key, stems[s], sizeof stems[s]);
        const char *dot = strrchr(stems[s], '.');
        snprintf(sl->label, sizeof sl->label, "%.47s", dot ? dot + 1 : stems[s]);
        sl->sep_before = s > 0 && (sl->group != t->slots[s - 1].group ||
                                   strcmp(sl->module, t->slots[s - 1].module));
    }
    /* a last segment two slots share (GPT-2's attn.c_proj and mlp.c_proj) or a bare number
     * (mlp.0) says too little: such columns are labelled by their whole stem */
    int shared[AT_BLOCKS_MAX_SLOTS];
    for (int s = 0; s < k; s++) {
        shared[s] = isdigit((unsigned char)t->slots[s].label[0]);
        for (int o = 0; o < k && !shared[s]; o++)
            shared[s] = o != s && !strcmp(t->slots[o].label, t->slots[s].label);
    }
    for (int s = 0; s < k; s++)
        if (shared[s])
            snprintf(t->slots[s].label, sizeof t->slots[s].label, "%.47s", stems[s]);
}

/* Fills the table: parts of every shown layer, its block keys, then rows in model order. */
static int build(at_blocks *t, const at_model *m, int run, const char *shown, int nl,
                 const at_names *names)
{
    at_name_part *parts = malloc((size_t)nl * sizeof *parts);
    bkey *keys = malloc((size_t)nl * sizeof *keys);
    int *kof = malloc((size_t)nl * sizeof *kof);
    if (!parts || !keys || !kof) {
        free(parts);
        free(keys);
        free(kof);
        return AT_ERR_NOMEM;
    }
    int nk = 0;
    for (int i = 0; i < nl; i++) {
        kof[i] = -1;
        if (!shown[i])
            continue;
        const char *name = at_model_layer(m, run, i)->name;
        at_blocks_classify(name, &parts[i]);
        int len = parts[i].block_len;
        if (len < 0 && parts[i].group == AT_GROUP_OTHER)
            continue; /* a lone layer */
        len = len < 0 ? 0 : len;
        int k = find_key(keys, nk, name, len);
        if (k < 0) {
            k = nk++;
            keys[k] = (bkey){name, len, 0, -1};
        }
        keys[k].real |= parts[i].group != AT_GROUP_OTHER;
        kof[i] = k;
    }
    char label[sizeof t->rows[0].label]; /* a row's label: longer names are cut there anyway */
    for (int i = 0; i < nl; i++) {
        if (!shown[i])
            continue;
        const char *name = at_model_layer(m, run, i)->name;
        int k = kof[i], s = -1;
        if (k >= 0 && keys[k].real) {
            const char *key = name + keys[k].len + (keys[k].len > 0 && name[keys[k].len] == '.');
            s = slot_for(t, key, &parts[i]);
        }
        if (s < 0) {
            new_row(t, names ? at_names_short(names, name, label, sizeof label) : name, i);
            continue;
        }
        if (keys[k].row < 0) {
            char block[300];
            snprintf(block, sizeof block, "%.*s", keys[k].len, name);
            if (!keys[k].len)
                snprintf(label, sizeof label, "-");
            else if (names)
                at_names_short(names, block, label, sizeof label);
            else
                snprintf(label, sizeof label, "%.*s", keys[k].len, name);
            keys[k].row = new_row(t, label, -1);
            t->nblocks++;
        }
        t->cells[(size_t)keys[k].row * AT_BLOCKS_MAX_SLOTS + (size_t)s] = i;
        t->attention |= parts[i].group == AT_GROUP_ATTN;
    }
    free(parts);
    free(keys);
    free(kof);
    order_slots(t);
    return AT_OK;
}

at_blocks *at_blocks_new(const at_model *m, int run, const int *idx, int n, const at_names *names,
                         int *status)
{
    int st = AT_OK, nl = m ? at_model_num_layers(m, run) : 0;
    at_blocks *t = NULL;
    char *shown = NULL;
    if (!m || n < 0 || (n > 0 && !idx)) {
        st = AT_ERR_ARG;
        goto err;
    }
    t = calloc(1, sizeof *t);
    shown = calloc((size_t)(nl > 0 ? nl : 1), 1);
    if (!t || !shown)
        goto nomem;
    t->rows = malloc((size_t)(n > 0 ? n : 1) * sizeof *t->rows);
    t->cells = malloc((size_t)(n > 0 ? n : 1) * AT_BLOCKS_MAX_SLOTS * sizeof *t->cells);
    if (!t->rows || !t->cells)
        goto nomem;
    for (int i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= nl) {
            st = AT_ERR_ARG;
            goto err;
        }
        shown[idx[i]] = 1;
    }
    if ((st = build(t, m, run, shown, nl, names)) < 0)
        goto err;
    free(shown);
    if (status)
        *status = AT_OK;
    return t;
nomem:
    st = AT_ERR_NOMEM;
err:
    free(shown);
    at_blocks_free(t);
    if (status)
        *status = st;
    return NULL;
}

void at_blocks_free(at_blocks *self)
{
    if (!self)
        return;
    free(self->rows);
    free(self->cells);
    free(self);
}

int at_blocks_num_rows(const at_blocks *self)
{
    return self->nrows;
}

int at_blocks_num_slots(const at_blocks *self)
{
    return self->nslots;
}

int at_blocks_num_blocks(const at_blocks *self)
{
    return self->nblocks;
}

int at_blocks_has_attention(const at_blocks *self)
{
    return self->attention;
}

const at_block_row *at_blocks_row(const at_blocks *self, int r)
{
    return r >= 0 && r < self->nrows ? &self->rows[r] : NULL;
}

const at_block_slot *at_blocks_slot(const at_blocks *self, int s)
{
    return s >= 0 && s < self->nslots ? &self->slots[s] : NULL;
}

int at_blocks_cell(const at_blocks *self, int r, int s)
{
    if (r < 0 || r >= self->nrows || s < 0 || s >= self->nslots)
        return -1;
    if (self->rows[r].layer >= 0)
        return s == 0 ? self->rows[r].layer : -1;
    return self->cells[(size_t)r * AT_BLOCKS_MAX_SLOTS + (size_t)s];
}

int at_blocks_find(const at_blocks *self, int layer, int *row, int *slot)
{
    for (int r = 0; layer >= 0 && r < self->nrows; r++)
        for (int s = 0; s < self->nslots; s++)
            if (at_blocks_cell(self, r, s) == layer) {
                *row = r;
                *slot = s;
                return 1;
            }
    return 0;
}

int at_blocks_step(const at_blocks *self, int layer, int d)
{
    int r, s;
    if (!at_blocks_find(self, layer, &r, &s))
        return layer;
    int dir = d > 0 ? 1 : -1, left = d > 0 ? d : -d;
    for (int rr = r, ss = s + dir; left > 0 && rr >= 0 && rr < self->nrows; ss += dir) {
        if (ss < 0 || ss >= self->nslots) {
            rr += dir;
            ss = dir > 0 ? -1 : self->nslots;
            continue;
        }
        int l = at_blocks_cell(self, rr, ss);
        if (l >= 0) {
            layer = l;
            left--;
        }
    }
    return layer;
}

int at_blocks_vertical(const at_blocks *self, int layer, int d)
{
    int r, s;
    if (!at_blocks_find(self, layer, &r, &s))
        return layer;
    r += d;
    r = r < 0 ? 0 : r >= self->nrows ? self->nrows - 1 : r;
    for (int off = 0; off < self->nslots; off++) {
        int l = at_blocks_cell(self, r, s - off);
        if (l < 0)
            l = at_blocks_cell(self, r, s + off);
        if (l >= 0)
            return l;
    }
    return layer;
}

int at_blocks_label_width(const at_blocks *self)
{
    int w = AT_BLOCKS_LABEL_MIN;
    for (int r = 0; r < self->nrows; r++) {
        int l = (int)strlen(self->rows[r].label);
        if (self->rows[r].layer < 0 && l > w)
            w = l;
    }
    return w < AT_BLOCKS_LABEL_MAX ? w : AT_BLOCKS_LABEL_MAX;
}

/* ---- fitting a width --------------------------------------------------------------------- */

static int separators(const at_blocks *t, int nslots)
{
    int n = 0;
    for (int s = 0; s < nslots; s++)
        n += t->slots[s].sep_before;
    return n;
}

/* Places the first nslots slots of cell_w columns after label_w columns of labels; returns
 * the width used. */
static int place(const at_blocks *t, int label_w, int cell_w, int nslots, at_blocks_geom *g)
{
    int x = label_w + 1;
    for (int s = 0; s < nslots; s++) {
        if (t->slots[s].sep_before)
            x += 2; /* "│ " */
        if (g)
            g->x[s] = x;
        x += cell_w + 1;
    }
    return x - 1;
}

static int cell_width(int spark)
{
    return spark > 0 ? spark + AT_BLOCKS_VALUE_W : AT_BLOCKS_VALUE_W;
}

int at_blocks_width(const at_blocks *self, int label_w, int spark)
{
    return place(self, label_w, cell_width(spark), self->nslots, NULL);
}

void at_blocks_fit(const at_blocks *self, int label_w, int width, at_blocks_geom *g)
{
    memset(g, 0, sizeof *g);
    g->label_w = label_w;
    int n = self->nslots;
    if (n == 0) {
        g->width = label_w;
        return;
    }
    int pitch = (width - label_w - 2 * separators(self, n)) / n; /* a cell and its gap */
    int cell = pitch - 1;
    if (cell >= cell_width(AT_BLOCKS_SPARK_MIN)) {
        g->spark = cell - AT_BLOCKS_VALUE_W;
        g->spark = g->spark < AT_BLOCKS_SPARK_MAX ? g->spark : AT_BLOCKS_SPARK_MAX;
        cell = cell_width(g->spark);
    } else if (cell > AT_BLOCKS_VALUE_W) {
        cell = AT_BLOCKS_VALUE_W;
    }
    if (cell < 1) {
        cell = 1;
        while (n > 1 && place(self, label_w, cell, n, NULL) > width)
            n--;
    }
    g->cell_w = cell;
    g->nslots = n;
    g->width = place(self, label_w, cell, n, g);
}

int at_blocks_slot_at(const at_blocks_geom *g, int x)
{
    for (int s = 0; s < g->nslots; s++)
        if (x >= g->x[s] && x < g->x[s] + g->cell_w)
            return s;
    return -1;
}
