/* ps.h -- a parameter-server node (DESIGN.md §4-§6).
 *
 * A ps node holds its shard of every tensor (rendezvous hashing of parameter keys
 * over the config's ps nodes) in LMDB, applies pushed gradients with the config's
 * optimizer, and serves the ParameterServer and Admin services.
 *
 * Worker protocol (trainer/ps_client.c is the reference client), per shard:
 *   RegisterWorker(worker, n)      -> worker_index, clock (the clock to resume at),
 *                                     last_seq, model_version
 *   loop over steps c = clock, clock + 1, ...:
 *     Pull(worker, clock = c, keys)    sync: waits until rounds 0..c-1 are applied;
 *                                      ssp: waits while c > slowest live clock + s;
 *                                      async: never waits. DEADLINE_EXCEEDED after
 *                                      the request's deadline (retry the pull).
 *     Push(worker, seq, clock = c, keys, lens, grads)   to every shard, even with no
 *                                      keys, so every shard sees every clock. (worker,
 *                                      seq) is applied once; a repeat answers
 *                                      duplicate = true. In sync mode a push for a
 *                                      round that already closed without the worker
 *                                      (it was dropped as a straggler) gets
 *                                      ABORTED: re-register and resume at the clock
 *                                      it returns. FAILED_PRECONDITION means "not
 *                                      registered" (e.g. the ps restarted).
 *   Clock(worker, clock, done)     heartbeat while not pushing; done = leave.
 * A worker's clock is the number of steps it has pushed. Workers named in the
 * config's trainers are expected from the start; in sync mode a round waits for
 * every expected or registered worker that is live, and drops one that has not
 * pushed within straggler_timeout_ms of the round opening. */
#ifndef PSF_PS_H
#define PSF_PS_H

#include <stdbool.h>

#include "lib/base/err.h"
#include "lib/config/config.h"

typedef struct psf_ps psf_ps;

/* What a ps does with the store it finds at start-up. 0 and 1 are false and
 * true, as when this was a bool. */
typedef enum psf_ps_reset {
	PSF_PS_RESET_NONE = 0, /* resume a store that fits the config, refuse another */
	PSF_PS_RESET_MISFIT,   /* --reset: discard a store that does not fit the config */
	PSF_PS_RESET_ALWAYS,   /* --fresh: discard any store, train afresh */
} psf_ps_reset;

typedef struct psf_ps_opts {
	psf_ps_reset reset;  /* what to do with the store found */
	const char *listen;  /* override node->listen (tests: port 0) */
	const char *metrics; /* override node->metrics; "" = no HTTP endpoint */
	const char *restore; /* a `psfleet backup` directory: start from <restore>/<id>
	                        (into an empty data_dir; restore.c) */
} psf_ps_opts;

/* psf_ps_new opens the store (creating and initialising the shard's tensors on
 * first start, resuming otherwise), and starts serving. A store made by an
 * incompatible config (another model layout or sharding), or trained with other
 * training settings (settings.c: optimizer, schedule, epochs, features, data...),
 * fails with PSF_ECONFIG and one error line naming the difference (for settings:
 * every changed key with its stored and new value), unless opts->reset is
 * PSF_PS_RESET_MISFIT, which discards such a store; PSF_PS_RESET_ALWAYS discards
 * the store whatever it holds. A
 * store from before settings were recorded is resumed and gets the config's. */
PSF_NODISCARD psf_err psf_ps_new(const psf_config *cfg, const psf_node_cfg *node,
    const psf_ps_opts *opts, psf_ps **out);

/* psf_ps_url returns the URL clients dial (with the real port). */
const char *psf_ps_url(const psf_ps *ps);

/* psf_ps_free stops serving, answers parked calls with UNAVAILABLE, and closes
 * the store. NULL is fine. */
void psf_ps_free(psf_ps *ps);

/* psf_ps_run is `psfleet node CONFIG --id <ps id>`: psf_ps_new, then serve until
 * SIGINT/SIGTERM or an Admin/Shutdown call. */
PSF_NODISCARD psf_err psf_ps_run(const psf_config *cfg, const psf_node_cfg *node,
    const psf_ps_opts *opts);

#endif
