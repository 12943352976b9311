/* wire.h -- zero-copy protobuf wire reading and envelope heads (DESIGN.md §3).
 *
 * The Request/Reply envelopes carry a method's message as `bytes payload`. Decoding
 * the envelope with protobuf-c would copy the payload; psf_wire_decode_* instead
 * return pointers into the caller's buffer. Encoding writes an envelope "head" whose
 * last field is the payload's tag and length, so the payload can be packed straight
 * after it into the same message buffer. Field order on the wire is free in
 * protobuf, so any protobuf implementation decodes what this writes. */
#ifndef PSF_WIRE_H
#define PSF_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "lib/base/err.h"

/* Largest head psf_wire_*_head can write (method and message are bounded). */
#define PSF_WIRE_MAX_METHOD 256
#define PSF_WIRE_MAX_AUTH 1024
#define PSF_WIRE_MAX_MESSAGE 1024
#define PSF_WIRE_HEAD_MAX (PSF_WIRE_MAX_METHOD + PSF_WIRE_MAX_AUTH + PSF_WIRE_MAX_MESSAGE + 64)

/* A decoded Request. Pointers borrow from the buffer given to the decoder and are
 * valid as long as it is. Absent fields are zero / NULL with length 0. */
typedef struct psf_wire_request {
	const char *method; /* not NUL-terminated */
	size_t method_len;
	uint64_t request_id;
	uint32_t deadline_ms;
	const uint8_t *auth;
	size_t auth_len;
	const uint8_t *payload;
	size_t payload_len;
} psf_wire_request;

/* A decoded Reply; same borrowing rules. */
typedef struct psf_wire_reply {
	uint32_t status;
	const char *message;
	size_t message_len;
	const uint8_t *payload;
	size_t payload_len;
	uint64_t request_id;
} psf_wire_reply;

/* Protobuf wire types (psf_wire_field.type). */
enum {
	PSF_WIRE_VARINT = 0,
	PSF_WIRE_FIXED64 = 1,
	PSF_WIRE_LEN = 2,
	PSF_WIRE_FIXED32 = 5,
};

/* A forward-only reader over one protobuf message's fields. */
typedef struct psf_wire_reader {
	const uint8_t *p;
	const uint8_t *end;
} psf_wire_reader;

/* One field: for varint/fixed wire types `u64` holds the value; for length-delimited
 * ones `data`/`len` point into the buffer. */
typedef struct psf_wire_field {
	uint32_t number;
	uint32_t type; /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
	uint64_t u64;
	const uint8_t *data;
	size_t len;
} psf_wire_field;

/* psf_wire_reader_init starts reading buf[0..len); buf may be NULL when len is 0.
 * Cannot fail. */
void psf_wire_reader_init(psf_wire_reader *r, const void *buf, size_t len);

/* psf_wire_next reads the next field into *f. Returns PSF_OK, PSF_ENOENT at the end
 * of the buffer, or PSF_EPROTO for malformed input (truncation, bad wire type, field
 * number 0, length past the end). Never reads outside the buffer. */
PSF_NODISCARD psf_err psf_wire_next(psf_wire_reader *r, psf_wire_field *f);

/* psf_wire_repeated_varints appends the values of one occurrence of a repeated
 * varint field (an unpacked element, or a packed run) to out64[*n..] and/or
 * out32[*n..] (the low 32 bits, as protobuf does for uint32), advancing *n; with
 * both arrays NULL it only counts them. Returns PSF_OK, or PSF_EPROTO for another
 * wire type or a malformed packed run. */
PSF_NODISCARD psf_err psf_wire_repeated_varints(const psf_wire_field *f, uint64_t *out64,
    uint32_t *out32, size_t *n);

/* psf_wire_decode_request / _reply parse an envelope. Unknown fields are skipped.
 * Returns PSF_OK or PSF_EPROTO (malformed, or a known field with the wrong wire type). */
PSF_NODISCARD psf_err psf_wire_decode_request(const void *buf, size_t len, psf_wire_request *out);
PSF_NODISCARD psf_err psf_wire_decode_reply(const void *buf, size_t len, psf_wire_reply *out);

/* psf_wire_request_head writes a Request's fields except the payload bytes into buf
 * (at least PSF_WIRE_HEAD_MAX bytes), ending with the payload's tag and length
 * prefix. Returns the number of bytes written, or 0 when method/auth are too long. */
size_t psf_wire_request_head(uint8_t *buf, const char *method, uint64_t request_id,
    uint32_t deadline_ms, const void *auth, size_t auth_len, size_t payload_len);

/* psf_wire_reply_head: the same for a Reply. message may be NULL. It is written as
 * valid UTF-8 (a proto3 string: strict parsers refuse anything else, and messages
 * echo client input such as method names), made by psf_wire_utf8_sanitize, and cut
 * to at most PSF_WIRE_MAX_MESSAGE bytes between characters. Cannot fail; returns
 * bytes written. */
size_t psf_wire_reply_head(uint8_t *buf, uint32_t status, const char *message, uint64_t request_id,
    size_t payload_len);

/* psf_wire_utf8_len returns the length (1..4) of the valid UTF-8 character that
 * s[0..n) starts with, or 0 when it starts with none: a stray continuation byte,
 * an overlong form, a surrogate (U+D800..U+DFFF), a code point over U+10FFFF, a
 * sequence cut short, or a byte that never occurs (0xC0, 0xC1, 0xF5..0xFF), or
 * n == 0. Cannot fail. */
size_t psf_wire_utf8_len(const void *s, size_t n);

/* psf_wire_utf8_valid tells whether s[0..n) is all valid UTF-8. Cannot fail. */
bool psf_wire_utf8_valid(const void *s, size_t n);

/* psf_wire_utf8_sanitize copies s[0..n) into out (cap bytes, no NUL added) as valid
 * UTF-8: valid characters as they are, every byte not part of one as U+FFFD (the
 * replacement character, 3 bytes). It stops before a character that does not fit,
 * so it never splits one. Returns the bytes written (<= cap). Cannot fail. */
size_t psf_wire_utf8_sanitize(char *out, size_t cap, const void *s, size_t n);

/* One field a hand-written decoder reads (psf_wire_next + switch on the number):
 * the .proto name, the number it switches on and the protobuf type it expects. */
typedef struct psf_wire_field_use {
	const char *name;
	uint32_t number;
	ProtobufCType type;
} psf_wire_field_use;

/* psf_wire_check_fields compares a decoder's fields with the generated descriptor
 * of the message it reads: each use must name a field of d with that number and
 * type, and the uses must cover every field of d (a field added to the .proto must
 * be taught to the decoder). Returns PSF_OK, or PSF_EPROTO with a log line per
 * mismatch. So the .proto stays the one place a field number is defined. */
PSF_NODISCARD psf_err psf_wire_check_fields(const ProtobufCMessageDescriptor *d,
    const psf_wire_field_use *uses, size_t n_uses);

/* psf_wire_put_varint writes v as a varint into buf (10 bytes max); returns bytes. */
size_t psf_wire_put_varint(uint8_t *buf, uint64_t v);

#endif
