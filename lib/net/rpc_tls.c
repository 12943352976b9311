#include "lib/net/rpc_tls.h"

#include <stdlib.h>

#include <nng/supplemental/tls/tls.h>

#include "lib/base/log.h"
#include "lib/base/util.h"

/* make_config builds an nng_tls_config from files; server_name (clients only)
 * is the name the server's certificate must carry. Caller frees it. */
static psf_err
make_config(nng_tls_mode mode, const psf_rpc_tls *tls, const char *server_name,
    nng_tls_config **out)
{
	nng_tls_config *cfg = NULL;
	char *cert = NULL, *key = NULL;
	psf_err err = PSF_OK;
	int rv;

	if ((rv = nng_tls_config_alloc(&cfg, mode)) != 0)
		return psf_err_from_nng(rv);
	if (tls->cert_file != NULL || tls->key_file != NULL) {
		if (tls->cert_file == NULL || tls->key_file == NULL) {
			psf_log_err("tls", "tls_cert and tls_key must be given together");
			err = PSF_EINVAL;
			goto out;
		}
		if ((err = psf_read_file(tls->cert_file, &cert, NULL)) != PSF_OK ||
		    (err = psf_read_file(tls->key_file, &key, NULL)) != PSF_OK) {
			psf_log_err("tls", "cannot read %s / %s: %s", tls->cert_file, tls->key_file,
			    psf_strerror(err));
			goto out;
		}
		if ((rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
			psf_log_err("tls", "bad certificate or key (%s, %s): %s", tls->cert_file,
			    tls->key_file, nng_strerror(rv));
			err = PSF_EINVAL;
			goto out;
		}
	} else if (mode == NNG_TLS_MODE_SERVER) {
		psf_log_err("tls", "a tls+tcp listener needs tls_cert and tls_key");
		err = PSF_EINVAL;
		goto out;
	}
	if (tls->ca_file != NULL) {
		if ((rv = nng_tls_config_ca_file(cfg, tls->ca_file)) != 0 ||
		    (rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0) {
			psf_log_err("tls", "bad CA file %s: %s", tls->ca_file, nng_strerror(rv));
			err = PSF_EINVAL;
			goto out;
		}
	} else {
		(void)nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_NONE);
	}
	if (server_name != NULL && (rv = nng_tls_config_server_name(cfg, server_name)) != 0) {
		psf_log_err("tls", "server name %s: %s", server_name, nng_strerror(rv));
		err = psf_err_from_nng(rv);
		goto out;
	}
	*out = cfg;
	cfg = NULL;
out:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	free(cert);
	free(key);
	return err;
}

psf_err
psf_rpc_tls_apply_listener(nng_listener l, const psf_rpc_tls *tls)
{
	nng_tls_config *cfg;
	psf_err err = make_config(NNG_TLS_MODE_SERVER, tls, NULL, &cfg);
	int rv;

	if (err != PSF_OK)
		return err;
	rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg); /* the listener holds its own reference */
	return psf_err_from_nng(rv);
}

/* A dialer given its own TLS config no longer has the name NNG took from the
 * URL (NNG 1.5.2 sets it on the config it replaces), and mbedTLS 2.28 checks no
 * name at all when none is set: any certificate the CA signed would pass. So the
 * URL's host is set here whenever tls_server_name is not. */
psf_err
psf_rpc_tls_apply_dialer(nng_dialer d, const char *url, const psf_rpc_tls *tls)
{
	nng_tls_config *cfg = NULL;
	nng_url *u = NULL;
	const char *name = tls->server_name;
	psf_err err;
	int rv;

	if (name == NULL) {
		if ((rv = nng_url_parse(&u, url)) != 0) {
			psf_log_err("tls", "dial %s: %s", url, nng_strerror(rv));
			return psf_err_from_nng(rv);
		}
		name = u->u_hostname;
	}
	if (name[0] == '\0' && tls->ca_file != NULL) {
		psf_log_err("tls", "dial %s: no server name to verify the certificate against",
		    url);
		err = PSF_EINVAL;
		goto out;
	}
	if ((err = make_config(NNG_TLS_MODE_CLIENT, tls, name[0] != '\0' ? name : NULL, &cfg)) !=
	    PSF_OK)
		goto out;
	/* The dialer takes its own reference to cfg. */
	err = psf_err_from_nng(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg));
out:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	if (u != NULL)
		nng_url_free(u);
	return err;
}
