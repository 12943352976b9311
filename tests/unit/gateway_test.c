/* Gateway: two ps nodes, three inferers (shard 0 twice, shard 1 once) and the
 * gateway in this process, on real NNG sockets on 127.0.0.1 port 0. Replicas are
 * killed by freeing them while the gateway keeps serving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>

#include "gateway/gateway.h"
#include "inferer/inferer.h"
#include "lib/base/shard.h"
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

#define N_SYMBOLS 16
#define N_INF 3

typedef struct fleet {
	char dir[64];
	psf_config *cfg;
	psf_ps *ps[2];
	const char *ps_urls[2];
	psf_inferer *inf[N_INF];
	const char *inf_urls[N_INF];
	psf_gateway *gw;
	psf_rpc_client *c; /* to the gateway */
	char symbols[N_SYMBOLS][8];
} fleet;

/* live is the fleet a test started and has not stopped: a failing test jumps out
 * without stopping it, so teardown does (each test's fleet is static, so it
 * outlives the jump). Left running, its servers hung the next test. */
static fleet *live;

static void fleet_stop(fleet *f);

static int
teardown(void **state)
{
	(void)state;
	if (live != NULL)
		fleet_stop(live);
	return 0;
}

/* share_stats gives the ps the statistics of every symbol's train rows, as the
 * trainers' start-up Reduce does: the inferers take them with the model. */
static void
share_stats(const psf_config *cfg, const char *path, psf_ps_client *w)
{
	psf_dataset *ds = NULL;
	psf_data_index *idx = NULL;
	psf_table *t = NULL;
	const int32_t *dates;
	size_t n_dates, n = psf_features_stats_len(cfg->n_features);
	int32_t cutoff;
	double *stats = calloc(n, sizeof(double));

	assert_non_null(stats);
	assert_int_equal(psf_data_load(path, NULL, NULL, 0, &ds), PSF_OK);
	assert_int_equal(psf_data_index_from(ds, &idx), PSF_OK);
	dates = psf_data_index_dates(idx, &n_dates);
	assert_int_equal(psf_data_cutoff_date(dates, n_dates, cfg->data.test_fraction, &cutoff),
	    PSF_OK);
	assert_int_equal(psf_features_build(ds, cfg->features, cfg->n_features, cfg->target, cutoff,
	                     NULL, 0, &t),
	    PSF_OK);
	psf_features_stats(t, stats);
	assert_int_equal(psf_ps_client_reduce(w, PSF_REDUCE_FEATURE_STATS, 1, stats, n), PSF_OK);
	psf_table_free(t);
	psf_data_index_free(idx);
	psf_dataset_free(ds);
	free(stats);
}

static void
fleet_start(fleet *f, const char *route, uint32_t shards)
{
	char text[4096], err[512], path[128];
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};
	psf_datagen_cfg gen = {.symbols = N_SYMBOLS, .days = 60, .seed = 5};
	psf_gateway_opts go;
	psf_model *model;
	psf_ps_client *w;
	psf_ps_client_opts wo;
	psf_params *g;
	uint64_t keys[64];
	uint32_t lens[64];
	size_t n;
	float v[64];

	memset(f, 0, sizeof(*f));
	live = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/psf-gw-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/data.csv", f->dir);
	assert_int_equal(psf_datagen_write(&gen, path, NULL, 0), PSF_OK);
	snprintf(text, sizeof(text),
	    "name: t\nseed: 7\nrun_dir: %s\n"
	    "nodes:\n"
	    "  ps:\n"
	    "    - {id: ps0, listen: \"tcp://127.0.0.1:0\"}\n"
	    "    - {id: ps1, listen: \"tcp://127.0.0.1:0\"}\n"
	    "  trainers:\n    - {id: trainer-0}\n"
	    "  inferers:\n"
	    "    - {id: inferer-0, listen: \"tcp://127.0.0.1:0\", shard: 0}\n"
	    "    - {id: inferer-1, listen: \"tcp://127.0.0.1:0\", shard: %u}\n"
	    "    - {id: inferer-2, listen: \"tcp://127.0.0.1:0\", shard: 0}\n"
	    "  gateway: {id: gateway, listen: \"tcp://127.0.0.1:0\"}\n"
	    "data: {path: %s}\n"
	    "features: [\"return:1\", \"ratio_sma:5\", \"range\"]\n"
	    "target: next_return\n"
	    "model: {kind: linear, symbol_bias: true, chunk_floats: 1}\n"
	    "optimizer: {kind: sgd, learning_rate: 0.1}\n"
	    "consistency: {mode: async}\n"
	    "durability: {mode: none, map_size: 67108864}\n"
	    "limits: {request_timeout_ms: 5000, rpc_workers: 8}\n"
	    "inference: {refresh_ms: 50, history_days: 20, shards: %u}\n"
	    "gateway_options: {route: %s, health_interval_ms: 50}\n",
	    f->dir, shards - 1, path, shards, route);
	if (psf_config_parse("test.yaml", text, strlen(text), err, sizeof(err), &f->cfg) != PSF_OK)
		fail_msg("config: %s", err);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(psf_ps_new(f->cfg, &f->cfg->nodes[i], &opts, &f->ps[i]), PSF_OK);
		f->ps_urls[i] = psf_ps_url(f->ps[i]);
	}
	/* one push so the model is not at its initial values */
	assert_int_equal(psf_model_new(&f->cfg->model, (uint32_t)f->cfg->n_features, f->cfg->target,
	                     f->cfg->seed, &model),
	    PSF_OK);
	wo = (psf_ps_client_opts){.ps_urls = f->ps_urls, .retry_ms = 5000};
	assert_int_equal(psf_ps_client_open(f->cfg, model, "trainer-0", &wo, &w), PSF_OK);
	assert_int_equal(psf_model_dense_keys(model, keys, lens, 64, &n), PSF_OK);
	assert_int_equal(psf_params_new(model, &g), PSF_OK);
	for (size_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < lens[i]; j++)
			v[j] = 0.1f * (float)(j + 1);
		assert_int_equal(psf_params_set_key(g, keys[i], v, lens[i]), PSF_OK);
	}
	assert_int_equal(psf_ps_client_push(w, 0, g, keys, n, 1, 0.0, NULL), PSF_OK);
	share_stats(f->cfg, path, w);
	psf_params_free(g);
	psf_ps_client_close(w);
	psf_model_free(model);

	for (int i = 0; i < N_INF; i++) {
		psf_inferer_opts o = {f->ps_urls, "tcp://127.0.0.1:0", "", 0};
		uint64_t ver;
		assert_int_equal(psf_inferer_new(f->cfg,
		                     psf_config_role_node(f->cfg, PSF_ROLE_INFERER, (size_t)i), &o,
		                     &f->inf[i]),
		    PSF_OK);
		assert_int_equal(psf_inferer_refresh(f->inf[i], &ver), PSF_OK);
		f->inf_urls[i] = psf_inferer_url(f->inf[i]);
	}
	go = (psf_gateway_opts){f->inf_urls, "tcp://127.0.0.1:0", "", 0};
	assert_int_equal(psf_gateway_new(f->cfg, &f->cfg->nodes[f->cfg->n_nodes - 1], &go, &f->gw),
	    PSF_OK);
	for (int i = 0; i < 200 && psf_gateway_healthy(f->gw) < N_INF; i++)
		psf_sleep_ms(10);
	assert_int_equal(psf_gateway_healthy(f->gw), N_INF);
	assert_int_equal(psf_rpc_client_open(psf_gateway_url(f->gw), NULL, &f->c), PSF_OK);
	for (int i = 0; i < N_SYMBOLS; i++)
		snprintf(f->symbols[i], sizeof(f->symbols[i]), "S%04d", i);
}

static void
fleet_stop(fleet *f)
{
	live = NULL;
	psf_rpc_client_close(f->c);
	psf_gateway_free(f->gw);
	for (int i = 0; i < N_INF; i++)
		psf_inferer_free(f->inf[i]);
	for (int i = 0; i < 2; i++)
		psf_ps_free(f->ps[i]);
	assert_int_equal(psf_rm_rf(f->dir), PSF_OK);
	psf_config_free(f->cfg);
}

static psf_status
predict_on(psf_rpc_client *c, const char *symbol, double *pred, char *msg)
{
	Psfleet__V1__PredictRequest req = PSFLEET__V1__PREDICT_REQUEST__INIT;
	Psfleet__V1__PredictReply *r = NULL;
	psf_rpc_status st;

	req.symbol = (char *)symbol;
	if (psf_rpc_client_call(c, PSF_M_PREDICT, &req.base,
	        &psfleet__v1__predict_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	        &st) == PSF_OK) {
		if (pred != NULL)
			*pred = r->prediction;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	if (msg != NULL)
		snprintf(msg, 256, "%s", st.message);
	return st.code;
}

/* Routing by symbol: every symbol is answered through the gateway, with the
 * prediction its shard's inferer gives directly; an inferer of the other shard
 * does not know it, so the gateway routed by the same function. */
static void
test_gateway_routes_by_symbol_shard(void **state)
{
	static fleet f;
	psf_rpc_client *direct[N_INF];
	char msg[256];

	(void)state;
	fleet_start(&f, "symbol", 2);
	for (int i = 0; i < N_INF; i++)
		assert_int_equal(psf_rpc_client_open(f.inf_urls[i], NULL, &direct[i]), PSF_OK);
	for (int s = 0; s < N_SYMBOLS; s++) {
		const char *sym = f.symbols[s];
		uint32_t shard = psf_inference_shard_of(sym, 2);
		double via = 0, want = 0;
		for (int rep = 0; rep < 4; rep++) { /* stable: every replica, every time */
			assert_int_equal(predict_on(f.c, sym, &via, msg), PSF_STATUS_OK);
			assert_int_equal(predict_on(direct[shard == 0 ? 0 : 1], sym, &want, msg),
			    PSF_STATUS_OK);
			assert_true(via == want);
		}
		assert_int_equal(predict_on(direct[shard == 0 ? 1 : 0], sym, NULL, msg),
		    PSF_STATUS_NOT_FOUND);
	}
	/* the inferer's errors come back unchanged */
	assert_int_equal(predict_on(f.c, "NOPE", NULL, msg), PSF_STATUS_NOT_FOUND);
	assert_non_null(strstr(msg, "unknown symbol"));
	/* a batch over both shards comes back in the request's order */
	{
		Psfleet__V1__PredictRequest it[N_SYMBOLS + 1], *itp[N_SYMBOLS + 1];
		Psfleet__V1__PredictBatchRequest req = PSFLEET__V1__PREDICT_BATCH_REQUEST__INIT;
		Psfleet__V1__PredictBatchReply *r = NULL;
		for (int i = 0; i <= N_SYMBOLS; i++) {
			psfleet__v1__predict_request__init(&it[i]);
			it[i].symbol = i == 5 ? "NOPE" : f.symbols[i < 5 ? i : i - 1];
			itp[i] = &it[i];
		}
		req.n_items = N_SYMBOLS + 1;
		req.items = itp;
		assert_int_equal(psf_rpc_client_call(f.c, PSF_M_PREDICT_BATCH, &req.base,
		                     &psfleet__v1__predict_batch_reply__descriptor, NULL,
		                     (ProtobufCMessage **)&r, NULL),
		    PSF_OK);
		assert_int_equal(r->n_results, N_SYMBOLS + 1);
		for (int i = 0; i <= N_SYMBOLS; i++) {
			if (i == 5) {
				assert_int_equal(r->results[i]->status, PSF_STATUS_NOT_FOUND);
				continue;
			}
			assert_int_equal(r->results[i]->status, PSF_STATUS_OK);
			assert_string_equal(r->results[i]->reply->symbol, it[i].symbol);
		}
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	for (int i = 0; i < N_INF; i++)
		psf_rpc_client_close(direct[i]);
	fleet_stop(&f);
}

/* Kill one of shard 0's two replicas: requests keep succeeding through the
 * other. Kill the second: UNAVAILABLE at once (well within the deadline) for
 * shard 0, while shard 1 still answers, also inside one batch. */
static void
test_gateway_failover_and_unavailable(void **state)
{
	static fleet f;
	const char *s0 = NULL, *s1 = NULL;
	char msg[256];
	uint64_t t0;

	(void)state;
	fleet_start(&f, "symbol", 2);
	for (int s = 0; s < N_SYMBOLS; s++) {
		if (psf_inference_shard_of(f.symbols[s], 2) == 0 && s0 == NULL)
			s0 = f.symbols[s];
		if (psf_inference_shard_of(f.symbols[s], 2) == 1 && s1 == NULL)
			s1 = f.symbols[s];
	}
	psf_inferer_free(f.inf[2]);
	f.inf[2] = NULL;
	for (int i = 0; i < 200; i++)
		if (predict_on(f.c, s0, NULL, msg) != PSF_STATUS_OK)
			fail_msg("request %d after one replica died: %s", i, msg);
	for (int i = 0; i < 200 && psf_gateway_healthy(f.gw) != 2; i++)
		psf_sleep_ms(10);
	assert_int_equal(psf_gateway_healthy(f.gw), 2);

	psf_inferer_free(f.inf[0]);
	f.inf[0] = NULL;
	for (int i = 0; i < 200 && psf_gateway_healthy(f.gw) != 1; i++)
		psf_sleep_ms(10);
	t0 = psf_now_ms();
	assert_int_equal(predict_on(f.c, s0, NULL, msg), PSF_STATUS_UNAVAILABLE);
	assert_true(psf_now_ms() - t0 < 1000); /* the call's deadline is 5000 ms */
	assert_non_null(strstr(msg, "shard 0"));
	assert_int_equal(predict_on(f.c, s1, NULL, msg), PSF_STATUS_OK);
	{
		Psfleet__V1__PredictRequest it[2], *itp[2] = {&it[0], &it[1]};
		Psfleet__V1__PredictBatchRequest req = PSFLEET__V1__PREDICT_BATCH_REQUEST__INIT;
		Psfleet__V1__PredictBatchReply *r = NULL;
		psfleet__v1__predict_request__init(&it[0]);
		psfleet__v1__predict_request__init(&it[1]);
		it[0].symbol = (char *)s1;
		it[1].symbol = (char *)s0;
		req.n_items = 2;
		req.items = itp;
		assert_int_equal(psf_rpc_client_call(f.c, PSF_M_PREDICT_BATCH, &req.base,
		                     &psfleet__v1__predict_batch_reply__descriptor, NULL,
		                     (ProtobufCMessage **)&r, NULL),
		    PSF_OK);
		assert_int_equal(r->results[0]->status, PSF_STATUS_OK);
		assert_int_equal(r->results[1]->status, PSF_STATUS_UNAVAILABLE);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	/* the gateway says why it is not ready */
	{
		Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
		Psfleet__V1__HealthReply *h = NULL;
		assert_int_equal(psf_rpc_client_call(f.c, PSF_M_HEALTH, &req.base,
		                     &psfleet__v1__health_reply__descriptor, NULL,
		                     (ProtobufCMessage **)&h, NULL),
		    PSF_OK);
		assert_false(h->ready);
		assert_non_null(strstr(h->reason, "shard 0"));
		protobuf_c_message_free_unpacked(&h->base, NULL);
	}
	fleet_stop(&f);
}

/* Round robin with one shard: every inferer serves every symbol. */
static void
test_gateway_round_robin(void **state)
{
	static fleet f;
	char msg[256];

	(void)state;
	fleet_start(&f, "round_robin", 1);
	for (int i = 0; i < 3 * N_SYMBOLS; i++)
		assert_int_equal(predict_on(f.c, f.symbols[i % N_SYMBOLS], NULL, msg),
		    PSF_STATUS_OK);
	psf_inferer_free(f.inf[1]);
	f.inf[1] = NULL;
	for (int i = 0; i < 3 * N_SYMBOLS; i++)
		if (predict_on(f.c, f.symbols[i % N_SYMBOLS], NULL, msg) != PSF_STATUS_OK)
			fail_msg("request %d after a replica died: %s", i, msg);
	fleet_stop(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_gateway_routes_by_symbol_shard, teardown),
	    cmocka_unit_test_teardown(test_gateway_failover_and_unavailable, teardown),
	    cmocka_unit_test_teardown(test_gateway_round_robin, teardown),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	/* NNG releases servers (HTTP ones especially) on its own threads: let them
	 * finish before LeakSanitizer looks at the heap at exit. */
	nng_fini();
	return failed;
}
