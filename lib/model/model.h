/* model.h -- the models shared by trainer (gradients) and inferer (prediction):
 * linear (ridge), logistic, mlp (ReLU), gru and lstm (1-2 recurrent layers over
 * a window of days), each with an optional per-symbol embedding and/or
 * per-symbol output bias (DESIGN.md §4, §7; docs/models.md).
 *
 * Input. A batch row is a window of psf_model_window(m) = W consecutive feature
 * vectors of one symbol, oldest first, the last one being the row predicted:
 * X is row-major [n x W x n_features]. W is 1 for linear, logistic and mlp, so
 * their X is the familiar [n x n_features]. The embedding (when present) is
 * appended to every day's vector.
 *
 * Three objects, all opaque:
 *   psf_model     the architecture: tensors, key layout, initial values. No
 *                 parameter values. Immutable after psf_model_new, so one model
 *                 may be shared by any number of threads without locking.
 *   psf_params    values for (some of) the model's keys: every dense tensor as a
 *                 contiguous array plus one row per symbol present. The same
 *                 container holds gradients. Not thread-safe; concurrent
 *                 read-only use (psf_model_forward, psf_params_get_key) is fine.
 *   psf_model_ws  scratch memory for batches of up to max_batch rows, so the
 *                 training step does not allocate. One per thread.
 *
 * Keys. The layout is lib/base/keys.h: psf_key(tensor_id, row). Dense tensors
 * are flattened row-major and split into chunks of cfg->chunk_floats floats:
 * row = chunk index, the last chunk is shorter. Per-symbol tensors have one row
 * per symbol: row = psf_symbol_row(symbol). Tensor ids start at 1 (key 0 is never
 * valid): the dense tensors first, in layer order, then the per-symbol ones.
 *
 * Functions that return a count, a length or a bool take a valid (non-NULL)
 * object; the psf_err ones return PSF_EINVAL for NULL arguments.
 *
 * Math goes through OpenBLAS. Setting its thread count (one BLAS thread per
 * process, openblas_set_num_threads(1) or OPENBLAS_NUM_THREADS=1) is the
 * caller's job: this module never changes it. */
#ifndef PSF_MODEL_H
#define PSF_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/bounds.h"
#include "lib/base/err.h"
#include "lib/base/keys.h"
#include "lib/config/config.h"

/* PSF_REDUCE_FEATURE_STATS names the Reduce through which the trainers sum their
 * standardisation statistics (lib/data/features.h, psf_features_stats) at start-up.
 * The ps returns its result with every Snapshot (SnapshotReply.feature_stats), so
 * inferers scale their inputs exactly as training did. Part of the wire contract. */
#define PSF_REDUCE_FEATURE_STATS "feature_stats"

/* Size limits checked by psf_model_new (PSF_EINVAL beyond them):
 * PSF_MODEL_MAX_WIDTH and PSF_MODEL_MAX_DENSE_FLOATS are in bounds.h, because the
 * config loader checks them too. */
#define PSF_MODEL_MAX_BATCH (1u << 24)

typedef struct psf_model psf_model;
typedef struct psf_params psf_params;
typedef struct psf_model_ws psf_model_ws;

/* One tensor of a model. Names: "out.w" [1 x in] and "out.b" [1] for the output
 * layer, "l<i>.w" [hidden[i] x in] and "l<i>.b" [hidden[i]] for the mlp's hidden
 * layers, "r<i>.wx" [G*H x in], "r<i>.wh" [G*H x H] and "r<i>.b" [G*H] for
 * recurrent layer i (H = hidden[i]; G = 3 gates r, z, n for gru, 4 gates i, f,
 * g, o for lstm, stacked in that order), "emb" [embedding_dim] and "sym_bias"
 * [1] per symbol. */
typedef struct psf_tensor_info {
	uint16_t id;      /* keys are (id << 48) | row */
	const char *name; /* valid while the model lives */
	uint32_t rows;    /* dense: rows of the row-major matrix; per-symbol: 1 */
	uint32_t cols;    /* dense: columns; per-symbol: floats per symbol */
	bool is_per_symbol;
	uint64_t floats;   /* dense: rows * cols; per-symbol: floats per symbol */
	uint64_t n_chunks; /* dense: number of keys; per-symbol: 0 */
} psf_tensor_info;

/* psf_model_new builds the architecture for cfg->kind with n_features input
 * features and the given target; seed decides the initial values. cfg is copied.
 * BCE (and probability outputs) is used for logistic, and for mlp when target is
 * PSF_TARGET_NEXT_DIRECTION; everything else uses mean squared error.
 * Returns PSF_EINVAL for: a NULL argument, an unknown kind or target, logistic
 * with a target other than next_direction, an mlp with n_hidden outside 1..8 or
 * a zero hidden size, a gru/lstm with n_hidden outside 1..2 or window outside
 * 1..PSF_MODEL_MAX_WINDOW, n_features == 0, chunk_floats == 0, l2 or init_scale
 * negative or not finite, a size beyond the PSF_MODEL_MAX_* limits (each logged
 * once at error level). PSF_ENOMEM. On success *out gets a new model the caller
 * frees with psf_model_free. */
PSF_NODISCARD psf_err psf_model_new(const psf_model_cfg *cfg, uint32_t n_features,
    psf_target_kind target, uint64_t seed, psf_model **out);

/* psf_model_free releases a model. NULL is fine. Params and workspaces made for
 * it must be freed first. */
void psf_model_free(psf_model *m);

/* psf_model_n_features returns the n_features given to psf_model_new. */
uint32_t psf_model_n_features(const psf_model *m);

/* psf_model_window returns W, the days of one input row: cfg->window for gru
 * and lstm, 1 for the others. A batch row holds W * n_features floats. */
uint32_t psf_model_window(const psf_model *m);

/* psf_model_is_probability tells whether outputs are probabilities (BCE models). */
bool psf_model_is_probability(const psf_model *m);

/* psf_model_n_tensors returns the number of tensors (ids 1..n). */
size_t psf_model_n_tensors(const psf_model *m);

/* psf_model_tensor_info describes tensor index i (0-based; its id is i + 1).
 * Returns PSF_ERANGE when i >= psf_model_n_tensors(m). */
PSF_NODISCARD psf_err psf_model_tensor_info(const psf_model *m, size_t i, psf_tensor_info *out);

/* psf_model_tensor_find describes the tensor called name, or returns PSF_ENOENT. */
PSF_NODISCARD psf_err psf_model_tensor_find(const psf_model *m, const char *name,
    psf_tensor_info *out);

/* psf_model_key_len returns the number of floats stored under key, or 0 when the
 * key is not one of the model's (unknown tensor id, chunk past the end). Every
 * symbol row is valid for a per-symbol tensor. Cannot fail. */
uint32_t psf_model_key_len(const psf_model *m, uint64_t key);

/* psf_model_n_dense_keys returns the number of dense keys (chunks). */
size_t psf_model_n_dense_keys(const psf_model *m);

/* psf_model_dense_keys writes every dense key in ascending order into keys[] and
 * its length into lens[] (lens may be NULL), and the count into *n_out.
 * Returns PSF_ERANGE when cap < psf_model_n_dense_keys(m). */
PSF_NODISCARD psf_err psf_model_dense_keys(const psf_model *m, uint64_t *keys, uint32_t *lens,
    size_t cap, size_t *n_out);

/* psf_model_n_symbol_tensors returns how many per-symbol tensors the model has
 * (0, 1 or 2). */
size_t psf_model_n_symbol_tensors(const psf_model *m);

/* psf_model_symbol_keys writes the per-symbol keys a batch with these symbol rows
 * needs, sorted and unique, into keys[] (lens[] as in psf_model_dense_keys) and
 * their count into *n_out (0 for a model without per-symbol tensors; sym_rows
 * may then be NULL). keys[] is also used as scratch: cap must be at least
 * n * psf_model_n_symbol_tensors(m), else PSF_ERANGE. A row >= 2^48 is
 * PSF_EINVAL. */
PSF_NODISCARD psf_err psf_model_symbol_keys(const psf_model *m, const uint64_t *sym_rows, size_t n,
    uint64_t *keys, uint32_t *lens, size_t cap, size_t *n_out);

/* psf_model_init_value writes the initial values of key (psf_model_key_len(m, key)
 * floats) into out. They depend only on (seed, tensor, element): the same on every
 * node, so the ps creates weights that trainers agree on with no transfer.
 * Weights: U(-a, a) with a = init_scale * sqrt(6 / fan_in) before a ReLU and
 * init_scale * sqrt(3 / fan_in) at the output; biases and symbol biases: 0;
 * embeddings: U(-0.05, 0.05) * init_scale. Returns PSF_EINVAL for an invalid key. */
PSF_NODISCARD psf_err psf_model_init_value(const psf_model *m, uint64_t key, float *out);

/* psf_params_new makes an empty container for m's keys (dense values zero and
 * absent, no symbols). m must outlive it. On success *out gets a new object the
 * caller frees with psf_params_free. PSF_EINVAL, PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_params_new(const psf_model *m, psf_params **out);

/* psf_params_free releases a container. NULL is fine. */
void psf_params_free(psf_params *p);

/* psf_params_clear removes every key (symbols forgotten, dense keys marked
 * absent), keeping the memory for reuse. Cannot fail. */
void psf_params_clear(psf_params *p);

/* psf_params_set_key stores len little-endian float32 values for key, read from
 * bytes (any alignment, e.g. straight from a wire buffer). A new symbol gets a
 * row; its other per-symbol tensors stay absent. Returns PSF_EINVAL when the key
 * is invalid or len != psf_model_key_len, PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_params_set_key(psf_params *p, uint64_t key, const void *bytes,
    size_t len);

/* psf_params_get_key points *data_out at the values of key and writes their
 * count into *len_out (may be NULL). The pointer is borrowed: valid until p is
 * next modified or freed. Returns PSF_ENOENT when the key is absent, PSF_EINVAL
 * when it is invalid. */
PSF_NODISCARD psf_err psf_params_get_key(const psf_params *p, uint64_t key, const float **data_out,
    uint32_t *len_out);

/* psf_params_n_keys returns the number of keys present. */
size_t psf_params_n_keys(const psf_params *p);

/* psf_params_n_symbols returns the number of symbols with a row in p. */
size_t psf_params_n_symbols(const psf_params *p);

/* psf_params_keys writes every key present, ascending, into keys[] (lens[] may be
 * NULL) and the count into *n_out. Returns PSF_ERANGE when
 * cap < psf_params_n_keys(p). */
PSF_NODISCARD psf_err psf_params_keys(const psf_params *p, uint64_t *keys, uint32_t *lens,
    size_t cap, size_t *n_out);

/* psf_params_clip_norm computes the L2 norm of every value present in p (as a
 * gradient: dense keys and symbol rows) into *norm_out (may be NULL) and, when
 * max_norm > 0 and the norm is above it, scales every value by max_norm / norm
 * so the norm becomes max_norm. A non-finite norm leaves p unchanged. Cannot
 * fail. */
void psf_params_clip_norm(psf_params *p, double max_norm, double *norm_out);

/* psf_params_fill_init sets every dense key, and every per-symbol key of the
 * symbols in sym_rows[0..n) (sym_rows may be NULL when n == 0), to its initial
 * value (psf_model_init_value). For tests, benchmarks and local runs.
 * PSF_EINVAL (a row >= 2^48), PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_params_fill_init(psf_params *p, const uint64_t *sym_rows, size_t n);

/* psf_model_ws_new makes scratch memory for batches of 1..max_batch rows of m.
 * m must outlive it. On success *out gets a new object the caller frees with
 * psf_model_ws_free. PSF_EINVAL (max_batch 0 or > PSF_MODEL_MAX_BATCH),
 * PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_model_ws_new(const psf_model *m, size_t max_batch, psf_model_ws **out);

/* psf_model_ws_free releases a workspace. NULL is fine. */
void psf_model_ws_free(psf_model_ws *ws);

/* psf_model_forward predicts n rows: X is row-major n x W x n_features, sym_rows[i]
 * the symbol row of row i (may be NULL when the model has no per-symbol tensor).
 * out[0..n) gets the predictions in target space (a probability for BCE models).
 * Returns PSF_EINVAL (NULL argument, n == 0 or > the workspace's max_batch,
 * workspace or params of another model, row >= 2^48), PSF_ENOENT (a dense key or
 * a needed per-symbol key is absent from params). out is unchanged on error. */
PSF_NODISCARD psf_err psf_model_forward(const psf_model *m, psf_model_ws *ws,
    const psf_params *params, const float *X, const uint64_t *sym_rows, size_t n, float *out);

/* psf_model_loss_grad computes the batch's mean loss plus the l2 penalty
 * (0.5 * l2 * sum of squared weight-matrix entries; biases and per-symbol
 * tensors are not penalised) into *loss_out, and its gradient into grads:
 * grads (a container of m) is cleared first and then holds exactly every dense
 * key and the per-symbol keys of the batch's symbols. y[0..n) are the targets
 * (0..1 for BCE models). Errors as psf_model_forward, plus PSF_EINVAL for grads
 * of another model, grads == params, or a BCE target outside [0, 1]; PSF_ENOMEM
 * when grads needs room for more symbols. On error grads is unspecified and
 * *loss_out unchanged. */
PSF_NODISCARD psf_err psf_model_loss_grad(const psf_model *m, psf_model_ws *ws,
    const psf_params *params, const float *X, const float *y, const uint64_t *sym_rows, size_t n,
    psf_params *grads, double *loss_out);

#endif
