/* model_internal.h -- private declarations shared by lib/model/model*.c only.
 * Not part of the contract: include lib/model/model.h instead. */
#ifndef PSF_MODEL_INTERNAL_H
#define PSF_MODEL_INTERNAL_H

#include "lib/model/model.h"

#define MODEL_MAX_LAYERS 9 /* up to 8 hidden layers + the output layer */
#define MODEL_MAX_TENSORS (2 * MODEL_MAX_LAYERS + 2)

/* Presence bits of a symbol's row in a psf_params. */
#define SYM_HAS_EMB 1u
#define SYM_HAS_BIAS 2u

typedef struct model_tensor {
	char name[16];
	uint32_t rows, cols;
	bool is_per_symbol;
	uint64_t floats;     /* dense: rows * cols; per-symbol: cols */
	uint64_t n_chunks;   /* dense only */
	uint64_t chunk_base; /* dense: global index of chunk 0 among all dense chunks */
	uint64_t off;        /* dense: offset in psf_params.dense; per-symbol: in a row */
	double init_bound;   /* U(-bound, bound); 0 for biases */
} model_tensor;

/* One fully connected layer: out = act(in_vec W^T + b), W is [out x in]. */
typedef struct model_layer {
	uint32_t in, out;
	uint16_t w_id, b_id;
	bool has_relu;
} model_layer;

/* One recurrent layer (model_rnn.c): G gates of H units over inputs of `in`. */
typedef struct model_rnn {
	uint32_t in, hid, gates;
	uint16_t wx_id, wh_id, b_id;
} model_rnn;

typedef struct rnn_ws rnn_ws;

struct psf_model {
	psf_model_cfg cfg;
	psf_target_kind target;
	uint64_t seed;
	bool is_bce;
	uint32_t n_features;
	uint32_t emb_dim; /* 0 = no embedding */
	uint32_t d_in;    /* n_features + emb_dim */
	bool has_sym_bias;
	uint16_t emb_id;     /* 0 = none */
	uint16_t sb_id;      /* 0 = none */
	uint32_t sym_stride; /* floats per symbol row: emb_dim + has_sym_bias */
	size_t n_tensors;
	model_tensor t[MODEL_MAX_TENSORS]; /* t[id - 1] */
	size_t n_layers;
	model_layer layers[MODEL_MAX_LAYERS];
	uint32_t window; /* days per row: cfg.window for gru/lstm, else 1 */
	size_t n_rnn;    /* recurrent layers before layers[] (gru/lstm) */
	model_rnn rnn[PSF_MODEL_MAX_RNN_LAYERS];
	uint32_t max_width; /* widest layer input or output */
	uint64_t dense_floats;
	uint64_t n_dense_keys;
};

/* Symbol rows live in slots 0..n_sym-1 (append order), found through an open
 * addressing index of slot + 1 (0 = empty) with a power-of-two size. */
struct psf_params {
	const psf_model *m;
	float *dense;       /* dense_floats values, tensor t at t.off */
	uint8_t *dense_has; /* one flag per dense chunk */
	uint64_t n_dense_present;
	uint64_t *sym;    /* slot -> symbol row */
	uint8_t *sym_has; /* slot -> SYM_HAS_* bits */
	float *sym_val;   /* slot -> sym_stride floats */
	size_t n_sym, cap_sym;
	uint32_t *index;
	size_t index_cap;
};

/* add_tensor appends a tensor (name, rows x cols, per-symbol or dense, initial
 * values U(-bound, bound)) and returns its id. Cannot fail. */
uint16_t add_tensor(psf_model *m, const char *name, uint32_t rows, uint32_t cols,
    bool is_per_symbol, double bound);

/* model_tensor_of returns the tensor of key, or NULL for an unknown id. */
const model_tensor *model_tensor_of(const psf_model *m, uint64_t key);

/* params_find returns the slot of row or -1. */
long params_find(const psf_params *p, uint64_t row);

/* params_slot returns the slot of row, creating a zeroed one without presence
 * bits. PSF_ENOMEM. */
PSF_NODISCARD psf_err params_slot(psf_params *p, uint64_t row, size_t *slot_out);

/* params_mark_dense marks every dense chunk present. Cannot fail. */
void params_mark_dense(psf_params *p);

/* params_dense_complete tells whether every dense chunk is present. */
bool params_dense_complete(const psf_params *p);

/* model_rnn.c: the recurrent layers of gru and lstm models. */

/* rnn_build appends the recurrent layers' tensors; returns the top state size. */
uint32_t rnn_build(psf_model *m, uint32_t in);

/* rnn_ws_new / rnn_ws_free: scratch for batches of up to max_batch rows.
 * PSF_ENOMEM. */
PSF_NODISCARD psf_err rnn_ws_new(const psf_model *m, size_t max_batch, rnn_ws **out);
void rnn_ws_free(rnn_ws *rw);

/* rnn_forward runs the recurrent layers over X [n x W x n_features] (each
 * row's embedding from sym_val at slot[i] appended to every day) and returns the
 * top layer's last state [n x H], owned by rw. Cannot fail. */
const float *rnn_forward(const psf_model *m, rnn_ws *rw, const psf_params *p, const float *X,
    const long *slot, size_t n);

/* rnn_backward back-propagates dh [n x H] (gradient of the last top state,
 * overwritten) through the window after rnn_forward on the same batch: the
 * recurrent tensors' gradients go into grads (overwritten), the embedding's
 * (summed over the days) into d_emb [n x emb_dim] when the model has one.
 * Cannot fail. */
void rnn_backward(const psf_model *m, rnn_ws *rw, const psf_params *p, float *dh, size_t n,
    psf_params *grads, float *d_emb);

/* rnn_l2 adds l2 * W to the recurrent weight gradients and returns sum W^2. */
double rnn_l2(const psf_model *m, const psf_params *p, psf_params *grads);

#endif
