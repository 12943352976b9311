/* inferer.c -- an inferer node's lifecycle: data, model, ps clients, RPC
 * services (with its part of the Admin service), the refresh thread (inferer.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inferer/internal.h"
#include "lib/base/log.h"
#include "lib/base/util.h"

uint64_t
psf_inferer_version(psf_inferer *inf)
{
	inf_snap *s = inf_snap_get(inf);
	uint64_t v = s != NULL ? s->version : 0;

	inf_snap_put(s);
	return v;
}

const char *
psf_inferer_url(const psf_inferer *inf)
{
	return inf->url;
}

static bool
same_versions(const inf_snap *s, const uint64_t *v, size_t n)
{
	if (s == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s->shard_versions[i] != v[i])
			return false;
	return true;
}

/* note_failure records why a refresh failed; logged once per streak. PSF_ESTATE is
 * a wait, not a fault: the trainers' statistics are not reduced yet (before the
 * first model), or the shards' versions kept moving during the fetch (sync
 * training): logged at info. Anything else is a warning. Holds refresh_mu. */
static void
note_failure(psf_inferer *inf, psf_err err, bool has_snap)
{
	char reason[256];
	bool first;

	if (err == PSF_ESTATE)
		snprintf(reason, sizeof(reason), "refresh: %s",
		    inf->waiting_stats ? "waiting for the trainers' standardisation statistics"
		                       : "shard versions moved during the fetch");
	else
		snprintf(reason, sizeof(reason), "refresh: %s", psf_strerror(err));
	pthread_mutex_lock(&inf->snap_mu);
	first = inf->last_error[0] == '\0';
	snprintf(inf->last_error, sizeof(inf->last_error), "%s", reason);
	pthread_mutex_unlock(&inf->snap_mu);
	psf_counter_inc(inf->c_refresh_errors);
	if (first && err == PSF_ESTATE)
		psf_log_info("inferer", "%s%s", reason,
		    has_snap ? " (keeping the current model)" : " (will keep trying)");
	else if (first)
		psf_log_warn("inferer", "%s%s", reason,
		    has_snap ? " (keeping the current model)" : " (will keep trying)");
	if (!has_snap) {
		snprintf(reason, sizeof(reason), "no snapshot yet (%s)",
		    err == PSF_ESTATE && inf->waiting_stats
		        ? "waiting for the trainers' standardisation statistics"
		        : psf_strerror(err));
		psf_runtime_set_ready(inf->rt, false, reason);
	}
}

psf_err
psf_inferer_refresh(psf_inferer *inf, uint64_t *version_out)
{
	uint64_t *vers = calloc(inf->n_ps, sizeof(uint64_t));
	inf_snap *cur, *fresh = NULL;
	psf_err err;

	if (vers == NULL)
		return PSF_ENOMEM;
	pthread_mutex_lock(&inf->refresh_mu);
	cur = inf_snap_get(inf);
	err = inf_ps_versions(inf, vers);
	if (err == PSF_OK && !same_versions(cur, vers, inf->n_ps) &&
	    (err = inf_snap_fetch(inf, &fresh)) == PSF_OK) {
		inf_fetch_metrics(inf);
		if (cur == NULL || fresh->version != cur->version)
			psf_log_info("inferer", "serving model version %llu (%zu keys)",
			    (unsigned long long)fresh->version, fresh->n_keys);
		psf_gauge_set(inf->g_version, (double)fresh->version);
		psf_counter_inc(inf->c_swaps);
		inf_snap_publish(inf, fresh);
		psf_runtime_set_ready(inf->rt, true, NULL);
	}
	if (err == PSF_OK && fresh == NULL &&
	    psf_now_ms() - inf->metrics.fetched_ms >= INF_METRICS_MS)
		inf_fetch_metrics(inf); /* reports come after the weights they evaluate */
	if (err != PSF_OK) {
		note_failure(inf, err, cur != NULL);
	} else {
		pthread_mutex_lock(&inf->snap_mu);
		inf->last_error[0] = '\0';
		pthread_mutex_unlock(&inf->snap_mu);
	}
	inf_snap_put(cur);
	pthread_mutex_unlock(&inf->refresh_mu);
	free(vers);
	if (version_out != NULL)
		*version_out = psf_inferer_version(inf);
	return err;
}

static void *
refresh_main(void *arg)
{
	psf_inferer *inf = arg;

	for (;;) {
		struct timespec ts;
		uint64_t ns;
		psf_err err = psf_inferer_refresh(inf, NULL);

		(void)err; /* recorded by note_failure, and tried again next period */
		{
			inf_snap *s = inf_snap_get(inf);
			psf_gauge_set(inf->g_age,
			    s != NULL ? (double)(psf_now_ms() - s->built_ms) / 1e3 : 0);
			inf_snap_put(s);
		}
		pthread_mutex_lock(&inf->stop_mu);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ns = (uint64_t)ts.tv_nsec + (uint64_t)inf->refresh_ms * 1000000ull;
		ts.tv_sec += (time_t)(ns / 1000000000ull);
		ts.tv_nsec = (long)(ns % 1000000000ull);
		while (!inf->stopping &&
		    pthread_cond_timedwait(&inf->stop_cv, &inf->stop_mu, &ts) == 0)
			;
		if (inf->stopping) {
			pthread_mutex_unlock(&inf->stop_mu);
			return NULL;
		}
		pthread_mutex_unlock(&inf->stop_mu);
	}
}

static psf_err
setup_metrics(psf_inferer *inf)
{
	psf_metrics *reg = psf_runtime_metrics(inf->rt);
	psf_err err;

	if ((err = psf_metrics_gauge(reg, "psfleet_inferer_model_version", "Model version served",
	         NULL, 0, &inf->g_version)) != PSF_OK ||
	    (err = psf_metrics_gauge(reg, "psfleet_inferer_symbols", "Symbols served", NULL, 0,
	         &inf->g_symbols)) != PSF_OK ||
	    (err = psf_metrics_gauge(reg, "psfleet_inferer_snapshot_age_seconds",
	         "Seconds since the model served was swapped in", NULL, 0, &inf->g_age)) !=
	        PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_inferer_swaps_total", "Snapshots swapped in",
	         NULL, 0, &inf->c_swaps)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_inferer_refresh_errors_total",
	         "Refreshes that failed (the model served stays)", NULL, 0,
	         &inf->c_refresh_errors)) != PSF_OK)
		return err;
	if ((err = psf_metrics_counter(reg, "psfleet_inferer_ingested_rows_total",
	         "Bars accepted by Ingest (journal replays included)", NULL, 0,
	         &inf->c_ingested)) != PSF_OK ||
	    (err = psf_metrics_gauge(reg, "psfleet_inferer_finetune_pending_rows",
	         "Fine-tuning rows of ingested bars not yet acknowledged by ps0", NULL, 0,
	         &inf->g_ft_pending)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_inferer_finetune_rows_sent_total",
	         "Fine-tuning rows acknowledged by ps0 (duplicates included)", NULL, 0,
	         &inf->c_ft_sent)) != PSF_OK)
		return err;
	return psf_metrics_counter(reg, "psfleet_inferer_predictions_total",
	    "Predictions asked for (batch items count one each)", NULL, 0, &inf->c_predictions);
}

static psf_err
open_ps_clients(psf_inferer *inf, const psf_inferer_opts *opts)
{
	psf_rpc_client_opts co;
	psf_err err;

	inf->n_ps = inf->cfg->n_shards;
	if ((inf->ps = calloc(inf->n_ps, sizeof(*inf->ps))) == NULL)
		return PSF_ENOMEM;
	if ((err = psf_runtime_client_opts(inf->cfg, inf->token, sizeof(inf->token), &co)) !=
	    PSF_OK)
		return err;
	for (size_t s = 0; s < inf->n_ps; s++) {
		if ((err = psf_runtime_shard_group(inf->cfg, s, opts != NULL ? opts->ps_urls : NULL,
		         &co, &inf->ps[s])) != PSF_OK)
			return err;
	}
	return PSF_OK;
}

static uint64_t
health_version(void *arg)
{
	return psf_inferer_version(arg);
}

/* admin_status reports the served snapshot: its version, its shards' versions
 * and age, with the inferer's shard, symbols and last refresh error. */
static psf_err
admin_status(void *arg, psf_admin_status *st)
{
	psf_inferer *inf = arg;
	char versions[256] = "", age[32] = "", err[256];
	inf_snap *s = inf_snap_get(inf);
	size_t used = 0;
	psf_err rv;

	for (size_t i = 0; s != NULL && i < s->n_shards && used < sizeof(versions); i++)
		used += (size_t)snprintf(versions + used, sizeof(versions) - used, "%s%llu",
		    i ? "," : "", (unsigned long long)s->shard_versions[i]);
	if (s != NULL)
		snprintf(age, sizeof(age), "%.3f", (double)(psf_now_ms() - s->built_ms) / 1e3);
	pthread_mutex_lock(&inf->snap_mu);
	snprintf(err, sizeof(err), "%s", inf->last_error);
	pthread_mutex_unlock(&inf->snap_mu);
	psf_admin_status_version(st, s != NULL ? s->version : 0);
	inf_snap_put(s);
	if ((rv = psf_admin_status_extra(st, "shard", "%u/%u", inf->node->shard,
	         inf->cfg->inference.shards)) != PSF_OK ||
	    (rv = psf_admin_status_extra(st, "symbols", "%zu", inf_book_n(inf))) != PSF_OK ||
	    (rv = psf_admin_status_extra(st, "shard_versions", "%s", versions)) != PSF_OK ||
	    (rv = psf_admin_status_extra(st, "snapshot_age_seconds", "%s", age)) != PSF_OK)
		return rv;
	return psf_admin_status_extra(st, "last_refresh_error", "%s", err);
}

static psf_err
start_rpc(psf_inferer *inf, const psf_inferer_opts *opts)
{
	psf_rpc_server_opts so;
	const char *url = (opts != NULL && opts->listen != NULL) ? opts->listen : inf->node->listen;
	psf_admin_role admin = {health_version, admin_status, inf};
	psf_err err;

	if ((err = psf_runtime_server_opts(inf->cfg, inf->token, sizeof(inf->token), &so)) !=
	    PSF_OK)
		return err;
	inf_predict_init(inf);
	if ((err = psf_rpc_server_new(&so, &inf->srv)) != PSF_OK ||
	    (err = psf_rpc_server_add_service(inf->srv, &inf->svc.base, inf)) != PSF_OK ||
	    (err = psf_admin_new(inf->rt, &admin, inf->srv, &inf->admin)) != PSF_OK)
		return err;
	psf_runtime_observe_rpc(inf->rt, inf->srv);
	if ((err = psf_rpc_server_listen(inf->srv, url, inf->url, sizeof(inf->url))) != PSF_OK)
		return err;
	return psf_rpc_server_start(inf->srv);
}

static psf_inferer *
inferer_alloc(const psf_config *cfg, const psf_node_cfg *node, const psf_inferer_opts *opts)
{
	psf_inferer *inf = calloc(1, sizeof(*inf));
	pthread_condattr_t ca;

	if (inf == NULL)
		return NULL;
	inf->cfg = cfg;
	inf->node = node;
	inf->journal_fd = -1;
	inf->refresh_ms =
	    (opts != NULL && opts->refresh_ms != 0) ? opts->refresh_ms : cfg->inference.refresh_ms;
	pthread_mutex_init(&inf->snap_mu, NULL);
	pthread_mutex_init(&inf->refresh_mu, NULL);
	pthread_mutex_init(&inf->ws_mu, NULL);
	pthread_mutex_init(&inf->stop_mu, NULL);
	pthread_mutex_init(&inf->ftq.mu, NULL);
	pthread_cond_init(&inf->ftq.cv, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&inf->stop_cv, &ca);
	pthread_condattr_destroy(&ca);
	return inf;
}

psf_err
psf_inferer_new(const psf_config *cfg, const psf_node_cfg *node, const psf_inferer_opts *opts,
    psf_inferer **out)
{
	psf_inferer *inf;
	const char *metrics = node->metrics;
	psf_err err;

	if (node->role != PSF_ROLE_INFERER) {
		psf_log_err("inferer", "%s is a %s, not an inferer", node->id,
		    psf_role_name(node->role));
		return PSF_EINVAL;
	}
	if ((inf = inferer_alloc(cfg, node, opts)) == NULL)
		return PSF_ENOMEM;
	if (opts != NULL && opts->metrics != NULL)
		metrics = opts->metrics[0] != '\0' ? opts->metrics : NULL;
	if ((err = psf_runtime_new(node->id, "inferer", metrics, &inf->rt)) != PSF_OK)
		goto fail;
	psf_runtime_set_ready(inf->rt, false, "loading data");
	if ((err = setup_metrics(inf)) != PSF_OK ||
	    (err = psf_model_new(&cfg->model, (uint32_t)cfg->n_features, cfg->target, cfg->seed,
	         &inf->model)) != PSF_OK ||
	    (err = inf_book_load(cfg, node->shard, cfg->inference.shards, &inf->book)) != PSF_OK ||
	    (err = inf_journal_open(inf)) != PSF_OK ||
	    (err = open_ps_clients(inf, opts)) != PSF_OK || (err = inf_ft_start(inf)) != PSF_OK)
		goto fail;
	psf_gauge_set(inf->g_symbols, (double)inf->book->n);
	psf_runtime_set_ready(inf->rt, false, "no snapshot yet");
	if ((err = start_rpc(inf, opts)) != PSF_OK)
		goto fail;
	if (pthread_create(&inf->thread, NULL, refresh_main, inf) != 0) {
		err = PSF_ESYS;
		goto fail;
	}
	inf->thread_started = true;
	psf_log_info("inferer", "%s serving shard %u/%u on %s (refresh every %u ms)", node->id,
	    node->shard, cfg->inference.shards, inf->url, inf->refresh_ms);
	*out = inf;
	return PSF_OK;
fail:
	psf_log_err("inferer", "%s failed to start: %s", node->id, psf_strerror(err));
	psf_inferer_free(inf);
	return err;
}

void
psf_inferer_free(psf_inferer *inf)
{
	if (inf == NULL)
		return;
	pthread_mutex_lock(&inf->stop_mu);
	inf->stopping = true;
	pthread_cond_broadcast(&inf->stop_cv);
	pthread_mutex_unlock(&inf->stop_mu);
	if (inf->thread_started)
		pthread_join(inf->thread, NULL);
	psf_rpc_server_free(inf->srv); /* handlers are done after this */
	psf_admin_free(inf->admin);
	inf_ft_stop(inf); /* before the ps clients it sends with */
	for (size_t s = 0; inf->ps != NULL && s < inf->n_ps; s++)
		psf_rpc_group_close(inf->ps[s]);
	free(inf->ps);
	inf_snap_put(inf->cur);
	for (size_t i = 0; i < inf->n_ws; i++)
		psf_model_ws_free(inf->ws_pool[i]);
	inf_journal_close(inf);
	inf_book_put(inf->book);
	psf_model_free(inf->model);
	psf_runtime_free(inf->rt);
	pthread_cond_destroy(&inf->stop_cv);
	pthread_mutex_destroy(&inf->stop_mu);
	pthread_mutex_destroy(&inf->ws_mu);
	pthread_mutex_destroy(&inf->ftq.mu);
	pthread_cond_destroy(&inf->ftq.cv);
	pthread_mutex_destroy(&inf->refresh_mu);
	pthread_mutex_destroy(&inf->snap_mu);
	free(inf);
}

psf_err
psf_inferer_run(const psf_config *cfg, const psf_node_cfg *node, const psf_inferer_opts *opts)
{
	psf_inferer *inf;
	psf_err err = psf_inferer_new(cfg, node, opts, &inf);

	if (err != PSF_OK)
		return err;
	while (!psf_runtime_wait(inf->rt, 1000))
		;
	psf_log_info("inferer", "stopping");
	psf_inferer_free(inf);
	return PSF_OK;
}
