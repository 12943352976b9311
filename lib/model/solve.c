/* solve.c -- exact normal-equation sums and the ridge solve (solve.h).
 *
 * An exact sum is a fixed-point number of PSF_XSUM_DIGITS signed 64-bit digits,
 * digit k weighing 2^(32k + XSUM_LO). A double m·2^e (m an integer of 53 bits)
 * lands in at most three digits, each getting less than 2^32, so 2^30 additions
 * fit before the carries must be propagated (normalise). Integer addition is
 * associative: the totals do not depend on the order of the rows, nor on how
 * they are split over trainers. */
#include "lib/model/solve.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XSUM_LO (-320)
#define XSUM_NORM_EVERY (1u << 30)

/* LAPACK (OpenBLAS exports the Fortran symbols; trailing ints: hidden lengths). */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info,
    size_t uplo_len);
extern void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a,
    const int *lda, double *b, const int *ldb, int *info, size_t uplo_len);
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
    double *w, double *work, const int *lwork, int *info, size_t jobz_len, size_t uplo_len);

struct psf_normal {
	size_t d, dim, n_sums; /* dim = d + 2; n_sums = dim (dim + 1) / 2 */
	int64_t *dig;          /* n_sums × PSF_XSUM_DIGITS */
	uint32_t adds;         /* additions since the last normalisation */
};

/* tri: the index of (i, j), i <= j, in the upper triangle. */
static size_t
tri(size_t dim, size_t i, size_t j)
{
	return i * dim - i * (i - 1) / 2 + (j - i);
}

/* xsum_add adds v exactly to the digits at d. PSF_ERANGE: v not finite or too large. */
static psf_err
xsum_add(int64_t *d, double v)
{
	uint64_t bits;
	int64_t m;
	int e, pos;

	memcpy(&bits, &v, 8);
	int ex = (int)((bits >> 52) & 0x7ff);
	uint64_t mant = bits & ((1ull << 52) - 1);
	if (ex == 0x7ff)
		return PSF_ERANGE;
	if (ex == 0 && mant == 0)
		return PSF_OK;
	m = (int64_t)(ex == 0 ? mant : mant | (1ull << 52));
	e = (ex == 0 ? 1 : ex) - 1075;
	pos = e - XSUM_LO;
	if (pos < 0) { /* below 2^XSUM_LO: truncated, the same wherever it is added */
		if (pos <= -63)
			return PSF_OK;
		m >>= -pos;
		pos = 0;
	}
	if (bits >> 63)
		m = -m;
	size_t k = (size_t)pos / 32;
	if (k + 2 >= PSF_XSUM_DIGITS)
		return PSF_ERANGE;
	__int128 x = (__int128)m * ((__int128)1 << (pos % 32)); /* m may be negative */
	d[k] += (int64_t)(uint64_t)(x & 0xffffffff);
	d[k + 1] += (int64_t)(uint64_t)((x >> 32) & 0xffffffff);
	d[k + 2] += (int64_t)(x >> 64);
	return PSF_OK;
}

/* xsum_norm propagates carries: digits 0..N-2 in [0, 2^32), the top one signed.
 * PSF_ERANGE when the top digit outgrows its range. */
static psf_err
xsum_norm(int64_t *d)
{
	for (size_t k = 0; k + 1 < PSF_XSUM_DIGITS; k++) {
		int64_t c = d[k] >> 32; /* arithmetic: floor */
		d[k] -= c * ((int64_t)1 << 32);
		d[k + 1] += c;
	}
	int64_t top = d[PSF_XSUM_DIGITS - 1];
	return (top > INT32_MAX || top < INT32_MIN) ? PSF_ERANGE : PSF_OK;
}

/* xsum_value rounds normalised digits to a double, by one fixed sequence of
 * operations (the same bits on every node for the same digits). */
static double
xsum_value(const int64_t *src)
{
	int64_t d[PSF_XSUM_DIGITS];
	double sign = 1, v = 0;

	memcpy(d, src, sizeof(d));
	if (d[PSF_XSUM_DIGITS - 1] < 0) {
		for (size_t k = 0; k < PSF_XSUM_DIGITS; k++)
			d[k] = -d[k];
		(void)xsum_norm(d);
		sign = -1;
	}
	for (size_t k = PSF_XSUM_DIGITS; k-- > 0;)
		v += ldexp((double)d[k], (int)(32 * k) + XSUM_LO);
	return sign * v;
}

psf_err
psf_normal_new(size_t d, psf_normal **out)
{
	psf_normal *ne;

	if (out == NULL || d == 0 || d > 4096)
		return PSF_EINVAL;
	if ((ne = calloc(1, sizeof(*ne))) == NULL)
		return PSF_ENOMEM;
	ne->d = d;
	ne->dim = d + 2;
	ne->n_sums = ne->dim * (ne->dim + 1) / 2;
	if ((ne->dig = calloc(ne->n_sums * PSF_XSUM_DIGITS, sizeof(int64_t))) == NULL) {
		free(ne);
		return PSF_ENOMEM;
	}
	*out = ne;
	return PSF_OK;
}

void
psf_normal_free(psf_normal *ne)
{
	if (ne == NULL)
		return;
	free(ne->dig);
	free(ne);
}

static psf_err
normalise_all(psf_normal *ne)
{
	psf_err err = PSF_OK;

	for (size_t i = 0; i < ne->n_sums; i++)
		if (xsum_norm(ne->dig + i * PSF_XSUM_DIGITS) != PSF_OK)
			err = PSF_ERANGE;
	ne->adds = 0;
	return err;
}

/* add_z adds z zᵀ of one augmented row z (dim values) exactly. */
static psf_err
add_z(psf_normal *ne, const double *z)
{
	psf_err err;

	for (size_t j = 0; j < ne->dim; j++) /* each product must be addable */
		if (!isfinite(z[j]) || fabs(z[j]) > 0x1p80)
			return PSF_ERANGE;
	if (ne->adds >= XSUM_NORM_EVERY && (err = normalise_all(ne)) != PSF_OK)
		return err;
	for (size_t i = 0; i < ne->dim; i++)
		for (size_t j = i; j < ne->dim; j++)
			(void)xsum_add(ne->dig + tri(ne->dim, i, j) * PSF_XSUM_DIGITS, z[i] * z[j]);
	ne->adds++;
	return PSF_OK;
}

psf_err
psf_normal_add_rows(psf_normal *ne, const float *x, const double *y, size_t n)
{
	double z[4098];
	psf_err err;

	if (ne == NULL || (n > 0 && (x == NULL || y == NULL)))
		return PSF_EINVAL;
	for (size_t r = 0; r < n; r++) {
		z[0] = 1.0;
		for (size_t j = 0; j < ne->d; j++)
			z[1 + j] = (double)x[r * ne->d + j];
		z[ne->d + 1] = y[r];
		if ((err = add_z(ne, z)) != PSF_OK)
			return err;
	}
	return PSF_OK;
}

psf_err
psf_normal_add_rows_d(psf_normal *ne, const double *x, const double *y, size_t n)
{
	double z[4098];
	psf_err err;

	if (ne == NULL || (n > 0 && (x == NULL || y == NULL)))
		return PSF_EINVAL;
	for (size_t r = 0; r < n; r++) {
		z[0] = 1.0;
		memcpy(z + 1, x + r * ne->d, ne->d * sizeof(double));
		z[ne->d + 1] = y[r];
		if ((err = add_z(ne, z)) != PSF_OK)
			return err;
	}
	return PSF_OK;
}

size_t
psf_normal_wire_len(const psf_normal *ne)
{
	return ne->n_sums * PSF_XSUM_DIGITS;
}

psf_err
psf_normal_to_wire(psf_normal *ne, double *out)
{
	psf_err err = normalise_all(ne);

	for (size_t i = 0; i < psf_normal_wire_len(ne); i++)
		out[i] = (double)ne->dig[i];
	return err;
}

psf_err
psf_normal_from_wire(psf_normal *ne, const double *in)
{
	for (size_t i = 0; i < psf_normal_wire_len(ne); i++) {
		if (!(fabs(in[i]) < 0x1p52) || in[i] != floor(in[i]))
			return PSF_EINVAL;
		ne->dig[i] = (int64_t)in[i];
	}
	return normalise_all(ne);
}

psf_err
psf_normal_moments(psf_normal *ne, double *m)
{
	size_t dim = ne->dim;
	psf_err err = normalise_all(ne);

	if (err != PSF_OK)
		return err;
	for (size_t i = 0; i < dim; i++)
		for (size_t j = i; j < dim; j++) {
			double v = xsum_value(ne->dig + tri(dim, i, j) * PSF_XSUM_DIGITS);
			m[i * dim + j] = m[j * dim + i] = v;
		}
	return PSF_OK;
}

/* eigen_solve: w = pinv(A) c by A's eigendecomposition (A is overwritten by its
 * eigenvectors), dropping eigenvalues at or below tol·max; fills info. */
static psf_err
eigen_solve(size_t d, double *a, const double *c, double *w, psf_solve_info *info)
{
	int n = (int)d, lwork = -1, rc = 0;
	double q, *ev = malloc(d * sizeof(double)), *work = NULL;
	psf_err err = PSF_EINTERNAL;

	if (ev == NULL)
		return PSF_ENOMEM;
	dsyev_("V", "U", &n, a, &n, ev, &q, &lwork, &rc, 1, 1);
	lwork = rc == 0 ? (int)q : 0;
	if (rc != 0 || (work = malloc((size_t)lwork * sizeof(double))) == NULL)
		goto out;
	dsyev_("V", "U", &n, a, &n, ev, work, &lwork, &rc, 1, 1);
	if (rc != 0)
		goto out;
	/* ascending eigenvalues; column k of a (column-major) is eigenvector k */
	double max = fabs(ev[d - 1]) > 0 ? fabs(ev[d - 1]) : 1.0, tol = 1e-12 * max;
	info->rcond = ev[0] / max;
	info->rank = 0;
	memset(w, 0, d * sizeof(double));
	bool flag[4096] = {false};
	for (size_t k = 0; k < d; k++) {
		const double *v = a + k * d;
		if (ev[k] <= tol) {
			for (size_t j = 0; j < d; j++)
				if (fabs(v[j]) > 0.1)
					flag[j] = true;
			continue;
		}
		double dot = 0;
		for (size_t j = 0; j < d; j++)
			dot += v[j] * c[j];
		for (size_t j = 0; j < d; j++)
			w[j] += v[j] * dot / ev[k];
		info->rank++;
	}
	info->n_collinear = 0;
	for (size_t j = 0; j < d; j++)
		if (flag[j] && info->n_collinear < sizeof(info->collinear) / sizeof(size_t))
			info->collinear[info->n_collinear++] = j;
	err = PSF_OK;
out:
	free(ev);
	free(work);
	return err;
}

/* build_system fills a (d × d, column-major) with the standardised covariance of
 * the features plus l2/2 on the diagonal, and c with that of features and target. */
static void
build_system(size_t d, const double *m, const double *sd, double l2, double *a, double *c)
{
	size_t dim = d + 2, y = d + 1;
	double n = m[0];

	for (size_t j = 0; j < d; j++) {
		double mj = m[1 + j] / n;
		for (size_t k = 0; k < d; k++) {
			double mk = m[1 + k] / n;
			double cov = m[(1 + j) * dim + 1 + k] / n - mj * mk;
			a[k * d + j] = cov / (sd[j] * sd[k]) + (j == k ? 0.5 * l2 : 0.0);
		}
		c[j] = (m[(1 + j) * dim + y] / n - mj * (m[y] / n)) / (sd[j] * sd[d]);
	}
}

psf_err
psf_ridge_solve(size_t d, const double *m, const double *mean, const double *sd, double l2,
    double *w, double *b, psf_solve_info *info)
{
	size_t y = d + 1;
	psf_solve_info local;
	double *a, *a2, *c, *wc, n;
	psf_err err = PSF_OK;
	int nn = (int)d, one = 1, rc = 0;

	if (info == NULL)
		info = &local;
	memset(info, 0, sizeof(*info));
	if (d == 0 || d > 4096 || m == NULL || mean == NULL || sd == NULL || w == NULL ||
	    b == NULL || !(l2 >= 0) || !isfinite(l2))
		return PSF_EINVAL;
	n = m[0];
	if (!(n > 0))
		return PSF_EINVAL;
	for (size_t j = 0; j <= d; j++)
		if (!(sd[j] > 0) || !isfinite(sd[j]) || !isfinite(mean[j]))
			return PSF_EINVAL;
	a = malloc(d * d * sizeof(double));
	a2 = malloc(d * d * sizeof(double));
	c = malloc(d * sizeof(double));
	wc = malloc(d * sizeof(double));
	if (a == NULL || a2 == NULL || c == NULL || wc == NULL) {
		err = PSF_ENOMEM;
		goto out;
	}
	build_system(d, m, sd, l2, a, c);
	memcpy(a2, a, d * d * sizeof(double));
	/* rank and conditioning, and the min-norm solution for the singular case */
	if ((err = eigen_solve(d, a2, c, w, info)) != PSF_OK)
		goto out;
	info->singular = info->rank < d;
	if (!info->singular) { /* well conditioned: Cholesky */
		memcpy(wc, c, d * sizeof(double));
		dpotrf_("U", &nn, a, &nn, &rc, 1);
		if (rc == 0)
			dpotrs_("U", &nn, &one, a, &nn, wc, &nn, &rc, 1);
		if (rc == 0)
			memcpy(w, wc, d * sizeof(double));
		else /* not positive definite after all: keep the eigen solve */
			info->singular = true;
	}
	/* b: the standardised target's mean minus the standardised features' means */
	*b = (m[y] / n - mean[d]) / sd[d];
	for (size_t j = 0; j < d; j++)
		*b -= w[j] * (m[1 + j] / n - mean[j]) / sd[j];
out:
	free(a);
	free(a2);
	free(c);
	free(wc);
	return err;
}
