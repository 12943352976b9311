/* gateway.c -- the gateway's routing, forwarding and lifecycle (gateway.h);
 * gateway_health.c has the health checks and the gateway's Admin status.
 *
 * RPC handlers run on NNG's threads and must not block, while a forward waits
 * for an inferer's answer. So a handler routes the call, starts the first
 * attempt (psf_rpc_call_start does not block) and queues it; a pool of
 * forwarder threads (limits.rpc_workers of them) waits for the answers, fails
 * over when needed, and replies. Starting the send in the handler hides the
 * hand-over to a forwarder thread behind the inferer's round trip
 * (docs/inference.md has the figures). Batches are split and sent by the
 * forwarders. Replies are unpacked and packed again by the server (a few
 * microseconds for a Predict). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/gateway_internal.h"
#include "lib/base/log.h"
#include "lib/base/shard.h"
#include "lib/base/util.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "lib/net/rpc_server.h"
#include "lib/runtime/runtime.h"

/* ---------------------------------------------------------------- picking */

static group *
group_of(psf_gateway *gw, uint32_t shard)
{
	return &gw->groups[shard == GW_ALL_SHARDS ? gw->n_shards : shard];
}

/* pick returns the next healthy replica of the shard not tried yet; when none is
 * healthy, one that is marked down but still connected (marked down for a slow
 * answer under load, say: trying it costs nothing if it is really gone, since
 * calls fail fast without a connection); else NULL. */
static replica *
pick(psf_gateway *gw, uint32_t shard, const bool *tried)
{
	group *g = group_of(gw, shard);
	unsigned start = atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed);

	for (size_t k = 0; k < g->n; k++) {
		size_t i = g->idx[(start + k) % g->n];
		if (!tried[i] && atomic_load(&gw->reps[i].healthy))
			return &gw->reps[i];
	}
	for (size_t k = 0; k < g->n; k++) {
		size_t i = g->idx[(start + k) % g->n];
		if (!tried[i] && psf_rpc_client_connected(gw->reps[i].client))
			return &gw->reps[i];
	}
	return NULL;
}

static void
mark_down(psf_gateway *gw, replica *r, const char *why)
{
	if (atomic_exchange(&r->healthy, false)) {
		psf_log_warn("gateway", "%s is down (%s); failing over", r->node->id, why);
		gw_update_ready(gw);
	}
	psf_counter_inc(gw->c_failovers);
}

uint32_t
gw_remaining_ms(uint64_t deadline_ns)
{
	uint64_t now = psf_now_ns();

	return now >= deadline_ns ? 0 : (uint32_t)((deadline_ns - now) / 1000000ull);
}

static uint32_t
remaining_ms(uint64_t deadline_ns)
{
	return gw_remaining_ms(deadline_ns);
}

/* attempt_cap is how long one attempt may take while another replica could
 * take over: 3 health intervals (at least 1 s: a working replica on a loaded
 * machine can take a few hundred ms), plus 1 ms per 100 batch items. A replica
 * that is merely slow is marked down until its next health check. A dead one is
 * noticed at once (its connection fails), not by this cap. */
static uint32_t
attempt_cap(const psf_gateway *gw, size_t items)
{
	uint32_t cap = 3 * gw->interval_ms > 1000 ? 3 * gw->interval_ms : 1000;

	return cap + (uint32_t)(items / 100);
}

/* call_shard forwards one message to a replica of `shard`, failing over to the
 * next healthy one on UNAVAILABLE or an attempt timeout, within the deadline.
 * On PSF_OK *out gets the unpacked reply; otherwise *st says why. */
static psf_err
call_shard(psf_gateway *gw, uint32_t shard, const char *method, const ProtobufCMessage *in,
    const ProtobufCMessageDescriptor *reply_desc, uint64_t deadline_ns, uint32_t cap_ms,
    ProtobufCMessage **out, psf_rpc_status *st)
{
	bool tried[GW_MAX_REPLICAS] = {false};
	replica *r, *slow = NULL;
	psf_err err;

	while ((r = pick(gw, shard, tried)) != NULL) {
		uint32_t left = remaining_ms(deadline_ns);
		/* A request sent to a replica that died since the last health check
		 * does not fail at once (NNG waits for the peer to come back), so while
		 * another replica could serve, an attempt gets only cap_ms. */
		uint32_t budget = group_of(gw, shard)->n > 1 && left > cap_ms ? cap_ms : left;
		psf_rpc_call_opts o = {budget, 0, 1}; /* fail fast: no connection, next replica */

		if (left == 0) {
			st->code = PSF_STATUS_DEADLINE_EXCEEDED;
			snprintf(st->message, sizeof(st->message),
			    "deadline exceeded at the gateway");
			return PSF_ETIMEDOUT;
		}
		tried[r - gw->reps] = true;
		err = psf_rpc_client_call(r->client, method, in, reply_desc, &o, out, st);
		if (err == PSF_OK) {
			psf_counter_inc(gw->c_forwarded);
			return PSF_OK;
		}
		if (st->code != PSF_STATUS_UNAVAILABLE &&
		    (st->code != PSF_STATUS_DEADLINE_EXCEEDED || remaining_ms(deadline_ns) == 0))
			return err; /* the inferer's answer (NOT_FOUND, ...), passed back */
		if (st->code == PSF_STATUS_DEADLINE_EXCEEDED && slow == NULL)
			slow = r; /* connected, but over cap_ms */
		mark_down(gw, r, st->message);
	}
	/* No replica answered in time. One that was only slow (its attempt ran out of
	 * cap_ms on a live connection) gets the rest of the deadline: no other can
	 * serve now, and on a loaded machine a working replica can take longer than
	 * the cap. A dead one fails at once (fail fast: its connection is gone). */
	if (slow != NULL && remaining_ms(deadline_ns) > 0) {
		psf_rpc_call_opts o = {remaining_ms(deadline_ns), 0, 1};

		err = psf_rpc_client_call(slow->client, method, in, reply_desc, &o, out, st);
		if (err == PSF_OK) {
			psf_counter_inc(gw->c_forwarded);
			return PSF_OK;
		}
		if (st->code != PSF_STATUS_UNAVAILABLE && st->code != PSF_STATUS_DEADLINE_EXCEEDED)
			return err;
	}
	psf_counter_inc(gw->c_unavailable);
	st->code = PSF_STATUS_UNAVAILABLE;
	if (shard == GW_ALL_SHARDS)
		snprintf(st->message, sizeof(st->message), "no healthy inferer");
	else
		snprintf(st->message, sizeof(st->message), "no healthy inferer for shard %u",
		    shard);
	return PSF_EUNAVAIL;
}

/* ---------------------------------------------------------------- forwarding */

static uint32_t
route_of(psf_gateway *gw, const char *symbol)
{
	if (gw->cfg->gateway.route == PSF_ROUTE_ROUND_ROBIN)
		return GW_ALL_SHARDS;
	return psf_inference_shard_of(symbol, gw->n_shards);
}

static void
forward_one(psf_gateway *gw, job *j, const char *method, const ProtobufCMessageDescriptor *desc,
    uint32_t shard, size_t items)
{
	uint64_t deadline_ns = psf_rpc_call_deadline_ns(j->call);
	ProtobufCMessage *r = NULL;
	psf_rpc_status st;
	psf_err err = PSF_EUNAVAIL;

	if (j->p != NULL) { /* the attempt the handler started */
		err = psf_rpc_pending_wait(j->p, desc, &r, &st);
		psf_rpc_pending_free(j->p);
		j->p = NULL;
		if (err == PSF_OK)
			psf_counter_inc(gw->c_forwarded);
		else if (st.code == PSF_STATUS_UNAVAILABLE ||
		    (st.code == PSF_STATUS_DEADLINE_EXCEEDED && remaining_ms(deadline_ns) > 0))
			mark_down(gw, j->r, st.message);
		else
			goto answer; /* the inferer's answer, passed back */
	}
	if (err != PSF_OK)
		err = call_shard(gw, shard, method, j->in, desc, deadline_ns,
		    attempt_cap(gw, items), &r, &st);
answer:
	if (err != PSF_OK) {
		psf_rpc_fail(j->call, st.code, "%s", st.message);
		j->done(NULL, j->call);
		return;
	}
	j->done(r, j->call);
	protobuf_c_message_free_unpacked(r, NULL);
}

/* One shard's part of a batch. */
typedef struct part {
	Psfleet__V1__PredictBatchRequest req;
	size_t *pos; /* request positions of its items */
	Psfleet__V1__PredictBatchReply *reply;
	psf_rpc_pending *p;
	replica *r;
	psf_rpc_status st;
} part;

/* split_batch sorts the items into one part per shard. */
static psf_err
split_batch(psf_gateway *gw, const Psfleet__V1__PredictBatchRequest *in, part *parts,
    uint32_t *shard_of)
{
	size_t *count = calloc(gw->n_shards, sizeof(size_t));

	if (count == NULL)
		return PSF_ENOMEM;
	for (size_t i = 0; i < in->n_items; i++) {
		shard_of[i] = psf_inference_shard_of(in->items[i]->symbol, gw->n_shards);
		count[shard_of[i]]++;
	}
	for (uint32_t s = 0; s < gw->n_shards; s++) {
		psfleet__v1__predict_batch_request__init(&parts[s].req);
		parts[s].req.items =
		    malloc((count[s] ? count[s] : 1) * sizeof(*parts[s].req.items));
		parts[s].pos = malloc((count[s] ? count[s] : 1) * sizeof(size_t));
		if (parts[s].req.items == NULL || parts[s].pos == NULL) {
			free(count);
			return PSF_ENOMEM;
		}
	}
	free(count);
	for (size_t i = 0; i < in->n_items; i++) {
		part *p = &parts[shard_of[i]];
		p->pos[p->req.n_items] = i;
		p->req.items[p->req.n_items++] = in->items[i];
	}
	return PSF_OK;
}

/* send_parts starts every non-empty part on a healthy replica of its shard, in
 * parallel, and waits for them; a part whose replica is unavailable is retried
 * on the shard's other replicas (call_shard). */
static void
send_parts(psf_gateway *gw, part *parts, uint64_t deadline_ns)
{
	bool none[GW_MAX_REPLICAS] = {false};

	for (uint32_t s = 0; s < gw->n_shards; s++) {
		uint32_t left = remaining_ms(deadline_ns),
		         cap = attempt_cap(gw, parts[s].req.n_items);
		psf_rpc_call_opts o = {gw->groups[s].n > 1 && left > cap ? cap : left, 0, 1};
		part *p = &parts[s];
		if (p->req.n_items == 0 || left == 0 || (p->r = pick(gw, s, none)) == NULL)
			continue;
		if (psf_rpc_call_start(p->r->client, PSF_M_PREDICT_BATCH, &p->req.base, &o,
		        &p->p) != PSF_OK)
			p->p = NULL;
	}
	for (uint32_t s = 0; s < gw->n_shards; s++) {
		part *p = &parts[s];
		if (p->req.n_items == 0)
			continue;
		if (p->p != NULL) {
			psf_err err = psf_rpc_pending_wait(p->p,
			    &psfleet__v1__predict_batch_reply__descriptor,
			    (ProtobufCMessage **)&p->reply, &p->st);
			psf_rpc_pending_free(p->p);
			p->p = NULL;
			if (err == PSF_OK) {
				psf_counter_inc(gw->c_forwarded);
				continue;
			}
			p->reply = NULL;
			if (p->st.code != PSF_STATUS_UNAVAILABLE &&
			    (p->st.code != PSF_STATUS_DEADLINE_EXCEEDED ||
			        remaining_ms(deadline_ns) == 0))
				continue; /* the inferer's answer, or no time left */
			mark_down(gw, p->r, p->st.message);
		}
		if (call_shard(gw, s, PSF_M_PREDICT_BATCH, &p->req.base,
		        &psfleet__v1__predict_batch_reply__descriptor, deadline_ns,
		        attempt_cap(gw, p->req.n_items), (ProtobufCMessage **)&p->reply,
		        &p->st) != PSF_OK)
			p->reply = NULL;
	}
}

/* merge answers the batch from the parts, in the request's order; items of a
 * part that failed get its status. */
static void
merge(psf_gateway *gw, job *j, part *parts, const uint32_t *shard_of, size_t n)
{
	Psfleet__V1__PredictBatchReply r = PSFLEET__V1__PREDICT_BATCH_REPLY__INIT;
	Psfleet__V1__PredictResult **res = malloc((n ? n : 1) * sizeof(*res));
	Psfleet__V1__PredictResult *failed = calloc(gw->n_shards, sizeof(*failed));
	size_t *next = calloc(gw->n_shards, sizeof(size_t));

	if (res == NULL || failed == NULL || next == NULL) {
		psf_rpc_fail(j->call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		j->done(NULL, j->call);
		goto out;
	}
	for (uint32_t s = 0; s < gw->n_shards; s++) {
		part *p = &parts[s];
		psfleet__v1__predict_result__init(&failed[s]);
		if (p->req.n_items > 0 &&
		    (p->reply == NULL || p->reply->n_results != p->req.n_items)) {
			failed[s].status = p->reply == NULL ? p->st.code : PSF_STATUS_INTERNAL;
			failed[s].message = p->reply == NULL
			    ? p->st.message
			    : (char *)"inferer answered a short batch";
		}
	}
	for (size_t i = 0; i < n; i++) {
		part *p = &parts[shard_of[i]];
		size_t k = next[shard_of[i]]++;
		res[i] = failed[shard_of[i]].status != PSF_STATUS_OK ? &failed[shard_of[i]]
		                                                     : p->reply->results[k];
	}
	r.n_results = n;
	r.results = res;
	j->done(&r.base, j->call);
out:
	free(res);
	free(failed);
	free(next);
}

static void
forward_batch(psf_gateway *gw, job *j)
{
	const Psfleet__V1__PredictBatchRequest *in =
	    (const Psfleet__V1__PredictBatchRequest *)j->in;
	part *parts;
	uint32_t *shard_of;

	if (gw->cfg->gateway.route == PSF_ROUTE_ROUND_ROBIN || gw->n_shards == 1) {
		forward_one(gw, j, PSF_M_PREDICT_BATCH,
		    &psfleet__v1__predict_batch_reply__descriptor,
		    gw->cfg->gateway.route == PSF_ROUTE_ROUND_ROBIN ? GW_ALL_SHARDS : 0,
		    in->n_items);
		return;
	}
	parts = calloc(gw->n_shards, sizeof(*parts));
	shard_of = malloc((in->n_items ? in->n_items : 1) * sizeof(*shard_of));
	if (parts == NULL || shard_of == NULL || split_batch(gw, in, parts, shard_of) != PSF_OK) {
		psf_rpc_fail(j->call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		j->done(NULL, j->call);
	} else {
		send_parts(gw, parts, psf_rpc_call_deadline_ns(j->call));
		merge(gw, j, parts, shard_of, in->n_items);
	}
	for (uint32_t s = 0; parts != NULL && s < gw->n_shards; s++) {
		free(parts[s].req.items);
		free(parts[s].pos);
		if (parts[s].reply != NULL)
			protobuf_c_message_free_unpacked(&parts[s].reply->base, NULL);
	}
	free(parts);
	free(shard_of);
}

static void
forward(psf_gateway *gw, job *j)
{
	switch (j->kind) {
	case JOB_PREDICT: {
		forward_one(gw, j, PSF_M_PREDICT, &psfleet__v1__predict_reply__descriptor, j->shard,
		    1);
		break;
	}
	case JOB_BATCH: forward_batch(gw, j); break;
	case JOB_INGEST: gw_forward_ingest(gw, j); break;
	case JOB_INFO:
		forward_one(gw, j, PSF_M_MODEL_INFO, &psfleet__v1__model_info_reply__descriptor,
		    GW_ALL_SHARDS, 1);
		break;
	}
}

static void *
forwarder_main(void *arg)
{
	psf_gateway *gw = arg;

	for (;;) {
		job *j;

		pthread_mutex_lock(&gw->mu);
		while (gw->head == NULL && !gw->stopping)
			pthread_cond_wait(&gw->cv, &gw->mu);
		j = gw->head;
		if (j != NULL) {
			gw->head = j->next;
			if (gw->head == NULL)
				gw->tail = NULL;
		}
		pthread_mutex_unlock(&gw->mu);
		if (j == NULL)
			return NULL; /* stopping, queue drained */
		if (gw->stopping && j->p == NULL) {
			psf_rpc_fail(j->call, PSF_STATUS_UNAVAILABLE, "the gateway is stopping");
			j->done(NULL, j->call);
		} else {
			forward(gw, j);
		}
		free(j);
	}
}

/* start_first routes a Predict or ModelInfo and starts its first attempt.
 * Returns false when it answered the call itself (no healthy replica). */
static bool
start_first(psf_gateway *gw, job *j)
{
	bool none[GW_MAX_REPLICAS] = {false};
	uint64_t deadline_ns = psf_rpc_call_deadline_ns(j->call);
	uint32_t left = remaining_ms(deadline_ns), cap = attempt_cap(gw, 1);
	psf_rpc_call_opts o = {0, 0, 1};

	if (j->kind == JOB_PREDICT)
		j->shard = route_of(gw, ((const Psfleet__V1__PredictRequest *)j->in)->symbol);
	if ((j->r = pick(gw, j->shard, none)) == NULL) {
		psf_counter_inc(gw->c_unavailable);
		if (j->shard == GW_ALL_SHARDS)
			psf_rpc_fail(j->call, PSF_STATUS_UNAVAILABLE, "no healthy inferer");
		else
			psf_rpc_fail(j->call, PSF_STATUS_UNAVAILABLE,
			    "no healthy inferer for shard %u", j->shard);
		j->done(NULL, j->call);
		return false;
	}
	if (left == 0) {
		psf_rpc_fail(j->call, PSF_STATUS_DEADLINE_EXCEEDED,
		    "deadline exceeded at the gateway");
		j->done(NULL, j->call);
		return false;
	}
	o.timeout_ms = group_of(gw, j->shard)->n > 1 && left > cap ? cap : left;
	if (psf_rpc_call_start(j->r->client,
	        j->kind == JOB_PREDICT ? PSF_M_PREDICT : PSF_M_MODEL_INFO, j->in, &o,
	        &j->p) != PSF_OK)
		j->p = NULL; /* the forwarder tries again */
	return true;
}

/* enqueue hands a call to the forwarders. */
static void
enqueue(void *call, job_kind kind, const ProtobufCMessage *in, ProtobufCClosure done)
{
	psf_gateway *gw = psf_rpc_call_user(call);
	job *j = malloc(sizeof(*j));

	if (j == NULL) {
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		done(NULL, call);
		return;
	}
	*j = (job){NULL, kind, in, done, call, GW_ALL_SHARDS, NULL, NULL};
	if (kind != JOB_BATCH && kind != JOB_INGEST && !start_first(gw, j)) {
		free(j);
		return;
	}
	pthread_mutex_lock(&gw->mu);
	if (gw->tail != NULL)
		gw->tail->next = j;
	else
		gw->head = j;
	gw->tail = j;
	pthread_cond_signal(&gw->cv);
	pthread_mutex_unlock(&gw->mu);
}

void
psf_gw_rpc_predict(Psfleet__V1__Inference_Service *svc, const Psfleet__V1__PredictRequest *in,
    Psfleet__V1__PredictReply_Closure done, void *call)
{
	(void)svc;
	enqueue(call, JOB_PREDICT, &in->base, (ProtobufCClosure)done);
}

void
psf_gw_rpc_ingest(Psfleet__V1__Inference_Service *svc, const Psfleet__V1__IngestRequest *in,
    Psfleet__V1__IngestReply_Closure done, void *call)
{
	(void)svc;
	enqueue(call, JOB_INGEST, &in->base, (ProtobufCClosure)done);
}

void
psf_gw_rpc_predict_batch(Psfleet__V1__Inference_Service *svc,
    const Psfleet__V1__PredictBatchRequest *in, Psfleet__V1__PredictBatchReply_Closure done,
    void *call)
{
	(void)svc;
	enqueue(call, JOB_BATCH, &in->base, (ProtobufCClosure)done);
}

void
psf_gw_rpc_model_info(Psfleet__V1__Inference_Service *svc, const Psfleet__V1__ModelInfoRequest *in,
    Psfleet__V1__ModelInfoReply_Closure done, void *call)
{
	(void)svc;
	enqueue(call, JOB_INFO, &in->base, (ProtobufCClosure)done);
}

/* ---------------------------------------------------------------- lifecycle */

static psf_err
setup(psf_gateway *gw, const psf_gateway_opts *opts)
{
	psf_metrics *reg = psf_runtime_metrics(gw->rt);
	psf_rpc_client_opts co;
	psf_err err;

	if ((err = psf_metrics_counter(reg, "psfleet_gateway_forwarded_total",
	         "Calls answered by an inferer", NULL, 0, &gw->c_forwarded)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_gateway_failovers_total",
	         "Calls retried on another replica", NULL, 0, &gw->c_failovers)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_gateway_unavailable_total",
	         "Calls no healthy replica could take", NULL, 0, &gw->c_unavailable)) != PSF_OK ||
	    (err = psf_metrics_gauge(reg, "psfleet_gateway_healthy_inferers",
	         "Inferers the last health check found ready", NULL, 0, &gw->g_healthy)) !=
	        PSF_OK ||
	    (err = psf_runtime_client_opts(gw->cfg, gw->token, sizeof(gw->token), &co)) != PSF_OK)
		return err;
	gw->n_reps = gw->cfg->n_inferers;
	gw->n_shards = gw->cfg->inference.shards;
	if (gw->n_reps == 0 || gw->n_reps > GW_MAX_REPLICAS)
		return PSF_EINVAL;
	gw->reps = calloc(gw->n_reps, sizeof(*gw->reps));
	gw->groups = calloc(gw->n_shards + 1, sizeof(*gw->groups));
	if (gw->reps == NULL || gw->groups == NULL)
		return PSF_ENOMEM;
	for (uint32_t s = 0; s <= gw->n_shards; s++)
		if ((gw->groups[s].idx = calloc(gw->n_reps, sizeof(size_t))) == NULL)
			return PSF_ENOMEM;
	for (size_t i = 0; i < gw->n_reps; i++) {
		replica *r = &gw->reps[i];
		const char *url;
		r->node = psf_config_role_node(gw->cfg, PSF_ROLE_INFERER, i);
		url = (opts != NULL && opts->inferer_urls != NULL) ? opts->inferer_urls[i]
		                                                   : psf_node_dial_url(r->node);
		if ((err = psf_rpc_client_open(url, &co, &r->client)) != PSF_OK)
			return err;
		group *g = &gw->groups[r->node->shard];
		g->idx[g->n++] = i;
		g = &gw->groups[gw->n_shards];
		g->idx[g->n++] = i;
	}
	return PSF_OK;
}

static psf_err
start_rpc(psf_gateway *gw, const psf_gateway_opts *opts)
{
	psf_rpc_server_opts so;
	const char *url = (opts != NULL && opts->listen != NULL) ? opts->listen : gw->node->listen;
	Psfleet__V1__Inference_Service svc = PSFLEET__V1__INFERENCE__INIT(psf_gw_rpc_);
	psf_err err;

	gw->svc = svc;
	if ((err = psf_runtime_server_opts(gw->cfg, gw->token, sizeof(gw->token), &so)) != PSF_OK ||
	    (err = psf_rpc_server_new(&so, &gw->srv)) != PSF_OK ||
	    (err = psf_rpc_server_add_service(gw->srv, &gw->svc.base, gw)) != PSF_OK ||
	    (err = gw_admin_open(gw)) != PSF_OK)
		return err;
	psf_runtime_observe_rpc(gw->rt, gw->srv);
	if ((err = psf_rpc_server_listen(gw->srv, url, gw->url, sizeof(gw->url))) != PSF_OK)
		return err;
	return psf_rpc_server_start(gw->srv);
}

static psf_err
start_threads(psf_gateway *gw)
{
	size_t n = gw->cfg->limits.rpc_workers != 0 ? gw->cfg->limits.rpc_workers : 64;

	if ((gw->forwarders = calloc(n, sizeof(pthread_t))) == NULL)
		return PSF_ENOMEM;
	for (; gw->n_forwarders < n; gw->n_forwarders++)
		if (pthread_create(&gw->forwarders[gw->n_forwarders], NULL, forwarder_main, gw) !=
		    0)
			return PSF_ESYS;
	if (pthread_create(&gw->health, NULL, gw_health_main, gw) != 0)
		return PSF_ESYS;
	gw->health_started = true;
	return PSF_OK;
}

psf_err
psf_gateway_new(const psf_config *cfg, const psf_node_cfg *node, const psf_gateway_opts *opts,
    psf_gateway **out)
{
	psf_gateway *gw;
	const char *metrics = node->metrics;
	pthread_condattr_t ca;
	psf_err err;

	if (node->role != PSF_ROLE_GATEWAY) {
		psf_log_err("gateway", "%s is a %s, not the gateway", node->id,
		    psf_role_name(node->role));
		return PSF_EINVAL;
	}
	if ((gw = calloc(1, sizeof(*gw))) == NULL)
		return PSF_ENOMEM;
	gw->cfg = cfg;
	gw->node = node;
	gw->interval_ms = (opts != NULL && opts->health_interval_ms != 0)
	    ? opts->health_interval_ms
	    : cfg->gateway.health_interval_ms;
	pthread_mutex_init(&gw->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&gw->cv, NULL);
	pthread_cond_init(&gw->health_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (opts != NULL && opts->metrics != NULL)
		metrics = opts->metrics[0] != '\0' ? opts->metrics : NULL;
	if ((err = psf_runtime_new(node->id, "gateway", metrics, &gw->rt)) != PSF_OK)
		goto fail;
	psf_runtime_set_ready(gw->rt, false, "no health check yet");
	if ((err = setup(gw, opts)) != PSF_OK || (err = start_threads(gw)) != PSF_OK ||
	    (err = start_rpc(gw, opts)) != PSF_OK)
		goto fail;
	psf_log_info("gateway", "routing %s over %zu inferer%s (%u shard%s) on %s",
	    cfg->gateway.route == PSF_ROUTE_SYMBOL ? "by symbol" : "round robin", gw->n_reps,
	    psf_plural(gw->n_reps), gw->n_shards, psf_plural(gw->n_shards), gw->url);
	if (cfg->gateway.route == PSF_ROUTE_ROUND_ROBIN && gw->n_shards > 1)
		psf_log_warn("gateway",
		    "route round_robin with %u inference shards: an inferer answers "
		    "NOT_FOUND for symbols of other shards",
		    gw->n_shards);
	*out = gw;
	return PSF_OK;
fail:
	psf_log_err("gateway", "%s failed to start: %s", node->id, psf_strerror(err));
	psf_gateway_free(gw);
	return err;
}

const char *
psf_gateway_url(const psf_gateway *gw)
{
	return gw->url;
}

void
psf_gateway_free(psf_gateway *gw)
{
	if (gw == NULL)
		return;
	pthread_mutex_lock(&gw->mu);
	gw->stopping = true;
	pthread_cond_broadcast(&gw->cv);
	pthread_cond_broadcast(&gw->health_cv);
	pthread_mutex_unlock(&gw->mu);
	for (size_t i = 0; i < gw->n_forwarders; i++)
		pthread_join(gw->forwarders[i], NULL);
	if (gw->health_started)
		pthread_join(gw->health, NULL);
	/* No forwarder runs now; a call that arrives meanwhile is only queued. */
	psf_rpc_server_free(gw->srv);
	psf_admin_free(gw->admin);
	while (gw->head != NULL) {
		job *j = gw->head;
		gw->head = j->next;
		psf_rpc_pending_free(j->p);
		free(j);
	}
	for (size_t i = 0; gw->reps != NULL && i < gw->n_reps; i++)
		psf_rpc_client_close(gw->reps[i].client);
	for (uint32_t s = 0; gw->groups != NULL && s <= gw->n_shards; s++)
		free(gw->groups[s].idx);
	free(gw->groups);
	free(gw->reps);
	free(gw->forwarders);
	psf_runtime_free(gw->rt);
	pthread_cond_destroy(&gw->cv);
	pthread_cond_destroy(&gw->health_cv);
	pthread_mutex_destroy(&gw->mu);
	free(gw);
}

psf_err
psf_gateway_run(const psf_config *cfg, const psf_node_cfg *node, const psf_gateway_opts *opts)
{
	psf_gateway *gw;
	psf_err err = psf_gateway_new(cfg, node, opts, &gw);

	if (err != PSF_OK)
		return err;
	while (!psf_runtime_wait(gw->rt, 1000))
		;
	psf_log_info("gateway", "stopping");
	psf_gateway_free(gw);
	return PSF_OK;
}
