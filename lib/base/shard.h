/* shard.h -- the shard map: which node owns a key, which trainer or inferer
 * shard owns a symbol (DESIGN.md §4).
 *
 * Rendezvous (highest-random-weight) hashing with XXH3-64: every node scores
 * each key with a hash of (key, node seed) and the highest score wins. The map
 * is a pure function of its inputs, so every process computes the same map
 * without a coordinator, and adding a node moves only the keys the new node
 * wins (about 1/N of them), each of them to the new node.
 *
 * Every function here is pure and thread-safe. The hashes are part of the
 * on-disk and wire contract (parameter keys are stored in LMDB and computed by
 * every node): changing them invalidates existing ps stores. The layout of a
 * parameter key itself (tensor id, row, a symbol's row) is in keys.h. */
#ifndef PSF_SHARD_H
#define PSF_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

/* PSF_SHARD_NONE is returned by the pick functions when there is no node. */
#define PSF_SHARD_NONE SIZE_MAX

/* psf_shard_node_seed returns the node seed of a node id: XXH3_64bits of its
 * bytes (without the NUL). NULL is treated as "". Cannot fail. */
uint64_t psf_shard_node_seed(const char *id);

/* psf_shard_pick returns the index in node_seeds[0..n_nodes) of the node that
 * owns key. The owner depends on the seeds, not on their order: permuting the
 * list permutes the returned index the same way. Returns PSF_SHARD_NONE when
 * n_nodes is 0 or node_seeds is NULL (a validated config always has nodes).
 * Cannot fail otherwise. */
size_t psf_shard_pick(uint64_t key, const uint64_t *node_seeds, size_t n_nodes);

/* psf_shard_pick_str is psf_shard_pick for a string key such as a symbol:
 * the key is XXH3_64bits of the string's bytes. NULL is treated as "".
 * Used to assign symbols to trainers (shard_by: hash) and to inferer shards. */
size_t psf_shard_pick_str(const char *symbol, const uint64_t *node_seeds, size_t n_nodes);

/* psf_inference_shard_of returns the inference shard (0 .. n_shards-1) that
 * serves symbol: rendezvous hashing of XXH3_64bits(symbol) over the shard
 * numbers, shard i scoring with seed XXH3_64bits of the text "inference-shard-<i>".
 * Inferers use it to pick the symbols they load and the gateway to route, so both
 * always agree; growing n_shards moves only the symbols the new shards win.
 * n_shards 0 or 1 gives 0. NULL is treated as "". O(n_shards). Cannot fail. */
uint32_t psf_inference_shard_of(const char *symbol, uint32_t n_shards);

/* One symbol and its size (number of data rows), for psf_shard_balance. */
typedef struct psf_shard_item {
	const char *symbol;
	uint64_t rows;
} psf_shard_item;

/* psf_shard_balance assigns each item to one of n_bins bins so that the row
 * totals are close (shard_by: rows): items are taken largest first (ties by
 * symbol name, strcmp order) and each goes to the bin with the smallest total
 * so far (ties to the lowest bin index). The result depends only on the set of
 * items, not on their order. On success bins_out[i] (an array of n_items the
 * caller provides) gets the bin of items[i]; on failure bins_out is untouched.
 * Returns PSF_OK, PSF_EINVAL (n_bins 0, NULL arguments, a NULL or duplicate
 * symbol) or PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_shard_balance(const psf_shard_item *items, size_t n_items, size_t n_bins,
    size_t *bins_out);

#endif
