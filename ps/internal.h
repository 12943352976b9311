/* internal.h -- state shared by the parameter server's files (not a public API).
 *
 *   server.c       lifecycle: store, model, shard, init/fingerprint, timer thread
 *   consistency.c  worker table, sync rounds, SSP gate, parked calls, stragglers
 *   apply.c        gradient application (async push, sync round close)
 *   snapshot.c     published snapshots for inferers
 *   handlers_ps.c  the ParameterServer service (all but Reduce and Report)
 *   handlers_reduce.c  its Reduce RPC and the reduce records in the store
 *   handlers_report.c  its Report RPC and the report records in the store
 *   push_raw.c     zero-copy Push: PushRequest read in place from the message
 *   push_pull.c    PushPull: a Push and the next step's Pull in one round trip
 *   handlers_admin.c its part of the Admin service (lib/runtime/admin.h)
 *   backup.c       the Backup RPC: an online copy of the store at one version
 *   repl.c, repl_vote.c, repl_join.c, repl_status.c  replicated shards
 *                  (replication > 1; ps/repl_internal.h) */
#ifndef PSF_PS_INTERNAL_H
#define PSF_PS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/base/rhist.h"
#include "lib/config/config.h"
#include "lib/model/model.h"
#include "lib/net/rpc_server.h"
#include "lib/runtime/admin.h"
#include "lib/runtime/metrics.h"
#include "lib/runtime/runtime.h"
#include "ps/ps.h"
#include "ps/store.h"
#include "psfleet.pb-c.h"

/* The worker table's size is the fleet's limit on trainers, which the config
 * checks at load time (lib/config/config.h); its index + 1 must fit the accumulator
 * key's top byte. */
#define PS_MAX_WORKERS PSF_MAX_TRAINERS
_Static_assert(PS_MAX_WORKERS >= 1 && PS_MAX_WORKERS <= 255,
    "a worker index + 1 must fit the accumulator key's top byte");
#define PS_SNAP_RING 4
#define PS_DEFAULT_SNAP_PIECE ((size_t)4 << 20)
#define PS_REPORT_MAX_BYTES 16384 /* a packed MetricsReport, unknown fields included */
#define PS_STORE_RETRY_MS 500     /* a sync round that failed to close is retried this often */
#define PS_STORE_LOG_MS 30000     /* ... and its failure logged at most this often */

/* Accumulator keys put the worker index (+1) in the top byte of the parameter key,
 * so a walk visits worker 0's gradients first: sums have a fixed order. */
#define PS_ACCUM_KEY(widx, key) ((((uint64_t)(widx) + 1) << 56) | (key))
#define PS_ACCUM_PARAM(akey) ((akey) & ((UINT64_C(1) << 56) - 1))

typedef struct ps_worker {
	char id[128];
	uint32_t index;
	bool expected;   /* named in the config's trainers */
	bool registered; /* called RegisterWorker since this ps started */
	bool live;       /* counted in sync rounds and the SSP gate */
	bool done;       /* finished training */
	int64_t clock;   /* steps pushed */
	uint64_t last_seq;
	uint64_t last_seen_ms;
	uint64_t pushes;
	uint64_t pulled_version;
	uint64_t total_steps; /* announced by the worker (Clock.total_steps); 0 = not yet */
	bool has_report;
	Psfleet__V1__MetricsReport report;     /* worker string points at id, residual_hist
	                                    * at report_resid */
	uint64_t report_resid[PSF_RHIST_BINS]; /* the report's held-out residual counts */
} ps_worker;

/* PARK_PUSH_PULL: the pull half of a PushPull whose push was applied; it is
 * ready when a Pull of the same clock would be, and answered with both halves
 * (push_pull.c). */
typedef enum park_kind { PARK_PULL, PARK_REDUCE, PARK_PUSH_PULL } park_kind;

typedef struct parked {
	struct parked *next;
	park_kind kind;
	void *call;
	void *done;      /* the generated closure, cast back by the kind's code */
	const void *req; /* the handler's input; valid until answered */
	ps_worker *w;
	int64_t clock;
	uint64_t deadline_ns;
	struct reduce_entry *reduce;
	/* PARK_PUSH_PULL: the push half's reply, and what frees it and req once the
	 * call was answered (NULL for the other kinds). */
	const Psfleet__V1__PushReply *push_reply;
	void (*release)(struct parked *p);
} parked;

typedef struct reduce_entry {
	struct reduce_entry *next;
	char name[128];
	uint32_t expected;
	size_t n_values;
	double *sums;    /* valid once complete */
	double *contrib; /* expected x n_values: each contributor's values */
	char (*contributors)[128];
	uint32_t n_contrib;
	bool complete;
} reduce_entry;

typedef struct ps_snapshot {
	uint64_t version;
	uint64_t trained_steps;
	size_t n_keys;
	uint64_t *keys;
	uint32_t *lens;
	size_t *offs; /* float offset of each key's values */
	float *values;
	int refs; /* guarded by psf_ps.mu */
} ps_snapshot;

struct psf_ps {
	const psf_config *cfg;
	const psf_node_cfg *node;
	psf_runtime *rt;
	psf_model *model;
	psf_store *store;
	psf_rpc_server *srv;
	char url[256];
	char token[256];
	uint64_t *ps_seeds;
	size_t n_ps;
	size_t shard;
	size_t state_floats;
	Psfleet__V1__ParameterServer_Service svc;
	psf_admin *admin;
	struct ps_repl *repl; /* replication state; NULL when replication is 1 */
	bool restored;        /* started from a `psfleet backup` copy (--restore) */

	/* report_mu serializes Report calls (store write, then the report in
	 * workers[]). Taken before mu, never while holding it. */
	pthread_mutex_t report_mu;
	/* ft_mu serializes AppendSamples and FineTune (handlers_finetune.c): each
	 * store write and its sync. */
	pthread_mutex_t ft_mu;

	/* mu guards everything below. Never held across an RPC reply of a
	 * parked call that reads the store (those are served outside it). */
	pthread_mutex_t mu;
	ps_worker *workers;
	size_t n_workers;
	uint64_t version; /* sync: rounds closed; else pushes applied */
	uint64_t step;    /* optimizer updates applied */
	int64_t round;    /* sync: the open round (== rounds closed) */
	uint64_t round_open_ms;
	parked *parked;
	reduce_entry *reduces;
	ps_snapshot *snaps[PS_SNAP_RING];
	uint64_t snap_wanted_ms;
	uint64_t n_applied, n_duplicate, n_rejected, n_nonfinite, n_dropped;
	/* A sync round that cannot be written (a full disk): store_err != PSF_OK
	 * while it lasts, the node is not ready, and ps_close_round retries every
	 * PS_STORE_RETRY_MS (store_retry_ms), logging every PS_STORE_LOG_MS. */
	psf_err store_err;
	uint64_t store_err_since_ms, store_err_log_ms, store_retry_ms, store_err_tries;
	bool stopping;
	/* backup.c: at most one Backup runs, on backup_thread; backup_done when it
	 * has answered (joined by the next Backup or ps_backup_stop). */
	bool backup_running, backup_done;
	pthread_t backup_thread;
	pthread_t timer;
	bool timer_started;
	/* The optimizer settings in force: the config's, with a cosine schedule's
	 * horizon derived from the workers' announced step counts when the config
	 * leaves total_steps at 0. */
	psf_optim_cfg optim;

	/* metrics */
	psf_gauge *g_version;
	psf_counter *c_applied, *c_duplicate, *c_rejected, *c_nonfinite, *c_dropped;
	psf_counter *c_ft_samples; /* fine-tuning samples stored */
	psf_hist *h_staleness;
};

/* repl*.c: replicated shards (ps/repl_internal.h) -------------------------------
 * With replication 1 ps->repl is NULL and every call below does nothing (returns
 * PSF_OK / true): an unreplicated ps pays nothing. */

typedef struct ps_repl ps_repl;

/* ps_repl_open sets up replication after the store is open: the state file,
 * the role this node starts in, clients to every other ps node. */
PSF_NODISCARD psf_err ps_repl_open(psf_ps *ps);

/* ps_repl_serve adds the Replication service and the client gate to ps->srv
 * (before it starts). */
PSF_NODISCARD psf_err ps_repl_serve(psf_ps *ps);

/* ps_repl_start starts the replication thread (heartbeats, elections, joins). */
PSF_NODISCARD psf_err ps_repl_start(psf_ps *ps);

/* ps_repl_stop stops the thread and any catch-up; ps_repl_free (after the RPC
 * server is gone) frees the rest. NULL-safe, as is ps->repl. */
void ps_repl_stop(psf_ps *ps);
void ps_repl_free(psf_ps *ps);

/* ps_repl_may_write tells whether this node may write its store (it is its
 * shard's primary, or replication is off). Takes repl's own lock only. */
bool ps_repl_may_write(psf_ps *ps);

/* ps_repl_publish puts the replication gauges on /metrics (repl thread). */
void ps_repl_publish(psf_ps *ps);

/* ps_repl_status adds the repl_* pairs to an Admin/Status reply. */
PSF_NODISCARD psf_err ps_repl_status(psf_ps *ps, psf_admin_status *st);

/* ps_reload rebuilds the in-memory state (version, round, workers -- all
 * unregistered --, reduces, reports) from the store, as a restarted ps does:
 * a backup promoted to primary calls it. Takes mu. */
PSF_NODISCARD psf_err ps_reload(psf_ps *ps);

/* restore.c ------------------------------------------------------------------ */

/* ps_restore copies <backup_dir>/<id>/data.mdb into data_dir, which must hold no
 * store yet, and records where it came from; when data_dir holds a store restored
 * from that very backup before, it does nothing (a restarted node resumes).
 * Returns PSF_OK, PSF_ECONFIG (no such backup, or data_dir holds another store;
 * logged), PSF_ENOSPC, PSF_ESYS (logged). */
PSF_NODISCARD psf_err ps_restore(const char *data_dir, const char *backup_dir, const char *id);

/* backup.c ------------------------------------------------------------------- */

/* psf_ps_rpc_backup is the Backup RPC: parks the call and copies the store on a
 * thread of its own (ps/store.h psf_store_backup), replying when done. */
void psf_ps_rpc_backup(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__BackupRequest *in, Psfleet__V1__BackupReply_Closure done, void *call);

/* ps_backup_stop cancels a backup waiting for its version and joins the backup
 * thread, so its call is answered before the RPC server goes. Caller must NOT
 * hold mu. */
void ps_backup_stop(psf_ps *ps);

/* consistency.c -------------------------------------------------------------- */

/* ps_worker_find returns the worker with this id or NULL. Caller holds mu. */
ps_worker *ps_worker_find(psf_ps *ps, const char *id);

/* ps_lock_worker takes mu and returns the worker with this id, its lease renewed
 * (last_seen_ms = now), with mu held. When no such worker has called
 * RegisterWorker since this ps started, it fails call with FAILED_PRECONDITION,
 * releases mu and returns NULL; the caller then answers done(NULL, call).
 * Caller must NOT hold mu. */
PSF_NODISCARD ps_worker *ps_lock_worker(psf_ps *ps, const char *id, void *call);

/* ps_worker_add adds (or finds) a worker; index is taken from the config for
 * expected workers, else the next free one. Caller holds mu. */
PSF_NODISCARD psf_err ps_worker_add(psf_ps *ps, const char *id, ps_worker **out);

/* ps_min_clock returns the slowest live, not-done worker's clock (INT64_MAX when
 * there is none). Caller holds mu. */
int64_t ps_min_clock(const psf_ps *ps);

/* ps_pull_may_proceed tells whether a pull for clock c may be answered now.
 * Caller holds mu. */
bool ps_pull_may_proceed(const psf_ps *ps, int64_t clock);

/* ps_round_complete tells whether every live worker pushed for the open round
 * (and at least one did). Caller holds mu. */
bool ps_round_complete(const psf_ps *ps);

/* ps_park queues a copy of *p (freed by ps_answer_parked). PSF_ENOMEM when out
 * of memory: nothing is queued. Caller holds mu. */
PSF_NODISCARD psf_err ps_park(psf_ps *ps, const parked *p);

/* ps_take_ready removes the parked calls that can be answered now (or are past
 * their deadline, or all when stopping) and returns them. Caller holds mu. */
parked *ps_take_ready(psf_ps *ps);

/* ps_answer_parked answers the calls taken by ps_take_ready. Caller must NOT
 * hold mu. */
void ps_answer_parked(psf_ps *ps, parked *list);

/* ps_unlock_and_answer releases mu, then answers the parked calls that became
 * ready meanwhile (ps_take_ready + ps_answer_parked). Caller holds mu. */
void ps_unlock_and_answer(psf_ps *ps);

/* ps_check_timeouts drops stragglers and expired leases. Caller holds mu.
 * Returns true when the open sync round became complete. */
bool ps_check_timeouts(psf_ps *ps, uint64_t now_ms);

/* apply.c -------------------------------------------------------------------- */

typedef struct ps_push {
	const char *worker;
	uint32_t widx;
	uint64_t seq;
	int64_t clock;
	size_t n_keys;
	const uint64_t *keys;
	const uint32_t *lens;
	const uint8_t *values; /* float32 LE, any alignment */
	double scale;          /* clipping factor */
	bool check_finite;     /* check each key's gradient for NaN/Inf as it is applied */
	int64_t clock_step;    /* steps the push covers: the worker's clock becomes clock + this */
} ps_push;

/* ps_apply_push applies a push at once (async/ssp) in one store update, with its
 * pushlog record and the worker's clock. With check_finite, PSF_ERANGE means a
 * gradient holds NaN or Inf and nothing was applied. Caller holds mu. */
PSF_NODISCARD psf_err ps_apply_push(psf_ps *ps, const ps_push *push);

/* ps_accumulate_push records a sync-mode push in the accumulator, with its
 * pushlog record and clock, in one store update; PSF_ERANGE as for
 * ps_apply_push. Caller holds mu. */
PSF_NODISCARD psf_err ps_accumulate_push(psf_ps *ps, const ps_push *push);

/* ps_close_round averages the accumulated gradients of the open round (summed in
 * worker order), applies them, and advances round and version, in one update.
 * A failure is logged and leaves the round open with its accumulator intact; the
 * timer retries it. Caller holds mu. */
void ps_close_round(psf_ps *ps);

/* ps_read_values copies the values of keys into a new float buffer (missing
 * per-symbol keys get their initial values) and reads the model version, in one
 * read transaction. */
PSF_NODISCARD psf_err ps_read_values(psf_ps *ps, const uint64_t *keys, size_t n, float **values_out,
    uint32_t *lens, size_t *n_floats_out, uint64_t *version_out);

/* ps_key_owned tells whether key is a valid key of the model owned by this shard. */
bool ps_key_owned(const psf_ps *ps, uint64_t key);

/* snapshot.c ----------------------------------------------------------------- */

/* ps_snapshot_get returns (with a reference) the snapshot of `version` (0 = the
 * newest state, built now if the newest published one is older). PSF_ENOENT when
 * that version is no longer kept. Caller must NOT hold mu. */
PSF_NODISCARD psf_err ps_snapshot_get(psf_ps *ps, uint64_t version, ps_snapshot **out);

/* ps_snapshot_put drops a reference. Caller must NOT hold mu. */
void ps_snapshot_put(psf_ps *ps, ps_snapshot *s);

/* ps_snapshot_evict_all empties the ring; snapshots in use are freed by their
 * last put (a promoted backup: its store changed under the ring). Caller
 * holds mu. */
void ps_snapshot_evict_all(psf_ps *ps);

/* ps_snapshot_free_all releases the ring (at shutdown). */
void ps_snapshot_free_all(psf_ps *ps);

/* handlers_admin.c ------------------------------------------------------------ */

/* ps_admin_open adds the Admin service, with the ps's part of it, to ps->srv;
 * ps->admin is freed after ps->srv. */
PSF_NODISCARD psf_err ps_admin_open(psf_ps *ps);

/* handlers_ps.c --------------------------------------------------------------- */

/* ps_handlers_init fills ps->svc with the ParameterServer handlers. */
void ps_handlers_init(psf_ps *ps);

/* ps_check_keys validates a key list: sorted, unique, valid and on this shard;
 * false after psf_rpc_fail(call, ...). Caller holds mu. */
bool ps_check_keys(psf_ps *ps, const uint64_t *keys, size_t n, void *call);

/* ps_serve_pull answers a Pull (at once, or parked and now ready) with the
 * values, or fails it: UNAVAILABLE when stopping, DEADLINE_EXCEEDED when the
 * consistency mode still blocks it, or the store's error. Caller must NOT hold
 * mu. */
void ps_serve_pull(psf_ps *ps, parked *p);

/* A Push request as ps_push_handle sees it, read in place from the received
 * message by push_raw.c (ps_push_parse). Pointers are borrowed for the duration
 * of ps_push_handle. */
typedef struct ps_push_in {
	const char *worker; /* NUL-terminated */
	uint64_t seq;
	int64_t clock;
	size_t n_keys, n_lens;
	const uint64_t *keys;
	const uint32_t *lens;
	const uint8_t *values; /* float32 LE gradients, any alignment */
	size_t values_len;     /* bytes */
	uint64_t n_samples;
	double loss;
} ps_push_in;

/* ps_push_handle runs one push: dedup by (worker, seq), validation, apply
 * (async/ssp) or accumulate (sync, closing the round when complete). Returns
 * true with *r filled, or false after psf_rpc_fail(call, ...). Either way the
 * caller then answers the call and passes *ready (parked calls the push made
 * ready) to ps_answer_parked. Takes and releases mu. */
bool ps_push_handle(psf_ps *ps, const ps_push_in *in, void *call, Psfleet__V1__PushReply *r,
    parked **ready);

/* ps_check_keys validates a key list: sorted, unique, the model's and on this
 * shard; else it fails call (INVALID_ARGUMENT / RESOURCE_EXHAUSTED) and returns
 * false. */
bool ps_check_keys(psf_ps *ps, const uint64_t *keys, size_t n, void *call);

/* handlers_assign.c ------------------------------------------------------------ */

void psf_ps_rpc_assign(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__AssignRequest *in, Psfleet__V1__AssignReply_Closure done, void *call);

/* handlers_reduce.c ------------------------------------------------------------ */

void psf_ps_rpc_reduce(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__ReduceRequest *in, Psfleet__V1__ReduceReply_Closure done, void *call);

/* ps_serve_reduce answers a Reduce (at once, or parked and now ready): the sums
 * when it is complete, else DEADLINE_EXCEEDED (UNAVAILABLE when stopping).
 * Caller must NOT hold mu. */
void ps_serve_reduce(psf_ps *ps, parked *p);

/* ps_reduces_restore brings back, at start-up, the completed reduces recorded in
 * the store (meta "reduces" lists the names; "reduce:<name>" holds each result).
 * A damaged record is logged and skipped. Returns PSF_OK or the store's error.
 * Caller holds mu (or is the only thread). */
PSF_NODISCARD psf_err ps_reduces_restore(psf_ps *ps, psf_store_txn *txn);

/* ps_reduce_result copies the sums of the completed reduce `name`: on success
 * *values_out gets a new array of *n_out doubles the caller frees (NULL when the
 * reduce has no values). PSF_ENOENT while the reduce is unknown or incomplete,
 * PSF_ENOMEM. Takes mu. */
PSF_NODISCARD psf_err ps_reduce_result(psf_ps *ps, const char *name, double **values_out,
    size_t *n_out);

/* ps_reduces_free frees every reduce entry (ps->reduces becomes NULL). Caller
 * holds mu (or is the only thread). Cannot fail. */
void ps_reduces_free(psf_ps *ps);

/* handlers_finetune.c ---------------------------------------------------------- */

void psf_ps_rpc_append_samples(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__AppendSamplesRequest *in, Psfleet__V1__AppendSamplesReply_Closure done,
    void *call);
void psf_ps_rpc_fine_tune(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__FineTuneRequest *in, Psfleet__V1__FineTuneReply_Closure done, void *call);

/* handlers_report.c ------------------------------------------------------------ */

void psf_ps_rpc_report(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__MetricsReport *in, Psfleet__V1__MetricsAck_Closure done, void *call);

/* ps_reports_restore brings back, at start-up, each worker's latest
 * MetricsReport recorded in the store (meta "report:<worker>", the packed
 * message), adding the worker to the table if needed; a finished report marks
 * it done. A damaged record, or an id the table cannot hold, is logged and
 * skipped. Returns PSF_OK or the store's error. Caller holds mu (or is the only
 * thread). */
PSF_NODISCARD psf_err ps_reports_restore(psf_ps *ps, psf_store_txn *txn);

/* ---- settings.c: the training settings a store was trained with ---- */

/* PS_META_SETTINGS names the store's meta record holding them. */
#define PS_META_SETTINGS "train_settings"

/* ps_train_settings returns a new string the caller frees: cfg's training
 * settings, one "key=value\n" per line in a fixed order (settings.c says which
 * keys count). NULL when out of memory. */
char *ps_train_settings(const psf_config *cfg);

/* ps_train_settings_diff writes into out (len bytes, always NUL-terminated) the
 * keys whose values differ between two such lists, as "key old -> new" joined by
 * ", " (values cut at 40 bytes; a key one side lacks shows "(none)"), and returns
 * how many differ (0: the same settings). Cannot fail. */
size_t ps_train_settings_diff(const char *stored, const char *want, char *out, size_t len);

/* push_raw.c ------------------------------------------------------------------ */

#define PS_PUSH_INLINE_KEYS 64

/* Storage for a PushRequest read in place: the worker id (NUL-terminated copy)
 * and the decoded keys and lens (inline up to PS_PUSH_INLINE_KEYS, else on the
 * heap). */
typedef struct ps_push_buf {
	char worker[256];
	uint64_t *keys;
	uint32_t *lens;
	uint64_t keys_inline[PS_PUSH_INLINE_KEYS];
	uint32_t lens_inline[PS_PUSH_INLINE_KEYS];
} ps_push_buf;

/* ps_push_parse reads a serialized PushRequest without unpacking it: out->values
 * points into buf, the other pointers into *b, which the caller releases with
 * ps_push_buf_fini (also after a failure). Field semantics follow protobuf-c's
 * unpack (last value of a singular field wins; repeated fields packed or not;
 * unknown fields skipped; a string ends at its first NUL). Returns PSF_OK,
 * PSF_EPROTO for input protobuf-c would refuse (truncation, a known field with
 * the wrong wire type, bad varints or lengths), or PSF_ENOMEM. */
PSF_NODISCARD psf_err ps_push_parse(const uint8_t *buf, size_t len, ps_push_buf *b,
    ps_push_in *out);

/* ps_push_buf_fini frees what ps_push_parse allocated. Cannot fail. */
void ps_push_buf_fini(ps_push_buf *b);

/* ps_push_check_fields compares the PushRequest field numbers ps_push_parse reads
 * with the generated descriptor (psf_wire_check_fields). */
PSF_NODISCARD psf_err ps_push_check_fields(void);

/* psf_ps_rpc_push is the generated service's Push slot: never reached, since
 * push_raw serves the method (push_raw.c). */
void psf_ps_rpc_push(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__PushRequest *in,
    Psfleet__V1__PushReply_Closure done, void *call);

/* ps_handlers_add_raw registers the zero-copy handlers on ps->srv (after
 * psf_rpc_server_new, before psf_rpc_server_start); PSF_EPROTO when the decoder's
 * field numbers differ from the .proto's. */
PSF_NODISCARD psf_err ps_handlers_add_raw(psf_ps *ps);

/* push_pull.c ------------------------------------------------------------------ */

/* ps_push_pull_add_raw registers the PushPull handler on ps->srv (as
 * ps_handlers_add_raw does for Push). */
PSF_NODISCARD psf_err ps_push_pull_add_raw(psf_ps *ps);

/* ps_push_pull_answer answers a PARK_PUSH_PULL call with its push reply and the
 * pull reply r (NULL: the status set by psf_rpc_fail). Cannot fail. */
void ps_push_pull_answer(parked *p, const Psfleet__V1__PullReply *r);

void psf_ps_rpc_push_pull(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__PushPullRequest *in, Psfleet__V1__PushPullReply_Closure done, void *call);

/* ps_meta_worker_key formats "<prefix>:<worker>" into buf. */
void ps_meta_worker_key(char *buf, size_t len, const char *prefix, const char *worker);

#endif
