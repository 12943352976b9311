/* libFuzzer target: every request through the real servers. One process runs a
 * ps, an inferer and a gateway on inproc:// (real LMDB store, real handlers, real
 * RPC dispatch); each input is sent to one of them:
 *   data[0] picks a method (ParameterServer, Inference, Admin on each node), the
 *   rest is that method's serialized request message, sent by psfleet's client;
 *   or data[0] picks "raw" and the rest is sent as the whole Request envelope on a
 *   bare req0 socket.
 * Findings are crashes, sanitizer reports, and a reply that is not a valid Reply
 * envelope. Admin/Shutdown is left out (it would only stop the in-process nodes).
 *
 * PSF_FUZZ_SEEDS=DIR ./fuzz_rpc writes a seed corpus (one valid request per
 * method, from a real model and data set) into DIR and exits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "gateway/gateway.h"
#include "inferer/inferer.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/data/data.h"
#include "lib/data/datagen.h"
#include "lib/data/features.h"
#include "lib/model/model.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "lib/net/wire.h"
#include "ps/ps.h"
#include "trainer/ps_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

enum { T_PS, T_INF, T_GW, N_TARGETS };

static const struct {
	int target;
	const char *method; /* NULL: raw envelope */
} methods[] = {
    {T_PS, PSF_M_REGISTER},
    {T_PS, PSF_M_PULL},
    {T_PS, PSF_M_PUSH},
    {T_PS, PSF_M_CLOCK},
    {T_PS, PSF_M_SNAPSHOT},
    {T_PS, PSF_M_STATS},
    {T_PS, PSF_M_REDUCE},
    {T_PS, PSF_M_REPORT},
    {T_PS, PSF_M_PUSH_PULL},
    {T_PS, PSF_M_HEALTH},
    {T_PS, PSF_M_STATUS},
    {T_INF, PSF_M_PREDICT},
    {T_INF, PSF_M_PREDICT_BATCH},
    {T_INF, PSF_M_MODEL_INFO},
    {T_INF, PSF_M_HEALTH},
    {T_INF, PSF_M_STATUS},
    {T_GW, PSF_M_PREDICT},
    {T_GW, PSF_M_PREDICT_BATCH},
    {T_GW, PSF_M_MODEL_INFO},
    {T_GW, PSF_M_HEALTH},
    {T_GW, PSF_M_STATUS},
    {T_PS, NULL},
    {T_INF, NULL},
    {T_GW, NULL},
};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

static char dir[64];
static psf_config *cfg;
static psf_ps *ps;
static psf_inferer *inf;
static psf_gateway *gw;
static psf_rpc_client *clients[N_TARGETS];
static nng_socket raw[N_TARGETS];

static void
die(const char *what)
{
	fprintf(stderr, "fuzz_rpc: setup failed: %s\n", what);
	exit(1);
}

static void
cleanup(void)
{
	for (int i = 0; i < N_TARGETS; i++) {
		psf_rpc_client_close(clients[i]);
		nng_close(raw[i]);
	}
	psf_gateway_free(gw);
	psf_inferer_free(inf);
	psf_ps_free(ps);
	psf_config_free(cfg);
	if (dir[0] != '\0' && psf_rm_rf(dir) != PSF_OK)
		fprintf(stderr, "fuzz_rpc: cannot remove %s\n", dir);
}

static void
load_config(void)
{
	char text[2048], err[256], csv[128];
	psf_datagen_cfg g = {6, 120, 5, 0};

	snprintf(csv, sizeof(csv), "%s/data.csv", dir);
	if (psf_datagen_write(&g, csv, err, sizeof(err)) != PSF_OK)
		die(err);
	/* Unique inproc names: several fuzzing jobs may share a machine, not a
	 * process, but keep them distinct anyway. */
	snprintf(text, sizeof(text),
	    "name: fuzz\nseed: 3\nrun_dir: %s\nnodes:\n"
	    "  ps:\n    - {id: ps0, listen: \"inproc://psf-fuzz-ps-%d\"}\n"
	    "  trainers:\n    - {id: trainer-0}\n    - {id: trainer-1}\n"
	    "  inferers:\n    - {id: inferer-0, listen: \"inproc://psf-fuzz-inf-%d\"}\n"
	    "  gateway: {id: gateway, listen: \"inproc://psf-fuzz-gw-%d\"}\n"
	    "data: {path: %s}\n"
	    "features: [\"lag:0\", \"return:1\", \"sma:5\"]\n"
	    "target: next_return\n"
	    "model: {kind: mlp, hidden: [4], embedding_dim: 2, symbol_bias: true, chunk_floats: 8}\n"
	    "optimizer: {kind: adam, learning_rate: 0.01}\n"
	    "consistency: {mode: async}\n"
	    "durability: {mode: none}\n"
	    "limits: {max_keys_per_request: 4096, request_timeout_ms: 200, rpc_workers: 8}\n"
	    "inference: {refresh_ms: 200, history_days: 32}\n",
	    dir, (int)getpid(), (int)getpid(), (int)getpid(), csv);
	if (psf_config_parse("fuzz.yaml", text, strlen(text), err, sizeof(err), &cfg) != PSF_OK)
		die(err);
}

/* share_stats gives the ps the feature statistics the trainers reduce at start-up
 * (mean 0, sd 1 for every feature and the target), so the inferer gets a model to
 * serve and the predict paths are fuzzed too. */
static void
share_stats(void)
{
	const char *urls[1] = {psf_ps_url(ps)};
	psf_ps_client_opts o = {.ps_urls = urls, .retry_ms = 5000};
	size_t n = psf_features_stats_len(cfg->n_features);
	double *v = calloc(n, sizeof(double));
	psf_model *model = NULL;
	psf_ps_client *w = NULL;

	if (v == NULL)
		die("out of memory");
	for (size_t j = 0; j < n; j += 3) { /* sum 0, sum of squares 2, count 2 */
		v[j + 1] = 2;
		v[j + 2] = 2;
	}
	if (psf_model_new(&cfg->model, (uint32_t)cfg->n_features, cfg->target, cfg->seed, &model) !=
	        PSF_OK ||
	    psf_ps_client_open(cfg, model, "trainer-0", &o, &w) != PSF_OK ||
	    psf_ps_client_reduce(w, PSF_REDUCE_FEATURE_STATS, 1, v, n) != PSF_OK)
		die("feature statistics");
	psf_ps_client_close(w);
	psf_model_free(model);
	free(v);
}

static void
start_nodes(void)
{
	psf_ps_opts po = {false, NULL, "", NULL};
	psf_inferer_opts io = {NULL, NULL, "", 200};
	psf_gateway_opts go = {NULL, NULL, "", 200};
	const char *urls[N_TARGETS];
	uint64_t v;

	if (psf_ps_new(cfg, psf_config_role_node(cfg, PSF_ROLE_PS, 0), &po, &ps) != PSF_OK)
		die("ps");
	share_stats();
	if (psf_inferer_new(cfg, psf_config_role_node(cfg, PSF_ROLE_INFERER, 0), &io, &inf) !=
	    PSF_OK)
		die("inferer");
	if (psf_gateway_new(cfg, psf_config_role_node(cfg, PSF_ROLE_GATEWAY, 0), &go, &gw) !=
	    PSF_OK)
		die("gateway");
	for (int i = 0; i < 50 && psf_inferer_refresh(inf, &v) != PSF_OK; i++)
		psf_sleep_ms(100);
	if (psf_inferer_refresh(inf, &v) != PSF_OK)
		die("the inferer has no model to serve");
	urls[T_PS] = psf_ps_url(ps);
	urls[T_INF] = psf_inferer_url(inf);
	urls[T_GW] = psf_gateway_url(gw);
	for (int i = 0; i < N_TARGETS; i++) {
		psf_rpc_client_opts co = {.timeout_ms = 200};
		if (psf_rpc_client_open(urls[i], &co, &clients[i]) != PSF_OK)
			die("client");
		if (nng_req0_open(&raw[i]) != 0 || nng_dial(raw[i], urls[i], NULL, 0) != 0)
			die("raw socket");
		nng_socket_set_ms(raw[i], NNG_OPT_RECVTIMEO, 200);
		nng_socket_set_ms(raw[i], NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	}
}

/* ---------------------------------------------------------------- seeds */

static void
write_seed(const char *out, const char *name, int sel, const ProtobufCMessage *m)
{
	char file[512];
	size_t len = m != NULL ? protobuf_c_message_get_packed_size(m) : 0;
	uint8_t *buf = malloc(len + 1);
	FILE *f;

	buf[0] = (uint8_t)sel;
	if (m != NULL)
		protobuf_c_message_pack(m, buf + 1);
	snprintf(file, sizeof(file), "%s/%02d-%s", out, sel, name);
	if ((f = fopen(file, "wb")) == NULL || fwrite(buf, 1, len + 1, f) != len + 1 ||
	    fclose(f) != 0)
		die(file);
	free(buf);
}

static int
sel_of(int target, const char *method)
{
	for (size_t i = 0; i < N_METHODS; i++)
		if (methods[i].target == target &&
		    (method == NULL
		            ? methods[i].method == NULL
		            : methods[i].method != NULL && strcmp(methods[i].method, method) == 0))
			return (int)i;
	die(method);
	return -1;
}

static void
write_raw_seed(const char *out, const char *name, int target, const char *method,
    const ProtobufCMessage *m)
{
	char file[512];
	uint8_t head[PSF_WIRE_HEAD_MAX];
	size_t len = protobuf_c_message_get_packed_size(m);
	size_t n = psf_wire_request_head(head, method, 77, 200, NULL, 0, len);
	uint8_t *buf = malloc(1 + n + len);
	FILE *f;

	buf[0] = (uint8_t)sel_of(target, NULL);
	memcpy(buf + 1, head, n);
	protobuf_c_message_pack(m, buf + 1 + n);
	snprintf(file, sizeof(file), "%s/raw-%s", out, name);
	if ((f = fopen(file, "wb")) == NULL || fwrite(buf, 1, 1 + n + len, f) != 1 + n + len ||
	    fclose(f) != 0)
		die(file);
	free(buf);
}

static void
write_seeds(const char *out)
{
	psf_model *model;
	uint64_t keys[256];
	uint32_t lens[256];
	size_t n_keys = 0, n_floats = 0;
	float *grads;
	char csv[128], err[256];
	psf_dataset *ds;
	const char *sym;
	double rvals[3] = {1, 2, 3};
	Psfleet__V1__RegisterRequest reg = PSFLEET__V1__REGISTER_REQUEST__INIT;
	Psfleet__V1__PullRequest pull = PSFLEET__V1__PULL_REQUEST__INIT;
	Psfleet__V1__PushRequest push = PSFLEET__V1__PUSH_REQUEST__INIT;
	Psfleet__V1__ClockRequest clk = PSFLEET__V1__CLOCK_REQUEST__INIT;
	Psfleet__V1__SnapshotRequest snap = PSFLEET__V1__SNAPSHOT_REQUEST__INIT;
	Psfleet__V1__StatsRequest stats = PSFLEET__V1__STATS_REQUEST__INIT;
	Psfleet__V1__ReduceRequest red = PSFLEET__V1__REDUCE_REQUEST__INIT;
	Psfleet__V1__MetricsReport rep = PSFLEET__V1__METRICS_REPORT__INIT;
	Psfleet__V1__HealthRequest hl = PSFLEET__V1__HEALTH_REQUEST__INIT;
	Psfleet__V1__StatusRequest stt = PSFLEET__V1__STATUS_REQUEST__INIT;
	Psfleet__V1__PredictRequest pr = PSFLEET__V1__PREDICT_REQUEST__INIT, pr2;
	Psfleet__V1__PredictRequest *items[2];
	Psfleet__V1__PredictBatchRequest batch = PSFLEET__V1__PREDICT_BATCH_REQUEST__INIT;
	Psfleet__V1__ModelInfoRequest mi = PSFLEET__V1__MODEL_INFO_REQUEST__INIT;
	Psfleet__V1__Bar bar = PSFLEET__V1__BAR__INIT, *bars[1] = {&bar};

	if (psf_model_new(&cfg->model, (uint32_t)cfg->n_features, cfg->target, cfg->seed, &model) !=
	        PSF_OK ||
	    psf_model_dense_keys(model, keys, lens, 256, &n_keys) != PSF_OK)
		die("model");
	for (size_t i = 0; i < n_keys; i++)
		n_floats += lens[i];
	grads = calloc(n_floats, sizeof(float));
	for (size_t i = 0; i < n_floats; i++)
		grads[i] = 0.01f * (float)(i % 7);
	snprintf(csv, sizeof(csv), "%s/data.csv", dir);
	if (psf_data_load(csv, NULL, err, sizeof(err), &ds) != PSF_OK)
		die(err);
	sym = psf_dataset_series(ds, 0)->symbol;

	reg.worker = "trainer-0";
	reg.num_workers = 2;
	write_seed(out, "register", sel_of(T_PS, methods[0].method), &reg.base);
	pull.worker = "trainer-0";
	pull.keys = keys;
	pull.n_keys = n_keys;
	write_seed(out, "pull", sel_of(T_PS, methods[1].method), &pull.base);
	push.worker = "trainer-0";
	push.seq = 1;
	push.keys = keys;
	push.n_keys = n_keys;
	push.lens = lens;
	push.n_lens = n_keys;
	push.values.data = (uint8_t *)grads;
	push.values.len = n_floats * sizeof(float);
	push.n_samples = 32;
	push.loss = 0.5;
	write_seed(out, "push", sel_of(T_PS, methods[2].method), &push.base);
	clk.worker = "trainer-0";
	clk.clock = 1;
	write_seed(out, "clock", sel_of(T_PS, methods[3].method), &clk.base);
	clk.done = 1;
	write_seed(out, "clock-done", sel_of(T_PS, methods[3].method), &clk.base);
	snap.max_bytes = 64;
	write_seed(out, "snapshot", sel_of(T_PS, methods[4].method), &snap.base);
	write_seed(out, "stats", sel_of(T_PS, methods[5].method), &stats.base);
	red.worker = "trainer-0";
	red.name = "mean";
	red.expected = 1;
	red.values = rvals;
	red.n_values = 3;
	write_seed(out, "reduce", sel_of(T_PS, methods[6].method), &red.base);
	rep.worker = "trainer-0";
	rep.epoch = 1;
	rep.step = 10;
	rep.test_n = 5;
	write_seed(out, "report", sel_of(T_PS, methods[7].method), &rep.base);
	for (int t = 0; t < N_TARGETS; t++) {
		char name[64];
		snprintf(name, sizeof(name), "health-%d", t);
		write_seed(out, name, sel_of(t, PSF_M_HEALTH), &hl.base);
		snprintf(name, sizeof(name), "status-%d", t);
		write_seed(out, name, sel_of(t, PSF_M_STATUS), &stt.base);
	}
	pr.symbol = (char *)sym;
	pr2 = pr;
	pr2.as_of = "2020-03-02";
	bar.date = "2099-01-05";
	bar.close = 101.5;
	bar.open = 100;
	bar.high = 102;
	bar.low = 99;
	bar.volume = 1e6;
	pr2.recent = bars;
	pr2.n_recent = 1;
	items[0] = &pr;
	items[1] = &pr2;
	batch.items = items;
	batch.n_items = 2;
	for (int t = T_INF; t <= T_GW; t++) {
		char name[64];
		snprintf(name, sizeof(name), "predict-%d", t);
		write_seed(out, name, sel_of(t, PSF_M_PREDICT), &pr.base);
		snprintf(name, sizeof(name), "predict-recent-%d", t);
		write_seed(out, name, sel_of(t, PSF_M_PREDICT), &pr2.base);
		snprintf(name, sizeof(name), "batch-%d", t);
		write_seed(out, name, sel_of(t, PSF_M_PREDICT_BATCH), &batch.base);
		snprintf(name, sizeof(name), "modelinfo-%d", t);
		write_seed(out, name, sel_of(t, PSF_M_MODEL_INFO), &mi.base);
	}
	write_raw_seed(out, "ps-pull", T_PS, PSF_M_PULL, &pull.base);
	write_raw_seed(out, "ps-push", T_PS, PSF_M_PUSH, &push.base);
	write_raw_seed(out, "inf-predict", T_INF, PSF_M_PREDICT, &pr.base);
	write_raw_seed(out, "gw-batch", T_GW, PSF_M_PREDICT_BATCH, &batch.base);
	psf_dataset_free(ds);
	free(grads);
	psf_model_free(model);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seeds = getenv("PSF_FUZZ_SEEDS");
	FILE *null = fopen("/dev/null", "w");

	(void)argc;
	(void)argv;
	psf_log_setup(PSF_LOG_ERR, "fuzz");
	if (null != NULL && getenv("PSF_FUZZ_VERBOSE") == NULL)
		psf_log_set_stream(null); /* handlers log rejected requests; keep it quiet */
	snprintf(dir, sizeof(dir), "/tmp/psf-fuzz-rpc-XXXXXX");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp");
	atexit(cleanup);
	load_config();
	if (seeds != NULL) {
		write_seeds(seeds);
		exit(0);
	}
	start_nodes();
	return 0;
}

static void
send_raw(int target, const uint8_t *data, size_t size)
{
	nng_msg *m;
	psf_wire_reply rep;

	if (nng_msg_alloc(&m, size) != 0)
		return;
	if (size > 0)
		memcpy(nng_msg_body(m), data, size);
	if (nng_sendmsg(raw[target], m, 0) != 0) {
		nng_msg_free(m);
		return;
	}
	if (nng_recvmsg(raw[target], &m, 0) != 0)
		return; /* a parked call (its deadline came from the input) */
	if (psf_wire_decode_reply(nng_msg_body(m), nng_msg_len(m), &rep) != PSF_OK)
		abort(); /* the server must always answer with a Reply envelope */
	nng_msg_free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t sel;
	psf_rpc_pending *p;
	psf_rpc_status st;
	const uint8_t *out;
	size_t out_len;
	psf_rpc_call_opts o = {100, 0, 0};

	if (size == 0)
		return 0;
	sel = data[0] % N_METHODS;
	if (methods[sel].method == NULL) {
		send_raw(methods[sel].target, data + 1, size - 1);
		return 0;
	}
	if (psf_rpc_call_start_raw(clients[methods[sel].target], methods[sel].method, data + 1,
	        size - 1, &o, &p) != PSF_OK)
		return 0;
	(void)psf_rpc_pending_wait_raw(p, &out, &out_len, &st);
	psf_rpc_pending_free(p);
	return 0;
}
