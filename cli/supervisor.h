/* supervisor.h -- start and supervise the node processes of a local fleet: the
 * one supervisor of `psfleet up` (DESIGN.md §1) and `psfleet experiment`.
 *
 * Every node runs as its own process, `psfleet node CONFIG --id ID`, started with
 * fork + exec (never a bare fork: NNG cannot be used in a forked child, see
 * PLATFORM.md). Each child
 *   - leads its own process group, so a Ctrl-C on the terminal reaches only the
 *     launcher, which then stops the children in order;
 *   - gets PR_SET_PDEATHSIG = SIGTERM, so it stops cleanly even when the launcher
 *     is killed with SIGKILL (no orphans);
 *   - has stdin on /dev/null and stdout + stderr appended to <log_dir>/<id>.log,
 *     after a marker line ("<name>: starting ID") for every (re)start.
 *
 * Fault injection (opts.faults, for `psfleet experiment`): a straggler trainer
 * gets --slowdown X / --delay-ms N on every start; the k-th failure naming a
 * trainer gives its k-th start --exit-at-step N. Its exit status 3 at that step
 * (PSF_NODE_EXIT_INJECTED) is expected: the trainer is restarted after
 * backoff_min_ms and the exit does not count as a failure.
 *
 * Restart policy (psf_supervisor_tick): a child that exits unexpectedly -- killed by
 * a signal, a non-zero exit code, or exit 0 of a node that should serve forever
 * (anything but a trainer) -- is restarted after a backoff that starts at
 * backoff_min_ms and doubles with each failure inside the window, up to
 * backoff_max_ms. A trainer's exit 0 means "done": it is not restarted. When a
 * node fails max_failures times within window_ms the launcher gives up on it:
 * psf_supervisor_tick returns PSF_EUNAVAIL and describes the failure.
 *
 * Exit codes of `psfleet node` (docs/operations.md): 2 means the node failed on
 * its input or config (a bad data row, a changed training setting, a diverged
 * model): running it again fails the same way, so such a node is not restarted
 * and the launcher gives up on it at once. Any other failure is a crash and is
 * restarted with backoff. Every give-up message quotes the node's own error line
 * from its log (psf_supervisor_log_cause).
 *
 * Not thread-safe: one thread (the launcher's main loop) uses a psf_supervisor. */
#ifndef PSF_CLI_SUPERVISOR_H
#define PSF_CLI_SUPERVISOR_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/base/err.h"
#include "lib/config/config.h"

typedef struct psf_supervisor psf_supervisor;

/* psf_supervisor_note_fn receives one human-readable line (no newline) for each
 * supervision event: start, exit, scheduled restart, give-up. */
typedef void (*psf_supervisor_note_fn)(void *arg, const char *line);

/* The most --set overrides a launcher passes on (as `psfleet node` takes). */
#define PSF_SUPERVISOR_MAX_SETS 64

/* One injected fault (see above); the fields left 0 inject nothing. */
typedef struct psf_supervisor_fault {
	const char *id;       /* a trainer's node id */
	double slowdown;      /* > 0: --slowdown X on every start */
	uint32_t delay_ms;    /* > 0: --delay-ms N on every start */
	int64_t exit_at_step; /* > 0: --exit-at-step N on one start */
} psf_supervisor_fault;

/* The most faults a supervisor injects. */
#define PSF_SUPERVISOR_MAX_FAULTS 32

typedef struct psf_supervisor_opts {
	const char *name;        /* in log markers and messages; NULL = "psfleet up" */
	const char *exe;         /* psfleet binary to exec; NULL = /proc/self/exe */
	const char *config_path; /* CONFIG passed to every `psfleet node` */
	const char *const *sets; /* "KEY=VALUE" passed as --set to every node, in order */
	size_t n_sets;           /* at most PSF_SUPERVISOR_MAX_SETS */
	const char *log_dir;     /* where <id>.log files go; must exist */
	bool reset;              /* pass --reset to ps nodes (first start only) */
	bool fresh;              /* pass --fresh to ps nodes (first start only) */
	const char *restore;     /* pass --restore DIR to ps nodes (every start: a
	                            restarted ps resumes its restored store) */
	bool no_finetune;        /* pass --set training.finetune.steps=0 to every node: a
	                            run that only trains (--train-only, experiments,
	                            backtests) ends when training does */
	uint32_t backoff_min_ms; /* 0 = 200 */
	uint32_t backoff_max_ms; /* 0 = 5000 */
	uint32_t max_failures;   /* 0 = 5 */
	uint32_t window_ms;      /* 0 = 60000 */
	const psf_supervisor_fault *faults; /* injected into trainers, in order */
	size_t n_faults;                    /* at most PSF_SUPERVISOR_MAX_FAULTS */
	psf_supervisor_note_fn note;        /* may be NULL */
	void *note_arg;
} psf_supervisor_opts;

typedef enum psf_child_state {
	PSF_CHILD_IDLE = 0, /* never started */
	PSF_CHILD_RUNNING,
	PSF_CHILD_BACKOFF, /* died; a restart is scheduled */
	PSF_CHILD_DONE,    /* a trainer that exited 0 */
	PSF_CHILD_STOPPED, /* stopped by psf_supervisor_stop */
	PSF_CHILD_FAILED,  /* gave up after too many failures */
} psf_child_state;

/* Read-only view of one child, from psf_supervisor_child. */
typedef struct psf_child_info {
	const psf_node_cfg *node;
	psf_child_state state;
	pid_t pid;         /* the running process, or 0 */
	uint32_t starts;   /* processes started so far */
	uint32_t failures; /* unexpected exits so far (whole run) */
	int last_status; /* waitpid status of the last exit; valid when starts > 0 and not running */
	bool has_exited; /* last_status is valid */
	const char *log_path;
} psf_child_info;

/* psf_supervisor_new prepares one child per node of cfg (in cfg->nodes order);
 * nothing is started yet. cfg and the strings in opts are borrowed and must
 * outlive the launcher. Returns PSF_OK, PSF_EINVAL or PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_supervisor_new(const psf_config *cfg, const psf_supervisor_opts *opts,
    psf_supervisor **out);

/* psf_supervisor_free releases the launcher. Children still running are killed
 * with SIGKILL and reaped first (call psf_supervisor_stop before for a clean
 * stop). NULL is fine. */
void psf_supervisor_free(psf_supervisor *l);

/* psf_supervisor_start starts node i (an index into cfg->nodes) unless it is
 * running. Returns PSF_OK, PSF_EINVAL (bad index), or PSF_ESYS when the log
 * cannot be opened or fork fails (an exec failure shows as exit code 127 at the
 * next tick). */
PSF_NODISCARD psf_err psf_supervisor_start(psf_supervisor *l, size_t i);

/* psf_supervisor_tick reaps children that exited (without blocking), applies the
 * restart policy and starts the restarts that are due. Returns PSF_OK, or
 * PSF_EUNAVAIL when a node has failed too often: then errbuf (errlen bytes, may
 * be NULL) gets one line naming the node, how it last ended and its log, and
 * the other children are left running for the caller to stop. */
PSF_NODISCARD psf_err psf_supervisor_tick(psf_supervisor *l, char *errbuf, size_t errlen);

/* psf_supervisor_ready_fn tells whether node i (an index into cfg->nodes), which
 * is running, is ready; when it is not, it writes why into why (len bytes). */
typedef bool (*psf_supervisor_ready_fn)(void *arg, size_t i, char *why, size_t len);

/* psf_supervisor_wait_ready waits until ready() says yes for every node in
 * idx[0..n) (started before), ticking the supervisor meanwhile. Returns PSF_OK;
 * PSF_EUNAVAIL when one of them exits first, is not ready after timeout_ms, or
 * a node fails too often (psf_supervisor_tick); PSF_ECLOSED when *stop (may be
 * NULL) becomes non-zero. On an error errbuf (errlen bytes) gets one line naming
 * the node, why, and the cause quoted from its log. */
PSF_NODISCARD psf_err psf_supervisor_wait_ready(psf_supervisor *l, const size_t *idx, size_t n,
    uint32_t timeout_ms, const volatile sig_atomic_t *stop, psf_supervisor_ready_fn ready,
    void *arg, char *errbuf, size_t errlen);

/* psf_supervisor_stop stops every child: SIGTERM to each process group, the
 * serving roles last (trainers, inferers and the gateway first, then the ps
 * nodes), and SIGKILL to whatever is still running grace_ms after its SIGTERM,
 * or at once when *force (may be NULL) becomes non-zero. Pending restarts are
 * cancelled. Returns when every child is reaped. Cannot fail. */
void psf_supervisor_stop(psf_supervisor *l, uint32_t grace_ms, const volatile sig_atomic_t *force);

/* psf_supervisor_count returns the number of children (cfg->n_nodes). */
size_t psf_supervisor_count(const psf_supervisor *l);

/* psf_supervisor_child fills *out with child i's state. The pointers in it stay
 * valid until psf_supervisor_free. Cannot fail for i < psf_supervisor_count. */
void psf_supervisor_child(const psf_supervisor *l, size_t i, psf_child_info *out);

/* psf_supervisor_describe_status writes how a process ended ("exit 1", "killed by
 * SIGKILL") into buf (always NUL-terminated). Cannot fail. */
void psf_supervisor_describe_status(int status, char *buf, size_t len);

/* PSF_NODE_EXIT_INPUT is the exit code of a node that failed on its input or
 * config; the launcher does not restart it. */
#define PSF_NODE_EXIT_INPUT 2

/* PSF_NODE_EXIT_INJECTED is the exit code of a trainer at its --exit-at-step. */
#define PSF_NODE_EXIT_INJECTED 3

/* psf_supervisor_log_cause copies into buf (len bytes, always NUL-terminated) the
 * most telling line of the last run in a node's log: its first error-level line
 * without the time stamp, level and node ("trainer: data.csv:21: ..."), the cause
 * where later ones are consequences, or else its last line; "" when the log
 * cannot be read. Cannot fail. */
void psf_supervisor_log_cause(const char *path, char *buf, size_t len);

/* psf_supervisor_run_once runs argv (argv[0] = the program path, NULL-terminated)
 * to completion with stdout + stderr appended to log_path, in its own process
 * group with PR_SET_PDEATHSIG. While *stop (may be NULL) is zero it waits;
 * when it becomes non-zero the child gets SIGTERM (SIGKILL 5 s later) and the
 * call returns PSF_ECLOSED after reaping it. On PSF_OK, *status_out gets the
 * waitpid status. Returns PSF_OK, PSF_ECLOSED or PSF_ESYS. */
PSF_NODISCARD psf_err psf_supervisor_run_once(char *const argv[], const char *log_path,
    const volatile sig_atomic_t *stop, int *status_out);

#endif
