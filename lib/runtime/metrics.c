#define _GNU_SOURCE
#include "lib/runtime/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/log.h"

#define MAX_NAME_LEN 200
#define MAX_BOUNDS 64

typedef enum kind {
	KIND_COUNTER,
	KIND_GAUGE,
	KIND_HIST,
} kind;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct psf_counter {
	_Atomic uint64_t value;
};

/* Doubles are kept as their bit patterns so updates can use integer atomics. */
struct psf_gauge {
	_Atomic uint64_t bits;
};

struct psf_hist {
	const double *bounds; /* the family's, n_bounds of them */
	size_t n_bounds;
	_Atomic uint64_t *counts; /* per bucket, not cumulative; [n_bounds] is +Inf */
	_Atomic uint64_t sum_bits;
};

typedef struct series {
	char *labels; /* rendered label pairs without braces, "" when none */
	psf_counter counter;
	psf_gauge gauge;
	psf_hist hist;
	psf_gauge_fn fn; /* callback gauge when not NULL */
	void *fn_arg;
} series;

typedef struct family {
	char *name;
	char *help;
	kind kind;
	double *bounds; /* histograms only */
	size_t n_bounds;
	series **series; /* sorted by labels */
	size_t n_series;
	size_t cap_series;
} family;

struct psf_metrics {
	pthread_mutex_t mu; /* guards fams and every family's series list */
	family **fams;      /* sorted by name */
	size_t n_fams;
	size_t cap_fams;
};

/* One registration request, validated and with its label text rendered. */
typedef struct reg_req {
	const char *name;
	const char *help;
	kind kind;
	const double *bounds;
	size_t n_bounds;
	char *labels;
	psf_gauge_fn fn;
	void *fn_arg;
} reg_req;

static uint64_t
dbl_bits(double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u;
}

static double
bits_dbl(uint64_t u)
{
	double v;

	memcpy(&v, &u, sizeof(v));
	return v;
}

static void
atomic_add_dbl(_Atomic uint64_t *p, double delta)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(p, &old, dbl_bits(bits_dbl(old) + delta),
	    memory_order_relaxed, memory_order_relaxed))
		;
}

void
psf_counter_add(psf_counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void
psf_counter_inc(psf_counter *c)
{
	psf_counter_add(c, 1);
}

uint64_t
psf_counter_value(const psf_counter *c)
{
	return atomic_load_explicit(&((psf_counter *)c)->value, memory_order_relaxed);
}

void
psf_gauge_set(psf_gauge *g, double v)
{
	atomic_store_explicit(&g->bits, dbl_bits(v), memory_order_relaxed);
}

void
psf_gauge_add(psf_gauge *g, double delta)
{
	atomic_add_dbl(&g->bits, delta);
}

double
psf_gauge_value(const psf_gauge *g)
{
	return bits_dbl(atomic_load_explicit(&((psf_gauge *)g)->bits, memory_order_relaxed));
}

void
psf_hist_observe(psf_hist *h, double v)
{
	size_t lo = 0, hi = h->n_bounds;

	if (isnan(v))
		return;
	/* First bucket whose upper bound is >= v; n_bounds is +Inf. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v <= h->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
	atomic_add_dbl(&h->sum_bits, v);
}

static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

const double *
psf_metrics_latency_bounds(size_t *n)
{
	*n = PSF_ARRAY_LEN(latency_bounds);
	return latency_bounds;
}

psf_err
psf_metrics_new(psf_metrics **out)
{
	psf_metrics *reg = calloc(1, sizeof(*reg));

	if (reg == NULL)
		return PSF_ENOMEM;
	if (pthread_mutex_init(&reg->mu, NULL) != 0) {
		free(reg);
		return PSF_ESYS;
	}
	*out = reg;
	return PSF_OK;
}

static void
series_free(series *s)
{
	if (s == NULL)
		return;
	free(s->hist.counts);
	free(s->labels);
	free(s);
}

static void
family_free(family *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n_series; i++)
		series_free(f->series[i]);
	free(f->series);
	free(f->bounds);
	free(f->help);
	free(f->name);
	free(f);
}

void
psf_metrics_free(psf_metrics *reg)
{
	if (reg == NULL)
		return;
	for (size_t i = 0; i < reg->n_fams; i++)
		family_free(reg->fams[i]);
	free(reg->fams);
	pthread_mutex_destroy(&reg->mu);
	free(reg);
}

/* --- validation and label text --- */

static bool
valid_name(const char *s, bool allow_colon)
{
	size_t len;

	if (s == NULL || (len = strlen(s)) == 0 || len > MAX_NAME_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		    (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');

		if (!ok)
			return false;
	}
	return true;
}

/* Writes s with the given characters escaped (label values: \ " newline;
 * help text: \ newline). */
static void
put_escaped(FILE *f, const char *s, bool quote)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (quote && *s == '"')
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

/* Closes a memstream; on success hands over its buffer. */
static psf_err
memstream_finish(FILE *f, char **buf, size_t *len, char **out, size_t *len_out)
{
	bool failed = ferror(f) != 0;

	if (fclose(f) != 0 || failed) {
		free(*buf);
		*buf = NULL;
		return PSF_ENOMEM;
	}
	*out = *buf;
	*buf = NULL;
	if (len_out != NULL)
		*len_out = *len;
	return PSF_OK;
}

static int
by_label_name(const void *a, const void *b)
{
	return strcmp(((const psf_label *)a)->name, ((const psf_label *)b)->name);
}

static psf_err
check_labels(const psf_label *labels, size_t n, kind k, psf_label *sorted)
{
	if (n > PSF_METRICS_MAX_LABELS || (n > 0 && labels == NULL))
		return PSF_EINVAL;
	for (size_t i = 0; i < n; i++) {
		const char *ln = labels[i].name;

		if (!valid_name(ln, false) || strncmp(ln, "__", 2) == 0 ||
		    labels[i].value == NULL || (k == KIND_HIST && strcmp(ln, "le") == 0))
			return PSF_EINVAL;
		sorted[i] = labels[i];
	}
	qsort(sorted, n, sizeof(*sorted), by_label_name);
	for (size_t i = 1; i < n; i++)
		if (strcmp(sorted[i - 1].name, sorted[i].name) == 0)
			return PSF_EINVAL;
	return PSF_OK;
}

/* Renders the label set as `a="x",b="y"` (sorted by name) into a new string. */
static psf_err
label_text(const psf_label *labels, size_t n, kind k, char **out)
{
	psf_label sorted[PSF_METRICS_MAX_LABELS];
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	psf_err rv;

	if ((rv = check_labels(labels, n, k, sorted)) != PSF_OK)
		return rv;
	if ((f = open_memstream(&buf, &len)) == NULL)
		return PSF_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s%s=\"", i > 0 ? "," : "", sorted[i].name);
		put_escaped(f, sorted[i].value, true);
		fputc('"', f);
	}
	return memstream_finish(f, &buf, &len, out, NULL);
}

static psf_err
check_bounds(const double *bounds, size_t n)
{
	if (bounds == NULL || n == 0 || n > MAX_BOUNDS)
		return PSF_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
			return PSF_EINVAL;
	}
	return PSF_OK;
}

/* --- registration (all below run with reg->mu held) --- */

/* Binary search in a sorted array of pointers; *pos gets the insert point. */
static void *
find_sorted(void **arr, size_t n, const char *key, size_t key_off, size_t *pos)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *k = *(const char **)((const char *)arr[mid] + key_off);
		int c = strcmp(key, k);

		if (c == 0) {
			*pos = mid;
			return arr[mid];
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	*pos = lo;
	return NULL;
}

static psf_err
insert_at(void ***arr, size_t *n, size_t *cap, size_t pos, void *item)
{
	if (*n == *cap) {
		size_t ncap = *cap == 0 ? 8 : *cap * 2;
		void **na = realloc(*arr, ncap * sizeof(*na));

		if (na == NULL)
			return PSF_ENOMEM;
		*arr = na;
		*cap = ncap;
	}
	memmove(*arr + pos + 1, *arr + pos, (*n - pos) * sizeof(**arr));
	(*arr)[pos] = item;
	(*n)++;
	return PSF_OK;
}

static psf_err
add_family(psf_metrics *reg, const reg_req *rq, size_t pos, family **out)
{
	family *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return PSF_ENOMEM;
	f->kind = rq->kind;
	f->name = strdup(rq->name);
	f->help = strdup(rq->help != NULL ? rq->help : "");
	if (rq->kind == KIND_HIST) {
		f->bounds = malloc(rq->n_bounds * sizeof(*f->bounds));
		f->n_bounds = rq->n_bounds;
	}
	if (f->name == NULL || f->help == NULL || (rq->kind == KIND_HIST && f->bounds == NULL) ||
	    insert_at((void ***)&reg->fams, &reg->n_fams, &reg->cap_fams, pos, f) != PSF_OK) {
		family_free(f);
		return PSF_ENOMEM;
	}
	if (f->bounds != NULL)
		memcpy(f->bounds, rq->bounds, rq->n_bounds * sizeof(*f->bounds));
	*out = f;
	return PSF_OK;
}

static bool
family_matches(const family *f, const reg_req *rq)
{
	if (f->kind != rq->kind)
		return false;
	if (f->kind != KIND_HIST)
		return true;
	return f->n_bounds == rq->n_bounds &&
	    memcmp(f->bounds, rq->bounds, f->n_bounds * sizeof(*f->bounds)) == 0;
}

/* Takes ownership of rq->labels on success. */
static psf_err
add_series(family *f, reg_req *rq, size_t pos, series **out)
{
	series *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return PSF_ENOMEM;
	if (f->kind == KIND_HIST) {
		s->hist.bounds = f->bounds;
		s->hist.n_bounds = f->n_bounds;
		s->hist.counts = calloc(f->n_bounds + 1, sizeof(*s->hist.counts));
		if (s->hist.counts == NULL) {
			free(s);
			return PSF_ENOMEM;
		}
	}
	if (insert_at((void ***)&f->series, &f->n_series, &f->cap_series, pos, s) != PSF_OK) {
		free(s->hist.counts);
		free(s);
		return PSF_ENOMEM;
	}
	s->labels = rq->labels;
	rq->labels = NULL;
	s->fn = rq->fn;
	s->fn_arg = rq->fn_arg;
	*out = s;
	return PSF_OK;
}

static psf_err
lookup_locked(psf_metrics *reg, reg_req *rq, bool must_be_new, series **out)
{
	family *f;
	series *s;
	size_t pos;
	psf_err rv;

	f = find_sorted((void **)reg->fams, reg->n_fams, rq->name, offsetof(family, name), &pos);
	if (f == NULL && (rv = add_family(reg, rq, pos, &f)) != PSF_OK)
		return rv;
	if (!family_matches(f, rq))
		return PSF_EEXIST;
	s = find_sorted((void **)f->series, f->n_series, rq->labels, offsetof(series, labels),
	    &pos);
	if (s != NULL) {
		/* A callback gauge and a plain gauge are different things. */
		if (must_be_new || s->fn != NULL)
			return PSF_EEXIST;
		*out = s;
		return PSF_OK;
	}
	return add_series(f, rq, pos, out);
}

static psf_err
lookup(psf_metrics *reg, reg_req *rq, const psf_label *labels, size_t n_labels, bool must_be_new,
    series **out)
{
	series *s = NULL;
	psf_err rv;

	if (reg == NULL || !valid_name(rq->name, true))
		return PSF_EINVAL;
	if (rq->kind == KIND_HIST && (rv = check_bounds(rq->bounds, rq->n_bounds)) != PSF_OK)
		return rv;
	if ((rv = label_text(labels, n_labels, rq->kind, &rq->labels)) != PSF_OK)
		return rv;
	pthread_mutex_lock(&reg->mu);
	rv = lookup_locked(reg, rq, must_be_new, &s);
	pthread_mutex_unlock(&reg->mu);
	free(rq->labels); /* NULL when add_series took it */
	if (rv != PSF_OK) {
		if (rv == PSF_EEXIST)
			psf_log_err("metrics", "'%s' is already registered differently", rq->name);
		return rv;
	}
	*out = s;
	return PSF_OK;
}

/* lookup_handle is lookup for the registrations that hand the caller a handle
 * (counter, gauge, histogram): PSF_EINVAL when has_out is false (the caller's
 * out-param is NULL), else as lookup, which may return an existing series. */
static psf_err
lookup_handle(psf_metrics *reg, reg_req *rq, const psf_label *labels, size_t n_labels, bool has_out,
    series **out)
{
	if (!has_out)
		return PSF_EINVAL;
	return lookup(reg, rq, labels, n_labels, false, out);
}

psf_err
psf_metrics_counter(psf_metrics *reg, const char *name, const char *help, const psf_label *labels,
    size_t n_labels, psf_counter **out)
{
	reg_req rq = {.name = name, .help = help, .kind = KIND_COUNTER};
	series *s;
	psf_err rv = lookup_handle(reg, &rq, labels, n_labels, out != NULL, &s);

	if (rv == PSF_OK)
		*out = &s->counter;
	return rv;
}

psf_err
psf_metrics_gauge(psf_metrics *reg, const char *name, const char *help, const psf_label *labels,
    size_t n_labels, psf_gauge **out)
{
	reg_req rq = {.name = name, .help = help, .kind = KIND_GAUGE};
	series *s;
	psf_err rv = lookup_handle(reg, &rq, labels, n_labels, out != NULL, &s);

	if (rv == PSF_OK)
		*out = &s->gauge;
	return rv;
}

psf_err
psf_metrics_gauge_fn(psf_metrics *reg, const char *name, const char *help, const psf_label *labels,
    size_t n_labels, psf_gauge_fn fn, void *arg)
{
	reg_req rq = {.name = name, .help = help, .kind = KIND_GAUGE, .fn = fn, .fn_arg = arg};
	series *s;

	if (fn == NULL)
		return PSF_EINVAL;
	return lookup(reg, &rq, labels, n_labels, true, &s);
}

psf_err
psf_metrics_hist(psf_metrics *reg, const char *name, const char *help, const psf_label *labels,
    size_t n_labels, const double *bounds, size_t n_bounds, psf_hist **out)
{
	reg_req rq = {.name = name,
	    .help = help,
	    .kind = KIND_HIST,
	    .bounds = bounds,
	    .n_bounds = n_bounds};
	series *s;
	psf_err rv = lookup_handle(reg, &rq, labels, n_labels, out != NULL, &s);

	if (rv == PSF_OK)
		*out = &s->hist;
	return rv;
}

/* --- rendering --- */

/* Shortest of %.15g / %.17g that reads back exactly; Prometheus spellings for
 * the special values. */
static void
fmt_double(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "NaN");
	else if (isinf(v))
		snprintf(buf, len, "%s", v > 0 ? "+Inf" : "-Inf");
	else {
		snprintf(buf, len, "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, len, "%.17g", v);
	}
}

/* Writes `name<suffix>{labels[,extra]}` */
static void
put_sample_name(FILE *f, const family *fam, const char *suffix, const series *s, const char *extra)
{
	bool has_labels = s->labels[0] != '\0';

	fprintf(f, "%s%s", fam->name, suffix);
	if (has_labels || extra != NULL)
		fprintf(f, "{%s%s%s}", s->labels, has_labels && extra != NULL ? "," : "",
		    extra != NULL ? extra : "");
}

static void
render_hist(FILE *f, const family *fam, const series *s)
{
	char num[40], le[64];
	uint64_t cum = 0;

	for (size_t b = 0; b <= fam->n_bounds; b++) {
		cum += atomic_load_explicit(&s->hist.counts[b], memory_order_relaxed);
		if (b < fam->n_bounds)
			fmt_double(num, sizeof(num), fam->bounds[b]);
		else
			snprintf(num, sizeof(num), "+Inf");
		snprintf(le, sizeof(le), "le=\"%s\"", num);
		put_sample_name(f, fam, "_bucket", s, le);
		fprintf(f, " %" PRIu64 "\n", cum);
	}
	fmt_double(num, sizeof(num),
	    bits_dbl(atomic_load_explicit(&s->hist.sum_bits, memory_order_relaxed)));
	put_sample_name(f, fam, "_sum", s, NULL);
	fprintf(f, " %s\n", num);
	/* _count is the +Inf bucket by definition, so they always agree. */
	put_sample_name(f, fam, "_count", s, NULL);
	fprintf(f, " %" PRIu64 "\n", cum);
}

static void
render_family(FILE *f, const family *fam)
{
	char num[40];

	if (fam->help[0] != '\0') {
		fprintf(f, "# HELP %s ", fam->name);
		put_escaped(f, fam->help, false);
		fputc('\n', f);
	}
	fprintf(f, "# TYPE %s %s\n", fam->name, kind_names[fam->kind]);
	for (size_t i = 0; i < fam->n_series; i++) {
		const series *s = fam->series[i];

		if (fam->kind == KIND_HIST) {
			render_hist(f, fam, s);
			continue;
		}
		put_sample_name(f, fam, "", s, NULL);
		if (fam->kind == KIND_COUNTER)
			fprintf(f, " %" PRIu64 "\n", psf_counter_value(&s->counter));
		else {
			fmt_double(num, sizeof(num),
			    s->fn != NULL ? s->fn(s->fn_arg) : psf_gauge_value(&s->gauge));
			fprintf(f, " %s\n", num);
		}
	}
}

psf_err
psf_metrics_render(psf_metrics *reg, char **text_out, size_t *len_out)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (reg == NULL || text_out == NULL)
		return PSF_EINVAL;
	if ((f = open_memstream(&buf, &len)) == NULL)
		return PSF_ENOMEM;
	pthread_mutex_lock(&reg->mu);
	for (size_t i = 0; i < reg->n_fams; i++)
		render_family(f, reg->fams[i]);
	pthread_mutex_unlock(&reg->mu);
	return memstream_finish(f, &buf, &len, text_out, len_out);
}

/* --- process metrics from /proc/self --- */

/* Reads a small /proc file (whose size stat() does not know) into buf. */
static bool
read_proc(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

static double
process_rss(void *arg)
{
	char buf[256];
	unsigned long size, resident;

	(void)arg;
	if (!read_proc("/proc/self/statm", buf, sizeof(buf)) ||
	    sscanf(buf, "%lu %lu", &size, &resident) != 2)
		return NAN;
	return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static double
process_fds(void *arg)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	double n = 0;

	(void)arg;
	if (d == NULL)
		return NAN;
	while ((de = readdir(d)) != NULL) {
		/* Skip . and .., and the descriptor of the listing itself. */
		if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
			continue;
		n++;
	}
	closedir(d);
	return n;
}

/* Seconds since this process started: system uptime minus the start time
 * (field 22 of /proc/self/stat, in clock ticks since boot). */
static double
process_uptime(void *arg)
{
	char stat[1024], up[128];
	const char *p;
	unsigned long long start;
	double sys_up;
	long hz = sysconf(_SC_CLK_TCK);

	(void)arg;
	if (hz <= 0 || !read_proc("/proc/self/stat", stat, sizeof(stat)) ||
	    !read_proc("/proc/uptime", up, sizeof(up)) || sscanf(up, "%lf", &sys_up) != 1)
		return NAN;
	/* The command name may hold spaces and parentheses: skip past the last ')'. */
	if ((p = strrchr(stat, ')')) == NULL ||
	    sscanf(p + 1,
	        " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d"
	        " %*d %*d %llu",
	        &start) != 1)
		return NAN;
	return fmax(0.0, sys_up - (double)start / (double)hz);
}

psf_err
psf_metrics_add_process(psf_metrics *reg)
{
	static const struct {
		const char *name;
		const char *help;
		psf_gauge_fn fn;
	} procs[] = {
	    {"process_open_fds", "Number of open file descriptors.", process_fds},
	    {"process_resident_memory_bytes", "Resident memory size in bytes.", process_rss},
	    {"process_uptime_seconds", "Seconds since the process started.", process_uptime},
	};
	psf_err rv;

	for (size_t i = 0; i < PSF_ARRAY_LEN(procs); i++) {
		rv = psf_metrics_gauge_fn(reg, procs[i].name, procs[i].help, NULL, 0, procs[i].fn,
		    NULL);
		if (rv != PSF_OK)
			return rv;
	}
	return PSF_OK;
}
