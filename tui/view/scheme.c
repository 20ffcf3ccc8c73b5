/* SPDX-License-Identifier: Apache-2.0 */
/* scheme.c -- colour roles and heat scales for 256 colours, 8 colours and monochrome. */
#include "scheme.h"

#include <math.h>

#include "alphatop/band.h"

/* xterm 256-colour cube entry for r, g, b in 0..5. */
#define CUBE(r, g, b) (int16_t)(16 + 36 * (r) + 6 * (g) + (b))
#define D AT_COLOR_DEFAULT

/* Alpha levels: 5 burnt, 8 healthy, 5 raw (lower bounds; level 0 is open below). */
/* clang-format off */
static const double alpha_bounds[AT_ALPHA_LEVELS] = {
    -INFINITY,            1.0, 1.25, 1.5, 1.75,                /* burnt */
    AT_ALPHA_BURNT_BELOW, 2.5, 3.0,  3.5, 4.0,  4.5, 5.0, 5.5, /* healthy */
    AT_ALPHA_RAW_ABOVE,   7.0, 8.0,  9.0, 12.0};               /* raw: above */
/* clang-format on */
enum { BURNT0 = 0, HEALTHY0 = 5, RAW0 = 13 };

/* burnt: deep red -> vermilion -> orange; healthy: greys, lightest at 2; raw: sky -> deep blue */
static const int16_t alpha256[AT_ALPHA_LEVELS] = {
    CUBE(3, 0, 0), CUBE(4, 0, 0), CUBE(4, 1, 0), CUBE(5, 2, 0), CUBE(5, 3, 0), 253,
    252,           251,           250,           249,           248,           247,
    246,           CUBE(2, 4, 5), CUBE(1, 3, 5), CUBE(0, 2, 5), CUBE(0, 1, 5), CUBE(0, 0, 4)};
static const int16_t alpha8[AT_ALPHA_LEVELS] = {1, 1, 1, 3, 3, 7, 7, 7, 7,
                                                7, 7, 7, 7, 6, 6, 6, 4, 4};
static const char alpha_ascii[] = "@@@##++==--..ooOOO";

static const int16_t seq256[AT_SEQ_LEVELS] = {
    CUBE(0, 0, 2), CUBE(0, 1, 3), CUBE(0, 2, 3), CUBE(0, 3, 3), CUBE(0, 3, 2),
    CUBE(1, 4, 2), CUBE(2, 4, 1), CUBE(3, 4, 0), CUBE(4, 5, 0), CUBE(5, 5, 0)};
static const int16_t seq8[AT_SEQ_LEVELS] = {4, 4, 6, 6, 2, 2, 3, 3, 7, 7};
static const char seq_ascii[] = ".,:-=+*#%@";

/* Traps: 0, 1, 2, 3-4, 5-7, >= 8. */
static const int16_t trap256[AT_TRAP_LEVELS] = {250,           CUBE(5, 5, 2), CUBE(5, 4, 0),
                                                CUBE(5, 3, 0), CUBE(5, 1, 0), CUBE(4, 0, 0)};
static const int16_t trap8[AT_TRAP_LEVELS] = {7, 3, 3, 3, 1, 1};
static const char trap_ascii[] = "-123#@";

void at_scheme_init(at_scheme *s, int colors)
{
    s->colors = colors >= 256 ? 256 : colors >= 8 ? 8 : 0;
    enum { B = AT_ATTR_BOLD, R = AT_ATTR_REVERSE, U = AT_ATTR_UNDERLINE };
    static const at_style r256[AT_ROLE_COUNT] = {[AT_ROLE_NORMAL] = {D, D, 0},
                                                 [AT_ROLE_HEADER] = {255, 236, B},
                                                 [AT_ROLE_TITLE] = {117, D, B},
                                                 [AT_ROLE_DIM] = {245, D, 0},
                                                 [AT_ROLE_SELECTED] = {D, D, R},
                                                 [AT_ROLE_BURNT] = {CUBE(5, 1, 0), D, B},
                                                 [AT_ROLE_RAW] = {111, D, 0},
                                                 [AT_ROLE_TRAP] = {214, D, 0},
                                                 [AT_ROLE_OK] = {152, D, 0},
                                                 [AT_ROLE_MISSING] = {242, D, 0},
                                                 [AT_ROLE_STATUS] = {252, 236, 0},
                                                 [AT_ROLE_KEY] = {229, D, B},
                                                 [AT_ROLE_ERROR] = {203, D, B},
                                                 [AT_ROLE_PLOT] = {252, D, 0},
                                                 [AT_ROLE_FIT] = {214, D, B},
                                                 [AT_ROLE_WARN] = {214, D, B},
                                                 [AT_ROLE_VERDICT_CRIT] = {231, CUBE(4, 0, 0), B},
                                                 [AT_ROLE_VERDICT_WARN] = {16, 214, B},
                                                 [AT_ROLE_VERDICT_OK] = {152, 236, B},
                                                 [AT_ROLE_VERDICT_INFO] = {250, 236, 0}};
    static const at_style r8[AT_ROLE_COUNT] = {
        [AT_ROLE_NORMAL] = {D, D, 0},       [AT_ROLE_HEADER] = {7, 4, B},
        [AT_ROLE_TITLE] = {6, D, B},        [AT_ROLE_DIM] = {D, D, 0},
        [AT_ROLE_SELECTED] = {D, D, R},     [AT_ROLE_BURNT] = {1, D, B},
        [AT_ROLE_RAW] = {6, D, B},          [AT_ROLE_TRAP] = {3, D, 0},
        [AT_ROLE_OK] = {D, D, 0},           [AT_ROLE_MISSING] = {D, D, 0},
        [AT_ROLE_STATUS] = {0, 7, 0},       [AT_ROLE_KEY] = {3, D, B},
        [AT_ROLE_ERROR] = {1, D, B},        [AT_ROLE_PLOT] = {D, D, 0},
        [AT_ROLE_FIT] = {3, D, B},          [AT_ROLE_WARN] = {3, D, B},
        [AT_ROLE_VERDICT_CRIT] = {7, 1, B}, [AT_ROLE_VERDICT_WARN] = {0, 3, B},
        [AT_ROLE_VERDICT_OK] = {6, D, B},   [AT_ROLE_VERDICT_INFO] = {D, D, 0}};
    static const at_style r0[AT_ROLE_COUNT] = {[AT_ROLE_NORMAL] = {D, D, 0},
                                               [AT_ROLE_HEADER] = {D, D, R},
                                               [AT_ROLE_TITLE] = {D, D, B},
                                               [AT_ROLE_DIM] = {D, D, 0},
                                               [AT_ROLE_SELECTED] = {D, D, R},
                                               [AT_ROLE_BURNT] = {D, D, B},
                                               [AT_ROLE_RAW] = {D, D, 0},
                                               [AT_ROLE_TRAP] = {D, D, 0},
                                               [AT_ROLE_OK] = {D, D, 0},
                                               [AT_ROLE_MISSING] = {D, D, 0},
                                               [AT_ROLE_STATUS] = {D, D, R},
                                               [AT_ROLE_KEY] = {D, D, B},
                                               [AT_ROLE_ERROR] = {D, D, B},
                                               [AT_ROLE_PLOT] = {D, D, 0},
                                               [AT_ROLE_FIT] = {D, D, B},
                                               [AT_ROLE_WARN] = {D, D, B},
                                               [AT_ROLE_VERDICT_CRIT] = {D, D, B | R},
                                               [AT_ROLE_VERDICT_WARN] = {D, D, B | U},
                                               [AT_ROLE_VERDICT_OK] = {D, D, B},
                                               [AT_ROLE_VERDICT_INFO] = {D, D, 0}};
    const at_style *src = s->colors == 256 ? r256 : s->colors == 8 ? r8 : r0;
    for (int i = 0; i < AT_ROLE_COUNT; i++)
        s->roles[i] = src[i];
}

at_style at_scheme_role(const at_scheme *s, at_role r)
{
    return (unsigned)r < AT_ROLE_COUNT ? s->roles[r] : s->roles[AT_ROLE_NORMAL];
}

at_scale at_metric_scale(at_metric_id id)
{
    return id == AT_METRIC_ALPHA   ? AT_SCALE_ALPHA
           : id == AT_METRIC_TRAPS ? AT_SCALE_TRAPS
                                   : AT_SCALE_SEQ;
}

int at_scale_levels(at_scale sc)
{
    return sc == AT_SCALE_ALPHA   ? AT_ALPHA_LEVELS
           : sc == AT_SCALE_TRAPS ? AT_TRAP_LEVELS
                                  : AT_SEQ_LEVELS;
}

double at_alpha_badness(double a)
{
    return a < AT_ALPHA_BURNT_BELOW ? AT_ALPHA_BURNT_BELOW - a
           : a > AT_ALPHA_RAW_ABOVE ? a - AT_ALPHA_RAW_ABOVE
                                    : 0.0;
}

double at_alpha_level_bound(int k)
{
    return k >= 0 && k < AT_ALPHA_LEVELS ? alpha_bounds[k] : NAN;
}

int at_scale_level(at_scale sc, double v, double lo, double hi)
{
    if (isnan(v))
        return -1;
    if (sc == AT_SCALE_ALPHA) {
        /* The band edges (band.h) are healthy; raw is strictly above. */
        int k0 = v < AT_ALPHA_BURNT_BELOW ? BURNT0 : v <= AT_ALPHA_RAW_ABOVE ? HEALTHY0 : RAW0;
        int k1 = v < AT_ALPHA_BURNT_BELOW  ? HEALTHY0
                 : v <= AT_ALPHA_RAW_ABOVE ? RAW0
                                           : AT_ALPHA_LEVELS;
        int k = k0;
        while (k + 1 < k1 && v >= alpha_bounds[k + 1])
            k++;
        return k;
    }
    if (sc == AT_SCALE_TRAPS) {
        static const double tb[AT_TRAP_LEVELS] = {0, 1, 2, 3, 5, 8};
        int k = 0;
        while (k + 1 < AT_TRAP_LEVELS && v >= tb[k + 1])
            k++;
        return k;
    }
    if (!(hi > lo))
        return AT_SEQ_LEVELS / 2;
    int k = (int)floor((v - lo) / (hi - lo) * AT_SEQ_LEVELS);
    return k < 0 ? 0 : k >= AT_SEQ_LEVELS ? AT_SEQ_LEVELS - 1 : k;
}

int16_t at_scheme_level_color(const at_scheme *s, at_scale sc, int k)
{
    if (s->colors == 0 || k < 0 || k >= at_scale_levels(sc))
        return D;
    if (sc == AT_SCALE_ALPHA)
        return s->colors == 256 ? alpha256[k] : alpha8[k];
    if (sc == AT_SCALE_TRAPS)
        return s->colors == 256 ? trap256[k] : trap8[k];
    return s->colors == 256 ? seq256[k] : seq8[k];
}

uint8_t at_scheme_level_attr(const at_scheme *s, at_scale sc, int k)
{
    return s->colors == 8 && at_scheme_level_color(s, sc, k) == 4 ? AT_ATTR_BOLD : 0;
}

char at_scale_ascii(at_scale sc, int k)
{
    if (k < 0 || k >= at_scale_levels(sc))
        return ' ';
    return sc == AT_SCALE_ALPHA   ? alpha_ascii[k]
           : sc == AT_SCALE_TRAPS ? trap_ascii[k]
                                  : seq_ascii[k];
}

int16_t at_scheme_missing_color(const at_scheme *s)
{
    return s->colors == 256 ? 238 : s->colors == 8 ? 0 : D;
}
