#include "trainer/ps_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/shard.h"
#include "lib/base/util.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "lib/net/wire.h"
#include "lib/runtime/runtime.h"
#include "trainer/internal.h"
#include "trainer/ps_client_internal.h"

/* stopping: a stop was requested, or the clients were shut down (abort). */
bool
ps_client_stopping(const psf_ps_client *w, psf_err err)
{
	return err == PSF_ECLOSED || (w->stop != NULL && w->stop(w->stop_arg));
}

psf_err
ps_client_register_shard(psf_ps_client *w, size_t s)
{
	Psfleet__V1__RegisterRequest req = PSFLEET__V1__REGISTER_REQUEST__INIT;
	Psfleet__V1__RegisterReply *r = NULL;
	/* fail_fast: while the shard is unreachable each attempt returns at once, so
	 * a stop request is seen within the (at most 200 ms) pause between attempts.
	 * The pause starts short: the first attempt comes right after the client
	 * started dialing, usually a few ms before the connection is up. */
	psf_rpc_call_opts o = {0, 1, 1};
	psf_rpc_status st;
	uint64_t until = psf_now_ms() + w->retry_ms;
	uint32_t pause_ms = 5;
	psf_err err;

	req.worker = w->id;
	req.num_workers = (uint32_t)w->cfg->n_trainers;
	for (;;) {
		err = psf_rpc_group_call(w->groups[s], PSF_M_REGISTER, &req.base,
		    &psfleet__v1__register_reply__descriptor, &o, (ProtobufCMessage **)&r, &st);
		if (err == PSF_OK)
			break;
		if (ps_client_stopping(w, err))
			return PSF_ECLOSED;
		if ((st.code != PSF_STATUS_UNAVAILABLE &&
		        st.code != PSF_STATUS_DEADLINE_EXCEEDED) ||
		    psf_now_ms() >= until) {
			psf_log_err("ps_client", "register with ps shard %zu (%s): %s", s,
			    psf_rpc_client_url(ps_client_conn(w, s)), st.message);
			return err;
		}
		psf_sleep_ms(pause_ms);
		pause_ms = pause_ms * 2 > 200 ? 200 : pause_ms * 2;
	}
	w->shard_clock[s] = r->clock;
	w->shard_seq[s] = r->last_seq;
	if (s == 0)
		w->index = r->worker_index;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return PSF_OK;
}

/* register_all (re)registers with every shard and derives clock and seq. */
psf_err
ps_client_register_all(psf_ps_client *w)
{
	uint64_t max_seq = 0;
	psf_err err;

	w->clock = INT64_MAX;
	for (size_t s = 0; s < w->n_ps; s++) {
		if ((err = ps_client_register_shard(w, s)) != PSF_OK)
			return err;
		if (w->shard_clock[s] < w->clock)
			w->clock = w->shard_clock[s];
		if (w->shard_seq[s] > max_seq)
			max_seq = w->shard_seq[s];
	}
	if (max_seq + 1 > w->next_seq)
		w->next_seq = max_seq + 1;
	return PSF_OK;
}

psf_err
psf_ps_client_new(const psf_config *cfg, const psf_model *model, const char *id,
    const psf_ps_client_opts *opts, psf_ps_client **out)
{
	psf_ps_client *w = calloc(1, sizeof(*w));
	psf_rpc_client_opts co;
	psf_err err = PSF_ENOMEM;

	if (w == NULL)
		return PSF_ENOMEM;
	if ((err = psf_pull_reply_check_fields()) != PSF_OK)
		goto fail;
	w->cfg = cfg;
	w->model = model;
	w->n_ps = cfg->n_shards;
	w->retry_ms = (opts != NULL && opts->retry_ms != 0) ? opts->retry_ms : 120000;
	if (opts != NULL) {
		w->stop = opts->stop;
		w->stop_arg = opts->stop_arg;
	}
	w->next_seq = 1;
	{
		uint32_t rw = cfg->limits.rpc_workers, cap = rw - (rw / 8 > 1 ? rw / 8 : 1);
		cap = rw > 1 && cap > 2 ? cap : 2;
		w->window = cap - 1 < PULL_WINDOW ? cap - 1 : PULL_WINDOW;
	}
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->groups = calloc(w->n_ps, sizeof(*w->groups));
	w->seeds = calloc(w->n_ps, sizeof(*w->seeds));
	w->shard_clock = calloc(w->n_ps, sizeof(*w->shard_clock));
	w->shard_seq = calloc(w->n_ps, sizeof(*w->shard_seq));
	w->bufs = calloc(w->n_ps, sizeof(*w->bufs));
	w->pbufs = calloc(w->n_ps, sizeof(*w->pbufs));
	w->pend = calloc(w->n_ps > PULL_WINDOW ? w->n_ps : PULL_WINDOW, sizeof(*w->pend));
	if (!w->groups || !w->seeds || !w->shard_clock || !w->shard_seq || !w->bufs || !w->pbufs ||
	    !w->pend)
		goto fail;
	if ((err = psf_runtime_client_opts(cfg, w->token, sizeof(w->token), &co)) != PSF_OK)
		goto fail;
	for (size_t s = 0; s < w->n_ps; s++) {
		w->seeds[s] = psf_shard_node_seed(cfg->nodes[s].id);
		if ((err = psf_runtime_shard_group(cfg, s, opts != NULL ? opts->ps_urls : NULL, &co,
		         &w->groups[s])) != PSF_OK)
			goto fail;
	}
	*out = w;
	return PSF_OK;
fail:
	psf_ps_client_close(w);
	return err;
}

psf_err
psf_ps_client_register(psf_ps_client *w)
{
	psf_err err = ps_client_register_all(w);

	if (err != PSF_OK)
		return err;
	psf_log_info("ps_client", "%s registered with %zu ps shard(s): clock %lld, next seq %llu",
	    w->id, w->n_ps, (long long)w->clock, (unsigned long long)w->next_seq);
	return PSF_OK;
}

psf_err
psf_ps_client_open(const psf_config *cfg, const psf_model *model, const char *id,
    const psf_ps_client_opts *opts, psf_ps_client **out)
{
	psf_ps_client *w = NULL;
	psf_err err;

	if ((err = psf_ps_client_new(cfg, model, id, opts, &w)) != PSF_OK)
		return err;
	if ((err = psf_ps_client_register(w)) != PSF_OK) {
		psf_ps_client_close(w);
		return err;
	}
	*out = w;
	return PSF_OK;
}

void
psf_ps_client_abort(psf_ps_client *w)
{
	for (size_t s = 0; w->groups != NULL && s < w->n_ps; s++)
		psf_rpc_group_shutdown(w->groups[s]);
}

void
psf_ps_client_close(psf_ps_client *w)
{
	if (w == NULL)
		return;
	for (size_t s = 0; w->groups != NULL && s < w->n_ps; s++)
		psf_rpc_group_close(w->groups[s]);
	for (size_t s = 0; w->bufs != NULL && s < w->n_ps; s++) {
		free(w->bufs[s].keys);
		free(w->bufs[s].lens);
		free(w->bufs[s].values);
	}
	for (size_t s = 0; w->pbufs != NULL && s < w->n_ps; s++) {
		free(w->pbufs[s].keys);
		free(w->pbufs[s].lens);
	}
	free(w->pbufs);
	free(w->groups);
	free(w->seeds);
	free(w->shard_clock);
	free(w->shard_seq);
	free(w->bufs);
	free(w->pieces);
	free(w->rkeys);
	free(w->rlens);
	free(w->pend);
	free(w);
}

int64_t
psf_ps_client_clock(const psf_ps_client *w)
{
	return w->clock;
}

uint32_t
psf_ps_client_index(const psf_ps_client *w)
{
	return w->index;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

psf_err
ps_client_route(psf_ps_client *w, shard_buf *bufs, const uint64_t *keys, size_t n)
{
	for (size_t s = 0; s < w->n_ps; s++)
		bufs[s].n = 0;
	for (size_t i = 0; i < n; i++) {
		size_t s = w->n_ps == 1 ? 0 : psf_shard_pick(keys[i], w->seeds, w->n_ps);
		shard_buf *b = &bufs[s];
		if (b->n == b->cap) {
			size_t cap = b->cap ? b->cap * 2 : 64;
			uint64_t *k = realloc(b->keys, cap * sizeof(*k));
			if (k == NULL)
				return PSF_ENOMEM;
			b->keys = k;
			uint32_t *l = realloc(b->lens, cap * sizeof(*l));
			if (l == NULL)
				return PSF_ENOMEM;
			b->lens = l;
			b->cap = cap;
		}
		b->keys[b->n++] = keys[i];
	}
	for (size_t s = 0; s < w->n_ps; s++) {
		shard_buf *b = &bufs[s];
		size_t u = 0;
		if (b->n == 0)
			continue; /* keys is still NULL: qsort(NULL, 0) is undefined */
		qsort(b->keys, b->n, sizeof(*b->keys), cmp_u64);
		for (size_t i = 0; i < b->n; i++) {
			if (u == 0 || b->keys[i] != b->keys[u - 1])
				b->keys[u++] = b->keys[i];
		}
		b->n = u;
	}
	return PSF_OK;
}

/* retryable: transport trouble, a restarting ps, or a pull still parked. */
bool
ps_client_retryable(const psf_rpc_status *st)
{
	return st->code == PSF_STATUS_UNAVAILABLE || st->code == PSF_STATUS_DEADLINE_EXCEEDED;
}

/* call_shard makes one call with the worker's retry policy. A call that is not
 * idempotent at the RPC layer (Push: its big request would be copied for every
 * possible re-send) is retried here instead, with the same request. */
psf_err
ps_client_call_shard(psf_ps_client *w, size_t s, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *desc, int idempotent, ProtobufCMessage **reply,
    psf_rpc_status *st)
{
	psf_rpc_call_opts o = {0, idempotent, 0};
	uint64_t until = psf_now_ms() + w->retry_ms;
	uint32_t backoff = 50;
	psf_err err;

	for (;;) {
		err = psf_rpc_group_call(w->groups[s], method, req, desc, &o, reply, st);
		if (err == PSF_OK)
			return PSF_OK;
		if (ps_client_stopping(w, err))
			return PSF_ECLOSED;
		if (st->code == PSF_STATUS_FAILED_PRECONDITION) {
			/* the shard forgot us (restart): register and try again */
			psf_err rerr = ps_client_register_shard(w, s);
			if (rerr != PSF_OK)
				return rerr == PSF_ECLOSED ? rerr : err;
		} else if (!ps_client_retryable(st) || psf_now_ms() >= until) {
			return err;
		} else if (st->code == PSF_STATUS_UNAVAILABLE) {
			/* a replicated shard fails over within about a lease: look again
			 * every 200 ms at most, not every 2 s */
			uint32_t cap = psf_rpc_group_size(w->groups[s]) > 1 ? 200 : 2000;
			psf_sleep_ms(backoff);
			backoff = backoff * 2 > cap ? cap : backoff * 2;
		}
	}
}

psf_err
ps_client_store_pulled(const Psfleet__V1__PullReply *r, psf_params *dst)
{
	size_t off = 0;
	psf_err err;

	if (r->n_lens != r->n_keys)
		return PSF_EPROTO;
	for (size_t i = 0; i < r->n_keys; i++) {
		if ((off + r->lens[i]) * 4 > r->values.len)
			return PSF_EPROTO;
		err = psf_params_set_key(dst, r->keys[i], r->values.data + off * 4, r->lens[i]);
		if (err != PSF_OK)
			return err;
		off += r->lens[i];
	}
	return PSF_OK;
}

/* store_pull_reply stores the values of a serialized PullReply into dst,
 * copying each value once, straight from the reply message. */
static psf_err
store_pull_reply(psf_ps_client *w, const uint8_t *buf, size_t len, psf_params *dst,
    uint64_t *version)
{
	psf_pull_view v;
	size_t off = 0;
	psf_err err;

	if ((err = psf_pull_reply_scan(buf, len, NULL, NULL, &v)) != PSF_OK)
		return err;
	if (v.n_keys != v.n_lens)
		return PSF_EPROTO;
	if (v.n_keys > w->rcap) {
		uint64_t *k = realloc(w->rkeys, v.n_keys * sizeof(*k));
		if (k != NULL)
			w->rkeys = k;
		uint32_t *l = realloc(w->rlens, v.n_keys * sizeof(*l));
		if (l != NULL)
			w->rlens = l;
		if (k == NULL || l == NULL)
			return PSF_ENOMEM;
		w->rcap = v.n_keys;
	}
	if ((err = psf_pull_reply_scan(buf, len, w->rkeys, w->rlens, &v)) != PSF_OK)
		return err;
	for (size_t i = 0; i < v.n_keys; i++) {
		if (w->rlens[i] > (v.values_len - off) / 4)
			return PSF_EPROTO;
		err = psf_params_set_key(dst, w->rkeys[i], v.values + off, w->rlens[i]);
		if (err != PSF_OK)
			return err;
		off += (size_t)w->rlens[i] * 4;
	}
	*version = v.version;
	return PSF_OK;
}

/* ---- pull ---------------------------------------------------------------- */

/* add_piece appends piece {s, first, n} to w->pieces[0..*n_pieces). */
static psf_err
add_piece(psf_ps_client *w, size_t *n_pieces, size_t s, size_t first, size_t n)
{
	if (*n_pieces == w->pieces_cap) {
		size_t cap = w->pieces_cap ? w->pieces_cap * 2 : 16;
		pull_piece *np = realloc(w->pieces, cap * sizeof(*np));
		if (np == NULL)
			return PSF_ENOMEM;
		w->pieces = np;
		w->pieces_cap = cap;
	}
	w->pieces[(*n_pieces)++] = (pull_piece){s, first, n};
	return PSF_OK;
}

/* plan_pieces cuts every shard's routed keys into pull requests of at most
 * PULL_PIECE_BYTES of values (a bigger key alone) and max_keys_per_request keys;
 * keys of PULL_ALONE_BYTES or more get a request of their own.
 *
 * In sync mode a shard none of the keys route to still gets a pull, with no
 * keys: it is that shard's barrier. Every push goes to every shard, and a shard
 * takes a worker's push for round c only while round c is open there; without
 * the pull, a worker could finish step c on the shards it pulls from and push
 * c + 1 to a shard where round c is still open (ABORTED). */
static psf_err
plan_pieces(psf_ps_client *w, size_t *n_out)
{
	size_t n = 0, max_keys = w->cfg->limits.max_keys_per_request;
	bool sync = psf_consistency_rounds(w->cfg->consistency.mode);
	psf_err err;

	for (size_t s = 0; s < w->n_ps; s++) {
		const shard_buf *b = &w->bufs[s];
		size_t bytes = 0;
		bool open = false; /* the last piece takes more keys */
		if (b->n == 0 && sync && (err = add_piece(w, &n, s, 0, 0)) != PSF_OK)
			return err;
		for (size_t i = 0; i < b->n; i++) {
			size_t kb = (size_t)psf_model_key_len(w->model, b->keys[i]) * 4;
			if (open && kb < PULL_ALONE_BYTES && bytes + kb <= PULL_PIECE_BYTES &&
			    w->pieces[n - 1].n < max_keys) {
				w->pieces[n - 1].n++;
				bytes += kb;
				continue;
			}
			if ((err = add_piece(w, &n, s, i, 1)) != PSF_OK)
				return err;
			bytes = kb;
			open = kb < PULL_ALONE_BYTES;
		}
	}
	*n_out = n;
	return PSF_OK;
}

static void
pull_request(psf_ps_client *w, const pull_piece *pc, int64_t clock, Psfleet__V1__PullRequest *req)
{
	psfleet__v1__pull_request__init(req);
	req->worker = w->id;
	req->clock = clock;
	req->n_keys = pc->n;
	req->keys = pc->n > 0 ? w->bufs[pc->shard].keys + pc->first : NULL;
}

/* start_piece sends one pull request; on failure *pend stays NULL and the
 * piece takes the slow path when collected. */
static void
start_piece(psf_ps_client *w, const pull_piece *pc, int64_t clock, psf_rpc_pending **pend)
{
	Psfleet__V1__PullRequest req;
	psf_rpc_call_opts o1 = {0, 1, 0}, o = psf_rpc_group_call_opts(w->groups[pc->shard], &o1);

	pull_request(w, pc, clock, &req);
	if (psf_rpc_call_start(ps_client_conn(w, pc->shard), PSF_M_PULL, &req.base, &o, pend) !=
	    PSF_OK)
		*pend = NULL;
}

/* finish_piece collects one pull request into dst. */
static psf_err
finish_piece(psf_ps_client *w, const pull_piece *pc, int64_t clock, psf_rpc_pending *pend,
    psf_params *dst, uint64_t *version)
{
	Psfleet__V1__PullRequest req;
	Psfleet__V1__PullReply *r = NULL;
	const uint8_t *payload;
	size_t len;
	psf_rpc_status st;
	psf_err err =
	    pend != NULL ? psf_rpc_pending_wait_raw(pend, &payload, &len, &st) : PSF_EUNAVAIL;

	if (err == PSF_OK) {
		if ((err = store_pull_reply(w, payload, len, dst, version)) == PSF_EPROTO)
			psf_log_err("ps_client",
			    "pull from shard %zu: malformed PullReply (%zu bytes)", pc->shard, len);
		return err;
	}
	/* slow path: retries, re-registration, waiting */
	pull_request(w, pc, clock, &req);
	err = ps_client_call_shard(w, pc->shard, PSF_M_PULL, &req.base,
	    &psfleet__v1__pull_reply__descriptor, 1, (ProtobufCMessage **)&r, &st);
	if (err != PSF_OK) {
		if (err != PSF_ECLOSED) /* not a stop request */
			psf_log_err("ps_client", "pull from shard %zu at clock %lld: %s", pc->shard,
			    (long long)clock, st.message);
		return err;
	}
	err = ps_client_store_pulled(r, dst);
	*version = r->model_version;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return err;
}

psf_err
psf_ps_client_pull(psf_ps_client *w, int64_t clock, const uint64_t *keys, size_t n, psf_params *dst,
    uint64_t *version_out)
{
	uint64_t min_version = UINT64_MAX, v = 0;
	size_t n_pieces = 0, i;
	psf_err err = ps_client_route(w, w->bufs, keys, n);

	if (err == PSF_OK)
		err = plan_pieces(w, &n_pieces);
	/* Keep up to PULL_WINDOW pieces in flight; collect them in order. */
	for (i = 0; i < n_pieces && i < w->window && err == PSF_OK; i++)
		start_piece(w, &w->pieces[i], clock, &w->pend[i]);
	for (i = 0; i < n_pieces && err == PSF_OK; i++) {
		psf_rpc_pending **slot = &w->pend[i % w->window];
		err = finish_piece(w, &w->pieces[i], clock, *slot, dst, &v);
		psf_rpc_pending_free(*slot);
		*slot = NULL;
		if (v < min_version)
			min_version = v;
		if (err == PSF_OK && i + w->window < n_pieces)
			start_piece(w, &w->pieces[i + w->window], clock, slot);
	}
	for (i = 0; i < PULL_WINDOW; i++) { /* after an error: drop the rest */
		psf_rpc_pending_free(w->pend[i]);
		w->pend[i] = NULL;
	}
	if (err == PSF_OK && version_out != NULL)
		*version_out = min_version == UINT64_MAX ? 0 : min_version;
	return err;
}

/* ---- push ---------------------------------------------------------------- */

/* push_values fills the lens of a shard's routed keys and finds their gradient
 * bytes: in place when the keys' values lie back to back in grads (dense chunks
 * in order: the usual case, packed into the request with no other copy), else
 * gathered into the shard's value buffer. */
psf_err
ps_client_push_values(shard_buf *b, const psf_params *grads, const uint8_t **data, size_t *len)
{
	const float *base = NULL, *next = NULL;
	size_t off = 0;
	bool contiguous = true;

	for (size_t i = 0; i < b->n; i++) {
		const float *g;
		uint32_t n;
		psf_err err = psf_params_get_key(grads, b->keys[i], &g, &n);
		if (err != PSF_OK)
			return err;
		if (i == 0)
			base = g;
		else if (g != next)
			contiguous = false;
		next = g + n;
		b->lens[i] = n;
		off += n;
	}
	*len = off * 4;
	if (contiguous) {
		*data = (const uint8_t *)base;
		return PSF_OK;
	}
	if (off * 4 > b->vcap) {
		uint8_t *v = realloc(b->values, off * 4);
		if (v == NULL)
			return PSF_ENOMEM;
		b->values = v;
		b->vcap = off * 4;
	}
	off = 0;
	for (size_t i = 0; i < b->n; i++) {
		const float *g;
		psf_err err = psf_params_get_key(grads, b->keys[i], &g, NULL);
		if (err != PSF_OK)
			return err;
		memcpy(b->values + off * 4, g, (size_t)b->lens[i] * 4);
		off += b->lens[i];
	}
	*data = b->values;
	return PSF_OK;
}

/* push_collect waits for one shard's push, taking the slow path (retries with
 * the same seq, re-registration) when the first attempt failed. */
static psf_err
push_collect(psf_ps_client *w, size_t s, const Psfleet__V1__PushRequest *req, psf_rpc_pending *pend,
    Psfleet__V1__PushReply **r, psf_rpc_status *st)
{
	psf_err err = pend != NULL
	    ? psf_rpc_pending_wait(pend, &psfleet__v1__push_reply__descriptor,
	          (ProtobufCMessage **)r, st)
	    : PSF_EUNAVAIL;

	if (err == PSF_OK)
		return PSF_OK;
	if (pend == NULL)
		st->code = PSF_STATUS_UNAVAILABLE; /* never sent: send it */
	return ps_client_push_slow(w, s, req, err, r, st);
}

psf_err
ps_client_push_slow(psf_ps_client *w, size_t s, const Psfleet__V1__PushRequest *req, psf_err err,
    Psfleet__V1__PushReply **r, psf_rpc_status *st)
{
	if (ps_client_stopping(w, err))
		return PSF_ECLOSED;
	if (st->code == PSF_STATUS_FAILED_PRECONDITION) {
		/* the shard forgot us (restart): register, then re-send */
		psf_err rerr = ps_client_register_shard(w, s);
		if (rerr != PSF_OK)
			return rerr == PSF_ECLOSED ? rerr : err;
	} else if (!ps_client_retryable(st)) {
		return err; /* rejected (or ABORTED): sending it again changes nothing */
	}
	/* Same seq on every retry: the shard dedups, so this is safe to repeat. */
	return ps_client_call_shard(w, s, PSF_M_PUSH, &req->base,
	    &psfleet__v1__push_reply__descriptor, 0, (ProtobufCMessage **)r, st);
}

psf_err
ps_client_push_request(psf_ps_client *w, size_t s, const psf_params *grads, int64_t clock,
    uint64_t seq, uint64_t n_samples, double loss, Psfleet__V1__PushRequest *req)
{
	const uint8_t *data = NULL;
	size_t len = 0;
	psf_err err = ps_client_push_values(&w->bufs[s], grads, &data, &len);

	if (err != PSF_OK)
		return err;
	psfleet__v1__push_request__init(req);
	req->worker = w->id;
	req->seq = seq;
	req->clock = clock;
	req->n_keys = req->n_lens = w->bufs[s].n;
	req->keys = w->bufs[s].keys;
	req->lens = w->bufs[s].lens;
	req->values.data = (uint8_t *)data; /* only read by packing */
	req->values.len = len;
	req->n_samples = n_samples;
	req->loss = loss;
	return PSF_OK;
}

void
ps_client_push_done(psf_ps_client *w, size_t s, int64_t clock, uint64_t seq,
    const Psfleet__V1__PushReply *r, psf_push_result *out)
{
	w->shard_clock[s] = clock + psf_clock_step(&w->cfg->consistency);
	w->shard_seq[s] = seq;
	out->duplicates += r->duplicate ? 1 : 0;
	if (r->model_version > out->model_version)
		out->model_version = r->model_version;
	if (r->staleness > out->max_staleness)
		out->max_staleness = r->staleness;
}

psf_err
psf_ps_client_push(psf_ps_client *w, int64_t clock, const psf_params *grads, const uint64_t *keys,
    size_t n, uint64_t n_samples, double loss, psf_push_result *res)
{
	psf_push_result out = {0, 0, 0};
	Psfleet__V1__PushRequest *reqs = calloc(w->n_ps, sizeof(*reqs));
	uint64_t seq = w->next_seq;
	bool aborted = false;
	psf_err err = reqs != NULL ? ps_client_route(w, w->bufs, keys, n) : PSF_ENOMEM;

	/* Start every shard's push (not idempotent at the RPC layer: no copy kept
	 * for re-sends), then collect: shards apply in parallel. */
	for (size_t s = 0; s < w->n_ps && err == PSF_OK; s++) {
		psf_rpc_call_opts o = psf_rpc_group_call_opts(w->groups[s], NULL);

		if (w->shard_clock[s] > clock)
			continue; /* this shard applied our push of this clock already */
		if ((err = ps_client_push_request(w, s, grads, clock, seq, n_samples, loss,
		         &reqs[s])) != PSF_OK)
			break;
		if (psf_rpc_call_start(ps_client_conn(w, s), PSF_M_PUSH, &reqs[s].base, &o,
		        &w->pend[s]) != PSF_OK)
			w->pend[s] = NULL; /* the collect below takes the slow path */
	}
	for (size_t s = 0; s < w->n_ps && err == PSF_OK; s++) {
		Psfleet__V1__PushReply *r = NULL;
		psf_rpc_status st;

		if (w->shard_clock[s] > clock)
			continue;
		err = push_collect(w, s, &reqs[s], w->pend[s], &r, &st);
		psf_rpc_pending_free(w->pend[s]);
		w->pend[s] = NULL;
		if (err != PSF_OK && st.code == PSF_STATUS_ABORTED) {
			psf_log_warn("ps_client", "shard %zu: %s", s, st.message);
			aborted = true;
			err = PSF_OK;
			continue;
		}
		if (err != PSF_OK) {
			if (err != PSF_ECLOSED) /* not a stop request */
				psf_log_err("ps_client", "push to shard %zu at clock %lld: %s", s,
				    (long long)clock, st.message);
			break;
		}
		ps_client_push_done(w, s, clock, seq, r, &out);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	for (size_t s = 0; s < w->n_ps; s++) { /* after an error: drop the rest */
		psf_rpc_pending_free(w->pend[s]);
		w->pend[s] = NULL;
	}
	free(reqs);
	if (err != PSF_OK)
		return err;
	w->next_seq = seq + 1;
	if (aborted) {
		if ((err = ps_client_register_all(w)) != PSF_OK)
			return err;
		psf_log_warn("ps_client", "%s rejoins at clock %lld", w->id, (long long)w->clock);
		return PSF_ESTATE;
	}
	w->clock = clock + psf_clock_step(&w->cfg->consistency);
	if (res != NULL)
		*res = out;
	return PSF_OK;
}

void
psf_ps_client_set_total_steps(psf_ps_client *w, uint64_t total_steps)
{
	w->total_steps = total_steps;
}

psf_err
psf_ps_client_heartbeat(psf_ps_client *w, bool done)
{
	psf_err first = PSF_OK;

	for (size_t s = 0; s < w->n_ps; s++) {
		Psfleet__V1__ClockRequest req = PSFLEET__V1__CLOCK_REQUEST__INIT;
		Psfleet__V1__ClockReply *r = NULL;
		psf_rpc_status st;
		psf_err err;

		req.worker = w->id;
		req.clock = w->clock;
		req.done = done;
		req.total_steps = w->total_steps;
		err = ps_client_call_shard(w, s, PSF_M_CLOCK, &req.base,
		    &psfleet__v1__clock_reply__descriptor, 1, (ProtobufCMessage **)&r, &st);
		if (err == PSF_OK)
			protobuf_c_message_free_unpacked(&r->base, NULL);
		else if (first == PSF_OK)
			first = err;
	}
	return first;
}

psf_err
psf_ps_client_reduce(psf_ps_client *w, const char *name, uint32_t expected, double *values,
    size_t n)
{
	Psfleet__V1__ReduceRequest req = PSFLEET__V1__REDUCE_REQUEST__INIT;
	Psfleet__V1__ReduceReply *r = NULL;
	psf_rpc_status st;
	psf_err err;

	req.worker = w->id;
	req.name = (char *)name;
	req.expected = expected;
	req.n_values = n;
	req.values = values;
	err = ps_client_call_shard(w, 0, PSF_M_REDUCE, &req.base,
	    &psfleet__v1__reduce_reply__descriptor, 1, (ProtobufCMessage **)&r, &st);
	if (err != PSF_OK) {
		psf_log_err("ps_client", "reduce '%s': %s", name, st.message);
		return err;
	}
	if (r->n_values != n) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return PSF_EPROTO;
	}
	memcpy(values, r->values, n * sizeof(double));
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return PSF_OK;
}

psf_err
psf_ps_client_report(psf_ps_client *w, Psfleet__V1__MetricsReport *report)
{
	Psfleet__V1__MetricsAck *r = NULL;
	psf_rpc_status st;
	psf_err err;

	report->worker = w->id;
	err = ps_client_call_shard(w, 0, PSF_M_REPORT, &report->base,
	    &psfleet__v1__metrics_ack__descriptor, 1, (ProtobufCMessage **)&r, &st);
	if (err == PSF_OK)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return err;
}
