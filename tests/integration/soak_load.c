/* soak_load.c -- load generator for tests/integration/soak_test.sh: THREADS
 * threads share one psf_client (the public client library) and call the
 * gateway or an inferer back to back for SECONDS: one PredictBatch of every
 * SYMBOL, then one Predict of the next symbol in turn, and again. Every call
 * and every item must answer OK.
 *
 * usage: soak_load URL SECONDS THREADS SYMBOL...
 * Prints one line: "calls C predictions P errors E versions V0..V1 seconds S";
 * the first few failures go to stderr. Exit 0 when E == 0, 1 otherwise, 2 on a
 * usage error. */
#include "psfleet_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static psf_client *client;
static const char *const *syms;
static size_t nsyms;
static double end_at;
static atomic_ullong calls, preds, errors, vmin = UINT64_MAX, vmax;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
seen(const psf_prediction *p)
{
	unsigned long long v = p->model_version, cur;
	if (p->status != PSF_CLIENT_OK) {
		if (atomic_fetch_add(&errors, 1) < 5)
			fprintf(stderr, "soak_load: %s: %s: %s\n", p->symbol,
			    psf_client_status_name(p->status), p->message);
		return;
	}
	atomic_fetch_add(&preds, 1);
	cur = atomic_load(&vmin);
	while (v < cur && !atomic_compare_exchange_weak(&vmin, &cur, v))
		;
	cur = atomic_load(&vmax);
	while (v > cur && !atomic_compare_exchange_weak(&vmax, &cur, v))
		;
}

static void *
worker(void *arg)
{
	size_t next = (size_t)(uintptr_t)arg, i;
	psf_prediction *out = calloc(nsyms, sizeof(*out));
	psf_prediction one;

	if (!out) {
		atomic_fetch_add(&errors, 1);
		return NULL;
	}
	while (now_s() < end_at) {
		int rc = psf_client_predict_batch(client, syms, nsyms, NULL, out);
		atomic_fetch_add(&calls, 1);
		for (i = 0; i < nsyms; i++) {
			if (rc != PSF_CLIENT_OK && out[i].status == PSF_CLIENT_OK)
				out[i].status = rc;
			seen(&out[i]);
		}
		psf_client_predict(client, syms[next % nsyms], NULL, &one);
		atomic_fetch_add(&calls, 1);
		seen(&one);
		next++;
	}
	free(out);
	return NULL;
}

int
main(int argc, char **argv)
{
	psf_client_opts opts = {.timeout_ms = 5000};
	pthread_t tid[64];
	double t0;
	long secs, threads, i;
	int rc;

	if (argc < 5 || (secs = strtol(argv[2], NULL, 10)) <= 0 ||
	    (threads = strtol(argv[3], NULL, 10)) <= 0 || threads > 64) {
		fprintf(stderr, "usage: soak_load URL SECONDS THREADS(1..64) SYMBOL...\n");
		return 2;
	}
	rc = psf_client_open(argv[1], &opts, &client);
	if (rc != PSF_CLIENT_OK) {
		fprintf(stderr, "soak_load: open %s: %s\n", argv[1], psf_client_status_name(rc));
		return 2;
	}
	syms = (const char *const *)&argv[4];
	nsyms = (size_t)(argc - 4);
	t0 = now_s();
	end_at = t0 + (double)secs;
	for (i = 0; i < threads; i++) {
		if (pthread_create(&tid[i], NULL, worker, (void *)(uintptr_t)i) != 0) {
			fprintf(stderr, "soak_load: pthread_create failed\n");
			threads = i;
			atomic_fetch_add(&errors, 1);
			break;
		}
	}
	for (i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	psf_client_close(client);
	printf("calls %llu predictions %llu errors %llu versions %llu..%llu seconds %.1f\n",
	    (unsigned long long)calls, (unsigned long long)preds, (unsigned long long)errors,
	    (unsigned long long)(vmax ? vmin : 0), (unsigned long long)vmax, now_s() - t0);
	return errors == 0 && calls > 0 ? 0 : 1;
}
