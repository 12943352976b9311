/* libFuzzer target: the CSV reader (psf_data_load and psf_data_scan) on any
 * bytes, written to a file in a private temp dir (the reader takes a path), under
 * both bad-row policies. Either a dataset whose series are sorted and dated in
 * order, or an error with a `file:line: reason` line; never a crash or a leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char dir[64];
static char file[128];

static void
cleanup(void)
{
	unlink(file);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE *null = fopen("/dev/null", "w");

	(void)argc;
	(void)argv;
	psf_log_setup(PSF_LOG_ERR, "fuzz");
	if (null != NULL)
		psf_log_set_stream(null);
	snprintf(dir, sizeof(dir), "/tmp/psf-fuzz-csv-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(file, sizeof(file), "%s/in.csv", dir);
	atexit(cleanup);
	return 0;
}

static void
check(const psf_dataset *ds)
{
	for (size_t i = 0; i < psf_dataset_n_series(ds); i++) {
		const psf_series *s = psf_dataset_series(ds, i);
		if (s == NULL || psf_dataset_find(ds, s->symbol) != s)
			abort();
		if (i > 0 && strcmp(psf_dataset_series(ds, i - 1)->symbol, s->symbol) >= 0)
			abort();
		for (size_t j = 1; j < s->n; j++)
			if (s->date[j] <= s->date[j - 1])
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const psf_bad_rows policies[] = {PSF_BAD_ROWS_FAIL, PSF_BAD_ROWS_SKIP};
	char err[512];
	FILE *f = fopen(file, "wb");
	psf_dataset *ds;
	psf_data_index *ix;

	if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	for (size_t p = 0; p < 2; p++) {
		psf_data_opts o = {policies[p], NULL, NULL, NULL, NULL, 0};
		err[0] = '\0';
		if (psf_data_load(file, &o, err, sizeof(err), &ds) == PSF_OK) {
			check(ds);
			psf_dataset_free(ds);
		} else if (err[0] == '\0') {
			abort();
		}
		if (psf_data_scan(file, policies[p], err, sizeof(err), &ix) == PSF_OK)
			psf_data_index_free(ix);
	}
	return 0;
}
