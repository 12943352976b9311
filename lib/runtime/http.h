/* http.h -- the node's operations endpoint (DESIGN.md §9) and a tiny HTTP
 * client to poll it.
 *
 * The server (NNG's HTTP server) answers
 *   GET /metrics  200, Content-Type `text/plain; version=0.0.4`, the registry
 *                 rendered by psf_metrics_render
 *   GET /healthz  200 "ok\n" when the node's health callback says ready,
 *                 503 "not ready: <reason>\n" otherwise
 * HEAD works like GET; other paths get 404, other methods 405. */
#ifndef PSF_HTTP_H
#define PSF_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/runtime/metrics.h"

typedef struct psf_http psf_http;

/* psf_health_fn tells whether the node is ready to serve. When it is not, it
 * writes a short one-line reason (NUL-terminated, at most len bytes with the
 * NUL) into reason and returns false. It runs on an NNG thread, once per
 * /healthz request, and must be thread-safe and quick. */
typedef bool (*psf_health_fn)(void *arg, char *reason, size_t len);

/* psf_http_open serves /metrics and /healthz on hostport: "host:port",
 * "[v6addr]:port" or ":port" (every interface). Port 0 picks a free port; see
 * psf_http_port. reg (may be NULL: /metrics is then empty) and health (NULL:
 * always ready) with its arg are borrowed and must stay valid until
 * psf_http_close returns. On success *out gets a new endpoint the caller
 * closes with psf_http_close. Returns PSF_OK, PSF_EINVAL (bad hostport),
 * PSF_EEXIST (address in use, also by another psf_http of this process),
 * PSF_ENOMEM or PSF_ESYS. Two endpoints opened at the same moment on port 0
 * of the same host may collide (NNG shares a server by host and port until
 * it is bound); open them one after the other. */
PSF_NODISCARD psf_err psf_http_open(const char *hostport, psf_metrics *reg,
    psf_health_fn health, void *arg, psf_http **out);

/* psf_http_port returns the bound TCP port (the real one when opened with
 * port 0). Cannot fail. */
uint16_t psf_http_port(const psf_http *h);

/* psf_http_close stops serving, waits for requests in progress (so reg and
 * the health callback are no longer used when it returns) and releases the
 * endpoint. Must not be called from the health callback. NULL is fine. */
void psf_http_close(psf_http *h);

/* One HTTP response as read by psf_http_request. */
typedef struct psf_http_reply {
	int status;         /* e.g. 200 */
	char *content_type; /* the Content-Type header, or NULL */
	char *body;         /* NUL-terminated (the body may hold NULs itself) */
	size_t body_len;
} psf_http_reply;

/* psf_http_request sends one HTTP/1.1 request without a body to hostport (as
 * for psf_http_open; an empty host means 127.0.0.1) over a plain TCP socket
 * and reads the response (Connection: close; chunked responses are not
 * supported), all within timeout_ms. method is e.g. "GET" or "HEAD"; path
 * must start with '/'. Blocking; thread-safe. On success *out is filled and
 * the caller releases it with psf_http_reply_fini. Returns PSF_OK (whatever
 * the HTTP status), PSF_EINVAL (bad arguments), PSF_EUNAVAIL (cannot
 * resolve or connect), PSF_ETIMEDOUT, PSF_EPROTO (not an HTTP response),
 * PSF_ETOOBIG (response over 64 MiB), PSF_ENOMEM or PSF_ESYS. */
PSF_NODISCARD psf_err psf_http_request(const char *hostport, const char *method,
    const char *path, int timeout_ms, psf_http_reply *out);

/* psf_http_reply_fini frees the reply's strings. NULL is fine. */
void psf_http_reply_fini(psf_http_reply *r);

/* psf_http_get is psf_http_request with GET: *status_out gets the status and
 * *body_out a new NUL-terminated body the caller frees with free() (body_out
 * may be NULL when the body is not wanted). Codes as for psf_http_request. */
PSF_NODISCARD psf_err psf_http_get(const char *hostport, const char *path, int timeout_ms,
    int *status_out, char **body_out);

#endif
