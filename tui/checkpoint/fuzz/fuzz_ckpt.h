/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_ckpt.h -- the checkpoint parsers' fuzz entry points (fuzz_ckpt.c), shared by the
 * libFuzzer targets and the corpus replay test (tests/scan/test_ckpt_corpus.c). */
#ifndef ALPHATOP_FUZZ_CKPT_H
#define ALPHATOP_FUZZ_CKPT_H

#include <stddef.h>
#include <stdint.h>

/* Each reads one input and returns AT_OK when it was read cleanly, or the first status that
 * said otherwise (the file's, else the first layer error; skips are not errors). Every usable
 * layer's bytes are read in full, so a view past its data shows under ASan. */

/* torch.save archives: an input starting "PK" is the archive; any other input is data.pkl of an
 * archive whose storages data/0 (64 float32), data/1 (16 float64) and data/2 (8 int8) exist. */
int at_fuzz_torch(const uint8_t *data, size_t size);

/* .npz: an input starting "PK" is the archive; any other input is one entry, w.weight.npy. */
int at_fuzz_npz(const uint8_t *data, size_t size);

/* A sharded checkpoint's index JSON (parsed only; no shard is opened). */
int at_fuzz_index(const uint8_t *data, size_t size);

/* A zip archive in memory of n entries (name, bytes, size), deflated when compress. Returns the
 * archive (caller frees) and its size in *outn, or NULL. */
unsigned char *at_fuzz_zip(size_t n, const char *const *names, const void *const *data,
                           const size_t *sizes, int compress, size_t *outn);

#endif
