/* SPDX-License-Identifier: Apache-2.0 */
/* pickle.c -- the restricted unpickler (see pickle.h). Opcode meanings follow CPython's
 * Lib/pickle.py and pickletools.py; only what builds data is implemented. */
#include "pickle.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/status.h"

/* A state dict is a dict of tensors; a training checkpoint nests it a level or two deeper. */
#define PKL_MAX_DEPTH 64

typedef enum vtype {
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_BYTES,
    V_TUPLE,
    V_LIST,
    V_DICT,
    V_GLOBAL,
    V_STORAGE,
    V_TENSOR
} vtype;

typedef enum glob {
    G_ODICT,
    G_REBUILD_V2,
    G_REBUILD_PARAM,
    G_REBUILD_PARAM_STATE,
    G_FROM_TYPE,
    G_TENSOR_CLS,
    G_PARAM_CLS,
    G_STORAGE_CLS
} glob;

static const struct {
    const char *module, *name;
    glob g;
} allowed[] = {
    {"collections", "OrderedDict", G_ODICT},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM},
    {"torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAM_STATE},
    {"torch._tensor", "_rebuild_from_type_v2", G_FROM_TYPE},
    {"torch", "Tensor", G_TENSOR_CLS},
    {"torch.nn.parameter", "Parameter", G_PARAM_CLS},
};

typedef struct val val;
struct val {
    vtype t;
    int64_t i;     /* BOOL, INT; GLOBAL: its glob; STORAGE: index into storages */
    double f;      /* FLOAT */
    const char *s; /* STR, BYTES (into the pickle, not terminated); GLOBAL storage: type name */
    size_t n;
    val **items; /* TUPLE, LIST; DICT: key, value, key, value, ... */
    size_t len, cap;
    at_pkl_tensor *tensor; /* TENSOR (name unset) */
};

struct at_pkl {
    const unsigned char *p, *end, *op; /* input, its end, the opcode being run */
    val **vals;                        /* every value made, for freeing */
    size_t nvals, capvals;
    val **stack;
    size_t nstack, capstack;
    size_t *marks;
    size_t nmarks, capmarks;
    val **memo;
    size_t nmemo, capmemo;
    at_pkl_storage *storages;
    size_t nstorages, capstorages;
    at_pkl_tensor *tensors;
    size_t ntensors, captensors;
    char *path; /* name being built by the walk */
    size_t pathlen, pathcap;
    size_t visits; /* walk steps: bounded, since shared values could make the walk explode */
    char error[300];
};

/* Grows *arr (of *cap elements of size esz) to hold need elements. 0 or AT_ERR_NOMEM. */
static int grow(void *arr, size_t *cap, size_t need, size_t esz)
{
    if (need <= *cap)
        return AT_OK;
    size_t cap2 = *cap ? *cap : 8;
    while (cap2 < need)
        cap2 *= 2;
    void *n = realloc(*(void **)arr, cap2 * esz);
    if (!n)
        return AT_ERR_NOMEM;
    *(void **)arr = n;
    *cap = cap2;
    return AT_OK;
}

static int fail(at_pkl *k, int status, const char *fmt, ...)
{
    char msg[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (k->op)
        snprintf(k->error, sizeof k->error, "pickle byte %zu: %s", (size_t)(k->op - k->p), msg);
    else
        snprintf(k->error, sizeof k->error, "pickle: %s", msg);
    return status;
}

/* A name from the file, made safe to print: at most 60 characters, non-printables as '?'. */
static const char *printable(const char *s, size_t n, char *buf, size_t bufn)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < bufn && i < 60; i++)
        buf[k++] = isprint((unsigned char)s[i]) ? s[i] : '?';
    if (n > 60 && k + 4 < bufn)
        k += (size_t)snprintf(buf + k, bufn - k, "...");
    buf[k] = '\0';
    return buf;
}

static val *new_val(at_pkl *k, vtype t)
{
    if (grow(&k->vals, &k->capvals, k->nvals + 1, sizeof *k->vals) < 0)
        return NULL;
    val *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->t = t;
    k->vals[k->nvals++] = v;
    return v;
}

static int push(at_pkl *k, val *v)
{
    if (!v || grow(&k->stack, &k->capstack, k->nstack + 1, sizeof *k->stack) < 0)
        return fail(k, AT_ERR_NOMEM, "out of memory");
    k->stack[k->nstack++] = v;
    return AT_OK;
}

/* Bottom of the values above the innermost mark (0 without one). */
static size_t mark_base(const at_pkl *k)
{
    return k->nmarks ? k->marks[k->nmarks - 1] : 0;
}

static val *pop(at_pkl *k)
{
    if (k->nstack <= mark_base(k)) {
        fail(k, AT_ERR_FORMAT, "stack underflow");
        return NULL;
    }
    return k->stack[--k->nstack];
}

static val *top(at_pkl *k)
{
    if (k->nstack <= mark_base(k)) {
        fail(k, AT_ERR_FORMAT, "stack underflow");
        return NULL;
    }
    return k->stack[k->nstack - 1];
}

static int add_item(at_pkl *k, val *c, val *item)
{
    if (grow(&c->items, &c->cap, c->len + 1, sizeof *c->items) < 0)
        return fail(k, AT_ERR_NOMEM, "out of memory");
    c->items[c->len++] = item;
    return AT_OK;
}

/* Moves the values above the innermost mark into c (NULL: drop them) and removes the mark. */
static int pop_mark(at_pkl *k, val *c)
{
    if (!k->nmarks)
        return fail(k, AT_ERR_FORMAT, "no MARK to pop to");
    size_t base = k->marks[--k->nmarks];
    for (size_t i = base; c && i < k->nstack; i++)
        if (add_item(k, c, k->stack[i]) < 0)
            return AT_ERR_NOMEM;
    k->nstack = base;
    return AT_OK;
}

/* Reads n bytes of argument; NULL (and an error) past the end. */
static const unsigned char *take(at_pkl *k, const unsigned char **q, uint64_t n)
{
    if (n > (uint64_t)(k->end - *q)) {
        fail(k, AT_ERR_FORMAT, "truncated: argument of %llu bytes runs past the end",
             (unsigned long long)n);
        return NULL;
    }
    const unsigned char *r = *q;
    *q += n;
    return r;
}

static uint64_t le(const unsigned char *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static int push_int(at_pkl *k, int64_t i)
{
    val *v = new_val(k, V_INT);
    if (v)
        v->i = i;
    return push(k, v);
}

static int push_str(at_pkl *k, vtype t, const unsigned char *s, uint64_t n)
{
    val *v = new_val(k, t);
    if (v) {
        v->s = (const char *)s;
        v->n = (size_t)n;
    }
    return push(k, v);
}

static int str_is(const val *v, const char *s)
{
    return v->t == V_STR && v->n == strlen(s) && !memcmp(v->s, s, v->n);
}

static int find_global(at_pkl *k, const char *mod, size_t nmod, const char *name, size_t nname)
{
    char a[80], b[80];
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (nmod == strlen(allowed[i].module) && !memcmp(mod, allowed[i].module, nmod) &&
            nname == strlen(allowed[i].name) && !memcmp(name, allowed[i].name, nname))
            return (int)allowed[i].g;
    int storage = nmod == 5 && !memcmp(mod, "torch", 5) && nname > 7 && nname < 40 &&
                  !memcmp(name + nname - 7, "Storage", 7);
    for (size_t i = 0; storage && i < nname; i++)
        storage = isalnum((unsigned char)name[i]) || name[i] == '_';
    if (storage)
        return G_STORAGE_CLS;
    return fail(k, AT_ERR_UNSUPPORTED,
                "global %s.%s is not allowed: only tensors and state dicts are read, nothing in "
                "the file is run (a whole pickled model: save its state_dict() instead)",
                printable(mod, nmod, a, sizeof a), printable(name, nname, b, sizeof b));
}

static int push_global(at_pkl *k, const char *mod, size_t nmod, const char *name, size_t nname)
{
    int g = find_global(k, mod, nmod, name, nname);
    if (g < 0)
        return g;
    val *v = new_val(k, V_GLOBAL);
    if (v) {
        v->i = g;
        v->s = name;
        v->n = nname;
    }
    return push(k, v);
}

/* GLOBAL's argument: "module\nname\n". */
static int op_global(at_pkl *k, const unsigned char **q)
{
    const unsigned char *m = *q, *nl1 = memchr(m, '\n', (size_t)(k->end - m));
    const unsigned char *nm = nl1 ? nl1 + 1 : NULL;
    const unsigned char *nl2 = nm ? memchr(nm, '\n', (size_t)(k->end - nm)) : NULL;
    if (!nl2)
        return fail(k, AT_ERR_FORMAT, "GLOBAL without its two lines");
    *q = nl2 + 1;
    return push_global(k, (const char *)m, (size_t)(nl1 - m), (const char *)nm, (size_t)(nl2 - nm));
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* torch's persistent id of a storage: ('storage', torch.<Type>Storage, key, location, numel). */
static int op_persid(at_pkl *k)
{
    val *pid = pop(k);
    if (!pid)
        return AT_ERR_FORMAT;
    if (pid->t != V_TUPLE || pid->len != 5 || !str_is(pid->items[0], "storage") ||
        pid->items[1]->t != V_GLOBAL || pid->items[1]->i != G_STORAGE_CLS ||
        pid->items[2]->t != V_STR || pid->items[3]->t != V_STR || pid->items[4]->t != V_INT ||
        pid->items[4]->i < 0)
        return fail(k, AT_ERR_FORMAT,
                    "persistent id is not ('storage', torch.<Type>Storage, key, location, numel)");
    const val *type = pid->items[1], *key = pid->items[2];
    int64_t numel = pid->items[4]->i;
    char a[80];
    if (!key->n || key->n > 64)
        return fail(k, AT_ERR_FORMAT, "storage key of %zu characters", key->n);
    for (size_t i = 0; i < key->n; i++)
        if (!isalnum((unsigned char)key->s[i]) && key->s[i] != '_')
            return fail(k, AT_ERR_FORMAT, "storage key '%s' is not a plain name",
                        printable(key->s, key->n, a, sizeof a));
    size_t idx = 0;
    while (idx < k->nstorages &&
           (strlen(k->storages[idx].key) != key->n || memcmp(k->storages[idx].key, key->s, key->n)))
        idx++;
    if (idx < k->nstorages) {
        const at_pkl_storage *s = &k->storages[idx];
        if (strlen(s->type) != type->n || memcmp(s->type, type->s, type->n) || s->numel != numel)
            return fail(k, AT_ERR_FORMAT, "storage %s declared twice, differently", s->key);
    } else {
        if (grow(&k->storages, &k->capstorages, k->nstorages + 1, sizeof *k->storages) < 0)
            return fail(k, AT_ERR_NOMEM, "out of memory");
        at_pkl_storage *s = &k->storages[k->nstorages];
        s->type = dupn(type->s, type->n);
        s->key = dupn(key->s, key->n);
        s->numel = numel;
        if (!s->type || !s->key) {
            free((void *)s->type);
            free((void *)s->key);
            return fail(k, AT_ERR_NOMEM, "out of memory");
        }
        k->nstorages++;
    }
    val *v = new_val(k, V_STORAGE);
    if (v)
        v->i = (int64_t)idx;
    return push(k, v);
}

/* A tuple of non-negative ints into out (up to AT_PKL_MAXDIM kept); returns its length or -1. */
static int int_tuple(const val *t, int64_t *out)
{
    if (t->t != V_TUPLE)
        return -1;
    for (size_t i = 0; i < t->len; i++) {
        if (t->items[i]->t != V_INT || t->items[i]->i < 0)
            return -1;
        if (i < AT_PKL_MAXDIM)
            out[i] = t->items[i]->i;
    }
    return t->len > 1000 ? -1 : (int)t->len;
}

/* torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) */
static val *rebuild_tensor(at_pkl *k, const val *a)
{
    at_pkl_tensor t;
    memset(&t, 0, sizeof t);
    int64_t stride[AT_PKL_MAXDIM];
    if ((a->len != 6 && a->len != 7) || a->items[0]->t != V_STORAGE || a->items[1]->t != V_INT ||
        a->items[1]->i < 0 || a->items[4]->t != V_BOOL ||
        (a->items[5]->t != V_DICT && a->items[5]->t != V_NONE)) {
        fail(k, AT_ERR_FORMAT,
             "_rebuild_tensor_v2 needs (storage, offset, size, stride, requires_grad, hooks)");
        return NULL;
    }
    t.ndim = int_tuple(a->items[2], t.shape);
    if (t.ndim < 0 || int_tuple(a->items[3], stride) != t.ndim) {
        fail(k, AT_ERR_FORMAT, "tensor size and stride are not two tuples of equal length");
        return NULL;
    }
    memcpy(t.stride, stride, sizeof stride);
    t.storage = (size_t)a->items[0]->i;
    t.offset = a->items[1]->i;
    val *v = new_val(k, V_TENSOR);
    if (v && !(v->tensor = malloc(sizeof t)))
        v = NULL;
    if (!v) {
        fail(k, AT_ERR_NOMEM, "out of memory");
        return NULL;
    }
    *v->tensor = t;
    return v;
}

static val *call(at_pkl *k, const val *f, val *a, int depth)
{
    char b[80];
    if (f->t != V_GLOBAL || a->t != V_TUPLE) {
        fail(k, AT_ERR_FORMAT, "REDUCE needs a global and an argument tuple");
        return NULL;
    }
    switch ((glob)f->i) {
    case G_ODICT:
        if (a->len) {
            fail(k, AT_ERR_FORMAT, "OrderedDict with arguments");
            return NULL;
        }
        return new_val(k, V_DICT);
    case G_REBUILD_V2:
        return rebuild_tensor(k, a);
    case G_REBUILD_PARAM:
    case G_REBUILD_PARAM_STATE:
        if (a->len != (f->i == G_REBUILD_PARAM ? 3u : 4u) || a->items[0]->t != V_TENSOR) {
            fail(k, AT_ERR_FORMAT, "_rebuild_parameter needs (tensor, requires_grad, hooks)");
            return NULL;
        }
        return a->items[0];
    case G_FROM_TYPE:
        if (depth || a->len != 4 || a->items[1]->t != V_GLOBAL ||
            (a->items[1]->i != G_TENSOR_CLS && a->items[1]->i != G_PARAM_CLS)) {
            fail(k, AT_ERR_FORMAT,
                 "_rebuild_from_type_v2 needs (function, torch.Tensor or Parameter, args, state)");
            return NULL;
        }
        return call(k, a->items[0], a->items[2], depth + 1);
    case G_TENSOR_CLS:
    case G_PARAM_CLS:
    case G_STORAGE_CLS:
        break;
    }
    fail(k, AT_ERR_FORMAT, "%s cannot be called here", printable(f->s, f->n, b, sizeof b));
    return NULL;
}

static int op_reduce(at_pkl *k)
{
    val *a = pop(k), *f = a ? pop(k) : NULL;
    if (!f)
        return AT_ERR_FORMAT;
    val *r = call(k, f, a, 0);
    return r ? push(k, r) : AT_ERR_FORMAT;
}

/* SETITEM / APPEND (the values on top) or SETITEMS / APPENDS (the values above the mark) into
 * the container just below them, which must lie in the same mark frame as in CPython. */
static int fill(at_pkl *k, vtype want, int marked)
{
    size_t base, floor;
    if (marked) {
        if (!k->nmarks)
            return fail(k, AT_ERR_FORMAT, "no MARK");
        base = k->marks[k->nmarks - 1];
        floor = k->nmarks > 1 ? k->marks[k->nmarks - 2] : 0;
    } else {
        size_t need = want == V_DICT ? 2 : 1;
        floor = mark_base(k);
        if (k->nstack < floor + need)
            return fail(k, AT_ERR_FORMAT, "stack underflow");
        base = k->nstack - need;
    }
    if (base <= floor)
        return fail(k, AT_ERR_FORMAT, "stack underflow");
    val *c = k->stack[base - 1];
    if (c->t != want)
        return fail(k, AT_ERR_FORMAT, "%s on something that is not a %s",
                    want == V_DICT ? "SETITEM" : "APPEND", want == V_DICT ? "dict" : "list");
    if (want == V_DICT && (k->nstack - base) % 2)
        return fail(k, AT_ERR_FORMAT, "SETITEMS with an odd number of values");
    for (size_t i = base; i < k->nstack; i++)
        if (add_item(k, c, k->stack[i]) < 0)
            return AT_ERR_NOMEM;
    k->nstack = base;
    if (marked)
        k->nmarks--;
    return AT_OK;
}

static int memo_put(at_pkl *k, uint64_t idx)
{
    val *v = top(k);
    if (!v)
        return AT_ERR_FORMAT;
    /* The Pickler numbers memo entries 0, 1, 2, ...; anything else is not its output. */
    if (idx > k->nmemo)
        return fail(k, AT_ERR_FORMAT, "memo index %llu out of order", (unsigned long long)idx);
    if (idx == k->nmemo) {
        if (grow(&k->memo, &k->capmemo, k->nmemo + 1, sizeof *k->memo) < 0)
            return fail(k, AT_ERR_NOMEM, "out of memory");
        k->nmemo++;
    }
    k->memo[idx] = v;
    return AT_OK;
}

static int memo_get(at_pkl *k, uint64_t idx)
{
    if (idx >= k->nmemo)
        return fail(k, AT_ERR_FORMAT, "memo index %llu was never stored", (unsigned long long)idx);
    return push(k, k->memo[idx]);
}

static int tuple_of(at_pkl *k, size_t n)
{
    if (k->nstack < mark_base(k) + n)
        return fail(k, AT_ERR_FORMAT, "stack underflow");
    val *t = new_val(k, V_TUPLE);
    if (!t)
        return fail(k, AT_ERR_NOMEM, "out of memory");
    for (size_t i = k->nstack - n; i < k->nstack; i++)
        if (add_item(k, t, k->stack[i]) < 0)
            return AT_ERR_NOMEM;
    k->nstack -= n;
    return push(k, t);
}

static int from_mark(at_pkl *k, vtype t)
{
    val *v = new_val(k, t);
    if (!v)
        return fail(k, AT_ERR_NOMEM, "out of memory");
    int rc = pop_mark(k, v);
    if (rc == AT_OK && t == V_DICT && v->len % 2)
        rc = fail(k, AT_ERR_FORMAT, "DICT with an odd number of values");
    return rc < 0 ? rc : push(k, v);
}

/* Runs one opcode; sets *result at STOP. */
static int step(at_pkl *k, const unsigned char **q, val **result)
{
    const unsigned char *a;
    k->op = *q;
    unsigned char op = *(*q)++;
    switch (op) {
    case 0x80: /* PROTO */
        if (!(a = take(k, q, 1)))
            return AT_ERR_FORMAT;
        if (a[0] < 2 || a[0] > 5)
            return fail(k, AT_ERR_UNSUPPORTED, "pickle protocol %d (2 to 5 are read)", a[0]);
        return AT_OK;
    case 0x95: /* FRAME: a length prefix only */
        return take(k, q, 8) ? AT_OK : AT_ERR_FORMAT;
    case '.': /* STOP */
        if (!(*result = pop(k)))
            return AT_ERR_FORMAT;
        return AT_OK;
    case 'c':
        return op_global(k, q);
    case 0x93: { /* STACK_GLOBAL */
        val *name = pop(k), *mod = name ? pop(k) : NULL;
        if (!mod)
            return AT_ERR_FORMAT;
        if (mod->t != V_STR || name->t != V_STR)
            return fail(k, AT_ERR_FORMAT, "STACK_GLOBAL needs two strings");
        return push_global(k, mod->s, mod->n, name->s, name->n);
    }
    case 'q':
        return (a = take(k, q, 1)) ? memo_put(k, a[0]) : AT_ERR_FORMAT;
    case 'r':
        return (a = take(k, q, 4)) ? memo_put(k, le(a, 4)) : AT_ERR_FORMAT;
    case 0x94: /* MEMOIZE */
        return memo_put(k, k->nmemo);
    case 'h':
        return (a = take(k, q, 1)) ? memo_get(k, a[0]) : AT_ERR_FORMAT;
    case 'j':
        return (a = take(k, q, 4)) ? memo_get(k, le(a, 4)) : AT_ERR_FORMAT;
    case '(': /* MARK */
        if (grow(&k->marks, &k->capmarks, k->nmarks + 1, sizeof *k->marks) < 0)
            return fail(k, AT_ERR_NOMEM, "out of memory");
        k->marks[k->nmarks++] = k->nstack;
        return AT_OK;
    case ')':
        return tuple_of(k, 0);
    case 0x85:
        return tuple_of(k, 1);
    case 0x86:
        return tuple_of(k, 2);
    case 0x87:
        return tuple_of(k, 3);
    case 't':
        return from_mark(k, V_TUPLE);
    case ']':
        return push(k, new_val(k, V_LIST));
    case 'l':
        return from_mark(k, V_LIST);
    case 'a':
        return fill(k, V_LIST, 0);
    case 'e':
        return fill(k, V_LIST, 1);
    case '}':
        return push(k, new_val(k, V_DICT));
    case 'd':
        return from_mark(k, V_DICT);
    case 's':
        return fill(k, V_DICT, 0);
    case 'u':
        return fill(k, V_DICT, 1);
    case 'K':
        return (a = take(k, q, 1)) ? push_int(k, a[0]) : AT_ERR_FORMAT;
    case 'M':
        return (a = take(k, q, 2)) ? push_int(k, (int64_t)le(a, 2)) : AT_ERR_FORMAT;
    case 'J':
        return (a = take(k, q, 4)) ? push_int(k, (int32_t)(uint32_t)le(a, 4)) : AT_ERR_FORMAT;
    case 0x8a: { /* LONG1: little-endian two's complement of n bytes */
        const unsigned char *nb = take(k, q, 1);
        if (!nb || !(a = take(k, q, nb[0])))
            return AT_ERR_FORMAT;
        if (nb[0] > 8)
            return fail(k, AT_ERR_UNSUPPORTED, "integer of %d bytes", nb[0]);
        uint64_t v = le(a, nb[0]);
        if (nb[0] && nb[0] < 8 && (a[nb[0] - 1] & 0x80))
            v |= ~UINT64_C(0) << (8 * nb[0]);
        return push_int(k, (int64_t)v);
    }
    case 'G': { /* BINFLOAT: big-endian double */
        if (!(a = take(k, q, 8)))
            return AT_ERR_FORMAT;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = bits << 8 | a[i];
        val *v = new_val(k, V_FLOAT);
        if (v)
            memcpy(&v->f, &bits, sizeof v->f);
        return push(k, v);
    }
    case 0x8c:   /* SHORT_BINUNICODE */
    case 'U':    /* SHORT_BINSTRING */
    case 'C':    /* SHORT_BINBYTES */
    case 'X':    /* BINUNICODE */
    case 'T':    /* BINSTRING */
    case 'B':    /* BINBYTES */
    case 0x8d:   /* BINUNICODE8 */
    case 0x8e: { /* BINBYTES8 */
        int w = op == 0x8c || op == 'U' || op == 'C' ? 1 : op == 0x8d || op == 0x8e ? 8 : 4;
        const unsigned char *nb = take(k, q, (uint64_t)w);
        uint64_t n = nb ? le(nb, w) : 0;
        if (!nb || !(a = take(k, q, n)))
            return AT_ERR_FORMAT;
        return push_str(k, op == 'C' || op == 'B' || op == 0x8e ? V_BYTES : V_STR, a, n);
    }
    case 'N':
        return push(k, new_val(k, V_NONE));
    case 0x88:
    case 0x89: {
        val *v = new_val(k, V_BOOL);
        if (v)
            v->i = op == 0x88;
        return push(k, v);
    }
    case 'R':
        return op_reduce(k);
    case 'b': { /* BUILD: state for an OrderedDict (its _metadata) or a tensor; not needed */
        val *state = pop(k), *obj = state ? top(k) : NULL;
        if (!obj)
            return AT_ERR_FORMAT;
        if (obj->t != V_DICT && obj->t != V_TENSOR)
            return fail(k, AT_ERR_FORMAT, "BUILD on something that is not a dict or a tensor");
        return AT_OK;
    }
    case 'Q':
        return op_persid(k);
    case '0': /* POP: a value, or the mark when none is above it */
        if (k->nstack > mark_base(k))
            k->nstack--;
        else if (k->nmarks)
            k->nmarks--;
        else
            return fail(k, AT_ERR_FORMAT, "stack underflow");
        return AT_OK;
    case '1':
        return pop_mark(k, NULL);
    case '2': {
        val *v = top(k);
        return v ? push(k, v) : AT_ERR_FORMAT;
    }
    default:
        return fail(k, AT_ERR_UNSUPPORTED,
                    "opcode 0x%02x is not read (not one torch.save writes for tensors)", op);
    }
}

static int path_push(at_pkl *k, const char *s, size_t n, size_t *saved)
{
    *saved = k->pathlen;
    if (grow(&k->path, &k->pathcap, k->pathlen + n + 2, 1) < 0)
        return fail(k, AT_ERR_NOMEM, "out of memory");
    if (k->pathlen)
        k->path[k->pathlen++] = '.';
    memcpy(k->path + k->pathlen, s, n);
    k->pathlen += n;
    k->path[k->pathlen] = '\0';
    return AT_OK;
}

static int walk(at_pkl *k, const val *v, int depth);

/* The element key/value of a dict or list: its name is the key (strings and ints). */
static int walk_item(at_pkl *k, const val *key, const val *item, size_t index, int depth)
{
    char num[32];
    const char *s = num;
    size_t n, saved;
    if (!key) {
        n = (size_t)snprintf(num, sizeof num, "%zu", index);
    } else if (key->t == V_STR) {
        s = key->s;
        n = key->n;
    } else if (key->t == V_INT) {
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)key->i);
    } else {
        return AT_OK; /* no name to give what is under it */
    }
    if (memchr(s, '\0', n))
        return fail(k, AT_ERR_FORMAT, "a key holds a NUL character");
    int rc = path_push(k, s, n, &saved);
    if (rc == AT_OK)
        rc = walk(k, item, depth + 1);
    k->pathlen = saved;
    if (k->path)
        k->path[saved] = '\0';
    return rc;
}

static int walk(at_pkl *k, const val *v, int depth)
{
    if (depth > PKL_MAX_DEPTH)
        return fail(k, AT_ERR_FORMAT, "objects nested deeper than %d levels", PKL_MAX_DEPTH);
    if (++k->visits > 2 * k->nvals + 64)
        return fail(k, AT_ERR_FORMAT, "objects shared too often to be listed");
    int rc = AT_OK;
    switch (v->t) {
    case V_TENSOR:
        if (grow(&k->tensors, &k->captensors, k->ntensors + 1, sizeof *k->tensors) < 0)
            return fail(k, AT_ERR_NOMEM, "out of memory");
        k->tensors[k->ntensors] = *v->tensor;
        if (!(k->tensors[k->ntensors].name = strdup(k->path ? k->path : "")))
            return fail(k, AT_ERR_NOMEM, "out of memory");
        k->ntensors++;
        return AT_OK;
    case V_DICT:
        for (size_t i = 0; rc == AT_OK && i + 1 < v->len; i += 2)
            rc = walk_item(k, v->items[i], v->items[i + 1], 0, depth);
        return rc;
    case V_LIST:
    case V_TUPLE:
        for (size_t i = 0; rc == AT_OK && i < v->len; i++)
            rc = walk_item(k, NULL, v->items[i], i, depth);
        return rc;
    default:
        return AT_OK;
    }
}

static void reset(at_pkl *k)
{
    for (size_t i = 0; i < k->nvals; i++) {
        free(k->vals[i]->items);
        free(k->vals[i]->tensor);
        free(k->vals[i]);
    }
    for (size_t i = 0; i < k->nstorages; i++) {
        free((void *)k->storages[i].type);
        free((void *)k->storages[i].key);
    }
    for (size_t i = 0; i < k->ntensors; i++)
        free((void *)k->tensors[i].name);
    k->nvals = k->nstack = k->nmarks = k->nmemo = k->nstorages = k->ntensors = 0;
    k->pathlen = k->visits = 0;
    k->op = NULL;
    k->error[0] = '\0';
}

at_pkl *at_pkl_new(int *status)
{
    at_pkl *k = calloc(1, sizeof *k);
    if (status)
        *status = k ? AT_OK : AT_ERR_NOMEM;
    return k;
}

int at_pkl_load(at_pkl *self, const void *p, size_t n)
{
    reset(self);
    self->p = p;
    self->end = self->p + n;
    const unsigned char *q = self->p;
    val *result = NULL;
    while (!result) {
        if (q == self->end)
            return fail(self, AT_ERR_FORMAT, "truncated: no STOP opcode");
        int rc = step(self, &q, &result);
        if (rc < 0)
            return rc;
    }
    self->op = NULL;
    int rc = walk(self, result, 0);
    if (rc < 0) {
        for (size_t i = 0; i < self->ntensors; i++)
            free((void *)self->tensors[i].name);
        self->ntensors = 0;
    }
    return rc;
}

const char *at_pkl_last_error(const at_pkl *self)
{
    return self->error;
}

size_t at_pkl_count(const at_pkl *self)
{
    return self->ntensors;
}

const at_pkl_tensor *at_pkl_at(const at_pkl *self, size_t i)
{
    return i < self->ntensors ? &self->tensors[i] : NULL;
}

size_t at_pkl_storage_count(const at_pkl *self)
{
    return self->nstorages;
}

const at_pkl_storage *at_pkl_storage_at(const at_pkl *self, size_t i)
{
    return i < self->nstorages ? &self->storages[i] : NULL;
}

void at_pkl_free(at_pkl *self)
{
    if (!self)
        return;
    reset(self);
    free(self->vals);
    free(self->stack);
    free(self->marks);
    free(self->memo);
    free(self->storages);
    free(self->tensors);
    free(self->path);
    free(self);
}
