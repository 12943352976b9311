/* rpc_server.h -- serve protobuf-c services over NNG rep0 (DESIGN.md §3, STYLE.md §5).
 *
 * A server owns one rep0 socket, bound to one or more URLs (tcp://, ipc://,
 * tls+tcp://), and `workers` NNG contexts (its slots), each running RECV ->
 * dispatch -> SEND, so that many requests are served at once. A handler that must wait (a sync-mode
 * Pull) returns without answering: its call is parked and gives up its context
 * (a spare context, allocated on first need, takes over receiving), so waiting
 * calls never starve the others. Up to max_parked calls wait that way; beyond
 * that a waiting call keeps its context (counted in park_refused, logged once).
 *
 * Dispatch is by the envelope's full method name ("psfleet.v1.Inference/Predict")
 * through the protobuf-c service descriptors: a service is registered with
 * psf_rpc_server_add_service() as a generated `*_Service` struct initialised with
 * its INIT macro, so adding an RPC is a .proto edit plus one handler.
 *
 * Handler contract (the generated signature):
 *   void h(Service *svc, const Req *input, Reply_Closure done, void *call)
 * The handler calls done(reply, call) exactly once, now or later from any thread,
 * with its reply, or with NULL after psf_rpc_fail(call, ...). `input` stays valid
 * until done is called; the reply is packed inside done, so the handler may free or
 * reuse it as soon as done returns. Handlers run on NNG's threads: no long blocking.
 *
 * Errors never crash the server or drop a connection: a malformed envelope or
 * payload gets INVALID_ARGUMENT, an unknown method UNIMPLEMENTED, a request over
 * max_msg RESOURCE_EXHAUSTED (messages over twice max_msg are refused by NNG
 * itself, which closes that connection), a bad token UNAUTHENTICATED.
 *
 * Limits: at most max_conns connections are served at once (further ones are
 * closed on arrival and counted); a reply that a client does not read within
 * send_timeout_ms is dropped, so a stuck client holds a context for at
 * most that long; one connection may have at most workers - max(1, workers / 8)
 * replies waiting to be sent (further ones are dropped and counted), so a stuck
 * client never takes every context from the others; a request arriving slowly
 * occupies no context until it is complete (NNG reassembles it per connection).
 * (Internally a context with its aio and call is an "rctx", rpc_server_internal.h:
 * not to be confused with the ps's workers, its records of trainers.) */
#ifndef PSF_RPC_SERVER_H
#define PSF_RPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "lib/base/err.h"
#include "lib/net/rpc.h"

typedef struct psf_rpc_server psf_rpc_server;
typedef struct psf_rpc_call psf_rpc_call;

typedef struct psf_rpc_server_opts {
	uint32_t workers;         /* concurrent requests; 0 = 64 */
	size_t max_msg;           /* largest accepted request; 0 = PSF_RPC_DEFAULT_MAX_MSG */
	const char *token;        /* shared secret every request must carry; NULL = none */
	psf_rpc_tls tls;          /* used by tls+tcp:// listeners */
	uint32_t max_conns;       /* connections (NNG pipes) served at once; 0 = unlimited.
	                        * A connection beyond the limit is closed as soon as it
	                        * is accepted, before it can send anything, and counted. */
	uint32_t send_timeout_ms; /* a reply not handed to the transport within this
	                        * time (a client that stopped reading) is dropped, so the
	                        * context serves others; 0 = 10000 */
	uint32_t max_parked;      /* calls that may wait in handlers (parked) without
	                        * holding one of the `workers` contexts; 0 = 4096 */
} psf_rpc_server_opts;

/* Connection events reported to a psf_rpc_conn_fn. */
typedef enum psf_rpc_conn_event {
	PSF_RPC_CONN_OPEN,    /* a connection was accepted */
	PSF_RPC_CONN_REFUSED, /* a connection beyond max_conns was closed at once */
	PSF_RPC_CONN_CLOSE,   /* an accepted connection ended */
} psf_rpc_conn_event;

/* Called on NNG's threads for every connection event; n_open is the number of
 * accepted connections open after the event. Must not block. */
typedef void (*psf_rpc_conn_fn)(psf_rpc_conn_event ev, uint32_t n_open, void *arg);

/* Totals since the server was created (psf_rpc_server_get_counts). */
typedef struct psf_rpc_server_counts {
	uint32_t conns_open; /* accepted connections open now */
	uint64_t conns_accepted;
	uint64_t conns_refused;   /* closed at once: over max_conns */
	uint64_t unauthenticated; /* requests answered UNAUTHENTICATED */
	uint64_t oversized;       /* requests answered RESOURCE_EXHAUSTED for their size */
	uint64_t send_dropped;    /* replies dropped: not sent within send_timeout_ms */
	uint32_t parked;          /* calls waiting in a handler now, off the slots */
	uint64_t park_refused;    /* calls that waited in their slot: max_parked were waiting */
} psf_rpc_server_counts;

/* Called after every reply is sent, on an NNG thread, for metrics. method is
 * "-" when the request did not name a valid one. */
typedef void (*psf_rpc_observer_fn)(const char *method, psf_status status, uint64_t latency_ns,
    size_t bytes_in, size_t bytes_out, void *arg);

/* A zero-copy handler for one method: gets the serialized request message (borrowed
 * from the received NNG message, valid until the reply is sent) instead of an
 * unpacked struct. It answers with psf_rpc_reply() exactly once. */
typedef void (*psf_rpc_raw_fn)(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg);

/* psf_rpc_server_new creates a server (no socket bound yet). opts may be NULL. */
PSF_NODISCARD psf_err psf_rpc_server_new(const psf_rpc_server_opts *opts, psf_rpc_server **out);

/* psf_rpc_server_add_service registers a generated service; `user` is returned by
 * psf_rpc_call_user() in its handlers. The service must outlive the server. At most
 * 8 services. Call before psf_rpc_server_start. */
PSF_NODISCARD psf_err psf_rpc_server_add_service(psf_rpc_server *s, ProtobufCService *svc,
    void *user);

/* psf_rpc_server_add_raw overrides one method (full name) with a raw handler. */
PSF_NODISCARD psf_err psf_rpc_server_add_raw(psf_rpc_server *s, const char *method,
    const ProtobufCMessageDescriptor *reply_desc, psf_rpc_raw_fn fn, void *arg);

/* A gate sees every request whose method starts with the gate's prefix, before
 * its handler (raw or generated): returning PSF_STATUS_OK lets it through; any
 * other code answers the call with that code and the message the gate wrote
 * into msg (len bytes, NUL-terminated). Runs on the server's threads, for every
 * such call: keep it short and lock-light. (A replicated ps that is not its
 * shard's primary turns clients away with it, naming the primary.) */
typedef psf_status (*psf_rpc_gate_fn)(const char *method, char *msg, size_t len, void *arg);

/* psf_rpc_server_set_gate installs the gate for methods starting with prefix
 * (copied; e.g. "psfleet.v1.ParameterServer/"); one gate per server, NULL fn
 * removes it. Call before psf_rpc_server_start. */
void psf_rpc_server_set_gate(psf_rpc_server *s, const char *prefix, psf_rpc_gate_fn fn, void *arg);

/* psf_rpc_server_set_observer installs the per-reply callback (NULL to remove). */
void psf_rpc_server_set_observer(psf_rpc_server *s, psf_rpc_observer_fn fn, void *arg);

/* psf_rpc_server_set_conn_observer installs the connection callback (NULL to
 * remove). Call before psf_rpc_server_listen. */
void psf_rpc_server_set_conn_observer(psf_rpc_server *s, psf_rpc_conn_fn fn, void *arg);

/* psf_rpc_server_get_counts copies the server's counters. Thread-safe. Cannot fail. */
void psf_rpc_server_get_counts(psf_rpc_server *s, psf_rpc_server_counts *out);

/* psf_rpc_server_listen binds url and starts accepting. A tcp URL with port 0 binds
 * an ephemeral port; bound_url (may be NULL, len >= 128) gets the URL clients should
 * dial, with the real port. May be called several times for several URLs. */
PSF_NODISCARD psf_err psf_rpc_server_listen(psf_rpc_server *s, const char *url, char *bound_url,
    size_t bound_len);

/* psf_rpc_server_start starts the contexts receiving. Requests that arrive before it wait. */
PSF_NODISCARD psf_err psf_rpc_server_start(psf_rpc_server *s);

/* psf_rpc_server_free stops serving and frees the server. It waits for
 * psf_rpc_reply calls under way on other threads; a call answered after that
 * (while closing) does nothing, and no call may be answered once this returned.
 * So parked calls must have been answered, or their handlers must tolerate done()
 * returning without effect once the server is closing. NULL is fine. */
void psf_rpc_server_free(psf_rpc_server *s);

/* psf_rpc_fail records the error status and message of a call; the handler then
 * calls done(NULL, call). fmt is printf-style. Cannot fail. */
void psf_rpc_fail(void *call, psf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* psf_rpc_fail_err is psf_rpc_fail with the status mapped from a psf_err. */
void psf_rpc_fail_err(void *call, psf_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* psf_rpc_reply answers a call: reply != NULL -> OK with it, NULL -> the status set
 * by psf_rpc_fail (INTERNAL if none). Same as the generated closure. */
void psf_rpc_reply(psf_rpc_call *call, const ProtobufCMessage *reply);

/* Accessors, valid until the call is answered. */
void *psf_rpc_call_user(const void *call);
uint64_t psf_rpc_call_request_id(const void *call);
/* Absolute deadline on the CLOCK_MONOTONIC ns scale (psf_now_ns). */
uint64_t psf_rpc_call_deadline_ns(const void *call);
/* Nonzero when this request id was already received recently: the transport
 * delivered it twice (NNG's REQ resends after a reconnect). Handlers of
 * non-idempotent methods decide what a duplicate means. */
int psf_rpc_call_is_duplicate(const void *call);

#endif
