/* Fault injection on real processes: a fleet of `psfleet node`s (a ps, two
 * trainers, two inferer replicas and a gateway); every role is SIGKILLed and
 * restarted (the ps resumes from LMDB, trainers rejoin, inferers reload a
 * snapshot, as the launcher would restart them) or stalled with SIGSTOP/SIGCONT,
 * at random times from a seeded generator. Between faults the test calls
 * PredictBatch through the gateway.
 *
 *  sync:  the final weights (every stored key, read through Snapshot) equal those
 *         of a fault-free run of the same config bit for bit, and the model version
 *         equals the number of steps: every round applied exactly once. The
 *         gateway's final predictions for every symbol equal the fault-free run's
 *         bit for bit, and no answer during the faults mixed model versions.
 *  async: the ps's applied-push count (its model version, persisted with every
 *         push) equals trainers x steps, and the trainers' traces
 *         (<run_dir>/trace/<id>.csv, one line per acknowledged push) hold no step
 *         twice and no step the ps did not apply: nothing lost, nothing twice.
 *
 * Environment: PSF_FAULT_SEED (default 1), PSF_FAULT_COUNT (faults per run, default
 * 12), PSF_FAULT_LONG=1 (60 faults, more epochs: the long run for docs), and
 * PSF_FAULT_TRAINERS (2 or 3, default 2). Every child is killed by the test. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/base/util.h"
#include "lib/data/datagen.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"

#include "tests/integration/itest.h"

#define MAX_TR 3
#define N_INF 2 /* inferer replicas of the one shard, behind the gateway */
#define N_SYMBOLS 24

typedef struct fleet {
	char dir[96];
	char cfg[160];
	char url[200];
	int n_tr;
	pid_t ps;
	pid_t tr[MAX_TR];
	bool tr_done[MAX_TR];
	pid_t inf[N_INF];
	pid_t gw;
	char gw_url[200];
	psf_rpc_client *gwc; /* the test's client of the gateway */
	/* what was done to it */
	int ps_kills, tr_kills, ps_stops, tr_stops, serve_kills, serve_stops;
	uint64_t kill_versions[256];
	int n_kill_versions;
	/* PredictBatch calls through the gateway during the faults */
	uint64_t calls_ok, calls_failed, items_ok, mixed_versions;
} fleet;

static char data_dir[64];
static fleet *live[4]; /* fleets of the running test, killed by its teardown */
static int n_live;
static char data_csv[128];
static uint64_t rng;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static int
env_int(const char *name, int def)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? atoi(v) : def;
}

static bool
long_run(void)
{
	return env_int("PSF_FAULT_LONG", 0) != 0;
}

static void
fleet_init(fleet *f, const char *name, const char *mode)
{
	FILE *cf;

	memset(f, 0, sizeof(*f));
	if (n_live < 4)
		live[n_live++] = f;
	f->n_tr = env_int("PSF_FAULT_TRAINERS", 2);
	if (f->n_tr < 2 || f->n_tr > MAX_TR)
		f->n_tr = 2;
	snprintf(f->dir, sizeof(f->dir), "%s/%s", data_dir, name);
	assert_int_equal(mkdir(f->dir, 0755), 0);
	snprintf(f->cfg, sizeof(f->cfg), "%s/fleet.yaml", f->dir);
	snprintf(f->url, sizeof(f->url), "ipc://%s/ps0.sock", f->dir);
	cf = fopen(f->cfg, "w");
	assert_non_null(cf);
	fprintf(cf,
	    "name: fault\nseed: 11\nrun_dir: %s\nnodes:\n  ps:\n    - {id: ps0, listen: \"%s\"}\n"
	    "  trainers:\n",
	    f->dir, f->url);
	for (int i = 0; i < f->n_tr; i++)
		fprintf(cf, "    - {id: trainer-%d}\n", i);
	fprintf(cf, "  inferers:\n");
	for (int i = 0; i < N_INF; i++)
		fprintf(cf,
		    "    - {id: inferer-%d, listen: \"ipc://%s/inferer-%d.sock\", shard: 0}\n", i,
		    f->dir, i);
	snprintf(f->gw_url, sizeof(f->gw_url), "ipc://%s/gateway.sock", f->dir);
	fprintf(cf, "  gateway: {id: gateway, listen: \"%s\"}\n", f->gw_url);
	fprintf(cf,
	    "inference: {refresh_ms: 200, history_days: 32, shards: 1}\n"
	    "gateway_options: {route: symbol, health_interval_ms: 200}\n");
	fprintf(cf,
	    "data: {path: %s}\n"
	    "features: [\"return:1\", \"return:5\", \"ratio_sma:10\", \"std:5\"]\n"
	    "target: next_return\n"
	    "model: {kind: mlp, hidden: [8], %schunk_floats: 16}\n"
	    "optimizer: {kind: adam, learning_rate: 0.005}\n"
	    "training: {epochs: %d, batch_size: 32}\n"
	    "consistency: {mode: %s, straggler_timeout_ms: 120000, heartbeat_ms: 200}\n"
	    "durability: {mode: every-commit}\n"
	    "limits: {request_timeout_ms: 2000}\n",
	    data_csv,
	    /* local SGD averages the whole model: no per-symbol tensors */
	    strncmp(mode, "local", 5) == 0 ? "" : "embedding_dim: 2, symbol_bias: true, ",
	    long_run() ? 24 : 8, mode);
	fclose(cf);
}

static pid_t
spawn_node(fleet *f, const char *id)
{
	/* Trainers take at least 25 ms a step, so faults land mid-training. */
	bool trainer = strncmp(id, "trainer", 7) == 0;

	return psf_itest_spawn_node(f->dir, f->cfg, id, trainer ? "--delay-ms" : NULL, "25");
}

static pid_t
spawn_indexed(fleet *f, const char *role, int i)
{
	char id[32];

	snprintf(id, sizeof(id), "%s-%d", role, i);
	return spawn_node(f, id);
}

static void
fleet_kill_all(fleet *f)
{
	for (int i = 0; i < f->n_tr; i++) {
		if (!f->tr_done[i])
			psf_itest_stop(&f->tr[i], SIGKILL);
		f->tr[i] = 0;
	}
	psf_itest_stop(&f->gw, SIGTERM);
	for (int i = 0; i < N_INF; i++)
		psf_itest_stop(&f->inf[i], SIGTERM);
	psf_itest_stop(&f->ps, SIGTERM);
	psf_rpc_client_close(f->gwc);
	f->gwc = NULL;
}

/* reap notes trainers that finished; a trainer that failed fails the test. */
static bool
reap(fleet *f)
{
	bool all = true;

	for (int i = 0; i < f->n_tr; i++) {
		int status;
		if (f->tr_done[i])
			continue;
		if (waitpid(f->tr[i], &status, WNOHANG) == f->tr[i]) {
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				char cmd[600];

				fleet_kill_all(f);
				/* The run's directory is removed at the end: show why here. */
				snprintf(cmd, sizeof(cmd),
				    "echo '--- last lines of %s/trainer-%d.log:'; tail -n 25 "
				    "'%s/trainer-%d.log' >&2; echo '--- last lines of ps0.log:' >&2; "
				    "tail -n 60 '%s/ps0.log' >&2",
				    f->dir, i, f->dir, i, f->dir);
				if (system(cmd) != 0)
					print_message("(no log)\n");
				fail_msg("trainer-%d ended with status %#x (see %s/trainer-%d.log)",
				    i, status, f->dir, i);
			}
			f->tr_done[i] = true;
		}
		all = all && f->tr_done[i];
	}
	return all;
}

/* snapshot reads every stored key (keys, lens and float bits, in key order) of the
 * newest model into one buffer: two runs compare with memcmp. */
static uint8_t *
snapshot(fleet *f, size_t *len, uint64_t *version)
{
	psf_rpc_client *c;
	Psfleet__V1__SnapshotRequest req = PSFLEET__V1__SNAPSHOT_REQUEST__INIT;
	psf_rpc_call_opts o = {10000, 1, 0};
	uint8_t *buf = NULL;
	size_t n = 0;
	bool done = false;

	assert_int_equal(psf_rpc_client_open(f->url, NULL, &c), PSF_OK);
	req.max_bytes = 1 << 20;
	while (!done) {
		Psfleet__V1__SnapshotReply *r = NULL;
		assert_int_equal(psf_rpc_client_call(c, PSF_M_SNAPSHOT, &req.base,
		                     &psfleet__v1__snapshot_reply__descriptor, &o,
		                     (ProtobufCMessage **)&r, NULL),
		    PSF_OK);
		size_t add = r->n_keys * 12 + r->values.len;
		buf = realloc(buf, n + add + 1);
		assert_non_null(buf);
		for (size_t i = 0; i < r->n_keys; i++) {
			memcpy(buf + n, &r->keys[i], 8);
			memcpy(buf + n + 8, &r->lens[i], 4);
			n += 12;
		}
		memcpy(buf + n, r->values.data, r->values.len);
		n += r->values.len;
		req.version = r->version; /* the same version for every piece */
		*version = r->version;
		req.start_key = r->next_key;
		done = r->done;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	psf_rpc_client_close(c);
	*len = n;
	return buf;
}

static void
fleet_start(fleet *f)
{
	f->ps = spawn_node(f, "ps0");
	for (int i = 0; i < f->n_tr; i++)
		f->tr[i] = spawn_indexed(f, "trainer", i);
	for (int i = 0; i < N_INF; i++)
		f->inf[i] = spawn_indexed(f, "inferer", i);
	f->gw = spawn_node(f, "gateway");
	assert_int_equal(psf_rpc_client_open(f->gw_url, NULL, &f->gwc), PSF_OK);
}

/* predict_all calls PredictBatch for every symbol through the gateway. On a
 * call whose every item is OK it returns true with the predictions in out[] (may
 * be NULL) and the model version that answered; *mixed is set when the items
 * came from more than one model version (a torn snapshot). */
static bool
predict_all(fleet *f, uint32_t timeout_ms, double *out, uint64_t *version, bool *mixed)
{
	Psfleet__V1__PredictRequest items[N_SYMBOLS], *ptr[N_SYMBOLS];
	char names[N_SYMBOLS][8];
	Psfleet__V1__PredictBatchRequest req = PSFLEET__V1__PREDICT_BATCH_REQUEST__INIT;
	Psfleet__V1__PredictBatchReply *r = NULL;
	psf_rpc_call_opts o = {timeout_ms, 1, 0};
	bool ok;

	for (int i = 0; i < N_SYMBOLS; i++) {
		psfleet__v1__predict_request__init(&items[i]);
		snprintf(names[i], sizeof(names[i]), "S%04d", i);
		items[i].symbol = names[i];
		ptr[i] = &items[i];
	}
	req.n_items = N_SYMBOLS;
	req.items = ptr;
	*mixed = false;
	if (psf_rpc_client_call(f->gwc, PSF_M_PREDICT_BATCH, &req.base,
	        &psfleet__v1__predict_batch_reply__descriptor, &o, (ProtobufCMessage **)&r,
	        NULL) != PSF_OK)
		return false;
	ok = r->n_results == N_SYMBOLS;
	for (size_t i = 0; ok && i < r->n_results; i++) {
		const Psfleet__V1__PredictResult *x = r->results[i];
		ok = x->status == PSFLEET__V1__STATUS_CODE__OK && x->reply != NULL;
		if (!ok)
			break;
		if (i == 0)
			*version = x->reply->model_version;
		*mixed = *mixed || x->reply->model_version != *version;
		if (out != NULL)
			out[i] = x->reply->prediction;
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ok;
}

/* probe calls the gateway back to back for ms milliseconds, counting answers. */
static void
probe(fleet *f, uint32_t ms)
{
	uint64_t end = psf_now_ms() + ms, v;
	bool mixed;

	do {
		if (predict_all(f, 400, NULL, &v, &mixed)) {
			f->calls_ok++;
			f->items_ok += N_SYMBOLS;
		} else {
			f->calls_failed++;
		}
		f->mixed_versions += mixed;
		psf_sleep_ms(20);
	} while (psf_now_ms() < end);
}

/* final_predictions waits (bounded) until the gateway answers every symbol from
 * the model version `version` and returns those predictions in out[]. */
static void
final_predictions(fleet *f, uint64_t version, double *out)
{
	uint64_t v = 0;
	bool mixed = false;

	for (int i = 0; i < 600; i++) {
		if (predict_all(f, 2000, out, &v, &mixed) && !mixed && v == version)
			return;
		psf_sleep_ms(50);
	}
	fail_msg("the gateway did not serve model version %llu within 30 s (last %llu; logs in %s)",
	    (unsigned long long)version, (unsigned long long)v, f->dir);
}

/* wait_done waits (bounded) for every trainer to finish, restarting none. */
static void
wait_done(fleet *f, int timeout_s)
{
	for (int i = 0; i < timeout_s * 20; i++) {
		if (reap(f))
			return;
		psf_sleep_ms(50);
	}
	fleet_kill_all(f);
	fail_msg("training did not finish within %d s (logs in %s)", timeout_s, f->dir);
}

/* chaos injects faults until n are done or training ends; between and during
 * them it calls the gateway (probe). */
static void
chaos(fleet *f, int n)
{
	psf_itest_stats s;

	for (int done = 0; done < n;) {
		probe(f, 150 + rnd(500));
		if (reap(f))
			return;
		uint32_t what = rnd(14), ti = rnd((uint32_t)f->n_tr), ii = rnd(N_INF);
		if (what < 3) { /* SIGKILL the ps mid-training; restart it from LMDB */
			if (psf_itest_ps_stats(f->url, 500, &s) && f->n_kill_versions < 256)
				f->kill_versions[f->n_kill_versions++] = s.version;
			psf_itest_stop(&f->ps, SIGKILL);
			probe(f, rnd(300));
			f->ps = spawn_node(f, "ps0");
			f->ps_kills++;
		} else if (what < 6) { /* SIGKILL a trainer; restart it (it rejoins) */
			if (f->tr_done[ti])
				continue;
			psf_itest_stop(&f->tr[ti], SIGKILL);
			probe(f, rnd(200));
			f->tr[ti] = spawn_indexed(f, "trainer", (int)ti);
			f->tr_kills++;
		} else if (what < 8) { /* a trainer stalls (SIGSTOP) and comes back */
			if (f->tr_done[ti])
				continue;
			kill(f->tr[ti], SIGSTOP);
			probe(f, 200 + rnd(1300));
			kill(f->tr[ti], SIGCONT);
			f->tr_stops++;
		} else if (what < 10) { /* the ps stalls past the clients' deadlines */
			kill(f->ps, SIGSTOP);
			probe(f, 200 + rnd(2500));
			kill(f->ps, SIGCONT);
			f->ps_stops++;
		} else if (what < 13) { /* SIGKILL an inferer or the gateway; restart it */
			pid_t *p = what < 12 ? &f->inf[ii] : &f->gw;
			psf_itest_stop(p, SIGKILL);
			probe(f, rnd(300));
			*p = what < 12 ? spawn_indexed(f, "inferer", (int)ii)
			               : spawn_node(f, "gateway");
			f->serve_kills++;
		} else { /* an inferer or the gateway stalls */
			pid_t p = rnd(2) ? f->inf[ii] : f->gw;
			kill(p, SIGSTOP);
			probe(f, 200 + rnd(1300));
			kill(p, SIGCONT);
			f->serve_stops++;
		}
		done++;
	}
}

static int
fault_count(void)
{
	return env_int("PSF_FAULT_COUNT", long_run() ? 60 : 12);
}

/* report_serving prints what the gateway answered during the faults. */
static void
report_serving(const fleet *f)
{
	print_message(
	    "serving: %d inferer/gateway SIGKILL, %d SIGSTOP; PredictBatch x %d symbols "
	    "through the gateway: %llu calls answered in full (%llu predictions), %llu failed or "
	    "partial (a 400 ms deadline, during the faults), %llu mixed model versions\n",
	    f->serve_kills, f->serve_stops, N_SYMBOLS, (unsigned long long)f->calls_ok,
	    (unsigned long long)f->items_ok, (unsigned long long)f->calls_failed,
	    (unsigned long long)f->mixed_versions);
}

/* rounds_of: the model version after `steps` steps in rounds of k steps. */
static uint64_t
rounds_of(int64_t steps, int64_t k)
{
	return (uint64_t)((steps + k - 1) / k);
}

/* bit_exact runs the fleet in a mode with rounds (sync, or local SGD with rounds
 * of k steps) without and with faults, and compares the final weights and
 * predictions bit for bit. */
static void
bit_exact(const char *name, const char *mode, int64_t k)
{
	static fleet ref, run;
	uint8_t *a, *b;
	size_t la, lb;
	uint64_t va, vb;
	psf_itest_stats s;
	char ref_name[64], run_name[64];

	double pa[N_SYMBOLS], pb[N_SYMBOLS];

	snprintf(ref_name, sizeof(ref_name), "%s-ref", name);
	snprintf(run_name, sizeof(run_name), "%s-faults", name);
	/* 1. Fault-free. */
	fleet_init(&ref, ref_name, mode);
	fleet_start(&ref);
	wait_done(&ref, 600);
	assert_true(psf_itest_ps_stats(ref.url, 5000, &s));
	assert_int_equal(s.finished, (size_t)ref.n_tr);
	assert_int_equal(s.version, rounds_of(s.steps, k));
	a = snapshot(&ref, &la, &va);
	final_predictions(&ref, va, pa);
	fleet_kill_all(&ref);

	/* 2. The same training under faults. */
	fleet_init(&run, run_name, mode);
	fleet_start(&run);
	chaos(&run, fault_count());
	wait_done(&run, 900);
	/* Every trainer exited 0 and its final report survived the ps restarts. */
	assert_true(psf_itest_ps_stats(run.url, 5000, &s));
	assert_int_equal(s.finished, (size_t)run.n_tr);
	/* One round per step (sync) or per k steps (local), none lost or applied twice. */
	assert_int_equal(s.version, rounds_of(s.steps, k));
	b = snapshot(&run, &lb, &vb);
	final_predictions(&run, vb, pb);
	fleet_kill_all(&run);

	print_message("%s: %lld steps x %d trainers; faults: %d ps SIGKILL (at versions", name,
	    (long long)s.steps, run.n_tr, run.ps_kills);
	for (int i = 0; i < run.n_kill_versions; i++)
		print_message(" %llu", (unsigned long long)run.kill_versions[i]);
	print_message(
	    "), %d trainer SIGKILL, %d ps SIGSTOP, %d trainer SIGSTOP; snapshot %zu bytes\n",
	    run.tr_kills, run.ps_stops, run.tr_stops, lb);
	report_serving(&run);
	assert_int_equal(va, vb);
	assert_int_equal(la, lb);
	if (memcmp(a, b, la) != 0) {
		size_t i = 0;
		while (a[i] == b[i])
			i++;
		fail_msg("final weights differ from the fault-free run at byte %zu of %zu", i, la);
	}
	/* The inferers restarted under faults serve exactly the fault-free model. */
	if (memcmp(pa, pb, sizeof(pa)) != 0)
		fail_msg("final predictions differ from the fault-free run's");
	assert_int_equal(run.mixed_versions, 0);
	assert_true(run.calls_ok > 0);
	free(a);
	free(b);
}

static void
test_fault_sync_bit_exact(void **state)
{
	(void)state;
	bit_exact("sync", "sync", 1);
}

/* Local SGD (rounds of 4 steps over model deltas) recovers bit for bit too: a
 * killed trainer redoes its block, a replayed delta is applied once. */
static void
test_fault_local_bit_exact(void **state)
{
	(void)state;
	bit_exact("local", "local, sync_every: 4", 4);
}

/* trace_count reads <run_dir>/trace/trainer-<i>.csv: marks acknowledged steps in
 * seen[] and counts lines; returns the number of steps seen twice. */
static int
trace_count(fleet *f, int i, uint8_t *seen, int64_t total, uint64_t *lines)
{
	char path[256], line[512];
	int dups = 0;
	FILE *t;

	snprintf(path, sizeof(path), "%s/trace/trainer-%d.csv", f->dir, i);
	t = fopen(path, "r");
	assert_non_null(t);
	while (fgets(line, sizeof(line), t) != NULL) {
		char *comma = strchr(line, ',');
		if (strncmp(line, "wall_time", 9) == 0 || comma == NULL)
			continue;
		long long step = strtoll(comma + 1, NULL, 10);
		assert_true(step >= 0 && step < total);
		dups += seen[step] != 0;
		seen[step] = 1;
		(*lines)++;
	}
	fclose(t);
	return dups;
}

static void
test_fault_async_exactly_once(void **state)
{
	static fleet run;
	psf_itest_stats s;
	uint64_t acked = 0, lines = 0;
	int dups = 0;

	(void)state;
	fleet_init(&run, "async-faults", "async");
	fleet_start(&run);
	chaos(&run, fault_count());
	wait_done(&run, 900);
	assert_true(psf_itest_ps_stats(run.url, 5000, &s));
	assert_int_equal(s.finished, (size_t)run.n_tr);
	for (int i = 0; i < run.n_tr; i++) {
		uint8_t *seen = calloc((size_t)s.steps, 1);
		dups += trace_count(&run, i, seen, s.steps, &lines);
		for (int64_t j = 0; j < s.steps; j++)
			acked += seen[j];
		free(seen);
	}
	{
		double p[N_SYMBOLS];
		final_predictions(&run, s.version, p);
	}
	fleet_kill_all(&run);
	print_message(
	    "async: %d trainers x %lld steps; applied %llu pushes; %llu acknowledged "
	    "(distinct worker,step in traces), %d twice; faults: %d ps SIGKILL, %d trainer SIGKILL, "
	    "%d ps SIGSTOP, %d trainer SIGSTOP\n",
	    run.n_tr, (long long)s.steps, (unsigned long long)s.version, (unsigned long long)acked,
	    dups, run.ps_kills, run.tr_kills, run.ps_stops, run.tr_stops);
	report_serving(&run);
	assert_int_equal(run.mixed_versions, 0);
	assert_true(run.calls_ok > 0);
	/* Every step of every trainer applied once: the version counts pushes. */
	assert_int_equal(s.version, (uint64_t)s.steps * (uint64_t)run.n_tr);
	/* No step acknowledged twice, none acknowledged beyond what was applied. A
	 * push applied whose acknowledgement died with its trainer has no line. */
	assert_int_equal(dups, 0);
	assert_true(acked <= s.version);
}

/* kill_live kills whatever a test left running (after a failed assertion). */
static int
kill_live(void **state)
{
	(void)state;
	for (int i = 0; i < n_live; i++)
		fleet_kill_all(live[i]);
	n_live = 0;
	return 0;
}

/* A trainer restarted after the ps restarted must rejoin and training must end:
 * its start-up Reduce (feature statistics, row counts) is answered from the
 * results the ps persisted before it was killed (it used to hang here, when the
 * ps kept them in memory only). */
static void
test_fault_trainer_restart_after_ps_restart(void **state)
{
	static fleet f;
	psf_itest_stats s;

	(void)state;
	fleet_init(&f, "reduce-after-restart", "sync");
	fleet_start(&f);
	for (int i = 0; i < 200 && (!psf_itest_ps_stats(f.url, 500, &s) || s.version < 20); i++)
		psf_sleep_ms(50);
	psf_itest_stop(&f.ps, SIGKILL);
	f.ps = spawn_node(&f, "ps0");
	psf_sleep_ms(500);
	psf_itest_stop(&f.tr[0], SIGKILL);
	f.tr[0] = spawn_indexed(&f, "trainer", 0);
	wait_done(&f, 120);
	assert_true(psf_itest_ps_stats(f.url, 5000, &s));
	assert_int_equal(s.version, (uint64_t)s.steps);
	assert_int_equal(s.finished, (size_t)f.n_tr);
	fleet_kill_all(&f);
}

static int
group_setup(void **state)
{
	char err[256];
	psf_datagen_cfg g = {24, 160, 3, 0};

	(void)state;
	rng = (uint64_t)env_int("PSF_FAULT_SEED", 1) * 0x9e3779b97f4a7c15ull + 1;
	snprintf(data_dir, sizeof(data_dir), "/tmp/psf-fault-XXXXXX");
	assert_non_null(mkdtemp(data_dir));
	snprintf(data_csv, sizeof(data_csv), "%s/data.csv", data_dir);
	assert_int_equal(psf_datagen_write(&g, data_csv, err, sizeof(err)), PSF_OK);
	print_message("fault_test: seed %d, %d faults per run, dir %s\n",
	    env_int("PSF_FAULT_SEED", 1), fault_count(), data_dir);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	if (getenv("PSF_FAULT_KEEP") == NULL && psf_rm_rf(data_dir) != PSF_OK)
		return -1;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_fault_sync_bit_exact, kill_live),
	    cmocka_unit_test_teardown(test_fault_local_bit_exact, kill_live),
	    cmocka_unit_test_teardown(test_fault_async_exactly_once, kill_live),
	    cmocka_unit_test_teardown(test_fault_trainer_restart_after_ps_restart, kill_live),
	};

	if (!psf_itest_has_psfleet("fault_test"))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	/* The nodes log at info (to their files): a rare failure under load (a
	 * trainer's RegisterWorker to ps0 unanswered for minutes) needs ps0's
	 * registrations and RPC lines to be understood. */
	setenv("PSF_LOG_LEVEL", "info", 1);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
