/* model.c -- architecture, key layout and initial values (model.h).
 * The containers are in model_params.c, the math in model_math.c. */
#include "lib/model/model.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/model/model_internal.h"

#define TAG "model"

/* Embeddings start small so the dense weights dominate early training. */
#define EMB_INIT_BOUND 0.05

static psf_err
check_sizes(const psf_model_cfg *cfg, uint32_t n_features)
{
	if (n_features == 0 || n_features > PSF_MODEL_MAX_WIDTH) {
		psf_log_err(TAG, "n_features=%u must be in 1..%u", n_features, PSF_MODEL_MAX_WIDTH);
		return PSF_EINVAL;
	}
	if (cfg->embedding_dim > PSF_MODEL_MAX_WIDTH) {
		psf_log_err(TAG, "embedding_dim=%u is above %u", cfg->embedding_dim,
		    PSF_MODEL_MAX_WIDTH);
		return PSF_EINVAL;
	}
	if (cfg->chunk_floats == 0) {
		psf_log_err(TAG, "chunk_floats must be >= 1");
		return PSF_EINVAL;
	}
	if (!psf_model_kind_has_hidden(cfg->kind))
		return PSF_OK;
	size_t max_layers =
	    cfg->kind == PSF_MODEL_MLP ? PSF_ARRAY_LEN(cfg->hidden) : PSF_MODEL_MAX_RNN_LAYERS;
	if (cfg->n_hidden < 1 || cfg->n_hidden > max_layers) {
		psf_log_err(TAG, "%s needs 1..%zu hidden layers, got %u",
		    psf_model_kind_name(cfg->kind), max_layers, cfg->n_hidden);
		return PSF_EINVAL;
	}
	if (psf_model_kind_is_recurrent(cfg->kind) &&
	    (cfg->window < 1 || cfg->window > PSF_MODEL_MAX_WINDOW)) {
		psf_log_err(TAG, "window=%u must be in 1..%u", cfg->window, PSF_MODEL_MAX_WINDOW);
		return PSF_EINVAL;
	}
	for (uint32_t i = 0; i < cfg->n_hidden; i++) {
		if (cfg->hidden[i] == 0 || cfg->hidden[i] > PSF_MODEL_MAX_WIDTH) {
			psf_log_err(TAG, "hidden[%u]=%u must be in 1..%u", i, cfg->hidden[i],
			    PSF_MODEL_MAX_WIDTH);
			return PSF_EINVAL;
		}
	}
	return PSF_OK;
}

static psf_err
check_cfg(const psf_model_cfg *cfg, uint32_t n_features, psf_target_kind target)
{
	if ((unsigned)cfg->kind > PSF_MODEL_LSTM) {
		psf_log_err(TAG, "unknown model kind %d", (int)cfg->kind);
		return PSF_EINVAL;
	}
	if ((unsigned)target > PSF_TARGET_NEXT_DIRECTION) {
		psf_log_err(TAG, "unknown target %d", (int)target);
		return PSF_EINVAL;
	}
	if (cfg->kind == PSF_MODEL_LOGISTIC && target != PSF_TARGET_NEXT_DIRECTION) {
		psf_log_err(TAG, "logistic model needs target next_direction (0/1)");
		return PSF_EINVAL;
	}
	if (!isfinite(cfg->l2) || cfg->l2 < 0 || !isfinite(cfg->init_scale) ||
	    cfg->init_scale < 0) {
		psf_log_err(TAG, "l2=%g and init_scale=%g must be finite and >= 0", cfg->l2,
		    cfg->init_scale);
		return PSF_EINVAL;
	}
	return check_sizes(cfg, n_features);
}

uint16_t
add_tensor(psf_model *m, const char *name, uint32_t rows, uint32_t cols, bool is_per_symbol,
    double bound)
{
	model_tensor *t = &m->t[m->n_tensors++];
	uint64_t chunk = m->cfg.chunk_floats;

	snprintf(t->name, sizeof(t->name), "%s", name);
	t->rows = rows;
	t->cols = cols;
	t->is_per_symbol = is_per_symbol;
	t->floats = (uint64_t)rows * cols;
	t->init_bound = bound;
	if (is_per_symbol) {
		t->off = m->sym_stride;
		m->sym_stride += cols;
	} else {
		t->n_chunks = (t->floats + chunk - 1) / chunk;
		t->chunk_base = m->n_dense_keys;
		t->off = m->dense_floats;
		m->n_dense_keys += t->n_chunks;
		m->dense_floats += t->floats;
	}
	return (uint16_t)m->n_tensors;
}

static void
add_layer(psf_model *m, const char *prefix, uint32_t in, uint32_t out, bool has_relu)
{
	model_layer *l = &m->layers[m->n_layers++];
	char name[16];
	/* He-style bound before a ReLU, LeCun-style at the output (var = s^2 * k / fan_in). */
	double bound = m->cfg.init_scale * sqrt((has_relu ? 6.0 : 3.0) / in);

	l->in = in;
	l->out = out;
	l->has_relu = has_relu;
	snprintf(name, sizeof(name), "%s.w", prefix);
	l->w_id = add_tensor(m, name, out, in, false, bound);
	snprintf(name, sizeof(name), "%s.b", prefix);
	l->b_id = add_tensor(m, name, 1, out, false, 0.0);
	if (in > m->max_width)
		m->max_width = in;
	if (out > m->max_width)
		m->max_width = out;
}

static void
build(psf_model *m)
{
	uint32_t in = m->d_in;
	uint32_t n_hidden = m->cfg.kind == PSF_MODEL_MLP ? m->cfg.n_hidden : 0;
	char prefix[12];

	if (psf_model_kind_is_recurrent(m->cfg.kind))
		in = rnn_build(m, in);
	for (uint32_t i = 0; i < n_hidden; i++) {
		snprintf(prefix, sizeof(prefix), "l%u", i);
		add_layer(m, prefix, in, m->cfg.hidden[i], true);
		in = m->cfg.hidden[i];
	}
	add_layer(m, "out", in, 1, false);
	if (m->emb_dim > 0)
		m->emb_id =
		    add_tensor(m, "emb", 1, m->emb_dim, true, EMB_INIT_BOUND * m->cfg.init_scale);
	if (m->has_sym_bias)
		m->sb_id = add_tensor(m, "sym_bias", 1, 1, true, 0.0);
}

/* layout fills a zeroed model's architecture. Cannot fail. */
static void
layout(psf_model *m, const psf_model_cfg *cfg, uint32_t n_features, psf_target_kind target,
    uint64_t seed)
{
	m->cfg = *cfg;
	m->target = target;
	m->seed = seed;
	m->is_bce = cfg->kind == PSF_MODEL_LOGISTIC ||
	    (psf_model_kind_has_hidden(cfg->kind) && target == PSF_TARGET_NEXT_DIRECTION);
	m->window = psf_model_kind_is_recurrent(cfg->kind) ? cfg->window : 1;
	m->n_features = n_features;
	m->emb_dim = cfg->embedding_dim;
	m->d_in = n_features + cfg->embedding_dim;
	m->has_sym_bias = cfg->symbol_bias != 0;
	build(m);
}

psf_err
psf_model_new(const psf_model_cfg *cfg, uint32_t n_features, psf_target_kind target, uint64_t seed,
    psf_model **out)
{
	psf_model *m;
	psf_err err;

	if (cfg == NULL || out == NULL)
		return PSF_EINVAL;
	if ((err = check_cfg(cfg, n_features, target)) != PSF_OK)
		return err;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return PSF_ENOMEM;
	layout(m, cfg, n_features, target, seed);
	/* One count for the config check and the limit below (psf_model_cfg_dense_floats). */
	assert(m->dense_floats == psf_model_cfg_dense_floats(cfg, n_features));
	if (m->dense_floats > PSF_MODEL_MAX_DENSE_FLOATS) {
		psf_log_err(TAG, "model has %llu dense floats, above the limit %llu",
		    (unsigned long long)m->dense_floats,
		    (unsigned long long)PSF_MODEL_MAX_DENSE_FLOATS);
		free(m);
		return PSF_EINVAL;
	}
	*out = m;
	return PSF_OK;
}

void
psf_model_free(psf_model *m)
{
	free(m);
}

uint32_t
psf_model_n_features(const psf_model *m)
{
	return m->n_features;
}

uint32_t
psf_model_window(const psf_model *m)
{
	return m->window;
}

bool
psf_model_is_probability(const psf_model *m)
{
	return m->is_bce;
}

size_t
psf_model_n_tensors(const psf_model *m)
{
	return m->n_tensors;
}

psf_err
psf_model_tensor_info(const psf_model *m, size_t i, psf_tensor_info *out)
{
	const model_tensor *t;

	if (m == NULL || out == NULL)
		return PSF_EINVAL;
	if (i >= m->n_tensors)
		return PSF_ERANGE;
	t = &m->t[i];
	out->id = (uint16_t)(i + 1);
	out->name = t->name;
	out->rows = t->rows;
	out->cols = t->cols;
	out->is_per_symbol = t->is_per_symbol;
	out->floats = t->floats;
	out->n_chunks = t->n_chunks;
	return PSF_OK;
}

psf_err
psf_model_tensor_find(const psf_model *m, const char *name, psf_tensor_info *out)
{
	if (m == NULL || name == NULL || out == NULL)
		return PSF_EINVAL;
	for (size_t i = 0; i < m->n_tensors; i++) {
		if (strcmp(m->t[i].name, name) == 0)
			return psf_model_tensor_info(m, i, out);
	}
	return PSF_ENOENT;
}

const model_tensor *
model_tensor_of(const psf_model *m, uint64_t key)
{
	uint16_t id = psf_key_tensor(key);

	if (id == 0 || id > m->n_tensors)
		return NULL;
	return &m->t[id - 1];
}

uint32_t
psf_model_key_len(const psf_model *m, uint64_t key)
{
	const model_tensor *t = model_tensor_of(m, key);
	uint64_t row = psf_key_row(key);
	uint64_t chunk = m->cfg.chunk_floats;

	if (t == NULL)
		return 0;
	if (t->is_per_symbol)
		return t->cols;
	if (row >= t->n_chunks)
		return 0;
	if (row == t->n_chunks - 1)
		return (uint32_t)(t->floats - row * chunk);
	return (uint32_t)chunk;
}

size_t
psf_model_n_dense_keys(const psf_model *m)
{
	return (size_t)m->n_dense_keys;
}

psf_err
psf_model_dense_keys(const psf_model *m, uint64_t *keys, uint32_t *lens, size_t cap, size_t *n_out)
{
	size_t n = 0;

	if (m == NULL || keys == NULL || n_out == NULL)
		return PSF_EINVAL;
	if (cap < m->n_dense_keys)
		return PSF_ERANGE;
	/* Ids grow with the tensor index and dense tensors come first: ascending. */
	for (size_t i = 0; i < m->n_tensors && !m->t[i].is_per_symbol; i++) {
		for (uint64_t c = 0; c < m->t[i].n_chunks; c++) {
			keys[n] = psf_key((uint16_t)(i + 1), c);
			if (lens != NULL)
				lens[n] = psf_model_key_len(m, keys[n]);
			n++;
		}
	}
	*n_out = n;
	return PSF_OK;
}

size_t
psf_model_n_symbol_tensors(const psf_model *m)
{
	return (m->emb_id != 0) + (m->sb_id != 0);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

psf_err
psf_model_symbol_keys(const psf_model *m, const uint64_t *sym_rows, size_t n, uint64_t *keys,
    uint32_t *lens, size_t cap, size_t *n_out)
{
	uint16_t ids[2] = {m == NULL ? 0 : m->emb_id, m == NULL ? 0 : m->sb_id};
	size_t n_keys = 0, n_uniq = 0;

	if (m == NULL || n_out == NULL)
		return PSF_EINVAL;
	if (psf_model_n_symbol_tensors(m) == 0 || n == 0) {
		*n_out = 0;
		return PSF_OK;
	}
	if (sym_rows == NULL || keys == NULL)
		return PSF_EINVAL;
	if (cap / psf_model_n_symbol_tensors(m) < n)
		return PSF_ERANGE;
	for (size_t i = 0; i < n; i++) {
		if (sym_rows[i] > PSF_KEY_ROW_MASK)
			return PSF_EINVAL;
	}
	for (size_t t = 0; t < PSF_ARRAY_LEN(ids); t++) {
		for (size_t i = 0; ids[t] != 0 && i < n; i++)
			keys[n_keys++] = psf_key(ids[t], sym_rows[i]);
	}
	qsort(keys, n_keys, sizeof(keys[0]), cmp_u64);
	for (size_t i = 0; i < n_keys; i++) {
		if (n_uniq > 0 && keys[n_uniq - 1] == keys[i])
			continue;
		keys[n_uniq] = keys[i];
		if (lens != NULL)
			lens[n_uniq] = psf_model_key_len(m, keys[i]);
		n_uniq++;
	}
	*n_out = n_uniq;
	return PSF_OK;
}

static uint64_t
splitmix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* uniform returns U(-bound, bound) for element idx of a value stream. */
static float
uniform(uint64_t stream, uint64_t idx, double bound)
{
	uint64_t h = splitmix64(stream ^ splitmix64(idx));
	double u = (double)(h >> 11) * 0x1p-53;

	return (float)((2.0 * u - 1.0) * bound);
}

psf_err
psf_model_init_value(const psf_model *m, uint64_t key, float *out)
{
	const model_tensor *t;
	uint32_t len;
	uint64_t stream, first = 0;

	if (m == NULL || out == NULL || (len = psf_model_key_len(m, key)) == 0)
		return PSF_EINVAL;
	t = model_tensor_of(m, key);
	if (t->init_bound == 0.0) {
		memset(out, 0, len * sizeof(float));
		return PSF_OK;
	}
	/* A dense value depends on its element index, not on the chunking. */
	stream = splitmix64(m->seed ^ splitmix64(psf_key_tensor(key)));
	if (t->is_per_symbol)
		stream = splitmix64(stream ^ psf_key_row(key));
	else
		first = psf_key_row(key) * m->cfg.chunk_floats;
	for (uint32_t j = 0; j < len; j++)
		out[j] = uniform(stream, first + j, t->init_bound);
	return PSF_OK;
}
