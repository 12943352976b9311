/* features.h -- feature engineering, train/test split and standardisation,
 * shared by trainer (tables) and inferer (one row) (DESIGN.md §7, docs/data.md).
 *
 * Features are computed per symbol in date order, on the series as given: a gap
 * in dates is just the next row (pandas semantics on the per-symbol frame). With
 * close = c, at row t:
 *   lag:N        c[t-N]                              (needs N earlier rows)
 *   return:N     c[t] / c[t-N] - 1, N >= 1           (N earlier rows)
 *   sma:N        mean of c[t-N+1 .. t], N >= 1       (N-1 earlier rows)
 *   std:N        sample sd (ddof=1) of the same, N >= 2
 *   ratio_sma:N  c[t] / sma:N
 *   ewm:N        pandas ewm(span=N, adjust=True).mean() over the whole series
 *                so far, N >= 1; rows before the N-th are dropped (warm-up)
 *   range        (high[t] - low[t]) / c[t]           (needs high and low)
 *   dow          day of week of date[t], 0 = Monday
 *   volume:N     mean of log(volume) over N rows, N >= 1 (needs volume)
 * Every value at t uses only rows <= t; rolling values depend only on their
 * window (ewm on the whole history). A row whose value is not finite (a missing
 * or non-positive volume, a missing high or low) is dropped, like dropna().
 *
 * Targets at row t (the next row, t + 1, must exist):
 *   next_close      c[t+1]                 naive forecast c[t]
 *   next_return     c[t+1] / c[t] - 1      naive forecast 0 (price unchanged)
 *   next_direction  1 if next_return > 0   naive forecast 1 if c[t] > c[t-1]
 *                   else 0                 (0 on a series' first row)
 *
 * Split: a row is a test row iff date[t] >= the cutoff (data.h,
 * psf_data_cutoff_date). Features use rows <= t and the target row t + 1, so
 * nothing after a train row's next day reaches training.
 *
 * Everything here is thread-safe: no shared state; a table may be read by many
 * threads, and written (standardised) by one while nobody reads it. */
#ifndef PSF_FEATURES_H
#define PSF_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/config/config.h"
#include "lib/data/data.h"

/* Alignment of psf_table.x, in bytes. */
#define PSF_TABLE_ALIGN 64

/* A training table: rows of (features, target) over some series. Rows
 * [0, n_train) are train rows (date < cutoff) and [n_train, n_rows) test rows
 * (date >= cutoff), each part ordered by symbol index then date. Made by
 * psf_features_build, freed by psf_table_free; fields are read-only for callers
 * except through psf_features_standardize. */
typedef struct psf_table {
	size_t n_rows;
	size_t n_train;
	size_t n_features;
	psf_target_kind target;
	int32_t cutoff;
	int is_standardized;
	float *x;        /* n_rows * n_features, row-major, PSF_TABLE_ALIGN-aligned */
	float *y;        /* label: the target, standardised (regression) after
	                  * psf_features_standardize; 0/1 for next_direction */
	double *y_raw;   /* the target in its own units, never standardised */
	double *naive;   /* the naive forecast of the target (see above) */
	double *close_t; /* c[t], the close the prediction is made from */
	int32_t *date;   /* date[t] */
	uint32_t *sym;   /* index into symbols */
	char **symbols;  /* the dataset's symbols (copies), n_symbols of them */
	size_t n_symbols;
} psf_table;

/* psf_features_check validates a feature list against the optional columns
 * present (PSF_COL_* bits, data.h): windows in range (lag:N N <= 10000, others
 * 1..10000, std >= 2, range/dow take none), range needs high and low, volume:N
 * needs volume, at least one feature. Returns PSF_OK or PSF_EINVAL with one line
 * in errbuf (may be NULL), e.g. "feature 'range' needs the high and low columns". */
PSF_NODISCARD psf_err psf_features_check(const psf_feature_cfg *feats, size_t n_feats,
    unsigned columns, char *errbuf, size_t errlen);

/* psf_features_history returns how many earlier rows the features need: a row
 * t < this value has no feature row. Unchecked features give their nominal
 * value. Cannot fail. */
size_t psf_features_history(const psf_feature_cfg *feats, size_t n_feats);

/* psf_features_build computes the table of every series in ds for the given
 * features and target, split at cutoff. On success *out gets a new table the
 * caller frees with psf_table_free. Returns PSF_EINVAL (bad feature list, see
 * psf_features_check, or unknown target; one line in errbuf) or PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_features_build(const psf_dataset *ds, const psf_feature_cfg *feats,
    size_t n_feats, psf_target_kind target, int32_t cutoff, char *errbuf, size_t errlen,
    psf_table **out);

/* psf_table_free releases a table. NULL is fine. */
void psf_table_free(psf_table *t);

/* psf_features_row computes the feature vector of series s at its last row
 * dated <= date (PSF_DATE_LAST: its last row), with no target, by the same code
 * as psf_features_build: for a row that is in a table, x equals that table row
 * (before standardisation). x has room for n_x >= n_feats floats. *row_date
 * (may be NULL) gets the date of the row used. Absent columns may be NULL.
 * Returns PSF_OK; PSF_EINVAL (bad features or arguments, a needed column is
 * NULL, or a value is not finite, e.g. missing volume); PSF_ENOENT (no row
 * dated <= date); PSF_ERANGE (too little history before that row).
 * On failure x is untouched. */
PSF_NODISCARD psf_err psf_features_row(const psf_series *s, const psf_feature_cfg *feats,
    size_t n_feats, int32_t date, float *x, size_t n_x, int32_t *row_date);

/* psf_features_window computes the feature vectors of the `window` (>= 1) rows
 * of s ending at its last row dated <= date, oldest first, into x
 * (window * n_feats floats; n_x >= that): the input of a gru/lstm model
 * (lib/model/model.h), each vector as psf_features_row gives it. *row_date (may
 * be NULL) gets the date of the last one. Errors as psf_features_row;
 * PSF_ERANGE when the row has fewer than history + window - 1 earlier rows
 * (history: psf_features_history). On failure x is unspecified. */
PSF_NODISCARD psf_err psf_features_window(const psf_series *s, const psf_feature_cfg *feats,
    size_t n_feats, int32_t date, size_t window, float *x, size_t n_x, int32_t *row_date);

/* psf_features_stats_len returns the length of a statistics vector:
 * 3 * (n_features + 1). Entry 3j, 3j+1, 3j+2 hold the sum, the sum of squares
 * and the count of feature j; j = n_features is the target (raw units). */
size_t psf_features_stats_len(size_t n_features);

/* psf_features_stats writes the statistics of t's train rows (only) into stats
 * (psf_features_stats_len(t->n_features) doubles). Call it before
 * psf_features_standardize (the features are read from x; the target from
 * y_raw). Vectors of several tables (trainers) add up element-wise into the
 * statistics of their union. Cannot fail. */
void psf_features_stats(const psf_table *t, double *stats);

/* psf_features_standardize maps every row's features (train and test) to
 * (x - mean) / sd, with mean and population sd from stats, and the label y the
 * same way for next_close and next_return (not next_direction). A sd of 0, or
 * below 1e-6 of |mean|, counts as 1; a count of 0 as mean 0, sd 1. y_raw is kept.
 * Returns PSF_OK, PSF_EINVAL (len != psf_features_stats_len(t->n_features)) or
 * PSF_ESTATE (already standardised). */
PSF_NODISCARD psf_err psf_features_standardize(psf_table *t, const double *stats, size_t len);

/* psf_features_moments gives slot j's mean and sd (j = n_features: the target)
 * as psf_features_standardize uses them: sd 1 when it counts as 1 (below). */
void psf_features_moments(const double *stats, size_t j, double *mean, double *sd);

/* psf_features_standardize_row applies the same mapping to one feature vector
 * of n_features floats (stats as above). Cannot fail. */
void psf_features_standardize_row(float *x, size_t n_features, const double *stats);

/* psf_features_unstandardize_target maps a model output z back to target units:
 * z * sd + mean for next_close and next_return; z unchanged for next_direction.
 * stats as above. Cannot fail. */
double psf_features_unstandardize_target(double z, size_t n_features, psf_target_kind target,
    const double *stats);

#endif
