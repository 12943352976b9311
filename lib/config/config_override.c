/* config_override.c -- --set overrides ("key.path=value"), applied to the YAML
 * document before parsing, so the parse and the checks see them like any other
 * value and every message about one names the override. */
#include "lib/config/config_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
			int item =
			    copy_node(c, src, yaml_document_get_node(src, *it), k, depth + 1);

			if (item == 0 || !yaml_document_append_sequence_item(c->doc, id, item))
				return 0;
		}
		break;
	case YAML_MAPPING_NODE:
		id = yaml_document_add_mapping(c->doc, n->tag, n->data.mapping.style);
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     id != 0 && p < n->data.mapping.pairs.top; p++) {
			int kid =
			    copy_node(c, src, yaml_document_get_node(src, p->key), k, depth + 1);
			int vid = kid != 0
			    ? copy_node(c, src, yaml_document_get_node(src, p->value), k, depth + 1)
			    : 0;

			if (vid == 0 || !yaml_document_append_mapping_pair(c->doc, id, kid, vid))
				return 0;
		}
		break;
	default: return 0;
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
		return config_oom(c);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
	if (!yaml_parser_load(&parser, &vdoc)) {
		rv = config_fail(c, OVERRIDE_MARK + k + 1, "invalid YAML value: %s",
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
		rv = config_fail(c, OVERRIDE_MARK + k + 1, "the value must be one YAML value");
	} else if ((root = yaml_document_get_root_node(&vdoc)) == NULL) {
		if ((id = yaml_document_add_scalar(c->doc, NULL, (yaml_char_t *)"", 0,
		         YAML_PLAIN_SCALAR_STYLE)) == 0)
			rv = config_oom(c);
		else
			mark_node(c, id, k);
	} else if ((id = copy_node(c, &vdoc, root, k, 0)) == 0) {
		rv = config_fail(c, OVERRIDE_MARK + k + 1,
		    "the value is nested too deeply (or out of memory)");
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

	if (config_parse_u64(comp, &idx) == 0)
		return idx < len ? &n->data.sequence.items.start[idx] : NULL;
	for (size_t i = 0; i < len; i++) {
		v = NULL;
		if (config_map_key(c, node_at(c, n->data.sequence.items.start[i]), "id", &v) !=
		        NULL &&
		    config_scalar(v) != NULL && strcmp(config_scalar(v), comp) == 0)
			return &n->data.sequence.items.start[i];
	}
	return NULL;
}

/* map_pair finds key in mapping map; returns the pair's index or -1. */
static long
map_pair(ctx *c, int map, const char *key)
{
	yaml_node_t *n = node_at(c, map);

	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		const char *s = config_scalar(node_at(c, p->key));

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
descend(ctx *c, size_t k, int cur, const char *comp, const char *parent, int value, int *child_out)
{
	yaml_node_t *n = node_at(c, cur);
	size_t ln = OVERRIDE_MARK + k + 1;
	yaml_node_item_t *item;
	long i;
	int kid;

	if (n->type == YAML_SEQUENCE_NODE) {
		if ((item = seq_item(c, cur, comp)) == NULL)
			return config_fail(c, ln,
			    "'%s' has no entry '%s' (use a 0-based index or a node id)", parent,
			    comp);
		if (value != 0)
			*item = value;
		*child_out = *item;
		return PSF_OK;
	}
	if (n->type != YAML_MAPPING_NODE)
		return config_fail(c, ln, "'%s' is not a mapping", parent);
	if ((i = map_pair(c, cur, comp)) >= 0) {
		int child = n->data.mapping.pairs.start[i].value;

		if (value == 0 && !config_is_null(node_at(c, child))) {
			*child_out = child;
			return PSF_OK;
		}
		mark_node(c, n->data.mapping.pairs.start[i].key,
		    k); /* messages name the override */
		if (value == 0 &&
		    (value = yaml_document_add_mapping(c->doc, NULL, YAML_BLOCK_MAPPING_STYLE)) ==
		        0)
			return config_oom(c);
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
		return config_oom(c);
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
				return config_fail(c, OVERRIDE_MARK + k + 1,
				    "a list entry cannot be removed; "
				    "give the whole list instead");
			if ((item = seq_item(c, cur, comp)) == NULL)
				return PSF_OK;
			cur = *item;
		} else if (n->type == YAML_MAPPING_NODE && (i = map_pair(c, cur, comp)) >= 0) {
			yaml_node_pair_t *p = n->data.mapping.pairs.start;

			if (dot == NULL) {
				memmove(p + i, p + i + 1,
				    (size_t)(n->data.mapping.pairs.top - (p + i + 1)) * sizeof(*p));
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
		return config_fail(c, OVERRIDE_MARK + k + 1,
		    "expected KEY=VALUE with a dotted KEY such as "
		    "consistency.mode (at most %zu characters)",
		    sizeof(key) - 1);
	memcpy(key, ov, klen);
	key[klen] = '\0';
	for (start = 0;; start = end + 1) {
		end = start + strcspn(key + start, ".");
		if (end == start)
			return config_fail(c, OVERRIDE_MARK + k + 1, "empty key component in '%s'",
			    key);
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
		if ((rv = descend(c, k, cur, comp, parent, last ? value : 0, &cur)) != PSF_OK ||
		    last)
			return rv;
	}
}

/* config_apply_overrides applies every override in order (a later one wins). */
psf_err
config_apply_overrides(ctx *c)
{
	psf_err rv;

	for (size_t k = 0; k < c->n_overrides; k++) {
		if (c->overrides[k] == NULL) {
			snprintf(c->msg, sizeof(c->msg), "%.200s: override %zu is NULL", c->path,
			    k);
			return PSF_EINVAL;
		}
		if ((rv = apply_override(c, k)) != PSF_OK)
			return rv;
	}
	return PSF_OK;
}
