/* eval.c -- test-set evaluation of the current model in the target's units. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "trainer/internal.h"

/* eval_batch predicts rows [from, from + n) of the table and adds their errors. */
static psf_err
eval_batch(const psf_config *cfg, const psf_model *model, psf_model_ws *ws, psf_ps_client *w,
    const psf_table *t, const uint64_t *sym_rows, const double *stats, int64_t clock,
    psf_params *params, size_t from, size_t n, uint64_t *keys, size_t keys_cap, float *pred,
    uint64_t *brows, psf_eval *ev)
{
	size_t nd = 0, ns = 0;
	const float *x = t->x + from * t->n_features;
	int by_price = psf_config_interval_by_price(cfg);
	psf_err err;

	for (size_t i = 0; i < n; i++)
		brows[i] = sym_rows[t->sym[from + i]];
	if ((err = psf_model_dense_keys(model, keys, NULL, keys_cap, &nd)) != PSF_OK)
		return err;
	if (psf_model_n_symbol_tensors(model) > 0 &&
	    (err = psf_model_symbol_keys(model, brows, n, keys + nd, NULL, keys_cap - nd, &ns)) !=
	        PSF_OK)
		return err;
	if ((err = psf_ps_client_pull(w, clock, keys, nd + ns, params, NULL)) != PSF_OK ||
	    (err = psf_model_forward(model, ws, params, x, brows, n, pred)) != PSF_OK)
		return err;
	for (size_t i = 0; i < n; i++) {
		size_t r = from + i;
		double y = t->y_raw[r];
		double p =
		    psf_features_unstandardize_target(pred[i], t->n_features, cfg->target, stats);
		double e = p - y, ne = t->naive[r] - y;
		ev->sse += e * e;
		ev->sae += fabs(e);
		ev->naive_sse += ne * ne;
		ev->naive_sae += fabs(ne);
		if (cfg->target == PSF_TARGET_NEXT_DIRECTION)
			ev->correct += ((p > 0.5) == (y > 0.5)) ? 1 : 0;
		else
			psf_rhist_add(ev->hist, by_price ? e / t->close_t[r] : e);
		ev->n++;
	}
	return PSF_OK;
}

psf_err
psf_trainer_evaluate(const psf_config *cfg, const psf_model *model, psf_model_ws *ws,
    psf_ps_client *w, const psf_table *table, const uint64_t *sym_rows, const double *stats,
    int64_t clock, psf_params *params, psf_eval *out)
{
	size_t batch = cfg->training.batch_size;
	size_t n_sym = psf_model_n_symbol_tensors(model);
	size_t keys_cap = psf_model_n_dense_keys(model) + batch * (n_sym > 0 ? n_sym : 1);
	uint64_t *keys = malloc(keys_cap * sizeof(*keys));
	uint64_t *brows = malloc(batch * sizeof(*brows));
	float *pred = malloc(batch * sizeof(*pred));
	psf_eval ev;
	psf_err err = (keys && brows && pred) ? PSF_OK : PSF_ENOMEM;

	memset(&ev, 0, sizeof(ev));
	for (size_t from = table->n_train; err == PSF_OK && from < table->n_rows; from += batch) {
		size_t n = table->n_rows - from < batch ? table->n_rows - from : batch;
		err = eval_batch(cfg, model, ws, w, table, sym_rows, stats, clock, params, from, n,
		    keys, keys_cap, pred, brows, &ev);
	}
	free(keys);
	free(brows);
	free(pred);
	if (err == PSF_OK)
		*out = ev;
	return err;
}
