/* psfleet experiment CONFIG --modes ... --out DIR: compare consistency modes
 * (experiment.h runs them, report.h writes the results). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/experiment/experiment.h"
#include "cli/experiment/report.h"

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void
exp_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet experiment CONFIG --modes MODE[,MODE...] --out DIR [--repeats R]\n"
	    "                          [--straggler ID:Fx | ID:+Nms]... [--kill ID@step:N]...\n"
	    "                          [--set KEY=VALUE]... [--timeout SECONDS] [--target-loss X|Fx]\n"
	    "                          [--warmup N]\n"
	    "       psfleet experiment --report-only --out DIR [--target-loss X|Fx]\n"
	    "\n"
	    "Trains the fleet of CONFIG once per mode and repeat, each time from fresh ps state\n"
	    "(DIR/runs/<mode>-r<k>), and compares the modes: DIR/results.csv, DIR/summary.json\n"
	    "and DIR/report.html (loss vs time and vs updates, staleness, idle time, time to the\n"
	    "target loss, final test error). Inferers and the gateway are not started.\n"
	    "  --modes LIST         sync, async, ssp (the config's staleness) or ssp:S, local\n"
	    "                       (the config's sync_every) or local:K, e.g.\n"
	    "                       sync,async,ssp:1,ssp:4,local:8\n"
	    "  --out DIR            where runs and results go (created; its runs are replaced)\n"
	    "  --repeats R          runs per mode, 1 to 64 (default 1)\n"
	    "  --straggler ID:Fx    make trainer ID F times as slow (e.g. trainer-0:3x)\n"
	    "  --straggler ID:+Nms  add N ms to each step of trainer ID (e.g. trainer-0:+50ms)\n"
	    "  --kill ID@step:N     trainer ID exits at step N and is restarted (repeatable)\n"
	    "  --set KEY=VALUE      override a config key for every node (docs/config.md)\n"
	    "  --timeout SECONDS    per run (default 1800)\n"
	    "  --warmup N           unrecorded runs of the first mode first (default 1)\n"
	    "  --target-loss X      the loss that counts as reached (default: training.target_loss,\n"
	    "  --target-loss Fx     else 1.05x): X itself, or F times the final loss of sync\n"
	    "  --report-only        redo the results from DIR's runs without running anything\n"
	    "See docs/experiments.md.\n");
}

/* parse_modes splits a comma-separated list into o->modes (a copy: argv stays
 * as given, as ps shows it). */
static int
parse_modes(const char *arg, psf_exp_opts *o)
{
	char list[1024], *save = NULL;

	if (strlen(arg) >= sizeof(list)) {
		fprintf(stderr, "psfleet experiment: --modes list too long\n");
		return -1;
	}
	snprintf(list, sizeof(list), "%s", arg);
	for (char *tok = strtok_r(list, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		psf_exp_mode *m = &o->modes[o->n_modes];

		if (o->n_modes == PSF_EXP_MAX_MODES) {
			fprintf(stderr, "psfleet experiment: at most %d modes\n",
			    PSF_EXP_MAX_MODES);
			return -1;
		}
		if (psf_exp_parse_mode(tok, m) != PSF_OK) {
			fprintf(stderr,
			    "psfleet experiment: unknown mode '%s' (sync, async, ssp, ssp:S)\n",
			    tok);
			return -1;
		}
		for (size_t i = 0; i < o->n_modes; i++)
			if (strcmp(o->modes[i].slug, m->slug) == 0) {
				fprintf(stderr, "psfleet experiment: mode '%s' given twice\n", tok);
				return -1;
			}
		o->n_modes++;
	}
	return 0;
}

static int
parse_args(int argc, char **argv, psf_exp_opts *o, int *report_only)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		int more = i + 1 < argc;

		if (strcmp(arg, "--modes") == 0 && more) {
			if (parse_modes(argv[++i], o) != 0)
				return -1;
		} else if (strcmp(arg, "--out") == 0 && more) {
			o->out_dir = argv[++i];
		} else if (strcmp(arg, "--repeats") == 0 && more) {
			char *end;
			long v = strtol(argv[++i], &end, 10);

			if (*end != '\0' || v < 1 || v > 64) {
				fprintf(stderr, "psfleet experiment: --repeats takes 1 to 64\n");
				return -1;
			}
			o->repeats = (uint32_t)v;
		} else if (strcmp(arg, "--warmup") == 0 && more) {
			char *end;
			long v = strtol(argv[++i], &end, 10);

			if (*end != '\0' || end == argv[i] || v < 0 || v > 16) {
				fprintf(stderr, "psfleet experiment: --warmup takes 0 to 16\n");
				return -1;
			}
			o->warmup = (uint32_t)v;
		} else if (strcmp(arg, "--timeout") == 0 && more) {
			char *end;
			long v = strtol(argv[++i], &end, 10);

			if (*end != '\0' || v < 1 || v > 7 * 86400) {
				fprintf(stderr,
				    "psfleet experiment: --timeout takes 1 to 604800 seconds\n");
				return -1;
			}
			o->run_timeout_s = (uint32_t)v;
		} else if (strcmp(arg, "--straggler") == 0 && more) {
			if (o->n_stragglers == PSF_EXP_MAX_INJECT ||
			    psf_exp_parse_straggler(argv[++i], &o->stragglers[o->n_stragglers]) !=
			        PSF_OK) {
				fprintf(stderr,
				    "psfleet experiment: --straggler takes ID:Fx (F from 1 to 1000) "
				    "or ID:+Nms, e.g. trainer-0:3x (at most %d)\n",
				    PSF_EXP_MAX_INJECT);
				return -1;
			}
			o->n_stragglers++;
		} else if (strcmp(arg, "--kill") == 0 && more) {
			if (o->n_kills == PSF_EXP_MAX_INJECT ||
			    psf_exp_parse_kill(argv[++i], &o->kills[o->n_kills]) != PSF_OK) {
				fprintf(stderr,
				    "psfleet experiment: --kill takes ID@step:N with N >= 1, e.g. "
				    "trainer-1@step:200 (at most %d)\n",
				    PSF_EXP_MAX_INJECT);
				return -1;
			}
			o->n_kills++;
		} else if (strcmp(arg, "--set") == 0 && more) {
			if (o->n_sets == PSF_EXP_MAX_SETS || strchr(argv[i + 1], '=') == NULL) {
				fprintf(stderr,
				    "psfleet experiment: --set takes KEY=VALUE (at most %d)\n",
				    PSF_EXP_MAX_SETS);
				return -1;
			}
			o->sets[o->n_sets++] = argv[++i];
		} else if (strcmp(arg, "--target-loss") == 0 && more) {
			char *end;
			double v = strtod(argv[++i], &end);

			if (end == argv[i] || !(v > 0 && v < 1e9) ||
			    (*end != '\0' && strcmp(end, "x") != 0)) {
				fprintf(stderr,
				    "psfleet experiment: --target-loss takes a loss > 0 or a factor "
				    "such as 1.02x\n");
				return -1;
			}
			if (*end == 'x')
				o->target_factor = v;
			else
				o->target_loss = v;
		} else if (strcmp(arg, "--report-only") == 0) {
			*report_only = 1;
		} else if (arg[0] == '-') {
			fprintf(stderr, "psfleet experiment: unknown or incomplete option '%s'\n",
			    arg);
			return -1;
		} else if (o->config_path == NULL) {
			o->config_path = arg;
		} else {
			fprintf(stderr, "psfleet experiment: unexpected argument '%s'\n", arg);
			return -1;
		}
	}
	if (o->out_dir == NULL || (!*report_only && (o->config_path == NULL || o->n_modes == 0))) {
		fprintf(stderr,
		    "psfleet experiment: CONFIG, --modes and --out are required "
		    "(--report-only needs only --out; see --help)\n");
		return -1;
	}
	return 0;
}

int
psf_cmd_experiment(int argc, char **argv)
{
	static psf_exp_opts o; /* large (fixed arrays): not on the stack */
	struct sigaction sa;
	char err[1024];
	int report_only = 0;
	psf_err rv;

	if (psf_cli_wants_help(argc, argv)) {
		exp_usage(stdout);
		return 0;
	}
	memset(&o, 0, sizeof(o));
	o.repeats = 1;
	o.warmup = 1;
	if (parse_args(argc, argv, &o, &report_only) != 0)
		return 2;
	if (report_only) {
		if ((rv = psf_report_write(o.out_dir, o.target_loss, o.target_factor, stdout, err,
		         sizeof(err))) != PSF_OK) {
			fprintf(stderr, "psfleet experiment: %s\n", err);
			return 1;
		}
		printf(
		    "psfleet experiment: wrote %s/results.csv, %s/summary.json, %s/report.html\n",
		    o.out_dir, o.out_dir, o.out_dir);
		return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	o.out = stdout;
	o.stop = &stop_requested;
	rv = psf_exp_run(&o, err, sizeof(err));
	if (rv != PSF_OK) {
		fprintf(stderr, "psfleet experiment: %s\n", err[0] ? err : psf_strerror(rv));
		return 1;
	}
	return 0;
}
