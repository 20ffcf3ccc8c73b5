/* SPDX-License-Identifier: Apache-2.0 */
/* test_cli.c -- every command's exit codes (docs/cli.md) from the real binary: --help 0, a bad
 * option or value 2 with one line naming the fix, a missing or malformed input file 1; the
 * dispatcher's own errors; docs/cli.md names every option each --help lists; --insecure's text
 * names every transport it covers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "args.h"
#include "exitcode.h"
#include "testfiles.h"
#include "testutil.h"

static const char *const commands[] = {"scan", "diff", "watch", "replay", "report", "demo"};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

typedef struct run {
    int code;
    char *out, *err;
} run;

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
}

/* Runs `alphatop ARGS` (printf-style, shell-quoted). */
static run alphatop(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static run alphatop(const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    run r;
    r.code = tf_run(args, &r.out, &r.err);
    return r;
}

/* r failed with usage error exit 2, nothing on stdout, and exactly one stderr line: the
 * message starting with want, ending with the hint to the help of command (NULL: the
 * program's). */
static void assert_usage_error(run *r, const char *command, const char *want)
{
    char hint[128];
    if (command)
        snprintf(hint, sizeof hint, "; see 'alphatop %s --help'\n", command);
    else
        snprintf(hint, sizeof hint, "; see 'alphatop --help'\n");
    if (r->code != AT_EXIT_USAGE || *r->out || strncmp(r->err, want, strlen(want)) ||
        strchr(r->err, '\n') != r->err + strlen(r->err) - 1 ||
        strcmp(r->err + strlen(r->err) - strlen(hint), hint))
        fail_msg("exit %d, want 2 and one line '%s...%s'; stderr:\n%s", r->code, want, hint,
                 r->err);
}

static void test_help(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const char *c = commands[i];
        char usage[64];
        snprintf(usage, sizeof usage, "Usage: alphatop %s ", c);
        for (int form = 0; form < 2; form++) {
            run r = alphatop("%s %s", c, form ? "-h" : "--help");
            if (r.code != AT_EXIT_OK || strncmp(r.out, usage, strlen(usage)) || *r.err)
                fail_msg("'%s --help' exited %d; stdout:\n%s\nstderr:\n%s", c, r.code, r.out,
                         r.err);
            /* Every command's help ends with the one exit-status rule. */
            const size_t n = strlen(r.out), k = strlen(at_args_exit_rule);
            assert_true(n > k);
            assert_string_equal(r.out + n - k, at_args_exit_rule);
            run_free(&r);
        }
    }
    run r = alphatop("--help");
    assert_int_equal(r.code, AT_EXIT_OK);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char line[32];
        snprintf(line, sizeof line, "\n  %-8s ", commands[i]);
        assert_non_null(strstr(r.out, line));
    }
    assert_non_null(strstr(r.out, at_args_exit_rule));
    run_free(&r);
    r = alphatop("--version");
    assert_int_equal(r.code, AT_EXIT_OK);
    assert_string_equal(r.out, "alphatop " AT_VERSION "\n");
    run_free(&r);
}

static void test_bad_options(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char want[128];
        snprintf(want, sizeof want, "alphatop %s: unknown option '--bogus'", commands[i]);
        run r = alphatop("%s --bogus x", commands[i]);
        assert_usage_error(&r, commands[i], want);
        run_free(&r);
    }
    static const struct {
        const char *command, *args, *want;
    } bad[] = {
        {"scan", "--min-evals x a.npy", "alphatop scan: --min-evals needs a whole number, got 'x'"},
        {"scan", "--lora-scale=0 a.npy", "alphatop scan: --lora-scale needs a number > 0"},
        {"scan", "--json --csv a.npy", "alphatop scan: --json and --csv exclude each other"},
        {"scan", "", "alphatop scan: missing argument: needs FILE..."},
        {"diff", "--max-evals", "alphatop diff: --max-evals needs a value: --max-evals N"},
        {"diff", "a.npy", "alphatop diff: missing argument: needs A B"},
        {"diff", "--layers '(' a.npy b.npy", "alphatop diff: --layers '(' is not a valid"},
        {"watch", "--threads 0", "alphatop watch: --threads needs a whole number from 1 to 256"},
        {"watch", "--stop-timeout=soon", "alphatop watch: --stop-timeout needs a number"},
        {"watch", "extra", "alphatop watch: unexpected argument 'extra'"},
        {"replay", "", "alphatop replay: missing argument: needs LOG"},
        {"replay", "a.atlog b.atlog", "alphatop replay: unexpected argument 'b.atlog'"},
        {"report", "--csv=yes a.atlog", "alphatop report: --csv takes no value"},
        {"demo", "--every 0", "alphatop demo: --every needs a whole number >= 1, got '0'"},
        {"demo", "--trainer rust", "alphatop demo: --trainer is torch or c, got 'rust'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run r = alphatop("%s %s", bad[i].command, bad[i].args);
        assert_usage_error(&r, bad[i].command, bad[i].want);
        run_free(&r);
    }
    /* A file that exists in no format the readers recognise is raw float32, which needs a
     * shape (a missing file is an unreadable input instead: test_unreadable_inputs). */
    const char *raw = AT_DATA_DIR "/oracle/matrices/gauss_512x256.f32";
    char want[512];
    snprintf(want, sizeof want, "alphatop scan: %s is read as raw float32: give --shape", raw);
    run r = alphatop("scan '%s'", raw);
    assert_usage_error(&r, "scan", want);
    run_free(&r);
}

/* The dispatcher: an option with no command is watch's; an unknown command is one line with a
 * suggestion, not a page of help. */
static void test_dispatch(void **state)
{
    (void)state;
    run r = alphatop("--bogus");
    assert_usage_error(&r, "watch", "alphatop watch: unknown option '--bogus'");
    run_free(&r);
    r = alphatop("scna x.npy");
    assert_usage_error(&r, NULL, "alphatop: unknown command 'scna' (did you mean 'scan'?)");
    run_free(&r);
    r = alphatop("frobnicate");
    assert_usage_error(&r, NULL, "alphatop: unknown command 'frobnicate'");
    assert_null(strstr(r.err, "did you mean"));
    run_free(&r);
}

/* A missing or malformed input file is an input that could not be analysed: exit 1 from every
 * command that reads files, with a line naming the file. */
static void test_unreadable_inputs(void **state)
{
    (void)state;
    char missing[512], npy[512], log[512], nolog[512];
    snprintf(missing, sizeof missing, "%s", tf_path("missing.npy"));
    snprintf(nolog, sizeof nolog, "%s", tf_path("missing.atlog"));
    snprintf(npy, sizeof npy, "%s", tf_path("junk.npy"));
    tf_write_bytes(npy, "not an npy file", 15);
    snprintf(log, sizeof log, "%s", tf_path("junk.atlog"));
    tf_write_bytes(log, "not a run log\n", 14);
    const struct {
        const char *command, *file, *other;
    } cases[] = {
        {"scan", missing, ""},          {"scan --json", npy, ""}, {"diff", missing, npy},
        {"diff", npy, missing},         {"replay", nolog, ""},    {"replay --headless", nolog, ""},
        {"replay --headless", log, ""}, {"report", nolog, ""},    {"report --csv", log, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run r = alphatop("%s %s %s", cases[i].command, cases[i].file, cases[i].other);
        if (r.code != AT_EXIT_PARTIAL || !strstr(r.err, cases[i].file))
            fail_msg("'%s %s %s' exited %d, want 1 and the file named; stderr:\n%s",
                     cases[i].command, cases[i].file, cases[i].other, r.code, r.err);
        run_free(&r);
    }
}

/* docs/cli.md is the specification: it must name every option the commands accept. The
 * options are read from each command's --help, which the parser's own table prints. */
static void test_docs_name_every_option(void **state)
{
    (void)state;
    char *doc = at_test_slurp(AT_SOURCE_DIR "/docs/cli.md", NULL);
    assert_non_null(doc);
    int checked = 0;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        run r = alphatop("%s --help", commands[i]);
        char section[64];
        snprintf(section, sizeof section, "alphatop %s", commands[i]);
        if (!strstr(doc, section))
            fail_msg("docs/cli.md never mentions '%s'", section);
        char *save = NULL;
        for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            /* An option row: "  --name ..." or "  -x, --name ...". */
            const char *opt = strstr(line, "--");
            if (strncmp(line, "  -", 3) || !opt || opt - line > 6)
                continue;
            char name[64];
            snprintf(name, sizeof name, "`%.*s", (int)strcspn(opt, " "), opt);
            if (!strstr(doc, name))
                fail_msg("docs/cli.md lacks %s` (alphatop %s --help lists it)", name, commands[i]);
            checked++;
        }
        run_free(&r);
    }
    assert_true(checked >= 40);
    free(doc);
}

/* The text from the row of option name (e.g. "--insecure") to the next option row or table
 * row, in a --help (rows start "  -") or in docs/cli.md (rows start "| `-"). Caller frees. */
static char *option_text(const char *text, const char *name, const char *row)
{
    const char *at = strstr(text, name);
    assert_non_null(at);
    const char *end = strstr(at + strlen(name), row);
    size_t n = end ? (size_t)(end - at) : strlen(at);
    char *t = malloc(n + 1);
    assert_non_null(t);
    memcpy(t, at, n);
    t[n] = '\0';
    return t;
}

/* --insecure applies to every transport that may be reachable from another machine, not only
 * tcp: the help (and the man page made from it) and docs/cli.md say so. */
static void test_insecure_names_every_transport(void **state)
{
    (void)state;
    static const char *const transports[] = {"tcp", "ws", "wss", "pgm", "epgm", "vmci", "tipc"};
    run r = alphatop("watch --help");
    char *doc = at_test_slurp(AT_SOURCE_DIR "/docs/cli.md", NULL);
    assert_non_null(doc);
    char *texts[2] = {option_text(r.out, "  --insecure", "\n  -"),
                      option_text(doc, "| `--insecure`", "\n|")};
    for (int k = 0; k < 2; k++) {
        if (strstr(texts[k], "plain tcp"))
            fail_msg("--insecure is not only about tcp: %s", texts[k]);
        for (size_t i = 0; i < sizeof transports / sizeof transports[0]; i++) {
            char word[16];
            snprintf(word, sizeof word, " %s", transports[i]);
            if (!strstr(texts[k], word))
                fail_msg("--insecure text lacks %s: %s", transports[i], texts[k]);
        }
        free(texts[k]);
    }
    free(doc);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_unreadable_inputs),
        cmocka_unit_test(test_docs_name_every_option),
        cmocka_unit_test(test_insecure_names_every_transport),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return failed;
}
