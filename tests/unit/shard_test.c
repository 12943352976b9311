#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base/keys.h"
#include "lib/base/shard.h"

#define N_KEYS 10000

static void
make_seeds(uint64_t *seeds, size_t n)
{
	char id[32];

	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "ps%zu", i);
		seeds[i] = psf_shard_node_seed(id);
	}
}

/* Keys as the ps sees them: (tensor_id << 48) | row, over a few tensors. */
static uint64_t
key_of(size_t i)
{
	return ((uint64_t)(i % 5) << PSF_KEY_ROW_BITS) | (uint64_t)(i / 5);
}

static void
symbol_of(size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "SYM%05zu", i);
}

static void
test_shard_pick_is_stable(void **state)
{
	uint64_t seeds[4];

	(void)state;
	make_seeds(seeds, 4);
	for (size_t i = 0; i < N_KEYS; i++) {
		size_t a = psf_shard_pick(key_of(i), seeds, 4);

		assert_true(a < 4);
		assert_int_equal(a, psf_shard_pick(key_of(i), seeds, 4));
	}
}

/* Pinned values: stored parameter keys and every node's map depend on these
 * hashes, so a change here must be deliberate (it invalidates ps stores). */
static void
test_shard_hashes_are_pinned(void **state)
{
	uint64_t seeds[3];
	const size_t want_keys[8] = {2, 2, 1, 0, 1, 1, 2, 1};
	const char *syms[6] = {"AAPL", "MSFT", "GOOG", "SYM0001", "SYM0002", "SYM0003"};
	const size_t want_syms[6] = {0, 0, 1, 1, 1, 0};

	(void)state;
	make_seeds(seeds, 3);
	assert_true(psf_shard_node_seed("ps0") == UINT64_C(0x73506e6354598179));
	assert_true(psf_symbol_row("AAPL") == UINT64_C(0xaa5c25cce8c5));
	for (uint64_t k = 0; k < 8; k++)
		assert_int_equal(psf_shard_pick(k, seeds, 3), want_keys[k]);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(psf_shard_pick_str(syms[i], seeds, 3), want_syms[i]);
}

/* The key layout is stored in LMDB and sent on the wire: pin it. */
static void
test_key_layout_is_pinned(void **state)
{
	(void)state;
	assert_true(psf_key(1, 0) == UINT64_C(0x0001000000000000));
	assert_true(psf_key(6, 0xaa5c25cce8c5) == UINT64_C(0x0006aa5c25cce8c5));
	assert_true(psf_key(0xffff, PSF_KEY_ROW_MASK) == UINT64_MAX);
	assert_true(
	    psf_key(2, UINT64_C(0x0003000000000007)) == psf_key(2, 7)); /* high bits dropped */
	assert_int_equal(psf_key_tensor(UINT64_C(0x0006aa5c25cce8c5)), 6);
	assert_true(psf_key_row(UINT64_C(0x0006aa5c25cce8c5)) == UINT64_C(0xaa5c25cce8c5));
	assert_true(psf_key(5, psf_symbol_row("AAPL")) == UINT64_C(0x0005aa5c25cce8c5));
}

static void
test_shard_pick_uniform_over_four_nodes(void **state)
{
	uint64_t seeds[4];
	size_t count[4] = {0};

	(void)state;
	make_seeds(seeds, 4);
	for (size_t i = 0; i < N_KEYS; i++)
		count[psf_shard_pick(key_of(i), seeds, 4)]++;
	for (size_t n = 0; n < 4; n++) {
		assert_true(count[n] >= N_KEYS * 22 / 100);
		assert_true(count[n] <= N_KEYS * 28 / 100);
	}
}

static void
test_shard_pick_str_uniform_over_four_nodes(void **state)
{
	uint64_t seeds[4];
	size_t count[4] = {0};
	char sym[32];

	(void)state;
	make_seeds(seeds, 4);
	for (size_t i = 0; i < N_KEYS; i++) {
		symbol_of(i, sym, sizeof(sym));
		count[psf_shard_pick_str(sym, seeds, 4)]++;
	}
	for (size_t n = 0; n < 4; n++) {
		assert_true(count[n] >= N_KEYS * 22 / 100);
		assert_true(count[n] <= N_KEYS * 28 / 100);
	}
}

static void
test_shard_pick_fifth_node_moves_few_keys_to_it(void **state)
{
	uint64_t seeds[5];
	size_t moved = 0;

	(void)state;
	make_seeds(seeds, 5);
	for (size_t i = 0; i < N_KEYS; i++) {
		size_t before = psf_shard_pick(key_of(i), seeds, 4);
		size_t after = psf_shard_pick(key_of(i), seeds, 5);

		if (before != after) {
			assert_int_equal(after, 4);
			moved++;
		}
	}
	assert_true(moved > 0);
	assert_true(moved <= N_KEYS / 4);
}

static void
test_shard_pick_str_fifth_node_moves_few_symbols_to_it(void **state)
{
	uint64_t seeds[5];
	size_t moved = 0;
	char sym[32];

	(void)state;
	make_seeds(seeds, 5);
	for (size_t i = 0; i < N_KEYS; i++) {
		symbol_of(i, sym, sizeof(sym));
		size_t before = psf_shard_pick_str(sym, seeds, 4);
		size_t after = psf_shard_pick_str(sym, seeds, 5);

		if (before != after) {
			assert_int_equal(after, 4);
			moved++;
		}
	}
	assert_true(moved > 0);
	assert_true(moved <= N_KEYS / 4);
}

/* The owner is a node, not a list position: reversing the list must give the
 * same node for every key. */
static void
test_shard_pick_independent_of_node_order(void **state)
{
	uint64_t seeds[4], rev[4];

	(void)state;
	make_seeds(seeds, 4);
	for (size_t i = 0; i < 4; i++)
		rev[i] = seeds[3 - i];
	for (size_t i = 0; i < N_KEYS; i++)
		assert_int_equal(psf_shard_pick(key_of(i), seeds, 4),
		    3 - psf_shard_pick(key_of(i), rev, 4));
}

static void
test_shard_pick_without_nodes_returns_none(void **state)
{
	uint64_t seed = psf_shard_node_seed("ps0");

	(void)state;
	assert_true(psf_shard_pick(1, &seed, 0) == PSF_SHARD_NONE);
	assert_true(psf_shard_pick(1, NULL, 3) == PSF_SHARD_NONE);
	assert_true(psf_shard_pick_str("X", NULL, 0) == PSF_SHARD_NONE);
	assert_int_equal(psf_shard_pick_str(NULL, &seed, 1), 0);
	assert_true(psf_shard_node_seed(NULL) == psf_shard_node_seed(""));
}

static void
test_shard_symbol_row_fits_48_bits(void **state)
{
	char sym[32];
	size_t high_bits = 0;

	(void)state;
	for (size_t i = 0; i < 1000; i++) {
		symbol_of(i, sym, sizeof(sym));
		uint64_t row = psf_symbol_row(sym);

		assert_true(row >> PSF_KEY_ROW_BITS == 0);
		if (row >> (PSF_KEY_ROW_BITS - 1))
			high_bits++;
	}
	/* The whole 48 bits are used, not a narrower hash. */
	assert_true(high_bits > 400 && high_bits < 600);
	assert_true(psf_symbol_row("AAPL") != psf_symbol_row("AAPM"));
	assert_true(psf_symbol_row(NULL) == psf_symbol_row(""));
}

/* A skewed mix: a few huge symbols, many small ones, rows from a fixed LCG. */
#define N_SYMS 600
#define N_BINS 4

static void
make_skewed(psf_shard_item *items, char (*names)[32])
{
	uint64_t x = 12345;

	for (size_t i = 0; i < N_SYMS; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		symbol_of(i, names[i], 32);
		items[i].symbol = names[i];
		items[i].rows = 50 + (x >> 33) % 500;
		if (i % 50 == 0)
			items[i].rows *= 20; /* 12 symbols with ~10x the data */
	}
}

static void
test_shard_balance_evens_skewed_loads(void **state)
{
	static psf_shard_item items[N_SYMS];
	static char names[N_SYMS][32];
	size_t bins[N_SYMS];
	uint64_t load[N_BINS] = {0}, hash_load[N_BINS] = {0};
	uint64_t seeds[N_BINS];
	uint64_t lo = UINT64_MAX, hi = 0, hlo = UINT64_MAX, hhi = 0;

	(void)state;
	make_skewed(items, names);
	make_seeds(seeds, N_BINS);
	assert_int_equal(psf_shard_balance(items, N_SYMS, N_BINS, bins), PSF_OK);
	for (size_t i = 0; i < N_SYMS; i++) {
		assert_true(bins[i] < N_BINS);
		load[bins[i]] += items[i].rows;
		hash_load[psf_shard_pick_str(items[i].symbol, seeds, N_BINS)] += items[i].rows;
	}
	for (size_t b = 0; b < N_BINS; b++) {
		lo = load[b] < lo ? load[b] : lo;
		hi = load[b] > hi ? load[b] : hi;
		hlo = hash_load[b] < hlo ? hash_load[b] : hlo;
		hhi = hash_load[b] > hhi ? hash_load[b] : hhi;
	}
	assert_true(lo > 0);
	assert_true((double)hi / (double)lo < 1.01);
	/* ... and better than hashing, which is the point of shard_by: rows. */
	assert_true((double)hi / (double)lo < (double)hhi / (double)hlo);
}

static void
test_shard_balance_independent_of_input_order(void **state)
{
	static psf_shard_item items[N_SYMS], shuffled[N_SYMS];
	static char names[N_SYMS][32];
	size_t bins[N_SYMS], bins2[N_SYMS];
	size_t perm[N_SYMS];
	uint64_t x = 99;

	(void)state;
	make_skewed(items, names);
	for (size_t i = 0; i < N_SYMS; i++)
		perm[i] = i;
	for (size_t i = N_SYMS - 1; i > 0; i--) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		size_t j = (size_t)((x >> 33) % (i + 1));
		size_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (size_t i = 0; i < N_SYMS; i++)
		shuffled[i] = items[perm[i]];
	assert_int_equal(psf_shard_balance(items, N_SYMS, N_BINS, bins), PSF_OK);
	assert_int_equal(psf_shard_balance(shuffled, N_SYMS, N_BINS, bins2), PSF_OK);
	for (size_t i = 0; i < N_SYMS; i++)
		assert_int_equal(bins2[i], bins[perm[i]]);
}

static void
test_shard_balance_ties_go_by_name(void **state)
{
	psf_shard_item items[3] = {{"c", 10}, {"a", 10}, {"b", 10}};
	size_t bins[3];

	(void)state;
	assert_int_equal(psf_shard_balance(items, 3, 2, bins), PSF_OK);
	assert_int_equal(bins[1], 0); /* "a" first, to bin 0 */
	assert_int_equal(bins[2], 1); /* "b" to the empty bin 1 */
	assert_int_equal(bins[0], 0); /* "c" to the lower of two equal bins */
}

static void
test_shard_balance_rejects_bad_input(void **state)
{
	psf_shard_item dup[2] = {{"a", 1}, {"a", 2}};
	psf_shard_item none[2] = {{"a", 1}, {NULL, 2}};
	size_t bins[2] = {77, 77};

	(void)state;
	assert_int_equal(psf_shard_balance(dup, 2, 2, bins), PSF_EINVAL);
	assert_int_equal(psf_shard_balance(none, 2, 2, bins), PSF_EINVAL);
	assert_int_equal(psf_shard_balance(dup, 2, 0, bins), PSF_EINVAL);
	assert_int_equal(psf_shard_balance(NULL, 2, 2, bins), PSF_EINVAL);
	assert_int_equal(psf_shard_balance(dup, 1, 2, NULL), PSF_EINVAL);
	/* Out-params are written only on success. */
	assert_int_equal(bins[0], 77);
	assert_int_equal(bins[1], 77);
	assert_int_equal(psf_shard_balance(NULL, 0, 2, bins), PSF_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shard_pick_is_stable),
	    cmocka_unit_test(test_shard_hashes_are_pinned),
	    cmocka_unit_test(test_key_layout_is_pinned),
	    cmocka_unit_test(test_shard_pick_uniform_over_four_nodes),
	    cmocka_unit_test(test_shard_pick_str_uniform_over_four_nodes),
	    cmocka_unit_test(test_shard_pick_fifth_node_moves_few_keys_to_it),
	    cmocka_unit_test(test_shard_pick_str_fifth_node_moves_few_symbols_to_it),
	    cmocka_unit_test(test_shard_pick_independent_of_node_order),
	    cmocka_unit_test(test_shard_pick_without_nodes_returns_none),
	    cmocka_unit_test(test_shard_symbol_row_fits_48_bits),
	    cmocka_unit_test(test_shard_balance_evens_skewed_loads),
	    cmocka_unit_test(test_shard_balance_independent_of_input_order),
	    cmocka_unit_test(test_shard_balance_ties_go_by_name),
	    cmocka_unit_test(test_shard_balance_rejects_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
