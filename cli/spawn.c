/* spawn.c -- fork + exec of node processes (spawn.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/spawn.h"

psf_err
psf_spawn_log_open(const char *path, const char *what, char *const argv[], int *fd_out)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0)
		return PSF_ESYS;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* The marker is a courtesy: a failed write must not keep the node from starting. */
	dprintf(fd, "---- %s %s:", stamp, what);
	for (size_t i = 0; argv[i] != NULL; i++)
		dprintf(fd, " %s", argv[i]);
	dprintf(fd, " ----\n");
	*fd_out = fd;
	return PSF_OK;
}

/* child_exec runs in the child between fork and exec: async-signal-safe calls only. */
_Noreturn static void
child_exec(char *const argv[], int log_fd, int devnull, pid_t parent)
{
	static const char msg[] = "psfleet: exec failed\n";
	struct sigaction dfl;
	sigset_t none;
	ssize_t w;

	(void)setpgid(0, 0);
	/* Stop with the parent, even when it is SIGKILLed. If it died before prctl
	 * took effect, getppid() tells. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		_exit(127);
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	(void)sigaction(SIGPIPE, &dfl, NULL);
	(void)sigaction(SIGINT, &dfl, NULL);
	(void)sigaction(SIGTERM, &dfl, NULL);
	(void)sigaction(SIGHUP, &dfl, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(devnull, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
		_exit(127);
	execv(argv[0], argv);
	w = write(2, msg, sizeof(msg) - 1);
	(void)w;
	_exit(127);
}

psf_err
psf_spawn(char *const argv[], int log_fd, pid_t *pid_out)
{
	pid_t parent = getpid(), pid;
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC), saved;

	if (devnull < 0)
		return PSF_ESYS;
	pid = fork();
	if (pid == 0)
		child_exec(argv, log_fd, devnull, parent);
	saved = errno;
	close(devnull);
	if (pid < 0) {
		errno = saved;
		return PSF_ESYS;
	}
	(void)setpgid(pid, pid); /* both sides set it: no window where it is unset */
	*pid_out = pid;
	return PSF_OK;
}

void
psf_spawn_signal_group(pid_t pid, int sig)
{
	if (pid <= 0)
		return;
	if (kill(-pid, sig) != 0)
		(void)kill(pid, sig);
}
