/* repl_status.c -- a replicated ps node's replication state on /metrics and in
 * Admin/Status (docs/operations.md). */
#include <stdio.h>
#include <string.h>

#include "ps/repl_internal.h"

static const char *const role_names[] = {"backup", "primary", "outside", "joining"};

/* snap is what both outputs show, copied under the locks. */
typedef struct repl_snap {
	repl_role role;
	repl_view view;
	uint64_t acked_seq, seq, failovers, catchups, view_changes;
	bool joining;
	uint32_t joiner;
	size_t tail_n, tail_bytes;
} repl_snap;

static void
take(ps_repl *r, repl_snap *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&r->mu);
	s->role = r->role;
	s->view = r->view;
	s->acked_seq = r->acked_seq;
	s->failovers = r->failovers;
	s->catchups = r->catchups;
	s->view_changes = r->view_changes;
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_lock(&r->join_mu);
	s->joining = r->join != JOIN_NONE;
	s->joiner = r->joiner;
	s->tail_n = r->tail_n;
	s->tail_bytes = r->tail_bytes;
	pthread_mutex_unlock(&r->join_mu);
	if (psf_store_repl_seq(r->ps->store, &s->seq) != PSF_OK)
		s->seq = 0;
}

static void
gauge(psf_metrics *reg, const char *name, const char *help, const psf_label *l, size_t nl, double v)
{
	psf_gauge *g;

	if (psf_metrics_gauge(reg, name, help, l, nl, &g) == PSF_OK)
		psf_gauge_set(g, v);
}

static void
counter_to(psf_metrics *reg, const char *name, const char *help, const psf_label *l, size_t nl,
    uint64_t v, uint64_t *published)
{
	psf_counter *c;

	if (v > *published && psf_metrics_counter(reg, name, help, l, nl, &c) == PSF_OK) {
		psf_counter_add(c, v - *published);
		*published = v;
	}
}

void
ps_repl_publish(psf_ps *ps)
{
	static const char *const roles[] = {"backup", "primary", "outside", "joining"};
	ps_repl *r = ps->repl;
	psf_metrics *reg = psf_runtime_metrics(ps->rt);
	repl_snap s;
	char shard[16];

	if (r == NULL)
		return;
	take(r, &s);
	snprintf(shard, sizeof(shard), "%u", r->shard);
	psf_label ls = {"shard", shard};
	for (int i = 0; i < 4; i++) {
		psf_label lr[2] = {ls, {"role", roles[i]}};
		gauge(reg, "psfleet_repl_role", "1 for this node's replication role in its shard",
		    lr, 2, (int)s.role == i ? 1.0 : 0.0);
	}
	gauge(reg, "psfleet_repl_epoch", "The shard's view epoch this node knows", &ls, 1,
	    (double)s.view.epoch);
	gauge(reg, "psfleet_repl_members", "Members of the shard's view (replicas in sync)", &ls, 1,
	    (double)s.view.n_members);
	gauge(reg, "psfleet_repl_seq", "Writesets this node's store holds (repl_seq)", &ls, 1,
	    (double)s.seq);
	for (uint32_t k = 0; k < r->r && s.role == REPL_PRIMARY; k++) {
		uint32_t node = r->shard + k * r->n_shards;
		bool member = repl_is_member(&s.view, node);
		bool joiner = s.joining && s.joiner == node;
		psf_label lb[2] = {ls, {"replica", repl_node_id(r, node)}};
		if (node == r->me)
			continue;
		/* members are in sync by construction (every write waits for them);
		 * a joiner lags by its tail; a node outside is not counted */
		gauge(reg, "psfleet_repl_lag_updates", "Writesets a replica lacks (primary's view)",
		    lb, 2,
		    member       ? 0.0
		        : joiner ? (double)s.tail_n
		                 : -1.0);
		gauge(reg, "psfleet_repl_lag_bytes", "Bytes of writesets a replica lacks", lb, 2,
		    member       ? 0.0
		        : joiner ? (double)s.tail_bytes
		                 : -1.0);
	}
	counter_to(reg, "psfleet_repl_failovers_total",
	    "Times this node became primary by failover", &ls, 1, s.failovers, &r->pub_failovers);
	counter_to(reg, "psfleet_repl_catchups_total", "Catch-ups completed (as joiner or primary)",
	    &ls, 1, s.catchups, &r->pub_catchups);
	counter_to(reg, "psfleet_repl_view_changes_total", "View changes this node made or joined",
	    &ls, 1, s.view_changes, &r->pub_view_changes);
}

psf_err
ps_repl_status(psf_ps *ps, psf_admin_status *st)
{
	ps_repl *r = ps->repl;
	repl_snap s;
	char members[128] = "";
	size_t off = 0;
	psf_err err;

	if (r == NULL)
		return PSF_OK;
	take(r, &s);
	for (uint32_t i = 0; i < s.view.n_members && off < sizeof(members); i++)
		off += (size_t)snprintf(members + off, sizeof(members) - off, "%s%s",
		    i > 0 ? "," : "", repl_node_id(r, s.view.members[i]));
	if ((err = psf_admin_status_extra(st, "repl_role", "%s", role_names[s.role])) != PSF_OK ||
	    (err = psf_admin_status_extra(st, "repl_epoch", "%llu",
	         (unsigned long long)s.view.epoch)) != PSF_OK ||
	    (err = psf_admin_status_extra(st, "repl_primary", "%s",
	         repl_node_id(r, s.view.primary))) != PSF_OK ||
	    (err = psf_admin_status_extra(st, "repl_members", "%s", members)) != PSF_OK ||
	    (err = psf_admin_status_extra(st, "repl_seq", "%llu", (unsigned long long)s.seq)) !=
	        PSF_OK ||
	    (err = psf_admin_status_extra(st, "repl_failovers", "%llu",
	         (unsigned long long)s.failovers)) != PSF_OK ||
	    (err = psf_admin_status_extra(st, "repl_catchups", "%llu",
	         (unsigned long long)s.catchups)) != PSF_OK)
		return err;
	if (s.joining)
		err = psf_admin_status_extra(st, "repl_joining", "%s lag %zu updates %zu bytes",
		    repl_node_id(r, s.joiner), s.tail_n, s.tail_bytes);
	return err;
}
