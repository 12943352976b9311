/* psfleet up CONFIG: run a whole fleet on this machine (DESIGN.md §1, §8).
 *
 * Order of work: load and check the config (nothing starts on a mistake), make
 * the data if asked to, start the ps nodes and wait until they are ready, start
 * the trainers, then the inferers and the gateway; supervise (cli/supervisor.h),
 * show progress (cli/progress.h), print the fleet's test metrics once every
 * trainer is done, and stop everything on Ctrl-C / SIGTERM. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/supervisor.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/config/config.h"

#define TICK_MS 100
#define STOP_GRACE_MS 10000

/* Stop requests from SIGINT/SIGTERM/SIGHUP: the one piece of process-wide
 * state here, because a signal handler can reach nothing else. A second Ctrl-C
 * (SIGINT) skips the grace period; a repeated SIGTERM does not, because
 * supervisors such as timeout(1) send it twice (to the process and its group). */
static volatile sig_atomic_t stop_signals;
static volatile sig_atomic_t interrupts;
static volatile sig_atomic_t last_signal;
static volatile sig_atomic_t force_stop;

static void
on_stop_signal(int sig)
{
	last_signal = sig;
	if (stop_signals < 100)
		stop_signals++;
	if (sig == SIGINT && ++interrupts >= 2)
		force_stop = 1;
}

typedef struct up_args {
	const char *config;
	const char *metrics_out;
	bool train_only;
	bool reset;
	bool fresh;
	const char *restore; /* --restore DIR */
	const char *only;    /* comma-separated roles or node ids; NULL = all */
	uint32_t ready_timeout_ms;
	const char *sets[PSF_SUPERVISOR_MAX_SETS]; /* --set KEY=VALUE, in order, for every node */
	size_t n_sets;
} up_args;

typedef struct up {
	up_args a;
	psf_config *cfg;
	psf_supervisor *l;
	psf_progress *p;
	bool *selected;    /* per node: started by this run */
	size_t n_trainers; /* selected trainers */
	char log_dir[4096];
	uint64_t train_start_ms;
	double train_seconds;
	bool already_trained; /* the ps held finished reports of every trainer */
} up;

static void
up_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet up CONFIG [--train-only] [--metrics-out FILE.json]\n"
	    "                  [--reset | --fresh | --restore DIR]\n"
	    "                  [--only ROLES|IDS] [--ready-timeout SECONDS] [--set KEY=VALUE]...\n"
	    "\n"
	    "Runs the whole fleet described by CONFIG on this machine, one process per node\n"
	    "(`psfleet node CONFIG --id ID`), logs in <run_dir>/logs/<id>.log. Starts the ps\n"
	    "nodes, then the trainers, then the inferers and the gateway; restarts crashed\n"
	    "nodes with backoff; shows progress; prints the test RMSE/MAE against the naive\n"
	    "forecast once training is done, then keeps serving until Ctrl-C or SIGTERM.\n"
	    "  --train-only            start ps + trainers only; stop and exit when done\n"
	    "  --metrics-out FILE      write the results as JSON when training is done\n"
	    "  --reset                 pass --reset to the ps nodes (discard a store that\n"
	    "                          does not fit CONFIG: another model layout, or trained\n"
	    "                          with other training settings)\n"
	    "  --fresh                 pass --fresh to the ps nodes: discard their stores and\n"
	    "                          train afresh. Without it, a run resumes the stored model\n"
	    "                          only when the training settings are the same, and stops\n"
	    "                          naming the changed keys otherwise (docs/operations.md)\n"
	    "  --restore DIR           pass --restore DIR to the ps nodes: start from the\n"
	    "                          backup `psfleet backup` wrote there (empty run_dir)\n"
	    "  --only LIST             start only these roles (ps, trainer, inferer, gateway)\n"
	    "                          or node ids, comma-separated, e.g. --only ps\n"
	    "  --ready-timeout SECONDS how long a node may take to become ready (default 60)\n"
	    "  --set KEY=VALUE         override a config key for this run and every node, e.g.\n"
	    "                          data.path=other.csv or run_dir=runs/b (repeatable;\n"
	    "                          docs/config.md, as psfleet node and experiment)\n");
}

static int
parse_args(int argc, char **argv, up_args *a)
{
	memset(a, 0, sizeof(*a));
	a->ready_timeout_ms = 60000;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--train-only") == 0) {
			a->train_only = true;
		} else if (strcmp(arg, "--reset") == 0) {
			a->reset = true;
		} else if (strcmp(arg, "--fresh") == 0) {
			a->fresh = true;
		} else if (strcmp(arg, "--restore") == 0 && i + 1 < argc) {
			a->restore = argv[++i];
		} else if (strcmp(arg, "--only") == 0 && i + 1 < argc) {
			a->only = argv[++i];
		} else if (strcmp(arg, "--metrics-out") == 0 && i + 1 < argc) {
			a->metrics_out = argv[++i];
		} else if (strcmp(arg, "--set") == 0 && i + 1 < argc) {
			if (a->n_sets == PSF_SUPERVISOR_MAX_SETS) {
				fprintf(stderr, "psfleet up: at most %d --set options\n",
				    PSF_SUPERVISOR_MAX_SETS);
				return -1;
			}
			a->sets[a->n_sets++] = argv[++i];
		} else if (strcmp(arg, "--ready-timeout") == 0 && i + 1 < argc) {
			char *end;
			unsigned long s = strtoul(argv[++i], &end, 10);

			if (*end != '\0' || s == 0 || s > 86400) {
				fprintf(stderr,
				    "psfleet up: --ready-timeout needs 1..86400 seconds\n");
				return -1;
			}
			a->ready_timeout_ms = (uint32_t)s * 1000;
		} else if (arg[0] == '-') {
			fprintf(stderr,
			    "psfleet up: unknown or incomplete option '%s' (see --help)\n", arg);
			return -1;
		} else if (a->config == NULL) {
			a->config = arg;
		} else {
			fprintf(stderr, "psfleet up: unexpected argument '%s'\n", arg);
			return -1;
		}
	}
	if (a->config == NULL) {
		fprintf(stderr, "psfleet up: CONFIG is required (see --help)\n");
		return -1;
	}
	if (a->reset + a->fresh + (a->restore != NULL) > 1) {
		fprintf(stderr, "psfleet up: give only one of --reset, --fresh and --restore\n");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- pre-flight */

/* select_nodes marks the nodes this run starts: all, or those --only names;
 * --train-only leaves out the inferers and the gateway. */
static int
select_nodes(up *u)
{
	const psf_config *cfg = u->cfg;
	char *list = NULL, *save = NULL;

	if ((u->selected = calloc(cfg->n_nodes, sizeof(*u->selected))) == NULL)
		return -1;
	for (size_t i = 0; i < cfg->n_nodes; i++)
		u->selected[i] = u->a.only == NULL;
	if (u->a.only != NULL) {
		if ((list = strdup(u->a.only)) == NULL)
			return -1;
		for (char *t = strtok_r(list, ",", &save); t != NULL;
		     t = strtok_r(NULL, ",", &save)) {
			bool hit = false;

			for (size_t i = 0; i < cfg->n_nodes; i++) {
				const char *role = psf_role_name(cfg->nodes[i].role);
				size_t rl = strlen(role);

				if (strcmp(t, cfg->nodes[i].id) == 0 || strcmp(t, role) == 0 ||
				    (strncmp(t, role, rl) == 0 && strcmp(t + rl, "s") == 0))
					u->selected[i] = hit = true;
			}
			if (!hit) {
				fprintf(stderr,
				    "psfleet up: --only: '%s' is neither a role (ps, trainer, "
				    "inferer, gateway) nor a node id of %s\n",
				    t, u->a.config);
				free(list);
				return -1;
			}
		}
		free(list);
	}
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		if (u->a.train_only &&
		    (cfg->nodes[i].role == PSF_ROLE_INFERER ||
		        cfg->nodes[i].role == PSF_ROLE_GATEWAY))
			u->selected[i] = false;
		if (u->selected[i] && cfg->nodes[i].role == PSF_ROLE_TRAINER)
			u->n_trainers++;
	}
	return 0;
}

/* make_data runs `psfleet data gen` when the data file is missing. */
static int
make_data(up *u)
{
	const psf_config *cfg = u->cfg;
	const psf_datagen_cfg *g = &cfg->data.generate;
	char sym[24], days[24], seed[32], log[4200], dir[4096], how[64], last[512];
	char *argv[14];
	struct stat st;
	size_t n = 0;
	int status;
	psf_err err;

	if (stat(cfg->data.path, &st) == 0)
		return 0;
	snprintf(dir, sizeof(dir), "%s", cfg->data.path);
	if (psf_mkdir_p(dirname(dir)) != PSF_OK) {
		fprintf(stderr, "psfleet up: cannot create the directory of %s: %s\n",
		    cfg->data.path, strerror(errno));
		return -1;
	}
	snprintf(sym, sizeof(sym), "%u", g->symbols);
	snprintf(days, sizeof(days), "%u", g->days);
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)g->seed);
	snprintf(log, sizeof(log), "%s/data-gen.log", u->log_dir);
	argv[n++] = "/proc/self/exe";
	argv[n++] = "data";
	argv[n++] = "gen";
	argv[n++] = "--symbols";
	argv[n++] = sym;
	argv[n++] = "--days";
	argv[n++] = days;
	argv[n++] = "--seed";
	argv[n++] = seed;
	argv[n++] = "--out";
	argv[n++] = cfg->data.path;
	if (g->skew)
		argv[n++] = "--skew";
	argv[n] = NULL;
	psf_progress_note(u->p, "psfleet up: generating %s (%u symbols x %u days, seed %llu)",
	    cfg->data.path, g->symbols, g->days, (unsigned long long)g->seed);
	err = psf_supervisor_run_once(argv, log, &stop_signals, &status);
	if (err == PSF_ECLOSED) {
		fprintf(stderr, "psfleet up: interrupted while generating %s\n", cfg->data.path);
		return -1;
	}
	if (err != PSF_OK || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		psf_supervisor_describe_status(err == PSF_OK ? status : 0x7f00, how, sizeof(how));
		psf_supervisor_log_cause(log, last, sizeof(last));
		fprintf(stderr, "psfleet up: generating %s failed (%s): %s (log %s)\n",
		    cfg->data.path, how, last[0] ? last : "no output", log);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- start-up */

static void
note_line(void *arg, const char *line)
{
	psf_progress_note(arg, "psfleet up: %s", line);
}

/* The readiness probe of start_role (psf_supervisor_ready_fn). */
typedef struct ready_probe {
	up *u;
	uint64_t t0;
} ready_probe;

static bool
node_ready(void *arg, size_t i, char *why, size_t len)
{
	ready_probe *rp = arg;
	const psf_node_cfg *node = &rp->u->cfg->nodes[i];
	double secs = (double)(psf_now_ms() - rp->t0) / 1000.0;
	psf_runtime_health h;

	psf_progress_health(rp->u->p, i, node->role == PSF_ROLE_PS, 300, &h);
	if (!h.ready && strcmp(h.via, "none") != 0) {
		snprintf(why, len, "%s", h.reason);
		return false;
	}
	if (node->role == PSF_ROLE_PS && h.has_version && h.model_version > 0)
		psf_progress_note(rp->u->p,
		    "psfleet up: %s ready (%.1f s; resumed model version %llu "
		    "of an earlier run with the same training settings: --fresh starts afresh)",
		    node->id, secs, (unsigned long long)h.model_version);
	else
		psf_progress_note(rp->u->p, "psfleet up: %s ready (%.1f s)", node->id, secs);
	return true;
}

/* start_role starts every selected node of a role and, when wait is set, waits
 * until they are all ready. Any fleet size the config accepts works: the index
 * list is sized by the config, not by a fixed batch. */
static int
start_role(up *u, psf_role role, bool wait)
{
	size_t *idx = calloc(u->cfg->n_nodes > 0 ? u->cfg->n_nodes : 1, sizeof(*idx)), n = 0;
	int rc = -1;

	if (idx == NULL) {
		fprintf(stderr, "psfleet up: out of memory\n");
		return -1;
	}
	for (size_t i = 0; i < u->cfg->n_nodes; i++) {
		if (u->cfg->nodes[i].role != role || !u->selected[i])
			continue;
		if (psf_supervisor_start(u->l, i) != PSF_OK) {
			fprintf(stderr, "psfleet up: cannot start %s: %s\n", u->cfg->nodes[i].id,
			    strerror(errno));
			goto out;
		}
		idx[n++] = i;
	}
	rc = 0;
	if (wait && n > 0) {
		ready_probe rp = {u, psf_now_ms()};
		char err[1024];
		psf_err e = psf_supervisor_wait_ready(u->l, idx, n, u->a.ready_timeout_ms,
		    &stop_signals, node_ready, &rp, err, sizeof(err));

		if (e != PSF_OK && e != PSF_ECLOSED)
			fprintf(stderr, "psfleet up: %s\n",
			    e == PSF_ENOMEM ? "out of memory" : err);
		rc = e == PSF_OK ? 0 : -1;
	}
out:
	free(idx);
	return rc;
}

/* ---------------------------------------------------------------- results */

/* report_results prints the fleet's test metrics and writes --metrics-out
 * (cli/up_report.c); the JSON counts the restarts of this run's nodes. */
static int
report_results(up *u)
{
	psf_up_report o = {"psfleet up", u->a.config, u->a.metrics_out, u->n_trainers,
	    u->train_seconds, u->already_trained, 0};

	for (size_t i = 0; i < psf_supervisor_count(u->l); i++) {
		psf_child_info ci;
		psf_supervisor_child(u->l, i, &ci);
		o.restarts += ci.starts > 1 ? (int)ci.starts - 1 : 0;
	}
	return psf_up_report_results(u->cfg, u->p, &o);
}

/* ---------------------------------------------------------------- main loop */

/* fine_tuning tells whether trainer n has finished training and now
 * fine-tunes on ingested rows (training.finetune): ps0 holds its finished
 * report while it runs on. */
static bool
fine_tuning(const up *u, const psf_node_cfg *n)
{
	Psfleet__V1__StatsReply *st = NULL;
	bool on = false;

	if (u->a.train_only || u->cfg->training.finetune.steps == 0 || n->index != 0)
		return false;
	if (psf_progress_stats0(u->p, 500, &st, NULL) != PSF_OK)
		return false;
	for (size_t k = 0; k < st->n_reports; k++)
		if (strcmp(st->reports[k]->worker, n->id) == 0)
			on = st->reports[k]->finished;
	protobuf_c_message_free_unpacked(&st->base, NULL);
	return on;
}

static bool
trainers_done(const up *u)
{
	const psf_node_cfg *running = NULL; /* a trainer that may be fine-tuning */

	for (size_t i = 0; i < psf_supervisor_count(u->l); i++) {
		psf_child_info ci;

		psf_supervisor_child(u->l, i, &ci);
		if (!u->selected[i] || ci.node->role != PSF_ROLE_TRAINER ||
		    ci.state == PSF_CHILD_DONE)
			continue;
		if (ci.state != PSF_CHILD_RUNNING || running != NULL)
			return false;
		running = ci.node;
	}
	return running == NULL || fine_tuning(u, running); /* asked once the others are done */
}

/* supervise runs until training ends (--train-only), a node fails for good, or
 * a stop signal. Returns 0 when the run reached its goal. */
static int
supervise(up *u)
{
	uint64_t interval = 2000, last_render = 0;
	bool reported = false;
	char err[512];

	if (isatty(STDOUT_FILENO))
		interval = 1000;
	for (;;) {
		if (stop_signals != 0) {
			psf_progress_note(u->p, "psfleet up: SIG%s received; stopping the fleet",
			    sigabbrev_np(last_signal) != NULL ? sigabbrev_np(last_signal)
			                                      : "signal");
			return u->a.train_only && !reported ? -1 : 0;
		}
		if (psf_supervisor_tick(u->l, err, sizeof(err)) != PSF_OK) {
			psf_progress_note(u->p, "psfleet up: %s; stopping the fleet", err);
			fprintf(stderr, "psfleet up: %s\n", err);
			return -1;
		}
		if (!reported && u->n_trainers == 0) {
			reported = true;
			psf_progress_note(u->p,
			    "psfleet up: no trainers started; serving until Ctrl-C or "
			    "SIGTERM");
		}
		if (!reported && trainers_done(u)) {
			reported = true;
			u->train_seconds = (double)(psf_now_ms() - u->train_start_ms) / 1000.0;
			psf_progress_poll(u->p, u->l);
			psf_progress_render(u->p, u->l);
			psf_progress_keep(u->p);
			/* Without results a --train-only run failed; a serving fleet
			 * still serves. */
			if (report_results(u) != 0 && u->a.train_only)
				return -1;
			if (u->a.train_only)
				return 0;
			psf_up_print_serving(u->cfg, u->p, "Ctrl-C or SIGTERM");
		}
		if (!reported && psf_now_ms() - last_render >= interval) {
			psf_progress_poll(u->p, u->l);
			psf_progress_render(u->p, u->l);
			last_render = psf_now_ms();
		}
		psf_sleep_ms(TICK_MS);
	}
}

/* stop_fleet stops every child and prints how each ended; returns -1 when one
 * did not end cleanly. */
static int
stop_fleet(up *u)
{
	char line[2048], how[64];
	size_t n;
	int rc = 0;

	interrupts = 1; /* from now on, one Ctrl-C forces the stop */
	psf_supervisor_stop(u->l, STOP_GRACE_MS, &force_stop);
	n = (size_t)snprintf(line, sizeof(line), "psfleet up: stopped:");
	for (size_t i = 0; i < psf_supervisor_count(u->l) && n < sizeof(line); i++) {
		psf_child_info ci;

		psf_supervisor_child(u->l, i, &ci);
		if (ci.starts == 0)
			continue;
		if (ci.state == PSF_CHILD_DONE)
			snprintf(how, sizeof(how), "done");
		else
			psf_supervisor_describe_status(ci.last_status, how, sizeof(how));
		if (ci.state == PSF_CHILD_FAILED ||
		    (ci.state == PSF_CHILD_STOPPED &&
		        !(WIFEXITED(ci.last_status) && WEXITSTATUS(ci.last_status) == 0)))
			rc = -1;
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s %s (%s)", n > 20 ? "," : "",
		    ci.node->id, how);
	}
	psf_progress_note(u->p, "%s", line);
	return rc;
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	/* An ignored SIGCHLD (inherited from our parent) would reap the nodes
	 * behind our back and hide their exit status. */
	sa.sa_handler = SIG_DFL;
	(void)sigaction(SIGCHLD, &sa, NULL);
}

/* failed_on_input tells whether a node was given up on because it failed on its
 * input or config (supervisor.h): then `up` exits 2 as for a bad config. */
static bool
failed_on_input(const up *u)
{
	for (size_t i = 0; i < psf_supervisor_count(u->l); i++) {
		psf_child_info ci;

		psf_supervisor_child(u->l, i, &ci);
		if (ci.state == PSF_CHILD_FAILED && ci.has_exited && WIFEXITED(ci.last_status) &&
		    WEXITSTATUS(ci.last_status) == PSF_NODE_EXIT_INPUT)
			return true;
	}
	return false;
}

/* note_already_trained asks ps0, before the trainers start, whether it resumed
 * a run every selected trainer had finished: then the trainers only re-evaluate
 * the stored model, and the results are those of the earlier run. */
static void
note_already_trained(up *u)
{
	const psf_node_cfg *ps0 = psf_config_role_node(u->cfg, PSF_ROLE_PS, 0);
	Psfleet__V1__StatsReply *st = NULL;
	size_t done = 0;

	if (u->n_trainers == 0 || !u->selected[ps0 - u->cfg->nodes] ||
	    psf_progress_stats0(u->p, 10000, &st, NULL) != PSF_OK)
		return;
	for (size_t k = 0; k < st->n_reports; k++) {
		const psf_node_cfg *n = psf_config_find_node(u->cfg, st->reports[k]->worker);

		if (n != NULL && n->role == PSF_ROLE_TRAINER && u->selected[n - u->cfg->nodes] &&
		    st->reports[k]->finished)
			done++;
	}
	u->already_trained = done == u->n_trainers;
	if (u->already_trained)
		psf_progress_note(u->p,
		    "psfleet up: training was already complete (model version "
		    "%llu, same training settings): the results below are the stored ones of that "
		    "run; --fresh trains afresh",
		    (unsigned long long)st->model_version);
	protobuf_c_message_free_unpacked(&st->base, NULL);
}

/* run starts the fleet and supervises it; returns the exit code. */
static int
run(up *u)
{
	psf_supervisor_opts lo;
	int rc = 1, ok;

	memset(&lo, 0, sizeof(lo));
	lo.config_path = u->a.config;
	lo.sets = u->a.sets;
	lo.n_sets = u->a.n_sets;
	lo.no_finetune = u->a.train_only;
	lo.log_dir = u->log_dir;
	lo.reset = u->a.reset;
	lo.fresh = u->a.fresh;
	lo.restore = u->a.restore;
	lo.note = note_line;
	lo.note_arg = u->p;
	if (psf_supervisor_new(u->cfg, &lo, &u->l) != PSF_OK) {
		fprintf(stderr, "psfleet up: out of memory\n");
		return 1;
	}
	if (u->n_trainers > 0)
		psf_up_print_split(u->cfg, u->p);
	ok = start_role(u, PSF_ROLE_PS, true) == 0;
	if (ok)
		note_already_trained(u);
	if (ok) {
		u->train_start_ms = psf_now_ms();
		psf_progress_training_started(u->p);
		ok = start_role(u, PSF_ROLE_TRAINER, false) == 0;
	}
	if (ok && !u->a.train_only)
		ok = start_role(u, PSF_ROLE_INFERER, true) == 0 &&
		    start_role(u, PSF_ROLE_GATEWAY, true) == 0;
	if (ok && supervise(u) == 0)
		rc = 0;
	if (stop_fleet(u) != 0)
		rc = 1;
	if (failed_on_input(u))
		rc = 2;
	if (stop_signals != 0 && !u->a.train_only && rc == 0)
		psf_progress_note(u->p, "psfleet up: fleet stopped cleanly");
	return rc;
}

int
psf_cmd_up(int argc, char **argv)
{
	up u;
	char errbuf[512];
	psf_log_level level = PSF_LOG_WARN;
	bool had_data;
	int rc;
	psf_err err;

	if (psf_cli_wants_help(argc, argv)) {
		up_usage(stdout);
		return 0;
	}
	memset(&u, 0, sizeof(u));
	if (parse_args(argc, argv, &u.a) != 0)
		return 2;
	psf_log_setup(level, "up");
	install_signals();
	if (psf_config_load_ex(u.a.config, u.a.sets, u.a.n_sets, errbuf, sizeof(errbuf), &u.cfg) !=
	    PSF_OK) {
		fprintf(stderr, "psfleet up: %s\n", errbuf);
		return 2;
	}
	/* Data that exists is checked before anything is created or started;
	 * generated data once it is made. */
	had_data = access(u.cfg->data.path, F_OK) == 0;
	if (psf_up_check_metrics_out("psfleet up", u.a.metrics_out) != 0 || select_nodes(&u) != 0 ||
	    psf_up_preflight(u.a.config, u.cfg, u.selected) != 0 ||
	    (had_data && u.n_trainers > 0 && psf_up_check_data(u.a.config, u.cfg) != 0)) {
		free(u.selected);
		psf_config_free(u.cfg);
		return 2;
	}
	snprintf(u.log_dir, sizeof(u.log_dir), "%s/logs", u.cfg->run_dir);
	if (psf_mkdir_p(u.log_dir) != PSF_OK) {
		fprintf(stderr, "psfleet up: cannot create %s: %s\n", u.log_dir, strerror(errno));
		free(u.selected);
		psf_config_free(u.cfg);
		return 1;
	}
	if ((err = psf_progress_new(u.cfg, stdout, isatty(STDOUT_FILENO) != 0, &u.p)) != PSF_OK) {
		fprintf(stderr, "psfleet up: %s: cannot set up clients: %s\n", u.a.config,
		    psf_strerror(err));
		free(u.selected);
		psf_config_free(u.cfg);
		return 1;
	}
	psf_progress_note(u.p,
	    "psfleet up: fleet '%s' from %s: %zu ps, %zu trainer%s, %zu inferer%s, "
	    "%zu gateway%s%s; logs in %s",
	    u.cfg->name, u.a.config, u.cfg->n_ps, u.cfg->n_trainers, psf_plural(u.cfg->n_trainers),
	    u.cfg->n_inferers, psf_plural(u.cfg->n_inferers), u.cfg->n_gateways,
	    psf_plural(u.cfg->n_gateways), u.a.train_only ? " (--train-only: ps and trainers)" : "",
	    u.log_dir);
	if (make_data(&u) != 0)
		rc = 1;
	else if (!had_data && u.n_trainers > 0 && psf_up_check_data(u.a.config, u.cfg) != 0)
		rc = 2;
	else
		rc = run(&u);
	psf_supervisor_free(u.l);
	psf_progress_free(u.p);
	free(u.selected);
	psf_config_free(u.cfg);
	return rc;
}
