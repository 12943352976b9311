/* gateway_ingest.c -- Ingest through the gateway (gateway_internal.h).
 *
 * Unlike a Predict, which one replica answers, new bars must reach every
 * replica of the symbol's shard: the rows are split by shard, each part is sent
 * to all the shard's replicas in parallel, and the replies are merged per row.
 * A row is OK when every replica stored it; otherwise it carries the first
 * refusal, named by replica. A replica that could not be reached fails its
 * rows with UNAVAILABLE (the others may have stored them: sending the row again
 * once it is back gets ALREADY_EXISTS from those, OK from it). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway_internal.h"
#include "lib/base/shard.h"
#include "lib/net/methods.h"

/* One replica's share of an Ingest. */
typedef struct call_part {
	replica *r;
	psf_rpc_pending *p;
	Psfleet__V1__IngestReply *reply;
	psf_rpc_status st;
	psf_err err;
} call_part;

/* One shard's rows. */
typedef struct shard_part {
	Psfleet__V1__IngestRequest req;
	size_t *pos; /* request positions of its rows */
	call_part *calls;
	size_t n_calls;
} shard_part;

/* row_result merges the replicas' answers for row k of shard part sp into out
 * (message pointing into buf). */
static void
row_result(const shard_part *sp, size_t k, Psfleet__V1__IngestResult *out, char *buf, size_t len)
{
	size_t ok = 0;
	bool agree = true; /* every replica gave the same answer */
	const Psfleet__V1__IngestResult *first = NULL;
	const call_part *bad = NULL;
	const char *why = NULL;
	psf_status st = PSF_STATUS_OK;

	for (size_t c = 0; c < sp->n_calls; c++) {
		const call_part *cp = &sp->calls[c];
		bool whole = cp->err == PSF_OK && cp->reply->n_results == sp->req.n_rows;
		if (c == 0)
			first = whole ? cp->reply->results[k] : NULL;
		else if (!whole || first == NULL ||
		    cp->reply->results[k]->status != first->status ||
		    strcmp(cp->reply->results[k]->message, first->message) != 0)
			agree = false;
		if (!whole) {
			if (bad == NULL) {
				bad = cp;
				st = cp->err != PSF_OK ? (psf_status)cp->st.code
				                       : PSF_STATUS_INTERNAL;
				why = cp->err != PSF_OK ? cp->st.message
				                        : "a reply of the wrong length";
			}
		} else if (cp->reply->results[k]->status == PSF_STATUS_OK) {
			ok++;
		} else if (bad == NULL) {
			bad = cp;
			st = (psf_status)cp->reply->results[k]->status;
			why = cp->reply->results[k]->message;
		}
	}
	psfleet__v1__ingest_result__init(out);
	buf[0] = '\0';
	if (sp->n_calls == 0) {
		out->status = PSF_STATUS_UNAVAILABLE;
		snprintf(buf, len, "no inferer serves this symbol's shard");
		out->message = buf;
		return;
	}
	out->status = st;
	if (bad != NULL && agree)
		snprintf(buf, len, "%s", why);
	else if (bad != NULL)
		snprintf(buf, len, "%s: %s%s", bad->r->node->id, why,
		    ok > 0 ? " (stored on the shard's other replicas)" : "");
	out->message = buf;
}

/* send_all starts every part on every replica of its shard, then waits. */
static void
send_all(psf_gateway *gw, shard_part *parts, uint64_t deadline_ns)
{
	for (uint32_t s = 0; s < gw->n_shards; s++) {
		for (size_t c = 0; c < parts[s].n_calls; c++) {
			call_part *cp = &parts[s].calls[c];
			psf_rpc_call_opts o = {gw_remaining_ms(deadline_ns), 0, 1};
			cp->err = o.timeout_ms == 0
			    ? PSF_ETIMEDOUT
			    : psf_rpc_call_start(cp->r->client, PSF_M_INGEST, &parts[s].req.base,
			          &o, &cp->p);
			if (cp->err != PSF_OK) {
				cp->st.code = PSF_STATUS_UNAVAILABLE;
				snprintf(cp->st.message, sizeof(cp->st.message), "cannot send: %s",
				    psf_strerror(cp->err));
			}
		}
	}
	for (uint32_t s = 0; s < gw->n_shards; s++) {
		for (size_t c = 0; c < parts[s].n_calls; c++) {
			call_part *cp = &parts[s].calls[c];
			if (cp->p == NULL)
				continue;
			cp->err =
			    psf_rpc_pending_wait(cp->p, &psfleet__v1__ingest_reply__descriptor,
			        (ProtobufCMessage **)&cp->reply, &cp->st);
			psf_rpc_pending_free(cp->p);
			cp->p = NULL;
			if (cp->err == PSF_OK)
				psf_counter_inc(gw->c_forwarded);
		}
	}
}

/* split sorts the rows into one part per shard, each with all its replicas. */
static psf_err
split(psf_gateway *gw, const Psfleet__V1__IngestRequest *in, shard_part *parts, uint32_t *shard_of)
{
	for (size_t i = 0; i < in->n_rows; i++) {
		shard_of[i] = psf_inference_shard_of(in->rows[i]->symbol, gw->n_shards);
		parts[shard_of[i]].req.n_rows++;
	}
	for (uint32_t s = 0; s < gw->n_shards; s++) {
		shard_part *sp = &parts[s];
		size_t n = sp->req.n_rows;
		psfleet__v1__ingest_request__init(&sp->req);
		if (n == 0)
			continue;
		sp->req.rows = malloc(n * sizeof(*sp->req.rows));
		sp->pos = malloc(n * sizeof(size_t));
		sp->calls = calloc(gw->groups[s].n > 0 ? gw->groups[s].n : 1, sizeof(call_part));
		if (sp->req.rows == NULL || sp->pos == NULL || sp->calls == NULL)
			return PSF_ENOMEM;
		sp->n_calls = gw->groups[s].n;
		for (size_t c = 0; c < sp->n_calls; c++)
			sp->calls[c].r = &gw->reps[gw->groups[s].idx[c]];
	}
	for (size_t i = 0; i < in->n_rows; i++) {
		shard_part *sp = &parts[shard_of[i]];
		sp->pos[sp->req.n_rows] = i;
		sp->req.rows[sp->req.n_rows++] = in->rows[i];
	}
	return PSF_OK;
}

/* answer merges the parts into one reply, in request order. */
/* merge_versions fills r's model_version (the smallest a replica answered),
 * finetune_steps and finetune_rows (per shard, the most a replica made: every
 * replica sends the same rows, which ps0 keeps once). */
static void
merge_versions(const shard_part *parts, uint32_t n_shards, Psfleet__V1__IngestReply *r)
{
	for (uint32_t s = 0; s < n_shards; s++) {
		uint64_t rows = 0;
		for (size_t c = 0; c < parts[s].n_calls; c++) {
			const Psfleet__V1__IngestReply *p = parts[s].calls[c].reply;
			if (parts[s].calls[c].err != PSF_OK || p == NULL)
				continue;
			if (r->model_version == 0 || p->model_version < r->model_version)
				r->model_version = p->model_version;
			r->finetune_steps = p->finetune_steps > r->finetune_steps
			    ? p->finetune_steps
			    : r->finetune_steps;
			rows = p->finetune_rows > rows ? p->finetune_rows : rows;
		}
		r->finetune_rows += rows;
	}
}

static void
answer(job *j, shard_part *parts, uint32_t n_shards, const uint32_t *shard_of, size_t n)
{
	Psfleet__V1__IngestReply r = PSFLEET__V1__INGEST_REPLY__INIT;
	Psfleet__V1__IngestResult *res = calloc(n > 0 ? n : 1, sizeof(*res));
	Psfleet__V1__IngestResult **resp = calloc(n > 0 ? n : 1, sizeof(*resp));
	char(*msg)[300] = calloc(n > 0 ? n : 1, sizeof(*msg));
	size_t *next = calloc(n > 0 ? n : 1, sizeof(size_t));

	if (res == NULL || resp == NULL || msg == NULL || next == NULL) {
		psf_rpc_fail(j->call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		j->done(NULL, j->call);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const shard_part *sp = &parts[shard_of[i]];
		size_t k = next[shard_of[i]]++; /* rows of a shard are in request order */
		row_result(sp, k, &res[i], msg[i], sizeof(msg[i]));
		r.accepted += res[i].status == PSF_STATUS_OK;
		resp[i] = &res[i];
	}
	merge_versions(parts, n_shards, &r);
	r.n_results = n;
	r.results = resp;
	j->done(&r.base, j->call);
out:
	free(res);
	free(resp);
	free(msg);
	free(next);
}

void
gw_forward_ingest(psf_gateway *gw, job *j)
{
	const Psfleet__V1__IngestRequest *in = (const Psfleet__V1__IngestRequest *)j->in;
	shard_part *parts = calloc(gw->n_shards, sizeof(*parts));
	uint32_t *shard_of = malloc((in->n_rows > 0 ? in->n_rows : 1) * sizeof(uint32_t));

	if (parts == NULL || shard_of == NULL || split(gw, in, parts, shard_of) != PSF_OK) {
		psf_rpc_fail(j->call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		j->done(NULL, j->call);
	} else {
		send_all(gw, parts, psf_rpc_call_deadline_ns(j->call));
		answer(j, parts, gw->n_shards, shard_of, in->n_rows);
	}
	for (uint32_t s = 0; parts != NULL && s < gw->n_shards; s++) {
		for (size_t c = 0; c < parts[s].n_calls; c++)
			if (parts[s].calls[c].reply != NULL)
				protobuf_c_message_free_unpacked(&parts[s].calls[c].reply->base,
				    NULL);
		free(parts[s].req.rows);
		free(parts[s].pos);
		free(parts[s].calls);
	}
	free(parts);
	free(shard_of);
}
