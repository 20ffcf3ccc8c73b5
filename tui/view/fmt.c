/* SPDX-License-Identifier: Apache-2.0 */
/* fmt.c -- compact numbers for the screen. */
#include "fmt.h"

#include <math.h>
#include <stdio.h>

void at_render_step(int64_t step, char *buf)
{
    if (step < 10000)
        snprintf(buf, 16, "%d", (int)(step < -9999 ? -9999 : step));
    else if (step < 1000000)
        snprintf(buf, 16, "%.4gk", (double)step / 1e3);
    else
        snprintf(buf, 16, "%.4gM", (double)step / 1e6);
}

void at_render_value(double v, char *buf)
{
    double a = fabs(v);
    if (isnan(v))
        snprintf(buf, 16, "-");
    else if (a != 0 && (a < 0.01 || a >= 1e5))
        snprintf(buf, 16, "%.0e", v);
    else if (a >= 100)
        snprintf(buf, 16, "%.0f", v);
    else
        snprintf(buf, 16, "%.2f", v);
}
