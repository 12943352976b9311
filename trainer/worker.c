#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/node.h"
#include "common/rpc_client.h"
#include "common/shard.h"
#include "common/util.h"

#define M_REGISTER "psfleet.v1.ParameterServer/RegisterWorker"
#define M_PULL "psfleet.v1.ParameterServer/Pull"
#define M_PUSH "psfleet.v1.ParameterServer/Push"
#define M_CLOCK "psfleet.v1.ParameterServer/Clock"
#define M_REDUCE "psfleet.v1.ParameterServer/Reduce"
#define M_REPORT "psfleet.v1.ParameterServer/Report"

/* Per-shard scratch for building requests. */
typedef struct shard_buf {
	uint64_t *keys;
	uint32_t *lens;
	size_t n, cap;
	uint8_t *values;
	size_t vcap;
} shard_buf;

struct psf_worker {
	const psf_config *cfg;
	const psf_model *model;
	char id[128];
	char token[256];
	size_t n_ps;
	psf_rpc_client **clients;
	uint64_t *seeds;
	int64_t *shard_clock;
	uint64_t *shard_seq;
	shard_buf *bufs;
	int64_t clock;
	uint64_t next_seq;
	uint32_t index;
	uint32_t retry_ms;
};

static psf_err
register_shard(psf_worker *w, size_t s)
{
	Psfleet__V1__RegisterRequest req = PSFLEET__V1__REGISTER_REQUEST__INIT;
	Psfleet__V1__RegisterReply *r = NULL;
	psf_rpc_call_opts o = {0, 1};
	psf_rpc_status st;
	uint64_t until = psf_now_ms() + w->retry_ms;
	psf_err err;

	req.worker = w->id;
	req.num_workers = (uint32_t)w->cfg->n_trainers;
	for (;;) {
		err = psf_rpc_client_call(w->clients[s], M_REGISTER, &req.base,
		    &psfleet__v1__register_reply__descriptor, &o, (ProtobufCMessage **)&r, &st);
		if (err == PSF_OK)
			break;
		if ((st.code != PSF_STATUS_UNAVAILABLE && st.code != PSF_STATUS_DEADLINE_EXCEEDED) ||
		    psf_now_ms() >= until) {
			psf_log_err("worker", "register with ps shard %zu (%s): %s", s,
			    psf_rpc_client_url(w->clients[s]), st.message);
			return err;
		}
		psf_sleep_ms(200);
	}
	w->shard_clock[s] = r->clock;
	w->shard_seq[s] = r->last_seq;
	if (s == 0)
		w->index = r->worker_index;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return PSF_OK;
}

/* register_all (re)registers with every shard and derives clock and seq. */
static psf_err
register_all(psf_worker *w)
{
	uint64_t max_seq = 0;
	psf_err err;

	w->clock = INT64_MAX;
	for (size_t s = 0; s < w->n_ps; s++) {
		if ((err = register_shard(w, s)) != PSF_OK)
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
psf_worker_open(const psf_config *cfg, const psf_model *model, const char *id,
    const psf_worker_opts *opts, psf_worker **out)
{
	psf_worker *w = calloc(1, sizeof(*w));
	psf_rpc_client_opts co;
	psf_err err = PSF_ENOMEM;

	if (w == NULL)
		return PSF_ENOMEM;
	w->cfg = cfg;
	w->model = model;
	w->n_ps = cfg->n_ps;
	w->retry_ms = (opts != NULL && opts->retry_ms != 0) ? opts->retry_ms : 120000;
	w->next_seq = 1;
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->clients = calloc(w->n_ps, sizeof(*w->clients));
	w->seeds = calloc(w->n_ps, sizeof(*w->seeds));
	w->shard_clock = calloc(w->n_ps, sizeof(*w->shard_clock));
	w->shard_seq = calloc(w->n_ps, sizeof(*w->shard_seq));
	w->bufs = calloc(w->n_ps, sizeof(*w->bufs));
	if (!w->clients || !w->seeds || !w->shard_clock || !w->shard_seq || !w->bufs)
		goto fail;
	if ((err = psf_node_client_opts(cfg, w->token, sizeof(w->token), &co)) != PSF_OK)
		goto fail;
	for (size_t s = 0; s < w->n_ps; s++) {
		const char *url = (opts != NULL && opts->ps_urls != NULL) ? opts->ps_urls[s]
		                                                           : cfg->nodes[s].listen;
		w->seeds[s] = psf_shard_node_seed(cfg->nodes[s].id);
		if ((err = psf_rpc_client_open(url, &co, &w->clients[s])) != PSF_OK)
			goto fail;
	}
	if ((err = register_all(w)) != PSF_OK)
		goto fail;
	psf_log_info("worker", "%s registered with %zu ps shard(s): clock %lld, next seq %llu", id,
	    w->n_ps, (long long)w->clock, (unsigned long long)w->next_seq);
	*out = w;
	return PSF_OK;
fail:
	psf_worker_close(w);
	return err;
}

void
psf_worker_close(psf_worker *w)
{
	if (w == NULL)
		return;
	for (size_t s = 0; w->clients != NULL && s < w->n_ps; s++)
		psf_rpc_client_close(w->clients[s]);
	for (size_t s = 0; w->bufs != NULL && s < w->n_ps; s++) {
		free(w->bufs[s].keys);
		free(w->bufs[s].lens);
		free(w->bufs[s].values);
	}
	free(w->clients);
	free(w->seeds);
	free(w->shard_clock);
	free(w->shard_seq);
	free(w->bufs);
	free(w);
}

int64_t
psf_worker_clock(const psf_worker *w)
{
	return w->clock;
}

uint32_t
psf_worker_index(const psf_worker *w)
{
	return w->index;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* route sorts keys into per-shard lists, sorted and unique. */
static psf_err
route(psf_worker *w, const uint64_t *keys, size_t n)
{
	for (size_t s = 0; s < w->n_ps; s++)
		w->bufs[s].n = 0;
	for (size_t i = 0; i < n; i++) {
		size_t s = w->n_ps == 1 ? 0 : psf_shard_pick(keys[i], w->seeds, w->n_ps);
		shard_buf *b = &w->bufs[s];
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
		shard_buf *b = &w->bufs[s];
		size_t u = 0;
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
static bool
retryable(const psf_rpc_status *st)
{
	return st->code == PSF_STATUS_UNAVAILABLE || st->code == PSF_STATUS_DEADLINE_EXCEEDED;
}

/* call_shard makes one call with the worker's retry policy. */
static psf_err
call_shard(psf_worker *w, size_t s, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **reply, psf_rpc_status *st)
{
	psf_rpc_call_opts o = {0, 1};
	uint64_t until = psf_now_ms() + w->retry_ms;
	uint32_t backoff = 50;
	psf_err err;

	for (;;) {
		err = psf_rpc_client_call(w->clients[s], method, req, desc, &o, reply, st);
		if (err == PSF_OK)
			return PSF_OK;
		if (st->code == PSF_STATUS_FAILED_PRECONDITION) {
			/* the shard forgot us (restart): register and try again */
			if (register_shard(w, s) != PSF_OK)
				return err;
		} else if (!retryable(st) || psf_now_ms() >= until) {
			return err;
		} else if (st->code == PSF_STATUS_UNAVAILABLE) {
			psf_sleep_ms(backoff);
			backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
		}
	}
}

static psf_err
store_pulled(psf_worker *w, const Psfleet__V1__PullReply *r, psf_params *dst)
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
	(void)w;
	return PSF_OK;
}

psf_err
psf_worker_pull(psf_worker *w, int64_t clock, const uint64_t *keys, size_t n, psf_params *dst,
    uint64_t *version_out)
{
	psf_rpc_pending **pend = calloc(w->n_ps, sizeof(*pend));
	Psfleet__V1__PullRequest *reqs = calloc(w->n_ps, sizeof(*reqs));
	uint64_t min_version = UINT64_MAX;
	psf_err err = (pend && reqs) ? route(w, keys, n) : PSF_ENOMEM;

	/* Start every shard's pull, then collect: shards serve in parallel. */
	for (size_t s = 0; s < w->n_ps && err == PSF_OK; s++) {
		psfleet__v1__pull_request__init(&reqs[s]);
		reqs[s].worker = w->id;
		reqs[s].clock = clock;
		reqs[s].n_keys = w->bufs[s].n;
		reqs[s].keys = w->bufs[s].keys;
		if (w->bufs[s].n > 0 &&
		    psf_rpc_call_start(w->clients[s], M_PULL, &reqs[s].base, NULL, &pend[s]) != PSF_OK)
			pend[s] = NULL; /* the wait below takes the slow path */
	}
	for (size_t s = 0; s < w->n_ps && err == PSF_OK; s++) {
		Psfleet__V1__PullReply *r = NULL;
		psf_rpc_status st;

		if (w->bufs[s].n == 0)
			continue;
		err = pend[s] != NULL ? psf_rpc_pending_wait(pend[s], &psfleet__v1__pull_reply__descriptor,
		                            (ProtobufCMessage **)&r, &st)
		                      : PSF_EUNAVAIL;
		if (err != PSF_OK) /* slow path: retries, re-registration, waiting */
			err = call_shard(w, s, M_PULL, &reqs[s].base, &psfleet__v1__pull_reply__descriptor,
			    (ProtobufCMessage **)&r, &st);
		if (err != PSF_OK) {
			psf_log_err("worker", "pull from shard %zu at clock %lld: %s", s, (long long)clock,
			    st.message);
			break;
		}
		err = store_pulled(w, r, dst);
		if (r->model_version < min_version)
			min_version = r->model_version;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	for (size_t s = 0; pend != NULL && s < w->n_ps; s++)
		psf_rpc_pending_free(pend[s]);
	free(pend);
	free(reqs);
	if (err == PSF_OK && version_out != NULL)
		*version_out = min_version == UINT64_MAX ? 0 : min_version;
	return err;
}

/* fill_values copies each routed key's gradient into the shard's value buffer. */
static psf_err
fill_values(psf_worker *w, shard_buf *b, const psf_params *grads)
{
	size_t off = 0;

	for (size_t i = 0; i < b->n; i++) {
		const float *g;
		uint32_t len;
		psf_err err = psf_params_get_key(grads, b->keys[i], &g, &len);
		if (err != PSF_OK)
			return err;
		if ((off + len) * 4 > b->vcap) {
			size_t cap = b->vcap ? b->vcap : 4096;
			while (cap < (off + len) * 4)
				cap *= 2;
			uint8_t *v = realloc(b->values, cap);
			if (v == NULL)
				return PSF_ENOMEM;
			b->values = v;
			b->vcap = cap;
		}
		memcpy(b->values + off * 4, g, (size_t)len * 4);
		b->lens[i] = len;
		off += len;
	}
	(void)w;
	return PSF_OK;
}

psf_err
psf_worker_push(psf_worker *w, int64_t clock, const psf_params *grads, const uint64_t *keys,
    size_t n, uint64_t n_samples, double loss, psf_push_result *res)
{
	psf_push_result out = {0, 0, 0};
	uint64_t seq = w->next_seq;
	bool aborted = false;
	psf_err err = route(w, keys, n);

	for (size_t s = 0; s < w->n_ps && err == PSF_OK; s++) {
		Psfleet__V1__PushRequest req = PSFLEET__V1__PUSH_REQUEST__INIT;
		Psfleet__V1__PushReply *r = NULL;
		psf_rpc_status st;
		size_t total = 0;

		if (w->shard_clock[s] > clock)
			continue; /* this shard applied our push of this clock already */
		if ((err = fill_values(w, &w->bufs[s], grads)) != PSF_OK)
			break;
		for (size_t i = 0; i < w->bufs[s].n; i++)
			total += w->bufs[s].lens[i];
		req.worker = w->id;
		req.seq = seq;
		req.clock = clock;
		req.n_keys = req.n_lens = w->bufs[s].n;
		req.keys = w->bufs[s].keys;
		req.lens = w->bufs[s].lens;
		req.values.data = w->bufs[s].values;
		req.values.len = total * 4;
		req.n_samples = n_samples;
		req.loss = loss;
		/* Same seq on every retry: the shard dedups, so this is safe to repeat. */
		err = call_shard(w, s, M_PUSH, &req.base, &psfleet__v1__push_reply__descriptor,
		    (ProtobufCMessage **)&r, &st);
		if (err != PSF_OK && st.code == PSF_STATUS_ABORTED) {
			psf_log_warn("worker", "shard %zu: %s", s, st.message);
			aborted = true;
			err = PSF_OK;
			continue;
		}
		if (err != PSF_OK) {
			psf_log_err("worker", "push to shard %zu at clock %lld: %s", s, (long long)clock,
			    st.message);
			break;
		}
		w->shard_clock[s] = clock + 1;
		w->shard_seq[s] = seq;
		out.duplicates += r->duplicate ? 1 : 0;
		if (r->model_version > out.model_version)
			out.model_version = r->model_version;
		if (r->staleness > out.max_staleness)
			out.max_staleness = r->staleness;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	if (err != PSF_OK)
		return err;
	w->next_seq = seq + 1;
	if (aborted) {
		if ((err = register_all(w)) != PSF_OK)
			return err;
		psf_log_warn("worker", "%s rejoins at clock %lld", w->id, (long long)w->clock);
		return PSF_ESTATE;
	}
	w->clock = clock + 1;
	if (res != NULL)
		*res = out;
	return PSF_OK;
}

psf_err
psf_worker_heartbeat(psf_worker *w, bool done)
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
		err = call_shard(w, s, M_CLOCK, &req.base, &psfleet__v1__clock_reply__descriptor,
		    (ProtobufCMessage **)&r, &st);
		if (err == PSF_OK)
			protobuf_c_message_free_unpacked(&r->base, NULL);
		else if (first == PSF_OK)
			first = err;
	}
	return first;
}

psf_err
psf_worker_reduce(psf_worker *w, const char *name, uint32_t expected, double *values, size_t n)
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
	err = call_shard(w, 0, M_REDUCE, &req.base, &psfleet__v1__reduce_reply__descriptor,
	    (ProtobufCMessage **)&r, &st);
	if (err != PSF_OK) {
		psf_log_err("worker", "reduce '%s': %s", name, st.message);
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
psf_worker_report(psf_worker *w, Psfleet__V1__MetricsReport *report)
{
	Psfleet__V1__MetricsAck *r = NULL;
	psf_rpc_status st;
	psf_err err;

	report->worker = w->id;
	err = call_shard(w, 0, M_REPORT, &report->base, &psfleet__v1__metrics_ack__descriptor,
	    (ProtobufCMessage **)&r, &st);
	if (err == PSF_OK)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return err;
}
