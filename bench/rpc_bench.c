/* rpc_bench -- the psfleet RPC layer against raw NNG req0/rep0, in one process.
 *
 * For each transport (ipc:// in a temp dir, tcp://127.0.0.1:0) three servers run
 * side by side, each with SERVER_CTXS contexts:
 *   raw  a plain rep0 server (context + aio per worker) that answers a 16-byte
 *        message with a 16-byte message, swallows uploads, and serves downloads
 *        by copying the asked number of bytes into a fresh message;
 *   rpc  psf_rpc_server with generated Admin and ParameterServer services
 *        (Health: small reply; Push: unpacked PushRequest; Pull: PullReply whose
 *        `values` are the asked number of bytes, taken from PullRequest.clock);
 *   zc   psf_rpc_server whose ParameterServer/Push is a raw (zero-copy) handler
 *        registered with psf_rpc_server_add_raw.
 * The cases (rtt_1c, rtt_4c, up_*, down_*) are measured for each implementation,
 * interleaved in rotating order inside every repetition, so machine noise hits
 * all of them alike. Figures are medians over the repetitions; ratios are medians
 * of the per-repetition ratios (rpc / raw of the same repetition).
 *
 * Output (DESIGN.md §10): `name value unit` lines, then `ratio_<name> value`.
 * Throughput is payload bytes per second, MB = 10^6 bytes. */
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/log.h"
#include "common/rpc_client.h"
#include "common/rpc_server.h"
#include "common/util.h"
#include "common/wire.h"

#define MIB ((size_t)1 << 20)
#define SERVER_CTXS 16
#define MAX_THREADS 4
#define MAX_REPS 32
#define BIG (16 * MIB)
#define MAX_MSG (2 * PSF_RPC_DEFAULT_MAX_MSG)
#define RAW_HDR 16 /* raw protocol: u64 op, u64 size; tiny messages are just this */
#define RAW_TIMEOUT_MS 30000

#define M_HEALTH "psfleet.v1.Admin/Health"
#define M_PUSH "psfleet.v1.ParameterServer/Push"
#define M_PULL "psfleet.v1.ParameterServer/Pull"

enum { RAW_OP_TINY = 1, RAW_OP_DOWN = 2 };

typedef enum op_kind { OP_RTT, OP_UP, OP_DOWN } op_kind;

/* IM_RPC is the fast psfleet path for the case: the generated Health stub for
 * round trips, call_start_raw to the zero-copy Push handler for uploads, and
 * call_start + pending_wait_raw (no unpack) for downloads. IM_GEN is the fully
 * generic path: psf_rpc_client_call with generated messages on both ends. */
typedef enum impl { IM_RAW, IM_RPC, IM_GEN, IM_COUNT } impl;

static const char *impl_names[IM_COUNT] = {"raw", "rpc", "rpc_generic"};

typedef struct bench_case {
	const char *name;
	op_kind op;
	int threads;
	size_t bytes;
	uint32_t calls_full;
	uint32_t calls_quick;
	int n_impl; /* IM_RAW .. n_impl-1 apply */
} bench_case;

static const bench_case cases[] = {
	{"rtt_1c", OP_RTT, 1, 0, 4000, 500, 2},
	{"rtt_4c", OP_RTT, 4, 0, 4000, 500, 2},
	{"up_1mib", OP_UP, 1, MIB, 300, 20, 3},
	{"up_16mib", OP_UP, 1, BIG, 24, 4, 3},
	{"down_1mib", OP_DOWN, 1, MIB, 300, 20, 3},
	{"down_16mib", OP_DOWN, 1, BIG, 24, 4, 3},
};
#define N_CASES PSF_ARRAY_LEN(cases)

/* One measured run. */
typedef struct sample {
	double rate; /* calls/s for OP_RTT, MB/s otherwise */
	double p50_us;
	double p99_us;
	double cpu_us; /* process CPU time (user + system, client + server) per call */
} sample;

/* ---------------------------------------------------------------- raw server */

typedef struct raw_server raw_server;

typedef struct raw_worker {
	raw_server *srv;
	nng_aio *aio;
	nng_ctx ctx;
	int sending;
} raw_worker;

struct raw_server {
	nng_socket sock;
	const uint8_t *src; /* download source, src_len bytes */
	size_t src_len;
	raw_worker w[SERVER_CTXS];
};

/* raw_answer consumes a request and returns the reply (NULL when out of memory). */
static nng_msg *
raw_answer(raw_server *s, nng_msg *req)
{
	uint64_t hdr[2] = {0, 0};
	size_t size = 0;
	nng_msg *m;

	if (nng_msg_len(req) >= RAW_HDR)
		memcpy(hdr, nng_msg_body(req), RAW_HDR);
	nng_msg_free(req);
	if (hdr[0] == RAW_OP_DOWN && hdr[1] <= s->src_len)
		size = (size_t)hdr[1];
	if (nng_msg_alloc(&m, RAW_HDR + size) != 0)
		return NULL;
	memset(nng_msg_body(m), 0, RAW_HDR);
	if (size > 0)
		memcpy((uint8_t *)nng_msg_body(m) + RAW_HDR, s->src, size);
	return m;
}

static void
raw_cb(void *arg)
{
	raw_worker *w = arg;
	int rv = nng_aio_result(w->aio);
	nng_msg *m;

	if (rv != 0) {
		if (w->sending)
			nng_msg_free(nng_aio_get_msg(w->aio));
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		w->sending = 0;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	}
	if (w->sending || (m = raw_answer(w->srv, nng_aio_get_msg(w->aio))) == NULL) {
		w->sending = 0;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	}
	w->sending = 1;
	nng_aio_set_msg(w->aio, m);
	nng_ctx_send(w->ctx, w->aio);
}

static void
raw_server_free(raw_server *s)
{
	if (s == NULL)
		return;
	nng_close(s->sock);
	for (int i = 0; i < SERVER_CTXS; i++) {
		if (s->w[i].aio != NULL) {
			nng_aio_stop(s->w[i].aio);
			nng_aio_free(s->w[i].aio);
		}
	}
	free(s);
}

/* bound_url writes url with its port replaced by the listener's real one. */
static void
bound_url(const char *url, nng_listener l, char *out, size_t len)
{
	int port = 0;
	const char *colon = strrchr(url, ':');

	if (strncmp(url, "tcp://", 6) != 0 || nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT,
	    &port) != 0 || colon == NULL) {
		snprintf(out, len, "%s", url);
		return;
	}
	snprintf(out, len, "%.*s:%d", (int)(colon - url), url, port);
}

static psf_err
raw_server_open(const char *url, const uint8_t *src, size_t src_len, char *bound, size_t bound_len,
    raw_server **out)
{
	raw_server *s = calloc(1, sizeof(*s));
	nng_listener l;
	int rv;

	if (s == NULL)
		return PSF_ENOMEM;
	s->src = src;
	s->src_len = src_len;
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		free(s);
		return psf_err_from_nng(rv);
	}
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, MAX_MSG);
	for (int i = 0; i < SERVER_CTXS && rv == 0; i++) {
		s->w[i].srv = s;
		if ((rv = nng_aio_alloc(&s->w[i].aio, raw_cb, &s->w[i])) == 0)
			rv = nng_ctx_open(&s->w[i].ctx, s->sock);
	}
	if (rv == 0 && (rv = nng_listener_create(&l, s->sock, url)) == 0 &&
	    (rv = nng_listener_start(l, 0)) == 0)
		bound_url(url, l, bound, bound_len);
	if (rv != 0) {
		fprintf(stderr, "rpc_bench: raw server %s: %s\n", url, nng_strerror(rv));
		raw_server_free(s);
		return psf_err_from_nng(rv);
	}
	for (int i = 0; i < SERVER_CTXS; i++)
		nng_ctx_recv(s->w[i].ctx, s->w[i].aio);
	*out = s;
	return PSF_OK;
}

/* ---------------------------------------------------------------- psfleet services */

typedef struct bench_env bench_env;

static void
unimplemented(void *call)
{
	psf_rpc_fail(call, PSF_STATUS_UNIMPLEMENTED, "not part of rpc_bench");
}

static void
bench_admin_health(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__HealthRequest *in,
    Psfleet__V1__HealthReply_Closure done, void *call)
{
	Psfleet__V1__HealthReply r = PSFLEET__V1__HEALTH_REPLY__INIT;

	r.ready = 1;
	r.node = "rpc_bench";
	r.role = "bench";
	r.model_version = 1;
	done(&r, call);
}

static void
bench_admin_status(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__StatusRequest *in,
    Psfleet__V1__StatusReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_admin_shutdown(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__ShutdownRequest *in,
    Psfleet__V1__ShutdownReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_register_worker(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__RegisterRequest *in, Psfleet__V1__RegisterReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

/* Pull: the bench's convention is that `clock` is the number of value bytes wanted. */
static void
bench_ps_pull(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__PullRequest *in,
    Psfleet__V1__PullReply_Closure done, void *call)
{
	const uint8_t *src = psf_rpc_call_user(call);
	Psfleet__V1__PullReply r = PSFLEET__V1__PULL_REPLY__INIT;

	if (in->clock < 0 || (size_t)in->clock > BIG) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "clock (bytes) out of range");
		done(NULL, call);
		return;
	}
	r.model_version = 1;
	r.values.data = (uint8_t *)src;
	r.values.len = (size_t)in->clock;
	done(&r, call);
}

static void
bench_ps_push(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__PushRequest *in,
    Psfleet__V1__PushReply_Closure done, void *call)
{
	Psfleet__V1__PushReply r = PSFLEET__V1__PUSH_REPLY__INIT;

	r.model_version = in->seq;
	r.staleness = (int64_t)in->values.len; /* lets the client check the bytes arrived */
	done(&r, call);
}

static void
bench_ps_clock(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__ClockRequest *in,
    Psfleet__V1__ClockReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_snapshot(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__SnapshotRequest *in, Psfleet__V1__SnapshotReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_stats(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__StatsRequest *in,
    Psfleet__V1__StatsReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_reduce(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__ReduceRequest *in,
    Psfleet__V1__ReduceReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_report(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__MetricsReport *in,
    Psfleet__V1__MetricsAck_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

/* zc_push is the zero-copy Push: it walks the serialized PushRequest in place
 * (the values are never copied) and answers like bench_ps_push. */
static void
zc_push(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg)
{
	Psfleet__V1__PushReply r = PSFLEET__V1__PUSH_REPLY__INIT;
	psf_wire_reader rd;
	psf_wire_field f;
	psf_err err;

	psf_wire_reader_init(&rd, payload, len);
	while ((err = psf_wire_next(&rd, &f)) == PSF_OK) {
		if (f.number == 2 && f.type == 0)
			r.model_version = f.u64;
		else if (f.number == 6 && f.type == 2)
			r.staleness = (int64_t)f.len;
	}
	if (err != PSF_ENOENT) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "malformed PushRequest");
		psf_rpc_reply(call, NULL);
		return;
	}
	psf_rpc_reply(call, &r.base);
}

/* ---------------------------------------------------------------- environment */

/* One transport's servers and clients. The services live here because the
 * servers keep pointers to them. */
struct bench_env {
	const char *tr;
	raw_server *raw;
	psf_rpc_server *rpc;
	psf_rpc_server *zc;
	nng_socket raw_sock; /* shared by raw client threads (a context each) */
	psf_rpc_client *rpc_c;
	psf_rpc_client *zc_c;
	Psfleet__V1__Admin_Service admin;
	Psfleet__V1__ParameterServer_Service ps;
	const uint8_t *buf; /* BIG bytes: upload values, download source */
	uint8_t *push_ser[2]; /* serialized PushRequest with MIB / BIG values */
	size_t push_len[2];
};

static psf_err
rpc_server_open(bench_env *e, const char *url, int zero_copy, char *bound, size_t bound_len,
    psf_rpc_server **out)
{
	psf_rpc_server_opts o = {.workers = SERVER_CTXS};
	psf_rpc_server *s = NULL;
	psf_err err;

	if ((err = psf_rpc_server_new(&o, &s)) != PSF_OK)
		return err;
	if (zero_copy)
		err = psf_rpc_server_add_raw(s, M_PUSH, &psfleet__v1__push_reply__descriptor, zc_push, e);
	else if ((err = psf_rpc_server_add_service(s, &e->admin.base, e)) == PSF_OK)
		err = psf_rpc_server_add_service(s, &e->ps.base, (void *)e->buf);
	if (err == PSF_OK)
		err = psf_rpc_server_listen(s, url, bound, bound_len);
	if (err == PSF_OK)
		err = psf_rpc_server_start(s);
	if (err != PSF_OK) {
		psf_rpc_server_free(s);
		return err;
	}
	*out = s;
	return PSF_OK;
}

static psf_err
serialize_push(const uint8_t *values, size_t len, uint8_t **out, size_t *len_out)
{
	Psfleet__V1__PushRequest req = PSFLEET__V1__PUSH_REQUEST__INIT;
	uint64_t key = 1;
	uint32_t n = (uint32_t)(len / sizeof(float));
	uint8_t *ser;
	size_t n_ser;

	req.worker = "bench";
	req.seq = 1;
	req.n_keys = 1;
	req.keys = &key;
	req.n_lens = 1;
	req.lens = &n;
	req.values.data = (uint8_t *)values;
	req.values.len = len;
	n_ser = protobuf_c_message_get_packed_size(&req.base);
	if ((ser = malloc(n_ser)) == NULL)
		return PSF_ENOMEM;
	protobuf_c_message_pack(&req.base, ser);
	*out = ser;
	*len_out = n_ser;
	return PSF_OK;
}

static void
env_close(bench_env *e)
{
	if (e == NULL)
		return;
	psf_rpc_client_close(e->rpc_c);
	psf_rpc_client_close(e->zc_c);
	if (nng_socket_id(e->raw_sock) > 0)
		nng_close(e->raw_sock);
	psf_rpc_server_free(e->rpc);
	psf_rpc_server_free(e->zc);
	raw_server_free(e->raw);
	free(e->push_ser[0]);
	free(e->push_ser[1]);
	free(e);
}

/* env_open starts the three servers and their clients: on ipc:// sockets in dir,
 * or on tcp://127.0.0.1 ephemeral ports when dir is NULL. */
static psf_err
env_open(const char *tr, const char *dir, const uint8_t *buf, bench_env **out)
{
	Psfleet__V1__Admin_Service admin = PSFLEET__V1__ADMIN__INIT(bench_admin_);
	Psfleet__V1__ParameterServer_Service ps = PSFLEET__V1__PARAMETER_SERVER__INIT(bench_ps_);
	char url[3][256], bound[3][256];
	const char *names[3] = {"raw", "rpc", "zc"};
	bench_env *e = NULL;
	psf_err err = PSF_ENOMEM;
	int rv;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		goto out;
	e->tr = tr;
	e->admin = admin;
	e->ps = ps;
	e->buf = buf;
	for (int i = 0; i < 3; i++) {
		if (dir != NULL)
			snprintf(url[i], sizeof(url[i]), "ipc://%s/%s.sock", dir, names[i]);
		else
			snprintf(url[i], sizeof(url[i]), "tcp://127.0.0.1:0");
	}
	if ((err = serialize_push(buf, MIB, &e->push_ser[0], &e->push_len[0])) != PSF_OK ||
	    (err = serialize_push(buf, BIG, &e->push_ser[1], &e->push_len[1])) != PSF_OK ||
	    (err = raw_server_open(url[0], buf, BIG, bound[0], sizeof(bound[0]), &e->raw)) != PSF_OK ||
	    (err = rpc_server_open(e, url[1], 0, bound[1], sizeof(bound[1]), &e->rpc)) != PSF_OK ||
	    (err = rpc_server_open(e, url[2], 1, bound[2], sizeof(bound[2]), &e->zc)) != PSF_OK ||
	    (err = psf_rpc_client_open(bound[1], NULL, &e->rpc_c)) != PSF_OK ||
	    (err = psf_rpc_client_open(bound[2], NULL, &e->zc_c)) != PSF_OK)
		goto out;
	if ((rv = nng_req0_open(&e->raw_sock)) != 0) {
		err = psf_err_from_nng(rv);
		goto out;
	}
	nng_socket_set_size(e->raw_sock, NNG_OPT_RECVMAXSZ, MAX_MSG);
	/* Same REQ settings as psfleet's client: no automatic resend, so neither side
	 * arms a resend timer per request. */
	nng_socket_set_ms(e->raw_sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(e->raw_sock, NNG_OPT_SENDTIMEO, RAW_TIMEOUT_MS);
	nng_socket_set_ms(e->raw_sock, NNG_OPT_RECVTIMEO, RAW_TIMEOUT_MS);
	if ((rv = nng_dial(e->raw_sock, bound[0], NULL, 0)) != 0) {
		fprintf(stderr, "rpc_bench: dial %s: %s\n", bound[0], nng_strerror(rv));
		err = psf_err_from_nng(rv);
		goto out;
	}
	*out = e;
	e = NULL;
	err = PSF_OK;
out:
	env_close(e);
	return err;
}

/* ---------------------------------------------------------------- client calls */

/* Per-thread client state: raw calls from several threads need a context each. */
typedef struct client {
	bench_env *e;
	int use_ctx;
	nng_ctx ctx;
	nng_aio *aio;
	uint64_t seq;
} client;

static psf_err
client_init(bench_env *e, int use_ctx, client *c)
{
	int rv;

	memset(c, 0, sizeof(*c));
	c->e = e;
	c->use_ctx = use_ctx;
	if (!use_ctx)
		return PSF_OK;
	if ((rv = nng_aio_alloc(&c->aio, NULL, NULL)) != 0)
		return psf_err_from_nng(rv);
	if ((rv = nng_ctx_open(&c->ctx, e->raw_sock)) != 0) {
		nng_aio_free(c->aio);
		c->aio = NULL;
		return psf_err_from_nng(rv);
	}
	nng_aio_set_timeout(c->aio, RAW_TIMEOUT_MS);
	return PSF_OK;
}

static void
client_fini(client *c)
{
	if (c->aio != NULL) {
		nng_ctx_close(c->ctx);
		nng_aio_free(c->aio);
	}
}

/* raw_exchange sends m (consumed) and waits for the reply. */
static psf_err
raw_exchange(client *c, nng_msg *m, nng_msg **reply)
{
	int rv;

	if (!c->use_ctx) {
		if ((rv = nng_sendmsg(c->e->raw_sock, m, 0)) != 0) {
			nng_msg_free(m);
			return psf_err_from_nng(rv);
		}
		rv = nng_recvmsg(c->e->raw_sock, reply, 0);
		return psf_err_from_nng(rv);
	}
	nng_aio_set_msg(c->aio, m);
	nng_ctx_send(c->ctx, c->aio);
	nng_aio_wait(c->aio);
	if ((rv = nng_aio_result(c->aio)) != 0) {
		nng_msg_free(m);
		return psf_err_from_nng(rv);
	}
	nng_ctx_recv(c->ctx, c->aio);
	nng_aio_wait(c->aio);
	if ((rv = nng_aio_result(c->aio)) != 0)
		return psf_err_from_nng(rv);
	*reply = nng_aio_get_msg(c->aio);
	return PSF_OK;
}

static psf_err
raw_call(client *c, op_kind op, size_t bytes)
{
	uint64_t hdr[2] = {op == OP_DOWN ? RAW_OP_DOWN : RAW_OP_TINY, bytes};
	size_t up = op == OP_UP ? bytes : 0;
	size_t want = RAW_HDR + (op == OP_DOWN ? bytes : 0);
	nng_msg *m, *reply;
	psf_err err;
	int rv;

	if ((rv = nng_msg_alloc(&m, RAW_HDR + up)) != 0)
		return psf_err_from_nng(rv);
	memcpy(nng_msg_body(m), hdr, RAW_HDR);
	if (up > 0)
		memcpy((uint8_t *)nng_msg_body(m) + RAW_HDR, c->e->buf, up);
	if ((err = raw_exchange(c, m, &reply)) != PSF_OK)
		return err;
	err = nng_msg_len(reply) == want ? PSF_OK : PSF_EPROTO;
	nng_msg_free(reply);
	return err;
}

static psf_err
rpc_health(client *c)
{
	Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	psf_err err;

	err = psf_rpc_client_call(c->e->rpc_c, M_HEALTH, &req.base,
	    &psfleet__v1__health_reply__descriptor, NULL, &reply, NULL);
	if (err != PSF_OK)
		return err;
	err = ((Psfleet__V1__HealthReply *)reply)->ready ? PSF_OK : PSF_EPROTO;
	protobuf_c_message_free_unpacked(reply, NULL);
	return err;
}

/* rpc_push_zc: the prebuilt PushRequest through call_start_raw to the zero-copy
 * handler; the reply's message is only borrowed. */
static psf_err
rpc_push_zc(client *c, size_t bytes)
{
	int big = bytes == BIG;
	psf_rpc_pending *p = NULL;
	const uint8_t *pl;
	size_t len;
	psf_err err;

	err = psf_rpc_call_start_raw(c->e->zc_c, M_PUSH, c->e->push_ser[big], c->e->push_len[big],
	    NULL, &p);
	if (err != PSF_OK)
		return err;
	err = psf_rpc_pending_wait_raw(p, &pl, &len, NULL);
	psf_rpc_pending_free(p);
	return err;
}

/* rpc_push_generic: a generated PushRequest, unpacked by the server (values copied
 * by protobuf-c), the PushReply unpacked by the client. */
static psf_err
rpc_push_generic(client *c, size_t bytes)
{
	Psfleet__V1__PushRequest req = PSFLEET__V1__PUSH_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	uint64_t key = 1;
	uint32_t n = (uint32_t)(bytes / sizeof(float));
	psf_err err;

	req.worker = "bench";
	req.seq = ++c->seq;
	req.n_keys = 1;
	req.keys = &key;
	req.n_lens = 1;
	req.lens = &n;
	req.values.data = (uint8_t *)c->e->buf;
	req.values.len = bytes;
	err = psf_rpc_client_call(c->e->rpc_c, M_PUSH, &req.base,
	    &psfleet__v1__push_reply__descriptor, NULL, &reply, NULL);
	if (err != PSF_OK)
		return err;
	err = ((Psfleet__V1__PushReply *)reply)->staleness == (int64_t)bytes ? PSF_OK : PSF_EPROTO;
	protobuf_c_message_free_unpacked(reply, NULL);
	return err;
}

/* values_len finds PullReply.values in a serialized PullReply without copying. */
static size_t
values_len(const uint8_t *pl, size_t len)
{
	psf_wire_reader rd;
	psf_wire_field f;

	psf_wire_reader_init(&rd, pl, len);
	while (psf_wire_next(&rd, &f) == PSF_OK) {
		if (f.number == 4 && f.type == 2)
			return f.len;
	}
	return 0;
}

static psf_err
rpc_pull(client *c, size_t bytes, int generic)
{
	Psfleet__V1__PullRequest req = PSFLEET__V1__PULL_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	psf_rpc_pending *p = NULL;
	const uint8_t *pl;
	size_t len;
	psf_err err;

	req.worker = "bench";
	req.clock = (int64_t)bytes;
	if (generic) {
		err = psf_rpc_client_call(c->e->rpc_c, M_PULL, &req.base,
		    &psfleet__v1__pull_reply__descriptor, NULL, &reply, NULL);
		if (err != PSF_OK)
			return err;
		err = ((Psfleet__V1__PullReply *)reply)->values.len == bytes ? PSF_OK : PSF_EPROTO;
		protobuf_c_message_free_unpacked(reply, NULL);
		return err;
	}
	if ((err = psf_rpc_call_start(c->e->rpc_c, M_PULL, &req.base, NULL, &p)) != PSF_OK)
		return err;
	err = psf_rpc_pending_wait_raw(p, &pl, &len, NULL);
	if (err == PSF_OK && values_len(pl, len) != bytes)
		err = PSF_EPROTO;
	psf_rpc_pending_free(p);
	return err;
}

static psf_err
one_call(client *c, impl im, const bench_case *bc)
{
	if (im == IM_RAW)
		return raw_call(c, bc->op, bc->bytes);
	switch (bc->op) {
	case OP_RTT:
		return rpc_health(c);
	case OP_UP:
		return im == IM_RPC ? rpc_push_zc(c, bc->bytes) : rpc_push_generic(c, bc->bytes);
	default:
		return rpc_pull(c, bc->bytes, im == IM_GEN);
	}
}

/* ---------------------------------------------------------------- measurement */

typedef struct runner {
	bench_env *e;
	const bench_case *bc;
	impl im;
	int use_ctx;
	uint32_t calls;
	uint32_t warmup;
	uint64_t *lat; /* calls entries */
	pthread_barrier_t *bar;
	psf_err err;
} runner;

static void *
runner_main(void *arg)
{
	runner *r = arg;
	client c;
	uint32_t i;

	r->err = client_init(r->e, r->use_ctx, &c);
	for (i = 0; i < r->warmup && r->err == PSF_OK; i++)
		r->err = one_call(&c, r->im, r->bc);
	pthread_barrier_wait(r->bar);
	for (i = 0; i < r->calls && r->err == PSF_OK; i++) {
		uint64_t t0 = psf_now_ns();
		r->err = one_call(&c, r->im, r->bc);
		r->lat[i] = psf_now_ns() - t0;
	}
	client_fini(&c);
	return NULL;
}

static uint64_t
cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	    ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* measure runs calls calls of one case on bc->threads threads. */
static psf_err
measure(bench_env *e, const bench_case *bc, impl im, uint32_t calls, sample *out)
{
	pthread_t th[MAX_THREADS];
	runner r[MAX_THREADS];
	pthread_barrier_t bar;
	uint32_t per = calls / (uint32_t)bc->threads;
	uint64_t *lat, t0, t1, c0, c1;
	psf_err err = PSF_OK;
	int n = bc->threads;

	if ((lat = calloc((size_t)per * (size_t)n, sizeof(*lat))) == NULL)
		return PSF_ENOMEM;
	pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		r[i] = (runner){e, bc, im, n > 1, per, per / 20 + 2, lat + (size_t)i * per, &bar, PSF_OK};
		if (pthread_create(&th[i], NULL, runner_main, &r[i]) != 0) {
			fprintf(stderr, "rpc_bench: pthread_create failed\n");
			exit(1); /* the barrier would never open */
		}
	}
	pthread_barrier_wait(&bar);
	c0 = cpu_ns();
	t0 = psf_now_ns();
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		if (r[i].err != PSF_OK)
			err = r[i].err;
	}
	t1 = psf_now_ns();
	c1 = cpu_ns();
	pthread_barrier_destroy(&bar);
	if (err == PSF_OK) {
		size_t total = (size_t)per * (size_t)n;
		double secs = (double)(t1 - t0) / 1e9;
		qsort(lat, total, sizeof(*lat), cmp_u64);
		out->rate = bc->op == OP_RTT ? (double)total / secs
		                             : (double)total * (double)bc->bytes / secs / 1e6;
		out->p50_us = (double)lat[total / 2] / 1e3;
		out->p99_us = (double)lat[total * 99 / 100] / 1e3;
		out->cpu_us = (double)(c1 - c0) / 1e3 / (double)total;
	}
	free(lat);
	return err;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------------------------------------------------------------- main */

typedef struct opts {
	int quick;
	int reps;
	const char *only;  /* "ipc", "tcp" or NULL: one transport */
	const char *bcase; /* NULL or one case name (for profiling) */
	int only_impl;     /* -1 or one implementation (for profiling) */
} opts;

typedef struct results {
	sample s[N_CASES][IM_COUNT][MAX_REPS];
} results;

static int
case_selected(const opts *o, const bench_case *bc)
{
	return o->bcase == NULL || strcmp(o->bcase, bc->name) == 0;
}

static psf_err
run_transport(bench_env *e, const opts *o, results *res)
{
	psf_err err;

	for (int rep = 0; rep < o->reps; rep++) {
		for (size_t ci = 0; ci < N_CASES; ci++) {
			const bench_case *bc = &cases[ci];
			uint32_t calls = o->quick ? bc->calls_quick : bc->calls_full;
			if (!case_selected(o, bc))
				continue;
			/* rotate which implementation goes first */
			for (int k = 0; k < bc->n_impl; k++) {
				impl im = (impl)((k + rep + (int)ci) % bc->n_impl);
				if (o->only_impl >= 0 && (int)im != o->only_impl)
					continue;
				err = measure(e, bc, im, calls, &res->s[ci][im][rep]);
				if (err != PSF_OK) {
					fprintf(stderr, "rpc_bench: %s %s %s: %s\n", e->tr, impl_names[im],
					    bc->name, psf_strerror(err));
					return err;
				}
			}
		}
	}
	return PSF_OK;
}

static void
print_results(const char *tr, const opts *o, results *res)
{
	double v[MAX_REPS];

	for (size_t ci = 0; ci < N_CASES; ci++) {
		const bench_case *bc = &cases[ci];
		if (!case_selected(o, bc))
			continue;
		for (int im = 0; im < bc->n_impl; im++) {
			const sample *s = res->s[ci][im];
			if (o->only_impl >= 0 && im != o->only_impl)
				continue;
			for (int r = 0; r < o->reps; r++)
				v[r] = s[r].rate;
			printf("%s_%s_%s %.1f %s\n", tr, impl_names[im], bc->name, median(v, o->reps),
			    bc->op == OP_RTT ? "rt/s" : "MB/s");
			for (int r = 0; r < o->reps; r++)
				v[r] = s[r].p50_us;
			printf("%s_%s_%s_p50 %.1f us\n", tr, impl_names[im], bc->name, median(v, o->reps));
			for (int r = 0; r < o->reps; r++)
				v[r] = s[r].p99_us;
			printf("%s_%s_%s_p99 %.1f us\n", tr, impl_names[im], bc->name, median(v, o->reps));
			for (int r = 0; r < o->reps; r++)
				v[r] = s[r].cpu_us;
			printf("%s_%s_%s_cpu %.1f us\n", tr, impl_names[im], bc->name, median(v, o->reps));
		}
	}
	fflush(stdout);
}

/* The ratio lines: name, case, implementation compared with raw, and whether the
 * ratio is of CPU time per call (raw / rpc, so that 1 is parity and less is worse,
 * like the rate ratios). CPU time is far less disturbed by other tenants. */
static const struct {
	const char *name;
	const char *bcase;
	impl im;
	int cpu;
} ratios[] = {
	{"rpc_rtt_vs_raw", "rtt_1c", IM_RPC, 0},
	{"rpc_rtt_4c_vs_raw", "rtt_4c", IM_RPC, 0},
	{"rpc_1mib_vs_raw", "up_1mib", IM_RPC, 0},
	{"rpc_16mib_vs_raw", "up_16mib", IM_RPC, 0},
	{"rpc_generic_1mib_vs_raw", "up_1mib", IM_GEN, 0},
	{"rpc_generic_16mib_vs_raw", "up_16mib", IM_GEN, 0},
	{"rpc_down_1mib_vs_raw", "down_1mib", IM_RPC, 0},
	{"rpc_down_16mib_vs_raw", "down_16mib", IM_RPC, 0},
	{"rpc_generic_down_16mib_vs_raw", "down_16mib", IM_GEN, 0},
	{"rpc_rtt_cpu_vs_raw", "rtt_1c", IM_RPC, 1},
	{"rpc_16mib_cpu_vs_raw", "up_16mib", IM_RPC, 1},
	{"rpc_generic_16mib_cpu_vs_raw", "up_16mib", IM_GEN, 1},
};

static void
print_ratios(const char *tr, const opts *o, results *res)
{
	double v[MAX_REPS];

	for (size_t i = 0; i < PSF_ARRAY_LEN(ratios); i++) {
		size_t ci = 0;
		while (strcmp(cases[ci].name, ratios[i].bcase) != 0)
			ci++;
		if (!case_selected(o, &cases[ci]) || o->only_impl >= 0)
			continue;
		for (int r = 0; r < o->reps; r++) {
			const sample *raw = &res->s[ci][IM_RAW][r], *x = &res->s[ci][ratios[i].im][r];
			v[r] = ratios[i].cpu ? raw->cpu_us / x->cpu_us : x->rate / raw->rate;
		}
		printf("ratio_%s_%s %.3f\n", ratios[i].name, tr, median(v, o->reps));
	}
}

static int
usage(void)
{
	fprintf(stderr, "usage: rpc_bench [--quick] [--reps N] [--transport ipc|tcp]\n"
	                "                 [--case NAME] [--impl raw|rpc|rpc_generic]\n"
	                "--case/--impl run one measurement only (for profiling; no ratios).\n");
	return -1;
}

static int
parse_opts(int argc, char **argv, opts *o)
{
	o->quick = 0;
	o->reps = 0;
	o->only = NULL;
	o->bcase = NULL;
	o->only_impl = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			o->quick = 1;
		} else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
			o->reps = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--transport") == 0 && i + 1 < argc) {
			o->only = argv[++i];
		} else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
			o->bcase = argv[++i];
		} else if (strcmp(argv[i], "--impl") == 0 && i + 1 < argc) {
			const char *name = argv[++i];
			for (int k = 0; k < IM_COUNT; k++) {
				if (strcmp(name, impl_names[k]) == 0)
					o->only_impl = k;
			}
			if (o->only_impl < 0)
				return usage();
		} else {
			return usage();
		}
	}
	if (o->reps == 0)
		o->reps = o->quick ? 3 : 15;
	if (o->reps < 1 || o->reps > MAX_REPS) {
		fprintf(stderr, "rpc_bench: --reps must be 1..%d\n", MAX_REPS);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static results res[2];
	const char *trs[2] = {"ipc", "tcp"};
	char dir[] = "/tmp/psf-rpcbench-XXXXXX";
	uint8_t *buf = NULL;
	opts o;
	int rc = 1, done[2] = {0, 0};

	if (parse_opts(argc, argv, &o) != 0)
		return 2;
	psf_log_setup(PSF_LOG_WARN, "rpc_bench");
	if (mkdtemp(dir) == NULL) {
		perror("rpc_bench: mkdtemp");
		return 1;
	}
	if ((buf = malloc(BIG)) == NULL)
		goto out;
	for (size_t i = 0; i < BIG; i++)
		buf[i] = (uint8_t)(i * 131u + 7u);
	for (int t = 0; t < 2; t++) {
		bench_env *e = NULL;
		psf_err err;

		if (o.only != NULL && strcmp(o.only, trs[t]) != 0)
			continue;
		if ((err = env_open(trs[t], t == 0 ? dir : NULL, buf, &e)) != PSF_OK) {
			fprintf(stderr, "rpc_bench: %s setup: %s\n", trs[t], psf_strerror(err));
			goto out;
		}
		err = run_transport(e, &o, &res[t]);
		env_close(e);
		if (err != PSF_OK)
			goto out;
		print_results(trs[t], &o, &res[t]);
		done[t] = 1;
	}
	for (int t = 0; t < 2; t++) {
		if (done[t])
			print_ratios(trs[t], &o, &res[t]);
	}
	rc = 0;
out:
	free(buf);
	if (psf_rm_rf(dir) != PSF_OK)
		fprintf(stderr, "rpc_bench: could not remove %s\n", dir);
	return rc;
}
