/* SPDX-License-Identifier: Apache-2.0 */
/* plot_out.c -- the output directory of scan --plot and report --html. */
#include "plot_out.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "page.h"

int at_cmd_out_dir(const char *cmd, const char *opt, const char *dir)
{
    int rc = at_plot_dir(dir);
    if (rc == AT_OK)
        return 0;
    fprintf(stderr, "alphatop %s: %s %s: %s%s\n", cmd, opt, dir,
            rc == AT_ERR_ARG ? "not a directory" : "cannot create the directory: ",
            rc == AT_ERR_ARG ? "" : strerror(errno));
    return -1;
}

int at_cmd_save(const char *cmd, const char *dir, const char *name, const char *text)
{
    int rc = text ? at_plot_save(dir, name, text) : AT_ERR_NOMEM;
    if (rc == AT_OK)
        return 0;
    fprintf(stderr, "alphatop %s: %s/%s: cannot write: %s\n", cmd, dir, name,
            rc == AT_ERR_IO ? strerror(errno) : at_strerror(rc));
    return -1;
}
