/* exact.c -- the exact solver's run on a trainer (optimizer kind "exact",
 * docs/models.md "Exact least squares").
 *
 * 1. Sum z zᵀ, z = [1, x, y], over the trainer's raw train rows, exactly
 *    (lib/model/solve.h), and all-reduce the sums through ps shard 0.
 * 2. Derive the standardisation statistics from those totals; trainer 0 alone
 *    contributes them to the "feature_stats" reduce (the others add zeros), so
 *    the ps holds the very same bits whatever the split.
 * 3. Every trainer solves the same ridge system (the same bits in, the same bits
 *    out); trainer 0 assigns the weights to the ps (Assign: a new model version).
 * 4. A second reduce is the barrier after the assignment; then each trainer
 *    evaluates its test rows on the served weights and sends a final report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/keys.h"
#include "lib/base/log.h"
#include "lib/model/solve.h"
#include "trainer/internal.h"

/* The solution: the linear model's dense tensors, and the standardisation it
 * was solved in (d + 1 means and sds, the last the target's). */
typedef struct exact_weights {
	double *w; /* d */
	double b;
	double *mean, *sd;
} exact_weights;

/* Per-symbol means of the train rows, for the fixed-effects solve of a model
 * with a per-symbol bias. Each symbol lives on one trainer and its rows are
 * summed in date order, so the means are the same bits on any split. */
typedef struct sym_means {
	double *n, *x, *y; /* per table symbol: row count, d feature means, target mean */
} sym_means;

static psf_err
sym_means_make(const psf_table *t, sym_means *sm)
{
	size_t d = t->n_features, ns = t->n_symbols > 0 ? t->n_symbols : 1;

	sm->n = calloc(ns, sizeof(double));
	sm->x = calloc(ns * d, sizeof(double));
	sm->y = calloc(ns, sizeof(double));
	if (sm->n == NULL || sm->x == NULL || sm->y == NULL)
		return PSF_ENOMEM;
	for (size_t r = 0; r < t->n_train; r++) {
		uint32_t s = t->sym[r];
		sm->n[s] += 1;
		for (size_t j = 0; j < d; j++)
			sm->x[s * d + j] += (double)t->x[r * d + j];
		sm->y[s] += t->y_raw[r];
	}
	for (size_t s = 0; s < t->n_symbols; s++) {
		if (sm->n[s] == 0)
			continue;
		for (size_t j = 0; j < d; j++)
			sm->x[s * d + j] /= sm->n[s];
		sm->y[s] /= sm->n[s];
	}
	return PSF_OK;
}

static void
sym_means_fini(sym_means *sm)
{
	free(sm->n);
	free(sm->x);
	free(sm->y);
}

/* add_within adds every train row centred on its symbol's means. */
static psf_err
add_within(psf_normal *nw, const psf_table *t, const sym_means *sm)
{
	size_t d = t->n_features;
	double xc[4096], yc;
	psf_err err = PSF_OK;

	for (size_t r = 0; r < t->n_train && err == PSF_OK; r++) {
		uint32_t s = t->sym[r];
		for (size_t j = 0; j < d; j++)
			xc[j] = (double)t->x[r * d + j] - sm->x[s * d + j];
		yc = t->y_raw[r] - sm->y[s];
		err = psf_normal_add_rows_d(nw, xc, &yc, 1);
	}
	return err;
}

/* reduce_normal all-reduces the trainer's exact sums and leaves the totals'
 * moment matrix in m ((d+2)²), and with sm (a per-symbol bias) the moments of
 * the rows centred on their symbol's means in mw. */
static psf_err
reduce_normal(const psf_config *cfg, psf_ps_client *w, const psf_table *t, const sym_means *sm,
    double *m, double *mw)
{
	size_t d = t->n_features, len1, len;
	psf_normal *ne = NULL, *nw = NULL;
	double *wire = NULL;
	psf_err err;

	if ((err = psf_normal_new(d, &ne)) != PSF_OK ||
	    (sm != NULL && (err = psf_normal_new(d, &nw)) != PSF_OK))
		goto out;
	len1 = psf_normal_wire_len(ne);
	len = len1 * (sm != NULL ? 2 : 1);
	if (len > cfg->limits.max_keys_per_request) {
		psf_log_err("trainer",
		    "exact solver: %zu features need a reduce of %zu values, above "
		    "limits.max_keys_per_request (%u): raise it",
		    d, len, cfg->limits.max_keys_per_request);
		err = PSF_EINVAL;
		goto out;
	}
	if ((wire = malloc(len * sizeof(double))) == NULL) {
		err = PSF_ENOMEM;
		goto out;
	}
	if ((err = psf_normal_add_rows(ne, t->x, t->y_raw, t->n_train)) != PSF_OK ||
	    (sm != NULL && (err = add_within(nw, t, sm)) != PSF_OK)) {
		psf_log_err("trainer", "exact solver: a feature or target value is out of range");
		goto out;
	}
	if ((err = psf_normal_to_wire(ne, wire)) != PSF_OK ||
	    (sm != NULL && (err = psf_normal_to_wire(nw, wire + len1)) != PSF_OK) ||
	    (err = psf_ps_client_reduce(w, PSF_REDUCE_EXACT, (uint32_t)cfg->n_trainers, wire,
	         len)) != PSF_OK ||
	    (err = psf_normal_from_wire(ne, wire)) != PSF_OK ||
	    (err = psf_normal_moments(ne, m)) != PSF_OK)
		goto out;
	if (sm != NULL && (err = psf_normal_from_wire(nw, wire + len1)) == PSF_OK)
		err = psf_normal_moments(nw, mw);
out:
	free(wire);
	psf_normal_free(ne);
	psf_normal_free(nw);
	return err;
}

/* share_stats fills the standardisation statistics from the totals and makes
 * them the ps's "feature_stats" (trainer 0 contributes, the others add 0). */
static psf_err
share_stats(const psf_config *cfg, uint32_t index, psf_ps_client *w, const double *m, double *stats,
    size_t n_stats)
{
	size_t d = cfg->n_features, dim = d + 2;
	double *mine = calloc(n_stats, sizeof(double));
	psf_err err;

	if (mine == NULL)
		return PSF_ENOMEM;
	for (size_t j = 0; j <= d; j++) {
		stats[3 * j] = m[1 + j];
		stats[3 * j + 1] = m[(1 + j) * dim + 1 + j];
		stats[3 * j + 2] = m[0];
	}
	if (index == 0)
		memcpy(mine, stats, n_stats * sizeof(double));
	err = psf_ps_client_reduce(w, PSF_REDUCE_FEATURE_STATS, (uint32_t)cfg->n_trainers, mine,
	    n_stats);
	if (err == PSF_OK && memcmp(mine, stats, n_stats * sizeof(double)) != 0) {
		psf_log_err("trainer",
		    "exact solver: the ps's feature statistics differ from the exact totals "
		    "(a trainer of another kind in the fleet?)");
		err = PSF_ESTATE;
	}
	free(mine);
	return err;
}

/* train_mse is the fleet's training MSE in standardised units (the SGD loss
 * without its penalty), from the moments. */
static double
train_mse(size_t d, const double *m, const double *mean, const double *sd, const double *wv,
    double b)
{
	size_t dim = d + 2, y = d + 1;
	double n = m[0], e2 = 0;
	/* residual r = b + Σ w_j (x_j - mean_j)/sd_j - (y - mean_y)/sd_y = a0 + Σ a_k z_k */
	double a[4098];

	a[0] = b + mean[d] / sd[d];
	for (size_t j = 0; j < d; j++) {
		a[1 + j] = wv[j] / sd[j];
		a[0] -= wv[j] * mean[j] / sd[j];
	}
	a[y] = -1.0 / sd[d];
	for (size_t i = 0; i < dim; i++)
		for (size_t k = 0; k < dim; k++)
			e2 += a[i] * a[k] * m[i * dim + k];
	e2 /= n;
	return e2 > 0 ? e2 : 0;
}

/* solve standardises the table and solves for the weights: from the moments m,
 * or with mw (a per-symbol bias) from the within-symbol moments, with b = 0. */
static psf_err
solve(const psf_config *cfg, psf_table *t, const double *m, const double *mw, const double *stats,
    size_t n_stats, exact_weights *out, double *loss)
{
	size_t d = cfg->n_features;
	double *mean = out->mean, *sd = out->sd;
	psf_solve_info info;
	psf_err err;

	if ((err = psf_features_standardize(t, stats, n_stats)) != PSF_OK)
		return err;
	for (size_t j = 0; j <= d; j++)
		psf_features_moments(stats, j, &mean[j], &sd[j]);
	if (cfg->target == PSF_TARGET_NEXT_DIRECTION) { /* the label stays 0/1 */
		mean[d] = 0;
		sd[d] = 1;
	}
	if (!(m[0] > 0)) {
		psf_log_err("trainer", "exact solver: no training rows in the whole fleet");
		return PSF_EINVAL;
	}
	err = psf_ridge_solve(d, mw != NULL ? mw : m, mean, sd, cfg->model.l2, out->w, &out->b,
	    &info);
	if (err != PSF_OK) {
		psf_log_err("trainer", "exact solver: the solve failed: %s", psf_strerror(err));
		return err;
	}
	if (info.singular) {
		char names[1024] = "";
		size_t used = 0;
		for (size_t i = 0; i < info.n_collinear && used < sizeof(names); i++)
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
			    i ? ", " : "", cfg->features[info.collinear[i]].name);
		psf_log_warn("trainer",
		    "exact solver: the features are collinear (rank %zu of %zu, smallest/largest "
		    "eigenvalue %.3g): %s; using the minimum-norm solution (set model.l2 > 0 or "
		    "drop one of them)",
		    info.rank, d, info.rcond, names[0] ? names : "(no single feature stands out)");
	}
	if (mw != NULL) { /* the residual is centred per symbol: no mean to subtract */
		double *zero = calloc(d + 1, sizeof(double));
		if (zero == NULL)
			return PSF_ENOMEM;
		out->b = 0;
		*loss = train_mse(d, mw, zero, sd, out->w, 0);
		free(zero);
	} else {
		*loss = train_mse(d, m, mean, sd, out->w, out->b);
	}
	psf_log_info("trainer",
	    "exact solver: %.0f rows, %zu features, l2 %g: train mse %.6g (standardised), "
	    "rcond %.3g",
	    m[0], d, cfg->model.l2, *loss, info.rcond);
	return PSF_OK;
}

/* fill_params puts the weights, as float32, under the model's dense keys. */
static psf_err
fill_params(const psf_model *model, const exact_weights *ew, psf_params *p, uint64_t *keys,
    size_t cap, size_t *n_keys)
{
	psf_tensor_info tw, tb;
	uint32_t *lens = malloc((cap > 0 ? cap : 1) * sizeof(uint32_t));
	float *buf = NULL;
	psf_err err = lens != NULL ? PSF_OK : PSF_ENOMEM;

	if (err != PSF_OK || (err = psf_model_tensor_find(model, "out.w", &tw)) != PSF_OK ||
	    (err = psf_model_tensor_find(model, "out.b", &tb)) != PSF_OK ||
	    (err = psf_model_dense_keys(model, keys, lens, cap, n_keys)) != PSF_OK)
		goto out;
	if ((buf = malloc((tw.floats > 0 ? tw.floats : 1) * sizeof(float))) == NULL) {
		err = PSF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < *n_keys && err == PSF_OK; i++) {
		uint16_t id = psf_key_tensor(keys[i]);
		uint64_t first = psf_key_row(keys[i]) * (tw.n_chunks > 1 ? lens[0] : 0);
		if ((id != tw.id && id != tb.id) || first + lens[i] > tw.floats + 1) {
			err = PSF_EINTERNAL; /* not the linear model's layout */
			break;
		}
		for (uint32_t k = 0; k < lens[i]; k++)
			buf[k] = id == tb.id ? (float)ew->b : (float)ew->w[first + k];
		err = psf_params_set_key(p, keys[i], buf, lens[i]);
	}
out:
	free(lens);
	free(buf);
	return err;
}

/* evaluate_and_report evaluates the served weights on the test rows and sends
 * the trainer's final report. */
static psf_err
evaluate_and_report(const psf_config *cfg, const psf_model *model, psf_ps_client *w,
    const psf_table *t, const double *stats, double loss, psf_params *params)
{
	Psfleet__V1__MetricsReport r = PSFLEET__V1__METRICS_REPORT__INIT;
	size_t batch = cfg->training.batch_size;
	uint64_t *sym_rows = malloc((t->n_symbols > 0 ? t->n_symbols : 1) * sizeof(uint64_t));
	psf_model_ws *ws = NULL;
	psf_eval ev;
	psf_err err = sym_rows != NULL ? PSF_OK : PSF_ENOMEM;

	memset(&ev, 0, sizeof(ev));
	for (size_t i = 0; err == PSF_OK && i < t->n_symbols; i++)
		sym_rows[i] = psf_symbol_row(t->symbols[i]);
	psf_windows win;

	memset(&win, 0, sizeof(win));
	if (err == PSF_OK && t->n_rows > t->n_train &&
	    (err = psf_model_ws_new(model, batch, &ws)) == PSF_OK &&
	    (err = psf_windows_init(&win, t, 1)) == PSF_OK) /* linear: one day */
		err = psf_trainer_evaluate(cfg, model, ws, w, t, &win, sym_rows, stats,
		    psf_ps_client_clock(w), params, &ev);
	psf_windows_fini(&win);
	psf_model_ws_free(ws);
	free(sym_rows);
	if (err != PSF_OK)
		return err;
	r.epoch = 1;
	r.step = 1;
	r.train_loss = loss;
	r.test_sse = ev.sse;
	r.test_sae = ev.sae;
	r.naive_sse = ev.naive_sse;
	r.naive_sae = ev.naive_sae;
	r.test_n = ev.n;
	r.test_correct = ev.correct;
	r.finished = true;
	psf_log_info("trainer", "exact solve: test rmse %.6g (naive %.6g) on %llu rows",
	    ev.n ? sqrt(ev.sse / (double)ev.n) : 0.0,
	    ev.n ? sqrt(ev.naive_sse / (double)ev.n) : 0.0, (unsigned long long)ev.n);
	return psf_ps_client_report(w, &r);
}

/* fill_sym_bias puts each symbol's bias (one with train rows on this trainer)
 * into p and its key into keys: in standardised units, the symbol's mean target
 * minus the model's output at its mean features. */
static psf_err
fill_sym_bias(const psf_model *model, const exact_weights *ew, const psf_table *t,
    const sym_means *sm, psf_params *p, uint64_t *keys, size_t *n_keys)
{
	size_t d = t->n_features;
	psf_tensor_info ts;
	psf_err err = psf_model_tensor_find(model, "sym_bias", &ts);

	*n_keys = 0;
	for (size_t s = 0; err == PSF_OK && s < t->n_symbols; s++) {
		if (sm->n[s] == 0)
			continue; /* no train rows: it keeps its initial bias, as under SGD */
		double c = (sm->y[s] - ew->mean[d]) / ew->sd[d];
		for (size_t j = 0; j < d; j++)
			c -= ew->w[j] * (sm->x[s * d + j] - ew->mean[j]) / ew->sd[j];
		float f = (float)c;
		keys[*n_keys] = psf_key(ts.id, psf_symbol_row(t->symbols[s]));
		err = psf_params_set_key(p, keys[*n_keys], &f, 1);
		(*n_keys)++;
	}
	return err;
}

/* assign writes this trainer's part of the solution: trainer 0 the dense
 * tensors, every trainer its own symbols' biases. */
static psf_err
assign(uint32_t index, psf_ps_client *w, const psf_params *params, const uint64_t *keys, size_t nd,
    size_t ns, double *version)
{
	uint64_t v = 0;
	psf_err err;

	if (index != 0 && ns == 0)
		return PSF_OK;
	if ((err = psf_ps_client_assign(w, params, index == 0 ? keys : keys + nd,
	         (index == 0 ? nd : 0) + ns, &v)) != PSF_OK)
		return err;
	*version = (double)v;
	psf_log_info("trainer", "exact solver: %s%s assigned as model version %llu",
	    index == 0 ? "weights" : "",
	    ns > 0 ? (index == 0 ? " and symbol biases" : "symbol biases") : "",
	    (unsigned long long)v);
	return PSF_OK;
}

psf_err
psf_trainer_exact(const psf_config *cfg, uint32_t index, psf_ps_client *w, const psf_model *model,
    psf_table *t, double **stats_out, size_t *n_stats_out)
{
	size_t d = cfg->n_features, dim = d + 2, nd = 0, ns = 0;
	size_t n_stats = psf_features_stats_len(d);
	size_t cap = psf_model_n_dense_keys(model) + t->n_symbols;
	bool fe = cfg->model.symbol_bias != 0; /* fixed effects */
	double *m = malloc(dim * dim * sizeof(double)), *stats = calloc(n_stats, sizeof(double));
	double *mw = fe ? malloc(dim * dim * sizeof(double)) : NULL;
	uint64_t *keys = malloc((cap > 0 ? cap : 1) * sizeof(uint64_t));
	exact_weights ew = {calloc(d, sizeof(double)), 0, calloc(d + 1, sizeof(double)),
	    calloc(d + 1, sizeof(double))};
	sym_means sm = {NULL, NULL, NULL};
	psf_params *params = NULL;
	double loss = 0, version = 0;
	psf_err err =
	    (m && stats && keys && ew.w && ew.mean && ew.sd && (!fe || mw)) ? PSF_OK : PSF_ENOMEM;

	if (err == PSF_OK && d > 4096)
		err = PSF_EINVAL;
	if (err != PSF_OK || (fe && (err = sym_means_make(t, &sm)) != PSF_OK) ||
	    (err = reduce_normal(cfg, w, t, fe ? &sm : NULL, m, mw)) != PSF_OK ||
	    (err = share_stats(cfg, index, w, m, stats, n_stats)) != PSF_OK ||
	    (err = solve(cfg, t, m, mw, stats, n_stats, &ew, &loss)) != PSF_OK ||
	    (err = psf_params_new(model, &params)) != PSF_OK ||
	    (err = fill_params(model, &ew, params, keys, cap, &nd)) != PSF_OK ||
	    (fe && (err = fill_sym_bias(model, &ew, t, &sm, params, keys + nd, &ns)) != PSF_OK) ||
	    (err = assign(index, w, params, keys, nd, ns, &version)) != PSF_OK)
		goto out;
	/* the barrier: nobody evaluates before every trainer assigned its part */
	if ((err = psf_ps_client_reduce(w, PSF_REDUCE_EXACT_DONE, (uint32_t)cfg->n_trainers,
	         &version, 1)) != PSF_OK)
		goto out;
	psf_params_free(params);
	params = NULL;
	if ((err = psf_params_new(model, &params)) != PSF_OK) /* evaluate what the ps serves */
		goto out;
	err = evaluate_and_report(cfg, model, w, t, stats, loss, params);
out:
	psf_params_free(params);
	sym_means_fini(&sm);
	free(m);
	free(mw);
	free(keys);
	free(ew.w);
	free(ew.mean);
	free(ew.sd);
	if (err == PSF_OK) {
		*stats_out = stats;
		*n_stats_out = n_stats;
	} else {
		free(stats);
	}
	return err;
}
