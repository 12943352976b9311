/* window.c -- the input windows of gru and lstm models (internal.h).
 *
 * A table keeps each symbol's train rows, then (after every symbol's train
 * rows) its test rows, each part in date order. A symbol's first test row
 * follows its last train row in time, so the window of a test row may reach
 * back into the train rows: their features use only earlier days, as the
 * inferer's stored history does. */
#include <stdlib.h>
#include <string.h>

#include "trainer/internal.h"

#define NONE SIZE_MAX

void
psf_windows_fini(psf_windows *w)
{
	free(w->prev);
	free(w->train);
	free(w->test);
	memset(w, 0, sizeof(*w));
}

psf_err
psf_windows_init(psf_windows *w, const psf_table *t, uint32_t window)
{
	size_t *last = calloc(t->n_symbols > 0 ? t->n_symbols : 1, sizeof(size_t));
	uint32_t *depth = malloc((t->n_rows > 0 ? t->n_rows : 1) * sizeof(uint32_t));
	size_t n = t->n_rows > 0 ? t->n_rows : 1;

	memset(w, 0, sizeof(*w));
	w->window = window;
	w->prev = malloc(n * sizeof(size_t));
	w->train = malloc(n * sizeof(size_t));
	w->test = malloc(n * sizeof(size_t));
	if (!last || !depth || !w->prev || !w->train || !w->test) {
		free(last);
		free(depth);
		psf_windows_fini(w);
		return PSF_ENOMEM;
	}
	for (size_t s = 0; s < t->n_symbols; s++)
		last[s] = NONE;
	for (size_t r = 0; r < t->n_rows; r++) {
		uint32_t s = t->sym[r];
		/* Train rows: the previous row of the same symbol; a symbol's first
		 * test row: its last train row. last[] tracks both. */
		w->prev[r] = last[s];
		depth[r] = last[s] == NONE ? 0 : depth[last[s]] + 1;
		if (depth[r] > window)
			depth[r] = window; /* saturate: only >= window - 1 matters */
		last[s] = r;
		if (depth[r] + 1 < window)
			continue;
		if (r < t->n_train)
			w->train[w->n_train++] = r;
		else
			w->test[w->n_test++] = r;
	}
	free(last);
	free(depth);
	return PSF_OK;
}

void
psf_windows_gather(const psf_windows *w, const psf_table *t, size_t row, float *x)
{
	size_t nf = t->n_features;

	for (uint32_t k = w->window; k-- > 0;) {
		memcpy(x + (size_t)k * nf, t->x + row * nf, nf * sizeof(float));
		row = w->prev[row];
	}
}
