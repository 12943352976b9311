/* handlers_report.c -- the Report RPC: each worker's latest MetricsReport, shown
 * by Stats, and its record in the store's meta, which brings it back after a
 * restart. */
#include <string.h>

#include "lib/base/log.h"
#include "ps/internal.h"

/* A worker's latest MetricsReport is kept in the store's meta under
 * "report:<worker>", packed with its known fields only, so Stats (and `psfleet
 * status`) still have the final report of a trainer that finished before the ps
 * restarted. It follows the store's durability mode like any other update. */

typedef struct report_put {
	char name[160];
	const uint8_t *buf;
	size_t len;
} report_put;

static psf_err
report_put_txn(psf_store_txn *txn, void *arg)
{
	const report_put *c = arg;

	return psf_store_txn_meta_put(txn, c->name, c->buf, c->len);
}

/* report_set makes rep (known fields only) worker w's report. Holds mu. */
static void
report_set(ps_worker *w, const Psfleet__V1__MetricsReport *rep)
{
	w->report = *rep;
	w->report.base.unknown_fields = NULL;
	w->report.base.n_unknown_fields = 0;
	w->report.worker = w->id;
	/* the counts live in the request: copy them (the handler checked the length) */
	if (rep->n_residual_hist == PSF_RHIST_BINS) {
		memcpy(w->report_resid, rep->residual_hist, sizeof(w->report_resid));
		w->report.residual_hist = w->report_resid;
	} else {
		w->report.n_residual_hist = 0;
		w->report.residual_hist = NULL;
	}
	w->has_report = true;
}

/* report_restore brings back worker's report from its record, adding the worker
 * to the table if needed; a finished report marks it done. PSF_EPROTO for a
 * damaged record, PSF_EBUSY/PSF_EINVAL when the table cannot hold the id. */
static psf_err
report_restore(psf_ps *ps, const char *worker, const void *blob, size_t len)
{
	Psfleet__V1__MetricsReport *m;
	ps_worker *w;
	psf_err err = PSF_EPROTO;

	if (len > PS_REPORT_MAX_BYTES ||
	    (m = psfleet__v1__metrics_report__unpack(NULL, len, blob)) == NULL)
		return PSF_EPROTO;
	if (strcmp(m->worker, worker) == 0 && (err = ps_worker_add(ps, worker, &w)) == PSF_OK) {
		report_set(w, m);
		w->done = m->finished; /* it must not hold rounds or gates until it re-registers */
	}
	psfleet__v1__metrics_report__free_unpacked(m, NULL);
	return err;
}

static psf_err
restore_one(const char *name, const void *blob, size_t len, void *arg)
{
	const char *worker = name + strlen("report:");
	psf_err err = report_restore(arg, worker, blob, len);

	if (err != PSF_OK)
		psf_log_warn("ps", "ignoring the stored report of worker '%s': %s", worker,
		    err == PSF_EPROTO ? "damaged record" : psf_strerror(err));
	return PSF_OK;
}

psf_err
ps_reports_restore(psf_ps *ps, psf_store_txn *txn)
{
	return psf_store_txn_meta_foreach(txn, "report:", restore_one, ps);
}

/* Report calls are serialized by report_mu: the store write, then the table,
 * so the stored report of a worker is always the one Stats shows. mu is not
 * held while the store commits (an fsync in every-commit mode), so pushes,
 * pulls and Stats do not wait for it. A report that cannot be stored (a full
 * disk: RESOURCE_EXHAUSTED) changes nothing. */
void
psf_ps_rpc_report(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__MetricsReport *in,
    Psfleet__V1__MetricsAck_Closure done, void *call)
{
	psf_ps *ps = psf_rpc_call_user(call);
	Psfleet__V1__MetricsAck r = PSFLEET__V1__METRICS_ACK__INIT;
	Psfleet__V1__MetricsReport rep = *in;
	size_t size = psfleet__v1__metrics_report__get_packed_size(in);
	uint8_t buf[PS_REPORT_MAX_BYTES];
	report_put put = {"", buf, 0};
	ps_worker *w;
	psf_err err;

	(void)svc;
	if (size > PS_REPORT_MAX_BYTES) { /* untrusted: unknown fields count too */
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED,
		    "a report of %zu bytes exceeds the limit of %d", size, PS_REPORT_MAX_BYTES);
		done(NULL, call);
		return;
	}
	if (in->n_residual_hist != 0 && in->n_residual_hist != PSF_RHIST_BINS) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
		    "residual_hist has %zu bins; this ps counts %d", in->n_residual_hist,
		    PSF_RHIST_BINS);
		done(NULL, call);
		return;
	}
	pthread_mutex_lock(&ps->report_mu);
	if ((w = ps_lock_worker(ps, in->worker, call)) == NULL) {
		pthread_mutex_unlock(&ps->report_mu);
		done(NULL, call);
		return;
	}
	/* A worker restarted after its last step (a finished run resumed) trained
	 * nothing this time: it reports the same final step without a loss or a
	 * throughput. Those of the steps that made the model are the stored ones. */
	if (w->has_report && w->report.finished && in->finished && w->report.step == in->step) {
		rep.train_loss = w->report.train_loss;
		rep.samples_per_sec = w->report.samples_per_sec;
	}
	pthread_mutex_unlock(&ps->mu);
	rep.base.unknown_fields = NULL;
	rep.base.n_unknown_fields = 0;
	put.len = psfleet__v1__metrics_report__pack(&rep, buf); /* <= size */
	ps_meta_worker_key(put.name, sizeof(put.name), "report", in->worker);
	if ((err = psf_store_update(ps->store, report_put_txn, &put)) != PSF_OK) {
		pthread_mutex_unlock(&ps->report_mu);
		psf_rpc_fail_err(call, err, "report of worker '%s' not stored: %s", in->worker,
		    psf_strerror(err));
		done(NULL, call);
		return;
	}
	pthread_mutex_lock(&ps->mu);
	report_set(w, &rep);
	for (size_t i = 0; i < ps->n_workers; i++)
		r.workers_reported += ps->workers[i].has_report ? 1 : 0;
	done(&r, call);
	pthread_mutex_unlock(&ps->mu);
	pthread_mutex_unlock(&ps->report_mu);
}
