/* The hand-written parts of the wire contract agree with proto/psfleet.proto: the
 * method names (lib/net/methods.h) and the field numbers of the zero-copy
 * decoders (ps/push_raw.c, trainer/pull_reply.c) match the generated descriptors,
 * and the checker itself catches a drifted number, type or field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/net/methods.h"
#include "lib/net/wire.h"
#include "ps/internal.h"
#include "psfleet.pb-c.h"
#include "trainer/internal.h"

static void
test_method_names_match_descriptors(void **state)
{
	(void)state;
	assert_int_equal(psf_methods_check(), PSF_OK);
	/* The envelope carries "<package>.<Service>/<Method>" as the .proto spells it. */
	assert_string_equal(PSF_M_PUSH, "psfleet.v1.ParameterServer/Push");
	assert_string_equal(PSF_M_PREDICT_BATCH, "psfleet.v1.Inference/PredictBatch");
}

static void
test_decoder_fields_match_descriptors(void **state)
{
	(void)state;
	assert_int_equal(ps_push_check_fields(), PSF_OK);
	assert_int_equal(psf_pull_reply_check_fields(), PSF_OK);
}

static void
test_field_check_catches_drift(void **state)
{
	const ProtobufCMessageDescriptor *d = &psfleet__v1__pull_reply__descriptor;
	psf_wire_field_use good[] = {
	    {"model_version", 1, PROTOBUF_C_TYPE_UINT64},
	    {"keys", 2, PROTOBUF_C_TYPE_UINT64},
	    {"lens", 3, PROTOBUF_C_TYPE_UINT32},
	    {"values", 4, PROTOBUF_C_TYPE_BYTES},
	};
	psf_wire_field_use bad[4];

	(void)state;
	assert_int_equal(psf_wire_check_fields(d, good, 4), PSF_OK);
	memcpy(bad, good, sizeof(bad));
	bad[2].number = 5; /* a renumbered field */
	assert_int_equal(psf_wire_check_fields(d, bad, 4), PSF_EPROTO);
	memcpy(bad, good, sizeof(bad));
	bad[0].type = PROTOBUF_C_TYPE_INT64; /* a retyped field */
	assert_int_equal(psf_wire_check_fields(d, bad, 4), PSF_EPROTO);
	memcpy(bad, good, sizeof(bad));
	bad[3].name = "vals"; /* a renamed field */
	assert_int_equal(psf_wire_check_fields(d, bad, 4), PSF_EPROTO);
	/* a field the decoder does not know */
	assert_int_equal(psf_wire_check_fields(d, good, 3), PSF_EPROTO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_method_names_match_descriptors),
	    cmocka_unit_test(test_decoder_fields_match_descriptors),
	    cmocka_unit_test(test_field_check_catches_drift),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
