/* repl.c -- a ps node's part in replicated shards (repl_internal.h says who does
 * what; docs/reliability.md "Replication" is the protocol). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/net/methods.h"
#include "lib/runtime/runtime.h"
#include "ps/repl_internal.h"

#define TAG "repl"

static const char *const role_names[] = {"backup", "primary", "outside", "joining"};

bool
repl_is_member(const repl_view *v, uint32_t node)
{
	for (uint32_t i = 0; i < v->n_members; i++)
		if (v->members[i] == node)
			return true;
	return false;
}

void
repl_view_to_pb(const repl_view *v, Psfleet__V1__ReplView *m)
{
	psfleet__v1__repl_view__init(m);
	m->epoch = v->epoch;
	m->primary = v->primary;
	m->n_members = v->n_members;
	m->members = (uint32_t *)v->members;
}

bool
repl_view_from_pb(const Psfleet__V1__ReplView *m, repl_view *v)
{
	if (m == NULL || m->n_members == 0 || m->n_members > PSF_MAX_REPLICATION)
		return false;
	v->epoch = m->epoch;
	v->primary = m->primary;
	v->n_members = (uint32_t)m->n_members;
	memcpy(v->members, m->members, m->n_members * sizeof(uint32_t));
	return true;
}

const char *
repl_node_id(const ps_repl *r, uint32_t i)
{
	const psf_node_cfg *n = psf_config_role_node(r->ps->cfg, PSF_ROLE_PS, i);

	return n != NULL ? n->id : "?";
}

void
repl_view_text(const ps_repl *r, const repl_view *v, char *buf, size_t len)
{
	size_t off = (size_t)snprintf(buf, len, "epoch %llu, primary %s, members ",
	    (unsigned long long)v->epoch, repl_node_id(r, v->primary));

	for (uint32_t i = 0; i < v->n_members && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i > 0 ? "," : "",
		    repl_node_id(r, v->members[i]));
}

/* ---- the state file: <data_dir>/repl_state, one line per fact ---- */

psf_err
repl_save(ps_repl *r)
{
	char tmp[1100];
	FILE *f;
	int ok;

	snprintf(tmp, sizeof(tmp), "%s.tmp", r->state_path);
	if ((f = fopen(tmp, "w")) == NULL) {
		psf_log_err(TAG, "cannot write %s: %s", tmp, strerror(errno));
		return PSF_ESYS;
	}
	fprintf(f, "psfleet-repl 1\nneeds_copy %d\n", r->needs_copy ? 1 : 0);
	for (uint32_t s = 0; s < r->n_shards; s++) {
		const repl_view *v = &r->known[s];
		fprintf(f, "shard %u vote %llu for %u epoch %llu primary %u members", s,
		    (unsigned long long)r->vote_epoch[s], r->voted_for[s],
		    (unsigned long long)v->epoch, v->primary);
		for (uint32_t i = 0; i < v->n_members; i++)
			fprintf(f, " %u", v->members[i]);
		fprintf(f, "\n");
		if (r->granted[s].epoch > 0) {
			const repl_view *g = &r->granted[s];
			fprintf(f, "granted %u epoch %llu primary %u members", s,
			    (unsigned long long)g->epoch, g->primary);
			for (uint32_t i = 0; i < g->n_members; i++)
				fprintf(f, " %u", g->members[i]);
			fprintf(f, "\n");
		}
	}
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, r->state_path) != 0) {
		psf_log_err(TAG, "cannot write %s: %s", r->state_path, strerror(errno));
		return PSF_ESYS;
	}
	return PSF_OK;
}

/* load reads the state file; false when there is none (a new or wiped node). */
static bool
load(ps_repl *r)
{
	FILE *f = fopen(r->state_path, "r");
	char line[512];
	int nc;

	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned s, p, vf, m[PSF_MAX_REPLICATION];
		unsigned long long vote, epoch;
		int n;
		if (sscanf(line, "needs_copy %d", &nc) == 1) {
			r->needs_copy = nc != 0;
			continue;
		}
		n = sscanf(line, "granted %u epoch %llu primary %u members %u %u %u", &s, &epoch,
		    &p, &m[0], &m[1], &m[2]);
		if (n >= 4) {
			if (s >= r->n_shards || p >= r->n_ps)
				continue;
			r->granted[s].epoch = epoch;
			r->granted[s].primary = p;
			r->granted[s].n_members = (uint32_t)(n - 3);
			for (int i = 0; i < n - 3; i++)
				r->granted[s].members[i] = m[i] < r->n_ps ? m[i] : p;
			continue;
		}
		n = sscanf(line, "shard %u vote %llu for %u epoch %llu primary %u members %u %u %u",
		    &s, &vote, &vf, &epoch, &p, &m[0], &m[1], &m[2]);
		if (n < 6 || s >= r->n_shards || p >= r->n_ps || vf >= r->n_ps)
			continue;
		n--; /* the members start at the 6th field */
		r->vote_epoch[s] = vote;
		r->voted_for[s] = vf;
		r->known[s].epoch = epoch;
		r->known[s].primary = p;
		r->known[s].n_members = (uint32_t)(n - 4);
		for (int i = 0; i < n - 4; i++)
			r->known[s].members[i] = m[i] < r->n_ps ? m[i] : p;
	}
	fclose(f);
	return true;
}

/* ---- views and roles ---- */

void
repl_adopt_view(ps_repl *r, const repl_view *v)
{
	char text[256];
	repl_role was = r->role;

	if (v->epoch < r->view.epoch)
		return;
	if (v->epoch > r->known[r->shard].epoch)
		r->known[r->shard] = *v;
	if (v->epoch > r->vote_epoch[r->shard])
		r->vote_epoch[r->shard] = v->epoch;
	if (v->epoch == r->view.epoch && v->primary == r->view.primary &&
	    v->n_members == r->view.n_members &&
	    memcmp(v->members, r->view.members, v->n_members * sizeof(uint32_t)) == 0)
		return;
	r->view = *v;
	if (v->primary != r->me && r->primary_epoch > 0 && v->epoch > r->primary_epoch)
		r->needs_copy = true; /* it may hold writes the new primary lacks */
	if (v->primary == r->me && was == REPL_PRIMARY)
		; /* my own view change */
	else if (was == REPL_JOINING && repl_is_member(v, r->me) && v->epoch > r->joining_epoch) {
		r->role = REPL_BACKUP; /* the view change that brought me in */
		r->needs_copy = false;
		r->primary_epoch = 0;
		r->catchups++;
	} else if (was == REPL_JOINING) {
		; /* still catching up */
	} else if (repl_is_member(v, r->me) && !r->needs_copy) {
		r->role = REPL_BACKUP;
	} else {
		r->role = REPL_OUTSIDE; /* join with a fresh copy */
	}
	(void)repl_save(r);
	repl_view_text(r, v, text, sizeof(text));
	psf_log_info(TAG, "shard %u: view %s; %s is %s", r->shard, text, repl_node_id(r, r->me),
	    role_names[r->role]);
}

/* ---- sending writesets ---- */

psf_err
repl_send_ws(ps_repl *r, uint32_t node, const repl_view *v, uint64_t seq, const void *bytes,
    size_t len, uint64_t *epoch_out)
{
	Psfleet__V1__ReplicateRequest req = PSFLEET__V1__REPLICATE_REQUEST__INIT;
	Psfleet__V1__ReplView pv;
	Psfleet__V1__ReplicateReply *rep = NULL;
	/* fail_fast: a backup whose connection is down (killed) fails at once and
	 * is dropped at once. The caller is an RPC handler (the capture callback
	 * of a push) that blocks NNG's callback threads while it waits: the
	 * shorter, the better (the votes of the view change need those threads). */
	psf_rpc_call_opts o = {REPL_TIMEOUT_MS, 0, 1};
	psf_rpc_status st;
	psf_err err;

	repl_view_to_pb(v, &pv);
	req.shard = r->shard;
	req.view = &pv;
	req.seq = seq;
	req.writeset.data = (uint8_t *)bytes;
	req.writeset.len = len;
	err = psf_rpc_client_call(r->peers[node], PSF_M_REPLICATE, &req.base,
	    &psfleet__v1__replicate_reply__descriptor, &o, (ProtobufCMessage **)&rep, &st);
	if (err != PSF_OK) {
		psf_log_warn(TAG, "shard %u: replicate seq %llu to %s: %s", r->shard,
		    (unsigned long long)seq, repl_node_id(r, node), st.message);
		return err;
	}
	if (rep->epoch > v->epoch) {
		*epoch_out = rep->epoch;
		err = PSF_ECONFIG;
	} else if (rep->seq != seq) {
		psf_log_warn(TAG, "shard %u: %s is at seq %llu, not %llu", r->shard,
		    repl_node_id(r, node), (unsigned long long)rep->seq, (unsigned long long)seq);
		err = PSF_ESTATE;
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return err;
}

/* step_down: this primary stops serving (it cannot replicate, or no majority
 * confirmed it lately). It stays a member with every acknowledged write and may
 * stand again; should another primary win a newer epoch meanwhile, it learns of
 * it and joins with a fresh copy (repl_adopt_view). Caller holds mu. */
static void
step_down(ps_repl *r, const char *why)
{
	if (r->role != REPL_PRIMARY)
		return;
	r->role = repl_is_member(&r->view, r->me) && !r->needs_copy ? REPL_BACKUP : REPL_OUTSIDE;
	r->heard_ms[r->shard] = psf_now_ms(); /* no candidacy for a lease */
	psf_log_err(TAG, "shard %u: %s steps down as primary: %s", r->shard, repl_node_id(r, r->me),
	    why);
}

/* capture is the store's capture callback on a primary (ps/store.h): every
 * commit reaches every member of the view before the update is acknowledged. */
static psf_err
capture(uint64_t seq, const void *bytes, size_t len, void *arg)
{
	ps_repl *r = arg;
	repl_view v, nv;
	uint32_t failed[PSF_MAX_REPLICATION], n_failed = 0;
	uint64_t epoch = 0, max_epoch = 0;
	char why[160] = "";
	psf_err err;

	pthread_mutex_lock(&r->mu);
	v = r->view;
	if (r->role != REPL_PRIMARY) {
		pthread_mutex_unlock(&r->mu);
		return PSF_EUNAVAIL;
	}
	pthread_mutex_unlock(&r->mu);
	for (uint32_t i = 0; i < v.n_members; i++) {
		uint32_t b = v.members[i];
		if (b == r->me)
			continue;
		err = repl_send_ws(r, b, &v, seq, bytes, len, &epoch);
		if (err == PSF_ECONFIG) {
			pthread_mutex_lock(&r->mu);
			snprintf(why, sizeof(why), "%s knows epoch %llu", repl_node_id(r, b),
			    (unsigned long long)epoch);
			step_down(r, why);
			pthread_mutex_unlock(&r->mu);
			return PSF_EUNAVAIL;
		}
		if (err != PSF_OK)
			failed[n_failed++] = b;
	}
	if (n_failed > 0) {
		/* View change: drop the backups that did not ack, by majority vote
		 * (the write waits meanwhile). */
		nv = v;
		nv.epoch = v.epoch + 1;
		nv.n_members = 0;
		for (uint32_t i = 0; i < v.n_members; i++) {
			bool drop = false;
			for (uint32_t k = 0; k < n_failed; k++)
				drop = drop || v.members[i] == failed[k];
			if (!drop)
				nv.members[nv.n_members++] = v.members[i];
		}
		if (!repl_elect(r, &nv, seq, &max_epoch, NULL)) {
			pthread_mutex_lock(&r->mu);
			step_down(r, "lost the vote to drop a silent backup");
			pthread_mutex_unlock(&r->mu);
			return PSF_EUNAVAIL;
		}
		pthread_mutex_lock(&r->mu);
		r->view_changes++;
		repl_adopt_view(r, &nv);
		pthread_mutex_unlock(&r->mu);
		if (!repl_announce(r)) { /* in force only once a majority holds it */
			pthread_mutex_lock(&r->mu);
			step_down(r,
			    "a majority did not take up the view without the silent backup");
			pthread_mutex_unlock(&r->mu);
			return PSF_EUNAVAIL;
		}
		psf_log_warn(TAG,
		    "shard %u: dropped %s from the view (epoch %llu): no ack for seq %llu",
		    r->shard, repl_node_id(r, failed[0]), (unsigned long long)nv.epoch,
		    (unsigned long long)seq);
	}
	pthread_mutex_lock(&r->mu);
	r->acked_seq = seq;
	pthread_mutex_unlock(&r->mu);
	if ((err = repl_join_capture(r, seq, bytes, len)) != PSF_OK) {
		pthread_mutex_lock(&r->mu);
		step_down(r, "lost the vote to add a joiner");
		pthread_mutex_unlock(&r->mu);
		return PSF_EUNAVAIL;
	}
	return PSF_OK;
}

/* gate turns client calls away unless this node is its shard's primary. */
static psf_status
gate(const char *method, char *msg, size_t len, void *arg)
{
	ps_repl *r = arg;
	psf_status code = PSF_STATUS_OK;

	(void)method;
	pthread_mutex_lock(&r->mu);
	if (r->role != REPL_PRIMARY) {
		code = PSF_STATUS_UNAVAILABLE;
		if (r->view.primary != r->me && r->view.epoch > 0)
			snprintf(msg, len,
			    "%s is %s of shard %u (not primary); primary %s, epoch %llu",
			    repl_node_id(r, r->me),
			    r->role == REPL_BACKUP ? "a backup" : role_names[r->role], r->shard,
			    repl_node_id(r, r->view.primary), (unsigned long long)r->view.epoch);
		else
			snprintf(msg, len, "%s is not primary of shard %u yet (epoch %llu, %s)",
			    repl_node_id(r, r->me), r->shard, (unsigned long long)r->view.epoch,
			    role_names[r->role]);
	}
	pthread_mutex_unlock(&r->mu);
	return code;
}

psf_err
repl_apply_ws(ps_repl *r, uint64_t seq, const void *bytes, size_t len, uint64_t *seq_out)
{
	psf_err err = psf_store_apply_wset(r->ps->store, seq, bytes, len);

	if (err == PSF_OK) {
		*seq_out = seq;
		return PSF_OK;
	}
	if (err == PSF_ESTATE) /* not next in line: say where we are */
		return psf_store_repl_seq(r->ps->store, seq_out) == PSF_OK ? PSF_OK : PSF_ESTATE;
	return err;
}

/* ---- handlers ---- */

static void
psf_repl_rpc_replicate(Psfleet__V1__Replication_Service *svc,
    const Psfleet__V1__ReplicateRequest *in, Psfleet__V1__ReplicateReply_Closure done, void *call)
{
	ps_repl *r = psf_rpc_call_user(call);
	Psfleet__V1__ReplicateReply rep = PSFLEET__V1__REPLICATE_REPLY__INIT;
	repl_view v;
	uint64_t pos = 0;
	psf_err err;

	(void)svc;
	if (in->shard != r->shard || !repl_view_from_pb(in->view, &v)) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "not shard %u's view", r->shard);
		done(NULL, call);
		return;
	}
	pthread_mutex_lock(&r->mu);
	if (v.epoch < r->view.epoch || (v.epoch == r->view.epoch && r->role == REPL_PRIMARY)) {
		rep.epoch = r->view.epoch + (v.epoch == r->view.epoch);
		pthread_mutex_unlock(&r->mu);
		done(&rep, call); /* the sender is a deposed primary */
		return;
	}
	if (r->role == REPL_PRIMARY) /* a newer view: I was deposed */
		step_down(r, "a primary of a newer epoch replicates to me");
	repl_adopt_view(r, &v);
	r->heard_ms[r->shard] = psf_now_ms();
	rep.epoch = r->view.epoch;
	pthread_mutex_unlock(&r->mu);
	err = repl_apply_ws(r, in->seq, in->writeset.data, in->writeset.len, &pos);
	if (err != PSF_OK) {
		psf_rpc_fail_err(call, err, "writeset %llu not applied: %s",
		    (unsigned long long)in->seq, psf_strerror(err));
		done(NULL, call);
		return;
	}
	rep.seq = pos;
	done(&rep, call);
}

static void
psf_repl_rpc_heartbeat(Psfleet__V1__Replication_Service *svc,
    const Psfleet__V1__ReplHeartbeatRequest *in, Psfleet__V1__ReplHeartbeatReply_Closure done,
    void *call)
{
	ps_repl *r = psf_rpc_call_user(call);
	Psfleet__V1__ReplHeartbeatReply rep = PSFLEET__V1__REPL_HEARTBEAT_REPLY__INIT;
	repl_view v;

	(void)svc;
	if (in->shard >= r->n_shards || !repl_view_from_pb(in->view, &v)) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "bad heartbeat");
		done(NULL, call);
		return;
	}
	pthread_mutex_lock(&r->mu);
	if (v.epoch > r->known[in->shard].epoch && v.epoch < r->vote_epoch[in->shard]) {
		/* A new view, but I voted in a later election since: I do not take
		 * it up (the reply's epoch tells its sender it was not acked). */
	} else if (v.epoch >= r->known[in->shard].epoch) {
		bool changed = v.epoch > r->known[in->shard].epoch;
		r->known[in->shard] = v;
		r->heard_ms[in->shard] = psf_now_ms();
		if (in->acked_seq > r->known_seq[in->shard])
			r->known_seq[in->shard] = in->acked_seq;
		if (v.epoch > r->vote_epoch[in->shard]) {
			r->vote_epoch[in->shard] = v.epoch;
			changed = true;
		}
		if (in->shard == r->shard)
			repl_adopt_view(r, &v);
		else if (changed)
			(void)repl_save(r);
	}
	rep.epoch = r->known[in->shard].epoch;
	rep.role = (char *)role_names[r->role];
	pthread_mutex_unlock(&r->mu);
	done(&rep, call);
}

/* ---- the thread: heartbeats, elections, joins ---- */

bool
repl_announce(ps_repl *r)
{
	Psfleet__V1__ReplHeartbeatRequest req = PSFLEET__V1__REPL_HEARTBEAT_REQUEST__INIT;
	Psfleet__V1__ReplView pv;
	psf_rpc_call_opts o = {REPL_HEARTBEAT_MS * 2, 0, 1};
	psf_rpc_pending *p[64] = {0};
	repl_view v;
	uint64_t sent = psf_now_ms();
	uint32_t acks = 1; /* my own */

	pthread_mutex_lock(&r->mu);
	v = r->view;
	req.acked_seq = r->acked_seq;
	pthread_mutex_unlock(&r->mu);
	repl_view_to_pb(&v, &pv);
	req.shard = r->shard;
	req.view = &pv;
	for (uint32_t i = 0; i < r->n_ps && i < 64; i++)
		if (i != r->me &&
		    psf_rpc_call_start(r->peers[i], PSF_M_REPL_HEARTBEAT, &req.base, &o, &p[i]) !=
		        PSF_OK)
			p[i] = NULL;
	for (uint32_t i = 0; i < r->n_ps && i < 64; i++) {
		Psfleet__V1__ReplHeartbeatReply *rep = NULL;
		if (p[i] == NULL)
			continue;
		if (psf_rpc_pending_wait(p[i], &psfleet__v1__repl_heartbeat_reply__descriptor,
		        (ProtobufCMessage **)&rep, NULL) == PSF_OK) {
			acks += rep->epoch == v.epoch; /* it holds my view now */
			if (rep->epoch > v.epoch) {
				pthread_mutex_lock(&r->mu);
				step_down(r, "a member knows a newer epoch");
				pthread_mutex_unlock(&r->mu);
			}
			protobuf_c_message_free_unpacked(&rep->base, NULL);
		}
		psf_rpc_pending_free(p[i]);
	}
	pthread_mutex_lock(&r->mu);
	if (acks >= r->n_ps / 2 + 1)
		r->majority_ms = sent; /* (shown in status) */
	pthread_mutex_unlock(&r->mu);
	return acks >= r->n_ps / 2 + 1;
}

/* promote makes this node the primary of view v it just won: rebuilds the
 * in-memory state from the store as a restarted ps does, turns capture on. */
static void
promote(ps_repl *r, const repl_view *v, uint64_t elected_ms)
{
	char text[256];
	psf_err err;

	if (!r->capture_on) {
		psf_store_set_capture(r->ps->store, capture, r);
		r->capture_on = true;
	}
	if ((err = ps_reload(r->ps)) != PSF_OK) {
		psf_log_err(TAG, "shard %u: cannot reload the store: %s", r->shard,
		    psf_strerror(err));
		return;
	}
	pthread_mutex_lock(&r->mu);
	r->view = *v;
	r->known[r->shard] = *v;
	pthread_mutex_unlock(&r->mu);
	/* The view is in force once a majority holds it: only then may a write be
	 * acknowledged in it (repl_vote_decide judges candidates by such views). */
	if (!repl_announce(r)) {
		psf_log_info(TAG,
		    "shard %u: %s won epoch %llu but a majority did not take the view up; "
		    "not serving",
		    r->shard, repl_node_id(r, r->me), (unsigned long long)v->epoch);
		pthread_mutex_lock(&r->mu);
		r->heard_ms[r->shard] = psf_now_ms();
		r->next_elect_ms = psf_now_ms() + 2 * REPL_HEARTBEAT_MS + 50 * (r->me % 8);
		pthread_mutex_unlock(&r->mu);
		return;
	}
	pthread_mutex_lock(&r->mu);
	r->role = REPL_PRIMARY;
	r->primary_epoch = v->epoch;
	r->majority_ms = elected_ms;
	r->heard_ms[r->shard] = psf_now_ms();
	if (psf_store_repl_seq(r->ps->store, &r->acked_seq) != PSF_OK)
		r->acked_seq = 0;
	if (v->epoch > 2 || r->failovers > 0 || v->primary != r->shard)
		r->failovers++;
	r->view_changes++;
	(void)repl_save(r);
	pthread_mutex_unlock(&r->mu);
	repl_view_text(r, v, text, sizeof(text));
	psf_log_info(TAG, "shard %u: %s is primary (%s)", r->shard, repl_node_id(r, r->me), text);
}

/* maybe_elect stands as candidate when my shard's primary has been silent for
 * a lease (at once when the view names me primary, e.g. at start). */
static void
maybe_elect(ps_repl *r, uint64_t now)
{
	repl_view v, nv;
	uint64_t seq = 0, max_epoch = 0;
	bool go;

	pthread_mutex_lock(&r->mu);
	v = r->view;
	go = r->role == REPL_BACKUP && !r->needs_copy && now >= r->next_elect_ms &&
	    (!r->fresh ||
	        now - r->start_ms >= (v.primary == r->me ? 1 : 2) * (uint64_t)REPL_LEASE_MS) &&
	    (v.primary == r->me || now - r->heard_ms[r->shard] >= REPL_LEASE_MS);
	if (r->vote_epoch[r->shard] > v.epoch)
		v.epoch = r->vote_epoch[r->shard];
	pthread_mutex_unlock(&r->mu);
	if (!go || psf_store_repl_seq(r->ps->store, &seq) != PSF_OK)
		return;
	nv = v;
	nv.epoch = v.epoch + 1;
	nv.primary = r->me;
	nv.n_members = 0;
	for (uint32_t i = 0; i < v.n_members; i++) /* the silent primary is dropped */
		if (v.members[i] != v.primary || v.primary == r->me)
			nv.members[nv.n_members++] = v.members[i];
	if (!repl_is_member(&nv, r->me))
		nv.members[nv.n_members++] = r->me;
	uint64_t t0 = psf_now_ms();
	repl_view newest = v; /* a voter may know a view I missed (its announce) */
	if (repl_elect(r, &nv, seq, &max_epoch, &newest)) {
		promote(r, &nv, t0);
		return;
	}
	pthread_mutex_lock(&r->mu);
	if (max_epoch > r->vote_epoch[r->shard])
		r->vote_epoch[r->shard] = max_epoch;
	if (newest.epoch > r->view.epoch && newest.primary != r->me) {
		repl_adopt_view(r, &newest); /* not a member any more: it joins */
		r->heard_ms[r->shard] = psf_now_ms();
	}
	pthread_mutex_unlock(&r->mu);
	/* spread the candidates' next tries apart */
	r->next_elect_ms = psf_now_ms() + 2 * REPL_HEARTBEAT_MS + 50 * (r->me % 8);
}

static void *
thread_main(void *arg)
{
	ps_repl *r = arg;

	for (unsigned tick = 0;; tick++) {
		uint64_t now = psf_now_ms();
		repl_role role;
		uint32_t primary;
		uint64_t heard;

		psf_sleep_ms(REPL_HEARTBEAT_MS);
		pthread_mutex_lock(&r->mu);
		if (r->stopping) {
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		role = r->role;
		primary = r->view.primary;
		heard = r->heard_ms[r->shard];
		if (role == REPL_JOINING && now - r->joining_ms > REPL_JOIN_TIMEOUT_MS)
			r->role = role = REPL_OUTSIDE; /* ask again */
		pthread_mutex_unlock(&r->mu);
		now = psf_now_ms();
		if (role == REPL_PRIMARY) {
			(void)repl_announce(r);
		} else {
			if (r->capture_on) {
				psf_store_set_capture(r->ps->store, NULL, NULL);
				r->capture_on = false;
			}
			if (role == REPL_BACKUP)
				maybe_elect(r, now);
			else if (role == REPL_OUTSIDE && primary != r->me &&
			    now - heard < REPL_LEASE_MS)
				repl_join_ask(r, primary);
		}
		if (tick % 5 == 0)
			ps_repl_publish(r->ps);
	}
}

/* ---- lifecycle ---- */

psf_err
ps_repl_open(psf_ps *ps)
{
	const psf_config *cfg = ps->cfg;
	ps_repl *r;
	psf_rpc_client_opts co;
	psf_err err = PSF_ENOMEM;

	if (cfg->replication <= 1)
		return PSF_OK;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return PSF_ENOMEM;
	ps->repl = r;
	r->ps = ps;
	r->me = ps->node->index;
	r->shard = (uint32_t)ps->shard;
	r->n_shards = (uint32_t)cfg->n_shards;
	r->r = cfg->replication;
	r->n_ps = (uint32_t)cfg->n_ps;
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->join_mu, NULL);
	r->tail_end = &r->tail;
	r->peers = calloc(r->n_ps, sizeof(*r->peers));
	r->vote_epoch = calloc(r->n_shards, sizeof(*r->vote_epoch));
	r->known = calloc(r->n_shards, sizeof(*r->known));
	r->heard_ms = calloc(r->n_shards, sizeof(*r->heard_ms));
	r->known_seq = calloc(r->n_shards, sizeof(*r->known_seq));
	r->voted_for = calloc(r->n_shards, sizeof(*r->voted_for));
	r->granted = calloc(r->n_shards, sizeof(*r->granted));
	if (!r->granted || !r->peers || !r->vote_epoch || !r->known || !r->heard_ms ||
	    !r->known_seq || !r->voted_for)
		return PSF_ENOMEM;
	r->start_ms = psf_now_ms();
	for (uint32_t s = 0; s < r->n_shards; s++) { /* the initial views: epoch 1 */
		r->known[s].epoch = 1;
		r->known[s].primary = s;
		for (uint32_t k = 0; k < r->r; k++)
			r->known[s].members[r->known[s].n_members++] = s + k * r->n_shards;
		r->vote_epoch[s] = 1;
		r->voted_for[s] = s;
		r->heard_ms[s] = r->start_ms; /* a voter's lease starts when it does */
	}
	snprintf(r->state_path, sizeof(r->state_path), "%s/repl_state", ps->node->data_dir);
	if (!load(r)) {
		uint64_t seq = 0;
		r->fresh = true;
		/* No state: a new fleet, or a node whose disk was lost. A store with
		 * writes in it (restored, or the state file lost) is not trusted. */
		r->needs_copy =
		    psf_store_repl_seq(ps->store, &seq) != PSF_OK || (seq > 0 && !ps->restored);
	} else if (psf_store_repl_seq(ps->store, &(uint64_t){0}) != PSF_OK) {
		r->needs_copy = true; /* an install was cut short */
	}
	r->view = r->known[r->shard];
	r->role = repl_is_member(&r->view, r->me) && !r->needs_copy ? REPL_BACKUP : REPL_OUTSIDE;
	if ((err = psf_runtime_client_opts(cfg, r->token, sizeof(r->token), &co)) != PSF_OK)
		return err;
	/* Redial a peer every 100 ms at most: heartbeats are fail_fast, and a
	 * backup that misses them for a lease stands as candidate (the default
	 * backoff grows to 2 s, e.g. while the fleet starts). */
	co.reconnect_min_ms = 10;
	co.reconnect_max_ms = 100;
	for (uint32_t i = 0; i < r->n_ps; i++) {
		if (i == r->me)
			continue;
		if ((err = psf_rpc_client_open(
		         psf_node_dial_url(psf_config_role_node(cfg, PSF_ROLE_PS, i)), &co,
		         &r->peers[i])) != PSF_OK)
			return err;
	}
	if ((err = repl_save(r)) != PSF_OK)
		return err;
	{
		Psfleet__V1__Replication_Service svc =
		    PSFLEET__V1__REPLICATION__INIT(psf_repl_rpc_);
		r->svc = svc;
	}
	psf_log_info(TAG, "shard %u of %u, replica group of %u; %s starts as %s%s", r->shard,
	    r->n_shards, r->r, ps->node->id, role_names[r->role],
	    r->needs_copy ? " (needs a copy)" : "");
	return PSF_OK;
}

psf_err
ps_repl_serve(psf_ps *ps)
{
	ps_repl *r = ps->repl;
	psf_err err;

	if (r == NULL)
		return PSF_OK;
	if ((err = psf_rpc_server_add_service(ps->srv, &r->svc.base, r)) != PSF_OK)
		return err;
	psf_rpc_server_set_gate(ps->srv, PSF_SVC_PS "/", gate, r);
	return PSF_OK;
}

psf_err
ps_repl_start(psf_ps *ps)
{
	ps_repl *r = ps->repl;

	if (r == NULL)
		return PSF_OK;
	if (pthread_create(&r->thread, NULL, thread_main, r) != 0)
		return PSF_ESYS;
	r->thread_started = true;
	return PSF_OK;
}

void
ps_repl_stop(psf_ps *ps)
{
	ps_repl *r = ps->repl;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_mutex_unlock(&r->mu);
	if (r->thread_started)
		pthread_join(r->thread, NULL);
	r->thread_started = false;
	repl_join_stop(r);
	for (uint32_t i = 0; r->peers != NULL && i < r->n_ps; i++)
		if (r->peers[i] != NULL)
			psf_rpc_client_shutdown(r->peers[i]);
}

void
ps_repl_free(psf_ps *ps)
{
	ps_repl *r = ps->repl;

	if (r == NULL)
		return;
	if (r->capture_on && ps->store != NULL)
		psf_store_set_capture(ps->store, NULL, NULL);
	for (uint32_t i = 0; r->peers != NULL && i < r->n_ps; i++)
		psf_rpc_client_close(r->peers[i]);
	free(r->peers);
	free(r->vote_epoch);
	free(r->known);
	free(r->heard_ms);
	free(r->known_seq);
	free(r->voted_for);
	free(r->granted);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->join_mu);
	free(r);
	ps->repl = NULL;
}

bool
ps_repl_may_write(psf_ps *ps)
{
	ps_repl *r = ps->repl;
	bool ok;

	if (r == NULL)
		return true;
	pthread_mutex_lock(&r->mu);
	ok = r->role == REPL_PRIMARY;
	pthread_mutex_unlock(&r->mu);
	return ok;
}
