/* handlers_admin.c -- the Admin service of a ps node. */
#include <stdio.h>
#include <string.h>

#include "lib/base/log.h"
#include "ps/internal.h"

void psf_ps_admin_health(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__HealthRequest *in,
    Psfleet__V1__HealthReply_Closure done, void *call);
void psf_ps_admin_status(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__StatusRequest *in,
    Psfleet__V1__StatusReply_Closure done, void *call);
void psf_ps_admin_shutdown(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__ShutdownRequest *in,
    Psfleet__V1__ShutdownReply_Closure done, void *call);

void
psf_ps_admin_health(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__HealthRequest *in,
    Psfleet__V1__HealthReply_Closure done, void *call)
{
	psf_ps *ps = psf_rpc_call_user(call);
	Psfleet__V1__HealthReply r = PSFLEET__V1__HEALTH_REPLY__INIT;
	char reason[256] = "";

	(void)svc;
	(void)in;
	r.ready = psf_runtime_is_ready(ps->rt, reason, sizeof(reason));
	r.reason = reason;
	r.node = ps->node->id;
	r.role = "ps";
	pthread_mutex_lock(&ps->mu);
	r.model_version = ps->version;
	pthread_mutex_unlock(&ps->mu);
	done(&r, call);
}

void
psf_ps_admin_status(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__StatusRequest *in,
    Psfleet__V1__StatusReply_Closure done, void *call)
{
	psf_ps *ps = psf_rpc_call_user(call);
	Psfleet__V1__StatusReply r = PSFLEET__V1__STATUS_REPLY__INIT;
	Psfleet__V1__WorkerStatus ws[PS_MAX_WORKERS], *wsp[PS_MAX_WORKERS];
	Psfleet__V1__KeyValue kv[4], *kvp[4];
	char round[32], step[32], shard[32];

	(void)svc;
	(void)in;
	pthread_mutex_lock(&ps->mu);
	r.node = ps->node->id;
	r.role = "ps";
	r.ready = psf_runtime_is_ready(ps->rt, NULL, 0);
	r.model_version = ps->version;
	r.uptime_seconds = psf_runtime_uptime(ps->rt);
	for (size_t i = 0; i < ps->n_workers; i++) {
		psfleet__v1__worker_status__init(&ws[i]);
		ws[i].worker = ps->workers[i].id;
		ws[i].clock = ps->workers[i].clock;
		ws[i].live = ps->workers[i].live && !ps->workers[i].done;
		ws[i].last_seq = ps->workers[i].last_seq;
		ws[i].pushes = ps->workers[i].pushes;
		wsp[i] = &ws[i];
	}
	r.n_workers = ps->n_workers;
	r.workers = wsp;
	snprintf(round, sizeof(round), "%lld", (long long)ps->round);
	snprintf(step, sizeof(step), "%llu", (unsigned long long)ps->step);
	snprintf(shard, sizeof(shard), "%zu/%zu", ps->shard, ps->n_ps);
	const char *keys[4] = {"mode", "round", "trained_steps", "shard"};
	const char *vals[4] = {psf_consistency_name(ps->cfg->consistency.mode), round, step, shard};
	for (size_t i = 0; i < 4; i++) {
		psfleet__v1__key_value__init(&kv[i]);
		kv[i].key = (char *)keys[i];
		kv[i].value = (char *)vals[i];
		kvp[i] = &kv[i];
	}
	r.n_extra = 4;
	r.extra = kvp;
	done(&r, call);
	pthread_mutex_unlock(&ps->mu);
}

void
psf_ps_admin_shutdown(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__ShutdownRequest *in,
    Psfleet__V1__ShutdownReply_Closure done, void *call)
{
	psf_ps *ps = psf_rpc_call_user(call);
	Psfleet__V1__ShutdownReply r = PSFLEET__V1__SHUTDOWN_REPLY__INIT;

	(void)svc;
	psf_log_info("ps", "shutdown requested: %s", in->reason[0] ? in->reason : "(no reason)");
	done(&r, call);
	psf_runtime_request_stop(ps->rt);
}

void ps_admin_init(psf_ps *ps);

void
ps_admin_init(psf_ps *ps)
{
	Psfleet__V1__Admin_Service admin = PSFLEET__V1__ADMIN__INIT(psf_ps_admin_);

	ps->admin = admin;
}
