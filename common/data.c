/* data.c -- CSV and partition-directory loading (data.h).
 *
 * One pass over an mmap'ed file: split each line into fields, intern the symbol,
 * parse date and numbers by hand (strtod only for rare long or odd spellings),
 * append to column arrays. Then group rows by symbol (counting sort), sort each
 * symbol's rows by date unless already sorted, drop duplicates, and copy into
 * the dataset's contiguous arrays. */
#define _GNU_SOURCE
#include "data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "data_internal.h"
#include "log.h"
#include "util.h"

#define SHOW 40 /* bytes of a bad field quoted in an error */

enum { C_DATE, C_SYMBOL, C_CLOSE, C_OPEN, C_HIGH, C_LOW, C_VOLUME, C_COUNT };
#define N_OPT 4 /* open, high, low, volume: columns C_OPEN + k */

static const char *const col_names[C_COUNT] = {
	"date", "symbol", "close", "open", "high", "low", "volume"};

/* ------------------------------------------------------------- dates */

static const int16_t cum_days[12] = {
	0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};

static int
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Leap years in [1, y). */
static int32_t
leaps_before(int32_t y)
{
	y -= 1;
	return y / 4 - y / 100 + y / 400;
}

static int32_t
days_from_ymd(int y, int m, int d)
{
	int32_t days = 365 * (y - 1970) + leaps_before(y) - leaps_before(1970);

	return days + cum_days[m - 1] + (m > 2 && is_leap(y)) + d - 1;
}

static int
month_days(int y, int m)
{
	static const int8_t len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return len[m - 1] + (m == 2 && is_leap(y));
}

static int
digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 1;
}

psf_err
psf_date_parse(const char *s, size_t len, int32_t *out)
{
	int y, m, d;

	if (s == NULL || len != 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) ||
	    !digits(s + 5, 2, &m) || !digits(s + 8, 2, &d))
		return PSF_EINVAL;
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > month_days(y, m))
		return PSF_EINVAL;
	*out = days_from_ymd(y, m, d);
	return PSF_OK;
}

void
psf_date_format(int32_t date, char buf[11])
{
	int y, m;
	int32_t doy;

	if (date < days_from_ymd(1, 1, 1) || date > days_from_ymd(9999, 12, 31)) {
		memcpy(buf, "0000-00-00", 11);
		return;
	}
	y = 1970 + (int)floor(date / 365.2425);
	while (y > 1 && days_from_ymd(y, 1, 1) > date)
		y--;
	while (y < 9999 && days_from_ymd(y + 1, 1, 1) <= date)
		y++;
	doy = date - days_from_ymd(y, 1, 1);
	for (m = 12; m > 1; m--) {
		if (doy >= cum_days[m - 1] + (m > 2 && is_leap(y)))
			break;
	}
	doy -= cum_days[m - 1] + (m > 2 && is_leap(y));
	doy += 1;
	for (int i = 3; i >= 0; i--, y /= 10)
		buf[i] = (char)('0' + y % 10);
	buf[4] = buf[7] = '-';
	buf[5] = (char)('0' + m / 10);
	buf[6] = (char)('0' + m % 10);
	buf[8] = (char)('0' + doy / 10);
	buf[9] = (char)('0' + doy % 10);
	buf[10] = '\0';
}

int
psf_date_dow(int32_t date)
{
	/* 1970-01-01 was a Thursday (3). */
	return (int)(((date % 7) + 7 + 3) % 7);
}

/* ----------------------------------------------------------- numbers */

static const double pow10_tab[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8,
	1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
	1e21, 1e22};

static psf_err
parse_slow(const char *s, size_t len, double *out)
{
	char buf[512];
	char *end;

	if (len == 0 || len >= sizeof(buf))
		return PSF_EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	*out = strtod(buf, &end);
	return end == buf + len ? PSF_OK : PSF_EINVAL;
}

/* Decimal mantissa up to 19 digits times a power of ten. When the mantissa fits
 * in 53 bits and |exponent| <= 22 both are exact doubles, so one multiply or
 * divide is correctly rounded: the same result as strtod (Clinger's fast path). */
psf_err
psf_number_parse(const char *s, size_t len, double *out)
{
	size_t i = 0;
	uint64_t mant = 0;
	int ndig = 0, exp10 = 0, any = 0, lost = 0, neg = 0;
	double v;

	if (s == NULL)
		return PSF_EINVAL;
	if (i < len && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (i < len && (s[i] == 'n' || s[i] == 'N' || s[i] == 'i' || s[i] == 'I'))
		return parse_slow(s, len, out);
	for (int frac = 0;; i++) {
		if (i < len && s[i] == '.' && !frac) {
			frac = 1;
			continue;
		}
		if (i >= len || s[i] < '0' || s[i] > '9')
			break;
		any = 1;
		if (mant == 0 && s[i] == '0') {
			exp10 -= frac;
		} else if (ndig < 19) {
			mant = mant * 10 + (uint64_t)(s[i] - '0');
			ndig++;
			exp10 -= frac;
		} else {
			lost = 1;
			exp10 += !frac;
		}
	}
	if (!any)
		return PSF_EINVAL;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		int eneg = 0, e = 0, edig = 0;

		if (++i < len && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, edig++)
			e = e < 100000 ? e * 10 + (s[i] - '0') : e;
		if (edig == 0)
			return PSF_EINVAL;
		exp10 += eneg ? -e : e;
	}
	if (i != len)
		return PSF_EINVAL;
	if (lost || mant > (UINT64_C(1) << 53) || exp10 < -22 || exp10 > 22)
		return parse_slow(s, len, out);
	v = (double)mant;
	v = exp10 < 0 ? v / pow10_tab[-exp10] : v * pow10_tab[exp10];
	*out = neg ? -v : v;
	return PSF_OK;
}

size_t
psf_number_format(double v, char buf[32])
{
	char tmp[24];
	double a = fabs(v);

	if (isnan(v)) {
		buf[0] = '\0';
		return 0;
	}
	for (int d = 0; d <= 9 && isfinite(v); d++) {
		double scaled = nearbyint(a * pow10_tab[d]);
		uint64_t m;
		size_t n = 0, k = 0;

		if (scaled > 9007199254740992.0)
			break;
		if ((d == 0 ? scaled : scaled / pow10_tab[d]) != a)
			continue;
		/* Parsing "m with d decimals" computes exactly scaled / 10^d. */
		m = (uint64_t)scaled;
		do {
			tmp[n++] = (char)('0' + m % 10);
			m /= 10;
		} while (m != 0 || n <= (size_t)d);
		if (v < 0 && scaled != 0)
			buf[k++] = '-';
		while (n > 0) {
			buf[k++] = tmp[--n];
			if (n == (size_t)d && d > 0)
				buf[k++] = '.';
		}
		buf[k] = '\0';
		return k;
	}
	return (size_t)snprintf(buf, 32, "%.17g", v);
}

/* ------------------------------------------------------------ loader */

typedef struct span {
	const char *p;
	size_t len;
} span;

typedef struct sym_entry {
	char *name;
	size_t len;
	uint64_t hash;
	size_t count; /* rows stored */
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
	uint64_t first_key;
	char first_err[DATA_MSG_LEN];
	char msg[DATA_MSG_LEN]; /* the error returned */
} loader;

/* One file being read: where its columns are. */
typedef struct csvfile {
	uint32_t idx;
	int64_t forced; /* symbol id from the directory name, or -1 */
	int col[C_COUNT];
	size_t n_fields;
	span *f;
} csvfile;

struct psf_dataset {
	psf_series *series;
	size_t n_series;
	size_t n_rows;
	unsigned columns;
	size_t n_skipped;
	char first_error[DATA_MSG_LEN];
	char *names;
	int32_t *date;
	double *vals; /* close, open, high, low, volume: n_rows each */
};

struct psf_data_index {
	size_t n_symbols;
	char **names;
	uint64_t *rows;
	size_t n_dates;
	int32_t *dates;
};

/* Declared in data_internal.h: datagen.c builds its error lines the same way. */
void
data_msgf(char *msg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, DATA_MSG_LEN, fmt, ap);
	va_end(ap);
}

static void set_msg(loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_msg(loader *ld, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ld->msg, DATA_MSG_LEN, fmt, ap);
	va_end(ap);
}

static void note_bad(loader *ld, uint32_t file, uint32_t line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* note_bad counts a bad row and keeps the message of the earliest one. */
static void
note_bad(loader *ld, uint32_t file, uint32_t line, const char *fmt, ...)
{
	uint64_t key = ((uint64_t)file << 32) | line;
	va_list ap;
	int k;

	if (ld->n_skipped++ > 0 && key >= ld->first_key)
		return;
	ld->first_key = key;
	k = snprintf(ld->first_err, sizeof(ld->first_err), "%s:%u: ", ld->files[file], line);
	if (k < 0 || (size_t)k >= sizeof(ld->first_err))
		return;
	va_start(ap, fmt);
	vsnprintf(ld->first_err + k, sizeof(ld->first_err) - (size_t)k, fmt, ap);
	va_end(ap);
}

/* policy turns noted bad rows into the load's result. */
static psf_err
policy(loader *ld)
{
	if (ld->n_skipped == 0 || ld->opts.bad_rows == PSF_BAD_ROWS_SKIP)
		return PSF_OK;
	memcpy(ld->msg, ld->first_err, sizeof(ld->msg));
	return PSF_EINVAL;
}

static int
symbol_valid(const char *p, size_t len)
{
	if (len == 0 || len > PSF_SYMBOL_MAX || p[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '^' || c == '-'))
			return 0;
	}
	return 1;
}

static psf_err
grow_slots(loader *ld)
{
	size_t n = ld->n_slots == 0 ? 1024 : ld->n_slots * 2;
	uint32_t *s = calloc(n, sizeof(*s));

	if (s == NULL)
		return PSF_ENOMEM;
	for (size_t id = 0; id < ld->n_syms; id++) {
		size_t h = (size_t)ld->syms[id].hash & (n - 1);

		while (s[h] != 0)
			h = (h + 1) & (n - 1);
		s[h] = (uint32_t)id + 1;
	}
	free(ld->slots);
	ld->slots = s;
	ld->n_slots = n;
	return PSF_OK;
}

static psf_err
add_symbol(loader *ld, const char *p, size_t len, uint64_t hash, uint32_t *id)
{
	sym_entry *e;

	if (ld->n_syms == ld->cap_syms) {
		size_t cap = ld->cap_syms == 0 ? 256 : ld->cap_syms * 2;
		sym_entry *ns = realloc(ld->syms, cap * sizeof(*ns));

		if (ns == NULL)
			return PSF_ENOMEM;
		ld->syms = ns;
		ld->cap_syms = cap;
	}
	e = &ld->syms[ld->n_syms];
	memset(e, 0, sizeof(*e));
	if ((e->name = strndup(p, len)) == NULL)
		return PSF_ENOMEM;
	e->len = len;
	e->hash = hash;
	e->keep = ld->opts.keep == NULL || ld->opts.keep(e->name, ld->opts.keep_arg);
	*id = (uint32_t)ld->n_syms++;
	return PSF_OK;
}

/* intern finds or adds a symbol; *id gets its index in ld->syms. */
static psf_err
intern(loader *ld, const char *p, size_t len, uint32_t *id)
{
	uint64_t hash = XXH3_64bits(p, len);
	size_t h;
	psf_err rv;

	if ((ld->n_syms + 1) * 2 > ld->n_slots && (rv = grow_slots(ld)) != PSF_OK)
		return rv;
	for (h = (size_t)hash & (ld->n_slots - 1); ld->slots[h] != 0;
	    h = (h + 1) & (ld->n_slots - 1)) {
		const sym_entry *e = &ld->syms[ld->slots[h] - 1];

		if (e->hash == hash && e->len == len && memcmp(e->name, p, len) == 0) {
			*id = ld->slots[h] - 1;
			return PSF_OK;
		}
	}
	if ((rv = add_symbol(ld, p, len, hash, id)) != PSF_OK)
		return rv;
	ld->slots[h] = *id + 1;
	return PSF_OK;
}

static psf_err
grow(void *pp, size_t elem, size_t cap)
{
	void **p = pp;
	void *np = realloc(*p, cap * elem);

	if (np == NULL)
		return PSF_ENOMEM;
	*p = np;
	return PSF_OK;
}

static psf_err
rowbuf_reserve(rowbuf *rb, size_t need)
{
	size_t cap = rb->cap == 0 ? 4096 : rb->cap;

	if (need <= rb->cap)
		return PSF_OK;
	while (cap < need)
		cap *= 2;
	if (grow(&rb->date, sizeof(*rb->date), cap) != PSF_OK ||
	    grow(&rb->sym, sizeof(*rb->sym), cap) != PSF_OK ||
	    grow(&rb->line, sizeof(*rb->line), cap) != PSF_OK ||
	    grow(&rb->close, sizeof(*rb->close), cap) != PSF_OK)
		return PSF_ENOMEM;
	for (int k = 0; k < N_OPT; k++) {
		if (rb->opt[k] != NULL && grow(&rb->opt[k], sizeof(double), cap) != PSF_OK)
			return PSF_ENOMEM;
	}
	rb->cap = cap;
	return PSF_OK;
}

/* rowbuf_add_col starts storing optional column k (NaN for earlier rows). */
static psf_err
rowbuf_add_col(rowbuf *rb, int k)
{
	size_t cap = rb->cap == 0 ? 1 : rb->cap;

	if (rb->opt[k] != NULL)
		return PSF_OK;
	if ((rb->opt[k] = malloc(cap * sizeof(double))) == NULL)
		return PSF_ENOMEM;
	for (size_t i = 0; i < rb->n; i++)
		rb->opt[k][i] = NAN;
	return PSF_OK;
}

static span
trim(const char *p, size_t len)
{
	span s;

	while (len > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
		p++;
		len -= 2;
	}
	s.p = p;
	s.len = len;
	return s;
}

/* split stores up to max trimmed fields of a line in f; returns the count. */
static size_t
split(const char *p, size_t len, span *f, size_t max)
{
	size_t n = 0;
	const char *end = p + len;

	for (;;) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		const char *fe = c != NULL ? c : end;

		if (n < max)
			f[n] = trim(p, (size_t)(fe - p));
		n++;
		if (c == NULL)
			return n;
		p = c + 1;
	}
}

static int
show(size_t len)
{
	return (int)(len < SHOW ? len : SHOW);
}

/* row_symbol finds the row's symbol id, or returns a bad row. */
static psf_err
row_symbol(loader *ld, const csvfile *cf, uint32_t line, uint32_t *id, int *bad)
{
	span s;

	*bad = 0;
	if (cf->col[C_SYMBOL] < 0) {
		*id = (uint32_t)cf->forced;
		return PSF_OK;
	}
	s = cf->f[cf->col[C_SYMBOL]];
	if (!symbol_valid(s.p, s.len)) {
		note_bad(ld, cf->idx, line, "symbol '%.*s' is not valid (1-%d of A-Z a-z 0-9 . _ ^ -)",
		    show(s.len), s.p, PSF_SYMBOL_MAX);
		*bad = 1;
		return PSF_OK;
	}
	if (cf->forced < 0)
		return intern(ld, s.p, s.len, id);
	*id = (uint32_t)cf->forced;
	if (s.len != ld->syms[*id].len || memcmp(s.p, ld->syms[*id].name, s.len) != 0) {
		note_bad(ld, cf->idx, line, "symbol '%.*s' does not match its folder's '%s'",
		    show(s.len), s.p, ld->syms[*id].name);
		*bad = 1;
	}
	return PSF_OK;
}

/* row_values parses date, close and the optional fields; 0 = bad row (noted). */
static int
row_values(loader *ld, const csvfile *cf, uint32_t line, int32_t *date, double *v)
{
	span d = cf->f[cf->col[C_DATE]], c = cf->f[cf->col[C_CLOSE]];

	if (psf_date_parse(d.p, d.len, date) != PSF_OK) {
		note_bad(ld, cf->idx, line, "date '%.*s' is not a valid YYYY-MM-DD date",
		    show(d.len), d.p);
		return 0;
	}
	if (psf_number_parse(c.p, c.len, &v[0]) != PSF_OK) {
		note_bad(ld, cf->idx, line, "close '%.*s' is not a number", show(c.len), c.p);
		return 0;
	}
	if (!isfinite(v[0]) || v[0] <= 0) {
		note_bad(ld, cf->idx, line, "close '%.*s' is not a finite number > 0",
		    show(c.len), c.p);
		return 0;
	}
	for (int k = 0; k < N_OPT; k++) {
		int col = cf->col[C_OPEN + k];
		span o;

		v[1 + k] = NAN;
		if (col < 0 || (o = cf->f[col]).len == 0)
			continue;
		if (psf_number_parse(o.p, o.len, &v[1 + k]) != PSF_OK) {
			note_bad(ld, cf->idx, line, "%s '%.*s' is not a number",
			    col_names[C_OPEN + k], show(o.len), o.p);
			return 0;
		}
	}
	return 1;
}

static psf_err
parse_row(loader *ld, const csvfile *cf, const char *p, size_t len, uint32_t line)
{
	size_t got = split(p, len, cf->f, cf->n_fields);
	rowbuf *rb = &ld->rb;
	uint32_t id;
	int32_t date;
	double v[1 + N_OPT];
	int bad;
	psf_err rv;

	if (got != cf->n_fields) {
		note_bad(ld, cf->idx, line, "expected %zu fields, got %zu", cf->n_fields, got);
		return policy(ld);
	}
	if ((rv = row_symbol(ld, cf, line, &id, &bad)) != PSF_OK)
		return rv;
	if (bad)
		return policy(ld);
	if (!ld->syms[id].keep)
		return PSF_OK;
	if (!row_values(ld, cf, line, &date, v))
		return policy(ld);
	if ((rv = rowbuf_reserve(rb, rb->n + 1)) != PSF_OK)
		return rv;
	rb->date[rb->n] = date;
	rb->sym[rb->n] = id;
	rb->line[rb->n] = line;
	rb->close[rb->n] = v[0];
	for (int k = 0; k < N_OPT; k++) {
		if (rb->opt[k] != NULL)
			rb->opt[k][rb->n] = v[1 + k];
	}
	rb->n++;
	ld->syms[id].count++;
	ld->syms[id].file = cf->idx;
	return PSF_OK;
}

static psf_err
parse_header(loader *ld, csvfile *cf, const char *p, size_t len)
{
	const char *file = ld->files[cf->idx];
	size_t n = split(p, len, NULL, 0);
	psf_err rv;

	if ((cf->f = calloc(n, sizeof(span))) == NULL)
		return PSF_ENOMEM;
	cf->n_fields = split(p, len, cf->f, n);
	for (int c = 0; c < C_COUNT; c++)
		cf->col[c] = -1;
	for (size_t i = 0; i < n; i++) {
		for (int c = 0; c < C_COUNT; c++) {
			if (cf->f[i].len != strlen(col_names[c]) ||
			    strncasecmp(cf->f[i].p, col_names[c], cf->f[i].len) != 0)
				continue;
			if (cf->col[c] >= 0) {
				set_msg(ld, "%s:1: duplicate column '%s'", file, col_names[c]);
				return PSF_EINVAL;
			}
			cf->col[c] = (int)i;
		}
	}
	for (int c = C_DATE; c <= C_CLOSE; c++) {
		if (cf->col[c] < 0 && !(c == C_SYMBOL && cf->forced >= 0)) {
			set_msg(ld, "%s:1: missing required column '%s'", file, col_names[c]);
			return PSF_EINVAL;
		}
	}
	for (int k = 0; k < N_OPT; k++) {
		if (cf->col[C_OPEN + k] >= 0 && (rv = rowbuf_add_col(&ld->rb, k)) != PSF_OK)
			return rv;
	}
	return PSF_OK;
}

/* parse_text reads a header line and then every row of one file. */
static psf_err
parse_text(loader *ld, csvfile *cf, const char *p, const char *end)
{
	uint32_t line = 0;
	psf_err rv = PSF_OK;

	if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (p < end && rv == PSF_OK) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		size_t len = (size_t)(le - p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (++line == 1)
			rv = parse_header(ld, cf, p, len);
		else if (len > 0)
			rv = parse_row(ld, cf, p, len, line);
		p = nl != NULL ? nl + 1 : end;
	}
	return rv;
}

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
	csvfile cf = {.forced = forced};
	struct stat st;
	void *map = MAP_FAILED;
	int fd;
	psf_err rv;

	if ((rv = add_file(ld, path, &cf.idx)) != PSF_OK)
		return rv;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		set_msg(ld, "%s: %s", path, strerror(errno));
		return psf_err_from_errno(errno);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		set_msg(ld, "%s: not a regular file", path);
		rv = PSF_EINVAL;
		goto out;
	}
	if (st.st_size == 0) {
		set_msg(ld, "%s:1: file is empty (expected a header line)", path);
		rv = PSF_EINVAL;
		goto out;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (map == MAP_FAILED) {
		set_msg(ld, "%s: mmap: %s", path, strerror(errno));
		rv = psf_err_from_errno(errno);
		goto out;
	}
	madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
	/* Rows take ~50 bytes of text; reserving up front saves the regrowth. */
	if ((rv = rowbuf_reserve(&ld->rb, ld->rb.n + (size_t)st.st_size / 48 + 1)) == PSF_OK)
		rv = parse_text(ld, &cf, map, (const char *)map + st.st_size);
out:
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	free(cf.f);
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
		set_msg(ld, "%s: %s", dir, strerror(errno));
		return psf_err_from_errno(errno);
	}
	while ((de = readdir(d)) != NULL) {
		const char *sym = de->d_name + 7;
		char **nn;

		if (strncmp(de->d_name, "symbol=", 7) != 0)
			continue;
		if (!symbol_valid(sym, strlen(sym))) {
			set_msg(ld, "%s/%s: '%s' is not a valid symbol", dir, de->d_name, sym);
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
		set_msg(ld, "%s: no symbol=XYZ folders (expected the output of psfleet data partition)",
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

		if ((rv = intern(ld, names[i], strlen(names[i]), &id)) != PSF_OK)
			break;
		if (!ld->syms[id].keep)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/symbol=%s/data.csv", dir,
		    names[i]) >= sizeof(path)) {
			set_msg(ld, "%s: path too long", dir);
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
				qsort(dr + start[i], start[i + 1] - start[i], sizeof(*dr), cmp_drow);
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
				note_bad(ld, order[i]->file, ld->rb.line[dr[j].row],
				    "duplicate row for %s on %s (first at line %u)", order[i]->name,
				    day, ld->rb.line[dr[w - 1].row]);
				continue;
			}
			dr[w++] = dr[j];
		}
	}
	start[n_order] = w;
	return policy(ld);
}

static psf_err
dataset_alloc(size_t n_series, size_t names_len, size_t n_rows, psf_dataset **out)
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
	if ((rv = dataset_alloc(n_order, names_len, n, &ds)) != PSF_OK)
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
			ds->vals[(size_t)(k + 1) * n + j] = rb->opt[k] != NULL ? rb->opt[k][r] : NAN;
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

static void
copy_err(char *errbuf, size_t errlen, const char *msg, psf_err rv)
{
	if (errbuf == NULL || errlen == 0)
		return;
	snprintf(errbuf, errlen, "%s", msg[0] != '\0' ? msg : psf_strerror(rv));
}

psf_err
psf_data_load(const char *path, const psf_data_opts *opts, char *errbuf, size_t errlen,
    psf_dataset **out)
{
	loader ld;
	struct stat st;
	psf_dataset *ds = NULL;
	psf_err rv;

	memset(&ld, 0, sizeof(ld));
	if (opts != NULL)
		ld.opts = *opts;
	if (path == NULL || out == NULL) {
		set_msg(&ld, "data: no path given");
		rv = PSF_EINVAL;
	} else if (stat(path, &st) != 0) {
		set_msg(&ld, "%s: %s", path, strerror(errno));
		rv = psf_err_from_errno(errno);
	} else {
		rv = S_ISDIR(st.st_mode) ? load_dir(&ld, path) : load_file(&ld, path, -1);
	}
	if (rv == PSF_OK)
		rv = assemble(&ld, &ds);
	if (rv != PSF_OK) {
		copy_err(errbuf, errlen, ld.msg, rv);
	} else {
		if (ds->n_skipped > 0)
			psf_log_warn("data", "%s: skipped %zu bad rows; first: %s", path,
			    ds->n_skipped, ds->first_error);
		*out = ds;
	}
	loader_fini(&ld);
	return rv;
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

/* ------------------------------------------------------- scan, split */

static psf_err
index_alloc(size_t n_symbols, size_t n_dates, psf_data_index **out)
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
	int32_t lo = INT32_MAX, hi = INT32_MIN;
	uint8_t *seen = NULL;
	psf_data_index *idx = NULL;
	size_t n_dates = 0;
	psf_err rv;

	for (size_t i = 0; i < ds->n_series; i++) {
		const psf_series *s = &ds->series[i];

		lo = s->date[0] < lo ? s->date[0] : lo;
		hi = s->date[s->n - 1] > hi ? s->date[s->n - 1] : hi;
	}
	/* Dates span at most years 1..9999 (3.65M days): a byte map is cheap. */
	if (ds->n_series > 0 && (seen = calloc((size_t)(hi - lo) + 1, 1)) == NULL)
		return PSF_ENOMEM;
	for (size_t j = 0; j < ds->n_rows; j++) {
		n_dates += !seen[ds->date[j] - lo];
		seen[ds->date[j] - lo] = 1;
	}
	if ((rv = index_alloc(ds->n_series, n_dates, &idx)) != PSF_OK)
		goto out;
	for (size_t i = 0; i < ds->n_series; i++) {
		idx->rows[i] = ds->series[i].n;
		if ((idx->names[i] = strdup(ds->series[i].symbol)) == NULL) {
			rv = PSF_ENOMEM;
			goto out;
		}
	}
	for (int64_t d = lo; ds->n_series > 0 && d <= hi; d++) {
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
manifest_symbols(const char *path, const span *ls, size_t n, char *msg,
    psf_data_index *idx)
{
	for (size_t i = 0; i < n; i++) {
		span f[4];
		uint64_t rows;

		if (split(ls[i].p, ls[i].len, f, 4) != 4 || !symbol_valid(f[0].p, f[0].len) ||
		    !parse_u64(f[1], &rows) || rows == 0) {
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

	if ((rv = read_lines(man, "symbol,rows,first_date,last_date", msg, &mtext, &ml,
	    &nm)) != PSF_OK)
		goto out;
	if ((rv = read_lines(dates, "date", msg, &dtext, &dl, &nd)) != PSF_OK)
		goto out;
	if ((rv = index_alloc(nm, nd, &idx)) != PSF_OK)
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
	char man[4096], dates[4096], msg[DATA_MSG_LEN] = "";
	struct stat st;
	psf_dataset *ds = NULL;
	psf_err rv;

	if (path != NULL && stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (size_t)snprintf(man, sizeof(man), "%s/%s", path, PSF_DATA_MANIFEST) < sizeof(man) &&
	    (size_t)snprintf(dates, sizeof(dates), "%s/%s", path, PSF_DATA_DATES) < sizeof(dates) &&
	    access(man, R_OK) == 0 && access(dates, R_OK) == 0) {
		if ((rv = read_manifest(man, dates, msg, out)) != PSF_OK)
			copy_err(errbuf, errlen, msg, rv);
		return rv;
	}
	if ((rv = psf_data_load(path, &opts, errbuf, errlen, &ds)) != PSF_OK)
		return rv;
	rv = psf_data_index_from(ds, out);
	psf_dataset_free(ds);
	if (rv != PSF_OK)
		copy_err(errbuf, errlen, "", rv);
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
