/* ps_bench -- a parameter-server node against raw NNG req0/rep0, in one process.
 *
 * What runs:
 *   ps    real ps nodes (psf_ps_new, config from psf_config_parse), one per
 *         (transport, request size, durability, chunk size), async consistency
 *         and plain SGD, each with its own LMDB directory in a temp dir on the
 *         real disk. Clients are trainer/ps_client.h workers, one thread and one
 *         worker id (trainer-0..3) each, doing psf_ps_client_push / psf_ps_client_pull
 *         of every key of the model (one request per call: one ps shard).
 *   raw   a plain rep0 server (context + aio per worker) on the same transport.
 *         raw_up: the client allocates an nng_msg, copies the payload in, sends
 *         it and gets a 16-byte reply; raw_down: a 16-byte request, and the
 *         server allocates the reply and copies the payload in. One req0 socket
 *         (one connection) per client thread, like the workers' clients.
 * The model is an mlp over N_FEATURES inputs with one hidden layer sized so
 * that its dense keys add up to the request size (1 MiB or 16 MiB of float32,
 * plus 4 bytes of output bias).
 *
 * Each measurement runs its clients for a time budget (and at least a few calls)
 * after a barrier; MB/s = payload bytes (10^6) moved per wall second. For every
 * (transport, size, client count) the raw and ps measurements of one repetition
 * run back to back in rotating order, so machine noise hits all of them alike.
 * Figures are medians over repetitions; ratios are medians of per-repetition
 * ratios (ps / raw of the same repetition and direction).
 *
 * Output (DESIGN.md §10): `name value unit` lines, then `ratio_<name> value`. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <nng/nng.h>

#include "bench/bench_util.h"
#include "bench/ps_bench_repl.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/model/model.h"
#include "lib/net/rpc.h"
#include "ps/ps.h"
#include "trainer/ps_client.h"

#define MIB ((size_t)1 << 20)
#define N_FEATURES 62 /* lag:0 .. lag:61; hidden sizes are capped at 65536 */
#define MAX_CLIENTS 4
#define MAX_REPS 15
#define MAX_INST 32
#define RAW_MAX_MSG (64 * MIB)
#define RAW_TIMEOUT_MS 120000
#define DEFAULT_CHUNK 262144u /* floats: 1 MiB values (see docs/performance.md) */

typedef enum op_kind { OP_RAW_UP, OP_RAW_DOWN, OP_PUSH, OP_PULL } op_kind;

static const char *const tr_names[] = {"ipc", "tcp"};
#define N_TR 2

/* A request of `bytes` floats-bytes: an mlp with one hidden layer of `hidden`
 * units has hidden * (N_FEATURES + 2) + 1 floats. */
typedef struct size_case {
	const char *name;
	uint32_t hidden;
} size_case;

static const size_case sizes[] = {
    {"1mib", 4096},   /* 4096 * 64 + 1 floats = 1 MiB + 4 bytes */
    {"16mib", 65536}, /* 16 MiB + 4 bytes */
};
#define N_SIZES PSF_ARRAY_LEN(sizes)

static const char *const dur_names[] = {"none", "interval", "every-commit"};
#define N_DUR 3

static const int client_counts[] = {1, 2, 4};
#define N_NC PSF_ARRAY_LEN(client_counts)

/* The measured items of one (transport, size, client count) group. */
typedef struct item {
	op_kind op;
	int dur; /* -1 for raw */
} item;

static const item items[] = {
    {OP_RAW_UP, -1},
    {OP_RAW_DOWN, -1},
    {OP_PUSH, 0},
    {OP_PUSH, 1},
    {OP_PUSH, 2},
    {OP_PULL, 0},
    {OP_PULL, 1},
    {OP_PULL, 2},
};
#define N_ITEMS PSF_ARRAY_LEN(items)
#define IT_RAW_UP 0
#define IT_RAW_DOWN 1
#define IT_PUSH(d) (2 + (d))
#define IT_PULL(d) (5 + (d))

/* Chunk sweep: 16 MiB, ipc, interval, one client. */
static const uint32_t chunk_sweep[] = {16384, 65536, 262144, 1048576};
#define N_CHUNKS PSF_ARRAY_LEN(chunk_sweep)

typedef struct sample {
	double mbs;    /* MB/s */
	double cpu_ms; /* process CPU ms per MB moved */
} sample;

/* ---------------------------------------------------------------- ps instances */

/* One ps node with its config, model, keys and a gradient for every key. */
typedef struct ps_inst {
	int tr, size, dur;
	uint32_t chunk;
	char dir[256];
	psf_config *cfg;
	psf_ps *ps;
	const char *url;
	psf_model *model;
	uint64_t *keys;
	size_t n_keys;
	size_t bytes; /* value bytes of all keys: one request */
	psf_params *grads;
} ps_inst;

static void
inst_free(ps_inst *pi)
{
	if (pi == NULL)
		return;
	psf_ps_free(pi->ps);
	psf_params_free(pi->grads);
	psf_model_free(pi->model);
	psf_config_free(pi->cfg);
	free(pi->keys);
	free(pi);
}

static void
cfg_text(char *buf, size_t len, const char *dir, const char *url, uint32_t hidden, uint32_t chunk,
    const char *dur)
{
	size_t n = 0;

	n += (size_t)snprintf(buf + n, len - n,
	    "name: psbench\nseed: 3\nrun_dir: %s\nlog_level: warn\nnodes:\n"
	    "  ps:\n    - {id: ps0, listen: \"%s\"}\n  trainers:\n",
	    dir, url);
	for (int i = 0; i < MAX_CLIENTS; i++)
		n += (size_t)snprintf(buf + n, len - n, "    - {id: trainer-%d}\n", i);
	n += (size_t)snprintf(buf + n, len - n, "data: {path: %s/none.csv}\nfeatures: [", dir);
	for (int i = 0; i < N_FEATURES; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s\"lag:%d\"", i ? ", " : "", i);
	snprintf(buf + n, len - n,
	    "]\ntarget: next_close\n"
	    "model: {kind: mlp, hidden: [%u], chunk_floats: %u}\n"
	    "optimizer: {kind: sgd, learning_rate: 0.000001}\n"
	    "consistency: {mode: async, straggler_timeout_ms: 600000, heartbeat_ms: 1000}\n"
	    "durability: {mode: %s, interval_ms: 1000}\n"
	    "limits: {request_timeout_ms: 120000, rpc_workers: 64}\n",
	    hidden, chunk, dur);
}

/* inst_open starts a ps node and builds the gradient of every key. */
static psf_err
inst_open(const char *base, int tr, int size, int dur, uint32_t chunk, ps_inst **out)
{
	ps_inst *pi = calloc(1, sizeof(*pi));
	char text[4096], errbuf[512], url[320];
	psf_ps_opts po = {true, NULL, "", NULL};
	float *buf = NULL;
	uint32_t *lens = NULL;
	psf_err err = PSF_ENOMEM;

	if (pi == NULL)
		return PSF_ENOMEM;
	pi->tr = tr;
	pi->size = size;
	pi->dur = dur;
	pi->chunk = chunk;
	snprintf(pi->dir, sizeof(pi->dir), "%s/%s-%s-%s-%u", base, tr_names[tr], sizes[size].name,
	    dur_names[dur], chunk);
	if (tr == 0)
		snprintf(url, sizeof(url), "ipc://%s.ipc", pi->dir);
	else
		snprintf(url, sizeof(url), "tcp://127.0.0.1:0");
	po.listen = url;
	cfg_text(text, sizeof(text), pi->dir, url, sizes[size].hidden, chunk, dur_names[dur]);
	if ((err = psf_config_parse("ps_bench.yaml", text, strlen(text), errbuf, sizeof(errbuf),
	         &pi->cfg)) != PSF_OK) {
		fprintf(stderr, "ps_bench: config: %s\n", errbuf);
		goto out;
	}
	if ((err = psf_ps_new(pi->cfg, &pi->cfg->nodes[0], &po, &pi->ps)) != PSF_OK ||
	    (err = psf_model_new(&pi->cfg->model, (uint32_t)pi->cfg->n_features, pi->cfg->target,
	         pi->cfg->seed, &pi->model)) != PSF_OK)
		goto out;
	pi->url = psf_ps_url(pi->ps);
	pi->n_keys = psf_model_n_dense_keys(pi->model);
	pi->keys = calloc(pi->n_keys, sizeof(*pi->keys));
	lens = calloc(pi->n_keys, sizeof(*lens));
	buf = malloc((size_t)chunk * sizeof(float));
	err = PSF_ENOMEM;
	if (pi->keys == NULL || lens == NULL || buf == NULL)
		goto out;
	if ((err = psf_model_dense_keys(pi->model, pi->keys, lens, pi->n_keys, &pi->n_keys)) !=
	        PSF_OK ||
	    (err = psf_params_new(pi->model, &pi->grads)) != PSF_OK)
		goto out;
	for (uint32_t j = 0; j < chunk; j++)
		buf[j] = 0.001f * (float)(j % 7 + 1);
	for (size_t i = 0; i < pi->n_keys && err == PSF_OK; i++) {
		err = psf_params_set_key(pi->grads, pi->keys[i], buf, lens[i]);
		pi->bytes += (size_t)lens[i] * 4;
	}
out:
	free(buf);
	free(lens);
	if (err != PSF_OK) {
		inst_free(pi);
		return err;
	}
	*out = pi;
	return PSF_OK;
}

/* ---------------------------------------------------------------- clients */

typedef struct bench bench;

typedef struct runner {
	bench *b;
	op_kind op;
	ps_inst *pi;
	psf_bench_raw_server *raw;
	const uint8_t *src; /* raw upload payload */
	size_t bytes;
	int id;
	uint32_t warmup;
	uint32_t min_calls;
	uint64_t budget_ns;
	pthread_barrier_t *bar;
	uint64_t calls;
	psf_err err;
} runner;

/* raw_runner: one req0 socket (one connection) per client thread. */
static void *
raw_runner(void *arg)
{
	runner *r = arg;
	psf_bench_raw_dial_opts dial = {RAW_MAX_MSG, RAW_TIMEOUT_MS, false};
	const uint8_t *up = r->op == OP_RAW_UP ? r->src : NULL;
	size_t up_len = r->op == OP_RAW_UP ? r->bytes : 0, down_len = r->bytes - up_len;
	nng_socket sock = NNG_SOCKET_INITIALIZER;
	psf_bench_raw_client c = {.aio = NULL};
	uint64_t t0;

	r->err = psf_bench_raw_dial(psf_bench_raw_server_url(r->raw), &dial, &sock);
	if (r->err == PSF_OK)
		r->err = psf_bench_raw_client_init(&c, sock, false, 0);
	for (uint32_t i = 0; i < r->warmup && r->err == PSF_OK; i++)
		r->err = psf_bench_raw_call(&c, up, up_len, down_len);
	pthread_barrier_wait(r->bar);
	t0 = psf_now_ns();
	while (r->err == PSF_OK && (r->calls < r->min_calls || psf_now_ns() - t0 < r->budget_ns)) {
		r->err = psf_bench_raw_call(&c, up, up_len, down_len);
		r->calls++;
	}
	if (nng_socket_id(sock) > 0)
		nng_close(sock);
	return NULL;
}

static psf_err
one_ps_call(runner *r, psf_ps_client *w, int64_t *clock, psf_params *dst)
{
	ps_inst *pi = r->pi;

	if (r->op == OP_PUSH)
		return psf_ps_client_push(w, (*clock)++, pi->grads, pi->keys, pi->n_keys, 1, 0.0,
		    NULL);
	return psf_ps_client_pull(w, *clock, pi->keys, pi->n_keys, dst, NULL);
}

static void *
ps_runner(void *arg)
{
	runner *r = arg;
	ps_inst *pi = r->pi;
	const char *urls[1] = {pi->url};
	psf_ps_client_opts wo = {.ps_urls = urls, .retry_ms = 60000};
	psf_ps_client *w = NULL;
	psf_params *dst = NULL;
	char id[32];
	int64_t clock = 0;
	uint64_t t0;

	snprintf(id, sizeof(id), "trainer-%d", r->id);
	r->err = psf_ps_client_open(pi->cfg, pi->model, id, &wo, &w);
	if (r->err == PSF_OK)
		r->err = psf_params_new(pi->model, &dst);
	if (r->err == PSF_OK)
		clock = psf_ps_client_clock(w);
	for (uint32_t i = 0; i < r->warmup && r->err == PSF_OK; i++)
		r->err = one_ps_call(r, w, &clock, dst);
	pthread_barrier_wait(r->bar);
	t0 = psf_now_ns();
	while (r->err == PSF_OK && (r->calls < r->min_calls || psf_now_ns() - t0 < r->budget_ns)) {
		r->err = one_ps_call(r, w, &clock, dst);
		r->calls++;
	}
	psf_params_free(dst);
	psf_ps_client_close(w);
	return NULL;
}

/* ---------------------------------------------------------------- the run */

typedef struct opts {
	int quick;
	int reps;
	uint64_t budget_ms;
	uint32_t min_calls;
	uint32_t chunk;
	int sweep;        /* run the chunk sweep */
	int only_tr;      /* -1 or an index into tr_names */
	int only_size;    /* -1 or an index into sizes */
	int only_nc;      /* 0 or a client count */
	const char *only; /* NULL or one op: raw_up, raw_down, push, pull */
	int only_dur;     /* -1 or an index into dur_names */
	int no_repl;      /* --no-repl: skip the replication cases */
	int repl_only;    /* --repl: only the replication cases */
} opts;

struct bench {
	opts o;
	char dir[64];
	uint8_t *src; /* raw payload source, 16 MiB + a little */
	size_t src_len;
	psf_bench_raw_server *raw[N_TR];
	ps_inst *inst[MAX_INST];
	size_t n_inst;
	sample main[N_TR][N_SIZES][N_NC][N_ITEMS][MAX_REPS];
	sample sweep[N_CHUNKS][N_ITEMS][MAX_REPS];
};

static const char *const op_names[] = {"raw_up", "raw_down", "push", "pull"};

/* get_inst returns the ps node of (tr, size, dur, chunk), starting it on first use. */
static psf_err
get_inst(bench *b, int tr, int size, int dur, uint32_t chunk, ps_inst **out)
{
	psf_err err;

	for (size_t i = 0; i < b->n_inst; i++) {
		ps_inst *pi = b->inst[i];
		if (pi->tr == tr && pi->size == size && pi->dur == dur && pi->chunk == chunk) {
			*out = pi;
			return PSF_OK;
		}
	}
	if (b->n_inst == MAX_INST)
		return PSF_ENOMEM;
	if ((err = inst_open(b->dir, tr, size, dur, chunk, &b->inst[b->n_inst])) != PSF_OK)
		return err;
	*out = b->inst[b->n_inst++];
	return PSF_OK;
}

/* measure runs one item with nc clients and fills *out. */
static psf_err
measure(bench *b, int tr, int size, int nc, const item *it, uint32_t chunk, sample *out)
{
	pthread_t th[MAX_CLIENTS];
	runner r[MAX_CLIENTS];
	pthread_barrier_t bar;
	ps_inst *pi = NULL;
	uint64_t t0, t1, c0, c1, calls = 0;
	size_t bytes;
	psf_err err = PSF_OK;

	if (it->op == OP_PUSH || it->op == OP_PULL) {
		if ((err = get_inst(b, tr, size, it->dur, chunk, &pi)) != PSF_OK)
			return err;
		bytes = pi->bytes;
	} else {
		bytes = (size_t)sizes[size].hidden * (N_FEATURES + 2) * 4 + 4;
	}
	pthread_barrier_init(&bar, NULL, (unsigned)nc + 1);
	for (int i = 0; i < nc; i++) {
		r[i] = (runner){b, it->op, pi, b->raw[tr], b->src, bytes, i, b->o.quick ? 0 : 1,
		    b->o.min_calls, b->o.budget_ms * 1000000ull, &bar, 0, PSF_OK};
		if (pthread_create(&th[i], NULL, pi != NULL ? ps_runner : raw_runner, &r[i]) != 0) {
			fprintf(stderr, "ps_bench: pthread_create failed\n");
			exit(1); /* the barrier would never open */
		}
	}
	pthread_barrier_wait(&bar);
	c0 = psf_bench_cpu_ns();
	t0 = psf_now_ns();
	for (int i = 0; i < nc; i++) {
		pthread_join(th[i], NULL);
		calls += r[i].calls;
		if (r[i].err != PSF_OK)
			err = r[i].err;
	}
	t1 = psf_now_ns();
	c1 = psf_bench_cpu_ns();
	pthread_barrier_destroy(&bar);
	if (err != PSF_OK)
		return err;
	out->mbs = (double)calls * (double)bytes / 1e6 / ((double)(t1 - t0) / 1e9);
	out->cpu_ms = (double)(c1 - c0) / 1e6 / ((double)calls * (double)bytes / 1e6);
	return PSF_OK;
}

static bool
item_selected(const opts *o, const item *it)
{
	return (o->only == NULL || strcmp(o->only, op_names[it->op]) == 0) &&
	    (o->only_dur < 0 || it->dur < 0 || it->dur == o->only_dur);
}

static void
item_name(char *buf, size_t len, const char *tr, const item *it, const char *size, int nc)
{
	if (it->dur < 0)
		snprintf(buf, len, "%s_%s_%s_%dc", tr, op_names[it->op], size, nc);
	else
		snprintf(buf, len, "%s_%s_%s_%s_%dc", tr, op_names[it->op], dur_names[it->dur],
		    size, nc);
}

static psf_err
run_group(bench *b, int rep, int tr, int size, int nci, uint32_t chunk, sample (*res)[MAX_REPS])
{
	char name[128];
	psf_err err;

	for (size_t k = 0; k < N_ITEMS; k++) {
		size_t ii = (k + (size_t)rep + (size_t)nci) % N_ITEMS; /* rotate the first one */
		const item *it = &items[ii];
		if (!item_selected(&b->o, it))
			continue;
		err = measure(b, tr, size, client_counts[nci], it, chunk, &res[ii][rep]);
		if (err != PSF_OK) {
			item_name(name, sizeof(name), tr_names[tr], it, sizes[size].name,
			    client_counts[nci]);
			fprintf(stderr, "ps_bench: %s: %s\n", name, psf_strerror(err));
			return err;
		}
	}
	return PSF_OK;
}

static double
median_mbs(const sample *s, int reps)
{
	double v[MAX_REPS];

	for (int r = 0; r < reps; r++)
		v[r] = s[r].mbs;
	return psf_bench_median(v, (size_t)reps);
}

static double
median_cpu(const sample *s, int reps)
{
	double v[MAX_REPS];

	for (int r = 0; r < reps; r++)
		v[r] = s[r].cpu_ms;
	return psf_bench_median(v, (size_t)reps);
}

/* median_ratio: median over repetitions of x / base. */
static double
median_ratio(const sample *x, const sample *base, int reps)
{
	double v[MAX_REPS];

	for (int r = 0; r < reps; r++)
		v[r] = base[r].mbs > 0 ? x[r].mbs / base[r].mbs : 0;
	return psf_bench_median(v, (size_t)reps);
}

static bool
group_selected(const opts *o, int tr, int size, int nci)
{
	/* --quick skips 2 clients: the code paths are those of 4. */
	return (o->only_tr < 0 || o->only_tr == tr) && (o->only_size < 0 || o->only_size == size) &&
	    (o->only_nc == 0 || o->only_nc == client_counts[nci]) &&
	    (!o->quick || o->only_nc != 0 || client_counts[nci] != 2);
}

static void
print_results(bench *b)
{
	const opts *o = &b->o;
	char name[128];

	for (int tr = 0; tr < N_TR; tr++)
		for (size_t sz = 0; sz < N_SIZES; sz++)
			for (size_t nci = 0; nci < N_NC; nci++) {
				if (!group_selected(o, tr, (int)sz, (int)nci))
					continue;
				for (size_t ii = 0; ii < N_ITEMS; ii++) {
					const sample *s = b->main[tr][sz][nci][ii];
					if (!item_selected(o, &items[ii]))
						continue;
					item_name(name, sizeof(name), tr_names[tr], &items[ii],
					    sizes[sz].name, client_counts[nci]);
					printf("%s %.1f MB/s\n", name, median_mbs(s, o->reps));
					printf("%s_cpu %.3f ms/MB\n", name, median_cpu(s, o->reps));
				}
			}
	if (o->sweep) {
		for (size_t c = 0; c < N_CHUNKS; c++)
			for (size_t ii = 0; ii < N_ITEMS; ii++) {
				if (items[ii].dur != 1 || !item_selected(o, &items[ii]))
					continue;
				printf("ipc_%s_interval_16mib_1c_chunk%u %.1f MB/s\n",
				    op_names[items[ii].op], chunk_sweep[c],
				    median_mbs(b->sweep[c][ii], o->reps));
			}
	}
	fflush(stdout);
}

static void
print_ratios(bench *b)
{
	const opts *o = &b->o;

	if (o->only != NULL)
		return; /* ratios need raw and ps items */
	for (int tr = 0; tr < N_TR; tr++)
		for (size_t sz = 0; sz < N_SIZES; sz++)
			for (size_t nci = 0; nci < N_NC; nci++) {
				sample(*g)[MAX_REPS] = b->main[tr][sz][nci];
				if (!group_selected(o, tr, (int)sz, (int)nci))
					continue;
				for (int d = 0; d < N_DUR; d++)
					if (o->only_dur < 0 || o->only_dur == d)
						printf("ratio_push_%s_vs_raw_%s_%s_%dc %.3f\n",
						    dur_names[d], tr_names[tr], sizes[sz].name,
						    client_counts[nci],
						    median_ratio(g[IT_PUSH(d)], g[IT_RAW_UP],
						        o->reps));
				if (o->only_dur >= 0 && o->only_dur != 1)
					continue; /* pull ratios use the interval store */
				printf("ratio_pull_vs_raw_%s_%s_%dc %.3f\n", tr_names[tr],
				    sizes[sz].name, client_counts[nci],
				    median_ratio(g[IT_PULL(1)], g[IT_RAW_DOWN], o->reps));
			}
}

/* median_cpu_ratio: median over repetitions of base CPU per MB / x's: what x
 * moves per CPU second relative to base. */
static double
median_cpu_ratio(const sample *x, const sample *base, int reps)
{
	double v[MAX_REPS];

	for (int r = 0; r < reps; r++)
		v[r] = x[r].cpu_ms > 0 ? base[r].cpu_ms / x[r].cpu_ms : 0;
	return psf_bench_median(v, (size_t)reps);
}

/* print_push_vs_raw: per request size, the lowest over the measured transports
 * and client counts of push (interval store) / raw NNG upload of the same
 * repetitions: the figure the ps's push path is held to (docs/performance.md).
 * The _cpu line compares process CPU per MB instead of wall time: steadier on
 * a loaded machine, where wall time mostly measures the scheduler. */
static void
print_push_vs_raw(bench *b)
{
	const opts *o = &b->o;

	if (o->only != NULL || (o->only_dur >= 0 && o->only_dur != 1))
		return;
	for (size_t sz = 0; sz < N_SIZES; sz++) {
		double worst = -1, worst_cpu = -1;

		for (int tr = 0; tr < N_TR; tr++)
			for (size_t nci = 0; nci < N_NC; nci++) {
				sample(*g)[MAX_REPS] = b->main[tr][sz][nci];
				double r, rc;

				if (!group_selected(o, tr, (int)sz, (int)nci))
					continue;
				r = median_ratio(g[IT_PUSH(1)], g[IT_RAW_UP], o->reps);
				rc = median_cpu_ratio(g[IT_PUSH(1)], g[IT_RAW_UP], o->reps);
				worst = worst < 0 || r < worst ? r : worst;
				worst_cpu = worst_cpu < 0 || rc < worst_cpu ? rc : worst_cpu;
			}
		if (worst >= 0)
			printf("ratio_push_%s_vs_raw_nng %.3f\nratio_push_%s_vs_raw_nng_cpu %.3f\n",
			    sizes[sz].name, worst, sizes[sz].name, worst_cpu);
	}
}

static psf_err
run(bench *b)
{
	const opts *o = &b->o;
	psf_err err;

	for (int rep = 0; rep < o->reps; rep++) {
		for (int tr = 0; tr < N_TR; tr++)
			for (size_t sz = 0; sz < N_SIZES; sz++)
				for (size_t nci = 0; nci < N_NC; nci++) {
					if (!group_selected(o, tr, (int)sz, (int)nci))
						continue;
					err = run_group(b, rep, tr, (int)sz, (int)nci, o->chunk,
					    b->main[tr][sz][nci]);
					if (err != PSF_OK)
						return err;
				}
		for (size_t c = 0; o->sweep && c < N_CHUNKS; c++) {
			for (size_t ii = 0; ii < N_ITEMS; ii++) {
				if (items[ii].dur != 1 || !item_selected(o, &items[ii]))
					continue;
				err = measure(b, 0, 1, 1, &items[ii], chunk_sweep[c],
				    &b->sweep[c][ii][rep]);
				if (err != PSF_OK)
					return err;
			}
		}
	}
	return PSF_OK;
}

static int
usage(void)
{
	fprintf(stderr,
	    "usage: ps_bench [--quick] [--reps N] [--budget-ms MS] [--chunk FLOATS] [--sweep]\n"
	    "                [--repl | --no-repl]  (only / without the replication cases)\n"
	    "                [--transport ipc|tcp] [--size 1mib|16mib] [--clients N]\n"
	    "                [--op raw_up|raw_down|push|pull] [--durability none|interval|every-commit]\n"
	    "The filters run a subset (for profiling); ratios need --op/--durability unset.\n");
	return -1;
}

static int
find_name(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++) {
		if (strcmp(s, names[i]) == 0)
			return i;
	}
	return -2;
}

static int
parse_opts(int argc, char **argv, opts *o)
{
	*o = (opts){0, 0, 0, 0, DEFAULT_CHUNK, 0, -1, -1, 0, NULL, -1, 0, 0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--quick") == 0) {
			o->quick = 1;
			continue;
		}
		if (strcmp(a, "--sweep") == 0) {
			o->sweep = 1;
			continue;
		}
		if (strcmp(a, "--no-repl") == 0 || strcmp(a, "--repl") == 0) {
			*(a[2] == 'n' ? &o->no_repl : &o->repl_only) = 1;
			continue;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(a, "--reps") == 0)
			o->reps = atoi(v);
		else if (strcmp(a, "--budget-ms") == 0)
			o->budget_ms = strtoull(v, NULL, 10);
		else if (strcmp(a, "--chunk") == 0)
			o->chunk = (uint32_t)strtoul(v, NULL, 10);
		else if (strcmp(a, "--transport") == 0)
			o->only_tr = find_name(v, tr_names, N_TR);
		else if (strcmp(a, "--size") == 0)
			o->only_size = strcmp(v, "1mib") == 0 ? 0
			    : strcmp(v, "16mib") == 0         ? 1
			                                      : -2;
		else if (strcmp(a, "--clients") == 0)
			o->only_nc = atoi(v);
		else if (strcmp(a, "--op") == 0)
			o->only = find_name(v, op_names, 4) >= 0 ? v : NULL;
		else if (strcmp(a, "--durability") == 0)
			o->only_dur = find_name(v, dur_names, N_DUR);
		else
			return usage();
		if (o->only_tr == -2 || o->only_size == -2 || o->only_dur == -2 ||
		    (strcmp(a, "--op") == 0 && o->only == NULL) || o->chunk == 0)
			return usage();
	}
	if (o->reps == 0)
		o->reps = o->quick ? 1 : 5;
	if (o->budget_ms == 0)
		o->budget_ms = o->quick ? 15 : 500;
	o->min_calls = o->quick ? 1 : 3;
	if (o->reps < 1 || o->reps > MAX_REPS) {
		fprintf(stderr, "ps_bench: --reps must be 1..%d\n", MAX_REPS);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static bench b;
	char url[128];
	int rc = 1;
	psf_err err;

	if (getenv("PSF_BENCH_NO_MALLOC_TUNING") == NULL)
		psf_tune_malloc(); /* as psfleet node does */
	/* No BLAS runs here, but OpenBLAS's idle threads kept spinning
	 * (sched_yield): ~92,000 yields in a 1.5 s push run, ~8,000 (at start-up)
	 * with one thread; CPU taken from the raw and the ps side alike. Trainers
	 * and the other benches do the same. */
	openblas_set_num_threads(1);

	if (parse_opts(argc, argv, &b.o) != 0)
		return 2;
	psf_log_setup(PSF_LOG_WARN, "ps_bench");
	snprintf(b.dir, sizeof(b.dir), "/tmp/psf-psbench-XXXXXX");
	if (mkdtemp(b.dir) == NULL) {
		perror("ps_bench: mkdtemp");
		return 1;
	}
	b.src_len = (size_t)sizes[N_SIZES - 1].hidden * (N_FEATURES + 2) * 4 + 4;
	if ((b.src = malloc(b.src_len)) == NULL)
		goto out;
	for (size_t i = 0; i < b.src_len; i++)
		b.src[i] = (uint8_t)(i * 131u + 7u);
	snprintf(url, sizeof(url), "ipc://%s/raw.ipc", b.dir);
	if ((err = psf_bench_raw_server_open(url, b.src, b.src_len, RAW_MAX_MSG, &b.raw[0])) !=
	        PSF_OK ||
	    (err = psf_bench_raw_server_open("tcp://127.0.0.1:0", b.src, b.src_len, RAW_MAX_MSG,
	         &b.raw[1])) != PSF_OK) {
		fprintf(stderr, "ps_bench: raw server: %s\n", psf_strerror(err));
		goto out;
	}
	if (!b.o.repl_only) {
		if ((err = run(&b)) != PSF_OK)
			goto out;
		print_results(&b);
		print_ratios(&b);
		print_push_vs_raw(&b);
	}
	if (!b.o.no_repl && (err = psf_ps_bench_repl(b.dir, b.o.quick)) != PSF_OK)
		goto out;
	rc = 0;
out:
	for (size_t i = 0; i < b.n_inst; i++)
		inst_free(b.inst[i]);
	for (int t = 0; t < N_TR; t++)
		psf_bench_raw_server_free(b.raw[t]);
	free(b.src);
	if (psf_rm_rf(b.dir) != PSF_OK)
		fprintf(stderr, "ps_bench: could not remove %s\n", b.dir);
	return rc;
}
