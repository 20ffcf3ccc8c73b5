/* main.c -- alphatop's entry point: dispatches to a subcommand (spec/cli.md). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const char usage[] =
    "alphatop " AT_VERSION " -- watch every layer of a neural network cook, live\n"
    "\n"
    "Usage: alphatop [COMMAND] [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  watch    live monitor: receive snapshots from a trainer and show the heatmap (default)\n"
    "  scan     HTSR metrics of every layer in checkpoint files (.safetensors, .npy, .f32)\n"
    "  diff     per-layer alpha change between two checkpoints\n"
    "  replay   the live view, from a recorded run log\n"
    "  report   summary of a recorded run log (or CSV)\n"
    "  demo     a real training run streaming into the live view\n"
    "\n"
    "Options:\n"
    "  -h, --help     this help; 'alphatop COMMAND --help' for a command's options\n"
    "  -V, --version  print the version\n"
    "\n"
    "Alpha, the fitted power-law exponent of a layer's eigenvalue spectrum: 2..6 is healthy\n"
    "(2 ideal); below 2 the layer is burnt (over-fit); above 6 it is raw (under-fit).\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"watch", cmd_watch},   {"scan", cmd_scan},     {"diff", cmd_diff},
                {"replay", cmd_replay}, {"report", cmd_report}, {"demo", cmd_demo}};

    if (argc >= 2 &&
        (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
        fputs(usage, stdout);
        return AT_EXIT_OK;
    }
    if (argc >= 2 && (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version"))) {
        printf("alphatop %s\n", AT_VERSION);
        return AT_EXIT_OK;
    }
    if (argc < 2 || argv[1][0] == '-')
        return cmd_watch(argc, argv); /* no command: watch, with argv[0] as its name */
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "alphatop: unknown command '%s'\n\n%s", argv[1], usage);
    return AT_EXIT_USAGE;
}
