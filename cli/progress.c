/* progress.c -- health probes, /metrics scraping, Stats, and the display of
 * `psfleet up`. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/http_client.h"
#include "cli/progress.h"
#include "lib/base/util.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "lib/runtime/runtime.h"

#define LIVE_MAX_TRAINERS 16 /* rows in the live block; more are summarised */
#define PLAIN_MAX_TRAINERS 4 /* trainers named in a plain line; more are summarised */

struct psf_progress {
	const psf_config *cfg;
	FILE *out;
	bool live;
	int lines; /* lines of the live block on screen */
	char token[256];
	psf_rpc_client_opts copts;
	psf_rpc_client **rpc;           /* per node, opened on first use */
	psf_trainer_view *views;        /* per node; used for trainers */
	Psfleet__V1__StatsReply *stats; /* ps0's latest Stats, or NULL */
	char ps_alert[200];             /* "ps0 not ready: <reason>" from the last poll, or "" */
	uint64_t t0_ms;                 /* training start; 0 = not yet */
};

psf_err
psf_progress_new(const psf_config *cfg, FILE *out, bool live, psf_progress **out_p)
{
	psf_progress *p = calloc(1, sizeof(*p));
	psf_err err;

	if (p == NULL)
		return PSF_ENOMEM;
	p->cfg = cfg;
	p->out = out;
	p->live = live;
	if ((err = psf_runtime_client_opts(cfg, p->token, sizeof(p->token), &p->copts)) != PSF_OK) {
		free(p);
		return err;
	}
	p->copts.reconnect_min_ms = 50;
	p->copts.reconnect_max_ms = 500;
	p->rpc = calloc(cfg->n_nodes, sizeof(*p->rpc));
	p->views = calloc(cfg->n_nodes, sizeof(*p->views));
	if (p->rpc == NULL || p->views == NULL) {
		psf_progress_free(p);
		return PSF_ENOMEM;
	}
	*out_p = p;
	return PSF_OK;
}

void
psf_progress_free(psf_progress *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; p->rpc != NULL && i < p->cfg->n_nodes; i++)
		psf_rpc_client_close(p->rpc[i]);
	if (p->stats != NULL)
		protobuf_c_message_free_unpacked(&p->stats->base, NULL);
	free(p->rpc);
	free(p->views);
	free(p);
}

/* client returns node i's RPC client, opening it on first use; NULL when the
 * node has no listen URL or the URL cannot be dialed. */
static psf_rpc_client *
client(psf_progress *p, size_t i)
{
	const psf_node_cfg *n = &p->cfg->nodes[i];

	if (p->rpc[i] == NULL && n->listen != NULL &&
	    psf_rpc_client_open(psf_node_dial_url(n), &p->copts, &p->rpc[i]) != PSF_OK)
		p->rpc[i] = NULL;
	return p->rpc[i];
}

/* http_health asks GET /healthz; returns false when the node did not answer. */
static bool
http_health(const char *addr, uint32_t timeout_ms, psf_runtime_health *h)
{
	char *body = NULL;
	int status = 0;
	psf_err err = psf_http_get(addr, "/healthz", (int)timeout_ms, &status, &body);

	if (err != PSF_OK) {
		snprintf(h->reason, sizeof(h->reason), "no answer on http://%s/healthz: %s", addr,
		    psf_strerror(err));
		return false;
	}
	h->reachable = true;
	h->ready = status == 200;
	if (!h->ready) {
		const char *r = body != NULL ? body : "";
		size_t n;

		if (strncmp(r, "not ready: ", 11) == 0)
			r += 11;
		n = strcspn(r, "\r\n");
		if (n == 0)
			snprintf(h->reason, sizeof(h->reason), "HTTP %d", status);
		else
			snprintf(h->reason, sizeof(h->reason), "%.*s", (int)n, r);
	}
	free(body);
	return true;
}

/* rpc_health calls Admin/Health; returns false when it got no reply. */
static bool
rpc_health(psf_progress *p, size_t i, bool set_ready, uint32_t timeout_ms, psf_runtime_health *h)
{
	psf_rpc_client *c = client(p, i);
	Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
	Psfleet__V1__HealthReply *r = NULL;
	psf_rpc_call_opts o = {timeout_ms, 1, 0};
	psf_rpc_status st;
	psf_err err;

	if (c == NULL)
		return false;
	err = psf_rpc_client_call(c, PSF_M_HEALTH, &req.base,
	    &psfleet__v1__health_reply__descriptor, &o, (ProtobufCMessage **)&r, &st);
	if (err != PSF_OK) {
		if (set_ready)
			snprintf(h->reason, sizeof(h->reason), "no answer on %.60s: %.80s",
			    psf_node_dial_url(&p->cfg->nodes[i]),
			    st.message[0] ? st.message : psf_strerror(err));
		return false;
	}
	h->has_version = true;
	h->model_version = r->model_version;
	if (set_ready) {
		h->reachable = true;
		h->ready = r->ready;
		if (!r->ready)
			snprintf(h->reason, sizeof(h->reason), "%s",
			    r->reason[0] ? r->reason : "not ready");
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return true;
}

void
psf_progress_health(psf_progress *p, size_t i, bool want_version, uint32_t timeout_ms,
    psf_runtime_health *out)
{
	const psf_node_cfg *n = &p->cfg->nodes[i];
	psf_runtime_health h;
	bool by_http = n->metrics != NULL;

	memset(&h, 0, sizeof(h));
	h.via = by_http ? "http" : n->listen != NULL ? "rpc" : "none";
	if (by_http)
		(void)http_health(n->metrics, timeout_ms, &h);
	/* A node whose HTTP endpoint does not answer is down: do not wait for an
	 * RPC timeout as well. */
	if (n->listen != NULL && (!by_http || (want_version && h.reachable)))
		(void)rpc_health(p, i, !by_http, timeout_ms, &h);
	if (!by_http && n->listen == NULL)
		snprintf(h.reason, sizeof(h.reason), "no metrics address to ask");
	if (h.ready)
		h.reason[0] = '\0';
	*out = h;
}

psf_err
psf_progress_stats(psf_progress *p, size_t i, uint32_t timeout_ms, Psfleet__V1__StatsReply **out)
{
	Psfleet__V1__StatsRequest req = PSFLEET__V1__STATS_REQUEST__INIT;
	psf_rpc_call_opts o = {timeout_ms, 1, 0};
	psf_rpc_client *c;

	if (i >= p->cfg->n_nodes || p->cfg->nodes[i].role != PSF_ROLE_PS)
		return PSF_EINVAL;
	if ((c = client(p, i)) == NULL)
		return PSF_EUNAVAIL;
	return psf_rpc_client_call(c, PSF_M_STATS, &req.base, &psfleet__v1__stats_reply__descriptor,
	    &o, (ProtobufCMessage **)out, NULL);
}

psf_err
psf_progress_stats0(psf_progress *p, uint32_t timeout_ms, Psfleet__V1__StatsReply **out,
    const psf_node_cfg **node_out)
{
	psf_err err = PSF_EUNAVAIL;

	for (size_t r = 0; r < p->cfg->replication && err != PSF_OK; r++) {
		const psf_node_cfg *n = psf_config_shard_replica(p->cfg, 0, r);

		if (n != NULL &&
		    (err = psf_progress_stats(p, (size_t)(n - p->cfg->nodes), timeout_ms, out)) ==
		        PSF_OK &&
		    node_out != NULL)
			*node_out = n;
	}
	return err;
}

psf_err
psf_prom_value(const char *text, const char *name, double *out)
{
	size_t len = strlen(name);

	for (const char *line = text; line != NULL && *line != '\0';) {
		const char *next = strchr(line, '\n');

		if (strncmp(line, name, len) == 0 && (line[len] == ' ' || line[len] == '{')) {
			const char *v = line + len;
			char *end;
			double d;

			if (*v == '{' && (v = strchr(v, '}')) != NULL)
				v++;
			if (v != NULL) {
				d = strtod(v, &end);
				if (end != v) {
					*out = d;
					return PSF_OK;
				}
			}
		}
		line = next != NULL ? next + 1 : NULL;
	}
	return PSF_ENOENT;
}

/* prom_opt reads an optional metric, leaving *v as it was when it is absent. */
static void
prom_opt(const char *text, const char *name, double *v)
{
	double d;

	if (psf_prom_value(text, name, &d) == PSF_OK)
		*v = d;
}

void
psf_progress_scrape(psf_progress *p, size_t i, uint32_t timeout_ms, psf_trainer_view *v)
{
	const psf_node_cfg *n = &p->cfg->nodes[i];
	char *body = NULL;
	int status = 0;
	double step = v->step;
	uint64_t prev_ms = v->at_ms, now;
	bool had = v->valid;

	v->fresh = false;
	if (n->metrics == NULL ||
	    psf_http_get(n->metrics, "/metrics", (int)timeout_ms, &status, &body) != PSF_OK)
		return;
	if (status == 200 && psf_prom_value(body, "psfleet_trainer_step", &v->step) == PSF_OK) {
		prom_opt(body, "psfleet_trainer_epoch", &v->epoch);
		prom_opt(body, "psfleet_trainer_loss", &v->loss);
		prom_opt(body, "psfleet_trainer_samples_per_second", &v->samples_per_sec);
		prom_opt(body, "psfleet_trainer_total_steps", &v->total_steps);
		now = psf_now_ms();
		if (had && now > prev_ms && v->step >= step) {
			double rate = (v->step - step) * 1000.0 / (double)(now - prev_ms);
			/* smooth: a restart or a sync round's wait makes single samples jumpy */
			v->steps_per_sec =
			    v->steps_per_sec > 0 ? 0.7 * v->steps_per_sec + 0.3 * rate : rate;
		}
		v->at_ms = now;
		v->valid = true;
		v->fresh = true;
	}
	free(body);
}

void
psf_progress_training_started(psf_progress *p)
{
	p->t0_ms = psf_now_ms();
}

/* poll_ps_health asks every running ps whether it is ready: one that answers
 * "not ready" after start-up cannot make progress (e.g. its disk is full), and
 * the display says so instead of only "ETA ?". */
static void
poll_ps_health(psf_progress *p, const psf_supervisor *l)
{
	size_t n_bad = 0;

	p->ps_alert[0] = '\0';
	for (size_t i = 0; i < p->cfg->n_nodes; i++) {
		psf_runtime_health h;
		psf_child_info ci;

		if (p->cfg->nodes[i].role != PSF_ROLE_PS)
			continue;
		if (l != NULL) {
			psf_supervisor_child(l, i, &ci);
			if (ci.state != PSF_CHILD_RUNNING)
				continue;
		}
		psf_progress_health(p, i, false, 300, &h);
		if (!h.reachable || h.ready)
			continue;
		if (n_bad++ == 0)
			snprintf(p->ps_alert, sizeof(p->ps_alert), "%s not ready: %s",
			    p->cfg->nodes[i].id, h.reason);
	}
	if (n_bad > 1) {
		size_t n = strlen(p->ps_alert);
		snprintf(p->ps_alert + n, sizeof(p->ps_alert) - n, " (and %zu more ps)", n_bad - 1);
	}
}

void
psf_progress_poll(psf_progress *p, const psf_supervisor *l)
{
	const psf_node_cfg *ps0 = psf_config_role_node(p->cfg, PSF_ROLE_PS, 0);
	Psfleet__V1__StatsReply *st = NULL;

	for (size_t i = 0; i < p->cfg->n_nodes; i++) {
		psf_child_info ci;

		if (p->cfg->nodes[i].role != PSF_ROLE_TRAINER)
			continue;
		if (l != NULL) {
			psf_supervisor_child(l, i, &ci);
			if (ci.state != PSF_CHILD_RUNNING) {
				p->views[i].fresh = false;
				continue;
			}
		}
		psf_progress_scrape(p, i, 500, &p->views[i]);
	}
	poll_ps_health(p, l);
	/* Shard 0 holds the trainers' reports. */
	if (ps0 != NULL && psf_progress_stats0(p, 1000, &st, NULL) == PSF_OK) {
		if (p->stats != NULL)
			protobuf_c_message_free_unpacked(&p->stats->base, NULL);
		p->stats = st;
	}
}

psf_err
psf_progress_result(const Psfleet__V1__StatsReply *stats, psf_fleet_result *out)
{
	double sse = 0, sae = 0, nsse = 0, nsae = 0, loss = 0, correct = 0;
	size_t n_loss = 0;

	memset(out, 0, sizeof(*out));
	if (stats == NULL)
		return PSF_ENOENT;
	out->model_version = stats->model_version;
	out->trained_steps = stats->trained_steps;
	for (size_t k = 0; k < stats->n_reports; k++) {
		const Psfleet__V1__MetricsReport *r = stats->reports[k];

		out->n_reports++;
		out->n_finished += r->finished ? 1 : 0;
		out->test_n += r->test_n;
		sse += r->test_sse;
		sae += r->test_sae;
		nsse += r->naive_sse;
		nsae += r->naive_sae;
		correct += r->test_correct;
		if (r->step > 0) { /* a trainer without training rows reports step 0, no loss */
			loss += r->train_loss;
			n_loss++;
		}
	}
	if (n_loss > 0)
		out->train_loss = loss / (double)n_loss;
	if (out->test_n == 0)
		return PSF_ENOENT;
	out->test_rmse = sqrt(sse / (double)out->test_n);
	out->test_mae = sae / (double)out->test_n;
	out->naive_rmse = sqrt(nsse / (double)out->test_n);
	out->naive_mae = nsae / (double)out->test_n;
	out->test_accuracy = correct / (double)out->test_n;
	return PSF_OK;
}

/* ---------------------------------------------------------------- display */

static const char *
state_name(psf_child_state s)
{
	switch (s) {
	case PSF_CHILD_IDLE: return "not started";
	case PSF_CHILD_RUNNING: return "running";
	case PSF_CHILD_BACKOFF: return "restarting";
	case PSF_CHILD_DONE: return "done";
	case PSF_CHILD_STOPPED: return "stopped";
	case PSF_CHILD_FAILED: return "failed";
	}
	return "?";
}

/* fmt_duration writes seconds as "42s", "3m07s" or "1h02m". */
static void
fmt_duration(double s, char *buf, size_t len)
{
	long t = s < 0 ? 0 : s > 1e8 ? 100000000 : (long)(s + 0.5);

	if (t < 60)
		snprintf(buf, len, "%lds", t);
	else if (t < 3600)
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(buf, len, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

/* eta estimates the seconds until every running trainer reaches its planned
 * steps; negative when unknown. */
static double
eta(const psf_progress *p, const psf_supervisor *l)
{
	double worst = 0;
	bool any = false;

	for (size_t i = 0; i < p->cfg->n_nodes; i++) {
		const psf_trainer_view *v = &p->views[i];
		psf_child_info ci;

		if (p->cfg->nodes[i].role != PSF_ROLE_TRAINER)
			continue;
		psf_supervisor_child(l, i, &ci);
		if (ci.state == PSF_CHILD_DONE)
			continue;
		if (!v->valid || v->total_steps <= 0 || v->steps_per_sec <= 0)
			return -1;
		any = true;
		if ((v->total_steps - v->step) / v->steps_per_sec > worst)
			worst = (v->total_steps - v->step) / v->steps_per_sec;
	}
	return any ? worst : 0;
}

/* header writes the fleet summary: version, steps, elapsed (with_elapsed), ETA. */
static void
header(const psf_progress *p, const psf_supervisor *l, bool with_elapsed, char *buf, size_t len)
{
	char el[32] = "-", et[32] = "?";
	double e = eta(p, l);
	size_t n = 0;

	if (p->t0_ms != 0)
		fmt_duration((double)(psf_now_ms() - p->t0_ms) / 1000.0, el, sizeof(el));
	if (e >= 0)
		fmt_duration(e, et, sizeof(et));
	if (p->stats != NULL)
		n = (size_t)snprintf(buf, len, "model version %llu, trained steps %llu, ",
		    (unsigned long long)p->stats->model_version,
		    (unsigned long long)p->stats->trained_steps);
	else
		n = (size_t)snprintf(buf, len, "model version ?, ");
	if (n < len && with_elapsed)
		n += (size_t)snprintf(buf + n, len - n, "elapsed %s, ", el);
	if (n < len)
		n += (size_t)snprintf(buf + n, len - n, "ETA %s", et);
	if (n < len && p->ps_alert[0] != '\0' && !p->live) /* live: a line of its own */
		snprintf(buf + n, len - n, " | %s", p->ps_alert);
}

/* trainer_cell writes one trainer's progress in a compact form. */
static void
trainer_cell(const psf_node_cfg *node, const psf_trainer_view *v, char *buf, size_t len)
{
	if (!v->valid) {
		snprintf(buf, len, "%s",
		    node->metrics == NULL ? "no metrics address (step, loss "
		                            "and speed unknown)"
		                          : "no metrics yet");
		return;
	}
	if (v->total_steps > 0)
		snprintf(buf, len, "epoch %.0f step %.0f/%.0f loss %.6g %.0f samples/s%s", v->epoch,
		    v->step, v->total_steps, v->loss, v->samples_per_sec,
		    v->fresh ? "" : " (stale)");
	else
		snprintf(buf, len, "epoch %.0f step %.0f loss %.6g %.0f samples/s%s", v->epoch,
		    v->step, v->loss, v->samples_per_sec, v->fresh ? "" : " (stale)");
}

/* report_of finds a trainer's latest MetricsReport in ps0's last Stats. */
static const Psfleet__V1__MetricsReport *
report_of(const psf_progress *p, const char *id)
{
	for (size_t k = 0; p->stats != NULL && k < p->stats->n_reports; k++) {
		if (strcmp(p->stats->reports[k]->worker, id) == 0)
			return p->stats->reports[k];
	}
	return NULL;
}

/* row_cell describes a trainer for the display: its live metrics while it
 * runs, its final report once done, or its state. */
static void
row_cell(const psf_progress *p, const psf_child_info *ci, const psf_trainer_view *v, char *buf,
    size_t len)
{
	const Psfleet__V1__MetricsReport *r = report_of(p, ci->node->id);

	if (ci->state == PSF_CHILD_RUNNING)
		trainer_cell(ci->node, v, buf, len);
	else if (ci->state == PSF_CHILD_DONE && r != NULL)
		snprintf(buf, len, "epoch %u step %lld loss %.6g%s", r->epoch, (long long)r->step,
		    r->train_loss, r->finished ? "" : " (no final report)");
	else
		snprintf(buf, len, "-");
}

/* emit prints a line of the live block, cut to the terminal's width so that the
 * block's line count stays right. */
static void
emit(psf_progress *p, int width, const char *line)
{
	fprintf(p->out, "%.*s\n", width - 1, line);
	p->lines++;
}

static int
term_width(FILE *f)
{
	struct winsize ws;

	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 120;
}

static void
clear_block(psf_progress *p)
{
	if (p->live && p->lines > 0)
		fprintf(p->out, "\033[%dA\033[J", p->lines);
	p->lines = 0;
}

static void
render_live(psf_progress *p, const psf_supervisor *l)
{
	char line[512], cell[256];
	int width = term_width(p->out), shown = 0, others = 0;
	size_t n = 0;

	clear_block(p);
	header(p, l, true, cell, sizeof(cell));
	snprintf(line, sizeof(line), "%s (%s): %s", p->cfg->name,
	    psf_consistency_name(p->cfg->consistency.mode), cell);
	emit(p, width, line);
	if (p->ps_alert[0] != '\0') {
		snprintf(line, sizeof(line), "  ! %s", p->ps_alert);
		emit(p, width, line);
	}
	for (size_t i = 0; i < p->cfg->n_nodes; i++) {
		psf_child_info ci;

		if (p->cfg->nodes[i].role != PSF_ROLE_TRAINER)
			continue;
		if (shown++ >= LIVE_MAX_TRAINERS) {
			others++;
			continue;
		}
		psf_supervisor_child(l, i, &ci);
		row_cell(p, &ci, &p->views[i], cell, sizeof(cell));
		snprintf(line, sizeof(line), "  %-14s %-11s %s", ci.node->id, state_name(ci.state),
		    cell);
		emit(p, width, line);
	}
	if (others > 0) {
		snprintf(line, sizeof(line), "  ... and %d more trainer%s", others,
		    psf_plural((unsigned long long)others));
		emit(p, width, line);
	}
	n = (size_t)snprintf(line, sizeof(line), "  nodes:");
	for (size_t i = 0; i < p->cfg->n_nodes && n < sizeof(line); i++) {
		psf_child_info ci;

		if (p->cfg->nodes[i].role == PSF_ROLE_TRAINER)
			continue;
		psf_supervisor_child(l, i, &ci);
		if (ci.state == PSF_CHILD_IDLE)
			continue;
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s %s", ci.node->id,
		    state_name(ci.state));
		if (ci.starts > 1 && n < sizeof(line))
			n += (size_t)snprintf(line + n, sizeof(line) - n, " (%u restart%s)",
			    ci.starts - 1, psf_plural(ci.starts - 1));
		if (n < sizeof(line))
			n += (size_t)snprintf(line + n, sizeof(line) - n, ",");
	}
	if (n > 0 && n < sizeof(line) && line[n - 1] == ',')
		line[n - 1] = '\0';
	emit(p, width, line);
	fflush(p->out);
}

static void
render_plain(psf_progress *p, const psf_supervisor *l)
{
	char line[1024], cell[256], el[32] = "0s";
	size_t n, n_tr = p->cfg->n_trainers, done = 0;
	double loss = 0, sps = 0, min_step = -1;
	size_t with_loss = 0, with_addr = 0;

	if (p->t0_ms != 0)
		fmt_duration((double)(psf_now_ms() - p->t0_ms) / 1000.0, el, sizeof(el));
	header(p, l, false, cell, sizeof(cell));
	n = (size_t)snprintf(line, sizeof(line), "[%s] %s", el, cell);
	for (size_t i = 0; i < p->cfg->n_nodes && n < sizeof(line); i++) {
		const psf_trainer_view *v = &p->views[i];
		psf_child_info ci;

		if (p->cfg->nodes[i].role != PSF_ROLE_TRAINER)
			continue;
		psf_supervisor_child(l, i, &ci);
		done += ci.state == PSF_CHILD_DONE;
		with_addr += p->cfg->nodes[i].metrics != NULL;
		if (v->valid) {
			loss += v->loss;
			sps += ci.state == PSF_CHILD_RUNNING ? v->samples_per_sec : 0;
			with_loss++;
			if (min_step < 0 || v->step < min_step)
				min_step = v->step;
		}
		if (n_tr > PLAIN_MAX_TRAINERS)
			continue;
		if (ci.state == PSF_CHILD_RUNNING) {
			trainer_cell(ci.node, v, cell, sizeof(cell));
			n += (size_t)snprintf(line + n, sizeof(line) - n, " | %s %s", ci.node->id,
			    cell);
		} else {
			row_cell(p, &ci, v, cell, sizeof(cell));
			n += (size_t)snprintf(line + n, sizeof(line) - n, " | %s %s %s",
			    ci.node->id, state_name(ci.state), cell);
		}
	}
	if (n_tr > PLAIN_MAX_TRAINERS && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, " | trainers: %zu done of %zu",
		    done, n_tr);
	/* Figures only from trainers that report them: never zeros standing for "unknown". */
	if (n_tr > PLAIN_MAX_TRAINERS && n < sizeof(line)) {
		if (with_loss > 0)
			snprintf(line + n, sizeof(line) - n,
			    ", slowest step %.0f, mean loss %.6g, "
			    "%.0f samples/s%s",
			    min_step, loss / (double)with_loss, sps,
			    with_addr < n_tr ? " (of the trainers with a metrics address)" : "");
		else
			snprintf(line + n, sizeof(line) - n, ", %s",
			    with_addr == 0 ? "no metrics address (step, loss and speed unknown)"
			                   : "no metrics yet");
	}
	fprintf(p->out, "%s\n", line);
	fflush(p->out);
}

void
psf_progress_render(psf_progress *p, const psf_supervisor *l)
{
	if (p->live)
		render_live(p, l);
	else
		render_plain(p, l);
}

void
psf_progress_keep(psf_progress *p)
{
	p->lines = 0;
}

void
psf_progress_note(psf_progress *p, const char *fmt, ...)
{
	va_list ap;

	clear_block(p);
	va_start(ap, fmt);
	vfprintf(p->out, fmt, ap);
	va_end(ap);
	fputc('\n', p->out);
	fflush(p->out);
}

psf_err
psf_progress_admin_status(psf_progress *p, size_t i, uint32_t timeout_ms,
    Psfleet__V1__StatusReply **out)
{
	Psfleet__V1__StatusRequest req = PSFLEET__V1__STATUS_REQUEST__INIT;
	psf_rpc_call_opts o = {timeout_ms, 1, 0};
	psf_rpc_client *c;

	if (i >= p->cfg->n_nodes)
		return PSF_EINVAL;
	if ((c = client(p, i)) == NULL)
		return PSF_EUNAVAIL;
	return psf_rpc_client_call(c, PSF_M_STATUS, &req.base,
	    &psfleet__v1__status_reply__descriptor, &o, (ProtobufCMessage **)out, NULL);
}
