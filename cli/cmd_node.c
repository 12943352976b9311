/* psfleet node CONFIG --id ID: run one node of the fleet (what `psfleet up`
 * starts for each node, and what other hosts run by hand). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gateway/gateway.h"
#include "inferer/inferer.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "ps/ps.h"
#include "trainer/trainer.h"

static void
node_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet node CONFIG (--id ID | --id-from-env VAR | --id-from-rank VAR [--role ROLE])\n"
	    "                   [--reset | --fresh | --restore DIR] [--listen URL]\n"
	    "                   [--metrics HOST:PORT]\n"
	    "                   [--slowdown X] [--delay-ms N] [--exit-at-step N] [--set KEY=VALUE]...\n"
	    "\n"
	    "Runs one node of the fleet described by CONFIG: a ps, trainer, inferer or the\n"
	    "gateway, chosen by its id. Stops cleanly on SIGINT/SIGTERM.\n"
	    "  --id ID              the node's id in CONFIG (one of --id, --id-from-env,\n"
	    "                       --id-from-rank is required)\n"
	    "  --id-from-env VAR    the id is the value of environment variable VAR\n"
	    "                       (e.g. PSF_ID), so one command line serves every task\n"
	    "  --id-from-rank VAR   VAR holds a 0-based rank (e.g. SLURM_PROCID); rank N runs\n"
	    "                       the N-th node in config order: ps nodes first, then\n"
	    "                       trainers, inferers, the gateway (each in file order);\n"
	    "                       a value ending in -N (a StatefulSet pod's HOSTNAME,\n"
	    "                       e.g. demo-ps-1) is rank N\n"
	    "  --role ROLE          with --id-from-rank: count only the nodes of ROLE (ps,\n"
	    "                       trainer, inferer), so rank N is the N-th of that role\n"
	    "                       (e.g. a Kubernetes Job's JOB_COMPLETION_INDEX)\n"
	    "  --reset              ps: discard a store that does not fit CONFIG (another model\n"
	    "                       layout, or trained with other training settings)\n"
	    "  --fresh              ps: discard the store in any case and train afresh\n"
	    "                       (without either, a store trained with other settings is\n"
	    "                       refused: exit 2 naming the changed keys; docs/operations.md)\n"
	    "  --restore DIR        ps: start from the backup `psfleet backup` wrote in DIR\n"
	    "                       (DIR/<id>), into an empty data_dir; a node restarted with\n"
	    "                       the same option resumes what it trained since\n"
	    "  --listen URL         override the node's listen URL (e.g. port 0 in tests)\n"
	    "  --metrics HOST:PORT  override the node's metrics address ('' = none)\n"
	    "  --slowdown X         trainer: make every step X times as slow (straggler)\n"
	    "  --delay-ms N         trainer: add N ms to every step (straggler)\n"
	    "  --exit-at-step N     trainer: exit with status 3 at step N (failure injection)\n"
	    "  --set KEY=VALUE      override a config key, e.g. consistency.mode=ssp (repeatable;\n"
	    "                       give every node of a fleet the same ones; docs/config.md)\n"
	    "\n"
	    "Exit status: 0 done (a trainer finished, or a stop was asked for); 2 the node\n"
	    "failed on its input or config (bad options, config or data, a store trained\n"
	    "with other settings, a diverged model, a ps whose data_dir another running ps\n"
	    "holds): starting it again fails the same way, so `psfleet up` does not restart\n"
	    "it; 1 any other failure (restart it).\n");
}

/* exit_code maps a node's result to the exit status documented in node_usage. */
static int
exit_code(psf_err err)
{
	switch (err) {
	case PSF_OK: return 0;
	case PSF_ECONFIG: /* the config, or a store that does not fit it */
	case PSF_EINVAL:  /* bad data, or gradients the ps refuses (a diverged model) */
	case PSF_ELOCKED: /* a ps whose data_dir another running ps holds */ return 2;
	default: return 1;
	}
}

typedef struct node_args {
	const char *config;
	const char *id;
	const char *id_env;   /* --id-from-env VAR */
	const char *rank_env; /* --id-from-rank VAR */
	const char *role;     /* --role ROLE (with --id-from-rank) */
	const char *listen;
	const char *metrics;
	psf_ps_reset reset;
	const char *restore; /* --restore DIR */
	double slowdown;
	long delay_ms;
	long long exit_at_step;
	const char *sets[64]; /* --set KEY=VALUE, in order */
	size_t n_sets;
} node_args;

static int
parse_args(int argc, char **argv, node_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--id") == 0 && i + 1 < argc) {
			a->id = argv[++i];
		} else if (strcmp(arg, "--id-from-env") == 0 && i + 1 < argc) {
			a->id_env = argv[++i];
		} else if (strcmp(arg, "--id-from-rank") == 0 && i + 1 < argc) {
			a->rank_env = argv[++i];
		} else if (strcmp(arg, "--role") == 0 && i + 1 < argc) {
			a->role = argv[++i];
		} else if (strcmp(arg, "--listen") == 0 && i + 1 < argc) {
			a->listen = argv[++i];
		} else if (strcmp(arg, "--metrics") == 0 && i + 1 < argc) {
			a->metrics = argv[++i];
		} else if (strcmp(arg, "--slowdown") == 0 && i + 1 < argc) {
			a->slowdown = strtod(argv[++i], NULL);
			if (!(a->slowdown >= 1.0 && a->slowdown <= 1000.0)) {
				fprintf(stderr,
				    "psfleet node: --slowdown takes a factor from 1 to 1000\n");
				return -1;
			}
		} else if (strcmp(arg, "--delay-ms") == 0 && i + 1 < argc) {
			a->delay_ms = strtol(argv[++i], NULL, 10);
			if (a->delay_ms < 0 || a->delay_ms > 600000) {
				fprintf(stderr, "psfleet node: --delay-ms takes 0 to 600000\n");
				return -1;
			}
		} else if (strcmp(arg, "--exit-at-step") == 0 && i + 1 < argc) {
			a->exit_at_step = strtoll(argv[++i], NULL, 10);
			if (a->exit_at_step < 1) {
				fprintf(stderr, "psfleet node: --exit-at-step takes a step >= 1\n");
				return -1;
			}
		} else if (strcmp(arg, "--set") == 0 && i + 1 < argc) {
			if (a->n_sets == PSF_ARRAY_LEN(a->sets)) {
				fprintf(stderr, "psfleet node: at most %zu --set options\n",
				    PSF_ARRAY_LEN(a->sets));
				return -1;
			}
			a->sets[a->n_sets++] = argv[++i];
		} else if (strcmp(arg, "--restore") == 0 && i + 1 < argc) {
			a->restore = argv[++i];
		} else if (strcmp(arg, "--reset") == 0 || strcmp(arg, "--fresh") == 0) {
			psf_ps_reset r = arg[2] == 'r' ? PSF_PS_RESET_MISFIT : PSF_PS_RESET_ALWAYS;

			if (a->reset != PSF_PS_RESET_NONE && a->reset != r) {
				fprintf(stderr,
				    "psfleet node: give only one of --reset and --fresh\n");
				return -1;
			}
			a->reset = r;
		} else if (arg[0] == '-') {
			fprintf(stderr, "psfleet node: unknown or incomplete option '%s'\n", arg);
			return -1;
		} else if (a->config == NULL) {
			a->config = arg;
		} else {
			fprintf(stderr, "psfleet node: unexpected argument '%s'\n", arg);
			return -1;
		}
	}
	if (a->config == NULL ||
	    (a->id != NULL) + (a->id_env != NULL) + (a->rank_env != NULL) != 1) {
		fprintf(stderr,
		    "psfleet node: CONFIG and one of --id, --id-from-env, --id-from-rank "
		    "are required (see --help)\n");
		return -1;
	}
	if (a->role != NULL && a->rank_env == NULL) {
		fprintf(stderr, "psfleet node: --role goes with --id-from-rank\n");
		return -1;
	}
	if (a->restore != NULL && a->reset != PSF_PS_RESET_NONE) {
		fprintf(stderr,
		    "psfleet node: --restore starts from a backup: give no --reset "
		    "or --fresh with it\n");
		return -1;
	}
	if (a->id_env != NULL && ((a->id = getenv(a->id_env)) == NULL || a->id[0] == '\0')) {
		fprintf(stderr,
		    "psfleet node: --id-from-env: environment variable '%s' is not set\n",
		    a->id_env);
		return -1;
	}
	return 0;
}

/* rank_value parses v as a 0-based rank: digits, or a name ending in -DIGITS (a
 * StatefulSet pod's host name, "demo-ps-1" -> 1). Returns -1 when it is neither. */
static int
rank_value(const char *v, unsigned long long *r)
{
	const char *dash = strrchr(v, '-');
	const char *digits = dash != NULL ? dash + 1 : v;
	char *end;

	if (digits[0] < '0' || digits[0] > '9')
		return -1;
	errno = 0;
	*r = strtoull(digits, &end, 10);
	return *end == '\0' && errno == 0 ? 0 : -1;
}

/* node_of_rank returns the node whose place in config order (cfg->nodes: ps, trainers,
 * inferers, gateway), or among the nodes of role when role is not NULL, is the 0-based
 * rank in environment variable var; or NULL after saying why on stderr. */
static const psf_node_cfg *
node_of_rank(const psf_config *cfg, const char *var, const char *role)
{
	static const psf_role roles[] = {PSF_ROLE_PS, PSF_ROLE_TRAINER, PSF_ROLE_INFERER};
	const char *v = getenv(var);
	unsigned long long r;
	size_t n = cfg->n_nodes;
	size_t k = 0;

	if (role != NULL) {
		while (k < PSF_ARRAY_LEN(roles) && strcmp(role, psf_role_name(roles[k])) != 0)
			k++;
		if (k == PSF_ARRAY_LEN(roles)) {
			fprintf(stderr,
			    "psfleet node: --role takes ps, trainer or inferer, not '%.40s'\n",
			    role);
			return NULL;
		}
		n = roles[k] == PSF_ROLE_PS        ? cfg->n_ps
		    : roles[k] == PSF_ROLE_TRAINER ? cfg->n_trainers
		                                   : cfg->n_inferers;
	}
	if (v == NULL || v[0] == '\0') {
		fprintf(stderr,
		    "psfleet node: --id-from-rank: environment variable '%s' is not set\n", var);
		return NULL;
	}
	if (rank_value(v, &r) != 0) {
		fprintf(stderr,
		    "psfleet node: --id-from-rank: %s='%.40s' is not a rank (0, 1, ..., or a "
		    "name ending in -N)\n",
		    var, v);
		return NULL;
	}
	if (r >= n) {
		char ranks[48] = "";

		if (n > 0)
			snprintf(ranks, sizeof(ranks), " (ranks 0-%zu)", n - 1);
		fprintf(stderr,
		    "psfleet node: --id-from-rank: rank %llu (%s) is out of range: %s has %zu "
		    "%s%s%s\n",
		    r, var, cfg->path, n, role != NULL ? role : "",
		    role != NULL ? " nodes" : "nodes", ranks);
		return NULL;
	}
	return role != NULL ? psf_config_role_node(cfg, roles[k], (size_t)r) : &cfg->nodes[r];
}

int
psf_cmd_node(int argc, char **argv)
{
	node_args a;
	psf_config *cfg = NULL;
	const psf_node_cfg *node;
	psf_log_level level = PSF_LOG_INFO;
	char errbuf[512];
	psf_err err;

	if (psf_cli_wants_help(argc, argv)) {
		node_usage(stdout);
		return 0;
	}
	if (parse_args(argc, argv, &a) != 0)
		return 2;
	if (psf_config_load_ex(a.config, a.sets, a.n_sets, errbuf, sizeof(errbuf), &cfg) !=
	    PSF_OK) {
		fprintf(stderr, "psfleet node: %s\n", errbuf);
		return 2; /* a config error, like up and status */
	}
	if (a.rank_env != NULL && (node = node_of_rank(cfg, a.rank_env, a.role)) == NULL) {
		psf_config_free(cfg);
		return 2;
	}
	if (a.rank_env == NULL && (node = psf_config_find_node(cfg, a.id)) == NULL) {
		fprintf(stderr, "psfleet node: %s has no node with id '%s'\n", a.config, a.id);
		psf_config_free(cfg);
		return 2;
	}
	psf_tune_malloc();
	(void)psf_log_level_parse(cfg->log_level, &level);
	psf_log_setup(level, node->id);
	psf_config_log(cfg);
	switch (node->role) {
	case PSF_ROLE_PS: {
		psf_ps_opts o = {.reset = a.reset,
		    .listen = a.listen,
		    .metrics = a.metrics,
		    .restore = a.restore};
		err = psf_ps_run(cfg, node, &o);
		break;
	}
	case PSF_ROLE_TRAINER: {
		psf_trainer_opts o = {NULL, a.metrics, a.slowdown, (uint32_t)a.delay_ms,
		    a.exit_at_step};
		err = psf_trainer_run(cfg, node, &o);
		break;
	}
	case PSF_ROLE_INFERER: {
		psf_inferer_opts o = {NULL, a.listen, a.metrics, 0};
		err = psf_inferer_run(cfg, node, &o);
		break;
	}
	case PSF_ROLE_GATEWAY: {
		psf_gateway_opts o = {NULL, a.listen, a.metrics, 0};
		err = psf_gateway_run(cfg, node, &o);
		break;
	}
	default:
		fprintf(stderr, "psfleet node: the %s role is not built yet\n",
		    psf_role_name(node->role));
		err = PSF_ENOTIMPL;
		break;
	}
	if (err != PSF_OK) /* node->id: a.id is NULL with --id-from-rank */
		fprintf(stderr, "psfleet node %s: %s\n", node->id, psf_strerror(err));
	psf_config_free(cfg);
	return exit_code(err);
}
