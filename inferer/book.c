/* book.c -- the symbols an inferer serves, loaded once at start-up.
 *
 * Only the rows of this inferer's shard are loaded (the loader drops other
 * symbols' rows after checking their field count). The standardisation
 * statistics are not computed here: they are the ones the trainers all-reduced
 * through the ps, and arrive with every snapshot (snap.c). The latest feature
 * row of each served symbol is computed from its full series, exactly as the
 * trainers' table has it (ewm runs over the whole history), and kept raw. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "inferer/internal.h"
#include "lib/base/log.h"
#include "lib/base/shard.h"
#include "lib/base/util.h"
#include "lib/data/features.h"

static size_t
slot_of(const char *symbol, size_t len, size_t mask)
{
	return (size_t)XXH3_64bits(symbol, len) & mask;
}

size_t
inf_book_find(const inf_book *b, const char *symbol, size_t len)
{
	size_t i = slot_of(symbol, len, b->mask);

	for (;; i = (i + 1) & b->mask) {
		uint32_t v = b->slots[i];
		if (v == 0)
			return SIZE_MAX;
		if (strncmp(b->syms[v - 1].name, symbol, len) == 0 &&
		    b->syms[v - 1].name[len] == '\0')
			return v - 1;
	}
}

void
inf_book_put(inf_book *b)
{
	if (b == NULL || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(b->syms);
	free(b->x_latest);
	free(b->slots);
	free(b->storage);
	free(b);
}

void
inf_book_keep_rows(inf_symbol *sym, const psf_series *src, size_t keep, double **dbl, int32_t **day)
{
	size_t from = src->n - keep;
	const double *in[5] = {src->close, src->open, src->high, src->low, src->volume};
	const double *out[5];

	for (int c = 0; c < 5; c++) {
		if (in[c] == NULL) {
			out[c] = NULL;
			continue;
		}
		memcpy(*dbl, in[c] + from, keep * sizeof(double));
		out[c] = *dbl;
		*dbl += keep;
	}
	memcpy(*day, src->date + from, keep * sizeof(int32_t));
	sym->hist = (psf_series){sym->name, keep, *day, out[0], out[1], out[2], out[3], out[4]};
	*day += keep;
}

void
inf_book_latest_row(const psf_config *cfg, inf_book *b, size_t i, const psf_series *full)
{
	inf_symbol *sym = &b->syms[i];
	float *x = b->x_latest + i * b->window * b->n_features;

	sym->latest_date = full->date[full->n - 1];
	sym->latest_close = full->close[full->n - 1];
	psf_date_format(sym->latest_date, sym->latest_day);
	sym->latest_err = psf_features_window(full, cfg->features, cfg->n_features, PSF_DATE_LAST,
	    b->window, x, b->window * b->n_features, NULL);
}

/* The inference shard whose symbols the loader keeps. */
typedef struct shard_keep {
	uint32_t shard, n_shards;
} shard_keep;

static int
keep_shard(const char *symbol, void *arg)
{
	const shard_keep *k = arg;

	return psf_inference_shard_of(symbol, k->n_shards) == k->shard;
}

/* fill keeps the served symbols' history and latest rows, and indexes them. */
static psf_err
fill(const psf_config *cfg, const psf_dataset *ds, uint32_t shard, uint32_t n_shards, inf_book *b)
{
	size_t n_all = psf_dataset_n_series(ds), rows = 0, n = 0, cap = 16;
	size_t hd = cfg->inference.history_days;
	double *dbl;
	int32_t *day;

	for (size_t i = 0; i < n_all; i++) {
		const psf_series *s = psf_dataset_series(ds, i);
		if (psf_inference_shard_of(s->symbol, n_shards) == shard) {
			rows += s->n < hd ? s->n : hd;
			n++;
		}
	}
	while (cap < 2 * n)
		cap *= 2;
	b->mask = cap - 1;
	b->n_features = cfg->n_features;
	b->window = psf_model_kind_is_recurrent(cfg->model.kind) ? cfg->model.window : 1;
	b->syms = calloc(n > 0 ? n : 1, sizeof(*b->syms));
	b->x_latest = calloc((n > 0 ? n : 1) * b->window * b->n_features, sizeof(float));
	b->slots = calloc(cap, sizeof(*b->slots));
	b->storage = malloc((rows > 0 ? rows : 1) * (5 * sizeof(double) + sizeof(int32_t)));
	if (!b->syms || !b->x_latest || !b->slots || !b->storage)
		return PSF_ENOMEM;
	dbl = b->storage;
	day = (int32_t *)(dbl + 5 * rows);
	for (size_t i = 0; i < n_all; i++) {
		const psf_series *s = psf_dataset_series(ds, i);
		inf_symbol *sym = &b->syms[b->n];
		size_t len = strlen(s->symbol), slot;

		if (psf_inference_shard_of(s->symbol, n_shards) != shard || s->n == 0)
			continue;
		memcpy(sym->name, s->symbol, len + 1);
		sym->row = psf_symbol_row(s->symbol);
		inf_book_keep_rows(sym, s, s->n < hd ? s->n : hd, &dbl, &day);
		inf_book_latest_row(cfg, b, b->n, s);
		for (slot = slot_of(s->symbol, len, b->mask); b->slots[slot] != 0;
		     slot = (slot + 1) & b->mask)
			;
		b->slots[slot] = (uint32_t)(b->n + 1);
		b->n++;
	}
	return PSF_OK;
}

psf_err
inf_book_load(const psf_config *cfg, uint32_t shard, uint32_t n_shards, inf_book **out)
{
	char errbuf[512];
	shard_keep keep = {shard, n_shards};
	psf_data_opts dopts;
	psf_dataset *ds = NULL;
	inf_book *b = calloc(1, sizeof(*b));
	uint64_t t0 = psf_now_ms();
	psf_err err;

	if (b == NULL)
		return PSF_ENOMEM;
	atomic_init(&b->refs, 1);
	psf_data_opts_config(cfg, &dopts);
	dopts.keep = keep_shard;
	dopts.keep_arg = &keep;
	if ((err = psf_data_load(cfg->data.path, &dopts, errbuf, sizeof(errbuf), &ds)) != PSF_OK) {
		psf_log_err("inferer", "%s", errbuf);
		goto out;
	}
	b->need = psf_features_history(cfg->features, cfg->n_features);
	if ((err = fill(cfg, ds, shard, n_shards, b)) != PSF_OK)
		goto out;
	psf_log_info("inferer",
	    "serving %zu symbols (shard %u of %u), %zu rows read in %llu ms; "
	    "standardisation statistics come from the ps",
	    b->n, shard, n_shards, psf_dataset_n_rows(ds), (unsigned long long)(psf_now_ms() - t0));
	*out = b;
	b = NULL;
out:
	if (err == PSF_ENOMEM)
		psf_log_err("inferer", "out of memory loading %s", cfg->data.path);
	psf_dataset_free(ds);
	inf_book_put(b);
	return err;
}
