/* keys.h -- the parameter-key layout (DESIGN.md §4, docs/models.md), in one place.
 *
 * A parameter key is a uint64:
 *
 *     key = (tensor_id << PSF_KEY_ROW_BITS) | row        (PSF_KEY_ROW_BITS = 48)
 *
 * tensor_id (16 bits) names a tensor of the model; ids start at 1, so key 0 is
 * never a parameter. For a dense tensor, row is the index of a chunk of the
 * flattened tensor (lib/model decides the chunk size); for a per-symbol tensor,
 * row is psf_symbol_row(symbol), the same in every per-symbol tensor.
 *
 * Keys are stored in the ps's LMDB and travel on the wire: this layout and the
 * symbol hash are part of the on-disk and wire contract. Changing either
 * invalidates every existing store. Every function here is pure and
 * thread-safe. */
#ifndef PSF_KEYS_H
#define PSF_KEYS_H

#include <stdint.h>

/* Width of the row part of a key; rows are < 2^48. */
#define PSF_KEY_ROW_BITS 48
#define PSF_KEY_ROW_MASK ((UINT64_C(1) << PSF_KEY_ROW_BITS) - 1)

/* psf_key builds the key of row `row` of tensor tensor_id. row must be < 2^48
 * (higher bits are dropped). Cannot fail. */
static inline uint64_t
psf_key(uint16_t tensor_id, uint64_t row)
{
	return ((uint64_t)tensor_id << PSF_KEY_ROW_BITS) | (row & PSF_KEY_ROW_MASK);
}

/* psf_key_tensor returns the tensor id of a key. Cannot fail. */
static inline uint16_t
psf_key_tensor(uint64_t key)
{
	return (uint16_t)(key >> PSF_KEY_ROW_BITS);
}

/* psf_key_row returns the chunk index or symbol row of a key. Cannot fail. */
static inline uint64_t
psf_key_row(uint64_t key)
{
	return key & PSF_KEY_ROW_MASK;
}

/* psf_symbol_row returns the row of a symbol in every per-symbol tensor:
 * XXH3_64bits(symbol, strlen(symbol)) & (2^48 - 1). NULL is treated as "".
 * Cannot fail. */
uint64_t psf_symbol_row(const char *symbol);

#endif
