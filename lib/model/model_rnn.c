/* model_rnn.c -- the recurrent layers of the gru and lstm models (model.h).
 *
 * Layout. Everything is time-major: a [W x n x k] buffer holds day t of batch
 * row i at (t * n + i) * k. A layer with G gates of H units keeps
 *   gate  [W x n x GH]   the activated gates (gru: r z n, lstm: i f g o)
 *   h     [(W+1) x n x H] the states, h[0] = 0, so h[1..W] is the next
 *                        layer's whole input as one contiguous matrix
 *   c     lstm: [(W+1) x n x H] cell states; gru: [W x n x H] the recurrent
 *         candidate projection hn = h_prev Wh_n^T (needed by backward)
 * GRU (the "reset after" form, so one sgemm projects h_prev for all gates):
 *   r = s(x Wx_r + b_r + h Wh_r), z = s(x Wx_z + b_z + h Wh_z),
 *   n = tanh(x Wx_n + b_n + r * (h Wh_n)), h' = (1 - z) n + z h.
 * LSTM: i, f, o = s(.), g = tanh(.) of x Wx + b + h Wh; c' = f c + i g,
 * h' = o tanh(c').
 *
 * Forward: one sgemm for every day's input projection at once ([W*n x in] by
 * Wx^T), then per day one sgemm for the recurrent projection and an
 * element-wise pass. Backward (through the whole window: the window is the
 * truncation) mirrors it: per day an element-wise pass and one sgemm carrying
 * the state gradient back; then dWx, dWh and the input gradient are each one
 * sgemm over all W days, db one sgemv. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/model/model_internal.h"

#define ACT_BLOCK 16

struct rnn_ws {
	size_t max_batch;
	float *in;                             /* W x n x d_in: layer 0's input */
	float *gate[PSF_MODEL_MAX_RNN_LAYERS]; /* W x n x GH */
	float *h[PSF_MODEL_MAX_RNN_LAYERS];    /* (W+1) x n x H */
	float *c[PSF_MODEL_MAX_RNN_LAYERS];    /* see above */
	float *tc[PSF_MODEL_MAX_RNN_LAYERS];   /* lstm: W x n x H, tanh(c) */
	float *rec;                            /* n x GH: gru's recurrent projection */
	float *dg;                             /* W x n x GH: gradient of the pre-activations */
	float *dgh;                            /* W x n x GH: gru: of the recurrent projection */
	float *dx; /* W x n x max(d_in, H0): gradient of a layer's input */
	float *dh[2], *dc;
	float *ones; /* W x n */
};

uint32_t
rnn_build(psf_model *m, uint32_t in)
{
	uint32_t gates = m->cfg.kind == PSF_MODEL_GRU ? 3 : 4;
	char name[16];

	for (uint32_t l = 0; l < m->cfg.n_hidden; l++) {
		model_rnn *r = &m->rnn[m->n_rnn++];
		uint32_t h = m->cfg.hidden[l];
		/* PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every recurrent weight. */
		double bound = m->cfg.init_scale / sqrt((double)h);

		r->in = in;
		r->hid = h;
		r->gates = gates;
		snprintf(name, sizeof(name), "r%u.wx", l);
		r->wx_id = add_tensor(m, name, gates * h, in, false, bound);
		snprintf(name, sizeof(name), "r%u.wh", l);
		r->wh_id = add_tensor(m, name, gates * h, h, false, bound);
		snprintf(name, sizeof(name), "r%u.b", l);
		r->b_id = add_tensor(m, name, 1, gates * h, false, 0.0);
		if (in > m->max_width)
			m->max_width = in;
		if (gates * h > m->max_width)
			m->max_width = gates * h;
		in = h;
	}
	return in;
}

static float *
dense(const psf_params *p, uint16_t id)
{
	return p->dense + p->m->t[id - 1].off;
}

void
rnn_ws_free(rnn_ws *rw)
{
	if (rw == NULL)
		return;
	free(rw->in);
	for (size_t l = 0; l < PSF_MODEL_MAX_RNN_LAYERS; l++) {
		free(rw->gate[l]);
		free(rw->h[l]);
		free(rw->c[l]);
		free(rw->tc[l]);
	}
	free(rw->rec);
	free(rw->dg);
	free(rw->dgh);
	free(rw->dx);
	free(rw->dh[0]);
	free(rw->dh[1]);
	free(rw->dc);
	free(rw->ones);
	free(rw);
}

static float *
alloc_floats(size_t a, size_t b, size_t c, bool *ok)
{
	float *p = NULL;

	if (*ok && (p = malloc(a * b * c * sizeof(float))) == NULL)
		*ok = false;
	return p;
}

psf_err
rnn_ws_new(const psf_model *m, size_t max_batch, rnn_ws **out)
{
	size_t W = m->window, n = max_batch, gh = 0, hm = 0, xin = m->d_in;
	rnn_ws *rw = calloc(1, sizeof(*rw));
	bool ok = true;

	if (rw == NULL)
		return PSF_ENOMEM;
	for (size_t l = 0; l < m->n_rnn; l++) {
		const model_rnn *r = &m->rnn[l];
		gh = r->gates * r->hid > gh ? r->gates * r->hid : gh;
		hm = r->hid > hm ? r->hid : hm;
		xin = r->in > xin ? r->in : xin;
	}
	rw->max_batch = max_batch;
	rw->in = alloc_floats(W, n, m->d_in, &ok);
	for (size_t l = 0; ok && l < m->n_rnn; l++) {
		const model_rnn *r = &m->rnn[l];
		size_t cs = m->cfg.kind == PSF_MODEL_LSTM ? W + 1 : W;

		rw->gate[l] = alloc_floats(W, n, (size_t)r->gates * r->hid, &ok);
		rw->h[l] = alloc_floats(W + 1, n, r->hid, &ok);
		rw->c[l] = alloc_floats(cs, n, r->hid, &ok);
		if (m->cfg.kind == PSF_MODEL_LSTM)
			rw->tc[l] = alloc_floats(W, n, r->hid, &ok);
		if (ok) { /* the state before the first day is 0 */
			memset(rw->h[l], 0, n * r->hid * sizeof(float));
			if (m->cfg.kind == PSF_MODEL_LSTM)
				memset(rw->c[l], 0, n * r->hid * sizeof(float));
		}
	}
	rw->rec = alloc_floats(1, n, gh, &ok);
	rw->dg = alloc_floats(W, n, gh, &ok);
	if (m->cfg.kind == PSF_MODEL_GRU)
		rw->dgh = alloc_floats(W, n, gh, &ok);
	rw->dx = alloc_floats(W, n, xin, &ok);
	rw->dh[0] = alloc_floats(1, n, hm, &ok);
	rw->dh[1] = alloc_floats(1, n, hm, &ok);
	rw->dc = alloc_floats(1, n, hm, &ok);
	rw->ones = alloc_floats(W, n, 1, &ok);
	if (!ok) {
		rnn_ws_free(rw);
		return PSF_ENOMEM;
	}
	for (size_t i = 0; i < W * n; i++)
		rw->ones[i] = 1.0f;
	*out = rw;
	return PSF_OK;
}

/* Activations. expf and tanhf are calls the vectoriser cannot inline, and the
 * gate math would cost as much as the matrix products; fexp is Cephes' expf
 * (Cody-Waite reduction, degree-5 polynomial, relative error ~1e-7) in plain
 * float arithmetic, so the loops below become SIMD (this file is built with
 * -fvect-cost-model=dynamic -fno-trapping-math, lib/model/CMakeLists.txt: the
 * clamps are then selects, not branches). */
/* SIMD_CLONES compiles the gate loops for AVX-512, AVX2 and the SSE2 baseline;
 * the loader picks the best the CPU has (GCC/clang function multiversioning).
 * -ffp-contract=off (CMakeLists.txt) keeps every clone's results bit-identical,
 * so trainers and inferers on different CPUs agree. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones) && !defined(__SANITIZE_ADDRESS__)
#define SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef SIMD_CLONES
#define SIMD_CLONES
#endif

static inline __attribute__((always_inline)) float
fexp(float x)
{
	float t, r, p, scale;
	int32_t k, bits;

	/* Clamp to [-87, 87] by arithmetic: with AVX a ?: here is jump-threaded
	 * into branches the vectoriser refuses. (+-Inf becomes NaN, which the
	 * loss check reports like any divergence.) */
	x += (float)(x < -87.0f) * (-87.0f - x);
	x += (float)(x > 87.0f) * (87.0f - x);
	t = x * 1.44269504088896341f + 12582912.0f; /* + 1.5 * 2^23 rounds to an integer */
	k = (int32_t)(t - 12582912.0f);
	r = x - (float)k * 0.693359375f + (float)k * 2.12194440e-4f;
	p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	bits = (k + 127) << 23; /* 2^k */
	memcpy(&scale, &bits, sizeof(scale));
	return p * scale;
}

static inline __attribute__((always_inline)) float
fsig(float z)
{
	return 1.0f / (1.0f + fexp(-z));
}

static inline __attribute__((always_inline)) float
ftanh(float z)
{
	return 2.0f / (1.0f + fexp(-2.0f * z)) - 1.0f;
}

/* gru_step finishes day t of a gru layer: a holds x Wx^T (no bias) for the n
 * rows and becomes the activated gates; rec holds h_prev Wh^T. */
SIMD_CLONES static void
gru_step(size_t n, size_t H, const float *restrict b, float *restrict a, const float *restrict rec,
    const float *restrict hp, float *restrict hn_out, float *restrict h)
{
	for (size_t i = 0; i < n; i++) {
		float *restrict ar = a + i * 3 * H, *restrict an = ar + 2 * H;
		const float *restrict rr = rec + i * 3 * H, *restrict rn = rr + 2 * H;
		const float *restrict hpi = hp + i * H;
		float *restrict hi = h + i * H;

		for (size_t j = 0; j < 2 * H; j++) /* r and z side by side */
			ar[j] = fsig(ar[j] + b[j] + rr[j]);
		for (size_t j = 0; j < H; j++)
			an[j] = ftanh(an[j] + b[2 * H + j] + ar[j] * rn[j]);
		for (size_t j = 0; j < H; j++) /* (1 - z) n + z h_prev */
			hi[j] = an[j] + ar[H + j] * (hpi[j] - an[j]);
		memcpy(hn_out + i * H, rn, H * sizeof(float));
	}
}

/* lstm_step finishes day t of an lstm layer: a holds x Wx^T + h_prev Wh^T and
 * becomes the activated gates; tc gets tanh(c). */
SIMD_CLONES static void
lstm_step(size_t n, size_t H, const float *restrict b, float *restrict a, const float *restrict cp,
    float *restrict c, float *restrict tc, float *restrict h)
{
	for (size_t i = 0; i < n; i++) {
		float *restrict ai = a + i * 4 * H, *restrict ag = ai + 2 * H,
		                *restrict ao = ag + H;
		const float *restrict cpi = cp + i * H;
		float *restrict ci = c + i * H, *restrict tci = tc + i * H,
		                *restrict hi = h + i * H;

		for (size_t j = 0; j < 2 * H; j++) /* i and f side by side */
			ai[j] = fsig(ai[j] + b[j]);
		for (size_t j = 0; j < H; j++) {
			ag[j] = ftanh(ag[j] + b[2 * H + j]);
			ao[j] = fsig(ao[j] + b[3 * H + j]);
		}
		for (size_t j = 0; j < H; j++) {
			ci[j] = ai[H + j] * cpi[j] + ai[j] * ag[j];
			tci[j] = ftanh(ci[j]);
			hi[j] = ao[j] * tci[j];
		}
	}
}

/* layer_forward runs layer l over A [W*n x in]. */
static void
layer_forward(const psf_model *m, rnn_ws *rw, const psf_params *p, size_t l, const float *A,
    size_t n)
{
	const model_rnn *r = &m->rnn[l];
	size_t W = m->window, H = r->hid, gh = (size_t)r->gates * H;
	const float *Wx = dense(p, r->wx_id), *Wh = dense(p, r->wh_id), *b = dense(p, r->b_id);
	bool is_gru = m->cfg.kind == PSF_MODEL_GRU;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(W * n), (int)gh, (int)r->in,
	    1.0f, A, (int)r->in, Wx, (int)r->in, 0.0f, rw->gate[l], (int)gh);
	for (size_t t = 0; t < W; t++) {
		float *a = rw->gate[l] + t * n * gh;
		const float *hp = rw->h[l] + t * n * H;
		float *h = rw->h[l] + (t + 1) * n * H;

		if (is_gru) {
			if (t == 0)
				memset(rw->rec, 0, n * gh * sizeof(float));
			else
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n,
				    (int)gh, (int)H, 1.0f, hp, (int)H, Wh, (int)H, 0.0f, rw->rec,
				    (int)gh);
			gru_step(n, H, b, a, rw->rec, hp, rw->c[l] + t * n * H, h);
		} else {
			if (t > 0)
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n,
				    (int)gh, (int)H, 1.0f, hp, (int)H, Wh, (int)H, 1.0f, a,
				    (int)gh);
			lstm_step(n, H, b, a, rw->c[l] + t * n * H, rw->c[l] + (t + 1) * n * H,
			    rw->tc[l] + t * n * H, h);
		}
	}
}

/* build_input writes layer 0's time-major input: day t of row i is X's
 * [i, t, :] followed by the row's embedding. */
static void
build_input(const psf_model *m, rnn_ws *rw, const psf_params *p, const float *X, const long *slot,
    size_t n)
{
	size_t W = m->window, nf = m->n_features, e = m->emb_dim, d = m->d_in;
	size_t emb_off = m->emb_id ? m->t[m->emb_id - 1].off : 0;

	for (size_t t = 0; t < W; t++) {
		for (size_t i = 0; i < n; i++) {
			float *dst = rw->in + (t * n + i) * d;

			memcpy(dst, X + (i * W + t) * nf, nf * sizeof(float));
			if (e > 0)
				memcpy(dst + nf,
				    p->sym_val + (size_t)slot[i] * m->sym_stride + emb_off,
				    e * sizeof(float));
		}
	}
}

const float *
rnn_forward(const psf_model *m, rnn_ws *rw, const psf_params *p, const float *X, const long *slot,
    size_t n)
{
	const float *A = rw->in;

	build_input(m, rw, p, X, slot, n);
	for (size_t l = 0; l < m->n_rnn; l++) {
		layer_forward(m, rw, p, l, A, n);
		A = rw->h[l] + n * m->rnn[l].hid;
	}
	return rw->h[m->n_rnn - 1] + m->window * n * m->rnn[m->n_rnn - 1].hid;
}

/* gru_back writes day t's pre-activation gradients dg and recurrent-projection
 * gradients dgh from the state gradient dh, and the direct part of the
 * previous state's gradient (dh * z) into dhp. */
SIMD_CLONES static void
gru_back(size_t n, size_t H, const float *restrict gate, const float *restrict hn,
    const float *restrict hp, const float *restrict dh, float *restrict dg, float *restrict dgh,
    float *restrict dhp)
{
	for (size_t i = 0; i < n; i++) {
		const float *restrict gr = gate + i * 3 * H, *restrict gz = gr + H,
		                      *restrict gn = gz + H;
		const float *restrict hni = hn + i * H, *restrict hpi = hp + i * H,
		                      *restrict dhi = dh + i * H;
		float *restrict dr = dg + i * 3 * H, *restrict dz = dr + H, *restrict dn = dz + H;
		float *restrict hr = dgh + i * 3 * H, *restrict hz = hr + H, *restrict hnn = hz + H;
		float *restrict dpi = dhp + i * H;

		for (size_t j = 0; j < H; j++) {
			float r = gr[j], z = gz[j], nn = gn[j], d = dhi[j];
			float dan = d * (1.0f - z) * (1.0f - nn * nn);
			float dar = dan * hni[j] * r * (1.0f - r);
			float daz = d * (hpi[j] - nn) * z * (1.0f - z);

			dr[j] = hr[j] = dar;
			dz[j] = hz[j] = daz;
			dn[j] = dan;
			hnn[j] = dan * r;
			dpi[j] = d * z;
		}
	}
}

/* lstm_back writes day t's pre-activation gradients from dh and the running
 * cell gradient dc (which becomes the previous day's). */
SIMD_CLONES static void
lstm_back(size_t n, size_t H, const float *restrict gate, const float *restrict cp,
    const float *restrict tc, const float *restrict dh, float *restrict dc, float *restrict dg)
{
	for (size_t i = 0; i < n; i++) {
		const float *restrict gi = gate + i * 4 * H, *restrict gf = gi + H,
		                      *restrict gg = gf + H, *restrict go = gg + H;
		const float *restrict cpi = cp + i * H, *restrict tci = tc + i * H,
		                      *restrict dhi = dh + i * H;
		float *restrict dci = dc + i * H;
		float *restrict di = dg + i * 4 * H, *restrict df = di + H, *restrict dgg = df + H,
		                *restrict dout = dgg + H;

		for (size_t j = 0; j < H; j++) {
			float th = tci[j], o = go[j], ig = gi[j], fg = gf[j], g = gg[j];
			float dcc = dci[j] + dhi[j] * o * (1.0f - th * th);

			dout[j] = dhi[j] * th * o * (1.0f - o);
			di[j] = dcc * g * ig * (1.0f - ig);
			df[j] = dcc * cpi[j] * fg * (1.0f - fg);
			dgg[j] = dcc * ig * (1.0f - g * g);
			dci[j] = dcc * fg;
		}
	}
}

/* layer_backward back-propagates layer l. Its state gradients come from dtop
 * (the last day only, top layer) or from rw->dx (every day: the layer above's
 * input gradient). When want_dx, rw->dx gets this layer's input gradient. */
static void
layer_backward(const psf_model *m, rnn_ws *rw, const psf_params *p, size_t l, const float *A,
    const float *dtop, size_t n, psf_params *grads, bool want_dx)
{
	const model_rnn *r = &m->rnn[l];
	size_t W = m->window, H = r->hid, gh = (size_t)r->gates * H;
	const float *Wx = dense(p, r->wx_id), *Wh = dense(p, r->wh_id);
	bool is_gru = m->cfg.kind == PSF_MODEL_GRU;
	float *dh = rw->dh[0], *dprev = rw->dh[1], *dgh = is_gru ? rw->dgh : rw->dg;

	memset(dh, 0, n * H * sizeof(float));
	memset(rw->dc, 0, n * H * sizeof(float));
	for (size_t t = W; t-- > 0;) {
		const float *ext = dtop != NULL ? (t == W - 1 ? dtop : NULL) : rw->dx + t * n * H;
		float *dg_t = rw->dg + t * n * gh, *dgh_t = dgh + t * n * gh, *tmp;

		if (ext != NULL)
			cblas_saxpy((int)(n * H), 1.0f, ext, 1, dh, 1);
		if (is_gru)
			gru_back(n, H, rw->gate[l] + t * n * gh, rw->c[l] + t * n * H,
			    rw->h[l] + t * n * H, dh, dg_t, dgh_t, dprev);
		else
			lstm_back(n, H, rw->gate[l] + t * n * gh, rw->c[l] + t * n * H,
			    rw->tc[l] + t * n * H, dh, rw->dc, dg_t);
		if (t == 0)
			break;
		/* dh_prev = (gru: dh * z) + dgh_t Wh */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)H, (int)gh,
		    1.0f, dgh_t, (int)gh, Wh, (int)H, is_gru ? 1.0f : 0.0f, dprev, (int)H);
		tmp = dh;
		dh = dprev;
		dprev = tmp;
	}
	/* dWx = dG^T A, dWh = dGH^T h[0..W-1], db = dG^T 1, over all W days. */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)gh, (int)r->in, (int)(W * n),
	    1.0f, rw->dg, (int)gh, A, (int)r->in, 0.0f, dense(grads, r->wx_id), (int)r->in);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)gh, (int)H, (int)(W * n), 1.0f,
	    dgh, (int)gh, rw->h[l], (int)H, 0.0f, dense(grads, r->wh_id), (int)H);
	cblas_sgemv(CblasRowMajor, CblasTrans, (int)(W * n), (int)gh, 1.0f, rw->dg, (int)gh,
	    rw->ones, 1, 0.0f, dense(grads, r->b_id), 1);
	if (want_dx)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(W * n), (int)r->in,
		    (int)gh, 1.0f, rw->dg, (int)gh, Wx, (int)r->in, 0.0f, rw->dx, (int)r->in);
}

void
rnn_backward(const psf_model *m, rnn_ws *rw, const psf_params *p, float *dh, size_t n,
    psf_params *grads, float *d_emb)
{
	size_t W = m->window, nf = m->n_features, e = m->emb_dim, d = m->d_in;

	for (size_t l = m->n_rnn; l-- > 0;) {
		const float *A = l == 0 ? rw->in : rw->h[l - 1] + n * m->rnn[l - 1].hid;

		layer_backward(m, rw, p, l, A, l == m->n_rnn - 1 ? dh : NULL, n, grads,
		    l > 0 || e > 0);
	}
	if (e == 0)
		return;
	/* The embedding is every day's input: its gradient is the sum over days. */
	memset(d_emb, 0, n * e * sizeof(float));
	for (size_t t = 0; t < W; t++) {
		for (size_t i = 0; i < n; i++) {
			const float *restrict src = rw->dx + (t * n + i) * d + nf;
			float *restrict dst = d_emb + i * e;

			for (size_t j = 0; j < e; j++)
				dst[j] += src[j];
		}
	}
}

double
rnn_l2(const psf_model *m, const psf_params *p, psf_params *grads)
{
	double sum = 0.0;

	for (size_t l = 0; l < m->n_rnn; l++) {
		const model_rnn *r = &m->rnn[l];
		const uint16_t ids[2] = {r->wx_id, r->wh_id};

		for (size_t k = 0; k < 2; k++) {
			const float *Wt = dense(p, ids[k]);
			int count = (int)m->t[ids[k] - 1].floats;

			sum += cblas_dsdot(count, Wt, 1, Wt, 1);
			cblas_saxpy(count, (float)m->cfg.l2, Wt, 1, dense(grads, ids[k]), 1);
		}
	}
	return sum;
}
