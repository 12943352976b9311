/* plan.c -- which symbols a trainer owns, and the order it visits its rows. */
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/shard.h"
#include "lib/data/data.h"
#include "lib/model/model.h"
#include "trainer/internal.h"
#include "trainer/trainer.h"

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
psf_shard_plan_keep(const char *symbol, void *arg)
{
	const psf_shard_plan *plan = arg;

	return bsearch(&symbol, plan->symbols, plan->n, sizeof(char *), cmp_str) != NULL;
}

void
psf_shard_plan_fini(psf_shard_plan *plan)
{
	for (size_t i = 0; plan->symbols != NULL && i < plan->n; i++)
		free(plan->symbols[i]);
	free(plan->symbols);
	memset(plan, 0, sizeof(*plan));
}

/* assign_bins puts every symbol of idx in a trainer bin (bins[i]). */
static psf_err
assign_bins(const psf_config *cfg, const psf_data_index *idx, size_t *bins)
{
	size_t n = psf_data_index_n_symbols(idx), nt = cfg->n_trainers;
	uint64_t *seeds = calloc(nt, sizeof(*seeds));
	psf_shard_item *items = NULL;
	psf_err err = PSF_OK;

	if (seeds == NULL)
		return PSF_ENOMEM;
	for (size_t i = 0; i < nt; i++)
		seeds[i] = psf_shard_node_seed(psf_config_role_node(cfg, PSF_ROLE_TRAINER, i)->id);
	if (cfg->data.shard_by == PSF_SHARD_BY_HASH) {
		for (size_t i = 0; i < n; i++)
			bins[i] =
			    psf_shard_pick_str(psf_data_index_symbol(idx, i, NULL), seeds, nt);
		goto out;
	}
	if ((items = calloc(n > 0 ? n : 1, sizeof(*items))) == NULL) {
		err = PSF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		items[i].symbol = psf_data_index_symbol(idx, i, &items[i].rows);
	err = psf_shard_balance(items, n, nt, bins);
out:
	free(items);
	free(seeds);
	return err;
}

/* scan_assign scans the data and puts each of its symbols in a trainer bin:
 * *bins_out[i] for symbol i of *idx_out. The caller frees both. */
static psf_err
scan_assign(const psf_config *cfg, psf_data_index **idx_out, size_t **bins_out, char *errbuf,
    size_t errlen)
{
	psf_data_index *idx = NULL;
	size_t *bins = NULL, n;
	psf_data_opts dopts;
	psf_err err;

	psf_data_opts_config(cfg, &dopts);
	if ((err = psf_data_scan_opts(cfg->data.path, &dopts, errbuf, errlen, &idx)) != PSF_OK)
		return err;
	n = psf_data_index_n_symbols(idx);
	if ((bins = calloc(n > 0 ? n : 1, sizeof(*bins))) == NULL) {
		err = PSF_ENOMEM;
		snprintf(errbuf, errlen, "cannot assign symbols: %s", psf_strerror(err));
		goto out;
	}
	if ((err = assign_bins(cfg, idx, bins)) != PSF_OK) {
		snprintf(errbuf, errlen, "cannot assign symbols: %s", psf_strerror(err));
		goto out;
	}
	*idx_out = idx;
	*bins_out = bins;
	idx = NULL;
	bins = NULL;
out:
	free(bins);
	psf_data_index_free(idx);
	return err;
}

psf_err
psf_trainer_plan(const psf_config *cfg, size_t index, psf_shard_plan *plan, char *errbuf,
    size_t errlen)
{
	psf_data_index *idx = NULL;
	size_t *bins = NULL, n, n_dates, mine = 0;
	uint64_t rows = 0, all_rows = 0, r;
	const int32_t *dates;
	psf_err err;

	memset(plan, 0, sizeof(*plan));
	if ((err = scan_assign(cfg, &idx, &bins, errbuf, errlen)) != PSF_OK)
		return err;
	n = psf_data_index_n_symbols(idx);
	dates = psf_data_index_dates(idx, &n_dates);
	if (cfg->data.train_end != NULL) { /* split the dates before the cut */
		int32_t end;
		if (psf_date_parse(cfg->data.train_end, strlen(cfg->data.train_end), &end) !=
		    PSF_OK) {
			snprintf(errbuf, errlen, "data.train_end '%s' is not a calendar date",
			    cfg->data.train_end);
			err = PSF_EINVAL;
			goto out;
		}
		while (n_dates > 0 && dates[n_dates - 1] >= end)
			n_dates--;
		plan->date_end = end;
	}
	if ((err = psf_data_cutoff_date(dates, n_dates, cfg->data.test_fraction, &plan->cutoff)) !=
	    PSF_OK) {
		snprintf(errbuf, errlen, "%s: no dates to split", cfg->data.path);
		goto out;
	}
	if ((plan->symbols = calloc(n > 0 ? n : 1, sizeof(char *))) == NULL) {
		err = PSF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *sym = psf_data_index_symbol(idx, i, &r);

		all_rows += r;
		if (bins[i] != index)
			continue;
		if ((plan->symbols[mine] = strdup(sym)) == NULL) {
			err = PSF_ENOMEM;
			goto out;
		}
		mine++;
		rows += r;
	}
	plan->n = mine;
	qsort(plan->symbols, plan->n, sizeof(char *), cmp_str);
	{
		char day[11];
		psf_date_format(plan->cutoff, day);
		psf_log_info("trainer",
		    "owns %zu of %zu symbols, %llu of %llu rows (shard_by %s); test "
		    "rows from %s",
		    mine, n, (unsigned long long)rows, (unsigned long long)all_rows,
		    psf_shard_by_name(cfg->data.shard_by), day);
	}
out:
	free(bins);
	psf_data_index_free(idx);
	if (err != PSF_OK)
		psf_shard_plan_fini(plan);
	return err;
}

void
psf_trainer_split_free(psf_trainer_split *s)
{
	if (s == NULL)
		return;
	free(s->symbols);
	free(s->rows);
	free(s->keys);
	free(s->floats);
	free(s);
}

/* count_keys adds the keys of model m (dense keys, and the per-symbol keys of
 * every symbol of idx) to the ps node that owns each, as the workers route them. */
static psf_err
count_keys(const psf_config *cfg, const psf_model *m, const psf_data_index *idx,
    psf_trainer_split *s)
{
	size_t nd = psf_model_n_dense_keys(m), ns = psf_model_n_symbol_tensors(m), n;
	size_t cap = nd > ns ? nd : ns;
	uint64_t *keys = malloc((cap > 0 ? cap : 1) * sizeof(*keys));
	uint64_t *seeds = calloc(cfg->n_shards, sizeof(*seeds));
	psf_err err = PSF_ENOMEM;

	if (keys == NULL || seeds == NULL)
		goto out;
	for (size_t i = 0; i < cfg->n_shards; i++)
		seeds[i] = psf_shard_node_seed(psf_config_role_node(cfg, PSF_ROLE_PS, i)->id);
	err = psf_model_dense_keys(m, keys, NULL, cap, &n);
	for (size_t sym = 0; err == PSF_OK; sym++) {
		for (size_t k = 0; k < n; k++) {
			size_t p =
			    cfg->n_shards == 1 ? 0 : psf_shard_pick(keys[k], seeds, cfg->n_shards);
			s->keys[p]++;
			s->floats[p] += psf_model_key_len(m, keys[k]);
		}
		if (ns == 0 || sym >= psf_data_index_n_symbols(idx))
			break;
		uint64_t row = psf_symbol_row(psf_data_index_symbol(idx, sym, NULL));
		err = psf_model_symbol_keys(m, &row, 1, keys, NULL, cap, &n);
	}
out:
	free(seeds);
	free(keys);
	return err;
}

psf_err
psf_trainer_split_new(const psf_config *cfg, char *errbuf, size_t errlen, psf_trainer_split **out)
{
	psf_trainer_split *s = calloc(1, sizeof(*s));
	psf_data_index *idx = NULL;
	psf_model *m = NULL;
	size_t *bins = NULL, nt = cfg->n_trainers;
	psf_err err = PSF_ENOMEM;

	if (s == NULL)
		return PSF_ENOMEM;
	s->n_trainers = nt;
	s->n_ps = cfg->n_shards;
	s->symbols = calloc(nt > 0 ? nt : 1, sizeof(*s->symbols));
	s->rows = calloc(nt > 0 ? nt : 1, sizeof(*s->rows));
	s->keys = calloc(cfg->n_shards > 0 ? cfg->n_shards : 1, sizeof(*s->keys));
	s->floats = calloc(cfg->n_shards > 0 ? cfg->n_shards : 1, sizeof(*s->floats));
	if (!s->symbols || !s->rows || !s->keys || !s->floats)
		goto out;
	if (nt > 0 && (err = scan_assign(cfg, &idx, &bins, errbuf, errlen)) != PSF_OK)
		goto out;
	for (size_t i = 0; idx != NULL && i < psf_data_index_n_symbols(idx); i++) {
		uint64_t r;
		(void)psf_data_index_symbol(idx, i, &r);
		s->symbols[bins[i]]++;
		s->rows[bins[i]] += r;
		s->total_symbols++;
		s->total_rows += r;
	}
	if ((err = psf_model_new(&cfg->model, (uint32_t)cfg->n_features, cfg->target, cfg->seed,
	         &m)) != PSF_OK) {
		snprintf(errbuf, errlen, "cannot build the model: %s", psf_strerror(err));
		goto out;
	}
	if (idx == NULL && psf_model_n_symbol_tensors(m) > 0 &&
	    (err = psf_data_scan(cfg->data.path, cfg->data.bad_rows, errbuf, errlen, &idx)) !=
	        PSF_OK)
		goto out;
	err = count_keys(cfg, m, idx, s);
out:
	psf_model_free(m);
	free(bins);
	psf_data_index_free(idx);
	if (err != PSF_OK) {
		if (err == PSF_ENOMEM)
			snprintf(errbuf, errlen, "out of memory");
		psf_trainer_split_free(s);
		return err;
	}
	*out = s;
	return PSF_OK;
}

static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void
psf_trainer_permute(uint32_t *perm, size_t n, uint64_t seed, uint32_t trainer, uint64_t epoch)
{
	uint64_t s = seed ^ ((uint64_t)trainer << 40) ^ (epoch * 0x632be59bd9b4e019ull);

	for (size_t i = 0; i < n; i++)
		perm[i] = (uint32_t)i;
	if (seed == 0)
		return;
	for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
		size_t j = (size_t)(splitmix64(&s) % i);
		uint32_t tmp = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = tmp;
	}
}
