/* optim_test.c -- optimizer math against values worked out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>

#include "ps/optim.h"

#define TOL 1e-6

/* assert_near compares in double (cmocka's assert_float_equal rounds to float). */
#define assert_near(a, b, tol)                                              \
	do {                                                                \
		double a_ = (a), b_ = (b);                                  \
		if (!(fabs(a_ - b_) <= (tol)))                              \
			fail_msg("%s = %.12g, expected %.12g", #a, a_, b_); \
	} while (0)

static psf_optim_cfg
cfg_of(psf_optim_kind kind, double lr)
{
	psf_optim_cfg c;

	memset(&c, 0, sizeof(c));
	c.kind = kind;
	c.learning_rate = lr;
	c.momentum = 0.9;
	c.beta1 = 0.9;
	c.beta2 = 0.999;
	c.epsilon = 1e-8;
	c.schedule = PSF_LR_CONSTANT;
	c.step_size = 1000;
	c.gamma = 0.5;
	return c;
}

static void
test_optim_state_floats_per_kind(void **state)
{
	(void)state;
	assert_int_equal(psf_optim_state_floats(PSF_OPTIM_SGD), 0);
	assert_int_equal(psf_optim_state_floats(PSF_OPTIM_MOMENTUM), 1);
	assert_int_equal(psf_optim_state_floats(PSF_OPTIM_ADAM), 2);
	assert_int_equal(psf_optim_state_floats(PSF_OPTIM_ADAGRAD), 1);
	assert_int_equal(psf_optim_state_floats((psf_optim_kind)42), 0);
}

static void
test_optim_sgd_step_with_scale_and_l2(void **state)
{
	psf_optim_cfg c = cfg_of(PSF_OPTIM_SGD, 0.1);
	float w[2] = {1.0f, -2.0f};
	const float g[2] = {0.5f, 0.25f};

	(void)state;
	/* w -= 0.1 * g:  1 - 0.05 = 0.95;  -2 - 0.025 = -2.025 */
	assert_int_equal(psf_optim_apply(&c, 1, w, NULL, g, 2, 1.0f, 0.0), PSF_OK);
	assert_near(w[0], 0.95, TOL);
	assert_near(w[1], -2.025, TOL);

	/* scale 2, l2 0.1: g' = 2g + 0.1w
	 *   g'0 = 1.0 + 0.095 = 1.095  -> w0 = 0.95 - 0.1095 = 0.8405
	 *   g'1 = 0.5 - 0.2025 = 0.2975 -> w1 = -2.025 - 0.02975 = -2.05475 */
	assert_int_equal(psf_optim_apply(&c, 2, w, NULL, g, 2, 2.0f, 0.1), PSF_OK);
	assert_near(w[0], 0.8405, TOL);
	assert_near(w[1], -2.05475, TOL);
}

static void
test_optim_momentum_two_steps(void **state)
{
	psf_optim_cfg c = cfg_of(PSF_OPTIM_MOMENTUM, 0.1);
	float w[1] = {1.0f}, v[1] = {0.5f};
	const float g[1] = {0.2f};

	(void)state;
	/* v = 0.9 * 0.5 + 0.2 = 0.65;  w = 1 - 0.1 * 0.65 = 0.935 */
	assert_int_equal(psf_optim_apply(&c, 1, w, v, g, 1, 1.0f, 0.0), PSF_OK);
	assert_near(v[0], 0.65, TOL);
	assert_near(w[0], 0.935, TOL);
	/* v = 0.9 * 0.65 + 0.2 = 0.785;  w = 0.935 - 0.0785 = 0.8565 */
	assert_int_equal(psf_optim_apply(&c, 2, w, v, g, 1, 1.0f, 0.0), PSF_OK);
	assert_near(v[0], 0.785, TOL);
	assert_near(w[0], 0.8565, TOL);
}

static void
test_optim_adam_bias_corrected_steps(void **state)
{
	psf_optim_cfg c = cfg_of(PSF_OPTIM_ADAM, 0.01);
	float w[2] = {1.0f, 1.0f}, st[4] = {0}; /* m[2] then v[2] */
	const float g1[2] = {0.5f, 0.5f};
	const float g2[2] = {0.5f, -1.0f};

	(void)state;
	/* t = 1, g = 0.5:  m = 0.1 * 0.5 = 0.05;  v = 0.001 * 0.25 = 0.00025
	 *   mhat = 0.05 / (1 - 0.9) = 0.5;  vhat = 0.00025 / (1 - 0.999) = 0.25
	 *   w = 1 - 0.01 * 0.5 / (sqrt(0.25) + 1e-8) = 0.99 */
	assert_int_equal(psf_optim_apply(&c, 1, w, st, g1, 2, 1.0f, 0.0), PSF_OK);
	assert_near(st[0], 0.05, TOL);
	assert_near(st[2], 0.00025, 1e-9);
	assert_near(w[0], 0.99, TOL);
	assert_near(w[1], 0.99, TOL);

	/* t = 2, element 0, g = 0.5 again:
	 *   m = 0.9 * 0.05 + 0.05 = 0.095;  v = 0.999 * 0.00025 + 0.00025 = 0.00049975
	 *   mhat = 0.095 / (1 - 0.81) = 0.5;  vhat = 0.00049975 / 0.001999 = 0.25
	 *   w = 0.99 - 0.01 * 0.5 / 0.5 = 0.98
	 * element 1, g = -1:
	 *   m = 0.045 - 0.1 = -0.055;  v = 0.00024975 + 0.001 = 0.00124975
	 *   mhat = -0.055 / 0.19 = -0.2894737;  vhat = 0.00124975 / 0.001999 = 0.6251876
	 *   w = 0.99 - 0.01 * (-0.2894737 / 0.7906881) = 0.99 + 0.0036610 = 0.9936610 */
	assert_int_equal(psf_optim_apply(&c, 2, w, st, g2, 2, 1.0f, 0.0), PSF_OK);
	assert_near(st[0], 0.095, TOL);
	assert_near(st[1], -0.055, TOL);
	assert_near(st[3], 0.00124975, 1e-9);
	assert_near(w[0], 0.98, TOL);
	assert_near(w[1], 0.9936610, TOL);
}

static void
test_optim_adagrad_accumulates_squares(void **state)
{
	psf_optim_cfg c = cfg_of(PSF_OPTIM_ADAGRAD, 0.1);
	float w[1] = {1.0f}, s[1] = {0.0f};
	const float g1[1] = {0.6f}, g2[1] = {0.8f};

	(void)state;
	/* s = 0.36;  w = 1 - 0.1 * 0.6 / 0.6 = 0.9 */
	assert_int_equal(psf_optim_apply(&c, 1, w, s, g1, 1, 1.0f, 0.0), PSF_OK);
	assert_near(s[0], 0.36, TOL);
	assert_near(w[0], 0.9, TOL);
	/* s = 0.36 + 0.64 = 1;  w = 0.9 - 0.1 * 0.8 / 1 = 0.82 */
	assert_int_equal(psf_optim_apply(&c, 2, w, s, g2, 1, 1.0f, 0.0), PSF_OK);
	assert_near(s[0], 1.0, TOL);
	assert_near(w[0], 0.82, TOL);
}

static void
test_optim_lr_schedules(void **state)
{
	psf_optim_cfg c = cfg_of(PSF_OPTIM_SGD, 0.1);

	(void)state;
	assert_near(psf_optim_lr(&c, 0), 0.1, 1e-12);
	assert_near(psf_optim_lr(&c, 123456), 0.1, 1e-12);

	/* step: 0.1 * 0.5^floor(step / 10) */
	c.schedule = PSF_LR_STEP;
	c.step_size = 10;
	assert_near(psf_optim_lr(&c, 0), 0.1, 1e-12);
	assert_near(psf_optim_lr(&c, 9), 0.1, 1e-12);
	assert_near(psf_optim_lr(&c, 10), 0.05, 1e-12);
	assert_near(psf_optim_lr(&c, 25), 0.025, 1e-12);
	c.step_size = 0; /* no decay rather than a division by zero */
	assert_near(psf_optim_lr(&c, 25), 0.1, 1e-12);

	/* cosine over 100: 0.1 * 0.5 * (1 + cos(pi * s / 100)) */
	c.schedule = PSF_LR_COSINE;
	c.total_steps = 100;
	assert_near(psf_optim_lr(&c, 0), 0.1, 1e-12);
	assert_near(psf_optim_lr(&c, 25), 0.0853553390593, 1e-12); /* cos(pi/4) */
	assert_near(psf_optim_lr(&c, 50), 0.05, 1e-12);
	assert_near(psf_optim_lr(&c, 100), 0.0, 1e-12);
	assert_near(psf_optim_lr(&c, 1000), 0.0, 1e-12);
	c.total_steps = 0;
	assert_near(psf_optim_lr(&c, 50), 0.1, 1e-12);
}

static void
test_optim_apply_uses_schedule_of_previous_step(void **state)
{
	psf_optim_cfg c = cfg_of(PSF_OPTIM_SGD, 0.1);
	float w[1] = {1.0f};
	const float g[1] = {1.0f};

	(void)state;
	c.schedule = PSF_LR_STEP;
	c.step_size = 10;
	/* update 10 (1-based) is after 9 updates: lr 0.1 -> w = 0.9 */
	assert_int_equal(psf_optim_apply(&c, 10, w, NULL, g, 1, 1.0f, 0.0), PSF_OK);
	assert_near(w[0], 0.9, TOL);
	/* update 11 is after 10 updates: lr 0.05 -> w = 0.85 */
	assert_int_equal(psf_optim_apply(&c, 11, w, NULL, g, 1, 1.0f, 0.0), PSF_OK);
	assert_near(w[0], 0.85, TOL);
}

static void
test_optim_clip_scale(void **state)
{
	(void)state;
	assert_near(psf_optim_clip_scale(5.0, 0.0), 1.0, 0); /* off */
	assert_near(psf_optim_clip_scale(NAN, 0.0), 1.0, 0); /* off */
	assert_near(psf_optim_clip_scale(0.5, 1.0), 1.0, 0); /* under */
	assert_near(psf_optim_clip_scale(1.0, 1.0), 1.0, 0); /* at */
	assert_near(psf_optim_clip_scale(4.0, 2.0), 0.5, 1e-12);
	assert_near(psf_optim_clip_scale(INFINITY, 1.0), 0.0, 0);
	assert_near(psf_optim_clip_scale(NAN, 1.0), 0.0, 0);
}

static void
test_optim_clipped_gradient_has_clip_norm(void **state)
{
	psf_optim_cfg c = cfg_of(PSF_OPTIM_SGD, 1.0);
	const float g[2] = {3.0f, 4.0f}; /* norm 5 */
	float w[2] = {0.0f, 0.0f};
	double scale;

	(void)state;
	/* clip to 1: scale 0.2, so w moves by -(0.6, 0.8), a vector of norm 1 */
	scale = psf_optim_clip_scale(sqrt(psf_optim_sq_norm(g, 2)), 1.0);
	assert_near(scale, 0.2, 1e-12);
	assert_int_equal(psf_optim_apply(&c, 1, w, NULL, g, 2, (float)scale, 0.0), PSF_OK);
	assert_near(w[0], -0.6, TOL);
	assert_near(w[1], -0.8, TOL);
}

static void
test_optim_sq_norm_and_finite(void **state)
{
	float g[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};        /* 285: tail after 2 blocks of 4 */
	float big[3] = {FLT_MAX, -FLT_MAX, FLT_MIN / 4}; /* finite, incl. a subnormal */

	(void)state;
	assert_near(psf_optim_sq_norm(g, 9), 285.0, 0);
	assert_near(psf_optim_sq_norm(g, 0), 0.0, 0);
	assert_true(psf_optim_is_finite(g, 9));
	assert_true(psf_optim_is_finite(g, 0));

	assert_true(psf_optim_is_finite(big, 3));
	assert_true(isfinite(psf_optim_sq_norm(big, 3)));

	for (size_t i = 0; i < 9; i++) {
		const float bad[3] = {NAN, INFINITY, -INFINITY};

		for (size_t b = 0; b < 3; b++) {
			float h[9];

			memcpy(h, g, sizeof(h));
			h[i] = bad[b];
			assert_false(psf_optim_is_finite(h, 9));
			assert_false(isfinite(psf_optim_sq_norm(h, 9)));
		}
	}
}

static void
test_optim_unaligned_gradient_matches_aligned(void **state)
{
	psf_optim_cfg c = cfg_of(PSF_OPTIM_ADAM, 0.01);
	float g[7] = {0.5f, -1.0f, 2.0f, 0.0f, -0.25f, 3.0f, 1e-3f};
	unsigned char raw[sizeof(g) + 3];
	float w1[7], w2[7], s1[14] = {0}, s2[14] = {0};

	(void)state;
	for (int i = 0; i < 7; i++)
		w1[i] = w2[i] = (float)i * 0.1f;
	memcpy(raw + 3, g, sizeof(g)); /* wire payload at an odd offset */
	assert_near(psf_optim_sq_norm(raw + 3, 7), psf_optim_sq_norm(g, 7), 0);
	assert_true(psf_optim_is_finite(raw + 3, 7));
	assert_int_equal(psf_optim_apply(&c, 3, w1, s1, g, 7, 0.5f, 0.01), PSF_OK);
	assert_int_equal(psf_optim_apply(&c, 3, w2, s2, raw + 3, 7, 0.5f, 0.01), PSF_OK);
	assert_memory_equal(w1, w2, sizeof(w1));
	assert_memory_equal(s1, s2, sizeof(s1));
}

static void
test_optim_bad_arguments_change_nothing(void **state)
{
	psf_optim_cfg c = cfg_of(PSF_OPTIM_ADAM, 0.01);
	float w[2] = {1.0f, 2.0f}, st[4] = {0};
	const float g[2] = {1.0f, 1.0f};

	(void)state;
	assert_int_equal(psf_optim_apply(&c, 0, w, st, g, 2, 1.0f, 0.0), PSF_EINVAL);
	assert_int_equal(psf_optim_apply(&c, 1, w, NULL, g, 2, 1.0f, 0.0), PSF_EINVAL);
	assert_int_equal(psf_optim_apply(&c, 1, w, st, NULL, 2, 1.0f, 0.0), PSF_EINVAL);
	assert_int_equal(psf_optim_apply(NULL, 1, w, st, g, 2, 1.0f, 0.0), PSF_EINVAL);
	assert_int_equal(psf_optim_apply(&c, 1, w, st, g, 2, NAN, 0.0), PSF_EINVAL);
	assert_int_equal(psf_optim_apply(&c, 1, w, st, g, 2, 1.0f, INFINITY), PSF_EINVAL);
	c.beta1 = 1.0; /* bias correction would divide by zero */
	assert_int_equal(psf_optim_apply(&c, 1, w, st, g, 2, 1.0f, 0.0), PSF_EINVAL);
	c = cfg_of((psf_optim_kind)9, 0.01);
	assert_int_equal(psf_optim_apply(&c, 1, w, st, g, 2, 1.0f, 0.0), PSF_EINVAL);
	assert_near(w[0], 1.0, 0);
	assert_near(w[1], 2.0, 0);
	assert_near(st[0], 0.0, 0);
}

static void
test_optim_check_rejects_bad_config(void **state)
{
	psf_optim_cfg c = cfg_of(PSF_OPTIM_ADAM, 0.01);

	(void)state;
	assert_int_equal(psf_optim_check(&c), PSF_OK);
	assert_int_equal(psf_optim_check(NULL), PSF_EINVAL);
	c.learning_rate = -1;
	assert_int_equal(psf_optim_check(&c), PSF_EINVAL);
	c = cfg_of(PSF_OPTIM_ADAM, 0.01);
	c.beta2 = 1.5;
	assert_int_equal(psf_optim_check(&c), PSF_EINVAL);
	c = cfg_of(PSF_OPTIM_ADAGRAD, 0.01);
	c.epsilon = 0;
	assert_int_equal(psf_optim_check(&c), PSF_EINVAL);
	c = cfg_of(PSF_OPTIM_MOMENTUM, 0.01);
	c.momentum = NAN;
	assert_int_equal(psf_optim_check(&c), PSF_EINVAL);
	c = cfg_of(PSF_OPTIM_SGD, 0.01);
	c.clip_norm = -1;
	assert_int_equal(psf_optim_check(&c), PSF_EINVAL);
	c = cfg_of(PSF_OPTIM_SGD, 0.01);
	c.schedule = PSF_LR_STEP;
	c.gamma = 0;
	assert_int_equal(psf_optim_check(&c), PSF_EINVAL);
}

/* apply_to out of place computes the same bits as apply in place, for every
 * rule, and leaves w_in alone; n = 37 covers vector bodies and scalar tails. */
static void
test_optim_apply_to_matches_in_place(void **state)
{
	const psf_optim_kind kinds[] = {PSF_OPTIM_SGD, PSF_OPTIM_MOMENTUM, PSF_OPTIM_ADAM,
	    PSF_OPTIM_ADAGRAD};
	enum { N = 37 };
	float g[N], w0[N], w1[N], w2[N], w3[N], s1[2 * N], s2[2 * N], s3[2 * N];

	(void)state;
	for (int i = 0; i < N; i++) {
		g[i] = (float)(i % 7) * 0.3f - 0.9f;
		w0[i] = (float)i * 0.05f - 1.0f;
	}
	for (size_t k = 0; k < PSF_ARRAY_LEN(kinds); k++) {
		psf_optim_cfg c = cfg_of(kinds[k], 0.05);

		for (int i = 0; i < 2 * N; i++)
			s1[i] = s2[i] = s3[i] = (float)i * 0.01f;
		memcpy(w1, w0, sizeof(w0));
		memcpy(w3, w0, sizeof(w0));
		memset(w2, 0x55, sizeof(w2));
		for (uint64_t step = 1; step <= 3; step++) {
			assert_int_equal(psf_optim_apply(&c, step, w1, s1, g, N, 0.5f, 0.01),
			    PSF_OK);
			assert_int_equal(
			    psf_optim_apply_to(&c, step, w2, w3, s2, s2, g, N, 0.5f, 0.01, true),
			    PSF_OK);
			if (step == 1)
				assert_true(
				    w3[0] == w0[0] && w3[N - 1] == w0[N - 1]); /* only read */
			memcpy(w3, w2, sizeof(w2));
		}
		assert_memory_equal(w1, w2, sizeof(w1));
		assert_memory_equal(s1, s2, sizeof(s1));
		/* w_out == w_in is the in-place update */
		memcpy(w3, w0, sizeof(w0));
		for (uint64_t step = 1; step <= 3; step++)
			assert_int_equal(
			    psf_optim_apply_to(&c, step, w3, w3, s3, s3, g, N, 0.5f, 0.01, true),
			    PSF_OK);
		assert_memory_equal(w1, w3, sizeof(w1));
		assert_memory_equal(s1, s3, sizeof(s1));
		/* the state out of place too (weights out of place, then in place) */
		for (int mixed = 0; mixed < 2; mixed++) {
			float wa[N], wb[N], sa[2 * N], sb[2 * N] = {0};

			memcpy(wa, w0, sizeof(w0));
			for (int i = 0; i < 2 * N; i++)
				sa[i] = (float)i * 0.01f;
			for (uint64_t step = 1; step <= 3; step++) {
				float *wo = mixed ? wa : wb;
				assert_int_equal(psf_optim_apply_to(&c, step, wo, wa, sb, sa, g, N,
				                     0.5f, 0.01, true),
				    PSF_OK);
				if (!mixed)
					memcpy(wa, wb, sizeof(wb));
				memcpy(sa, sb, sizeof(sb));
			}
			assert_memory_equal(w1, wa, sizeof(w1));
			if (kinds[k] != PSF_OPTIM_SGD)
				assert_memory_equal(s1, sa,
				    psf_optim_state_floats(kinds[k]) * N * sizeof(float));
		}
	}
}

/* check_finite finds NaN and +-Inf at any position (vector body and tail); the
 * plain apply does not look. */
static void
test_optim_apply_to_finds_nonfinite_gradients(void **state)
{
	const float bad[] = {NAN, INFINITY, -INFINITY};
	enum { N = 37 };
	float g[N], w[N], out[N], st[2 * N] = {0};

	(void)state;
	for (int i = 0; i < N; i++) {
		g[i] = FLT_MAX * ((i & 1) ? -1.0f : 1.0f); /* the largest finite values pass */
		w[i] = 1.0f;
	}
	for (int kind = PSF_OPTIM_SGD; kind <= PSF_OPTIM_ADAGRAD; kind++) {
		psf_optim_cfg c = cfg_of((psf_optim_kind)kind, 0.0);

		assert_int_equal(psf_optim_apply_to(&c, 1, out, w, st, st, g, N, 1.0f, 0.0, true),
		    PSF_OK);
	}
	for (size_t b = 0; b < PSF_ARRAY_LEN(bad); b++) {
		for (int pos = 0; pos < N; pos += 6) {
			psf_optim_cfg c = cfg_of(PSF_OPTIM_SGD, 0.1);
			float h[N];

			memcpy(h, g, sizeof(g));
			h[pos] = bad[b];
			assert_int_equal(
			    psf_optim_apply_to(&c, 1, out, w, NULL, NULL, h, N, 1.0f, 0.0, true),
			    PSF_ERANGE);
			assert_int_equal(
			    psf_optim_apply_to(&c, 1, out, w, NULL, NULL, h, N, 1.0f, 0.0, false),
			    PSF_OK);
			assert_int_equal(psf_optim_apply(&c, 1, out, NULL, h, N, 1.0f, 0.0),
			    PSF_OK);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_optim_state_floats_per_kind),
	    cmocka_unit_test(test_optim_sgd_step_with_scale_and_l2),
	    cmocka_unit_test(test_optim_momentum_two_steps),
	    cmocka_unit_test(test_optim_adam_bias_corrected_steps),
	    cmocka_unit_test(test_optim_adagrad_accumulates_squares),
	    cmocka_unit_test(test_optim_lr_schedules),
	    cmocka_unit_test(test_optim_apply_uses_schedule_of_previous_step),
	    cmocka_unit_test(test_optim_clip_scale),
	    cmocka_unit_test(test_optim_clipped_gradient_has_clip_norm),
	    cmocka_unit_test(test_optim_sq_norm_and_finite),
	    cmocka_unit_test(test_optim_unaligned_gradient_matches_aligned),
	    cmocka_unit_test(test_optim_bad_arguments_change_nothing),
	    cmocka_unit_test(test_optim_check_rejects_bad_config),
	    cmocka_unit_test(test_optim_apply_to_matches_in_place),
	    cmocka_unit_test(test_optim_apply_to_finds_nonfinite_gradients),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
