/* local_sgd.c -- the trainer's arithmetic of consistency mode `local` (local SGD,
 * the "geo" mode of other parameter servers; docs/training.md).
 *
 * A trainer pulls the averaged model at the start of a block of sync_every
 * steps, takes those steps on its own copy with plain SGD at
 * optimizer.learning_rate, then pushes its delta (block start - local weights).
 * The ps averages the deltas of a round over the workers that pushed and
 * subtracts the average: no server optimizer, schedule or state takes part, and
 * optimizer state (none for plain SGD) stays on the trainer. */
#include <string.h>

#include "trainer/internal.h"

psf_err
psf_local_sgd_step(psf_params *params, const psf_params *grads, const uint64_t *keys, size_t n,
    float lr, float *scratch)
{
	for (size_t i = 0; i < n; i++) {
		const float *w, *g;
		uint32_t len, glen;
		psf_err err;
		if ((err = psf_params_get_key(params, keys[i], &w, &len)) != PSF_OK ||
		    (err = psf_params_get_key(grads, keys[i], &g, &glen)) != PSF_OK)
			return err;
		if (glen != len)
			return PSF_EINTERNAL;
		for (uint32_t j = 0; j < len; j++)
			scratch[j] = w[j] - lr * g[j];
		if ((err = psf_params_set_key(params, keys[i], scratch, len)) != PSF_OK)
			return err;
	}
	return PSF_OK;
}

psf_err
psf_local_delta(psf_params *delta, const psf_params *start, const psf_params *params,
    const uint64_t *keys, size_t n, float *scratch)
{
	for (size_t i = 0; i < n; i++) {
		const float *s, *w;
		uint32_t len, wlen;
		psf_err err;
		if ((err = psf_params_get_key(start, keys[i], &s, &len)) != PSF_OK ||
		    (err = psf_params_get_key(params, keys[i], &w, &wlen)) != PSF_OK)
			return err;
		if (wlen != len)
			return PSF_EINTERNAL;
		for (uint32_t j = 0; j < len; j++)
			scratch[j] = s[j] - w[j];
		if ((err = psf_params_set_key(delta, keys[i], scratch, len)) != PSF_OK)
			return err;
	}
	return PSF_OK;
}

psf_err
psf_local_copy(psf_params *dst, const psf_params *src, const uint64_t *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const float *v;
		uint32_t len;
		psf_err err;
		if ((err = psf_params_get_key(src, keys[i], &v, &len)) != PSF_OK ||
		    (err = psf_params_set_key(dst, keys[i], v, len)) != PSF_OK)
			return err;
	}
	return PSF_OK;
}
