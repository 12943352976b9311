/* runtime.h -- what every psfleet process (a node of the fleet) has in common: a metrics registry
 * served with /healthz over HTTP, RPC metrics recorded by an observer, a
 * readiness flag with a reason, and a stop request (SIGINT/SIGTERM or a Shutdown
 * RPC) that the role's main loop waits on.
 *
 * One psf_runtime per process (it installs signal handlers). Thread-safe except
 * psf_runtime_new/psf_runtime_free. */
#ifndef PSF_RUNTIME_H
#define PSF_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/config/config.h"
#include "lib/net/rpc_client.h"
#include "lib/net/rpc_group.h"
#include "lib/net/rpc_server.h"
#include "lib/runtime/metrics.h"

typedef struct psf_runtime psf_runtime;

/* psf_runtime_new sets up logging for the node, the metrics registry (with process
 * metrics) and, when metrics_addr is not NULL, the HTTP endpoint on it. Signal
 * handlers for SIGINT/SIGTERM request a stop; SIGPIPE is ignored. */
PSF_NODISCARD psf_err psf_runtime_new(const char *id, const char *role, const char *metrics_addr,
    psf_runtime **out);

/* psf_runtime_free closes the HTTP endpoint and frees the registry. NULL is fine. */
void psf_runtime_free(psf_runtime *n);

psf_metrics *psf_runtime_metrics(psf_runtime *n);
const char *psf_runtime_id(const psf_runtime *n);
const char *psf_runtime_role(const psf_runtime *n);

/* psf_runtime_http_port returns the bound metrics port (0 without an endpoint). */
uint16_t psf_runtime_http_port(const psf_runtime *n);

/* psf_runtime_set_ready marks the node ready (reason ignored) or not ready with a
 * one-line reason shown on /healthz and in Health replies. */
void psf_runtime_set_ready(psf_runtime *n, bool ready, const char *reason);

/* psf_runtime_is_ready copies the reason when not ready (reason may be NULL). */
bool psf_runtime_is_ready(psf_runtime *n, char *reason, size_t len);

/* psf_runtime_observe_rpc attaches the node's RPC metrics to a server
 * (psfleet_rpc_requests_total{method,status}, psfleet_rpc_latency_seconds{method},
 * psfleet_rpc_bytes_in_total / _out_total, psfleet_rpc_unauthenticated_total,
 * psfleet_rpc_connections, psfleet_rpc_connections_refused_total). Call before
 * the server listens. */
void psf_runtime_observe_rpc(psf_runtime *n, psf_rpc_server *srv);

/* psf_runtime_request_stop asks the main loop to end (thread- and signal-safe). */
void psf_runtime_request_stop(psf_runtime *n);

/* psf_runtime_stop_requested tells whether a stop was requested. */
bool psf_runtime_stop_requested(const psf_runtime *n);

/* psf_runtime_wait waits up to ms milliseconds for a stop request; returns true
 * when one was made. */
bool psf_runtime_wait(psf_runtime *n, uint32_t ms);

/* psf_runtime_uptime returns seconds since psf_runtime_new. */
double psf_runtime_uptime(const psf_runtime *n);

/* psf_runtime_server_opts fills RPC server options from the config's limits and
 * security sections. The token (read from token_file or token_env) is kept in
 * tokbuf (>= 256 bytes), which must outlive the server. */
PSF_NODISCARD psf_err psf_runtime_server_opts(const psf_config *cfg, char *tokbuf, size_t toklen,
    psf_rpc_server_opts *out);

/* psf_runtime_client_opts is the same for clients of other nodes. */
PSF_NODISCARD psf_err psf_runtime_client_opts(const psf_config *cfg, char *tokbuf, size_t toklen,
    psf_rpc_client_opts *out);

/* psf_runtime_shard_group opens a client group (lib/net/rpc_group.h) for ps
 * shard `shard`: its replicas' dial URLs in replica order (ps_urls, one per ps
 * node in config order, overrides the config's when not NULL), named by node id
 * and labelled "ps shard <shard>". One replica when replication is 1. Errors as
 * psf_rpc_group_open. */
PSF_NODISCARD psf_err psf_runtime_shard_group(const psf_config *cfg, size_t shard,
    const char *const *ps_urls, const psf_rpc_client_opts *opts, psf_rpc_group **out);

#endif
