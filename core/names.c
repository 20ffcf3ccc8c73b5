/* SPDX-License-Identifier: Apache-2.0 */
/* names.c -- the fixed labels of core's enums, as they appear in tables and JSON. */
#include "alphatop/band.h"
#include "alphatop/htsr.h"

at_warning at_warning_for(at_fit_status status, double alpha)
{
    if (status != AT_FIT_SUCCESS)
        return AT_WARN_FAILED;
    if (alpha < AT_ALPHA_BURNT_BELOW)
        return AT_WARN_OVER_TRAINED;
    if (alpha > AT_ALPHA_RAW_ABOVE)
        return AT_WARN_UNDER_TRAINED;
    return AT_WARN_NONE;
}

const char *at_warning_name(at_warning w)
{
    switch (w) {
    case AT_WARN_NONE:
        return "";
    case AT_WARN_OVER_TRAINED:
        return "over-trained";
    case AT_WARN_UNDER_TRAINED:
        return "under-trained";
    case AT_WARN_FAILED:
        return "failed";
    }
    return "";
}

const char *at_warning_reference_name(at_warning w)
{
    return w == AT_WARN_FAILED ? "over-trained" : at_warning_name(w);
}

const char *at_fit_status_name(at_fit_status s)
{
    switch (s) {
    case AT_FIT_SUCCESS:
        return "success";
    case AT_FIT_FAILED:
        return "failed";
    case AT_FIT_SKIPPED:
        return "skipped";
    }
    return "failed";
}

const char *at_mode_name(at_mode m)
{
    switch (m) {
    case AT_MODE_EXACT:
        return "exact";
    case AT_MODE_GRAM:
        return "gram";
    case AT_MODE_WARM:
        return "warm";
    case AT_MODE_SKIPPED:
        return "skipped";
    }
    return "exact";
}
