/* SPDX-License-Identifier: Apache-2.0 */
/* palette.c -- alpha's colour scale for the SVG and HTML reports. */
#include "palette.h"

#include <math.h>
#include <stdio.h>

#include "alphatop/band.h"

typedef struct stop {
    double alpha;
    unsigned rgb;
} stop;

/* Each side's stops, alpha ascending; outside them the end colour holds. */
static const stop burnt[] = {{1.0, 0x8f2700}, {1.5, 0xd55e00}, {AT_ALPHA_BURNT_BELOW, 0xe69f00}};
static const stop healthy[] = {{AT_ALPHA_BURNT_BELOW, 0xd9d9d9}, {AT_ALPHA_RAW_ABOVE, 0x8c8c8c}};
static const stop raw[] = {{AT_ALPHA_RAW_ABOVE, 0x56b4e9}, {9.0, 0x0072b2}, {12.0, 0x08306b}};

static unsigned mix(unsigned a, unsigned b, double t)
{
    unsigned out = 0;
    for (int sh = 16; sh >= 0; sh -= 8) {
        double ca = (a >> sh) & 0xff, cb = (b >> sh) & 0xff;
        out |= (unsigned)lround(ca + (cb - ca) * t) << sh;
    }
    return out;
}

static unsigned along(const stop *s, int n, double alpha)
{
    if (alpha <= s[0].alpha)
        return s[0].rgb;
    for (int i = 1; i < n; i++)
        if (alpha <= s[i].alpha)
            return mix(s[i - 1].rgb, s[i].rgb,
                       (alpha - s[i - 1].alpha) / (s[i].alpha - s[i - 1].alpha));
    return s[n - 1].rgb;
}

#define N(a) (int)(sizeof(a) / sizeof((a)[0]))

static unsigned rgb_of(double alpha)
{
    if (alpha < AT_ALPHA_BURNT_BELOW)
        return along(burnt, N(burnt), alpha);
    if (alpha <= AT_ALPHA_RAW_ABOVE)
        return along(healthy, N(healthy), alpha);
    return along(raw, N(raw), alpha);
}

const char *at_plot_alpha_color(double alpha, char buf[8])
{
    if (isnan(alpha))
        snprintf(buf, 8, "%s", AT_PLOT_MISSING);
    else
        snprintf(buf, 8, "#%06x", rgb_of(alpha) & 0xffffffu);
    return buf;
}

const char *at_plot_alpha_ink(double alpha)
{
    if (isnan(alpha))
        return "#000000";
    unsigned c = rgb_of(alpha);
    /* WCAG relative luminance of the sRGB colour */
    double lum = 0;
    static const double w[3] = {0.2126, 0.7152, 0.0722};
    for (int i = 0; i < 3; i++) {
        double v = ((c >> (16 - 8 * i)) & 0xff) / 255.0;
        lum += w[i] * (v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4));
    }
    /* the ink with the higher contrast ratio against the colour */
    return (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) ? "#000000" : "#ffffff";
}

const char *at_plot_band_name(double alpha)
{
    return isnan(alpha)                   ? "no fit"
           : alpha < AT_ALPHA_BURNT_BELOW ? "burnt"
           : alpha <= AT_ALPHA_RAW_ABOVE  ? "healthy"
                                          : "raw";
}
