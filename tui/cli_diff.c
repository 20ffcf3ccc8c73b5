/* Placeholder until the command lands; replaced by its owner. */
#include <stdio.h>
#include "commands.h"
int cmd_diff(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("alphatop diff: not built yet\n", stderr);
    return AT_EXIT_USAGE;
}
