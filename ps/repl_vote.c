/* repl_vote.c -- view changes by majority vote of every ps node of the fleet
 * (docs/reliability.md "Replication"). Each ps node is a voter for every shard;
 * a grant is written to its state file before it is answered. */
#include <stdio.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/net/methods.h"
#include "ps/repl_internal.h"

#define TAG "repl"

bool
repl_vote_decide(ps_repl *r, uint32_t shard, const repl_view *v, uint64_t seq, uint64_t *epoch_out,
    char *reason, size_t len)
{
	bool grant = false;
	uint64_t now = psf_now_ms(), mine = 0;
	const repl_view *k;

	pthread_mutex_lock(&r->mu);
	/* The latest view I know to be in force: one its primary announced to a
	 * majority before serving it (repl_announce). Not a view I granted: a
	 * candidate that got my vote may still lose, and judging members by its
	 * proposal made two half-elected candidates refuse each other forever
	 * (each voter stood by the view of the one it had voted for). A won view
	 * is announced to a majority before any write is acknowledged in it, so
	 * every majority holds a voter that knows it. */
	k = &r->known[shard];
	/* the primary I stand by: the one I last voted for, when that vote is
	 * newer than the view I know */
	uint32_t cur = r->vote_epoch[shard] > r->known[shard].epoch ? r->voted_for[shard]
	                                                            : r->known[shard].primary;
	if (shard == r->shard && r->role != REPL_OUTSIDE && r->role != REPL_JOINING &&
	    psf_store_repl_seq(r->ps->store, &mine) != PSF_OK)
		mine = UINT64_MAX; /* an install cut short: grant nothing we cannot check */
	if (r->fresh && r->heard_ms[shard] == r->start_ms &&
	    now - r->start_ms < 2 * REPL_LEASE_MS && v->primary != r->me && v->primary != shard) {
		/* A voter that lost its disk remembers no grant: it first listens
		 * for the shard's primary (or two leases) before granting anyone
		 * but the shard's first node (a new fleet's designated primary). */
		snprintf(reason, len, "%s just started without its state", repl_node_id(r, r->me));
	} else if (v->epoch <= r->vote_epoch[shard]) {
		snprintf(reason, len, "epoch %llu is not past %llu", (unsigned long long)v->epoch,
		    (unsigned long long)r->vote_epoch[shard]);
	} else if (!repl_is_member(k, v->primary)) {
		snprintf(reason, len, "%s is not a member of the view I know (epoch %llu)",
		    repl_node_id(r, v->primary), (unsigned long long)k->epoch);
	} else if (v->primary != cur && shard == r->shard && r->role == REPL_PRIMARY) {
		snprintf(reason, len, "I am the primary of shard %u", shard);
	} else if (v->primary != cur && now - r->heard_ms[shard] < REPL_LEASE_MS) {
		snprintf(reason, len, "primary %s was heard %llu ms ago", repl_node_id(r, cur),
		    (unsigned long long)(now - r->heard_ms[shard]));
	} else if (seq < r->known_seq[shard] || seq < mine) {
		snprintf(reason, len, "candidate at seq %llu lacks acknowledged writes (seq %llu)",
		    (unsigned long long)seq,
		    (unsigned long long)(mine > r->known_seq[shard] ? mine : r->known_seq[shard]));
	} else {
		/* Only the epoch is recorded: the view becomes known when its
		 * primary announces it (heartbeat, Replicate), so a lost election
		 * leaves no view behind. */
		grant = true;
		r->vote_epoch[shard] = v->epoch;
		r->voted_for[shard] = v->primary;
		r->granted[shard] = *v;
		r->heard_ms[shard] = now; /* the candidate now stands for the primary */
		if (repl_save(r) != PSF_OK) {
			grant = false;
			snprintf(reason, len, "cannot record the vote");
		}
	}
	*epoch_out = r->vote_epoch[shard];
	pthread_mutex_unlock(&r->mu);
	return grant;
}

void
psf_repl_rpc_vote(Psfleet__V1__Replication_Service *svc, const Psfleet__V1__ReplVoteRequest *in,
    Psfleet__V1__ReplVoteReply_Closure done, void *call)
{
	ps_repl *r = psf_rpc_call_user(call);
	Psfleet__V1__ReplVoteReply rep = PSFLEET__V1__REPL_VOTE_REPLY__INIT;
	Psfleet__V1__ReplView pk;
	char reason[200] = "";
	repl_view v, known;

	(void)svc;
	if (in->shard >= r->n_shards || !repl_view_from_pb(in->view, &v) || v.primary >= r->n_ps) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "bad vote request");
		done(NULL, call);
		return;
	}
	rep.granted =
	    repl_vote_decide(r, in->shard, &v, in->seq, &rep.epoch, reason, sizeof(reason));
	rep.reason = reason;
	pthread_mutex_lock(&r->mu);
	known = r->known[in->shard];
	pthread_mutex_unlock(&r->mu);
	repl_view_to_pb(&known, &pk);
	rep.known = &pk;
	psf_log_info(TAG, "vote for %s as primary of shard %u at epoch %llu: %s%s",
	    repl_node_id(r, v.primary), in->shard, (unsigned long long)v.epoch,
	    rep.granted ? "granted" : "refused: ", rep.granted ? "" : reason);
	done(&rep, call);
}

bool
repl_elect(ps_repl *r, const repl_view *v, uint64_t seq, uint64_t *max_epoch, repl_view *newest)
{
	Psfleet__V1__ReplVoteRequest req = PSFLEET__V1__REPL_VOTE_REQUEST__INIT;
	Psfleet__V1__ReplView pv;
	psf_rpc_call_opts o = {REPL_TIMEOUT_MS, 0, 1}; /* a voter that is down: at once */
	psf_rpc_pending *p[64] = {0};
	uint32_t grants = 0, need = r->n_ps / 2 + 1;
	char reason[200];
	uint64_t e = 0, t0 = psf_now_ms();
	repl_view kv;

	repl_view_to_pb(v, &pv);
	req.shard = r->shard;
	req.view = &pv;
	req.seq = seq;
	for (uint32_t i = 0; i < r->n_ps && i < 64; i++)
		if (i != r->me &&
		    psf_rpc_call_start(r->peers[i], PSF_M_REPL_VOTE, &req.base, &o, &p[i]) !=
		        PSF_OK)
			p[i] = NULL;
	if (repl_vote_decide(r, r->shard, v, seq, &e, reason, sizeof(reason)))
		grants++;
	*max_epoch = e;
	for (uint32_t i = 0; i < r->n_ps && i < 64; i++) {
		Psfleet__V1__ReplVoteReply *rep = NULL;
		if (p[i] == NULL)
			continue;
		psf_rpc_status st;
		if (psf_rpc_pending_wait(p[i], &psfleet__v1__repl_vote_reply__descriptor,
		        (ProtobufCMessage **)&rep, &st) != PSF_OK) {
			psf_log_info(TAG, "shard %u: vote of %s: %s", r->shard, repl_node_id(r, i),
			    st.message);
		} else {
			grants += rep->granted ? 1 : 0;
			if (rep->epoch > *max_epoch)
				*max_epoch = rep->epoch;
			if (newest != NULL && repl_view_from_pb(rep->known, &kv) &&
			    kv.epoch > newest->epoch && kv.primary < r->n_ps)
				*newest = kv;
			protobuf_c_message_free_unpacked(&rep->base, NULL);
		}
		psf_rpc_pending_free(p[i]);
	}
	if (grants >= need && v->primary == r->me) { /* a majority confirmed me as of t0 */
		pthread_mutex_lock(&r->mu);
		r->majority_ms = t0;
		pthread_mutex_unlock(&r->mu);
	}
	if (grants < need)
		psf_log_info(TAG, "shard %u: %s got %u of %u votes for epoch %llu (needs %u)",
		    r->shard, repl_node_id(r, r->me), grants, r->n_ps, (unsigned long long)v->epoch,
		    need);
	return grants >= need;
}
