/* report_internal.h -- the computed results shared by report.c (load, figures,
 * results.csv, summary.json) and report_html.c (report.html). Not an API. */
#ifndef PSF_CLI_EXPERIMENT_REPORT_INTERNAL_H
#define PSF_CLI_EXPERIMENT_REPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/experiment/report.h"

/* One trace line of a trainer (times in seconds since the run's t = 0). */
typedef struct rp_step {
	double t, loss, pull, compute, push;
	int64_t step, epoch, staleness;
	uint64_t version;
} rp_step;

/* One evaluation line of a trainer. */
typedef struct rp_eval {
	double t, train_loss, rmse, mae, naive;
	int64_t step, epoch;
	uint64_t n;
	int finished;
} rp_eval;

typedef struct rp_trainer {
	char id[80];
	rp_step *steps;
	size_t n_steps;
	rp_eval *evals;
	size_t n_evals;
	double span, wait, compute, other; /* seconds */
} rp_trainer;

/* A point of the fleet's curve. */
typedef struct rp_point {
	double t;
	uint64_t steps;   /* steps done by all trainers so far */
	uint64_t updates; /* model version so far */
	double loss;      /* smoothed training loss */
} rp_point;

/* The fleet's test RMSE after an epoch (when the last trainer reported it). */
typedef struct rp_epoch {
	double t, rmse, naive;
	int64_t epoch;
} rp_epoch;

#define RP_NO_VALUE (-1.0)

typedef struct rp_run {
	psf_report_run info;
	size_t mode; /* index into psf_report.modes */
	rp_trainer *tr;
	size_t n_tr;
	double *mt, *mloss; /* merged steps: time and smoothed loss, n_merged each */
	size_t n_merged, window;
	rp_point *curve; /* sampled from the merged steps */
	size_t n_curve;
	rp_epoch *epochs;
	size_t n_epochs;
	double t_end; /* the last step's end */
	uint64_t total_steps, final_version;
	double final_loss, rmse, mae, naive;
	uint64_t test_n;
	double wait, compute, other, span;
	double t_target;    /* RP_NO_VALUE: not reached */
	double t_test;      /* first epoch evaluation at or below test_target; RP_NO_VALUE: none */
	int64_t *staleness; /* every push */
	size_t n_staleness;
} rp_run;

typedef struct rp_stat {
	double mean, sd; /* sd over repeats (n - 1); 0 for one */
	size_t n;        /* values; 0 = none (mean is RP_NO_VALUE) */
} rp_stat;

typedef struct rp_mode {
	char name[24];
	const char *color;
	size_t n_runs; /* ok runs */
	rp_stat rmse, mae, naive, loss, to_target, train_s, updates_s, steps_s, samples_s, idle;
	double speedup; /* baseline's mean seconds to target / this mode's; 0 = n/a */
	/* The headline: seconds to the test target (test RMSE of the fleet, evaluated
	 * after every epoch), its speedup over the baseline, and whether the
	 * difference to the baseline is within the noise of the repeats. */
	rp_stat to_test;
	double test_speedup; /* 0 = n/a */
	int test_noise;      /* 1 within the noise, 0 not, -1 unknown (fewer than 2 runs) */
	int64_t *staleness;  /* every push of every run, sorted */
	size_t n_staleness;
	int64_t st_p50, st_p99, st_max;
	double st_mean;
	double *tr_wait, *tr_compute, *tr_other; /* per trainer index, mean over runs */
	size_t n_tr;
	char (*tr_ids)[80];
} rp_mode;

typedef struct psf_report {
	psf_report_meta meta;
	rp_run *runs;
	size_t n_runs;
	rp_mode *modes;
	size_t n_modes;
	int baseline;  /* mode the target and speedups refer to; -1 = none */
	double target; /* RP_NO_VALUE: none */
	char target_source[200];
	double test_target; /* test RMSE; RP_NO_VALUE: none */
	char test_target_source[200];
} psf_report;

/* rp_compute loads the traces of r's ok runs (r->meta and r->runs[].info are
 * filled from the manifest) and computes every figure. Returns PSF_OK,
 * PSF_ENOENT (no ok run with traces; one line in errbuf) or PSF_ENOMEM. */
PSF_NODISCARD psf_err rp_compute(psf_report *r, const char *out_dir, char *errbuf, size_t errlen);

/* rp_report_fini frees everything r holds (not r). Cannot fail. */
void rp_report_fini(psf_report *r);

/* rp_usable tells whether a run is ok, of a known mode, and has traces. */
int rp_usable(const rp_run *run);

/* rp_split cuts line at commas into at most max fields; returns the count. */
size_t rp_split(char *line, char **fields, size_t max);

/* rp_fail writes one line into errbuf (when not NULL) and returns err. */
psf_err rp_fail(char *errbuf, size_t errlen, psf_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* rp_html_esc writes s to f with <, >, & and " as HTML entities. */
void rp_html_esc(FILE *f, const char *s);

/* The charts of report.html (report_chart.c): each writes one <svg> to f.
 * rp_loss_chart plots the loss against time (by_updates 0) or the model
 * version (1). Cannot fail (write errors stay on f). */
void rp_loss_chart(FILE *f, const psf_report *r, int by_updates);
void rp_rmse_chart(FILE *f, const psf_report *r);
void rp_staleness_chart(FILE *f, const psf_report *r);
void rp_idle_chart(FILE *f, const psf_report *r);
void rp_target_chart(FILE *f, const psf_report *r);

/* rp_write_html writes report.html for r to path. Returns PSF_OK or PSF_ESYS. */
PSF_NODISCARD psf_err rp_write_html(const psf_report *r, const char *path);

#endif
