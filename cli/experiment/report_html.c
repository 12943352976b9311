/* report_html.c -- report.html: one self-contained page (inline CSS, inline SVG
 * charts from report_chart.c, no script, no network) with the experiment's
 * charts, each with a short text on how to read it, and its table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/experiment/report_internal.h"

void
rp_html_esc(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else if (*s == '"')
			fputs("&quot;", f);
		else
			fputc(*s, f);
	}
}

/* ---------------------------------------------------------------- page */

static const char css[] =
    "body{margin:0;background:#f3f4f6;color:#1f2937;font:15px/1.5 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}"
    "main{max-width:1080px;margin:0 auto;padding:28px 24px 48px}"
    "h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:0 0 6px}"
    ".sub{color:#4b5563;margin:0 0 18px}"
    ".card{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:18px 22px;"
    "margin:0 0 20px;box-shadow:0 1px 2px rgba(0,0,0,.04)}"
    ".card p{margin:4px 0 10px;color:#374151}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 18px;margin:0}"
    "dt{color:#6b7280}dd{margin:0}"
    "ul.find{margin:6px 0 0;padding-left:20px}ul.find li{margin:3px 0}"
    ".sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:6px;"
    "vertical-align:baseline}"
    "svg.chart{width:100%;height:auto;display:block;margin-top:6px}"
    "svg text{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif}"
    ".plot{fill:#fbfbfc;stroke:none}.grid{stroke:#e3e5e8;stroke-width:1}"
    ".axis{stroke:#6b7280;stroke-width:1}.tick{font-size:12px;fill:#4b5563}"
    ".tick.small{font-size:11px}.label{font-size:13px;fill:#374151}"
    ".legend{font-size:13px;fill:#1f2937}.muted{fill:#6b7280}"
    ".note{font-size:12px;fill:#374151}.strong{font-weight:600}"
    ".panel{font-size:14px;font-weight:600}"
    ".target{stroke:#111827;stroke-width:1.3;stroke-dasharray:6 4}"
    ".naive{stroke:#6b7280;stroke-width:1.3;stroke-dasharray:3 3}"
    "table{border-collapse:collapse;width:100%;font-size:13px}"
    ".wide{overflow-x:auto}"
    "th,td{padding:6px 7px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}"
    "th{background:#f9fafb;color:#374151;font-weight:600;vertical-align:bottom;white-space:normal}"
    "td:first-child,th:first-child{text-align:left}"
    ".foot{color:#6b7280;font-size:13px}code{font-size:13px}"
    ".sd{color:#6b7280;font-size:11.5px}";

/* fmt_num prints v with digits significant digits, without an exponent for
 * large values (12345, not 1.234e+04). */
static void
fmt_num(char *buf, size_t len, double v, int digits)
{
	if (fabs(v) >= pow(10, digits))
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.*g", digits, v);
}

/* stat_cell prints "mean ± sd" with digits significant digits, or "–". */
static void
stat_cell(FILE *f, rp_stat s, int digits, double scale, const char *unit)
{
	char a[48], b[48];

	if (s.n == 0) {
		fputs("<td>–</td>", f);
		return;
	}
	fmt_num(a, sizeof(a), s.mean * scale, digits);
	if (s.sd <= 1e-9 * fabs(s.mean)) /* identical runs (sync is deterministic) */
		snprintf(b, sizeof(b), "0");
	else
		fmt_num(b, sizeof(b), s.sd * scale, 2);
	if (s.n == 1)
		fprintf(f, "<td>%s%s</td>", a, unit);
	else
		fprintf(f, "<td>%s%s<br><span class=\"sd\">± %s</span></td>", a, unit, b);
}

static void
summary_table(FILE *f, const psf_report *r)
{
	fputs(
	    "<div class=\"wide\"><table><tr><th>mode</th><th>runs</th><th>final test RMSE</th><th>vs naive</th>"
	    "<th>test MAE</th><th>final train loss</th><th>seconds to target</th><th>speedup</th>"
	    "<th>training seconds</th><th>updates/s</th><th>steps/s</th><th>samples/s</th>"
	    "<th>idle</th><th>staleness p50 / p99 / max</th></tr>\n",
	    f);
	for (size_t k = 0; k < r->n_modes; k++) {
		const rp_mode *m = &r->modes[k];

		fprintf(f, "<tr><td><span class=\"sw\" style=\"background:%s\"></span>", m->color);
		rp_html_esc(f, m->name);
		fprintf(f, "</td><td>%zu</td>", m->n_runs);
		stat_cell(f, m->rmse, 6, 1, "");
		if (m->rmse.n > 0 && m->naive.n > 0 && m->naive.mean > 0)
			fprintf(f, "<td>%+.2f%%</td>", 100 * (m->rmse.mean / m->naive.mean - 1));
		else
			fputs("<td>–</td>", f);
		stat_cell(f, m->mae, 6, 1, "");
		stat_cell(f, m->loss, 5, 1, "");
		stat_cell(f, m->to_target, 3, 1, "");
		if (m->speedup > 0)
			fprintf(f, "<td>%.2fx</td>", m->speedup);
		else
			fputs("<td>–</td>", f);
		stat_cell(f, m->train_s, 3, 1, "");
		stat_cell(f, m->updates_s, 4, 1, "");
		stat_cell(f, m->steps_s, 4, 1, "");
		stat_cell(f, m->samples_s, 4, 1, "");
		stat_cell(f, m->idle, 3, 100, "%");
		fprintf(f, "<td>%lld / %lld / %lld</td></tr>\n", (long long)m->st_p50,
		    (long long)m->st_p99, (long long)m->st_max);
	}
	fputs("</table></div>\n", f);
}

/* findings writes one sentence per mode against the baseline. */
static void
findings(FILE *f, const psf_report *r)
{
	const rp_mode *b = r->baseline >= 0 ? &r->modes[r->baseline] : NULL;

	fputs("<ul class=\"find\">\n", f);
	for (size_t k = 0; k < r->n_modes; k++) {
		const rp_mode *m = &r->modes[k];

		if (m->n_runs == 0) {
			fputs("<li><b>", f);
			rp_html_esc(f, m->name);
			fputs("</b>: no finished run.</li>\n", f);
			continue;
		}
		fprintf(f, "<li><span class=\"sw\" style=\"background:%s\"></span><b>", m->color);
		rp_html_esc(f, m->name);
		fputs("</b>: ", f);
		if (m->to_test.n == 0)
			fputs("did not reach the test target", f);
		else if (b != NULL && m != b && m->test_speedup > 0)
			fprintf(f,
			    "reached the test target in %.2f &plusmn; %.2f s, <b>%.2fx</b> %s than "
			    "%s (%.2f &plusmn; %.2f s), %s",
			    m->to_test.mean, m->to_test.sd,
			    m->test_speedup >= 1 ? m->test_speedup : 1 / m->test_speedup,
			    m->test_speedup >= 1 ? "faster" : "slower", b->name, b->to_test.mean,
			    b->to_test.sd,
			    m->test_noise < 0 ? "with one run each the spread is unknown"
			        : m->test_noise
			        ? "<b>a difference within the noise</b> of the repeats"
			        : "a difference beyond the noise of the repeats");
		else
			fprintf(f, "reached the test target in %.2f &plusmn; %.2f s",
			    m->to_test.mean, m->to_test.sd);
		fputs("; training loss ", f);
		if (m->to_target.n == 0)
			fprintf(f, "did not reach its target (final smoothed loss %.5g)",
			    m->loss.mean);
		else if (b != NULL && m != b && m->speedup > 0)
			fprintf(f, "reached its target in %.2f s (%.2fx %s than %s, %.2f s)",
			    m->to_target.mean, m->speedup >= 1 ? m->speedup : 1 / m->speedup,
			    m->speedup >= 1 ? "faster" : "slower", b->name, b->to_target.mean);
		else
			fprintf(f, "reached its target in %.2f s", m->to_target.mean);
		if (m->rmse.n > 0)
			fprintf(f, "; final test RMSE %.6g", m->rmse.mean);
		if (b != NULL && m != b && m->rmse.n > 0 && b->rmse.n > 0 && b->rmse.mean > 0)
			fprintf(f, " (%+.2f%% vs %s)", 100 * (m->rmse.mean / b->rmse.mean - 1),
			    b->name);
		if (m->train_s.n > 0)
			fprintf(f, "; training took %.1f s", m->train_s.mean);
		fprintf(f, "; staleness p99 %lld, idle %.0f%% of trainer time.</li>\n",
		    (long long)m->st_p99, m->idle.n ? 100 * m->idle.mean : 0);
	}
	fputs("</ul>\n", f);
}

static void
card(FILE *f, const char *title, const char *text)
{
	fprintf(f, "<section class=\"card\"><h2>%s</h2><p>%s</p>\n", title, text);
}

static void
header(FILE *f, const psf_report *r)
{
	char when[64];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
	fputs("<h1>Consistency experiment</h1><p class=\"sub\">psfleet experiment · generated ", f);
	fputs(when, f);
	fputs("</p>\n<section class=\"card\"><dl><dt>config</dt><dd><code>", f);
	rp_html_esc(f, r->meta.config);
	fputs("</code></dd><dt>modes</dt><dd>", f);
	rp_html_esc(f, r->meta.modes);
	fprintf(f,
	    "</dd><dt>runs</dt><dd>%u repeat%s per mode, %u trainers, batch %u</dd>"
	    "<dt>injected</dt><dd>",
	    r->meta.repeats, r->meta.repeats == 1 ? "" : "s", r->meta.n_trainers,
	    r->meta.batch_size);
	rp_html_esc(f, r->meta.injections);
	fputs("</dd><dt>test target</dt><dd>", f);
	if (r->test_target != RP_NO_VALUE) {
		fprintf(f, "RMSE %.6g: ", r->test_target);
		rp_html_esc(f, r->test_target_source);
	} else {
		fputs("none (the baseline did not beat the naive forecast)", f);
	}
	fputs("</dd><dt>target loss</dt><dd>", f);
	if (r->target != RP_NO_VALUE) {
		fprintf(f, "%.5g: ", r->target);
		rp_html_esc(f, r->target_source);
	} else {
		fputs("none (no run to derive it from)", f);
	}
	fputs("</dd></dl>\n<h2 style=\"margin-top:14px\">Findings</h2>\n", f);
	findings(f, r);
	fputs("</section>\n", f);
}

psf_err
rp_write_html(const psf_report *r, const char *path)
{
	char tmp[PSF_REPORT_PATH_LEN + 64];
	FILE *f;
	int bad;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return PSF_ESYS;
	fprintf(f,
	    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
	    "<title>psfleet consistency experiment</title><style>%s</style></head><body><main>\n",
	    css);
	header(f, r);
	card(f, "Training loss vs wall-clock time",
	    "The fleet's training loss (every trainer's "
	    "per-step batch loss, merged in time order and averaged over a sliding window) against "
	    "seconds since the first step. Lower and further left is better: a mode whose line "
	    "crosses the dashed target line first reaches that loss soonest. With a straggler, "
	    "<b>sync</b> moves at the straggler's pace; <b>async</b> and <b>ssp</b> let the fast "
	    "trainers go on.");
	rp_loss_chart(f, r, 0);
	fputs("</section>\n", f);
	card(f, "Training loss vs updates applied",
	    "The same loss against the model version "
	    "(updates the parameter servers applied). One <b>sync</b> update averages one gradient "
	    "of every trainer; an <b>async</b> or <b>ssp</b> update is one trainer's gradient, "
	    "computed on weights that may be a few updates old. A line further left makes more "
	    "progress per update.");
	rp_loss_chart(f, r, 1);
	fputs("</section>\n", f);
	card(f, "Test error over time",
	    "The fleet's test RMSE (all trainers' test rows together) "
	    "after each epoch, placed at the time the last trainer finished that epoch. The dotted "
	    "line is the naive forecast (tomorrow's return = 0) that a useful model must beat.");
	rp_rmse_chart(f, r);
	fputs("</section>\n", f);
	card(f, "Staleness",
	    "For every push, how far the pushing trainer's clock was ahead of "
	    "the slowest live trainer's (as the ps reported it). <b>sync</b> is 0 by construction; "
	    "<b>ssp:s</b> never exceeds s; <b>async</b> has no bound, so a straggler shows up as a "
	    "long tail. Bars are the share of pushes at each staleness (each panel has its own "
	    "range; wide ranges are grouped), on a log scale so a few pushes in a thousand still "
	    "show.");
	rp_staleness_chart(f, r);
	fputs("</section>\n", f);
	card(f, "Idle time vs compute",
	    "Each bar is one trainer (mean over repeats): compute "
	    "(forward and backward), waiting on the parameter servers (pull + push, which in sync "
	    "and ssp includes waiting for the other trainers), and the rest (the straggler's "
	    "injected delay, evaluation, restart). The percentage is the waiting share.");
	rp_idle_chart(f, r);
	fputs("</section>\n", f);
	card(f, "Time to the target loss",
	    "Seconds from the first step until the smoothed "
	    "training loss first reaches the target, per mode (solid), against the whole training "
	    "time (light). The factor is the speedup over the baseline mode.");
	rp_target_chart(f, r);
	fputs("</section>\n", f);
	fputs(
	    "<section class=\"card\"><h2>Summary</h2><p>Means over the repeats (below them: ± "
	    "sample standard deviation). Idle is the share of trainer time spent waiting on the ps. "
	    "summary.json holds the same figures; results.csv every sample point.</p>\n",
	    f);
	summary_table(f, r);
	fputs(
	    "</section>\n<p class=\"foot\">Definitions: cli/experiment/report.h and docs/experiments.md. "
	    "The figures come from the trainers' traces in <code>runs/*/trace/</code>.</p>\n"
	    "</main></body></html>\n",
	    f);
	bad = ferror(f) != 0;
	if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
		(void)remove(tmp);
		return PSF_ESYS;
	}
	return PSF_OK;
}
