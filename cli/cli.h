/* cli.h -- the psfleet subcommands. Each psf_cmd_<name>(argc, argv) gets argv[0] =
 * the subcommand's name, parses its own options (each has --help), calls the role's
 * psf_*_run(), and returns the process exit code: 0 on success, 1 on a runtime
 * failure (one-line error on stderr), 2 on a usage error. */
#ifndef PSF_CLI_H
#define PSF_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct psf_config;
struct psf_progress;

int psf_cmd_up(int argc, char **argv);
int psf_cmd_node(int argc, char **argv);
int psf_cmd_predict(int argc, char **argv);
int psf_cmd_status(int argc, char **argv);
int psf_cmd_data(int argc, char **argv);
int psf_cmd_experiment(int argc, char **argv);
int psf_cmd_deploy(int argc, char **argv);
int psf_cmd_backup(int argc, char **argv);
int psf_cmd_slurm(int argc, char **argv);

/* psf_slurm_plan runs `psfleet slurm plan` (argv[0] = "plan"; cli/slurm_plan.c). */
int psf_slurm_plan(int argc, char **argv);
int psf_cmd_backtest(int argc, char **argv);
int psf_cmd_ingest(int argc, char **argv);

/* psf_cli_wants_help tells whether argv holds -h or --help. */
int psf_cli_wants_help(int argc, char **argv);

/* psf_cli_json_str writes s (not NULL) to f as a JSON string: in double quotes,
 * with '"' and '\\' escaped by a backslash and bytes below 0x20 as \u00XX; other
 * bytes (UTF-8 included) as they are. Cannot fail (write errors stay on f). */
void psf_cli_json_str(FILE *f, const char *s);

/* psf_cli_yaml_quote writes s into out (len >= 3 bytes) as a YAML single-quoted
 * scalar (' doubled), so a path with ": " or '#' stays one string when a --set
 * override is parsed; a value too long for out is cut. Cannot fail. */
void psf_cli_yaml_quote(const char *s, char *out, size_t len);

/* psf_up_preflight checks, for psfleet up, what only the launcher can before it
 * starts anything: that cfg's data file exists or data.generate is set, and that
 * the listen and metrics addresses of the nodes it would start (selected[i] for
 * cfg->nodes[i]) are free on this machine. config is the config file's path, for
 * the message. Returns 0, or -1 after one line on stderr. */
int psf_up_preflight(const char *config, const struct psf_config *cfg, const bool *selected);

/* psf_up_predict_hint writes into buf (len bytes, always NUL-terminated) a
 * `psfleet predict` command for symbol at url that a user can paste: the running
 * binary ("psfleet" when PATH finds this very binary, else its absolute path), and
 * --token-file, and for a
 * tls+tcp:// url --ca-file, --server-name, --cert and --key, as cfg's security
 * section needs them. Cannot fail. */
void psf_up_predict_hint(const struct psf_config *cfg, const char *url, const char *symbol,
    char *buf, size_t len);

/* psf_up_first_symbol writes into buf (len bytes) a symbol of the data at path,
 * for the hint above: the first data row's of a CSV, or the first symbol=XYZ
 * directory's of a partition; "SYMBOL" when it finds none. Cannot fail. */
void psf_up_first_symbol(const char *path, char *buf, size_t len);

/* psf_up_check_data scans cfg's data (which must exist by now) as the trainers
 * will: every row of a CSV, or a partition directory's index. Returns 0, or -1
 * after one line on stderr naming the problem (a bad row with its file:line, no
 * data rows, fewer than 2 dates, a directory that is no partition). */
int psf_up_check_data(const char *config, const struct psf_config *cfg);

/* psf_up_print_split prints, as progress notes, how cfg's work is split: the
 * symbols and data rows of each trainer (data.shard_by), and the model keys and
 * floats each ps node holds. When the data cannot be scanned it prints one line
 * saying so (the trainers then fail with the cause). Cannot fail. */
void psf_up_print_split(const struct psf_config *cfg, struct psf_progress *p);

/* What psf_up_report_results prints and writes besides ps0's Stats. */
typedef struct psf_up_report {
	const char *who;         /* the command, for error lines ("psfleet up") */
	const char *config_path; /* the "config" of the JSON */
	const char *metrics_out; /* --metrics-out FILE, or NULL */
	size_t n_trainers;       /* trainers that should have reported */
	double train_seconds;
	bool already_trained; /* the results are those of an earlier run */
	int restarts;         /* node restarts for the JSON; -1: unknown (left out) */
} psf_up_report;

/* psf_up_check_metrics_out makes sure, before anything starts, that
 * psf_up_report_results will be able to write path (NULL: no --metrics-out): it
 * creates and removes the same temp file. Returns 0, or -1 after one line on
 * stderr starting with who. */
int psf_up_check_metrics_out(const char *who, const char *path);

/* psf_up_report_results fetches ps0's Stats once every trainer is done, prints
 * the fleet's test metrics as progress notes (`psfleet up: test RMSE ...`) and
 * writes o->metrics_out. Returns 0, or -1 after one line on stderr. */
int psf_up_report_results(const struct psf_config *cfg, struct psf_progress *p,
    const psf_up_report *o);

/* psf_up_print_serving prints `psfleet up: serving; try: psfleet predict
 * --connect URL SYMBOL` for the gateway (else inferer-0) of cfg, and how to stop
 * the fleet (stop_how, e.g. "Ctrl-C or SIGTERM"). Cannot fail. */
void psf_up_print_serving(const struct psf_config *cfg, struct psf_progress *p,
    const char *stop_how);

#endif
