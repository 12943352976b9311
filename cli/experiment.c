/* experiment.c -- the runner of `psfleet experiment` (experiment.h): one fresh
 * fleet per mode and repeat, started as `psfleet node ... --set ...` processes,
 * stragglers and failures injected, traces collected, report written.
 *
 * The runner talks to the ps nodes over NNG (Admin/Health), so it starts every
 * child with spawn.c, which does only async-signal-safe work between fork and
 * exec (PLATFORM.md). */
#define _GNU_SOURCE /* strverscmp */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/experiment.h"
#include "cli/report.h"
#include "cli/spawn.h"
#include "lib/data/datagen.h"
#include "lib/runtime/runtime.h"
#include "lib/net/rpc_client.h"
#include "lib/base/util.h"
#include "lib/net/methods.h"
#include "psfleet.pb-c.h"

#define PATH_LEN PSF_REPORT_PATH_LEN
#define RUN_SETS 8              /* overrides the runner adds to the caller's */
#define MAX_ARGV (8 + 2 * (PSF_EXP_MAX_SETS + RUN_SETS + 64) + 6 * PSF_EXP_MAX_INJECT)
#define READY_TIMEOUT_MS 60000
#define STOP_GRACE_MS 10000
#define RESTART_DELAY_MS 200    /* as psfleet up's first backoff */
#define TICK_MS 50

/* ---------------------------------------------------------------- parsing */

psf_err
psf_exp_parse_mode(const char *s, psf_exp_mode *out)
{
	psf_exp_mode m;
	char *end;
	unsigned long v;

	memset(&m, 0, sizeof(m));
	if (s == NULL || out == NULL || strlen(s) >= sizeof(m.name))
		return PSF_EINVAL;
	if (psf_consistency_parse(s, &m.mode) == PSF_OK) {
		if (m.mode == PSF_CONS_SSP)
			m.staleness = UINT32_MAX;
	} else if (strncmp(s, "ssp:", 4) == 0 && s[4] >= '0' && s[4] <= '9') {
		errno = 0;
		v = strtoul(s + 4, &end, 10);
		if (*end != '\0' || errno != 0 || v > 1000000)
			return PSF_EINVAL;
		m.mode = PSF_CONS_SSP;
		m.staleness = (uint32_t)v;
	} else {
		return PSF_EINVAL;
	}
	snprintf(m.name, sizeof(m.name), "%s", s);
	if (m.mode == PSF_CONS_SSP && m.staleness != UINT32_MAX)
		snprintf(m.slug, sizeof(m.slug), "ssp%u", m.staleness);
	else
		snprintf(m.slug, sizeof(m.slug), "%s", s);
	*out = m;
	return PSF_OK;
}

/* split_id copies the id before sep (the last one) into id; returns the rest. */
static const char *
split_id(const char *s, int sep, char *id)
{
	const char *at = s != NULL ? strrchr(s, sep) : NULL;

	if (at == NULL || at == s || (size_t)(at - s) >= PSF_EXP_ID_LEN)
		return NULL;
	memcpy(id, s, (size_t)(at - s));
	id[at - s] = '\0';
	return at + 1;
}

psf_err
psf_exp_parse_straggler(const char *s, psf_exp_straggler *out)
{
	psf_exp_straggler st;
	const char *rest;
	char *end;
	double v;

	memset(&st, 0, sizeof(st));
	if (out == NULL || (rest = split_id(s, ':', st.id)) == NULL || *rest == '\0')
		return PSF_EINVAL;
	errno = 0;
	if (rest[0] == '+') {
		v = strtod(rest + 1, &end);
		if (end == rest + 1 || strcmp(end, "ms") != 0 || errno != 0 || !(v >= 0 && v <= 600000))
			return PSF_EINVAL;
		st.delay_ms = (uint32_t)lround(v);
	} else {
		v = strtod(rest, &end);
		if (end == rest || strcmp(end, "x") != 0 || errno != 0 || !(v >= 1 && v <= 1000))
			return PSF_EINVAL;
		st.slowdown = v;
	}
	*out = st;
	return PSF_OK;
}

psf_err
psf_exp_parse_kill(const char *s, psf_exp_kill *out)
{
	psf_exp_kill k;
	const char *rest;
	char *end;
	long long v;

	memset(&k, 0, sizeof(k));
	if (out == NULL || (rest = split_id(s, '@', k.id)) == NULL)
		return PSF_EINVAL;
	if (strncmp(rest, "step:", 5) == 0)
		rest += 5;
	if (*rest < '0' || *rest > '9')
		return PSF_EINVAL;
	errno = 0;
	v = strtoll(rest, &end, 10);
	if (*end != '\0' || errno != 0 || v < 1)
		return PSF_EINVAL;
	k.step = v;
	*out = k;
	return PSF_OK;
}

/* ---------------------------------------------------------------- processes */

/* One node process of a run. */
typedef struct kid {
	const psf_node_cfg *node;
	pid_t pid;            /* 0 = not running */
	uint32_t starts;
	bool done;            /* trainer: exited 0 */
	uint64_t restart_at;  /* trainer: restart due (monotonic ms); 0 = none */
	char log[PATH_LEN + 128];
} kid;

/* spawn starts argv with stdout + stderr appended to log, after a marker line
 * (spawn.h: its own process group, SIGTERM when the runner dies). */
static psf_err
spawn(char *const argv[], const char *log, pid_t *out)
{
	psf_err err;
	int fd;

	if ((err = psf_spawn_log_open(log, "psfleet experiment", argv, &fd)) != PSF_OK)
		return err;
	err = psf_spawn(argv, fd, out);
	close(fd);
	return err;
}

static void
describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "status 0x%x", (unsigned)status);
}

/* last_line copies the last line of a log that is not a runner marker. */
static void
last_line(const char *path, char *buf, size_t len)
{
	char *text = NULL, *save = NULL;

	snprintf(buf, len, "no output");
	if (psf_read_file(path, &text, NULL) != PSF_OK)
		return;
	for (char *ln = strtok_r(text, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save))
		if (strncmp(ln, "---- ", 5) != 0 && ln[0] != '\0')
			snprintf(buf, len, "%.300s", ln);
	free(text);
}

/* stop_kids sends SIGTERM to every running kid of a role (all roles with
 * any_role), then reaps them, SIGKILL after grace_ms. */
static void
stop_kids(kid *kids, size_t n, bool any_role, psf_role role, uint32_t grace_ms)
{
	uint64_t deadline = psf_now_ms() + grace_ms;
	bool left = true, killed = false;

	for (size_t i = 0; i < n; i++)
		if (any_role || kids[i].node->role == role)
			psf_spawn_signal_group(kids[i].pid, SIGTERM);
	while (left) {
		left = false;
		for (size_t i = 0; i < n; i++) {
			if (kids[i].pid <= 0 || !(any_role || kids[i].node->role == role))
				continue;
			if (waitpid(kids[i].pid, NULL, WNOHANG) == kids[i].pid) {
				kids[i].pid = 0;
				continue;
			}
			left = true;
			if (!killed && psf_now_ms() >= deadline)
				psf_spawn_signal_group(kids[i].pid, SIGKILL);
		}
		if (left && psf_now_ms() >= deadline)
			killed = true;
		if (left)
			psf_sleep_ms(20);
	}
}

/* ---------------------------------------------------------------- one run */

typedef struct run {
	const psf_exp_opts *o;
	const psf_exp_mode *mode;
	const char *exe;
	const char *data_path;
	psf_config *cfg;
	char run_dir[PATH_LEN];
	char own[RUN_SETS + 64][2 * PATH_LEN + 160]; /* the runner's overrides for this run */
	const char *sets[PSF_EXP_MAX_SETS + RUN_SETS + 64];
	size_t n_sets;
	kid *kids;
	size_t n_kids;
	uint32_t restarts;
	char *errbuf;
	size_t errlen;
} run;

static psf_err
run_fail(run *r, psf_err err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static psf_err
run_fail(run *r, psf_err err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(r->errbuf, r->errlen, "run %s: %s", r->run_dir, msg);
	return err;
}

static void
add_set(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
add_set(run *r, const char *fmt, ...)
{
	size_t k = r->n_sets - r->o->n_sets;
	va_list ap;

	if (k >= PSF_ARRAY_LEN(r->own))
		return;
	va_start(ap, fmt);
	vsnprintf(r->own[k], sizeof(r->own[k]), fmt, ap);
	va_end(ap);
	r->sets[r->n_sets++] = r->own[k];
}

/* quote writes s as a YAML single-quoted scalar (' doubled), so a path with
 * ": " or '#' stays one string when the override is parsed. */
static void
quote(const char *s, char *out, size_t len)
{
	size_t n = 0;

	out[n++] = '\'';
	for (; *s != '\0' && n + 3 < len; s++) {
		if (*s == '\'')
			out[n++] = '\'';
		out[n++] = *s;
	}
	out[n++] = '\'';
	out[n] = '\0';
}

/* load_run_config applies the caller's overrides, then the run's own: the mode,
 * the run directory, the shared data file, and a data_dir under the run
 * directory for any ps whose configured one is elsewhere (fresh state). */
static psf_err
load_run_config(run *r)
{
	char err[512], prefix[PATH_LEN + 1], q_run[2 * PATH_LEN + 4], q_data[2 * PATH_LEN + 4];
	bool moved = false;
	psf_err rv;

	for (size_t i = 0; i < r->o->n_sets; i++)
		r->sets[r->n_sets++] = r->o->sets[i];
	add_set(r, "consistency.mode=%s", psf_consistency_name(r->mode->mode));
	if (r->mode->mode == PSF_CONS_SSP && r->mode->staleness != UINT32_MAX)
		add_set(r, "consistency.staleness=%u", r->mode->staleness);
	quote(r->run_dir, q_run, sizeof(q_run));
	quote(r->data_path, q_data, sizeof(q_data));
	add_set(r, "run_dir=%s", q_run);
	add_set(r, "data.path=%s", q_data);
	if ((rv = psf_config_load_ex(r->o->config_path, r->sets, r->n_sets, err, sizeof(err),
	         &r->cfg)) != PSF_OK)
		return run_fail(r, rv, "%s", err);
	snprintf(prefix, sizeof(prefix), "%s/", r->run_dir);
	for (size_t i = 0; i < r->cfg->n_ps; i++) {
		const psf_node_cfg *n = &r->cfg->nodes[i];

		if (strncmp(n->data_dir, prefix, strlen(prefix)) != 0) {
			char dir[PATH_LEN + 80], q_dir[2 * PATH_LEN + 200];

			snprintf(dir, sizeof(dir), "%s/%s", r->run_dir, n->id);
			quote(dir, q_dir, sizeof(q_dir));
			add_set(r, "nodes.ps.%s.data_dir=%s", n->id, q_dir);
			moved = true;
		}
	}
	if (moved) {
		psf_config_free(r->cfg);
		r->cfg = NULL;
		if ((rv = psf_config_load_ex(r->o->config_path, r->sets, r->n_sets, err, sizeof(err),
		         &r->cfg)) != PSF_OK)
			return run_fail(r, rv, "%s", err);
	}
	return PSF_OK;
}

/* start_kid starts node k with the run's overrides and, for trainers, the
 * injections that name it (a failure only on the start it is meant for). */
static psf_err
start_kid(run *r, kid *k)
{
	char *argv[MAX_ARGV], slow[64][32];
	size_t n = 0, n_slow = 0, kills = 0;
	const char *id = k->node->id;
	psf_err err;

	argv[n++] = (char *)r->exe;
	argv[n++] = "node";
	argv[n++] = (char *)r->o->config_path;
	argv[n++] = "--id";
	argv[n++] = (char *)id;
	for (size_t i = 0; i < r->n_sets; i++) {
		argv[n++] = "--set";
		argv[n++] = (char *)r->sets[i];
	}
	for (size_t i = 0; k->node->role == PSF_ROLE_TRAINER && i < r->o->n_stragglers; i++) {
		const psf_exp_straggler *s = &r->o->stragglers[i];

		if (strcmp(s->id, id) != 0 || n_slow + 2 > PSF_ARRAY_LEN(slow))
			continue;
		if (s->slowdown > 0) {
			snprintf(slow[n_slow], sizeof(slow[0]), "%g", s->slowdown);
			argv[n++] = "--slowdown";
			argv[n++] = slow[n_slow++];
		}
		if (s->delay_ms > 0) {
			snprintf(slow[n_slow], sizeof(slow[0]), "%u", s->delay_ms);
			argv[n++] = "--delay-ms";
			argv[n++] = slow[n_slow++];
		}
	}
	for (size_t i = 0; k->node->role == PSF_ROLE_TRAINER && i < r->o->n_kills; i++) {
		if (strcmp(r->o->kills[i].id, id) != 0 || kills++ != k->starts ||
		    n_slow >= PSF_ARRAY_LEN(slow))
			continue;
		snprintf(slow[n_slow], sizeof(slow[0]), "%lld", (long long)r->o->kills[i].step);
		argv[n++] = "--exit-at-step";
		argv[n++] = slow[n_slow++];
	}
	argv[n] = NULL;
	if ((err = spawn(argv, k->log, &k->pid)) != PSF_OK)
		return run_fail(r, err, "cannot start %s: %s (log %s)", id, strerror(errno), k->log);
	k->starts++;
	return PSF_OK;
}

/* ps_ready asks a ps for Admin/Health; true when it answers ready. */
static bool
ps_ready(psf_rpc_client *c)
{
	Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
	Psfleet__V1__HealthReply *rep = NULL;
	psf_rpc_call_opts co = {.timeout_ms = 500, .idempotent = 1, 0};
	bool ready = false;

	if (psf_rpc_client_call(c, PSF_M_HEALTH, &req.base,
	        &psfleet__v1__health_reply__descriptor, &co, (ProtobufCMessage **)&rep,
	        NULL) == PSF_OK) {
		ready = rep->ready;
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	return ready;
}

/* check_exit reaps kid k if it ended; *status_out gets the status. */
static bool
reaped(kid *k, int *status_out)
{
	if (k->pid <= 0 || waitpid(k->pid, status_out, WNOHANG) != k->pid)
		return false;
	k->pid = 0;
	return true;
}

static psf_err
died(run *r, kid *k, int status, const char *when)
{
	char how[64], last[400];

	describe(status, how, sizeof(how));
	last_line(k->log, last, sizeof(last));
	return run_fail(r, PSF_EUNAVAIL, "%s %s (%s): %s (log %s)", k->node->id, when, how, last,
	    k->log);
}

static psf_err
wait_ps_ready(run *r)
{
	psf_rpc_client_opts copts;
	char tok[256];
	uint64_t deadline = psf_now_ms() + READY_TIMEOUT_MS;
	psf_err err;

	if ((err = psf_runtime_client_opts(r->cfg, tok, sizeof(tok), &copts)) != PSF_OK)
		return run_fail(r, err, "cannot set up an RPC client: %s", psf_strerror(err));
	copts.timeout_ms = 1000;
	for (size_t i = 0; i < r->cfg->n_ps; i++) {
		kid *k = &r->kids[i];
		psf_rpc_client *c = NULL;
		int status;

		if ((err = psf_rpc_client_open(k->node->listen, &copts, &c)) != PSF_OK)
			return run_fail(r, err, "%s: cannot dial %s", k->node->id, k->node->listen);
		while (!ps_ready(c)) {
			if (reaped(k, &status))
				err = died(r, k, status, "exited before it was ready");
			else if (psf_now_ms() >= deadline)
				err = run_fail(r, PSF_EUNAVAIL, "%s not ready after %d s (log %s)", k->node->id,
				    READY_TIMEOUT_MS / 1000, k->log);
			else if (r->o->stop != NULL && *r->o->stop)
				err = run_fail(r, PSF_ECLOSED, "interrupted");
			if (err != PSF_OK)
				break;
			psf_sleep_ms(TICK_MS);
		}
		psf_rpc_client_close(c);
		if (err != PSF_OK)
			return err;
	}
	return PSF_OK;
}

/* supervise waits until every trainer exited 0, restarting those that exit 3
 * after an injected failure. */
static psf_err
supervise(run *r, uint64_t deadline)
{
	for (;;) {
		size_t left = 0;
		int status;

		if (r->o->stop != NULL && *r->o->stop)
			return run_fail(r, PSF_ECLOSED, "interrupted");
		if (psf_now_ms() >= deadline)
			return run_fail(r, PSF_ETIMEDOUT, "trainers not done after %u s (logs in %s)",
			    r->o->run_timeout_s ? r->o->run_timeout_s : 1800, r->run_dir);
		for (size_t i = 0; i < r->n_kids; i++) {
			kid *k = &r->kids[i];
			size_t injected = 0;
			psf_err err;

			if (k->node->role == PSF_ROLE_PS) {
				if (reaped(k, &status))
					return died(r, k, status, "stopped during training");
				continue;
			}
			for (size_t j = 0; j < r->o->n_kills; j++)
				injected += strcmp(r->o->kills[j].id, k->node->id) == 0;
			if (reaped(k, &status)) {
				if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
					k->done = true;
				} else if (WIFEXITED(status) && WEXITSTATUS(status) == 3 && k->starts <= injected) {
					k->restart_at = psf_now_ms() + RESTART_DELAY_MS;
				} else {
					return died(r, k, status, "failed");
				}
			}
			if (k->restart_at != 0 && psf_now_ms() >= k->restart_at) {
				k->restart_at = 0;
				if ((err = start_kid(r, k)) != PSF_OK)
					return err;
				r->restarts++;
				if (r->o->out != NULL)
					fprintf(r->o->out, "psfleet experiment:   %s restarted after its injected "
					    "failure\n", k->node->id);
			}
			left += !k->done;
		}
		if (left == 0)
			return PSF_OK;
		psf_sleep_ms(TICK_MS);
	}
}

/* run_once runs one (mode, repeat) and fills rec. */
static psf_err
run_once(run *r, psf_report_run *rec)
{
	uint64_t t0 = psf_now_ms();
	uint32_t timeout_s = r->o->run_timeout_s ? r->o->run_timeout_s : 1800;
	psf_err err;

	if (psf_rm_rf(r->run_dir) != PSF_OK || psf_mkdir_p(r->run_dir) != PSF_OK)
		return run_fail(r, PSF_ESYS, "cannot make %s: %s", r->run_dir, strerror(errno));
	if ((err = load_run_config(r)) != PSF_OK)
		return err;
	if ((r->kids = calloc(r->cfg->n_ps + r->cfg->n_trainers, sizeof(*r->kids))) == NULL)
		return PSF_ENOMEM;
	for (size_t i = 0; i < r->cfg->n_ps + r->cfg->n_trainers; i++) {
		kid *k = &r->kids[r->n_kids++];

		k->node = &r->cfg->nodes[i];
		snprintf(k->log, sizeof(k->log), "%s/%s.log", r->run_dir, k->node->id);
	}
	for (size_t i = 0; i < r->cfg->n_ps; i++)
		if ((err = start_kid(r, &r->kids[i])) != PSF_OK)
			goto out;
	if ((err = wait_ps_ready(r)) != PSF_OK)
		goto out;
	for (size_t i = r->cfg->n_ps; i < r->n_kids; i++)
		if ((err = start_kid(r, &r->kids[i])) != PSF_OK)
			goto out;
	if ((err = supervise(r, t0 + (uint64_t)timeout_s * 1000)) != PSF_OK)
		goto out;
	stop_kids(r->kids, r->n_kids, false, PSF_ROLE_PS, STOP_GRACE_MS);
out:
	stop_kids(r->kids, r->n_kids, true, PSF_ROLE_PS, err == PSF_OK ? STOP_GRACE_MS : 5000);
	rec->ok = err == PSF_OK;
	rec->seconds = (double)(psf_now_ms() - t0) / 1000.0;
	rec->restarts = r->restarts;
	return err;
}

/* ---------------------------------------------------------------- experiment */

static void
describe_injections(const psf_exp_opts *o, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < o->n_stragglers && n < len; i++) {
		const psf_exp_straggler *s = &o->stragglers[i];

		if (s->slowdown > 0)
			n += (size_t)snprintf(buf + n, len - n, "%sstraggler %s %gx slower", n ? "; " : "",
			    s->id, s->slowdown);
		else
			n += (size_t)snprintf(buf + n, len - n, "%sstraggler %s +%u ms per step",
			    n ? "; " : "", s->id, s->delay_ms);
	}
	for (size_t i = 0; i < o->n_kills && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%sfailure %s exits at step %lld (restarted)",
		    n ? "; " : "", o->kills[i].id, (long long)o->kills[i].step);
	if (n == 0)
		snprintf(buf, len, "none");
}

/* prepare loads the config once (to check it and the injections), and makes
 * the data file when the config says to generate it. */
static psf_err
prepare(const psf_exp_opts *o, psf_report_meta *meta, char *data_path, char *errbuf,
    size_t errlen)
{
	const char *sets[PSF_EXP_MAX_SETS + 1];
	char run_dir[2 * PATH_LEN + 16], q[2 * PATH_LEN + 4], dir[PATH_LEN], err[512];
	psf_config *cfg = NULL;
	struct stat st;
	psf_err rv;

	memcpy(sets, o->sets, o->n_sets * sizeof(sets[0]));
	quote(o->out_dir, q, sizeof(q));
	snprintf(run_dir, sizeof(run_dir), "run_dir=%s", q);
	sets[o->n_sets] = run_dir; /* a generated data file without a path goes to OUT */
	if ((rv = psf_config_load_ex(o->config_path, sets, o->n_sets + 1, err, sizeof(err),
	         &cfg)) != PSF_OK) {
		snprintf(errbuf, errlen, "%s", err);
		return rv;
	}
	for (size_t i = 0; i < o->n_stragglers + o->n_kills; i++) {
		const char *id = i < o->n_stragglers ? o->stragglers[i].id
		                                     : o->kills[i - o->n_stragglers].id;
		const psf_node_cfg *n = psf_config_find_node(cfg, id);

		if (n == NULL || n->role != PSF_ROLE_TRAINER) {
			snprintf(errbuf, errlen, "%s has no trainer '%s' (to slow down or fail)",
			    o->config_path, id);
			psf_config_free(cfg);
			return PSF_ECONFIG;
		}
	}
	snprintf(data_path, PATH_LEN, "%s", cfg->data.path);
	meta->n_trainers = (uint32_t)cfg->n_trainers;
	meta->batch_size = cfg->training.batch_size;
	if (o->target_loss > 0 || o->target_factor > 0) {
		meta->target_loss = o->target_loss;
		meta->target_factor = o->target_factor;
		snprintf(meta->target_from, sizeof(meta->target_from), "--target-loss");
	} else {
		meta->target_loss = cfg->training.target_loss;
		snprintf(meta->target_from, sizeof(meta->target_from), "training.target_loss");
	}
	rv = PSF_OK;
	if (stat(data_path, &st) != 0) {
		if (!cfg->data.has_generate) {
			snprintf(errbuf, errlen, "%s: data file '%s' does not exist and data.generate is "
			    "not set", o->config_path, data_path);
			rv = PSF_ECONFIG;
		} else {
			snprintf(dir, sizeof(dir), "%s", data_path);
			if (strrchr(dir, '/') != NULL)
				*strrchr(dir, '/') = '\0';
			if (o->out != NULL)
				fprintf(o->out, "psfleet experiment: generating %s (%u symbols x %u days)\n",
				    data_path, cfg->data.generate.symbols, cfg->data.generate.days);
			if (strchr(data_path, '/') != NULL && psf_mkdir_p(dir) != PSF_OK)
				rv = PSF_ESYS;
			else
				rv = psf_datagen_write(&cfg->data.generate, data_path, err, sizeof(err));
			if (rv != PSF_OK)
				snprintf(errbuf, errlen, "generating %s: %s", data_path,
				    rv == PSF_ESYS ? strerror(errno) : err);
		}
	}
	psf_config_free(cfg);
	return rv;
}

/* one_run runs mode m into OUT/runs/<name> and fills rec; label is what the
 * progress lines call it. */
static psf_err
one_run(const psf_exp_opts *o, const psf_exp_mode *m, const char *name, const char *label,
    const char *data_path, psf_report_run *rec, char *errbuf, size_t errlen)
{
	run r;
	psf_err err;

	memset(&r, 0, sizeof(r));
	r.o = o;
	r.mode = m;
	r.exe = o->exe != NULL ? o->exe : "/proc/self/exe";
	r.data_path = data_path;
	r.errbuf = errbuf;
	r.errlen = errlen;
	snprintf(r.run_dir, sizeof(r.run_dir), "%s/runs/%s", o->out_dir, name);
	snprintf(rec->mode, sizeof(rec->mode), "%s", m->name);
	snprintf(rec->slug, sizeof(rec->slug), "%s", m->slug);
	snprintf(rec->run_dir, sizeof(rec->run_dir), "runs/%s", name);
	if (o->out != NULL) {
		fprintf(o->out, "psfleet experiment: %s: running (logs in %s)\n", label, r.run_dir);
		fflush(o->out);
	}
	err = run_once(&r, rec);
	if (o->out != NULL && err == PSF_OK)
		fprintf(o->out, "psfleet experiment: %s: done in %.1f s%s\n", label, rec->seconds,
		    rec->restarts ? " (with restarts)" : "");
	free(r.kids);
	psf_config_free(r.cfg);
	return err;
}

/* warm_up runs the first mode o->warmup times, unrecorded: the first run after
 * a while is slower on a shared machine (measured: 20.8 s vs 12.0 s for the same
 * async run), and repeats run in mode order, so without it the first mode pays. */
static psf_err
warm_up(const psf_exp_opts *o, const char *data_path, char *errbuf, size_t errlen)
{
	psf_err err = PSF_OK;

	for (uint32_t w = 0; w < o->warmup && err == PSF_OK; w++) {
		psf_report_run rec;
		char name[64], label[96];

		memset(&rec, 0, sizeof(rec));
		snprintf(name, sizeof(name), "warmup-r%u", w);
		snprintf(label, sizeof(label), "warm-up %u/%u (%s, not recorded)", w + 1, o->warmup,
		    o->modes[0].name);
		err = one_run(o, &o->modes[0], name, label, data_path, &rec, errbuf, errlen);
	}
	return err;
}

psf_err
psf_exp_run(const psf_exp_opts *o, char *errbuf, size_t errlen)
{
	psf_report_meta meta;
	psf_report_run *recs = NULL;
	char data_path[PATH_LEN], rerr[512];
	size_t n_recs = 0, total;
	psf_err err = PSF_OK, rep;

	errbuf[0] = '\0';
	if (o->n_modes == 0 || o->repeats == 0 || o->config_path == NULL || o->out_dir == NULL)
		return PSF_EINVAL;
	memset(&meta, 0, sizeof(meta));
	snprintf(meta.config, sizeof(meta.config), "%s", o->config_path);
	for (size_t i = 0; i < o->n_modes; i++)
		snprintf(meta.modes + strlen(meta.modes), sizeof(meta.modes) - strlen(meta.modes),
		    "%s%s", i ? "," : "", o->modes[i].name);
	meta.repeats = o->repeats;
	describe_injections(o, meta.injections, sizeof(meta.injections));
	if (psf_mkdir_p(o->out_dir) != PSF_OK) {
		snprintf(errbuf, errlen, "cannot create %s: %s", o->out_dir, strerror(errno));
		return PSF_ESYS;
	}
	if ((err = prepare(o, &meta, data_path, errbuf, errlen)) != PSF_OK ||
	    (err = warm_up(o, data_path, errbuf, errlen)) != PSF_OK)
		return err;
	total = o->n_modes * o->repeats;
	if ((recs = calloc(total, sizeof(*recs))) == NULL)
		return PSF_ENOMEM;
	for (uint32_t rep_i = 0; rep_i < o->repeats && err == PSF_OK; rep_i++) {
		/* repeats outermost: a drift of the machine over time hits every mode alike */
		for (size_t m = 0; m < o->n_modes && err == PSF_OK; m++) {
			psf_report_run *rec = &recs[n_recs++];
			char name[64], label[96];

			snprintf(name, sizeof(name), "%s-r%u", o->modes[m].slug, rep_i);
			snprintf(label, sizeof(label), "[%zu/%zu] %s repeat %u", n_recs, total,
			    o->modes[m].name, rep_i);
			rec->repeat = rep_i;
			err = one_run(o, &o->modes[m], name, label, data_path, rec, errbuf, errlen);
			if (psf_report_save(o->out_dir, &meta, recs, n_recs) != PSF_OK && err == PSF_OK) {
				snprintf(errbuf, errlen, "cannot write %s/runs.csv: %s", o->out_dir,
				    strerror(errno));
				err = PSF_ESYS;
			}
		}
	}
	free(recs);
	/* the report of what finished, even after a failed run */
	rep = psf_report_write(o->out_dir, 0, 0, err == PSF_OK ? o->out : NULL, rerr, sizeof(rerr));
	if (err == PSF_OK && rep != PSF_OK) {
		snprintf(errbuf, errlen, "%s", rerr);
		err = rep;
	}
	if (err == PSF_OK && o->out != NULL)
		fprintf(o->out, "psfleet experiment: wrote %s/results.csv, %s/summary.json, "
		    "%s/report.html\n", o->out_dir, o->out_dir, o->out_dir);
	return err;
}
