/* freshness_probe.c -- one freshness measurement for bench/freshness_bench.sh:
 * ingest a day's bars through the C client, then Predict one symbol in a loop
 * until (a) the prediction starts from the new bar and (b) it is served by the
 * fine-tuned weights (model version >= the version the Ingest reply names +
 * the fine-tuning steps per round).
 *
 *   freshness_probe URL DAY.csv SYMBOL
 *
 * DAY.csv: date,symbol,close,open,high,low,volume (no header). Prints
 * `ingest_ms`, `new_bar_ms`, `finetuned_ms` (from the Ingest call), `predict_ms`
 * (one Predict round trip, the median of 21, before the Ingest: the baseline)
 * and `versions V0 V1`. Exit 1 when a step fails or takes over 120 s. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "psfleet_client.h" /* the installed header, as a user includes it */

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* read_day reads the bars of path: *syms and *bars get n new arrays. */
static int
read_day(const char *path, char ***syms, psf_client_bar **bars, size_t *n)
{
	FILE *f = fopen(path, "r");
	char line[512];
	size_t cap = 0;

	*n = 0;
	*syms = NULL;
	*bars = NULL;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		char sym[64], date[11];
		psf_client_bar b;
		if (sscanf(line, "%10[^,],%63[^,],%lf,%lf,%lf,%lf,%lf", date, sym, &b.close,
		        &b.open, &b.high, &b.low, &b.volume) != 7)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 1024;
			char **ns = realloc(*syms, cap * sizeof(*ns));
			psf_client_bar *nb = ns != NULL ? realloc(*bars, cap * sizeof(*nb)) : NULL;
			if (ns != NULL)
				*syms = ns;
			if (nb == NULL) {
				fclose(f);
				return -1;
			}
			*bars = nb;
		}
		snprintf(b.date, sizeof(b.date), "%s", date);
		(*bars)[*n] = b;
		(*syms)[(*n)++] = strdup(sym);
	}
	fclose(f);
	return *n > 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	psf_client *c = NULL;
	psf_client_opts o = {0};
	char **syms = NULL;
	psf_client_bar *bars = NULL;
	psf_client_ingest_result *res = NULL;
	psf_client_ingest_summary sum;
	psf_prediction p;
	double lat[21], t0, t_new = -1, t_ft = -1, t_reply;
	size_t n = 0;
	int rc = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: freshness_probe URL DAY.csv SYMBOL\n");
		return 2;
	}
	o.timeout_ms = 30000;
	o.connect_now = 1;
	if (read_day(argv[2], &syms, &bars, &n) != 0) {
		fprintf(stderr, "freshness_probe: cannot read bars from %s\n", argv[2]);
		goto out;
	}
	if (psf_client_open(argv[1], &o, &c) != PSF_CLIENT_OK) {
		fprintf(stderr, "freshness_probe: cannot connect to %s\n", argv[1]);
		goto out;
	}
	for (int i = 0; i < 21; i++) {
		double a = now_ms();
		if (psf_client_predict(c, argv[3], NULL, &p) != PSF_CLIENT_OK) {
			fprintf(stderr, "freshness_probe: predict %s: %s\n", argv[3], p.message);
			goto out;
		}
		lat[i] = now_ms() - a;
	}
	qsort(lat, 21, sizeof(double), cmp_double);
	if ((res = calloc(n, sizeof(*res))) == NULL)
		goto out;
	t0 = now_ms();
	if (psf_client_ingest(c, (const char *const *)syms, bars, n, res, &sum) != PSF_CLIENT_OK ||
	    sum.accepted != n) {
		fprintf(stderr, "freshness_probe: ingest: %llu of %zu stored; first: %s\n",
		    (unsigned long long)sum.accepted, n, res[0].message);
		goto out;
	}
	t_reply = now_ms() - t0;
	while (now_ms() - t0 < 120000) {
		if (psf_client_predict(c, argv[3], NULL, &p) != PSF_CLIENT_OK) {
			fprintf(stderr, "freshness_probe: predict %s: %s\n", argv[3], p.message);
			goto out;
		}
		if (t_new < 0 && strcmp(p.as_of, bars[0].date) == 0)
			t_new = now_ms() - t0;
		if (t_new >= 0 && p.model_version >= sum.model_version + sum.finetune_steps) {
			t_ft = now_ms() - t0;
			break;
		}
		struct timespec ts = {0, 2000000}; /* 2 ms between polls */
		nanosleep(&ts, NULL);
	}
	if (t_ft < 0 || sum.finetune_steps == 0) {
		fprintf(stderr, "freshness_probe: no fine-tuned model within 120 s (steps %u)\n",
		    sum.finetune_steps);
		goto out;
	}
	printf("ingest_ms %.1f\nnew_bar_ms %.1f\nfinetuned_ms %.1f\npredict_ms %.3f\n"
	       "versions %llu %llu\n",
	    t_reply, t_new, t_ft, lat[10], (unsigned long long)sum.model_version,
	    (unsigned long long)p.model_version);
	rc = 0;
out:
	psf_client_close(c);
	for (size_t i = 0; i < n; i++)
		free(syms[i]);
	free(syms);
	free(bars);
	free(res);
	return rc;
}
