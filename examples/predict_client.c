/* predict_client.c -- ask a psfleet fleet for next-day predictions with
 * libpsfleet_client (docs/client.md).
 *
 * Build against an installed psfleet (cmake --install build --prefix PREFIX):
 *   cc predict_client.c -I PREFIX/include -L PREFIX/lib -lpsfleet_client -o predict_client
 * Run against the gateway of `psfleet up examples/fleet.yaml`:
 *   ./predict_client tcp://127.0.0.1:7400 S0000 S0001 S0002
 *
 * It prints the model being served, then one line per symbol: the predicted
 * next-day value, the price it implies, and the bar it was made from. With one
 * symbol it calls Predict; with several, one PredictBatch. */
#include <stdio.h>
#include <stdlib.h>

#include <psfleet_client.h>

static void
print_model(psf_client *c)
{
	psf_model_info mi;
	char err[256];
	int rc = psf_client_model_info(c, err, sizeof(err), &mi);

	if (rc != PSF_CLIENT_OK) {
		fprintf(stderr, "model info: %s: %s\n", psf_client_status_name(rc), err);
		return;
	}
	printf("model %s -> %s, version %llu, features %s\n", mi.model, mi.target,
	    (unsigned long long)mi.model_version, mi.features);
	if (mi.test_rmse > 0)
		printf("fleet test RMSE %.6g (naive forecast %.6g)\n", mi.test_rmse, mi.naive_rmse);
}

static void
print_prediction(const psf_prediction *p)
{
	if (p->status != PSF_CLIENT_OK) {
		printf("%-8s %s: %s\n", p->symbol, psf_client_status_name(p->status), p->message);
		return;
	}
	printf("%-8s %s %+.6f", p->symbol, p->target, p->prediction);
	if (p->predicted_close > 0)
		printf("  close %.4f -> %.4f", p->last_close, p->predicted_close);
	printf("  (bar of %s, model version %llu)\n", p->as_of,
	    (unsigned long long)p->model_version);
}

int
main(int argc, char **argv)
{
	psf_client_opts opts = {.timeout_ms = 5000}; /* 5 s per call, no token, no TLS */
	psf_client *c = NULL;
	psf_prediction *out;
	int n, rc, failed = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s URL SYMBOL...\n", argv[0]);
		return 2;
	}
	n = argc - 2;
	if ((rc = psf_client_open(argv[1], &opts, &c)) != PSF_CLIENT_OK) {
		fprintf(stderr, "%s: %s\n", argv[1], psf_client_status_name(rc));
		return 1;
	}
	print_model(c);
	if ((out = calloc((size_t)n, sizeof(*out))) == NULL) {
		psf_client_close(c);
		return 1;
	}
	if (n == 1)
		rc = psf_client_predict(c, argv[2], NULL, &out[0]);
	else
		rc = psf_client_predict_batch(c, (const char *const *)&argv[2], (size_t)n, NULL,
		    out);
	for (int i = 0; i < n; i++) {
		print_prediction(&out[i]);
		failed += out[i].status != PSF_CLIENT_OK;
	}
	free(out);
	psf_client_close(c);
	return failed > 0 || rc != PSF_CLIENT_OK ? 1 : 0;
}
