/* data_cache_test.c -- the binary cache of a parsed input (lib/data/data.h,
 * docs/data.md §9): bit-identical round trips, invalidation, corrupt caches,
 * the fallback place, concurrent builders. Real files in a mkdtemp dir. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/data/data.h"
#include "lib/data/datagen.h"

typedef struct fixture {
	char dir[64];
} fixture;

static int
setup(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/psf_cache_test_XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	fixture *fx = *state;
	psf_err rv;

	chmod(fx->dir, 0700);
	rv = psf_rm_rf(fx->dir);
	free(fx);
	return rv == PSF_OK ? 0 : -1;
}

static void
gen(const char *path, uint32_t symbols, uint32_t days, uint64_t seed, int skew)
{
	psf_datagen_cfg cfg = {.symbols = symbols, .days = days, .seed = seed, .skew = skew};

	assert_int_equal(psf_datagen_write(&cfg, path, NULL, 0), PSF_OK);
}

static void
put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static void
assert_same_dataset(const psf_dataset *a, const psf_dataset *b)
{
	assert_int_equal(psf_dataset_n_series(a), psf_dataset_n_series(b));
	assert_int_equal(psf_dataset_n_rows(a), psf_dataset_n_rows(b));
	assert_int_equal(psf_dataset_columns(a), psf_dataset_columns(b));
	assert_int_equal(psf_dataset_n_skipped(a), psf_dataset_n_skipped(b));
	assert_string_equal(psf_dataset_first_error(a), psf_dataset_first_error(b));
	for (size_t i = 0; i < psf_dataset_n_series(a); i++) {
		const psf_series *x = psf_dataset_series(a, i), *y = psf_dataset_series(b, i);

		assert_string_equal(x->symbol, y->symbol);
		assert_int_equal(x->n, y->n);
		/* memcmp, not ==: NaN (missing) values must match bit for bit too */
		assert_memory_equal(x->date, y->date, x->n * sizeof(int32_t));
		assert_memory_equal(x->close, y->close, x->n * sizeof(double));
		assert_memory_equal(x->open, y->open, x->n * sizeof(double));
		assert_memory_equal(x->high, y->high, x->n * sizeof(double));
		assert_memory_equal(x->low, y->low, x->n * sizeof(double));
		assert_memory_equal(x->volume, y->volume, x->n * sizeof(double));
	}
}

static void
assert_same_index(const psf_data_index *a, const psf_data_index *b)
{
	size_t na, nb;
	const int32_t *da = psf_data_index_dates(a, &na), *db = psf_data_index_dates(b, &nb);

	assert_int_equal(psf_data_index_n_symbols(a), psf_data_index_n_symbols(b));
	for (size_t i = 0; i < psf_data_index_n_symbols(a); i++) {
		uint64_t ra, rb;

		assert_string_equal(psf_data_index_symbol(a, i, &ra),
		    psf_data_index_symbol(b, i, &rb));
		assert_int_equal(ra, rb);
	}
	assert_int_equal(na, nb);
	assert_memory_equal(da, db, na * sizeof(int32_t));
}

static int
keep_odd(const char *symbol, void *arg)
{
	(void)arg;
	return (symbol[strlen(symbol) - 1] - '0') % 2 == 1;
}

/* load_both loads path plainly and through the cache (opts as given, cache
 * on) and checks the two are the same; returns the cached one. */
static psf_dataset *
load_both(const char *path, const psf_data_opts *opts)
{
	psf_data_opts plain = *opts, cached = *opts;
	psf_dataset *a = NULL, *b = NULL;
	char err[512] = "";

	plain.cache = false;
	cached.cache = true;
	assert_int_equal(psf_data_load(path, &plain, err, sizeof(err), &a), PSF_OK);
	assert_int_equal(psf_data_load(path, &cached, err, sizeof(err), &b), PSF_OK);
	assert_same_dataset(a, b);
	psf_dataset_free(a);
	return b;
}

static void
check_ok(const char *path, const char *cache_dir, const char *want)
{
	char err[512] = "", where[4200] = "";

	assert_int_equal(
	    psf_data_cache_check(path, cache_dir, err, sizeof(err), where, sizeof(where)), PSF_OK);
	if (want != NULL)
		assert_string_equal(where, want);
}

static void
test_data_cache_round_trip_is_bit_identical(void **state)
{
	fixture *fx = *state;
	char csv[256], hand[256], dir[256], cache[300], err[512] = "";
	psf_data_opts all = {0}, odd = {.keep = keep_odd}, on = {.cache = true};
	psf_data_index *ia = NULL, *ib = NULL;
	psf_dataset *ds;

	snprintf(csv, sizeof(csv), "%s/g.csv", fx->dir);
	snprintf(cache, sizeof(cache), "%s.psfcache", csv);
	gen(csv, 23, 90, 5, 1);
	assert_int_equal(psf_data_cache_check(csv, NULL, err, sizeof(err), NULL, 0), PSF_ENOENT);
	psf_dataset_free(load_both(csv, &all)); /* builds */
	check_ok(csv, NULL, cache);
	psf_dataset_free(load_both(csv, &all)); /* reads */
	ds = load_both(csv, &odd);              /* a shard: only its symbols */
	assert_true(psf_dataset_n_series(ds) > 0 && psf_dataset_n_series(ds) < 23);
	psf_dataset_free(ds);
	/* The scan's index from the cache equals the parsed one. */
	assert_int_equal(psf_data_scan(csv, PSF_BAD_ROWS_FAIL, err, sizeof(err), &ia), PSF_OK);
	assert_int_equal(psf_data_scan_opts(csv, &on, err, sizeof(err), &ib), PSF_OK);
	assert_same_index(ia, ib);
	psf_data_index_free(ia);
	psf_data_index_free(ib);
	/* Missing values (NaN), an absent column and rows out of order. */
	snprintf(hand, sizeof(hand), "%s/hand.csv", fx->dir);
	put(hand,
	    "Symbol,Date,Close,Volume,High,Low\n"
	    "BBB,2024-01-03,10.5,,11,10\n"
	    "AAA,2024-01-02,1e3,12,,\n"
	    "BBB,2024-01-02,10.25,7,10.5,9.75\n"
	    "AAA,2024-01-05,999.5,nan,1001,998\n");
	psf_dataset_free(load_both(hand, &all));
	psf_dataset_free(load_both(hand, &all));
	check_ok(hand, NULL, NULL);
	/* A partition directory: its cache gives the CSV's dataset. */
	snprintf(dir, sizeof(dir), "%s/part", fx->dir);
	assert_int_equal(psf_data_partition(csv, dir, PSF_BAD_ROWS_FAIL, err, sizeof(err)), PSF_OK);
	psf_dataset_free(load_both(dir, &odd));
	snprintf(cache, sizeof(cache), "%s/part.psfcache", fx->dir);
	check_ok(dir, NULL, cache);
	psf_dataset_free(load_both(dir, &all));
	psf_dataset_free(load_both(dir, &odd));
}

static void
test_data_cache_invalidated_by_size_and_mtime(void **state)
{
	fixture *fx = *state;
	char csv[256], dir[256], part[300], err[512] = "";
	psf_data_opts all = {0};
	struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 123}};
	psf_dataset *ds;
	FILE *f;

	snprintf(csv, sizeof(csv), "%s/g.csv", fx->dir);
	gen(csv, 5, 30, 1, 0);
	psf_dataset_free(load_both(csv, &all));
	check_ok(csv, NULL, NULL);
	/* The same bytes with another mtime: stale. */
	assert_int_equal(utimensat(AT_FDCWD, csv, ts, 0), 0);
	assert_int_equal(psf_data_cache_check(csv, NULL, err, sizeof(err), NULL, 0), PSF_EINVAL);
	assert_non_null(strstr(err, "the input changed"));
	psf_dataset_free(load_both(csv, &all)); /* rebuilt */
	check_ok(csv, NULL, NULL);
	/* The same bytes and mtime in a new file renamed over it: another inode. */
	{
		char tmp[300], *text = NULL;
		size_t len;
		struct stat st;
		struct timespec same[2];

		snprintf(tmp, sizeof(tmp), "%s.new", csv);
		assert_int_equal(psf_read_file(csv, &text, &len), PSF_OK);
		put(tmp, text);
		free(text);
		assert_int_equal(stat(csv, &st), 0);
		same[0] = st.st_atim;
		same[1] = st.st_mtim;
		assert_int_equal(utimensat(AT_FDCWD, tmp, same, 0), 0);
		assert_int_equal(rename(tmp, csv), 0);
		assert_int_equal(psf_data_cache_check(csv, NULL, err, sizeof(err), NULL, 0),
		    PSF_EINVAL);
		assert_non_null(strstr(err, "the input changed"));
		psf_dataset_free(load_both(csv, &all));
		check_ok(csv, NULL, NULL);
	}
	/* A row appended (size changes): the cache gives the new data. */
	f = fopen(csv, "a");
	assert_non_null(f);
	fputs("2025-01-02,ZZZ,1,2,0.5,1.5,100\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(psf_data_cache_check(csv, NULL, err, sizeof(err), NULL, 0), PSF_EINVAL);
	ds = load_both(csv, &all);
	assert_non_null(psf_dataset_find(ds, "ZZZ"));
	psf_dataset_free(ds);
	check_ok(csv, NULL, NULL);
	/* A partition directory: one file's change makes it stale. */
	snprintf(dir, sizeof(dir), "%s/part", fx->dir);
	assert_int_equal(psf_data_partition(csv, dir, PSF_BAD_ROWS_FAIL, err, sizeof(err)), PSF_OK);
	psf_dataset_free(load_both(dir, &all));
	check_ok(dir, NULL, NULL);
	snprintf(part, sizeof(part), "%s/symbol=S0002/data.csv", dir);
	put(part, "date,close\n2024-01-02,5\n2024-01-03,6\n");
	assert_int_equal(psf_data_cache_check(dir, NULL, err, sizeof(err), NULL, 0), PSF_EINVAL);
	assert_non_null(strstr(err, "partition file changed"));
	ds = load_both(dir, &all);
	assert_int_equal(psf_dataset_find(ds, "S0002")->n, 2);
	psf_dataset_free(ds);
}

/* corrupt applies a damage to the cache file, then checks that the cache is
 * refused with a reason and that a load still gives the CSV's data and
 * rebuilds it. */
static void
corrupt_and_recover(const char *csv, const char *cache, long at, const void *bytes, size_t len,
    off_t truncate_to, const char *why)
{
	char err[512] = "";
	psf_data_opts all = {0};
	int fd = open(cache, O_RDWR);

	assert_true(fd >= 0);
	if (truncate_to >= 0)
		assert_int_equal(ftruncate(fd, truncate_to), 0);
	else
		assert_int_equal(pwrite(fd, bytes, len, at), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	assert_int_equal(psf_data_cache_check(csv, NULL, err, sizeof(err), NULL, 0), PSF_EINVAL);
	if (why != NULL && strstr(err, why) == NULL)
		fail_msg("expected '%s' in '%s'", why, err);
	psf_dataset_free(load_both(csv, &all));
	check_ok(csv, NULL, cache);
}

static void
test_data_cache_corrupt_is_rejected_and_rebuilt(void **state)
{
	fixture *fx = *state;
	char csv[256], cache[300];
	struct stat st;
	uint64_t big = UINT64_MAX / 2, seed = 42;

	snprintf(csv, sizeof(csv), "%s/g.csv", fx->dir);
	snprintf(cache, sizeof(cache), "%s.psfcache", csv);
	gen(csv, 17, 60, 3, 1);
	psf_dataset_free(load_both(csv, &(psf_data_opts){0}));
	assert_int_equal(stat(cache, &st), 0);
	corrupt_and_recover(csv, cache, 0, "XXXX", 4, -1, "bad magic");
	corrupt_and_recover(csv, cache, 0, NULL, 0, st.st_size / 2, "truncated");
	corrupt_and_recover(csv, cache, 0, NULL, 0, 10, "truncated");
	corrupt_and_recover(csv, cache, 0, NULL, 0, 0, "truncated");
	/* every count and offset of the header (bytes 32 .. 152) out of range */
	for (long at = 32; at <= 152; at += 8)
		corrupt_and_recover(csv, cache, at, &big, sizeof(big), -1, NULL);
	/* Fuzz-ish: one flipped byte anywhere. A flip in the metadata fails its
	 * checksum, one in a series fails that series' hash when it is copied; one
	 * in the padding changes nothing. Whichever: the load gives the CSV's data
	 * and leaves a valid cache. */
	for (int i = 0; i < 80; i++) {
		uint8_t byte = 0;
		long at;
		int fd;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		at = (long)((seed >> 33) % (uint64_t)st.st_size);
		assert_true((fd = open(cache, O_RDWR)) >= 0);
		assert_int_equal(pread(fd, &byte, 1, at), 1);
		byte ^= (uint8_t)(seed >> 24) | 1;
		assert_int_equal(pwrite(fd, &byte, 1, at), 1);
		assert_int_equal(close(fd), 0);
		psf_dataset_free(load_both(csv, &(psf_data_opts){0}));
		check_ok(csv, NULL, cache);
	}
}

static void
test_data_cache_fail_and_skip_policies(void **state)
{
	fixture *fx = *state;
	char csv[256], a[512] = "", b[512] = "";
	psf_data_opts fail = {.cache = true}, skip = {.bad_rows = PSF_BAD_ROWS_SKIP, .cache = true};
	psf_dataset *ds = NULL;

	snprintf(csv, sizeof(csv), "%s/bad.csv", fx->dir);
	put(csv,
	    "date,symbol,close\n"
	    "2024-01-02,AAA,1\n"
	    "2024-01-03,AAA,x\n"
	    "2024-01-02,AAA,2\n"
	    "2024-01-02,BBB,3\n");
	/* FAIL: the error of a plain load, with or without the cache. */
	assert_int_equal(psf_data_load(csv, &(psf_data_opts){0}, a, sizeof(a), &ds), PSF_EINVAL);
	assert_int_equal(psf_data_load(csv, &fail, b, sizeof(b), &ds), PSF_EINVAL);
	assert_string_equal(a, b);
	assert_null(ds);
	/* SKIP builds a cache that remembers the skipped rows... */
	psf_dataset_free(load_both(csv, &skip));
	ds = load_both(csv, &skip);
	assert_int_equal(psf_dataset_n_skipped(ds), 2);
	psf_dataset_free(ds);
	ds = NULL;
	/* ...and FAIL does not trust it: the same error as before. */
	assert_int_equal(psf_data_load(csv, &fail, b, sizeof(b), &ds), PSF_EINVAL);
	assert_string_equal(a, b);
}

/* assert_is_prefix checks cut holds exactly full's rows dated before end: each
 * symbol's prefix, bit for bit, and no symbol whose rows all come later. */
static void
assert_is_prefix(const psf_dataset *full, const psf_dataset *cut, int32_t end)
{
	size_t j = 0, rows = 0;

	for (size_t i = 0; i < psf_dataset_n_series(full); i++) {
		const psf_series *x = psf_dataset_series(full, i), *y;
		size_t m = 0;

		while (m < x->n && x->date[m] < end)
			m++;
		if (m == 0)
			continue;
		y = psf_dataset_series(cut, j++);
		assert_non_null(y);
		assert_string_equal(x->symbol, y->symbol);
		assert_int_equal(y->n, m);
		assert_memory_equal(x->date, y->date, m * sizeof(int32_t));
		assert_memory_equal(x->close, y->close, m * sizeof(double));
		assert_memory_equal(x->open, y->open, m * sizeof(double));
		assert_memory_equal(x->volume, y->volume, m * sizeof(double));
		rows += m;
	}
	assert_int_equal(psf_dataset_n_series(cut), j);
	assert_int_equal(psf_dataset_n_rows(cut), rows);
}

static void
test_data_cache_train_end_is_a_view_of_the_cache(void **state)
{
	fixture *fx = *state;
	char csv[256], hand[256], a[512] = "", b[512] = "";
	psf_data_opts all = {0}, cut = {0}, odd = {.keep = keep_odd};
	psf_data_opts fail = {.cache = true}, skip = {.bad_rows = PSF_BAD_ROWS_SKIP};
	psf_data_index *idx = NULL;
	psf_dataset *full, *ds = NULL;
	const int32_t *dates;
	size_t nd;
	int32_t ends[3];

	/* Skewed data: symbols start on different dates, so an early cut leaves
	 * some symbols with no rows at all. */
	snprintf(csv, sizeof(csv), "%s/g.csv", fx->dir);
	gen(csv, 23, 120, 9, 1);
	assert_int_equal(psf_data_scan(csv, PSF_BAD_ROWS_FAIL, a, sizeof(a), &idx), PSF_OK);
	dates = psf_data_index_dates(idx, &nd);
	ends[0] = dates[nd / 2];
	ends[1] = dates[1];
	ends[2] = dates[nd - 1] + 1; /* after every row: the whole input */
	psf_data_index_free(idx);
	/* The first load is a cut: it builds the cache of the whole input (a cut
	 * used to bypass the cache and parse the CSV every time). */
	cut.date_end = ends[0];
	psf_dataset_free(load_both(csv, &cut));
	check_ok(csv, NULL, NULL);
	full = load_both(csv, &all);
	for (size_t k = 0; k < 3; k++) {
		cut.date_end = odd.date_end = ends[k];
		ds = load_both(csv, &cut);
		assert_is_prefix(full, ds, ends[k]);
		psf_dataset_free(ds);
		psf_dataset_free(load_both(csv, &odd)); /* a trainer's shard of the cut */
	}
	psf_dataset_free(full);

	/* A symbol with rows only from the cut on is not listed; a duplicate row
	 * after the cut is a bad row with and without the cache (every row is
	 * checked; the cut is taken after the load). */
	snprintf(hand, sizeof(hand), "%s/cut.csv", fx->dir);
	put(hand,
	    "date,symbol,close,volume\n"
	    "2024-01-02,AAA,1,10\n"
	    "2024-01-03,AAA,2,\n"
	    "2024-01-04,BBB,5,7\n"
	    "2024-01-04,AAA,3,9\n"
	    "2024-01-05,AAA,4,8\n"
	    "2024-01-05,AAA,4.5,8\n");
	assert_int_equal(psf_date_parse("2024-01-04", 10, &skip.date_end), PSF_OK);
	ds = load_both(hand, &skip);
	assert_int_equal(psf_dataset_n_series(ds), 1);
	assert_int_equal(psf_dataset_n_rows(ds), 2);
	assert_string_equal(psf_dataset_series(ds, 0)->symbol, "AAA");
	assert_true(psf_dataset_series(ds, 0)->close[1] == 2.0);
	assert_int_equal(psf_dataset_n_skipped(ds), 1);
	assert_non_null(strstr(psf_dataset_first_error(ds), "duplicate row for AAA on 2024-01-05"));
	psf_dataset_free(ds);
	ds = NULL;
	fail.date_end = skip.date_end;
	assert_int_equal(
	    psf_data_load(hand, &(psf_data_opts){.date_end = skip.date_end}, a, sizeof(a), &ds),
	    PSF_EINVAL);
	assert_int_equal(psf_data_load(hand, &fail, b, sizeof(b), &ds), PSF_EINVAL);
	assert_string_equal(a, b);
	assert_null(ds);
}

/* as_nobody runs build in a child process that, when this test runs as root,
 * drops to nobody first (root may write anywhere); returns its exit code. */
static int
build_as_nobody(const char *csv, const char *cache_dir, const char *want)
{
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		char err[512] = "", where[4200] = "";
		psf_data_opts o = {.cache_dir = cache_dir};

		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(3);
		if (psf_data_cache_build(csv, &o, err, sizeof(err), where, sizeof(where)) != PSF_OK)
			_exit(4);
		_exit(strstr(where, want) == where ? 0 : 5);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

static void
test_data_cache_read_only_dir_falls_back(void **state)
{
	fixture *fx = *state;
	char ro[256], csv[300], run[256], err[512] = "", where[4200] = "";
	psf_dataset *ds = NULL;
	psf_data_opts o = {.cache = true};

	snprintf(ro, sizeof(ro), "%s/ro", fx->dir);
	snprintf(run, sizeof(run), "%s/run", fx->dir);
	snprintf(csv, sizeof(csv), "%s/prices.csv", ro);
	assert_int_equal(chmod(fx->dir, 0755), 0);
	assert_int_equal(mkdir(ro, 0755), 0);
	assert_int_equal(mkdir(run, 0777), 0);
	assert_int_equal(chmod(run, 0777), 0);
	gen(csv, 4, 20, 9, 0);
	assert_int_equal(chmod(csv, 0644), 0);
	assert_int_equal(chmod(ro, 0555), 0);
	/* Without a fallback there is no place: the build says so. */
	assert_int_equal(build_as_nobody(csv, NULL, ""), 4);
	/* With one, the cache goes there as prices.csv-HASH.psfcache. */
	assert_int_equal(build_as_nobody(csv, run, run), 0);
	assert_int_equal(psf_data_cache_check(csv, run, err, sizeof(err), where, sizeof(where)),
	    PSF_OK);
	assert_non_null(strstr(where, "/run/prices.csv-"));
	assert_int_equal(psf_data_cache_check(csv, NULL, err, sizeof(err), NULL, 0), PSF_ENOENT);
	/* A load with the same cache_dir reads it; the data is the CSV's. */
	o.cache_dir = run;
	psf_dataset_free(load_both(csv, &o));
	(void)ds;
}

static void
test_data_cache_concurrent_builders_end_with_one(void **state)
{
	fixture *fx = *state;
	char csv[256], cache[300];
	pid_t pids[3];
	DIR *d;
	struct dirent *de;
	int n_files = 0;

	snprintf(csv, sizeof(csv), "%s/g.csv", fx->dir);
	snprintf(cache, sizeof(cache), "%s.psfcache", csv);
	gen(csv, 300, 300, 11, 1);
	for (int i = 0; i < 3; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char err[512] = "", where[4200] = "", log[300];

			snprintf(log, sizeof(log), "%s.log%d", fx->dir, i);
			if (freopen(log, "w", stderr) == NULL)
				_exit(2);

			_exit(psf_data_cache_build(csv, NULL, err, sizeof(err), where,
			          sizeof(where)) == PSF_OK &&
			            strcmp(where, cache) == 0
			        ? 0
			        : 1);
		}
	}
	for (int i = 0; i < 3; i++) {
		int status = 0;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* One of them parsed the CSV; the others waited and read its cache. */
	for (int i = 0; i < 3; i++) {
		char log[300], *text = NULL;
		size_t len;

		snprintf(log, sizeof(log), "%s.log%d", fx->dir, i);
		assert_int_equal(psf_read_file(log, &text, &len), PSF_OK);
		n_files += strstr(text, "parsed 300 symbols") != NULL;
		free(text);
		unlink(log);
	}
	assert_int_equal(n_files, 1);
	n_files = 0;
	check_ok(csv, NULL, cache);
	psf_dataset_free(load_both(csv, &(psf_data_opts){0}));
	/* g.csv, its cache and the lock file; no temp file left behind. */
	assert_non_null(d = opendir(fx->dir));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n_files++;
		assert_null(strstr(de->d_name, ".tmp."));
	}
	closedir(d);
	assert_int_equal(n_files, 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_data_cache_round_trip_is_bit_identical, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_data_cache_invalidated_by_size_and_mtime, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_data_cache_corrupt_is_rejected_and_rebuilt, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_data_cache_fail_and_skip_policies, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_data_cache_train_end_is_a_view_of_the_cache, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_data_cache_read_only_dir_falls_back, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_data_cache_concurrent_builders_end_with_one, setup,
	        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
