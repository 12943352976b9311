/* model_math.c -- workspaces, forward pass, loss and gradients (model.h).
 *
 * Every model is a stack of fully connected layers (linear and logistic: just
 * the output layer). A layer computes H = A W^T + b with W [out x in] row-major:
 * cblas_sgemm for out > 1, cblas_sgemv for the single-output layer. Backward:
 * dW = dH^T A, db = column sums of dH, dA = dH W, masked by ReLU'. The
 * embedding's gradient is the embedding columns of dA at the input. gru and
 * lstm put their recurrent layers (model_rnn.c) before the output layer. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/model/model.h"
#include "lib/model/model_internal.h"

#define TAG "model"

struct psf_model_ws {
	const psf_model *m;
	size_t max_batch;
	float *in;                    /* n x d_in: features + embedding (emb only) */
	float *act[MODEL_MAX_LAYERS]; /* n x out of each layer; the last is logits */
	float *d_buf[2];              /* n x max_width: dA ping-pong */
	float *d_emb;                 /* n x emb_dim (emb only) */
	float *g;                     /* n: d(loss)/d(logit) */
	float *ones;                  /* n: 1.0f, for column sums through sgemv */
	long *slot;                   /* n: params slot of each row's symbol */
	rnn_ws *rnn;                  /* gru/lstm: the recurrent layers' scratch */
};

void
psf_model_ws_free(psf_model_ws *ws)
{
	if (ws == NULL)
		return;
	free(ws->in);
	for (size_t l = 0; l < MODEL_MAX_LAYERS; l++)
		free(ws->act[l]);
	free(ws->d_buf[0]);
	free(ws->d_buf[1]);
	free(ws->d_emb);
	free(ws->g);
	free(ws->ones);
	free(ws->slot);
	rnn_ws_free(ws->rnn);
	free(ws);
}

psf_err
psf_model_ws_new(const psf_model *m, size_t max_batch, psf_model_ws **out)
{
	psf_model_ws *ws;
	bool ok;

	if (m == NULL || out == NULL || max_batch == 0 || max_batch > PSF_MODEL_MAX_BATCH)
		return PSF_EINVAL;
	if ((ws = calloc(1, sizeof(*ws))) == NULL)
		return PSF_ENOMEM;
	ws->m = m;
	ws->max_batch = max_batch;
	ok = (ws->g = malloc(max_batch * sizeof(float))) != NULL &&
	    (ws->ones = malloc(max_batch * sizeof(float))) != NULL &&
	    (ws->slot = malloc(max_batch * sizeof(long))) != NULL &&
	    (ws->d_buf[0] = malloc(max_batch * m->max_width * sizeof(float))) != NULL &&
	    (ws->d_buf[1] = malloc(max_batch * m->max_width * sizeof(float))) != NULL;
	for (size_t l = 0; ok && l < m->n_layers; l++)
		ok = (ws->act[l] = malloc(max_batch * m->layers[l].out * sizeof(float))) != NULL;
	if (ok && m->n_rnn > 0)
		ok = rnn_ws_new(m, max_batch, &ws->rnn) == PSF_OK;
	if (ok && m->emb_dim > 0)
		ok = (ws->in = malloc(max_batch * m->d_in * sizeof(float))) != NULL &&
		    (ws->d_emb = malloc(max_batch * m->emb_dim * sizeof(float))) != NULL;
	if (!ok) {
		psf_model_ws_free(ws);
		return PSF_ENOMEM;
	}
	for (size_t i = 0; i < max_batch; i++)
		ws->ones[i] = 1.0f;
	*out = ws;
	return PSF_OK;
}

/* The element-wise loops run in fixed blocks of BLOCK so that GCC's -O2
 * vectoriser (cheap cost model: known trip counts only) turns them into SIMD;
 * restrict tells it the arrays do not overlap. */
#define BLOCK 16

static void
relu(float *restrict h, size_t count)
{
	size_t j = 0;

	for (; j + BLOCK <= count; j += BLOCK) {
		for (size_t k = 0; k < BLOCK; k++)
			h[j + k] = h[j + k] > 0.0f ? h[j + k] : 0.0f;
	}
	for (; j < count; j++)
		h[j] = h[j] > 0.0f ? h[j] : 0.0f;
}

/* relu_grad zeroes d where the ReLU output act was cut to 0. */
static void
relu_grad(float *restrict d, const float *restrict act, size_t count)
{
	size_t j = 0;

	for (; j + BLOCK <= count; j += BLOCK) {
		for (size_t k = 0; k < BLOCK; k++)
			d[j + k] = act[j + k] > 0.0f ? d[j + k] : 0.0f;
	}
	for (; j < count; j++)
		d[j] = act[j] > 0.0f ? d[j] : 0.0f;
}

static const float *
dense_of(const psf_params *p, uint16_t id)
{
	return p->dense + p->m->t[id - 1].off;
}

static float
sigmoid(float z)
{
	if (z >= 0)
		return 1.0f / (1.0f + expf(-z));
	return expf(z) / (1.0f + expf(z));
}

static psf_err
check_call(const psf_model *m, const psf_model_ws *ws, const psf_params *params, const float *X,
    size_t n)
{
	if (m == NULL || ws == NULL || params == NULL || X == NULL)
		return PSF_EINVAL;
	if (ws->m != m || params->m != m) {
		psf_log_err(TAG, "workspace or params belong to another model");
		return PSF_EINVAL;
	}
	if (n == 0 || n > ws->max_batch) {
		psf_log_err(TAG, "batch of %zu rows, workspace takes 1..%zu", n, ws->max_batch);
		return PSF_EINVAL;
	}
	if (!params_dense_complete(params)) {
		psf_log_err(TAG, "params lack %llu of %llu dense keys",
		    (unsigned long long)(m->n_dense_keys - params->n_dense_present),
		    (unsigned long long)m->n_dense_keys);
		return PSF_ENOENT;
	}
	return PSF_OK;
}

/* lookup_symbols finds each row's symbol in params (ws->slot). */
static psf_err
lookup_symbols(const psf_model *m, psf_model_ws *ws, const psf_params *params,
    const uint64_t *sym_rows, size_t n)
{
	unsigned need = (m->emb_id ? SYM_HAS_EMB : 0) | (m->sb_id ? SYM_HAS_BIAS : 0);

	if (need == 0)
		return PSF_OK;
	if (sym_rows == NULL)
		return PSF_EINVAL;
	for (size_t i = 0; i < n; i++) {
		long s;

		if (sym_rows[i] > PSF_KEY_ROW_MASK)
			return PSF_EINVAL;
		s = params_find(params, sym_rows[i]);
		if (s < 0 || (params->sym_has[s] & need) != need) {
			psf_log_debug(TAG, "no per-symbol values for row %llx",
			    (unsigned long long)sym_rows[i]);
			return PSF_ENOENT;
		}
		ws->slot[i] = s;
	}
	return PSF_OK;
}

/* build_input returns the first layer's input: X itself, or X with each row's
 * embedding appended. */
static const float *
build_input(const psf_model *m, psf_model_ws *ws, const psf_params *params, const float *X,
    size_t n)
{
	size_t nf = m->n_features, e = m->emb_dim, d = m->d_in;
	size_t emb_off = m->emb_id ? m->t[m->emb_id - 1].off : 0;

	if (e == 0)
		return X;
	for (size_t i = 0; i < n; i++) {
		const float *emb = params->sym_val + (size_t)ws->slot[i] * m->sym_stride + emb_off;

		memcpy(ws->in + i * d, X + i * nf, nf * sizeof(float));
		memcpy(ws->in + i * d + nf, emb, e * sizeof(float));
	}
	return ws->in;
}

static void
layer_forward(const model_layer *l, const float *W, const float *b, const float *A, size_t n,
    float *H)
{
	int in = (int)l->in, out = (int)l->out;

	if (out == 1) {
		for (size_t i = 0; i < n; i++)
			H[i] = b[0];
	} else {
		for (size_t i = 0; i < n; i++)
			memcpy(H + i * l->out, b, l->out * sizeof(float));
	}
	if (out == 1)
		cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, in, 1.0f, A, in, W, 1, 1.0f, H, 1);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, out, in, 1.0f, A, in,
		    W, in, 1.0f, H, out);
	if (l->has_relu)
		relu(H, n * l->out);
}

/* forward_pass leaves the logits in ws->act[last] and the first layer's input
 * in *input_out. */
static psf_err
forward_pass(const psf_model *m, psf_model_ws *ws, const psf_params *params, const float *X,
    const uint64_t *sym_rows, size_t n, const float **input_out)
{
	const float *A, *input;
	float *z;
	psf_err err;

	if ((err = lookup_symbols(m, ws, params, sym_rows, n)) != PSF_OK)
		return err;
	if (m->n_rnn > 0)
		A = input = rnn_forward(m, ws->rnn, params, X, ws->slot, n);
	else
		A = input = build_input(m, ws, params, X, n);
	for (size_t l = 0; l < m->n_layers; l++) {
		const model_layer *ly = &m->layers[l];

		layer_forward(ly, dense_of(params, ly->w_id), dense_of(params, ly->b_id), A, n,
		    ws->act[l]);
		A = ws->act[l];
	}
	z = ws->act[m->n_layers - 1];
	if (m->sb_id != 0) {
		size_t off = m->t[m->sb_id - 1].off;

		for (size_t i = 0; i < n; i++)
			z[i] += params->sym_val[(size_t)ws->slot[i] * m->sym_stride + off];
	}
	*input_out = input;
	return PSF_OK;
}

psf_err
psf_model_forward(const psf_model *m, psf_model_ws *ws, const psf_params *params, const float *X,
    const uint64_t *sym_rows, size_t n, float *out)
{
	const float *input, *z;
	psf_err err;

	if (out == NULL)
		return PSF_EINVAL;
	if ((err = check_call(m, ws, params, X, n)) != PSF_OK)
		return err;
	if ((err = forward_pass(m, ws, params, X, sym_rows, n, &input)) != PSF_OK)
		return err;
	z = ws->act[m->n_layers - 1];
	for (size_t i = 0; i < n; i++)
		out[i] = m->is_bce ? sigmoid(z[i]) : z[i];
	return PSF_OK;
}

/* batch_loss returns the mean loss over the batch and writes d(mean loss)/dz. */
static double
batch_loss(const psf_model *m, const float *z, const float *y, size_t n, float *g)
{
	double sum = 0.0;

	for (size_t i = 0; i < n; i++) {
		double zi = z[i], yi = y[i];

		if (m->is_bce) {
			/* Softplus form of BCE on the logit: no log(0) for saturated p. */
			sum += fmax(zi, 0.0) - zi * yi + log1p(exp(-fabs(zi)));
			g[i] = (float)(((double)sigmoid(z[i]) - yi) / (double)n);
		} else {
			sum += (zi - yi) * (zi - yi);
			g[i] = (float)(2.0 * (zi - yi) / (double)n);
		}
	}
	return sum / (double)n;
}

/* input_grad writes dA = dH W (n x cols) for the columns [c0, c0 + cols) of W.
 * With out == 1 this is an outer product; sgemm's small-matrix kernels do it
 * faster than a scalar loop. */
static void
input_grad(const model_layer *l, const float *dH, const float *W, size_t c0, size_t cols, size_t n,
    float *dA)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)cols, (int)l->out, 1.0f,
	    dH, (int)l->out, W + c0, (int)l->in, 0.0f, dA, (int)cols);
}

/* layer_backward writes dW = dH^T A and db = dH^T 1 of one layer given dH
 * (n x out); ones holds n ones. */
static void
layer_backward(const model_layer *l, const float *dH, const float *A, const float *ones, size_t n,
    float *dW, float *db)
{
	int in = (int)l->in, out = (int)l->out;

	if (out == 1)
		cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, in, 1.0f, A, in, dH, 1, 0.0f, dW, 1);
	else
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, (int)n, 1.0f, dH, out,
		    A, in, 0.0f, dW, in);
	cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, out, 1.0f, dH, out, ones, 1, 0.0f, db, 1);
}

static void
backward(const psf_model *m, psf_model_ws *ws, const psf_params *params, const float *input,
    size_t n, psf_params *grads)
{
	const float *d = ws->g;
	int k = 0;

	for (size_t l = m->n_layers; l-- > 0;) {
		const model_layer *ly = &m->layers[l];
		const float *W = dense_of(params, ly->w_id);
		float *dW = (float *)dense_of(grads, ly->w_id);
		float *db = (float *)dense_of(grads, ly->b_id);
		float *dA = ws->d_buf[k];

		layer_backward(ly, d, l > 0 ? ws->act[l - 1] : input, ws->ones, n, dW, db);
		if (l == 0 && m->n_rnn > 0) {
			input_grad(ly, d, W, 0, ly->in, n, dA);
			rnn_backward(m, ws->rnn, params, dA, n, grads, ws->d_emb);
			break;
		}
		if (l == 0) {
			if (m->emb_dim > 0)
				input_grad(ly, d, W, m->n_features, m->emb_dim, n, ws->d_emb);
			break;
		}
		input_grad(ly, d, W, 0, ly->in, n, dA);
		/* ReLU': the previous layer's output is 0 exactly where it was cut. */
		relu_grad(dA, ws->act[l - 1], n * ly->in);
		d = dA;
		k ^= 1;
	}
}

/* l2_penalty adds l2 * W to every weight gradient and returns 0.5 * l2 * |W|^2. */
static double
l2_penalty(const psf_model *m, const psf_params *params, psf_params *grads)
{
	double sum = 0.0;

	if (m->cfg.l2 == 0.0)
		return 0.0;
	for (size_t l = 0; l < m->n_layers; l++) {
		const model_layer *ly = &m->layers[l];
		const float *W = dense_of(params, ly->w_id);
		size_t count = (size_t)ly->in * ly->out;

		sum += cblas_dsdot((int)count, W, 1, W, 1); /* double accumulation */
		cblas_saxpy((int)count, (float)m->cfg.l2, W, 1, (float *)dense_of(grads, ly->w_id),
		    1);
	}
	sum += rnn_l2(m, params, grads);
	return 0.5 * m->cfg.l2 * sum;
}

/* symbol_grads accumulates each row's embedding and bias gradient into grads. */
static psf_err
symbol_grads(const psf_model *m, const psf_model_ws *ws, const uint64_t *sym_rows, size_t n,
    psf_params *grads)
{
	uint8_t has = (uint8_t)((m->emb_id ? SYM_HAS_EMB : 0) | (m->sb_id ? SYM_HAS_BIAS : 0));
	size_t emb_off = m->emb_id ? m->t[m->emb_id - 1].off : 0;
	size_t sb_off = m->sb_id ? m->t[m->sb_id - 1].off : 0;
	size_t e = m->emb_dim;
	psf_err err;

	for (size_t i = 0; has != 0 && i < n; i++) {
		float *restrict row;
		size_t slot;

		if ((err = params_slot(grads, sym_rows[i], &slot)) != PSF_OK)
			return err;
		grads->sym_has[slot] = has;
		row = grads->sym_val + slot * m->sym_stride;
		if (e > 0) {
			const float *restrict src = ws->d_emb + i * e;

			for (size_t j = 0; j < e; j++)
				row[emb_off + j] += src[j];
		}
		if (m->sb_id != 0)
			row[sb_off] += ws->g[i];
	}
	return PSF_OK;
}

static psf_err
check_targets(const psf_model *m, const float *y, size_t n)
{
	if (y == NULL)
		return PSF_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(y[i]) || (m->is_bce && (y[i] < 0.0f || y[i] > 1.0f))) {
			psf_log_err(TAG, "target y[%zu]=%g is not %s", i, (double)y[i],
			    m->is_bce ? "in [0, 1]" : "finite");
			return PSF_EINVAL;
		}
	}
	return PSF_OK;
}

psf_err
psf_model_loss_grad(const psf_model *m, psf_model_ws *ws, const psf_params *params, const float *X,
    const float *y, const uint64_t *sym_rows, size_t n, psf_params *grads, double *loss_out)
{
	const float *input;
	double loss;
	psf_err err;

	if (grads == NULL || loss_out == NULL || grads == params)
		return PSF_EINVAL;
	if ((err = check_call(m, ws, params, X, n)) != PSF_OK)
		return err;
	if (grads->m != m) {
		psf_log_err(TAG, "grads belong to another model");
		return PSF_EINVAL;
	}
	if ((err = check_targets(m, y, n)) != PSF_OK)
		return err;
	if ((err = forward_pass(m, ws, params, X, sym_rows, n, &input)) != PSF_OK)
		return err;
	loss = batch_loss(m, ws->act[m->n_layers - 1], y, n, ws->g);
	psf_params_clear(grads);
	params_mark_dense(grads);
	backward(m, ws, params, input, n, grads);
	loss += l2_penalty(m, params, grads);
	if ((err = symbol_grads(m, ws, sym_rows, n, grads)) != PSF_OK)
		return err;
	*loss_out = loss;
	return PSF_OK;
}
