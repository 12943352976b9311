/* psfleet_client.h -- the psfleet prediction client (docs/client.md).
 *
 * A small C library to call the Inference service of an inferer or of the
 * gateway: one predicted value per symbol, many in one batch call, and the model's
 * description. It depends on nothing but this header at compile time; link with
 * -lpsfleet_client (which brings NNG and protobuf-c). Every call is a request /
 * reply over NNG req0 with psfleet's envelope (docs/rpc.md).
 *
 * Results. Functions return a status code with gRPC's numbers (PSF_CLIENT_OK = 0,
 * PSF_CLIENT_NOT_FOUND = 5, ...; psf_client_status_name gives its name). A
 * prediction carries its own status and message as well, which a batch sets per
 * item: NOT_FOUND (unknown symbol, or a symbol of another inferer shard when
 * talking to an inferer directly), FAILED_PRECONDITION (not enough history
 * before as_of), UNAVAILABLE (no model yet, or no healthy inferer behind the
 * gateway), DEADLINE_EXCEEDED (no answer within the timeout).
 *
 * Thread-safety. A psf_client may be shared by any number of threads; each call
 * runs on its own NNG context. psf_client_close must be the last call. */
#ifndef PSFLEET_CLIENT_H
#define PSFLEET_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PSF_CLIENT_API __attribute__((visibility("default")))
#else
#define PSF_CLIENT_API
#endif

/* Status codes (gRPC's numbers). */
enum {
	PSF_CLIENT_OK = 0,
	PSF_CLIENT_INVALID_ARGUMENT = 3,
	PSF_CLIENT_DEADLINE_EXCEEDED = 4,
	PSF_CLIENT_NOT_FOUND = 5,
	PSF_CLIENT_RESOURCE_EXHAUSTED = 8,
	PSF_CLIENT_FAILED_PRECONDITION = 9,
	PSF_CLIENT_INTERNAL = 13,
	PSF_CLIENT_UNAVAILABLE = 14,
	PSF_CLIENT_UNAUTHENTICATED = 16,
};

typedef struct psf_client psf_client;

typedef struct psf_client_opts {
	uint32_t timeout_ms; /* deadline of each call; 0 = 10000 */
	const char *token;   /* shared secret (security.token_file of the fleet); NULL = none */
	const char *ca_file; /* tls+tcp:// URLs: CA bundle that signed the server; NULL = none */
	const char *server_name; /* with ca_file: the name the server's certificate must
	                            carry; NULL = the host in the URL */
	const char *cert_file;   /* mutual TLS: this client's certificate (PEM) ... */
	const char *key_file;    /* ... and its key; both or neither */
	int connect_now;         /* 1: psf_client_open connects before it returns (a
	                            one-shot client): UNAVAILABLE at once when nothing
	                            listens at url, DEADLINE_EXCEEDED when no connection
	                            within timeout_ms. 0: connect in the background */
} psf_client_opts;

/* One prediction. Strings are NUL-terminated copies owned by the struct. */
typedef struct psf_prediction {
	int status;        /* PSF_CLIENT_OK or why this symbol has no prediction */
	char message[256]; /* the reason when status != OK */
	char symbol[64];
	double prediction;      /* next_return: a return; next_close: a price;
	                             next_direction: the probability of a rise */
	double predicted_close; /* next_return / next_close: the price it implies; else 0 */
	char target[16];        /* "next_return", "next_close" or "next_direction" */
	uint64_t model_version;
	char as_of[11];    /* YYYY-MM-DD of the last bar the prediction uses */
	double last_close; /* that bar's close */
} psf_prediction;

/* The model an inferer serves (through the gateway: one of them). */
typedef struct psf_model_info {
	uint64_t model_version;
	uint64_t trained_steps;
	char model[16]; /* "linear", "logistic" or "mlp" */
	char target[16];
	char features[512];       /* comma-separated, e.g. "return:1,sma:5" */
	char tensors[1024];       /* "name[rows x cols]" list; "/symbol" marks per-symbol */
	char shard_versions[256]; /* version on each ps node, comma-separated */
	double test_rmse, test_mae, naive_rmse; /* fleet test metrics; 0 when unknown */
	uint32_t symbols;                       /* symbols the answering inferer serves */
	uint32_t shard, shards;
	char node[64]; /* the answering inferer's id */
} psf_model_info;

/* psf_client_open prepares a client for url (tcp://host:port, ipc:///path or
 * tls+tcp://host:port of an inferer or the gateway). The server need not be up
 * yet: the connection is made in the background and remade after it drops;
 * with opts->connect_now the first connection is made before it returns.
 * opts may be NULL. Returns PSF_CLIENT_OK, PSF_CLIENT_INVALID_ARGUMENT (malformed
 * URL or TLS files, or a host that does not resolve), PSF_CLIENT_RESOURCE_EXHAUSTED,
 * and with connect_now PSF_CLIENT_UNAVAILABLE (connection refused) or
 * PSF_CLIENT_DEADLINE_EXCEEDED. On success *out gets a
 * client to release with psf_client_close. */
PSF_CLIENT_API int psf_client_open(const char *url, const psf_client_opts *opts, psf_client **out);

/* psf_client_close closes the connection and frees the client. NULL is fine. */
PSF_CLIENT_API void psf_client_close(psf_client *c);

/* psf_client_predict asks for symbol's prediction at as_of (YYYY-MM-DD; NULL or
 * "" = its latest bar). *out is always written: on success its fields, otherwise
 * status and message. Returns out->status. */
PSF_CLIENT_API int psf_client_predict(psf_client *c, const char *symbol, const char *as_of,
    psf_prediction *out);

/* psf_client_predict_batch asks for n symbols in one call; out[i] answers
 * symbols[i], each with its own status. Returns PSF_CLIENT_OK when the call went
 * through (items may still have failed), or the call's status, which is then
 * copied into every out[i]. */
PSF_CLIENT_API int psf_client_predict_batch(psf_client *c, const char *const *symbols, size_t n,
    const char *as_of, psf_prediction *out);

/* A prediction interval: [lower, upper] (the prediction's units) holds the actual
 * value with probability `coverage` (split-conformal over the trainers'
 * held-out rows, docs/inference.md); n held-out residuals are behind it. */
typedef struct psf_interval {
	double lower, upper, coverage;
	uint64_t n;
} psf_interval;

/* psf_client_predict_interval is psf_client_predict with an interval at
 * coverage in (0, 1) (e.g. 0.9) written to *iv (zeroed when the call fails).
 * Besides psf_client_predict's statuses: INVALID_ARGUMENT for a coverage outside
 * (0, 1), FAILED_PRECONDITION when the fleet has no held-out residuals yet, too
 * few for the coverage, or a next_direction model. */
PSF_CLIENT_API int psf_client_predict_interval(psf_client *c, const char *symbol, const char *as_of,
    double coverage, psf_prediction *out, psf_interval *iv);

/* psf_client_predict_batch_interval is psf_client_predict_batch with an
 * interval per symbol: iv[i] (n of them) for out[i]. */
PSF_CLIENT_API int psf_client_predict_batch_interval(psf_client *c, const char *const *symbols,
    size_t n, const char *as_of, double coverage, psf_prediction *out, psf_interval *iv);

/* psf_client_model_info describes the model served. On failure the message
 * goes to errbuf (may be NULL). Returns the call's status. */
PSF_CLIENT_API int psf_client_model_info(psf_client *c, char *errbuf, size_t errlen,
    psf_model_info *out);

/* psf_client_status_name returns "OK", "NOT_FOUND", ... (never NULL). */
PSF_CLIENT_API const char *psf_client_status_name(int status);

#ifdef __cplusplus
}
#endif

#endif
