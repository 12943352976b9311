#include "lib/net/rpc_client.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/net/rpc_tls.h"
#include "lib/net/wire.h"

#define REDIAL_MS 2000

struct psf_rpc_client {
	nng_socket sock;
	char *url;
	char *token;
	uint32_t timeout_ms;
	uint64_t id_base;             /* random high bits of every request id */
	atomic_uint_fast32_t next_id; /* low bits */
	atomic_int n_pipes;           /* connections to the peer now (fail_fast) */
	/* pipe_mu guards the redial state below (pipe_cb and maybe_redial). */
	pthread_mutex_t pipe_mu;
	bool has_pipe_mu;
	/* Redial (pipe_mu): a fail_fast call that finds no connection for
	 * REDIAL_MS replaces the dialer (at most every REDIAL_MS). NNG 1.5's
	 * dialer stops for good when the peer dies during its handshake (EPIPE
	 * becomes NNG_ECLOSED); rpc.c's sendmsg reports that as ECONNRESET, which
	 * fixes it at the root (docs/operations.md). This stays as a second line
	 * of defence: fail_fast callers never wait for a connection, so a dialer
	 * that stopped for any other reason would fail them for good. */
	nng_dialer dialer;
	bool has_dialer;
	psf_rpc_tls tls; /* borrowed paths, for a new dialer */
	uint64_t down_since_ms, redial_ms;
	atomic_bool shut; /* the socket is closed (shutdown or close) */
};

/* pipe_cb counts the client's live connections, for fail_fast calls and for the
 * "no connection" in a timeout's message. A connection counts from ADD_PRE, not
 * ADD_POST: NNG delivers REM_POST only for pipes that got ADD_PRE, and runs it
 * on its reaper thread, which can be before the dialing thread gets to
 * ADD_POST when the peer drops the connection at once (a ps killed as it
 * accepts). Counting ADD_POST, that order left the count at 1 with no
 * connection, for good: calls then waited out their deadline ("no reply")
 * instead of failing fast. Each ADD_PRE has one REM_POST, so the count cannot
 * drift (it is below 0 only for the moment REM_POST runs first). */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	psf_rpc_client *c = arg;

	(void)p;
	pthread_mutex_lock(&c->pipe_mu);
	if (ev == NNG_PIPE_EV_ADD_PRE) {
		atomic_fetch_add(&c->n_pipes, 1);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		if (atomic_fetch_sub(&c->n_pipes, 1) <= 1)
			c->down_since_ms = psf_now_ms();
	}
	pthread_mutex_unlock(&c->pipe_mu);
}

/* maybe_redial replaces the dialer of a client that has had no connection for
 * REDIAL_MS (see struct psf_rpc_client). */
static void
maybe_redial(psf_rpc_client *c)
{
	uint64_t now = psf_now_ms();
	nng_dialer d;

	if (!c->has_pipe_mu || atomic_load(&c->shut))
		return;
	pthread_mutex_lock(&c->pipe_mu);
	if (c->has_dialer && atomic_load(&c->n_pipes) <= 0 && now - c->down_since_ms >= REDIAL_MS &&
	    now - c->redial_ms >= REDIAL_MS) {
		c->redial_ms = now;
		if (nng_dialer_create(&d, c->sock, c->url) == 0) {
			if ((strncmp(c->url, "tls+tcp://", 10) != 0 ||
			        psf_rpc_tls_apply_dialer(d, c->url, &c->tls) == PSF_OK) &&
			    nng_dialer_start(d, NNG_FLAG_NONBLOCK) == 0) {
				nng_dialer_close(c->dialer);
				c->dialer = d;
				psf_log_debug("rpc", "%s: no connection for %llu ms: dialing anew",
				    c->url, (unsigned long long)(now - c->down_since_ms));
			} else {
				nng_dialer_close(d);
			}
		}
	}
	pthread_mutex_unlock(&c->pipe_mu);
}

bool
psf_rpc_client_connected(const psf_rpc_client *c)
{
	return atomic_load(&((psf_rpc_client *)c)->n_pipes) > 0;
}

struct psf_rpc_pending {
	psf_rpc_client *c;
	nng_ctx ctx;
	nng_aio *aio;
	nng_msg *req;   /* kept for re-sends of idempotent calls */
	nng_msg *reply; /* the received Reply envelope */
	char method[PSF_WIRE_MAX_METHOD + 1];
	int idempotent;
	int done;    /* reply or error already collected */
	int sending; /* a send is in flight on aio */
	psf_err err;
	psf_rpc_status st;
	psf_wire_reply rep;
	uint64_t deadline_ns;
};

static uint64_t
random_u64(void)
{
	uint64_t v = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
			v = 0;
		close(fd);
	}
	return v ^ psf_now_ns() ^ ((uint64_t)getpid() << 32);
}

/* A synchronous first dial, cut short at its deadline: NNG 1.5.2's blocking
 * nng_dialer_start has no timeout (a peer that accepts TCP but never answers
 * the SP handshake, or a dropped SYN, would block for minutes), so a watchdog
 * thread closes the dialer when the deadline passes, which cancels the dial. */
typedef struct dial_watch {
	pthread_mutex_t mu; /* guards done, fired */
	pthread_cond_t cv;
	bool done;  /* the dial returned */
	bool fired; /* the deadline passed first: the dialer was closed */
	nng_dialer d;
	struct timespec deadline; /* CLOCK_MONOTONIC */
} dial_watch;

static void *
dial_watch_main(void *arg)
{
	dial_watch *w = arg;
	bool fire;

	pthread_mutex_lock(&w->mu);
	while (!w->done && pthread_cond_timedwait(&w->cv, &w->mu, &w->deadline) != ETIMEDOUT)
		;
	fire = w->fired = !w->done;
	pthread_mutex_unlock(&w->mu);
	if (fire)
		nng_dialer_close(w->d);
	return NULL;
}

/* dial_now connects d before timeout_ms pass; see psf_rpc_client_open. */
static psf_err
dial_now(nng_dialer d, uint32_t timeout_ms)
{
	dial_watch w = {.d = d};
	pthread_condattr_t ca;
	pthread_t th;
	uint64_t ns;
	int rv;

	clock_gettime(CLOCK_MONOTONIC, &w.deadline);
	ns = (uint64_t)w.deadline.tv_nsec + (uint64_t)timeout_ms * 1000000u;
	w.deadline.tv_sec += (time_t)(ns / 1000000000u);
	w.deadline.tv_nsec = (long)(ns % 1000000000u);
	pthread_mutex_init(&w.mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&th, NULL, dial_watch_main, &w) != 0) {
		pthread_cond_destroy(&w.cv);
		pthread_mutex_destroy(&w.mu);
		return PSF_ESYS;
	}
	rv = nng_dialer_start(d, 0);
	pthread_mutex_lock(&w.mu);
	w.done = true;
	pthread_cond_signal(&w.cv);
	pthread_mutex_unlock(&w.mu);
	pthread_join(th, NULL);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	if (w.fired)
		return PSF_ETIMEDOUT;
	return rv == 0 ? PSF_OK : psf_err_from_nng(rv);
}

psf_err
psf_rpc_client_open(const char *url, const psf_rpc_client_opts *opts, psf_rpc_client **out)
{
	psf_rpc_client_opts defaults = {0};
	psf_rpc_client *c;
	nng_dialer d;
	psf_err err = PSF_ENOMEM;
	int rv;

	if (opts == NULL)
		opts = &defaults;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return PSF_ENOMEM;
	c->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : PSF_RPC_DEFAULT_TIMEOUT_MS;
	c->id_base = random_u64() & 0xffffffff00000000ull;
	atomic_init(&c->next_id, 1);
	if ((c->url = strdup(url)) == NULL ||
	    (opts->token != NULL && (c->token = strdup(opts->token)) == NULL))
		goto fail;
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		err = psf_err_from_nng(rv);
		goto fail;
	}
	atomic_init(&c->n_pipes, 0);
	atomic_init(&c->shut, false);
	pthread_mutex_init(&c->pipe_mu, NULL);
	c->has_pipe_mu = true;
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_cb, c);
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT,
	    opts->reconnect_min_ms != 0 ? (nng_duration)opts->reconnect_min_ms : 20);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT,
	    opts->reconnect_max_ms != 0 ? (nng_duration)opts->reconnect_max_ms : 2000);
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ,
	    opts->max_msg != 0 ? opts->max_msg : 2 * PSF_RPC_DEFAULT_MAX_MSG);
	c->tls = opts->tls;
	c->down_since_ms = psf_now_ms();
	if ((rv = nng_dialer_create(&d, c->sock, url)) != 0) {
		psf_log_err("rpc", "dial %s: %s", url, nng_strerror(rv));
		err = psf_err_from_nng(rv);
		goto fail;
	}
	if (strncmp(url, "tls+tcp://", 10) == 0 &&
	    (err = psf_rpc_tls_apply_dialer(d, url, &opts->tls)) != PSF_OK)
		goto fail;
	if (opts->connect_now) {
		if ((err = dial_now(d, c->timeout_ms)) != PSF_OK)
			goto fail;
		/* Non-blocking: the peer may come up later; NNG keeps redialing. */
	} else if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
		psf_log_err("rpc", "dial %s: %s", url, nng_strerror(rv));
		err = psf_err_from_nng(rv);
		goto fail;
	}
	c->dialer = d;
	c->has_dialer = true;
	*out = c;
	return PSF_OK;
fail:
	psf_rpc_client_close(c);
	return err;
}

void
psf_rpc_client_close(psf_rpc_client *c)
{
	if (c == NULL)
		return;
	psf_rpc_client_shutdown(c);
	if (c->has_pipe_mu)
		pthread_mutex_destroy(&c->pipe_mu);
	free(c->url);
	free(c->token);
	free(c);
}

void
psf_rpc_client_shutdown(psf_rpc_client *c)
{
	/* Once: a socket id is not closed twice (NNG could have reused it). */
	if (nng_socket_id(c->sock) > 0 && !atomic_exchange(&c->shut, true))
		nng_close(c->sock);
}

const char *
psf_rpc_client_url(const psf_rpc_client *c)
{
	return c->url;
}

static void
set_status(psf_rpc_pending *p, psf_status code, psf_err err, const char *fmt, const char *arg)
{
	p->st.code = code;
	snprintf(p->st.message, sizeof(p->st.message), fmt, arg);
	p->err = err;
	p->done = 1;
}

/* begin allocates the pending call with its request message holding the envelope
 * head; the payload (payload_len bytes) is written by the caller after the head. */
static psf_err
begin(psf_rpc_client *c, const char *method, size_t payload_len, const psf_rpc_call_opts *o,
    psf_rpc_pending **out, uint8_t **payload_at)
{
	uint8_t head[PSF_WIRE_HEAD_MAX];
	uint32_t timeout = (o != NULL && o->timeout_ms != 0) ? o->timeout_ms : c->timeout_ms;
	uint64_t id = c->id_base | (uint32_t)atomic_fetch_add(&c->next_id, 1);
	psf_rpc_pending *p;
	size_t head_len;
	int rv;

	if (o != NULL && o->fail_fast && atomic_load(&c->n_pipes) <= 0) {
		maybe_redial(c);
		return PSF_EUNAVAIL; /* not connected right now: the caller tries elsewhere */
	}
	head_len = psf_wire_request_head(head, method, id, timeout, c->token,
	    c->token != NULL ? strlen(c->token) : 0, payload_len);
	if (head_len == 0)
		return PSF_EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return PSF_ENOMEM;
	p->c = c;
	p->idempotent = o != NULL && o->idempotent;
	p->deadline_ns = psf_now_ns() + (uint64_t)timeout * 1000000ull;
	snprintf(p->method, sizeof(p->method), "%s", method);
	if ((rv = nng_msg_alloc(&p->req, head_len + payload_len)) != 0 ||
	    (rv = nng_aio_alloc(&p->aio, NULL, NULL)) != 0 ||
	    (rv = nng_ctx_open(&p->ctx, c->sock)) != 0) {
		psf_rpc_pending_free(p);
		return psf_err_from_nng(rv);
	}
	nng_ctx_set_ms(p->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	memcpy(nng_msg_body(p->req), head, head_len);
	*payload_at = (uint8_t *)nng_msg_body(p->req) + head_len;
	*out = p;
	return PSF_OK;
}

static int
remaining_ms(const psf_rpc_pending *p)
{
	uint64_t now = psf_now_ns();

	if (now >= p->deadline_ns)
		return 0;
	return (int)((p->deadline_ns - now + 999999) / 1000000);
}

/* send_attempt puts the request on the wire once. Idempotent calls keep the
 * original message for a possible re-send, at the price of one copy. */
static void
send_attempt(psf_rpc_pending *p)
{
	nng_msg *m = p->req;

	if (p->idempotent) {
		if (nng_msg_dup(&m, p->req) != 0) {
			set_status(p, PSF_STATUS_RESOURCE_EXHAUSTED, PSF_ENOMEM,
			    "%.160s: out of memory", p->method);
			return;
		}
	} else {
		p->req = NULL;
	}
	nng_aio_set_msg(p->aio, m);
	nng_aio_set_timeout(p->aio, remaining_ms(p));
	p->sending = 1;
	nng_ctx_send(p->ctx, p->aio);
}

static psf_err
start(psf_rpc_pending *p, psf_rpc_pending **out)
{
	send_attempt(p);
	*out = p;
	return PSF_OK;
}

psf_err
psf_rpc_call_start_raw(psf_rpc_client *c, const char *method, const void *payload, size_t len,
    const psf_rpc_call_opts *o, psf_rpc_pending **out)
{
	psf_rpc_pending *p;
	uint8_t *at;
	psf_err err = begin(c, method, len, o, &p, &at);

	if (err != PSF_OK)
		return err;
	if (len > 0)
		memcpy(at, payload, len);
	return start(p, out);
}

psf_err
psf_rpc_call_start(psf_rpc_client *c, const char *method, const ProtobufCMessage *req,
    const psf_rpc_call_opts *o, psf_rpc_pending **out)
{
	psf_rpc_pending *p;
	uint8_t *at;
	size_t len = protobuf_c_message_get_packed_size(req);
	psf_err err = begin(c, method, len, o, &p, &at);

	if (err != PSF_OK)
		return err;
	protobuf_c_message_pack(req, at); /* straight into the NNG message */
	return start(p, out);
}

/* transport_error records an NNG failure of one attempt. */
static void
transport_error(psf_rpc_pending *p, int rv)
{
	if (rv == NNG_ETIMEDOUT && !psf_rpc_client_connected(p->c)) {
		/* No connection at all: say so, and for TLS the usual cause (a refused
		 * handshake is silent in NNG: the dialer just retries). */
		int n = snprintf(p->st.message, sizeof(p->st.message),
		    "%.64s: deadline exceeded (no connection to %.64s: %s)", p->method, p->c->url,
		    strncmp(p->c->url, "tls+", 4) == 0
		        ? "server down, or the TLS handshake failed: CA, server name, client certificate"
		        : "server down or unreachable");
		(void)n; /* a longer message is cut, on purpose */
		p->st.code = PSF_STATUS_DEADLINE_EXCEEDED;
		p->err = PSF_ETIMEDOUT;
		p->done = 1;
	} else if (rv == NNG_ETIMEDOUT) {
		set_status(p, PSF_STATUS_DEADLINE_EXCEEDED, PSF_ETIMEDOUT,
		    "%.160s: deadline exceeded (no reply)", p->method);
	} else if (rv == NNG_ECLOSED) {
		set_status(p, PSF_STATUS_UNAVAILABLE, PSF_ECLOSED, "%.160s: client closed",
		    p->method);
	} else {
		set_status(p, PSF_STATUS_UNAVAILABLE, PSF_EUNAVAIL, "%.160s: connection lost",
		    p->method);
	}
}

/* attempt_finish waits for the in-flight attempt; on return p->done is set, or
 * the attempt failed retryably and p->err says why. */
static void
attempt_finish(psf_rpc_pending *p)
{
	int rv;

	nng_aio_wait(p->aio);
	p->sending = 0;
	if ((rv = nng_aio_result(p->aio)) != 0) {
		nng_msg_free(nng_aio_get_msg(p->aio));
		transport_error(p, rv);
		return;
	}
	nng_aio_set_timeout(p->aio, remaining_ms(p));
	nng_ctx_recv(p->ctx, p->aio);
	nng_aio_wait(p->aio);
	if ((rv = nng_aio_result(p->aio)) != 0) {
		transport_error(p, rv);
		return;
	}
	p->reply = nng_aio_get_msg(p->aio);
	if (psf_wire_decode_reply(nng_msg_body(p->reply), nng_msg_len(p->reply), &p->rep) !=
	    PSF_OK) {
		set_status(p, PSF_STATUS_INTERNAL, PSF_EPROTO, "%.160s: malformed reply envelope",
		    p->method);
		return;
	}
	p->st.code = (psf_status)p->rep.status;
	snprintf(p->st.message, sizeof(p->st.message), "%.*s", (int)p->rep.message_len,
	    p->rep.message != NULL ? p->rep.message : "");
	p->err = p->rep.status == PSF_STATUS_OK ? PSF_OK
	                                        : psf_err_from_status((psf_status)p->rep.status);
	p->done = 1;
}

static void
finish(psf_rpc_pending *p)
{
	uint32_t backoff_ms = 20;

	while (!p->done) {
		attempt_finish(p);
		int retryable =
		    p->idempotent && p->st.code == PSF_STATUS_UNAVAILABLE && p->err != PSF_ECLOSED;
		if (!retryable || remaining_ms(p) <= (int)backoff_ms)
			return;
		/* Retry: forget this attempt's outcome, back off, re-send. */
		nng_msg_free(p->reply);
		p->reply = NULL;
		p->done = 0;
		psf_sleep_ms(backoff_ms);
		backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
		send_attempt(p);
	}
}

psf_err
psf_rpc_pending_wait_raw(psf_rpc_pending *p, const uint8_t **payload, size_t *len,
    psf_rpc_status *st)
{
	finish(p);
	if (st != NULL)
		*st = p->st;
	if (p->err != PSF_OK)
		return p->err;
	*payload = p->rep.payload != NULL ? p->rep.payload : (const uint8_t *)"";
	*len = p->rep.payload_len;
	return PSF_OK;
}

psf_err
psf_rpc_pending_wait(psf_rpc_pending *p, const ProtobufCMessageDescriptor *reply_desc,
    ProtobufCMessage **reply_out, psf_rpc_status *st)
{
	const uint8_t *payload;
	size_t len;
	ProtobufCMessage *m;
	psf_err err = psf_rpc_pending_wait_raw(p, &payload, &len, st);

	if (err != PSF_OK)
		return err;
	m = protobuf_c_message_unpack(reply_desc, NULL, len, payload);
	if (m == NULL) {
		set_status(p, PSF_STATUS_INTERNAL, PSF_EPROTO, "malformed %s in reply",
		    reply_desc->name);
		psf_log_warn("rpc", "%s: %s", p->method, p->st.message);
		if (st != NULL)
			*st = p->st;
		return PSF_EPROTO;
	}
	*reply_out = m;
	return PSF_OK;
}

void
psf_rpc_pending_free(psf_rpc_pending *p)
{
	if (p == NULL)
		return;
	if (p->sending)
		nng_aio_wait(p->aio);
	if (p->aio != NULL) {
		nng_aio_stop(p->aio);
		nng_aio_free(p->aio);
	}
	if (nng_ctx_id(p->ctx) > 0)
		nng_ctx_close(p->ctx);
	nng_msg_free(p->req);
	nng_msg_free(p->reply);
	free(p);
}

psf_err
psf_rpc_client_call(psf_rpc_client *c, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *reply_desc, const psf_rpc_call_opts *o,
    ProtobufCMessage **reply_out, psf_rpc_status *st)
{
	psf_rpc_pending *p;
	psf_err err = psf_rpc_call_start(c, method, req, o, &p);

	if (err != PSF_OK) {
		if (st != NULL) {
			st->code = psf_status_from_err(err);
			snprintf(st->message, sizeof(st->message), "%s: %s", method,
			    psf_strerror(err));
		}
		return err;
	}
	err = psf_rpc_pending_wait(p, reply_desc, reply_out, st);
	psf_rpc_pending_free(p);
	return err;
}

static void
stub_invoke(ProtobufCService *service, unsigned method_index, const ProtobufCMessage *input,
    ProtobufCClosure closure, void *closure_data)
{
	psf_rpc_stub *stub = (psf_rpc_stub *)service;
	const ProtobufCMethodDescriptor *md = &service->descriptor->methods[method_index];
	char name[PSF_WIRE_MAX_METHOD + 1];
	ProtobufCMessage *reply = NULL;

	snprintf(name, sizeof(name), "%s/%s", service->descriptor->name, md->name);
	if (psf_rpc_client_call(stub->client, name, input, md->output, NULL, &reply, &stub->last) !=
	    PSF_OK)
		reply = NULL;
	closure(reply, closure_data);
	if (reply != NULL)
		protobuf_c_message_free_unpacked(reply, NULL);
}

void
psf_rpc_stub_init(psf_rpc_stub *stub, psf_rpc_client *c, const ProtobufCServiceDescriptor *desc)
{
	memset(stub, 0, sizeof(*stub));
	stub->base.descriptor = desc;
	stub->base.invoke = stub_invoke;
	stub->client = c;
}
