/* experiment.c -- the runner of `psfleet experiment` (experiment.h): one fresh
 * fleet per mode and repeat, started by the fleet supervisor (supervisor.h) as
 * `psfleet node ... --set ...` processes, stragglers and failures injected as
 * its faults, traces collected, report written. */
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

#include "cli/cli.h"
#include "cli/experiment/experiment.h"
#include "cli/experiment/report.h"
#include "cli/progress.h"
#include "cli/supervisor.h"
#include "lib/base/util.h"
#include "lib/data/datagen.h"

#define PATH_LEN PSF_REPORT_PATH_LEN
#define RUN_SETS 8 /* overrides the runner adds to the caller's */
#define READY_TIMEOUT_MS 60000
#define STOP_GRACE_MS 10000
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
	if (strcmp(s, "sync") == 0) {
		m.mode = PSF_CONS_SYNC;
	} else if (strcmp(s, "async") == 0) {
		m.mode = PSF_CONS_ASYNC;
	} else if (strcmp(s, "ssp") == 0) {
		m.mode = PSF_CONS_SSP;
		m.staleness = UINT32_MAX;
	} else if (strcmp(s, "local") == 0) {
		m.mode = PSF_CONS_LOCAL;
		m.staleness = UINT32_MAX;
	} else if ((strncmp(s, "ssp:", 4) == 0 && s[4] >= '0' && s[4] <= '9') ||
	    (strncmp(s, "local:", 6) == 0 && s[6] >= '1' && s[6] <= '9')) {
		bool ssp = s[0] == 's';
		errno = 0;
		v = strtoul(s + (ssp ? 4 : 6), &end, 10);
		if (*end != '\0' || errno != 0 || v > 1000000)
			return PSF_EINVAL;
		m.mode = ssp ? PSF_CONS_SSP : PSF_CONS_LOCAL;
		m.staleness = (uint32_t)v;
	} else {
		return PSF_EINVAL;
	}
	snprintf(m.name, sizeof(m.name), "%s", s);
	if ((m.mode == PSF_CONS_SSP || m.mode == PSF_CONS_LOCAL) && m.staleness != UINT32_MAX)
		snprintf(m.slug, sizeof(m.slug), "%s%u", m.mode == PSF_CONS_SSP ? "ssp" : "local",
		    m.staleness);
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
		if (end == rest + 1 || strcmp(end, "ms") != 0 || errno != 0 ||
		    !(v >= 0 && v <= 600000))
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
	psf_supervisor *sv;
	psf_supervisor_fault faults[2 * PSF_EXP_MAX_INJECT]; /* borrowed by sv */
	psf_progress *probe;                                 /* the ps nodes' health */
	uint32_t *restarted; /* per trainer: restarts reported so far */
	uint32_t restarts;
	char *errbuf;
	size_t errlen;
} run;

static psf_err run_fail(run *r, psf_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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

static void add_set(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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
	if (r->mode->mode == PSF_CONS_LOCAL && r->mode->staleness != UINT32_MAX)
		add_set(r, "consistency.sync_every=%u", r->mode->staleness);
	psf_cli_yaml_quote(r->run_dir, q_run, sizeof(q_run));
	psf_cli_yaml_quote(r->data_path, q_data, sizeof(q_data));
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
			psf_cli_yaml_quote(dir, q_dir, sizeof(q_dir));
			add_set(r, "nodes.ps.%s.data_dir=%s", n->id, q_dir);
			moved = true;
		}
	}
	if (moved) {
		psf_config_free(r->cfg);
		r->cfg = NULL;
		if ((rv = psf_config_load_ex(r->o->config_path, r->sets, r->n_sets, err,
		         sizeof(err), &r->cfg)) != PSF_OK)
			return run_fail(r, rv, "%s", err);
	}
	return PSF_OK;
}

/* ps_ready is the readiness probe of the ps nodes (psf_supervisor_ready_fn). */
static bool
ps_ready(void *arg, size_t i, char *why, size_t len)
{
	run *r = arg;
	psf_runtime_health h;

	psf_progress_health(r->probe, i, true, 500, &h);
	snprintf(why, len, "%s", h.reason);
	return h.ready;
}

/* supervise waits until every trainer exited 0; the supervisor restarts those
 * that exit at an injected failure, and gives up on any other exit. */
static psf_err
supervise(run *r, uint64_t deadline)
{
	char err[1024];

	for (;;) {
		size_t left = 0;
		uint32_t restarts = 0;

		if (r->o->stop != NULL && *r->o->stop)
			return run_fail(r, PSF_ECLOSED, "interrupted");
		if (psf_now_ms() >= deadline)
			return run_fail(r, PSF_ETIMEDOUT,
			    "trainers not done after %u s (logs in %s)",
			    r->o->run_timeout_s ? r->o->run_timeout_s : 1800, r->run_dir);
		if (psf_supervisor_tick(r->sv, err, sizeof(err)) != PSF_OK)
			return run_fail(r, PSF_EUNAVAIL, "%s", err);
		for (size_t i = r->cfg->n_ps; i < r->cfg->n_ps + r->cfg->n_trainers; i++) {
			psf_child_info ci;

			psf_supervisor_child(r->sv, i, &ci);
			left += ci.state != PSF_CHILD_DONE;
			restarts += ci.starts - 1;
			if (ci.starts > 1 && ci.starts - 1 > r->restarted[i - r->cfg->n_ps]) {
				r->restarted[i - r->cfg->n_ps] = ci.starts - 1;
				if (r->o->out != NULL)
					fprintf(r->o->out,
					    "psfleet experiment:   %s restarted after its injected "
					    "failure\n",
					    ci.node->id);
			}
		}
		r->restarts = restarts;
		if (left == 0)
			return PSF_OK;
		psf_sleep_ms(TICK_MS);
	}
}

/* start_fleet starts the ps nodes, waits until they are ready, then starts the
 * trainers, with the injections as faults of the supervisor. */
static psf_err
start_fleet(run *r)
{
	psf_supervisor_fault *faults = r->faults;
	psf_supervisor_opts so;
	size_t *idx, n_faults = 0;
	char err[1024];
	psf_err rv = PSF_OK;

	for (size_t i = 0; i < r->o->n_stragglers; i++)
		faults[n_faults++] = (psf_supervisor_fault){.id = r->o->stragglers[i].id,
		    .slowdown = r->o->stragglers[i].slowdown,
		    .delay_ms = r->o->stragglers[i].delay_ms};
	for (size_t i = 0; i < r->o->n_kills; i++)
		faults[n_faults++] = (psf_supervisor_fault){.id = r->o->kills[i].id,
		    .exit_at_step = r->o->kills[i].step};
	memset(&so, 0, sizeof(so));
	so.name = "psfleet experiment";
	so.no_finetune = true;
	so.exe = r->exe;
	so.config_path = r->o->config_path;
	so.sets = r->sets;
	so.n_sets = r->n_sets;
	so.log_dir = r->run_dir;
	so.max_failures = 1; /* a run with an unplanned failure measures nothing: give up */
	so.faults = faults;
	so.n_faults = n_faults;
	if (r->n_sets > PSF_SUPERVISOR_MAX_SETS)
		return run_fail(r, PSF_ECONFIG,
		    "more than %d overrides (--set and the runner's own)", PSF_SUPERVISOR_MAX_SETS);
	if ((rv = psf_supervisor_new(r->cfg, &so, &r->sv)) != PSF_OK ||
	    (rv = psf_progress_new(r->cfg, NULL, false, &r->probe)) != PSF_OK)
		return run_fail(r, rv, "cannot set up the supervisor: %s", psf_strerror(rv));
	idx = calloc(r->cfg->n_ps, sizeof(*idx));
	r->restarted = calloc(r->cfg->n_trainers + 1, sizeof(*r->restarted));
	if (idx == NULL || r->restarted == NULL) {
		free(idx);
		return run_fail(r, PSF_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < r->cfg->n_ps + r->cfg->n_trainers && rv == PSF_OK; i++) {
		if (i == r->cfg->n_ps &&
		    (rv = psf_supervisor_wait_ready(r->sv, idx, r->cfg->n_ps, READY_TIMEOUT_MS,
		         r->o->stop, ps_ready, r, err, sizeof(err))) != PSF_OK) {
			rv = run_fail(r, rv, "%s", err);
		} else if (psf_supervisor_start(r->sv, i) != PSF_OK) {
			rv = run_fail(r, PSF_ESYS, "cannot start %s: %s (log %s/%s.log)",
			    r->cfg->nodes[i].id, strerror(errno), r->run_dir, r->cfg->nodes[i].id);
		} else if (i < r->cfg->n_ps) {
			idx[i] = i; /* the ps nodes come first in cfg->nodes */
		}
	}
	free(idx);
	return rv;
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
	if ((err = start_fleet(r)) == PSF_OK)
		err = supervise(r, t0 + (uint64_t)timeout_s * 1000);
	if (r->sv != NULL)
		psf_supervisor_stop(r->sv, err == PSF_OK ? STOP_GRACE_MS : 5000, NULL);
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
			n += (size_t)snprintf(buf + n, len - n, "%sstraggler %s %gx slower",
			    n ? "; " : "", s->id, s->slowdown);
		else
			n += (size_t)snprintf(buf + n, len - n, "%sstraggler %s +%u ms per step",
			    n ? "; " : "", s->id, s->delay_ms);
	}
	for (size_t i = 0; i < o->n_kills && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n,
		    "%sfailure %s exits at step %lld (restarted)", n ? "; " : "", o->kills[i].id,
		    (long long)o->kills[i].step);
	if (n == 0)
		snprintf(buf, len, "none");
}

/* prepare loads the config once (to check it and the injections), and makes
 * the data file when the config says to generate it. */
static psf_err
prepare(const psf_exp_opts *o, psf_report_meta *meta, char *data_path, char *errbuf, size_t errlen)
{
	const char *sets[PSF_EXP_MAX_SETS + 1];
	char run_dir[2 * PATH_LEN + 16], q[2 * PATH_LEN + 4], dir[PATH_LEN], err[512];
	psf_config *cfg = NULL;
	struct stat st;
	psf_err rv;

	memcpy(sets, o->sets, o->n_sets * sizeof(sets[0]));
	psf_cli_yaml_quote(o->out_dir, q, sizeof(q));
	snprintf(run_dir, sizeof(run_dir), "run_dir=%s", q);
	sets[o->n_sets] = run_dir; /* a generated data file without a path goes to OUT */
	if ((rv = psf_config_load_ex(o->config_path, sets, o->n_sets + 1, err, sizeof(err),
	         &cfg)) != PSF_OK) {
		snprintf(errbuf, errlen, "%s", err);
		return rv;
	}
	for (size_t i = 0; i < o->n_stragglers + o->n_kills; i++) {
		const char *id =
		    i < o->n_stragglers ? o->stragglers[i].id : o->kills[i - o->n_stragglers].id;
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
			snprintf(errbuf, errlen,
			    "%s: data file '%s' does not exist and data.generate is "
			    "not set",
			    o->config_path, data_path);
			rv = PSF_ECONFIG;
		} else {
			snprintf(dir, sizeof(dir), "%s", data_path);
			if (strrchr(dir, '/') != NULL)
				*strrchr(dir, '/') = '\0';
			if (o->out != NULL)
				fprintf(o->out,
				    "psfleet experiment: generating %s (%u symbols x %u days)\n",
				    data_path, cfg->data.generate.symbols, cfg->data.generate.days);
			if (strchr(data_path, '/') != NULL && psf_mkdir_p(dir) != PSF_OK)
				rv = PSF_ESYS;
			else
				rv = psf_datagen_write(&cfg->data.generate, data_path, err,
				    sizeof(err));
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
	psf_supervisor_free(r.sv);
	free(r.restarted);
	psf_progress_free(r.probe);
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
			if (psf_report_save(o->out_dir, &meta, recs, n_recs) != PSF_OK &&
			    err == PSF_OK) {
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
		fprintf(o->out,
		    "psfleet experiment: wrote %s/results.csv, %s/summary.json, "
		    "%s/report.html\n",
		    o->out_dir, o->out_dir, o->out_dir);
	return err;
}
