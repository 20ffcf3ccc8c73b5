/* SPDX-License-Identifier: Apache-2.0 */
/* hfdir.c -- Hugging Face layouts: a model directory, and the index of a sharded checkpoint
 * ({"metadata": {...}, "weight_map": {tensor: shard file}}, as save_pretrained writes
 * model.safetensors.index.json and pytorch_model.bin.index.json). The shards are read as one
 * checkpoint: each tensor from the shard the index names, the layers in the index's order. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_int.h"

/* An index larger than this is not an index (a 1T-parameter model's is a few MB). */
#define INDEX_MAX_BYTES ((size_t)256 << 20)

typedef struct ix_entry {
    char *name;
    size_t shard; /* index into shards */
    size_t order; /* position in weight_map */
    int seen;     /* found in its shard */
} ix_entry;

struct ckpt_index {
    ix_entry *entries; /* sorted by name */
    size_t n;
    char **shards;
    size_t nshards;
};

/* What a directory is read as, in this order; failing all, its one checkpoint file. */
static const char *const hf_files[] = {
    "model.safetensors.index.json", "model.safetensors",
    "pytorch_model.bin.index.json", "pytorch_model.bin",
    "adapter_model.safetensors",    "adapter_model.bin",
};
static const char *const ckpt_exts[] = {".safetensors", ".pt",  ".pth",        ".bin",
                                        ".npz",         ".npy", ".index.json", ".ckpt"};

void ckpt_index_free(ckpt_index *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->n; i++)
        free(ix->entries[i].name);
    for (size_t i = 0; i < ix->nshards; i++)
        free(ix->shards[i]);
    free(ix->entries);
    free(ix->shards);
    free(ix);
}

size_t ckpt_index_shards(const ckpt_index *ix)
{
    return ix->nshards;
}

const char *ckpt_index_shard(const ckpt_index *ix, size_t i)
{
    return ix->shards[i];
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const ix_entry *)a)->name, ((const ix_entry *)b)->name);
}

/* A shard name must stay inside the index's directory. */
static int safe_shard(const char *s)
{
    if (!s[0] || s[0] == '/' || strlen(s) > 1000)
        return 0;
    for (const char *p = s; p; p = strchr(p, '/')) {
        p += *p == '/';
        if (!strncmp(p, "..", 2) && (p[2] == '/' || !p[2]))
            return 0;
    }
    return 1;
}

static size_t shard_id(ckpt_index *ix, const char *s)
{
    for (size_t i = 0; i < ix->nshards; i++)
        if (!strcmp(ix->shards[i], s))
            return i;
    char *d = strdup(s);
    if (!d)
        return SIZE_MAX;
    ix->shards[ix->nshards] = d;
    return ix->nshards++;
}

static ckpt_index *index_fail(ckpt_index *ix, cJSON *root, int *status, int st, char *err,
                              size_t errn, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* Frees what parsing built, sets *status and the message; returns NULL. */
static ckpt_index *index_fail(ckpt_index *ix, cJSON *root, int *status, int st, char *err,
                              size_t errn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
    *status = st;
    ckpt_index_free(ix);
    cJSON_Delete(root);
    return NULL;
}

ckpt_index *ckpt_index_parse(const char *json, size_t n, int *status, char *err, size_t errn)
{
    if (n > INDEX_MAX_BYTES)
        return index_fail(NULL, NULL, status, AT_ERR_SIZE, err, errn,
                          "larger than 256 MB: not an index");
    cJSON *root = cJSON_ParseWithLength(json, n);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root))
        return index_fail(NULL, root, status, AT_ERR_FORMAT, err, errn, "index is %s",
                          root ? "not a JSON object" : "not valid JSON (truncated?)");
    if (!cJSON_IsObject(map))
        return index_fail(NULL, root, status, AT_ERR_FORMAT, err, errn,
                          "a JSON file but not a checkpoint index: no weight_map object");
    size_t count = (size_t)cJSON_GetArraySize(map);
    if (!count)
        return index_fail(NULL, root, status, AT_ERR_FORMAT, err, errn,
                          "index: weight_map is empty");
    ckpt_index *ix = calloc(1, sizeof *ix);
    if (!ix || !(ix->entries = calloc(count, sizeof *ix->entries)) ||
        !(ix->shards = calloc(count, sizeof *ix->shards)))
        return index_fail(ix, root, status, AT_ERR_NOMEM, err, errn, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsString(e) || !safe_shard(e->valuestring))
            return index_fail(ix, root, status, AT_ERR_FORMAT, err, errn,
                              "index: weight_map[\"%.200s\"] is not a shard file name in the "
                              "index's directory",
                              e->string);
        ix_entry *x = &ix->entries[ix->n];
        x->order = ix->n;
        x->shard = shard_id(ix, e->valuestring);
        x->name = strdup(e->string);
        if (x->shard == SIZE_MAX || !x->name)
            return index_fail(ix, root, status, AT_ERR_NOMEM, err, errn, "out of memory");
        ix->n++;
    }
    qsort(ix->entries, ix->n, sizeof *ix->entries, by_name);
    for (size_t i = 1; i < ix->n; i++)
        if (!strcmp(ix->entries[i].name, ix->entries[i - 1].name))
            return index_fail(ix, root, status, AT_ERR_FORMAT, err, errn,
                              "index: tensor %.200s is listed twice", ix->entries[i].name);
    cJSON_Delete(root);
    *status = AT_OK;
    return ix;
}

static ix_entry *lookup(const ckpt_index *ix, const char *name)
{
    ix_entry key = {.name = (char *)name};
    return bsearch(&key, ix->entries, ix->n, sizeof key, by_name);
}

int ckpt_wants(at_ckpt *c, const char *name)
{
    if (!c->index)
        return 1;
    ix_entry *e = lookup(c->index, name);
    if (!e || e->shard != c->shard)
        return 0;
    e->seen = 1;
    return 1;
}

size_t ckpt_index_order(const at_ckpt *c, const char *name)
{
    const ix_entry *e = c->index ? lookup(c->index, name) : NULL;
    return e ? e->order : c->count;
}

/* Prefixes the file-level error with the shard it came from. */
static int shard_fail(at_ckpt *c, const char *shard)
{
    char msg[sizeof c->error];
    snprintf(msg, sizeof msg, "%s", c->error);
    return ckpt_fail(c, c->status, "shard %.200s: %s", shard, msg);
}

int ckpt_read_index(at_ckpt *c, const unsigned char *p, size_t n, const char *dir)
{
    char err[300];
    int status;
    if (c->index)
        return ckpt_fail(c, AT_ERR_FORMAT, "an index names another index as a shard");
    if (!(c->index = ckpt_index_parse((const char *)p, n, &status, err, sizeof err)))
        return ckpt_fail(c, status, "%s", err);
    const ckpt_index *ix = c->index;
    for (size_t s = 0; s < ix->nshards; s++) {
        char path[4096];
        const unsigned char *q;
        size_t m;
        snprintf(path, sizeof path, "%s/%s", dir, ix->shards[s]);
        c->shard = s;
        if (ckpt_load(c, path, &q, &m) < 0 || ckpt_read(c, q, m, path, dir) < 0)
            return shard_fail(c, ix->shards[s]);
    }
    /* Tensors the index promises but no shard holds: a weight among them is a layer lost. */
    for (size_t i = 0; i < ix->n; i++) {
        const ix_entry *e = &ix->entries[i];
        if (e->seen || !ckpt_is_layer(c, e->name))
            continue;
        ckpt_layer *l = ckpt_layer_add(c, e->name);
        if (!l)
            return c->status;
        ckpt_layer_fail(l, AT_ERR_NOTFOUND, "the index puts it in shard %s, which does not hold it",
                        ix->shards[e->shard]);
    }
    return c->status;
}

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int has_ckpt_ext(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ckpt_exts / sizeof ckpt_exts[0]; i++) {
        size_t k = strlen(ckpt_exts[i]);
        if (n > k && !strcmp(name + n - k, ckpt_exts[i]))
            return 1;
    }
    return 0;
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ckpt_open_dir(at_ckpt *c, const char *dir)
{
    char path[4096];
    for (size_t i = 0; i < sizeof hf_files / sizeof hf_files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, hf_files[i]);
        if (is_regular(path))
            return ckpt_open_path(c, path);
    }
    DIR *d = opendir(dir);
    if (!d)
        return ckpt_fail(c, AT_ERR_IO, "cannot list the directory");
    char *found[4];
    size_t nfound = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || !has_ckpt_ext(e->d_name) || !is_regular(path))
            continue;
        if (nfound < 4 && !(found[nfound] = strdup(e->d_name)))
            break;
        nfound++;
    }
    closedir(d);
    size_t kept = nfound < 4 ? nfound : 4;
    qsort(found, kept, sizeof *found, by_str);
    if (nfound == 0)
        ckpt_fail(c, AT_ERR_NOTFOUND, "no checkpoint files in %s", dir);
    else if (nfound == 1) {
        snprintf(path, sizeof path, "%s/%s", dir, found[0]);
        ckpt_open_path(c, path);
    } else
        ckpt_fail(c, AT_ERR_ARG, "%zu checkpoint files in the directory (%s, %s%s): name one",
                  nfound, found[0], found[1], nfound > 2 ? ", ..." : "");
    for (size_t i = 0; i < kept; i++)
        free(found[i]);
    return c->status;
}
