/* exact_ref.c -- an independent least-squares reference for exact_test.sh.
 *
 *   exact_ref CONFIG [WEIGHTS.dump...]
 *
 * Builds the config's feature table over ALL symbols (psfleet's own feature code
 * and date split), solves min |[1 X] β - y| on the train rows with LAPACK's
 * dgelsd on the design matrix in double (no normal equations, no sharding), and
 * prints the test RMSE of that optimum (ref_rmse) and of the naive forecast
 * (ref_naive). Given `mdb_dump -s weights` outputs of the ps nodes, it reads the
 * served float32 weights (standardised space: out.w, out.b) and prints their
 * largest difference from dgelsd's coefficients mapped to that space, relative
 * to the largest weight (max_rel_err), and the test RMSE of the served weights
 * evaluated here in double (served_rmse). Exit 0 unless an input
 * is unusable. With model.symbol_bias the reference is the fixed-effects fit (a
 * dummy column per symbol instead of the intercept), and only ref_rmse is
 * printed. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config/config.h"
#include "lib/data/data.h"
#include "lib/data/features.h"
#include "trainer/internal.h"

extern void dgelsd_(const int *m, const int *n, const int *nrhs, double *a, const int *lda,
    double *b, const int *ldb, double *s, const double *rcond, int *rank, double *work,
    const int *lwork, int *iwork, int *info);

static int
lstsq(int n, int k, double *a, double *y)
{
	int nrhs = 1, rank, lwork = -1, info, *iwork = malloc((size_t)(64 * k + 64) * sizeof(int));
	double rcond = -1, q, *s = malloc((size_t)k * sizeof(double)), *work = NULL;

	dgelsd_(&n, &k, &nrhs, a, &n, y, &n, s, &rcond, &rank, &q, &lwork, iwork, &info);
	if (info == 0) {
		lwork = (int)q;
		work = malloc((size_t)lwork * sizeof(double));
		dgelsd_(&n, &k, &nrhs, a, &n, y, &n, s, &rcond, &rank, work, &lwork, iwork, &info);
	}
	free(s);
	free(work);
	free(iwork);
	return info;
}

static int
hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* read_dump reads the out.w (tensor 1) and out.b (tensor 2) floats of one
 * mdb_dump output into w[0..d) and *b. Returns the number of keys read. */
static int
read_dump(const char *path, size_t d, uint32_t chunk, float *w, float *b)
{
	FILE *f = fopen(path, "r");
	char line[1 << 16];
	unsigned char key[8], val[sizeof(line) / 2];
	int keys = 0, is_key = 1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t n = 0;
		if (line[0] != ' ')
			continue;
		for (char *p = line + 1; hexval(p[0]) >= 0 && hexval(p[1]) >= 0; p += 2)
			val[n++] = (unsigned char)(hexval(p[0]) * 16 + hexval(p[1]));
		if (is_key) {
			memcpy(key, val, 8);
			is_key = 0;
			continue;
		}
		is_key = 1;
		uint64_t k = 0;
		for (int i = 0; i < 8; i++)
			k = k << 8 | key[i];
		uint64_t tensor = k >> 48, row = k & ((1ull << 48) - 1);
		for (size_t i = 0; i < n / 4; i++) {
			float v;
			memcpy(&v, val + 4 * i, 4);
			if (tensor == 1 && row * chunk + i < d)
				w[row * chunk + i] = v;
			else if (tensor == 2 && i == 0)
				*b = v;
		}
		keys++;
	}
	fclose(f);
	return keys;
}

int
main(int argc, char **argv)
{
	char errbuf[512];
	psf_config *cfg = NULL;
	psf_shard_plan plan;
	psf_dataset *ds = NULL;
	psf_table *t = NULL;

	if (argc < 2) {
		fprintf(stderr, "usage: exact_ref CONFIG [WEIGHTS.dump...]\n");
		return 2;
	}
	if (psf_config_load(argv[1], errbuf, sizeof(errbuf), &cfg) != PSF_OK ||
	    psf_trainer_plan(cfg, 0, &plan, errbuf, sizeof(errbuf)) != PSF_OK) {
		fprintf(stderr, "exact_ref: %s\n", errbuf);
		return 2;
	}
	psf_data_opts dopts = {.bad_rows = cfg->data.bad_rows};
	if (psf_data_load(cfg->data.path, &dopts, errbuf, sizeof(errbuf), &ds) != PSF_OK ||
	    psf_features_build(ds, cfg->features, cfg->n_features, cfg->target, plan.cutoff, errbuf,
	        sizeof(errbuf), &t) != PSF_OK) {
		fprintf(stderr, "exact_ref: %s\n", errbuf);
		return 2;
	}
	/* [1, x] or, with a per-symbol bias (fixed effects), [x, one dummy per symbol] */
	bool fe = cfg->model.symbol_bias != 0;
	size_t d = t->n_features, n = t->n_train, k = fe ? d + t->n_symbols : d + 1;
	double *a = calloc(n * k, sizeof(double)), *y = malloc(n * sizeof(double));
	for (size_t r = 0; r < n; r++) {
		if (fe)
			a[(d + t->sym[r]) * n + r] = 1.0;
		else
			a[r] = 1.0;
		for (size_t j = 0; j < d; j++)
			a[(fe ? j : j + 1) * n + r] = t->x[r * d + j];
		y[r] = t->y_raw[r];
	}
	if (lstsq((int)n, (int)k, a, y) != 0) {
		fprintf(stderr, "exact_ref: dgelsd failed\n");
		return 2;
	}
	if (fe) { /* back to the layout [intercept, x]: intercept = the row's symbol's */
		double *beta = malloc(k * sizeof(double));
		memcpy(beta, y, k * sizeof(double));
		memcpy(y + 1, beta, d * sizeof(double));
		y[0] = 0;
		for (size_t s = 0; s < t->n_symbols; s++)
			y[d + 1 + s] = beta[d + s];
		free(beta);
	}
	double sse = 0, nsse = 0;
	size_t nt = 0;
	for (size_t r = n; r < t->n_rows; r++, nt++) {
		double p = fe ? y[d + 1 + t->sym[r]] : y[0];
		for (size_t j = 0; j < d; j++)
			p += y[1 + j] * t->x[r * d + j];
		sse += (p - t->y_raw[r]) * (p - t->y_raw[r]);
		nsse += (t->naive[r] - t->y_raw[r]) * (t->naive[r] - t->y_raw[r]);
	}
	printf("ref_rows %zu %zu\nref_rmse %.10g\nref_naive %.10g\n", n, nt, sqrt(sse / nt),
	    sqrt(nsse / nt));
	if (argc > 2 && !fe) {
		double *stats = calloc(psf_features_stats_len(d), sizeof(double));
		float *w = calloc(d, sizeof(float)), b = NAN;
		double mean[64], sd[64], raw[65], err = 0, ssq = 0;
		int keys = 0;
		for (int i = 2; i < argc; i++) {
			int got = read_dump(argv[i], d, cfg->model.chunk_floats, w, &b);
			keys += got > 0 ? got : 0;
		}
		psf_features_stats(t, stats);
		for (size_t j = 0; j <= d && j < 64; j++)
			psf_features_moments(stats, j, &mean[j], &sd[j]);
		/* dgelsd's raw coefficients in the served (standardised) space */
		double wmax = 0, bref = (y[0] - mean[d]) / sd[d];
		for (size_t j = 0; j < d; j++) {
			double wref = y[1 + j] * sd[j] / sd[d];
			bref += wref * mean[j] / sd[j];
			wmax = fabs(wref) > wmax ? fabs(wref) : wmax;
		}
		for (size_t j = 0; j < d; j++) {
			double e = fabs((double)w[j] - y[1 + j] * sd[j] / sd[d]);
			err = e > err ? e : err;
		}
		err /= wmax;
		if (fabs((double)b - bref) > err) /* b is ~0: absolute, in target sds */
			err = fabs((double)b - bref);
		raw[0] = mean[d] + sd[d] * (double)b;
		for (size_t j = 0; j < d; j++) {
			raw[1 + j] = (double)w[j] * sd[d] / sd[j];
			raw[0] -= raw[1 + j] * mean[j];
		}
		for (size_t r = n; r < t->n_rows; r++) {
			double p = raw[0];
			for (size_t j = 0; j < d; j++)
				p += raw[1 + j] * t->x[r * d + j];
			ssq += (p - t->y_raw[r]) * (p - t->y_raw[r]);
		}
		printf("dump_keys %d\nmax_rel_err %.3g\nserved_rmse %.10g\n", keys, err,
		    sqrt(ssq / nt));
		free(stats);
		free(w);
	}
	free(a);
	free(y);
	psf_table_free(t);
	psf_dataset_free(ds);
	psf_shard_plan_fini(&plan);
	psf_config_free(cfg);
	return 0;
}
