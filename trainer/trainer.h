/* trainer.h -- a trainer node (DESIGN.md §1, §7): owns a shard of the symbols,
 * loads and featurises only those, and trains the shared model through the
 * parameter servers: pull -> forward/backward (OpenBLAS) -> push, per step, in the
 * config's consistency mode.
 *
 * Determinism. Every trainer takes the same number of steps per epoch (that of
 * the largest shard; smaller shards wrap around their rows), and the rows of
 * step c are a pure function of (seed, trainer index, c). A trainer that
 * restarts resumes at the clock the ps reports and sees the same batches.
 *
 * Reporting. After every epoch the trainer evaluates on its test rows and sends
 * a MetricsReport to ps0; the last one has finished = true. The process then
 * leaves the worker group and exits 0. Progress gauges on /metrics:
 * psfleet_trainer_{epoch,step,loss,samples_per_second,total_steps}. */
#ifndef PSF_TRAINER_H
#define PSF_TRAINER_H

#include <stdint.h>

#include "common/config.h"
#include "common/err.h"

typedef struct psf_trainer_opts {
	const char *const *ps_urls; /* override the config's ps URLs (tests) */
	const char *metrics;        /* override node->metrics; "" = none */
	double slowdown;            /* straggler injection: each step takes this many
	                               times as long (>= 1; 0 = off) */
	uint32_t delay_ms;          /* straggler injection: fixed extra delay per step */
	int64_t exit_at_step;       /* failure injection: exit(3) when reaching this
	                               step (0 = off) */
} psf_trainer_opts;

/* psf_trainer_run trains until every epoch is done (or max_steps), reports,
 * leaves, and returns PSF_OK; or returns the error that stopped it (data that
 * cannot be loaded, a ps unreachable past the retry window, a stop request). */
PSF_NODISCARD psf_err psf_trainer_run(const psf_config *cfg, const psf_node_cfg *node,
    const psf_trainer_opts *opts);

#endif
