/* internal.h -- pieces of the trainer shared by its files (not a public API). */
#ifndef PSF_TRAINER_INTERNAL_H
#define PSF_TRAINER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/config/config.h"
#include "lib/data/features.h"
#include "lib/model/model.h"
#include "trainer/ps_client.h"

#define PSF_TRAINER_MAX_BATCH 65536u

/* Names of the all-reduces every trainer takes part in (ps Reduce). */
#define PSF_REDUCE_TRAIN_ROWS "train_rows"

/* psf_shard_plan: which symbols a trainer owns, and the test cutoff date. */
typedef struct psf_shard_plan {
	int32_t cutoff;
	char **symbols; /* sorted (strcmp) */
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
} psf_eval;

/* psf_trainer_evaluate predicts every test row of the table with the weights of
 * clock `clock` (pulled into params) and sums the errors against y_raw, and the
 * naive forecast's errors. */
PSF_NODISCARD psf_err psf_trainer_evaluate(const psf_config *cfg, const psf_model *model,
    psf_model_ws *ws, psf_ps_client *w, const psf_table *table, const uint64_t *sym_rows,
    const double *stats, int64_t clock, psf_params *params, psf_eval *out);

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
