/* config_yaml.c -- the libyaml document under a config: loading, key lookup,
 * line numbers, error lines, and the generic typed field tables.
 *
 * libyaml rather than libcyaml: libcyaml 1.3.1 reports line numbers only inside
 * its log text, and the cross-field checks (duplicate ids, port clashes, shard
 * coverage) need the line of any node after loading. config_parse_map walks a
 * mapping through a table (key, type, offset, range, message) from
 * config_schema.c; nothing here knows a section by name. */
#include "lib/config/config_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/base/log.h"

_Static_assert(sizeof(psf_consistency) == sizeof(int), "enums are stored as int");

/* ---- messages and yaml helpers ---- */

/* where formats the place a message is about: "path:line", or for an --set
 * override "path: override 'KEY=VALUE'". */
static void
where(const ctx *c, size_t line, char *buf, size_t len)
{
	if (line > OVERRIDE_MARK && line - 1 - OVERRIDE_MARK < c->n_overrides)
		snprintf(buf, len, "%.200s: override '%.200s'", c->path,
		    c->overrides[line - 1 - OVERRIDE_MARK]);
	else
		snprintf(buf, len, "%.200s:%zu", c->path, line);
}

psf_err
config_fail(ctx *c, size_t line, const char *fmt, ...)
{
	char msg[600], at[460];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	where(c, line, at, sizeof(at));
	snprintf(c->msg, sizeof(c->msg), "%.420s: %.599s", at, msg);
	return PSF_ECONFIG;
}

void
config_warn(ctx *c, size_t line, const char *fmt, ...)
{
	char msg[600], at[460];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	where(c, line, at, sizeof(at));
	psf_log_warn("config", "%s: %s", at, msg);
}

psf_err
config_oom(ctx *c)
{
	snprintf(c->msg, sizeof(c->msg), "%.200s: out of memory", c->path);
	return PSF_ENOMEM;
}

/* config_scalar returns a scalar's text, or NULL for collections and text with NULs. */
const char *
config_scalar(const yaml_node_t *n)
{
	const char *s;

	if (n == NULL || n->type != YAML_SCALAR_NODE)
		return NULL;
	s = (const char *)n->data.scalar.value;
	return strlen(s) == n->data.scalar.length ? s : NULL;
}

const char *
config_plain(const yaml_node_t *n)
{
	return n != NULL && n->type == YAML_SCALAR_NODE &&
	        n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
	    ? config_scalar(n)
	    : NULL;
}

int
config_is_null(const yaml_node_t *n)
{
	const char *s = config_plain(n);

	return s != NULL &&
	    (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	        strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0);
}

/* config_map_key finds key in a mapping node; returns its key node or NULL. */
yaml_node_t *
config_map_key(ctx *c, yaml_node_t *map, const char *key, yaml_node_t **val)
{
	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = node_at(c, p->key);
		const char *s = config_scalar(k);

		if (s != NULL && strcmp(s, key) == 0) {
			if (val != NULL)
				*val = node_at(c, p->value);
			return k;
		}
	}
	return NULL;
}

/* config_line_of returns the line of sect.key, else of sect, else 1 (for cross-field
 * messages about keys that may be absent). key may be NULL. */
size_t
config_line_of(ctx *c, const char *sect, const char *key)
{
	yaml_node_t *val = NULL, *k, *kk;

	k = config_map_key(c, yaml_document_get_root_node(c->doc), sect, &val);
	if (k == NULL)
		return 1;
	if (key != NULL && (kk = config_map_key(c, val, key, NULL)) != NULL)
		return line(kk);
	return line(k);
}

/* config_node_line returns the line of a node's key, else of the node's entry. */
size_t
config_node_line(ctx *c, size_t i, const char *key)
{
	yaml_node_t *map = node_at(c, c->node_map[i]);
	yaml_node_t *k = config_map_key(c, map, key, NULL);

	return k != NULL ? line(k) : line(map);
}

static const char *
must_text(const field *f, char *buf, size_t len)
{
	size_t used;

	/* An integer range from a shared limit (bounds.h) is printed from the
	 * numbers themselves, so the message cannot drift from the check. */
	if (f->names == NULL && f->must == NULL) {
		snprintf(buf, len, "an integer in [%llu, %llu]", (unsigned long long)f->imin,
		    (unsigned long long)f->imax);
		return buf;
	}
	if (f->names == NULL)
		return f->must;
	used = (size_t)snprintf(buf, len, "one of");
	for (size_t i = 0; f->names[i] != NULL && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s %s", i > 0 ? "," : "",
		    f->names[i]);
	return buf;
}

psf_err
config_bad_value(ctx *c, const field *f, yaml_node_t *key)
{
	char buf[160];

	return config_fail(c, line(key), "'%s' must be %s", f->key, must_text(f, buf, sizeof(buf)));
}

int
config_name_index(const char *const *names, const char *s)
{
	for (int i = 0; s != NULL && names[i] != NULL; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

/* ---- scalar fields ---- */

int
config_parse_u64(const char *s, uint64_t *out)
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
	if (config_parse_u64(config_plain(val), &v) != 0 || v < f->imin || v > hi)
		return config_bad_value(c, f, key);
	if (f->type == T_U32)
		*(uint32_t *)p = (uint32_t)v;
	else
		*(uint64_t *)p = v;
	return PSF_OK;
}

static psf_err
set_double(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, double *p)
{
	const char *s = config_plain(val);
	char *end;
	double v;

	if (s == NULL || *s == '\0')
		return config_bad_value(c, f, key);
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0' || errno != 0 || !isfinite(v) || v < f->dmin || v > f->dmax ||
	    (f->open_lo && v == f->dmin) || (f->open_hi && v == f->dmax))
		return config_bad_value(c, f, key);
	*p = v;
	return PSF_OK;
}

static psf_err
set_bool(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, int *p)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	const char *s = config_plain(val);

	for (size_t i = 0; s != NULL && i < PSF_ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*p = strcasecmp(s, yes[i]) == 0;
			return PSF_OK;
		}
	}
	return config_bad_value(c, f, key);
}

psf_err
config_set_str(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, char **p)
{
	const char *s = config_scalar(val);

	if (config_is_null(val))
		return PSF_OK; /* explicit null: keep the default */
	if (s == NULL || *s == '\0' || (f->names != NULL && config_name_index(f->names, s) < 0))
		return config_bad_value(c, f, key);
	free(*p);
	if ((*p = strdup(s)) == NULL)
		return config_oom(c);
	return PSF_OK;
}

static psf_err
set_field(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base)
{
	char *p = (char *)base + f->off;
	int idx;

	switch (f->type) {
	case T_U32:
	case T_U64: return set_int(c, f, key, val, p);
	case T_F64: return set_double(c, f, key, val, (double *)p);
	case T_BOOL: return set_bool(c, f, key, val, (int *)p);
	case T_STR: return config_set_str(c, f, key, val, (char **)p);
	case T_ENUM:
		if ((idx = config_name_index(f->names, config_scalar(val))) < 0)
			return config_bad_value(c, f, key);
		memcpy(p, &idx, sizeof(idx));
		return PSF_OK;
	case T_MAP:
		if (config_is_null(val))
			return PSF_OK; /* an empty section: all defaults */
		if (val->type != YAML_MAPPING_NODE)
			return config_fail(c, line(key), "'%s' must be a mapping", f->key);
		return config_parse_map(c, val, f->sub, p);
	case T_FN: return f->fn(c, f, key, val, base);
	}
	return PSF_EINTERNAL;
}

/* config_parse_map applies every key of a mapping through table t onto base, rejecting
 * unknown and repeated keys. */
psf_err
config_parse_map(ctx *c, yaml_node_t *map, const table *t, void *base)
{
	uint64_t seen = 0;

	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = node_at(c, p->key);
		const char *s = config_scalar(k);
		size_t i;
		psf_err rv;

		if (s == NULL)
			return config_fail(c, line(k), "keys must be strings%s%s",
			    t->name != NULL ? " in " : "", t->name != NULL ? t->name : "");
		for (i = 0; i < t->n && strcmp(t->fields[i].key, s) != 0; i++)
			;
		if (i == t->n)
			return config_fail(c, line(k), "unknown key '%.64s' %s%s", s,
			    t->name != NULL ? "in " : "at top level",
			    t->name != NULL ? t->name : "");
		if (seen & ((uint64_t)1 << i))
			return config_fail(c, line(k), "duplicate key '%s'%s%s", s,
			    t->name != NULL ? " in " : "", t->name != NULL ? t->name : "");
		seen |= (uint64_t)1 << i;
		if ((rv = set_field(c, &t->fields[i], k, node_at(c, p->value), base)) != PSF_OK)
			return rv;
	}
	return PSF_OK;
}

/* ---- loading ---- */

static psf_err
yaml_error(ctx *c, const yaml_parser_t *p, const char *text, size_t len)
{
	size_t ln = p->problem_mark.line + 1, n_lines = 1;
	char ctxt[96] = "";

	if (p->error == YAML_MEMORY_ERROR)
		return config_oom(c);
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
	return config_fail(c, ln, "invalid YAML: %s%s",
	    p->problem != NULL ? p->problem : "syntax error", ctxt);
}

/* config_load_doc parses exactly one YAML document; on success the caller deletes *doc. */
psf_err
config_load_doc(ctx *c, const char *text, size_t len, yaml_document_t *doc)
{
	yaml_parser_t parser;
	yaml_document_t extra;
	yaml_node_t *root;
	psf_err rv = PSF_OK;

	if (!yaml_parser_initialize(&parser))
		return config_oom(c);
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
			rv = config_fail(c, line(root), "only one YAML document is allowed");
		yaml_document_delete(&extra);
	}
	if (rv == PSF_OK && (root = yaml_document_get_root_node(doc)) == NULL)
		rv = config_fail(c, 1,
		    "empty config: expected a mapping of keys (name, nodes, data, ...)");
	else if (rv == PSF_OK && root->type != YAML_MAPPING_NODE)
		rv = config_fail(c, line(root),
		    "the config must be a mapping of keys (name, nodes, data, ...)");
	if (rv != PSF_OK)
		yaml_document_delete(doc);
	yaml_parser_delete(&parser);
	return rv;
}
