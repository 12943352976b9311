/* libFuzzer target: the fleet config parser (psf_config_parse) on any text. It
 * either returns a config (which is then logged, fingerprinted and freed) or an
 * error with a one-line message; never a crash or a leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FILE *null = fopen("/dev/null", "w");

	psf_log_setup(PSF_LOG_ERR, "fuzz");
	if (null != NULL)
		psf_log_set_stream(null); /* errors go to errbuf; keep the output readable */
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], fp[32];
	psf_config *cfg = NULL;

	err[0] = '\0';
	if (psf_config_parse("fuzz.yaml", (const char *)data, size, err, sizeof(err), &cfg) ==
	    PSF_OK) {
		psf_config_fingerprint(cfg, fp, sizeof(fp));
		for (size_t i = 0; i < cfg->n_nodes; i++)
			if (psf_config_find_node(cfg, cfg->nodes[i].id) == NULL)
				abort();
		psf_config_free(cfg);
	} else if (err[0] == '\0' || strchr(err, '\n') != NULL) {
		abort(); /* every failure says why, on one line */
	}
	return 0;
}
