/* internal.h -- pieces of the inferer shared by its files (not a public API).
 *
 *   book.c      the symbols this inferer serves: kept history, latest raw
 *               feature rows (each book immutable; Ingest swaps in a new one)
 *   ingest.c    the Ingest handler: new bars, copy-on-write books, the journal
 *   snap.c      model snapshots: fetch from every ps, build, refcount, swap
 *   predict.c   the Inference service handlers
 *   interval.c  split-conformal prediction intervals
 *   inferer.c   lifecycle, refresh thread, Admin service, metrics */
#ifndef PSF_INFERER_INTERNAL_H
#define PSF_INFERER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferer/inferer.h"
#include "lib/base/rhist.h"
#include "lib/config/config.h"
#include "lib/data/data.h"
#include "lib/model/model.h"
#include "lib/net/rpc_client.h"
#include "lib/net/rpc_group.h"
#include "lib/net/rpc_server.h"
#include "lib/runtime/admin.h"
#include "lib/runtime/runtime.h"
#include "psfleet.pb-c.h"

#define INF_WS_POOL 64         /* model workspaces kept for on-demand rows */
#define INF_MAX_RECENT 100000u /* recent bars accepted in one request */
#define INF_MAX_BATCH 1000000u /* items in one PredictBatch */
#define INF_FETCH_TRIES 5      /* sync/ssp: whole fetches before giving up */

/* One symbol served by this inferer. */
typedef struct inf_symbol {
	char name[PSF_SYMBOL_MAX + 1];
	uint64_t row;        /* psf_symbol_row */
	psf_series hist;     /* the last history_days rows; arrays owned by the book */
	psf_err latest_err;  /* PSF_OK, or why there is no latest feature row */
	int32_t latest_date; /* date of the latest row */
	double latest_close;
	char latest_day[11]; /* latest_date as YYYY-MM-DD */
} inf_symbol;

/* inf_book: what the inferer knows about its symbols. Immutable once built, so
 * any thread reads it without locking; Ingest builds a new book (copy on write)
 * and swaps it in. Refcounted: the inferer holds one reference to its current
 * book, every snapshot one to the book its predictions were computed from, so
 * a request sees a book and a prediction table that agree. */
typedef struct inf_book {
	atomic_int refs;
	size_t n; /* symbols served, sorted by name */
	inf_symbol *syms;
	float *x_latest; /* n * window * n_features: each symbol's latest input (its
	                  * last `window` feature rows), not standardised */
	size_t n_features;
	size_t window;   /* days of one model input (psf_model_window) */
	uint32_t *slots; /* open addressing: symbol index + 1, 0 = empty */
	size_t mask;     /* slots has mask + 1 entries (a power of two) */
	size_t need;     /* earlier rows the features need */
	void *storage;   /* one block behind every hist array */
} inf_book;

/* inf_book_load reads the rows of cfg's data that belong to the symbols of
 * `shard` (of n_shards), and nothing else: the standardisation statistics come
 * from the ps with every snapshot (inf_snap.stats).
 * Errors are logged once. On success *out gets a book for inf_book_free. */
PSF_NODISCARD psf_err inf_book_load(const psf_config *cfg, uint32_t shard, uint32_t n_shards,
    inf_book **out);

/* inf_book_put drops a reference (NULL is fine); the last one frees. */
void inf_book_put(inf_book *b);

/* inf_book_current returns the inferer's current book with a reference. */
inf_book *inf_book_current(psf_inferer *inf);

/* inf_book_n returns how many symbols the current book has. */
size_t inf_book_n(psf_inferer *inf);

/* inf_book_keep_rows copies the last `keep` rows of src into sym->hist, carving
 * the arrays from *dbl (5 * keep doubles) and *day (keep dates). */
void inf_book_keep_rows(inf_symbol *sym, const psf_series *src, size_t keep, double **dbl,
    int32_t **day);

/* inf_book_latest_row computes symbol i's raw feature row at the last date of
 * `full` (its whole series as known). */
void inf_book_latest_row(const psf_config *cfg, inf_book *b, size_t i, const psf_series *full);

/* inf_book_find returns the index of symbol (len bytes), or SIZE_MAX. */
size_t inf_book_find(const inf_book *b, const char *symbol, size_t len);

/* The fleet's test metrics, summed from the trainers' latest reports in ps0's
 * Stats. Reports arrive after the weights they evaluate, so they are read again
 * every INF_METRICS_MS as well as with every new model. */
typedef struct inf_metrics {
	bool has;
	double test_rmse, test_mae, naive_rmse;
	uint64_t fetched_ms;
	/* the trainers' held-out residuals summed (MetricsReport.residual_hist),
	 * n_resid of them; the split-conformal intervals come from it (interval.c) */
	uint64_t resid[PSF_RHIST_BINS];
	uint64_t n_resid;
} inf_metrics;

#define INF_METRICS_MS 5000

/* inf_snap: one model version, immutable once published. Readers hold a
 * reference (inf_snap_get / inf_snap_put); the last put frees it. */
typedef struct inf_snap {
	atomic_int refs;
	uint64_t version;         /* sync/ssp: the common version; async: the smallest */
	uint64_t *shard_versions; /* per ps node, config order */
	size_t n_shards;
	uint64_t trained_steps; /* largest over shards */
	psf_params *params;
	size_t n_keys;
	double *stats;     /* the trainers' statistics (ps0's Snapshot feature_stats),
	                            * psf_features_stats_len(n_features) doubles */
	inf_book *book;    /* the book pred was computed from (a reference) */
	double *pred;      /* book symbol i's prediction at its latest row */
	psf_err *pred_err; /* PSF_OK or why pred[i] is missing */
	uint64_t built_ms; /* psf_now_ms at publication */
	/* A snapshot derived by Ingest (same weights, a new book) borrows stats and
	 * shard_versions from base (the fetched snapshot), and params from
	 * params_from unless it owns a copy (NULL). Both are references. */
	struct inf_snap *base, *params_from;
} inf_snap;

/* One sample of an ingested bar for fine-tuning (finetune_out.c). */
typedef struct inf_ft_sample {
	char symbol[PSF_SYMBOL_MAX + 1];
	char date[11]; /* the bar's date */
	double y;      /* the target it makes, in its own units */
	size_t n_x;
	float x[]; /* the day before's model input, raw */
} inf_ft_sample;

/* The samples not yet acknowledged by ps0. mu guards v, n, cap and stop. */
typedef struct inf_ftq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	inf_ft_sample **v;
	size_t n, cap;
	bool stop, started;
	pthread_t thread;
} inf_ftq;

struct psf_inferer {
	const psf_config *cfg;
	const psf_node_cfg *node;
	psf_runtime *rt;
	psf_model *model;
	inf_book *book; /* the current book: swapped by Ingest under refresh_mu and
	                   snap_mu, read under snap_mu (inf_book_current) */
	int journal_fd; /* ingest journal (ingest.c), -1 when none is open */
	char journal_path[512];
	psf_counter *c_ingested;
	psf_rpc_server *srv;
	Psfleet__V1__Inference_Service svc;
	psf_admin *admin;
	char url[256];
	char token[256];
	size_t n_ps;        /* ps shards */
	psf_rpc_group **ps; /* per shard: its replicas (lib/net/rpc_group.h) */
	uint32_t refresh_ms;

	/* snap_mu guards cur (the pointer; snapshots themselves are immutable),
	 * last_error and metrics (which only refreshes write, under refresh_mu too).
	 * Held only to copy a pointer or a few bytes. */
	pthread_mutex_t snap_mu;
	inf_snap *cur;
	char last_error[256];
	inf_metrics metrics;

	/* refresh_mu serialises refreshes (the fetch runs under it, never under snap_mu)
	 * and guards told_no_stats (the wait for statistics was logged). */
	pthread_mutex_t refresh_mu;
	bool told_no_stats;
	bool waiting_stats; /* the last fetch found no statistics yet (refresh_mu) */

	/* ws_mu guards the pool of model workspaces for on-demand rows. */
	pthread_mutex_t ws_mu;
	psf_model_ws *ws_pool[INF_WS_POOL];
	size_t n_ws;

	/* stop_mu guards stopping; stop_cv wakes the refresh thread. */
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cv;
	bool stopping;
	pthread_t thread;
	bool thread_started;

	inf_ftq ftq; /* samples for fine-tuning on their way to ps0 */
	psf_gauge *g_version, *g_symbols, *g_age, *g_ft_pending;
	psf_counter *c_ft_sent;
	psf_counter *c_swaps, *c_refresh_errors, *c_predictions;
};

/* snap.c ------------------------------------------------------------------- */

/* inf_snap_get returns the current snapshot with a reference, or NULL. */
inf_snap *inf_snap_get(psf_inferer *inf);

/* inf_snap_put drops a reference (NULL is fine); the last one frees. */
void inf_snap_put(inf_snap *s);

/* inf_snap_publish makes s current (taking the caller's reference) and drops
 * the inferer's reference to the previous one. */
void inf_snap_publish(psf_inferer *inf, inf_snap *s);

/* inf_snap_derive builds a snapshot with from's weights and version over a new
 * book (for Ingest): predictions recomputed, per-symbol tensors of symbols new
 * to the weights at their initial values. *out gets one reference. */
PSF_NODISCARD psf_err inf_snap_derive(psf_inferer *inf, inf_snap *from, inf_book *book,
    inf_snap **out);

/* inf_snap_fetch pulls a full snapshot from every ps and builds it. *out gets a
 * snapshot with one reference. See psf_inferer_refresh for the errors. */
PSF_NODISCARD psf_err inf_snap_fetch(psf_inferer *inf, inf_snap **out);

/* inf_fetch_metrics reads the fleet's test metrics from ps0 into inf->metrics
 * (best effort: a failure keeps the previous ones). */
void inf_fetch_metrics(psf_inferer *inf);

/* inf_ps_versions asks every ps for its model version (Admin/Health). */
PSF_NODISCARD psf_err inf_ps_versions(psf_inferer *inf, uint64_t *versions);

/* predict.c ---------------------------------------------------------------- */

/* inf_predict_init fills inf->svc with the Inference handlers. */
void inf_predict_init(psf_inferer *inf);

/* inf_predict_row computes the prediction (target units) of one model input x
 * (window feature rows of n_features floats, as psf_features_window gives them)
 * of symbol row `row` with snapshot s: x is standardised in place with
 * s->stats, then goes through the model. Cannot fail but for the model's own errors (PSF_ENOENT: a key is absent). */
PSF_NODISCARD psf_err inf_predict_row(psf_inferer *inf, psf_model_ws *ws, const inf_snap *s,
    float *x, uint64_t row, double *out);

/* ingest.c ---------------------------------------------------------------- */

/* inf_journal_open replays this inferer's ingest journal
 * (<run_dir>/ingest/<id>.csv) into its book and opens it for appending.
 * Errors (an unreadable or unwritable journal) are logged. */
PSF_NODISCARD psf_err inf_journal_open(psf_inferer *inf);

/* inf_journal_close closes the journal. */
void inf_journal_close(psf_inferer *inf);

/* The Ingest handler (the service's INIT macro pastes the prefix). */
void psf_inf_rpc_ingest(Psfleet__V1__Inference_Service *svc, const Psfleet__V1__IngestRequest *in,
    Psfleet__V1__IngestReply_Closure done, void *call);

/* finetune_out.c --------------------------------------------------------- */

/* inf_ft_queue queues samples v[0..n) (malloc'd; the queue takes them on
 * PSF_OK) for ps0. PSF_ENOMEM leaves them to the caller. */
PSF_NODISCARD psf_err inf_ft_queue(psf_inferer *inf, inf_ft_sample **v, size_t n);

/* inf_ft_start starts the thread that sends the queue to ps0 (only when
 * training.finetune.steps > 0). inf_ft_stop stops it and frees the queue. */
PSF_NODISCARD psf_err inf_ft_start(psf_inferer *inf);
void inf_ft_stop(psf_inferer *inf);

/* interval.c --------------------------------------------------------------- */

/* inf_interval_check refuses a coverage outside (0, 1) (0 = no interval is
 * fine) with INVALID_ARGUMENT and a reason in msg. */
psf_status inf_interval_check(double coverage, char *msg, size_t len);

/* inf_interval computes the split-conformal interval of `prediction` at
 * `coverage` in (0, 1) from the fleet's held-out residuals (inf->metrics): the
 * residual quantile q, times last_close when residuals are relative
 * (psf_config_interval_by_price). *n gets the residuals behind it. Errors
 * (FAILED_PRECONDITION: no residuals yet, too few for the coverage, a
 * next_direction model) come with a reason in msg. */
psf_status inf_interval(psf_inferer *inf, double coverage, double prediction, double last_close,
    double *lower, double *upper, uint64_t *n, char *msg, size_t len);

/* inf_ws_take / inf_ws_give borrow a workspace from the pool (NULL: no memory). */
psf_model_ws *inf_ws_take(psf_inferer *inf);
void inf_ws_give(psf_inferer *inf, psf_model_ws *ws);

#endif
