/* ingest.c -- new daily bars for a running inferer (the Ingest RPC,
 * docs/inference.md "Ingest").
 *
 * Copy on write: a book is never changed once built. Ingest checks every row
 * against the current book (and the rows before it in the request), builds a
 * new book with the accepted rows appended (the other symbols' rows and latest
 * feature rows copied as they are), derives a snapshot with the same weights
 * whose predictions are computed over the new book, appends the rows to the
 * journal (fsync), then swaps book and snapshot in. A request in flight keeps
 * the snapshot (and through it the book) it started with; the last reference
 * frees the old ones. Ingests and refreshes are serialised by refresh_mu, so a
 * refresh never builds a snapshot over a book an Ingest is replacing.
 *
 * Durability: accepted rows go to <run_dir>/ingest/<id>.csv before the reply;
 * at start-up the inferer loads its data, then replays its journal through the
 * same checks (a row the data file now holds too is skipped as identical). The
 * data file itself is never written. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inferer/internal.h"
#include "lib/base/log.h"
#include "lib/base/shard.h"
#include "lib/base/util.h"
#include "lib/data/bar_csv.h"
#include "lib/data/features.h"

#define INF_MAX_INGEST 100000u /* rows in one Ingest */

/* One row being ingested. */
typedef struct in_row {
	psf_bar bar;
	size_t sym; /* index in the new book: an old symbol's, or old->n + k for new one k */
	psf_status status;
	char msg[240];
} in_row;

/* One check of a request's rows against a book. */
typedef struct ingest {
	psf_inferer *inf;
	const inf_book *old;
	in_row *rows;
	size_t n, accepted;
	size_t *last_row; /* per old symbol: its last accepted row in this request, or SIZE_MAX */
	/* symbols new to the book, in the order first seen (linear search: new
	 * listings are few per day) */
	size_t *new_last; /* their last accepted row */
	size_t n_new;
	/* fine-tuning samples of the accepted rows (training.finetune.steps > 0):
	 * [accepted] slots, n_ft used */
	inf_ft_sample **ft;
	size_t n_ft;
} ingest;

static void
refuse(in_row *r, psf_status st, const char *fmt, const char *why)
{
	char day[11];

	psf_date_format(r->bar.date, day);
	r->status = st;
	snprintf(r->msg, sizeof(r->msg), fmt, r->bar.symbol, day, why);
}

/* stored_bar reads row j of a symbol's kept history as a bar. */
static void
stored_bar(const inf_symbol *sym, size_t j, psf_bar *out)
{
	const psf_series *h = &sym->hist;

	*out = (psf_bar){.date = h->date[j], .close = h->close[j]};
	out->open = h->open != NULL ? h->open[j] : NAN;
	out->high = h->high != NULL ? h->high[j] : NAN;
	out->low = h->low != NULL ? h->low[j] : NAN;
	out->volume = h->volume != NULL ? h->volume[j] : NAN;
}

/* after_bar checks r against the last bar before it (prev): a later date, or
 * the same bar again. Returns true when r may be appended. */
static bool
after_bar(in_row *r, const psf_bar *prev, const char *where)
{
	char day[11], why[120];

	if (r->bar.date > prev->date)
		return true;
	if (r->bar.date == prev->date) {
		snprintf(why, sizeof(why), "%s; nothing changed",
		    psf_bar_same(&r->bar, prev)
		        ? "the identical bar is already stored"
		        : "a different bar for that date is already stored");
		refuse(r, PSF_STATUS_ALREADY_EXISTS, "%s %s: %s", why);
		(void)where;
		return false;
	}
	psf_date_format(prev->date, day);
	snprintf(why, sizeof(why),
	    "older than the last date %s (%s): bars are appended in date order", day, where);
	refuse(r, PSF_STATUS_FAILED_PRECONDITION, "%s %s: %s", why);
	return false;
}

/* against_stored checks r against symbol sym's kept history. */
static bool
against_stored(in_row *r, const inf_symbol *sym)
{
	const psf_series *h = &sym->hist;
	size_t j;
	psf_bar b;

	if (r->bar.date > sym->latest_date)
		return true;
	j = psf_series_index(h, r->bar.date);
	if (j != SIZE_MAX && h->date[j] == r->bar.date) {
		stored_bar(sym, j, &b);
		return after_bar(r, &b, "stored");
	}
	stored_bar(sym, h->n - 1, &b);
	return after_bar(r, &b, "stored");
}

/* check_row decides row r (status OK so far) against the book and the rows
 * accepted before it. */
static void
check_row(ingest *g, size_t ri)
{
	psf_inferer *inf = g->inf;
	in_row *r = &g->rows[ri];
	size_t len = strlen(r->bar.symbol), i, k;
	uint32_t shard = psf_inference_shard_of(r->bar.symbol, inf->cfg->inference.shards);
	char why[200];

	if (psf_bar_check(&r->bar, why, sizeof(why)) != PSF_OK) {
		refuse(r, PSF_STATUS_INVALID_ARGUMENT, "%s %s: %s", why);
		return;
	}
	if (shard != inf->node->shard) {
		snprintf(why, sizeof(why),
		    "the symbol belongs to inference shard %u; %s serves shard %u", shard,
		    inf->node->id, inf->node->shard);
		refuse(r, PSF_STATUS_FAILED_PRECONDITION, "%s %s: %s", why);
		return;
	}
	if ((i = inf_book_find(g->old, r->bar.symbol, len)) != SIZE_MAX) {
		if (g->last_row[i] != SIZE_MAX
		        ? !after_bar(r, &g->rows[g->last_row[i]].bar, "earlier in this request")
		        : !against_stored(r, &g->old->syms[i]))
			return;
		g->last_row[i] = ri;
		r->sym = i;
	} else {
		for (k = 0; k < g->n_new; k++)
			if (strcmp(g->rows[g->new_last[k]].bar.symbol, r->bar.symbol) == 0)
				break;
		if (k < g->n_new &&
		    !after_bar(r, &g->rows[g->new_last[k]].bar, "earlier in this request"))
			return;
		if (k == g->n_new)
			g->n_new++;
		g->new_last[k] = ri;
		r->sym = g->old->n + k;
	}
	g->accepted++;
}

/* merge writes symbol i's kept history followed by its accepted rows (at
 * order[0..n)) into m, all five columns (NaN where absent). */
static void
merge(const ingest *g, size_t i, const size_t *order, size_t n, double *c, int32_t *d,
    psf_series *m)
{
	size_t h = i < g->old->n ? g->old->syms[i].hist.n : 0, total = h + n;
	psf_bar b;

	*m =
	    (psf_series){NULL, total, d, c, c + total, c + 2 * total, c + 3 * total, c + 4 * total};
	for (size_t j = 0; j < total; j++) {
		if (j < h)
			stored_bar(&g->old->syms[i], j, &b);
		else
			b = g->rows[order[j - h]].bar;
		d[j] = b.date;
		c[j] = b.close;
		c[total + j] = b.open;
		c[2 * total + j] = b.high;
		c[3 * total + j] = b.low;
		c[4 * total + j] = b.volume;
	}
}

/* make_samples adds to g->ft the fine-tuning samples of rows [first, s->n) of
 * the merged series s: for each, the model input of the row before it and the
 * target it makes, exactly as a trainer's table row of that day has them. A
 * row whose day before has no full input (too little history) makes none. */
static psf_err
make_samples(ingest *g, const psf_series *s, size_t first, size_t window)
{
	const psf_config *cfg = g->inf->cfg;
	size_t nx = window * cfg->n_features;

	for (size_t t = first > 0 ? first : 1; t < s->n; t++) {
		inf_ft_sample *f = malloc(sizeof(*f) + nx * sizeof(float));
		double r;
		if (f == NULL)
			return PSF_ENOMEM;
		if (psf_features_window(s, cfg->features, cfg->n_features, s->date[t - 1], window,
		        f->x, nx, NULL) != PSF_OK) {
			free(f);
			continue;
		}
		snprintf(f->symbol, sizeof(f->symbol), "%s", s->symbol);
		psf_date_format(s->date[t], f->date);
		f->n_x = nx;
		r = s->close[t] / s->close[t - 1] - 1.0; /* features.c target_value */
		f->y = cfg->target == PSF_TARGET_NEXT_CLOSE ? s->close[t]
		    : cfg->target == PSF_TARGET_NEXT_RETURN ? r
		                                            : (r > 0 ? 1.0 : 0.0);
		g->ft[g->n_ft++] = f;
	}
	return PSF_OK;
}

static void
free_samples(ingest *g)
{
	for (size_t i = 0; i < g->n_ft; i++)
		free(g->ft[i]);
	free(g->ft);
	g->ft = NULL;
	g->n_ft = 0;
}

/* The arrays build_book works with, freed together. */
typedef struct build_mem {
	size_t *count, *start, *order;
	void *tmp;
} build_mem;

static void
build_mem_free(build_mem *m)
{
	free(m->count);
	free(m->start);
	free(m->order);
	free(m->tmp);
}

/* alloc_book allocates a book of n symbols and `rows` kept rows. */
static inf_book *
alloc_book(const inf_book *old, size_t n, size_t rows)
{
	inf_book *b = calloc(1, sizeof(*b));
	size_t cap = 16;

	if (b == NULL)
		return NULL;
	atomic_init(&b->refs, 1);
	while (cap < 2 * n)
		cap *= 2;
	b->mask = cap - 1;
	b->n_features = old->n_features;
	b->window = old->window;
	b->need = old->need;
	b->syms = calloc(n > 0 ? n : 1, sizeof(*b->syms));
	b->x_latest = calloc((n > 0 ? n : 1) * (b->window > 0 ? b->window : 1) *
	        (b->n_features > 0 ? b->n_features : 1),
	    sizeof(float));
	b->slots = calloc(cap, sizeof(*b->slots));
	b->storage = malloc((rows > 0 ? rows : 1) * (5 * sizeof(double) + sizeof(int32_t)));
	if (!b->syms || !b->x_latest || !b->slots || !b->storage) {
		inf_book_put(b);
		return NULL;
	}
	return b;
}

/* build_book makes the new book: the old one plus the accepted rows. */
static psf_err
build_book(ingest *g, inf_book **out)
{
	const psf_config *cfg = g->inf->cfg;
	const inf_book *old = g->old;
	size_t n = old->n + g->n_new, hd = cfg->inference.history_days, rows = 0, widest = 0;
	build_mem m = {calloc(n, sizeof(size_t)), calloc(n + 1, sizeof(size_t)),
	    calloc(g->accepted, sizeof(size_t)), NULL};
	inf_book *b = NULL;
	double *dbl;
	int32_t *day;

	if (!m.count || !m.start || !m.order)
		goto oom;
	for (size_t r = 0; r < g->n; r++)
		if (g->rows[r].status == PSF_STATUS_OK)
			m.count[g->rows[r].sym]++;
	for (size_t i = 0; i < n; i++) {
		size_t have = (i < old->n ? old->syms[i].hist.n : 0) + m.count[i];
		rows += have < hd ? have : hd;
		widest = have > widest ? have : widest;
		m.start[i + 1] = m.start[i] + m.count[i];
		m.count[i] = 0;
	}
	for (size_t r = 0; r < g->n; r++) /* request order within a symbol: date order */
		if (g->rows[r].status == PSF_STATUS_OK)
			m.order[m.start[g->rows[r].sym] + m.count[g->rows[r].sym]++] = r;
	if ((m.tmp = malloc((widest > 0 ? widest : 1) * (5 * sizeof(double) + sizeof(int32_t)))) ==
	        NULL ||
	    (b = alloc_book(old, n, rows)) == NULL)
		goto oom;
	dbl = b->storage;
	day = (int32_t *)(dbl + 5 * rows);
	for (size_t i = 0; i < n; i++) {
		inf_symbol *sym = &b->syms[i];
		const psf_bar *first = m.count[i] > 0 ? &g->rows[m.order[m.start[i]]].bar : NULL;
		size_t slot;
		if (i < old->n) {
			*sym = old->syms[i];
		} else {
			memcpy(sym->name, first->symbol, sizeof(sym->name));
			sym->row = psf_symbol_row(sym->name);
		}
		if (m.count[i] == 0) { /* unchanged: its rows and latest feature row as they are */
			inf_book_keep_rows(sym, &old->syms[i].hist, old->syms[i].hist.n, &dbl,
			    &day);
			memcpy(b->x_latest + i * b->window * b->n_features,
			    old->x_latest + i * old->window * old->n_features,
			    b->window * b->n_features * sizeof(float));
		} else {
			psf_series s;
			double *c = m.tmp;
			merge(g, i, m.order + m.start[i], m.count[i], c,
			    (int32_t *)(c + 5 * widest), &s);
			s.symbol = sym->name;
			if (g->ft != NULL &&
			    make_samples(g, &s, s.n - m.count[i], b->window) != PSF_OK)
				goto oom;
			inf_book_keep_rows(sym, &s, s.n < hd ? s.n : hd, &dbl, &day);
			inf_book_latest_row(cfg, b, i, &s);
		}
		for (slot = (size_t)psf_symbol_row(sym->name) & b->mask; b->slots[slot] != 0;
		     slot = (slot + 1) & b->mask)
			;
		b->slots[slot] = (uint32_t)(i + 1);
		b->n++;
	}
	build_mem_free(&m);
	*out = b;
	return PSF_OK;
oom:
	build_mem_free(&m);
	inf_book_put(b);
	return PSF_ENOMEM;
}

/* journal_append writes the accepted rows to the journal and syncs it; on a
 * failure the journal is cut back to where it was and why says what failed. */
static psf_err
journal_append(psf_inferer *inf, const ingest *g, char *why, size_t len)
{
	size_t cap = g->accepted * 200 + 1, used = 0;
	char *buf = malloc(cap);
	off_t before;
	psf_err err = PSF_OK;

	if (buf == NULL) {
		snprintf(why, len, "out of memory");
		return PSF_ENOMEM;
	}
	for (size_t r = 0; r < g->n; r++)
		if (g->rows[r].status == PSF_STATUS_OK)
			used += psf_bar_csv_format(&g->rows[r].bar, buf + used, cap - used);
	if ((before = lseek(inf->journal_fd, 0, SEEK_END)) < 0)
		err = PSF_ESYS;
	if (err == PSF_OK)
		err = psf_write_all(inf->journal_fd, buf, used);
	if (err == PSF_OK && fdatasync(inf->journal_fd) != 0)
		err = PSF_ESYS;
	if (err != PSF_OK) {
		snprintf(why, len, "not stored: cannot write the journal %.100s: %.40s",
		    inf->journal_path, strerror(errno));
		if (before >= 0 && ftruncate(inf->journal_fd, before) != 0)
			psf_log_err("inferer", "cannot cut %s back after a failed write: %s",
			    inf->journal_path, strerror(errno));
	}
	free(buf);
	return err;
}

/* fail_accepted turns every accepted row into a failure (nothing was stored). */
static void
fail_accepted(ingest *g, psf_status st, const char *why)
{
	for (size_t r = 0; r < g->n; r++) {
		if (g->rows[r].status != PSF_STATUS_OK)
			continue;
		refuse(&g->rows[r], st, "%s %s: %s", why);
	}
	g->accepted = 0;
}

/* apply checks rows[0..n) (those still OK), and stores the accepted ones:
 * journal (when `journal`), new book, new snapshot, fine-tuning samples
 * queued (*n_ft of them; may be NULL). Returns the rows accepted. */
static size_t
apply(psf_inferer *inf, in_row *rows, size_t n, bool journal, size_t *n_ft)
{
	ingest g = {inf, NULL, rows, n, 0, NULL, NULL, 0, NULL, 0};
	inf_book *nb = NULL, *old;
	inf_snap *cur = NULL, *ns = NULL;
	char why[200];
	psf_err err;

	pthread_mutex_lock(&inf->refresh_mu);
	g.old = old = inf_book_current(inf);
	g.last_row = malloc((old->n > 0 ? old->n : 1) * sizeof(size_t));
	g.new_last = malloc((n > 0 ? n : 1) * sizeof(size_t));
	if (g.last_row == NULL || g.new_last == NULL) {
		for (size_t r = 0; r < n; r++)
			if (rows[r].status == PSF_STATUS_OK)
				refuse(&rows[r], PSF_STATUS_RESOURCE_EXHAUSTED, "%s %s: %s",
				    "out of memory");
		goto out;
	}
	for (size_t i = 0; i < old->n; i++)
		g.last_row[i] = SIZE_MAX;
	for (size_t r = 0; r < n; r++)
		if (rows[r].status == PSF_STATUS_OK)
			check_row(&g, r);
	if (g.accepted == 0)
		goto out;
	if (inf->cfg->training.finetune.steps > 0 &&
	    (g.ft = calloc(g.accepted, sizeof(*g.ft))) == NULL) {
		fail_accepted(&g, PSF_STATUS_RESOURCE_EXHAUSTED, "not stored: out of memory");
		goto out;
	}
	if ((err = build_book(&g, &nb)) != PSF_OK) {
		fail_accepted(&g, PSF_STATUS_RESOURCE_EXHAUSTED, "not stored: out of memory");
		goto out;
	}
	cur = inf_snap_get(inf);
	if (cur != NULL && (err = inf_snap_derive(inf, cur, nb, &ns)) != PSF_OK) {
		snprintf(why, sizeof(why), "not stored: %s", psf_strerror(err));
		fail_accepted(&g, PSF_STATUS_INTERNAL, why);
		goto out;
	}
	if (journal && inf->journal_fd >= 0 &&
	    journal_append(inf, &g, why, sizeof(why)) != PSF_OK) {
		fail_accepted(&g, PSF_STATUS_INTERNAL, why);
		goto out;
	}
	pthread_mutex_lock(&inf->snap_mu);
	inf->book = nb; /* the inferer takes nb's reference; old's is dropped below */
	pthread_mutex_unlock(&inf->snap_mu);
	psf_gauge_set(inf->g_symbols, (double)nb->n);
	nb = NULL;
	inf_book_put(old); /* the inferer's reference */
	if (ns != NULL) {
		inf_snap_publish(inf, ns);
		ns = NULL;
	}
	psf_counter_add(inf->c_ingested, g.accepted);
	if (n_ft != NULL)
		*n_ft = g.n_ft;
	if (g.n_ft > 0) {
		if (inf_ft_queue(inf, g.ft, g.n_ft) == PSF_OK)
			g.n_ft = 0; /* the queue took them */
		else
			psf_log_err("inferer",
			    "out of memory queueing %zu fine-tuning rows: they are in the journal "
			    "and are sent when the inferer restarts",
			    g.n_ft);
	}
out:
	free_samples(&g);
	inf_snap_put(ns);
	inf_snap_put(cur);
	inf_book_put(nb);
	inf_book_put(old); /* ours, from inf_book_current */
	pthread_mutex_unlock(&inf->refresh_mu);
	free(g.last_row);
	free(g.new_last);
	return g.accepted;
}

/* from_proto reads one request row into r (status OK), or refuses it. */
static void
from_proto(const Psfleet__V1__IngestRow *in, in_row *r)
{
	const Psfleet__V1__Bar *b = in->bar;
	size_t len = strlen(in->symbol);
	const double opt[4] = {b != NULL ? b->open : 0, b != NULL ? b->high : 0,
	    b != NULL ? b->low : 0, b != NULL ? b->volume : 0};
	double *to[4] = {&r->bar.open, &r->bar.high, &r->bar.low, &r->bar.volume};

	r->status = PSF_STATUS_INVALID_ARGUMENT;
	if (!psf_bar_symbol_valid(in->symbol, len)) {
		snprintf(r->msg, sizeof(r->msg),
		    "symbol '%.70s' is not valid (1-%d of A-Z a-z 0-9 . _ ^ -)", in->symbol,
		    PSF_SYMBOL_MAX);
		return;
	}
	memcpy(r->bar.symbol, in->symbol, len + 1);
	if (b == NULL) {
		snprintf(r->msg, sizeof(r->msg), "%s: the row has no bar", in->symbol);
		return;
	}
	if (psf_date_parse(b->date, strlen(b->date), &r->bar.date) != PSF_OK) {
		snprintf(r->msg, sizeof(r->msg), "%s: date '%.32s' is not a YYYY-MM-DD date",
		    in->symbol, b->date);
		return;
	}
	r->bar.close = b->close;
	for (int k = 0; k < 4; k++) /* proto3: an absent field reads 0 */
		*to[k] = opt[k] == 0 ? NAN : opt[k];
	r->status = PSF_STATUS_OK;
}

void
psf_inf_rpc_ingest(Psfleet__V1__Inference_Service *svc, const Psfleet__V1__IngestRequest *in,
    Psfleet__V1__IngestReply_Closure done, void *call)
{
	psf_inferer *inf = psf_rpc_call_user(call);
	Psfleet__V1__IngestReply r = PSFLEET__V1__INGEST_REPLY__INIT;
	size_t n = in->n_rows;
	in_row *rows;
	Psfleet__V1__IngestResult *res;
	Psfleet__V1__IngestResult **resp;

	(void)svc;
	if (n > INF_MAX_INGEST) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "%zu rows: at most %u per Ingest",
		    n, INF_MAX_INGEST);
		done(NULL, call);
		return;
	}
	rows = calloc(n > 0 ? n : 1, sizeof(*rows));
	res = calloc(n > 0 ? n : 1, sizeof(*res));
	resp = calloc(n > 0 ? n : 1, sizeof(*resp));
	if (rows == NULL || res == NULL || resp == NULL) {
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory for %zu rows", n);
		done(NULL, call);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		from_proto(in->rows[i], &rows[i]);
	size_t n_ft = 0;
	r.accepted = apply(inf, rows, n, true, &n_ft);
	{
		inf_snap *s = inf_snap_get(inf);
		r.model_version = s != NULL ? s->version : 0;
		inf_snap_put(s);
	}
	r.finetune_steps = inf->cfg->training.finetune.steps;
	r.finetune_rows = n_ft;
	for (size_t i = 0; i < n; i++) {
		psfleet__v1__ingest_result__init(&res[i]);
		res[i].status = rows[i].status;
		res[i].message = rows[i].msg;
		resp[i] = &res[i];
	}
	r.n_results = n;
	r.results = resp;
	if (r.accepted > 0)
		psf_log_info("inferer", "ingested %llu of %zu rows", (unsigned long long)r.accepted,
		    n);
	done(&r, call);
out:
	free(rows);
	free(res);
	free(resp);
}

/* ---------------------------------------------------------------- journal */

/* replay reads the journal at path (if any) into the book. *valid_end gets the
 * length of its complete lines (a torn last line is cut off by the caller). */
static psf_err
replay(psf_inferer *inf, FILE *f, off_t *valid_end)
{
	char *line = NULL, msg[200];
	size_t cap = 0, n = 0, cap_rows = 0, bad = 0, lineno = 0;
	ssize_t len;
	psf_bar_cols cols;
	in_row *rows = NULL;
	bool have_header = false;

	*valid_end = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[len - 1] != '\n')
			break; /* torn by a crash during a write: never acknowledged */
		*valid_end += len;
		line[--len] = '\0';
		if (!have_header) {
			if (psf_bar_csv_header(line, (size_t)len, &cols, msg, sizeof(msg)) !=
			    PSF_OK) {
				psf_log_err("inferer", "%s:1: %s", inf->journal_path, msg);
				free(line);
				free(rows);
				return PSF_EINVAL;
			}
			have_header = true;
			continue;
		}
		if (n == cap_rows) {
			size_t nc = cap_rows ? 2 * cap_rows : 256;
			in_row *nr = realloc(rows, nc * sizeof(*rows));
			if (nr == NULL) {
				free(line);
				free(rows);
				return PSF_ENOMEM;
			}
			rows = nr;
			cap_rows = nc;
		}
		memset(&rows[n], 0, sizeof(rows[n]));
		if (psf_bar_csv_row(&cols, line, (size_t)len, &rows[n].bar, msg, sizeof(msg)) !=
		    PSF_OK) {
			psf_log_warn("inferer", "%s:%zu: %s; row skipped", inf->journal_path,
			    lineno, msg);
			bad++;
			continue;
		}
		n++;
	}
	free(line);
	if (n > 0) {
		size_t ok = apply(inf, rows, n, false, NULL), dup = 0, shown = 0;
		for (size_t i = 0; i < n; i++) {
			if (rows[i].status == PSF_STATUS_ALREADY_EXISTS)
				dup++;
			else if (rows[i].status != PSF_STATUS_OK && shown++ < 5)
				psf_log_warn("inferer", "%s: %s; row skipped", inf->journal_path,
				    rows[i].msg);
		}
		psf_log_info("inferer",
		    "replayed %s: %zu rows restored, %zu already in the data, %zu skipped",
		    inf->journal_path, ok, dup, n - ok - dup + bad);
	}
	free(rows);
	return PSF_OK;
}

psf_err
inf_journal_open(psf_inferer *inf)
{
	char dir[512];
	FILE *f;
	off_t valid_end = 0;
	struct stat st;
	psf_err err = PSF_OK;

	snprintf(dir, sizeof(dir), "%s/ingest", inf->cfg->run_dir);
	if ((size_t)snprintf(inf->journal_path, sizeof(inf->journal_path), "%s/%s.csv", dir,
	        inf->node->id) >= sizeof(inf->journal_path)) {
		psf_log_err("inferer", "the ingest journal's path under %s is too long", dir);
		return PSF_EINVAL;
	}
	if ((f = fopen(inf->journal_path, "r")) != NULL) {
		err = replay(inf, f, &valid_end);
		fclose(f);
		if (err != PSF_OK)
			return err;
	} else if (errno != ENOENT) {
		psf_log_err("inferer", "cannot read %s: %s", inf->journal_path, strerror(errno));
		return PSF_ESYS;
	}
	if ((err = psf_mkdir_p(dir)) != PSF_OK) {
		psf_log_err("inferer", "cannot create %s: %s", dir, psf_strerror(err));
		return err;
	}
	inf->journal_fd = open(inf->journal_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (inf->journal_fd < 0 || fstat(inf->journal_fd, &st) != 0) {
		psf_log_err("inferer", "cannot open %s: %s", inf->journal_path, strerror(errno));
		return PSF_ESYS;
	}
	if (st.st_size > valid_end && valid_end > 0) {
		psf_log_warn("inferer",
		    "%s ends with a torn line (a crash during a write); cut off",
		    inf->journal_path);
		if (ftruncate(inf->journal_fd, valid_end) != 0)
			return PSF_ESYS;
	}
	if ((st.st_size == 0 || valid_end == 0) &&
	    (ftruncate(inf->journal_fd, 0) != 0 ||
	        write(inf->journal_fd, PSF_BAR_CSV_HEADER "\n", sizeof(PSF_BAR_CSV_HEADER)) !=
	            (ssize_t)sizeof(PSF_BAR_CSV_HEADER))) {
		psf_log_err("inferer", "cannot write %s: %s", inf->journal_path, strerror(errno));
		return PSF_ESYS;
	}
	return PSF_OK;
}

void
inf_journal_close(psf_inferer *inf)
{
	if (inf->journal_fd >= 0)
		close(inf->journal_fd);
	inf->journal_fd = -1;
}
