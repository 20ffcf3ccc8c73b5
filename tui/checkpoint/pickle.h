/* SPDX-License-Identifier: Apache-2.0 */
/* pickle.h -- a restricted unpickler: the part of Python's pickle that torch.save writes for
 * tensors and state dicts (the data.pkl of a .pt / .pth / pytorch_model.bin archive).
 *
 * A pickle is a program for a stack machine; Python's unpickler runs it and calls whatever
 * globals it names, which is why loading an untrusted .pt can run code. This interpreter runs
 * nothing: it knows the opcodes of protocols 2 to 5 that build plain data (None, bools, ints,
 * floats, strings, bytes, tuples, lists, dicts) and a fixed list of globals, each interpreted
 * here instead of called:
 *   collections.OrderedDict                         an empty dict (state dicts are these)
 *   torch._utils._rebuild_tensor_v2                 a tensor: storage, offset, size, stride
 *   torch._utils._rebuild_parameter[_with_state]    an nn.Parameter: its tensor
 *   torch._tensor._rebuild_from_type_v2             a tensor saved as torch.Tensor/Parameter
 *   torch.Tensor, torch.nn.parameter.Parameter      as the type argument of the above
 *   torch.<Type>Storage                             the type in a storage's persistent id
 * Any other global (os.system, builtins.eval, a model class, numpy scalars) is refused with its
 * name, as torch.load(weights_only=True) refuses it. Storages come from BINPERSID records
 * ('storage', torch.<Type>Storage, key, location, numel), torch's persistent_load.
 *
 * The result is the list of tensors anywhere in the unpickled object (nested dicts, lists and
 * tuples), each named by its path of keys joined with '.': "fc1.weight" for a state dict,
 * "model.fc1.weight" for {"model": state_dict, ...}, "" for a bare tensor. The same tensor
 * reached twice (pickle's memo) is listed under both names. Nothing here prints.
 *
 *     at_pkl *pk = at_pkl_new(&status);
 *     if (at_pkl_load(pk, bytes, n) < 0) ... at_pkl_last_error(pk)
 *     for (size_t i = 0; i < at_pkl_count(pk); i++) { const at_pkl_tensor *t = at_pkl_at(pk, i); }
 *     at_pkl_free(pk);
 */
#ifndef ALPHATOP_PICKLE_H
#define ALPHATOP_PICKLE_H

#include <stddef.h>
#include <stdint.h>

/* Dimensions kept per tensor; a tensor with more has its true ndim and the first ones. */
#define AT_PKL_MAXDIM 8

/* A storage: one data/<key> entry of the archive. */
typedef struct at_pkl_storage {
    const char *type; /* "FloatStorage", "HalfStorage", ... (the name after "torch.") */
    const char *key;  /* the archive entry's name under data/ */
    int64_t numel;    /* elements of type it holds */
} at_pkl_storage;

typedef struct at_pkl_tensor {
    const char *name; /* path of keys, '.'-joined; "" for a bare tensor */
    size_t storage;   /* index into the storages */
    int64_t offset;   /* first element, in elements of the storage */
    int ndim;
    int64_t shape[AT_PKL_MAXDIM];
    int64_t stride[AT_PKL_MAXDIM]; /* in elements */
} at_pkl_tensor;

typedef struct at_pkl at_pkl;

/* An empty unpickler. Returns NULL and sets *status (AT_ERR_NOMEM) on failure; status may be
 * NULL. Caller owns return value (free with at_pkl_free). */
at_pkl *at_pkl_new(int *status);

/* Interprets the pickle p[0..n) (borrowed during the call only) and collects its tensors,
 * replacing what an earlier load found. Returns AT_OK, AT_ERR_FORMAT (malformed pickle, bad
 * arguments), AT_ERR_UNSUPPORTED (an opcode or a global outside the subset) or AT_ERR_NOMEM;
 * detail in at_pkl_last_error. */
int at_pkl_load(at_pkl *self, const void *p, size_t n);

/* Detail of the last error, e.g. "global os.system is not allowed (...)". Borrowed; never
 * NULL. */
const char *at_pkl_last_error(const at_pkl *self);

/* Tensors found, in the order the pickle builds its dicts (a state dict's order). */
size_t at_pkl_count(const at_pkl *self);
const at_pkl_tensor *at_pkl_at(const at_pkl *self, size_t i);

/* Distinct storages (by key), in order of first appearance. */
size_t at_pkl_storage_count(const at_pkl *self);
const at_pkl_storage *at_pkl_storage_at(const at_pkl *self, size_t i);

/* Frees everything, including the strings the tensors and storages point to. NULL-safe. */
void at_pkl_free(at_pkl *self);

#endif
