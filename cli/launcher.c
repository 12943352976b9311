/* launcher.c -- node processes of `psfleet up` (started by spawn.c), reaping,
 * restart with backoff. */
#define _GNU_SOURCE /* sigabbrev_np */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/launcher.h"
#include "cli/spawn.h"
#include "lib/base/util.h"

#define MAX_FAILURES 64 /* cap on max_failures: the window ring's size */
#define MAX_ARGS (8 + 2 * PSF_LAUNCHER_MAX_SETS)

typedef struct child {
	const psf_node_cfg *node;
	psf_child_state state;
	pid_t pid;
	bool stopping;        /* we sent SIGTERM: the exit is expected */
	bool has_exited;
	int last_status;
	uint32_t starts;
	uint32_t failures;
	uint64_t restart_at_ms;
	uint64_t fail_ms[MAX_FAILURES]; /* ring of the latest failure times */
	char *log_path;
} child;

struct psf_launcher {
	const psf_config *cfg;
	psf_launcher_opts o;
	child *kids;
	size_t n_kids;
};

static void
note(psf_launcher *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note(psf_launcher *l, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (l->o.note == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	l->o.note(l->o.note_arg, line);
}

void
psf_launcher_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by SIG%s%s", sigabbrev_np(WTERMSIG(status)) != NULL ?
		    sigabbrev_np(WTERMSIG(status)) : "?", WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, len, "status 0x%x", (unsigned)status);
}

void
psf_launcher_log_cause(const char *path, char *buf, size_t len)
{
	char *text = NULL, *line, *save = NULL;
	bool have_err = false;
	size_t n;

	buf[0] = '\0';
	if (psf_read_file(path, &text, &n) != PSF_OK)
		return;
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		const char *lvl = strchr(line, ' ');

		if (strncmp(line, "---- ", 5) == 0) { /* a new run starts */
			have_err = false;
			buf[0] = '\0';
		} else if (!have_err && lvl != NULL && strncmp(lvl, " err ", 5) == 0) {
			/* `ts err node tag: msg`: the caller names the node already */
			const char *node = lvl + 5, *msg = strchr(node, ' ');

			snprintf(buf, len, "%s", msg != NULL ? msg + 1 : node);
			have_err = true;
		} else if (!have_err && line[0] != '\0') {
			snprintf(buf, len, "%s", line);
		}
	}
	free(text);
}

psf_err
psf_launcher_new(const psf_config *cfg, const psf_launcher_opts *opts, psf_launcher **out)
{
	psf_launcher *l;

	if (cfg == NULL || opts == NULL || opts->config_path == NULL || opts->log_dir == NULL ||
	    opts->n_sets > PSF_LAUNCHER_MAX_SETS)
		return PSF_EINVAL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return PSF_ENOMEM;
	l->cfg = cfg;
	l->o = *opts;
	if (l->o.exe == NULL)
		l->o.exe = "/proc/self/exe";
	if (l->o.backoff_min_ms == 0)
		l->o.backoff_min_ms = 200;
	if (l->o.backoff_max_ms == 0)
		l->o.backoff_max_ms = 5000;
	if (l->o.max_failures == 0)
		l->o.max_failures = 5;
	if (l->o.max_failures > MAX_FAILURES)
		l->o.max_failures = MAX_FAILURES;
	if (l->o.window_ms == 0)
		l->o.window_ms = 60000;
	l->n_kids = cfg->n_nodes;
	if ((l->kids = calloc(l->n_kids, sizeof(*l->kids))) == NULL) {
		free(l);
		return PSF_ENOMEM;
	}
	for (size_t i = 0; i < l->n_kids; i++) {
		child *c = &l->kids[i];
		int n = snprintf(NULL, 0, "%s/%s.log", opts->log_dir, cfg->nodes[i].id);

		c->node = &cfg->nodes[i];
		if ((c->log_path = malloc((size_t)n + 1)) == NULL) {
			psf_launcher_free(l);
			return PSF_ENOMEM;
		}
		snprintf(c->log_path, (size_t)n + 1, "%s/%s.log", opts->log_dir, cfg->nodes[i].id);
	}
	*out = l;
	return PSF_OK;
}

void
psf_launcher_free(psf_launcher *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; l->kids != NULL && i < l->n_kids; i++) {
		child *c = &l->kids[i];
		if (c->pid > 0) {
			psf_spawn_signal_group(c->pid, SIGKILL);
			while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		free(c->log_path);
	}
	free(l->kids);
	free(l);
}

size_t
psf_launcher_count(const psf_launcher *l)
{
	return l->n_kids;
}

void
psf_launcher_child(const psf_launcher *l, size_t i, psf_child_info *out)
{
	const child *c = &l->kids[i];

	memset(out, 0, sizeof(*out));
	out->node = c->node;
	out->state = c->state;
	out->pid = c->pid;
	out->starts = c->starts;
	out->failures = c->failures;
	out->last_status = c->last_status;
	out->has_exited = c->has_exited;
	out->log_path = c->log_path;
}

psf_err
psf_launcher_start(psf_launcher *l, size_t i)
{
	char *argv[MAX_ARGS];
	char what[192], how[64] = "";
	size_t n = 0;
	child *c;
	int fd;
	psf_err err;

	if (l == NULL || i >= l->n_kids)
		return PSF_EINVAL;
	c = &l->kids[i];
	if (c->pid > 0)
		return PSF_OK;
	argv[n++] = (char *)l->o.exe;
	argv[n++] = "node";
	argv[n++] = (char *)l->o.config_path;
	argv[n++] = "--id";
	argv[n++] = c->node->id;
	for (size_t k = 0; k < l->o.n_sets; k++) {
		argv[n++] = "--set";
		argv[n++] = (char *)l->o.sets[k];
	}
	/* Only the first start resets: a restarted ps resumes what it wrote since. */
	if (c->node->role == PSF_ROLE_PS && c->starts == 0 && (l->o.reset || l->o.fresh))
		argv[n++] = l->o.fresh ? "--fresh" : "--reset";
	argv[n] = NULL;
	if (c->has_exited)
		psf_launcher_describe_status(c->last_status, how, sizeof(how));
	if (c->starts == 0)
		snprintf(what, sizeof(what), "psfleet up: starting %s", c->node->id);
	else
		snprintf(what, sizeof(what), "psfleet up: restarting %s (start %u, last run: %s)",
		    c->node->id, c->starts + 1, how);
	if ((err = psf_spawn_log_open(c->log_path, what, argv, &fd)) != PSF_OK) {
		note(l, "%s: cannot open log %s: %s", c->node->id, c->log_path, strerror(errno));
		return err;
	}
	err = psf_spawn(argv, fd, &c->pid);
	close(fd);
	if (err != PSF_OK) {
		note(l, "%s: cannot start: %s", c->node->id, strerror(errno));
		return err;
	}
	c->starts++;
	c->stopping = false;
	c->state = PSF_CHILD_RUNNING;
	if (c->starts == 1)
		note(l, "%s started (pid %d, log %s)", c->node->id, (int)c->pid, c->log_path);
	else
		note(l, "%s restarted (pid %d, start %u)", c->node->id, (int)c->pid, c->starts);
	return PSF_OK;
}

/* failures_in_window counts c's failures within the window ending at now. */
static uint32_t
failures_in_window(const psf_launcher *l, const child *c, uint64_t now)
{
	uint32_t n = 0, kept = c->failures < l->o.max_failures ? c->failures : l->o.max_failures;

	for (uint32_t k = 0; k < kept; k++) {
		if (now - c->fail_ms[k] <= l->o.window_ms)
			n++;
	}
	return n;
}

/* child_exited applies the restart policy to a child that just ended. Returns
 * PSF_EUNAVAIL when the node failed too often. */
static psf_err
child_exited(psf_launcher *l, child *c, int status, char *errbuf, size_t errlen)
{
	char how[64], cause[512];
	uint64_t now = psf_now_ms(), delay;
	uint32_t recent;

	c->pid = 0;
	c->has_exited = true;
	c->last_status = status;
	psf_launcher_describe_status(status, how, sizeof(how));
	if (c->stopping) {
		c->state = PSF_CHILD_STOPPED;
		return PSF_OK;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && c->node->role == PSF_ROLE_TRAINER) {
		c->state = PSF_CHILD_DONE;
		note(l, "%s finished (exit 0)", c->node->id);
		return PSF_OK;
	}
	c->fail_ms[c->failures % l->o.max_failures] = now;
	c->failures++;
	recent = failures_in_window(l, c, now);
	psf_launcher_log_cause(c->log_path, cause, sizeof(cause));
	if (WIFEXITED(status) && WEXITSTATUS(status) == PSF_NODE_EXIT_INPUT) {
		/* Its input or config is wrong: another start fails the same way. */
		c->state = PSF_CHILD_FAILED;
		if (errbuf != NULL)
			snprintf(errbuf, errlen, "%s failed on its input or config (%s, not restarted): "
			    "%s; see %s", c->node->id, how, cause[0] ? cause : "no output", c->log_path);
		return PSF_EUNAVAIL;
	}
	if (recent >= l->o.max_failures) {
		c->state = PSF_CHILD_FAILED;
		if (errbuf != NULL)
			snprintf(errbuf, errlen, "%s failed %u times within %u s (last: %s): %s; see %s",
			    c->node->id, recent, l->o.window_ms / 1000, how,
			    cause[0] ? cause : "no output", c->log_path);
		return PSF_EUNAVAIL;
	}
	delay = l->o.backoff_min_ms;
	for (uint32_t k = 1; k < recent && delay < l->o.backoff_max_ms; k++)
		delay *= 2;
	if (delay > l->o.backoff_max_ms)
		delay = l->o.backoff_max_ms;
	c->state = PSF_CHILD_BACKOFF;
	c->restart_at_ms = now + delay;
	note(l, "%s %s%s; restarting in %llu ms (%u of %u failures within %u s; log %s)%s%.300s",
	    c->node->id, how, WIFEXITED(status) && WEXITSTATUS(status) == 0 ? " unexpectedly" : "",
	    (unsigned long long)delay, recent, l->o.max_failures, l->o.window_ms / 1000, c->log_path,
	    cause[0] ? ": " : "", cause);
	return PSF_OK;
}

psf_err
psf_launcher_tick(psf_launcher *l, char *errbuf, size_t errlen)
{
	psf_err result = PSF_OK;

	for (size_t i = 0; i < l->n_kids; i++) {
		child *c = &l->kids[i];
		int status;
		pid_t r;

		if (c->pid <= 0)
			continue;
		r = waitpid(c->pid, &status, WNOHANG);
		if (r == c->pid || (r < 0 && errno == ECHILD)) {
			if (r < 0)
				status = 0xff00; /* reaped elsewhere: unknown, call it exit 255 */
			if (child_exited(l, c, status, errbuf, errlen) != PSF_OK && result == PSF_OK) {
				result = PSF_EUNAVAIL;
				errbuf = NULL; /* keep the first failure's message */
			}
		}
	}
	if (result != PSF_OK)
		return result;
	for (size_t i = 0; i < l->n_kids; i++) {
		child *c = &l->kids[i];

		if (c->state == PSF_CHILD_BACKOFF && psf_now_ms() >= c->restart_at_ms &&
		    psf_launcher_start(l, i) != PSF_OK)
			c->restart_at_ms = psf_now_ms() + l->o.backoff_max_ms; /* try later */
	}
	return PSF_OK;
}

/* stop_some sends SIGTERM to the running children selected by want_ps, then
 * waits for them, escalating to SIGKILL after grace_ms or on *force. */
static void
stop_some(psf_launcher *l, bool want_ps, uint32_t grace_ms, const volatile sig_atomic_t *force)
{
	uint64_t deadline = psf_now_ms() + grace_ms;
	bool killed = false, left;

	for (size_t i = 0; i < l->n_kids; i++) {
		child *c = &l->kids[i];

		if ((c->node->role == PSF_ROLE_PS) != want_ps)
			continue;
		if (c->state == PSF_CHILD_BACKOFF)
			c->state = PSF_CHILD_STOPPED;
		if (c->pid > 0) {
			c->stopping = true;
			psf_spawn_signal_group(c->pid, SIGTERM);
		}
	}
	do {
		left = false;
		for (size_t i = 0; i < l->n_kids; i++) {
			child *c = &l->kids[i];
			int status;

			if ((c->node->role == PSF_ROLE_PS) != want_ps || c->pid <= 0)
				continue;
			if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
				(void)child_exited(l, c, status, NULL, 0);
				continue;
			}
			left = true;
			if (!killed && (psf_now_ms() >= deadline || (force != NULL && *force != 0))) {
				if (psf_now_ms() >= deadline)
					note(l, "%s did not stop within %u ms: SIGKILL", c->node->id, grace_ms);
				else
					note(l, "%s: stop forced: SIGKILL", c->node->id);
				psf_spawn_signal_group(c->pid, SIGKILL);
			}
		}
		if (left && !killed && (psf_now_ms() >= deadline || (force != NULL && *force != 0)))
			killed = true;
		if (left)
			psf_sleep_ms(20);
	} while (left);
}

void
psf_launcher_stop(psf_launcher *l, uint32_t grace_ms, const volatile sig_atomic_t *force)
{
	stop_some(l, false, grace_ms, force);
	stop_some(l, true, grace_ms, force);
}

psf_err
psf_launcher_run_once(char *const argv[], const char *log_path, const volatile sig_atomic_t *stop,
    int *status_out)
{
	pid_t pid;
	int fd, status;
	uint64_t kill_at = 0;
	psf_err err;

	if ((err = psf_spawn_log_open(log_path, "psfleet up: running", argv, &fd)) != PSF_OK)
		return err;
	err = psf_spawn(argv, fd, &pid);
	close(fd);
	if (err != PSF_OK)
		return err;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return PSF_ESYS;
		if (stop != NULL && *stop != 0 && kill_at == 0) {
			psf_spawn_signal_group(pid, SIGTERM);
			kill_at = psf_now_ms() + 5000;
		}
		if (kill_at != 0 && psf_now_ms() >= kill_at)
			psf_spawn_signal_group(pid, SIGKILL);
		psf_sleep_ms(20);
	}
	if (kill_at != 0)
		return PSF_ECLOSED;
	*status_out = status;
	return PSF_OK;
}
