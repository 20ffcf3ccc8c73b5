/* SPDX-License-Identifier: Apache-2.0 */
/* zipread.h -- a zip archive held in memory (a mapped file or a buffer), read with libzip.
 *
 * The container of torch.save's checkpoints (.pt, .pth, pytorch_model.bin) and of numpy's .npz.
 * An entry stored without compression, as torch.save and numpy.savez write them, is handed
 * out as a pointer into the caller's memory (no copy: the checkpoint stays mapped, and only
 * the pages a layer touches are read); a compressed entry (numpy.savez_compressed) is
 * inflated into a buffer the caller owns. Nothing here prints.
 *
 *     at_zip *z = at_zip_open(map, size, &lim, &status);
 *     if (!z) ... status, and at_zip_open's message in err
 *     long i = at_zip_find(z, "archive/data.pkl");
 *     const unsigned char *p; size_t n; void *owned;
 *     if (at_zip_entry(z, (size_t)i, &p, &n, &owned) < 0) ... at_zip_last_error(z)
 *     ... use p[0..n) ...
 *     free(owned);
 *     at_zip_free(z);
 */
#ifndef ALPHATOP_ZIPREAD_H
#define ALPHATOP_ZIPREAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct at_zip at_zip;

/* Opens the archive in data[0..size), which must stay valid until at_zip_free. max_inflate
 * caps the size of one inflated entry (bytes; 0: no cap besides deflate's own 1:1032 ratio).
 * Returns NULL and sets *status (AT_ERR_FORMAT: not a zip or a damaged one, e.g. truncated;
 * AT_ERR_NOMEM) with the reason in err (errn bytes). Caller owns return value. */
at_zip *at_zip_open(const void *data, size_t size, size_t max_inflate, int *status, char *err,
                    size_t errn);

/* Number of entries. */
size_t at_zip_count(const at_zip *self);

/* Name of entry i (0 <= i < count). Borrowed; valid until at_zip_free. */
const char *at_zip_name(const at_zip *self, size_t i);

/* Index of the entry called name, or -1. */
long at_zip_find(const at_zip *self, const char *name);

/* The bytes of entry i: *p and *n. A stored entry points into the archive's memory and sets
 * *owned to NULL; a compressed one is inflated into *owned (caller frees; *p == *owned).
 * Returns AT_OK, or AT_ERR_FORMAT (damaged entry, bad checksum, encrypted, unknown method),
 * AT_ERR_SIZE (past max_inflate), AT_ERR_NOMEM; detail in at_zip_last_error. */
int at_zip_entry(at_zip *self, size_t i, const unsigned char **p, size_t *n, void **owned);

/* The last error's detail ("" when none). Borrowed; never NULL. */
const char *at_zip_last_error(const at_zip *self);

/* Closes the archive (the memory it read stays the caller's). NULL-safe. */
void at_zip_free(at_zip *self);

#endif
