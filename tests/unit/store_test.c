/* store_test.c -- psf_store against a real LMDB environment in a mkdtemp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "ps/store.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

typedef struct fixture {
	char dir[256];
} fixture;

static int
setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/psf_store_test.XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fixture *f = *state;
	psf_err rv = psf_rm_rf(f->dir);

	free(f);
	return rv == PSF_OK ? 0 : -1;
}

static psf_store *
open_store(const fixture *f, psf_durability mode, uint64_t map_size)
{
	psf_store_opts o = {0};
	psf_store *st = NULL;

	o.durability = mode;
	o.map_size = map_size;
	o.interval_ms = 5;
	assert_int_equal(psf_store_open(f->dir, &o, &st), PSF_OK);
	assert_non_null(st);
	return st;
}

/* ---- small update/read bodies ------------------------------------------------ */

typedef struct kv {
	psf_store_db db;
	uint64_t key;
	const float *src; /* put */
	float *dst;       /* get */
	size_t n;
	psf_err want; /* put_fn: returned after the put (to test aborts) */
} kv;

static psf_err
put_fn(psf_store_txn *txn, void *arg)
{
	kv *a = arg;
	psf_err rv = psf_store_txn_put_floats(txn, a->db, a->key, a->src, a->n);

	return rv != PSF_OK ? rv : a->want;
}

static psf_err
get_fn(psf_store_txn *txn, void *arg)
{
	kv *a = arg;

	return psf_store_txn_get_floats(txn, a->db, a->key, a->dst, a->n);
}

static psf_err
put_floats(psf_store *st, psf_store_db db, uint64_t key, const float *src, size_t n)
{
	kv a = {db, key, src, NULL, n, PSF_OK};

	return psf_store_update(st, put_fn, &a);
}

static psf_err
get_floats(psf_store *st, psf_store_db db, uint64_t key, float *dst, size_t n)
{
	kv a = {db, key, NULL, dst, n, PSF_OK};

	return psf_store_read(st, get_fn, &a);
}

static void
test_store_put_get_overwrite_delete(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_NONE, 0);
	const float a[3] = {1.5f, -2.0f, 3.25f}, b[5] = {9, 8, 7, 6, 5};
	float out[5] = {0};

	assert_int_equal(put_floats(st, PSF_STORE_WEIGHTS, 7, a, 3), PSF_OK);
	assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 7, out, 3), PSF_OK);
	assert_memory_equal(out, a, sizeof(a));
	/* same key in another db is a different entry */
	assert_int_equal(get_floats(st, PSF_STORE_OPTSTATE, 7, out, 3), PSF_ENOENT);

	/* overwrite with a longer value; a length mismatch is ERANGE, dst untouched */
	assert_int_equal(put_floats(st, PSF_STORE_WEIGHTS, 7, b, 5), PSF_OK);
	memset(out, 0, sizeof(out));
	assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 7, out, 3), PSF_ERANGE);
	assert_true(out[0] == 0.0f);
	assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 7, out, 5), PSF_OK);
	assert_memory_equal(out, b, sizeof(b));

	assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 8, out, 5), PSF_ENOENT);
	psf_store_close(st);
}

static psf_err
del_fn(psf_store_txn *txn, void *arg)
{
	const uint64_t *key = arg;

	return psf_store_txn_del(txn, PSF_STORE_WEIGHTS, *key);
}

static psf_err
reserve_fn(psf_store_txn *txn, void *arg)
{
	const float v[2] = {4.0f, 5.0f};
	void *buf;
	psf_err rv;

	(void)arg;
	if ((rv = psf_store_txn_put_reserve(txn, PSF_STORE_WEIGHTS, 11, sizeof(v), &buf)) != 0)
		return rv;
	memcpy(buf, v, sizeof(v));
	return PSF_OK;
}

static psf_err
borrow_fn(psf_store_txn *txn, void *arg)
{
	const void *data;
	size_t len;
	psf_err rv;

	(void)arg;
	if ((rv = psf_store_txn_get(txn, PSF_STORE_WEIGHTS, 11, &data, &len)) != PSF_OK)
		return rv;
	if (len != 2 * sizeof(float))
		return PSF_ERANGE;
	return PSF_OK;
}

static void
test_store_reserve_and_delete(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_NONE, 0);
	float out[2];
	uint64_t key = 11;

	assert_int_equal(psf_store_update(st, reserve_fn, NULL), PSF_OK);
	assert_int_equal(psf_store_read(st, borrow_fn, NULL), PSF_OK);
	assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 11, out, 2), PSF_OK);
	assert_true(out[0] == 4.0f && out[1] == 5.0f);
	assert_int_equal(psf_store_update(st, del_fn, &key), PSF_OK);
	assert_int_equal(psf_store_read(st, borrow_fn, NULL), PSF_ENOENT);
	/* deleting a missing key reports ENOENT and aborts nothing else */
	assert_int_equal(psf_store_update(st, del_fn, &key), PSF_ENOENT);
	psf_store_close(st);
}

/* ---- rewrite ---------------------------------------------------------------- */

#define RW_BIG (300 * KIB / 4) /* floats: a value on overflow pages */
#define RW_SMALL 3             /* floats: a value inside a leaf page */

typedef struct rw_case {
	psf_durability mode;
	psf_err want; /* returned by the update after the rewrites */
} rw_case;

/* rw_one rewrites key (n floats) to twice its value, reading the old value
 * where the store hands it out, and checks old and new either coincide or do
 * not overlap at all. */
static psf_err
rw_one(psf_store_txn *txn, uint64_t key, size_t n)
{
	const void *old = NULL;
	void *dst = NULL;
	psf_err rv = psf_store_txn_rewrite(txn, PSF_STORE_WEIGHTS, key, n * 4, &old, &dst);
	const unsigned char *o;
	unsigned char *d;

	if (rv != PSF_OK)
		return rv;
	o = old;
	d = dst;
	assert_true(o == d || o + n * 4 <= d || d + n * 4 <= o);
	for (size_t i = 0; i < n; i++) {
		float v;

		memcpy(&v, o + i * 4, 4);
		v *= 2.0f;
		memcpy(d + i * 4, &v, 4);
	}
	return PSF_OK;
}

static psf_err
rewrite_fn(psf_store_txn *txn, void *arg)
{
	rw_case *c = arg;
	const void *old = NULL;
	void *dst = NULL;
	psf_err rv;

	/* errors reserve nothing: the values stay */
	assert_int_equal(psf_store_txn_rewrite(txn, PSF_STORE_WEIGHTS, 99, 4, &old, &dst),
	    PSF_ENOENT);
	assert_int_equal(psf_store_txn_rewrite(txn, PSF_STORE_WEIGHTS, 1, 8, &old, &dst),
	    PSF_ERANGE);
	assert_int_equal(psf_store_txn_rewrite(txn, PSF_STORE_N_DBS, 1, 4, &old, &dst), PSF_EINVAL);
	assert_int_equal(psf_store_txn_rewrite(txn, PSF_STORE_WEIGHTS, 1, 4, NULL, &dst),
	    PSF_EINVAL);
	if (c->mode != PSF_DUR_INTERVAL) { /* no MDB_WRITEMAP: the caller must copy */
		assert_int_equal(
		    psf_store_txn_rewrite(txn, PSF_STORE_WEIGHTS, 1, RW_BIG * 4, &old, &dst),
		    PSF_ESTATE);
		return c->want;
	}
	/* twice in one txn: the second time in place, on the pages of the first */
	for (int round = 0; round < 2; round++) {
		if ((rv = rw_one(txn, 1, RW_BIG)) != PSF_OK ||
		    (rv = rw_one(txn, 2, RW_SMALL)) != PSF_OK)
			return rv;
	}
	return c->want;
}

static void
test_store_rewrite_reads_old_writes_new(void **state)
{
	fixture *f = *state;
	const psf_durability modes[] = {PSF_DUR_INTERVAL, PSF_DUR_EVERY_COMMIT, PSF_DUR_NONE};
	float *big = malloc(RW_BIG * sizeof(float)), *out = malloc(RW_BIG * sizeof(float));
	const float small[RW_SMALL] = {1.5f, -2.0f, 3.25f};
	float sout[RW_SMALL];

	assert_non_null(big);
	assert_non_null(out);
	for (size_t i = 0; i < RW_BIG; i++)
		big[i] = (float)i;
	for (size_t m = 0; m < PSF_ARRAY_LEN(modes); m++) {
		psf_store *st = open_store(f, modes[m], 0);
		rw_case c = {modes[m], PSF_ESTATE};
		float factor;

		assert_int_equal(put_floats(st, PSF_STORE_WEIGHTS, 1, big, RW_BIG), PSF_OK);
		assert_int_equal(put_floats(st, PSF_STORE_WEIGHTS, 2, small, RW_SMALL), PSF_OK);
		/* an aborted rewrite leaves the committed values */
		assert_int_equal(psf_store_update(st, rewrite_fn, &c), PSF_ESTATE);
		assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 1, out, RW_BIG), PSF_OK);
		assert_memory_equal(out, big, RW_BIG * sizeof(float));
		c.want = PSF_OK;
		assert_int_equal(psf_store_update(st, rewrite_fn, &c), PSF_OK);
		factor = modes[m] == PSF_DUR_INTERVAL ? 4.0f : 1.0f;
		assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 1, out, RW_BIG), PSF_OK);
		for (size_t i = 0; i < RW_BIG; i++)
			assert_true(out[i] == big[i] * factor);
		assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 2, sout, RW_SMALL), PSF_OK);
		for (size_t i = 0; i < RW_SMALL; i++)
			assert_true(sout[i] == small[i] * factor);
		psf_store_close(st);
		assert_int_equal(psf_rm_rf(f->dir), PSF_OK);
		assert_int_equal(mkdir(f->dir, 0700), 0);
	}
	free(big);
	free(out);
}

static void
test_store_failed_update_keeps_nothing(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_NONE, 0);
	const float v[1] = {1.0f};
	kv a = {PSF_STORE_WEIGHTS, 1, v, NULL, 1, PSF_EPROTO};
	float out[1];

	assert_int_equal(psf_store_update(st, put_fn, &a), PSF_EPROTO);
	assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 1, out, 1), PSF_ENOENT);
	psf_store_close(st);
}

static void
test_store_write_in_read_txn_rejected(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_NONE, 0);
	const float v[1] = {1.0f};
	kv a = {PSF_STORE_WEIGHTS, 1, v, NULL, 1, PSF_OK};

	assert_int_equal(psf_store_read(st, put_fn, &a), PSF_EINVAL);
	assert_int_equal(psf_store_read(st, reserve_fn, NULL), PSF_EINVAL);
	a.db = (psf_store_db)PSF_STORE_N_DBS; /* not a uint64 db */
	assert_int_equal(psf_store_update(st, put_fn, &a), PSF_EINVAL);
	psf_store_close(st);
}

/* ---- map growth -------------------------------------------------------------- */

#define BIG_KEYS 64
#define BIG_FLOATS (16 * 1024) /* 64 KiB per key, 4 MiB per update */

typedef struct big_arg {
	float *buf;
	int calls;
} big_arg;

/* big_fn adds 1 to accum[0] and writes 4 MiB of weights: re-running it after an
 * abort must not add twice. */
static psf_err
big_fn(psf_store_txn *txn, void *arg)
{
	big_arg *b = arg;
	float count = 0;
	psf_err rv;

	b->calls++;
	rv = psf_store_txn_get_floats(txn, PSF_STORE_ACCUM, 0, &count, 1);
	if (rv != PSF_OK && rv != PSF_ENOENT)
		return rv;
	count += 1.0f;
	if ((rv = psf_store_txn_put_floats(txn, PSF_STORE_ACCUM, 0, &count, 1)) != PSF_OK)
		return rv;
	for (uint64_t k = 0; k < BIG_KEYS; k++) {
		b->buf[0] = (float)k;
		rv = psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, k, b->buf, BIG_FLOATS);
		if (rv != PSF_OK)
			return rv;
	}
	return PSF_OK;
}

static void
test_store_update_retried_after_map_full(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_INTERVAL, 64 * KIB);
	big_arg b = {calloc(BIG_FLOATS, sizeof(float)), 0};
	float *out = calloc(BIG_FLOATS, sizeof(float));
	psf_store_info info;
	float count = 0;

	assert_non_null(b.buf);
	assert_non_null(out);
	for (int i = 1; i < BIG_FLOATS; i++)
		b.buf[i] = (float)i;
	assert_int_equal(psf_store_update(st, big_fn, &b), PSF_OK);
	assert_true(b.calls >= 2); /* 64 KiB cannot hold 4 MiB: at least one retry */
	assert_int_equal(psf_store_stats(st, &info), PSF_OK);
	assert_true(info.grows >= 1);
	assert_int_equal(info.retries, (uint64_t)(b.calls - 1));
	assert_true(info.map_bytes >= 4 * MIB);
	assert_int_equal(info.entries[PSF_STORE_WEIGHTS], BIG_KEYS);
	assert_int_equal(get_floats(st, PSF_STORE_ACCUM, 0, &count, 1), PSF_OK);
	assert_true(count == 1.0f); /* the aborted attempts left no trace */
	psf_store_close(st);

	/* reopening with the tiny initial size keeps the grown map and the data */
	st = open_store(f, PSF_DUR_EVERY_COMMIT, 64 * KIB);
	for (uint64_t k = 0; k < BIG_KEYS; k++) {
		assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, k, out, BIG_FLOATS), PSF_OK);
		assert_true(out[0] == (float)k);
		assert_true(out[BIG_FLOATS - 1] == (float)(BIG_FLOATS - 1));
	}
	b.calls = 0;
	assert_int_equal(psf_store_update(st, big_fn, &b), PSF_OK);
	assert_int_equal(get_floats(st, PSF_STORE_ACCUM, 0, &count, 1), PSF_OK);
	assert_true(count == 2.0f);
	psf_store_close(st);
	free(out);
	free(b.buf);
}

static void
test_store_map_capped_at_max_gives_enospc(void **state)
{
	fixture *f = *state;
	psf_store_opts o = {0};
	psf_store *st = NULL;
	big_arg b = {calloc(BIG_FLOATS, sizeof(float)), 0};
	const float one[1] = {1.0f};
	float out[1];

	assert_non_null(b.buf);
	o.durability = PSF_DUR_NONE;
	o.map_size = 64 * KIB;
	o.max_map_size = 512 * KIB;
	assert_int_equal(psf_store_open(f->dir, &o, &st), PSF_OK);
	assert_int_equal(psf_store_update(st, big_fn, &b), PSF_ENOSPC);
	assert_int_equal(get_floats(st, PSF_STORE_ACCUM, 0, out, 1), PSF_ENOENT);
	/* still usable for what fits */
	assert_int_equal(put_floats(st, PSF_STORE_WEIGHTS, 3, one, 1), PSF_OK);
	assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 3, out, 1), PSF_OK);
	psf_store_close(st);
	free(b.buf);
}

/* ---- concurrent readers ------------------------------------------------------ */

#define ATOM_KEYS 16
#define ATOM_FLOATS 512
#define ATOM_ROUNDS 300

typedef struct atom_ctx {
	psf_store *st;
	uint32_t round; /* written by the writer thread's update fn */
	int writer_err;
	volatile int done; /* set by the writer when finished; read by readers */
	float buf[ATOM_FLOATS];
} atom_ctx;

static psf_err
atom_write_fn(psf_store_txn *txn, void *arg)
{
	atom_ctx *c = arg;
	psf_err rv;

	/* every key gets the round number: a reader must never see a mix */
	for (int i = 0; i < ATOM_FLOATS; i++)
		c->buf[i] = (float)c->round;
	for (uint64_t k = 0; k < ATOM_KEYS; k++) {
		uint64_t key = (k << 48) | (k * 977); /* spread over tensors */

		rv = psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, key, c->buf, ATOM_FLOATS);
		if (rv != PSF_OK)
			return rv;
	}
	return psf_store_txn_meta_put_u64(txn, "version", c->round);
}

static void *
atom_writer(void *arg)
{
	atom_ctx *c = arg;

	for (c->round = 1; c->round <= ATOM_ROUNDS && c->writer_err == 0; c->round++)
		c->writer_err = psf_store_update(c->st, atom_write_fn, c);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

typedef struct atom_read {
	uint64_t version;
	int mixed;
} atom_read;

static psf_err
atom_read_fn(psf_store_txn *txn, void *arg)
{
	atom_read *r = arg;
	float v[ATOM_FLOATS];
	psf_err rv;

	rv = psf_store_txn_meta_get_u64(txn, "version", &r->version);
	if (rv == PSF_ENOENT) {
		r->version = 0;
		return PSF_OK;
	}
	if (rv != PSF_OK)
		return rv;
	for (uint64_t k = 0; k < ATOM_KEYS; k++) {
		uint64_t key = (k << 48) | (k * 977);

		rv = psf_store_txn_get_floats(txn, PSF_STORE_WEIGHTS, key, v, ATOM_FLOATS);
		if (rv != PSF_OK)
			return rv;
		for (int i = 0; i < ATOM_FLOATS; i++)
			if (v[i] != (float)r->version)
				r->mixed++;
	}
	return PSF_OK;
}

static void *
atom_reader(void *arg)
{
	atom_ctx *c = arg;
	uint64_t last = 0;
	intptr_t bad = 0;

	while (!__atomic_load_n(&c->done, __ATOMIC_ACQUIRE) && bad == 0) {
		atom_read r = {0, 0};

		if (psf_store_read(c->st, atom_read_fn, &r) != PSF_OK || r.mixed != 0 ||
		    r.version < last)
			bad = 1;
		last = r.version;
	}
	return (void *)bad;
}

static void
test_store_read_sees_multi_key_write_atomically(void **state)
{
	fixture *f = *state;
	atom_ctx *c = calloc(1, sizeof(*c));
	pthread_t w, r1, r2;
	void *bad1, *bad2;
	atom_read final = {0, 0};

	assert_non_null(c);
	/* a small map makes the writer grow it while readers are active */
	c->st = open_store(f, PSF_DUR_INTERVAL, 64 * KIB);
	assert_int_equal(pthread_create(&r1, NULL, atom_reader, c), 0);
	assert_int_equal(pthread_create(&r2, NULL, atom_reader, c), 0);
	assert_int_equal(pthread_create(&w, NULL, atom_writer, c), 0);
	pthread_join(w, NULL);
	pthread_join(r1, &bad1);
	pthread_join(r2, &bad2);
	assert_int_equal(c->writer_err, PSF_OK);
	assert_null(bad1);
	assert_null(bad2);
	assert_int_equal(psf_store_read(c->st, atom_read_fn, &final), PSF_OK);
	assert_int_equal(final.version, ATOM_ROUNDS);
	assert_int_equal(final.mixed, 0);
	psf_store_close(c->st);
	free(c);
}

/* ---- walking in pieces --------------------------------------------------------- */

#define WALK_KEYS 1000

static uint64_t
walk_key(size_t i)
{
	/* unsorted insertion order, keys spread over tensors and the full range */
	uint64_t x = (uint64_t)((i * 7919u) % WALK_KEYS);

	return ((x % 7) << 48) | ((x + 1) * 0x9e3779b9u); /* never 0 or UINT64_MAX */
}

static psf_err
walk_fill_fn(psf_store_txn *txn, void *arg)
{
	float v[40];
	psf_err rv;

	(void)arg;
	for (size_t i = 0; i < WALK_KEYS; i++) {
		uint64_t key = walk_key(i);
		size_t n = 1 + key % 40; /* varying value sizes */

		for (size_t j = 0; j < n; j++)
			v[j] = (float)(key & 0xffff);
		if ((rv = psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, key, v, n)) != 0)
			return rv;
	}
	/* the extremes of the key space */
	if ((rv = psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, 0, v, 1)) != PSF_OK)
		return rv;
	return psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, UINT64_MAX, v, 40);
}

typedef struct walk_ctx {
	uint64_t *seen;
	size_t n_seen;
	uint64_t start;
	size_t budget;
	psf_store_walk w;
	int bad_value;
} walk_ctx;

static psf_err
walk_visit(uint64_t key, const void *data, size_t len, void *arg)
{
	walk_ctx *c = arg;
	float first;

	if (len == 0 || len % sizeof(float) != 0 || c->n_seen >= WALK_KEYS + 2)
		return PSF_EINTERNAL;
	memcpy(&first, data, sizeof(first));
	if (key != 0 && key != UINT64_MAX &&
	    (len != (1 + key % 40) * sizeof(float) || first != (float)(key & 0xffff)))
		c->bad_value++;
	c->seen[c->n_seen++] = key;
	return PSF_OK;
}

static psf_err
walk_piece_fn(psf_store_txn *txn, void *arg)
{
	walk_ctx *c = arg;

	return psf_store_txn_walk(txn, PSF_STORE_WEIGHTS, c->start, c->budget, walk_visit, c,
	    &c->w);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_store_walk_with_budget_returns_every_key_once_in_order(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_NONE, 0);
	uint64_t *want = calloc(WALK_KEYS + 2, sizeof(uint64_t));
	walk_ctx c = {calloc(WALK_KEYS + 2, sizeof(uint64_t)), 0, 0, 300, {0}, 0};
	size_t pieces = 0;

	assert_non_null(want);
	assert_non_null(c.seen);
	assert_int_equal(psf_store_update(st, walk_fill_fn, NULL), PSF_OK);
	for (size_t i = 0; i < WALK_KEYS; i++)
		want[i] = walk_key(i);
	want[WALK_KEYS] = 0;
	want[WALK_KEYS + 1] = UINT64_MAX;
	qsort(want, WALK_KEYS + 2, sizeof(uint64_t), cmp_u64);

	do {
		size_t before = c.n_seen;

		assert_int_equal(psf_store_read(st, walk_piece_fn, &c), PSF_OK);
		assert_int_equal(c.w.n_keys, c.n_seen - before);
		assert_true(c.w.n_keys >= 1);
		assert_true(c.w.n_bytes <= c.budget || c.w.n_keys == 1);
		c.start = c.w.next_key;
		pieces++;
	} while (!c.w.done);

	assert_true(pieces > 10); /* the budget really split the walk */
	assert_int_equal(c.n_seen, WALK_KEYS + 2);
	assert_memory_equal(c.seen, want, (WALK_KEYS + 2) * sizeof(uint64_t));
	assert_int_equal(c.bad_value, 0);

	/* a budget smaller than one value still makes progress, one key a piece */
	c.n_seen = 0;
	c.start = UINT64_MAX - 1;
	c.budget = 4;
	assert_int_equal(psf_store_read(st, walk_piece_fn, &c), PSF_OK);
	assert_int_equal(c.w.n_keys, 1);
	assert_true(c.w.done);
	assert_true(c.seen[0] == UINT64_MAX);

	/* no limit: everything in one piece */
	c.n_seen = 0;
	c.start = 0;
	c.budget = 0;
	assert_int_equal(psf_store_read(st, walk_piece_fn, &c), PSF_OK);
	assert_true(c.w.done);
	assert_int_equal(c.n_seen, WALK_KEYS + 2);
	psf_store_close(st);
	free(c.seen);
	free(want);
}

static psf_err
stop_visit(uint64_t key, const void *data, size_t len, void *arg)
{
	int *n = arg;

	(void)key;
	(void)data;
	(void)len;
	return ++*n == 3 ? PSF_ECLOSED : PSF_OK;
}

static psf_err
stop_walk_fn(psf_store_txn *txn, void *arg)
{
	psf_store_walk w;

	return psf_store_txn_walk(txn, PSF_STORE_WEIGHTS, 0, 0, stop_visit, arg, &w);
}

static void
test_store_walk_stops_on_visitor_error(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_NONE, 0);
	int n = 0;

	assert_int_equal(psf_store_update(st, walk_fill_fn, NULL), PSF_OK);
	assert_int_equal(psf_store_read(st, stop_walk_fn, &n), PSF_ECLOSED);
	assert_int_equal(n, 3);
	psf_store_close(st);
}

/* ---- meta, pushlog, accum ---------------------------------------------------- */

static psf_err
meta_write_fn(psf_store_txn *txn, void *arg)
{
	static const char blob[] = "fingerprint-0123";
	psf_err rv;

	(void)arg;
	if ((rv = psf_store_txn_meta_put_u64(txn, "model_version", 42)) != PSF_OK ||
	    (rv = psf_store_txn_meta_put(txn, "fingerprint", blob, sizeof(blob))) != PSF_OK ||
	    (rv = psf_store_txn_meta_put(txn, "gone", "x", 1)) != PSF_OK ||
	    (rv = psf_store_txn_meta_del(txn, "gone")) != PSF_OK ||
	    (rv = psf_store_txn_pushlog_put(txn, "trainer-1", 7)) != PSF_OK ||
	    (rv = psf_store_txn_pushlog_put(txn, "trainer-0", 3)) != PSF_OK ||
	    (rv = psf_store_txn_pushlog_put(txn, "trainer-0", 5)) != PSF_OK)
		return rv;
	return PSF_OK;
}

typedef struct plog {
	char ids[4][32];
	uint64_t seqs[4];
	int n;
} plog;

static psf_err
plog_visit(const char *worker, uint64_t seq, void *arg)
{
	plog *p = arg;

	if (p->n >= 4)
		return PSF_EINTERNAL;
	snprintf(p->ids[p->n], sizeof(p->ids[0]), "%s", worker);
	p->seqs[p->n++] = seq;
	return PSF_OK;
}

static psf_err
meta_check_fn(psf_store_txn *txn, void *arg)
{
	plog *p = arg;
	const void *data;
	size_t len;
	uint64_t v = 0;
	char long_name[512];

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(psf_store_txn_meta_get_u64(txn, "model_version", &v), PSF_OK);
	assert_int_equal(v, 42);
	assert_int_equal(psf_store_txn_meta_get(txn, "fingerprint", &data, &len), PSF_OK);
	assert_int_equal(len, sizeof("fingerprint-0123"));
	assert_memory_equal(data, "fingerprint-0123", len);
	assert_int_equal(psf_store_txn_meta_get_u64(txn, "fingerprint", &v), PSF_ERANGE);
	assert_int_equal(psf_store_txn_meta_get(txn, "gone", &data, &len), PSF_ENOENT);
	assert_int_equal(psf_store_txn_meta_get(txn, "", &data, &len), PSF_EINVAL);
	assert_int_equal(psf_store_txn_meta_get(txn, NULL, &data, &len), PSF_EINVAL);
	assert_int_equal(psf_store_txn_meta_get(txn, long_name, &data, &len), PSF_EINVAL);

	assert_int_equal(psf_store_txn_pushlog_get(txn, "trainer-0", &v), PSF_OK);
	assert_int_equal(v, 5);
	assert_int_equal(psf_store_txn_pushlog_get(txn, "trainer-9", &v), PSF_ENOENT);
	return psf_store_txn_pushlog_foreach(txn, plog_visit, p);
}

static void
test_store_meta_and_pushlog_persist_across_reopen(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_INTERVAL, 0);
	plog p;

	assert_int_equal(psf_store_update(st, meta_write_fn, NULL), PSF_OK);
	psf_store_close(st);

	st = open_store(f, PSF_DUR_INTERVAL, 0);
	memset(&p, 0, sizeof(p));
	assert_int_equal(psf_store_read(st, meta_check_fn, &p), PSF_OK);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.ids[0], "trainer-0");
	assert_int_equal(p.seqs[0], 5);
	assert_string_equal(p.ids[1], "trainer-1");
	assert_int_equal(p.seqs[1], 7);
	psf_store_close(st);
}

static psf_err
prefix_write_fn(psf_store_txn *txn, void *arg)
{
	/* "report;" sorts right after the "report:" names, "reports" and
	 * "reduce:a" around them: none may be visited. */
	static const char *const names[] = {"report:b", "reduce:a", "reports", "report;",
	    "report:a", "repo", "report:c"};
	psf_err rv = PSF_OK;

	(void)arg;
	for (size_t i = 0; i < PSF_ARRAY_LEN(names) && rv == PSF_OK; i++)
		rv = psf_store_txn_meta_put(txn, names[i], names[i], strlen(names[i]));
	return rv;
}

typedef struct prefix_seen {
	char names[4][32];
	size_t n;
	size_t stop_after; /* 0 = never stop */
} prefix_seen;

static psf_err
prefix_visit(const char *name, const void *data, size_t len, void *arg)
{
	prefix_seen *p = arg;

	if (p->n >= PSF_ARRAY_LEN(p->names))
		return PSF_EINTERNAL;
	/* the value is the name itself (see prefix_write_fn) */
	if (len != strlen(name) || memcmp(data, name, len) != 0)
		return PSF_ERANGE;
	snprintf(p->names[p->n], sizeof(p->names[0]), "%s", name);
	if (++p->n == p->stop_after)
		return PSF_ECLOSED;
	return PSF_OK;
}

typedef struct prefix_walk {
	const char *prefix;
	prefix_seen seen;
} prefix_walk;

static psf_err
prefix_read_fn(psf_store_txn *txn, void *arg)
{
	prefix_walk *w = arg;

	return psf_store_txn_meta_foreach(txn, w->prefix, prefix_visit, &w->seen);
}

/* A meta prefix walk visits exactly the names with the prefix, in byte order,
 * also after a reopen; a visitor's error stops it; bad arguments are refused. */
static void
test_store_meta_foreach_visits_prefix_in_order(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_EVERY_COMMIT, 0);
	prefix_walk w = {.prefix = "report:"};

	assert_int_equal(psf_store_read(st, prefix_read_fn, &w), PSF_OK);
	assert_int_equal(w.seen.n, 0); /* empty store */
	assert_int_equal(psf_store_update(st, prefix_write_fn, NULL), PSF_OK);
	psf_store_close(st);

	st = open_store(f, PSF_DUR_EVERY_COMMIT, 0);
	assert_int_equal(psf_store_read(st, prefix_read_fn, &w), PSF_OK);
	assert_int_equal(w.seen.n, 3);
	assert_string_equal(w.seen.names[0], "report:a");
	assert_string_equal(w.seen.names[1], "report:b");
	assert_string_equal(w.seen.names[2], "report:c");

	w = (prefix_walk){.prefix = "report:", .seen = {.stop_after = 2}};
	assert_int_equal(psf_store_read(st, prefix_read_fn, &w), PSF_ECLOSED);
	assert_int_equal(w.seen.n, 2);

	w = (prefix_walk){.prefix = "zzz"}; /* past the last name */
	assert_int_equal(psf_store_read(st, prefix_read_fn, &w), PSF_OK);
	assert_int_equal(w.seen.n, 0);
	w = (prefix_walk){.prefix = ""};
	assert_int_equal(psf_store_read(st, prefix_read_fn, &w), PSF_EINVAL);
	w = (prefix_walk){.prefix = NULL};
	assert_int_equal(psf_store_read(st, prefix_read_fn, &w), PSF_EINVAL);
	psf_store_close(st);
}

static psf_err
accum_fill_fn(psf_store_txn *txn, void *arg)
{
	const float g[2] = {0.5f, 0.25f};
	psf_err rv;

	(void)arg;
	for (uint64_t k = 0; k < 10; k++)
		if ((rv = psf_store_txn_put_floats(txn, PSF_STORE_ACCUM, k, g, 2)) != PSF_OK)
			return rv;
	return psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, 0, g, 2);
}

static psf_err
accum_clear_fn(psf_store_txn *txn, void *arg)
{
	uint64_t *counts = arg;
	psf_err rv;

	if ((rv = psf_store_txn_count(txn, PSF_STORE_ACCUM, &counts[0])) != PSF_OK ||
	    (rv = psf_store_txn_clear(txn, PSF_STORE_ACCUM)) != PSF_OK ||
	    (rv = psf_store_txn_count(txn, PSF_STORE_ACCUM, &counts[1])) != PSF_OK)
		return rv;
	return psf_store_txn_count(txn, PSF_STORE_WEIGHTS, &counts[2]);
}

static void
test_store_clear_empties_only_that_db(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_NONE, 0);
	uint64_t counts[3] = {0};
	psf_store_info info;

	assert_int_equal(psf_store_update(st, accum_fill_fn, NULL), PSF_OK);
	assert_int_equal(psf_store_update(st, accum_clear_fn, counts), PSF_OK);
	assert_int_equal(counts[0], 10);
	assert_int_equal(counts[1], 0);
	assert_int_equal(counts[2], 1);
	assert_int_equal(psf_store_stats(st, &info), PSF_OK);
	assert_int_equal(info.entries[PSF_STORE_ACCUM], 0);
	assert_int_equal(info.entries[PSF_STORE_WEIGHTS], 1);
	assert_true(info.used_bytes > 0 && info.used_bytes <= info.map_bytes);
	assert_true(info.file_bytes > 0);
	psf_store_close(st);
}

/* ---- durability -------------------------------------------------------------- */

static void
test_store_every_durability_mode_persists(void **state)
{
	fixture *f = *state;
	const psf_durability modes[] = {PSF_DUR_INTERVAL, PSF_DUR_EVERY_COMMIT, PSF_DUR_NONE};
	float out[4];

	for (size_t m = 0; m < PSF_ARRAY_LEN(modes); m++) {
		psf_store *st = open_store(f, modes[m], 0);
		const float v[4] = {(float)m, 1, 2, 3};

		assert_int_equal(put_floats(st, PSF_STORE_WEIGHTS, 100 + m, v, 4), PSF_OK);
		assert_int_equal(psf_store_sync(st), PSF_OK);
		psf_store_close(st);

		/* reopen in the next mode: every earlier mode's write is there */
		st = open_store(f, modes[(m + 1) % PSF_ARRAY_LEN(modes)], 0);
		for (size_t j = 0; j <= m; j++) {
			assert_int_equal(get_floats(st, PSF_STORE_WEIGHTS, 100 + j, out, 4),
			    PSF_OK);
			assert_true(out[0] == (float)j && out[3] == 3.0f);
		}
		psf_store_close(st);
	}
}

static void
test_store_interval_mode_syncs_in_background(void **state)
{
	fixture *f = *state;
	psf_store *st = open_store(f, PSF_DUR_INTERVAL, 0); /* interval 5 ms */
	const float v[1] = {1.0f};
	psf_store_info info = {0};
	uint64_t deadline = psf_now_ms() + 30000; /* liveness bound, not a speed check */

	assert_int_equal(put_floats(st, PSF_STORE_WEIGHTS, 1, v, 1), PSF_OK);
	do {
		psf_sleep_ms(5);
		assert_int_equal(psf_store_stats(st, &info), PSF_OK);
	} while (info.syncs == 0 && psf_now_ms() < deadline);
	assert_true(info.syncs >= 1);
	psf_store_close(st);
}

typedef struct seq_arg {
	uint64_t seq;
} seq_arg;

static psf_err
seq_write_fn(psf_store_txn *txn, void *arg)
{
	seq_arg *a = arg;
	float v[256];
	psf_err rv;

	for (int i = 0; i < 256; i++)
		v[i] = (float)a->seq;
	if ((rv = psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, a->seq, v, 256)) != 0 ||
	    (rv = psf_store_txn_pushlog_put(txn, "child", a->seq)) != PSF_OK)
		return rv;
	return PSF_OK;
}

/* child_main runs in the forked child: it owns the only environment handle,
 * reports each committed seq on fd and is SIGKILLed mid-stream. */
static void
child_main(const char *dir, int fd)
{
	psf_store_opts o = {0};
	psf_store *st = NULL;

	o.durability = PSF_DUR_EVERY_COMMIT;
	if (psf_store_open(dir, &o, &st) != PSF_OK)
		_exit(2);
	for (seq_arg a = {1};; a.seq++) {
		if (psf_store_update(st, seq_write_fn, &a) != PSF_OK)
			_exit(3);
		if (write(fd, &a.seq, sizeof(a.seq)) != (ssize_t)sizeof(a.seq))
			_exit(4);
	}
}

static psf_err
seq_check_fn(psf_store_txn *txn, void *arg)
{
	const uint64_t *acked = arg;
	uint64_t logged = 0;
	float v[256];
	psf_err rv;

	if ((rv = psf_store_txn_pushlog_get(txn, "child", &logged)) != PSF_OK)
		return rv;
	if (logged < *acked)
		return PSF_ERANGE; /* an acknowledged commit was lost */
	for (uint64_t s = 1; s <= logged; s++) {
		if ((rv = psf_store_txn_get_floats(txn, PSF_STORE_WEIGHTS, s, v, 256)) != 0)
			return rv;
		if (v[0] != (float)s || v[255] != (float)s)
			return PSF_ESTORE;
	}
	return PSF_OK;
}

static void
test_store_every_commit_survives_sigkill(void **state)
{
	fixture *f = *state;
	int fds[2];
	pid_t pid;
	uint64_t acked = 0, seq;
	int status;
	psf_store *st;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_main(f->dir, fds[1]);
		_exit(5);
	}
	close(fds[1]);
	while (acked < 20 && read(fds[0], &seq, sizeof(seq)) == (ssize_t)sizeof(seq))
		acked = seq;
	kill(pid, SIGKILL); /* right after an acknowledged commit, mid-way through others */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(fds[0]);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(acked, 20);

	st = open_store(f, PSF_DUR_EVERY_COMMIT, 0);
	assert_int_equal(psf_store_read(st, seq_check_fn, &acked), PSF_OK);
	psf_store_close(st);
}

/* ---- argument checking ----------------------------------------------------------- */

static psf_err
noop_fn(psf_store_txn *txn, void *arg)
{
	(void)txn;
	(void)arg;
	return PSF_OK;
}

static void
test_store_bad_arguments_are_rejected(void **state)
{
	fixture *f = *state;
	psf_store_opts o = {0};
	psf_store *st = NULL;
	psf_store_info info;

	assert_int_equal(psf_store_open(NULL, NULL, &st), PSF_EINVAL);
	assert_int_equal(psf_store_open("", NULL, &st), PSF_EINVAL);
	assert_int_equal(psf_store_open(f->dir, NULL, NULL), PSF_EINVAL);
	o.durability = (psf_durability)7;
	assert_int_equal(psf_store_open(f->dir, &o, &st), PSF_EINVAL);
	o.durability = PSF_DUR_NONE;
	o.map_size = 8 * MIB;
	o.max_map_size = 1 * MIB;
	assert_int_equal(psf_store_open(f->dir, &o, &st), PSF_EINVAL);
	assert_null(st);
	psf_store_close(NULL);

	st = open_store(f, PSF_DUR_NONE, 0);
	assert_int_equal(psf_store_update(st, NULL, NULL), PSF_EINVAL);
	assert_int_equal(psf_store_update(NULL, noop_fn, NULL), PSF_EINVAL);
	assert_int_equal(psf_store_read(st, NULL, NULL), PSF_EINVAL);
	assert_int_equal(psf_store_stats(st, NULL), PSF_EINVAL);
	assert_int_equal(psf_store_sync(NULL), PSF_EINVAL);
	assert_int_equal(psf_store_update(st, noop_fn, NULL), PSF_OK);
	assert_int_equal(psf_store_stats(st, &info), PSF_OK);
	psf_store_close(st);
}

static void
test_store_open_rejects_corrupt_file(void **state)
{
	fixture *f = *state;
	char path[300];
	unsigned char junk[16384];
	psf_store *st = NULL;
	FILE *fp;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 2654435761u >> 13);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(psf_store_open(f->dir, NULL, &st), PSF_ESTORE);
	assert_null(st);
}

static void
test_store_opts_from_cfg_copies_durability(void **state)
{
	psf_durability_cfg cfg = {PSF_DUR_EVERY_COMMIT, 250, 123 * MIB};
	psf_store_opts o;

	(void)state;
	psf_store_opts_from_cfg(&cfg, &o);
	assert_int_equal(o.durability, PSF_DUR_EVERY_COMMIT);
	assert_int_equal(o.interval_ms, 250);
	assert_int_equal(o.map_size, 123 * MIB);
	assert_int_equal(o.max_map_size, 0);
	psf_store_opts_from_cfg(NULL, &o);
	assert_int_equal(o.durability, PSF_DUR_INTERVAL);
	assert_int_equal(o.map_size, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_store_put_get_overwrite_delete),
	    T(test_store_reserve_and_delete),
	    T(test_store_rewrite_reads_old_writes_new),
	    T(test_store_failed_update_keeps_nothing),
	    T(test_store_write_in_read_txn_rejected),
	    T(test_store_update_retried_after_map_full),
	    T(test_store_map_capped_at_max_gives_enospc),
	    T(test_store_read_sees_multi_key_write_atomically),
	    T(test_store_walk_with_budget_returns_every_key_once_in_order),
	    T(test_store_walk_stops_on_visitor_error),
	    T(test_store_meta_and_pushlog_persist_across_reopen),
	    T(test_store_meta_foreach_visits_prefix_in_order),
	    T(test_store_clear_empties_only_that_db),
	    T(test_store_every_durability_mode_persists),
	    T(test_store_interval_mode_syncs_in_background),
	    T(test_store_every_commit_survives_sigkill),
	    T(test_store_bad_arguments_are_rejected),
	    T(test_store_open_rejects_corrupt_file),
	    cmocka_unit_test(test_store_opts_from_cfg_copies_durability),
	};
	psf_log_setup(PSF_LOG_WARN, "store_test"); /* PSF_LOG_LEVEL overrides */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
