/* config_rewrite.c -- psf_config_write_nodes: a config file with new node
 * addresses, written back as YAML (psfleet slurm plan places a fleet's nodes on
 * the hosts of an allocation with it). libyaml loads the file's document again,
 * the node mappings get their new keys, and the emitter writes the document:
 * every other key stays as written, ${VAR} placeholders unexpanded; comments and
 * the original layout are lost. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "lib/config/config.h"

/* map_find returns the index of the pair with key in mapping map, or -1. */
static long
map_find(yaml_document_t *doc, int map, const char *key)
{
	yaml_node_t *m = yaml_document_get_node(doc, map);

	if (m == NULL || m->type != YAML_MAPPING_NODE)
		return -1;
	for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(doc, pr->key);

		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return pr - m->data.mapping.pairs.start;
	}
	return -1;
}

/* map_value returns the node id of key's value in mapping map, or 0. */
static int
map_value(yaml_document_t *doc, int map, const char *key)
{
	long k = map_find(doc, map, key);

	return k < 0 ? 0 : yaml_document_get_node(doc, map)->data.mapping.pairs.start[k].value;
}

/* map_set sets key to the string value in mapping map (value NULL: removes key).
 * Returns 0, or -1 when libyaml is out of memory. */
static int
map_set(yaml_document_t *doc, int map, const char *key, const char *value)
{
	long k = map_find(doc, map, key);
	int v = 0, kn;
	yaml_node_t *m;

	if (value != NULL &&
	    (v = yaml_document_add_scalar(doc, NULL, (yaml_char_t *)value, -1,
	         YAML_DOUBLE_QUOTED_SCALAR_STYLE)) == 0)
		return -1;
	m = yaml_document_get_node(doc, map); /* adding may have moved the nodes */
	if (k >= 0 && value != NULL) {
		m->data.mapping.pairs.start[k].value = v;
	} else if (k >= 0) {
		yaml_node_pair_t *pr = m->data.mapping.pairs.start;
		size_t n = (size_t)(m->data.mapping.pairs.top - pr);

		memmove(pr + k, pr + k + 1, (n - (size_t)k - 1) * sizeof(*pr));
		m->data.mapping.pairs.top--;
	} else if (value != NULL) {
		if ((kn = yaml_document_add_scalar(doc, NULL, (yaml_char_t *)key, -1,
		         YAML_PLAIN_SCALAR_STYLE)) == 0 ||
		    !yaml_document_append_mapping_pair(doc, map, kn, v))
			return -1;
	}
	return 0;
}

/* rewrite_node applies a's addresses to the node mapping map. */
static int
rewrite_node(yaml_document_t *doc, int map, const psf_node_addrs *a)
{
	if (a->advertise != NULL &&
	    map_set(doc, map, "advertise", a->advertise[0] != '\0' ? a->advertise : NULL) != 0)
		return -1;
	if (a->listen != NULL && map_set(doc, map, "listen", a->listen) != 0)
		return -1;
	if (a->metrics != NULL && map_set(doc, map, "metrics", a->metrics) != 0)
		return -1;
	return 0;
}

/* node_items lists the node mappings under nodes.<key> (a sequence, or the
 * gateway's one mapping) into items (at most max); returns the count. */
static size_t
node_items(yaml_document_t *doc, int nodes, const char *key, int *items, size_t max)
{
	int list = nodes != 0 ? map_value(doc, nodes, key) : 0;
	yaml_node_t *l = list != 0 ? yaml_document_get_node(doc, list) : NULL;
	size_t n = 0;

	if (l != NULL && l->type == YAML_MAPPING_NODE && max > 0) {
		items[n++] = list;
	} else if (l != NULL && l->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = l->data.sequence.items.start;
		     it < l->data.sequence.items.top && n < max; it++)
			items[n++] = *it;
	}
	return n;
}

/* emit writes header (as comment lines) and doc to out_path; doc is deleted. */
static psf_err
emit(yaml_document_t *doc, const char *out_path, const char *header, char *errbuf, size_t errlen)
{
	yaml_emitter_t em;
	FILE *out = fopen(out_path, "w");
	bool ok;

	if (out == NULL) {
		snprintf(errbuf, errlen, "cannot write %s: %s", out_path, strerror(errno));
		yaml_document_delete(doc);
		return PSF_ESYS;
	}
	for (const char *h = header; h != NULL && *h != '\0';) {
		size_t n = strcspn(h, "\n");

		fprintf(out, "# %.*s\n", (int)n, h);
		h += n + (h[n] == '\n');
	}
	yaml_emitter_initialize(&em);
	yaml_emitter_set_output_file(&em, out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, 100);
	/* dump deletes the document, even when it fails */
	ok = yaml_emitter_open(&em) && yaml_emitter_dump(&em, doc) && yaml_emitter_close(&em);
	yaml_emitter_delete(&em);
	if (fclose(out) != 0 || !ok) {
		snprintf(errbuf, errlen, "cannot write %s", out_path);
		return PSF_ESYS;
	}
	return PSF_OK;
}

psf_err
psf_config_write_nodes(const psf_config *cfg, const psf_node_addrs *addrs, const char *out_path,
    const char *header, char *errbuf, size_t errlen)
{
	static const char *const keys[] = {"ps", "trainers", "inferers", "gateway"};
	static const psf_role roles[] = {PSF_ROLE_PS, PSF_ROLE_TRAINER, PSF_ROLE_INFERER,
	    PSF_ROLE_GATEWAY};
	yaml_parser_t parser;
	yaml_document_t doc;
	FILE *in;
	int nodes, items[4096];

	if ((in = fopen(cfg->path, "r")) == NULL) {
		snprintf(errbuf, errlen, "%s: %s", cfg->path, strerror(errno));
		return PSF_ESYS;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, in);
	if (!yaml_parser_load(&parser, &doc) || yaml_document_get_root_node(&doc) == NULL) {
		snprintf(errbuf, errlen, "%s: cannot load the YAML document again", cfg->path);
		yaml_parser_delete(&parser);
		fclose(in);
		return PSF_ECONFIG;
	}
	yaml_parser_delete(&parser);
	fclose(in);
	nodes = map_value(&doc, 1, "nodes"); /* node 1 is the root */
	for (size_t r = 0; r < 4; r++) {
		size_t n = node_items(&doc, nodes, keys[r], items, 4096), k = 0;

		/* The loader keeps file order: the nodes of a role are in cfg->nodes
		 * in the order of their mappings. */
		for (size_t i = 0; i < cfg->n_nodes; i++) {
			if (cfg->nodes[i].role != roles[r])
				continue;
			if (k >= n) {
				snprintf(errbuf, errlen,
				    "%s changed since it was loaded: no node %s", cfg->path,
				    cfg->nodes[i].id);
				yaml_document_delete(&doc);
				return PSF_ECONFIG;
			}
			if (rewrite_node(&doc, items[k++], &addrs[i]) != 0) {
				snprintf(errbuf, errlen, "out of memory");
				yaml_document_delete(&doc);
				return PSF_ENOMEM;
			}
		}
	}
	return emit(&doc, out_path, header, errbuf, errlen);
}
