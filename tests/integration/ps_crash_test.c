/* A real ps process killed with SIGKILL right after acknowledging a push (every-commit
 * durability) comes back with that push applied exactly once. Needs $PSFLEET. */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/model/model.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "trainer/ps_client.h"

#include "tests/integration/itest.h"

typedef struct crash_env {
	psf_itest_dir d; /* its dir, fleet.yaml and ps0's url */
	psf_config *cfg;
	psf_model *model;
	uint64_t keys[64];
	uint32_t lens[64];
	size_t n_keys;
	pid_t pid;
} crash_env;

static void
write_config(crash_env *e, const char *mode, int n_trainers)
{
	FILE *f = fopen(e->d.cfg, "w");
	char err[512];

	assert_non_null(f);
	fprintf(f,
	    "name: crash\nseed: 3\nrun_dir: %s\nnodes:\n  ps:\n"
	    "    - {id: ps0, listen: \"%s\"}\n  trainers:\n",
	    e->d.dir, e->d.url);
	for (int i = 0; i < n_trainers; i++)
		fprintf(f, "    - {id: trainer-%d}\n", i);
	fprintf(f,
	    "data: {path: %s/none.csv}\n"
	    "features: [\"lag:0\", \"lag:1\", \"lag:2\"]\n"
	    "model: {kind: mlp, hidden: [4], chunk_floats: 4}\n"
	    "optimizer: {kind: sgd, learning_rate: 1.0}\n"
	    "consistency: {mode: %s, straggler_timeout_ms: 60000, heartbeat_ms: 100}\n"
	    "durability: {mode: every-commit}\n"
	    "limits: {request_timeout_ms: 3000}\n",
	    e->d.dir, mode);
	fclose(f);
	if (psf_config_load(e->d.cfg, err, sizeof(err), &e->cfg) != PSF_OK)
		fail_msg("config: %s", err);
}

static void
spawn_ps(crash_env *e)
{
	e->pid = psf_itest_spawn_node(e->d.dir, e->d.cfg, "ps0", NULL, NULL);
}

static void
kill9(crash_env *e)
{
	int status = psf_itest_stop(&e->pid, SIGKILL);

	assert_int_not_equal(status, -1); /* signalled and reaped */
	assert_true(WIFSIGNALED(status));
}

static void
setup_env(crash_env *e, const char *mode, int n_trainers)
{
	memset(e, 0, sizeof(*e));
	psf_itest_dir_make(&e->d, "crash");
	write_config(e, mode, n_trainers);
	assert_int_equal(psf_model_new(&e->cfg->model, (uint32_t)e->cfg->n_features, e->cfg->target,
	                     e->cfg->seed, &e->model),
	    PSF_OK);
	assert_int_equal(psf_model_dense_keys(e->model, e->keys, e->lens, 64, &e->n_keys), PSF_OK);
	spawn_ps(e);
}

static void
teardown_env(crash_env *e)
{
	psf_itest_stop(&e->pid, SIGTERM);
	psf_model_free(e->model);
	psf_config_free(e->cfg);
	assert_int_equal(psf_rm_rf(e->d.dir), PSF_OK);
}

static psf_ps_client *
open_worker(crash_env *e, const char *id)
{
	psf_ps_client_opts o = {.retry_ms = 20000};
	psf_ps_client *w = NULL;

	assert_int_equal(psf_ps_client_open(e->cfg, e->model, id, &o, &w), PSF_OK);
	return w;
}

static psf_params *
grads(crash_env *e, float v)
{
	psf_params *g;
	float buf[8];

	assert_int_equal(psf_params_new(e->model, &g), PSF_OK);
	for (size_t i = 0; i < e->n_keys; i++) {
		for (uint32_t j = 0; j < e->lens[i]; j++)
			buf[j] = v;
		assert_int_equal(psf_params_set_key(g, e->keys[i], buf, e->lens[i]), PSF_OK);
	}
	return g;
}

static psf_params *
pull(crash_env *e, psf_ps_client *w, int64_t clock)
{
	psf_params *p;

	assert_int_equal(psf_params_new(e->model, &p), PSF_OK);
	assert_int_equal(psf_ps_client_pull(w, clock, e->keys, e->n_keys, p, NULL), PSF_OK);
	return p;
}

static void
assert_moved_by(crash_env *e, const psf_params *before, const psf_params *after, float delta)
{
	for (size_t i = 0; i < e->n_keys; i++) {
		const float *a, *b;
		uint32_t la, lb;
		assert_int_equal(psf_params_get_key(before, e->keys[i], &a, &la), PSF_OK);
		assert_int_equal(psf_params_get_key(after, e->keys[i], &b, &lb), PSF_OK);
		for (uint32_t j = 0; j < la; j++)
			assert_float_equal(b[j], a[j] - delta, 1e-6);
	}
}

/* replay_push re-sends (worker, seq) by hand and expects "duplicate". */
static void
replay_push(crash_env *e, const char *worker, uint64_t seq, int64_t clock)
{
	psf_rpc_client *c;
	Psfleet__V1__RegisterRequest reg = PSFLEET__V1__REGISTER_REQUEST__INIT;
	Psfleet__V1__PushRequest push = PSFLEET__V1__PUSH_REQUEST__INIT;
	ProtobufCMessage *m = NULL;
	Psfleet__V1__PushReply *r = NULL;
	psf_rpc_call_opts o = {10000, 1, 0};
	float ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};

	assert_int_equal(psf_rpc_client_open(e->d.url, NULL, &c), PSF_OK);
	reg.worker = (char *)worker;
	assert_int_equal(psf_rpc_client_call(c, PSF_M_REGISTER, &reg.base,
	                     &psfleet__v1__register_reply__descriptor, &o, &m, NULL),
	    PSF_OK);
	assert_int_equal(((Psfleet__V1__RegisterReply *)m)->last_seq, seq);
	protobuf_c_message_free_unpacked(m, NULL);
	push.worker = (char *)worker;
	push.seq = seq;
	push.clock = clock;
	push.n_keys = push.n_lens = 1;
	push.keys = &e->keys[0];
	push.lens = &e->lens[0];
	push.values.data = (uint8_t *)ones;
	push.values.len = e->lens[0] * 4;
	assert_int_equal(psf_rpc_client_call(c, PSF_M_PUSH, &push.base,
	                     &psfleet__v1__push_reply__descriptor, &o, (ProtobufCMessage **)&r,
	                     NULL),
	    PSF_OK);
	assert_true(r->duplicate);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	psf_rpc_client_close(c);
}

static void
test_ps_crash_async_push_survives_once(void **state)
{
	crash_env e;
	psf_ps_client *w;
	psf_params *w0, *w1, *g;

	(void)state;
	setup_env(&e, "async", 1);
	w = open_worker(&e, "trainer-0");
	w0 = pull(&e, w, 0);
	g = grads(&e, 1.0f);
	assert_int_equal(psf_ps_client_push(w, 0, g, e.keys, e.n_keys, 1, 0, NULL), PSF_OK);
	kill9(&e); /* right after the acknowledgement */
	spawn_ps(&e);
	replay_push(&e, "trainer-0", 1, 0);
	w1 = pull(&e, w, 1); /* the worker re-registers by itself */
	assert_moved_by(&e, w0, w1, 1.0f);
	psf_params_free(w0);
	psf_params_free(w1);
	psf_params_free(g);
	psf_ps_client_close(w);
	teardown_env(&e);
}

/* Sync: an acknowledged push of an open round lives in the accumulator; after
 * the crash the round completes with it. */
static void
test_ps_crash_sync_round_keeps_acknowledged_push(void **state)
{
	crash_env e;
	psf_ps_client *a, *b;
	psf_params *w0, *w1, *ga, *gb;

	(void)state;
	setup_env(&e, "sync", 2);
	a = open_worker(&e, "trainer-0");
	b = open_worker(&e, "trainer-1");
	w0 = pull(&e, a, 0);
	ga = grads(&e, 1.0f);
	gb = grads(&e, 3.0f);
	assert_int_equal(psf_ps_client_push(a, 0, ga, e.keys, e.n_keys, 1, 0, NULL), PSF_OK);
	kill9(&e);
	spawn_ps(&e);
	replay_push(&e, "trainer-0", 1, 0);
	assert_int_equal(psf_ps_client_push(b, 0, gb, e.keys, e.n_keys, 1, 0, NULL), PSF_OK);
	w1 = pull(&e, a, 1);
	assert_moved_by(&e, w0, w1, 2.0f); /* the average of 1 and 3, applied once */
	psf_params_free(w0);
	psf_params_free(w1);
	psf_params_free(ga);
	psf_params_free(gb);
	psf_ps_client_close(a);
	psf_ps_client_close(b);
	teardown_env(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ps_crash_async_push_survives_once),
	    cmocka_unit_test(test_ps_crash_sync_round_keeps_acknowledged_push),
	};

	if (!psf_itest_has_psfleet("ps_crash_test"))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
