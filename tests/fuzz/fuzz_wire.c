/* libFuzzer target: the Request/Reply envelope decoders and the field reader
 * (lib/net/wire.c). Any input either decodes or is refused with PSF_EPROTO; what
 * decodes re-encodes to an envelope that decodes to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/net/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_request(const uint8_t *data, size_t size)
{
	static uint8_t head[PSF_WIRE_HEAD_MAX];
	char method[PSF_WIRE_MAX_METHOD + 1];
	psf_wire_request req, again;
	uint8_t *buf;
	size_t n;

	if (psf_wire_decode_request(data, size, &req) != PSF_OK)
		return;
	/* Pointers stay inside the input. */
	if ((req.method_len > 0 &&
	        ((const uint8_t *)req.method < data ||
	            (const uint8_t *)req.method + req.method_len > data + size)) ||
	    (req.payload_len > 0 &&
	        (req.payload < data || req.payload + req.payload_len > data + size)) ||
	    (req.auth_len > 0 && (req.auth < data || req.auth + req.auth_len > data + size)))
		abort();
	if (req.method_len == 0 || req.method_len > PSF_WIRE_MAX_METHOD ||
	    req.auth_len > PSF_WIRE_MAX_AUTH || memchr(req.method, '\0', req.method_len) != NULL)
		return; /* the server refuses these before using them */
	memcpy(method, req.method, req.method_len);
	method[req.method_len] = '\0';
	n = psf_wire_request_head(head, method, req.request_id, req.deadline_ms, req.auth,
	    req.auth_len, req.payload_len);
	if (n == 0 || n > PSF_WIRE_HEAD_MAX)
		abort();
	buf = malloc(n + req.payload_len + 1);
	memcpy(buf, head, n);
	if (req.payload_len > 0)
		memcpy(buf + n, req.payload, req.payload_len);
	if (psf_wire_decode_request(buf, n + req.payload_len, &again) != PSF_OK ||
	    again.method_len != req.method_len ||
	    memcmp(again.method, method, req.method_len) != 0 ||
	    again.request_id != req.request_id || again.deadline_ms != req.deadline_ms ||
	    again.auth_len != req.auth_len || again.payload_len != req.payload_len ||
	    (req.auth_len > 0 && memcmp(again.auth, req.auth, req.auth_len) != 0) ||
	    (req.payload_len > 0 && memcmp(again.payload, req.payload, req.payload_len) != 0))
		abort();
	free(buf);
}

static void
check_reply(const uint8_t *data, size_t size)
{
	static uint8_t head[PSF_WIRE_HEAD_MAX];
	char message[PSF_WIRE_MAX_MESSAGE + 1], want[PSF_WIRE_MAX_MESSAGE];
	psf_wire_reply rep, again;
	uint8_t *buf;
	size_t n, mlen, wlen;

	if (psf_wire_decode_reply(data, size, &rep) != PSF_OK)
		return;
	if ((rep.payload_len > 0 &&
	        (rep.payload < data || rep.payload + rep.payload_len > data + size)) ||
	    (rep.message_len > 0 &&
	        ((const uint8_t *)rep.message < data ||
	            (const uint8_t *)rep.message + rep.message_len > data + size)))
		abort();
	/* The message is text: it ends at a NUL and is truncated on encoding. */
	mlen = rep.message_len > PSF_WIRE_MAX_MESSAGE ? PSF_WIRE_MAX_MESSAGE : rep.message_len;
	if (mlen > 0)
		memcpy(message, rep.message, mlen);
	message[mlen] = '\0';
	mlen = strlen(message);
	/* The head carries the message as valid UTF-8, cut between characters. */
	wlen = psf_wire_utf8_sanitize(want, sizeof(want), message, mlen);
	n = psf_wire_reply_head(head, rep.status, message, rep.request_id, rep.payload_len);
	if (n > PSF_WIRE_HEAD_MAX)
		abort();
	buf = malloc(n + rep.payload_len + 1);
	memcpy(buf, head, n);
	if (rep.payload_len > 0)
		memcpy(buf + n, rep.payload, rep.payload_len);
	if (psf_wire_decode_reply(buf, n + rep.payload_len, &again) != PSF_OK ||
	    again.status != rep.status || again.request_id != rep.request_id ||
	    again.message_len != wlen || (wlen > 0 && memcmp(again.message, want, wlen) != 0) ||
	    !psf_wire_utf8_valid(again.message, again.message_len) ||
	    again.payload_len != rep.payload_len ||
	    (rep.payload_len > 0 && memcmp(again.payload, rep.payload, rep.payload_len) != 0))
		abort();
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	psf_wire_reader r;
	psf_wire_field f;
	size_t fields = 0;
	psf_err err;

	/* An empty buffer may be NULL (an absent bytes field). */
	psf_wire_reader_init(&r, NULL, 0);
	if (psf_wire_next(&r, &f) != PSF_ENOENT)
		abort();
	psf_wire_reader_init(&r, data, size);
	while ((err = psf_wire_next(&r, &f)) == PSF_OK) {
		if (f.type == 2 && (f.data < data || f.data + f.len > data + size))
			abort();
		fields++;
	}
	if (err != PSF_ENOENT && err != PSF_EPROTO)
		abort();
	(void)fields;
	check_request(data, size);
	check_reply(data, size);
	return 0;
}
