/* server.c -- a parameter-server node's lifecycle: store, model, shard map,
 * initialisation or resume, RPC service, timer thread (ps.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/shard.h"
#include "lib/base/util.h"
#include "ps/internal.h"
#include "ps/optim.h"

/* layout describes everything the stored tensors depend on, one token per fact,
 * so a mismatch can be named precisely. */
static void
layout_string(const psf_ps *ps, char *buf, size_t len)
{
	const psf_config *cfg = ps->cfg;
	size_t n = 0;
	char fp[32];

	n += (size_t)snprintf(buf + n, len - n, "model=%d features=%u target=%d",
	    (int)cfg->model.kind, (unsigned)cfg->n_features, (int)cfg->target);
	for (size_t i = 0; i < psf_model_n_tensors(ps->model) && n < len; i++) {
		psf_tensor_info t;
		if (psf_model_tensor_info(ps->model, i, &t) == PSF_OK)
			n += (size_t)snprintf(buf + n, len - n, " tensor.%s=%ux%u%s", t.name,
			    t.rows, t.cols, t.is_per_symbol ? "/symbol" : "");
	}
	if (n < len)
		n += (size_t)snprintf(buf + n, len - n,
		    " chunk=%u optimizer=%d shards=%zu shard=%zu", cfg->model.chunk_floats,
		    (int)cfg->optimizer.kind, ps->n_ps, ps->shard);
	/* The shards' names (the first n_shards ps ids): every replica of a shard
	 * writes the same layout, and a replicated fleet's layout is that of an
	 * unreplicated fleet of its first n_shards nodes. */
	for (size_t i = 0; i < cfg->n_shards && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, " ps%zu=%s", i, cfg->nodes[i].id);
	/* Last, so a mismatch names a readable fact first; it still catches feature
	 * and seed changes the tokens above do not spell out. */
	psf_config_fingerprint(cfg, fp, sizeof(fp));
	if (n < len)
		snprintf(buf + n, len - n, " fingerprint=%s", fp);
}

/* first_difference writes "'a' (store) vs 'b' (config)" for the first token that
 * differs between two layout strings. */
static void
first_difference(const char *stored, const char *want, char *out, size_t len)
{
	while (*stored != '\0' || *want != '\0') {
		size_t a = strcspn(stored, " "), b = strcspn(want, " ");
		if (a != b || strncmp(stored, want, a) != 0) {
			snprintf(out, len, "the store has '%.*s', the config says '%.*s'", (int)a,
			    stored, (int)b, want);
			return;
		}
		stored += a + (stored[a] == ' ');
		want += b + (want[b] == ' ');
	}
	snprintf(out, len, "no difference found");
}

typedef struct init_ctx {
	psf_ps *ps;
	const char *layout;
	const char *settings;
} init_ctx;

/* settings_txn records the training settings (arg) the store is trained with. */
static psf_err
settings_txn(psf_store_txn *txn, void *arg)
{
	return psf_store_txn_meta_put(txn, PS_META_SETTINGS, arg, strlen(arg));
}

static psf_err
init_txn(psf_store_txn *txn, void *arg)
{
	init_ctx *c = arg;
	psf_ps *ps = c->ps;
	size_t n_keys = psf_model_n_dense_keys(ps->model), n = 0;
	uint64_t *keys = malloc((n_keys > 0 ? n_keys : 1) * sizeof(*keys));
	uint32_t *lens = malloc((n_keys > 0 ? n_keys : 1) * sizeof(*lens));
	float *buf = NULL;
	psf_err err = (keys && lens) ? PSF_OK : PSF_ENOMEM;

	if (err == PSF_OK)
		err = psf_model_dense_keys(ps->model, keys, lens, n_keys, &n);
	if (err == PSF_OK &&
	    (buf = malloc((size_t)ps->cfg->model.chunk_floats * sizeof(float))) == NULL)
		err = PSF_ENOMEM;
	for (size_t i = 0; i < n && err == PSF_OK; i++) {
		if (!ps_key_owned(ps, keys[i]))
			continue;
		err = psf_model_init_value(ps->model, keys[i], buf);
		if (err == PSF_OK)
			err =
			    psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, keys[i], buf, lens[i]);
	}
	if (err == PSF_OK)
		err = psf_store_txn_meta_put(txn, "layout", c->layout, strlen(c->layout));
	if (err == PSF_OK)
		err = settings_txn(txn, (void *)c->settings);
	if (err == PSF_OK)
		err = psf_store_txn_meta_put_u64(txn, "version", 0);
	if (err == PSF_OK)
		err = psf_store_txn_meta_put_u64(txn, "step", 0);
	if (err == PSF_OK)
		err = psf_store_txn_meta_put_u64(txn, "round", 0);
	free(keys);
	free(lens);
	free(buf);
	return err;
}

typedef struct resume_ctx {
	psf_ps *ps;
	char stored[4096];
	char *settings; /* the stored training settings (malloc), NULL when none */
	bool found;
} resume_ctx;

static psf_err
restore_worker(const char *worker, uint64_t seq, void *arg)
{
	psf_ps *ps = ((resume_ctx *)arg)->ps;
	ps_worker *w;

	if (ps_worker_add(ps, worker, &w) != PSF_OK)
		return PSF_OK; /* an id this config cannot hold: ignore, it must re-register */
	w->last_seq = seq;
	return PSF_OK;
}

static psf_err
clear_txn(psf_store_txn *txn, void *arg)
{
	(void)arg;
	return psf_store_txn_clear_all(txn);
}

static psf_err
resume_txn(psf_store_txn *txn, void *arg)
{
	resume_ctx *c = arg;
	psf_ps *ps = c->ps;
	const void *data;
	size_t len;
	uint64_t v;
	char name[160];
	psf_err err = psf_store_txn_meta_get(txn, "layout", &data, &len);

	if (err == PSF_ENOENT)
		return PSF_OK;
	if (err != PSF_OK)
		return err;
	c->found = true;
	snprintf(c->stored, sizeof(c->stored), "%.*s", (int)len, (const char *)data);
	if ((err = psf_store_txn_meta_get(txn, PS_META_SETTINGS, &data, &len)) == PSF_OK) {
		if ((c->settings = strndup(data, len)) == NULL)
			return PSF_ENOMEM;
	} else if (err != PSF_ENOENT) {
		return err;
	}
	if (psf_store_txn_meta_get_u64(txn, "version", &v) == PSF_OK)
		ps->version = v;
	if (psf_store_txn_meta_get_u64(txn, "step", &v) == PSF_OK)
		ps->step = v;
	if (psf_store_txn_meta_get_u64(txn, "round", &v) == PSF_OK)
		ps->round = (int64_t)v;
	if (psf_store_txn_meta_get_u64(txn, "lr_horizon", &v) == PSF_OK &&
	    ps->cfg->optimizer.total_steps == 0)
		ps->optim.total_steps = v;
	if ((err = psf_store_txn_pushlog_foreach(txn, restore_worker, c)) != PSF_OK)
		return err;
	if ((err = ps_reduces_restore(ps, txn)) != PSF_OK)
		return err;
	if ((err = ps_reports_restore(ps, txn)) != PSF_OK)
		return err;
	for (size_t i = 0; i < ps->n_workers; i++) {
		ps_meta_worker_key(name, sizeof(name), "wclock", ps->workers[i].id);
		if (psf_store_txn_meta_get_u64(txn, name, &v) == PSF_OK)
			ps->workers[i].clock = (int64_t)v;
		ps->workers[i].registered = false; /* must register again after a restart */
	}
	return PSF_OK;
}

psf_err
ps_reload(psf_ps *ps)
{
	resume_ctx *rc = calloc(1, sizeof(*rc));
	psf_err err;

	if (rc == NULL)
		return PSF_ENOMEM;
	rc->ps = ps;
	pthread_mutex_lock(&ps->mu);
	ps->n_workers = 0;
	ps_reduces_free(ps);
	ps_snapshot_evict_all(ps);
	ps->version = ps->step = 0;
	ps->round = 0;
	ps->optim = ps->cfg->optimizer;
	err = psf_store_read(ps->store, resume_txn, rc);
	for (size_t i = 0; i < ps->cfg->n_nodes && err == PSF_OK; i++) {
		ps_worker *w;
		if (ps->cfg->nodes[i].role == PSF_ROLE_TRAINER)
			err = ps_worker_add(ps, ps->cfg->nodes[i].id, &w);
	}
	ps->round_open_ms = psf_now_ms();
	psf_gauge_set(ps->g_version, (double)ps->version);
	psf_log_info("ps", "shard %zu: state reloaded from the store at version %llu (round %lld)",
	    ps->shard, (unsigned long long)ps->version, (long long)ps->round);
	pthread_mutex_unlock(&ps->mu);
	free(rc->settings);
	free(rc);
	return err;
}

/* mismatch tells why the store found cannot be resumed under this config (one
 * line in why), or returns false when it can. Training settings are compared
 * first: their message names every changed key. */
static bool
mismatch(const psf_ps *ps, const resume_ctx *rc, const char *layout, const char *settings,
    char *why, size_t len)
{
	char diff[1024];

	if (rc->settings != NULL &&
	    ps_train_settings_diff(rc->settings, settings, diff, sizeof(diff)) > 0) {
		snprintf(why, len, "%s holds a model trained with other settings: %s",
		    ps->node->data_dir, diff);
		return true;
	}
	if (strcmp(rc->stored, layout) != 0) {
		first_difference(rc->stored, layout, diff, sizeof(diff));
		snprintf(why, len, "%s was made by an incompatible config: %s", ps->node->data_dir,
		    diff);
		return true;
	}
	return false;
}

/* discard empties the store (every record) and forgets the state resumed from it. */
static psf_err
discard(psf_ps *ps, resume_ctx *rc)
{
	psf_err err;

	/* Emptied in place, not deleted and reopened: the store keeps its
	 * directory lock, so no other ps can slip in meanwhile. */
	if ((err = psf_store_update(ps->store, clear_txn, NULL)) != PSF_OK)
		return err;
	ps->n_workers = 0; /* with the reports restored from the discarded store */
	ps_reduces_free(ps);
	ps->version = ps->step = 0;
	ps->round = 0;
	rc->found = false;
	return PSF_OK;
}

/* open_store opens the LMDB store (first restoring it from a backup directory
 * when restore is not NULL) and initialises or resumes it: a store that does not
 * fit the config is refused, or discarded with reset; fresh discards any store. */
static psf_err
open_store(psf_ps *ps, psf_ps_reset reset, const char *restore)
{
	psf_store_opts so;
	resume_ctx *rc = calloc(1, sizeof(*rc));
	char layout[4096], why[1536];
	char *settings = ps_train_settings(ps->cfg);
	init_ctx ic = {ps, layout, settings};
	psf_err err;

	if (rc == NULL || settings == NULL) {
		err = PSF_ENOMEM;
		goto out;
	}
	rc->ps = ps;
	layout_string(ps, layout, sizeof(layout));
	psf_store_opts_from_cfg(&ps->cfg->durability, &so);
	if (restore != NULL &&
	    (err = ps_restore(ps->node->data_dir, restore, ps->cfg->nodes[ps->shard].id)) != PSF_OK)
		goto out;
	ps->restored = restore != NULL; /* every replica of the shard starts from that copy */
	if ((err = psf_store_open(ps->node->data_dir, &so, &ps->store)) != PSF_OK)
		goto out;
	if ((err = psf_store_read(ps->store, resume_txn, rc)) != PSF_OK)
		goto out;
	if (rc->found && reset == PSF_PS_RESET_ALWAYS) {
		psf_log_warn("ps", "--fresh: discarding %s (model version %llu)",
		    ps->node->data_dir, (unsigned long long)ps->version);
		if ((err = discard(ps, rc)) != PSF_OK)
			goto out;
	} else if (rc->found && mismatch(ps, rc, layout, settings, why, sizeof(why))) {
		if (reset == PSF_PS_RESET_NONE) {
			/* One line, the one `psfleet up` quotes (exit 2: not restarted). */
			psf_log_err("ps",
			    "%s; start with --fresh to discard it and train afresh, or "
			    "restore those settings to resume",
			    why);
			err = PSF_ECONFIG;
			goto out;
		}
		psf_log_warn("ps", "--reset: discarding: %s", why);
		if ((err = discard(ps, rc)) != PSF_OK)
			goto out;
	}
	if (!rc->found) {
		err = psf_store_update(ps->store, init_txn, &ic);
		psf_log_info("ps", "initialised shard %zu/%zu in %s", ps->shard, ps->n_ps,
		    ps->node->data_dir);
		goto out;
	}
	if (rc->settings == NULL) { /* made before settings were recorded: adopt these */
		psf_log_warn("ps",
		    "%s does not record its training settings; resuming it with the "
		    "config's (start with --fresh to train afresh)",
		    ps->node->data_dir);
		if ((err = psf_store_update(ps->store, settings_txn, settings)) != PSF_OK)
			goto out;
	}
	psf_log_info("ps", "resumed shard %zu/%zu from %s at version %llu (round %lld)", ps->shard,
	    ps->n_ps, ps->node->data_dir, (unsigned long long)ps->version, (long long)ps->round);
out:
	if (rc != NULL)
		free(rc->settings);
	free(rc);
	free(settings);
	return err;
}

static double
store_used_bytes(void *arg)
{
	psf_store_info info;

	return psf_store_stats(((psf_ps *)arg)->store, &info) == PSF_OK ? (double)info.used_bytes
	                                                                : 0;
}

static double
store_disk_bytes(void *arg)
{
	psf_store_info info;

	return psf_store_stats(((psf_ps *)arg)->store, &info) == PSF_OK ? (double)info.disk_bytes
	                                                                : 0;
}

static psf_err
setup_metrics(psf_ps *ps)
{
	psf_metrics *reg = psf_runtime_metrics(ps->rt);
	static const double stale_bounds[] = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256};
	psf_err err;

	if ((err = psf_metrics_gauge(reg, "psfleet_model_version", "Model version on this shard",
	         NULL, 0, &ps->g_version)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_pushes_applied_total", "Pushes applied", NULL,
	         0, &ps->c_applied)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_pushes_duplicate_total",
	         "Pushes acknowledged as duplicates (not applied again)", NULL, 0,
	         &ps->c_duplicate)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_pushes_rejected_total", "Pushes rejected",
	         NULL, 0, &ps->c_rejected)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_gradients_nonfinite_total",
	         "Pushes with NaN/Inf gradients", NULL, 0, &ps->c_nonfinite)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_workers_dropped_total",
	         "Workers dropped as stragglers or for a lost lease", NULL, 0, &ps->c_dropped)) !=
	        PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_ps_finetune_rows_total",
	         "Fine-tuning rows (samples of ingested bars) stored", NULL, 0,
	         &ps->c_ft_samples)) != PSF_OK)
		return err;
	err = psf_metrics_hist(reg, "psfleet_push_staleness",
	    "Clock gap of each push: its step "
	    "minus the slowest live worker's clock (0 in sync, at most s in ssp)",
	    NULL, 0, stale_bounds, PSF_ARRAY_LEN(stale_bounds), &ps->h_staleness);
	if (err == PSF_OK)
		err = psf_metrics_gauge_fn(reg, "psfleet_store_used_bytes",
		    "LMDB pages in use, in bytes", NULL, 0, store_used_bytes, ps);
	if (err == PSF_OK)
		err = psf_metrics_gauge_fn(reg, "psfleet_store_disk_bytes",
		    "Disk blocks taken by the LMDB data file, in bytes", NULL, 0, store_disk_bytes,
		    ps);
	if (err == PSF_OK)
		psf_gauge_set(ps->g_version, (double)ps->version);
	return err;
}

/* publish_workers puts every worker's clock, lag behind the fastest, and
 * liveness on /metrics; from the timer thread, so the push path pays nothing.
 * Holds mu. */
static void
publish_workers(psf_ps *ps)
{
	psf_metrics *reg = psf_runtime_metrics(ps->rt);
	int64_t max = 0;
	psf_gauge *g;

	for (size_t i = 0; i < ps->n_workers; i++)
		max = ps->workers[i].clock > max ? ps->workers[i].clock : max;
	for (size_t i = 0; i < ps->n_workers; i++) {
		const ps_worker *w = &ps->workers[i];
		psf_label l = {"worker", w->id};
		if (psf_metrics_gauge(reg, "psfleet_worker_clock", "Steps a worker has pushed", &l,
		        1, &g) == PSF_OK)
			psf_gauge_set(g, (double)w->clock);
		if (psf_metrics_gauge(reg, "psfleet_worker_lag",
		        "Steps a worker is behind the fastest", &l, 1, &g) == PSF_OK)
			psf_gauge_set(g, (double)(max - w->clock));
		if (psf_metrics_gauge(reg, "psfleet_worker_live",
		        "1 while a worker counts in rounds and gates", &l, 1, &g) == PSF_OK)
			psf_gauge_set(g, w->live && !w->done ? 1.0 : 0.0);
	}
	if (psf_metrics_gauge(reg, "psfleet_sync_round", "The open sync round (rounds closed)",
	        NULL, 0, &g) == PSF_OK)
		psf_gauge_set(g, (double)ps->round);
}

static void *
timer_main(void *arg)
{
	psf_ps *ps = arg;

	for (unsigned tick = 0;; tick++) {
		parked *ready;

		psf_sleep_ms(20);
		pthread_mutex_lock(&ps->mu);
		if (ps->stopping) {
			pthread_mutex_unlock(&ps->mu);
			return NULL;
		}
		if (tick % 25 == 0) /* every 500 ms */
			publish_workers(ps);
		/* A replica that is not its shard's primary writes nothing: its
		 * in-memory state is rebuilt from the store when it is promoted. */
		if ((ps_check_timeouts(ps, psf_now_ms()) ||
		        (psf_consistency_rounds(ps->cfg->consistency.mode) &&
		            ps_round_complete(ps))) &&
		    ps_repl_may_write(ps))
			ps_close_round(ps);
		ready = ps_take_ready(ps);
		pthread_mutex_unlock(&ps->mu);
		ps_answer_parked(ps, ready);
	}
}

static psf_err
start_rpc(psf_ps *ps, const psf_ps_opts *opts)
{
	psf_rpc_server_opts so;
	const char *url = (opts != NULL && opts->listen != NULL) ? opts->listen : ps->node->listen;
	psf_err err;

	if ((err = psf_runtime_server_opts(ps->cfg, ps->token, sizeof(ps->token), &so)) != PSF_OK)
		return err;
	ps_handlers_init(ps);
	if ((err = psf_rpc_server_new(&so, &ps->srv)) != PSF_OK ||
	    (err = psf_rpc_server_add_service(ps->srv, &ps->svc.base, ps)) != PSF_OK ||
	    (err = ps_admin_open(ps)) != PSF_OK || (err = ps_handlers_add_raw(ps)) != PSF_OK ||
	    (err = ps_repl_serve(ps)) != PSF_OK)
		return err;
	psf_runtime_observe_rpc(ps->rt, ps->srv);
	if ((err = psf_rpc_server_listen(ps->srv, url, ps->url, sizeof(ps->url))) != PSF_OK)
		return err;
	return psf_rpc_server_start(ps->srv);
}

psf_err
psf_ps_new(const psf_config *cfg, const psf_node_cfg *node, const psf_ps_opts *opts, psf_ps **out)
{
	psf_ps *ps = calloc(1, sizeof(*ps));
	const char *metrics = node->metrics;
	uint64_t version;
	psf_err err;

	if (ps == NULL)
		return PSF_ENOMEM;
	ps->cfg = cfg;
	ps->node = node;
	pthread_mutex_init(&ps->mu, NULL);
	pthread_mutex_init(&ps->report_mu, NULL);
	pthread_mutex_init(&ps->ft_mu, NULL);
	if (opts != NULL && opts->metrics != NULL)
		metrics = opts->metrics[0] != '\0' ? opts->metrics : NULL;
	ps->workers = calloc(PS_MAX_WORKERS, sizeof(*ps->workers));
	ps->n_ps = cfg->n_shards; /* shards, not nodes: replicas share their shard */
	ps->shard = psf_config_ps_shard(cfg, node->index);
	ps->ps_seeds = calloc(cfg->n_shards, sizeof(*ps->ps_seeds));
	if (ps->workers == NULL || ps->ps_seeds == NULL) {
		err = PSF_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_shards; i++)
		ps->ps_seeds[i] = psf_shard_node_seed(cfg->nodes[i].id);
	ps->state_floats = psf_optim_state_floats(cfg->optimizer.kind);
	ps->optim = cfg->optimizer;
	if ((err = psf_runtime_new(node->id, "ps", metrics, &ps->rt)) != PSF_OK ||
	    (err = psf_optim_check(&cfg->optimizer)) != PSF_OK ||
	    (err = psf_model_new(&cfg->model, (uint32_t)cfg->n_features, cfg->target, cfg->seed,
	         &ps->model)) != PSF_OK ||
	    (err = open_store(ps, opts != NULL ? opts->reset : PSF_PS_RESET_NONE,
	         opts != NULL ? opts->restore : NULL)) != PSF_OK ||
	    (err = setup_metrics(ps)) != PSF_OK || (err = ps_repl_open(ps)) != PSF_OK)
		goto fail;
	/* Every configured trainer is expected in sync rounds from the start. */
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		ps_worker *w;
		if (cfg->nodes[i].role == PSF_ROLE_TRAINER &&
		    (err = ps_worker_add(ps, cfg->nodes[i].id, &w)) != PSF_OK)
			goto fail;
	}
	ps->round_open_ms = psf_now_ms();
	if ((err = start_rpc(ps, opts)) != PSF_OK)
		goto fail;
	if (pthread_create(&ps->timer, NULL, timer_main, ps) != 0) {
		err = PSF_ESYS;
		goto fail;
	}
	ps->timer_started = true;
	if ((err = ps_repl_start(ps)) != PSF_OK)
		goto fail;
	psf_runtime_set_ready(ps->rt, true, NULL);
	pthread_mutex_lock(&ps->mu); /* handlers may already be applying pushes */
	version = ps->version;
	pthread_mutex_unlock(&ps->mu);
	psf_log_info("ps", "serving shard %zu/%zu on %s (%s, version %llu)", ps->shard, ps->n_ps,
	    ps->url, psf_consistency_name(cfg->consistency.mode), (unsigned long long)version);
	*out = ps;
	return PSF_OK;
fail:
	psf_log_err("ps", "%s failed to start: %s", node->id, psf_strerror(err));
	psf_ps_free(ps);
	return err;
}

const char *
psf_ps_url(const psf_ps *ps)
{
	return ps->url;
}

void
psf_ps_free(psf_ps *ps)
{
	parked *left;

	if (ps == NULL)
		return;
	ps_repl_stop(ps); /* no election or catch-up from here on */
	pthread_mutex_lock(&ps->mu);
	ps->stopping = true;
	left = ps_take_ready(ps); /* all of them: stopping */
	pthread_mutex_unlock(&ps->mu);
	if (ps->timer_started)
		pthread_join(ps->timer, NULL);
	ps_answer_parked(ps, left);
	if (ps->store != NULL)
		ps_backup_stop(ps);
	psf_rpc_server_free(ps->srv); /* no handler runs after this */
	psf_admin_free(ps->admin);
	ps_repl_free(ps);
	while (ps->parked != NULL) { /* parked after we looked: their calls are gone */
		parked *p = ps->parked;
		ps->parked = p->next;
		free(p);
	}
	ps_reduces_free(ps);
	ps_snapshot_free_all(ps);
	psf_store_close(ps->store);
	psf_model_free(ps->model);
	psf_runtime_free(ps->rt);
	free(ps->ps_seeds);
	free(ps->workers);
	pthread_mutex_destroy(&ps->mu);
	pthread_mutex_destroy(&ps->report_mu);
	pthread_mutex_destroy(&ps->ft_mu);
	free(ps);
}

psf_err
psf_ps_run(const psf_config *cfg, const psf_node_cfg *node, const psf_ps_opts *opts)
{
	psf_ps *ps;
	psf_err err = psf_ps_new(cfg, node, opts, &ps);

	if (err != PSF_OK)
		return err;
	while (!psf_runtime_wait(ps->rt, 1000))
		;
	psf_log_info("ps", "stopping");
	psf_ps_free(ps);
	return PSF_OK;
}
