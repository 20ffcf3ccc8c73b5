/* SPDX-License-Identifier: Apache-2.0 */
/* torch.c -- torch.save's zip archives (torch >= 1.6: .pt, .pth, pytorch_model.bin):
 * NAME/data.pkl, the pickled object, read by the restricted unpickler (pickle.h), and one entry
 * NAME/data/KEY per storage, written uncompressed and 64-byte aligned, so a tensor is a view
 * into the mapped file at its storage offset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/text.h"
#include "ckpt_int.h"
#include "pickle.h"

/* torch's storage types (the legacy names its persistent ids use): the float ones are read,
 * the others skipped by name. */
static const struct {
    const char *storage;
    const char *dtype;
    ckpt_type type;
    size_t size;
} torch_types[] = {
    {"FloatStorage", "float32", CKPT_F32, 4},
    {"HalfStorage", "float16", CKPT_F16, 2},
    {"BFloat16Storage", "bfloat16", CKPT_BF16, 2},
    {"DoubleStorage", "float64", CKPT_F64, 8},
    {"LongStorage", "int64", CKPT_OTHER, 8},
    {"IntStorage", "int32", CKPT_OTHER, 4},
    {"ShortStorage", "int16", CKPT_OTHER, 2},
    {"CharStorage", "int8", CKPT_OTHER, 1},
    {"ByteStorage", "uint8", CKPT_OTHER, 1},
    {"BoolStorage", "bool", CKPT_OTHER, 1},
    {"ComplexFloatStorage", "complex64", CKPT_OTHER, 8},
    {"ComplexDoubleStorage", "complex128", CKPT_OTHER, 16},
    {"QInt8Storage", "qint8", CKPT_OTHER, 1},
    {"QUInt8Storage", "quint8", CKPT_OTHER, 1},
    {"QInt32Storage", "qint32", CKPT_OTHER, 4},
    {"Float8_e4m3fnStorage", "float8_e4m3fn", CKPT_OTHER, 1},
    {"Float8_e5m2Storage", "float8_e5m2", CKPT_OTHER, 1},
};

/* One storage of the archive, resolved. */
typedef struct storage {
    int type; /* index into torch_types, or -1 */
    const unsigned char *p;
    size_t n;
    int err;
    char error[200];
} storage;

/* The archive's record directory: the NAME of its one NAME/data.pkl. */
static int find_prefix(at_ckpt *c, at_zip *z, char *prefix, size_t n)
{
    int found = 0;
    for (size_t i = 0; i < at_zip_count(z); i++) {
        const char *e = at_zip_name(z, i), *slash = strchr(e, '/');
        if (!slash || strcmp(slash, "/data.pkl"))
            continue;
        if (found++)
            return ckpt_fail(c, AT_ERR_FORMAT, "torch archive with several NAME/data.pkl entries");
        snprintf(prefix, n, "%.*s", (int)(slash - e), e);
    }
    return AT_OK;
}

/* The bytes of entry name, or an error status with the reason in err. *owned as at_zip_entry. */
static int entry_bytes(at_zip *z, const char *name, const unsigned char **p, size_t *n,
                       void **owned, char *err, size_t errn)
{
    long i = at_zip_find(z, name);
    *owned = NULL;
    if (i < 0) {
        /* a name too long for err loses its middle, not what is wrong with it */
        at_text_fit(err, errn, "", name, " is missing from the archive");
        return AT_ERR_FORMAT;
    }
    int rc = at_zip_entry(z, (size_t)i, p, n, owned);
    if (rc < 0)
        snprintf(err, errn, "%s", at_zip_last_error(z));
    return rc;
}

static void resolve_storage(at_ckpt *c, at_zip *z, const char *prefix, const at_pkl_storage *ps,
                            storage *s)
{
    char name[600];
    void *owned;
    s->type = -1;
    for (size_t k = 0; k < sizeof torch_types / sizeof torch_types[0]; k++)
        if (!strcmp(ps->type, torch_types[k].storage))
            s->type = (int)k;
    if (s->type < 0) {
        s->err = AT_ERR_UNSUPPORTED;
        snprintf(s->error, sizeof s->error, "storage type torch.%s is not known", ps->type);
        return;
    }
    snprintf(name, sizeof name, "%s/data/%s", prefix, ps->key);
    s->err = entry_bytes(z, name, &s->p, &s->n, &owned, s->error, sizeof s->error);
    if (s->err < 0)
        return;
    if (owned && (s->err = ckpt_keep(c, owned)) < 0) {
        snprintf(s->error, sizeof s->error, "out of memory");
        return;
    }
    size_t esz = torch_types[s->type].size;
    if ((uint64_t)ps->numel > SIZE_MAX / esz || s->n != (size_t)ps->numel * esz) {
        s->err = AT_ERR_SIZE;
        snprintf(s->error, sizeof s->error,
                 "storage data/%s holds %zu bytes but %lld elements of %s need %llu", ps->key, s->n,
                 (long long)ps->numel, torch_types[s->type].dtype,
                 (unsigned long long)ps->numel * esz);
    }
}

/* One tensor of the state dict as a layer. */
static void tensor_layer(ckpt_layer *l, const at_pkl_tensor *t, const at_pkl_storage *ps,
                         const storage *s)
{
    const int other = s->type >= 0 && torch_types[s->type].type == CKPT_OTHER;
    int64_t numel =
        ckpt_layer_shape(l, t->ndim, t->shape, other ? torch_types[s->type].dtype : NULL);
    if (numel < 0)
        return;
    if (s->err < 0) {
        ckpt_layer_fail(l, s->err, "%s", s->error);
        return;
    }
    /* The last element the view reaches must lie inside its storage. */
    int64_t last = t->offset, span;
    for (int d = 0; d < t->ndim; d++)
        if (__builtin_mul_overflow(t->shape[d] - 1, t->stride[d], &span) ||
            __builtin_add_overflow(last, span, &last))
            last = INT64_MAX;
    if (last >= ps->numel) {
        char sh[128];
        at_shape_str(sh, sizeof sh, t->ndim, t->shape);
        ckpt_layer_fail(l, AT_ERR_SIZE,
                        "view at offset %lld with shape %s runs past its storage data/%s (%lld "
                        "elements)",
                        (long long)t->offset, sh, ps->key, (long long)ps->numel);
        return;
    }
    const ckpt_type type = torch_types[s->type].type;
    ckpt_layer_data(l, type, s->p + (size_t)t->offset * ckpt_type_size(type), t->stride);
}

static int read_tensors(at_ckpt *c, at_zip *z, const char *prefix, const at_pkl *pk,
                        const char *path)
{
    size_t ns = at_pkl_storage_count(pk);
    storage *st = calloc(ns ? ns : 1, sizeof *st);
    if (!st)
        return ckpt_fail(c, AT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < ns && c->status == AT_OK; i++)
        resolve_storage(c, z, prefix, at_pkl_storage_at(pk, i), &st[i]);
    for (size_t i = 0; i < at_pkl_count(pk) && c->status == AT_OK; i++) {
        const at_pkl_tensor *t = at_pkl_at(pk, i);
        char name[256];
        const int bare = !t->name[0];
        if (bare)
            ckpt_file_layer_name(path, name, sizeof name);
        if (!ckpt_wants(c, bare ? name : t->name))
            continue;
        ckpt_layer *l = ckpt_layer_add(c, bare ? name : t->name);
        if (l)
            l->single = bare;
        if (l)
            tensor_layer(l, t, at_pkl_storage_at(pk, t->storage), &st[t->storage]);
    }
    free(st);
    return c->status;
}

int ckpt_read_torch(at_ckpt *c, at_zip *z, const char *path)
{
    char prefix[512], name[600], err[256];
    if (find_prefix(c, z, prefix, sizeof prefix) < 0)
        return c->status;
    const unsigned char *p;
    size_t n;
    void *owned;
    /* torch >= 2.1 records the byte order; older archives are little-endian. */
    snprintf(name, sizeof name, "%s/byteorder", prefix);
    if (at_zip_find(z, name) >= 0) {
        if (entry_bytes(z, name, &p, &n, &owned, err, sizeof err) < 0)
            return ckpt_fail(c, AT_ERR_FORMAT, "%s", err);
        int little = n == 6 && !memcmp(p, "little", 6);
        free(owned);
        if (!little)
            return ckpt_fail(c, AT_ERR_UNSUPPORTED, "a big-endian torch checkpoint is not read");
    }
    snprintf(name, sizeof name, "%s/data.pkl", prefix);
    int rc = entry_bytes(z, name, &p, &n, &owned, err, sizeof err);
    if (rc < 0)
        return ckpt_fail(c, rc, "%s", err);
    at_pkl *pk = at_pkl_new(&rc);
    if (pk && (rc = at_pkl_load(pk, p, n)) < 0)
        ckpt_fail(c, rc, "%s: %s", name, at_pkl_last_error(pk));
    else if (!pk)
        ckpt_fail(c, rc, "out of memory");
    free(owned);
    if (c->status == AT_OK)
        read_tensors(c, z, prefix, pk, path);
    at_pkl_free(pk);
    return c->status;
}
