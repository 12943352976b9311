/* rpc_tls.h -- TLS configuration of NNG listeners and dialers from PEM files
 * (internal to the RPC layer). */
#ifndef PSF_RPC_TLS_H
#define PSF_RPC_TLS_H

#include <nng/nng.h>

#include "lib/base/err.h"
#include "lib/net/rpc.h"

/* psf_rpc_tls_apply_listener configures a tls+tcp listener: cert_file + key_file
 * are required; with ca_file, clients must present a certificate signed by it.
 * Errors are logged once here. */
PSF_NODISCARD psf_err psf_rpc_tls_apply_listener(nng_listener l, const psf_rpc_tls *tls);

/* psf_rpc_tls_apply_dialer configures a tls+tcp dialer d made for url: ca_file
 * verifies the server (without it, the server is not verified: say so in docs),
 * whose certificate must carry tls->server_name, or url's host when that is NULL;
 * cert_file + key_file present a client certificate for mutual TLS. Errors are
 * logged once here. */
PSF_NODISCARD psf_err psf_rpc_tls_apply_dialer(nng_dialer d, const char *url,
    const psf_rpc_tls *tls);

#endif
