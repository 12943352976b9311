/* push_raw.c -- the zero-copy Push handler.
 *
 * protobuf-c's unpack copies a PushRequest's gradient bytes into a new buffer;
 * a push is almost all gradient, so the raw handler reads the request in place
 * (lib/net/wire.h) and the gradients go from the received NNG message straight
 * into the optimizer (or the sync accumulator). It is the only Push path: the
 * generated service's Push slot (psf_ps_rpc_push, below) is never reached.
 * Everything after parsing is ps_push_handle (handlers_ps.c). */
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/net/methods.h"
#include "lib/net/wire.h"
#include "ps/internal.h"

/* The PushRequest field numbers scan() switches on; ps_push_check_fields holds
 * them against the generated descriptor (the .proto defines them). */
enum {
	F_WORKER = 1,
	F_SEQ = 2,
	F_CLOCK = 3,
	F_KEYS = 4,
	F_LENS = 5,
	F_VALUES = 6,
	F_N_SAMPLES = 7,
	F_LOSS = 8,
};

static const psf_wire_field_use push_fields[] = {
    {"worker", F_WORKER, PROTOBUF_C_TYPE_STRING},
    {"seq", F_SEQ, PROTOBUF_C_TYPE_UINT64},
    {"clock", F_CLOCK, PROTOBUF_C_TYPE_INT64},
    {"keys", F_KEYS, PROTOBUF_C_TYPE_UINT64},
    {"lens", F_LENS, PROTOBUF_C_TYPE_UINT32},
    {"values", F_VALUES, PROTOBUF_C_TYPE_BYTES},
    {"n_samples", F_N_SAMPLES, PROTOBUF_C_TYPE_UINT64},
    {"loss", F_LOSS, PROTOBUF_C_TYPE_DOUBLE},
};

psf_err
ps_push_check_fields(void)
{
	return psf_wire_check_fields(&psfleet__v1__push_request__descriptor, push_fields,
	    sizeof(push_fields) / sizeof(push_fields[0]));
}

/* scan reads every field; with b->keys/b->lens NULL it only counts them. */
static psf_err
scan(const uint8_t *buf, size_t len, ps_push_buf *b, ps_push_in *out)
{
	psf_wire_reader r;
	psf_wire_field f;
	psf_err err;

	out->n_keys = out->n_lens = 0;
	psf_wire_reader_init(&r, buf, len);
	while ((err = psf_wire_next(&r, &f)) == PSF_OK) {
		switch (f.number) {
		case F_WORKER:
			if (f.type != PSF_WIRE_LEN)
				return PSF_EPROTO;
			f.len = f.len < sizeof(b->worker) - 1 ? f.len : sizeof(b->worker) - 1;
			memcpy(b->worker, f.data, f.len);
			b->worker[f.len] = '\0';
			break;
		case F_SEQ:
			if (f.type != PSF_WIRE_VARINT)
				return PSF_EPROTO;
			out->seq = f.u64;
			break;
		case F_CLOCK:
			if (f.type != PSF_WIRE_VARINT)
				return PSF_EPROTO;
			out->clock = (int64_t)f.u64;
			break;
		case F_KEYS:
			err = psf_wire_repeated_varints(&f, b->keys, NULL, &out->n_keys);
			break;
		case F_LENS:
			err = psf_wire_repeated_varints(&f, NULL, b->lens, &out->n_lens);
			break;
		case F_VALUES:
			if (f.type != PSF_WIRE_LEN)
				return PSF_EPROTO;
			out->values = f.data;
			out->values_len = f.len;
			break;
		case F_N_SAMPLES:
			if (f.type != PSF_WIRE_VARINT)
				return PSF_EPROTO;
			out->n_samples = f.u64;
			break;
		case F_LOSS:
			if (f.type != PSF_WIRE_FIXED64)
				return PSF_EPROTO;
			memcpy(&out->loss, &f.u64, sizeof(out->loss));
			break;
		default: /* unknown fields are skipped, as protobuf-c keeps them aside */ break;
		}
		if (err != PSF_OK)
			return err;
	}
	return err == PSF_ENOENT ? PSF_OK : err;
}

psf_err
ps_push_parse(const uint8_t *buf, size_t len, ps_push_buf *b, ps_push_in *out)
{
	psf_err err;

	memset(out, 0, sizeof(*out));
	b->worker[0] = '\0';
	b->keys = NULL;
	b->lens = NULL;
	out->worker = b->worker;
	out->values = (const uint8_t *)"";
	/* Pass 1 validates and counts; pass 2 decodes the keys and lens. */
	if ((err = scan(buf, len, b, out)) != PSF_OK)
		return err;
	b->keys = out->n_keys <= PS_PUSH_INLINE_KEYS ? b->keys_inline
	                                             : malloc(out->n_keys * sizeof(*b->keys));
	b->lens = out->n_lens <= PS_PUSH_INLINE_KEYS ? b->lens_inline
	                                             : malloc(out->n_lens * sizeof(*b->lens));
	if (b->keys == NULL || b->lens == NULL)
		return PSF_ENOMEM;
	if ((err = scan(buf, len, b, out)) != PSF_OK)
		return err;
	out->keys = b->keys;
	out->lens = b->lens;
	return PSF_OK;
}

void
ps_push_buf_fini(ps_push_buf *b)
{
	if (b->keys != b->keys_inline)
		free(b->keys);
	if (b->lens != b->lens_inline)
		free(b->lens);
	b->keys = NULL;
	b->lens = NULL;
}

/* push_raw is the Push handler registered with psf_rpc_server_add_raw. */
static void
push_raw(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg)
{
	psf_ps *ps = arg;
	Psfleet__V1__PushReply r = PSFLEET__V1__PUSH_REPLY__INIT;
	ps_push_buf b;
	ps_push_in in;
	parked *ready = NULL;
	psf_err err = ps_push_parse(payload, len, &b, &in);
	bool ok = false;

	if (err == PSF_OK)
		ok = ps_push_handle(ps, &in, call, &r, &ready);
	else if (err == PSF_EPROTO)
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "malformed %s payload",
		    psfleet__v1__push_request__descriptor.name);
	else
		psf_rpc_fail_err(call, err, "push: %s", psf_strerror(err));
	ps_push_buf_fini(&b);
	psf_rpc_reply(call, ok ? &r.base : NULL);
	ps_answer_parked(ps, ready);
}

psf_err
ps_handlers_add_raw(psf_ps *ps)
{
	psf_err err;

	if ((err = ps_push_check_fields()) != PSF_OK ||
	    (err = psf_rpc_server_add_raw(ps->srv, PSF_M_PUSH, &psfleet__v1__push_reply__descriptor,
	         push_raw, ps)) != PSF_OK)
		return err;
	return ps_push_pull_add_raw(ps);
}

/* psf_ps_rpc_push fills the generated service's Push slot (its INIT macro wants
 * one). It is never called: ps_handlers_add_raw registers push_raw for the same
 * method, and the server looks raw handlers up first (lib/net/rpc_server.h), so
 * every Push is served by push_raw. Should that ever change, Push fails loudly
 * here instead of taking a second, untested path. */
void
psf_ps_rpc_push(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__PushRequest *in,
    Psfleet__V1__PushReply_Closure done, void *call)
{
	(void)svc;
	(void)in;
	psf_log_err("ps", "Push reached the generic handler: push_raw is not registered");
	psf_rpc_fail(call, PSF_STATUS_INTERNAL, "Push is served by the zero-copy handler only");
	done(NULL, call);
}
