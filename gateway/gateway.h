/* gateway.h -- the gateway node (DESIGN.md §1): a stateless router that serves
 * the Inference service in front of the inferers.
 *
 * Routing (gateway_options.route):
 *   symbol       Predict goes to an inferer of the symbol's shard
 *                (psf_inference_shard_of(symbol, inference.shards), the function the
 *                inferers load by), round robin among that shard's healthy
 *                replicas; PredictBatch is split by shard, the parts are sent in
 *                parallel and the results merged back in the request's order.
 *   round_robin  every call goes to the next healthy inferer, whatever its shard
 *                (meant for inference.shards = 1, where every inferer has every
 *                symbol; with more shards a replica answers NOT_FOUND for the
 *                symbols it does not serve).
 * ModelInfo goes to any healthy inferer (round robin).
 *
 * Health: every health_interval_ms the gateway calls Admin/Health on every
 * inferer; a replica is healthy when it answers ready. A call that fails with
 * UNAVAILABLE or times out on one replica marks it unhealthy and is retried on
 * the next healthy replica of the shard within the caller's deadline. When no
 * replica of the shard is healthy the call (or the batch item) gets UNAVAILABLE
 * at once. Calls are forwarded with the caller's remaining deadline, and the
 * inferer's status and message are passed back unchanged (NOT_FOUND,
 * FAILED_PRECONDITION, ...). The gateway's own Health is ready when every shard
 * has a healthy replica.
 *
 * Thread-safety: as inferer.h. */
#ifndef PSF_GATEWAY_H
#define PSF_GATEWAY_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/config/config.h"

typedef struct psf_gateway psf_gateway;

typedef struct psf_gateway_opts {
	const char *const *inferer_urls; /* one per inferer, in config order; NULL = the config's */
	const char *listen;              /* override node->listen (tests: port 0) */
	const char *metrics;             /* override node->metrics; "" = no HTTP endpoint */
	uint32_t health_interval_ms; /* override gateway_options.health_interval_ms; 0 = config */
} psf_gateway_opts;

/* psf_gateway_new connects to every inferer (they need not be up yet), starts
 * the health checks and serves on node->listen (or opts->listen). node must be
 * the gateway of cfg; cfg and node must outlive the gateway. Returns PSF_EINVAL
 * (not a gateway, no inferers) or the RPC layer's error. On success *out gets a
 * new gateway the caller frees with psf_gateway_free. */
PSF_NODISCARD psf_err psf_gateway_new(const psf_config *cfg, const psf_node_cfg *node,
    const psf_gateway_opts *opts, psf_gateway **out);

/* psf_gateway_url returns the URL clients dial (with the real port). */
const char *psf_gateway_url(const psf_gateway *gw);

/* psf_gateway_healthy returns how many inferers the last health check found ready. */
uint32_t psf_gateway_healthy(psf_gateway *gw);

/* psf_gateway_free stops accepting, lets the calls being forwarded finish (each
 * within its deadline), answers queued ones UNAVAILABLE, and frees everything.
 * NULL is fine. */
void psf_gateway_free(psf_gateway *gw);

/* psf_gateway_run is `psfleet node CONFIG --id gateway`: psf_gateway_new, then
 * serve until SIGINT/SIGTERM or an Admin/Shutdown call. */
PSF_NODISCARD psf_err psf_gateway_run(const psf_config *cfg, const psf_node_cfg *node,
    const psf_gateway_opts *opts);

#endif
