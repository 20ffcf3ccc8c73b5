/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target on the protocol decoder. An input is one message: the header frame, then
 * optionally "\n--\n" and the payload frame. The same function replays the committed corpus
 * in the normal test build (tests/protocol/test_corpus.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alphatop/protocol.h"

int at_fuzz_decode(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decodes an input as described above; returns the decoder's status. Small limits make the
 * size checks reachable with small inputs. */
int at_fuzz_decode(const uint8_t *data, size_t size)
{
    static const char sep[] = "\n--\n";
    at_proto_frame fr[2] = {{data, size}, {NULL, 0}};
    size_t nframes = 1;
    for (size_t i = 0; i + 4 <= size; i++) {
        if (memcmp(data + i, sep, 4) == 0) {
            fr[0].size = i;
            fr[1].data = data + i + 4;
            fr[1].size = size - i - 4;
            nframes = 2;
            break;
        }
    }
    at_proto_limits lim = {.max_header = 4096, .max_payload = 1 << 16};
    at_proto_msg *m = malloc(sizeof *m);
    if (!m)
        return AT_ERR_NOMEM;
    at_proto_error e;
    int rc = at_proto_decode(fr, nframes, &lim, m, &e);
    /* A decoded message must encode again: the two sides agree on what is valid. */
    if (rc == AT_OK) {
        char *buf = malloc(AT_PROTO_MAX_HEADER + 8);
        size_t len;
        if (buf && at_proto_encode(m, buf, AT_PROTO_MAX_HEADER + 8, &len, &e) != AT_OK)
            abort();
        free(buf);
    }
    free(m);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    at_fuzz_decode(data, size);
    return 0;
}
