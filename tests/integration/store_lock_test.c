/* One LMDB data_dir, one ps: a store directory is locked while open. A second
 * psf_store_open of the same directory fails with PSF_ELOCKED (in this process,
 * and from a real second `psfleet node` process, which exits 2 naming the
 * holder's pid); the lock dies with its holder, even by SIGKILL, so a restarted
 * ps opens the directory at once. Needs $PSFLEET. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/base/util.h"
#include "ps/store.h"

#include "tests/integration/itest.h"

static void
test_store_open_twice_in_process(void **state)
{
	psf_itest_dir d;
	psf_store *a = NULL, *b = NULL;

	(void)state;
	psf_itest_dir_make(&d, "lock");
	assert_int_equal(psf_store_open(d.dir, NULL, &a), PSF_OK);
	assert_int_equal(psf_store_open(d.dir, NULL, &b), PSF_ELOCKED);
	assert_null(b);
	psf_store_close(a);
	/* Closed: the lock is free again. */
	assert_int_equal(psf_store_open(d.dir, NULL, &b), PSF_OK);
	psf_store_close(b);
	assert_int_equal(psf_rm_rf(d.dir), PSF_OK);
}

/* file_contains tells whether the file at path contains text. */
static bool
file_contains(const char *path, const char *text)
{
	char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

static void
test_second_ps_on_one_data_dir_exits_2(void **state)
{
	psf_itest_dir d;
	psf_itest_stats st;
	char other[200], log[200], want[64], *argv[8];
	pid_t holder, second;
	int rc;
	FILE *f;

	(void)state;
	psf_itest_dir_make(&d, "lock");
	f = fopen(d.cfg, "w");
	assert_non_null(f);
	fprintf(f,
	    "name: lock\nseed: 1\nrun_dir: %s\nnodes:\n  ps:\n"
	    "    - {id: ps0, listen: \"%s\"}\n  trainers:\n    - {id: trainer-0}\n"
	    "data: {path: %s/none.csv}\nfeatures: [\"lag:0\"]\nmodel: {kind: linear}\n",
	    d.dir, d.url, d.dir);
	fclose(f);
	holder = psf_itest_spawn_node(d.dir, d.cfg, "ps0", NULL, NULL);
	assert_true(psf_itest_ps_stats(d.url, 20000, &st));

	/* The same node again, on another address: it must not serve the store. */
	snprintf(other, sizeof(other), "ipc://%s/other.sock", d.dir);
	snprintf(log, sizeof(log), "%s/second.log", d.dir);
	argv[0] = getenv("PSFLEET");
	argv[1] = "node";
	argv[2] = d.cfg;
	argv[3] = "--id";
	argv[4] = "ps0";
	argv[5] = "--listen";
	argv[6] = other;
	argv[7] = NULL;
	second = psf_itest_spawn(argv, log, false);
	rc = psf_itest_wait_exit(second, 60, 0);
	snprintf(want, sizeof(want), "(pid %ld)", (long)holder);
	if (rc != 2 || !file_contains(log, want))
		fail_msg("the second ps exited %d (want 2) and its log %s %s '%s'", rc, log,
		    file_contains(log, want) ? "names" : "does not name", want);
	assert_true(psf_itest_ps_stats(d.url, 5000, &st)); /* the holder still serves */

	/* SIGKILL leaves the lock file behind, but no lock: a new ps opens at once. */
	assert_int_not_equal(psf_itest_stop(&holder, SIGKILL), -1);
	second = psf_itest_spawn(argv, log, false);
	assert_true(psf_itest_ps_stats(other, 20000, &st));
	rc = psf_itest_stop(&second, SIGTERM);
	assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
	if (getenv("PSF_KEEP") == NULL)
		assert_int_equal(psf_rm_rf(d.dir), PSF_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_store_open_twice_in_process),
	    cmocka_unit_test(test_second_ps_on_one_data_dir_exits_2),
	};

	if (!psf_itest_has_psfleet("store_lock_test"))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
