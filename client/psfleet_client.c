/* psfleet_client.c -- the public prediction client over the RPC layer
 * (psfleet_client.h). Built into libpsfleet_client with the few lib/base and lib/net files
 * the RPC client needs; only the psf_client_* symbols are exported. */
#include "client/psfleet_client.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "psfleet.pb-c.h"

struct psf_client {
	psf_rpc_client *rpc;
	uint32_t timeout_ms;
};

int
psf_client_open(const char *url, const psf_client_opts *opts, psf_client **out)
{
	psf_rpc_client_opts o = {0};
	psf_client *c;
	psf_err err;

	if (url == NULL || out == NULL)
		return PSF_CLIENT_INVALID_ARGUMENT;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return PSF_CLIENT_RESOURCE_EXHAUSTED;
	c->timeout_ms = opts != NULL && opts->timeout_ms != 0 ? opts->timeout_ms : 10000;
	o.timeout_ms = c->timeout_ms;
	if (opts != NULL) {
		o.token = opts->token;
		o.tls.ca_file = opts->ca_file;
		o.tls.server_name = opts->server_name;
		o.tls.cert_file = opts->cert_file;
		o.tls.key_file = opts->key_file;
		o.connect_now = opts->connect_now != 0;
		if ((opts->cert_file == NULL) != (opts->key_file == NULL)) {
			free(c);
			return PSF_CLIENT_INVALID_ARGUMENT;
		}
	}
	if ((err = psf_rpc_client_open(url, &o, &c->rpc)) != PSF_OK) {
		free(c);
		return (int)psf_status_from_err(err);
	}
	*out = c;
	return PSF_CLIENT_OK;
}

void
psf_client_close(psf_client *c)
{
	if (c == NULL)
		return;
	psf_rpc_client_close(c->rpc);
	free(c);
}

const char *
psf_client_status_name(int status)
{
	return psf_status_name((psf_status)status);
}

static void
copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src != NULL ? src : "");
}

static void
set_failure(psf_prediction *out, const char *symbol, int status, const char *message)
{
	memset(out, 0, sizeof(*out));
	copy(out->symbol, sizeof(out->symbol), symbol);
	out->status = status;
	copy(out->message, sizeof(out->message), message);
}

static void
set_reply(psf_prediction *out, const Psfleet__V1__PredictReply *r)
{
	memset(out, 0, sizeof(*out));
	copy(out->symbol, sizeof(out->symbol), r->symbol);
	out->prediction = r->prediction;
	out->predicted_close = r->predicted_close;
	copy(out->target, sizeof(out->target), r->target);
	out->model_version = r->model_version;
	copy(out->as_of, sizeof(out->as_of), r->as_of);
	out->last_close = r->last_close;
}

/* set_interval copies r's interval into iv (NULL: not wanted). */
static void
set_interval(psf_interval *iv, const Psfleet__V1__PredictReply *r)
{
	if (iv == NULL)
		return;
	iv->lower = r->lower;
	iv->upper = r->upper;
	iv->coverage = r->coverage;
	iv->n = r->interval_n;
}

/* recent_bars fills the request's recent bars from the caller's: one block holds
 * the messages, the pointer array and NUL-terminated copies of the dates. Returns
 * the block to free, or NULL when out of memory. */
static void *
recent_bars(Psfleet__V1__PredictRequest *req, const psf_client_bar *recent, size_t n)
{
	const size_t dlen = sizeof(recent->date) + 1;
	Psfleet__V1__Bar *bars, **barp;
	char *dates;
	void *block;

	if ((block = calloc(n, sizeof(*bars) + sizeof(*barp) + dlen)) == NULL)
		return NULL;
	bars = block;
	barp = (Psfleet__V1__Bar **)(bars + n);
	dates = (char *)(barp + n);
	for (size_t i = 0; i < n; i++) {
		psfleet__v1__bar__init(&bars[i]);
		memcpy(dates + i * dlen, recent[i].date, sizeof(recent->date));
		bars[i].date = dates + i * dlen; /* calloc: NUL after the copied bytes */
		bars[i].close = recent[i].close;
		bars[i].open = recent[i].open;
		bars[i].high = recent[i].high;
		bars[i].low = recent[i].low;
		bars[i].volume = recent[i].volume;
		barp[i] = &bars[i];
	}
	req->n_recent = n;
	req->recent = barp;
	return block;
}

static int predict_one(psf_client *c, const char *symbol, const char *as_of,
    const psf_client_bar *recent, size_t n_recent, double coverage, psf_prediction *out,
    psf_interval *iv);
static int predict_batch(psf_client *c, const char *const *symbols, size_t n, const char *as_of,
    const psf_client_bar *const *recent, const size_t *n_recent, double coverage,
    psf_prediction *out, psf_interval *iv);

int
psf_client_predict(psf_client *c, const char *symbol, const char *as_of, psf_prediction *out)
{
	return predict_one(c, symbol, as_of, NULL, 0, 0.0, out, NULL);
}

int
psf_client_predict_recent(psf_client *c, const char *symbol, const char *as_of,
    const psf_client_bar *recent, size_t n_recent, psf_prediction *out)
{
	return predict_one(c, symbol, as_of, recent, n_recent, 0.0, out, NULL);
}

int
psf_client_predict_batch(psf_client *c, const char *const *symbols, size_t n, const char *as_of,
    psf_prediction *out)
{
	return predict_batch(c, symbols, n, as_of, NULL, NULL, 0.0, out, NULL);
}

int
psf_client_predict_batch_recent(psf_client *c, const char *const *symbols, size_t n,
    const char *as_of, const psf_client_bar *const *recent, const size_t *n_recent,
    psf_prediction *out)
{
	return predict_batch(c, symbols, n, as_of, recent, n_recent, 0.0, out, NULL);
}

int
psf_client_predict_interval(psf_client *c, const char *symbol, const char *as_of, double coverage,
    psf_prediction *out, psf_interval *iv)
{
	if (iv != NULL)
		memset(iv, 0, sizeof(*iv));
	return predict_one(c, symbol, as_of, NULL, 0, coverage, out, iv);
}

int
psf_client_predict_batch_interval(psf_client *c, const char *const *symbols, size_t n,
    const char *as_of, double coverage, psf_prediction *out, psf_interval *iv)
{
	if (iv != NULL && n > 0)
		memset(iv, 0, n * sizeof(*iv));
	return predict_batch(c, symbols, n, as_of, NULL, NULL, coverage, out, iv);
}

static int
predict_one(psf_client *c, const char *symbol, const char *as_of, const psf_client_bar *recent,
    size_t n_recent, double coverage, psf_prediction *out, psf_interval *iv)
{
	Psfleet__V1__PredictRequest req = PSFLEET__V1__PREDICT_REQUEST__INIT;
	Psfleet__V1__PredictReply *r = NULL;
	void *block = NULL;
	psf_rpc_status st;

	if (c == NULL || symbol == NULL || out == NULL || (n_recent > 0 && recent == NULL)) {
		if (out != NULL)
			set_failure(out, symbol, PSF_CLIENT_INVALID_ARGUMENT, "missing argument");
		return PSF_CLIENT_INVALID_ARGUMENT;
	}
	req.symbol = (char *)symbol;
	req.as_of = (char *)(as_of != NULL ? as_of : "");
	req.coverage = coverage;
	if (n_recent > 0 && (block = recent_bars(&req, recent, n_recent)) == NULL) {
		set_failure(out, symbol, PSF_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
		return out->status;
	}
	if (psf_rpc_client_call(c->rpc, PSF_M_PREDICT, &req.base,
	        &psfleet__v1__predict_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	        &st) != PSF_OK) {
		free(block);
		set_failure(out, symbol, (int)st.code, st.message);
		return out->status;
	}
	free(block);
	set_reply(out, r);
	set_interval(iv, r);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return PSF_CLIENT_OK;
}

static int
predict_batch(psf_client *c, const char *const *symbols, size_t n, const char *as_of,
    const psf_client_bar *const *recent, const size_t *n_recent, double coverage,
    psf_prediction *out, psf_interval *iv)
{
	Psfleet__V1__PredictBatchRequest req = PSFLEET__V1__PREDICT_BATCH_REQUEST__INIT;
	Psfleet__V1__PredictBatchReply *r = NULL;
	Psfleet__V1__PredictRequest *items, **itemp;
	void **blocks = NULL; /* per item: its recent bars (recent_bars) */
	psf_rpc_status st;
	int rc = PSF_CLIENT_OK;

	if (c == NULL || (n > 0 && (symbols == NULL || out == NULL)) ||
	    (recent != NULL) != (n_recent != NULL))
		return PSF_CLIENT_INVALID_ARGUMENT;
	for (size_t i = 0; recent != NULL && i < n; i++)
		if (n_recent[i] > 0 && recent[i] == NULL)
			return PSF_CLIENT_INVALID_ARGUMENT;
	items = calloc(n > 0 ? n : 1, sizeof(*items));
	itemp = calloc(n > 0 ? n : 1, sizeof(*itemp));
	if (recent != NULL)
		blocks = calloc(n > 0 ? n : 1, sizeof(*blocks));
	if (items == NULL || itemp == NULL || (recent != NULL && blocks == NULL)) {
		rc = PSF_CLIENT_RESOURCE_EXHAUSTED;
		snprintf(st.message, sizeof(st.message), "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		psfleet__v1__predict_request__init(&items[i]);
		items[i].symbol = (char *)(symbols[i] != NULL ? symbols[i] : "");
		items[i].as_of = (char *)(as_of != NULL ? as_of : "");
		items[i].coverage = coverage;
		itemp[i] = &items[i];
		if (recent != NULL && n_recent[i] > 0 &&
		    (blocks[i] = recent_bars(&items[i], recent[i], n_recent[i])) == NULL) {
			rc = PSF_CLIENT_RESOURCE_EXHAUSTED;
			snprintf(st.message, sizeof(st.message), "out of memory");
			goto fail;
		}
	}
	req.n_items = n;
	req.items = itemp;
	if (psf_rpc_client_call(c->rpc, PSF_M_PREDICT_BATCH, &req.base,
	        &psfleet__v1__predict_batch_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	        &st) != PSF_OK) {
		rc = (int)st.code;
		goto fail;
	}
	if (r->n_results != n) {
		rc = PSF_CLIENT_INTERNAL;
		snprintf(st.message, sizeof(st.message), "%zu results for %zu symbols",
		    r->n_results, n);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		const Psfleet__V1__PredictResult *res = r->results[i];
		if (res->status == PSFLEET__V1__STATUS_CODE__OK && res->reply != NULL) {
			set_reply(&out[i], res->reply);
			set_interval(iv != NULL ? &iv[i] : NULL, res->reply);
		} else
			set_failure(&out[i], symbols[i],
			    res->status != 0 ? (int)res->status : PSF_CLIENT_INTERNAL,
			    res->message);
	}
	goto out;
fail:
	for (size_t i = 0; i < n; i++)
		set_failure(&out[i], symbols[i], rc, st.message);
out:
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	for (size_t i = 0; blocks != NULL && i < n; i++)
		free(blocks[i]);
	free(blocks);
	free(items);
	free(itemp);
	return rc;
}

/* ingest_rows fills req's rows (and their bars, dates) from the caller's in
 * one block to free; NULL when out of memory. */
static void *
ingest_rows(Psfleet__V1__IngestRequest *req, const char *const *symbols, const psf_client_bar *bars,
    size_t n)
{
	const size_t dlen = sizeof(bars->date) + 1;
	Psfleet__V1__IngestRow *rows, **rowp;
	Psfleet__V1__Bar *pb;
	char *dates;
	void *block = calloc(n > 0 ? n : 1, sizeof(*rows) + sizeof(*rowp) + sizeof(*pb) + dlen);

	if (block == NULL)
		return NULL;
	rows = block;
	rowp = (Psfleet__V1__IngestRow **)(rows + n);
	pb = (Psfleet__V1__Bar *)(rowp + n);
	dates = (char *)(pb + n);
	for (size_t i = 0; i < n; i++) {
		psfleet__v1__ingest_row__init(&rows[i]);
		psfleet__v1__bar__init(&pb[i]);
		memcpy(dates + i * dlen, bars[i].date, sizeof(bars->date));
		pb[i].date = dates + i * dlen;
		pb[i].close = bars[i].close;
		pb[i].open = isfinite(bars[i].open) ? bars[i].open : 0;
		pb[i].high = isfinite(bars[i].high) ? bars[i].high : 0;
		pb[i].low = isfinite(bars[i].low) ? bars[i].low : 0;
		pb[i].volume = isfinite(bars[i].volume) ? bars[i].volume : 0;
		rows[i].symbol = (char *)(symbols[i] != NULL ? symbols[i] : "");
		rows[i].bar = &pb[i];
		rowp[i] = &rows[i];
	}
	req->n_rows = n;
	req->rows = rowp;
	return block;
}

int
psf_client_ingest(psf_client *c, const char *const *symbols, const psf_client_bar *bars, size_t n,
    psf_client_ingest_result *results, psf_client_ingest_summary *out)
{
	Psfleet__V1__IngestRequest req = PSFLEET__V1__INGEST_REQUEST__INIT;
	Psfleet__V1__IngestReply *r = NULL;
	psf_rpc_status st;
	void *block;
	int rc = PSF_CLIENT_OK;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (c == NULL || (n > 0 && (symbols == NULL || bars == NULL || results == NULL)))
		return PSF_CLIENT_INVALID_ARGUMENT;
	if ((block = ingest_rows(&req, symbols, bars, n)) == NULL) {
		rc = PSF_CLIENT_RESOURCE_EXHAUSTED;
		snprintf(st.message, sizeof(st.message), "out of memory");
	} else if (psf_rpc_client_call(c->rpc, PSF_M_INGEST, &req.base,
	               &psfleet__v1__ingest_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	               &st) != PSF_OK) {
		rc = (int)st.code;
	} else if (r->n_results != n) {
		rc = PSF_CLIENT_INTERNAL;
		snprintf(st.message, sizeof(st.message), "%zu results for %zu rows", r->n_results,
		    n);
	}
	for (size_t i = 0; i < n; i++) {
		const Psfleet__V1__IngestResult *res = rc == PSF_CLIENT_OK ? r->results[i] : NULL;
		results[i].status = res != NULL ? (int)res->status : rc;
		snprintf(results[i].message, sizeof(results[i].message), "%s",
		    res != NULL ? (res->message != NULL ? res->message : "") : st.message);
	}
	if (rc == PSF_CLIENT_OK && out != NULL) {
		out->accepted = r->accepted;
		out->model_version = r->model_version;
		out->finetune_rows = r->finetune_rows;
		out->finetune_steps = r->finetune_steps;
	}
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	free(block);
	return rc;
}

/* join writes items into buf separated by commas, truncating at len. */
static void
join_info(psf_model_info *out, const Psfleet__V1__ModelInfoReply *r)
{
	size_t used = 0;

	for (size_t i = 0; i < r->n_features && used < sizeof(out->features); i++)
		used += (size_t)snprintf(out->features + used, sizeof(out->features) - used, "%s%s",
		    i ? "," : "", r->features[i]);
	used = 0;
	for (size_t i = 0; i < r->n_tensors && used < sizeof(out->tensors); i++) {
		const Psfleet__V1__TensorInfo *t = r->tensors[i];
		used += (size_t)snprintf(out->tensors + used, sizeof(out->tensors) - used,
		    "%s%s[%u x %u]%s", i ? " " : "", t->name, t->n_shape > 0 ? t->shape[0] : 0,
		    t->n_shape > 1 ? t->shape[1] : 0, t->per_symbol ? "/symbol" : "");
	}
	used = 0;
	for (size_t i = 0; i < r->n_shard_versions && used < sizeof(out->shard_versions); i++)
		used +=
		    (size_t)snprintf(out->shard_versions + used, sizeof(out->shard_versions) - used,
		        "%s%llu", i ? "," : "", (unsigned long long)r->shard_versions[i]);
}

int
psf_client_model_info(psf_client *c, char *errbuf, size_t errlen, psf_model_info *out)
{
	Psfleet__V1__ModelInfoRequest req = PSFLEET__V1__MODEL_INFO_REQUEST__INIT;
	Psfleet__V1__ModelInfoReply *r = NULL;
	psf_rpc_status st;

	if (c == NULL || out == NULL)
		return PSF_CLIENT_INVALID_ARGUMENT;
	if (psf_rpc_client_call(c->rpc, PSF_M_MODEL_INFO, &req.base,
	        &psfleet__v1__model_info_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	        &st) != PSF_OK) {
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "%s", st.message);
		return (int)st.code;
	}
	memset(out, 0, sizeof(*out));
	out->model_version = r->model_version;
	out->trained_steps = r->trained_steps;
	copy(out->model, sizeof(out->model), r->model);
	copy(out->target, sizeof(out->target), r->target);
	join_info(out, r);
	out->test_rmse = r->test_rmse;
	out->test_mae = r->test_mae;
	out->naive_rmse = r->naive_rmse;
	out->symbols = r->symbols;
	out->shard = r->shard;
	out->shards = r->shards;
	copy(out->node, sizeof(out->node), r->node);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return PSF_CLIENT_OK;
}

/* The object psf_client_node_status returns: the public part first (so the
 * pointer the caller frees is the block's), then the reply its strings point
 * into. */
typedef struct status_box {
	psf_node_status pub;
	Psfleet__V1__StatusReply *r;
	psf_client_kv *kv;
	psf_client_worker *w;
} status_box;

int
psf_client_node_status(psf_client *c, char *errbuf, size_t errlen, psf_node_status **out)
{
	Psfleet__V1__StatusRequest req = PSFLEET__V1__STATUS_REQUEST__INIT;
	Psfleet__V1__StatusReply *r = NULL;
	psf_rpc_status st;
	status_box *b;

	if (c == NULL || out == NULL)
		return PSF_CLIENT_INVALID_ARGUMENT;
	if (psf_rpc_client_call(c->rpc, PSF_M_STATUS, &req.base,
	        &psfleet__v1__status_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	        &st) != PSF_OK) {
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "%s", st.message);
		return (int)st.code;
	}
	b = calloc(1, sizeof(*b));
	if (b != NULL) {
		b->kv = calloc(r->n_extra > 0 ? r->n_extra : 1, sizeof(*b->kv));
		b->w = calloc(r->n_workers > 0 ? r->n_workers : 1, sizeof(*b->w));
	}
	if (b == NULL || b->kv == NULL || b->w == NULL) {
		if (b != NULL) {
			free(b->kv);
			free(b->w);
			free(b);
		}
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "out of memory");
		return PSF_CLIENT_RESOURCE_EXHAUSTED;
	}
	for (size_t i = 0; i < r->n_extra; i++)
		b->kv[i] = (psf_client_kv){r->extra[i]->key, r->extra[i]->value};
	for (size_t i = 0; i < r->n_workers; i++) {
		const Psfleet__V1__WorkerStatus *w = r->workers[i];
		b->w[i] = (psf_client_worker){w->worker, w->clock, w->live ? 1 : 0, w->last_seq,
		    w->pushes};
	}
	b->r = r;
	b->pub = (psf_node_status){r->node, r->role, r->ready ? 1 : 0, r->model_version,
	    r->uptime_seconds, r->n_extra, b->kv, r->n_workers, b->w};
	*out = &b->pub;
	return PSF_CLIENT_OK;
}

void
psf_client_node_status_free(psf_node_status *st)
{
	status_box *b = (status_box *)st;

	if (b == NULL)
		return;
	protobuf_c_message_free_unpacked(&b->r->base, NULL);
	free(b->kv);
	free(b->w);
	free(b);
}

size_t
psf_client_sizeof(const char *type)
{
	static const struct {
		const char *name;
		size_t size;
	} types[] = {
	    {"psf_prediction", sizeof(psf_prediction)},
	    {"psf_model_info", sizeof(psf_model_info)},
	    {"psf_client_opts", sizeof(psf_client_opts)},
	    {"psf_client_bar", sizeof(psf_client_bar)},
	    {"psf_node_status", sizeof(psf_node_status)},
	    {"psf_client_kv", sizeof(psf_client_kv)},
	    {"psf_client_worker", sizeof(psf_client_worker)},
	    {"psf_interval", sizeof(psf_interval)},
	    {"psf_client_ingest_result", sizeof(psf_client_ingest_result)},
	    {"psf_client_ingest_summary", sizeof(psf_client_ingest_summary)},
	};

	for (size_t i = 0; type != NULL && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(types[i].name, type) == 0)
			return types[i].size;
	return 0;
}
