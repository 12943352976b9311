/* data.h -- daily price data: CSV files and partition directories (DESIGN.md §7,
 * docs/data.md).
 *
 * Input is a CSV file with a header naming its columns, in any order and in any
 * letter case: date, symbol and close are required; open, high, low and volume
 * are optional; other columns are ignored. Dates are ISO YYYY-MM-DD. Rows may come
 * in any order and dates may have gaps. A path may also be a directory written by
 * `psfleet data partition` (datagen.h): DIR/symbol=XYZ/data.csv per symbol, of
 * which only the kept symbols' files are read.
 *
 * A row is bad when its field count differs from the header's, its date or
 * symbol is malformed, its close is not a finite number > 0, an optional field is
 * neither empty (= missing, NaN) nor a number, or the same (symbol, date) came
 * before. Bad rows are handled by psf_bad_rows (config.h): FAIL stops with one
 * line `file:line: reason` (e.g. "prices.csv:17: close 'abc' is not a number");
 * SKIP drops them, counts them and keeps the first such line. A broken header
 * (missing required column, duplicate column, empty file) always fails.
 *
 * Dates are int32 days since 1970-01-01 everywhere in psfleet.
 *
 * Every function here is thread-safe: no shared state. A loaded dataset is
 * immutable, so any number of threads may read it. */
#ifndef PSF_DATA_H
#define PSF_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/config/config.h"

/* Column bits for psf_dataset_columns. date, symbol and close are always there. */
#define PSF_COL_OPEN 0x1u
#define PSF_COL_HIGH 0x2u
#define PSF_COL_LOW 0x4u
#define PSF_COL_VOLUME 0x8u

/* The longest symbol accepted, in bytes. Symbols are 1..PSF_SYMBOL_MAX bytes of
 * [A-Za-z0-9._^-], not starting with '.', so each can name a directory. */
#define PSF_SYMBOL_MAX 63

/* The files `psfleet data partition` writes next to the symbol=XYZ/ folders:
 * manifest.csv (symbol,rows,first_date,last_date) and dates.csv (date: the sorted
 * unique dates). Written last, so their presence marks a complete partition. */
#define PSF_DATA_MANIFEST "manifest.csv"
#define PSF_DATA_DATES "dates.csv"

/* PSF_DATE_LAST is a date after every real date (see psf_series_index). */
#define PSF_DATE_LAST INT32_MAX

/* One symbol's history, sorted by date (strictly increasing). A plain view: the
 * arrays belong to whoever filled it (the dataset for psf_dataset_series, valid
 * until psf_dataset_free). Optional columns hold NaN where the value is missing;
 * callers that build a series themselves may also set an absent column to NULL. */
typedef struct psf_series {
	const char *symbol;
	size_t n;
	const int32_t *date;
	const double *close;
	const double *open;
	const double *high;
	const double *low;
	const double *volume;
} psf_series;

/* psf_data_keep_fn tells whether the loader keeps a symbol (1) or drops it (0),
 * e.g. to load a trainer's shard. Called once per distinct symbol, from the
 * loading thread. */
typedef int (*psf_data_keep_fn)(const char *symbol, void *arg);

/* Load options. A zeroed struct means: fail on bad rows, keep every symbol. */
typedef struct psf_data_opts {
	psf_bad_rows bad_rows;
	psf_data_keep_fn keep; /* NULL: keep all */
	void *keep_arg;
	/* stop (may be NULL): asked every PSF_DATA_STOP_ROWS lines of text; true
	 * ends the load with PSF_ECLOSED (a node's stop request during a long load) */
	bool (*stop)(void *arg);
	void *stop_arg;
	/* cache: use the binary cache of the parsed input (docs/data.md §9): read
	 * it when it is valid, else parse the whole input once and write it (under
	 * a lock, so concurrent loaders wait for the first). false (the zeroed
	 * default) parses the CSV every time. */
	bool cache;
	/* cache_dir (may be NULL): where the cache goes when the input's own
	 * directory is not writable, e.g. a node's run_dir. Created if missing. */
	const char *cache_dir;
	/* quiet: no info-level log lines about the cache (built, read, stale): the
	 * caller reports it itself, as `psfleet up` does. Warnings still go out. */
	bool quiet;
	/* date_end (0: none): rows dated on or after it are left out of the
	 * result (a backtest's training cut, data.train_end), and symbols left with
	 * no rows are not listed. The cut is taken after the whole input is loaded
	 * (parsed, or read from the cache), so every row is checked as without it:
	 * a bad or duplicate row after date_end counts (bad_rows) as any other. */
	int32_t date_end;
} psf_data_opts;

#define PSF_DATA_STOP_ROWS 65536

typedef struct psf_dataset psf_dataset;
typedef struct psf_data_index psf_data_index;

/* psf_data_load reads a CSV file or a partition directory. opts may be NULL
 * (defaults). Rows of symbols that opts->keep drops are checked only for their
 * field count and symbol, so a shard's load does not pay for other shards' rows
 * (psf_data_scan checks everything). Symbols left with no rows are not listed.
 * With opts->cache the symbols are copied out of the binary cache (docs/data.md
 * §9), which is built first when missing or stale: then every row of the input
 * is checked, as by psf_data_scan, and for a directory psf_dataset_columns is
 * the union over every file. The result is bit for bit the same.
 * On success *out gets a new dataset the caller frees with psf_dataset_free.
 * Returns PSF_EINVAL for bad input (a header problem, or a bad row under FAIL),
 * PSF_ENOENT for a missing path, PSF_ESYS for an I/O error, PSF_ENOMEM,
 * PSF_ECLOSED when opts->stop asked to stop; with
 * errbuf not NULL, one line saying why goes to errbuf (truncated to errlen,
 * always NUL-terminated). */
PSF_NODISCARD psf_err psf_data_load(const char *path, const psf_data_opts *opts, char *errbuf,
    size_t errlen, psf_dataset **out);

/* psf_dataset_free releases a dataset. NULL is fine. */
void psf_dataset_free(psf_dataset *ds);

/* psf_dataset_n_series returns the number of symbols, sorted by name (strcmp). */
size_t psf_dataset_n_series(const psf_dataset *ds);

/* psf_dataset_series returns series i (0-based), or NULL when i is out of range.
 * Valid until psf_dataset_free. */
const psf_series *psf_dataset_series(const psf_dataset *ds, size_t i);

/* psf_dataset_find returns the series of symbol, or NULL. Binary search. */
const psf_series *psf_dataset_find(const psf_dataset *ds, const char *symbol);

/* psf_dataset_n_rows returns the number of rows kept (over all series). */
size_t psf_dataset_n_rows(const psf_dataset *ds);

/* psf_dataset_columns returns the PSF_COL_* bits of the optional columns the
 * input had (for a directory: the union over the files read). */
unsigned psf_dataset_columns(const psf_dataset *ds);

/* psf_dataset_n_skipped returns the number of bad rows skipped (SKIP policy). */
size_t psf_dataset_n_skipped(const psf_dataset *ds);

/* psf_dataset_first_error returns the `file:line: reason` of the first bad row
 * skipped (lowest line), or "" when none was. Valid until psf_dataset_free. */
const char *psf_dataset_first_error(const psf_dataset *ds);

/* psf_series_index returns the index of the last row of s dated <= date
 * (PSF_DATE_LAST: the last row), or SIZE_MAX when every row is later. */
size_t psf_series_index(const psf_series *s, int32_t date);

/* psf_data_scan reads what sharding decisions need from a CSV file or partition
 * directory: every symbol with its row count, and the sorted unique dates over
 * all symbols. A CSV is fully parsed and checked (same rules and errors as
 * psf_data_load with no filter); for a directory, its manifest.csv and dates.csv
 * are read when both exist, else every file. On success *out gets a new index
 * the caller frees with psf_data_index_free. Errors as psf_data_load. */
PSF_NODISCARD psf_err psf_data_scan(const char *path, psf_bad_rows bad_rows, char *errbuf,
    size_t errlen, psf_data_index **out);

/* psf_data_opts_config fills opts from cfg's data section: bad_rows, cache
 * (data.cache) and cache_dir (cfg->run_dir); the rest is zeroed. Cannot fail. */
void psf_data_opts_config(const psf_config *cfg, psf_data_opts *opts);

/* psf_data_scan_opts is psf_data_scan with load options: opts->bad_rows, and
 * with opts->cache the index comes from the binary cache (built when missing or
 * stale, so the first scan of a fleet pays for the parse and the others read a
 * few kilobytes). opts->keep is ignored (every symbol is listed); opts->stop is
 * asked during a parse and while waiting for another process's build. opts may be
 * NULL (defaults). Errors as psf_data_load. */
PSF_NODISCARD psf_err psf_data_scan_opts(const char *path, const psf_data_opts *opts, char *errbuf,
    size_t errlen, psf_data_index **out);

/* psf_data_cache_build makes sure path has a valid cache (opts->cache_dir as in
 * psf_data_opts; opts->cache is implied), building it when it is missing or
 * stale. where (may be NULL) gets the cache file's path (truncated to wherelen).
 * Returns PSF_OK; PSF_ENOENT when no place for a cache is writable or the input
 * changed during the build (errbuf says which); or the errors of psf_data_load. */
PSF_NODISCARD psf_err psf_data_cache_build(const char *path, const psf_data_opts *opts,
    char *errbuf, size_t errlen, char *where, size_t wherelen);

/* psf_data_cache_check tells whether path has a valid cache beside it or in
 * cache_dir (may be NULL), without building one. Returns PSF_OK (where gets its
 * path), PSF_ENOENT (no cache file), or PSF_EINVAL (a cache file exists but is
 * stale or corrupt: errbuf says why, where names it); PSF_ESYS/PSF_ENOENT when
 * the input cannot be read. */
PSF_NODISCARD psf_err psf_data_cache_check(const char *path, const char *cache_dir, char *errbuf,
    size_t errlen, char *where, size_t wherelen);

/* psf_data_index_from builds the index of a loaded dataset (its kept symbols
 * only). On success *out gets a new index the caller frees with
 * psf_data_index_free. Returns PSF_OK or PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_data_index_from(const psf_dataset *ds, psf_data_index **out);

/* psf_data_index_free releases an index. NULL is fine. */
void psf_data_index_free(psf_data_index *idx);

/* psf_data_index_n_symbols returns the number of symbols (sorted by name). */
size_t psf_data_index_n_symbols(const psf_data_index *idx);

/* psf_data_index_symbol returns symbol i's name, or NULL when i is out of range;
 * *rows (may be NULL) gets its row count. Valid until psf_data_index_free. */
const char *psf_data_index_symbol(const psf_data_index *idx, size_t i, uint64_t *rows);

/* psf_data_index_dates returns the sorted unique dates; *n gets their number.
 * Valid until psf_data_index_free. */
const int32_t *psf_data_index_dates(const psf_data_index *idx, size_t *n);

/* psf_data_cutoff_date computes the train/test split date from sorted unique
 * dates: the first date of the last test_fraction of them. The number of test
 * dates is ceil(n * test_fraction) (up to rounding error 1e-9), kept within
 * [1, n - 1] so both sides have a date. Rows dated >= *out are test rows. Since
 * it depends only on the whole input's dates, every trainer gets the same value.
 * Returns PSF_EINVAL when n < 2, dates is NULL, or test_fraction is not in (0, 1);
 * then *out is untouched. */
PSF_NODISCARD psf_err psf_data_cutoff_date(const int32_t *dates, size_t n, double test_fraction,
    int32_t *out);

/* psf_date_parse parses exactly len bytes as YYYY-MM-DD (years 0001..9999, real
 * calendar days) into days since 1970-01-01. Returns PSF_OK or PSF_EINVAL. */
PSF_NODISCARD psf_err psf_date_parse(const char *s, size_t len, int32_t *out);

/* psf_date_format writes date as "YYYY-MM-DD" and a NUL into buf (11 bytes).
 * Dates outside years 0001..9999 are written as "0000-00-00". Cannot fail. */
void psf_date_format(int32_t date, char buf[11]);

/* psf_date_dow returns the day of week of date, 0 = Monday .. 6 = Sunday.
 * Cannot fail. */
int psf_date_dow(int32_t date);

/* psf_number_parse parses exactly len bytes as a decimal number (optional sign,
 * digits with an optional '.', optional exponent; also nan/inf spellings) with
 * the same result as strtod. Longer than 511 bytes is an error.
 * Returns PSF_OK or PSF_EINVAL. */
PSF_NODISCARD psf_err psf_number_parse(const char *s, size_t len, double *out);

/* psf_number_format writes v in the shortest plain decimal (up to 9 decimals)
 * that psf_number_parse reads back as exactly v, else in %.17g form, plus a NUL,
 * into buf (32 bytes); returns the length. NaN is written as "" (a missing
 * value). Cannot fail. */
size_t psf_number_format(double v, char buf[32]);

#endif
