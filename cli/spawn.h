/* spawn.h -- starting node processes, for the fleet supervisor (supervisor.c)
 * of `psfleet up` and `psfleet experiment`, and psf_supervisor_run_once.
 *
 * Both callers talk NNG, whose threads may hold locks when the process forks,
 * so the child runs only async-signal-safe calls between fork and exec: all it
 * needs (argv, the log descriptor, /dev/null) is prepared by the parent. */
#ifndef PSF_CLI_SPAWN_H
#define PSF_CLI_SPAWN_H

#include <sys/types.h>

#include "lib/base/err.h"

/* psf_spawn_log_open opens path for appending (created 0644, close-on-exec) and
 * writes one marker line, "---- <UTC time> <what>: <argv...> ----", so that the
 * runs one log collects stay apart. what and argv are only read. On success
 * *fd_out is the descriptor the caller closes. Returns PSF_OK or PSF_ESYS, with
 * errno telling why. */
PSF_NODISCARD psf_err psf_spawn_log_open(const char *path, const char *what, char *const argv[],
    int *fd_out);

/* psf_spawn starts argv (argv[0] = the program's path, NULL-terminated) in a new
 * process with stdin on /dev/null and stdout + stderr on log_fd, which the caller
 * keeps (and closes when it likes). The child:
 *   - leads its own process group, so a Ctrl-C at the terminal reaches only the
 *     caller, which decides how to stop it (psf_spawn_signal_group);
 *   - gets SIGTERM when the caller dies, even by SIGKILL (PR_SET_PDEATHSIG);
 *   - starts with default signal handlers and an empty signal mask;
 *   - writes "psfleet: exec failed" to log_fd and exits 127 if exec fails.
 * On success *pid_out is the child's pid, which the caller reaps. Returns PSF_OK
 * or PSF_ESYS (errno tells why). */
PSF_NODISCARD psf_err psf_spawn(char *const argv[], int log_fd, pid_t *pid_out);

/* psf_spawn_signal_group sends sig to the process group pid leads or, if that
 * group is gone, to pid alone. Does nothing for pid <= 0. Cannot fail. */
void psf_spawn_signal_group(pid_t pid, int sig);

#endif
