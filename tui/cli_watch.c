/* Placeholder until the command lands; replaced by its owner. */
#include <stdio.h>
#include "commands.h"
int cmd_watch(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("alphatop watch: not built yet\n", stderr);
    return AT_EXIT_USAGE;
}
int cmd_replay(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("alphatop replay: not built yet\n", stderr);
    return AT_EXIT_USAGE;
}
