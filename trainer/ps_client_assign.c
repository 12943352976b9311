/* ps_client_assign.c -- Assign: the exact solver's weights written to every ps
 * shard as one new model version each, exactly once per (worker, seq) like a
 * push (the shared routing and retry helpers are ps_client_internal.h). */
#include "trainer/ps_client.h"

#include "lib/base/log.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "trainer/ps_client_internal.h"

psf_err
psf_ps_client_assign(psf_ps_client *w, const psf_params *values, const uint64_t *keys, size_t n,
    uint64_t *version_out)
{
	uint64_t seq = w->next_seq, version = 0;
	psf_err err = ps_client_route(w, w->bufs, keys, n);

	for (size_t s = 0; s < w->n_ps && err == PSF_OK; s++) {
		Psfleet__V1__AssignRequest req = PSFLEET__V1__ASSIGN_REQUEST__INIT;
		Psfleet__V1__AssignReply *r = NULL;
		psf_rpc_status st;
		const uint8_t *data = NULL;
		size_t len = 0;

		/* a shard with none of the keys gets an empty Assign: every shard
		 * moves to a new version together */
		if ((err = ps_client_push_values(&w->bufs[s], values, &data, &len)) != PSF_OK)
			break;
		req.worker = w->id;
		req.seq = seq; /* the same on every retry: the shard applies it once */
		req.n_keys = req.n_lens = w->bufs[s].n;
		req.keys = w->bufs[s].keys;
		req.lens = w->bufs[s].lens;
		req.values.data = (uint8_t *)data;
		req.values.len = len;
		err = ps_client_call_shard(w, s, PSF_M_ASSIGN, &req.base,
		    &psfleet__v1__assign_reply__descriptor, 1, (ProtobufCMessage **)&r, &st);
		if (err != PSF_OK) {
			if (err != PSF_ECLOSED)
				psf_log_err("ps_client", "assign to shard %zu: %s", s, st.message);
			break;
		}
		w->shard_seq[s] = seq;
		if (r->model_version > version)
			version = r->model_version;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	if (err != PSF_OK)
		return err;
	w->next_seq = seq + 1;
	if (version_out != NULL)
		*version_out = version;
	return PSF_OK;
}

psf_err
psf_ps_client_fine_tune(psf_ps_client *w, uint64_t begin_round, int64_t start_clock,
    bool with_samples, Psfleet__V1__FineTuneReply **out)
{
	Psfleet__V1__FineTuneRequest req = PSFLEET__V1__FINE_TUNE_REQUEST__INIT;
	psf_rpc_status st;

	req.begin_round = begin_round; /* a retried begin finds the round begun: idempotent */
	req.start_clock = start_clock;
	req.with_samples = with_samples;
	return ps_client_call_shard(w, 0, PSF_M_FINE_TUNE, &req.base,
	    &psfleet__v1__fine_tune_reply__descriptor, 1, (ProtobufCMessage **)out, &st);
}
