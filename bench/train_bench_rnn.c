/* train_bench_rnn.c -- the gru/lstm part of train_bench: a training step
 * (psf_model_loss_grad over a batch of windows) against the same sgemm calls at
 * the same shapes issued alone. Per recurrent layer with G gates of H units,
 * input width `in`, window W and batch n, the step's matrix products are:
 *   forward   one [W*n x in] x [in x GH] (every day's input projection) and
 *             W - 1 [n x H] x [H x GH] (the recurrent projection, none on day 0)
 *   backward  W - 1 [n x GH] x [GH x H] (the state gradient), dWx
 *             [GH x W*n] x [W*n x in], dWh [GH x W*n] x [W*n x H], and the input
 *             gradient [W*n x GH] x [GH x in] (not at layer 0 without embedding)
 * GFLOP/s count 2*m*n*k of each; the gap to the baseline is the element-wise
 * gate math, the input transpose and the output layer. The ratio_ lines compare
 * process CPU time (one BLAS thread: the thread's time), which other processes
 * on the shared cores do not inflate; *_wall_* lines give wall-clock figures. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "bench/train_bench.h"
#include "lib/base/util.h"
#include "lib/model/model.h"

#define BATCH 256
#define FEATURES 16
#define N_SYMBOLS 64

typedef struct rnn_model {
	const char *name;
	psf_model_kind kind;
	uint32_t n_layers, hidden[2], window, emb;
} rnn_model;

typedef struct rnn_run {
	const rnn_model *bm;
	psf_model *m;
	psf_params *p, *g;
	psf_model_ws *ws;
	float *X, *y;
	uint64_t *rows;
	/* baseline buffers, big enough for every product */
	float *a, *b, *c;
	double flops;
} rnn_run;

static float *
floats(size_t n, uint64_t *s)
{
	float *v = malloc((n > 0 ? n : 1) * sizeof(float));

	if (v == NULL) {
		fprintf(stderr, "train_bench: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
		v[i] = (float)((double)(*s >> 11) * 0x1p-53 * 2.0 - 1.0);
	}
	return v;
}

static void
ok(psf_err err, const char *what)
{
	if (err != PSF_OK) {
		fprintf(stderr, "train_bench: %s: %s\n", what, psf_strerror(err));
		exit(1);
	}
}

/* layer_in returns the input width of layer l. */
static size_t
layer_in(const rnn_model *bm, size_t l)
{
	return l == 0 ? FEATURES + bm->emb : bm->hidden[l - 1];
}

static void
setup(rnn_run *r, const rnn_model *bm)
{
	psf_model_cfg cfg = {0};
	uint64_t syms[N_SYMBOLS], s = 42;
	size_t W = bm->window, n = BATCH, big = 0;

	cfg.kind = bm->kind;
	cfg.n_hidden = bm->n_layers;
	memcpy(cfg.hidden, bm->hidden, sizeof(bm->hidden));
	cfg.window = bm->window;
	cfg.embedding_dim = bm->emb;
	cfg.init_scale = 1.0;
	cfg.l2 = 1e-4;
	cfg.chunk_floats = 65536;
	memset(r, 0, sizeof(*r));
	r->bm = bm;
	ok(psf_model_new(&cfg, FEATURES, PSF_TARGET_NEXT_RETURN, 42, &r->m), "model_new");
	ok(psf_params_new(r->m, &r->p), "params_new");
	ok(psf_params_new(r->m, &r->g), "params_new");
	ok(psf_model_ws_new(r->m, BATCH, &r->ws), "ws_new");
	for (size_t k = 0; k < N_SYMBOLS; k++)
		syms[k] = (k * 7919 + 13) & PSF_KEY_ROW_MASK;
	ok(psf_params_fill_init(r->p, syms, N_SYMBOLS), "fill_init");
	r->X = floats(n * W * FEATURES, &s);
	r->y = floats(n, &s);
	if ((r->rows = malloc(n * sizeof(uint64_t))) == NULL)
		ok(PSF_ENOMEM, "rows");
	for (size_t i = 0; i < n; i++)
		r->rows[i] = syms[i % N_SYMBOLS];
	for (size_t l = 0; l < bm->n_layers; l++) {
		size_t in = layer_in(bm, l), H = bm->hidden[l],
		       gh = (bm->kind == PSF_MODEL_GRU ? 3 : 4) * H;
		double wn = (double)W * n;

		r->flops += 2.0 * wn * gh * in;                       /* input projection */
		r->flops += 2.0 * 2.0 * (double)(W - 1) * n * H * gh; /* recurrent fwd + bwd */
		r->flops += 2.0 * wn * gh * in + 2.0 * wn * gh * H;   /* dWx, dWh */
		if (l > 0 || bm->emb > 0)
			r->flops += 2.0 * wn * gh * in; /* input gradient */
		big = big > wn * gh ? big : (size_t)(wn * gh);
		big = big > wn * in ? big : (size_t)(wn * in);
		big = big > gh * (in + H) ? big : gh * (in + H);
	}
	r->a = floats(big, &s);
	r->b = floats(big, &s);
	r->c = floats(big, &s);
}

static void
teardown(rnn_run *r)
{
	free(r->a);
	free(r->b);
	free(r->c);
	free(r->X);
	free(r->y);
	free(r->rows);
	psf_model_ws_free(r->ws);
	psf_params_free(r->g);
	psf_params_free(r->p);
	psf_model_free(r->m);
}

static void
model_step(void *arg)
{
	rnn_run *r = arg;
	double loss;

	ok(psf_model_loss_grad(r->m, r->ws, r->p, r->X, r->y, r->rows, BATCH, r->g, &loss),
	    "loss_grad");
}

static void
gemm(rnn_run *r, CBLAS_TRANSPOSE ta, int m, int n, int k)
{
	int lda = ta == CblasNoTrans ? k : m;

	cblas_sgemm(CblasRowMajor, ta, CblasTrans, m, n, k, 1.0f, r->a, lda, r->b, k, 0.0f, r->c,
	    n);
}

/* blas_step issues the step's sgemm calls (see the top) alone. */
static void
blas_step(void *arg)
{
	rnn_run *r = arg;
	const rnn_model *bm = r->bm;
	int W = (int)bm->window, n = BATCH;

	for (size_t l = 0; l < bm->n_layers; l++) {
		int in = (int)layer_in(bm, l), H = (int)bm->hidden[l];
		int gh = (bm->kind == PSF_MODEL_GRU ? 3 : 4) * H;

		gemm(r, CblasNoTrans, W * n, gh, in);
		for (int t = 1; t < W; t++)
			gemm(r, CblasNoTrans, n, gh, H);
	}
	for (size_t l = bm->n_layers; l-- > 0;) {
		int in = (int)layer_in(bm, l), H = (int)bm->hidden[l];
		int gh = (bm->kind == PSF_MODEL_GRU ? 3 : 4) * H;

		for (int t = 1; t < W; t++)
			gemm(r, CblasNoTrans, n, H, gh);
		gemm(r, CblasTrans, gh, in, W * n);
		gemm(r, CblasTrans, gh, H, W * n);
		if (l > 0 || bm->emb > 0)
			gemm(r, CblasNoTrans, W * n, in, gh);
	}
}

void
train_bench_rnn(size_t reps, double min_s)
{
	static const rnn_model models[] = {
	    {"gru_h64_w16_d16_b256", PSF_MODEL_GRU, 1, {64, 0}, 16, 0},
	    {"lstm_h64_w16_d16_b256", PSF_MODEL_LSTM, 1, {64, 0}, 16, 0},
	    {"gru_h128_emb8_w16_d16_b256", PSF_MODEL_GRU, 1, {128, 0}, 16, 8},
	    {"lstm_h128x64_w16_d16_b256", PSF_MODEL_LSTM, 2, {128, 64}, 16, 0},
	};
	double ratio[PSF_ARRAY_LEN(models)];

	for (size_t i = 0; i < PSF_ARRAY_LEN(models); i++) {
		double t_model[16], t_blas[16], c_model[16], c_blas[16], tm, tb, cm, cb;
		rnn_run r;

		setup(&r, &models[i]);
		model_step(&r);
		blas_step(&r);
		for (size_t k = 0; k < reps; k++) {
			t_model[k] = train_bench_time(model_step, &r, min_s, &c_model[k]);
			t_blas[k] = train_bench_time(blas_step, &r, min_s, &c_blas[k]);
		}
		tm = psf_bench_median(t_model, reps);
		tb = psf_bench_median(t_blas, reps);
		cm = psf_bench_median(c_model, reps);
		cb = psf_bench_median(c_blas, reps);
		printf("%s_samples_per_s %.0f samples/s\n", models[i].name, BATCH / cm);
		printf("%s_step_us %.1f us\n", models[i].name, cm * 1e6);
		printf("%s_gflops %.2f GFLOP/s\n", models[i].name, r.flops / cm / 1e9);
		printf("%s_sgemm_gflops %.2f GFLOP/s\n", models[i].name, r.flops / cb / 1e9);
		printf("%s_wall_samples_per_s %.0f samples/s\n", models[i].name, BATCH / tm);
		printf("%s_wall_ratio %.3f\n", models[i].name, tb / tm);
		ratio[i] = cb / cm;
		teardown(&r);
	}
	printf("ratio_gru_h64_vs_sgemm %.3f\n", ratio[0]);
	printf("ratio_lstm_h64_vs_sgemm %.3f\n", ratio[1]);
	printf("ratio_gru_h128_emb8_vs_sgemm %.3f\n", ratio[2]);
	printf("ratio_lstm_h128x64_vs_sgemm %.3f\n", ratio[3]);
}
