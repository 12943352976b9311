/* store_backup_test.c -- psf_store_backup against real LMDB environments: the
 * copy holds exactly the chosen committed state, writers are not stopped, map
 * grows wait for the copy, and every failure leaves no directory behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "ps/store.h"

#define N_KEYS 64
#define KEY_FLOATS 256

typedef struct fixture {
	char dir[256];
	char src[300];
	char out[300];
} fixture;

static int
setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/psf_backup_test.XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/backup/ps0", f->dir);
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
open_at(const char *dir, uint64_t map_size)
{
	psf_store_opts o = {0};
	psf_store *st = NULL;

	o.durability = PSF_DUR_NONE;
	o.map_size = map_size;
	assert_int_equal(psf_store_open(dir, &o, &st), PSF_OK);
	return st;
}

/* One "version": every key's values are a function of (version, key), plus the
 * version in meta and a pushlog record. */
typedef struct step {
	uint64_t version;
	uint32_t floats; /* per key */
} step;

static float
value_of(uint64_t version, uint64_t key, uint32_t i)
{
	return (float)(version * 1000003u + key * 131u + i);
}

static psf_err
write_version_fn(psf_store_txn *txn, void *arg)
{
	const step *s = arg;
	float *vals = malloc(sizeof(float) * s->floats);
	psf_err rv = vals == NULL ? PSF_ENOMEM : PSF_OK;

	for (uint64_t k = 1; k <= N_KEYS && rv == PSF_OK; k++) {
		for (uint32_t i = 0; i < s->floats; i++)
			vals[i] = value_of(s->version, k, i);
		rv = psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, k, vals, s->floats);
	}
	free(vals);
	if (rv == PSF_OK)
		rv = psf_store_txn_meta_put_u64(txn, "version", s->version);
	if (rv == PSF_OK)
		rv = psf_store_txn_pushlog_put(txn, "trainer-0", s->version);
	return rv;
}

static void
write_version(psf_store *st, uint64_t version, uint32_t floats)
{
	step s = {version, floats};

	assert_int_equal(psf_store_update(st, write_version_fn, &s), PSF_OK);
}

/* check_fn verifies that a store holds exactly version s->version. */
static psf_err
check_fn(psf_store_txn *txn, void *arg)
{
	const step *s = arg;
	float *vals = malloc(sizeof(float) * s->floats);
	uint64_t v = 0, seq = 0, n = 0;
	psf_err rv = vals == NULL ? PSF_ENOMEM : PSF_OK;

	if (rv == PSF_OK)
		rv = psf_store_txn_meta_get_u64(txn, "version", &v);
	if (rv == PSF_OK && v != s->version)
		rv = PSF_ESTATE;
	if (rv == PSF_OK)
		rv = psf_store_txn_pushlog_get(txn, "trainer-0", &seq);
	if (rv == PSF_OK && seq != s->version)
		rv = PSF_ESTATE;
	if (rv == PSF_OK)
		rv = psf_store_txn_count(txn, PSF_STORE_WEIGHTS, &n);
	if (rv == PSF_OK && n != N_KEYS)
		rv = PSF_ESTATE;
	for (uint64_t k = 1; k <= N_KEYS && rv == PSF_OK; k++) {
		rv = psf_store_txn_get_floats(txn, PSF_STORE_WEIGHTS, k, vals, s->floats);
		for (uint32_t i = 0; i < s->floats && rv == PSF_OK; i++)
			if (vals[i] != value_of(s->version, k, i))
				rv = PSF_ESTATE;
	}
	free(vals);
	return rv;
}

static void
assert_holds_version(const char *dir, uint64_t version, uint32_t floats)
{
	psf_store *st = open_at(dir, 0);
	step s = {version, floats};

	assert_int_equal(psf_store_read(st, check_fn, &s), PSF_OK);
	psf_store_close(st);
}

static bool
version_is(psf_store_txn *txn, void *arg)
{
	uint64_t v = 0;

	return psf_store_txn_meta_get_u64(txn, "version", &v) == PSF_OK &&
	    v == *(const uint64_t *)arg;
}

/* A pin for "version == want" that tells the writer of a test when the backup
 * is waiting for it (the store evaluates the pin once at registration), so the
 * writer cannot pass the version before the backup asks for it. */
typedef struct gate {
	uint64_t want;
	atomic_int asked;
} gate;

static bool
gate_pin(psf_store_txn *txn, void *arg)
{
	gate *g = arg;

	atomic_store(&g->asked, 1);
	return version_is(txn, &g->want);
}

static bool
exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

static void
test_backup_of_current_state(void **state)
{
	fixture *f = *state;
	psf_store *st = open_at(f->src, 0);
	psf_store_backup_info info = {0};
	char partial[400];

	for (uint64_t v = 1; v <= 5; v++)
		write_version(st, v, KEY_FLOATS);
	assert_int_equal(psf_store_backup(st, f->out, NULL, NULL, 1000, &info), PSF_OK);
	assert_int_equal(info.entries, N_KEYS + 1 /* meta */ + 1 /* pushlog */);
	assert_true(info.bytes > (uint64_t)N_KEYS * KEY_FLOATS * sizeof(float));
	snprintf(partial, sizeof(partial), "%s.partial", f->out);
	assert_false(exists(partial));
	/* The source goes on; the copy keeps version 5. */
	write_version(st, 6, KEY_FLOATS);
	psf_store_close(st);
	assert_holds_version(f->out, 5, KEY_FLOATS);
	assert_holds_version(f->src, 6, KEY_FLOATS);
}

typedef struct writer {
	psf_store *st;
	uint64_t from, to;
	uint32_t floats;
	gate *g; /* wait until its backup asked */
} writer;

static void *
writer_main(void *arg)
{
	writer *w = arg;

	while (!atomic_load(&w->g->asked))
		usleep(100);
	for (uint64_t v = w->from; v <= w->to; v++) {
		step s = {v, w->floats};

		if (psf_store_update(w->st, write_version_fn, &s) != PSF_OK)
			return (void *)1;
	}
	return NULL;
}

/* A backup asked for a version not yet written gets exactly that version while a
 * writer commits past it (the writer is not held up to the end of the copy). */
static void
test_backup_at_future_version_while_writing(void **state)
{
	fixture *f = *state;
	psf_store *st = open_at(f->src, 0);
	gate g = {150, 0};
	writer w = {st, 2, 400, KEY_FLOATS, &g};
	psf_store_backup_info info = {0};
	pthread_t t;
	void *res = NULL;

	write_version(st, 1, KEY_FLOATS);
	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
	assert_int_equal(psf_store_backup(st, f->out, gate_pin, &g, 60000, &info), PSF_OK);
	pthread_join(t, &res);
	assert_null(res);
	psf_store_close(st);
	assert_holds_version(f->out, 150, KEY_FLOATS);
	assert_holds_version(f->src, 400, KEY_FLOATS);
}

/* Values large enough that the writer's map (1 MiB to start) must grow several
 * times while the backup's reader is pinned: the grows wait, nothing is torn. */
static void
test_map_grow_waits_for_the_copy(void **state)
{
	fixture *f = *state;
	psf_store *st = open_at(f->src, 1u << 20);
	gate g = {20, 0};
	writer w = {st, 2, 40, 4096, &g};
	pthread_t t;
	void *res = NULL;

	write_version(st, 1, 4096);
	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
	assert_int_equal(psf_store_backup(st, f->out, gate_pin, &g, 60000, NULL), PSF_OK);
	pthread_join(t, &res);
	assert_null(res);
	psf_store_close(st);
	assert_holds_version(f->out, 20, 4096);
	assert_holds_version(f->src, 40, 4096);
}

static void
test_backup_errors_leave_nothing(void **state)
{
	fixture *f = *state;
	psf_store *st = open_at(f->src, 0);
	uint64_t never = 99;
	char partial[400];

	write_version(st, 1, 8);
	snprintf(partial, sizeof(partial), "%s.partial", f->out);
	/* A state that never comes. */
	assert_int_equal(psf_store_backup(st, f->out, version_is, &never, 50, NULL), PSF_ETIMEDOUT);
	assert_false(exists(f->out));
	assert_false(exists(partial));
	/* An existing target is never overwritten. */
	assert_int_equal(psf_store_backup(st, f->out, NULL, NULL, 50, NULL), PSF_OK);
	assert_int_equal(psf_store_backup(st, f->out, NULL, NULL, 50, NULL), PSF_EEXIST);
	assert_int_equal(psf_store_backup(NULL, f->out, NULL, NULL, 50, NULL), PSF_EINVAL);
	assert_int_equal(psf_store_backup(st, "", NULL, NULL, 50, NULL), PSF_EINVAL);
	psf_store_close(st);
}

typedef struct waiter {
	psf_store *st;
	const char *out;
	uint64_t want;
	psf_err rv;
} waiter;

static void *
waiter_main(void *arg)
{
	waiter *w = arg;

	w->rv = psf_store_backup(w->st, w->out, version_is, &w->want, 60000, NULL);
	return NULL;
}

/* Cancel ends a waiting backup at once and leaves nothing behind. */
static void
test_cancel_ends_a_waiting_backup(void **state)
{
	fixture *f = *state;
	psf_store *st = open_at(f->src, 0);
	waiter w = {st, f->out, 1000, PSF_OK};
	pthread_t t;

	write_version(st, 1, 8);
	assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
	usleep(20000);
	psf_store_backup_cancel(st);
	pthread_join(t, NULL);
	assert_int_equal(w.rv, PSF_ECLOSED);
	assert_false(exists(f->out));
	/* Cancelled for good: a later backup is refused at once. */
	assert_int_equal(psf_store_backup(st, f->out, NULL, NULL, 50, NULL), PSF_ECLOSED);
	psf_store_close(st);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_backup_of_current_state),
	    T(test_backup_at_future_version_while_writing),
	    T(test_map_grow_waits_for_the_copy),
	    T(test_backup_errors_leave_nothing),
	    T(test_cancel_ends_a_waiting_backup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
