/* store_backup.c -- online backup of a store: one committed state, chosen by a
 * predicate evaluated inside the commit path, copied into a new LMDB
 * environment while the store keeps taking updates (store.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "ps/store_internal.h"

/* Values are copied in transactions of at most this many bytes, so a large
 * model never exceeds LMDB's dirty-page limit in one write txn. */
#define COPY_TXN_BYTES ((size_t)64 << 20)

static double
mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* pin_try begins a read txn on the last committed state and keeps it when the
 * pending predicate holds. Caller holds st_write_mu. */
static void
pin_try(psf_store *st)
{
	psf_store_txn t = {st, NULL, false, false, NULL};

	if (mdb_txn_begin(st->st_env, NULL, MDB_RDONLY, &t.t_txn) != MDB_SUCCESS)
		return; /* no reader slot now: the next commit tries again */
	if (st->st_pin_fn == NULL || st->st_pin_fn(&t, st->st_pin_arg)) {
		st->st_pinned = t.t_txn;
		st->st_backup_active = true;
		st->st_pin_fn = NULL;
		pthread_cond_broadcast(&st->st_pin_cv);
		return;
	}
	mdb_txn_abort(t.t_txn);
}

void
store_pin_after_commit(psf_store *st)
{
	pin_try(st);
}

void
store_grow_wait(psf_store *st)
{
	while (st->st_backup_active)
		pthread_cond_wait(&st->st_pin_cv, &st->st_write_mu);
}

void
psf_store_backup_cancel(psf_store *st)
{
	if (st == NULL)
		return;
	pthread_mutex_lock(&st->st_write_mu);
	st->st_pin_cancel = true;
	pthread_cond_broadcast(&st->st_pin_cv);
	pthread_mutex_unlock(&st->st_write_mu);
}

/* pin_wait pins the wanted state (see psf_store_backup). */
static psf_err
pin_wait(psf_store *st, psf_store_pin_fn pin, void *arg, uint32_t timeout_ms)
{
	struct timespec until;
	uint64_t ns;
	psf_err rv = PSF_OK;

	clock_gettime(CLOCK_MONOTONIC, &until);
	ns = (uint64_t)until.tv_nsec + (uint64_t)timeout_ms * 1000000ull;
	until.tv_sec += (time_t)(ns / 1000000000ull);
	until.tv_nsec = (long)(ns % 1000000000ull);

	pthread_mutex_lock(&st->st_write_mu);
	if (st->st_pin_cancel) {
		pthread_mutex_unlock(&st->st_write_mu);
		return PSF_ECLOSED;
	}
	if (st->st_backup_active || st->st_pin_fn != NULL) {
		pthread_mutex_unlock(&st->st_write_mu);
		return PSF_EBUSY;
	}
	st->st_pin_fn = pin;
	st->st_pin_arg = arg;
	pin_try(st); /* the current state may be the one */
	while (st->st_pinned == NULL && rv == PSF_OK) {
		if (st->st_pin_cancel)
			rv = PSF_ECLOSED;
		else if (pthread_cond_timedwait(&st->st_pin_cv, &st->st_write_mu, &until) ==
		    ETIMEDOUT)
			rv = st->st_pinned != NULL ? PSF_OK : PSF_ETIMEDOUT;
	}
	if (rv != PSF_OK)
		st->st_pin_fn = NULL;
	pthread_mutex_unlock(&st->st_write_mu);
	return rv;
}

/* pin_release ends the pinned reader and lets map grows go on. */
static void
pin_release(psf_store *st)
{
	pthread_mutex_lock(&st->st_write_mu);
	if (st->st_pinned != NULL)
		mdb_txn_abort(st->st_pinned);
	st->st_pinned = NULL;
	st->st_backup_active = false;
	pthread_cond_broadcast(&st->st_pin_cv);
	pthread_mutex_unlock(&st->st_write_mu);
}

psf_err
store_pin_now(psf_store *st)
{
	psf_err rv = pin_wait(st, NULL, NULL, 0);

	/* No pin on the spot: no reader slot free (pin_try). */
	return rv == PSF_ETIMEDOUT ? PSF_EBUSY : rv;
}

void
store_pin_release(psf_store *st)
{
	pin_release(st);
}

/* copy_db appends every entry of database i, read through src, into dst
 * (committing every COPY_TXN_BYTES). */
static psf_err
copy_db(psf_store *st, MDB_txn *src, MDB_env *dst, int i, uint64_t *entries)
{
	MDB_cursor *cur = NULL;
	MDB_txn *w = NULL;
	MDB_dbi ddbi;
	MDB_val k, v;
	size_t in_txn = 0;
	int rc;

	if ((rc = mdb_cursor_open(src, st->st_dbi[i], &cur)) != MDB_SUCCESS)
		return psf_err_from_mdb(rc, "backup: cursor");
	rc = mdb_txn_begin(dst, NULL, 0, &w);
	if (rc == MDB_SUCCESS)
		rc = mdb_dbi_open(w, store_db_names[i], MDB_CREATE, &ddbi);
	for (int op = MDB_FIRST; rc == MDB_SUCCESS; op = MDB_NEXT) {
		if ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) != MDB_SUCCESS)
			break;
		if ((rc = mdb_put(w, ddbi, &k, &v, MDB_APPEND)) != MDB_SUCCESS)
			break;
		(*entries)++;
		in_txn += k.mv_size + v.mv_size;
		if (in_txn >= COPY_TXN_BYTES) {
			rc = mdb_txn_commit(w);
			w = NULL;
			in_txn = 0;
			if (rc == MDB_SUCCESS)
				rc = mdb_txn_begin(dst, NULL, 0, &w);
		}
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND) {
		rc = mdb_txn_commit(w);
		w = NULL;
	}
	if (w != NULL)
		mdb_txn_abort(w);
	if (rc == MDB_MAP_FULL || rc == ENOSPC)
		return PSF_ENOSPC;
	return rc == MDB_SUCCESS ? PSF_OK : psf_err_from_mdb(rc, "backup: copy");
}

/* copy_all writes the pinned state into a new environment in tmp. */
static psf_err
copy_all(psf_store *st, const char *tmp, uint64_t *entries)
{
	MDB_envinfo info;
	MDB_env *dst = NULL;
	psf_err rv = PSF_OK;
	int rc;

	mdb_env_info(st->st_env, &info);
	if ((rc = mdb_env_create(&dst)) != MDB_SUCCESS)
		return psf_err_from_mdb(rc, "backup: env create");
	if ((rc = mdb_env_set_maxdbs(dst, N_ALL_DBS)) != MDB_SUCCESS ||
	    (rc = mdb_env_set_mapsize(dst, info.me_mapsize)) != MDB_SUCCESS ||
	    (rc = mdb_env_open(dst, tmp, MDB_NOSYNC, 0644)) != MDB_SUCCESS) {
		rv = rc == ENOSPC ? PSF_ENOSPC : psf_err_from_mdb(rc, "backup: env open");
		mdb_env_close(dst);
		return rv;
	}
	for (int i = 0; i < N_ALL_DBS && rv == PSF_OK; i++)
		rv = copy_db(st, st->st_pinned, dst, i, entries);
	if (rv == PSF_OK && (rc = mdb_env_sync(dst, 1)) != MDB_SUCCESS)
		rv = rc == ENOSPC ? PSF_ENOSPC : psf_err_from_mdb(rc, "backup: sync");
	mdb_env_close(dst);
	return rv;
}

/* remove_partial deletes what a failed copy left in tmp. */
static void
remove_partial(const char *tmp)
{
	char path[4096 + 16];

	snprintf(path, sizeof(path), "%s/data.mdb", tmp);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", tmp);
	(void)unlink(path);
	(void)rmdir(tmp);
}

psf_err
psf_store_backup(psf_store *st, const char *dir, psf_store_pin_fn pin, void *arg,
    uint32_t timeout_ms, psf_store_backup_info *info)
{
	char tmp[4096], path[4096 + 16];
	struct stat sb;
	uint64_t entries = 0;
	double t0 = mono_seconds(), t1;
	psf_err rv;

	if (st == NULL || dir == NULL || dir[0] == '\0' ||
	    strlen(dir) + sizeof(".partial/data.mdb") > sizeof(tmp))
		return PSF_EINVAL;
	if (stat(dir, &sb) == 0) {
		psf_log_err(TAG, "backup: %s already exists", dir);
		return PSF_EEXIST;
	}
	snprintf(tmp, sizeof(tmp), "%s.partial", dir);
	remove_partial(tmp); /* left by an earlier attempt that died */
	if ((rv = psf_mkdir_p(tmp)) != PSF_OK) {
		psf_log_err(TAG, "backup: cannot create %s: %s", tmp, psf_strerror(rv));
		return rv;
	}
	if ((rv = pin_wait(st, pin, arg, timeout_ms)) != PSF_OK) {
		remove_partial(tmp);
		return rv;
	}
	t1 = mono_seconds();
	rv = copy_all(st, tmp, &entries);
	pin_release(st);
	snprintf(path, sizeof(path), "%s/lock.mdb", tmp);
	(void)unlink(path); /* the copy's reader table: not part of the data */
	if (rv == PSF_OK && rename(tmp, dir) != 0) {
		psf_log_err(TAG, "backup: rename %s to %s: %s", tmp, dir, strerror(errno));
		rv = PSF_ESYS;
	}
	if (rv != PSF_OK) {
		remove_partial(tmp);
		return rv;
	}
	if (info != NULL) {
		snprintf(path, sizeof(path), "%s/data.mdb", dir);
		info->entries = entries;
		info->bytes = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
		info->wait_seconds = t1 - t0;
		info->copy_seconds = mono_seconds() - t1;
	}
	psf_log_info(TAG, "backup: %" PRIu64 " entries into %s in %.3f s", entries, dir,
	    mono_seconds() - t1);
	return PSF_OK;
}
