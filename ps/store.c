/* store.c -- LMDB behind psf_store: the environment (open/close, map reserve and
 * grow), update and read transactions, durability and stats. The calls made
 * inside a transaction are in store_txn.c; store_internal.h is what both share.
 *
 * Locking, outermost first:
 *   st_write_mu   serializes psf_store_update (LMDB allows one write txn).
 *   st_map_lock   every transaction and every mdb_env_sync holds it shared; a
 *                 map grow holds it exclusive, because mdb_env_set_mapsize may
 *                 only run while no transaction of the process is active
 *                 (lmdb.h). Writer-preferring, so readers cannot starve a grow.
 *   st_pool_mu    guards the cache of reset read transactions.
 *   st_sync_mu    guards st_stopping for the interval sync thread. */
#define _GNU_SOURCE
#include "ps/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/bounds.h"
#include "lib/base/log.h"
#include "lib/base/util.h"

/* 64 MiB: in interval mode the whole map is allocated on disk (map_reserve),
 * so a fresh store costs 64 MiB, not 1 GiB; the map doubles as it fills. */
#define DEFAULT_MAP_SIZE (64ull << 20)
#define DEFAULT_MAX_MAP_SIZE PSF_STORE_MAX_MAP_SIZE /* durability.map_size's bound too */
#define DEFAULT_INTERVAL_MS 1000
#define DEFAULT_MAX_READERS 126
/* A commit that fails with EIO while less than this is free on the filesystem
 * is a full disk (LMDB reports a short write as EIO). */
#define DISK_FULL_SLACK (4ull << 20)

const char *const store_db_names[N_ALL_DBS] = {
    [PSF_STORE_WEIGHTS] = "weights",
    [PSF_STORE_OPTSTATE] = "optstate",
    [PSF_STORE_ACCUM] = "accum",
    [DB_META] = "meta",
    [DB_PUSHLOG] = "pushlog",
};

psf_err
psf_err_from_mdb(int rc, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS: return PSF_OK;
	case MDB_NOTFOUND: return PSF_ENOENT;
	case MDB_MAP_FULL: return PSF_ENOSPC;
	case MDB_READERS_FULL:
		psf_log_warn(TAG, "%s: %s", what, mdb_strerror(rc));
		return PSF_EBUSY;
	case ENOMEM: return PSF_ENOMEM;
	case ENOSPC: psf_log_err(TAG, "%s: %s", what, mdb_strerror(rc)); return PSF_ENOSPC;
	default: psf_log_err(TAG, "%s: %s", what, mdb_strerror(rc)); return PSF_ESTORE;
	}
}

/* ---- writes -------------------------------------------------------------- */

/* map_reserve allocates the data file's blocks for a map of size bytes. With
 * MDB_WRITEMAP (interval mode) LMDB writes through a shared mapping of a sparse
 * file: a page the filesystem cannot back then raises SIGBUS instead of an
 * error. With every block allocated up front, writes into the map need no new
 * blocks, and a full disk shows up here, as PSF_ENOSPC, before the map may use
 * the space. Other modes write with pwrite, which reports ENOSPC/EIO, so they
 * reserve nothing. The caller holds st_write_mu or is the open. */
/* full_log_due tells whether to log that the disk is full now: callers retry
 * while it stays full, so it is said every 30 s, not at every attempt. Caller
 * holds st_write_mu (or is the only thread, at open). */
static bool
full_log_due(psf_store *st)
{
	uint64_t now = psf_now_ms();

	if (st->st_full_log_ms != 0 && now - st->st_full_log_ms < 30000)
		return false;
	st->st_full_log_ms = now;
	return true;
}

static psf_err
map_reserve(psf_store *st, size_t size)
{
	mdb_filehandle_t fd;
	struct stat sb;
	int rc;

	if (st->st_opts.durability != PSF_DUR_INTERVAL)
		return PSF_OK;
	if ((rc = mdb_env_get_fd(st->st_env, &fd)) != MDB_SUCCESS)
		return psf_err_from_mdb(rc, "reserve: get fd");
	if (fstat(fd, &sb) != 0) {
		psf_log_err(TAG, "reserve: fstat %s: %s", st->st_data_path, strerror(errno));
		return PSF_ESYS;
	}
	while ((rc = posix_fallocate(fd, 0, (off_t)size)) == EINTR)
		;
	if (rc == 0)
		return PSF_OK;
	/* A failed fallocate may leave blocks (and size) past the old end on some
	 * filesystems: give them back. The map never reaches past sb.st_size. */
	if (sb.st_size < (off_t)size && ftruncate(fd, sb.st_size) != 0)
		psf_log_warn(TAG, "reserve: ftruncate %s back to %jd bytes: %s", st->st_data_path,
		    (intmax_t)sb.st_size, strerror(errno));
	if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG) {
		if (full_log_due(st))
			psf_log_warn(TAG, "disk full: cannot allocate %zu bytes for %s", size,
			    st->st_data_path);
		return PSF_ENOSPC;
	}
	/* Not a full disk (an odd filesystem): carry on as before the reservation
	 * existed rather than refuse to work. */
	psf_log_warn(TAG,
	    "reserve: posix_fallocate %s to %zu bytes: %s; a full disk may "
	    "crash this process",
	    st->st_data_path, size, strerror(rc));
	return PSF_OK;
}

/* commit_err maps a failed commit. LMDB reports a short write (what a full disk
 * does to pwrite) as EIO; when the filesystem is (nearly) full, that is
 * PSF_ENOSPC rather than a store error. */
static psf_err
commit_err(psf_store_txn *txn, int rc)
{
	struct statvfs vfs;

	if (rc == EIO && statvfs(txn->t_st->st_data_path, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < DISK_FULL_SLACK) {
		if (full_log_due(txn->t_st))
			psf_log_warn(TAG,
			    "commit: I/O error with %" PRIu64 " bytes free: disk full",
			    (uint64_t)vfs.f_bavail * vfs.f_frsize);
		return PSF_ENOSPC;
	}
	return store_txn_rc(txn, rc, "commit");
}

/* update_once makes one attempt; *map_full tells the caller to grow and retry. */
/* With capture, *seq gets the committed writeset's repl_seq. */
static psf_err
update_once(psf_store *st, psf_store_update_fn fn, void *arg, bool capture, uint64_t *seq,
    bool *map_full)
{
	psf_store_txn t = {st, NULL, true, false, NULL};
	psf_err rv = PSF_OK;
	int rc;

	pthread_rwlock_rdlock(&st->st_map_lock);
	rc = mdb_txn_begin(st->st_env, NULL, 0, &t.t_txn);
	if (rc != MDB_SUCCESS) {
		pthread_rwlock_unlock(&st->st_map_lock);
		*map_full = false;
		return psf_err_from_mdb(rc, "write txn begin");
	}
	if (capture)
		rv = store_cap_begin(&t, seq);
	if (rv == PSF_OK)
		rv = fn(&t, arg);
	if (rv == PSF_OK && capture && !t.t_map_full)
		rv = store_cap_finish(&t, ++*seq);
	if (rv == PSF_OK && !t.t_map_full) {
		rc = mdb_txn_commit(t.t_txn); /* frees the txn, also on failure */
		rv = rc == MDB_SUCCESS ? PSF_OK : commit_err(&t, rc);
	} else {
		mdb_txn_abort(t.t_txn);
	}
	pthread_rwlock_unlock(&st->st_map_lock);
	*map_full = t.t_map_full;
	return rv;
}

/* map_grow doubles the map (up to st_max_map) with no transaction active. */
static psf_err
map_grow(psf_store *st)
{
	MDB_envinfo info;
	size_t next = 0;
	psf_err rv;
	int rc = MDB_SUCCESS;

	/* Only this thread (holding st_write_mu) changes the map size, so it can
	 * be read, and the blocks reserved, without blocking readers. */
	mdb_env_info(st->st_env, &info);
	if (info.me_mapsize >= st->st_max_map) {
		psf_log_err(TAG, "map full at max_map_size %zu bytes", st->st_max_map);
		return PSF_ENOSPC;
	}
	next = info.me_mapsize > st->st_max_map / 2 ? st->st_max_map : info.me_mapsize * 2;
	if ((rv = map_reserve(st, next)) != PSF_OK)
		return rv; /* the map keeps its size; the db is untouched */

	pthread_rwlock_wrlock(&st->st_map_lock);
	rc = mdb_env_set_mapsize(st->st_env, next);
	pthread_rwlock_unlock(&st->st_map_lock);

	if (rc != MDB_SUCCESS)
		return psf_err_from_mdb(rc, "map grow");
	atomic_fetch_add(&st->st_grows, 1);
	psf_log_info(TAG, "map grown from %zu to %zu bytes", info.me_mapsize, next);
	return PSF_OK;
}

psf_err
store_update(psf_store *st, psf_store_update_fn fn, void *arg, bool capture)
{
	uint64_t seq = 0;
	bool map_full;
	psf_err rv;

	if (st == NULL || fn == NULL)
		return PSF_EINVAL;
	pthread_mutex_lock(&st->st_write_mu);
	capture = capture && st->st_cap_fn != NULL;
	for (;;) {
		rv = update_once(st, fn, arg, capture, &seq, &map_full);
		if (!map_full)
			break;
		atomic_fetch_add(&st->st_retries, 1);
		store_grow_wait(st);
		if ((rv = map_grow(st)) != PSF_OK)
			break;
	}
	if (rv == PSF_OK && st->st_pin_fn != NULL)
		store_pin_after_commit(st);
	if (rv == PSF_OK) {
		atomic_fetch_add(&st->st_commits, 1);
		if (capture) /* committed: its code is the caller's, not the commit's */
			rv = st->st_cap_fn(seq, st->st_cap.out, st->st_cap.n_out, st->st_cap_arg);
	}
	pthread_mutex_unlock(&st->st_write_mu);
	return rv;
}

psf_err
psf_store_update(psf_store *st, psf_store_update_fn fn, void *arg)
{
	return store_update(st, fn, arg, true);
}

/* ---- reads --------------------------------------------------------------- */

/* reader_get hands out a renewed cached read txn or a new one. */
static psf_err
reader_get(psf_store *st, MDB_txn **out)
{
	MDB_txn *txn = NULL;
	int rc;

	pthread_mutex_lock(&st->st_pool_mu);
	if (st->st_n_pool > 0)
		txn = st->st_pool[--st->st_n_pool];
	pthread_mutex_unlock(&st->st_pool_mu);

	if (txn != NULL) {
		rc = mdb_txn_renew(txn);
		if (rc != MDB_SUCCESS)
			mdb_txn_abort(txn);
	} else {
		rc = mdb_txn_begin(st->st_env, NULL, MDB_RDONLY, &txn);
	}
	if (rc != MDB_SUCCESS)
		return psf_err_from_mdb(rc, "read txn begin");
	*out = txn;
	return PSF_OK;
}

/* reader_put ends a read txn, keeping the handle (and its reader slot) cached. */
static void
reader_put(psf_store *st, MDB_txn *txn)
{
	mdb_txn_reset(txn);
	pthread_mutex_lock(&st->st_pool_mu);
	if (st->st_n_pool < POOL_MAX) {
		st->st_pool[st->st_n_pool++] = txn;
		txn = NULL;
	}
	pthread_mutex_unlock(&st->st_pool_mu);
	if (txn != NULL)
		mdb_txn_abort(txn);
}

psf_err
psf_store_read(psf_store *st, psf_store_read_fn fn, void *arg)
{
	psf_store_txn t = {st, NULL, false, false, NULL};
	psf_err rv;

	if (st == NULL || fn == NULL)
		return PSF_EINVAL;
	pthread_rwlock_rdlock(&st->st_map_lock);
	rv = reader_get(st, &t.t_txn);
	if (rv == PSF_OK) {
		rv = fn(&t, arg);
		reader_put(st, t.t_txn);
	}
	pthread_rwlock_unlock(&st->st_map_lock);
	return rv;
}

/* ---- durability ------------------------------------------------------------ */

static psf_err
env_sync(psf_store *st)
{
	int rc;

	pthread_rwlock_rdlock(&st->st_map_lock);
	rc = mdb_env_sync(st->st_env, 1);
	pthread_rwlock_unlock(&st->st_map_lock);
	if (rc != MDB_SUCCESS)
		return psf_err_from_mdb(rc, "sync");
	atomic_fetch_add(&st->st_syncs, 1);
	return PSF_OK;
}

psf_err
psf_store_sync(psf_store *st)
{
	if (st == NULL)
		return PSF_EINVAL;
	return env_sync(st);
}

/* sync_main makes a durable point every interval_ms, skipping idle periods. */
static void *
sync_main(void *arg)
{
	psf_store *st = arg;
	uint64_t synced = 0; /* even the open's own commit is not durable yet */
	struct timespec when;

	pthread_mutex_lock(&st->st_sync_mu);
	while (!st->st_stopping) {
		uint64_t ns;

		clock_gettime(CLOCK_MONOTONIC, &when);
		ns = (uint64_t)when.tv_nsec + (uint64_t)st->st_opts.interval_ms * 1000000ull;
		when.tv_sec += (time_t)(ns / 1000000000ull);
		when.tv_nsec = (long)(ns % 1000000000ull);
		while (!st->st_stopping &&
		    pthread_cond_timedwait(&st->st_sync_cv, &st->st_sync_mu, &when) != ETIMEDOUT)
			;
		if (st->st_stopping)
			break;
		pthread_mutex_unlock(&st->st_sync_mu);
		uint64_t commits = atomic_load(&st->st_commits);
		if (commits != synced && env_sync(st) == PSF_OK)
			synced = commits;
		pthread_mutex_lock(&st->st_sync_mu);
	}
	pthread_mutex_unlock(&st->st_sync_mu);
	return NULL;
}

static void
sync_thread_stop(psf_store *st)
{
	if (!st->st_has_thread)
		return;
	pthread_mutex_lock(&st->st_sync_mu);
	st->st_stopping = true;
	pthread_cond_signal(&st->st_sync_cv);
	pthread_mutex_unlock(&st->st_sync_mu);
	pthread_join(st->st_thread, NULL);
	st->st_has_thread = false;
}

/* ---- open / close ------------------------------------------------------------ */

static void
store_free(psf_store *st)
{
	sync_thread_stop(st);
	while (st->st_n_pool > 0)
		mdb_txn_abort(st->st_pool[--st->st_n_pool]);
	if (st->st_is_open && env_sync(st) != PSF_OK)
		psf_log_err(TAG, "close: final sync failed; recent commits may not be durable");
	if (st->st_env != NULL)
		mdb_env_close(st->st_env);
	if (st->st_lock_fd >= 0)
		close(st->st_lock_fd); /* releases the directory lock */
	pthread_cond_destroy(&st->st_sync_cv);
	pthread_cond_destroy(&st->st_pin_cv);
	pthread_mutex_destroy(&st->st_sync_mu);
	pthread_mutex_destroy(&st->st_pool_mu);
	pthread_rwlock_destroy(&st->st_map_lock);
	pthread_mutex_destroy(&st->st_write_mu);
	store_cap_free(&st->st_cap);
	free(st->st_data_path);
	free(st);
}

void
psf_store_close(psf_store *st)
{
	if (st == NULL)
		return;
	psf_log_debug(TAG, "close: %" PRIu64 " commits, %" PRIu64 " grows",
	    (uint64_t)atomic_load(&st->st_commits), (uint64_t)atomic_load(&st->st_grows));
	store_free(st);
}

void
psf_store_opts_from_cfg(const psf_durability_cfg *cfg, psf_store_opts *out)
{
	memset(out, 0, sizeof(*out));
	if (cfg == NULL)
		return;
	out->durability = cfg->mode;
	out->interval_ms = cfg->interval_ms;
	out->map_size = cfg->map_size;
}

/* opts_resolve fills in defaults and checks ranges. */
static psf_err
opts_resolve(const psf_store_opts *in, psf_store_opts *o)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	if (in != NULL)
		*o = *in;
	else
		memset(o, 0, sizeof(*o));
	if ((unsigned)o->durability > PSF_DUR_NONE) {
		psf_log_err(TAG, "open: unknown durability mode %d", (int)o->durability);
		return PSF_EINVAL;
	}
	if (o->interval_ms == 0)
		o->interval_ms = DEFAULT_INTERVAL_MS;
	if (o->map_size == 0)
		o->map_size = DEFAULT_MAP_SIZE;
	if (o->max_map_size == 0)
		o->max_map_size =
		    o->map_size > DEFAULT_MAX_MAP_SIZE ? o->map_size : DEFAULT_MAX_MAP_SIZE;
	if (o->max_readers == 0)
		o->max_readers = DEFAULT_MAX_READERS;
	if (o->max_map_size > SIZE_MAX / 2 || o->map_size > o->max_map_size) {
		psf_log_err(TAG,
		    "open: map_size %" PRIu64 " / max_map_size %" PRIu64 " out of range",
		    o->map_size, o->max_map_size);
		return PSF_EINVAL;
	}
	o->map_size = (o->map_size + page - 1) / page * page;
	o->max_map_size = (o->max_map_size + page - 1) / page * page;
	return PSF_OK;
}

static psf_err
store_new(const char *dir, const psf_store_opts *opts, psf_store **out)
{
	pthread_rwlockattr_t ra;
	pthread_condattr_t ca;
	psf_store *st;
	psf_err rv;
	size_t plen = strlen(dir) + sizeof("/data.mdb");

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return PSF_ENOMEM;
	st->st_lock_fd = -1;
	if ((rv = opts_resolve(opts, &st->st_opts)) != PSF_OK) {
		free(st);
		return rv;
	}
	if ((st->st_data_path = malloc(plen)) == NULL) {
		free(st);
		return PSF_ENOMEM;
	}
	snprintf(st->st_data_path, plen, "%s/data.mdb", dir);
	st->st_max_map = (size_t)st->st_opts.max_map_size;

	/* Default-attribute init of these cannot fail on Linux/glibc. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&st->st_map_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->st_sync_cv, &ca);
	pthread_cond_init(&st->st_pin_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&st->st_write_mu, NULL);
	pthread_mutex_init(&st->st_pool_mu, NULL);
	pthread_mutex_init(&st->st_sync_mu, NULL);
	*out = st;
	return PSF_OK;
}

/* env_flags: measured with bench/store_bench (16 x 256 KiB per commit, ext4 on
 * this VM, medians, noisy): every-commit with default flags 164-354 commits/s vs
 * 93-152 with MDB_WRITEMAP (its commit msyncs the whole map), and default flags
 * keep the map read-only, so a stray write through a borrowed pointer faults
 * instead of corrupting. Both are durable. For none, WRITEMAP|MAPASYNC would be
 * ~2-4x faster, but plain NOSYNC keeps LMDB's integrity on an OS crash when the
 * filesystem preserves write order; interval already is the fast mode. */
static unsigned int
env_flags(psf_durability d)
{
	switch (d) {
	case PSF_DUR_INTERVAL: return MDB_NOTLS | MDB_WRITEMAP | MDB_MAPASYNC | MDB_NOSYNC;
	case PSF_DUR_EVERY_COMMIT: return MDB_NOTLS;
	case PSF_DUR_NONE: return MDB_NOTLS | MDB_NOSYNC;
	}
	return MDB_NOTLS;
}

static psf_err
env_open(psf_store *st, const char *dir)
{
	MDB_envinfo info;
	int rc, dead = 0;

	if ((rc = mdb_env_create(&st->st_env)) != MDB_SUCCESS) {
		st->st_env = NULL;
		return psf_err_from_mdb(rc, "env create");
	}
	if ((rc = mdb_env_set_maxdbs(st->st_env, N_ALL_DBS)) != MDB_SUCCESS ||
	    (rc = mdb_env_set_mapsize(st->st_env, (size_t)st->st_opts.map_size)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st->st_env, st->st_opts.max_readers)) != 0)
		return psf_err_from_mdb(rc, "env setup");
	rc = mdb_env_open(st->st_env, dir, env_flags(st->st_opts.durability), 0644);
	if (rc != MDB_SUCCESS) {
		char what[300];

		snprintf(what, sizeof(what), "open %s", dir);
		return psf_err_from_mdb(rc, what);
	}
	st->st_is_open = true;
	if ((rc = mdb_reader_check(st->st_env, &dead)) != MDB_SUCCESS)
		return psf_err_from_mdb(rc, "reader check");
	if (dead > 0)
		psf_log_info(TAG, "cleared %d stale reader slot(s) in %s", dead, dir);
	/* A reopened store keeps the map size it grew to; never cap below it. */
	mdb_env_info(st->st_env, &info);
	if (st->st_max_map < info.me_mapsize)
		st->st_max_map = info.me_mapsize;
	/* Before any write into the map: an existing fully allocated file needs
	 * no new blocks, so a full disk does not stop a reopen. */
	return map_reserve(st, info.me_mapsize);
}

/* lock_dir takes an exclusive flock on <dir>/psfleet.lock, held through
 * st_lock_fd until the store is closed, and writes this process's pid into the
 * file for the message another opener gets. LMDB itself lets any number of
 * processes open one environment, so without it two ps nodes given the same
 * data_dir would both serve it and overwrite each other's training. flock
 * belongs to the open file, so the kernel releases it however the process ends
 * (kill -9 too): a stale lock file is taken over at once. PSF_ELOCKED (logged,
 * with the holder's pid) when another open store holds it. */
static psf_err
lock_dir(psf_store *st, const char *dir)
{
	char path[4096], buf[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/psfleet.lock", dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		psf_log_err(TAG, "open: cannot create %s: %s", path, strerror(errno));
		return PSF_ESYS;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		ssize_t got = e == EWOULDBLOCK ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;
		long pid = got > 0 ? (buf[got] = '\0', strtol(buf, NULL, 10)) : 0;

		close(fd);
		if (e != EWOULDBLOCK) {
			psf_log_err(TAG, "open: cannot lock %s: %s", path, strerror(e));
			return PSF_ESYS;
		}
		if (pid > 0)
			psf_log_err(TAG,
			    "%s is in use by another process (pid %ld): each ps node needs "
			    "its own data_dir",
			    dir, pid);
		else
			psf_log_err(TAG,
			    "%s is in use by another process (pid not yet recorded in %s): "
			    "each ps node needs its own data_dir",
			    dir, path);
		return PSF_ELOCKED;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		psf_log_warn(TAG, "cannot record this pid in %s: %s", path, strerror(errno));
	st->st_lock_fd = fd;
	return PSF_OK;
}

/* dbs_open_fn creates/opens the named databases. It runs as an update, so a
 * tiny initial map grows like any other write. */
static psf_err
dbs_open_fn(psf_store_txn *txn, void *arg)
{
	psf_store *st = arg;

	for (int i = 0; i < N_ALL_DBS; i++) {
		int rc = mdb_dbi_open(txn->t_txn, store_db_names[i], MDB_CREATE, &st->st_dbi[i]);

		if (rc != MDB_SUCCESS)
			return store_txn_rc(txn, rc, store_db_names[i]);
	}
	return PSF_OK;
}

psf_err
psf_store_open(const char *dir, const psf_store_opts *opts, psf_store **out)
{
	psf_store *st;
	psf_err rv;

	if (dir == NULL || dir[0] == '\0' || out == NULL)
		return PSF_EINVAL;
	if ((rv = store_new(dir, opts, &st)) != PSF_OK)
		return rv;
	if ((rv = psf_mkdir_p(dir)) != PSF_OK)
		psf_log_err(TAG, "open: cannot create %s: %s", dir, psf_strerror(rv));
	if (rv == PSF_OK)
		rv = lock_dir(st, dir);
	if (rv == PSF_OK)
		rv = env_open(st, dir);
	if (rv == PSF_OK)
		rv = psf_store_update(st, dbs_open_fn, st);
	if (rv == PSF_OK && st->st_opts.durability == PSF_DUR_INTERVAL) {
		if (pthread_create(&st->st_thread, NULL, sync_main, st) != 0) {
			psf_log_err(TAG, "open: cannot start the sync thread");
			rv = PSF_ESYS;
		}
		st->st_has_thread = rv == PSF_OK;
	}
	if (rv != PSF_OK) {
		store_free(st);
		return rv;
	}
	psf_log_info(TAG, "opened %s durability=%s map=%" PRIu64 " bytes", dir,
	    psf_durability_name(st->st_opts.durability), st->st_opts.map_size);
	*out = st;
	return PSF_OK;
}

/* ---- stats ------------------------------------------------------------------ */

static psf_err
stats_fn(psf_store_txn *txn, void *arg)
{
	psf_store_info *info = arg;
	MDB_envinfo ei;
	MDB_stat es;
	psf_err rv;

	for (int i = 0; i < PSF_STORE_N_DBS; i++)
		if ((rv = store_db_count(txn, i, &info->entries[i])) != PSF_OK)
			return rv;
	if ((rv = store_db_count(txn, DB_META, &info->meta_entries)) != PSF_OK ||
	    (rv = store_db_count(txn, DB_PUSHLOG, &info->pushlog_entries)) != PSF_OK)
		return rv;
	mdb_env_info(txn->t_st->st_env, &ei);
	mdb_env_stat(txn->t_st->st_env, &es);
	info->map_bytes = ei.me_mapsize;
	info->used_bytes = (uint64_t)(ei.me_last_pgno + 1) * es.ms_psize;
	return PSF_OK;
}

psf_err
psf_store_stats(psf_store *st, psf_store_info *out)
{
	psf_store_info info = {0};
	struct stat sb;
	psf_err rv;

	if (st == NULL || out == NULL)
		return PSF_EINVAL;
	if ((rv = psf_store_read(st, stats_fn, &info)) != PSF_OK)
		return rv;
	if (stat(st->st_data_path, &sb) != 0) {
		psf_log_err(TAG, "stat %s: %s", st->st_data_path, strerror(errno));
		return PSF_ESYS;
	}
	info.file_bytes = (uint64_t)sb.st_size;
	info.disk_bytes = (uint64_t)sb.st_blocks * 512u;
	info.commits = atomic_load(&st->st_commits);
	info.retries = atomic_load(&st->st_retries);
	info.grows = atomic_load(&st->st_grows);
	info.syncs = atomic_load(&st->st_syncs);
	*out = info;
	return PSF_OK;
}
