/* push_pull.c -- the PushPull RPC: a Push and the Pull of the next step in one
 * round trip.
 *
 * A sync step used to be two round trips to every shard: Push (accumulate), then
 * Pull for the next clock, parked until the round closed. PushPull carries both:
 * the push half is handled exactly as a Push (ps_push_handle: dedup by (worker,
 * seq), validation, accumulate or apply, closing the round), then the pull half
 * is answered at once when the consistency mode lets it, else parked like a Pull
 * (PARK_PUSH_PULL) and answered by the push that closes the round, with both
 * replies in one PushPullReply.
 *
 * Exactly-once is the Push's: a PushPull re-sent with the same seq finds the push
 * applied (duplicate = true) and only waits for, and reads, the weights again.
 * The push half is read in place (push_raw.c's parser on the embedded message);
 * the pull half is small and unpacked by protobuf-c. */
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/net/methods.h"
#include "lib/net/wire.h"
#include "ps/internal.h"

enum { F_PUSH = 1, F_PULL = 2 };

static const psf_wire_field_use push_pull_fields[] = {
    {"push", F_PUSH, PROTOBUF_C_TYPE_MESSAGE},
    {"pull", F_PULL, PROTOBUF_C_TYPE_MESSAGE},
};

/* split finds the two embedded messages. Each must appear once (our clients send
 * each once; merging repeated occurrences, as protobuf allows, is refused). */
static psf_err
split(const uint8_t *buf, size_t len, psf_wire_field *push, psf_wire_field *pull)
{
	psf_wire_reader r;
	psf_wire_field f;
	bool has_push = false, has_pull = false;
	psf_err err;

	psf_wire_reader_init(&r, buf, len);
	while ((err = psf_wire_next(&r, &f)) == PSF_OK) {
		if (f.number != F_PUSH && f.number != F_PULL)
			continue; /* unknown fields are skipped, as protobuf-c does */
		bool *seen = f.number == F_PUSH ? &has_push : &has_pull;
		if (f.type != 2 || *seen)
			return PSF_EPROTO;
		*seen = true;
		*(f.number == F_PUSH ? push : pull) = f;
	}
	if (err != PSF_ENOENT)
		return err;
	return has_push && has_pull ? PSF_OK : PSF_EPROTO;
}

static void
release(parked *p)
{
	protobuf_c_message_free_unpacked((ProtobufCMessage *)p->req, NULL);
	free((void *)p->push_reply);
	p->req = NULL;
	p->push_reply = NULL;
}

void
ps_push_pull_answer(parked *p, const Psfleet__V1__PullReply *r)
{
	Psfleet__V1__PushPullReply reply = PSFLEET__V1__PUSH_PULL_REPLY__INIT;

	if (r == NULL) {
		psf_rpc_reply(p->call, NULL);
		return;
	}
	reply.push = (Psfleet__V1__PushReply *)p->push_reply; /* only read by packing */
	reply.pull = (Psfleet__V1__PullReply *)r;
	psf_rpc_reply(p->call, &reply.base);
}

/* check_pull validates the pull half before anything is applied, so a bad pull
 * never leaves a push applied behind an error. Returns the worker (workers[]
 * never moves) or NULL after psf_rpc_fail. */
static ps_worker *
check_pull(psf_ps *ps, const ps_push_in *push, const Psfleet__V1__PullRequest *pull, void *call)
{
	ps_worker *w;

	if (strcmp(push->worker, pull->worker) != 0) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
		    "PushPull: push of worker '%s' with a pull of worker '%s'", push->worker,
		    pull->worker);
		return NULL;
	}
	if ((w = ps_lock_worker(ps, pull->worker, call)) == NULL)
		return NULL;
	if (!ps_check_keys(ps, pull->keys, pull->n_keys, call))
		w = NULL;
	pthread_mutex_unlock(&ps->mu);
	return w;
}

/* serve_or_park answers the pull half now when the mode allows, else parks it.
 * Takes ownership of pull and pr. */
static void
serve_or_park(psf_ps *ps, void *call, ps_worker *w, Psfleet__V1__PullRequest *pull,
    Psfleet__V1__PushReply *pr)
{
	parked p = {.kind = PARK_PUSH_PULL,
	    .call = call,
	    .req = pull,
	    .w = w,
	    .clock = pull->clock,
	    .deadline_ns = psf_rpc_call_deadline_ns(call),
	    .push_reply = pr,
	    .release = release};
	bool now;

	pthread_mutex_lock(&ps->mu);
	now = ps_pull_may_proceed(ps, pull->clock);
	if (!now && ps_park(ps, &p) != PSF_OK) {
		pthread_mutex_unlock(&ps->mu);
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		ps_push_pull_answer(&p, NULL);
		release(&p);
		return;
	}
	pthread_mutex_unlock(&ps->mu);
	if (now) {
		ps_serve_pull(ps, &p);
		release(&p);
	}
}

static void
push_pull_raw(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg)
{
	psf_ps *ps = arg;
	Psfleet__V1__PushReply r = PSFLEET__V1__PUSH_REPLY__INIT, *pr = NULL;
	Psfleet__V1__PullRequest *pull = NULL;
	psf_wire_field fpush, fpull;
	ps_push_buf b;
	ps_push_in in;
	parked *ready = NULL;
	ps_worker *w = NULL;
	psf_err err = split(payload, len, &fpush, &fpull);
	bool parsed = false;

	if (err == PSF_OK) {
		err = ps_push_parse(fpush.data, fpush.len, &b, &in);
		parsed = true;
	}
	if (err == PSF_OK) {
		pull = (Psfleet__V1__PullRequest *)protobuf_c_message_unpack(
		    &psfleet__v1__pull_request__descriptor, NULL, fpull.len, fpull.data);
		err = pull != NULL ? PSF_OK : PSF_EPROTO;
	}
	if (err == PSF_EPROTO)
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "malformed %s payload",
		    psfleet__v1__push_pull_request__descriptor.name);
	else if (err != PSF_OK)
		psf_rpc_fail_err(call, err, "push_pull: %s", psf_strerror(err));
	if (err == PSF_OK && (w = check_pull(ps, &in, pull, call)) != NULL &&
	    ps_push_handle(ps, &in, call, &r, &ready) && (pr = malloc(sizeof(*pr))) == NULL)
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	if (parsed)
		ps_push_buf_fini(&b);
	if (pr == NULL) {
		psf_rpc_reply(call, NULL);
		if (pull != NULL)
			protobuf_c_message_free_unpacked(&pull->base, NULL);
	} else {
		*pr = r;
		serve_or_park(ps, call, w, pull, pr);
	}
	ps_answer_parked(ps, ready); /* the calls this push made ready (a closed round) */
}

psf_err
ps_push_pull_add_raw(psf_ps *ps)
{
	psf_err err = psf_wire_check_fields(&psfleet__v1__push_pull_request__descriptor,
	    push_pull_fields, sizeof(push_pull_fields) / sizeof(push_pull_fields[0]));

	if (err != PSF_OK)
		return err;
	return psf_rpc_server_add_raw(ps->srv, PSF_M_PUSH_PULL,
	    &psfleet__v1__push_pull_reply__descriptor, push_pull_raw, ps);
}

/* psf_ps_rpc_push_pull fills the generated service's slot; never called, as
 * push_pull_raw serves the method (see psf_ps_rpc_push in push_raw.c). */
void
psf_ps_rpc_push_pull(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__PushPullRequest *in, Psfleet__V1__PushPullReply_Closure done, void *call)
{
	(void)svc;
	(void)in;
	psf_log_err("ps", "PushPull reached the generic handler: push_pull_raw is not registered");
	psf_rpc_fail(call, PSF_STATUS_INTERNAL, "PushPull is served by the zero-copy handler only");
	done(NULL, call);
}
