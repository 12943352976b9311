/* store_bench.c -- commits/s and MB/s of psf_store updates that rewrite 16 x
 * 256 KiB values per commit (a ps applying a push of 16 dense chunks), under
 * each durability mode, against a memcpy of the same bytes measured in the same
 * run (DESIGN.md §10). Then, for interval and none, the same with writeset
 * capture on (ps replication, store.h): "capture" hands each writeset to a
 * callback that only reads it; "capture_apply" also applies it to a second
 * store (durability none), the local cost of keeping a replica.
 *
 *   store_bench [--quick] [--dir DIR]
 *
 * DIR (default $TMPDIR or /tmp) should be on the disk you care about: a tmpfs
 * makes every-commit look free. Each figure is the median of several runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "ps/store.h"

#define N_VALUES 16
#define VALUE_BYTES (256u * 1024u)
#define COMMIT_BYTES ((double)N_VALUES * VALUE_BYTES)

typedef struct bench_cfg {
	int reps;           /* runs per figure; the median is printed */
	uint64_t min_ns;    /* each run lasts at least this long... */
	unsigned min_iters; /* ...and does at least this many commits */
	const char *dir;
} bench_cfg;

typedef struct write_arg {
	const unsigned char *src;
	uint32_t iter;
} write_arg;

static psf_err
write_fn(psf_store_txn *txn, void *arg)
{
	write_arg *a = arg;
	void *buf;
	psf_err rv;

	for (uint64_t k = 0; k < N_VALUES; k++) {
		rv = psf_store_txn_put_reserve(txn, PSF_STORE_WEIGHTS, k << 48, VALUE_BYTES, &buf);
		if (rv != PSF_OK)
			return rv;
		memcpy(buf, a->src, VALUE_BYTES);
		memcpy(buf, &a->iter, sizeof(a->iter)); /* every commit changes every value */
	}
	return PSF_OK;
}

/* run_memcpy returns "commits"/s of copying the same bytes into 16 buffers. */
static double
run_memcpy(const bench_cfg *b, const unsigned char *src, unsigned char *dst)
{
	uint64_t t0 = psf_now_ns(), t;
	unsigned iters = 0;

	do {
		for (int k = 0; k < N_VALUES; k++) {
			memcpy(dst + (size_t)k * VALUE_BYTES, src, VALUE_BYTES);
			memcpy(dst + (size_t)k * VALUE_BYTES, &iters, sizeof(iters));
		}
		iters++;
		t = psf_now_ns() - t0;
	} while (t < b->min_ns || iters < b->min_iters);
	/* keep the copies observable so they are not optimised away */
	if (dst[VALUE_BYTES * (N_VALUES - 1) + 7] == 0xfe && dst[0] == 0xfe)
		fprintf(stderr, "#\n");
	return (double)iters * 1e9 / (double)t;
}

enum { CAP_OFF, CAP_ON, CAP_APPLY };

typedef struct cap_sink {
	psf_store *replica; /* CAP_APPLY */
	uint64_t sum;
} cap_sink;

static psf_err
capture_fn(uint64_t seq, const void *bytes, size_t len, void *arg)
{
	cap_sink *k = arg;
	const unsigned char *b = bytes;

	k->sum += b[0] + b[len - 1]; /* look at it, as a sender would */
	return k->replica != NULL ? psf_store_apply_wset(k->replica, seq, bytes, len) : PSF_OK;
}

/* run_store returns commits/s for one durability mode and capture setting, or
 * -1 on error. */
static double
run_store(const bench_cfg *b, psf_durability mode, int cap, const unsigned char *src)
{
	char dir[4096 + 32], rdir[4096 + 48]; /* b->dir is at most 4095 bytes (main's template) */
	psf_store_opts o = {0};
	psf_store *st = NULL;
	write_arg a = {src, 0};
	cap_sink k = {0};
	uint64_t t0, t;
	psf_err rv = PSF_OK;

	snprintf(dir, sizeof(dir), "%s/mode%d", b->dir, (int)mode);
	snprintf(rdir, sizeof(rdir), "%s.replica", dir);
	o.durability = mode;
	o.map_size = 256ull << 20;
	if (psf_store_open(dir, &o, &st) != PSF_OK)
		return -1;
	if (cap == CAP_APPLY) {
		o.durability = PSF_DUR_NONE;
		if (psf_store_open(rdir, &o, &k.replica) != PSF_OK) {
			psf_store_close(st);
			return -1;
		}
	}
	if (cap != CAP_OFF)
		psf_store_set_capture(st, capture_fn, &k);
	for (int i = 0; i < 2 && rv == PSF_OK; i++) /* warm-up: allocate the pages */
		rv = psf_store_update(st, write_fn, &a);
	t0 = psf_now_ns();
	do {
		a.iter++;
		if (rv == PSF_OK)
			rv = psf_store_update(st, write_fn, &a);
		t = psf_now_ns() - t0;
	} while (rv == PSF_OK && (t < b->min_ns || a.iter < b->min_iters));
	psf_store_close(st);
	psf_store_close(k.replica);
	if (k.replica != NULL && psf_rm_rf(rdir) != PSF_OK)
		rv = PSF_ESYS;
	if (psf_rm_rf(dir) != PSF_OK || rv != PSF_OK) {
		fprintf(stderr, "store_bench: %s\n", psf_strerror(rv));
		return -1;
	}
	return (double)a.iter * 1e9 / (double)t;
}

static void
print_rate(const char *name, double commits_per_s)
{
	printf("%s_commits_per_s %.1f commits/s\n", name, commits_per_s);
	printf("%s_mb_per_s %.1f MB/s\n", name, commits_per_s * COMMIT_BYTES / 1e6);
}

static int
parse_args(int argc, char **argv, bench_cfg *b)
{
	const char *tmp = getenv("TMPDIR");

	b->reps = 5;
	b->min_ns = 1000000000ull;
	b->min_iters = 20;
	b->dir = tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			b->reps = 1;
			b->min_ns = 20000000ull;
			b->min_iters = 3;
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			b->dir = argv[++i];
		} else {
			fprintf(stderr, "usage: store_bench [--quick] [--dir DIR]\n");
			return -1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		psf_durability mode;
	} modes[] = {
	    {"store_interval", PSF_DUR_INTERVAL},
	    {"store_every_commit", PSF_DUR_EVERY_COMMIT},
	    {"store_none", PSF_DUR_NONE},
	};
	static const struct {
		const char *name;
		psf_durability mode;
		int cap;
	} caps[] = {
	    {"store_interval_capture", PSF_DUR_INTERVAL, CAP_ON},
	    {"store_interval_capture_apply", PSF_DUR_INTERVAL, CAP_APPLY},
	    {"store_none_capture", PSF_DUR_NONE, CAP_ON},
	    {"store_none_capture_apply", PSF_DUR_NONE, CAP_APPLY},
	};
	double rates[PSF_ARRAY_LEN(modes)], cap_rates[PSF_ARRAY_LEN(caps)];
	double cap_ratio[PSF_ARRAY_LEN(caps)], runs[16], base;
	unsigned char *src = malloc(VALUE_BYTES), *dst = malloc(N_VALUES * VALUE_BYTES);
	char top[4096];
	bench_cfg b = {0};
	int rc = 1;

	psf_log_setup(PSF_LOG_WARN, "store_bench");
	if (src == NULL || dst == NULL || parse_args(argc, argv, &b) != 0)
		goto out;
	if ((size_t)snprintf(top, sizeof(top), "%s/psf_store_bench.XXXXXX", b.dir) >= sizeof(top) ||
	    mkdtemp(top) == NULL) {
		perror("store_bench: mkdtemp");
		goto out;
	}
	b.dir = top;
	for (size_t i = 0; i < VALUE_BYTES; i++)
		src[i] = (unsigned char)(i * 131u);

	for (int r = 0; r < b.reps; r++)
		runs[r] = run_memcpy(&b, src, dst);
	base = psf_bench_median(runs, (size_t)b.reps);
	print_rate("memcpy", base);
	for (size_t m = 0; m < PSF_ARRAY_LEN(modes); m++) {
		for (int r = 0; r < b.reps; r++)
			if ((runs[r] = run_store(&b, modes[m].mode, CAP_OFF, src)) < 0)
				goto out;
		rates[m] = psf_bench_median(runs, (size_t)b.reps);
		print_rate(modes[m].name, rates[m]);
	}
	/* Capture runs alternate with runs without it, and the ratio is the median
	 * of the pairs' ratios: load from other processes drifts less within a pair. */
	for (size_t c = 0; c < PSF_ARRAY_LEN(caps); c++) {
		double pair[16];

		for (int r = 0; r < b.reps; r++) {
			double off = run_store(&b, caps[c].mode, CAP_OFF, src);

			if (off < 0 ||
			    (runs[r] = run_store(&b, caps[c].mode, caps[c].cap, src)) < 0)
				goto out;
			pair[r] = runs[r] / off;
		}
		cap_rates[c] = psf_bench_median(runs, (size_t)b.reps);
		cap_ratio[c] = psf_bench_median(pair, (size_t)b.reps);
		print_rate(caps[c].name, cap_rates[c]);
	}
	for (size_t m = 0; m < PSF_ARRAY_LEN(modes); m++)
		printf("ratio_%s_vs_memcpy %.4f\n", modes[m].name, rates[m] / base);
	for (size_t c = 0; c < PSF_ARRAY_LEN(caps); c++)
		printf("ratio_%s_vs_off %.4f\n", caps[c].name, cap_ratio[c]);
	rc = 0;
out:
	if (b.dir == top && psf_rm_rf(top) != PSF_OK)
		rc = 1;
	free(dst);
	free(src);
	return rc;
}
