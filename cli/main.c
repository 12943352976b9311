/* psfleet -- the one command. main() only dispatches to subcommands (STYLE.md §1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv); /* NULL: not built yet */
	const char *what;
	const char *usage; /* every option, as in the command's own --help */
} command;

/* tests/integration/cli_test.sh checks that each command's --help options are here. */
static const command commands[] = {
    {"up", psf_cmd_up, "run a whole local fleet",
        "up CONFIG [--train-only] [--metrics-out FILE.json] [--reset | --fresh | --restore DIR]\n"
        "             [--only ROLES|IDS] [--ready-timeout SECONDS] [--set KEY=VALUE]..."},
    {"node", psf_cmd_node, "run one node (what up starts; for other hosts)",
        "node CONFIG (--id ID | --id-from-env VAR | --id-from-rank VAR [--role ROLE])\n"
        "             [--reset | --fresh | --restore DIR] [--listen URL] [--metrics HOST:PORT]\n"
        "             [--slowdown X] [--delay-ms N] [--exit-at-step N] [--set KEY=VALUE]..."},
    {"predict", psf_cmd_predict, "ask an inferer or the gateway for next-day predictions",
        "predict --connect URL SYMBOL... [--as-of DATE] [--coverage C] [--json] [--info]\n"
        "             [--timeout-ms N] [--token-file FILE]\n"
        "             [--ca-file FILE [--server-name NAME] [--cert FILE --key FILE]]"},
    {"status", psf_cmd_status, "health, versions and clocks of every node",
        "status CONFIG [--json] [--timeout MS]"},
    {"backup", psf_cmd_backup, "copy every ps shard of a running fleet, at one model version",
        "backup CONFIG --out DIR [--at-version V] [--timeout SECONDS] [--set KEY=VALUE]..."},
    {"data", psf_cmd_data, "make, lay out or check data",
        "data gen --out FILE.csv [--symbols N] [--days D] [--seed S] [--skew] [--force]\n"
        "  psfleet data partition FILE.csv --out DIR [--bad-rows fail|skip]\n"
        "  psfleet data scan PATH [--test-fraction F] [--bad-rows fail|skip]"},
    {"experiment", psf_cmd_experiment, "compare consistency modes",
        "experiment CONFIG --modes MODE[,MODE...] --out DIR [--repeats R]\n"
        "             [--straggler ID:Fx | ID:+Nms]... [--kill ID@step:N]...\n"
        "             [--set KEY=VALUE]... [--timeout SECONDS] [--target-loss X|Fx] [--warmup N]\n"
        "  psfleet experiment --report-only --out DIR [--target-loss X|Fx]"},
    {"deploy", psf_cmd_deploy, "write the fleet as Kubernetes manifests",
        "deploy kubernetes CONFIG --image IMAGE [--namespace NS] [--name NAME]\n"
        "             [--out FILE] [--data-claim PVC] [--storage SIZE] [--storage-class CLASS]\n"
        "             [--cluster-domain D] [--pull-policy POLICY] [--train-only]\n"
        "             [--secret NAME] [--set KEY=VALUE]..."},
    {"slurm", psf_cmd_slurm, "run a fleet in a Slurm allocation (examples/slurm/)",
        "slurm plan CONFIG --nodes NODE[,NODE...] --out DIR [--addrs ADDR[,ADDR...]]\n"
        "             [--place WHO=LIST]... [--port-base PORT]\n"
        "  psfleet slurm watch CONFIG [--metrics-out FILE.json] [--timeout SECONDS]"},
    {"ingest", psf_cmd_ingest, "append new daily bars to a running fleet's inferers",
        "ingest CONFIG FILE.csv [--connect URL] [--json] [--timeout-ms N]"},
    {"backtest", psf_cmd_backtest, "walk-forward evaluation with prediction intervals",
        "backtest CONFIG --origins N [--horizon H] [--out DIR] [--coverage C,...]\n"
        "             [--set KEY=VALUE]... [--timeout SECONDS]"},
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: psfleet COMMAND [ARGS]   (psfleet COMMAND --help for details)\n\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  psfleet %s\n      %s%s\n", commands[i].usage, commands[i].what,
		    commands[i].run == NULL ? "   [not built yet]" : "");
}

int
main(int argc, char **argv)
{
	/* Nodes this process starts (up, experiment, backtest, slurm, tests) get
	 * one OpenBLAS thread unless the user chose otherwise: several nodes share
	 * the cores, and OpenBLAS reads this when a process loads it, so it spawns
	 * no idle threads that spin for 0.1-0.2 s at every node's start
	 * (docs/performance.md). Set before any thread exists. */
	(void)setenv("OPENBLAS_NUM_THREADS", "1", 0);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		if (commands[i].run == NULL) {
			fprintf(stderr, "psfleet: '%s' is not built yet\n", argv[1]);
			return 1;
		}
		return commands[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "psfleet: unknown command '%s' (try psfleet --help)\n", argv[1]);
	return 2;
}
