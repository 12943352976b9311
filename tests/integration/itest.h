/* itest: the process helpers shared by the C integration tests in tests/integration/
 * (cmocka programs that start real `psfleet` processes). Every function here is
 * for the test's main thread only; those that take an assertion fail the running
 * cmocka test, as the test's own code would. */
#ifndef PSF_TESTS_ITEST_H
#define PSF_TESTS_ITEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* psf_itest_has_psfleet returns true when $PSFLEET (the psfleet binary, set by
 * CTest) is set. Otherwise it prints "<prog>: set PSFLEET to the psfleet binary"
 * to stderr and returns false; main then exits 1. */
bool psf_itest_has_psfleet(const char *prog);

/* psf_itest_dir is one test case's own temp dir and the paths the tests keep in it. */
typedef struct psf_itest_dir {
	char dir[64];  /* /tmp/psf-<tag>-XXXXXX */
	char cfg[128]; /* <dir>/fleet.yaml, the fleet config the case writes */
	char url[160]; /* ipc://<dir>/ps0.sock, ps0's listen address in that config */
} psf_itest_dir;

/* psf_itest_dir_make creates a new directory /tmp/psf-<tag>-XXXXXX (tag at most 16
 * characters) and fills d with its paths; it writes no file. Fails the test when the
 * directory cannot be made. The caller removes it (psf_rm_rf(d->dir)). */
void psf_itest_dir_make(psf_itest_dir *d, const char *tag);

/* psf_itest_spawn starts argv[0] (a path, normally $PSFLEET) with the NULL-terminated
 * argv and the test's environment. stderr is appended to log (created 0644 when
 * missing); stdout goes to log as well when is_stdout_logged, else to /dev/null.
 * Fails the test when the spawn fails. Returns the child's pid; the caller reaps it
 * (psf_itest_wait_exit, psf_itest_stop). */
pid_t psf_itest_spawn(char *const argv[], const char *log, bool is_stdout_logged);

/* psf_itest_spawn_node starts `$PSFLEET node <cfg> --id <id> [extra1 [extra2]]`
 * with stderr appended to <dir>/<id>.log and stdout to /dev/null. extra1 and extra2
 * are a test's own options (e.g. "--delay-ms", "25"); a NULL extra1 ends the list.
 * Fails the test when $PSFLEET is unset or the spawn fails. Returns the pid. */
pid_t psf_itest_spawn_node(const char *dir, const char *cfg, const char *id, const char *extra1,
    const char *extra2);

/* psf_itest_wait_exit waits up to timeout_s seconds (polling every 50 ms) for the
 * child pid to end and reaps it. Returns its exit code, or 128 + the signal that
 * ended it. At the timeout it sends SIGTERM and waits term_grace_ms first when
 * term_grace_ms > 0 (a child that stops its own children on SIGTERM), then
 * SIGKILLs and reaps the child, and returns -1. */
int psf_itest_wait_exit(pid_t pid, int timeout_s, uint32_t term_grace_ms);

/* psf_itest_stop sends SIGCONT (a SIGSTOPped child must see sig) then sig to the
 * child *pid and reaps it. Returns the child's wait status, or -1 when *pid is 0
 * or no such child could be signalled and reaped. *pid is 0 afterwards. */
int psf_itest_stop(pid_t *pid, int sig);

/* psf_itest_stats is what a ps's Stats reply says about training. */
typedef struct psf_itest_stats {
	uint64_t version; /* the model version */
	size_t finished;  /* trainers whose final report is stored */
	int64_t steps;    /* the highest step among the trainers' reports */
} psf_itest_stats;

/* psf_itest_ps_stats calls Stats on the ps at url (one call, retried within
 * timeout_ms while the ps is unreachable). Returns true with *out filled when the
 * ps answered; false with *out zeroed otherwise. */
bool psf_itest_ps_stats(const char *url, uint32_t timeout_ms, psf_itest_stats *out);

#endif /* PSF_TESTS_ITEST_H */
