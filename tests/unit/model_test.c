#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "lib/model/model.h"

#define MAX_T 20
#define MAX_SYMS 8

/* ------------------------------------------------------------ helpers */

static psf_model_cfg
make_cfg(psf_model_kind kind, uint32_t n_hidden, const uint32_t *hidden, uint32_t emb, int sym_bias,
    double l2, uint32_t chunk)
{
	psf_model_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.kind = kind;
	cfg.n_hidden = n_hidden;
	for (uint32_t i = 0; i < n_hidden; i++)
		cfg.hidden[i] = hidden[i];
	cfg.embedding_dim = emb;
	cfg.symbol_bias = sym_bias;
	cfg.l2 = l2;
	cfg.init_scale = 1.0;
	cfg.chunk_floats = chunk;
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

/* rng_uniform returns U(-1, 1). */
static float
rng_uniform(uint64_t *s)
{
	return (float)((double)(rng_next(s) >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static uint64_t
tensor_key(const psf_model *m, const char *name, uint64_t row)
{
	psf_tensor_info info;

	assert_int_equal(psf_model_tensor_find(m, name, &info), PSF_OK);
	return psf_key(info.id, row);
}

static void
set_floats(psf_params *p, uint64_t key, const float *v, size_t len)
{
	assert_int_equal(psf_params_set_key(p, key, v, len), PSF_OK);
}

/* get_elem reads element e of tensor info (dense: flat index; per-symbol: the
 * symbol row's element e) from a container. */
static float
get_elem(const psf_model *m, const psf_params *p, const psf_tensor_info *info, uint64_t sym_row,
    uint64_t e, uint32_t chunk)
{
	const float *data;
	uint32_t len;
	uint64_t key =
	    info->is_per_symbol ? psf_key(info->id, sym_row) : psf_key(info->id, e / chunk);

	assert_int_equal(psf_params_get_key(p, key, &data, &len), PSF_OK);
	assert_int_equal(len, psf_model_key_len(m, key));
	return info->is_per_symbol ? data[e] : data[e % chunk];
}

/* ------------------------------------------------- reference in double */

/* An independent double-precision implementation of every model, read out of
 * a psf_params, used for finite differences and to cross-check the forward. */
typedef struct ref_net {
	size_t n_tensors, n_dense;
	psf_tensor_info info[MAX_T];
	double *vals[MAX_T]; /* dense: floats; per-symbol: n_syms x cols */
	int emb_t, sb_t;     /* tensor index or -1 */
	size_t n_syms;
	uint64_t syms[MAX_SYMS];
	uint32_t n_features, chunk;
	double l2;
	bool is_bce;
} ref_net;

static void
ref_load(ref_net *r, const psf_model *m, const psf_params *p, const uint64_t *syms, size_t n_syms,
    double l2, uint32_t chunk)
{
	memset(r, 0, sizeof(*r));
	r->n_tensors = psf_model_n_tensors(m);
	r->emb_t = r->sb_t = -1;
	r->n_syms = n_syms;
	memcpy(r->syms, syms, n_syms * sizeof(syms[0]));
	r->n_features = psf_model_n_features(m);
	r->chunk = chunk;
	r->l2 = l2;
	r->is_bce = psf_model_is_probability(m);
	for (size_t t = 0; t < r->n_tensors; t++) {
		psf_tensor_info *in = &r->info[t];
		size_t count;

		assert_int_equal(psf_model_tensor_info(m, t, in), PSF_OK);
		count = in->is_per_symbol ? n_syms * in->cols : in->floats;
		r->vals[t] = calloc(count, sizeof(double));
		assert_non_null(r->vals[t]);
		if (!in->is_per_symbol) {
			r->n_dense++;
			for (uint64_t e = 0; e < in->floats; e++)
				r->vals[t][e] = get_elem(m, p, in, 0, e, chunk);
			continue;
		}
		if (strcmp(in->name, "emb") == 0)
			r->emb_t = (int)t;
		else
			r->sb_t = (int)t;
		for (size_t s = 0; s < n_syms; s++) {
			for (uint32_t j = 0; j < in->cols; j++)
				r->vals[t][s * in->cols + j] =
				    get_elem(m, p, in, syms[s], j, chunk);
		}
	}
}

static void
ref_free(ref_net *r)
{
	for (size_t t = 0; t < r->n_tensors; t++)
		free(r->vals[t]);
}

/* ref_logit computes one row's logit; sym is an index into r->syms. */
static double
ref_logit(const ref_net *r, const float *x, size_t sym)
{
	double a[64], h[64];
	size_t dim = r->n_features;

	for (size_t k = 0; k < dim; k++)
		a[k] = x[k];
	if (r->emb_t >= 0) {
		uint32_t e = r->info[r->emb_t].cols;

		for (uint32_t j = 0; j < e; j++)
			a[dim + j] = r->vals[r->emb_t][sym * e + j];
		dim += e;
	}
	/* Dense tensors come in (weight, bias) pairs, in layer order. */
	for (size_t t = 0; t < r->n_dense; t += 2) {
		const double *W = r->vals[t], *b = r->vals[t + 1];
		uint32_t rows = r->info[t].rows;
		bool is_last = t + 2 == r->n_dense;

		assert_int_equal(r->info[t].cols, dim);
		for (uint32_t o = 0; o < rows; o++) {
			h[o] = b[o];
			for (size_t k = 0; k < dim; k++)
				h[o] += W[o * dim + k] * a[k];
		}
		for (uint32_t o = 0; o < rows; o++)
			a[o] = is_last || h[o] > 0 ? h[o] : 0.0;
		dim = rows;
	}
	return a[0] + (r->sb_t >= 0 ? r->vals[r->sb_t][sym] : 0.0);
}

static double
ref_loss(const ref_net *r, const float *X, const float *y, const size_t *sym_idx, size_t n)
{
	double total = 0.0, pen = 0.0;

	for (size_t i = 0; i < n; i++) {
		double z = ref_logit(r, X + i * r->n_features, sym_idx[i]);

		if (r->is_bce) {
			double p = 1.0 / (1.0 + exp(-z));

			total -= y[i] * log(p) + (1.0 - y[i]) * log(1.0 - p);
		} else {
			total += (z - y[i]) * (z - y[i]);
		}
	}
	for (size_t t = 0; t < r->n_dense; t += 2) {
		for (uint64_t e = 0; e < r->info[t].floats; e++)
			pen += r->vals[t][e] * r->vals[t][e];
	}
	return total / (double)n + 0.5 * r->l2 * pen;
}

/* ------------------------------------------------------ gradient check */

typedef struct grad_case {
	psf_model_kind kind;
	psf_target_kind target;
	uint32_t n_hidden;
	uint32_t hidden[2];
} grad_case;

#define GC_N 9
#define GC_FEATURES 5
#define GC_CHUNK 7 /* small, so tensors span several keys */

/* check_one compares every analytic gradient with central differences of the
 * double reference; returns the number of parameters checked. */
static size_t
check_one(const psf_model *m, const psf_params *grads, ref_net *r, const float *X, const float *y,
    const size_t *sym_idx, const char *label)
{
	const double eps = 1e-6;
	size_t checked = 0;
	double max_abs = 0.0;

	for (size_t t = 0; t < r->n_tensors; t++) {
		const psf_tensor_info *in = &r->info[t];
		size_t count = in->is_per_symbol ? r->n_syms * in->cols : in->floats;

		for (size_t e = 0; e < count; e++) {
			double keep = r->vals[t][e], lp, lm, fd, an, den;

			r->vals[t][e] = keep + eps;
			lp = ref_loss(r, X, y, sym_idx, GC_N);
			r->vals[t][e] = keep - eps;
			lm = ref_loss(r, X, y, sym_idx, GC_N);
			r->vals[t][e] = keep;
			fd = (lp - lm) / (2.0 * eps);
			an = in->is_per_symbol
			    ? get_elem(m, grads, in, r->syms[e / in->cols], e % in->cols, r->chunk)
			    : get_elem(m, grads, in, 0, e, r->chunk);
			den = fmax(fmax(fabs(an), fabs(fd)), 1e-3);
			if (fabs(an - fd) / den >= 1e-2)
				fail_msg("%s: %s[%zu]: analytic %.8g vs numeric %.8g", label,
				    in->name, e, an, fd);
			max_abs = fmax(max_abs, fabs(fd));
			checked++;
		}
	}
	if (max_abs < 1e-2)
		fail_msg("%s: every gradient is ~0; the check would be vacuous", label);
	return checked;
}

/* set_biases makes every bias non-zero, so their paths are exercised and no
 * ReLU input sits exactly on the kink at 0 (where a central difference sees
 * half a slope): a row whose inputs to a layer are all cut would otherwise
 * give that layer pre-activations of exactly 0. */
static void
set_biases(const psf_model *m, psf_params *p, const uint64_t *syms, uint64_t *s)
{
	for (size_t t = 0; t < psf_model_n_tensors(m); t++) {
		psf_tensor_info in;
		float v[GC_CHUNK];

		assert_int_equal(psf_model_tensor_info(m, t, &in), PSF_OK);
		if (strcmp(in.name, "sym_bias") == 0) {
			for (size_t k = 0; k < 3; k++) {
				v[0] = 0.1f * (float)(k + 1);
				set_floats(p, psf_key(in.id, syms[k]), v, 1);
			}
		}
		if (in.is_per_symbol || in.name[strlen(in.name) - 1] != 'b')
			continue;
		for (uint64_t c = 0; c < in.n_chunks; c++) {
			uint64_t key = psf_key(in.id, c);
			uint32_t len = psf_model_key_len(m, key);

			for (uint32_t j = 0; j < len; j++)
				v[j] = 0.15f + 0.1f * rng_uniform(s);
			set_floats(p, key, v, len);
		}
	}
}

static void
grad_check(const grad_case *gc, uint32_t emb, int sym_bias)
{
	const double l2 = 0.05;
	psf_model_cfg cfg =
	    make_cfg(gc->kind, gc->n_hidden, gc->hidden, emb, sym_bias, l2, GC_CHUNK);
	uint64_t syms[3], rows[GC_N], s = 1234 + emb * 10 + (uint64_t)sym_bias;
	const char *names[3] = {"AAPL", "MSFT", "X"};
	size_t sym_idx[GC_N], n_keys, n_uniq_expect;
	float X[GC_N * GC_FEATURES], y[GC_N];
	psf_model *m = NULL;
	psf_params *p = NULL, *g = NULL;
	psf_model_ws *ws = NULL;
	double loss = -1.0;
	char label[96];
	ref_net r;

	assert_int_equal(psf_model_new(&cfg, GC_FEATURES, gc->target, 7, &m), PSF_OK);
	for (size_t k = 0; k < 3; k++)
		syms[k] = psf_symbol_row(names[k]);
	for (size_t i = 0; i < GC_N; i++) {
		sym_idx[i] = (i * 7) % 3; /* every symbol, several rows each */
		rows[i] = syms[sym_idx[i]];
		for (size_t k = 0; k < GC_FEATURES; k++)
			X[i * GC_FEATURES + k] = rng_uniform(&s);
		y[i] = psf_model_is_probability(m) ? (float)(rng_next(&s) & 1) : rng_uniform(&s);
	}
	assert_int_equal(psf_params_new(m, &p), PSF_OK);
	assert_int_equal(psf_params_new(m, &g), PSF_OK);
	assert_int_equal(psf_model_ws_new(m, 16, &ws), PSF_OK);
	assert_int_equal(psf_params_fill_init(p, syms, 3), PSF_OK);
	set_biases(m, p, syms, &s);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, y, rows, GC_N, g, &loss), PSF_OK);
	n_uniq_expect = psf_model_n_dense_keys(m) + 3 * psf_model_n_symbol_tensors(m);
	assert_int_equal(psf_params_n_keys(g), n_uniq_expect);
	ref_load(&r, m, p, syms, 3, l2, GC_CHUNK);
	{
		double ref = ref_loss(&r, X, y, sym_idx, GC_N);

		if (fabs(loss - ref) > 1e-5 * fmax(1.0, fabs(ref)))
			fail_msg("loss %.9g vs reference %.9g", loss, ref);
	}
	snprintf(label, sizeof(label), "kind=%d target=%d n_hidden=%u emb=%u sym_bias=%d",
	    (int)gc->kind, (int)gc->target, gc->n_hidden, emb, sym_bias);
	n_keys = check_one(m, g, &r, X, y, sym_idx, label);
	assert_true(n_keys > GC_FEATURES);
	ref_free(&r);
	psf_model_ws_free(ws);
	psf_params_free(g);
	psf_params_free(p);
	psf_model_free(m);
}

static void
grad_check_all_variants(const grad_case *gc)
{
	grad_check(gc, 0, 0);
	grad_check(gc, 3, 0);
	grad_check(gc, 0, 1);
	grad_check(gc, 3, 1);
}

static void
test_model_grad_check_linear(void **state)
{
	grad_case gc = {PSF_MODEL_LINEAR, PSF_TARGET_NEXT_RETURN, 0, {0}};

	(void)state;
	grad_check_all_variants(&gc);
}

static void
test_model_grad_check_logistic(void **state)
{
	grad_case gc = {PSF_MODEL_LOGISTIC, PSF_TARGET_NEXT_DIRECTION, 0, {0}};

	(void)state;
	grad_check_all_variants(&gc);
}

static void
test_model_grad_check_mlp_one_hidden(void **state)
{
	grad_case mse = {PSF_MODEL_MLP, PSF_TARGET_NEXT_CLOSE, 1, {6}};
	grad_case bce = {PSF_MODEL_MLP, PSF_TARGET_NEXT_DIRECTION, 1, {6}};

	(void)state;
	grad_check_all_variants(&mse);
	grad_check_all_variants(&bce);
}

static void
test_model_grad_check_mlp_two_hidden(void **state)
{
	grad_case mse = {PSF_MODEL_MLP, PSF_TARGET_NEXT_RETURN, 2, {6, 4}};
	grad_case bce = {PSF_MODEL_MLP, PSF_TARGET_NEXT_DIRECTION, 2, {6, 4}};
	grad_case narrow = {PSF_MODEL_MLP, PSF_TARGET_NEXT_RETURN, 2, {3, 1}}; /* gemv layers */

	(void)state;
	grad_check_all_variants(&mse);
	grad_check_all_variants(&bce);
	grad_check_all_variants(&narrow);
}

/* ------------------------------------------------------- construction */

static void
test_model_new_rejects_bad_config(void **state)
{
	uint32_t h[2] = {8, 0};
	psf_model_cfg ok = make_cfg(PSF_MODEL_MLP, 1, h, 0, 0, 0.0, 64), cfg;
	psf_model *m = (psf_model *)&ok; /* must stay untouched on error */

	(void)state;
	cfg = ok;
	cfg.n_hidden = 0;
	assert_int_equal(psf_model_new(&cfg, 4, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	cfg = ok;
	cfg.n_hidden = 9;
	assert_int_equal(psf_model_new(&cfg, 4, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	cfg = ok;
	cfg.n_hidden = 2; /* hidden[1] == 0 */
	assert_int_equal(psf_model_new(&cfg, 4, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	cfg = ok;
	cfg.chunk_floats = 0;
	assert_int_equal(psf_model_new(&cfg, 4, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	cfg = ok;
	cfg.l2 = -1.0;
	assert_int_equal(psf_model_new(&cfg, 4, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	cfg = ok;
	cfg.init_scale = NAN;
	assert_int_equal(psf_model_new(&cfg, 4, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	cfg = ok;
	cfg.kind = (psf_model_kind)7;
	assert_int_equal(psf_model_new(&cfg, 4, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	cfg = ok;
	cfg.hidden[0] = PSF_MODEL_MAX_WIDTH + 1;
	assert_int_equal(psf_model_new(&cfg, 4, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	cfg = ok;
	cfg.hidden[0] = PSF_MODEL_MAX_WIDTH; /* 2^20 x 2^20 weights: too many floats */
	assert_int_equal(psf_model_new(&cfg, PSF_MODEL_MAX_WIDTH, PSF_TARGET_NEXT_CLOSE, 1, &m),
	    PSF_EINVAL);
	assert_int_equal(psf_model_new(&ok, 0, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	assert_int_equal(psf_model_new(&ok, 4, (psf_target_kind)9, 1, &m), PSF_EINVAL);
	assert_int_equal(psf_model_new(NULL, 4, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	cfg = make_cfg(PSF_MODEL_LOGISTIC, 0, NULL, 0, 0, 0.0, 64);
	assert_int_equal(psf_model_new(&cfg, 4, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_EINVAL);
	assert_ptr_equal(m, (psf_model *)&ok);
	assert_int_equal(psf_model_new(&cfg, 4, PSF_TARGET_NEXT_DIRECTION, 1, &m), PSF_OK);
	assert_true(psf_model_is_probability(m));
	psf_model_free(m);
	psf_model_free(NULL);
}

static void
test_model_tensor_layout_names_and_ids(void **state)
{
	uint32_t h[2] = {8, 4};
	psf_model_cfg cfg = make_cfg(PSF_MODEL_MLP, 2, h, 3, 1, 0.0, 64);
	const char *want[] = {"l0.w", "l0.b", "l1.w", "l1.b", "out.w", "out.b", "emb", "sym_bias"};
	uint32_t rows[] = {8, 1, 4, 1, 1, 1, 1, 1}, cols[] = {13, 8, 8, 4, 4, 1, 3, 1};
	psf_tensor_info info;
	psf_model *m;

	(void)state;
	assert_int_equal(psf_model_new(&cfg, 10, PSF_TARGET_NEXT_RETURN, 1, &m), PSF_OK);
	assert_false(psf_model_is_probability(m));
	assert_int_equal(psf_model_n_tensors(m), 8);
	assert_int_equal(psf_model_n_symbol_tensors(m), 2);
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(psf_model_tensor_info(m, i, &info), PSF_OK);
		assert_int_equal(info.id, i + 1);
		assert_string_equal(info.name, want[i]);
		assert_int_equal(info.rows, rows[i]);
		assert_int_equal(info.cols, cols[i]);
		assert_int_equal(info.is_per_symbol, i >= 6);
		assert_int_equal(info.n_chunks, i >= 6 ? 0 : (rows[i] * cols[i] + 63) / 64);
	}
	assert_int_equal(psf_model_tensor_info(m, 8, &info), PSF_ERANGE);
	assert_int_equal(psf_model_tensor_find(m, "nope", &info), PSF_ENOENT);
	psf_model_free(m);
}

static void
test_model_dense_chunking_splits_at_chunk_floats(void **state)
{
	psf_model_cfg cfg = make_cfg(PSF_MODEL_LINEAR, 0, NULL, 0, 0, 0.0, 65536);
	uint64_t keys[4];
	uint32_t lens[4];
	size_t n = 0;
	psf_model *m;

	(void)state;
	/* out.w is a dense tensor of 150,000 floats, out.b one of 1. */
	assert_int_equal(psf_model_new(&cfg, 150000, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_OK);
	assert_int_equal(psf_model_n_dense_keys(m), 4);
	assert_int_equal(psf_model_dense_keys(m, keys, lens, 3, &n), PSF_ERANGE);
	assert_int_equal(psf_model_dense_keys(m, keys, lens, 4, &n), PSF_OK);
	assert_int_equal(n, 4);
	assert_int_equal(keys[0], (UINT64_C(1) << 48) | 0);
	assert_int_equal(keys[1], (UINT64_C(1) << 48) | 1);
	assert_int_equal(keys[2], (UINT64_C(1) << 48) | 2);
	assert_int_equal(keys[3], (UINT64_C(2) << 48) | 0);
	assert_int_equal(lens[0], 65536);
	assert_int_equal(lens[1], 65536);
	assert_int_equal(lens[2], 18928);
	assert_int_equal(lens[3], 1);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(psf_model_key_len(m, keys[i]), lens[i]);
	psf_model_free(m);
}

static void
test_model_key_len_rejects_invalid_keys(void **state)
{
	psf_model_cfg cfg = make_cfg(PSF_MODEL_LINEAR, 0, NULL, 4, 1, 0.0, 3);
	psf_model *m;

	(void)state;
	/* out.w [1 x 9] in chunks of 3, out.b [1], emb [4], sym_bias [1]. */
	assert_int_equal(psf_model_new(&cfg, 5, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_OK);
	assert_int_equal(psf_model_key_len(m, 0), 0);
	assert_int_equal(psf_model_key_len(m, psf_key(0, 1)), 0);
	assert_int_equal(psf_model_key_len(m, psf_key(1, 2)), 3);
	assert_int_equal(psf_model_key_len(m, psf_key(1, 3)), 0);
	assert_int_equal(psf_model_key_len(m, psf_key(2, 0)), 1);
	assert_int_equal(psf_model_key_len(m, psf_key(2, 1)), 0);
	assert_int_equal(psf_model_key_len(m, psf_key(3, 12345)), 4);
	assert_int_equal(psf_model_key_len(m, psf_key(4, PSF_KEY_ROW_MASK)), 1);
	assert_int_equal(psf_model_key_len(m, psf_key(5, 0)), 0);
	assert_int_equal(psf_model_key_len(m, UINT64_MAX), 0);
	psf_model_free(m);
}

static void
test_model_symbol_keys_sorted_unique(void **state)
{
	psf_model_cfg cfg = make_cfg(PSF_MODEL_LINEAR, 0, NULL, 4, 1, 0.0, 64);
	uint64_t rows[4] = {5, 3, 5, 9}, keys[8], bad[1] = {UINT64_C(1) << 48};
	uint32_t lens[8];
	size_t n = 99;
	psf_model *m, *plain;

	(void)state;
	assert_int_equal(psf_model_new(&cfg, 2, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_OK);
	assert_int_equal(psf_model_symbol_keys(m, rows, 4, keys, lens, 7, &n), PSF_ERANGE);
	assert_int_equal(psf_model_symbol_keys(m, bad, 1, keys, lens, 8, &n), PSF_EINVAL);
	assert_int_equal(psf_model_symbol_keys(m, rows, 4, keys, lens, 8, &n), PSF_OK);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < 6; i++) {
		uint64_t want_row = (uint64_t[]){3, 5, 9}[i % 3];

		assert_int_equal(psf_key_tensor(keys[i]), i < 3 ? 3 : 4);
		assert_int_equal(psf_key_row(keys[i]), want_row);
		assert_int_equal(lens[i], i < 3 ? 4 : 1);
	}
	cfg = make_cfg(PSF_MODEL_LINEAR, 0, NULL, 0, 0, 0.0, 64);
	assert_int_equal(psf_model_new(&cfg, 2, PSF_TARGET_NEXT_CLOSE, 1, &plain), PSF_OK);
	assert_int_equal(psf_model_symbol_keys(plain, NULL, 4, NULL, NULL, 0, &n), PSF_OK);
	assert_int_equal(n, 0);
	psf_model_free(plain);
	psf_model_free(m);
}

static void
test_model_symbol_row_is_masked_xxh3(void **state)
{
	(void)state;
	assert_int_equal(psf_symbol_row("AAPL"),
	    XXH3_64bits("AAPL", 4) & ((UINT64_C(1) << 48) - 1));
	assert_true(psf_symbol_row("AAPL") != psf_symbol_row("MSFT"));
	assert_true(psf_symbol_row("") <= PSF_KEY_ROW_MASK);
}

/* ------------------------------------------------------------- init */

static void
test_model_init_is_deterministic_per_seed_and_key(void **state)
{
	uint32_t h[1] = {16};
	psf_model_cfg cfg = make_cfg(PSF_MODEL_MLP, 1, h, 4, 1, 0.0, 7);
	psf_model_cfg big = cfg;
	psf_model *a, *b, *c, *d;
	float va[16], vb[16], vc[16], vd[16];
	uint64_t w = psf_key(1, 2), emb = psf_key(5, 777);
	double bound = sqrt(6.0 / 10);
	bool differs = false, nonzero = false;

	(void)state;
	big.chunk_floats = 65536;
	assert_int_equal(psf_model_new(&cfg, 6, PSF_TARGET_NEXT_RETURN, 42, &a), PSF_OK);
	assert_int_equal(psf_model_new(&cfg, 6, PSF_TARGET_NEXT_RETURN, 42, &b), PSF_OK);
	assert_int_equal(psf_model_new(&cfg, 6, PSF_TARGET_NEXT_RETURN, 43, &c), PSF_OK);
	assert_int_equal(psf_model_new(&big, 6, PSF_TARGET_NEXT_RETURN, 42, &d), PSF_OK);
	assert_int_equal(psf_model_init_value(a, w, va), PSF_OK);
	assert_int_equal(psf_model_init_value(b, w, vb), PSF_OK);
	assert_int_equal(psf_model_init_value(c, w, vc), PSF_OK);
	assert_memory_equal(va, vb, 7 * sizeof(float));
	for (size_t j = 0; j < 7; j++) {
		differs |= va[j] != vc[j];
		nonzero |= va[j] != 0.0f;
		assert_true(fabs(va[j]) <= bound);
	}
	assert_true(differs);
	assert_true(nonzero);
	/* Chunking does not change values: element 14..20 is chunk 2 of a. */
	{
		float all[160];

		assert_int_equal(psf_model_init_value(d, psf_key(1, 0), all), PSF_OK);
		assert_memory_equal(all + 14, va, 7 * sizeof(float));
	}
	assert_int_equal(psf_model_init_value(a, emb, va), PSF_OK);
	assert_int_equal(psf_model_init_value(b, emb, vb), PSF_OK);
	assert_memory_equal(va, vb, 4 * sizeof(float));
	for (size_t j = 0; j < 4; j++)
		assert_true(va[j] != 0.0f && fabs(va[j]) <= 0.05);
	assert_int_equal(psf_model_init_value(a, psf_key(5, 778), vd), PSF_OK);
	assert_memory_not_equal(va, vd, 4 * sizeof(float));
	/* Biases and symbol biases start at 0. */
	assert_int_equal(psf_model_init_value(a, psf_key(2, 1), va), PSF_OK);
	for (size_t j = 0; j < 7; j++)
		assert_true(va[j] == 0.0f);
	vb[0] = 1.0f;
	assert_int_equal(psf_model_init_value(a, psf_key(6, 3), vb), PSF_OK);
	assert_true(vb[0] == 0.0f);
	assert_int_equal(psf_model_init_value(a, psf_key(7, 0), va), PSF_EINVAL);
	psf_model_free(d);
	psf_model_free(c);
	psf_model_free(b);
	psf_model_free(a);
}

/* ----------------------------------------------------------- params */

static void
test_params_set_get_unaligned_and_iterate_sorted(void **state)
{
	psf_model_cfg cfg = make_cfg(PSF_MODEL_LINEAR, 0, NULL, 2, 1, 0.0, 4);
	unsigned char wire[1 + 4 * sizeof(float)];
	float v[4] = {1.5f, -2.0f, 3.25f, 0.0f};
	uint64_t keys[2100];
	uint32_t lens[2100];
	const float *data;
	uint32_t len = 0;
	size_t n;
	psf_model *m;
	psf_params *p;

	(void)state;
	/* out.w [1 x 7]: chunks of 4 and 3; out.b; emb [2]; sym_bias [1]. */
	assert_int_equal(psf_model_new(&cfg, 5, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_OK);
	assert_int_equal(psf_params_new(m, &p), PSF_OK);
	assert_int_equal(psf_params_n_keys(p), 0);
	memcpy(wire + 1, v, sizeof(v)); /* misaligned on purpose */
	assert_int_equal(psf_params_set_key(p, psf_key(1, 0), wire + 1, 4), PSF_OK);
	assert_int_equal(psf_params_get_key(p, psf_key(1, 0), &data, &len), PSF_OK);
	assert_int_equal(len, 4);
	assert_memory_equal(data, v, sizeof(v));
	assert_int_equal(psf_params_get_key(p, psf_key(1, 1), &data, &len), PSF_ENOENT);
	assert_int_equal(psf_params_set_key(p, psf_key(1, 1), wire + 1, 4), PSF_EINVAL);
	assert_int_equal(psf_params_set_key(p, psf_key(1, 2), wire + 1, 3), PSF_EINVAL);
	assert_int_equal(psf_params_set_key(p, psf_key(9, 0), wire + 1, 1), PSF_EINVAL);
	assert_int_equal(psf_params_get_key(p, psf_key(9, 0), &data, &len), PSF_EINVAL);
	/* Many symbols: the index grows and every row stays reachable. */
	for (uint64_t s = 0; s < 1000; s++) {
		float e[2] = {(float)s, -(float)s};

		assert_int_equal(psf_params_set_key(p, psf_key(3, s * 977), e, 2), PSF_OK);
		if (s % 2 == 0)
			assert_int_equal(psf_params_set_key(p, psf_key(4, s * 977), e, 1), PSF_OK);
	}
	assert_int_equal(psf_params_n_symbols(p), 1000);
	assert_int_equal(psf_params_n_keys(p), 1 + 1000 + 500);
	assert_int_equal(psf_params_get_key(p, psf_key(4, 977), &data, &len), PSF_ENOENT);
	assert_int_equal(psf_params_get_key(p, psf_key(3, 977 * 999), &data, &len), PSF_OK);
	assert_true(data[0] == 999.0f && data[1] == -999.0f && len == 2);
	assert_int_equal(psf_params_keys(p, keys, lens, 1500, &n), PSF_ERANGE);
	assert_int_equal(psf_params_keys(p, keys, lens, PSF_ARRAY_LEN(keys), &n), PSF_OK);
	assert_int_equal(n, 1501);
	for (size_t i = 1; i < n; i++)
		assert_true(keys[i - 1] < keys[i]);
	assert_int_equal(keys[0], psf_key(1, 0));
	assert_int_equal(lens[0], 4);
	assert_int_equal(lens[1], 2);
	assert_int_equal(lens[n - 1], 1);
	psf_params_clear(p);
	assert_int_equal(psf_params_n_keys(p), 0);
	assert_int_equal(psf_params_get_key(p, psf_key(3, 0), &data, &len), PSF_ENOENT);
	psf_params_free(p);
	psf_params_free(NULL);
	psf_model_free(m);
}

/* ---------------------------------------------------------- forward */

static void
test_model_forward_linear_and_logistic_known_weights(void **state)
{
	psf_model_cfg lin = make_cfg(PSF_MODEL_LINEAR, 0, NULL, 0, 1, 0.0, 64);
	psf_model_cfg lg = make_cfg(PSF_MODEL_LOGISTIC, 0, NULL, 0, 0, 0.0, 64);
	uint64_t A = psf_symbol_row("A"), B = psf_symbol_row("B");
	uint64_t rows[2] = {A, B};
	float w[2] = {1, 2}, b = 0.5f, sa = 0.25f, sb = -1.0f, out[2];
	float X[4] = {1, 1, 0.5f, -1}, wl[2] = {1, -1}, bl = 0, Xl[4] = {2, 2, 1, 0};
	psf_model *m, *ml;
	psf_params *p, *pl;
	psf_model_ws *ws, *wsl;

	(void)state;
	assert_int_equal(psf_model_new(&lin, 2, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_OK);
	assert_int_equal(psf_params_new(m, &p), PSF_OK);
	assert_int_equal(psf_model_ws_new(m, 4, &ws), PSF_OK);
	set_floats(p, tensor_key(m, "out.w", 0), w, 2);
	/* Dense complete is required before any symbol lookup. */
	assert_int_equal(psf_model_forward(m, ws, p, X, rows, 2, out), PSF_ENOENT);
	set_floats(p, tensor_key(m, "out.b", 0), &b, 1);
	set_floats(p, tensor_key(m, "sym_bias", A), &sa, 1);
	out[1] = 42.0f;
	assert_int_equal(psf_model_forward(m, ws, p, X, rows, 2, out), PSF_ENOENT);
	assert_true(out[1] == 42.0f);
	set_floats(p, tensor_key(m, "sym_bias", B), &sb, 1);
	assert_int_equal(psf_model_forward(m, ws, p, X, rows, 2, out), PSF_OK);
	assert_float_equal(out[0], (1 + 2 + 0.5 + 0.25), 1e-6);
	assert_float_equal(out[1], (0.5 - 2 + 0.5 - 1), 1e-6);
	assert_int_equal(psf_model_forward(m, ws, p, X, NULL, 2, out), PSF_EINVAL);
	assert_int_equal(psf_model_forward(m, ws, p, X, rows, 5, out), PSF_EINVAL);
	assert_int_equal(psf_model_forward(m, ws, p, X, rows, 0, out), PSF_EINVAL);

	assert_int_equal(psf_model_new(&lg, 2, PSF_TARGET_NEXT_DIRECTION, 1, &ml), PSF_OK);
	assert_int_equal(psf_params_new(ml, &pl), PSF_OK);
	assert_int_equal(psf_model_ws_new(ml, 2, &wsl), PSF_OK);
	set_floats(pl, tensor_key(ml, "out.w", 0), wl, 2);
	set_floats(pl, tensor_key(ml, "out.b", 0), &bl, 1);
	assert_int_equal(psf_model_forward(ml, wsl, pl, Xl, NULL, 2, out), PSF_OK);
	assert_float_equal(out[0], 0.5, 1e-6);
	assert_float_equal(out[1], (1.0 / (1.0 + exp(-1.0))), 1e-6);
	/* Mixing objects of different models is refused. */
	assert_int_equal(psf_model_forward(ml, ws, pl, Xl, NULL, 2, out), PSF_EINVAL);
	assert_int_equal(psf_model_forward(ml, wsl, p, Xl, NULL, 2, out), PSF_EINVAL);
	psf_model_ws_free(wsl);
	psf_params_free(pl);
	psf_model_free(ml);
	psf_model_ws_free(ws);
	psf_params_free(p);
	psf_model_free(m);
}

static void
test_model_forward_mlp_known_weights(void **state)
{
	uint32_t h[1] = {2};
	psf_model_cfg cfg = make_cfg(PSF_MODEL_MLP, 1, h, 1, 0, 0.0, 4);
	uint64_t S = psf_symbol_row("S"), rows[2] = {S, S};
	/* W0 [2 x 3] over (x0, x1, emb): spans two chunks of 4. */
	float W0[6] = {1, 0, 1, 0, -1, 0}, b0[2] = {0, 0.5f}, w1[2] = {2, 3}, b1 = 1, e = 0.5f;
	float X[4] = {1, 2, -3, -1}, out[2];
	psf_model *m;
	psf_params *p;
	psf_model_ws *ws;

	(void)state;
	assert_int_equal(psf_model_new(&cfg, 2, PSF_TARGET_NEXT_CLOSE, 1, &m), PSF_OK);
	assert_int_equal(psf_params_new(m, &p), PSF_OK);
	assert_int_equal(psf_model_ws_new(m, 2, &ws), PSF_OK);
	set_floats(p, tensor_key(m, "l0.w", 0), W0, 4);
	set_floats(p, tensor_key(m, "l0.w", 1), W0 + 4, 2);
	set_floats(p, tensor_key(m, "l0.b", 0), b0, 2);
	set_floats(p, tensor_key(m, "out.w", 0), w1, 2);
	set_floats(p, tensor_key(m, "out.b", 0), &b1, 1);
	set_floats(p, tensor_key(m, "emb", S), &e, 1);
	assert_int_equal(psf_model_forward(m, ws, p, X, rows, 2, out), PSF_OK);
	/* row 0: h = relu(1 + 0.5, -2 + 0.5) = (1.5, 0); z = 3 + 0 + 1 */
	assert_float_equal(out[0], 4.0, 1e-6);
	/* row 1: h = relu(-3 + 0.5, 1 + 0.5) = (0, 1.5); z = 0 + 4.5 + 1 */
	assert_float_equal(out[1], 5.5, 1e-6);
	psf_model_ws_free(ws);
	psf_params_free(p);
	psf_model_free(m);
}

/* --------------------------------------------------------- training */

static void
test_model_loss_grad_rejects_bad_input(void **state)
{
	psf_model_cfg cfg = make_cfg(PSF_MODEL_LOGISTIC, 0, NULL, 2, 0, 0.0, 64);
	uint64_t rows[2] = {1, 2}, unknown[2] = {1, 3}, huge[2] = {1, UINT64_MAX};
	float X[4] = {0}, y[2] = {0, 1}, ybad[2] = {0, 2}, ynan[2] = {0, NAN}, zero_emb[2] = {0};
	double loss = -7.0;
	psf_model *m, *other;
	psf_params *p, *g, *go;
	psf_model_ws *ws;

	(void)state;
	assert_int_equal(psf_model_new(&cfg, 2, PSF_TARGET_NEXT_DIRECTION, 1, &m), PSF_OK);
	assert_int_equal(psf_model_new(&cfg, 2, PSF_TARGET_NEXT_DIRECTION, 1, &other), PSF_OK);
	assert_int_equal(psf_params_new(m, &p), PSF_OK);
	assert_int_equal(psf_params_new(m, &g), PSF_OK);
	assert_int_equal(psf_params_new(other, &go), PSF_OK);
	assert_int_equal(psf_model_ws_new(m, 2, &ws), PSF_OK);
	assert_int_equal(psf_model_ws_new(m, 0, &ws), PSF_EINVAL);
	assert_int_equal(psf_params_fill_init(p, rows, 2), PSF_OK);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, ybad, rows, 2, g, &loss), PSF_EINVAL);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, ynan, rows, 2, g, &loss), PSF_EINVAL);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, NULL, rows, 2, g, &loss), PSF_EINVAL);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, y, rows, 2, p, &loss), PSF_EINVAL);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, y, rows, 2, go, &loss), PSF_EINVAL);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, y, rows, 3, g, &loss), PSF_EINVAL);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, y, NULL, 2, g, &loss), PSF_EINVAL);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, y, huge, 2, g, &loss), PSF_EINVAL);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, y, unknown, 2, g, &loss), PSF_ENOENT);
	assert_true(loss == -7.0);
	set_floats(p, psf_key(3, 1), zero_emb, 2);
	set_floats(p, psf_key(3, 2), zero_emb, 2);
	assert_int_equal(psf_model_loss_grad(m, ws, p, X, y, rows, 2, g, &loss), PSF_OK);
	assert_float_equal(loss, log(2.0), 1e-6); /* X = 0, emb = 0, bias 0: p = 0.5 */
	assert_int_equal(psf_params_fill_init(p, huge, 2), PSF_EINVAL);
	psf_model_ws_free(ws);
	psf_params_free(go);
	psf_params_free(g);
	psf_params_free(p);
	psf_model_free(other);
	psf_model_free(m);
}

/* sgd_step applies params -= lr * grads for every key in grads. */
static void
sgd_step(const psf_model *m, psf_params *p, const psf_params *g, float lr)
{
	uint64_t keys[16];
	size_t n;

	assert_int_equal(psf_params_keys(g, keys, NULL, PSF_ARRAY_LEN(keys), &n), PSF_OK);
	for (size_t i = 0; i < n; i++) {
		const float *gv, *pv;
		uint32_t len;
		float next[16];

		assert_int_equal(psf_params_get_key(g, keys[i], &gv, &len), PSF_OK);
		assert_int_equal(psf_params_get_key(p, keys[i], &pv, NULL), PSF_OK);
		assert_true(len <= PSF_ARRAY_LEN(next));
		for (uint32_t j = 0; j < len; j++)
			next[j] = pv[j] - lr * gv[j];
		set_floats(p, keys[i], next, len);
	}
	(void)m;
}

static void
test_model_linear_sgd_converges_to_known_weights(void **state)
{
	enum { N = 512, D = 3, B = 32 };
	psf_model_cfg cfg = make_cfg(PSF_MODEL_LINEAR, 0, NULL, 0, 0, 0.0, 2);
	const float w_true[D] = {1.5f, -2.0f, 0.5f}, b_true = 0.3f;
	static float X[N * D], y[N];
	uint64_t s = 99;
	double loss = 0.0, first = -1.0;
	float w[D], b;
	psf_model *m;
	psf_params *p, *g;
	psf_model_ws *ws;

	(void)state;
	for (size_t i = 0; i < N; i++) {
		y[i] = b_true;
		for (size_t k = 0; k < D; k++) {
			X[i * D + k] = rng_uniform(&s);
			y[i] += w_true[k] * X[i * D + k];
		}
	}
	assert_int_equal(psf_model_new(&cfg, D, PSF_TARGET_NEXT_CLOSE, 5, &m), PSF_OK);
	assert_int_equal(psf_params_new(m, &p), PSF_OK);
	assert_int_equal(psf_params_new(m, &g), PSF_OK);
	assert_int_equal(psf_model_ws_new(m, B, &ws), PSF_OK);
	assert_int_equal(psf_params_fill_init(p, NULL, 0), PSF_OK);
	for (size_t step = 0; step < 3000; step++) {
		size_t off = (step * B) % N;

		assert_int_equal(
		    psf_model_loss_grad(m, ws, p, X + off * D, y + off, NULL, B, g, &loss), PSF_OK);
		if (first < 0)
			first = loss;
		sgd_step(m, p, g, 0.2f);
	}
	assert_true(first > 0.1);
	assert_true(loss < 1e-8);
	for (size_t k = 0; k < D; k++)
		w[k] = get_elem(m, p, &(psf_tensor_info){.id = 1, .floats = D}, 0, k, 2);
	b = get_elem(m, p, &(psf_tensor_info){.id = 2, .floats = 1}, 0, 0, 2);
	for (size_t k = 0; k < D; k++)
		assert_float_equal(w[k], w_true[k], 1e-3);
	assert_float_equal(b, b_true, 1e-3);
	psf_model_ws_free(ws);
	psf_params_free(g);
	psf_params_free(p);
	psf_model_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_model_new_rejects_bad_config),
	    cmocka_unit_test(test_model_tensor_layout_names_and_ids),
	    cmocka_unit_test(test_model_dense_chunking_splits_at_chunk_floats),
	    cmocka_unit_test(test_model_key_len_rejects_invalid_keys),
	    cmocka_unit_test(test_model_symbol_keys_sorted_unique),
	    cmocka_unit_test(test_model_symbol_row_is_masked_xxh3),
	    cmocka_unit_test(test_model_init_is_deterministic_per_seed_and_key),
	    cmocka_unit_test(test_params_set_get_unaligned_and_iterate_sorted),
	    cmocka_unit_test(test_model_forward_linear_and_logistic_known_weights),
	    cmocka_unit_test(test_model_forward_mlp_known_weights),
	    cmocka_unit_test(test_model_loss_grad_rejects_bad_input),
	    cmocka_unit_test(test_model_grad_check_linear),
	    cmocka_unit_test(test_model_grad_check_logistic),
	    cmocka_unit_test(test_model_grad_check_mlp_one_hidden),
	    cmocka_unit_test(test_model_grad_check_mlp_two_hidden),
	    cmocka_unit_test(test_model_linear_sgd_converges_to_known_weights),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
