/* bounds.h -- size limits that more than one module checks: the config loader
 * (at start-up, with the key's file:line, lib/config/config_check.c) and the module
 * that would otherwise refuse the value much later (the model on the ps, the data
 * generator, the LMDB store). One definition each, so the config checks, the code
 * that enforces them and docs/config.md cannot drift apart. */
#ifndef PSF_BOUNDS_H
#define PSF_BOUNDS_H

#include <stdint.h>

/* Model sizes (psf_model_new refuses beyond them). The dense tensors (every
 * layer's weights and biases) are held whole by every trainer and inferer, and
 * sharded over the ps nodes. */
#define PSF_MODEL_MAX_WIDTH (1u << 20) /* n_features, each hidden size, embedding_dim */
/* gru/lstm: days in one input sequence (model.window). */
#define PSF_MODEL_MAX_WINDOW 512
#define PSF_MODEL_MAX_RNN_LAYERS 2
#define PSF_MODEL_MAX_DENSE_FLOATS (UINT64_C(1) << 30) /* 4 GiB; keeps BLAS counts in an int */
/* Above this many dense floats (256 MiB) the config loader warns: each trainer and
 * inferer keeps a full copy plus gradients, the ps the optimizer state (Adam: 2
 * more floats per weight). */
#define PSF_MODEL_WARN_DENSE_FLOATS (UINT64_C(1) << 26)

/* psf_datagen_write: symbols in 1..MAX_SYMBOLS, business days in 2..MAX_DAYS
 * (20000 business days end 2024-12-31 and start in 1948). */
#define PSF_DATAGEN_MAX_SYMBOLS 1000000u
#define PSF_DATAGEN_MAX_DAYS 20000u

/* The ps store's LMDB map: it grows by doubling up to this size (then a write is
 * RESOURCE_EXHAUSTED), so durability.map_size may not start above it. LMDB maps
 * the whole size into the address space at once: 1 TiB is far inside x86-64's
 * 128 TiB of user address space. */
#define PSF_STORE_MAX_MAP_SIZE (UINT64_C(1) << 40)
#define PSF_STORE_MIN_MAP_SIZE (UINT64_C(1) << 20)

#endif
