/* snapshot.c -- published snapshots for inferers (DESIGN.md §5).
 *
 * A snapshot is the whole shard copied out under ONE short read transaction
 * (so it is consistent and no reader stays open), tagged with the model version
 * read in the same transaction. The last PS_SNAP_RING snapshots are kept, so an
 * inferer can fetch a large one in pieces, and can ask every shard for the same
 * version (sync mode) even after a shard has moved on. */
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "ps/internal.h"

typedef struct build_ctx {
	ps_snapshot *s;
	size_t cap_keys, cap_floats;
} build_ctx;

static psf_err
grow(build_ctx *b, size_t more_floats)
{
	ps_snapshot *s = b->s;

	if (s->n_keys == b->cap_keys) {
		size_t cap = b->cap_keys ? b->cap_keys * 2 : 256;
		uint64_t *k = realloc(s->keys, cap * sizeof(*k));
		if (k == NULL)
			return PSF_ENOMEM;
		s->keys = k;
		uint32_t *l = realloc(s->lens, cap * sizeof(*l));
		if (l == NULL)
			return PSF_ENOMEM;
		s->lens = l;
		size_t *o = realloc(s->offs, cap * sizeof(*o));
		if (o == NULL)
			return PSF_ENOMEM;
		s->offs = o;
		b->cap_keys = cap;
	}
	size_t used = s->n_keys > 0 ? s->offs[s->n_keys - 1] + s->lens[s->n_keys - 1] : 0;
	if (used + more_floats > b->cap_floats) {
		size_t cap = b->cap_floats ? b->cap_floats * 2 : 65536;
		while (cap < used + more_floats)
			cap *= 2;
		float *v = realloc(s->values, cap * sizeof(float));
		if (v == NULL)
			return PSF_ENOMEM;
		s->values = v;
		b->cap_floats = cap;
	}
	return PSF_OK;
}

static psf_err
copy_visit(uint64_t key, const void *data, size_t len, void *arg)
{
	build_ctx *b = arg;
	ps_snapshot *s = b->s;
	size_t n = len / 4;
	size_t off = s->n_keys > 0 ? s->offs[s->n_keys - 1] + s->lens[s->n_keys - 1] : 0;
	psf_err err = grow(b, n);

	if (err != PSF_OK)
		return err;
	s->keys[s->n_keys] = key;
	s->lens[s->n_keys] = (uint32_t)n;
	s->offs[s->n_keys] = off;
	memcpy(s->values + off, data, n * 4);
	s->n_keys++;
	return PSF_OK;
}

static psf_err
build_txn(psf_store_txn *txn, void *arg)
{
	build_ctx *b = arg;
	psf_store_walk walk;
	psf_err err;

	b->s->n_keys = 0;
	if ((err = psf_store_txn_meta_get_u64(txn, "version", &b->s->version)) != PSF_OK)
		return err;
	if (psf_store_txn_meta_get_u64(txn, "step", &b->s->trained_steps) != PSF_OK)
		b->s->trained_steps = 0;
	return psf_store_txn_walk(txn, PSF_STORE_WEIGHTS, 0, 0, copy_visit, b, &walk);
}

static void
snap_free(ps_snapshot *s)
{
	if (s == NULL)
		return;
	free(s->keys);
	free(s->lens);
	free(s->offs);
	free(s->values);
	free(s);
}

/* publish inserts s in the ring (replacing the oldest unused one). Holds mu. */
static void
publish(psf_ps *ps, ps_snapshot *s)
{
	size_t victim = 0;

	for (size_t i = 0; i < PS_SNAP_RING; i++) {
		if (ps->snaps[i] == NULL) {
			victim = i;
			break;
		}
		if (ps->snaps[i]->version < ps->snaps[victim]->version)
			victim = i;
	}
	if (ps->snaps[victim] != NULL) {
		if (ps->snaps[victim]->refs == 0)
			snap_free(ps->snaps[victim]);
		else
			ps->snaps[victim]->refs = -ps->snaps[victim]->refs; /* freed by last put */
	}
	ps->snaps[victim] = s;
}

static ps_snapshot *
find(psf_ps *ps, uint64_t version)
{
	ps_snapshot *best = NULL;

	for (size_t i = 0; i < PS_SNAP_RING; i++) {
		ps_snapshot *s = ps->snaps[i];
		if (s == NULL)
			continue;
		if (version != 0 && s->version == version)
			return s;
		if (version == 0 && (best == NULL || s->version > best->version))
			best = s;
	}
	return version == 0 ? best : NULL;
}

psf_err
ps_snapshot_get(psf_ps *ps, uint64_t version, ps_snapshot **out)
{
	ps_snapshot *s;
	build_ctx b = {0};
	psf_err err;

	pthread_mutex_lock(&ps->mu);
	ps->snap_wanted_ms = psf_now_ms();
	s = find(ps, version);
	if (s != NULL && (version != 0 || s->version == ps->version)) {
		s->refs++;
		pthread_mutex_unlock(&ps->mu);
		*out = s;
		return PSF_OK;
	}
	pthread_mutex_unlock(&ps->mu);
	if (version != 0 && version != ps->version)
		return PSF_ENOENT;

	if ((b.s = calloc(1, sizeof(*b.s))) == NULL)
		return PSF_ENOMEM;
	err = psf_store_read(ps->store, build_txn, &b);
	if (err != PSF_OK) {
		snap_free(b.s);
		return err;
	}
	pthread_mutex_lock(&ps->mu);
	s = find(ps, b.s->version);
	if (s != NULL && s->version == b.s->version) {
		snap_free(b.s); /* another request built the same version meanwhile */
	} else {
		s = b.s;
		publish(ps, s);
	}
	s->refs++;
	pthread_mutex_unlock(&ps->mu);
	if (version != 0 && s->version != version) {
		ps_snapshot_put(ps, s);
		return PSF_ENOENT;
	}
	*out = s;
	return PSF_OK;
}

void
ps_snapshot_put(psf_ps *ps, ps_snapshot *s)
{
	bool orphan;

	pthread_mutex_lock(&ps->mu);
	if (s->refs > 0) {
		s->refs--;
		orphan = false;
	} else {
		s->refs++; /* negative: evicted from the ring while in use */
		orphan = s->refs == 0;
	}
	pthread_mutex_unlock(&ps->mu);
	if (orphan)
		snap_free(s);
}

void
ps_snapshot_free_all(psf_ps *ps)
{
	for (size_t i = 0; i < PS_SNAP_RING; i++) {
		snap_free(ps->snaps[i]);
		ps->snaps[i] = NULL;
	}
}

void
ps_snapshot_evict_all(psf_ps *ps)
{
	for (size_t i = 0; i < PS_SNAP_RING; i++) {
		ps_snapshot *s = ps->snaps[i];
		ps->snaps[i] = NULL;
		if (s == NULL)
			continue;
		if (s->refs == 0)
			snap_free(s);
		else
			s->refs = -s->refs; /* freed by its last put */
	}
}
