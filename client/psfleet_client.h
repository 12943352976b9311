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

/* ---- Added later; the functions above keep their ABI. ---- */

/* One bar of history the fleet has not seen yet (PredictRequest.recent): it is
 * appended after the stored bars dated before the first one given. */
typedef struct psf_client_bar {
	char date[11]; /* YYYY-MM-DD; bars in increasing date order */
	double close;  /* a finite number > 0 */
	double open;   /* open, high, low, volume: 0 (or not finite) = unknown */
	double high;
	double low;
	double volume;
} psf_client_bar;

/* psf_client_predict_recent is psf_client_predict with n_recent caller-supplied
 * bars (recent may be NULL when n_recent is 0): the prediction is made from the
 * last of them. A bar that is out of order, badly dated or without a positive
 * close gets INVALID_ARGUMENT naming it. Returns out->status. */
PSF_CLIENT_API int psf_client_predict_recent(psf_client *c, const char *symbol, const char *as_of,
    const psf_client_bar *recent, size_t n_recent, psf_prediction *out);

/* One entry of psf_node_status.extra: a role-specific fact ("shard", "symbols",
 * "route", a replica's id, ...). */
typedef struct psf_client_kv {
	const char *key;
	const char *value;
} psf_client_kv;

/* A worker as a ps node sees it (psf_node_status.workers). */
typedef struct psf_client_worker {
	const char *worker;
	int64_t clock;
	int live; /* 1 while its heartbeats arrive */
	uint64_t last_seq;
	uint64_t pushes;
} psf_client_worker;

/* What a node says about itself (Admin/Status). Every pointer points into the
 * object and is valid until psf_client_node_status_free. */
typedef struct psf_node_status {
	const char *node; /* its id, e.g. "gateway", "inferer-0" */
	const char *role; /* "ps", "trainer", "inferer", "gateway" */
	int ready;        /* 1 when it serves */
	uint64_t model_version;
	double uptime_seconds;
	size_t n_extra;
	const psf_client_kv *extra;
	size_t n_workers; /* ps nodes: the workers it knows; else 0 */
	const psf_client_worker *workers;
} psf_node_status;

/* psf_client_node_status asks the node at the client's URL for its status
 * (Admin/Status; the gateway and every inferer serve it on their listen URL). On
 * success *out gets a new object the caller must free with
 * psf_client_node_status_free; on failure *out is untouched and the message goes to
 * errbuf (may be NULL). Returns the call's status. */
PSF_CLIENT_API int psf_client_node_status(psf_client *c, char *errbuf, size_t errlen,
    psf_node_status **out);

/* psf_client_node_status_free frees what psf_client_node_status returned. NULL is
 * fine. */
PSF_CLIENT_API void psf_client_node_status_free(psf_node_status *st);

/* psf_client_predict_batch_recent is psf_client_predict_batch with bars the
 * fleet has not seen, per symbol: recent[i] (n_recent[i] of them; NULL when 0)
 * for symbols[i], as psf_client_predict_recent takes them. recent and n_recent
 * may both be NULL (no bars for any symbol). */
PSF_CLIENT_API int psf_client_predict_batch_recent(psf_client *c, const char *const *symbols,
    size_t n, const char *as_of, const psf_client_bar *const *recent, const size_t *n_recent,
    psf_prediction *out);

/* One row's answer to psf_client_ingest. */
typedef struct psf_client_ingest_result {
	int status;        /* PSF_CLIENT_OK: stored; ALREADY_EXISTS (6), INVALID_ARGUMENT,
	                      FAILED_PRECONDITION, UNAVAILABLE, ...: refused, nothing changed */
	char message[320]; /* "SYMBOL DATE: why" when refused */
} psf_client_ingest_result;

/* What an Ingest call says as a whole. */
typedef struct psf_client_ingest_summary {
	uint64_t accepted;       /* rows stored */
	uint64_t model_version;  /* the version serving when they were stored */
	uint64_t finetune_rows;  /* fine-tuning rows the stored bars made */
	uint32_t finetune_steps; /* steps per fine-tuning round (0: no fine-tuning) */
} psf_client_ingest_summary;

/* psf_client_ingest appends n new bars (bars[i] of symbols[i]) to the fleet
 * behind the client (the Ingest RPC, docs/inference.md): results[i] answers
 * row i. Returns PSF_CLIENT_OK when the call went through (rows may still have
 * been refused), or the call's status, then copied into every results[i].
 * *out (may be NULL) is zeroed, then filled on PSF_CLIENT_OK. */
PSF_CLIENT_API int psf_client_ingest(psf_client *c, const char *const *symbols,
    const psf_client_bar *bars, size_t n, psf_client_ingest_result *results,
    psf_client_ingest_summary *out);

/* psf_client_sizeof returns sizeof the public struct named type ("psf_prediction",
 * "psf_model_info", "psf_client_opts", "psf_client_bar", "psf_node_status",
 * "psf_client_kv", "psf_client_worker", "psf_interval", "psf_client_ingest_result",
 * "psf_client_ingest_summary"), or 0 for a name it does not know. A binding
 * that mirrors these structs (the Python package does) checks its layout against
 * the library it loaded with it. */
PSF_CLIENT_API size_t psf_client_sizeof(const char *type);

#ifdef __cplusplus
}
#endif

#endif
