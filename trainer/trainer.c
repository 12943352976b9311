/* trainer.c -- the training loop of a trainer node (trainer.h). */
#include "trainer/trainer.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/shard.h"
#include "lib/base/util.h"
#include "lib/data/data.h"
#include "lib/data/features.h"
#include "lib/model/model.h"
#include "lib/runtime/admin.h"
#include "lib/runtime/runtime.h"
#include "trainer/internal.h"
#include "trainer/ps_client.h"

/* Where a step's time went: waiting on the ps (pull, push) or computing. */
typedef struct step_times {
	uint64_t pull_ns, compute_ns, push_ns;
	int64_t staleness;
	uint64_t version;
} step_times;

/* trainer: everything one training run holds. */
typedef struct trainer {
	const psf_config *cfg;
	const psf_node_cfg *node;
	const psf_trainer_opts *opts;
	psf_runtime *rt;
	psf_ps_client *w;
	psf_model *model;
	psf_model_ws *ws;
	psf_params *params, *grads;
	psf_table *table;
	psf_windows win; /* the rows with a full input window (W = 1: every row) */
	double *stats;
	size_t n_stats;
	uint64_t *sym_rows; /* per table symbol */
	uint32_t *perm;     /* this epoch's order of train rows */
	int64_t perm_epoch;
	uint64_t steps_per_epoch, total_steps;
	/* batch scratch */
	size_t *bidx; /* table rows of the batch */
	float *bx, *by;
	uint64_t *brows;
	uint64_t *keys;
	size_t keys_cap;
	/* The fused sync step (psf_ps_client_push_pull): the next step's rows and
	 * keys, and whether params already hold the next step's weights. */
	bool fuse;       /* off with PSF_TRAINER_PLAIN_COMM=1 (the bench's baseline) */
	bool prefetched; /* params hold the weights of the clock about to run */
	size_t *next_bidx;
	uint64_t *next_brows, *next_keys;
	/* Consistency mode local (local_sgd.c): the block's starting weights, the
	 * delta pushed at its end, the evaluation's own weights, key scratch. */
	bool local;
	psf_params *start, *delta, *eval_params;
	float *lscratch;
	psf_gauge *g_epoch, *g_step, *g_loss, *g_sps, *g_total;
	psf_counter *c_wait_ns, *c_compute_ns;
	FILE *trace;      /* <run_dir>/trace/<id>.csv: one line per step */
	FILE *eval_trace; /* <run_dir>/trace/<id>-eval.csv: one line per evaluation */
	step_times last;  /* timing of the last step */
	/* The Admin service, served when the node has a listen URL (start_admin). */
	psf_rpc_server *srv;
	psf_admin *admin;
	char url[256];
	char token[256];
	atomic_uint_fast64_t version; /* model version the last push saw (Health, Status) */
	psf_trainer_ft ft;            /* fine-tuning after Ingest (finetune.c) */
} trainer;

static psf_err
setup_metrics(trainer *t)
{
	psf_metrics *reg = psf_runtime_metrics(t->rt);
	psf_err err;

	if ((err = psf_metrics_gauge(reg, "psfleet_trainer_epoch", "Current epoch (0-based)", NULL,
	         0, &t->g_epoch)) != PSF_OK ||
	    (err = psf_metrics_gauge(reg, "psfleet_trainer_step", "Steps done (the worker clock)",
	         NULL, 0, &t->g_step)) != PSF_OK ||
	    (err = psf_metrics_gauge(reg, "psfleet_trainer_loss",
	         "Mean training loss of the last "
	         "steps",
	         NULL, 0, &t->g_loss)) != PSF_OK ||
	    (err = psf_metrics_gauge(reg, "psfleet_trainer_samples_per_second",
	         "Training samples per second", NULL, 0, &t->g_sps)) != PSF_OK)
		return err;
	if ((err = psf_metrics_counter(reg, "psfleet_trainer_wait_nanoseconds_total",
	         "Time spent in pull and push (waiting on the ps and the network)", NULL, 0,
	         &t->c_wait_ns)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_trainer_compute_nanoseconds_total",
	         "Time spent computing gradients", NULL, 0, &t->c_compute_ns)) != PSF_OK)
		return err;
	if ((err = psf_trainer_ft_metrics(reg, &t->ft)) != PSF_OK)
		return err;
	return psf_metrics_gauge(reg, "psfleet_trainer_total_steps", "Steps of the whole run", NULL,
	    0, &t->g_total);
}

/* fine_tunes: the first trainer fine-tunes on ingested rows once training is
 * done, when the config asks for it (`psfleet up --train-only` sets steps 0). */
static bool
fine_tunes(const trainer *t)
{
	return t->cfg->training.finetune.steps > 0 && t->node->index == 0;
}

/* finetune hands the trained model to the fine-tuning loop (finetune.c). */
static psf_err
finetune(trainer *t)
{
	t->ft.cfg = t->cfg;
	t->ft.rt = t->rt;
	t->ft.w = t->w;
	t->ft.model = t->model;
	t->ft.stats = t->stats;
	t->ft.version = &t->version;
	t->ft.g_step = t->g_step;
	t->ft.exit_at_step = t->opts != NULL ? t->opts->exit_at_step : 0;
	return psf_trainer_finetune(&t->ft);
}

/* open_traces opens (appending: a restarted trainer continues the file) the
 * per-step and per-evaluation CSV traces under <run_dir>/trace/. */
static psf_err
open_traces(trainer *t)
{
	char dir[1024], path[1200];
	psf_err err;

	snprintf(dir, sizeof(dir), "%s/trace", t->cfg->run_dir);
	if ((err = psf_mkdir_p(dir)) != PSF_OK) {
		psf_log_err("trainer", "cannot create %s: %s", dir, psf_strerror(err));
		return err;
	}
	snprintf(path, sizeof(path), "%s/%s.csv", dir, t->node->id);
	if ((t->trace = fopen(path, "a")) == NULL)
		return PSF_ESYS;
	setvbuf(t->trace, NULL, _IOLBF, 0); /* a killed trainer loses no acknowledged step */
	if (ftell(t->trace) == 0)
		fprintf(t->trace,
		    "wall_time,step,epoch,loss,staleness,pull_s,compute_s,push_s,"
		    "model_version\n");
	snprintf(path, sizeof(path), "%s/%s-eval.csv", dir, t->node->id);
	if ((t->eval_trace = fopen(path, "a")) == NULL)
		return PSF_ESYS;
	if (ftell(t->eval_trace) == 0)
		fprintf(t->eval_trace,
		    "wall_time,step,epoch,train_loss,test_rmse,test_mae,naive_rmse,"
		    "test_n,finished\n");
	return PSF_OK;
}

/* node_stop: the worker's and the loader's stop test (a node's stop request). */
static bool
node_stop(void *rt)
{
	return psf_runtime_stop_requested(rt);
}

/* make_table loads this trainer's symbols and builds the standardised table. The
 * standardisation statistics are summed over every trainer through the ps, so all
 * use the same scaling. */
static psf_err
make_table(trainer *t)
{
	char errbuf[512];
	psf_shard_plan plan;
	psf_dataset *ds = NULL;
	psf_err err;

	if ((err = psf_trainer_plan(t->cfg, t->node->index, &plan, errbuf, sizeof(errbuf))) !=
	    PSF_OK) {
		psf_log_err("trainer", "%s", errbuf);
		return err;
	}
	psf_data_opts dopts;
	psf_data_opts_config(t->cfg, &dopts);
	dopts.keep = psf_shard_plan_keep;
	dopts.keep_arg = &plan;
	dopts.stop = node_stop;
	dopts.stop_arg = t->rt;
	dopts.date_end = plan.date_end;
	uint64_t t0 = psf_now_ms();
	err = psf_data_load(t->cfg->data.path, &dopts, errbuf, sizeof(errbuf), &ds);
	if (err != PSF_OK) {
		if (err != PSF_ECLOSED) /* a stop request is not a data problem */
			psf_log_err("trainer", "%s", errbuf);
		goto out;
	}
	err = psf_features_build(ds, t->cfg->features, t->cfg->n_features, t->cfg->target,
	    plan.cutoff, errbuf, sizeof(errbuf), &t->table);
	if (err != PSF_OK) {
		psf_log_err("trainer", "features: %s", errbuf);
		goto out;
	}
	psf_log_info("trainer",
	    "loaded %zu symbols, %zu rows -> %zu train / %zu test rows in %llu ms",
	    psf_dataset_n_series(ds), psf_dataset_n_rows(ds), t->table->n_train,
	    t->table->n_rows - t->table->n_train, (unsigned long long)(psf_now_ms() - t0));
	if (psf_dataset_n_skipped(ds) > 0)
		psf_log_warn("trainer", "skipped %zu bad row%s; first: %s",
		    psf_dataset_n_skipped(ds), psf_plural(psf_dataset_n_skipped(ds)),
		    psf_dataset_first_error(ds));
out:
	psf_dataset_free(ds);
	psf_shard_plan_fini(&plan);
	return err;
}

/* make_windows indexes the table for the model's window of W days: rows with
 * fewer than W - 1 earlier rows of their symbol are left out of training and
 * evaluation. */
static psf_err
make_windows(trainer *t)
{
	uint32_t W = psf_model_window(t->model);
	size_t n_test = t->table->n_rows - t->table->n_train;
	psf_err err = psf_windows_init(&t->win, t->table, W);

	if (err != PSF_OK || W == 1)
		return err;
	psf_log_info("trainer",
	    "window of %u days: %zu of %zu train rows and %zu of %zu test rows have one "
	    "(the others lack %u earlier days of their symbol)",
	    W, t->win.n_train, t->table->n_train, t->win.n_test, n_test, W - 1);
	return PSF_OK;
}

static psf_err
standardize(trainer *t)
{
	psf_err err;

	t->n_stats = psf_features_stats_len(t->cfg->n_features);
	if ((t->stats = calloc(t->n_stats, sizeof(double))) == NULL)
		return PSF_ENOMEM;
	psf_features_stats(t->table, t->stats);
	err = psf_ps_client_reduce(t->w, PSF_REDUCE_FEATURE_STATS, (uint32_t)t->cfg->n_trainers,
	    t->stats, t->n_stats);
	if (err != PSF_OK)
		return err;
	return psf_features_standardize(t->table, t->stats, t->n_stats);
}

/* agree_steps: every trainer takes the steps of the largest shard per epoch, so
 * sync rounds line up; rows counts are shared through a reduce. */
static psf_err
agree_steps(trainer *t)
{
	size_t n = t->cfg->n_trainers;
	double *rows = calloc(n, sizeof(double));
	uint64_t max_rows = 0, batch = t->cfg->training.batch_size;
	psf_err err;

	if (rows == NULL)
		return PSF_ENOMEM;
	rows[t->node->index] = (double)t->win.n_train;
	err = psf_ps_client_reduce(t->w, PSF_REDUCE_TRAIN_ROWS, (uint32_t)n, rows, n);
	for (size_t i = 0; err == PSF_OK && i < n; i++)
		if ((uint64_t)rows[i] > max_rows)
			max_rows = (uint64_t)rows[i];
	free(rows);
	if (err != PSF_OK)
		return err;
	t->steps_per_epoch = max_rows == 0 ? 0 : (max_rows + batch - 1) / batch;
	t->total_steps = t->steps_per_epoch * t->cfg->training.epochs;
	if (t->cfg->training.max_steps != 0 && t->total_steps > t->cfg->training.max_steps)
		t->total_steps = t->cfg->training.max_steps;
	psf_gauge_set(t->g_total, (double)t->total_steps);
	psf_ps_client_set_total_steps(t->w, t->total_steps);
	if (psf_ps_client_heartbeat(t->w, false) != PSF_OK) /* announce it */
		psf_log_warn("trainer", "could not announce the run's length to the ps");
	psf_log_info("trainer",
	    "%llu steps per epoch (largest shard: %llu train rows), %llu in all",
	    (unsigned long long)t->steps_per_epoch, (unsigned long long)max_rows,
	    (unsigned long long)t->total_steps);
	return PSF_OK;
}

static psf_err
setup_model(trainer *t)
{
	size_t batch = t->cfg->training.batch_size;
	size_t n_sym = psf_model_n_symbol_tensors(t->model);
	psf_err err;

	if ((err = psf_model_ws_new(t->model, batch, &t->ws)) != PSF_OK ||
	    (err = psf_params_new(t->model, &t->params)) != PSF_OK ||
	    (err = psf_params_new(t->model, &t->grads)) != PSF_OK)
		return err;
	t->keys_cap = psf_model_n_dense_keys(t->model) + batch * (n_sym > 0 ? n_sym : 1);
	t->bidx = malloc(batch * sizeof(size_t));
	t->bx = malloc(batch * psf_model_window(t->model) * t->cfg->n_features * sizeof(float));
	t->by = malloc(batch * sizeof(float));
	t->brows = malloc(batch * sizeof(uint64_t));
	t->keys = malloc(t->keys_cap * sizeof(uint64_t));
	t->next_bidx = malloc(batch * sizeof(size_t));
	t->next_brows = malloc(batch * sizeof(uint64_t));
	t->next_keys = malloc(t->keys_cap * sizeof(uint64_t));
	if (t->local &&
	    ((err = psf_params_new(t->model, &t->start)) != PSF_OK ||
	        (err = psf_params_new(t->model, &t->delta)) != PSF_OK ||
	        (err = psf_params_new(t->model, &t->eval_params)) != PSF_OK ||
	        (t->lscratch = malloc(t->cfg->model.chunk_floats * sizeof(float))) == NULL))
		return err != PSF_OK ? err : PSF_ENOMEM;
	t->sym_rows =
	    malloc((t->table->n_symbols > 0 ? t->table->n_symbols : 1) * sizeof(uint64_t));
	t->perm = malloc((t->win.n_train > 0 ? t->win.n_train : 1) * sizeof(uint32_t));
	if (!t->bidx || !t->bx || !t->by || !t->brows || !t->keys || !t->sym_rows || !t->perm ||
	    !t->next_bidx || !t->next_brows || !t->next_keys)
		return PSF_ENOMEM;
	for (size_t i = 0; i < t->table->n_symbols; i++)
		t->sym_rows[i] = psf_symbol_row(t->table->symbols[i]);
	t->perm_epoch = -1;
	return PSF_OK;
}

/* batch_rows picks the table rows of step c among the train rows with a
 * window: epoch-seeded shuffle, wrapping around a shard smaller than the
 * largest. */
static size_t
batch_rows(trainer *t, int64_t c, size_t *rows)
{
	size_t batch = t->cfg->training.batch_size, n = t->win.n_train;
	int64_t epoch = (int64_t)((uint64_t)c / t->steps_per_epoch);
	uint64_t b = (uint64_t)c % t->steps_per_epoch;

	if (n == 0)
		return 0;
	if (epoch != t->perm_epoch) {
		psf_trainer_permute(t->perm, n, t->cfg->training.shuffle ? t->cfg->seed : 0,
		    t->node->index, (uint64_t)epoch);
		t->perm_epoch = epoch;
	}
	for (size_t i = 0; i < batch; i++)
		rows[i] = t->win.train[t->perm[(b * batch + i) % n]];
	return batch < n ? batch : n;
}

/* keys_for lists into keys the dense keys and the per-symbol keys of n batch rows. */
static psf_err
keys_for(trainer *t, const uint64_t *brows, size_t n, uint64_t *keys, size_t *n_keys)
{
	size_t nd = 0, ns = 0;
	psf_err err = psf_model_dense_keys(t->model, keys, NULL, t->keys_cap, &nd);

	if (err == PSF_OK && psf_model_n_symbol_tensors(t->model) > 0)
		err = psf_model_symbol_keys(t->model, brows, n, keys + nd, NULL, t->keys_cap - nd,
		    &ns);
	*n_keys = nd + ns;
	return err;
}

static void
inject_faults(trainer *t, int64_t c, uint64_t step_ns)
{
	if (t->opts != NULL && t->opts->exit_at_step > 0 && c == t->opts->exit_at_step) {
		psf_log_warn("trainer", "failure injection: exiting at step %lld", (long long)c);
		exit(3);
	}
	if (t->opts != NULL && t->opts->slowdown > 1.0)
		psf_sleep_ms((uint64_t)((t->opts->slowdown - 1.0) * (double)step_ns / 1e6));
	if (t->opts != NULL && t->opts->delay_ms > 0)
		psf_sleep_ms(t->opts->delay_ms);
}

/* push_step pushes step c's gradients. With the fused path on and a step after
 * c, it lists the keys of step c + 1 and pulls their weights in the same round
 * trip (t->prefetched says whether that worked). */
static psf_err
push_step(trainer *t, int64_t c, size_t n_keys, size_t n, double loss, psf_push_result *pr)
{
	size_t nn, n_next = 0;
	psf_err err;

	t->prefetched = false;
	if (!t->fuse || c + 1 >= (int64_t)t->total_steps)
		return psf_ps_client_push(t->w, c, t->grads, t->keys, n_keys, n, loss, pr);
	nn = batch_rows(t, c + 1, t->next_bidx);
	for (size_t i = 0; i < nn; i++)
		t->next_brows[i] = t->sym_rows[t->table->sym[t->next_bidx[i]]];
	if ((err = keys_for(t, t->next_brows, nn, t->next_keys, &n_next)) != PSF_OK)
		return err;
	return psf_ps_client_push_pull(t->w, c, t->grads, t->keys, n_keys, n, loss, t->next_keys,
	    n_next, t->params, pr, &t->prefetched);
}

/* local_end ends local step c: a plain SGD step on the trainer's own weights,
 * and at the end of a block of sync_every steps (or of the run) the push of the
 * block's delta for the block's first clock, which the ps averages. */
static psf_err
local_end(trainer *t, int64_t c, size_t n_keys, size_t n, double loss, psf_push_result *pr)
{
	int64_t k = (int64_t)t->cfg->consistency.sync_every;
	psf_err err = psf_local_sgd_step(t->params, t->grads, t->keys, n_keys,
	    (float)t->cfg->optimizer.learning_rate, t->lscratch);

	if (err != PSF_OK)
		return err;
	if ((c + 1) % k != 0 && c + 1 < (int64_t)t->total_steps) {
		*pr = (psf_push_result){atomic_load(&t->version), 0, 0};
		return PSF_OK; /* no communication inside a block */
	}
	if ((err = psf_local_delta(t->delta, t->start, t->params, t->keys, n_keys, t->lscratch)) !=
	    PSF_OK)
		return err;
	return psf_ps_client_push(t->w, c - c % k, t->delta, t->keys, n_keys, n, loss, pr);
}

/* step runs one training step at clock c. */
static psf_err
step(trainer *t, int64_t c, double *loss)
{
	size_t *rows = t->bidx;
	size_t wlen = (size_t)psf_model_window(t->model) * t->cfg->n_features, n, n_keys;
	psf_err err;

	n = batch_rows(t, c, rows);
	if (n == 0)
		return PSF_ESTATE;
	for (size_t i = 0; i < n; i++) {
		psf_windows_gather(&t->win, t->table, rows[i], t->bx + i * wlen);
		t->by[i] = t->table->y[rows[i]];
		t->brows[i] = t->sym_rows[t->table->sym[rows[i]]];
	}
	uint64_t t0 = psf_now_ns(), t1, t2;
	psf_push_result pr;
	bool pull =
	    !t->prefetched && (!t->local || c % (int64_t)t->cfg->consistency.sync_every == 0);
	if (pull &&
	    ((err = keys_for(t, t->brows, n, t->keys, &n_keys)) != PSF_OK ||
	        (err = psf_ps_client_pull(t->w, c, t->keys, n_keys, t->params, NULL)) != PSF_OK ||
	        (t->local &&
	            (err = psf_local_copy(t->start, t->params, t->keys, n_keys)) != PSF_OK)))
		return err;
	t1 = psf_now_ns();
	if ((err = psf_model_loss_grad(t->model, t->ws, t->params, t->bx, t->by, t->brows, n,
	         t->grads, loss)) != PSF_OK ||
	    (err = psf_params_keys(t->grads, t->keys, NULL, t->keys_cap, &n_keys)) != PSF_OK)
		return err;
	/* The whole step's norm, before the keys split over the ps nodes (whose
	 * optimizer.clip_norm sees only their own part). */
	if (t->cfg->training.clip_norm > 0)
		psf_params_clip_norm(t->grads, t->cfg->training.clip_norm, NULL);
	if (!isfinite(*loss) && !t->cfg->optimizer.skip_nonfinite) {
		/* The ps would refuse the gradients anyway; say why, once, and stop:
		 * a restart diverges the same way (exit 2, cmd_node.c). */
		psf_log_err("trainer",
		    "training diverged at step %lld: the loss is %g (lower "
		    "optimizer.learning_rate, or set optimizer.clip_norm)",
		    (long long)c, *loss);
		return PSF_EINVAL;
	}
	t2 = psf_now_ns();
	err = t->local ? local_end(t, c, n_keys, n, *loss, &pr)
	               : push_step(t, c, n_keys, n, *loss, &pr);
	if (err != PSF_OK)
		return err;
	t->last =
	    (step_times){t1 - t0, t2 - t1, psf_now_ns() - t2, pr.max_staleness, pr.model_version};
	atomic_store(&t->version, pr.model_version);
	psf_counter_add(t->c_wait_ns, t->last.pull_ns + t->last.push_ns);
	psf_counter_add(t->c_compute_ns, t->last.compute_ns);
	return PSF_OK;
}

/* cfg_has_intervals: regression targets report their held-out residuals. */
static bool
cfg_has_intervals(const psf_config *cfg)
{
	return cfg->target != PSF_TARGET_NEXT_DIRECTION;
}

static psf_err
report(trainer *t, int64_t c, double train_loss, double sps, bool finished)
{
	Psfleet__V1__MetricsReport r = PSFLEET__V1__METRICS_REPORT__INIT;
	psf_eval ev;
	psf_err err;

	int64_t k = (int64_t)t->cfg->consistency.sync_every;
	/* local: the averaged model (the last block start's, or the final round's);
	 * the trainer's own weights stay in params */
	if (t->local)
		err = psf_trainer_evaluate(t->cfg, t->model, t->ws, t->w, t->table, &t->win,
		    t->sym_rows, t->stats,
		    c % k == 0 || c == (int64_t)t->total_steps ? c : c - c % k, t->eval_params,
		    &ev);
	else
		err = psf_trainer_evaluate(t->cfg, t->model, t->ws, t->w, t->table, &t->win,
		    t->sym_rows, t->stats, c, t->params, &ev);
	if (err != PSF_OK)
		return err;
	r.epoch = (uint32_t)(t->steps_per_epoch ? (uint64_t)c / t->steps_per_epoch : 0);
	r.step = c;
	r.train_loss = train_loss;
	r.test_sse = ev.sse;
	r.test_sae = ev.sae;
	r.naive_sse = ev.naive_sse;
	r.naive_sae = ev.naive_sae;
	r.test_n = ev.n;
	r.test_correct = ev.correct;
	if (cfg_has_intervals(t->cfg)) {
		r.n_residual_hist = PSF_RHIST_BINS;
		r.residual_hist = ev.hist;
	}
	r.samples_per_sec = sps;
	r.finished = finished;
	psf_log_info("trainer",
	    "epoch %u step %lld: train loss %.6g, test rmse %.6g (naive %.6g) on "
	    "%llu rows",
	    r.epoch, (long long)c, train_loss, ev.n ? sqrt(ev.sse / (double)ev.n) : 0.0,
	    ev.n ? sqrt(ev.naive_sse / (double)ev.n) : 0.0, (unsigned long long)ev.n);
	fprintf(t->eval_trace, "%.6f,%lld,%u,%.9g,%.9g,%.9g,%.9g,%llu,%d\n", psf_wall_seconds(),
	    (long long)c, r.epoch, train_loss, ev.n ? sqrt(ev.sse / (double)ev.n) : 0.0,
	    ev.n ? ev.sae / (double)ev.n : 0.0, ev.n ? sqrt(ev.naive_sse / (double)ev.n) : 0.0,
	    (unsigned long long)ev.n, finished ? 1 : 0);
	fflush(t->eval_trace);
	fflush(t->trace);
	return psf_ps_client_report(t->w, &r);
}

static psf_err
train(trainer *t)
{
	int64_t c = psf_ps_client_clock(t->w);
	double loss_sum = 0, loss = 0;
	uint64_t loss_n = 0, t_start = psf_now_ns(), samples = 0;
	psf_err err = PSF_OK;

	if (c >= (int64_t)t->total_steps) /* restarted after the last step */
		return report(t, c, 0.0, 0.0, true);
	if (c > 0)
		psf_log_info("trainer", "resuming at step %lld", (long long)c);
	while (c < (int64_t)t->total_steps) {
		uint64_t t0 = psf_now_ns();
		if (psf_runtime_stop_requested(t->rt))
			return PSF_ECLOSED;
		err = step(t, c, &loss);
		if (err != PSF_OK)
			t->prefetched = false;
		if (err == PSF_ESTATE) { /* the round moved on without us: rejoin */
			c = psf_ps_client_clock(t->w);
			continue;
		}
		if (err != PSF_OK)
			return err;
		loss_sum += loss;
		loss_n++;
		samples += t->cfg->training.batch_size;
		fprintf(t->trace, "%.6f,%lld,%llu,%.9g,%lld,%.6f,%.6f,%.6f,%llu\n",
		    psf_wall_seconds(), (long long)c,
		    (unsigned long long)((uint64_t)c / t->steps_per_epoch), loss,
		    (long long)t->last.staleness, (double)t->last.pull_ns / 1e9,
		    (double)t->last.compute_ns / 1e9, (double)t->last.push_ns / 1e9,
		    (unsigned long long)t->last.version);
		c++;
		inject_faults(t, c, psf_now_ns() - t0);
		double secs = (double)(psf_now_ns() - t_start) / 1e9;
		psf_gauge_set(t->g_step, (double)c);
		psf_gauge_set(t->g_epoch, (double)((uint64_t)(c - 1) / t->steps_per_epoch));
		psf_gauge_set(t->g_loss, loss_sum / (double)loss_n);
		psf_gauge_set(t->g_sps, secs > 0 ? (double)samples / secs : 0);
		if ((uint64_t)c % t->steps_per_epoch == 0 || c == (int64_t)t->total_steps) {
			bool last = c == (int64_t)t->total_steps;
			t->prefetched = false; /* the evaluation pulls into params */
			if ((err = report(t, c, loss_sum / (double)loss_n,
			         secs > 0 ? (double)samples / secs : 0, last)) != PSF_OK)
				return err;
			loss_sum = 0;
			loss_n = 0;
		}
	}
	return PSF_OK;
}

/* leave_empty ends the run of a trainer with no training rows (no symbols, or
 * symbols whose rows yield no sample after features and split) once it took its
 * part in the start-up reduces: it sends a finished report with no test rows,
 * so the fleet's results count it as done, and leaves the worker group, so no
 * sync round, SSP gate or straggler timeout waits for it. */
static psf_err
leave_empty(trainer *t)
{
	Psfleet__V1__MetricsReport r = PSFLEET__V1__METRICS_REPORT__INIT;
	size_t n_test = t->win.n_test;
	psf_err err;

	psf_log_warn("trainer",
	    "%s has no training rows (%zu symbols, %zu test rows not evaluated): "
	    "it leaves the fleet",
	    t->node->id, t->table->n_symbols, n_test);
	r.finished = true;
	if ((err = psf_ps_client_report(t->w, &r)) != PSF_OK)
		return err;
	return psf_ps_client_heartbeat(t->w, true);
}

static uint64_t
health_version(void *arg)
{
	trainer *t = arg;

	return atomic_load(&t->version);
}

/* admin_status reports the progress gauges (set by the training thread). */
static psf_err
admin_status(void *arg, psf_admin_status *st)
{
	trainer *t = arg;
	psf_err err;

	psf_admin_status_version(st, atomic_load(&t->version));
	if ((err = psf_admin_status_extra(st, "epoch", "%.0f", psf_gauge_value(t->g_epoch))) !=
	        PSF_OK ||
	    (err = psf_admin_status_extra(st, "step", "%.0f", psf_gauge_value(t->g_step))) !=
	        PSF_OK)
		return err;
	return psf_admin_status_extra(st, "total_steps", "%.0f", psf_gauge_value(t->g_total));
}

/* start_admin serves the Admin service (Health, Status, Shutdown) on the node's
 * listen URL when the config gives one; a trainer without one serves no RPC. */
static psf_err
start_admin(trainer *t)
{
	psf_admin_role role = {health_version, admin_status, t};
	psf_rpc_server_opts so;
	psf_err err;

	if (t->node->listen == NULL)
		return PSF_OK;
	if ((err = psf_runtime_server_opts(t->cfg, t->token, sizeof(t->token), &so)) != PSF_OK ||
	    (err = psf_rpc_server_new(&so, &t->srv)) != PSF_OK ||
	    (err = psf_admin_new(t->rt, &role, t->srv, &t->admin)) != PSF_OK)
		return err;
	psf_runtime_observe_rpc(t->rt, t->srv);
	if ((err = psf_rpc_server_listen(t->srv, t->node->listen, t->url, sizeof(t->url))) !=
	        PSF_OK ||
	    (err = psf_rpc_server_start(t->srv)) != PSF_OK)
		return err;
	psf_log_info("trainer", "%s serves Admin on %s", t->node->id, t->url);
	return PSF_OK;
}

static void
trainer_fini(trainer *t)
{
	psf_rpc_server_free(t->srv); /* no Admin handler runs after this */
	psf_admin_free(t->admin);
	psf_ps_client_close(t->w);
	psf_params_free(t->params);
	psf_params_free(t->grads);
	psf_model_ws_free(t->ws);
	psf_model_free(t->model);
	psf_windows_fini(&t->win);
	psf_table_free(t->table);
	free(t->stats);
	free(t->sym_rows);
	free(t->perm);
	free(t->bidx);
	free(t->bx);
	free(t->by);
	free(t->brows);
	free(t->keys);
	free(t->next_bidx);
	free(t->next_brows);
	free(t->next_keys);
	psf_params_free(t->start);
	psf_params_free(t->delta);
	psf_params_free(t->eval_params);
	free(t->lscratch);
	if (t->trace != NULL)
		fclose(t->trace);
	if (t->eval_trace != NULL)
		fclose(t->eval_trace);
	psf_runtime_free(t->rt);
}

/* A stop request (SIGTERM, Admin/Shutdown) must not wait for the call in
 * flight: a parked sync Pull waits up to request_timeout_ms, and calls to a ps
 * that is down are retried for retry_ms. The stop watcher cuts the worker's
 * calls short (psf_ps_client_abort) as soon as a stop is requested; between
 * retries the worker asks node_stop itself (before the watcher can see it). */
typedef struct stop_watch {
	psf_runtime *rt;
	_Atomic(psf_ps_client *) w; /* set once the worker's clients exist, before it
	                          * registers; the worker outlives the watcher */
	atomic_bool done;           /* the trainer is finishing: the watcher ends */
	pthread_t thread;
} stop_watch;

static void *
watch_stop(void *arg)
{
	stop_watch *sw = arg;
	bool aborted = false;

	while (!atomic_load(&sw->done)) {
		if (!psf_runtime_wait(sw->rt, 100))
			continue;
		psf_ps_client *w = atomic_load(&sw->w);
		if (w != NULL && !aborted) {
			psf_ps_client_abort(w);
			aborted = true;
		}
		psf_sleep_ms(20); /* stopped: wait for the trainer to finish */
	}
	return NULL;
}

psf_err
psf_trainer_run(const psf_config *cfg, const psf_node_cfg *node, const psf_trainer_opts *opts)
{
	trainer t;
	psf_ps_client_opts wo = {opts != NULL ? opts->ps_urls : NULL, 0, node_stop, NULL};
	stop_watch sw;
	bool watching = false;
	const char *metrics = node->metrics;
	psf_err err;

	memset(&t, 0, sizeof(t));
	atomic_init(&t.version, 0);
	t.cfg = cfg;
	t.node = node;
	t.opts = opts;
	t.local = cfg->consistency.mode == PSF_CONS_LOCAL;
	t.fuse = getenv("PSF_TRAINER_PLAIN_COMM") == NULL ||
	    strcmp(getenv("PSF_TRAINER_PLAIN_COMM"), "1") != 0;
	if (opts != NULL && opts->metrics != NULL)
		metrics = opts->metrics[0] != '\0' ? opts->metrics : NULL;
	if (cfg->training.batch_size > PSF_TRAINER_MAX_BATCH) {
		psf_log_err("trainer", "batch_size %u exceeds %u", cfg->training.batch_size,
		    PSF_TRAINER_MAX_BATCH);
		return PSF_EINVAL;
	}
	openblas_set_num_threads(1); /* several processes share the cores (PLATFORM.md) */
	if ((err = psf_runtime_new(node->id, "trainer", metrics, &t.rt)) != PSF_OK ||
	    (err = setup_metrics(&t)) != PSF_OK || (err = open_traces(&t)) != PSF_OK)
		goto out;
	psf_runtime_set_ready(t.rt, false, "loading data");
	if ((err = start_admin(&t)) != PSF_OK)
		goto out;
	wo.stop_arg = t.rt;
	sw.rt = t.rt;
	atomic_init(&sw.w, NULL);
	atomic_init(&sw.done, false);
	if (pthread_create(&sw.thread, NULL, watch_stop, &sw) != 0) {
		err = PSF_ENOMEM;
		goto out;
	}
	watching = true;
	if ((err = make_table(&t)) != PSF_OK ||
	    (err = psf_model_new(&cfg->model, (uint32_t)cfg->n_features, cfg->target, cfg->seed,
	         &t.model)) != PSF_OK ||
	    (err = make_windows(&t)) != PSF_OK ||
	    (err = psf_ps_client_new(cfg, t.model, node->id, &wo, &t.w)) != PSF_OK)
		goto out;
	atomic_store(&sw.w, t.w); /* before registering: a held Register must not hold a stop */
	if ((err = psf_ps_client_register(t.w)) != PSF_OK)
		goto out;
	if (cfg->optimizer.kind == PSF_OPTIM_EXACT) { /* one solve, no steps (exact.c) */
		psf_runtime_set_ready(t.rt, true, NULL);
		if ((err = psf_trainer_exact(cfg, (uint32_t)node->index, t.w, t.model, t.table,
		         &t.stats, &t.n_stats)) == PSF_OK)
			err = psf_ps_client_heartbeat(t.w, true);
		goto out;
	}
	if ((err = standardize(&t)) != PSF_OK || (err = agree_steps(&t)) != PSF_OK ||
	    (err = setup_model(&t)) != PSF_OK)
		goto out;
	psf_runtime_set_ready(t.rt, true, NULL);
	if (t.total_steps == 0) {
		psf_log_warn("trainer", "no training rows in the whole fleet: nothing to do");
	} else if (t.win.n_train == 0) {
		err = leave_empty(&t);
		goto out;
	} else if ((err = train(&t)) != PSF_OK) {
		if (err == PSF_ECLOSED && psf_runtime_stop_requested(t.rt)) {
			/* SIGTERM/SIGINT: a clean stop, not a failure. The worker does not
			 * leave the group: it resumes at its clock when started again. */
			psf_log_info("trainer", "stopped by request at step %lld",
			    (long long)psf_ps_client_clock(t.w));
			err = PSF_OK;
		}
		goto out;
	}
	if (fine_tunes(&t)) {
		psf_log_info("trainer", "training done after %lld steps",
		    (long long)psf_ps_client_clock(t.w));
		if ((err = finetune(&t)) == PSF_ECLOSED && psf_runtime_stop_requested(t.rt))
			err = PSF_OK; /* resumes where it stopped when started again */
		goto out;
	}
	err = psf_ps_client_heartbeat(t.w, true);
	psf_log_info("trainer", "done after %lld steps", (long long)psf_ps_client_clock(t.w));
out:
	if (err == PSF_ECLOSED && t.rt != NULL && psf_runtime_stop_requested(t.rt)) {
		psf_log_info("trainer", "stopped by request before training");
		err = PSF_OK;
	}
	if (err != PSF_OK)
		psf_log_err("trainer", "%s stopped: %s", node->id, psf_strerror(err));
	if (watching) {
		atomic_store(&sw.done, true);
		pthread_join(sw.thread, NULL);
	}
	trainer_fini(&t);
	return err;
}
