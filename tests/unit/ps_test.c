/* Parameter server: real LMDB in a temp dir, real NNG sockets on 127.0.0.1, real
 * ps instances in this process, clients through trainer/ps_client.h and raw RPCs. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/model/model.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "lib/net/wire.h"
#include "ps/optim.h"
#include "ps/ps.h"
#include "trainer/ps_client.h"

#define MAX_PS 2

typedef struct fleet {
	char dir[64];
	psf_config *cfg;
	psf_ps *ps[MAX_PS];
	const char *urls[MAX_PS];
	psf_model *model;
	uint64_t keys[64];
	uint32_t lens[64];
	size_t n_keys;
} fleet;

/* cfg_text writes a fleet YAML: n_ps ps nodes on port 0, n_tr trainers, an mlp
 * whose tensors split into several small keys. */
/* The durability mode of the fleets the tests start (every-commit unless a test
 * needs interval's in-map updates, and puts it back). */
static const char *durability = "every-commit";

static void
cfg_text_chunk(char *buf, size_t len, const char *dir, int n_ps, int n_tr, const char *consistency,
    const char *optimizer, const char *hidden, unsigned chunk)
{
	size_t n = 0;

	n += (size_t)snprintf(buf + n, len - n, "name: t\nseed: 7\nrun_dir: %s\nnodes:\n  ps:\n",
	    dir);
	for (int i = 0; i < n_ps; i++)
		n += (size_t)snprintf(buf + n, len - n,
		    "    - {id: ps%d, listen: \"tcp://127.0.0.1:0\"}\n", i);
	n += (size_t)snprintf(buf + n, len - n, "  trainers:\n");
	for (int i = 0; i < n_tr; i++)
		n += (size_t)snprintf(buf + n, len - n, "    - {id: trainer-%d}\n", i);
	snprintf(buf + n, len - n,
	    "data: {path: %s/none.csv}\n"
	    "features: [\"lag:0\", \"lag:1\", \"lag:2\"]\n"
	    "target: next_close\n"
	    "model: {kind: mlp, hidden: [%s], chunk_floats: %u}\n"
	    "optimizer: %s\n"
	    "consistency: %s\n"
	    "durability: {mode: %s, map_size: 1048576}\n"
	    "limits: {request_timeout_ms: 5000, rpc_workers: 16}\n",
	    dir, hidden, chunk, optimizer, consistency, durability);
}

static void
cfg_text(char *buf, size_t len, const char *dir, int n_ps, int n_tr, const char *consistency,
    const char *optimizer, const char *hidden)
{
	cfg_text_chunk(buf, len, dir, n_ps, n_tr, consistency, optimizer, hidden, 4);
}

static void
fleet_start_model(fleet *f, int n_ps, int n_tr, const char *consistency, const char *optimizer,
    const char *hidden, unsigned chunk)
{
	char text[4096], err[512];
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/psf-ps-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	cfg_text_chunk(text, sizeof(text), f->dir, n_ps, n_tr, consistency, optimizer, hidden,
	    chunk);
	if (psf_config_parse("test.yaml", text, strlen(text), err, sizeof(err), &f->cfg) != PSF_OK)
		fail_msg("config: %s", err);
	for (int i = 0; i < n_ps; i++) {
		assert_int_equal(psf_ps_new(f->cfg, &f->cfg->nodes[i], &opts, &f->ps[i]), PSF_OK);
		f->urls[i] = psf_ps_url(f->ps[i]);
	}
	assert_int_equal(psf_model_new(&f->cfg->model, (uint32_t)f->cfg->n_features, f->cfg->target,
	                     f->cfg->seed, &f->model),
	    PSF_OK);
	assert_int_equal(psf_model_dense_keys(f->model, f->keys, f->lens, 64, &f->n_keys), PSF_OK);
	assert_true(f->n_keys >= 4);
}

static void
fleet_start(fleet *f, int n_ps, int n_tr, const char *consistency, const char *optimizer)
{
	fleet_start_model(f, n_ps, n_tr, consistency, optimizer, "4", 4);
}

static void
fleet_stop(fleet *f)
{
	for (int i = 0; i < MAX_PS; i++)
		psf_ps_free(f->ps[i]);
	psf_model_free(f->model);
	assert_int_equal(psf_rm_rf(f->dir), PSF_OK);
	psf_config_free(f->cfg);
}

static psf_ps_client *
worker(fleet *f, const char *id)
{
	psf_ps_client_opts o = {.ps_urls = f->urls, .retry_ms = 3000};
	psf_ps_client *w = NULL;

	assert_int_equal(psf_ps_client_open(f->cfg, f->model, id, &o, &w), PSF_OK);
	return w;
}

/* grads_const sets every dense key's gradient to v. */
static psf_params *
grads_const(fleet *f, float v)
{
	psf_params *g;
	float *buf = NULL;
	uint32_t max = 0;

	for (size_t i = 0; i < f->n_keys; i++)
		max = f->lens[i] > max ? f->lens[i] : max;
	assert_non_null(buf = malloc(max * sizeof(float)));
	assert_int_equal(psf_params_new(f->model, &g), PSF_OK);
	for (size_t i = 0; i < f->n_keys; i++) {
		for (uint32_t j = 0; j < f->lens[i]; j++)
			buf[j] = v;
		assert_int_equal(psf_params_set_key(g, f->keys[i], buf, f->lens[i]), PSF_OK);
	}
	free(buf);
	return g;
}

static psf_params *
pull_all(fleet *f, psf_ps_client *w, int64_t clock)
{
	psf_params *p;

	assert_int_equal(psf_params_new(f->model, &p), PSF_OK);
	assert_int_equal(psf_ps_client_pull(w, clock, f->keys, f->n_keys, p, NULL), PSF_OK);
	return p;
}

static float
value(const psf_params *p, uint64_t key, uint32_t j)
{
	const float *v;
	uint32_t len;

	assert_int_equal(psf_params_get_key(p, key, &v, &len), PSF_OK);
	return v[j];
}

/* raw_pull: a Pull with a short deadline, to observe blocking. */
static psf_err
raw_pull(fleet *f, size_t shard, const char *worker, int64_t clock, uint32_t timeout_ms)
{
	psf_rpc_client *c;
	Psfleet__V1__PullRequest req = PSFLEET__V1__PULL_REQUEST__INIT;
	Psfleet__V1__PullReply *r = NULL;
	psf_rpc_call_opts o = {timeout_ms, 0, 0};
	psf_err err;

	assert_int_equal(psf_rpc_client_open(f->urls[shard], NULL, &c), PSF_OK);
	req.worker = (char *)worker;
	req.clock = clock;
	err = psf_rpc_client_call(c, PSF_M_PULL, &req.base, &psfleet__v1__pull_reply__descriptor,
	    &o, (ProtobufCMessage **)&r, NULL);
	if (err == PSF_OK)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	psf_rpc_client_close(c);
	return err;
}

static Psfleet__V1__StatsReply *
stats(fleet *f, size_t shard)
{
	psf_rpc_client *c;
	Psfleet__V1__StatsRequest req = PSFLEET__V1__STATS_REQUEST__INIT;
	Psfleet__V1__StatsReply *r = NULL;

	assert_int_equal(psf_rpc_client_open(f->urls[shard], NULL, &c), PSF_OK);
	assert_int_equal(psf_rpc_client_call(c, PSF_M_STATS, &req.base,
	                     &psfleet__v1__stats_reply__descriptor, NULL, (ProtobufCMessage **)&r,
	                     NULL),
	    PSF_OK);
	psf_rpc_client_close(c);
	return r;
}

#define SYNC_CFG "{mode: sync, straggler_timeout_ms: 20000, heartbeat_ms: 100}"
#define SGD1 "{kind: sgd, learning_rate: 1.0}"

/* Sync: the applied update is the average of both workers' gradients, and a pull
 * for the next step waits until the round is complete. */
static void
test_ps_sync_applies_average_and_pull_waits(void **state)
{
	fleet f;
	psf_ps_client *a, *b;
	psf_params *w0, *w1, *ga, *gb;

	(void)state;
	fleet_start(&f, 1, 2, SYNC_CFG, SGD1);
	a = worker(&f, "trainer-0");
	b = worker(&f, "trainer-1");
	w0 = pull_all(&f, a, 0);
	ga = grads_const(&f, 1.0f);
	gb = grads_const(&f, 3.0f);
	assert_int_equal(psf_ps_client_push(a, 0, ga, f.keys, f.n_keys, 8, 0.5, NULL), PSF_OK);
	/* trainer-1 has not pushed: round 0 is open, a pull for step 1 must wait */
	assert_int_equal(raw_pull(&f, 0, "trainer-0", 1, 300), PSF_ETIMEDOUT);
	assert_int_equal(psf_ps_client_push(b, 0, gb, f.keys, f.n_keys, 8, 0.5, NULL), PSF_OK);
	w1 = pull_all(&f, a, 1);
	for (size_t i = 0; i < f.n_keys; i++)
		for (uint32_t j = 0; j < f.lens[i]; j++)
			assert_float_equal(value(w1, f.keys[i], j), value(w0, f.keys[i], j) - 2.0f,
			    1e-6);
	psf_params_free(w0);
	psf_params_free(w1);
	psf_params_free(ga);
	psf_params_free(gb);
	psf_ps_client_close(a);
	psf_ps_client_close(b);
	fleet_stop(&f);
}

/* SSP s=2: the fast worker blocks at clock slowest+3 and goes on when the slow
 * one advances. */
static void
test_ps_ssp_blocks_fast_worker(void **state)
{
	fleet f;
	psf_ps_client *fast, *slow;
	psf_params *g, *p;
	psf_rpc_client *c;
	psf_rpc_pending *pend;
	Psfleet__V1__PullRequest req = PSFLEET__V1__PULL_REQUEST__INIT;
	Psfleet__V1__PullReply *r = NULL;
	psf_rpc_call_opts o = {10000, 0, 0};

	(void)state;
	fleet_start(&f, 1, 2,
	    "{mode: ssp, staleness: 2, straggler_timeout_ms: 20000, heartbeat_ms: 100}", SGD1);
	fast = worker(&f, "trainer-0");
	slow = worker(&f, "trainer-1");
	g = grads_const(&f, 0.1f);
	for (int64_t c0 = 0; c0 < 3; c0++) {
		p = pull_all(&f, fast, c0);
		psf_params_free(p);
		psf_push_result res;
		assert_int_equal(psf_ps_client_push(fast, c0, g, f.keys, f.n_keys, 1, 0, &res),
		    PSF_OK);
		assert_int_equal(res.max_staleness, c0); /* clock gap to the slow worker at 0 */
	}
	/* slowest clock 0, s = 2: clock 3 must wait */
	assert_int_equal(raw_pull(&f, 0, "trainer-0", 3, 300), PSF_ETIMEDOUT);
	assert_int_equal(psf_rpc_client_open(f.urls[0], NULL, &c), PSF_OK);
	req.worker = "trainer-0";
	req.clock = 3;
	req.n_keys = 1;
	req.keys = f.keys;
	assert_int_equal(psf_rpc_call_start(c, PSF_M_PULL, &req.base, &o, &pend), PSF_OK);
	p = pull_all(&f, slow, 0);
	assert_int_equal(psf_ps_client_push(slow, 0, g, f.keys, f.n_keys, 1, 0, NULL), PSF_OK);
	assert_int_equal(psf_rpc_pending_wait(pend, &psfleet__v1__pull_reply__descriptor,
	                     (ProtobufCMessage **)&r, NULL),
	    PSF_OK);
	assert_int_equal(r->model_version, 4); /* async-style: every push applied */
	protobuf_c_message_free_unpacked(&r->base, NULL);
	psf_rpc_pending_free(pend);
	psf_rpc_client_close(c);
	psf_params_free(p);
	psf_params_free(g);
	psf_ps_client_close(fast);
	psf_ps_client_close(slow);
	fleet_stop(&f);
}

/* A replayed push (same worker, same seq) is acknowledged and applied once. */
static void
test_ps_replayed_push_applied_once(void **state)
{
	fleet f;
	psf_rpc_client *c;
	Psfleet__V1__RegisterRequest reg = PSFLEET__V1__REGISTER_REQUEST__INIT;
	Psfleet__V1__PushRequest push = PSFLEET__V1__PUSH_REQUEST__INIT;
	ProtobufCMessage *m = NULL;
	Psfleet__V1__PushReply *r = NULL;
	Psfleet__V1__StatsReply *s;
	psf_ps_client *w;
	psf_params *w0, *w1;
	float ones[4] = {1, 1, 1, 1};

	(void)state;
	fleet_start(&f, 1, 1, "{mode: async}", SGD1);
	w = worker(&f, "trainer-0");
	w0 = pull_all(&f, w, 0);
	assert_int_equal(psf_rpc_client_open(f.urls[0], NULL, &c), PSF_OK);
	reg.worker = "trainer-0";
	assert_int_equal(psf_rpc_client_call(c, PSF_M_REGISTER, &reg.base,
	                     &psfleet__v1__register_reply__descriptor, NULL, &m, NULL),
	    PSF_OK);
	protobuf_c_message_free_unpacked(m, NULL);
	push.worker = "trainer-0";
	push.seq = 1;
	push.n_keys = push.n_lens = 1;
	push.keys = &f.keys[0];
	push.lens = &f.lens[0];
	push.values.data = (uint8_t *)ones;
	push.values.len = f.lens[0] * 4;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(psf_rpc_client_call(c, PSF_M_PUSH, &push.base,
		                     &psfleet__v1__push_reply__descriptor, NULL,
		                     (ProtobufCMessage **)&r, NULL),
		    PSF_OK);
		assert_int_equal(r->duplicate, i == 1);
		assert_int_equal(r->model_version, 1);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	w1 = pull_all(&f, w, 1);
	for (uint32_t j = 0; j < f.lens[0]; j++)
		assert_float_equal(value(w1, f.keys[0], j), value(w0, f.keys[0], j) - 1.0f, 1e-6);
	s = stats(&f, 0);
	assert_int_equal(s->pushes_applied, 1);
	assert_int_equal(s->pushes_duplicate, 1);
	protobuf_c_message_free_unpacked(&s->base, NULL);
	psf_rpc_client_close(c);
	psf_params_free(w0);
	psf_params_free(w1);
	psf_ps_client_close(w);
	fleet_stop(&f);
}

/* run_fleet drives three workers through `steps` sync steps whose gradients
 * depend on the pulled weights, and returns the final weights. */
static psf_params *
run_three_workers(fleet *f, int steps)
{
	psf_ps_client *w[3];
	char id[32];
	psf_params *final;

	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "trainer-%d", i);
		w[i] = worker(f, id);
	}
	for (int64_t c = 0; c < steps; c++) {
		for (int i = 0; i < 3; i++) {
			psf_params *p = pull_all(f, w[i], c), *g;
			assert_int_equal(psf_params_new(f->model, &g), PSF_OK);
			for (size_t k = 0; k < f->n_keys; k++) {
				float buf[8];
				for (uint32_t j = 0; j < f->lens[k]; j++)
					buf[j] = 0.3f * value(p, f->keys[k], j) +
					    0.01f * (float)(i + 1) * (float)(j + 1) -
					    0.02f * (float)c;
				assert_int_equal(psf_params_set_key(g, f->keys[k], buf, f->lens[k]),
				    PSF_OK);
			}
			assert_int_equal(
			    psf_ps_client_push(w[i], c, g, f->keys, f->n_keys, 4, 0, NULL), PSF_OK);
			psf_params_free(p);
			psf_params_free(g);
		}
	}
	final = pull_all(f, w[0], steps);
	for (int i = 0; i < 3; i++)
		psf_ps_client_close(w[i]);
	return final;
}

/* Two ps shards give bit-identical weights to one shard (adam, 6 sync steps). */
static void
test_ps_two_shards_match_single_node(void **state)
{
	fleet one, two;
	psf_params *a, *b;
	const char *adam = "{kind: adam, learning_rate: 0.05}";
	Psfleet__V1__StatsReply *s0, *s1;

	(void)state;
	fleet_start(&one, 1, 3, SYNC_CFG, adam);
	a = run_three_workers(&one, 6);
	fleet_start(&two, 2, 3, SYNC_CFG, adam);
	b = run_three_workers(&two, 6);
	s0 = stats(&two, 0);
	s1 = stats(&two, 1);
	assert_int_equal(s0->model_version, 6);
	assert_int_equal(s1->model_version, 6);
	protobuf_c_message_free_unpacked(&s0->base, NULL);
	protobuf_c_message_free_unpacked(&s1->base, NULL);
	for (size_t k = 0; k < one.n_keys; k++)
		for (uint32_t j = 0; j < one.lens[k]; j++) {
			float x = value(a, one.keys[k], j), y = value(b, one.keys[k], j);
			assert_memory_equal(&x, &y, sizeof(float));
			assert_true(fabsf(x) < 100.0f);
		}
	psf_params_free(a);
	psf_params_free(b);
	fleet_stop(&one);
	fleet_stop(&two);
}

/* A worker that never pushes does not stop sync rounds beyond the timeout. */
static void
test_ps_straggler_dropped_after_timeout(void **state)
{
	fleet f;
	psf_ps_client *a;
	psf_params *g, *p;
	Psfleet__V1__StatsReply *s;
	uint64_t t0;

	(void)state;
	fleet_start(&f, 1, 2, "{mode: sync, straggler_timeout_ms: 400, heartbeat_ms: 100}", SGD1);
	a = worker(&f, "trainer-0");
	g = grads_const(&f, 1.0f);
	assert_int_equal(psf_ps_client_push(a, 0, g, f.keys, f.n_keys, 1, 0, NULL), PSF_OK);
	t0 = psf_now_ms();
	p = pull_all(&f, a, 1); /* waits for the round to close without trainer-1 */
	assert_true(psf_now_ms() - t0 < 4000);
	s = stats(&f, 0);
	assert_int_equal(s->model_version, 1);
	for (size_t i = 0; i < s->n_workers; i++)
		if (strcmp(s->workers[i]->worker, "trainer-1") == 0)
			assert_false(s->workers[i]->live);
	protobuf_c_message_free_unpacked(&s->base, NULL);
	/* the next rounds need only trainer-0 */
	assert_int_equal(psf_ps_client_push(a, 1, g, f.keys, f.n_keys, 1, 0, NULL), PSF_OK);
	assert_int_equal(raw_pull(&f, 0, "trainer-0", 2, 2000), PSF_OK);
	psf_params_free(p);
	psf_params_free(g);
	psf_ps_client_close(a);
	fleet_stop(&f);
}

static psf_err
raw_push(fleet *f, const char *worker, uint64_t seq, const uint64_t *keys, const uint32_t *lens,
    size_t n, const float *vals, size_t n_vals, psf_rpc_status *st)
{
	psf_rpc_client *c;
	Psfleet__V1__PushRequest push = PSFLEET__V1__PUSH_REQUEST__INIT;
	ProtobufCMessage *r = NULL;
	psf_err err;

	assert_int_equal(psf_rpc_client_open(f->urls[0], NULL, &c), PSF_OK);
	push.worker = (char *)worker;
	push.seq = seq;
	push.n_keys = push.n_lens = n;
	push.keys = (uint64_t *)keys;
	push.lens = (uint32_t *)lens;
	push.values.data = (uint8_t *)vals;
	push.values.len = n_vals * 4;
	err = psf_rpc_client_call(c, PSF_M_PUSH, &push.base, &psfleet__v1__push_reply__descriptor,
	    NULL, &r, st);
	if (r != NULL)
		protobuf_c_message_free_unpacked(r, NULL);
	psf_rpc_client_close(c);
	return err;
}

/* Bad pushes get a clear status and change nothing. */
static void
test_ps_bad_pushes_rejected_nothing_applied(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_params *w0, *w1;
	psf_rpc_status st;
	float v[8] = {1, 1, 1, 1, 1, 1, 1, 1};
	uint64_t bad_key = psf_key(60, 0);
	uint32_t short_len;
	Psfleet__V1__StatsReply *s;

	(void)state;
	fleet_start(&f, 1, 1, "{mode: async}", SGD1);
	w = worker(&f, "trainer-0");
	w0 = pull_all(&f, w, 0);
	short_len = f.lens[0] - 1;
	assert_int_equal(raw_push(&f, "nobody", 1, f.keys, f.lens, 1, v, f.lens[0], &st),
	    PSF_ESTATE);
	assert_int_equal(st.code, PSF_STATUS_FAILED_PRECONDITION);
	assert_non_null(strstr(st.message, "not registered"));
	assert_int_equal(raw_push(&f, "trainer-0", 1, &bad_key, f.lens, 1, v, f.lens[0], &st),
	    PSF_EINVAL);
	assert_non_null(strstr(st.message, "unknown key"));
	assert_int_equal(raw_push(&f, "trainer-0", 1, f.keys, &short_len, 1, v, short_len, &st),
	    PSF_EINVAL);
	assert_int_equal(raw_push(&f, "trainer-0", 1, f.keys, f.lens, 1, v, f.lens[0] + 1, &st),
	    PSF_EINVAL);
	v[1] = NAN;
	assert_int_equal(raw_push(&f, "trainer-0", 1, f.keys, f.lens, 1, v, f.lens[0], &st),
	    PSF_EINVAL);
	assert_non_null(strstr(st.message, "NaN"));
	uint64_t unsorted[2] = {f.keys[1], f.keys[0]};
	uint32_t ul[2] = {f.lens[1], f.lens[0]};
	v[1] = 1;
	assert_int_equal(raw_push(&f, "trainer-0", 1, unsorted, ul, 2, v, ul[0] + ul[1], &st),
	    PSF_EINVAL);
	w1 = pull_all(&f, w, 0);
	for (size_t k = 0; k < f.n_keys; k++)
		for (uint32_t j = 0; j < f.lens[k]; j++)
			assert_float_equal(value(w1, f.keys[k], j), value(w0, f.keys[k], j), 0);
	s = stats(&f, 0);
	assert_int_equal(s->pushes_applied, 0);
	assert_int_equal(s->pushes_rejected, 5);
	assert_int_equal(s->model_version, 0);
	protobuf_c_message_free_unpacked(&s->base, NULL);
	psf_params_free(w0);
	psf_params_free(w1);
	psf_ps_client_close(w);
	fleet_stop(&f);
}

/* A snapshot fetched in small pieces has every key once, at one version. */
static void
test_ps_snapshot_in_pieces(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_params *g;
	psf_rpc_client *c;
	Psfleet__V1__SnapshotRequest req = PSFLEET__V1__SNAPSHOT_REQUEST__INIT;
	Psfleet__V1__SnapshotReply *r = NULL;
	psf_rpc_status st;
	size_t seen = 0, pieces = 0;
	uint64_t version = 0;

	(void)state;
	fleet_start(&f, 1, 1, "{mode: async}", SGD1);
	w = worker(&f, "trainer-0");
	g = grads_const(&f, 0.5f);
	assert_int_equal(psf_ps_client_push(w, 0, g, f.keys, f.n_keys, 1, 0, NULL), PSF_OK);
	assert_int_equal(psf_rpc_client_open(f.urls[0], NULL, &c), PSF_OK);
	req.max_bytes = 20; /* one key per piece */
	for (;;) {
		assert_int_equal(psf_rpc_client_call(c, PSF_M_SNAPSHOT, &req.base,
		                     &psfleet__v1__snapshot_reply__descriptor, NULL,
		                     (ProtobufCMessage **)&r, &st),
		    PSF_OK);
		if (pieces == 0)
			version = r->version;
		assert_int_equal(r->version, version);
		for (size_t i = 0; i < r->n_keys; i++)
			assert_int_equal(r->keys[i], f.keys[seen++]);
		pieces++;
		bool done = r->done;
		req.start_key = r->next_key;
		req.version = version;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (done)
			break;
	}
	assert_int_equal(version, 1);
	assert_int_equal(seen, f.n_keys);
	assert_true(pieces >= f.n_keys / 2);
	req.version = 999;
	assert_int_equal(psf_rpc_client_call(c, PSF_M_SNAPSHOT, &req.base,
	                     &psfleet__v1__snapshot_reply__descriptor, NULL,
	                     (ProtobufCMessage **)&r, &st),
	    PSF_ENOENT);
	psf_rpc_client_close(c);
	psf_params_free(g);
	psf_ps_client_close(w);
	fleet_stop(&f);
}

/* Restart resumes from LMDB; an incompatible config is refused unless reset. */
static void
test_ps_restart_resumes_and_checks_config(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_params *g;
	psf_config *other = NULL;
	psf_ps *ps = NULL;
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};
	char text[4096], err[512];

	(void)state;
	fleet_start(&f, 1, 1, "{mode: async}", SGD1);
	w = worker(&f, "trainer-0");
	g = grads_const(&f, 0.5f);
	assert_int_equal(psf_ps_client_push(w, 0, g, f.keys, f.n_keys, 1, 0, NULL), PSF_OK);
	assert_int_equal(psf_ps_client_push(w, 1, g, f.keys, f.n_keys, 1, 0, NULL), PSF_OK);
	psf_ps_client_close(w);
	psf_ps_free(f.ps[0]);
	assert_int_equal(psf_ps_new(f.cfg, &f.cfg->nodes[0], &opts, &f.ps[0]), PSF_OK);
	f.urls[0] = psf_ps_url(f.ps[0]);
	w = worker(&f, "trainer-0");
	assert_int_equal(psf_ps_client_clock(w), 2); /* resumed */
	psf_ps_client_close(w);
	psf_ps_free(f.ps[0]);
	f.ps[0] = NULL;

	cfg_text(text, sizeof(text), f.dir, 1, 1, "{mode: async}", SGD1, "5");
	assert_int_equal(psf_config_parse("t2.yaml", text, strlen(text), err, sizeof(err), &other),
	    PSF_OK);
	assert_int_equal(psf_ps_new(other, &other->nodes[0], &opts, &ps), PSF_ECONFIG);
	opts.reset = true;
	assert_int_equal(psf_ps_new(other, &other->nodes[0], &opts, &ps), PSF_OK);
	psf_ps_free(ps);
	psf_config_free(other);
	psf_params_free(g);
	fleet_stop(&f);
}

/* resume_with starts ps0 of a fleet like f's but with another optimizer and
 * consistency section; returns psf_ps_new's result (the ps is freed again). */
static psf_err
resume_with(fleet *f, const char *consistency, const char *optimizer, psf_ps_reset reset,
    int64_t *clock)
{
	psf_ps_opts opts = {reset, "tcp://127.0.0.1:0", "", NULL};
	psf_config *cfg = NULL;
	psf_ps *ps = NULL;
	char text[4096], err[512];
	psf_err rv;

	cfg_text(text, sizeof(text), f->dir, 1, 1, consistency, optimizer, "4");
	assert_int_equal(psf_config_parse("t3.yaml", text, strlen(text), err, sizeof(err), &cfg),
	    PSF_OK);
	rv = psf_ps_new(cfg, &cfg->nodes[0], &opts, &ps);
	if (rv == PSF_OK) {
		const char *url = psf_ps_url(ps);
		psf_ps_client_opts wo = {&url, 5000, NULL, NULL};
		psf_ps_client *w;

		assert_int_equal(psf_ps_client_open(cfg, f->model, "trainer-0", &wo, &w), PSF_OK);
		*clock = psf_ps_client_clock(w);
		psf_ps_client_close(w);
	}
	psf_ps_free(ps);
	psf_config_free(cfg);
	return rv;
}

/* A store is resumed only with the training settings it was trained with:
 * another learning rate or consistency mode is refused (PSF_ECONFIG) unless
 * reset; a key the optimizer does not use (momentum for sgd) does not count;
 * PSF_PS_RESET_ALWAYS starts afresh from a store that fits. */
static void
test_ps_restart_checks_training_settings(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_params *g;
	int64_t clock = -1;

	(void)state;
	fleet_start(&f, 1, 1, "{mode: async}", SGD1);
	w = worker(&f, "trainer-0");
	g = grads_const(&f, 0.5f);
	assert_int_equal(psf_ps_client_push(w, 0, g, f.keys, f.n_keys, 1, 0, NULL), PSF_OK);
	assert_int_equal(psf_ps_client_push(w, 1, g, f.keys, f.n_keys, 1, 0, NULL), PSF_OK);
	psf_ps_client_close(w);
	psf_ps_free(f.ps[0]);
	f.ps[0] = NULL;

	assert_int_equal(resume_with(&f, "{mode: async}", "{kind: sgd, learning_rate: 0.5}",
	                     PSF_PS_RESET_NONE, &clock),
	    PSF_ECONFIG);
	assert_int_equal(resume_with(&f, "{mode: sync}", SGD1, PSF_PS_RESET_NONE, &clock),
	    PSF_ECONFIG);
	assert_int_equal(resume_with(&f, "{mode: async, heartbeat_ms: 300}",
	                     "{kind: sgd, learning_rate: 1.0, momentum: 0.5}", PSF_PS_RESET_NONE,
	                     &clock),
	    PSF_OK);
	assert_int_equal(clock, 2); /* resumed: neither key counts */
	assert_int_equal(resume_with(&f, "{mode: async}", SGD1, PSF_PS_RESET_ALWAYS, &clock),
	    PSF_OK);
	assert_int_equal(clock, 0); /* afresh */
	assert_int_equal(resume_with(&f, "{mode: async}", "{kind: sgd, learning_rate: 0.5}",
	                     PSF_PS_RESET_MISFIT, &clock),
	    PSF_OK);
	assert_int_equal(clock, 0);
	assert_int_equal(resume_with(&f, "{mode: async}", "{kind: sgd, learning_rate: 0.5}",
	                     PSF_PS_RESET_NONE, &clock),
	    PSF_OK); /* now trained with 0.5 */
	psf_params_free(g);
	fleet_stop(&f);
}

/* raw_assign sends one Assign of keys[0] (n floats of v) with seq to shard 0;
 * returns the status code and, when OK, the reply's fields. */
static psf_status
raw_assign(fleet *f, const char *worker, uint64_t seq, uint32_t n, float v, bool *dup,
    uint64_t *version)
{
	psf_rpc_client *c;
	Psfleet__V1__AssignRequest req = PSFLEET__V1__ASSIGN_REQUEST__INIT;
	Psfleet__V1__AssignReply *r = NULL;
	psf_rpc_status st;
	float vals[64];

	for (uint32_t j = 0; j < 64; j++)
		vals[j] = v;
	assert_int_equal(psf_rpc_client_open(f->urls[0], NULL, &c), PSF_OK);
	req.worker = (char *)worker;
	req.seq = seq;
	req.n_keys = req.n_lens = 1;
	req.keys = &f->keys[0];
	req.lens = &n;
	req.values.data = (uint8_t *)vals;
	req.values.len = (size_t)n * 4;
	memset(&st, 0, sizeof(st));
	if (psf_rpc_client_call(c, PSF_M_ASSIGN, &req.base, &psfleet__v1__assign_reply__descriptor,
	        NULL, (ProtobufCMessage **)&r, &st) == PSF_OK) {
		*dup = r->duplicate;
		*version = r->model_version;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	psf_rpc_client_close(c);
	return st.code;
}

/* Assign sets values (no optimizer), bumps the version of every shard, is
 * applied once per (worker, seq), refuses bad input without applying anything,
 * and survives a ps restart (every-commit). */
static void
test_ps_assign_once_and_durable(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_params *vals, *got;
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};
	Psfleet__V1__StatsReply *s;
	uint64_t v = 0;
	bool dup = false;

	(void)state;
	fleet_start(&f, 2, 1, SYNC_CFG, SGD1);
	w = worker(&f, "trainer-0");
	vals = grads_const(&f, 2.5f);
	assert_int_equal(psf_ps_client_assign(w, vals, f.keys, f.n_keys, &v), PSF_OK);
	assert_int_equal(v, 1);
	for (size_t sh = 0; sh < 2; sh++) { /* every shard moved to version 1 */
		s = stats(&f, sh);
		assert_int_equal(s->model_version, 1);
		assert_int_equal(s->pushes_applied, 0); /* not a push */
		protobuf_c_message_free_unpacked(&s->base, NULL);
	}
	got = pull_all(&f, w, 0);
	for (size_t i = 0; i < f.n_keys; i++)
		for (uint32_t j = 0; j < f.lens[i]; j++)
			assert_true(value(got, f.keys[i], j) == 2.5f); /* set, not stepped */
	psf_params_free(got);
	psf_params_free(vals); /* made for this fleet's model */
	psf_ps_client_close(w);
	fleet_stop(&f);

	fleet_start(&f, 1, 1, SYNC_CFG, SGD1);
	w = worker(&f, "trainer-0");
	vals = grads_const(&f, 2.5f);
	assert_int_equal(psf_ps_client_assign(w, vals, f.keys, f.n_keys, &v), PSF_OK);
	assert_int_equal(v, 1);
	/* the same seq again (a retry): duplicate, nothing changes */
	assert_int_equal(raw_assign(&f, "trainer-0", 1, f.lens[0], 9.0f, &dup, &v), PSF_STATUS_OK);
	assert_true(dup);
	assert_int_equal(v, 1);
	/* bad input: wrong length, NaN, an unknown worker; nothing is applied */
	assert_int_equal(raw_assign(&f, "trainer-0", 2, f.lens[0] + 1, 9.0f, &dup, &v),
	    PSF_STATUS_INVALID_ARGUMENT);
	assert_int_equal(raw_assign(&f, "trainer-0", 2, f.lens[0], NAN, &dup, &v),
	    PSF_STATUS_INVALID_ARGUMENT);
	assert_int_equal(raw_assign(&f, "nobody", 2, f.lens[0], 9.0f, &dup, &v),
	    PSF_STATUS_FAILED_PRECONDITION);
	got = pull_all(&f, w, 0);
	assert_true(value(got, f.keys[0], 0) == 2.5f);
	psf_params_free(got);
	psf_ps_client_close(w);
	/* restart: the values, the version and the worker's seq are back */
	psf_ps_free(f.ps[0]);
	assert_int_equal(psf_ps_new(f.cfg, &f.cfg->nodes[0], &opts, &f.ps[0]), PSF_OK);
	f.urls[0] = psf_ps_url(f.ps[0]);
	w = worker(&f, "trainer-0");
	assert_int_equal(raw_assign(&f, "trainer-0", 1, f.lens[0], 9.0f, &dup, &v), PSF_STATUS_OK);
	assert_true(dup); /* seq 1 was recorded durably */
	s = stats(&f, 0);
	assert_int_equal(s->model_version, 1);
	protobuf_c_message_free_unpacked(&s->base, NULL);
	got = pull_all(&f, w, 0);
	for (uint32_t j = 0; j < f.lens[0]; j++)
		assert_true(value(got, f.keys[0], j) == 2.5f);
	psf_params_free(got);
	/* the next Assign gets the next seq and version */
	assert_int_equal(raw_assign(&f, "trainer-0", 2, f.lens[0], 4.0f, &dup, &v), PSF_STATUS_OK);
	assert_false(dup);
	assert_int_equal(v, 2);
	psf_params_free(vals);
	psf_ps_client_close(w);
	fleet_stop(&f);
}

/* Reduce sums contributions once each and answers everyone. */
static void
test_ps_reduce_sums_once(void **state)
{
	fleet f;
	psf_ps_client *a, *b;
	double va[2] = {1, 2}, vb[2] = {3, 4};
	double again[2] = {1, 2};

	(void)state;
	fleet_start(&f, 1, 2, SYNC_CFG, SGD1);
	a = worker(&f, "trainer-0");
	b = worker(&f, "trainer-1");
	/* trainer-0's contribution (a raw call left pending) parks until trainer-1's
	 * arrives; then both get the sums. */
	{
		psf_rpc_client *c;
		psf_rpc_pending *pend;
		Psfleet__V1__ReduceRequest req = PSFLEET__V1__REDUCE_REQUEST__INIT;
		Psfleet__V1__ReduceReply *r = NULL;

		assert_int_equal(psf_rpc_client_open(f.urls[0], NULL, &c), PSF_OK);
		req.worker = "trainer-0";
		req.name = "stats";
		req.expected = 2;
		req.n_values = 2;
		req.values = va;
		assert_int_equal(psf_rpc_call_start(c, PSF_M_REDUCE, &req.base, NULL, &pend),
		    PSF_OK);
		assert_int_equal(psf_ps_client_reduce(b, "stats", 2, vb, 2), PSF_OK);
		assert_int_equal(psf_rpc_pending_wait(pend, &psfleet__v1__reduce_reply__descriptor,
		                     (ProtobufCMessage **)&r, NULL),
		    PSF_OK);
		assert_float_equal(r->values[0], 4, 0);
		assert_float_equal(r->values[1], 6, 0);
		protobuf_c_message_free_unpacked(&r->base, NULL);
		psf_rpc_pending_free(pend);
		psf_rpc_client_close(c);
	}
	assert_float_equal(vb[0], 4, 0);
	assert_float_equal(vb[1], 6, 0);
	/* a retried contribution is not added again */
	assert_int_equal(psf_ps_client_reduce(a, "stats", 2, again, 2), PSF_OK);
	assert_float_equal(again[0], 4, 0);
	assert_float_equal(again[1], 6, 0);
	psf_ps_client_close(a);
	psf_ps_client_close(b);
	fleet_stop(&f);
}

/* Reduce names are bounded (each holds memory and store for the whole run): 64
 * names are served, the 65th is RESOURCE_EXHAUSTED, a known name still works. */
static void
test_ps_reduce_names_bounded(void **state)
{
	fleet f;
	psf_ps_client *a;
	psf_rpc_client *c;
	psf_rpc_status st;
	char name[32];
	double v[1];

	(void)state;
	fleet_start(&f, 1, 1, SYNC_CFG, SGD1);
	a = worker(&f, "trainer-0");
	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		v[0] = i;
		assert_int_equal(psf_ps_client_reduce(a, name, 1, v, 1), PSF_OK);
		assert_float_equal(v[0], i, 0);
	}
	assert_int_equal(psf_rpc_client_open(f.urls[0], NULL, &c), PSF_OK);
	{
		Psfleet__V1__ReduceRequest req = PSFLEET__V1__REDUCE_REQUEST__INIT;
		ProtobufCMessage *r = NULL;
		req.worker = "trainer-0";
		req.name = "one-too-many";
		req.expected = 1;
		req.n_values = 1;
		req.values = v;
		assert_int_not_equal(psf_rpc_client_call(c, PSF_M_REDUCE, &req.base,
		                         &psfleet__v1__reduce_reply__descriptor, NULL, &r, &st),
		    PSF_OK);
		assert_int_equal(st.code, PSF_STATUS_RESOURCE_EXHAUSTED);
	}
	psf_rpc_client_close(c);
	v[0] = 5;
	assert_int_equal(psf_ps_client_reduce(a, "r7", 1, v, 1), PSF_OK); /* done: its sums */
	assert_float_equal(v[0], 7, 0);
	psf_ps_client_close(a);
	fleet_stop(&f);
}

/* NaN/Inf in a gradient: found while applying (no clipping) by the async apply
 * and the sync accumulator alike, nothing applied; found by the norm pass with
 * clipping; acknowledged with nothing applied under skip_nonfinite. */
static void
test_ps_nonfinite_gradients(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_params *w0, *w1, *g;
	psf_rpc_status st;
	Psfleet__V1__StatsReply *s;
	float v[16];
	size_t n;
	const char *opts[3] = {SGD1, "{kind: sgd, learning_rate: 1.0, clip_norm: 1000000}",
	    "{kind: sgd, learning_rate: 1.0, skip_nonfinite: true}"};

	(void)state;
	for (int k = 0; k < 3; k++) {
		fleet_start(&f, 1, 1, k == 0 ? SYNC_CFG : "{mode: async}", opts[k]);
		w = worker(&f, "trainer-0");
		w0 = pull_all(&f, w, 0);
		n = f.lens[0] + f.lens[1];
		assert_true(n <= 16);
		for (size_t i = 0; i < n; i++)
			v[i] = 0.5f;
		v[n - 1] = k == 1 ? NAN : INFINITY; /* in the second key: the first was fine */
		if (k < 2) {
			assert_int_equal(raw_push(&f, "trainer-0", 1, f.keys, f.lens, 2, v, n, &st),
			    PSF_EINVAL);
			assert_non_null(strstr(st.message, "NaN or Inf"));
			/* the worker's own push (seq 1) is applied normally afterwards */
			g = grads_const(&f, 1.0f);
			assert_int_equal(psf_ps_client_push(w, 0, g, f.keys, f.n_keys, 1, 0, NULL),
			    PSF_OK);
			psf_params_free(g);
		} else {
			assert_int_equal(raw_push(&f, "trainer-0", 1, f.keys, f.lens, 2, v, n, &st),
			    PSF_OK);
		}
		w1 = pull_all(&f, w, 1);
		for (size_t i = 0; i < f.n_keys; i++)
			for (uint32_t j = 0; j < f.lens[i]; j++)
				assert_float_equal(value(w1, f.keys[i], j),
				    value(w0, f.keys[i], j) - (k < 2 ? 1.0f : 0.0f), 1e-6);
		s = stats(&f, 0);
		assert_int_equal(s->model_version, 1);
		assert_int_equal(s->pushes_applied, 1);
		assert_int_equal(s->pushes_rejected, k < 2 ? 1 : 0);
		protobuf_c_message_free_unpacked(&s->base, NULL);
		psf_params_free(w0);
		psf_params_free(w1);
		psf_ps_client_close(w);
		fleet_stop(&f);
	}
}

/* A pull larger than the worker's request pieces (1 MiB of values, up to 16 in
 * flight) comes back whole: one-key pieces packed straight from the store,
 * pieces of several keys, and more pieces than the window. A push of the same
 * size (its gradients packed in place) is applied once. */
static void
test_ps_big_pull_and_push_in_pieces(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_params *w0, *w1, *g;
	uint64_t version = 0;
	size_t floats = 0;

	(void)state;
	/* 3 inputs; hidden [65536, 64] with 1 MiB chunks: l1.w is 16 one-key pieces */
	fleet_start_model(&f, 1, 1, "{mode: async}", SGD1, "65536, 64", 262144);
	for (size_t i = 0; i < f.n_keys; i++)
		floats += f.lens[i];
	assert_true(floats * 4 > 17 * 1000000);
	w = worker(&f, "trainer-0");
	w0 = pull_all(&f, w, 0);
	g = grads_const(&f, 0.25f);
	assert_int_equal(psf_ps_client_push(w, 0, g, f.keys, f.n_keys, 1, 0, NULL), PSF_OK);
	assert_int_equal(psf_params_new(f.model, &w1), PSF_OK);
	assert_int_equal(psf_ps_client_pull(w, 1, f.keys, f.n_keys, w1, &version), PSF_OK);
	assert_int_equal(version, 1);
	for (size_t k = 0; k < f.n_keys; k++) {
		const float *a, *b;
		uint32_t la, lb;
		assert_int_equal(psf_params_get_key(w0, f.keys[k], &a, &la), PSF_OK);
		assert_int_equal(psf_params_get_key(w1, f.keys[k], &b, &lb), PSF_OK);
		assert_int_equal(la, lb);
		for (uint32_t j = 0; j < la; j++)
			if (b[j] != a[j] - 0.25f)
				fail_msg("key %zu float %u: %g, want %g", k, j, (double)b[j],
				    (double)(a[j] - 0.25f));
	}
	psf_params_free(w0);
	psf_params_free(w1);
	psf_params_free(g);
	psf_ps_client_close(w);
	fleet_stop(&f);
}

/* grads_ramp gives every dense key a gradient that differs float by float (and a
 * NaN at float nan_at of key nan_key when nan_key < n_keys). */
static psf_params *
grads_ramp(fleet *f, float base, size_t nan_key, uint32_t nan_at)
{
	psf_params *g;
	float *buf = NULL;
	uint32_t max = 0;

	for (size_t i = 0; i < f->n_keys; i++)
		max = f->lens[i] > max ? f->lens[i] : max;
	assert_non_null(buf = malloc(max * sizeof(float)));
	assert_int_equal(psf_params_new(f->model, &g), PSF_OK);
	for (size_t i = 0; i < f->n_keys; i++) {
		for (uint32_t j = 0; j < f->lens[i]; j++)
			buf[j] = base * (float)((j * 7 + i * 3) % 101 - 50) / 50.0f;
		if (i == nan_key)
			buf[nan_at] = NAN;
		assert_int_equal(psf_params_set_key(g, f->keys[i], buf, f->lens[i]), PSF_OK);
	}
	free(buf);
	return g;
}

/* On an interval store an update reads the old weights (and state) where LMDB
 * keeps them and writes the new ones into freshly reserved values
 * (psf_store_txn_rewrite); small values go through scratch. The weights must be
 * bit-identical to the rule applied in place, key by key, for every rule, over
 * two pushes (state carried); and a NaN in the last large key, after the other
 * keys were rewritten, rejects the whole push with nothing applied. */
static void
test_ps_large_update_interval_bit_identical(void **state)
{
	static const char *const optims[] = {
	    "{kind: sgd, learning_rate: 0.5}",
	    "{kind: momentum, learning_rate: 0.1, momentum: 0.9}",
	    "{kind: adam, learning_rate: 0.01}",
	    "{kind: adagrad, learning_rate: 0.1}",
	};

	(void)state;
	durability = "interval";
	for (size_t o = 0; o < sizeof(optims) / sizeof(optims[0]); o++) {
		fleet f;
		psf_ps_client *w;
		psf_params *ref, *got, *g[2], *bad;
		float *st[64] = {0};
		size_t sf, last, k;

		/* 3 inputs, hidden [40000, 8], 100,000-float chunks: l1.w is keys of
		 * 100,000 and 20,000 floats, l1.b one of 40,000, l2.w three of 100,000
		 * and one of 20,000: 1.9 MB on overflow pages, plus small keys that
		 * live inside leaf pages. */
		fleet_start_model(&f, 1, 1, "{mode: async}", optims[o], "40000, 8", 100000);
		assert_true(f.n_keys < 64);
		sf = psf_optim_state_floats(f.cfg->optimizer.kind);
		w = worker(&f, "trainer-0");
		ref = pull_all(&f, w, 0);
		g[0] = grads_ramp(&f, 0.5f, SIZE_MAX, 0);
		g[1] = grads_ramp(&f, -0.25f, SIZE_MAX, 0);
		for (int step = 0; step < 2; step++) {
			assert_int_equal(
			    psf_ps_client_push(w, step, g[step], f.keys, f.n_keys, 1, 0, NULL),
			    PSF_OK);
			for (k = 0; k < f.n_keys; k++) {
				const float *gv, *cur;
				float *wv;
				uint32_t n;
				assert_int_equal(psf_params_get_key(g[step], f.keys[k], &gv, &n),
				    PSF_OK);
				assert_int_equal(psf_params_get_key(ref, f.keys[k], &cur, &n),
				    PSF_OK);
				assert_non_null(wv = malloc(n * sizeof(float)));
				memcpy(wv, cur, n * sizeof(float));
				if (st[k] == NULL)
					assert_non_null(st[k] = calloc(n * sf + 1, sizeof(float)));
				assert_int_equal(psf_optim_apply(&f.cfg->optimizer,
				                     (uint64_t)step + 1, wv, st[k], gv, n, 1.0f,
				                     0.0),
				    PSF_OK);
				assert_int_equal(psf_params_set_key(ref, f.keys[k], wv, n), PSF_OK);
				free(wv);
			}
		}
		/* a NaN at the end of the last large key */
		for (last = 0, k = 0; k < f.n_keys; k++)
			last = f.lens[k] >= 16384 ? k : last;
		bad = grads_ramp(&f, 1.0f, last, f.lens[last] - 1);
		assert_int_equal(psf_ps_client_push(w, 2, bad, f.keys, f.n_keys, 1, 0, NULL),
		    PSF_EINVAL);
		got = pull_all(&f, w, 3);
		for (k = 0; k < f.n_keys; k++) {
			const float *a, *b;
			uint32_t la, lb;
			assert_int_equal(psf_params_get_key(ref, f.keys[k], &a, &la), PSF_OK);
			assert_int_equal(psf_params_get_key(got, f.keys[k], &b, &lb), PSF_OK);
			assert_int_equal(la, lb);
			if (memcmp(a, b, la * sizeof(float)) != 0)
				fail_msg("%s: key %zu (%u floats) differs", optims[o], k, la);
			free(st[k]);
		}
		psf_params_free(ref);
		psf_params_free(got);
		psf_params_free(g[0]);
		psf_params_free(g[1]);
		psf_params_free(bad);
		psf_ps_client_close(w);
		fleet_stop(&f);
	}
	durability = "every-commit";
}

/* raw_call sends a serialized request as is and returns the reply status. */
static psf_status
raw_call(psf_rpc_client *c, const char *method, const uint8_t *buf, size_t len, char *msg,
    size_t msg_len)
{
	psf_rpc_pending *p;
	psf_rpc_status st;
	const uint8_t *reply;
	size_t reply_len;
	psf_rpc_call_opts o = {5000, 0, 0};

	assert_int_equal(psf_rpc_call_start_raw(c, method, buf, len, &o, &p), PSF_OK);
	if (psf_rpc_pending_wait_raw(p, &reply, &reply_len, &st) == PSF_OK)
		assert_int_equal(st.code, PSF_STATUS_OK);
	psf_rpc_pending_free(p);
	snprintf(msg, msg_len, "%s", st.message);
	return st.code;
}

/* mutate writes mutation i of buf[0..len) into mut: 1-4 bit flips, and every
 * third time a prefix of up to max_random-1 random bytes instead (the returned
 * length). *rnd is the generator's state (an LCG). */
static size_t
mutate(uint8_t *mut, const uint8_t *buf, size_t len, int i, size_t max_random, uint64_t *rnd)
{
	size_t n = len;

	memcpy(mut, buf, len);
	for (int k = 0; k < 1 + i % 4; k++) {
		*rnd = *rnd * 6364136223846793005ull + 1442695040888963407ull;
		mut[(*rnd >> 33) % n] ^= (uint8_t)(1u << ((*rnd >> 20) % 8));
	}
	if (i % 3 == 2) {
		*rnd = *rnd * 6364136223846793005ull + 1442695040888963407ull;
		n = (size_t)(*rnd >> 40) % max_random;
		for (size_t j = 0; j < n; j++) {
			*rnd = *rnd * 6364136223846793005ull + 1442695040888963407ull;
			mut[j] = (uint8_t)(*rnd >> 56);
		}
	}
	return n;
}

/* check_push_bytes sends buf as a PushRequest: the ps must answer (never crash
 * or drop the connection), and call it malformed exactly when protobuf-c could
 * not unpack it. */
static void
check_push_bytes(psf_rpc_client *c, const uint8_t *buf, size_t len)
{
	char msg[256];
	ProtobufCMessage *m =
	    protobuf_c_message_unpack(&psfleet__v1__push_request__descriptor, NULL, len, buf);
	psf_status code = raw_call(c, PSF_M_PUSH, buf, len, msg, sizeof(msg));
	bool malformed = strstr(msg, "malformed") != NULL;

	assert_true(code != PSF_STATUS_UNAVAILABLE && code != PSF_STATUS_DEADLINE_EXCEEDED &&
	    code != PSF_STATUS_INTERNAL);
	if ((m == NULL) != malformed)
		fail_msg("%zu bytes: protobuf-c %s it, the ps said %d '%s'", len,
		    m == NULL ? "refuses" : "accepts", (int)code, msg);
	if (malformed)
		assert_int_equal(code, PSF_STATUS_INVALID_ARGUMENT);
	if (m != NULL)
		protobuf_c_message_free_unpacked(m, NULL);
}

/* The zero-copy Push parser: every truncation of a real push, byte flips and
 * random bytes get an answer, INVALID_ARGUMENT exactly when protobuf-c refuses
 * the bytes; a valid push is applied once, and the ps still serves afterwards. */
static void
test_ps_raw_push_malformed_rejected(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_rpc_client *c;
	Psfleet__V1__PushRequest push = PSFLEET__V1__PUSH_REQUEST__INIT;
	Psfleet__V1__StatsReply *s;
	float vals[64];
	uint32_t lens[2];
	uint8_t buf[1024], mut[1024];
	size_t len, n_vals;
	char msg[256];
	uint64_t rnd = 0x9e3779b97f4a7c15ull;

	(void)state;
	fleet_start(&f, 1, 1, "{mode: async}", SGD1);
	w = worker(&f, "trainer-0");
	assert_int_equal(psf_rpc_client_open(f.urls[0], NULL, &c), PSF_OK);
	lens[0] = f.lens[0];
	lens[1] = f.lens[1];
	n_vals = lens[0] + lens[1];
	for (size_t i = 0; i < n_vals; i++)
		vals[i] = 0.5f;
	push.worker = "trainer-0";
	push.seq = 1000;
	push.clock = 3;
	push.n_keys = push.n_lens = 2;
	push.keys = f.keys;
	push.lens = lens;
	push.values.data = (uint8_t *)vals;
	push.values.len = n_vals * 4;
	push.n_samples = 8;
	push.loss = 0.5;
	len = protobuf_c_message_get_packed_size(&push.base);
	assert_true(len <= sizeof(buf));
	protobuf_c_message_pack(&push.base, buf);

	/* Truncations first, with a seq the worker never reaches, then the whole. */
	for (size_t t = 0; t < len; t++)
		check_push_bytes(c, buf, t);
	assert_int_equal(raw_call(c, PSF_M_PUSH, buf, len, msg, sizeof(msg)), PSF_STATUS_OK);
	/* Byte flips and random bytes. */
	for (int i = 0; i < 1500; i++) {
		size_t n = mutate(mut, buf, len, i, 48, &rnd);
		check_push_bytes(c, mut, n);
	}
	/* Hand-made corner cases: a packed key list with a cut varint, keys given
	 * one by one (unpacked), a field with the wrong wire type, a group. */
	{
		static const uint8_t cut[] = {0x22, 0x02, 0x81, 0x80};
		static const uint8_t group[] = {0x4b, 0x4c};
		static const uint8_t wrong[] = {0x12, 0x01, 0x00};
		uint8_t unpacked[64];
		size_t n = 0;
		check_push_bytes(c, cut, sizeof(cut));
		check_push_bytes(c, group, sizeof(group));
		check_push_bytes(c, wrong, sizeof(wrong));
		unpacked[n++] = 0x0a;
		unpacked[n++] = 9;
		memcpy(unpacked + n, "trainer-0", 9);
		n += 9;
		unpacked[n++] = 0x10; /* seq 2000 */
		n += psf_wire_put_varint(unpacked + n, 2000);
		unpacked[n++] = 0x20; /* one key, unpacked */
		n += psf_wire_put_varint(unpacked + n, f.keys[0]);
		unpacked[n++] = 0x28; /* its len, unpacked */
		n += psf_wire_put_varint(unpacked + n, f.lens[0]);
		unpacked[n++] = 0x32;
		unpacked[n++] = (uint8_t)(f.lens[0] * 4);
		memcpy(unpacked + n, vals, f.lens[0] * 4);
		n += f.lens[0] * 4;
		check_push_bytes(c, unpacked, n);
		assert_int_equal(raw_call(c, PSF_M_PUSH, unpacked, n, msg, sizeof(msg)),
		    PSF_STATUS_OK);
	}
	psf_rpc_client_close(c);
	s = stats(&f, 0);
	assert_true(s->pushes_applied >= 2);
	protobuf_c_message_free_unpacked(&s->base, NULL);
	psf_ps_client_close(w);
	fleet_stop(&f);
}

/* A fake ps shard on a plain rep0 socket: registers anyone, and answers every
 * Pull with `pull` as the PullReply bytes, whatever they are. */
typedef struct fake_ps {
	nng_socket sock;
	char url[64];
	pthread_t th;
	const uint8_t *pull;
	size_t pull_len;
} fake_ps;

static void *
fake_ps_main(void *arg)
{
	fake_ps *fp = arg;
	nng_msg *m;

	while (nng_recvmsg(fp->sock, &m, 0) == 0) {
		Psfleet__V1__RegisterReply reg = PSFLEET__V1__REGISTER_REPLY__INIT;
		psf_wire_request req;
		uint8_t head[PSF_WIRE_HEAD_MAX], body[64];
		const uint8_t *payload = body;
		size_t len = 0, hl;
		nng_msg *r;

		assert_int_equal(psf_wire_decode_request(nng_msg_body(m), nng_msg_len(m), &req),
		    PSF_OK);
		if (req.method_len > 5 &&
		    memcmp(req.method + req.method_len - 5, "/Pull", 5) == 0) {
			payload = fp->pull;
			len = fp->pull_len;
		} else {
			reg.num_shards = 1;
			len = protobuf_c_message_pack(&reg.base, body);
		}
		hl = psf_wire_reply_head(head, 0, NULL, req.request_id, len);
		nng_msg_free(m);
		assert_int_equal(nng_msg_alloc(&r, hl + len), 0);
		memcpy(nng_msg_body(r), head, hl);
		if (len > 0)
			memcpy((uint8_t *)nng_msg_body(r) + hl, payload, len);
		if (nng_sendmsg(fp->sock, r, 0) != 0)
			nng_msg_free(r);
	}
	return NULL;
}

static void
fake_ps_start(fake_ps *fp)
{
	nng_listener l;
	int port = 0;

	memset(fp, 0, sizeof(*fp));
	assert_int_equal(nng_rep0_open(&fp->sock), 0);
	assert_int_equal(nng_listener_create(&l, fp->sock, "tcp://127.0.0.1:0"), 0);
	assert_int_equal(nng_listener_start(l, 0), 0);
	assert_int_equal(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(fp->url, sizeof(fp->url), "tcp://127.0.0.1:%d", port);
	assert_int_equal(pthread_create(&fp->th, NULL, fake_ps_main, fp), 0);
}

static void
fake_ps_stop(fake_ps *fp)
{
	nng_close(fp->sock);
	pthread_join(fp->th, NULL);
}

/* check_pull_bytes: a pull answered with these PullReply bytes fails cleanly
 * when protobuf-c refuses them (no crash, no hang, dst untouched beyond). */
static void
check_pull_bytes(fleet *f, fake_ps *fp, psf_ps_client *w, const uint8_t *buf, size_t len)
{
	ProtobufCMessage *m =
	    protobuf_c_message_unpack(&psfleet__v1__pull_reply__descriptor, NULL, len, buf);
	psf_params *dst;
	psf_err err;

	fp->pull = buf;
	fp->pull_len = len;
	assert_int_equal(psf_params_new(f->model, &dst), PSF_OK);
	err = psf_ps_client_pull(w, 0, f->keys, f->n_keys, dst, NULL);
	if (m == NULL && err == PSF_OK)
		fail_msg("%zu bytes: protobuf-c refuses them, the worker took them", len);
	if (m != NULL)
		protobuf_c_message_free_unpacked(m, NULL);
	psf_params_free(dst);
}

/* The worker reads PullReplies in place: truncations, byte flips and random
 * bytes from a (fake) shard give an error, never a crash; the real reply works. */
static void
test_ps_worker_reads_malformed_pull_reply(void **state)
{
	fleet f;
	fake_ps fp;
	psf_ps_client *w;
	psf_params *dst;
	Psfleet__V1__PullReply r = PSFLEET__V1__PULL_REPLY__INIT;
	float vals[256];
	size_t n_vals = 0, len;
	uint8_t buf[2048], mut[2048];
	uint64_t rnd = 0x243f6a8885a308d3ull;
	const char *urls[1];
	psf_ps_client_opts o = {.ps_urls = urls, .retry_ms = 2000};

	(void)state;
	fleet_start(&f, 1, 1, "{mode: async}", SGD1);
	fake_ps_start(&fp);
	urls[0] = fp.url;
	for (size_t k = 0; k < f.n_keys; k++)
		n_vals += f.lens[k];
	assert_true(n_vals <= 256);
	for (size_t i = 0; i < n_vals; i++)
		vals[i] = (float)i;
	r.model_version = 7;
	r.n_keys = r.n_lens = f.n_keys;
	r.keys = f.keys;
	r.lens = f.lens;
	r.values.data = (uint8_t *)vals;
	r.values.len = n_vals * 4;
	len = protobuf_c_message_get_packed_size(&r.base);
	assert_true(len <= sizeof(buf));
	protobuf_c_message_pack(&r.base, buf);
	assert_int_equal(psf_ps_client_open(f.cfg, f.model, "trainer-0", &o, &w), PSF_OK);

	fp.pull = buf;
	fp.pull_len = len;
	assert_int_equal(psf_params_new(f.model, &dst), PSF_OK);
	assert_int_equal(psf_ps_client_pull(w, 0, f.keys, f.n_keys, dst, NULL), PSF_OK);
	assert_float_equal(value(dst, f.keys[f.n_keys - 1], 0), (float)(n_vals - 1), 0);
	psf_params_free(dst);
	for (size_t t = 0; t < len; t++)
		check_pull_bytes(&f, &fp, w, buf, t);
	for (int i = 0; i < 600; i++) {
		size_t n = mutate(mut, buf, len, i, 64, &rnd);
		check_pull_bytes(&f, &fp, w, mut, n);
	}
	psf_ps_client_close(w);
	fake_ps_stop(&fp);
	fleet_stop(&f);
}

/* A completed reduce is kept in the store: a trainer that starts after the ps
 * restarted gets the sums at once (it used to wait for the others for ever). */
static void
test_ps_reduce_survives_restart(void **state)
{
	fleet f;
	psf_ps_client *a, *b;
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};
	double va[2] = {1, 2}, vb[2] = {3, 4}, late[2] = {100, 100};
	psf_rpc_client *c;
	psf_rpc_pending *pend;
	Psfleet__V1__ReduceRequest req = PSFLEET__V1__REDUCE_REQUEST__INIT;
	Psfleet__V1__ReduceReply *r = NULL;

	(void)state;
	fleet_start(&f, 1, 2, SYNC_CFG, SGD1);
	a = worker(&f, "trainer-0");
	b = worker(&f, "trainer-1");
	assert_int_equal(psf_rpc_client_open(f.urls[0], NULL, &c), PSF_OK);
	req.worker = "trainer-0";
	req.name = "stats";
	req.expected = 2;
	req.n_values = 2;
	req.values = va;
	assert_int_equal(psf_rpc_call_start(c, PSF_M_REDUCE, &req.base, NULL, &pend), PSF_OK);
	assert_int_equal(psf_ps_client_reduce(b, "stats", 2, vb, 2), PSF_OK);
	assert_int_equal(psf_rpc_pending_wait(pend, &psfleet__v1__reduce_reply__descriptor,
	                     (ProtobufCMessage **)&r, NULL),
	    PSF_OK);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	psf_rpc_pending_free(pend);
	psf_rpc_client_close(c);
	psf_ps_client_close(a);
	psf_ps_client_close(b);
	psf_ps_free(f.ps[0]);
	assert_int_equal(psf_ps_new(f.cfg, &f.cfg->nodes[0], &opts, &f.ps[0]), PSF_OK);
	f.urls[0] = psf_ps_url(f.ps[0]);
	a = worker(&f, "trainer-0"); /* a restarted trainer */
	assert_int_equal(psf_ps_client_reduce(a, "stats", 2, late, 2), PSF_OK);
	assert_float_equal(late[0], 4, 0);
	assert_float_equal(late[1], 6, 0);
	psf_ps_client_close(a);
	fleet_stop(&f);
}

/* call_ps makes one RPC to shard 0; the reply (if any) is freed. */
static psf_err
call_ps(fleet *f, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rd, psf_rpc_status *st)
{
	psf_rpc_client *c;
	ProtobufCMessage *r = NULL;
	psf_err err;

	assert_int_equal(psf_rpc_client_open(f->urls[0], NULL, &c), PSF_OK);
	err = psf_rpc_client_call(c, method, req, rd, NULL, &r, st);
	if (r != NULL)
		protobuf_c_message_free_unpacked(r, NULL);
	psf_rpc_client_close(c);
	return err;
}

static void
register_raw(fleet *f, const char *id)
{
	Psfleet__V1__RegisterRequest req = PSFLEET__V1__REGISTER_REQUEST__INIT;
	psf_rpc_status st;

	req.worker = (char *)id;
	assert_int_equal(
	    call_ps(f, PSF_M_REGISTER, &req.base, &psfleet__v1__register_reply__descriptor, &st),
	    PSF_OK);
}

/* report_raw sends a MetricsReport whose fields derive from step. */
static psf_err
report_raw(fleet *f, const char *id, int64_t step, bool finished, psf_rpc_status *st)
{
	Psfleet__V1__MetricsReport r = PSFLEET__V1__METRICS_REPORT__INIT;

	r.worker = (char *)id;
	r.epoch = (uint32_t)step / 2;
	r.step = step;
	r.train_loss = 1.0 / (double)(step + 1);
	r.test_sse = 0.25 * (double)step;
	r.test_n = (uint64_t)step * 10;
	r.samples_per_sec = 1000.5;
	r.test_correct = -0.0;
	r.finished = finished;
	return call_ps(f, PSF_M_REPORT, &r.base, &psfleet__v1__metrics_ack__descriptor, st);
}

static const Psfleet__V1__MetricsReport *
find_report(const Psfleet__V1__StatsReply *s, const char *id)
{
	for (size_t i = 0; i < s->n_reports; i++)
		if (strcmp(s->reports[i]->worker, id) == 0)
			return s->reports[i];
	return NULL;
}

static const Psfleet__V1__WorkerStatus *
find_status(const Psfleet__V1__StatsReply *s, const char *id)
{
	for (size_t i = 0; i < s->n_workers; i++)
		if (strcmp(s->workers[i]->worker, id) == 0)
			return s->workers[i];
	return NULL;
}

/* assert_same_reports: b holds exactly a's reports, field for field (compared
 * packed, so every field counts), whatever their order. */
static void
assert_same_reports(const Psfleet__V1__StatsReply *a, const Psfleet__V1__StatsReply *b)
{
	uint8_t pa[512], pb[512];

	assert_int_equal(a->n_reports, b->n_reports);
	for (size_t i = 0; i < a->n_reports; i++) {
		const Psfleet__V1__MetricsReport *ra = a->reports[i];
		const Psfleet__V1__MetricsReport *rb = find_report(b, ra->worker);
		size_t la, lb;

		if (rb == NULL)
			fail_msg("the report of %s is gone", ra->worker);
		assert_true(psfleet__v1__metrics_report__get_packed_size(ra) <= sizeof(pa));
		assert_true(psfleet__v1__metrics_report__get_packed_size(rb) <= sizeof(pb));
		la = psfleet__v1__metrics_report__pack(ra, pa);
		lb = psfleet__v1__metrics_report__pack(rb, pb);
		assert_int_equal(la, lb);
		assert_memory_equal(pa, pb, la);
	}
}

static void
restart_ps0(fleet *f)
{
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};

	psf_ps_free(f->ps[0]);
	f->ps[0] = NULL;
	assert_int_equal(psf_ps_new(f->cfg, &f->cfg->nodes[0], &opts, &f->ps[0]), PSF_OK);
	f->urls[0] = psf_ps_url(f->ps[0]);
}

/* The trainers' MetricsReports are kept in the store: after a restart Stats
 * returns the same reports before anyone re-registers, including one of a
 * worker that never pushed and is not in the config; a finished trainer is not
 * counted live; a newer report replaces the older one across restarts. */
static void
test_ps_reports_survive_restart(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_params *g;
	psf_rpc_status st;
	Psfleet__V1__StatsReply *before, *after, *again;
	const Psfleet__V1__MetricsReport *r;

	(void)state;
	fleet_start(&f, 1, 2, "{mode: async}", SGD1);
	w = worker(&f, "trainer-0");
	g = grads_const(&f, 0.5f);
	assert_int_equal(psf_ps_client_push(w, 0, g, f.keys, f.n_keys, 1, 0, NULL), PSF_OK);
	psf_ps_client_close(w);
	register_raw(&f, "trainer-1");
	register_raw(&f, "elastic-7");
	assert_int_equal(report_raw(&f, "trainer-0", 1, false, &st), PSF_OK);
	assert_int_equal(report_raw(&f, "trainer-1", 4, true, &st), PSF_OK);
	assert_int_equal(report_raw(&f, "elastic-7", 3, false, &st), PSF_OK);
	before = stats(&f, 0);
	assert_int_equal(before->n_reports, 3);

	restart_ps0(&f);
	after = stats(&f, 0);
	assert_same_reports(before, after);
	r = find_report(after, "trainer-1");
	assert_int_equal(r->step, 4);
	assert_true(r->finished);
	assert_float_equal(r->test_sse, 1.0, 0);
	assert_false(find_status(after, "trainer-1")->live); /* finished: done */
	assert_true(find_status(after, "trainer-0")->live);
	assert_int_equal(find_status(after, "trainer-0")->clock, 1);
	assert_non_null(find_status(after, "elastic-7"));
	/* Reports still need a registered worker after the restart. */
	assert_int_not_equal(report_raw(&f, "trainer-0", 2, true, &st), PSF_OK);
	assert_int_equal(st.code, PSF_STATUS_FAILED_PRECONDITION);

	/* trainer-0 comes back and reports again: the newer report replaces the
	 * older one, in memory and in the store. */
	register_raw(&f, "trainer-0");
	assert_int_equal(report_raw(&f, "trainer-0", 2, true, &st), PSF_OK);
	restart_ps0(&f);
	again = stats(&f, 0);
	assert_int_equal(again->n_reports, 3);
	r = find_report(again, "trainer-0");
	assert_int_equal(r->step, 2);
	assert_int_equal(r->epoch, 1);
	assert_int_equal(r->test_n, 20);
	assert_float_equal(r->train_loss, 1.0 / 3.0, 0);
	assert_true(r->finished);
	assert_int_equal(find_report(again, "trainer-1")->step, 4);
	assert_int_equal(find_report(again, "elastic-7")->step, 3);
	assert_false(find_status(again, "trainer-0")->live);
	protobuf_c_message_free_unpacked(&before->base, NULL);
	protobuf_c_message_free_unpacked(&after->base, NULL);
	protobuf_c_message_free_unpacked(&again->base, NULL);
	psf_params_free(g);
	fleet_stop(&f);
}

/* A report is untrusted input: one over PS_REPORT_MAX_BYTES (here through a
 * large unknown field) is refused with RESOURCE_EXHAUSTED and changes nothing;
 * small unknown fields are accepted and not stored. */
static void
test_ps_report_size_capped(void **state)
{
	fleet f;
	Psfleet__V1__MetricsReport r = PSFLEET__V1__METRICS_REPORT__INIT;
	/* protobuf-c packs an unknown field's data as is: it holds the length prefix */
	uint8_t big[3 + 17000] = {0xe8, 0x84, 0x01}, small[1 + 16] = {16};
	ProtobufCMessageUnknownField unk = {100, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, sizeof(big),
	    big};
	Psfleet__V1__StatsReply *s;
	psf_rpc_status st;

	(void)state;
	fleet_start(&f, 1, 1, "{mode: async}", SGD1);
	register_raw(&f, "trainer-0");
	r.worker = "trainer-0";
	r.step = 9;
	r.base.n_unknown_fields = 1;
	r.base.unknown_fields = &unk;
	assert_int_not_equal(
	    call_ps(&f, PSF_M_REPORT, &r.base, &psfleet__v1__metrics_ack__descriptor, &st), PSF_OK);
	assert_int_equal(st.code, PSF_STATUS_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(st.message, "exceeds the limit of 16384"));
	s = stats(&f, 0);
	assert_int_equal(s->n_reports, 0);
	protobuf_c_message_free_unpacked(&s->base, NULL);

	unk.len = sizeof(small);
	unk.data = small;
	assert_int_equal(
	    call_ps(&f, PSF_M_REPORT, &r.base, &psfleet__v1__metrics_ack__descriptor, &st), PSF_OK);
	restart_ps0(&f);
	s = stats(&f, 0);
	assert_int_equal(s->n_reports, 1);
	assert_int_equal(s->reports[0]->step, 9);
	assert_int_equal(s->reports[0]->base.n_unknown_fields, 0);
	protobuf_c_message_free_unpacked(&s->base, NULL);
	fleet_stop(&f);
}

/* fill_disk writes a file under dir until the filesystem is full. */
static void
fill_disk(const char *dir, char *path, size_t len)
{
	static const char chunk[4096];
	FILE *fp;

	snprintf(path, len, "%s/filler", dir);
	assert_non_null(fp = fopen(path, "w"));
	setvbuf(fp, NULL, _IONBF, 0);
	while (fwrite(chunk, 1, sizeof(chunk), fp) == sizeof(chunk))
		;
	fclose(fp);
}

/* A fleet whose ps0 keeps its store on a small tmpfs; the teardown stops the ps
 * and unmounts even when an assertion failed half-way. */
typedef struct disk_case {
	fleet f;
	char mnt[128];
	bool mounted;
} disk_case;

static int
disk_setup(void **state)
{
	disk_case *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -1;
	snprintf(d->f.dir, sizeof(d->f.dir), "/tmp/psf-ps-XXXXXX");
	if (mkdtemp(d->f.dir) == NULL) {
		free(d);
		return -1;
	}
	snprintf(d->mnt, sizeof(d->mnt), "%s/ps0", d->f.dir); /* ps0's default data_dir */
	*state = d;
	if (mkdir(d->mnt, 0755) != 0)
		return -1;
	d->mounted =
	    mount("psf-test", d->mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=1024k,mode=0755") == 0;
	if (!d->mounted)
		print_message("cannot mount a tmpfs here (needs root): %s\n", strerror(errno));
	return 0;
}

static int
disk_teardown(void **state)
{
	disk_case *d = *state;
	int rc = 0;

	psf_ps_free(d->f.ps[0]);
	if (d->mounted && umount2(d->mnt, MNT_DETACH) != 0)
		rc = -1;
	if (psf_rm_rf(d->f.dir) != PSF_OK)
		rc = -1;
	psf_config_free(d->f.cfg);
	free(d);
	return rc;
}

/* A report the store cannot take (a full disk under the ps) is refused with
 * RESOURCE_EXHAUSTED: the ps keeps serving, Stats is unchanged, and the same
 * report goes through once there is room. Skipped where mounting is refused. */
static void
test_ps_report_on_full_disk(void **state)
{
	disk_case *d = *state;
	fleet *f = &d->f;
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};
	char text[4096], err[512], filler[160], id[128];
	Psfleet__V1__StatsReply *s;
	psf_rpc_status st = {0};
	psf_err rv = PSF_OK;
	int n_ok = 0;

	if (!d->mounted)
		skip();
	cfg_text(text, sizeof(text), f->dir, 1, 1, "{mode: async}", SGD1, "4");
	if (psf_config_parse("test.yaml", text, strlen(text), err, sizeof(err), &f->cfg) != PSF_OK)
		fail_msg("config: %s", err);
	assert_int_equal(psf_ps_new(f->cfg, &f->cfg->nodes[0], &opts, &f->ps[0]), PSF_OK);
	f->urls[0] = psf_ps_url(f->ps[0]);
	register_raw(f, "trainer-0");
	assert_int_equal(report_raw(f, "trainer-0", 1, false, &st), PSF_OK);

	/* Full disk: each new worker's report needs room for its record (long ids
	 * make them big), so one soon needs a page the filesystem cannot give. */
	fill_disk(d->mnt, filler, sizeof(filler));
	for (int i = 0; i < 200 && rv == PSF_OK; i++) {
		snprintf(id, sizeof(id), "elastic-%03d-%0110d", i, 0);
		register_raw(f, id);
		if ((rv = report_raw(f, id, i + 2, false, &st)) == PSF_OK)
			n_ok++;
	}
	assert_int_not_equal(rv, PSF_OK);
	assert_int_equal(st.code, PSF_STATUS_RESOURCE_EXHAUSTED);
	print_message("disk full after %d more reports: %s\n", n_ok, st.message);
	s = stats(f, 0); /* still serving; the refused report is not shown */
	assert_int_equal(s->n_reports, (size_t)n_ok + 1);
	assert_null(find_report(s, id));
	assert_int_equal(find_report(s, "trainer-0")->step, 1);
	protobuf_c_message_free_unpacked(&s->base, NULL);

	/* Room again: the same report is taken, and kept across a restart. */
	assert_int_equal(unlink(filler), 0);
	assert_int_equal(report_raw(f, id, 999, true, &st), PSF_OK);
	restart_ps0(f);
	s = stats(f, 0);
	assert_int_equal(s->n_reports, (size_t)n_ok + 2);
	assert_int_equal(find_report(s, id)->step, 999);
	assert_int_equal(find_report(s, "trainer-0")->step, 1);
	protobuf_c_message_free_unpacked(&s->base, NULL);
}

/* A cosine schedule with total_steps 0 takes its horizon from the steps the
 * workers announce: with sgd lr 1 and 2 announced steps (sync), the two updates
 * use lr(0) = 1 and lr(1) = 0.5 * (1 + cos(pi / 2)) = 0.5. Staleness is 0 in sync. */
static void
test_ps_cosine_horizon_from_announced_steps(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_params *w0, *w2, *g;
	psf_push_result res;

	(void)state;
	fleet_start(&f, 1, 1, SYNC_CFG, "{kind: sgd, learning_rate: 1.0, schedule: cosine}");
	w = worker(&f, "trainer-0");
	psf_ps_client_set_total_steps(w, 2);
	assert_int_equal(psf_ps_client_heartbeat(w, false), PSF_OK);
	w0 = pull_all(&f, w, 0);
	g = grads_const(&f, 1.0f);
	for (int64_t c = 0; c < 2; c++) {
		assert_int_equal(psf_ps_client_push(w, c, g, f.keys, f.n_keys, 1, 0, &res), PSF_OK);
		assert_int_equal(res.max_staleness, 0);
	}
	w2 = pull_all(&f, w, 2);
	for (size_t k = 0; k < f.n_keys; k++)
		for (uint32_t j = 0; j < f.lens[k]; j++)
			assert_float_equal(value(w2, f.keys[k], j), value(w0, f.keys[k], j) - 1.5f,
			    1e-5);
	psf_params_free(w0);
	psf_params_free(w2);
	psf_params_free(g);
	psf_ps_client_close(w);
	fleet_stop(&f);
}

/* Local SGD rounds: a round averages the workers' deltas and subtracts the
 * average as it is (no server optimizer: adam here would not move by exactly 2),
 * a push covers sync_every steps of the worker's clock, and a round closes
 * sync_every trained steps at once. */
static void
test_ps_local_round_applies_average_delta(void **state)
{
	fleet f;
	psf_ps_client *a, *b;
	psf_params *w0, *w1, *ga, *gb;
	Psfleet__V1__StatsReply *st;

	(void)state;
	fleet_start(&f, 1, 2,
	    "{mode: local, sync_every: 4, straggler_timeout_ms: 20000, heartbeat_ms: 100}",
	    "{kind: adam, learning_rate: 0.5}");
	a = worker(&f, "trainer-0");
	b = worker(&f, "trainer-1");
	w0 = pull_all(&f, a, 0);
	ga = grads_const(&f, 1.0f);
	gb = grads_const(&f, 3.0f);
	assert_int_equal(psf_ps_client_push(a, 0, ga, f.keys, f.n_keys, 8, 0.5, NULL), PSF_OK);
	assert_int_equal(psf_ps_client_clock(a), 4);
	assert_int_equal(raw_pull(&f, 0, "trainer-0", 4, 300), PSF_ETIMEDOUT); /* round open */
	assert_int_equal(psf_ps_client_push(b, 0, gb, f.keys, f.n_keys, 8, 0.5, NULL), PSF_OK);
	w1 = pull_all(&f, a, 4);
	for (size_t i = 0; i < f.n_keys; i++)
		for (uint32_t j = 0; j < f.lens[i]; j++)
			assert_float_equal(value(w1, f.keys[i], j), value(w0, f.keys[i], j) - 2.0f,
			    1e-6);
	st = stats(&f, 0);
	assert_int_equal(st->model_version, 1);
	assert_int_equal(st->trained_steps, 4);
	protobuf_c_message_free_unpacked(&st->base, NULL);
	psf_params_free(w0);
	psf_params_free(w1);
	psf_params_free(ga);
	psf_params_free(gb);
	psf_ps_client_close(a);
	psf_ps_client_close(b);
	fleet_stop(&f);
}

/* ---- PushPull ------------------------------------------------------------ */

typedef struct pp_worker {
	fleet *f;
	int index, steps;
	int fused; /* steps whose next weights came with the push */
	psf_err err;
} pp_worker;

/* pp_run is one worker of run_three_fused: the gradients of run_three_workers,
 * pushed with psf_ps_client_push_pull (each call waits for the round to close,
 * so the workers run on their own threads). */
static void *
pp_run(void *arg)
{
	pp_worker *pw = arg;
	fleet *f = pw->f;
	char id[32];
	psf_ps_client *w;
	psf_params *p = NULL, *g = NULL;
	bool pulled = false;

	snprintf(id, sizeof(id), "trainer-%d", pw->index);
	w = worker(f, id);
	if ((pw->err = psf_params_new(f->model, &p)) != PSF_OK ||
	    (pw->err = psf_params_new(f->model, &g)) != PSF_OK)
		goto out;
	for (int64_t c = 0; c < pw->steps && pw->err == PSF_OK; c++) {
		if (!pulled &&
		    (pw->err = psf_ps_client_pull(w, c, f->keys, f->n_keys, p, NULL)) != PSF_OK)
			break;
		for (size_t k = 0; k < f->n_keys; k++) {
			float buf[8];
			const float *v;
			if ((pw->err = psf_params_get_key(p, f->keys[k], &v, NULL)) != PSF_OK)
				goto out;
			for (uint32_t j = 0; j < f->lens[k]; j++)
				buf[j] = 0.3f * v[j] +
				    0.01f * (float)(pw->index + 1) * (float)(j + 1) -
				    0.02f * (float)c;
			if ((pw->err = psf_params_set_key(g, f->keys[k], buf, f->lens[k])) !=
			    PSF_OK)
				goto out;
		}
		pw->err = psf_ps_client_push_pull(w, c, g, f->keys, f->n_keys, 4, 0, f->keys,
		    f->n_keys, p, NULL, &pulled);
		pw->fused += pulled ? 1 : 0;
	}
out:
	psf_params_free(p);
	psf_params_free(g);
	psf_ps_client_close(w);
	return NULL;
}

static psf_params *
run_three_fused(fleet *f, int steps, int *fused)
{
	pthread_t th[3];
	pp_worker pw[3];
	psf_ps_client *w;
	psf_params *final;

	*fused = 0;
	for (int i = 0; i < 3; i++) {
		pw[i] = (pp_worker){f, i, steps, 0, PSF_OK};
		assert_int_equal(pthread_create(&th[i], NULL, pp_run, &pw[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(pw[i].err, PSF_OK);
		*fused += pw[i].fused;
	}
	w = worker(f, "trainer-0");
	final = pull_all(f, w, steps);
	psf_ps_client_close(w);
	return final;
}

/* PushPull gives bit-identical weights to Push then Pull (2 shards, adam), and
 * every step's next weights came with its push. */
static void
test_ps_push_pull_matches_push_then_pull(void **state)
{
	fleet one, two;
	psf_params *a, *b;
	const char *adam = "{kind: adam, learning_rate: 0.05}";
	int fused = 0;

	(void)state;
	fleet_start(&one, 2, 3, SYNC_CFG, adam);
	a = run_three_workers(&one, 6);
	fleet_start(&two, 2, 3, SYNC_CFG, adam);
	b = run_three_fused(&two, 6, &fused);
	assert_int_equal(fused, 3 * 6);
	for (size_t k = 0; k < one.n_keys; k++)
		for (uint32_t j = 0; j < one.lens[k]; j++) {
			float x = value(a, one.keys[k], j), y = value(b, one.keys[k], j);
			assert_memory_equal(&x, &y, sizeof(float));
		}
	psf_params_free(a);
	psf_params_free(b);
	fleet_stop(&one);
	fleet_stop(&two);
}

/* run_one_worker runs trainer-0 alone for `steps` steps of pp_run's gradients,
 * with Push then Pull (fused false) or PushPull, and returns the final weights. */
static psf_params *
run_one_worker(fleet *f, int steps, bool fused, int *n_fused)
{
	pp_worker pw = {f, 0, steps, 0, PSF_OK};
	psf_ps_client *w;
	psf_params *final;

	if (fused) {
		pp_run(&pw);
		assert_int_equal(pw.err, PSF_OK);
		*n_fused = pw.fused;
	} else {
		w = worker(f, "trainer-0");
		for (int64_t c = 0; c < steps; c++) {
			psf_params *p = pull_all(f, w, c), *g;
			assert_int_equal(psf_params_new(f->model, &g), PSF_OK);
			for (size_t k = 0; k < f->n_keys; k++) {
				float buf[8];
				for (uint32_t j = 0; j < f->lens[k]; j++)
					buf[j] = 0.3f * value(p, f->keys[k], j) +
					    0.01f * (float)(j + 1) - 0.02f * (float)c;
				assert_int_equal(psf_params_set_key(g, f->keys[k], buf, f->lens[k]),
				    PSF_OK);
			}
			assert_int_equal(
			    psf_ps_client_push(w, c, g, f->keys, f->n_keys, 4, 0, NULL), PSF_OK);
			psf_params_free(p);
			psf_params_free(g);
		}
		psf_ps_client_close(w);
	}
	w = worker(f, "trainer-0");
	final = pull_all(f, w, steps);
	psf_ps_client_close(w);
	return final;
}

/* In async and ssp mode PushPull applies the push, then answers the pull half
 * (at once, or when the ssp gate opens): the same weights, bit for bit, as a
 * Push then a Pull (one worker, so the order is fixed; 2 shards, adam), and
 * every step's next weights came with its push. */
static void
test_ps_push_pull_async_ssp_match_push_then_pull(void **state)
{
	const char *modes[] = {"{mode: async}",
	    "{mode: ssp, staleness: 1, straggler_timeout_ms: 20000, heartbeat_ms: 100}"};
	const char *adam = "{kind: adam, learning_rate: 0.05}";

	(void)state;
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		fleet one, two;
		psf_params *a, *b;
		int fused = 0;
		fleet_start(&one, 2, 1, modes[m], adam);
		a = run_one_worker(&one, 6, false, &fused);
		fleet_start(&two, 2, 1, modes[m], adam);
		b = run_one_worker(&two, 6, true, &fused);
		assert_int_equal(fused, 6);
		for (size_t k = 0; k < one.n_keys; k++)
			for (uint32_t j = 0; j < one.lens[k]; j++) {
				float x = value(a, one.keys[k], j), y = value(b, one.keys[k], j);
				assert_memory_equal(&x, &y, sizeof(float));
			}
		psf_params_free(a);
		psf_params_free(b);
		fleet_stop(&one);
		fleet_stop(&two);
	}
}

/* push_pull_bytes packs a PushPull of worker trainer-0 (seq, clock; gradient v on
 * every key) pulling every key at clock + 1. Returns a new buffer. */
static uint8_t *
push_pull_bytes(fleet *f, uint64_t seq, int64_t clock, float v, size_t *len)
{
	Psfleet__V1__PushPullRequest pp = PSFLEET__V1__PUSH_PULL_REQUEST__INIT;
	Psfleet__V1__PushRequest push = PSFLEET__V1__PUSH_REQUEST__INIT;
	Psfleet__V1__PullRequest pull = PSFLEET__V1__PULL_REQUEST__INIT;
	float vals[256];
	size_t n = 0;
	uint8_t *buf;

	for (size_t k = 0; k < f->n_keys; k++)
		for (uint32_t j = 0; j < f->lens[k]; j++)
			vals[n++] = v;
	push.worker = pull.worker = "trainer-0";
	push.seq = seq;
	push.clock = clock;
	push.n_keys = push.n_lens = f->n_keys;
	push.keys = f->keys;
	push.lens = f->lens;
	push.values.data = (uint8_t *)vals;
	push.values.len = n * sizeof(float);
	pull.clock = clock + 1;
	pull.n_keys = f->n_keys;
	pull.keys = f->keys;
	pp.push = &push;
	pp.pull = &pull;
	*len = protobuf_c_message_get_packed_size(&pp.base);
	assert_non_null(buf = malloc(*len));
	protobuf_c_message_pack(&pp.base, buf);
	return buf;
}

/* A PushPull re-sent with the same seq is applied once (duplicate), and answers
 * with the same weights; malformed PushPulls get INVALID_ARGUMENT and change
 * nothing. */
static void
test_ps_push_pull_replay_and_malformed(void **state)
{
	fleet f;
	psf_ps_client *w;
	psf_rpc_client *c;
	Psfleet__V1__PushPullReply *r1 = NULL, *r2 = NULL;
	uint8_t *buf, mut[4096];
	size_t len;
	char msg[256];
	uint64_t rnd = 11;

	(void)state;
	fleet_start(&f, 1, 1, SYNC_CFG, SGD1);
	w = worker(&f, "trainer-0"); /* registers */
	assert_int_equal(psf_rpc_client_open(f.urls[0], NULL, &c), PSF_OK);
	buf = push_pull_bytes(&f, 1, 0, 0.5f, &len);
	assert_true(len <= sizeof(mut));
	for (int i = 0; i < 2; i++) {
		psf_rpc_pending *p;
		psf_rpc_status st;
		psf_rpc_call_opts o = {5000, 0, 0};
		assert_int_equal(psf_rpc_call_start_raw(c, PSF_M_PUSH_PULL, buf, len, &o, &p),
		    PSF_OK);
		assert_int_equal(psf_rpc_pending_wait(p, &psfleet__v1__push_pull_reply__descriptor,
		                     (ProtobufCMessage **)(i == 0 ? &r1 : &r2), &st),
		    PSF_OK);
		psf_rpc_pending_free(p);
	}
	assert_false(r1->push->duplicate);
	assert_true(r2->push->duplicate);
	assert_int_equal(r1->pull->model_version, 1);
	assert_int_equal(r2->pull->model_version, 1);
	assert_int_equal(r1->pull->values.len, r2->pull->values.len);
	assert_memory_equal(r1->pull->values.data, r2->pull->values.data, r1->pull->values.len);
	/* truncations and random bytes: an answer, never a crash or a hang (bit flips
	 * could make a valid pull of a far clock, which rightly waits) */
	for (int i = 0; i < 200; i++) {
		size_t n =
		    i < 100 ? len * (size_t)i / 100 : mutate(mut, buf, len, 3 * i + 2, 64, &rnd);
		if (i < 100)
			memcpy(mut, buf, n);
		psf_status code = raw_call(c, PSF_M_PUSH_PULL, mut, n, msg, sizeof(msg));
		assert_true(code != PSF_STATUS_UNAVAILABLE &&
		    code != PSF_STATUS_DEADLINE_EXCEEDED && code != PSF_STATUS_INTERNAL);
	}
	/* a push without a pull is refused */
	{
		Psfleet__V1__PushPullRequest pp = PSFLEET__V1__PUSH_PULL_REQUEST__INIT;
		Psfleet__V1__PushRequest push = PSFLEET__V1__PUSH_REQUEST__INIT;
		push.worker = "trainer-0";
		push.seq = 100;
		pp.push = &push;
		len = protobuf_c_message_pack(&pp.base, mut);
		assert_int_equal(raw_call(c, PSF_M_PUSH_PULL, mut, len, msg, sizeof(msg)),
		    PSF_STATUS_INVALID_ARGUMENT);
	}
	protobuf_c_message_free_unpacked(&r1->base, NULL);
	protobuf_c_message_free_unpacked(&r2->base, NULL);
	free(buf);
	psf_rpc_client_close(c);
	psf_ps_client_close(w);
	fleet_stop(&f);
}

/* ft_start starts one ps whose model takes 130 inputs (lag:0..129), so a
 * fine-tuning sample (>= 520 bytes packed) is stored in several meta parts. */
static void
ft_start(fleet *f)
{
	char text[4096], err[512];
	size_t n = 0;
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/psf-ps-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	n += (size_t)snprintf(text + n, sizeof(text) - n,
	    "name: t\nseed: 7\nrun_dir: %s\nnodes:\n  ps:\n"
	    "    - {id: ps0, listen: \"tcp://127.0.0.1:0\"}\n  trainers:\n    - {id: trainer-0}\n"
	    "data: {path: %s/none.csv}\nfeatures: [",
	    f->dir, f->dir);
	for (int i = 0; i < 130; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"lag:%d\"", i ? ", " : "", i);
	snprintf(text + n, sizeof(text) - n,
	    "]\ntarget: next_return\nmodel: {kind: linear}\noptimizer: {kind: sgd, "
	    "learning_rate: 0.1}\ntraining: {finetune: {steps: 3}}\nconsistency: {mode: async}\n"
	    "durability: {mode: none, map_size: 1048576}\nlimits: {request_timeout_ms: 5000}\n"
	    "inference: {history_days: 200}\n");
	if (psf_config_parse("test.yaml", text, strlen(text), err, sizeof(err), &f->cfg) != PSF_OK)
		fail_msg("config: %s", err);
	assert_int_equal(psf_ps_new(f->cfg, &f->cfg->nodes[0], &opts, &f->ps[0]), PSF_OK);
	f->urls[0] = psf_ps_url(f->ps[0]);
}

/* ft_append sends n samples S<sym0+i> dated date with x[j] = i + j / 1000. */
static psf_err
ft_append(fleet *f, int sym0, int n, const char *date, size_t n_x,
    Psfleet__V1__AppendSamplesReply **out, psf_rpc_status *st)
{
	Psfleet__V1__AppendSamplesRequest req = PSFLEET__V1__APPEND_SAMPLES_REQUEST__INIT;
	Psfleet__V1__FineTuneSample s[8], *sp[8];
	char syms[8][16];
	float x[8][200];
	psf_rpc_client *c;
	psf_err err;

	assert_true(n <= 8 && n_x <= 200);
	for (int i = 0; i < n; i++) {
		psfleet__v1__fine_tune_sample__init(&s[i]);
		snprintf(syms[i], sizeof(syms[i]), "S%04d", sym0 + i);
		for (size_t j = 0; j < n_x; j++)
			x[i][j] = (float)(sym0 + i) + (float)j / 1000.0f;
		s[i].symbol = syms[i];
		s[i].date = (char *)date;
		s[i].n_x = n_x;
		s[i].x = x[i];
		s[i].y = 0.01 * (sym0 + i);
		sp[i] = &s[i];
	}
	req.n_samples = (size_t)n;
	req.samples = sp;
	assert_int_equal(psf_rpc_client_open(f->urls[0], NULL, &c), PSF_OK);
	err = psf_rpc_client_call(c, PSF_M_APPEND_SAMPLES, &req.base,
	    &psfleet__v1__append_samples_reply__descriptor, NULL, (ProtobufCMessage **)out, st);
	psf_rpc_client_close(c);
	return err;
}

static Psfleet__V1__FineTuneReply *
ft_round(fleet *f, uint64_t begin, int64_t clock)
{
	Psfleet__V1__FineTuneRequest req = PSFLEET__V1__FINE_TUNE_REQUEST__INIT;
	Psfleet__V1__FineTuneReply *r = NULL;
	psf_rpc_client *c;

	req.begin_round = begin;
	req.start_clock = clock;
	req.with_samples = true;
	assert_int_equal(psf_rpc_client_open(f->urls[0], NULL, &c), PSF_OK);
	assert_int_equal(psf_rpc_client_call(c, PSF_M_FINE_TUNE, &req.base,
	                     &psfleet__v1__fine_tune_reply__descriptor, NULL,
	                     (ProtobufCMessage **)&r, NULL),
	    PSF_OK);
	psf_rpc_client_close(c);
	return r;
}

/* Fine-tuning rows on ps0: one per (symbol, date) whatever is sent again, in
 * arrival order, stored in parts and read back bit for bit; a round begun once
 * (a retried begin returns it unchanged, a begin with no new rows begins
 * nothing); a sample of the wrong size refused; everything kept across a
 * restart of the ps. */
static void
test_ps_finetune_rows_and_rounds(void **state)
{
	fleet f;
	Psfleet__V1__AppendSamplesReply *a = NULL;
	Psfleet__V1__FineTuneReply *r;
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};
	psf_rpc_status st;

	(void)state;
	ft_start(&f);
	r = ft_round(&f, 0, 0); /* nothing yet */
	assert_int_equal(r->round, 0);
	assert_int_equal(r->total, 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	r = ft_round(&f, 1, 10); /* no rows: no round */
	assert_int_equal(r->round, 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	assert_int_equal(ft_append(&f, 0, 3, "2025-01-02", 130, &a, &st), PSF_OK);
	assert_int_equal(a->stored, 3);
	assert_int_equal(a->total, 3);
	protobuf_c_message_free_unpacked(&a->base, NULL);
	/* a replica (or a replayed journal) sends two of them again, plus a new one */
	assert_int_equal(ft_append(&f, 1, 3, "2025-01-02", 130, &a, &st), PSF_OK);
	assert_int_equal(a->stored, 1);
	assert_int_equal(a->duplicates, 2);
	assert_int_equal(a->total, 4);
	protobuf_c_message_free_unpacked(&a->base, NULL);
	/* a sample of the wrong size: refused as a whole, nothing stored */
	assert_int_equal(ft_append(&f, 7, 2, "2025-01-03", 12, &a, &st), PSF_EINVAL);
	assert_non_null(strstr(st.message, "has 12 inputs; the model takes 130"));

	r = ft_round(&f, 1, 10);
	assert_int_equal(r->round, 1);
	assert_int_equal(r->from_seq, 0);
	assert_int_equal(r->upto_seq, 4);
	assert_int_equal(r->start_clock, 10);
	assert_int_equal(r->n_samples, 4);
	for (size_t i = 0; i < 4; i++) { /* arrival order, every float as sent */
		char want[16];
		snprintf(want, sizeof(want), "S%04zu", i);
		assert_string_equal(r->samples[i]->symbol, want);
		assert_string_equal(r->samples[i]->date, "2025-01-02");
		assert_int_equal(r->samples[i]->n_x, 130);
		for (size_t j = 0; j < 130; j++)
			assert_true(r->samples[i]->x[j] == (float)i + (float)j / 1000.0f);
		assert_true(r->samples[i]->y == 0.01 * (double)i);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	r = ft_round(&f, 1, 99); /* retried: the round as begun */
	assert_int_equal(r->round, 1);
	assert_int_equal(r->start_clock, 10);
	assert_int_equal(r->upto_seq, 4);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	r = ft_round(&f, 2, 13); /* no new rows: round 1 stays the latest */
	assert_int_equal(r->round, 1);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	r = ft_round(&f, 5, 13); /* out of turn: nothing begins */
	assert_int_equal(r->round, 1);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	assert_int_equal(ft_append(&f, 4, 2, "2025-01-03", 130, &a, &st), PSF_OK);
	protobuf_c_message_free_unpacked(&a->base, NULL);
	psf_ps_free(f.ps[0]); /* a restart keeps rows and rounds */
	assert_int_equal(psf_ps_new(f.cfg, &f.cfg->nodes[0], &opts, &f.ps[0]), PSF_OK);
	f.urls[0] = psf_ps_url(f.ps[0]);
	r = ft_round(&f, 0, 0);
	assert_int_equal(r->round, 1);
	assert_int_equal(r->total, 6);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	r = ft_round(&f, 2, 13);
	assert_int_equal(r->round, 2);
	assert_int_equal(r->from_seq, 4);
	assert_int_equal(r->upto_seq, 6);
	assert_string_equal(r->samples[0]->symbol, "S0004");
	assert_string_equal(r->samples[1]->date, "2025-01-03");
	protobuf_c_message_free_unpacked(&r->base, NULL);
	fleet_stop(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ps_sync_applies_average_and_pull_waits),
	    cmocka_unit_test(test_ps_ssp_blocks_fast_worker),
	    cmocka_unit_test(test_ps_replayed_push_applied_once),
	    cmocka_unit_test(test_ps_two_shards_match_single_node),
	    cmocka_unit_test(test_ps_straggler_dropped_after_timeout),
	    cmocka_unit_test(test_ps_bad_pushes_rejected_nothing_applied),
	    cmocka_unit_test(test_ps_snapshot_in_pieces),
	    cmocka_unit_test(test_ps_restart_resumes_and_checks_config),
	    cmocka_unit_test(test_ps_restart_checks_training_settings),
	    cmocka_unit_test(test_ps_assign_once_and_durable),
	    cmocka_unit_test(test_ps_reduce_sums_once),
	    cmocka_unit_test(test_ps_reduce_names_bounded),
	    cmocka_unit_test(test_ps_cosine_horizon_from_announced_steps),
	    cmocka_unit_test(test_ps_reduce_survives_restart),
	    cmocka_unit_test(test_ps_reports_survive_restart),
	    cmocka_unit_test(test_ps_report_size_capped),
	    cmocka_unit_test_setup_teardown(test_ps_report_on_full_disk, disk_setup, disk_teardown),
	    cmocka_unit_test(test_ps_nonfinite_gradients),
	    cmocka_unit_test(test_ps_big_pull_and_push_in_pieces),
	    cmocka_unit_test(test_ps_large_update_interval_bit_identical),
	    cmocka_unit_test(test_ps_raw_push_malformed_rejected),
	    cmocka_unit_test(test_ps_worker_reads_malformed_pull_reply),
	    cmocka_unit_test(test_ps_push_pull_matches_push_then_pull),
	    cmocka_unit_test(test_ps_push_pull_replay_and_malformed),
	    cmocka_unit_test(test_ps_push_pull_async_ssp_match_push_then_pull),
	    cmocka_unit_test(test_ps_local_round_applies_average_delta),
	    cmocka_unit_test(test_ps_finetune_rows_and_rounds),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	/* NNG releases servers (HTTP ones especially) on its own threads: let them
	 * finish before LeakSanitizer looks at the heap at exit. */
	nng_fini();
	return failed;
}
