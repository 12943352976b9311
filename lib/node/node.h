/* node.h -- what every psfleet node process has in common: a metrics registry
 * served with /healthz over HTTP, RPC metrics recorded by an observer, a
 * readiness flag with a reason, and a stop request (SIGINT/SIGTERM or a Shutdown
 * RPC) that the role's main loop waits on.
 *
 * One psf_node per process (it installs signal handlers). Thread-safe except
 * psf_node_new/psf_node_free. */
#ifndef PSF_NODE_H
#define PSF_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/config/config.h"
#include "lib/base/err.h"
#include "lib/node/metrics.h"
#include "lib/net/rpc_client.h"
#include "lib/net/rpc_server.h"

typedef struct psf_node psf_node;

/* psf_node_new sets up logging for the node, the metrics registry (with process
 * metrics) and, when metrics_addr is not NULL, the HTTP endpoint on it. Signal
 * handlers for SIGINT/SIGTERM request a stop; SIGPIPE is ignored. */
PSF_NODISCARD psf_err psf_node_new(const char *id, const char *role, const char *metrics_addr,
    psf_node **out);

/* psf_node_free closes the HTTP endpoint and frees the registry. NULL is fine. */
void psf_node_free(psf_node *n);

psf_metrics *psf_node_metrics(psf_node *n);
const char *psf_node_id(const psf_node *n);
const char *psf_node_role(const psf_node *n);

/* psf_node_http_port returns the bound metrics port (0 without an endpoint). */
uint16_t psf_node_http_port(const psf_node *n);

/* psf_node_set_ready marks the node ready (reason ignored) or not ready with a
 * one-line reason shown on /healthz and in Health replies. */
void psf_node_set_ready(psf_node *n, bool ready, const char *reason);

/* psf_node_is_ready copies the reason when not ready (reason may be NULL). */
bool psf_node_is_ready(psf_node *n, char *reason, size_t len);

/* psf_node_observe_rpc attaches the node's RPC metrics to a server
 * (psfleet_rpc_requests_total{method,status}, psfleet_rpc_latency_seconds{method},
 * psfleet_rpc_bytes_in_total / _out_total, psfleet_rpc_unauthenticated_total,
 * psfleet_rpc_connections, psfleet_rpc_connections_refused_total). Call before
 * the server listens. */
void psf_node_observe_rpc(psf_node *n, psf_rpc_server *srv);

/* psf_node_request_stop asks the main loop to end (thread- and signal-safe). */
void psf_node_request_stop(psf_node *n);

/* psf_node_stop_requested tells whether a stop was requested. */
bool psf_node_stop_requested(const psf_node *n);

/* psf_node_wait waits up to ms milliseconds for a stop request; returns true
 * when one was made. */
bool psf_node_wait(psf_node *n, uint32_t ms);

/* psf_node_uptime returns seconds since psf_node_new. */
double psf_node_uptime(const psf_node *n);

/* psf_node_server_opts fills RPC server options from the config's limits and
 * security sections. The token (read from token_file or token_env) is kept in
 * tokbuf (>= 256 bytes), which must outlive the server. */
PSF_NODISCARD psf_err psf_node_server_opts(const psf_config *cfg, char *tokbuf, size_t toklen,
    psf_rpc_server_opts *out);

/* psf_node_client_opts is the same for clients of other nodes. */
PSF_NODISCARD psf_err psf_node_client_opts(const psf_config *cfg, char *tokbuf, size_t toklen,
    psf_rpc_client_opts *out);

#endif
