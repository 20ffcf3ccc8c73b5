/* SPDX-License-Identifier: Apache-2.0 */
/* ckpt_int.h -- what the checkpoint readers share inside tui/checkpoint: the checkpoint object,
 * its layer records, and the helpers every reader fills layers with. Not a public header.
 *
 * A reader gets the bytes of one file (mapped, or read from a pipe) and, for every tensor it
 * finds, asks ckpt_wants (a sharded checkpoint takes each tensor from the shard its index
 * names), decides whether it is a layer (ckpt_is_layer), adds it (ckpt_layer_add), gives it its
 * shape (ckpt_layer_shape), then either its bytes (ckpt_layer_data) or the reason it cannot be
 * analysed (ckpt_layer_fail: an error; ckpt_layer_skip: by design, e.g. an int8 tensor).
 * ckpt.c then orders the layers, marks tied copies and checks for overlaps. */
#ifndef ALPHATOP_CKPT_INT_H
#define ALPHATOP_CKPT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "zipread.h"

/* No dimension of a real weight tensor comes near this; larger values are corrupt headers. */
#define CKPT_MAX_DIM (INT64_C(1) << 40)

/* Element types as stored (the float ones are at_ckpt_stored's values). The core reads F32, F16
 * and BF16 in place; F64 is narrowed to float32 on reading; CKPT_OTHER (integers, bool, FP8,
 * complex) is skipped with its name. */
typedef enum ckpt_type {
    CKPT_F32 = AT_CKPT_STORED_F32,
    CKPT_F16 = AT_CKPT_STORED_F16,
    CKPT_BF16 = AT_CKPT_STORED_BF16,
    CKPT_F64 = AT_CKPT_STORED_F64,
    CKPT_OTHER,
} ckpt_type;

typedef struct ckpt_layer {
    at_ckpt_layer pub;
    char *name;
    char *error;                 /* pub.error and pub.skip point here */
    void *owned;                 /* C-order, aligned or narrowed copy of the data */
    const unsigned char *origin; /* first element in the file's bytes: tied copies share it */
    int64_t stride[4];           /* as stored, in elements (tied copies share it too) */
    size_t bytes;                /* stored bytes, for the overlap check of `exclusive` layers */
    int exclusive;               /* its bytes belong to it alone (safetensors) */
    size_t order;                /* position in the checkpoint: file order, or the index's */
    ckpt_type type;              /* as stored */
    int named;                   /* ckpt_is_layer by name */
    int selected;                /* opts.select matches it */
    int single;                  /* the one array of a file (.npy, raw, a bare tensor): chosen as
                                    if selected, and kept even when it is not a layer */
    int axis[4];                 /* view dim d is stored dim axis[d] (-1: an inserted 1) */
} ckpt_layer;

/* A block of memory the checkpoint reads from: a mapped file or a buffer read from a pipe. */
typedef struct ckpt_region {
    void *base;
    size_t size;
    int mapped;
    char *file; /* mapped: the file's absolute path (NULL for standard input) */
} ckpt_region;

typedef struct ckpt_index ckpt_index;

struct at_ckpt {
    char *path;
    int status;
    char error[512];
    at_ckpt_opts opts;
    ckpt_region *regions;
    size_t nregions;
    void **kept; /* buffers layers point into (inflated zip entries) */
    size_t nkept;
    ckpt_layer *layers;
    size_t count, cap;
    ckpt_index *index; /* sharded: the index being read, and the shard being read */
    size_t shard;
};

/* Sets the file-level error (message printf-style); returns status. */
int ckpt_fail(at_ckpt *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Whether tensor name of the file being read belongs to the checkpoint (always, except in a
 * shard that the index does not name for it). Call it for every tensor, layer or not: the
 * index's tensors that no shard holds are reported. */
int ckpt_wants(at_ckpt *c, const char *name);

/* Where layer name goes: its position in the index being read, else after the layers so far. */
size_t ckpt_index_order(const at_ckpt *c, const char *name);

/* Whether a tensor called name may be a layer, by its name alone: it ends in "weight" or
 * "kernel" (biases, norms' running statistics and attention masks do not), or opts.select
 * matches it. Its shape decides the rest (ckpt_layer_shape). */
int ckpt_is_layer(const at_ckpt *c, const char *name);

/* Adds a layer record for tensor name; NULL (and a file-level AT_ERR_NOMEM) when out of memory.
 * The record is valid until the next ckpt_layer_add. Readers add every tensor they find:
 * ckpt_layer_shape skips the ones that are not layers, and at_ckpt_open keeps them only with
 * opts.all_tensors. */
ckpt_layer *ckpt_layer_add(at_ckpt *c, const char *name);

/* Marks the layer unusable with a message; returns err. */
int ckpt_layer_fail(ckpt_layer *l, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Marks the layer not analysed by design, with the reason; returns AT_OK. */
int ckpt_layer_skip(ckpt_layer *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the stored shape, then decides whether the tensor is a layer (its name, opts.select,
 * its ndim, its dtype: nonfloat names a non-float one, numpy's name "int8", NULL for a float
 * type; ckpt.h's rules) and sets the view's ndim/shape/kind, or skips it (not_layer) or
 * fails it when the shape cannot be a weight's. Returns the element count, or a negative status
 * (the record is then skipped or failed: the reader stops there). */
int64_t ckpt_layer_shape(ckpt_layer *l, int ndim, const int64_t *shape, const char *nonfloat);

/* Gives the layer (its shape set) its elements of type t, the first at first, with per-dim
 * strides of the stored shape in elements (NULL: C order). Points into the file's bytes when they
 * are C order, aligned and of a type the core reads; otherwise the layer needs a copy into C order
 * (F64 narrowed to float32), made when the checkpoint is finished unless it is lazy. CKPT_OTHER
 * must be skipped instead. Returns AT_OK. */
int ckpt_layer_data(ckpt_layer *l, ckpt_type t, const unsigned char *first, const int64_t *stride);

/* Whether the core reads elements of type t at first, with strides stride (elements), as they
 * are: F32, F16 or BF16, in C order, aligned to their size. */
int ckpt_direct(ckpt_type t, int ndim, const int64_t *shape, const int64_t *stride,
                const unsigned char *first);

/* Copies the elements at src (type t, strides in elements) into dst in C order, F64 narrowed to
 * float32 (round to nearest, as numpy's astype(float32)). */
void ckpt_gather(unsigned char *dst, const unsigned char *src, ckpt_type t, int ndim,
                 const int64_t *shape, const int64_t *stride);

/* Bytes per element of t (CKPT_OTHER: 0). */
size_t ckpt_type_size(ckpt_type t);

/* The name of a single-array file (.npy, raw, a bare saved tensor): its base name without the
 * extension ("stdin" for "-"), into name (n bytes). */
void ckpt_file_layer_name(const char *path, char *name, size_t n);

/* Keeps buf (malloc'd) until the checkpoint closes; frees it and returns AT_ERR_NOMEM when that
 * fails. */
int ckpt_keep(at_ckpt *c, void *buf);

/* The bytes of path: a regular file is mapped, a pipe / FIFO / "-" (stdin) read into memory
 * (opts' limits). They stay valid until the checkpoint closes. Sets the file-level error
 * ("no such file", ...) and returns its status on failure. */
int ckpt_load(at_ckpt *c, const char *path, const unsigned char **p, size_t *n);

/* Reads a checkpoint held in p[0..n), its format told by its content (name, the file's path,
 * names a single-array layer and picks the reader when the content is not recognised); dir is
 * where an index's shards are. Returns the file-level status. */
int ckpt_read(at_ckpt *c, const unsigned char *p, size_t n, const char *name, const char *dir);

/* at_ckpt_open of bytes already in memory (borrowed until at_ckpt_close), read as if they were
 * the file name: for the fuzz targets. Caller owns return value. */
at_ckpt *ckpt_open_bytes(const void *p, size_t n, const char *name, const at_ckpt_opts *opts);

/* Opens path (a file or directory) into c. */
int ckpt_open_path(at_ckpt *c, const char *path);

/* The readers, one per format; each returns the file-level status. */
int ckpt_read_safetensors(at_ckpt *c, const unsigned char *p, size_t n);
int ckpt_read_npy(at_ckpt *c, const unsigned char *p, size_t n, const char *layer_name);
int ckpt_read_npz(at_ckpt *c, at_zip *z);
int ckpt_read_torch(at_ckpt *c, at_zip *z, const char *path);
int ckpt_read_index(at_ckpt *c, const unsigned char *p, size_t n, const char *dir);
int ckpt_open_dir(at_ckpt *c, const char *dir);

/* A sharded checkpoint's index (model.safetensors.index.json, pytorch_model.bin.index.json):
 * weight_map, tensor name -> shard file. ckpt_index_parse validates json[0..n) and returns the
 * index, or NULL with *status and the reason in err. Caller owns return value. */
ckpt_index *ckpt_index_parse(const char *json, size_t n, int *status, char *err, size_t errn);
/* Distinct shard files, in order of first mention. */
size_t ckpt_index_shards(const ckpt_index *ix);
const char *ckpt_index_shard(const ckpt_index *ix, size_t i);
void ckpt_index_free(ckpt_index *ix);

#endif
