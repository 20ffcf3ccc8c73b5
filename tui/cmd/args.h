/* SPDX-License-Identifier: Apache-2.0 */
/* args.h -- the one option parser of every alphatop command (docs/cli.md).
 *
 * A command describes its options as a table of at_arg_opt rows (long name, short letter,
 * kind, where the value goes, help text) and its operands in an at_args_spec; at_args_parse
 * parses argv from that table and at_args_help prints the --help text from the same table,
 * so the help cannot drift from the parser. Every command gets -h/--help without a row.
 *
 * Syntax (GNU style): options and operands in any order; "--name VALUE" or "--name=VALUE";
 * a long name may be shortened to any unique prefix; "-x VALUE" or "-xVALUE"; short flags
 * combine ("-ab"); "--" ends the options; "-" alone is an operand.
 */
#ifndef ALPHATOP_ARGS_H
#define ALPHATOP_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What an option takes, and what its value pointer points at. */
typedef enum at_arg_kind {
    AT_ARG_FLAG,   /* no value; int: set to 1 */
    AT_ARG_COUNT,  /* no value; int: incremented at every occurrence ("-vv") */
    AT_ARG_INT,    /* a whole number; int64_t */
    AT_ARG_DOUBLE, /* a finite number; double */
    AT_ARG_STRING, /* any text; const char * (pointing into argv), the last occurrence wins */
    AT_ARG_LIST    /* any text, repeatable; at_arg_list, every occurrence kept in order */
} at_arg_kind;

/* Where an AT_ARG_LIST option's values go; starts as {NULL, 0}. Whenever at_args_parse
 * returns AT_ARGS_RUN it has allocated items (pointers into argv), the option given or not:
 * caller owns items (free). */
typedef struct at_arg_list {
    const char **items;
    int n;
} at_arg_list;

/* Flags of an option row. */
enum {
    AT_ARG_ABOVE_MIN = 1u << 0,   /* INT, DOUBLE: the value must exceed min (not equal it) */
    AT_ARG_SHOW_DEFAULT = 1u << 1 /* help appends "(default V)", V the value before parsing */
};

/* One option. Rows are usually built in the command's function, so value can point at its
 * local settings; the table is only read. */
typedef struct at_arg_opt {
    const char *name; /* long name without the dashes, e.g. "min-evals" */
    char letter;      /* short letter, or 0 for none */
    at_arg_kind kind; /* whether it takes a value (INT, DOUBLE, STRING, LIST) and which */
    void *value;      /* where the value goes, of the type at_arg_kind says */
    const char *meta; /* the value's name in help and errors, e.g. "N"; NULL: "N", "X" or "TEXT" */
    const char *help; /* help text, wrapped to fit */
    double min, max;  /* INT, DOUBLE: accepted range; max 0: no upper bound. {0, 0}: >= 0 */
    unsigned flags;   /* AT_ARG_* flags */
} at_arg_opt;

/* A command's command line. */
typedef struct at_args_spec {
    const char *name;     /* the command, e.g. "scan" (messages, help) */
    const char *synopsis; /* the usage line after the command name, e.g. "[OPTIONS] FILE..." */
    const char *about;    /* text between the usage line and the options ('\n'-terminated) */
    const char *notes;    /* text after the options (output, errors), or NULL */
    const char *operands; /* the operands' names in errors, e.g. "FILE...", "A B"; NULL: none */
    int min_operands;     /* operands needed */
    int max_operands;     /* operands allowed; -1: any number */
    const at_arg_opt *opts;
    size_t nopts;
} at_args_spec;

/* The number of rows of an option table (an array, not a pointer). */
#define AT_ARGS_N(table) (sizeof(table) / sizeof((table)[0]))

/* What at_args_parse found. */
enum {
    AT_ARGS_RUN = 0,   /* run the command */
    AT_ARGS_HELP = 1,  /* -h/--help was given: nothing was stored */
    AT_ARGS_ERROR = -1 /* a usage error, described in why: nothing was stored */
};

/* Parses argv[1..argc) (argv[0] is the command name) against spec. On AT_ARGS_RUN every
 * option given has been stored through its row's value pointer, and the operands, in order,
 * have been moved to argv[1..1 + *noperands) (argv is permuted, the strings are not
 * copied). On AT_ARGS_ERROR, why (whylen bytes) holds what is wrong and how to fix it,
 * without the command's name, e.g. "--min-evals needs a whole number, got 'x'". Nothing is
 * stored unless the whole command line is valid. */
int at_args_parse(const at_args_spec *spec, int argc, char **argv, int *noperands, char *why,
                  size_t whylen);

/* Writes spec's --help text to out: usage line, about, the option list made from the table
 * (with -h/--help last), the notes, and the exit-status rule shared by every command. */
void at_args_help(FILE *out, const at_args_spec *spec);

/* What every command does with its command line: at_args_parse, then for --help the help on
 * stdout, for an error one line "alphatop CMD: WHY; see 'alphatop CMD --help'" on stderr.
 * Returns -1 to go on and run (operands as at_args_parse), else the exit code to return now
 * (AT_EXIT_OK after the help, AT_EXIT_USAGE after an error). */
int at_args_handle(const at_args_spec *spec, int argc, char **argv, int *noperands);

/* Reports a usage error the parser cannot see (options that exclude each other, a malformed
 * value): "alphatop CMD: MESSAGE; see 'alphatop CMD --help'" on stderr. Returns
 * AT_EXIT_USAGE. */
int at_args_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The name among n table rows (elements of stride bytes from base, each starting with a
 * const char *name) closest to word by edit distance, when close enough to be a likely typo
 * ("scna" -> "scan"); else NULL. Borrowed from the table. */
const char *at_args_nearest(const char *word, const void *base, size_t n, size_t stride);

/* The exit-status rule every --help ends with (docs/cli.md). */
extern const char at_args_exit_rule[];

#endif
