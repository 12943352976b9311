/* internal.h -- pieces of the trainer shared by its files (not a public API). */
#ifndef PSF_TRAINER_INTERNAL_H
#define PSF_TRAINER_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/rhist.h"
#include "lib/config/config.h"
#include "lib/data/features.h"
#include "lib/model/model.h"
#include "lib/runtime/runtime.h"
#include "trainer/ps_client.h"

#define PSF_TRAINER_MAX_BATCH 65536u

/* Names of the all-reduces every trainer takes part in (ps Reduce). */
#define PSF_REDUCE_TRAIN_ROWS "train_rows"
#define PSF_REDUCE_EXACT "exact_normal_eq"     /* the exact solver's sums */
#define PSF_REDUCE_EXACT_DONE "exact_assigned" /* its barrier after the assignment */

/* psf_trainer_exact runs the exact solver (optimizer kind "exact", exact.c) on
 * the raw (not yet standardised) table t of trainer `index`: it takes part in
 * the fleet's reduces, standardises t, solves, has trainer 0 assign the weights,
 * evaluates the test rows and sends the final report. *stats_out (the
 * standardisation statistics, n_stats_out doubles) is the caller's to free. */
PSF_NODISCARD psf_err psf_trainer_exact(const psf_config *cfg, uint32_t index, psf_ps_client *w,
    const psf_model *model, psf_table *t, double **stats_out, size_t *n_stats_out);

/* psf_shard_plan: which symbols a trainer owns, and the test cutoff date. */
typedef struct psf_shard_plan {
	int32_t cutoff;
	int32_t date_end; /* data.train_end parsed; 0 = none */
	char **symbols;   /* sorted (strcmp) */
	size_t n;
} psf_shard_plan;

/* psf_trainer_plan scans the data (symbols, row counts, dates) and assigns the
 * symbols of trainer `index`: by rendezvous hash of the symbol over the trainer
 * ids (shard_by: hash) or balanced by row count (shard_by: rows). The same on
 * every trainer. Errors come with one line in errbuf. */
PSF_NODISCARD psf_err psf_trainer_plan(const psf_config *cfg, size_t index, psf_shard_plan *plan,
    char *errbuf, size_t errlen);

/* psf_shard_plan_keep is a psf_data_keep_fn for a plan. */
int psf_shard_plan_keep(const char *symbol, void *plan);

void psf_shard_plan_fini(psf_shard_plan *plan);

/* psf_trainer_permute writes a permutation of 0..n-1 that depends only on
 * (seed, trainer, epoch); seed 0 gives the identity (no shuffling). */
void psf_trainer_permute(uint32_t *perm, size_t n, uint64_t seed, uint32_t trainer, uint64_t epoch);

/* psf_windows: the rows of a table a model with a window of W days can use, and
 * how to assemble their input (window.c). Row r's window is the W feature rows
 * of r's symbol ending at r, oldest first; a row with fewer than W - 1 earlier
 * rows of its symbol has none and is neither trained on nor evaluated. W = 1
 * keeps every row. */
typedef struct psf_windows {
	uint32_t window;
	size_t *prev;  /* per table row: the symbol's previous row, SIZE_MAX for none */
	size_t *train; /* train rows with a full window, ascending */
	size_t n_train;
	size_t *test; /* test rows with a full window, ascending */
	size_t n_test;
} psf_windows;

/* psf_windows_init indexes table t for windows of `window` >= 1 days.
 * PSF_ENOMEM. Free with psf_windows_fini. */
PSF_NODISCARD psf_err psf_windows_init(psf_windows *w, const psf_table *t, uint32_t window);

/* psf_windows_fini releases w (zeroed storage is fine). Cannot fail. */
void psf_windows_fini(psf_windows *w);

/* psf_windows_gather writes row's window, W x n_features floats, into x. row
 * must be one of w->train or w->test. Cannot fail. */
void psf_windows_gather(const psf_windows *w, const psf_table *t, size_t row, float *x);
/* local_sgd.c: the trainer's half of consistency mode `local` (local SGD). */

/* psf_local_sgd_step applies one plain SGD step to the keys[0..n) of params:
 * params -= lr * grads. scratch holds the longest key's floats. */
PSF_NODISCARD psf_err psf_local_sgd_step(psf_params *params, const psf_params *grads,
    const uint64_t *keys, size_t n, float lr, float *scratch);

/* psf_local_delta sets delta = start - params for keys[0..n): what a trainer
 * pushes at the end of its sync_every local steps (the ps averages the deltas
 * of a round and subtracts the average). scratch as above. */
PSF_NODISCARD psf_err psf_local_delta(psf_params *delta, const psf_params *start,
    const psf_params *params, const uint64_t *keys, size_t n, float *scratch);

/* psf_local_copy copies keys[0..n) of src into dst. */
PSF_NODISCARD psf_err psf_local_copy(psf_params *dst, const psf_params *src, const uint64_t *keys,
    size_t n);

/* Test-set sums in the target's own units. */
typedef struct psf_eval {
	double sse, sae, naive_sse, naive_sae, correct;
	uint64_t n;
	/* |error| / scale of each test row (lib/base/rhist.h; scale: the row's close
	 * when psf_config_interval_by_price, else 1); empty for next_direction */
	uint64_t hist[PSF_RHIST_BINS];
} psf_eval;

/* psf_trainer_evaluate predicts every test row of the table that has a window
 * (win) with the weights of clock `clock` (pulled into params) and sums the
 * errors against y_raw, and the naive forecast's errors on the same rows. */
PSF_NODISCARD psf_err psf_trainer_evaluate(const psf_config *cfg, const psf_model *model,
    psf_model_ws *ws, psf_ps_client *w, const psf_table *table, const psf_windows *win,
    const uint64_t *sym_rows, const double *stats, int64_t clock, psf_params *params,
    psf_eval *out);

/* finetune.c: fine-tuning after Ingest, by the first trainer once training is
 * done (training.finetune.steps > 0). */
typedef struct psf_trainer_ft {
	const psf_config *cfg;
	psf_runtime *rt;
	psf_ps_client *w;
	psf_model *model;
	const double *stats;           /* the standardisation statistics of training */
	atomic_uint_fast64_t *version; /* model version of the last push (Health) */
	psf_gauge *g_step;             /* psfleet_trainer_step */
	int64_t exit_at_step;          /* failure injection (0 = off) */
	/* set by psf_trainer_ft_metrics */
	psf_gauge *g_on, *g_round;
	psf_counter *c_steps, *c_rows;
} psf_trainer_ft;

/* psf_trainer_ft_metrics registers the fine-tuning metrics in reg:
 * psfleet_trainer_finetuning (1 while waiting for or taking fine-tuning
 * steps), psfleet_trainer_finetune_round, psfleet_trainer_finetune_steps_total,
 * psfleet_trainer_finetune_rows_total. */
PSF_NODISCARD psf_err psf_trainer_ft_metrics(psf_metrics *reg, psf_trainer_ft *a);

/* psf_trainer_finetune serves fine-tuning rounds until a stop request
 * (PSF_ECLOSED) or an error. */
PSF_NODISCARD psf_err psf_trainer_finetune(const psf_trainer_ft *a);

/* pull_reply.c: a PullReply read in place. Pointers borrow from the buffer. */
typedef struct psf_pull_view {
	uint64_t version;
	size_t n_keys, n_lens;
	const uint8_t *values;
	size_t values_len;
} psf_pull_view;

/* psf_pull_reply_scan reads a serialized PullReply's fields into *v and appends
 * its keys and lens to keys/lens (NULL: only count them). Returns PSF_OK or
 * PSF_EPROTO (malformed, or a known field with the wrong wire type). */
PSF_NODISCARD psf_err psf_pull_reply_scan(const uint8_t *buf, size_t len, uint64_t *keys,
    uint32_t *lens, psf_pull_view *v);

/* psf_pull_reply_check_fields compares the field numbers psf_pull_reply_scan reads
 * with the generated descriptor (psf_wire_check_fields). */
PSF_NODISCARD psf_err psf_pull_reply_check_fields(void);

#endif
