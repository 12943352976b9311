/* psfleet data gen|partition|scan: make synthetic data, lay a CSV out per
 * symbol, or summarise a data set (DESIGN.md §8, docs/data.md). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "lib/base/util.h"
#include "lib/data/data.h"
#include "lib/data/datagen.h"

static const char gen_help[] =
    "usage: psfleet data gen --out FILE.csv [--symbols N] [--days D] [--seed S] [--skew]\n"
    "                        [--force]\n"
    "\n"
    "Writes deterministic synthetic daily prices (date,symbol,open,high,low,close,volume)\n"
    "for N symbols over D business days ending " PSF_DATAGEN_END_DATE ". The same seed\n"
    "gives the same file. docs/data.md describes the generating model.\n"
    "  --out FILE.csv  output file (required); an existing file is kept (exit 1)\n"
    "                  unless --force\n"
    "  --force         replace an existing FILE.csv (atomically)\n"
    "  --symbols N     number of symbols, 1..%u (default 100)\n"
    "  --days D        business days of history, 2..%u (default 500)\n"
    "  --seed S        random seed (default 42)\n"
    "  --skew          about 10%% of symbols get the full history, the others 20-60%%\n";

static const char partition_help[] =
    "usage: psfleet data partition FILE.csv --out DIR [--bad-rows fail|skip]\n"
    "\n"
    "Writes DIR/symbol=XYZ/data.csv for every symbol (rows sorted by date), then\n"
    "DIR/dates.csv and DIR/manifest.csv. Trainers given DIR read only their symbols.\n"
    "  --out DIR          output directory (must not exist, or be empty)\n"
    "  --bad-rows POLICY  fail (default): stop at the first bad row; skip: drop bad\n"
    "                     rows, print how many and the first one\n";

static const char scan_help[] =
    "usage: psfleet data scan PATH [--test-fraction F] [--bad-rows fail|skip]\n"
    "\n"
    "Checks a CSV file or partition directory and prints its symbols, rows, dates and\n"
    "the train/test cutoff date: test rows are those dated >= cutoff.\n"
    "  --test-fraction F  last fraction of dates held out, in (0, 1) (default 0.2)\n"
    "  --bad-rows POLICY  fail (default) or skip\n";

static const char cache_help[] =
    "usage: psfleet data cache build|check PATH [--dir DIR] [--bad-rows fail|skip]\n"
    "\n"
    "The binary cache of a parsed CSV file or partition directory (docs/data.md §9):\n"
    "PATH.psfcache beside it, or DIR/NAME-HASH.psfcache when PATH's directory is not\n"
    "writable. Nodes with data.cache (the default) build it on first use and read it\n"
    "after; it is rebuilt when PATH's size or mtime changes.\n"
    "  build              make sure a valid cache exists (parse PATH when it does not)\n"
    "  check              tell whether a valid cache exists: exit 0 if so, 1 if it is\n"
    "                     missing, stale or corrupt (and why)\n"
    "  --dir DIR          the fallback directory (a fleet uses its run_dir)\n"
    "  --bad-rows POLICY  fail (default) or skip, for build\n";

static const char data_help[] =
    "usage: psfleet data COMMAND [ARGS]   (psfleet data COMMAND --help for details)\n"
    "\n"
    "  gen --out FILE.csv [--symbols N] [--days D] [--seed S] [--skew] [--force]\n"
    "                                 write synthetic prices\n"
    "  partition FILE.csv --out DIR   lay a CSV out as DIR/symbol=XYZ/data.csv\n"
    "  scan PATH [--test-fraction F]  summarise a CSV or partition directory\n"
    "  cache build|check PATH [--dir DIR]\n"
    "                                 build or check the binary cache of PATH\n";

/* parse_u64 reads a whole decimal argument within [lo, hi]. */
static int
parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 || v < lo || v > hi) {
		fprintf(stderr,
		    "psfleet data gen: %s needs a whole number in %llu..%llu, got '%s'\n", opt,
		    (unsigned long long)lo, (unsigned long long)hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int
parse_policy(const char *s, psf_bad_rows *out)
{
	if (strcmp(s, "fail") == 0 || strcmp(s, "skip") == 0) {
		*out = strcmp(s, "fail") == 0 ? PSF_BAD_ROWS_FAIL : PSF_BAD_ROWS_SKIP;
		return 0;
	}
	fprintf(stderr, "psfleet data: --bad-rows is fail or skip, got '%s'\n", s);
	return -1;
}

/* gen_args fills cfg, *out and *force from gen's options; -1 on a usage error. */
static int
gen_args(int argc, char **argv, psf_datagen_cfg *cfg, const char **out, bool *force)
{
	uint64_t v;

	*force = false;
	cfg->symbols = 100;
	cfg->days = 500;
	cfg->seed = 42;
	cfg->skew = 0;
	*out = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--skew") == 0) {
			cfg->skew = 1;
			continue;
		}
		if (strcmp(a, "--force") == 0) {
			*force = true;
			continue;
		}
		if (val == NULL || a[0] != '-') {
			fprintf(stderr,
			    "psfleet data gen: unexpected or incomplete '%s' (see --help)\n", a);
			return -1;
		}
		i++;
		if (strcmp(a, "--out") == 0) {
			*out = val;
		} else if (strcmp(a, "--symbols") == 0) {
			if (parse_u64(a, val, 1, PSF_DATAGEN_MAX_SYMBOLS, &v) != 0)
				return -1;
			cfg->symbols = (uint32_t)v;
		} else if (strcmp(a, "--days") == 0) {
			if (parse_u64(a, val, 2, PSF_DATAGEN_MAX_DAYS, &v) != 0)
				return -1;
			cfg->days = (uint32_t)v;
		} else if (strcmp(a, "--seed") == 0) {
			if (parse_u64(a, val, 0, UINT64_MAX, &v) != 0)
				return -1;
			cfg->seed = v;
		} else {
			fprintf(stderr, "psfleet data gen: unknown option '%s' (see --help)\n", a);
			return -1;
		}
	}
	if (*out == NULL) {
		fprintf(stderr, "psfleet data gen: --out FILE.csv is required (see --help)\n");
		return -1;
	}
	return 0;
}

static int
cmd_gen(int argc, char **argv)
{
	psf_datagen_cfg cfg;
	const char *out;
	char err[512];
	struct stat st;
	bool force;

	if (psf_cli_wants_help(argc, argv)) {
		printf(gen_help, PSF_DATAGEN_MAX_SYMBOLS, PSF_DATAGEN_MAX_DAYS);
		return 0;
	}
	if (gen_args(argc, argv, &cfg, &out, &force) != 0)
		return 2;
	if (!force && lstat(out, &st) == 0) {
		fprintf(stderr, "psfleet data gen: %s already exists; use --force to replace it\n",
		    out);
		return 1;
	}
	if (psf_datagen_write(&cfg, out, err, sizeof(err)) != PSF_OK) {
		fprintf(stderr, "psfleet data gen: %s\n", err);
		return 1;
	}
	printf("wrote %s: %u symbol%s, %u business days to %s%s, seed %llu\n", out, cfg.symbols,
	    psf_plural(cfg.symbols), cfg.days, PSF_DATAGEN_END_DATE,
	    cfg.skew ? ", skewed history" : "", (unsigned long long)cfg.seed);
	return 0;
}

/* Options shared by partition and scan: one positional path and flags. */
typedef struct path_args {
	const char *path;
	const char *out;
	psf_bad_rows bad_rows;
	double test_fraction;
} path_args;

static int
path_args_parse(const char *cmd, int argc, char **argv, int allow_out, path_args *pa)
{
	memset(pa, 0, sizeof(*pa));
	pa->test_fraction = 0.2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;

		if (a[0] != '-' && pa->path == NULL) {
			pa->path = a;
		} else if (strcmp(a, "--bad-rows") == 0 && val != NULL) {
			if (parse_policy(argv[++i], &pa->bad_rows) != 0)
				return -1;
		} else if (allow_out && strcmp(a, "--out") == 0 && val != NULL) {
			pa->out = argv[++i];
		} else if (!allow_out && strcmp(a, "--test-fraction") == 0 && val != NULL) {
			pa->test_fraction = strtod(argv[++i], &end);
			if (*end != '\0' || !(pa->test_fraction > 0 && pa->test_fraction < 1)) {
				fprintf(stderr,
				    "psfleet data %s: --test-fraction is in (0, 1), got '%s'\n",
				    cmd, val);
				return -1;
			}
		} else {
			fprintf(stderr,
			    "psfleet data %s: unexpected or incomplete '%s' (see --help)\n", cmd,
			    a);
			return -1;
		}
	}
	if (pa->path == NULL || (allow_out && pa->out == NULL)) {
		fprintf(stderr, "psfleet data %s: %s (see --help)\n", cmd,
		    allow_out ? "FILE.csv and --out DIR are required" : "PATH is required");
		return -1;
	}
	return 0;
}

/* summary prints a data set's index; with fraction > 0 also its cutoff. */
static int
summary(const char *cmd, const char *path, psf_bad_rows bad_rows, double fraction)
{
	psf_data_index *idx = NULL;
	const int32_t *dates;
	uint64_t rows = 0, r;
	int32_t cut;
	char err[512], a[11], b[11];
	size_t n;

	if (psf_data_scan(path, bad_rows, err, sizeof(err), &idx) != PSF_OK) {
		fprintf(stderr, "psfleet data %s: %s\n", cmd, err);
		return 1;
	}
	for (size_t i = 0; psf_data_index_symbol(idx, i, &r) != NULL; i++)
		rows += r;
	dates = psf_data_index_dates(idx, &n);
	psf_date_format(n > 0 ? dates[0] : 0, a);
	psf_date_format(n > 0 ? dates[n - 1] : 0, b);
	printf("%s: %zu symbol%s, %llu row%s, %zu date%s (%s .. %s)\n", path,
	    psf_data_index_n_symbols(idx), psf_plural(psf_data_index_n_symbols(idx)),
	    (unsigned long long)rows, psf_plural(rows), n, psf_plural(n), a, b);
	if (fraction > 0) {
		if (psf_data_cutoff_date(dates, n, fraction, &cut) == PSF_OK) {
			psf_date_format(cut, a);
			printf("cutoff %s (test_fraction %g): rows dated >= cutoff are test rows\n",
			    a, fraction);
		} else {
			printf("cutoff: none (fewer than 2 dates)\n");
		}
	}
	psf_data_index_free(idx);
	return 0;
}

static int
cmd_partition(int argc, char **argv)
{
	path_args pa;
	char err[512];

	if (psf_cli_wants_help(argc, argv)) {
		fputs(partition_help, stdout);
		return 0;
	}
	if (path_args_parse("partition", argc, argv, 1, &pa) != 0)
		return 2;
	if (psf_data_partition(pa.path, pa.out, pa.bad_rows, err, sizeof(err)) != PSF_OK) {
		fprintf(stderr, "psfleet data partition: %s\n", err);
		return 1;
	}
	return summary("partition", pa.out, PSF_BAD_ROWS_FAIL, 0);
}

static int
cmd_scan(int argc, char **argv)
{
	path_args pa;

	if (psf_cli_wants_help(argc, argv)) {
		fputs(scan_help, stdout);
		return 0;
	}
	if (path_args_parse("scan", argc, argv, 0, &pa) != 0)
		return 2;
	return summary("scan", pa.path, pa.bad_rows, pa.test_fraction);
}

static int
cmd_cache(int argc, char **argv)
{
	psf_data_opts opts = {.cache = true};
	const char *verb = argc >= 2 ? argv[1] : "", *path = NULL;
	char err[512], where[4200];

	if (psf_cli_wants_help(argc, argv)) {
		fputs(cache_help, stdout);
		return 0;
	}
	if (strcmp(verb, "build") != 0 && strcmp(verb, "check") != 0) {
		fprintf(stderr, "psfleet data cache: build or check is required (see --help)\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (argv[i][0] != '-' && path == NULL) {
			path = argv[i];
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			opts.cache_dir = argv[++i];
		} else if (strcmp(argv[i], "--bad-rows") == 0 && i + 1 < argc) {
			if (parse_policy(argv[++i], &opts.bad_rows) != 0)
				return 2;
		} else {
			fprintf(stderr,
			    "psfleet data cache: unexpected or incomplete '%s' (see --help)\n",
			    argv[i]);
			return 2;
		}
	}
	if (path == NULL) {
		fprintf(stderr, "psfleet data cache %s: PATH is required (see --help)\n", verb);
		return 2;
	}
	if (strcmp(verb, "build") == 0) {
		uint64_t t0 = psf_now_ms();

		if (psf_data_cache_build(path, &opts, err, sizeof(err), where, sizeof(where)) !=
		    PSF_OK) {
			fprintf(stderr, "psfleet data cache build: %s\n", err);
			return 1;
		}
		printf("cache %s is valid (%llu ms)\n", where,
		    (unsigned long long)(psf_now_ms() - t0));
		return 0;
	}
	if (psf_data_cache_check(path, opts.cache_dir, err, sizeof(err), where, sizeof(where)) !=
	    PSF_OK) {
		fprintf(stderr, "psfleet data cache check: %s\n", err);
		return 1;
	}
	printf("cache %s is valid\n", where);
	return 0;
}

int
psf_cmd_data(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "gen") == 0)
		return cmd_gen(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "partition") == 0)
		return cmd_partition(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "scan") == 0)
		return cmd_scan(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "cache") == 0)
		return cmd_cache(argc - 1, argv + 1);
	if (psf_cli_wants_help(argc, argv)) {
		fputs(data_help, stdout);
		return 0;
	}
	if (argc < 2)
		fprintf(stderr,
		    "psfleet data: a command is required: gen, partition, scan or cache (see --help)\n");
	else
		fprintf(stderr,
		    "psfleet data: unknown command '%s' (gen, partition, scan or cache)\n",
		    argv[1]);
	return 2;
}
