/* Process helpers shared by the C integration tests (contracts in itest.h). */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "lib/base/util.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"

#include "tests/integration/itest.h"

extern char **environ;

bool
psf_itest_has_psfleet(const char *prog)
{
	if (getenv("PSFLEET") != NULL)
		return true;
	fprintf(stderr, "%s: set PSFLEET to the psfleet binary\n", prog);
	return false;
}

void
psf_itest_dir_make(psf_itest_dir *d, const char *tag)
{
	assert_true(strlen(tag) <= 16);
	snprintf(d->dir, sizeof(d->dir), "/tmp/psf-%s-XXXXXX", tag);
	assert_non_null(mkdtemp(d->dir));
	snprintf(d->cfg, sizeof(d->cfg), "%s/fleet.yaml", d->dir);
	snprintf(d->url, sizeof(d->url), "ipc://%s/ps0.sock", d->dir);
}

pid_t
psf_itest_spawn(char *const argv[], const char *log, bool is_stdout_logged)
{
	pid_t pid;
	posix_spawn_file_actions_t fa;

	posix_spawn_file_actions_init(&fa);
	if (is_stdout_logged) {
		posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		posix_spawn_file_actions_adddup2(&fa, 1, 2);
	} else {
		posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	}
	assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

pid_t
psf_itest_spawn_node(const char *dir, const char *cfg, const char *id, const char *extra1,
    const char *extra2)
{
	const char *bin = getenv("PSFLEET");
	char log[256];
	char *argv[] = {(char *)bin, "node", (char *)cfg, "--id", (char *)id, (char *)extra1,
	    (char *)extra2, NULL};

	assert_non_null(bin);
	snprintf(log, sizeof(log), "%s/%s.log", dir, id);
	return psf_itest_spawn(argv, log, false);
}

int
psf_itest_wait_exit(pid_t pid, int timeout_s, uint32_t term_grace_ms)
{
	int status;

	for (int i = 0; i < timeout_s * 20; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		psf_sleep_ms(50);
	}
	if (term_grace_ms > 0) {
		kill(pid, SIGTERM);
		psf_sleep_ms(term_grace_ms);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int
psf_itest_stop(pid_t *pid, int sig)
{
	int status;
	pid_t p;

	if (*pid <= 0)
		return -1;
	p = *pid;
	*pid = 0; /* never signal that pid again: once reaped it may be reused */
	kill(p, SIGCONT);
	if (kill(p, sig) != 0 || waitpid(p, &status, 0) != p)
		return -1;
	return status;
}

bool
psf_itest_ps_stats(const char *url, uint32_t timeout_ms, psf_itest_stats *out)
{
	psf_rpc_client *c;
	Psfleet__V1__StatsRequest req = PSFLEET__V1__STATS_REQUEST__INIT;
	Psfleet__V1__StatsReply *r = NULL;
	psf_rpc_call_opts o = {timeout_ms, 1, 0};
	bool ok = false;

	memset(out, 0, sizeof(*out));
	if (psf_rpc_client_open(url, NULL, &c) != PSF_OK)
		return false;
	if (psf_rpc_client_call(c, PSF_M_STATS, &req.base, &psfleet__v1__stats_reply__descriptor,
	        &o, (ProtobufCMessage **)&r, NULL) == PSF_OK) {
		out->version = r->model_version;
		for (size_t i = 0; i < r->n_reports; i++) {
			out->finished += r->reports[i]->finished ? 1 : 0;
			if (r->reports[i]->step > out->steps)
				out->steps = r->reports[i]->step;
		}
		protobuf_c_message_free_unpacked(&r->base, NULL);
		ok = true;
	}
	psf_rpc_client_close(c);
	return ok;
}
