/* Trainers survive a ps crash and their own crash: real `psfleet node` processes,
 * SIGKILL, restart; training completes with exactly one round per step. And a
 * trainer stops at once on SIGTERM, even while its calls wait or retry. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/datagen.h"
#include "common/rpc_client.h"
#include "common/util.h"

extern char **environ;

typedef struct fenv {
	char dir[64];
	char cfg[128];
	char url[160];
} fenv;

static void
setup_timeout(fenv *e, uint32_t request_timeout_ms)
{
	char err[256];
	char data[128];
	psf_datagen_cfg g = {30, 200, 3, 0};
	FILE *f;

	snprintf(e->dir, sizeof(e->dir), "/tmp/psf-tfault-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->cfg, sizeof(e->cfg), "%s/fleet.yaml", e->dir);
	snprintf(e->url, sizeof(e->url), "ipc://%s/ps0.sock", e->dir);
	snprintf(data, sizeof(data), "%s/data.csv", e->dir);
	assert_int_equal(psf_datagen_write(&g, data, err, sizeof(err)), PSF_OK);
	f = fopen(e->cfg, "w");
	assert_non_null(f);
	fprintf(f, "name: fault\nseed: 9\nrun_dir: %s\nnodes:\n  ps:\n    - {id: ps0, listen: \"%s\"}\n"
	    "  trainers:\n    - {id: trainer-0}\n    - {id: trainer-1}\n"
	    "data: {path: %s}\n"
	    "features: [\"return:1\", \"return:5\", \"ratio_sma:10\"]\n"
	    "target: next_return\n"
	    "model: {kind: linear}\n"
	    "optimizer: {kind: adam, learning_rate: 0.01}\n"
	    "training: {epochs: 4, batch_size: 32}\n"
	    "consistency: {mode: sync, straggler_timeout_ms: 60000, heartbeat_ms: 200}\n"
	    "durability: {mode: every-commit}\n"
	    "limits: {request_timeout_ms: %u}\n", e->dir, e->url, data, request_timeout_ms);
	fclose(f);
}

static void
setup(fenv *e)
{
	setup_timeout(e, 2000);
}

static pid_t
spawn_node(fenv *e, const char *id, const char *extra1, const char *extra2)
{
	const char *bin = getenv("PSFLEET");
	char log[160];
	pid_t pid;
	posix_spawn_file_actions_t fa;
	char *argv[] = {(char *)bin, "node", e->cfg, "--id", (char *)id, (char *)extra1,
	    (char *)extra2, NULL};

	snprintf(log, sizeof(log), "%s/%s.log", e->dir, id);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

/* stats asks ps0 for its model version and finished reports (0 on failure). */
static uint64_t
ps_version(fenv *e, size_t *finished, uint64_t *steps)
{
	psf_rpc_client *c;
	Psfleet__V1__StatsRequest req = PSFLEET__V1__STATS_REQUEST__INIT;
	Psfleet__V1__StatsReply *r = NULL;
	psf_rpc_call_opts o = {1000, 1, 0};
	uint64_t v = 0;

	*finished = 0;
	if (psf_rpc_client_open(e->url, NULL, &c) != PSF_OK)
		return 0;
	if (psf_rpc_client_call(c, "psfleet.v1.ParameterServer/Stats", &req.base,
	        &psfleet__v1__stats_reply__descriptor, &o, (ProtobufCMessage **)&r, NULL) == PSF_OK) {
		v = r->model_version;
		for (size_t i = 0; i < r->n_reports; i++) {
			*finished += r->reports[i]->finished ? 1 : 0;
			if (steps != NULL)
				*steps = (uint64_t)r->reports[i]->step;
		}
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	psf_rpc_client_close(c);
	return v;
}

static int
wait_exit(pid_t pid, int timeout_s)
{
	int status;

	for (int i = 0; i < timeout_s * 20; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		psf_sleep_ms(50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static void
finish(fenv *e, pid_t ps)
{
	kill(ps, SIGTERM);
	assert_int_equal(wait_exit(ps, 20), 0);
	assert_int_equal(psf_rm_rf(e->dir), PSF_OK);
}

static void
test_trainers_survive_ps_crash(void **state)
{
	fenv e;
	pid_t ps, t0, t1;
	size_t finished = 0;
	uint64_t steps = 0, v;

	(void)state;
	setup(&e);
	ps = spawn_node(&e, "ps0", NULL, NULL);
	t0 = spawn_node(&e, "trainer-0", "--delay-ms", "5");
	t1 = spawn_node(&e, "trainer-1", "--delay-ms", "5");
	for (int i = 0; i < 400 && ps_version(&e, &finished, NULL) < 20; i++)
		psf_sleep_ms(25);
	kill(ps, SIGKILL); /* mid-training */
	waitpid(ps, NULL, 0);
	psf_sleep_ms(300);
	ps = spawn_node(&e, "ps0", NULL, NULL);
	assert_int_equal(wait_exit(t0, 120), 0);
	assert_int_equal(wait_exit(t1, 120), 0);
	v = ps_version(&e, &finished, &steps);
	assert_int_equal(finished, 2);
	assert_true(steps > 20);
	assert_int_equal(v, steps); /* sync: one round per step, none lost or doubled */
	finish(&e, ps);
}

static void
test_trainer_restart_rejoins(void **state)
{
	fenv e;
	pid_t ps, t0, t1;
	size_t finished = 0;
	uint64_t steps = 0;

	(void)state;
	setup(&e);
	ps = spawn_node(&e, "ps0", NULL, NULL);
	t0 = spawn_node(&e, "trainer-0", NULL, NULL);
	t1 = spawn_node(&e, "trainer-1", "--exit-at-step", "30");
	assert_int_equal(wait_exit(t1, 60), 3); /* the injected crash */
	t1 = spawn_node(&e, "trainer-1", NULL, NULL); /* as the launcher would */
	assert_int_equal(wait_exit(t0, 120), 0);
	assert_int_equal(wait_exit(t1, 120), 0);
	uint64_t v = ps_version(&e, &finished, &steps);
	assert_int_equal(finished, 2);
	assert_true(steps > 30);
	assert_int_equal(v, steps);
	finish(&e, ps);
}

/* term_seconds SIGTERMs pid and returns how long it took to exit 0 (-1: it did
 * not exit 0 within 20 s). */
static double
term_seconds(pid_t pid)
{
	uint64_t t0 = psf_now_ns();

	kill(pid, SIGTERM);
	if (wait_exit(pid, 20) != 0)
		return -1;
	return (double)(psf_now_ns() - t0) / 1e9;
}

/* A SIGTERM must not wait for the call in flight: neither for retries while
 * the ps is unreachable (retry_ms, 120 s) nor for a call the ps holds (here the
 * start-up Reduce, which waits for trainer-1, with a 30 s request deadline). */
static void
test_trainer_stops_promptly(void **state)
{
	fenv e;
	pid_t ps, t0;
	double took;

	(void)state;
	setup_timeout(&e, 30000);
	/* 1. No ps at all: the trainer retries its registration. */
	t0 = spawn_node(&e, "trainer-0", NULL, NULL);
	psf_sleep_ms(1500);
	took = term_seconds(t0);
	print_message("stop while the ps is unreachable: exit 0 after %.2f s\n", took);
	assert_true(took >= 0 && took < 3.0);
	/* 2. The ps holds the call: trainer-1 never comes to the Reduce. */
	ps = spawn_node(&e, "ps0", NULL, NULL);
	t0 = spawn_node(&e, "trainer-0", NULL, NULL);
	psf_sleep_ms(2000);
	took = term_seconds(t0);
	print_message("stop during a held call (30 s deadline): exit 0 after %.2f s\n", took);
	assert_true(took >= 0 && took < 3.0);
	finish(&e, ps);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trainers_survive_ps_crash),
		cmocka_unit_test(test_trainer_restart_rejoins),
		cmocka_unit_test(test_trainer_stops_promptly),
	};

	if (getenv("PSFLEET") == NULL) {
		fprintf(stderr, "trainer_fault_test: set PSFLEET to the psfleet binary\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
