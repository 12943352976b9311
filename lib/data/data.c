/* data.c -- CSV and partition-directory loading (data.h).
 *
 * Map each file and hand its text to the row parser (data_csv.c). Then group
 * rows by symbol (counting sort), sort each symbol's rows by date unless
 * already sorted, drop duplicates, and copy into the dataset's contiguous
 * arrays. */
#define _GNU_SOURCE
#include "lib/data/data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/data/data_internal.h"

static psf_err
add_file(loader *ld, const char *path, uint32_t *idx)
{
	char **nf = realloc(ld->files, (ld->n_files + 1) * sizeof(*nf));

	if (nf == NULL)
		return PSF_ENOMEM;
	ld->files = nf;
	if ((nf[ld->n_files] = strdup(path)) == NULL)
		return PSF_ENOMEM;
	*idx = (uint32_t)ld->n_files++;
	return PSF_OK;
}

/* load_file maps one CSV file and parses it; forced is the directory's symbol
 * id in a partition, or -1. */
static psf_err
load_file(loader *ld, const char *path, int64_t forced)
{
	struct stat st;
	uint32_t idx;
	void *map = MAP_FAILED;
	int fd;
	psf_err rv;

	if ((rv = add_file(ld, path, &idx)) != PSF_OK)
		return rv;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		data_set_msg(ld, "%s: %s", path, strerror(errno));
		return psf_err_from_errno(errno);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		data_set_msg(ld, "%s: not a regular file", path);
		rv = PSF_EINVAL;
		goto out;
	}
	if (st.st_size == 0) {
		data_set_msg(ld, "%s:1: file is empty (expected a header line)", path);
		rv = PSF_EINVAL;
		goto out;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (map == MAP_FAILED) {
		data_set_msg(ld, "%s: mmap: %s", path, strerror(errno));
		rv = psf_err_from_errno(errno);
		goto out;
	}
	madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
	/* Rows take ~50 bytes of text; reserving up front saves the regrowth. */
	if ((rv = data_rowbuf_reserve(&ld->rb, ld->rb.n + (size_t)st.st_size / 48 + 1)) == PSF_OK)
		rv = data_parse_file(ld, idx, forced, map, (const char *)map + st.st_size);
out:
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	close(fd);
	return rv;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* list_partitions returns the sorted symbol names of DIR/symbol=XYZ entries. */
static psf_err
list_partitions(loader *ld, const char *dir, char ***names_out, size_t *n_out)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	psf_err rv = PSF_OK;

	if (d == NULL) {
		data_set_msg(ld, "%s: %s", dir, strerror(errno));
		return psf_err_from_errno(errno);
	}
	while ((de = readdir(d)) != NULL) {
		const char *sym = de->d_name + 7;
		char **nn;

		if (strncmp(de->d_name, "symbol=", 7) != 0)
			continue;
		if (!data_symbol_valid(sym, strlen(sym))) {
			data_set_msg(ld, "%s/%s: '%s' is not a valid symbol", dir, de->d_name, sym);
			rv = PSF_EINVAL;
			break;
		}
		if ((nn = realloc(names, (n + 1) * sizeof(*nn))) == NULL ||
		    (nn[n] = strdup(sym)) == NULL) {
			names = nn != NULL ? nn : names;
			rv = PSF_ENOMEM;
			break;
		}
		names = nn;
		n++;
	}
	closedir(d);
	if (rv == PSF_OK && n == 0) {
		data_set_msg(ld,
		    "%s: no symbol=XYZ folders (expected the output of psfleet data partition)",
		    dir);
		rv = PSF_EINVAL;
	}
	if (rv == PSF_OK) {
		qsort(names, n, sizeof(*names), cmp_str);
		*names_out = names;
		*n_out = n;
		return PSF_OK;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rv;
}

static psf_err
load_dir(loader *ld, const char *dir)
{
	char **names = NULL;
	size_t n = 0;
	psf_err rv;

	if ((rv = list_partitions(ld, dir, &names, &n)) != PSF_OK)
		return rv;
	for (size_t i = 0; i < n && rv == PSF_OK; i++) {
		char path[4096];
		uint32_t id;

		if ((rv = data_intern(ld, names[i], strlen(names[i]), &id)) != PSF_OK)
			break;
		if (!ld->syms[id].keep)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/symbol=%s/data.csv", dir, names[i]) >=
		    sizeof(path)) {
			data_set_msg(ld, "%s: path too long", dir);
			rv = PSF_EINVAL;
			break;
		}
		rv = load_file(ld, path, id);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rv;
}

/* ---------------------------------------------------------- assembly */

typedef struct drow {
	int32_t date;
	uint32_t row;
} drow;

static int
cmp_drow(const void *a, const void *b)
{
	const drow *x = a, *y = b;

	if (x->date != y->date)
		return x->date < y->date ? -1 : 1;
	return (x->row > y->row) - (x->row < y->row);
}

static int
cmp_sym(const void *a, const void *b)
{
	return strcmp((*(sym_entry *const *)a)->name, (*(sym_entry *const *)b)->name);
}

/* group_rows lists kept symbols by name in order[] and their rows in dr[],
 * segment i being dr[start[i] .. start[i + 1]), sorted by date (line order for
 * ties). */
static psf_err
group_rows(loader *ld, sym_entry **order, size_t *n_order, drow *dr, size_t *start)
{
	size_t n = 0, *cursor = malloc((ld->n_syms + 1) * sizeof(*cursor));

	if (cursor == NULL)
		return PSF_ENOMEM;
	for (size_t id = 0; id < ld->n_syms; id++) {
		if (ld->syms[id].keep && ld->syms[id].count > 0)
			order[n++] = &ld->syms[id];
	}
	qsort(order, n, sizeof(*order), cmp_sym);
	start[0] = 0;
	for (size_t i = 0; i < n; i++) {
		cursor[order[i] - ld->syms] = start[i];
		start[i + 1] = start[i] + order[i]->count;
	}
	for (size_t r = 0; r < ld->rb.n; r++) {
		drow d = {ld->rb.date[r], (uint32_t)r};

		dr[cursor[ld->rb.sym[r]]++] = d;
	}
	free(cursor);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = start[i] + 1; j < start[i + 1]; j++) {
			if (dr[j].date < dr[j - 1].date) {
				qsort(dr + start[i], start[i + 1] - start[i], sizeof(*dr),
				    cmp_drow);
				break;
			}
		}
	}
	*n_order = n;
	return PSF_OK;
}

/* dedupe drops rows repeating their symbol's previous date, compacting dr[] and
 * start[]; each drop is a bad row. */
static psf_err
dedupe(loader *ld, sym_entry *const *order, size_t n_order, drow *dr, size_t *start)
{
	size_t w = 0;

	for (size_t i = 0; i < n_order; i++) {
		size_t s = start[i], e = start[i + 1];

		start[i] = w;
		for (size_t j = s; j < e; j++) {
			if (j > s && dr[j].date == dr[w - 1].date) {
				char day[11];

				psf_date_format(dr[j].date, day);
				data_note_bad(ld, order[i]->file, ld->rb.line[dr[j].row],
				    "duplicate row for %s on %s (first at line %u)", order[i]->name,
				    day, ld->rb.line[dr[w - 1].row]);
				continue;
			}
			dr[w++] = dr[j];
		}
	}
	start[n_order] = w;
	return data_policy(ld);
}

psf_err
data_dataset_alloc(size_t n_series, size_t names_len, size_t n_rows, psf_dataset **out)
{
	psf_dataset *ds = calloc(1, sizeof(*ds));

	if (ds == NULL)
		return PSF_ENOMEM;
	ds->series = calloc(n_series + 1, sizeof(*ds->series));
	ds->names = malloc(names_len + 1);
	ds->date = malloc((n_rows + 1) * sizeof(*ds->date));
	ds->vals = malloc((5 * n_rows + 1) * sizeof(*ds->vals));
	if (ds->series == NULL || ds->names == NULL || ds->date == NULL || ds->vals == NULL) {
		psf_dataset_free(ds);
		return PSF_ENOMEM;
	}
	ds->n_series = n_series;
	ds->n_rows = n_rows;
	*out = ds;
	return PSF_OK;
}

static psf_err
make_dataset(const loader *ld, sym_entry *const *order, size_t n_order, const drow *dr,
    const size_t *start, psf_dataset **out)
{
	size_t names_len = 0, n = start[n_order], off = 0;
	const rowbuf *rb = &ld->rb;
	psf_dataset *ds;
	psf_err rv;

	for (size_t i = 0; i < n_order; i++)
		names_len += order[i]->len + 1;
	if ((rv = data_dataset_alloc(n_order, names_len, n, &ds)) != PSF_OK)
		return rv;
	for (size_t i = 0; i < n_order; i++) {
		psf_series *s = &ds->series[i];
		size_t b = start[i];

		memcpy(ds->names + off, order[i]->name, order[i]->len + 1);
		s->symbol = ds->names + off;
		off += order[i]->len + 1;
		s->n = start[i + 1] - b;
		s->date = ds->date + b;
		s->close = ds->vals + b;
		s->open = ds->vals + n + b;
		s->high = ds->vals + 2 * n + b;
		s->low = ds->vals + 3 * n + b;
		s->volume = ds->vals + 4 * n + b;
	}
	for (size_t j = 0; j < n; j++) {
		uint32_t r = dr[j].row;

		ds->date[j] = dr[j].date;
		ds->vals[j] = rb->close[r];
		for (int k = 0; k < N_OPT; k++)
			ds->vals[(size_t)(k + 1) * n + j] =
			    rb->opt[k] != NULL ? rb->opt[k][r] : NAN;
	}
	for (int k = 0; k < N_OPT; k++)
		ds->columns |= rb->opt[k] != NULL ? 1u << k : 0;
	ds->n_skipped = ld->n_skipped;
	memcpy(ds->first_error, ld->first_err, sizeof(ds->first_error));
	*out = ds;
	return PSF_OK;
}

static psf_err
assemble(loader *ld, psf_dataset **out)
{
	sym_entry **order = malloc((ld->n_syms + 1) * sizeof(*order));
	size_t *start = malloc((ld->n_syms + 1) * sizeof(*start));
	drow *dr = malloc((ld->rb.n + 1) * sizeof(*dr));
	size_t n_order = 0;
	psf_err rv = PSF_ENOMEM;

	if (order == NULL || start == NULL || dr == NULL)
		goto out;
	if ((rv = group_rows(ld, order, &n_order, dr, start)) != PSF_OK)
		goto out;
	if ((rv = dedupe(ld, order, n_order, dr, start)) != PSF_OK)
		goto out;
	rv = make_dataset(ld, order, n_order, dr, start, out);
out:
	free(dr);
	free(start);
	free(order);
	return rv;
}

static void
loader_fini(loader *ld)
{
	for (size_t i = 0; i < ld->n_syms; i++)
		free(ld->syms[i].name);
	free(ld->syms);
	free(ld->slots);
	free(ld->rb.date);
	free(ld->rb.sym);
	free(ld->rb.line);
	free(ld->rb.close);
	for (int k = 0; k < N_OPT; k++)
		free(ld->rb.opt[k]);
	for (size_t i = 0; i < ld->n_files; i++)
		free(ld->files[i]);
	free(ld->files);
}

void
data_copy_err(char *errbuf, size_t errlen, const char *msg, psf_err rv)
{
	if (errbuf == NULL || errlen == 0)
		return;
	snprintf(errbuf, errlen, "%s", msg[0] != '\0' ? msg : psf_strerror(rv));
}

psf_err
data_load_csv(const char *path, const psf_data_opts *opts, char *msg, psf_dataset **out)
{
	loader ld;
	struct stat st;
	psf_err rv;

	memset(&ld, 0, sizeof(ld));
	ld.opts = *opts;
	ld.opts.cache = false;
	if (stat(path, &st) != 0) {
		data_set_msg(&ld, "%s: %s", path, strerror(errno));
		rv = psf_err_from_errno(errno);
	} else {
		rv = S_ISDIR(st.st_mode) ? load_dir(&ld, path) : load_file(&ld, path, -1);
	}
	if (rv == PSF_OK)
		rv = assemble(&ld, out);
	memcpy(msg, ld.msg, DATA_MSG_LEN);
	loader_fini(&ld);
	return rv;
}

/* load_cached loads through the cache; *used tells whether one was used. */
static psf_err
load_cached(const char *path, const psf_data_opts *opts, char *msg, psf_dataset **out, int *used)
{
	uint64_t t0 = psf_now_ns();
	data_cache *c = NULL;
	psf_err rv;

	*used = 0;
	if ((rv = data_cache_get(path, opts, msg, &c)) != PSF_OK || c == NULL)
		return rv;
	rv = data_cache_dataset(c, opts, msg, out);
	if (rv == PSF_EINVAL) {
		/* A series failed its hash or checks: drop the file and build anew. */
		psf_log_warn("data", "%s; rebuilding it", msg);
		unlink(data_cache_path(c));
		data_cache_close(c);
		c = NULL;
		msg[0] = '\0';
		if ((rv = data_cache_get(path, opts, msg, &c)) != PSF_OK || c == NULL)
			return rv;
		if ((rv = data_cache_dataset(c, opts, msg, out)) != PSF_OK) {
			data_cache_close(c);
			msg[0] = '\0';
			return rv == PSF_EINVAL ? PSF_OK : rv; /* parse the CSV instead */
		}
	}
	*used = rv == PSF_OK;
	if (rv == PSF_OK && !opts->quiet)
		psf_log_info("data", "%s: %zu symbols, %zu rows from cache %s in %.3f s", path,
		    (*out)->n_series, (*out)->n_rows, data_cache_path(c),
		    (double)(psf_now_ns() - t0) / 1e9);
	data_cache_close(c);
	return rv;
}

/* cut_rows leaves in ds only the rows dated before end, in place, as if the
 * later rows were absent from the input: each series keeps its prefix, and a
 * series left with no rows is dropped. The arrays are compacted with memmove in
 * increasing order: row j of column k moves from k*n + j to k*n' + j' with n' <= n
 * and j' <= j, so no move overwrites a row not yet moved. The bad-row counts stay
 * those of the whole input (every row was checked, before the cut too). Cannot
 * fail. */
static void
cut_rows(psf_dataset *ds, int32_t end)
{
	size_t n = ds->n_rows, kept = 0, w, ns = 0;

	/* Each series' new length first (psf_series_index: SIZE_MAX, + 1 = 0, when
	 * no row is dated <= end - 1); its pointers still name the old rows. */
	for (size_t i = 0; i < ds->n_series; i++)
		kept += ds->series[i].n = psf_series_index(&ds->series[i], end - 1) + 1;
	for (int k = -1; k < 5; k++) { /* k = -1: the dates, then each value column */
		w = 0;
		for (size_t i = 0; i < ds->n_series; i++) {
			size_t m = ds->series[i].n, b = (size_t)(ds->series[i].date - ds->date);

			if (k < 0)
				memmove(ds->date + w, ds->date + b, m * sizeof(*ds->date));
			else
				memmove(ds->vals + (size_t)k * kept + w,
				    ds->vals + (size_t)k * n + b, m * sizeof(*ds->vals));
			w += m;
		}
	}
	w = 0;
	for (size_t i = 0; i < ds->n_series; i++) {
		psf_series s = ds->series[i];

		if (s.n == 0)
			continue;
		s.date = ds->date + w;
		s.close = ds->vals + w;
		s.open = ds->vals + kept + w;
		s.high = ds->vals + 2 * kept + w;
		s.low = ds->vals + 3 * kept + w;
		s.volume = ds->vals + 4 * kept + w;
		ds->series[ns++] = s;
		w += s.n;
	}
	ds->n_series = ns;
	ds->n_rows = kept;
}

void
psf_data_opts_config(const psf_config *cfg, psf_data_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->bad_rows = cfg->data.bad_rows;
	opts->cache = cfg->data.cache != 0;
	opts->cache_dir = cfg->run_dir;
}

psf_err
psf_data_load(const char *path, const psf_data_opts *opts, char *errbuf, size_t errlen,
    psf_dataset **out)
{
	char msg[DATA_MSG_LEN] = "";
	psf_data_opts o = {0};
	psf_dataset *ds = NULL;
	int used = 0;
	psf_err rv;

	if (opts != NULL)
		o = *opts;
	if (path == NULL || out == NULL) {
		data_copy_err(errbuf, errlen, "data: no path given", PSF_EINVAL);
		return PSF_EINVAL;
	}
	/* The cache holds every row of the input; a training cut (date_end, a
	 * backtest's origin) is a view taken after the load, the same for a parse and
	 * for the cache, so the origins of a backtest share one parse. */
	rv = o.cache ? load_cached(path, &o, msg, &ds, &used) : PSF_OK;
	if (rv == PSF_OK && !used)
		rv = data_load_csv(path, &o, msg, &ds);
	if (rv != PSF_OK) {
		data_copy_err(errbuf, errlen, msg, rv);
		return rv;
	}
	if (o.date_end != 0)
		cut_rows(ds, o.date_end);
	if (ds->n_skipped > 0)
		psf_log_warn("data", "%s: skipped %zu bad row%s; first: %s", path, ds->n_skipped,
		    psf_plural(ds->n_skipped), ds->first_error);
	*out = ds;
	return PSF_OK;
}

void
psf_dataset_free(psf_dataset *ds)
{
	if (ds == NULL)
		return;
	free(ds->series);
	free(ds->names);
	free(ds->date);
	free(ds->vals);
	free(ds);
}

size_t
psf_dataset_n_series(const psf_dataset *ds)
{
	return ds->n_series;
}

const psf_series *
psf_dataset_series(const psf_dataset *ds, size_t i)
{
	return i < ds->n_series ? &ds->series[i] : NULL;
}

const psf_series *
psf_dataset_find(const psf_dataset *ds, const char *symbol)
{
	size_t lo = 0, hi = ds->n_series;

	while (symbol != NULL && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(ds->series[mid].symbol, symbol);

		if (c == 0)
			return &ds->series[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

size_t
psf_dataset_n_rows(const psf_dataset *ds)
{
	return ds->n_rows;
}

unsigned
psf_dataset_columns(const psf_dataset *ds)
{
	return ds->columns;
}

size_t
psf_dataset_n_skipped(const psf_dataset *ds)
{
	return ds->n_skipped;
}

const char *
psf_dataset_first_error(const psf_dataset *ds)
{
	return ds->first_error;
}

size_t
psf_series_index(const psf_series *s, int32_t date)
{
	size_t lo = 0, hi = s->n;

	/* First row dated > date; the one before it is the answer. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->date[mid] <= date)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? SIZE_MAX : lo - 1;
}
