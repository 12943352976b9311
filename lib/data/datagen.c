/* datagen.c -- synthetic prices and the partition writer (datagen.h).
 *
 * Randomness is our own (xoshiro256** seeded through splitmix64, Box-Muller
 * normals), never rand(): the bytes written depend only on the config. Every
 * symbol draws from its own stream (seed, symbol index), and the market factor
 * from stream 0, so one symbol's path does not depend on how many come before. */
#define _GNU_SOURCE
#include "lib/data/datagen.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/data/data.h"
#include "lib/data/data_internal.h"

#define LINE_LEN 512
#define MARKET_SIGMA 0.01 /* daily sd of the shared market factor */
#define LEVEL_ALPHA 0.05  /* speed of the moving level mean reversion pulls toward */

typedef struct rng {
	uint64_t s[4];
	int has_spare;
	double spare;
} rng;

/* One symbol's generating parameters (docs/data.md). */
typedef struct sym_model {
	double beta;  /* loading on the market factor */
	double phi;   /* AR(1) persistence of returns */
	double sigma; /* idiosyncratic daily sd */
	double mu;    /* daily drift */
	double kappa; /* pull of log price toward its moving level */
	double p0;    /* first price */
	double vol0;  /* typical volume */
	size_t start; /* first day index (skew) */
} sym_model;

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
rng_next(rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

static void
rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * UINT64_C(0xD1B54A32D192ED03));

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
	r->has_spare = 0;
}

/* Uniform in [lo, hi). */
static double
rng_range(rng *r, double lo, double hi)
{
	return lo + (hi - lo) * (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static double
rng_normal(rng *r)
{
	double u1, u2, rad;

	if (r->has_spare) {
		r->has_spare = 0;
		return r->spare;
	}
	u1 = 1.0 - rng_range(r, 0, 1); /* (0, 1]: log is finite */
	u2 = rng_range(r, 0, 1);
	rad = sqrt(-2.0 * log(u1));
	r->spare = rad * sin(2 * M_PI * u2);
	r->has_spare = 1;
	return rad * cos(2 * M_PI * u2);
}

/* Prices carry 4 decimals, and never go below one cent. */
static double
price(double x)
{
	double p = nearbyint(x * 1e4) / 1e4;

	return p < 0.01 ? 0.01 : p;
}

/* format_row writes one CSV line: date, symbol, then v[] = open, high, low,
 * close, volume for the PSF_COL_* bits in cols (close always). */
static size_t
format_row(char *line, int32_t date, const char *sym, const double *v, unsigned cols)
{
	static const unsigned bit[5] = {PSF_COL_OPEN, PSF_COL_HIGH, PSF_COL_LOW, 0, PSF_COL_VOLUME};
	size_t n = strlen(sym), k;

	psf_date_format(date, line);
	line[10] = ',';
	memcpy(line + 11, sym, n);
	k = 11 + n;
	for (int i = 0; i < 5; i++) {
		if (bit[i] != 0 && (cols & bit[i]) == 0)
			continue;
		line[k++] = ',';
		k += psf_number_format(v[i], line + k);
	}
	line[k++] = '\n';
	return k;
}

static size_t
format_header(char *line, unsigned cols)
{
	return (size_t)snprintf(line, LINE_LEN, "date,symbol%s%s%s,close%s\n",
	    cols & PSF_COL_OPEN ? ",open" : "", cols & PSF_COL_HIGH ? ",high" : "",
	    cols & PSF_COL_LOW ? ",low" : "", cols & PSF_COL_VOLUME ? ",volume" : "");
}

/* business_days returns the last `days` Mon-Fri dates up to the end date. */
static psf_err
business_days(uint32_t days, int32_t **out)
{
	int32_t *d = malloc(days * sizeof(*d)), day;

	if (d == NULL)
		return PSF_ENOMEM;
	if (psf_date_parse(PSF_DATAGEN_END_DATE, 10, &day) != PSF_OK) {
		free(d);
		return PSF_EINTERNAL;
	}
	for (uint32_t k = days; k-- > 0; day--) {
		while (psf_date_dow(day) >= 5)
			day--;
		d[k] = day;
	}
	*out = d;
	return PSF_OK;
}

static void
draw_model(rng *r, const psf_datagen_cfg *cfg, sym_model *m)
{
	size_t keep;

	m->beta = rng_range(r, 0.5, 1.5);
	m->phi = rng_range(r, -0.3, 0.5);
	m->sigma = rng_range(r, 0.008, 0.025);
	m->mu = 0.0003 + 0.0003 * rng_normal(r);
	m->kappa = rng_range(r, 0.0, 0.05);
	m->p0 = exp(rng_range(r, log(10.0), log(500.0)));
	m->vol0 = exp(rng_range(r, log(1e4), log(1e6)));
	m->start = 0;
	if (cfg->skew && rng_range(r, 0, 1) >= 0.1) {
		keep = (size_t)(cfg->days * rng_range(r, 0.2, 0.6));
		m->start = cfg->days - (keep < 2 ? 2 : keep);
	}
}

/* gen_symbol writes symbol i's rows (see docs/data.md for the model). */
static void
gen_symbol(const psf_datagen_cfg *cfg, uint32_t i, const double *market, const int32_t *dates,
    const char *name, FILE *f)
{
	char line[LINE_LEN];
	sym_model m;
	rng r;
	double lp, level, r_prev, prev_close, sd_r;

	rng_seed(&r, cfg->seed, (uint64_t)i + 1);
	draw_model(&r, cfg, &m);
	sd_r = sqrt(m.beta * m.beta * MARKET_SIGMA * MARKET_SIGMA + m.sigma * m.sigma);
	lp = level = log(m.p0);
	r_prev = m.mu;
	prev_close = price(m.p0);
	for (size_t t = m.start; t < cfg->days; t++) {
		double ret, v[5];

		ret = m.mu + m.phi * (r_prev - m.mu) + m.beta * market[t] +
		    m.sigma * rng_normal(&r) - m.kappa * (lp - level);
		ret = fmax(-0.4, fmin(0.4, ret));
		lp += ret;
		level += LEVEL_ALPHA * (lp - level);
		r_prev = ret;
		v[3] = price(exp(lp));
		v[0] = price(prev_close * exp(0.25 * m.sigma * rng_normal(&r)));
		v[1] = price(fmax(v[0], v[3]) * exp(fabs(0.5 * m.sigma * rng_normal(&r))));
		v[2] = price(fmin(v[0], v[3]) * exp(-fabs(0.5 * m.sigma * rng_normal(&r))));
		v[4] = nearbyint(m.vol0 * exp(0.3 * rng_normal(&r) + 0.4 * fabs(ret) / sd_r));
		prev_close = v[3];
		fwrite(line, 1, format_row(line, dates[t], name, v, 0xF), f);
	}
}

static psf_err
gen_all(const psf_datagen_cfg *cfg, const int32_t *dates, const double *market, FILE *f)
{
	char line[LINE_LEN], name[16];
	int width = 4;

	for (uint32_t n = cfg->symbols - 1; n >= 10000; n /= 10)
		width++;
	fwrite(line, 1, format_header(line, 0xF), f);
	for (uint32_t i = 0; i < cfg->symbols; i++) {
		name[0] = 'S';
		name[width + 1] = '\0';
		for (uint32_t k = (uint32_t)width, v = i; k > 0; k--, v /= 10)
			name[k] = (char)('0' + v % 10);
		gen_symbol(cfg, i, market, dates, name, f);
	}
	return fflush(f) == 0 && !ferror(f) ? PSF_OK : psf_err_from_errno(errno);
}

psf_err
psf_datagen_write(const psf_datagen_cfg *cfg, const char *path, char *errbuf, size_t errlen)
{
	char tmp[4096], msg[DATA_MSG_LEN] = "";
	int32_t *dates = NULL;
	double *market = NULL;
	FILE *f = NULL;
	rng r;
	psf_err rv = PSF_EINVAL;

	if (cfg == NULL || path == NULL || cfg->symbols < 1 ||
	    cfg->symbols > PSF_DATAGEN_MAX_SYMBOLS || cfg->days < 2 ||
	    cfg->days > PSF_DATAGEN_MAX_DAYS) {
		data_msgf(msg, "datagen: need an output path, 1..%u symbols and 2..%u days",
		    PSF_DATAGEN_MAX_SYMBOLS, PSF_DATAGEN_MAX_DAYS);
		goto out;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp)) {
		data_msgf(msg, "%s: path too long", path);
		goto out;
	}
	if ((rv = business_days(cfg->days, &dates)) != PSF_OK)
		goto out;
	if ((market = malloc(cfg->days * sizeof(*market))) == NULL) {
		rv = PSF_ENOMEM;
		goto out;
	}
	rng_seed(&r, cfg->seed, 0);
	for (uint32_t t = 0; t < cfg->days; t++)
		market[t] = MARKET_SIGMA * rng_normal(&r);
	if ((f = fopen(tmp, "w")) == NULL) {
		data_msgf(msg, "%s: %s", path, strerror(errno));
		rv = psf_err_from_errno(errno);
		goto out;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	rv = gen_all(cfg, dates, market, f);
	if (fclose(f) != 0 && rv == PSF_OK)
		rv = psf_err_from_errno(errno);
	if (rv == PSF_OK && rename(tmp, path) != 0)
		rv = psf_err_from_errno(errno);
	if (rv != PSF_OK) {
		data_msgf(msg, "%s: cannot write: %s", path, strerror(errno));
		unlink(tmp);
	}
out:
	if (rv != PSF_OK && errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s", msg[0] != '\0' ? msg : psf_strerror(rv));
	free(market);
	free(dates);
	return rv;
}

/* ----------------------------------------------------------- partition */

/* prepare_outdir makes outdir, or accepts it when it is an empty directory. */
static psf_err
prepare_outdir(const char *outdir, char *msg)
{
	DIR *d = opendir(outdir);
	struct dirent *de;
	int empty = 1;
	psf_err rv;

	if (d == NULL && errno == ENOENT) {
		if ((rv = psf_mkdir_p(outdir)) != PSF_OK)
			data_msgf(msg, "%s: cannot create: %s", outdir, psf_strerror(rv));
		return rv;
	}
	if (d == NULL) {
		data_msgf(msg, "%s: %s", outdir, strerror(errno));
		return psf_err_from_errno(errno);
	}
	while (empty && (de = readdir(d)) != NULL)
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
	closedir(d);
	if (!empty) {
		data_msgf(msg, "%s: exists and is not empty", outdir);
		return PSF_EEXIST;
	}
	return PSF_OK;
}

/* open_out opens dir/name for writing; path gets the full name. */
static FILE *
open_out(const char *dir, const char *name, char *path, size_t len, char *msg)
{
	FILE *f;

	if ((size_t)snprintf(path, len, "%s/%s", dir, name) >= len) {
		data_msgf(msg, "%s: path too long", dir);
		return NULL;
	}
	if ((f = fopen(path, "w")) == NULL) {
		data_msgf(msg, "%s: %s", path, strerror(errno));
		return NULL;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 16);
	return f;
}

static psf_err
close_out(FILE *f, const char *path, char *msg)
{
	int bad = ferror(f);

	if (fclose(f) != 0 || bad) {
		data_msgf(msg, "%s: write failed: %s", path, strerror(errno));
		return PSF_ESYS;
	}
	return PSF_OK;
}

static psf_err
write_series(const char *outdir, const psf_series *s, unsigned cols, char *msg)
{
	char dir[4096], path[4200], line[LINE_LEN];
	FILE *f;
	psf_err rv;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/symbol=%s", outdir, s->symbol) >= sizeof(dir)) {
		data_msgf(msg, "%s: path too long", outdir);
		return PSF_EINVAL;
	}
	if ((rv = psf_mkdir_p(dir)) != PSF_OK) {
		data_msgf(msg, "%s: cannot create: %s", dir, psf_strerror(rv));
		return rv;
	}
	if ((f = open_out(dir, "data.csv", path, sizeof(path), msg)) == NULL)
		return PSF_ESYS;
	fwrite(line, 1, format_header(line, cols), f);
	for (size_t j = 0; j < s->n; j++) {
		double v[5] = {s->open[j], s->high[j], s->low[j], s->close[j], s->volume[j]};

		fwrite(line, 1, format_row(line, s->date[j], s->symbol, v, cols), f);
	}
	return close_out(f, path, msg);
}

/* write_index writes dates.csv, then manifest.csv (through a rename, last). */
static psf_err
write_index(const char *outdir, const psf_dataset *ds, const psf_data_index *idx, char *msg)
{
	char path[4200], final[4200], a[11], b[11];
	const int32_t *dates;
	size_t n;
	FILE *f;
	psf_err rv;

	if ((f = open_out(outdir, PSF_DATA_DATES, path, sizeof(path), msg)) == NULL)
		return PSF_ESYS;
	dates = psf_data_index_dates(idx, &n);
	fputs("date\n", f);
	for (size_t i = 0; i < n; i++) {
		psf_date_format(dates[i], a);
		fprintf(f, "%s\n", a);
	}
	if ((rv = close_out(f, path, msg)) != PSF_OK)
		return rv;
	if ((f = open_out(outdir, PSF_DATA_MANIFEST ".tmp", path, sizeof(path), msg)) == NULL)
		return PSF_ESYS;
	fputs("symbol,rows,first_date,last_date\n", f);
	for (size_t i = 0; i < psf_dataset_n_series(ds); i++) {
		const psf_series *s = psf_dataset_series(ds, i);

		psf_date_format(s->date[0], a);
		psf_date_format(s->date[s->n - 1], b);
		fprintf(f, "%s,%zu,%s,%s\n", s->symbol, s->n, a, b);
	}
	if ((rv = close_out(f, path, msg)) != PSF_OK)
		return rv;
	snprintf(final, sizeof(final), "%s/%s", outdir, PSF_DATA_MANIFEST);
	if (rename(path, final) != 0) {
		data_msgf(msg, "%s: %s", final, strerror(errno));
		return PSF_ESYS;
	}
	return PSF_OK;
}

psf_err
psf_data_partition(const char *csv, const char *outdir, psf_bad_rows bad_rows, char *errbuf,
    size_t errlen)
{
	psf_data_opts opts = {.bad_rows = bad_rows};
	char msg[DATA_MSG_LEN] = "";
	psf_dataset *ds = NULL;
	psf_data_index *idx = NULL;
	psf_err rv;

	if (csv == NULL || outdir == NULL) {
		data_msgf(msg, "partition: need an input and an output path");
		rv = PSF_EINVAL;
		goto out;
	}
	if ((rv = psf_data_load(csv, &opts, msg, sizeof(msg), &ds)) != PSF_OK)
		goto out;
	if ((rv = psf_data_index_from(ds, &idx)) != PSF_OK)
		goto out;
	if ((rv = prepare_outdir(outdir, msg)) != PSF_OK)
		goto out;
	for (size_t i = 0; i < psf_dataset_n_series(ds) && rv == PSF_OK; i++)
		rv = write_series(outdir, psf_dataset_series(ds, i), psf_dataset_columns(ds), msg);
	if (rv == PSF_OK)
		rv = write_index(outdir, ds, idx, msg);
out:
	if (rv != PSF_OK && errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s", msg[0] != '\0' ? msg : psf_strerror(rv));
	psf_data_index_free(idx);
	psf_dataset_free(ds);
	return rv;
}
