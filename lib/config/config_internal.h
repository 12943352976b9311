/* config_internal.h -- private declarations shared by lib/config/config*.c only.
 * Not part of the contract: include lib/config/config.h instead.
 *
 * The files, in the order a parse runs through them:
 *   config_yaml.c    the libyaml document: loading, key lookup, line numbers, the
 *                    generic typed field tables (config_parse_map) and messages
 *   config_env.c     ${VAR} placeholders (expanded in the document first)
 *   config_check.c   --set overrides (applied to the document before parsing) and
 *                    the cross-field checks (after parsing)
 *   config_schema.c  the schema itself: every section's table, the special keys
 *                    (features, hidden, nodes, generate), defaults, derived values
 *   config.c         the public entry points, free, lookups, fingerprint, log
 *
 * Every function that takes a ctx writes its one error line into c->msg and
 * returns its code; the caller only propagates it. */
#ifndef PSF_CONFIG_INTERNAL_H
#define PSF_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "lib/config/config.h"

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

typedef struct ctx ctx;
typedef struct field field;
typedef psf_err (*parse_fn)(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, void *base);

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
	size_t off;       /* into the struct the table describes */
	const char *must; /* completes "'key' must be ..." (numbers, strings); NULL
	                             for an integer: "an integer in [imin, imax]" */
	uint64_t imin, imax;
	double dmin, dmax;
	int open_lo, open_hi;
	const char *const *names; /* T_ENUM, T_STR: allowed spellings, NULL-terminated */
	const table *sub;         /* T_MAP */
	parse_fn fn;              /* T_FN */
	int aux;                  /* T_FN: the role of a node list */
};

/* One parse. The document stays alive until validation ends so every message
 * can name its line. */
struct ctx {
	const char *path; /* file name used in messages */
	yaml_document_t *doc;
	psf_config *cfg;
	int *node_map; /* yaml node of each cfg->nodes[i], parallel array */
	size_t cap_nodes;
	int gen_seed_default;         /* data.generate has no seed: use the fleet seed */
	const char *const *overrides; /* "key=value" strings applied to the document */
	size_t n_overrides;
	int skip_files; /* do not open the security files (they name another machine's) */
	char msg[MSG_LEN];
};

/* line returns the 1-based line a node starts on (or its override mark). */
static inline size_t
line(const yaml_node_t *n)
{
	return n->start_mark.line + 1;
}

static inline yaml_node_t *
node_at(ctx *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

/* ---- config.c ---- */

/* config_parse is psf_config_parse_ex; with skip_files the files under security
 * are not opened (config_emit.c checks a config rewritten for other machines). */
psf_err config_parse(const char *name, const char *text, size_t len, const char *const *overrides,
    size_t n_overrides, int skip_files, char *errbuf, size_t errlen, psf_config **out);

/* ---- config_yaml.c ---- */

/* config_fail formats "path:line: message" (or "path: override '...': message"
 * for a line carrying OVERRIDE_MARK) into c->msg. Returns PSF_ECONFIG. */
psf_err config_fail(ctx *c, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* config_warn logs "path:line: message" (or the override form) at warn level: a
 * value that is legal but probably not what the user wants. Cannot fail. */
void config_warn(ctx *c, size_t line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* config_oom writes "path: out of memory" into c->msg. Returns PSF_ENOMEM. */
psf_err config_oom(ctx *c);

/* config_bad_value fails with "'key' must be ..." from f->must or f->names. */
psf_err config_bad_value(ctx *c, const field *f, yaml_node_t *key);

/* config_scalar returns a scalar's text, or NULL for collections and text with
 * NULs. config_plain does the same for unquoted scalars only. The text lives as
 * long as the document. */
const char *config_scalar(const yaml_node_t *n);
const char *config_plain(const yaml_node_t *n);

/* config_is_null reports whether n is YAML's null ("", ~, null). */
int config_is_null(const yaml_node_t *n);

/* config_map_key finds key in a mapping node; returns its key node (and the value
 * in *val when val is not NULL) or NULL. */
yaml_node_t *config_map_key(ctx *c, yaml_node_t *map, const char *key, yaml_node_t **val);

/* config_line_of returns the line of sect.key, else of sect, else 1 (for
 * cross-field messages about keys that may be absent). key may be NULL. */
size_t config_line_of(ctx *c, const char *sect, const char *key);

/* config_node_line returns the line of cfg->nodes[i]'s key, else of its entry. */
size_t config_node_line(ctx *c, size_t i, const char *key);

/* config_name_index returns the index of s in a NULL-terminated list, or -1. */
int config_name_index(const char *const *names, const char *s);

/* config_parse_u64 parses decimal digits (an optional leading '+') without
 * overflow. Returns 0 and sets *out, or -1. */
int config_parse_u64(const char *s, uint64_t *out);

/* config_set_str stores a copy of a non-empty scalar in *p (freeing the old one);
 * an explicit null keeps the default. */
psf_err config_set_str(ctx *c, const field *f, yaml_node_t *key, yaml_node_t *val, char **p);

/* config_parse_map applies every key of a mapping through table t onto base,
 * rejecting unknown and repeated keys. */
psf_err config_parse_map(ctx *c, yaml_node_t *map, const table *t, void *base);

/* config_load_doc parses exactly one YAML document whose root is a mapping; on
 * success the caller deletes *doc. */
psf_err config_load_doc(ctx *c, const char *text, size_t len, yaml_document_t *doc);

/* The top-level table: every key of the fleet YAML. */
extern const table config_top_table;

/* ---- config_names.c ---- */

/* Spellings of the enums, indexed by value, NULL-terminated (config.h has the
 * psf_<enum>_name / psf_<enum>_parse functions over them). */
extern const char *const config_role_names[];
extern const char *const config_cons_names[];
extern const char *const config_dur_names[];
extern const char *const config_model_names[];
extern const char *const config_optim_names[];
extern const char *const config_sched_names[];
extern const char *const config_target_names[];
extern const char *const config_shard_by_names[];
extern const char *const config_bad_rows_names[];
extern const char *const config_route_names[];

/* ---- config_schema.c ---- */

/* config_set_defaults fills in every default that does not depend on other keys.
 * Cannot fail. */
void config_set_defaults(psf_config *cfg);

/* config_finish orders the nodes by role and fills in the derived defaults
 * (name, log_level, run_dir, data_dir, data path, generate seed). */
psf_err config_finish(ctx *c);

/* ---- config_check.c ---- */

/* config_expand_env replaces ${VAR}, ${VAR:-default} and $$ in every scalar value of
 * the document from the environment (config_env.c). */
psf_err config_expand_env(ctx *c);

/* config_apply_overrides applies every override to the document, in order (a
 * later one wins). */
psf_err config_apply_overrides(ctx *c);

/* config_validate holds every cross-field check; config_parse_map already
 * checked each value. */
psf_err config_validate(ctx *c);

#endif
