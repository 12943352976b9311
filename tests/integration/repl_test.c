/* Replicated ps shards on real processes (replication: 2, four `psfleet node` ps
 * processes = two shards of two replicas, two trainers, every-commit):
 *
 *  sync:   the primary of a shard is SIGKILLed at random steps, its data directory
 *          deleted and the node restarted (as a launcher would): a backup takes
 *          over, the restarted node catches up from it and rejoins, training ends
 *          without restarting anything else; the final weights (every stored key
 *          through Snapshot) equal the fault-free run's bit for bit, and every
 *          shard's model version equals the steps: no round lost or applied twice.
 *  async, ssp: the same faults; every shard's applied-push count equals trainers x
 *          steps, and no acknowledged step (trainer traces) is missing or twice.
 *  backup: a backup killed (restarted with its disk) while the primary lives, then
 *          both replicas of a shard killed: the trainers wait and say why ("ps
 *          shard 0: no primary (...)"), and resume when one comes back with its
 *          disk; sync results still bit-identical to the fault-free run.
 *
 * Environment: PSF_REPL_SEED (default 1), PSF_REPL_KILLS (primary kills per run,
 * default 3), PSF_REPL_KEEP (keep the directory). Every child is killed by the test. */
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

#define N_PS 4
#define N_SHARDS 2
#define N_TR 2

typedef struct fleet {
	char dir[96];
	char cfg[160];
	char url[N_PS][200];
	pid_t ps[N_PS];
	pid_t tr[N_TR];
	bool tr_done[N_TR];
	int kills;
	uint64_t failover_ms[64]; /* kill -> a primary answers again, per kill */
} fleet;

static char data_dir[64];
static char data_csv[128];
static fleet *live[4];
static int n_live;
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

static void
fleet_init(fleet *f, const char *name, const char *mode)
{
	FILE *cf;

	memset(f, 0, sizeof(*f));
	if (n_live < 4)
		live[n_live++] = f;
	snprintf(f->dir, sizeof(f->dir), "%s/%s", data_dir, name);
	assert_int_equal(mkdir(f->dir, 0755), 0);
	snprintf(f->cfg, sizeof(f->cfg), "%s/fleet.yaml", f->dir);
	cf = fopen(f->cfg, "w");
	assert_non_null(cf);
	fprintf(cf, "name: repl\nseed: 11\nrun_dir: %s\nreplication: 2\nnodes:\n  ps:\n", f->dir);
	for (int i = 0; i < N_PS; i++) {
		snprintf(f->url[i], sizeof(f->url[i]), "ipc://%s/ps%d.sock", f->dir, i);
		fprintf(cf, "    - {id: ps%d, listen: \"%s\"}\n", i, f->url[i]);
	}
	fprintf(cf, "  trainers:\n");
	for (int i = 0; i < N_TR; i++)
		fprintf(cf, "    - {id: trainer-%d}\n", i);
	fprintf(cf,
	    "data: {path: %s}\n"
	    "features: [\"return:1\", \"return:5\", \"ratio_sma:10\", \"std:5\"]\n"
	    "target: next_return\n"
	    "model: {kind: mlp, hidden: [8], embedding_dim: 2, symbol_bias: true, "
	    "chunk_floats: 16}\n"
	    "optimizer: {kind: adam, learning_rate: 0.005}\n"
	    "training: {epochs: 8, batch_size: 32}\n"
	    "consistency: {mode: %s, straggler_timeout_ms: 120000, heartbeat_ms: 200}\n"
	    "durability: {mode: every-commit}\n"
	    "limits: {request_timeout_ms: 2000}\n",
	    data_csv, mode);
	fclose(cf);
}

static pid_t
spawn_ps(fleet *f, int i)
{
	char id[16];

	snprintf(id, sizeof(id), "ps%d", i);
	return psf_itest_spawn_node(f->dir, f->cfg, id, NULL, NULL);
}

static void
fleet_start(fleet *f)
{
	for (int i = 0; i < N_PS; i++)
		f->ps[i] = spawn_ps(f, i);
	for (int i = 0; i < N_TR; i++) {
		char id[16];
		snprintf(id, sizeof(id), "trainer-%d", i);
		/* at least 25 ms a step, so faults land mid-training */
		f->tr[i] = psf_itest_spawn_node(f->dir, f->cfg, id, "--delay-ms", "25");
	}
}

static void
fleet_kill_all(fleet *f)
{
	for (int i = 0; i < N_TR; i++) {
		if (!f->tr_done[i])
			psf_itest_stop(&f->tr[i], SIGKILL);
		f->tr[i] = 0;
	}
	for (int i = 0; i < N_PS; i++)
		psf_itest_stop(&f->ps[i], SIGTERM);
}

static bool
reap(fleet *f)
{
	bool all = true;

	for (int i = 0; i < N_TR; i++) {
		int status;
		if (f->tr_done[i])
			continue;
		if (waitpid(f->tr[i], &status, WNOHANG) == f->tr[i]) {
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				char cmd[600];
				fleet_kill_all(f);
				snprintf(cmd, sizeof(cmd),
				    "tail -n 25 '%s/trainer-%d.log' >&2; for p in 0 1 2 3; do echo "
				    "\"--- ps$p\" >&2; tail -n 15 \"%s/ps$p.log\" >&2; done",
				    f->dir, i, f->dir);
				if (system(cmd) != 0)
					print_message("(no log)\n");
				fail_msg("trainer-%d ended with status %#x (see %s)", i, status,
				    f->dir);
			}
			f->tr_done[i] = true;
		}
		all = all && f->tr_done[i];
	}
	return all;
}

static void
wait_done(fleet *f, int timeout_s)
{
	for (int i = 0; i < timeout_s * 20; i++) {
		if (reap(f))
			return;
		psf_sleep_ms(50);
	}
	fleet_kill_all(f);
	fail_msg("training did not end within %d s (logs in %s)", timeout_s, f->dir);
}

/* primary_stats finds the replica of shard s that answers Stats (its primary). */
static int
primary_stats(fleet *f, int s, psf_itest_stats *st)
{
	for (int r = 0; r < 2; r++) {
		int i = s + r * N_SHARDS;
		if (f->ps[i] != 0 && psf_itest_ps_stats(f->url[i], 1000, st))
			return i;
	}
	return -1;
}

/* snapshot_shard appends shard s's stored keys (keys, lens, float bits) read
 * through Snapshot from its primary. */
static void
snapshot_shard(fleet *f, int s, uint8_t **buf, size_t *n, uint64_t *version)
{
	psf_itest_stats st;
	int p = -1;
	psf_rpc_client *c;
	Psfleet__V1__SnapshotRequest req = PSFLEET__V1__SNAPSHOT_REQUEST__INIT;
	psf_rpc_call_opts o = {10000, 1, 0};
	bool done = false;

	for (int i = 0; i < 100 && (p = primary_stats(f, s, &st)) < 0; i++)
		psf_sleep_ms(100);
	assert_true(p >= 0);
	assert_int_equal(psf_rpc_client_open(f->url[p], NULL, &c), PSF_OK);
	req.max_bytes = 1 << 20;
	while (!done) {
		Psfleet__V1__SnapshotReply *r = NULL;
		assert_int_equal(psf_rpc_client_call(c, PSF_M_SNAPSHOT, &req.base,
		                     &psfleet__v1__snapshot_reply__descriptor, &o,
		                     (ProtobufCMessage **)&r, NULL),
		    PSF_OK);
		size_t add = r->n_keys * 12 + r->values.len;
		*buf = realloc(*buf, *n + add + 1);
		assert_non_null(*buf);
		for (size_t i = 0; i < r->n_keys; i++) {
			memcpy(*buf + *n, &r->keys[i], 8);
			memcpy(*buf + *n + 8, &r->lens[i], 4);
			*n += 12;
		}
		memcpy(*buf + *n, r->values.data, r->values.len);
		*n += r->values.len;
		req.version = r->version;
		*version = r->version;
		req.start_key = r->next_key;
		done = r->done;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	psf_rpc_client_close(c);
}

static uint8_t *
snapshot(fleet *f, size_t *len, uint64_t versions[N_SHARDS])
{
	uint8_t *buf = NULL;
	size_t n = 0;

	for (int s = 0; s < N_SHARDS; s++)
		snapshot_shard(f, s, &buf, &n, &versions[s]);
	*len = n;
	return buf;
}

/* check_counts: every shard's version is the steps (sync) or trainers x steps.
 * The trainers' reports (finished, steps) live on shard 0. */
static int64_t
check_counts(fleet *f, bool rounds)
{
	int64_t steps = 0;

	for (int s = 0; s < N_SHARDS; s++) {
		psf_itest_stats st;
		int p = -1;
		for (int i = 0; i < 100 && (p = primary_stats(f, s, &st)) < 0; i++)
			psf_sleep_ms(100);
		assert_true(p >= 0);
		if (s == 0) {
			assert_int_equal(st.finished, (size_t)N_TR);
			steps = st.steps;
		}
		assert_int_equal(st.version, rounds ? (uint64_t)steps : (uint64_t)steps * N_TR);
	}
	return steps;
}

/* kill_primary SIGKILLs the primary of a random shard, deletes its data
 * directory (wipe) and restarts it, then measures how long until a primary of
 * that shard answers again. */
static void
kill_primary(fleet *f, bool wipe)
{
	int s = (int)rnd(N_SHARDS), p;
	psf_itest_stats st;
	char path[256];
	uint64_t t0;

	if ((p = primary_stats(f, s, &st)) < 0)
		return;
	psf_itest_stop(&f->ps[p], SIGKILL);
	t0 = psf_now_ms();
	if (wipe) {
		snprintf(path, sizeof(path), "%s/ps%d", f->dir, p);
		assert_int_equal(psf_rm_rf(path), PSF_OK);
	}
	psf_sleep_ms(100 + rnd(300));
	f->ps[p] = spawn_ps(f, p);
	while (primary_stats(f, s, &st) < 0 && psf_now_ms() - t0 < 30000)
		psf_sleep_ms(20);
	if (f->kills < 64)
		f->failover_ms[f->kills] = psf_now_ms() - t0;
	f->kills++;
}

static void
chaos(fleet *f, int n)
{
	for (int k = 0; k < n && !reap(f); k++) {
		psf_sleep_ms(800 + rnd(1500));
		if (reap(f))
			break;
		kill_primary(f, true);
	}
}

static void
report(const char *name, const fleet *f, int64_t steps)
{
	uint64_t max = 0;

	print_message("%s: %lld steps x %d trainers; %d primary SIGKILLs (disk wiped), time to a "
	              "serving primary (ms):",
	    name, (long long)steps, N_TR, f->kills);
	for (int i = 0; i < f->kills && i < 64; i++) {
		print_message(" %llu", (unsigned long long)f->failover_ms[i]);
		max = f->failover_ms[i] > max ? f->failover_ms[i] : max;
	}
	print_message(" (max %llu)\n", (unsigned long long)max);
}

static fleet ref_sync;
static uint8_t *ref_snap;
static size_t ref_len;
static uint64_t ref_versions[N_SHARDS];

/* reference runs the sync fleet once without faults (shared by the tests). */
static void
reference(void)
{
	if (ref_snap != NULL)
		return;
	fleet_init(&ref_sync, "sync-ref", "sync");
	fleet_start(&ref_sync);
	wait_done(&ref_sync, 600);
	check_counts(&ref_sync, true);
	ref_snap = snapshot(&ref_sync, &ref_len, ref_versions);
	fleet_kill_all(&ref_sync);
}

static void
assert_same_as_ref(fleet *f)
{
	uint64_t v[N_SHARDS];
	size_t len;
	uint8_t *b = snapshot(f, &len, v);

	for (int s = 0; s < N_SHARDS; s++)
		assert_int_equal(v[s], ref_versions[s]);
	assert_int_equal(len, ref_len);
	if (memcmp(b, ref_snap, len) != 0) {
		size_t i = 0;
		while (b[i] == ref_snap[i])
			i++;
		fail_msg("final weights differ from the fault-free run at byte %zu of %zu", i, len);
	}
	free(b);
}

static void
test_repl_sync_bit_exact(void **state)
{
	static fleet run;
	int64_t steps;

	(void)state;
	reference();
	fleet_init(&run, "sync-faults", "sync");
	fleet_start(&run);
	chaos(&run, env_int("PSF_REPL_KILLS", 3));
	wait_done(&run, 600);
	steps = check_counts(&run, true);
	assert_same_as_ref(&run);
	report("sync", &run, steps);
	assert_true(run.kills > 0);
	fleet_kill_all(&run);
}

/* trace_count reads <run_dir>/trace/trainer-<i>.csv: marks acknowledged steps in
 * seen[]; returns the number of steps seen twice. */
static int
trace_count(fleet *f, int i, uint8_t *seen, int64_t total)
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
	}
	fclose(t);
	return dups;
}

static void
no_lost_push(const char *name, const char *mode)
{
	static fleet run;
	int64_t steps;
	int dups = 0;

	fleet_init(&run, name, mode);
	fleet_start(&run);
	chaos(&run, env_int("PSF_REPL_KILLS", 3));
	wait_done(&run, 600);
	/* every shard applied trainers x steps pushes: none lost, none twice */
	steps = check_counts(&run, false);
	for (int i = 0; i < N_TR; i++) {
		uint8_t *seen = calloc((size_t)steps, 1);
		assert_non_null(seen);
		dups += trace_count(&run, i, seen, steps);
		for (int64_t j = 0; j < steps; j++)
			assert_true(seen[j]); /* acknowledged, every one */
		free(seen);
	}
	assert_int_equal(dups, 0);
	report(name, &run, steps);
	fleet_kill_all(&run);
}

static void
test_repl_async_no_lost_push(void **state)
{
	(void)state;
	no_lost_push("async", "async");
}

static void
test_repl_ssp_no_lost_push(void **state)
{
	(void)state;
	no_lost_push("ssp", "ssp, staleness: 2");
}

/* file_has tells whether the file at path contains needle. */
static bool
file_has(const char *path, const char *needle)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "grep -qF '%s' '%s'", needle, path);
	return system(cmd) == 0;
}

static void
test_repl_backup_and_both_killed(void **state)
{
	static fleet run;
	psf_itest_stats st;
	char log[256];
	int p, b;

	(void)state;
	reference();
	fleet_init(&run, "backup-faults", "sync");
	fleet_start(&run);
	for (int i = 0; i < 600 && ((p = primary_stats(&run, 0, &st)) < 0 || st.version < 20); i++)
		psf_sleep_ms(50);
	assert_true(p >= 0);
	/* 1. The backup of shard 0 dies and comes back with its disk: training goes on. */
	b = p == 0 ? 2 : 0;
	psf_itest_stop(&run.ps[b], SIGKILL);
	psf_sleep_ms(700);
	{
		int q = -1; /* the primary drops it after a replication timeout and goes on */
		for (int i = 0; i < 50 && (q = primary_stats(&run, 0, &st)) < 0; i++)
			psf_sleep_ms(100);
		assert_int_equal(q, p);
	}
	run.ps[b] = spawn_ps(&run, b);
	psf_sleep_ms(1500);
	/* 2. Both replicas of shard 0 die: the trainers wait and say why. */
	psf_itest_stop(&run.ps[p], SIGKILL);
	psf_itest_stop(&run.ps[b], SIGKILL);
	psf_sleep_ms(3000);
	assert_false(reap(&run)); /* nobody gave up */
	snprintf(log, sizeof(log), "%s/trainer-0.log", run.dir);
	assert_true(file_has(log, "ps shard 0: no primary ("));
	/* 3. One comes back with its disk: the fleet resumes and ends. */
	run.ps[p] = spawn_ps(&run, p);
	psf_sleep_ms(1500);
	run.ps[b] = spawn_ps(&run, b);
	wait_done(&run, 600);
	check_counts(&run, true);
	assert_same_as_ref(&run);
	fleet_kill_all(&run);
}

static int
kill_live(void **state)
{
	(void)state;
	for (int i = 0; i < n_live; i++)
		fleet_kill_all(live[i]);
	n_live = 0;
	return 0;
}

static int
group_setup(void **state)
{
	char err[256];
	psf_datagen_cfg g = {24, 160, 3, 0};

	(void)state;
	rng = (uint64_t)env_int("PSF_REPL_SEED", 1) * 0x9e3779b97f4a7c15ull + 1;
	snprintf(data_dir, sizeof(data_dir), "/tmp/psf-repl-XXXXXX");
	assert_non_null(mkdtemp(data_dir));
	snprintf(data_csv, sizeof(data_csv), "%s/data.csv", data_dir);
	assert_int_equal(psf_datagen_write(&g, data_csv, err, sizeof(err)), PSF_OK);
	print_message("repl_test: seed %d, dir %s\n", env_int("PSF_REPL_SEED", 1), data_dir);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	free(ref_snap);
	if (getenv("PSF_REPL_KEEP") == NULL && psf_rm_rf(data_dir) != PSF_OK)
		return -1;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_repl_sync_bit_exact, kill_live),
	    cmocka_unit_test_teardown(test_repl_async_no_lost_push, kill_live),
	    cmocka_unit_test_teardown(test_repl_ssp_no_lost_push, kill_live),
	    cmocka_unit_test_teardown(test_repl_backup_and_both_killed, kill_live),
	};

	if (!psf_itest_has_psfleet("repl_test"))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	setenv("PSF_LOG_LEVEL", "info", 1);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
