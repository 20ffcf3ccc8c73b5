/* SPDX-License-Identifier: Apache-2.0 */
/* text.h -- untrusted text made safe to print, and numbers printed exactly.
 *
 * Names and strings that come from a peer (a trainer's run id, layer names, tags) or from a
 * file (a checkpoint's tensor names) may hold terminal escape sequences, line breaks, bidi
 * overrides or bytes that are not UTF-8. Every human-readable printer passes them through
 * at_text_escape (or at_text_show); every JSON printer through at_text_json_string (or
 * at_text_json_quote). Numbers in JSON go through at_text_json_number.
 *
 * What is escaped, in both forms:
 *   - C0 controls U+0000..U+001F and DEL U+007F;
 *   - C1 controls U+0080..U+009F (encoded C2 80..C2 9F; CSI U+009B is one);
 *   - characters that reorder or break lines: U+061C, U+200E, U+200F, U+2028, U+2029,
 *     U+202A..U+202E, U+2066..U+2069;
 *   - every byte that is not part of a valid, shortest-form UTF-8 character (a lone 0x9b, a
 *     truncated sequence, an encoded surrogate, anything above U+10FFFF).
 * Everything else, including valid non-ASCII UTF-8, is copied as it is.
 *
 * Output contract of the writers (at_text_escape, at_text_json_string): like snprintf, they
 * write at most cap - 1 bytes and a NUL (nothing when cap is 0), never cut an escape or a
 * character in half, and return the length the whole result needs; it was complete iff the
 * return value is < cap. NUL bytes inside src (n counts them) are escaped like any C0 control.
 *
 * No allocation except at_text_json_quote; reentrant; thread-safe.
 */
#ifndef ALPHATOP_TEXT_H
#define ALPHATOP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Room that always suffices for n input bytes: escaped for people (at most 4 bytes out per byte
 * in, "\x1b"), or as a JSON string literal (at most 6 per byte, "\ufffd", plus the quotes). */
#define AT_TEXT_ESCAPE_CAP(n) (4 * (size_t)(n) + 1)
#define AT_TEXT_JSON_CAP(n) (6 * (size_t)(n) + 3)
/* Room for any at_text_json_number result ("-2.2250738585072014e-308" and a NUL). */
#define AT_TEXT_NUMBER_CAP 32

/* For people (a terminal, a log line, a table cell): src's n bytes with every character listed
 * above written as an escape -- C0 and DEL as "\xNN" (ESC -> "\x1b"), the others as "\uNNNN"
 * ("\u009b"), invalid bytes as "\xNN" each -- and a backslash as "\\", so the result is
 * unambiguous, one line, and cannot move the cursor or recolour the screen. */
size_t at_text_escape(char *dst, size_t cap, const char *src, size_t n);

/* at_text_escape of the NUL-terminated s (NULL prints as ""), for printf arguments: returns dst.
 * A result that does not fit ends early, never in the middle of an escape. */
const char *at_text_show(char *dst, size_t cap, const char *s);

/* For JSON: src's n bytes as one complete JSON string literal, quotes included, that is valid
 * UTF-8 whatever src holds: '"' and '\' escaped, C0 as \b \f \n \r \t or \u00NN, the other
 * characters listed above as \uNNNN, and each invalid byte replaced by \ufffd (U+FFFD, the
 * replacement character; U+FFFD itself is written \ufffd as well, so a string read back from
 * this output is written again as the same bytes). */
size_t at_text_json_string(char *dst, size_t cap, const char *src, size_t n);

/* at_text_json_string of the NUL-terminated s (NULL gives ""), in a fresh buffer: for
 * cJSON_AddRawToObject and the like. Caller owns return value (free); NULL if out of memory. */
char *at_text_json_quote(const char *s);

/* v as a JSON number: the shortest decimal text that strtod reads back as exactly v ("0.1",
 * "9007199254740991", "1.7976931348623157e+308", "5e-324"), with '.' as decimal point whatever
 * the locale; "null" for NaN and the infinities, which JSON cannot hold. Writes into buf (cap
 * bytes, AT_TEXT_NUMBER_CAP always suffices; a smaller buffer gets "" when the text does not
 * fit) and returns buf. */
const char *at_text_json_number(char *buf, size_t cap, double v);

/* before, s and after joined into dst (cap bytes), for a message that names something long: when
 * the whole does not fit, s loses its middle (replaced by "...") so that its start, its end and
 * the words around it stay (what is wrong comes after the name). Returns dst. */
const char *at_text_fit(char *dst, size_t cap, const char *before, const char *s,
                        const char *after);

/* Decodes one UTF-8 character from s (n >= 1 bytes available): sets *cp and returns its length
 * (1..4), or returns 0 when the bytes at s are not a valid, shortest-form encoding of a Unicode
 * scalar value (then s[0] is an invalid byte). */
size_t at_text_utf8_next(const char *s, size_t n, uint32_t *cp);

/* 1 for a control character (C0 U+0000..U+001F, DEL U+007F, C1 U+0080..U+009F), else 0. */
int at_text_is_control(uint32_t cp);

#ifdef __cplusplus
}
#endif
#endif
