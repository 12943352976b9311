#include "wire.h"

#include <string.h>

void
psf_wire_reader_init(psf_wire_reader *r, const void *buf, size_t len)
{
	r->p = buf;
	/* An empty field may come with a NULL pointer; NULL + 0 is undefined in C. */
	r->end = len > 0 ? r->p + len : r->p;
}

static psf_err
get_varint(psf_wire_reader *r, uint64_t *out)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end)
			return PSF_EPROTO;
		uint8_t b = *r->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*out = v;
			return PSF_OK;
		}
	}
	return PSF_EPROTO; /* more than 10 bytes */
}

psf_err
psf_wire_next(psf_wire_reader *r, psf_wire_field *f)
{
	uint64_t tag, v;

	if (r->p >= r->end)
		return PSF_ENOENT;
	if (get_varint(r, &tag) != PSF_OK || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
		return PSF_EPROTO;
	f->number = (uint32_t)(tag >> 3);
	f->type = (uint32_t)(tag & 7);
	f->data = NULL;
	f->len = 0;
	f->u64 = 0;
	switch (f->type) {
	case PSF_WIRE_VARINT:
		return get_varint(r, &f->u64);
	case PSF_WIRE_FIXED64:
		if (r->end - r->p < 8)
			return PSF_EPROTO;
		memcpy(&f->u64, r->p, 8); /* little-endian hosts only (x86-64, arm64) */
		r->p += 8;
		return PSF_OK;
	case PSF_WIRE_FIXED32: {
		uint32_t u;
		if (r->end - r->p < 4)
			return PSF_EPROTO;
		memcpy(&u, r->p, 4);
		f->u64 = u;
		r->p += 4;
		return PSF_OK;
	}
	case PSF_WIRE_LEN:
		if (get_varint(r, &v) != PSF_OK || v > (uint64_t)(r->end - r->p))
			return PSF_EPROTO;
		f->data = r->p;
		f->len = (size_t)v;
		r->p += v;
		return PSF_OK;
	default:
		return PSF_EPROTO; /* groups (3, 4) and reserved types */
	}
}

psf_err
psf_wire_repeated_varints(const psf_wire_field *f, uint64_t *out64, uint32_t *out32, size_t *n)
{
	psf_wire_reader r;
	uint64_t v;

	if (f->type == PSF_WIRE_VARINT) {
		if (out64 != NULL)
			out64[*n] = f->u64;
		if (out32 != NULL)
			out32[*n] = (uint32_t)f->u64;
		(*n)++;
		return PSF_OK;
	}
	if (f->type != PSF_WIRE_LEN)
		return PSF_EPROTO;
	psf_wire_reader_init(&r, f->data, f->len);
	while (r.p < r.end) {
		if (get_varint(&r, &v) != PSF_OK)
			return PSF_EPROTO;
		if (out64 != NULL)
			out64[*n] = v;
		if (out32 != NULL)
			out32[*n] = (uint32_t)v;
		(*n)++;
	}
	return PSF_OK;
}

/* Known envelope fields must have the wire type the .proto gives them. */
static int
type_ok(const psf_wire_field *f, uint32_t want)
{
	return f->type == want;
}

psf_err
psf_wire_decode_request(const void *buf, size_t len, psf_wire_request *out)
{
	psf_wire_reader r;
	psf_wire_field f;
	psf_wire_request req;
	psf_err rv;

	memset(&req, 0, sizeof(req));
	psf_wire_reader_init(&r, buf, len);
	while ((rv = psf_wire_next(&r, &f)) == PSF_OK) {
		switch (f.number) {
		case 1:
			if (!type_ok(&f, PSF_WIRE_LEN))
				return PSF_EPROTO;
			req.method = (const char *)f.data;
			req.method_len = f.len;
			break;
		case 2:
			if (!type_ok(&f, PSF_WIRE_VARINT))
				return PSF_EPROTO;
			req.request_id = f.u64;
			break;
		case 3:
			if (!type_ok(&f, PSF_WIRE_VARINT))
				return PSF_EPROTO;
			req.deadline_ms = (uint32_t)f.u64;
			break;
		case 4:
			if (!type_ok(&f, PSF_WIRE_LEN))
				return PSF_EPROTO;
			req.auth = f.data;
			req.auth_len = f.len;
			break;
		case 5:
			if (!type_ok(&f, PSF_WIRE_LEN))
				return PSF_EPROTO;
			req.payload = f.data;
			req.payload_len = f.len;
			break;
		default:
			break;
		}
	}
	if (rv != PSF_ENOENT)
		return rv;
	*out = req;
	return PSF_OK;
}

psf_err
psf_wire_decode_reply(const void *buf, size_t len, psf_wire_reply *out)
{
	psf_wire_reader r;
	psf_wire_field f;
	psf_wire_reply rep;
	psf_err rv;

	memset(&rep, 0, sizeof(rep));
	psf_wire_reader_init(&r, buf, len);
	while ((rv = psf_wire_next(&r, &f)) == PSF_OK) {
		switch (f.number) {
		case 1:
			if (!type_ok(&f, PSF_WIRE_VARINT))
				return PSF_EPROTO;
			rep.status = (uint32_t)f.u64;
			break;
		case 2:
			if (!type_ok(&f, PSF_WIRE_LEN))
				return PSF_EPROTO;
			rep.message = (const char *)f.data;
			rep.message_len = f.len;
			break;
		case 3:
			if (!type_ok(&f, PSF_WIRE_LEN))
				return PSF_EPROTO;
			rep.payload = f.data;
			rep.payload_len = f.len;
			break;
		case 4:
			if (!type_ok(&f, PSF_WIRE_VARINT))
				return PSF_EPROTO;
			rep.request_id = f.u64;
			break;
		default:
			break;
		}
	}
	if (rv != PSF_ENOENT)
		return rv;
	*out = rep;
	return PSF_OK;
}

size_t
psf_wire_put_varint(uint8_t *buf, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		buf[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	buf[n++] = (uint8_t)v;
	return n;
}

static size_t
put_tag(uint8_t *buf, uint32_t number, uint32_t type)
{
	return psf_wire_put_varint(buf, ((uint64_t)number << 3) | type);
}

static size_t
put_bytes(uint8_t *buf, uint32_t number, const void *data, size_t len)
{
	size_t n = put_tag(buf, number, PSF_WIRE_LEN);

	n += psf_wire_put_varint(buf + n, len);
	if (len > 0)
		memcpy(buf + n, data, len);
	return n + len;
}

size_t
psf_wire_request_head(uint8_t *buf, const char *method, uint64_t request_id,
    uint32_t deadline_ms, const void *auth, size_t auth_len, size_t payload_len)
{
	size_t mlen = strlen(method);
	size_t n = 0;

	if (mlen > PSF_WIRE_MAX_METHOD || auth_len > PSF_WIRE_MAX_AUTH)
		return 0;
	n += put_bytes(buf + n, 1, method, mlen);
	if (request_id != 0) {
		n += put_tag(buf + n, 2, PSF_WIRE_VARINT);
		n += psf_wire_put_varint(buf + n, request_id);
	}
	if (deadline_ms != 0) {
		n += put_tag(buf + n, 3, PSF_WIRE_VARINT);
		n += psf_wire_put_varint(buf + n, deadline_ms);
	}
	if (auth_len > 0)
		n += put_bytes(buf + n, 4, auth, auth_len);
	n += put_tag(buf + n, 5, PSF_WIRE_LEN);
	n += psf_wire_put_varint(buf + n, payload_len);
	return n;
}

size_t
psf_wire_reply_head(uint8_t *buf, uint32_t status, const char *message,
    uint64_t request_id, size_t payload_len)
{
	size_t n = 0;

	if (status != 0) {
		n += put_tag(buf + n, 1, PSF_WIRE_VARINT);
		n += psf_wire_put_varint(buf + n, status);
	}
	if (message != NULL && message[0] != '\0') {
		size_t mlen = strlen(message);
		n += put_bytes(buf + n, 2, message,
		    mlen > PSF_WIRE_MAX_MESSAGE ? PSF_WIRE_MAX_MESSAGE : mlen);
	}
	if (request_id != 0) {
		n += put_tag(buf + n, 4, PSF_WIRE_VARINT);
		n += psf_wire_put_varint(buf + n, request_id);
	}
	n += put_tag(buf + n, 3, PSF_WIRE_LEN);
	n += psf_wire_put_varint(buf + n, payload_len);
	return n;
}
