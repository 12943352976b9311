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
#include "lib/net/rpc_tls.h"
#include "lib/base/util.h"
#include "lib/net/wire.h"

#define MAX_SERVICES 8
#define MAX_RAW 16
#define DEDUP_RING 1024
#define DEFAULT_MAX_PARKED 4096

enum worker_state { ST_IDLE, ST_RECV, ST_HANDLER, ST_SEND };

typedef struct worker worker;

struct psf_rpc_call {
	worker *w;
	nng_msg *req;            /* the received message; payload pointers borrow from it */
	ProtobufCMessage *input; /* unpacked request (generic handlers) */
	const ProtobufCMessageDescriptor *reply_desc;
	void *user;
	uint64_t request_id;
	uint64_t start_ns;
	uint64_t deadline_ns;
	size_t bytes_in;
	int is_duplicate;
	int answered;
	psf_status status;
	char message[256];
	char method[PSF_WIRE_MAX_METHOD + 1];
};

/* A worker is one NNG context with its aio and the call it serves. n_workers
 * of them (the slots) run RECV -> dispatch -> SEND. When a handler returns
 * without answering (it parked the call), its worker leaves the slots with the
 * call and a spare worker takes its place; once the parked call is answered
 * and its reply sent, that worker becomes a spare. Workers are never freed
 * before the server, so a call pointer stays valid while it is parked. */
struct worker {
	psf_rpc_server *srv;
	nng_aio *aio;
	nng_ctx ctx;
	enum worker_state state;
	uint32_t send_pipe; /* ST_SEND: the connection the reply goes to */
	/* Guarded by park_mu: gen counts the calls dispatched on this worker, so
	 * the dispatching thread can tell whether its call is still the current
	 * one once the handler returned; is_parked: the call left the slots. */
	uint64_t gen;
	bool is_parked;
	psf_rpc_call call;
};

/* An accepted connection and the replies waiting to be handed to it. */
typedef struct conn_entry {
	uint32_t id;
	uint32_t n_sending;
} conn_entry;

typedef struct service_entry {
	ProtobufCService *svc;
	void *user;
} service_entry;

typedef struct raw_entry {
	char method[PSF_WIRE_MAX_METHOD + 1];
	const ProtobufCMessageDescriptor *reply_desc;
	psf_rpc_raw_fn fn;
	void *arg;
} raw_entry;

struct psf_rpc_server {
	nng_socket sock;
	/* park_mu guards the workers beyond the first n_workers (allocated when
	 * a call parks; at most max_parked of them), the spare stack, n_parked,
	 * every worker's gen and is_parked, and every call's `answered`. */
	pthread_mutex_t park_mu;
	worker **workers;   /* cap_workers entries, n_alloc of them allocated */
	uint32_t n_workers; /* slots: contexts receiving or serving a call */
	uint32_t n_alloc, cap_workers;
	worker **spares;    /* allocated workers not in use */
	uint32_t n_spares;
	uint32_t max_parked, n_parked;
	uint64_t n_park_refused; /* calls that kept their slot: max_parked were parked */
	bool no_more_workers; /* set by psf_rpc_server_free */
	size_t max_msg;
	char *token;
	psf_rpc_tls tls;
	int started;
	service_entry services[MAX_SERVICES];
	size_t n_services;
	raw_entry raws[MAX_RAW];
	size_t n_raws;
	psf_rpc_observer_fn observer;
	void *observer_arg;
	psf_rpc_conn_fn conn_fn;
	void *conn_arg;
	uint32_t max_conns;
	nng_duration send_timeout;
	/* conn_mu guards the ids of the accepted, still open pipes (a pipe refused
	 * at ADD_PRE never enters, so its REM_POST, if any, changes nothing) and
	 * the counters. */
	pthread_mutex_t conn_mu;
	conn_entry *conns;
	uint32_t n_conns, cap_conns;
	uint32_t max_sending; /* replies one connection may have waiting at once */
	psf_rpc_server_counts counts;
	/* dedup_mu guards the ring of recently seen request ids. */
	pthread_mutex_t dedup_mu;
	uint64_t dedup[DEDUP_RING];
	size_t dedup_next;
	/* reply_mu guards replying (psf_rpc_reply calls under way, which may run on
	 * a handler's own thread) and closing: psf_rpc_server_free waits for the
	 * first to reach 0 before it frees what they use; later replies do nothing. */
	pthread_mutex_t reply_mu;
	pthread_cond_t reply_cv;
	uint32_t replying;
	bool closing;
};

static void worker_cb(void *arg);

/* grow_conns makes room for one more connection id. Holds conn_mu. */
static bool
grow_conns(psf_rpc_server *s)
{
	uint32_t cap = s->cap_conns != 0 ? s->cap_conns * 2 : 16;
	conn_entry *c = realloc(s->conns, cap * sizeof(*c));

	if (c == NULL)
		return false;
	s->conns = c;
	s->cap_conns = cap;
	return true;
}

/* find_conn returns the entry of an accepted connection or NULL. Holds conn_mu. */
static conn_entry *
find_conn(psf_rpc_server *s, uint32_t id)
{
	for (uint32_t i = 0; i < s->n_conns; i++) {
		if (s->conns[i].id == id)
			return &s->conns[i];
	}
	return NULL;
}

/* sending_begin accounts a reply about to be sent on connection id. It returns
 * false (drop this reply) when the connection already has max_sending replies
 * waiting: each further one would hold a worker context for up to send_timeout.
 * max_sending leaves max(1, workers / 8) contexts to the other connections
 * while letting one connection that multiplexes many calls (the gateway's) use
 * nearly all of them. A reply can only be sent on the context that received its
 * request, so a reply over the limit cannot wait elsewhere: it is dropped. */
static bool
sending_begin(psf_rpc_server *s, uint32_t id)
{
	conn_entry *c;
	bool ok = true;

	pthread_mutex_lock(&s->conn_mu);
	if ((c = find_conn(s, id)) != NULL) {
		if (c->n_sending >= s->max_sending) {
			ok = false;
			s->counts.send_dropped++;
		} else {
			c->n_sending++;
		}
	}
	pthread_mutex_unlock(&s->conn_mu);
	return ok;
}

static void
sending_end(psf_rpc_server *s, uint32_t id)
{
	conn_entry *c;

	pthread_mutex_lock(&s->conn_mu);
	if ((c = find_conn(s, id)) != NULL && c->n_sending > 0)
		c->n_sending--;
	pthread_mutex_unlock(&s->conn_mu);
}

/* pipe_cb admits a new connection while fewer than max_conns are open (closing
 * it at once otherwise: it has not been added to the socket, so no request of
 * it is read) and forgets an accepted one that ended. */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	psf_rpc_server *s = arg;
	uint32_t id = (uint32_t)nng_pipe_id(p), n_open;
	psf_rpc_conn_event what;
	bool refuse = false;

	pthread_mutex_lock(&s->conn_mu);
	if (ev == NNG_PIPE_EV_ADD_PRE) {
		if ((s->max_conns != 0 && s->n_conns >= s->max_conns) ||
		    (s->n_conns == s->cap_conns && !grow_conns(s))) {
			refuse = true;
			s->counts.conns_refused++;
			what = PSF_RPC_CONN_REFUSED;
		} else {
			s->conns[s->n_conns++] = (conn_entry){id, 0};
			s->counts.conns_accepted++;
			what = PSF_RPC_CONN_OPEN;
		}
	} else {
		conn_entry *c = find_conn(s, id);
		if (c == NULL) { /* refused earlier, or never admitted */
			pthread_mutex_unlock(&s->conn_mu);
			return;
		}
		*c = s->conns[--s->n_conns];
		what = PSF_RPC_CONN_CLOSE;
	}
	n_open = s->n_conns;
	s->counts.conns_open = n_open;
	pthread_mutex_unlock(&s->conn_mu);
	if (refuse) {
		psf_log_warn("rpc", "connection refused: %u connections open (limits.max_connections)",
		    n_open);
		nng_pipe_close(p);
	}
	if (s->conn_fn != NULL)
		s->conn_fn(what, n_open, s->conn_arg);
}

/* worker_new allocates a worker with its context and adds it to s->workers,
 * or returns NULL (logged) when out of memory or the socket is closed. The
 * caller holds park_mu, or is the only thread (psf_rpc_server_new). */
static worker *
worker_new(psf_rpc_server *s)
{
	worker *w;
	int rv;

	if (s->n_alloc == s->cap_workers || (w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->srv = s;
	if ((rv = nng_aio_alloc(&w->aio, worker_cb, w)) != 0 ||
	    (rv = nng_ctx_open(&w->ctx, s->sock)) != 0) {
		psf_log_err("rpc", "worker setup: %s", nng_strerror(rv));
		if (w->aio != NULL)
			nng_aio_free(w->aio);
		free(w);
		return NULL;
	}
	s->workers[s->n_alloc++] = w;
	return w;
}

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
	s->n_workers = opts->workers != 0 ? opts->workers : 64;
	s->max_msg = opts->max_msg != 0 ? opts->max_msg : PSF_RPC_DEFAULT_MAX_MSG;
	s->tls = opts->tls;
	s->max_conns = opts->max_conns;
	s->send_timeout = opts->send_timeout_ms != 0 ? (nng_duration)opts->send_timeout_ms : 10000;
	/* A client that does not read its replies ties up at most a quarter of
	 * the contexts (at least 2); further replies to it close its connection. */
	{
		uint32_t reserve = s->n_workers / 8 > 1 ? s->n_workers / 8 : 1;
		/* At least 2: a send's completion is seen a moment after the client got
		 * the reply, so a client calling one at a time may briefly count 2. */
		s->max_sending = s->n_workers > reserve + 2 ? s->n_workers - reserve : 2;
	}
	pthread_mutex_init(&s->dedup_mu, NULL);
	pthread_mutex_init(&s->conn_mu, NULL);
	pthread_mutex_init(&s->reply_mu, NULL);
	pthread_mutex_init(&s->park_mu, NULL);
	pthread_cond_init(&s->reply_cv, NULL);
	if (opts->token != NULL && (s->token = strdup(opts->token)) == NULL)
		goto fail;
	s->max_parked = opts->max_parked != 0 ? opts->max_parked : DEFAULT_MAX_PARKED;
	s->cap_workers = s->n_workers + s->max_parked;
	s->workers = calloc(s->cap_workers, sizeof(*s->workers));
	s->spares = calloc(s->max_parked, sizeof(*s->spares));
	if (s->workers == NULL || s->spares == NULL)
		goto fail;
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		psf_log_err("rpc", "rep0 open: %s", nng_strerror(rv));
		goto fail;
	}
	/* Accept up to twice the limit so an oversized request still gets a
	 * RESOURCE_EXHAUSTED reply; beyond that NNG drops the connection. */
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, s->max_msg * 2);
	if ((rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, s)) != 0 ||
	    (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s)) != 0) {
		psf_log_err("rpc", "pipe notify: %s", nng_strerror(rv));
		goto fail;
	}
	for (uint32_t i = 0; i < s->n_workers; i++) {
		if (worker_new(s) == NULL)
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

/* count adds one to a counter of s->counts. */
static void
count(psf_rpc_server *s, uint64_t *counter)
{
	pthread_mutex_lock(&s->conn_mu);
	(*counter)++;
	pthread_mutex_unlock(&s->conn_mu);
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
	for (uint32_t i = 0; i < s->n_workers; i++) {
		worker *w = s->workers[i];
		w->state = ST_RECV;
		nng_ctx_recv(w->ctx, w->aio);
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
	/* No worker is added after this (a call parking now keeps its worker). */
	pthread_mutex_lock(&s->park_mu);
	s->no_more_workers = true;
	n_alloc = s->n_alloc;
	pthread_mutex_unlock(&s->park_mu);
	for (uint32_t i = 0; s->workers != NULL && i < n_alloc; i++) {
		worker *w = s->workers[i];
		nng_aio_stop(w->aio);
		nng_aio_free(w->aio);
		/* A call still parked in a handler: its handler must not answer
		 * after this point (documented); release what it held. */
		if (w->state == ST_HANDLER)
			release_call(&w->call);
		free(w);
	}
	free(s->workers);
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

	/* A reply string may echo client input (a symbol, a worker id) or be cut
	 * mid-character; strict proto3 parsers refuse the whole reply then. */
	if (reply != NULL && !psf_rpc_msg_utf8_valid(reply)) {
		if (psf_rpc_msg_utf8_copy(reply, &clean) != PSF_OK)
			return NULL;
		psf_log_debug("rpc", "%s: invalid UTF-8 in the reply replaced by U+FFFD", call->method);
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

/* worker_next is what a worker does once its call is answered and the reply
 * sent (or dropped): receive the next request, or, when the call had parked
 * (a spare took its slot), become a spare itself. */
static void
worker_next(worker *w)
{
	psf_rpc_server *s = w->srv;

	pthread_mutex_lock(&s->park_mu);
	if (w->is_parked) {
		w->is_parked = false;
		s->n_parked--;
		w->state = ST_IDLE;
		s->spares[s->n_spares++] = w;
		pthread_mutex_unlock(&s->park_mu);
		return;
	}
	pthread_mutex_unlock(&s->park_mu);
	w->state = ST_RECV;
	nng_aio_set_timeout(w->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(w->ctx, w->aio);
}

/* park_if_waiting runs when a handler returned: if it has not answered call
 * number gen of w, the call is parked, and a spare worker (allocated while
 * fewer than max_parked calls are parked) takes the slot, so waiting calls
 * never hold the contexts that serve the others. At the limit the call keeps
 * its slot, as if parking were not supported; that is counted and logged. */
static void
park_if_waiting(worker *w, uint64_t gen)
{
	psf_rpc_server *s = w->srv;
	worker *spare = NULL;
	bool at_limit = false;

	pthread_mutex_lock(&s->park_mu);
	if (w->gen != gen || w->call.answered) {
		pthread_mutex_unlock(&s->park_mu);
		return;
	}
	if (s->n_parked == s->max_parked) {
		at_limit = ++s->n_park_refused == 1;
	} else if (s->n_spares > 0) {
		spare = s->spares[--s->n_spares];
	} else if (!s->no_more_workers) {
		spare = worker_new(s);
	}
	if (spare != NULL) {
		w->is_parked = true;
		s->n_parked++;
		spare->state = ST_RECV;
	}
	pthread_mutex_unlock(&s->park_mu);
	if (at_limit) /* once: it repeats with the load */
		psf_log_warn("rpc", "%u calls are waiting (the limit): further waiting calls "
		    "hold a worker context", s->max_parked);
	if (spare != NULL) {
		nng_aio_set_timeout(spare->aio, NNG_DURATION_INFINITE);
		nng_ctx_recv(spare->ctx, spare->aio);
	}
}

void
psf_rpc_reply(psf_rpc_call *call, const ProtobufCMessage *reply)
{
	psf_rpc_server *s = call->w->srv;

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
	worker *w = call->w;
	psf_rpc_server *s = w->srv;
	nng_pipe pipe;
	nng_msg *m;

	bool twice;

	pthread_mutex_lock(&s->park_mu);
	twice = call->answered;
	call->answered = 1;
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
		    psf_now_ns() - call->start_ns, call->bytes_in,
		    m != NULL ? nng_msg_len(m) : 0, s->observer_arg);
	pipe = nng_msg_get_pipe(call->req);
	release_call(call);
	w->send_pipe = (uint32_t)nng_pipe_id(pipe);
	if (m != NULL && !sending_begin(s, w->send_pipe)) {
		/* The connection stays: its waiting replies may still go out; if they
		 * do not within send_timeout, the send path closes it. */
		psf_log_warn("rpc", "%s: reply dropped: the connection has %u replies waiting "
		    "and is not reading them", call->method[0] ? call->method : "-", s->max_sending);
		nng_msg_free(m);
		m = NULL;
	}
	if (m == NULL) {
		worker_next(w);
		return;
	}
	w->state = ST_SEND;
	nng_aio_set_msg(w->aio, m);
	/* A client that stops reading must not hold this context for ever. */
	nng_aio_set_timeout(w->aio, s->send_timeout);
	nng_ctx_send(w->ctx, w->aio);
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
dispatch(worker *w, nng_msg *msg)
{
	psf_rpc_server *s = w->srv;
	psf_rpc_call *call = &w->call;
	psf_wire_request req;
	const ProtobufCMethodDescriptor *md;
	service_entry *entry = NULL;
	uint64_t gen;

	pthread_mutex_lock(&s->park_mu);
	gen = ++w->gen;
	memset(call, 0, sizeof(*call));
	pthread_mutex_unlock(&s->park_mu);
	call->w = w;
	call->req = msg;
	call->start_ns = psf_now_ns();
	call->bytes_in = nng_msg_len(msg);
	call->deadline_ns = call->start_ns + (uint64_t)PSF_RPC_DEFAULT_TIMEOUT_MS * 1000000ull;
	w->state = ST_HANDLER;

	if (call->bytes_in > s->max_msg) {
		count(s, &s->counts.oversized);
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
		count(s, &s->counts.unauthenticated);
		psf_rpc_fail(call, PSF_STATUS_UNAUTHENTICATED, "missing or wrong token");
		goto answer;
	}
	call->is_duplicate = seen_before(s, req.request_id);

	for (size_t i = 0; i < s->n_raws; i++) {
		if (strcmp(s->raws[i].method, call->method) == 0) {
			call->reply_desc = s->raws[i].reply_desc;
			s->raws[i].fn(call, req.payload, req.payload_len, s->raws[i].arg);
			park_if_waiting(w, gen);
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
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "malformed %s payload", md->input->name);
		goto answer;
	}
	call->reply_desc = md->output;
	call->user = entry->user;
	entry->svc->invoke(entry->svc, (unsigned)(md - entry->svc->descriptor->methods),
	    call->input, generic_closure, call);
	park_if_waiting(w, gen);
	return;
answer:
	psf_log_debug("rpc", "rejected request: %s", call->message);
	psf_rpc_reply(call, NULL);
}

static void
worker_cb(void *arg)
{
	worker *w = arg;
	int rv = nng_aio_result(w->aio);

	switch (w->state) {
	case ST_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				w->state = ST_IDLE;
				return;
			}
			nng_ctx_recv(w->ctx, w->aio);
			return;
		}
		dispatch(w, nng_aio_get_msg(w->aio));
		return;
	case ST_SEND:
		sending_end(w->srv, w->send_pipe);
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(w->aio));
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				w->state = ST_IDLE;
				return;
			}
			if (rv == NNG_ETIMEDOUT) {
				count(w->srv, &w->srv->counts.send_dropped);
				/* It has not read a reply for that long: let it go. */
				nng_pipe_close((nng_pipe){.id = w->send_pipe});
				psf_log_warn("rpc", "reply dropped: the client did not read it within %d ms",
				    (int)w->srv->send_timeout);
			}
		}
		worker_next(w);
		return;
	default:
		return;
	}
}
