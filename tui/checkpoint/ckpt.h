/* SPDX-License-Identifier: Apache-2.0 */
/* ckpt.h -- read weight layers out of checkpoint files, without copying where possible.
 *
 * Formats, told apart by their content (the extension only picks which reader explains why a
 * file it names is malformed):
 *   safetensors      8-byte header length, JSON header, data
 *   torch.save zip   .pt / .pth / pytorch_model.bin of torch >= 1.6 (PK\3\4, NAME/data.pkl and
 *                    NAME/data/KEY storages); the pickle is read by a restricted interpreter
 *                    that runs nothing (pickle.h)
 *   .npy / .npz      numpy arrays, one or a zip of them (numpy.savez, savez_compressed)
 *   index JSON       model.safetensors.index.json / pytorch_model.bin.index.json: the shards
 *                    of one model, read as one checkpoint in the index's order
 *   directory        a Hugging Face model directory (its index, model.safetensors,
 *                    pytorch_model.bin, adapter_model.*), or the one checkpoint file in it
 *   "-", pipe, FIFO  read into memory (opts' limits), then as above
 *   anything else    raw little-endian float32, row-major, with an explicit shape
 * In state dicts and safetensors, a layer is a 2-D or 4-D float tensor whose name ends in
 * "weight", or in "kernel" (Flax: a dense kernel is stored (in, out), the transpose of
 * PyTorch's (out, in), which leaves its spectrum unchanged; a conv kernel (kh, kw, in, out) is
 * viewed as (out, in, kh, kw)). opts.select adds any tensor whose name it matches, whatever the
 * name, and makes a 3-D one a layer: a Conv1d weight (out, in, k), viewed as the conv2d
 * (out, in, 1, k) as the live monitor does (Flax: (k, in, out)). A single .npy (or a bare
 * saved tensor) is one layer named after the file, chosen as if selected.
 *
 * Files are mapped read-only; layer views point into the mapping (or into a copy when the data
 * is misaligned, not in C order, compressed or float64) and stay valid until at_ckpt_close.
 * Problems with one tensor (bad offsets, size mismatch, unsupported dtype) are reported on that
 * layer only, so the other layers can still be analysed; tensors not analysed by design (an
 * integer or FP8 dtype, a tied copy of another layer) say why in skip. Nothing here prints.
 *
 * Large checkpoints, layer by layer: with opts.lazy nothing is copied at open (a layer that
 * needs a copy has tensor.data NULL), and every layer says where its elements are (loc: the
 * file and byte offset, or this process's memory). at_ckpt_view_open reads one layer from
 * there on any thread -- or in another process that sees the same file -- mapping only its
 * bytes, converting only when the core cannot read them as stored, and giving the pages back
 * when the view is closed: memory stays bounded by the layers open at once.
 *
 *     at_ckpt *c = at_ckpt_open("model.safetensors", NULL);
 *     if (!c) ... out of memory
 *     if (at_ckpt_status(c) < 0) ... whole file unreadable: at_ckpt_last_error(c)
 *     for (size_t i = 0; i < at_ckpt_count(c); i++) {
 *         const at_ckpt_layer *l = at_ckpt_layer_at(c, i);
 *         if (l->skip[0]) ... not analysed, l->skip says why
 *         else if (l->err < 0) ... l->error names the problem; otherwise l->tensor is ready
 *     }
 *     at_ckpt_close(c);
 */
#ifndef ALPHATOP_CKPT_H
#define ALPHATOP_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include <regex.h>

#include "alphatop/htsr.h"

/* Open options; all-zero gives the defaults. raw_ndim/raw_shape give the shape of a raw float32
 * file (2 or 4 dims); a raw file without it is a usage error (AT_ERR_ARG). */
typedef struct at_ckpt_opts {
    int raw_ndim;
    int64_t raw_shape[4];
    size_t stream_max;  /* bytes read at most from a pipe, FIFO or "-" (0: AT_CKPT_STREAM_MAX) */
    size_t inflate_max; /* bytes one compressed zip entry may inflate to (0: stream_max) */
    int fifo_wait_ms;   /* a named FIFO's wait for its first byte (0: AT_CKPT_FIFO_WAIT_MS) */
    int lazy; /* 1: layers that need a copy (F64, not C order, misaligned) are not copied at open:
                 their tensor.data is NULL, at_ckpt_view_open reads them (0: copied at open) */
    const regex_t *select; /* NULL, or the names (extended regex, searched) that are layers
                              whatever their name, 3-D ones as Conv1d weights; borrowed */
    int all_tensors;       /* 1: every tensor is a layer record, those that are not layers skipped
                              with why and not_layer set ("bias: not a matrix"); 0: only layers */
} at_ckpt_opts;

/* Dimensions of a stored tensor that are kept (a tensor with more has its first ones). */
#define AT_CKPT_MAX_NDIM 8

#define AT_CKPT_STREAM_MAX ((size_t)4 << 30)
#define AT_CKPT_FIFO_WAIT_MS 10000

/* How a layer's elements are stored (the core reads the first three as they are). */
typedef enum at_ckpt_stored {
    AT_CKPT_STORED_F32,
    AT_CKPT_STORED_F16,
    AT_CKPT_STORED_BF16,
    AT_CKPT_STORED_F64, /* narrowed to float32 when read (round to nearest) */
} at_ckpt_stored;

/* Where a usable layer's elements are: enough to read them on any thread, or in another process
 * that sees the same file. */
typedef struct at_ckpt_loc {
    const char *file; /* absolute path of the file holding them; NULL when they are only in this
                         process's memory (read from a pipe, inflated from a compressed entry) */
    uint64_t offset;  /* with file: byte offset of the first element */
    const void *mem;  /* the first element in this process's memory (NULL in another process) */
    at_ckpt_stored stored;
    int64_t stride[4]; /* per dimension, in elements (C order: shape[1] * ..., ..., 1) */
} at_ckpt_loc;

/* One layer of a checkpoint. All pointers are owned by the checkpoint. */
typedef struct at_ckpt_layer {
    const char *name; /* tensor name; for .npy and raw files the file name without extension */
    at_tensor tensor; /* the view; kind is LINEAR for 2-D and CONV2D for 4-D (a conv1d's
                         (out, in, 1, k), a Flax kernel's (out, in, kh, kw)) */
    int stored_ndim;  /* the shape as stored in the file (its first AT_CKPT_MAX_NDIM dims) */
    int64_t stored_shape[AT_CKPT_MAX_NDIM];
    int not_layer;     /* opts.all_tensors: a tensor that is not a layer (bias, norm scale,
                          a name not "*weight" / "*kernel" and not selected); skip says why */
    int candidate;     /* 1: a layer when opts.select matches its name (a float tensor of 2 to
                          4 dims, not a bias, not tied), whether or not it is chosen; 0: never
                          a layer, whatever selects it (skip says why), or a malformed entry */
    int err;           /* AT_OK, or why this layer cannot be used (tensor.data is then NULL) */
    const char *error; /* detail when err < 0, e.g. "data_offsets [0, 96) hold 96 bytes but
                          shape 4x8 of F32 needs 128"; "" otherwise */
    const char *skip; /* "" or, for a tensor not analysed by design, why: "tied: the same storage as
                         wte.weight, analysed once", "dtype int8: not floating point" (numpy's
                         name in every format: safetensors' I8 too), "bias: not a matrix". err is
                         then AT_ERR_UNSUPPORTED and error the same text, so code unaware of skips
                         sees an unusable layer */
    at_ckpt_loc loc;  /* where the elements are (when err is AT_OK) */
} at_ckpt_layer;

typedef struct at_ckpt at_ckpt;

typedef enum at_ckpt_format {
    AT_CKPT_SAFETENSORS,
    AT_CKPT_NPY,
    AT_CKPT_RAW,     /* no format recognised: raw float32, which needs a shape */
    AT_CKPT_ZIP,     /* torch.save archive or .npz, told apart by the entries */
    AT_CKPT_INDEX,   /* JSON: a sharded checkpoint's index */
    AT_CKPT_PICKLE,  /* torch.save before torch 1.6 (a bare pickle): refused with a reason */
    AT_CKPT_DIR,     /* a directory */
    AT_CKPT_STREAM,  /* "-", a pipe or a FIFO: its format is known once read */
    AT_CKPT_MISSING, /* cannot be examined (no such file, no permission): open says why */
} at_ckpt_format;

/* The format at_ckpt_open will read path as, from its first bytes (a pipe is not read). */
at_ckpt_format at_ckpt_format_of(const char *path);

/* Opens and validates path. Returns NULL only when out of memory; a file that cannot be read at
 * all still gives an object whose at_ckpt_status is negative. opts may be NULL. Caller owns
 * return value (close with at_ckpt_close). */
at_ckpt *at_ckpt_open(const char *path, const at_ckpt_opts *opts);

/* AT_OK, or the file-level error: AT_ERR_NOTFOUND (no such file, an empty directory, a missing
 * shard), AT_ERR_IO (cannot open/map/read), AT_ERR_FORMAT (malformed header, archive, pickle or
 * index), AT_ERR_SIZE (truncated, over a limit), AT_ERR_UNSUPPORTED (a pickle global or opcode
 * outside the subset, the pre-1.6 torch format), AT_ERR_TIMEOUT (a FIFO nobody writes to),
 * AT_ERR_ARG (raw file without a shape). */
int at_ckpt_status(const at_ckpt *self);

/* Detail of the file-level error ("" when none). Borrowed; never NULL. */
const char *at_ckpt_last_error(const at_ckpt *self);

/* The path given to at_ckpt_open. Borrowed. */
const char *at_ckpt_path(const at_ckpt *self);

/* Number of weight layers found (0 when the file failed). */
size_t at_ckpt_count(const at_ckpt *self);

/* Layer i (0 <= i < count), in file order. Borrowed; valid until at_ckpt_close. */
const at_ckpt_layer *at_ckpt_layer_at(const at_ckpt *self, size_t i);

/* The layer named name, or NULL. Borrowed. */
const at_ckpt_layer *at_ckpt_find(const at_ckpt *self, const char *name);

/* Unmaps and frees everything, including every layer view. NULL-safe. */
void at_ckpt_close(at_ckpt *self);

/* One layer's weights, read for one analysis. */
typedef struct at_ckpt_view at_ckpt_view;

/* Opens the elements at loc of a tensor shaped like t (its ndim, shape and kind; t->data is not
 * used) for reading: from loc->file when it is set, mapping only their bytes, else from
 * loc->mem. Nothing is read yet. Caller owns return value (at_ckpt_view_close); NULL on error
 * with *status (may be NULL) set and the reason in err (errn bytes): AT_ERR_ARG (a shape or
 * stride that is not a weight's, no location), AT_ERR_NOTFOUND / AT_ERR_IO (the file cannot be
 * opened or mapped), AT_ERR_SIZE (the file is now shorter than the layer's bytes),
 * AT_ERR_NOMEM. */
at_ckpt_view *at_ckpt_view_open(const at_tensor *t, const at_ckpt_loc *loc, int *status, char *err,
                                size_t errn);

/* Whether every element is zero (+0 or -0; F64 as narrowed to float32), read as stored and only
 * up to the first element that is not: a cheap test before any conversion or analysis. */
int at_ckpt_view_is_zero(const at_ckpt_view *self);

/* The weights as the core reads them: the stored bytes when they are F32/F16/BF16 in C order and
 * aligned, else a C-order copy (F64 narrowed to float32), made on the first call. NULL when out
 * of memory. Borrowed: valid until at_ckpt_view_close. */
const at_tensor *at_ckpt_view_tensor(at_ckpt_view *self);

/* Frees the copy and unmaps the pages (the process's memory no longer holds them). NULL-safe. */
void at_ckpt_view_close(at_ckpt_view *self);

/* Parses "ROWSxCOLS" (or "AxBxCxD") into shape; returns the number of dims (2 or 4), or -1 when
 * s is not such a shape with every dimension positive. */
int at_ckpt_parse_shape(const char *s, int64_t shape[4]);

/* Formats a shape as "512x256" or "32x16x3x3" into buf (n bytes). Returns buf. */
char *at_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

/* Bytes per element of dtype (4 or 2). */
size_t at_dtype_size(at_dtype dtype);

/* "F32", "F16", "BF16". Static string. */
const char *at_dtype_name(at_dtype dtype);

#endif
