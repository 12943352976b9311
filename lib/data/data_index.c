/* data_index.c -- the symbol and date index of a data set (data.h): read
 * from a partition's manifest and dates files when it has them, else built by
 * loading the data; and the train/test cutoff date. */
#define _GNU_SOURCE
#include "lib/data/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/data/data_internal.h"

psf_err
data_index_alloc(size_t n_symbols, size_t n_dates, psf_data_index **out)
{
	psf_data_index *idx = calloc(1, sizeof(*idx));

	if (idx == NULL)
		return PSF_ENOMEM;
	idx->names = calloc(n_symbols + 1, sizeof(*idx->names));
	idx->rows = calloc(n_symbols + 1, sizeof(*idx->rows));
	idx->dates = calloc(n_dates + 1, sizeof(*idx->dates));
	if (idx->names == NULL || idx->rows == NULL || idx->dates == NULL) {
		psf_data_index_free(idx);
		return PSF_ENOMEM;
	}
	idx->n_symbols = n_symbols;
	*out = idx;
	return PSF_OK;
}

psf_err
psf_data_index_from(const psf_dataset *ds, psf_data_index **out)
{
	size_t n_series = psf_dataset_n_series(ds), n_dates = 0;
	int32_t lo = INT32_MAX, hi = INT32_MIN;
	uint8_t *seen = NULL;
	psf_data_index *idx = NULL;
	psf_err rv;

	for (size_t i = 0; i < n_series; i++) {
		const psf_series *s = psf_dataset_series(ds, i);

		lo = s->date[0] < lo ? s->date[0] : lo;
		hi = s->date[s->n - 1] > hi ? s->date[s->n - 1] : hi;
	}
	/* Dates span at most years 1..9999 (3.65M days): a byte map is cheap. */
	if (n_series > 0 && (seen = calloc((size_t)(hi - lo) + 1, 1)) == NULL)
		return PSF_ENOMEM;
	for (size_t i = 0; i < n_series; i++) {
		const psf_series *s = psf_dataset_series(ds, i);

		for (size_t j = 0; j < s->n; j++) {
			n_dates += !seen[s->date[j] - lo];
			seen[s->date[j] - lo] = 1;
		}
	}
	if ((rv = data_index_alloc(n_series, n_dates, &idx)) != PSF_OK)
		goto out;
	for (size_t i = 0; i < n_series; i++) {
		const psf_series *s = psf_dataset_series(ds, i);

		idx->rows[i] = s->n;
		if ((idx->names[i] = strdup(s->symbol)) == NULL) {
			rv = PSF_ENOMEM;
			goto out;
		}
	}
	for (int64_t d = lo; n_series > 0 && d <= hi; d++) {
		if (seen[d - lo])
			idx->dates[idx->n_dates++] = (int32_t)d;
	}
	*out = idx;
	idx = NULL;
out:
	psf_data_index_free(idx);
	free(seen);
	return rv;
}

/* next_line returns the next line of [*p, end) without its newline (and \r). */
static int
next_line(const char **p, const char *end, span *line)
{
	const char *nl;

	if (*p >= end)
		return 0;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	line->p = *p;
	line->len = (size_t)((nl != NULL ? nl : end) - *p);
	if (line->len > 0 && line->p[line->len - 1] == '\r')
		line->len--;
	*p = nl != NULL ? nl + 1 : end;
	return 1;
}

static int
parse_u64(span s, uint64_t *out)
{
	uint64_t v = 0;

	if (s.len == 0 || s.len > 18)
		return 0;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	*out = v;
	return 1;
}

/* read_lines reads a small text file and returns its lines (after the header,
 * which must be `header`) as spans into *text. */
static psf_err
read_lines(const char *path, const char *header, char *msg, char **text, span **lines,
    size_t *n_lines)
{
	size_t len, n = 0, cap = 0;
	const char *p, *end;
	span l, *ls = NULL;
	psf_err rv;

	if ((rv = psf_read_file(path, text, &len)) != PSF_OK) {
		data_msgf(msg, "%s: %s", path, psf_strerror(rv));
		return rv;
	}
	p = *text;
	end = p + len;
	if (!next_line(&p, end, &l) || l.len != strlen(header) || memcmp(l.p, header, l.len)) {
		data_msgf(msg, "%s:1: expected header '%s'", path, header);
		return PSF_EINVAL;
	}
	while (next_line(&p, end, &l)) {
		if (n == cap) {
			span *nl = realloc(ls, (cap = cap * 2 + 64) * sizeof(*nl));

			if (nl == NULL) {
				free(ls);
				return PSF_ENOMEM;
			}
			ls = nl;
		}
		ls[n++] = l;
	}
	*lines = ls;
	*n_lines = n;
	return PSF_OK;
}

static psf_err
manifest_symbols(const char *path, const span *ls, size_t n, char *msg, psf_data_index *idx)
{
	for (size_t i = 0; i < n; i++) {
		span f[4];
		uint64_t rows;

		if (data_split(ls[i].p, ls[i].len, f, 4) != 4 ||
		    !data_symbol_valid(f[0].p, f[0].len) || !parse_u64(f[1], &rows) || rows == 0) {
			data_msgf(msg, "%s:%zu: malformed line", path, i + 2);
			return PSF_EINVAL;
		}
		if ((idx->names[i] = strndup(f[0].p, f[0].len)) == NULL)
			return PSF_ENOMEM;
		idx->rows[i] = rows;
		if (i > 0 && strcmp(idx->names[i - 1], idx->names[i]) >= 0) {
			data_msgf(msg, "%s:%zu: symbols not sorted", path, i + 2);
			return PSF_EINVAL;
		}
	}
	return PSF_OK;
}

static psf_err
manifest_dates(const char *path, const span *ls, size_t n, char *msg, psf_data_index *idx)
{
	for (size_t i = 0; i < n; i++) {
		if (psf_date_parse(ls[i].p, ls[i].len, &idx->dates[i]) != PSF_OK ||
		    (i > 0 && idx->dates[i] <= idx->dates[i - 1])) {
			data_msgf(msg, "%s:%zu: bad or unsorted date", path, i + 2);
			return PSF_EINVAL;
		}
	}
	idx->n_dates = n;
	return PSF_OK;
}

/* read_manifest builds the index of a partition from its two small files. */
static psf_err
read_manifest(const char *man, const char *dates, char *msg, psf_data_index **out)
{
	char *mtext = NULL, *dtext = NULL;
	span *ml = NULL, *dl = NULL;
	size_t nm = 0, nd = 0;
	psf_data_index *idx = NULL;
	psf_err rv;

	if ((rv = read_lines(man, "symbol,rows,first_date,last_date", msg, &mtext, &ml, &nm)) !=
	    PSF_OK)
		goto out;
	if ((rv = read_lines(dates, "date", msg, &dtext, &dl, &nd)) != PSF_OK)
		goto out;
	if ((rv = data_index_alloc(nm, nd, &idx)) != PSF_OK)
		goto out;
	if ((rv = manifest_symbols(man, ml, nm, msg, idx)) != PSF_OK)
		goto out;
	if ((rv = manifest_dates(dates, dl, nd, msg, idx)) != PSF_OK)
		goto out;
	*out = idx;
	idx = NULL;
out:
	psf_data_index_free(idx);
	free(dl);
	free(ml);
	free(dtext);
	free(mtext);
	return rv;
}

psf_err
psf_data_scan(const char *path, psf_bad_rows bad_rows, char *errbuf, size_t errlen,
    psf_data_index **out)
{
	psf_data_opts opts = {.bad_rows = bad_rows};

	return psf_data_scan_opts(path, &opts, errbuf, errlen, out);
}

/* scan_cached gives the index from the cache; *used tells whether one was used. */
static psf_err
scan_cached(const char *path, const psf_data_opts *opts, char *msg, psf_data_index **out, int *used)
{
	data_cache *c = NULL;
	psf_err rv;

	*used = 0;
	if ((rv = data_cache_get(path, opts, msg, &c)) != PSF_OK || c == NULL)
		return rv;
	*used = 1;
	rv = data_cache_index(c, out);
	data_cache_close(c);
	return rv;
}

psf_err
psf_data_scan_opts(const char *path, const psf_data_opts *opts, char *errbuf, size_t errlen,
    psf_data_index **out)
{
	psf_data_opts o = {0};
	char man[4096], dates[4096], msg[DATA_MSG_LEN] = "";
	struct stat st;
	psf_dataset *ds = NULL;
	int used = 0;
	psf_err rv;

	if (opts != NULL)
		o = *opts;
	o.keep = NULL;
	if (path == NULL || out == NULL) {
		data_copy_err(errbuf, errlen, "data: no path given", PSF_EINVAL);
		return PSF_EINVAL;
	}
	if (o.cache && ((rv = scan_cached(path, &o, msg, out, &used)) != PSF_OK || used)) {
		if (rv != PSF_OK)
			data_copy_err(errbuf, errlen, msg, rv);
		return rv;
	}
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (size_t)snprintf(man, sizeof(man), "%s/%s", path, PSF_DATA_MANIFEST) < sizeof(man) &&
	    (size_t)snprintf(dates, sizeof(dates), "%s/%s", path, PSF_DATA_DATES) < sizeof(dates) &&
	    access(man, R_OK) == 0 && access(dates, R_OK) == 0) {
		if ((rv = read_manifest(man, dates, msg, out)) != PSF_OK)
			data_copy_err(errbuf, errlen, msg, rv);
		return rv;
	}
	if ((rv = data_load_csv(path, &o, msg, &ds)) != PSF_OK) {
		data_copy_err(errbuf, errlen, msg, rv);
		return rv;
	}
	if (ds->n_skipped > 0)
		psf_log_warn("data", "%s: skipped %zu bad row%s; first: %s", path, ds->n_skipped,
		    psf_plural(ds->n_skipped), ds->first_error);
	rv = psf_data_index_from(ds, out);
	psf_dataset_free(ds);
	if (rv != PSF_OK)
		data_copy_err(errbuf, errlen, "", rv);
	return rv;
}

void
psf_data_index_free(psf_data_index *idx)
{
	if (idx == NULL)
		return;
	for (size_t i = 0; idx->names != NULL && i < idx->n_symbols; i++)
		free(idx->names[i]);
	free(idx->names);
	free(idx->rows);
	free(idx->dates);
	free(idx);
}

size_t
psf_data_index_n_symbols(const psf_data_index *idx)
{
	return idx->n_symbols;
}

const char *
psf_data_index_symbol(const psf_data_index *idx, size_t i, uint64_t *rows)
{
	if (i >= idx->n_symbols)
		return NULL;
	if (rows != NULL)
		*rows = idx->rows[i];
	return idx->names[i];
}

const int32_t *
psf_data_index_dates(const psf_data_index *idx, size_t *n)
{
	*n = idx->n_dates;
	return idx->dates;
}

psf_err
psf_data_cutoff_date(const int32_t *dates, size_t n, double test_fraction, int32_t *out)
{
	double want;
	size_t n_test;

	if (dates == NULL || out == NULL || n < 2 || !(test_fraction > 0 && test_fraction < 1))
		return PSF_EINVAL;
	want = ceil((double)n * test_fraction - 1e-9);
	n_test = want < 1 ? 1 : (size_t)want;
	if (n_test > n - 1)
		n_test = n - 1;
	*out = dates[n - n_test];
	return PSF_OK;
}
