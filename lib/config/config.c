/* config.c -- fleet YAML -> psf_config: the public entry points.
 *
 * Order: defaults -> overrides -> parse (types, ranges, unknown/duplicate keys)
 * -> finish (nodes ordered by role, derived defaults) -> validate (cross-field
 * checks). config_internal.h says which file holds each step. */
#include "lib/config/config_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: no allocation */
#include <xxhash.h>

#include "lib/base/log.h"
#include "lib/base/util.h"

/* report hands the error line to the caller (or the log), one line, printable. */
static void
report(ctx *c, psf_err rv, char *errbuf, size_t errlen)
{
	if (rv == PSF_OK) {
		if (errbuf != NULL && errlen > 0)
			errbuf[0] = '\0';
		return;
	}
	if (c->msg[0] == '\0')
		snprintf(c->msg, sizeof(c->msg), "%.200s: %s", c->path, psf_strerror(rv));
	for (char *p = c->msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (errbuf == NULL)
		psf_log_err("config", "%s", c->msg);
	else if (errlen > 0)
		snprintf(errbuf, errlen, "%s", c->msg);
}

psf_err
psf_config_parse(const char *name, const char *text, size_t len, char *errbuf, size_t errlen,
    psf_config **out)
{
	return psf_config_parse_ex(name, text, len, NULL, 0, errbuf, errlen, out);
}

psf_err
psf_config_parse_ex(const char *name, const char *text, size_t len, const char *const *overrides,
    size_t n_overrides, char *errbuf, size_t errlen, psf_config **out)
{
	return config_parse(name, text, len, overrides, n_overrides, 0, errbuf, errlen, out);
}

psf_err
config_parse(const char *name, const char *text, size_t len, const char *const *overrides,
    size_t n_overrides, int skip_files, char *errbuf, size_t errlen, psf_config **out)
{
	ctx c;
	yaml_document_t doc;
	psf_config *cfg = NULL;
	int has_doc = 0;
	psf_err rv;

	memset(&c, 0, sizeof(c));
	c.path = name != NULL ? name : "(config)";
	c.overrides = overrides;
	c.n_overrides = overrides != NULL ? n_overrides : 0;
	c.skip_files = skip_files;
	if (text == NULL || out == NULL) {
		rv = PSF_EINVAL;
		goto out;
	}
	if (len > MAX_FILE_BYTES) {
		rv = config_fail(&c, 1, "config is larger than %d bytes", MAX_FILE_BYTES);
		goto out;
	}
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL || (cfg->path = strdup(c.path)) == NULL) {
		rv = config_oom(&c);
		goto out;
	}
	config_set_defaults(cfg);
	if ((rv = config_load_doc(&c, text, len, &doc)) != PSF_OK)
		goto out;
	has_doc = 1;
	c.doc = &doc;
	c.cfg = cfg;
	if ((rv = config_expand_env(&c)) != PSF_OK || (rv = config_apply_overrides(&c)) != PSF_OK ||
	    (rv = config_parse_map(&c, yaml_document_get_root_node(&doc), &config_top_table,
	         cfg)) != PSF_OK ||
	    (rv = config_finish(&c)) != PSF_OK || (rv = config_validate(&c)) != PSF_OK)
		goto out;
	*out = cfg;
	cfg = NULL;
out:
	report(&c, rv, errbuf, errlen);
	free(c.node_map);
	if (has_doc)
		yaml_document_delete(&doc);
	psf_config_free(cfg);
	return rv;
}

psf_err
psf_config_load(const char *path, char *errbuf, size_t errlen, psf_config **out)
{
	return psf_config_load_ex(path, NULL, 0, errbuf, errlen, out);
}

psf_err
psf_config_load_ex(const char *path, const char *const *overrides, size_t n_overrides, char *errbuf,
    size_t errlen, psf_config **out)
{
	ctx c = {.path = path};
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	const char *why = NULL;
	psf_err rv = PSF_OK;

	if (path == NULL || out == NULL) {
		c.path = path != NULL ? path : "(null)";
		report(&c, PSF_EINVAL, errbuf, errlen);
		return PSF_EINVAL;
	}
	if (stat(path, &st) != 0)
		rv = psf_err_from_errno(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_size > MAX_FILE_BYTES)
		why = "larger than 1 MiB";
	else
		rv = psf_read_file(path, &text, &len);
	if (why != NULL || rv != PSF_OK) {
		snprintf(c.msg, sizeof(c.msg), "%.200s: cannot read config: %s", path,
		    why != NULL ? why : psf_strerror(rv));
		rv = why == NULL && (rv == PSF_ENOENT || rv == PSF_ENOMEM) ? rv : PSF_ECONFIG;
		report(&c, rv, errbuf, errlen);
		return rv;
	}
	rv = psf_config_parse_ex(path, text, len, overrides, n_overrides, errbuf, errlen, out);
	free(text);
	return rv;
}

/* ---- the rest of the public API ---- */

void
psf_config_free(psf_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		free(cfg->nodes[i].id);
		free(cfg->nodes[i].listen);
		free(cfg->nodes[i].advertise);
		free(cfg->nodes[i].metrics);
		free(cfg->nodes[i].data_dir);
	}
	free(cfg->nodes);
	free(cfg->features);
	free(cfg->data.path);
	free(cfg->data.train_end);
	free(cfg->inference.interval_scale);
	free(cfg->security.token_file);
	free(cfg->security.token_env);
	free(cfg->security.tls_cert);
	free(cfg->security.tls_key);
	free(cfg->security.tls_ca);
	free(cfg->security.tls_server_name);
	free(cfg->path);
	free(cfg->name);
	free(cfg->run_dir);
	free(cfg->log_level);
	free(cfg);
}

uint64_t
psf_model_cfg_dense_floats(const psf_model_cfg *cfg, uint32_t n_features)
{
	/* Each layer: out x in weights and out biases; the output layer has out = 1.
	 * Widths are at most 2^20 each (PSF_MODEL_MAX_WIDTH is checked first, but
	 * hidden sizes here may be larger): each term fits 64 bits, the sum of at
	 * most 9 such terms may not, hence the saturation. */
	uint64_t in = (uint64_t)n_features + cfg->embedding_dim, total = 0;
	uint32_t n_hidden = psf_model_kind_has_hidden(cfg->kind) ? cfg->n_hidden : 0;
	/* gru: 3 gates, lstm: 4; each with input weights, recurrent weights, bias. */
	uint64_t gates = cfg->kind == PSF_MODEL_GRU ? 3 : cfg->kind == PSF_MODEL_LSTM ? 4 : 0;

	for (uint32_t i = 0; i < n_hidden && i < PSF_ARRAY_LEN(cfg->hidden); i++) {
		uint64_t h = cfg->hidden[i];
		uint64_t add = gates == 0 ? in * h + h : gates * h * (in + h + 1);
		total = total > UINT64_MAX - add ? UINT64_MAX : total + add;
		in = cfg->hidden[i];
	}
	return total > UINT64_MAX - (in + 1) ? UINT64_MAX : total + in + 1;
}

const char *
psf_node_dial_url(const psf_node_cfg *node)
{
	return node->advertise != NULL ? node->advertise : node->listen;
}

const psf_node_cfg *
psf_config_find_node(const psf_config *cfg, const char *id)
{
	for (size_t i = 0; cfg != NULL && id != NULL && i < cfg->n_nodes; i++)
		if (strcmp(cfg->nodes[i].id, id) == 0)
			return &cfg->nodes[i];
	return NULL;
}

const psf_node_cfg *
psf_config_role_node(const psf_config *cfg, psf_role role, size_t index)
{
	size_t first = 0, count;

	if (cfg == NULL || (unsigned)role > PSF_ROLE_GATEWAY)
		return NULL;
	const size_t counts[] = {cfg->n_ps, cfg->n_trainers, cfg->n_inferers, cfg->n_gateways};
	for (unsigned r = 0; r < (unsigned)role; r++)
		first += counts[r];
	count = counts[role];
	return index < count ? &cfg->nodes[first + index] : NULL;
}

size_t
psf_config_ps_shard(const psf_config *cfg, size_t ps_index)
{
	return cfg->n_shards > 0 ? ps_index % cfg->n_shards : 0;
}

const psf_node_cfg *
psf_config_shard_replica(const psf_config *cfg, size_t shard, size_t r)
{
	if (cfg == NULL || shard >= cfg->n_shards || r >= cfg->replication)
		return NULL;
	return psf_config_role_node(cfg, PSF_ROLE_PS, shard + r * cfg->n_shards);
}

size_t
psf_config_shard_urls(const psf_config *cfg, size_t shard, const char **urls, size_t max)
{
	size_t n = 0;

	if (cfg == NULL || shard >= cfg->n_shards || max < cfg->replication)
		return 0;
	for (size_t r = 0; r < cfg->replication; r++)
		urls[n++] = psf_node_dial_url(psf_config_shard_replica(cfg, shard, r));
	return n;
}

static void fp_add(XXH3_state_t *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
fp_add(XXH3_state_t *st, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)XXH3_64bits_update(st, buf,
		    (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* The canonical description, one "key=value" per line; version-tagged so a change
 * of this format changes every fingerprint rather than colliding silently. */
void
psf_config_fingerprint(const psf_config *cfg, char *buf, size_t len)
{
	XXH3_state_t st;
	const psf_model_cfg *m = &cfg->model;

	(void)XXH3_64bits_reset(&st);
	fp_add(&st, "psfleet-fingerprint-v1\nfeatures=");
	for (size_t i = 0; i < cfg->n_features; i++)
		fp_add(&st, "%s%s", i > 0 ? "," : "", cfg->features[i].name);
	fp_add(&st, "\ntarget=%s\nmodel.kind=%s\nmodel.hidden=", psf_target_name(cfg->target),
	    psf_model_kind_name(m->kind));
	for (uint32_t i = 0; psf_model_kind_has_hidden(m->kind) && i < m->n_hidden; i++)
		fp_add(&st, "%s%u", i > 0 ? "," : "", m->hidden[i]);
	if (psf_model_kind_is_recurrent(m->kind)) /* absent for the others: their digest stays */
		fp_add(&st, "\nmodel.window=%u", m->window);
	fp_add(&st,
	    "\nmodel.embedding_dim=%u\nmodel.symbol_bias=%d\nmodel.l2=%.17g\n"
	    "model.init_scale=%.17g\nmodel.chunk_floats=%u\nps=",
	    m->embedding_dim, m->symbol_bias, m->l2, m->init_scale, m->chunk_floats);
	for (size_t i = 0; i < cfg->n_shards; i++) /* a replicated fleet maps keys as its
	                                             * first n_shards nodes would */
		fp_add(&st, "%s%s", i > 0 ? "," : "", cfg->nodes[i].id);
	fp_add(&st, "\nseed=%llu\n", (unsigned long long)cfg->seed);
	if (buf != NULL && len > 0)
		snprintf(buf, len, "%016llx", (unsigned long long)XXH3_64bits_digest(&st));
}

void
psf_config_log(const psf_config *cfg)
{
	char fp[17];

	if (cfg == NULL || !psf_log_enabled(PSF_LOG_INFO))
		return;
	psf_config_fingerprint(cfg, fp, sizeof(fp));
	psf_log_info("config",
	    "loaded %s name=%s ps=%zu replication=%u trainers=%zu inferers=%zu gateways=%zu "
	    "mode=%s model=%s optimizer=%s lr=%g epochs=%u batch_size=%u features=%zu "
	    "target=%s data=%s fingerprint=%s",
	    cfg->path, cfg->name, cfg->n_ps, cfg->replication, cfg->n_trainers, cfg->n_inferers,
	    cfg->n_gateways, psf_consistency_name(cfg->consistency.mode),
	    psf_model_kind_name(cfg->model.kind), psf_optim_kind_name(cfg->optimizer.kind),
	    cfg->optimizer.learning_rate, cfg->training.epochs, cfg->training.batch_size,
	    cfg->n_features, psf_target_name(cfg->target), cfg->data.path, fp);
}

int
psf_config_interval_by_price(const psf_config *cfg)
{
	const char *s = cfg->inference.interval_scale;

	return cfg->target == PSF_TARGET_NEXT_CLOSE && (s == NULL || strcmp(s, "price") == 0);
}
