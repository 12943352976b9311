/* rpc_server.c -- the RPC server: lifecycle, dispatch by method name, replies
 * (rpc_server.h; its contexts and connections are in rpc_server_ctx.c). */
#include "lib/net/rpc_server.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/net/rpc_server_internal.h"
#include "lib/net/rpc_tls.h"
#include "lib/net/wire.h"

psf_err
psf_rpc_server_new(const psf_rpc_server_opts *opts, psf_rpc_server **out)
{
	psf_rpc_server *s;
	psf_rpc_server_opts defaults = {0};
	int rv;

	if (opts == NULL)
		opts = &defaults;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return PSF_ENOMEM;
	s->n_slots = opts->workers != 0 ? opts->workers : 64;
	s->max_msg = opts->max_msg != 0 ? opts->max_msg : PSF_RPC_DEFAULT_MAX_MSG;
	s->tls = opts->tls;
	s->max_conns = opts->max_conns;
	s->send_timeout = opts->send_timeout_ms != 0 ? (nng_duration)opts->send_timeout_ms : 10000;
	/* A client that does not read its replies ties up at most a quarter of
	 * the contexts (at least 2); further replies to it close its connection. */
	{
		uint32_t reserve = s->n_slots / 8 > 1 ? s->n_slots / 8 : 1;
		/* At least 2: a send's completion is seen a moment after the client got
		 * the reply, so a client calling one at a time may briefly count 2. */
		s->max_sending = s->n_slots > reserve + 2 ? s->n_slots - reserve : 2;
	}
	pthread_mutex_init(&s->dedup_mu, NULL);
	pthread_mutex_init(&s->conn_mu, NULL);
	pthread_mutex_init(&s->reply_mu, NULL);
	pthread_mutex_init(&s->park_mu, NULL);
	pthread_cond_init(&s->reply_cv, NULL);
	if (opts->token != NULL && (s->token = strdup(opts->token)) == NULL)
		goto fail;
	s->max_parked = opts->max_parked != 0 ? opts->max_parked : DEFAULT_MAX_PARKED;
	s->cap_rctxs = s->n_slots + s->max_parked;
	s->rctxs = calloc(s->cap_rctxs, sizeof(*s->rctxs));
	s->spares = calloc(s->max_parked, sizeof(*s->spares));
	if (s->rctxs == NULL || s->spares == NULL)
		goto fail;
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		psf_log_err("rpc", "rep0 open: %s", nng_strerror(rv));
		goto fail;
	}
	/* Accept up to twice the limit so an oversized request still gets a
	 * RESOURCE_EXHAUSTED reply; beyond that NNG drops the connection. */
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, s->max_msg * 2);
	if ((rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, rpcs_pipe_cb, s)) != 0 ||
	    (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, rpcs_pipe_cb, s)) != 0) {
		psf_log_err("rpc", "pipe notify: %s", nng_strerror(rv));
		goto fail;
	}
	for (uint32_t i = 0; i < s->n_slots; i++) {
		if (rpcs_rctx_new(s) == NULL)
			goto fail;
	}
	*out = s;
	return PSF_OK;
fail:
	psf_rpc_server_free(s);
	return PSF_ENOMEM;
}

psf_err
psf_rpc_server_add_service(psf_rpc_server *s, ProtobufCService *svc, void *user)
{
	if (s->started || s->n_services == MAX_SERVICES || svc == NULL)
		return PSF_EINVAL;
	s->services[s->n_services].svc = svc;
	s->services[s->n_services].user = user;
	s->n_services++;
	return PSF_OK;
}

psf_err
psf_rpc_server_add_raw(psf_rpc_server *s, const char *method,
    const ProtobufCMessageDescriptor *reply_desc, psf_rpc_raw_fn fn, void *arg)
{
	raw_entry *r;

	if (s->started || s->n_raws == MAX_RAW || strlen(method) > PSF_WIRE_MAX_METHOD)
		return PSF_EINVAL;
	r = &s->raws[s->n_raws++];
	snprintf(r->method, sizeof(r->method), "%s", method);
	r->reply_desc = reply_desc;
	r->fn = fn;
	r->arg = arg;
	return PSF_OK;
}

void
psf_rpc_server_set_observer(psf_rpc_server *s, psf_rpc_observer_fn fn, void *arg)
{
	s->observer = fn;
	s->observer_arg = arg;
}

void
psf_rpc_server_set_conn_observer(psf_rpc_server *s, psf_rpc_conn_fn fn, void *arg)
{
	s->conn_fn = fn;
	s->conn_arg = arg;
}

void
psf_rpc_server_get_counts(psf_rpc_server *s, psf_rpc_server_counts *out)
{
	pthread_mutex_lock(&s->conn_mu);
	*out = s->counts;
	pthread_mutex_unlock(&s->conn_mu);
	pthread_mutex_lock(&s->park_mu);
	out->parked = s->n_parked;
	out->park_refused = s->n_park_refused;
	pthread_mutex_unlock(&s->park_mu);
}

/* bound_url: replace the port of a tcp URL by the one actually bound. */
static void
format_bound(const char *url, int port, char *out, size_t len)
{
	const char *colon = strrchr(url, ':');
	const char *scheme_end = strstr(url, "://");

	if (port <= 0 || colon == NULL || scheme_end == NULL || colon < scheme_end + 3) {
		snprintf(out, len, "%s", url);
		return;
	}
	snprintf(out, len, "%.*s:%d", (int)(colon - url), url, port);
}

psf_err
psf_rpc_server_listen(psf_rpc_server *s, const char *url, char *bound_url, size_t bound_len)
{
	nng_listener l;
	int rv, port = 0;
	psf_err err;

	if ((rv = nng_listener_create(&l, s->sock, url)) != 0) {
		psf_log_err("rpc", "listen %s: %s", url, nng_strerror(rv));
		return psf_err_from_nng(rv);
	}
	if (strncmp(url, "tls+tcp://", 10) == 0) {
		err = psf_rpc_tls_apply_listener(l, &s->tls);
		if (err != PSF_OK) {
			nng_listener_close(l);
			return err;
		}
	}
	if ((rv = nng_listener_start(l, 0)) != 0) {
		psf_log_err("rpc", "listen %s: %s", url, nng_strerror(rv));
		nng_listener_close(l);
		return psf_err_from_nng(rv);
	}
	if (strncmp(url, "tcp", 3) == 0 || strncmp(url, "tls+tcp", 7) == 0)
		(void)nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
	if (bound_url != NULL)
		format_bound(url, port, bound_url, bound_len);
	return PSF_OK;
}

psf_err
psf_rpc_server_start(psf_rpc_server *s)
{
	if (s->started)
		return PSF_EINVAL;
	s->started = 1;
	for (uint32_t i = 0; i < s->n_slots; i++) {
		rctx *rc = s->rctxs[i];
		rc->state = ST_RECV;
		nng_ctx_recv(rc->ctx, rc->aio);
	}
	return PSF_OK;
}

static void
release_call(psf_rpc_call *call)
{
	if (call->input != NULL)
		protobuf_c_message_free_unpacked(call->input, NULL);
	call->input = NULL;
	nng_msg_free(call->req); /* NULL-safe in NNG */
	call->req = NULL;
}

void
psf_rpc_server_free(psf_rpc_server *s)
{
	uint32_t n_alloc;

	if (s == NULL)
		return;
	/* A handler thread may be inside psf_rpc_reply (its answer already on the
	 * wire, nng_ctx_send not yet returned): wait for it before the aios go. */
	pthread_mutex_lock(&s->reply_mu);
	s->closing = true;
	while (s->replying > 0)
		pthread_cond_wait(&s->reply_cv, &s->reply_mu);
	pthread_mutex_unlock(&s->reply_mu);
	nng_close(s->sock);
	/* No rctx is added after this (a call parking now keeps its rctx). */
	pthread_mutex_lock(&s->park_mu);
	s->no_more_rctxs = true;
	n_alloc = s->n_alloc;
	pthread_mutex_unlock(&s->park_mu);
	for (uint32_t i = 0; s->rctxs != NULL && i < n_alloc; i++) {
		rctx *rc = s->rctxs[i];
		nng_aio_stop(rc->aio);
		nng_aio_free(rc->aio);
		/* A call still parked in a handler: its handler must not answer
		 * after this point (documented); release what it held. */
		if (rc->state == ST_HANDLER)
			release_call(&rc->call);
		free(rc);
	}
	free(s->rctxs);
	free(s->spares);
	free(s->token);
	free(s->conns);
	pthread_mutex_destroy(&s->dedup_mu);
	pthread_mutex_destroy(&s->conn_mu);
	pthread_mutex_destroy(&s->reply_mu);
	pthread_mutex_destroy(&s->park_mu);
	pthread_cond_destroy(&s->reply_cv);
	free(s);
}

static void
vfail(psf_rpc_call *call, psf_status code, const char *fmt, va_list ap)
{
	call->status = code;
	vsnprintf(call->message, sizeof(call->message), fmt, ap);
}

void
psf_rpc_fail(void *callp, psf_status code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(callp, code, fmt, ap);
	va_end(ap);
}

void
psf_rpc_fail_err(void *callp, psf_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(callp, psf_status_from_err(err), fmt, ap);
	va_end(ap);
}

void *
psf_rpc_call_user(const void *call)
{
	return ((const psf_rpc_call *)call)->user;
}

uint64_t
psf_rpc_call_request_id(const void *call)
{
	return ((const psf_rpc_call *)call)->request_id;
}

uint64_t
psf_rpc_call_deadline_ns(const void *call)
{
	return ((const psf_rpc_call *)call)->deadline_ns;
}

int
psf_rpc_call_is_duplicate(const void *call)
{
	return ((const psf_rpc_call *)call)->is_duplicate;
}

/* build_reply packs the Reply envelope, with the reply message packed straight
 * into the NNG message after the head (no intermediate buffer). */
static nng_msg *
build_reply(psf_rpc_call *call, const ProtobufCMessage *reply)
{
	uint8_t head[PSF_WIRE_HEAD_MAX];
	size_t head_len, body_len = 0;
	ProtobufCMessage *clean = NULL;
	nng_msg *m = NULL;

	/* A reply string may echo client input (a symbol, a trainer id) or be cut
	 * mid-character; strict proto3 parsers refuse the whole reply then. */
	if (reply != NULL && !psf_rpc_msg_utf8_valid(reply)) {
		if (psf_rpc_msg_utf8_copy(reply, &clean) != PSF_OK)
			return NULL;
		psf_log_debug("rpc", "%s: invalid UTF-8 in the reply replaced by U+FFFD",
		    call->method);
		reply = clean;
	}
	if (reply != NULL)
		body_len = protobuf_c_message_get_packed_size(reply);
	head_len = psf_wire_reply_head(head, (uint32_t)call->status,
	    reply != NULL ? NULL : call->message, call->request_id, body_len);
	if (nng_msg_alloc(&m, head_len + body_len) == 0) {
		memcpy(nng_msg_body(m), head, head_len);
		if (reply != NULL)
			protobuf_c_message_pack(reply, (uint8_t *)nng_msg_body(m) + head_len);
	}
	if (clean != NULL)
		protobuf_c_message_free_unpacked(clean, NULL);
	return m;
}

static void answer(psf_rpc_call *call, const ProtobufCMessage *reply);

void
psf_rpc_reply(psf_rpc_call *call, const ProtobufCMessage *reply)
{
	psf_rpc_server *s = call->rc->srv;

	pthread_mutex_lock(&s->reply_mu);
	if (s->closing) { /* the call is released by psf_rpc_server_free */
		pthread_mutex_unlock(&s->reply_mu);
		return;
	}
	s->replying++;
	pthread_mutex_unlock(&s->reply_mu);
	answer(call, reply);
	pthread_mutex_lock(&s->reply_mu);
	if (--s->replying == 0 && s->closing)
		pthread_cond_broadcast(&s->reply_cv);
	pthread_mutex_unlock(&s->reply_mu);
}

/* answer does the work of psf_rpc_reply while the server cannot be freed. */
static void
answer(psf_rpc_call *call, const ProtobufCMessage *reply)
{
	rctx *rc = call->rc;
	psf_rpc_server *s = rc->srv;
	nng_pipe pipe;
	nng_msg *m;

	bool twice, parked;

	pthread_mutex_lock(&s->park_mu);
	twice = call->answered;
	call->answered = 1;
	parked = rc->is_parked;
	pthread_mutex_unlock(&s->park_mu);
	assert(!twice && "psf_rpc_reply called twice");
	if (twice) {
		psf_log_err("rpc", "%s: handler answered twice; ignored", call->method);
		return;
	}
	if (reply != NULL && call->reply_desc != NULL && reply->descriptor != call->reply_desc) {
		psf_log_err("rpc", "%s: handler replied with %s", call->method,
		    reply->descriptor->name);
		reply = NULL;
		call->status = PSF_STATUS_INTERNAL;
		snprintf(call->message, sizeof(call->message), "wrong reply type");
	} else if (reply != NULL) {
		call->status = PSF_STATUS_OK;
	} else if (call->status == PSF_STATUS_OK) {
		call->status = PSF_STATUS_INTERNAL;
		snprintf(call->message, sizeof(call->message), "handler gave no reply");
	}
	m = build_reply(call, reply);
	if (m == NULL) {
		/* Out of memory even for the error reply: say so without a payload. */
		call->status = PSF_STATUS_RESOURCE_EXHAUSTED;
		snprintf(call->message, sizeof(call->message), "out of memory");
		m = build_reply(call, NULL);
	}
	if (s->observer != NULL)
		s->observer(call->method[0] != '\0' ? call->method : "-", call->status,
		    psf_now_ns() - call->start_ns, call->bytes_in, m != NULL ? nng_msg_len(m) : 0,
		    s->observer_arg);
	pipe = nng_msg_get_pipe(call->req);
	release_call(call);
	rc->send_pipe = (uint32_t)nng_pipe_id(pipe);
	/* Only a reply that holds a slot counts against its connection's limit: a
	 * parked call's context holds none, so its reply waiting starves no other
	 * connection (send_timeout still bounds it). Counting those too dropped the
	 * first sync Pull reply of a trainer whose earlier replies' send
	 * completions had not yet run (ps_slots, under load). */
	rc->send_counted = m != NULL && !parked;
	if (rc->send_counted && !rpcs_sending_begin(s, rc->send_pipe)) {
		/* The connection stays: its waiting replies may still go out; if they
		 * do not within send_timeout, the send path closes it. */
		psf_log_warn("rpc",
		    "%s: reply dropped: the connection has %u replies waiting "
		    "and is not reading them",
		    call->method[0] ? call->method : "-", s->max_sending);
		nng_msg_free(m);
		m = NULL;
	}
	if (m == NULL) {
		rpcs_rctx_next(rc);
		return;
	}
	rc->state = ST_SEND;
	nng_aio_set_msg(rc->aio, m);
	/* A client that stops reading must not hold this context for ever. */
	nng_aio_set_timeout(rc->aio, s->send_timeout);
	nng_ctx_send(rc->ctx, rc->aio);
}

static void
generic_closure(const ProtobufCMessage *reply, void *closure_data)
{
	psf_rpc_reply(closure_data, reply);
}

static int
seen_before(psf_rpc_server *s, uint64_t id)
{
	int seen = 0;

	if (id == 0)
		return 0;
	pthread_mutex_lock(&s->dedup_mu);
	for (size_t i = 0; i < DEDUP_RING; i++) {
		if (s->dedup[i] == id) {
			seen = 1;
			break;
		}
	}
	if (!seen) {
		s->dedup[s->dedup_next] = id;
		s->dedup_next = (s->dedup_next + 1) % DEDUP_RING;
	}
	pthread_mutex_unlock(&s->dedup_mu);
	return seen;
}

static int
token_ok(const psf_rpc_server *s, const psf_wire_request *req)
{
	size_t len;
	unsigned diff = 0;

	if (s->token == NULL)
		return 1;
	len = strlen(s->token);
	if (req->auth_len != len)
		return 0;
	for (size_t i = 0; i < len; i++) /* constant time in the token's length */
		diff |= (unsigned)(req->auth[i] ^ (uint8_t)s->token[i]);
	return diff == 0;
}

void
psf_rpc_server_set_gate(psf_rpc_server *s, const char *prefix, psf_rpc_gate_fn fn, void *arg)
{
	snprintf(s->gate_prefix, sizeof(s->gate_prefix), "%s", prefix != NULL ? prefix : "");
	s->gate_arg = arg;
	s->gate = fn;
}

/* find_method resolves "pkg.Service/Method" among the registered services. */
static const ProtobufCMethodDescriptor *
find_method(psf_rpc_server *s, const char *full, service_entry **entry)
{
	const char *slash = strrchr(full, '/');

	if (slash == NULL)
		return NULL;
	for (size_t i = 0; i < s->n_services; i++) {
		const ProtobufCServiceDescriptor *d = s->services[i].svc->descriptor;
		if (strlen(d->name) != (size_t)(slash - full) ||
		    strncmp(d->name, full, (size_t)(slash - full)) != 0)
			continue;
		*entry = &s->services[i];
		return protobuf_c_service_descriptor_get_method_by_name(d, slash + 1);
	}
	return NULL;
}

static void
dispatch(rctx *rc, nng_msg *msg)
{
	psf_rpc_server *s = rc->srv;
	psf_rpc_call *call = &rc->call;
	psf_wire_request req;
	const ProtobufCMethodDescriptor *md;
	service_entry *entry = NULL;
	uint64_t gen;

	pthread_mutex_lock(&s->park_mu);
	gen = ++rc->gen;
	memset(call, 0, sizeof(*call));
	pthread_mutex_unlock(&s->park_mu);
	call->rc = rc;
	call->req = msg;
	call->start_ns = psf_now_ns();
	call->bytes_in = nng_msg_len(msg);
	call->deadline_ns = call->start_ns + (uint64_t)PSF_RPC_DEFAULT_TIMEOUT_MS * 1000000ull;
	rc->state = ST_HANDLER;

	if (call->bytes_in > s->max_msg) {
		rpcs_count(s, &s->counts.oversized);
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED,
		    "request of %zu bytes exceeds the limit of %zu", call->bytes_in, s->max_msg);
		goto answer;
	}
	if (psf_wire_decode_request(nng_msg_body(msg), call->bytes_in, &req) != PSF_OK) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "malformed request envelope");
		goto answer;
	}
	call->request_id = req.request_id;
	if (req.deadline_ms != 0)
		call->deadline_ns = call->start_ns + (uint64_t)req.deadline_ms * 1000000ull;
	if (req.method_len == 0 || req.method_len > PSF_WIRE_MAX_METHOD ||
	    memchr(req.method, '\0', req.method_len) != NULL) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "missing or invalid method name");
		goto answer;
	}
	memcpy(call->method, req.method, req.method_len);
	call->method[req.method_len] = '\0';
	if (!token_ok(s, &req)) {
		rpcs_count(s, &s->counts.unauthenticated);
		psf_rpc_fail(call, PSF_STATUS_UNAUTHENTICATED, "missing or wrong token");
		goto answer;
	}
	call->is_duplicate = seen_before(s, req.request_id);
	if (s->gate != NULL && strncmp(call->method, s->gate_prefix, strlen(s->gate_prefix)) == 0) {
		char why[256] = "";
		psf_status code = s->gate(call->method, why, sizeof(why), s->gate_arg);
		if (code != PSF_STATUS_OK) {
			psf_rpc_fail(call, code, "%s", why);
			goto answer;
		}
	}

	for (size_t i = 0; i < s->n_raws; i++) {
		if (strcmp(s->raws[i].method, call->method) == 0) {
			call->reply_desc = s->raws[i].reply_desc;
			s->raws[i].fn(call, req.payload, req.payload_len, s->raws[i].arg);
			rpcs_park_if_waiting(rc, gen);
			return;
		}
	}
	md = find_method(s, call->method, &entry);
	if (md == NULL) {
		psf_rpc_fail(call, PSF_STATUS_UNIMPLEMENTED, "unknown method '%s'", call->method);
		goto answer;
	}
	call->input = protobuf_c_message_unpack(md->input, NULL, req.payload_len,
	    req.payload != NULL ? req.payload : (const uint8_t *)"");
	if (call->input == NULL) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "malformed %s payload",
		    md->input->name);
		goto answer;
	}
	call->reply_desc = md->output;
	call->user = entry->user;
	entry->svc->invoke(entry->svc, (unsigned)(md - entry->svc->descriptor->methods),
	    call->input, generic_closure, call);
	rpcs_park_if_waiting(rc, gen);
	return;
answer:
	psf_log_debug("rpc", "rejected request: %s", call->message);
	psf_rpc_reply(call, NULL);
}

void
rpcs_rctx_cb(void *arg)
{
	rctx *rc = arg;
	int rv = nng_aio_result(rc->aio);

	switch (rc->state) {
	case ST_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				rc->state = ST_IDLE;
				return;
			}
			nng_ctx_recv(rc->ctx, rc->aio);
			return;
		}
		dispatch(rc, nng_aio_get_msg(rc->aio));
		return;
	case ST_SEND:
		if (rc->send_counted)
			rpcs_sending_end(rc->srv, rc->send_pipe);
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(rc->aio));
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				rc->state = ST_IDLE;
				return;
			}
			if (rv == NNG_ETIMEDOUT) {
				rpcs_count(rc->srv, &rc->srv->counts.send_dropped);
				/* It has not read a reply for that long: let it go. */
				nng_pipe_close((nng_pipe){.id = rc->send_pipe});
				psf_log_warn("rpc",
				    "reply dropped: the client did not read it within %d ms",
				    (int)rc->srv->send_timeout);
			}
		}
		rpcs_rctx_next(rc);
		return;
	default: return;
	}
}
