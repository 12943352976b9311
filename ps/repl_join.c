/* repl_join.c -- catch-up: a node outside its shard's view (a replacement with
 * an empty disk, a backup that was dropped, a returning old primary) asks the
 * primary to Join; the primary streams a consistent copy of its store at some
 * repl_seq X (Install BEGIN, PIECEs, END) while training goes on, keeps the
 * writesets after X in a bounded tail and sends them, then -- in its capture
 * callback, under the store's writer lock, so nothing slips in -- sends the
 * last ones and runs the view change that adds the joiner. From then on the
 * joiner is a member and gets every writeset synchronously. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/net/methods.h"
#include "ps/repl_internal.h"

#define TAG "repl"

/* tail_free frees a list of kept writesets. */
static void
tail_free(repl_tail *t)
{
	while (t != NULL) {
		repl_tail *next = t->next;
		free(t);
		t = next;
	}
}

/* join_abort forgets the join in progress. Caller holds join_mu. */
static void
join_abort(ps_repl *r, const char *why)
{
	if (r->join == JOIN_NONE)
		return;
	psf_log_warn(TAG, "shard %u: catch-up of %s abandoned: %s", r->shard,
	    repl_node_id(r, r->joiner), why);
	tail_free(r->tail);
	r->tail = NULL;
	r->tail_end = &r->tail;
	r->tail_bytes = r->tail_n = 0;
	r->join = JOIN_NONE;
}

static psf_err
send_install(ps_repl *r, int kind, uint64_t seq, uint64_t entries, const void *piece, size_t len)
{
	Psfleet__V1__ReplInstallRequest req = PSFLEET__V1__REPL_INSTALL_REQUEST__INIT;
	Psfleet__V1__ReplInstallReply *rep = NULL;
	Psfleet__V1__ReplView pv;
	psf_rpc_call_opts o = {30000, 0, 0};
	psf_rpc_status st;
	repl_view v;
	psf_err err;

	pthread_mutex_lock(&r->mu);
	v = r->view;
	pthread_mutex_unlock(&r->mu);
	repl_view_to_pb(&v, &pv);
	req.shard = r->shard;
	req.view = &pv;
	req.kind = (Psfleet__V1__ReplInstallRequest__Kind)kind;
	req.seq = seq;
	req.entries = entries;
	req.piece.data = (uint8_t *)piece;
	req.piece.len = len;
	err = psf_rpc_client_call(r->peers[r->joiner], PSF_M_REPL_INSTALL, &req.base,
	    &psfleet__v1__repl_install_reply__descriptor, &o, (ProtobufCMessage **)&rep, &st);
	if (err != PSF_OK)
		psf_log_warn(TAG, "shard %u: install on %s: %s", r->shard,
		    repl_node_id(r, r->joiner), st.message);
	else
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	return err;
}

static psf_err
piece_fn(uint64_t seq, const void *bytes, size_t len, void *arg)
{
	ps_repl *r = arg;
	bool stop;

	pthread_mutex_lock(&r->mu);
	stop = r->stopping || r->role != REPL_PRIMARY;
	pthread_mutex_unlock(&r->mu);
	if (stop)
		return PSF_ECLOSED;
	return send_install(r, PSFLEET__V1__REPL_INSTALL_REQUEST__KIND__PIECE, seq, 0, bytes, len);
}

static psf_err
touch_txn(psf_store_txn *txn, void *arg)
{
	(void)arg;
	return psf_store_txn_meta_put_u64(txn, "repl_touch", psf_now_ms());
}

/* join_main streams the copy and the tail to the joiner (a thread). */
static void *
join_main(void *arg)
{
	ps_repl *r = arg;
	psf_store_copy_info info = {0};
	uint64_t t0 = psf_now_ms();
	psf_err err;

	err = send_install(r, PSFLEET__V1__REPL_INSTALL_REQUEST__KIND__BEGIN, 0, 0, NULL, 0);
	if (err == PSF_OK)
		err = psf_store_copy_stream(r->ps->store, REPL_PIECE_BYTES, piece_fn, r, &info);
	if (err == PSF_OK) {
		pthread_mutex_lock(&r->join_mu);
		r->join_seq = info.seq;
		while (r->tail != NULL && r->tail->seq <= info.seq) { /* in the copy */
			repl_tail *t = r->tail;
			r->tail = t->next;
			r->tail_bytes -= t->len;
			r->tail_n--;
			free(t);
		}
		if (r->tail == NULL)
			r->tail_end = &r->tail;
		pthread_mutex_unlock(&r->join_mu);
		err = send_install(r, PSFLEET__V1__REPL_INSTALL_REQUEST__KIND__END, info.seq,
		    info.entries, NULL, 0);
	}
	psf_log_info(TAG,
	    "shard %u: copy for %s at seq %llu: %llu entries, %llu bytes in %.3f s: %s", r->shard,
	    repl_node_id(r, r->joiner), (unsigned long long)info.seq,
	    (unsigned long long)info.entries, (unsigned long long)info.bytes,
	    (double)(psf_now_ms() - t0) / 1000.0, psf_strerror(err));
	/* The tail, oldest first, while the capture keeps adding to it. */
	while (err == PSF_OK) {
		repl_tail *t;
		repl_view v;
		uint64_t epoch = 0;
		pthread_mutex_lock(&r->join_mu);
		if ((t = r->tail) == NULL) {
			r->join = JOIN_FINAL; /* the next commit brings the joiner in */
			pthread_mutex_unlock(&r->join_mu);
			break;
		}
		r->tail = t->next;
		if (r->tail == NULL)
			r->tail_end = &r->tail;
		r->tail_bytes -= t->len;
		r->tail_n--;
		pthread_mutex_unlock(&r->join_mu);
		pthread_mutex_lock(&r->mu);
		v = r->view;
		pthread_mutex_unlock(&r->mu);
		err = repl_send_ws(r, r->joiner, &v, t->seq, t->bytes, t->len, &epoch);
		free(t);
	}
	if (err == PSF_OK) /* a commit of our own, should training be idle */
		err = psf_store_update(r->ps->store, touch_txn, NULL);
	if (err != PSF_OK) {
		pthread_mutex_lock(&r->join_mu);
		join_abort(r, psf_strerror(err));
		pthread_mutex_unlock(&r->join_mu);
	}
	return NULL;
}

psf_err
repl_join_capture(ps_repl *r, uint64_t seq, const void *bytes, size_t len)
{
	repl_tail *t, *list;
	repl_view v, nv;
	uint64_t epoch = 0, max_epoch = 0;
	uint32_t joiner;
	psf_err err = PSF_OK;

	pthread_mutex_lock(&r->join_mu);
	if (r->join == JOIN_NONE) {
		pthread_mutex_unlock(&r->join_mu);
		return PSF_OK;
	}
	if (r->tail_bytes + len > REPL_TAIL_MAX_BYTES || (t = malloc(sizeof(*t) + len)) == NULL) {
		join_abort(r, "the tail outgrew its buffer");
		pthread_mutex_unlock(&r->join_mu);
		return PSF_OK;
	}
	t->next = NULL;
	t->seq = seq;
	t->len = len;
	memcpy(t->bytes, bytes, len);
	*r->tail_end = t;
	r->tail_end = &t->next;
	r->tail_bytes += len;
	r->tail_n++;
	if (r->join != JOIN_FINAL) {
		pthread_mutex_unlock(&r->join_mu);
		return PSF_OK;
	}
	list = r->tail;
	r->tail = NULL;
	r->tail_end = &r->tail;
	r->tail_bytes = r->tail_n = 0;
	joiner = r->joiner;
	pthread_mutex_unlock(&r->join_mu);
	pthread_mutex_lock(&r->mu);
	v = r->view;
	pthread_mutex_unlock(&r->mu);
	for (t = list; t != NULL && err == PSF_OK; t = t->next)
		err = repl_send_ws(r, joiner, &v, t->seq, t->bytes, t->len, &epoch);
	tail_free(list);
	pthread_mutex_lock(&r->join_mu);
	if (err != PSF_OK) {
		join_abort(r, psf_strerror(err));
		pthread_mutex_unlock(&r->join_mu);
		return PSF_OK; /* the members have the write: it stands */
	}
	r->join = JOIN_NONE;
	pthread_mutex_unlock(&r->join_mu);
	nv = v;
	nv.epoch = v.epoch + 1;
	if (!repl_is_member(&nv, joiner))
		nv.members[nv.n_members++] = joiner;
	if (!repl_elect(r, &nv, seq, &max_epoch, NULL))
		return PSF_EUNAVAIL;
	pthread_mutex_lock(&r->mu);
	r->view_changes++;
	r->catchups++;
	repl_adopt_view(r, &nv);
	pthread_mutex_unlock(&r->mu);
	if (!repl_announce(r)) /* in force only once a majority holds it */
		return PSF_EUNAVAIL;
	psf_log_info(TAG, "shard %u: %s caught up at seq %llu and joined the view (epoch %llu)",
	    r->shard, repl_node_id(r, joiner), (unsigned long long)seq,
	    (unsigned long long)nv.epoch);
	return PSF_OK;
}

void
psf_repl_rpc_join(Psfleet__V1__Replication_Service *svc, const Psfleet__V1__ReplJoinRequest *in,
    Psfleet__V1__ReplJoinReply_Closure done, void *call)
{
	ps_repl *r = psf_rpc_call_user(call);
	Psfleet__V1__ReplJoinReply rep = PSFLEET__V1__REPL_JOIN_REPLY__INIT;
	bool primary;

	(void)svc;
	pthread_mutex_lock(&r->mu);
	primary = r->role == REPL_PRIMARY;
	rep.epoch = r->view.epoch;
	pthread_mutex_unlock(&r->mu);
	if (in->shard != r->shard || in->node >= r->n_ps || in->node % r->n_shards != r->shard ||
	    in->node == r->me) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "node %u cannot join shard %u",
		    in->node, r->shard);
		done(NULL, call);
		return;
	}
	if (!primary) {
		psf_rpc_fail(call, PSF_STATUS_UNAVAILABLE, "not primary of shard %u", r->shard);
		done(NULL, call);
		return;
	}
	pthread_mutex_lock(&r->join_mu);
	if (r->join != JOIN_NONE) {
		bool same = r->joiner == in->node;
		pthread_mutex_unlock(&r->join_mu);
		if (same) { /* asked again: it is under way */
			done(&rep, call);
			return;
		}
		psf_rpc_fail(call, PSF_STATUS_UNAVAILABLE, "a catch-up of %s is under way",
		    repl_node_id(r, r->joiner));
		done(NULL, call);
		return;
	}
	if (r->join_thread_started) /* the previous join ended: reap it */
		pthread_join(r->join_thread, NULL);
	r->join_thread_started = false;
	r->join = JOIN_COPYING;
	r->joiner = in->node;
	r->join_seq = 0;
	if (pthread_create(&r->join_thread, NULL, join_main, r) != 0) {
		r->join = JOIN_NONE;
		pthread_mutex_unlock(&r->join_mu);
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "no thread for the catch-up");
		done(NULL, call);
		return;
	}
	r->join_thread_started = true;
	pthread_mutex_unlock(&r->join_mu);
	psf_log_info(TAG, "shard %u: catch-up of %s begins", r->shard, repl_node_id(r, in->node));
	done(&rep, call);
}

void
psf_repl_rpc_install(Psfleet__V1__Replication_Service *svc,
    const Psfleet__V1__ReplInstallRequest *in, Psfleet__V1__ReplInstallReply_Closure done,
    void *call)
{
	ps_repl *r = psf_rpc_call_user(call);
	Psfleet__V1__ReplInstallReply rep = PSFLEET__V1__REPL_INSTALL_REPLY__INIT;
	repl_role role;
	psf_err err;

	(void)svc;
	pthread_mutex_lock(&r->mu);
	role = r->role;
	pthread_mutex_unlock(&r->mu);
	if (in->shard != r->shard || role != REPL_JOINING) {
		psf_rpc_fail(call, PSF_STATUS_FAILED_PRECONDITION, "%s is not joining shard %u",
		    repl_node_id(r, r->me), in->shard);
		done(NULL, call);
		return;
	}
	switch (in->kind) {
	case PSFLEET__V1__REPL_INSTALL_REQUEST__KIND__BEGIN:
		err = psf_store_install_begin(r->ps->store);
		break;
	case PSFLEET__V1__REPL_INSTALL_REQUEST__KIND__PIECE:
		err = psf_store_install_piece(r->ps->store, in->piece.data, in->piece.len);
		break;
	case PSFLEET__V1__REPL_INSTALL_REQUEST__KIND__END:
		err = psf_store_install_end(r->ps->store, in->seq, in->entries);
		if (err == PSF_OK)
			psf_log_info(TAG,
			    "shard %u: installed the primary's copy at seq %llu "
			    "(%llu entries)",
			    r->shard, (unsigned long long)in->seq, (unsigned long long)in->entries);
		break;
	default: err = PSF_EINVAL;
	}
	if (err != PSF_OK) {
		psf_rpc_fail_err(call, err, "install: %s", psf_strerror(err));
		done(NULL, call);
		return;
	}
	done(&rep, call);
}

void
repl_join_ask(ps_repl *r, uint32_t p)
{
	Psfleet__V1__ReplJoinRequest req = PSFLEET__V1__REPL_JOIN_REQUEST__INIT;
	Psfleet__V1__ReplJoinReply *rep = NULL;
	psf_rpc_call_opts o = {2000, 0, 0};
	psf_rpc_status st;

	pthread_mutex_lock(&r->mu);
	r->role = REPL_JOINING;
	r->needs_copy = true;
	r->joining_ms = psf_now_ms();
	r->joining_epoch = r->view.epoch;
	(void)repl_save(r);
	pthread_mutex_unlock(&r->mu);
	req.shard = r->shard;
	req.node = r->me;
	if (psf_rpc_client_call(r->peers[p], PSF_M_REPL_JOIN, &req.base,
	        &psfleet__v1__repl_join_reply__descriptor, &o, (ProtobufCMessage **)&rep,
	        &st) != PSF_OK) {
		psf_log_info(TAG, "shard %u: join via %s: %s", r->shard, repl_node_id(r, p),
		    st.message);
		pthread_mutex_lock(&r->mu);
		if (r->role == REPL_JOINING)
			r->role = REPL_OUTSIDE;
		pthread_mutex_unlock(&r->mu);
		return;
	}
	psf_log_info(TAG, "shard %u: %s joins via primary %s", r->shard, repl_node_id(r, r->me),
	    repl_node_id(r, p));
	protobuf_c_message_free_unpacked(&rep->base, NULL);
}

void
repl_join_stop(ps_repl *r)
{
	bool started;

	pthread_mutex_lock(&r->join_mu);
	started = r->join_thread_started;
	r->join_thread_started = false;
	pthread_mutex_unlock(&r->join_mu);
	if (started)
		pthread_join(r->join_thread, NULL); /* piece_fn sees stopping */
	pthread_mutex_lock(&r->join_mu);
	join_abort(r, "shutting down");
	pthread_mutex_unlock(&r->join_mu);
}
