/* model_params.c -- psf_params, the value (and gradient) container (model.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/model/model.h"
#include "lib/model/model_internal.h"

/* Wire values are little-endian float32 copied byte for byte. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
    "psf_params assumes a little-endian host");
_Static_assert(sizeof(float) == 4, "float must be IEEE float32");

#define SLOTS_MIN 16
#define INDEX_MIN 32

psf_err
psf_params_new(const psf_model *m, psf_params **out)
{
	psf_params *p;

	if (m == NULL || out == NULL)
		return PSF_EINVAL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return PSF_ENOMEM;
	p->m = m;
	p->dense = calloc((size_t)m->dense_floats, sizeof(float));
	p->dense_has = calloc((size_t)m->n_dense_keys, 1);
	if (p->dense == NULL || p->dense_has == NULL) {
		psf_params_free(p);
		return PSF_ENOMEM;
	}
	*out = p;
	return PSF_OK;
}

void
psf_params_free(psf_params *p)
{
	if (p == NULL)
		return;
	free(p->dense);
	free(p->dense_has);
	free(p->sym);
	free(p->sym_has);
	free(p->sym_val);
	free(p->index);
	free(p);
}

void
psf_params_clear(psf_params *p)
{
	if (p == NULL)
		return;
	memset(p->dense_has, 0, (size_t)p->m->n_dense_keys);
	p->n_dense_present = 0;
	p->n_sym = 0;
	if (p->index != NULL)
		memset(p->index, 0, p->index_cap * sizeof(p->index[0]));
}

void
params_mark_dense(psf_params *p)
{
	memset(p->dense_has, 1, (size_t)p->m->n_dense_keys);
	p->n_dense_present = p->m->n_dense_keys;
}

bool
params_dense_complete(const psf_params *p)
{
	return p->n_dense_present == p->m->n_dense_keys;
}

/* Symbol rows are hashes already, but callers may use small integers: mix. */
static size_t
index_pos(uint64_t row, size_t cap)
{
	row ^= row >> 33;
	row *= UINT64_C(0xff51afd7ed558ccd);
	row ^= row >> 33;
	return (size_t)row & (cap - 1);
}

long
params_find(const psf_params *p, uint64_t row)
{
	if (p->index_cap == 0)
		return -1;
	for (size_t i = index_pos(row, p->index_cap);; i = (i + 1) & (p->index_cap - 1)) {
		uint32_t v = p->index[i];

		if (v == 0)
			return -1;
		if (p->sym[v - 1] == row)
			return (long)(v - 1);
	}
}

static void
index_insert(uint32_t *index, size_t cap, uint64_t row, size_t slot)
{
	size_t i = index_pos(row, cap);

	while (index[i] != 0)
		i = (i + 1) & (cap - 1);
	index[i] = (uint32_t)(slot + 1);
}

/* grow makes room for one more slot, keeping the index at most half full. */
static psf_err
grow(psf_params *p)
{
	size_t stride = p->m->sym_stride;

	if (p->n_sym + 1 >= UINT32_MAX / 2)
		return PSF_ENOMEM;
	if (p->n_sym == p->cap_sym) {
		size_t cap = p->cap_sym == 0 ? SLOTS_MIN : 2 * p->cap_sym;
		void *a, *b, *c;

		if ((a = realloc(p->sym, cap * sizeof(p->sym[0]))) != NULL)
			p->sym = a;
		if ((b = realloc(p->sym_has, cap)) != NULL)
			p->sym_has = b;
		if ((c = realloc(p->sym_val, cap * stride * sizeof(float))) != NULL)
			p->sym_val = c;
		if (a == NULL || b == NULL || c == NULL)
			return PSF_ENOMEM;
		p->cap_sym = cap;
	}
	if (2 * (p->n_sym + 1) > p->index_cap) {
		size_t cap = p->index_cap == 0 ? INDEX_MIN : 2 * p->index_cap;
		uint32_t *index = calloc(cap, sizeof(index[0]));

		if (index == NULL)
			return PSF_ENOMEM;
		for (size_t s = 0; s < p->n_sym; s++)
			index_insert(index, cap, p->sym[s], s);
		free(p->index);
		p->index = index;
		p->index_cap = cap;
	}
	return PSF_OK;
}

psf_err
params_slot(psf_params *p, uint64_t row, size_t *slot_out)
{
	long found = params_find(p, row);
	size_t slot, stride = p->m->sym_stride;
	psf_err err;

	if (found >= 0) {
		*slot_out = (size_t)found;
		return PSF_OK;
	}
	if ((err = grow(p)) != PSF_OK)
		return err;
	slot = p->n_sym++;
	p->sym[slot] = row;
	p->sym_has[slot] = 0;
	memset(p->sym_val + slot * stride, 0, stride * sizeof(float));
	index_insert(p->index, p->index_cap, row, slot);
	*slot_out = slot;
	return PSF_OK;
}

static unsigned
sym_bit(const psf_model *m, uint64_t key)
{
	return psf_key_tensor(key) == m->emb_id ? SYM_HAS_EMB : SYM_HAS_BIAS;
}

psf_err
psf_params_set_key(psf_params *p, uint64_t key, const void *bytes, size_t len)
{
	const model_tensor *t;
	uint64_t row = psf_key_row(key);
	size_t slot;
	psf_err err;

	if (p == NULL || bytes == NULL || len == 0 || len != psf_model_key_len(p->m, key))
		return PSF_EINVAL;
	t = model_tensor_of(p->m, key);
	if (!t->is_per_symbol) {
		uint64_t chunk = t->chunk_base + row;

		memcpy(p->dense + t->off + row * p->m->cfg.chunk_floats, bytes,
		    len * sizeof(float));
		if (!p->dense_has[chunk]) {
			p->dense_has[chunk] = 1;
			p->n_dense_present++;
		}
		return PSF_OK;
	}
	if ((err = params_slot(p, row, &slot)) != PSF_OK)
		return err;
	memcpy(p->sym_val + slot * p->m->sym_stride + t->off, bytes, len * sizeof(float));
	p->sym_has[slot] |= (uint8_t)sym_bit(p->m, key);
	return PSF_OK;
}

psf_err
psf_params_get_key(const psf_params *p, uint64_t key, const float **data_out, uint32_t *len_out)
{
	const model_tensor *t;
	uint64_t row = psf_key_row(key);
	uint32_t len;
	long slot;

	if (p == NULL || data_out == NULL || (len = psf_model_key_len(p->m, key)) == 0)
		return PSF_EINVAL;
	t = model_tensor_of(p->m, key);
	if (!t->is_per_symbol) {
		if (!p->dense_has[t->chunk_base + row])
			return PSF_ENOENT;
		*data_out = p->dense + t->off + row * p->m->cfg.chunk_floats;
	} else {
		slot = params_find(p, row);
		if (slot < 0 || !(p->sym_has[slot] & sym_bit(p->m, key)))
			return PSF_ENOENT;
		*data_out = p->sym_val + (size_t)slot * p->m->sym_stride + t->off;
	}
	if (len_out != NULL)
		*len_out = len;
	return PSF_OK;
}

size_t
psf_params_n_keys(const psf_params *p)
{
	size_t n = (size_t)p->n_dense_present;

	for (size_t s = 0; s < p->n_sym; s++)
		n += (size_t)__builtin_popcount(p->sym_has[s]);
	return n;
}

size_t
psf_params_n_symbols(const psf_params *p)
{
	return p->n_sym;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

psf_err
psf_params_keys(const psf_params *p, uint64_t *keys, uint32_t *lens, size_t cap, size_t *n_out)
{
	const psf_model *m;
	size_t n = 0, n_dense;

	if (p == NULL || keys == NULL || n_out == NULL)
		return PSF_EINVAL;
	if (cap < psf_params_n_keys(p))
		return PSF_ERANGE;
	m = p->m;
	for (size_t i = 0; i < m->n_tensors && !m->t[i].is_per_symbol; i++) {
		for (uint64_t c = 0; c < m->t[i].n_chunks; c++) {
			if (p->dense_has[m->t[i].chunk_base + c])
				keys[n++] = psf_key((uint16_t)(i + 1), c);
		}
	}
	n_dense = n;
	for (size_t s = 0; s < p->n_sym; s++) {
		if (p->sym_has[s] & SYM_HAS_EMB)
			keys[n++] = psf_key(m->emb_id, p->sym[s]);
		if (p->sym_has[s] & SYM_HAS_BIAS)
			keys[n++] = psf_key(m->sb_id, p->sym[s]);
	}
	/* Per-symbol ids are above the dense ones: only that part needs sorting. */
	qsort(keys + n_dense, n - n_dense, sizeof(keys[0]), cmp_u64);
	for (size_t i = 0; lens != NULL && i < n; i++)
		lens[i] = psf_model_key_len(m, keys[i]);
	*n_out = n;
	return PSF_OK;
}

/* for_each_value calls fn on every present run of values of p. */
static void
for_each_value(psf_params *p, void (*fn)(float *v, size_t n, void *arg), void *arg)
{
	const psf_model *m = p->m;

	for (size_t i = 0; i < m->n_tensors && !m->t[i].is_per_symbol; i++) {
		const model_tensor *t = &m->t[i];

		for (uint64_t c = 0; c < t->n_chunks; c++) {
			uint64_t first = c * m->cfg.chunk_floats;

			if (p->dense_has[t->chunk_base + c])
				fn(p->dense + t->off + first,
				    psf_model_key_len(m, psf_key((uint16_t)(i + 1), c)), arg);
		}
	}
	for (size_t s = 0; s < p->n_sym; s++) {
		for (size_t i = 0; i < m->n_tensors; i++) {
			const model_tensor *t = &m->t[i];
			unsigned bit = (uint16_t)(i + 1) == m->emb_id ? SYM_HAS_EMB : SYM_HAS_BIAS;

			if (t->is_per_symbol && (p->sym_has[s] & bit))
				fn(p->sym_val + s * m->sym_stride + t->off, t->cols, arg);
		}
	}
}

static void
add_squares(float *v, size_t n, void *arg)
{
	double *sum = arg;

	for (size_t j = 0; j < n; j++)
		*sum += (double)v[j] * v[j];
}

static void
scale_values(float *v, size_t n, void *arg)
{
	float s = *(const float *)arg;

	for (size_t j = 0; j < n; j++)
		v[j] *= s;
}

void
psf_params_clip_norm(psf_params *p, double max_norm, double *norm_out)
{
	double sq = 0.0, norm;

	for_each_value(p, add_squares, &sq);
	norm = sqrt(sq);
	if (norm_out != NULL)
		*norm_out = norm;
	if (max_norm > 0 && isfinite(norm) && norm > max_norm) {
		float s = (float)(max_norm / norm);
		for_each_value(p, scale_values, &s);
	}
}

psf_err
psf_params_fill_init(psf_params *p, const uint64_t *sym_rows, size_t n)
{
	const psf_model *m;
	psf_err err;

	if (p == NULL || (sym_rows == NULL && n > 0))
		return PSF_EINVAL;
	m = p->m;
	for (size_t i = 0; i < n; i++) {
		if (sym_rows[i] > PSF_KEY_ROW_MASK)
			return PSF_EINVAL;
	}
	for (size_t i = 0; i < m->n_tensors && !m->t[i].is_per_symbol; i++) {
		const model_tensor *t = &m->t[i];

		for (uint64_t c = 0; c < t->n_chunks; c++) {
			float *dst = p->dense + t->off + c * m->cfg.chunk_floats;

			if ((err = psf_model_init_value(m, psf_key((uint16_t)(i + 1), c), dst)) !=
			    PSF_OK)
				return err;
		}
	}
	params_mark_dense(p);
	for (size_t i = 0; i < n && m->sym_stride > 0; i++) {
		size_t slot;
		float *row;

		if ((err = params_slot(p, sym_rows[i], &slot)) != PSF_OK)
			return err;
		row = p->sym_val + slot * m->sym_stride;
		if (m->emb_id != 0 &&
		    (err = psf_model_init_value(m, psf_key(m->emb_id, sym_rows[i]),
		         row + m->t[m->emb_id - 1].off)) != PSF_OK)
			return err;
		if (m->sb_id != 0 &&
		    (err = psf_model_init_value(m, psf_key(m->sb_id, sym_rows[i]),
		         row + m->t[m->sb_id - 1].off)) != PSF_OK)
			return err;
		p->sym_has[slot] =
		    (uint8_t)((m->emb_id ? SYM_HAS_EMB : 0) | (m->sb_id ? SYM_HAS_BIAS : 0));
	}
	return PSF_OK;
}
