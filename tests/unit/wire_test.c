/* The zero-copy envelope codec agrees with protobuf-c both ways. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/wire.h"
#include "psfleet.pb-c.h"

static void
test_wire_request_head_decodes_with_protobuf_c(void **state)
{
	uint8_t buf[PSF_WIRE_HEAD_MAX + 64];
	const char payload[] = "\x0a\x03" "ABC";
	size_t n = psf_wire_request_head(buf, "psfleet.v1.Inference/Predict", 1ull << 40, 2500,
	    "tok", 3, sizeof(payload) - 1);
	Psfleet__V1__Request *r;

	(void)state;
	memcpy(buf + n, payload, sizeof(payload) - 1);
	r = psfleet__v1__request__unpack(NULL, n + sizeof(payload) - 1, buf);
	assert_non_null(r);
	assert_string_equal(r->method, "psfleet.v1.Inference/Predict");
	assert_int_equal(r->request_id, 1ull << 40);
	assert_int_equal(r->deadline_ms, 2500);
	assert_int_equal(r->auth.len, 3);
	assert_memory_equal(r->auth.data, "tok", 3);
	assert_int_equal(r->payload.len, 5);
	assert_memory_equal(r->payload.data, "\x0a\x03" "ABC", 5);
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
	assert_int_equal(psf_wire_decode_request(long_varint, sizeof(long_varint), &req), PSF_EPROTO);
	assert_int_equal(psf_wire_decode_request(group, sizeof(group), &req), PSF_EPROTO);
	assert_int_equal(psf_wire_decode_request(field0, sizeof(field0), &req), PSF_EPROTO);
	assert_int_equal(psf_wire_decode_request(wrong_type, sizeof(wrong_type), &req), PSF_EPROTO);
	assert_int_equal(psf_wire_decode_request("", 0, &req), PSF_OK);
	assert_int_equal(req.method_len, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_request_head_decodes_with_protobuf_c),
		cmocka_unit_test(test_wire_decodes_protobuf_c_reply),
		cmocka_unit_test(test_wire_rejects_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
