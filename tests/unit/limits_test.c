/* Server limits over real sockets: message size, connection count, clients that
 * stop reading or send slowly, keys per request and request deadlines on a real ps.
 * Raw SP-over-TCP clients stand in for misbehaving peers (NNG's own REQ socket is
 * too polite to misbehave). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>

#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/model/model.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "lib/net/rpc_server.h"
#include "lib/net/wire.h"
#include "ps/ps.h"

#define BIG_REPLY ((size_t)1 << 20)

static char big_symbol[BIG_REPLY + 1];

/* A raw handler: "test.T/Big" answers with a 1 MiB PredictReply, "test.T/Small"
 * with a short one. */
static void
raw_handler(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg)
{
	Psfleet__V1__PredictReply r = PSFLEET__V1__PREDICT_REPLY__INIT;

	(void)payload;
	(void)len;
	r.symbol = arg != NULL ? big_symbol : "small";
	psf_rpc_reply(call, &r.base);
}

static psf_rpc_server *
server(const psf_rpc_server_opts *o, char *url, size_t len)
{
	psf_rpc_server *s;

	assert_int_equal(psf_rpc_server_new(o, &s), PSF_OK);
	assert_int_equal(psf_rpc_server_add_raw(s, "test.T/Big",
	                     &psfleet__v1__predict_reply__descriptor, raw_handler, big_symbol),
	    PSF_OK);
	assert_int_equal(psf_rpc_server_add_raw(s, "test.T/Small",
	                     &psfleet__v1__predict_reply__descriptor, raw_handler, NULL),
	    PSF_OK);
	assert_int_equal(psf_rpc_server_listen(s, "tcp://127.0.0.1:0", url, len), PSF_OK);
	assert_int_equal(psf_rpc_server_start(s), PSF_OK);
	return s;
}

/* call_small makes one call; returns the error and leaves the status in *st. */
static psf_err
call_small(psf_rpc_client *c, uint32_t timeout_ms, int idempotent, psf_rpc_status *st)
{
	Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
	Psfleet__V1__PredictReply *r = NULL;
	psf_rpc_call_opts o = {timeout_ms, idempotent, 0};
	psf_err err = psf_rpc_client_call(c, "test.T/Small", &req.base,
	    &psfleet__v1__predict_reply__descriptor, &o, (ProtobufCMessage **)&r, st);

	if (err == PSF_OK) {
		assert_string_equal(r->symbol, "small");
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return err;
}

static int
port_of(const char *url)
{
	const char *colon = strrchr(url, ':');

	assert_non_null(colon);
	return atoi(colon + 1);
}

/* raw_connect opens a TCP connection to 127.0.0.1:port and does the SP handshake
 * of a req0 peer (protocol 0x30; the server answers as rep0, 0x31). */
static int
raw_connect(int port)
{
	struct sockaddr_in a = {0};
	uint8_t hs[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0}, peer[8];
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct timeval tv = {5, 0};

	assert_true(fd >= 0);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(send(fd, hs, sizeof(hs), 0), (ssize_t)sizeof(hs));
	assert_int_equal(recv(fd, peer, sizeof(peer), MSG_WAITALL), (ssize_t)sizeof(peer));
	assert_int_equal(peer[5], 0x31);
	return fd;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* raw_request frames one request: 8-byte length, 4-byte REQ id (high bit set),
 * then the Request envelope with an empty payload. Returns the frame length. */
static size_t
raw_request(uint8_t *buf, const char *method, uint32_t id)
{
	size_t n = psf_wire_request_head(buf + 12, method, id, 30000, NULL, 0, 0);

	put_be64(buf, n + 4);
	buf[8] = (uint8_t)(0x80 | (id >> 24));
	buf[9] = (uint8_t)(id >> 16);
	buf[10] = (uint8_t)(id >> 8);
	buf[11] = (uint8_t)id;
	return n + 12;
}

static void
test_limits_oversized_request_is_refused(void **state)
{
	psf_rpc_server_opts so = {.workers = 4, .max_msg = 4096};
	psf_rpc_server_counts k;
	psf_rpc_client *c;
	psf_rpc_status st;
	psf_rpc_pending *p;
	const uint8_t *out;
	size_t out_len;
	char url[256];
	uint8_t *payload = calloc(1, 6000);
	psf_rpc_server *s = server(&so, url, sizeof(url));

	(void)state;
	assert_int_equal(psf_rpc_client_open(url, NULL, &c), PSF_OK);
	assert_int_equal(psf_rpc_call_start_raw(c, "test.T/Small", payload, 6000, NULL, &p),
	    PSF_OK);
	assert_int_not_equal(psf_rpc_pending_wait_raw(p, &out, &out_len, &st), PSF_OK);
	assert_int_equal(st.code, PSF_STATUS_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(st.message, "exceeds the limit"));
	psf_rpc_pending_free(p);
	/* The connection is kept: the next call is served. */
	assert_int_equal(call_small(c, 5000, 0, &st), PSF_OK);
	psf_rpc_server_get_counts(s, &k);
	assert_int_equal(k.oversized, 1);
	psf_rpc_client_close(c);
	psf_rpc_server_free(s);
	free(payload);
}

static void
test_limits_max_connections(void **state)
{
	psf_rpc_server_opts so = {.workers = 4, .max_conns = 2};
	psf_rpc_client_opts co = {.reconnect_min_ms = 20, .reconnect_max_ms = 100};
	psf_rpc_server_counts k;
	psf_rpc_client *c[3];
	psf_rpc_status st;
	char url[256];
	psf_rpc_server *s = server(&so, url, sizeof(url));

	(void)state;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(psf_rpc_client_open(url, &co, &c[i]), PSF_OK);
		assert_int_equal(call_small(c[i], 5000, 1, &st), PSF_OK);
	}
	assert_int_equal(psf_rpc_client_open(url, &co, &c[2]), PSF_OK);
	/* The third connection is closed on arrival, again at every redial. */
	assert_int_not_equal(call_small(c[2], 600, 0, &st), PSF_OK);
	psf_rpc_server_get_counts(s, &k);
	assert_true(k.conns_refused >= 1);
	assert_int_equal(k.conns_open, 2);
	assert_int_equal(k.conns_accepted, 2);
	/* The first two are still served. */
	assert_int_equal(call_small(c[0], 5000, 0, &st), PSF_OK);
	assert_int_equal(call_small(c[1], 5000, 0, &st), PSF_OK);
	/* One leaves: the third gets in at its next redial. */
	psf_rpc_client_close(c[0]);
	assert_int_equal(call_small(c[2], 10000, 1, &st), PSF_OK);
	psf_rpc_server_get_counts(s, &k);
	assert_int_equal(k.conns_open, 2);
	assert_int_equal(k.conns_accepted, 3);
	print_message("max_connections=2: %llu connection attempts refused\n",
	    (unsigned long long)k.conns_refused);
	psf_rpc_client_close(c[1]);
	psf_rpc_client_close(c[2]);
	psf_rpc_server_free(s);
}

static void
test_limits_client_not_reading_does_not_block_others(void **state)
{
	/* A send timeout far past the callers' deadlines: only the per-connection
	 * cap on waiting replies can keep the other client served. */
	psf_rpc_server_opts so = {.workers = 4, .send_timeout_ms = 60000};
	psf_rpc_server_counts k;
	psf_rpc_client *c;
	psf_rpc_status st;
	uint8_t frame[PSF_WIRE_HEAD_MAX + 16];
	char url[256];
	psf_rpc_server *s;
	int fd, served = 0;

	(void)state;
	memset(big_symbol, 'x', BIG_REPLY);
	s = server(&so, url, sizeof(url));
	fd = raw_connect(port_of(url));
	/* 40 requests for 1 MiB replies, never read: far beyond the socket buffers. */
	for (uint32_t i = 1; i <= 40; i++) {
		size_t n = raw_request(frame, "test.T/Big", i);
		if (send(fd, frame, n, MSG_NOSIGNAL) != (ssize_t)n)
			break; /* the server may already have closed it */
	}
	psf_sleep_ms(300);
	assert_int_equal(psf_rpc_client_open(url, NULL, &c), PSF_OK);
	for (int i = 0; i < 20; i++)
		served += call_small(c, 5000, 0, &st) == PSF_OK;
	assert_int_equal(served, 20);
	psf_rpc_server_get_counts(s, &k);
	assert_true(k.send_dropped >= 1); /* the stuck connection was let go */
	print_message("stuck reader: %d/20 calls of another client served, %llu replies dropped\n",
	    served, (unsigned long long)k.send_dropped);
	close(fd);
	psf_rpc_client_close(c);
	psf_rpc_server_free(s);
}

typedef struct dribble {
	int fd;
	volatile int stop;
	size_t sent;
} dribble;

/* dribble_main sends a frame announcing 1 MiB, 512 bytes every 5 ms. */
static void *
dribble_main(void *arg)
{
	dribble *d = arg;
	uint8_t chunk[512] = {0};

	put_be64(chunk, (uint64_t)1 << 20);
	while (!d->stop && d->sent < ((size_t)1 << 20)) {
		if (send(d->fd, chunk, sizeof(chunk), MSG_NOSIGNAL) != (ssize_t)sizeof(chunk))
			break;
		memset(chunk, 0, 8);
		d->sent += sizeof(chunk);
		psf_sleep_ms(5);
	}
	return NULL;
}

static void
test_limits_slow_sender_does_not_block_others(void **state)
{
	psf_rpc_server_opts so = {.workers = 2};
	psf_rpc_client *c;
	psf_rpc_status st;
	char url[256];
	psf_rpc_server *s = server(&so, url, sizeof(url));
	dribble d[3];
	pthread_t t[3];
	int served = 0;

	(void)state;
	/* More slow senders than worker contexts. */
	for (int i = 0; i < 3; i++) {
		d[i] = (dribble){raw_connect(port_of(url)), 0, 0};
		assert_int_equal(pthread_create(&t[i], NULL, dribble_main, &d[i]), 0);
	}
	psf_sleep_ms(100);
	assert_int_equal(psf_rpc_client_open(url, NULL, &c), PSF_OK);
	for (int i = 0; i < 50; i++)
		served += call_small(c, 5000, 0, &st) == PSF_OK;
	for (int i = 0; i < 3; i++) {
		d[i].stop = 1;
		pthread_join(t[i], NULL);
		assert_true(d[i].sent > 0 && d[i].sent < ((size_t)1 << 20)); /* still sending */
		close(d[i].fd);
	}
	assert_int_equal(served, 50);
	psf_rpc_client_close(c);
	psf_rpc_server_free(s);
}

/* ------------------------------------------------------------- on a real ps */

typedef struct psfix {
	char dir[64];
	psf_config *cfg;
	psf_ps *ps;
	psf_rpc_client *c;
	psf_model *model;
	uint64_t keys[64];
	uint32_t lens[64];
	size_t n_keys;
} psfix;

static void
ps_start(psfix *f, const char *extra)
{
	char text[2048], err[512];
	psf_ps_opts opts = {false, "tcp://127.0.0.1:0", "", NULL};

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/psf-limits-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(text, sizeof(text),
	    "name: l\nseed: 7\nrun_dir: %s\nnodes:\n  ps:\n    - {id: ps0, listen: \"tcp://127.0.0.1:0\"}\n"
	    "  trainers:\n    - {id: trainer-0}\n    - {id: trainer-1}\n"
	    "data: {path: %s/none.csv}\nfeatures: [\"lag:0\", \"lag:1\", \"lag:2\"]\n"
	    "model: {kind: mlp, hidden: [4], chunk_floats: 4}\n"
	    "consistency: {mode: sync, straggler_timeout_ms: 60000}\n"
	    "durability: {mode: none}\n%s",
	    f->dir, f->dir, extra);
	if (psf_config_parse("limits.yaml", text, strlen(text), err, sizeof(err), &f->cfg) !=
	    PSF_OK)
		fail_msg("config: %s", err);
	assert_int_equal(psf_ps_new(f->cfg, &f->cfg->nodes[0], &opts, &f->ps), PSF_OK);
	assert_int_equal(psf_rpc_client_open(psf_ps_url(f->ps), NULL, &f->c), PSF_OK);
	assert_int_equal(psf_model_new(&f->cfg->model, (uint32_t)f->cfg->n_features, f->cfg->target,
	                     f->cfg->seed, &f->model),
	    PSF_OK);
	assert_int_equal(psf_model_dense_keys(f->model, f->keys, f->lens, 64, &f->n_keys), PSF_OK);
	assert_true(f->n_keys >= 4);
}

static void
ps_stop(psfix *f)
{
	psf_rpc_client_close(f->c);
	psf_ps_free(f->ps);
	psf_model_free(f->model);
	assert_int_equal(psf_rm_rf(f->dir), PSF_OK);
	psf_config_free(f->cfg);
}

static psf_err
ps_call(psfix *f, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rd, uint32_t timeout_ms, psf_rpc_status *st)
{
	ProtobufCMessage *r = NULL;
	psf_rpc_call_opts o = {timeout_ms, 0, 0};
	psf_err err = psf_rpc_client_call(f->c, method, req, rd, &o, &r, st);

	if (r != NULL)
		protobuf_c_message_free_unpacked(r, NULL);
	return err;
}

static void
test_limits_keys_per_request(void **state)
{
	psfix f;
	Psfleet__V1__RegisterRequest reg = PSFLEET__V1__REGISTER_REQUEST__INIT;
	Psfleet__V1__PullRequest pull = PSFLEET__V1__PULL_REQUEST__INIT;
	psf_rpc_status st;

	(void)state;
	ps_start(&f, "limits: {max_keys_per_request: 3}\n");
	reg.worker = "trainer-0";
	assert_int_equal(ps_call(&f, PSF_M_REGISTER, &reg.base,
	                     &psfleet__v1__register_reply__descriptor, 5000, &st),
	    PSF_OK);
	pull.worker = "trainer-0";
	pull.keys = f.keys;
	pull.n_keys = 4;
	assert_int_not_equal(
	    ps_call(&f, PSF_M_PULL, &pull.base, &psfleet__v1__pull_reply__descriptor, 5000, &st),
	    PSF_OK);
	assert_int_equal(st.code, PSF_STATUS_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(st.message, "exceed the limit of 3"));
	pull.n_keys = 3;
	assert_int_equal(
	    ps_call(&f, PSF_M_PULL, &pull.base, &psfleet__v1__pull_reply__descriptor, 5000, &st),
	    PSF_OK);
	ps_stop(&f);
}

static void
test_limits_request_deadline(void **state)
{
	psfix f;
	Psfleet__V1__RegisterRequest reg = PSFLEET__V1__REGISTER_REQUEST__INIT;
	Psfleet__V1__PullRequest pull = PSFLEET__V1__PULL_REQUEST__INIT;
	psf_rpc_status st;
	uint64_t t0, waited_ms;

	(void)state;
	ps_start(&f, "");
	reg.worker = "trainer-0";
	assert_int_equal(ps_call(&f, PSF_M_REGISTER, &reg.base,
	                     &psfleet__v1__register_reply__descriptor, 5000, &st),
	    PSF_OK);
	/* Sync: the pull for clock 1 waits for round 0, which trainer-1 never
	 * pushes; the ps answers at the request's deadline, not later. */
	pull.worker = "trainer-0";
	pull.clock = 1;
	pull.keys = f.keys;
	pull.n_keys = 1;
	t0 = psf_now_ms();
	assert_int_equal(
	    ps_call(&f, PSF_M_PULL, &pull.base, &psfleet__v1__pull_reply__descriptor, 400, &st),
	    PSF_ETIMEDOUT);
	waited_ms = psf_now_ms() - t0;
	assert_int_equal(st.code, PSF_STATUS_DEADLINE_EXCEEDED);
	assert_true(waited_ms >= 350);
	/* The parked call was answered by the ps (not only abandoned by the client):
	 * the connection serves the next request at once. */
	pull.clock = 0;
	assert_int_equal(
	    ps_call(&f, PSF_M_PULL, &pull.base, &psfleet__v1__pull_reply__descriptor, 5000, &st),
	    PSF_OK);
	ps_stop(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limits_oversized_request_is_refused),
	    cmocka_unit_test(test_limits_max_connections),
	    cmocka_unit_test(test_limits_client_not_reading_does_not_block_others),
	    cmocka_unit_test(test_limits_slow_sender_does_not_block_others),
	    cmocka_unit_test(test_limits_keys_per_request),
	    cmocka_unit_test(test_limits_request_deadline),
	};

	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	/* NNG releases servers (HTTP ones especially) on its own threads: let them
	 * finish before LeakSanitizer looks at the heap at exit. */
	nng_fini();
	return failed;
}
