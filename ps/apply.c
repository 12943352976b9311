/* apply.c -- how gradients reach the weights: applied at once (async, ssp) or
 * accumulated per worker and averaged when a sync round closes. Every change is
 * one store update together with the push's dedup record, so a push is applied
 * exactly once even across a crash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/shard.h"
#include "lib/base/util.h"
#include "ps/internal.h"
#include "ps/optim.h"

bool
ps_key_owned(const psf_ps *ps, uint64_t key)
{
	return psf_model_key_len(ps->model, key) > 0 &&
	    psf_shard_pick(key, ps->ps_seeds, ps->n_ps) == ps->shard;
}

void
ps_meta_worker_key(char *buf, size_t len, const char *prefix, const char *worker)
{
	snprintf(buf, len, "%s:%s", prefix, worker);
}

/* grad_finite tells whether the n floats at g (any alignment) are all finite:
 * the exponent is all ones exactly when adding 1 to it carries into bit 31.
 * The fixed-length inner loop is what lets GCC vectorize it at -O2 (the plain
 * loop of psf_optim_is_finite stays scalar there and cost as much as moving the
 * bytes over NNG). Sync mode runs it per key just before the key is
 * accumulated; applied keys are checked by the optimizer loop itself
 * (psf_optim_apply_to), which reads every gradient anyway. */
static bool
grad_finite(const uint8_t *g, size_t n)
{
	uint32_t acc = 0;
	size_t i = 0;

	for (; i + 64 <= n; i += 64) {
		for (size_t j = 0; j < 64; j++) {
			uint32_t u;
			memcpy(&u, g + (i + j) * 4, 4);
			acc |= (u & 0x7f800000u) + 0x00800000u;
		}
	}
	for (; i < n; i++) {
		uint32_t u;
		memcpy(&u, g + i * 4, 4);
		acc |= (u & 0x7f800000u) + 0x00800000u;
	}
	return (acc & 0x80000000u) == 0;
}

/* Scratch for one key: weights and optimizer state where they cannot be used
 * where the store keeps them (first touch, small values, stores without
 * WRITEMAP; see apply_key). The gradient is read where it lies:
 * psf_optim_apply_to takes any alignment. */
typedef struct scratch {
	float *w, *state;
	size_t cap;
} scratch;

static psf_err
scratch_reserve(scratch *s, size_t n, size_t state_floats)
{
	if (n <= s->cap)
		return PSF_OK;
	free(s->w);
	free(s->state);
	s->w = malloc(n * sizeof(float));
	s->state = malloc((state_floats > 0 ? state_floats * n : 1) * sizeof(float));
	s->cap = (s->w && s->state) ? n : 0;
	return s->cap != 0 ? PSF_OK : PSF_ENOMEM;
}

static void
scratch_fini(scratch *s)
{
	free(s->w);
	free(s->state);
}

/* ALIGNED: a store value may be read and written as floats in place. */
#define ALIGNED(p) (((uintptr_t)(p) & (sizeof(float) - 1)) == 0)

/* old_value points *old at the value of key in db (n floats) and *dst at the
 * bytes reserved for its new value (psf_store_txn_rewrite: the optimizer
 * reads the old value where LMDB keeps it and writes the new one straight into
 * the map, no copy either way). Where that cannot be done, *old is buf and
 * *dst NULL: the value is copied to buf (PSF_ESTATE: a store without
 * WRITEMAP), or, for a key never written, buf is filled by the caller (*fresh),
 * and the caller puts buf back after the update. */
static psf_err
old_value(psf_store_txn *txn, psf_store_db db, uint64_t key, size_t n, float *buf, const void **old,
    void **dst, bool *fresh)
{
	psf_err err = psf_store_txn_rewrite(txn, db, key, n * 4, old, dst);

	*fresh = false;
	if (err == PSF_ENOENT || err == PSF_ESTATE) {
		*fresh = err == PSF_ENOENT;
		err = *fresh ? PSF_OK : psf_store_txn_get_floats(txn, db, key, buf, n);
		*old = buf;
		*dst = NULL;
	}
	return err == PSF_ERANGE ? PSF_EINTERNAL : err; /* a stored value of the wrong length */
}

/* store_new finishes a value old_value handed out: copied into its reserved
 * bytes when the update ran in scratch, or put from scratch. */
static psf_err
store_new(psf_store_txn *txn, psf_store_db db, uint64_t key, void *dst, const float *buf, size_t n)
{
	if (dst == NULL)
		return psf_store_txn_put_floats(txn, db, key, buf, n);
	memcpy(dst, buf, n * 4);
	return PSF_OK;
}

/* apply_key: w -= optimizer(g * scale) for one key, inside a write txn. With
 * check_finite, a NaN/Inf in g returns PSF_ERANGE (found by the optimizer loop,
 * no pass of its own), and the caller aborts the txn: nothing is applied. In
 * local mode g is the sum of the workers' model deltas (start - local weights)
 * and the average is applied as it is, w -= g * scale: the optimizer ran on the
 * trainers, so no server optimizer, schedule or state takes part. */
static psf_err
apply_key(psf_ps *ps, psf_store_txn *txn, scratch *s, uint64_t key, const void *g, size_t n,
    double scale, uint64_t step, bool check_finite)
{
	bool local = ps->cfg->consistency.mode == PSF_CONS_LOCAL;
	size_t sf = local ? 0 : ps->state_floats;
	const void *old_w = NULL, *old_s = NULL;
	void *dst_w = NULL, *dst_s = NULL;
	bool fresh_w, fresh_s = false;
	psf_err err;

	if ((err = scratch_reserve(s, n, sf)) != PSF_OK)
		return err;
	if (sf > 0 &&
	    (err = old_value(txn, PSF_STORE_OPTSTATE, key, n * sf, s->state, &old_s, &dst_s,
	         &fresh_s)) != PSF_OK)
		return err;
	if ((err = old_value(txn, PSF_STORE_WEIGHTS, key, n, s->w, &old_w, &dst_w, &fresh_w)) !=
	    PSF_OK)
		return err;
	if (fresh_s)
		memset(s->state, 0, n * sf * sizeof(float));
	if (fresh_w && (err = psf_model_init_value(ps->model, key, s->w)) != PSF_OK)
		return err; /* first touch of a symbol */
	if (local) {        /* the averaged delta as it is: w -= g * scale */
		if (old_w != s->w)
			memcpy(s->w, old_w, n * 4);
		for (size_t j = 0; j < n; j++) {
			float d;
			memcpy(&d, (const uint8_t *)g + j * 4, 4);
			if (check_finite && !isfinite(d))
				return PSF_ERANGE;
			s->w[j] -= (float)scale * d;
		}
		return store_new(txn, PSF_STORE_WEIGHTS, key, dst_w, s->w, n);
	}
	if (dst_w != NULL && ALIGNED(old_w) && ALIGNED(dst_w) &&
	    (sf == 0 || (dst_s != NULL && ALIGNED(old_s) && ALIGNED(dst_s))))
		return psf_optim_apply_to(&ps->optim, step, dst_w, old_w, dst_s, old_s, g, n,
		    (float)scale, 0.0, check_finite);
	/* In scratch: a small value inside an LMDB page (only 2-byte aligned), a
	 * first touch, or a store without WRITEMAP. */
	if (old_w != s->w)
		memcpy(s->w, old_w, n * 4);
	if (sf > 0 && old_s != s->state)
		memcpy(s->state, old_s, n * sf * 4);
	err = psf_optim_apply_to(&ps->optim, step, s->w, s->w, s->state, s->state, g, n,
	    (float)scale, 0.0, check_finite);
	/* Reserved bytes are filled before any further put (LMDB's rule). */
	if (err == PSF_OK && dst_w != NULL)
		err = store_new(txn, PSF_STORE_WEIGHTS, key, dst_w, s->w, n);
	if (err == PSF_OK && sf > 0 && dst_s != NULL)
		err = store_new(txn, PSF_STORE_OPTSTATE, key, dst_s, s->state, n * sf);
	if (err == PSF_OK && dst_w == NULL)
		err = store_new(txn, PSF_STORE_WEIGHTS, key, NULL, s->w, n);
	if (err == PSF_OK && sf > 0 && dst_s == NULL)
		err = store_new(txn, PSF_STORE_OPTSTATE, key, NULL, s->state, n * sf);
	return err;
}

/* record_push writes the dedup record and the worker's clock. */
static psf_err
record_push(psf_store_txn *txn, const ps_push *p)
{
	char name[160];
	psf_err err = psf_store_txn_pushlog_put(txn, p->worker, p->seq);

	if (err != PSF_OK)
		return err;
	ps_meta_worker_key(name, sizeof(name), "wclock", p->worker);
	return psf_store_txn_meta_put_u64(txn, name, (uint64_t)(p->clock + p->clock_step));
}

typedef struct push_ctx {
	psf_ps *ps;
	const ps_push *push;
	uint64_t version, step;
} push_ctx;

static psf_err
apply_push_txn(psf_store_txn *txn, void *arg)
{
	push_ctx *c = arg;
	const ps_push *p = c->push;
	scratch s = {0};
	size_t off = 0;
	psf_err err = PSF_OK;

	/* PSF_ERANGE (NaN/Inf with check_finite) aborts the update: nothing applied. */
	for (size_t i = 0; i < p->n_keys && err == PSF_OK; i++) {
		err = apply_key(c->ps, txn, &s, p->keys[i], p->values + off * 4, p->lens[i],
		    p->scale, c->step, p->check_finite);
		off += p->lens[i];
	}
	scratch_fini(&s);
	if (err == PSF_OK)
		err = record_push(txn, p);
	if (err == PSF_OK)
		err = psf_store_txn_meta_put_u64(txn, "version", c->version);
	if (err == PSF_OK)
		err = psf_store_txn_meta_put_u64(txn, "step", c->step);
	return err;
}

psf_err
ps_apply_push(psf_ps *ps, const ps_push *push)
{
	push_ctx c = {ps, push, ps->version + 1, ps->step + 1};
	psf_err err = psf_store_update(ps->store, apply_push_txn, &c);

	if (err == PSF_OK) {
		ps->version = c.version;
		ps->step = c.step;
	}
	return err;
}

static psf_err
accumulate_txn(psf_store_txn *txn, void *arg)
{
	push_ctx *c = arg;
	const ps_push *p = c->push;
	size_t off = 0;
	psf_err err = PSF_OK;

	for (size_t i = 0; i < p->n_keys && err == PSF_OK; i++) {
		uint64_t akey = PS_ACCUM_KEY(p->widx, p->keys[i]);
		void *dst;
		size_t n = p->lens[i];

		if (p->check_finite && !grad_finite(p->values + off * 4, n)) {
			err = PSF_ERANGE; /* aborts the update: nothing is recorded */
			break;
		}
		if ((err = psf_store_txn_put_reserve(txn, PSF_STORE_ACCUM, akey, n * 4, &dst)) !=
		    PSF_OK)
			break;
		if (p->scale == 1.0) {
			memcpy(dst, p->values + off * 4, n * 4);
		} else {
			for (size_t j = 0; j < n; j++) {
				float v;
				memcpy(&v, p->values + (off + j) * 4, 4);
				v *= (float)p->scale;
				memcpy((uint8_t *)dst + j * 4, &v, 4);
			}
		}
		off += n;
	}
	if (err == PSF_OK)
		err = record_push(txn, p);
	return err;
}

psf_err
ps_accumulate_push(psf_ps *ps, const ps_push *push)
{
	push_ctx c = {ps, push, ps->version, ps->step};

	return psf_store_update(ps->store, accumulate_txn, &c);
}

/* A sum per parameter key, in ascending key order after sorting. */
typedef struct sum_entry {
	uint64_t key;
	size_t n;
	float *v;
} sum_entry;

typedef struct round_ctx {
	psf_ps *ps;
	sum_entry *sums;
	size_t n_sums, cap;
	uint32_t contributors;
	uint64_t version, step, round;
	psf_err err;
} round_ctx;

static sum_entry *
find_sum(round_ctx *c, uint64_t key)
{
	/* Binary search in the sorted array; inserts keep it sorted. */
	size_t lo = 0, hi = c->n_sums;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->sums[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < c->n_sums && c->sums[lo].key == key)
		return &c->sums[lo];
	if (c->n_sums == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		sum_entry *ns = realloc(c->sums, cap * sizeof(*ns));
		if (ns == NULL)
			return NULL;
		c->sums = ns;
		c->cap = cap;
	}
	memmove(&c->sums[lo + 1], &c->sums[lo], (c->n_sums - lo) * sizeof(*c->sums));
	c->sums[lo] = (sum_entry){key, 0, NULL};
	c->n_sums++;
	return &c->sums[lo];
}

static psf_err
sum_visit(uint64_t akey, const void *data, size_t len, void *arg)
{
	round_ctx *c = arg;
	sum_entry *e = find_sum(c, PS_ACCUM_PARAM(akey));
	size_t n = len / 4;

	if (e == NULL)
		return PSF_ENOMEM;
	if (e->v == NULL) {
		if ((e->v = malloc(n * sizeof(float))) == NULL)
			return PSF_ENOMEM;
		memcpy(e->v, data, n * 4);
		e->n = n;
		return PSF_OK;
	}
	if (e->n != n)
		return PSF_EINTERNAL;
	for (size_t j = 0; j < n; j++) {
		float g;
		memcpy(&g, (const uint8_t *)data + j * 4, 4);
		e->v[j] += g; /* worker order: deterministic */
	}
	return PSF_OK;
}

static void
free_sums(round_ctx *c)
{
	for (size_t i = 0; i < c->n_sums; i++)
		free(c->sums[i].v);
	free(c->sums);
	c->sums = NULL;
	c->n_sums = c->cap = 0;
}

static psf_err
close_round_txn(psf_store_txn *txn, void *arg)
{
	round_ctx *c = arg;
	psf_store_walk walk;
	scratch s = {0};
	psf_err err;

	free_sums(c); /* re-run after a map grow starts from scratch */
	err = psf_store_txn_walk(txn, PSF_STORE_ACCUM, 0, 0, sum_visit, c, &walk);
	for (size_t i = 0; i < c->n_sums && err == PSF_OK; i++)
		err = apply_key(c->ps, txn, &s, c->sums[i].key, c->sums[i].v, c->sums[i].n,
		    1.0 / c->contributors, c->step, false);
	scratch_fini(&s);
	if (err == PSF_OK)
		err = psf_store_txn_clear(txn, PSF_STORE_ACCUM);
	if (err == PSF_OK)
		err = psf_store_txn_meta_put_u64(txn, "version", c->version);
	if (err == PSF_OK)
		err = psf_store_txn_meta_put_u64(txn, "step", c->step);
	if (err == PSF_OK)
		err = psf_store_txn_meta_put_u64(txn, "round", c->round);
	return err;
}

/* store_failing records that closing round `round` failed with err: the node
 * turns not ready with the reason (so /healthz, Admin Health and Status, and
 * `psfleet status` and `up` show it), and the log says so once, then once per
 * PS_STORE_LOG_MS while it lasts, not once per retry. Caller holds mu. */
static void
store_failing(psf_ps *ps, int64_t round, psf_err err)
{
	uint64_t now = psf_now_ms();
	char reason[256];

	if (ps->store_err == PSF_OK) {
		ps->store_err_since_ms = now;
		ps->store_err_tries = 0;
		psf_log_err("ps",
		    "closing round %lld: %s; retrying every %d ms until it succeeds "
		    "(free space under %s if the disk is full)",
		    (long long)round, psf_strerror(err), PS_STORE_RETRY_MS, ps->node->data_dir);
		ps->store_err_log_ms = now;
	} else if (now - ps->store_err_log_ms >= PS_STORE_LOG_MS) {
		psf_log_err("ps",
		    "closing round %lld: still failing (%s) after %llu tries in %llu s",
		    (long long)round, psf_strerror(err),
		    (unsigned long long)ps->store_err_tries + 1,
		    (unsigned long long)((now - ps->store_err_since_ms) / 1000));
		ps->store_err_log_ms = now;
	}
	ps->store_err = err;
	ps->store_err_tries++;
	ps->store_retry_ms = now + PS_STORE_RETRY_MS;
	snprintf(reason, sizeof(reason),
	    "cannot write the store (%s): sync round %lld not closed "
	    "for %llu s; free space under %s",
	    psf_strerror(err), (long long)round,
	    (unsigned long long)((now - ps->store_err_since_ms) / 1000), ps->node->data_dir);
	psf_runtime_set_ready(ps->rt, false, reason);
}

/* store_recovered ends a failure recorded by store_failing. Caller holds mu. */
static void
store_recovered(psf_ps *ps, int64_t round)
{
	if (ps->store_err == PSF_OK)
		return;
	psf_log_info("ps",
	    "closing round %lld: the store writes again (after %llu failed tries "
	    "in %llu s)",
	    (long long)round, (unsigned long long)ps->store_err_tries,
	    (unsigned long long)((psf_now_ms() - ps->store_err_since_ms) / 1000));
	ps->store_err = PSF_OK;
	psf_runtime_set_ready(ps->rt, true, NULL);
}

/* round_steps: the trained steps a round closes: 1 in sync; in local mode
 * sync_every, or fewer for the run's last, shorter block (the workers announce
 * their step counts). Caller holds mu. */
static uint64_t
round_steps(const psf_ps *ps)
{
	uint64_t k = (uint64_t)psf_clock_step(&ps->cfg->consistency), total = 0;
	uint64_t round = (uint64_t)ps->round;

	for (size_t i = 0; i < ps->n_workers; i++)
		if (ps->workers[i].total_steps > total)
			total = ps->workers[i].total_steps;
	if (total == 0 || round + k <= total)
		return k;
	return total > round ? total - round : 0;
}

void
ps_close_round(psf_ps *ps)
{
	round_ctx c = {0};
	psf_err err;

	if (ps->store_err != PSF_OK && psf_now_ms() < ps->store_retry_ms)
		return; /* failing: retry at PS_STORE_RETRY_MS, not at every tick and push */
	c.ps = ps;
	for (size_t i = 0; i < ps->n_workers; i++) {
		if (ps->workers[i].clock > ps->round)
			c.contributors++;
	}
	if (c.contributors == 0)
		return;
	c.version = ps->version + 1;
	c.step = ps->step + round_steps(ps);
	c.round = (uint64_t)(ps->round + psf_clock_step(&ps->cfg->consistency));
	err = psf_store_update(ps->store, close_round_txn, &c);
	free_sums(&c);
	if (err != PSF_OK) {
		store_failing(ps, ps->round, err);
		return;
	}
	store_recovered(ps, ps->round);
	ps->version = c.version;
	ps->step = c.step;
	ps->round = (int64_t)c.round;
	ps->round_open_ms = psf_now_ms();
	psf_gauge_set(ps->g_version, (double)ps->version);
}

typedef struct read_ctx {
	psf_ps *ps;
	const uint64_t *keys;
	size_t n;
	uint32_t *lens;
	float *values;
	uint64_t version;
} read_ctx;

static psf_err
read_txn(psf_store_txn *txn, void *arg)
{
	read_ctx *c = arg;
	size_t off = 0;
	psf_err err = psf_store_txn_meta_get_u64(txn, "version", &c->version);

	if (err != PSF_OK)
		return err;
	for (size_t i = 0; i < c->n; i++) {
		size_t len = c->lens[i];
		err = psf_store_txn_get_floats(txn, PSF_STORE_WEIGHTS, c->keys[i], c->values + off,
		    len);
		if (err == PSF_ENOENT)
			err = psf_model_init_value(c->ps->model, c->keys[i], c->values + off);
		if (err != PSF_OK)
			return err;
		off += len;
	}
	return PSF_OK;
}

psf_err
ps_read_values(psf_ps *ps, const uint64_t *keys, size_t n, float **values_out, uint32_t *lens,
    size_t *n_floats_out, uint64_t *version_out)
{
	read_ctx c = {ps, keys, n, lens, NULL, 0};
	size_t total = 0;
	psf_err err;

	for (size_t i = 0; i < n; i++) {
		lens[i] = psf_model_key_len(ps->model, keys[i]);
		total += lens[i];
	}
	c.values = malloc((total > 0 ? total : 1) * sizeof(float));
	if (c.values == NULL)
		return PSF_ENOMEM;
	err = psf_store_read(ps->store, read_txn, &c);
	if (err != PSF_OK) {
		free(c.values);
		return err;
	}
	*values_out = c.values;
	*n_floats_out = total;
	*version_out = c.version;
	return PSF_OK;
}
