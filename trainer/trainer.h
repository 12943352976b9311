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
 * leaves the worker group and exits 0 -- except the first trainer when
 * training.finetune.steps > 0, which stays up and fine-tunes on ingested rows
 * (finetune.c, docs/training.md §6) until it is stopped. A trainer with no training rows takes its
 * part in the start-up reduces, sends a finished report with no test rows,
 * leaves the group and exits 0 (docs/training.md §1). Progress gauges on /metrics:
 * psfleet_trainer_{epoch,step,loss,samples_per_second,total_steps}. */
#ifndef PSF_TRAINER_H
#define PSF_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/config/config.h"

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

/* How the work of a fleet is split, as every node computes it from the config
 * and a scan of the data (no coordinator): symbols and data rows per trainer
 * (data.shard_by), and model keys and floats per ps node (rendezvous hashing
 * of the keys; per-symbol keys counted for every symbol of the data). */
typedef struct psf_trainer_split {
	size_t n_trainers; /* the config's trainers, in config order */
	size_t *symbols;   /* [n_trainers] symbols owned */
	uint64_t *rows;    /* [n_trainers] data rows of those symbols (before features) */
	size_t total_symbols;
	uint64_t total_rows;
	size_t n_ps;      /* the config's ps nodes, in config order */
	uint64_t *keys;   /* [n_ps] parameter keys held */
	uint64_t *floats; /* [n_ps] floats of those keys */
} psf_trainer_split;

/* psf_trainer_split_new scans cfg's data and returns the split in a new object
 * the caller frees with psf_trainer_split_free. Errors (data that cannot be
 * scanned, PSF_ENOMEM, ...) come with one line in errbuf. */
PSF_NODISCARD psf_err psf_trainer_split_new(const psf_config *cfg, char *errbuf, size_t errlen,
    psf_trainer_split **out);

/* psf_trainer_split_free releases a split. NULL is fine. */
void psf_trainer_split_free(psf_trainer_split *s);

#endif
