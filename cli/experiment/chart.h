/* chart.h -- the SVG chart primitives of report.html (report_chart.c), shared
 * by `psfleet experiment` and `psfleet backtest`: a plot frame with grid, ticks
 * and axis titles, the coordinate maps, and legend entries. Every chart is
 * RP_CHART_W viewBox units wide; the page's CSS (classes plot, grid, axis, tick,
 * label, legend) comes from the report's HTML head. */
#ifndef PSF_CLI_EXPERIMENT_CHART_H
#define PSF_CLI_EXPERIMENT_CHART_H

#include <stdio.h>

#define RP_CHART_W 960.0

/* A plot area in viewBox units and the data ranges it maps. */
typedef struct rp_frame {
	double left, top, width, height;
	double xlo, xhi, ylo, yhi;
} rp_frame;

/* What rp_chart_axes draws around a plot area. */
typedef struct rp_axes {
	int nx, ny;         /* about this many linear ticks; 0 = none on that axis */
	int ylog;           /* y is log10 of a percentage: a grid line per decade */
	const char *xlabel; /* under the plot, with the bottom axis line; NULL = neither */
	const char *ylabel; /* rotated, left of the plot; NULL = none */
	double xlabel_dy;   /* the x title's distance below the plot; 0 = 40 */
	double ylabel_dx;   /* the y title's distance left of the plot; 0 = 68 */
	const char *clip;   /* non-NULL: a clip path clip-<clip> for the data */
} rp_axes;

/* rp_chart_x / rp_chart_y map a data value to viewBox units. Cannot fail. */
double rp_chart_x(const rp_frame *f, double v);
double rp_chart_y(const rp_frame *f, double v);

/* rp_chart_nice_range widens [lo, hi] to whole ticks (about n). Cannot fail. */
void rp_chart_nice_range(double *lo, double *hi, int n);

/* rp_chart_open starts <svg id="chart-ID"> of the given height with a title;
 * the caller ends it with "</svg>". Cannot fail (errors stay on f). */
void rp_chart_open(FILE *f, const char *id, double height, const char *title);

/* rp_chart_axes draws the plot area, grid, ticks, axis lines and titles. */
void rp_chart_axes(FILE *f, const rp_frame *fr, const rp_axes *a);

/* rp_chart_legend draws a legend entry at x above the plot: a colour box
 * (opacity: its fill-opacity, NULL = opaque) and its text. */
void rp_chart_legend(FILE *f, double x, const char *color, const char *opacity, const char *text);

/* rp_html_esc writes s to f with <, >, & and " as HTML entities (report_html.c). */
void rp_html_esc(FILE *f, const char *s);

#endif
