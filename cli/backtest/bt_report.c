/* bt_report.c -- the backtest's metrics and its files: results.csv (one row per
 * forecast), summary.json (per origin and overall) and report.html (backtest.h). */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backtest/backtest.h"
#include "cli/cli.h"
#include "cli/experiment/chart.h"
#include "lib/data/data.h"

/* The metrics of a group of forecasts (one origin, or all). */
typedef struct bt_metrics {
	size_t n;
	double rmse, mae, naive_rmse, naive_mae;
	double mase;     /* MAE / naive MAE over the same forecasts */
	double skill;    /* 1 - RMSE / naive RMSE */
	double hit_rate; /* sign of (forecast - last) == sign of (actual - last), over
	                     forecasts whose actual moved */
	double beats;    /* share of symbols whose RMSE < their naive RMSE */
	double coverage[BT_MAX_COV];
	double width[BT_MAX_COV]; /* mean interval width / last close */
} bt_metrics;

/* metrics computes m over the rows of origin k (k < 0: every row). */
static void
metrics(const bt_result *res, long k, bt_metrics *m)
{
	double sse = 0, sae = 0, nsse = 0, nsae = 0;
	double *ssym = calloc(res->n_symbols * 2 + 1, sizeof(double));
	size_t hits = 0, moved = 0, cov[BT_MAX_COV] = {0}, won = 0, seen = 0;
	bool *has = calloc(res->n_symbols + 1, sizeof(bool));

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < res->n_rows; i++) {
		const bt_row *r = &res->rows[i];
		double e = r->pred - r->actual, ne = r->last_close - r->actual;

		if (k >= 0 && r->origin != (uint32_t)k)
			continue;
		m->n++;
		sse += e * e;
		sae += fabs(e);
		nsse += ne * ne;
		nsae += fabs(ne);
		if (ssym != NULL) {
			ssym[2 * r->sym] += e * e;
			ssym[2 * r->sym + 1] += ne * ne;
			has[r->sym] = true;
		}
		if (r->actual != r->last_close) {
			moved++;
			hits += (r->pred > r->last_close) == (r->actual > r->last_close);
		}
		for (size_t c = 0; c < res->n_cov; c++) {
			cov[c] += r->lo[c] <= r->actual && r->actual <= r->hi[c];
			m->width[c] += (r->hi[c] - r->lo[c]) / r->last_close;
		}
	}
	for (size_t s = 0; ssym != NULL && has != NULL && s < res->n_symbols; s++) {
		if (!has[s])
			continue;
		seen++;
		won += ssym[2 * s] < ssym[2 * s + 1];
	}
	if (m->n > 0) {
		double n = (double)m->n;
		m->rmse = sqrt(sse / n);
		m->mae = sae / n;
		m->naive_rmse = sqrt(nsse / n);
		m->naive_mae = nsae / n;
		m->mase = nsae > 0 ? sae / nsae : NAN;
		m->skill = nsse > 0 ? 1.0 - m->rmse / m->naive_rmse : NAN;
		m->hit_rate = moved > 0 ? (double)hits / (double)moved : NAN;
		m->beats = seen > 0 ? (double)won / (double)seen : NAN;
		for (size_t c = 0; c < res->n_cov; c++) {
			m->coverage[c] = (double)cov[c] / n;
			m->width[c] /= n;
		}
	}
	free(ssym);
	free(has);
}

/* num prints v as JSON (null when not finite). */
static void
num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.9g", v);
	else
		fputs("null", f);
}

static void
json_metrics(FILE *f, const bt_result *res, const bt_metrics *m)
{
	fprintf(f, "\"n\": %zu, \"rmse\": ", m->n);
	num(f, m->rmse);
	fputs(", \"mae\": ", f);
	num(f, m->mae);
	fputs(", \"naive_rmse\": ", f);
	num(f, m->naive_rmse);
	fputs(", \"naive_mae\": ", f);
	num(f, m->naive_mae);
	fputs(", \"mase\": ", f);
	num(f, m->mase);
	fputs(", \"skill\": ", f);
	num(f, m->skill);
	fputs(", \"hit_rate\": ", f);
	num(f, m->hit_rate);
	fputs(", \"beats_naive_share\": ", f);
	num(f, m->beats);
	fputs(", \"coverage\": {", f);
	for (size_t c = 0; c < res->n_cov; c++) {
		fprintf(f, "%s\"%g\": ", c ? ", " : "", res->coverage[c]);
		num(f, m->coverage[c]);
	}
	fputs("}, \"relative_width\": {", f);
	for (size_t c = 0; c < res->n_cov; c++) {
		fprintf(f, "%s\"%g\": ", c ? ", " : "", res->coverage[c]);
		num(f, m->width[c]);
	}
	fputs("}", f);
}

static psf_err
write_csv(const bt_result *res, const char *path)
{
	FILE *f = fopen(path, "w");
	char a[11], d[11], o[11];

	if (f == NULL)
		return PSF_ESYS;
	fputs("origin,origin_date,symbol,h,as_of,date,model_version,last_close,actual,forecast", f);
	for (size_t c = 0; c < res->n_cov; c++)
		fprintf(f, ",lower_%g,upper_%g", res->coverage[c] * 100, res->coverage[c] * 100);
	fputc('\n', f);
	for (size_t i = 0; i < res->n_rows; i++) {
		const bt_row *r = &res->rows[i];

		psf_date_format(res->origin_dates[r->origin], o);
		psf_date_format(r->as_of, a);
		psf_date_format(r->date, d);
		fprintf(f, "%u,%s,%s,%u,%s,%s,%llu,%.10g,%.10g,%.10g", r->origin, o,
		    res->symbols[r->sym], r->h, a, d, (unsigned long long)r->version, r->last_close,
		    r->actual, r->pred);
		for (size_t c = 0; c < res->n_cov; c++)
			fprintf(f, ",%.10g,%.10g", r->lo[c], r->hi[c]);
		fputc('\n', f);
	}
	return fclose(f) == 0 ? PSF_OK : PSF_ESYS;
}

static psf_err
write_json(const bt_opts *o, const bt_result *res, const char *path)
{
	FILE *f = fopen(path, "w");
	bt_metrics m;
	char d[11];

	if (f == NULL)
		return PSF_ESYS;
	fputs("{\"config\": ", f);
	psf_cli_json_str(f, o->config_path);
	fprintf(f,
	    ", \"target\": \"%s\", \"origins\": %zu, \"horizon\": %u, \"symbols\": %zu, "
	    "\"interval_method\": \"split-conformal\", \"interval_scale\": \"%s\", "
	    "\"training\": \"from scratch per origin (rows dated before the origin)\", "
	    "\"forecasts\": \"one step ahead: PredictBatch with as_of = the previous date, "
	    "on the fleet trained before the origin\", \"skipped\": %zu,\n \"overall\": {",
	    res->target, res->n_origins, res->horizon, res->n_symbols, res->interval_scale,
	    res->skipped);
	metrics(res, -1, &m);
	json_metrics(f, res, &m);
	fputs("},\n \"per_origin\": [", f);
	for (size_t k = 0; k < res->n_origins; k++) {
		psf_date_format(res->origin_dates[k], d);
		metrics(res, (long)k, &m);
		fprintf(f,
		    "%s\n  {\"origin\": %zu, \"origin_date\": \"%s\", \"train_seconds\": %.3f, "
		    "\"residuals\": %llu, ",
		    k ? "," : "", k, d, res->train_s[k], (unsigned long long)res->resid_n[k]);
		json_metrics(f, res, &m);
		fputs("}", f);
	}
	fputs("\n]}\n", f);
	return fclose(f) == 0 ? PSF_OK : PSF_ESYS;
}

static const char *const colors[] = {"#33415c", "#f4a259", "#5b8e7d", "#bc4b51"};

/* chart_origins plots, per origin, the model's and the naive RMSE (relative:
 * divided by the overall naive RMSE) and the coverage of each level. */
static void
chart_errors(FILE *f, const bt_result *res)
{
	rp_frame fr = {90, 50, RP_CHART_W - 130, 260, -0.5, (double)res->n_origins - 0.5, 0, 0};
	rp_axes ax = {.nx = 0, .ny = 5, .xlabel = "origin", .ylabel = "RMSE (price units)"};
	bt_metrics m;
	double bw = fr.width / (double)res->n_origins / 3.0;

	for (size_t k = 0; k < res->n_origins; k++) {
		metrics(res, (long)k, &m);
		fr.yhi = fmax(fr.yhi, fmax(m.rmse, m.naive_rmse));
	}
	rp_chart_nice_range(&fr.ylo, &fr.yhi, 5);
	rp_chart_open(f, "errors", 360, "RMSE per origin: model and naive");
	rp_chart_axes(f, &fr, &ax);
	rp_chart_legend(f, 90, colors[0], NULL, "model");
	rp_chart_legend(f, 190, colors[1], NULL, "naive (last close)");
	for (size_t k = 0; k < res->n_origins; k++) {
		double x = rp_chart_x(&fr, (double)k);
		char d[11];

		metrics(res, (long)k, &m);
		psf_date_format(res->origin_dates[k], d);
		fprintf(f,
		    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>"
		    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>"
		    "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		    x - bw, rp_chart_y(&fr, m.rmse), bw,
		    rp_chart_y(&fr, 0) - rp_chart_y(&fr, m.rmse), colors[0], x,
		    rp_chart_y(&fr, m.naive_rmse), bw,
		    rp_chart_y(&fr, 0) - rp_chart_y(&fr, m.naive_rmse), colors[1], x,
		    fr.top + fr.height + 18, d);
	}
	fputs("</svg>\n", f);
}

static void
chart_coverage(FILE *f, const bt_result *res)
{
	rp_frame fr = {90, 50, RP_CHART_W - 130, 260, -0.5, (double)res->n_origins - 0.5, 0, 1};
	rp_axes ax = {.nx = 0, .ny = 5, .xlabel = "origin", .ylabel = "empirical coverage"};
	bt_metrics m;
	double bw = fr.width / (double)res->n_origins / (double)(res->n_cov + 1);

	rp_chart_open(f, "coverage", 360, "Interval coverage per origin (dashed: nominal)");
	rp_chart_axes(f, &fr, &ax);
	for (size_t c = 0; c < res->n_cov; c++) {
		char lab[32];
		double y = rp_chart_y(&fr, res->coverage[c]);

		snprintf(lab, sizeof(lab), "%g%% interval", res->coverage[c] * 100);
		rp_chart_legend(f, 90 + 160.0 * (double)c, colors[c], NULL, lab);
		fprintf(f,
		    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
		    "stroke-dasharray=\"6 4\"/>\n",
		    fr.left, fr.left + fr.width, y, y, colors[c]);
	}
	for (size_t k = 0; k < res->n_origins; k++) {
		double x = rp_chart_x(&fr, (double)k) - bw * (double)res->n_cov / 2;
		char d[11];

		metrics(res, (long)k, &m);
		for (size_t c = 0; c < res->n_cov; c++)
			fprintf(f,
			    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
			    "fill-opacity=\"0.8\"/>\n",
			    x + bw * (double)c, rp_chart_y(&fr, m.coverage[c]), bw,
			    rp_chart_y(&fr, 0) - rp_chart_y(&fr, m.coverage[c]), colors[c]);
		psf_date_format(res->origin_dates[k], d);
		fprintf(f,
		    "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		    rp_chart_x(&fr, (double)k), fr.top + fr.height + 18, d);
	}
	fputs("</svg>\n", f);
}

/* chart_symbol plots the first symbol's actual closes, forecasts and widest
 * interval over every forecast date. */
static void
chart_symbol(FILE *f, const bt_result *res)
{
	rp_frame fr = {90, 50, RP_CHART_W - 130, 260, 0, 1, INFINITY, -INFINITY};
	rp_axes ax = {.nx = 0, .ny = 5, .xlabel = "forecast date (in order)", .ylabel = "close"};
	size_t n = 0, c = res->n_cov - 1, j = 0;
	char title[160];

	for (size_t i = 0; i < res->n_rows; i++) {
		const bt_row *r = &res->rows[i];
		if (r->sym != 0)
			continue;
		n++;
		fr.ylo = fmin(fr.ylo, fmin(r->actual, r->lo[c]));
		fr.yhi = fmax(fr.yhi, fmax(r->actual, r->hi[c]));
	}
	if (n < 2)
		return;
	fr.xhi = (double)(n - 1);
	rp_chart_nice_range(&fr.ylo, &fr.yhi, 5);
	snprintf(title, sizeof(title), "%s: actual close, forecast and %g%% interval",
	    res->symbols[0], res->coverage[c] * 100);
	rp_chart_open(f, "symbol", 360, title);
	rp_chart_axes(f, &fr, &ax);
	rp_chart_legend(f, 90, "#000000", NULL, "actual");
	rp_chart_legend(f, 190, colors[0], NULL, "forecast");
	rp_chart_legend(f, 310, colors[1], "0.3", "interval");
	fputs("<polygon fill=\"#f4a259\" fill-opacity=\"0.3\" points=\"", f);
	for (size_t i = 0; i < res->n_rows; i++)
		if (res->rows[i].sym == 0)
			fprintf(f, "%.1f,%.1f ", rp_chart_x(&fr, (double)j++),
			    rp_chart_y(&fr, res->rows[i].hi[c]));
	for (size_t i = res->n_rows; i-- > 0;)
		if (res->rows[i].sym == 0)
			fprintf(f, "%.1f,%.1f ", rp_chart_x(&fr, (double)--j),
			    rp_chart_y(&fr, res->rows[i].lo[c]));
	fputs("\"/>\n", f);
	for (int which = 0; which < 2; which++) {
		fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
		    which ? colors[0] : "#000000");
		j = 0;
		for (size_t i = 0; i < res->n_rows; i++)
			if (res->rows[i].sym == 0)
				fprintf(f, "%.1f,%.1f ", rp_chart_x(&fr, (double)j++),
				    rp_chart_y(&fr,
				        which ? res->rows[i].pred : res->rows[i].actual));
		fputs("\"/>\n", f);
	}
	fputs("</svg>\n", f);
}

static const char css[] =
    "body{font:15px system-ui,sans-serif;color:#222;background:#f6f6f3;margin:0}"
    "main{max-width:1000px;margin:auto;padding:20px}section{background:#fff;padding:16px;"
    "margin:16px 0;border-radius:6px}table{border-collapse:collapse}td,th{padding:4px 10px;"
    "border-bottom:1px solid #ddd;text-align:right}.chart{width:100%;height:auto}"
    ".plot{fill:#fafafa;stroke:none}.grid{stroke:#e4e4e4}.axis{stroke:#777}"
    ".tick{font-size:12px;fill:#555}.label{font-size:13px;fill:#333}.legend{font-size:13px}";

static void
html_row(FILE *f, const bt_result *res, const char *name, const bt_metrics *m)
{
	fprintf(f,
	    "<tr><td>%s</td><td>%zu</td><td>%.4g</td><td>%.4g</td><td>%.4g</td><td>%.3f</td>"
	    "<td>%.3f</td><td>%.1f%%</td><td>%.1f%%</td>",
	    name, m->n, m->rmse, m->naive_rmse, m->mae, m->mase, m->skill, m->hit_rate * 100,
	    m->beats * 100);
	for (size_t c = 0; c < res->n_cov; c++)
		fprintf(f, "<td>%.1f%%</td>", m->coverage[c] * 100);
	fputs("</tr>\n", f);
}

static psf_err
write_html(const bt_opts *o, const bt_result *res, const char *path)
{
	FILE *f = fopen(path, "w");
	bt_metrics m;

	if (f == NULL)
		return PSF_ESYS;
	fprintf(f,
	    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>psfleet backtest</title>"
	    "<style>%s</style></head><body><main><h1>Walk-forward backtest</h1>\n<p>Config ",
	    css);
	rp_html_esc(f, o->config_path);
	fprintf(f,
	    ", target %s, %zu symbols, %zu origins x %u days. Each origin's fleet is trained "
	    "from scratch on the rows dated before it; each forecast is one step ahead, made "
	    "with PredictBatch from the previous day's bar. Intervals: split-conformal over "
	    "the trainers' held-out rows (scale: %s). %zu forecasts could not be made.</p>\n",
	    res->target, res->n_symbols, res->n_origins, res->horizon, res->interval_scale,
	    res->skipped);
	fputs("<section><h2>Metrics</h2><table><tr><th>origin</th><th>n</th><th>RMSE</th>"
	      "<th>naive RMSE</th><th>MAE</th><th>MASE</th><th>skill</th><th>hit rate</th>"
	      "<th>beats naive</th>",
	    f);
	for (size_t c = 0; c < res->n_cov; c++)
		fprintf(f, "<th>coverage %g%%</th>", res->coverage[c] * 100);
	fputs("</tr>\n", f);
	for (size_t k = 0; k < res->n_origins; k++) {
		char d[11];
		psf_date_format(res->origin_dates[k], d);
		metrics(res, (long)k, &m);
		html_row(f, res, d, &m);
	}
	metrics(res, -1, &m);
	html_row(f, res, "<b>all</b>", &m);
	fputs("</table><p>MASE: MAE / the naive forecast's MAE on the same forecasts. Skill: "
	      "1 - RMSE / naive RMSE (above 0 beats the naive forecast). Hit rate: the share "
	      "of forecasts that got the direction of the move right. Beats naive: the share "
	      "of symbols whose RMSE is below their naive RMSE.</p></section>\n",
	    f);
	fputs("<section>", f);
	chart_errors(f, res);
	fputs("</section><section>", f);
	chart_coverage(f, res);
	fputs("</section><section>", f);
	chart_symbol(f, res);
	fputs("</section></main></body></html>\n", f);
	return fclose(f) == 0 ? PSF_OK : PSF_ESYS;
}

psf_err
bt_write(const bt_opts *o, const bt_result *res, char *errbuf, size_t errlen)
{
	char path[2048];
	const char *names[] = {"results.csv", "summary.json", "report.html"};

	for (int i = 0; i < 3; i++) {
		psf_err err;
		snprintf(path, sizeof(path), "%s/%s", o->out_dir, names[i]);
		err = i == 0 ? write_csv(res, path)
		    : i == 1 ? write_json(o, res, path)
		             : write_html(o, res, path);
		if (err != PSF_OK) {
			snprintf(errbuf, errlen, "cannot write %s", path);
			return err;
		}
	}
	return PSF_OK;
}
