/* psfleet ingest CONFIG FILE.csv : append new daily bars to a running fleet's
 * inferers (the Ingest RPC; docs/forecasting.md, docs/inference.md).
 *
 * Each row goes to every inferer of its symbol's inference shard (or, with
 * --connect, everything to one gateway or inferer, which routes or refuses).
 * A row is stored when every replica stored it. Lines that do not parse are
 * reported and not sent. Exit 0 when every row was stored, 1 when any was
 * refused (the others are stored), 2 for usage, config or file errors. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/base/shard.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/data/bar_csv.h"
#include "lib/net/methods.h"
#include "lib/net/rpc.h"
#include "lib/net/rpc_client.h"
#include "lib/runtime/runtime.h"

static void
ingest_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet ingest CONFIG FILE.csv [--connect URL] [--json] [--timeout-ms N]\n"
	    "\n"
	    "Appends the bars of FILE.csv (header: date,symbol,close and optionally\n"
	    "open,high,low,volume, any order) to the running fleet of CONFIG: every\n"
	    "inferer of a symbol's inference shard stores the row (journal in\n"
	    "<run_dir>/ingest/, replayed on restart) and serves features with it at once.\n"
	    "New symbols are accepted. Rows that are bad, older than the symbol's last\n"
	    "stored date, or already stored are refused one by one; nothing stored changes.\n"
	    "With training.finetune, the fleet's first trainer then fine-tunes on the new\n"
	    "rows and the inferers serve the new model version (docs/training.md).\n"
	    "  --connect URL    send everything to this gateway (or single inferer) instead\n"
	    "                   of the config's inferers\n"
	    "  --json           one JSON object: rows, accepted, already_stored, ms,\n"
	    "                   model_version, finetune_steps, finetune_rows, errors [{line,\n"
	    "                   symbol, date, status, message}]\n"
	    "  --timeout-ms N   deadline of the call (default 30000)\n"
	    "Exit: 0 every row stored, 1 some row refused or unreachable inferer, 2 usage,\n"
	    "config or unreadable file.\n");
}

/* One line of the file. */
typedef struct line_row {
	psf_bar bar;
	size_t line;
	size_t sent; /* destinations it was sent to */
	psf_status status;
	char msg[320];
	char date[11];
	Psfleet__V1__IngestRow row;
	Psfleet__V1__Bar pb;
} line_row;

typedef struct ingest_args {
	const char *config, *file, *url;
	int json;
	long timeout_ms;
} ingest_args;

static int
parse_args(int argc, char **argv, ingest_args *a)
{
	*a = (ingest_args){NULL, NULL, NULL, 0, 30000};
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--connect") == 0 && i + 1 < argc) {
			a->url = argv[++i];
		} else if (strcmp(arg, "--json") == 0) {
			a->json = 1;
		} else if (strcmp(arg, "--timeout-ms") == 0 && i + 1 < argc) {
			char *end;
			a->timeout_ms = strtol(argv[++i], &end, 10);
			if (*end != '\0' || a->timeout_ms <= 0 || a->timeout_ms > 3600000) {
				fprintf(stderr, "psfleet ingest: --timeout-ms wants 1..3600000\n");
				return -1;
			}
		} else if (arg[0] == '-') {
			fprintf(stderr, "psfleet ingest: unknown or incomplete option '%s'\n", arg);
			return -1;
		} else if (a->config == NULL) {
			a->config = arg;
		} else if (a->file == NULL) {
			a->file = arg;
		} else {
			fprintf(stderr, "psfleet ingest: unexpected argument '%s'\n", arg);
			return -1;
		}
	}
	if (a->config == NULL || a->file == NULL) {
		fprintf(stderr, "psfleet ingest: CONFIG and FILE.csv are required (see --help)\n");
		return -1;
	}
	return 0;
}

static double
wire(double v)
{
	return isnan(v) ? 0 : v; /* proto3: 0 = absent */
}

/* read_rows reads the file; lines that do not parse get a status already. */
static int
read_rows(const char *path, line_row **out, size_t *n_out)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *line = NULL, msg[256];
	size_t cap = 0, n = 0, cap_rows = 0, lineno = 0;
	ssize_t len;
	psf_bar_cols cols;
	line_row *rows = NULL;
	int rc = 0, have_header = 0;

	if (f == NULL) {
		fprintf(stderr, "psfleet ingest: cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (!have_header) {
			if (psf_bar_csv_header(line, (size_t)len, &cols, msg, sizeof(msg)) !=
			    PSF_OK) {
				fprintf(stderr, "psfleet ingest: %s:%zu: %s\n", path, lineno, msg);
				rc = -1;
				break;
			}
			have_header = 1;
			continue;
		}
		if (n == cap_rows) {
			size_t nc = cap_rows ? 2 * cap_rows : 256;
			line_row *nr = realloc(rows, nc * sizeof(*rows));
			if (nr == NULL) {
				fprintf(stderr, "psfleet ingest: out of memory\n");
				rc = -1;
				break;
			}
			rows = nr;
			cap_rows = nc;
		}
		memset(&rows[n], 0, sizeof(rows[n]));
		rows[n].line = lineno;
		if (psf_bar_csv_row(&cols, line, (size_t)len, &rows[n].bar, msg, sizeof(msg)) !=
		    PSF_OK) {
			rows[n].status = PSF_STATUS_INVALID_ARGUMENT;
			snprintf(rows[n].msg, sizeof(rows[n].msg), "%s", msg);
		}
		n++;
	}
	if (rc == 0 && !have_header) {
		fprintf(stderr, "psfleet ingest: %s has no header line (date,symbol,close,...)\n",
		    path);
		rc = -1;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	if (rc != 0) {
		free(rows);
		return rc;
	}
	*out = rows;
	*n_out = n;
	return 0;
}

/* to_proto points the wire row of each parsed line at its bar. */
static void
to_proto(line_row *r)
{
	psfleet__v1__ingest_row__init(&r->row);
	psfleet__v1__bar__init(&r->pb);
	psf_date_format(r->bar.date, r->date);
	r->pb.date = r->date;
	r->pb.close = r->bar.close; /* NaN is sent: the inferer refuses it */
	r->pb.open = wire(r->bar.open);
	r->pb.high = wire(r->bar.high);
	r->pb.low = wire(r->bar.low);
	r->pb.volume = wire(r->bar.volume);
	r->row.symbol = r->bar.symbol;
	r->row.bar = &r->pb;
}

/* One destination: an inferer (the rows of its shard) or the --connect URL. */
typedef struct dest {
	const char *id, *url;
	uint32_t shard; /* the inferer's shard; UINT32_MAX for --connect */
	size_t *idx;    /* rows sent (positions in the line_row array) */
	size_t n;
	psf_rpc_client *c;
	psf_rpc_pending *p;
	Psfleet__V1__IngestReply *reply;
	psf_rpc_status st;
	psf_err err;
} dest;

/* take merges destination d's answers into the rows (the first refusal wins;
 * a row stays OK only when every destination that got it stored it). */
static void
take(dest *d, line_row *rows, int named)
{
	for (size_t k = 0; k < d->n; k++) {
		line_row *r = &rows[d->idx[k]];
		psf_status st;
		const char *msg;
		if (d->err != PSF_OK) {
			st = d->st.code != PSF_STATUS_OK ? d->st.code : PSF_STATUS_UNAVAILABLE;
			msg = d->st.message;
		} else if (d->reply->n_results != d->n) {
			st = PSF_STATUS_INTERNAL;
			msg = "the reply has the wrong number of results";
		} else {
			st = d->reply->results[k]->status;
			msg = d->reply->results[k]->message;
		}
		if (st == PSF_STATUS_OK || r->status != PSF_STATUS_OK)
			continue;
		r->status = st;
		if (named)
			snprintf(r->msg, sizeof(r->msg), "%s: %s", d->id, msg);
		else
			snprintf(r->msg, sizeof(r->msg), "%s", msg);
	}
}

/* send_all sends every destination its rows in parallel and merges the answers. */
static int
send_all(const psf_config *cfg, dest *ds, size_t n_d, line_row *rows, long timeout_ms, int named)
{
	char token[256];
	psf_rpc_client_opts copts;
	psf_rpc_call_opts o = {(uint32_t)timeout_ms, 0, 0};

	if (psf_runtime_client_opts(cfg, token, sizeof(token), &copts) != PSF_OK) {
		fprintf(stderr, "psfleet ingest: cannot read the config's security settings\n");
		return -1;
	}
	copts.connect_now = true;
	for (size_t i = 0; i < n_d; i++) {
		dest *d = &ds[i];
		Psfleet__V1__IngestRequest req = PSFLEET__V1__INGEST_REQUEST__INIT;
		Psfleet__V1__IngestRow **rp;
		if (d->n == 0)
			continue;
		if ((rp = malloc(d->n * sizeof(*rp))) == NULL)
			return -1;
		for (size_t k = 0; k < d->n; k++)
			rp[k] = &rows[d->idx[k]].row;
		req.n_rows = d->n;
		req.rows = rp;
		d->err = psf_rpc_client_open(d->url, &copts, &d->c);
		if (d->err == PSF_OK)
			d->err = psf_rpc_call_start(d->c, PSF_M_INGEST, &req.base, &o, &d->p);
		free(rp); /* packed by call_start */
		if (d->err != PSF_OK) {
			d->st.code = PSF_STATUS_UNAVAILABLE;
			snprintf(d->st.message, sizeof(d->st.message), "cannot reach %s: %s",
			    d->url, psf_strerror(d->err));
		}
	}
	for (size_t i = 0; i < n_d; i++) {
		dest *d = &ds[i];
		if (d->p != NULL) {
			d->err = psf_rpc_pending_wait(d->p, &psfleet__v1__ingest_reply__descriptor,
			    (ProtobufCMessage **)&d->reply, &d->st);
			psf_rpc_pending_free(d->p);
			d->p = NULL;
		}
		if (d->n > 0)
			take(d, rows, named);
	}
	return 0;
}

/* plan chooses the destinations: --connect, or every inferer of the config. */
static int
plan(const psf_config *cfg, const ingest_args *a, line_row *rows, size_t n, dest **out,
    size_t *n_out)
{
	size_t n_d = 0;
	dest *ds;

	for (size_t i = 0; i < cfg->n_nodes; i++)
		n_d += cfg->nodes[i].role == PSF_ROLE_INFERER;
	if (a->url != NULL)
		n_d = 1;
	if (n_d == 0) {
		fprintf(stderr, "psfleet ingest: %s has no inferer (and no --connect URL)\n",
		    a->config);
		return -1;
	}
	if ((ds = calloc(n_d, sizeof(*ds))) == NULL)
		return -1;
	*out = ds;
	*n_out = n_d;
	for (size_t i = 0, k = 0; k < n_d; i++) {
		const psf_node_cfg *node = a->url != NULL ? NULL : &cfg->nodes[i];
		dest *d;
		if (node != NULL && node->role != PSF_ROLE_INFERER)
			continue;
		d = &ds[k++];
		d->id = node != NULL ? node->id : a->url;
		d->shard = node != NULL ? node->shard : UINT32_MAX;
		d->url = node != NULL ? psf_node_dial_url(node) : a->url;
		if ((d->idx = malloc((n > 0 ? n : 1) * sizeof(size_t))) == NULL)
			return -1;
		for (size_t r = 0; r < n; r++) {
			if (rows[r].status != PSF_STATUS_OK)
				continue;
			if (node == NULL ||
			    psf_inference_shard_of(rows[r].bar.symbol, cfg->inference.shards) ==
			        node->shard) {
				d->idx[d->n++] = r;
				rows[r].sent++;
			}
		}
	}
	for (size_t r = 0; r < n; r++) {
		if (rows[r].status != PSF_STATUS_OK || rows[r].sent > 0)
			continue;
		rows[r].status = PSF_STATUS_UNAVAILABLE;
		snprintf(rows[r].msg, sizeof(rows[r].msg), "no inferer of %s serves shard %u",
		    a->config, psf_inference_shard_of(rows[r].bar.symbol, cfg->inference.shards));
	}
	return 0;
}

/* What the replies say about the model and fine-tuning. */
typedef struct ft_info {
	uint64_t version; /* the smallest a destination answered */
	uint32_t steps;
	uint64_t rows; /* per shard, the most a replica made */
} ft_info;

static void
ft_merge(const psf_config *cfg, const dest *ds, size_t n_d, ft_info *fi)
{
	*fi = (ft_info){0, 0, 0};
	for (uint32_t s = 0; s <= cfg->inference.shards; s++) {
		uint64_t rows = 0;
		for (size_t i = 0; i < n_d; i++) {
			const Psfleet__V1__IngestReply *p = ds[i].reply;
			bool mine = s == cfg->inference.shards ? ds[i].shard == UINT32_MAX
			                                       : ds[i].shard == s;
			if (!mine || ds[i].err != PSF_OK || p == NULL)
				continue;
			if (fi->version == 0 || p->model_version < fi->version)
				fi->version = p->model_version;
			fi->steps = p->finetune_steps > fi->steps ? p->finetune_steps : fi->steps;
			rows = p->finetune_rows > rows ? p->finetune_rows : rows;
		}
		fi->rows += rows;
	}
}

static void
report(const ingest_args *a, const line_row *rows, size_t n, uint64_t ms, const ft_info *fi)
{
	size_t ok = 0, dup = 0;

	for (size_t r = 0; r < n; r++) {
		ok += rows[r].status == PSF_STATUS_OK;
		dup += rows[r].status == PSF_STATUS_ALREADY_EXISTS;
	}
	if (a->json) {
		int first = 1;
		printf("{\"rows\": %zu, \"accepted\": %zu, \"already_stored\": %zu, \"ms\": %llu, "
		       "\"model_version\": %llu, \"finetune_steps\": %u, \"finetune_rows\": %llu, "
		       "\"errors\": [",
		    n, ok, dup, (unsigned long long)ms, (unsigned long long)fi->version, fi->steps,
		    (unsigned long long)fi->rows);
		for (size_t r = 0; r < n; r++) {
			char day[11];
			if (rows[r].status == PSF_STATUS_OK)
				continue;
			psf_date_format(rows[r].bar.date, day);
			printf("%s{\"line\": %zu, \"symbol\": ", first ? "" : ", ", rows[r].line);
			psf_cli_json_str(stdout, rows[r].bar.symbol);
			printf(", \"date\": \"%s\", \"status\": \"%s\", \"message\": ",
			    rows[r].bar.date != 0 ? day : "", psf_status_name(rows[r].status));
			psf_cli_json_str(stdout, rows[r].msg);
			printf("}");
			first = 0;
		}
		printf("]}\n");
		return;
	}
	for (size_t r = 0; r < n; r++)
		if (rows[r].status != PSF_STATUS_OK)
			printf("%s:%zu: %s: %s\n", a->file, rows[r].line,
			    psf_status_name(rows[r].status), rows[r].msg);
	printf("ingested %zu of %zu rows in %llu ms (%zu refused, %zu of them already stored)\n",
	    ok, n, (unsigned long long)ms, n - ok, dup);
	if (fi->steps > 0 && fi->rows > 0)
		printf(
		    "fine-tuning: %llu new row%s for the fine-tuner; model version %llu moves on "
		    "by %u steps per round\n",
		    (unsigned long long)fi->rows, psf_plural(fi->rows),
		    (unsigned long long)fi->version, fi->steps);
}

int
psf_cmd_ingest(int argc, char **argv)
{
	ingest_args a;
	psf_config *cfg = NULL;
	line_row *rows = NULL;
	dest *ds = NULL;
	size_t n = 0, n_d = 0, ok = 0;
	char err[1024];
	uint64_t t0;
	int rc = 2;

	if (psf_cli_wants_help(argc, argv)) {
		ingest_usage(stdout);
		return 0;
	}
	if (parse_args(argc, argv, &a) != 0)
		return 2;
	if (psf_config_load(a.config, err, sizeof(err), &cfg) != PSF_OK) {
		fprintf(stderr, "psfleet ingest: %s\n", err);
		return 2;
	}
	if (read_rows(a.file, &rows, &n) != 0)
		goto out;
	for (size_t r = 0; r < n; r++)
		if (rows[r].status == PSF_STATUS_OK)
			to_proto(&rows[r]);
	if (plan(cfg, &a, rows, n, &ds, &n_d) != 0)
		goto out;
	t0 = psf_now_ms();
	if (send_all(cfg, ds, n_d, rows, a.timeout_ms, a.url == NULL) != 0)
		goto out;
	ft_info fi;
	uint64_t ms = psf_now_ms() - t0;
	ft_merge(cfg, ds, n_d, &fi);
	report(&a, rows, n, ms, &fi);
	for (size_t r = 0; r < n; r++)
		ok += rows[r].status == PSF_STATUS_OK;
	rc = ok == n ? 0 : 1;
out:
	for (size_t i = 0; i < n_d; i++) {
		if (ds[i].reply != NULL)
			protobuf_c_message_free_unpacked(&ds[i].reply->base, NULL);
		psf_rpc_client_close(ds[i].c);
		free(ds[i].idx);
	}
	free(ds);
	free(rows);
	psf_config_free(cfg);
	return rc;
}
