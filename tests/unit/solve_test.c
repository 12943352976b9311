/* solve_test.c -- the exact solver (lib/model/solve.h): exact, order-independent
 * sums; the ridge solve against LAPACK's dgelsd on the design matrix itself;
 * collinear features; bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "lib/model/solve.h"

extern void dgelsd_(const int *m, const int *n, const int *nrhs, double *a, const int *lda,
    double *b, const int *ldb, double *s, const double *rcond, int *rank, double *work,
    const int *lwork, int *iwork, int *info);

#define N 3000
#define D 4

static uint64_t rng = 88172645463325252ull;

static double
unif(void) /* xorshift64, [0, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

/* A data set like prices: features with offsets and some correlation. */
typedef struct ds {
	float x[N * D];
	double y[N];
} ds;

static void
make_ds(ds *s, bool collinear)
{
	for (size_t r = 0; r < N; r++) {
		double base = 100 + 40 * unif();
		for (size_t j = 0; j < D; j++)
			s->x[r * D + j] = (float)(base + 10 * unif() * (double)(j + 1));
		if (collinear) { /* small integers: x2 = x0 + x1 exactly in float */
			s->x[r * D + 0] = (float)floor(50 * unif());
			s->x[r * D + 1] = (float)floor(50 * unif());
			s->x[r * D + 2] = s->x[r * D + 0] + s->x[r * D + 1];
		}
		s->y[r] = 3 + 0.5 * s->x[r * D] - 0.25 * s->x[r * D + 1] + 0.1 * s->x[r * D + 3] +
		    (unif() - 0.5) * 5;
	}
}

static void
moments_of(const ds *s, double *m)
{
	psf_normal *ne;

	assert_int_equal(psf_normal_new(D, &ne), PSF_OK);
	assert_int_equal(psf_normal_add_rows(ne, s->x, s->y, N), PSF_OK);
	assert_int_equal(psf_normal_moments(ne, m), PSF_OK);
	psf_normal_free(ne);
}

/* mean_sd: population mean and sd of column j of [1, x, y] from the moments. */
static void
mean_sd(const double *m, double *mean, double *sd)
{
	size_t dim = D + 2;

	for (size_t j = 0; j <= D; j++) {
		mean[j] = m[1 + j] / m[0];
		sd[j] = sqrt(m[(1 + j) * dim + 1 + j] / m[0] - mean[j] * mean[j]);
	}
}

/* lstsq solves min |A b - y| (A n × k column-major, min-norm) with dgelsd. */
static void
lstsq(int n, int k, double *a, double *y, double *out)
{
	int nrhs = 1, rank, lwork = -1, info, *iwork;
	double rcond = 1e-12, q, *s = malloc((size_t)k * sizeof(double)), *work;

	iwork = malloc((size_t)(64 * k + 64) * sizeof(int));
	dgelsd_(&n, &k, &nrhs, a, &n, y, &n, s, &rcond, &rank, &q, &lwork, iwork, &info);
	assert_int_equal(info, 0);
	lwork = (int)q;
	work = malloc((size_t)lwork * sizeof(double));
	dgelsd_(&n, &k, &nrhs, a, &n, y, &n, s, &rcond, &rank, work, &lwork, iwork, &info);
	assert_int_equal(info, 0);
	memcpy(out, y, (size_t)k * sizeof(double));
	free(s);
	free(work);
	free(iwork);
}

static void
assert_rel(const double *got, const double *want, size_t k, double tol)
{
	double num = 0, den = 0;

	for (size_t j = 0; j < k; j++) {
		num += (got[j] - want[j]) * (got[j] - want[j]);
		den += want[j] * want[j];
	}
	if (!(sqrt(num) <= tol * sqrt(den)))
		fail_msg("relative error %.3g > %.3g (first: %.17g vs %.17g)", sqrt(num / den), tol,
		    got[0], want[0]);
}

/* Sums split over 1, 2, 4 and 7 "trainers", rows in another order, the wire
 * vectors added in another order: the very same bits. */
static void
test_sums_order_independent(void **state)
{
	ds *s = malloc(sizeof(ds));
	double m1[(D + 2) * (D + 2)], m2[(D + 2) * (D + 2)];
	size_t parts[] = {2, 4, 7};

	(void)state;
	make_ds(s, false);
	for (size_t r = 0; r < N; r++) { /* values of both signs, and tiny ones */
		s->x[r * D + 1] -= 120.0f;
		s->x[r * D + 2] *= (r % 3 == 0) ? 1e-30f : 1.0f;
		s->y[r] -= 60.0;
	}
	moments_of(s, m1);
	assert_true(m1[0] == N);
	for (size_t pi = 0; pi < 3; pi++) {
		size_t k = parts[pi];
		psf_normal *ne[7], *tot;
		size_t len;
		double *wire, *sum;

		for (size_t i = 0; i < k; i++)
			assert_int_equal(psf_normal_new(D, &ne[i]), PSF_OK);
		for (size_t r = N; r-- > 0;) /* backwards, row r to part r*31 % k */
			assert_int_equal(
			    psf_normal_add_rows(ne[(r * 31) % k], s->x + r * D, s->y + r, 1),
			    PSF_OK);
		len = psf_normal_wire_len(ne[0]);
		wire = malloc(len * sizeof(double));
		sum = calloc(len, sizeof(double));
		for (size_t i = k; i-- > 0;) { /* the parts in reverse */
			assert_int_equal(psf_normal_to_wire(ne[i], wire), PSF_OK);
			for (size_t v = 0; v < len; v++)
				sum[v] += wire[v];
			psf_normal_free(ne[i]);
		}
		assert_int_equal(psf_normal_new(D, &tot), PSF_OK);
		assert_int_equal(psf_normal_from_wire(tot, sum), PSF_OK);
		assert_int_equal(psf_normal_moments(tot, m2), PSF_OK);
		assert_memory_equal(m1, m2, sizeof(m1));
		psf_normal_free(tot);
		free(wire);
		free(sum);
	}
	/* and the rounded totals are right: Σx_0 in long double as a check */
	long double sx = 0;
	for (size_t r = 0; r < N; r++)
		sx += s->x[r * D];
	assert_true(fabsl((long double)m1[1] - sx) <= 1e-12L * fabsl(sx));
	free(s);
}

/* With l2 = 0 the weights, mapped back to raw units, equal dgelsd's least
 * squares on [1, x] to 1e-9; standardisation with other means and sds gives the
 * same raw model. */
static void
test_ols_matches_dgelsd(void **state)
{
	ds *s = malloc(sizeof(ds));
	double m[(D + 2) * (D + 2)], mean[D + 1], sd[D + 1], w[D], b, raw[D + 1], ref[D + 1];
	double *a = malloc((size_t)N * (D + 1) * sizeof(double)), *y = malloc(N * sizeof(double));
	psf_solve_info info;

	(void)state;
	make_ds(s, false);
	moments_of(s, m);
	mean_sd(m, mean, sd);
	for (size_t r = 0; r < N; r++) {
		a[r] = 1.0;
		for (size_t j = 0; j < D; j++)
			a[(j + 1) * N + r] = s->x[r * D + j];
		y[r] = s->y[r];
	}
	lstsq(N, D + 1, a, y, ref);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) /* other standardisation: same raw answer */
			for (size_t j = 0; j <= D; j++) {
				mean[j] += 3.0;
				sd[j] *= 1.7;
			}
		assert_int_equal(psf_ridge_solve(D, m, mean, sd, 0.0, w, &b, &info), PSF_OK);
		assert_false(info.singular);
		assert_int_equal(info.rank, D);
		raw[0] = mean[D] + sd[D] * b;
		for (size_t j = 0; j < D; j++) {
			raw[1 + j] = w[j] * sd[D] / sd[j];
			raw[0] -= raw[1 + j] * mean[j];
		}
		assert_rel(raw + 1, ref + 1, D, 1e-9);
		assert_rel(raw, ref, 1, 1e-9);
	}
	free(a);
	free(y);
	free(s);
}

/* reference_std: the standardised, centred design (column-major) and target. */
static void
reference_std(const ds *s, const double *mean, const double *sd, size_t extra, double *a, double *y)
{
	size_t rows = N + extra;

	for (size_t r = 0; r < N; r++) {
		for (size_t j = 0; j < D; j++)
			a[j * rows + r] = (s->x[r * D + j] - mean[j]) / sd[j];
		y[r] = (s->y[r] - mean[D]) / sd[D];
	}
}

/* Ridge: (C + l2/2 I) w = c in standardised space is the minimiser of the SGD
 * loss (1/n)|Xw + b - y|² + ½ l2 |w|², i.e. least squares on X stacked over
 * sqrt(n l2 / 2) I: dgelsd on that, to 1e-9. */
static void
test_ridge_matches_augmented(void **state)
{
	ds *s = malloc(sizeof(ds));
	double m[(D + 2) * (D + 2)], mean[D + 1], sd[D + 1], w[D], b, ref[D];
	size_t rows = N + D;
	double *a = calloc(rows * D, sizeof(double)), *y = calloc(rows, sizeof(double));
	double l2 = 0.3;

	(void)state;
	make_ds(s, false);
	moments_of(s, m);
	mean_sd(m, mean, sd);
	reference_std(s, mean, sd, D, a, y);
	for (size_t j = 0; j < D; j++)
		a[j * rows + N + j] = sqrt((double)N * l2 / 2);
	lstsq((int)rows, D, a, y, ref);
	assert_int_equal(psf_ridge_solve(D, m, mean, sd, l2, w, &b, NULL), PSF_OK);
	assert_rel(w, ref, D, 1e-9);
	assert_true(fabs(b) < 1e-12); /* centred by the same means: no intercept */
	free(a);
	free(y);
	free(s);
}

/* x2 = x0 + x1: flagged singular, the three are named and x3 is not, and the
 * weights are the min-norm solution (dgelsd on the standardised design). */
static void
test_collinear_min_norm(void **state)
{
	ds *s = malloc(sizeof(ds));
	double m[(D + 2) * (D + 2)], mean[D + 1], sd[D + 1], w[D], b, ref[D];
	double *a = calloc((size_t)N * D, sizeof(double)), *y = calloc(N, sizeof(double));
	psf_solve_info info;
	bool named[D] = {false};

	(void)state;
	make_ds(s, true);
	moments_of(s, m);
	mean_sd(m, mean, sd);
	reference_std(s, mean, sd, 0, a, y);
	lstsq(N, D, a, y, ref);
	assert_int_equal(psf_ridge_solve(D, m, mean, sd, 0.0, w, &b, &info), PSF_OK);
	assert_true(info.singular);
	assert_int_equal(info.rank, D - 1);
	for (size_t i = 0; i < info.n_collinear; i++)
		named[info.collinear[i]] = true;
	assert_true(named[0] && named[1] && named[2]);
	assert_false(named[3]);
	assert_rel(w, ref, D, 1e-9);
	/* with l2 > 0 the system is regular again */
	assert_int_equal(psf_ridge_solve(D, m, mean, sd, 0.01, w, &b, &info), PSF_OK);
	assert_false(info.singular);
	free(a);
	free(y);
	free(s);
}

static void
test_bad_input(void **state)
{
	psf_normal *ne;
	float x[2] = {1, 2};
	double y = NAN, m[16] = {0}, mean[2] = {0, 0}, sd[2] = {1, 1}, w[1], b;
	double wire[3 * 4 * PSF_XSUM_DIGITS];

	(void)state;
	assert_int_equal(psf_normal_new(0, &ne), PSF_EINVAL);
	assert_int_equal(psf_normal_new(2, &ne), PSF_OK);
	assert_int_equal(psf_normal_add_rows(ne, x, &y, 1), PSF_ERANGE);
	y = 1e300; /* its square is beyond the range */
	assert_int_equal(psf_normal_add_rows(ne, x, &y, 1), PSF_ERANGE);
	memset(wire, 0, sizeof(wire));
	wire[5] = 0.5; /* not an integer */
	assert_int_equal(psf_normal_from_wire(ne, wire), PSF_EINVAL);
	psf_normal_free(ne);
	assert_int_equal(psf_ridge_solve(1, m, mean, sd, 0.0, w, &b, NULL), PSF_EINVAL); /* n = 0 */
	m[0] = 1;
	assert_int_equal(psf_ridge_solve(1, m, mean, sd, -1.0, w, &b, NULL), PSF_EINVAL);
	sd[0] = 0;
	assert_int_equal(psf_ridge_solve(1, m, mean, sd, 0.0, w, &b, NULL), PSF_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sums_order_independent),
	    cmocka_unit_test(test_ols_matches_dgelsd),
	    cmocka_unit_test(test_ridge_matches_augmented),
	    cmocka_unit_test(test_collinear_min_norm),
	    cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
