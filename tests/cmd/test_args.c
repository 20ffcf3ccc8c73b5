/* SPDX-License-Identifier: Apache-2.0 */
/* test_args.c -- the commands' option parser (tui/cmd/args.c): every kind, both value forms,
 * short flags alone and combined, operands in any place, every usage error's message, --help,
 * and the help text generated from the same table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "args.h"

/* The settings one test table writes, with their defaults. */
typedef struct settings {
    int flag, verbose;
    int64_t n, threads;
    double x;
    const char *s;
    const char *record;
    int record_weights;
    at_arg_list list;
} settings;

static void defaults(settings *st)
{
    memset(st, 0, sizeof *st);
    st->n = 7;
    st->threads = 1;
    st->x = 1.5;
}

/* Parses args (a NULL-terminated list after the command name) with a table of every kind.
 * The argv built is kept in *argv for the operands. Returns at_args_parse's result. */
static int parse(settings *st, char **argv, const char *const *args, int *nops, char *why,
                 size_t whylen)
{
    const at_arg_opt opts[] = {
        {.name = "flag", .letter = 'f', .kind = AT_ARG_FLAG, .value = &st->flag, .help = "a flag"},
        {.name = "verbose",
         .letter = 'v',
         .kind = AT_ARG_COUNT,
         .value = &st->verbose,
         .help = "more output"},
        {.name = "n",
         .letter = 'n',
         .kind = AT_ARG_INT,
         .value = &st->n,
         .help = "a count",
         .flags = AT_ARG_SHOW_DEFAULT},
        {.name = "threads",
         .kind = AT_ARG_INT,
         .value = &st->threads,
         .help = "threads",
         .min = 1,
         .max = 256},
        {.name = "x",
         .kind = AT_ARG_DOUBLE,
         .value = &st->x,
         .help = "a scale",
         .flags = AT_ARG_ABOVE_MIN | AT_ARG_SHOW_DEFAULT},
        {.name = "s", .kind = AT_ARG_STRING, .value = &st->s, .meta = "NAME", .help = "a name"},
        {.name = "record", .kind = AT_ARG_STRING, .value = &st->record, .help = "a log"},
        {.name = "record-weights",
         .kind = AT_ARG_FLAG,
         .value = &st->record_weights,
         .help = "weights too"},
        {.name = "list", .kind = AT_ARG_LIST, .value = &st->list, .help = "an item"},
    };
    const at_args_spec spec = {"test", "[OPTIONS] A [B]", "About.\n", NULL, "A [B]", 1, 2,
                               opts,   AT_ARGS_N(opts)};
    int argc = 0;
    argv[argc++] = "test";
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    return at_args_parse(&spec, argc, argv, nops, why, whylen);
}

/* Parses args expecting success, into *st (its list freed first: start with {0}). */
static void parse_ok(settings *st, char **argv, const char *const *args, int want_ops)
{
    char why[256] = "";
    int nops = -1;
    free(st->list.items);
    defaults(st);
    int rc = parse(st, argv, args, &nops, why, sizeof why);
    if (rc != AT_ARGS_RUN)
        fail_msg("parse failed (%d): %s", rc, why);
    assert_int_equal(nops, want_ops);
}

/* Parses args expecting a usage error with exactly message want, and nothing stored. */
static void parse_err(const char *const *args, const char *want)
{
    settings st, fresh;
    char *argv[32], why[256] = "";
    int nops = -1;
    defaults(&st);
    defaults(&fresh);
    assert_int_equal(parse(&st, argv, args, &nops, why, sizeof why), AT_ARGS_ERROR);
    assert_string_equal(why, want);
    assert_int_equal(nops, -1);
    assert_memory_equal(&st, &fresh, sizeof st);
}

static void test_every_kind(void **state)
{
    (void)state;
    settings st = {0};
    char *argv[32];
    const char *args[] = {"a",       "--flag",    "--verbose", "-v",     "--n", "42",
                          "--x=2.5", "--s",       "hi",        "--list", "one", "--list=two",
                          "b",       "--threads", "256",       NULL};
    parse_ok(&st, argv, args, 2);
    assert_int_equal(st.flag, 1);
    assert_int_equal(st.verbose, 2);
    assert_int_equal(st.n, 42);
    assert_int_equal(st.threads, 256);
    assert_true(st.x == 2.5);
    assert_string_equal(st.s, "hi");
    assert_int_equal(st.list.n, 2);
    assert_string_equal(st.list.items[0], "one");
    assert_string_equal(st.list.items[1], "two");
    /* Operands, in order, moved to the front; options between them are gone. */
    assert_string_equal(argv[1], "a");
    assert_string_equal(argv[2], "b");
    free(st.list.items);
}

static void test_value_forms(void **state)
{
    (void)state;
    settings st = {0};
    char *argv[32];
    /* --opt=value, --opt value, -xVALUE, -x VALUE: the same value; the last one wins. */
    const char *forms[][4] = {
        {"--n=3", "a", NULL}, {"--n", "3", "a", NULL}, {"-n3", "a", NULL}, {"-n", "3", "a", NULL}};
    for (size_t i = 0; i < 4; i++) {
        parse_ok(&st, argv, forms[i], 1);
        assert_int_equal(st.n, 3);
        assert_string_equal(argv[1], "a");
    }
    const char *twice[] = {"--s", "first", "a", "--s=second", NULL};
    parse_ok(&st, argv, twice, 1);
    assert_string_equal(st.s, "second");
    /* An empty value is a value; '=' inside a value is kept. */
    const char *eq[] = {"--s=", "a", "--record=k=v", NULL};
    parse_ok(&st, argv, eq, 1);
    assert_non_null(st.list.items);
    assert_int_equal(st.list.n, 0);
    assert_string_equal(st.s, "");
    assert_string_equal(st.record, "k=v");
    /* A value may start with '-' (as getopt's required arguments). */
    const char *dash[] = {"--s", "--flag", "a", NULL};
    parse_ok(&st, argv, dash, 1);
    assert_string_equal(st.s, "--flag");
    assert_int_equal(st.flag, 0);
    free(st.list.items);
}

static void test_short_flags(void **state)
{
    (void)state;
    settings st = {0};
    char *argv[32];
    const char *combined[] = {"-fvv", "a", "-vn12", NULL};
    parse_ok(&st, argv, combined, 1);
    assert_int_equal(st.flag, 1);
    assert_int_equal(st.verbose, 3);
    assert_int_equal(st.n, 12);
    const char *last[] = {"-fn", "5", "a", NULL};
    parse_ok(&st, argv, last, 1);
    assert_int_equal(st.flag, 1);
    assert_int_equal(st.n, 5);
    free(st.list.items);
}

static void test_prefixes_and_operands(void **state)
{
    (void)state;
    settings st = {0};
    char *argv[32];
    /* A unique prefix names its option; an exact name wins over longer names it prefixes. */
    const char *pre[] = {"--fl", "--verb", "--record", "r.log", "a", NULL};
    parse_ok(&st, argv, pre, 1);
    assert_int_equal(st.flag, 1);
    assert_int_equal(st.verbose, 1);
    assert_string_equal(st.record, "r.log");
    assert_int_equal(st.record_weights, 0);
    const char *longer[] = {"--record-w", "a", NULL};
    parse_ok(&st, argv, longer, 1);
    assert_int_equal(st.record_weights, 1);
    /* "--" ends the options; "-" alone is an operand. */
    const char *end[] = {"-", "--", "--flag", NULL};
    parse_ok(&st, argv, end, 2);
    assert_string_equal(argv[1], "-");
    assert_string_equal(argv[2], "--flag");
    assert_int_equal(st.flag, 0);
    free(st.list.items);
}

static void test_errors(void **state)
{
    (void)state;
    const char *missing[] = {"a", "--n", NULL};
    parse_err(missing, "--n needs a value: --n N");
    const char *missing_short[] = {"a", "-fn", NULL};
    parse_err(missing_short, "-n needs a value: -n N");
    const char *bad_int[] = {"--n", "x", "a", NULL};
    parse_err(bad_int, "--n needs a whole number, got 'x'");
    const char *bad_int2[] = {"--n=1.5", "a", NULL};
    parse_err(bad_int2, "--n needs a whole number, got '1.5'");
    const char *negative[] = {"--n=-1", "a", NULL};
    parse_err(negative, "--n needs a whole number >= 0, got '-1'");
    const char *huge[] = {"--n", "99999999999999999999", "a", NULL};
    parse_err(huge, "--n needs a whole number, got '99999999999999999999'");
    const char *low[] = {"--threads", "0", "a", NULL};
    parse_err(low, "--threads needs a whole number from 1 to 256, got '0'");
    const char *high[] = {"--threads", "257", "a", NULL};
    parse_err(high, "--threads needs a whole number from 1 to 256, got '257'");
    const char *bad_double[] = {"--x", "2,5", "a", NULL};
    parse_err(bad_double, "--x needs a number, got '2,5'");
    const char *inf[] = {"--x", "inf", "a", NULL};
    parse_err(inf, "--x needs a number, got 'inf'");
    const char *zero[] = {"--x", "0", "a", NULL};
    parse_err(zero, "--x needs a number > 0, got '0'");
    const char *unknown[] = {"a", "--bogus", NULL};
    parse_err(unknown, "unknown option '--bogus'");
    const char *typo[] = {"a", "--falg", NULL};
    parse_err(typo, "unknown option '--falg' (did you mean '--flag'?)");
    const char *typo_help[] = {"a", "--hlep", NULL};
    parse_err(typo_help, "unknown option '--hlep' (did you mean '--help'?)");
    const char *short_unknown[] = {"a", "-fz", NULL};
    parse_err(short_unknown, "unknown option '-z'");
    const char *ambiguous[] = {"a", "--rec", NULL};
    parse_err(ambiguous, "'--rec' is ambiguous: --record, --record-weights");
    const char *flag_value[] = {"a", "--flag=1", NULL};
    parse_err(flag_value, "--flag takes no value, got '--flag=1'");
    const char *none[] = {"--flag", NULL};
    parse_err(none, "missing argument: needs A [B]");
    const char *extra[] = {"a", "b", "--flag", "c", NULL};
    parse_err(extra, "unexpected argument 'c' (needs only A [B])");
    /* The first error found is the one reported, and nothing is stored. */
    const char *first[] = {"--n", "5", "--list", "x", "--bogus", "a", NULL};
    parse_err(first, "unknown option '--bogus'");
}

static void test_help_stores_nothing(void **state)
{
    (void)state;
    const char *const helps[][4] = {
        {"--n", "5", "--help", NULL}, {"-fh", NULL}, {"--he", "--bogus", NULL}, {"-h", NULL}};
    for (size_t i = 0; i < 4; i++) {
        settings st;
        char *argv[32], why[256];
        int nops = -1;
        defaults(&st);
        assert_int_equal(parse(&st, argv, helps[i], &nops, why, sizeof why), AT_ARGS_HELP);
        assert_int_equal(st.n, 7);
        assert_int_equal(st.flag, 0);
    }
}

/* The help text comes from the table: every option once, values named, defaults shown as
 * they are before parsing, lines within 92 columns, the shared exit-status rule last. */
static void test_help_text(void **state)
{
    (void)state;
    int64_t n = 10;
    double scale = 0.25;
    int flag = 0;
    const char *name = NULL;
    at_arg_list list = {NULL, 0};
    const at_arg_opt opts[] = {
        {.name = "json", .kind = AT_ARG_FLAG, .value = &flag, .help = "JSON lines"},
        {.name = "min-evals",
         .letter = 'm',
         .kind = AT_ARG_INT,
         .value = &n,
         .help = "skip layers with fewer eigenvalues",
         .flags = AT_ARG_SHOW_DEFAULT},
        {.name = "lora-scale",
         .kind = AT_ARG_DOUBLE,
         .value = &scale,
         .meta = "S",
         .help = "scaling",
         .flags = AT_ARG_SHOW_DEFAULT},
        {.name = "a-very-long-option-name",
         .kind = AT_ARG_STRING,
         .value = &name,
         .help = "one two three four five six seven eight nine ten eleven twelve thirteen "
                 "fourteen fifteen sixteen seventeen"},
        {.name = "stop-on", .kind = AT_ARG_LIST, .value = &list, .meta = "RULE", .help = "rule"},
    };
    const at_args_spec spec = {
        "demo", "[OPTIONS] FILE...", "What it does.\n", "After.\n", "FILE...", 1, -1,
        opts,   AT_ARGS_N(opts)};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    at_args_help(f, &spec);
    fclose(f);
    const char *want =
        "Usage: alphatop demo [OPTIONS] FILE...\n"
        "\n"
        "What it does.\n"
        "\n"
        "Options:\n"
        "  --json              JSON lines\n"
        "  -m, --min-evals N   skip layers with fewer eigenvalues (default 10)\n"
        "  --lora-scale S      scaling (default 0.25)\n"
        "  --a-very-long-option-name TEXT\n"
        "                      one two three four five six seven eight nine ten eleven twelve\n"
        "                      thirteen fourteen fifteen sixteen seventeen\n"
        "  --stop-on RULE      rule (repeatable)\n"
        "  -h, --help          this help\n"
        "\n"
        "After.\n"
        "\n";
    assert_true(len > strlen(want));
    assert_memory_equal(text, want, strlen(want));
    assert_string_equal(text + strlen(want), at_args_exit_rule);
    for (const char *line = text; *line; line += strcspn(line, "\n") + 1)
        assert_true(strcspn(line, "\n") <= 92);
    free(text);
}

static void test_nearest(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int other;
    } cmds[] = {{"watch", 0}, {"scan", 1}, {"diff", 2}, {"replay", 3}, {"report", 4}};
    const size_t n = sizeof cmds / sizeof cmds[0];
    assert_string_equal(at_args_nearest("scna", cmds, n, sizeof cmds[0]), "scan");
    assert_string_equal(at_args_nearest("wach", cmds, n, sizeof cmds[0]), "watch");
    assert_string_equal(at_args_nearest("reprot", cmds, n, sizeof cmds[0]), "report");
    assert_string_equal(at_args_nearest("replya", cmds, n, sizeof cmds[0]), "replay");
    assert_null(at_args_nearest("bogus", cmds, n, sizeof cmds[0]));
    assert_null(at_args_nearest("x", cmds, n, sizeof cmds[0]));
    assert_null(at_args_nearest("", cmds, n, sizeof cmds[0]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind),  cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_short_flags), cmocka_unit_test(test_prefixes_and_operands),
        cmocka_unit_test(test_errors),      cmocka_unit_test(test_help_stores_nothing),
        cmocka_unit_test(test_help_text),   cmocka_unit_test(test_nearest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
