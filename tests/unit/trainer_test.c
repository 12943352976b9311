/* Trainer: symbol plans, deterministic batches, and accuracy of distributed sync
 * training against the closed-form ridge solution (real ps + two real trainers in
 * this process, over tcp 127.0.0.1, on generated data). */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nng/nng.h>

#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/data/data.h"
#include "lib/data/datagen.h"
#include "lib/data/features.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "ps/ps.h"
#include "trainer/internal.h"
#include "trainer/trainer.h"

typedef struct tfix {
	char dir[64];
	char data[128];
	psf_config *cfg;
} tfix;

static void
make_fixture(tfix *f, const char *model, const char *optimizer, uint32_t epochs, int n_trainers,
    const char *shard_by)
{
	char text[4096], err[512];
	psf_datagen_cfg g = {60, 400, 11, 0};
	size_t n = 0;

	snprintf(f->dir, sizeof(f->dir), "/tmp/psf-train-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->data, sizeof(f->data), "%s/data.csv", f->dir);
	assert_int_equal(psf_datagen_write(&g, f->data, err, sizeof(err)), PSF_OK);
	n += (size_t)snprintf(text + n, sizeof(text) - n,
	    "name: t\nseed: 5\nrun_dir: %s\nnodes:\n  ps:\n    - {id: ps0, listen: \"tcp://127.0.0.1:0\"}\n"
	    "  trainers:\n",
	    f->dir);
	for (int i = 0; i < n_trainers; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "    - {id: trainer-%d}\n", i);
	snprintf(text + n, sizeof(text) - n,
	    "data: {path: %s, test_fraction: 0.25, shard_by: %s}\n"
	    "features: [\"return:1\", \"return:2\", \"return:5\", \"ratio_sma:5\", \"ratio_sma:20\", \"range\"]\n"
	    "target: next_return\n"
	    "model: %s\n"
	    "optimizer: %s\n"
	    "training: {epochs: %u, batch_size: 128}\n"
	    "consistency: {mode: sync, straggler_timeout_ms: 30000, heartbeat_ms: 200}\n"
	    "durability: {mode: none}\n"
	    "limits: {request_timeout_ms: 10000}\n",
	    f->data, shard_by, model, optimizer, epochs);
	if (psf_config_parse("train.yaml", text, strlen(text), err, sizeof(err), &f->cfg) != PSF_OK)
		fail_msg("config: %s", err);
}

static void
free_fixture(tfix *f)
{
	psf_config_free(f->cfg);
	assert_int_equal(psf_rm_rf(f->dir), PSF_OK);
}

/* Every symbol belongs to exactly one trainer, for both sharding policies. */
static void
check_plans_partition(const char *shard_by)
{
	tfix f;
	psf_shard_plan plans[3];
	psf_data_index *idx;
	char err[256];

	make_fixture(&f, "{kind: linear}", "{kind: sgd}", 1, 3, shard_by);
	for (int i = 0; i < 3; i++)
		assert_int_equal(psf_trainer_plan(f.cfg, (size_t)i, &plans[i], err, sizeof(err)),
		    PSF_OK);
	assert_int_equal(psf_data_scan(f.data, PSF_BAD_ROWS_FAIL, err, sizeof(err), &idx), PSF_OK);
	for (size_t s = 0; s < psf_data_index_n_symbols(idx); s++) {
		const char *sym = psf_data_index_symbol(idx, s, NULL);
		int owners = 0;
		for (int i = 0; i < 3; i++)
			owners += psf_shard_plan_keep(sym, &plans[i]);
		assert_int_equal(owners, 1);
	}
	for (int i = 0; i < 3; i++) {
		assert_true(plans[i].n > 0);
		assert_int_equal(plans[i].cutoff, plans[0].cutoff);
	}
	/* The split psfleet up prints is the trainers' own plan. */
	psf_trainer_split *split;
	assert_int_equal(psf_trainer_split_new(f.cfg, err, sizeof(err), &split), PSF_OK);
	assert_int_equal(split->n_trainers, 3);
	assert_int_equal(split->total_symbols, psf_data_index_n_symbols(idx));
	for (int i = 0; i < 3; i++)
		assert_int_equal(split->symbols[i], plans[i].n);
	assert_int_equal(split->n_ps, 1);
	assert_true(split->keys[0] > 0 && split->floats[0] >= split->keys[0]);
	psf_trainer_split_free(split);
	for (int i = 0; i < 3; i++)
		psf_shard_plan_fini(&plans[i]);
	psf_data_index_free(idx);
	free_fixture(&f);
}

/* Rows are the default; 4 equal symbols over 2 trainers go 2 and 2 (hashing put
 * all 4 on one trainer in the example). */
static void
test_trainer_split_default_balances_rows(void **state)
{
	char text[1024], err[256], data[160], dir[64] = "/tmp/psf-split-XXXXXX";
	psf_datagen_cfg g = {4, 100, 7, 0};
	psf_trainer_split *split;
	psf_config *cfg;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(data, sizeof(data), "%s/d.csv", dir);
	assert_int_equal(psf_datagen_write(&g, data, err, sizeof(err)), PSF_OK);
	snprintf(text, sizeof(text),
	    "name: t\nrun_dir: %s\nnodes:\n  ps:\n"
	    "    - {id: ps0, listen: \"tcp://127.0.0.1:0\"}\n    - {id: ps1, listen: \"tcp://127.0.0.1:0\"}\n"
	    "  trainers:\n    - {id: trainer-0}\n    - {id: trainer-1}\n"
	    "data: {path: %s}\nfeatures: [\"return:1\"]\nmodel: {kind: mlp, hidden: [4], "
	    "embedding_dim: 2, chunk_floats: 4}\n",
	    dir, data);
	if (psf_config_parse("split.yaml", text, strlen(text), err, sizeof(err), &cfg) != PSF_OK)
		fail_msg("config: %s", err);
	assert_int_equal(cfg->data.shard_by, PSF_SHARD_BY_ROWS);
	assert_int_equal(psf_trainer_split_new(cfg, err, sizeof(err), &split), PSF_OK);
	assert_int_equal(split->symbols[0], 2);
	assert_int_equal(split->symbols[1], 2);
	assert_int_equal(split->rows[0], split->rows[1]);
	assert_int_equal(split->total_rows, 400);
	/* every key is counted once, on one ps: dense chunks plus 4 symbols' embeddings */
	assert_int_equal(split->n_ps, 2);
	assert_true(split->keys[0] + split->keys[1] > 4);
	psf_trainer_split_free(split);
	psf_config_free(cfg);
	assert_int_equal(psf_rm_rf(dir), PSF_OK);
}

static void
test_trainer_plan_partitions_symbols_hash(void **state)
{
	(void)state;
	check_plans_partition("hash");
}

static void
test_trainer_plan_partitions_symbols_rows(void **state)
{
	(void)state;
	check_plans_partition("rows");
}

static void
test_trainer_permutation_deterministic(void **state)
{
	uint32_t a[1000], b[1000], c[1000];
	int seen[1000] = {0};

	(void)state;
	psf_trainer_permute(a, 1000, 42, 1, 3);
	psf_trainer_permute(b, 1000, 42, 1, 3);
	psf_trainer_permute(c, 1000, 42, 1, 4);
	assert_memory_equal(a, b, sizeof(a));
	assert_true(memcmp(a, c, sizeof(a)) != 0); /* another epoch, another order */
	for (int i = 0; i < 1000; i++)
		seen[a[i]]++;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(seen[i], 1);
	psf_trainer_permute(a, 1000, 0, 1, 3); /* shuffle off */
	for (uint32_t i = 0; i < 1000; i++)
		assert_int_equal(a[i], i);
}

typedef struct trainer_job {
	const psf_config *cfg;
	const psf_node_cfg *node;
	const char *const *urls;
	psf_err err;
} trainer_job;

static void *
trainer_main(void *arg)
{
	trainer_job *j = arg;
	psf_trainer_opts o = {j->urls, "", 0, 0, 0};

	j->err = psf_trainer_run(j->cfg, j->node, &o);
	return NULL;
}

/* run_fleet trains with a real ps and one thread per trainer; returns the fleet's
 * test RMSE and naive RMSE from the ps's reports. */
static void
run_fleet(tfix *f, double *rmse, double *naive)
{
	psf_ps *ps;
	psf_ps_opts po = {false, "tcp://127.0.0.1:0", "", NULL};
	const char *urls[1];
	pthread_t th[4];
	trainer_job jobs[4];
	size_t nt = f->cfg->n_trainers;
	psf_rpc_client *c;
	Psfleet__V1__StatsRequest req = PSFLEET__V1__STATS_REQUEST__INIT;
	Psfleet__V1__StatsReply *r = NULL;
	double sse = 0, nsse = 0, n = 0;

	assert_int_equal(psf_ps_new(f->cfg, &f->cfg->nodes[0], &po, &ps), PSF_OK);
	urls[0] = psf_ps_url(ps);
	for (size_t i = 0; i < nt; i++) {
		jobs[i] = (trainer_job){f->cfg, psf_config_role_node(f->cfg, PSF_ROLE_TRAINER, i),
		    urls, PSF_EINTERNAL};
		pthread_create(&th[i], NULL, trainer_main, &jobs[i]);
	}
	for (size_t i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(jobs[i].err, PSF_OK);
	}
	assert_int_equal(psf_rpc_client_open(urls[0], NULL, &c), PSF_OK);
	assert_int_equal(psf_rpc_client_call(c, PSF_M_STATS, &req.base,
	                     &psfleet__v1__stats_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	                     NULL),
	    PSF_OK);
	assert_int_equal(r->n_reports, nt);
	for (size_t i = 0; i < r->n_reports; i++) {
		assert_true(r->reports[i]->finished);
		sse += r->reports[i]->test_sse;
		nsse += r->reports[i]->naive_sse;
		n += (double)r->reports[i]->test_n;
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	psf_rpc_client_close(c);
	psf_ps_free(ps);
	assert_true(n > 0);
	*rmse = sqrt(sse / n);
	*naive = sqrt(nsse / n);
}

/* cholesky_solve solves A x = b for a symmetric positive definite d x d A
 * (row-major, overwritten). */
static void
cholesky_solve(double *A, double *b, size_t d)
{
	for (size_t j = 0; j < d; j++) {
		double s = A[j * d + j];
		for (size_t k = 0; k < j; k++)
			s -= A[j * d + k] * A[j * d + k];
		assert_true(s > 0);
		A[j * d + j] = sqrt(s);
		for (size_t i = j + 1; i < d; i++) {
			double t = A[i * d + j];
			for (size_t k = 0; k < j; k++)
				t -= A[i * d + k] * A[j * d + k];
			A[i * d + j] = t / A[j * d + j];
		}
	}
	for (size_t i = 0; i < d; i++) { /* L y = b */
		for (size_t k = 0; k < i; k++)
			b[i] -= A[i * d + k] * b[k];
		b[i] /= A[i * d + i];
	}
	for (size_t i = d; i-- > 0;) { /* L^T x = y */
		for (size_t k = i + 1; k < d; k++)
			b[i] -= A[k * d + i] * b[k];
		b[i] /= A[i * d + i];
	}
}

/* closed_form_rmse: the ridge solution of the model's own loss,
 * mean((Xw + b - y)^2) + l2/2 |w|^2, on the standardised train rows of the whole
 * dataset, evaluated on the test rows in target units. */
static double
closed_form_rmse(tfix *f, double l2)
{
	psf_dataset *ds;
	psf_data_index *idx;
	psf_table *t;
	const int32_t *dates;
	size_t n_dates, nf, d, n;
	int32_t cutoff;
	double *stats, *X, *A, *b, sse = 0;
	char err[256];

	assert_int_equal(psf_data_load(f->data, NULL, err, sizeof(err), &ds), PSF_OK);
	assert_int_equal(psf_data_scan(f->data, PSF_BAD_ROWS_FAIL, err, sizeof(err), &idx), PSF_OK);
	dates = psf_data_index_dates(idx, &n_dates);
	assert_int_equal(psf_data_cutoff_date(dates, n_dates, f->cfg->data.test_fraction, &cutoff),
	    PSF_OK);
	assert_int_equal(psf_features_build(ds, f->cfg->features, f->cfg->n_features,
	                     f->cfg->target, cutoff, err, sizeof(err), &t),
	    PSF_OK);
	nf = t->n_features;
	stats = calloc(psf_features_stats_len(nf), sizeof(double));
	psf_features_stats(t, stats);
	assert_int_equal(psf_features_standardize(t, stats, psf_features_stats_len(nf)), PSF_OK);
	d = nf + 1; /* features + intercept */
	n = t->n_train;
	X = malloc(n * d * sizeof(double));
	A = calloc(d * d, sizeof(double));
	b = calloc(d, sizeof(double));
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < nf; j++)
			X[i * d + j] = t->x[i * nf + j];
		X[i * d + nf] = 1.0;
		for (size_t j = 0; j < d; j++)
			b[j] += X[i * d + j] * t->y[i];
	}
	cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)n, 1.0, X, (int)d, 0.0, A,
	    (int)d);
	for (size_t i = 0; i < d; i++) /* mirror the upper triangle; add the ridge term */
		for (size_t j = 0; j < i; j++)
			A[i * d + j] = A[j * d + i];
	for (size_t j = 0; j < nf; j++)
		A[j * d + j] += (double)n * l2 / 2.0;
	cholesky_solve(A, b, d);
	for (size_t i = t->n_train; i < t->n_rows; i++) {
		double z = b[nf];
		for (size_t j = 0; j < nf; j++)
			z += b[j] * t->x[i * nf + j];
		double p = psf_features_unstandardize_target(z, nf, t->target, stats);
		sse += (p - t->y_raw[i]) * (p - t->y_raw[i]);
	}
	double rmse = sqrt(sse / (double)(t->n_rows - t->n_train));
	free(X);
	free(A);
	free(b);
	free(stats);
	psf_table_free(t);
	psf_data_index_free(idx);
	psf_dataset_free(ds);
	return rmse;
}

static void
test_trainer_sync_linear_matches_closed_form_ridge(void **state)
{
	tfix f;
	double rmse, naive, cf;

	(void)state;
	make_fixture(&f, "{kind: linear, l2: 0.001}",
	    "{kind: adam, learning_rate: 0.01, schedule: step, step_size: 100, gamma: 0.6}", 8, 2,
	    "hash");
	run_fleet(&f, &rmse, &naive);
	cf = closed_form_rmse(&f, 0.001);
	print_message(
	    "sync linear: test rmse %.6f, closed-form ridge %.6f (ratio %.4f), naive %.6f\n", rmse,
	    cf, rmse / cf, naive);
	assert_true(fabs(rmse / cf - 1.0) < 0.01);
	assert_true(rmse < naive);
	free_fixture(&f);
}

/* Local SGD (consistency mode local, 4 local steps per averaging round) with 2
 * trainers comes close to the closed-form ridge solution, and two runs give the
 * same model bit for bit (the rounds average in worker order). */
static void
test_trainer_local_sgd_converges_deterministic(void **state)
{
	double rmse[2], naive, cf = 0;

	(void)state;
	for (int i = 0; i < 2; i++) {
		tfix f;
		make_fixture(&f, "{kind: linear, l2: 0.001}", "{kind: sgd, learning_rate: 0.05}", 8,
		    2, "hash");
		f.cfg->consistency.mode = PSF_CONS_LOCAL;
		f.cfg->consistency.sync_every = 4;
		run_fleet(&f, &rmse[i], &naive);
		if (i == 0)
			cf = closed_form_rmse(&f, 0.001);
		free_fixture(&f);
	}
	print_message("local sgd: test rmse %.9f / %.9f, closed-form ridge %.6f (ratio %.4f), "
	              "naive %.6f\n",
	    rmse[0], rmse[1], cf, rmse[0] / cf, naive);
	assert_memory_equal(&rmse[0], &rmse[1], sizeof(double));
	assert_true(fabs(rmse[0] / cf - 1.0) < 0.02);
	assert_true(rmse[0] < naive);
}

static void
test_trainer_mlp_embedding_beats_linear(void **state)
{
	tfix f;
	double lin, mlp, naive;
	const char *opt =
	    "{kind: adam, learning_rate: 0.01, schedule: step, step_size: 100, gamma: 0.6}";

	(void)state;
	make_fixture(&f, "{kind: linear}", opt, 8, 2, "rows");
	run_fleet(&f, &lin, &naive);
	free_fixture(&f);
	make_fixture(&f, "{kind: mlp, hidden: [32], embedding_dim: 4, symbol_bias: true}", opt, 8,
	    2, "rows");
	run_fleet(&f, &mlp, &naive);
	free_fixture(&f);
	print_message("mlp+embedding %.6f, linear %.6f, naive %.6f\n", mlp, lin, naive);
	assert_true(mlp < lin);
	assert_true(lin < naive);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trainer_plan_partitions_symbols_hash),
	    cmocka_unit_test(test_trainer_plan_partitions_symbols_rows),
	    cmocka_unit_test(test_trainer_split_default_balances_rows),
	    cmocka_unit_test(test_trainer_permutation_deterministic),
	    cmocka_unit_test(test_trainer_sync_linear_matches_closed_form_ridge),
	    cmocka_unit_test(test_trainer_mlp_embedding_beats_linear),
	    cmocka_unit_test(test_trainer_local_sgd_converges_deterministic),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	/* NNG releases servers (HTTP ones especially) on its own threads: let them
	 * finish before LeakSanitizer looks at the heap at exit. */
	nng_fini();
	return failed;
}
