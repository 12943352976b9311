/* push_pull.c -- the fused step: psf_ps_client_push_pull (ps_client.h).
 *
 * One PushPull per shard carries the push of step c and the pull of step c + 1;
 * in sync mode the shard answers once round c closed, in ssp once the pull of
 * c + 1 may proceed, in async at once. A step costs one round trip to every
 * shard instead of two (and half the messages, hence half the thread wake-ups
 * on both sides: docs/performance.md). Faults take the plain paths: a shard
 * whose PushPull failed gets its push re-sent as a Push with the same seq (the
 * shard dedups), and the caller pulls the next step's keys itself. Local SGD
 * does not come here (its pushes are the blocks' deltas). */
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/net/methods.h"
#include "trainer/ps_client_internal.h"

/* fits: whether the next step's keys, routed into w->pbufs, fit one pull request
 * per shard (the split pull path cuts bigger ones into pieces). */
static bool
fits(psf_ps_client *w)
{
	for (size_t s = 0; s < w->n_ps; s++) {
		const shard_buf *b = &w->pbufs[s];
		size_t bytes = 0;
		if (b->n > w->cfg->limits.max_keys_per_request)
			return false;
		for (size_t i = 0; i < b->n; i++)
			bytes += (size_t)psf_model_key_len(w->model, b->keys[i]) * 4;
		if (bytes > PULL_PIECE_BYTES)
			return false;
	}
	return true;
}

/* collect waits for shard s's PushPull. On PSF_OK the push is recorded and, when
 * *pulled, dst holds the shard's part of the next step. A failed PushPull falls
 * back to re-sending the push alone (*pulled = false). */
static psf_err
collect(psf_ps_client *w, size_t s, int64_t clock, uint64_t seq,
    const Psfleet__V1__PushRequest *push, psf_params *dst, psf_push_result *out, bool *pulled,
    psf_rpc_status *st)
{
	Psfleet__V1__PushPullReply *r = NULL;
	Psfleet__V1__PushReply *pr = NULL;
	psf_err err = w->pend[s] != NULL
	    ? psf_rpc_pending_wait(w->pend[s], &psfleet__v1__push_pull_reply__descriptor,
	          (ProtobufCMessage **)&r, st)
	    : PSF_EUNAVAIL;

	if (err == PSF_OK && (r->push == NULL || r->pull == NULL))
		err = PSF_EPROTO;
	if (err == PSF_OK) {
		ps_client_push_done(w, s, clock, seq, r->push, out);
		err = ps_client_store_pulled(r->pull, dst);
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return err;
	}
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	*pulled = false;
	if (w->pend[s] == NULL || err == PSF_EPROTO)
		st->code = PSF_STATUS_UNAVAILABLE; /* send the push alone */
	if ((err = ps_client_push_slow(w, s, push, err, &pr, st)) != PSF_OK)
		return err;
	ps_client_push_done(w, s, clock, seq, pr, out);
	protobuf_c_message_free_unpacked(&pr->base, NULL);
	return PSF_OK;
}

psf_err
psf_ps_client_push_pull(psf_ps_client *w, int64_t clock, const psf_params *grads,
    const uint64_t *keys, size_t n, uint64_t n_samples, double loss, const uint64_t *next_keys,
    size_t n_next, psf_params *dst, psf_push_result *res, bool *pulled)
{
	psf_push_result out = {0, 0, 0};
	Psfleet__V1__PushRequest *reqs = NULL;
	Psfleet__V1__PullRequest *pulls = NULL;
	uint64_t seq = w->next_seq;
	bool aborted = false;
	psf_err err;

	*pulled = false;
	if (w->cfg->consistency.mode == PSF_CONS_LOCAL ||
	    (err = ps_client_route(w, w->pbufs, next_keys, n_next)) != PSF_OK || !fits(w))
		return psf_ps_client_push(w, clock, grads, keys, n, n_samples, loss, res);
	reqs = calloc(w->n_ps, sizeof(*reqs));
	pulls = calloc(w->n_ps, sizeof(*pulls));
	err = reqs != NULL && pulls != NULL ? ps_client_route(w, w->bufs, keys, n) : PSF_ENOMEM;
	*pulled = true;
	for (size_t s = 0; s < w->n_ps && err == PSF_OK; s++) {
		Psfleet__V1__PushPullRequest pp = PSFLEET__V1__PUSH_PULL_REQUEST__INIT;
		/* not idempotent: no copy kept */
		psf_rpc_call_opts o = psf_rpc_group_call_opts(w->groups[s], NULL);

		w->pend[s] = NULL;
		if (w->shard_clock[s] > clock) { /* applied already (a crash between shards) */
			*pulled = false;
			continue;
		}
		if ((err = ps_client_push_request(w, s, grads, clock, seq, n_samples, loss,
		         &reqs[s])) != PSF_OK)
			break;
		psfleet__v1__pull_request__init(&pulls[s]);
		pulls[s].worker = w->id;
		pulls[s].clock = clock + 1;
		pulls[s].n_keys = w->pbufs[s].n;
		pulls[s].keys = w->pbufs[s].keys;
		pp.push = &reqs[s];
		pp.pull = &pulls[s];
		if (psf_rpc_call_start(ps_client_conn(w, s), PSF_M_PUSH_PULL, &pp.base, &o,
		        &w->pend[s]) != PSF_OK)
			w->pend[s] = NULL; /* collect takes the slow path */
	}
	for (size_t s = 0; s < w->n_ps && err == PSF_OK; s++) {
		psf_rpc_status st;

		if (w->shard_clock[s] > clock)
			continue;
		err = collect(w, s, clock, seq, &reqs[s], dst, &out, pulled, &st);
		psf_rpc_pending_free(w->pend[s]);
		w->pend[s] = NULL;
		if (err != PSF_OK && st.code == PSF_STATUS_ABORTED) {
			psf_log_warn("ps_client", "shard %zu: %s", s, st.message);
			aborted = true;
			err = PSF_OK;
		} else if (err != PSF_OK && err != PSF_ECLOSED) {
			psf_log_err("ps_client", "push_pull to shard %zu at clock %lld: %s", s,
			    (long long)clock, err == PSF_EPROTO ? "malformed reply" : st.message);
		}
	}
	for (size_t s = 0; s < w->n_ps; s++) { /* after an error: drop the rest */
		psf_rpc_pending_free(w->pend[s]);
		w->pend[s] = NULL;
	}
	free(reqs);
	free(pulls);
	if (err != PSF_OK) {
		*pulled = false;
		return err;
	}
	w->next_seq = seq + 1;
	if (aborted) {
		*pulled = false;
		if ((err = ps_client_register_all(w)) != PSF_OK)
			return err;
		psf_log_warn("ps_client", "%s rejoins at clock %lld", w->id, (long long)w->clock);
		return PSF_ESTATE;
	}
	w->clock = clock + 1;
	if (res != NULL)
		*res = out;
	return PSF_OK;
}
