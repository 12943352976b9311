/* data_bench -- how fast the data pipeline reads and featurises prices.
 *
 * Generates 1000 symbols x 1000 business days (1,000,000 rows; --quick: 100 x
 * 1000) into a temp file, then measures in the same run:
 *   read     a raw read() of the whole file into memory (the baseline),
 *   load     psf_data_load of the file (parse, group, sort, check),
 *   featurize psf_features_build with a typical 12-feature list,
 *   shard    psf_data_load of a quarter of the symbols from a partition dir,
 *   cache    the binary cache (docs/data.md §9): its build (parse + write, once),
 *            a load of every symbol from it, one trainer's share of 4 (a
 *            quarter of the symbols), and the scan (index) from it.
 * Each figure is the median of several runs. Output: `name value unit` lines,
 * then `ratio_<name> value` (DESIGN.md §10): ratio_load_vs_read is load time /
 * read time (how many raw reads one load costs). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/data/data.h"
#include "lib/data/datagen.h"
#include "lib/data/features.h"

#define MAX_RUNS 9

static const char *const feature_specs[] = {"lag:0", "lag:1", "lag:5", "return:1", "return:5",
    "sma:10", "std:20", "ratio_sma:10", "ewm:10", "range", "dow", "volume:5"};

static const struct {
	const char *name;
	psf_feature_kind kind;
} kinds[] = {{"lag", PSF_FEAT_LAG}, {"return", PSF_FEAT_RETURN}, {"sma", PSF_FEAT_SMA},
    {"std", PSF_FEAT_STD}, {"ratio_sma", PSF_FEAT_RATIO_SMA}, {"ewm", PSF_FEAT_EWM},
    {"range", PSF_FEAT_RANGE}, {"dow", PSF_FEAT_DOW}, {"volume", PSF_FEAT_VOLUME}};

static void
feature(const char *spec, psf_feature_cfg *f)
{
	const char *colon = strchr(spec, ':');
	size_t len = colon != NULL ? (size_t)(colon - spec) : strlen(spec);

	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", spec);
	f->window = colon != NULL ? (uint32_t)atoi(colon + 1) : 0;
	for (size_t i = 0; i < PSF_ARRAY_LEN(kinds); i++) {
		if (strlen(kinds[i].name) == len && strncmp(kinds[i].name, spec, len) == 0)
			f->kind = kinds[i].kind;
	}
}

/* raw_read reads the whole file with read() and touches every page; seconds. */
static double
raw_read(const char *path, size_t size, char *buf, unsigned *sink)
{
	uint64_t t0 = psf_now_ns();
	int fd = open(path, O_RDONLY);
	size_t got = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	while (got < size && (n = read(fd, buf + got, size - got)) > 0)
		got += (size_t)n;
	close(fd);
	for (size_t i = 0; i < got; i += 4096)
		*sink += (unsigned char)buf[i];
	return got == size ? (double)(psf_now_ns() - t0) / 1e9 : -1;
}

static double
timed_load(const char *path, const psf_data_opts *opts, psf_dataset **keep)
{
	char err[512];
	psf_dataset *ds = NULL;
	uint64_t t0 = psf_now_ns();
	double s;

	if (psf_data_load(path, opts, err, sizeof(err), &ds) != PSF_OK) {
		fprintf(stderr, "data_bench: %s\n", err);
		return -1;
	}
	s = (double)(psf_now_ns() - t0) / 1e9;
	if (keep != NULL && *keep == NULL)
		*keep = ds;
	else
		psf_dataset_free(ds);
	return s;
}

static double
timed_features(const psf_dataset *ds, size_t *rows)
{
	psf_feature_cfg f[PSF_ARRAY_LEN(feature_specs)];
	char err[256];
	psf_table *t = NULL;
	uint64_t t0;
	double s;

	for (size_t i = 0; i < PSF_ARRAY_LEN(feature_specs); i++)
		feature(feature_specs[i], &f[i]);
	t0 = psf_now_ns();
	if (psf_features_build(ds, f, PSF_ARRAY_LEN(f), PSF_TARGET_NEXT_CLOSE, INT32_MAX - 1, err,
	        sizeof(err), &t) != PSF_OK) {
		fprintf(stderr, "data_bench: %s\n", err);
		return -1;
	}
	s = (double)(psf_now_ns() - t0) / 1e9;
	*rows = t->n_rows;
	psf_table_free(t);
	return s;
}

static int
keep_quarter(const char *symbol, void *arg)
{
	(void)arg;
	return atoi(symbol + 1) % 4 == 0;
}

/* timed_scan times psf_data_scan_opts (with opts->cache: the index from the
 * cache). */
static double
timed_scan(const char *path, const psf_data_opts *opts)
{
	char err[512];
	psf_data_index *idx = NULL;
	uint64_t t0 = psf_now_ns();

	if (psf_data_scan_opts(path, opts, err, sizeof(err), &idx) != PSF_OK) {
		fprintf(stderr, "data_bench: %s\n", err);
		return -1;
	}
	psf_data_index_free(idx);
	return (double)(psf_now_ns() - t0) / 1e9;
}

/* The cache figures: medians of the runs. */
typedef struct cache_times {
	double build, load, shard, scan;
} cache_times;

static void
report_cache(const cache_times *c, double load_s)
{
	printf("cache_build_seconds %.6f s\n", c->build);
	printf("cache_load_seconds %.6f s\n", c->load);
	printf("cache_shard_load_seconds %.6f s\n", c->shard);
	printf("cache_scan_seconds %.6f s\n", c->scan);
	printf("ratio_cache_load_vs_load %.3f\n", c->load / load_s);
	printf("ratio_cache_shard_vs_load %.3f\n", c->shard / load_s);
	printf("ratio_cache_shard_vs_cache_load %.3f\n", c->shard / c->load);
	printf("ratio_cache_scan_vs_load %.4f\n", c->scan / load_s);
}

static void
report(const psf_dataset *ds, long long bytes, size_t feat_rows, double read_s, double load_s,
    double feat_s, double shard_s)
{
	size_t rows = psf_dataset_n_rows(ds);

	printf("rows %zu rows\n", rows);
	printf("file_bytes %lld bytes\n", bytes);
	printf("read_seconds %.6f s\n", read_s);
	printf("read_mb_per_sec %.1f MB/s\n", (double)bytes / read_s / 1e6);
	printf("load_seconds %.6f s\n", load_s);
	printf("load_rows_per_sec %.0f rows/s\n", (double)rows / load_s);
	printf("load_mb_per_sec %.1f MB/s\n", (double)bytes / load_s / 1e6);
	printf("featurize_seconds %.6f s\n", feat_s);
	printf("featurize_rows_per_sec %.0f rows/s\n", (double)feat_rows / feat_s);
	printf("featurize_features %zu features\n", PSF_ARRAY_LEN(feature_specs));
	printf("shard_load_seconds %.6f s\n", shard_s);
	printf("ratio_load_vs_read %.2f\n", load_s / read_s);
	printf("ratio_shard_vs_full_load %.3f\n", shard_s / load_s);
}

/* run measures everything on the file at path (and its partition); 0 on
 * success. Runs interleave the measurements so noise hits them alike. */
static int
run(const char *path, const char *part, int runs)
{
	double t_read[MAX_RUNS], t_load[MAX_RUNS], t_feat[MAX_RUNS], t_shard[MAX_RUNS];
	double t_cload[MAX_RUNS], t_cshard[MAX_RUNS], t_cscan[MAX_RUNS];
	psf_data_opts quarter = {.keep = keep_quarter}, cached = {.cache = true};
	psf_data_opts cached_quarter = {.keep = keep_quarter, .cache = true};
	cache_times ct = {0};
	char err[512];
	psf_dataset *ds = NULL;
	struct stat st;
	size_t feat_rows = 0;
	unsigned sink = 0;
	char *buf;
	int ok = 1;

	if (stat(path, &st) != 0 || (buf = malloc((size_t)st.st_size)) == NULL)
		return -1;
	ct.build = (double)psf_now_ns();
	if (psf_data_cache_build(path, NULL, err, sizeof(err), NULL, 0) != PSF_OK) {
		fprintf(stderr, "data_bench: cache: %s\n", err);
		ok = 0;
	}
	ct.build = ((double)psf_now_ns() - ct.build) / 1e9;
	for (int i = 0; i < runs && ok; i++) {
		t_read[i] = raw_read(path, (size_t)st.st_size, buf, &sink);
		t_load[i] = timed_load(path, NULL, &ds);
		t_shard[i] = timed_load(part, &quarter, NULL);
		t_feat[i] = ds != NULL ? timed_features(ds, &feat_rows) : -1;
		t_cload[i] = timed_load(path, &cached, NULL);
		t_cshard[i] = timed_load(path, &cached_quarter, NULL);
		t_cscan[i] = timed_scan(path, &cached);
		ok = t_read[i] >= 0 && t_load[i] >= 0 && t_shard[i] >= 0 && t_feat[i] >= 0 &&
		    t_cload[i] >= 0 && t_cshard[i] >= 0 && t_cscan[i] >= 0;
	}
	if (ok)
		report(ds, (long long)st.st_size, feat_rows, psf_bench_median(t_read, (size_t)runs),
		    psf_bench_median(t_load, (size_t)runs), psf_bench_median(t_feat, (size_t)runs),
		    psf_bench_median(t_shard, (size_t)runs));
	if (ok) {
		ct.load = psf_bench_median(t_cload, (size_t)runs);
		ct.shard = psf_bench_median(t_cshard, (size_t)runs);
		ct.scan = psf_bench_median(t_cscan, (size_t)runs);
		report_cache(&ct, psf_bench_median(t_load, (size_t)runs));
	}
	if (sink == 1)
		printf("# sink %u\n", sink); /* keeps the page touches */
	free(buf);
	psf_dataset_free(ds);
	return ok ? 0 : -1;
}

int
main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	psf_datagen_cfg cfg = {.symbols = quick ? 100 : 1000, .days = 1000, .seed = 42};
	char dir[] = "/tmp/psf_data_bench_XXXXXX", path[256], part[256], err[512];
	uint64_t t0;
	int rc = 1;

	psf_log_setup(PSF_LOG_WARN, "data_bench"); /* no per-load info lines */
	if (mkdtemp(dir) == NULL) {
		perror("data_bench: mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/prices.csv", dir);
	snprintf(part, sizeof(part), "%s/part", dir);
	t0 = psf_now_ns();
	if (psf_datagen_write(&cfg, path, err, sizeof(err)) != PSF_OK) {
		fprintf(stderr, "data_bench: %s\n", err);
		goto out;
	}
	printf("gen_seconds %.6f s\n", (double)(psf_now_ns() - t0) / 1e9);
	t0 = psf_now_ns();
	if (psf_data_partition(path, part, PSF_BAD_ROWS_FAIL, err, sizeof(err)) != PSF_OK) {
		fprintf(stderr, "data_bench: %s\n", err);
		goto out;
	}
	printf("partition_seconds %.6f s\n", (double)(psf_now_ns() - t0) / 1e9);
	rc = run(path, part, quick ? 3 : 7) == 0 ? 0 : 1;
out:
	if (psf_rm_rf(dir) != PSF_OK)
		fprintf(stderr, "data_bench: could not remove %s\n", dir);
	return rc;
}
