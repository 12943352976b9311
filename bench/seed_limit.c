/* seed_limit -- the floor for the seed pipeline: one process that reads the CSV,
 * featurises it and solves the linear model in closed form (issue 17).
 *
 * usage: seed_limit CSV [--test-fraction F] [--exact]   the pipeline on CSV
 *        seed_limit --quick       both ways on 100 symbols x 1000 days generated
 *
 * With psfleet's own parts and nothing else: psf_data_load (lib/data, the mmap
 * parser), psf_features_build with examples/seed.yaml's features (lag:1, lag:5,
 * sma:10, std:20, lag:0) and target next_close, split at psf_data_cutoff_date;
 * the normal equations of the train rows summed in plain double (--exact:
 * psfleet's exact sums, psf_normal_add_rows, the arithmetic of `optimizer:
 * {kind: exact}`, slower) and solved by psf_ridge_solve (lib/model/solve.h,
 * l2 0): the least-squares optimum; then a prediction for every test row and
 * their RMSE. No threads, no RPC, no second process.
 * bench/seed_compare/run.sh times it next to psfleet and the seed's Dask +
 * XGBoost; this prints per-stage times (`limit_<stage>_seconds`), the cutoff,
 * the row counts and `limit_test_rmse` / `limit_naive_rmse`. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/data/data.h"
#include "lib/data/datagen.h"
#include "lib/data/features.h"
#include "lib/model/solve.h"

static const char *const feature_specs[] = {"lag:1", "lag:5", "sma:10", "std:20", "lag:0"};
#define N_FEAT (sizeof(feature_specs) / sizeof(feature_specs[0]))

static double
since(uint64_t t0)
{
	return (double)(psf_now_ns() - t0) / 1e9;
}

/* plain_moments sums z zᵀ, z = [1, x, y], over the n train rows into m (dim²,
 * the layout of psf_normal_moments) in plain double arithmetic: the cheapest
 * normal equations, the floor's. */
static void
plain_moments(const psf_table *t, double *m)
{
	size_t d = t->n_features, dim = d + 2;
	double z[N_FEAT + 2];

	memset(m, 0, dim * dim * sizeof(double));
	for (size_t r = 0; r < t->n_train; r++) {
		z[0] = 1;
		for (size_t j = 0; j < d; j++)
			z[1 + j] = t->x[r * d + j];
		z[d + 1] = t->y_raw[r];
		for (size_t i = 0; i < dim; i++)
			for (size_t k = i; k < dim; k++)
				m[i * dim + k] += z[i] * z[k];
	}
	for (size_t i = 0; i < dim; i++)
		for (size_t k = 0; k < i; k++)
			m[i * dim + k] = m[k * dim + i];
}

/* exact_moments is plain_moments through psfleet's exact sums (lib/model/solve.h),
 * the arithmetic of `optimizer: {kind: exact}`. */
static psf_err
exact_moments(const psf_table *t, double *m)
{
	psf_normal *ne = NULL;
	psf_err err = psf_normal_new(t->n_features, &ne);

	if (err == PSF_OK)
		err = psf_normal_add_rows(ne, t->x, t->y_raw, t->n_train);
	if (err == PSF_OK)
		err = psf_normal_moments(ne, m);
	psf_normal_free(ne);
	return err;
}

/* fit solves the least-squares problem of t's train rows into mean/sd (d + 1
 * each, the standardisation the trainers use), w (d) and b. */
static psf_err
fit(const psf_table *t, bool exact, double *mean, double *sd, double *w, double *b)
{
	size_t d = t->n_features, dim = d + 2;
	double stats[3 * (N_FEAT + 1)], m[(N_FEAT + 2) * (N_FEAT + 2)];
	psf_err err = PSF_OK;

	if (exact)
		err = exact_moments(t, m);
	else
		plain_moments(t, m);
	if (err != PSF_OK)
		return err;
	/* the trainers' statistics, from the same totals (trainer/exact.c) */
	for (size_t j = 0; j <= d; j++) {
		stats[3 * j] = m[1 + j];
		stats[3 * j + 1] = m[(1 + j) * dim + 1 + j];
		stats[3 * j + 2] = m[0];
	}
	for (size_t j = 0; j <= d; j++)
		psf_features_moments(stats, j, &mean[j], &sd[j]);
	return psf_ridge_solve(d, m, mean, sd, 0.0, w, b, NULL);
}

/* evaluate predicts every test row of t and writes the RMSE of the model and of
 * the naive forecast. */
static void
evaluate(const psf_table *t, const double *mean, const double *sd, const double *w, double b,
    double *rmse, double *naive_rmse)
{
	size_t d = t->n_features;
	double c = b, sse = 0, nsse = 0, a[N_FEAT];

	/* pred = mean_y + sd_y (b + Σ w_j (x_j - mean_j) / sd_j) = c' + Σ a_j x_j */
	for (size_t j = 0; j < d; j++) {
		a[j] = sd[d] * w[j] / sd[j];
		c -= w[j] * mean[j] / sd[j];
	}
	c = mean[d] + sd[d] * c;
	for (size_t r = t->n_train; r < t->n_rows; r++) {
		const float *x = t->x + r * d;
		double p = c, e, ne;
		for (size_t j = 0; j < d; j++)
			p += a[j] * (double)x[j];
		e = p - t->y_raw[r];
		ne = t->naive[r] - t->y_raw[r];
		sse += e * e;
		nsse += ne * ne;
	}
	*rmse = sqrt(sse / (double)(t->n_rows - t->n_train));
	*naive_rmse = sqrt(nsse / (double)(t->n_rows - t->n_train));
}

/* run is the whole pipeline on csv; 0 on success. */
static int
run(const char *csv, double test_fraction, bool exact)
{
	psf_feature_cfg feats[N_FEAT];
	double mean[N_FEAT + 1], sd[N_FEAT + 1], w[N_FEAT], b = 0, rmse = 0, naive = 0;
	double t_read, t_feat, t_solve, t_eval;
	char err[512], day[16];
	psf_dataset *ds = NULL;
	psf_data_index *idx = NULL;
	psf_table *t = NULL;
	const int32_t *dates;
	size_t n_dates;
	int32_t cutoff;
	uint64_t t_all = psf_now_ns(), t0;
	int rc = 1;

	for (size_t i = 0; i < N_FEAT; i++) {
		if (psf_feature_parse(feature_specs[i], &feats[i]) != PSF_OK) {
			fprintf(stderr, "seed_limit: bad feature %s\n", feature_specs[i]);
			return 1;
		}
	}
	t0 = psf_now_ns();
	if (psf_data_load(csv, NULL, err, sizeof(err), &ds) != PSF_OK) {
		fprintf(stderr, "seed_limit: %s\n", err);
		return 1;
	}
	t_read = since(t0);
	t0 = psf_now_ns();
	if (psf_data_index_from(ds, &idx) != PSF_OK) {
		fprintf(stderr, "seed_limit: out of memory\n");
		goto out;
	}
	dates = psf_data_index_dates(idx, &n_dates);
	if (psf_data_cutoff_date(dates, n_dates, test_fraction, &cutoff) != PSF_OK) {
		fprintf(stderr, "seed_limit: %s: fewer than 2 dates\n", csv);
		goto out;
	}
	if (psf_features_build(ds, feats, N_FEAT, PSF_TARGET_NEXT_CLOSE, cutoff, err, sizeof(err),
	        &t) != PSF_OK) {
		fprintf(stderr, "seed_limit: %s\n", err);
		goto out;
	}
	t_feat = since(t0);
	if (t->n_train == 0 || t->n_train == t->n_rows) {
		fprintf(stderr, "seed_limit: %s: no train or no test rows\n", csv);
		goto out;
	}
	t0 = psf_now_ns();
	if (fit(t, exact, mean, sd, w, &b) != PSF_OK) {
		fprintf(stderr, "seed_limit: the solve failed\n");
		goto out;
	}
	t_solve = since(t0);
	t0 = psf_now_ns();
	evaluate(t, mean, sd, w, b, &rmse, &naive);
	t_eval = since(t0);
	psf_date_format(cutoff, day);
	printf("limit_cutoff %s\n", day);
	printf("limit_sums %s\n", exact ? "exact" : "plain");
	printf("limit_rows %zu rows\n", psf_dataset_n_rows(ds));
	printf("limit_train_n %zu rows\n", t->n_train);
	printf("limit_test_n %zu rows\n", t->n_rows - t->n_train);
	printf("limit_read_seconds %.4f s\n", t_read);
	printf("limit_features_seconds %.4f s\n", t_feat);
	printf("limit_solve_seconds %.4f s\n", t_solve);
	printf("limit_predict_seconds %.4f s\n", t_eval);
	printf("limit_total_seconds %.4f s\n", since(t_all));
	printf("limit_test_rmse %.9g\n", rmse);
	printf("limit_naive_rmse %.9g\n", naive);
	rc = 0;
out:
	psf_table_free(t);
	psf_data_index_free(idx);
	psf_dataset_free(ds);
	return rc;
}

/* quick generates 100 symbols x 1000 days into a temp dir and runs on it. */
static int
quick(void)
{
	psf_datagen_cfg g = {.symbols = 100, .days = 1000, .seed = 7, .skew = 0};
	char dir[] = "/tmp/seed_limit.XXXXXX", path[64], err[256];
	int rc = 1;

	if (mkdtemp(dir) == NULL) {
		perror("seed_limit: mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/seed.csv", dir);
	if (psf_datagen_write(&g, path, err, sizeof(err)) != PSF_OK)
		fprintf(stderr, "seed_limit: %s\n", err);
	else
		rc = run(path, 0.2, false) || run(path, 0.2, true);
	unlink(path);
	rmdir(dir);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *csv = NULL;
	double frac = 0.2;
	bool exact = false;

	if (argc == 2 && strcmp(argv[1], "--quick") == 0)
		return quick();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--exact") == 0) {
			exact = true;
		} else if (strcmp(argv[i], "--test-fraction") == 0 && i + 1 < argc) {
			char *end;
			frac = strtod(argv[++i], &end);
			if (*end != '\0' || !(frac > 0 && frac < 1)) {
				fprintf(stderr, "seed_limit: --test-fraction must be in (0, 1)\n");
				return 2;
			}
		} else if (argv[i][0] != '-' && csv == NULL) {
			csv = argv[i];
		} else {
			csv = NULL;
			break;
		}
	}
	if (csv == NULL) {
		fprintf(stderr,
		    "usage: seed_limit CSV [--test-fraction F] [--exact] | "
		    "seed_limit --quick\n");
		return 2;
	}
	return run(csv, frac, exact);
}
