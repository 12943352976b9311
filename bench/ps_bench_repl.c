/* ps_bench_repl.c -- ps_bench's replication cases (docs/performance.md,
 * docs/reliability.md "Replication"):
 *
 *   push/pull throughput of one trainer client against a fleet of 2 shards
 *   without replication (2 ps nodes) and with replication 2 (4 ps nodes, every
 *   push copied to the shard's backup before it is acknowledged), in the same
 *   run, alternating, on ipc:// with the default durability (interval);
 *   failover time: a replicated fleet, the primary of shard 0 stopped, the
 *   time until the client's next push is served (by the promoted backup),
 *   over repeated runs (median and max).
 *
 * Every ps is a real psf_ps in this process (psf_ps_new), each with its own
 * LMDB directory; a stopped primary is psf_ps_free'd (its connections close as
 * a killed process's do; its heartbeats stop first). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/ps_bench_repl.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/model/model.h"
#include "ps/ps.h"
#include "trainer/ps_client.h"

#define RB_MAX_PS 4
#define RB_HIDDEN 4096 /* 64 inputs x 4096: ~1 MiB of float32 per push */

typedef struct rfleet {
	char dir[256];
	psf_config *cfg;
	psf_ps *ps[RB_MAX_PS];
	size_t n_ps;
	psf_model *model;
	psf_params *grads;
	uint64_t *keys;
	size_t n_keys;
	size_t bytes;
	psf_ps_client *w;
} rfleet;

static void
rfleet_free(rfleet *f)
{
	psf_ps_client_close(f->w);
	for (size_t i = 0; i < f->n_ps; i++)
		psf_ps_free(f->ps[i]);
	psf_params_free(f->grads);
	psf_model_free(f->model);
	psf_config_free(f->cfg);
	free(f->keys);
	memset(f, 0, sizeof(*f));
}

static psf_err
rfleet_open(const char *base, const char *name, int r, rfleet *f)
{
	char text[4096], errbuf[512];
	size_t n = 0, n_ps = r == 1 ? 2 : 4;
	psf_ps_opts po = {PSF_PS_RESET_ALWAYS, NULL, "", NULL};
	psf_ps_client_opts wo = {.retry_ms = 30000};
	uint32_t *lens = NULL;
	float *buf = NULL;
	psf_err err;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/%s", base, name);
	n += (size_t)snprintf(text + n, sizeof(text) - n,
	    "name: replbench\nseed: 3\nrun_dir: %s\nlog_level: warn\nreplication: %d\nnodes:\n  ps:\n",
	    f->dir, r);
	for (size_t i = 0; i < n_ps; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    "    - {id: ps%zu, listen: \"ipc://%s-ps%zu.ipc\"}\n", i, f->dir, i);
	n += (size_t)snprintf(text + n, sizeof(text) - n,
	    "  trainers:\n    - {id: trainer-0}\ndata: {path: %s/none.csv}\nfeatures: [", f->dir);
	for (int i = 0; i < 62; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"lag:%d\"", i ? ", " : "", i);
	snprintf(text + n, sizeof(text) - n,
	    "]\ntarget: next_close\nmodel: {kind: mlp, hidden: [%d], chunk_floats: 65536}\n"
	    "optimizer: {kind: sgd, learning_rate: 0.000001}\n"
	    "consistency: {mode: async, straggler_timeout_ms: 600000, heartbeat_ms: 1000}\n"
	    "durability: {mode: interval, interval_ms: 1000}\n"
	    "limits: {request_timeout_ms: 2000}\n",
	    RB_HIDDEN);
	if ((err = psf_config_parse("repl_bench.yaml", text, strlen(text), errbuf, sizeof(errbuf),
	         &f->cfg)) != PSF_OK) {
		fprintf(stderr, "ps_bench: config: %s\n", errbuf);
		return err;
	}
	for (size_t i = 0; i < n_ps; i++) {
		if ((err = psf_ps_new(f->cfg, psf_config_role_node(f->cfg, PSF_ROLE_PS, i), &po,
		         &f->ps[i])) != PSF_OK)
			return err;
		f->n_ps++;
	}
	if ((err = psf_model_new(&f->cfg->model, (uint32_t)f->cfg->n_features, f->cfg->target,
	         f->cfg->seed, &f->model)) != PSF_OK)
		return err;
	f->n_keys = psf_model_n_dense_keys(f->model);
	f->keys = calloc(f->n_keys, sizeof(*f->keys));
	lens = calloc(f->n_keys, sizeof(*lens));
	buf = malloc(65536 * sizeof(float));
	err = f->keys && lens && buf ? PSF_OK : PSF_ENOMEM;
	if (err == PSF_OK)
		err = psf_model_dense_keys(f->model, f->keys, lens, f->n_keys, &f->n_keys);
	if (err == PSF_OK)
		err = psf_params_new(f->model, &f->grads);
	for (uint32_t j = 0; buf != NULL && j < 65536; j++)
		buf[j] = 0.001f * (float)(j % 7 + 1);
	for (size_t i = 0; i < f->n_keys && err == PSF_OK; i++) {
		err = psf_params_set_key(f->grads, f->keys[i], buf, lens[i]);
		f->bytes += (size_t)lens[i] * 4;
	}
	free(buf);
	free(lens);
	if (err == PSF_OK) /* registers: waits for every shard's primary */
		err = psf_ps_client_open(f->cfg, f->model, "trainer-0", &wo, &f->w);
	return err;
}

/* run_ops pushes (or pulls) every key for budget_ms; returns calls per second. */
static double
run_ops(rfleet *f, bool push, uint32_t budget_ms, psf_params *dst)
{
	uint64_t t0 = psf_now_ns(), end = t0 + (uint64_t)budget_ms * 1000000u, calls = 0;

	do {
		int64_t c = psf_ps_client_clock(f->w);
		psf_err err = push
		    ? psf_ps_client_push(f->w, c, f->grads, f->keys, f->n_keys, 1, 0, NULL)
		    : psf_ps_client_pull(f->w, c, f->keys, f->n_keys, dst, NULL);
		if (err != PSF_OK && err != PSF_ESTATE) {
			fprintf(stderr, "ps_bench: repl %s: %s\n", push ? "push" : "pull",
			    psf_strerror(err));
			return 0;
		}
		calls++;
	} while (psf_now_ns() < end || calls < 3);
	return (double)calls / ((double)(psf_now_ns() - t0) / 1e9);
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

psf_err
psf_ps_bench_repl(const char *base, bool quick)
{
	static rfleet f1, f2, ff;
	int reps = quick ? 1 : 5, runs = quick ? 1 : 7;
	uint32_t budget = quick ? 100 : 1000;
	double p1[8], p2[8], q1[8], q2[8], rp[8], rq[8], fo[16];
	psf_params *dst = NULL;
	char name[64];
	psf_err err;

	if ((err = rfleet_open(base, "r1", 1, &f1)) != PSF_OK ||
	    (err = rfleet_open(base, "r2", 2, &f2)) != PSF_OK ||
	    (err = psf_params_new(f1.model, &dst)) != PSF_OK)
		goto out;
	for (int k = 0; k < reps; k++) { /* alternating, so noise hits both alike */
		p1[k] = run_ops(&f1, true, budget, NULL);
		p2[k] = run_ops(&f2, true, budget, NULL);
		q1[k] = run_ops(&f1, false, budget, dst);
		q2[k] = run_ops(&f2, false, budget, dst);
		rp[k] = p1[k] > 0 ? p2[k] / p1[k] : 0;
		rq[k] = q1[k] > 0 ? q2[k] / q1[k] : 0;
	}
	printf("repl_push_r1_ipc_1MiB %.1f MB/s\n", median(p1, reps) * (double)f1.bytes / 1e6);
	printf("repl_push_r2_ipc_1MiB %.1f MB/s\n", median(p2, reps) * (double)f2.bytes / 1e6);
	printf("repl_pull_r1_ipc_1MiB %.1f MB/s\n", median(q1, reps) * (double)f1.bytes / 1e6);
	printf("repl_pull_r2_ipc_1MiB %.1f MB/s\n", median(q2, reps) * (double)f2.bytes / 1e6);
	rfleet_free(&f1);
	rfleet_free(&f2);
	/* failover: stop shard 0's primary (ps0), time the next push */
	for (int k = 0; k < runs; k++) {
		uint64_t t0;
		snprintf(name, sizeof(name), "fo%d", k);
		if ((err = rfleet_open(base, name, 2, &ff)) != PSF_OK)
			goto out;
		if (run_ops(&ff, true, 50, NULL) == 0) {
			err = PSF_EUNAVAIL;
			goto out;
		}
		t0 = psf_now_ns();
		psf_ps_free(ff.ps[0]);
		ff.ps[0] = NULL;
		/* one push: it fails over (retrying with the client's backoff) */
		if ((err = psf_ps_client_push(ff.w, psf_ps_client_clock(ff.w), ff.grads, ff.keys,
		         ff.n_keys, 1, 0, NULL)) != PSF_OK)
			goto out;
		fo[k] = (double)(psf_now_ns() - t0) / 1e6;
		rfleet_free(&ff);
	}
	printf("repl_failover_median %.0f ms\n", median(fo, runs));
	printf("repl_failover_max %.0f ms\n", fo[runs - 1]); /* sorted by median() */
	printf("repl_failover_runs %d runs\n", runs);
	printf("ratio_push_r2_vs_r1 %.3f\n", median(rp, reps));
	printf("ratio_pull_r2_vs_r1 %.3f\n", median(rq, reps));
out:
	if (err != PSF_OK)
		fprintf(stderr, "ps_bench: replication cases: %s\n", psf_strerror(err));
	psf_params_free(dst);
	rfleet_free(&f1);
	rfleet_free(&f2);
	rfleet_free(&ff);
	return err;
}
