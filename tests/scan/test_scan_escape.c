/* SPDX-License-Identifier: Apache-2.0 */
/* `alphatop scan` on a checkpoint whose tensor names carry terminal escapes (ESC sequences, an
 * 8-bit CSI 0x9b, the C1 CSI U+009B) and bytes that are not UTF-8: the table, the CSV and
 * stderr show them escaped and never emit a control byte; every --json line is valid UTF-8
 * JSON that reads back to the name (invalid bytes as U+FFFD). */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alphatop/text.h"
#include "testfiles.h"

/* Names as the safetensors header spells them (JSON escapes allowed), what they decode to,
 * and how the table must show them. The reader takes tensors whose names end in "weight". */
static const struct {
    const char *header, *decoded, *shown;
} names[] = {
    {"a\\u001b[2J\\u001b]0;pwned\\u0007.weight", "a\x1b[2J\x1b]0;pwned\x07.weight",
     "a\\x1b[2J\\x1b]0;pwned\\x07.weight"},
    {"b\x9b"
     "31m.weight",
     "b\x9b"
     "31m.weight",
     "b\\x9b31m.weight"},
    {"c\\u009b31m.weight",
     "c\xc2\x9b"
     "31m.weight",
     "c\\u009b31m.weight"},
    {"d\xff\xfe.weight", "d\xff\xfe.weight", "d\\xff\\xfe.weight"},
    {"e\\u202egpj.weight",
     "e\xe2\x80\xae"
     "gpj.weight",
     "e\\u202egpj.weight"},
};
#define NNAMES (sizeof names / sizeof names[0])

/* No C0 control but newline, no DEL, no C1 (raw or UTF-8 encoded), all valid UTF-8. */
static void assert_clean(const char *what, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = at_text_utf8_next(s + i, n - i, &cp);
        if (len == 0)
            fail_msg("%s: byte %zu (0x%02x) is not UTF-8", what, i, (unsigned char)s[i]);
        if (cp != '\n' && at_text_is_control(cp))
            fail_msg("%s: control character U+%04X at byte %zu", what, (unsigned)cp, i);
        i += len;
    }
}

static void test_scan_output_is_escaped(void **state)
{
    (void)state;
    tf_tensor t[NNAMES];
    float *w = tf_gauss(64 * 32, 7, 0.1);
    for (size_t i = 0; i < NNAMES; i++)
        t[i] = (tf_tensor){names[i].header, "F32", 2, {64, 32}, w, 64 * 32 * 4, 0, 0};
    const char *path = tf_path("escapes.safetensors");
    tf_write_safetensors(path, t, (int)NNAMES, 8, 0);
    char args[1024];
    char *out, *err;

    snprintf(args, sizeof args, "scan '%s'", path);
    assert_int_equal(tf_run(args, &out, &err), 0);
    assert_clean("table", out);
    assert_clean("stderr", err);
    for (size_t i = 0; i < NNAMES; i++)
        if (!strstr(out, names[i].shown))
            fail_msg("table lacks %s:\n%s", names[i].shown, out);
    free(out);
    free(err);

    snprintf(args, sizeof args, "scan --csv '%s'", path);
    assert_int_equal(tf_run(args, &out, &err), 0);
    assert_clean("csv", out);
    free(out);
    free(err);

    snprintf(args, sizeof args, "scan --json '%s'", path);
    assert_int_equal(tf_run(args, &out, &err), 0);
    assert_clean("json", out);
    int found = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        if (!o)
            fail_msg("not JSON: %s", line);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
        for (size_t i = 0; cJSON_IsString(nm) && i < NNAMES; i++) {
            /* What the name reads back as: invalid bytes became U+FFFD, one each. */
            char want[64];
            size_t k = 0;
            const char *d = names[i].decoded;
            for (size_t j = 0, n = strlen(d); j < n;) {
                uint32_t cp;
                size_t len = at_text_utf8_next(d + j, n - j, &cp);
                memcpy(want + k, len ? d + j : "\xef\xbf\xbd", len ? len : 3);
                k += len ? len : 3;
                j += len ? len : 1;
            }
            want[k] = '\0';
            found += strcmp(nm->valuestring, want) == 0;
        }
        cJSON_Delete(o);
    }
    assert_int_equal(found, (int)NNAMES);
    free(out);
    free(err);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_scan_output_is_escaped)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return rc;
}
