/* config.c -- fleet YAML -> psf_config.
 *
 * The schema is one set of tables (key, type, offset, range, message), walked over
 * libyaml's document tree. libyaml rather than libcyaml: libcyaml 1.3.1 reports line
 * numbers only inside its log text, and the cross-field checks (duplicate ids, port
 * clashes, shard coverage) need the line of any node after loading. The document
 * stays alive until validation ends so every message can name its line.
 *
 * Order: defaults -> parse (types, ranges, unknown/duplicate keys) -> finish
 * (nodes ordered by role, derived defaults) -> validate (cross-field checks). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: no allocation */
#include <xxhash.h>
#include <yaml.h>

#include "log.h"
#include "util.h"

enum {
	MAX_FILE_BYTES = 1 << 20,
	MAX_NODES = 1024,
	MAX_FEATURES = 256,
	MAX_WINDOW = 10000,
	MAX_ID_LEN = 64,
	MSG_LEN = 1024,
	MAX_OVERRIDE_DEPTH = 32,
};

/* Nodes an override puts into the document carry this mark (plus the override's
 * index) as their line, so any message about them names the override instead. */
#define OVERRIDE_MARK (SIZE_MAX / 4)

_Static_assert(sizeof(psf_consistency) == sizeof(int), "enums are stored as int");

typedef struct ctx ctx;
typedef struct field field;
typedef psf_err (*parse_fn)(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val,
    void *base);

typedef enum ftype { T_U32, T_U64, T_F64, T_BOOL, T_STR, T_ENUM, T_MAP, T_FN } ftype;

typedef struct table {
	const char *name; /* as in messages ("optimizer"); NULL = top level */
	const field *fields;
	size_t n;
} table;

/* One key of a mapping. Integers are inclusive [imin, imax] (imax 0 = the type's
 * max); doubles [dmin, dmax] with open_lo/open_hi excluding an end. */
struct field {
	const char *key;
	ftype type;
	size_t off;               /* into the struct the table describes */
	const char *must;         /* completes "'key' must be ..." (numbers, strings) */
	uint64_t imin, imax;
	double dmin, dmax;
	int open_lo, open_hi;
	const char *const *names; /* T_ENUM, T_STR: allowed spellings, NULL-terminated */
	const table *sub;         /* T_MAP */
	parse_fn fn;              /* T_FN */
	int aux;                  /* T_FN: the role of a node list */
};

struct ctx {
	const char *path;     /* file name used in messages */
	yaml_document_t *doc;
	psf_config *cfg;
	int *node_map;        /* yaml node of each cfg->nodes[i], parallel array */
	size_t cap_nodes;
	int gen_seed_default; /* data.generate has no seed: use the fleet seed */
	const char *const *overrides; /* "key=value" strings applied to the document */
	size_t n_overrides;
	char msg[MSG_LEN];
};

static const char *const role_names[] = {"ps", "trainer", "inferer", "gateway", NULL};
static const char *const cons_names[] = {"sync", "async", "ssp", NULL};
static const char *const dur_names[] = {"interval", "every-commit", "none", NULL};
static const char *const model_names[] = {"linear", "logistic", "mlp", NULL};
static const char *const optim_names[] = {"sgd", "momentum", "adam", "adagrad", NULL};
static const char *const sched_names[] = {"constant", "step", "cosine", NULL};
static const char *const target_names[] = {"next_close", "next_return", "next_direction",
    NULL};
static const char *const shard_by_names[] = {"hash", "rows", NULL};
static const char *const bad_rows_names[] = {"fail", "skip", NULL};
static const char *const route_names[] = {"symbol", "round_robin", NULL};
static const char *const level_names[] = {"err", "warn", "info", "debug", NULL};

/* ---- messages and yaml helpers ---- */

static psf_err
fail(ctx *c, size_t line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static psf_err
fail(ctx *c, size_t line, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > OVERRIDE_MARK && line - 1 - OVERRIDE_MARK < c->n_overrides)
		snprintf(c->msg, sizeof(c->msg), "%.200s: override '%.200s': %s", c->path,
		    c->overrides[line - 1 - OVERRIDE_MARK], msg);
	else
		snprintf(c->msg, sizeof(c->msg), "%.200s:%zu: %s", c->path, line, msg);
	return PSF_ECONFIG;
}

static psf_err
oom(ctx *c)
{
	snprintf(c->msg, sizeof(c->msg), "%.200s: out of memory", c->path);
	return PSF_ENOMEM;
}

static size_t
line(const yaml_node_t *n)
{
	return n->start_mark.line + 1;
}

static yaml_node_t *
node_at(ctx *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

/* scalar returns a scalar's text, or NULL for collections and text with NULs. */
static const char *
scalar(const yaml_node_t *n)
{
	const char *s;

	if (n == NULL || n->type != YAML_SCALAR_NODE)
		return NULL;
	s = (const char *)n->data.scalar.value;
	return strlen(s) == n->data.scalar.length ? s : NULL;
}

static const char *
plain(const yaml_node_t *n)
{
	return n != NULL && n->type == YAML_SCALAR_NODE &&
	        n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
	    ? scalar(n)
	    : NULL;
}

static int
is_null(const yaml_node_t *n)
{
	const char *s = plain(n);

	return s != NULL && (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	                        strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0);
}

/* map_key finds key in a mapping node; returns its key node or NULL. */
static yaml_node_t *
map_key(ctx *c, yaml_node_t *map, const char *key, yaml_node_t **val)
{
	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(c, p->key);
		const char *s = scalar(k);

		if (s != NULL && strcmp(s, key) == 0) {
			if (val != NULL)
				*val = node_at(c, p->value);
			return k;
		}
	}
	return NULL;
}

/* line_of returns the line of sect.key, else of sect, else 1 (for cross-field
 * messages about keys that may be absent). key may be NULL. */
static size_t
line_of(ctx *c, const char *sect, const char *key)
{
	yaml_node_t *val = NULL, *k, *kk;

	k = map_key(c, yaml_document_get_root_node(c->doc), sect, &val);
	if (k == NULL)
		return 1;
	if (key != NULL && (kk = map_key(c, val, key, NULL)) != NULL)
		return line(kk);
	return line(k);
}

/* node_line returns the line of a node's key, else of the node's entry. */
static size_t
node_line(ctx *c, size_t i, const char *key)
{
	yaml_node_t *map = node_at(c, c->node_map[i]);
	yaml_node_t *k = map_key(c, map, key, NULL);

	return k != NULL ? line(k) : line(map);
}

static const char *
must_text(const field *f, char *buf, size_t len)
{
	size_t used;

	if (f->names == NULL)
		return f->must;
	used = (size_t)snprintf(buf, len, "one of");
	for (size_t i = 0; f->names[i] != NULL && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s %s", i > 0 ? "," : "",
		    f->names[i]);
	return buf;
}

static psf_err
bad_value(ctx *c, const field *f, yaml_node_t *key)
{
	char buf[160];

	return fail(c, line(key), "'%s' must be %s", f->key, must_text(f, buf, sizeof(buf)));
}

static int
name_index(const char *const *names, const char *s)
{
	for (int i = 0; s != NULL && names[i] != NULL; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

/* ---- scalar fields ---- */

static int
parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL)
		return -1;
	if (*s == '+')
		s++;
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static psf_err
set_int(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *p)
{
	uint64_t v, hi = f->imax;

	if (hi == 0)
		hi = f->type == T_U32 ? UINT32_MAX : UINT64_MAX;
	if (parse_u64(plain(val), &v) != 0 || v < f->imin || v > hi)
		return bad_value(c, f, key);
	if (f->type == T_U32)
		*(uint32_t *)p = (uint32_t)v;
	else
		*(uint64_t *)p = v;
	return PSF_OK;
}

static psf_err
set_double(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, double *p)
{
	const char *s = plain(val);
	char *end;
	double v;

	if (s == NULL || *s == '\0')
		return bad_value(c, f, key);
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0' || errno != 0 || !isfinite(v) || v < f->dmin || v > f->dmax ||
	    (f->open_lo && v == f->dmin) || (f->open_hi && v == f->dmax))
		return bad_value(c, f, key);
	*p = v;
	return PSF_OK;
}

static psf_err
set_bool(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, int *p)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	const char *s = plain(val);

	for (size_t i = 0; s != NULL && i < PSF_ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*p = strcasecmp(s, yes[i]) == 0;
			return PSF_OK;
		}
	}
	return bad_value(c, f, key);
}

static psf_err
set_str(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, char **p)
{
	const char *s = scalar(val);

	if (is_null(val))
		return PSF_OK; /* explicit null: keep the default */
	if (s == NULL || *s == '\0' || (f->names != NULL && name_index(f->names, s) < 0))
		return bad_value(c, f, key);
	free(*p);
	if ((*p = strdup(s)) == NULL)
		return oom(c);
	return PSF_OK;
}

static psf_err parse_map(ctx *c, yaml_node_t *map, const table *t, void *base);

static psf_err
set_field(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base)
{
	char *p = (char *)base + f->off;
	int idx;

	switch (f->type) {
	case T_U32:
	case T_U64:
		return set_int(c, f, key, val, p);
	case T_F64:
		return set_double(c, f, key, val, (double *)p);
	case T_BOOL:
		return set_bool(c, f, key, val, (int *)p);
	case T_STR:
		return set_str(c, f, key, val, (char **)p);
	case T_ENUM:
		if ((idx = name_index(f->names, scalar(val))) < 0)
			return bad_value(c, f, key);
		memcpy(p, &idx, sizeof(idx));
		return PSF_OK;
	case T_MAP:
		if (is_null(val))
			return PSF_OK; /* an empty section: all defaults */
		if (val->type != YAML_MAPPING_NODE)
			return fail(c, line(key), "'%s' must be a mapping", f->key);
		return parse_map(c, val, f->sub, p);
	case T_FN:
		return f->fn(c, f, key, val, base);
	}
	return PSF_EINTERNAL;
}

/* parse_map applies every key of a mapping through table t onto base, rejecting
 * unknown and repeated keys. */
static psf_err
parse_map(ctx *c, yaml_node_t *map, const table *t, void *base)
{
	uint64_t seen = 0;

	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(c, p->key);
		const char *s = scalar(k);
		size_t i;
		psf_err rv;

		if (s == NULL)
			return fail(c, line(k), "keys must be strings%s%s",
			    t->name != NULL ? " in " : "", t->name != NULL ? t->name : "");
		for (i = 0; i < t->n && strcmp(t->fields[i].key, s) != 0; i++)
			;
		if (i == t->n)
			return fail(c, line(k), "unknown key '%.64s' %s%s", s,
			    t->name != NULL ? "in " : "at top level",
			    t->name != NULL ? t->name : "");
		if (seen & ((uint64_t)1 << i))
			return fail(c, line(k), "duplicate key '%s'%s%s", s,
			    t->name != NULL ? " in " : "", t->name != NULL ? t->name : "");
		seen |= (uint64_t)1 << i;
		if ((rv = set_field(c, &t->fields[i], k, node_at(c, p->value), base)) != PSF_OK)
			return rv;
	}
	return PSF_OK;
}

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
		if (strlen(feat_specs[i].name) == nlen && strncmp(feat_specs[i].name, spec, nlen) == 0)
			fs = &feat_specs[i];
	if (fs == NULL) {
		snprintf(why, whylen, "unknown feature '%.64s' (known: lag:N, return:N, sma:N, "
		    "std:N, ratio_sma:N, ewm:N, range, dow, volume:N)", spec != NULL ? spec : "");
		return PSF_EINVAL;
	}
	if (!fs->has_window && colon != NULL) {
		snprintf(why, whylen, "feature '%.64s' takes no window: write '%s'", spec, fs->name);
		return PSF_EINVAL;
	}
	if (fs->has_window && (colon == NULL || strlen(colon + 1) > 6 ||
	                          colon[1] == '+' || parse_u64(colon + 1, &w) != 0 ||
	                          w < fs->min || w > MAX_WINDOW)) {
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
		return fail(c, line(key), "'features' must be a list of feature names like \"lag:0\"");
	n = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
	if (n == 0 || n > MAX_FEATURES)
		return fail(c, line(key), "'features' must list 1 to %d features", MAX_FEATURES);
	if ((cfg->features = calloc(n, sizeof(*cfg->features))) == NULL)
		return oom(c);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = node_at(c, val->data.sequence.items.start[i]);
		psf_feature_cfg *fc = &cfg->features[i];

		if (scalar(item) == NULL)
			return fail(c, line(item), "each feature must be a name like \"sma:10\"");
		if (feature_parse(scalar(item), fc, why, sizeof(why)) != PSF_OK)
			return fail(c, line(item), "%s", why);
		for (size_t j = 0; j < i; j++)
			if (strcmp(cfg->features[j].name, fc->name) == 0)
				return fail(c, line(item), "duplicate feature '%s'", fc->name);
		cfg->n_features = i + 1;
	}
	return PSF_OK;
}

static psf_err
fn_hidden(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base)
{
	psf_model_cfg *m = base;
	size_t n;

	if (is_null(val))
		return PSF_OK;
	if (val->type != YAML_SEQUENCE_NODE)
		return fail(c, line(key), "'hidden' must be a list of layer sizes like [64, 32]");
	n = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
	if (n == 0 || n > PSF_ARRAY_LEN(m->hidden))
		return fail(c, line(key), "'hidden' must list 1 to %zu layer sizes",
		    PSF_ARRAY_LEN(m->hidden));
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = node_at(c, val->data.sequence.items.start[i]);
		uint64_t v;

		if (parse_u64(plain(item), &v) != 0 || v < 1 || v > 65536)
			return fail(c, line(item), "each 'hidden' layer size must be an integer "
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
	const char *s = scalar(val);

	if (!is_null(val) && (s == NULL || !is_dns_name(s)))
		return bad_value(c, f, key);
	return set_str(c, f, key, val, (char **)((char *)base + f->off));
}

static psf_err
fn_generate(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base)
{
	psf_data_cfg *d = base;

	d->has_generate = 1;
	c->gen_seed_default = 1;
	if (is_null(val))
		return PSF_OK; /* "generate:" alone: generate with the defaults */
	if (val->type != YAML_MAPPING_NODE)
		return fail(c, line(key), "'generate' must be a mapping");
	c->gen_seed_default = map_key(c, val, "seed", NULL) == NULL;
	return parse_map(c, val, f->sub, &d->generate);
}

/* ---- nodes ---- */

static psf_err
append_node(ctx *c, psf_role role, yaml_node_t *map, psf_node_cfg **out)
{
	psf_config *cfg = c->cfg;

	if (cfg->n_nodes == MAX_NODES)
		return fail(c, line(map), "too many nodes (at most %d)", MAX_NODES);
	if (cfg->n_nodes == c->cap_nodes) {
		size_t cap = c->cap_nodes == 0 ? 8 : c->cap_nodes * 2;
		psf_node_cfg *nodes = realloc(cfg->nodes, cap * sizeof(*nodes));
		int *map_ids;

		if (nodes == NULL)
			return oom(c);
		cfg->nodes = nodes;
		if ((map_ids = realloc(c->node_map, cap * sizeof(*map_ids))) == NULL)
			return oom(c);
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
		return fail(c, line(item), "each entry of %s must be a mapping with an 'id'",
		    t->name);
	if ((rv = append_node(c, role, item, &node)) != PSF_OK ||
	    (rv = parse_map(c, item, t, node)) != PSF_OK)
		return rv;
	if (node->id == NULL)
		return fail(c, line(item), "node in %s is missing 'id'", t->name);
	return PSF_OK;
}

static psf_err
fn_nodes(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base)
{
	psf_role role = (psf_role)f->aux;
	psf_err rv;

	if (is_null(val))
		return PSF_OK;
	if (role == PSF_ROLE_GATEWAY) {
		if (val->type != YAML_MAPPING_NODE)
			return fail(c, line(key), "'gateway' must be a mapping (one gateway at most)");
		return parse_node(c, role, val);
	}
	if (val->type != YAML_SEQUENCE_NODE)
		return fail(c, line(key), "'%s' must be a list of nodes", f->key);
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
	{"metrics", T_STR, offsetof(psf_node_cfg, metrics), .must = "host:port"},
	{"data_dir", T_STR, offsetof(psf_node_cfg, data_dir), .must = "a directory path"},
};
static const field node_fields_trainer[] = {
	{"id", T_STR, offsetof(psf_node_cfg, id), .must = "a node id"},
	{"metrics", T_STR, offsetof(psf_node_cfg, metrics), .must = "host:port"},
	{"data_dir", T_STR, offsetof(psf_node_cfg, data_dir), .must = "a directory path"},
};
static const field node_fields_inferer[] = {
	{"id", T_STR, offsetof(psf_node_cfg, id), .must = "a node id"},
	{"listen", T_STR, offsetof(psf_node_cfg, listen), .must = "an NNG URL"},
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
	{"symbols", T_U32, offsetof(psf_datagen_cfg, symbols), .must = "an integer in [1, 1000000]",
	    .imin = 1, .imax = 1000000},
	{"days", T_U32, offsetof(psf_datagen_cfg, days), .must = "an integer in [2, 100000]",
	    .imin = 2, .imax = 100000},
	{"seed", T_U64, offsetof(psf_datagen_cfg, seed), .must = "an integer >= 0"},
	{"skew", T_BOOL, offsetof(psf_datagen_cfg, skew), .must = "true or false"},
};
static const table gen_table = {"data.generate", gen_fields, PSF_ARRAY_LEN(gen_fields)};

static const field data_fields[] = {
	{"path", T_STR, offsetof(psf_data_cfg, path), .must = "a file or directory path"},
	{"generate", T_FN, 0, .sub = &gen_table, .fn = fn_generate},
	{"bad_rows", T_ENUM, offsetof(psf_data_cfg, bad_rows), .names = bad_rows_names},
	{"test_fraction", T_F64, offsetof(psf_data_cfg, test_fraction), .must = "a number in (0, 1)",
	    .dmin = 0, .dmax = 1, .open_lo = 1, .open_hi = 1},
	{"shard_by", T_ENUM, offsetof(psf_data_cfg, shard_by), .names = shard_by_names},
};
static const table data_table = {"data", data_fields, PSF_ARRAY_LEN(data_fields)};

static const field model_fields[] = {
	{"kind", T_ENUM, offsetof(psf_model_cfg, kind), .names = model_names},
	{"hidden", T_FN, 0, .fn = fn_hidden},
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
	{"kind", T_ENUM, offsetof(psf_optim_cfg, kind), .names = optim_names},
	{"learning_rate", T_F64, offsetof(psf_optim_cfg, learning_rate), .must = "a number > 0",
	    .dmax = INFINITY, .open_lo = 1},
	{"momentum", T_F64, offsetof(psf_optim_cfg, momentum), .must = "a number in [0, 1)",
	    .dmax = 1, .open_hi = 1},
	{"beta1", T_F64, offsetof(psf_optim_cfg, beta1), .must = "a number in [0, 1)", .dmax = 1,
	    .open_hi = 1},
	{"beta2", T_F64, offsetof(psf_optim_cfg, beta2), .must = "a number in [0, 1)", .dmax = 1,
	    .open_hi = 1},
	{"epsilon", T_F64, offsetof(psf_optim_cfg, epsilon), .must = "a number > 0", .dmax = INFINITY,
	    .open_lo = 1},
	{"schedule", T_ENUM, offsetof(psf_optim_cfg, schedule), .names = sched_names},
	{"step_size", T_U64, offsetof(psf_optim_cfg, step_size), .must = "an integer >= 1", .imin = 1},
	{"gamma", T_F64, offsetof(psf_optim_cfg, gamma), .must = "a number in (0, 1]", .dmax = 1,
	    .open_lo = 1},
	{"total_steps", T_U64, offsetof(psf_optim_cfg, total_steps), .must = "an integer >= 0"},
	{"clip_norm", T_F64, offsetof(psf_optim_cfg, clip_norm), .must = "a number >= 0",
	    .dmax = INFINITY},
	{"skip_nonfinite", T_BOOL, offsetof(psf_optim_cfg, skip_nonfinite), .must = "true or false"},
};
static const table optim_table = {"optimizer", optim_fields, PSF_ARRAY_LEN(optim_fields)};

static const field training_fields[] = {
	{"epochs", T_U32, offsetof(psf_training_cfg, epochs), .must = "an integer >= 1", .imin = 1},
	{"batch_size", T_U32, offsetof(psf_training_cfg, batch_size),
	    .must = "an integer in [1, 1048576]", .imin = 1, .imax = 1048576},
	{"max_steps", T_U64, offsetof(psf_training_cfg, max_steps), .must = "an integer >= 0"},
	{"shuffle", T_BOOL, offsetof(psf_training_cfg, shuffle), .must = "true or false"},
	{"target_loss", T_F64, offsetof(psf_training_cfg, target_loss), .must = "a number >= 0",
	    .dmax = INFINITY},
};
static const table training_table = {"training", training_fields,
    PSF_ARRAY_LEN(training_fields)};

static const field cons_fields[] = {
	{"mode", T_ENUM, offsetof(psf_consistency_cfg, mode), .names = cons_names},
	{"staleness", T_U32, offsetof(psf_consistency_cfg, staleness), .must = "an integer >= 0"},
	{"straggler_timeout_ms", T_U32, offsetof(psf_consistency_cfg, straggler_timeout_ms),
	    .must = "an integer >= 1", .imin = 1},
	{"heartbeat_ms", T_U32, offsetof(psf_consistency_cfg, heartbeat_ms), .must = "an integer >= 1",
	    .imin = 1},
};
static const table cons_table = {"consistency", cons_fields, PSF_ARRAY_LEN(cons_fields)};

static const field dur_fields[] = {
	{"mode", T_ENUM, offsetof(psf_durability_cfg, mode), .names = dur_names},
	{"interval_ms", T_U32, offsetof(psf_durability_cfg, interval_ms), .must = "an integer >= 1",
	    .imin = 1},
	{"map_size", T_U64, offsetof(psf_durability_cfg, map_size),
	    .must = "an integer >= 1048576 (bytes)", .imin = 1048576},
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
	{"max_connections", T_U32, offsetof(psf_limits_cfg, max_connections), .must = "an integer >= 0"},
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
	    "or host:port)", .fn = fn_server_name},
};
static const table sec_table = {"security", sec_fields, PSF_ARRAY_LEN(sec_fields)};

static const field inf_fields[] = {
	{"refresh_ms", T_U32, offsetof(psf_inference_cfg, refresh_ms), .must = "an integer >= 1",
	    .imin = 1},
	{"history_days", T_U32, offsetof(psf_inference_cfg, history_days),
	    .must = "an integer in [1, 100000]", .imin = 1, .imax = 100000},
	{"shards", T_U32, offsetof(psf_inference_cfg, shards), .must = "an integer in [1, 1024]",
	    .imin = 1, .imax = 1024},
};
static const table inf_table = {"inference", inf_fields, PSF_ARRAY_LEN(inf_fields)};

static const field gw_fields[] = {
	{"route", T_ENUM, offsetof(psf_gateway_cfg, route), .names = route_names},
	{"health_interval_ms", T_U32, offsetof(psf_gateway_cfg, health_interval_ms),
	    .must = "an integer >= 1", .imin = 1},
};
static const table gw_table = {"gateway_options", gw_fields, PSF_ARRAY_LEN(gw_fields)};

static const field top_fields[] = {
	{"name", T_STR, offsetof(psf_config, name), .must = "a fleet name"},
	{"seed", T_U64, offsetof(psf_config, seed), .must = "an integer >= 0"},
	{"run_dir", T_STR, offsetof(psf_config, run_dir), .must = "a directory path"},
	{"log_level", T_STR, offsetof(psf_config, log_level), .names = level_names},
	{"nodes", T_MAP, 0, .sub = &nodes_table},
	{"data", T_MAP, offsetof(psf_config, data), .sub = &data_table},
	{"features", T_FN, 0, .fn = fn_features},
	{"target", T_ENUM, offsetof(psf_config, target), .names = target_names},
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
static const table top_table = {NULL, top_fields, PSF_ARRAY_LEN(top_fields)};

/* ---- defaults and derived values ---- */

static void
set_defaults(psf_config *cfg)
{
	cfg->seed = 42;
	cfg->data.generate.symbols = 100;
	cfg->data.generate.days = 500;
	cfg->data.test_fraction = 0.2;
	cfg->target = PSF_TARGET_NEXT_CLOSE;
	cfg->model.hidden[0] = 32;
	cfg->model.n_hidden = 1;
	cfg->model.init_scale = 1.0;
	cfg->model.chunk_floats = 65536;
	cfg->optimizer = (psf_optim_cfg){.kind = PSF_OPTIM_ADAM, .learning_rate = 0.01,
	    .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-8,
	    .step_size = 1000, .gamma = 0.5};
	cfg->training = (psf_training_cfg){.epochs = 5, .batch_size = 256, .shuffle = 1};
	cfg->consistency = (psf_consistency_cfg){.mode = PSF_CONS_SYNC, .staleness = 2,
	    .straggler_timeout_ms = 10000, .heartbeat_ms = 1000};
	cfg->durability = (psf_durability_cfg){.mode = PSF_DUR_INTERVAL, .interval_ms = 1000,
	    .map_size = (uint64_t)64 << 20};
	cfg->limits = (psf_limits_cfg){.max_message_bytes = (uint64_t)80 << 20,
	    .max_keys_per_request = 1000000, .request_timeout_ms = 30000, .rpc_workers = 64};
	cfg->inference = (psf_inference_cfg){.refresh_ms = 1000, .history_days = 64,
	    .shards = 1};
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
}

static psf_err
finish(ctx *c)
{
	psf_config *cfg = c->cfg;

	sort_nodes(c);
	if ((cfg->name == NULL && (cfg->name = strdup("psfleet")) == NULL) ||
	    (cfg->log_level == NULL && (cfg->log_level = strdup("info")) == NULL) ||
	    (cfg->run_dir == NULL && (cfg->run_dir = join3("runs/", cfg->name, "")) == NULL))
		return oom(c);
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		psf_node_cfg *n = &cfg->nodes[i];

		if (n->data_dir == NULL && (n->data_dir = join3(cfg->run_dir, "/", n->id)) == NULL)
			return oom(c);
	}
	if (c->gen_seed_default)
		cfg->data.generate.seed = cfg->seed;
	if (cfg->data.has_generate && cfg->data.path == NULL &&
	    (cfg->data.path = join3(cfg->run_dir, "/", "data.csv")) == NULL)
		return oom(c);
	return PSF_OK;
}

/* ---- cross-field validation ---- */

/* An endpoint a node binds: a TCP host:port, or a named one (ipc, inproc). */
typedef struct endpoint {
	int is_tcp;
	char host[128]; /* normalised: "*" = any address, localhost = 127.0.0.1 */
	unsigned port;  /* 0 = the OS picks one: never clashes */
	const char *name; /* non-TCP: the whole URL */
} endpoint;

static int
parse_hostport(const char *s, size_t len, endpoint *ep)
{
	const char *colon = NULL;
	size_t hlen;
	char port[8];
	uint64_t v;

	for (size_t i = 0; i < len; i++)
		if (s[i] == ':')
			colon = s + i;
	hlen = colon != NULL ? (size_t)(colon - s) : 0;
	if (colon == NULL || len - hlen - 1 == 0 || len - hlen - 1 >= sizeof(port) ||
	    hlen >= sizeof(ep->host))
		return -1;
	memcpy(port, colon + 1, len - hlen - 1);
	port[len - hlen - 1] = '\0';
	if (port[0] == '+' || parse_u64(port, &v) != 0 || v > 65535)
		return -1;
	for (size_t i = 0; i < hlen; i++) {
		int bracketed = hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']';
		char ch = s[i];

		if (!(ch == '.' || ch == '-' || ch == '_' || ch == '*' ||
		        (ch >= '0' && ch <= '9') || ((ch | 32) >= 'a' && (ch | 32) <= 'z') ||
		        (bracketed && (ch == ':' || ch == '[' || ch == ']'))))
			return -1;
	}
	memcpy(ep->host, s, hlen);
	ep->host[hlen] = '\0';
	if (hlen == 0 || strcmp(ep->host, "0.0.0.0") == 0 || strcmp(ep->host, "[::]") == 0)
		strcpy(ep->host, "*");
	else if (strcmp(ep->host, "localhost") == 0)
		strcpy(ep->host, "127.0.0.1");
	ep->is_tcp = 1;
	ep->port = (unsigned)v;
	return 0;
}

/* parse_url accepts the NNG URLs psfleet listens on. */
static int
parse_url(const char *url, endpoint *ep)
{
	static const char *const tcp[] = {"tcp", "tcp4", "tcp6", "tls+tcp", "ws", "wss", NULL};
	static const char *const named[] = {"ipc", "inproc", "abstract", NULL};
	const char *sep = strstr(url, "://");
	const char *rest, *slash;
	char scheme[16];

	if (sep == NULL || (size_t)(sep - url) >= sizeof(scheme))
		return -1;
	memcpy(scheme, url, (size_t)(sep - url));
	scheme[sep - url] = '\0';
	rest = sep + 3;
	if (name_index(named, scheme) >= 0) {
		ep->is_tcp = 0;
		ep->name = url;
		return *rest != '\0' ? 0 : -1;
	}
	if (name_index(tcp, scheme) < 0)
		return -1;
	slash = strchr(rest, '/');
	return parse_hostport(rest, slash != NULL ? (size_t)(slash - rest) : strlen(rest), ep);
}

static int
endpoints_clash(const endpoint *a, const endpoint *b)
{
	if (a->is_tcp != b->is_tcp)
		return 0;
	if (!a->is_tcp)
		return strcmp(a->name, b->name) == 0;
	return a->port != 0 && a->port == b->port &&
	    (strcmp(a->host, b->host) == 0 || strcmp(a->host, "*") == 0 ||
	        strcmp(b->host, "*") == 0);
}

/* One bound address: which node, which key, and where the key is. */
typedef struct bound {
	endpoint ep;
	size_t node;
	const char *what; /* "listen" or "metrics" */
	size_t line;
} bound;

/* clash names both nodes, the one later in the file first, at its line. */
static psf_err
clash(ctx *c, const bound *a, const bound *b)
{
	char where[160];

	if (a->line > b->line) {
		const bound *t = a;

		a = b;
		b = t;
	}
	if (!b->ep.is_tcp)
		snprintf(where, sizeof(where), "%.150s", b->ep.name);
	else if (strcmp(a->ep.host, "*") == 0 || strcmp(b->ep.host, "*") == 0)
		snprintf(where, sizeof(where), "port %u", b->ep.port);
	else
		snprintf(where, sizeof(where), "%.128s:%u", b->ep.host, b->ep.port);
	return fail(c, b->line, "port clash: '%s' %s and '%s' %s both use %s",
	    c->cfg->nodes[b->node].id, b->what, c->cfg->nodes[a->node].id, a->what, where);
}

/* validate_ports checks every listen and metrics address, and that no two bind the
 * same endpoint (port 0 = chosen by the OS, never a clash). */
static psf_err
validate_ports(ctx *c)
{
	psf_config *cfg = c->cfg;
	bound *b = calloc(cfg->n_nodes * 2 + 1, sizeof(*b));
	size_t n = 0;
	psf_err rv = PSF_OK;

	if (b == NULL)
		return oom(c);
	for (size_t i = 0; i < cfg->n_nodes && rv == PSF_OK; i++) {
		const psf_node_cfg *node = &cfg->nodes[i];

		if (node->listen != NULL) {
			b[n] = (bound){.node = i, .what = "listen", .line = node_line(c, i, "listen")};
			if (parse_url(node->listen, &b[n++].ep) != 0)
				rv = fail(c, b[n - 1].line, "'listen' of node '%s' must be an NNG URL "
				    "like tcp://host:port or ipc:///path", node->id);
		}
		if (node->metrics != NULL && rv == PSF_OK) {
			b[n] = (bound){.node = i, .what = "metrics", .line = node_line(c, i, "metrics")};
			if (parse_hostport(node->metrics, strlen(node->metrics), &b[n++].ep) != 0)
				rv = fail(c, b[n - 1].line, "'metrics' of node '%s' must be host:port "
				    "with a port in [0, 65535]", node->id);
		}
	}
	for (size_t i = 0; i < n && rv == PSF_OK; i++)
		for (size_t j = 0; j < i && rv == PSF_OK; j++)
			if (endpoints_clash(&b[j].ep, &b[i].ep))
				rv = clash(c, &b[j], &b[i]);
	free(b);
	return rv;
}

static int
valid_id(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > MAX_ID_LEN || s[0] == '.')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= '0' && *s <= '9') || ((*s | 32) >= 'a' && (*s | 32) <= 'z') ||
		        *s == '.' || *s == '_' || *s == '-'))
			return 0;
	return 1;
}

static psf_err
validate_nodes(ctx *c)
{
	psf_config *cfg = c->cfg;

	if (cfg->n_ps == 0)
		return fail(c, line_of(c, "nodes", "ps"), "at least one ps node is required in nodes.ps");
	if (cfg->n_trainers == 0)
		return fail(c, line_of(c, "nodes", "trainers"),
		    "at least one trainer is required in nodes.trainers");
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const psf_node_cfg *n = &cfg->nodes[i];

		if (!valid_id(n->id))
			return fail(c, node_line(c, i, "id"), "node id '%.64s' must be 1-%d characters "
			    "of A-Z a-z 0-9 . _ - not starting with '.'", n->id, MAX_ID_LEN);
		for (size_t j = 0; j < i; j++) /* report the later one in the file */
			if (strcmp(cfg->nodes[j].id, n->id) == 0)
				return fail(c, node_line(c, node_line(c, i, "id") > node_line(c, j, "id")
				    ? i : j, "id"), "duplicate node id '%s'", n->id);
		if (n->role != PSF_ROLE_TRAINER && n->listen == NULL)
			return fail(c, node_line(c, i, "id"), "%s node '%s' needs 'listen' (an NNG URL "
			    "like tcp://127.0.0.1:7101)", psf_role_name(n->role), n->id);
		if (n->listen != NULL && cfg->security.tls_cert == NULL &&
		    (strncmp(n->listen, "tls+tcp://", 10) == 0 || strncmp(n->listen, "wss://", 6) == 0))
			return fail(c, node_line(c, i, "listen"), "node '%s' listens with TLS but "
			    "security.tls_cert and security.tls_key are not set", n->id);
	}
	return validate_ports(c);
}

static psf_err
validate_inference(ctx *c)
{
	psf_config *cfg = c->cfg;
	uint32_t shards = cfg->inference.shards;
	uint8_t covered[1024] = {0};

	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const psf_node_cfg *n = &cfg->nodes[i];

		if (n->role != PSF_ROLE_INFERER)
			continue;
		if (n->shard >= shards)
			return fail(c, node_line(c, i, "shard"), "inferer '%s' has shard %u but "
			    "inference.shards is %u (shards are 0..%u)", n->id, n->shard, shards,
			    shards - 1);
		covered[n->shard] = 1;
	}
	for (uint32_t s = 0; cfg->n_inferers > 0 && s < shards; s++)
		if (!covered[s])
			return fail(c, line_of(c, "inference", "shards"), "inference shard %u has no "
			    "inferer (every shard 0..%u needs one)", s, shards - 1);
	if (cfg->n_gateways > 0 && cfg->n_inferers == 0)
		return fail(c, node_line(c, cfg->n_nodes - 1, "id"),
		    "the gateway needs at least one inferer in nodes.inferers");
	for (size_t i = 0; i < cfg->n_features; i++)
		if (cfg->features[i].window >= cfg->inference.history_days)
			return fail(c, line_of(c, "inference", "history_days"),
			    "inference.history_days (%u) must be at least %u for feature '%s'",
			    cfg->inference.history_days, cfg->features[i].window + 1,
			    cfg->features[i].name);
	return PSF_OK;
}

static psf_err
validate_misc(ctx *c)
{
	psf_config *cfg = c->cfg;
	const psf_security_cfg *sec = &cfg->security;

	if (!valid_id(cfg->name))
		return fail(c, line_of(c, "name", NULL), "'name' must be 1-%d characters of "
		    "A-Z a-z 0-9 . _ - not starting with '.'", MAX_ID_LEN);
	if (cfg->data.path == NULL)
		return fail(c, line_of(c, "data", NULL),
		    "missing 'path' in data (required unless data.generate is set)");
	if (cfg->n_features == 0)
		return fail(c, 1, "missing 'features' (a list like [\"lag:0\", \"return:1\"])");
	if (cfg->model.kind == PSF_MODEL_LOGISTIC && cfg->target != PSF_TARGET_NEXT_DIRECTION)
		return fail(c, line_of(c, "model", "kind"),
		    "model kind 'logistic' needs target next_direction");
	if ((uint64_t)cfg->model.chunk_floats * 4 + 4096 > cfg->limits.max_message_bytes)
		return fail(c, line_of(c, "model", "chunk_floats"), "model.chunk_floats (%u) * 4 "
		    "bytes + 4096 must fit in limits.max_message_bytes (%llu)",
		    cfg->model.chunk_floats, (unsigned long long)cfg->limits.max_message_bytes);
	if (cfg->consistency.heartbeat_ms >= cfg->consistency.straggler_timeout_ms)
		return fail(c, line_of(c, "consistency", "heartbeat_ms"), "'heartbeat_ms' (%u) must "
		    "be less than straggler_timeout_ms (%u)", cfg->consistency.heartbeat_ms,
		    cfg->consistency.straggler_timeout_ms);
	if (sec->token_file != NULL && sec->token_env != NULL)
		return fail(c, line_of(c, "security", "token_env"),
		    "set only one of 'token_file' and 'token_env' in security");
	if ((sec->tls_cert == NULL) != (sec->tls_key == NULL))
		return fail(c, line_of(c, "security", sec->tls_cert != NULL ? "tls_cert" : "tls_key"),
		    "'tls_cert' and 'tls_key' must be set together in security");
	/* Without a CA the dialer verifies nothing, so a server name would be
	 * silently ignored: refuse rather than give a false sense of checking. */
	if (sec->tls_server_name != NULL && sec->tls_ca == NULL)
		return fail(c, line_of(c, "security", "tls_server_name"),
		    "'tls_server_name' needs 'tls_ca' in security: without a CA the server's "
		    "certificate, and so its name, is not verified");
	return PSF_OK;
}

/* validate holds every cross-field check; parse_map already checked each value. */
static psf_err
validate(ctx *c)
{
	psf_err rv;

	if ((rv = validate_misc(c)) != PSF_OK || (rv = validate_nodes(c)) != PSF_OK)
		return rv;
	return validate_inference(c);
}

/* ---- loading ---- */

static psf_err
yaml_error(ctx *c, const yaml_parser_t *p, const char *text, size_t len)
{
	size_t ln = p->problem_mark.line + 1, n_lines = 1;
	char ctxt[96] = "";

	if (p->error == YAML_MEMORY_ERROR)
		return oom(c);
	if (p->error == YAML_READER_ERROR) {
		ln = 1;
		for (size_t i = 0; i < p->problem_offset && i < len; i++)
			ln += text[i] == '\n';
	}
	for (size_t i = 0; i < len; i++) /* at end of input: the last line, not one past */
		n_lines += text[i] == '\n' && i + 1 < len;
	if (ln > n_lines)
		ln = n_lines;
	if (p->context != NULL)
		snprintf(ctxt, sizeof(ctxt), " (%s started on line %zu)", p->context,
		    p->context_mark.line + 1);
	return fail(c, ln, "invalid YAML: %s%s", p->problem != NULL ? p->problem : "syntax error",
	    ctxt);
}

/* load_doc parses exactly one YAML document; on success the caller deletes *doc. */
static psf_err
load_doc(ctx *c, const char *text, size_t len, yaml_document_t *doc)
{
	yaml_parser_t parser;
	yaml_document_t extra;
	yaml_node_t *root;
	psf_err rv = PSF_OK;

	if (!yaml_parser_initialize(&parser))
		return oom(c);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, doc)) { /* libyaml deleted doc */
		rv = yaml_error(c, &parser, text, len);
		yaml_parser_delete(&parser);
		return rv;
	}
	if (!yaml_parser_load(&parser, &extra)) {
		rv = yaml_error(c, &parser, text, len);
	} else {
		if ((root = yaml_document_get_root_node(&extra)) != NULL)
			rv = fail(c, line(root), "only one YAML document is allowed");
		yaml_document_delete(&extra);
	}
	if (rv == PSF_OK && (root = yaml_document_get_root_node(doc)) == NULL)
		rv = fail(c, 1, "empty config: expected a mapping of keys (name, nodes, data, ...)");
	else if (rv == PSF_OK && root->type != YAML_MAPPING_NODE)
		rv = fail(c, line(root), "the config must be a mapping of keys (name, nodes, data, ...)");
	if (rv != PSF_OK)
		yaml_document_delete(doc);
	yaml_parser_delete(&parser);
	return rv;
}

/* ---- overrides: "key.path=value" applied to the document before parsing ---- */

/* mark_node makes messages about node id name override k. */
static void
mark_node(ctx *c, int id, size_t k)
{
	node_at(c, id)->start_mark.line = OVERRIDE_MARK + k;
}

/* copy_node copies node n of src (and everything below it) into the config's
 * document, marked as override k. Returns the new node's id, or 0 when out of
 * memory or nested deeper than MAX_OVERRIDE_DEPTH. */
static int
copy_node(ctx *c, yaml_document_t *src, yaml_node_t *n, size_t k, int depth)
{
	int id = 0;

	if (depth > MAX_OVERRIDE_DEPTH)
		return 0;
	switch (n->type) {
	case YAML_SCALAR_NODE:
		id = yaml_document_add_scalar(c->doc, n->tag, n->data.scalar.value,
		    (int)n->data.scalar.length, n->data.scalar.style);
		break;
	case YAML_SEQUENCE_NODE:
		id = yaml_document_add_sequence(c->doc, n->tag, n->data.sequence.style);
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     id != 0 && it < n->data.sequence.items.top; it++) {
			int item = copy_node(c, src, yaml_document_get_node(src, *it), k, depth + 1);

			if (item == 0 || !yaml_document_append_sequence_item(c->doc, id, item))
				return 0;
		}
		break;
	case YAML_MAPPING_NODE:
		id = yaml_document_add_mapping(c->doc, n->tag, n->data.mapping.style);
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     id != 0 && p < n->data.mapping.pairs.top; p++) {
			int kid = copy_node(c, src, yaml_document_get_node(src, p->key), k, depth + 1);
			int vid = kid != 0 ? copy_node(c, src, yaml_document_get_node(src, p->value), k,
			                         depth + 1) : 0;

			if (vid == 0 || !yaml_document_append_mapping_pair(c->doc, id, kid, vid))
				return 0;
		}
		break;
	default:
		return 0;
	}
	if (id != 0)
		mark_node(c, id, k);
	return id;
}

/* override_value parses the text after '=' as one YAML value and copies it into
 * the document; *id_out gets its node. An empty value is YAML's null (the key's
 * default). */
static psf_err
override_value(ctx *c, size_t k, const char *text, int *id_out)
{
	yaml_parser_t parser;
	yaml_document_t vdoc, extra;
	yaml_node_t *root;
	int id = 0, has_extra = 0;
	psf_err rv = PSF_OK;

	if (!yaml_parser_initialize(&parser))
		return oom(c);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
	if (!yaml_parser_load(&parser, &vdoc)) {
		rv = fail(c, OVERRIDE_MARK + k + 1, "invalid YAML value: %s",
		    parser.problem != NULL ? parser.problem : "syntax error");
		yaml_parser_delete(&parser);
		return rv;
	}
	if (yaml_parser_load(&parser, &extra)) {
		has_extra = yaml_document_get_root_node(&extra) != NULL;
		yaml_document_delete(&extra);
	} else {
		has_extra = 1;
	}
	if (has_extra) {
		rv = fail(c, OVERRIDE_MARK + k + 1, "the value must be one YAML value");
	} else if ((root = yaml_document_get_root_node(&vdoc)) == NULL) {
		if ((id = yaml_document_add_scalar(c->doc, NULL, (yaml_char_t *)"", 0,
		         YAML_PLAIN_SCALAR_STYLE)) == 0)
			rv = oom(c);
		else
			mark_node(c, id, k);
	} else if ((id = copy_node(c, &vdoc, root, k, 0)) == 0) {
		rv = fail(c, OVERRIDE_MARK + k + 1, "the value is nested too deeply (or out of memory)");
	}
	yaml_document_delete(&vdoc);
	yaml_parser_delete(&parser);
	if (rv == PSF_OK)
		*id_out = id;
	return rv;
}

/* seq_item finds the item of sequence seq that comp names: a 0-based index, or
 * the id of a node entry ("trainer-1"). Returns a pointer to the item slot or NULL. */
static yaml_node_item_t *
seq_item(ctx *c, int seq, const char *comp)
{
	yaml_node_t *n = node_at(c, seq);
	size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	uint64_t idx;
	yaml_node_t *v;

	if (parse_u64(comp, &idx) == 0)
		return idx < len ? &n->data.sequence.items.start[idx] : NULL;
	for (size_t i = 0; i < len; i++) {
		v = NULL;
		if (map_key(c, node_at(c, n->data.sequence.items.start[i]), "id", &v) != NULL &&
		    scalar(v) != NULL && strcmp(scalar(v), comp) == 0)
			return &n->data.sequence.items.start[i];
	}
	return NULL;
}

/* map_pair finds key in mapping map; returns the pair's index or -1. */
static long
map_pair(ctx *c, int map, const char *key)
{
	yaml_node_t *n = node_at(c, map);

	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		const char *s = scalar(node_at(c, p->key));

		if (s != NULL && strcmp(s, key) == 0)
			return (long)(p - n->data.mapping.pairs.start);
	}
	return -1;
}

/* descend steps from node cur into its child comp (parent is the dotted path
 * of cur, for messages). A missing key, or one whose value is null, gets a new
 * mapping. With value != 0 (the last component) the child is replaced by node
 * value instead. *child_out gets the child's id. Node pointers are re-read after
 * each addition: adding a node may move the document's node array. */
static psf_err
descend(ctx *c, size_t k, int cur, const char *comp, const char *parent, int value,
    int *child_out)
{
	yaml_node_t *n = node_at(c, cur);
	size_t ln = OVERRIDE_MARK + k + 1;
	yaml_node_item_t *item;
	long i;
	int kid;

	if (n->type == YAML_SEQUENCE_NODE) {
		if ((item = seq_item(c, cur, comp)) == NULL)
			return fail(c, ln, "'%s' has no entry '%s' (use a 0-based index or a node id)",
			    parent, comp);
		if (value != 0)
			*item = value;
		*child_out = *item;
		return PSF_OK;
	}
	if (n->type != YAML_MAPPING_NODE)
		return fail(c, ln, "'%s' is not a mapping", parent);
	if ((i = map_pair(c, cur, comp)) >= 0) {
		int child = n->data.mapping.pairs.start[i].value;

		if (value == 0 && !is_null(node_at(c, child))) {
			*child_out = child;
			return PSF_OK;
		}
		mark_node(c, n->data.mapping.pairs.start[i].key, k); /* messages name the override */
		if (value == 0 &&
		    (value = yaml_document_add_mapping(c->doc, NULL, YAML_BLOCK_MAPPING_STYLE)) == 0)
			return oom(c);
		node_at(c, cur)->data.mapping.pairs.start[i].value = value;
		mark_node(c, value, k);
		*child_out = value;
		return PSF_OK;
	}
	kid = yaml_document_add_scalar(c->doc, NULL, (const yaml_char_t *)comp, -1,
	    YAML_PLAIN_SCALAR_STYLE);
	if (kid != 0 && value == 0)
		value = yaml_document_add_mapping(c->doc, NULL, YAML_BLOCK_MAPPING_STYLE);
	if (kid == 0 || value == 0 || !yaml_document_append_mapping_pair(c->doc, cur, kid, value))
		return oom(c);
	mark_node(c, kid, k);
	mark_node(c, value, k);
	*child_out = value;
	return PSF_OK;
}

/* remove_key applies override k with an empty value: the key at the dotted path
 * is taken out of its mapping, so it gets its default. A path that names nothing
 * is fine (nothing to remove). */
static psf_err
remove_key(ctx *c, size_t k, char *key)
{
	int cur = 1;

	for (char *comp = key, *dot;; comp = dot + 1) {
		yaml_node_t *n = node_at(c, cur);
		yaml_node_item_t *item;
		long i;

		if ((dot = strchr(comp, '.')) != NULL)
			*dot = '\0';
		if (n->type == YAML_SEQUENCE_NODE) {
			if (dot == NULL)
				return fail(c, OVERRIDE_MARK + k + 1, "a list entry cannot be removed; "
				    "give the whole list instead");
			if ((item = seq_item(c, cur, comp)) == NULL)
				return PSF_OK;
			cur = *item;
		} else if (n->type == YAML_MAPPING_NODE && (i = map_pair(c, cur, comp)) >= 0) {
			yaml_node_pair_t *p = n->data.mapping.pairs.start;

			if (dot == NULL) {
				memmove(p + i, p + i + 1, (size_t)(n->data.mapping.pairs.top - (p + i + 1)) *
				    sizeof(*p));
				n->data.mapping.pairs.top--;
				return PSF_OK;
			}
			cur = p[i].value;
		} else {
			return PSF_OK;
		}
		if (dot == NULL)
			return PSF_OK;
	}
}

/* apply_override applies override k, "a.b.c=value", to the document. */
static psf_err
apply_override(ctx *c, size_t k)
{
	const char *ov = c->overrides[k], *eq = strchr(ov, '=');
	char key[256], parent[256], comp[256];
	size_t klen, start, end;
	int cur = 1, value = 0; /* node 1 is the root mapping */
	psf_err rv;

	if (eq == NULL || eq == ov || (klen = (size_t)(eq - ov)) >= sizeof(key))
		return fail(c, OVERRIDE_MARK + k + 1, "expected KEY=VALUE with a dotted KEY such as "
		    "consistency.mode (at most %zu characters)", sizeof(key) - 1);
	memcpy(key, ov, klen);
	key[klen] = '\0';
	for (start = 0;; start = end + 1) {
		end = start + strcspn(key + start, ".");
		if (end == start)
			return fail(c, OVERRIDE_MARK + k + 1, "empty key component in '%s'", key);
		if (key[end] == '\0')
			break;
	}
	if (eq[1] == '\0')
		return remove_key(c, k, key);
	if ((rv = override_value(c, k, eq + 1, &value)) != PSF_OK)
		return rv;
	for (start = 0;; start = end + 1) {
		int last;

		end = start + strcspn(key + start, ".");
		last = key[end] == '\0';
		memcpy(comp, key + start, end - start);
		comp[end - start] = '\0';
		snprintf(parent, sizeof(parent), "%.*s", start > 0 ? (int)(start - 1) : 0, key);
		if ((rv = descend(c, k, cur, comp, parent, last ? value : 0, &cur)) != PSF_OK || last)
			return rv;
	}
}

/* apply_overrides applies every override in order (a later one wins). */
static psf_err
apply_overrides(ctx *c)
{
	psf_err rv;

	for (size_t k = 0; k < c->n_overrides; k++) {
		if (c->overrides[k] == NULL) {
			snprintf(c->msg, sizeof(c->msg), "%.200s: override %zu is NULL", c->path, k);
			return PSF_EINVAL;
		}
		if ((rv = apply_override(c, k)) != PSF_OK)
			return rv;
	}
	return PSF_OK;
}

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
psf_config_parse(const char *name, const char *text, size_t len, char *errbuf,
    size_t errlen, psf_config **out)
{
	return psf_config_parse_ex(name, text, len, NULL, 0, errbuf, errlen, out);
}

psf_err
psf_config_parse_ex(const char *name, const char *text, size_t len,
    const char *const *overrides, size_t n_overrides, char *errbuf, size_t errlen,
    psf_config **out)
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
	if (text == NULL || out == NULL) {
		rv = PSF_EINVAL;
		goto out;
	}
	if (len > MAX_FILE_BYTES) {
		rv = fail(&c, 1, "config is larger than %d bytes", MAX_FILE_BYTES);
		goto out;
	}
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL || (cfg->path = strdup(c.path)) == NULL) {
		rv = oom(&c);
		goto out;
	}
	set_defaults(cfg);
	if ((rv = load_doc(&c, text, len, &doc)) != PSF_OK)
		goto out;
	has_doc = 1;
	c.doc = &doc;
	c.cfg = cfg;
	if ((rv = apply_overrides(&c)) != PSF_OK ||
	    (rv = parse_map(&c, yaml_document_get_root_node(&doc), &top_table, cfg)) != PSF_OK ||
	    (rv = finish(&c)) != PSF_OK || (rv = validate(&c)) != PSF_OK)
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
psf_config_load_ex(const char *path, const char *const *overrides, size_t n_overrides,
    char *errbuf, size_t errlen, psf_config **out)
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
		free(cfg->nodes[i].metrics);
		free(cfg->nodes[i].data_dir);
	}
	free(cfg->nodes);
	free(cfg->features);
	free(cfg->data.path);
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

static void
fp_add(XXH3_state_t *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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
		(void)XXH3_64bits_update(st, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
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
	fp_add(&st, "\ntarget=%s\nmodel.kind=%s\nmodel.hidden=", target_names[cfg->target],
	    model_names[m->kind]);
	for (uint32_t i = 0; m->kind == PSF_MODEL_MLP && i < m->n_hidden; i++)
		fp_add(&st, "%s%u", i > 0 ? "," : "", m->hidden[i]);
	fp_add(&st, "\nmodel.embedding_dim=%u\nmodel.symbol_bias=%d\nmodel.l2=%.17g\n"
	    "model.init_scale=%.17g\nmodel.chunk_floats=%u\nps=", m->embedding_dim,
	    m->symbol_bias, m->l2, m->init_scale, m->chunk_floats);
	for (size_t i = 0; i < cfg->n_ps; i++)
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
	psf_log_info("config", "loaded %s name=%s ps=%zu trainers=%zu inferers=%zu gateways=%zu "
	    "mode=%s model=%s optimizer=%s lr=%g epochs=%u batch_size=%u features=%zu "
	    "target=%s data=%s fingerprint=%s", cfg->path, cfg->name, cfg->n_ps, cfg->n_trainers,
	    cfg->n_inferers, cfg->n_gateways, psf_consistency_name(cfg->consistency.mode),
	    model_names[cfg->model.kind], optim_names[cfg->optimizer.kind],
	    cfg->optimizer.learning_rate, cfg->training.epochs, cfg->training.batch_size,
	    cfg->n_features, target_names[cfg->target], cfg->data.path, fp);
}

const char *
psf_role_name(psf_role role)
{
	return (unsigned)role <= PSF_ROLE_GATEWAY ? role_names[role] : "unknown";
}

const char *
psf_consistency_name(psf_consistency mode)
{
	return (unsigned)mode <= PSF_CONS_SSP ? cons_names[mode] : "unknown";
}
