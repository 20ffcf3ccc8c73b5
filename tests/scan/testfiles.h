/* SPDX-License-Identifier: Apache-2.0 */
/* testfiles.h -- writers of small checkpoint files for the scan tests, and a runner for the
 * alphatop binary. Every file is written byte by byte here, independently of tui/ckpt.c. */
#ifndef AT_TEST_TESTFILES_H
#define AT_TEST_TESTFILES_H

#include <stddef.h>
#include <stdint.h>

/* One tensor of a safetensors file. data holds bytes of dtype ("F32", "F16", "BF16", or any
 * string to test unsupported ones). begin/end override the data_offsets when end > 0. */
typedef struct tf_tensor {
    const char *name;
    const char *dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t bytes;
    size_t begin, end;
} tf_tensor;

/* Writes a safetensors file: 8-byte header length, JSON header padded with spaces to
 * header_align bytes (1: no padding, so data may start misaligned), then the tensors' bytes
 * back to back. truncate > 0 drops that many bytes from the end. */
void tf_write_safetensors(const char *path, const tf_tensor *t, int n, int header_align,
                          size_t truncate);

/* Writes bytes to path. */
void tf_write_bytes(const char *path, const void *data, size_t n);

/* Writes an npy file of format version (1, 2 or 3) with the given header dict text. */
void tf_write_npy(const char *path, int version, const char *dict, const void *data, size_t bytes);

/* Reads a raw float32 oracle matrix (tests/data/oracle/matrices/NAME.f32) into a malloc'd
 * buffer of n floats. */
float *tf_read_oracle(const char *name, size_t n);

/* n float32 values, seeded standard normal scaled by scale. Caller frees. */
float *tf_gauss(size_t n, uint64_t seed, double scale);

/* A fresh directory under /tmp for one test program; returns the path of name inside it
 * (static buffer, overwritten by the next tf_path call). */
const char *tf_path(const char *name);

/* Removes the directory tf_path created (call once at the end of main). */
void tf_cleanup(void);

/* Runs the alphatop binary with args (a shell-quoted string), stdout into *out and stderr into
 * *err (malloc'd, NUL-terminated). Returns the exit status. */
int tf_run(const char *args, char **out, char **err);

/* float32 -> IEEE half / bfloat16 bits, for values exactly representable in the narrow type
 * (normal or zero): the tests choose such values so the expected float32 is known exactly. */
uint16_t tf_f32_to_f16_exact(float f);
uint16_t tf_f32_to_bf16_exact(float f);

#endif
