/* Inferer: real ps nodes (LMDB in a temp dir) and inferers in this process, real
 * NNG sockets on 127.0.0.1 port 0, generated data written with psf_datagen_write.
 * The model's weights are moved away from their initial values by pushes through
 * trainer/ps_client.h, so a prediction checks the whole path: snapshot pull, key
 * layout, standardisation statistics, feature rows, forward pass. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>

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
#include "trainer/internal.h"
#include "trainer/ps_client.h"

#define N_SYMBOLS 12
#define N_DAYS 120

typedef struct fleet {
	char dir[64];
	psf_config *cfg;
	psf_ps *ps[2];
	const char *ps_urls[2];
	psf_model *model;
	psf_ps_client *w;
	psf_dataset *ds;
	double *stats;
	uint64_t *keys;
	size_t n_keys;
	psf_params *grads;
} fleet;

/* cfg_text writes the fleet's config: an mlp with the given hidden sizes, or,
 * when hidden starts with "kind:", that model. */
static void
cfg_text(char *buf, size_t len, const char *dir, const char *hidden, uint32_t history_days)
{
	char model[256];

	if (strncmp(hidden, "kind:", 5) == 0)
		snprintf(model, sizeof(model), "%s", hidden);
	else
		snprintf(model, sizeof(model), "kind: mlp, hidden: [%s]", hidden);
	snprintf(buf, len,
	    "name: t\nseed: 7\nrun_dir: %s\n"
	    "nodes:\n"
	    "  ps:\n"
	    "    - {id: ps0, listen: \"tcp://127.0.0.1:0\"}\n"
	    "    - {id: ps1, listen: \"tcp://127.0.0.1:0\"}\n"
	    "  trainers:\n    - {id: trainer-0}\n"
	    "  inferers:\n"
	    "    - {id: inferer-0, listen: \"tcp://127.0.0.1:0\", shard: 0}\n"
	    "    - {id: inferer-1, listen: \"tcp://127.0.0.1:0\", shard: 1}\n"
	    "data: {path: %s/data.csv}\n"
	    "features: [\"return:1\", \"return:2\", \"ratio_sma:5\", \"range\", \"dow\", \"ewm:3\"]\n"
	    "target: next_return\n"
	    "model: {%s, embedding_dim: 2, symbol_bias: true, chunk_floats: 4096}\n"
	    "optimizer: {kind: sgd, learning_rate: 0.05}\n"
	    "consistency: {mode: sync, straggler_timeout_ms: 60000}\n"
	    "durability: {mode: none, map_size: 67108864}\n"
	    "limits: {request_timeout_ms: 5000, rpc_workers: 16}\n"
	    "inference: {refresh_ms: 50, history_days: %u, shards: 2}\n",
	    dir, dir, model, history_days);
}

/* share_stats contributes stats to the ps's feature statistics Reduce, as the
 * trainers do at start-up (one trainer: the ps keeps them unchanged). */
static void
share_stats(fleet *f, const double *stats)
{
	size_t n = psf_features_stats_len(f->cfg->n_features);
	double *v = malloc(n * sizeof(double));

	assert_non_null(v);
	memcpy(v, stats, n * sizeof(double));
	assert_int_equal(psf_ps_client_reduce(f->w, PSF_REDUCE_FEATURE_STATS, 1, v, n), PSF_OK);
	assert_memory_equal(v, stats, n * sizeof(double));
	free(v);
}

/* fleet_start_ex: data, config, two ps nodes, a worker and a gradient of every key;
 * with share, the worker also gives the ps the fleet's statistics. */
static void
fleet_start_ex(fleet *f, const char *hidden, uint32_t history_days, bool share)
{
	char text[4096], err[512], path[128];
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};
	psf_datagen_cfg gen = {.symbols = N_SYMBOLS, .days = N_DAYS, .seed = 3};
	psf_ps_client_opts wo;
	uint64_t rows[N_SYMBOLS];
	size_t nd, ns;
	float *ones;
	psf_table *t;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/psf-inf-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/data.csv", f->dir);
	assert_int_equal(psf_datagen_write(&gen, path, NULL, 0), PSF_OK);
	cfg_text(text, sizeof(text), f->dir, hidden, history_days);
	if (psf_config_parse("test.yaml", text, strlen(text), err, sizeof(err), &f->cfg) != PSF_OK)
		fail_msg("config: %s", err);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(psf_ps_new(f->cfg, &f->cfg->nodes[i], &opts, &f->ps[i]), PSF_OK);
		f->ps_urls[i] = psf_ps_url(f->ps[i]);
	}
	assert_int_equal(psf_model_new(&f->cfg->model, (uint32_t)f->cfg->n_features, f->cfg->target,
	                     f->cfg->seed, &f->model),
	    PSF_OK);
	wo = (psf_ps_client_opts){.ps_urls = f->ps_urls, .retry_ms = 5000};
	assert_int_equal(psf_ps_client_open(f->cfg, f->model, "trainer-0", &wo, &f->w), PSF_OK);

	/* the reference: every symbol, statistics of the train rows of all of them */
	assert_int_equal(psf_data_load(path, NULL, NULL, 0, &f->ds), PSF_OK);
	{
		psf_data_index *idx;
		const int32_t *dates;
		size_t n_dates;
		int32_t cutoff;
		assert_int_equal(psf_data_index_from(f->ds, &idx), PSF_OK);
		dates = psf_data_index_dates(idx, &n_dates);
		assert_int_equal(
		    psf_data_cutoff_date(dates, n_dates, f->cfg->data.test_fraction, &cutoff),
		    PSF_OK);
		psf_data_index_free(idx);
		assert_int_equal(psf_features_build(f->ds, f->cfg->features, f->cfg->n_features,
		                     f->cfg->target, cutoff, NULL, 0, &t),
		    PSF_OK);
	}
	f->stats = calloc(psf_features_stats_len(f->cfg->n_features), sizeof(double));
	psf_features_stats(t, f->stats);
	psf_table_free(t);

	/* every dense key and the per-symbol keys of every symbol */
	for (size_t i = 0; i < N_SYMBOLS; i++)
		rows[i] = psf_symbol_row(psf_dataset_series(f->ds, i)->symbol);
	nd = psf_model_n_dense_keys(f->model);
	f->keys = calloc(nd + 2 * N_SYMBOLS, sizeof(uint64_t));
	assert_int_equal(psf_model_dense_keys(f->model, f->keys, NULL, nd, &nd), PSF_OK);
	assert_int_equal(psf_model_symbol_keys(f->model, rows, N_SYMBOLS, f->keys + nd, NULL,
	                     2 * N_SYMBOLS, &ns),
	    PSF_OK);
	f->n_keys = nd + ns;
	assert_int_equal(psf_params_new(f->model, &f->grads), PSF_OK);
	ones = calloc(1 << 20, sizeof(float));
	for (size_t i = 0; i < f->n_keys; i++) {
		uint32_t len = psf_model_key_len(f->model, f->keys[i]);
		for (uint32_t j = 0; j < len; j++)
			ones[j] = (float)(0.01 * (double)((i + j) % 7) - 0.03);
		assert_int_equal(psf_params_set_key(f->grads, f->keys[i], ones, len), PSF_OK);
	}
	free(ones);
	if (share)
		share_stats(f, f->stats);
}

static void
fleet_start(fleet *f, const char *hidden, uint32_t history_days)
{
	fleet_start_ex(f, hidden, history_days, true);
}

static void
fleet_stop(fleet *f)
{
	psf_ps_client_close(f->w);
	for (int i = 0; i < 2; i++)
		psf_ps_free(f->ps[i]);
	psf_params_free(f->grads);
	psf_model_free(f->model);
	psf_dataset_free(f->ds);
	free(f->stats);
	free(f->keys);
	assert_int_equal(psf_rm_rf(f->dir), PSF_OK);
	psf_config_free(f->cfg);
}

/* push applies one gradient step (sync: one round on both shards). */
static void
push(fleet *f)
{
	int64_t c = psf_ps_client_clock(f->w);

	assert_int_equal(psf_ps_client_push(f->w, c, f->grads, f->keys, f->n_keys, 1, 0.0, NULL),
	    PSF_OK);
}

static psf_inferer *
inferer(fleet *f, size_t index)
{
	psf_inferer_opts o = {f->ps_urls, "tcp://127.0.0.1:0", "", 0};
	const psf_node_cfg *node = psf_config_role_node(f->cfg, PSF_ROLE_INFERER, index);
	psf_inferer *inf = NULL;

	assert_int_equal(psf_inferer_new(f->cfg, node, &o, &inf), PSF_OK);
	return inf;
}

/* symbol_of_shard returns the k-th symbol (S0000...) of an inference shard. */
static const char *
symbol_of_shard(fleet *f, uint32_t shard, int k)
{
	for (size_t i = 0; i < psf_dataset_n_series(f->ds); i++) {
		const char *s = psf_dataset_series(f->ds, i)->symbol;
		if (psf_inference_shard_of(s, 2) == shard && k-- == 0)
			return s;
	}
	fail_msg("no symbol %d in shard %u", k, shard);
	return NULL;
}

/* expected computes the prediction the reference way: psf_features_row on the
 * full series (plus an extra bar), the fleet statistics, weights pulled from the
 * ps, psf_model_forward on one row. */
static double
expected(fleet *f, const char *symbol, int32_t date, const Psfleet__V1__Bar *extra)
{
	const psf_series *s = psf_dataset_find(f->ds, symbol);
	psf_series ext = *s;
	size_t nf = f->cfg->n_features, nk;
	uint64_t row = psf_symbol_row(symbol), keys[4096];
	float x[16], z;
	psf_params *p;
	psf_model_ws *ws;
	double *cols = NULL;
	int32_t *dates = NULL;

	if (extra != NULL) { /* the series with one more bar */
		size_t n = s->n + 1;
		const double *src[5] = {s->close, s->open, s->high, s->low, s->volume};
		double add[5] = {extra->close, extra->open, extra->high, extra->low, extra->volume};
		cols = calloc(5 * n, sizeof(double));
		dates = calloc(n, sizeof(int32_t));
		memcpy(dates, s->date, s->n * sizeof(int32_t));
		assert_int_equal(psf_date_parse(extra->date, 10, &dates[s->n]), PSF_OK);
		for (int k = 0; k < 5; k++) {
			memcpy(cols + k * n, src[k], s->n * sizeof(double));
			cols[k * n + s->n] = add[k];
		}
		ext = (psf_series){symbol, n, dates, cols, cols + n, cols + 2 * n, cols + 3 * n,
		    cols + 4 * n};
	}
	assert_int_equal(psf_features_row(&ext, f->cfg->features, nf, date, x, 16, NULL), PSF_OK);
	psf_features_standardize_row(x, nf, f->stats);
	assert_int_equal(psf_model_dense_keys(f->model, keys, NULL, 4096, &nk), PSF_OK);
	{
		size_t ns;
		assert_int_equal(
		    psf_model_symbol_keys(f->model, &row, 1, keys + nk, NULL, 4096 - nk, &ns),
		    PSF_OK);
		nk += ns;
	}
	assert_int_equal(psf_params_new(f->model, &p), PSF_OK);
	assert_int_equal(psf_ps_client_pull(f->w, psf_ps_client_clock(f->w), keys, nk, p, NULL),
	    PSF_OK);
	assert_int_equal(psf_model_ws_new(f->model, 1, &ws), PSF_OK);
	assert_int_equal(psf_model_forward(f->model, ws, p, x, &row, 1, &z), PSF_OK);
	psf_model_ws_free(ws);
	psf_params_free(p);
	free(cols);
	free(dates);
	return psf_features_unstandardize_target(z, nf, f->cfg->target, f->stats);
}

/* predict calls Predict; returns the status, *out gets the reply (caller frees),
 * or NULL when the call failed: always written, so callers never read an
 * uninitialised pointer (and -O3 can prove it). */
static psf_status
predict(psf_rpc_client *c, const char *symbol, const char *as_of, Psfleet__V1__Bar *bar,
    Psfleet__V1__PredictReply **out, char *msg)
{
	Psfleet__V1__PredictRequest req = PSFLEET__V1__PREDICT_REQUEST__INIT;
	Psfleet__V1__PredictReply *r = NULL;
	psf_rpc_status st;

	if (out != NULL)
		*out = NULL;
	req.symbol = (char *)symbol;
	req.as_of = (char *)(as_of != NULL ? as_of : "");
	if (bar != NULL) {
		req.n_recent = 1;
		req.recent = &bar;
	}
	if (psf_rpc_client_call(c, PSF_M_PREDICT, &req.base,
	        &psfleet__v1__predict_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	        &st) == PSF_OK) {
		if (out != NULL)
			*out = r;
		else
			protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	if (msg != NULL)
		snprintf(msg, 256, "%s", st.message);
	return st.code;
}

static void
assert_close(double got, double want)
{
	double tol = 1e-6 * (fabs(want) > 1 ? fabs(want) : 1);

	if (fabs(got - want) > tol)
		fail_msg("got %.12g, want %.12g", got, want);
}

static const char *
date_of(fleet *f, const char *symbol, size_t back, char buf[11])
{
	const psf_series *s = psf_dataset_find(f->ds, symbol);

	psf_date_format(s->date[s->n - 1 - back], buf);
	return buf;
}

/* (1) The served prediction equals psf_model_forward on the same weights and
 * features: at the latest date, at an earlier as_of, and with a caller's bar. */
static void
test_inferer_prediction_matches_forward(void **state)
{
	fleet f;
	psf_inferer *inf;
	psf_rpc_client *c;
	Psfleet__V1__PredictReply *r;
	Psfleet__V1__Bar bar = PSFLEET__V1__BAR__INIT;
	uint64_t v;
	char day[11], msg[256];

	(void)state;
	fleet_start(&f, "8", 400);
	for (int i = 0; i < 3; i++)
		push(&f);
	inf = inferer(&f, 0);
	assert_int_equal(psf_inferer_refresh(inf, &v), PSF_OK);
	assert_int_equal(v, 3);
	assert_int_equal(psf_rpc_client_open(psf_inferer_url(inf), NULL, &c), PSF_OK);
	for (int k = 0; k < 3; k++) {
		const char *sym = symbol_of_shard(&f, 0, k);
		const psf_series *s = psf_dataset_find(f.ds, sym);

		assert_int_equal(predict(c, sym, NULL, NULL, &r, msg), PSF_STATUS_OK);
		assert_close(r->prediction, expected(&f, sym, PSF_DATE_LAST, NULL));
		assert_string_equal(r->symbol, sym);
		assert_string_equal(r->target, "next_return");
		assert_int_equal(r->model_version, 3);
		assert_string_equal(r->as_of, date_of(&f, sym, 0, day));
		assert_close(r->last_close, s->close[s->n - 1]);
		assert_close(r->predicted_close, s->close[s->n - 1] * (1 + r->prediction));
		protobuf_c_message_free_unpacked(&r->base, NULL);

		/* an earlier as_of: the row of that date, computed on demand */
		date_of(&f, sym, 10, day);
		assert_int_equal(predict(c, sym, day, NULL, &r, msg), PSF_STATUS_OK);
		assert_string_equal(r->as_of, day);
		assert_close(r->prediction, expected(&f, sym, s->date[s->n - 11], NULL));
		assert_close(r->last_close, s->close[s->n - 11]);
		protobuf_c_message_free_unpacked(&r->base, NULL);

		/* a bar the inferer has not seen, after its last date */
		bar.date = "2025-01-02";
		bar.close = s->close[s->n - 1] * 1.01;
		bar.open = s->close[s->n - 1];
		bar.high = bar.close * 1.02;
		bar.low = bar.open * 0.98;
		bar.volume = 12345;
		assert_int_equal(predict(c, sym, NULL, &bar, &r, msg), PSF_STATUS_OK);
		assert_string_equal(r->as_of, "2025-01-02");
		assert_close(r->prediction, expected(&f, sym, PSF_DATE_LAST, &bar));
		assert_close(r->last_close, bar.close);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	/* a new version is picked up by an on-demand refresh, and served */
	push(&f);
	assert_int_equal(psf_inferer_refresh(inf, &v), PSF_OK);
	assert_int_equal(v, 4);
	assert_int_equal(predict(c, symbol_of_shard(&f, 0, 0), NULL, NULL, &r, msg), PSF_STATUS_OK);
	assert_int_equal(r->model_version, 4);
	assert_close(r->prediction, expected(&f, symbol_of_shard(&f, 0, 0), PSF_DATE_LAST, NULL));
	protobuf_c_message_free_unpacked(&r->base, NULL);
	psf_rpc_client_close(c);
	psf_inferer_free(inf);
	fleet_stop(&f);
}

/* (4) Errors: unknown symbol, another shard's symbol, too little history, bad
 * as_of and bars, malformed payload, per-item statuses in a batch, ModelInfo. */
static void
test_inferer_errors_and_batch(void **state)
{
	fleet f;
	psf_inferer *inf;
	psf_rpc_client *c;
	psf_rpc_pending *p;
	psf_rpc_status st;
	Psfleet__V1__Bar bar = PSFLEET__V1__BAR__INIT;
	const char *mine = NULL, *other = NULL;
	char day[11], msg[256];
	uint64_t v;

	(void)state;
	fleet_start(&f, "4", 30);
	push(&f);
	{ /* a trainer's test report: ModelInfo sums them (one here) */
		Psfleet__V1__MetricsReport rep = PSFLEET__V1__METRICS_REPORT__INIT;
		rep.test_sse = 9;
		rep.test_sae = 3;
		rep.naive_sse = 16;
		rep.test_n = 1;
		assert_int_equal(psf_ps_client_report(f.w, &rep), PSF_OK);
	}
	inf = inferer(&f, 0);
	assert_int_equal(psf_inferer_refresh(inf, &v), PSF_OK);
	assert_int_equal(psf_rpc_client_open(psf_inferer_url(inf), NULL, &c), PSF_OK);
	mine = symbol_of_shard(&f, 0, 0);
	other = symbol_of_shard(&f, 1, 0);

	assert_int_equal(predict(c, "NOPE", NULL, NULL, NULL, msg), PSF_STATUS_NOT_FOUND);
	assert_non_null(strstr(msg, "unknown symbol"));
	assert_int_equal(predict(c, other, NULL, NULL, NULL, msg), PSF_STATUS_NOT_FOUND);
	assert_non_null(strstr(msg, "shard 1"));
	assert_int_equal(predict(c, "", NULL, NULL, NULL, msg), PSF_STATUS_INVALID_ARGUMENT);
	assert_int_equal(predict(c, mine, "2024-13-01", NULL, NULL, msg),
	    PSF_STATUS_INVALID_ARGUMENT);
	/* history_days 30: 27 rows back is inside the kept window but has too little
	 * history before it (the features need 4 rows); 40 rows back is before it */
	assert_int_equal(predict(c, mine, date_of(&f, mine, 27, day), NULL, NULL, msg),
	    PSF_STATUS_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "not enough history"));
	assert_int_equal(predict(c, mine, date_of(&f, mine, 40, day), NULL, NULL, msg),
	    PSF_STATUS_FAILED_PRECONDITION);
	assert_int_equal(predict(c, mine, "1990-01-01", NULL, NULL, msg),
	    PSF_STATUS_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "no data"));
	/* as_of after the last date is the latest row */
	assert_int_equal(predict(c, mine, "2030-01-01", NULL, NULL, msg), PSF_STATUS_OK);
	/* bad bars: not after the stored ones is fine (they replace), bad close is not */
	bar.date = "2025-01-02";
	bar.close = -1;
	assert_int_equal(predict(c, mine, NULL, &bar, NULL, msg), PSF_STATUS_INVALID_ARGUMENT);
	bar.date = "yesterday";
	bar.close = 10;
	assert_int_equal(predict(c, mine, NULL, &bar, NULL, msg), PSF_STATUS_INVALID_ARGUMENT);
	bar.date = "2025-01-02"; /* no high/low: the range feature cannot be computed */
	assert_int_equal(predict(c, mine, NULL, &bar, NULL, msg), PSF_STATUS_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "not a finite"));

	/* a payload that is not a PredictRequest, and an unknown method */
	assert_int_equal(psf_rpc_call_start_raw(c, PSF_M_PREDICT, "\xff\xff\xff", 3, NULL, &p),
	    PSF_OK);
	{
		const uint8_t *pl;
		size_t len;
		assert_int_not_equal(psf_rpc_pending_wait_raw(p, &pl, &len, &st), PSF_OK);
		assert_int_equal(st.code, PSF_STATUS_INVALID_ARGUMENT);
	}
	psf_rpc_pending_free(p);

	/* batch: results in the request's order, each with its own status */
	{
		Psfleet__V1__PredictRequest it[4], *itp[4];
		Psfleet__V1__PredictBatchRequest req = PSFLEET__V1__PREDICT_BATCH_REQUEST__INIT;
		Psfleet__V1__PredictBatchReply *r = NULL;
		const char *syms[4] = {mine, "NOPE", other, symbol_of_shard(&f, 0, 1)};
		for (int i = 0; i < 4; i++) {
			psfleet__v1__predict_request__init(&it[i]);
			it[i].symbol = (char *)syms[i];
			itp[i] = &it[i];
		}
		req.n_items = 4;
		req.items = itp;
		assert_int_equal(psf_rpc_client_call(c, PSF_M_PREDICT_BATCH, &req.base,
		                     &psfleet__v1__predict_batch_reply__descriptor, NULL,
		                     (ProtobufCMessage **)&r, &st),
		    PSF_OK);
		assert_int_equal(r->n_results, 4);
		assert_int_equal(r->results[0]->status, PSF_STATUS_OK);
		assert_string_equal(r->results[0]->reply->symbol, mine);
		assert_int_equal(r->results[1]->status, PSF_STATUS_NOT_FOUND);
		assert_int_equal(r->results[2]->status, PSF_STATUS_NOT_FOUND);
		assert_int_equal(r->results[3]->status, PSF_STATUS_OK);
		assert_string_equal(r->results[3]->reply->symbol, syms[3]);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	/* ModelInfo */
	{
		Psfleet__V1__ModelInfoRequest req = PSFLEET__V1__MODEL_INFO_REQUEST__INIT;
		Psfleet__V1__ModelInfoReply *r = NULL;
		assert_int_equal(psf_rpc_client_call(c, PSF_M_MODEL_INFO, &req.base,
		                     &psfleet__v1__model_info_reply__descriptor, NULL,
		                     (ProtobufCMessage **)&r, &st),
		    PSF_OK);
		assert_int_equal(r->model_version, 1);
		assert_int_equal(r->n_shard_versions, 2);
		assert_int_equal(r->shard_versions[0], 1);
		assert_int_equal(r->shard_versions[1], 1);
		assert_int_equal(r->n_features, 6);
		assert_string_equal(r->features[5], "ewm:3");
		assert_string_equal(r->model, "mlp");
		assert_int_equal(r->n_tensors, psf_model_n_tensors(f.model));
		assert_int_equal(r->shard, 0);
		assert_int_equal(r->shards, 2);
		assert_float_equal(r->test_rmse, 3.0, 1e-12);
		assert_float_equal(r->test_mae, 3.0, 1e-12);
		assert_float_equal(r->naive_rmse, 4.0, 1e-12);
		assert_string_equal(r->node, "inferer-0");
		assert_true(r->symbols > 0 && r->symbols < N_SYMBOLS);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	psf_rpc_client_close(c);
	psf_inferer_free(inf);
	fleet_stop(&f);
}

/* Before any ps answers: not ready ("no snapshot yet"), Predict UNAVAILABLE. */
static void
test_inferer_unavailable_without_ps(void **state)
{
	fleet f;
	psf_inferer *inf = NULL;
	psf_rpc_client *c;
	Psfleet__V1__HealthRequest hreq = PSFLEET__V1__HEALTH_REQUEST__INIT;
	Psfleet__V1__HealthReply *h = NULL;
	const char *dead[2] = {"tcp://127.0.0.1:1", "tcp://127.0.0.1:1"};
	psf_inferer_opts o = {dead, "tcp://127.0.0.1:0", "", 50};
	char msg[256];
	uint64_t t0;

	(void)state;
	fleet_start(&f, "4", 30);
	assert_int_equal(
	    psf_inferer_new(f.cfg, psf_config_role_node(f.cfg, PSF_ROLE_INFERER, 0), &o, &inf),
	    PSF_OK);
	assert_int_equal(psf_rpc_client_open(psf_inferer_url(inf), NULL, &c), PSF_OK);
	psf_sleep_ms(200);
	assert_int_equal(psf_rpc_client_call(c, PSF_M_HEALTH, &hreq.base,
	                     &psfleet__v1__health_reply__descriptor, NULL, (ProtobufCMessage **)&h,
	                     NULL),
	    PSF_OK);
	assert_false(h->ready);
	assert_non_null(strstr(h->reason, "no snapshot yet"));
	protobuf_c_message_free_unpacked(&h->base, NULL);
	t0 = psf_now_ms();
	assert_int_equal(predict(c, symbol_of_shard(&f, 0, 0), NULL, NULL, NULL, msg),
	    PSF_STATUS_UNAVAILABLE);
	assert_true(psf_now_ms() - t0 < 2000); /* an answer, not a hang */
	assert_non_null(strstr(msg, "no snapshot yet"));
	psf_rpc_client_close(c);
	psf_inferer_free(inf);
	fleet_stop(&f);
}

/* (3b) The standardisation statistics are the ones the trainers reduced through
 * the ps, not recomputed by the inferer: until the Reduce completes there is no
 * model; after it, predictions use exactly the reduced statistics (here shifted
 * on purpose, so statistics recomputed from the data would not match). */
static void
test_inferer_statistics_come_from_the_ps(void **state)
{
	fleet f;
	psf_inferer *inf;
	psf_rpc_client *c;
	Psfleet__V1__PredictReply *r;
	size_t nf;
	uint64_t v;
	char msg[256];

	(void)state;
	fleet_start_ex(&f, "8", 400, false);
	nf = f.cfg->n_features;
	push(&f);
	inf = inferer(&f, 1);
	assert_int_equal(psf_rpc_client_open(psf_inferer_url(inf), NULL, &c), PSF_OK);
	assert_int_equal(psf_inferer_refresh(inf, &v), PSF_ESTATE);
	assert_int_equal(v, 0);
	assert_int_equal(predict(c, symbol_of_shard(&f, 1, 0), NULL, NULL, NULL, msg),
	    PSF_STATUS_UNAVAILABLE);
	for (size_t j = 0; j <= nf; j++) { /* mean + 0.25 (+ 0.001 for the target) */
		double shift = j < nf ? 0.25 : 0.001, n = f.stats[3 * j + 2], sum = f.stats[3 * j];
		f.stats[3 * j] = sum + shift * n;
		f.stats[3 * j + 1] += 2 * shift * sum + shift * shift * n;
	}
	share_stats(&f, f.stats);
	assert_int_equal(psf_inferer_refresh(inf, &v), PSF_OK);
	assert_int_equal(v, 1);
	for (int k = 0; k < 2; k++) {
		const char *sym = symbol_of_shard(&f, 1, k);
		assert_int_equal(predict(c, sym, NULL, NULL, &r, msg), PSF_STATUS_OK);
		assert_close(r->prediction, expected(&f, sym, PSF_DATE_LAST, NULL));
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	psf_rpc_client_close(c);
	psf_inferer_free(inf);
	fleet_stop(&f);
}

typedef struct load {
	const char *url;
	const char *symbol;
	atomic_int *stop;
	uint64_t calls, failures, backwards, max_version;
	atomic_uint_fast64_t seen; /* the version of the latest reply, for the main thread */
	char first_error[256];
} load;

static void *
load_main(void *arg)
{
	load *l = arg;
	psf_rpc_client *c;
	uint64_t last = 0;

	if (psf_rpc_client_open(l->url, NULL, &c) != PSF_OK) {
		l->failures++;
		return NULL;
	}
	while (!atomic_load(l->stop)) {
		Psfleet__V1__PredictReply *r = NULL;
		char msg[256];
		if (predict(c, l->symbol, NULL, NULL, &r, msg) != PSF_STATUS_OK) {
			if (l->failures++ == 0)
				snprintf(l->first_error, sizeof(l->first_error), "%s", msg);
			continue;
		}
		l->calls++;
		if (r->model_version < last)
			l->backwards++;
		last = r->model_version;
		atomic_store(&l->seen, last);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	l->max_version = last;
	psf_rpc_client_close(c);
	return NULL;
}

static long
rss_kib(void)
{
	FILE *fp = fopen("/proc/self/statm", "r");
	long size = 0, resident = 0;

	if (fp == NULL)
		return 0;
	if (fscanf(fp, "%ld %ld", &size, &resident) != 2)
		resident = 0;
	fclose(fp);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* (2) Swap under load: clients predict continuously while the model changes many
 * times; no request fails, versions never go backwards on a connection, and
 * memory stays flat across the swaps (a ~0.3 MB model swapped 60 times). */
static void
test_inferer_swap_under_load(void **state)
{
	fleet f;
	psf_inferer *inf;
	pthread_t th[4];
	load l[4];
	atomic_int stop = 0;
	uint64_t v;
	long rss0, rss1;

	(void)state;
	fleet_start(&f, "512, 128", 400);
	push(&f);
	inf = inferer(&f, 0);
	assert_int_equal(psf_inferer_refresh(inf, &v), PSF_OK);
	for (int i = 0; i < 4; i++) {
		memset(&l[i], 0, sizeof(l[i]));
		atomic_init(&l[i].seen, 0);
		l[i].url = psf_inferer_url(inf);
		l[i].symbol = symbol_of_shard(&f, 0, i % 2);
		l[i].stop = &stop;
		assert_int_equal(pthread_create(&th[i], NULL, load_main, &l[i]), 0);
	}
	for (int i = 0; i < 10; i++) { /* warm up: allocator pools reach their size */
		push(&f);
		assert_int_equal(psf_inferer_refresh(inf, &v), PSF_OK);
	}
	rss0 = rss_kib();
	for (int i = 0; i < 60; i++) {
		push(&f);
		assert_int_equal(psf_inferer_refresh(inf, &v), PSF_OK);
		assert_int_equal(v, (uint64_t)i + 12);
	}
	rss1 = rss_kib();
	/* Each client's calls reach the last version (however loaded the machine:
	 * a fixed sleep here failed under a parallel test run). */
	for (int i = 0, waited = 0; i < 4 && waited < 60000; waited += 10) {
		if (atomic_load(&l[i].seen) >= 71)
			i++;
		else
			psf_sleep_ms(10);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (l[i].failures > 0)
			fail_msg("client %d: %llu failed requests, first: %s", i,
			    (unsigned long long)l[i].failures, l[i].first_error);
		assert_int_equal(l[i].backwards, 0);
		assert_true(l[i].calls > 0);
		assert_int_equal(l[i].max_version, 71);
	}
#if defined(__SANITIZE_ADDRESS__)
	(void)rss0;
	(void)rss1; /* ASan's quarantine keeps freed memory: its own leak check applies */
#else
	if (rss1 - rss0 > 12 * 1024)
		fail_msg("RSS grew by %ld KiB over 60 swaps", rss1 - rss0);
#endif
	psf_inferer_free(inf);
	fleet_stop(&f);
}

/* (6) A gru's prediction from the inferer (its history gives the window) equals
 * the trainer's evaluation of the same test rows (trainer/window.c windows of
 * the table, psf_trainer_evaluate): row by row against the forward pass on the
 * trainer's windows, and in sum against psf_trainer_evaluate's squared error.
 * A date with too little history names the days needed. */
static void
test_inferer_gru_matches_trainer_eval(void **state)
{
	const uint32_t W = 6;
	fleet f;
	psf_inferer *inf[2];
	psf_rpc_client *c[2];
	psf_table *t;
	psf_windows win;
	psf_model_ws *ws;
	psf_params *p;
	psf_eval ev;
	uint64_t v, *sym_rows;
	int32_t cutoff;
	double sse = 0.0;
	char day[11], msg[256], model[128];

	(void)state;
	snprintf(model, sizeof(model), "kind: gru, hidden: [6, 5], window: %u", W);
	fleet_start(&f, model, 400);
	assert_int_equal(psf_model_window(f.model), W);
	for (int i = 0; i < 3; i++)
		push(&f);
	for (int k = 0; k < 2; k++) {
		inf[k] = inferer(&f, (size_t)k);
		assert_int_equal(psf_inferer_refresh(inf[k], &v), PSF_OK);
		assert_int_equal(v, 3);
		assert_int_equal(psf_rpc_client_open(psf_inferer_url(inf[k]), NULL, &c[k]), PSF_OK);
	}
	/* the trainer's side: the standardised table, its windows, its evaluation */
	{
		psf_data_index *idx;
		const int32_t *dates;
		size_t n_dates;
		assert_int_equal(psf_data_index_from(f.ds, &idx), PSF_OK);
		dates = psf_data_index_dates(idx, &n_dates);
		assert_int_equal(
		    psf_data_cutoff_date(dates, n_dates, f.cfg->data.test_fraction, &cutoff),
		    PSF_OK);
		psf_data_index_free(idx);
	}
	assert_int_equal(psf_features_build(f.ds, f.cfg->features, f.cfg->n_features, f.cfg->target,
	                     cutoff, NULL, 0, &t),
	    PSF_OK);
	assert_int_equal(
	    psf_features_standardize(t, f.stats, psf_features_stats_len(f.cfg->n_features)),
	    PSF_OK);
	assert_int_equal(psf_windows_init(&win, t, W), PSF_OK);
	assert_true(win.n_test > 100);
	assert_true(win.n_train < t->n_train); /* each symbol's first W - 1 rows have none */
	assert_non_null(sym_rows = calloc(t->n_symbols, sizeof(uint64_t)));
	for (size_t s = 0; s < t->n_symbols; s++)
		sym_rows[s] = psf_symbol_row(t->symbols[s]);
	assert_int_equal(psf_model_ws_new(f.model, f.cfg->training.batch_size, &ws), PSF_OK);
	assert_int_equal(psf_params_new(f.model, &p), PSF_OK);
	assert_int_equal(psf_trainer_evaluate(f.cfg, f.model, ws, f.w, t, &win, sym_rows, f.stats,
	                     psf_ps_client_clock(f.w), p, &ev),
	    PSF_OK);
	assert_int_equal(ev.n, win.n_test);
	for (size_t k = 0; k < win.n_test; k++) {
		size_t r = win.test[k];
		const char *sym = t->symbols[t->sym[r]];
		uint32_t shard = psf_inference_shard_of(sym, 2);
		float x[64 * 8], z;
		Psfleet__V1__PredictReply *rep;
		double want;

		assert_true(W * t->n_features <= 64 * 8);
		psf_windows_gather(&win, t, r, x);
		assert_int_equal(psf_model_forward(f.model, ws, p, x, &sym_rows[t->sym[r]], 1, &z),
		    PSF_OK);
		want = psf_features_unstandardize_target(z, t->n_features, f.cfg->target, f.stats);
		psf_date_format(t->date[r], day);
		assert_int_equal(predict(c[shard], sym, day, NULL, &rep, msg), PSF_STATUS_OK);
		assert_string_equal(rep->as_of, day);
		assert_close(rep->prediction, want);
		sse += (rep->prediction - t->y_raw[r]) * (rep->prediction - t->y_raw[r]);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	if (fabs(sse - ev.sse) > 1e-6 * fmax(1.0, ev.sse))
		fail_msg("inferer sse %.12g, trainer evaluation %.12g", sse, ev.sse);
	/* too little history: the last date without W - 1 earlier feature rows */
	{
		const char *sym = symbol_of_shard(&f, 0, 0);
		const psf_series *s = psf_dataset_find(f.ds, sym);
		size_t need = psf_features_history(f.cfg->features, f.cfg->n_features);

		psf_date_format(s->date[need + W - 2], day);
		assert_int_equal(predict(c[0], sym, day, NULL, NULL, msg),
		    PSF_STATUS_FAILED_PRECONDITION);
		snprintf(model, sizeof(model), "needs %zu days", need + W);
		if (strstr(msg, model) == NULL || strstr(msg, "window 6") == NULL)
			fail_msg("message does not name the days needed: %s", msg);
		psf_date_format(s->date[need + W - 1], day);
		assert_int_equal(predict(c[0], sym, day, NULL, NULL, msg), PSF_STATUS_OK);
	}
	/* a recent bar: the window is the last W - 1 kept days plus that bar */
	{
		const char *sym = symbol_of_shard(&f, 1, 0);
		const psf_series *s = psf_dataset_find(f.ds, sym);
		size_t n = s->n + 1, nf = f.cfg->n_features;
		double *cols = calloc(5 * n, sizeof(double));
		int32_t *dates = calloc(n, sizeof(int32_t));
		const double *src[5] = {s->close, s->open, s->high, s->low, s->volume};
		Psfleet__V1__Bar bar = PSFLEET__V1__BAR__INIT;
		Psfleet__V1__PredictReply *rep;
		uint64_t row = psf_symbol_row(sym);
		float x[64 * 8], z;
		psf_series ext;

		assert_non_null(cols);
		assert_non_null(dates);
		bar.date = "2025-01-02";
		bar.close = s->close[s->n - 1] * 0.97;
		bar.open = s->close[s->n - 1];
		bar.high = bar.open * 1.01;
		bar.low = bar.close * 0.99;
		bar.volume = 5000;
		memcpy(dates, s->date, s->n * sizeof(int32_t));
		assert_int_equal(psf_date_parse(bar.date, 10, &dates[s->n]), PSF_OK);
		{
			double add[5] = {bar.close, bar.open, bar.high, bar.low, bar.volume};
			for (int k = 0; k < 5; k++) {
				memcpy(cols + k * n, src[k], s->n * sizeof(double));
				cols[k * n + s->n] = add[k];
			}
		}
		ext = (psf_series){sym, n, dates, cols, cols + n, cols + 2 * n, cols + 3 * n,
		    cols + 4 * n};
		assert_int_equal(psf_features_window(&ext, f.cfg->features, nf, PSF_DATE_LAST, W, x,
		                     64 * 8, NULL),
		    PSF_OK);
		for (uint32_t k = 0; k < W; k++)
			psf_features_standardize_row(x + k * nf, nf, f.stats);
		assert_int_equal(psf_model_forward(f.model, ws, p, x, &row, 1, &z), PSF_OK);
		assert_int_equal(predict(c[1], sym, NULL, &bar, &rep, msg), PSF_STATUS_OK);
		assert_string_equal(rep->as_of, "2025-01-02");
		assert_close(rep->prediction,
		    psf_features_unstandardize_target(z, nf, f.cfg->target, f.stats));
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		free(cols);
		free(dates);
	}
	psf_params_free(p);
	psf_model_ws_free(ws);
	free(sym_rows);
	psf_windows_fini(&win);
	psf_table_free(t);
	for (int k = 0; k < 2; k++) {
		psf_rpc_client_close(c[k]);
		psf_inferer_free(inf[k]);
	}
	fleet_stop(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_inferer_prediction_matches_forward),
	    cmocka_unit_test(test_inferer_errors_and_batch),
	    cmocka_unit_test(test_inferer_unavailable_without_ps),
	    cmocka_unit_test(test_inferer_statistics_come_from_the_ps),
	    cmocka_unit_test(test_inferer_swap_under_load),
	    cmocka_unit_test(test_inferer_gru_matches_trainer_eval),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	/* NNG releases servers (HTTP ones especially) on its own threads: let them
	 * finish before LeakSanitizer looks at the heap at exit. */
	nng_fini();
	return failed;
}
