/* inferer.h -- an inferer node (DESIGN.md §1): serves the Inference service
 * (Predict, PredictBatch, ModelInfo) for the symbols of one inference shard, from
 * a full model snapshot pulled from every ps node and swapped in atomically.
 *
 * Start-up. The inferer reads the data once, keeping only the rows of its
 * shard's symbols (psf_inference_shard_of(symbol, inference.shards) ==
 * node->shard): the last inference.history_days rows and the latest raw feature
 * row of each. The standardisation statistics are not recomputed: they are the
 * ones the trainers all-reduced, sent by ps0 with every snapshot
 * (SnapshotReply.feature_stats); until ps0 has them no model is served (refresh
 * returns PSF_ESTATE). Then it serves at once:
 * until a snapshot arrives, Predict answers UNAVAILABLE and Health / /healthz say
 * not ready ("no snapshot yet"), while a refresh thread keeps trying the ps nodes.
 *
 * Snapshots. Every inference.refresh_ms (and on psf_inferer_refresh) the inferer
 * asks every ps node for its version (Admin/Health, cheap) and, when one changed,
 * fetches Snapshot version 0 from all shards in parallel, piece by piece. In sync
 * and ssp modes every shard must report the same version: a mixed fetch is retried
 * a few times, and if the versions still differ the current model is kept until
 * the next refresh (logged). In async mode each shard's newest is taken and the
 * model version is the smallest of them (ModelInfo lists them all). The new model
 * (every dense and per-symbol key, plus the prediction of every served symbol at
 * its latest date) is built aside and published by swapping one pointer under a
 * short mutex: a request holds a reference to the model it started with, so it
 * never sees half a model and never waits for a fetch; the old model is freed
 * when its last request finishes.
 *
 * Errors a caller sees (the reply status): NOT_FOUND for a symbol that is unknown
 * or belongs to another shard (the message names its shard), FAILED_PRECONDITION
 * when there is too little history before as_of (the message says how much is
 * needed), INVALID_ARGUMENT for a malformed as_of or recent bars, UNAVAILABLE
 * before the first snapshot.
 *
 * Thread-safety: every function may be called from any thread; psf_inferer_free
 * must be the last call on an inferer. */
#ifndef PSF_INFERER_H
#define PSF_INFERER_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/config/config.h"

typedef struct psf_inferer psf_inferer;

typedef struct psf_inferer_opts {
	const char *const *ps_urls; /* one per ps node in config order; NULL = the config's */
	const char *listen;         /* override node->listen (tests: port 0) */
	const char *metrics;        /* override node->metrics; "" = no HTTP endpoint */
	uint32_t refresh_ms;        /* override inference.refresh_ms; 0 = the config's */
} psf_inferer_opts;

/* psf_inferer_new loads the data (see above), starts serving on node->listen (or
 * opts->listen) and starts the refresh thread. It does not wait for the ps: the
 * first snapshot arrives in the background. node must be an inferer of cfg; cfg
 * and node must outlive the inferer. Returns PSF_EINVAL (not an inferer, bad
 * features), the data loader's error (logged with its file:line reason), or the
 * RPC layer's (e.g. the listen URL is taken). On success *out gets a new inferer
 * the caller frees with psf_inferer_free. */
PSF_NODISCARD psf_err psf_inferer_new(const psf_config *cfg, const psf_node_cfg *node,
    const psf_inferer_opts *opts, psf_inferer **out);

/* psf_inferer_url returns the URL clients dial (with the real port). Valid until
 * psf_inferer_free. */
const char *psf_inferer_url(const psf_inferer *inf);

/* psf_inferer_refresh runs one refresh now: the version check, and a fetch and
 * swap when a ps reports a version the current model does not have. *version_out
 * (may be NULL) gets the model version served afterwards (0 = none yet). Returns
 * PSF_OK (also when nothing changed), PSF_EUNAVAIL / PSF_ETIMEDOUT (a ps did not
 * answer), PSF_ESTATE (sync/ssp: shard versions stayed unequal, or ps0 has no
 * feature statistics yet; the old model stays), PSF_EPROTO (statistics of the
 * wrong length), PSF_ENOMEM. Concurrent refreshes run one at a time. */
PSF_NODISCARD psf_err psf_inferer_refresh(psf_inferer *inf, uint64_t *version_out);

/* psf_inferer_version returns the model version being served (0 = none yet). */
uint64_t psf_inferer_version(psf_inferer *inf);

/* psf_inferer_free stops the refresh thread and the server (requests in flight
 * finish first) and frees everything. NULL is fine. */
void psf_inferer_free(psf_inferer *inf);

/* psf_inferer_run is `psfleet node CONFIG --id <inferer id>`: psf_inferer_new,
 * then serve until SIGINT/SIGTERM or an Admin/Shutdown call. */
PSF_NODISCARD psf_err psf_inferer_run(const psf_config *cfg, const psf_node_cfg *node,
    const psf_inferer_opts *opts);

#endif
