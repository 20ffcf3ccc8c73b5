/* SPDX-License-Identifier: Apache-2.0 */
/* Escaping untrusted text: hand-written vectors (terminal escapes, C1 controls, bidi overrides,
 * the classic malformed UTF-8 cases), the snprintf-like truncation contract, a seeded property
 * test (escaping for people is lossless: unescaping gives the original bytes back), JSON
 * literals that cJSON parses back, and shortest exact numbers. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "alphatop/text.h"

typedef struct vec {
    const char *in;
    size_t n; /* 0: strlen(in) */
    const char *human, *json;
} vec;

static const vec vectors[] = {
    {"fc1.weight", 0, "fc1.weight", "\"fc1.weight\""},
    {"\x1b[2J\x1b]0;pwned\x07", 0, "\\x1b[2J\\x1b]0;pwned\\x07",
     "\"\\u001b[2J\\u001b]0;pwned\\u0007\""},
    {"a\nb\tc\rd\x7f", 0, "a\\x0ab\\x09c\\x0dd\\x7f", "\"a\\nb\\tc\\rd\\u007f\""},
    {"\b\f\v", 0, "\\x08\\x0c\\x0b", "\"\\b\\f\\u000b\""},
    {"x\x9b"
     "31m",
     0, "x\\x9b31m", "\"x\\ufffd31m\""}, /* raw 8-bit CSI: not UTF-8 */
    {"x\xc2\x9b"
     "31m",
     0, "x\\u009b31m", "\"x\\u009b31m\""}, /* CSI as a UTF-8 character */
    {"\xc2\x80\xc2\x9f\xc2\xa0", 0, "\\u0080\\u009f\xc2\xa0", "\"\\u0080\\u009f\xc2\xa0\""},
    {"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80", 0, "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80",
     "\"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80\""},
    {"abc\xe2\x80\xae"
     "gpj.exe",
     0, "abc\\u202egpj.exe", "\"abc\\u202egpj.exe\""},
    {"\xe2\x80\xa8\xe2\x81\xa6\xd8\x9c", 0, "\\u2028\\u2066\\u061c", "\"\\u2028\\u2066\\u061c\""},
    {"back\\slash \"q\"", 0, "back\\\\slash \"q\"", "\"back\\\\slash \\\"q\\\"\""},
    {"a\0b", 3, "a\\x00b", "\"a\\u0000b\""},
    {"\xc0\xaf", 0, "\\xc0\\xaf", "\"\\ufffd\\ufffd\""},                 /* overlong '/' */
    {"\xe0\x80\xaf", 0, "\\xe0\\x80\\xaf", "\"\\ufffd\\ufffd\\ufffd\""}, /* overlong */
    {"\xed\xa0\x80", 0, "\\xed\\xa0\\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* surrogate */
    {"\xf4\x90\x80\x80", 0, "\\xf4\\x90\\x80\\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
    {"\xf5\xff\xfe", 0, "\\xf5\\xff\\xfe", "\"\\ufffd\\ufffd\\ufffd\""},
    {"ok\xe2\x82", 0, "ok\\xe2\\x82", "\"ok\\ufffd\\ufffd\""}, /* truncated at the end */
    {"\xe2\x82"
     "A",
     0, "\\xe2\\x82A", "\"\\ufffd\\ufffdA\""},                           /* continuation missing */
    {"\x80", 0, "\\x80", "\"\\ufffd\""},                                 /* lone continuation */
    {"\xf4\x8f\xbf\xbf", 0, "\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""}, /* U+10FFFF is fine */
    /* U+FFFD as JSON writes it for an invalid byte: reading back and writing again is stable */
    {"\xef\xbf\xbd", 0, "\xef\xbf\xbd", "\"\\ufffd\""},
    {"", 0, "", "\"\""},
};

static void test_vectors(void **state)
{
    (void)state;
    char out[256];
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const vec *v = &vectors[i];
        size_t n = v->n ? v->n : strlen(v->in);
        size_t k = at_text_escape(out, sizeof out, v->in, n);
        if (strcmp(out, v->human) != 0)
            fail_msg("vector %zu: human \"%s\", want \"%s\"", i, out, v->human);
        assert_int_equal(k, strlen(v->human));
        assert_true(k < AT_TEXT_ESCAPE_CAP(n));
        k = at_text_json_string(out, sizeof out, v->in, n);
        if (strcmp(out, v->json) != 0)
            fail_msg("vector %zu: json %s, want %s", i, out, v->json);
        assert_int_equal(k, strlen(v->json));
        assert_true(k < AT_TEXT_JSON_CAP(n));
    }
    assert_string_equal(at_text_show(out, sizeof out, NULL), "");
    assert_string_equal(at_text_show(out, sizeof out, "run\x1b"), "run\\x1b");
    char *q = at_text_json_quote("a\x1b\xff");
    assert_string_equal(q, "\"a\\u001b\\ufffd\"");
    free(q);
}

static void test_truncation_keeps_escapes_and_characters_whole(void **state)
{
    (void)state;
    char out[16];
    memset(out, 'z', sizeof out);
    assert_int_equal(at_text_escape(out, 6, "\x1b\x1b", 2), 8);
    assert_string_equal(out, "\\x1b"); /* the second escape does not fit whole */
    assert_int_equal(at_text_escape(out, 4, "\x1b", 1), 4);
    assert_string_equal(out, "");
    assert_int_equal(at_text_escape(out, 3, "a\xc3\xa9", 3), 3);
    assert_string_equal(out, "a"); /* never half of the e-acute */
    assert_int_equal(at_text_json_string(out, 8, "abc\x01", 4), 11);
    assert_string_equal(out, "\"abc");
    out[0] = 'z';
    assert_int_equal(at_text_escape(out, 0, "abc", 3), 3); /* cap 0: nothing written */
    assert_int_equal(out[0], 'z');
    assert_int_equal(at_text_json_string(NULL, 0, "abc", 3), 5);
    assert_string_equal(at_text_show(out, 8, "0123456789"), "0123456");
}

/* Reverses at_text_escape: \xNN -> that byte, \uNNNN -> the character's UTF-8, \\ -> \. */
static size_t unescape(const char *s, unsigned char *out)
{
    size_t k = 0;
    while (*s) {
        if (s[0] != '\\') {
            out[k++] = (unsigned char)*s++;
        } else if (s[1] == '\\') {
            out[k++] = '\\';
            s += 2;
        } else if (s[1] == 'x') {
            unsigned v;
            assert_int_equal(sscanf(s + 2, "%2x", &v), 1);
            out[k++] = (unsigned char)v;
            s += 4;
        } else {
            unsigned v;
            assert_int_equal(s[1], 'u');
            assert_int_equal(sscanf(s + 2, "%4x", &v), 1);
            if (v < 0x800) {
                out[k++] = (unsigned char)(0xc0 | v >> 6);
            } else {
                out[k++] = (unsigned char)(0xe0 | v >> 12);
                out[k++] = (unsigned char)(0x80 | ((v >> 6) & 0x3f));
            }
            out[k++] = (unsigned char)(0x80 | (v & 0x3f));
            s += 6;
        }
    }
    return k;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Random byte strings biased towards the interesting ranges (controls, C1 lead bytes, partial
 * sequences): the human form is lossless and free of raw control bytes; the JSON form parses
 * back (cJSON) into a string with the same characters where the input was valid. */
static void test_random_strings_round_trip(void **state)
{
    (void)state;
    static const unsigned char pool[] = {0x00, 0x07, 0x0a, 0x1b, 0x5c, 0x22, 0x41, 0x7f,
                                         0x80, 0x9b, 0xc2, 0xc3, 0xa9, 0xe2, 0x80, 0xae,
                                         0xed, 0xf0, 0x9f, 0xf4, 0xf8, 0xff, 0x61, 0x20};
    unsigned char in[64], back[64 * 4];
    char human[AT_TEXT_ESCAPE_CAP(64)], json[AT_TEXT_JSON_CAP(64)];
    for (int trial = 0; trial < 20000; trial++) {
        size_t n = next_rand() % 24;
        for (size_t i = 0; i < n; i++)
            in[i] = pool[next_rand() % sizeof pool];
        at_text_escape(human, sizeof human, (const char *)in, n);
        for (const char *p = human; *p; p++)
            assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
        size_t k = unescape(human, back);
        assert_int_equal(k, n);
        assert_memory_equal(back, in, n);

        at_text_json_string(json, sizeof json, (const char *)in, n);
        char wrapped[sizeof json + 2];
        snprintf(wrapped, sizeof wrapped, "[%s]", json);
        cJSON *arr = cJSON_Parse(wrapped);
        if (!arr)
            fail_msg("not JSON: %s", wrapped);
        const cJSON *str = cJSON_GetArrayItem(arr, 0);
        assert_true(cJSON_IsString(str));
        /* Each valid character of the input is in the parsed string, in order; each invalid
         * byte became U+FFFD. cJSON stops at a decoded NUL, so compare up to the first one. */
        const char *got = str->valuestring;
        for (size_t i = 0; i < n && *got;) {
            uint32_t cp;
            size_t len = at_text_utf8_next((const char *)in + i, n - i, &cp);
            if (cp == 0 && len == 1)
                break;
            if (len == 0) {
                assert_memory_equal(got, "\xef\xbf\xbd", 3);
                got += 3;
                i += 1;
            } else {
                assert_memory_equal(got, in + i, len);
                got += len;
                i += len;
            }
        }
        cJSON_Delete(arr);
    }
}

static void test_json_numbers_shortest_and_exact(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {1.0 / 3.0, "0.3333333333333333"},
        {100, "100"},
        {-0.0, "-0"},
        {1e21, "1e+21"},
        {1e16, "10000000000000000"},
        {-65424263964195856.0, "-65424263964195860"},
        {1e17, "1e+17"},
        {1234567.0, "1234567"},
        {1e-5, "1e-05"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {-DBL_MAX, "-1.7976931348623157e+308"},
        {5e-324, "5e-324"},
        {DBL_MIN, "2.2250738585072014e-308"},
        {9007199254740991.0, "9007199254740991"},
        {4503599627370497.0, "4503599627370497"},
        {0.4375, "0.4375"},
        {NAN, "null"},
        {INFINITY, "null"},
        {-INFINITY, "null"},
    };
    char buf[AT_TEXT_NUMBER_CAP];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        at_text_json_number(buf, sizeof buf, cases[i].v);
        if (strcmp(buf, cases[i].text) != 0)
            fail_msg("case %zu: %s, want %s", i, buf, cases[i].text);
    }
    assert_string_equal(at_text_json_number(buf, 4, 0.125), ""); /* does not fit: nothing */
    /* Random finite doubles from random bits: exact, and one digit fewer is never exact. */
    for (int trial = 0; trial < 20000; trial++) {
        uint64_t bits = (uint64_t)next_rand() << 32 | next_rand();
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v))
            continue;
        at_text_json_number(buf, sizeof buf, v);
        double back = strtod(buf, NULL);
        assert_memory_equal(&back, &v, sizeof v);
        /* Significant digits: from the first to the last non-zero digit of the mantissa (the
         * zeros that end a spelled-out integer are not significant). */
        int digits = 0, pending = 0, started = 0;
        for (const char *p = buf; *p && *p != 'e'; p++) {
            if (*p < '0' || *p > '9')
                continue;
            started |= *p != '0';
            if (started && *p == '0') {
                pending++;
            } else if (started) {
                digits += pending + 1;
                pending = 0;
            }
        }
        if (digits > 1) {
            char fewer[400];
            snprintf(fewer, sizeof fewer, "%.*g", digits - 1, v);
            if (strtod(fewer, NULL) == v)
                fail_msg("%s is not the shortest: %s reads back too", buf, fewer);
        }
    }
}

/* A long name loses its middle, never the words around it; what fits is left whole. */
static void test_fit_keeps_the_words_around_a_long_name(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(at_text_fit(buf, sizeof buf, "open ", "a.bin", ": gone"),
                        "open a.bin: gone");
    /* 31 bytes of room: "open " + ": gone" + "..." leave 17 of the name, 9 from its start and
     * 8 from its end */
    at_text_fit(buf, sizeof buf, "open ", "abcdefghijklmnopqrstuvwxyz0123456789", ": gone");
    assert_string_equal(buf, "open abcdefghi...23456789: gone");
    assert_int_equal(strlen(buf), sizeof buf - 1);
    /* room for one byte of the name: its first, then the dots and the words */
    char small[16];
    at_text_fit(small, sizeof small, "open ", "abcdefghijklmnopqrstuvwxyz", ": gone");
    assert_string_equal(small, "open a...: gone");
    at_text_fit(small, sizeof small - 1, "open ", "abcdefghijklmnopqrstuvwxyz", ": gone");
    assert_string_equal(small, "open ...: gone");
    /* the words alone too long: cut at the end like snprintf, still terminated */
    char tiny[8];
    at_text_fit(tiny, sizeof tiny, "open ", "abc", ": gone away");
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_int_equal(strncmp(tiny, "open", 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_truncation_keeps_escapes_and_characters_whole),
        cmocka_unit_test(test_random_strings_round_trip),
        cmocka_unit_test(test_json_numbers_shortest_and_exact),
        cmocka_unit_test(test_fit_keeps_the_words_around_a_long_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
