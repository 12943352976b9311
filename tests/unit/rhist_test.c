/* rhist_test.c -- the residual histogram behind split-conformal intervals
 * (lib/base/rhist.h): bins are monotone and cover their edges, the quantile
 * matches the exact order statistic of the values within a bin's width, and
 * sums of histograms give the same quantile as one histogram of all values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "lib/base/rhist.h"

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* lcg_unit returns a deterministic pseudo-random number in (0, 1). */
static double
lcg_unit(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
}

static void
test_bins_monotone_and_edges(void **state)
{
	size_t prev = 0;

	(void)state;
	assert_int_equal(psf_rhist_bin(0.0), 0);
	assert_int_equal(psf_rhist_bin(5e-8), 0);
	assert_int_equal(psf_rhist_bin(1e-7), 1);
	assert_int_equal(psf_rhist_bin(-1e-7), 1); /* |v| */
	assert_int_equal(psf_rhist_bin(1e5), PSF_RHIST_BINS - 1);
	assert_int_equal(psf_rhist_bin(NAN), PSF_RHIST_BINS - 1);
	assert_int_equal(psf_rhist_bin(INFINITY), PSF_RHIST_BINS - 1);
	/* a decade is PSF_RHIST_PER_DECADE bins: 1.0 starts bin 1 + 7 * 40 */
	assert_int_equal(psf_rhist_bin(1.0), 1 + 7 * PSF_RHIST_PER_DECADE);
	assert_int_equal(psf_rhist_bin(0.99999999), 7 * PSF_RHIST_PER_DECADE);
	for (double v = 1e-8; v < 1e6; v *= 1.01) {
		size_t b = psf_rhist_bin(v);
		assert_true(b >= prev);
		prev = b;
	}
}

static void
test_quantile_matches_order_statistic(void **state)
{
	enum { N = 5000 };
	double *v = malloc(N * sizeof(double));
	uint64_t h[PSF_RHIST_BINS], seed = 7;
	const double cov[] = {0.5, 0.8, 0.9, 0.95, 0.99};

	(void)state;
	assert_non_null(v);
	memset(h, 0, sizeof(h));
	for (size_t i = 0; i < N; i++) { /* |normal| * 3 by Box-Muller */
		double u1 = lcg_unit(&seed), u2 = lcg_unit(&seed);
		v[i] = fabs(3.0 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
		psf_rhist_add(h, v[i]);
	}
	qsort(v, N, sizeof(double), cmp_double);
	for (size_t c = 0; c < sizeof(cov) / sizeof(cov[0]); c++) {
		double q;
		size_t k = (size_t)ceil(cov[c] * (N + 1));
		assert_int_equal(psf_rhist_quantile(h, PSF_RHIST_BINS, cov[c], &q), PSF_OK);
		/* within one bin (5.9%) of the exact k-th smallest */
		assert_true(fabs(q - v[k - 1]) <= 0.06 * v[k - 1]);
	}
	free(v);
}

static void
test_sums_and_errors(void **state)
{
	uint64_t a[PSF_RHIST_BINS], b[PSF_RHIST_BINS], all[PSF_RHIST_BINS], seed = 3;
	double qa, qb;

	(void)state;
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	memset(all, 0, sizeof(all));
	assert_int_equal(psf_rhist_quantile(all, PSF_RHIST_BINS, 0.9, &qa), PSF_ENOENT);
	for (int i = 0; i < 1000; i++) {
		double x = lcg_unit(&seed) * 10;
		psf_rhist_add(i % 3 ? a : b, x);
		psf_rhist_add(all, x);
	}
	for (size_t i = 0; i < PSF_RHIST_BINS; i++)
		a[i] += b[i];
	assert_int_equal(psf_rhist_quantile(a, PSF_RHIST_BINS, 0.9, &qa), PSF_OK);
	assert_int_equal(psf_rhist_quantile(all, PSF_RHIST_BINS, 0.9, &qb), PSF_OK);
	assert_true(qa == qb); /* exact counts: sharding-independent */
	assert_int_equal(psf_rhist_quantile(a, PSF_RHIST_BINS, 0.0, &qa), PSF_EINVAL);
	assert_int_equal(psf_rhist_quantile(a, PSF_RHIST_BINS, 1.0, &qa), PSF_EINVAL);
	assert_int_equal(psf_rhist_quantile(a, PSF_RHIST_BINS, NAN, &qa), PSF_EINVAL);
	assert_int_equal(psf_rhist_quantile(a, 10, 0.9, &qa), PSF_EINVAL);
	/* 1000 residuals: coverage 0.9995 needs k = 1001 > n: unbounded */
	assert_int_equal(psf_rhist_quantile(a, PSF_RHIST_BINS, 0.9995, &qa), PSF_ERANGE);
	memset(a, 0, sizeof(a));
	a[PSF_RHIST_BINS - 1] = 100; /* everything overflowed */
	assert_int_equal(psf_rhist_quantile(a, PSF_RHIST_BINS, 0.5, &qa), PSF_ERANGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bins_monotone_and_edges),
	    cmocka_unit_test(test_quantile_matches_order_statistic),
	    cmocka_unit_test(test_sums_and_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
