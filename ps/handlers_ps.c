/* handlers_ps.c -- the ParameterServer service (proto/psfleet.proto): worker
 * registration, Pull, Push (its checks and effects; the request is read in
 * push_raw.c), Clock, Snapshot and Stats. Reduce and Report live in
 * handlers_reduce.c and handlers_report.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "ps/internal.h"
#include "ps/optim.h"

/* The generated service struct's INIT macro pastes this prefix onto each RPC name,
 * so a missing handler is a compile error. Reduce and Report are declared in
 * internal.h, and so is Push's (never reached: push_raw.c serves Push). */
void psf_ps_rpc_register_worker(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__RegisterRequest *in, Psfleet__V1__RegisterReply_Closure done, void *call);
void psf_ps_rpc_pull(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__PullRequest *in,
    Psfleet__V1__PullReply_Closure done, void *call);
void psf_ps_rpc_clock(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__ClockRequest *in, Psfleet__V1__ClockReply_Closure done, void *call);
void psf_ps_rpc_snapshot(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__SnapshotRequest *in, Psfleet__V1__SnapshotReply_Closure done, void *call);
void psf_ps_rpc_stats(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__StatsRequest *in, Psfleet__V1__StatsReply_Closure done, void *call);

static psf_ps *
ps_of(void *call)
{
	return psf_rpc_call_user(call);
}

void
psf_ps_rpc_register_worker(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__RegisterRequest *in, Psfleet__V1__RegisterReply_Closure done, void *call)
{
	psf_ps *ps = ps_of(call);
	Psfleet__V1__RegisterReply r = PSFLEET__V1__REGISTER_REPLY__INIT;
	char fp[32];
	ps_worker *w;
	psf_err err;

	(void)svc;
	pthread_mutex_lock(&ps->mu);
	if ((err = ps_worker_add(ps, in->worker, &w)) != PSF_OK) {
		pthread_mutex_unlock(&ps->mu);
		psf_rpc_fail_err(call, err, "cannot register worker '%s': %s", in->worker,
		    err == PSF_EBUSY ? "too many workers" : "bad worker id");
		done(NULL, call);
		return;
	}
	if (psf_consistency_rounds(ps->cfg->consistency.mode)) {
		/* A worker that missed rounds rejoins at the open round. */
		if (w->clock < ps->round)
			w->clock = ps->round;
	} else if (!w->registered && w->pushes == 0 && w->clock == 0) {
		int64_t min = ps_min_clock(ps);
		if (min != INT64_MAX && min > 0)
			w->clock = min; /* a late joiner must not hold the SSP gate back */
	}
	w->registered = true;
	w->live = true;
	w->done = false;
	w->last_seen_ms = psf_now_ms();
	psf_config_fingerprint(ps->cfg, fp, sizeof(fp));
	r.worker_index = w->index;
	r.clock = w->clock;
	r.model_version = ps->version;
	r.last_seq = w->last_seq;
	r.fingerprint = fp;
	r.shard_index = (uint32_t)ps->shard;
	r.num_shards = (uint32_t)ps->n_ps;
	psf_log_info("ps", "worker %s registered (index %u, clock %lld, last seq %llu)", w->id,
	    w->index, (long long)w->clock, (unsigned long long)w->last_seq);
	done(&r, call);
	ps_unlock_and_answer(ps);
}

bool
ps_check_keys(psf_ps *ps, const uint64_t *keys, size_t n, void *call)
{
	if (n > ps->cfg->limits.max_keys_per_request) {
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "%zu keys exceed the limit of %u",
		    n, ps->cfg->limits.max_keys_per_request);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && keys[i] <= keys[i - 1]) {
			psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
			    "keys must be sorted and unique (key %zu)", i);
			return false;
		}
		if (psf_model_key_len(ps->model, keys[i]) == 0) {
			psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
			    "unknown key %#llx (tensor %u, row %llu)", (unsigned long long)keys[i],
			    psf_key_tensor(keys[i]), (unsigned long long)psf_key_row(keys[i]));
			return false;
		}
		if (!ps_key_owned(ps, keys[i])) {
			psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
			    "key %#llx belongs to another ps shard", (unsigned long long)keys[i]);
			return false;
		}
	}
	return true;
}

/* pull_done answers a parked pull: a Pull with its generated closure, the pull
 * half of a PushPull together with its push half. r NULL: the status set. */
static void
pull_done(parked *p, const Psfleet__V1__PullReply *r)
{
	if (p->kind == PARK_PUSH_PULL)
		ps_push_pull_answer(p, r);
	else
		((Psfleet__V1__PullReply_Closure)p->done)(r, p->call);
}

/* A one-key pull answered inside its read transaction. */
typedef struct pull_one {
	parked *p;
	uint64_t key;
	uint32_t len;
	uint64_t version;
	bool answered;
} pull_one;

/* pull_one_txn packs the reply straight from the stored value into the reply
 * message (one copy) before the transaction ends (STYLE.md §4.3); packing is a
 * memcpy and the send is asynchronous, so the reader stays short. A key not
 * stored yet (a symbol's first touch) is left to the copying path. */
static psf_err
pull_one_txn(psf_store_txn *txn, void *arg)
{
	pull_one *c = arg;
	Psfleet__V1__PullReply r = PSFLEET__V1__PULL_REPLY__INIT;
	const void *data;
	size_t len;
	psf_err err = psf_store_txn_meta_get_u64(txn, "version", &c->version);

	if (err != PSF_OK)
		return err;
	err = psf_store_txn_get(txn, PSF_STORE_WEIGHTS, c->key, &data, &len);
	if (err == PSF_ENOENT)
		return PSF_OK;
	if (err != PSF_OK)
		return err;
	if (len != (size_t)c->len * sizeof(float))
		return PSF_ERANGE;
	r.model_version = c->version;
	r.n_keys = r.n_lens = 1;
	r.keys = &c->key;
	r.lens = &c->len;
	r.values.data = (uint8_t *)data; /* only read by packing */
	r.values.len = len;
	pull_done(c->p, &r);
	c->answered = true;
	return PSF_OK;
}

void
ps_serve_pull(psf_ps *ps, parked *p)
{
	const Psfleet__V1__PullRequest *in = p->req;
	Psfleet__V1__PullReply r = PSFLEET__V1__PULL_REPLY__INIT;
	uint32_t *lens = NULL;
	float *values = NULL;
	size_t n_floats = 0;
	uint64_t version = 0;
	psf_err err;

	if (ps->stopping) {
		psf_rpc_fail(p->call, PSF_STATUS_UNAVAILABLE, "ps is shutting down");
		pull_done(p, NULL);
		return;
	}
	pthread_mutex_lock(&ps->mu);
	bool may = ps_pull_may_proceed(ps, p->clock);
	pthread_mutex_unlock(&ps->mu);
	if (!may) {
		psf_rpc_fail(p->call, PSF_STATUS_DEADLINE_EXCEEDED,
		    "pull for clock %lld still blocked by the consistency mode at the deadline",
		    (long long)p->clock);
		pull_done(p, NULL);
		return;
	}
	if (in->n_keys == 1) {
		pull_one c = {p, in->keys[0], psf_model_key_len(ps->model, in->keys[0]), 0, false};
		err = psf_store_read(ps->store, pull_one_txn, &c);
		if (err == PSF_OK && c.answered) {
			pthread_mutex_lock(&ps->mu);
			if (p->w != NULL)
				p->w->pulled_version = c.version;
			pthread_mutex_unlock(&ps->mu);
			return;
		}
	}
	lens = malloc((in->n_keys > 0 ? in->n_keys : 1) * sizeof(*lens));
	err = lens != NULL
	    ? ps_read_values(ps, in->keys, in->n_keys, &values, lens, &n_floats, &version)
	    : PSF_ENOMEM;
	if (err != PSF_OK) {
		psf_rpc_fail_err(p->call, err, "pull: %s", psf_strerror(err));
		pull_done(p, NULL);
		free(lens);
		return;
	}
	pthread_mutex_lock(&ps->mu);
	if (p->w != NULL)
		p->w->pulled_version = version;
	pthread_mutex_unlock(&ps->mu);
	r.model_version = version;
	r.n_keys = in->n_keys;
	r.keys = in->keys;
	r.n_lens = in->n_keys;
	r.lens = lens;
	r.values.data = (uint8_t *)values;
	r.values.len = n_floats * sizeof(float);
	pull_done(p, &r);
	free(values);
	free(lens);
}

void
psf_ps_rpc_pull(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__PullRequest *in,
    Psfleet__V1__PullReply_Closure done, void *call)
{
	psf_ps *ps = ps_of(call);
	parked p = {0};
	ps_worker *w;

	(void)svc;
	if ((w = ps_lock_worker(ps, in->worker, call)) == NULL) {
		done(NULL, call);
		return;
	}
	if (!ps_check_keys(ps, in->keys, in->n_keys, call)) {
		pthread_mutex_unlock(&ps->mu);
		done(NULL, call);
		return;
	}
	p = (parked){.kind = PARK_PULL,
	    .call = call,
	    .done = (void *)done,
	    .req = in,
	    .w = w,
	    .clock = in->clock,
	    .deadline_ns = psf_rpc_call_deadline_ns(call)};
	if (ps_pull_may_proceed(ps, in->clock)) {
		pthread_mutex_unlock(&ps->mu);
		ps_serve_pull(ps, &p);
		return;
	}
	if (ps_park(ps, &p) != PSF_OK) { /* answered by a push, a clock, or the timer */
		pthread_mutex_unlock(&ps->mu);
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		done(NULL, call);
		return;
	}
	pthread_mutex_unlock(&ps->mu);
}

/* validate_push checks shapes and values of a push and fills *out. Holds mu. */
static bool
validate_push(psf_ps *ps, const ps_push_in *in, ps_worker *w, void *call, ps_push *out)
{
	uint64_t total = 0;

	if (in->n_lens != in->n_keys) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "%zu keys but %zu lens", in->n_keys,
		    in->n_lens);
		return false;
	}
	if (!ps_check_keys(ps, in->keys, in->n_keys, call))
		return false;
	for (size_t i = 0; i < in->n_keys; i++) {
		uint32_t want = psf_model_key_len(ps->model, in->keys[i]);
		if (in->lens[i] != want) {
			psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
			    "key %#llx has %u floats, not %u", (unsigned long long)in->keys[i],
			    want, in->lens[i]);
			return false;
		}
		total += want;
	}
	if (in->values_len != total * 4) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
		    "values hold %zu bytes; the keys need %llu", in->values_len,
		    (unsigned long long)(total * 4));
		return false;
	}
	*out = (ps_push){w->id, w->index, in->seq, in->clock, in->n_keys, in->keys, in->lens,
	    in->values, 1.0, false, psf_clock_step(&ps->cfg->consistency)};
	return true;
}

/* nonfinite handles a push whose gradient holds NaN or Inf: rejected, or (with
 * skip_nonfinite) acknowledged with nothing applied. Returns false when
 * rejected. Holds mu. */
static bool
nonfinite(psf_ps *ps, ps_push *p, void *call)
{
	ps->n_nonfinite++;
	psf_counter_inc(ps->c_nonfinite);
	if (!ps->cfg->optimizer.skip_nonfinite) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
		    "gradient contains NaN or Inf (nothing applied)");
		return false;
	}
	psf_log_warn("ps", "push %s/%llu has NaN/Inf gradients: skipped", p->worker,
	    (unsigned long long)p->seq);
	p->n_keys = 0; /* acknowledged and counted, clock advances, nothing applied */
	p->check_finite = false;
	return true;
}

/* gradient_scale: clipping needs the norm of the whole push before anything is
 * applied (one pass, which also finds NaN/Inf). Without clipping the scale is 1
 * and NaN/Inf are looked for key by key while applying (check_finite), on data
 * the optimizer reads next anyway. Returns false when rejected. Holds mu. */
static bool
gradient_scale(psf_ps *ps, ps_push *p, size_t n_floats, void *call)
{
	double clip = ps->cfg->optimizer.clip_norm, sq;

	if (!(clip > 0) || ps->cfg->consistency.mode == PSF_CONS_LOCAL) {
		/* local: the push is a model delta; clip_norm is for gradients */
		p->check_finite = true;
		p->scale = 1.0;
		return true;
	}
	sq = psf_optim_sq_norm(p->values, n_floats);
	if (!isfinite(sq))
		return nonfinite(ps, p, call);
	p->scale = psf_optim_clip_scale(sqrt(sq), clip);
	return true;
}

static bool
sync_clock_ok(psf_ps *ps, const ps_worker *w, int64_t clock, void *call)
{
	if (clock == ps->round && w->clock <= ps->round)
		return true;
	/* ABORTED: the worker's clock is off; it re-registers to learn the round.
	 * (FAILED_PRECONDITION is kept for "not registered".) */
	if (clock < ps->round || w->clock > ps->round)
		psf_rpc_fail(call, PSF_STATUS_ABORTED,
		    "push for clock %lld, but round %lld is open%s: re-register to rejoin",
		    (long long)clock, (long long)ps->round,
		    w->clock > ps->round ? " and this worker already pushed for it" : "");
	else
		psf_rpc_fail(call, PSF_STATUS_ABORTED,
		    "push for clock %lld is ahead of the open round %lld", (long long)clock,
		    (long long)ps->round);
	return false;
}

bool
ps_push_handle(psf_ps *ps, const ps_push_in *in, void *call, Psfleet__V1__PushReply *r,
    parked **ready)
{
	bool sync = psf_consistency_rounds(ps->cfg->consistency.mode);
	int64_t step = psf_clock_step(&ps->cfg->consistency);
	ps_worker *w;
	ps_push p;
	psf_err err;

	*ready = NULL;
	if ((w = ps_lock_worker(ps, in->worker, call)) == NULL)
		return false;
	if (in->seq <= w->last_seq) {
		ps->n_duplicate++;
		psf_counter_inc(ps->c_duplicate);
		r->model_version = ps->version;
		r->duplicate = 1;
		pthread_mutex_unlock(&ps->mu);
		return true;
	}
	if (!validate_push(ps, in, w, call, &p) ||
	    !gradient_scale(ps, &p, in->values_len / 4, call) ||
	    (sync && !sync_clock_ok(ps, w, in->clock, call)))
		goto rejected;
	err = sync ? ps_accumulate_push(ps, &p) : ps_apply_push(ps, &p);
	if (err == PSF_ERANGE && p.check_finite) { /* NaN/Inf found while applying */
		if (!nonfinite(ps, &p, call))
			goto rejected;
		err = sync ? ps_accumulate_push(ps, &p) : ps_apply_push(ps, &p);
	}
	if (err != PSF_OK) {
		psf_rpc_fail_err(call, err, "push not applied: %s", psf_strerror(err));
		goto fail;
	}
	/* Staleness is the clock gap: how many steps this push is ahead of the
	 * slowest live worker (0 in sync; at most s in ssp; unbounded in async). */
	int64_t min = ps_min_clock(ps);
	r->staleness = (min == INT64_MAX || in->clock <= min) ? 0 : in->clock - min;
	psf_hist_observe(ps->h_staleness, (double)r->staleness);
	w->last_seq = in->seq;
	w->pushes++;
	w->live = true;
	if (in->clock + step > w->clock)
		w->clock = in->clock + step;
	ps->n_applied++;
	psf_counter_inc(ps->c_applied);
	if (!sync) {
		psf_gauge_set(ps->g_version, (double)ps->version);
	} else if (ps_round_complete(ps)) {
		ps_close_round(ps);
	}
	r->model_version = ps->version;
	*ready = ps_take_ready(ps);
	pthread_mutex_unlock(&ps->mu);
	return true;
rejected:
	ps->n_rejected++;
	psf_counter_inc(ps->c_rejected);
fail:
	pthread_mutex_unlock(&ps->mu);
	return false;
}

static psf_err
put_horizon(psf_store_txn *txn, void *arg)
{
	return psf_store_txn_meta_put_u64(txn, "lr_horizon", *(uint64_t *)arg);
}

/* derive_horizon sets a cosine schedule's horizon, when the config leaves it at
 * 0, from the steps the workers announced: updates on this shard are rounds in
 * sync mode (the longest worker's steps) and pushes otherwise (the sum). It is
 * kept in the store so a restarted ps decays the same way. Holds mu. */
static void
derive_horizon(psf_ps *ps)
{
	uint64_t h = 0;

	if (ps->cfg->optimizer.schedule != PSF_LR_COSINE || ps->cfg->optimizer.total_steps != 0)
		return;
	for (size_t i = 0; i < ps->n_workers; i++) {
		uint64_t t = ps->workers[i].total_steps;
		if (ps->cfg->consistency.mode == PSF_CONS_SYNC)
			h = t > h ? t : h;
		else
			h += t;
	}
	if (h == 0 || h == ps->optim.total_steps)
		return;
	ps->optim.total_steps = h;
	if (psf_store_update(ps->store, put_horizon, &h) != PSF_OK)
		psf_log_warn("ps", "could not record the learning-rate horizon");
	psf_log_info("ps", "cosine learning-rate horizon: %llu updates", (unsigned long long)h);
}

void
psf_ps_rpc_clock(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__ClockRequest *in,
    Psfleet__V1__ClockReply_Closure done, void *call)
{
	psf_ps *ps = ps_of(call);
	Psfleet__V1__ClockReply r = PSFLEET__V1__CLOCK_REPLY__INIT;
	ps_worker *w;

	(void)svc;
	if ((w = ps_lock_worker(ps, in->worker, call)) == NULL) {
		done(NULL, call);
		return;
	}
	w->live = true;
	if (!psf_consistency_rounds(ps->cfg->consistency.mode) && in->clock > w->clock)
		w->clock = in->clock;
	if (in->total_steps != 0 && w->total_steps != in->total_steps) {
		w->total_steps = in->total_steps;
		derive_horizon(ps);
	}
	if (in->done && !w->done) {
		w->done = true;
		psf_log_info("ps", "worker %s finished at clock %lld", w->id, (long long)w->clock);
		if (psf_consistency_rounds(ps->cfg->consistency.mode) && ps_round_complete(ps))
			ps_close_round(ps);
	}
	r.min_clock = ps_min_clock(ps) == INT64_MAX ? w->clock : ps_min_clock(ps);
	r.model_version = ps->version;
	done(&r, call);
	ps_unlock_and_answer(ps);
}

/* piece_bounds finds the snapshot keys [first, end) of one reply piece. */
static void
piece_bounds(const ps_snapshot *s, uint64_t start_key, size_t max_bytes, size_t *first, size_t *end)
{
	size_t lo = 0, hi = s->n_keys, bytes = 0;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->keys[mid] < start_key)
			lo = mid + 1;
		else
			hi = mid;
	}
	*first = lo;
	for (hi = lo; hi < s->n_keys; hi++) {
		size_t cost = (size_t)s->lens[hi] * 4 + 12;
		if (hi > lo && bytes + cost > max_bytes)
			break; /* at least one key per piece, so pieces always progress */
		bytes += cost;
	}
	*end = hi;
}

void
psf_ps_rpc_snapshot(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__SnapshotRequest *in, Psfleet__V1__SnapshotReply_Closure done, void *call)
{
	psf_ps *ps = ps_of(call);
	Psfleet__V1__SnapshotReply r = PSFLEET__V1__SNAPSHOT_REPLY__INIT;
	size_t max_bytes = in->max_bytes != 0 ? (size_t)in->max_bytes : PS_DEFAULT_SNAP_PIECE;
	size_t first, end;
	ps_snapshot *s;
	double *stats = NULL;
	psf_err err;

	(void)svc;
	if (max_bytes > ps->cfg->limits.max_message_bytes / 2)
		max_bytes = ps->cfg->limits.max_message_bytes / 2;
	err = ps_snapshot_get(ps, in->version, &s);
	if (err != PSF_OK) {
		if (err == PSF_ENOENT)
			psf_rpc_fail(call, PSF_STATUS_NOT_FOUND,
			    "snapshot version %llu is no longer kept; ask for version 0",
			    (unsigned long long)in->version);
		else
			psf_rpc_fail_err(call, err, "snapshot: %s", psf_strerror(err));
		done(NULL, call);
		return;
	}
	if (in->start_key == 0 &&
	    ps_reduce_result(ps, PSF_REDUCE_FEATURE_STATS, &stats, &r.n_feature_stats) == PSF_OK)
		r.feature_stats = stats; /* inferers scale inputs as the trainers did */
	piece_bounds(s, in->start_key, max_bytes, &first, &end);
	r.version = s->version;
	r.trained_steps = s->trained_steps;
	r.n_keys = end - first;
	r.keys = s->keys + first;
	r.n_lens = end - first;
	r.lens = s->lens + first;
	if (end > first) {
		r.values.data = (uint8_t *)(s->values + s->offs[first]);
		r.values.len =
		    (s->offs[end - 1] + s->lens[end - 1] - s->offs[first]) * sizeof(float);
	}
	r.done = end >= s->n_keys;
	r.next_key = r.done ? 0 : s->keys[end];
	done(&r, call); /* packed straight from the snapshot: one copy */
	ps_snapshot_put(ps, s);
	free(stats);
}

void
psf_ps_rpc_stats(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__StatsRequest *in,
    Psfleet__V1__StatsReply_Closure done, void *call)
{
	psf_ps *ps = ps_of(call);
	Psfleet__V1__StatsReply r = PSFLEET__V1__STATS_REPLY__INIT;
	Psfleet__V1__WorkerStatus ws[PS_MAX_WORKERS], *wsp[PS_MAX_WORKERS];
	Psfleet__V1__MetricsReport *reports[PS_MAX_WORKERS];
	psf_store_info info;

	(void)svc;
	(void)in;
	if (psf_store_stats(ps->store, &info) != PSF_OK)
		memset(&info, 0, sizeof(info));
	pthread_mutex_lock(&ps->mu);
	r.model_version = ps->version;
	r.pushes_applied = ps->n_applied;
	r.pushes_duplicate = ps->n_duplicate;
	r.pushes_rejected = ps->n_rejected;
	r.store_bytes = info.used_bytes;
	r.mode = (char *)psf_consistency_name(ps->cfg->consistency.mode);
	r.shard_index = (uint32_t)ps->shard;
	r.trained_steps = ps->step;
	for (size_t i = 0; i < ps->n_workers; i++) {
		ps_worker *w = &ps->workers[i];
		psfleet__v1__worker_status__init(&ws[i]);
		ws[i].worker = w->id;
		ws[i].clock = w->clock;
		ws[i].live = w->live && !w->done;
		ws[i].last_seq = w->last_seq;
		ws[i].pushes = w->pushes;
		wsp[i] = &ws[i];
		if (w->has_report)
			reports[r.n_reports++] = &w->report;
	}
	r.n_workers = ps->n_workers;
	r.workers = wsp;
	r.reports = reports;
	done(&r, call);
	pthread_mutex_unlock(&ps->mu);
}

void
ps_handlers_init(psf_ps *ps)
{
	Psfleet__V1__ParameterServer_Service svc = PSFLEET__V1__PARAMETER_SERVER__INIT(psf_ps_rpc_);

	ps->svc = svc;
}
