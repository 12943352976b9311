/* config_emit.c -- a fleet config written back as YAML text, with overrides and
 * ${VAR} placeholders applied (for configs handed to other machines, such as the
 * ConfigMap `psfleet deploy kubernetes` renders). The text is the document the
 * loader parsed, emitted by libyaml: keys, values and their order are kept, the
 * comments are not. */
#include "lib/config/config_internal.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"

typedef struct outbuf {
	char *p;
	size_t len, cap;
	int oom;
} outbuf;

static int
write_out(void *data, unsigned char *buf, size_t size)
{
	outbuf *o = data;

	if (o->len + size + 1 > o->cap) {
		size_t cap = o->cap != 0 ? o->cap : 4096;
		char *p;

		while (cap < o->len + size + 1)
			cap *= 2;
		if ((p = realloc(o->p, cap)) == NULL) {
			o->oom = 1;
			return 0;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, buf, size);
	o->len += size;
	o->p[o->len] = '\0';
	return 1;
}

/* emit_doc writes doc as YAML into *text (NUL-terminated). The document is
 * destroyed in any case: yaml_emitter_dump (which opens the stream itself) deletes
 * it on success and on failure. */
static psf_err
emit_doc(yaml_document_t *doc, char **text)
{
	yaml_emitter_t em;
	outbuf o = {0};
	int ok;

	if (!yaml_emitter_initialize(&em)) {
		yaml_document_delete(doc);
		return PSF_ENOMEM;
	}
	yaml_emitter_set_output(&em, write_out, &o);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1); /* no folding: one line per flow mapping */
	ok = yaml_emitter_dump(&em, doc) && yaml_emitter_close(&em);
	yaml_emitter_delete(&em);
	if (!ok || o.p == NULL) {
		free(o.p);
		return o.oom ? PSF_ENOMEM : PSF_EINTERNAL;
	}
	*text = o.p;
	return PSF_OK;
}

psf_err
psf_config_emit(const char *path, const char *const *overrides, size_t n_overrides,
    const char *const *moved, size_t n_moved, char *errbuf, size_t errlen, char **text_out)
{
	psf_config *cfg = NULL;
	const char **all = NULL;
	size_t n_all = 0;
	ctx c;
	yaml_document_t doc;
	char *text = NULL;
	size_t len = 0;
	psf_err rv;

	/* The whole check first, so a config the nodes would refuse is refused here,
	 * with the loader's own message; the files under security are read here. */
	rv = psf_config_load_ex(path, overrides, n_overrides, errbuf, errlen, &cfg);
	if (rv != PSF_OK)
		return rv;
	psf_config_free(cfg);
	cfg = NULL;
	n_overrides = overrides != NULL ? n_overrides : 0;
	n_moved = moved != NULL ? n_moved : 0;
	if ((all = calloc(n_overrides + n_moved + 1, sizeof(*all))) == NULL) {
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "%.200s: out of memory", path);
		return PSF_ENOMEM;
	}
	for (size_t i = 0; i < n_overrides; i++)
		all[n_all++] = overrides[i];
	for (size_t i = 0; i < n_moved; i++)
		all[n_all++] = moved[i];
	if ((rv = psf_read_file(path, &text, &len)) != PSF_OK) {
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "%.200s: cannot read config: %s", path,
			    psf_strerror(rv));
		free(all);
		return rv;
	}
	/* Then the config as the other machines will read it, moved paths and all,
	 * without opening the files those paths name (they are not here). */
	if (n_moved > 0) {
		rv = config_parse(path, text, len, all, n_all, 1, errbuf, errlen, &cfg);
		psf_config_free(cfg);
		if (rv != PSF_OK) {
			free(text);
			free(all);
			return rv;
		}
	}
	memset(&c, 0, sizeof(c));
	c.path = path;
	c.overrides = all;
	c.n_overrides = n_all;
	rv = config_load_doc(&c, text, len, &doc);
	free(text);
	if (rv == PSF_OK) {
		c.doc = &doc;
		if ((rv = config_expand_env(&c)) != PSF_OK ||
		    (rv = config_apply_overrides(&c)) != PSF_OK)
			yaml_document_delete(&doc);
		else
			rv = emit_doc(&doc, text_out);
	}
	if (rv != PSF_OK && errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s",
		    c.msg[0] != '\0' ? c.msg : "cannot write the config as YAML");
	free(all);
	return rv;
}
