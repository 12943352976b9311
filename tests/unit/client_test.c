/* The public client library's later additions (client/psfleet_client.h) over a
 * real ipc:// socket: recent bars reach the server as sent (dates, order, every
 * field), a server's refusal comes back as the prediction's status, the node
 * status (Admin/Status) with its extras and workers, a token the server refuses,
 * and the sizes a binding checks its struct layouts against. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/psfleet_client.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_server.h"

static char dir[64];

/* predict answers Inference/Predict from the request alone: the prediction is the
 * sum of the recent closes plus the number of bars, as_of the last bar's date,
 * (and target, which is not cut at 10 characters) the last bar's date,
 * last_close its close times its volume; symbol "NOPE" is NOT_FOUND. */
static void
predict(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg)
{
	Psfleet__V1__PredictReply r = PSFLEET__V1__PREDICT_REPLY__INIT;
	Psfleet__V1__PredictRequest *in;
	double sum = 0;

	(void)arg;
	in = psfleet__v1__predict_request__unpack(NULL, len, payload);
	if (in == NULL) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "bad request");
		psf_rpc_reply(call, NULL);
		return;
	}
	if (strcmp(in->symbol, "NOPE") == 0) {
		psf_rpc_fail(call, PSF_STATUS_NOT_FOUND, "unknown symbol '%s'", in->symbol);
		psf_rpc_reply(call, NULL);
		psfleet__v1__predict_request__free_unpacked(in, NULL);
		return;
	}
	for (size_t i = 0; i < in->n_recent; i++)
		sum += in->recent[i]->close + in->recent[i]->open + in->recent[i]->high +
		    in->recent[i]->low;
	r.symbol = in->symbol;
	r.prediction = sum + (double)in->n_recent;
	r.target = in->n_recent > 0 ? in->recent[in->n_recent - 1]->date : "next_return";
	r.model_version = 3;
	r.as_of = in->n_recent > 0 ? in->recent[in->n_recent - 1]->date : in->as_of;
	r.last_close = in->n_recent > 0
	    ? in->recent[in->n_recent - 1]->close * in->recent[in->n_recent - 1]->volume
	    : 0;
	psf_rpc_reply(call, &r.base);
	psfleet__v1__predict_request__free_unpacked(in, NULL);
}

/* status answers Admin/Status as a ps would: two extras, two workers. */
static void
status(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg)
{
	Psfleet__V1__StatusReply r = PSFLEET__V1__STATUS_REPLY__INIT;
	Psfleet__V1__KeyValue kv[2] = {PSFLEET__V1__KEY_VALUE__INIT, PSFLEET__V1__KEY_VALUE__INIT};
	Psfleet__V1__KeyValue *kvp[2] = {&kv[0], &kv[1]};
	Psfleet__V1__WorkerStatus w[2] = {PSFLEET__V1__WORKER_STATUS__INIT,
	    PSFLEET__V1__WORKER_STATUS__INIT};
	Psfleet__V1__WorkerStatus *wp[2] = {&w[0], &w[1]};

	(void)payload;
	(void)len;
	(void)arg;
	r.node = "ps0";
	r.role = "ps";
	r.ready = 1;
	r.model_version = 42;
	r.uptime_seconds = 1.5;
	kv[0].key = "mode";
	kv[0].value = "sync";
	kv[1].key = "store_bytes";
	kv[1].value = "4096";
	r.n_extra = 2;
	r.extra = kvp;
	w[0].worker = "trainer-0";
	w[0].clock = 7;
	w[0].live = 1;
	w[0].last_seq = 70;
	w[0].pushes = 71;
	w[1].worker = "trainer-1";
	w[1].clock = -1;
	r.n_workers = 2;
	r.workers = wp;
	psf_rpc_reply(call, &r.base);
}

static psf_rpc_server *
server(const char *token, char *url, size_t len)
{
	psf_rpc_server_opts o = {.workers = 2, .token = token};
	psf_rpc_server *s;
	char listen[128];
	static int n;

	snprintf(listen, sizeof(listen), "ipc://%s/s%d.ipc", dir, n++);
	assert_int_equal(psf_rpc_server_new(&o, &s), PSF_OK);
	assert_int_equal(psf_rpc_server_add_raw(s, PSF_M_PREDICT,
	                     &psfleet__v1__predict_reply__descriptor, predict, NULL),
	    PSF_OK);
	assert_int_equal(psf_rpc_server_add_raw(s, PSF_M_STATUS,
	                     &psfleet__v1__status_reply__descriptor, status, NULL),
	    PSF_OK);
	assert_int_equal(psf_rpc_server_listen(s, listen, url, len), PSF_OK);
	assert_int_equal(psf_rpc_server_start(s), PSF_OK);
	return s;
}

static psf_client *
client(const char *url, const char *token)
{
	psf_client_opts o = {.timeout_ms = 5000, .token = token, .connect_now = 1};
	psf_client *c = NULL;

	assert_int_equal(psf_client_open(url, &o, &c), PSF_CLIENT_OK);
	return c;
}

static void
test_client_predict_recent_bars_sent(void **state)
{
	char url[256];
	psf_rpc_server *s = server(NULL, url, sizeof(url));
	psf_client *c = client(url, NULL);
	/* date fills all 11 bytes once (no NUL): the library must not read past it */
	psf_client_bar bars[3] = {
	    {"2025-01-02", 10, 1, 2, 3, 0},
	    {"2025-01-03", 20, 0, 0, 0, 0},
	    {"2025-01-06", 30, 0.5, 0, 0, 2},
	};
	psf_prediction p;

	(void)state;
	assert_int_equal(psf_client_predict_recent(c, "S1", NULL, bars, 3, &p), PSF_CLIENT_OK);
	assert_int_equal(p.status, PSF_CLIENT_OK);
	assert_string_equal(p.symbol, "S1");
	assert_true(p.prediction == 10 + 1 + 2 + 3 + 20 + 30 + 0.5 + 3);
	assert_string_equal(p.as_of, "2025-01-06");
	assert_string_equal(p.target, "2025-01-06");
	assert_true(p.last_close == 60);
	/* no bars: the plain call, as_of passed through */
	assert_int_equal(psf_client_predict_recent(c, "S1", "2024-12-31", NULL, 0, &p),
	    PSF_CLIENT_OK);
	assert_true(p.prediction == 0);
	assert_string_equal(p.as_of, "2024-12-31");
	/* an 11-character date with no NUL is cut at 11, as the struct says */
	memcpy(bars[0].date, "2025-01-02X", 11);
	assert_int_equal(psf_client_predict_recent(c, "S1", NULL, bars, 1, &p), PSF_CLIENT_OK);
	assert_string_equal(p.target, "2025-01-02X");
	/* the server's refusal is the prediction's status and message */
	assert_int_equal(psf_client_predict_recent(c, "NOPE", NULL, bars, 1, &p),
	    PSF_CLIENT_NOT_FOUND);
	assert_int_equal(p.status, PSF_CLIENT_NOT_FOUND);
	assert_string_equal(p.message, "unknown symbol 'NOPE'");
	assert_string_equal(p.symbol, "NOPE");
	/* bars promised but missing */
	assert_int_equal(psf_client_predict_recent(c, "S1", NULL, NULL, 2, &p),
	    PSF_CLIENT_INVALID_ARGUMENT);
	psf_client_close(c);
	psf_rpc_server_free(s);
}

static void
test_client_node_status(void **state)
{
	char url[256], err[128] = "";
	psf_rpc_server *s = server(NULL, url, sizeof(url));
	psf_client *c = client(url, NULL);
	psf_node_status *st = NULL;

	(void)state;
	assert_int_equal(psf_client_node_status(c, err, sizeof(err), &st), PSF_CLIENT_OK);
	assert_non_null(st);
	assert_string_equal(st->node, "ps0");
	assert_string_equal(st->role, "ps");
	assert_int_equal(st->ready, 1);
	assert_int_equal(st->model_version, 42);
	assert_true(st->uptime_seconds == 1.5);
	assert_int_equal(st->n_extra, 2);
	assert_string_equal(st->extra[0].key, "mode");
	assert_string_equal(st->extra[0].value, "sync");
	assert_string_equal(st->extra[1].key, "store_bytes");
	assert_string_equal(st->extra[1].value, "4096");
	assert_int_equal(st->n_workers, 2);
	assert_string_equal(st->workers[0].worker, "trainer-0");
	assert_int_equal(st->workers[0].clock, 7);
	assert_int_equal(st->workers[0].live, 1);
	assert_int_equal(st->workers[0].last_seq, 70);
	assert_int_equal(st->workers[0].pushes, 71);
	assert_string_equal(st->workers[1].worker, "trainer-1");
	assert_int_equal(st->workers[1].clock, -1);
	assert_int_equal(st->workers[1].live, 0);
	psf_client_node_status_free(st);
	psf_client_node_status_free(NULL);
	assert_int_equal(psf_client_node_status(NULL, err, sizeof(err), &st),
	    PSF_CLIENT_INVALID_ARGUMENT);
	psf_client_close(c);
	psf_rpc_server_free(s);
}

static void
test_client_node_status_bad_token(void **state)
{
	char url[256], err[128] = "";
	psf_rpc_server *s = server("right-token", url, sizeof(url));
	psf_client *c = client(url, "wrong-token");
	psf_node_status *st = NULL;
	psf_prediction p;

	(void)state;
	assert_int_equal(psf_client_node_status(c, err, sizeof(err), &st),
	    PSF_CLIENT_UNAUTHENTICATED);
	assert_null(st);
	assert_true(strlen(err) > 0);
	assert_int_equal(psf_client_predict_recent(c, "S1", NULL, NULL, 0, &p),
	    PSF_CLIENT_UNAUTHENTICATED);
	psf_client_close(c);
	c = client(url, "right-token");
	assert_int_equal(psf_client_node_status(c, err, sizeof(err), &st), PSF_CLIENT_OK);
	psf_client_node_status_free(st);
	psf_client_close(c);
	psf_rpc_server_free(s);
}

static void
test_client_sizeof_names_the_public_structs(void **state)
{
	(void)state;
	assert_int_equal(psf_client_sizeof("psf_prediction"), sizeof(psf_prediction));
	assert_int_equal(psf_client_sizeof("psf_model_info"), sizeof(psf_model_info));
	assert_int_equal(psf_client_sizeof("psf_client_opts"), sizeof(psf_client_opts));
	assert_int_equal(psf_client_sizeof("psf_client_bar"), sizeof(psf_client_bar));
	assert_int_equal(psf_client_sizeof("psf_node_status"), sizeof(psf_node_status));
	assert_int_equal(psf_client_sizeof("psf_client_kv"), sizeof(psf_client_kv));
	assert_int_equal(psf_client_sizeof("psf_client_worker"), sizeof(psf_client_worker));
	assert_int_equal(psf_client_sizeof("psf_nothing"), 0);
	assert_int_equal(psf_client_sizeof(NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_client_predict_recent_bars_sent),
	    cmocka_unit_test(test_client_node_status),
	    cmocka_unit_test(test_client_node_status_bad_token),
	    cmocka_unit_test(test_client_sizeof_names_the_public_structs),
	};
	int rv;

	snprintf(dir, sizeof(dir), "/tmp/psf-client-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	rv = cmocka_run_group_tests(tests, NULL, NULL);
	for (int i = 0; i < 8; i++) {
		char f[128];

		snprintf(f, sizeof(f), "%s/s%d.ipc", dir, i);
		unlink(f);
	}
	rmdir(dir);
	return rv;
}
