/* rhist.h -- fixed log-spaced histograms of absolute residuals, for
 * split-conformal prediction intervals.
 *
 * Every trainer counts |prediction - actual| / scale of its held-out rows into
 * the same fixed bins and reports the counts (MetricsReport.residual_hist); the
 * counts of all trainers add up exactly, so the fleet's histogram is the same
 * whatever the sharding. An inferer turns the sum into the conformal quantile
 * q at a coverage c and serves [prediction - q * scale, prediction + q * scale].
 *
 * Bins: bin 0 holds [0, PSF_RHIST_LO); bins 1 .. PSF_RHIST_BINS - 2 split
 * [PSF_RHIST_LO, PSF_RHIST_HI) into PSF_RHIST_PER_DECADE bins per decade (each
 * 5.9% wide); the last bin holds [PSF_RHIST_HI, inf) and NaN. */
#ifndef PSF_RHIST_H
#define PSF_RHIST_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

#define PSF_RHIST_LO_EXP (-7) /* PSF_RHIST_LO = 1e-7 */
#define PSF_RHIST_HI_EXP 5    /* PSF_RHIST_HI = 1e5 */
#define PSF_RHIST_PER_DECADE 40
#define PSF_RHIST_BINS ((PSF_RHIST_HI_EXP - PSF_RHIST_LO_EXP) * PSF_RHIST_PER_DECADE + 2)

/* psf_rhist_bin returns the bin of |v| (0 .. PSF_RHIST_BINS - 1). Cannot fail. */
size_t psf_rhist_bin(double v);

/* psf_rhist_add counts |v| into h (PSF_RHIST_BINS counts). Cannot fail. */
void psf_rhist_add(uint64_t *h, double v);

/* psf_rhist_total returns the sum of n counts. Cannot fail. */
uint64_t psf_rhist_total(const uint64_t *h, size_t n);

/* psf_rhist_quantile computes the split-conformal quantile of the n_total
 * residuals counted in h: the k-th smallest with k = ceil(coverage * (n + 1)),
 * interpolated geometrically inside its bin (linearly in bin 0), so that an
 * interval of +-q covers a new exchangeable residual with probability >=
 * coverage up to the bin resolution. Errors: PSF_EINVAL for a coverage outside
 * (0, 1) or n_bins != PSF_RHIST_BINS; PSF_ENOENT when no residual is counted;
 * PSF_ERANGE when there are too few residuals for the coverage (k > n: the
 * interval would be unbounded) or the k-th falls in the overflow bin. *q gets
 * the quantile. */
PSF_NODISCARD psf_err psf_rhist_quantile(const uint64_t *h, size_t n_bins, double coverage,
    double *q);

#endif
