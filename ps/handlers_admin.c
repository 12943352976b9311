/* handlers_admin.c -- what a ps node adds to the Admin service (lib/runtime/admin.h):
 * its model version, its worker table and its mode, round, steps and shard. */
#include <stdio.h>

#include "ps/internal.h"

static psf_err
version_txn(psf_store_txn *txn, void *arg)
{
	return psf_store_txn_meta_get_u64(txn, "version", arg);
}

static uint64_t
health_version(void *arg)
{
	psf_ps *ps = arg;
	uint64_t v = 0;

	/* A replica that is not its shard's primary keeps no version in memory
	 * (it is rebuilt when promoted): its store has the one it holds. */
	if (!ps_repl_may_write(ps))
		return psf_store_read(ps->store, version_txn, &v) == PSF_OK ? v : 0;
	pthread_mutex_lock(&ps->mu);
	v = ps->version;
	pthread_mutex_unlock(&ps->mu);
	return v;
}

/* status copies the worker table under mu (st copies every string). */
static psf_err
status(void *arg, psf_admin_status *st)
{
	psf_ps *ps = arg;
	psf_err err = PSF_OK;

	pthread_mutex_lock(&ps->mu);
	psf_admin_status_version(st, ps->version);
	for (size_t i = 0; i < ps->n_workers && err == PSF_OK; i++) {
		const ps_worker *w = &ps->workers[i];
		err = psf_admin_status_worker(st, w->id, w->clock, w->live && !w->done, w->last_seq,
		    w->pushes);
	}
	if (err != PSF_OK ||
	    (err = psf_admin_status_extra(st, "mode", "%s",
	         psf_consistency_name(ps->cfg->consistency.mode))) != PSF_OK ||
	    (err = psf_admin_status_extra(st, "round", "%lld", (long long)ps->round)) != PSF_OK ||
	    (err = psf_admin_status_extra(st, "trained_steps", "%llu",
	         (unsigned long long)ps->step)) != PSF_OK)
		goto out;
	err = psf_admin_status_extra(st, "shard", "%zu/%zu", ps->shard, ps->n_ps);
out:
	pthread_mutex_unlock(&ps->mu);
	if (err == PSF_OK) /* repl's own locks, not under mu */
		err = ps_repl_status(ps, st);
	return err;
}

psf_err
ps_admin_open(psf_ps *ps)
{
	psf_admin_role role = {health_version, status, ps};

	return psf_admin_new(ps->rt, &role, ps->srv, &ps->admin);
}
