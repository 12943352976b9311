/* rpc_bench_svc.c -- the psfleet side of rpc_bench (rpc_bench_svc.h): generated
 * Admin and ParameterServer handlers that answer at once, and the zero-copy Push. */
#include <stddef.h>

#include "bench/rpc_bench_svc.h"
#include "lib/net/wire.h"

static void
unimplemented(void *call)
{
	psf_rpc_fail(call, PSF_STATUS_UNIMPLEMENTED, "not part of rpc_bench");
}

static void
bench_admin_health(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__HealthRequest *in,
    Psfleet__V1__HealthReply_Closure done, void *call)
{
	Psfleet__V1__HealthReply r = PSFLEET__V1__HEALTH_REPLY__INIT;

	r.ready = 1;
	r.node = "rpc_bench";
	r.role = "bench";
	r.model_version = 1;
	done(&r, call);
}

static void
bench_admin_status(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__StatusRequest *in,
    Psfleet__V1__StatusReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_admin_shutdown(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__ShutdownRequest *in,
    Psfleet__V1__ShutdownReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_register_worker(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__RegisterRequest *in, Psfleet__V1__RegisterReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

/* Pull: the bench's convention is that `clock` is the number of value bytes wanted. */
static void
bench_ps_pull(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__PullRequest *in,
    Psfleet__V1__PullReply_Closure done, void *call)
{
	const uint8_t *src = psf_rpc_call_user(call);
	Psfleet__V1__PullReply r = PSFLEET__V1__PULL_REPLY__INIT;

	if (in->clock < 0 || (size_t)in->clock > BIG) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "clock (bytes) out of range");
		done(NULL, call);
		return;
	}
	r.model_version = 1;
	r.values.data = (uint8_t *)src;
	r.values.len = (size_t)in->clock;
	done(&r, call);
}

static void
bench_ps_push(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__PushRequest *in,
    Psfleet__V1__PushReply_Closure done, void *call)
{
	Psfleet__V1__PushReply r = PSFLEET__V1__PUSH_REPLY__INIT;

	r.model_version = in->seq;
	r.staleness = (int64_t)in->values.len; /* lets the client check the bytes arrived */
	done(&r, call);
}

static void
bench_ps_clock(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__ClockRequest *in,
    Psfleet__V1__ClockReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_snapshot(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__SnapshotRequest *in,
    Psfleet__V1__SnapshotReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_stats(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__StatsRequest *in,
    Psfleet__V1__StatsReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_reduce(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__ReduceRequest *in,
    Psfleet__V1__ReduceReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_report(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__MetricsReport *in,
    Psfleet__V1__MetricsAck_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_backup(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__BackupRequest *in,
    Psfleet__V1__BackupReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_assign(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__AssignRequest *in,
    Psfleet__V1__AssignReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_push_pull(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__PushPullRequest *in, Psfleet__V1__PushPullReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_append_samples(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__AppendSamplesRequest *in, Psfleet__V1__AppendSamplesReply_Closure done,
    void *call)
{
	unimplemented(call);
	done(NULL, call);
}

static void
bench_ps_fine_tune(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__FineTuneRequest *in, Psfleet__V1__FineTuneReply_Closure done, void *call)
{
	unimplemented(call);
	done(NULL, call);
}

/* The PushRequest fields zc_push reads, numbered by the generated descriptor
 * (rpc_bench_services_init), not by hand. */
static uint32_t f_seq, f_values;

/* zc_push is the zero-copy Push: it walks the serialized PushRequest in place
 * (the values are never copied) and answers like bench_ps_push. */
void
rpc_bench_zc_push(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg)
{
	Psfleet__V1__PushReply r = PSFLEET__V1__PUSH_REPLY__INIT;
	psf_wire_reader rd;
	psf_wire_field f;
	psf_err err;

	psf_wire_reader_init(&rd, payload, len);
	while ((err = psf_wire_next(&rd, &f)) == PSF_OK) {
		if (f.number == f_seq && f.type == PSF_WIRE_VARINT)
			r.model_version = f.u64;
		else if (f.number == f_values && f.type == PSF_WIRE_LEN)
			r.staleness = (int64_t)f.len;
	}
	if (err != PSF_ENOENT) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "malformed PushRequest");
		psf_rpc_reply(call, NULL);
		return;
	}
	psf_rpc_reply(call, &r.base);
}

void
rpc_bench_services_init(Psfleet__V1__Admin_Service *admin, Psfleet__V1__ParameterServer_Service *ps)
{
	Psfleet__V1__Admin_Service a = PSFLEET__V1__ADMIN__INIT(bench_admin_);
	Psfleet__V1__ParameterServer_Service p = PSFLEET__V1__PARAMETER_SERVER__INIT(bench_ps_);

	*admin = a;
	*ps = p;
	f_seq = protobuf_c_message_descriptor_get_field_by_name(
	    &psfleet__v1__push_request__descriptor, "seq")
	            ->id;
	f_values = protobuf_c_message_descriptor_get_field_by_name(
	    &psfleet__v1__push_request__descriptor, "values")
	               ->id;
}
