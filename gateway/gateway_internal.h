/* gateway_internal.h -- the gateway's state, shared by gateway.c (routing,
 * forwarding, lifecycle) and gateway_health.c (health checks, its Admin status).
 * Not a public API. */
#ifndef PSF_GATEWAY_INTERNAL_H
#define PSF_GATEWAY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gateway/gateway.h"
#include "lib/net/rpc_client.h"
#include "lib/net/rpc_server.h"
#include "lib/runtime/admin.h"
#include "lib/runtime/runtime.h"
#include "psfleet.pb-c.h"

#define GW_ALL_SHARDS UINT32_MAX
#define GW_MAX_REPLICAS 256

typedef enum job_kind { JOB_PREDICT, JOB_BATCH, JOB_INFO, JOB_INGEST } job_kind;

typedef struct replica replica;

/* A call waiting for, or being served by, a forwarder thread. */
typedef struct job {
	struct job *next;
	job_kind kind;
	const ProtobufCMessage *in;
	ProtobufCClosure done;
	void *call;
	uint32_t shard;
	psf_rpc_pending *p; /* Predict / ModelInfo: the first attempt, started by the handler */
	replica *r;         /* ... on this replica */
} job;

/* One inferer. healthy: its last health check answered ready (and no call
 * failed on it since). */
struct replica {
	const psf_node_cfg *node;
	psf_rpc_client *client;
	atomic_bool healthy;
	atomic_uint_fast64_t version;
	uint32_t misses; /* consecutive failed health probes (health thread only) */
};

/* A replica is marked down by a failed forward at once, but by health probes
 * only after this many misses in a row: one slow answer (a loaded machine) must
 * not take a working replica out. */
#define GW_PROBE_MISSES 2

/* gw_update_ready recomputes the gateway's readiness from its replicas' flags:
 * ready when every shard has a healthy replica. Called by the health thread and
 * whenever a failed forward takes a replica down. */
void gw_update_ready(psf_gateway *gw);

/* The replicas of one inference shard. */
typedef struct group {
	size_t *idx;
	size_t n;
	atomic_uint next; /* round robin position */
} group;

struct psf_gateway {
	const psf_config *cfg;
	const psf_node_cfg *node;
	psf_runtime *rt;
	psf_rpc_server *srv;
	Psfleet__V1__Inference_Service svc;
	psf_admin *admin;
	char url[256];
	char token[256];
	uint32_t interval_ms;
	replica *reps;
	size_t n_reps;
	group *groups; /* inference.shards of them, then one of every replica */
	uint32_t n_shards;

	/* mu guards the job queue and stopping; cv wakes the forwarders,
	 * health_cv the health thread. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t health_cv;
	job *head, *tail;
	bool stopping;
	pthread_t *forwarders;
	size_t n_forwarders;
	pthread_t health;
	bool health_started;

	psf_counter *c_forwarded, *c_failovers, *c_unavailable;
	psf_gauge *g_healthy;
};

/* The handlers; the services' INIT macros paste these prefixes onto the RPC names. */
void psf_gw_rpc_predict(Psfleet__V1__Inference_Service *svc, const Psfleet__V1__PredictRequest *in,
    Psfleet__V1__PredictReply_Closure done, void *call);
void psf_gw_rpc_predict_batch(Psfleet__V1__Inference_Service *svc,
    const Psfleet__V1__PredictBatchRequest *in, Psfleet__V1__PredictBatchReply_Closure done,
    void *call);
void psf_gw_rpc_model_info(Psfleet__V1__Inference_Service *svc,
    const Psfleet__V1__ModelInfoRequest *in, Psfleet__V1__ModelInfoReply_Closure done, void *call);
void psf_gw_rpc_ingest(Psfleet__V1__Inference_Service *svc, const Psfleet__V1__IngestRequest *in,
    Psfleet__V1__IngestReply_Closure done, void *call);

/* gw_forward_ingest answers an Ingest job (gateway_ingest.c): each row goes to
 * every replica of its symbol's shard, and the replies are merged per row. */
void gw_forward_ingest(psf_gateway *gw, job *j);

/* gw_remaining_ms is what is left of a deadline (psf_now_ns), in ms. */
uint32_t gw_remaining_ms(uint64_t deadline_ns);

/* gw_admin_open adds the Admin service, with the gateway's part of it
 * (gateway_health.c), to gw->srv; gw->admin is freed after gw->srv. */
PSF_NODISCARD psf_err gw_admin_open(psf_gateway *gw);

/* gw_health_main is the health thread: check_all every interval until stopping. */
void *gw_health_main(void *arg);

#endif
