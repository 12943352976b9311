/* rpc_group.h -- one logical server reached over several replica URLs (a
 * replicated ps shard, docs/reliability.md "Replication").
 *
 * A group keeps one psf_rpc_client per replica and a current one: the last
 * replica that answered as primary. A call goes to the current replica; when it
 * fails with UNAVAILABLE (no connection, connection lost, or a replica that is
 * not the primary) or DEADLINE_EXCEEDED, the group moves on -- to the primary a
 * backup named in its answer ("...; primary ps0, epoch 3") when it is a member,
 * else to the next replica -- and tries each replica at most once per call.
 * When none answers, the call fails with UNAVAILABLE and a message naming every
 * replica's reason ("ps shard 0: no primary (ps0: no connection; ps2: ...)"),
 * logged at most every 5 s per group; the caller retries with its own backoff.
 *
 * A group of one replica is a plain client: psf_rpc_group_call is exactly
 * psf_rpc_client_call with the caller's options (an unreplicated fleet behaves
 * as before). With two or more, calls are sent fail_fast and not re-sent by the
 * client (a replica that is down must not hold a call until its deadline).
 *
 * Thread-safety: as psf_rpc_client; the current replica is an atomic. */
#ifndef PSF_RPC_GROUP_H
#define PSF_RPC_GROUP_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/net/rpc_client.h"

typedef struct psf_rpc_group psf_rpc_group;

/* psf_rpc_group_open dials the n (1..8) replicas urls[i], named names[i] in
 * messages (names may be NULL: the URLs are used), labelled label (e.g. "ps
 * shard 0"; copied). Returns PSF_EINVAL (bad n or URL) or psf_rpc_client_open's
 * error. On success *out gets a group the caller frees with
 * psf_rpc_group_close. */
PSF_NODISCARD psf_err psf_rpc_group_open(const char *label, const char *const *urls,
    const char *const *names, size_t n, const psf_rpc_client_opts *opts, psf_rpc_group **out);

/* psf_rpc_group_close closes every replica's client. NULL is fine. */
void psf_rpc_group_close(psf_rpc_group *g);

/* psf_rpc_group_shutdown is psf_rpc_client_shutdown on every replica. */
void psf_rpc_group_shutdown(psf_rpc_group *g);

/* psf_rpc_group_client returns the current replica's client (borrowed; valid
 * until psf_rpc_group_close). */
psf_rpc_client *psf_rpc_group_client(psf_rpc_group *g);

/* psf_rpc_group_size returns the number of replicas. */
size_t psf_rpc_group_size(const psf_rpc_group *g);

/* psf_rpc_group_current returns the current replica's index. */
size_t psf_rpc_group_current(const psf_rpc_group *g);

/* psf_rpc_group_name returns replica i's name. */
const char *psf_rpc_group_name(const psf_rpc_group *g, size_t i);

/* psf_rpc_group_switchable tells whether a failed call's status moves a group
 * to another replica (UNAVAILABLE or DEADLINE_EXCEEDED). */
bool psf_rpc_group_switchable(const psf_rpc_status *st);

/* psf_rpc_group_failed notes that a call sent to client c (one of the group's)
 * failed with *st: when c is still the current replica and the status is
 * switchable, the group moves on (see the top of this file). Returns true when
 * the current replica changed. Cannot fail. */
bool psf_rpc_group_failed(psf_rpc_group *g, psf_rpc_client *c, const psf_rpc_status *st);

/* psf_rpc_group_call is psf_rpc_client_call on the current replica, moving to
 * the others as described at the top of this file. */
PSF_NODISCARD psf_err psf_rpc_group_call(psf_rpc_group *g, const char *method,
    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
    const psf_rpc_call_opts *o, ProtobufCMessage **reply_out, psf_rpc_status *st);

/* psf_rpc_group_call_opts returns the options a call to the group's current
 * replica should use: o (NULL = defaults) as is for one replica; with more,
 * fail_fast on and idempotent off (the group, not the client, tries again). */
psf_rpc_call_opts psf_rpc_group_call_opts(const psf_rpc_group *g, const psf_rpc_call_opts *o);

#endif
