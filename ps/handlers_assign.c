/* handlers_assign.c -- the Assign RPC: set weights to given values (the exact
 * solver's result) in one store update together with the worker's pushlog
 * record, so a retried or re-sent Assign is applied once, even across a crash,
 * and the durability mode covers it like a push. Each applied Assign is a new
 * model version; inferers pick it up by Snapshot as usual. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "ps/internal.h"

typedef struct assign_ctx {
	const Psfleet__V1__AssignRequest *in;
	const float *values; /* aligned copy of in->values */
	uint64_t version;
} assign_ctx;

static psf_err
assign_txn(psf_store_txn *txn, void *arg)
{
	assign_ctx *c = arg;
	size_t off = 0;
	psf_err err = PSF_OK;

	for (size_t i = 0; i < c->in->n_keys && err == PSF_OK; i++) {
		err = psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, c->in->keys[i],
		    c->values + off, c->in->lens[i]);
		off += c->in->lens[i];
	}
	if (err == PSF_OK)
		err = psf_store_txn_pushlog_put(txn, c->in->worker, c->in->seq);
	if (err == PSF_OK)
		err = psf_store_txn_meta_put_u64(txn, "version", c->version);
	return err;
}

/* assign_valid checks lens and values against the keys. Holds mu. */
static bool
assign_valid(psf_ps *ps, const Psfleet__V1__AssignRequest *in, void *call)
{
	uint64_t total = 0;

	if (in->n_lens != in->n_keys) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "%zu keys but %zu lens", in->n_keys,
		    in->n_lens);
		return false;
	}
	if (!ps_check_keys(ps, in->keys, in->n_keys, call))
		return false;
	for (size_t i = 0; i < in->n_keys; i++) {
		uint32_t want = psf_model_key_len(ps->model, in->keys[i]);
		if (in->lens[i] != want) {
			psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
			    "key %#llx has %u floats, not %u", (unsigned long long)in->keys[i],
			    want, in->lens[i]);
			return false;
		}
		total += want;
	}
	if (in->values.len != total * 4) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
		    "values hold %zu bytes; the keys need %llu", in->values.len,
		    (unsigned long long)(total * 4));
		return false;
	}
	return true;
}

void
psf_ps_rpc_assign(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__AssignRequest *in,
    Psfleet__V1__AssignReply_Closure done, void *call)
{
	psf_ps *ps = psf_rpc_call_user(call);
	Psfleet__V1__AssignReply r = PSFLEET__V1__ASSIGN_REPLY__INIT;
	float *vals = NULL;
	ps_worker *w;
	psf_err err;

	(void)svc;
	if ((w = ps_lock_worker(ps, in->worker, call)) == NULL) {
		done(NULL, call);
		return;
	}
	if (in->seq <= w->last_seq) { /* applied before: answer as a push does */
		r.model_version = ps->version;
		r.duplicate = 1;
		done(&r, call);
		pthread_mutex_unlock(&ps->mu);
		return;
	}
	if (!assign_valid(ps, in, call))
		goto fail;
	if ((vals = malloc(in->values.len > 0 ? in->values.len : 1)) == NULL) {
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto fail;
	}
	if (in->values.len > 0)
		memcpy(vals, in->values.data, in->values.len);
	for (size_t i = 0; i < in->values.len / 4; i++) {
		if (!isfinite(vals[i])) {
			psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
			    "assigned value %zu is NaN or Inf (nothing applied)", i);
			goto fail;
		}
	}
	assign_ctx c = {in, vals, ps->version + 1};
	if ((err = psf_store_update(ps->store, assign_txn, &c)) != PSF_OK) {
		psf_rpc_fail_err(call, err, "assign not applied: %s", psf_strerror(err));
		goto fail;
	}
	ps->version = c.version;
	w->last_seq = in->seq;
	w->live = true;
	psf_gauge_set(ps->g_version, (double)ps->version);
	psf_log_info("ps", "worker %s assigned %zu key%s: model version %llu", in->worker,
	    in->n_keys, psf_plural(in->n_keys), (unsigned long long)ps->version);
	r.model_version = ps->version;
	done(&r, call);
	pthread_mutex_unlock(&ps->mu);
	free(vals);
	return;
fail:
	pthread_mutex_unlock(&ps->mu);
	free(vals);
	done(NULL, call);
}
