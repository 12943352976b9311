/* psfleet -- the one command. main() only dispatches to subcommands (STYLE.md §1). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv); /* NULL: not built yet */
	const char *usage;
} command;

static const command commands[] = {
	{"up", psf_cmd_up, "up CONFIG [--train-only] [--metrics-out FILE.json]   run a whole local fleet"},
	{"node", psf_cmd_node, "node CONFIG --id ID                                 run one node"},
	{"predict", psf_cmd_predict, "predict --connect URL SYMBOL... [--json]            call Predict"},
	{"status", psf_cmd_status, "status CONFIG [--json]                              health of every node"},
	{"data", psf_cmd_data, "data gen|partition ...                              make or lay out data"},
	{"experiment", psf_cmd_experiment, "experiment CONFIG --modes sync,async,ssp:2 --out DIR   compare consistency modes"},
};

int
psf_cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: psfleet COMMAND [ARGS]   (psfleet COMMAND --help for details)\n\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  psfleet %s%s\n", commands[i].usage,
		    commands[i].run == NULL ? "   [not built yet]" : "");
}

int
main(int argc, char **argv)
{
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
