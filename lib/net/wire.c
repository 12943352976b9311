#include "lib/net/wire.h"

#include <string.h>

#include "lib/base/log.h"

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
	case PSF_WIRE_VARINT: return get_varint(r, &f->u64);
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
	default: return PSF_EPROTO; /* groups (3, 4) and reserved types */
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

/* decode_known reads a message whose known fields are numbered 1..n_known, field
 * i + 1 having wire type types[i]. known[i] gets the last occurrence of field i + 1,
 * or a zeroed field when it is absent; other field numbers are skipped. Returns
 * PSF_OK, or PSF_EPROTO (malformed, or a known field with another wire type). */
static psf_err
decode_known(const void *buf, size_t len, const uint8_t *types, size_t n_known,
    psf_wire_field *known)
{
	psf_wire_reader r;
	psf_wire_field f;
	psf_err rv;

	memset(known, 0, n_known * sizeof(*known));
	psf_wire_reader_init(&r, buf, len);
	while ((rv = psf_wire_next(&r, &f)) == PSF_OK) {
		if (f.number > n_known)
			continue;
		if (f.type != types[f.number - 1])
			return PSF_EPROTO;
		known[f.number - 1] = f;
	}
	return rv == PSF_ENOENT ? PSF_OK : rv;
}

psf_err
psf_wire_decode_request(const void *buf, size_t len, psf_wire_request *out)
{
	/* method, request_id, deadline_ms, auth, payload */
	static const uint8_t types[] = {PSF_WIRE_LEN, PSF_WIRE_VARINT, PSF_WIRE_VARINT,
	    PSF_WIRE_LEN, PSF_WIRE_LEN};
	psf_wire_field f[PSF_ARRAY_LEN(types)];
	psf_err rv;

	if ((rv = decode_known(buf, len, types, PSF_ARRAY_LEN(types), f)) != PSF_OK)
		return rv;
	*out = (psf_wire_request){
	    .method = (const char *)f[0].data,
	    .method_len = f[0].len,
	    .request_id = f[1].u64,
	    .deadline_ms = (uint32_t)f[2].u64,
	    .auth = f[3].data,
	    .auth_len = f[3].len,
	    .payload = f[4].data,
	    .payload_len = f[4].len,
	};
	return PSF_OK;
}

psf_err
psf_wire_decode_reply(const void *buf, size_t len, psf_wire_reply *out)
{
	/* status, message, payload, request_id */
	static const uint8_t types[] = {PSF_WIRE_VARINT, PSF_WIRE_LEN, PSF_WIRE_LEN,
	    PSF_WIRE_VARINT};
	psf_wire_field f[PSF_ARRAY_LEN(types)];
	psf_err rv;

	if ((rv = decode_known(buf, len, types, PSF_ARRAY_LEN(types), f)) != PSF_OK)
		return rv;
	*out = (psf_wire_reply){
	    .status = (uint32_t)f[0].u64,
	    .message = (const char *)f[1].data,
	    .message_len = f[1].len,
	    .payload = f[2].data,
	    .payload_len = f[2].len,
	    .request_id = f[3].u64,
	};
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

/* put_uint writes a varint field, or nothing when v is 0 (proto3 leaves default
 * scalars out). */
static size_t
put_uint(uint8_t *buf, uint32_t number, uint64_t v)
{
	size_t n;

	if (v == 0)
		return 0;
	n = put_tag(buf, number, PSF_WIRE_VARINT);
	return n + psf_wire_put_varint(buf + n, v);
}

/* put_len_head writes the tag and length prefix of a length-delimited field; its
 * len bytes go right after. */
static size_t
put_len_head(uint8_t *buf, uint32_t number, size_t len)
{
	size_t n = put_tag(buf, number, PSF_WIRE_LEN);

	return n + psf_wire_put_varint(buf + n, len);
}

static size_t
put_bytes(uint8_t *buf, uint32_t number, const void *data, size_t len)
{
	size_t n = put_len_head(buf, number, len);

	if (len > 0)
		memcpy(buf + n, data, len);
	return n + len;
}

size_t
psf_wire_request_head(uint8_t *buf, const char *method, uint64_t request_id, uint32_t deadline_ms,
    const void *auth, size_t auth_len, size_t payload_len)
{
	size_t mlen = strlen(method);
	size_t n = 0;

	if (mlen > PSF_WIRE_MAX_METHOD || auth_len > PSF_WIRE_MAX_AUTH)
		return 0;
	n += put_bytes(buf + n, 1, method, mlen);
	n += put_uint(buf + n, 2, request_id);
	n += put_uint(buf + n, 3, deadline_ms);
	if (auth_len > 0)
		n += put_bytes(buf + n, 4, auth, auth_len);
	n += put_len_head(buf + n, 5, payload_len);
	return n;
}

size_t
psf_wire_reply_head(uint8_t *buf, uint32_t status, const char *message, uint64_t request_id,
    size_t payload_len)
{
	size_t n = 0;

	n += put_uint(buf + n, 1, status);
	if (message != NULL && message[0] != '\0') {
		char text[PSF_WIRE_MAX_MESSAGE];
		size_t mlen = psf_wire_utf8_sanitize(text, sizeof(text), message, strlen(message));
		n += put_bytes(buf + n, 2, text, mlen);
	}
	n += put_uint(buf + n, 4, request_id);
	n += put_len_head(buf + n, 3, payload_len);
	return n;
}

size_t
psf_wire_utf8_len(const void *sv, size_t n)
{
	const uint8_t *s = sv;
	uint8_t lo = 0x80, hi = 0xBF; /* the range of the second byte */
	size_t len;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xC2 || s[0] > 0xF4) /* continuation, overlong lead, or never used */
		return 0;
	len = s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
	if (s[0] == 0xE0)
		lo = 0xA0; /* else overlong */
	else if (s[0] == 0xED)
		hi = 0x9F; /* else a surrogate */
	else if (s[0] == 0xF0)
		lo = 0x90; /* else overlong */
	else if (s[0] == 0xF4)
		hi = 0x8F; /* else over U+10FFFF */
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

bool
psf_wire_utf8_valid(const void *sv, size_t n)
{
	const uint8_t *s = sv;

	for (size_t i = 0; i < n;) {
		size_t k = psf_wire_utf8_len(s + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

size_t
psf_wire_utf8_sanitize(char *out, size_t cap, const void *sv, size_t n)
{
	static const char replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
	const uint8_t *s = sv;
	size_t w = 0;

	for (size_t i = 0; i < n;) {
		size_t k = psf_wire_utf8_len(s + i, n - i);
		const void *from = k > 0 ? (const void *)(s + i) : replacement;
		size_t len = k > 0 ? k : sizeof(replacement);

		if (cap - w < len)
			break;
		memcpy(out + w, from, len);
		w += len;
		i += k > 0 ? k : 1;
	}
	return w;
}

psf_err
psf_wire_check_fields(const ProtobufCMessageDescriptor *d, const psf_wire_field_use *uses,
    size_t n_uses)
{
	psf_err err = PSF_OK;

	for (size_t i = 0; i < n_uses; i++) {
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(d, uses[i].name);

		if (f == NULL || f->id != uses[i].number || f->type != uses[i].type) {
			psf_log_err("wire",
			    "%s.%s: the decoder reads field %u of type %d, "
			    "the .proto says %s",
			    d->name, uses[i].name, uses[i].number, (int)uses[i].type,
			    f == NULL ? "no such field" : "otherwise");
			err = PSF_EPROTO;
		}
	}
	if (n_uses != d->n_fields) {
		psf_log_err("wire", "%s: the decoder reads %zu fields, the .proto has %u", d->name,
		    n_uses, d->n_fields);
		err = PSF_EPROTO;
	}
	return err;
}
