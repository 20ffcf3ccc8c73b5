/* SPDX-License-Identifier: Apache-2.0 */
/* status.h -- the one status enum shared by every alphatop library.
 *
 * Every library function that can fail returns 0 (AT_OK) or one of these negative codes.
 * Objects additionally keep a last-error message with detail (see each module's *_last_error).
 */
#ifndef ALPHATOP_STATUS_H
#define ALPHATOP_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AT_EXPORT __attribute__((visibility("default")))
#else
#define AT_EXPORT
#endif

typedef enum at_status {
    AT_OK = 0,
    AT_ERR_NOMEM = -1,       /* allocation failed */
    AT_ERR_ARG = -2,         /* invalid argument (NULL, zero size, bad option) */
    AT_ERR_IO = -3,          /* read/write/open failed (errno has detail) */
    AT_ERR_FORMAT = -4,      /* malformed input: file, header or message */
    AT_ERR_SIZE = -5,        /* a size does not match what its header says, or exceeds a limit */
    AT_ERR_NONFINITE = -6,   /* NaN or Inf in weights */
    AT_ERR_LAPACK = -7,      /* a LAPACK routine reported failure (did not converge) */
    AT_ERR_UNSUPPORTED = -8, /* dtype, kind or version not supported */
    AT_ERR_EMPTY = -9,       /* nothing to analyse: empty, all-zero, or too few eigenvalues */
    AT_ERR_VERSION = -10,    /* wire protocol version not understood */
    AT_ERR_MISSING = -11,    /* a required field is missing */
    AT_ERR_AGAIN = -12,      /* would block / try again later (queue full, no message yet) */
    AT_ERR_STATE = -13,      /* call not valid in the object's current state */
    AT_ERR_NET = -14,        /* ZeroMQ / socket failure */
    AT_ERR_AUTH = -15,       /* authentication failed or keys unreadable */
    AT_ERR_TIMEOUT = -16,    /* a deadline passed */
    AT_ERR_NOTFOUND = -17,   /* a named thing (layer, run, key) does not exist */
} at_status;

/* A short, static, human-readable description of a status code. Never NULL. */
AT_EXPORT const char *at_strerror(int status);

#ifdef __cplusplus
}
#endif
#endif
