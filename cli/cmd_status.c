/* psfleet status CONFIG [--json]: health, model version and clocks of every node
 * of a fleet (DESIGN.md §8), asked over each node's /healthz and /metrics, and
 * Admin/Health and ParameterServer/Stats RPCs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "lib/base/log.h"
#include "lib/config/config.h"

typedef struct status_args {
	const char *config;
	bool json;
	uint32_t timeout_ms;
} status_args;

/* What status found about one node. */
typedef struct node_status {
	const psf_node_cfg *node;
	psf_runtime_health h;
	const char *health; /* ready, not ready, unreachable, done, live, unknown */
	bool healthy;
	Psfleet__V1__StatsReply *stats; /* ps only; NULL when Stats failed */
	char repl[160];                 /* ps with replication: "primary epoch 3 members ps0,ps2" */
	psf_trainer_view tv;            /* trainers with a metrics address */
} node_status;

static void
status_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet status CONFIG [--json] [--timeout MS]\n"
	    "\n"
	    "Asks every node of the fleet in CONFIG for its health (/healthz on its metrics\n"
	    "address, or Admin/Health on its listen URL), model version, and for ps nodes the\n"
	    "clock and lag of each worker (Stats). Prints a table, or JSON with --json.\n"
	    "Exits 0 when every node is healthy (ready, or a trainer that finished), 1 if not.\n"
	    "  --json        machine-readable output\n"
	    "  --timeout MS  per-request timeout (default 2000)\n");
}

static int
parse_args(int argc, char **argv, status_args *a)
{
	memset(a, 0, sizeof(*a));
	a->timeout_ms = 2000;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			a->json = true;
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			char *end;
			unsigned long ms = strtoul(argv[++i], &end, 10);

			if (*end != '\0' || ms == 0 || ms > 600000) {
				fprintf(stderr, "psfleet status: --timeout needs 1..600000 ms\n");
				return -1;
			}
			a->timeout_ms = (uint32_t)ms;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "psfleet status: unknown or incomplete option '%s'\n",
			    argv[i]);
			return -1;
		} else if (a->config == NULL) {
			a->config = argv[i];
		} else {
			fprintf(stderr, "psfleet status: unexpected argument '%s'\n", argv[i]);
			return -1;
		}
	}
	if (a->config == NULL) {
		fprintf(stderr, "psfleet status: CONFIG is required (see --help)\n");
		return -1;
	}
	return 0;
}

/* trainer_report finds a worker's MetricsReport in ps0's Stats. */
static const Psfleet__V1__MetricsReport *
trainer_report(const Psfleet__V1__StatsReply *ps0, const char *id)
{
	for (size_t k = 0; ps0 != NULL && k < ps0->n_reports; k++) {
		if (strcmp(ps0->reports[k]->worker, id) == 0)
			return ps0->reports[k];
	}
	return NULL;
}

static const Psfleet__V1__WorkerStatus *
worker_status(const Psfleet__V1__StatsReply *ps0, const char *id)
{
	for (size_t k = 0; ps0 != NULL && k < ps0->n_workers; k++) {
		if (strcmp(ps0->workers[k]->worker, id) == 0)
			return ps0->workers[k];
	}
	return NULL;
}

/* classify decides a node's health word. A trainer that no longer answers is
 * healthy when ps0 has its final report (it finished and exited, as trainers
 * do); one with neither a metrics address nor a listen URL (Admin/Health) is
 * judged by ps0's worker list. */
static void
classify(node_status *s, const Psfleet__V1__StatsReply *ps0)
{
	const Psfleet__V1__MetricsReport *r = trainer_report(ps0, s->node->id);
	const Psfleet__V1__WorkerStatus *w = worker_status(ps0, s->node->id);

	if (s->h.ready) {
		s->health = "ready";
		s->healthy = true;
	} else if (s->h.reachable) {
		s->health = "not ready";
	} else if (s->node->role == PSF_ROLE_TRAINER && r != NULL && r->finished) {
		s->health = "done";
		s->healthy = true;
	} else if (strcmp(s->h.via, "none") == 0 && s->node->role == PSF_ROLE_TRAINER &&
	    w != NULL && w->live) {
		s->health = "live";
		s->healthy = true;
	} else if (strcmp(s->h.via, "none") == 0) {
		s->health = "unknown";
	} else {
		s->health = "unreachable";
	}
}

static int64_t
max_clock(const Psfleet__V1__StatsReply *st)
{
	int64_t m = 0;

	for (size_t k = 0; k < st->n_workers; k++)
		if (st->workers[k]->clock > m)
			m = st->workers[k]->clock;
	return m;
}

/* detail writes the DETAIL column of the table; ps0 (may be NULL) tells which
 * workers that left the group did so because they finished. */
static void
detail(const node_status *s, const Psfleet__V1__StatsReply *ps0, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	if (!s->healthy && s->h.reason[0] != '\0') {
		snprintf(buf, len, "%s", s->h.reason);
		return;
	}
	if (s->repl[0] != '\0') {
		n = (size_t)snprintf(buf, len, "%s%s", s->repl, s->stats != NULL ? "; " : "");
		buf += n < len ? n : len - 1;
		len -= n < len ? n : len - 1;
		n = 0;
		if (s->stats == NULL)
			return; /* a backup refuses Stats: only its primary serves */
	}
	if (s->stats != NULL) {
		int64_t top = max_clock(s->stats);

		n = (size_t)snprintf(buf, len, "shard %u, %s, %llu steps", s->stats->shard_index,
		    s->stats->mode, (unsigned long long)s->stats->trained_steps);
		for (size_t k = 0; k < s->stats->n_workers && n < len; k++) {
			const Psfleet__V1__WorkerStatus *w = s->stats->workers[k];
			const Psfleet__V1__MetricsReport *r = trainer_report(ps0, w->worker);

			n += (size_t)snprintf(buf + n, len - n, "; %s clock %lld lag %lld%s",
			    w->worker, (long long)w->clock, (long long)(top - w->clock),
			    w->live                        ? ""
			        : r != NULL && r->finished ? " (done)"
			                                   : " (gone)");
		}
	} else if (s->node->role == PSF_ROLE_PS && s->h.reachable) {
		snprintf(buf, len, "Stats failed");
	} else if (s->tv.valid) {
		snprintf(buf, len, "epoch %.0f step %.0f/%.0f loss %.6g %.0f samples/s",
		    s->tv.epoch, s->tv.step, s->tv.total_steps, s->tv.loss, s->tv.samples_per_sec);
	}
}

static const char *
address(const psf_node_cfg *n)
{
	return n->listen != NULL ? psf_node_dial_url(n) : n->metrics != NULL ? n->metrics : "-";
}

static void
print_table(const psf_config *cfg, const node_status *s, size_t n)
{
	const Psfleet__V1__StatsReply *ps0 = n > 0 ? s[0].stats : NULL; /* ps nodes come first */
	int wid = 4, wad = 7;
	char ver[24], det[2048];

	for (size_t i = 0; i < n; i++) {
		if ((int)strlen(s[i].node->id) > wid)
			wid = (int)strlen(s[i].node->id);
		if ((int)strlen(address(s[i].node)) > wad)
			wad = (int)strlen(address(s[i].node));
	}
	printf("fleet %s (%s)\n", cfg->name, cfg->path);
	printf("%-*s  %-7s  %-*s  %-11s  %-8s  %s\n", wid, "NODE", "ROLE", wad, "ADDRESS", "HEALTH",
	    "VERSION", "DETAIL");
	for (size_t i = 0; i < n; i++) {
		if (s[i].h.has_version)
			snprintf(ver, sizeof(ver), "%llu",
			    (unsigned long long)s[i].h.model_version);
		else
			snprintf(ver, sizeof(ver), "-");
		detail(&s[i], ps0, det, sizeof(det));
		printf("%-*s  %-7s  %-*s  %-11s  %-8s  %s\n", wid, s[i].node->id,
		    psf_role_name(s[i].node->role), wad, address(s[i].node), s[i].health, ver, det);
	}
}

static void
json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *c = (const unsigned char *)(s != NULL ? s : ""); *c != '\0';
	     c++) {
		if (*c == '"' || *c == '\\')
			printf("\\%c", *c);
		else if (*c < 0x20)
			printf("\\u%04x", *c);
		else
			putchar(*c);
	}
	putchar('"');
}

static void
json_num(double v)
{
	if (isfinite(v))
		printf("%.17g", v);
	else
		printf("null");
}

static void
json_node(const node_status *s)
{
	printf("    {\"id\": ");
	json_str(s->node->id);
	printf(", \"role\": \"%s\", \"listen\": ", psf_role_name(s->node->role));
	s->node->listen != NULL ? json_str(psf_node_dial_url(s->node)) : (void)printf("null");
	printf(", \"metrics\": ");
	s->node->metrics != NULL ? json_str(s->node->metrics) : (void)printf("null");
	printf(
	    ", \"health\": \"%s\", \"healthy\": %s, \"reachable\": %s, \"ready\": %s, \"reason\": ",
	    s->health, s->healthy ? "true" : "false", s->h.reachable ? "true" : "false",
	    s->h.ready ? "true" : "false");
	json_str(s->h.reason);
	printf(", \"model_version\": ");
	if (s->h.has_version)
		printf("%llu", (unsigned long long)s->h.model_version);
	else
		printf("null");
	if (s->stats != NULL) {
		int64_t top = max_clock(s->stats);

		printf(", \"stats\": {\"model_version\": %llu, \"trained_steps\": %llu, \"mode\": ",
		    (unsigned long long)s->stats->model_version,
		    (unsigned long long)s->stats->trained_steps);
		json_str(s->stats->mode);
		printf(", \"shard\": %u, \"workers\": [", s->stats->shard_index);
		for (size_t k = 0; k < s->stats->n_workers; k++) {
			const Psfleet__V1__WorkerStatus *w = s->stats->workers[k];

			printf("%s{\"worker\": ", k > 0 ? ", " : "");
			json_str(w->worker);
			printf(", \"clock\": %lld, \"lag\": %lld, \"live\": %s, \"pushes\": %llu}",
			    (long long)w->clock, (long long)(top - w->clock),
			    w->live ? "true" : "false", (unsigned long long)w->pushes);
		}
		printf("]}");
	}
	if (s->repl[0] != '\0') {
		printf(", \"replication\": ");
		json_str(s->repl);
	}
	if (s->tv.valid) {
		printf(", \"progress\": {\"epoch\": ");
		json_num(s->tv.epoch);
		printf(", \"step\": ");
		json_num(s->tv.step);
		printf(", \"total_steps\": ");
		json_num(s->tv.total_steps);
		printf(", \"loss\": ");
		json_num(s->tv.loss);
		printf(", \"samples_per_second\": ");
		json_num(s->tv.samples_per_sec);
		printf("}");
	}
	printf("}");
}

static void
print_json(const psf_config *cfg, const node_status *s, size_t n, bool healthy)
{
	printf("{\n  \"fleet\": ");
	json_str(cfg->name);
	printf(",\n  \"healthy\": %s,\n  \"nodes\": [\n", healthy ? "true" : "false");
	for (size_t i = 0; i < n; i++) {
		json_node(&s[i]);
		printf("%s\n", i + 1 < n ? "," : "");
	}
	printf("  ]\n}\n");
}

/* repl_line writes a ps's replication state from its Admin/Status extras:
 * "primary epoch 3 members ps0,ps2 failovers 1" (empty when it has none). */
static void
repl_line(psf_progress *p, size_t i, uint32_t timeout_ms, char *buf, size_t len)
{
	Psfleet__V1__StatusReply *r = NULL;
	const char *role = NULL, *epoch = "?", *members = "?", *fo = "0", *join = NULL;

	buf[0] = '\0';
	if (psf_progress_admin_status(p, i, timeout_ms, &r) != PSF_OK)
		return;
	for (size_t k = 0; k < r->n_extra; k++) {
		const Psfleet__V1__KeyValue *kv = r->extra[k];
		if (strcmp(kv->key, "repl_role") == 0)
			role = kv->value;
		else if (strcmp(kv->key, "repl_epoch") == 0)
			epoch = kv->value;
		else if (strcmp(kv->key, "repl_members") == 0)
			members = kv->value;
		else if (strcmp(kv->key, "repl_failovers") == 0)
			fo = kv->value;
		else if (strcmp(kv->key, "repl_joining") == 0)
			join = kv->value;
	}
	if (role != NULL)
		snprintf(buf, len, "%s epoch %s members %s failovers %s%s%s", role, epoch, members,
		    fo, join != NULL ? "; catching up " : "", join != NULL ? join : "");
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* probe fills s[i] for every node: health first, then Stats and metrics. */
static void
probe(psf_progress *p, const psf_config *cfg, node_status *s, uint32_t timeout_ms)
{
	const Psfleet__V1__StatsReply *ps0 = NULL;

	for (size_t i = 0; i < cfg->n_nodes; i++) {
		s[i].node = &cfg->nodes[i];
		psf_progress_health(p, i, true, timeout_ms, &s[i].h);
		if (cfg->nodes[i].role == PSF_ROLE_PS && s[i].h.reachable &&
		    psf_progress_stats(p, i, timeout_ms, &s[i].stats) != PSF_OK)
			s[i].stats = NULL;
		if (cfg->nodes[i].role == PSF_ROLE_PS && s[i].h.reachable && cfg->replication > 1)
			repl_line(p, i, timeout_ms, s[i].repl, sizeof(s[i].repl));
		if (cfg->nodes[i].role == PSF_ROLE_TRAINER && s[i].h.reachable)
			psf_progress_scrape(p, i, timeout_ms, &s[i].tv);
		if (ps0 == NULL && cfg->nodes[i].role == PSF_ROLE_PS && s[i].stats != NULL &&
		    s[i].stats->shard_index == 0) /* shard 0's primary holds the reports */
			ps0 = s[i].stats;
	}
	for (size_t i = 0; i < cfg->n_nodes; i++)
		classify(&s[i], ps0);
}

int
psf_cmd_status(int argc, char **argv)
{
	status_args a;
	psf_config *cfg = NULL;
	psf_progress *p = NULL;
	node_status *s = NULL;
	char errbuf[512];
	bool healthy = true;
	int rc = 1;
	psf_err err;

	if (psf_cli_wants_help(argc, argv)) {
		status_usage(stdout);
		return 0;
	}
	if (parse_args(argc, argv, &a) != 0)
		return 2;
	psf_log_setup(PSF_LOG_ERR, "status");
	if (psf_config_load(a.config, errbuf, sizeof(errbuf), &cfg) != PSF_OK) {
		fprintf(stderr, "psfleet status: %s\n", errbuf);
		return 2;
	}
	if ((err = psf_progress_new(cfg, stdout, false, &p)) != PSF_OK) {
		fprintf(stderr, "psfleet status: %s: cannot set up clients: %s\n", a.config,
		    psf_strerror(err));
		goto out;
	}
	if ((s = calloc(cfg->n_nodes, sizeof(*s))) == NULL) {
		fprintf(stderr, "psfleet status: out of memory\n");
		goto out;
	}
	probe(p, cfg, s, a.timeout_ms);
	for (size_t i = 0; i < cfg->n_nodes; i++)
		healthy = healthy && s[i].healthy;
	if (a.json)
		print_json(cfg, s, cfg->n_nodes, healthy);
	else
		print_table(cfg, s, cfg->n_nodes);
	rc = healthy ? 0 : 1;
out:
	for (size_t i = 0; s != NULL && i < cfg->n_nodes; i++)
		if (s[i].stats != NULL)
			protobuf_c_message_free_unpacked(&s[i].stats->base, NULL);
	free(s);
	psf_progress_free(p);
	psf_config_free(cfg);
	return rc;
}
