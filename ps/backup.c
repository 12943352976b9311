/* backup.c -- the Backup RPC: an online, consistent copy of this shard's store
 * at one model version (psf_store_backup), made on a thread of its own so the
 * RPC slots and the training go on; the call is parked until the copy is done. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "ps/internal.h"

#define BACKUP_DEFAULT_TIMEOUT_MS 60000u
#define BACKUP_MAX_TIMEOUT_MS 3600000u

typedef struct backup_job {
	psf_ps *ps;
	void *call;
	Psfleet__V1__BackupReply_Closure done;
	char path[4096];
	uint64_t at_version;
	uint32_t timeout_ms;
	/* seen by the pin: the state copied */
	uint64_t version, step;
	bool passed; /* the shard was already past at_version */
} backup_job;

/* pin_fn picks the committed state to copy: any (at_version 0) or exactly
 * at_version; remembers what it saw. */
static bool
pin_fn(psf_store_txn *txn, void *arg)
{
	backup_job *j = arg;
	uint64_t v = 0, step = 0;

	if (psf_store_txn_meta_get_u64(txn, "version", &v) != PSF_OK)
		v = 0;
	if (psf_store_txn_meta_get_u64(txn, "step", &step) != PSF_OK)
		step = 0;
	if (j->at_version != 0 && v > j->at_version)
		j->passed = true;
	if (j->at_version != 0 && v != j->at_version)
		return false;
	j->version = v;
	j->step = step;
	return true;
}

static void *
backup_main(void *arg)
{
	backup_job *j = arg;
	psf_ps *ps = j->ps;
	Psfleet__V1__BackupReply r = PSFLEET__V1__BACKUP_REPLY__INIT;
	psf_store_backup_info info = {0};
	psf_err err;

	err = psf_store_backup(ps->store, j->path, pin_fn, j, j->timeout_ms, &info);
	if (err == PSF_ETIMEDOUT && j->passed)
		err = PSF_ESTATE;
	if (err != PSF_OK) {
		switch (err) {
		case PSF_ESTATE:
			psf_rpc_fail(j->call, PSF_STATUS_FAILED_PRECONDITION,
			    "%s is past version %llu: ask for a later one", ps->node->id,
			    (unsigned long long)j->at_version);
			break;
		case PSF_ETIMEDOUT:
			psf_rpc_fail(j->call, PSF_STATUS_DEADLINE_EXCEEDED,
			    "%s did not reach version %llu within %u ms", ps->node->id,
			    (unsigned long long)j->at_version, j->timeout_ms);
			break;
		case PSF_EEXIST:
			psf_rpc_fail(j->call, PSF_STATUS_FAILED_PRECONDITION,
			    "%s: %s already exists: back up into a new directory", ps->node->id,
			    j->path);
			break;
		default:
			psf_rpc_fail_err(j->call, err, "%s: backup into %s failed: %s",
			    ps->node->id, j->path, psf_strerror(err));
		}
		psf_log_warn("ps", "backup into %s failed: %s", j->path, psf_strerror(err));
		j->done(NULL, j->call);
	} else {
		r.model_version = j->version;
		r.trained_steps = j->step;
		r.path = j->path;
		r.entries = info.entries;
		r.bytes = info.bytes;
		r.wait_seconds = info.wait_seconds;
		r.copy_seconds = info.copy_seconds;
		psf_log_info("ps", "backup of version %llu into %s: %llu bytes, copied in %.3f s",
		    (unsigned long long)j->version, j->path, (unsigned long long)info.bytes,
		    info.copy_seconds);
		j->done(&r, j->call);
	}
	pthread_mutex_lock(&ps->mu);
	ps->backup_done = true;
	pthread_mutex_unlock(&ps->mu);
	free(j);
	return NULL;
}

/* backup_reap joins a finished backup thread. Caller holds mu. */
static void
backup_reap(psf_ps *ps)
{
	if (ps->backup_running && ps->backup_done) {
		pthread_join(ps->backup_thread, NULL);
		ps->backup_running = false;
		ps->backup_done = false;
	}
}

void
psf_ps_rpc_backup(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__BackupRequest *in,
    Psfleet__V1__BackupReply_Closure done, void *call)
{
	psf_ps *ps = psf_rpc_call_user(call);
	backup_job *j;
	int n;

	(void)svc;
	if (in->dir == NULL || in->dir[0] != '/') {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
		    "backup: dir must be an absolute path on the ps host");
		done(NULL, call);
		return;
	}
	if (in->timeout_ms > BACKUP_MAX_TIMEOUT_MS) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "backup: timeout_ms over %u",
		    BACKUP_MAX_TIMEOUT_MS);
		done(NULL, call);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		psf_rpc_fail_err(call, PSF_ENOMEM, "backup: out of memory");
		done(NULL, call);
		return;
	}
	/* named by the shard (its first node's id: this node's own id unless
	 * replicated), so every replica of the shard restores from it */
	n = snprintf(j->path, sizeof(j->path), "%s/%s", in->dir, ps->cfg->nodes[ps->shard].id);
	if (n < 0 || (size_t)n >= sizeof(j->path)) {
		free(j);
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "backup: dir too long");
		done(NULL, call);
		return;
	}
	j->ps = ps;
	j->call = call;
	j->done = done;
	j->at_version = in->at_version;
	j->timeout_ms = in->timeout_ms != 0 ? in->timeout_ms : BACKUP_DEFAULT_TIMEOUT_MS;

	pthread_mutex_lock(&ps->mu);
	backup_reap(ps);
	if (ps->stopping || ps->backup_running) {
		bool stopping = ps->stopping;

		pthread_mutex_unlock(&ps->mu);
		free(j);
		psf_rpc_fail(call, PSF_STATUS_UNAVAILABLE, "%s: %s", ps->node->id,
		    stopping ? "stopping" : "a backup is already running");
		done(NULL, call);
		return;
	}
	if (pthread_create(&ps->backup_thread, NULL, backup_main, j) != 0) {
		pthread_mutex_unlock(&ps->mu);
		free(j);
		psf_rpc_fail_err(call, PSF_ESYS, "backup: cannot start a thread");
		done(NULL, call);
		return;
	}
	ps->backup_running = true;
	pthread_mutex_unlock(&ps->mu);
	/* parked: backup_main answers */
}

void
ps_backup_stop(psf_ps *ps)
{
	bool running;

	psf_store_backup_cancel(ps->store);
	pthread_mutex_lock(&ps->mu);
	running = ps->backup_running;
	ps->backup_running = false;
	pthread_mutex_unlock(&ps->mu);
	if (running)
		pthread_join(ps->backup_thread, NULL);
}
