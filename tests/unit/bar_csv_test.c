/* bar_csv_test.c -- the bar CSV of psfleet ingest and the inferers' journals
 * (lib/data/bar_csv.h): header, rows, value checks, the journal's line format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/data/bar_csv.h"

static psf_err
header(const char *line, psf_bar_cols *cols, char *msg)
{
	return psf_bar_csv_header(line, strlen(line), cols, msg, 200);
}

static psf_err
row(const psf_bar_cols *cols, const char *line, psf_bar *b, char *msg)
{
	return psf_bar_csv_row(cols, line, strlen(line), b, msg, 200);
}

static void
test_header(void **state)
{
	psf_bar_cols cols;
	char msg[200];

	(void)state;
	assert_int_equal(header("symbol,close,date", &cols, msg), PSF_OK);
	assert_int_equal(cols.n, 3);
	assert_int_equal(header("date,symbol,open,high,low,close,volume\r", &cols, msg), PSF_OK);
	assert_int_equal(cols.n, 7);
	assert_int_equal(header("date,symbol,open", &cols, msg), PSF_EINVAL);
	assert_string_equal(msg, "header: column 'close' is required");
	assert_int_equal(header("date,ticker,close", &cols, msg), PSF_EINVAL);
	assert_non_null(strstr(msg, "unknown column 'ticker'"));
	assert_int_equal(header("date,symbol,close,close", &cols, msg), PSF_EINVAL);
	assert_string_equal(msg, "header: column 'close' appears twice");
	assert_int_equal(header("date,symbol,close,", &cols, msg), PSF_EINVAL);
}

static void
test_rows(void **state)
{
	psf_bar_cols cols;
	psf_bar b;
	char msg[200];
	int32_t d;

	(void)state;
	assert_int_equal(header("symbol,date,close,high,low", &cols, msg), PSF_OK);
	assert_int_equal(row(&cols, "S1,2025-01-02,10.5,11,,", &b, msg), PSF_EINVAL);
	assert_string_equal(msg, "too many fields; the header has 5");
	assert_int_equal(row(&cols, "S1,2025-01-02,10.5,11", &b, msg), PSF_EINVAL);
	assert_string_equal(msg, "too few fields; the header has 5");
	assert_int_equal(row(&cols, "S1,2025-01-02,10.5,11,", &b, msg), PSF_OK);
	assert_string_equal(b.symbol, "S1");
	assert_int_equal(psf_date_parse("2025-01-02", 10, &d), PSF_OK);
	assert_int_equal(b.date, d);
	assert_true(b.close == 10.5 && b.high == 11);
	assert_true(isnan(b.low) && isnan(b.open) && isnan(b.volume));
	assert_int_equal(row(&cols, "S1,2025-02-30,1,1,1", &b, msg), PSF_EINVAL);
	assert_string_equal(msg, "date '2025-02-30' is not a YYYY-MM-DD date");
	assert_int_equal(row(&cols, "A B,2025-01-02,1,1,1", &b, msg), PSF_EINVAL);
	assert_non_null(strstr(msg, "symbol 'A B' is not valid"));
	assert_int_equal(row(&cols, "S1,2025-01-02,1x,1,1", &b, msg), PSF_EINVAL);
	assert_string_equal(msg, "close '1x' is not a number");
	assert_int_equal(row(&cols, "S1,2025-01-02,,1,1", &b, msg), PSF_EINVAL);
	assert_string_equal(msg, "close is empty");
}

static void
test_check(void **state)
{
	psf_bar b = {"S1", 1, 10, NAN, NAN, NAN, NAN};
	char msg[200];

	(void)state;
	assert_int_equal(psf_bar_check(&b, msg, sizeof(msg)), PSF_OK);
	b.close = NAN;
	assert_int_equal(psf_bar_check(&b, msg, sizeof(msg)), PSF_EINVAL);
	assert_string_equal(msg, "close nan: must be a finite number > 0");
	b.close = -5;
	assert_int_equal(psf_bar_check(&b, msg, sizeof(msg)), PSF_EINVAL);
	b.close = INFINITY;
	assert_int_equal(psf_bar_check(&b, msg, sizeof(msg)), PSF_EINVAL);
	b.close = 10;
	b.open = 0;
	assert_int_equal(psf_bar_check(&b, msg, sizeof(msg)), PSF_EINVAL);
	assert_string_equal(msg, "open 0: must be a finite number > 0 (or absent)");
	b.open = 9;
	b.volume = -1;
	assert_int_equal(psf_bar_check(&b, msg, sizeof(msg)), PSF_EINVAL);
	b.volume = 0; /* a day without trades */
	assert_int_equal(psf_bar_check(&b, msg, sizeof(msg)), PSF_OK);
	b.high = 9;
	b.low = 10;
	assert_int_equal(psf_bar_check(&b, msg, sizeof(msg)), PSF_EINVAL);
	assert_string_equal(msg, "high 9 is below low 10");
}

/* What the journal writes reads back as the same bar. */
static void
test_format_round_trip(void **state)
{
	psf_bar_cols cols;
	psf_bar in = {"BRK.B", 20000, 123.456789012345, 0.1, NAN, 1e-7, 12345678};
	psf_bar out;
	char line[256], msg[200];
	size_t len = psf_bar_csv_format(&in, line, sizeof(line));

	(void)state;
	assert_true(len > 0 && line[len - 1] == '\n');
	assert_int_equal(header(PSF_BAR_CSV_HEADER, &cols, msg), PSF_OK);
	assert_int_equal(psf_bar_csv_row(&cols, line, len - 1, &out, msg, sizeof(msg)), PSF_OK);
	assert_string_equal(out.symbol, "BRK.B");
	assert_true(psf_bar_same(&in, &out));
	out.close += 1e-9;
	assert_false(psf_bar_same(&in, &out));
	assert_int_equal(psf_bar_csv_format(&in, line, 10), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_rows),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_format_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
