/* report.c -- experiment results: the manifest (experiment.txt, runs.csv),
 * results.csv, summary.json and the printed table. The figures come from
 * report_data.c (report.h gives every definition); report_html.c draws the page. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/experiment/report.h"
#include "cli/experiment/report_internal.h"
#include "lib/base/util.h"

psf_err
rp_fail(char *errbuf, size_t errlen, psf_err err, const char *fmt, ...)
{
	va_list ap;

	if (errbuf != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* ---------------------------------------------------------------- manifest */

/* csv_safe copies s with the characters that would break a CSV field or a
 * key=value line (comma, quote, newline) replaced by ';' or ' '. */
static void
csv_safe(char *dst, size_t len, const char *s)
{
	size_t i = 0;

	for (; s[i] != '\0' && i + 1 < len; i++)
		dst[i] = s[i] == ','                                ? ';'
		    : (s[i] == '\n' || s[i] == '\r' || s[i] == '"') ? ' '
		                                                    : s[i];
	dst[i] = '\0';
}

/* commit_file closes f (opened on tmp) and renames tmp to path. */
static psf_err
commit_file(FILE *f, const char *tmp, const char *path)
{
	int bad = ferror(f) != 0;

	if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
		(void)remove(tmp);
		return PSF_ESYS;
	}
	return PSF_OK;
}

psf_err
psf_report_save(const char *out_dir, const psf_report_meta *m, const psf_report_run *runs, size_t n)
{
	char path[PSF_REPORT_PATH_LEN + 32], tmp[PSF_REPORT_PATH_LEN + 40];
	char safe[PSF_REPORT_PATH_LEN];
	FILE *f;
	psf_err err;

	snprintf(path, sizeof(path), "%s/experiment.txt", out_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return PSF_ESYS;
	csv_safe(safe, sizeof(safe), m->config);
	fprintf(f, "config=%s\n", safe);
	csv_safe(safe, sizeof(safe), m->modes);
	fprintf(f,
	    "modes=%s\nrepeats=%u\ntrainers=%u\nbatch_size=%u\ntarget_loss=%.17g\n"
	    "target_factor=%.17g\n",
	    m->modes, m->repeats, m->n_trainers, m->batch_size, m->target_loss, m->target_factor);
	csv_safe(safe, sizeof(safe), m->target_from);
	fprintf(f, "target_from=%s\n", safe);
	csv_safe(safe, sizeof(safe), m->injections);
	fprintf(f, "injections=%s\n", safe);
	if ((err = commit_file(f, tmp, path)) != PSF_OK)
		return err;
	snprintf(path, sizeof(path), "%s/runs.csv", out_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return PSF_ESYS;
	fprintf(f, "mode,slug,repeat,run_dir,ok,seconds,restarts\n");
	for (size_t i = 0; i < n; i++) {
		csv_safe(safe, sizeof(safe), runs[i].run_dir);
		fprintf(f, "%s,%s,%u,%s,%d,%.3f,%u\n", runs[i].mode, runs[i].slug, runs[i].repeat,
		    safe, runs[i].ok, runs[i].seconds, runs[i].restarts);
	}
	return commit_file(f, tmp, path);
}

/* split cuts line at commas into at most max fields; returns the count. */
size_t
rp_split(char *line, char **fields, size_t max)
{
	size_t n = 0;
	char *p = line;

	while (n < max) {
		fields[n++] = p;
		if ((p = strchr(p, ',')) == NULL)
			break;
		*p++ = '\0';
	}
	return n;
}

static psf_err
load_meta(const char *out_dir, psf_report_meta *m, char *errbuf, size_t errlen)
{
	char path[PSF_REPORT_PATH_LEN + 32], *text = NULL, *save = NULL;
	psf_err err;

	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "%s/experiment.txt", out_dir);
	if ((err = psf_read_file(path, &text, NULL)) != PSF_OK)
		return rp_fail(errbuf, errlen, err == PSF_ENOENT ? PSF_ENOENT : PSF_ESYS,
		    "%s: cannot read: %s (is this the --out of psfleet experiment?)", path,
		    psf_strerror(err));
	for (char *ln = strtok_r(text, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(ln, '=');

		if (eq == NULL)
			continue;
		*eq++ = '\0';
		if (strcmp(ln, "config") == 0)
			snprintf(m->config, sizeof(m->config), "%s", eq);
		else if (strcmp(ln, "modes") == 0)
			snprintf(m->modes, sizeof(m->modes), "%s", eq);
		else if (strcmp(ln, "injections") == 0)
			snprintf(m->injections, sizeof(m->injections), "%s", eq);
		else if (strcmp(ln, "repeats") == 0)
			m->repeats = (uint32_t)strtoul(eq, NULL, 10);
		else if (strcmp(ln, "trainers") == 0)
			m->n_trainers = (uint32_t)strtoul(eq, NULL, 10);
		else if (strcmp(ln, "batch_size") == 0)
			m->batch_size = (uint32_t)strtoul(eq, NULL, 10);
		else if (strcmp(ln, "target_loss") == 0)
			m->target_loss = strtod(eq, NULL);
		else if (strcmp(ln, "target_factor") == 0)
			m->target_factor = strtod(eq, NULL);
		else if (strcmp(ln, "target_from") == 0)
			snprintf(m->target_from, sizeof(m->target_from), "%s", eq);
	}
	free(text);
	if (m->modes[0] == '\0')
		return rp_fail(errbuf, errlen, PSF_EPROTO, "%s: no 'modes' line", path);
	return PSF_OK;
}

static psf_err
load_runs(const char *out_dir, psf_report *r, char *errbuf, size_t errlen)
{
	char path[PSF_REPORT_PATH_LEN + 32], *text = NULL, *save = NULL, *f[8];
	size_t cap = 0, lineno = 0;
	psf_err err;

	snprintf(path, sizeof(path), "%s/runs.csv", out_dir);
	if ((err = psf_read_file(path, &text, NULL)) != PSF_OK)
		return rp_fail(errbuf, errlen, err == PSF_ENOENT ? PSF_ENOENT : PSF_ESYS,
		    "%s: cannot read: %s", path, psf_strerror(err));
	for (char *ln = strtok_r(text, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save)) {
		psf_report_run *run;

		if (lineno++ == 0)
			continue; /* header */
		if (rp_split(ln, f, 8) != 7) {
			free(text);
			return rp_fail(errbuf, errlen, PSF_EPROTO, "%s:%zu: expected 7 fields",
			    path, lineno);
		}
		if (r->n_runs == cap) {
			rp_run *runs = realloc(r->runs, (cap = cap ? cap * 2 : 16) * sizeof(*runs));

			if (runs == NULL) {
				free(text);
				return PSF_ENOMEM;
			}
			r->runs = runs;
		}
		memset(&r->runs[r->n_runs], 0, sizeof(r->runs[0]));
		run = &r->runs[r->n_runs++].info;
		snprintf(run->mode, sizeof(run->mode), "%s", f[0]);
		snprintf(run->slug, sizeof(run->slug), "%s", f[1]);
		run->repeat = (uint32_t)strtoul(f[2], NULL, 10);
		snprintf(run->run_dir, sizeof(run->run_dir), "%s", f[3]);
		run->ok = atoi(f[4]);
		run->seconds = strtod(f[5], NULL);
		run->restarts = (uint32_t)strtoul(f[6], NULL, 10);
	}
	free(text);
	return PSF_OK;
}

/* ---------------------------------------------------------------- outputs */

static psf_err
write_results_csv(const psf_report *r, const char *path)
{
	char tmp[PSF_REPORT_PATH_LEN + 64];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return PSF_ESYS;
	fprintf(f,
	    "mode,repeat,trainer,kind,t_seconds,step,epoch,updates,loss,smoothed_loss,"
	    "test_rmse,naive_rmse,staleness,pull_s,compute_s,push_s\n");
	for (size_t i = 0; i < r->n_runs; i++) {
		const rp_run *run = &r->runs[i];
		const char *mode = run->info.mode;
		unsigned rep = run->info.repeat;

		if (!rp_usable(run))
			continue;
		for (size_t t = 0; t < run->n_tr; t++) {
			const rp_trainer *tr = &run->tr[t];

			for (size_t k = 0; k < tr->n_steps; k++) {
				const rp_step *s = &tr->steps[k];

				fprintf(f,
				    "%s,%u,%s,step,%.6f,%lld,%lld,%llu,%.9g,,,,%lld,%.6f,%.6f,%.6f\n",
				    mode, rep, tr->id, s->t, (long long)s->step,
				    (long long)s->epoch, (unsigned long long)s->version, s->loss,
				    (long long)s->staleness, s->pull, s->compute, s->push);
			}
			for (size_t k = 0; k < tr->n_evals; k++) {
				const rp_eval *e = &tr->evals[k];

				fprintf(f, "%s,%u,%s,eval,%.6f,%lld,%lld,,%.9g,,%.9g,%.9g,,,,\n",
				    mode, rep, tr->id, e->t, (long long)e->step,
				    (long long)e->epoch, e->train_loss, e->rmse, e->naive);
			}
		}
		for (size_t k = 0; k < run->n_curve; k++) {
			const rp_point *p = &run->curve[k];

			fprintf(f, "%s,%u,all,fleet,%.6f,%llu,,%llu,,%.9g,,,,,,\n", mode, rep, p->t,
			    (unsigned long long)p->steps, (unsigned long long)p->updates, p->loss);
		}
		for (size_t k = 0; k < run->n_epochs; k++) {
			const rp_epoch *e = &run->epochs[k];

			fprintf(f, "%s,%u,all,fleet_eval,%.6f,,%lld,,,,%.9g,%.9g,,,,\n", mode, rep,
			    e->t, (long long)e->epoch, e->rmse, e->naive);
		}
	}
	return commit_file(f, tmp, path);
}

static void
json_num(FILE *f, double v)
{
	if (v == RP_NO_VALUE || !isfinite(v))
		fputs("null", f);
	else
		fprintf(f, "%.9g", v);
}

static void
json_stat(FILE *f, const char *key, rp_stat s)
{
	fprintf(f, "      \"%s\": {\"mean\": ", key);
	json_num(f, s.n ? s.mean : RP_NO_VALUE);
	fputs(", \"sd\": ", f);
	json_num(f, s.n ? s.sd : RP_NO_VALUE);
	fprintf(f, ", \"n\": %zu},\n", s.n);
}

static void
json_mode(FILE *f, const psf_report *r, const rp_mode *m)
{
	fputs("    {\n      \"mode\": ", f);
	psf_cli_json_str(f, m->name);
	fprintf(f, ",\n      \"runs\": %zu,\n", m->n_runs);
	json_stat(f, "final_test_rmse", m->rmse);
	json_stat(f, "final_test_mae", m->mae);
	json_stat(f, "naive_rmse", m->naive);
	json_stat(f, "final_train_loss", m->loss);
	json_stat(f, "seconds_to_test_target", m->to_test);
	fprintf(f, "      \"speedup_to_test_target_vs_baseline\": ");
	json_num(f, m->test_speedup > 0 ? m->test_speedup : RP_NO_VALUE);
	fprintf(f, ",\n      \"test_target_within_noise\": %s,\n",
	    m->test_noise < 0   ? "null"
	        : m->test_noise ? "true"
	                        : "false");
	json_stat(f, "seconds_to_target", m->to_target);
	fprintf(f,
	    "      \"runs_reaching_target\": %zu,\n      \"speedup_to_target_vs_baseline\": ",
	    m->to_target.n);
	json_num(f, m->speedup > 0 ? m->speedup : RP_NO_VALUE);
	fputs(",\n", f);
	json_stat(f, "train_seconds", m->train_s);
	json_stat(f, "updates_per_second", m->updates_s);
	json_stat(f, "steps_per_second", m->steps_s);
	json_stat(f, "samples_per_second", m->samples_s);
	json_stat(f, "idle_fraction", m->idle);
	fprintf(f, "      \"staleness\": {\"p50\": %lld, \"p99\": %lld, \"max\": %lld, \"mean\": ",
	    (long long)m->st_p50, (long long)m->st_p99, (long long)m->st_max);
	json_num(f, m->st_mean);
	fprintf(f, ", \"pushes\": %zu}\n    }", m->n_staleness);
	(void)r;
}

static psf_err
write_summary_json(const psf_report *r, const char *path)
{
	char tmp[PSF_REPORT_PATH_LEN + 64];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return PSF_ESYS;
	fputs("{\n  \"config\": ", f);
	psf_cli_json_str(f, r->meta.config);
	fprintf(f,
	    ",\n  \"repeats\": %u,\n  \"trainers\": %u,\n  \"batch_size\": %u,\n"
	    "  \"injections\": ",
	    r->meta.repeats, r->meta.n_trainers, r->meta.batch_size);
	psf_cli_json_str(f, r->meta.injections);
	fputs(",\n  \"test_target_rmse\": {\"value\": ", f);
	json_num(f, r->test_target);
	fputs(", \"source\": ", f);
	psf_cli_json_str(f, r->test_target != RP_NO_VALUE ? r->test_target_source : "none");
	fputs("},\n  \"target_loss\": {\"value\": ", f);
	json_num(f, r->target);
	fputs(", \"source\": ", f);
	psf_cli_json_str(f, r->target != RP_NO_VALUE ? r->target_source : "none");
	fputs("},\n  \"baseline\": ", f);
	if (r->baseline >= 0)
		psf_cli_json_str(f, r->modes[r->baseline].name);
	else
		fputs("null", f);
	fputs(",\n  \"modes\": [\n", f);
	for (size_t k = 0; k < r->n_modes; k++) {
		json_mode(f, r, &r->modes[k]);
		fputs(k + 1 < r->n_modes ? ",\n" : "\n", f);
	}
	fputs("  ]\n}\n", f);
	return commit_file(f, tmp, path);
}

static void
print_table(const psf_report *r, FILE *out)
{
	fprintf(out, "test target: RMSE %.6g (%s)\n", r->test_target,
	    r->test_target != RP_NO_VALUE ? r->test_target_source : "none");
	fprintf(out, "loss target: %.6g (%s)\n", r->target,
	    r->target != RP_NO_VALUE ? r->target_source : "none");
	fprintf(out, "%-10s %4s  %-22s %-18s %8s %-14s %-16s %10s %6s  %s\n", "mode", "runs",
	    "test RMSE (mean +- sd)", "to test target (s)", "speedup", "vs baseline",
	    "to loss target", "updates/s", "idle", "staleness p50/p99/max");
	for (size_t k = 0; k < r->n_modes; k++) {
		const rp_mode *m = &r->modes[k];
		char rmse[64] = "-", tst[64] = "not reached", tgt[64] = "not reached", sp[32] = "-";
		const char *noise = (int)k == r->baseline ? "(baseline)"
		    : m->to_test.n == 0                   ? "-"
		    : m->test_noise < 0                   ? "spread unknown"
		    : m->test_noise                       ? "within noise"
		                                          : "beyond noise";

		if (m->rmse.n > 0)
			snprintf(rmse, sizeof(rmse), "%.6g +- %.2g", m->rmse.mean, m->rmse.sd);
		if (m->to_test.n > 0)
			snprintf(tst, sizeof(tst), "%.2f +- %.2f", m->to_test.mean, m->to_test.sd);
		if (m->to_target.n > 0)
			snprintf(tgt, sizeof(tgt), "%.2f +- %.2f", m->to_target.mean,
			    m->to_target.sd);
		if (m->test_speedup > 0)
			snprintf(sp, sizeof(sp), "%.2fx", m->test_speedup);
		fprintf(out,
		    "%-10s %4zu  %-22s %-18s %8s %-14s %-16s %10.1f %5.0f%%  %lld/%lld/%lld\n",
		    m->name, m->n_runs, rmse, tst, sp, noise, tgt,
		    m->updates_s.n ? m->updates_s.mean : 0, m->idle.n ? 100 * m->idle.mean : 0,
		    (long long)m->st_p50, (long long)m->st_p99, (long long)m->st_max);
	}
}

psf_err
psf_report_write(const char *out_dir, double target_loss, double target_factor, FILE *out,
    char *errbuf, size_t errlen)
{
	char path[PSF_REPORT_PATH_LEN + 32];
	psf_report r;
	psf_err err;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	memset(&r, 0, sizeof(r));
	if ((err = load_meta(out_dir, &r.meta, errbuf, errlen)) != PSF_OK ||
	    (err = load_runs(out_dir, &r, errbuf, errlen)) != PSF_OK)
		goto out;
	if (target_loss > 0 || target_factor > 0) {
		psf_report_run *runs = malloc((r.n_runs ? r.n_runs : 1) * sizeof(*runs));

		r.meta.target_loss = target_loss > 0 ? target_loss : 0;
		r.meta.target_factor = target_loss > 0 ? 0 : target_factor;
		snprintf(r.meta.target_from, sizeof(r.meta.target_from), "--target-loss");
		for (size_t i = 0; runs != NULL && i < r.n_runs; i++)
			runs[i] = r.runs[i].info;
		err = runs == NULL ? PSF_ENOMEM : psf_report_save(out_dir, &r.meta, runs, r.n_runs);
		free(runs);
		if (err != PSF_OK)
			goto out;
	}
	if ((err = rp_compute(&r, out_dir, errbuf, errlen)) != PSF_OK)
		goto out;
	snprintf(path, sizeof(path), "%s/results.csv", out_dir);
	if ((err = write_results_csv(&r, path)) != PSF_OK)
		goto out;
	snprintf(path, sizeof(path), "%s/summary.json", out_dir);
	if ((err = write_summary_json(&r, path)) != PSF_OK)
		goto out;
	snprintf(path, sizeof(path), "%s/report.html", out_dir);
	if ((err = rp_write_html(&r, path)) != PSF_OK)
		goto out;
	if (out != NULL)
		print_table(&r, out);
out:
	if (err != PSF_OK && errbuf != NULL && errlen > 0 && errbuf[0] == '\0')
		snprintf(errbuf, errlen, "%s: cannot write the report: %s", out_dir,
		    psf_strerror(err));
	rp_report_fini(&r);
	return err;
}
