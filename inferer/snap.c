/* snap.c -- model snapshots: pull every ps shard's snapshot, build the model
 * aside, publish it with one pointer swap (inferer.h).
 *
 * Readers take a reference under snap_mu (a pointer copy and an atomic
 * increment), so a swap never waits for requests and requests never wait for a
 * fetch; the snapshot a request holds stays whole until its last reader drops
 * it. Memory stays flat across swaps: at most the current snapshot, the one
 * being built, and those still held by requests in flight exist at once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inferer/internal.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/data/features.h"
#include "lib/net/methods.h"

inf_snap *
inf_snap_get(psf_inferer *inf)
{
	inf_snap *s;

	pthread_mutex_lock(&inf->snap_mu);
	s = inf->cur;
	if (s != NULL)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&inf->snap_mu);
	return s;
}

static void
snap_free(inf_snap *s)
{
	if (s == NULL)
		return;
	if (s->params_from == NULL)
		psf_params_free(s->params);
	if (s->base == NULL) { /* a derived snapshot borrows these from its base */
		free(s->stats);
		free(s->shard_versions);
	}
	inf_snap_put(s->params_from);
	inf_snap_put(s->base);
	inf_book_put(s->book);
	free(s->pred);
	free(s->pred_err);
	free(s);
}

void
inf_snap_put(inf_snap *s)
{
	if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		snap_free(s);
}

void
inf_snap_publish(psf_inferer *inf, inf_snap *s)
{
	inf_snap *old;

	s->built_ms = psf_now_ms();
	pthread_mutex_lock(&inf->snap_mu);
	old = inf->cur;
	inf->cur = s;
	inf->last_error[0] = '\0';
	pthread_mutex_unlock(&inf->snap_mu);
	inf_snap_put(old);
}

/* ---------------------------------------------------------------- version check */

psf_err
inf_ps_versions(psf_inferer *inf, uint64_t *versions)
{
	Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
	psf_rpc_call_opts o1 = {inf->refresh_ms > 500 ? inf->refresh_ms : 500, 0, 0}, o;
	psf_rpc_pending *p[64];
	psf_rpc_client *c[64];
	psf_err err = PSF_OK;
	size_t started = 0;

	for (size_t base = 0; base < inf->n_ps && err == PSF_OK; base += started) {
		size_t n = inf->n_ps - base < 64 ? inf->n_ps - base : 64;
		for (started = 0; started < n; started++) {
			o = psf_rpc_group_call_opts(inf->ps[base + started], &o1);
			c[started] = psf_rpc_group_client(inf->ps[base + started]);
			if ((err = psf_rpc_call_start(c[started], PSF_M_HEALTH, &req.base, &o,
			         &p[started])) != PSF_OK)
				break;
		}
		for (size_t i = 0; i < started; i++) {
			Psfleet__V1__HealthReply *r = NULL;
			psf_rpc_status st;
			psf_err e = psf_rpc_pending_wait(p[i],
			    &psfleet__v1__health_reply__descriptor, (ProtobufCMessage **)&r, &st);
			/* (a backup answers Health too, with its shard's version: it
			 * has every acknowledged update; the Snapshot that follows
			 * finds the primary) */
			if (e == PSF_OK) {
				versions[base + i] = r->model_version;
			} else {
				(void)psf_rpc_group_failed(inf->ps[base + i], c[i], &st);
				if (err == PSF_OK)
					err = e;
			}
			if (r != NULL)
				protobuf_c_message_free_unpacked(&r->base, NULL);
			psf_rpc_pending_free(p[i]);
		}
		if (started == 0)
			break;
	}
	return err;
}

/* ---------------------------------------------------------------- fetch */

typedef struct shard_fetch {
	uint64_t version; /* 0 until the first piece */
	uint64_t next_key;
	uint64_t trained_steps;
	bool done;
	double *stats; /* feature statistics, if this shard sent them (ps0) */
	size_t n_stats;
	psf_rpc_pending *p;
} shard_fetch;

/* fetch_reset forgets what was fetched from shard f. Cannot fail. */
static void
fetch_reset(shard_fetch *f)
{
	free(f->stats);
	*f = (shard_fetch){0};
}

/* take_stats keeps a copy of the statistics a piece carries (only ps0's first). */
static psf_err
take_stats(shard_fetch *f, const Psfleet__V1__SnapshotReply *r)
{
	double *v;

	if (r->n_feature_stats == 0)
		return PSF_OK;
	if ((v = malloc(r->n_feature_stats * sizeof(double))) == NULL)
		return PSF_ENOMEM;
	memcpy(v, r->feature_stats, r->n_feature_stats * sizeof(double));
	free(f->stats);
	f->stats = v;
	f->n_stats = r->n_feature_stats;
	return PSF_OK;
}

/* take_piece stores one SnapshotReply piece of shard s into params. */
static psf_err
take_piece(psf_inferer *inf, size_t s, shard_fetch *f, const Psfleet__V1__SnapshotReply *r,
    psf_params *params)
{
	size_t off = 0;

	if (f->version != 0 && r->version != f->version) {
		psf_log_warn("inferer", "ps %s answered version %llu in the middle of version %llu",
		    inf->cfg->nodes[s].id, (unsigned long long)r->version,
		    (unsigned long long)f->version);
		return PSF_EPROTO;
	}
	if (r->n_keys != r->n_lens)
		return PSF_EPROTO;
	if (take_stats(f, r) != PSF_OK)
		return PSF_ENOMEM;
	for (size_t i = 0; i < r->n_keys; i++) {
		size_t bytes = (size_t)r->lens[i] * sizeof(float);
		psf_err err;
		if (r->values.len - off < bytes)
			return PSF_EPROTO;
		err = psf_params_set_key(params, r->keys[i], r->values.data + off, r->lens[i]);
		if (err != PSF_OK) {
			psf_log_err("inferer",
			    "ps %s sent key %#llx (%u floats) that this config's model "
			    "does not have: %s",
			    inf->cfg->nodes[s].id, (unsigned long long)r->keys[i], r->lens[i],
			    psf_strerror(err));
			return err;
		}
		off += bytes;
	}
	f->version = r->version;
	f->trained_steps = r->trained_steps;
	f->next_key = r->next_key;
	f->done = r->done;
	return PSF_OK;
}

/* fetch_round asks every unfinished shard for its next piece, in parallel. */
static psf_err
fetch_round(psf_inferer *inf, shard_fetch *f, psf_params *params)
{
	psf_rpc_call_opts o1 = {0, 1, 0}, o;
	psf_rpc_client **c = calloc(inf->n_ps, sizeof(*c));
	psf_err err = c != NULL ? PSF_OK : PSF_ENOMEM;

	for (size_t s = 0; s < inf->n_ps; s++) {
		Psfleet__V1__SnapshotRequest req = PSFLEET__V1__SNAPSHOT_REQUEST__INIT;
		f[s].p = NULL;
		if (f[s].done || err != PSF_OK)
			continue;
		req.version = f[s].version;
		req.start_key = f[s].next_key;
		o = psf_rpc_group_call_opts(inf->ps[s], &o1);
		c[s] = psf_rpc_group_client(inf->ps[s]);
		err = psf_rpc_call_start(c[s], PSF_M_SNAPSHOT, &req.base, &o, &f[s].p);
	}
	for (size_t s = 0; s < inf->n_ps; s++) {
		Psfleet__V1__SnapshotReply *r = NULL;
		psf_rpc_status st;
		psf_err e;
		if (f[s].p == NULL)
			continue;
		e = psf_rpc_pending_wait(f[s].p, &psfleet__v1__snapshot_reply__descriptor,
		    (ProtobufCMessage **)&r, &st);
		if (e == PSF_OK) {
			e = take_piece(inf, s, &f[s], r, params);
			protobuf_c_message_free_unpacked(&r->base, NULL);
		} else {
			psf_log_debug("inferer", "snapshot from %s: %s",
			    psf_rpc_group_name(inf->ps[s], psf_rpc_group_current(inf->ps[s])),
			    st.message);
			/* the next refresh asks the shard's next replica; a piece chain
			 * started on the old primary restarts there (fetch_reset) */
			if (psf_rpc_group_failed(inf->ps[s], c[s], &st))
				fetch_reset(&f[s]);
		}
		if (err == PSF_OK)
			err = e;
		psf_rpc_pending_free(f[s].p);
		f[s].p = NULL;
	}
	free(c);
	return err;
}

/* fetch_pending pulls every shard not marked done, piece by piece, into params.
 * Shards hold disjoint keys and never drop one, so a shard fetched again just
 * overwrites its own keys. */
static psf_err
fetch_pending(psf_inferer *inf, shard_fetch *f, psf_params *params)
{
	bool all_done = false;
	psf_err err = PSF_OK;

	while (!all_done && err == PSF_OK) {
		err = fetch_round(inf, f, params);
		all_done = true;
		for (size_t s = 0; s < inf->n_ps; s++)
			all_done = all_done && f[s].done;
	}
	return err;
}

/* mark_lagging marks for another fetch the shards behind the newest version. */
static void
mark_lagging(shard_fetch *f, size_t n)
{
	uint64_t newest = 0;

	for (size_t s = 0; s < n; s++)
		newest = f[s].version > newest ? f[s].version : newest;
	for (size_t s = 0; s < n; s++) {
		if (f[s].version < newest)
			fetch_reset(&f[s]);
	}
}

static bool
versions_equal(const shard_fetch *f, size_t n)
{
	for (size_t s = 1; s < n; s++)
		if (f[s].version != f[0].version)
			return false;
	return true;
}

static void
versions_text(const shard_fetch *f, size_t n, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t s = 0; s < n && used < len; s++)
		used += (size_t)snprintf(buf + used, len - used, "%s%llu", s ? "," : "",
		    (unsigned long long)f[s].version);
}

/* complete_symbols gives every served symbol its per-symbol keys: one the ps
 * never stored (no training row reached it) has its initial value there too,
 * which is what a trainer's pull would get. */
static psf_err
complete_symbols(psf_inferer *inf, const inf_book *book, psf_params *params)
{
	uint64_t keys[2];
	uint32_t lens[2];
	float *buf = NULL;
	size_t n_keys, cap = 0;
	psf_err err = PSF_OK;

	if (psf_model_n_symbol_tensors(inf->model) == 0)
		return PSF_OK;
	for (size_t i = 0; i < book->n && err == PSF_OK; i++) {
		err = psf_model_symbol_keys(inf->model, &book->syms[i].row, 1, keys, lens, 2,
		    &n_keys);
		for (size_t k = 0; k < n_keys && err == PSF_OK; k++) {
			const float *v;
			if (psf_params_get_key(params, keys[k], &v, NULL) == PSF_OK)
				continue;
			if (lens[k] > cap) {
				float *nb = realloc(buf, lens[k] * sizeof(float));
				if (nb == NULL) {
					err = PSF_ENOMEM;
					break;
				}
				buf = nb;
				cap = lens[k];
			}
			if ((err = psf_model_init_value(inf->model, keys[k], buf)) == PSF_OK)
				err = psf_params_set_key(params, keys[k], buf, lens[k]);
		}
	}
	free(buf);
	return err;
}

/* precompute predicts every served symbol at its latest row. */
static psf_err
precompute(psf_inferer *inf, inf_snap *s)
{
	const inf_book *b = s->book;
	size_t len = b->window * b->n_features;
	float *x = malloc((len > 0 ? len : 1) * sizeof(float));
	psf_model_ws *ws = inf_ws_take(inf);

	if (ws == NULL || x == NULL) {
		free(x);
		if (ws != NULL)
			inf_ws_give(inf, ws);
		return PSF_ENOMEM;
	}
	for (size_t i = 0; i < b->n; i++) {
		s->pred_err[i] = b->syms[i].latest_err;
		if (s->pred_err[i] != PSF_OK)
			continue;
		memcpy(x, b->x_latest + i * len, len * sizeof(float));
		s->pred_err[i] = inf_predict_row(inf, ws, s, x, b->syms[i].row, &s->pred[i]);
	}
	inf_ws_give(inf, ws);
	free(x);
	return PSF_OK;
}

/* take_fleet_stats moves the trainers' statistics from the fetch into s.
 * PSF_ESTATE while no ps has them (the trainers' start-up Reduce is not complete:
 * no model is served before it), PSF_EPROTO for a length this config's features
 * do not have. Holds refresh_mu. */
static psf_err
take_fleet_stats(psf_inferer *inf, shard_fetch *f, inf_snap *s)
{
	size_t want = psf_features_stats_len(inf->cfg->n_features);

	for (size_t i = 0; i < inf->n_ps; i++) {
		if (f[i].stats == NULL)
			continue;
		if (f[i].n_stats != want) {
			psf_log_err("inferer",
			    "ps %s sent %zu feature statistics; this config's %zu "
			    "features need %zu",
			    inf->cfg->nodes[i].id, f[i].n_stats, inf->cfg->n_features, want);
			return PSF_EPROTO;
		}
		s->stats = f[i].stats;
		f[i].stats = NULL;
		inf->waiting_stats = false;
		return PSF_OK;
	}
	if (!inf->told_no_stats)
		psf_log_info("inferer",
		    "waiting for the trainers' standardisation statistics (Reduce "
		    "'%s' on %s): no model is served before they arrive",
		    PSF_REDUCE_FEATURE_STATS, inf->cfg->nodes[0].id);
	inf->told_no_stats = true;
	inf->waiting_stats = true;
	return PSF_ESTATE;
}

void
inf_fetch_metrics(psf_inferer *inf)
{
	Psfleet__V1__StatsRequest req = PSFLEET__V1__STATS_REQUEST__INIT;
	Psfleet__V1__StatsReply *r = NULL;
	psf_rpc_call_opts o = {2000, 1, 0};
	inf_metrics m = {0};
	double sse = 0, sae = 0, nsse = 0;
	uint64_t n = 0;

	m.fetched_ms = psf_now_ms();
	if (psf_rpc_group_call(inf->ps[0], PSF_M_STATS, &req.base,
	        &psfleet__v1__stats_reply__descriptor, &o, (ProtobufCMessage **)&r, NULL) != PSF_OK)
		return;
	for (size_t i = 0; i < r->n_reports; i++) {
		if (r->reports[i]->n_residual_hist == PSF_RHIST_BINS)
			for (size_t b = 0; b < PSF_RHIST_BINS; b++)
				m.resid[b] += r->reports[i]->residual_hist[b];
		sse += r->reports[i]->test_sse;
		sae += r->reports[i]->test_sae;
		nsse += r->reports[i]->naive_sse;
		n += r->reports[i]->test_n;
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	m.n_resid = psf_rhist_total(m.resid, PSF_RHIST_BINS);
	if (n > 0) {
		m.has = true;
		m.test_rmse = sqrt(sse / (double)n);
		m.test_mae = sae / (double)n;
		m.naive_rmse = sqrt(nsse / (double)n);
	}
	pthread_mutex_lock(&inf->snap_mu);
	inf->metrics = m;
	pthread_mutex_unlock(&inf->snap_mu);
}

/* build turns fetched shards into a snapshot object. */
static psf_err
build(psf_inferer *inf, shard_fetch *f, psf_params *params, inf_snap **out)
{
	inf_snap *s = calloc(1, sizeof(*s));
	size_t n;
	psf_err err;

	if (s == NULL)
		return PSF_ENOMEM;
	atomic_init(&s->refs, 1);
	s->book = inf_book_current(inf);
	n = s->book->n > 0 ? s->book->n : 1;
	s->params = params;
	s->n_shards = inf->n_ps;
	s->shard_versions = calloc(inf->n_ps, sizeof(uint64_t));
	s->pred = calloc(n, sizeof(double));
	s->pred_err = calloc(n, sizeof(psf_err));
	if (!s->shard_versions || !s->pred || !s->pred_err) {
		s->params = NULL; /* still the caller's */
		snap_free(s);
		return PSF_ENOMEM;
	}
	s->version = UINT64_MAX;
	for (size_t i = 0; i < inf->n_ps; i++) {
		s->shard_versions[i] = f[i].version;
		s->version = f[i].version < s->version ? f[i].version : s->version;
		s->trained_steps =
		    f[i].trained_steps > s->trained_steps ? f[i].trained_steps : s->trained_steps;
	}
	if ((err = take_fleet_stats(inf, f, s)) != PSF_OK ||
	    (err = complete_symbols(inf, s->book, params)) != PSF_OK ||
	    (err = precompute(inf, s)) != PSF_OK) {
		s->params = NULL;
		snap_free(s);
		return err;
	}
	s->n_keys = psf_params_n_keys(params);
	*out = s;
	return PSF_OK;
}

psf_err
inf_snap_fetch(psf_inferer *inf, inf_snap **out)
{
	shard_fetch *f = calloc(inf->n_ps, sizeof(*f));
	psf_params *params = NULL;
	bool consistent = inf->cfg->consistency.mode != PSF_CONS_ASYNC;
	char vers[256];
	psf_err err;

	if (f == NULL)
		return PSF_ENOMEM;
	if ((err = psf_params_new(inf->model, &params)) != PSF_OK)
		goto out;
	/* sync/ssp: shards close rounds independently, so a fetch can catch them one
	 * version apart. The shards behind are asked again (after a short pause) until
	 * all agree; a version that left a ring mid-fetch restarts everything. */
	for (int attempt = 0; attempt < INF_FETCH_TRIES; attempt++) {
		if (attempt > 0)
			psf_sleep_ms(10u * (uint32_t)attempt);
		if (attempt == 0 || err == PSF_ENOENT) {
			psf_params_clear(params);
			for (size_t s = 0; s < inf->n_ps; s++)
				fetch_reset(&f[s]);
		}
		err = fetch_pending(inf, f, params);
		if (err == PSF_ENOENT)
			continue;
		if (err != PSF_OK || !consistent || versions_equal(f, inf->n_ps))
			break;
		versions_text(f, inf->n_ps, vers, sizeof(vers));
		psf_log_debug("inferer",
		    "shard versions differ (%s); fetching the shards behind again", vers);
		mark_lagging(f, inf->n_ps);
		err = PSF_ESTATE;
	}
	if (err == PSF_ESTATE) { /* vers: the versions of the last attempt */
		psf_log_info("inferer",
		    "shard versions stayed unequal over %d fetches (%s, %s mode): "
		    "keeping the current model until the next refresh",
		    INF_FETCH_TRIES, vers, psf_consistency_name(inf->cfg->consistency.mode));
	}
	if (err != PSF_OK)
		goto out;
	if ((err = build(inf, f, params, out)) == PSF_OK)
		params = NULL; /* the snapshot owns it */
out:
	psf_params_free(params);
	for (size_t s = 0; s < inf->n_ps; s++)
		fetch_reset(&f[s]);
	free(f);
	return err;
}

/* ---------------------------------------------------------------- ingest */

inf_book *
inf_book_current(psf_inferer *inf)
{
	inf_book *b;

	pthread_mutex_lock(&inf->snap_mu);
	b = inf->book;
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&inf->snap_mu);
	return b;
}

size_t
inf_book_n(psf_inferer *inf)
{
	size_t n;

	pthread_mutex_lock(&inf->snap_mu);
	n = inf->book->n;
	pthread_mutex_unlock(&inf->snap_mu);
	return n;
}

/* symbols_complete tells whether params has every per-symbol key of book's symbols. */
static bool
symbols_complete(psf_inferer *inf, const inf_book *book, const psf_params *params)
{
	uint64_t keys[2];
	uint32_t lens[2];
	size_t n_keys;
	const float *v;

	if (psf_model_n_symbol_tensors(inf->model) == 0)
		return true;
	for (size_t i = 0; i < book->n; i++) {
		if (psf_model_symbol_keys(inf->model, &book->syms[i].row, 1, keys, lens, 2,
		        &n_keys) != PSF_OK)
			return false;
		for (size_t k = 0; k < n_keys; k++)
			if (psf_params_get_key(params, keys[k], &v, NULL) != PSF_OK)
				return false;
	}
	return true;
}

/* params_copy makes a copy of src (for a derived snapshot that adds symbols). */
static psf_err
params_copy(psf_inferer *inf, const psf_params *src, psf_params **out)
{
	size_t n = psf_params_n_keys(src), got = 0;
	uint64_t *keys = malloc((n > 0 ? n : 1) * sizeof(uint64_t));
	uint32_t *lens = malloc((n > 0 ? n : 1) * sizeof(uint32_t));
	psf_params *p = NULL;
	psf_err err = PSF_ENOMEM;

	if (keys != NULL && lens != NULL && (err = psf_params_new(inf->model, &p)) == PSF_OK)
		err = psf_params_keys(src, keys, lens, n, &got);
	for (size_t i = 0; i < got && err == PSF_OK; i++) {
		const float *v;
		if ((err = psf_params_get_key(src, keys[i], &v, NULL)) == PSF_OK)
			err = psf_params_set_key(p, keys[i], v, lens[i]);
	}
	free(keys);
	free(lens);
	if (err != PSF_OK) {
		psf_params_free(p);
		return err;
	}
	*out = p;
	return PSF_OK;
}

psf_err
inf_snap_derive(psf_inferer *inf, inf_snap *from, inf_book *book, inf_snap **out)
{
	inf_snap *s = calloc(1, sizeof(*s));
	inf_snap *root = from->base != NULL ? from->base : from;
	inf_snap *owner = from->params_from != NULL ? from->params_from : from;
	size_t n = book->n > 0 ? book->n : 1;
	psf_err err = PSF_OK;

	if (s == NULL)
		return PSF_ENOMEM;
	atomic_init(&s->refs, 1);
	atomic_fetch_add_explicit(&root->refs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&book->refs, 1, memory_order_relaxed);
	s->base = root;
	s->book = book;
	s->version = root->version;
	s->shard_versions = root->shard_versions;
	s->n_shards = root->n_shards;
	s->trained_steps = root->trained_steps;
	s->stats = root->stats;
	s->pred = calloc(n, sizeof(double));
	s->pred_err = calloc(n, sizeof(psf_err));
	if (s->pred == NULL || s->pred_err == NULL)
		err = PSF_ENOMEM;
	else if (symbols_complete(inf, book, owner->params)) {
		/* the weights are shared: borrowed from the snapshot that owns them */
		atomic_fetch_add_explicit(&owner->refs, 1, memory_order_relaxed);
		s->params_from = owner;
		s->params = owner->params;
	} else if ((err = params_copy(inf, owner->params, &s->params)) == PSF_OK) {
		/* new symbols of a model with per-symbol tensors: their initial values */
		err = complete_symbols(inf, book, s->params);
	}
	if (err == PSF_OK)
		err = precompute(inf, s);
	if (err != PSF_OK) {
		snap_free(s);
		return err;
	}
	s->n_keys = psf_params_n_keys(s->params);
	*out = s;
	return PSF_OK;
}
