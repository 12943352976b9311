/* ingest_probe.c -- a Predict with full-precision output for ingest_test.sh.
 *
 *   ingest_probe URL SYMBOL                        the stored history
 *   ingest_probe URL SYMBOL DATE CLOSE OPEN HIGH LOW VOLUME
 *                                                  one bar passed as `recent`
 *
 * Prints "AS_OF PREDICTION(%.17g) MODEL_VERSION" and exits 0, or the status and
 * message and exits 1. */
#include <stdio.h>
#include <stdlib.h>

#include "lib/net/methods.h"
#include "lib/net/rpc.h"
#include "lib/net/rpc_client.h"
#include "psfleet.pb-c.h"

int
main(int argc, char **argv)
{
	Psfleet__V1__PredictRequest req = PSFLEET__V1__PREDICT_REQUEST__INIT;
	Psfleet__V1__Bar bar = PSFLEET__V1__BAR__INIT, *bars[1] = {&bar};
	Psfleet__V1__PredictReply *r = NULL;
	psf_rpc_client_opts co = {.timeout_ms = 15000, .connect_now = true};
	psf_rpc_call_opts o = {15000, 1, 0}; /* generous: a loaded machine */
	psf_rpc_client *c = NULL;
	psf_rpc_status st = {0};

	if (argc != 3 && argc != 9) {
		fprintf(stderr,
		    "usage: ingest_probe URL SYMBOL [DATE CLOSE OPEN HIGH LOW VOLUME]\n");
		return 2;
	}
	req.symbol = argv[2];
	if (argc == 9) {
		bar.date = argv[3];
		bar.close = atof(argv[4]);
		bar.open = atof(argv[5]);
		bar.high = atof(argv[6]);
		bar.low = atof(argv[7]);
		bar.volume = atof(argv[8]);
		req.n_recent = 1;
		req.recent = bars;
	}
	if (psf_rpc_client_open(argv[1], &co, &c) != PSF_OK) {
		fprintf(stderr, "cannot connect to %s\n", argv[1]);
		return 1;
	}
	if (psf_rpc_client_call(c, PSF_M_PREDICT, &req.base,
	        &psfleet__v1__predict_reply__descriptor, &o, (ProtobufCMessage **)&r,
	        &st) != PSF_OK) {
		printf("%s %s\n", psf_status_name(st.code), st.message);
		psf_rpc_client_close(c);
		return 1;
	}
	printf("%s %.17g %llu\n", r->as_of, r->prediction, (unsigned long long)r->model_version);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	psf_rpc_client_close(c);
	return 0;
}
