/* SPDX-License-Identifier: Apache-2.0 */
/* main.c -- alphatop's entry point: dispatches to a command from one table (docs/cli.md). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"

/* Every command: its name, what runs it, and its line in 'alphatop --help'. */
typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"watch", cmd_watch,
     "live monitor: receive snapshots from a trainer and show the heatmap (default)"},
    {"scan", cmd_scan,
     "HTSR metrics of every layer in checkpoint files (.safetensors, .npy, .f32)"},
    {"diff", cmd_diff, "per-layer alpha change between two checkpoints"},
    {"replay", cmd_replay, "the live view of a run log, also while it grows (--follow)"},
    {"report", cmd_report, "summary of a recorded run log (or CSV)"},
    {"demo", cmd_demo, "a real training run streaming into the live view"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(void)
{
    printf("alphatop %s -- watch every layer of a neural network cook, live\n\n"
           "Usage: alphatop [COMMAND] [OPTIONS]\n\nCommands:\n",
           AT_VERSION);
    for (size_t i = 0; i < NCOMMANDS; i++)
        printf("  %-8s %s\n", commands[i].name, commands[i].summary);
    printf("\n'alphatop' with no command, or with options only, is 'alphatop watch'.\n\n"
           "Options:\n"
           "  -h, --help     this help; 'alphatop COMMAND --help' for a command's options\n"
           "  -V, --version  print the version\n\n"
           "Alpha, the fitted power-law exponent of a layer's eigenvalue spectrum: 2..6 is\n"
           "healthy (2 ideal); below 2 the layer is burnt (over-fit); above 6 it is raw\n"
           "(under-fit).\n\n%s",
           at_args_exit_rule);
}

int main(int argc, char **argv)
{
    const char *first = argc >= 2 ? argv[1] : "";
    if (!strcmp(first, "-h") || !strcmp(first, "--help") || !strcmp(first, "help")) {
        usage();
        return AT_EXIT_OK;
    }
    if (!strcmp(first, "-V") || !strcmp(first, "--version")) {
        printf("alphatop %s\n", AT_VERSION);
        return AT_EXIT_OK;
    }
    if (argc < 2 || first[0] == '-') {
        argv[0] = "watch"; /* the command's name in its messages */
        return cmd_watch(argc, argv);
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(first, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    const char *near = at_args_nearest(first, commands, NCOMMANDS, sizeof *commands);
    fprintf(stderr, "alphatop: unknown command '%s'", first);
    if (near)
        fprintf(stderr, " (did you mean '%s'?)", near);
    fputs("; see 'alphatop --help'\n", stderr);
    return AT_EXIT_USAGE;
}
