/* solve.h -- the exact solver of the linear model (optimizer kind "exact"):
 * order-independent sums of the normal equations and their ridge solve.
 *
 * Trainers add their rows into a psf_normal (the moment matrix of [1, x, y]),
 * all-reduce it through the ps and solve the same system on every node. The
 * sums are exact (a fixed-point superaccumulator, not a float sum), so the
 * totals, and so the weights, are the same bits however the rows are spread
 * over trainers and in whatever order the contributions are added; see
 * docs/models.md "Exact least squares". */
#ifndef PSF_MODEL_SOLVE_H
#define PSF_MODEL_SOLVE_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/base/err.h"

/* Digits (32 bits each) per exact sum: values are kept from 2^-320 (a smaller
 * addend is truncated there, the same way wherever it is added) up to about
 * 2^190 (a larger one, or a larger total, is PSF_ERANGE). */
#define PSF_XSUM_DIGITS 16

/* psf_normal: the exact sums of z zᵀ over rows, z = [1, x_1..x_d, y], i.e.
 * n, Σx, Σy, Σx xᵀ, Σx y and Σy² (the upper triangle of a (d+2)² matrix). */
typedef struct psf_normal psf_normal;

/* psf_normal_new makes empty sums for d features (1..4096). PSF_EINVAL, PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_normal_new(size_t d, psf_normal **out);

/* psf_normal_free frees ne. NULL is fine. */
void psf_normal_free(psf_normal *ne);

/* psf_normal_add_rows adds n rows: x row-major n × d floats, y n doubles. Every
 * product is formed in double and added exactly. PSF_ERANGE for a non-finite
 * or huge value (nothing of that row is added). */
PSF_NODISCARD psf_err psf_normal_add_rows(psf_normal *ne, const float *x, const double *y,
    size_t n);

/* psf_normal_add_rows_d is psf_normal_add_rows for double features (e.g. rows
 * centred on their symbol's means). */
PSF_NODISCARD psf_err psf_normal_add_rows_d(psf_normal *ne, const double *x, const double *y,
    size_t n);

/* psf_normal_wire_len is the number of doubles psf_normal_to_wire writes. */
size_t psf_normal_wire_len(const psf_normal *ne);

/* psf_normal_to_wire writes the sums as small integers held in doubles
 * (|v| < 2^32 each), so the element-wise double sum of up to 2^20 such vectors
 * (the ps's Reduce) is exact. PSF_ERANGE when a total overflowed. */
PSF_NODISCARD psf_err psf_normal_to_wire(psf_normal *ne, double *out);

/* psf_normal_from_wire replaces the sums by an element-wise sum of wire vectors.
 * PSF_EINVAL when a value is not an integer of the wire's range. */
PSF_NODISCARD psf_err psf_normal_from_wire(psf_normal *ne, const double *in);

/* psf_normal_moments writes the totals, each rounded to double the same way on
 * every node, as the full symmetric (d+2) × (d+2) matrix M (row-major): M[0][0]
 * = n, M[0][j] = Σx_j, M[j][k] = Σx_j x_k, index d+1 the target. */
PSF_NODISCARD psf_err psf_normal_moments(psf_normal *ne, double *m);

/* What psf_ridge_solve found out about the system. */
typedef struct psf_solve_info {
	size_t rank;        /* numerical rank of the (ridged) standardised system */
	bool singular;      /* the min-norm eigen solve was used instead of Cholesky */
	double rcond;       /* smallest / largest eigenvalue */
	size_t n_collinear; /* features in a near-null direction, listed in collinear[] */
	size_t collinear[64];
} psf_solve_info;

/* psf_ridge_solve minimises, over w (d) and b, the model's training loss in
 * standardised space:
 *   (1/n) Σ (b + Σ_j w_j (x_j − mean_j)/sd_j − (y − mean_y)/sd_y)² + ½·l2·|w|²
 * from the moments m (psf_normal_moments): (C̃ + l2/2 · I) w = c̃, with C̃ the
 * standardised covariance of x and c̃ that of x and y; b unpenalised. mean/sd
 * hold d + 1 entries (the last is the target's; 0 and 1 leave it raw).
 * The system is solved by Cholesky when well conditioned (smallest/largest
 * eigenvalue above 1e-12), else by its eigendecomposition with the min-norm
 * (pseudo-inverse) solution; info (may be NULL) says which and names the
 * features of the near-null directions. PSF_EINVAL: n = 0, a bad sd or l2;
 * PSF_EINTERNAL: LAPACK failed. */
PSF_NODISCARD psf_err psf_ridge_solve(size_t d, const double *m, const double *mean,
    const double *sd, double l2, double *w, double *b, psf_solve_info *info);

#endif
