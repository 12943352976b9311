/* progress.h -- watching a fleet from outside: node health (/healthz or
 * Admin/Health), trainer progress (their Prometheus /metrics), ps Stats and the
 * fleet's test metrics, and the display `psfleet up` draws from them (a
 * refreshing block on a terminal, plain periodic lines otherwise).
 *
 * Every probe has a timeout and never fails the caller: an unreachable node is
 * a result, not an error. Not thread-safe: one thread uses a psf_progress. */
#ifndef PSF_CLI_PROGRESS_H
#define PSF_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/supervisor.h"
#include "lib/base/err.h"
#include "lib/config/config.h"
#include "psfleet.pb-c.h"

typedef struct psf_progress psf_progress;

/* What one health probe found. */
typedef struct psf_runtime_health {
	bool reachable;   /* the node answered (HTTP or RPC) */
	bool ready;       /* and said it is ready */
	char reason[160]; /* why not ready / not reachable ("" when ready) */
	bool has_version; /* model_version came from Admin/Health */
	uint64_t model_version;
	const char *via; /* "http", "rpc", or "none" (no address to ask) */
} psf_runtime_health;

/* The latest scrape of one trainer's /metrics. */
typedef struct psf_trainer_view {
	bool valid; /* scraped successfully at least once */
	bool fresh; /* the last scrape succeeded */
	double epoch, step, loss, samples_per_sec, total_steps;
	double steps_per_sec; /* measured from step deltas between scrapes; 0 = unknown */
	uint64_t at_ms;       /* monotonic time of the last successful scrape */
} psf_trainer_view;

/* The fleet's result, summed over the trainers' MetricsReports on ps0. */
typedef struct psf_fleet_result {
	uint64_t model_version;
	uint64_t trained_steps;
	size_t n_reports;  /* trainers that reported */
	size_t n_finished; /* ... of which finished */
	uint64_t test_n;   /* test rows over all trainers */
	double test_rmse, test_mae;
	double naive_rmse, naive_mae;
	double train_loss;    /* mean of the reports' last training loss */
	double test_accuracy; /* sum test_correct / test_n (logistic models) */
} psf_fleet_result;

/* psf_progress_new prepares probes for the nodes of cfg (borrowed; must outlive
 * the object). Display output goes to out; live selects the refreshing block
 * (use it when out is a terminal). Returns PSF_OK, PSF_ENOMEM, or the error of
 * reading the config's security token (PSF_ENOENT, PSF_ECONFIG...). */
PSF_NODISCARD psf_err psf_progress_new(const psf_config *cfg, FILE *out, bool live,
    psf_progress **out_p);

/* psf_progress_free closes the probes' connections. NULL is fine. */
void psf_progress_free(psf_progress *p);

/* psf_progress_health probes node i (an index into cfg->nodes): GET /healthz on
 * its metrics address when it has one, and Admin/Health on its listen URL when
 * it has no metrics address or want_version is set. Each probe takes at most
 * timeout_ms. Cannot fail. */
void psf_progress_health(psf_progress *p, size_t i, bool want_version, uint32_t timeout_ms,
    psf_runtime_health *out);

/* psf_progress_stats calls ParameterServer/Stats on node i (a ps). On PSF_OK,
 * *out gets a reply the caller frees with protobuf_c_message_free_unpacked(
 * &reply->base, NULL). Returns PSF_EINVAL (not a ps), or the RPC's error. */
PSF_NODISCARD psf_err psf_progress_stats(psf_progress *p, size_t i, uint32_t timeout_ms,
    Psfleet__V1__StatsReply **out);

/* psf_progress_stats0 is psf_progress_stats on shard 0, which holds the
 * trainers' reports: it asks shard 0's replicas in turn until its primary
 * answers (a backup answers UNAVAILABLE; without replication it is ps0). On
 * PSF_OK *node_out (when not NULL) gets the node that answered. */
PSF_NODISCARD psf_err psf_progress_stats0(psf_progress *p, uint32_t timeout_ms,
    Psfleet__V1__StatsReply **out, const psf_node_cfg **node_out);

/* psf_progress_admin_status calls Admin/Status on node i; *out as for
 * psf_progress_stats. Returns PSF_EINVAL, PSF_EUNAVAIL (no listen URL) or the
 * RPC's error. */
PSF_NODISCARD psf_err psf_progress_admin_status(psf_progress *p, size_t i, uint32_t timeout_ms,
    Psfleet__V1__StatusReply **out);

/* psf_progress_scrape reads trainer node i's /metrics into *out, keeping the
 * previous values (and marking them stale) when the scrape fails. out must be
 * zeroed before the first call; pass the same view each time so the step rate
 * can be measured. Cannot fail. */
void psf_progress_scrape(psf_progress *p, size_t i, uint32_t timeout_ms, psf_trainer_view *out);

/* psf_progress_training_started sets the time the elapsed time and ETA count
 * from. Cannot fail. */
void psf_progress_training_started(psf_progress *p);

/* psf_progress_poll scrapes every trainer that l reports running, and ps0's
 * Stats, keeping the results for psf_progress_render. Cannot fail. */
void psf_progress_poll(psf_progress *p, const psf_supervisor *l);

/* psf_progress_render draws the latest poll: in live mode it redraws the block
 * (fleet line, one line per trainer, node states), otherwise it prints one
 * line. Cannot fail. */
void psf_progress_render(psf_progress *p, const psf_supervisor *l);

/* psf_progress_keep leaves the live block on screen as it is: later output
 * goes below it. Cannot fail. */
void psf_progress_keep(psf_progress *p);

/* psf_progress_note prints one line (a newline is added) above the live block,
 * which is redrawn by the next render. Cannot fail. */
void psf_progress_note(psf_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* psf_progress_result sums the MetricsReports of a Stats reply from ps0 into
 * *out. Returns PSF_OK, or PSF_ENOENT when no report has test rows (nothing to
 * compute RMSE from); *out is filled either way. */
PSF_NODISCARD psf_err psf_progress_result(const Psfleet__V1__StatsReply *stats,
    psf_fleet_result *out);

/* psf_prom_value finds a sample of metric name in Prometheus text (the first
 * line whose metric name is exactly name, with or without labels) and writes
 * its value. Returns PSF_OK or PSF_ENOENT. */
PSF_NODISCARD psf_err psf_prom_value(const char *text, const char *name, double *out);

#endif
