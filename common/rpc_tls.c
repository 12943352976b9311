#include "rpc_tls.h"

#include <stdlib.h>

#include <nng/supplemental/tls/tls.h>

#include "log.h"
#include "util.h"

/* make_config builds an nng_tls_config from files. Caller frees it. */
static psf_err
make_config(nng_tls_mode mode, const psf_rpc_tls *tls, nng_tls_config **out)
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
			psf_log_err("tls", "cannot read %s / %s: %s", tls->cert_file,
			    tls->key_file, psf_strerror(err));
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
	if (tls->server_name != NULL && mode == NNG_TLS_MODE_CLIENT)
		(void)nng_tls_config_server_name(cfg, tls->server_name);
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
	psf_err err = make_config(NNG_TLS_MODE_SERVER, tls, &cfg);
	int rv;

	if (err != PSF_OK)
		return err;
	rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg); /* the listener holds its own reference */
	return psf_err_from_nng(rv);
}

psf_err
psf_rpc_tls_apply_dialer(nng_dialer d, const psf_rpc_tls *tls)
{
	nng_tls_config *cfg;
	psf_err err = make_config(NNG_TLS_MODE_CLIENT, tls, &cfg);
	int rv;

	if (err != PSF_OK)
		return err;
	rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg);
	return psf_err_from_nng(rv);
}
