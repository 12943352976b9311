/* admin.c -- the Admin service of every role (admin.h). */
#include "lib/runtime/admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "psfleet.pb-c.h"

struct psf_admin {
	Psfleet__V1__Admin_Service svc;
	psf_runtime *rt;
	psf_admin_role role;
};

/* The reply being built; each KeyValue and WorkerStatus is one allocation with
 * its strings after it, freed by status_fini. */
struct psf_admin_status {
	Psfleet__V1__StatusReply r;
	size_t cap_extra, cap_workers;
};

void psf_admin_rpc_health(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__HealthRequest *in,
    Psfleet__V1__HealthReply_Closure done, void *call);
void psf_admin_rpc_status(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__StatusRequest *in,
    Psfleet__V1__StatusReply_Closure done, void *call);
void psf_admin_rpc_shutdown(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__ShutdownRequest *in,
    Psfleet__V1__ShutdownReply_Closure done, void *call);

void
psf_admin_rpc_health(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__HealthRequest *in,
    Psfleet__V1__HealthReply_Closure done, void *call)
{
	psf_admin *a = psf_rpc_call_user(call);
	Psfleet__V1__HealthReply r = PSFLEET__V1__HEALTH_REPLY__INIT;
	char reason[256] = "";

	(void)svc;
	(void)in;
	r.ready = psf_runtime_is_ready(a->rt, reason, sizeof(reason));
	r.reason = reason;
	r.node = (char *)psf_runtime_id(a->rt);
	r.role = (char *)psf_runtime_role(a->rt);
	if (a->role.health_version != NULL)
		r.model_version = a->role.health_version(a->role.arg);
	done(&r, call);
}

/* grown returns arr (n of *cap elements of size bytes used) with room for one
 * more, or NULL when out of memory (arr is then unchanged). */
static void *
grown(void *arr, size_t n, size_t *cap, size_t size)
{
	size_t cap2 = *cap != 0 ? *cap * 2 : 8;
	void *p;

	if (n < *cap)
		return arr;
	if ((p = realloc(arr, cap2 * size)) == NULL)
		return NULL;
	*cap = cap2;
	return p;
}

void
psf_admin_status_version(psf_admin_status *st, uint64_t version)
{
	st->r.model_version = version;
}

psf_err
psf_admin_status_worker(psf_admin_status *st, const char *worker, int64_t clock, bool live,
    uint64_t last_seq, uint64_t pushes)
{
	size_t len = strlen(worker) + 1;
	Psfleet__V1__WorkerStatus *w, **arr;

	arr = grown(st->r.workers, st->r.n_workers, &st->cap_workers, sizeof(*arr));
	if (arr == NULL)
		return PSF_ENOMEM;
	st->r.workers = arr;
	if ((w = malloc(sizeof(*w) + len)) == NULL)
		return PSF_ENOMEM;
	psfleet__v1__worker_status__init(w);
	w->worker = memcpy((char *)(w + 1), worker, len);
	w->clock = clock;
	w->live = live;
	w->last_seq = last_seq;
	w->pushes = pushes;
	st->r.workers[st->r.n_workers++] = w;
	return PSF_OK;
}

psf_err
psf_admin_status_extra(psf_admin_status *st, const char *key, const char *fmt, ...)
{
	size_t klen = strlen(key) + 1, vlen;
	Psfleet__V1__KeyValue *kv, **arr;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return PSF_EINVAL;
	vlen = (size_t)n + 1;
	if ((arr = grown(st->r.extra, st->r.n_extra, &st->cap_extra, sizeof(*arr))) == NULL)
		return PSF_ENOMEM;
	st->r.extra = arr;
	if ((kv = malloc(sizeof(*kv) + klen + vlen)) == NULL)
		return PSF_ENOMEM;
	psfleet__v1__key_value__init(kv);
	kv->key = memcpy((char *)(kv + 1), key, klen);
	kv->value = (char *)(kv + 1) + klen;
	va_start(ap, fmt);
	vsnprintf(kv->value, vlen, fmt, ap);
	va_end(ap);
	st->r.extra[st->r.n_extra++] = kv;
	return PSF_OK;
}

static void
status_fini(psf_admin_status *st)
{
	for (size_t i = 0; i < st->r.n_workers; i++)
		free(st->r.workers[i]);
	for (size_t i = 0; i < st->r.n_extra; i++)
		free(st->r.extra[i]);
	free(st->r.workers);
	free(st->r.extra);
}

void
psf_admin_rpc_status(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__StatusRequest *in,
    Psfleet__V1__StatusReply_Closure done, void *call)
{
	psf_admin *a = psf_rpc_call_user(call);
	psf_admin_status st = {.r = PSFLEET__V1__STATUS_REPLY__INIT};
	psf_err err = PSF_OK;

	(void)svc;
	(void)in;
	st.r.node = (char *)psf_runtime_id(a->rt);
	st.r.role = (char *)psf_runtime_role(a->rt);
	st.r.ready = psf_runtime_is_ready(a->rt, NULL, 0);
	st.r.uptime_seconds = psf_runtime_uptime(a->rt);
	if (a->role.status != NULL)
		err = a->role.status(a->role.arg, &st);
	if (err == PSF_ENOMEM) {
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		done(NULL, call);
	} else if (err != PSF_OK) {
		psf_rpc_fail_err(call, err, "status: %s", psf_strerror(err));
		done(NULL, call);
	} else {
		done(&st.r, call);
	}
	status_fini(&st);
}

void
psf_admin_rpc_shutdown(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__ShutdownRequest *in,
    Psfleet__V1__ShutdownReply_Closure done, void *call)
{
	psf_admin *a = psf_rpc_call_user(call);
	Psfleet__V1__ShutdownReply r = PSFLEET__V1__SHUTDOWN_REPLY__INIT;

	(void)svc;
	psf_log_info(psf_runtime_role(a->rt), "shutdown requested: %s",
	    in->reason[0] ? in->reason : "(no reason)");
	done(&r, call);
	psf_runtime_request_stop(a->rt);
}

psf_err
psf_admin_new(psf_runtime *rt, const psf_admin_role *role, psf_rpc_server *srv, psf_admin **out)
{
	static const Psfleet__V1__Admin_Service svc = PSFLEET__V1__ADMIN__INIT(psf_admin_rpc_);
	psf_admin *a = calloc(1, sizeof(*a));
	psf_err err;

	if (a == NULL)
		return PSF_ENOMEM;
	a->svc = svc;
	a->rt = rt;
	if (role != NULL)
		a->role = *role;
	if ((err = psf_rpc_server_add_service(srv, &a->svc.base, a)) != PSF_OK) {
		free(a);
		return err;
	}
	*out = a;
	return PSF_OK;
}

void
psf_admin_free(psf_admin *a)
{
	free(a);
}
