/* experiment.h -- `psfleet experiment`: train one fleet config under several
 * consistency modes, with stragglers and failures injected, and compare them
 * (docs/experiments.md).
 *
 * For every mode and repeat the runner makes a fresh run directory
 * OUT/runs/<slug>-r<k> (removed first if it exists: nothing else is ever
 * deleted), so every run starts from empty ps stores. It starts the ps nodes
 * and trainers with the fleet supervisor of `psfleet up` (supervisor.h) as
 * `psfleet node CONFIG --id ID --set ...` processes, with
 *   --set consistency.mode=M [--set consistency.staleness=S] --set run_dir=RUN
 *   --set data.path=DATA  plus the caller's own --set options,
 * so every node of a run sees the same modified config. It waits for every ps
 * to say it is ready, starts the trainers with the injections as the
 * supervisor's faults (stragglers: --slowdown X, --delay-ms N; failures:
 * --exit-at-step N, after which the trainer is restarted), waits for every
 * trainer to exit 0, stops the ps nodes (SIGTERM, then SIGKILL after 10 s) and
 * records the run in OUT/runs.csv. Any other exit of a node fails the run
 * (the supervisor's max_failures 1). Logs: RUN/<id>.log. Traces:
 * RUN/trace/<id>.csv and <id>-eval.csv, written by the trainers.
 *
 * First, o->warmup unrecorded runs of the first mode (OUT/runs/warmup-r<k>):
 * on a shared machine the first run after a pause is slower, and it would
 * always be the first mode's. At the end (or after the first failed run, for
 * the runs done so far) the report is written: psf_report_write (report.h).
 *
 * Not thread-safe; one experiment per process. */
#ifndef PSF_CLI_EXPERIMENT_EXPERIMENT_H
#define PSF_CLI_EXPERIMENT_EXPERIMENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/base/err.h"
#include "lib/config/config.h"

#define PSF_EXP_MAX_MODES 16
#define PSF_EXP_MAX_INJECT 16
#define PSF_EXP_MAX_SETS 48
#define PSF_EXP_ID_LEN 65

/* One consistency mode to run, as spelled on the command line. */
typedef struct psf_exp_mode {
	psf_consistency mode;
	uint32_t staleness; /* ssp: s; local: sync_every (UINT32_MAX: the config's) */
	char name[24];      /* "sync", "async", "ssp:4", "local:8" */
	char slug[24];      /* for directory names: "sync", "async", "ssp4", "local8" */
} psf_exp_mode;

/* A straggler: trainer id made slower by a factor, or by a delay per step. */
typedef struct psf_exp_straggler {
	char id[PSF_EXP_ID_LEN];
	double slowdown;   /* >= 1; 0 = none */
	uint32_t delay_ms; /* 0 = none */
} psf_exp_straggler;

/* A failure: trainer id exits (status 3) when it reaches step, then restarts. */
typedef struct psf_exp_kill {
	char id[PSF_EXP_ID_LEN];
	int64_t step;
} psf_exp_kill;

typedef struct psf_exp_opts {
	const char *config_path;
	const char *out_dir; /* created if missing */
	const char *exe;     /* psfleet binary; NULL = /proc/self/exe */
	psf_exp_mode modes[PSF_EXP_MAX_MODES];
	size_t n_modes;
	uint32_t repeats; /* >= 1 */
	psf_exp_straggler stragglers[PSF_EXP_MAX_INJECT];
	size_t n_stragglers;
	psf_exp_kill kills[PSF_EXP_MAX_INJECT];
	size_t n_kills;
	const char *sets[PSF_EXP_MAX_SETS]; /* extra KEY=VALUE overrides for every node */
	size_t n_sets;
	uint32_t run_timeout_s;            /* per run; 0 = 1800 */
	uint32_t warmup;                   /* unrecorded runs of the first mode before the others */
	double target_loss;                /* > 0: the target loss (else training.target_loss) */
	double target_factor;              /* > 0: target = this x the baseline's final loss */
	FILE *out;                         /* one progress line per event; NULL = quiet */
	const volatile sig_atomic_t *stop; /* non-zero: stop the run and return (may be NULL) */
} psf_exp_opts;

/* psf_exp_parse_mode parses "sync", "async", "ssp" (the config's staleness is
 * then taken: staleness is left at UINT32_MAX) or "ssp:S". Returns PSF_OK or
 * PSF_EINVAL. */
PSF_NODISCARD psf_err psf_exp_parse_mode(const char *s, psf_exp_mode *out);

/* psf_exp_parse_straggler parses "ID:3x" (slowdown factor, 1 to 1000) or
 * "ID:+50ms" (delay per step, 0 to 600000 ms). Returns PSF_OK or PSF_EINVAL. */
PSF_NODISCARD psf_err psf_exp_parse_straggler(const char *s, psf_exp_straggler *out);

/* psf_exp_parse_kill parses "ID@step:N" or "ID@N" (N >= 1). Returns PSF_OK or
 * PSF_EINVAL. */
PSF_NODISCARD psf_err psf_exp_parse_kill(const char *s, psf_exp_kill *out);

/* psf_exp_run runs the experiment described above and writes the report. It
 * checks first that the config loads with the overrides and names the
 * trainers of every injection. Returns PSF_OK when every run finished and the
 * report is written; otherwise an error, with one line in errbuf (errlen bytes,
 * always NUL-terminated) naming the run and its log: PSF_ECONFIG (config or
 * injection), PSF_ESYS (cannot write OUT or start a process), PSF_EUNAVAIL (a
 * node failed or a ps never became ready), PSF_ETIMEDOUT (a run exceeded its
 * timeout), PSF_ECLOSED (*stop was set). Children are always stopped and
 * reaped before it returns. */
PSF_NODISCARD psf_err psf_exp_run(const psf_exp_opts *o, char *errbuf, size_t errlen);

#endif
