/* report_data.c -- the figures of an experiment from its trainers' traces: time
 * base, fleet loss curve, final test metrics, per-mode statistics, the target
 * loss and the time to reach it (report.h gives every definition). */
#define _GNU_SOURCE /* strverscmp: trainer-2 before trainer-10 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/experiment/report_internal.h"
#include "lib/base/util.h"

#define CURVE_POINTS 400
#define MAX_TRAINERS 256

/* One colour per mode, in the order given: distinct in print and for the
 * common forms of colour blindness (Okabe-Ito, darkened for white paper). */
static const char *const palette[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00",
    "#56b4e9", "#7a5c00", "#444444"};

/* ---------------------------------------------------------------- traces */

/* numbers parses exactly n comma-separated numbers; returns 0 on success (a
 * header or a torn last line fails and is skipped). */
static int
numbers(char *line, double *v, size_t n)
{
	char *f[16], *end;

	if (n > 16 || rp_split(line, f, 16) != n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		v[i] = strtod(f[i], &end);
		if (end == f[i] || (*end != '\0' && *end != '\r') || !isfinite(v[i]))
			return -1;
	}
	return 0;
}

/* load_lines parses every line of path with n numbers into a new array of
 * n-double records. A missing file is an empty trace. */
static psf_err
load_lines(const char *path, size_t n, double **out, size_t *n_out)
{
	char *text = NULL, *save = NULL;
	size_t len = 0, cap = 1, k = 0;
	double *v;
	psf_err err = psf_read_file(path, &text, &len);

	*out = NULL;
	*n_out = 0;
	if (err == PSF_ENOENT)
		return PSF_OK;
	if (err != PSF_OK)
		return err;
	for (size_t i = 0; i < len; i++)
		cap += text[i] == '\n';
	if ((v = malloc(cap * n * sizeof(double))) == NULL) {
		free(text);
		return PSF_ENOMEM;
	}
	for (char *ln = strtok_r(text, "\n", &save); ln != NULL && k < cap;
	     ln = strtok_r(NULL, "\n", &save))
		if (numbers(ln, v + k * n, n) == 0)
			k++;
	free(text);
	*out = v;
	*n_out = k;
	return PSF_OK;
}

static int
cmp_id(const void *a, const void *b)
{
	return strverscmp(((const rp_trainer *)a)->id, ((const rp_trainer *)b)->id);
}

/* list_trainers finds the trainers of a run from its trace files. */
static psf_err
list_trainers(const char *trace_dir, rp_run *run)
{
	DIR *d = opendir(trace_dir);
	struct dirent *e;

	if (d == NULL)
		return errno == ENOENT ? PSF_ENOENT : PSF_ESYS;
	if ((run->tr = calloc(MAX_TRAINERS, sizeof(*run->tr))) == NULL) {
		closedir(d);
		return PSF_ENOMEM;
	}
	while ((e = readdir(d)) != NULL && run->n_tr < MAX_TRAINERS) {
		size_t len = strlen(e->d_name);

		if (len < 5 || len >= sizeof(run->tr[0].id) + 4 ||
		    strcmp(e->d_name + len - 4, ".csv") != 0 ||
		    (len > 9 && strcmp(e->d_name + len - 9, "-eval.csv") == 0))
			continue;
		snprintf(run->tr[run->n_tr].id, sizeof(run->tr[0].id), "%.*s", (int)(len - 4),
		    e->d_name);
		run->n_tr++;
	}
	closedir(d);
	qsort(run->tr, run->n_tr, sizeof(*run->tr), cmp_id);
	return run->n_tr > 0 ? PSF_OK : PSF_ENOENT;
}

/* load_trainer reads one trainer's traces; times stay absolute until
 * rebase_times. */
static psf_err
load_trainer(const char *trace_dir, rp_trainer *tr)
{
	char path[3 * PSF_REPORT_PATH_LEN];
	double *v = NULL;
	size_t n = 0;
	psf_err err;

	snprintf(path, sizeof(path), "%s/%s.csv", trace_dir, tr->id);
	if ((err = load_lines(path, 9, &v, &n)) != PSF_OK)
		return err;
	if ((tr->steps = calloc(n ? n : 1, sizeof(*tr->steps))) == NULL) {
		free(v);
		return PSF_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const double *x = v + i * 9;

		tr->steps[i] = (rp_step){.t = x[0],
		    .step = (int64_t)x[1],
		    .epoch = (int64_t)x[2],
		    .loss = x[3],
		    .staleness = (int64_t)x[4],
		    .pull = x[5],
		    .compute = x[6],
		    .push = x[7],
		    .version = (uint64_t)x[8]};
	}
	tr->n_steps = n;
	free(v);
	snprintf(path, sizeof(path), "%s/%s-eval.csv", trace_dir, tr->id);
	if ((err = load_lines(path, 9, &v, &n)) != PSF_OK)
		return err;
	if ((tr->evals = calloc(n ? n : 1, sizeof(*tr->evals))) == NULL) {
		free(v);
		return PSF_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const double *x = v + i * 9;

		tr->evals[i] = (rp_eval){.t = x[0],
		    .step = (int64_t)x[1],
		    .epoch = (int64_t)x[2],
		    .train_loss = x[3],
		    .rmse = x[4],
		    .mae = x[5],
		    .naive = x[6],
		    .n = (uint64_t)x[7],
		    .finished = x[8] != 0};
	}
	tr->n_evals = n;
	free(v);
	return PSF_OK;
}

/* rebase_times moves t = 0 to the start of the run's first step and fills each
 * trainer's time split. */
static void
rebase_times(rp_run *run)
{
	double t0 = INFINITY;

	for (size_t i = 0; i < run->n_tr; i++) {
		const rp_step *s = run->tr[i].steps;

		if (run->tr[i].n_steps > 0 && s[0].t - (s[0].pull + s[0].compute + s[0].push) < t0)
			t0 = s[0].t - (s[0].pull + s[0].compute + s[0].push);
	}
	for (size_t i = 0; i < run->n_tr; i++) {
		rp_trainer *tr = &run->tr[i];

		for (size_t k = 0; k < tr->n_steps; k++) {
			tr->steps[k].t -= t0;
			tr->wait += tr->steps[k].pull + tr->steps[k].push;
			tr->compute += tr->steps[k].compute;
		}
		for (size_t k = 0; k < tr->n_evals; k++)
			tr->evals[k].t -= t0;
		if (tr->n_steps > 0) {
			const rp_step *s = &tr->steps[0];

			tr->span = tr->steps[tr->n_steps - 1].t -
			    (s->t - (s->pull + s->compute + s->push));
		}
		tr->other = tr->span - tr->wait - tr->compute;
		if (tr->other < 0)
			tr->other = 0;
		if (tr->n_steps > 0 && tr->steps[tr->n_steps - 1].t > run->t_end)
			run->t_end = tr->steps[tr->n_steps - 1].t;
		run->wait += tr->wait;
		run->compute += tr->compute;
		run->other += tr->other;
		run->span += tr->span;
	}
}

/* ---------------------------------------------------------------- figures */

typedef struct merged {
	double t, loss;
	uint64_t version;
} merged;

static int
cmp_merged(const void *a, const void *b)
{
	double x = ((const merged *)a)->t, y = ((const merged *)b)->t;

	return x < y ? -1 : x > y;
}

/* fleet_curve merges every step in time order, smooths the loss over the last
 * W steps and samples the curve. */
static psf_err
fleet_curve(rp_run *run)
{
	size_t n = 0, k = 0, stride;
	merged *m;
	double sum = 0;
	uint64_t top = 0;

	for (size_t i = 0; i < run->n_tr; i++)
		n += run->tr[i].n_steps;
	if (n == 0)
		return PSF_ENOENT;
	m = malloc(n * sizeof(*m));
	run->mt = malloc(n * sizeof(double));
	run->mloss = malloc(n * sizeof(double));
	run->curve = malloc((CURVE_POINTS + 2) * sizeof(*run->curve));
	run->staleness = malloc(n * sizeof(int64_t));
	if (m == NULL || !run->mt || !run->mloss || !run->curve || !run->staleness) {
		free(m);
		return PSF_ENOMEM;
	}
	for (size_t i = 0; i < run->n_tr; i++)
		for (size_t j = 0; j < run->tr[i].n_steps; j++) {
			const rp_step *s = &run->tr[i].steps[j];

			m[k] = (merged){s->t, s->loss, s->version};
			run->staleness[k++] = s->staleness;
		}
	qsort(m, n, sizeof(*m), cmp_merged);
	run->n_merged = run->n_staleness = run->total_steps = n;
	run->window = n / 50 > 2 * run->n_tr ? n / 50 : 2 * run->n_tr;
	stride = n / CURVE_POINTS > 0 ? n / CURVE_POINTS : 1;
	for (size_t i = 0; i < n; i++) {
		sum += m[i].loss;
		if (i >= run->window)
			sum -= m[i - run->window].loss;
		run->mt[i] = m[i].t;
		run->mloss[i] = sum / (double)(i + 1 < run->window ? i + 1 : run->window);
		if (m[i].version > top)
			top = m[i].version;
		if ((i + 1) % stride == 0 || i + 1 == n) {
			if (run->n_curve == CURVE_POINTS + 2)
				run->n_curve--; /* the last point always goes in */
			run->curve[run->n_curve++] = (rp_point){m[i].t, i + 1, top, run->mloss[i]};
		}
	}
	run->final_version = top;
	run->final_loss = run->mloss[n - 1];
	free(m);
	return PSF_OK;
}

/* combine adds one evaluation to RMSE sums. */
static void
combine(const rp_eval *e, double *sse, double *sae, double *nsse, uint64_t *n)
{
	*sse += e->rmse * e->rmse * (double)e->n;
	*sae += e->mae * (double)e->n;
	*nsse += e->naive * e->naive * (double)e->n;
	*n += e->n;
}

/* final_metrics: the fleet's test errors from each trainer's last (finished)
 * evaluation, and the fleet RMSE after each epoch every trainer reported. */
static psf_err
final_metrics(rp_run *run)
{
	double sse = 0, sae = 0, nsse = 0;
	uint64_t n = 0;
	int64_t max_epoch = 0;

	for (size_t i = 0; i < run->n_tr; i++) {
		const rp_trainer *tr = &run->tr[i];
		const rp_eval *last = NULL;

		for (size_t k = 0; k < tr->n_evals; k++) {
			if (last == NULL || !last->finished || tr->evals[k].finished)
				last = &tr->evals[k];
			if (tr->evals[k].epoch > max_epoch)
				max_epoch = tr->evals[k].epoch;
		}
		if (last != NULL)
			combine(last, &sse, &sae, &nsse, &n);
	}
	run->test_n = n;
	run->rmse = n ? sqrt(sse / (double)n) : RP_NO_VALUE;
	run->mae = n ? sae / (double)n : RP_NO_VALUE;
	run->naive = n ? sqrt(nsse / (double)n) : RP_NO_VALUE;
	if ((run->epochs = calloc((size_t)max_epoch + 1, sizeof(*run->epochs))) == NULL)
		return PSF_ENOMEM;
	for (int64_t e = 1; e <= max_epoch; e++) {
		double t = 0;
		size_t have = 0;

		sse = sae = nsse = 0;
		n = 0;
		for (size_t i = 0; i < run->n_tr; i++) {
			const rp_eval *at = NULL;

			for (size_t k = 0; k < run->tr[i].n_evals; k++)
				if (run->tr[i].evals[k].epoch == e)
					at = &run->tr[i].evals[k];
			if (at == NULL)
				continue;
			have++;
			combine(at, &sse, &sae, &nsse, &n);
			if (at->t > t)
				t = at->t;
		}
		if (have == run->n_tr && n > 0)
			run->epochs[run->n_epochs++] =
			    (rp_epoch){t, sqrt(sse / (double)n), sqrt(nsse / (double)n), e};
	}
	return PSF_OK;
}

static psf_err
load_run(const char *out_dir, rp_run *run)
{
	char dir[2 * PSF_REPORT_PATH_LEN + 16];
	psf_err err;

	run->t_target = RP_NO_VALUE;
	run->t_test = RP_NO_VALUE;
	snprintf(dir, sizeof(dir), "%s/%s/trace", out_dir, run->info.run_dir);
	if ((err = list_trainers(dir, run)) != PSF_OK)
		return err;
	for (size_t i = 0; i < run->n_tr; i++)
		if ((err = load_trainer(dir, &run->tr[i])) != PSF_OK)
			return err;
	rebase_times(run);
	if ((err = fleet_curve(run)) != PSF_OK)
		return err;
	return final_metrics(run);
}

static void
free_run(rp_run *run)
{
	for (size_t i = 0; run->tr != NULL && i < run->n_tr; i++) {
		free(run->tr[i].steps);
		free(run->tr[i].evals);
	}
	free(run->tr);
	free(run->mt);
	free(run->mloss);
	free(run->curve);
	free(run->epochs);
	free(run->staleness);
}

/* ---------------------------------------------------------------- per mode */

typedef struct acc {
	double v[64];
	size_t n;
} acc;

static void
acc_add(acc *a, double v)
{
	if (a->n < PSF_ARRAY_LEN(a->v) && v != RP_NO_VALUE && isfinite(v))
		a->v[a->n++] = v;
}

static rp_stat
acc_stat(const acc *a)
{
	rp_stat s = {RP_NO_VALUE, 0, a->n};
	double sum = 0, ss = 0;

	if (a->n == 0)
		return s;
	for (size_t i = 0; i < a->n; i++)
		sum += a->v[i];
	s.mean = sum / (double)a->n;
	for (size_t i = 0; i < a->n; i++)
		ss += (a->v[i] - s.mean) * (a->v[i] - s.mean);
	s.sd = a->n > 1 ? sqrt(ss / (double)(a->n - 1)) : 0;
	return s;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* nearest_rank returns the p-quantile of sorted v (nearest-rank method). */
static int64_t
nearest_rank(const int64_t *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p * (double)n);

	return n == 0 ? 0 : v[k > 0 ? k - 1 : 0];
}

/* make_modes creates the modes in the order of meta.modes and files each run
 * under its mode. */
static psf_err
make_modes(psf_report *r)
{
	char list[sizeof(r->meta.modes)], *save = NULL;

	snprintf(list, sizeof(list), "%s", r->meta.modes);
	if ((r->modes = calloc(PSF_ARRAY_LEN(list), sizeof(*r->modes))) == NULL)
		return PSF_ENOMEM;
	for (char *tok = strtok_r(list, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		rp_mode *m = &r->modes[r->n_modes];

		snprintf(m->name, sizeof(m->name), "%s", tok);
		m->color = palette[r->n_modes % PSF_ARRAY_LEN(palette)];
		r->n_modes++;
	}
	for (size_t i = 0; i < r->n_runs; i++) {
		r->runs[i].mode = SIZE_MAX;
		for (size_t k = 0; k < r->n_modes; k++)
			if (strcmp(r->runs[i].info.mode, r->modes[k].name) == 0)
				r->runs[i].mode = k;
	}
	return PSF_OK;
}

/* rp_usable: an ok run of a known mode whose traces loaded. */
int
rp_usable(const rp_run *run)
{
	return run->info.ok && run->mode != SIZE_MAX && run->n_merged > 0;
}

/* pick_target sets the target loss, its source, and each run's time to it. */
static void
pick_target(psf_report *r)
{
	acc a = {{0}, 0};

	r->baseline = -1;
	for (size_t k = 0; k < r->n_modes && r->baseline < 0; k++)
		if (strcmp(r->modes[k].name, "sync") == 0)
			r->baseline = (int)k;
	if (r->baseline < 0 && r->n_modes > 0)
		r->baseline = 0;
	r->target = RP_NO_VALUE;
	if (r->meta.target_factor <= 0)
		r->meta.target_factor = 1.05;
	if (r->meta.target_loss > 0) {
		r->target = r->meta.target_loss;
		snprintf(r->target_source, sizeof(r->target_source), "%s",
		    r->meta.target_from[0] ? r->meta.target_from : "training.target_loss");
	} else if (r->baseline >= 0) {
		for (size_t i = 0; i < r->n_runs; i++)
			if (rp_usable(&r->runs[i]) && r->runs[i].mode == (size_t)r->baseline)
				acc_add(&a, r->runs[i].final_loss);
		if (a.n > 0) {
			r->target = r->meta.target_factor * acc_stat(&a).mean;
			snprintf(r->target_source, sizeof(r->target_source),
			    "%.4g x the final smoothed "
			    "training loss of %s (mean of %zu run%s)",
			    r->meta.target_factor, r->modes[r->baseline].name, a.n,
			    a.n == 1 ? "" : "s");
		}
	}
	for (size_t i = 0; i < r->n_runs && r->target != RP_NO_VALUE; i++) {
		rp_run *run = &r->runs[i];

		for (size_t k = run->window ? run->window - 1 : 0;
		     rp_usable(run) && k < run->n_merged; k++)
			if (run->mloss[k] <= r->target) {
				run->t_target = run->mt[k];
				break;
			}
	}
}

/* RP_TEST_SHARE: the test target is the RMSE that achieves this share of the
 * baseline's improvement over the naive forecast (its mean final test RMSE vs
 * its naive RMSE). A test error on a fixed schedule converges; a smoothed batch
 * loss crossed once early is noise. */
#define RP_TEST_SHARE 0.9

/* pick_test_target sets the test-RMSE target and each run's time to it: the end
 * of the first epoch after which the fleet's test RMSE is at or below it. */
static void
pick_test_target(psf_report *r)
{
	acc rm = {{0}, 0}, nv = rm;

	r->test_target = RP_NO_VALUE;
	for (size_t i = 0; r->baseline >= 0 && i < r->n_runs; i++)
		if (rp_usable(&r->runs[i]) && r->runs[i].mode == (size_t)r->baseline &&
		    r->runs[i].test_n > 0) {
			acc_add(&rm, r->runs[i].rmse);
			acc_add(&nv, r->runs[i].naive);
		}
	if (rm.n == 0 || nv.n == 0)
		return;
	double rmse = acc_stat(&rm).mean, naive = acc_stat(&nv).mean;
	if (!(naive > rmse))
		return; /* the baseline does not beat the naive forecast: no meaningful target */
	r->test_target = naive - RP_TEST_SHARE * (naive - rmse);
	snprintf(r->test_target_source, sizeof(r->test_target_source),
	    "test RMSE reaching %.0f%% of %s's gain over the naive forecast (%.6g -> %.6g, "
	    "mean of %zu run%s), evaluated after every epoch",
	    100 * RP_TEST_SHARE, r->modes[r->baseline].name, naive, rmse, rm.n,
	    rm.n == 1 ? "" : "s");
	for (size_t i = 0; i < r->n_runs; i++) {
		rp_run *run = &r->runs[i];
		for (size_t e = 0; rp_usable(run) && e < run->n_epochs; e++)
			if (run->epochs[e].rmse <= r->test_target) {
				run->t_test = run->epochs[e].t;
				break;
			}
	}
}

/* mode_trainers averages each trainer's time split over the mode's runs. */
static psf_err
mode_trainers(psf_report *r, rp_mode *m, size_t k)
{
	size_t runs = 0;

	for (size_t i = 0; i < r->n_runs; i++)
		if (rp_usable(&r->runs[i]) && r->runs[i].mode == k && r->runs[i].n_tr > m->n_tr)
			m->n_tr = r->runs[i].n_tr;
	m->tr_wait = calloc(m->n_tr + 1, sizeof(double));
	m->tr_compute = calloc(m->n_tr + 1, sizeof(double));
	m->tr_other = calloc(m->n_tr + 1, sizeof(double));
	m->tr_ids = calloc(m->n_tr + 1, sizeof(*m->tr_ids));
	if (!m->tr_wait || !m->tr_compute || !m->tr_other || !m->tr_ids)
		return PSF_ENOMEM;
	for (size_t i = 0; i < r->n_runs; i++) {
		const rp_run *run = &r->runs[i];

		if (!rp_usable(run) || run->mode != k)
			continue;
		runs++;
		for (size_t t = 0; t < run->n_tr; t++) {
			m->tr_wait[t] += run->tr[t].wait;
			m->tr_compute[t] += run->tr[t].compute;
			m->tr_other[t] += run->tr[t].other;
			snprintf(m->tr_ids[t], sizeof(m->tr_ids[t]), "%s", run->tr[t].id);
		}
	}
	for (size_t t = 0; runs > 0 && t < m->n_tr; t++) {
		m->tr_wait[t] /= (double)runs;
		m->tr_compute[t] /= (double)runs;
		m->tr_other[t] /= (double)runs;
	}
	return PSF_OK;
}

static psf_err
summarise_mode(psf_report *r, size_t k)
{
	rp_mode *m = &r->modes[k];
	acc rmse = {{0}, 0}, mae = rmse, naive = rmse, loss = rmse, tgt = rmse, secs = rmse;
	acc tst = rmse;
	acc ups = rmse, sps = rmse, smp = rmse, idle = rmse;
	size_t n_st = 0, at = 0;
	double st_sum = 0;

	for (size_t i = 0; i < r->n_runs; i++) {
		const rp_run *run = &r->runs[i];

		if (!rp_usable(run) || run->mode != k)
			continue;
		m->n_runs++;
		acc_add(&rmse, run->rmse);
		acc_add(&mae, run->mae);
		acc_add(&naive, run->naive);
		acc_add(&loss, run->final_loss);
		acc_add(&tgt, run->t_target);
		acc_add(&tst, run->t_test);
		acc_add(&secs, run->t_end);
		if (run->t_end > 0) {
			acc_add(&ups, (double)run->final_version / run->t_end);
			acc_add(&sps, (double)run->total_steps / run->t_end);
			acc_add(&smp, (double)run->total_steps * r->meta.batch_size / run->t_end);
		}
		if (run->span > 0)
			acc_add(&idle, run->wait / run->span);
		n_st += run->n_staleness;
	}
	m->rmse = acc_stat(&rmse);
	m->mae = acc_stat(&mae);
	m->naive = acc_stat(&naive);
	m->loss = acc_stat(&loss);
	m->to_target = acc_stat(&tgt);
	m->to_test = acc_stat(&tst);
	m->train_s = acc_stat(&secs);
	m->updates_s = acc_stat(&ups);
	m->steps_s = acc_stat(&sps);
	m->samples_s = acc_stat(&smp);
	m->idle = acc_stat(&idle);
	if ((m->staleness = malloc((n_st ? n_st : 1) * sizeof(int64_t))) == NULL)
		return PSF_ENOMEM;
	for (size_t i = 0; i < r->n_runs; i++) {
		const rp_run *run = &r->runs[i];

		if (!rp_usable(run) || run->mode != k)
			continue;
		memcpy(m->staleness + at, run->staleness, run->n_staleness * sizeof(int64_t));
		at += run->n_staleness;
	}
	m->n_staleness = at;
	qsort(m->staleness, at, sizeof(int64_t), cmp_i64);
	for (size_t i = 0; i < at; i++)
		st_sum += (double)m->staleness[i];
	m->st_mean = at ? st_sum / (double)at : 0;
	m->st_p50 = nearest_rank(m->staleness, at, 0.50);
	m->st_p99 = nearest_rank(m->staleness, at, 0.99);
	m->st_max = at ? m->staleness[at - 1] : 0;
	return mode_trainers(r, m, k);
}

void
rp_report_fini(psf_report *r)
{
	for (size_t i = 0; r->runs != NULL && i < r->n_runs; i++)
		free_run(&r->runs[i]);
	free(r->runs);
	for (size_t k = 0; r->modes != NULL && k < r->n_modes; k++) {
		free(r->modes[k].staleness);
		free(r->modes[k].tr_wait);
		free(r->modes[k].tr_compute);
		free(r->modes[k].tr_other);
		free(r->modes[k].tr_ids);
	}
	free(r->modes);
}

psf_err
rp_compute(psf_report *r, const char *out_dir, char *errbuf, size_t errlen)
{
	size_t n_ok = 0;
	psf_err err;

	if ((err = make_modes(r)) != PSF_OK)
		return err;
	for (size_t i = 0; i < r->n_runs; i++) {
		rp_run *run = &r->runs[i];

		if (!run->info.ok || run->mode == SIZE_MAX)
			continue;
		err = load_run(out_dir, run);
		if (err == PSF_ENOMEM)
			return err;
		n_ok += err == PSF_OK;
	}
	if (n_ok == 0)
		return rp_fail(errbuf, errlen, PSF_ENOENT,
		    "%s: no finished run with traces to report", out_dir);
	pick_target(r);
	pick_test_target(r);
	for (size_t k = 0; k < r->n_modes; k++)
		if ((err = summarise_mode(r, k)) != PSF_OK)
			return err;
	for (size_t k = 0; r->baseline >= 0 && k < r->n_modes; k++) {
		const rp_stat *b = &r->modes[r->baseline].to_target, *s = &r->modes[k].to_target;

		if (b->n > 0 && s->n > 0 && s->mean > 0)
			r->modes[k].speedup = b->mean / s->mean;
		b = &r->modes[r->baseline].to_test;
		s = &r->modes[k].to_test;
		r->modes[k].test_noise = -1;
		if (b->n > 0 && s->n > 0 && s->mean > 0)
			r->modes[k].test_speedup = b->mean / s->mean;
		/* within the noise: the means differ by less than twice the standard
		 * error of their difference */
		if (b->n > 1 && s->n > 1)
			r->modes[k].test_noise = fabs(b->mean - s->mean) <
			    2 * sqrt(b->sd * b->sd / (double)b->n + s->sd * s->sd / (double)s->n);
	}
	return PSF_OK;
}
