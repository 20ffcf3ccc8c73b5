/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_ckpt.c -- libFuzzer targets on the checkpoint parsers (see fuzz_ckpt.h). Built once per
 * target with AT_FUZZ_TARGET naming its entry point; without it (the corpus replay test) only
 * the entry points are compiled. */
#include "fuzz_ckpt.h"

#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "ckpt_int.h"

unsigned char *at_fuzz_zip(size_t n, const char *const *names, const void *const *data,
                           const size_t *sizes, int compress, size_t *outn)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    zip_t *za = src ? zip_open_from_source(src, ZIP_TRUNCATE, &ze) : NULL;
    zip_error_fini(&ze);
    if (!za) {
        zip_source_free(src);
        return NULL;
    }
    zip_source_keep(src);
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) {
        zip_source_t *e = zip_source_buffer(za, data[i], sizes[i], 0);
        zip_int64_t idx = e ? zip_file_add(za, names[i], e, 0) : -1;
        if (idx < 0)
            zip_source_free(e);
        ok = idx >= 0 && zip_set_file_compression(za, (zip_uint64_t)idx,
                                                  compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) == 0;
    }
    if (!ok || zip_close(za) < 0) {
        zip_discard(za);
        zip_source_free(src);
        return NULL;
    }
    unsigned char *out = NULL;
    zip_stat_t st;
    if (zip_source_stat(src, &st) == 0 && zip_source_open(src) == 0) {
        out = malloc(st.size ? st.size : 1);
        if (out && zip_source_read(src, out, st.size) == (zip_int64_t)st.size) {
            *outn = st.size;
        } else {
            free(out);
            out = NULL;
        }
        zip_source_close(src);
    }
    zip_source_free(src);
    return out;
}

/* Where read_all's reads go, so the compiler keeps them. */
static volatile unsigned sink;

/* Opens the bytes as a checkpoint and reads every usable layer in full. */
static int read_all(const uint8_t *data, size_t size, const char *name)
{
    /* Small limits keep inflated entries and copies within the fuzzer's memory budget. */
    at_ckpt_opts o = {.stream_max = (size_t)1 << 24};
    at_ckpt *c = ckpt_open_bytes(data, size, name, &o);
    if (!c)
        return AT_ERR_NOMEM;
    int rc = at_ckpt_status(c);
    for (size_t i = 0; i < at_ckpt_count(c); i++) {
        const at_ckpt_layer *l = at_ckpt_layer_at(c, i);
        if (l->skip[0])
            continue;
        if (l->err < 0) {
            rc = rc < 0 ? rc : l->err;
            continue;
        }
        size_t bytes = at_dtype_size(l->tensor.dtype);
        for (int d = 0; d < l->tensor.ndim; d++)
            bytes *= (size_t)l->tensor.shape[d];
        for (size_t k = 0; k < bytes; k++)
            sink += ((const unsigned char *)l->tensor.data)[k];
    }
    at_ckpt_close(c);
    return rc;
}

/* read_all of the input, or, when it is not a zip ("PK"), of a stored archive of the entries
 * given with the input as entry 0. */
static int read_wrapped(const uint8_t *data, size_t size, size_t n, const char *const *names,
                        const void **bytes, size_t *sizes, const char *name)
{
    unsigned char *zip = NULL;
    if (size < 2 || memcmp(data, "PK", 2)) {
        bytes[0] = data;
        sizes[0] = size;
        if (!(zip = at_fuzz_zip(n, names, bytes, sizes, 0, &size)))
            return AT_ERR_NOMEM;
        data = zip;
    }
    int rc = read_all(data, size, name);
    free(zip);
    return rc;
}

int at_fuzz_torch(const uint8_t *data, size_t size)
{
    float f[64];
    double d[16];
    signed char b[8];
    for (int i = 0; i < 64; i++)
        f[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 16; i++)
        d[i] = (double)i / 3.0;
    for (int i = 0; i < 8; i++)
        b[i] = (signed char)i;
    const char *names[] = {"archive/data.pkl", "archive/data/0", "archive/data/1",
                           "archive/data/2"};
    const void *bytes[] = {NULL, f, d, b};
    size_t sizes[] = {0, sizeof f, sizeof d, sizeof b};
    return read_wrapped(data, size, 4, names, bytes, sizes, "fuzz.pt");
}

int at_fuzz_npz(const uint8_t *data, size_t size)
{
    const char *names[] = {"w.weight.npy"};
    const void *bytes[1];
    size_t sizes[1];
    return read_wrapped(data, size, 1, names, bytes, sizes, "fuzz.npz");
}

int at_fuzz_index(const uint8_t *data, size_t size)
{
    char err[300];
    int rc;
    ckpt_index *ix = ckpt_index_parse((const char *)data, size, &rc, err, sizeof err);
    if (!ix)
        return rc;
    /* A parsed index names at least one shard, each a non-empty relative path. */
    if (!ckpt_index_shards(ix))
        abort();
    for (size_t i = 0; i < ckpt_index_shards(ix); i++)
        if (!ckpt_index_shard(ix, i)[0] || ckpt_index_shard(ix, i)[0] == '/')
            abort();
    ckpt_index_free(ix);
    return AT_OK;
}

#ifdef AT_FUZZ_TARGET
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    AT_FUZZ_TARGET(data, size);
    return 0;
}
#endif
