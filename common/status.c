/* SPDX-License-Identifier: Apache-2.0 */
#include "alphatop/status.h"

const char *at_strerror(int status)
{
    switch ((at_status)status) {
    case AT_OK:
        return "success";
    case AT_ERR_NOMEM:
        return "out of memory";
    case AT_ERR_ARG:
        return "invalid argument";
    case AT_ERR_IO:
        return "input/output error";
    case AT_ERR_FORMAT:
        return "malformed input";
    case AT_ERR_SIZE:
        return "size mismatch or limit exceeded";
    case AT_ERR_NONFINITE:
        return "non-finite value (NaN or Inf)";
    case AT_ERR_LAPACK:
        return "LAPACK routine failed";
    case AT_ERR_UNSUPPORTED:
        return "unsupported";
    case AT_ERR_EMPTY:
        return "nothing to analyse";
    case AT_ERR_VERSION:
        return "unsupported protocol version";
    case AT_ERR_MISSING:
        return "required field missing";
    case AT_ERR_AGAIN:
        return "try again";
    case AT_ERR_STATE:
        return "invalid state";
    case AT_ERR_NET:
        return "network error";
    case AT_ERR_AUTH:
        return "authentication failed";
    case AT_ERR_TIMEOUT:
        return "timed out";
    case AT_ERR_NOTFOUND:
        return "not found";
    }
    return "unknown status";
}
