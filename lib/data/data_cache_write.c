/* data_cache_write.c -- writing the binary cache of a parsed input (the format
 * is described in data_cache.c and docs/data.md §9). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "lib/base/util.h"
#include "lib/data/data.h"
#include "lib/data/data_internal.h"

uint64_t
data_cache_align(uint64_t v)
{
	return (v + CACHE_ALIGN - 1) & ~(uint64_t)(CACHE_ALIGN - 1);
}

/* series_hash is XXH3-64 over a series' date bytes, then each value column's,
 * each seeded with the hash so far. */
uint64_t
data_cache_series_hash(const int32_t *date, const double *const col[5], size_t n)
{
	uint64_t h = XXH3_64bits(date, n * sizeof(int32_t));

	for (int k = 0; k < 5; k++)
		h = XXH3_64bits_withSeed(col[k], n * sizeof(double), h);
	return h;
}

static int
write_pad(int fd, uint64_t n)
{
	static const char zero[CACHE_ALIGN];

	return n == 0 ? 0 : psf_write_all(fd, zero, (size_t)n);
}

/* add_name appends s (and a NUL) to the names blob at *off. */
static void
add_name(char *names, uint64_t *off, const char *s, uint32_t *at, uint32_t *len)
{
	size_t n = strlen(s);

	memcpy(names + *off, s, n + 1);
	*at = (uint32_t)*off;
	*len = (uint32_t)n;
	*off += n + 1;
}

/* build_meta lays out the header and metadata of ds into a new buffer. */
static psf_err
build_meta(const psf_dataset *ds, const psf_data_index *idx, const stamp *st, char **out,
    uint64_t *meta_len)
{
	uint64_t names_len = strlen(st->abs) + strlen(ds->first_error) + 2, off, pos = 0;
	cache_hdr h;
	char *buf;

	for (size_t i = 0; i < ds->n_series; i++)
		names_len += strlen(ds->series[i].symbol) + 1;
	for (size_t i = 0; i < st->n_files; i++)
		names_len += strlen(st->names[i]) + 1;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, CACHE_MAGIC, 8);
	h.version = CACHE_VERSION;
	h.endian = CACHE_ENDIAN;
	h.hdr_len = sizeof(h);
	h.kind = st->kind;
	h.columns = ds->columns;
	h.n_files = (uint32_t)st->n_files;
	h.n_symbols = ds->n_series;
	h.n_rows = ds->n_rows;
	h.n_dates = idx->n_dates;
	h.n_skipped = ds->n_skipped;
	h.src_size = st->size;
	h.src_ino = st->ino;
	h.src_mtime_s = st->mtime_s;
	h.src_mtime_ns = st->mtime_ns;
	h.off_files = sizeof(h);
	h.off_syms = h.off_files + st->n_files * sizeof(cache_file);
	h.off_names = h.off_syms + ds->n_series * sizeof(cache_sym);
	h.names_len = names_len;
	h.off_dates = (h.off_names + names_len + 3) & ~(uint64_t)3;
	h.off_cols = data_cache_align(h.off_dates + idx->n_dates * sizeof(int32_t));
	h.file_len =
	    h.off_cols + data_cache_align(4 * ds->n_rows) + 5 * data_cache_align(8 * ds->n_rows);
	if ((buf = calloc(1, h.off_cols)) == NULL)
		return PSF_ENOMEM;
	off = 0;
	add_name(buf + h.off_names, &off, st->abs, &h.src_off, &h.src_len);
	add_name(buf + h.off_names, &off, ds->first_error, &h.err_off, &h.err_len);
	for (size_t i = 0; i < st->n_files; i++) {
		cache_file f = st->files[i];

		add_name(buf + h.off_names, &off, st->names[i], &f.name_off, &f.name_len);
		memcpy(buf + h.off_files + i * sizeof(f), &f, sizeof(f));
	}
	for (size_t i = 0; i < ds->n_series; i++) {
		const psf_series *s = &ds->series[i];
		const double *cols[5] = {s->close, s->open, s->high, s->low, s->volume};
		cache_sym y = {pos, s->n, data_cache_series_hash(s->date, cols, s->n), s->date[0],
		    s->date[s->n - 1], 0, 0};

		add_name(buf + h.off_names, &off, s->symbol, &y.name_off, &y.name_len);
		memcpy(buf + h.off_syms + i * sizeof(y), &y, sizeof(y));
		pos += s->n;
	}
	memcpy(buf + h.off_dates, idx->dates, idx->n_dates * sizeof(int32_t));
	memcpy(buf, &h, sizeof(h));
	h.meta_hash = XXH3_64bits_withSeed(&h, sizeof(h),
	    XXH3_64bits(buf + sizeof(h), h.off_cols - sizeof(h)));
	memcpy(buf, &h, sizeof(h));
	*out = buf;
	*meta_len = h.off_cols;
	return PSF_OK;
}

psf_err
data_cache_write(const char *file, const psf_dataset *ds, const stamp *st, char *msg)
{
	char tmp[PATH_MAX + 96], *meta = NULL;
	uint64_t meta_len = 0, n = ds->n_rows;
	psf_data_index *idx = NULL;
	int fd = -1, bad;
	psf_err rv;

	if ((rv = psf_data_index_from(ds, &idx)) != PSF_OK ||
	    (rv = build_meta(ds, idx, st, &meta, &meta_len)) != PSF_OK)
		goto out;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", file, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		data_msgf(msg, "%s: %s", tmp, strerror(errno));
		rv = psf_err_from_errno(errno);
		goto out;
	}
	bad = psf_write_all(fd, meta, meta_len) || psf_write_all(fd, ds->date, 4 * n) ||
	    write_pad(fd, data_cache_align(4 * n) - 4 * n);
	for (int k = 0; k < 5 && !bad; k++)
		bad = psf_write_all(fd, ds->vals + (size_t)k * n, 8 * n) ||
		    write_pad(fd, data_cache_align(8 * n) - 8 * n);
	if (bad || close(fd) != 0) {
		data_msgf(msg, "%s: %s", tmp, strerror(errno));
		rv = psf_err_from_errno(errno);
		fd = -1;
		unlink(tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, file) != 0) {
		data_msgf(msg, "%s: %s", file, strerror(errno));
		rv = psf_err_from_errno(errno);
		unlink(tmp);
	}
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	free(meta);
	psf_data_index_free(idx);
	return rv;
}
