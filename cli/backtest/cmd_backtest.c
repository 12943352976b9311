/* psfleet backtest CONFIG --origins N [--horizon H] --out DIR: walk-forward
 * evaluation (backtest.h, docs/forecasting.md). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backtest/backtest.h"
#include "cli/cli.h"
#include "lib/base/util.h"

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void
bt_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet backtest CONFIG --origins N [--horizon H] [--out DIR]\n"
	    "                        [--coverage C[,C...]] [--set KEY=VALUE]... [--timeout SECONDS]\n"
	    "\n"
	    "Walk-forward (rolling-origin) evaluation. The last N x H dates of the data are\n"
	    "cut into N windows of H dates; for each window a fresh fleet of CONFIG is trained\n"
	    "from scratch on the rows dated before its first date (data.train_end), then served,\n"
	    "and asked for every symbol's one-step-ahead forecast of each date of the window\n"
	    "from the previous day's bar, with split-conformal intervals. Writes\n"
	    "DIR/results.csv (one row per forecast), DIR/summary.json (RMSE, MAE, MASE, skill vs\n"
	    "naive, direction hit rate, share of symbols beating naive, interval coverage; per\n"
	    "origin and overall) and DIR/report.html. Logs: DIR/runs/origin-K/<id>.log.\n"
	    "  --origins N        windows (>= 1)\n"
	    "  --horizon H        dates per window (default 5)\n"
	    "  --out DIR          output directory (default backtest-out; created)\n"
	    "  --coverage LIST    interval coverages in (0, 1), up to 4 (default 0.8,0.95)\n"
	    "  --set KEY=VALUE    override a config key for every node (docs/config.md)\n"
	    "  --timeout SECONDS  per origin (default 1800)\n");
}

static int
parse_cov(const char *s, bt_opts *o)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	o->n_cov = 0;
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		char *end;
		double c = strtod(t, &end);
		if (*end != '\0' || !(c > 0 && c < 1) || o->n_cov == BT_MAX_COV)
			return -1;
		o->coverage[o->n_cov++] = c;
	}
	return o->n_cov > 0 ? 0 : -1;
}

static int
parse_args(int argc, char **argv, bt_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->horizon = 5;
	o->out_dir = "backtest-out";
	o->coverage[0] = 0.8;
	o->coverage[1] = 0.95;
	o->n_cov = 2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		if (strcmp(a, "--origins") == 0 && more) {
			long v = strtol(argv[++i], NULL, 10);
			if (v < 1 || v > 1000) {
				fprintf(stderr, "psfleet backtest: --origins takes 1 to 1000\n");
				return -1;
			}
			o->origins = (uint32_t)v;
		} else if (strcmp(a, "--horizon") == 0 && more) {
			long v = strtol(argv[++i], NULL, 10);
			if (v < 1 || v > 10000) {
				fprintf(stderr, "psfleet backtest: --horizon takes 1 to 10000\n");
				return -1;
			}
			o->horizon = (uint32_t)v;
		} else if (strcmp(a, "--out") == 0 && more) {
			o->out_dir = argv[++i];
		} else if (strcmp(a, "--coverage") == 0 && more) {
			if (parse_cov(argv[++i], o) != 0) {
				fprintf(stderr,
				    "psfleet backtest: --coverage takes 1 to %d numbers in (0, 1), "
				    "e.g. 0.8,0.95\n",
				    BT_MAX_COV);
				return -1;
			}
		} else if (strcmp(a, "--set") == 0 && more) {
			if (o->n_sets == BT_MAX_SETS) {
				fprintf(stderr, "psfleet backtest: at most %d --set\n",
				    BT_MAX_SETS);
				return -1;
			}
			o->sets[o->n_sets++] = argv[++i];
		} else if (strcmp(a, "--timeout") == 0 && more) {
			long v = strtol(argv[++i], NULL, 10);
			if (v < 1 || v > 86400) {
				fprintf(stderr, "psfleet backtest: --timeout takes 1 to 86400\n");
				return -1;
			}
			o->run_timeout_s = (uint32_t)v;
		} else if (a[0] == '-' || o->config_path != NULL) {
			fprintf(stderr, "psfleet backtest: unknown or incomplete option '%s'\n", a);
			return -1;
		} else {
			o->config_path = a;
		}
	}
	if (o->config_path == NULL || o->origins == 0) {
		fprintf(stderr,
		    "psfleet backtest: CONFIG and --origins N are required (see --help)\n");
		return -1;
	}
	return 0;
}

int
psf_cmd_backtest(int argc, char **argv)
{
	bt_opts o;
	bt_result res;
	struct sigaction sa;
	char err[1024];
	psf_err rv;

	if (psf_cli_wants_help(argc, argv)) {
		bt_usage(stdout);
		return 0;
	}
	if (parse_args(argc, argv, &o) != 0)
		return 2;
	if (psf_mkdir_p(o.out_dir) != PSF_OK) {
		fprintf(stderr, "psfleet backtest: cannot create %s\n", o.out_dir);
		return 1;
	}
	o.out = stdout;
	o.stop = &stop_requested;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	rv = bt_run(&o, &res, err, sizeof(err));
	if (rv == PSF_OK && res.n_rows == 0) {
		snprintf(err, sizeof(err), "no forecast could be made (%zu skipped)", res.skipped);
		rv = PSF_ECONFIG;
	}
	if (rv == PSF_OK)
		rv = bt_write(&o, &res, err, sizeof(err));
	bt_result_fini(&res);
	if (rv != PSF_OK) {
		fprintf(stderr, "psfleet backtest: %s\n", err);
		return rv == PSF_ECONFIG ? 2 : 1;
	}
	printf("psfleet backtest: wrote %s/results.csv, summary.json, report.html\n", o.out_dir);
	return 0;
}
