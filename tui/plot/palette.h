/* SPDX-License-Identifier: Apache-2.0 */
/* palette.h -- the plots' colours: alpha on the healthy band's diverging scale, and the roles.
 *
 * The same opposition as the live view's (tui/view/scheme.h), safe for colour-blind readers
 * (Okabe-Ito's warm/blue pair, never red against green), on a white page: burnt (alpha < 2)
 * orange to vermilion to deep red as alpha falls; healthy (2..6, band.h) neutral greys,
 * lightest at 2; raw (> 6) sky blue to deep blue as alpha grows. The colour is continuous
 * inside each side and jumps at the band's edges, so leaving the band shows.
 */
#ifndef ALPHATOP_PLOT_PALETTE_H
#define ALPHATOP_PLOT_PALETTE_H

/* Roles, as SVG/CSS colours. */
#define AT_PLOT_INK "#222222"     /* text, axes */
#define AT_PLOT_MUTED "#666666"   /* secondary text */
#define AT_PLOT_GRID "#e6e6e6"    /* grid lines */
#define AT_PLOT_BULK "#c4c4c4"    /* ESD bars below xmin */
#define AT_PLOT_TAIL "#7a7a7a"    /* ESD bars of the fitted tail */
#define AT_PLOT_FIT "#d55e00"     /* the fitted power law and xmin (vermilion) */
#define AT_PLOT_MP "#0072b2"      /* the Marchenko-Pastur bulk edge (blue) */
#define AT_PLOT_BAND "#f2f2f2"    /* the healthy band behind alpha-over-time lines */
#define AT_PLOT_MISSING "#ffffff" /* no result: the page's own white */

/* The colour of alpha as "#rrggbb" in buf (8 bytes); returns buf. NAN: AT_PLOT_MISSING. */
const char *at_plot_alpha_color(double alpha, char buf[8]);

/* The text colour that reads on at_plot_alpha_color(alpha): "#000000" or "#ffffff". */
const char *at_plot_alpha_ink(double alpha);

/* "burnt", "healthy", "raw", or "no fit" for NAN. Static string. */
const char *at_plot_band_name(double alpha);

#endif
