/* optim.h -- server-side optimizers (DESIGN.md §1): pure functions on float
 * arrays, no I/O, no allocation, no locks. Safe to call from any thread.
 *
 * Per pushed key the ps server does, inside one store update:
 *   1. scale = psf_optim_clip_scale(sqrt(sum of psf_optim_sq_norm over the
 *      push's keys), cfg->clip_norm), divided by the number of gradients
 *      averaged (sync rounds); without clipping the scale is 1;
 *   2. psf_optim_apply_to(cfg, step, new, old, new_state, old_state, g, n,
 *      scale, l2, true),
 *      reading the old weights where the store keeps them and writing the new
 *      ones into the value it reserved (ps/apply.c); a NaN/Inf in g
 *      (PSF_ERANGE) aborts the update, and the push is rejected or skipped
 *      (cfg->skip_nonfinite). The optimizer state is rewritten the same way.
 *
 * Gradients are `const void *`. They usually point straight into a received
 * message, at any byte offset, where a cast to float * would be undefined
 * behaviour. Every function here reads g element by element through a 4-byte
 * memcpy, which compiles to the same (vectorizable) loads as a float * read on
 * x86-64 and arm64, so callers never need an aligned staging copy. Values are
 * IEEE-754 binary32 in host byte order (little-endian on every supported host).
 * Weights and state are float * the caller owns, suitably aligned. */
#ifndef PSF_OPTIM_H
#define PSF_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/config/config.h"

/* psf_optim_state_floats returns how many floats of state each weight needs:
 * sgd 0, momentum 1 (velocity), adam 2 (m, v), adagrad 1 (sum of g^2); 0 for
 * an unknown kind. State for n weights is n * this many floats, in planes:
 * adam keeps m[0..n) then v[0..n). Fresh state is all zeros. Cannot fail. */
size_t psf_optim_state_floats(psf_optim_kind kind);

/* psf_optim_check validates cfg's optimizer fields once (e.g. at start-up):
 * known kind and schedule, finite learning_rate >= 0, momentum/beta1/beta2 in
 * [0, 1), epsilon > 0, step schedule gamma > 0, clip_norm >= 0.
 * Returns PSF_OK, or PSF_EINVAL with the first problem logged. */
PSF_NODISCARD psf_err psf_optim_check(const psf_optim_cfg *cfg);

/* psf_optim_lr returns the learning rate after `step` updates (0-based: step 0
 * is the first update and gets cfg->learning_rate):
 *   constant  lr
 *   step      lr * gamma^floor(step / step_size)    (step_size 0: constant)
 *   cosine    lr * 0.5 * (1 + cos(pi * min(step, total) / total))
 *             (total_steps 0: constant; past total_steps the rate is 0)
 * Cannot fail; an unknown schedule behaves as constant. */
double psf_optim_lr(const psf_optim_cfg *cfg, uint64_t step);

/* psf_optim_apply performs one update of n weights in place:
 *   g' = g * grad_scale + l2 * w        (w before this update)
 *   sgd       w -= lr * g'
 *   momentum  v = momentum * v + g';  w -= lr * v
 *   adam      m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2;
 *             w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + epsilon)
 *   adagrad   s += g'^2;  w -= lr * g' / (sqrt(s) + epsilon)
 * where t = step is the 1-based count of updates including this one (adam's
 * bias correction) and lr = psf_optim_lr(cfg, step - 1). The server chooses
 * what it counts (e.g. the model version, or a per-key count kept in meta).
 * state holds psf_optim_state_floats(cfg->kind) * n floats (may be NULL for
 * sgd); w and state must not overlap g. g may be unaligned (see the top of this
 * file) and is not checked for NaN/Inf: use psf_optim_is_finite first.
 * Computation is in float. Returns PSF_OK, or PSF_EINVAL (nothing changed, not
 * logged) for NULL arrays, step 0, a cfg psf_optim_check rejects, or a
 * non-finite grad_scale or l2. */
PSF_NODISCARD psf_err psf_optim_apply(const psf_optim_cfg *cfg, uint64_t step, float *w,
    float *state, const void *g, size_t n, float grad_scale, double l2);

/* psf_optim_apply_to is psf_optim_apply writing the updated weights to w_out
 * and the updated state to state_out: w_in and state_in hold them before the
 * update and are only read. Each output either is its input (in place, as
 * psf_optim_apply) or does not overlap it, so the new values can go straight
 * into a store's freshly reserved values while the old ones are read where they
 * lie. state_in/state_out hold psf_optim_state_floats(cfg->kind) * n floats
 * (both may be NULL for sgd). Results are bit-identical to psf_optim_apply.
 * With check_finite it also looks for NaN and Inf in g on the way (the loop
 * reads every g[i] anyway: no second pass) and returns PSF_ERANGE when it finds
 * one; w_out and state_out then hold a partial update the caller must discard
 * (e.g. by aborting the store transaction they live in). Other errors as
 * psf_optim_apply (nothing changed). */
PSF_NODISCARD psf_err psf_optim_apply_to(const psf_optim_cfg *cfg, uint64_t step, float *w_out,
    const float *w_in, float *state_out, const float *state_in, const void *g, size_t n,
    float grad_scale, double l2, bool check_finite);

/* psf_optim_clip_scale returns the factor that brings a gradient of L2 norm
 * grad_norm down to clip_norm: 1 when clipping is off (clip_norm <= 0 or NaN) or
 * grad_norm <= clip_norm, clip_norm / grad_norm above it, and 0 for a non-finite
 * grad_norm while clipping is on (drop it rather than poison the weights).
 * Cannot fail. */
double psf_optim_clip_scale(double grad_norm, double clip_norm);

/* psf_optim_sq_norm returns sum(g[i]^2) over n floats at g (any alignment),
 * accumulated in double. Because the square of any finite float is far below
 * DBL_MAX, the result is finite exactly when every g[i] is, so one pass gives
 * both the norm and the NaN/Inf check: isfinite(psf_optim_sq_norm(g, n)).
 * n == 0 gives 0. Cannot fail. */
double psf_optim_sq_norm(const void *g, size_t n);

/* psf_optim_is_finite tells whether all n floats at g (any alignment) are
 * finite (no NaN, no +-Inf), by checking exponent bits only. Cannot fail. */
bool psf_optim_is_finite(const void *g, size_t n);

#endif
