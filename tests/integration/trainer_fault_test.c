/* Trainers survive a ps crash and their own crash: real `psfleet node` processes,
 * SIGKILL, restart; training completes with exactly one round per step. And a
 * trainer stops at once on SIGTERM, even while its calls wait or retry. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/data/datagen.h"

#include "tests/integration/itest.h"

/* setup_fleet writes a config of two trainers and n_ps ps nodes (1 or 2): ps0
 * at e->url, ps1 at ipc://<dir>/ps1.sock. */
static void
setup_fleet(psf_itest_dir *e, int n_ps, uint32_t request_timeout_ms)
{
	char err[256];
	char data[128], ps1[200] = "";
	psf_datagen_cfg g = {30, 200, 3, 0};
	FILE *f;

	psf_itest_dir_make(e, "tfault");
	snprintf(data, sizeof(data), "%s/data.csv", e->dir);
	assert_int_equal(psf_datagen_write(&g, data, err, sizeof(err)), PSF_OK);
	f = fopen(e->cfg, "w");
	assert_non_null(f);
	if (n_ps == 2)
		snprintf(ps1, sizeof(ps1), "    - {id: ps1, listen: \"ipc://%s/ps1.sock\"}\n",
		    e->dir);
	fprintf(f,
	    "name: fault\nseed: 9\nrun_dir: %s\nnodes:\n  ps:\n    - {id: ps0, listen: \"%s\"}\n"
	    "%s  trainers:\n    - {id: trainer-0}\n    - {id: trainer-1}\n"
	    "data: {path: %s}\n"
	    "features: [\"return:1\", \"return:5\", \"ratio_sma:10\"]\n"
	    "target: next_return\n"
	    "model: {kind: linear}\n"
	    "optimizer: {kind: adam, learning_rate: 0.01}\n"
	    "training: {epochs: 4, batch_size: 32}\n"
	    "consistency: {mode: sync, straggler_timeout_ms: 60000, heartbeat_ms: 200}\n"
	    "durability: {mode: every-commit}\n"
	    "limits: {request_timeout_ms: %u}\n",
	    e->dir, e->url, ps1, data, request_timeout_ms);
	fclose(f);
}

static void
setup_timeout(psf_itest_dir *e, uint32_t request_timeout_ms)
{
	setup_fleet(e, 1, request_timeout_ms);
}

static void
setup(psf_itest_dir *e)
{
	setup_timeout(e, 2000);
}

static pid_t
spawn_node(psf_itest_dir *e, const char *id, const char *extra1, const char *extra2)
{
	return psf_itest_spawn_node(e->dir, e->cfg, id, extra1, extra2);
}

/* wait_exit: the child's exit code, or -1 after a SIGKILL at timeout_s. */
static int
wait_exit(pid_t pid, int timeout_s)
{
	return psf_itest_wait_exit(pid, timeout_s, 0);
}

static void
finish(psf_itest_dir *e, pid_t ps)
{
	kill(ps, SIGTERM);
	assert_int_equal(wait_exit(ps, 20), 0);
	assert_int_equal(psf_rm_rf(e->dir), PSF_OK);
}

static void
test_trainers_survive_ps_crash(void **state)
{
	psf_itest_dir e;
	pid_t ps, t0, t1;
	psf_itest_stats s;

	(void)state;
	setup(&e);
	ps = spawn_node(&e, "ps0", NULL, NULL);
	t0 = spawn_node(&e, "trainer-0", "--delay-ms", "5");
	t1 = spawn_node(&e, "trainer-1", "--delay-ms", "5");
	for (int i = 0; i < 400 && (!psf_itest_ps_stats(e.url, 1000, &s) || s.version < 20); i++)
		psf_sleep_ms(25);
	psf_itest_stop(&ps, SIGKILL); /* mid-training */
	psf_sleep_ms(300);
	ps = spawn_node(&e, "ps0", NULL, NULL);
	assert_int_equal(wait_exit(t0, 120), 0);
	assert_int_equal(wait_exit(t1, 120), 0);
	psf_itest_ps_stats(e.url, 1000, &s); /* zeroed if the ps does not answer */
	assert_int_equal(s.finished, 2);
	assert_true(s.steps > 20);
	assert_int_equal(s.version, s.steps); /* sync: one round per step, none lost or doubled */
	finish(&e, ps);
}

static void
test_trainer_restart_rejoins(void **state)
{
	psf_itest_dir e;
	pid_t ps, t0, t1;
	psf_itest_stats s;

	(void)state;
	setup(&e);
	ps = spawn_node(&e, "ps0", NULL, NULL);
	t0 = spawn_node(&e, "trainer-0", NULL, NULL);
	t1 = spawn_node(&e, "trainer-1", "--exit-at-step", "30");
	assert_int_equal(wait_exit(t1, 60), 3);       /* the injected crash */
	t1 = spawn_node(&e, "trainer-1", NULL, NULL); /* as the launcher would */
	assert_int_equal(wait_exit(t0, 120), 0);
	assert_int_equal(wait_exit(t1, 120), 0);
	psf_itest_ps_stats(e.url, 1000, &s); /* zeroed if the ps does not answer */
	assert_int_equal(s.finished, 2);
	assert_true(s.steps > 30);
	assert_int_equal(s.version, s.steps);
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
 * start-up Reduce, which waits for trainer-1, with a 30 s request deadline),
 * nor for a Register a SIGSTOPped ps holds (case 3). */
static void
test_trainer_stops_promptly(void **state)
{
	psf_itest_dir e;
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

/* Case 3 of the above: the trainer is stopped while registering, its Register
 * held by a ps that is alive but does not answer (SIGSTOPped). The trainer
 * registers in config order, so it is connected to ps1 (up, then stopped)
 * while it still retries ps0 (not up yet); once ps0 is up, its Register goes
 * to the stopped ps1 and waits there for the 30 s request deadline. */
static void
test_trainer_stops_while_registering(void **state)
{
	psf_itest_dir e;
	psf_itest_stats s;
	char ps1_url[200];
	pid_t ps0, ps1, t0;
	double took;

	(void)state;
	setup_fleet(&e, 2, 30000);
	snprintf(ps1_url, sizeof(ps1_url), "ipc://%s/ps1.sock", e.dir);
	ps1 = spawn_node(&e, "ps1", NULL, NULL);
	assert_true(psf_itest_ps_stats(ps1_url, 10000, &s));
	t0 = spawn_node(&e, "trainer-0", NULL, NULL);
	psf_sleep_ms(1500); /* loaded its data and connected to both urls */
	kill(ps1, SIGSTOP); /* the connection stays; nothing is answered */
	ps0 = spawn_node(&e, "ps0", NULL, NULL);
	assert_true(psf_itest_ps_stats(e.url, 10000, &s));
	psf_sleep_ms(1000); /* registered with ps0 (retried every 200 ms), held by ps1 */
	took = term_seconds(t0);
	print_message("stop while a stopped ps holds the Register: exit 0 after %.2f s\n", took);
	kill(ps1, SIGCONT); /* both ps finish cleanly, whatever the trainer did */
	kill(ps1, SIGTERM);
	assert_int_equal(wait_exit(ps1, 20), 0);
	finish(&e, ps0);
	assert_true(took >= 0 && took < 3.0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trainers_survive_ps_crash),
	    cmocka_unit_test(test_trainer_restart_rejoins),
	    cmocka_unit_test(test_trainer_stops_promptly),
	    cmocka_unit_test(test_trainer_stops_while_registering),
	};

	if (!psf_itest_has_psfleet("trainer_fault_test"))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
