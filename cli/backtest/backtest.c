/* backtest.c -- run the fleets of `psfleet backtest` and collect the forecasts
 * (backtest.h). */
#include "cli/backtest/backtest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/supervisor.h"
#include "client/psfleet_client.h"
#include "lib/base/rhist.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/data/data.h"
#include "lib/runtime/runtime.h"

#define PATH_LEN 1024
#define TICK_MS 50
#define READY_TIMEOUT_MS 60000
#define SERVE_TIMEOUT_MS 60000
#define STOP_GRACE_MS 10000

/* One origin's fleet. */
typedef struct origin_run {
	const bt_opts *o;
	const psf_dataset *ds;
	bt_result *res;
	uint32_t k;
	int32_t origin;
	char run_dir[PATH_LEN];
	const char *sets[BT_MAX_SETS + 8];
	size_t n_sets;
	char own[8][2 * PATH_LEN + 64];
	size_t n_own;
	psf_config *cfg;
	psf_supervisor *sv;
	psf_progress *probe;
	char *errbuf;
	size_t errlen;
} origin_run;

static psf_err fail(char *errbuf, size_t errlen, psf_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static psf_err
fail(char *errbuf, size_t errlen, psf_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	return err;
}

static void
add_set(origin_run *r, const char *key, const char *value)
{
	char q[2 * PATH_LEN + 4];

	psf_cli_yaml_quote(value, q, sizeof(q));
	snprintf(r->own[r->n_own], sizeof(r->own[0]), "%s=%s", key, q);
	r->sets[r->n_sets++] = r->own[r->n_own++];
}

/* serve_url is where the backtest asks for forecasts: the gateway, or the
 * inferer when there is one inference shard. NULL when neither serves all. */
static const char *
serve_url(const psf_config *cfg)
{
	for (size_t i = 0; i < cfg->n_nodes; i++)
		if (cfg->nodes[i].role == PSF_ROLE_GATEWAY)
			return psf_node_dial_url(&cfg->nodes[i]);
	if (cfg->inference.shards == 1)
		for (size_t i = 0; i < cfg->n_nodes; i++)
			if (cfg->nodes[i].role == PSF_ROLE_INFERER)
				return psf_node_dial_url(&cfg->nodes[i]);
	return NULL;
}

static bool
ps_ready(void *arg, size_t i, char *why, size_t len)
{
	origin_run *r = arg;
	psf_runtime_health h;

	psf_progress_health(r->probe, i, true, 500, &h);
	snprintf(why, len, "%s", h.reason);
	return h.ready;
}

/* start_fleet starts the ps nodes, waits for them, then every other node. */
static psf_err
start_fleet(origin_run *r)
{
	psf_supervisor_opts so;
	size_t *idx;
	char err[1024];
	psf_err rv = PSF_OK;

	memset(&so, 0, sizeof(so));
	so.name = "psfleet backtest";
	so.exe = r->o->exe;
	so.config_path = r->o->config_path;
	so.sets = r->sets;
	so.n_sets = r->n_sets;
	so.log_dir = r->run_dir;
	so.max_failures = 1;
	so.no_finetune = true;
	if ((rv = psf_supervisor_new(r->cfg, &so, &r->sv)) != PSF_OK ||
	    (rv = psf_progress_new(r->cfg, NULL, false, &r->probe)) != PSF_OK)
		return fail(r->errbuf, r->errlen, rv, "cannot set up the supervisor: %s",
		    psf_strerror(rv));
	if ((idx = calloc(r->cfg->n_ps + 1, sizeof(*idx))) == NULL)
		return fail(r->errbuf, r->errlen, PSF_ENOMEM, "out of memory");
	for (size_t i = 0; i < r->cfg->n_nodes && rv == PSF_OK; i++) {
		if (i == r->cfg->n_ps &&
		    (rv = psf_supervisor_wait_ready(r->sv, idx, r->cfg->n_ps, READY_TIMEOUT_MS,
		         r->o->stop, ps_ready, r, err, sizeof(err))) != PSF_OK)
			rv = fail(r->errbuf, r->errlen, rv, "%s", err);
		else if (psf_supervisor_start(r->sv, i) != PSF_OK)
			rv = fail(r->errbuf, r->errlen, PSF_ESYS, "cannot start %s: %s",
			    r->cfg->nodes[i].id, strerror(errno));
		else if (i < r->cfg->n_ps)
			idx[i] = i;
	}
	free(idx);
	return rv;
}

/* wait_trained ticks the supervisor until every trainer exited 0. */
static psf_err
wait_trained(origin_run *r, uint64_t deadline)
{
	char err[1024];

	for (;;) {
		size_t left = 0;

		if (r->o->stop != NULL && *r->o->stop)
			return fail(r->errbuf, r->errlen, PSF_ECLOSED, "interrupted");
		if (psf_now_ms() >= deadline)
			return fail(r->errbuf, r->errlen, PSF_ETIMEDOUT,
			    "origin %u: trainers not done in time (logs in %s)", r->k, r->run_dir);
		if (psf_supervisor_tick(r->sv, err, sizeof(err)) != PSF_OK)
			return fail(r->errbuf, r->errlen, PSF_EUNAVAIL, "origin %u: %s", r->k, err);
		for (size_t i = 0; i < r->cfg->n_nodes; i++) {
			psf_child_info ci;

			psf_supervisor_child(r->sv, i, &ci);
			left += ci.node->role == PSF_ROLE_TRAINER && ci.state != PSF_CHILD_DONE;
		}
		if (left == 0)
			return PSF_OK;
		psf_sleep_ms(TICK_MS);
	}
}

/* final_model reads ps0's Stats: the model version and the number of held-out
 * residuals the trainers reported with their last evaluation. */
static psf_err
final_model(origin_run *r, uint64_t *version, uint64_t *n_resid)
{
	Psfleet__V1__StatsReply *st = NULL;
	psf_err err = psf_progress_stats(r->probe, 0, 5000, &st);

	if (err != PSF_OK)
		return fail(r->errbuf, r->errlen, err, "origin %u: Stats from %s: %s", r->k,
		    r->cfg->nodes[0].id, psf_strerror(err));
	*version = st->model_version;
	*n_resid = 0;
	for (size_t i = 0; i < st->n_reports; i++)
		*n_resid +=
		    psf_rhist_total(st->reports[i]->residual_hist, st->reports[i]->n_residual_hist);
	protobuf_c_message_free_unpacked(&st->base, NULL);
	return PSF_OK;
}

/* wait_served polls the serving endpoint until it answers with the final model
 * and all the held-out residuals (the inferers read the trainers' last reports
 * with every new model and every 5 s). */
static psf_err
wait_served(origin_run *r, psf_client *c, const char *probe_symbol, uint64_t version,
    uint64_t n_resid)
{
	uint64_t deadline = psf_now_ms() + SERVE_TIMEOUT_MS;
	psf_prediction p;
	psf_interval iv;

	for (;;) {
		int rc = psf_client_predict_interval(c, probe_symbol, NULL, 0.5, &p, &iv);

		if (rc == PSF_CLIENT_OK && p.model_version >= version && iv.n == n_resid)
			return PSF_OK;
		if (r->o->stop != NULL && *r->o->stop)
			return fail(r->errbuf, r->errlen, PSF_ECLOSED, "interrupted");
		if (psf_now_ms() >= deadline)
			return fail(r->errbuf, r->errlen, PSF_ETIMEDOUT,
			    "origin %u: the fleet did not serve model version %llu with %llu "
			    "residuals within %d s (last answer: %s %s; logs in %s)",
			    r->k, (unsigned long long)version, (unsigned long long)n_resid,
			    SERVE_TIMEOUT_MS / 1000, psf_client_status_name(rc), p.message,
			    r->run_dir);
		psf_sleep_ms(100);
	}
}

static psf_err
push_row(bt_result *res, const bt_row *row)
{
	if (res->n_rows == res->cap_rows) {
		size_t cap = res->cap_rows ? 2 * res->cap_rows : 1024;
		bt_row *n = realloc(res->rows, cap * sizeof(*n));

		if (n == NULL)
			return PSF_ENOMEM;
		res->rows = n;
		res->cap_rows = cap;
	}
	res->rows[res->n_rows++] = *row;
	return PSF_OK;
}

/* to_price turns a value of the target's units into a close. */
static double
to_price(const psf_config *cfg, double v, double last_close)
{
	return cfg->target == PSF_TARGET_NEXT_RETURN ? last_close * (1.0 + v) : v;
}

/* forecast_day asks for every symbol's forecast of `date` from the bar of
 * as_of, at every coverage level, and records the rows. */
static psf_err
forecast_day(origin_run *r, psf_client *c, uint32_t h, int32_t as_of, int32_t date,
    psf_prediction *p, psf_interval *iv)
{
	bt_result *res = r->res;
	size_t n = res->n_symbols;
	char day[11];
	psf_err err;

	psf_date_format(as_of, day);
	for (size_t k = 0; k < res->n_cov; k++) {
		int rc = psf_client_predict_batch_interval(c, (const char *const *)res->symbols, n,
		    day, res->coverage[k], p + k * n, iv + k * n);
		if (rc != PSF_CLIENT_OK)
			return fail(r->errbuf, r->errlen, PSF_EUNAVAIL,
			    "origin %u: PredictBatch as of %s: %s: %s", r->k, day,
			    psf_client_status_name(rc), p[k * n].message);
	}
	for (size_t s = 0; s < n; s++) {
		const psf_series *ser = psf_dataset_find(r->ds, res->symbols[s]);
		size_t t = ser != NULL ? psf_series_index(ser, date) : SIZE_MAX;
		bt_row row;
		bool ok = ser != NULL && t != SIZE_MAX && ser->date[t] == date && t > 0 &&
		    ser->date[t - 1] == as_of;

		for (size_t k = 0; ok && k < res->n_cov; k++)
			ok = p[k * n + s].status == PSF_CLIENT_OK &&
			    strcmp(p[k * n + s].as_of, day) == 0;
		if (!ok) {
			res->skipped++;
			continue;
		}
		memset(&row, 0, sizeof(row));
		row.origin = r->k;
		row.sym = (uint32_t)s;
		row.h = h;
		row.as_of = as_of;
		row.date = date;
		row.version = p[s].model_version;
		row.last_close = ser->close[t - 1];
		row.actual = ser->close[t];
		row.pred = to_price(r->cfg, p[s].prediction, row.last_close);
		for (size_t k = 0; k < res->n_cov; k++) {
			row.lo[k] = to_price(r->cfg, iv[k * n + s].lower, row.last_close);
			row.hi[k] = to_price(r->cfg, iv[k * n + s].upper, row.last_close);
		}
		if ((err = push_row(res, &row)) != PSF_OK)
			return fail(r->errbuf, r->errlen, err, "out of memory");
	}
	return PSF_OK;
}

/* client_opts fills the client's options from the config's security section,
 * as the nodes (and psfleet status) dial each other: the token from token_file or
 * token_env (kept in tok, which must outlive the client), and for tls+tcp:// the
 * CA, the expected server name and the certificate for mutual TLS. */
static psf_err
client_opts(origin_run *r, char *tok, size_t toklen, psf_client_opts *co)
{
	psf_rpc_client_opts ro;
	psf_err err = psf_runtime_client_opts(r->cfg, tok, toklen, &ro);

	if (err != PSF_OK)
		return fail(r->errbuf, r->errlen, err,
		    "%s: cannot read the security settings (token_file or token_env): %s",
		    r->o->config_path, psf_strerror(err));
	memset(co, 0, sizeof(*co));
	co->timeout_ms = 30000;
	co->token = ro.token;
	co->ca_file = ro.tls.ca_file;
	co->server_name = ro.tls.server_name;
	co->cert_file = ro.tls.cert_file;
	co->key_file = ro.tls.key_file;
	return PSF_OK;
}

/* forecast asks the served fleet for the window's forecasts. */
static psf_err
forecast(origin_run *r, const int32_t *dates, size_t oi, uint64_t version, uint64_t n_resid)
{
	bt_result *res = r->res;
	const char *url = serve_url(r->cfg);
	psf_client_opts co;
	psf_client *c = NULL;
	size_t n = res->n_symbols * res->n_cov;
	psf_prediction *p = calloc(n, sizeof(*p));
	psf_interval *iv = calloc(n, sizeof(*iv));
	char tok[256];
	psf_err err = PSF_OK;

	if (p == NULL || iv == NULL) {
		err = fail(r->errbuf, r->errlen, PSF_ENOMEM, "out of memory");
		goto out;
	}
	if ((err = client_opts(r, tok, sizeof(tok), &co)) != PSF_OK)
		goto out;
	if (psf_client_open(url, &co, &c) != PSF_CLIENT_OK) {
		err = fail(r->errbuf, r->errlen, PSF_EUNAVAIL, "cannot open a client for %s", url);
		goto out;
	}
	if ((err = wait_served(r, c, res->symbols[0], version, n_resid)) != PSF_OK)
		goto out;
	for (uint32_t h = 0; h < res->horizon && err == PSF_OK; h++)
		err = forecast_day(r, c, h + 1, dates[oi + h - 1], dates[oi + h], p, iv);
out:
	psf_client_close(c);
	free(p);
	free(iv);
	return err;
}

/* run_origin trains and serves one origin's fleet and collects its forecasts. */
static psf_err
run_origin(origin_run *r, const int32_t *dates, size_t oi)
{
	uint32_t timeout_s = r->o->run_timeout_s ? r->o->run_timeout_s : 1800;
	uint64_t t0 = psf_now_ms(), version = 0, n_resid = 0;
	char err[512], day[11];
	psf_err rv;

	psf_date_format(r->origin, day);
	for (size_t i = 0; i < r->o->n_sets; i++)
		r->sets[r->n_sets++] = r->o->sets[i];
	add_set(r, "run_dir", r->run_dir);
	add_set(r, "data.train_end", day);
	snprintf(r->own[r->n_own], sizeof(r->own[0]), "inference.history_days=%u",
	    r->res->history_days);
	r->sets[r->n_sets++] = r->own[r->n_own++];
	if (psf_rm_rf(r->run_dir) != PSF_OK || psf_mkdir_p(r->run_dir) != PSF_OK)
		return fail(r->errbuf, r->errlen, PSF_ESYS, "cannot make %s: %s", r->run_dir,
		    strerror(errno));
	if ((rv = psf_config_load_ex(r->o->config_path, r->sets, r->n_sets, err, sizeof(err),
	         &r->cfg)) != PSF_OK)
		return fail(r->errbuf, r->errlen, rv, "%s", err);
	if ((rv = start_fleet(r)) == PSF_OK &&
	    (rv = wait_trained(r, t0 + (uint64_t)timeout_s * 1000)) == PSF_OK &&
	    (rv = final_model(r, &version, &n_resid)) == PSF_OK)
		rv = forecast(r, dates, oi, version, n_resid);
	r->res->train_s[r->k] = (double)(psf_now_ms() - t0) / 1000.0;
	r->res->resid_n[r->k] = n_resid;
	if (r->sv != NULL)
		psf_supervisor_stop(r->sv, STOP_GRACE_MS, NULL);
	return rv;
}

/* load_data reads the config (with the caller's overrides) and its data: the
 * symbols and the sorted dates. */
static psf_err
load_data(const bt_opts *o, bt_result *res, psf_config **cfg_out, psf_dataset **ds_out,
    psf_data_index **idx_out, char *errbuf, size_t errlen)
{
	char err[512];
	psf_data_opts dopts = {0};
	psf_err rv;

	if ((rv = psf_config_load_ex(o->config_path, o->sets, o->n_sets, err, sizeof(err),
	         cfg_out)) != PSF_OK)
		return fail(errbuf, errlen, rv, "%s", err);
	if ((*cfg_out)->target == PSF_TARGET_NEXT_DIRECTION)
		return fail(errbuf, errlen, PSF_ECONFIG,
		    "a backtest needs a price forecast (target next_close or next_return), "
		    "not next_direction");
	if (serve_url(*cfg_out) == NULL)
		return fail(errbuf, errlen, PSF_ECONFIG,
		    "a backtest needs a gateway, or an inferer when inference.shards is 1");
	dopts.bad_rows = (*cfg_out)->data.bad_rows;
	if ((rv = psf_data_load((*cfg_out)->data.path, &dopts, err, sizeof(err), ds_out)) != PSF_OK)
		return fail(errbuf, errlen, PSF_ECONFIG, "%s", err);
	if ((rv = psf_data_index_from(*ds_out, idx_out)) != PSF_OK)
		return fail(errbuf, errlen, rv, "cannot index the data: %s", psf_strerror(rv));
	res->n_symbols = psf_dataset_n_series(*ds_out);
	if ((res->symbols = calloc(res->n_symbols + 1, sizeof(char *))) == NULL)
		return fail(errbuf, errlen, PSF_ENOMEM, "out of memory");
	for (size_t i = 0; i < res->n_symbols; i++)
		if ((res->symbols[i] = strdup(psf_dataset_series(*ds_out, i)->symbol)) == NULL)
			return fail(errbuf, errlen, PSF_ENOMEM, "out of memory");
	snprintf(res->target, sizeof(res->target), "%s", psf_target_name((*cfg_out)->target));
	res->history_days = (*cfg_out)->inference.history_days + o->origins * o->horizon;
	snprintf(res->interval_scale, sizeof(res->interval_scale), "%s",
	    psf_config_interval_by_price(*cfg_out) ? "price" : "none");
	return PSF_OK;
}

psf_err
bt_run(const bt_opts *o, bt_result *res, char *errbuf, size_t errlen)
{
	psf_config *cfg = NULL;
	psf_dataset *ds = NULL;
	psf_data_index *idx = NULL;
	const int32_t *dates;
	size_t nd, first;
	psf_err rv;

	memset(res, 0, sizeof(*res));
	res->horizon = o->horizon;
	res->n_cov = o->n_cov;
	memcpy(res->coverage, o->coverage, sizeof(res->coverage));
	if ((rv = load_data(o, res, &cfg, &ds, &idx, errbuf, errlen)) != PSF_OK)
		goto out;
	dates = psf_data_index_dates(idx, &nd);
	if ((uint64_t)o->origins * o->horizon + 30 > nd) {
		rv = fail(errbuf, errlen, PSF_ECONFIG,
		    "%zu dates in %s: %u origins x %u days need at least %llu (30 before the "
		    "first origin)",
		    nd, cfg->data.path, o->origins, o->horizon,
		    (unsigned long long)o->origins * o->horizon + 30);
		goto out;
	}
	first = nd - (size_t)o->origins * o->horizon;
	res->n_origins = o->origins;
	res->origin_dates = calloc(o->origins, sizeof(int32_t));
	res->train_s = calloc(o->origins, sizeof(double));
	res->resid_n = calloc(o->origins, sizeof(uint64_t));
	if (res->origin_dates == NULL || res->train_s == NULL || res->resid_n == NULL) {
		rv = fail(errbuf, errlen, PSF_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t k = 0; k < o->origins; k++)
		res->origin_dates[k] = dates[first + (size_t)k * o->horizon];
	for (uint32_t k = 0; k < o->origins; k++) {
		origin_run r;
		char day[11];
		size_t before = res->n_rows;

		memset(&r, 0, sizeof(r));
		r.o = o;
		r.ds = ds;
		r.res = res;
		r.k = k;
		r.origin = res->origin_dates[k];
		r.errbuf = errbuf;
		r.errlen = errlen;
		snprintf(r.run_dir, sizeof(r.run_dir), "%s/runs/origin-%u", o->out_dir, k);
		psf_date_format(r.origin, day);
		if (o->out != NULL)
			fprintf(o->out,
			    "psfleet backtest: origin %u/%u: train before %s, forecast %u days\n",
			    k + 1, o->origins, day, o->horizon);
		rv = run_origin(&r, dates, first + (size_t)k * o->horizon);
		psf_progress_free(r.probe);
		psf_supervisor_free(r.sv);
		psf_config_free(r.cfg);
		if (rv != PSF_OK)
			goto out;
		if (o->out != NULL)
			fprintf(o->out,
			    "psfleet backtest:   %zu forecasts in %.1f s (%llu held-out residuals)\n",
			    res->n_rows - before, res->train_s[k],
			    (unsigned long long)res->resid_n[k]);
	}
out:
	psf_data_index_free(idx);
	psf_dataset_free(ds);
	psf_config_free(cfg);
	return rv;
}

void
bt_result_fini(bt_result *res)
{
	for (size_t i = 0; res->symbols != NULL && i < res->n_symbols; i++)
		free(res->symbols[i]);
	free(res->symbols);
	free(res->origin_dates);
	free(res->rows);
	free(res->train_s);
	free(res->resid_n);
	memset(res, 0, sizeof(*res));
}
