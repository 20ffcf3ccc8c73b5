/* SPDX-License-Identifier: Apache-2.0 */
/* band.h -- the healthy band of alpha, the one place its edges are written.
 *
 * A layer's alpha (the power-law exponent of its eigenvalue spectrum) tells how trained it is
 * (docs/metrics.md sections 3 and 7):
 *   burnt    alpha <  AT_ALPHA_BURNT_BELOW   over-trained (over-fit); warning "over-trained"
 *   healthy  AT_ALPHA_BURNT_BELOW <= alpha <= AT_ALPHA_RAW_ABOVE (both edges healthy)
 *   raw      alpha >  AT_ALPHA_RAW_ABOVE     under-trained; warning "under-trained"
 * Used by the warning column (at_warning_for), the phase tracker's defaults and the views'
 * colour scale and ordering.
 */
#ifndef ALPHATOP_BAND_H
#define ALPHATOP_BAND_H

#define AT_ALPHA_BURNT_BELOW 2.0 /* below: burnt; the band's lower edge is healthy */
#define AT_ALPHA_RAW_ABOVE 6.0   /* above: raw; the band's upper edge is healthy */

#endif
