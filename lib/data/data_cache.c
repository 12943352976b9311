/* data_cache.c -- the binary columnar cache of a parsed input (data.h,
 * docs/data.md §9).
 *
 * File layout (native byte order; the header says which, and a cache of
 * another byte order is simply stale):
 *
 *   cache_hdr                  magic, version, endian mark, source stamp, counts,
 *                              section offsets, XXH3 of the metadata
 *   cache_file[n_files]        directory input: each symbol=X/data.csv's stamp
 *   cache_sym[n_symbols]       sorted by name: first row, rows, XXH3 of its
 *                              column bytes, date range
 *   names                      NUL-terminated names, source path, first error
 *   int32 dates[n_dates]       the sorted unique dates (the scan's index)
 *   --- off_cols: everything before is the metadata the hash covers
 *   int32 date[n_rows]         every column: symbols in name order, rows by date
 *   double close, open, high, low, volume [n_rows] each, 64-byte aligned
 *
 * Nothing read from the file is trusted: every offset and count is checked
 * against the file size before use, names must be valid and sorted, symbols'
 * rows must tile [0, n_rows), and each series copied out is checked (the XXH3
 * of its bytes, dates strictly increasing within its range, close finite > 0):
 * a trainer checks exactly the bytes it reads. A cache that fails
 * is ignored with a log line and rebuilt. Builders write a temp file and rename
 * it, holding an flock on CACHE.lock so concurrent builders wait for the first. */
#define _GNU_SOURCE
#include "lib/data/data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/data/data_internal.h"

#define LOCK_WAIT_MS (600u * 1000u) /* a builder taking longer is presumed stuck */

struct data_cache {
	void *map;
	size_t len;
	char path[PATH_MAX + 64];
	const cache_hdr *h;
	const cache_file *files;
	const cache_sym *syms;
	const char *names;
	const int32_t *dates;
	const int32_t *date;
	const double *col[5]; /* close, open, high, low, volume */
};

static void
stamp_fini(stamp *st)
{
	for (size_t i = 0; i < st->n_files; i++)
		free(st->names[i]);
	free(st->names);
	free(st->files);
	memset(st, 0, sizeof(*st));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* stamp_dir lists DIR/symbol=X and stats each data.csv. */
static psf_err
stamp_dir(const char *dir, stamp *st)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t cap = 0;

	if (d == NULL)
		return psf_err_from_errno(errno);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "symbol=", 7) != 0)
			continue;
		if (st->n_files == cap) {
			char **nn = realloc(st->names, (cap = cap * 2 + 64) * sizeof(*nn));

			if (nn == NULL)
				break;
			st->names = nn;
		}
		if ((st->names[st->n_files] = strdup(de->d_name + 7)) == NULL)
			break;
		st->n_files++;
	}
	closedir(d);
	if (de != NULL)
		return PSF_ENOMEM;
	if (st->n_files > 1)
		qsort(st->names, st->n_files, sizeof(char *), cmp_str);
	if ((st->files = calloc(st->n_files + 1, sizeof(*st->files))) == NULL)
		return PSF_ENOMEM;
	for (size_t i = 0; i < st->n_files; i++) {
		char p[PATH_MAX];
		struct stat fs;

		if ((size_t)snprintf(p, sizeof(p), "%s/symbol=%s/data.csv", dir, st->names[i]) >=
		        sizeof(p) ||
		    stat(p, &fs) != 0)
			return PSF_ENOENT;
		st->files[i].size = (uint64_t)fs.st_size;
		st->files[i].mtime_s = fs.st_mtim.tv_sec;
		st->files[i].mtime_ns = fs.st_mtim.tv_nsec;
	}
	return PSF_OK;
}

/* stamp_take stats the input (and, for a directory, its partition files). */
static psf_err
stamp_take(const char *path, stamp *st)
{
	struct stat s;
	psf_err rv;

	memset(st, 0, sizeof(*st));
	if (stat(path, &s) != 0 || realpath(path, st->abs) == NULL)
		return psf_err_from_errno(errno);
	st->kind = S_ISDIR(s.st_mode) ? 1 : 0;
	st->size = st->kind ? 0 : (uint64_t)s.st_size;
	st->ino = (uint64_t)s.st_ino;
	st->mtime_s = s.st_mtim.tv_sec;
	st->mtime_ns = s.st_mtim.tv_nsec;
	if (!st->kind && !S_ISREG(s.st_mode))
		return PSF_EINVAL;
	if (st->kind && (rv = stamp_dir(path, st)) != PSF_OK) {
		stamp_fini(st);
		return rv;
	}
	return PSF_OK;
}

static int
stamp_equal(const stamp *a, const stamp *b)
{
	if (a->kind != b->kind || a->size != b->size || a->ino != b->ino ||
	    a->mtime_s != b->mtime_s || a->mtime_ns != b->mtime_ns || strcmp(a->abs, b->abs) != 0 ||
	    a->n_files != b->n_files)
		return 0;
	for (size_t i = 0; i < a->n_files; i++) {
		if (strcmp(a->names[i], b->names[i]) != 0 || a->files[i].size != b->files[i].size ||
		    a->files[i].mtime_s != b->files[i].mtime_s ||
		    a->files[i].mtime_ns != b->files[i].mtime_ns)
			return 0;
	}
	return 1;
}

/* ---------------------------------------------------------- places */

/* cache_places fills the cache's place beside the input (prim) and in
 * cache_dir (alt, "" when cache_dir is NULL): DIR/NAME-HASH.psfcache, HASH of
 * the input's absolute path, so two inputs of the same name do not collide. */
static int
cache_places(const char *path, const stamp *st, const char *cache_dir, char *prim, char *alt,
    size_t len)
{
	size_t n = strlen(path);
	const char *base = strrchr(st->abs, '/');

	while (n > 1 && path[n - 1] == '/')
		n--;
	if ((size_t)snprintf(prim, len, "%.*s%s", (int)n, path, CACHE_SUFFIX) >= len)
		return 0;
	alt[0] = '\0';
	base = base != NULL && base[1] != '\0' ? base + 1 : "input";
	if (cache_dir != NULL && cache_dir[0] != '\0' &&
	    (size_t)snprintf(alt, len, "%s/%s-%016llx%s", cache_dir, base,
	        (unsigned long long)XXH3_64bits(st->abs, strlen(st->abs)), CACHE_SUFFIX) >= len)
		alt[0] = '\0';
	return 1;
}

/* dir_writable tells whether the directory holding file may get new files. */
static int
dir_writable(const char *file)
{
	char d[PATH_MAX];
	const char *slash = strrchr(file, '/');

	if (slash == NULL)
		return access(".", W_OK) == 0;
	snprintf(d, sizeof(d), "%.*s", slash == file ? 1 : (int)(slash - file), file);
	return access(d, W_OK) == 0;
}

/* ---------------------------------------------------------- reading */

void
data_cache_close(data_cache *c)
{
	if (c == NULL)
		return;
	if (c->map != NULL)
		munmap(c->map, c->len);
	free(c);
}

const char *
data_cache_path(const data_cache *c)
{
	return c->path;
}

/* in_file tells whether n items of size sz at off fit in a file of len bytes. */
static int
in_file(uint64_t off, uint64_t n, uint64_t sz, uint64_t len)
{
	return off <= len && n <= (len - off) / sz;
}

static const char *
name_at(const data_cache *c, uint32_t off, uint32_t len)
{
	const cache_hdr *h = c->h;

	if ((uint64_t)off + len >= h->names_len || c->names[off + len] != '\0' ||
	    strlen(c->names + off) != len)
		return NULL;
	return c->names + off;
}

/* check_layout checks the header and every section against the file size. */
static const char *
check_layout(data_cache *c)
{
	const cache_hdr *h = c->h;
	uint64_t len = c->len, n = h->n_rows, vals, col8, end;
	cache_hdr copy;

	if (len < sizeof(*h) || memcmp(h->magic, CACHE_MAGIC, 8) != 0)
		return "bad magic";
	if (h->version != CACHE_VERSION || h->endian != CACHE_ENDIAN || h->hdr_len != sizeof(*h))
		return "another version or byte order";
	if (h->file_len != len)
		return "truncated (size differs from its header)";
	/* Every metadata section lies in [header, off_cols), which the hash covers. */
	end = h->off_cols;
	if (end > len || end < sizeof(*h) || end % CACHE_ALIGN || h->off_files < sizeof(*h) ||
	    h->off_files % 8 || h->off_syms % 8 || h->off_dates % 4 || h->names_len == 0 ||
	    !in_file(h->off_files, h->n_files, sizeof(cache_file), end) ||
	    !in_file(h->off_syms, h->n_symbols, sizeof(cache_sym), end) ||
	    !in_file(h->off_names, h->names_len, 1, end) ||
	    !in_file(h->off_dates, h->n_dates, sizeof(int32_t), end))
		return "section offsets out of range";
	if (n > len / 44)
		return "column offsets out of range";
	col8 = data_cache_align(8 * n);
	vals = end + data_cache_align(4 * n);
	if (vals > len || (len - vals) / 5 < col8 || vals + 5 * col8 != len)
		return "column offsets out of range";
	copy = *h;
	copy.meta_hash = 0;
	if (XXH3_64bits_withSeed(&copy, sizeof(copy),
	        XXH3_64bits((const char *)c->map + sizeof(copy), h->off_cols - sizeof(copy))) !=
	    h->meta_hash)
		return "metadata checksum mismatch";
	c->files = (const cache_file *)((const char *)c->map + h->off_files);
	c->syms = (const cache_sym *)((const char *)c->map + h->off_syms);
	c->names = (const char *)c->map + h->off_names;
	c->dates = (const int32_t *)((const char *)c->map + h->off_dates);
	c->date = (const int32_t *)((const char *)c->map + h->off_cols);
	for (int k = 0; k < 5; k++)
		c->col[k] = (const double *)((const char *)c->map + vals + (uint64_t)k * col8);
	return NULL;
}

/* check_index checks names, the symbols' row tiling and the unique dates. */
static const char *
check_index(const data_cache *c)
{
	const cache_hdr *h = c->h;
	uint64_t row = 0;
	const char *prev = NULL;

	if (name_at(c, h->src_off, h->src_len) == NULL ||
	    name_at(c, h->err_off, h->err_len) == NULL || h->err_len >= DATA_MSG_LEN)
		return "bad source or error string";
	for (uint64_t i = 0; i < h->n_symbols; i++) {
		const cache_sym *s = &c->syms[i];
		const char *name = name_at(c, s->name_off, s->name_len);

		if (name == NULL || !data_symbol_valid(name, s->name_len) ||
		    (prev != NULL && strcmp(prev, name) >= 0))
			return "bad or unsorted symbol name";
		if (s->row_off != row || s->n == 0 || s->n > h->n_rows - row || s->first > s->last)
			return "symbol rows out of range";
		row += s->n;
		prev = name;
	}
	if (row != h->n_rows)
		return "symbol rows do not cover the columns";
	prev = NULL;
	for (uint64_t i = 0; i < h->n_files; i++) {
		const char *name = name_at(c, c->files[i].name_off, c->files[i].name_len);

		if (name == NULL || (prev != NULL && strcmp(prev, name) >= 0))
			return "bad or unsorted file name";
		prev = name;
	}
	for (uint64_t i = 1; i < h->n_dates; i++) {
		if (c->dates[i] <= c->dates[i - 1])
			return "unsorted dates";
	}
	return NULL;
}

/* check_stamp compares the cache's source stamp with the input's. */
static const char *
check_stamp(const data_cache *c, const stamp *st)
{
	const cache_hdr *h = c->h;

	if (h->kind != st->kind || h->src_size != st->size || h->src_ino != st->ino ||
	    h->src_mtime_s != st->mtime_s || h->src_mtime_ns != st->mtime_ns ||
	    strcmp(c->names + h->src_off, st->abs) != 0)
		return "the input changed (size, mtime, inode or path)";
	if (h->n_files != st->n_files)
		return "the partition files changed";
	for (uint64_t i = 0; i < h->n_files; i++) {
		const cache_file *f = &c->files[i];

		if (strcmp(c->names + f->name_off, st->names[i]) != 0 ||
		    f->size != st->files[i].size || f->mtime_s != st->files[i].mtime_s ||
		    f->mtime_ns != st->files[i].mtime_ns)
			return "a partition file changed";
	}
	return NULL;
}

/* cache_open maps file and checks it against st. PSF_ENOENT: no file;
 * PSF_EINVAL: stale or corrupt (why says which). */
static psf_err
cache_open(const char *file, const stamp *st, const char **why, data_cache **out)
{
	data_cache *c = calloc(1, sizeof(*c));
	struct stat s;
	int fd;

	*why = NULL;
	if (c == NULL)
		return PSF_ENOMEM;
	snprintf(c->path, sizeof(c->path), "%s", file);
	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		free(c);
		return errno == ENOENT ? PSF_ENOENT : psf_err_from_errno(errno);
	}
	if (fstat(fd, &s) != 0 || !S_ISREG(s.st_mode) || s.st_size < (off_t)sizeof(cache_hdr)) {
		*why = "truncated (shorter than its header)";
	} else {
		c->len = (size_t)s.st_size;
		c->map = mmap(NULL, c->len, PROT_READ, MAP_SHARED, fd, 0);
		if (c->map == MAP_FAILED) {
			c->map = NULL;
			*why = "cannot be mapped";
		}
	}
	close(fd);
	if (*why == NULL) {
		c->h = c->map;
		if ((*why = check_layout(c)) == NULL && (*why = check_index(c)) == NULL)
			*why = check_stamp(c, st);
	}
	if (*why != NULL) {
		data_cache_close(c);
		return PSF_EINVAL;
	}
	*out = c;
	return PSF_OK;
}

/* ---------------------------------------------------------- get or build */

/* lock_wait takes an exclusive flock on fd, asking opts->stop while waiting. */
static psf_err
lock_wait(int fd, const psf_data_opts *opts)
{
	uint64_t t0 = psf_now_ms();

	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return psf_err_from_errno(errno);
		if (opts->stop != NULL && opts->stop(opts->stop_arg))
			return PSF_ECLOSED;
		if (psf_now_ms() - t0 > LOCK_WAIT_MS)
			return PSF_ETIMEDOUT;
		psf_sleep_ms(20);
	}
	return PSF_OK;
}

/* try_open opens file when valid, logging (unless quiet) why an existing one
 * is not. */
static data_cache *
try_open(const char *file, const stamp *st, bool quiet)
{
	data_cache *c = NULL;
	const char *why;

	if (file[0] == '\0')
		return NULL;
	if (cache_open(file, st, &why, &c) == PSF_EINVAL && !quiet)
		psf_log_info("data", "cache %s ignored: %s; it will be rebuilt", file, why);
	return c;
}

/* build parses the whole input and writes the cache file, under its lock. */
static psf_err
build(const char *path, const char *file, const stamp *st, const psf_data_opts *opts, char *msg,
    data_cache **out)
{
	char lock[PATH_MAX + 128];
	psf_data_opts o = *opts;
	psf_dataset *ds = NULL;
	uint64_t t0, t1;
	stamp now;
	int fd;
	psf_err rv;

	snprintf(lock, sizeof(lock), "%s.lock", file);
	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		psf_log_warn("data", "%s: %s; reading the input without a cache", lock,
		    strerror(errno));
		return PSF_OK;
	}
	if ((rv = lock_wait(fd, opts)) != PSF_OK) {
		close(fd);
		if (rv == PSF_ECLOSED)
			return rv;
		psf_log_warn("data", "%s: %s; reading the input without a cache", lock,
		    psf_strerror(rv));
		return PSF_OK;
	}
	if ((*out = try_open(file, st, true)) != NULL) /* another process built it meanwhile */
		goto out;
	o.keep = NULL;
	t0 = psf_now_ns();
	if ((rv = data_load_csv(path, &o, msg, &ds)) != PSF_OK)
		goto out;
	t1 = psf_now_ns();
	if (stamp_take(path, &now) != PSF_OK || !stamp_equal(st, &now)) {
		psf_log_warn("data", "%s changed while it was read; not caching it", path);
	} else if (data_cache_write(file, ds, st, msg) != PSF_OK) {
		psf_log_warn("data", "cannot write the cache: %s; reading the input without it",
		    msg);
		msg[0] = '\0';
	} else {
		if (!opts->quiet)
			psf_log_info("data",
			    "%s: parsed %zu symbols, %zu rows in %.3f s; wrote cache %s in %.3f s",
			    path, ds->n_series, ds->n_rows, (double)(t1 - t0) / 1e9, file,
			    (double)(psf_now_ns() - t1) / 1e9);
		*out = try_open(file, st, opts->quiet);
	}
	stamp_fini(&now);
out:
	psf_dataset_free(ds);
	flock(fd, LOCK_UN);
	close(fd);
	return rv;
}

/* find_or_build is data_cache_get with the build optional. */
static psf_err
find_or_build(const char *path, const psf_data_opts *opts, int do_build, char *msg,
    data_cache **out)
{
	char prim[PATH_MAX + 64], alt[PATH_MAX + 64];
	const char *target = NULL;
	data_cache *c;
	stamp st;
	psf_err rv = PSF_OK;

	*out = NULL;
	if (stamp_take(path, &st) != PSF_OK)
		return PSF_OK; /* the parse reports what is wrong with the input */
	if (!cache_places(path, &st, opts->cache_dir, prim, alt, sizeof(prim))) {
		stamp_fini(&st);
		return PSF_OK;
	}
	if ((c = try_open(prim, &st, opts->quiet)) == NULL)
		c = try_open(alt, &st, opts->quiet);
	if (c == NULL && do_build) {
		if (dir_writable(prim))
			target = prim;
		else if (alt[0] != '\0' && psf_mkdir_p(opts->cache_dir) == PSF_OK &&
		    dir_writable(alt))
			target = alt;
		if (target != NULL)
			rv = build(path, target, &st, opts, msg, &c);
		else if (!opts->quiet)
			psf_log_info("data", "%s: no writable place for a cache (%s%s%s)", path,
			    prim, alt[0] != '\0' ? " or " : "", alt);
	}
	stamp_fini(&st);
	if (c != NULL && c->h->n_skipped > 0 && opts->bad_rows == PSF_BAD_ROWS_FAIL) {
		data_cache_close(c); /* made under skip: the parse gives FAIL's exact error */
		c = NULL;
	}
	*out = c;
	return rv;
}

psf_err
data_cache_get(const char *path, const psf_data_opts *opts, char *msg, data_cache **out)
{
	return find_or_build(path, opts, 1, msg, out);
}

/* ---------------------------------------------------------- copying out */

static psf_err
copy_series(const data_cache *c, const cache_sym *y, psf_dataset *ds, size_t i, size_t row,
    size_t *name_off, char *msg)
{
	psf_series *s = &ds->series[i];
	size_t n = (size_t)y->n, b = (size_t)y->row_off, all = ds->n_rows;
	const int32_t *d = c->date + b;
	const double *close = c->col[0] + b;

	memcpy(ds->names + *name_off, c->names + y->name_off, (size_t)y->name_len + 1);
	s->symbol = ds->names + *name_off;
	*name_off += (size_t)y->name_len + 1;
	s->n = n;
	s->date = ds->date + row;
	s->close = ds->vals + row;
	s->open = ds->vals + all + row;
	s->high = ds->vals + 2 * all + row;
	s->low = ds->vals + 3 * all + row;
	s->volume = ds->vals + 4 * all + row;
	memcpy(ds->date + row, d, n * sizeof(int32_t));
	for (int k = 0; k < 5; k++)
		memcpy(ds->vals + (size_t)k * all + row, c->col[k] + b, n * sizeof(double));
	{
		const double *cols[5] = {s->close, s->open, s->high, s->low, s->volume};

		if (data_cache_series_hash(s->date, cols, n) != y->hash)
			goto bad;
	}
	d = s->date;
	close = s->close;
	if (d[0] != y->first || d[n - 1] != y->last)
		goto bad;
	for (size_t j = 0; j < n; j++) {
		if ((j > 0 && d[j] <= d[j - 1]) || !(close[j] > 0 && isfinite(close[j])))
			goto bad;
	}
	return PSF_OK;
bad:
	data_msgf(msg, "cache %s: series %s fails its checks (corrupt)", c->path, s->symbol);
	return PSF_EINVAL;
}

/* kept_symbols marks in keep[] the symbols opts->keep keeps (for a directory it
 * is asked about every partition, as the parser does). */
static void
kept_symbols(const data_cache *c, const psf_data_opts *opts, uint8_t *keep)
{
	const cache_hdr *h = c->h;
	uint64_t j = 0;

	for (uint64_t i = 0; i < h->n_symbols; i++)
		keep[i] = opts->keep == NULL;
	if (opts->keep == NULL)
		return;
	if (h->kind == 0) {
		for (uint64_t i = 0; i < h->n_symbols; i++)
			keep[i] = opts->keep(c->names + c->syms[i].name_off, opts->keep_arg) != 0;
		return;
	}
	for (uint64_t f = 0; f < h->n_files; f++) {
		const char *name = c->names + c->files[f].name_off;
		int k = opts->keep(name, opts->keep_arg) != 0;

		while (j < h->n_symbols && strcmp(c->names + c->syms[j].name_off, name) < 0)
			j++;
		if (j < h->n_symbols && strcmp(c->names + c->syms[j].name_off, name) == 0)
			keep[j] = (uint8_t)k;
	}
}

psf_err
data_cache_dataset(data_cache *c, const psf_data_opts *opts, char *msg, psf_dataset **out)
{
	const cache_hdr *h = c->h;
	size_t n_series = 0, n_rows = 0, names_len = 0, row = 0, name_off = 0, i = 0;
	uint8_t *keep = malloc(h->n_symbols + 1);
	psf_dataset *ds = NULL;
	psf_err rv = PSF_OK;

	if (keep == NULL)
		return PSF_ENOMEM;
	kept_symbols(c, opts, keep);
	for (uint64_t s = 0; s < h->n_symbols; s++) {
		if (!keep[s])
			continue;
		n_series++;
		n_rows += (size_t)c->syms[s].n;
		names_len += (size_t)c->syms[s].name_len + 1;
	}
	if ((rv = data_dataset_alloc(n_series, names_len, n_rows, &ds)) != PSF_OK)
		goto out;
	for (uint64_t s = 0; s < h->n_symbols && rv == PSF_OK; s++) {
		if (!keep[s])
			continue;
		rv = copy_series(c, &c->syms[s], ds, i++, row, &name_off, msg);
		row += (size_t)c->syms[s].n;
	}
	if (rv != PSF_OK)
		goto out;
	ds->columns = h->columns;
	ds->n_skipped = (size_t)h->n_skipped;
	memcpy(ds->first_error, c->names + h->err_off, (size_t)h->err_len + 1);
	*out = ds;
	ds = NULL;
out:
	psf_dataset_free(ds);
	free(keep);
	return rv;
}

psf_err
data_cache_index(const data_cache *c, psf_data_index **out)
{
	const cache_hdr *h = c->h;
	psf_data_index *idx = NULL;
	psf_err rv;

	if ((rv = data_index_alloc((size_t)h->n_symbols, (size_t)h->n_dates, &idx)) != PSF_OK)
		return rv;
	for (uint64_t i = 0; i < h->n_symbols; i++) {
		idx->rows[i] = c->syms[i].n;
		if ((idx->names[i] = strdup(c->names + c->syms[i].name_off)) == NULL) {
			psf_data_index_free(idx);
			return PSF_ENOMEM;
		}
	}
	memcpy(idx->dates, c->dates, (size_t)h->n_dates * sizeof(int32_t));
	idx->n_dates = (size_t)h->n_dates;
	*out = idx;
	return PSF_OK;
}

/* ---------------------------------------------------------- public */

psf_err
psf_data_cache_build(const char *path, const psf_data_opts *opts, char *errbuf, size_t errlen,
    char *where, size_t wherelen)
{
	char msg[DATA_MSG_LEN] = "";
	psf_data_opts o = {0};
	data_cache *c = NULL;
	psf_err rv;

	if (opts != NULL)
		o = *opts;
	o.cache = true;
	if (path == NULL) {
		data_copy_err(errbuf, errlen, "data: no path given", PSF_EINVAL);
		return PSF_EINVAL;
	}
	if ((rv = find_or_build(path, &o, 1, msg, &c)) == PSF_OK && c == NULL) {
		data_msgf(msg, "%s: no cache could be made (the log says why)", path);
		rv = PSF_ENOENT;
	}
	if (rv != PSF_OK) {
		data_copy_err(errbuf, errlen, msg, rv);
		return rv;
	}
	if (where != NULL && wherelen > 0)
		snprintf(where, wherelen, "%s", c->path);
	data_cache_close(c);
	return PSF_OK;
}

psf_err
psf_data_cache_check(const char *path, const char *cache_dir, char *errbuf, size_t errlen,
    char *where, size_t wherelen)
{
	char prim[PATH_MAX + 64], alt[PATH_MAX + 64], msg[DATA_MSG_LEN] = "";
	const char *files[2] = {prim, alt}, *why = NULL;
	data_cache *c = NULL;
	stamp st;
	psf_err rv;

	if (path == NULL)
		return PSF_EINVAL;
	if ((rv = stamp_take(path, &st)) != PSF_OK) {
		data_msgf(msg, "%s: %s", path, psf_strerror(rv));
		data_copy_err(errbuf, errlen, msg, rv);
		return rv;
	}
	rv = PSF_ENOENT;
	if (!cache_places(path, &st, cache_dir, prim, alt, sizeof(prim)))
		prim[0] = alt[0] = '\0';
	for (int i = 0; i < 2 && rv != PSF_OK; i++) {
		psf_err r = files[i][0] != '\0' ? cache_open(files[i], &st, &why, &c) : PSF_ENOENT;

		if (r == PSF_ENOENT || (r != PSF_OK && rv != PSF_ENOENT))
			continue; /* a valid one, or the first stale one, is what we report */
		rv = r;
		if (where != NULL && wherelen > 0)
			snprintf(where, wherelen, "%s", files[i]);
		data_msgf(msg, "%s: %s", files[i], why != NULL ? why : psf_strerror(r));
	}
	if (rv == PSF_ENOENT)
		data_msgf(msg, "%s: no cache (%s%s%s)", path, prim, alt[0] != '\0' ? " or " : "",
		    alt);
	if (rv != PSF_OK)
		data_copy_err(errbuf, errlen, msg, rv);
	data_cache_close(c);
	stamp_fini(&st);
	return rv;
}
