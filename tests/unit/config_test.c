/* config_test.c -- the fleet config loader: examples, defaults, every kind of
 * mistake with its exact one-line message, fingerprint, and robustness against
 * truncated and corrupted files. Fixtures live in tests/data/configs/. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/config/config.h"

/* The source tree, found from this file's path (CMake compiles it by absolute path). */
static void
source_path(const char *rel, char *buf, size_t len)
{
	const char *self = __FILE__;
	const char *cut = strstr(self, "tests/unit/config_test.c");

	assert_non_null(cut);
	snprintf(buf, len, "%.*s%s", (int)(cut - self), self, rel);
}

/* Tests that load fixtures run inside the fixture directory, so messages carry the
 * bare file name: "bad_mode.yaml:8: ...". */
static int
enter_fixtures(void **state)
{
	char dir[PATH_MAX];
	char *cwd = getcwd(NULL, 0);

	if (cwd == NULL)
		return -1;
	source_path("tests/data/configs", dir, sizeof(dir));
	if (chdir(dir) != 0) {
		free(cwd);
		return -1;
	}
	*state = cwd;
	return 0;
}

static int
leave_fixtures(void **state)
{
	int rv = chdir((char *)*state);

	free(*state);
	return rv == 0 ? 0 : -1;
}

static psf_config *
load_ok(const char *path)
{
	char err[512] = "unset";
	psf_config *cfg = NULL;
	psf_err rv = psf_config_load(path, err, sizeof(err), &cfg);

	if (rv != PSF_OK)
		fail_msg("%s: %s (%s)", path, psf_strerror(rv), err);
	assert_string_equal(err, "");
	assert_non_null(cfg);
	return cfg;
}

static psf_config *
parse_ok(const char *text)
{
	char err[512];
	psf_config *cfg = NULL;
	psf_err rv = psf_config_parse("t.yaml", text, strlen(text), err, sizeof(err), &cfg);

	if (rv != PSF_OK)
		fail_msg("%s\n--- %s", err, text);
	return cfg;
}

/* Every node list must come out ordered by role, numbered within the role. */
static void
check_node_invariants(const psf_config *cfg)
{
	size_t count[4] = {0};

	assert_true(cfg->n_ps >= 1 && cfg->n_trainers >= 1 && cfg->n_gateways <= 1);
	assert_int_equal(cfg->n_nodes,
	    cfg->n_ps + cfg->n_trainers + cfg->n_inferers + cfg->n_gateways);
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const psf_node_cfg *n = &cfg->nodes[i];

		if (i > 0)
			assert_true(cfg->nodes[i - 1].role <= n->role);
		assert_int_equal(n->index, count[n->role]++);
		assert_non_null(n->id);
		assert_non_null(n->data_dir);
		assert_ptr_equal(psf_config_find_node(cfg, n->id), n);
		assert_ptr_equal(psf_config_role_node(cfg, n->role, n->index), n);
		if (n->role != PSF_ROLE_TRAINER)
			assert_non_null(n->listen);
	}
	assert_non_null(cfg->data.path);
	assert_true(cfg->n_features >= 1);
}

static void
test_config_examples_all_load(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	DIR *d;
	struct dirent *e;
	int n = 0;

	(void)state;
	source_path("examples", dir, sizeof(dir));
	assert_non_null(d = opendir(dir));
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		psf_config *cfg;

		if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		cfg = load_ok(path);
		check_node_invariants(cfg);
		psf_config_free(cfg);
		n++;
	}
	closedir(d);
	assert_true(n >= 5); /* fleet, async, ssp, mlp, tiny */
}

static int
has_feature(const psf_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_features; i++)
		if (strcmp(cfg->features[i].name, name) == 0)
			return 1;
	return 0;
}

static void
test_config_examples_match_their_purpose(void **state)
{
	char path[PATH_MAX];
	psf_config *cfg;

	(void)state;
	source_path("examples/fleet.yaml", path, sizeof(path));
	cfg = load_ok(path);
	assert_int_equal(cfg->n_ps, 2);
	assert_int_equal(cfg->n_trainers, 4);
	assert_int_equal(cfg->n_inferers, 2);
	assert_int_equal(cfg->n_gateways, 1);
	assert_int_equal(cfg->inference.shards, 2);
	assert_true(cfg->data.has_generate);
	assert_int_equal(cfg->data.generate.symbols, 1000);
	assert_int_equal(cfg->data.generate.days, 1000);
	assert_string_equal(cfg->data.path, "data/demo.csv");
	/* scale-free features, return target: see the comment in fleet.yaml */
	assert_true(has_feature(cfg, "return:1"));
	assert_int_equal(cfg->target, PSF_TARGET_NEXT_RETURN);
	assert_int_equal(cfg->model.kind, PSF_MODEL_LINEAR);
	assert_int_equal(cfg->optimizer.kind, PSF_OPTIM_ADAM);
	assert_int_equal(cfg->consistency.mode, PSF_CONS_SYNC);
	assert_true(cfg->training.epochs >= 2 && cfg->training.epochs <= 3);
	assert_string_equal(psf_config_role_node(cfg, PSF_ROLE_PS, 0)->listen,
	    "tcp://127.0.0.1:7101");
	psf_config_free(cfg);

	source_path("examples/tiny.yaml", path, sizeof(path));
	cfg = load_ok(path);
	assert_int_equal(cfg->n_ps, 1);
	assert_int_equal(cfg->n_trainers, 2);
	assert_int_equal(cfg->n_inferers, 1);
	assert_int_equal(cfg->n_gateways, 1);
	assert_int_equal(cfg->data.generate.symbols, 40);
	assert_int_equal(cfg->data.generate.days, 300);
	assert_int_equal(cfg->training.epochs, 6);
	psf_config_free(cfg);

	/* the seed chapter's Ray Train LSTM: 2 x 64, Adam 0.001, 4 workers, 10 inputs */
	source_path("examples/lstm.yaml", path, sizeof(path));
	cfg = load_ok(path);
	assert_int_equal(cfg->model.kind, PSF_MODEL_LSTM);
	assert_int_equal(cfg->model.n_hidden, 2);
	assert_int_equal(cfg->model.hidden[0], 64);
	assert_int_equal(cfg->model.hidden[1], 64);
	assert_int_equal(cfg->model.window, 20);
	assert_int_equal(cfg->n_features, 10);
	assert_int_equal(cfg->n_trainers, 4);
	assert_int_equal(cfg->optimizer.kind, PSF_OPTIM_ADAM);
	assert_true(cfg->optimizer.learning_rate == 0.001);
	assert_int_equal(cfg->consistency.mode, PSF_CONS_SYNC);
	assert_true(cfg->training.clip_norm > 0);
	psf_config_free(cfg);
}

/* A trainer may have a listen URL (it serves Admin there); without one it has none. */
static void
test_config_trainer_listen_optional(void **state)
{
	psf_config *cfg =
	    parse_ok("nodes:\n"
	             "  ps: [{id: ps0, listen: \"tcp://127.0.0.1:7101\"}]\n"
	             "  trainers: [{id: t0, listen: \"ipc:///tmp/t0.sock\"}, {id: t1}]\n"
	             "data: {path: d.csv}\n"
	             "features: [\"lag:0\"]\n");

	(void)state;
	assert_string_equal(psf_config_role_node(cfg, PSF_ROLE_TRAINER, 0)->listen,
	    "ipc:///tmp/t0.sock");
	assert_null(psf_config_role_node(cfg, PSF_ROLE_TRAINER, 1)->listen);
	psf_config_free(cfg);
}

static void
test_config_defaults_applied(void **state)
{
	psf_config *cfg = load_ok("valid_minimal.yaml");

	(void)state;
	check_node_invariants(cfg);
	assert_string_equal(cfg->path, "valid_minimal.yaml");
	assert_string_equal(cfg->name, "t");
	assert_int_equal(cfg->seed, 42);
	assert_string_equal(cfg->run_dir, "runs/t");
	assert_string_equal(cfg->log_level, "info");
	assert_string_equal(cfg->nodes[0].data_dir, "runs/t/ps0");
	assert_string_equal(cfg->nodes[1].data_dir, "runs/t/trainer-0");
	assert_null(cfg->nodes[0].metrics);
	assert_null(cfg->nodes[1].listen);
	assert_int_equal(cfg->nodes[0].shard, 0);
	assert_false(cfg->data.has_generate);
	assert_int_equal(cfg->data.bad_rows, PSF_BAD_ROWS_FAIL);
	assert_true(cfg->data.test_fraction == 0.2);
	assert_int_equal(cfg->data.shard_by, PSF_SHARD_BY_ROWS); /* balanced by default */
	assert_int_equal(cfg->target, PSF_TARGET_NEXT_CLOSE);
	assert_int_equal(cfg->model.kind, PSF_MODEL_LINEAR);
	assert_int_equal(cfg->model.n_hidden, 1);
	assert_int_equal(cfg->model.hidden[0], 32);
	assert_int_equal(cfg->model.embedding_dim, 0);
	assert_false(cfg->model.symbol_bias);
	assert_true(cfg->model.l2 == 0.0 && cfg->model.init_scale == 1.0);
	assert_int_equal(cfg->model.chunk_floats, 65536);
	assert_int_equal(cfg->optimizer.kind, PSF_OPTIM_ADAM);
	assert_true(cfg->optimizer.learning_rate == 0.01 && cfg->optimizer.momentum == 0.9);
	assert_true(cfg->optimizer.beta1 == 0.9 && cfg->optimizer.beta2 == 0.999);
	assert_true(cfg->optimizer.epsilon == 1e-8 && cfg->optimizer.gamma == 0.5);
	assert_int_equal(cfg->optimizer.schedule, PSF_LR_CONSTANT);
	assert_int_equal(cfg->optimizer.step_size, 1000);
	assert_int_equal(cfg->optimizer.total_steps, 0);
	assert_true(cfg->optimizer.clip_norm == 0.0 && !cfg->optimizer.skip_nonfinite);
	assert_int_equal(cfg->training.epochs, 5);
	assert_int_equal(cfg->training.batch_size, 256);
	assert_int_equal(cfg->training.max_steps, 0);
	assert_true(cfg->training.shuffle && cfg->training.target_loss == 0.0);
	assert_int_equal(cfg->consistency.mode, PSF_CONS_SYNC);
	assert_int_equal(cfg->consistency.staleness, 2);
	assert_int_equal(cfg->consistency.straggler_timeout_ms, 10000);
	assert_int_equal(cfg->consistency.heartbeat_ms, 1000);
	assert_int_equal(cfg->durability.mode, PSF_DUR_INTERVAL);
	assert_int_equal(cfg->durability.interval_ms, 1000);
	assert_int_equal(cfg->durability.map_size, 67108864ull);
	assert_int_equal(cfg->limits.max_message_bytes, 83886080ull);
	assert_int_equal(cfg->limits.max_keys_per_request, 1000000);
	assert_int_equal(cfg->limits.request_timeout_ms, 30000);
	assert_int_equal(cfg->limits.rpc_workers, 64);
	assert_int_equal(cfg->limits.max_connections, 0);
	assert_null(cfg->security.token_file);
	assert_null(cfg->security.token_env);
	assert_null(cfg->security.tls_cert);
	assert_int_equal(cfg->inference.refresh_ms, 1000);
	assert_int_equal(cfg->inference.history_days, 64);
	assert_int_equal(cfg->inference.shards, 1);
	assert_int_equal(cfg->gateway.route, PSF_ROUTE_SYMBOL);
	assert_int_equal(cfg->gateway.health_interval_ms, 500);
	psf_config_free(cfg);
}

static void
test_config_generate_defaults(void **state)
{
	psf_config *cfg = load_ok("valid_generated.yaml");

	(void)state;
	assert_string_equal(cfg->run_dir, "runs/gen");
	assert_true(cfg->data.has_generate);
	assert_string_equal(cfg->data.path, "runs/gen/data.csv");
	assert_int_equal(cfg->data.generate.seed, 1234);
	assert_int_equal(cfg->data.generate.symbols, 5);
	assert_int_equal(cfg->data.generate.days, 500);
	assert_false(cfg->data.generate.skew);
	psf_config_free(cfg);
}

static void
check_full_nodes(const psf_config *cfg)
{
	static const char *const order[] = {"ps-b", "ps-a", "t0", "t1", "inf-a", "inf-b", "inf-c",
	    "gw"};
	const psf_node_cfg *n;

	check_node_invariants(cfg);
	assert_int_equal(cfg->n_nodes, PSF_ARRAY_LEN(order));
	for (size_t i = 0; i < cfg->n_nodes; i++)
		assert_string_equal(cfg->nodes[i].id, order[i]);
	assert_int_equal(cfg->n_ps, 2);
	assert_int_equal(cfg->n_trainers, 2);
	assert_int_equal(cfg->n_inferers, 3);
	assert_int_equal(cfg->n_gateways, 1);
	n = psf_config_find_node(cfg, "ps-b");
	assert_string_equal(n->data_dir, "/var/lib/psb");
	assert_string_equal(n->listen, "tls+tcp://127.0.0.1:7102");
	assert_string_equal(psf_config_find_node(cfg, "ps-a")->data_dir, "/tmp/psfleet-full/ps-a");
	assert_string_equal(psf_config_find_node(cfg, "t1")->data_dir, "/tmp/t1");
	n = psf_config_role_node(cfg, PSF_ROLE_INFERER, 0);
	assert_string_equal(n->id, "inf-a");
	assert_int_equal(n->shard, 1);
	assert_string_equal(n->listen, "ipc:///tmp/psfleet-full/inf-a.ipc");
	n = psf_config_role_node(cfg, PSF_ROLE_GATEWAY, 0);
	assert_string_equal(n->metrics, "127.0.0.1:7231");
	assert_int_equal(n->index, 0);
	assert_null(psf_config_role_node(cfg, PSF_ROLE_GATEWAY, 1));
	assert_null(psf_config_role_node(cfg, PSF_ROLE_TRAINER, 2));
	assert_null(psf_config_role_node(cfg, (psf_role)7, 0));
	assert_null(psf_config_role_node(NULL, PSF_ROLE_PS, 0));
	assert_null(psf_config_find_node(cfg, "nope"));
	assert_null(psf_config_find_node(cfg, NULL));
	assert_null(psf_config_find_node(NULL, "gw"));
}

static void check_full_sections(const psf_config *cfg);

static void
test_config_every_key_read(void **state)
{
	psf_config *cfg = load_ok("valid_full.yaml");
	static const char *const feats[] = {"lag:0", "lag:3", "return:2", "sma:7", "std:2",
	    "ratio_sma:9", "ewm:4", "range", "dow", "volume:5"};

	(void)state;
	check_full_nodes(cfg);
	assert_string_equal(cfg->name, "full-test");
	assert_int_equal(cfg->seed, 99);
	assert_string_equal(cfg->run_dir, "/tmp/psfleet-full");
	assert_string_equal(cfg->log_level, "debug");
	assert_string_equal(cfg->data.path, "/data/prices");
	assert_true(cfg->data.has_generate);
	assert_int_equal(cfg->data.generate.symbols, 12);
	assert_int_equal(cfg->data.generate.days, 34);
	assert_int_equal(cfg->data.generate.seed, 5);
	assert_true(cfg->data.generate.skew);
	assert_int_equal(cfg->data.bad_rows, PSF_BAD_ROWS_SKIP);
	assert_true(cfg->data.test_fraction == 0.25);
	assert_int_equal(cfg->data.shard_by, PSF_SHARD_BY_HASH);
	assert_int_equal(cfg->n_features, PSF_ARRAY_LEN(feats));
	for (size_t i = 0; i < cfg->n_features; i++)
		assert_string_equal(cfg->features[i].name, feats[i]);
	assert_int_equal(cfg->features[5].kind, PSF_FEAT_RATIO_SMA);
	assert_int_equal(cfg->features[5].window, 9);
	assert_int_equal(cfg->target, PSF_TARGET_NEXT_DIRECTION);
	assert_int_equal(cfg->model.kind, PSF_MODEL_LOGISTIC);
	assert_int_equal(cfg->model.n_hidden, 3);
	assert_int_equal(cfg->model.hidden[2], 4);
	assert_int_equal(cfg->model.embedding_dim, 3);
	assert_true(cfg->model.symbol_bias);
	assert_true(cfg->model.l2 == 0.5 && cfg->model.init_scale == 0.25);
	assert_int_equal(cfg->model.chunk_floats, 1024);
	check_full_sections(cfg);
	psf_config_free(cfg);
}

/* The sections of valid_full.yaml after model: optimizer .. gateway_options. */
static void
check_full_sections(const psf_config *cfg)
{
	assert_int_equal(cfg->optimizer.kind, PSF_OPTIM_MOMENTUM);
	assert_true(cfg->optimizer.learning_rate == 0.125 && cfg->optimizer.momentum == 0.5);
	assert_true(cfg->optimizer.beta1 == 0.75 && cfg->optimizer.beta2 == 0.875);
	assert_true(cfg->optimizer.epsilon == 1e-6 && cfg->optimizer.gamma == 0.25);
	assert_int_equal(cfg->optimizer.schedule, PSF_LR_STEP);
	assert_int_equal(cfg->optimizer.step_size, 77);
	assert_int_equal(cfg->optimizer.total_steps, 5000);
	assert_true(cfg->optimizer.clip_norm == 2.5 && cfg->optimizer.skip_nonfinite);
	assert_int_equal(cfg->training.epochs, 7);
	assert_int_equal(cfg->training.batch_size, 33);
	assert_int_equal(cfg->training.max_steps, 1000);
	assert_true(!cfg->training.shuffle && cfg->training.target_loss == 0.5);
	assert_int_equal(cfg->consistency.mode, PSF_CONS_SSP);
	assert_int_equal(cfg->consistency.staleness, 0);
	assert_int_equal(cfg->consistency.straggler_timeout_ms, 2000);
	assert_int_equal(cfg->consistency.heartbeat_ms, 100);
	assert_int_equal(cfg->durability.mode, PSF_DUR_EVERY_COMMIT);
	assert_int_equal(cfg->durability.interval_ms, 50);
	assert_int_equal(cfg->durability.map_size, 2097152);
	assert_int_equal(cfg->limits.max_message_bytes, 1048576);
	assert_int_equal(cfg->limits.max_keys_per_request, 10);
	assert_int_equal(cfg->limits.request_timeout_ms, 5);
	assert_int_equal(cfg->limits.rpc_workers, 3);
	assert_int_equal(cfg->limits.max_connections, 9);
	assert_null(cfg->security.token_file);
	assert_string_equal(cfg->security.token_env, "PSF_TOKEN");
	assert_string_equal(cfg->security.tls_cert, "certs/node.pem");
	assert_string_equal(cfg->security.tls_key, "certs/node.key");
	assert_string_equal(cfg->security.tls_ca, "certs/ca.pem");
	assert_int_equal(cfg->inference.refresh_ms, 250);
	assert_int_equal(cfg->inference.history_days, 20);
	assert_int_equal(cfg->inference.shards, 2);
	assert_int_equal(cfg->gateway.route, PSF_ROUTE_ROUND_ROBIN);
	assert_int_equal(cfg->gateway.health_interval_ms, 125);
}

/* One broken fixture and the exact line it must produce. */
static const struct {
	const char *file;
	const char *msg;
} broken[] = {
    {"bad_unknown_key.yaml", "bad_unknown_key.yaml:12: unknown key 'lerning_rate' in optimizer"},
    {"bad_unknown_top_key.yaml",
        "bad_unknown_top_key.yaml:8: unknown key 'unknown_section' at top level"},
    {"bad_trainer_listen_clash.yaml",
        "bad_trainer_listen_clash.yaml:4: port clash: "
        "'trainer-0' listen and 'ps0' listen both use 127.0.0.1:7101"},
    {"bad_duplicate_key.yaml", "bad_duplicate_key.yaml:8: duplicate key 'kind' in optimizer"},
    {"bad_complex_key.yaml", "bad_complex_key.yaml:8: keys must be strings"},
    {"bad_staleness_negative.yaml",
        "bad_staleness_negative.yaml:10: 'staleness' must be an integer >= 0"},
    {"bad_mode.yaml", "bad_mode.yaml:8: 'mode' must be one of sync, async, ssp, local"},
    {"bad_sync_every_zero.yaml",
        "bad_sync_every_zero.yaml:10: 'sync_every' must be an integer in [1, 1000000]"},
    {"bad_local_symbol_bias.yaml",
        "bad_local_symbol_bias.yaml:10: consistency mode 'local' needs a model without "
        "per-symbol tensors (embedding_dim 0, symbol_bias false): a trainer averages the whole "
        "model"},
    {"bad_durability_mode.yaml",
        "bad_durability_mode.yaml:8: 'mode' must be one of interval, every-commit, none"},
    {"bad_log_level.yaml",
        "bad_log_level.yaml:8: 'log_level' must be one of err, warn, info, debug"},
    {"bad_section_type.yaml", "bad_section_type.yaml:8: 'optimizer' must be a mapping"},
    {"bad_batch_size_quoted.yaml",
        "bad_batch_size_quoted.yaml:9: 'batch_size' must be an integer in [1, 1048576]"},
    {"bad_batch_size_zero.yaml",
        "bad_batch_size_zero.yaml:8: 'batch_size' must be an integer in [1, 1048576]"},
    {"bad_epochs_list.yaml", "bad_epochs_list.yaml:8: 'epochs' must be an integer >= 1"},
    {"bad_integer_overflow.yaml",
        "bad_integer_overflow.yaml:8: 'rpc_workers' must be an integer in [1, 4096]"},
    {"bad_bool.yaml", "bad_bool.yaml:8: 'shuffle' must be true or false"},
    {"bad_number.yaml", "bad_number.yaml:8: 'learning_rate' must be a number in (0, 10]"},
    {"bad_test_fraction.yaml",
        "bad_test_fraction.yaml:7: 'test_fraction' must be a number in (0, 1)"},
    {"bad_hidden.yaml",
        "bad_hidden.yaml:10: each 'hidden' layer size must be an integer in [1, 65536]"},
    {"bad_unknown_feature.yaml",
        "bad_unknown_feature.yaml:9: unknown feature 'smaa:10' "
        "(known: lag:N, return:N, sma:N, std:N, ratio_sma:N, ewm:N, range, dow, volume:N)"},
    {"bad_feature_window.yaml",
        "bad_feature_window.yaml:7: feature 'std:1' needs a window N in [2, 10000], as in std:10"},
    {"bad_duplicate_feature.yaml", "bad_duplicate_feature.yaml:10: duplicate feature 'sma:10'"},
    {"bad_no_features.yaml",
        "bad_no_features.yaml:1: missing 'features' (a list like [\"lag:0\", \"return:1\"])"},
    {"bad_duplicate_node_id.yaml", "bad_duplicate_node_id.yaml:5: duplicate node id 'ps0'"},
    {"bad_duplicate_id_across_roles.yaml",
        "bad_duplicate_id_across_roles.yaml:6: duplicate node id 'worker'"},
    {"bad_node_id_chars.yaml",
        "bad_node_id_chars.yaml:3: node id '../ps0' must be 1-64 "
        "characters of A-Z a-z 0-9 . _ - not starting with '.'"},
    {"bad_name.yaml",
        "bad_name.yaml:1: 'name' must be 1-64 characters of A-Z a-z 0-9 . _ - "
        "not starting with '.'"},
    {"bad_node_without_id.yaml",
        "bad_node_without_id.yaml:5: node in nodes.trainers is missing 'id'"},
    {"bad_no_ps.yaml", "bad_no_ps.yaml:2: at least one ps node is required in nodes.ps"},
    {"bad_no_nodes.yaml", "bad_no_nodes.yaml:1: at least one ps node is required in nodes.ps"},
    {"bad_no_trainer.yaml",
        "bad_no_trainer.yaml:4: at least one trainer is required in nodes.trainers"},
    {"bad_ps_without_listen.yaml",
        "bad_ps_without_listen.yaml:4: ps node 'ps0' needs 'listen' "
        "(an NNG URL like tcp://127.0.0.1:7101)"},
    {"bad_listen_url.yaml",
        "bad_listen_url.yaml:3: 'listen' of node 'ps0' must be an NNG URL "
        "like tcp://host:port or ipc:///path"},
    {"bad_metrics_address.yaml",
        "bad_metrics_address.yaml:3: 'metrics' of node 'ps0' must be "
        "host:port with a port in [0, 65535]"},
    {"bad_port_clash_listen_metrics.yaml",
        "bad_port_clash_listen_metrics.yaml:5: port clash: "
        "'ps1' metrics and 'ps0' listen both use 127.0.0.1:7101"},
    {"bad_port_clash_localhost.yaml",
        "bad_port_clash_localhost.yaml:7: port clash: "
        "'trainer-1' metrics and 'trainer-0' metrics both use 127.0.0.1:7211"},
    {"bad_port_clash_any_host.yaml",
        "bad_port_clash_any_host.yaml:6: port clash: "
        "'trainer-0' metrics and 'ps0' listen both use port 7101"},
    {"bad_gateway_list.yaml",
        "bad_gateway_list.yaml:5: 'gateway' must be a mapping (one gateway at most)"},
    {"bad_gateway_without_inferers.yaml",
        "bad_gateway_without_inferers.yaml:5: the gateway "
        "needs at least one inferer in nodes.inferers"},
    {"bad_inferer_shard_range.yaml",
        "bad_inferer_shard_range.yaml:7: inferer 'inferer-1' has "
        "shard 2 but inference.shards is 2 (shards are 0..1)"},
    {"bad_inferer_shard_uncovered.yaml",
        "bad_inferer_shard_uncovered.yaml:13: inference "
        "shard 1 has no inferer (every shard 0..1 needs one)"},
    {"bad_history_days.yaml",
        "bad_history_days.yaml:8: inference.history_days (30) must be "
        "at least 51 for feature 'sma:50'"},
    {"bad_no_data_path.yaml",
        "bad_no_data_path.yaml:5: missing 'path' in data (required "
        "unless data.generate is set)"},
    {"bad_logistic_target.yaml",
        "bad_logistic_target.yaml:9: model kind 'logistic' needs target next_direction"},
    {"bad_exact_mlp.yaml",
        "bad_exact_mlp.yaml:10: optimizer kind 'exact' solves the linear model only; model "
        "kind 'mlp' has no closed form: use sgd, momentum, adam or adagrad (docs/models.md)"},
    {"bad_exact_emb.yaml",
        "bad_exact_emb.yaml:9: optimizer kind 'exact' cannot learn a per-symbol embedding (the "
        "loss is not quadratic in it): set model.embedding_dim to 0"},
    {"bad_chunk_too_big.yaml",
        "bad_chunk_too_big.yaml:8: model.chunk_floats (1000000) * 4 "
        "bytes + 4096 must fit in limits.max_message_bytes (1048576)"},
    {"bad_heartbeat.yaml",
        "bad_heartbeat.yaml:10: 'heartbeat_ms' (1000) must be less than "
        "straggler_timeout_ms (1000)"},
    {"bad_two_tokens.yaml",
        "bad_two_tokens.yaml:10: set only one of 'token_file' and 'token_env' in security"},
    {"bad_tls_cert_without_key.yaml",
        "bad_tls_cert_without_key.yaml:9: 'tls_cert' and 'tls_key' must be set together in security"},
    {"bad_tls_without_cert.yaml",
        "bad_tls_without_cert.yaml:3: node 'ps0' listens with TLS "
        "but security.tls_cert and security.tls_key are not set"},
    /* limits that used to fail only later, in a node (bounds.h) */
    {"bad_model_too_big.yaml",
        "bad_model_too_big.yaml:10: the model has 4295229441 dense "
        "parameters (17180917764 bytes), more than the limit of 1073741824 (4294967296 "
        "bytes): use smaller 'hidden' layers"},
    {"bad_generate_days.yaml", "bad_generate_days.yaml:8: 'days' must be an integer in [2, 20000]"},
    {"bad_map_size.yaml",
        "bad_map_size.yaml:9: 'map_size' must be an integer in [1048576, 1099511627776]"},
    {"bad_token_file_missing.yaml",
        "bad_token_file_missing.yaml:9: cannot read "
        "security.token_file 'no-such-token': not found"},
    {"bad_token_file_empty.yaml",
        "bad_token_file_empty.yaml:9: security.token_file "
        "'certs/empty-token' has an empty first line (the shared secret)"},
    {"bad_tls_ca_not_file.yaml",
        "bad_tls_ca_not_file.yaml:11: cannot read security.tls_ca "
        "'certs': not a regular file"},
    {"bad_ipc_path_long.yaml",
        "bad_ipc_path_long.yaml:4: 'listen' of node 'ps0': the ipc "
        "path has 108 characters, more than the 107 a Unix socket path can hold; use a "
        "shorter path"},
    {"bad_yaml_syntax.yaml",
        "bad_yaml_syntax.yaml:9: invalid YAML: did not find expected ',' "
        "or '}' (while parsing a flow mapping started on line 8)"},
    {"bad_yaml_colon.yaml",
        "bad_yaml_colon.yaml:3: invalid YAML: did not find expected ',' "
        "or '}' (while parsing a flow mapping started on line 3)"},
    {"bad_undefined_alias.yaml", "bad_undefined_alias.yaml:8: invalid YAML: found undefined alias"},
    {"bad_two_documents.yaml", "bad_two_documents.yaml:9: only one YAML document is allowed"},
    {"bad_empty.yaml",
        "bad_empty.yaml:1: empty config: expected a mapping of keys (name, "
        "nodes, data, ...)"},
    {"bad_not_mapping.yaml",
        "bad_not_mapping.yaml:1: the config must be a mapping of keys "
        "(name, nodes, data, ...)"},
};

static void
test_config_errors_exact_lines(void **state)
{
	(void)state;
	for (size_t i = 0; i < PSF_ARRAY_LEN(broken); i++) {
		char err[512] = "";
		psf_config *cfg = NULL;
		psf_err rv = psf_config_load(broken[i].file, err, sizeof(err), &cfg);

		if (rv != PSF_ECONFIG || strcmp(err, broken[i].msg) != 0)
			fail_msg("%s: got %s \"%s\"\n want ECONFIG \"%s\"", broken[i].file,
			    psf_err_name(rv), err, broken[i].msg);
		assert_null(cfg);
	}
}

/* A fixture nobody checks rots: every bad_*.yaml must be in the table above. */
static void
test_config_every_broken_fixture_checked(void **state)
{
	DIR *d = opendir(".");
	struct dirent *e;
	size_t n_bad = 0;

	(void)state;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t i = 0;

		if (strncmp(e->d_name, "bad_", 4) != 0)
			continue;
		while (i < PSF_ARRAY_LEN(broken) && strcmp(broken[i].file, e->d_name) != 0)
			i++;
		if (i == PSF_ARRAY_LEN(broken))
			fail_msg("fixture %s has no expected message in config_test.c", e->d_name);
		n_bad++;
	}
	closedir(d);
	assert_int_equal(n_bad, PSF_ARRAY_LEN(broken));
}

static void
test_config_error_buffer_handling(void **state)
{
	char err[512], small[12];
	psf_config *cfg = NULL;
	const char *tab = "name: t\n\"bad\tkey\": 1\n";

	(void)state;
	/* NULL errbuf: the error is logged instead, the code is the same */
	assert_int_equal(psf_config_load("bad_mode.yaml", NULL, 0, &cfg), PSF_ECONFIG);
	assert_null(cfg);
	/* a short buffer gets a NUL-terminated prefix of the line */
	memset(small, 'x', sizeof(small));
	assert_int_equal(psf_config_load("bad_mode.yaml", small, sizeof(small), &cfg), PSF_ECONFIG);
	assert_string_equal(small, "bad_mode.ya");
	/* control characters from the file never break the one-line contract */
	assert_int_equal(psf_config_parse("tab.yaml", tab, strlen(tab), err, sizeof(err), &cfg),
	    PSF_ECONFIG);
	assert_string_equal(err, "tab.yaml:2: unknown key 'bad?key' at top level");
	assert_int_equal(psf_config_parse("x", NULL, 0, err, sizeof(err), &cfg), PSF_EINVAL);
	assert_int_equal(psf_config_load(NULL, err, sizeof(err), &cfg), PSF_EINVAL);
	assert_int_equal(psf_config_load("valid_minimal.yaml", err, sizeof(err), NULL), PSF_EINVAL);
	assert_null(cfg);
}

static void
test_config_unreadable_files(void **state)
{
	char err[512], tmpl[] = "/tmp/psf_config_test.XXXXXX", path[256];
	psf_config *cfg = NULL;
	FILE *f;

	(void)state;
	assert_int_equal(psf_config_load("no_such.yaml", err, sizeof(err), &cfg), PSF_ENOENT);
	assert_string_equal(err, "no_such.yaml: cannot read config: not found");
	assert_non_null(mkdtemp(tmpl));
	assert_int_equal(psf_config_load(tmpl, err, sizeof(err), &cfg), PSF_ECONFIG);
	snprintf(path, sizeof(path), "%s: cannot read config: not a regular file", tmpl);
	assert_string_equal(err, path);
	snprintf(path, sizeof(path), "%s/big.yaml", tmpl);
	assert_non_null(f = fopen(path, "w"));
	for (int i = 0; i < 40000; i++) /* 1.2 MB of comments */
		fputs("# padding padding padding padding\n", f);
	fclose(f);
	assert_int_equal(psf_config_load(path, err, sizeof(err), &cfg), PSF_ECONFIG);
	assert_non_null(strstr(err, "big.yaml: cannot read config: larger than 1 MiB"));
	assert_null(cfg);
	assert_int_equal(psf_rm_rf(tmpl), PSF_OK);
}

/* repl_text returns a config with n ps nodes and the given replication line. */
static const char *
repl_text(int n, const char *repl)
{
	static char buf[2048];
	size_t off = (size_t)snprintf(buf, sizeof(buf), "%s\nnodes:\n  ps:\n", repl);

	for (int i = 0; i < n; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off,
		    "    - {id: p%d, listen: \"tcp://127.0.0.1:%d\"}\n", i, 7100 + i);
	snprintf(buf + off, sizeof(buf) - off,
	    "  trainers: [{id: t0}]\ndata: {path: d.csv}\nfeatures: [\"lag:0\"]\n");
	return buf;
}

static void
test_config_replication_topology(void **state)
{
	psf_config *cfg;
	const char *urls[3];
	char fp_r2[17], fp_r1[17], err[512];

	(void)state;
	/* default: every ps node its own shard */
	cfg = parse_ok(repl_text(3, "name: r"));
	assert_int_equal(cfg->replication, 1);
	assert_int_equal(cfg->n_shards, 3);
	assert_int_equal(psf_config_ps_shard(cfg, 2), 2);
	assert_int_equal(psf_config_shard_urls(cfg, 1, urls, 3), 1);
	assert_string_equal(urls[0], "tcp://127.0.0.1:7101");
	psf_config_free(cfg);
	/* replication 2 over 6 nodes: shards {p0,p3} {p1,p4} {p2,p5} */
	cfg = parse_ok(repl_text(6, "replication: 2"));
	assert_int_equal(cfg->n_shards, 3);
	assert_int_equal(psf_config_ps_shard(cfg, 4), 1);
	assert_string_equal(psf_config_shard_replica(cfg, 1, 1)->id, "p4");
	assert_null(psf_config_shard_replica(cfg, 1, 2));
	assert_null(psf_config_shard_replica(cfg, 3, 0));
	assert_int_equal(psf_config_shard_urls(cfg, 2, urls, 3), 2);
	assert_string_equal(urls[0], "tcp://127.0.0.1:7102");
	assert_string_equal(urls[1], "tcp://127.0.0.1:7105");
	assert_int_equal(psf_config_shard_urls(cfg, 2, urls, 1), 0); /* too small */
	/* keys map as in an unreplicated fleet of the first 3 nodes */
	psf_config_fingerprint(cfg, fp_r2, sizeof(fp_r2));
	psf_config_free(cfg);
	cfg = parse_ok(repl_text(3, "replication: 1"));
	psf_config_fingerprint(cfg, fp_r1, sizeof(fp_r1));
	psf_config_free(cfg);
	assert_string_equal(fp_r1, fp_r2);
	/* replication 3 over 3 nodes: one shard */
	cfg = parse_ok(repl_text(3, "replication: 3"));
	assert_int_equal(cfg->n_shards, 1);
	psf_config_free(cfg);
	/* errors, each with its reason */
	cfg = NULL;
	assert_int_equal(psf_config_parse("t.yaml", repl_text(5, "replication: 2"),
	                     strlen(repl_text(5, "replication: 2")), err, sizeof(err), &cfg),
	    PSF_ECONFIG);
	assert_non_null(strstr(err,
	    "t.yaml:1: replication 2 needs a number of ps nodes that is a "
	    "multiple of 2"));
	assert_int_equal(psf_config_parse("t.yaml", repl_text(2, "replication: 2"),
	                     strlen(repl_text(2, "replication: 2")), err, sizeof(err), &cfg),
	    PSF_ECONFIG);
	assert_non_null(
	    strstr(err, "needs at least 3 ps nodes (failover is decided by a majority"));
	assert_int_equal(psf_config_parse("t.yaml", repl_text(4, "replication: 4"),
	                     strlen(repl_text(4, "replication: 4")), err, sizeof(err), &cfg),
	    PSF_ECONFIG);
	assert_non_null(strstr(err, "an integer in [1, 3]"));
	assert_null(cfg);
}

static const char fp_base[] =
    "seed: 7\n"
    "nodes:\n"
    "  ps: [{id: ps0, listen: \"tcp://127.0.0.1:0\"}, {id: ps1, listen: \"tcp://127.0.0.1:0\"}]\n"
    "  trainers: [{id: t0}]\n"
    "data: {path: d.csv}\n"
    "features: [\"lag:0\", \"sma:5\"]\n"
    "model: {kind: mlp, hidden: [8]}\n";

static void
fingerprint_of(const char *text, char *fp)
{
	psf_config *cfg = parse_ok(text);

	psf_config_fingerprint(cfg, fp, 17);
	psf_config_free(cfg);
}

/* fp_variant returns base with the first `from` replaced by `to` (static buffer). */
static const char *
fp_variant(const char *from, const char *to)
{
	static char buf[1024];
	const char *at = strstr(fp_base, from);

	assert_non_null(at);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - fp_base), fp_base, to, at + strlen(from));
	return buf;
}

static void
test_config_fingerprint_stable_and_sensitive(void **state)
{
	static const char *const same[][2] = {
	    {"seed: 7\n", "seed: 7   # a comment\ntraining: {epochs: 9}\n"},
	    {"  trainers: [{id: t0}]", "  trainers: [{id: t0}, {id: t1}]"},
	    {"data: {path: d.csv}", "data: {path: other.csv}\noptimizer: {learning_rate: 0.5}"},
	    {"sma:5", "sma:05"},
	    {"{id: ps0, listen: \"tcp://127.0.0.1:0\"}",
	        "{id: ps0, listen: \"tcp://127.0.0.1:0\", advertise: \"tcp://ps-0.ps:7101\"}"},
	};
	static const char *const differ[][2] = {
	    {"hidden: [8]", "hidden: [9]"},
	    {"kind: mlp, hidden: [8]", "kind: linear"},
	    {"model: {", "model: {l2: 0.1, "},
	    {"model: {", "model: {symbol_bias: true, "},
	    {"\"lag:0\", \"sma:5\"", "\"sma:5\", \"lag:0\""},
	    {"{id: ps0, listen: \"tcp://127.0.0.1:0\"}, {id: ps1,",
	        "{id: ps1, listen: \"tcp://127.0.0.1:0\"}, {id: ps0,"},
	    {"seed: 7", "seed: 8"},
	    {"data:", "target: next_return\ndata:"},
	};
	char base[17], again[17], other[17], tiny[5];
	psf_config *cfg;

	(void)state;
	fingerprint_of(fp_base, base);
	fingerprint_of(fp_base, again);
	assert_int_equal(strlen(base), 16);
	assert_int_equal(strspn(base, "0123456789abcdef"), 16);
	assert_string_equal(base, again);
	for (size_t i = 0; i < PSF_ARRAY_LEN(same); i++) {
		fingerprint_of(fp_variant(same[i][0], same[i][1]), other);
		assert_string_equal(base, other);
	}
	for (size_t i = 0; i < PSF_ARRAY_LEN(differ); i++) {
		fingerprint_of(fp_variant(differ[i][0], differ[i][1]), other);
		if (strcmp(base, other) == 0)
			fail_msg("fingerprint ignores '%s' -> '%s'", differ[i][0], differ[i][1]);
	}
	cfg = parse_ok(fp_base);
	psf_config_fingerprint(cfg, tiny, sizeof(tiny));
	assert_memory_equal(tiny, base, 4);
	assert_int_equal(tiny[4], '\0');
	psf_config_log(cfg);
	psf_config_free(cfg);
}

static void
test_config_free_null(void **state)
{
	(void)state;
	psf_config_free(NULL);
}

static void
test_config_feature_parse(void **state)
{
	static const struct {
		const char *spec, *name;
		psf_feature_kind kind;
		uint32_t window;
	} good[] = {
	    {"lag:0", "lag:0", PSF_FEAT_LAG, 0},
	    {"lag:12", "lag:12", PSF_FEAT_LAG, 12},
	    {"return:1", "return:1", PSF_FEAT_RETURN, 1},
	    {"sma:1", "sma:1", PSF_FEAT_SMA, 1},
	    {"sma:007", "sma:7", PSF_FEAT_SMA, 7},
	    {"std:2", "std:2", PSF_FEAT_STD, 2},
	    {"ratio_sma:10", "ratio_sma:10", PSF_FEAT_RATIO_SMA, 10},
	    {"ewm:1", "ewm:1", PSF_FEAT_EWM, 1},
	    {"range", "range", PSF_FEAT_RANGE, 0},
	    {"dow", "dow", PSF_FEAT_DOW, 0},
	    {"volume:20", "volume:20", PSF_FEAT_VOLUME, 20},
	    {"ratio_sma:10000", "ratio_sma:10000", PSF_FEAT_RATIO_SMA, 10000},
	};
	static const char *const bad[] = {"", "lag", "lag:", "lag:-1", "lag:+1", "return:0",
	    "std:1", "sma:0", "ewm:0", "volume:0", "range:1", "dow:", "sma:10x", "sma: 10",
	    "SMA:10", "sma:10001", "sma:99999999999999999999", "ratio", "lag:0:1", ":5"};
	psf_feature_cfg f;

	(void)state;
	for (size_t i = 0; i < PSF_ARRAY_LEN(good); i++) {
		assert_int_equal(psf_feature_parse(good[i].spec, &f), PSF_OK);
		assert_string_equal(f.name, good[i].name);
		assert_int_equal(f.kind, good[i].kind);
		assert_int_equal(f.window, good[i].window);
	}
	for (size_t i = 0; i < PSF_ARRAY_LEN(bad); i++) {
		memset(&f, 0x5a, sizeof(f));
		if (psf_feature_parse(bad[i], &f) != PSF_EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		assert_int_equal(((unsigned char *)&f)[0], 0x5a); /* untouched on failure */
	}
	assert_int_equal(psf_feature_parse(NULL, &f), PSF_EINVAL);
	assert_int_equal(psf_feature_parse("dow", NULL), PSF_EINVAL);
}

static void
test_config_role_and_mode_names(void **state)
{
	(void)state;
	assert_string_equal(psf_role_name(PSF_ROLE_PS), "ps");
	assert_string_equal(psf_role_name(PSF_ROLE_TRAINER), "trainer");
	assert_string_equal(psf_role_name(PSF_ROLE_INFERER), "inferer");
	assert_string_equal(psf_role_name(PSF_ROLE_GATEWAY), "gateway");
	assert_string_equal(psf_role_name((psf_role)42), "unknown");
	assert_string_equal(psf_consistency_name(PSF_CONS_SYNC), "sync");
	assert_string_equal(psf_consistency_name(PSF_CONS_ASYNC), "async");
	assert_string_equal(psf_consistency_name(PSF_CONS_SSP), "ssp");
	assert_string_equal(psf_consistency_name(PSF_CONS_LOCAL), "local");
	assert_string_equal(psf_consistency_name((psf_consistency)-1), "unknown");
}

/* check_any_result: a load either succeeds with a coherent config or fails with one
 * line naming the file. Never a crash (ASan watches), never another code. */
static void
check_any_result(const char *text, size_t len)
{
	char err[512];
	char fp[17];
	psf_config *cfg = NULL;
	char *copy = malloc(len + 1); /* exact size: ASan sees any read past len */
	psf_err rv;

	assert_non_null(copy);
	memcpy(copy, text, len);
	rv = psf_config_parse("fuzz.yaml", copy, len, err, sizeof(err), &cfg);
	free(copy);
	if (rv == PSF_OK) {
		check_node_invariants(cfg);
		psf_config_fingerprint(cfg, fp, sizeof(fp));
		psf_config_free(cfg);
		return;
	}
	if (rv != PSF_ECONFIG)
		fail_msg("len %zu: %s %s", len, psf_err_name(rv), err);
	assert_null(cfg);
	assert_true(strncmp(err, "fuzz.yaml:", 10) == 0 && strlen(err) > 14);
	assert_null(strchr(err, '\n'));
}

static void
test_config_truncated_prefixes_never_crash(void **state)
{
	static const char *const files[] = {"valid_full.yaml", "../../../examples/mlp.yaml"};
	size_t n_ok = 0;

	(void)state;
	for (size_t f = 0; f < PSF_ARRAY_LEN(files); f++) {
		char *text = NULL;
		size_t len = 0;

		assert_int_equal(psf_read_file(files[f], &text, &len), PSF_OK);
		for (size_t n = 0; n <= len; n++)
			check_any_result(text, n);
		check_any_result(text, len);
		n_ok++;
		free(text);
	}
	assert_int_equal(n_ok, PSF_ARRAY_LEN(files));
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
test_config_byte_flips_never_crash(void **state)
{
	static const char interesting[] = ":{}[],-#&*!|>'\"%@`\n\t 0\\";
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	char *text = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(psf_read_file("valid_full.yaml", &text, &len), PSF_OK);
	for (int iter = 0; iter < 3000; iter++) {
		char *mut = malloc(len);
		int flips = 1 + (int)(xorshift(&seed) % 3);

		assert_non_null(mut);
		memcpy(mut, text, len);
		for (int k = 0; k < flips; k++) {
			uint64_t r = xorshift(&seed);
			size_t at = (size_t)(r % len);

			if ((r >> 32) % 2 == 0)
				mut[at] = interesting[(r >> 40) % (sizeof(interesting) - 1)];
			else
				mut[at] = (char)(r >> 48);
		}
		check_any_result(mut, len);
		free(mut);
	}
	free(text);
}

/* ---- security.tls_server_name ---- */

static const char tls_base[] =
    "name: t\n"
    "nodes:\n"
    "  ps:\n"
    "    - {id: ps0, listen: \"tls+tcp://10.0.0.5:7101\"}\n"
    "  trainers:\n"
    "    - {id: trainer-0}\n"
    "data: {path: d.csv}\n"
    "features: [\"lag:0\"]\n"
    "security:\n"
    "  tls_cert: certs/node.pem\n"
    "  tls_key: certs/node.key\n"; /* extra security keys go on line 12 and after */

/* tls_with: tls_base plus the given security lines; the parse error (or "") in err. */
static psf_err
tls_with(const char *extra, char *err, size_t len, psf_config **out)
{
	char text[2048];

	snprintf(text, sizeof(text), "%s%s", tls_base, extra);
	err[0] = '\0';
	*out = NULL; /* written only on success */
	return psf_config_parse("t.yaml", text, strlen(text), err, len, out);
}

static void
test_config_tls_server_name(void **state)
{
	static const char *const good[] = {"psfleet-node", "ps0.example", "PS_0.fleet.internal",
	    "127.0.0.1"};
	static const char *const bad[] = {"\"tls+tcp://ps0:7101\"", "\"ps0:7101\"", "ps0/x", "a..b",
	    ".ps0", "ps0.", "\"ps 0\"", "\"\"", "[ps0]", "\"*.example\"",
	    /* a 64-character label, then a 255-character name of short labels */
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x",
	    "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
	    "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
	    "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
	    "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
	    "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
	    "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
	    "aaa"};
	char err[512], line[600];
	psf_config *cfg = NULL;

	(void)state;
	/* Not set: NULL, so dialers expect the host of each URL. */
	assert_int_equal(tls_with("  tls_ca: certs/ca.pem\n", err, sizeof(err), &cfg), PSF_OK);
	assert_null(cfg->security.tls_server_name);
	psf_config_free(cfg);
	for (size_t i = 0; i < PSF_ARRAY_LEN(good); i++) {
		snprintf(line, sizeof(line), "  tls_ca: certs/ca.pem\n  tls_server_name: %s\n",
		    good[i]);
		if (tls_with(line, err, sizeof(err), &cfg) != PSF_OK)
			fail_msg("%s: %s", good[i], err);
		assert_string_equal(cfg->security.tls_server_name, good[i]);
		assert_string_equal(cfg->security.tls_ca, "certs/ca.pem");
		psf_config_free(cfg);
	}
	/* 63-character label and 253 characters in all are the limits, inclusive. */
	snprintf(line, sizeof(line), "  tls_ca: certs/ca.pem\n  tls_server_name: %.63s.%.189s\n",
	    bad[10], bad[11]);
	assert_int_equal(tls_with(line, err, sizeof(err), &cfg), PSF_OK);
	assert_int_equal(strlen(cfg->security.tls_server_name), 253);
	psf_config_free(cfg);
	for (size_t i = 0; i < PSF_ARRAY_LEN(bad); i++) {
		snprintf(line, sizeof(line), "  tls_ca: certs/ca.pem\n  tls_server_name: %s\n",
		    bad[i]);
		if (tls_with(line, err, sizeof(err), &cfg) != PSF_ECONFIG ||
		    strcmp(err,
		        "t.yaml:13: 'tls_server_name' must be a DNS name from the servers' "
		        "certificates, like ps.example (not a URL or host:port)") != 0)
			fail_msg("%s: got \"%s\"", bad[i], err);
		assert_null(cfg);
	}
	/* Without a CA nothing is verified: the name would be ignored, so it is refused. */
	assert_int_equal(tls_with("  tls_server_name: psfleet-node\n", err, sizeof(err), &cfg),
	    PSF_ECONFIG);
	assert_string_equal(err,
	    "t.yaml:12: 'tls_server_name' needs 'tls_ca' in security: "
	    "without a CA the server's certificate, and so its name, is not verified");
	assert_null(cfg);
	/* An explicit null keeps the default, like every other key. */
	assert_int_equal(
	    tls_with("  tls_ca: certs/ca.pem\n  tls_server_name: ~\n", err, sizeof(err), &cfg),
	    PSF_OK);
	assert_null(cfg->security.tls_server_name);
	psf_config_free(cfg);
}

/* ---- limits shared with the modules that enforce them (bounds.h) ---- */

static const char lim_base[] = "name: t\n"
                               "nodes:\n"
                               "  ps: [{id: ps0, listen: \"%s\"}]\n"
                               "  trainers: [{id: trainer-0}]\n"
                               "data: {path: d.csv, generate: {days: %s}}\n"
                               "features: [\"lag:0\"]\n"
                               "model: {kind: mlp, hidden: %s}\n"
                               "durability: {map_size: %s}\n";

/* The largest legal values load; a model above PSF_MODEL_WARN_DENSE_FLOATS loads
 * with one warning (at the key's line) that gives its size in bytes. */
static void
test_config_limits_inclusive_and_big_model_warns(void **state)
{
	char text[1024], err[512], url[256], *logged = NULL;
	size_t loglen = 0;
	psf_config *cfg = NULL;
	FILE *log = open_memstream(&logged, &loglen);

	(void)state;
	assert_non_null(log);
	/* "ipc://" + a 107-character path: sun_path's 108 bytes with the NUL */
	snprintf(url, sizeof(url), "ipc:///tmp/%0102d", 0);
	assert_int_equal(strlen(url), 6 + 107);
	snprintf(text, sizeof(text), lim_base, url, "20000", "[16384, 16384, 16384]",
	    "1099511627776");
	psf_log_set_stream(log);
	if (psf_config_parse("t.yaml", text, strlen(text), err, sizeof(err), &cfg) != PSF_OK)
		fail_msg("%s", err);
	psf_log_set_stream(stderr);
	fclose(log);
	assert_int_equal(cfg->data.generate.days, 20000);
	assert_int_equal(cfg->durability.map_size, UINT64_C(1) << 40);
	psf_config_free(cfg);
	/* 1 x 16384 + 2 x 16384^2 + 16384 weights, 3 x 16384 + 1 biases */
	assert_non_null(strstr(logged, " warn "));
	assert_non_null(strstr(logged,
	    "t.yaml:7: the model has 536952833 dense parameters "
	    "(2147811332 bytes): every trainer and inferer holds a full copy"));
	assert_null(strchr(strchr(logged, '\n') + 1, '\n')); /* one line */
	free(logged);

	/* a small model: no warning */
	logged = NULL;
	assert_non_null(log = open_memstream(&logged, &loglen));
	snprintf(text, sizeof(text), lim_base, "tcp://127.0.0.1:0", "2", "[64]", "1048576");
	psf_log_set_stream(log);
	cfg = parse_ok(text);
	psf_log_set_stream(stderr);
	fclose(log);
	psf_config_free(cfg);
	assert_null(strstr(logged, "dense parameters"));
	free(logged);
}

/* ---- overrides (psf_config_parse_ex / psf_config_load_ex, `psfleet node --set`) ---- */

static const char ov_base[] = "name: ov\n"
                              "nodes:\n"
                              "  ps:\n"
                              "    - {id: ps0, listen: \"tcp://127.0.0.1:7101\"}\n"
                              "  trainers:\n"
                              "    - {id: trainer-0}\n"
                              "    - {id: trainer-1, metrics: \"127.0.0.1:7212\"}\n"
                              "data: {path: d.csv}\n"
                              "features: [\"return:1\"]\n"
                              "consistency:\n"
                              "  mode: sync\n"
                              "inference:\n";

static psf_config *
ov_ok(const char *const *ov, size_t n)
{
	char err[512] = "unset";
	psf_config *cfg = NULL;
	psf_err rv =
	    psf_config_parse_ex("t.yaml", ov_base, strlen(ov_base), ov, n, err, sizeof(err), &cfg);

	if (rv != PSF_OK)
		fail_msg("%s", err);
	assert_string_equal(err, "");
	check_node_invariants(cfg);
	return cfg;
}

static void
ov_fails(const char *ov, const char *want)
{
	char err[512] = "";
	psf_config *cfg = NULL;
	const char *const list[] = {"training.epochs=2", ov};

	assert_int_equal(psf_config_parse_ex("t.yaml", ov_base, strlen(ov_base), list, 2, err,
	                     sizeof(err), &cfg),
	    PSF_ECONFIG);
	assert_null(cfg);
	if (strcmp(err, want) != 0)
		fail_msg("override '%s':\n  got  %s\n  want %s", ov, err, want);
}

static void
test_config_override_sets_keys(void **state)
{
	const char *const ov[] = {
	    "consistency.mode=ssp",      /* existing key */
	    "consistency.staleness=1",   /* missing key of an existing section */
	    "training.target_loss=0.95", /* missing section */
	    "inference.shards=1",        /* section that is null in the file */
	    "run_dir=/tmp/exp/runs/ssp1-r0", "model={kind: mlp, hidden: [8, 4]}",
	    "features=[\"return:1\", \"return:5\", dow]",
	    "nodes.ps.0.listen=ipc:///tmp/exp/ps0.sock",
	    "nodes.trainers.trainer-1.metrics=127.0.0.1:0", "seed=7",
	    "seed=8", /* a later override wins */
	};
	psf_config *cfg = ov_ok(ov, PSF_ARRAY_LEN(ov));

	(void)state;
	assert_int_equal(cfg->consistency.mode, PSF_CONS_SSP);
	assert_int_equal(cfg->consistency.staleness, 1);
	assert_int_equal(cfg->consistency.heartbeat_ms, 1000); /* untouched keys keep defaults */
	assert_true(cfg->training.target_loss == 0.95);
	assert_int_equal(cfg->training.epochs, 5);
	assert_int_equal(cfg->inference.shards, 1);
	assert_string_equal(cfg->run_dir, "/tmp/exp/runs/ssp1-r0");
	assert_string_equal(cfg->nodes[0].data_dir, "/tmp/exp/runs/ssp1-r0/ps0"); /* derived */
	assert_int_equal(cfg->model.kind, PSF_MODEL_MLP);
	assert_int_equal(cfg->model.n_hidden, 2);
	assert_int_equal(cfg->model.hidden[1], 4);
	assert_int_equal(cfg->n_features, 3);
	assert_string_equal(cfg->features[2].name, "dow");
	assert_string_equal(cfg->nodes[0].listen, "ipc:///tmp/exp/ps0.sock");
	assert_string_equal(psf_config_find_node(cfg, "trainer-1")->metrics, "127.0.0.1:0");
	assert_int_equal(cfg->seed, 8);
	psf_config_free(cfg);
}

static void
test_config_override_empty_value_is_default(void **state)
{
	const char *const ov[] = {"name=\"x #1\"", "consistency.mode=async", "consistency.mode=",
	    "nodes.trainers.trainer-1.metrics=", "no.such.key=", "nodes.ps.9.listen="};
	psf_config *cfg;

	(void)state;
	cfg = ov_ok(ov + 1, 5); /* "KEY=" removes the key: back to the default */
	assert_int_equal(cfg->consistency.mode, PSF_CONS_SYNC);
	assert_null(psf_config_find_node(cfg, "trainer-1")->metrics);
	psf_config_free(cfg);
	ov_fails("nodes.ps.0=",
	    "t.yaml: override 'nodes.ps.0=': a list entry cannot be removed; "
	    "give the whole list instead");
	cfg = ov_ok(NULL, 0); /* no overrides: the file as it is */
	assert_string_equal(cfg->name, "ov");
	psf_config_free(cfg);
	{
		char err[512];

		assert_int_equal(psf_config_parse_ex("t.yaml", ov_base, strlen(ov_base), ov, 1, err,
		                     sizeof(err), &cfg),
		    PSF_ECONFIG); /* quoted: kept literally, then checked */
		assert_string_equal(err,
		    "t.yaml: override 'name=\"x #1\"': 'name' must be 1-64 "
		    "characters of A-Z a-z 0-9 . _ - not starting with '.'");
	}
}

static void
test_config_override_errors_name_it(void **state)
{
	(void)state;
	ov_fails("consistency.mode=bsp",
	    "t.yaml: override 'consistency.mode=bsp': 'mode' must be one of sync, async, ssp, local");
	ov_fails("consistency.staleness=-1",
	    "t.yaml: override 'consistency.staleness=-1': 'staleness' must be an integer >= 0");
	ov_fails("nosuch.key=1",
	    "t.yaml: override 'nosuch.key=1': unknown key 'nosuch' at top level");
	ov_fails("training.epoch=3",
	    "t.yaml: override 'training.epoch=3': unknown key 'epoch' in training");
	ov_fails("consistency.mode.x=1",
	    "t.yaml: override 'consistency.mode.x=1': 'consistency.mode' is not a mapping");
	ov_fails("nodes.ps.3.listen=ipc:///x",
	    "t.yaml: override 'nodes.ps.3.listen=ipc:///x': "
	    "'nodes.ps' has no entry '3' (use a 0-based index or a node id)");
	ov_fails("nodes.trainers.trainer-9.metrics=127.0.0.1:0",
	    "t.yaml: override 'nodes.trainers.trainer-9.metrics=127.0.0.1:0': 'nodes.trainers' has "
	    "no entry 'trainer-9' (use a 0-based index or a node id)");
	ov_fails("consistency.mode",
	    "t.yaml: override 'consistency.mode': expected KEY=VALUE with "
	    "a dotted KEY such as consistency.mode (at most 255 characters)");
	ov_fails("=ssp",
	    "t.yaml: override '=ssp': expected KEY=VALUE with a dotted KEY such as "
	    "consistency.mode (at most 255 characters)");
	ov_fails("consistency..mode=ssp",
	    "t.yaml: override 'consistency..mode=ssp': empty key component in 'consistency..mode'");
	ov_fails("consistency.=ssp",
	    "t.yaml: override 'consistency.=ssp': empty key component in 'consistency.'");
	ov_fails("features=[",
	    "t.yaml: override 'features=[': invalid YAML value: did not find "
	    "expected node content");
	ov_fails("seed=1\n---\n2",
	    "t.yaml: override 'seed=1?---?2': the value must be one YAML value");
	/* cross-field checks name the override that made the value */
	ov_fails("consistency.heartbeat_ms=20000",
	    "t.yaml: override "
	    "'consistency.heartbeat_ms=20000': 'heartbeat_ms' (20000) must be less than "
	    "straggler_timeout_ms (10000)");
	ov_fails("nodes.trainers.0.metrics=127.0.0.1:7212",
	    "t.yaml: override "
	    "'nodes.trainers.0.metrics=127.0.0.1:7212': port clash: 'trainer-0' metrics and "
	    "'trainer-1' metrics both use 127.0.0.1:7212");
}

static void
test_config_override_file_lines_kept(void **state)
{
	char err[512];
	psf_config *cfg = NULL;
	const char *const ov[] = {"consistency.staleness=3"};

	(void)state;
	/* a mistake in the file itself still names its line */
	assert_int_equal(psf_config_load_ex("bad_mode.yaml", ov, 1, err, sizeof(err), &cfg),
	    PSF_ECONFIG);
	assert_non_null(strstr(err, "bad_mode.yaml:"));
	assert_null(strstr(err, "override"));
	/* ... and an override fixes it */
	{
		const char *const fix[] = {"consistency.mode=async"};

		assert_int_equal(
		    psf_config_load_ex("bad_mode.yaml", fix, 1, err, sizeof(err), &cfg), PSF_OK);
		assert_int_equal(cfg->consistency.mode, PSF_CONS_ASYNC);
		psf_config_free(cfg);
	}
	cfg = NULL;
	assert_int_equal(psf_config_load_ex("valid_minimal.yaml", ov, 1, err, sizeof(err), &cfg),
	    PSF_OK);
	assert_int_equal(cfg->consistency.staleness, 3);
	psf_config_free(cfg);
}

/* The experiment configs in examples/experiments/ load, as the runner loads them. */
static void
test_config_experiment_examples_load(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	DIR *d;
	struct dirent *e;
	int n = 0;
	const char *const ov[] = {"consistency.mode=ssp", "consistency.staleness=1",
	    "run_dir=/tmp/psf-exp-check/runs/ssp1-r0"};

	(void)state;
	source_path("examples/experiments", dir, sizeof(dir));
	assert_non_null(d = opendir(dir));
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char err[512];
		psf_config *cfg = NULL;

		if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (psf_config_load_ex(path, ov, PSF_ARRAY_LEN(ov), err, sizeof(err), &cfg) !=
		    PSF_OK)
			fail_msg("%s", err);
		check_node_invariants(cfg);
		assert_int_equal(cfg->consistency.mode, PSF_CONS_SSP);
		psf_config_free(cfg);
		n++;
	}
	closedir(d);
	assert_true(n >= 2); /* the case study and the quick one */
}

/* fleet_text writes a fleet with n_trainers trainers, one per line, into a new
 * buffer the caller frees; the first trainer is on line 6. */
static char *
fleet_text(size_t n_trainers)
{
	size_t cap = 256 + n_trainers * 40, n = 0;
	char *text = malloc(cap);

	assert_non_null(text);
	n += (size_t)snprintf(text + n, cap - n,
	    "nodes:\n  ps:\n    - {id: ps0, listen: "
	    "\"tcp://127.0.0.1:7000\"}\n  trainers:\n    # one per line\n");
	for (size_t i = 0; i < n_trainers; i++)
		n += (size_t)snprintf(text + n, cap - n, "    - {id: t%zu}\n", i);
	snprintf(text + n, cap - n, "data: {path: d.csv}\nfeatures: [\"lag:0\"]\n");
	return text;
}

/* The ps's worker table holds PSF_MAX_TRAINERS workers: a fleet with that many
 * loads, one more is refused at the first trainer too many. */
static void
test_config_trainer_limit(void **state)
{
	char err[512], want[128];
	psf_config *cfg = NULL;
	char *text;

	(void)state;
	assert_int_equal(PSF_MAX_TRAINERS, 250);
	text = fleet_text(PSF_MAX_TRAINERS);
	cfg = parse_ok(text);
	assert_int_equal(cfg->n_trainers, PSF_MAX_TRAINERS);
	psf_config_free(cfg);
	free(text);
	cfg = NULL;
	text = fleet_text(PSF_MAX_TRAINERS + 1);
	assert_int_equal(psf_config_parse("t.yaml", text, strlen(text), err, sizeof(err), &cfg),
	    PSF_ECONFIG);
	assert_null(cfg);
	snprintf(want, sizeof(want),
	    "t.yaml:%d: too many trainers: %d (a ps node serves at most %d)", 6 + PSF_MAX_TRAINERS,
	    PSF_MAX_TRAINERS + 1, PSF_MAX_TRAINERS);
	assert_string_equal(err, want);
	free(text);
}

/* A learning rate that can only diverge is refused at load time, with its line. */
static void
test_config_learning_rate_range(void **state)
{
	static const char base[] =
	    "nodes:\n  ps: [{id: ps0, listen: \"tcp://127.0.0.1:7000\"}]\n"
	    "  trainers: [{id: t0}]\ndata: {path: d.csv}\nfeatures: [\"lag:0\"]\n"
	    "optimizer: {learning_rate: %s}\n";
	static const char *const bad[] = {"1e30", "10.5", "inf", "0"};
	char text[512], err[512];
	psf_config *cfg;

	(void)state;
	snprintf(text, sizeof(text), base, "10");
	cfg = parse_ok(text);
	assert_true(cfg->optimizer.learning_rate == 10.0);
	psf_config_free(cfg);
	for (size_t i = 0; i < PSF_ARRAY_LEN(bad); i++) {
		cfg = NULL;
		snprintf(text, sizeof(text), base, bad[i]);
		assert_int_equal(
		    psf_config_parse("t.yaml", text, strlen(text), err, sizeof(err), &cfg),
		    PSF_ECONFIG);
		assert_null(cfg);
		assert_string_equal(err, "t.yaml:6: 'learning_rate' must be a number in (0, 10]");
	}
}

/* Enum spellings come from one table per enum: the name of every value parses
 * back to it, the spellings are the YAML's, and a wrong spelling is refused. */
static void
test_config_enum_names_round_trip(void **state)
{
	psf_consistency c;
	psf_durability d;
	psf_model_kind k;
	psf_optim_kind o;
	psf_lr_schedule l;
	psf_target_kind t;
	psf_shard_by sb;
	psf_bad_rows br;
	psf_gateway_route r;
	psf_role ro;

	(void)state;
	for (int v = PSF_CONS_SYNC; v <= PSF_CONS_SSP; v++) {
		assert_int_equal(
		    psf_consistency_parse(psf_consistency_name((psf_consistency)v), &c), PSF_OK);
		assert_int_equal(c, v);
	}
	for (int v = PSF_DUR_INTERVAL; v <= PSF_DUR_NONE; v++) {
		assert_int_equal(psf_durability_parse(psf_durability_name((psf_durability)v), &d),
		    PSF_OK);
		assert_int_equal(d, v);
	}
	for (int v = PSF_MODEL_LINEAR; v <= PSF_MODEL_MLP; v++) {
		assert_int_equal(psf_model_kind_parse(psf_model_kind_name((psf_model_kind)v), &k),
		    PSF_OK);
		assert_int_equal(k, v);
	}
	for (int v = PSF_OPTIM_SGD; v <= PSF_OPTIM_ADAGRAD; v++) {
		assert_int_equal(psf_optim_kind_parse(psf_optim_kind_name((psf_optim_kind)v), &o),
		    PSF_OK);
		assert_int_equal(o, v);
	}
	for (int v = PSF_LR_CONSTANT; v <= PSF_LR_COSINE; v++) {
		assert_int_equal(
		    psf_lr_schedule_parse(psf_lr_schedule_name((psf_lr_schedule)v), &l), PSF_OK);
		assert_int_equal(l, v);
	}
	for (int v = PSF_TARGET_NEXT_CLOSE; v <= PSF_TARGET_NEXT_DIRECTION; v++) {
		assert_int_equal(psf_target_parse(psf_target_name((psf_target_kind)v), &t), PSF_OK);
		assert_int_equal(t, v);
	}
	for (int v = PSF_ROLE_PS; v <= PSF_ROLE_GATEWAY; v++) {
		assert_int_equal(psf_role_parse(psf_role_name((psf_role)v), &ro), PSF_OK);
		assert_int_equal(ro, v);
	}
	assert_int_equal(psf_shard_by_parse("rows", &sb), PSF_OK);
	assert_int_equal(sb, PSF_SHARD_BY_ROWS);
	assert_int_equal(psf_bad_rows_parse("skip", &br), PSF_OK);
	assert_int_equal(br, PSF_BAD_ROWS_SKIP);
	assert_int_equal(psf_route_parse("round_robin", &r), PSF_OK);
	assert_int_equal(r, PSF_ROUTE_ROUND_ROBIN);
	assert_string_equal(psf_durability_name(PSF_DUR_EVERY_COMMIT), "every-commit");
	assert_string_equal(psf_optim_kind_name(PSF_OPTIM_ADAM), "adam");
	assert_string_equal(psf_target_name(PSF_TARGET_NEXT_DIRECTION), "next_direction");
	assert_string_equal(psf_shard_by_name(PSF_SHARD_BY_HASH), "hash");
	assert_string_equal(psf_consistency_name((psf_consistency)7), "unknown");
	c = PSF_CONS_ASYNC;
	assert_int_equal(psf_consistency_parse("SYNC", &c), PSF_EINVAL);
	assert_int_equal(psf_consistency_parse(NULL, &c), PSF_EINVAL);
	assert_int_equal(c, PSF_CONS_ASYNC);
}

/* parse_err parses text and returns its error line (static buffer). */
static const char *
parse_err(const char *text)
{
	static char err[512];
	psf_config *cfg = NULL;

	assert_int_equal(psf_config_parse("t.yaml", text, strlen(text), err, sizeof(err), &cfg),
	    PSF_ECONFIG);
	assert_null(cfg);
	return err;
}

static void
test_config_env_placeholders(void **state)
{
	static const char tmpl[] =
	    "nodes:\n"
	    "  ps: [{id: \"${PSF_T_ID}\", listen: \"tcp://127.0.0.1:${PSF_T_PORT:-7101}\"}]\n"
	    "  trainers: [{id: t0}]\n"
	    "data: {path: \"%s\"}\n"
	    "features: [\"lag:0\"]\n";
	char text[512];
	psf_config *cfg;

	(void)state;
	setenv("PSF_T_ID", "ps-7", 1);
	unsetenv("PSF_T_PORT");
	snprintf(text, sizeof(text), tmpl, "${PSF_T_DIR:-/d}/x$$y$z.csv");
	cfg = parse_ok(text);
	assert_string_equal(cfg->nodes[0].id, "ps-7");
	assert_string_equal(cfg->nodes[0].listen, "tcp://127.0.0.1:7101");
	assert_string_equal(cfg->data.path, "/d/x$y$z.csv");
	psf_config_free(cfg);
	setenv("PSF_T_PORT", "7202", 1);
	setenv("PSF_T_DIR", "/data", 1);
	cfg = parse_ok(text);
	assert_string_equal(cfg->nodes[0].listen, "tcp://127.0.0.1:7202");
	assert_string_equal(cfg->data.path, "/data/x$y$z.csv");
	psf_config_free(cfg);
	/* the expanded text is checked: a bad port from the environment is a config error */
	setenv("PSF_T_PORT", "99999", 1);
	assert_non_null(strstr(parse_err(text), "t.yaml:2: "));
	unsetenv("PSF_T_PORT");
	snprintf(text, sizeof(text), tmpl, "${PSF_T_UNSET_VAR}");
	unsetenv("PSF_T_UNSET_VAR");
	assert_string_equal(parse_err(text),
	    "t.yaml:4: environment variable 'PSF_T_UNSET_VAR' is not set (placeholder "
	    "${PSF_T_UNSET_VAR}; give a default with ${PSF_T_UNSET_VAR:-default})");
	snprintf(text, sizeof(text), tmpl, "${PSF_T_DIR");
	assert_non_null(strstr(parse_err(text), "t.yaml:4: unterminated placeholder"));
	snprintf(text, sizeof(text), tmpl, "${1X}");
	assert_non_null(strstr(parse_err(text), "t.yaml:4: bad variable name"));
	/* An aliased value is expanded once: its "$$" stays a literal '$' everywhere. */
	setenv("PSF_T_DIR", "/data", 1);
	cfg = parse_ok("run_dir: &n \"/r$${PSF_T_DIR}\"\n"
	               "nodes:\n"
	               "  ps: [{id: ps0, listen: \"tcp://127.0.0.1:7101\"}]\n"
	               "  trainers: [{id: t0}]\n"
	               "data: {path: *n}\n"
	               "features: [\"lag:0\"]\n");
	assert_string_equal(cfg->run_dir, "/r${PSF_T_DIR}");
	assert_string_equal(cfg->data.path, "/r${PSF_T_DIR}");
	psf_config_free(cfg);
	unsetenv("PSF_T_ID");
	unsetenv("PSF_T_DIR");
}

static void
test_config_advertise(void **state)
{
	static const char tmpl[] = "nodes:\n"
	                           "  ps: [{id: ps0, listen: \"%s\"%s}]\n"
	                           "  trainers: [{id: t0}]\n"
	                           "data: {path: d.csv}\n"
	                           "features: [\"lag:0\"]\n";
	static const char *const bad[][3] = {
	    {"tcp://0.0.0.0:7101", "", "t.yaml:2: node 'ps0' listens on a wildcard address"},
	    {"tcp://:7101", "", "t.yaml:2: node 'ps0' listens on a wildcard address"},
	    {"tcp://0.0.0.0:7101", ", advertise: \"tcp://0.0.0.0:7101\"",
	        "t.yaml:2: 'advertise' of node 'ps0' must name a host"},
	    {"tcp://0.0.0.0:7101", ", advertise: \"tcp://[::]:7101\"",
	        "t.yaml:2: 'advertise' of node 'ps0' must name a host"},
	    {"tcp://0.0.0.0:7101", ", advertise: \"tcp://ps-0.ps\"",
	        "t.yaml:2: 'advertise' of node 'ps0' must be an NNG URL"},
	    {"tcp://0.0.0.0:7101", ", advertise: \"tcp://ps-0.ps:0\"",
	        "t.yaml:2: 'advertise' of node 'ps0' must name a host"},
	    {"tcp://0.0.0.0:7101", ", advertise: \"ipc:///tmp/x\"",
	        "t.yaml:2: 'advertise' of node 'ps0' (ipc://) must use the scheme of its 'listen' "
	        "(tcp://)"},
	};
	char text[512];
	psf_config *cfg;

	(void)state;
	snprintf(text, sizeof(text), tmpl, "tcp://0.0.0.0:7101",
	    ", advertise: \"tcp4://ps-0.ps:7101\"");
	cfg = parse_ok(text);
	assert_string_equal(cfg->nodes[0].listen, "tcp://0.0.0.0:7101");
	assert_string_equal(psf_node_dial_url(&cfg->nodes[0]), "tcp4://ps-0.ps:7101");
	assert_null(psf_node_dial_url(&cfg->nodes[1]));
	psf_config_free(cfg);
	snprintf(text, sizeof(text), tmpl, "tcp://127.0.0.1:7101", "");
	cfg = parse_ok(text);
	assert_string_equal(psf_node_dial_url(&cfg->nodes[0]), "tcp://127.0.0.1:7101");
	psf_config_free(cfg);
	for (size_t i = 0; i < PSF_ARRAY_LEN(bad); i++) {
		snprintf(text, sizeof(text), tmpl, bad[i][0], bad[i][1]);
		const char *err = parse_err(text);
		if (strncmp(err, bad[i][2], strlen(bad[i][2])) != 0)
			fail_msg("case %zu: got '%s', want '%s...'", i, err, bad[i][2]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config_examples_all_load, enter_fixtures,
	        leave_fixtures),
	    cmocka_unit_test(test_config_examples_match_their_purpose),
	    cmocka_unit_test(test_config_trainer_listen_optional),
	    cmocka_unit_test_setup_teardown(test_config_defaults_applied, enter_fixtures,
	        leave_fixtures),
	    cmocka_unit_test_setup_teardown(test_config_generate_defaults, enter_fixtures,
	        leave_fixtures),
	    cmocka_unit_test_setup_teardown(test_config_every_key_read, enter_fixtures,
	        leave_fixtures),
	    cmocka_unit_test_setup_teardown(test_config_errors_exact_lines, enter_fixtures,
	        leave_fixtures),
	    cmocka_unit_test_setup_teardown(test_config_every_broken_fixture_checked,
	        enter_fixtures, leave_fixtures),
	    cmocka_unit_test_setup_teardown(test_config_error_buffer_handling, enter_fixtures,
	        leave_fixtures),
	    cmocka_unit_test(test_config_unreadable_files),
	    cmocka_unit_test(test_config_fingerprint_stable_and_sensitive),
	    cmocka_unit_test(test_config_replication_topology),
	    cmocka_unit_test(test_config_free_null),
	    cmocka_unit_test(test_config_feature_parse),
	    cmocka_unit_test(test_config_role_and_mode_names),
	    cmocka_unit_test_setup_teardown(test_config_truncated_prefixes_never_crash,
	        enter_fixtures, leave_fixtures),
	    cmocka_unit_test_setup_teardown(test_config_byte_flips_never_crash, enter_fixtures,
	        leave_fixtures),
	    cmocka_unit_test_setup_teardown(test_config_tls_server_name, enter_fixtures,
	        leave_fixtures),
	    cmocka_unit_test(test_config_limits_inclusive_and_big_model_warns),
	    cmocka_unit_test(test_config_override_sets_keys),
	    cmocka_unit_test(test_config_override_empty_value_is_default),
	    cmocka_unit_test(test_config_override_errors_name_it),
	    cmocka_unit_test_setup_teardown(test_config_override_file_lines_kept, enter_fixtures,
	        leave_fixtures),
	    cmocka_unit_test(test_config_experiment_examples_load),
	    cmocka_unit_test(test_config_trainer_limit),
	    cmocka_unit_test(test_config_learning_rate_range),
	    cmocka_unit_test(test_config_enum_names_round_trip),
	    cmocka_unit_test(test_config_env_placeholders),
	    cmocka_unit_test(test_config_advertise),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
