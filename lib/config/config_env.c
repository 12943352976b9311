/* config_env.c -- environment placeholders in the config's string values.
 *
 * ${VAR} is replaced by the value of VAR, ${VAR:-default} by that value or, when
 * VAR is unset or empty, by default; $$ is a literal '$'. Any other '$' stays as it
 * is. An unset variable without a default is an error naming it with file:line.
 * Every scalar value of the document (not the keys) is expanded once, right after
 * the document is loaded and before --set overrides, so an override is taken
 * literally and the checks see the expanded text. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config/config_internal.h"

enum { MAX_EXPANDED = 1 << 16 };

typedef struct buf {
	char *p;
	size_t len, cap;
} buf;

static int
put(buf *b, const char *s, size_t n)
{
	char *np;

	if (b->len + n + 1 > MAX_EXPANDED)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		if ((np = realloc(b->p, cap)) == NULL)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* placeholder expands the ${...} at s (s[0] == '$', s[1] == '{'); *used gets its length. */
static psf_err
placeholder(ctx *c, const yaml_node_t *n, const char *s, buf *b, size_t *used)
{
	const char *end = strchr(s, '}'), *dflt, *val;
	char name[128];
	size_t nlen;

	if (end == NULL)
		return config_fail(c, line(n),
		    "unterminated placeholder '%.40s' (write $$ for a '$')", s);
	dflt = strstr(s, ":-");
	nlen = (dflt != NULL && dflt < end ? (size_t)(dflt - s) : (size_t)(end - s)) - 2;
	if (nlen == 0 || nlen >= sizeof(name))
		return config_fail(c, line(n), "bad placeholder '%.*s'", (int)(end - s + 1), s);
	memcpy(name, s + 2, nlen);
	name[nlen] = '\0';
	for (size_t i = 0; i < nlen; i++)
		if (!(name[i] == '_' || (name[i] >= 'A' && name[i] <= 'Z') ||
		        (name[i] >= 'a' && name[i] <= 'z') ||
		        (i > 0 && name[i] >= '0' && name[i] <= '9')))
			return config_fail(c, line(n), "bad variable name in placeholder '%.*s'",
			    (int)(end - s + 1), s);
	val = getenv(name);
	if (dflt != NULL && dflt < end) {
		if (val == NULL || val[0] == '\0') {
			val = dflt + 2;
			if (put(b, val, (size_t)(end - val)) != 0)
				return config_fail(c, line(n),
				    "value too long after expanding '%s'", name);
			*used = (size_t)(end - s) + 1;
			return PSF_OK;
		}
	} else if (val == NULL) {
		return config_fail(c, line(n),
		    "environment variable '%s' is not set (placeholder ${%s}; give a default with "
		    "${%s:-default})",
		    name, name, name);
	}
	if (put(b, val, strlen(val)) != 0)
		return config_fail(c, line(n), "value too long after expanding '%s'", name);
	*used = (size_t)(end - s) + 1;
	return PSF_OK;
}

static psf_err
expand_scalar(ctx *c, yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;
	buf b = {0};
	size_t used;
	psf_err rv = PSF_OK;

	if (memchr(s, '$', n->data.scalar.length) == NULL)
		return PSF_OK;
	if (put(&b, "", 0) != 0)
		return config_oom(c);
	while (*s != '\0' && rv == PSF_OK) {
		used = 1;
		if (s[0] == '$' && s[1] == '$') {
			rv = put(&b, "$", 1) != 0 ? config_oom(c) : PSF_OK;
			used = 2;
		} else if (s[0] == '$' && s[1] == '{') {
			rv = placeholder(c, n, s, &b, &used);
		} else if (put(&b, s, 1) != 0) {
			rv = config_fail(c, line(n), "value too long after expanding placeholders");
		}
		s += used;
	}
	if (rv != PSF_OK) {
		free(b.p);
		return rv;
	}
	free(n->data.scalar.value); /* libyaml allocates with malloc (yaml_free is free) */
	n->data.scalar.value = (yaml_char_t *)b.p;
	n->data.scalar.length = b.len;
	return PSF_OK;
}

/* config_expand_env walks the document's flat node array, not the tree: each
 * scalar is expanded exactly once even when aliases share it (a "$$" turned into
 * "$" is never expanded again), and a document of aliases nested many times costs
 * no more than its node count. Keys of mappings are not expanded. */
psf_err
config_expand_env(ctx *c)
{
	yaml_node_t *start = c->doc->nodes.start, *top = c->doc->nodes.top;
	size_t n = (size_t)(top - start);
	bool *is_key = calloc(n > 0 ? n : 1, sizeof(*is_key));
	psf_err rv = PSF_OK;

	if (is_key == NULL)
		return config_oom(c);
	for (yaml_node_t *m = start; m < top; m++) {
		if (m->type != YAML_MAPPING_NODE)
			continue;
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
		     p < m->data.mapping.pairs.top; p++)
			if (p->key >= 1 && (size_t)p->key <= n)
				is_key[p->key - 1] = true;
	}
	for (size_t i = 0; i < n && rv == PSF_OK; i++)
		if (start[i].type == YAML_SCALAR_NODE && !is_key[i])
			rv = expand_scalar(c, &start[i]);
	free(is_key);
	return rv;
}
