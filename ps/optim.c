/* optim.c -- optimizer math. Loops read g through load_g (a 4-byte memcpy) so
 * unaligned gradients are defined behaviour and still compile to plain loads. */
#include "ps/optim.h"

#include <math.h>
#include <string.h>

#include "lib/base/log.h"

#define TAG "optim"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "psfleet's wire floats are little-endian; add byte swapping in load_g"
#endif

/* Per-update constants, computed once per call rather than per element. */
struct coef {
	float lr;
	float scale;
	float l2;
	float mu;         /* momentum */
	float b1, b2;     /* adam */
	float omb1, omb2; /* 1 - b1, 1 - b2 */
	float c1, c2;     /* adam bias corrections 1/(1-b1^t), 1/(1-b2^t) */
	float eps;
};

static inline float
load_g(const unsigned char *g, size_t i)
{
	float f;

	memcpy(&f, g + i * sizeof(float), sizeof(f));
	return f;
}

size_t
psf_optim_state_floats(psf_optim_kind kind)
{
	switch (kind) {
	case PSF_OPTIM_SGD: return 0;
	case PSF_OPTIM_MOMENTUM: return 1;
	case PSF_OPTIM_ADAM: return 2;
	case PSF_OPTIM_ADAGRAD: return 1;
	case PSF_OPTIM_EXACT: return 0;
	}
	return 0;
}

static bool
is_unit(double x)
{
	return x >= 0.0 && x < 1.0; /* false for NaN too */
}

/* cfg_problem returns what is wrong with cfg, or NULL when it is usable. */
static const char *
cfg_problem(const psf_optim_cfg *cfg)
{
	if ((unsigned)cfg->kind > PSF_OPTIM_EXACT)
		return "unknown optimizer kind";
	if ((unsigned)cfg->schedule > PSF_LR_COSINE)
		return "unknown learning-rate schedule";
	if (!isfinite(cfg->learning_rate) || cfg->learning_rate < 0)
		return "learning_rate must be finite and >= 0";
	if (cfg->kind == PSF_OPTIM_MOMENTUM && !is_unit(cfg->momentum))
		return "momentum must be in [0, 1)";
	if (cfg->kind == PSF_OPTIM_ADAM && (!is_unit(cfg->beta1) || !is_unit(cfg->beta2)))
		return "beta1 and beta2 must be in [0, 1)";
	if ((cfg->kind == PSF_OPTIM_ADAM || cfg->kind == PSF_OPTIM_ADAGRAD) &&
	    !(cfg->epsilon > 0 && isfinite(cfg->epsilon)))
		return "epsilon must be > 0";
	if (cfg->schedule == PSF_LR_STEP && !(cfg->gamma > 0 && isfinite(cfg->gamma)))
		return "gamma must be > 0";
	if (!(cfg->clip_norm >= 0 && isfinite(cfg->clip_norm)))
		return "clip_norm must be >= 0";
	return NULL;
}

psf_err
psf_optim_check(const psf_optim_cfg *cfg)
{
	const char *bad;

	if (cfg == NULL)
		return PSF_EINVAL;
	if ((bad = cfg_problem(cfg)) == NULL)
		return PSF_OK;
	psf_log_err(TAG, "invalid optimizer config: %s", bad);
	return PSF_EINVAL;
}

double
psf_optim_lr(const psf_optim_cfg *cfg, uint64_t step)
{
	double lr = cfg->learning_rate;

	switch (cfg->schedule) {
	case PSF_LR_CONSTANT: return lr;
	case PSF_LR_STEP:
		if (cfg->step_size == 0)
			return lr;
		return lr * pow(cfg->gamma, (double)(step / cfg->step_size));
	case PSF_LR_COSINE:
		if (cfg->total_steps == 0)
			return lr;
		if (step > cfg->total_steps)
			step = cfg->total_steps;
		return lr * 0.5 * (1.0 + cos(M_PI * (double)step / (double)cfg->total_steps));
	}
	return lr;
}

double
psf_optim_clip_scale(double grad_norm, double clip_norm)
{
	if (!(clip_norm > 0))
		return 1.0;
	if (!isfinite(grad_norm))
		return 0.0;
	if (grad_norm <= clip_norm)
		return 1.0;
	return clip_norm / grad_norm;
}

double
psf_optim_sq_norm(const void *g, size_t n)
{
	const unsigned char *p = g;
	double a0 = 0, a1 = 0, a2 = 0, a3 = 0; /* independent chains for ILP */
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		double x0 = load_g(p, i), x1 = load_g(p, i + 1);
		double x2 = load_g(p, i + 2), x3 = load_g(p, i + 3);

		a0 += x0 * x0;
		a1 += x1 * x1;
		a2 += x2 * x2;
		a3 += x3 * x3;
	}
	for (; i < n; i++) {
		double x = load_g(p, i);

		a0 += x * x;
	}
	return (a0 + a1) + (a2 + a3);
}

bool
psf_optim_is_finite(const void *g, size_t n)
{
	const unsigned char *p = g;
	uint32_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		uint32_t u;

		memcpy(&u, p + i * sizeof(u), sizeof(u));
		bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u); /* exponent all ones */
	}
	return bad == 0;
}

/* ---- update rules: g' = g * scale + l2 * w, then the rule ------------------- */

/* Each rule is written once, as an always-inlined body reading the weights at
 * wi and writing them at wo, and instantiated twice: in place (wi == wo, one
 * pointer) and out of place (two restrict pointers), so GCC vectorizes both
 * without a runtime overlap check. The body also ORs the exponent bits of every
 * g[i] plus one into the value it returns: bit 31 is set exactly when some g[i]
 * is NaN or Inf (see psf_optim_apply_to), which costs no extra pass over g. */
#define G_BAD(acc) (((acc)&0x80000000u) != 0)

static inline uint32_t
g_bits(const unsigned char *g, size_t i)
{
	uint32_t u;

	memcpy(&u, g + i * sizeof(u), sizeof(u));
	return (u & 0x7f800000u) + 0x00800000u;
}

static inline __attribute__((always_inline)) uint32_t
sgd_body(const struct coef *c, const float *wi, float *wo, const unsigned char *g, size_t n)
{
	uint32_t acc = 0;

	for (size_t i = 0; i < n; i++) {
		float gi = load_g(g, i) * c->scale + c->l2 * wi[i];

		acc |= g_bits(g, i);
		wo[i] = wi[i] - c->lr * gi;
	}
	return acc;
}

static inline __attribute__((always_inline)) uint32_t
momentum_body(const struct coef *c, const float *wi, float *wo, const float *vi, float *vo,
    const unsigned char *g, size_t n)
{
	uint32_t acc = 0;

	for (size_t i = 0; i < n; i++) {
		float gi = load_g(g, i) * c->scale + c->l2 * wi[i];
		float v = c->mu * vi[i] + gi;

		acc |= g_bits(g, i);
		vo[i] = v;
		wo[i] = wi[i] - c->lr * v;
	}
	return acc;
}

/* adam_body: the state is m (n floats) then v (n floats). */
static inline __attribute__((always_inline)) uint32_t
adam_body(const struct coef *c, const float *wi, float *wo, const float *si, float *so,
    const unsigned char *g, size_t n)
{
	uint32_t acc = 0;

	for (size_t i = 0; i < n; i++) {
		float gi = load_g(g, i) * c->scale + c->l2 * wi[i];
		float m = c->b1 * si[i] + c->omb1 * gi;
		float v = c->b2 * si[n + i] + c->omb2 * gi * gi;

		acc |= g_bits(g, i);
		so[i] = m;
		so[n + i] = v;
		wo[i] = wi[i] - c->lr * (m * c->c1) / (sqrtf(v * c->c2) + c->eps);
	}
	return acc;
}

static inline __attribute__((always_inline)) uint32_t
adagrad_body(const struct coef *c, const float *wi, float *wo, const float *si, float *so,
    const unsigned char *g, size_t n)
{
	uint32_t acc = 0;

	for (size_t i = 0; i < n; i++) {
		float gi = load_g(g, i) * c->scale + c->l2 * wi[i];
		float s = si[i] + gi * gi;

		acc |= g_bits(g, i);
		so[i] = s;
		wo[i] = wi[i] - c->lr * gi / (sqrtf(s) + c->eps);
	}
	return acc;
}

/* update_in_place: wi == wo and si == so. */
static uint32_t
update_in_place(const struct coef *c, psf_optim_kind kind, float *restrict w, float *restrict st,
    const unsigned char *restrict g, size_t n)
{
	switch (kind) {
	case PSF_OPTIM_SGD: return sgd_body(c, w, w, g, n);
	case PSF_OPTIM_MOMENTUM: return momentum_body(c, w, w, st, st, g, n);
	case PSF_OPTIM_ADAM: return adam_body(c, w, w, st, st, g, n);
	case PSF_OPTIM_ADAGRAD: return adagrad_body(c, w, w, st, st, g, n);
	case PSF_OPTIM_EXACT: break; /* refused by psf_optim_apply_to */
	}
	return 0;
}

/* update_to: wi and wo do not overlap; the state is updated in place. */
static uint32_t
update_to(const struct coef *c, psf_optim_kind kind, const float *restrict wi, float *restrict wo,
    float *restrict st, const unsigned char *restrict g, size_t n)
{
	switch (kind) {
	case PSF_OPTIM_SGD: return sgd_body(c, wi, wo, g, n);
	case PSF_OPTIM_MOMENTUM: return momentum_body(c, wi, wo, st, st, g, n);
	case PSF_OPTIM_ADAM: return adam_body(c, wi, wo, st, st, g, n);
	case PSF_OPTIM_ADAGRAD: return adagrad_body(c, wi, wo, st, st, g, n);
	case PSF_OPTIM_EXACT: break; /* refused by psf_optim_apply_to */
	}
	return 0;
}

/* update_all_to: neither the weights nor the state overlap their new places. */
static uint32_t
update_all_to(const struct coef *c, psf_optim_kind kind, const float *restrict wi,
    float *restrict wo, const float *restrict si, float *restrict so,
    const unsigned char *restrict g, size_t n)
{
	switch (kind) {
	case PSF_OPTIM_SGD: return sgd_body(c, wi, wo, g, n);
	case PSF_OPTIM_MOMENTUM: return momentum_body(c, wi, wo, si, so, g, n);
	case PSF_OPTIM_ADAM: return adam_body(c, wi, wo, si, so, g, n);
	case PSF_OPTIM_ADAGRAD: return adagrad_body(c, wi, wo, si, so, g, n);
	case PSF_OPTIM_EXACT: break; /* refused by psf_optim_apply_to */
	}
	return 0;
}

static void
coef_init(const psf_optim_cfg *cfg, uint64_t step, float grad_scale, double l2, struct coef *c)
{
	double t = (double)step;

	c->lr = (float)psf_optim_lr(cfg, step - 1);
	c->scale = grad_scale;
	c->l2 = (float)l2;
	c->mu = (float)cfg->momentum;
	c->b1 = (float)cfg->beta1;
	c->b2 = (float)cfg->beta2;
	c->omb1 = (float)(1.0 - cfg->beta1);
	c->omb2 = (float)(1.0 - cfg->beta2);
	/* step >= 1 and beta in [0, 1) (cfg_problem) keep these finite. */
	c->c1 = (float)(1.0 / (1.0 - pow(cfg->beta1, t)));
	c->c2 = (float)(1.0 / (1.0 - pow(cfg->beta2, t)));
	c->eps = (float)cfg->epsilon;
}

psf_err
psf_optim_apply(const psf_optim_cfg *cfg, uint64_t step, float *w, float *state, const void *g,
    size_t n, float grad_scale, double l2)
{
	return psf_optim_apply_to(cfg, step, w, w, state, state, g, n, grad_scale, l2, false);
}

psf_err
psf_optim_apply_to(const psf_optim_cfg *cfg, uint64_t step, float *w_out, const float *w_in,
    float *state_out, const float *state_in, const void *g, size_t n, float grad_scale, double l2,
    bool check_finite)
{
	size_t k;
	struct coef c;
	uint32_t acc;

	/* cfg_problem is a handful of scalar compares: cheap next to n elements,
	 * and it keeps a bad beta from silently turning weights into Inf/NaN. */
	if (cfg == NULL || step == 0 || cfg_problem(cfg) != NULL || !isfinite(grad_scale) ||
	    !isfinite(l2))
		return PSF_EINVAL;
	k = psf_optim_state_floats(cfg->kind);
	if (n == 0)
		return PSF_OK;
	if (w_out == NULL || w_in == NULL || g == NULL ||
	    (k > 0 && (state_out == NULL || state_in == NULL)))
		return PSF_EINVAL;
	if (cfg->kind == PSF_OPTIM_EXACT)
		return PSF_ESTATE; /* no gradient steps: weights are assigned */
	coef_init(cfg, step, grad_scale, l2, &c);
	if (k > 0 && state_out != state_in && w_out == w_in) {
		/* not used by the ps; correct, if not the fastest */
		memmove(state_out, state_in, k * n * sizeof(float));
		state_in = state_out;
	}
	if (w_out == w_in)
		acc = update_in_place(&c, cfg->kind, w_out, state_out, g, n);
	else if (k == 0 || state_out == state_in)
		acc = update_to(&c, cfg->kind, w_in, w_out, state_out, g, n);
	else
		acc = update_all_to(&c, cfg->kind, w_in, w_out, state_in, state_out, g, n);
	return check_finite && G_BAD(acc) ? PSF_ERANGE : PSF_OK;
}
