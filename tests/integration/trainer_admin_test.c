/* A trainer with a listen URL serves the Admin service there, like every other
 * role (lib/runtime/admin.h): real `psfleet node` processes over ipc. Health says
 * not ready (with the reason) until the fleet is up, then ready; Status gives its
 * progress; Shutdown stops it cleanly (exit 0); the fleet's token guards it. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/base/util.h"
#include "lib/data/datagen.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "psfleet.pb-c.h"

#include "tests/integration/itest.h"

#define TOKEN "admin-test-token"

typedef struct env {
	psf_itest_dir d;
	char t0_url[192]; /* trainer-0's listen URL */
} env;

static void
setup(env *e)
{
	char err[256], data[128];
	psf_datagen_cfg g = {30, 200, 3, 0};
	FILE *f;

	psf_itest_dir_make(&e->d, "tadmin");
	snprintf(e->t0_url, sizeof(e->t0_url), "ipc://%s/t0.sock", e->d.dir);
	snprintf(data, sizeof(data), "%s/data.csv", e->d.dir);
	assert_int_equal(psf_datagen_write(&g, data, err, sizeof(err)), PSF_OK);
	f = fopen(e->d.cfg, "w");
	assert_non_null(f);
	fprintf(f,
	    "name: admin\nseed: 9\nrun_dir: %s\nnodes:\n  ps:\n    - {id: ps0, listen: \"%s\"}\n"
	    "  trainers:\n    - {id: trainer-0, listen: \"%s\"}\n    - {id: trainer-1}\n"
	    "data: {path: %s}\n"
	    "features: [\"return:1\", \"return:5\"]\n"
	    "target: next_return\n"
	    "model: {kind: linear}\n"
	    "training: {epochs: 100, batch_size: 32}\n"
	    "consistency: {mode: sync, straggler_timeout_ms: 60000, heartbeat_ms: 200}\n"
	    "security: {token_env: PSF_ADMIN_TEST_TOKEN}\n",
	    e->d.dir, e->d.url, e->t0_url, data);
	fclose(f);
	assert_int_equal(setenv("PSF_ADMIN_TEST_TOKEN", TOKEN, 1), 0); /* the children inherit it */
}

static psf_rpc_client *
open_client(const char *url, const char *token)
{
	psf_rpc_client_opts o = {.timeout_ms = 2000, .token = token};
	psf_rpc_client *c = NULL;

	assert_int_equal(psf_rpc_client_open(url, &o, &c), PSF_OK);
	return c;
}

/* health calls Admin/Health once (fail_fast: no wait for a connection); returns
 * its error, with *out set on PSF_OK. */
static psf_err
health(psf_rpc_client *c, Psfleet__V1__HealthReply **out, psf_rpc_status *st)
{
	Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
	psf_rpc_call_opts o = {1000, 0, 1};

	return psf_rpc_client_call(c, PSF_M_HEALTH, &req.base,
	    &psfleet__v1__health_reply__descriptor, &o, (ProtobufCMessage **)out, st);
}

/* wait_health polls Health until it answers with ready == want (30 s at most). */
static Psfleet__V1__HealthReply *
wait_health(psf_rpc_client *c, bool want)
{
	uint64_t end = psf_now_ns() + 30000000000ull;

	while (psf_now_ns() < end) {
		Psfleet__V1__HealthReply *h = NULL;
		if (health(c, &h, NULL) == PSF_OK) {
			if (h->ready == want)
				return h;
			protobuf_c_message_free_unpacked(&h->base, NULL);
		}
		psf_sleep_ms(50);
	}
	fail_msg("trainer-0 never answered Health with ready=%d", want);
	return NULL;
}

static const char *
extra(const Psfleet__V1__StatusReply *r, const char *key)
{
	for (size_t i = 0; i < r->n_extra; i++)
		if (strcmp(r->extra[i]->key, key) == 0)
			return r->extra[i]->value;
	return NULL;
}

static void
check_status(psf_rpc_client *c)
{
	Psfleet__V1__StatusRequest req = PSFLEET__V1__STATUS_REQUEST__INIT;
	Psfleet__V1__StatusReply *r = NULL;
	psf_rpc_call_opts o = {2000, 1, 0};

	assert_int_equal(psf_rpc_client_call(c, PSF_M_STATUS, &req.base,
	                     &psfleet__v1__status_reply__descriptor, &o, (ProtobufCMessage **)&r,
	                     NULL),
	    PSF_OK);
	assert_string_equal(r->node, "trainer-0");
	assert_string_equal(r->role, "trainer");
	assert_true(r->ready);
	assert_true(r->uptime_seconds > 0);
	assert_int_equal(r->n_workers, 0);
	assert_non_null(extra(r, "epoch"));
	assert_non_null(extra(r, "step"));
	assert_non_null(extra(r, "total_steps"));
	assert_true(atoll(extra(r, "total_steps")) > 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void
test_trainer_admin(void **state)
{
	env e;
	pid_t ps, t0, t1;
	psf_rpc_client *c, *anon;
	Psfleet__V1__HealthReply *h;
	Psfleet__V1__HealthRequest hreq = PSFLEET__V1__HEALTH_REQUEST__INIT;
	Psfleet__V1__ShutdownRequest sreq = PSFLEET__V1__SHUTDOWN_REQUEST__INIT;
	Psfleet__V1__ShutdownReply *sr = NULL;
	psf_rpc_call_opts o = {2000, 0, 0};
	psf_rpc_status st;

	(void)state;
	setup(&e);
	/* 1. No ps yet: trainer-0 serves Admin but is not ready, and says why. */
	t0 = psf_itest_spawn_node(e.d.dir, e.d.cfg, "trainer-0", NULL, NULL);
	c = open_client(e.t0_url, TOKEN);
	h = wait_health(c, false);
	assert_string_equal(h->node, "trainer-0");
	assert_string_equal(h->role, "trainer");
	assert_string_equal(h->reason, "loading data");
	protobuf_c_message_free_unpacked(&h->base, NULL);
	/* 2. The token guards it as it guards every server. */
	anon = open_client(e.t0_url, NULL);
	h = NULL;
	assert_int_not_equal(psf_rpc_client_call(anon, PSF_M_HEALTH, &hreq.base,
	                         &psfleet__v1__health_reply__descriptor, &o,
	                         (ProtobufCMessage **)&h, &st),
	    PSF_OK);
	assert_null(h);
	assert_int_equal(st.code, PSF_STATUS_UNAUTHENTICATED);
	psf_rpc_client_close(anon);
	/* 3. The fleet comes up: ready, then Status reports progress. */
	ps = psf_itest_spawn_node(e.d.dir, e.d.cfg, "ps0", NULL, NULL);
	t1 = psf_itest_spawn_node(e.d.dir, e.d.cfg, "trainer-1", "--delay-ms", "20");
	h = wait_health(c, true);
	assert_string_equal(h->reason, "");
	protobuf_c_message_free_unpacked(&h->base, NULL);
	check_status(c);
	/* 4. Shutdown answers, then the trainer stops cleanly. */
	sreq.reason = "trainer_admin_test";
	assert_int_equal(psf_rpc_client_call(c, PSF_M_SHUTDOWN, &sreq.base,
	                     &psfleet__v1__shutdown_reply__descriptor, &o, (ProtobufCMessage **)&sr,
	                     NULL),
	    PSF_OK);
	protobuf_c_message_free_unpacked(&sr->base, NULL);
	assert_int_equal(psf_itest_wait_exit(t0, 20, 0), 0);
	psf_rpc_client_close(c);
	assert_int_equal(psf_itest_stop(&t1, SIGTERM), 0);
	assert_int_equal(psf_itest_stop(&ps, SIGTERM), 0);
	assert_int_equal(psf_rm_rf(e.d.dir), PSF_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trainer_admin),
	};

	if (!psf_itest_has_psfleet("trainer_admin_test"))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
