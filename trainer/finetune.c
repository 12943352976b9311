/* finetune.c -- fine-tuning after Ingest (docs/training.md "Fine-tuning after
 * Ingest"): the first trainer stays up once training is done and trains on the
 * rows that ingested bars make, from the current weights, in rounds of
 * training.finetune.steps steps.
 *
 * The rows come from ps0 (the inferers send each accepted bar's sample there;
 * ps0 keeps one per (symbol, date), durably, in arrival order). A round is
 * begun on ps0 before its first step: "round r covers samples [from, upto) and
 * its first step is clock s" is stored once, so the round's rows and batches
 * never change, whatever restarts. Its steps are ordinary pushes at clocks s,
 * s + 1, ..., s + steps - 1, which the ps applies exactly once per (worker,
 * clock); a fine-tuner restarted in the middle of a round resumes at the clock
 * the ps reports, with the same batches. So a row is trained on in one round
 * only, and a round's steps are applied once each. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/shard.h"
#include "lib/base/util.h"
#include "lib/data/features.h"
#include "trainer/internal.h"

/* One fine-tuning session's buffers. */
typedef struct ft {
	const psf_trainer_ft *a;
	size_t batch, nx, keys_cap;
	psf_model_ws *ws;
	psf_params *params, *grads;
	float *bx, *by;
	uint64_t *brows, *keys;
	uint32_t *perm;
	size_t perm_cap;
	Psfleet__V1__FineTuneReply *round; /* the latest round, with its samples */
} ft;

static void
ft_fini(ft *f)
{
	psf_model_ws_free(f->ws);
	psf_params_free(f->params);
	psf_params_free(f->grads);
	free(f->bx);
	free(f->by);
	free(f->brows);
	free(f->keys);
	free(f->perm);
	if (f->round != NULL)
		protobuf_c_message_free_unpacked(&f->round->base, NULL);
}

static psf_err
ft_init(ft *f, const psf_trainer_ft *a)
{
	const psf_config *cfg = a->cfg;
	size_t n_sym = psf_model_n_symbol_tensors(a->model);
	psf_err err;

	memset(f, 0, sizeof(*f));
	f->a = a;
	f->batch = cfg->training.finetune.batch_size != 0 ? cfg->training.finetune.batch_size
	                                                  : cfg->training.batch_size;
	f->nx = (size_t)psf_model_window(a->model) * cfg->n_features;
	f->keys_cap = psf_model_n_dense_keys(a->model) + f->batch * (n_sym > 0 ? n_sym : 1);
	if ((err = psf_model_ws_new(a->model, f->batch, &f->ws)) != PSF_OK ||
	    (err = psf_params_new(a->model, &f->params)) != PSF_OK ||
	    (err = psf_params_new(a->model, &f->grads)) != PSF_OK)
		return err;
	f->bx = malloc(f->batch * f->nx * sizeof(float));
	f->by = malloc(f->batch * sizeof(float));
	f->brows = malloc(f->batch * sizeof(uint64_t));
	f->keys = malloc(f->keys_cap * sizeof(uint64_t));
	if (!f->bx || !f->by || !f->brows || !f->keys)
		return PSF_ENOMEM;
	return PSF_OK;
}

/* fetch replaces f->round with ps0's latest round (beginning round `begin` at
 * `clock` first when begin > 0), with its samples. */
static psf_err
fetch(ft *f, uint64_t begin, int64_t clock)
{
	Psfleet__V1__FineTuneReply *r = NULL;
	psf_err err = psf_ps_client_fine_tune(f->a->w, begin, clock, true, &r);

	if (err != PSF_OK)
		return err;
	for (size_t i = 0; i < r->n_samples; i++)
		if (r->samples[i]->n_x != f->nx) {
			psf_log_err("trainer",
			    "fine-tuning sample %s %s has %zu inputs; the model takes %zu",
			    r->samples[i]->symbol, r->samples[i]->date, r->samples[i]->n_x, f->nx);
			protobuf_c_message_free_unpacked(&r->base, NULL);
			return PSF_EPROTO;
		}
	if (f->round != NULL)
		protobuf_c_message_free_unpacked(&f->round->base, NULL);
	f->round = r;
	if (r->n_samples > f->perm_cap) {
		free(f->perm);
		f->perm_cap = 0;
		if ((f->perm = malloc(r->n_samples * sizeof(uint32_t))) == NULL)
			return PSF_ENOMEM;
		f->perm_cap = r->n_samples;
	}
	if (r->n_samples > 0)
		psf_trainer_permute(f->perm, r->n_samples,
		    f->a->cfg->training.shuffle ? f->a->cfg->seed : 0, 0, 1000000u + r->round);
	return PSF_OK;
}

/* ft_step runs step j of the current round at clock c: the round's samples in
 * its shuffled order, batch after batch, wrapping around. */
static psf_err
ft_step(ft *f, int64_t c, uint64_t j, double *loss, uint64_t *version)
{
	const psf_trainer_ft *a = f->a;
	const psf_config *cfg = a->cfg;
	const Psfleet__V1__FineTuneReply *r = f->round;
	size_t n = r->n_samples < f->batch ? r->n_samples : f->batch, nd = 0, ns = 0, n_keys;
	size_t nf = cfg->n_features, W = f->nx / nf;
	double mean = 0, sd = 1;
	psf_push_result pr;
	psf_err err;

	if (cfg->target != PSF_TARGET_NEXT_DIRECTION)
		psf_features_moments(a->stats, nf, &mean, &sd);
	for (size_t i = 0; i < n; i++) {
		const Psfleet__V1__FineTuneSample *s =
		    r->samples[f->perm[(j * f->batch + i) % r->n_samples]];
		memcpy(f->bx + i * f->nx, s->x, f->nx * sizeof(float));
		for (size_t w = 0; w < W; w++)
			psf_features_standardize_row(f->bx + i * f->nx + w * nf, nf, a->stats);
		f->by[i] = cfg->target == PSF_TARGET_NEXT_DIRECTION ? (float)s->y
		                                                    : (float)((s->y - mean) / sd);
		f->brows[i] = psf_symbol_row(s->symbol);
	}
	if ((err = psf_model_dense_keys(a->model, f->keys, NULL, f->keys_cap, &nd)) != PSF_OK ||
	    (psf_model_n_symbol_tensors(a->model) > 0 &&
	        (err = psf_model_symbol_keys(a->model, f->brows, n, f->keys + nd, NULL,
	             f->keys_cap - nd, &ns)) != PSF_OK) ||
	    (err = psf_ps_client_pull(a->w, c, f->keys, nd + ns, f->params, NULL)) != PSF_OK ||
	    (err = psf_model_loss_grad(a->model, f->ws, f->params, f->bx, f->by, f->brows, n,
	         f->grads, loss)) != PSF_OK ||
	    (err = psf_params_keys(f->grads, f->keys, NULL, f->keys_cap, &n_keys)) != PSF_OK)
		return err;
	if (cfg->training.clip_norm > 0)
		psf_params_clip_norm(f->grads, cfg->training.clip_norm, NULL);
	if (!isfinite(*loss) && !cfg->optimizer.skip_nonfinite) {
		psf_log_err("trainer", "fine-tuning diverged at step %lld: the loss is %g",
		    (long long)c, *loss);
		return PSF_EINVAL;
	}
	if ((err = psf_ps_client_push(a->w, c, f->grads, f->keys, n_keys, n, *loss, &pr)) != PSF_OK)
		return err;
	*version = pr.model_version;
	return PSF_OK;
}

/* run_round takes the steps of the current round from clock c on. */
static psf_err
run_round(ft *f, int64_t c)
{
	const psf_trainer_ft *a = f->a;
	const Psfleet__V1__FineTuneReply *r = f->round;
	uint32_t steps = a->cfg->training.finetune.steps;
	int64_t end = r->start_clock + (int64_t)steps;
	uint64_t t0 = psf_now_ms(), version = 0;
	double loss = 0, loss_sum = 0;
	psf_err err;

	if (c > r->start_clock)
		psf_log_info("trainer", "fine-tuning round %llu resumes at step %lld of %u",
		    (unsigned long long)r->round, (long long)(c - r->start_clock), steps);
	for (; c < end; c++) {
		if (psf_runtime_stop_requested(a->rt))
			return PSF_ECLOSED;
		if ((err = ft_step(f, c, (uint64_t)(c - r->start_clock), &loss, &version)) !=
		    PSF_OK)
			return err;
		loss_sum += loss;
		atomic_store(a->version, version);
		psf_counter_inc(a->c_steps);
		psf_gauge_set(a->g_step, (double)(c + 1));
		if (a->exit_at_step > 0 && c + 1 == a->exit_at_step) {
			psf_log_warn("trainer", "failure injection: exiting at step %lld",
			    (long long)(c + 1));
			exit(3);
		}
	}
	psf_gauge_set(a->g_round, (double)r->round);
	psf_counter_add(a->c_rows, r->upto_seq - r->from_seq);
	psf_log_info("trainer",
	    "fine-tuning round %llu done: %u steps over %llu new rows in %llu ms, mean loss "
	    "%.6g, model version %llu",
	    (unsigned long long)r->round, steps, (unsigned long long)(r->upto_seq - r->from_seq),
	    (unsigned long long)(psf_now_ms() - t0), loss_sum / (double)steps,
	    (unsigned long long)version);
	return PSF_OK;
}

/* serve is the fine-tuner's loop: resume a round begun, begin one when ps0
 * has new samples and their count stayed the same over one poll (the rows of
 * one Ingest come from each inference shard's inferers separately: waiting for
 * them to settle makes one round of a day's rows), else wait poll_ms
 * (heartbeating). */
static psf_err
serve(ft *f)
{
	const psf_trainer_ft *a = f->a;
	const psf_config *cfg = a->cfg;
	uint32_t steps = cfg->training.finetune.steps;
	uint64_t last_beat = psf_now_ms(), settled = 0;
	psf_err err;

	if ((err = fetch(f, 0, 0)) != PSF_OK)
		return err;
	for (;;) {
		int64_t c = psf_ps_client_clock(a->w);
		const Psfleet__V1__FineTuneReply *r = f->round;
		if (r->round > 0 && c < r->start_clock + (int64_t)steps) {
			if (c < r->start_clock) {
				psf_log_err("trainer",
				    "fine-tuning round %llu begins at clock %lld but the ps is at "
				    "%lld (a store restored from an older backup?)",
				    (unsigned long long)r->round, (long long)r->start_clock,
				    (long long)c);
				return PSF_ESTATE;
			}
			if ((err = run_round(f, c)) != PSF_OK)
				return err;
			continue;
		}
		if (r->total > r->upto_seq && r->total == settled) {
			if ((err = fetch(f, r->round + 1, c)) != PSF_OK)
				return err;
			continue;
		}
		settled = r->total;
		if (psf_runtime_wait(a->rt, cfg->training.finetune.poll_ms))
			return PSF_ECLOSED;
		if (psf_now_ms() - last_beat >= cfg->consistency.heartbeat_ms) {
			if ((err = psf_ps_client_heartbeat(a->w, false)) != PSF_OK)
				return err;
			last_beat = psf_now_ms();
		}
		Psfleet__V1__FineTuneReply *nr = NULL;
		if ((err = psf_ps_client_fine_tune(a->w, 0, 0, false, &nr)) != PSF_OK)
			return err;
		/* the round is the same (only this trainer begins rounds): keep its
		 * samples, take the new total */
		f->round->total = nr->total;
		protobuf_c_message_free_unpacked(&nr->base, NULL);
	}
}

psf_err
psf_trainer_ft_metrics(psf_metrics *reg, psf_trainer_ft *a)
{
	psf_err err;

	if ((err = psf_metrics_gauge(reg, "psfleet_trainer_finetuning",
	         "1 once training is done and this trainer fine-tunes on ingested rows", NULL, 0,
	         &a->g_on)) != PSF_OK ||
	    (err = psf_metrics_gauge(reg, "psfleet_trainer_finetune_round",
	         "The last fine-tuning round done", NULL, 0, &a->g_round)) != PSF_OK ||
	    (err = psf_metrics_counter(reg, "psfleet_trainer_finetune_steps_total",
	         "Fine-tuning steps pushed", NULL, 0, &a->c_steps)) != PSF_OK)
		return err;
	return psf_metrics_counter(reg, "psfleet_trainer_finetune_rows_total",
	    "Ingested rows fine-tuned on (each in one round)", NULL, 0, &a->c_rows);
}

psf_err
psf_trainer_finetune(const psf_trainer_ft *a)
{
	ft f;
	psf_err err = ft_init(&f, a);

	if (err == PSF_OK) {
		psf_gauge_set(a->g_on, 1);
		psf_log_info("trainer",
		    "fine-tuning: %u steps (batch %zu) per round of newly ingested rows, from "
		    "step %lld; waiting for rows",
		    a->cfg->training.finetune.steps, f.batch, (long long)psf_ps_client_clock(a->w));
		err = serve(&f);
	}
	ft_fini(&f);
	return err;
}
