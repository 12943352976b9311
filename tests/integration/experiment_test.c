/* `psfleet experiment` end to end: real ps and trainer processes on ipc:// in a
 * temp dir, three modes with a straggler, then a failure injection; checks the
 * three output files, the staleness contract per mode (docs/experiments.md), and
 * that the page has one chart per required plot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/base/util.h"

#include "tests/integration/itest.h"

typedef struct xenv {
	psf_itest_dir d; /* its dir, fleet.yaml and ps0's url */
	char out[128];   /* <dir>/out, the experiment's output */
} xenv;

static void
setup(xenv *e)
{
	FILE *f;

	psf_itest_dir_make(&e->d, "exp");
	snprintf(e->out, sizeof(e->out), "%s/out", e->d.dir);
	f = fopen(e->d.cfg, "w");
	assert_non_null(f);
	/* data.generate without a file: the runner makes it (once, shared by every run) */
	fprintf(f,
	    "name: exptest\nseed: 5\nrun_dir: %s/unused\n"
	    "nodes:\n  ps:\n    - {id: ps0, listen: \"%s\"}\n"
	    "  trainers:\n    - {id: trainer-0}\n    - {id: trainer-1}\n"
	    "data: {path: %s/data.csv, generate: {symbols: 24, days: 160, seed: 3}}\n"
	    "features: [\"return:1\", \"return:5\", \"ratio_sma:10\"]\n"
	    "target: next_return\n"
	    "model: {kind: linear}\n"
	    "optimizer: {kind: adam, learning_rate: 0.01}\n"
	    "training: {epochs: 4, batch_size: 32}\n"
	    "consistency: {mode: sync, straggler_timeout_ms: 20000, heartbeat_ms: 200}\n"
	    "durability: {mode: none}\n"
	    "limits: {request_timeout_ms: 5000}\n",
	    e->d.dir, e->d.url, e->d.dir);
	fclose(f);
}

/* run_cmd runs psfleet with args (NULL-terminated), output to log; returns the
 * exit code, or -1 after killing it at the hard timeout. */
static int
run_cmd(const char *log, int timeout_s, ...)
{
	char *argv[32];
	size_t n = 0;
	va_list ap;

	argv[n++] = getenv("PSFLEET");
	va_start(ap, timeout_s);
	for (char *a; n < 31 && (a = va_arg(ap, char *)) != NULL;)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	/* At the timeout: SIGTERM first, as the runner stops its nodes on SIGTERM (and
	 * they die with it anyway). */
	return psf_itest_wait_exit(psf_itest_spawn(argv, log, true), timeout_s, 3000);
}

static char *
slurp(const char *dir, const char *name)
{
	char path[256], *text = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (psf_read_file(path, &text, NULL) != PSF_OK)
		fail_msg("cannot read %s", path);
	return text;
}

static void
dump_log(const char *log)
{
	char *text = NULL;

	if (psf_read_file(log, &text, NULL) == PSF_OK)
		fprintf(stderr, "---- %s\n%s----\n", log, text);
	free(text);
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* Staleness of every push, per mode, from results.csv's step rows. */
typedef struct stale {
	long long max, pushes, positive;
} stale;

static void
staleness_by_mode(const char *csv, stale *sync, stale *async, stale *ssp1)
{
	char *copy = strdup(csv), *save = NULL;

	assert_non_null(copy);
	memset(sync, 0, sizeof(*sync));
	memset(async, 0, sizeof(*async));
	memset(ssp1, 0, sizeof(*ssp1));
	for (char *ln = strtok_r(copy, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save)) {
		char *f[16], *p = ln;
		size_t n = 0;
		stale *s;
		long long v;

		while (n < 16) {
			f[n++] = p;
			if ((p = strchr(p, ',')) == NULL)
				break;
			*p++ = '\0';
		}
		if (n != 16 || strcmp(f[3], "step") != 0)
			continue;
		s = strcmp(f[0], "sync") == 0    ? sync
		    : strcmp(f[0], "async") == 0 ? async
		    : strcmp(f[0], "ssp:1") == 0 ? ssp1
		                                 : NULL;
		assert_non_null(s);
		v = atoll(f[12]);
		s->pushes++;
		s->positive += v > 0;
		if (v > s->max)
			s->max = v;
	}
	free(copy);
}

static void
test_experiment_three_modes_with_straggler(void **state)
{
	xenv e;
	char log[160];
	char *csv, *json, *html, *runs;
	stale sync, async, ssp1;
	int rc;

	(void)state;
	setup(&e);
	snprintf(log, sizeof(log), "%s/experiment.log", e.d.dir);
	rc = run_cmd(log, 400, "experiment", e.d.cfg, "--modes", "sync,async,ssp:1", "--straggler",
	    "trainer-0:3x", "--straggler", "trainer-0:+4ms", "--out", e.out, "--timeout", "180",
	    NULL);
	if (rc != 0)
		dump_log(log);
	assert_int_equal(rc, 0);

	runs = slurp(e.out, "runs.csv");
	assert_int_equal(count(runs, ",1,"), 3); /* three ok runs */
	assert_null(strstr(runs, "warmup"));     /* the warm-up run is not recorded ... */
	{
		struct stat st;
		char path[192];

		snprintf(path, sizeof(path), "%s/runs/warmup-r0/trace/trainer-0.csv", e.out);
		assert_int_equal(stat(path, &st), 0); /* ... but it ran */
	}
	csv = slurp(e.out, "results.csv");
	assert_true(
	    strncmp(csv, "mode,repeat,trainer,kind,t_seconds,step,epoch,updates,loss,", 58) == 0);
	assert_true(count(csv, ",fleet,") > 10);
	assert_true(count(csv, ",eval,") >= 3 * 2 * 4); /* modes x trainers x epochs */
	staleness_by_mode(csv, &sync, &async, &ssp1);
	assert_true(sync.pushes > 50 && async.pushes > 50 && ssp1.pushes > 50);
	/* The contract of the trace's staleness column (the ps's clock gap): */
	assert_int_equal(sync.max, 0);   /* 0 in sync by construction */
	assert_true(ssp1.max <= 1);      /* never above s in ssp:s */
	assert_true(async.positive > 0); /* the fast trainer runs ahead of the straggler */

	json = slurp(e.out, "summary.json");
	assert_int_equal(count(json, "\"mode\": "), 3);
	assert_non_null(strstr(json, "\"mode\": \"ssp:1\""));
	assert_non_null(
	    strstr(json, "\"source\": \"1.05 x the final smoothed training loss of sync"));
	assert_non_null(strstr(json, "\"final_test_rmse\": {\"mean\": 0.0"));
	/* the headline: time to a test-RMSE target, with the noise verdict */
	assert_int_equal(count(json, "\"seconds_to_test_target\": "), 3);
	assert_int_equal(count(json, "\"test_target_within_noise\": null"), 3); /* 1 run each */
	/* a target when sync beat the naive forecast, else none (and said so) */
	assert_true((strstr(json, "\"test_target_rmse\": {\"value\": 0.0") != NULL &&
	                strstr(json, "90% of sync's gain over the naive forecast") != NULL) ||
	    strstr(json, "\"test_target_rmse\": {\"value\": null, \"source\": \"none\"") != NULL);

	html = slurp(e.out, "report.html");
	assert_int_equal(count(html, "<svg id=\"chart-loss-time\""), 1);
	assert_int_equal(count(html, "<svg id=\"chart-loss-updates\""), 1);
	assert_int_equal(count(html, "<svg id=\"chart-staleness\""), 1);
	assert_int_equal(count(html, "<svg id=\"chart-idle\""), 1);
	assert_int_equal(count(html, "<svg id=\"chart-target\""), 1);
	assert_int_equal(count(html, "<svg id=\"chart-"), 6); /* + test RMSE over time */
	/* self-contained: nothing to fetch */
	assert_int_equal(count(html, "<script"), 0);
	assert_int_equal(count(html, "<link"), 0);
	assert_int_equal(count(html, "src="), 0);
	assert_int_equal(count(html, "url(http"), 0);
	assert_non_null(strstr(html, "</html>"));
	free(html);
	free(json);
	free(csv);

	/* --report-only redoes the files from the runs, with another target */
	assert_int_equal(run_cmd(log, 60, "experiment", "--report-only", "--out", e.out,
	                     "--target-loss", "1.01x", NULL),
	    0);
	json = slurp(e.out, "summary.json");
	assert_non_null(strstr(json, "\"source\": \"1.01 x the final smoothed"));
	free(json);
	free(runs);
	assert_int_equal(psf_rm_rf(e.d.dir), PSF_OK);
}

static void
test_experiment_failure_injection_restarts(void **state)
{
	xenv e;
	char log[160], *runs, *trace, *tlog;
	long long after = 0;
	int rc;

	(void)state;
	setup(&e);
	snprintf(log, sizeof(log), "%s/experiment.log", e.d.dir);
	rc = run_cmd(log, 300, "experiment", e.d.cfg, "--modes", "sync", "--kill",
	    "trainer-1@step:20", "--out", e.out, "--timeout", "180", "--warmup", "0", NULL);
	if (rc != 0)
		dump_log(log);
	assert_int_equal(rc, 0);
	runs = slurp(e.out, "runs.csv");
	assert_non_null(strstr(runs, "sync,sync,0,runs/sync-r0,1,"));   /* ok */
	assert_true(strlen(runs) > 2 && runs[strlen(runs) - 2] == '1'); /* one restart */
	trace = slurp(e.out, "runs/sync-r0/trace/trainer-1.csv");
	for (const char *p = trace; (p = strchr(p, '\n')) != NULL; p++) {
		const char *comma = strchr(p + 1, ',');

		if (comma != NULL && atoll(comma + 1) > 20)
			after++;
	}
	assert_true(after > 10); /* it came back and trained on */
	tlog = slurp(e.out, "runs/sync-r0/trainer-1.log");
	assert_non_null(strstr(tlog, "--exit-at-step 20")); /* only its first start has it */
	assert_int_equal(count(tlog, "--exit-at-step"), 1);
	assert_int_equal(count(tlog, " psfleet experiment: "), 2); /* two starts */
	free(tlog);
	free(trace);
	free(runs);
	assert_int_equal(psf_rm_rf(e.d.dir), PSF_OK);
}

static void
test_experiment_bad_arguments(void **state)
{
	xenv e;
	char log[160], *text;

	(void)state;
	setup(&e);
	snprintf(log, sizeof(log), "%s/experiment.log", e.d.dir);
	assert_int_equal(
	    run_cmd(log, 30, "experiment", e.d.cfg, "--modes", "sync,bsp", "--out", e.out, NULL),
	    2);
	assert_int_equal(run_cmd(log, 30, "experiment", e.d.cfg, "--modes", "sync", "--straggler",
	                     "trainer-9:3x", "--out", e.out, NULL),
	    1);
	assert_int_equal(run_cmd(log, 30, "experiment", e.d.cfg, "--modes", "sync", "--set",
	                     "consistency.staleness=-1", "--out", e.out, NULL),
	    1);
	assert_int_equal(run_cmd(log, 30, "experiment", e.d.cfg, "--modes", "sync", "--warmup",
	                     "99", "--out", e.out, NULL),
	    2);
	assert_int_equal(run_cmd(log, 30, "experiment", "--report-only", "--out", e.d.dir, NULL),
	    1);
	assert_int_equal(run_cmd(log, 30, "experiment", "--help", NULL), 0);
	text = slurp(e.d.dir, "experiment.log");
	assert_non_null(strstr(text, "unknown mode 'bsp'"));
	assert_non_null(strstr(text, "has no trainer 'trainer-9'"));
	assert_non_null(strstr(text, "override 'consistency.staleness=-1': 'staleness' must be"));
	free(text);
	assert_int_equal(psf_rm_rf(e.d.dir), PSF_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_experiment_bad_arguments),
	    cmocka_unit_test(test_experiment_three_modes_with_straggler),
	    cmocka_unit_test(test_experiment_failure_injection_restarts),
	};

	if (!psf_itest_has_psfleet("experiment_test"))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
