/* rhist.c -- log-spaced residual histograms and their conformal quantile (rhist.h). */
#include "lib/base/rhist.h"

#include <math.h>

/* lower_edge returns the smallest value of bin i (1 .. PSF_RHIST_BINS - 1). */
static double
lower_edge(size_t i)
{
	return pow(10.0, PSF_RHIST_LO_EXP + (double)(i - 1) / PSF_RHIST_PER_DECADE);
}

size_t
psf_rhist_bin(double v)
{
	double a = fabs(v), pos;

	if (isnan(a) || a >= pow(10.0, PSF_RHIST_HI_EXP))
		return PSF_RHIST_BINS - 1;
	if (a < pow(10.0, PSF_RHIST_LO_EXP))
		return 0;
	pos = (log10(a) - PSF_RHIST_LO_EXP) * PSF_RHIST_PER_DECADE;
	size_t i = 1 + (size_t)pos;
	/* log10 rounding can put a value a hair off its edge: correct by the edges */
	if (i > 1 && a < lower_edge(i))
		i--;
	else if (i < PSF_RHIST_BINS - 2 && a >= lower_edge(i + 1))
		i++;
	return i < PSF_RHIST_BINS - 1 ? i : PSF_RHIST_BINS - 2;
}

void
psf_rhist_add(uint64_t *h, double v)
{
	h[psf_rhist_bin(v)]++;
}

uint64_t
psf_rhist_total(const uint64_t *h, size_t n)
{
	uint64_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += h[i];
	return t;
}

psf_err
psf_rhist_quantile(const uint64_t *h, size_t n_bins, double coverage, double *q)
{
	uint64_t n, k, cum = 0;

	if (n_bins != PSF_RHIST_BINS || !(coverage > 0.0 && coverage < 1.0))
		return PSF_EINVAL;
	if ((n = psf_rhist_total(h, n_bins)) == 0)
		return PSF_ENOENT;
	k = (uint64_t)ceil(coverage * (double)(n + 1) - 1e-9);
	if (k < 1)
		k = 1;
	if (k > n)
		return PSF_ERANGE;
	for (size_t i = 0; i < n_bins; i++) {
		if (cum + h[i] < k) {
			cum += h[i];
			continue;
		}
		double frac = (double)(k - cum) / (double)h[i];
		if (i == n_bins - 1)
			return PSF_ERANGE;
		if (i == 0)
			*q = frac * lower_edge(1);
		else
			*q = lower_edge(i) * pow(10.0, frac / PSF_RHIST_PER_DECADE);
		return PSF_OK;
	}
	return PSF_EINTERNAL; /* unreachable: k <= n */
}
