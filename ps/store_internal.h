/* store_internal.h -- what store.c and store_txn.c share (not a public API).
 *
 *   store.c      the environment: open/close, map reserve and grow, update and
 *                read transactions, durability (sync thread), stats
 *   store_txn.c  the psf_store_txn_* calls made inside a transaction: the
 *                uint64-keyed databases, meta and pushlog
 *
 *   store_backup.c  online backup: a read txn pinned at a chosen commit, copied
 *                   into a new environment while writers go on
 *   store_repl.c    replication: writeset capture and apply, streamed copy and
 *                   install
 *
 * Only these files and this header include lmdb.h. */
#ifndef PSF_STORE_INTERNAL_H
#define PSF_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "ps/store.h"

#define TAG "store"
#define POOL_MAX 32

/* Internal database indexes: the public uint64-keyed ones, then the named ones. */
enum { DB_META = PSF_STORE_N_DBS, DB_PUSHLOG, N_ALL_DBS };

/* store_db_names are the LMDB names of the databases, by index (store.c). */
extern const char *const store_db_names[N_ALL_DBS];

/* store_cap records, during one captured update txn, which keys were written
 * (values are read at commit). Owned by the store, reused across updates,
 * guarded by st_write_mu. */
typedef struct store_cap_op {
	uint8_t code; /* 'P', 'D', 'C', 'A' (store.h, writeset format) */
	uint8_t dbi;
	uint16_t klen;
	uint32_t koff; /* into keys */
} store_cap_op;

typedef struct store_cap {
	store_cap_op *ops;
	size_t n_ops, cap_ops;
	unsigned char *keys;
	size_t n_keys, cap_keys;
	unsigned char *out; /* the serialised writeset */
	size_t n_out, cap_out;
} store_cap;

struct psf_store {
	MDB_env *st_env;
	MDB_dbi st_dbi[N_ALL_DBS];
	bool st_is_open; /* mdb_env_open succeeded */
	psf_store_opts st_opts;
	size_t st_max_map;
	char *st_data_path;      /* <dir>/data.mdb, for stats */
	int st_lock_fd;          /* <dir>/psfleet.lock, flock'ed while open; -1 = none */
	uint64_t st_full_log_ms; /* last "disk full" line; under st_write_mu (map grows) */

	pthread_mutex_t st_write_mu;
	pthread_rwlock_t st_map_lock;
	pthread_mutex_t st_pool_mu;
	MDB_txn *st_pool[POOL_MAX]; /* reset read txns; guarded by st_pool_mu */
	size_t st_n_pool;

	pthread_mutex_t st_sync_mu;
	pthread_cond_t st_sync_cv;
	bool st_stopping; /* guarded by st_sync_mu */
	bool st_has_thread;
	pthread_t st_thread;

	/* Online backup (store_backup.c), all guarded by st_write_mu. A backup
	 * waiting for its commit sets st_pin_fn; psf_store_update evaluates it on a
	 * fresh read txn after each commit and, when it holds, keeps that txn in
	 * st_pinned and sets st_backup_active. While st_backup_active, map grows
	 * wait on st_pin_cv (a remap under the pinned reader is not allowed). */
	psf_store_pin_fn st_pin_fn;
	void *st_pin_arg;
	MDB_txn *st_pinned;
	bool st_backup_active;
	bool st_pin_cancel;
	pthread_cond_t st_pin_cv; /* CLOCK_MONOTONIC */

	/* Writeset capture (store_repl.c), guarded by st_write_mu. */
	psf_store_capture_fn st_cap_fn;
	void *st_cap_arg;
	store_cap st_cap;

	atomic_uint_fast64_t st_commits;
	atomic_uint_fast64_t st_retries;
	atomic_uint_fast64_t st_grows;
	atomic_uint_fast64_t st_syncs;
};

struct psf_store_txn {
	psf_store *t_st;
	MDB_txn *t_txn;
	bool t_is_write;
	bool t_map_full;  /* a write hit MDB_MAP_FULL: the txn is dead; grow and retry */
	store_cap *t_cap; /* non-NULL: record every write (capture on) */
};

/* store.c ---------------------------------------------------------------------- */

/* psf_err_from_mdb is the one place LMDB codes become psf_err. Expected
 * outcomes (not found, map full) are not logged; everything else is, once,
 * with what (the failed operation) in the message. */
PSF_NODISCARD psf_err psf_err_from_mdb(int rc, const char *what);

/* store_pin_after_commit runs, under st_write_mu, after every successful commit
 * (store_backup.c). */
void store_pin_after_commit(psf_store *st);

/* store_grow_wait waits, under st_write_mu, while an online backup holds a pinned
 * reader (store_backup.c). */
void store_grow_wait(psf_store *st);

/* store_update is psf_store_update; capture false skips writeset capture (the
 * replication calls that set repl_seq themselves). */
PSF_NODISCARD psf_err store_update(psf_store *st, psf_store_update_fn fn, void *arg, bool capture);

/* store_backup.c ------------------------------------------------------------------ */

/* store_pin_now pins a read txn on the current committed state into st_pinned
 * (one pin at a time: PSF_EBUSY; PSF_ECLOSED after psf_store_backup_cancel);
 * store_pin_release ends it. */
PSF_NODISCARD psf_err store_pin_now(psf_store *st);
void store_pin_release(psf_store *st);

/* store_repl.c --------------------------------------------------------------------- */

/* store_cap_note records a write on txn->t_cap (code as store_cap_op; k NULL
 * for 'C'/'A'). PSF_ENOMEM when it cannot: the caller aborts the txn. */
PSF_NODISCARD psf_err store_cap_note(psf_store_txn *txn, int code, int dbi, const MDB_val *k);

/* store_cap_begin starts recording on txn (capture on) and reads the current
 * repl_seq into *seq; store_cap_finish writes repl_seq = seq and serialises
 * the writeset into st_cap.out (just before the commit). */
PSF_NODISCARD psf_err store_cap_begin(psf_store_txn *txn, uint64_t *seq);
PSF_NODISCARD psf_err store_cap_finish(psf_store_txn *txn, uint64_t seq);

/* store_cap_free frees the capture buffers (close). */
void store_cap_free(store_cap *cap);

/* store_txn.c ------------------------------------------------------------------ */

/* store_txn_rc maps rc from an LMDB call on txn like psf_err_from_mdb, and on
 * MDB_MAP_FULL also marks txn dead (t_map_full), so psf_store_update grows the
 * map and runs the update again. */
PSF_NODISCARD psf_err store_txn_rc(psf_store_txn *txn, int rc, const char *what);

/* store_db_count writes the number of entries of database index dbi (any of
 * N_ALL_DBS) to *n_out. Errors as store_txn_rc. */
PSF_NODISCARD psf_err store_db_count(psf_store_txn *txn, int dbi, uint64_t *n_out);

#endif
