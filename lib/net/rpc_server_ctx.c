/* rpc_server_ctx.c -- the RPC server's reply contexts and connections
 * (rpc_server_internal.h): the n_slots contexts that receive and serve calls,
 * the spares that take the slot of a parked call, and the accepted connections
 * with the replies each has waiting to be sent. */
#include <stdlib.h>

#include "lib/base/log.h"
#include "lib/net/rpc_server_internal.h"

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

/* rpcs_sending_begin accounts a reply about to be sent on connection id. It returns
 * false (drop this reply) when the connection already has max_sending replies
 * waiting: each further one would hold a context for up to send_timeout.
 * max_sending leaves max(1, n_slots / 8) contexts to the other connections
 * while letting one connection that multiplexes many calls (the gateway's) use
 * nearly all of them. A reply can only be sent on the context that received its
 * request, so a reply over the limit cannot wait elsewhere: it is dropped. */
bool
rpcs_sending_begin(psf_rpc_server *s, uint32_t id)
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

void
rpcs_sending_end(psf_rpc_server *s, uint32_t id)
{
	conn_entry *c;

	pthread_mutex_lock(&s->conn_mu);
	if ((c = find_conn(s, id)) != NULL && c->n_sending > 0)
		c->n_sending--;
	pthread_mutex_unlock(&s->conn_mu);
}

/* rpcs_pipe_cb admits a new connection while fewer than max_conns are open (closing
 * it at once otherwise: it has not been added to the socket, so no request of
 * it is read) and forgets an accepted one that ended. */
void
rpcs_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
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
		psf_log_warn("rpc",
		    "connection refused: %u connections open (limits.max_connections)", n_open);
		nng_pipe_close(p);
	}
	if (s->conn_fn != NULL)
		s->conn_fn(what, n_open, s->conn_arg);
}

/* rpcs_rctx_new allocates an rctx with its context and adds it to s->rctxs,
 * or returns NULL (logged) when out of memory or the socket is closed. The
 * caller holds park_mu, or is the only thread (psf_rpc_server_new). */
rctx *
rpcs_rctx_new(psf_rpc_server *s)
{
	rctx *rc;
	int rv;

	if (s->n_alloc == s->cap_rctxs || (rc = calloc(1, sizeof(*rc))) == NULL)
		return NULL;
	rc->srv = s;
	if ((rv = nng_aio_alloc(&rc->aio, rpcs_rctx_cb, rc)) != 0 ||
	    (rv = nng_ctx_open(&rc->ctx, s->sock)) != 0) {
		psf_log_err("rpc", "context setup: %s", nng_strerror(rv));
		if (rc->aio != NULL)
			nng_aio_free(rc->aio);
		free(rc);
		return NULL;
	}
	s->rctxs[s->n_alloc++] = rc;
	return rc;
}

/* rpcs_count adds one to a counter of s->counts. */
void
rpcs_count(psf_rpc_server *s, uint64_t *counter)
{
	pthread_mutex_lock(&s->conn_mu);
	(*counter)++;
	pthread_mutex_unlock(&s->conn_mu);
}

/* rpcs_rctx_next is what an rctx does once its call is answered and the reply
 * sent (or dropped): receive the next request, or, when the call had parked
 * (a spare took its slot), become a spare itself. */
void
rpcs_rctx_next(rctx *rc)
{
	psf_rpc_server *s = rc->srv;

	pthread_mutex_lock(&s->park_mu);
	if (rc->is_parked) {
		rc->is_parked = false;
		s->n_parked--;
		rc->state = ST_IDLE;
		s->spares[s->n_spares++] = rc;
		pthread_mutex_unlock(&s->park_mu);
		return;
	}
	pthread_mutex_unlock(&s->park_mu);
	rc->state = ST_RECV;
	nng_aio_set_timeout(rc->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(rc->ctx, rc->aio);
}

/* rpcs_park_if_waiting runs when a handler returned: if it has not answered call
 * number gen of rc, the call is parked, and a spare rctx (allocated while
 * fewer than max_parked calls are parked) takes the slot, so waiting calls
 * never hold the contexts that serve the others. At the limit the call keeps
 * its slot, as if parking were not supported; that is counted and logged. */
void
rpcs_park_if_waiting(rctx *rc, uint64_t gen)
{
	psf_rpc_server *s = rc->srv;
	rctx *spare = NULL;
	bool at_limit = false;

	pthread_mutex_lock(&s->park_mu);
	if (rc->gen != gen || rc->call.answered) {
		pthread_mutex_unlock(&s->park_mu);
		return;
	}
	if (s->n_parked == s->max_parked) {
		at_limit = ++s->n_park_refused == 1;
	} else if (s->n_spares > 0) {
		spare = s->spares[--s->n_spares];
	} else if (!s->no_more_rctxs) {
		spare = rpcs_rctx_new(s);
	}
	if (spare != NULL) {
		rc->is_parked = true;
		s->n_parked++;
		spare->state = ST_RECV;
	}
	pthread_mutex_unlock(&s->park_mu);
	if (at_limit) /* once: it repeats with the load */
		psf_log_warn("rpc",
		    "%u calls are waiting (the limit): further waiting calls "
		    "hold a context",
		    s->max_parked);
	if (spare != NULL) {
		nng_aio_set_timeout(spare->aio, NNG_DURATION_INFINITE);
		nng_ctx_recv(spare->ctx, spare->aio);
	}
}
