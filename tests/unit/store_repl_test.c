/* store_repl_test.c -- the store half of replication against real LMDB
 * environments: a primary's captured writesets replayed on a replica give
 * byte-identical content; out-of-order and malformed writesets are refused
 * without a change; a streamed copy taken while updates go on, installed and
 * followed by the tail, equals the primary; an interrupted install stays
 * recognisably incomplete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/base/util.h"
#include "ps/store.h"

#define N_KEYS 48

typedef struct fixture {
	char dir[256];
	char p[300]; /* primary */
	char r[300]; /* replica / joiner */
} fixture;

static int
setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/psf_repl_test.XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->p, sizeof(f->p), "%s/p", f->dir);
	snprintf(f->r, sizeof(f->r), "%s/r", f->dir);
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
open_at(const char *dir, psf_durability d, uint64_t map_size)
{
	psf_store_opts o = {0};
	psf_store *st = NULL;

	o.durability = d;
	o.map_size = map_size;
	assert_int_equal(psf_store_open(dir, &o, &st), PSF_OK);
	return st;
}

static uint64_t
rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- dump: every database through the public API, as one byte string ------ */

typedef struct dump {
	unsigned char *b;
	size_t n, cap;
} dump;

static void
dump_add(dump *d, const void *p, size_t n)
{
	if (d->n + n > d->cap) {
		d->cap = (d->n + n) * 2 + 64;
		d->b = realloc(d->b, d->cap);
		assert_non_null(d->b);
	}
	if (n > 0)
		memcpy(d->b + d->n, p, n);
	d->n += n;
}

static psf_err
dump_visit(uint64_t key, const void *data, size_t len, void *arg)
{
	dump_add(arg, &key, sizeof(key));
	dump_add(arg, &len, sizeof(len));
	dump_add(arg, data, len);
	return PSF_OK;
}

static psf_err
dump_meta(const char *name, const void *data, size_t len, void *arg)
{
	dump_add(arg, name, strlen(name) + 1);
	dump_add(arg, &len, sizeof(len));
	dump_add(arg, data, len);
	return PSF_OK;
}

static psf_err
dump_push(const char *worker, uint64_t seq, void *arg)
{
	dump_add(arg, worker, strlen(worker) + 1);
	dump_add(arg, &seq, sizeof(seq));
	return PSF_OK;
}

static psf_err
dump_fn(psf_store_txn *txn, void *arg)
{
	psf_store_walk w;
	psf_err rv;

	for (int db = 0; db < PSF_STORE_N_DBS; db++) {
		dump_add(arg, "|db|", 4);
		if ((rv = psf_store_txn_walk(txn, db, 0, 0, dump_visit, arg, &w)) != PSF_OK)
			return rv;
	}
	dump_add(arg, "|meta|", 6);
	for (int c = 1; c < 256; c++) { /* every name, whatever its first byte */
		char prefix[2] = {(char)c, '\0'};

		if ((rv = psf_store_txn_meta_foreach(txn, prefix, dump_meta, arg)) != PSF_OK)
			return rv;
	}
	dump_add(arg, "|pushlog|", 9);
	return psf_store_txn_pushlog_foreach(txn, dump_push, arg);
}

static dump
dump_store(psf_store *st)
{
	dump d = {0};

	assert_int_equal(psf_store_read(st, dump_fn, &d), PSF_OK);
	return d;
}

static uint64_t
seq_of(psf_store *st)
{
	uint64_t seq = 99;

	assert_int_equal(psf_store_repl_seq(st, &seq), PSF_OK);
	return seq;
}

static void
assert_same(psf_store *a, psf_store *b)
{
	dump da = dump_store(a), db = dump_store(b);

	assert_true(da.n > 20);
	assert_int_equal(da.n, db.n);
	assert_memory_equal(da.b, db.b, da.n);
	assert_int_equal(seq_of(a), seq_of(b));
	free(da.b);
	free(db.b);
}

static void
assert_dump_is(psf_store *st, const dump *want)
{
	dump d = dump_store(st);

	assert_int_equal(d.n, want->n);
	assert_memory_equal(d.b, want->b, d.n);
	free(d.b);
}

/* ---- random updates -------------------------------------------------------- */

typedef struct upd {
	uint64_t seed;
	bool rewrite; /* try in-place rewrites (done where the mode allows them) */
	bool fail;    /* return an error at the end: nothing commits */
} upd;

static void
fill(unsigned char *p, size_t len, uint64_t *s)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)rng(s);
}

static size_t
rand_len(uint64_t *s)
{
	/* Mostly small values (sharing pages, moved by later writes), some over a
	 * page (overflow pages). */
	return rng(s) % 4 == 0 ? 4 * (1 + rng(s) % 1500) : 4 * (1 + rng(s) % 16);
}

#define TRY(call)                                       \
	do {                                            \
		psf_err rv_ = (call);                   \
		if (rv_ != PSF_OK && rv_ != PSF_ENOENT) \
			return rv_;                     \
	} while (0)

/* rewrite_op rewrites key of db in place (interval mode), filling the new value
 * only after a write to another database, as ps/apply.c does. */
static psf_err
rewrite_op(psf_store_txn *txn, int db, uint64_t key, uint64_t *s)
{
	const void *cur, *old;
	void *new, *other;
	size_t len;
	psf_err rv;

	if ((rv = psf_store_txn_get(txn, db, key, &cur, &len)) != PSF_OK)
		return rv == PSF_ENOENT ? PSF_OK : rv;
	rv = psf_store_txn_rewrite(txn, db, key, len, &old, &new);
	if (rv == PSF_ESTATE)
		return PSF_OK; /* not interval mode: no in-place rewrite there */
	if (rv != PSF_OK)
		return rv;
	if ((rv = psf_store_txn_put_reserve(txn, (db + 1) % PSF_STORE_N_DBS, rng(s) % N_KEYS, 8,
	         &other)) != PSF_OK)
		return rv;
	fill(other, 8, s);
	for (size_t i = 0; i < len; i++)
		((unsigned char *)new)[i] = (unsigned char)(((const unsigned char *)old)[i] + 7);
	return PSF_OK;
}

static psf_err
rand_update_fn(psf_store_txn *txn, void *arg)
{
	upd *u = arg;
	uint64_t s = u->seed;
	int n = 1 + (int)(rng(&s) % 8);
	unsigned char buf[6000];
	char name[32];

	for (int i = 0; i < n; i++) {
		int db = (int)(rng(&s) % PSF_STORE_N_DBS);
		uint64_t key = rng(&s) % N_KEYS;
		size_t len = rand_len(&s);
		void *p;

		switch (rng(&s) % 16) {
		case 0:
		case 1:
		case 2:
			fill(buf, len, &s);
			TRY(psf_store_txn_put(txn, db, key, buf, len));
			break;
		case 3:
		case 4:
			TRY(psf_store_txn_put_reserve(txn, db, key, len, &p));
			fill(p, len, &s);
			break;
		case 5:
		case 6:
			if (u->rewrite)
				TRY(rewrite_op(txn, db, key, &s));
			break;
		case 7: TRY(psf_store_txn_del(txn, db, key)); break;
		case 8: /* written then deleted, or deleted then written */
			fill(buf, len, &s);
			if (rng(&s) % 2 == 0) {
				TRY(psf_store_txn_put(txn, db, key, buf, len));
				TRY(psf_store_txn_del(txn, db, key));
			} else {
				TRY(psf_store_txn_del(txn, db, key));
				TRY(psf_store_txn_put(txn, db, key, buf, len));
			}
			break;
		case 9:
			snprintf(name, sizeof(name), "m%d", (int)(key % 12));
			fill(buf, 1 + len % 40, &s);
			TRY(psf_store_txn_meta_put(txn, name, buf, 1 + len % 40));
			break;
		case 10:
			snprintf(name, sizeof(name), "m%d", (int)(key % 12));
			TRY(psf_store_txn_meta_del(txn, name));
			break;
		case 11:
			snprintf(name, sizeof(name), "worker-%d", (int)(key % 6));
			TRY(psf_store_txn_pushlog_put(txn, name, rng(&s)));
			break;
		case 12:
			if (rng(&s) % 6 == 0)
				TRY(psf_store_txn_clear(txn, db));
			break;
		case 13:
			if (rng(&s) % 40 == 0)
				TRY(psf_store_txn_clear_all(txn));
			break;
		case 14: /* reserve twice, the first never filled, then fill the second */
			TRY(psf_store_txn_put_reserve(txn, db, key, 4, &p));
			TRY(psf_store_txn_put_reserve(txn, db, key, len, &p));
			fill(p, len, &s);
			break;
		default: /* a key written, another written (moving it), the first again */
			fill(buf, len, &s);
			TRY(psf_store_txn_put(txn, db, key, buf, len));
			TRY(psf_store_txn_put(txn, db, (key + 1) % N_KEYS, buf, 4));
			TRY(psf_store_txn_put_reserve(txn, db, key, 8, &p));
			fill(p, 8, &s);
		}
	}
	return u->fail ? PSF_EINTERNAL : PSF_OK;
}

/* ---- capture sinks --------------------------------------------------------- */

typedef struct wset {
	uint64_t seq;
	unsigned char *b;
	size_t len;
} wset;

typedef struct sink {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	psf_store *replica; /* apply each writeset here when set */
	psf_err apply_rv;   /* first apply failure */
	uint64_t last_seq;  /* seq of the last writeset seen */
	bool out_of_order;
	wset *list; /* kept when keep */
	size_t n, cap;
	bool keep;
	psf_err answer;   /* what the capture fn returns */
	bool writer_done; /* test_stream_copy_while_updating's writer has ended */
} sink;

static void
sink_init(sink *k)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
}

static void
sink_free(sink *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->list[i].b);
	free(k->list);
	pthread_cond_destroy(&k->cv);
	pthread_mutex_destroy(&k->mu);
}

static psf_err
capture_fn(uint64_t seq, const void *bytes, size_t len, void *arg)
{
	sink *k = arg;
	psf_err rv = PSF_OK;

	if (k->replica != NULL)
		rv = psf_store_apply_wset(k->replica, seq, bytes, len);
	pthread_mutex_lock(&k->mu);
	if (rv != PSF_OK && k->apply_rv == PSF_OK)
		k->apply_rv = rv;
	if (seq != k->last_seq + 1)
		k->out_of_order = true;
	k->last_seq = seq;
	if (k->keep) {
		if (k->n == k->cap) {
			k->cap = k->cap * 2 + 16;
			k->list = realloc(k->list, k->cap * sizeof(*k->list));
		}
		k->list[k->n].seq = seq;
		k->list[k->n].b = malloc(len);
		memcpy(k->list[k->n].b, bytes, len);
		k->list[k->n].len = len;
		k->n++;
	}
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
	return k->answer;
}

/* run_updates runs n random updates from seed; every fail_every-th fails. */
static void
run_updates(psf_store *st, uint64_t seed, int n, int fail_every)
{
	for (int i = 0; i < n; i++) {
		upd u = {seed * 1000003u + (uint64_t)i + 1, true,
		    fail_every > 0 && i % fail_every == 3};

		assert_int_equal(psf_store_update(st, rand_update_fn, &u),
		    u.fail ? PSF_EINTERNAL : PSF_OK);
	}
}

/* ---- tests ------------------------------------------------------------------ */

static void
test_replica_follows_primary(void **state)
{
	fixture *f = *state;
	psf_store *p = open_at(f->p, PSF_DUR_INTERVAL, 128 << 10);
	psf_store *r = open_at(f->r, PSF_DUR_NONE, 128 << 10);
	psf_store_info info;
	sink k;

	sink_init(&k);
	k.replica = r;
	psf_store_set_capture(p, capture_fn, &k);
	run_updates(p, 1, 600, 9);
	assert_int_equal(k.apply_rv, PSF_OK);
	assert_false(k.out_of_order);
	/* Failed updates capture nothing and do not count. */
	assert_int_equal(k.last_seq, 600 - 600 / 9 - (600 % 9 > 3));
	assert_int_equal(seq_of(p), k.last_seq);
	assert_same(p, r);
	/* The map grew on the way, so some updates ran twice (map full, retry). */
	assert_int_equal(psf_store_stats(p, &info), PSF_OK);
	assert_true(info.grows > 0);
	assert_true(info.retries > 0);
	psf_store_close(p);
	psf_store_close(r);
	sink_free(&k);
}

static void
test_refuses_out_of_order_and_garbage(void **state)
{
	fixture *f = *state;
	psf_store *p = open_at(f->p, PSF_DUR_INTERVAL, 0);
	psf_store *r = open_at(f->r, PSF_DUR_EVERY_COMMIT, 0);
	uint64_t s = 42, seq;
	unsigned char buf[512];
	dump before;
	sink k;

	sink_init(&k);
	k.keep = true;
	psf_store_set_capture(p, capture_fn, &k);
	run_updates(p, 2, 10, 0);
	assert_int_equal(k.n, 10);

	/* Out of order: refused, store untouched. */
	before = dump_store(r);
	assert_int_equal(psf_store_apply_wset(r, 2, k.list[1].b, k.list[1].len), PSF_ESTATE);
	assert_dump_is(r, &before);
	assert_int_equal(seq_of(r), 0);
	free(before.b);
	assert_int_equal(psf_store_apply_wset(r, 1, k.list[0].b, k.list[0].len), PSF_OK);
	assert_int_equal(psf_store_apply_wset(r, 1, k.list[0].b, k.list[0].len), PSF_ESTATE);
	assert_int_equal(psf_store_apply_wset(r, 3, k.list[2].b, k.list[2].len), PSF_ESTATE);
	assert_int_equal(psf_store_apply_wset(r, 2, k.list[1].b, k.list[1].len), PSF_OK);
	assert_int_equal(seq_of(r), 2);

	/* Garbage: every cut of a real writeset, random bytes after a valid
	 * header, random bytes, hand-made near misses. All EPROTO, no change. */
	before = dump_store(r);
	for (size_t len = 0; len < k.list[2].len; len++)
		assert_int_equal(psf_store_apply_wset(r, 3, k.list[2].b, len), PSF_EPROTO);
	for (int i = 0; i < 3000; i++) {
		size_t len = rng(&s) % sizeof(buf);

		fill(buf, len, &s);
		if (i % 2 == 0 && len >= 8)
			memcpy(buf, k.list[2].b, 8); /* magic and the real op count */
		assert_int_equal(psf_store_apply_wset(r, 3, buf, len), PSF_EPROTO);
	}
	{
		static const unsigned char bad[][40] = {
		    /* op count says 2, one op follows */
		    {'P', 'S', 'W', '1', 0, 0, 0, 2, 'C', 0},
		    /* database 5 */
		    {'P', 'S', 'W', '1', 0, 0, 0, 1, 'C', 5},
		    /* 7-byte key in weights */
		    {'P', 'S', 'W', '1', 0, 0, 0, 1, 'D', 0, 0, 7, 1, 2, 3, 4, 5, 6, 7},
		    /* meta name with a NUL */
		    {'P', 'S', 'W', '1', 0, 0, 0, 1, 'D', 3, 0, 3, 'a', 0, 'b'},
		    /* pushlog value of 4 bytes */
		    {'P', 'S', 'W', '1', 0, 0, 0, 1, 'P', 4, 0, 1, 'w', 0, 0, 0, 4, 1, 2, 3, 4},
		    /* the install marker */
		    {'P', 'S', 'W', '1', 0, 0, 0, 1, 'D', 3, 0, 12, 'r', 'e', 'p', 'l', '_', 'i',
		        'n', 's', 't', 'a', 'l', 'l'},
		    /* unknown op */
		    {'P', 'S', 'W', '1', 0, 0, 0, 1, 'X', 0},
		    /* wrong magic */
		    {'P', 'S', 'W', '2', 0, 0, 0, 1, 'C', 0},
		    /* clear of meta (only the float databases have one) */
		    {'P', 'S', 'W', '1', 0, 0, 0, 1, 'C', 3},
		    /* clear_all with a database */
		    {'P', 'S', 'W', '1', 0, 0, 0, 1, 'A', 1},
		};
		static const size_t bad_len[] = {10, 10, 19, 15, 21, 24, 10, 10, 10, 10};

		for (size_t i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++)
			assert_int_equal(psf_store_apply_wset(r, 3, bad[i], bad_len[i]),
			    PSF_EPROTO);
		/* One byte too many after a valid writeset. */
		memcpy(buf, k.list[2].b, k.list[2].len < 500 ? k.list[2].len : 0);
		if (k.list[2].len < 500)
			assert_int_equal(psf_store_apply_wset(r, 3, buf, k.list[2].len + 1),
			    PSF_EPROTO);
	}
	assert_int_equal(psf_store_apply_wset(r, 0, k.list[0].b, k.list[0].len), PSF_EPROTO);
	assert_int_equal(psf_store_apply_wset(r, 3, NULL, 4), PSF_EINVAL);
	assert_dump_is(r, &before);
	assert_int_equal(psf_store_repl_seq(r, &seq), PSF_OK);
	assert_int_equal(seq, 2);
	free(before.b);

	/* A writeset is not a copy piece (it may hold deletes and clears), and a
	 * piece needs an install begun. */
	assert_int_equal(psf_store_install_piece(r, "PSW1\0\0\0\1C\0", 10), PSF_EPROTO);
	assert_int_equal(psf_store_install_piece(r, "PSW1\0\0\0\0", 8), PSF_ESTATE);
	assert_int_equal(psf_store_install_end(r, 2, 0), PSF_ESTATE);

	/* The rest still applies and the replica equals the primary. */
	for (size_t i = 2; i < k.n; i++)
		assert_int_equal(psf_store_apply_wset(r, k.list[i].seq, k.list[i].b, k.list[i].len),
		    PSF_OK);
	assert_same(p, r);
	psf_store_close(p);
	psf_store_close(r);
	sink_free(&k);
}

static int n_recaptured;

static psf_err
count_fn(uint64_t seq, const void *bytes, size_t len, void *arg)
{
	(void)seq, (void)bytes, (void)len, (void)arg;
	n_recaptured++;
	return PSF_OK;
}

static void
test_capture_switch_and_answer(void **state)
{
	fixture *f = *state;
	psf_store *p = open_at(f->p, PSF_DUR_INTERVAL, 0);
	psf_store *r = open_at(f->r, PSF_DUR_NONE, 0);
	sink k;

	sink_init(&k);
	k.replica = r;
	/* The replica's own capture is not fed by applying. */
	n_recaptured = 0;
	psf_store_set_capture(r, count_fn, NULL);
	psf_store_set_capture(p, capture_fn, &k);
	run_updates(p, 4, 30, 0);
	assert_int_equal(k.apply_rv, PSF_OK);
	assert_int_equal(n_recaptured, 0);
	assert_same(p, r);
	/* A capture fn's error is psf_store_update's answer; the txn committed. */
	k.answer = PSF_EUNAVAIL;
	{
		upd u = {77, true, false};

		assert_int_equal(psf_store_update(p, rand_update_fn, &u), PSF_EUNAVAIL);
	}
	assert_int_equal(seq_of(p), 31);
	assert_same(p, r);
	/* Off: commits no longer move repl_seq, and nothing is captured. */
	psf_store_set_capture(p, NULL, NULL);
	run_updates(p, 5, 3, 0);
	assert_int_equal(seq_of(p), 31);
	assert_int_equal(k.last_seq, 31);
	/* The replica's own capture does count its own updates. */
	run_updates(r, 6, 2, 0);
	assert_int_equal(n_recaptured, 2);
	assert_int_equal(seq_of(r), 33);
	psf_store_close(p);
	psf_store_close(r);
	sink_free(&k);
}

/* ---- streamed copy ------------------------------------------------------------ */

typedef struct writer {
	psf_store *st;
	sink *k;
	int n;
	psf_err rv;
} writer;

static void *
writer_main(void *arg)
{
	writer *w = arg;

	for (int i = 0; i < w->n && w->rv == PSF_OK; i++) {
		upd u = {900000u + (uint64_t)i, true, false};

		w->rv = psf_store_update(w->st, rand_update_fn, &u);
	}
	pthread_mutex_lock(&w->k->mu);
	w->k->writer_done = true;
	pthread_cond_broadcast(&w->k->cv);
	pthread_mutex_unlock(&w->k->mu);
	return NULL;
}

typedef struct receiver {
	psf_store *st;
	sink *primary_sink; /* first piece: wait until the primary moved on */
	uint64_t seq;
	uint64_t pieces;
	uint64_t stop_after; /* 0 = never */
} receiver;

static psf_err
piece_fn(uint64_t seq, const void *bytes, size_t len, void *arg)
{
	receiver *rc = arg;

	if (rc->pieces == 0 && rc->primary_sink != NULL) {
		/* Updates go on while the copy is taken: the primary commits past X
		 * before the first piece is even installed. */
		pthread_mutex_lock(&rc->primary_sink->mu);
		while (rc->primary_sink->last_seq < seq + 20 && !rc->primary_sink->writer_done)
			pthread_cond_wait(&rc->primary_sink->cv, &rc->primary_sink->mu);
		pthread_mutex_unlock(&rc->primary_sink->mu);
	}
	if (rc->pieces > 0 && rc->seq != seq)
		return PSF_EINTERNAL;
	rc->seq = seq;
	if (rc->stop_after != 0 && rc->pieces == rc->stop_after)
		return PSF_ECLOSED; /* the connection broke */
	rc->pieces++;
	return psf_store_install_piece(rc->st, bytes, len);
}

/* junk gives a store content of its own that an install must replace. */
static void
junk(psf_store *st)
{
	run_updates(st, 8, 20, 0);
}

static void
test_stream_copy_while_updating(void **state)
{
	fixture *f = *state;
	psf_store *p = open_at(f->p, PSF_DUR_INTERVAL, 0);
	psf_store *j = open_at(f->r, PSF_DUR_EVERY_COMMIT, 0);
	psf_store_copy_info info;
	receiver rc = {0};
	writer w = {p, NULL, 400, PSF_OK};
	pthread_t th;
	size_t next = 0;
	sink k;

	sink_init(&k);
	k.keep = true;
	w.k = &k;
	junk(j);
	psf_store_set_capture(p, capture_fn, &k);
	run_updates(p, 9, 80, 0);
	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);

	assert_int_equal(psf_store_install_begin(j), PSF_OK);
	rc.st = j;
	rc.primary_sink = &k;
	assert_int_equal(psf_store_copy_stream(p, 4096, piece_fn, &rc, &info), PSF_OK);
	assert_true(info.seq >= 80);
	assert_int_equal(rc.seq, info.seq);
	assert_int_equal(info.pieces, rc.pieces);
	assert_true(info.pieces > 3);
	assert_true(info.entries > 0);
	assert_int_equal(psf_store_install_end(j, info.seq, info.entries), PSF_OK);
	assert_int_equal(seq_of(j), info.seq);

	/* The tail: every writeset after X, applied as the writer goes on. */
	for (;;) {
		wset ws;

		pthread_mutex_lock(&k.mu);
		while (next < k.n && k.list[next].seq <= info.seq)
			next++;
		while (next == k.n && !k.writer_done)
			pthread_cond_wait(&k.cv, &k.mu);
		if (next == k.n) {
			pthread_mutex_unlock(&k.mu);
			break;
		}
		ws = k.list[next++]; /* the list may be realloc'ed, the bytes stay */
		pthread_mutex_unlock(&k.mu);
		assert_int_equal(psf_store_apply_wset(j, ws.seq, ws.b, ws.len), PSF_OK);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.rv, PSF_OK);
	assert_false(k.out_of_order);
	assert_int_equal(seq_of(p), 480);
	assert_same(p, j);
	psf_store_close(p);
	psf_store_close(j);
	sink_free(&k);
}

static void
test_interrupted_install(void **state)
{
	fixture *f = *state;
	psf_store *p = open_at(f->p, PSF_DUR_INTERVAL, 0);
	psf_store *j = open_at(f->r, PSF_DUR_NONE, 0);
	psf_store_copy_info info;
	receiver rc = {0};
	uint64_t seq = 5;
	sink k;

	sink_init(&k);
	k.keep = true;
	junk(j);
	psf_store_set_capture(p, capture_fn, &k);
	run_updates(p, 10, 60, 0);

	/* The stream breaks after two pieces; then the joiner crashes. */
	assert_int_equal(psf_store_install_begin(j), PSF_OK);
	rc.st = j;
	rc.stop_after = 2;
	assert_int_equal(psf_store_copy_stream(p, 2048, piece_fn, &rc, &info), PSF_ECLOSED);
	psf_store_close(j);
	j = open_at(f->r, PSF_DUR_NONE, 0);

	/* Recognisably incomplete, whatever is asked of it. */
	assert_int_equal(psf_store_repl_seq(j, &seq), PSF_ESTATE);
	assert_int_equal(seq, 0);
	assert_int_equal(psf_store_apply_wset(j, 1, k.list[0].b, k.list[0].len), PSF_ESTATE);
	assert_int_equal(psf_store_apply_wset(j, 61, k.list[0].b, k.list[0].len), PSF_ESTATE);
	assert_int_equal(psf_store_install_end(j, 60, 2), PSF_EPROTO);
	assert_int_equal(psf_store_repl_seq(j, &seq), PSF_ESTATE);
	{
		receiver other = {0};

		other.st = p;
		assert_int_equal(psf_store_copy_stream(j, 0, piece_fn, &other, NULL), PSF_ESTATE);
	}

	/* Begun again, whole: complete and equal to the primary. */
	memset(&rc, 0, sizeof(rc));
	rc.st = j;
	assert_int_equal(psf_store_install_begin(j), PSF_OK);
	assert_int_equal(psf_store_copy_stream(p, 2048, piece_fn, &rc, &info), PSF_OK);
	assert_int_equal(info.seq, 60);
	/* A lost or repeated piece shows at the end as a count mismatch. */
	assert_int_equal(psf_store_install_end(j, info.seq, info.entries + 1), PSF_EPROTO);
	assert_int_equal(psf_store_install_end(j, info.seq + 1, info.entries), PSF_EPROTO);
	assert_int_equal(psf_store_install_end(j, info.seq, info.entries), PSF_OK);
	assert_same(p, j);
	/* And it follows from there. */
	k.replica = j;
	run_updates(p, 11, 10, 0);
	assert_int_equal(k.apply_rv, PSF_OK);
	assert_same(p, j);
	psf_store_close(p);
	psf_store_close(j);
	sink_free(&k);
}

static void
test_copy_of_an_empty_store(void **state)
{
	fixture *f = *state;
	psf_store *p = open_at(f->p, PSF_DUR_NONE, 0);
	psf_store *j = open_at(f->r, PSF_DUR_NONE, 0);
	psf_store_copy_info info;
	receiver rc = {0};
	dump dp, dj;

	junk(j);
	rc.st = j;
	assert_int_equal(psf_store_install_begin(j), PSF_OK);
	assert_int_equal(psf_store_copy_stream(p, 0, piece_fn, &rc, &info), PSF_OK);
	assert_int_equal(info.pieces, 1);
	assert_int_equal(info.entries, 0);
	assert_int_equal(info.seq, 0);
	assert_int_equal(psf_store_install_end(j, 0, 0), PSF_OK);
	assert_int_equal(seq_of(j), 0);
	dp = dump_store(p);
	dj = dump_store(j);
	assert_int_equal(dp.n, dj.n);
	assert_memory_equal(dp.b, dj.b, dp.n);
	free(dp.b);
	free(dj.b);
	psf_store_close(p);
	psf_store_close(j);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_replica_follows_primary),
	    T(test_refuses_out_of_order_and_garbage),
	    T(test_capture_switch_and_answer),
	    T(test_stream_copy_while_updating),
	    T(test_interrupted_install),
	    T(test_copy_of_an_empty_store),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
