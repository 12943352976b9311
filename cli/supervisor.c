/* supervisor.c -- node processes of `psfleet up` and `psfleet experiment`
 * (started by spawn.c), fault injection, readiness, reaping, restart with
 * backoff. */
#define _GNU_SOURCE /* sigabbrev_np */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/spawn.h"
#include "cli/supervisor.h"
#include "lib/base/util.h"

#define MAX_FAILURES 64 /* cap on max_failures: the window ring's size */
#define MAX_ARGS (12 + 2 * PSF_SUPERVISOR_MAX_SETS + 6 * PSF_SUPERVISOR_MAX_FAULTS)
#define READY_TICK_MS 100

typedef struct child {
	const psf_node_cfg *node;
	psf_child_state state;
	pid_t pid;
	bool stopping; /* we sent SIGTERM: the exit is expected */
	bool injected; /* this run has --exit-at-step: its exit 3 is expected */
	bool has_exited;
	int last_status;
	uint32_t starts;
	uint32_t failures;
	uint64_t restart_at_ms;
	uint64_t fail_ms[MAX_FAILURES]; /* ring of the latest failure times */
	char *log_path;
} child;

struct psf_supervisor {
	const psf_config *cfg;
	psf_supervisor_opts o;
	child *kids;
	size_t n_kids;
};

static void note(psf_supervisor *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note(psf_supervisor *l, const char *fmt, ...)
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
psf_supervisor_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by SIG%s%s",
		    sigabbrev_np(WTERMSIG(status)) != NULL ? sigabbrev_np(WTERMSIG(status)) : "?",
		    WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, len, "status 0x%x", (unsigned)status);
}

void
psf_supervisor_log_cause(const char *path, char *buf, size_t len)
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
psf_supervisor_new(const psf_config *cfg, const psf_supervisor_opts *opts, psf_supervisor **out)
{
	psf_supervisor *l;

	if (cfg == NULL || opts == NULL || opts->config_path == NULL || opts->log_dir == NULL ||
	    opts->n_sets > PSF_SUPERVISOR_MAX_SETS || opts->n_faults > PSF_SUPERVISOR_MAX_FAULTS ||
	    (opts->n_faults > 0 && opts->faults == NULL))
		return PSF_EINVAL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return PSF_ENOMEM;
	l->cfg = cfg;
	l->o = *opts;
	if (l->o.name == NULL)
		l->o.name = "psfleet up";
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
			psf_supervisor_free(l);
			return PSF_ENOMEM;
		}
		snprintf(c->log_path, (size_t)n + 1, "%s/%s.log", opts->log_dir, cfg->nodes[i].id);
	}
	*out = l;
	return PSF_OK;
}

void
psf_supervisor_free(psf_supervisor *l)
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
psf_supervisor_count(const psf_supervisor *l)
{
	return l->n_kids;
}

void
psf_supervisor_child(const psf_supervisor *l, size_t i, psf_child_info *out)
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

/* add_faults appends the flags of the faults that name trainer c to argv[*n..]
 * (their values in vals): the stragglers' on every start, the k-th failure on
 * start k. Sets c->injected. */
static void
add_faults(psf_supervisor *l, child *c, char **argv, size_t *n, char (*vals)[32])
{
	size_t n_vals = 0, kills = 0;

	c->injected = false;
	for (size_t k = 0; c->node->role == PSF_ROLE_TRAINER && k < l->o.n_faults; k++) {
		const psf_supervisor_fault *f = &l->o.faults[k];

		if (strcmp(f->id, c->node->id) != 0)
			continue;
		if (f->slowdown > 0) {
			snprintf(vals[n_vals], sizeof(vals[0]), "%g", f->slowdown);
			argv[(*n)++] = "--slowdown";
			argv[(*n)++] = vals[n_vals++];
		}
		if (f->delay_ms > 0) {
			snprintf(vals[n_vals], sizeof(vals[0]), "%u", f->delay_ms);
			argv[(*n)++] = "--delay-ms";
			argv[(*n)++] = vals[n_vals++];
		}
		if (f->exit_at_step > 0 && kills++ == c->starts) {
			snprintf(vals[n_vals], sizeof(vals[0]), "%lld", (long long)f->exit_at_step);
			argv[(*n)++] = "--exit-at-step";
			argv[(*n)++] = vals[n_vals++];
			c->injected = true;
		}
	}
}

psf_err
psf_supervisor_start(psf_supervisor *l, size_t i)
{
	char *argv[MAX_ARGS];
	char what[192], how[64] = "", vals[3 * PSF_SUPERVISOR_MAX_FAULTS][32];
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
	if (l->o.no_finetune) { /* after the user's: it wins */
		argv[n++] = "--set";
		argv[n++] = "training.finetune.steps=0";
	}
	/* Only the first start resets: a restarted ps resumes what it wrote since. */
	if (c->node->role == PSF_ROLE_PS && c->starts == 0 && (l->o.reset || l->o.fresh))
		argv[n++] = l->o.fresh ? "--fresh" : "--reset";
	if (c->node->role == PSF_ROLE_PS && l->o.restore != NULL) {
		argv[n++] = "--restore";
		argv[n++] = (char *)l->o.restore;
	}
	add_faults(l, c, argv, &n, vals);
	argv[n] = NULL;
	if (c->has_exited)
		psf_supervisor_describe_status(c->last_status, how, sizeof(how));
	if (c->starts == 0)
		snprintf(what, sizeof(what), "%s: starting %s", l->o.name, c->node->id);
	else
		snprintf(what, sizeof(what), "%s: restarting %s (start %u, last run: %s)",
		    l->o.name, c->node->id, c->starts + 1, how);
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
failures_in_window(const psf_supervisor *l, const child *c, uint64_t now)
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
child_exited(psf_supervisor *l, child *c, int status, char *errbuf, size_t errlen)
{
	char how[64], cause[512];
	uint64_t now = psf_now_ms(), delay;
	uint32_t recent;

	c->pid = 0;
	c->has_exited = true;
	c->last_status = status;
	psf_supervisor_describe_status(status, how, sizeof(how));
	if (c->stopping) {
		c->state = PSF_CHILD_STOPPED;
		return PSF_OK;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && c->node->role == PSF_ROLE_TRAINER) {
		c->state = PSF_CHILD_DONE;
		note(l, "%s finished (exit 0)", c->node->id);
		return PSF_OK;
	}
	if (c->injected && WIFEXITED(status) && WEXITSTATUS(status) == PSF_NODE_EXIT_INJECTED) {
		c->state = PSF_CHILD_BACKOFF; /* expected: not a failure */
		c->restart_at_ms = now + l->o.backoff_min_ms;
		note(l, "%s exited at its injected failure; restarting in %u ms", c->node->id,
		    l->o.backoff_min_ms);
		return PSF_OK;
	}
	c->fail_ms[c->failures % l->o.max_failures] = now;
	c->failures++;
	recent = failures_in_window(l, c, now);
	psf_supervisor_log_cause(c->log_path, cause, sizeof(cause));
	if (WIFEXITED(status) && WEXITSTATUS(status) == PSF_NODE_EXIT_INPUT) {
		/* Its input or config is wrong: another start fails the same way. */
		c->state = PSF_CHILD_FAILED;
		if (errbuf != NULL)
			snprintf(errbuf, errlen,
			    "%s failed on its input or config (%s, not restarted): "
			    "%s; see %s",
			    c->node->id, how, cause[0] ? cause : "no output", c->log_path);
		return PSF_EUNAVAIL;
	}
	if (recent >= l->o.max_failures) {
		c->state = PSF_CHILD_FAILED;
		if (errbuf != NULL && l->o.max_failures == 1)
			snprintf(errbuf, errlen, "%s failed (%s, not restarted): %s; see %s",
			    c->node->id, how, cause[0] ? cause : "no output", c->log_path);
		else if (errbuf != NULL)
			snprintf(errbuf, errlen,
			    "%s failed %u times within %u s (last: %s): %s; see %s", c->node->id,
			    recent, l->o.window_ms / 1000, how, cause[0] ? cause : "no output",
			    c->log_path);
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
	    (unsigned long long)delay, recent, l->o.max_failures, l->o.window_ms / 1000,
	    c->log_path, cause[0] ? ": " : "", cause);
	return PSF_OK;
}

psf_err
psf_supervisor_tick(psf_supervisor *l, char *errbuf, size_t errlen)
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
			if (child_exited(l, c, status, errbuf, errlen) != PSF_OK &&
			    result == PSF_OK) {
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
		    psf_supervisor_start(l, i) != PSF_OK)
			c->restart_at_ms = psf_now_ms() + l->o.backoff_max_ms; /* try later */
	}
	return PSF_OK;
}

/* not_ready writes why node i is not ready into errbuf: it ended, or ready()
 * still says no at the deadline. */
static void
not_ready(psf_supervisor *l, size_t i, bool ended, uint32_t timeout_ms, const char *why,
    char *errbuf, size_t errlen)
{
	const child *c = &l->kids[i];
	char how[64], cause[512];

	psf_supervisor_log_cause(c->log_path, cause, sizeof(cause));
	if (ended) {
		psf_supervisor_describe_status(c->last_status, how, sizeof(how));
		snprintf(errbuf, errlen, "%s exited before it was ready (%s): %s (log %s)",
		    c->node->id, how, cause[0] ? cause : "no output", c->log_path);
	} else {
		snprintf(errbuf, errlen, "%s %s not ready after %u s (%s)%s%s; see %s",
		    psf_role_name(c->node->role), c->node->id, timeout_ms / 1000, why,
		    cause[0] ? ": " : "", cause, c->log_path);
	}
}

psf_err
psf_supervisor_wait_ready(psf_supervisor *l, const size_t *idx, size_t n, uint32_t timeout_ms,
    const volatile sig_atomic_t *stop, psf_supervisor_ready_fn ready, void *arg, char *errbuf,
    size_t errlen)
{
	uint64_t deadline = psf_now_ms() + timeout_ms;
	bool *done = calloc(n > 0 ? n : 1, sizeof(*done));
	size_t left = n;
	psf_err err = PSF_OK;

	if (done == NULL)
		return PSF_ENOMEM;
	while (left > 0 && err == PSF_OK) {
		if (stop != NULL && *stop != 0) {
			snprintf(errbuf, errlen, "interrupted");
			err = PSF_ECLOSED;
			break;
		}
		if ((err = psf_supervisor_tick(l, errbuf, errlen)) != PSF_OK)
			break;
		for (size_t k = 0; k < n && err == PSF_OK; k++) {
			char why[256] = "";

			if (done[k])
				continue;
			if (l->kids[idx[k]].state != PSF_CHILD_RUNNING) {
				not_ready(l, idx[k], true, timeout_ms, "", errbuf, errlen);
				err = PSF_EUNAVAIL;
			} else if (ready(arg, idx[k], why, sizeof(why))) {
				done[k] = true;
				left--;
			} else if (psf_now_ms() >= deadline) {
				not_ready(l, idx[k], false, timeout_ms, why, errbuf, errlen);
				err = PSF_EUNAVAIL;
			}
		}
		if (left > 0 && err == PSF_OK)
			psf_sleep_ms(READY_TICK_MS);
	}
	free(done);
	return err;
}

/* stop_some sends SIGTERM to the running children selected by want_ps, then
 * waits for them, escalating to SIGKILL after grace_ms or on *force. */
static void
stop_some(psf_supervisor *l, bool want_ps, uint32_t grace_ms, const volatile sig_atomic_t *force)
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
			if (!killed &&
			    (psf_now_ms() >= deadline || (force != NULL && *force != 0))) {
				if (psf_now_ms() >= deadline)
					note(l, "%s did not stop within %u ms: SIGKILL",
					    c->node->id, grace_ms);
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
psf_supervisor_stop(psf_supervisor *l, uint32_t grace_ms, const volatile sig_atomic_t *force)
{
	stop_some(l, false, grace_ms, force);
	stop_some(l, true, grace_ms, force);
}

psf_err
psf_supervisor_run_once(char *const argv[], const char *log_path, const volatile sig_atomic_t *stop,
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
