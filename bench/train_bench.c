/* train_bench -- training step (psf_model_loss_grad) throughput per trainer
 * process, and how close the mlp step comes to raw BLAS.
 *
 * For each model it measures samples/s of loss_grad on a fixed batch, converts
 * that into GFLOP/s (2*m*n*k per matrix product: forward, dW, and dX for every
 * layer but the first), and measures in the same run the same BLAS calls at the
 * same shapes alone (cblas_sgemm; sgemv/sger where a layer has one output), plus
 * a 512^3 sgemm. One BLAS thread, as in a trainer (PLATFORM.md). Each figure is
 * the median of several interleaved runs. Output: `name value unit` lines, then
 * `ratio_<name> value` (DESIGN.md §10). --quick runs a short version. The gru
 * and lstm figures come from train_bench_rnn.c. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "bench/train_bench.h"
#include "lib/base/util.h"
#include "lib/model/model.h"

#define MAX_LAYERS 9
#define BATCH 256
#define FEATURES 16
#define N_SYMBOLS 64

typedef struct bench_model {
	const char *name;
	psf_model_kind kind;
	uint32_t n_hidden;
	uint32_t hidden[2];
	uint32_t emb;
	int sym_bias;
} bench_model;

typedef struct shape {
	int in, out;
} shape;

/* One model under test with its data and the buffers of its BLAS baseline. */
typedef struct bench_run {
	psf_model *m;
	psf_params *p, *g;
	psf_model_ws *ws;
	float *X, *y;
	uint64_t *rows;
	size_t n_layers;
	shape layers[MAX_LAYERS];
	float *W[MAX_LAYERS], *dW[MAX_LAYERS], *A[MAX_LAYERS + 1], *dA, *dX;
	double flops; /* per step */
} bench_run;

static uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = (*s += UINT64_C(0x9e3779b97f4a7c15));

	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static float *
rand_floats(size_t n, uint64_t *s)
{
	float *v = malloc(n * sizeof(float));

	if (v == NULL) {
		fprintf(stderr, "train_bench: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		v[i] = (float)((double)(rng_next(s) >> 11) * 0x1p-53 * 2.0 - 1.0);
	return v;
}

static void
check(psf_err err, const char *what)
{
	if (err != PSF_OK) {
		fprintf(stderr, "train_bench: %s: %s\n", what, psf_strerror(err));
		exit(1);
	}
}

/* layer_shapes reads the (weight, bias) tensor pairs: weight is [out x in]. */
static void
layer_shapes(bench_run *r)
{
	size_t n_dense = 0;
	psf_tensor_info info;

	for (size_t t = 0; t < psf_model_n_tensors(r->m); t++) {
		check(psf_model_tensor_info(r->m, t, &info), "tensor_info");
		if (!info.is_per_symbol)
			n_dense++;
	}
	r->n_layers = n_dense / 2;
	r->flops = 0.0;
	for (size_t l = 0; l < r->n_layers; l++) {
		check(psf_model_tensor_info(r->m, 2 * l, &info), "tensor_info");
		r->layers[l].out = (int)info.rows;
		r->layers[l].in = (int)info.cols;
		/* forward + dW, plus dX except at the input */
		r->flops += (l > 0 ? 3.0 : 2.0) * 2.0 * BATCH * info.rows * info.cols;
	}
}

static void
run_setup(bench_run *r, const bench_model *bm, uint64_t seed)
{
	psf_model_cfg cfg = {0};
	uint64_t syms[N_SYMBOLS], s = seed;
	size_t widest = FEATURES;

	cfg.kind = bm->kind;
	cfg.n_hidden = bm->n_hidden;
	memcpy(cfg.hidden, bm->hidden, sizeof(bm->hidden));
	cfg.embedding_dim = bm->emb;
	cfg.symbol_bias = bm->sym_bias;
	cfg.init_scale = 1.0;
	cfg.l2 = 1e-4;
	cfg.chunk_floats = 65536;
	memset(r, 0, sizeof(*r));
	check(psf_model_new(&cfg, FEATURES, PSF_TARGET_NEXT_RETURN, seed, &r->m), "model_new");
	check(psf_params_new(r->m, &r->p), "params_new");
	check(psf_params_new(r->m, &r->g), "params_new");
	check(psf_model_ws_new(r->m, BATCH, &r->ws), "ws_new");
	for (size_t k = 0; k < N_SYMBOLS; k++)
		syms[k] = rng_next(&s) & PSF_KEY_ROW_MASK;
	check(psf_params_fill_init(r->p, syms, N_SYMBOLS), "fill_init");
	r->X = rand_floats((size_t)BATCH * FEATURES, &s);
	r->y = rand_floats(BATCH, &s);
	r->rows = malloc(BATCH * sizeof(uint64_t));
	if (r->rows == NULL)
		check(PSF_ENOMEM, "rows");
	for (size_t i = 0; i < BATCH; i++)
		r->rows[i] = syms[rng_next(&s) % N_SYMBOLS];
	layer_shapes(r);
	for (size_t l = 0; l < r->n_layers; l++) {
		size_t wn = (size_t)r->layers[l].in * r->layers[l].out;

		r->W[l] = rand_floats(wn, &s);
		r->dW[l] = rand_floats(wn, &s);
		r->A[l] = rand_floats((size_t)BATCH * r->layers[l].in, &s);
		if ((size_t)r->layers[l].in > widest)
			widest = (size_t)r->layers[l].in;
	}
	r->A[r->n_layers] = rand_floats(BATCH, &s);
	r->dA = rand_floats((size_t)BATCH * widest, &s);
	r->dX = rand_floats((size_t)BATCH * widest, &s);
}

static void
run_teardown(bench_run *r)
{
	for (size_t l = 0; l < r->n_layers; l++) {
		free(r->W[l]);
		free(r->dW[l]);
		free(r->A[l]);
	}
	free(r->A[r->n_layers]);
	free(r->dA);
	free(r->dX);
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
	bench_run *r = arg;
	double loss;

	check(psf_model_loss_grad(r->m, r->ws, r->p, r->X, r->y, r->rows, BATCH, r->g, &loss),
	    "loss_grad");
}

/* blas_step issues the BLAS calls of one training step at the same shapes. */
static void
blas_step(void *arg)
{
	bench_run *r = arg;
	const int n = BATCH;

	for (size_t l = 0; l < r->n_layers; l++) {
		int in = r->layers[l].in, out = r->layers[l].out;

		if (out == 1)
			cblas_sgemv(CblasRowMajor, CblasNoTrans, n, in, 1.0f, r->A[l], in, r->W[l],
			    1, 0.0f, r->A[l + 1], 1);
		else
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f,
			    r->A[l], in, r->W[l], in, 0.0f, r->A[l + 1], out);
	}
	for (size_t l = r->n_layers; l-- > 0;) {
		int in = r->layers[l].in, out = r->layers[l].out;
		const float *dH = l + 1 < r->n_layers ? r->dA : r->A[l + 1];

		if (out == 1)
			cblas_sgemv(CblasRowMajor, CblasTrans, n, in, 1.0f, r->A[l], in, dH, 1,
			    0.0f, r->dW[l], 1);
		else
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dH,
			    out, r->A[l], in, 0.0f, r->dW[l], in);
		if (l == 0)
			break;
		if (out == 1)
			cblas_sger(CblasRowMajor, n, in, 1.0f, dH, 1, r->W[l], 1, r->dX, in);
		else
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dH,
			    out, r->W[l], in, 0.0f, r->dX, in);
	}
}

double
train_bench_time(void (*step)(void *), void *r, double min_s, double *cpu_s)
{
	uint64_t t0 = psf_now_ns(), c0 = psf_bench_cpu_ns(), t;
	size_t iters = 0;

	do {
		step(r);
		iters++;
		t = psf_now_ns();
	} while (iters < 3 || (double)(t - t0) < min_s * 1e9);
	if (cpu_s != NULL)
		*cpu_s = (double)(psf_bench_cpu_ns() - c0) / 1e9 / (double)iters;
	return (double)(t - t0) / 1e9 / (double)iters;
}

/* bench_one prints the model's figures and returns step GFLOP/s / BLAS GFLOP/s. */
static double
bench_one(const bench_model *bm, size_t reps, double min_s)
{
	double t_model[16], t_blas[16], tm, tb;
	bench_run r;

	run_setup(&r, bm, 42);
	model_step(&r); /* warm caches, fault in the grads' symbol rows */
	blas_step(&r);
	for (size_t i = 0; i < reps; i++) {
		t_model[i] = train_bench_time(model_step, &r, min_s, NULL);
		t_blas[i] = train_bench_time(blas_step, &r, min_s, NULL);
	}
	tm = psf_bench_median(t_model, reps);
	tb = psf_bench_median(t_blas, reps);
	printf("%s_samples_per_s %.0f samples/s\n", bm->name, BATCH / tm);
	printf("%s_step_us %.1f us\n", bm->name, tm * 1e6);
	printf("%s_gflops %.2f GFLOP/s\n", bm->name, r.flops / tm / 1e9);
	printf("%s_blas_gflops %.2f GFLOP/s\n", bm->name, r.flops / tb / 1e9);
	run_teardown(&r);
	return tb / tm;
}

static double
bench_square_sgemm(size_t dim, size_t reps, double min_s)
{
	uint64_t s = 7;
	float *a = rand_floats(dim * dim, &s), *b = rand_floats(dim * dim, &s);
	float *c = rand_floats(dim * dim, &s);
	double t[16];
	int n = (int)dim;

	for (size_t i = 0; i < reps; i++) {
		uint64_t t0 = psf_now_ns();
		size_t iters = 0;

		do {
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n,
			    b, n, 0.0f, c, n);
			iters++;
		} while ((double)(psf_now_ns() - t0) < min_s * 1e9);
		t[i] = (double)(psf_now_ns() - t0) / 1e9 / (double)iters;
	}
	free(a);
	free(b);
	free(c);
	return 2.0 * dim * dim * dim / psf_bench_median(t, reps) / 1e9;
}

int
main(int argc, char **argv)
{
	static const bench_model models[] = {
	    {"linear_d16_b256", PSF_MODEL_LINEAR, 0, {0}, 0, 0},
	    {"mlp_h64_d16_b256", PSF_MODEL_MLP, 1, {64}, 0, 0},
	    {"mlp_h64_emb8_symbias_d16_b256", PSF_MODEL_MLP, 1, {64}, 8, 1},
	    {"mlp_h256x256_d16_b256", PSF_MODEL_MLP, 2, {256, 256}, 0, 0},
	};
	double ratio[PSF_ARRAY_LEN(models)];
	bool quick = false;
	size_t reps;
	double min_s;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = true;
		} else {
			fprintf(stderr, "usage: train_bench [--quick]\n");
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	reps = quick ? 1 : 7;
	min_s = quick ? 0.02 : 0.3;
	openblas_set_num_threads(1);
	for (size_t i = 0; i < PSF_ARRAY_LEN(models); i++)
		ratio[i] = bench_one(&models[i], reps, min_s);
	printf("sgemm_512_gflops %.2f GFLOP/s\n", bench_square_sgemm(512, reps, min_s));
	printf("ratio_linear_vs_blas %.3f\n", ratio[0]);
	printf("ratio_mlp_h64_vs_sgemm %.3f\n", ratio[1]);
	printf("ratio_mlp_h64_emb8_vs_sgemm %.3f\n", ratio[2]);
	printf("ratio_mlp_vs_sgemm %.3f\n", ratio[3]);
	train_bench_rnn(reps, min_s);
	return 0;
}
