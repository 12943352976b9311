/* plan.c -- which symbols a trainer owns, and the order it visits its rows. */
#include <stdlib.h>
#include <string.h>

#include "common/data.h"
#include "common/log.h"
#include "common/shard.h"
#include "trainer/internal.h"

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
			bins[i] = psf_shard_pick_str(psf_data_index_symbol(idx, i, NULL), seeds, nt);
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

psf_err
psf_trainer_plan(const psf_config *cfg, size_t index, psf_shard_plan *plan, char *errbuf,
    size_t errlen)
{
	psf_data_index *idx = NULL;
	size_t *bins = NULL, n, n_dates, mine = 0;
	const int32_t *dates;
	psf_err err;

	memset(plan, 0, sizeof(*plan));
	if ((err = psf_data_scan(cfg->data.path, cfg->data.bad_rows, errbuf, errlen, &idx)) != PSF_OK)
		return err;
	n = psf_data_index_n_symbols(idx);
	dates = psf_data_index_dates(idx, &n_dates);
	if ((err = psf_data_cutoff_date(dates, n_dates, cfg->data.test_fraction, &plan->cutoff)) !=
	    PSF_OK) {
		snprintf(errbuf, errlen, "%s: no dates to split", cfg->data.path);
		goto out;
	}
	bins = calloc(n > 0 ? n : 1, sizeof(*bins));
	plan->symbols = calloc(n > 0 ? n : 1, sizeof(char *));
	if (bins == NULL || plan->symbols == NULL) {
		err = PSF_ENOMEM;
		goto out;
	}
	if ((err = assign_bins(cfg, idx, bins)) != PSF_OK) {
		snprintf(errbuf, errlen, "cannot assign symbols: %s", psf_strerror(err));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (bins[i] != index)
			continue;
		if ((plan->symbols[mine] = strdup(psf_data_index_symbol(idx, i, NULL))) == NULL) {
			err = PSF_ENOMEM;
			goto out;
		}
		mine++;
	}
	plan->n = mine;
	qsort(plan->symbols, plan->n, sizeof(char *), cmp_str);
	{
		char day[11];
		psf_date_format(plan->cutoff, day);
		psf_log_info("trainer", "owns %zu of %zu symbols (shard_by %s); test rows from %s", mine, n,
		    cfg->data.shard_by == PSF_SHARD_BY_HASH ? "hash" : "rows", day);
	}
out:
	free(bins);
	psf_data_index_free(idx);
	if (err != PSF_OK)
		psf_shard_plan_fini(plan);
	return err;
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
