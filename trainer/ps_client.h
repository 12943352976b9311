/* ps_client.h -- a trainer's client of the parameter servers (ps-lite calls it the "worker";
 * here a worker is the ps's record of a trainer).
 *
 * One psf_ps_client talks to every ps shard of the fleet. Keys are routed to their
 * shard by the config's shard map (rendezvous hashing, lib/base/shard.h); pull and
 * push fan out to all shards concurrently and return when every shard answered.
 * (ps-lite returns a timestamp and waits later; psfleet's loop always needs the
 * pull before computing and the push before the next pull, so the call itself
 * waits — the shards are still served in parallel.)
 *
 * Faults are handled here, not by the training loop:
 *  - a ps that restarts: calls retry with backoff until retry_ms; the worker
 *    registers again with a shard that forgot it (FAILED_PRECONDITION);
 *  - a push is re-sent with the same sequence number, so a shard that had applied
 *    it answers duplicate and nothing is applied twice;
 *  - a shard that already has the push of a clock (a crash between shards) is
 *    not sent it again;
 *  - in sync mode a push for a round that closed without this worker gets
 *    ABORTED: psf_ps_client_push returns PSF_ESTATE after re-registering, and
 *    psf_ps_client_clock() tells the clock to continue at.
 * Not thread-safe: one training thread uses a worker. */
#ifndef PSF_TRAINER_PS_CLIENT_H
#define PSF_TRAINER_PS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/config/config.h"
#include "lib/model/model.h"
#include "psfleet.pb-c.h"

typedef struct psf_ps_client psf_ps_client;

typedef struct psf_ps_client_opts {
	const char *const *ps_urls; /* one per ps node, in config order; NULL = the config's */
	uint32_t retry_ms;          /* give up on a shard after this long; 0 = 120000 */
	/* stop (may be NULL): asked between retries; true ends the call with
	 * PSF_ECLOSED (a node's stop request; see also psf_ps_client_abort) */
	bool (*stop)(void *arg);
	void *stop_arg;
} psf_ps_client_opts;

/* Outcome of a push, summed over shards. */
typedef struct psf_push_result {
	uint64_t model_version; /* max over shards */
	uint32_t duplicates;    /* shards that had it already */
	int64_t max_staleness;
} psf_push_result;

/* psf_ps_client_open connects to every ps node and registers as worker `id` (which
 * should be a trainer id of the config). The worker's clock starts at the
 * smallest clock any shard reports (see psf_ps_client_clock). It is psf_ps_client_new
 * then psf_ps_client_register, and closes the worker when the registration fails. */
PSF_NODISCARD psf_err psf_ps_client_open(const psf_config *cfg, const psf_model *model,
    const char *id, const psf_ps_client_opts *opts, psf_ps_client **out);

/* psf_ps_client_new is the first half of psf_ps_client_open: it makes worker `id` and
 * starts its clients dialing every ps node, without waiting for a connection and
 * without registering. A caller whose stop request must cut the registration
 * short hands w to its stop watcher (psf_ps_client_abort) before registering. */
PSF_NODISCARD psf_err psf_ps_client_new(const psf_config *cfg, const psf_model *model,
    const char *id, const psf_ps_client_opts *opts, psf_ps_client **out);

/* psf_ps_client_register is the second half of psf_ps_client_open: it registers with
 * every ps shard (retrying until retry_ms while one is unreachable) and sets the
 * clock as psf_ps_client_open says. PSF_ECLOSED: a stop was requested or w aborted;
 * w still needs psf_ps_client_close. Call it once, before any other call on w. */
PSF_NODISCARD psf_err psf_ps_client_register(psf_ps_client *w);

/* psf_ps_client_close closes the connections. NULL is fine. */
void psf_ps_client_close(psf_ps_client *w);

/* psf_ps_client_abort cuts every call of w short: calls in flight and later ones end
 * with PSF_ECLOSED. Safe from another thread while w is in use (a stop request
 * must not wait for a parked Pull's deadline); psf_ps_client_close is still needed. */
void psf_ps_client_abort(psf_ps_client *w);

/* psf_ps_client_clock returns the clock (step) to compute next. */
int64_t psf_ps_client_clock(const psf_ps_client *w);

/* psf_ps_client_index returns the worker's index on shard 0. */
uint32_t psf_ps_client_index(const psf_ps_client *w);

/* psf_ps_client_pull fetches keys[0..n) (any order, duplicates allowed) for step
 * `clock` into dst (psf_params_set_key), waiting as the consistency mode says.
 * In sync mode every shard is asked, with no keys when none of them route to it,
 * so the barrier holds on every shard (a shard takes a push for clock c only
 * while its round c is open). *version_out (may be NULL) gets the smallest model
 * version among the shards asked. */
PSF_NODISCARD psf_err psf_ps_client_pull(psf_ps_client *w, int64_t clock, const uint64_t *keys,
    size_t n, psf_params *dst, uint64_t *version_out);

/* psf_ps_client_push sends the gradients of keys[0..n) (all present in grads) for
 * step `clock` to their shards, and an empty push to the others so every shard
 * sees the clock. On PSF_OK the worker's clock becomes clock + 1. PSF_ESTATE: the
 * round moved on without this worker (sync); the worker re-registered and
 * psf_ps_client_clock() says where to continue. */
PSF_NODISCARD psf_err psf_ps_client_push(psf_ps_client *w, int64_t clock, const psf_params *grads,
    const uint64_t *keys, size_t n, uint64_t n_samples, double loss, psf_push_result *res);

/* psf_ps_client_push_pull is psf_ps_client_push of step `clock` fused with the
 * pull of the next step's keys next_keys[0..n_next) into dst: one PushPull round
 * trip per shard instead of a Push and a Pull (sync: the shard answers once
 * round `clock` closed; ssp: once a pull of clock + 1 may proceed; async: at
 * once). Returns as psf_ps_client_push does. *pulled tells whether dst now holds
 * the next step's weights (as psf_ps_client_pull of clock + 1 would); false in
 * local mode, when the keys need more than one request per shard, or when a
 * shard's PushPull failed and its push was re-sent alone: the caller then pulls
 * as usual. */
PSF_NODISCARD psf_err psf_ps_client_push_pull(psf_ps_client *w, int64_t clock,
    const psf_params *grads, const uint64_t *keys, size_t n, uint64_t n_samples, double loss,
    const uint64_t *next_keys, size_t n_next, psf_params *dst, psf_push_result *res, bool *pulled);

/* psf_ps_client_set_total_steps records how many steps this worker will take in the
 * whole run; every later heartbeat announces it (the ps derives a cosine
 * schedule's horizon from it). Cannot fail. */
void psf_ps_client_set_total_steps(psf_ps_client *w, uint64_t total_steps);

/* psf_ps_client_heartbeat tells every shard the worker is alive at its clock;
 * done = true leaves the group (training finished). */
PSF_NODISCARD psf_err psf_ps_client_heartbeat(psf_ps_client *w, bool done);

/* psf_ps_client_reduce sums values[0..n) element-wise over `expected` workers under
 * `name` through shard 0, waiting until all contributed; the sums replace values. */
PSF_NODISCARD psf_err psf_ps_client_reduce(psf_ps_client *w, const char *name, uint32_t expected,
    double *values, size_t n);

/* psf_ps_client_report sends evaluation metrics to shard 0 (report->worker is set
 * by this call). */
PSF_NODISCARD psf_err psf_ps_client_report(psf_ps_client *w, Psfleet__V1__MetricsReport *report);

/* psf_ps_client_assign sets keys[0..n) (all present in values) to those values
 * on their shards (the Assign RPC): each shard applies it once, under the
 * worker's next push sequence number, as a new model version. A shard that owns
 * none of the keys gets an empty Assign, so every shard moves to a new version
 * together. *version_out (may be NULL) gets the largest
 * new version. */
PSF_NODISCARD psf_err psf_ps_client_assign(psf_ps_client *w, const psf_params *values,
    const uint64_t *keys, size_t n, uint64_t *version_out);

/* psf_ps_client_fine_tune asks shard 0 for the latest fine-tuning round
 * (FineTune RPC), after beginning round begin_round at start_clock when
 * begin_round > 0 and it is not begun yet; with_samples brings its samples.
 * *out gets a reply to free with protobuf_c_message_free_unpacked; its round
 * is begin_round when that round is begun (now or before), else the latest
 * (no new samples). */
PSF_NODISCARD psf_err psf_ps_client_fine_tune(psf_ps_client *w, uint64_t begin_round,
    int64_t start_clock, bool with_samples, Psfleet__V1__FineTuneReply **out);

#endif
