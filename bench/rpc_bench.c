/* rpc_bench -- the psfleet RPC layer against raw NNG req0/rep0, in one process.
 *
 * For each transport (ipc:// in a temp dir, tcp://127.0.0.1:0) three servers run
 * side by side, each with SERVER_CTXS contexts:
 *   raw  a plain rep0 server (context + aio per worker) that answers a 16-byte
 *        message with a 16-byte message, swallows uploads, and serves downloads
 *        by copying the asked number of bytes into a fresh message;
 *   rpc  psf_rpc_server with generated Admin and ParameterServer services
 *        (Health: small reply; Push: unpacked PushRequest; Pull: PullReply whose
 *        `values` are the asked number of bytes, taken from PullRequest.clock);
 *   zc   psf_rpc_server whose ParameterServer/Push is a raw (zero-copy) handler
 *        registered with psf_rpc_server_add_raw.
 * The cases (rtt_1c, rtt_4c, up_*, down_*) are measured for each implementation,
 * interleaved in rotating order inside every repetition, so machine noise hits
 * all of them alike. Figures are medians over the repetitions; ratios are medians
 * of the per-repetition ratios (rpc / raw of the same repetition).
 *
 * Output (DESIGN.md §10): `name value unit` lines, then `ratio_<name> value`.
 * Throughput is payload bytes per second, MB = 10^6 bytes. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "bench/bench_util.h"
#include "bench/rpc_bench_svc.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "lib/net/rpc_server.h"
#include "lib/net/wire.h"

#define SERVER_CTXS 16
#define MAX_THREADS 4
#define MAX_REPS 32
#define MAX_MSG (2 * PSF_RPC_DEFAULT_MAX_MSG)
#define RAW_TIMEOUT_MS 30000

typedef enum op_kind { OP_RTT, OP_UP, OP_DOWN } op_kind;

/* IM_RPC is the fast psfleet path for the case: the generated Health stub for
 * round trips, call_start_raw to the zero-copy Push handler for uploads, and
 * call_start + pending_wait_raw (no unpack) for downloads. IM_GEN is the fully
 * generic path: psf_rpc_client_call with generated messages on both ends. */
typedef enum impl { IM_RAW, IM_RPC, IM_GEN, IM_COUNT } impl;

static const char *impl_names[IM_COUNT] = {"raw", "rpc", "rpc_generic"};

typedef struct bench_case {
	const char *name;
	op_kind op;
	int threads;
	size_t bytes;
	uint32_t calls_full;
	uint32_t calls_quick;
	int n_impl; /* IM_RAW .. n_impl-1 apply */
} bench_case;

static const bench_case cases[] = {
    {"rtt_1c", OP_RTT, 1, 0, 4000, 500, 2},
    {"rtt_4c", OP_RTT, 4, 0, 4000, 500, 2},
    {"up_1mib", OP_UP, 1, MIB, 300, 20, 3},
    {"up_16mib", OP_UP, 1, BIG, 24, 4, 3},
    {"down_1mib", OP_DOWN, 1, MIB, 300, 20, 3},
    {"down_16mib", OP_DOWN, 1, BIG, 24, 4, 3},
};
#define N_CASES PSF_ARRAY_LEN(cases)

/* One measured run. */
typedef struct sample {
	double rate; /* calls/s for OP_RTT, MB/s otherwise */
	double p50_us;
	double p99_us;
	double cpu_us; /* process CPU time (user + system, client + server) per call */
} sample;

/* ---------------------------------------------------------------- environment */

/* One transport's servers and clients. The services live here because the
 * servers keep pointers to them. */
typedef struct bench_env {
	const char *tr;
	psf_bench_raw_server *raw;
	psf_rpc_server *rpc;
	psf_rpc_server *zc;
	nng_socket raw_sock; /* shared by raw client threads (a context each) */
	psf_rpc_client *rpc_c;
	psf_rpc_client *zc_c;
	Psfleet__V1__Admin_Service admin;
	Psfleet__V1__ParameterServer_Service ps;
	const uint8_t *buf;   /* BIG bytes: upload values, download source */
	uint8_t *push_ser[2]; /* serialized PushRequest with MIB / BIG values */
	size_t push_len[2];
} bench_env;

static psf_err
rpc_server_open(bench_env *e, const char *url, int zero_copy, char *bound, size_t bound_len,
    psf_rpc_server **out)
{
	psf_rpc_server_opts o = {.workers = SERVER_CTXS};
	psf_rpc_server *s = NULL;
	psf_err err;

	if ((err = psf_rpc_server_new(&o, &s)) != PSF_OK)
		return err;
	if (zero_copy)
		err = psf_rpc_server_add_raw(s, PSF_M_PUSH, &psfleet__v1__push_reply__descriptor,
		    rpc_bench_zc_push, e);
	else if ((err = psf_rpc_server_add_service(s, &e->admin.base, e)) == PSF_OK)
		err = psf_rpc_server_add_service(s, &e->ps.base, (void *)e->buf);
	if (err == PSF_OK)
		err = psf_rpc_server_listen(s, url, bound, bound_len);
	if (err == PSF_OK)
		err = psf_rpc_server_start(s);
	if (err != PSF_OK) {
		psf_rpc_server_free(s);
		return err;
	}
	*out = s;
	return PSF_OK;
}

static psf_err
serialize_push(const uint8_t *values, size_t len, uint8_t **out, size_t *len_out)
{
	Psfleet__V1__PushRequest req = PSFLEET__V1__PUSH_REQUEST__INIT;
	uint64_t key = 1;
	uint32_t n = (uint32_t)(len / sizeof(float));
	uint8_t *ser;
	size_t n_ser;

	req.worker = "bench";
	req.seq = 1;
	req.n_keys = 1;
	req.keys = &key;
	req.n_lens = 1;
	req.lens = &n;
	req.values.data = (uint8_t *)values;
	req.values.len = len;
	n_ser = protobuf_c_message_get_packed_size(&req.base);
	if ((ser = malloc(n_ser)) == NULL)
		return PSF_ENOMEM;
	protobuf_c_message_pack(&req.base, ser);
	*out = ser;
	*len_out = n_ser;
	return PSF_OK;
}

static void
env_close(bench_env *e)
{
	if (e == NULL)
		return;
	psf_rpc_client_close(e->rpc_c);
	psf_rpc_client_close(e->zc_c);
	if (nng_socket_id(e->raw_sock) > 0)
		nng_close(e->raw_sock);
	psf_rpc_server_free(e->rpc);
	psf_rpc_server_free(e->zc);
	psf_bench_raw_server_free(e->raw);
	free(e->push_ser[0]);
	free(e->push_ser[1]);
	free(e);
}

/* env_open starts the three servers and their clients: on ipc:// sockets in dir,
 * or on tcp://127.0.0.1 ephemeral ports when dir is NULL. */
static psf_err
env_open(const char *tr, const char *dir, const uint8_t *buf, bench_env **out)
{
	/* Same REQ settings as psfleet's client: no automatic resend, so neither side
	 * arms a resend timer per request. */
	psf_bench_raw_dial_opts dial = {MAX_MSG, RAW_TIMEOUT_MS, true};
	char url[3][256], bound[3][256];
	const char *names[3] = {"raw", "rpc", "zc"};
	bench_env *e = NULL;
	psf_err err = PSF_ENOMEM;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		goto out;
	e->tr = tr;
	rpc_bench_services_init(&e->admin, &e->ps);
	e->buf = buf;
	for (int i = 0; i < 3; i++) {
		if (dir != NULL)
			snprintf(url[i], sizeof(url[i]), "ipc://%s/%s.sock", dir, names[i]);
		else
			snprintf(url[i], sizeof(url[i]), "tcp://127.0.0.1:0");
	}
	if ((err = serialize_push(buf, MIB, &e->push_ser[0], &e->push_len[0])) != PSF_OK ||
	    (err = serialize_push(buf, BIG, &e->push_ser[1], &e->push_len[1])) != PSF_OK ||
	    (err = psf_bench_raw_server_open(url[0], buf, BIG, MAX_MSG, &e->raw)) != PSF_OK ||
	    (err = rpc_server_open(e, url[1], 0, bound[1], sizeof(bound[1]), &e->rpc)) != PSF_OK ||
	    (err = rpc_server_open(e, url[2], 1, bound[2], sizeof(bound[2]), &e->zc)) != PSF_OK ||
	    (err = psf_rpc_client_open(bound[1], NULL, &e->rpc_c)) != PSF_OK ||
	    (err = psf_rpc_client_open(bound[2], NULL, &e->zc_c)) != PSF_OK ||
	    (err = psf_bench_raw_dial(psf_bench_raw_server_url(e->raw), &dial, &e->raw_sock)) !=
	        PSF_OK)
		goto out;
	*out = e;
	e = NULL;
	err = PSF_OK;
out:
	env_close(e);
	return err;
}

/* ---------------------------------------------------------------- client calls */

/* Per-thread client state: raw calls from several threads need a context each. */
typedef struct client {
	bench_env *e;
	psf_bench_raw_client raw;
	uint64_t seq;
} client;

static psf_err
client_init(bench_env *e, int use_ctx, client *c)
{
	memset(c, 0, sizeof(*c));
	c->e = e;
	return psf_bench_raw_client_init(&c->raw, e->raw_sock, use_ctx, RAW_TIMEOUT_MS);
}

static psf_err
rpc_health(client *c)
{
	Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	psf_err err;

	err = psf_rpc_client_call(c->e->rpc_c, PSF_M_HEALTH, &req.base,
	    &psfleet__v1__health_reply__descriptor, NULL, &reply, NULL);
	if (err != PSF_OK)
		return err;
	err = ((Psfleet__V1__HealthReply *)reply)->ready ? PSF_OK : PSF_EPROTO;
	protobuf_c_message_free_unpacked(reply, NULL);
	return err;
}

/* rpc_push_zc: the prebuilt PushRequest through call_start_raw to the zero-copy
 * handler; the reply's message is only borrowed. */
static psf_err
rpc_push_zc(client *c, size_t bytes)
{
	int big = bytes == BIG;
	psf_rpc_pending *p = NULL;
	const uint8_t *pl;
	size_t len;
	psf_err err;

	err = psf_rpc_call_start_raw(c->e->zc_c, PSF_M_PUSH, c->e->push_ser[big],
	    c->e->push_len[big], NULL, &p);
	if (err != PSF_OK)
		return err;
	err = psf_rpc_pending_wait_raw(p, &pl, &len, NULL);
	psf_rpc_pending_free(p);
	return err;
}

/* rpc_push_generic: a generated PushRequest, unpacked by the server (values copied
 * by protobuf-c), the PushReply unpacked by the client. */
static psf_err
rpc_push_generic(client *c, size_t bytes)
{
	Psfleet__V1__PushRequest req = PSFLEET__V1__PUSH_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	uint64_t key = 1;
	uint32_t n = (uint32_t)(bytes / sizeof(float));
	psf_err err;

	req.worker = "bench";
	req.seq = ++c->seq;
	req.n_keys = 1;
	req.keys = &key;
	req.n_lens = 1;
	req.lens = &n;
	req.values.data = (uint8_t *)c->e->buf;
	req.values.len = bytes;
	err = psf_rpc_client_call(c->e->rpc_c, PSF_M_PUSH, &req.base,
	    &psfleet__v1__push_reply__descriptor, NULL, &reply, NULL);
	if (err != PSF_OK)
		return err;
	err = ((Psfleet__V1__PushReply *)reply)->staleness == (int64_t)bytes ? PSF_OK : PSF_EPROTO;
	protobuf_c_message_free_unpacked(reply, NULL);
	return err;
}

/* values_len finds PullReply.values in a serialized PullReply without copying. */
static size_t
values_len(const uint8_t *pl, size_t len)
{
	psf_wire_reader rd;
	psf_wire_field f;

	psf_wire_reader_init(&rd, pl, len);
	while (psf_wire_next(&rd, &f) == PSF_OK) {
		if (f.number == 4 && f.type == 2)
			return f.len;
	}
	return 0;
}

static psf_err
rpc_pull(client *c, size_t bytes, int generic)
{
	Psfleet__V1__PullRequest req = PSFLEET__V1__PULL_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	psf_rpc_pending *p = NULL;
	const uint8_t *pl;
	size_t len;
	psf_err err;

	req.worker = "bench";
	req.clock = (int64_t)bytes;
	if (generic) {
		err = psf_rpc_client_call(c->e->rpc_c, PSF_M_PULL, &req.base,
		    &psfleet__v1__pull_reply__descriptor, NULL, &reply, NULL);
		if (err != PSF_OK)
			return err;
		err = ((Psfleet__V1__PullReply *)reply)->values.len == bytes ? PSF_OK : PSF_EPROTO;
		protobuf_c_message_free_unpacked(reply, NULL);
		return err;
	}
	if ((err = psf_rpc_call_start(c->e->rpc_c, PSF_M_PULL, &req.base, NULL, &p)) != PSF_OK)
		return err;
	err = psf_rpc_pending_wait_raw(p, &pl, &len, NULL);
	if (err == PSF_OK && values_len(pl, len) != bytes)
		err = PSF_EPROTO;
	psf_rpc_pending_free(p);
	return err;
}

static psf_err
one_call(client *c, impl im, const bench_case *bc)
{
	if (im == IM_RAW)
		return psf_bench_raw_call(&c->raw, c->e->buf, bc->op == OP_UP ? bc->bytes : 0,
		    bc->op == OP_DOWN ? bc->bytes : 0);
	switch (bc->op) {
	case OP_RTT: return rpc_health(c);
	case OP_UP:
		return im == IM_RPC ? rpc_push_zc(c, bc->bytes) : rpc_push_generic(c, bc->bytes);
	default: return rpc_pull(c, bc->bytes, im == IM_GEN);
	}
}

/* ---------------------------------------------------------------- measurement */

typedef struct runner {
	bench_env *e;
	const bench_case *bc;
	impl im;
	int use_ctx;
	uint32_t calls;
	uint32_t warmup;
	uint64_t *lat; /* calls entries */
	pthread_barrier_t *bar;
	psf_err err;
} runner;

static void *
runner_main(void *arg)
{
	runner *r = arg;
	client c;
	uint32_t i;

	r->err = client_init(r->e, r->use_ctx, &c);
	for (i = 0; i < r->warmup && r->err == PSF_OK; i++)
		r->err = one_call(&c, r->im, r->bc);
	pthread_barrier_wait(r->bar);
	for (i = 0; i < r->calls && r->err == PSF_OK; i++) {
		uint64_t t0 = psf_now_ns();
		r->err = one_call(&c, r->im, r->bc);
		r->lat[i] = psf_now_ns() - t0;
	}
	psf_bench_raw_client_fini(&c.raw);
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* measure runs calls calls of one case on bc->threads threads. */
static psf_err
measure(bench_env *e, const bench_case *bc, impl im, uint32_t calls, sample *out)
{
	pthread_t th[MAX_THREADS];
	runner r[MAX_THREADS];
	pthread_barrier_t bar;
	uint32_t per = calls / (uint32_t)bc->threads;
	uint64_t *lat, t0, t1, c0, c1;
	psf_err err = PSF_OK;
	int n = bc->threads;

	if ((lat = calloc((size_t)per * (size_t)n, sizeof(*lat))) == NULL)
		return PSF_ENOMEM;
	pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		r[i] = (runner){e, bc, im, n > 1, per, per / 20 + 2, lat + (size_t)i * per, &bar,
		    PSF_OK};
		if (pthread_create(&th[i], NULL, runner_main, &r[i]) != 0) {
			fprintf(stderr, "rpc_bench: pthread_create failed\n");
			exit(1); /* the barrier would never open */
		}
	}
	pthread_barrier_wait(&bar);
	c0 = psf_bench_cpu_ns();
	t0 = psf_now_ns();
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		if (r[i].err != PSF_OK)
			err = r[i].err;
	}
	t1 = psf_now_ns();
	c1 = psf_bench_cpu_ns();
	pthread_barrier_destroy(&bar);
	if (err == PSF_OK) {
		size_t total = (size_t)per * (size_t)n;
		double secs = (double)(t1 - t0) / 1e9;
		qsort(lat, total, sizeof(*lat), cmp_u64);
		out->rate = bc->op == OP_RTT ? (double)total / secs
		                             : (double)total * (double)bc->bytes / secs / 1e6;
		out->p50_us = (double)lat[total / 2] / 1e3;
		out->p99_us = (double)lat[total * 99 / 100] / 1e3;
		out->cpu_us = (double)(c1 - c0) / 1e3 / (double)total;
	}
	free(lat);
	return err;
}

/* ---------------------------------------------------------------- main */

typedef struct opts {
	int quick;
	int reps;
	const char *only;  /* "ipc", "tcp" or NULL: one transport */
	const char *bcase; /* NULL or one case name (for profiling) */
	int only_impl;     /* -1 or one implementation (for profiling) */
} opts;

typedef struct results {
	sample s[N_CASES][IM_COUNT][MAX_REPS];
} results;

static int
case_selected(const opts *o, const bench_case *bc)
{
	return o->bcase == NULL || strcmp(o->bcase, bc->name) == 0;
}

static psf_err
run_transport(bench_env *e, const opts *o, results *res)
{
	psf_err err;

	for (int rep = 0; rep < o->reps; rep++) {
		for (size_t ci = 0; ci < N_CASES; ci++) {
			const bench_case *bc = &cases[ci];
			uint32_t calls = o->quick ? bc->calls_quick : bc->calls_full;
			if (!case_selected(o, bc))
				continue;
			/* rotate which implementation goes first */
			for (int k = 0; k < bc->n_impl; k++) {
				impl im = (impl)((k + rep + (int)ci) % bc->n_impl);
				if (o->only_impl >= 0 && (int)im != o->only_impl)
					continue;
				err = measure(e, bc, im, calls, &res->s[ci][im][rep]);
				if (err != PSF_OK) {
					fprintf(stderr, "rpc_bench: %s %s %s: %s\n", e->tr,
					    impl_names[im], bc->name, psf_strerror(err));
					return err;
				}
			}
		}
	}
	return PSF_OK;
}

static void
print_results(const char *tr, const opts *o, results *res)
{
	size_t n = (size_t)o->reps;
	double v[MAX_REPS];

	for (size_t ci = 0; ci < N_CASES; ci++) {
		const bench_case *bc = &cases[ci];
		if (!case_selected(o, bc))
			continue;
		for (int im = 0; im < bc->n_impl; im++) {
			const sample *s = res->s[ci][im];
			if (o->only_impl >= 0 && im != o->only_impl)
				continue;
			for (int r = 0; r < o->reps; r++)
				v[r] = s[r].rate;
			printf("%s_%s_%s %.1f %s\n", tr, impl_names[im], bc->name,
			    psf_bench_median(v, n), bc->op == OP_RTT ? "rt/s" : "MB/s");
			for (int r = 0; r < o->reps; r++)
				v[r] = s[r].p50_us;
			printf("%s_%s_%s_p50 %.1f us\n", tr, impl_names[im], bc->name,
			    psf_bench_median(v, n));
			for (int r = 0; r < o->reps; r++)
				v[r] = s[r].p99_us;
			printf("%s_%s_%s_p99 %.1f us\n", tr, impl_names[im], bc->name,
			    psf_bench_median(v, n));
			for (int r = 0; r < o->reps; r++)
				v[r] = s[r].cpu_us;
			printf("%s_%s_%s_cpu %.1f us\n", tr, impl_names[im], bc->name,
			    psf_bench_median(v, n));
		}
	}
	fflush(stdout);
}

/* The ratio lines: name, case, implementation compared with raw, and whether the
 * ratio is of CPU time per call (raw / rpc, so that 1 is parity and less is worse,
 * like the rate ratios). CPU time is far less disturbed by other tenants. */
static const struct {
	const char *name;
	const char *bcase;
	impl im;
	int cpu;
} ratios[] = {
    {"rpc_rtt_vs_raw", "rtt_1c", IM_RPC, 0},
    {"rpc_rtt_4c_vs_raw", "rtt_4c", IM_RPC, 0},
    {"rpc_1mib_vs_raw", "up_1mib", IM_RPC, 0},
    {"rpc_16mib_vs_raw", "up_16mib", IM_RPC, 0},
    {"rpc_generic_1mib_vs_raw", "up_1mib", IM_GEN, 0},
    {"rpc_generic_16mib_vs_raw", "up_16mib", IM_GEN, 0},
    {"rpc_down_1mib_vs_raw", "down_1mib", IM_RPC, 0},
    {"rpc_down_16mib_vs_raw", "down_16mib", IM_RPC, 0},
    {"rpc_generic_down_16mib_vs_raw", "down_16mib", IM_GEN, 0},
    {"rpc_rtt_cpu_vs_raw", "rtt_1c", IM_RPC, 1},
    {"rpc_16mib_cpu_vs_raw", "up_16mib", IM_RPC, 1},
    {"rpc_generic_16mib_cpu_vs_raw", "up_16mib", IM_GEN, 1},
};

static void
print_ratios(const char *tr, const opts *o, results *res)
{
	double v[MAX_REPS];

	for (size_t i = 0; i < PSF_ARRAY_LEN(ratios); i++) {
		size_t ci = 0;
		while (strcmp(cases[ci].name, ratios[i].bcase) != 0)
			ci++;
		if (!case_selected(o, &cases[ci]) || o->only_impl >= 0)
			continue;
		for (int r = 0; r < o->reps; r++) {
			const sample *raw = &res->s[ci][IM_RAW][r],
			             *x = &res->s[ci][ratios[i].im][r];
			v[r] = ratios[i].cpu ? raw->cpu_us / x->cpu_us : x->rate / raw->rate;
		}
		printf("ratio_%s_%s %.3f\n", ratios[i].name, tr,
		    psf_bench_median(v, (size_t)o->reps));
	}
}

static int
usage(void)
{
	fprintf(stderr,
	    "usage: rpc_bench [--quick] [--reps N] [--transport ipc|tcp]\n"
	    "                 [--case NAME] [--impl raw|rpc|rpc_generic]\n"
	    "--case/--impl run one measurement only (for profiling; no ratios).\n");
	return -1;
}

static int
parse_opts(int argc, char **argv, opts *o)
{
	o->quick = 0;
	o->reps = 0;
	o->only = NULL;
	o->bcase = NULL;
	o->only_impl = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			o->quick = 1;
		} else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
			o->reps = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--transport") == 0 && i + 1 < argc) {
			o->only = argv[++i];
		} else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
			o->bcase = argv[++i];
		} else if (strcmp(argv[i], "--impl") == 0 && i + 1 < argc) {
			const char *name = argv[++i];
			for (int k = 0; k < IM_COUNT; k++) {
				if (strcmp(name, impl_names[k]) == 0)
					o->only_impl = k;
			}
			if (o->only_impl < 0)
				return usage();
		} else {
			return usage();
		}
	}
	if (o->reps == 0)
		o->reps = o->quick ? 3 : 15;
	if (o->reps < 1 || o->reps > MAX_REPS) {
		fprintf(stderr, "rpc_bench: --reps must be 1..%d\n", MAX_REPS);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static results res[2];
	const char *trs[2] = {"ipc", "tcp"};
	char dir[] = "/tmp/psf-rpcbench-XXXXXX";
	uint8_t *buf = NULL;
	opts o;
	int rc = 1, done[2] = {0, 0};

	if (parse_opts(argc, argv, &o) != 0)
		return 2;
	psf_log_setup(PSF_LOG_WARN, "rpc_bench");
	if (mkdtemp(dir) == NULL) {
		perror("rpc_bench: mkdtemp");
		return 1;
	}
	if ((buf = malloc(BIG)) == NULL)
		goto out;
	for (size_t i = 0; i < BIG; i++)
		buf[i] = (uint8_t)(i * 131u + 7u);
	for (int t = 0; t < 2; t++) {
		bench_env *e = NULL;
		psf_err err;

		if (o.only != NULL && strcmp(o.only, trs[t]) != 0)
			continue;
		if ((err = env_open(trs[t], t == 0 ? dir : NULL, buf, &e)) != PSF_OK) {
			fprintf(stderr, "rpc_bench: %s setup: %s\n", trs[t], psf_strerror(err));
			goto out;
		}
		err = run_transport(e, &o, &res[t]);
		env_close(e);
		if (err != PSF_OK)
			goto out;
		print_results(trs[t], &o, &res[t]);
		done[t] = 1;
	}
	for (int t = 0; t < 2; t++) {
		if (done[t])
			print_ratios(trs[t], &o, &res[t]);
	}
	rc = 0;
out:
	free(buf);
	if (psf_rm_rf(dir) != PSF_OK)
		fprintf(stderr, "rpc_bench: could not remove %s\n", dir);
	return rc;
}
