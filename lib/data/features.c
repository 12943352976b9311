/* features.c -- feature tables, one inference row, standardisation (features.h).
 *
 * One function computes a feature value at row t (feat_value); the table
 * builder and psf_features_row both call it, so an inference row is bit-for-bit
 * the table's row. Rolling values are computed from their window directly
 * (O(window) per value, no running sums), so they depend on the window only and
 * not on how much history came before, which keeps an inferer with a short
 * history in step with training. ewm is a recursion over the whole series; the
 * builder keeps its column per series and the row path reruns it (ewm_run). */
#define _GNU_SOURCE
#include "lib/data/features.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WINDOW 10000u

/* ------------------------------------------------------------ checks */

static size_t
feat_history(const psf_feature_cfg *f)
{
	switch (f->kind) {
	case PSF_FEAT_LAG:
	case PSF_FEAT_RETURN: return f->window;
	case PSF_FEAT_SMA:
	case PSF_FEAT_STD:
	case PSF_FEAT_RATIO_SMA:
	case PSF_FEAT_EWM:
	case PSF_FEAT_VOLUME: return f->window > 0 ? f->window - 1 : 0;
	default: return 0;
	}
}

size_t
psf_features_history(const psf_feature_cfg *feats, size_t n_feats)
{
	size_t h = 0;

	for (size_t j = 0; feats != NULL && j < n_feats; j++)
		h = feat_history(&feats[j]) > h ? feat_history(&feats[j]) : h;
	return h;
}

static void errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/* check_one returns NULL when f is usable, else why not. */
static const char *
check_one(const psf_feature_cfg *f, unsigned columns)
{
	uint32_t w = f->window;

	switch (f->kind) {
	case PSF_FEAT_LAG: return w <= MAX_WINDOW ? NULL : "needs a window of 0..10000";
	case PSF_FEAT_RETURN:
	case PSF_FEAT_SMA:
	case PSF_FEAT_RATIO_SMA:
	case PSF_FEAT_EWM: return w >= 1 && w <= MAX_WINDOW ? NULL : "needs a window of 1..10000";
	case PSF_FEAT_STD:
		return w >= 2 && w <= MAX_WINDOW ? NULL : "needs a window of 2..10000 (sample sd)";
	case PSF_FEAT_VOLUME:
		if (w < 1 || w > MAX_WINDOW)
			return "needs a window of 1..10000";
		return columns & PSF_COL_VOLUME ? NULL : "needs the volume column";
	case PSF_FEAT_RANGE:
		if (w != 0)
			return "takes no window";
		return (columns & PSF_COL_HIGH) && (columns & PSF_COL_LOW)
		    ? NULL
		    : "needs the high and low columns";
	case PSF_FEAT_DOW: return w == 0 ? NULL : "takes no window";
	default: return "is not a known feature";
	}
}

psf_err
psf_features_check(const psf_feature_cfg *feats, size_t n_feats, unsigned columns, char *errbuf,
    size_t errlen)
{
	if (feats == NULL || n_feats == 0) {
		errf(errbuf, errlen, "features: at least one feature is needed");
		return PSF_EINVAL;
	}
	for (size_t j = 0; j < n_feats; j++) {
		const char *why = check_one(&feats[j], columns);

		if (why != NULL) {
			errf(errbuf, errlen, "feature '%.*s' (kind %d, window %u) %s",
			    (int)strnlen(feats[j].name, sizeof(feats[j].name)), feats[j].name,
			    (int)feats[j].kind, feats[j].window, why);
			return PSF_EINVAL;
		}
	}
	return PSF_OK;
}

/* ------------------------------------------------------------ values */

static double
window_mean(const double *x, size_t t, uint32_t w)
{
	double s = 0;

	for (size_t i = t + 1 - w; i <= t; i++)
		s += x[i];
	return s / w;
}

static double
window_std(const double *x, size_t t, uint32_t w)
{
	double m = window_mean(x, t, w), ss = 0;

	for (size_t i = t + 1 - w; i <= t; i++)
		ss += (x[i] - m) * (x[i] - m);
	return sqrt(ss / (w - 1));
}

/* Missing (NaN) or non-positive volume makes the mean non-finite: row dropped. */
static double
window_logmean(const double *v, size_t t, uint32_t w)
{
	double s = 0;

	for (size_t i = t + 1 - w; i <= t; i++)
		s += v[i] > 0 ? log(v[i]) : NAN;
	return s / w;
}

/* ewm_run runs pandas' adjust=True recursion over x[0..t] and returns the value
 * at t; col (may be NULL) gets every value. Not inlined, so both callers run the
 * very same instructions. */
__attribute__((noinline)) static double
ewm_run(const double *x, size_t t, uint32_t span, double *col)
{
	double b = 1.0 - 2.0 / (span + 1.0), num = 0, den = 0, v = NAN;

	for (size_t i = 0; i <= t; i++) {
		num = x[i] + b * num;
		den = 1.0 + b * den;
		v = num / den;
		if (col != NULL)
			col[i] = v;
	}
	return v;
}

/* feat_value computes feature f at row t >= its history. ewm_col, when not
 * NULL, holds ewm_run's column for this feature. */
static double
feat_value(const psf_series *s, const psf_feature_cfg *f, size_t t, const double *ewm_col)
{
	const double *c = s->close;
	uint32_t w = f->window;

	switch (f->kind) {
	case PSF_FEAT_LAG: return c[t - w];
	case PSF_FEAT_RETURN: return c[t] / c[t - w] - 1.0;
	case PSF_FEAT_SMA: return window_mean(c, t, w);
	case PSF_FEAT_STD: return window_std(c, t, w);
	case PSF_FEAT_RATIO_SMA: return c[t] / window_mean(c, t, w);
	case PSF_FEAT_EWM: return ewm_col != NULL ? ewm_col[t] : ewm_run(c, t, w, NULL);
	case PSF_FEAT_RANGE: return (s->high[t] - s->low[t]) / c[t];
	case PSF_FEAT_DOW: return psf_date_dow(s->date[t]);
	case PSF_FEAT_VOLUME: return window_logmean(s->volume, t, w);
	default: return NAN;
	}
}

/* row_values fills x[0..n) for row t; returns 0 when a value is not finite. */
static int
row_values(const psf_series *s, const psf_feature_cfg *feats, size_t n, size_t t,
    double *const *ewm_cols, float *x)
{
	for (size_t j = 0; j < n; j++) {
		double v = feat_value(s, &feats[j], t, ewm_cols != NULL ? ewm_cols[j] : NULL);

		x[j] = (float)v;
		if (!isfinite(x[j]))
			return 0;
	}
	return 1;
}

static double
target_value(const double *c, size_t t, psf_target_kind target)
{
	double r = c[t + 1] / c[t] - 1.0;

	switch (target) {
	case PSF_TARGET_NEXT_CLOSE: return c[t + 1];
	case PSF_TARGET_NEXT_RETURN: return r;
	default: return r > 0 ? 1.0 : 0.0;
	}
}

static double
naive_value(const double *c, size_t t, psf_target_kind target)
{
	switch (target) {
	case PSF_TARGET_NEXT_CLOSE: return c[t];
	case PSF_TARGET_NEXT_RETURN: return 0.0;
	default: return t > 0 && c[t] / c[t - 1] - 1.0 > 0 ? 1.0 : 0.0;
	}
}

/* ------------------------------------------------------------- table */

void
psf_table_free(psf_table *t)
{
	if (t == NULL)
		return;
	free(t->x);
	free(t->y);
	free(t->y_raw);
	free(t->naive);
	free(t->close_t);
	free(t->date);
	free(t->sym);
	for (size_t i = 0; t->symbols != NULL && i < t->n_symbols; i++)
		free(t->symbols[i]);
	free(t->symbols);
	free(t);
}

static psf_err
table_alloc(const psf_dataset *ds, size_t n_feats, size_t cap, psf_table **out)
{
	psf_table *t = calloc(1, sizeof(*t));
	size_t xbytes = (cap + 1) * n_feats * sizeof(float);
	psf_err rv = PSF_ENOMEM;

	if (t == NULL)
		return PSF_ENOMEM;
	t->n_features = n_feats;
	t->n_symbols = psf_dataset_n_series(ds);
	xbytes = (xbytes + PSF_TABLE_ALIGN - 1) / PSF_TABLE_ALIGN * PSF_TABLE_ALIGN;
	t->x = aligned_alloc(PSF_TABLE_ALIGN, xbytes);
	t->y = malloc((cap + 1) * sizeof(*t->y));
	t->y_raw = malloc((cap + 1) * sizeof(*t->y_raw));
	t->naive = malloc((cap + 1) * sizeof(*t->naive));
	t->close_t = malloc((cap + 1) * sizeof(*t->close_t));
	t->date = malloc((cap + 1) * sizeof(*t->date));
	t->sym = malloc((cap + 1) * sizeof(*t->sym));
	t->symbols = calloc(t->n_symbols + 1, sizeof(*t->symbols));
	if (t->x == NULL || t->y == NULL || t->y_raw == NULL || t->naive == NULL ||
	    t->close_t == NULL || t->date == NULL || t->sym == NULL || t->symbols == NULL)
		goto out;
	for (size_t i = 0; i < t->n_symbols; i++) {
		if ((t->symbols[i] = strdup(psf_dataset_series(ds, i)->symbol)) == NULL)
			goto out;
	}
	*out = t;
	t = NULL;
	rv = PSF_OK;
out:
	psf_table_free(t);
	return rv;
}

/* bounds counts candidate rows (enough history, a next day) on each side of
 * the cutoff, before dropping rows with non-finite values. */
static void
bounds(const psf_dataset *ds, size_t hist, int32_t cutoff, size_t *n_train, size_t *n_test)
{
	*n_train = *n_test = 0;
	for (size_t i = 0; i < psf_dataset_n_series(ds); i++) {
		const psf_series *s = psf_dataset_series(ds, i);

		for (size_t t = hist; t + 1 < s->n; t++) {
			if (s->date[t] < cutoff)
				(*n_train)++;
			else
				(*n_test)++;
		}
	}
}

/* Per-build scratch: where the next train and test rows go, and ewm columns. */
typedef struct fill_ctx {
	const psf_feature_cfg *feats;
	size_t n_feats;
	size_t hist;
	int32_t cutoff;
	size_t next[2]; /* [0] train cursor, [1] test cursor */
	double **ewm;   /* per feature: a column buffer, or NULL */
} fill_ctx;

static void
fill_series(psf_table *tb, fill_ctx *fc, const psf_series *s, uint32_t sym)
{
	for (size_t j = 0; j < fc->n_feats; j++) {
		if (fc->ewm[j] != NULL && s->n > 0)
			ewm_run(s->close, s->n - 1, fc->feats[j].window, fc->ewm[j]);
	}
	for (size_t t = fc->hist; t + 1 < s->n; t++) {
		int is_test = s->date[t] >= fc->cutoff;
		size_t r = fc->next[is_test];

		if (!row_values(s, fc->feats, fc->n_feats, t, fc->ewm, tb->x + r * fc->n_feats))
			continue;
		tb->y_raw[r] = target_value(s->close, t, tb->target);
		tb->y[r] = (float)tb->y_raw[r];
		tb->naive[r] = naive_value(s->close, t, tb->target);
		tb->close_t[r] = s->close[t];
		tb->date[r] = s->date[t];
		tb->sym[r] = sym;
		fc->next[is_test]++;
	}
}

/* compact moves the test rows [from, from + n) down to start at n_train. */
static void
compact(psf_table *tb, size_t from, size_t n)
{
	size_t to = tb->n_train;

	if (from == to || n == 0)
		return;
	memmove(tb->x + to * tb->n_features, tb->x + from * tb->n_features,
	    n * tb->n_features * sizeof(float));
	memmove(tb->y + to, tb->y + from, n * sizeof(*tb->y));
	memmove(tb->y_raw + to, tb->y_raw + from, n * sizeof(*tb->y_raw));
	memmove(tb->naive + to, tb->naive + from, n * sizeof(*tb->naive));
	memmove(tb->close_t + to, tb->close_t + from, n * sizeof(*tb->close_t));
	memmove(tb->date + to, tb->date + from, n * sizeof(*tb->date));
	memmove(tb->sym + to, tb->sym + from, n * sizeof(*tb->sym));
}

static psf_err
ewm_alloc(const psf_dataset *ds, const psf_feature_cfg *feats, size_t n, double ***out)
{
	size_t longest = 1;
	double **ewm = calloc(n, sizeof(*ewm));

	if (ewm == NULL)
		return PSF_ENOMEM;
	for (size_t i = 0; i < psf_dataset_n_series(ds); i++)
		longest =
		    psf_dataset_series(ds, i)->n > longest ? psf_dataset_series(ds, i)->n : longest;
	for (size_t j = 0; j < n; j++) {
		if (feats[j].kind == PSF_FEAT_EWM &&
		    (ewm[j] = malloc(longest * sizeof(double))) == NULL) {
			for (size_t k = 0; k < j; k++)
				free(ewm[k]);
			free(ewm);
			return PSF_ENOMEM;
		}
	}
	*out = ewm;
	return PSF_OK;
}

psf_err
psf_features_build(const psf_dataset *ds, const psf_feature_cfg *feats, size_t n_feats,
    psf_target_kind target, int32_t cutoff, char *errbuf, size_t errlen, psf_table **out)
{
	fill_ctx fc = {.feats = feats, .n_feats = n_feats, .cutoff = cutoff};
	psf_table *tb = NULL;
	size_t n_train, n_test;
	psf_err rv;

	if (ds == NULL || out == NULL || (unsigned)target > PSF_TARGET_NEXT_DIRECTION) {
		errf(errbuf, errlen, "features: no dataset or an unknown target");
		return PSF_EINVAL;
	}
	if ((rv = psf_features_check(feats, n_feats, psf_dataset_columns(ds), errbuf, errlen)) !=
	    PSF_OK)
		return rv;
	fc.hist = psf_features_history(feats, n_feats);
	bounds(ds, fc.hist, cutoff, &n_train, &n_test);
	if ((rv = table_alloc(ds, n_feats, n_train + n_test, &tb)) != PSF_OK ||
	    (rv = ewm_alloc(ds, feats, n_feats, &fc.ewm)) != PSF_OK) {
		errf(errbuf, errlen, "features: out of memory");
		psf_table_free(tb);
		return rv;
	}
	tb->target = target;
	tb->cutoff = cutoff;
	fc.next[1] = n_train;
	for (size_t i = 0; i < psf_dataset_n_series(ds); i++)
		fill_series(tb, &fc, psf_dataset_series(ds, i), (uint32_t)i);
	tb->n_train = fc.next[0];
	compact(tb, n_train, fc.next[1] - n_train);
	tb->n_rows = tb->n_train + (fc.next[1] - n_train);
	for (size_t j = 0; j < n_feats; j++)
		free(fc.ewm[j]);
	free(fc.ewm);
	*out = tb;
	return PSF_OK;
}

psf_err
psf_features_row(const psf_series *s, const psf_feature_cfg *feats, size_t n_feats, int32_t date,
    float *x, size_t n_x, int32_t *row_date)
{
	unsigned cols = 0;
	float *tmp;
	size_t t;

	if (s == NULL || s->date == NULL || s->close == NULL || x == NULL || n_x < n_feats)
		return PSF_EINVAL;
	cols |= s->high != NULL && s->low != NULL ? PSF_COL_HIGH | PSF_COL_LOW : 0;
	cols |= s->volume != NULL ? PSF_COL_VOLUME : 0;
	if (psf_features_check(feats, n_feats, cols, NULL, 0) != PSF_OK)
		return PSF_EINVAL;
	if (s->n == 0 || (t = psf_series_index(s, date)) == SIZE_MAX)
		return PSF_ENOENT;
	if (t < psf_features_history(feats, n_feats))
		return PSF_ERANGE;
	if ((tmp = malloc(n_feats * sizeof(*tmp))) == NULL)
		return PSF_ENOMEM;
	if (!row_values(s, feats, n_feats, t, NULL, tmp)) {
		free(tmp);
		return PSF_EINVAL;
	}
	memcpy(x, tmp, n_feats * sizeof(*tmp));
	free(tmp);
	if (row_date != NULL)
		*row_date = s->date[t];
	return PSF_OK;
}

psf_err
psf_features_window(const psf_series *s, const psf_feature_cfg *feats, size_t n_feats, int32_t date,
    size_t window, float *x, size_t n_x, int32_t *row_date)
{
	size_t t;
	psf_err err;

	if (s == NULL || s->date == NULL || x == NULL || window == 0 || n_x / window < n_feats)
		return PSF_EINVAL;
	if (s->n == 0 || (t = psf_series_index(s, date)) == SIZE_MAX)
		return PSF_ENOENT;
	if (t < psf_features_history(feats, n_feats) + window - 1)
		return PSF_ERANGE;
	for (size_t k = 0; k < window; k++) {
		err = psf_features_row(s, feats, n_feats, s->date[t + 1 - window + k],
		    x + k * n_feats, n_feats, NULL);
		if (err != PSF_OK)
			return err;
	}
	if (row_date != NULL)
		*row_date = s->date[t];
	return PSF_OK;
}

/* ----------------------------------------------------- standardising */

size_t
psf_features_stats_len(size_t n_features)
{
	return 3 * (n_features + 1);
}

void
psf_features_stats(const psf_table *t, double *stats)
{
	size_t nf = t->n_features;

	memset(stats, 0, psf_features_stats_len(nf) * sizeof(*stats));
	for (size_t r = 0; r < t->n_train; r++) {
		const float *x = t->x + r * nf;

		for (size_t j = 0; j <= nf; j++) {
			double v = j < nf ? (double)x[j] : t->y_raw[r];

			stats[3 * j] += v;
			stats[3 * j + 1] += v * v;
			stats[3 * j + 2] += 1;
		}
	}
}

/* moments turns slot j of stats into a mean and a sd usable as a divisor. */
static void
moments(const double *stats, size_t j, double *mean, double *sd)
{
	double n = stats[3 * j + 2], var;

	*mean = 0;
	*sd = 1;
	if (!(n > 0))
		return;
	*mean = stats[3 * j] / n;
	var = stats[3 * j + 1] / n - *mean * *mean;
	if (var > 0 && isfinite(var) && sqrt(var) > 1e-6 * fabs(*mean))
		*sd = sqrt(var);
}

void
psf_features_moments(const double *stats, size_t j, double *mean, double *sd)
{
	moments(stats, j, mean, sd);
}

void
psf_features_standardize_row(float *x, size_t n_features, const double *stats)
{
	for (size_t j = 0; j < n_features; j++) {
		double m, sd;

		moments(stats, j, &m, &sd);
		x[j] = (float)(((double)x[j] - m) / sd);
	}
}

psf_err
psf_features_standardize(psf_table *t, const double *stats, size_t len)
{
	double m, sd;

	if (t == NULL || stats == NULL || len != psf_features_stats_len(t->n_features))
		return PSF_EINVAL;
	if (t->is_standardized)
		return PSF_ESTATE;
	for (size_t r = 0; r < t->n_rows; r++)
		psf_features_standardize_row(t->x + r * t->n_features, t->n_features, stats);
	if (t->target != PSF_TARGET_NEXT_DIRECTION) {
		moments(stats, t->n_features, &m, &sd);
		for (size_t r = 0; r < t->n_rows; r++)
			t->y[r] = (float)((t->y_raw[r] - m) / sd);
	}
	t->is_standardized = 1;
	return PSF_OK;
}

double
psf_features_unstandardize_target(double z, size_t n_features, psf_target_kind target,
    const double *stats)
{
	double m, sd;

	if (target == PSF_TARGET_NEXT_DIRECTION)
		return z;
	moments(stats, n_features, &m, &sd);
	return z * sd + m;
}
