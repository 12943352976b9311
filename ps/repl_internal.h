/* repl_internal.h -- what the replication files of a ps node share (not a public
 * API; docs/reliability.md "Replication" is the protocol).
 *
 *   repl.c       state, the state file, the capture callback (primary), the
 *                gate for client calls, Replicate and Heartbeat handlers, the
 *                replication thread (heartbeats, elections, joins, metrics)
 *   repl_vote.c  the voter (Vote handler) and a candidate's election
 *   repl_join.c  catch-up: Join (primary), the copy stream and tail, Install
 *                (joiner)
 *
 * Locks. repl->mu guards the fields marked (mu); it is never held across an RPC
 * or a store update, and never taken together with ps->mu (so the Replication
 * handlers of one node never wait for another node's ps->mu: no cycle between
 * two nodes). The capture callback runs under the store's writer lock and often
 * under ps->mu: it takes repl->mu only to copy the view, and sends its RPCs with
 * no lock of its own held. View changes of a primary happen inside the capture
 * callback (writer lock held), so they are ordered with its writesets. */
#ifndef PSF_PS_REPL_INTERNAL_H
#define PSF_PS_REPL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/net/rpc_client.h"
#include "ps/internal.h"

#define REPL_HEARTBEAT_MS 100
#define REPL_LEASE_MS 800
#define REPL_TIMEOUT_MS 1000 /* a backup's ack (an fsync under load can take 0.5 s) */
#define REPL_PIECE_BYTES ((size_t)1 << 20)
#define REPL_TAIL_MAX_BYTES ((size_t)256 << 20)
#define REPL_JOIN_TIMEOUT_MS 120000

typedef enum repl_role {
	REPL_BACKUP = 0, /* a member of the view, not its primary */
	REPL_PRIMARY,    /* serves clients, replicates every commit */
	REPL_OUTSIDE,    /* not a member: must join (catch-up) before anything else */
	REPL_JOINING,    /* receiving the copy and the tail from the primary */
} repl_role;

typedef struct repl_view {
	uint64_t epoch;
	uint32_t primary;
	uint32_t n_members;
	uint32_t members[PSF_MAX_REPLICATION];
} repl_view;

/* One writeset kept for a joiner (repl_join.c). */
typedef struct repl_tail {
	struct repl_tail *next;
	uint64_t seq;
	size_t len;
	uint8_t bytes[];
} repl_tail;

typedef enum join_phase { JOIN_NONE = 0, JOIN_COPYING, JOIN_FINAL } join_phase;

struct ps_repl {
	psf_ps *ps;
	uint32_t me, shard, n_shards, r, n_ps;
	psf_rpc_client **peers; /* [n_ps], NULL at me */
	Psfleet__V1__Replication_Service svc;
	char state_path[1024];
	char token[256];
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t mu;
	bool stopping;          /* (mu) */
	repl_role role;         /* (mu) */
	repl_view view;         /* (mu) my shard's latest view I know */
	bool needs_copy;        /* (mu) my store may hold what the group lacks, or lack what
	                    * it has: join before standing as a candidate */
	bool capture_on;        /* thread only: capture installed on the store */
	uint64_t acked_seq;     /* (mu) primary: the last writeset every member has */
	uint64_t primary_epoch; /* (mu) the epoch I was last primary in (0: never); a
	                         * newer view with another primary means my store may
	                         * hold writes it lacks: I join with a fresh copy */
	uint64_t start_ms;      /* when this node started (a voter's lease starts there) */
	bool fresh;             /* no state file at start: listen a lease before standing */
	uint64_t next_elect_ms; /* thread only: no candidacy before (after a lost one) */
	uint64_t joining_ms;    /* (mu) when the Join was asked */
	uint64_t joining_epoch; /* (mu) the view's epoch then: a newer view with me in
	                         * it ends the join */
	uint64_t *vote_epoch;   /* (mu) [n_shards] highest epoch granted or seen */
	repl_view *known;       /* (mu) [n_shards] latest view known of each shard */
	uint64_t *heard_ms;     /* (mu) [n_shards] last word from that shard's primary */
	uint64_t *known_seq;    /* (mu) [n_shards] highest acked seq heard */
	uint32_t *voted_for;    /* (mu) [n_shards] candidate of my latest grant */
	repl_view *granted;     /* (mu) [n_shards] the view of my latest grant: a view
	                        * change a majority granted may never be announced
	                        * (its primary dies at once), so its members count */
	uint64_t majority_ms;   /* (mu) primary: when a majority last acknowledged its
	                        * heartbeat (the send time of that round) */
	uint64_t failovers;     /* (mu) promotions of this node */
	uint64_t catchups;      /* (mu) joins completed (as joiner or primary) */
	uint64_t view_changes;  /* (mu) */
	uint64_t pub_failovers, pub_catchups, pub_view_changes; /* thread only: published */

	/* Join, primary side (repl_join.c); (join_mu). */
	pthread_mutex_t join_mu;
	join_phase join;
	uint32_t joiner;
	uint64_t join_seq; /* X, the copy's seq; 0 until known */
	repl_tail *tail, **tail_end;
	size_t tail_bytes, tail_n;
	pthread_t join_thread;
	bool join_thread_started;
};

/* ---- repl.c ---- */

/* repl_is_member tells whether node is in v. */
bool repl_is_member(const repl_view *v, uint32_t node);

/* repl_view_to_pb fills m (members pointing into v) from v. */
void repl_view_to_pb(const repl_view *v, Psfleet__V1__ReplView *m);

/* repl_view_from_pb reads m into v; false when m is malformed. */
bool repl_view_from_pb(const Psfleet__V1__ReplView *m, repl_view *v);

/* repl_view_text writes "epoch 3, primary ps0, members ps0,ps2". */
void repl_view_text(const ps_repl *r, const repl_view *v, char *buf, size_t len);

/* repl_node_id returns the id of ps index i. */
const char *repl_node_id(const ps_repl *r, uint32_t i);

/* repl_save writes the state file (votes, views, needs_copy) durably. Caller
 *    * holds mu. Errors are logged and returned (callers that go on regardless
 * ignore them). */
psf_err repl_save(ps_repl *r);

/* repl_adopt_view makes v my shard's view when it is newer than the one I
 * know, setting my role from it (not a member: OUTSIDE, unless JOINING); a
 * primary that learns of a newer view steps down. Saves. Caller holds mu. */
void repl_adopt_view(ps_repl *r, const repl_view *v);

/* repl_apply_ws applies one writeset on a non-primary (Replicate and a join's
 * tail): writes the resulting repl_seq to *seq_out. */
PSF_NODISCARD psf_err repl_apply_ws(ps_repl *r, uint64_t seq, const void *bytes, size_t len,
    uint64_t *seq_out);

/* repl_send_ws sends writeset seq to node and waits for its ack: PSF_OK when it
 * holds seq; PSF_ESTATE when its position differs; PSF_ECONFIG (deposed: the node
 * knows a newer epoch, then *epoch_out gets it); or the RPC's error. */
PSF_NODISCARD psf_err repl_send_ws(ps_repl *r, uint32_t node, const repl_view *v, uint64_t seq,
    const void *bytes, size_t len, uint64_t *epoch_out);

/* repl_announce sends a heartbeat (my view, the acknowledged seq) to every
 * other ps node and waits for the answers (a primary, from its thread every
 * REPL_HEARTBEAT_MS, and a new view before it is served). Returns true when a
 * majority of the ps nodes (me included) now hold my view: a voter that voted
 * in a later election since does not take a new view up. A view is in force,
 * and writes may be acknowledged in it, only after that. No lock held by the
 * caller but possibly the writer lock. */
bool repl_announce(ps_repl *r);

/* ---- repl_vote.c ---- */

/* repl_vote_decide is the voter: grants (saving first) or refuses the proposed
 * view v for shard from a candidate at seq; reason gets why not. Takes mu. */
bool repl_vote_decide(ps_repl *r, uint32_t shard, const repl_view *v, uint64_t seq,
    uint64_t *epoch_out, char *reason, size_t len);

/* repl_elect asks every ps node (this one included) to grant view v; true with
 * a majority. *max_epoch gets the highest epoch a voter reported; *newest (may
 * be NULL; its epoch is the floor) the newest announced view a voter knows,
 * when newer. No lock held by the caller but possibly the store's writer lock
 * (capture). */
bool repl_elect(ps_repl *r, const repl_view *v, uint64_t seq, uint64_t *max_epoch,
    repl_view *newest);

void psf_repl_rpc_vote(Psfleet__V1__Replication_Service *svc,
    const Psfleet__V1__ReplVoteRequest *in, Psfleet__V1__ReplVoteReply_Closure done, void *call);

/* ---- repl_join.c ---- */

/* repl_join_capture runs in the capture callback after the members acked seq:
 * keeps the writeset for a joiner and, in the final phase, brings the joiner
 * in (view change). Returns PSF_OK, or an error when a view change was needed
 * and lost (the caller steps down). */
PSF_NODISCARD psf_err repl_join_capture(ps_repl *r, uint64_t seq, const void *bytes, size_t len);

/* repl_join_ask (thread, joiner side) asks the primary p of my shard to bring
 * me in. */
void repl_join_ask(ps_repl *r, uint32_t p);

/* repl_join_stop ends a join in progress (shutdown). */
void repl_join_stop(ps_repl *r);

void psf_repl_rpc_join(Psfleet__V1__Replication_Service *svc,
    const Psfleet__V1__ReplJoinRequest *in, Psfleet__V1__ReplJoinReply_Closure done, void *call);
void psf_repl_rpc_install(Psfleet__V1__Replication_Service *svc,
    const Psfleet__V1__ReplInstallRequest *in, Psfleet__V1__ReplInstallReply_Closure done,
    void *call);

#endif
