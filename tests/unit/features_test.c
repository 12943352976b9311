/* features_test.c -- feature tables against reference values, split without
 * look-ahead, train-only statistics, standardisation, inference rows
 * (lib/data/features.h). Reference values come from tests/data/features_ref.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/data/data.h"
#include "lib/data/datagen.h"
#include "lib/data/features.h"

/* The feature list of tests/data/features_ref.py, in its order. */
static const char *const ref_features[] = {"lag:0", "lag:2", "return:1", "return:3", "sma:3",
    "std:4", "ratio_sma:3", "ewm:4", "range", "dow", "volume:3"};
#define N_REF PSF_ARRAY_LEN(ref_features)
#define REF_TEST_FRACTION 0.25

typedef struct fixture {
	char dir[64];
	char csv[128];
	psf_dataset *ds; /* synthetic: 30 symbols x 120 days, skewed */
	int32_t cutoff;
} fixture;

/* feat builds a feature from its spelling (the test's own parser). */
static psf_feature_cfg
feat(const char *spec)
{
	static const struct {
		const char *name;
		psf_feature_kind kind;
	} kinds[] = {{"lag", PSF_FEAT_LAG}, {"return", PSF_FEAT_RETURN}, {"sma", PSF_FEAT_SMA},
	    {"std", PSF_FEAT_STD}, {"ratio_sma", PSF_FEAT_RATIO_SMA}, {"ewm", PSF_FEAT_EWM},
	    {"range", PSF_FEAT_RANGE}, {"dow", PSF_FEAT_DOW}, {"volume", PSF_FEAT_VOLUME}};
	psf_feature_cfg f;
	const char *colon = strchr(spec, ':');
	size_t len = colon != NULL ? (size_t)(colon - spec) : strlen(spec);

	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "%s", spec);
	f.window = colon != NULL ? (uint32_t)atoi(colon + 1) : 0;
	f.kind = (psf_feature_kind)99;
	for (size_t i = 0; i < PSF_ARRAY_LEN(kinds); i++) {
		if (strlen(kinds[i].name) == len && strncmp(kinds[i].name, spec, len) == 0)
			f.kind = kinds[i].kind;
	}
	return f;
}

static void
feats_of(const char *const *specs, size_t n, psf_feature_cfg *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = feat(specs[i]);
}

static int32_t
cutoff_of(const char *path, double fraction)
{
	psf_data_index *idx = NULL;
	const int32_t *dates;
	int32_t cut = 0;
	size_t n;

	assert_int_equal(psf_data_scan(path, PSF_BAD_ROWS_FAIL, NULL, 0, &idx), PSF_OK);
	dates = psf_data_index_dates(idx, &n);
	assert_int_equal(psf_data_cutoff_date(dates, n, fraction, &cut), PSF_OK);
	psf_data_index_free(idx);
	return cut;
}

static int
setup(void **state)
{
	psf_datagen_cfg cfg = {.symbols = 30, .days = 120, .seed = 11, .skew = 1};
	fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/psf_features_test_XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->csv, sizeof(fx->csv), "%s/g.csv", fx->dir);
	if (psf_datagen_write(&cfg, fx->csv, NULL, 0) != PSF_OK ||
	    psf_data_load(fx->csv, NULL, NULL, 0, &fx->ds) != PSF_OK)
		return -1;
	fx->cutoff = cutoff_of(fx->csv, 0.2);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	fixture *fx = *state;
	psf_err rv = psf_rm_rf(fx->dir);

	psf_dataset_free(fx->ds);
	free(fx);
	return rv == PSF_OK ? 0 : -1;
}

/* data_path returns tests/data/<name>, found next to this source file. */
static void
data_path(const char *name, char *buf, size_t len)
{
	const char *slash = strrchr(__FILE__, '/');
	size_t dir = slash != NULL ? (size_t)(slash - __FILE__) : 0;

	/* __FILE__ is .../tests/unit/features_test.c */
	snprintf(buf, len, "%.*s/../data/%s", (int)dir, __FILE__, name);
}

/* One line of features_ref.csv. */
typedef struct ref_row {
	char symbol[16];
	int32_t date;
	int is_test;
	double x[N_REF];
	double target[3]; /* next_close, next_return, next_direction */
	double naive[3];
} ref_row;

static size_t
load_ref(ref_row *rows, size_t cap)
{
	char path[1024], *text = NULL, *save = NULL, *line;
	size_t n = 0;

	data_path("features_ref.csv", path, sizeof(path));
	assert_int_equal(psf_read_file(path, &text, NULL), PSF_OK);
	line = strtok_r(text, "\n", &save); /* header */
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		ref_row *r = &rows[n++];
		char *tok, *s2 = NULL;

		assert_true(n <= cap);
		snprintf(r->symbol, sizeof(r->symbol), "%s", strtok_r(line, ",", &s2));
		tok = strtok_r(NULL, ",", &s2);
		assert_int_equal(psf_date_parse(tok, strlen(tok), &r->date), PSF_OK);
		r->is_test = atoi(strtok_r(NULL, ",", &s2));
		for (size_t j = 0; j < N_REF; j++)
			r->x[j] = strtod(strtok_r(NULL, ",", &s2), NULL);
		for (int k = 0; k < 3; k++)
			r->target[k] = strtod(strtok_r(NULL, ",", &s2), NULL);
		for (int k = 0; k < 3; k++)
			r->naive[k] = strtod(strtok_r(NULL, ",", &s2), NULL);
	}
	free(text);
	return n;
}

static int
close_to(double got, double want, double rel)
{
	return fabs(got - want) <= rel * fmax(1.0, fabs(want));
}

/* find_row returns the table row of (symbol, date), or SIZE_MAX. */
static size_t
find_row(const psf_table *t, const char *symbol, int32_t date)
{
	for (size_t r = 0; r < t->n_rows; r++) {
		if (t->date[r] == date && strcmp(t->symbols[t->sym[r]], symbol) == 0)
			return r;
	}
	return SIZE_MAX;
}

static void
test_features_match_reference(void **state)
{
	psf_feature_cfg f[N_REF];
	ref_row ref[64];
	char path[1024], err[256] = "";
	size_t n_ref = load_ref(ref, PSF_ARRAY_LEN(ref));
	psf_dataset *ds = NULL;
	int32_t cut;

	(void)state;
	assert_int_equal(n_ref, 21);
	feats_of(ref_features, N_REF, f);
	data_path("ref_prices.csv", path, sizeof(path));
	assert_int_equal(psf_data_load(path, NULL, err, sizeof(err), &ds), PSF_OK);
	cut = cutoff_of(path, REF_TEST_FRACTION);
	for (int k = 0; k < 3; k++) {
		psf_table *t = NULL;
		size_t n_test = 0;

		assert_int_equal(
		    psf_features_build(ds, f, N_REF, (psf_target_kind)k, cut, err, sizeof(err), &t),
		    PSF_OK);
		assert_int_equal(t->n_rows, n_ref);
		assert_int_equal(t->n_features, N_REF);
		assert_int_equal((uintptr_t)t->x % PSF_TABLE_ALIGN, 0);
		for (size_t i = 0; i < n_ref; i++) {
			size_t r = find_row(t, ref[i].symbol, ref[i].date);

			assert_true(r != SIZE_MAX);
			assert_int_equal(r >= t->n_train, ref[i].is_test);
			n_test += (size_t)ref[i].is_test;
			for (size_t j = 0; j < N_REF; j++) {
				if (!close_to(t->x[r * N_REF + j], ref[i].x[j], 1e-6))
					fail_msg("%s %s row %zu: %.9g != %.9g", ref[i].symbol,
					    ref_features[j], i, (double)t->x[r * N_REF + j],
					    ref[i].x[j]);
			}
			assert_true(close_to(t->y_raw[r], ref[i].target[k], 1e-12));
			assert_true(close_to(t->y[r], ref[i].target[k], 1e-6));
			assert_true(close_to(t->naive[r], ref[i].naive[k], 1e-12));
			assert_true(t->close_t[r] == ref[i].x[0]); /* lag:0 */
		}
		assert_int_equal(t->n_rows - t->n_train, n_test);
		psf_table_free(t);
	}
	psf_dataset_free(ds);
}

/* copy_past copies rows [0, i] of s into buf (6 columns of 256) and makes row
 * i + 1 a poisoned "future" row, so reading past i changes the result. */
static void
copy_past(const psf_series *s, size_t i, psf_series *past, double buf[6][256])
{
	const double *src[5] = {s->close, s->open, s->high, s->low, s->volume};
	int32_t *dates = (int32_t *)buf[5];

	assert_true(i + 2 <= 256);
	for (int k = 0; k < 5; k++) {
		memcpy(buf[k], src[k], (i + 1) * sizeof(double));
		buf[k][i + 1] = 1e6;
	}
	memcpy(dates, s->date, (i + 1) * sizeof(int32_t));
	dates[i + 1] = dates[i] + 1;
	*past = *s;
	past->n = i + 1;
	past->close = buf[0];
	past->open = buf[1];
	past->high = buf[2];
	past->low = buf[3];
	past->volume = buf[4];
	past->date = dates;
}

static void
test_features_split_has_no_lookahead(void **state)
{
	static double buf[6][256];
	static const char *const specs[] = {"lag:0", "lag:1", "return:1", "sma:5", "std:5",
	    "ratio_sma:5", "ewm:10", "range", "dow", "volume:5"};
	fixture *fx = *state;
	psf_feature_cfg f[PSF_ARRAY_LEN(specs)];
	size_t nf = PSF_ARRAY_LEN(specs);
	psf_table *t = NULL;
	char err[256] = "";

	feats_of(specs, nf, f);
	assert_int_equal(psf_features_build(fx->ds, f, nf, PSF_TARGET_NEXT_CLOSE, fx->cutoff, err,
	                     sizeof(err), &t),
	    PSF_OK);
	assert_true(t->n_train > 0 && t->n_rows > t->n_train);
	for (size_t r = 0; r < t->n_rows; r++) {
		const psf_series *s = psf_dataset_series(fx->ds, t->sym[r]);
		size_t i = psf_series_index(s, t->date[r]);
		/* The series as it stood on that day: nothing after it exists. */
		float x[PSF_ARRAY_LEN(specs)];
		psf_series past;

		if (r < t->n_train)
			assert_true(t->date[r] < fx->cutoff);
		else
			assert_true(t->date[r] >= fx->cutoff);
		assert_int_equal(s->date[i], t->date[r]);
		assert_true(i + 1 < s->n);
		assert_true(t->y_raw[r] == s->close[i + 1]); /* the target is the next row */
		copy_past(s, i, &past, buf);
		assert_int_equal(psf_features_row(&past, f, nf, PSF_DATE_LAST, x, nf, NULL),
		    PSF_OK);
		assert_memory_equal(x, t->x + r * nf, sizeof(x));
	}
	psf_table_free(t);
}

/* Rows follow the documented order: train then test, each by symbol then date. */
static void
test_features_rows_ordered(void **state)
{
	fixture *fx = *state;
	psf_feature_cfg f[2] = {feat("lag:0"), feat("sma:3")};
	psf_table *t = NULL;

	assert_int_equal(
	    psf_features_build(fx->ds, f, 2, PSF_TARGET_NEXT_RETURN, fx->cutoff, NULL, 0, &t),
	    PSF_OK);
	for (size_t r = 1; r < t->n_rows; r++) {
		if (r == t->n_train)
			continue;
		assert_true(t->sym[r] > t->sym[r - 1] ||
		    (t->sym[r] == t->sym[r - 1] && t->date[r] > t->date[r - 1]));
	}
	psf_table_free(t);
}

static int
keep_parity(const char *symbol, void *arg)
{
	return (symbol[strlen(symbol) - 1] - '0') % 2 == *(int *)arg;
}

static void
test_features_stats_from_train_rows_only(void **state)
{
	fixture *fx = *state;
	psf_feature_cfg f[3] = {feat("lag:0"), feat("return:2"), feat("volume:3")};
	size_t len = psf_features_stats_len(3);
	double stats[12], sum[12], shard[12], all_sum = 0;
	psf_table *t = NULL;

	assert_int_equal(len, 12);
	assert_int_equal(
	    psf_features_build(fx->ds, f, 3, PSF_TARGET_NEXT_CLOSE, fx->cutoff, NULL, 0, &t),
	    PSF_OK);
	psf_features_stats(t, stats);
	memset(sum, 0, sizeof(sum));
	for (size_t r = 0; r < t->n_train; r++) {
		for (size_t j = 0; j <= 3; j++) {
			double v = j < 3 ? t->x[r * 3 + j] : t->y_raw[r];

			sum[3 * j] += v;
			sum[3 * j + 1] += v * v;
			sum[3 * j + 2] += 1;
		}
	}
	for (size_t r = 0; r < t->n_rows; r++)
		all_sum += t->x[r * 3];
	for (size_t k = 0; k < len; k++)
		assert_true(close_to(stats[k], sum[k], 1e-12));
	assert_true(stats[2] == (double)t->n_train);
	assert_false(close_to(stats[0], all_sum, 1e-9)); /* test rows left out */

	/* Two trainers' shards add up to the whole. */
	memset(sum, 0, sizeof(sum));
	for (int parity = 0; parity < 2; parity++) {
		psf_data_opts opts = {.keep = keep_parity, .keep_arg = &parity};
		psf_dataset *ds = NULL;
		psf_table *ts = NULL;

		assert_int_equal(psf_data_load(fx->csv, &opts, NULL, 0, &ds), PSF_OK);
		assert_true(psf_dataset_n_series(ds) < psf_dataset_n_series(fx->ds));
		assert_int_equal(
		    psf_features_build(ds, f, 3, PSF_TARGET_NEXT_CLOSE, fx->cutoff, NULL, 0, &ts),
		    PSF_OK);
		psf_features_stats(ts, shard);
		for (size_t k = 0; k < len; k++)
			sum[k] += shard[k];
		psf_table_free(ts);
		psf_dataset_free(ds);
	}
	for (size_t k = 0; k < len; k++)
		assert_true(close_to(sum[k], stats[k], 1e-9));
	psf_table_free(t);
}

static void
test_features_standardize_and_inverse(void **state)
{
	fixture *fx = *state;
	psf_feature_cfg f[3] = {feat("lag:0"), feat("std:10"), feat("dow")};
	double stats[12], zero[12];
	psf_table *t = NULL;
	float row[3] = {5, 6, 7};

	assert_int_equal(
	    psf_features_build(fx->ds, f, 3, PSF_TARGET_NEXT_CLOSE, fx->cutoff, NULL, 0, &t),
	    PSF_OK);
	psf_features_stats(t, stats);
	assert_int_equal(psf_features_standardize(t, stats, 11), PSF_EINVAL);
	assert_int_equal(psf_features_standardize(t, stats, 12), PSF_OK);
	assert_int_equal(psf_features_standardize(t, stats, 12), PSF_ESTATE);
	for (size_t j = 0; j <= 3; j++) {
		double s = 0, ss = 0;

		for (size_t r = 0; r < t->n_train; r++) {
			double v = j < 3 ? t->x[r * 3 + j] : t->y[r];

			s += v;
			ss += v * v;
		}
		assert_true(fabs(s / t->n_train) < 1e-4);
		assert_true(fabs(ss / t->n_train - 1) < 1e-3);
	}
	for (size_t r = 0; r < t->n_rows; r++) {
		double back =
		    psf_features_unstandardize_target(t->y[r], 3, PSF_TARGET_NEXT_CLOSE, stats);

		assert_true(close_to(back, t->y_raw[r], 1e-5));
	}
	/* A feature without spread (sd 0) is only centred; no statistics: unchanged. */
	memset(zero, 0, sizeof(zero));
	zero[0] = 10 * 4.0, zero[1] = 10 * 16.0, zero[2] = 10;
	psf_features_standardize_row(row, 3, zero);
	assert_true(row[0] == 1.0f && row[1] == 6.0f && row[2] == 7.0f);
	assert_true(
	    psf_features_unstandardize_target(0.5, 3, PSF_TARGET_NEXT_DIRECTION, stats) == 0.5);
	psf_table_free(t);

	/* The direction label stays 0/1. */
	assert_int_equal(
	    psf_features_build(fx->ds, f, 3, PSF_TARGET_NEXT_DIRECTION, fx->cutoff, NULL, 0, &t),
	    PSF_OK);
	psf_features_stats(t, stats);
	assert_int_equal(psf_features_standardize(t, stats, 12), PSF_OK);
	for (size_t r = 0; r < t->n_rows; r++)
		assert_true(t->y[r] == 0.0f || t->y[r] == 1.0f);
	psf_table_free(t);
}

static void
test_features_inference_row_equals_table_row(void **state)
{
	static const char *const specs[] = {"ewm:8", "lag:3", "return:5", "std:7", "range",
	    "volume:4", "ratio_sma:6", "dow"};
	fixture *fx = *state;
	size_t nf = PSF_ARRAY_LEN(specs), checked = 0;
	psf_feature_cfg f[PSF_ARRAY_LEN(specs)];
	float x[PSF_ARRAY_LEN(specs)];
	psf_table *t = NULL;
	int32_t used = 0;

	feats_of(specs, nf, f);
	assert_int_equal(
	    psf_features_build(fx->ds, f, nf, PSF_TARGET_NEXT_CLOSE, fx->cutoff, NULL, 0, &t),
	    PSF_OK);
	for (size_t r = 0; r < t->n_rows; r++) {
		const psf_series *s = psf_dataset_find(fx->ds, t->symbols[t->sym[r]]);

		assert_int_equal(psf_features_row(s, f, nf, t->date[r], x, nf, &used), PSF_OK);
		assert_int_equal(used, t->date[r]);
		assert_memory_equal(x, t->x + r * nf, sizeof(x));
		checked++;
	}
	assert_true(checked == t->n_rows && checked > 1000);
	psf_table_free(t);
}

static void
test_features_row_errors(void **state)
{
	fixture *fx = *state;
	psf_feature_cfg f[2] = {feat("sma:5"), feat("volume:2")};
	const psf_series *s = psf_dataset_series(fx->ds, 0);
	psf_series no_volume = *s;
	float x[2] = {-1, -1};
	int32_t used = 0;

	assert_int_equal(psf_features_row(s, f, 2, PSF_DATE_LAST, x, 2, &used), PSF_OK);
	assert_int_equal(used, s->date[s->n - 1]);
	x[0] = x[1] = -1;
	assert_int_equal(psf_features_row(s, f, 2, s->date[0] - 1, x, 2, NULL), PSF_ENOENT);
	assert_int_equal(psf_features_row(s, f, 2, s->date[3], x, 2, NULL), PSF_ERANGE);
	assert_int_equal(psf_features_row(s, f, 2, s->date[4], x, 1, NULL), PSF_EINVAL);
	no_volume.volume = NULL;
	assert_int_equal(psf_features_row(&no_volume, f, 2, PSF_DATE_LAST, x, 2, NULL), PSF_EINVAL);
	assert_int_equal(psf_features_row(NULL, f, 2, PSF_DATE_LAST, x, 2, NULL), PSF_EINVAL);
	assert_true(x[0] == -1 && x[1] == -1); /* untouched on failure */
	assert_int_equal(psf_features_row(s, f, 2, s->date[4], x, 2, NULL), PSF_OK);
}

static void
test_features_check_rejects_bad_lists(void **state)
{
	static const struct {
		const char *spec;
		unsigned cols;
		const char *why;
	} cases[] = {
	    {"std:1", 0xF, "needs a window of 2..10000 (sample sd)"},
	    {"sma:0", 0xF, "needs a window of 1..10000"},
	    {"return:0", 0xF, "needs a window of 1..10000"},
	    {"lag:10001", 0xF, "needs a window of 0..10000"},
	    {"range", PSF_COL_HIGH | PSF_COL_VOLUME, "needs the high and low columns"},
	    {"volume:5", PSF_COL_HIGH | PSF_COL_LOW, "needs the volume column"},
	    {"dow:3", 0xF, "takes no window"},
	    {"median:3", 0xF, "is not a known feature"},
	};
	fixture *fx = *state;
	char err[256];
	psf_table *t = NULL;
	psf_feature_cfg f;

	for (size_t i = 0; i < PSF_ARRAY_LEN(cases); i++) {
		f = feat(cases[i].spec);
		err[0] = '\0';
		assert_int_equal(psf_features_check(&f, 1, cases[i].cols, err, sizeof(err)),
		    PSF_EINVAL);
		assert_non_null(strstr(err, cases[i].spec));
		assert_non_null(strstr(err, cases[i].why));
	}
	f = feat("lag:0");
	assert_int_equal(psf_features_check(&f, 0, 0, err, sizeof(err)), PSF_EINVAL);
	assert_int_equal(psf_features_check(&f, 1, 0, err, sizeof(err)), PSF_OK);
	assert_int_equal(psf_features_history(&f, 1), 0);
	f = feat("ewm:12");
	assert_int_equal(psf_features_history(&f, 1), 11);
	/* The table builder checks columns against the data it was given. */
	{
		const char *specs[] = {"range"};
		char path[256];
		FILE *fp;
		psf_dataset *ds = NULL;

		snprintf(path, sizeof(path), "%s/closes.csv", fx->dir);
		fp = fopen(path, "w");
		assert_non_null(fp);
		fputs("date,symbol,close\n2024-01-02,A,1\n2024-01-03,A,2\n", fp);
		assert_int_equal(fclose(fp), 0);
		assert_int_equal(psf_data_load(path, NULL, NULL, 0, &ds), PSF_OK);
		feats_of(specs, 1, &f);
		assert_int_equal(
		    psf_features_build(ds, &f, 1, PSF_TARGET_NEXT_CLOSE, 0, err, sizeof(err), &t),
		    PSF_EINVAL);
		assert_null(t);
		assert_non_null(strstr(err, "needs the high and low columns"));
		psf_dataset_free(ds);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_features_match_reference),
	    cmocka_unit_test(test_features_split_has_no_lookahead),
	    cmocka_unit_test(test_features_rows_ordered),
	    cmocka_unit_test(test_features_stats_from_train_rows_only),
	    cmocka_unit_test(test_features_standardize_and_inverse),
	    cmocka_unit_test(test_features_inference_row_equals_table_row),
	    cmocka_unit_test(test_features_row_errors),
	    cmocka_unit_test(test_features_check_rejects_bad_lists),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
