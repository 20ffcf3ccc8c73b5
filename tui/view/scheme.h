/* SPDX-License-Identifier: Apache-2.0 */
/* scheme.h -- colour roles and the heatmap's colour scales.
 *
 * Draw code asks for a role (AT_ROLE_*) or a heat level, never for a raw colour number; the
 * scheme resolves it for the terminal's depth: 256 colours (default), 8 colours, or none
 * (monochrome: attributes only, and the heatmap uses an ASCII ramp). The user's palette is
 * never redefined: 256-colour indices are the standard xterm ones.
 *
 * Alpha uses a fixed diverging scale of AT_ALPHA_LEVELS levels centred on the healthy band,
 * safe for colour-blind readers (Okabe-Ito's warm/blue opposition, never red against
 * green): burnt (< 2) orange to vermilion to deep red as alpha falls; healthy (2..6) neutral
 * greys, lightest at 2 (ideal); raw (> 6) sky blue to deep blue as alpha grows. Every other
 * metric uses a sequential scale of AT_SEQ_LEVELS levels over the range of the values on
 * screen (traps: 0 is neutral, then yellow to red). On 8 colours blue cells are bold (bright)
 * so that they do not vanish on a black background.
 */
#ifndef ALPHATOP_SCHEME_H
#define ALPHATOP_SCHEME_H

#include "grid.h"
#include "model.h"

typedef enum at_role {
    AT_ROLE_NORMAL = 0,
    AT_ROLE_HEADER,       /* header bar */
    AT_ROLE_TITLE,        /* panel titles */
    AT_ROLE_DIM,          /* secondary text */
    AT_ROLE_SELECTED,     /* selected row */
    AT_ROLE_BURNT,        /* text about burnt layers */
    AT_ROLE_RAW,          /* text about raw layers */
    AT_ROLE_TRAP,         /* text about traps */
    AT_ROLE_OK,           /* healthy / good news */
    AT_ROLE_MISSING,      /* failed or skipped cells */
    AT_ROLE_STATUS,       /* bottom key-hint bar */
    AT_ROLE_KEY,          /* key names in hints and help */
    AT_ROLE_ERROR,        /* errors, too-small message */
    AT_ROLE_PLOT,         /* data points in plots */
    AT_ROLE_FIT,          /* fitted line and xmin marker */
    AT_ROLE_WARN,         /* warnings that are not about one phase (run events, advice) */
    AT_ROLE_VERDICT_CRIT, /* the verdict row: collapse */
    AT_ROLE_VERDICT_WARN, /* over-fit */
    AT_ROLE_VERDICT_OK,   /* grokking */
    AT_ROLE_VERDICT_INFO, /* pre-grokking, no phase yet */
    AT_ROLE_COUNT
} at_role;

enum { AT_ALPHA_LEVELS = 18, AT_SEQ_LEVELS = 10, AT_TRAP_LEVELS = 6 };

/* Which scale a metric uses. */
typedef enum at_scale { AT_SCALE_ALPHA = 0, AT_SCALE_SEQ = 1, AT_SCALE_TRAPS = 2 } at_scale;

typedef struct at_scheme {
    int colors; /* 256, 8 or 0 */
    at_style roles[AT_ROLE_COUNT];
} at_scheme;

/* Fills *s for a terminal with `colors` colours (>= 256: 256; >= 8: 8; else none). */
void at_scheme_init(at_scheme *s, int colors);

/* Style of a role. */
at_style at_scheme_role(const at_scheme *s, at_role r);

/* The scale metric id is drawn with. */
at_scale at_metric_scale(at_metric_id id);

/* Number of levels of a scale. */
int at_scale_levels(at_scale sc);

/* Level (0..levels-1) of value v on scale sc; lo/hi is the value range on screen (used by
 * AT_SCALE_SEQ only). -1 when v is NAN. */
int at_scale_level(at_scale sc, double v, double lo, double hi);

/* How far alpha lies outside the healthy band 2..6 (0 inside it): the "worst" order. */
double at_alpha_badness(double alpha);

/* Lower bound of alpha level k (level k covers [bound(k), bound(k+1)); level 0 starts at
 * -inf, the last ends at +inf). */
double at_alpha_level_bound(int k);

/* Palette colour of level k on scale sc (AT_COLOR_DEFAULT in monochrome). */
int16_t at_scheme_level_color(const at_scheme *s, at_scale sc, int k);

/* Attributes a heat cell of level k on scale sc needs besides its colour (bold blue on 8
 * colours); 0 mostly. */
uint8_t at_scheme_level_attr(const at_scheme *s, at_scale sc, int k);

/* ASCII glyph of level k (the monochrome heatmap): e.g. alpha burnt '#', healthy '+', raw
 * 'o'. */
char at_scale_ascii(at_scale sc, int k);

/* Colour of a missing cell (failed or skipped fit). */
int16_t at_scheme_missing_color(const at_scheme *s);

#endif
