/* report_chart.c -- the inline SVG charts of report.html (report_html.c). Every
 * chart is an <svg id="chart-..."> with a title, a frame drawn by draw_frame
 * (plot area, grid, ticks, axis lines and titles) and a legend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/experiment/chart.h"
#include "cli/experiment/report_internal.h"

#define W 960.0 /* every chart's viewBox width */

/* Categories of the time split (not modes: modes name the groups). */
#define C_COMPUTE "#33415c"
#define C_WAIT "#f4a259"
#define C_OTHER "#c8c8c8"

typedef rp_frame frame;

static double
fx(const frame *f, double v)
{
	return f->left + (v - f->xlo) / (f->xhi - f->xlo) * f->width;
}

static double
fy(const frame *f, double v)
{
	return f->top + f->height - (v - f->ylo) / (f->yhi - f->ylo) * f->height;
}

/* nice_step is a 1-2-5 step giving about n ticks over range. */
static double
nice_step(double range, int n)
{
	double raw = range / n, mag, fr;

	if (!(raw > 0) || !isfinite(raw))
		return 1;
	mag = pow(10, floor(log10(raw)));
	fr = raw / mag;
	return (fr < 1.5 ? 1 : fr < 3 ? 2 : fr < 7 ? 5 : 10) * mag;
}

/* tick_label formats v for an axis whose ticks are step apart. */
static void
tick_label(char *buf, size_t len, double v, double step)
{
	int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);

	if (fabs(v) < step * 1e-6)
		v = 0;
	if (fabs(v) >= 10000 && step >= 100)
		snprintf(buf, len, "%gk", v / 1000);
	else
		snprintf(buf, len, "%.*f", dec > 8 ? 8 : dec, v);
}

/* nice_range widens [lo, hi] to whole ticks. */
static void
nice_range(double *lo, double *hi, int n)
{
	double step;

	if (!(*hi > *lo)) {
		double d = fabs(*lo) > 0 ? fabs(*lo) * 0.05 : 1;

		*lo -= d;
		*hi += d;
	}
	step = nice_step(*hi - *lo, n);
	*lo = floor(*lo / step + 1e-9) * step;
	*hi = ceil(*hi / step - 1e-9) * step;
}

typedef rp_axes axes_spec;

/* draw_frame draws the frame of every chart and panel: the plot area, grid
 * lines with tick labels (linear, about a->ny and a->nx apart, or a log y),
 * the axis lines and the axis titles. */
static void
draw_frame(FILE *f, const frame *fr, const axes_spec *a)
{
	double bottom = fr->top + fr->height, right = fr->left + fr->width;
	double ys = nice_step(fr->yhi - fr->ylo, a->ny), xs = nice_step(fr->xhi - fr->xlo, a->nx);
	char lab[48];

	if (a->clip != NULL)
		fprintf(f,
		    "<defs><clipPath id=\"clip-%s\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
		    "height=\"%.1f\"/></clipPath></defs>\n",
		    a->clip, fr->left, fr->top - 2, fr->width, fr->height + 4);
	fprintf(f, "<rect class=\"plot\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n",
	    fr->left, fr->top, fr->width, fr->height);
	for (double v = a->ylog ? fr->ylo : ceil(fr->ylo / ys - 1e-9) * ys;
	     (a->ylog || a->ny > 0) && v <= fr->yhi + (a->ylog ? 1e-9 : ys * 1e-6);
	     v += a->ylog ? 1 : ys) {
		if (a->ylog)
			snprintf(lab, sizeof(lab), pow(10, v) >= 1 ? "%.0f%%" : "%g%%", pow(10, v));
		else
			tick_label(lab, sizeof(lab), v, ys);
		fprintf(f,
		    "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
		    "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
		    fr->left, right, fy(fr, v), fy(fr, v), fr->left - (a->ylog ? 6 : 7),
		    fy(fr, v) + 4, lab);
	}
	if (a->ny > 0)
		fprintf(f,
		    "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n",
		    fr->left, fr->left, fr->top, bottom);
	if (a->ylabel != NULL)
		fprintf(f,
		    "<text class=\"label\" transform=\"translate(%.1f,%.1f) rotate(-90)\" "
		    "text-anchor=\"middle\">%s</text>\n",
		    fr->left - (a->ylabel_dx ? a->ylabel_dx : 68), fr->top + fr->height / 2,
		    a->ylabel);
	for (double v = ceil(fr->xlo / xs - 1e-9) * xs; a->nx > 0 && v <= fr->xhi + xs * 1e-6;
	     v += xs) {
		double x = fx(fr, v);

		tick_label(lab, sizeof(lab), v, xs);
		fprintf(f,
		    "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
		    "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
		    "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		    x, x, fr->top, bottom, x, x, bottom, bottom + 5, x, bottom + 19, lab);
	}
	if (a->xlabel != NULL)
		fprintf(f,
		    "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
		    "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		    fr->left, right, bottom, bottom, fr->left + fr->width / 2,
		    bottom + (a->xlabel_dy ? a->xlabel_dy : 40), a->xlabel);
}

/* legend_box draws a legend entry at x above the plot: a colour box
 * (opacity: its fill-opacity, NULL = opaque) and its text. */
static void
legend_box(FILE *f, double x, const char *color, const char *opacity, const char *text)
{
	fprintf(f,
	    "<rect x=\"%.1f\" y=\"15\" width=\"14\" height=\"14\" fill=\"%s\"%s%s%s/>"
	    "<text class=\"legend\" x=\"%.1f\" y=\"26\">%s</text>\n",
	    x, color, opacity != NULL ? " fill-opacity=\"" : "", opacity != NULL ? opacity : "",
	    opacity != NULL ? "\"" : "", x + 20, text);
}

/* legend_modes draws one swatch per mode in a row at (x, y); returns the x after it. */
static double
legend_modes(FILE *f, const psf_report *r, double x, double y)
{
	for (size_t k = 0; k < r->n_modes; k++) {
		if (r->modes[k].n_runs == 0)
			continue;
		fprintf(f,
		    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
		    "stroke-width=\"3\"/><text class=\"legend\" x=\"%.1f\" y=\"%.1f\">",
		    x, x + 22, y, y, r->modes[k].color, x + 28, y + 4);
		rp_html_esc(f, r->modes[k].name);
		fputs("</text>\n", f);
		x += 46 + 8.0 * (double)strlen(r->modes[k].name);
	}
	return x;
}

static void
svg_open(FILE *f, const char *id, double height, const char *title)
{
	fprintf(f,
	    "<svg id=\"chart-%s\" class=\"chart\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
	    "xmlns=\"http://www.w3.org/2000/svg\"><title>%s</title>\n",
	    id, W, height, title);
}

/* ---------------------------------------------------------------- line charts */

/* The loss range that shows the approach to the target: from the lowest
 * smoothed loss to three times the target's distance above it (the start of
 * training, far above, is clipped). */
static void
loss_range(const psf_report *r, double *lo, double *hi)
{
	double mn = INFINITY, mx = -INFINITY;

	for (size_t i = 0; i < r->n_runs; i++) {
		const rp_run *run = &r->runs[i];

		if (!run->info.ok || run->n_curve == 0 || run->mode == SIZE_MAX)
			continue;
		for (size_t k = 0; k < run->n_curve; k++) {
			if (run->curve[k].steps < run->window)
				continue;
			mn = fmin(mn, run->curve[k].loss);
			mx = fmax(mx, run->curve[k].loss);
		}
	}
	if (!isfinite(mn)) {
		*lo = 0;
		*hi = 1;
		return;
	}
	if (r->target != RP_NO_VALUE && r->target > mn)
		mx = fmin(mx, mn + 3 * (r->target - mn));
	if (r->target != RP_NO_VALUE)
		mx = fmax(mx, r->target);
	*lo = mn - 0.04 * (mx - mn);
	*hi = mx + 0.06 * (mx - mn);
	nice_range(lo, hi, 6);
}

/* loss_chart draws the fleet's smoothed loss against time (by_updates 0) or
 * the model version (1), one line per run coloured by mode. */
void
rp_loss_chart(FILE *f, const psf_report *r, int by_updates)
{
	const char *id = by_updates ? "loss-updates" : "loss-time";
	frame fr = {90, 46, W - 90 - 24, 300, 0, 0, 0, 0};
	double x;

	for (size_t i = 0; i < r->n_runs; i++) {
		const rp_run *run = &r->runs[i];

		if (run->info.ok && run->n_curve > 0 && run->mode != SIZE_MAX)
			fr.xhi = fmax(fr.xhi, by_updates ? (double)run->final_version : run->t_end);
	}
	nice_range(&fr.xlo, &fr.xhi, 8);
	loss_range(r, &fr.ylo, &fr.yhi);
	svg_open(f, id, 410,
	    by_updates ? "Training loss vs updates applied" : "Training loss vs wall-clock time");
	draw_frame(f, &fr,
	    &(axes_spec){.nx = 8,
	        .ny = 6,
	        .clip = id,
	        .ylabel = "training loss "
	                  "(smoothed)",
	        .xlabel = by_updates ? "updates applied (model version)"
	                             : "wall-clock seconds since the first step"});
	for (int pass = 0; pass < 2; pass++) /* other repeats first, faint; repeat 0 on top */
		for (size_t i = 0; i < r->n_runs; i++) {
			const rp_run *run = &r->runs[i];

			if (!run->info.ok || run->n_curve == 0 || run->mode == SIZE_MAX ||
			    (run->info.repeat == 0) != (pass == 1))
				continue;
			fprintf(f,
			    "<polyline clip-path=\"url(#clip-%s)\" fill=\"none\" stroke=\"%s\" "
			    "stroke-width=\"%s\" stroke-opacity=\"%s\" stroke-linejoin=\"round\" points=\"",
			    id, r->modes[run->mode].color, pass ? "2.2" : "1.3",
			    pass ? "1" : "0.45");
			for (size_t k = 0; k < run->n_curve; k++)
				fprintf(f, "%.1f,%.1f ",
				    fx(&fr,
				        by_updates ? (double)run->curve[k].updates
				                   : run->curve[k].t),
				    fy(&fr, run->curve[k].loss));
			fputs("\"/>\n", f);
		}
	if (r->target != RP_NO_VALUE && r->target <= fr.yhi) {
		double y = fy(&fr, r->target);

		fprintf(f,
		    "<line class=\"target\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
		    "<text class=\"note\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">target %.4g</text>\n",
		    fr.left, fr.left + fr.width, y, y, fr.left + fr.width - 6, y - 6, r->target);
		for (size_t i = 0; !by_updates && i < r->n_runs; i++) {
			const rp_run *run = &r->runs[i];

			if (run->info.ok && run->t_target != RP_NO_VALUE && run->mode != SIZE_MAX)
				fprintf(f,
				    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\" stroke=\"#fff\" "
				    "stroke-width=\"1.5\"/>\n",
				    fx(&fr, run->t_target), y, r->modes[run->mode].color);
		}
	}
	x = legend_modes(f, r, fr.left, 22);
	if (r->meta.repeats > 1)
		fprintf(f,
		    "<text class=\"legend muted\" x=\"%.1f\" y=\"26\">(faint: the other "
		    "repeats)</text>\n",
		    x);
	if (r->target != RP_NO_VALUE)
		fprintf(f,
		    "<line class=\"target\" x1=\"%.1f\" x2=\"%.1f\" y1=\"22\" y2=\"22\"/>"
		    "<text class=\"legend\" x=\"%.1f\" y=\"26\">target loss%s</text>\n",
		    W - 250, W - 228, W - 222, by_updates ? "" : " (dot: reached)");
	fputs("</svg>\n", f);
}

/* rmse_chart draws the fleet's test RMSE after each epoch against time. */
void
rp_rmse_chart(FILE *f, const psf_report *r)
{
	frame fr = {90, 46, W - 90 - 24, 260, 0, 0, INFINITY, -INFINITY};
	double naive = 0;
	size_t n_naive = 0;

	for (size_t i = 0; i < r->n_runs; i++) {
		const rp_run *run = &r->runs[i];

		if (!run->info.ok || run->mode == SIZE_MAX || run->n_curve == 0)
			continue;
		fr.xhi = fmax(fr.xhi, run->t_end);
		for (size_t k = 0; k < run->n_epochs; k++) {
			fr.ylo = fmin(fr.ylo, run->epochs[k].rmse);
			fr.yhi = fmax(fr.yhi, run->epochs[k].rmse);
			fr.xhi = fmax(fr.xhi, run->epochs[k].t);
			naive += run->epochs[k].naive;
			n_naive++;
		}
	}
	if (n_naive > 0) {
		naive /= (double)n_naive;
		fr.ylo = fmin(fr.ylo, naive);
		fr.yhi = fmax(fr.yhi, naive);
	} else {
		fr.ylo = 0;
		fr.yhi = 1;
	}
	nice_range(&fr.xlo, &fr.xhi, 8);
	{
		double pad = (fr.yhi - fr.ylo) * 0.08;

		fr.ylo -= pad;
		fr.yhi += pad;
	}
	nice_range(&fr.ylo, &fr.yhi, 5);
	svg_open(f, "rmse-time", 370, "Fleet test RMSE after each epoch vs wall-clock time");
	draw_frame(f, &fr,
	    &(axes_spec){.nx = 8,
	        .ny = 5,
	        .clip = "rmse-time",
	        .xlabel = "wall-clock seconds since the first step",
	        .ylabel = "fleet test RMSE"});
	if (n_naive > 0)
		fprintf(f,
		    "<line class=\"naive\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
		    "<text class=\"note\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">naive forecast "
		    "%.5g</text>\n",
		    fr.left, fr.left + fr.width, fy(&fr, naive), fy(&fr, naive),
		    fr.left + fr.width - 6, fy(&fr, naive) - 6, naive);
	for (size_t i = 0; i < r->n_runs; i++) {
		const rp_run *run = &r->runs[i];
		const char *op = run->info.repeat == 0 ? "1" : "0.45";

		if (!run->info.ok || run->mode == SIZE_MAX || run->n_epochs == 0)
			continue;
		fprintf(f,
		    "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-opacity=\"%s\" "
		    "points=\"",
		    r->modes[run->mode].color, op);
		for (size_t k = 0; k < run->n_epochs; k++)
			fprintf(f, "%.1f,%.1f ", fx(&fr, run->epochs[k].t),
			    fy(&fr, run->epochs[k].rmse));
		fputs("\"/>\n", f);
		for (size_t k = 0; k < run->n_epochs; k++)
			fprintf(f,
			    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" fill-opacity=\"%s\">"
			    "<title>%s repeat %u, epoch %lld: %.6g</title></circle>\n",
			    fx(&fr, run->epochs[k].t), fy(&fr, run->epochs[k].rmse),
			    r->modes[run->mode].color, op, r->modes[run->mode].name,
			    run->info.repeat + 1, (long long)run->epochs[k].epoch,
			    run->epochs[k].rmse);
	}
	legend_modes(f, r, fr.left, 22);
	fputs("</svg>\n", f);
}

/* ---------------------------------------------------------------- staleness */

#define ST_BINS 20 /* at most this many bars per panel */

/* st_bins chooses a mode's staleness bins: one per value when its largest is
 * below ST_BINS, else buckets of a 1-2-5 width; counts the pushes per bin and
 * returns the number of bins (at least 4). *width gets the bucket width. */
static size_t
st_bins(const rp_mode *m, size_t *cnt, int64_t *width)
{
	int64_t w = 1, top = m->st_max < 0 ? 0 : m->st_max;
	size_t nb;

	while ((top / w) + 1 > ST_BINS) {
		int64_t lead = w;

		while (lead >= 10)
			lead /= 10;
		w = lead == 2 ? w / 2 * 5 : w * 2; /* 1, 2, 5, 10, 20, 50, ... */
	}
	nb = (size_t)(top / w) + 1;
	if (nb < 4)
		nb = 4;
	memset(cnt, 0, nb * sizeof(*cnt));
	for (size_t i = 0; i < m->n_staleness; i++)
		cnt[(size_t)((m->staleness[i] < 0 ? 0 : m->staleness[i]) / w)]++;
	*width = w;
	return nb;
}

/* staleness_chart draws one panel per mode: the share of pushes at each
 * staleness (each panel its own x range), on a log scale so a tail of 0.1 %
 * still shows. */
void
rp_staleness_chart(FILE *f, const psf_report *r)
{
	size_t n = 0, cols, rows, p = 0, nb;
	double pw, ph = 180, height, floor_pct = 100;
	size_t cnt[ST_BINS + 4];
	int64_t w;
	char lab[48];

	for (size_t k = 0; k < r->n_modes; k++)
		if (r->modes[k].n_runs > 0) {
			n++;
			if (r->modes[k].n_staleness > 0)
				floor_pct =
				    fmin(floor_pct, 100.0 / (double)r->modes[k].n_staleness);
		}
	/* the log axis starts at the decade below one push in the largest mode */
	floor_pct = fmin(pow(10, floor(log10(floor_pct))), 0.1);
	cols = n < 4 ? (n ? n : 1) : 4;
	rows = n == 0 ? 1 : (n + cols - 1) / cols;
	pw = (W - 20) / (double)cols;
	height = (double)rows * (ph + 100) + 10;
	svg_open(f, "staleness", height, "Staleness of every push, per mode");
	for (size_t k = 0; k < r->n_modes; k++) {
		const rp_mode *m = &r->modes[k];
		frame fr;
		double bw;

		if (m->n_runs == 0)
			continue;
		nb = st_bins(m, cnt, &w);
		fr = (frame){20 + (double)(p % cols) * pw + 62,
		    10 + (double)(p / cols) * (ph + 100) + 44, pw - 62 - 14, ph, -0.5,
		    (double)nb - 0.5, log10(floor_pct), 2};
		p++;
		if (w > 1)
			snprintf(lab, sizeof(lab), "staleness (clocks; bars of %lld)",
			    (long long)w);
		else
			snprintf(lab, sizeof(lab), "staleness (clocks)");
		draw_frame(f, &fr,
		    &(axes_spec){.ylog = 1,
		        .xlabel = lab,
		        .xlabel_dy = 36,
		        .ylabel_dx = 50,
		        .ylabel = p % cols == 1 || cols == 1 ? "share of pushes (log)" : NULL});
		bw = fr.width / (double)nb;
		for (size_t b = 0; b < nb; b++) {
			double pct =
			    m->n_staleness ? 100.0 * (double)cnt[b] / (double)m->n_staleness : 0;
			double y = fy(&fr, log10(fmax(pct, floor_pct)));
			long long lo = (long long)((int64_t)b * w), hi = lo + (long long)w - 1;

			if (w > 1)
				snprintf(lab, sizeof(lab), "%lld-%lld", lo, hi);
			else
				snprintf(lab, sizeof(lab), "%lld", lo);
			if (cnt[b] > 0)
				fprintf(f,
				    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
				    "<title>%s, staleness %s: %zu pushes (%.3g%%)</title></rect>\n",
				    fr.left + (double)b * bw + bw * 0.12,
				    fmin(y, fr.top + fr.height - 1.5), bw * 0.76,
				    fmax(fr.top + fr.height - y, 1.5), m->color, m->name, lab,
				    cnt[b], pct);
			if (nb <= 10 || b % 5 == 0) {
				snprintf(lab, sizeof(lab), "%lld", lo);
				fprintf(f,
				    "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s"
				    "</text>\n",
				    fr.left + ((double)b + 0.5) * bw, fr.top + fr.height + 16, lab);
			}
		}
		fprintf(f, "<text class=\"panel\" x=\"%.1f\" y=\"%.1f\" fill=\"%s\">", fr.left,
		    fr.top - 24, m->color);
		rp_html_esc(f, m->name);
		fprintf(f,
		    "</text><text class=\"note\" x=\"%.1f\" y=\"%.1f\">p50 %lld · p99 %lld · "
		    "max %lld</text>\n",
		    fr.left, fr.top - 8, (long long)m->st_p50, (long long)m->st_p99,
		    (long long)m->st_max);
	}
	fputs("</svg>\n", f);
}

/* ---------------------------------------------------------------- time split */

void
rp_idle_chart(FILE *f, const psf_report *r)
{
	size_t bars = 0, groups = 0;
	double top = 0, slot, x;
	frame fr = {90, 46, W - 90 - 24, 280, 0, 1, 0, 0};

	for (size_t k = 0; k < r->n_modes; k++) {
		const rp_mode *m = &r->modes[k];

		if (m->n_runs == 0)
			continue;
		groups++;
		bars += m->n_tr;
		for (size_t t = 0; t < m->n_tr; t++)
			top = fmax(top, m->tr_wait[t] + m->tr_compute[t] + m->tr_other[t]);
	}
	fr.yhi = top;
	nice_range(&fr.ylo, &fr.yhi, 5);
	slot = fr.width / ((double)bars + 1.2 * (double)groups + 0.2);
	svg_open(f, "idle", 420, "Where each trainer's time went, per mode");
	draw_frame(f, &fr, &(axes_spec){.ny = 5, .ylabel = "seconds per trainer (mean of runs)"});
	/* at most 70 units a bar (few trainers), the groups centred */
	x = fr.left + 0.8 * slot;
	if (slot > 70) {
		slot = 70;
		x = fr.left + (fr.width - slot * ((double)bars + 1.2 * (double)groups - 1.2)) / 2;
	}
	for (size_t k = 0; k < r->n_modes; k++) {
		const rp_mode *m = &r->modes[k];
		double gx = x;

		if (m->n_runs == 0)
			continue;
		for (size_t t = 0; t < m->n_tr; t++) {
			double parts[3] = {m->tr_compute[t], m->tr_wait[t], m->tr_other[t]};
			const char *cols[3] = {C_COMPUTE, C_WAIT, C_OTHER};
			const char *names[3] = {"compute", "waiting on the ps (pull + push)",
			    "other (injected delay, evaluation, restart)"};
			double base = 0, span = parts[0] + parts[1] + parts[2];

			for (int c = 0; c < 3; c++) {
				double y0 = fy(&fr, base), y1 = fy(&fr, base + parts[c]);

				if (parts[c] > 0)
					fprintf(f,
					    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
					    "fill=\"%s\"><title>%s %s: %s %.2f s</title></rect>\n",
					    x + slot * 0.08, y1, slot * 0.84, y0 - y1, cols[c],
					    m->name, m->tr_ids[t], names[c], parts[c]);
				base += parts[c];
			}
			if (span > 0)
				fprintf(f,
				    "<text class=\"note\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f%%"
				    "</text>\n",
				    x + slot / 2, fy(&fr, span) - 5, 100 * parts[1] / span);
			fprintf(f,
			    "<text class=\"tick small\" transform=\"translate(%.1f,%.1f) rotate(-35)\" "
			    "text-anchor=\"end\">%s</text>\n",
			    x + slot / 2 + 3, fr.top + fr.height + 13, m->tr_ids[t]);
			x += slot;
		}
		fprintf(f,
		    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
		    "stroke-width=\"4\"/><text class=\"panel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
		    "fill=\"%s\">",
		    gx + slot * 0.08, x - slot * 0.08, fr.top + fr.height + 58,
		    fr.top + fr.height + 58, m->color, (gx + x) / 2, fr.top + fr.height + 78,
		    m->color);
		rp_html_esc(f, m->name);
		fputs("</text>\n", f);
		x += 1.2 * slot;
	}
	{
		const char *cols[3] = {C_COMPUTE, C_WAIT, C_OTHER};
		const char *names[3] = {"compute",
		    "waiting on the ps (pull + push; % above the bar)",
		    "other: injected delay, evaluation, restart"};
		double lx = fr.left;

		for (int c = 0; c < 3; c++) {
			legend_box(f, lx, cols[c], NULL, names[c]);
			lx += 40 + 6.9 * (double)strlen(names[c]);
		}
	}
	fputs("</svg>\n", f);
}

/* ---------------------------------------------------------------- time to target */

void
rp_target_chart(FILE *f, const psf_report *r)
{
	size_t n = 0, row = 0;
	double top = 0, bh = 34;
	frame fr = {110, 46, W - 110 - 150, 0, 0, 0, 0, 1};

	for (size_t k = 0; k < r->n_modes; k++) {
		const rp_mode *m = &r->modes[k];

		if (m->n_runs == 0)
			continue;
		n++;
		top = fmax(top, m->train_s.mean + m->train_s.sd);
		if (m->to_target.n > 0)
			top = fmax(top, m->to_target.mean + m->to_target.sd);
	}
	fr.height = bh * (double)(n ? n : 1) + 12;
	fr.xhi = top;
	nice_range(&fr.xlo, &fr.xhi, 8);
	svg_open(f, "target", fr.height + 110, "Seconds to reach the target loss, per mode");
	draw_frame(f, &fr,
	    &(axes_spec){.nx = 8,
	        .xlabel = "wall-clock seconds since the first step "
	                  "(mean of runs; whisker: ± 1 sd)"});
	for (size_t k = 0; k < r->n_modes; k++) {
		const rp_mode *m = &r->modes[k];
		double y = fr.top + 8 + (double)row++ * bh, x0 = fx(&fr, 0);
		char txt[96];

		if (m->n_runs == 0) {
			row--;
			continue;
		}
		fprintf(f,
		    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
		    "fill-opacity=\"0.18\"><title>%s: training took %.2f s</title></rect>\n",
		    x0, y, fx(&fr, m->train_s.mean) - x0, bh - 10, m->color, m->name,
		    m->train_s.mean);
		fprintf(f,
		    "<text class=\"panel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"%s\">",
		    fr.left - 10, y + bh / 2, m->color);
		rp_html_esc(f, m->name);
		fputs("</text>\n", f);
		if (m->to_target.n == 0) {
			fprintf(f,
			    "<text class=\"note\" x=\"%.1f\" y=\"%.1f\">not reached (training took "
			    "%.1f s)</text>\n",
			    x0 + 8, y + bh / 2, m->train_s.mean);
			continue;
		}
		fprintf(f,
		    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
		    x0, y, fx(&fr, m->to_target.mean) - x0, bh - 10, m->color);
		if (m->to_target.n > 1)
			fprintf(f,
			    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#222\" "
			    "stroke-width=\"1.5\"/>\n",
			    fx(&fr, fmax(0, m->to_target.mean - m->to_target.sd)),
			    fx(&fr, m->to_target.mean + m->to_target.sd), y + (bh - 10) / 2,
			    y + (bh - 10) / 2);
		if (m->speedup > 0 && r->baseline >= 0 && (int)k != r->baseline)
			snprintf(txt, sizeof(txt), "%.2f s · %.2fx %s · training %.1f s",
			    m->to_target.mean, m->speedup, r->modes[r->baseline].name,
			    m->train_s.mean);
		else
			snprintf(txt, sizeof(txt), "%.2f s · training %.1f s", m->to_target.mean,
			    m->train_s.mean);
		fprintf(f, "<text class=\"note strong\" x=\"%.1f\" y=\"%.1f\">",
		    fmax(fx(&fr, m->to_target.mean + m->to_target.sd), fx(&fr, m->train_s.mean)) +
		        8,
		    y + bh / 2);
		rp_html_esc(f, txt);
		if (m->to_target.n < m->n_runs)
			fprintf(f, " (%zu of %zu runs)", m->to_target.n, m->n_runs);
		fputs("</text>\n", f);
	}
	legend_box(f, fr.left, "#777", NULL, "time to the target loss");
	legend_box(f, fr.left + 220, "#777", "0.18", "whole training");
	fputs("</svg>\n", f);
}

/* ---------------------------------------------------------------- shared (chart.h) */

double
rp_chart_x(const rp_frame *f, double v)
{
	return fx(f, v);
}

double
rp_chart_y(const rp_frame *f, double v)
{
	return fy(f, v);
}

void
rp_chart_nice_range(double *lo, double *hi, int n)
{
	nice_range(lo, hi, n);
}

void
rp_chart_open(FILE *f, const char *id, double height, const char *title)
{
	svg_open(f, id, height, title);
}

void
rp_chart_axes(FILE *f, const rp_frame *fr, const rp_axes *a)
{
	draw_frame(f, fr, a);
}

void
rp_chart_legend(FILE *f, double x, const char *color, const char *opacity, const char *text)
{
	legend_box(f, x, color, opacity, text);
}
