/* The zero-copy envelope codec agrees with protobuf-c both ways. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/net/methods.h"
#include "lib/net/wire.h"
#include "psfleet.pb-c.h"

static void
test_wire_request_head_decodes_with_protobuf_c(void **state)
{
	uint8_t buf[PSF_WIRE_HEAD_MAX + 64];
	const char payload[] = "\x0a\x03"
	                       "ABC";
	size_t n = psf_wire_request_head(buf, PSF_M_PREDICT, 1ull << 40, 2500, "tok", 3,
	    sizeof(payload) - 1);
	Psfleet__V1__Request *r;

	(void)state;
	memcpy(buf + n, payload, sizeof(payload) - 1);
	r = psfleet__v1__request__unpack(NULL, n + sizeof(payload) - 1, buf);
	assert_non_null(r);
	assert_string_equal(r->method, PSF_M_PREDICT);
	assert_int_equal(r->request_id, 1ull << 40);
	assert_int_equal(r->deadline_ms, 2500);
	assert_int_equal(r->auth.len, 3);
	assert_memory_equal(r->auth.data, "tok", 3);
	assert_int_equal(r->payload.len, 5);
	assert_memory_equal(r->payload.data,
	    "\x0a\x03"
	    "ABC",
	    5);
	psfleet__v1__request__free_unpacked(r, NULL);
}

static void
test_wire_decodes_protobuf_c_reply(void **state)
{
	Psfleet__V1__Reply rep = PSFLEET__V1__REPLY__INIT;
	uint8_t buf[256], data[3] = {1, 2, 3};
	psf_wire_reply out;
	size_t n;

	(void)state;
	rep.status = PSFLEET__V1__STATUS_CODE__NOT_FOUND;
	rep.message = "no such symbol";
	rep.payload.data = data;
	rep.payload.len = 3;
	rep.request_id = 99;
	n = psfleet__v1__reply__pack(&rep, buf);
	assert_int_equal(psf_wire_decode_reply(buf, n, &out), PSF_OK);
	assert_int_equal(out.status, 5);
	assert_int_equal(out.message_len, strlen("no such symbol"));
	assert_memory_equal(out.message, "no such symbol", out.message_len);
	assert_int_equal(out.payload_len, 3);
	/* borrowed, not copied: protobuf-c writes request_id (2 bytes) after it */
	assert_ptr_equal(out.payload + 3, buf + n - 2);
	assert_memory_equal(out.payload, data, 3);
	assert_int_equal(out.request_id, 99);
}

static void
test_wire_rejects_malformed(void **state)
{
	psf_wire_request req;
	/* length prefix past the end; varint of 11 bytes; group wire type; field 0 */
	const uint8_t past_end[] = {0x0a, 0x10, 'a'};
	const uint8_t long_varint[] = {0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0x01};
	const uint8_t group[] = {0x0b};
	const uint8_t field0[] = {0x02, 0x00};
	const uint8_t wrong_type[] = {0x08, 0x01}; /* method as a varint */

	(void)state;
	assert_int_equal(psf_wire_decode_request(past_end, sizeof(past_end), &req), PSF_EPROTO);
	assert_int_equal(psf_wire_decode_request(long_varint, sizeof(long_varint), &req),
	    PSF_EPROTO);
	assert_int_equal(psf_wire_decode_request(group, sizeof(group), &req), PSF_EPROTO);
	assert_int_equal(psf_wire_decode_request(field0, sizeof(field0), &req), PSF_EPROTO);
	assert_int_equal(psf_wire_decode_request(wrong_type, sizeof(wrong_type), &req), PSF_EPROTO);
	assert_int_equal(psf_wire_decode_request("", 0, &req), PSF_OK);
	assert_int_equal(req.method_len, 0);
}

/* Invalid UTF-8 of every kind: each must be refused by the validator and come
 * out of the sanitizer as valid UTF-8 with U+FFFD in place of the stray bytes. */
static const struct {
	const char *name;
	const char *bytes;
} bad_utf8[] = {
    {"0xFF",
        "a\xff"
        "b"},
    {"0xFE", "\xfe"},
    {"stray continuation", "\x80"},
    {"overlong '/' (2 bytes)", "\xc0\xaf"},
    {"overlong NUL", "\xc0\x80"},
    {"overlong (3 bytes)", "\xe0\x80\xaf"},
    {"overlong (4 bytes)", "\xf0\x80\x80\xaf"},
    {"surrogate U+D800", "\xed\xa0\x80"},
    {"surrogate U+DFFF", "\xed\xbf\xbf"},
    {"over U+10FFFF", "\xf4\x90\x80\x80"},
    {"0xF5 lead", "\xf5\x80\x80\x80"},
    {"truncated 2-byte", "x\xc3"},
    {"truncated 3-byte", "\xe2\x82"},
    {"truncated 4-byte", "\xf0\x9d\x84"},
    {"lead then ASCII", "\xe2(\xa1"},
};

static void
test_wire_utf8_validates_and_sanitizes(void **state)
{
	char out[64];
	size_t n;

	(void)state;
	/* Valid: ASCII, 2, 3 and 4 bytes, the edges of each range. */
	assert_true(psf_wire_utf8_valid("", 0));
	assert_true(psf_wire_utf8_valid(PSF_M_PREDICT, 28));
	assert_true(psf_wire_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e", 9)); /* é € 𝄞 */
	assert_true(psf_wire_utf8_valid("\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf", 10));
	assert_int_equal(psf_wire_utf8_len("\xe2\x82\xac", 3), 3);
	for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
		size_t len = strlen(bad_utf8[i].bytes);
		if (psf_wire_utf8_valid(bad_utf8[i].bytes, len))
			fail_msg("%s taken as valid UTF-8", bad_utf8[i].name);
		n = psf_wire_utf8_sanitize(out, sizeof(out), bad_utf8[i].bytes, len);
		if (!psf_wire_utf8_valid(out, n) || memmem(out, n, "\xef\xbf\xbd", 3) == NULL)
			fail_msg("%s not sanitized", bad_utf8[i].name);
	}
	n = psf_wire_utf8_sanitize(out, sizeof(out),
	    "a\xff"
	    "b",
	    3);
	assert_int_equal(n, 5);
	assert_memory_equal(out,
	    "a\xef\xbf\xbd"
	    "b",
	    5);
	/* A cut never splits a character: 2 bytes of room hold one 'a', not half a €. */
	assert_int_equal(psf_wire_utf8_sanitize(out, 2, "a\xe2\x82\xac", 4), 1);
	assert_int_equal(psf_wire_utf8_sanitize(out, 3, "\xff\xff", 2), 3);
}

/* The Reply head's message is valid UTF-8 whatever it was given, and a long
 * message is cut between characters. */
static void
test_wire_reply_head_message_is_utf8(void **state)
{
	uint8_t head[PSF_WIRE_HEAD_MAX];
	char msg[3 * 600 + 1];
	psf_wire_reply r;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
		n = psf_wire_reply_head(head, 3, bad_utf8[i].bytes, 9, 0);
		assert_int_equal(psf_wire_decode_reply(head, n, &r), PSF_OK);
		if (!psf_wire_utf8_valid(r.message, r.message_len))
			fail_msg("%s went into Reply.message as is", bad_utf8[i].name);
	}
	for (size_t i = 0; i < 600; i++) /* 1800 bytes of euro signs, 1 byte off */
		memcpy(msg + 3 * i, "\xe2\x82\xac", 3);
	msg[3 * 600] = '\0';
	n = psf_wire_reply_head(head, 3, msg + 1, 9, 0);
	assert_int_equal(psf_wire_decode_reply(head, n, &r), PSF_OK);
	assert_true(r.message_len <= PSF_WIRE_MAX_MESSAGE);
	assert_true(psf_wire_utf8_valid(r.message, r.message_len));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wire_request_head_decodes_with_protobuf_c),
	    cmocka_unit_test(test_wire_decodes_protobuf_c_reply),
	    cmocka_unit_test(test_wire_rejects_malformed),
	    cmocka_unit_test(test_wire_utf8_validates_and_sanitizes),
	    cmocka_unit_test(test_wire_reply_head_message_is_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
