/* rpc_client.h -- call psfleet services over NNG req0 (DESIGN.md §3, STYLE.md §5).
 *
 * A client dials one URL in the background and reconnects after the peer restarts
 * (exponential backoff from reconnect_min_ms to reconnect_max_ms). One client may be
 * used by many threads at once: every call runs on its own NNG context.
 *
 * Delivery: NNG's REQ would re-send a request by itself after a timer or a
 * reconnect; psfleet turns that off (NNG_OPT_REQ_RESENDTIME = infinite), so a request
 * is put on the wire once per attempt. A lost connection fails the attempt at once
 * (UNAVAILABLE). Calls marked idempotent are retried with backoff on UNAVAILABLE
 * until their deadline; others are never re-sent by the client: the caller retries
 * with its own sequence number (Push carries (worker, seq), which the ps dedups).
 * Each attempt carries a request id unique to this client, which the server uses
 * to notice duplicate delivery. */
#ifndef PSF_RPC_CLIENT_H
#define PSF_RPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "lib/base/err.h"
#include "lib/net/rpc.h"

typedef struct psf_rpc_client psf_rpc_client;
typedef struct psf_rpc_pending psf_rpc_pending;

typedef struct psf_rpc_client_opts {
	uint32_t timeout_ms;       /* default deadline per call; 0 = 30000 */
	size_t max_msg;            /* largest accepted reply; 0 = 2 x PSF_RPC_DEFAULT_MAX_MSG */
	const char *token;         /* shared secret sent with every request; NULL = none */
	psf_rpc_tls tls;           /* for tls+tcp:// URLs */
	uint32_t reconnect_min_ms; /* 0 = 20 */
	uint32_t reconnect_max_ms; /* 0 = 2000 */
	bool connect_now;          /* true: psf_rpc_client_open makes the first connection
	                              before it returns, and fails when it cannot (below);
	                              false: it dials in the background, for long-lived
	                              clients whose peer may start later */
} psf_rpc_client_opts;

typedef struct psf_rpc_call_opts {
	uint32_t timeout_ms; /* 0 = the client's default */
	int idempotent;      /* 1: safe to re-send on UNAVAILABLE until the deadline */
	int fail_fast;       /* 1: fail at once with UNAVAILABLE when the client has no
	                        connection to its peer right now, instead of waiting
	                        for a (re)connect until the deadline (a router that can
	                        try another replica wants this; gRPC's wait-for-ready
	                        false) */
} psf_rpc_call_opts;

/* psf_rpc_client_open starts dialing url (the peer need not be up yet). opts may be
 * NULL. Returns PSF_EINVAL for a malformed URL or bad TLS material. With
 * opts->connect_now it first connects (a one-shot client such as `psfleet
 * predict`): PSF_EUNAVAIL at once when the peer refuses (nothing listens there),
 * PSF_ETIMEDOUT when no connection is made within the timeout, or the error the
 * dial gave (PSF_EINVAL for an address that does not resolve); a connection that
 * drops later is redialed as usual. Not logged: the caller reports it. */
PSF_NODISCARD psf_err psf_rpc_client_open(const char *url, const psf_rpc_client_opts *opts,
    psf_rpc_client **out);

/* psf_rpc_client_close closes the connection; calls in flight fail. NULL is fine. */
void psf_rpc_client_close(psf_rpc_client *c);

/* psf_rpc_client_shutdown closes the connection but keeps the client: calls in
 * flight end at once with PSF_ECLOSED, and so does every later call. Safe from
 * any thread while other threads call (a stop request cutting blocked calls
 * short); psf_rpc_client_close is still needed, after every caller is done. */
void psf_rpc_client_shutdown(psf_rpc_client *c);

/* psf_rpc_client_connected tells whether the client has a connection to its peer
 * right now (a fail_fast call would be sent). Thread-safe. */
bool psf_rpc_client_connected(const psf_rpc_client *c);

/* psf_rpc_client_url returns the URL the client dials. */
const char *psf_rpc_client_url(const psf_rpc_client *c);

/* psf_rpc_client_call sends `req` to `method` (full name) and waits for the reply.
 * On PSF_OK, *reply_out gets a new message of type reply_desc that the caller frees
 * with protobuf_c_message_free_unpacked(reply, NULL). Otherwise the error maps the
 * reply status (psf_err_from_status), or the transport (PSF_ETIMEDOUT, PSF_EUNAVAIL);
 * in every case *st (may be NULL) gets the status code and message. o may be NULL. */
PSF_NODISCARD psf_err psf_rpc_client_call(psf_rpc_client *c, const char *method,
    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
    const psf_rpc_call_opts *o, ProtobufCMessage **reply_out, psf_rpc_status *st);

/* psf_rpc_call_start packs req and sends it without waiting (ps-lite shape: start a
 * call per shard, then wait for each). *out gets a pending call that must be finished
 * with psf_rpc_pending_wait* and released with psf_rpc_pending_free. */
PSF_NODISCARD psf_err psf_rpc_call_start(psf_rpc_client *c, const char *method,
    const ProtobufCMessage *req, const psf_rpc_call_opts *o, psf_rpc_pending **out);

/* psf_rpc_call_start_raw is call_start with an already serialized request message. */
PSF_NODISCARD psf_err psf_rpc_call_start_raw(psf_rpc_client *c, const char *method,
    const void *payload, size_t len, const psf_rpc_call_opts *o, psf_rpc_pending **out);

/* psf_rpc_pending_wait waits for the reply and unpacks it (see psf_rpc_client_call). */
PSF_NODISCARD psf_err psf_rpc_pending_wait(psf_rpc_pending *p,
    const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply_out, psf_rpc_status *st);

/* psf_rpc_pending_wait_raw waits for the reply and borrows its serialized message:
 * *payload / *len stay valid until psf_rpc_pending_free(p). No copy is made. */
PSF_NODISCARD psf_err psf_rpc_pending_wait_raw(psf_rpc_pending *p, const uint8_t **payload,
    size_t *len, psf_rpc_status *st);

/* psf_rpc_pending_free releases a pending call (waiting for it first if needed). */
void psf_rpc_pending_free(psf_rpc_pending *p);

/* A generated-stub adapter: after psf_rpc_stub_init, `&stub->base` can be passed to
 * the protobuf-c generated client functions (e.g. psfleet__v1__admin__health), which
 * then call synchronously with default options; the closure gets the reply or NULL,
 * and stub->last holds the status of the last call. One thread at a time per stub. */
typedef struct psf_rpc_stub {
	ProtobufCService base;
	psf_rpc_client *client;
	psf_rpc_status last;
} psf_rpc_stub;

void psf_rpc_stub_init(psf_rpc_stub *stub, psf_rpc_client *c,
    const ProtobufCServiceDescriptor *desc);

#endif
