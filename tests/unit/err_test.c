#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base/err.h"

static void
test_err_every_code_has_message_and_name(void **state)
{
	(void)state;
	for (int e = 0; e < PSF_ERR_COUNT; e++) {
		assert_non_null(psf_strerror((psf_err)e));
		assert_true(strlen(psf_strerror((psf_err)e)) > 0);
		assert_true(strlen(psf_err_name((psf_err)e)) > 0);
	}
	assert_string_equal(psf_err_name(PSF_ENOENT), "ENOENT");
	assert_string_equal(psf_strerror(PSF_OK), "success");
	assert_string_equal(psf_strerror((psf_err)9999), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_err_every_code_has_message_and_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
