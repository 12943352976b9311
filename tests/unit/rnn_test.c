/* rnn_test.c -- the gru and lstm models (lib/model/model_rnn.c): finite
 * differences of an independent double-precision reference against every
 * analytic gradient (both cells, 1 and 2 layers, with and without embedding
 * and symbol bias, MSE and BCE), a one-day cell computed by hand, the input
 * layout [n x W x n_features], and the errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/config/config.h"
#include "lib/model/model.h"

#define MAX_T 12
#define MAX_H 8
#define NF 3    /* features */
#define NB 5    /* batch rows */
#define CHUNK 7 /* small, so tensors span several keys */

static psf_model_cfg
make_cfg(psf_model_kind kind, uint32_t n_layers, uint32_t h, uint32_t window, uint32_t emb,
    int sym_bias, double l2)
{
	psf_model_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.kind = kind;
	cfg.n_hidden = n_layers;
	for (uint32_t i = 0; i < n_layers; i++)
		cfg.hidden[i] = h + i; /* layers of different sizes catch mixed-up shapes */
	cfg.window = window;
	cfg.embedding_dim = emb;
	cfg.symbol_bias = sym_bias;
	cfg.l2 = l2;
	cfg.init_scale = 1.0;
	cfg.chunk_floats = CHUNK;
	return cfg;
}

static uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = (*s += UINT64_C(0x9e3779b97f4a7c15));

	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static float
rng_uniform(uint64_t *s)
{
	return (float)((double)(rng_next(s) >> 11) * 0x1p-53 * 2.0 - 1.0);
}

/* -------------------------------------------- reference model in double */

typedef struct ref {
	psf_model_kind kind;
	size_t n_t;
	psf_tensor_info info[MAX_T];
	double *v[MAX_T]; /* dense: all floats; per-symbol: 3 symbols x cols */
	uint64_t syms[3];
	int n_layers, emb_t, sb_t, out_w, out_b;
	int wx[2], wh[2], b[2];
	uint32_t hid[2], window, emb;
	double l2;
	bool is_bce;
} ref;

static float
get_elem(const psf_params *p, const psf_tensor_info *in, uint64_t sym, uint64_t e)
{
	uint64_t key = in->is_per_symbol ? psf_key(in->id, sym) : psf_key(in->id, e / CHUNK);
	const float *data;

	assert_int_equal(psf_params_get_key(p, key, &data, NULL), PSF_OK);
	return in->is_per_symbol ? data[e] : data[e % CHUNK];
}

static int
find(const ref *r, const char *name)
{
	for (size_t t = 0; t < r->n_t; t++)
		if (strcmp(r->info[t].name, name) == 0)
			return (int)t;
	return -1;
}

static void
ref_load(ref *r, const psf_model *m, const psf_model_cfg *cfg, const psf_params *p,
    const uint64_t *syms)
{
	char name[16];

	memset(r, 0, sizeof(*r));
	r->kind = cfg->kind;
	r->n_t = psf_model_n_tensors(m);
	r->window = cfg->window;
	r->emb = cfg->embedding_dim;
	r->l2 = cfg->l2;
	r->is_bce = psf_model_is_probability(m);
	r->n_layers = (int)cfg->n_hidden;
	memcpy(r->syms, syms, sizeof(r->syms));
	assert_true(r->n_t <= MAX_T);
	for (size_t t = 0; t < r->n_t; t++) {
		psf_tensor_info *in = &r->info[t];
		size_t count;

		assert_int_equal(psf_model_tensor_info(m, t, in), PSF_OK);
		count = in->is_per_symbol ? 3 * in->cols : in->floats;
		assert_non_null(r->v[t] = calloc(count, sizeof(double)));
		for (size_t e = 0; e < count; e++)
			r->v[t][e] = in->is_per_symbol
			    ? get_elem(p, in, syms[e / in->cols], e % in->cols)
			    : get_elem(p, in, 0, e);
	}
	for (int l = 0; l < r->n_layers; l++) {
		r->hid[l] = cfg->hidden[l];
		snprintf(name, sizeof(name), "r%d.wx", l);
		r->wx[l] = find(r, name);
		snprintf(name, sizeof(name), "r%d.wh", l);
		r->wh[l] = find(r, name);
		snprintf(name, sizeof(name), "r%d.b", l);
		r->b[l] = find(r, name);
		assert_true(r->wx[l] >= 0 && r->wh[l] >= 0 && r->b[l] >= 0);
	}
	r->out_w = find(r, "out.w");
	r->out_b = find(r, "out.b");
	r->emb_t = find(r, "emb");
	r->sb_t = find(r, "sym_bias");
}

static void
ref_free(ref *r)
{
	for (size_t t = 0; t < r->n_t; t++)
		free(r->v[t]);
}

static double
sigm(double z)
{
	return 1.0 / (1.0 + exp(-z));
}

/* ref_logit runs one row: x is [W x NF], oldest day first. */
static double
ref_logit(const ref *r, const float *x, size_t sym)
{
	double in[16][NF + 8];
	double out[16][MAX_H];
	size_t W = r->window, dim = NF + r->emb;
	double z;

	assert_true(W <= 16 && r->emb <= 8);
	for (size_t t = 0; t < W; t++) {
		for (size_t k = 0; k < NF; k++)
			in[t][k] = x[t * NF + k];
		for (size_t k = 0; k < r->emb; k++)
			in[t][NF + k] = r->v[r->emb_t][sym * r->emb + k];
	}
	for (int l = 0; l < r->n_layers; l++) {
		size_t H = r->hid[l];
		const double *Wx = r->v[r->wx[l]], *Wh = r->v[r->wh[l]], *b = r->v[r->b[l]];
		double h[MAX_H] = {0}, c[MAX_H] = {0};

		for (size_t t = 0; t < W; t++) {
			size_t G = r->kind == PSF_MODEL_GRU ? 3 : 4;
			double ax[4 * MAX_H], ah[4 * MAX_H];

			for (size_t o = 0; o < G * H; o++) {
				ax[o] = b[o];
				ah[o] = 0.0;
				for (size_t k = 0; k < dim; k++)
					ax[o] += Wx[o * dim + k] * in[t][k];
				for (size_t k = 0; k < H; k++)
					ah[o] += Wh[o * H + k] * h[k];
			}
			for (size_t j = 0; j < H; j++) {
				if (r->kind == PSF_MODEL_GRU) {
					double rr = sigm(ax[j] + ah[j]);
					double zz = sigm(ax[H + j] + ah[H + j]);
					double nn = tanh(ax[2 * H + j] + rr * ah[2 * H + j]);
					out[t][j] = (1.0 - zz) * nn + zz * h[j];
				} else {
					double ig = sigm(ax[j] + ah[j]);
					double fg = sigm(ax[H + j] + ah[H + j]);
					double gg = tanh(ax[2 * H + j] + ah[2 * H + j]);
					double og = sigm(ax[3 * H + j] + ah[3 * H + j]);
					c[j] = fg * c[j] + ig * gg;
					out[t][j] = og * tanh(c[j]);
				}
			}
			for (size_t j = 0; j < H; j++)
				h[j] = out[t][j];
		}
		for (size_t t = 0; t < W; t++)
			for (size_t j = 0; j < H; j++)
				in[t][j] = out[t][j];
		dim = H;
	}
	z = r->v[r->out_b][0];
	for (size_t j = 0; j < dim; j++)
		z += r->v[r->out_w][j] * in[W - 1][j];
	return z + (r->sb_t >= 0 ? r->v[r->sb_t][sym] : 0.0);
}

static double
ref_loss(const ref *r, const float *X, const float *y, const size_t *sym_idx)
{
	double total = 0.0, pen = 0.0;

	for (size_t i = 0; i < NB; i++) {
		double z = ref_logit(r, X + i * r->window * NF, sym_idx[i]);

		if (r->is_bce)
			total -= y[i] * log(sigm(z)) + (1.0 - y[i]) * log(1.0 - sigm(z));
		else
			total += (z - y[i]) * (z - y[i]);
	}
	for (size_t t = 0; t < r->n_t; t++) {
		const char *nm = r->info[t].name;
		size_t len = strlen(nm);

		if (r->info[t].is_per_symbol || nm[len - 1] == 'b') /* biases: not penalised */
			continue;
		for (uint64_t e = 0; e < r->info[t].floats; e++)
			pen += r->v[t][e] * r->v[t][e];
	}
	return total / NB + 0.5 * r->l2 * pen;
}

/* ------------------------------------------------------ gradient check */

static void
grad_check(psf_model_kind kind, uint32_t n_layers, uint32_t window, uint32_t emb, int sym_bias,
    psf_target_kind target)
{
	psf_model_cfg cfg = make_cfg(kind, n_layers, 3, window, emb, sym_bias, 0.05);
	const char *names[3] = {"AAPL", "MSFT", "X"};
	uint64_t syms[3], rows[NB], s = 99 + window * 7 + emb * 3 + (uint64_t)sym_bias + n_layers;
	size_t sym_idx[NB], checked = 0;
	float X[NB * 16 * NF], y[NB];
	psf_model *m = NULL;
	psf_params *p = NULL, *g = NULL;
	psf_model_ws *ws = NULL;
	double loss = -1.0, rl, max_abs = 0.0;
	ref r;

	assert_int_equal(psf_model_new(&cfg, NF, target, 5, &m), PSF_OK);
	assert_int_equal(psf_model_window(m), window);
	for (size_t k = 0; k < 3; k++)
		syms[k] = psf_symbol_row(names[k]);
	for (size_t i = 0; i < NB; i++) {
		sym_idx[i] = (i * 2) % 3;
		rows[i] = syms[sym_idx[i]];
		for (size_t k = 0; k < window * NF; k++)
			X[i * window * NF + k] = rng_uniform(&s);
		y[i] = psf_model_is_probability(m) ? (float)(rng_next(&s) & 1) : rng_uniform(&s);
	}
	assert_int_equal(psf_params_new(m, &p), PSF_OK);
	assert_int_equal(psf_params_new(m, &g), PSF_OK);
	assert_int_equal(psf_model_ws_new(m, 8, &ws), PSF_OK);
	assert_int_equal(psf_params_fill_init(p, syms, 3), PSF_OK);
	/* Non-zero biases and symbol values, so every path carries gradient. */
	for (size_t t = 0; t < psf_model_n_tensors(m); t++) {
		psf_tensor_info in;
		float v[CHUNK];

		assert_int_equal(psf_model_tensor_info(m, t, &in), PSF_OK);
		for (uint64_t c = 0; !in.is_per_symbol && c < in.n_chunks; c++) {
			uint64_t key = psf_key(in.id, c);
			uint32_t len = psf_model_key_len(m, key);
			const float *cur;

			assert_int_equal(psf_params_get_key(p, key, &cur, NULL), PSF_OK);
			for (uint32_t j = 0; j < len; j++)
				v[j] = cur[j] * 1.5f + 0.2f * rng_uniform(&s);
			assert_int_equal(psf_params_set_key(p, key, v, len), PSF_OK);
		}
		for (size_t k = 0; in.is_per_symbol && k < 3; k++) {
			for (uint32_t j = 0; j < in.cols; j++)
				v[j] = 0.5f * rng_uniform(&s);
			assert_int_equal(psf_params_set_key(p, psf_key(in.id, syms[k]), v, in.cols),
			    PSF_OK);
		}
	}
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, y, rows, NB, g, &loss), PSF_OK);
	assert_int_equal(psf_params_n_keys(g),
	    psf_model_n_dense_keys(m) + 3 * psf_model_n_symbol_tensors(m));
	ref_load(&r, m, &cfg, p, syms);
	rl = ref_loss(&r, X, y, sym_idx);
	if (fabs(loss - rl) > 1e-5 * fmax(1.0, fabs(rl)))
		fail_msg("loss %.9g vs reference %.9g", loss, rl);
	{
		float pred[NB];

		assert_int_equal(psf_model_forward(m, ws, p, X, rows, NB, pred), PSF_OK);
		for (size_t i = 0; i < NB; i++) {
			double z = ref_logit(&r, X + i * window * NF, sym_idx[i]);
			double want = r.is_bce ? sigm(z) : z;
			assert_true(fabs(pred[i] - want) < 1e-5);
		}
	}
	for (size_t t = 0; t < r.n_t; t++) {
		const psf_tensor_info *in = &r.info[t];
		size_t count = in->is_per_symbol ? 3 * in->cols : in->floats;

		for (size_t e = 0; e < count; e++) {
			const double eps = 1e-6;
			double keep = r.v[t][e], lp, lm, fd, an, den;

			r.v[t][e] = keep + eps;
			lp = ref_loss(&r, X, y, sym_idx);
			r.v[t][e] = keep - eps;
			lm = ref_loss(&r, X, y, sym_idx);
			r.v[t][e] = keep;
			fd = (lp - lm) / (2.0 * eps);
			an = in->is_per_symbol ? get_elem(g, in, syms[e / in->cols], e % in->cols)
			                       : get_elem(g, in, 0, e);
			den = fmax(fmax(fabs(an), fabs(fd)), 1e-3);
			if (fabs(an - fd) / den >= 1e-2)
				fail_msg("%s W=%u layers=%u emb=%u sb=%d: %s[%zu]: analytic %.8g "
				         "vs numeric %.8g",
				    kind == PSF_MODEL_GRU ? "gru" : "lstm", window, n_layers, emb,
				    sym_bias, in->name, e, an, fd);
			max_abs = fmax(max_abs, fabs(fd));
			checked++;
		}
	}
	assert_true(max_abs > 1e-2); /* not a vacuous check */
	assert_true(checked > 50);
	ref_free(&r);
	psf_model_ws_free(ws);
	psf_params_free(g);
	psf_params_free(p);
	psf_model_free(m);
}

static void
test_gru_grads(void **state)
{
	(void)state;
	for (uint32_t layers = 1; layers <= 2; layers++) {
		grad_check(PSF_MODEL_GRU, layers, 4, 0, 0, PSF_TARGET_NEXT_RETURN);
		grad_check(PSF_MODEL_GRU, layers, 3, 2, 0, PSF_TARGET_NEXT_RETURN);
		grad_check(PSF_MODEL_GRU, layers, 3, 2, 1, PSF_TARGET_NEXT_CLOSE);
		grad_check(PSF_MODEL_GRU, layers, 5, 0, 1, PSF_TARGET_NEXT_DIRECTION);
		grad_check(PSF_MODEL_GRU, layers, 1, 2, 1, PSF_TARGET_NEXT_RETURN);
	}
}

static void
test_lstm_grads(void **state)
{
	(void)state;
	for (uint32_t layers = 1; layers <= 2; layers++) {
		grad_check(PSF_MODEL_LSTM, layers, 4, 0, 0, PSF_TARGET_NEXT_RETURN);
		grad_check(PSF_MODEL_LSTM, layers, 3, 2, 0, PSF_TARGET_NEXT_RETURN);
		grad_check(PSF_MODEL_LSTM, layers, 3, 2, 1, PSF_TARGET_NEXT_CLOSE);
		grad_check(PSF_MODEL_LSTM, layers, 5, 0, 1, PSF_TARGET_NEXT_DIRECTION);
		grad_check(PSF_MODEL_LSTM, layers, 1, 2, 1, PSF_TARGET_NEXT_RETURN);
	}
}

/* ------------------------------------------- one day, computed by hand */

static void
set_tensor(const psf_model *m, psf_params *p, const char *name, const float *v)
{
	psf_tensor_info in;

	assert_int_equal(psf_model_tensor_find(m, name, &in), PSF_OK);
	assert_true(in.floats <= 64);
	for (uint64_t c = 0; c < in.n_chunks; c++) {
		uint64_t key = psf_key(in.id, c);
		assert_int_equal(psf_params_set_key(p, key, v + c * 64, psf_model_key_len(m, key)),
		    PSF_OK);
	}
}

/* W = 1, one feature pair x = (0.5, -1), H = 1: the state before the day is 0,
 * so the recurrent weights play no part and the cell reduces to a few scalar
 * formulas written out below. */
static void
test_one_day_by_hand(void **state)
{
	const float x[2] = {0.5f, -1.0f};
	/* Gate rows of wx: gru r z n, lstm i f g o. */
	const float wx[8] = {0.3f, 0.1f, -0.2f, 0.4f, 0.7f, -0.5f, 0.2f, 0.6f};
	const float wh[4] = {9.0f, 9.0f, 9.0f, 9.0f}; /* must not matter */
	const float b[4] = {0.05f, -0.1f, 0.2f, 0.3f};
	const float ow[1] = {1.5f}, ob[1] = {-0.25f};

	(void)state;
	for (int k = 0; k < 2; k++) {
		psf_model_kind kind = k == 0 ? PSF_MODEL_GRU : PSF_MODEL_LSTM;
		psf_model_cfg cfg = make_cfg(kind, 1, 1, 1, 0, 0, 0.0);
		psf_model *m = NULL;
		psf_params *p = NULL;
		psf_model_ws *ws = NULL;
		float out = 0;
		double h, want;

		cfg.chunk_floats = 64;
		assert_int_equal(psf_model_new(&cfg, 2, PSF_TARGET_NEXT_RETURN, 1, &m), PSF_OK);
		assert_int_equal(psf_params_new(m, &p), PSF_OK);
		assert_int_equal(psf_model_ws_new(m, 1, &ws), PSF_OK);
		set_tensor(m, p, "r0.wx", wx);
		set_tensor(m, p, "r0.wh", wh);
		set_tensor(m, p, "r0.b", b);
		set_tensor(m, p, "out.w", ow);
		set_tensor(m, p, "out.b", ob);
		assert_int_equal(psf_model_forward(m, ws, p, x, NULL, 1, &out), PSF_OK);
		if (kind == PSF_MODEL_GRU) {
			/* z = s(0.5*-0.2 + -1*0.4 - 0.1) = s(-0.6); n = tanh(0.35 + 0.5 + 0.2)
			 * = tanh(1.05); h = (1 - z) n (r multiplies h_prev Wh = 0). */
			h = (1.0 - 1.0 / (1.0 + exp(0.6))) * tanh(1.05);
		} else {
			/* i = s(0.15 - 0.1 + 0.05) = s(0.1); g = tanh(0.35 + 0.5 + 0.2) =
			 * tanh(1.05); o = s(0.1 - 0.6 + 0.3) = s(-0.2); c = i g (c_prev = 0),
			 * h = o tanh(c). */
			double i = 1.0 / (1.0 + exp(-0.1)), o = 1.0 / (1.0 + exp(0.2));
			h = o * tanh(i * tanh(1.05));
		}
		want = 1.5 * h - 0.25;
		if (fabs(out - want) > 1e-6)
			fail_msg("%s: %.9g, by hand %.9g", kind == PSF_MODEL_GRU ? "gru" : "lstm",
			    (double)out, want);
		psf_model_ws_free(ws);
		psf_params_free(p);
		psf_model_free(m);
	}
}

/* -------------------------------------------------- layout and errors */

/* A row's prediction depends on its own window only, in its order: the batch
 * [n x W x nf] is read row by row, and reversing a row's days changes it. */
static void
test_layout(void **state)
{
	psf_model_cfg cfg = make_cfg(PSF_MODEL_GRU, 2, 4, 6, 0, 0, 0.0);
	psf_model *m = NULL;
	psf_params *p = NULL;
	psf_model_ws *ws = NULL;
	float X[4 * 6 * NF], one[6 * NF], pred[4], alone, rev;
	uint64_t s = 3;

	(void)state;
	assert_int_equal(psf_model_new(&cfg, NF, PSF_TARGET_NEXT_RETURN, 2, &m), PSF_OK);
	assert_int_equal(psf_params_new(m, &p), PSF_OK);
	assert_int_equal(psf_params_fill_init(p, NULL, 0), PSF_OK);
	assert_int_equal(psf_model_ws_new(m, 4, &ws), PSF_OK);
	for (size_t k = 0; k < sizeof(X) / sizeof(X[0]); k++)
		X[k] = rng_uniform(&s);
	assert_int_equal(psf_model_forward(m, ws, p, X, NULL, 4, pred), PSF_OK);
	assert_int_equal(psf_model_forward(m, ws, p, X + 2 * 6 * NF, NULL, 1, &alone), PSF_OK);
	assert_true(fabsf(alone - pred[2]) < 1e-6f);
	for (size_t t = 0; t < 6; t++)
		memcpy(one + t * NF, X + 2 * 6 * NF + (5 - t) * NF, NF * sizeof(float));
	assert_int_equal(psf_model_forward(m, ws, p, one, NULL, 1, &rev), PSF_OK);
	assert_true(fabsf(rev - alone) > 1e-6f);
	/* Tensors and sizes. */
	psf_tensor_info in;
	assert_int_equal(psf_model_tensor_find(m, "r1.wh", &in), PSF_OK);
	assert_int_equal(in.rows, 3 * 5);
	assert_int_equal(in.cols, 5);
	assert_int_equal(psf_model_tensor_find(m, "r1.wx", &in), PSF_OK);
	assert_int_equal(in.cols, 4);
	{
		uint64_t floats = 0;
		for (size_t t = 0; t < psf_model_n_tensors(m); t++) {
			assert_int_equal(psf_model_tensor_info(m, t, &in), PSF_OK);
			floats += in.floats;
		}
		assert_int_equal(floats, psf_model_cfg_dense_floats(&cfg, NF));
	}
	psf_model_ws_free(ws);
	psf_params_free(p);
	psf_model_free(m);
}

static void
test_errors(void **state)
{
	psf_model *m = NULL;
	psf_model_cfg cfg;

	(void)state;
	cfg = make_cfg(PSF_MODEL_LSTM, 3, 4, 5, 0, 0, 0.0);
	assert_int_equal(psf_model_new(&cfg, NF, PSF_TARGET_NEXT_RETURN, 1, &m), PSF_EINVAL);
	cfg = make_cfg(PSF_MODEL_GRU, 1, 4, 0, 0, 0, 0.0);
	assert_int_equal(psf_model_new(&cfg, NF, PSF_TARGET_NEXT_RETURN, 1, &m), PSF_EINVAL);
	cfg = make_cfg(PSF_MODEL_GRU, 1, 4, PSF_MODEL_MAX_WINDOW + 1, 0, 0, 0.0);
	assert_int_equal(psf_model_new(&cfg, NF, PSF_TARGET_NEXT_RETURN, 1, &m), PSF_EINVAL);
	cfg = make_cfg(PSF_MODEL_GRU, 1, 4, PSF_MODEL_MAX_WINDOW, 0, 0, 0.0);
	assert_int_equal(psf_model_new(&cfg, NF, PSF_TARGET_NEXT_RETURN, 1, &m), PSF_OK);
	assert_int_equal(psf_model_window(m), PSF_MODEL_MAX_WINDOW);
	psf_model_free(m);
	/* The window is the recurrent kinds' only: an mlp reads one day. */
	cfg = make_cfg(PSF_MODEL_MLP, 1, 4, 7, 0, 0, 0.0);
	assert_int_equal(psf_model_new(&cfg, NF, PSF_TARGET_NEXT_RETURN, 1, &m), PSF_OK);
	assert_int_equal(psf_model_window(m), 1);
	psf_model_free(m);
}

/* sq_norm sums the squares of every value of p. */
static double
sq_norm(const psf_model *m, const psf_params *p)
{
	uint64_t keys[512];
	uint32_t lens[512];
	size_t n;
	double sq = 0.0;

	(void)m;
	assert_int_equal(psf_params_keys(p, keys, lens, 512, &n), PSF_OK);
	for (size_t k = 0; k < n; k++) {
		const float *v;
		assert_int_equal(psf_params_get_key(p, keys[k], &v, NULL), PSF_OK);
		for (uint32_t j = 0; j < lens[k]; j++)
			sq += (double)v[j] * v[j];
	}
	return sq;
}

/* psf_params_clip_norm (training.clip_norm): the whole gradient, dense keys and
 * symbol rows, scaled to the bound; below it nothing changes. */
static void
test_clip_norm(void **state)
{
	psf_model_cfg cfg = make_cfg(PSF_MODEL_LSTM, 1, 4, 3, 2, 1, 0.0);
	uint64_t syms[2] = {11, 12}, rows[NB], s = 5;
	float X[NB * 3 * NF], y[NB];
	psf_model *m = NULL;
	psf_params *p = NULL, *g = NULL;
	psf_model_ws *ws = NULL;
	double loss, norm, norm2, sq0;
	const float *v0, *v1;
	float first;
	uint64_t k0;

	(void)state;
	assert_int_equal(psf_model_new(&cfg, NF, PSF_TARGET_NEXT_RETURN, 3, &m), PSF_OK);
	assert_int_equal(psf_params_new(m, &p), PSF_OK);
	assert_int_equal(psf_params_new(m, &g), PSF_OK);
	assert_int_equal(psf_model_ws_new(m, NB, &ws), PSF_OK);
	assert_int_equal(psf_params_fill_init(p, syms, 2), PSF_OK);
	for (size_t i = 0; i < NB; i++) {
		rows[i] = syms[i % 2];
		y[i] = 3.0f * rng_uniform(&s);
		for (size_t k = 0; k < 3 * NF; k++)
			X[i * 3 * NF + k] = rng_uniform(&s);
	}
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, y, rows, NB, g, &loss), PSF_OK);
	sq0 = sq_norm(m, g);
	psf_params_clip_norm(g, 0.0, &norm); /* 0: only measures */
	assert_true(fabs(norm - sqrt(sq0)) < 1e-6 * sqrt(sq0));
	psf_params_clip_norm(g, 2.0 * norm, &norm2); /* above the norm: unchanged */
	assert_true(fabs(sq_norm(m, g) - sq0) < 1e-9 * sq0);
	k0 = psf_key(1, 0);
	assert_int_equal(psf_params_get_key(g, k0, &v0, NULL), PSF_OK);
	first = v0[0];
	psf_params_clip_norm(g, 0.25 * norm, &norm2);
	assert_true(fabs(norm2 - norm) < 1e-9 * norm);
	assert_true(fabs(sqrt(sq_norm(m, g)) - 0.25 * norm) < 1e-5 * norm);
	assert_int_equal(psf_params_get_key(g, k0, &v1, NULL), PSF_OK);
	assert_true(fabsf(v1[0] - 0.25f * first) <= 1e-6f * fabsf(first) + 1e-12f);
	psf_model_ws_free(ws);
	psf_params_free(g);
	psf_params_free(p);
	psf_model_free(m);
}

/* parse_model loads a minimal fleet with this model section; returns the
 * config or NULL with the error in err. */
static psf_config *
parse_model(const char *model, const char *extra, char *err)
{
	char text[1024];
	psf_config *cfg = NULL;

	snprintf(text, sizeof(text),
	    "name: t\nrun_dir: /tmp/psf-rnn-unused\n"
	    "nodes:\n  ps:\n    - {id: ps0, listen: \"tcp://127.0.0.1:1\"}\n"
	    "  trainers:\n    - {id: trainer-0}\n"
	    "data: {path: /tmp/psf-rnn-unused.csv}\n"
	    "features: [\"return:1\", \"return:2\"]\n"
	    "model: %s\n%s",
	    model, extra);
	if (psf_config_parse("t.yaml", text, strlen(text), err, 256, &cfg) != PSF_OK)
		return NULL;
	return cfg;
}

/* The config keys: kinds, window, layers, training.clip_norm, and the
 * fingerprint (a store of another window is another model). */
static void
test_config(void **state)
{
	char err[256], fp[3][32];
	psf_config *cfg;
	const char *models[3] = {"{kind: gru, hidden: [8, 4], window: 12}",
	    "{kind: gru, hidden: [8, 4], window: 13}", "{kind: lstm, hidden: [8, 4], window: 12}"};

	(void)state;
	for (int k = 0; k < 3; k++) {
		assert_non_null(cfg = parse_model(models[k], "training: {clip_norm: 2.5}\n", err));
		assert_int_equal(cfg->model.kind, k < 2 ? PSF_MODEL_GRU : PSF_MODEL_LSTM);
		assert_int_equal(cfg->model.n_hidden, 2);
		assert_int_equal(cfg->model.window, k == 1 ? 13 : 12);
		assert_true(cfg->training.clip_norm == 2.5);
		psf_config_fingerprint(cfg, fp[k], sizeof(fp[k]));
		psf_config_free(cfg);
	}
	assert_string_not_equal(fp[0], fp[1]);
	assert_string_not_equal(fp[0], fp[2]);
	assert_non_null(cfg = parse_model("{kind: gru}", "", err)); /* defaults */
	assert_int_equal(cfg->model.window, 10);
	assert_int_equal(cfg->model.hidden[0], 32);
	assert_true(cfg->training.clip_norm == 0.0);
	psf_config_free(cfg);
	assert_null(parse_model("{kind: gru, hidden: [8, 8, 8]}", "", err));
	assert_non_null(strstr(err, "t.yaml:"));
	assert_non_null(strstr(err, "model kind 'gru' takes 1 or 2 layers in 'hidden', not 3"));
	assert_null(parse_model("{kind: lstm, window: 513}", "", err));
	assert_non_null(strstr(err, "'window' must be an integer in [1, 512]"));
	assert_null(parse_model("{kind: rnn}", "", err));
	assert_non_null(strstr(err, "gru"));
	assert_null(parse_model("{kind: gru}", "training: {clip_norm: -1}\n", err));
	assert_non_null(strstr(err, "clip_norm"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gru_grads),
	    cmocka_unit_test(test_lstm_grads),
	    cmocka_unit_test(test_one_day_by_hand),
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_clip_norm),
	    cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
