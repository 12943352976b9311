/* gateway_health.c -- the gateway's health checks of its inferers and its
 * part of the Admin service (gateway.h, lib/runtime/admin.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/gateway_internal.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/net/methods.h"

/* ready_reason writes why the gateway is not ready ("" when it is). */
static bool
ready_reason(psf_gateway *gw, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (uint32_t s = 0; s < gw->n_shards; s++) {
		bool any = false;
		for (size_t k = 0; k < gw->groups[s].n; k++)
			any = any || atomic_load(&gw->reps[gw->groups[s].idx[k]].healthy);
		if (!any && used < len)
			used += (size_t)snprintf(buf + used, len - used,
			    "%sno healthy inferer for shard %u", used ? "; " : "", s);
	}
	return used == 0;
}

/* check_all probes every replica once, in parallel. */
static void
check_all(psf_gateway *gw)
{
	Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
	psf_rpc_call_opts o = {gw->interval_ms > 1000 ? gw->interval_ms : 1000, 0, 1};
	bool unconnected[GW_MAX_REPLICAS] = {false};
	psf_rpc_pending *p[GW_MAX_REPLICAS];
	uint32_t healthy = 0;

	for (size_t i = 0; i < gw->n_reps; i++)
		if (psf_rpc_call_start(gw->reps[i].client, PSF_M_HEALTH, &req.base, &o, &p[i]) !=
		    PSF_OK) {
			p[i] = NULL;
			unconnected[i] = true; /* fail_fast: no connection to it at all */
		}
	for (size_t i = 0; i < gw->n_reps; i++) {
		Psfleet__V1__HealthReply *h = NULL;
		replica *r = &gw->reps[i];
		bool ok = false;
		if (p[i] != NULL &&
		    psf_rpc_pending_wait(p[i], &psfleet__v1__health_reply__descriptor,
		        (ProtobufCMessage **)&h, NULL) == PSF_OK) {
			ok = h->ready;
			atomic_store(&r->version, h->model_version);
			protobuf_c_message_free_unpacked(&h->base, NULL);
		}
		psf_rpc_pending_free(p[i]);
		/* No connection is certain; a slow or missing answer may be load. */
		r->misses = ok ? 0 : unconnected[i] ? GW_PROBE_MISSES : r->misses + 1;
		/* one miss keeps an up replica up until the next probe says so too */
		bool up = ok || (r->misses < GW_PROBE_MISSES && atomic_load(&r->healthy));
		if (up != atomic_exchange(&r->healthy, up))
			psf_log_info("gateway", "%s is %s", r->node->id, up ? "up" : "down");
		healthy += up ? 1 : 0;
	}
	psf_gauge_set(gw->g_healthy, healthy);
	gw_update_ready(gw);
}

void
gw_update_ready(psf_gateway *gw)
{
	char reason[256];

	if (ready_reason(gw, reason, sizeof(reason)))
		psf_runtime_set_ready(gw->rt, true, NULL);
	else
		psf_runtime_set_ready(gw->rt, false, reason);
}

void *
gw_health_main(void *arg)
{
	psf_gateway *gw = arg;

	for (;;) {
		struct timespec ts;
		uint64_t ns;

		check_all(gw);
		pthread_mutex_lock(&gw->mu);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ns = (uint64_t)ts.tv_nsec + (uint64_t)gw->interval_ms * 1000000ull;
		ts.tv_sec += (time_t)(ns / 1000000000ull);
		ts.tv_nsec = (long)(ns % 1000000000ull);
		while (!gw->stopping && pthread_cond_timedwait(&gw->health_cv, &gw->mu, &ts) == 0)
			;
		if (gw->stopping) {
			pthread_mutex_unlock(&gw->mu);
			return NULL;
		}
		pthread_mutex_unlock(&gw->mu);
	}
}

uint32_t
psf_gateway_healthy(psf_gateway *gw)
{
	uint32_t n = 0;

	for (size_t i = 0; i < gw->n_reps; i++)
		n += atomic_load(&gw->reps[i].healthy) ? 1 : 0;
	return n;
}

/* ---------------------------------------------------------------- admin */

/* health_version is the newest model any replica serves. */
static uint64_t
health_version(void *arg)
{
	psf_gateway *gw = arg;
	uint64_t v = 0;

	for (size_t i = 0; i < gw->n_reps; i++)
		if (atomic_load(&gw->reps[i].version) > v)
			v = atomic_load(&gw->reps[i].version);
	return v;
}

/* admin_status lists each replica (shard, up or down, version) and the route. */
static psf_err
admin_status(void *arg, psf_admin_status *st)
{
	psf_gateway *gw = arg;
	psf_err err;

	for (size_t i = 0; i < gw->n_reps; i++) {
		replica *rep = &gw->reps[i];
		if ((err = psf_admin_status_extra(st, rep->node->id, "shard %u, %s, version %llu",
		         rep->node->shard, atomic_load(&rep->healthy) ? "up" : "down",
		         (unsigned long long)atomic_load(&rep->version))) != PSF_OK)
			return err;
	}
	return psf_admin_status_extra(st, "route", "%s", psf_route_name(gw->cfg->gateway.route));
}

psf_err
gw_admin_open(psf_gateway *gw)
{
	psf_admin_role role = {health_version, admin_status, gw};

	return psf_admin_new(gw->rt, &role, gw->srv, &gw->admin);
}
