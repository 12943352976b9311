/* ps_client_internal.h -- the ps client's state and helpers shared by its files
 * (ps_client.c: register, pull, push, reduce; push_pull.c: the fused sync step).
 * Not a public API. */
#ifndef PSF_TRAINER_PS_CLIENT_INTERNAL_H
#define PSF_TRAINER_PS_CLIENT_INTERNAL_H

#include "lib/net/rpc_client.h"
#include "lib/net/rpc_group.h"
#include "trainer/ps_client.h"

/* A pull is cut into requests of at most PULL_PIECE_BYTES of values (whole
 * keys; a key of PULL_ALONE_BYTES or more goes alone, so that the shard packs it
 * straight from its store: one copy), and up to PULL_WINDOW of them are in flight
 * at once: the shard copies one while the transport carries another and this
 * thread stores a third. NNG moves 1 MiB messages faster per byte than bigger
 * ones. Measured (ps_bench, 16 MiB, ipc): 1 in flight 1.5-1.7 GB/s, 2: 2.25, 3:
 * 2.3-2.4, 4: 1.7-2.1, 8: 1.4-1.5, 16: 1.2 (the two vCPUs thrash between
 * replies). A server drops replies beyond workers - max(1, workers / 8) queued
 * on one connection (rpc_server.h), so the window also stays one below that. */
#define PULL_PIECE_BYTES ((size_t)1 << 20)
#define PULL_ALONE_BYTES (PULL_PIECE_BYTES / 4)
#define PULL_WINDOW 3

/* Per-shard scratch for building requests. */
typedef struct shard_buf {
	uint64_t *keys;
	uint32_t *lens;
	size_t n, cap;
	uint8_t *values;
	size_t vcap;
} shard_buf;

/* One pull request: keys [first, first + n) of a shard's routed keys. */
typedef struct pull_piece {
	size_t shard;
	size_t first, n;
} pull_piece;

struct psf_ps_client {
	const psf_config *cfg;
	const psf_model *model;
	char id[128];
	char token[256];
	size_t n_ps;
	psf_rpc_group **groups; /* per shard: its replicas (one unless replication > 1) */
	uint64_t *seeds;
	int64_t *shard_clock;
	uint64_t *shard_seq;
	shard_buf *bufs;
	pull_piece *pieces;
	size_t pieces_cap;
	uint64_t *rkeys; /* keys and lens of one PullReply being read */
	uint32_t *rlens;
	size_t rcap;
	psf_rpc_pending **pend; /* max(n_ps, PULL_WINDOW) calls in flight */
	size_t window;          /* pull requests in flight */
	shard_buf *pbufs;       /* the next step's pull keys (push_pull.c) */
	int64_t clock;
	uint64_t next_seq;
	uint32_t index;
	uint32_t retry_ms;
	uint64_t total_steps; /* announced in heartbeats; 0 = unknown */
	bool (*stop)(void *arg);
	void *stop_arg;
};

/* ps_client_conn returns the client of shard s's current replica. */
static inline psf_rpc_client *
ps_client_conn(psf_ps_client *w, size_t s)
{
	return psf_rpc_group_client(w->groups[s]);
}

/* ps_client_stopping: a stop was requested, or the clients were shut down. */
bool ps_client_stopping(const psf_ps_client *w, psf_err err);

/* ps_client_retryable: transport trouble, a restarting ps, or a pull still parked. */
bool ps_client_retryable(const psf_rpc_status *st);

/* ps_client_register_shard (re)registers with shard s. */
PSF_NODISCARD psf_err ps_client_register_shard(psf_ps_client *w, size_t s);

/* ps_client_register_all (re)registers with every shard and derives clock and seq. */
PSF_NODISCARD psf_err ps_client_register_all(psf_ps_client *w);

/* ps_client_route sorts keys into per-shard lists bufs[0..n_ps), sorted and unique. */
PSF_NODISCARD psf_err ps_client_route(psf_ps_client *w, shard_buf *bufs, const uint64_t *keys,
    size_t n);

/* ps_client_call_shard makes one call with the worker's retry policy (ps_client.c). */
PSF_NODISCARD psf_err ps_client_call_shard(psf_ps_client *w, size_t s, const char *method,
    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc, int idempotent,
    ProtobufCMessage **reply, psf_rpc_status *st);

/* ps_client_store_pulled stores an unpacked PullReply's values into dst. */
PSF_NODISCARD psf_err ps_client_store_pulled(const Psfleet__V1__PullReply *r, psf_params *dst);

/* ps_client_push_values finds a shard's gradient bytes (ps_client.c). */
PSF_NODISCARD psf_err ps_client_push_values(shard_buf *b, const psf_params *grads,
    const uint8_t **data, size_t *len);

/* ps_client_push_request fills shard s's PushRequest for the routed keys of
 * w->bufs[s] (values borrowed from grads or the shard's buffer). */
PSF_NODISCARD psf_err ps_client_push_request(psf_ps_client *w, size_t s, const psf_params *grads,
    int64_t clock, uint64_t seq, uint64_t n_samples, double loss, Psfleet__V1__PushRequest *req);

/* ps_client_push_slow re-sends shard s's push with the same seq after a failed
 * first attempt (err, status *st): re-registering on FAILED_PRECONDITION,
 * returning err when the status is not worth a retry (ABORTED, rejected). */
PSF_NODISCARD psf_err ps_client_push_slow(psf_ps_client *w, size_t s,
    const Psfleet__V1__PushRequest *req, psf_err err, Psfleet__V1__PushReply **r,
    psf_rpc_status *st);

/* ps_client_push_done records shard s's reply to the push of (clock, seq). */
void ps_client_push_done(psf_ps_client *w, size_t s, int64_t clock, uint64_t seq,
    const Psfleet__V1__PushReply *r, psf_push_result *out);

#endif
