/* predict.c -- the Inference service of an inferer (proto/psfleet.proto).
 *
 * The common request (a symbol, no as_of past its latest date, no recent bars)
 * is a table look-up: every snapshot carries each served symbol's prediction at
 * its latest row, computed once when the snapshot was built. Other requests
 * compute their model input (the feature rows of the model's window of days;
 * one row but for gru and lstm) from the kept history (plus the caller's bars)
 * with psf_features_window, the code training used, and run the model on it with
 * a workspace borrowed from a pool. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inferer/internal.h"
#include "lib/base/log.h"
#include "lib/base/shard.h"
#include "lib/data/features.h"

void psf_inf_rpc_predict(Psfleet__V1__Inference_Service *svc, const Psfleet__V1__PredictRequest *in,
    Psfleet__V1__PredictReply_Closure done, void *call);
void psf_inf_rpc_predict_batch(Psfleet__V1__Inference_Service *svc,
    const Psfleet__V1__PredictBatchRequest *in, Psfleet__V1__PredictBatchReply_Closure done,
    void *call);
void psf_inf_rpc_model_info(Psfleet__V1__Inference_Service *svc,
    const Psfleet__V1__ModelInfoRequest *in, Psfleet__V1__ModelInfoReply_Closure done, void *call);

static char oom_text[] = "out of memory";

psf_model_ws *
inf_ws_take(psf_inferer *inf)
{
	psf_model_ws *ws = NULL;

	pthread_mutex_lock(&inf->ws_mu);
	if (inf->n_ws > 0)
		ws = inf->ws_pool[--inf->n_ws];
	pthread_mutex_unlock(&inf->ws_mu);
	if (ws == NULL && psf_model_ws_new(inf->model, 1, &ws) != PSF_OK)
		return NULL;
	return ws;
}

void
inf_ws_give(psf_inferer *inf, psf_model_ws *ws)
{
	pthread_mutex_lock(&inf->ws_mu);
	if (inf->n_ws < INF_WS_POOL) {
		inf->ws_pool[inf->n_ws++] = ws;
		ws = NULL;
	}
	pthread_mutex_unlock(&inf->ws_mu);
	psf_model_ws_free(ws);
}

psf_err
inf_predict_row(psf_inferer *inf, psf_model_ws *ws, const inf_snap *s, float *x, uint64_t row,
    double *out)
{
	float z;
	psf_err err;

	for (size_t k = 0; k < (size_t)psf_model_window(inf->model); k++)
		psf_features_standardize_row(x + k * inf->cfg->n_features, inf->cfg->n_features,
		    s->stats);
	err = psf_model_forward(inf->model, ws, s->params, x, &row, 1, &z);
	if (err == PSF_OK)
		*out = psf_features_unstandardize_target(z, inf->cfg->n_features, inf->cfg->target,
		    s->stats);
	return err;
}

/* One answer being built: the reply fields plus storage for its strings. */
typedef struct answer {
	double prediction;
	double last_close;
	double lower, upper, coverage; /* coverage 0: no interval asked */
	uint64_t interval_n;
	int32_t as_of;
	char day[11];
} answer;

/* row_error turns a feature-row failure into a status and a reason. */
static psf_status
row_error(psf_inferer *inf, const inf_symbol *sym, const psf_series *s, psf_err err,
    const char *when, char *msg, size_t len)
{
	char first[11];
	size_t need = psf_features_history(inf->cfg->features, inf->cfg->n_features);

	psf_date_format(s->n > 0 ? s->date[0] : 0, first);
	switch (err) {
	case PSF_ERANGE:
		if (psf_model_window(inf->model) > 1)
			snprintf(msg, len,
			    "not enough history for '%s' %s: needs %zu days (window %zu + "
			    "%zu for the features), has %zu from %s",
			    sym->name, when, need + (size_t)psf_model_window(inf->model),
			    (size_t)psf_model_window(inf->model), need, s->n, first);
		else
			snprintf(msg, len,
			    "not enough history for '%s' %s: the features need %zu earlier "
			    "rows and the inferer has %zu rows from %s (inference.history_days "
			    "%u)",
			    sym->name, when, need, s->n, first, inf->cfg->inference.history_days);
		return PSF_STATUS_FAILED_PRECONDITION;
	case PSF_ENOENT:
		snprintf(msg, len,
		    "no data for '%s' %s: the inferer keeps its bars from %s "
		    "(inference.history_days %u)",
		    sym->name, when, first, inf->cfg->inference.history_days);
		return PSF_STATUS_FAILED_PRECONDITION;
	case PSF_EINVAL:
		snprintf(msg, len,
		    "a feature of '%s' %s is not a finite number (missing high, low or "
		    "volume?)",
		    sym->name, when);
		return PSF_STATUS_FAILED_PRECONDITION;
	case PSF_ENOMEM: snprintf(msg, len, "out of memory"); return PSF_STATUS_RESOURCE_EXHAUSTED;
	default:
		snprintf(msg, len, "cannot predict '%s': %s", sym->name, psf_strerror(err));
		return PSF_STATUS_INTERNAL;
	}
}

/* merged is a series of kept history followed by the caller's bars. */
typedef struct merged {
	psf_series s;
	void *block;
} merged;

static double
bar_value(double v)
{
	return v > 0 && isfinite(v) ? v : NAN; /* proto3: an absent field reads 0 */
}

/* merge_recent appends in->recent to the kept rows dated before its first bar. */
static psf_status
merge_recent(const inf_symbol *sym, const Psfleet__V1__PredictRequest *in, merged *m, char *msg,
    size_t len)
{
	const psf_series *h = &sym->hist;
	size_t nr = in->n_recent, keep = 0, n;
	int32_t first, prev = INT32_MIN;
	double *c;
	int32_t *d;

	if (nr > INF_MAX_RECENT) {
		snprintf(msg, len, "%zu recent bars: at most %u are accepted", nr, INF_MAX_RECENT);
		return PSF_STATUS_INVALID_ARGUMENT;
	}
	if (psf_date_parse(in->recent[0]->date, strlen(in->recent[0]->date), &first) != PSF_OK) {
		snprintf(msg, len, "recent bar 0: date '%.32s' is not YYYY-MM-DD",
		    in->recent[0]->date);
		return PSF_STATUS_INVALID_ARGUMENT;
	}
	while (keep < h->n && h->date[keep] < first)
		keep++;
	n = keep + nr;
	if ((m->block = malloc(n * (5 * sizeof(double) + sizeof(int32_t)))) == NULL) {
		snprintf(msg, len, "out of memory");
		return PSF_STATUS_RESOURCE_EXHAUSTED;
	}
	c = m->block;
	d = (int32_t *)(c + 5 * n);
	m->s = (psf_series){sym->name, n, d, c, c + n, c + 2 * n, c + 3 * n, c + 4 * n};
	for (size_t i = 0; i < keep; i++) {
		const double *cols[5] = {h->close, h->open, h->high, h->low, h->volume};
		d[i] = h->date[i];
		for (int k = 0; k < 5; k++)
			c[k * n + i] = cols[k] != NULL ? cols[k][i] : NAN;
	}
	for (size_t j = 0; j < nr; j++) {
		const Psfleet__V1__Bar *b = in->recent[j];
		size_t i = keep + j;
		if (psf_date_parse(b->date, strlen(b->date), &d[i]) != PSF_OK || d[i] <= prev) {
			snprintf(msg, len,
			    "recent bar %zu: date '%.32s' is not a YYYY-MM-DD date after the "
			    "previous bar's",
			    j, b->date);
			return PSF_STATUS_INVALID_ARGUMENT;
		}
		if (!(b->close > 0) || !isfinite(b->close)) {
			snprintf(msg, len, "recent bar %zu (%s): close must be a finite number > 0",
			    j, b->date);
			return PSF_STATUS_INVALID_ARGUMENT;
		}
		prev = d[i];
		c[i] = b->close;
		c[n + i] = bar_value(b->open);
		c[2 * n + i] = bar_value(b->high);
		c[3 * n + i] = bar_value(b->low);
		c[4 * n + i] = bar_value(b->volume);
	}
	return PSF_STATUS_OK;
}

/* on_demand computes the prediction at `date` from the kept history (and the
 * caller's bars). */
static psf_status
on_demand(psf_inferer *inf, const inf_snap *snap, const inf_symbol *sym,
    const Psfleet__V1__PredictRequest *in, int32_t date, answer *a, char *msg, size_t len)
{
	const inf_book *b = snap->book;
	merged m = {sym->hist, NULL};
	size_t xlen = b->window * b->n_features;
	float x[256], *xp = xlen <= 256 ? x : malloc(xlen * sizeof(float));
	psf_model_ws *ws = NULL;
	psf_status st = PSF_STATUS_OK;
	char when[40];
	size_t t;
	psf_err err;

	if (date == PSF_DATE_LAST)
		snprintf(when, sizeof(when), "at its last bar");
	else
		snprintf(when, sizeof(when), "on or before %.10s", in->as_of);
	if (xp == NULL) {
		snprintf(msg, len, "out of memory");
		return PSF_STATUS_RESOURCE_EXHAUSTED;
	}
	if (in->n_recent > 0 && (st = merge_recent(sym, in, &m, msg, len)) != PSF_STATUS_OK)
		goto out;
	err = psf_features_window(&m.s, inf->cfg->features, inf->cfg->n_features, date, b->window,
	    xp, xlen, &a->as_of);
	if (err != PSF_OK) {
		st = row_error(inf, sym, &m.s, err, when, msg, len);
		goto out;
	}
	if ((ws = inf_ws_take(inf)) == NULL) {
		st = row_error(inf, sym, &m.s, PSF_ENOMEM, when, msg, len);
		goto out;
	}
	if ((err = inf_predict_row(inf, ws, snap, xp, sym->row, &a->prediction)) != PSF_OK) {
		st = row_error(inf, sym, &m.s, err, when, msg, len);
		goto out;
	}
	t = psf_series_index(&m.s, a->as_of);
	a->last_close = m.s.close[t];
	psf_date_format(a->as_of, a->day);
out:
	if (ws != NULL)
		inf_ws_give(inf, ws);
	free(m.block);
	if (xp != x)
		free(xp);
	return st;
}

/* predict_point answers one request's point prediction with snapshot snap. */
static psf_status
predict_point(psf_inferer *inf, const inf_snap *snap, const Psfleet__V1__PredictRequest *in,
    answer *a, char *msg, size_t len)
{
	const inf_book *b = snap->book;
	size_t slen = strlen(in->symbol), i;
	int32_t date = PSF_DATE_LAST;
	const inf_symbol *sym;

	if (slen == 0 || slen > PSF_SYMBOL_MAX) {
		snprintf(msg, len, "a symbol of 1 to %d bytes is required", PSF_SYMBOL_MAX);
		return PSF_STATUS_INVALID_ARGUMENT;
	}
	if ((i = inf_book_find(b, in->symbol, slen)) == SIZE_MAX) {
		uint32_t shard = psf_inference_shard_of(in->symbol, inf->cfg->inference.shards);
		if (shard != inf->node->shard)
			snprintf(msg, len,
			    "symbol '%s' belongs to inference shard %u; %s serves shard %u "
			    "of %u",
			    in->symbol, shard, inf->node->id, inf->node->shard,
			    inf->cfg->inference.shards);
		else
			snprintf(msg, len, "unknown symbol '%s'", in->symbol);
		return PSF_STATUS_NOT_FOUND;
	}
	sym = &b->syms[i];
	if (in->as_of[0] != '\0' && psf_date_parse(in->as_of, strlen(in->as_of), &date) != PSF_OK) {
		snprintf(msg, len, "as_of '%.32s' is not a YYYY-MM-DD date", in->as_of);
		return PSF_STATUS_INVALID_ARGUMENT;
	}
	if (in->n_recent > 0 || date < sym->latest_date)
		return on_demand(inf, snap, sym, in, date, a, msg, len);
	if (snap->pred_err[i] != PSF_OK)
		return row_error(inf, sym, &sym->hist, snap->pred_err[i], "at its last bar", msg,
		    len);
	a->prediction = snap->pred[i];
	a->last_close = sym->latest_close;
	a->as_of = sym->latest_date;
	memcpy(a->day, sym->latest_day, sizeof(a->day));
	return PSF_STATUS_OK;
}

/* predict_one answers one request with snapshot snap: the point prediction,
 * and its interval when the request asks for a coverage. */
static psf_status
predict_one(psf_inferer *inf, const inf_snap *snap, const Psfleet__V1__PredictRequest *in,
    answer *a, char *msg, size_t len)
{
	psf_status st = inf_interval_check(in->coverage, msg, len);

	a->coverage = 0;
	if (st == PSF_STATUS_OK)
		st = predict_point(inf, snap, in, a, msg, len);
	if (st != PSF_STATUS_OK || in->coverage == 0.0)
		return st;
	a->coverage = in->coverage;
	return inf_interval(inf, in->coverage, a->prediction, a->last_close, &a->lower, &a->upper,
	    &a->interval_n, msg, len);
}

/* fill_reply points r at the answer (strings borrowed from in, a and statics). */
static void
fill_reply(psf_inferer *inf, const inf_snap *snap, const Psfleet__V1__PredictRequest *in, answer *a,
    Psfleet__V1__PredictReply *r)
{
	psfleet__v1__predict_reply__init(r);
	r->symbol = in->symbol;
	r->prediction = a->prediction;
	r->target = (char *)psf_target_name(inf->cfg->target);
	r->model_version = snap->version;
	r->as_of = a->day;
	r->last_close = a->last_close;
	if (inf->cfg->target == PSF_TARGET_NEXT_RETURN)
		r->predicted_close = a->last_close * (1.0 + a->prediction);
	else if (inf->cfg->target == PSF_TARGET_NEXT_CLOSE)
		r->predicted_close = a->prediction;
	if (a->coverage > 0) {
		r->lower = a->lower;
		r->upper = a->upper;
		r->coverage = a->coverage;
		r->interval_n = a->interval_n;
	}
}

static inf_snap *
snap_or_fail(psf_inferer *inf, void *call)
{
	inf_snap *s = inf_snap_get(inf);

	if (s == NULL)
		psf_rpc_fail(call, PSF_STATUS_UNAVAILABLE, "%s has no snapshot yet", inf->node->id);
	return s;
}

void
psf_inf_rpc_predict(Psfleet__V1__Inference_Service *svc, const Psfleet__V1__PredictRequest *in,
    Psfleet__V1__PredictReply_Closure done, void *call)
{
	psf_inferer *inf = psf_rpc_call_user(call);
	Psfleet__V1__PredictReply r;
	inf_snap *snap = snap_or_fail(inf, call);
	char msg[256];
	answer a;
	psf_status st;

	(void)svc;
	if (snap == NULL) {
		done(NULL, call);
		return;
	}
	psf_counter_inc(inf->c_predictions);
	st = predict_one(inf, snap, in, &a, msg, sizeof(msg));
	if (st != PSF_STATUS_OK) {
		psf_rpc_fail(call, st, "%s", msg);
		done(NULL, call);
	} else {
		fill_reply(inf, snap, in, &a, &r);
		done(&r, call);
	}
	inf_snap_put(snap);
}

/* batch_mem is every array a batch reply needs, in one allocation. */
typedef struct batch_mem {
	Psfleet__V1__PredictResult *res;
	Psfleet__V1__PredictResult **resp;
	Psfleet__V1__PredictReply *rep;
	answer *ans;
	void *block;
} batch_mem;

static psf_err
batch_alloc(size_t n, batch_mem *m)
{
	size_t one = sizeof(*m->res) + sizeof(*m->resp) + sizeof(*m->rep) + sizeof(*m->ans);
	char *p = malloc((n > 0 ? n : 1) * one);

	if (p == NULL)
		return PSF_ENOMEM;
	m->block = p;
	m->res = (Psfleet__V1__PredictResult *)p;
	m->rep = (Psfleet__V1__PredictReply *)(p + n * sizeof(*m->res));
	m->ans = (answer *)(p + n * (sizeof(*m->res) + sizeof(*m->rep)));
	m->resp = (Psfleet__V1__PredictResult **)(p +
	    n * (sizeof(*m->res) + sizeof(*m->rep) + sizeof(*m->ans)));
	return PSF_OK;
}

void
psf_inf_rpc_predict_batch(Psfleet__V1__Inference_Service *svc,
    const Psfleet__V1__PredictBatchRequest *in, Psfleet__V1__PredictBatchReply_Closure done,
    void *call)
{
	psf_inferer *inf = psf_rpc_call_user(call);
	Psfleet__V1__PredictBatchReply r = PSFLEET__V1__PREDICT_BATCH_REPLY__INIT;
	inf_snap *snap;
	batch_mem m;
	char msg[256];
	size_t n = in->n_items;

	(void)svc;
	if (n > INF_MAX_BATCH) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "%zu items: at most %u per batch",
		    n, INF_MAX_BATCH);
		done(NULL, call);
		return;
	}
	if ((snap = snap_or_fail(inf, call)) == NULL) {
		done(NULL, call);
		return;
	}
	if (batch_alloc(n, &m) != PSF_OK) {
		inf_snap_put(snap);
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory for %zu items", n);
		done(NULL, call);
		return;
	}
	psf_counter_add(inf->c_predictions, n);
	for (size_t i = 0; i < n; i++) {
		psf_status st = predict_one(inf, snap, in->items[i], &m.ans[i], msg, sizeof(msg));
		psfleet__v1__predict_result__init(&m.res[i]);
		m.res[i].status = st;
		if (st == PSF_STATUS_OK) {
			fill_reply(inf, snap, in->items[i], &m.ans[i], &m.rep[i]);
			m.res[i].reply = &m.rep[i];
		} else {
			m.res[i].message = strdup(msg); /* failures are rare: one string each */
			if (m.res[i].message == NULL)
				m.res[i].message = oom_text;
		}
		m.resp[i] = &m.res[i];
	}
	r.n_results = n;
	r.results = m.resp;
	done(&r, call);
	for (size_t i = 0; i < n; i++)
		if (m.res[i].status != PSF_STATUS_OK && m.res[i].message != oom_text)
			free(m.res[i].message);
	free(m.block);
	inf_snap_put(snap);
}

/* info_tensors describes the model's tensors (arrays freed by the caller). */
static psf_err
info_tensors(psf_inferer *inf, Psfleet__V1__TensorInfo **tp, Psfleet__V1__TensorInfo ***tpp,
    uint32_t **shapes, size_t *n_out)
{
	size_t n = psf_model_n_tensors(inf->model);

	*tp = calloc(n > 0 ? n : 1, sizeof(**tp));
	*tpp = calloc(n > 0 ? n : 1, sizeof(**tpp));
	*shapes = calloc(2 * (n > 0 ? n : 1), sizeof(**shapes));
	if (*tp == NULL || *tpp == NULL || *shapes == NULL)
		return PSF_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		psf_tensor_info ti;
		Psfleet__V1__TensorInfo *t = &(*tp)[i];
		if (psf_model_tensor_info(inf->model, i, &ti) != PSF_OK)
			return PSF_EINTERNAL;
		psfleet__v1__tensor_info__init(t);
		t->name = (char *)ti.name;
		(*shapes)[2 * i] = ti.rows;
		(*shapes)[2 * i + 1] = ti.cols;
		t->shape = &(*shapes)[2 * i];
		t->n_shape = 2;
		t->per_symbol = ti.is_per_symbol;
		(*tpp)[i] = t;
	}
	*n_out = n;
	return PSF_OK;
}

void
psf_inf_rpc_model_info(Psfleet__V1__Inference_Service *svc, const Psfleet__V1__ModelInfoRequest *in,
    Psfleet__V1__ModelInfoReply_Closure done, void *call)
{
	psf_inferer *inf = psf_rpc_call_user(call);
	Psfleet__V1__ModelInfoReply r = PSFLEET__V1__MODEL_INFO_REPLY__INIT;
	Psfleet__V1__TensorInfo *tp = NULL, **tpp = NULL;
	uint32_t *shapes = NULL;
	char **feats = calloc(inf->cfg->n_features, sizeof(char *));
	inf_snap *snap = snap_or_fail(inf, call);
	inf_metrics m;
	size_t n_t = 0;

	(void)svc;
	(void)in;
	if (snap == NULL || feats == NULL ||
	    info_tensors(inf, &tp, &tpp, &shapes, &n_t) != PSF_OK) {
		if (snap != NULL)
			psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		done(NULL, call);
		goto out;
	}
	for (size_t i = 0; i < inf->cfg->n_features; i++)
		feats[i] = inf->cfg->features[i].name;
	r.model_version = snap->version;
	r.n_shard_versions = snap->n_shards;
	r.shard_versions = snap->shard_versions;
	r.n_tensors = n_t;
	r.tensors = tpp;
	r.n_features = inf->cfg->n_features;
	r.features = feats;
	r.target = (char *)psf_target_name(inf->cfg->target);
	r.model = (char *)psf_model_kind_name(inf->cfg->model.kind);
	r.trained_steps = snap->trained_steps;
	pthread_mutex_lock(&inf->snap_mu);
	m = inf->metrics;
	pthread_mutex_unlock(&inf->snap_mu);
	r.test_rmse = m.has ? m.test_rmse : 0;
	r.test_mae = m.has ? m.test_mae : 0;
	r.naive_rmse = m.has ? m.naive_rmse : 0;
	r.symbols = (uint32_t)snap->book->n;
	r.shard = inf->node->shard;
	r.shards = inf->cfg->inference.shards;
	r.node = inf->node->id;
	r.residuals = m.n_resid;
	done(&r, call);
out:
	inf_snap_put(snap);
	free(feats);
	free(tp);
	free(tpp);
	free(shapes);
}

void
inf_predict_init(psf_inferer *inf)
{
	Psfleet__V1__Inference_Service svc = PSFLEET__V1__INFERENCE__INIT(psf_inf_rpc_);

	inf->svc = svc;
}
