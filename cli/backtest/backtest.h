/* backtest.h -- `psfleet backtest`: walk-forward (rolling-origin) evaluation of a
 * fleet config (docs/forecasting.md).
 *
 * The last origins * horizon dates of the data are cut into `origins` windows
 * of `horizon` dates. For each window, whose first date is the origin O, a
 * fresh fleet (every node of the config, started by the supervisor of `psfleet
 * up` as `psfleet node` processes, run directory OUT/runs/origin-K) trains from
 * scratch with --set data.train_end=O: the trainers see only rows dated before
 * O (their held-out test split, the last data.test_fraction of those dates,
 * gives the conformal residuals). The served fleet is then asked, through the
 * gateway (or the one inferer when there is a single inference shard), for one
 * PredictBatch per date t of the window and coverage level: every symbol's
 * one-step-ahead forecast with as_of = the date before t, so each forecast uses
 * the real bars up to the day before (the inferers load every row; the model
 * stays the one trained before O). The actual close at t comes from the data.
 *
 * Not thread-safe; one backtest per process. */
#ifndef PSF_CLI_BACKTEST_BACKTEST_H
#define PSF_CLI_BACKTEST_BACKTEST_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/base/err.h"

#define BT_MAX_COV 4
#define BT_MAX_SETS 48

typedef struct bt_opts {
	const char *config_path;
	const char *out_dir; /* created if missing */
	const char *exe;     /* psfleet binary; NULL = /proc/self/exe */
	uint32_t origins;    /* >= 1 */
	uint32_t horizon;    /* >= 1 dates per window */
	double coverage[BT_MAX_COV];
	size_t n_cov;
	const char *sets[BT_MAX_SETS]; /* extra KEY=VALUE overrides for every node */
	size_t n_sets;
	uint32_t run_timeout_s; /* per origin; 0 = 1800 */
	FILE *out;              /* progress lines; NULL = quiet */
	const volatile sig_atomic_t *stop;
} bt_opts;

/* One forecast: symbol sym, made from the bar of as_of for the close of date. */
typedef struct bt_row {
	uint32_t origin; /* window index */
	uint32_t sym;    /* index into bt_result.symbols */
	uint32_t h;      /* 1 .. horizon: the date's place in its window */
	int32_t as_of, date;
	uint64_t version;
	double last_close, actual, pred; /* prices */
	double lo[BT_MAX_COV], hi[BT_MAX_COV];
} bt_row;

typedef struct bt_result {
	char **symbols;
	size_t n_symbols;
	int32_t *origin_dates; /* first date of each window */
	size_t n_origins;
	bt_row *rows;
	size_t n_rows, cap_rows;
	size_t skipped;    /* forecasts that could not be made (history, missing bars) */
	double *train_s;   /* seconds each origin's fleet took to train and serve */
	uint64_t *resid_n; /* held-out residuals behind each origin's intervals */
	char target[16];   /* the config's target */
	char interval_scale[8];
	double coverage[BT_MAX_COV];
	size_t n_cov;
	uint32_t horizon;
	uint32_t history_days; /* the inferers keep this many days: the config's plus
	                        * every forecast window's (as_of reaches back that far) */
} bt_result;

/* bt_run runs the backtest and fills *res (free it with bt_result_fini, also
 * after a failure). Errors with one line in errbuf: PSF_ECONFIG (config, data,
 * too few dates, a next_direction target, no inferer), PSF_ESYS, PSF_EUNAVAIL
 * (a node failed), PSF_ETIMEDOUT, PSF_ECLOSED (*stop). */
PSF_NODISCARD psf_err bt_run(const bt_opts *o, bt_result *res, char *errbuf, size_t errlen);

void bt_result_fini(bt_result *res);

/* bt_write writes OUT/results.csv, OUT/summary.json and OUT/report.html from
 * res. Returns PSF_OK or PSF_ESYS (one line in errbuf). */
PSF_NODISCARD psf_err bt_write(const bt_opts *o, const bt_result *res, char *errbuf, size_t errlen);

#endif
