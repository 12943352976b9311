/* up_report.c -- the results a fleet prints once training is done: the test
 * metrics from ps0's Stats, the --metrics-out JSON, and the `serving; try:
 * psfleet predict ...` line. Shared by `psfleet up` (which started the fleet) and
 * `psfleet slurm watch` (which watches a fleet a Slurm job started), so both
 * print the same lines. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "lib/base/util.h"
#include "lib/config/config.h"

int
psf_up_check_metrics_out(const char *who, const char *path)
{
	char tmp[4200];
	struct stat st;
	int fd;

	if (path == NULL)
		return 0;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		fprintf(stderr, "%s: --metrics-out %s: not a regular file\n", who, path);
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		fprintf(stderr, "%s: --metrics-out %s: cannot write: %s\n", who, path,
		    strerror(errno));
		return -1;
	}
	close(fd);
	(void)unlink(tmp);
	return 0;
}

/* write_metrics writes the --metrics-out JSON (via a temp file and rename, so a
 * reader never sees half a file). */
static int
write_metrics(const psf_config *cfg, const psf_up_report *o, const psf_fleet_result *r,
    const Psfleet__V1__StatsReply *st)
{
	char tmp[4200], fp[17];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", o->metrics_out);
	if ((f = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "%s: cannot write %s: %s\n", o->who, tmp, strerror(errno));
		return -1;
	}
	psf_config_fingerprint(cfg, fp, sizeof(fp));
	fprintf(f, "{\n  \"fleet\": ");
	psf_cli_json_str(f, cfg->name);
	fprintf(f, ",\n  \"mode\": ");
	psf_cli_json_str(f, psf_consistency_name(cfg->consistency.mode));
	if (cfg->consistency.mode == PSF_CONS_SSP)
		fprintf(f, ",\n  \"staleness\": %u", cfg->consistency.staleness);
	if (cfg->consistency.mode == PSF_CONS_LOCAL)
		fprintf(f, ",\n  \"sync_every\": %u", cfg->consistency.sync_every);
	fprintf(f,
	    ",\n  \"model_version\": %llu,\n  \"steps\": %llu,\n  \"train_seconds\": %.3f,\n"
	    "  \"test_rmse\": %.17g,\n  \"test_mae\": %.17g,\n  \"naive_rmse\": %.17g,\n"
	    "  \"naive_mae\": %.17g,\n  \"test_n\": %llu,\n  \"train_loss\": %.17g,\n",
	    (unsigned long long)r->model_version, (unsigned long long)r->trained_steps,
	    o->train_seconds, r->test_rmse, r->test_mae, r->naive_rmse, r->naive_mae,
	    (unsigned long long)r->test_n, r->train_loss);
	if (cfg->target == PSF_TARGET_NEXT_DIRECTION)
		fprintf(f, "  \"test_accuracy\": %.17g,\n", r->test_accuracy);
	fprintf(f, "  \"already_trained\": %s,\n", o->already_trained ? "true" : "false");
	fprintf(f, "  \"n_ps\": %zu,\n  \"n_trainers\": %zu,\n", cfg->n_ps, cfg->n_trainers);
	if (o->restarts >= 0)
		fprintf(f, "  \"restarts\": %d,\n", o->restarts);
	fprintf(f, "  \"fingerprint\": \"%s\",\n  \"config\": ", fp);
	psf_cli_json_str(f, o->config_path);
	fprintf(f, ",\n  \"trainers\": [");
	for (size_t k = 0; k < st->n_reports; k++) {
		const Psfleet__V1__MetricsReport *m = st->reports[k];

		fprintf(f, "%s\n    {\"worker\": ", k > 0 ? "," : "");
		psf_cli_json_str(f, m->worker);
		fprintf(f,
		    ", \"epoch\": %u, \"step\": %lld, \"train_loss\": %.17g, \"test_n\": %llu, "
		    "\"samples_per_sec\": %.17g, \"finished\": %s}",
		    m->epoch, (long long)m->step, m->train_loss, (unsigned long long)m->test_n,
		    m->samples_per_sec, m->finished ? "true" : "false");
	}
	fprintf(f, "\n  ]\n}\n");
	if (fclose(f) != 0 || rename(tmp, o->metrics_out) != 0) {
		fprintf(stderr, "%s: cannot write %s: %s\n", o->who, o->metrics_out,
		    strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

int
psf_up_report_results(const psf_config *cfg, psf_progress *p, const psf_up_report *o)
{
	const psf_node_cfg *ps0 = psf_config_role_node(cfg, PSF_ROLE_PS, 0);
	Psfleet__V1__StatsReply *st = NULL;
	psf_fleet_result r;
	psf_err err = PSF_EUNAVAIL;
	int rc = 0;

	err = psf_progress_stats0(p, 10000, &st, &ps0);
	if (err != PSF_OK) {
		fprintf(stderr, "%s: training done, but Stats from %s failed: %s\n", o->who,
		    ps0->id, psf_strerror(err));
		return -1;
	}
	if (psf_progress_result(st, &r) != PSF_OK) {
		fprintf(stderr,
		    "%s: training done, but %s has no test results from the "
		    "trainers (%zu reports)\n",
		    o->who, ps0->id, r.n_reports);
		rc = -1;
		goto out;
	}
	if (r.n_finished < o->n_trainers)
		psf_progress_note(p,
		    "psfleet up: warning: only %zu of %zu trainer%s reported "
		    "final results",
		    r.n_finished, o->n_trainers, psf_plural(o->n_trainers));
	if (o->already_trained)
		psf_progress_note(p,
		    "psfleet up: nothing left to train; stored results of the "
		    "earlier run: model version %llu, %llu steps",
		    (unsigned long long)r.model_version, (unsigned long long)r.trained_steps);
	else
		psf_progress_note(p,
		    "psfleet up: training done in %.1f s: model version %llu, "
		    "%llu steps",
		    o->train_seconds, (unsigned long long)r.model_version,
		    (unsigned long long)r.trained_steps);
	psf_progress_note(p,
	    "psfleet up: test RMSE %.6g  MAE %.6g   naive RMSE %.6g  MAE %.6g   "
	    "(%llu test rows; %s the naive forecast)",
	    r.test_rmse, r.test_mae, r.naive_rmse, r.naive_mae, (unsigned long long)r.test_n,
	    r.test_rmse < r.naive_rmse ? "beats" : "does not beat");
	if (cfg->target == PSF_TARGET_NEXT_DIRECTION)
		psf_progress_note(p, "psfleet up: test direction accuracy %.4f", r.test_accuracy);
	if (o->metrics_out != NULL) {
		if (write_metrics(cfg, o, &r, st) != 0)
			rc = -1;
		else
			psf_progress_note(p, "psfleet up: wrote %s", o->metrics_out);
	}
out:
	protobuf_c_message_free_unpacked(&st->base, NULL);
	return rc;
}

void
psf_up_print_serving(const psf_config *cfg, psf_progress *p, const char *stop_how)
{
	const psf_node_cfg *gw = psf_config_role_node(cfg, PSF_ROLE_GATEWAY, 0);
	const psf_node_cfg *inf = psf_config_role_node(cfg, PSF_ROLE_INFERER, 0);
	const psf_node_cfg *to = gw != NULL ? gw : inf;
	char sym[128], cmd[8192];

	if (to == NULL) {
		psf_progress_note(p,
		    "psfleet up: no inferers configured; serving the ps nodes "
		    "until %s",
		    stop_how);
		return;
	}
	psf_up_first_symbol(cfg->data.path, sym, sizeof(sym));
	psf_up_predict_hint(cfg, psf_node_dial_url(to), sym, cmd, sizeof(cmd));
	psf_progress_note(p, "psfleet up: serving; try: %s%s", cmd,
	    gw == NULL && cfg->inference.shards > 1
	        ? "   (without a gateway, inferer-0 serves only its own shard)"
	        : "");
	if (cfg->training.finetune.steps > 0 && cfg->n_trainers > 0)
		psf_progress_note(p,
		    "psfleet up: %s fine-tunes %u steps per round on rows you ingest "
		    "(psfleet ingest CONFIG FILE.csv)",
		    psf_config_role_node(cfg, PSF_ROLE_TRAINER, 0)->id,
		    cfg->training.finetune.steps);
	psf_progress_note(p, "psfleet up: %s stops the fleet", stop_how);
}
