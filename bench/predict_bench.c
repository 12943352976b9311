/* predict_bench -- Predict calls against raw NNG req/rep round trips, in one
 * process (DESIGN.md §10).
 *
 * A ps, an inferer (one shard, every symbol) and the gateway run in this process
 * on tcp://127.0.0.1; beside them the raw rep0 server of bench_util.h (contexts
 * + aio, as psfleet's server) answers a 64-byte request with a 96-byte reply,
 * about the size of a Predict and its answer. Cases, interleaved in every repetition so
 * machine noise hits all alike:
 *   raw_rtt_{1,4}c            raw req0 round trips, 1 and 4 client threads
 *   predict_direct_{1,4}c     Predict to the inferer (psf_rpc_client_call)
 *   predict_gw_{1,4}c         Predict through the gateway
 *   batch1000_{direct,gw}     PredictBatch of 1,000 symbols (latency)
 * Rates are medians over the repetitions; latencies are percentiles over every
 * call; ratios are medians of the per-repetition ratios to raw_rtt of the same
 * repetition and thread count. Targets: direct >= 0.70, gateway >= 0.40,
 * batch1000_direct_p50 <= 1000 us.
 *
 * Usage: predict_bench [--quick] [--only CASE]   (--only: profile one case) */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <nng/nng.h>

#include "bench/bench_util.h"
#include "gateway/gateway.h"
#include "inferer/inferer.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/data/data.h"
#include "lib/data/datagen.h"
#include "lib/data/features.h"
#include "lib/model/model.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "ps/ps.h"
#include "trainer/ps_client.h"

#define N_SYMBOLS 1000
#define RAW_REQ 64   /* bytes, about a PredictRequest */
#define RAW_REPLY 96 /* bytes, about a PredictReply */
#define MAX_REPS 15
#define MAX_THREADS 4

typedef enum kind { K_RAW, K_DIRECT, K_GW, K_BATCH_DIRECT, K_BATCH_GW, K_COUNT } kind;

typedef struct bench_case {
	const char *name;
	kind k;
	int threads;
} bench_case;

static const bench_case cases[] = {
    {"raw_rtt_1c", K_RAW, 1},
    {"predict_direct_1c", K_DIRECT, 1},
    {"predict_gw_1c", K_GW, 1},
    {"raw_rtt_4c", K_RAW, 4},
    {"predict_direct_4c", K_DIRECT, 4},
    {"predict_gw_4c", K_GW, 4},
    {"batch1000_direct", K_BATCH_DIRECT, 1},
    {"batch1000_gw", K_BATCH_GW, 1},
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* ---------------------------------------------------------------- calls */

typedef struct env {
	psf_bench_raw_server *raw;
	nng_socket raw_sock; /* shared by the raw client threads, a context each */
	uint8_t raw_src[RAW_REPLY];
	psf_rpc_client *direct, *gw;
	Psfleet__V1__PredictBatchRequest batch;
	char symbols[N_SYMBOLS][8];
} env;

typedef struct worker_arg {
	env *e;
	kind k;
	int id;
	uint32_t calls;
	double *lat_us; /* per call */
	int failed;
	psf_bench_raw_client raw;
} worker_arg;

static int
raw_call(worker_arg *a)
{
	psf_err err = psf_bench_raw_call(&a->raw, a->e->raw_src, RAW_REQ - PSF_BENCH_RAW_HDR,
	    RAW_REPLY - PSF_BENCH_RAW_HDR);

	return err == PSF_OK ? 0 : -1;
}

static int
predict_call(worker_arg *a, uint32_t i)
{
	Psfleet__V1__PredictRequest req = PSFLEET__V1__PREDICT_REQUEST__INIT;
	Psfleet__V1__PredictReply *r = NULL;
	psf_rpc_client *c = a->k == K_DIRECT ? a->e->direct : a->e->gw;

	req.symbol = a->e->symbols[(i * 7 + (uint32_t)a->id * 131) % N_SYMBOLS];
	if (psf_rpc_client_call(c, PSF_M_PREDICT, &req.base,
	        &psfleet__v1__predict_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	        NULL) != PSF_OK)
		return -1;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

static int
batch_call(worker_arg *a)
{
	Psfleet__V1__PredictBatchReply *r = NULL;
	psf_rpc_client *c = a->k == K_BATCH_DIRECT ? a->e->direct : a->e->gw;
	int ok;

	if (psf_rpc_client_call(c, PSF_M_PREDICT_BATCH, &a->e->batch.base,
	        &psfleet__v1__predict_batch_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	        NULL) != PSF_OK)
		return -1;
	ok = r->n_results == N_SYMBOLS && r->results[N_SYMBOLS - 1]->status == 0;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ok ? 0 : -1;
}

static void *
worker_main(void *arg)
{
	worker_arg *a = arg;

	for (uint32_t i = 0; i < a->calls && !a->failed; i++) {
		uint64_t t0 = psf_now_ns();
		int rc = a->k == K_RAW                   ? raw_call(a)
		    : (a->k == K_DIRECT || a->k == K_GW) ? predict_call(a, i)
		                                         : batch_call(a);
		a->lat_us[i] = (double)(psf_now_ns() - t0) / 1e3;
		a->failed = rc != 0;
	}
	return NULL;
}

/* run_case runs calls split over the case's threads; returns calls per second,
 * appends latencies to lat (advancing *n_lat). */
static double
run_case(env *e, const bench_case *bc, uint32_t calls, double *lat, size_t *n_lat)
{
	pthread_t th[MAX_THREADS];
	worker_arg a[MAX_THREADS];
	uint32_t per = calls / (uint32_t)bc->threads;
	uint64_t t0;

	for (int t = 0; t < bc->threads; t++) {
		a[t] = (worker_arg){e, bc->k, t, per, lat + *n_lat + (size_t)t * per, 0,
		    {.aio = NULL}};
		if (bc->k == K_RAW &&
		    psf_bench_raw_client_init(&a[t].raw, e->raw_sock, true, 10000) != PSF_OK) {
			fprintf(stderr, "predict_bench: raw client setup failed\n");
			exit(1);
		}
	}
	t0 = psf_now_ns();
	for (int t = 0; t < bc->threads; t++)
		pthread_create(&th[t], NULL, worker_main, &a[t]);
	for (int t = 0; t < bc->threads; t++)
		pthread_join(th[t], NULL);
	double secs = (double)(psf_now_ns() - t0) / 1e9;
	for (int t = 0; t < bc->threads; t++) {
		if (a[t].failed) {
			fprintf(stderr, "predict_bench: %s: a call failed\n", bc->name);
			exit(1);
		}
		psf_bench_raw_client_fini(&a[t].raw);
	}
	*n_lat += (size_t)per * (size_t)bc->threads;
	return (double)(per * (uint32_t)bc->threads) / secs;
}

static int
cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static double
pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(double), cmp_double);
	return n == 0 ? 0 : v[(size_t)(p * (double)(n - 1))];
}

/* ---------------------------------------------------------------- fleet */

typedef struct fleet {
	char dir[64];
	psf_config *cfg;
	psf_ps *ps;
	psf_inferer *inf;
	psf_gateway *gw;
} fleet;

/* share_stats does the trainers' start-up Reduce of the standardisation
 * statistics (every symbol's train rows), which the inferer takes from the ps. */
static int
share_stats(const psf_config *cfg, const char *ps_url)
{
	size_t n = psf_features_stats_len(cfg->n_features), n_dates;
	double *stats = calloc(n, sizeof(double));
	psf_ps_client_opts wo = {.ps_urls = &ps_url, .retry_ms = 5000};
	psf_dataset *ds = NULL;
	psf_data_index *idx = NULL;
	psf_table *t = NULL;
	psf_model *m = NULL;
	psf_ps_client *w = NULL;
	const int32_t *dates;
	int32_t cutoff;
	int rc = -1;

	if (stats == NULL || psf_data_load(cfg->data.path, NULL, NULL, 0, &ds) != PSF_OK ||
	    psf_data_index_from(ds, &idx) != PSF_OK)
		goto out;
	dates = psf_data_index_dates(idx, &n_dates);
	if (psf_data_cutoff_date(dates, n_dates, cfg->data.test_fraction, &cutoff) != PSF_OK ||
	    psf_features_build(ds, cfg->features, cfg->n_features, cfg->target, cutoff, NULL, 0,
	        &t) != PSF_OK)
		goto out;
	psf_features_stats(t, stats);
	if (psf_model_new(&cfg->model, (uint32_t)cfg->n_features, cfg->target, cfg->seed, &m) !=
	        PSF_OK ||
	    psf_ps_client_open(cfg, m, "trainer-0", &wo, &w) != PSF_OK ||
	    psf_ps_client_reduce(w, PSF_REDUCE_FEATURE_STATS, 1, stats, n) != PSF_OK)
		goto out;
	rc = 0;
out:
	psf_ps_client_close(w);
	psf_model_free(m);
	psf_table_free(t);
	psf_data_index_free(idx);
	psf_dataset_free(ds);
	free(stats);
	return rc;
}

static int
fleet_start(fleet *f)
{
	char text[2048], err[256], path[128];
	psf_datagen_cfg gen = {.symbols = N_SYMBOLS, .days = 60, .seed = 11};
	psf_ps_opts po = {false, "tcp://127.0.0.1:0", "", NULL};
	const char *ps_url, *inf_url;
	uint64_t v;

	snprintf(f->dir, sizeof(f->dir), "/tmp/psf-pbench-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/data.csv", f->dir);
	if (psf_datagen_write(&gen, path, err, sizeof(err)) != PSF_OK)
		return -1;
	snprintf(text, sizeof(text),
	    "name: bench\nrun_dir: %s\nnodes:\n"
	    "  ps: [{id: ps0, listen: \"tcp://127.0.0.1:0\"}]\n"
	    "  trainers: [{id: trainer-0}]\n"
	    "  inferers: [{id: inferer-0, listen: \"tcp://127.0.0.1:0\", shard: 0}]\n"
	    "  gateway: {id: gateway, listen: \"tcp://127.0.0.1:0\"}\n"
	    "data: {path: %s}\n"
	    "features: [\"return:1\", \"return:2\", \"return:5\", \"ratio_sma:5\", \"ratio_sma:20\", "
	    "\"range\", \"dow\"]\n"
	    "target: next_return\nmodel: {kind: linear}\n"
	    "durability: {mode: none, map_size: 67108864}\n"
	    "limits: {rpc_workers: 64}\n"
	    "inference: {refresh_ms: 1000, history_days: 32, shards: 1}\n"
	    "gateway_options: {route: symbol, health_interval_ms: 200}\n",
	    f->dir, path);
	if (psf_config_parse("bench.yaml", text, strlen(text), err, sizeof(err), &f->cfg) !=
	    PSF_OK) {
		fprintf(stderr, "predict_bench: config: %s\n", err);
		return -1;
	}
	if (psf_ps_new(f->cfg, &f->cfg->nodes[0], &po, &f->ps) != PSF_OK)
		return -1;
	ps_url = psf_ps_url(f->ps);
	if (share_stats(f->cfg, ps_url) != 0)
		return -1;
	{
		psf_inferer_opts io = {&ps_url, "tcp://127.0.0.1:0", "", 0};
		if (psf_inferer_new(f->cfg, psf_config_role_node(f->cfg, PSF_ROLE_INFERER, 0), &io,
		        &f->inf) != PSF_OK ||
		    psf_inferer_refresh(f->inf, &v) != PSF_OK)
			return -1;
	}
	inf_url = psf_inferer_url(f->inf);
	{
		psf_gateway_opts go = {&inf_url, "tcp://127.0.0.1:0", "", 0};
		if (psf_gateway_new(f->cfg, &f->cfg->nodes[f->cfg->n_nodes - 1], &go, &f->gw) !=
		    PSF_OK)
			return -1;
	}
	for (int i = 0; i < 500 && psf_gateway_healthy(f->gw) == 0; i++)
		psf_sleep_ms(10);
	return psf_gateway_healthy(f->gw) == 1 ? 0 : -1;
}

static void
fleet_stop(fleet *f)
{
	psf_gateway_free(f->gw);
	psf_inferer_free(f->inf);
	psf_ps_free(f->ps);
	if (psf_rm_rf(f->dir) != PSF_OK)
		fprintf(stderr, "predict_bench: cannot remove %s\n", f->dir);
	psf_config_free(f->cfg);
}

/* ---------------------------------------------------------------- main */

int
main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	/* --only NAME runs one case (for profiling); ratios need the raw cases. */
	const char *only =
	    argc > 2 && strcmp(argv[argc - 2], "--only") == 0 ? argv[argc - 1] : NULL;
	int reps = quick ? 3 : 9;
	uint32_t calls = quick ? 400 : 4000, batch_calls = quick ? 20 : 200;
	static double rate[N_CASES][MAX_REPS];
	double *lat[N_CASES];
	size_t n_lat[N_CASES] = {0};
	static Psfleet__V1__PredictRequest items[N_SYMBOLS];
	static Psfleet__V1__PredictRequest *itemp[N_SYMBOLS];
	static env e;
	fleet f;

	psf_log_setup(PSF_LOG_WARN, "bench");
	openblas_set_num_threads(1);
	memset(&f, 0, sizeof(f));
	memset(e.raw_src, 'x', sizeof(e.raw_src));
	if (psf_bench_raw_server_open("tcp://127.0.0.1:0", e.raw_src, sizeof(e.raw_src), 0,
	        &e.raw) != PSF_OK ||
	    psf_bench_raw_dial(psf_bench_raw_server_url(e.raw), NULL, &e.raw_sock) != PSF_OK ||
	    fleet_start(&f) != 0) {
		fprintf(stderr, "predict_bench: setup failed\n");
		return 1;
	}
	if (psf_rpc_client_open(psf_inferer_url(f.inf), NULL, &e.direct) != PSF_OK ||
	    psf_rpc_client_open(psf_gateway_url(f.gw), NULL, &e.gw) != PSF_OK)
		return 1;
	psfleet__v1__predict_batch_request__init(&e.batch);
	for (int i = 0; i < N_SYMBOLS; i++) {
		snprintf(e.symbols[i], sizeof(e.symbols[i]), "S%04d", i);
		psfleet__v1__predict_request__init(&items[i]);
		items[i].symbol = e.symbols[i];
		itemp[i] = &items[i];
	}
	e.batch.n_items = N_SYMBOLS;
	e.batch.items = itemp;
	for (size_t c = 0; c < N_CASES; c++)
		lat[c] = calloc((size_t)reps * calls, sizeof(double));
	for (size_t c = 0; c < N_CASES; c++) /* warm up connections, pools, caches */
		(void)run_case(&e, &cases[c], 40, lat[c], &n_lat[c]);
	memset(n_lat, 0, sizeof(n_lat));
	for (int r = 0; r < reps; r++)
		for (size_t k = 0; k < N_CASES; k++) {
			size_t c = (k + (size_t)r) % N_CASES; /* rotate the order */
			bool batch = cases[c].k == K_BATCH_DIRECT || cases[c].k == K_BATCH_GW;
			if (only != NULL && strcmp(only, cases[c].name) != 0 &&
			    cases[c].k != K_RAW) { /* raw kept: the ratios divide by it */
				rate[c][r] = 1;
				continue;
			}
			rate[c][r] =
			    run_case(&e, &cases[c], batch ? batch_calls : calls, lat[c], &n_lat[c]);
		}

	for (size_t c = 0; c < N_CASES; c++) {
		double med[MAX_REPS];
		bool batch = cases[c].k == K_BATCH_DIRECT || cases[c].k == K_BATCH_GW;
		memcpy(med, rate[c], sizeof(double) * (size_t)reps);
		printf("%s %.1f %s\n", cases[c].name, pct(med, (size_t)reps, 0.5),
		    batch                     ? "batches/s"
		        : cases[c].k == K_RAW ? "rt/s"
		                              : "calls/s");
		printf("%s_p50 %.1f us\n", cases[c].name, pct(lat[c], n_lat[c], 0.5));
		printf("%s_p99 %.1f us\n", cases[c].name, pct(lat[c], n_lat[c], 0.99));
	}
	/* ratios: per repetition against raw of the same thread count */
	for (size_t c = 0; c < N_CASES; c++) {
		double rat[MAX_REPS];
		size_t raw = cases[c].threads == 1 ? 0 : 3;
		if (cases[c].k != K_DIRECT && cases[c].k != K_GW)
			continue;
		for (int r = 0; r < reps; r++)
			rat[r] = rate[c][r] / rate[raw][r];
		printf("ratio_%s_vs_raw %.3f\n", cases[c].name, pct(rat, (size_t)reps, 0.5));
	}
	{
		double p50 = 0;
		size_t n = n_lat[6];
		p50 = pct(lat[6], n, 0.5);
		printf("ratio_batch1000_direct_p50_vs_1ms %.3f\n", p50 / 1000.0);
	}
	for (size_t c = 0; c < N_CASES; c++)
		free(lat[c]);
	psf_rpc_client_close(e.direct);
	psf_rpc_client_close(e.gw);
	fleet_stop(&f);
	nng_close(e.raw_sock);
	psf_bench_raw_server_free(e.raw);
	return 0;
}
