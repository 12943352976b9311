/* data_csv.c -- the CSV side of loading (data.h, data_internal.h): fields,
 * dates and numbers, symbol interning, and the row parser.
 *
 * One pass over a file's text: split each line into fields, intern the symbol,
 * parse date and numbers by hand (strtod only for rare long or odd spellings),
 * append to the loader's column arrays. Bad rows are noted with their file and
 * line and, under PSF_BAD_ROWS_FAIL, end the load. */
#define _GNU_SOURCE
#include "lib/data/data.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "lib/data/data_internal.h"

#define SHOW 40 /* bytes of a bad field quoted in an error */

static const char *const col_names[C_COUNT] = {"date", "symbol", "close", "open", "high", "low",
    "volume"};

/* ------------------------------------------------------------- dates */

static const int16_t cum_days[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};

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

static const double pow10_tab[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

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

/* One file being read: where its columns are. */
typedef struct csvfile {
	uint32_t idx;
	int64_t forced; /* symbol id from the directory name, or -1 */
	int col[C_COUNT];
	size_t n_fields;
	span *f;
} csvfile;

/* The data_* functions below are declared in data_internal.h; datagen.c
 * builds its error lines with data_msgf too. */
void
data_msgf(char *msg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, DATA_MSG_LEN, fmt, ap);
	va_end(ap);
}

void
data_set_msg(loader *ld, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ld->msg, DATA_MSG_LEN, fmt, ap);
	va_end(ap);
}

/* data_note_bad counts a bad row and keeps the message of the earliest one. */
void
data_note_bad(loader *ld, uint32_t file, uint32_t line, const char *fmt, ...)
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

/* data_policy turns noted bad rows into the load's result. */
psf_err
data_policy(loader *ld)
{
	if (ld->n_skipped == 0 || ld->opts.bad_rows == PSF_BAD_ROWS_SKIP)
		return PSF_OK;
	memcpy(ld->msg, ld->first_err, sizeof(ld->msg));
	return PSF_EINVAL;
}

int
data_symbol_valid(const char *p, size_t len)
{
	if (len == 0 || len > PSF_SYMBOL_MAX || p[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		        c == '.' || c == '_' || c == '^' || c == '-'))
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

/* data_intern finds or adds a symbol; *id gets its index in ld->syms. */
psf_err
data_intern(loader *ld, const char *p, size_t len, uint32_t *id)
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

psf_err
data_rowbuf_reserve(rowbuf *rb, size_t need)
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

/* data_split stores up to max trimmed fields of a line in f; returns the count. */
size_t
data_split(const char *p, size_t len, span *f, size_t max)
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
	if (!data_symbol_valid(s.p, s.len)) {
		data_note_bad(ld, cf->idx, line,
		    "symbol '%.*s' is not valid (1-%d of A-Z a-z 0-9 . _ ^ -)", show(s.len), s.p,
		    PSF_SYMBOL_MAX);
		*bad = 1;
		return PSF_OK;
	}
	if (cf->forced < 0)
		return data_intern(ld, s.p, s.len, id);
	*id = (uint32_t)cf->forced;
	if (s.len != ld->syms[*id].len || memcmp(s.p, ld->syms[*id].name, s.len) != 0) {
		data_note_bad(ld, cf->idx, line, "symbol '%.*s' does not match its folder's '%s'",
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
		data_note_bad(ld, cf->idx, line, "date '%.*s' is not a valid YYYY-MM-DD date",
		    show(d.len), d.p);
		return 0;
	}
	if (psf_number_parse(c.p, c.len, &v[0]) != PSF_OK) {
		data_note_bad(ld, cf->idx, line, "close '%.*s' is not a number", show(c.len), c.p);
		return 0;
	}
	if (!isfinite(v[0]) || v[0] <= 0) {
		data_note_bad(ld, cf->idx, line, "close '%.*s' is not a finite number > 0",
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
			data_note_bad(ld, cf->idx, line, "%s '%.*s' is not a number",
			    col_names[C_OPEN + k], show(o.len), o.p);
			return 0;
		}
	}
	return 1;
}

static psf_err
parse_row(loader *ld, const csvfile *cf, const char *p, size_t len, uint32_t line)
{
	size_t got = data_split(p, len, cf->f, cf->n_fields);
	rowbuf *rb = &ld->rb;
	uint32_t id;
	int32_t date;
	double v[1 + N_OPT];
	int bad;
	psf_err rv;

	if (got != cf->n_fields) {
		data_note_bad(ld, cf->idx, line, "expected %zu fields, got %zu", cf->n_fields, got);
		return data_policy(ld);
	}
	if ((rv = row_symbol(ld, cf, line, &id, &bad)) != PSF_OK)
		return rv;
	if (bad)
		return data_policy(ld);
	if (!ld->syms[id].keep)
		return PSF_OK;
	if (!row_values(ld, cf, line, &date, v))
		return data_policy(ld);
	if ((rv = data_rowbuf_reserve(rb, rb->n + 1)) != PSF_OK)
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
	size_t n = data_split(p, len, NULL, 0);
	psf_err rv;

	if ((cf->f = calloc(n, sizeof(span))) == NULL)
		return PSF_ENOMEM;
	cf->n_fields = data_split(p, len, cf->f, n);
	for (int c = 0; c < C_COUNT; c++)
		cf->col[c] = -1;
	for (size_t i = 0; i < n; i++) {
		for (int c = 0; c < C_COUNT; c++) {
			if (cf->f[i].len != strlen(col_names[c]) ||
			    strncasecmp(cf->f[i].p, col_names[c], cf->f[i].len) != 0)
				continue;
			if (cf->col[c] >= 0) {
				data_set_msg(ld, "%s:1: duplicate column '%s'", file, col_names[c]);
				return PSF_EINVAL;
			}
			cf->col[c] = (int)i;
		}
	}
	for (int c = C_DATE; c <= C_CLOSE; c++) {
		if (cf->col[c] < 0 && !(c == C_SYMBOL && cf->forced >= 0)) {
			data_set_msg(ld, "%s:1: missing required column '%s'", file, col_names[c]);
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
		line++;
		if (++ld->n_lines % PSF_DATA_STOP_ROWS == 0 && ld->opts.stop != NULL &&
		    ld->opts.stop(ld->opts.stop_arg)) {
			data_set_msg(ld, "%s: loading stopped by request", ld->files[cf->idx]);
			return PSF_ECLOSED;
		}
		if (line == 1)
			rv = parse_header(ld, cf, p, len);
		else if (len > 0)
			rv = parse_row(ld, cf, p, len, line);
		p = nl != NULL ? nl + 1 : end;
	}
	return rv;
}

psf_err
data_parse_file(loader *ld, uint32_t file, int64_t forced, const char *p, const char *end)
{
	csvfile cf = {.idx = file, .forced = forced};
	psf_err rv = parse_text(ld, &cf, p, end);

	free(cf.f);
	return rv;
}
