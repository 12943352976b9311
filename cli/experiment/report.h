/* report.h -- the results of `psfleet experiment` (docs/experiments.md).
 *
 * The runner records what it ran in two small files under OUT:
 *   experiment.txt  key=value lines: config, modes, repeats, trainers,
 *                   batch_size, target_loss, target_factor, target_from, injections
 *   runs.csv        one line per run: mode,slug,repeat,run_dir,ok,seconds,restarts
 *                   (run_dir relative to OUT, so OUT can be moved)
 * and the trainers write their traces under each run directory. From these
 * alone psf_report_write makes
 *   results.csv     one row per sample point (kind = step, eval, fleet, fleet_eval)
 *   summary.json    per mode: final test RMSE mean and sd over repeats, seconds to
 *                   the target loss, throughput, idle fraction, staleness p50/p99/max
 *   report.html     self-contained page (inline CSS and SVG, no network) with the
 *                   charts and the summary table
 * so `psfleet experiment --report-only --out OUT` can redo them at any time.
 *
 * Definitions (every figure in the report comes from these):
 *   - t = 0 is when the first step of the run started (the earliest trace line's
 *     wall time minus that step's pull + compute + push), so start-up is excluded.
 *   - The fleet loss curve merges every trainer's per-step training loss in wall
 *     time order; its smoothed value at a point is the mean of the last W losses,
 *     W = max(2 x trainers, merged steps / 50). The final loss is its last value.
 *   - The target loss is target_loss when set (--target-loss X, or else
 *     training.target_loss), else target_factor (--target-loss Fx; default 1.05)
 *     x the mean final smoothed loss of the sync runs (of the first mode when
 *     sync was not run). A run reaches it at the first point (after W steps)
 *     where the smoothed loss is at or below it.
 *   - Fleet test RMSE = sqrt(sum_i rmse_i^2 n_i / sum_i n_i) over each trainer's
 *     last evaluation (the finished one); the same for the naive forecast.
 *   - A trainer's time: compute = sum of compute_s; waiting = sum of pull_s +
 *     push_s (the ps, the network, and in sync/ssp the wait for other trainers);
 *     other = the rest of its span (injected delay, evaluation, restart).
 *     Idle fraction = waiting / span, over all trainers.
 *   - Staleness is the trace's column (the ps's PushReply.staleness), per push.
 *
 * Not thread-safe (plain functions on files). */
#ifndef PSF_CLI_EXPERIMENT_REPORT_H
#define PSF_CLI_EXPERIMENT_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "lib/base/err.h"

#define PSF_REPORT_PATH_LEN 1024

/* One run, as in runs.csv. */
typedef struct psf_report_run {
	char mode[24]; /* "sync", "async", "ssp:4" */
	char slug[24]; /* "ssp4" */
	uint32_t repeat;
	char run_dir[PSF_REPORT_PATH_LEN]; /* relative to OUT */
	int ok;                            /* every trainer exited 0 */
	double seconds;                    /* wall time of the whole run, start-up to stop */
	uint32_t restarts;                 /* trainer restarts after injected failures */
} psf_report_run;

/* The experiment's settings, as in experiment.txt. */
typedef struct psf_report_meta {
	char config[PSF_REPORT_PATH_LEN];
	char modes[512]; /* comma-separated, in the order given */
	uint32_t repeats;
	uint32_t n_trainers;
	uint32_t batch_size;
	double target_loss;   /* absolute target; 0 = derive from the baseline */
	double target_factor; /* else this x the baseline's final loss; 0 = 1.05 */
	char target_from[64]; /* where target_loss came from, e.g. "--target-loss" */
	char injections[512]; /* e.g. "straggler trainer-0 3x; failure trainer-1 at step 200" */
} psf_report_meta;

/* psf_report_save writes experiment.txt and runs.csv for n runs under out_dir
 * (through temporary files renamed into place). Returns PSF_OK or PSF_ESYS. */
PSF_NODISCARD psf_err psf_report_save(const char *out_dir, const psf_report_meta *meta,
    const psf_report_run *runs, size_t n);

/* psf_report_write reads out_dir's experiment.txt, runs.csv and the traces of
 * its ok runs, and writes results.csv, summary.json and report.html there. A
 * target_loss (> 0) or target_factor (> 0) replaces the manifest's target (and
 * is saved in experiment.txt); 0 keeps it. When out is not NULL it also prints
 * a short per-mode table to it. Returns PSF_OK;
 * PSF_ENOENT (no manifest, or no ok run with traces), PSF_EPROTO (a damaged
 * manifest), PSF_ESYS (cannot write) or PSF_ENOMEM, with one line in errbuf
 * (always NUL-terminated). */
PSF_NODISCARD psf_err psf_report_write(const char *out_dir, double target_loss,
    double target_factor, FILE *out, char *errbuf, size_t errlen);

#endif
