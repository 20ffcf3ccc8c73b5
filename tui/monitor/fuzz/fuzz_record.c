/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target on the record decoder (record.h). An input is one record's JSON text. A
 * record that decodes must encode again, and that text must be a fixed point: decoded and
 * encoded once more it gives the same bytes (so the writer and the reader agree on every field
 * the reader accepts). The same function replays the committed corpus (tests/data/fuzz-record)
 * in the normal test build (tests/monitor/test_record_corpus.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

int at_fuzz_record(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count_column(void *ctx, const at_record_column *c)
{
    (void)c;
    ++*(int *)ctx;
}

/* Decodes an input as described above; returns the decoder's status. */
int at_fuzz_record(const uint8_t *data, size_t size)
{
    int st;
    at_record_decoder *d = at_record_decoder_new(&st);
    if (!d)
        return st;
    at_record r;
    int rc = at_record_decode(d, (const char *)data, size, &r);
    char *once = NULL, *twice = NULL;
    size_t n1 = 0, n2 = 0;
    if (rc == AT_OK) {
        int columns = 0;
        if (r.type == AT_RECORD_LAYER &&
            at_record_layer_columns(&r, count_column, &columns) == AT_OK && columns < 3)
            abort(); /* at least kind and shape follow the name */
        once = at_record_encode(&r, &n1, &st);
        if (!once && st != AT_ERR_NOMEM)
            abort();
        if (once && at_record_decode(d, once, n1, &r) != AT_OK)
            abort();
        twice = once ? at_record_encode(&r, &n2, &st) : NULL;
        if (once && twice && (n1 != n2 || memcmp(once, twice, n1)))
            abort();
    }
    at_record_text_free(once);
    at_record_text_free(twice);
    at_record_decoder_free(d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    at_fuzz_record(data, size);
    return 0;
}
