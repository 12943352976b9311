/* http.h -- the node's operations endpoint (DESIGN.md §9); the client that
 * polls it is cli/http_client.h.
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
PSF_NODISCARD psf_err psf_http_open(const char *hostport, psf_metrics *reg, psf_health_fn health,
    void *arg, psf_http **out);

/* psf_http_port returns the bound TCP port (the real one when opened with
 * port 0). Cannot fail. */
uint16_t psf_http_port(const psf_http *h);

/* psf_http_close stops serving, waits for requests in progress (so reg and
 * the health callback are no longer used when it returns) and releases the
 * endpoint. Must not be called from the health callback. NULL is fine. */
void psf_http_close(psf_http *h);

/* psf_http_split_hostport splits "host:port", "[v6addr]:port" or ":port" (host
 * "") into host (hostlen bytes, the bare address) and *port. Returns false when
 * hp is not one of these, the host has characters an address cannot have, or
 * the port is not 0..65535. */
bool psf_http_split_hostport(const char *hp, char *host, size_t hostlen, unsigned long *port);

#endif
