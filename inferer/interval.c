/* interval.c -- split-conformal prediction intervals (internal.h).
 *
 * The trainers count the absolute errors of their held-out (test) rows, made
 * with the weights they just pushed, into fixed log-spaced bins and report them
 * to ps0 (MetricsReport.residual_hist); the inferer sums the latest report of
 * every trainer with the fleet's metrics (inf_fetch_metrics). An interval at
 * coverage c is the prediction +- the ceil(c (n + 1))-th smallest residual: for
 * a new row exchangeable with the held-out ones it holds the actual value with
 * probability >= c (split-conformal; docs/inference.md). */
#include <math.h>
#include <stdio.h>

#include "inferer/internal.h"

psf_status
inf_interval_check(double coverage, char *msg, size_t len)
{
	if (coverage == 0.0 || (coverage > 0.0 && coverage < 1.0))
		return PSF_STATUS_OK;
	snprintf(msg, len, "coverage %g is not in (0, 1) (e.g. 0.9 for a 90%% interval)", coverage);
	return PSF_STATUS_INVALID_ARGUMENT;
}

psf_status
inf_interval(psf_inferer *inf, double coverage, double prediction, double last_close, double *lower,
    double *upper, uint64_t *n, char *msg, size_t len)
{
	double q = 0, scale = psf_config_interval_by_price(inf->cfg) ? last_close : 1.0;
	uint64_t have;
	psf_err err;

	if (inf->cfg->target == PSF_TARGET_NEXT_DIRECTION) {
		snprintf(msg, len,
		    "prediction intervals need a regression target (next_close or "
		    "next_return), not next_direction");
		return PSF_STATUS_FAILED_PRECONDITION;
	}
	pthread_mutex_lock(&inf->snap_mu);
	have = inf->metrics.n_resid;
	err = psf_rhist_quantile(inf->metrics.resid, PSF_RHIST_BINS, coverage, &q);
	pthread_mutex_unlock(&inf->snap_mu);
	switch (err) {
	case PSF_OK: break;
	case PSF_ENOENT:
		snprintf(msg, len,
		    "no held-out residuals yet for an interval: the trainers report them "
		    "with each evaluation (end of an epoch)");
		return PSF_STATUS_FAILED_PRECONDITION;
	case PSF_ERANGE:
		snprintf(msg, len,
		    "%llu held-out residuals are too few for coverage %g (it needs at "
		    "least %.0f; raise data.test_fraction or lower the coverage)",
		    (unsigned long long)have, coverage, ceil(coverage / (1.0 - coverage)));
		return PSF_STATUS_FAILED_PRECONDITION;
	default:
		snprintf(msg, len, "coverage %g is not in (0, 1)", coverage);
		return PSF_STATUS_INVALID_ARGUMENT;
	}
	*lower = prediction - q * scale;
	*upper = prediction + q * scale;
	*n = have;
	return PSF_STATUS_OK;
}
