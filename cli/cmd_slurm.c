/* psfleet slurm: what a Slurm batch script needs to run a fleet in one
 * allocation (examples/slurm/, docs/deployment.md).
 *
 *   plan   place the nodes on the allocation's hosts, write the config they run
 *          with (cli/slurm_plan.c)
 *   watch  wait for the fleet the job started: the ps ready, every trainer
 *          finished; print the test metrics and the `serving; try:` line as
 *          `psfleet up` does (cli/up_report.c), once the serving nodes are ready */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/config/config.h"

#define POLL_MS 500
#define RENDER_MS 5000

/* Stop requests from SIGINT/SIGTERM (scancel): the one piece of process-wide
 * state here, because a signal handler can reach nothing else. */
static volatile sig_atomic_t stop_signals;

static void
on_stop_signal(int sig)
{
	(void)sig;
	stop_signals = 1;
}

static void
slurm_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet slurm plan CONFIG --nodes NODE[,NODE...] --out DIR\n"
	    "                          [--addrs ADDR[,ADDR...]] [--place WHO=LIST]...\n"
	    "                          [--port-base PORT]\n"
	    "       psfleet slurm watch CONFIG [--metrics-out FILE.json] [--timeout SECONDS]\n"
	    "\n"
	    "Helpers of a Slurm batch script that runs a whole fleet in one allocation\n"
	    "(examples/slurm/psfleet.sbatch; docs/deployment.md):\n"
	    "  plan   places the nodes of CONFIG on the allocation's hosts and writes\n"
	    "         DIR/fleet.yaml (each node's addresses on its host) and DIR/nodes\n"
	    "         (\"ID ROLE SLURM_NODE\" per node); psfleet slurm plan --help\n"
	    "  watch  waits until the ps nodes are ready and every trainer has finished,\n"
	    "         prints the test metrics like psfleet up (and writes --metrics-out),\n"
	    "         waits for the inferers and the gateway, prints the line\n"
	    "         `psfleet up: serving; try: psfleet predict --connect URL SYMBOL`, and\n"
	    "         exits 0. --timeout gives up (exit 1) after SECONDS (default: never).\n"
	    "         Exit 1 also on SIGINT/SIGTERM, 2 on a bad CONFIG.\n");
}

typedef struct watch_args {
	const char *config;
	const char *metrics_out;
	uint64_t timeout_ms; /* 0: none */
} watch_args;

static int
parse_watch(int argc, char **argv, watch_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--metrics-out") == 0 && i + 1 < argc) {
			a->metrics_out = argv[++i];
		} else if (strcmp(arg, "--timeout") == 0 && i + 1 < argc) {
			char *end;
			unsigned long s = strtoul(argv[++i], &end, 10);

			if (*end != '\0' || s == 0 || s > 30 * 86400) {
				fprintf(stderr,
				    "psfleet slurm watch: --timeout takes 1..2592000 "
				    "seconds\n");
				return -1;
			}
			a->timeout_ms = (uint64_t)s * 1000;
		} else if (arg[0] == '-') {
			fprintf(stderr,
			    "psfleet slurm watch: unknown or incomplete option '%s' (see --help)\n",
			    arg);
			return -1;
		} else if (a->config == NULL) {
			a->config = arg;
		} else {
			fprintf(stderr, "psfleet slurm watch: unexpected argument '%s'\n", arg);
			return -1;
		}
	}
	if (a->config == NULL) {
		fprintf(stderr, "psfleet slurm watch: CONFIG is required (see --help)\n");
		return -1;
	}
	return 0;
}

typedef struct watch {
	watch_args a;
	psf_config *cfg;
	psf_progress *p;
	uint64_t t0;
} watch;

/* waiting tells whether to go on: no stop signal, time left. Says why not. */
static bool
waiting(const watch *w, const char *what)
{
	if (stop_signals != 0) {
		fprintf(stderr, "psfleet slurm watch: stopped by a signal while waiting for %s\n",
		    what);
		return false;
	}
	if (w->a.timeout_ms != 0 && psf_now_ms() - w->t0 > w->a.timeout_ms) {
		fprintf(stderr, "psfleet slurm watch: timed out waiting for %s\n", what);
		return false;
	}
	return true;
}

/* wait_role waits until every node of role answers ready. */
static int
wait_role(watch *w, psf_role role)
{
	for (size_t i = 0; i < w->cfg->n_nodes; i++) {
		const psf_node_cfg *n = &w->cfg->nodes[i];
		uint64_t t = psf_now_ms(), last_note = t;
		psf_runtime_health h;

		if (n->role != role)
			continue;
		for (;;) {
			psf_progress_health(w->p, i, false, 500, &h);
			if (h.ready)
				break;
			if (!waiting(w, n->id))
				return -1;
			if (psf_now_ms() - last_note >= 30000) {
				psf_progress_note(w->p, "psfleet slurm: still waiting for %s: %s",
				    n->id, h.reason[0] ? h.reason : "not reachable");
				last_note = psf_now_ms();
			}
			psf_sleep_ms(POLL_MS);
		}
		psf_progress_note(w->p, "psfleet slurm: %s ready (%.1f s)", n->id,
		    (double)(psf_now_ms() - t) / 1000.0);
	}
	return 0;
}

/* finished returns how many of the config's trainers ps0 holds a final report
 * of, or -1 when ps0 does not answer. *version gets ps0's model version. */
static long
finished(watch *w, uint64_t *version)
{
	Psfleet__V1__StatsReply *st = NULL;
	long done = 0;

	if (psf_progress_stats0(w->p, 2000, &st, NULL) != PSF_OK)
		return -1;
	for (size_t k = 0; k < st->n_reports; k++) {
		const psf_node_cfg *n = psf_config_find_node(w->cfg, st->reports[k]->worker);

		if (n != NULL && n->role == PSF_ROLE_TRAINER && st->reports[k]->finished)
			done++;
	}
	*version = st->model_version;
	protobuf_c_message_free_unpacked(&st->base, NULL);
	return done;
}

/* note_progress prints one line: ps0's model version, finished trainers, and
 * each running trainer's epoch and step from its /metrics (the progress display
 * of `psfleet up` needs the supervisor of local processes, which a job has not). */
static void
note_progress(watch *w, uint64_t version, long done)
{
	char line[1024];
	size_t n;

	n = (size_t)snprintf(line, sizeof(line),
	    "psfleet slurm: training: model version %llu, %ld of %zu trainer%s finished",
	    (unsigned long long)version, done < 0 ? 0 : done, w->cfg->n_trainers,
	    psf_plural(w->cfg->n_trainers));
	for (size_t i = 0; i < w->cfg->n_nodes && n < sizeof(line); i++) {
		psf_trainer_view v;

		if (w->cfg->nodes[i].role != PSF_ROLE_TRAINER)
			continue;
		memset(&v, 0, sizeof(v));
		psf_progress_scrape(w->p, i, 500, &v);
		if (v.fresh)
			n += (size_t)snprintf(line + n, sizeof(line) - n,
			    "; %s epoch %.0f step %.0f/%.0f", w->cfg->nodes[i].id, v.epoch, v.step,
			    v.total_steps);
	}
	psf_progress_note(w->p, "%s", line);
}

/* run watches the fleet; returns the exit code. */
static int
run(watch *w)
{
	psf_up_report o = {"psfleet slurm watch", w->a.config, w->a.metrics_out, w->cfg->n_trainers,
	    0, false, -1};
	const char *job = getenv("SLURM_JOB_ID");
	uint64_t start, version = 0, last_render = 0;
	char stop_how[64];
	long done;

	psf_progress_note(w->p,
	    "psfleet slurm: watching fleet '%s' from %s: %zu ps, %zu trainer%s, %zu inferer%s, "
	    "%zu gateway%s",
	    w->cfg->name, w->a.config, w->cfg->n_ps, w->cfg->n_trainers,
	    psf_plural(w->cfg->n_trainers), w->cfg->n_inferers, psf_plural(w->cfg->n_inferers),
	    w->cfg->n_gateways, psf_plural(w->cfg->n_gateways));
	if (wait_role(w, PSF_ROLE_PS) != 0)
		return 1;
	start = psf_now_ms();
	for (bool first = true;; first = false) {
		if ((done = finished(w, &version)) >= (long)w->cfg->n_trainers) {
			o.already_trained = first;
			break;
		}
		if (!waiting(w, "the trainers"))
			return 1;
		if (psf_now_ms() - last_render >= RENDER_MS) {
			note_progress(w, version, done);
			last_render = psf_now_ms();
		}
		psf_sleep_ms(POLL_MS);
	}
	if (o.already_trained && w->cfg->n_trainers > 0)
		psf_progress_note(w->p,
		    "psfleet up: training was already complete (model version %llu, same "
		    "training settings): the results below are the stored ones of that run",
		    (unsigned long long)version);
	o.train_seconds = (double)(psf_now_ms() - start) / 1000.0;
	if (w->cfg->n_trainers > 0 && psf_up_report_results(w->cfg, w->p, &o) != 0)
		return 1;
	if (wait_role(w, PSF_ROLE_INFERER) != 0 || wait_role(w, PSF_ROLE_GATEWAY) != 0)
		return 1;
	snprintf(stop_how, sizeof(stop_how), "scancel %s", job != NULL ? job : "JOBID");
	psf_up_print_serving(w->cfg, w->p, stop_how);
	return 0;
}

static int
slurm_watch(int argc, char **argv)
{
	watch w;
	char errbuf[512];
	struct sigaction sa;
	psf_err err;
	int rc;

	if (psf_cli_wants_help(argc, argv)) {
		slurm_usage(stdout);
		return 0;
	}
	memset(&w, 0, sizeof(w));
	if (parse_watch(argc, argv, &w.a) != 0)
		return 2;
	psf_log_setup(PSF_LOG_WARN, "slurm");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	if (psf_config_load_ex(w.a.config, NULL, 0, errbuf, sizeof(errbuf), &w.cfg) != PSF_OK) {
		fprintf(stderr, "psfleet slurm watch: %s\n", errbuf);
		return 2;
	}
	if (psf_up_check_metrics_out("psfleet slurm watch", w.a.metrics_out) != 0) {
		psf_config_free(w.cfg);
		return 2;
	}
	if ((err = psf_progress_new(w.cfg, stdout, false, &w.p)) != PSF_OK) {
		fprintf(stderr, "psfleet slurm watch: %s: cannot set up clients: %s\n", w.a.config,
		    psf_strerror(err));
		psf_config_free(w.cfg);
		return 1;
	}
	w.t0 = psf_now_ms();
	rc = run(&w);
	fflush(stdout);
	psf_progress_free(w.p);
	psf_config_free(w.cfg);
	return rc;
}

int
psf_cmd_slurm(int argc, char **argv)
{
	if (argc < 2 || psf_cli_wants_help(2, argv)) {
		slurm_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "plan") == 0)
		return psf_slurm_plan(argc - 1, argv + 1);
	if (strcmp(argv[1], "watch") == 0)
		return slurm_watch(argc - 1, argv + 1);
	fprintf(stderr, "psfleet slurm: unknown action '%s' (plan or watch; see --help)\n",
	    argv[1]);
	return 2;
}
