/* config_schema.c -- the fleet YAML's schema: one table per section (names,
 * types, ranges, messages), the keys that need code (features, hidden, nodes,
 * generate, tls_server_name), the defaults, and the values derived after parsing.
 *
 * Adding a plain key is one line in its table; config_yaml.c does the rest. */
#include "lib/base/bounds.h"
#include "lib/config/config_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = {"err", "warn", "info", "debug", NULL};
static const char *const interval_scale_names[] = {"price", "none", NULL};

/* ---- features ---- */

static const struct feat_spec {
	const char *name;
	psf_feature_kind kind;
	uint32_t min; /* smallest window */
	int has_window;
} feat_specs[] = {
    {"lag", PSF_FEAT_LAG, 0, 1},
    {"return", PSF_FEAT_RETURN, 1, 1},
    {"sma", PSF_FEAT_SMA, 1, 1},
    {"std", PSF_FEAT_STD, 2, 1},
    {"ratio_sma", PSF_FEAT_RATIO_SMA, 1, 1},
    {"ewm", PSF_FEAT_EWM, 1, 1},
    {"range", PSF_FEAT_RANGE, 0, 0},
    {"dow", PSF_FEAT_DOW, 0, 0},
    {"volume", PSF_FEAT_VOLUME, 1, 1},
};

/* feature_parse is psf_feature_parse that also explains a failure in why. */
static psf_err
feature_parse(const char *spec, psf_feature_cfg *out, char *why, size_t whylen)
{
	const char *colon = spec != NULL ? strchr(spec, ':') : NULL;
	size_t nlen = spec == NULL ? 0 : colon != NULL ? (size_t)(colon - spec) : strlen(spec);
	const struct feat_spec *fs = NULL;
	uint64_t w = 0;

	for (size_t i = 0; nlen > 0 && i < PSF_ARRAY_LEN(feat_specs); i++)
		if (strlen(feat_specs[i].name) == nlen &&
		    strncmp(feat_specs[i].name, spec, nlen) == 0)
			fs = &feat_specs[i];
	if (fs == NULL) {
		snprintf(why, whylen,
		    "unknown feature '%.64s' (known: lag:N, return:N, sma:N, "
		    "std:N, ratio_sma:N, ewm:N, range, dow, volume:N)",
		    spec != NULL ? spec : "");
		return PSF_EINVAL;
	}
	if (!fs->has_window && colon != NULL) {
		snprintf(why, whylen, "feature '%.64s' takes no window: write '%s'", spec,
		    fs->name);
		return PSF_EINVAL;
	}
	if (fs->has_window &&
	    (colon == NULL || strlen(colon + 1) > 6 || colon[1] == '+' ||
	        config_parse_u64(colon + 1, &w) != 0 || w < fs->min || w > MAX_WINDOW)) {
		snprintf(why, whylen, "feature '%.64s' needs a window N in [%u, %d], as in %s:%u",
		    spec, fs->min, MAX_WINDOW, fs->name, fs->min > 0 ? fs->min * 5 : 1);
		return PSF_EINVAL;
	}
	out->kind = fs->kind;
	out->window = (uint32_t)w;
	if (fs->has_window)
		snprintf(out->name, sizeof(out->name), "%s:%u", fs->name, (unsigned)w);
	else
		snprintf(out->name, sizeof(out->name), "%s", fs->name);
	return PSF_OK;
}

psf_err
psf_feature_parse(const char *spec, psf_feature_cfg *out)
{
	char why[160];
	psf_feature_cfg f;

	if (out == NULL || feature_parse(spec, &f, why, sizeof(why)) != PSF_OK)
		return PSF_EINVAL;
	*out = f;
	return PSF_OK;
}

static psf_err
fn_features(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base)
{
	psf_config *cfg = c->cfg;
	char why[200];
	size_t n;

	if (val->type != YAML_SEQUENCE_NODE)
		return config_fail(c, line(key),
		    "'features' must be a list of feature names like \"lag:0\"");
	n = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
	if (n == 0 || n > MAX_FEATURES)
		return config_fail(c, line(key), "'features' must list 1 to %d features",
		    MAX_FEATURES);
	if ((cfg->features = calloc(n, sizeof(*cfg->features))) == NULL)
		return config_oom(c);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = node_at(c, val->data.sequence.items.start[i]);
		psf_feature_cfg *fc = &cfg->features[i];

		if (config_scalar(item) == NULL)
			return config_fail(c, line(item),
			    "each feature must be a name like \"sma:10\"");
		if (feature_parse(config_scalar(item), fc, why, sizeof(why)) != PSF_OK)
			return config_fail(c, line(item), "%s", why);
		for (size_t j = 0; j < i; j++)
			if (strcmp(cfg->features[j].name, fc->name) == 0)
				return config_fail(c, line(item), "duplicate feature '%s'",
				    fc->name);
		cfg->n_features = i + 1;
	}
	return PSF_OK;
}

static psf_err
fn_hidden(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base)
{
	psf_model_cfg *m = base;
	size_t n;

	if (config_is_null(val))
		return PSF_OK;
	if (val->type != YAML_SEQUENCE_NODE)
		return config_fail(c, line(key),
		    "'hidden' must be a list of layer sizes like [64, 32]");
	n = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
	if (n == 0 || n > PSF_ARRAY_LEN(m->hidden))
		return config_fail(c, line(key), "'hidden' must list 1 to %zu layer sizes",
		    PSF_ARRAY_LEN(m->hidden));
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = node_at(c, val->data.sequence.items.start[i]);
		uint64_t v;

		if (config_parse_u64(config_plain(item), &v) != 0 || v < 1 || v > 65536)
			return config_fail(c, line(item),
			    "each 'hidden' layer size must be an integer "
			    "in [1, 65536]");
		m->hidden[i] = (uint32_t)v;
	}
	m->n_hidden = (uint32_t)n;
	return PSF_OK;
}

/* is_dns_name: dot-separated labels of letters, digits, '-' and '_' (1-63 each,
 * 253 in all), the form a name takes in a certificate's subjectAltName. A URL or
 * host:port is rejected here because no certificate could ever match it. */
static int
is_dns_name(const char *s)
{
	size_t label = 0, len = 0;

	for (const char *p = s; *p != '\0'; p++, len++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0 && len <= 253;
}

static psf_err
fn_server_name(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base)
{
	const char *s = config_scalar(val);

	if (!config_is_null(val) && (s == NULL || !is_dns_name(s)))
		return config_bad_value(c, f, key);
	return config_set_str(c, f, key, val, (char **)((char *)base + f->off));
}

static psf_err
fn_generate(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base)
{
	psf_data_cfg *d = base;

	d->has_generate = 1;
	c->gen_seed_default = 1;
	if (config_is_null(val))
		return PSF_OK; /* "generate:" alone: generate with the defaults */
	if (val->type != YAML_MAPPING_NODE)
		return config_fail(c, line(key), "'generate' must be a mapping");
	c->gen_seed_default = config_map_key(c, val, "seed", NULL) == NULL;
	return config_parse_map(c, val, f->sub, &d->generate);
}

/* ---- nodes ---- */

static psf_err
append_node(ctx *c, psf_role role, yaml_node_t *map, psf_node_cfg **out)
{
	psf_config *cfg = c->cfg;

	if (cfg->n_nodes == MAX_NODES)
		return config_fail(c, line(map), "too many nodes (at most %d)", MAX_NODES);
	if (cfg->n_nodes == c->cap_nodes) {
		size_t cap = c->cap_nodes == 0 ? 8 : c->cap_nodes * 2;
		psf_node_cfg *nodes = realloc(cfg->nodes, cap * sizeof(*nodes));
		int *map_ids;

		if (nodes == NULL)
			return config_oom(c);
		cfg->nodes = nodes;
		if ((map_ids = realloc(c->node_map, cap * sizeof(*map_ids))) == NULL)
			return config_oom(c);
		c->node_map = map_ids;
		c->cap_nodes = cap;
	}
	memset(&cfg->nodes[cfg->n_nodes], 0, sizeof(cfg->nodes[0]));
	cfg->nodes[cfg->n_nodes].role = role;
	c->node_map[cfg->n_nodes] = (int)(map - c->doc->nodes.start) + 1;
	*out = &cfg->nodes[cfg->n_nodes++];
	return PSF_OK;
}

static const table node_tables[4];

static psf_err
parse_node(ctx *c, psf_role role, yaml_node_t *item)
{
	const table *t = &node_tables[role];
	psf_node_cfg *node = NULL;
	psf_err rv;

	if (item->type != YAML_MAPPING_NODE)
		return config_fail(c, line(item), "each entry of %s must be a mapping with an 'id'",
		    t->name);
	if ((rv = append_node(c, role, item, &node)) != PSF_OK ||
	    (rv = config_parse_map(c, item, t, node)) != PSF_OK)
		return rv;
	if (node->id == NULL)
		return config_fail(c, line(item), "node in %s is missing 'id'", t->name);
	return PSF_OK;
}

static psf_err
fn_nodes(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base)
{
	psf_role role = (psf_role)f->aux;
	psf_err rv;

	if (config_is_null(val))
		return PSF_OK;
	if (role == PSF_ROLE_GATEWAY) {
		if (val->type != YAML_MAPPING_NODE)
			return config_fail(c, line(key),
			    "'gateway' must be a mapping (one gateway at most)");
		return parse_node(c, role, val);
	}
	if (val->type != YAML_SEQUENCE_NODE)
		return config_fail(c, line(key), "'%s' must be a list of nodes", f->key);
	for (yaml_node_item_t *it = val->data.sequence.items.start;
	     it < val->data.sequence.items.top; it++)
		if ((rv = parse_node(c, role, node_at(c, *it))) != PSF_OK)
			return rv;
	return PSF_OK;
}

/* ---- the schema ---- */

static const field node_fields_ps[] = {
    {"id", T_STR, offsetof(psf_node_cfg, id), .must = "a node id"},
    {"listen", T_STR, offsetof(psf_node_cfg, listen), .must = "an NNG URL"},
    {"advertise", T_STR, offsetof(psf_node_cfg, advertise), .must = "an NNG URL"},
    {"metrics", T_STR, offsetof(psf_node_cfg, metrics), .must = "host:port"},
    {"data_dir", T_STR, offsetof(psf_node_cfg, data_dir), .must = "a directory path"},
};
static const field node_fields_trainer[] = {
    {"id", T_STR, offsetof(psf_node_cfg, id), .must = "a node id"},
    {"listen", T_STR, offsetof(psf_node_cfg, listen), .must = "an NNG URL"}, /* Admin only */
    {"advertise", T_STR, offsetof(psf_node_cfg, advertise), .must = "an NNG URL"},
    {"metrics", T_STR, offsetof(psf_node_cfg, metrics), .must = "host:port"},
    {"data_dir", T_STR, offsetof(psf_node_cfg, data_dir), .must = "a directory path"},
};
static const field node_fields_inferer[] = {
    {"id", T_STR, offsetof(psf_node_cfg, id), .must = "a node id"},
    {"listen", T_STR, offsetof(psf_node_cfg, listen), .must = "an NNG URL"},
    {"advertise", T_STR, offsetof(psf_node_cfg, advertise), .must = "an NNG URL"},
    {"metrics", T_STR, offsetof(psf_node_cfg, metrics), .must = "host:port"},
    {"data_dir", T_STR, offsetof(psf_node_cfg, data_dir), .must = "a directory path"},
    {"shard", T_U32, offsetof(psf_node_cfg, shard), .must = "an integer >= 0"},
};
static const table node_tables[4] = {
    {"nodes.ps", node_fields_ps, PSF_ARRAY_LEN(node_fields_ps)},
    {"nodes.trainers", node_fields_trainer, PSF_ARRAY_LEN(node_fields_trainer)},
    {"nodes.inferers", node_fields_inferer, PSF_ARRAY_LEN(node_fields_inferer)},
    {"nodes.gateway", node_fields_ps, PSF_ARRAY_LEN(node_fields_ps)},
};

static const field nodes_fields[] = {
    {"ps", T_FN, 0, .fn = fn_nodes, .aux = PSF_ROLE_PS},
    {"trainers", T_FN, 0, .fn = fn_nodes, .aux = PSF_ROLE_TRAINER},
    {"inferers", T_FN, 0, .fn = fn_nodes, .aux = PSF_ROLE_INFERER},
    {"gateway", T_FN, 0, .fn = fn_nodes, .aux = PSF_ROLE_GATEWAY},
};
static const table nodes_table = {"nodes", nodes_fields, PSF_ARRAY_LEN(nodes_fields)};

static const field gen_fields[] = {
    {"symbols", T_U32, offsetof(psf_datagen_cfg, symbols), .imin = 1,
        .imax = PSF_DATAGEN_MAX_SYMBOLS},
    {"days", T_U32, offsetof(psf_datagen_cfg, days), .imin = 2, .imax = PSF_DATAGEN_MAX_DAYS},
    {"seed", T_U64, offsetof(psf_datagen_cfg, seed), .must = "an integer >= 0"},
    {"skew", T_BOOL, offsetof(psf_datagen_cfg, skew), .must = "true or false"},
};
static const table gen_table = {"data.generate", gen_fields, PSF_ARRAY_LEN(gen_fields)};

static const field data_fields[] = {
    {"path", T_STR, offsetof(psf_data_cfg, path), .must = "a file or directory path"},
    {"generate", T_FN, 0, .sub = &gen_table, .fn = fn_generate},
    {"bad_rows", T_ENUM, offsetof(psf_data_cfg, bad_rows), .names = config_bad_rows_names},
    {"test_fraction", T_F64, offsetof(psf_data_cfg, test_fraction), .must = "a number in (0, 1)",
        .dmin = 0, .dmax = 1, .open_lo = 1, .open_hi = 1},
    {"shard_by", T_ENUM, offsetof(psf_data_cfg, shard_by), .names = config_shard_by_names},
    {"cache", T_BOOL, offsetof(psf_data_cfg, cache), .must = "true or false"},
    {"train_end", T_STR, offsetof(psf_data_cfg, train_end), .must = "a date YYYY-MM-DD"},
};
static const table data_table = {"data", data_fields, PSF_ARRAY_LEN(data_fields)};

static const field model_fields[] = {
    {"kind", T_ENUM, offsetof(psf_model_cfg, kind), .names = config_model_names},
    {"hidden", T_FN, 0, .fn = fn_hidden},
    {"window", T_U32, offsetof(psf_model_cfg, window), .must = "an integer in [1, 512]", .imin = 1,
        .imax = PSF_MODEL_MAX_WINDOW},
    {"embedding_dim", T_U32, offsetof(psf_model_cfg, embedding_dim),
        .must = "an integer in [0, 4096]", .imax = 4096},
    {"symbol_bias", T_BOOL, offsetof(psf_model_cfg, symbol_bias), .must = "true or false"},
    {"l2", T_F64, offsetof(psf_model_cfg, l2), .must = "a number >= 0", .dmax = INFINITY},
    {"init_scale", T_F64, offsetof(psf_model_cfg, init_scale), .must = "a number > 0",
        .dmax = INFINITY, .open_lo = 1},
    {"chunk_floats", T_U32, offsetof(psf_model_cfg, chunk_floats),
        .must = "an integer in [1, 16777216]", .imin = 1, .imax = 16777216},
};
static const table model_table = {"model", model_fields, PSF_ARRAY_LEN(model_fields)};

static const field optim_fields[] = {
    {"kind", T_ENUM, offsetof(psf_optim_cfg, kind), .names = config_optim_names},
    /* Above 10 every model here diverges at once (gradients overflow to Inf):
	 * refuse it at load time rather than after the nodes start. */
    {"learning_rate", T_F64, offsetof(psf_optim_cfg, learning_rate), .must = "a number in (0, 10]",
        .dmax = 10, .open_lo = 1},
    {"momentum", T_F64, offsetof(psf_optim_cfg, momentum), .must = "a number in [0, 1)", .dmax = 1,
        .open_hi = 1},
    {"beta1", T_F64, offsetof(psf_optim_cfg, beta1), .must = "a number in [0, 1)", .dmax = 1,
        .open_hi = 1},
    {"beta2", T_F64, offsetof(psf_optim_cfg, beta2), .must = "a number in [0, 1)", .dmax = 1,
        .open_hi = 1},
    {"epsilon", T_F64, offsetof(psf_optim_cfg, epsilon), .must = "a number > 0", .dmax = INFINITY,
        .open_lo = 1},
    {"schedule", T_ENUM, offsetof(psf_optim_cfg, schedule), .names = config_sched_names},
    {"step_size", T_U64, offsetof(psf_optim_cfg, step_size), .must = "an integer >= 1", .imin = 1},
    {"gamma", T_F64, offsetof(psf_optim_cfg, gamma), .must = "a number in (0, 1]", .dmax = 1,
        .open_lo = 1},
    {"total_steps", T_U64, offsetof(psf_optim_cfg, total_steps), .must = "an integer >= 0"},
    {"clip_norm", T_F64, offsetof(psf_optim_cfg, clip_norm), .must = "a number >= 0",
        .dmax = INFINITY},
    {"skip_nonfinite", T_BOOL, offsetof(psf_optim_cfg, skip_nonfinite), .must = "true or false"},
};
static const table optim_table = {"optimizer", optim_fields, PSF_ARRAY_LEN(optim_fields)};

static const field finetune_fields[] = {
    {"steps", T_U32, offsetof(psf_finetune_cfg, steps), .must = "an integer in [0, 1000000]",
        .imax = 1000000},
    {"batch_size", T_U32, offsetof(psf_finetune_cfg, batch_size),
        .must = "an integer in [0, 1048576]", .imax = 1048576},
    {"poll_ms", T_U32, offsetof(psf_finetune_cfg, poll_ms), .must = "an integer in [1, 60000]",
        .imin = 1, .imax = 60000},
};
static const table finetune_table = {"training.finetune", finetune_fields,
    PSF_ARRAY_LEN(finetune_fields)};

static const field training_fields[] = {
    {"epochs", T_U32, offsetof(psf_training_cfg, epochs), .must = "an integer >= 1", .imin = 1},
    {"batch_size", T_U32, offsetof(psf_training_cfg, batch_size),
        .must = "an integer in [1, 1048576]", .imin = 1, .imax = 1048576},
    {"max_steps", T_U64, offsetof(psf_training_cfg, max_steps), .must = "an integer >= 0"},
    {"shuffle", T_BOOL, offsetof(psf_training_cfg, shuffle), .must = "true or false"},
    {"target_loss", T_F64, offsetof(psf_training_cfg, target_loss), .must = "a number >= 0",
        .dmax = INFINITY},
    {"clip_norm", T_F64, offsetof(psf_training_cfg, clip_norm), .must = "a number >= 0",
        .dmax = INFINITY},
    {"finetune", T_MAP, offsetof(psf_training_cfg, finetune), .sub = &finetune_table},
};
static const table training_table = {"training", training_fields, PSF_ARRAY_LEN(training_fields)};

static const field cons_fields[] = {
    {"mode", T_ENUM, offsetof(psf_consistency_cfg, mode), .names = config_cons_names},
    {"staleness", T_U32, offsetof(psf_consistency_cfg, staleness), .must = "an integer >= 0"},
    {"sync_every", T_U32, offsetof(psf_consistency_cfg, sync_every),
        .must = "an integer in [1, 1000000]", .imin = 1, .imax = 1000000},
    {"straggler_timeout_ms", T_U32, offsetof(psf_consistency_cfg, straggler_timeout_ms),
        .must = "an integer >= 1", .imin = 1},
    {"heartbeat_ms", T_U32, offsetof(psf_consistency_cfg, heartbeat_ms), .must = "an integer >= 1",
        .imin = 1},
};
static const table cons_table = {"consistency", cons_fields, PSF_ARRAY_LEN(cons_fields)};

static const field dur_fields[] = {
    {"mode", T_ENUM, offsetof(psf_durability_cfg, mode), .names = config_dur_names},
    {"interval_ms", T_U32, offsetof(psf_durability_cfg, interval_ms), .must = "an integer >= 1",
        .imin = 1},
    {"map_size", T_U64, offsetof(psf_durability_cfg, map_size), .imin = PSF_STORE_MIN_MAP_SIZE,
        .imax = PSF_STORE_MAX_MAP_SIZE},
};
static const table dur_table = {"durability", dur_fields, PSF_ARRAY_LEN(dur_fields)};

static const field limits_fields[] = {
    {"max_message_bytes", T_U64, offsetof(psf_limits_cfg, max_message_bytes),
        .must = "an integer in [65536, 4294967295]", .imin = 65536, .imax = UINT32_MAX},
    {"max_keys_per_request", T_U32, offsetof(psf_limits_cfg, max_keys_per_request),
        .must = "an integer >= 1", .imin = 1},
    {"request_timeout_ms", T_U32, offsetof(psf_limits_cfg, request_timeout_ms),
        .must = "an integer >= 1", .imin = 1},
    {"rpc_workers", T_U32, offsetof(psf_limits_cfg, rpc_workers), .must = "an integer in [1, 4096]",
        .imin = 1, .imax = 4096},
    {"max_connections", T_U32, offsetof(psf_limits_cfg, max_connections),
        .must = "an integer >= 0"},
};
static const table limits_table = {"limits", limits_fields, PSF_ARRAY_LEN(limits_fields)};

static const field sec_fields[] = {
    {"token_file", T_STR, offsetof(psf_security_cfg, token_file), .must = "a file path"},
    {"token_env", T_STR, offsetof(psf_security_cfg, token_env),
        .must = "an environment variable name"},
    {"tls_cert", T_STR, offsetof(psf_security_cfg, tls_cert), .must = "a file path"},
    {"tls_key", T_STR, offsetof(psf_security_cfg, tls_key), .must = "a file path"},
    {"tls_ca", T_STR, offsetof(psf_security_cfg, tls_ca), .must = "a file path"},
    {"tls_server_name", T_FN, offsetof(psf_security_cfg, tls_server_name),
        .must = "a DNS name from the servers' certificates, like ps.example (not a URL "
                "or host:port)",
        .fn = fn_server_name},
};
static const table sec_table = {"security", sec_fields, PSF_ARRAY_LEN(sec_fields)};

static const field inf_fields[] = {
    {"refresh_ms", T_U32, offsetof(psf_inference_cfg, refresh_ms), .must = "an integer >= 1",
        .imin = 1},
    {"history_days", T_U32, offsetof(psf_inference_cfg, history_days),
        .must = "an integer in [1, 100000]", .imin = 1, .imax = 100000},
    {"shards", T_U32, offsetof(psf_inference_cfg, shards), .must = "an integer in [1, 1024]",
        .imin = 1, .imax = 1024},
    {"interval_scale", T_STR, offsetof(psf_inference_cfg, interval_scale),
        .names = interval_scale_names},
};
static const table inf_table = {"inference", inf_fields, PSF_ARRAY_LEN(inf_fields)};

static const field gw_fields[] = {
    {"route", T_ENUM, offsetof(psf_gateway_cfg, route), .names = config_route_names},
    {"health_interval_ms", T_U32, offsetof(psf_gateway_cfg, health_interval_ms),
        .must = "an integer >= 1", .imin = 1},
};
static const table gw_table = {"gateway_options", gw_fields, PSF_ARRAY_LEN(gw_fields)};

static const field top_fields[] = {
    {"name", T_STR, offsetof(psf_config, name), .must = "a fleet name"},
    {"seed", T_U64, offsetof(psf_config, seed), .must = "an integer >= 0"},
    {"run_dir", T_STR, offsetof(psf_config, run_dir), .must = "a directory path"},
    {"log_level", T_STR, offsetof(psf_config, log_level), .names = level_names},
    {"replication", T_U32, offsetof(psf_config, replication), .must = "an integer in [1, 3]",
        .imin = 1, .imax = PSF_MAX_REPLICATION},
    {"nodes", T_MAP, 0, .sub = &nodes_table},
    {"data", T_MAP, offsetof(psf_config, data), .sub = &data_table},
    {"features", T_FN, 0, .fn = fn_features},
    {"target", T_ENUM, offsetof(psf_config, target), .names = config_target_names},
    {"model", T_MAP, offsetof(psf_config, model), .sub = &model_table},
    {"optimizer", T_MAP, offsetof(psf_config, optimizer), .sub = &optim_table},
    {"training", T_MAP, offsetof(psf_config, training), .sub = &training_table},
    {"consistency", T_MAP, offsetof(psf_config, consistency), .sub = &cons_table},
    {"durability", T_MAP, offsetof(psf_config, durability), .sub = &dur_table},
    {"limits", T_MAP, offsetof(psf_config, limits), .sub = &limits_table},
    {"security", T_MAP, offsetof(psf_config, security), .sub = &sec_table},
    {"inference", T_MAP, offsetof(psf_config, inference), .sub = &inf_table},
    {"gateway_options", T_MAP, offsetof(psf_config, gateway), .sub = &gw_table},
};
const table config_top_table = {NULL, top_fields, PSF_ARRAY_LEN(top_fields)};

/* ---- defaults and derived values ---- */

void
config_set_defaults(psf_config *cfg)
{
	cfg->seed = 42;
	cfg->replication = 1;
	cfg->data.generate.symbols = 100;
	cfg->data.generate.days = 500;
	cfg->data.test_fraction = 0.2;
	cfg->data.shard_by = PSF_SHARD_BY_ROWS; /* balanced work unless hashing is asked for */
	cfg->data.cache = 1; /* parse the CSV once, read the binary cache after */
	cfg->target = PSF_TARGET_NEXT_CLOSE;
	cfg->model.hidden[0] = 32;
	cfg->model.n_hidden = 1;
	cfg->model.window = 10;
	cfg->model.init_scale = 1.0;
	cfg->model.chunk_floats = 65536;
	cfg->optimizer = (psf_optim_cfg){.kind = PSF_OPTIM_ADAM,
	    .learning_rate = 0.01,
	    .momentum = 0.9,
	    .beta1 = 0.9,
	    .beta2 = 0.999,
	    .epsilon = 1e-8,
	    .step_size = 1000,
	    .gamma = 0.5};
	cfg->training = (psf_training_cfg){.epochs = 5, .batch_size = 256, .shuffle = 1};
	cfg->training.finetune.poll_ms = 100;
	cfg->consistency = (psf_consistency_cfg){.mode = PSF_CONS_SYNC,
	    .staleness = 2,
	    .sync_every = 8,
	    .straggler_timeout_ms = 10000,
	    .heartbeat_ms = 1000};
	cfg->durability = (psf_durability_cfg){.mode = PSF_DUR_INTERVAL,
	    .interval_ms = 1000,
	    .map_size = (uint64_t)64 << 20};
	cfg->limits = (psf_limits_cfg){.max_message_bytes = (uint64_t)80 << 20,
	    .max_keys_per_request = 1000000,
	    .request_timeout_ms = 30000,
	    .rpc_workers = 64};
	cfg->inference = (psf_inference_cfg){.refresh_ms = 1000, .history_days = 64, .shards = 1};
	cfg->gateway = (psf_gateway_cfg){.route = PSF_ROUTE_SYMBOL, .health_interval_ms = 500};
}

/* join3 returns a new string a + b + c, or NULL when out of memory. */
static char *
join3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);

	if (s != NULL) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb);
		memcpy(s + la + lb, c, lc + 1);
	}
	return s;
}

/* sort_nodes orders nodes ps, trainers, inferers, gateway, keeping the file's order
 * within a role (a stable insertion sort; n is small), and numbers them. */
static void
sort_nodes(ctx *c)
{
	psf_config *cfg = c->cfg;
	size_t count[4] = {0};

	for (size_t i = 1; i < cfg->n_nodes; i++) {
		psf_node_cfg n = cfg->nodes[i];
		int m = c->node_map[i];
		size_t j = i;

		for (; j > 0 && cfg->nodes[j - 1].role > n.role; j--) {
			cfg->nodes[j] = cfg->nodes[j - 1];
			c->node_map[j] = c->node_map[j - 1];
		}
		cfg->nodes[j] = n;
		c->node_map[j] = m;
	}
	for (size_t i = 0; i < cfg->n_nodes; i++)
		cfg->nodes[i].index = (uint32_t)count[cfg->nodes[i].role]++;
	cfg->n_ps = count[PSF_ROLE_PS];
	cfg->n_trainers = count[PSF_ROLE_TRAINER];
	cfg->n_inferers = count[PSF_ROLE_INFERER];
	cfg->n_gateways = count[PSF_ROLE_GATEWAY];
	/* validate_nodes refuses an n_ps that is not a multiple of replication */
	cfg->n_shards = cfg->replication > 0 ? cfg->n_ps / cfg->replication : cfg->n_ps;
}

psf_err
config_finish(ctx *c)
{
	psf_config *cfg = c->cfg;

	sort_nodes(c);
	if ((cfg->name == NULL && (cfg->name = strdup("psfleet")) == NULL) ||
	    (cfg->log_level == NULL && (cfg->log_level = strdup("info")) == NULL) ||
	    (cfg->run_dir == NULL && (cfg->run_dir = join3("runs/", cfg->name, "")) == NULL))
		return config_oom(c);
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		psf_node_cfg *n = &cfg->nodes[i];

		if (n->data_dir == NULL && (n->data_dir = join3(cfg->run_dir, "/", n->id)) == NULL)
			return config_oom(c);
	}
	if (c->gen_seed_default)
		cfg->data.generate.seed = cfg->seed;
	if (cfg->data.has_generate && cfg->data.path == NULL &&
	    (cfg->data.path = join3(cfg->run_dir, "/", "data.csv")) == NULL)
		return config_oom(c);
	return PSF_OK;
}
