#include "lib/base/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "lib/base/log.h"

uint64_t
psf_shard_node_seed(const char *id)
{
	if (id == NULL)
		id = "";
	return XXH3_64bits(id, strlen(id));
}

/* The key is hashed as 8 little-endian bytes so the map is the same on every
 * host, whatever its byte order. */
static uint64_t
score(uint64_t key, uint64_t seed)
{
	unsigned char buf[8];

	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)(key >> (8 * i));
	return XXH3_64bits_withSeed(buf, sizeof(buf), seed);
}

size_t
psf_shard_pick(uint64_t key, const uint64_t *node_seeds, size_t n_nodes)
{
	size_t best = PSF_SHARD_NONE;
	uint64_t best_score = 0;

	if (node_seeds == NULL)
		return PSF_SHARD_NONE;
	for (size_t i = 0; i < n_nodes; i++) {
		uint64_t s = score(key, node_seeds[i]);

		/* Equal scores (practically never) go to the larger seed, so the
		 * winner does not depend on the order of the node list. */
		if (best == PSF_SHARD_NONE || s > best_score ||
		    (s == best_score && node_seeds[i] > node_seeds[best])) {
			best = i;
			best_score = s;
		}
	}
	return best;
}

static uint64_t
hash_str(const char *s)
{
	if (s == NULL)
		s = "";
	return XXH3_64bits(s, strlen(s));
}

size_t
psf_shard_pick_str(const char *symbol, const uint64_t *node_seeds, size_t n_nodes)
{
	return psf_shard_pick(hash_str(symbol), node_seeds, n_nodes);
}

uint32_t
psf_inference_shard_of(const char *symbol, uint32_t n_shards)
{
	uint64_t key = hash_str(symbol), best_score = 0;
	uint32_t best = 0;
	char name[40];

	for (uint32_t i = 0; n_shards > 1 && i < n_shards; i++) {
		int len = snprintf(name, sizeof(name), "inference-shard-%u", i);
		uint64_t s = score(key, XXH3_64bits(name, (size_t)len));

		if (i == 0 || s > best_score) {
			best = i;
			best_score = s;
		}
	}
	return best;
}

typedef struct balance_ent {
	const char *symbol;
	uint64_t rows;
	size_t idx; /* position in the caller's items */
} balance_ent;

/* Largest first; equal sizes by name, so the order is total for unique names. */
static int
by_rows_desc(const void *a, const void *b)
{
	const balance_ent *x = a;
	const balance_ent *y = b;

	if (x->rows != y->rows)
		return x->rows > y->rows ? -1 : 1;
	return strcmp(x->symbol, y->symbol);
}

static int
by_name(const void *a, const void *b)
{
	const balance_ent *x = a;
	const balance_ent *y = b;

	return strcmp(x->symbol, y->symbol);
}

static size_t
least_loaded(const uint64_t *load, size_t n_bins)
{
	size_t best = 0;

	for (size_t b = 1; b < n_bins; b++)
		if (load[b] < load[best])
			best = b;
	return best;
}

psf_err
psf_shard_balance(const psf_shard_item *items, size_t n_items, size_t n_bins, size_t *bins_out)
{
	balance_ent *ents = NULL;
	uint64_t *load = NULL;
	size_t *bins = NULL;
	psf_err rv = PSF_OK;

	if ((items == NULL && n_items > 0) || n_bins == 0 || bins_out == NULL)
		return PSF_EINVAL;
	if (n_items == 0)
		return PSF_OK;
	ents = calloc(n_items, sizeof(*ents));
	load = calloc(n_bins, sizeof(*load));
	bins = calloc(n_items, sizeof(*bins));
	if (ents == NULL || load == NULL || bins == NULL) {
		rv = PSF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_items; i++) {
		if (items[i].symbol == NULL) {
			psf_log_err("shard", "balance: item %zu has no symbol", i);
			rv = PSF_EINVAL;
			goto out;
		}
		ents[i] = (balance_ent){items[i].symbol, items[i].rows, i};
	}
	qsort(ents, n_items, sizeof(*ents), by_name);
	for (size_t i = 1; i < n_items; i++) {
		if (strcmp(ents[i - 1].symbol, ents[i].symbol) == 0) {
			psf_log_err("shard", "balance: duplicate symbol '%s'", ents[i].symbol);
			rv = PSF_EINVAL;
			goto out;
		}
	}
	qsort(ents, n_items, sizeof(*ents), by_rows_desc);
	for (size_t i = 0; i < n_items; i++) {
		size_t b = least_loaded(load, n_bins);

		load[b] += ents[i].rows;
		bins[ents[i].idx] = b;
	}
	memcpy(bins_out, bins, n_items * sizeof(*bins));
out:
	free(bins);
	free(load);
	free(ents);
	return rv;
}
