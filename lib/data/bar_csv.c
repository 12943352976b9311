/* bar_csv.c -- one CSV of daily bars, read line by line (bar_csv.h). */
#include "lib/data/bar_csv.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/data/data_internal.h"

static const char *const bar_col_names[PSF_BAR_MAX_COLS] = {"date", "symbol", "close", "open",
    "high", "low", "volume"};

/* field returns the next comma-separated field of [*p, end) and moves *p past it. */
static void
next_field(const char **p, const char *end, const char **f, size_t *flen)
{
	const char *q = *p;

	while (q < end && *q != ',')
		q++;
	*f = *p;
	*flen = (size_t)(q - *p);
	while (*flen > 0 && ((*f)[*flen - 1] == '\r' || (*f)[*flen - 1] == ' '))
		(*flen)--;
	while (*flen > 0 && (*f)[0] == ' ') {
		(*f)++;
		(*flen)--;
	}
	*p = q < end ? q + 1 : q + 1; /* past the comma (or the end) */
}

psf_err
psf_bar_csv_header(const char *line, size_t len, psf_bar_cols *cols, char *msg, size_t msg_len)
{
	const char *p = line, *end = line + len;
	int seen[PSF_BAR_MAX_COLS] = {0};

	cols->n = 0;
	while (p <= end) {
		const char *f;
		size_t flen;
		int k;
		next_field(&p, end, &f, &flen);
		for (k = 0; k < PSF_BAR_MAX_COLS; k++)
			if (strlen(bar_col_names[k]) == flen &&
			    strncmp(bar_col_names[k], f, flen) == 0)
				break;
		if (k == PSF_BAR_MAX_COLS) {
			snprintf(msg, msg_len,
			    "header: unknown column '%.*s' (columns: date, symbol, close, open, "
			    "high, low, volume)",
			    (int)(flen > 40 ? 40 : flen), f);
			return PSF_EINVAL;
		}
		if (seen[k]++ || cols->n == PSF_BAR_MAX_COLS) {
			snprintf(msg, msg_len, "header: column '%s' appears twice",
			    bar_col_names[k]);
			return PSF_EINVAL;
		}
		cols->col[cols->n++] = k;
	}
	for (int k = 0; k < 3; k++) {
		if (!seen[k]) {
			snprintf(msg, msg_len, "header: column '%s' is required", bar_col_names[k]);
			return PSF_EINVAL;
		}
	}
	return PSF_OK;
}

psf_err
psf_bar_csv_row(const psf_bar_cols *cols, const char *line, size_t len, psf_bar *out, char *msg,
    size_t msg_len)
{
	const char *p = line, *end = line + len;
	double *num[PSF_BAR_MAX_COLS] = {NULL, NULL, &out->close, &out->open, &out->high, &out->low,
	    &out->volume};
	size_t k = 0;

	*out = (psf_bar){.close = NAN, .open = NAN, .high = NAN, .low = NAN, .volume = NAN};
	for (; k < cols->n && p <= end; k++) {
		const char *f;
		size_t flen;
		int c = cols->col[k];
		next_field(&p, end, &f, &flen);
		if (c == 0) {
			if (psf_date_parse(f, flen, &out->date) != PSF_OK) {
				snprintf(msg, msg_len, "date '%.*s' is not a YYYY-MM-DD date",
				    (int)(flen > 32 ? 32 : flen), f);
				return PSF_EINVAL;
			}
		} else if (c == 1) {
			if (!data_symbol_valid(f, flen)) {
				snprintf(msg, msg_len,
				    "symbol '%.*s' is not valid (1-%d of A-Z a-z 0-9 . _ ^ -)",
				    (int)(flen > 70 ? 70 : flen), f, PSF_SYMBOL_MAX);
				return PSF_EINVAL;
			}
			memcpy(out->symbol, f, flen);
			out->symbol[flen] = '\0';
		} else if (flen > 0 && psf_number_parse(f, flen, num[c]) != PSF_OK) {
			snprintf(msg, msg_len, "%s '%.*s' is not a number", bar_col_names[c],
			    (int)(flen > 32 ? 32 : flen), f);
			return PSF_EINVAL;
		} else if (flen == 0 && c == 2) {
			snprintf(msg, msg_len, "close is empty");
			return PSF_EINVAL;
		}
	}
	if (k < cols->n || p <= end) {
		snprintf(msg, msg_len, "%s fields; the header has %zu",
		    k < cols->n ? "too few" : "too many", cols->n);
		return PSF_EINVAL;
	}
	return PSF_OK;
}

psf_err
psf_bar_check(const psf_bar *b, char *msg, size_t msg_len)
{
	const double opt[3] = {b->open, b->high, b->low};
	static const char *const names[3] = {"open", "high", "low"};

	if (!(b->close > 0) || !isfinite(b->close)) {
		snprintf(msg, msg_len, "close %g: must be a finite number > 0", b->close);
		return PSF_EINVAL;
	}
	for (int i = 0; i < 3; i++) {
		if (!isnan(opt[i]) && (!(opt[i] > 0) || !isfinite(opt[i]))) {
			snprintf(msg, msg_len, "%s %g: must be a finite number > 0 (or absent)",
			    names[i], opt[i]);
			return PSF_EINVAL;
		}
	}
	if (!isnan(b->volume) && (!(b->volume >= 0) || !isfinite(b->volume))) {
		snprintf(msg, msg_len, "volume %g: must be a finite number >= 0 (or absent)",
		    b->volume);
		return PSF_EINVAL;
	}
	if (!isnan(b->high) && !isnan(b->low) && b->high < b->low) {
		snprintf(msg, msg_len, "high %g is below low %g", b->high, b->low);
		return PSF_EINVAL;
	}
	return PSF_OK;
}

size_t
psf_bar_csv_format(const psf_bar *b, char *buf, size_t len)
{
	char day[11], v[5][32];
	const double vals[5] = {b->open, b->high, b->low, b->close, b->volume};
	int n;

	psf_date_format(b->date, day);
	for (int i = 0; i < 5; i++)
		psf_number_format(vals[i], v[i]);
	n = snprintf(buf, len, "%s,%s,%s,%s,%s,%s,%s\n", day, b->symbol, v[0], v[1], v[2], v[3],
	    v[4]);
	return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

int
psf_bar_symbol_valid(const char *s, size_t len)
{
	return data_symbol_valid(s, len);
}

static int
same_value(double a, double b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

int
psf_bar_same(const psf_bar *a, const psf_bar *b)
{
	return a->date == b->date && same_value(a->close, b->close) &&
	    same_value(a->open, b->open) && same_value(a->high, b->high) &&
	    same_value(a->low, b->low) && same_value(a->volume, b->volume);
}
