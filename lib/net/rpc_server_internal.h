/* rpc_server_internal.h -- the RPC server's state, shared by its files (not a
 * public API; lib/net/rpc_server.h is the contract).
 *
 *   rpc_server.c       lifecycle, dispatch, replying
 *   rpc_server_ctx.c   the reply contexts (slots, spares, parked calls) and the
 *                      accepted connections (limits, replies waiting per connection)
 *
 * Names: an rctx is one NNG rep context with its aio and the call it serves (a
 * "slot" while it receives or serves for the n_slots the server runs). It has
 * nothing to do with the ps's workers (its records of trainers). */
#ifndef PSF_RPC_SERVER_INTERNAL_H
#define PSF_RPC_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "lib/net/rpc_server.h"
#include "lib/net/wire.h"

#define MAX_SERVICES 8
#define MAX_RAW 16
#define DEDUP_RING 1024
#define DEFAULT_MAX_PARKED 4096

enum rctx_state { ST_IDLE, ST_RECV, ST_HANDLER, ST_SEND };

typedef struct rctx rctx;

struct psf_rpc_call {
	rctx *rc;
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

/* An rctx (reply context) is one NNG rep context with its aio and the call it
 * serves. n_slots of them (the slots) run RECV -> dispatch -> SEND. When a
 * handler returns without answering (it parked the call), its rctx leaves the
 * slots with the call and a spare rctx takes its place; once the parked call is
 * answered and its reply sent, that rctx becomes a spare. Rctxs are never freed
 * before the server, so a call pointer stays valid while it is parked. */
struct rctx {
	psf_rpc_server *srv;
	nng_aio *aio;
	nng_ctx ctx;
	enum rctx_state state;
	uint32_t send_pipe; /* ST_SEND: the connection the reply goes to */
	bool send_counted;  /* ST_SEND: counted in that connection's replies waiting */
	/* Guarded by park_mu: gen counts the calls dispatched on this rctx, so
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
	/* park_mu guards the rctxs beyond the first n_slots (allocated when
	 * a call parks; at most max_parked of them), the spare stack, n_parked,
	 * every rctx's gen and is_parked, and every call's `answered`. */
	pthread_mutex_t park_mu;
	rctx **rctxs;     /* cap_rctxs entries, n_alloc of them allocated */
	uint32_t n_slots; /* slots: contexts receiving or serving a call */
	uint32_t n_alloc, cap_rctxs;
	rctx **spares; /* allocated rctxs not in use */
	uint32_t n_spares;
	uint32_t max_parked, n_parked;
	uint64_t n_park_refused; /* calls that kept their slot: max_parked were parked */
	bool no_more_rctxs;      /* set by psf_rpc_server_free */
	size_t max_msg;
	char *token;
	psf_rpc_tls tls;
	int started;
	service_entry services[MAX_SERVICES];
	size_t n_services;
	raw_entry raws[MAX_RAW];
	size_t n_raws;
	char gate_prefix[PSF_WIRE_MAX_METHOD + 1]; /* psf_rpc_server_set_gate */
	psf_rpc_gate_fn gate;
	void *gate_arg;
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

/* rpc_server.c ---------------------------------------------------------------- */

/* rpcs_rctx_cb is every rctx's aio callback: a request received, a reply sent. */
void rpcs_rctx_cb(void *arg);

/* rpc_server_ctx.c ------------------------------------------------------------ */

/* rpcs_rctx_new allocates an rctx with its context and adds it to s->rctxs, or
 * returns NULL (logged) when out of memory or the socket is closed. The caller
 * holds park_mu, or is the only thread (psf_rpc_server_new). */
rctx *rpcs_rctx_new(psf_rpc_server *s);

/* rpcs_rctx_next: after a call's reply was sent or dropped, the rctx receives
 * the next request, or becomes a spare if its call had parked. */
void rpcs_rctx_next(rctx *rc);

/* rpcs_park_if_waiting runs when a handler returned without answering call
 * number gen of rc: the call parks and a spare takes the slot (see the .c). */
void rpcs_park_if_waiting(rctx *rc, uint64_t gen);

/* rpcs_pipe_cb is the socket's pipe callback: admits or refuses a connection
 * (max_conns) and forgets one that ended. */
void rpcs_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg);

/* rpcs_sending_begin accounts a reply about to be sent on connection id; false:
 * drop it, the connection has max_sending replies waiting. rpcs_sending_end
 * accounts one sent (or failed). */
bool rpcs_sending_begin(psf_rpc_server *s, uint32_t id);
void rpcs_sending_end(psf_rpc_server *s, uint32_t id);

/* rpcs_count adds one to a counter of s->counts (under conn_mu). */
void rpcs_count(psf_rpc_server *s, uint64_t *counter);

#endif
