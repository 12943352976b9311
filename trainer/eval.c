/* eval.c -- test-set evaluation of the current model in the target's units. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "trainer/internal.h"

/* Scratch of one evaluation. */
typedef struct eval_buf {
	uint64_t *keys;
	size_t keys_cap;
	float *pred, *x;
	uint64_t *brows;
} eval_buf;

/* eval_batch predicts the test rows rows[0..n) of the table and adds their
 * errors. With pull false, params already hold the dense keys and the model has
 * no per-symbol tensor: nothing is fetched. */
static psf_err
eval_batch(const psf_config *cfg, const psf_model *model, psf_model_ws *ws, psf_ps_client *w,
    const psf_table *t, const psf_windows *win, const uint64_t *sym_rows, const double *stats,
    int64_t clock, psf_params *params, const size_t *rows, size_t n, bool pull, eval_buf *b,
    psf_eval *ev)
{
	size_t nd = 0, ns = 0, wlen = (size_t)win->window * t->n_features;
	int by_price = psf_config_interval_by_price(cfg);
	psf_err err;

	for (size_t i = 0; i < n; i++) {
		b->brows[i] = sym_rows[t->sym[rows[i]]];
		psf_windows_gather(win, t, rows[i], b->x + i * wlen);
	}
	if (pull) {
		if ((err = psf_model_dense_keys(model, b->keys, NULL, b->keys_cap, &nd)) != PSF_OK)
			return err;
		if (psf_model_n_symbol_tensors(model) > 0 &&
		    (err = psf_model_symbol_keys(model, b->brows, n, b->keys + nd, NULL,
		         b->keys_cap - nd, &ns)) != PSF_OK)
			return err;
		if ((err = psf_ps_client_pull(w, clock, b->keys, nd + ns, params, NULL)) != PSF_OK)
			return err;
	}
	if ((err = psf_model_forward(model, ws, params, b->x, b->brows, n, b->pred)) != PSF_OK)
		return err;
	for (size_t i = 0; i < n; i++) {
		size_t r = rows[i];
		double y = t->y_raw[r];
		double p = psf_features_unstandardize_target(b->pred[i], t->n_features, cfg->target,
		    stats);
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
    psf_ps_client *w, const psf_table *table, const psf_windows *win, const uint64_t *sym_rows,
    const double *stats, int64_t clock, psf_params *params, psf_eval *out)
{
	size_t batch = cfg->training.batch_size;
	size_t n_sym = psf_model_n_symbol_tensors(model);
	bool once = n_sym == 0;
	eval_buf b;
	psf_eval ev;
	psf_err err;

	b.keys_cap = psf_model_n_dense_keys(model) + batch * (n_sym > 0 ? n_sym : 1);
	b.keys = malloc(b.keys_cap * sizeof(*b.keys));
	b.brows = malloc(batch * sizeof(*b.brows));
	b.pred = malloc(batch * sizeof(*b.pred));
	b.x = malloc(batch * win->window * table->n_features * sizeof(float));
	err = (b.keys && b.brows && b.pred && b.x) ? PSF_OK : PSF_ENOMEM;
	memset(&ev, 0, sizeof(ev));
	/* Dense keys only (no per-symbol tensor): every batch needs the same keys at
	 * the same clock, so they are pulled once, not once per batch (one round trip
	 * to every ps instead of one per batch of test rows). */
	if (err == PSF_OK && once && win->n_test > 0) {
		size_t nd = 0;
		if ((err = psf_model_dense_keys(model, b.keys, NULL, b.keys_cap, &nd)) == PSF_OK)
			err = psf_ps_client_pull(w, clock, b.keys, nd, params, NULL);
	}
	for (size_t from = 0; err == PSF_OK && from < win->n_test; from += batch) {
		size_t n = win->n_test - from < batch ? win->n_test - from : batch;
		err = eval_batch(cfg, model, ws, w, table, win, sym_rows, stats, clock, params,
		    win->test + from, n, !once, &b, &ev);
	}
	free(b.keys);
	free(b.brows);
	free(b.pred);
	free(b.x);
	if (err == PSF_OK)
		*out = ev;
	return err;
}
