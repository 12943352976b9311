/* psfleet predict --connect URL SYMBOL... : ask an inferer or the gateway for
 * predictions through libpsfleet_client (client/psfleet_client.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/psfleet_client.h"
#include "lib/data/data.h"

static void
predict_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet predict --connect URL SYMBOL... [--as-of DATE] [--coverage C] [--json]\n"
	    "                       [--timeout-ms N] [--token-file FILE] [--info]\n"
	    "                       [--ca-file FILE [--server-name NAME] [--cert FILE --key FILE]]\n"
	    "\n"
	    "Asks the inferer or gateway at URL for the next-day prediction of each SYMBOL\n"
	    "(one call; several symbols go in one PredictBatch) and prints a table. Its first\n"
	    "line says what PREDICTION is (the model's target: next_return, a close-to-close\n"
	    "return; next_close, a price; next_direction, the probability of a rise) and\n"
	    "FOR_DATE is the day it is for: the next business day after AS_OF, the last bar\n"
	    "used. A URL where nothing listens fails at once (connection refused).\n"
	    "  --connect URL      tcp://host:port (the gateway or an inferer), ipc://, tls+tcp://\n"
	    "  --as-of DATE       predict from the last bar on or before DATE (YYYY-MM-DD)\n"
	    "  --coverage C       also print a prediction interval holding the actual value\n"
	    "                     with probability C in (0, 1), e.g. 0.9 (split-conformal)\n"
	    "  --json             print a JSON array instead of a table\n"
	    "  --timeout-ms N     deadline of the call (default 10000)\n"
	    "  --token-file FILE  the fleet's shared secret (security.token_file)\n"
	    "  --ca-file FILE     tls+tcp://: verify the server against this CA (security.tls_ca)\n"
	    "  --server-name NAME the name the server's certificate carries (default: the URL's\n"
	    "                     host; security.tls_server_name)\n"
	    "  --cert FILE, --key FILE  a client certificate and key, for a fleet with mutual TLS\n"
	    "  --info             print the model served (ModelInfo) instead\n"
	    "Exits 0 when every symbol got a prediction, 1 otherwise.\n");
}

typedef struct predict_args {
	const char *url;
	const char *as_of;
	const char *token_file;
	const char *ca_file, *server_name, *cert_file, *key_file;
	int json;
	int info;
	double coverage; /* 0: no interval */
	long timeout_ms;
	const char **symbols;
	size_t n;
} predict_args;

static int
parse_args(int argc, char **argv, predict_args *a)
{
	memset(a, 0, sizeof(*a));
	if ((a->symbols = calloc((size_t)argc, sizeof(char *))) == NULL)
		return -1;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--connect") == 0 && i + 1 < argc) {
			a->url = argv[++i];
		} else if (strcmp(arg, "--as-of") == 0 && i + 1 < argc) {
			a->as_of = argv[++i];
		} else if (strcmp(arg, "--token-file") == 0 && i + 1 < argc) {
			a->token_file = argv[++i];
		} else if (strcmp(arg, "--ca-file") == 0 && i + 1 < argc) {
			a->ca_file = argv[++i];
		} else if (strcmp(arg, "--server-name") == 0 && i + 1 < argc) {
			a->server_name = argv[++i];
		} else if (strcmp(arg, "--cert") == 0 && i + 1 < argc) {
			a->cert_file = argv[++i];
		} else if (strcmp(arg, "--key") == 0 && i + 1 < argc) {
			a->key_file = argv[++i];
		} else if (strcmp(arg, "--timeout-ms") == 0 && i + 1 < argc) {
			a->timeout_ms = strtol(argv[++i], NULL, 10);
			if (a->timeout_ms < 1 || a->timeout_ms > 3600000) {
				fprintf(stderr,
				    "psfleet predict: --timeout-ms takes 1 to 3600000\n");
				return -1;
			}
		} else if (strcmp(arg, "--coverage") == 0 && i + 1 < argc) {
			char *end;
			a->coverage = strtod(argv[++i], &end);
			if (*end != '\0' || !(a->coverage > 0 && a->coverage < 1)) {
				fprintf(stderr,
				    "psfleet predict: --coverage takes a number in (0, 1), "
				    "e.g. 0.9\n");
				return -1;
			}
		} else if (strcmp(arg, "--json") == 0) {
			a->json = 1;
		} else if (strcmp(arg, "--info") == 0) {
			a->info = 1;
		} else if (arg[0] == '-') {
			fprintf(stderr, "psfleet predict: unknown or incomplete option '%s'\n",
			    arg);
			return -1;
		} else {
			a->symbols[a->n++] = arg;
		}
	}
	if (a->url == NULL || (a->n == 0 && !a->info)) {
		fprintf(stderr,
		    "psfleet predict: --connect URL and at least one SYMBOL are required "
		    "(see --help)\n");
		return -1;
	}
	if ((a->cert_file == NULL) != (a->key_file == NULL)) {
		fprintf(stderr, "psfleet predict: --cert and --key go together\n");
		return -1;
	}
	if (a->server_name != NULL && a->ca_file == NULL) {
		fprintf(stderr,
		    "psfleet predict: --server-name needs --ca-file (without a CA "
		    "nothing is verified)\n");
		return -1;
	}
	return 0;
}

/* for_date writes the day a prediction is for: the next business day (Mon-Fri)
 * after as_of, the last bar the model used ("-" when as_of is not a date). The
 * model predicts the symbol's next row; the synthetic data has a row every
 * business day, real data may skip a holiday. */
static void
for_date(const char *as_of, char buf[11])
{
	int32_t d;

	if (psf_date_parse(as_of, strlen(as_of), &d) != PSF_OK) {
		snprintf(buf, 11, "-");
		return;
	}
	do
		d++;
	while (psf_date_dow(d) >= 5);
	psf_date_format(d, buf);
}

/* target_what says what a prediction of target is, in words. */
static const char *
target_what(const char *target)
{
	psf_target_kind t;

	if (psf_target_parse(target, &t) != PSF_OK)
		return target;
	switch (t) {
	case PSF_TARGET_NEXT_RETURN:
		return "the return from the close of AS_OF to the close of FOR_DATE "
		       "(0.01 = +1%); PRED_CLOSE = LAST_CLOSE x (1 + PREDICTION)";
	case PSF_TARGET_NEXT_CLOSE: return "the close price of FOR_DATE";
	case PSF_TARGET_NEXT_DIRECTION: return "the probability that FOR_DATE closes above AS_OF";
	}
	return target;
}

/* json_str prints s as a JSON string. */
static void
json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void
print_json(const psf_prediction *p, const psf_interval *iv, size_t n)
{
	char day[11];

	printf("[");
	for (size_t i = 0; i < n; i++) {
		printf("%s\n  {\"symbol\": ", i ? "," : "");
		json_str(p[i].symbol);
		printf(", \"status\": \"%s\"", psf_client_status_name(p[i].status));
		if (p[i].status != PSF_CLIENT_OK) {
			printf(", \"message\": ");
			json_str(p[i].message);
			printf("}");
			continue;
		}
		for_date(p[i].as_of, day);
		printf(", \"prediction\": %.17g, \"predicted_close\": %.17g, \"target\": \"%s\", "
		       "\"model_version\": %llu, \"as_of\": \"%s\", \"for_date\": \"%s\", "
		       "\"last_close\": %.17g",
		    p[i].prediction, p[i].predicted_close, p[i].target,
		    (unsigned long long)p[i].model_version, p[i].as_of, day, p[i].last_close);
		if (iv != NULL)
			printf(", \"lower\": %.17g, \"upper\": %.17g, \"coverage\": %.17g, "
			       "\"interval_n\": %llu",
			    iv[i].lower, iv[i].upper, iv[i].coverage, (unsigned long long)iv[i].n);
		printf("}");
	}
	printf("\n]\n");
}

/* print_table prints one row per symbol, after a line saying what PREDICTION is
 * (from the first answer's target: one model serves them all). */
static void
print_table(const psf_prediction *p, const psf_interval *iv, size_t n)
{
	char day[11];

	for (size_t i = 0; i < n; i++) {
		if (p[i].status == PSF_CLIENT_OK) {
			printf(
			    "PREDICTION (%s) is %s; FOR_DATE is the next business day after AS_OF, "
			    "the last bar used\n",
			    p[i].target, target_what(p[i].target));
			break;
		}
	}
	printf("%-12s %-11s %14s %14s %12s %-11s %8s  %s\n", "SYMBOL", "FOR_DATE", "PREDICTION",
	    "PRED_CLOSE", "LAST_CLOSE", "AS_OF", "VERSION", "TARGET / STATUS");
	for (size_t i = 0; i < n; i++) {
		if (p[i].status != PSF_CLIENT_OK) {
			printf("%-12s %-11s %14s %14s %12s %-11s %8s  %s: %s\n", p[i].symbol, "-",
			    "-", "-", "-", "-", "-", psf_client_status_name(p[i].status),
			    p[i].message);
			continue;
		}
		for_date(p[i].as_of, day);
		printf("%-12s %-11s %14.6g %14.6g %12.6g %-11s %8llu  %s\n", p[i].symbol, day,
		    p[i].prediction, p[i].predicted_close, p[i].last_close, p[i].as_of,
		    (unsigned long long)p[i].model_version, p[i].target);
		if (iv != NULL)
			printf("%-12s %g%% interval of PREDICTION: [%.6g, %.6g] (from %llu "
			       "held-out residuals)\n",
			    "", iv[i].coverage * 100, iv[i].lower, iv[i].upper,
			    (unsigned long long)iv[i].n);
	}
}

static int
show_info(psf_client *c, const predict_args *a)
{
	psf_model_info mi;
	char err[256];
	int rc = psf_client_model_info(c, err, sizeof(err), &mi);

	if (rc != PSF_CLIENT_OK) {
		fprintf(stderr, "psfleet predict: %s: %s\n", psf_client_status_name(rc), err);
		return 1;
	}
	if (a->json) {
		printf("{\"model_version\": %llu, \"shard_versions\": [%s], \"model\": \"%s\", "
		       "\"target\": \"%s\", \"trained_steps\": %llu, \"test_rmse\": %.9g, "
		       "\"test_mae\": %.9g, \"naive_rmse\": %.9g, \"symbols\": %u, \"shard\": %u, "
		       "\"shards\": %u, \"node\": ",
		    (unsigned long long)mi.model_version, mi.shard_versions, mi.model, mi.target,
		    (unsigned long long)mi.trained_steps, mi.test_rmse, mi.test_mae, mi.naive_rmse,
		    mi.symbols, mi.shard, mi.shards);
		json_str(mi.node);
		printf(", \"features\": ");
		json_str(mi.features);
		printf("}\n");
		return 0;
	}
	printf("model          %s -> %s\nfeatures       %s\ntensors        %s\n"
	       "version        %llu (per ps: %s), %llu optimizer steps\n"
	       "test rmse      %.6g (naive %.6g), mae %.6g\n"
	       "served by      %s: shard %u of %u, %u symbols\n",
	    mi.model, mi.target, mi.features, mi.tensors, (unsigned long long)mi.model_version,
	    mi.shard_versions, (unsigned long long)mi.trained_steps, mi.test_rmse, mi.naive_rmse,
	    mi.test_mae, mi.node, mi.shard, mi.shards, mi.symbols);
	return 0;
}

/* read_token loads the first line of path into buf. */
static int
read_token(const char *path, char *buf, size_t len)
{
	FILE *fp = fopen(path, "r");

	if (fp == NULL || fgets(buf, (int)len, fp) == NULL) {
		fprintf(stderr, "psfleet predict: cannot read token file %s\n", path);
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	fclose(fp);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

int
psf_cmd_predict(int argc, char **argv)
{
	predict_args a;
	psf_client_opts o = {0};
	psf_client *c = NULL;
	psf_prediction *p = NULL;
	psf_interval *iv = NULL;
	char token[256];
	int rc, status = 1;

	if (psf_cli_wants_help(argc, argv)) {
		predict_usage(stdout);
		return 0;
	}
	if (parse_args(argc, argv, &a) != 0) {
		free(a.symbols);
		return 2;
	}
	o.timeout_ms = (uint32_t)a.timeout_ms;
	if (a.token_file != NULL && read_token(a.token_file, token, sizeof(token)) != 0)
		goto out;
	o.token = a.token_file != NULL ? token : NULL;
	o.ca_file = a.ca_file;
	o.server_name = a.server_name;
	o.cert_file = a.cert_file;
	o.key_file = a.key_file;
	o.connect_now = 1; /* one call: a refused connection is the answer, not a wait */
	if ((rc = psf_client_open(a.url, &o, &c)) != PSF_CLIENT_OK) {
		bool tls = strncmp(a.url, "tls+tcp://", 10) == 0;

		fprintf(stderr, "psfleet predict: cannot connect to %s: %s\n", a.url,
		    rc == PSF_CLIENT_UNAVAILABLE && !tls
		        ? "connection refused (nothing serves there)"
		        : rc == PSF_CLIENT_UNAVAILABLE
		        ? "connection refused or closed (nothing serves "
		          "there, or the TLS handshake failed: CA, server name, client certificate)"
		        : rc == PSF_CLIENT_UNAUTHENTICATED
		        ? "the TLS handshake failed (CA, server name, "
		          "client certificate)"
		        : rc == PSF_CLIENT_DEADLINE_EXCEEDED ? "no connection within the deadline"
		        : rc == PSF_CLIENT_INVALID_ARGUMENT  ? "invalid address or TLS files"
		                                             : psf_client_status_name(rc));
		goto out;
	}
	if (a.info) {
		status = show_info(c, &a);
		goto out;
	}
	if ((p = calloc(a.n, sizeof(*p))) == NULL ||
	    (a.coverage > 0 && (iv = calloc(a.n, sizeof(*iv))) == NULL))
		goto out;
	if (a.n == 1)
		rc = psf_client_predict_interval(c, a.symbols[0], a.as_of, a.coverage, &p[0], iv);
	else
		rc = psf_client_predict_batch_interval(c, a.symbols, a.n, a.as_of, a.coverage, p,
		    iv);
	if (a.n > 1 && rc != PSF_CLIENT_OK) { /* the call itself failed */
		fprintf(stderr, "psfleet predict: %s: %s\n", psf_client_status_name(rc),
		    p[0].message);
		goto out;
	}
	if (a.json)
		print_json(p, iv, a.n);
	else
		print_table(p, iv, a.n);
	status = 0;
	for (size_t i = 0; i < a.n; i++)
		status = p[i].status != PSF_CLIENT_OK ? 1 : status;
out:
	free(iv);
	free(p);
	psf_client_close(c);
	free(a.symbols);
	return status;
}
