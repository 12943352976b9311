/* store.h -- the parameter server's durable key/value store (DESIGN.md §5).
 *
 * One LMDB environment per ps node, in a directory. store.c and store_txn.c
 * (sharing store_internal.h) are the only files in psfleet that include lmdb.h;
 * nothing LMDB-specific leaks through this header.
 *
 * Databases. Three are keyed by uint64 parameter keys ((tensor_id << 48) | row)
 * and hold float arrays (psf_store_db): weights, optimizer state, and the sync
 * mode's per-round gradient accumulator. Keys are stored big-endian, so walking
 * a database visits keys in ascending numeric order. Two more are reached through
 * their own calls: "meta" (small named blobs and uint64 counters, e.g. the model
 * version) and "pushlog" (worker id -> last applied push seq), so that a push and
 * its dedup record commit in one transaction.
 *
 * Transactions. All access happens inside a callback that the store runs inside
 * one LMDB transaction: psf_store_update for writes, psf_store_read for reads.
 * The transaction starts and ends inside the call; no handle escapes it
 * (STYLE.md §4.6).
 *
 * Thread-safety. A psf_store may be shared by any number of threads.
 * psf_store_update calls are serialized by the store (one writer at a time; a
 * second caller blocks until the first returns). psf_store_read calls run
 * concurrently with each other and with the writer and see the last committed
 * state (MVCC). psf_store_sync and psf_store_stats may be called from any thread.
 * psf_store_close must not race with any other call. Callbacks must not call
 * psf_store_update, psf_store_read, psf_store_sync or psf_store_stats (doing
 * so deadlocks); they use only the psf_store_txn_* calls on the txn they got.
 *
 * Process rules (LMDB): open a directory at most once per process, and never
 * use a psf_store across fork(); a child opens its own.
 *
 * Values are not aligned. A pointer returned by psf_store_txn_get, _rewrite or
 * psf_store_txn_put_reserve points into the database map and is only 2-byte
 * aligned for small values, so never cast it to float *: memcpy, or use
 * psf_store_txn_get_floats / psf_store_txn_put_floats, which copy. */
#ifndef PSF_STORE_H
#define PSF_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/config/config.h"

typedef struct psf_store psf_store;
typedef struct psf_store_txn psf_store_txn;

/* The uint64-keyed databases. */
typedef enum psf_store_db {
	PSF_STORE_WEIGHTS = 0, /* key -> float[n] */
	PSF_STORE_OPTSTATE,    /* key -> float[n * psf_optim_state_floats(kind)] */
	PSF_STORE_ACCUM,       /* sync mode: key -> gradient summed over this round */
	PSF_STORE_N_DBS
} psf_store_db;

/* Open options. A zeroed struct (or opts == NULL) means the defaults.
 *
 * durability:
 *   PSF_DUR_INTERVAL     MDB_WRITEMAP|MDB_MAPASYNC|MDB_NOSYNC, plus a store-owned
 *                        thread that makes a durable point (mdb_env_sync(env, 1))
 *                        every interval_ms. A killed process loses no committed
 *                        write; an OS crash or power loss may lose the last
 *                        interval_ms of commits and, as with any WRITEMAP+NOSYNC
 *                        setup, may leave the file inconsistent.
 *   PSF_DUR_EVERY_COMMIT each commit is on disk when psf_store_update returns
 *                        (LMDB's default flags: data fdatasync, then meta page).
 *   PSF_DUR_NONE         MDB_NOSYNC: commits reach the OS page cache (they survive
 *                        a killed process, not an OS crash); synced only by
 *                        psf_store_sync and psf_store_close. */
typedef struct psf_store_opts {
	psf_durability durability; /* default PSF_DUR_INTERVAL */
	uint32_t interval_ms;      /* PSF_DUR_INTERVAL period; 0 = 1000 */
	uint64_t map_size;         /* initial map size in bytes; 0 = 64 MiB; rounded up to
	                              the OS page size; grows by doubling when full */
	uint64_t max_map_size;     /* growth stops here (then PSF_ENOSPC); 0 = 1 TiB */
	uint32_t max_readers;      /* concurrent psf_store_read calls; 0 = 126 */
} psf_store_opts;

/* psf_store_opts_from_cfg fills *out from the fleet config's durability section
 * (cfg may be NULL: defaults). Cannot fail. */
void psf_store_opts_from_cfg(const psf_durability_cfg *cfg, psf_store_opts *out);

/* psf_store_open opens (creating when missing) the store in directory dir,
 * creating dir and its parents too. Stale reader slots left by dead processes
 * are cleared. On success *out gets a new store the caller closes with
 * psf_store_close.
 * The directory is locked for as long as the store is open (an exclusive flock
 * on dir/psfleet.lock, which records the holder's pid; the kernel drops it when
 * the holder ends, however it ends): a second open, from any process or this
 * one, fails with PSF_ELOCKED and a log line naming the holder's pid.
 * Returns PSF_OK, PSF_EINVAL (bad opts or dir), PSF_ENOMEM, PSF_ENOENT,
 * PSF_ELOCKED (another open store holds dir; logged), PSF_ESYS (directory,
 * lock file or thread creation), PSF_ESTORE (LMDB refused the environment,
 * e.g. a corrupt file; logged). */
PSF_NODISCARD psf_err psf_store_open(const char *dir, const psf_store_opts *opts, psf_store **out);

/* psf_store_close stops the sync thread, makes a final durable point in every
 * durability mode, and frees the store. Errors are logged. NULL is fine.
 * No other call on st may be running or follow. */
void psf_store_close(psf_store *st);

/* psf_store_update_fn is the caller's write logic. It runs inside one write
 * transaction and returns PSF_OK to commit; any other code aborts (nothing it
 * wrote is kept) and is returned by psf_store_update.
 * It must be re-runnable: when LMDB's map fills up, the store aborts, grows the
 * map and calls it again from scratch, so it must not have side effects outside
 * the transaction (or must undo them) until psf_store_update returns PSF_OK. */
typedef psf_err (*psf_store_update_fn)(psf_store_txn *txn, void *arg);

/* psf_store_update runs fn(txn, arg) inside a write transaction and commits it
 * when fn returns PSF_OK. If any write inside fn hit the map limit, the attempt
 * is aborted whatever fn returned, the map is doubled (waiting for readers to
 * leave) and fn runs again; this repeats until it fits or max_map_size is
 * reached. Writers are serialized: this blocks while another update runs.
 * Returns PSF_OK once committed (durable as the durability mode says), fn's own
 * error, PSF_ENOSPC (max_map_size reached, or disk full), PSF_ESTORE (logged),
 * or PSF_EINVAL for NULL arguments. */
PSF_NODISCARD psf_err psf_store_update(psf_store *st, psf_store_update_fn fn, void *arg);

/* psf_store_read_fn is the caller's read logic: it copies what it needs out of
 * the store. Its return code is returned by psf_store_read. */
typedef psf_err (*psf_store_read_fn)(psf_store_txn *txn, void *arg);

/* psf_store_read runs fn(txn, arg) inside a read-only transaction that sees the
 * last committed state as one consistent snapshot. Keep fn short: an open reader
 * pins old pages, and map growth waits for every reader to finish. Large reads
 * (snapshots) go in pieces with psf_store_txn_walk, one psf_store_read each.
 * Read transactions are cached and reused (reset/renew), so this is cheap.
 * Returns fn's code, PSF_EINVAL for NULL arguments, PSF_EBUSY when every
 * reader slot is taken (max_readers), or PSF_ESTORE (logged). */
PSF_NODISCARD psf_err psf_store_read(psf_store *st, psf_store_read_fn fn, void *arg);

/* psf_store_sync makes a durable point now: every commit so far is on disk
 * when it returns PSF_OK. Otherwise PSF_ESTORE or PSF_ESYS (logged). */
PSF_NODISCARD psf_err psf_store_sync(psf_store *st);

/* ---- online backup (store_backup.c) ------------------------------------------ */

/* psf_store_pin_fn decides, on a read txn that sees one committed state, whether
 * that state is the one to back up (e.g. "meta version == V"). It runs with the
 * store's writers held off, so it must be quick; it may use the psf_store_txn_*
 * read calls only. */
typedef bool (*psf_store_pin_fn)(psf_store_txn *txn, void *arg);

typedef struct psf_store_backup_info {
	uint64_t entries;    /* key/value pairs copied, all databases */
	uint64_t bytes;      /* size of the copy's data.mdb */
	double wait_seconds; /* from the call until the wanted state was committed */
	double copy_seconds; /* copying it (writers are not held off meanwhile) */
} psf_store_backup_info;

/* psf_store_backup writes a consistent copy of the store into directory dir (a
 * new LMDB environment holding exactly one committed state: every database,
 * meta and pushlog included, compacted), while updates go on.
 *
 * Which state: the current one when pin is NULL or pin(current) is true;
 * otherwise the first state committed after this call for which pin returns
 * true, waiting up to timeout_ms for it (pin runs after every commit). The state
 * is held by a read transaction taken inside the commit path, so no other
 * commit can slip in between; writers are held off only for pin itself. While
 * the copy runs, the old pages it reads stay pinned (the file may grow) and a
 * map grow waits for it to end.
 *
 * dir must not exist yet (PSF_EEXIST); its parent is created. The copy is
 * written to "<dir>.partial", synced, then renamed, so dir exists only complete.
 * One backup at a time per store (PSF_EBUSY). psf_store_backup_cancel ends a
 * wait early (PSF_ECLOSED). Returns PSF_OK (info filled when not NULL),
 * PSF_ETIMEDOUT (pin never held), PSF_EINVAL, PSF_EEXIST, PSF_EBUSY,
 * PSF_ECLOSED, PSF_ENOSPC, PSF_ESYS or PSF_ESTORE (logged). */
PSF_NODISCARD psf_err psf_store_backup(psf_store *st, const char *dir, psf_store_pin_fn pin,
    void *arg, uint32_t timeout_ms, psf_store_backup_info *info);

/* psf_store_backup_cancel makes a psf_store_backup that is waiting for its state
 * return PSF_ECLOSED (e.g. at shutdown), and every later one too. A copy already
 * running finishes. Thread-safe; cannot fail. */
void psf_store_backup_cancel(psf_store *st);

/* ---- replication (store_repl.c) -----------------------------------------------
 *
 * The store half of ps replication (docs/architecture.md, issue 15): a primary
 * captures every committed update as a writeset, a backup applies writesets in
 * order, and a joining node installs a streamed consistent copy and then the
 * writesets that followed it.
 *
 * Sequence numbers. Meta "repl_seq" (a u64 counter, absent = 0) counts the
 * writesets a store has committed (capture on) or applied. Meta names starting
 * with "repl_" are reserved for this file and the ps replication code: an
 * update must not write "repl_seq" or "repl_install" itself.
 *
 * Writeset format (also the copy pieces'; version 1, all integers big-endian):
 *   "PSW1"                          4-byte magic
 *   n_ops:u32                       how many ops follow (a cut buffer is malformed)
 *   then n_ops ops filling the rest of the buffer, each one of
 *   'P' db klen:u16 key vlen:u32 value   put (replace any value)
 *   'D' db klen:u16 key                  delete (absent is fine)
 *   'C' db                               clear database db (0..2 only)
 *   'A' 0                                clear every database (clear_all)
 *   db: 0..2 = psf_store_db, 3 = meta, 4 = pushlog. Keys of 0..2 are 8 bytes
 *   (the big-endian uint64); meta names and worker ids are 1..400 bytes with no
 *   NUL; a pushlog value is 8 bytes.
 * A writeset lists the txn's writes in the order they were made, each carrying
 * the value its key has at commit; replayed in order on a store in the state
 * the primary had before the txn, it gives the primary's state after it (see
 * the argument in store_repl.c). */

/* psf_store_capture_fn receives one committed writeset: seq is its repl_seq,
 * bytes/len the writeset (valid during the call only). It runs after the commit,
 * in commit order, with the store's writer lock held: no other update commits
 * until it returns, so it may block (e.g. until every backup has acked). It must
 * not call psf_store_update, psf_store_apply_wset, psf_store_set_capture or the
 * install calls on the same store (deadlock); psf_store_read is fine. Its return
 * code is what psf_store_update returns (the txn is committed locally either
 * way): return non-OK (e.g. PSF_EUNAVAIL) when the write could not be
 * replicated and must not be acknowledged. */
typedef psf_err (*psf_store_capture_fn)(uint64_t seq, const void *bytes, size_t len, void *arg);

/* psf_store_set_capture turns writeset capture on (fn != NULL) or off (NULL).
 * While on, every committing psf_store_update also increments meta "repl_seq"
 * in the same txn, records which keys it wrote, and just before the commit
 * serialises them with their final values into one buffer (owned and reused by
 * the store), then calls fn after the commit. While off nothing is recorded
 * (one NULL test per write) and repl_seq stays put. Thread-safe: it waits for
 * a running update to finish, so the switch happens between two commits.
 * psf_store_apply_wset and the install calls never capture (the applied
 * writeset is not handed to fn again, and repl_seq is set, not incremented). */
void psf_store_set_capture(psf_store *st, psf_store_capture_fn fn, void *arg);

/* psf_store_repl_seq writes the store's repl_seq (0 if never set) to *seq_out.
 * Returns PSF_OK, PSF_ESTATE (*seq_out = 0) while an install is incomplete
 * (begun, not ended; also after a crash during one: the content is partial and
 * must be installed again), PSF_EINVAL, or store errors as psf_store_read. */
PSF_NODISCARD psf_err psf_store_repl_seq(psf_store *st, uint64_t *seq_out);

/* psf_store_apply_wset applies one captured writeset in one update txn (the
 * store's durability mode: durable as psf_store_update says when it returns),
 * when the store's repl_seq is seq - 1, and sets repl_seq to seq.
 * Returns PSF_OK; PSF_ESTATE, store untouched, when repl_seq != seq - 1 or an
 * install is incomplete (read psf_store_repl_seq to resync); PSF_EPROTO, store
 * untouched, when bytes is not a well-formed writeset (checked in full before
 * anything is written) or seq is 0; PSF_EINVAL for NULL arguments; otherwise
 * psf_store_update's errors. Not captured (see psf_store_set_capture). */
PSF_NODISCARD psf_err psf_store_apply_wset(psf_store *st, uint64_t seq, const void *bytes,
    size_t len);

/* psf_store_piece_fn receives one piece of a streamed copy: seq is the copy's
 * repl_seq X (the same in every piece), bytes/len a writeset-format buffer of
 * puts (valid during the call only). It runs on the calling thread with no
 * store lock held, so it may block (network send). Non-OK stops the stream and
 * is returned by psf_store_copy_stream. */
typedef psf_err (*psf_store_piece_fn)(uint64_t seq, const void *bytes, size_t len, void *arg);

typedef struct psf_store_copy_info {
	uint64_t seq;     /* repl_seq X of the copied state */
	uint64_t entries; /* entries in all pieces, every database (give to _install_end) */
	uint64_t bytes;   /* total piece bytes */
	uint64_t pieces;  /* calls of fn (>= 1) */
} psf_store_copy_info;

/* psf_store_copy_stream delivers a consistent copy of the store, one committed
 * state at repl_seq X, as a sequence of pieces of at most max_piece_bytes (0 =
 * 1 MiB; a single entry larger than that goes alone in a bigger piece; at
 * least one piece, maybe empty, so the receiver always learns X), while
 * updates go on. Writesets with seq > X are exactly the ones to send after it.
 *
 * How: the state is pinned with a read txn taken in the commit path (the code
 * psf_store_backup uses, so one copy or backup at a time: PSF_EBUSY), then
 * every database is walked in that one read txn and serialised as puts. A walk
 * rather than LMDB's compacting copy (mdb_env_copyfd2 into a pipe): the pieces
 * are then self-describing entries that the receiver can apply into its OPEN
 * environment (no second file, no env reopen under a running ps, no giant
 * txn), the same parser checks them as writesets, and the copy is compact
 * anyway (only live entries travel). While it runs, writers are not held off,
 * but a map grow waits for it (as for a backup).
 * Returns PSF_OK (*info filled when not NULL), fn's error, PSF_ESTATE (this
 * store's own install is incomplete), PSF_EBUSY, PSF_ECLOSED
 * (psf_store_backup_cancel), PSF_EINVAL, PSF_ENOMEM or PSF_ESTORE. */
PSF_NODISCARD psf_err psf_store_copy_stream(psf_store *st, size_t max_piece_bytes,
    psf_store_piece_fn fn, void *arg, psf_store_copy_info *info);

/* The receiving side of a copy, on an OPEN store (the ps keeps its directory
 * lock). psf_store_install_begin empties the store (every database) and sets
 * the marker meta "repl_install", in one txn; each psf_store_install_piece
 * applies one piece in its own txn and counts its entries in the marker;
 * psf_store_install_end checks the count and that repl_seq == seq, then drops
 * the marker in one txn. Until then the store is recognisably incomplete:
 * psf_store_repl_seq and psf_store_apply_wset return PSF_ESTATE, also after a
 * crash or a restart (begin again). Content replacement is therefore durable
 * step by step rather than one txn: a catch-up copy of a large model fits no
 * single txn well, and an incomplete store never looks complete. Readers see
 * the partial content meanwhile: a joining node must not serve until _end.
 * Not captured. After _end, repl_seq == X and writesets X+1.. apply with
 * psf_store_apply_wset.
 * Returns PSF_OK; PSF_ESTATE (_piece/_end without an install begun); PSF_EPROTO
 * (a piece that is not well-formed or holds anything but puts: store untouched;
 * at _end a count or seq mismatch: store left incomplete); PSF_EINVAL; or
 * psf_store_update's errors. */
PSF_NODISCARD psf_err psf_store_install_begin(psf_store *st);
PSF_NODISCARD psf_err psf_store_install_piece(psf_store *st, const void *bytes, size_t len);
PSF_NODISCARD psf_err psf_store_install_end(psf_store *st, uint64_t seq, uint64_t entries);

typedef struct psf_store_info {
	uint64_t file_bytes; /* data.mdb size (under WRITEMAP the file is sparse and as
	                          large as the map; disk_bytes is what it really uses) */
	uint64_t disk_bytes; /* data.mdb blocks allocated on disk */
	uint64_t map_bytes;  /* current map size */
	uint64_t used_bytes; /* pages in use (including free-list pages) * page size */
	uint64_t entries[PSF_STORE_N_DBS];
	uint64_t meta_entries;
	uint64_t pushlog_entries;
	uint64_t commits; /* committed updates since open */
	uint64_t retries; /* update attempts aborted for a map grow since open */
	uint64_t grows;   /* map grows since open */
	uint64_t syncs;   /* durable points made since open (thread, sync, close) */
} psf_store_info;

/* psf_store_stats fills *out with sizes and counters. Returns PSF_OK,
 * PSF_EINVAL, PSF_EBUSY, PSF_ESYS or PSF_ESTORE. */
PSF_NODISCARD psf_err psf_store_stats(psf_store *st, psf_store_info *out);

/* ---- inside a callback ------------------------------------------------------
 * Every psf_store_txn_* call takes the txn handed to the callback and is only
 * valid during that callback. Unless stated otherwise they return PSF_OK,
 * PSF_EINVAL (bad argument, or a write on a read txn), PSF_ENOSPC (map full:
 * return any non-OK code promptly; psf_store_update then grows and re-runs),
 * or PSF_ESTORE (logged).
 *
 * Borrowed pointers (psf_store_txn_get, psf_store_txn_meta_get, walk visitors)
 * point into the database: in a read txn they stay valid until the callback
 * returns; in a write txn only until the next write (put, reserve, delete,
 * clear) in the same txn or the callback's return. Copy a value before writing
 * anything. Never write through them. */

/* psf_store_txn_get finds key in db. On PSF_OK *data_out and *len_out (bytes) get a
 * borrowed pointer (see above; not aligned for float). PSF_ENOENT if missing. */
PSF_NODISCARD psf_err psf_store_txn_get(psf_store_txn *txn, psf_store_db db, uint64_t key,
    const void **data_out, size_t *len_out);

/* psf_store_txn_get_floats copies the value of key, which must hold exactly n
 * floats, into dst. PSF_ENOENT if missing, PSF_ERANGE (dst untouched) if the
 * stored value has another length. */
PSF_NODISCARD psf_err psf_store_txn_get_floats(psf_store_txn *txn, psf_store_db db, uint64_t key,
    float *dst, size_t n);

/* psf_store_txn_put stores len bytes at data under key, replacing any value. */
PSF_NODISCARD psf_err psf_store_txn_put(psf_store_txn *txn, psf_store_db db, uint64_t key,
    const void *data, size_t len);

/* psf_store_txn_put_floats stores n floats under key, replacing any value. */
PSF_NODISCARD psf_err psf_store_txn_put_floats(psf_store_txn *txn, psf_store_db db, uint64_t key,
    const float *src, size_t n);

/* psf_store_txn_put_reserve makes room for a len-byte value under key (replacing
 * any value) and on PSF_OK gives the writable space in *buf_out. The caller must
 * fill all len bytes before its next store call in this txn. Not aligned: write
 * with memcpy. This saves one copy when the value is produced piecewise. */
PSF_NODISCARD psf_err psf_store_txn_put_reserve(psf_store_txn *txn, psf_store_db db, uint64_t key,
    size_t len, void **buf_out);

/* psf_store_txn_rewrite replaces the len-byte value of key with a new one of
 * the same length without copying either: on PSF_OK *old_out points at the
 * current value and *new_out at len reserved bytes that the caller fills,
 * reading *old_out as it goes (e.g. an optimizer writing new weights computed
 * from the old ones), before its next write to the same db in this txn: a
 * write there may move small values within their page. Writes to other dbs
 * leave both pointers valid (every page stays where it is in the map until
 * the commit), so one key may be rewritten in two dbs and both filled in one
 * pass (weights and optimizer state, ps/apply.c). The two are either
 * the same bytes (update in place, element by element) or do not overlap at all:
 * LMDB puts the new value on fresh pages and keeps the old pages untouched until
 * the commit. Not aligned (see the top of this file). PSF_ENOENT (nothing
 * reserved) if key has no value, PSF_ERANGE if its length is not len, and
 * PSF_ESTATE (nothing reserved) unless durability is interval: the other modes
 * keep the pages written in a txn in malloc'd memory, where LMDB may move them
 * during a put (spill), so there the caller copies (get, then put). */
PSF_NODISCARD psf_err psf_store_txn_rewrite(psf_store_txn *txn, psf_store_db db, uint64_t key,
    size_t len, const void **old_out, void **new_out);

/* psf_store_txn_del removes key from db. PSF_ENOENT if it was not there. */
PSF_NODISCARD psf_err psf_store_txn_del(psf_store_txn *txn, psf_store_db db, uint64_t key);

/* psf_store_txn_clear removes every key of db (e.g. the accumulator at the end
 * of a sync round). */
PSF_NODISCARD psf_err psf_store_txn_clear(psf_store_txn *txn, psf_store_db db);

/* psf_store_txn_clear_all removes every key of every database, meta and pushlog
 * included: the store becomes as if new, without giving up its directory lock
 * (psf_store_open) as closing and deleting it would. */
PSF_NODISCARD psf_err psf_store_txn_clear_all(psf_store_txn *txn);

/* psf_store_txn_count writes the number of keys in db to *n_out. */
PSF_NODISCARD psf_err psf_store_txn_count(psf_store_txn *txn, psf_store_db db, uint64_t *n_out);

/* psf_store_visit_fn sees one entry of a walk: data/len is the borrowed value
 * (valid during this call, until the visitor's first write). Returning anything
 * but PSF_OK stops the walk, and psf_store_txn_walk returns that code. */
typedef psf_err (*psf_store_visit_fn)(uint64_t key, const void *data, size_t len, void *arg);

/* Where a walk stopped. */
typedef struct psf_store_walk {
	uint64_t next_key; /* when !done: the first key not visited; start the next piece here */
	bool done;         /* true: no key follows the visited ones */
	size_t n_keys;     /* entries visited */
	size_t n_bytes;    /* their cost: sum of (len + 8) */
} psf_store_walk;

/* psf_store_txn_walk visits the keys of db that are >= start_key in ascending
 * order. Each entry costs its value length plus 8 (the key); the walk stops
 * before the entry that would take the total past max_bytes, but always visits
 * at least one entry, so repeated pieces always progress (max_bytes 0 = no
 * limit). Calling it once per psf_store_read, with start_key = next_key of the
 * previous piece, returns every key exactly once in order. The visitor may
 * write to other databases (write txn), never to db itself.
 * On PSF_OK *out says where it stopped; a visitor's error is returned as is. */
PSF_NODISCARD psf_err psf_store_txn_walk(psf_store_txn *txn, psf_store_db db, uint64_t start_key,
    size_t max_bytes, psf_store_visit_fn visit, void *arg, psf_store_walk *out);

/* Meta: small values under a name (1..400 bytes of text, no NUL needed inside).
 * psf_store_txn_meta_get gives a borrowed pointer like psf_store_txn_get;
 * PSF_ENOENT if the name is not set. */
PSF_NODISCARD psf_err psf_store_txn_meta_get(psf_store_txn *txn, const char *name,
    const void **data_out, size_t *len_out);
PSF_NODISCARD psf_err psf_store_txn_meta_put(psf_store_txn *txn, const char *name, const void *data,
    size_t len);
/* psf_store_txn_meta_del removes name; PSF_ENOENT if it was not set. */
PSF_NODISCARD psf_err psf_store_txn_meta_del(psf_store_txn *txn, const char *name);

/* psf_store_meta_fn sees one meta entry of a prefix walk: name is NUL-terminated
 * and data/len is the borrowed value, both valid during the call. Non-OK stops
 * the walk and is returned. */
typedef psf_err (*psf_store_meta_fn)(const char *name, const void *data, size_t len, void *arg);

/* psf_store_txn_meta_foreach calls fn for every meta name that starts with prefix
 * (1..400 bytes), in byte order of the name, e.g. to reload per-worker records
 * ("report:<worker>") at start-up. fn must not write to meta. PSF_OK when none
 * matches. */
PSF_NODISCARD psf_err psf_store_txn_meta_foreach(psf_store_txn *txn, const char *prefix,
    psf_store_meta_fn fn, void *arg);

/* psf_store_txn_meta_get_u64 reads a counter written by psf_store_txn_meta_put_u64.
 * PSF_ENOENT if not set, PSF_ERANGE if the value there is not 8 bytes. */
PSF_NODISCARD psf_err psf_store_txn_meta_get_u64(psf_store_txn *txn, const char *name,
    uint64_t *out);
PSF_NODISCARD psf_err psf_store_txn_meta_put_u64(psf_store_txn *txn, const char *name,
    uint64_t value);

/* Pushlog: the last applied push seq per worker id (1..400 bytes). Put it in the
 * same update as the push it records, so a retried push is applied exactly once
 * even across a crash. psf_store_txn_pushlog_get returns PSF_ENOENT for a worker
 * never recorded. */
PSF_NODISCARD psf_err psf_store_txn_pushlog_get(psf_store_txn *txn, const char *worker,
    uint64_t *seq_out);
PSF_NODISCARD psf_err psf_store_txn_pushlog_put(psf_store_txn *txn, const char *worker,
    uint64_t seq);

/* psf_store_pushlog_fn sees one pushlog record; worker is NUL-terminated and
 * valid during the call. Non-OK stops the walk and is returned. */
typedef psf_err (*psf_store_pushlog_fn)(const char *worker, uint64_t seq, void *arg);

/* psf_store_txn_pushlog_foreach calls fn for every recorded worker in byte order
 * of the id (e.g. to restore worker state after a restart). */
PSF_NODISCARD psf_err psf_store_txn_pushlog_foreach(psf_store_txn *txn, psf_store_pushlog_fn fn,
    void *arg);

#endif
