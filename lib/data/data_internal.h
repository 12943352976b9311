/* data_internal.h -- private declarations shared by the data module's files:
 * lib/data/data.c (loading and assembly), lib/data/data_csv.c (fields and the row
 * parser), lib/data/data_index.c (scan and index) and lib/data/datagen.c. Not part
 * of the contract: include lib/data/data.h or lib/data/datagen.h instead. */
#ifndef PSF_DATA_INTERNAL_H
#define PSF_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/data/data.h"

/* Bytes of the error line a load, scan or write builds before copying it to the
 * caller's errbuf. */
#define DATA_MSG_LEN 320

/* data_msgf formats an error line into msg (DATA_MSG_LEN bytes), truncating;
 * always NUL-terminated. Cannot fail. */
void data_msgf(char *msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* data_copy_err copies msg, or psf_strerror(rv) when msg is empty, to errbuf
 * (truncating; nothing when errbuf is NULL or errlen 0). Cannot fail. */
void data_copy_err(char *errbuf, size_t errlen, const char *msg, psf_err rv);

enum { C_DATE, C_SYMBOL, C_CLOSE, C_OPEN, C_HIGH, C_LOW, C_VOLUME, C_COUNT };
#define N_OPT 4 /* open, high, low, volume: columns C_OPEN + k */

/* A field or line: len bytes at p, borrowed from the text being read. */
typedef struct span {
	const char *p;
	size_t len;
} span;

typedef struct sym_entry {
	char *name;
	size_t len;
	uint64_t hash;
	size_t count;  /* rows stored */
	uint32_t file; /* file its rows come from (dir mode; 0 for a CSV) */
	int keep;
} sym_entry;

/* Column store of the rows parsed so far; opt[k] is NULL until a file has that
 * column, then NaN-filled for earlier rows. */
typedef struct rowbuf {
	size_t n, cap;
	int32_t *date;
	uint32_t *sym;
	uint32_t *line;
	double *close;
	double *opt[N_OPT];
} rowbuf;

/* The state of one psf_data_load: symbols, rows and files read so far, and the
 * bad-row and error messages. Owned by data.c (init and fini); data_csv.c adds
 * symbols and rows to it. */
typedef struct loader {
	psf_data_opts opts;
	sym_entry *syms;
	size_t n_syms, cap_syms;
	uint32_t *slots; /* open addressing: id + 1, 0 = empty */
	size_t n_slots;
	rowbuf rb;
	char **files;
	size_t n_files;
	size_t n_skipped;
	uint64_t n_lines; /* lines read over every file: opts.stop is asked per chunk */
	uint64_t first_key;
	char first_err[DATA_MSG_LEN];
	char msg[DATA_MSG_LEN]; /* the error returned */
} loader;

/* A loaded dataset (data.c): series sorted by symbol, their rows contiguous in
 * date[] and in vals[] (close, open, high, low, volume: n_rows each, in that
 * order), names NUL-separated in names. */
struct psf_dataset {
	psf_series *series;
	size_t n_series;
	size_t n_rows;
	unsigned columns;
	size_t n_skipped;
	char first_error[DATA_MSG_LEN];
	char *names;
	int32_t *date;
	double *vals;
};

/* The symbol and date index (data_index.c). */
struct psf_data_index {
	size_t n_symbols;
	char **names;
	uint64_t *rows;
	size_t n_dates;
	int32_t *dates;
};

/* data_dataset_alloc allocates a dataset of n_series series (zeroed), names_len
 * bytes of names and n_rows rows. PSF_ENOMEM. */
psf_err data_dataset_alloc(size_t n_series, size_t names_len, size_t n_rows, psf_dataset **out);

/* data_index_alloc allocates an index of n_symbols names (NULL) and room for
 * n_dates dates (n_dates field 0). PSF_ENOMEM. */
psf_err data_index_alloc(size_t n_symbols, size_t n_dates, psf_data_index **out);

/* data_load_csv is psf_data_load without the cache: parse the CSV file or the
 * partition directory at path (opts not NULL; opts->cache is ignored). The error
 * line goes to msg (DATA_MSG_LEN bytes). */
psf_err data_load_csv(const char *path, const psf_data_opts *opts, char *msg, psf_dataset **out);

/* The binary cache (data_cache.c reads, data_cache_write.c writes; the format
 * is described in data_cache.c and docs/data.md §9). */
#include <limits.h>

#define CACHE_MAGIC "PSFCACHE"
#define CACHE_VERSION 1u
#define CACHE_ENDIAN 0x01020304u
#define CACHE_SUFFIX ".psfcache"
#define CACHE_ALIGN 64u

typedef struct cache_hdr {
	char magic[8];
	uint32_t version, endian;
	uint32_t hdr_len, kind; /* kind: 0 a CSV file, 1 a partition directory */
	uint32_t columns, n_files;
	uint64_t n_symbols, n_rows, n_dates, n_skipped;
	uint64_t src_size, src_ino; /* ino: a file replaced by a rename is another input */
	int64_t src_mtime_s, src_mtime_ns;
	uint64_t off_files, off_syms, off_names, names_len, off_dates, off_cols;
	uint64_t file_len;
	uint64_t meta_hash; /* XXH3-64 of bytes [0, off_cols) with this field 0 */
	uint32_t src_off, src_len, err_off, err_len; /* in names */
} cache_hdr;
_Static_assert(sizeof(cache_hdr) == 176, "the cache header is part of the file format");

typedef struct cache_file {
	uint64_t size;
	int64_t mtime_s, mtime_ns;
	uint32_t name_off, name_len;
} cache_file;

typedef struct cache_sym {
	uint64_t row_off, n;
	uint64_t hash; /* series_hash of its rows */
	int32_t first, last;
	uint32_t name_off, name_len;
} cache_sym;
_Static_assert(sizeof(cache_sym) == 40, "a cache_sym is part of the file format");

/* The stamp of the input: what a cache must match to be valid. */
typedef struct stamp {
	uint32_t kind;
	uint64_t size, ino;
	int64_t mtime_s, mtime_ns;
	char abs[PATH_MAX];
	size_t n_files;
	char **names;      /* directory: sorted symbol names */
	cache_file *files; /* their data.csv stamps (name fields unset) */
} stamp;

/* data_cache_align rounds v up to CACHE_ALIGN. */
uint64_t data_cache_align(uint64_t v);

/* data_cache_series_hash is XXH3-64 over a series' date bytes, then each value
 * column's (close, open, high, low, volume), each seeded with the hash so far. */
uint64_t data_cache_series_hash(const int32_t *date, const double *const col[5], size_t n);

/* data_cache_write writes ds (a full load of the input stamped st) as the cache
 * file, through a temp file renamed over it. PSF_ESYS etc. with msg set;
 * PSF_ENOMEM. */
psf_err data_cache_write(const char *file, const psf_dataset *ds, const stamp *st, char *msg);

typedef struct data_cache data_cache;

/* data_cache_get finds a valid cache of path, or builds one (under a lock, so
 * concurrent builders wait for the first), and maps it: *out gets the open cache
 * the caller closes with data_cache_close. *out is NULL (and PSF_OK returned) when
 * no cache can be used (cache off, no writable place, the input changed during
 * the build, or it holds skipped rows and opts->bad_rows is FAIL): the caller
 * then parses the CSV. Errors of the build's parse (PSF_EINVAL, PSF_ECLOSED, ...)
 * are returned with their line in msg. */
psf_err data_cache_get(const char *path, const psf_data_opts *opts, char *msg, data_cache **out);

/* data_cache_close unmaps a cache. NULL is fine. */
void data_cache_close(data_cache *c);

/* data_cache_dataset copies the symbols opts->keep keeps out of c into a new
 * dataset. PSF_EINVAL (msg says why) when a copied series fails its checks (the
 * cache is corrupt), PSF_ENOMEM. */
psf_err data_cache_dataset(data_cache *c, const psf_data_opts *opts, char *msg, psf_dataset **out);

/* data_cache_index builds the index (every symbol, the unique dates) of c.
 * PSF_ENOMEM. */
psf_err data_cache_index(const data_cache *c, psf_data_index **out);

/* data_cache_path returns the path of c's file. */
const char *data_cache_path(const data_cache *c);

/* data_set_msg formats the load's error line into ld->msg. Cannot fail. */
void data_set_msg(loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* data_note_bad counts a bad row of ld->files[file] and keeps the message of
 * the earliest one (by file, then line). Cannot fail. */
void data_note_bad(loader *ld, uint32_t file, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* data_policy turns noted bad rows into the load's result: PSF_OK, or
 * PSF_EINVAL with the first bad row's message in ld->msg. */
psf_err data_policy(loader *ld);

/* data_symbol_valid tells whether p[0..len) is a valid symbol name. */
int data_symbol_valid(const char *p, size_t len);

/* data_intern finds or adds a symbol; *id gets its index in ld->syms.
 * PSF_ENOMEM. */
psf_err data_intern(loader *ld, const char *p, size_t len, uint32_t *id);

/* data_rowbuf_reserve makes room for need rows in rb. PSF_ENOMEM. */
psf_err data_rowbuf_reserve(rowbuf *rb, size_t need);

/* data_split stores up to max trimmed fields of the line p[0..len) in f and
 * returns the count of fields (which may exceed max). Cannot fail. */
size_t data_split(const char *p, size_t len, span *f, size_t max);

/* data_parse_file parses the text [p, end) of ld->files[file], header line
 * first, into ld; forced is the symbol id of a partition's folder, or -1.
 * PSF_EINVAL (message in ld->msg) or PSF_ENOMEM. */
psf_err data_parse_file(loader *ld, uint32_t file, int64_t forced, const char *p, const char *end);

#endif
