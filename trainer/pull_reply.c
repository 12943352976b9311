/* pull_reply.c -- reading a PullReply in place (trainer/internal.h).
 *
 * protobuf-c's unpack would copy the values of a pull reply; the ps client reads
 * the reply where it lies in the received message instead. The field numbers it
 * switches on are held against the generated descriptor. */
#include <string.h>

#include "lib/net/wire.h"
#include "psfleet.pb-c.h"
#include "trainer/internal.h"

enum {
	F_MODEL_VERSION = 1,
	F_KEYS = 2,
	F_LENS = 3,
	F_VALUES = 4,
};

static const psf_wire_field_use pull_reply_fields[] = {
    {"model_version", F_MODEL_VERSION, PROTOBUF_C_TYPE_UINT64},
    {"keys", F_KEYS, PROTOBUF_C_TYPE_UINT64},
    {"lens", F_LENS, PROTOBUF_C_TYPE_UINT32},
    {"values", F_VALUES, PROTOBUF_C_TYPE_BYTES},
};

psf_err
psf_pull_reply_check_fields(void)
{
	return psf_wire_check_fields(&psfleet__v1__pull_reply__descriptor, pull_reply_fields,
	    sizeof(pull_reply_fields) / sizeof(pull_reply_fields[0]));
}

psf_err
psf_pull_reply_scan(const uint8_t *buf, size_t len, uint64_t *keys, uint32_t *lens,
    psf_pull_view *v)
{
	psf_wire_reader r;
	psf_wire_field f;
	psf_err err;

	memset(v, 0, sizeof(*v));
	psf_wire_reader_init(&r, buf, len);
	while ((err = psf_wire_next(&r, &f)) == PSF_OK) {
		switch (f.number) {
		case F_MODEL_VERSION:
			if (f.type != PSF_WIRE_VARINT)
				return PSF_EPROTO;
			v->version = f.u64;
			break;
		case F_KEYS: err = psf_wire_repeated_varints(&f, keys, NULL, &v->n_keys); break;
		case F_LENS: err = psf_wire_repeated_varints(&f, NULL, lens, &v->n_lens); break;
		case F_VALUES:
			if (f.type != PSF_WIRE_LEN)
				return PSF_EPROTO;
			v->values = f.data;
			v->values_len = f.len;
			break;
		default: break;
		}
		if (err != PSF_OK)
			return err;
	}
	return err == PSF_ENOENT ? PSF_OK : err;
}
