/* http_client.h -- a tiny HTTP/1.1 client, for the /metrics and /healthz
 * endpoints of the nodes (lib/runtime/http.h) that `psfleet up`, `psfleet
 * status` and `psfleet experiment` poll (cli/progress.c). */
#ifndef PSF_CLI_HTTP_CLIENT_H
#define PSF_CLI_HTTP_CLIENT_H

#include <stddef.h>

#include "lib/base/err.h"

/* One HTTP response as read by psf_http_request. */
typedef struct psf_http_reply {
	int status;         /* e.g. 200 */
	char *content_type; /* the Content-Type header, or NULL */
	char *body;         /* NUL-terminated (the body may hold NULs itself) */
	size_t body_len;
} psf_http_reply;

/* psf_http_request sends one HTTP/1.1 request without a body to hostport (as
 * for psf_http_open, lib/runtime/http.h; an empty host means 127.0.0.1) over a
 * plain TCP socket and reads the response (Connection: close; chunked responses are not
 * supported), all within timeout_ms. method is e.g. "GET" or "HEAD"; path
 * must start with '/'. Blocking; thread-safe. On success *out is filled and
 * the caller releases it with psf_http_reply_fini. Returns PSF_OK (whatever
 * the HTTP status), PSF_EINVAL (bad arguments), PSF_EUNAVAIL (cannot
 * resolve or connect), PSF_ETIMEDOUT, PSF_EPROTO (not an HTTP response),
 * PSF_ETOOBIG (response over 64 MiB), PSF_ENOMEM or PSF_ESYS. */
PSF_NODISCARD psf_err psf_http_request(const char *hostport, const char *method, const char *path,
    int timeout_ms, psf_http_reply *out);

/* psf_http_reply_fini frees the reply's strings. NULL is fine. */
void psf_http_reply_fini(psf_http_reply *r);

/* psf_http_get is psf_http_request with GET: *status_out gets the status and
 * *body_out a new NUL-terminated body the caller frees with free() (body_out
 * may be NULL when the body is not wanted). Codes as for psf_http_request. */
PSF_NODISCARD psf_err psf_http_get(const char *hostport, const char *path, int timeout_ms,
    int *status_out, char **body_out);

#endif
