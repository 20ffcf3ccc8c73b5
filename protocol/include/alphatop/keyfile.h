/* SPDX-License-Identifier: Apache-2.0 */
/* keyfile.h -- CurveZMQ key files, shared by the agent (trainer) and the feed (monitor).
 *
 * A key file is text, one `name = "value"` per line, '#' starts a comment:
 *     # alphatop CurveZMQ key: keep this file private
 *     public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
 *     secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
 * Keys are Z85 text (40 characters). The public half alone (the ".pub" file) has only the
 * public-key line. An allow-list file holds client public keys: any number of lines that are a
 * bare Z85 key or a `public-key = "..."` line, so .pub files can simply be concatenated.
 * Generate keys with `alphatop-keygen NAME` (agent/) or at_agent_keygen().
 *
 * No ZeroMQ in here: this only reads and writes text. Reentrant. Not exported from
 * libalphatop_agent.so (hidden visibility, see protocol.h).
 */
#ifndef ALPHATOP_KEYFILE_H
#define ALPHATOP_KEYFILE_H

#include <stddef.h>

#include "alphatop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AT_KEY_Z85_LEN 40 /* characters of a Z85-encoded 32-byte key */

/* Reads a key file. public_key and secret_key (each AT_KEY_Z85_LEN + 1 bytes) receive
 * NUL-terminated Z85 text; secret_key may be NULL when only the public half is needed, and is
 * set to "" when the file has no secret. Returns AT_OK, AT_ERR_IO (unreadable), AT_ERR_FORMAT
 * (no valid public-key line, or a malformed key) or AT_ERR_MISSING (secret_key requested and
 * absent); err (may be NULL) receives a message naming the file and line. */
int at_keyfile_read(const char *path, char *public_key, char *secret_key, char *err, size_t errlen);

/* Writes a key file: path gets both halves (mode 0600), path + ".pub" the public half
 * (mode 0644). Keys are Z85 text. Returns AT_OK or AT_ERR_IO/AT_ERR_ARG. */
int at_keyfile_write(const char *path, const char *public_key, const char *secret_key);

/* Reads an allow-list: up to cap keys into keys[i] (each AT_KEY_Z85_LEN + 1 bytes), count in
 * *n. Returns AT_OK, AT_ERR_IO, AT_ERR_FORMAT (a line that is not a key) or AT_ERR_SIZE (more
 * than cap keys); err as above. */
int at_keyfile_read_list(const char *path, char (*keys)[AT_KEY_Z85_LEN + 1], size_t cap, size_t *n,
                         char *err, size_t errlen);

/* Whether the key file at path keeps its secret to its owner: AT_OK when it is owned by this
 * process's user and grants nothing to group or others; else AT_ERR_AUTH with a warning for
 * the user in warn (may be NULL), e.g. "monitor: mode 0644 gives other users access to the secret
 * key (chmod 600 monitor)"; AT_ERR_IO when it cannot be examined. The caller decides whether
 * to refuse or to print the warning and go on. */
int at_keyfile_check_private(const char *path, char *warn, size_t warnlen);

/* Whether s is exactly AT_KEY_Z85_LEN characters of the Z85 alphabet (1) or not (0). */
int at_key_is_z85(const char *s);

#ifdef __cplusplus
}
#endif
#endif
