/* SPDX-License-Identifier: Apache-2.0 */
/* ckpt_args.c -- the checkpoint options scan and diff share (see ckpt_args.h). */
#include "ckpt_args.h"

#include "args.h"

int at_cmd_ckpt_args(const char *cmd, const char *shape, at_ckpt_opts *copts, char *const *files,
                     int n)
{
    if (shape && (copts->raw_ndim = at_ckpt_parse_shape(shape, copts->raw_shape)) < 0) {
        at_args_error(cmd, "--shape needs ROWSxCOLS (or OUTxINxKHxKW), e.g. 512x256, got '%s'",
                      shape);
        return -1;
    }
    for (int i = 0; i < n && !copts->raw_ndim; i++)
        if (at_ckpt_format_of(files[i]) == AT_CKPT_RAW) {
            at_args_error(cmd, "%s is read as raw float32: give --shape ROWSxCOLS", files[i]);
            return -1;
        }
    return 0;
}

int at_cmd_regex(const char *cmd, const char *text, regex_t *re)
{
    int rc = regcomp(re, text, REG_EXTENDED | REG_NOSUB);
    if (rc == 0)
        return 0;
    char buf[256];
    regerror(rc, re, buf, sizeof buf);
    at_args_error(cmd, "--layers '%s' is not a valid extended regex: %s", text, buf);
    return -1;
}
