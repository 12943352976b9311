/* data_test.c -- CSV and partition loading, scan, cutoff, dates and numbers,
 * synthetic data (lib/data/data.h, lib/data/datagen.h). Real files in a mkdtemp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	strcpy(fx->dir, "/tmp/psf_data_test_XXXXXX");
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
	psf_err rv = psf_rm_rf(fx->dir);

	free(fx);
	return rv == PSF_OK ? 0 : -1;
}

/* put writes text to dir/name and returns the path (static buffer per slot). */
static const char *
put(const fixture *fx, const char *name, const char *text)
{
	static char path[4][512];
	static int slot;
	char *p = path[slot++ % 4];
	FILE *f;

	snprintf(p, sizeof(path[0]), "%s/%s", fx->dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	return p;
}

static int32_t
day(const char *iso)
{
	int32_t d = 0;

	assert_int_equal(psf_date_parse(iso, strlen(iso), &d), PSF_OK);
	return d;
}

static void
test_data_load_shuffled_rows_and_columns(void **state)
{
	const char *path = put(*state, "p.csv",
	    "close,Symbol,extra,DATE,volume\r\n"
	    "11.5,BBB,x,2024-01-03,100\r\n"
	    "10.25,AAA,y,2024-01-05,\r\n"
	    "\"10.0\",AAA,z, 2024-01-02 ,300\r\n"
	    "12,BBB,,2024-01-02,400\r\n"
	    "10.5,AAA,,2024-01-03,1e3\r\n"
	    "\r\n");
	char err[256] = "";
	psf_dataset *ds = NULL;
	const psf_series *a, *b;

	assert_int_equal(psf_data_load(path, NULL, err, sizeof(err), &ds), PSF_OK);
	assert_int_equal(psf_dataset_n_series(ds), 2);
	assert_int_equal(psf_dataset_n_rows(ds), 5);
	assert_int_equal(psf_dataset_columns(ds), PSF_COL_VOLUME);
	assert_int_equal(psf_dataset_n_skipped(ds), 0);
	assert_string_equal(psf_dataset_first_error(ds), "");
	a = psf_dataset_series(ds, 0);
	b = psf_dataset_series(ds, 1);
	assert_null(psf_dataset_series(ds, 2));
	assert_string_equal(a->symbol, "AAA");
	assert_string_equal(b->symbol, "BBB");
	assert_ptr_equal(psf_dataset_find(ds, "BBB"), b);
	assert_null(psf_dataset_find(ds, "CCC"));
	assert_int_equal(a->n, 3);
	assert_int_equal(a->date[0], day("2024-01-02"));
	assert_int_equal(a->date[1], day("2024-01-03"));
	assert_int_equal(a->date[2], day("2024-01-05"));
	assert_true(a->close[0] == 10.0 && a->close[1] == 10.5 && a->close[2] == 10.25);
	assert_true(a->volume[0] == 300 && a->volume[1] == 1000 && isnan(a->volume[2]));
	assert_true(isnan(a->open[0]) && isnan(a->high[1]) && isnan(a->low[2]));
	assert_int_equal(b->n, 2);
	assert_true(b->close[0] == 12 && b->close[1] == 11.5);
	assert_int_equal(psf_series_index(a, day("2024-01-04")), 1);
	assert_int_equal(psf_series_index(a, PSF_DATE_LAST), 2);
	assert_int_equal(psf_series_index(a, day("2024-01-01")), SIZE_MAX);
	psf_dataset_free(ds);
}

/* Each malformed input gives exactly `file:line: reason` and PSF_EINVAL. */
static void
test_data_bad_rows_exact_messages(void **state)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
	    {"date,symbol,open\n2024-01-02,AAA,1\n", "1: missing required column 'close'"},
	    {"date,close,symbol,Close\n", "1: duplicate column 'close'"},
	    {"", "1: file is empty (expected a header line)"},
	    {"date,symbol,close\n2024-01-02,AAA,1\n2024-01-03,AAA\n",
	        "3: expected 3 fields, got 2"},
	    {"date,symbol,close\n2024-01-02,AAA,1,2\n", "2: expected 3 fields, got 4"},
	    {"date,symbol,close\n2024-01-02,AAA,abc\n", "2: close 'abc' is not a number"},
	    {"date,symbol,close\n2024-01-02,AAA,\n", "2: close '' is not a number"},
	    {"date,symbol,close\n2024-01-02,AAA,0\n", "2: close '0' is not a finite number > 0"},
	    {"date,symbol,close\n2024-01-02,AAA,-3.5\n",
	        "2: close '-3.5' is not a finite number > 0"},
	    {"date,symbol,close\n2024-01-02,AAA,inf\n",
	        "2: close 'inf' is not a finite number > 0"},
	    {"date,symbol,close\n2024-01-02,AAA,NaN\n",
	        "2: close 'NaN' is not a finite number > 0"},
	    {"date,symbol,close\n2024-02-30,AAA,1\n",
	        "2: date '2024-02-30' is not a valid YYYY-MM-DD date"},
	    {"date,symbol,close\n01/02/2024,AAA,1\n",
	        "2: date '01/02/2024' is not a valid YYYY-MM-DD date"},
	    {"date,symbol,close\n2024-01-02,../x,1\n",
	        "2: symbol '../x' is not valid (1-63 of A-Z a-z 0-9 . _ ^ -)"},
	    {"date,symbol,close\n2024-01-02,,1\n",
	        "2: symbol '' is not valid (1-63 of A-Z a-z 0-9 . _ ^ -)"},
	    {"date,symbol,close,volume\n2024-01-02,AAA,1,x1\n", "2: volume 'x1' is not a number"},
	    {"date,symbol,close,high\n2024-01-02,AAA,1,0x10\n", "2: high '0x10' is not a number"},
	    {"date,symbol,close\n2024-01-02,AAA,1\n2024-01-03,AAA,2\n2024-01-02,AAA,3\n",
	        "4: duplicate row for AAA on 2024-01-02 (first at line 2)"},
	};
	fixture *fx = *state;

	for (size_t i = 0; i < PSF_ARRAY_LEN(cases); i++) {
		char name[32], want[512], err[512] = "";
		const char *path;
		psf_dataset *ds = NULL;

		snprintf(name, sizeof(name), "prices%zu.csv", i);
		path = put(fx, name, cases[i].text);
		snprintf(want, sizeof(want), "%s:%s", path, cases[i].msg);
		assert_int_equal(psf_data_load(path, NULL, err, sizeof(err), &ds), PSF_EINVAL);
		assert_null(ds);
		assert_string_equal(err, want);
	}
}

static void
test_data_skip_policy_counts(void **state)
{
	const char *path = put(*state, "p.csv",
	    "date,symbol,close\n"
	    "2024-01-02,AAA,1\n"
	    "2024-01-03,AAA,abc\n" /* line 3: bad close */
	    "2024-01-02,AAA,5\n"   /* line 4: duplicate of line 2 */
	    "2024-01-04,AAA\n"     /* line 5: field count */
	    "2024-13-01,BBB,2\n"   /* line 6: bad date */
	    "2024-01-05,BBB,3\n"
	    "2024-01-04,AAA,4\n");
	psf_data_opts opts = {.bad_rows = PSF_BAD_ROWS_SKIP};
	char err[256] = "", want[512];
	psf_dataset *ds = NULL;
	const psf_series *a;

	assert_int_equal(psf_data_load(path, &opts, err, sizeof(err), &ds), PSF_OK);
	assert_int_equal(psf_dataset_n_skipped(ds), 4);
	snprintf(want, sizeof(want), "%s:3: close 'abc' is not a number", path);
	assert_string_equal(psf_dataset_first_error(ds), want);
	assert_int_equal(psf_dataset_n_rows(ds), 3);
	a = psf_dataset_find(ds, "AAA");
	assert_non_null(a);
	assert_int_equal(a->n, 2);
	assert_true(a->close[0] == 1 && a->close[1] == 4); /* the first of the duplicates */
	assert_int_equal(psf_dataset_find(ds, "BBB")->n, 1);
	psf_dataset_free(ds);

	/* The same file under the fail policy stops at its first bad line. */
	assert_int_equal(psf_data_load(path, NULL, err, sizeof(err), &ds), PSF_EINVAL);
	assert_string_equal(err, want);
}

static void
test_data_missing_path(void **state)
{
	fixture *fx = *state;
	char path[256], err[512] = "";
	psf_dataset *ds = NULL;
	psf_data_index *idx = NULL;

	snprintf(path, sizeof(path), "%s/nope.csv", fx->dir);
	assert_int_equal(psf_data_load(path, NULL, err, sizeof(err), &ds), PSF_ENOENT);
	assert_non_null(strstr(err, path));
	assert_int_equal(psf_data_scan(path, PSF_BAD_ROWS_FAIL, err, sizeof(err), &idx),
	    PSF_ENOENT);
	assert_null(idx);
	/* A directory that is not a partition. */
	assert_int_equal(psf_data_load(fx->dir, NULL, err, sizeof(err), &ds), PSF_EINVAL);
	assert_non_null(strstr(err, "no symbol=XYZ folders"));
	assert_int_equal(psf_data_load(NULL, NULL, NULL, 0, &ds), PSF_EINVAL);
}

static int
keep_aaa(const char *symbol, void *arg)
{
	(*(int *)arg)++;
	return strcmp(symbol, "AAA") == 0;
}

static void
test_data_filter_loads_only_kept_symbols(void **state)
{
	const char *path = put(*state, "p.csv",
	    "date,symbol,close\n"
	    "2024-01-02,AAA,1\n"
	    "2024-01-02,BBB,2\n"
	    "2024-01-03,BBB,3\n"
	    "2024-01-03,AAA,4\n"
	    "2024-01-02,CCC,5\n");
	int calls = 0;
	psf_data_opts opts = {.keep = keep_aaa, .keep_arg = &calls};
	char err[256] = "";
	psf_dataset *ds = NULL;

	assert_int_equal(psf_data_load(path, &opts, err, sizeof(err), &ds), PSF_OK);
	assert_int_equal(calls, 3); /* once per distinct symbol */
	assert_int_equal(psf_dataset_n_series(ds), 1);
	assert_string_equal(psf_dataset_series(ds, 0)->symbol, "AAA");
	assert_int_equal(psf_dataset_n_rows(ds), 2);
	psf_dataset_free(ds);
}

static void
gen(const fixture *fx, const char *name, uint32_t symbols, uint32_t days, uint64_t seed, int skew,
    char *path, size_t len)
{
	psf_datagen_cfg cfg = {.symbols = symbols, .days = days, .seed = seed, .skew = skew};

	snprintf(path, len, "%s/%s", fx->dir, name);
	assert_int_equal(psf_datagen_write(&cfg, path, NULL, 0), PSF_OK);
}

static void
assert_same_series(const psf_series *a, const psf_series *b)
{
	assert_string_equal(a->symbol, b->symbol);
	assert_int_equal(a->n, b->n);
	assert_memory_equal(a->date, b->date, a->n * sizeof(int32_t));
	assert_memory_equal(a->close, b->close, a->n * sizeof(double));
	assert_memory_equal(a->open, b->open, a->n * sizeof(double));
	assert_memory_equal(a->high, b->high, a->n * sizeof(double));
	assert_memory_equal(a->low, b->low, a->n * sizeof(double));
	assert_memory_equal(a->volume, b->volume, a->n * sizeof(double));
}

static void
assert_same_index(const psf_data_index *a, const psf_data_index *b)
{
	const int32_t *da, *db;
	size_t na, nb;

	assert_int_equal(psf_data_index_n_symbols(a), psf_data_index_n_symbols(b));
	for (size_t i = 0; i < psf_data_index_n_symbols(a); i++) {
		uint64_t ra = 0, rb = 0;

		assert_string_equal(psf_data_index_symbol(a, i, &ra),
		    psf_data_index_symbol(b, i, &rb));
		assert_int_equal(ra, rb);
	}
	da = psf_data_index_dates(a, &na);
	db = psf_data_index_dates(b, &nb);
	assert_int_equal(na, nb);
	assert_memory_equal(da, db, na * sizeof(*da));
}

static int
keep_s0003(const char *symbol, void *arg)
{
	(void)arg;
	return strcmp(symbol, "S0003") == 0;
}

/* stop_after: a load's stop test that says "stop" from its n-th call on. */
typedef struct stop_after {
	int calls, n;
} stop_after;

static bool
stop_after_fn(void *arg)
{
	stop_after *sa = arg;

	return ++sa->calls >= sa->n;
}

/* A stop request ends a long load between chunks of rows, with PSF_ECLOSED and
 * nothing leaked; a stop test that never fires changes nothing. */
static void
test_data_load_stops_on_request(void **state)
{
	char path[128], err[256] = "";
	stop_after never = {0, 1 << 30}, second = {0, 2};
	psf_data_opts opts = {.stop = stop_after_fn, .stop_arg = &never};
	psf_dataset *ds = NULL;

	gen(*state, "big.csv", 100, 2500, 7, 0, path, sizeof(path)); /* > 3 chunks of rows */
	assert_int_equal(psf_data_load(path, &opts, err, sizeof(err), &ds), PSF_OK);
	assert_true(psf_dataset_n_rows(ds) > 3 * PSF_DATA_STOP_ROWS);
	assert_int_equal(never.calls, (int)((psf_dataset_n_rows(ds) + 1) / PSF_DATA_STOP_ROWS));
	psf_dataset_free(ds);
	ds = NULL;
	opts.stop_arg = &second;
	assert_int_equal(psf_data_load(path, &opts, err, sizeof(err), &ds), PSF_ECLOSED);
	assert_null(ds);
	assert_int_equal(second.calls, 2); /* asked no more once it said stop */
	assert_non_null(strstr(err, "loading stopped by request"));
}

static void
test_data_partition_round_trip(void **state)
{
	fixture *fx = *state;
	char csv[256], dir[256], err[512] = "", junk[512];
	psf_data_opts only3 = {.keep = keep_s0003};
	psf_dataset *a = NULL, *b = NULL, *c = NULL, *d = NULL;
	psf_data_index *ia = NULL, *ib = NULL;
	FILE *f;

	gen(fx, "g.csv", 12, 40, 7, 1, csv, sizeof(csv));
	snprintf(dir, sizeof(dir), "%s/part", fx->dir);
	assert_int_equal(psf_data_partition(csv, dir, PSF_BAD_ROWS_FAIL, err, sizeof(err)), PSF_OK);
	assert_int_equal(psf_data_load(csv, NULL, err, sizeof(err), &a), PSF_OK);
	assert_int_equal(psf_data_load(dir, NULL, err, sizeof(err), &b), PSF_OK);
	assert_int_equal(psf_dataset_n_series(a), 12);
	assert_int_equal(psf_dataset_n_series(b), 12);
	assert_int_equal(psf_dataset_columns(b), psf_dataset_columns(a));
	for (size_t i = 0; i < 12; i++)
		assert_same_series(psf_dataset_series(a, i), psf_dataset_series(b, i));
	/* The manifest scan of the directory equals a full scan of the CSV. */
	assert_int_equal(psf_data_scan(csv, PSF_BAD_ROWS_FAIL, err, sizeof(err), &ia), PSF_OK);
	assert_int_equal(psf_data_scan(dir, PSF_BAD_ROWS_FAIL, err, sizeof(err), &ib), PSF_OK);
	assert_same_index(ia, ib);
	/* Only kept symbols' files are read: another symbol's broken file is harmless. */
	snprintf(junk, sizeof(junk), "%s/symbol=S0005/data.csv", dir);
	f = fopen(junk, "w");
	assert_non_null(f);
	fputs("not,a,price,file\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(psf_data_load(dir, &only3, err, sizeof(err), &c), PSF_OK);
	assert_int_equal(psf_dataset_n_series(c), 1);
	assert_same_series(psf_dataset_series(c, 0), psf_dataset_find(a, "S0003"));
	assert_int_equal(psf_data_load(dir, NULL, err, sizeof(err), &d), PSF_EINVAL);
	assert_null(d);
	assert_non_null(strstr(err, "symbol=S0005/data.csv:1: missing required column 'date'"));
	/* Partitioning into a directory that is not empty is refused. */
	assert_int_equal(psf_data_partition(csv, dir, PSF_BAD_ROWS_FAIL, err, sizeof(err)),
	    PSF_EEXIST);
	assert_non_null(strstr(err, "exists and is not empty"));
	/* A damaged manifest is an error, not a wrong index. */
	snprintf(junk, sizeof(junk), "%s/manifest.csv", dir);
	f = fopen(junk, "w");
	assert_non_null(f);
	fputs("symbol,rows,first_date,last_date\nS0000,many,2024-01-01,2024-01-02\n", f);
	assert_int_equal(fclose(f), 0);
	psf_data_index_free(ib);
	ib = NULL;
	assert_int_equal(psf_data_scan(dir, PSF_BAD_ROWS_FAIL, err, sizeof(err), &ib), PSF_EINVAL);
	assert_null(ib);
	assert_non_null(strstr(err, "manifest.csv:2: malformed line"));
	psf_data_index_free(ia);
	psf_dataset_free(a);
	psf_dataset_free(b);
	psf_dataset_free(c);
}

static void
test_data_partition_rejects_mismatched_symbol(void **state)
{
	fixture *fx = *state;
	char dir[256], path[512], err[512] = "";
	psf_dataset *ds = NULL;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/hand/symbol=AAA", fx->dir);
	assert_int_equal(psf_mkdir_p(dir), PSF_OK);
	snprintf(path, sizeof(path), "%s/data.csv", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("date,close,symbol\n2024-01-02,1,AAA\n2024-01-03,2,BBB\n", f);
	assert_int_equal(fclose(f), 0);
	snprintf(dir, sizeof(dir), "%s/hand", fx->dir);
	assert_int_equal(psf_data_load(dir, NULL, err, sizeof(err), &ds), PSF_EINVAL);
	assert_non_null(strstr(err, "data.csv:3: symbol 'BBB' does not match its folder's 'AAA'"));
	/* Files without a symbol column take it from the folder. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("date,close\n2024-01-03,2\n2024-01-02,1\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(psf_data_load(dir, NULL, err, sizeof(err), &ds), PSF_OK);
	assert_string_equal(psf_dataset_series(ds, 0)->symbol, "AAA");
	assert_int_equal(psf_dataset_series(ds, 0)->n, 2);
	psf_dataset_free(ds);
}

static void
test_data_scan_and_cutoff(void **state)
{
	const char *path = put(*state, "p.csv",
	    "date,symbol,close\n"
	    "2024-01-04,BBB,1\n"
	    "2024-01-02,AAA,1\n"
	    "2024-01-03,AAA,1\n"
	    "2024-01-08,BBB,1\n"
	    "2024-01-04,AAA,1\n");
	int32_t d[10], cut = 0;
	char err[256] = "";
	psf_data_index *idx = NULL;
	const int32_t *dates;
	size_t n;
	uint64_t rows = 0;

	assert_int_equal(psf_data_scan(path, PSF_BAD_ROWS_FAIL, err, sizeof(err), &idx), PSF_OK);
	assert_int_equal(psf_data_index_n_symbols(idx), 2);
	assert_string_equal(psf_data_index_symbol(idx, 0, &rows), "AAA");
	assert_int_equal(rows, 3);
	assert_string_equal(psf_data_index_symbol(idx, 1, &rows), "BBB");
	assert_int_equal(rows, 2);
	assert_null(psf_data_index_symbol(idx, 2, &rows));
	dates = psf_data_index_dates(idx, &n);
	assert_int_equal(n, 4);
	assert_int_equal(dates[0], day("2024-01-02"));
	assert_int_equal(dates[3], day("2024-01-08"));
	assert_int_equal(psf_data_cutoff_date(dates, n, 0.5, &cut), PSF_OK);
	assert_int_equal(cut, day("2024-01-04"));
	psf_data_index_free(idx);

	for (int i = 0; i < 10; i++)
		d[i] = 100 + i;
	assert_int_equal(psf_data_cutoff_date(d, 10, 0.2, &cut), PSF_OK);
	assert_int_equal(cut, 108); /* 2 test dates */
	assert_int_equal(psf_data_cutoff_date(d, 10, 0.25, &cut), PSF_OK);
	assert_int_equal(cut, 107); /* ceil(2.5) = 3 */
	assert_int_equal(psf_data_cutoff_date(d, 10, 0.001, &cut), PSF_OK);
	assert_int_equal(cut, 109); /* at least one test date */
	assert_int_equal(psf_data_cutoff_date(d, 10, 0.999, &cut), PSF_OK);
	assert_int_equal(cut, 101); /* at least one train date */
	cut = 42;
	assert_int_equal(psf_data_cutoff_date(d, 1, 0.2, &cut), PSF_EINVAL);
	assert_int_equal(psf_data_cutoff_date(d, 10, 0.0, &cut), PSF_EINVAL);
	assert_int_equal(psf_data_cutoff_date(d, 10, 1.0, &cut), PSF_EINVAL);
	assert_int_equal(psf_data_cutoff_date(d, 10, NAN, &cut), PSF_EINVAL);
	assert_int_equal(cut, 42);
}

static void
test_data_dates_round_trip(void **state)
{
	char buf[11];
	int32_t d = -1;

	(void)state;
	assert_int_equal(day("1970-01-01"), 0);
	assert_int_equal(day("2000-03-01") - day("2000-02-28"), 2);
	assert_int_equal(day("1900-03-01") - day("1900-02-28"), 1);
	assert_int_equal(psf_date_parse("1900-02-29", 10, &d), PSF_EINVAL);
	assert_int_equal(psf_date_parse("2024-1-02", 9, &d), PSF_EINVAL);
	assert_int_equal(psf_date_parse("0000-01-01", 10, &d), PSF_EINVAL);
	assert_int_equal(psf_date_parse("2024-01-0x", 10, &d), PSF_EINVAL);
	assert_int_equal(psf_date_dow(day("2024-12-31")), 1); /* Tuesday */
	assert_int_equal(psf_date_dow(day("1969-12-29")), 0); /* Monday */
	assert_int_equal(psf_date_dow(day("0001-01-01")), 0); /* Monday, proleptic */
	for (int32_t x = day("0001-01-01"); x <= day("9999-12-31"); x += 97) {
		psf_date_format(x, buf);
		assert_int_equal(day(buf), x);
	}
	psf_date_format(day("9999-12-31") + 1, buf);
	assert_string_equal(buf, "0000-00-00");
}

static void
test_data_numbers_match_strtod(void **state)
{
	static const char *good[] = {"0", "-0.0", "1.", ".5", "+3", "1e308", "4.9e-324", "0.1",
	    "123.456", "1e-7", "2.5E+3", "12345678901234567890123", "0.000000000000000000000000001",
	    "nan", "inf", "-Infinity", "9007199254740993",
	    "179769313486231570000000000000000000000000000000000000000000000000000000000000"
	    "000000000000000000000000000000000000000000000000000000000000000000000"};
	static const char *bad[] = {"", "-", ".", "1e", "1e+", "0x10", "1,5", "abc", "1.2.3", "--1",
	    " 1", "1 ", "e5"};
	uint64_t x = 88172645463325252ull;
	char buf[64];
	double v;

	(void)state;
	for (size_t i = 0; i < PSF_ARRAY_LEN(good); i++) {
		double want = strtod(good[i], NULL);

		assert_int_equal(psf_number_parse(good[i], strlen(good[i]), &v), PSF_OK);
		assert_true((isnan(want) && isnan(v)) || memcmp(&want, &v, sizeof(v)) == 0);
	}
	for (size_t i = 0; i < PSF_ARRAY_LEN(bad); i++)
		assert_int_equal(psf_number_parse(bad[i], strlen(bad[i]), &v), PSF_EINVAL);
	for (int i = 0; i < 20000; i++) {
		double d, back;
		size_t n;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(&d, &x, sizeof(d));
		if (!isfinite(d))
			continue;
		if (i % 2 == 0)
			d = (double)(x % 100000000) / 10000.0; /* prices with 4 decimals */
		n = psf_number_format(d, buf);
		assert_int_equal(n, strlen(buf));
		assert_int_equal(psf_number_parse(buf, n, &back), PSF_OK);
		assert_true(back == d);
		assert_true(strtod(buf, NULL) == d);
	}
	assert_int_equal(psf_number_format(12.5, buf), 4);
	assert_string_equal(buf, "12.5");
	psf_number_format(-0.0001, buf);
	assert_string_equal(buf, "-0.0001");
	assert_int_equal(psf_number_format(NAN, buf), 0);
}

/* Mangled input never crashes: every load ends in PSF_OK with a well-formed
 * dataset or PSF_EINVAL with a `file:line: reason` message. */
static void
test_data_mangled_input_is_rejected_cleanly(void **state)
{
	static const char base[] = "date,symbol,open,high,low,close,volume\n"
	                           "2024-01-02,AAA,1.5,1.75,1.25,1.5,100\n"
	                           "2024-01-03,AAA,1.5,1.75,1.25,1.625,200\n"
	                           "2024-01-02,BBB,20,21,19,20.5,3000\n"
	                           "2024-01-04,BBB,20,21,19,21.25,\n";
	static const char noise[] = ",\n\r\"-.e0123456789ABZ \t\xff";
	fixture *fx = *state;
	uint64_t x = 0x2545F4914F6CDD1Dull;
	char text[sizeof(base) + 64], err[512];

	for (int round = 0; round < 600; round++) {
		size_t len = sizeof(base) - 1;
		psf_data_opts opts = {
		    .bad_rows = round % 2 ? PSF_BAD_ROWS_SKIP : PSF_BAD_ROWS_FAIL};
		const char *path;
		psf_dataset *ds = NULL;
		psf_err rv;

		memcpy(text, base, sizeof(base));
		for (int k = 0; k < 1 + round % 4; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			text[x % len] = noise[(x >> 32) % (sizeof(noise) - 1)];
		}
		path = put(fx, "m.csv", text);
		err[0] = '\0';
		rv = psf_data_load(path, &opts, err, sizeof(err), &ds);
		if (rv != PSF_OK) {
			assert_int_equal(rv, PSF_EINVAL);
			assert_int_equal(strncmp(err, path, strlen(path)), 0);
			assert_null(ds);
			continue;
		}
		for (size_t i = 0; i < psf_dataset_n_series(ds); i++) {
			const psf_series *s = psf_dataset_series(ds, i);

			for (size_t t = 0; t < s->n; t++) {
				assert_true(isfinite(s->close[t]) && s->close[t] > 0);
				assert_true(t == 0 || s->date[t] > s->date[t - 1]);
			}
		}
		psf_dataset_free(ds);
	}
}

static int
read_all(const char *path, char **out, size_t *len)
{
	return psf_read_file(path, out, len) == PSF_OK;
}

static void
test_datagen_same_seed_same_bytes(void **state)
{
	fixture *fx = *state;
	char p1[256], p2[256], p3[256], *a = NULL, *b = NULL, *c = NULL;
	size_t la, lb, lc;

	gen(fx, "a.csv", 20, 60, 1234, 1, p1, sizeof(p1));
	gen(fx, "b.csv", 20, 60, 1234, 1, p2, sizeof(p2));
	gen(fx, "c.csv", 20, 60, 1235, 1, p3, sizeof(p3));
	assert_true(read_all(p1, &a, &la) && read_all(p2, &b, &lb) && read_all(p3, &c, &lc));
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	assert_true(la != lc || memcmp(a, c, la) != 0);
	free(a);
	free(b);
	free(c);
}

static void
test_datagen_business_days_and_skew(void **state)
{
	fixture *fx = *state;
	char path[256], err[256] = "";
	psf_dataset *ds = NULL;
	size_t full = 0, shorter = 0;
	int32_t end = day(PSF_DATAGEN_END_DATE);

	gen(fx, "plain.csv", 10, 30, 5, 0, path, sizeof(path));
	assert_int_equal(psf_data_load(path, NULL, err, sizeof(err), &ds), PSF_OK);
	assert_int_equal(psf_dataset_n_rows(ds), 300);
	assert_int_equal(psf_dataset_columns(ds), 0xF);
	for (size_t i = 0; i < psf_dataset_n_series(ds); i++) {
		const psf_series *s = psf_dataset_series(ds, i);

		assert_int_equal(s->n, 30);
		assert_int_equal(s->date[s->n - 1], end);
		for (size_t t = 0; t < s->n; t++) {
			assert_true(psf_date_dow(s->date[t]) < 5);
			assert_true(s->low[t] <= s->open[t] && s->open[t] <= s->high[t]);
			assert_true(s->low[t] <= s->close[t] && s->close[t] <= s->high[t]);
			assert_true(s->volume[t] > 0);
		}
	}
	psf_dataset_free(ds);

	gen(fx, "skew.csv", 200, 100, 5, 1, path, sizeof(path));
	assert_int_equal(psf_data_load(path, NULL, err, sizeof(err), &ds), PSF_OK);
	assert_int_equal(psf_dataset_n_series(ds), 200);
	for (size_t i = 0; i < psf_dataset_n_series(ds); i++) {
		const psf_series *s = psf_dataset_series(ds, i);

		assert_int_equal(s->date[s->n - 1], end);
		if (s->n == 100) {
			full++;
		} else {
			assert_true(s->n >= 20 && s->n <= 60);
			shorter++;
		}
	}
	assert_true(full >= 5 && full <= 40); /* about 10% */
	assert_true(shorter > 150);
	psf_dataset_free(ds);
}

static void
test_datagen_rejects_bad_config(void **state)
{
	fixture *fx = *state;
	psf_datagen_cfg cfg = {.symbols = 0, .days = 10, .seed = 1};
	char path[256], err[512] = "";

	snprintf(path, sizeof(path), "%s/x.csv", fx->dir);
	assert_int_equal(psf_datagen_write(&cfg, path, err, sizeof(err)), PSF_EINVAL);
	assert_string_equal(err,
	    "datagen: need an output path, 1..1000000 symbols and 2..20000 days");
	cfg.symbols = 2;
	cfg.days = 1;
	assert_int_equal(psf_datagen_write(&cfg, path, NULL, 0), PSF_EINVAL);
	assert_int_equal(psf_datagen_write(NULL, path, NULL, 0), PSF_EINVAL);
	cfg.days = 10;
	snprintf(path, sizeof(path), "%s/no/such/dir/x.csv", fx->dir);
	assert_int_equal(psf_datagen_write(&cfg, path, err, sizeof(err)), PSF_ENOENT);
	assert_non_null(strstr(err, "no/such/dir/x.csv: No such file or directory"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_data_load_shuffled_rows_and_columns, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_data_bad_rows_exact_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_skip_policy_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_missing_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_filter_loads_only_kept_symbols, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_data_load_stops_on_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_partition_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_partition_rejects_mismatched_symbol, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_data_scan_and_cutoff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_mangled_input_is_rejected_cleanly, setup,
	        teardown),
	    cmocka_unit_test(test_data_dates_round_trip),
	    cmocka_unit_test(test_data_numbers_match_strtod),
	    cmocka_unit_test_setup_teardown(test_datagen_same_seed_same_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_datagen_business_days_and_skew, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_datagen_rejects_bad_config, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
